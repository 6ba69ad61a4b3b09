//! Blocking I/O for the two thread dispatchers: one connection served by one
//! thread with blocking `std::net` (`served.rs`, `os.rs`), its inbox
//! (`inbox.rs`), the set of live connections a stop wakes (`live.rs`), the
//! accept loop they share (`accept.rs`), and the separate publish listener
//! (`serve --publish-listen`) of every dispatcher (`publish.rs`).
//!
//! The connection loop is generic over the thread package (`wire.rs`: read
//! and write with deadlines, wait for the inbox or a hang-up, the stop), so
//! that the green dispatcher runs this same loop on green threads; only the
//! thread package differs.
//!
//! A connection thread waits on one thing at a time. While the peer may send a
//! request, or a lingering close reads what it still sends
//! ([`Conn::is_reading`]), it blocks in `read` with the connection's
//! deadline as the read timeout. While it holds a long-poll or a stream it
//! blocks on its own inbox (a [`Group`] of one connection) until a message,
//! the deadline, or a hang-up. It does not read the socket then; the
//! dispatcher's [`Watcher`] does the watching for every held connection and
//! wakes the thread when its client closes or resets, so that a disconnect
//! storm frees threads, descriptors and subscriptions at once rather than at
//! the next heartbeat. A held WebSocket ([`Conn::is_duplex`]) is the one
//! exception: its client may send at any time, so the watcher also wakes the
//! thread for bytes to read, and the thread reads them without blocking
//! (`served/duplex.rs`). Without a watcher (one could not be registered) a
//! vanished client is noticed at the next write, or at the next heartbeat or
//! poll timeout, when the thread checks the socket (and reads a WebSocket's)
//! before writing. The publish listener has a watcher of its own.
//!
//! # Deadlines run from accept
//! A connection may wait before a thread serves it (in the thread pool's
//! queue), and its first request's 10 s header deadline counts from accept,
//! not from when a thread took it (`docs/DESIGN.md`, the wire protocol). A connection taken
//! after its deadline is read once without blocking: a request that arrived
//! whole meanwhile is served, anything less is answered `408` and closed at
//! once, so a queue of slowloris connections drains as fast as it is reached.
//!
//! # Inbox
//! The inbox is bounded ([`INBOX_CAPACITY`] messages). `Inbox::deliver` runs
//! with the hub locked and never blocks: when the inbox is full it sets an
//! overflow flag, and the thread drops the subscriber as too slow (counted in
//! `dropped_slow`) rather than losing messages silently. The inbox is a mutex
//! and a condition variable over a `VecDeque` that allocates only while
//! messages wait, so an idle connection pays a few bytes for it; a bounded
//! crossbeam channel would allocate its whole ring (about 4.5 KiB for 256
//! slots) per connection up front.
//!
//! # Stopping
//! Every connection thread registers with its dispatcher's [`Live`] set. A
//! stop (after publishing has stopped, see [`crate`] `# Stopping`) marks each
//! registered inbox stopped, which wakes a thread waiting on it, and shuts
//! the socket's reading side down, which wakes a thread blocked in `read`
//! (it reads EOF). A woken thread first hands on the messages already in its
//! inbox, then ends its connection ([`Conn::handle_shutdown`]) and writes out
//! what is queued. The stop waits for the threads to unregister until
//! [`crate::STOP_GRACE`] has passed, then shuts the remaining sockets down
//! whole, which ends a write blocked on a client that does not read. The
//! hang-up watcher sees the read side shut down as a hang-up; the stop mark
//! is set first and checked first, so no message is lost to that.
//!
//! # Stack
//! Connection threads may have small stacks (thread-per-connection runs them
//! with a configured stack and no guard page), so the loop keeps its own
//! frames small: a 2 KiB read buffer and a 16-slice `writev` array.

//!
//! # Out of descriptors
//! The acceptor keeps a spare descriptor ([`crate::spare`]); when even that
//! is gone it backs off for 10 ms (counted in [`accept_backoffs`]).

#[cfg(doc)]
use {
    crate::{group::Group, hangup::Watcher},
    comet::Conn,
};

mod accept;
mod inbox;
mod live;
mod os;
mod publish;
mod served;
mod wire;

pub use accept::accept_backoffs;
pub(crate) use accept::{accept_loop, refuse, wake_acceptor, warn_out_of_files};
pub use inbox::INBOX_CAPACITY;
pub(crate) use inbox::{ConnInbox, Signal, Woken};
pub(crate) use live::Live;
pub(crate) use publish::publish_listener;
pub use served::WRITE_TIMEOUT;
pub(crate) use served::{serve, serve_conn_until};
pub(crate) use wire::{Peer, Wire};
