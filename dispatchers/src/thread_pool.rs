//! Thread pool, servlet style: `--pool-size` N worker threads fed by a channel
//! of accepted connections. A worker serves its connection with blocking
//! `std::net` ([`crate::blocking`]) until it closes, then takes the next.
//!
//! # Starvation
//! A held long-poll or stream keeps its worker. Past N held connections the
//! others wait in the channel unserved, not even their request read, while the
//! acceptor keeps accepting: connection N+1 waits until one of the N closes.
//! That is the behaviour this dispatcher exists to show, not a bug. A publish
//! arriving on the same listener waits as well; `--publish-listen` serves
//! publishing on its own listener and threads.
//!
//! # Memory
//! A worker keeps what serving left in it: its stack's touched pages, and
//! glibc's per-thread cache of freed chunks (tcache). After a mass close of
//! 10,000 held connections (`scripts/storm.py`, 2026-11-25) RSS stayed 50 MB
//! over the idle pool's 102 MB: 40 MB of it one stack page per worker, the
//! rest heap pages pinned by chunks in 10,000 tcaches. A worker that served
//! and then found no connection for [`IDLE_RELEASE`] gives back its stack
//! below the frame it waits in ([`release_stack`]), which took RSS to
//! 115 MB; with `GLIBC_TUNABLES=glibc.malloc.tcache_count=0` it went back
//! to baseline (+1%). Replacing idle workers by fresh threads to empty their
//! tcaches was tried and did worse (125 MB): the new threads' own
//! allocations landed in the fragmented arenas.
//!
//! # Stopping
//! After publishing has stopped ([`crate`] `# Stopping`), `stop` sets a flag,
//! shuts the listener down (which wakes the acceptor) and waits for the
//! acceptor to end, which drops the channel's sender. Then it wakes every
//! worker holding a connection through the [`Live`] set: each hands on the
//! messages in its inbox, writes out what is queued and closes the connection
//! (see [`crate::blocking`] `# Stopping`); `stop` returns once all have, or
//! after [`crate::STOP_GRACE`]. Workers close connections still waiting in
//! the channel unserved (nothing of theirs was accepted) and end when it is
//! empty.

use std::io;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::blocking::{accept_loop, serve_conn_until, wake_acceptor, Live};
use crate::hangup::Watcher;
use crate::memory::release_stack;
use crate::{Kind, Options, Running, Shared};

/// Stack of a worker thread (std threads; their stacks are touched lazily).
const WORKER_STACK: usize = 256 * 1024;

/// A worker that served and then waited this long for a connection gives
/// its stack pages back (see `# Memory`).
const IDLE_RELEASE: Duration = Duration::from_secs(1);

/// What every worker shares.
struct Pool {
    rx: Receiver<(TcpStream, Instant)>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    watcher: Arc<Watcher>,
}

fn spawn_worker(pool: &Arc<Pool>, i: usize) -> io::Result<()> {
    let pool = pool.clone();
    std::thread::Builder::new()
        .name(format!("pool-{i}"))
        .stack_size(WORKER_STACK)
        .spawn(move || worker(pool))?;
    Ok(())
}

fn worker(pool: Arc<Pool>) {
    let mut served = false;
    loop {
        let next = if served {
            match pool.rx.recv_timeout(IDLE_RELEASE) {
                Ok(next) => Some(next),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match pool.rx.recv() {
                Ok(next) => Some(next),
                Err(_) => return,
            }
        };
        let Some((stream, accepted)) = next else {
            // Served, then idle: give back the stack pages serving touched,
            // then wait as long as it takes.
            release_stack();
            served = false;
            continue;
        };
        served = true;
        if pool.stop.load(Ordering::Relaxed) {
            continue;
        }
        serve_conn_until(
            stream,
            accepted,
            &pool.shared,
            &pool.live,
            Some(&pool.watcher),
        );
    }
}

pub fn start(opts: &Options) -> io::Result<Running> {
    let shared = Arc::new(Shared::for_options(
        opts,
        Kind::ThreadPool.name(),
        crate::settings_json(Kind::ThreadPool, opts),
        0,
    )?);
    let listener = crate::listen::listener(opts.listen, opts.reuse_port)?;
    let addr = listener.local_addr()?;
    let waker = listener.try_clone()?;
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let shared = shared.clone();
        Watcher::start(move || {
            shared.housekeeping(Instant::now());
        })?
    };
    // With the accept time: the header deadline runs from there.
    let (tx, rx) = crossbeam_channel::unbounded::<(TcpStream, Instant)>();
    let pool = Arc::new(Pool {
        rx,
        shared: shared.clone(),
        stop: stop.clone(),
        live: Arc::new(Live::default()),
        watcher,
    });
    for i in 0..opts.pool_size.max(1) {
        // On failure the workers already started end with the sender, dropped on return.
        spawn_worker(&pool, i)?;
    }
    let acceptor = {
        let shared = shared.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("pool-accept".into())
            .spawn(move || {
                accept_loop(&listener, &stop, &shared, |stream, accepted| {
                    // Fails only once every worker has ended, which happens
                    // after `stop`: the stream is dropped with the error.
                    let _ = tx.send((stream, accepted));
                });
                drop(tx);
            })?
    };
    let live = pool.live.clone();
    let stop_fn = move || {
        let deadline = Instant::now() + crate::STOP_GRACE;
        stop.store(true, Ordering::Relaxed);
        wake_acceptor(&waker);
        let _ = acceptor.join();
        live.stop();
        live.wait(deadline);
    };
    Ok(Running::new(addr, shared, Box::new(stop_fn)))
}
