//! One connection served by one thread, blocking: the loop that reads,
//! waits on the inbox, writes, and ends the connection (see the module
//! docs). It is generic over the thread package ([`Wire`]): an OS thread
//! and a green thread run this same loop.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use comet::Conn;

use super::inbox::{ConnInbox, ThreadInbox, Woken};
use super::live::Live;
use super::os::OsWire;
use super::wire::{Peer, Wire};
use crate::backend::GroupBackend;
use crate::deferred::Item;
use crate::group::Group;
use crate::hangup::Watcher;
use crate::Shared;

mod duplex;

/// A write that makes no progress for this long drops the client as too slow.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes read per `read` call (on the connection thread's stack).
const READ_BUF: usize = 2048;

/// Slices per `writev`.
const MAX_IOV: usize = 16;

/// Serves a connection accepted at `accepted` on the calling OS thread until
/// it closes or `live` stops; `watcher` watches it while it is held.
pub(crate) fn serve_conn_until(
    stream: TcpStream,
    accepted: Instant,
    shared: &Arc<Shared>,
    live: &Live,
    watcher: Option<&Watcher>,
) {
    shared.conn_opened(None);
    let inbox = Arc::new(ThreadInbox::default());
    let wire = OsWire::new(stream, &inbox, live, watcher);
    let admitted = wire.is_registered();
    serve(wire, inbox, accepted, shared, admitted);
    shared.conn_closed();
}

/// Serves a connection accepted at `accepted` through `wire` on the calling
/// thread (only ends it when not `admitted`); the wire, and with it the
/// socket, is dropped before this returns.
pub(crate) fn serve<W: Wire>(
    wire: W,
    inbox: Arc<ConnInbox<W::Signal>>,
    accepted: Instant,
    shared: &Shared,
    admitted: bool,
) where
    ConnInbox<W::Signal>: 'static,
{
    let mut served = Served {
        conn: Conn::new(shared.config.clone(), accepted),
        group: Group(inbox.clone()),
        inbox,
        wire,
        shared,
    };
    // One bad connection must never take the process down: a panic ends this
    // connection only, and its subscription is still removed from the hub.
    if admitted && catch_unwind(AssertUnwindSafe(|| served.run())).is_err() {
        eprintln!("cometbench: a connection thread panicked; connection closed");
    }
    let _ = catch_unwind(AssertUnwindSafe(|| served.finish()));
    // Only now does the socket close.
    drop(served);
}

/// One connection and what its thread waits on.
struct Served<'a, W: Wire> {
    conn: Conn,
    inbox: Arc<ConnInbox<W::Signal>>,
    group: Group,
    wire: W,
    shared: &'a Shared,
}

