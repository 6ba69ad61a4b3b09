//! The event-based dispatcher: mio (epoll) readiness loops, one per thread.
//!
//! Each reactor accepts on its own `SO_REUSEPORT` listener, owns its
//! connections outright and is one fan-out group: a publish reaches it once,
//! through its [`Inbox`], and it writes to its own subscribers.
//!
//! # Buffer ownership
//! Reads go into one buffer per reactor; a [`Conn`] copies only the part of a
//! request that is still incomplete. An idle subscriber holds its socket, its
//! `Conn` and a timer entry: no buffer.
//!
//! # Draining readiness
//! mio is edge-triggered: a readable connection is read until `WouldBlock`
//! (or EOF), and output is written until `WouldBlock`, after which writable
//! interest is registered until the output is gone.
//!
//! # Stopping
//! Publishing has stopped before the reactors are told ([`crate`]
//! `# Stopping`), so every accepted message is in the inboxes by then. A
//! reactor that sees the stop flag leaves its loop and, in [`Reactor::drain`]:
//! stops accepting (the listener leaves the poll set), drains its inbox into
//! its connections, ends every connection ([`Conn::handle_shutdown`]: a
//! long-poll held with no message closes at once), and goes on polling only to
//! write what is queued and to see clients go, until no connection is left or
//! [`crate::STOP_GRACE`] has passed. Connections left then are cut off.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, IoSlice, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use comet::{Conn, Message};
use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::shared::{Group, Inbox, LocalSubs, Shared};
use crate::{listen, settings_json, Kind, Options, Running};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKE: Token = Token(usize::MAX);
/// Most `IoSlice`s handed to one `writev`.
const MAX_IOV: usize = 64;
/// Pause before accepting again when the process is out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Interval of housekeeping: giving back memory kept from a peak.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// A reactor's inbox: messages from any thread, one wake-up per burst.
struct ReactorInbox {
    tx: Sender<Arc<Message>>,
    waker: Waker,
    /// Set when a wake-up is on its way, so a burst of publishes costs one.
    notified: AtomicBool,
}

impl Inbox for ReactorInbox {
    fn deliver(&self, message: &Arc<Message>) {
        // The receiver lives as long as the reactor; after it ends, dropping is right.
        let _ = self.tx.send(message.clone());
        if !self.notified.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }
}

struct Entry {
    stream: TcpStream,
    conn: Conn,
    /// The earliest deadline already in the timer heap for this entry.
    scheduled: Option<Instant>,
    /// Tells a reused slab key from the connection a timer was set for.
    generation: u32,
    writable: bool,
}

struct Reactor {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Entry>,
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    inbox: Arc<ReactorInbox>,
    rx: Receiver<Arc<Message>>,
    group: Group,
    local: LocalSubs,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    buf: Box<[u8]>,
    generation: u32,
    accept_paused_until: Option<Instant>,
    /// A descriptor held back for answering 503 when the process has no other.
    spare: Option<std::fs::File>,
    next_housekeeping: Instant,
}

pub fn start(opts: &Options) -> io::Result<Running> {
    let shared = Arc::new(Shared::new(
        opts.config.clone(),
        Kind::Reactor.name(),
        settings_json(Kind::Reactor, opts),
    ));
    let listeners = listen::listeners(opts.listen, opts.threads.max(1))?;
    let addr = listeners[0].local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut inboxes = Vec::new();
    let mut threads = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        l.set_nonblocking(true)?;
        let poll = Poll::new()?;
        let mut listener = TcpListener::from_std(l);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let inbox = Arc::new(ReactorInbox {
            tx,
            waker: Waker::new(poll.registry(), WAKE)?,
            notified: AtomicBool::new(false),
        });
        inboxes.push(inbox.clone());
        let mut reactor = Reactor {
            poll,
            listener,
            conns: Slab::new(),
            timers: BinaryHeap::new(),
            group: Group(inbox.clone()),
            inbox,
            rx,
            local: LocalSubs::default(),
            shared: shared.clone(),
            stop: stop.clone(),
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            generation: 0,
            accept_paused_until: None,
            spare: std::fs::File::open("/dev/null").ok(),
            next_housekeeping: Instant::now() + HOUSEKEEPING,
        };
        threads.push(
            thread::Builder::new()
                .name(format!("reactor-{i}"))
                .spawn(move || reactor.run())?,
        );
    }
    let stop_fn = move || {
        // Publishing has stopped already; `drain` relies on it.
        stop.store(true, Ordering::SeqCst);
        for inbox in &inboxes {
            let _ = inbox.waker.wake();
        }
        for t in threads {
            let _ = t.join();
        }
    };
    Ok(Running::new(addr, shared, Box::new(stop_fn)))
}

