//! The accept loop of the thread dispatchers and of the publish listener,
//! and the `503` for a connection that will not be served.

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::accept_error::AcceptError;
use crate::spare::Spare;
use crate::Shared;

/// Times an acceptor backed off because the process (or system) had no free
/// descriptor and it could not shed the connection with a `503`.
static ACCEPT_BACKOFFS: AtomicU64 = AtomicU64::new(0);

/// How many times any acceptor of this process backed off for want of a descriptor.
pub fn accept_backoffs() -> u64 {
    ACCEPT_BACKOFFS.load(Ordering::Relaxed)
}

/// Writes a whole `503` to a connection that will not be served, and closes it.
pub(crate) fn refuse(stream: TcpStream, shared: &Shared) {
    // Counted first, so that a client that reads the 503 finds it counted.
    shared.conn_refused();
    let _ = stream.set_nonblocking(true);
    let _ = (&stream).write(comet::conn::service_unavailable());
    let _ = stream.shutdown(Shutdown::Write);
}

/// Wakes an acceptor blocked in `accept` on `listener` (a clone of its
/// socket): on Linux, shutting a listening socket down stops it listening and
/// makes `accept` fail at once.
pub(crate) fn wake_acceptor(listener: &TcpListener) {
    // SAFETY: a valid descriptor owned by `listener`.
    unsafe {
        libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR);
    }
}

/// Accepts until `stop` is set (then [`wake_acceptor`] ends the wait) and
/// hands each connection to `serve`. Out of descriptors, it sheds the next
/// connection with a `503` through its [`Spare`], or backs off for 10 ms
/// (counted in [`accept_backoffs`]) when it cannot.
pub(crate) fn accept_loop(
    listener: &TcpListener,
    stop: &AtomicBool,
    shared: &Shared,
    mut serve: impl FnMut(TcpStream, Instant),
) {
    let mut spare = Spare::new();
    let mut warned = false;
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let err = match accepted {
            Ok((stream, _)) => {
                serve(stream, Instant::now());
                continue;
            }
            Err(e) => e,
        };
        match AcceptError::of_io(&err) {
            AcceptError::OutOfFiles => {
                warn_out_of_files(&mut warned, &err);
                // Blocks until a connection arrives: with no descriptor
                // free, `accept` fails at once even when none is pending.
                let shed = spare.shed(|| match listener.accept() {
                    Ok((stream, _)) => {
                        refuse(stream, shared);
                        true
                    }
                    Err(_) => false,
                });
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                if !shed {
                    backoff();
                }
            }
            AcceptError::NoMemory => backoff(),
            // The connection died in the backlog, or a signal: next one.
            AcceptError::Transient => {}
            AcceptError::Cancelled | AcceptError::Unexpected => {
                // Not expected (EINVAL once the listener is shut down without
                // `stop`): do not spin on it.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Says once per acceptor that it ran out of descriptors.
pub(crate) fn warn_out_of_files(warned: &mut bool, err: &std::io::Error) {
    if !std::mem::replace(warned, true) {
        eprintln!(
            "cometbench: accept: {err}: answering 503 to new connections until descriptors free up"
        );
    }
}

fn backoff() {
    ACCEPT_BACKOFFS.fetch_add(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(10));
}
