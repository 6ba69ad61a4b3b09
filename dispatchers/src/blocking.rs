//! Blocking I/O for the two thread dispatchers: one connection served by one
//! thread with blocking `std::net`, the accept loop they share, and the
//! separate publish listener (`serve --publish-listen`) of every dispatcher.
//!
//! A connection thread waits on one thing at a time. While the peer may send a
//! request ([`Conn::is_reading`]) it blocks in `read` with the connection's
//! deadline as the read timeout. While it holds a long-poll or a stream it
//! blocks on its own inbox (a [`Group`] of one connection) until a message,
//! the deadline, or a hang-up. It does not read the socket then; the
//! dispatcher's [`Watcher`] does the watching for every held connection and
//! wakes the thread when its client closes or resets, so that a disconnect
//! storm frees threads, descriptors and subscriptions at once rather than at
//! the next heartbeat. Without a watcher (the publish listener) a vanished
//! client is noticed at the next write, or at the next heartbeat or poll
//! timeout, when the thread checks the socket before writing.
//!
//! # Deadlines run from accept
//! A connection may wait before a thread serves it (in the thread pool's
//! queue), and its first request's 10 s header deadline counts from accept,
//! not from when a thread took it (DESIGN section 3). A connection taken
//! after its deadline is read once without blocking: a request that arrived
//! whole meanwhile is served, anything less is answered `408` and closed at
//! once, so a queue of slowloris connections drains as fast as it is reached.
//!
//! # Inbox
//! The inbox is bounded ([`INBOX_CAPACITY`] messages). [`Inbox::deliver`] runs
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

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use comet::{Conn, Message};
use slab::Slab;

use crate::hangup::{HangUp, Watch, Watcher};
use crate::shared::{Group, Inbox};
use crate::Shared;

/// Messages an inbox holds before its subscriber is dropped as too slow.
pub const INBOX_CAPACITY: usize = 256;

/// A write that makes no progress for this long drops the client as too slow.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes read per `read` call (on the connection thread's stack).
const READ_BUF: usize = 2048;

/// Slices per `writev`.
const MAX_IOV: usize = 16;

/// Stack of the publish listener's connection threads (std threads).
const PUBLISH_THREAD_STACK: usize = 256 * 1024;

/// Times an acceptor backed off because the process (or system) had no free
/// descriptor and it could not shed the connection with a `503`.
static ACCEPT_BACKOFFS: AtomicU64 = AtomicU64::new(0);

/// How many times any acceptor of this process backed off for want of a descriptor.
pub fn accept_backoffs() -> u64 {
    ACCEPT_BACKOFFS.load(Ordering::Relaxed)
}

#[derive(Default)]
struct InboxState {
    queue: VecDeque<Arc<Message>>,
    overflow: bool,
    /// The watcher saw the client close or reset.
    hangup: bool,
    /// The dispatcher is stopping (see `# Stopping`).
    stop: bool,
}

/// What ended a wait on the inbox.
#[derive(Default)]
struct Woken {
    messages: VecDeque<Arc<Message>>,
    overflow: bool,
    hangup: bool,
    stop: bool,
}

/// The inbox of one connection thread.
#[derive(Default)]
struct ThreadInbox {
    state: Mutex<InboxState>,
    ready: Condvar,
}

