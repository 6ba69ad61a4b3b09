//! One connection, one task: the loop a tokio user writes, a `select!`
//! over the socket, the subscription's broadcast receiver, the
//! connection's deadline and the stop.
//!
//! # Memory of an idle connection
//! Nothing is kept across an `.await` that an idle connection does not
//! need: the read buffer and the `writev` slices live on the worker's stack
//! inside plain functions called once the socket is ready
//! (`poll_read_ready`, then `try_read`), not in the task's future; readiness
//! goes through `poll_*_ready`, whose wakers live in the socket's
//! registration (a `readable()` future would be 152 bytes more), and the
//! deadline in the dispatcher's table (`deadlines.rs`), not in a `Sleep` of
//! 112 bytes. The socket and the deadline are one wait, a future of two
//! references (the [`Io`] and the `Conn`). A subscribed connection waits on
//! its receiver and that; one waiting for an answer given later (a node's)
//! on its answer path and that, in one future; any other on the stop token
//! and that: waits that never overlap, so the future holds the largest,
//! not all (the stop reaches a subscriber through its receiver, see
//! `fanout.rs`, `# Stopping`). Measured (release, 2026-12-02, `size_of`):
//! the future is 264 bytes: the `Task` 144 (its `Conn` 64, the
//! subscription 24, the [`Io`] 56: the socket 32, the token, the fan-out,
//! the deadline's key and the flags), the largest wait 88 (the token's
//! `cancelled()` 72; the receiver's `recv()`, its waiter inside, is 64),
//! the state and padding 32. tokio puts it in a task cell of 384 bytes
//! (header, scheduler, id and trailer are 104, rounded up to 128) and the
//! socket's registration in another 128-aligned block of 256: 640 bytes
//! asked of the allocator per idle subscriber, and about 56 in the
//! deadlines' slab and heap (`examples/tokio_idle.rs` counts them). glibc's
//! malloc puts a header and the gap to the next 128-byte boundary beside
//! each of the two blocks, which `serve` keeps out of fastbins for tokio
//! (`src/main.rs`, `malloc_tunables`), so that they coalesce.
//!
//! # Stopping
//! When the stop is raised (after publishing has stopped), a subscribed
//! task's receiver hands on every message it still holds and then ends,
//! another task's token is cancelled; either ends the connection
//! ([`Conn::handle_shutdown`]) and goes on writing until its output is out.
//! A task waiting for an answer given later (a node's, see `fanout.rs`,
//! `# Answers given later`) does not wait on the token meanwhile, which
//! keeps its wait the smallest: it hears of the stop from the token once
//! the answer has come (the broker's link answers or refuses every waiter
//! promptly), or else is dropped with the runtime after the grace.
//! The dispatcher's stop waits for that for [`crate::STOP_GRACE`], then
//! shuts the runtime down, which drops the tasks left: `Drop` closes their
//! connection in the core and removes its subscription, as it does for a
//! task that panicked.

use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use comet::{Conn, Message};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::fanout::{Fanout, Slot, TaskBackend};
use crate::deferred::Reply;

/// Bytes read per `try_read` (on the worker's stack).
const READ_BUF: usize = 4096;
/// Slices per `writev`.
const MAX_IOV: usize = 64;

/// What woke the task.
enum Woke {
    Stop,
    Message(Result<Arc<Message>, RecvError>),
    /// What came on the answer path (`None`: it closed unanswered).
    Answer(Option<Box<Reply>>),
    Readable,
    Writable,
    Deadline,
    /// The socket's readiness failed: the connection is unusable.
    Failed,
}

/// One connection's task.
pub(super) struct Task {
    conn: Conn,
    sub: Slot,
    io: Io,
}

/// What a connection's waits read besides its `Conn`: one reference for
/// all of it in the wait (see `# Memory of an idle connection`).
struct Io {
    stream: TcpStream,
    stop: CancellationToken,
    stopping: bool,
    /// The client sent its last byte (or the socket failed): readiness to
    /// read would only say so again and again.
    read_closed: bool,
    /// The connection's slot in the dispatcher's deadlines.
    deadline: u32,
    /// The dispatcher's channels. Declared last, so that it drops last:
    /// counts the close once the socket is closed.
    fanout: Open,
}

/// Counts a connection open from accept until dropped.
struct Open(Arc<Fanout>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.shared.conn_closed();
    }
}

impl Task {
    pub(super) fn new(
        stream: TcpStream,
        accepted: Instant,
        fanout: &Arc<Fanout>,
        stop: CancellationToken,
    ) -> Task {
        let _ = stream.set_nodelay(true);
        fanout.shared.conn_opened(None);
        Task {
            conn: Conn::new(fanout.shared.config.clone(), accepted),
            sub: Slot::IDLE,
            io: Io {
                stream,
                stop,
                stopping: false,
                read_closed: false,
                deadline: fanout.deadlines.open(),
                fanout: Open(fanout.clone()),
            },
        }
    }

