//! Starting and stopping the schedulers.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::accept::{Acceptor, OnRefused};
use super::remote::{Msg, Remote};
use super::scheduler::{Setup, Worker};
use super::stack::{stack_size, DEFAULT_REGION};

/// How to run the green runtime.
#[derive(Clone)]
pub struct Config {
    /// Schedulers: OS threads, each with its run queue and its ring.
    pub threads: usize,
    /// Bytes per green thread stack; rounded up to whole pages and to
    /// [`super::MIN_STACK`].
    pub stack_size: usize,
    /// A listener per scheduler on this address (`SO_REUSEPORT`), for [`super::accept`].
    pub listen: Option<SocketAddr>,
    /// `SO_REUSEPORT` even with one scheduler: other processes share the port.
    pub reuse_port: bool,
    /// Set `TCP_NODELAY` on the listeners, which accepted sockets inherit
    /// (a direct descriptor cannot be given it afterwards).
    pub nodelay: bool,
    /// Slots in each ring's fixed-file table; by default the open-file soft
    /// limit, the most the kernel lets one table hold.
    pub file_table: Option<u32>,
    /// Bytes of each stack region (one mapping).
    pub region_bytes: usize,
    /// Written to a connection refused for want of a table slot, before it
    /// is closed (an HTTP `503`, say).
    pub refusal: Option<&'static [u8]>,
    /// Called for every refused connection.
    pub on_refused: Option<OnRefused>,
    /// Thread names are `{name}-{index}`.
    pub name: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threads: 1,
            stack_size: 64 * 1024,
            listen: None,
            reuse_port: false,
            nodelay: true,
            file_table: None,
            region_bytes: DEFAULT_REGION,
            refusal: None,
            on_refused: None,
            name: "green".into(),
        }
    }
}

/// Counters of the runtime, summed over its schedulers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Green threads alive.
    pub tasks: usize,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused for want of a table slot.
    pub refused: u64,
    /// Direct descriptors open.
    pub open: usize,
    /// Stack regions mapped.
    pub regions: usize,
}

/// How a stop went, summed over the schedulers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StopReport {
    /// Green threads that returned after the stop began.
    pub ended: usize,
    /// Green threads still there at the end, unwound (their destructors ran).
    pub unwound: usize,
    /// Green threads still there at the end with an operation the kernel
    /// had not finished: left as they were, memory and all.
    pub leaked: usize,
    /// Some memory (stacks, buffers) was kept because the kernel might still
    /// write to it.
    pub leaked_memory: bool,
}

impl StopReport {
    fn add(&mut self, o: StopReport) {
        self.ended += o.ended;
        self.unwound += o.unwound;
        self.leaked += o.leaked;
        self.leaked_memory |= o.leaked_memory;
    }
}

/// The green runtime: `threads` schedulers serving in background threads.
pub struct Runtime {
    remotes: Vec<Arc<Remote>>,
    handles: Vec<JoinHandle<StopReport>>,
    addr: Option<SocketAddr>,
    stack_size: usize,
}