impl<W: Wire> Served<'_, W> {
    fn run(&mut self) {
        while !self.conn.is_done() {
            if self.wire.is_stopped(&self.inbox) {
                self.stop();
                break;
            }
            if self.conn.is_reading() {
                self.read_step();
            } else if self.conn.subscription().is_some() || self.conn.is_waiting() {
                // Holding a subscription, or waiting for an answer that
                // comes through the inbox (see `crate::deferred`).
                self.wait_step();
            } else {
                // Closed with output left (not expected: `flush` writes all
                // or gives up): nothing to wait for.
                self.conn.handle_close();
            }
            self.settle();
        }
    }

    /// The dispatcher stops: hands on what is in the inbox (accepted before
    /// publishing stopped), then ends the connection and writes out what is
    /// queued. A write blocked past the stop's deadline is ended by the stop.
    fn stop(&mut self) {
        let Woken {
            messages, overflow, ..
        } = self.inbox.take();
        if overflow {
            return self.drop_slow();
        }
        self.deliver(messages, Instant::now());
        self.conn.handle_shutdown();
        self.settle();
    }

    /// Hands `items` to the subscription held, or the answer waited for.
    fn deliver(&mut self, items: VecDeque<Item>, now: Instant) {
        for item in items {
            // The inbox is per connection and outlives a subscription; a
            // message of another channel is a leftover.
            let current = |conn: &Conn, channel: &str| matches!(conn.subscription(), Some((c, _)) if **c == *channel);
            match item {
                Item::Message(m) => {
                    if current(&self.conn, m.channel()) {
                        self.shared.deliver(&mut self.conn, &m, now);
                        self.drain();
                    }
                }
                Item::Answer(reply) => {
                    GroupBackend::new(self.shared, &self.group, None).answer(
                        &mut self.conn,
                        reply.answer,
                        now,
                    );
                }
                Item::End(channel) => {
                    if current(&self.conn, &channel) {
                        self.conn.handle_shutdown();
                        self.drain();
                    }
                }
            }
        }
    }

    /// Messages were lost for this subscriber: drop it, never silently.
    fn drop_slow(&mut self) {
        self.conn.handle_close();
        self.shared
            .counters
            .dropped_slow
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Answers the events raised, writes what is pending, and answers the
    /// events the writing raised (an unsubscribe when the client is gone);
    /// then shuts the write side down if a lingering close asks.
    fn settle(&mut self) {
        self.drain();
        self.flush();
        self.drain();
        if self.conn.poll_shutdown(Instant::now()) {
            self.wire.shutdown_write();
        }
    }

    fn drain(&mut self) {
        GroupBackend::new(self.shared, &self.group, None).drain(&mut self.conn, Instant::now());
    }

    /// Idle or mid-request: block on the socket until bytes, EOF or the
    /// deadline. A deadline already passed (a connection that waited in a
    /// queue since accept, or a slow request) takes what already arrived
    /// without blocking, and times out only when that does not complete
    /// the request.
    // Never inlined: its read buffer must not become part of the frame a
    // held connection waits in (a page more per idle green thread).
    #[inline(never)]
    fn read_step(&mut self) {
        // Not subscribed now, so anything in the inbox is left over from a
        // subscription that has ended (a long-poll answered).
        self.inbox.clear();
        let mut buf = [0u8; READ_BUF];
        let read = self.wire.read(&mut buf, self.conn.poll_timeout());
        let now = Instant::now();
        match read {
            Ok(0) => self.conn.handle_eof(now),
            Ok(n) => self.conn.handle_read(&buf[..n], now),
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    self.conn.handle_timeout(now)
                }
                io::ErrorKind::Interrupted => {}
                // Cut off by the stop: `run` ends the connection.
                _ if self.wire.is_stopped(&self.inbox) => {}
                _ => self.conn.handle_close(),
            },
        }
    }

    /// Holding a long-poll or a stream: block on the inbox until a message,
    /// the deadline (heartbeat, poll timeout) or a hang-up.
    fn wait_step(&mut self) {
        let deadline = self.conn.poll_timeout();
        let Woken {
            messages,
            overflow,
            hangup,
            stop,
        } = self.wire.wait(&self.inbox, deadline, self.conn.is_duplex());
        let now = Instant::now();
        if overflow {
            return self.drop_slow();
        }
        if stop {
            // Before the hang-up: stopping shuts the read side down, which
            // looks like one. `run` delivers the messages (put back here).
            return self.inbox.put_back(messages);
        }
        if hangup && self.conn.is_duplex() {
            self.read_ready();
        } else if hangup {
            match self.wire.peer() {
                // An edge from earlier that no longer holds: wait on.
                Peer::Open => {}
                Peer::HungUp => return self.conn.handle_eof(now),
                Peer::Failed => return self.conn.handle_close(),
            }
        }
        if messages.is_empty() {
            if deadline.is_some_and(|d| d <= now) {
                // A WebSocket's pongs are read before a ping is due, even
                // with no watcher to say they came.
                if self.conn.is_duplex() {
                    self.read_ready();
                    if !self.conn.is_duplex() {
                        return;
                    }
                }
                // About to write a heartbeat or a 204: first see whether the
                // client is still there.
                match self.wire.peer() {
                    Peer::Open => self.conn.handle_timeout(now),
                    Peer::HungUp => self.conn.handle_eof(now),
                    Peer::Failed => self.conn.handle_close(),
                }
            }
            return;
        }
        self.deliver(messages, now);
    }

    /// Writes everything pending, blocking (up to [`WRITE_TIMEOUT`] without progress).
    fn flush(&mut self) {
        while self.conn.has_pending() {
            let written = {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let n = self.conn.poll_transmit(&mut iov);
                self.wire.writev(&iov[..n])
            };
            match written {
                Ok(0) => return self.conn.handle_close(),
                Ok(n) => self.conn.handle_written(n),
                Err(e) => match e.kind() {
                    io::ErrorKind::Interrupted => {}
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        // The client does not read: drop it as too slow.
                        self.conn.handle_close();
                        self.shared
                            .counters
                            .dropped_slow
                            .fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    _ => return self.conn.handle_close(),
                },
            }
        }
    }

    /// After the loop, normal or not: close the connection in the core and
    /// answer its last events (the unsubscribe of a subscriber that leaves).
    fn finish(&mut self) {
        if !self.conn.is_done() {
            self.conn.handle_close();
        }
        self.drain();
        self.inbox.clear();
        self.wire.finish();
    }
}