impl Reactor {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        // Acquire: pairs with the SeqCst store in `stop_fn`, so the messages
        // published before it are in the inbox when `drain` looks.
        while !self.stop.load(Ordering::Acquire) {
            let timeout = self.next_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("reactor: poll failed: {e}");
                break;
            }
            let now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(now),
                    WAKE => self.drain_inbox(now),
                    Token(key) => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.read(key, now);
                        }
                        if ev.is_writable() && self.conns.contains(key) {
                            self.flush(key);
                        }
                        self.after(key, now);
                    }
                }
            }
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
                self.accept(now);
            }
            let now = Instant::now();
            self.fire_timers(now);
            if now >= self.next_housekeeping {
                self.housekeeping();
                self.next_housekeeping = now + HOUSEKEEPING;
            }
        }
        self.drain(&mut events);
    }

    /// Stops gracefully (see `# Stopping`).
    fn drain(&mut self, events: &mut Events) {
        let deadline = Instant::now() + crate::STOP_GRACE;
        let _ = self.poll.registry().deregister(&mut self.listener);
        self.accept_paused_until = None;
        let now = Instant::now();
        self.drain_inbox(now);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.conns[key].conn.handle_shutdown();
            self.after(key, now);
        }
        while !self.conns.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if let Err(e) = self.poll.poll(events, Some(deadline - now)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            let now = Instant::now();
            for ev in events.iter() {
                let Token(key) = ev.token();
                if ev.token() == LISTENER || ev.token() == WAKE || !self.conns.contains(key) {
                    continue;
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.read(key, now);
                }
                if ev.is_writable() && self.conns.contains(key) {
                    self.flush(key);
                }
                self.after(key, now);
            }
        }
        // Clients that did not take their output in time: cut off.
        let now = Instant::now();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.conns[key].conn.handle_close();
            self.after(key, now);
        }
    }

    fn next_timeout(&self, now: Instant) -> Option<Duration> {
        let timer = self.timers.peek().map(|Reverse((t, _, _))| *t);
        let next = [timer, self.accept_paused_until]
            .into_iter()
            .flatten()
            .fold(self.next_housekeeping, Instant::min);
        Some(next.saturating_duration_since(now))
    }

    /// Gives back what a peak of connections left behind: the slab's and
    /// the local map's room, timer entries of connections long gone, and (once
    /// per large drop, for the whole process) the allocator's free pages.
    /// Each part costs O(capacity) only when it is mostly unused.
    fn housekeeping(&mut self) {
        let cap = self.conns.capacity();
        if cap > 1024 && self.conns.len() < cap / 4 {
            // Drops the vacant slots past the last key in use; keys stay valid.
            self.conns.shrink_to_fit();
        }
        self.local.shrink(self.conns.capacity());
        if self.timers.len() > 2 * self.conns.len() + 1024 {
            let conns = &self.conns;
            self.timers.retain(|Reverse((t, key, generation))| {
                conns
                    .get(*key)
                    .is_some_and(|e| e.generation == *generation && e.scheduled == Some(*t))
            });
        }
        if self.timers.capacity() > 1024 && self.timers.len() < self.timers.capacity() / 4 {
            self.timers.shrink_to(self.timers.len() * 2);
        }
        self.shared.maybe_trim();
    }

    fn accept(&mut self, now: Instant) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, Token(key), Interest::READABLE)
                    {
                        eprintln!("reactor: register failed: {e}");
                        self.shared.conn_refused();
                        continue;
                    }
                    self.generation = self.generation.wrapping_add(1);
                    entry.insert(Entry {
                        stream,
                        conn: Conn::new(self.shared.config.clone(), now),
                        scheduled: None,
                        generation: self.generation,
                        writable: false,
                    });
                    self.shared.conn_opened();
                    self.schedule(key);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // Out of descriptors: rather than leave clients hanging in
                    // the backlog, free the spare, take the connection, answer
                    // 503 and close it, then take the spare back.
                    match self.spare.take() {
                        Some(f) => {
                            drop(f);
                            let shed = self.listener.accept();
                            if let Ok((mut stream, _)) = shed {
                                let _ = stream.write(comet::conn::service_unavailable());
                                self.shared.conn_refused();
                            }
                            self.spare = std::fs::File::open("/dev/null").ok();
                            if self.spare.is_none() {
                                self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                                return;
                            }
                        }
                        None => {
                            self.spare = std::fs::File::open("/dev/null").ok();
                            self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                            return;
                        }
                    }
                }
                Err(_) => {
                    // ENOBUFS and the like: retry soon rather than spin.
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    fn drain_inbox(&mut self, now: Instant) {
        self.inbox.notified.store(false, Ordering::Release);
        while let Ok(msg) = self.rx.try_recv() {
            for key in self.local.keys(msg.channel()) {
                if let Some(e) = self.conns.get_mut(key) {
                    self.shared.deliver(&mut e.conn, &msg, now);
                    self.after(key, now);
                }
            }
        }
    }

    fn read(&mut self, key: usize, now: Instant) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        loop {
            match e.stream.read(&mut self.buf) {
                Ok(0) => {
                    e.conn.handle_eof(now);
                    return;
                }
                Ok(n) => {
                    e.conn.handle_read(&self.buf[..n], now);
                    // Answer events between reads: the conn takes no more
                    // input while one is pending.
                    let group = &self.group;
                    let local = &mut self.local;
                    self.shared
                        .drain_events(&mut e.conn, group, now, |ch, joined| {
                            local.update(ch, key, joined)
                        });
                    if e.conn.is_done() {
                        return;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    e.conn.handle_close();
                    return;
                }
            }
        }
    }

    /// Writes pending output until done or `WouldBlock`.
    fn flush(&mut self, key: usize) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        while e.conn.has_pending() {
            let slices: Vec<IoSlice<'_>> = e
                .conn
                .pending()
                .iter()
                .take(MAX_IOV)
                .map(|b| IoSlice::new(b))
                .collect();
            match e.stream.write_vectored(&slices) {
                Ok(0) => {
                    e.conn.handle_close();
                    return;
                }
                Ok(n) => e.conn.advance(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    e.conn.handle_close();
                    return;
                }
            }
        }
    }

    /// After any input: answer events, write, adjust interest, close or
    /// reschedule.
    fn after(&mut self, key: usize, now: Instant) {
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        let local = &mut self.local;
        self.shared
            .drain_events(&mut e.conn, &self.group, now, |ch, joined| {
                local.update(ch, key, joined)
            });
        self.flush(key);
        let e = &mut self.conns[key];
        // Closing can raise an Unsubscribe (a write failed): answer it too.
        let local = &mut self.local;
        self.shared
            .drain_events(&mut e.conn, &self.group, now, |ch, joined| {
                local.update(ch, key, joined)
            });
        if e.conn.is_done() {
            let mut e = self.conns.remove(key);
            let _ = self.poll.registry().deregister(&mut e.stream);
            self.shared.conn_closed();
            return;
        }
        let want_write = e.conn.has_pending();
        if want_write != e.writable {
            e.writable = want_write;
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut e.stream, Token(key), interest)
                .is_err()
            {
                e.conn.handle_close();
                return self.after(key, now);
            }
        }
        self.schedule(key);
    }

    /// Puts the conn's deadline in the heap unless an earlier one is there.
    fn schedule(&mut self, key: usize) {
        let e = &mut self.conns[key];
        if let Some(d) = e.conn.poll_timeout() {
            if e.scheduled.is_none_or(|s| d < s) {
                e.scheduled = Some(d);
                self.timers.push(Reverse((d, key, e.generation)));
            }
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((t, key, generation))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(e) = self.conns.get_mut(key) else {
                continue;
            };
            if e.generation != generation || e.scheduled != Some(t) {
                continue;
            }
            e.scheduled = None;
            if e.conn.poll_timeout().is_some_and(|d| d <= now) {
                e.conn.handle_timeout(now);
            }
            self.after(key, now);
        }
    }
}
