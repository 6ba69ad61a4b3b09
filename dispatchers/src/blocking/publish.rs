//! The separate publish listener (`serve --publish-listen`) of every
//! dispatcher: publishing and `/stats` on threads of their own, so that a
//! starved thread pool still takes publishes.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::accept::{accept_loop, wake_acceptor};
use super::live::Live;
use super::served::serve_conn_until;
use crate::hangup::Watcher;
use crate::Shared;

/// Stack of the publish listener's connection threads (std threads).
const PUBLISH_THREAD_STACK: usize = 256 * 1024;

/// Serves publishing and `/stats` on a listener of its own (`--publish-listen`):
/// an acceptor thread, and one std thread per connection (publishers are few),
/// with a watcher of its own, so that a WebSocket held here is read too (a
/// WebSocket publishes over its socket); the dispatcher's housekeeping runs
/// elsewhere. Returns the bound address and what stops it.
///
/// The stop ends the acceptor and wakes every connection (which closes once
/// its answer is written) without waiting for them: publishing has stopped
/// already, so a publish they still read is refused.
pub(crate) fn publish_listener(
    addr: SocketAddr,
    shared: Arc<Shared>,
) -> io::Result<(SocketAddr, Box<dyn FnOnce() + Send>)> {
    let listener = crate::listen::listener(addr, false)?;
    let bound = listener.local_addr()?;
    let waker = listener.try_clone()?;
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(Live::default());
    let watcher = Watcher::start(|| {})?;
    let acceptor = {
        let (stop, live) = (stop.clone(), live.clone());
        std::thread::Builder::new()
            .name("publish-accept".into())
            .spawn(move || {
                accept_loop(&listener, &stop, &shared, |stream, accepted| {
                    let (for_thread, live) = (shared.clone(), live.clone());
                    let watcher = watcher.clone();
                    let spawned = std::thread::Builder::new()
                        .name("publish-conn".into())
                        .stack_size(PUBLISH_THREAD_STACK)
                        .spawn(move || {
                            serve_conn_until(stream, accepted, &for_thread, &live, Some(&watcher))
                        });
                    if spawned.is_err() {
                        // The stream was moved into the closure and dropped with
                        // it: the client sees the connection close.
                        shared.conn_refused();
                    }
                })
            })?
    };
    let stop_fn = move || {
        stop.store(true, Ordering::Relaxed);
        wake_acceptor(&waker);
        let _ = acceptor.join();
        live.stop();
    };
    Ok((bound, Box::new(stop_fn)))
}
