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
//! # Stopping
//! `stop` sets a flag, shuts the listener down (which wakes the acceptor) and
//! returns once the acceptor has ended, which drops the channel's sender.
//! Workers close connections still waiting in the channel, close the one they
//! hold at its next wake-up, and end when the channel is empty.

use std::io;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::blocking::{accept_loop, serve_conn_until, wake_acceptor};
use crate::{Kind, Options, Running, Shared};

/// Stack of a worker thread (std threads; their stacks are touched lazily).
const WORKER_STACK: usize = 256 * 1024;

pub fn start(opts: &Options) -> io::Result<Running> {
    let shared = Arc::new(Shared::new(
        opts.config.clone(),
        Kind::ThreadPool.name(),
        crate::settings_json(Kind::ThreadPool, opts),
    ));
    let listener = crate::listen::listener(opts.listen)?;
    let addr = listener.local_addr()?;
    let waker = listener.try_clone()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = crossbeam_channel::unbounded::<TcpStream>();
    for i in 0..opts.pool_size.max(1) {
        let rx = rx.clone();
        let shared = shared.clone();
        let stop = stop.clone();
        // On failure the workers already started end with the sender, dropped on return.
        std::thread::Builder::new()
            .name(format!("pool-{i}"))
            .stack_size(WORKER_STACK)
            .spawn(move || {
                for stream in rx.iter() {
                    if stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    serve_conn_until(stream, &shared, &stop);
                }
            })?;
    }
    drop(rx);
    let acceptor = {
        let shared = shared.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("pool-accept".into())
            .spawn(move || {
                accept_loop(&listener, &stop, &shared, |stream| {
                    // Fails only once every worker has ended, which happens
                    // after `stop`: the stream is dropped with the error.
                    let _ = tx.send(stream);
                });
                drop(tx);
            })?
    };
    let stop_fn = move || {
        stop.store(true, Ordering::Relaxed);
        wake_acceptor(&waker);
        let _ = acceptor.join();
    };
    Ok(Running::new(addr, shared, Box::new(stop_fn)))
}
