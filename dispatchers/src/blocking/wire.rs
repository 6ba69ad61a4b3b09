//! What the connection loop (`served.rs`) needs of a thread package: a few
//! blocking operations on one connection. An OS thread does them with
//! `std::net` and a condition variable (`os.rs`); a green thread with the
//! green runtime's primitives (`crate::green_conn`). The loop is the same.

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Instant;

use super::inbox::{ConnInbox, Signal, Woken};

/// Whether the client is still there.
pub(crate) enum Peer {
    Open,
    /// The client closed its side (FIN).
    HungUp,
    /// Reset or error.
    Failed,
}

/// One connection's socket and waiting, as its thread does them.
pub(crate) trait Wire {
    /// What wakes this thread when its inbox gets a message.
    type Signal: Signal;

    /// Reads into `buf`, blocking until bytes, the end of the stream
    /// (`Ok(0)`) or `deadline` (then `TimedOut` or `WouldBlock`). A deadline
    /// already passed takes what has arrived without blocking.
    fn read(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize>;

    /// Writes from `bufs`, blocking up to [`super::WRITE_TIMEOUT`] without
    /// progress (then `TimedOut` or `WouldBlock`).
    fn writev(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;

    /// Shuts the write side down (a lingering close); a failure means the
    /// peer is gone, which the next read says.
    fn shutdown_write(&mut self);

    /// Reads what has arrived, without blocking (`WouldBlock` or `TimedOut`
    /// when nothing has).
    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Holding a long-poll or a stream: waits until `inbox` has a message or
    /// overflows, the client hangs up, the dispatcher stops, or `deadline`;
    /// with `readable` (a WebSocket, whose client may send at any time),
    /// bytes to read wake it too, as a hang-up does (`Woken::hangup`).
    fn wait(
        &mut self,
        inbox: &Arc<ConnInbox<Self::Signal>>,
        deadline: Option<Instant>,
        readable: bool,
    ) -> Woken;

    /// Whether the client is still there, without reading or blocking.
    fn peer(&mut self) -> Peer;

    /// The dispatcher is stopping (see the module docs, `# Stopping`).
    fn is_stopped(&self, inbox: &ConnInbox<Self::Signal>) -> bool;

    /// The connection has ended; called once, before the socket closes.
    fn finish(&mut self) {}
}
