//! One connection, one task: the loop a tokio user writes, a `select!`
//! over the socket, the subscription's broadcast receiver, the
//! connection's deadline and the stop.
//!
//! # Memory of an idle connection
//! Nothing is kept across an `.await` that an idle connection does not
//! need: the read buffer and the `writev` slices live on the worker's stack
//! inside plain functions called once the socket is ready
//! (`readable().await`, then `try_read`), not in the task's future. What a
//! task holds is its future (the `select!` branches' futures, a `Sleep`),
//! its `Conn`, the socket's registration with the I/O driver, and a
//! broadcast receiver. Measured (release, 2026-12-02): the future is 632
//! bytes, of which the `Task` (its `Conn`, 200) is 288, the `Sleep` 112, the
//! cancellation's future 72 and the receiver's about 80. Readiness goes
//! through `poll_read_ready`/`poll_write_ready`, whose wakers live in the
//! socket's registration: a `readable()` future would be 152 bytes more
//! each. tokio puts the future in a task cell aligned to 128 bytes (768 in
//! all) and the registration in another (256): with the core's 200 bytes
//! that is most of the 1,419 bytes an idle subscriber costs (`idle-10k`).
//!
//! # Stopping
//! When the stop is raised (after publishing has stopped), the task takes
//! every message its receiver still holds, ends the connection
//! ([`Conn::handle_shutdown`]) and goes on writing until its output is out.
//! The dispatcher's stop waits for that for [`crate::STOP_GRACE`], then
//! shuts the runtime down, which drops the tasks left: `Drop` closes their
//! connection in the core and removes its subscription, as it does for a
//! task that panicked.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use comet::{Conn, Message};
use tokio::net::TcpStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{sleep_until, Duration};
use tokio_util::sync::CancellationToken;

use super::fanout::{Fanout, Subscription, TaskBackend};

/// Bytes read per `try_read` (on the worker's stack).
const READ_BUF: usize = 4096;
/// Slices per `writev`.
const MAX_IOV: usize = 64;
/// Stands for "no deadline" in the one `Sleep` a task keeps.
const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// What woke the task.
enum Woke {
    Stop,
    Message(Result<Arc<Message>, RecvError>),
    Readable,
    Writable,
    Deadline,
    /// The socket's readiness failed: the connection is unusable.
    Failed,
}

/// One connection's task.
pub(super) struct Task {
    conn: Conn,
    sub: Option<Subscription>,
    stream: TcpStream,
    fanout: Arc<Fanout>,
    stop: CancellationToken,
    stopping: bool,
    /// The client sent its last byte (or the socket failed): readiness to
    /// read would only say so again and again.
    read_closed: bool,
    /// Declared last, so that it drops last: counts the close once the
    /// socket is closed.
    _open: Open,
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
            sub: None,
            stream,
            fanout: fanout.clone(),
            stop,
            stopping: false,
            read_closed: false,
            _open: Open(fanout.clone()),
        }
    }

    /// Serves the connection until it closes; the task is this future.
    // Not an `async fn`: see the comment inside.
    #[allow(clippy::manual_async_fn)]
    pub(super) fn run(mut self) -> impl std::future::Future<Output = ()> + Send {
        // Captured by the block and used in place: an `async fn` taking
        // `self` by value would keep it twice in its state (its argument,
        // and the local it moves into), 288 bytes more per connection.
        async move { self.serve().await }
    }

    async fn serve(&mut self) {
        let sleep = sleep_until(tokio::time::Instant::now() + FAR);
        tokio::pin!(sleep);
        loop {
            self.settle();
            if self.conn.is_done() {
                return;
            }
            let deadline = self.conn.poll_timeout();
            sleep.as_mut().reset(match deadline {
                Some(d) => d.into(),
                None => tokio::time::Instant::now() + FAR,
            });
            // Readiness through `poll_*_ready` (the waker is kept in the
            // socket's registration), not readiness futures: whatever a `select!` branch holds is part of every idle
            // connection's task (see `# Memory of an idle connection`).
            let woke = tokio::select! {
                biased;
                () = self.stop.cancelled(), if !self.stopping => Woke::Stop,
                // Evaluated even when disabled: a future that never ends then.
                m = recv(&mut self.sub), if self.sub.is_some() => Woke::Message(m),
                r = poll_fn(|cx| self.stream.poll_read_ready(cx)), if !self.read_closed => {
                    r.map_or(Woke::Failed, |()| Woke::Readable)
                }
                r = poll_fn(|cx| self.stream.poll_write_ready(cx)), if self.conn.has_pending() => {
                    r.map_or(Woke::Failed, |()| Woke::Writable)
                }
                () = &mut sleep, if deadline.is_some() => Woke::Deadline,
                // Nothing left to wait for (stopping, the client gone).
                else => Woke::Failed,
            };
            let now = Instant::now();
            match woke {
                Woke::Stop => self.on_stop(now),
                Woke::Message(m) => self.on_message(m, now),
                Woke::Readable => self.read(now),
                // `settle` writes at the top of the loop.
                Woke::Writable => {}
                Woke::Deadline => self.conn.handle_timeout(now),
                Woke::Failed => self.conn.handle_close(),
            }
        }
    }

    /// The dispatcher stops: hand on what the receiver holds (accepted
    /// before publishing stopped), then end the connection.
    fn on_stop(&mut self, now: Instant) {
        self.stopping = true;
        while let Some(sub) = &mut self.sub {
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
                    self.fanout.shared.deliver(&mut self.conn, &m, now);
                    self.drain(now);
                }
            }
            Err(RecvError::Lagged(_)) => {
                // Messages were lost for this subscriber: drop it, never silently.
                self.conn.handle_close();
                self.fanout
                    .shared
                    .counters
                    .dropped_slow
                    .fetch_add(1, Ordering::Relaxed);
            }
            // The topic went (it cannot while this receiver is counted).
            Err(RecvError::Closed) => self.sub = None,
        }
    }

    /// The socket is readable: one read, on the worker's stack.
    fn read(&mut self, now: Instant) {
        let mut buf = [0u8; READ_BUF];
        match self.stream.try_read(&mut buf) {
            Ok(0) => {
                self.read_closed = true;
                self.conn.handle_eof(now)
            }
            Ok(n) => self.conn.handle_read(&buf[..n], now),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => {
                self.read_closed = true;
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
            let _ = socket2::SockRef::from(&self.stream).shutdown(Shutdown::Write);
        }
    }

    fn drain(&mut self, now: Instant) {
        let mut backend = TaskBackend {
            fanout: &self.fanout,
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
                self.stream.try_write_vectored(&iov[..n])
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
    }
}

/// The next message of the subscription; with none, never.
async fn recv(sub: &mut Option<Subscription>) -> Result<Arc<Message>, RecvError> {
    match sub {
        Some(sub) => sub.rx.recv().await,
        None => std::future::pending().await,
    }
}