impl Runtime {
    /// Starts the schedulers, each running `main(index)` as its first green
    /// thread; returns once every ring is set up, or the first error (`io_uring
    /// is not available on this kernel: ...` where io_uring is refused).
    pub fn start<M>(config: Config, main: M) -> io::Result<Runtime>
    where
        M: Fn(usize) + Send + Sync + 'static,
    {
        let threads = config.threads.max(1);
        let listeners: Vec<Option<TcpListener>> = match config.listen {
            Some(addr) => {
                let ls = crate::listen::listeners(addr, threads, config.reuse_port)?;
                for l in &ls {
                    socket2::SockRef::from(l).set_nodelay(config.nodelay)?;
                }
                ls.into_iter().map(Some).collect()
            }
            None => (0..threads).map(|_| None).collect(),
        };
        let addr = match listeners.first() {
            Some(Some(l)) => Some(l.local_addr()?),
            _ => None,
        };
        let table = config
            .file_table
            .unwrap_or_else(crate::io_ring::file_table_size);
        let main = Arc::new(main);
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
        let mut rt = Runtime {
            remotes: Vec::with_capacity(threads),
            handles: Vec::with_capacity(threads),
            addr,
            stack_size: stack_size(config.stack_size),
        };
        let mut error = None;
        for (index, listener) in listeners.into_iter().enumerate() {
            let remote = Arc::new(Remote::new()?);
            let setup = (listener, config.clone(), remote.clone(), main.clone());
            let ready = ready_tx.clone();
            let spawned = thread::Builder::new()
                .name(format!("{}-{index}", config.name))
                .spawn(move || {
                    let (listener, config, remote, main) = setup;
                    scheduler_thread(index, listener, &config, table, remote, ready, move || {
                        main(index)
                    })
                });
            match spawned {
                Ok(h) => {
                    rt.remotes.push(remote);
                    rt.handles.push(h);
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        drop(ready_tx);
        for _ in 0..rt.handles.len() {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    error.get_or_insert(e);
                }
                Err(_) => {
                    error.get_or_insert_with(|| io::Error::other("green: a scheduler thread died"));
                }
            }
        }
        if let Some(e) = error {
            rt.stop_all(Duration::ZERO);
            return Err(e);
        }
        Ok(rt)
    }

    /// The listeners' address, if the runtime listens.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    pub fn threads(&self) -> usize {
        self.remotes.len()
    }

    /// Bytes of each green thread's stack, as rounded.
    pub fn stack_size(&self) -> usize {
        self.stack_size
    }

    /// Runs `f` as a new green thread on scheduler `index` (from any thread).
    pub fn spawn_on(&self, index: usize, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let remote = self.remotes.get(index).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "green: no such scheduler")
        })?;
        remote.push(Msg::Spawn(Box::new(f)));
        Ok(())
    }

    /// The counters now, summed over the schedulers.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for r in &self.remotes {
            let c = &r.counters;
            s.tasks += c.tasks.load(Ordering::Relaxed);
            s.accepted += c.accepted.load(Ordering::Relaxed);
            s.refused += c.refused.load(Ordering::Relaxed);
            s.open += c.open.load(Ordering::Relaxed);
            s.regions += c.regions.load(Ordering::Relaxed);
        }
        s
    }

    /// Stops: every green thread is woken with the stop (see the module
    /// docs of `green`, `# Stopping`) and has `grace` to return; what is
    /// left then is cut off, and unwound. Returns once every scheduler has ended.
    pub fn stop(mut self, grace: Duration) -> StopReport {
        self.stop_all(grace)
    }

    fn stop_all(&mut self, grace: Duration) -> StopReport {
        let hard_at = Instant::now() + grace;
        for r in &self.remotes {
            r.push(Msg::Stop(hard_at));
        }
        let mut report = StopReport::default();
        for h in self.handles.drain(..) {
            match h.join() {
                Ok(r) => report.add(r),
                Err(_) => eprintln!("green: a scheduler thread panicked"),
            }
        }
        report
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.handles.is_empty() {
            self.stop_all(crate::STOP_GRACE);
        }
    }
}

/// The body of scheduler thread `index`.
fn scheduler_thread(
    index: usize,
    listener: Option<TcpListener>,
    config: &Config,
    table: u32,
    remote: Arc<Remote>,
    ready: mpsc::Sender<io::Result<()>>,
    main: impl FnOnce() + 'static,
) -> StopReport {
    let accept = Acceptor::new(listener, table, config.refusal, config.on_refused.clone());
    let setup = accept.map(|accept| Setup {
        index,
        stack_size: config.stack_size,
        region_bytes: config.region_bytes,
        table,
        accept,
    });
    // The ring is made here: with SINGLE_ISSUER, its creator is the only
    // thread allowed to submit.
    let worker = match setup.and_then(|s| Worker::new(s, remote)) {
        Ok(w) => w,
        Err(e) => {
            let _ = ready.send(Err(e));
            return StopReport::default();
        }
    };
    let _ = ready.send(Ok(()));
    drop(ready);
    worker.run(main)
}