impl ThreadInbox {
    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a message arrives, the inbox overflows, the client hangs
    /// up, the dispatcher stops, or `deadline` passes; takes every message queued.
    fn wait(&self, deadline: Option<Instant>) -> Woken {
        let mut st = self.lock();
        loop {
            if !st.queue.is_empty() || st.overflow || st.hangup || st.stop {
                return Woken {
                    messages: std::mem::take(&mut st.queue),
                    overflow: st.overflow,
                    hangup: std::mem::take(&mut st.hangup),
                    stop: st.stop,
                };
            }
            match deadline {
                None => st = self.ready.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if d <= now {
                        return Woken::default();
                    }
                    st = self
                        .ready
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }

    fn is_stopped(&self) -> bool {
        self.lock().stop
    }

    fn stop(&self) {
        self.lock().stop = true;
        self.ready.notify_one();
    }

    /// Throws away what is queued: messages that arrived for a subscription
    /// that has ended since.
    fn clear(&self) {
        let mut st = self.lock();
        if !st.queue.is_empty() {
            st.queue = VecDeque::new();
        }
        // A hang-up seen while reading is the reader's to find (EOF).
        st.hangup = false;
    }
}

impl HangUp for ThreadInbox {
    fn hung_up(&self) {
        self.lock().hangup = true;
        self.ready.notify_one();
    }
}

impl Inbox for ThreadInbox {
    fn deliver(&self, message: &Arc<Message>) {
        let mut st = self.lock();
        if st.queue.len() >= INBOX_CAPACITY {
            st.overflow = true;
            drop(st);
            self.ready.notify_one();
            return;
        }
        let wake = st.queue.is_empty();
        st.queue.push_back(message.clone());
        drop(st);
        if wake {
            self.ready.notify_one();
        }
    }
}

/// The connections a thread dispatcher serves, so that a stop can wake each
/// one and wait for it to end (see `# Stopping`).
#[derive(Default)]
pub(crate) struct Live {
    state: Mutex<LiveState>,
    /// Signalled when the last connection unregisters.
    empty: Condvar,
}

#[derive(Default)]
struct LiveState {
    /// Each connection's socket and inbox. The socket stays open while it is
    /// here (its thread unregisters before closing it), so shutting it down
    /// under the lock never reaches a descriptor number reused meanwhile.
    conns: Slab<(RawFd, Arc<ThreadInbox>)>,
    stopped: bool,
}

impl Live {
    fn lock(&self) -> MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a connection; `None` once stopped (the caller closes it at once).
    fn register(&self, fd: RawFd, inbox: &Arc<ThreadInbox>) -> Option<usize> {
        let mut st = self.lock();
        (!st.stopped).then(|| st.conns.insert((fd, inbox.clone())))
    }

    /// Removes a connection; call before its socket closes.
    fn unregister(&self, key: usize) {
        let mut st = self.lock();
        st.conns.try_remove(key);
        if st.conns.is_empty() {
            self.empty.notify_all();
        }
    }

    /// Marks every connection stopped and wakes its thread, wherever it waits;
    /// connections registering later are refused.
    pub(crate) fn stop(&self) {
        let mut st = self.lock();
        st.stopped = true;
        for (_, (fd, inbox)) in st.conns.iter() {
            // The mark first: a thread woken by the shutdown below (EOF, or
            // the watcher's hang-up) finds it and delivers before closing.
            inbox.stop();
            // SAFETY: `fd` is open while registered (see `LiveState::conns`).
            unsafe {
                libc::shutdown(*fd, libc::SHUT_RD);
            }
        }
    }

    /// Waits until every connection has ended or `deadline` passes; then
    /// shuts the rest down whole, which ends a write blocked on a client that
    /// does not read, and gives their threads a moment to go.
    pub(crate) fn wait(&self, deadline: Instant) {
        let mut st = self.lock();
        while !st.conns.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .empty
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        for (_, (fd, _)) in st.conns.iter() {
            // SAFETY: as in `stop`.
            unsafe {
                libc::shutdown(*fd, libc::SHUT_RDWR);
            }
        }
        // The threads now fail at once; they are not joined beyond this.
        let end = Instant::now() + Duration::from_millis(100);
        while !st.conns.is_empty() && Instant::now() < end {
            st = self
                .empty
                .wait_timeout(st, end.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Serves a connection accepted at `accepted` on the calling thread until it
/// closes or `live` stops; `watcher` watches it while it is held.
pub(crate) fn serve_conn_until(
    stream: TcpStream,
    accepted: Instant,
    shared: &Arc<Shared>,
    live: &Live,
    watcher: Option<&Watcher>,
) {
    shared.conn_opened();
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
    /// events the writing raised (an unsubscribe when the client is gone).
    fn settle(&mut self) {
        self.drain();
        self.flush();
        self.drain();
    }

    fn drain(&mut self) {
        self.shared
            .drain_events(&mut self.conn, &self.group, Instant::now(), |_, _| {});
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
        if self.watch.is_none() {
            if let Some(w) = self.watcher {
                // Failing to watch (ENOMEM) leaves the heartbeat check.
                self.watch = w.watch(self.stream.as_raw_fd(), self.inbox.clone()).ok();
            }
        }
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
            let mut st = self.inbox.lock();
            let mut messages = messages;
            messages.append(&mut st.queue);
            st.queue = messages;
            return;
        }
        if hangup {
            match peer_state(&self.stream) {
                // An edge from earlier that no longer holds: wait on.
                Peer::Open => {}
                Peer::HungUp => return self.conn.handle_eof(now),
                Peer::Failed => return self.conn.handle_close(),
            }
        }
        if messages.is_empty() {
            if deadline.is_some_and(|d| d <= now) {
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
                let mut slices = [IoSlice::new(&[]); MAX_IOV];
                let mut k = 0;
                for b in self.conn.pending().iter().take(MAX_IOV) {
                    slices[k] = IoSlice::new(b);
                    k += 1;
                }
                self.stream.write_vectored(&slices[..k])
            };
            match written {
                Ok(0) => return self.conn.handle_close(),
                Ok(n) => self.conn.advance(n),
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
/// hands each connection to `serve`.
///
/// # Out of descriptors
/// With no descriptor free, `accept` fails with `EMFILE` (or `ENFILE`) at
/// once, whether a connection is pending or not: retrying would spin hot, and
/// clients would hang in the backlog. The acceptor keeps one spare descriptor
/// (`/dev/null`) for that moment: it frees it, waits in `accept` for the next
/// connection, answers it `503` and closes it (counted in `refused`), and
/// takes the spare back. If the spare is gone (another thread took the
/// descriptor) it backs off for 10 ms (counted in [`accept_backoffs`]).
pub(crate) fn accept_loop(
    listener: &TcpListener,
    stop: &AtomicBool,
    shared: &Shared,
    mut serve: impl FnMut(TcpStream, Instant),
) {
    let mut spare = std::fs::File::open("/dev/null").ok();
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
        match err.raw_os_error() {
            Some(libc::EMFILE) | Some(libc::ENFILE) => {
                if !warned {
                    eprintln!(
                        "cometbench: accept: {err}: answering 503 to new connections until descriptors free up"
                    );
                    warned = true;
                }
                let shed = match spare.take() {
                    Some(f) => {
                        drop(f);
                        // Blocks until a connection arrives: with no
                        // descriptor free, `accept` fails at once even when
                        // none is pending.
                        let shed = match listener.accept() {
                            Ok((stream, _)) => {
                                refuse(stream, shared);
                                true
                            }
                            Err(_) => false,
                        };
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        // After the refused connection is closed, so that the
                        // spare takes back the descriptor it freed.
                        spare = std::fs::File::open("/dev/null").ok();
                        shed
                    }
                    None => {
                        spare = std::fs::File::open("/dev/null").ok();
                        false
                    }
                };
                if !shed {
                    ACCEPT_BACKOFFS.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            Some(libc::ENOBUFS) | Some(libc::ENOMEM) => {
                ACCEPT_BACKOFFS.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
            // The connection died in the backlog, or a signal: next one.
            Some(libc::ECONNABORTED)
            | Some(libc::EINTR)
            | Some(libc::EPROTO)
            | Some(libc::EPERM) => {}
            _ => {
                // Not expected (EINVAL once the listener is shut down without
                // `stop`): do not spin on it.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Serves publishing and `/stats` on a listener of its own (`--publish-listen`):
/// an acceptor thread, and one std thread per connection (publishers are few),
/// without a hang-up watcher. Returns the bound address and what stops it.
///
/// The stop ends the acceptor and wakes every connection (which closes once
/// its answer is written) without waiting for them: publishing has stopped
/// already, so a publish they still read is refused.
pub(crate) fn publish_listener(
    addr: SocketAddr,
    shared: Arc<Shared>,
) -> io::Result<(SocketAddr, Box<dyn FnOnce() + Send>)> {
    let listener = crate::listen::listener(addr)?;
    let bound = listener.local_addr()?;
    let waker = listener.try_clone()?;
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(Live::default());
    let acceptor = {
        let (stop, live) = (stop.clone(), live.clone());
        std::thread::Builder::new()
            .name("publish-accept".into())
            .spawn(move || {
                accept_loop(&listener, &stop, &shared, |stream, accepted| {
                    let (for_thread, live) = (shared.clone(), live.clone());
                    let spawned = std::thread::Builder::new()
                        .name("publish-conn".into())
                        .stack_size(PUBLISH_THREAD_STACK)
                        .spawn(move || {
                            serve_conn_until(stream, accepted, &for_thread, &live, None)
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