    /// Serves the connection until it closes; the task is this future.
    // Not an `async fn`, and the loop not in one either: see the comment
    // inside.
    #[allow(clippy::manual_async_fn)]
    pub(super) fn run(mut self) -> impl Future<Output = ()> + Send {
        // Captured by the block and used in place: an `async fn` taking
        // `self` by value would keep it twice in its state (its argument,
        // and the local it moves into), 288 bytes more per connection; a
        // loop in an `async fn` of `&mut self` awaited here, its reference
        // and its own state's padding, 16 more.
        async move {
            loop {
                self.settle();
                if self.conn.is_done() {
                    return;
                }
                let (io, conn) = (&self.io, &self.conn);
                let waits = io.waits(conn);
                // Three waits, never two at once, so that the task's state
                // holds the largest of them, not all (see `# Memory of an
                // idle connection`): a subscriber hears of the stop from its
                // receiver, a connection waiting for an answer given later
                // once the answer has come (see `# Stopping`), any other
                // connection from the token.
                let woke = match &mut self.sub {
                    Slot::Subscribed(sub) if !io.stopping => {
                        tokio::select! {
                            biased;
                            m = sub.rx.recv() => Woke::Message(m),
                            w = io.wait(conn), if waits => w,
                        }
                    }
                    Slot::Waiting(Some(wait)) => io.wait_or_answer(conn, &mut wait.answers).await,
                    _ => {
                        tokio::select! {
                            biased;
                            () = io.stop.cancelled(), if !io.stopping => Woke::Stop,
                            w = io.wait(conn), if waits => w,
                            // Nothing left to wait for (stopping, the client gone).
                            else => Woke::Failed,
                        }
                    }
                };
                self.on_woke(woke);
            }
        }
    }

    fn on_woke(&mut self, woke: Woke) {
        let now = Instant::now();
        match woke {
            Woke::Stop => self.on_stop(now),
            Woke::Message(m) => self.on_message(m, now),
            Woke::Answer(a) => self.on_answer(a, now),
            Woke::Readable => self.read(now),
            // `settle` writes at the top of the loop.
            Woke::Writable => {}
            Woke::Deadline => self.conn.handle_timeout(now),
            Woke::Failed => self.conn.handle_close(),
        }
    }

    /// The dispatcher stops: hand on what the receiver holds (accepted
    /// before publishing stopped), then end the connection.
    fn on_stop(&mut self, now: Instant) {
        self.io.stopping = true;
        while let Slot::Subscribed(sub) = &mut self.sub {
            match sub.rx.try_recv() {
                Ok(m) => self.on_message(Ok(m), now),
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => {
                    self.on_message(Err(RecvError::Lagged(n)), now)
                }
                Err(_) => break,
            }
        }
        self.conn.handle_shutdown();
    }

    fn on_message(&mut self, m: Result<Arc<Message>, RecvError>, now: Instant) {
        match m {
            Ok(m) => {
                let current = matches!(self.conn.subscription(), Some((c, _)) if c == m.channel());
                if current {
                    self.io.fanout.0.shared.deliver(&mut self.conn, &m, now);
                    self.drain(now);
                }
            }
            Err(RecvError::Lagged(_)) => {
                // Messages were lost for this subscriber: drop it, never silently.
                self.conn.handle_close();
                self.io
                    .fanout
                    .0
                    .shared
                    .counters
                    .dropped_slow
                    .fetch_add(1, Ordering::Relaxed);
            }
            // The dispatcher stops (`Fanout::close`), and the receiver has
            // handed on everything it held.
            Err(RecvError::Closed) => self.on_stop(now),
        }
    }

    /// The answer waited for came (see `fanout.rs`, `# Answers given
    /// later`): the answer path is dropped, and the answer handed on.
    fn on_answer(&mut self, reply: Option<Box<Reply>>, now: Instant) {
        match reply {
            Some(reply) => {
                self.sub.answered();
                let mut backend = TaskBackend {
                    fanout: &self.io.fanout.0,
                    sub: &mut self.sub,
                };
                crate::backend::hand_answer(&mut backend, &mut self.conn, reply.answer, now)
            }
            // Every waiter is answered before it is dropped; should one not
            // be, the broker is what failed to answer.
            None => {
                self.sub.abandoned();
                if self.conn.awaits_answer() {
                    self.conn.handle_refused(comet::Refusal::Broker, now)
                }
            }
        }
        self.drain(now);
    }

    /// The socket is readable: one read, on the worker's stack.
    fn read(&mut self, now: Instant) {
        let mut buf = [0u8; READ_BUF];
        match self.io.stream.try_read(&mut buf) {
            Ok(0) => {
                self.io.read_closed = true;
                self.conn.handle_eof(now)
            }
            Ok(n) => self.conn.handle_read(&buf[..n], now),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => {
                self.io.read_closed = true;
                self.conn.handle_close()
            }
        }
    }

