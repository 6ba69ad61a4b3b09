//! The `uring` dispatcher: io_uring completion loops, one ring per thread.
//!
//! Each ring accepts on its own `SO_REUSEPORT` listener with one multishot
//! accept, receives with one multishot recv per connection into a provided
//! buffer ring, and sends with at most one send per connection in flight.
//! Everything a loop turn queues goes to the kernel in one `io_uring_enter`,
//! which is also the wait.
//!
//! Accepted sockets are *direct descriptors*: they live in the ring's sparse
//! fixed-file table, not in the process's file table. The kernel caps each
//! table at RLIMIT_NOFILE, but per ring: K rings hold up to K times the limit,
//! which is how one process passes it. A full table refuses the connection
//! (the accept completes with ENFILE) and the ring goes on.
//!
//! What the rings share is the hub ([`Shared`]). A publish is handed to each
//! ring with subscribers on the channel once, through its mailbox
//! ([`crate::mailbox::Mailbox`]: a channel and an eventfd the ring keeps a
//! read armed on), and the ring writes to its own subscribers.
//!
//! # Buffer ownership
//! The kernel reads and writes user memory until an operation's CQE, not
//! until the SQE is submitted; every buffer an SQE names is owned by the
//! ring's state until then and never moves:
//! - receive buffers belong to the provided buffer ring (`bufs.rs`); one is
//!   ours from the CQE that names it until we give it back, which happens
//!   while that CQE is handled;
//! - a send holds `Bytes` handles (and, for a gather send, a boxed `msghdr`
//!   and iovecs) in its connection's slot until its CQE (`op.rs`);
//! - the eventfd read lands in a boxed `u64` of the ring.
//!
//! A slot leaves the slab only when none of its operations is pending (see
//! `ring.rs`), and stopping waits for the kernel to finish every operation
//! before memory is freed, or leaks that memory if the kernel is too slow.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use crate::mailbox::Mailbox;
use crate::shared::Shared;
use crate::{Kind, Options, Running};

mod bufs;
mod eventfd;
mod op;
mod ring;

use eventfd::EventFd;
use ring::Ring;

/// Starts `opts.threads` rings; returns once every one is accepting, or the
/// first error (`io_uring is not available on this kernel: ...` where the
/// kernel refuses io_uring).
pub fn start(opts: &Options) -> io::Result<Running> {
    let threads = opts.threads.max(1);
    let shared = Arc::new(Shared::for_options(
        opts,
        Kind::Uring.name(),
        crate::settings_json(Kind::Uring, opts),
        threads,
    )?);
    let listeners = crate::listen::listeners(opts.listen, threads, opts.reuse_port)?;
    let addr = listeners[0].local_addr()?;
    let table = crate::io_ring::file_table_size();
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
    let mut inboxes = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    let mut spawn_error = None;
    for (i, listener) in listeners.into_iter().enumerate() {
        // Accepted sockets inherit TCP_NODELAY from the listener; a direct
        // descriptor could not be given it with setsockopt afterwards.
        socket2::SockRef::from(&listener).set_nodelay(true)?;
        let inbox = Arc::new(Mailbox::new(EventFd::new()?));
        inboxes.push(inbox.clone());
        let (shared, stop, ready) = (shared.clone(), stop.clone(), ready_tx.clone());
        let spawned = thread::Builder::new()
            .name(format!("uring-{i}"))
            .spawn(move || {
                // The ring is made here: with SINGLE_ISSUER, its creator is
                // the only thread allowed to submit.
                let mut ring = match Ring::new(i, listener, shared, inbox, stop, table) {
                    Ok(ring) => ring,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                drop(ready);
                if let Err(e) = ring.run() {
                    eprintln!("uring-{i}: the ring failed and closed its connections: {e}");
                }
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                spawn_error = Some(e);
                break;
            }
        }
    }
    drop(ready_tx);
    let mut error = spawn_error;
    for _ in 0..handles.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error.get_or_insert(e);
            }
            Err(_) => {
                error.get_or_insert_with(|| io::Error::other("uring: a ring thread died"));
            }
        }
    }
    let stop_all = move || {
        stop.store(true, Ordering::Release);
        for inbox in &inboxes {
            inbox.wake();
        }
        for h in handles {
            let _ = h.join();
        }
    };
    if let Some(e) = error {
        stop_all();
        return Err(e);
    }
    Ok(Running::new(addr, shared, Box::new(stop_all)))
}
