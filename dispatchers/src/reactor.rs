//! The event-based dispatcher: mio (epoll) readiness loops, one per thread.
//!
//! Each reactor accepts on its own `SO_REUSEPORT` listener, owns its
//! connections outright and is one fan-out group: a publish reaches it once,
//! through its [`Mailbox`], and it writes to its own subscribers.
//!
//! # A loop turn
//! 1. Wait in `epoll_wait` for readiness, the earliest deadline, or the
//!    mailbox's waker.
//! 2. Read the clock once, then handle every event: accept, read until
//!    `WouldBlock` and write until `WouldBlock`, then *settle* the
//!    connection: answer its events against the hub, write, shut down or
//!    close it as it asks, and arm its deadline.
//! 3. Fire due deadlines (`expire`) and, once a second,
//!    housekeeping.
//!
//! The uring loop (`uring/ring.rs`) takes the same steps under the same
//! names; only the waiting differs.
//!
//! # Buffer ownership
//! Reads go into one buffer per reactor; a [`Conn`] copies only the part of a
//! request that is still incomplete. An idle subscriber holds its socket, its
//! `Conn` and a timer entry: no buffer. Writes borrow the `Conn`'s queue as
//! `IoSlice`s on the stack for one `writev`.
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
//! stops accepting (the listener leaves the poll set), delivers its inbox to
//! its connections, ends every connection ([`Conn::handle_shutdown`]: a
//! long-poll held with no message closes at once), and goes on polling only to
//! write what is queued and to see clients go, until no connection is left or
//! [`crate::STOP_GRACE`] has passed. Connections left then are cut off.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use comet::Conn;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::backend::GroupBackend;
use crate::deferred::{self, Item, Reply};
use crate::group::Group;
use crate::local::LocalSubs;
use crate::mailbox::Mailbox;
use crate::memory::Growth;
use crate::room::shrink_slab;
use crate::shared::Shared;
use crate::spare::Spare;
use crate::timers::{Armed, Tick, Timers};
use crate::{listen, settings_json, Kind, Options, Running};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKE: Token = Token(usize::MAX);
/// Most `IoSlice`s handed to one `writev`.
const MAX_IOV: usize = 64;
/// Pause before accepting again when the process is out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Interval of housekeeping: expiring channels, giving back memory kept from a peak.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// Per connection.
struct Slot {
    stream: TcpStream,
    conn: Conn,
    /// The tick of the deadline this slot has in the timer heap, if any.
    armed: Tick,
    /// Tells a reused slab key from the connection a timer was set for.
    gen: u32,
    /// Writable interest is registered.
    writable: bool,
}

impl Armed for Slot {
    fn armed(&mut self) -> &mut Tick {
        &mut self.armed
    }
}

struct Reactor {
    /// Which reactor of the dispatcher this is.
    index: usize,
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Slot>,
    timers: Timers,
    inbox: Arc<Mailbox<Waker>>,
    group: Group,
    local: LocalSubs,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    buf: Box<[u8]>,
    next_gen: u32,
    accept_paused_until: Option<Instant>,
    spare: Spare,
    next_housekeeping: Instant,
    growth: Growth,
}