    /// Answers the events raised, writes what the socket takes now, answers
    /// what the writing raised, and shuts the write side down if a
    /// lingering close asks.
    fn settle(&mut self) {
        let now = Instant::now();
        self.drain(now);
        self.write();
        self.drain(now);
        if self.conn.poll_shutdown(now) {
            // A failure means the peer is gone: the next read says so.
            let _ = socket2::SockRef::from(&self.io.stream).shutdown(Shutdown::Write);
        }
    }

    fn drain(&mut self, now: Instant) {
        let mut backend = TaskBackend {
            fanout: &self.io.fanout.0,
            sub: &mut self.sub,
        };
        comet::glue::drain(&mut self.conn, &mut backend, now);
    }

    /// Writes what is pending until the socket would block.
    fn write(&mut self) {
        while self.conn.has_pending() {
            let written = {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let n = self.conn.poll_transmit(&mut iov);
                self.io.stream.try_write_vectored(&iov[..n])
            };
            match written {
                Ok(0) => return self.conn.handle_close(),
                Ok(n) => self.conn.handle_written(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.conn.handle_close(),
            }
        }
    }
}

impl Drop for Task {
    /// However the task ends (done, dropped by the runtime's shutdown, a
    /// panic): the connection is closed in the core and its subscription
    /// removed before the socket closes.
    fn drop(&mut self) {
        if !self.conn.is_done() {
            self.conn.handle_close();
        }
        self.drain(Instant::now());
        self.io.fanout.0.deadlines.close(self.io.deadline);
    }
}

impl Io {
    /// Whether there is anything but the receiver, the answer path or the
    /// stop to wait for: the socket's readiness to read (unless the client
    /// has sent its last byte), to write (while output is pending), the
    /// deadline.
    fn waits(&self, conn: &Conn) -> bool {
        !self.read_closed || conn.has_pending() || conn.poll_timeout().is_some()
    }

    /// Waits for what [`Io::waits`] names.
    // Readiness through `poll_*_ready` (the waker is kept in the socket's
    // registration) and the deadline in the dispatcher's table (see
    // `deadlines.rs`), not futures of their own: whatever a wait holds is
    // part of every idle connection's task. This one holds two references.
    fn wait<'a>(&'a self, conn: &'a Conn) -> impl Future<Output = Woke> + 'a {
        poll_fn(move |cx| self.poll(conn, cx))
    }

    /// [`Io::wait`], and the answer on `answers` of a connection waiting
    /// for one (see `fanout.rs`, `# Answers given later`).
    // One future for both (`poll_recv` keeps its waker in the channel).
    fn wait_or_answer<'a>(
        &'a self,
        conn: &'a Conn,
        answers: &'a mut UnboundedReceiver<Box<Reply>>,
    ) -> impl Future<Output = Woke> + 'a {
        poll_fn(move |cx| {
            if let Poll::Ready(a) = answers.poll_recv(cx) {
                return Poll::Ready(Woke::Answer(a));
            }
            self.poll(conn, cx)
        })
    }

    fn poll(&self, conn: &Conn, cx: &mut Context<'_>) -> Poll<Woke> {
        if let Some(at) = conn.poll_timeout() {
            if at <= Instant::now() {
                return Poll::Ready(Woke::Deadline);
            }
            self.fanout.0.deadlines.arm(self.deadline, at, cx.waker());
        }
        if !self.read_closed {
            if let Poll::Ready(r) = self.stream.poll_read_ready(cx) {
                return Poll::Ready(r.map_or(Woke::Failed, |()| Woke::Readable));
            }
        }
        if conn.has_pending() {
            if let Poll::Ready(r) = self.stream.poll_write_ready(cx) {
                return Poll::Ready(r.map_or(Woke::Failed, |()| Woke::Writable));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest future whose task cell is 384 bytes: tokio adds 104
    /// (header, scheduler, id, the stage's tag, trailer) and rounds the cell
    /// up to 128. One byte more and every connection costs 128 more.
    const MOST: usize = 280;

    #[test]
    fn a_connections_task_fits_a_384_byte_cell() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap());
            let ((stream, _), _client) =
                tokio::join!(async { listener.accept().await.unwrap() }, async {
                    client.await.unwrap()
                });
            let shared = Arc::new(crate::Shared::new(
                comet::Config::default(),
                "tokio",
                serde_json::json!({}),
                0,
            ));
            let fanout = Arc::new(Fanout::new(shared));
            let task = Task::new(stream, Instant::now(), &fanout, CancellationToken::new());
            let future = task.run();
            let size = std::mem::size_of_val(&future);
            assert!(
                size <= MOST,
                "a connection's future is {size} bytes, more than {MOST}"
            );
        });
    }
}
