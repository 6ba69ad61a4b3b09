//! Green: one green thread per connection, exactly the shape of
//! thread-per-connection, on the green runtime ([`crate::green`]): stackful
//! coroutines on `--threads K` schedulers, each with its own io_uring ring
//! and `SO_REUSEPORT` listener.
//!
//! Each connection runs the thread dispatchers' own connection loop
//! ([`crate::blocking`]), unchanged: only the thread package differs. Its
//! [`Wire`] here reads and writes with the runtime's blocking-style
//! primitives, and waits on its inbox with [`Stream::wait`], which also
//! watches the socket for a hang-up, so no watcher thread is needed. The
//! inbox wakes its green thread with an [`Unparker`]: a lock, a queue push
//! and at most one eventfd write per scheduler per burst, never blocking,
//! so it is safe with the hub locked.
//!
//! # Limits
//! Accepted sockets are direct descriptors of each scheduler's ring, so
//! `K` schedulers hold up to `K` times the open-file limit; stacks come from
//! a few large mappings, so `vm.max_map_count` does not bound the green
//! threads either. A full table refuses the connection with a `503` (see
//! `green::accept`, `# A full table`); a stack that cannot be had (a region
//! that cannot be mapped) too.
//!
//! # Stack
//! `--thread-stack` sets every green thread's stack, rounded up to a page
//! and to [`green::MIN_STACK`] (32 KiB, what a caught panic with its
//! backtrace needs). The conformance suite runs the whole protocol on that
//! floor in a debug build. A green thread gives back the pages below its
//! frame when a hold begins ([`green::release_stack`], one `madvise`), so
//! that an idle subscriber keeps the page it waits in, not the pages its
//! request's parsing and answering touched.
//!
//! # Housekeeping
//! A green thread of the first scheduler sleeps a second at a time and runs
//! [`Shared::housekeeping`] (expiring channels, trimming the heap).
//!
//! # Stopping
//! After publishing has stopped ([`crate`] `# Stopping`), the runtime's stop
//! wakes every green thread with the stop: the acceptors return, a held
//! connection hands on its inbox, ends its connection and writes out what
//! is queued (writes work for [`crate::STOP_GRACE`]), a connection that was
//! reading ends. What has not returned at the end of the grace is cut off.

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::blocking::{serve, ConnInbox, Peer, Signal, Wire, Woken, WRITE_TIMEOUT};
use crate::green::{self, Interest, Ready, Runtime, Stream, Unparker};
use crate::hangup::TICK;
use crate::{Kind, Options, Running, Shared};

/// The effective stack of a green thread for `requested` bytes.
pub fn stack_size(requested: usize) -> usize {
    green::stack_size(requested)
}

pub fn start(opts: &Options) -> io::Result<Running> {
    let threads = opts.threads.max(1);
    let shared = Arc::new(Shared::for_options(
        opts,
        Kind::Green.name(),
        crate::settings_json(Kind::Green, opts),
        threads,
    )?);
    let refused = shared.clone();
    let config = green::Config {
        threads,
        stack_size: opts.thread_stack,
        listen: Some(opts.listen),
        reuse_port: opts.reuse_port,
        nodelay: true,
        refusal: Some(comet::conn::service_unavailable()),
        on_refused: Some(Arc::new(move || refused.conn_refused())),
        name: "green".into(),
        ..green::Config::default()
    };
    let for_main = shared.clone();
    let rt = Runtime::start(config, move |index| {
        if index == 0 {
            let shared = for_main.clone();
            if let Err(e) = green::spawn(move || housekeeping(&shared)) {
                eprintln!("green: cannot start housekeeping: {e}");
            }
        }
        accept_loop(&for_main);
    })?;
    let addr = rt
        .local_addr()
        .ok_or_else(|| io::Error::other("green: the runtime is not listening"))?;
    let stop = move || {
        let report = rt.stop(crate::STOP_GRACE);
        if report.leaked > 0 {
            eprintln!(
                "green: {} green threads still had the kernel's attention at the end of the stop; their memory is kept",
                report.leaked
            );
        }
    };
    Ok(Running::new(addr, shared, Box::new(stop)))
}

