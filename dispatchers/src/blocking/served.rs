//! One connection served by one thread, blocking: the loop that reads,
//! waits on the inbox, writes, and ends the connection (see the module docs).

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use comet::{Conn, Message};

use super::inbox::{ThreadInbox, Woken};
use super::live::Live;
use crate::backend::GroupBackend;
use crate::group::Group;
use crate::hangup::{Watch, Watcher};
use crate::Shared;

mod duplex;

/// A write that makes no progress for this long drops the client as too slow.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes read per `read` call (on the connection thread's stack).
const READ_BUF: usize = 2048;

/// Slices per `writev`.
const MAX_IOV: usize = 16;

/// Serves a connection accepted at `accepted` on the calling thread until it
/// closes or `live` stops; `watcher` watches it while it is held.
pub(crate) fn serve_conn_until(
    stream: TcpStream,
    accepted: Instant,
    shared: &Arc<Shared>,
    live: &Live,
    watcher: Option<&Watcher>,
) {
    shared.conn_opened(None);
    let inbox = Arc::new(ThreadInbox::default());
    let registered = live.register(stream.as_raw_fd(), &inbox);
    let mut served = Served {
        conn: Conn::new(shared.config.clone(), accepted),
        group: Group(inbox.clone()),
        inbox,
        stream,
        shared,
        watcher,
        watch: None,
        watching_reads: false,
    };
    // One bad connection must never take the process down: a panic ends this
    // connection only, and its subscription is still removed from the hub.
    if registered.is_some() && catch_unwind(AssertUnwindSafe(|| served.run())).is_err() {
        eprintln!("cometbench: a connection thread panicked; connection closed");
    }
    let _ = catch_unwind(AssertUnwindSafe(|| served.finish()));
    if let Some(key) = registered {
        live.unregister(key);
    }
    // Only now does the socket close.
    drop(served);
    shared.conn_closed();
}

/// One connection and what its thread waits on.
struct Served<'a> {
    conn: Conn,
    inbox: Arc<ThreadInbox>,
    group: Group,
    stream: TcpStream,
    shared: &'a Arc<Shared>,
    watcher: Option<&'a Watcher>,
    /// Registered with the watcher at the first hold, until the end.
    watch: Option<Watch>,
    /// The watch wakes for bytes to read too (a WebSocket, see `duplex.rs`).
    watching_reads: bool,
}

impl Served<'_> {
    fn run(&mut self) {
        let _ = self.stream.set_nodelay(true);
        let _ = self.stream.set_write_timeout(Some(WRITE_TIMEOUT));
        while !self.conn.is_done() {
            if self.inbox.is_stopped() {
                self.stop();
                break;
            }
            if self.conn.is_reading() {
                self.read_step();
            } else if self.conn.subscription().is_some() {
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
        } = self.inbox.wait(None);
        if overflow {
            return self.drop_slow();
        }
        self.deliver(&messages, Instant::now());
        self.conn.handle_shutdown();
        self.settle();
    }

    /// Hands `messages` to the subscription held.
    fn deliver(&mut self, messages: &VecDeque<Arc<Message>>, now: Instant) {
        for m in messages {
            // The inbox is per connection and outlives a subscription; a
            // message of another channel is a leftover.
            let current = matches!(self.conn.subscription(), Some((c, _)) if c == m.channel());
            if current {
                self.shared.deliver(&mut self.conn, m, now);
                self.drain();
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
            // A failure means the peer is gone: the next read says so.
            let _ = self.stream.shutdown(Shutdown::Write);
        }
    }

    fn drain(&mut self) {
        GroupBackend::new(self.shared, &self.group, None).drain(&mut self.conn, Instant::now());
    }

    /// Idle or mid-request: block on the socket until bytes, EOF or the deadline.
    fn read_step(&mut self) {
        // Not subscribed now, so anything in the inbox is left over from a
        // subscription that has ended (a long-poll answered).
        self.inbox.clear();
        let now = Instant::now();
        let timeout = match self.conn.poll_timeout() {
            Some(d) if d <= now => return self.read_expired(now),
            Some(d) => Some(d - now),
            None => None,
        };
        if self.stream.set_read_timeout(timeout).is_err() {
            return self.conn.handle_close();
        }
        let mut buf = [0u8; READ_BUF];
        match self.stream.read(&mut buf) {
            Ok(0) => self.conn.handle_eof(Instant::now()),
            Ok(n) => self.conn.handle_read(&buf[..n], Instant::now()),
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    self.conn.handle_timeout(Instant::now())
                }
                io::ErrorKind::Interrupted => {}
                _ => self.conn.handle_close(),
            },
        }
    }

    /// The read deadline has passed (a connection that waited in a queue
    /// since accept, or a slow request): take what already arrived without
    /// blocking, and time out only when that does not complete the request.
    fn read_expired(&mut self, now: Instant) {
        let mut buf = [0u8; READ_BUF];
        // SAFETY: `buf` is valid for `READ_BUF` bytes for the whole call.
        let n = unsafe {
            libc::recv(
                self.stream.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                READ_BUF,
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            // Data: feed it and come back; the request may be whole now.
            n if n > 0 => self.conn.handle_read(&buf[..n as usize], now),
            0 => self.conn.handle_eof(now),
            _ => match io::Error::last_os_error().kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => self.conn.handle_timeout(now),
                _ => self.conn.handle_close(),
            },
        }
    }

    /// Holding a long-poll or a stream: block on the inbox until a message,
    /// the deadline (heartbeat, poll timeout) or a hang-up.
    fn wait_step(&mut self) {
        self.ensure_watch();
        let deadline = self.conn.poll_timeout();
        let Woken {
            messages,
            overflow,
            hangup,
            stop,
        } = self.inbox.wait(deadline);
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
            match peer_state(&self.stream) {
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
                match peer_state(&self.stream) {
                    Peer::Open => self.conn.handle_timeout(now),
                    Peer::HungUp => self.conn.handle_eof(now),
                    Peer::Failed => self.conn.handle_close(),
                }
            }
            return;
        }
        self.deliver(&messages, now);
    }

    /// Writes everything pending, blocking (up to [`WRITE_TIMEOUT`] without progress).
    fn flush(&mut self) {
        while self.conn.has_pending() {
            let written = {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let n = self.conn.poll_transmit(&mut iov);
                self.stream.write_vectored(&iov[..n])
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
        if let (Some(w), Some(watch)) = (self.watcher, self.watch.take()) {
            // Before the socket closes (with `self`), so that its number,
            // free for reuse then, is no longer in the epoll set.
            w.unwatch(watch);
        }
    }
}

enum Peer {
    Open,
    /// The client closed its side (FIN).
    HungUp,
    /// Reset or error.
    Failed,
}

/// Whether the client is still there, without reading or blocking.
fn peer_state(stream: &TcpStream) -> Peer {
    let mut p = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    if r <= 0 {
        Peer::Open
    } else if p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
        Peer::Failed
    } else if p.revents & libc::POLLRDHUP != 0 {
        Peer::HungUp
    } else {
        Peer::Open
    }
}