pub fn start(opts: &Options) -> io::Result<Running> {
    let threads = opts.threads.max(1);
    let shared = Arc::new(Shared::for_options(
        opts,
        Kind::Reactor.name(),
        settings_json(Kind::Reactor, opts),
        threads,
    )?);
    let listeners = listen::listeners(opts.listen, threads, opts.reuse_port)?;
    let addr = listeners[0].local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut inboxes = Vec::new();
    let mut handles = Vec::new();
    for (index, l) in listeners.into_iter().enumerate() {
        l.set_nonblocking(true)?;
        let poll = Poll::new()?;
        let mut listener = TcpListener::from_std(l);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let inbox = Arc::new(Mailbox::new(Waker::new(poll.registry(), WAKE)?));
        inboxes.push(inbox.clone());
        let mut reactor = Reactor {
            index,
            poll,
            listener,
            conns: Slab::new(),
            timers: Timers::default(),
            group: Group(inbox.clone()),
            inbox,
            local: LocalSubs::default(),
            shared: shared.clone(),
            stop: stop.clone(),
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            next_gen: 0,
            accept_paused_until: None,
            spare: Spare::new(),
            next_housekeeping: Instant::now() + HOUSEKEEPING,
            growth: Growth::default(),
        };
        handles.push(
            thread::Builder::new()
                .name(format!("reactor-{index}"))
                .spawn(move || reactor.run())?,
        );
    }
    let stop_fn = move || {
        // Publishing has stopped already; `drain` relies on it.
        stop.store(true, Ordering::SeqCst);
        for inbox in &inboxes {
            inbox.wake();
        }
        for h in handles {
            let _ = h.join();
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
            if let Err(e) = self.wait(&mut events, Instant::now()) {
                eprintln!("reactor: poll failed: {e}");
                break;
            }
            let now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(now),
                    WAKE => self.deliver_inbox(now),
                    Token(key) => self.ready(key, ev, now),
                }
            }
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
                self.accept(now);
            }
            let now = Instant::now();
            self.expire(now);
            if now >= self.next_housekeeping {
                self.housekeeping(now);
                self.next_housekeeping = now + HOUSEKEEPING;
            }
        }
        self.drain(&mut events);
    }

    /// Waits for readiness, the wake-up, or the earliest deadline. `now` is
    /// the clock read at the start of the turn: a deadline may be seen late
    /// by the time the turn took, never early.
    fn wait(&mut self, events: &mut Events, now: Instant) -> io::Result<()> {
        // Housekeeping bounds the wait, so that a reactor left idle still
        // expires channels and gives back what a peak left behind.
        let next = [self.timers.next(), self.accept_paused_until]
            .into_iter()
            .flatten()
            .fold(self.next_housekeeping, Instant::min);
        match self
            .poll
            .poll(events, Some(next.saturating_duration_since(now)))
        {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            other => other,
        }
    }

    /// A connection is readable, writable, or gone.
    fn ready(&mut self, key: usize, ev: &mio::event::Event, now: Instant) {
        if !self.conns.contains(key) {
            return;
        }
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.read(key, now);
        }
        if ev.is_writable() {
            self.flush(key);
        }
        self.settle(key, now);
    }

    /// Stops gracefully (see `# Stopping`).
    fn drain(&mut self, events: &mut Events) {
        let deadline = Instant::now() + crate::STOP_GRACE;
        let _ = self.poll.registry().deregister(&mut self.listener);
        self.accept_paused_until = None;
        let now = Instant::now();
        self.deliver_inbox(now);
        for key in self.open_keys() {
            self.conns[key].conn.handle_shutdown();
            self.settle(key, now);
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
                match ev.token() {
                    LISTENER | WAKE => {}
                    Token(key) => self.ready(key, ev, now),
                }
            }
        }
        // Clients that did not take their output in time: cut off.
        let now = Instant::now();
        for key in self.open_keys() {
            self.conns[key].conn.handle_close();
            self.settle(key, now);
        }
    }

    fn open_keys(&self) -> Vec<usize> {
        self.conns.iter().map(|(k, _)| k).collect()
    }

    // ----- accepting -----

    fn accept(&mut self, now: Instant) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.open(stream, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // Out of descriptors (see `crate::spare`): rather than
                    // leave clients hanging in the backlog, answer the next
                    // one 503 with the spare's descriptor.
                    let (listener, shared) = (&self.listener, &self.shared);
                    let shed = self.spare.shed(|| match listener.accept() {
                        Ok((mut stream, _)) => {
                            shared.conn_refused();
                            let _ = stream.write(comet::conn::service_unavailable());
                            true
                        }
                        Err(_) => false,
                    });
                    if !shed {
                        self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                        return;
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

    /// A connection arrived.
    fn open(&mut self, mut stream: TcpStream, now: Instant) {
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
        {
            eprintln!("reactor: register failed: {e}");
            self.shared.conn_refused();
            return;
        }
        self.next_gen = self.next_gen.wrapping_add(1);
        entry.insert(Slot {
            stream,
            conn: Conn::new(self.shared.config.clone(), now),
            armed: 0,
            gen: self.next_gen,
            writable: false,
        });
        self.shared.conn_opened(Some(self.index));
        self.arm_timer(key);
    }

    // ----- reading and writing -----

    fn read(&mut self, key: usize, now: Instant) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        loop {
            match slot.stream.read(&mut self.buf) {
                Ok(0) => {
                    slot.conn.handle_eof(now);
                    return;
                }
                Ok(n) => {
                    slot.conn.handle_read(&self.buf[..n], now);
                    // Answer events between reads: the conn acts on no
                    // more input while one is waiting.
                    GroupBackend::new(&self.shared, &self.group, Some((&mut self.local, key)))
                        .token(deferred::token(key, slot.gen))
                        .drain(&mut slot.conn, now);
                    if slot.conn.is_done() {
                        return;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    slot.conn.handle_close();
                    return;
                }
            }
        }
    }

    /// Writes pending output until done or `WouldBlock`.
    fn flush(&mut self, key: usize) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        while slot.conn.has_pending() {
            let written = {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let n = slot.conn.poll_transmit(&mut iov);
                slot.stream.write_vectored(&iov[..n])
            };
            match written {
                Ok(0) => {
                    slot.conn.handle_close();
                    return;
                }
                Ok(n) => slot.conn.handle_written(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    slot.conn.handle_close();
                    return;
                }
            }
        }
    }

    // ----- driving the Conn -----

    /// Answers `conn`'s events, writes, shuts the write side down or closes
    /// as it asks, adjusts interest, and arms its deadline. Called after
    /// every `handle_*` call.
    fn settle(&mut self, key: usize, now: Instant) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let token = deferred::token(key, slot.gen);
        GroupBackend::new(&self.shared, &self.group, Some((&mut self.local, key)))
            .token(token)
            .drain(&mut slot.conn, now);
        self.flush(key);
        let slot = &mut self.conns[key];
        // Closing can raise an Unsubscribe (a write failed): answer it too.
        GroupBackend::new(&self.shared, &self.group, Some((&mut self.local, key)))
            .token(token)
            .drain(&mut slot.conn, now);
        if slot.conn.poll_shutdown(now) {
            // A failure means the peer is gone: the next read says so.
            let _ = slot.stream.shutdown(Shutdown::Write);
        }
        if slot.conn.is_done() {
            let mut slot = self.conns.remove(key);
            let _ = self.poll.registry().deregister(&mut slot.stream);
            self.shared.conn_closed();
            return;
        }
        let want_write = slot.conn.has_pending();
        if want_write != slot.writable {
            slot.writable = want_write;
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut slot.stream, Token(key), interest)
                .is_err()
            {
                slot.conn.handle_close();
                return self.settle(key, now);
            }
        }
        self.arm_timer(key);
    }

    // ----- deadlines -----

    fn arm_timer(&mut self, key: usize) {
        let slot = &mut self.conns[key];
        if let Some(at) = slot.conn.poll_timeout() {
            self.timers.arm_slot(slot, at, key);
        }
    }

    fn expire(&mut self, now: Instant) {
        let mut budget = self.timers.len();
        while let Some(key) = self.timers.pop_due_slot(now, &mut self.conns, &mut budget) {
            let conn = &mut self.conns[key].conn;
            if conn.poll_timeout().is_some_and(|d| d <= now) {
                conn.handle_timeout(now);
            }
            self.settle(key, now);
        }
    }

    // ----- housekeeping -----

    /// Expires channels (for the whole dispatcher) and gives back what a
    /// peak of connections left behind: the slab's and the local map's
    /// room, timer entries of connections long gone, and (once per large
    /// drop or slab growth, for the whole process) the allocator's free
    /// pages. Each part costs O(capacity) only when it is mostly unused.
    fn housekeeping(&mut self, now: Instant) {
        shrink_slab(&mut self.conns);
        self.local.shrink(self.conns.capacity());
        self.timers.compact_slots(&mut self.conns);
        self.growth.maybe_trim(self.conns.capacity());
        self.shared.housekeeping(now);
    }

    // ----- fan-out -----

    /// Hands every message in the inbox to this reactor's subscribers, and
    /// every answer to the connection waiting for it.
    fn deliver_inbox(&mut self, now: Instant) {
        self.inbox.clear();
        while let Some(item) = self.inbox.take() {
            match item {
                Item::Message(msg) => {
                    for key in self.local.keys(msg.channel()) {
                        if let Some(slot) = self.conns.get_mut(key) {
                            self.shared.deliver(&mut slot.conn, &msg, now);
                            self.settle(key, now);
                        }
                    }
                }
                Item::Answer(reply) => self.answer(*reply, now),
                Item::End(channel) => {
                    for key in self.local.keys(&channel) {
                        if let Some(slot) = self.conns.get_mut(key) {
                            slot.conn.handle_shutdown();
                            self.settle(key, now);
                        }
                    }
                }
            }
        }
    }

    /// An answer given later: to its connection if that is still the one
    /// the token names (see [`crate::deferred`]).
    fn answer(&mut self, reply: Reply, now: Instant) {
        let (key, gen) = deferred::slot(reply.token);
        let Some(slot) = self.conns.get_mut(key).filter(|s| s.gen == gen) else {
            return;
        };
        GroupBackend::new(&self.shared, &self.group, Some((&mut self.local, key)))
            .token(reply.token)
            .answer(&mut slot.conn, reply.answer, now);
        self.settle(key, now);
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;

    /// What an idle connection costs here is mostly its slot (see
    /// `docs/DESIGN.md`, "Memory per connection"): a field added to it, or
    /// to `Conn`, must be a choice, not an accident.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_slot_stays_small() {
        // mio gives its sockets an 8-byte selector id in debug builds only.
        let bound = if cfg!(debug_assertions) { 96 } else { 80 };
        assert!(size_of::<Slot>() <= bound, "{}", size_of::<Slot>());
        // The slab's entry (`Vacant(usize)` or `Occupied(Slot)`) takes its
        // tag from a niche of the slot: no word more per connection.
        #[allow(dead_code)]
        enum Entry {
            Vacant(usize),
            Occupied(Slot),
        }
        assert_eq!(size_of::<Entry>(), size_of::<Slot>());
    }
}