/// A scheduler's acceptor: a green thread per connection until the stop.
fn accept_loop(shared: &Arc<Shared>) {
    loop {
        let stream = match green::accept() {
            Ok(s) => s,
            Err(e) if green::is_stopping(&e) => return,
            Err(e) => {
                eprintln!("green: accept: {e}; this scheduler stops accepting");
                return;
            }
        };
        let accepted = Instant::now();
        // Shared with the green thread, so that a spawn that fails (no stack
        // to be had) leaves the stream here to be refused.
        let slot = Rc::new(Cell::new(Some(stream)));
        let (theirs, shared_conn) = (slot.clone(), shared.clone());
        let spawned = green::spawn(move || {
            if let Some(stream) = theirs.take() {
                serve_green(stream, accepted, &shared_conn);
            }
        });
        if spawned.is_err() {
            if let Some(stream) = slot.take() {
                refuse(stream, shared);
            }
        }
    }
}

/// Serves one connection on the running green thread.
fn serve_green(stream: Stream, accepted: Instant, shared: &Shared) {
    shared.conn_opened(Some(green::scheduler_index()));
    let inbox = Arc::new(ConnInbox::new(Unpark(green::current())));
    let wire = GreenWire {
        stream,
        seen: Ready::default(),
        holding: false,
    };
    serve(wire, inbox, accepted, shared, true);
    shared.conn_closed();
}

/// A `503` for a connection no green thread can serve.
fn refuse(stream: Stream, shared: &Shared) {
    shared.conn_refused();
    let _ = stream.writev(
        &[IoSlice::new(comet::conn::service_unavailable())],
        Some(Instant::now()),
    );
    let _ = stream.close();
}

/// Housekeeping about once a [`TICK`], until the stop.
fn housekeeping(shared: &Shared) {
    while green::sleep_until(Instant::now() + TICK).is_ok() {
        shared.housekeeping(Instant::now());
    }
}

/// What wakes a green thread when its inbox gets a message.
struct Unpark(Unparker);

impl Signal for Unpark {
    fn signal(&self) {
        self.0.unpark();
    }
}

/// The connection loop's operations on a green thread.
struct GreenWire {
    stream: Stream,
    /// Socket events the waits saw: a hang-up stays one.
    seen: Ready,
    /// Waiting on the inbox since the last read.
    holding: bool,
}

impl Wire for GreenWire {
    type Signal = Unpark;

    fn read(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        self.holding = false;
        self.stream.read(buf, deadline)
    }

    fn writev(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.stream
            .writev(bufs, Some(Instant::now() + WRITE_TIMEOUT))
    }

    fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // A passed deadline: `MSG_DONTWAIT`. Not a read that ends the hold.
        self.stream.read(buf, Some(Instant::now()))
    }

    fn wait(
        &mut self,
        inbox: &Arc<ConnInbox<Unpark>>,
        deadline: Option<Instant>,
        readable: bool,
    ) -> Woken {
        let interest = if readable {
            Interest::Readable
        } else {
            Interest::HangUp
        };
        if !std::mem::replace(&mut self.holding, true) {
            // A hold begins, after the deepest work of the connection
            // (parsing, subscribing, the replay): keep only the pages of
            // the frames that wait (see `# Stack`).
            green::release_stack();
        }
        loop {
            // Before every wait: an unpark is only a wake-up, the inbox says what came.
            if let Some(woken) = inbox.try_take() {
                return woken;
            }
            let wake = self.stream.wait(interest, deadline);
            self.seen.0 |= wake.ready.0;
            if wake.stopping {
                return Woken {
                    stop: true,
                    ..inbox.take()
                };
            }
            if !wake.ready.is_empty() {
                return Woken {
                    hangup: true,
                    ..inbox.take()
                };
            }
            if wake.timed_out {
                return inbox.take();
            }
        }
    }

    fn peer(&mut self) -> Peer {
        // A passed deadline: what the poll saw since the last wait, at once.
        let wake = self.stream.wait(Interest::HangUp, Some(Instant::now()));
        self.seen.0 |= wake.ready.0;
        let failed = (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) as u32;
        if self.seen.0 & failed != 0 {
            Peer::Failed
        } else if self.seen.is_hung_up() {
            Peer::HungUp
        } else {
            Peer::Open
        }
    }

    fn is_stopped(&self, _inbox: &ConnInbox<Unpark>) -> bool {
        green::stop_requested()
    }
}
