//! One completion loop: a ring, its listener, its connections.
//!
//! # A loop turn
//! 1. Submit every SQE queued since the last turn and wait, in one
//!    `io_uring_enter`, for a completion, the earliest deadline, or the
//!    mailbox's eventfd.
//! 2. Read the clock once, then handle every CQE. Each handler feeds the
//!    connection's `Conn` and then *settles* it: answers its events against
//!    the hub, queues a send if output is pending and none is in flight,
//!    shuts the write side down or closes it as it asks, and arms its
//!    deadline.
//! 3. Fire due deadlines (`expire`) the same way and, once a second,
//!    housekeeping.
//!
//! The reactor (`reactor.rs`) takes the same steps under the same names;
//! only the waiting differs.
//!
//! # Slot lifetime
//! A connection's slot (its `Conn` and the state of its operations) stays in
//! the slab until no operation of it is pending in the kernel: its multishot
//! recv has ended, its send has completed, and its close has completed. So a
//! CQE always finds the slot it was submitted for, and a send's buffers live
//! until its CQE (see `op.rs`). The generation in `user_data` is a second
//! check that guards the timer heap, whose entries outlive slots.
//!
//! # Closing
//! An armed recv or a send in flight keeps the socket open even after its
//! direct descriptor leaves the table, so a close first cancels the
//! connection's recv and send (by `user_data`), hard-linked to the `Close`
//! that frees the table slot. Completions that arrive for a closing slot only
//! give back their buffer and mark the operation ended.
//!
//! A lingering close shuts the write side down first (`IORING_OP_SHUTDOWN`).
//! The kernel runs a shutdown from a worker and looks its direct descriptor
//! up only then, so a `Close` queued meanwhile could free the table slot for
//! the next connection, which the shutdown would then hit: a close waits
//! until the shutdown has completed.
//!
//! # Stopping
//! Publishing has stopped before the rings are told ([`crate`] `# Stopping`),
//! so every accepted message is in the inboxes by then. A ring that sees the
//! stop leaves its loop and, in [`Ring::drain`]: cancels its accept, drains its
//! inbox into its connections, ends every connection
//! ([`Conn::handle_shutdown`]: a long-poll held with no message closes at
//! once), and goes on completing sends (and seeing clients go) until every
//! connection is closing or [`crate::STOP_GRACE`] has passed. Then
//! [`Ring::shutdown`] cuts off what is left and waits for the kernel to let go
//! of every buffer.

use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use comet::Conn;
use io_uring::types::{CancelBuilder, Fd, Fixed};
use io_uring::{cqueue, opcode, squeue};
use slab::Slab;

use super::bufs::BufRing;
use super::eventfd::EventFd;
use super::op::{Gather, Op, Send, SendId, Sends, Token, GEN_MASK};
use crate::accept_error::AcceptError;
use crate::backend::GroupBackend;
use crate::deferred::{self, Item, Reply};
use crate::group::Group;
use crate::io_ring;
use crate::local::LocalSubs;
use crate::mailbox::Mailbox;
use crate::memory::Growth;
use crate::room::shrink_slab;
use crate::shared::Shared;
use crate::timers::{Armed, Tick, Timers};

/// Provided receive buffers per ring (of `bufs::BUF_SIZE` bytes each).
const RECV_BUFFERS: u16 = 256;
/// The provided buffer group the ring's receives select from.
const BGID: u16 = 0;
/// How long stopping waits for the kernel to finish cancelled operations.
const DRAIN_ON_STOP: Duration = Duration::from_secs(1);
/// Interval of housekeeping: expiring channels, giving back memory kept from a peak.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// Per connection. Small on purpose: an idle connection holds this and its
/// `Conn` only, no buffer.
struct Slot {
    conn: Conn,
    /// The send in flight, in `Ring::sends`.
    send: Option<SendId>,
    /// The tick of the deadline this slot has in the timer heap, if any.
    armed: Tick,
    /// Index in the ring's fixed-file table.
    fd: u32,
    gen: u32,
    /// A multishot recv is armed.
    recv: bool,
    /// The connection is given up; nothing more is fed to `conn`.
    closing: bool,
    /// The close was queued and has not completed yet.
    close_pending: bool,
    /// A shutdown of the write side is in flight (see `# Closing`).
    shut_pending: bool,
}

impl Armed for Slot {
    fn armed(&mut self) -> &mut Tick {
        &mut self.armed
    }
}

/// A ring and everything its thread owns.
///
/// Field order is drop order: the ring goes first, so that the kernel has
/// torn it down (or at least lost its last user) before the buffers are freed.
pub(super) struct Ring {
    ring: io_ring::Ring,
    /// Which ring of the dispatcher this is.
    index: usize,
    bufs: BufRing,
    /// What the sends in flight point at (see `op.rs`).
    sends: Sends,
    conns: Slab<Slot>,
    timers: Timers,
    local: LocalSubs,
    listener: TcpListener,
    shared: Arc<Shared>,
    group: Group,
    inbox: Arc<Mailbox<EventFd>>,
    stop: Arc<AtomicBool>,
    /// Where the eventfd read lands; boxed so that it does not move.
    wake_buf: Box<u64>,
    accept_armed: bool,
    wake_armed: bool,
    stopping: bool,
    next_gen: u32,
    /// CQEs of the current batch, reused across turns.
    cqes: Vec<cqueue::Entry>,
    next_housekeeping: Instant,
    growth: Growth,
}

impl Ring {
    /// Sets up a ring on this thread (it becomes the ring's only submitter)
    /// with a fixed-file table of `table` slots.
    pub(super) fn new(
        index: usize,
        listener: TcpListener,
        shared: Arc<Shared>,
        inbox: Arc<Mailbox<EventFd>>,
        stop: Arc<AtomicBool>,
        table: u32,
    ) -> io::Result<Ring> {
        let ring = io_ring::Ring::new(table, "uring", "")?;
        let bufs = BufRing::new(RECV_BUFFERS, BGID)?;
        bufs.register(&ring.submitter())
            .map_err(|e| context(e, "cannot register the provided buffer ring"))?;
        // A non-blocking listener is polled by the kernel instead of blocking
        // an io-wq worker in accept.
        listener.set_nonblocking(true)?;
        let group = Group(inbox.clone());
        Ok(Ring {
            ring,
            index,
            bufs,
            sends: Sends::default(),
            conns: Slab::new(),
            timers: Timers::default(),
            local: LocalSubs::default(),
            listener,
            shared,
            group,
            inbox,
            stop,
            wake_buf: Box::new(0),
            accept_armed: false,
            wake_armed: false,
            stopping: false,
            next_gen: 0,
            cqes: Vec::new(),
            next_housekeeping: Instant::now() + HOUSEKEEPING,
            growth: Growth::default(),
        })
    }

    /// Serves until the stop flag is raised, then closes every connection.
    pub(super) fn run(&mut self) -> io::Result<()> {
        let mut now = Instant::now();
        self.arm_accept();
        self.arm_wake();
        let mut result = Ok(());
        while !self.stopping {
            if let Err(e) = self.wait(now) {
                result = Err(e);
                break;
            }
            now = Instant::now();
            self.reap(now);
            self.expire(now);
            if now >= self.next_housekeeping {
                self.housekeeping(now);
                self.next_housekeeping = now + HOUSEKEEPING;
            }
            if self.stop.load(Ordering::Acquire) {
                self.stopping = true;
            }
        }
        if result.is_ok() {
            self.drain();
        }
        self.shutdown();
        result
    }

    /// Stops gracefully (see `# Stopping`); `stopping` is set.
    fn drain(&mut self) {
        let deadline = Instant::now() + crate::STOP_GRACE;
        // Rather than take and close new connections for the whole drain.
        self.cancel_fd(self.accept_armed, self.listener.as_raw_fd());
        let now = Instant::now();
        self.deliver_inbox(now);
        for key in self.open_keys() {
            self.conns[key].conn.handle_shutdown();
            self.settle(key, now);
        }
        while self.conns.iter().any(|(_, s)| !s.closing) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if self.ring.submit_and_wait(deadline - now).is_err() {
                break;
            }
            self.reap(Instant::now());
        }
    }

    /// Cancels every operation armed on `fd` (the listener, the eventfd).
    fn cancel_fd(&mut self, armed: bool, fd: i32) {
        if armed {
            let sqe = opcode::AsyncCancel2::new(CancelBuilder::fd(Fd(fd)).all())
                .build()
                .user_data(Token::new(Op::Cancel, 0, 0).encode());
            self.push(&[sqe]);
        }
    }

    // ----- submitting and waiting -----

    /// Queues `sqes` as one group: they enter the submission queue together,
    /// so a link chain among them is never split across submits.
    fn push(&mut self, sqes: &[squeue::Entry]) {
        // SAFETY: every buffer an SQE points at is owned by its slot (the
        // send's `Send`), by `self.wake_buf`, or by `self.bufs`, and each
        // stays alive and unmoved until the operation's CQE (see the module
        // docs, `op.rs` and `bufs.rs`).
        unsafe { self.ring.push(sqes) }
    }

    /// Submits the turn's SQEs and waits for a CQE or the next deadline.
    /// `now` is the clock read at the start of the turn: a deadline may be
    /// seen late by the time the turn took, never early.
    fn wait(&mut self, now: Instant) -> io::Result<()> {
        // Housekeeping bounds the wait, so that a ring left idle by a mass
        // close still gives back what the peak left behind.
        let at = self
            .timers
            .next()
            .map_or(self.next_housekeeping, |t| t.min(self.next_housekeeping));
        self.ring.submit_and_wait(at.saturating_duration_since(now))
    }

    /// Handles every completion there is.
    fn reap(&mut self, now: Instant) {
        let mut cqes = std::mem::take(&mut self.cqes);
        loop {
            cqes.clear();
            self.ring.completions(&mut cqes);
            if cqes.is_empty() {
                break;
            }
            for cqe in &cqes {
                self.complete(cqe, now);
            }
        }
        self.cqes = cqes;
    }

    fn complete(&mut self, cqe: &cqueue::Entry, now: Instant) {
        let Some(t) = Token::decode(cqe.user_data()) else {
            return;
        };
        let (res, flags) = (cqe.result(), cqe.flags());
        match t.op {
            Op::Accept => self.on_accept(res, flags, now),
            Op::Wake => self.on_wake(res, now),
            Op::Recv => self.on_recv(t, res, flags, now),
            Op::Send => self.on_send(t, res, now),
            Op::Cancel => {}
            Op::Close => self.on_close(t),
            Op::Shutdown => self.on_shutdown(t),
        }
    }

    // ----- accepting -----

    fn arm_accept(&mut self) {
        if self.stopping {
            return;
        }
        let sqe = opcode::AcceptMulti::new(Fd(self.listener.as_raw_fd()))
            .allocate_file_index(true)
            .build()
            .user_data(Token::new(Op::Accept, 0, 0).encode());
        self.accept_armed = true;
        self.push(&[sqe]);
    }

    fn on_accept(&mut self, res: i32, flags: u32, now: Instant) {
        let more = cqueue::more(flags);
        if !more {
            self.accept_armed = false;
        }
        let mut rearm = !more;
        if res >= 0 {
            self.open(res as u32, now);
        } else {
            match AcceptError::of(-res) {
                // The fixed-file table is full: the kernel accepted the
                // connection and closed it again, so it is refused.
                AcceptError::OutOfFiles => self.shared.conn_refused(),
                AcceptError::Cancelled => rearm = false,
                // The next one may well work.
                AcceptError::Transient | AcceptError::NoMemory => {}
                AcceptError::Unexpected => {
                    eprintln!(
                        "uring: accept failed, this ring stops accepting: {}",
                        io::Error::from_raw_os_error(-res)
                    );
                    rearm = false;
                }
            }
        }
        if rearm {
            self.arm_accept();
        }
    }

    /// A connection arrived in table slot `fd`.
    fn open(&mut self, fd: u32, now: Instant) {
        self.next_gen = self.next_gen.wrapping_add(1) & GEN_MASK;
        let key = self.conns.insert(Slot {
            conn: Conn::new(self.shared.config.clone(), now),
            send: None,
            armed: 0,
            fd,
            gen: self.next_gen,
            recv: false,
            closing: false,
            close_pending: false,
            shut_pending: false,
        });
        self.shared.conn_opened(Some(self.index));
        if self.stopping {
            self.conns[key].conn.handle_close();
        } else {
            self.arm_recv(key);
        }
        self.settle(key, now);
    }

    // ----- receiving -----

    fn arm_recv(&mut self, key: usize) {
        let slot = &mut self.conns[key];
        slot.recv = true;
        let sqe = opcode::RecvMulti::new(Fixed(slot.fd), self.bufs.bgid())
            .build()
            .user_data(Token::new(Op::Recv, key as u32, slot.gen).encode());
        self.push(&[sqe]);
    }

    fn on_recv(&mut self, t: Token, res: i32, flags: u32, now: Instant) {
        let bid = cqueue::buffer_select(flags);
        let key = t.key as usize;
        let Some(slot) = self.conns.get_mut(key).filter(|s| s.gen == t.gen) else {
            if let Some(bid) = bid {
                self.bufs.give_back(bid);
            }
            return;
        };
        let more = cqueue::more(flags);
        if !more {
            slot.recv = false;
        }
        // A multishot recv ends on its own when the CQ overflows or the pool
        // ran dry (ENOBUFS); it is re-armed then, and only then.
        let mut rearm = !more;
        match (res, bid) {
            (n, Some(bid)) if n > 0 => {
                if !slot.closing {
                    slot.conn.handle_read(self.bufs.get(bid, n as usize), now);
                }
                // `handle_read` copied what it keeps: the buffer goes back at once.
                self.bufs.give_back(bid);
            }
            (n, _) if n > 0 => {
                // Data without a buffer cannot happen with BUFFER_SELECT; give up.
                slot.conn.handle_close();
                rearm = false;
            }
            (n, bid) => {
                if let Some(bid) = bid {
                    self.bufs.give_back(bid);
                }
                if n == 0 {
                    rearm = false;
                    if !slot.closing {
                        slot.conn.handle_eof(now);
                    }
                } else if n != -libc::ENOBUFS {
                    rearm = false;
                    if n != -libc::ECANCELED && !slot.closing {
                        // ECONNRESET and the like: the peer is gone.
                        slot.conn.handle_close();
                    }
                }
            }
        }
        if slot.closing {
            self.try_release(key);
            return;
        }
        if rearm && !self.stopping {
            self.arm_recv(key);
        }
        self.settle(key, now);
    }

    // ----- sending -----

    /// Sends what `conn` has pending; the caller checked that no send is in flight.
    fn send(&mut self, key: usize) {
        let slot = &mut self.conns[key];
        let pending = slot.conn.pending();
        let fd = Fixed(slot.fd);
        let (sqe, op) = if pending.len() == 1 {
            let b = pending[0].clone();
            let len = b.len().min(u32::MAX as usize) as u32;
            let sqe = opcode::Send::new(fd, b.as_ptr(), len)
                .flags(libc::MSG_NOSIGNAL)
                .build();
            (sqe, Send::One(b))
        } else {
            let g = Gather::new(pending.iter());
            let sqe = opcode::SendMsg::new(fd, &g.msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build();
            (sqe, Send::Many(g))
        };
        // The `Bytes` handles and the boxed header now live in the slot until
        // the CQE; moving the `Box` does not move what the SQE points at.
        slot.send = Some(self.sends.hold(op));
        let sqe = sqe.user_data(Token::new(Op::Send, key as u32, slot.gen).encode());
        self.push(&[sqe]);
    }

    fn on_send(&mut self, t: Token, res: i32, now: Instant) {
        let key = t.key as usize;
        let Some(slot) = self.conns.get_mut(key).filter(|s| s.gen == t.gen) else {
            return;
        };
        // The kernel is done with the buffers: drop our handles.
        let asked = slot.send.take().map_or(0, |id| self.sends.take(id).len());
        if slot.closing {
            self.try_release(key);
            return;
        }
        if res > 0 && res as usize <= asked {
            // A connection cut off meanwhile (`handle_close`) has dropped its
            // output already; advancing it would run past an empty queue.
            if !slot.conn.is_done() {
                slot.conn.handle_written(res as usize);
            }
        } else if res != -libc::ECANCELED {
            // EPIPE, ECONNRESET...; 0 bytes for a non-empty send, or more
            // than was asked, is taken the same way rather than trusted.
            slot.conn.handle_close();
        }
        self.settle(key, now);
    }

    // ----- closing -----

    fn close(&mut self, key: usize) {
        let slot = &mut self.conns[key];
        if slot.closing {
            return;
        }
        slot.closing = true;
        self.shared.conn_closed();
        if !slot.shut_pending {
            self.queue_close(key);
        }
        // Else `on_shutdown` queues it (see `# Closing`).
    }

    /// Cancels what is armed of a closing slot and closes its descriptor.
    fn queue_close(&mut self, key: usize) {
        let slot = &mut self.conns[key];
        slot.close_pending = true;
        let gen = slot.gen;
        let tok = |op| Token::new(op, key as u32, gen).encode();
        // Cancelled by user_data, which the kernel finds through a hash;
        // cancelling by descriptor walks every armed request of the ring, and
        // a ring holds tens of thousands. The hard links run the close even
        // when a cancel finds nothing (the operation ended meanwhile).
        let cancel = |op| {
            opcode::AsyncCancel::new(tok(op))
                .build()
                .flags(squeue::Flags::IO_HARDLINK)
                .user_data(tok(Op::Cancel))
        };
        let close = opcode::Close::new(Fixed(slot.fd))
            .build()
            .user_data(tok(Op::Close));
        match (slot.recv, slot.send.is_some()) {
            (true, true) => self.push(&[cancel(Op::Recv), cancel(Op::Send), close]),
            (true, false) => self.push(&[cancel(Op::Recv), close]),
            (false, true) => self.push(&[cancel(Op::Send), close]),
            (false, false) => self.push(&[close]),
        }
    }

    /// Shuts the write side of a lingering connection down; its output is
    /// all sent (see `# Closing`).
    fn shut_write(&mut self, key: usize) {
        let slot = &mut self.conns[key];
        slot.shut_pending = true;
        let sqe = opcode::Shutdown::new(Fixed(slot.fd), libc::SHUT_WR)
            .build()
            .user_data(Token::new(Op::Shutdown, key as u32, slot.gen).encode());
        self.push(&[sqe]);
    }

    /// A shutdown completed. A failure (the peer is gone) is not ours to
    /// act on: the recv reports it.
    fn on_shutdown(&mut self, t: Token) {
        let key = t.key as usize;
        let Some(slot) = self.conns.get_mut(key).filter(|s| s.gen == t.gen) else {
            return;
        };
        slot.shut_pending = false;
        if slot.closing && !slot.close_pending {
            self.queue_close(key);
        }
    }

    fn on_close(&mut self, t: Token) {
        let key = t.key as usize;
        if let Some(slot) = self.conns.get_mut(key).filter(|s| s.gen == t.gen) {
            slot.close_pending = false;
            self.try_release(key);
        }
    }

    /// Frees a closing slot once nothing of it is pending in the kernel.
    fn try_release(&mut self, key: usize) {
        let s = &self.conns[key];
        if s.closing && !s.recv && s.send.is_none() && !s.close_pending && !s.shut_pending {
            self.conns.remove(key);
        }
    }

    // ----- driving the Conn -----

    /// Answers `conn`'s events, then sends, shuts the write side down or
    /// closes, and arms its deadline as it needs. Called after every
    /// `handle_*` call.
    fn settle(&mut self, key: usize, now: Instant) {
        let slot = &mut self.conns[key];
        if slot.closing {
            return;
        }
        GroupBackend::new(&self.shared, &self.group, Some((&mut self.local, key)))
            .token(deferred::token(key, slot.gen))
            .drain(&mut slot.conn, now);
        if slot.conn.is_done() {
            self.close(key);
            return;
        }
        if slot.send.is_none() {
            if slot.conn.has_pending() {
                self.send(key);
            } else if slot.conn.poll_shutdown(now) {
                self.shut_write(key);
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
            let slot = &mut self.conns[key];
            if slot.closing {
                continue;
            }
            if slot.conn.poll_timeout().is_some_and(|d| d <= now) {
                slot.conn.handle_timeout(now);
            }
            self.settle(key, now);
        }
    }

    // ----- housekeeping -----

    /// Expires channels (for the whole dispatcher) and gives back what a
    /// peak of connections left behind: the slab's, the local map's and the
    /// completion batch's room, timer entries of connections long gone, and
    /// (once per large drop, for the whole process) the allocator's free
    /// pages. Each part costs O(capacity) only when it is mostly unused.
    fn housekeeping(&mut self, now: Instant) {
        shrink_slab(&mut self.conns);
        self.sends.shrink();
        self.local.shrink(self.conns.capacity());
        self.timers.compact_slots(&mut self.conns);
        if self.cqes.capacity() > 1024 {
            // Cleared every turn; a burst's batch size need not stay.
            self.cqes = Vec::new();
        }
        self.ring.shrink();
        self.growth.maybe_trim(self.conns.capacity());
        self.shared.housekeeping(now);
    }

    // ----- fan-out -----

    fn arm_wake(&mut self) {
        if self.stopping {
            return;
        }
        let buf: *mut u64 = &mut *self.wake_buf;
        let sqe = opcode::Read::new(Fd(self.inbox.waker().fd()), buf.cast(), 8)
            .build()
            .user_data(Token::new(Op::Wake, 0, 0).encode());
        self.wake_armed = true;
        self.push(&[sqe]);
    }

    /// The eventfd fired: a stop, or messages for this ring's subscribers.
    fn on_wake(&mut self, res: i32, now: Instant) {
        self.wake_armed = false;
        if self.stop.load(Ordering::Acquire) {
            self.stopping = true;
            return;
        }
        if res == -libc::ECANCELED {
            return;
        }
        self.deliver_inbox(now);
        self.arm_wake();
    }

    /// Hands every message in the inbox to this ring's subscribers, and
    /// every answer to the connection waiting for it.
    fn deliver_inbox(&mut self, now: Instant) {
        self.inbox.clear();
        while let Some(item) = self.inbox.take() {
            match item {
                Item::Message(msg) => {
                    for key in self.local.keys(msg.channel()) {
                        let Some(slot) = self.conns.get_mut(key).filter(|s| !s.closing) else {
                            continue;
                        };
                        self.shared.deliver(&mut slot.conn, &msg, now);
                        self.settle(key, now);
                    }
                }
                Item::Answer(reply) => self.answer(*reply, now),
                Item::End(channel) => {
                    for key in self.local.keys(&channel) {
                        let Some(slot) = self.conns.get_mut(key).filter(|s| !s.closing) else {
                            continue;
                        };
                        slot.conn.handle_shutdown();
                        self.settle(key, now);
                    }
                }
            }
        }
    }

    /// An answer given later: to its connection if that is still the one
    /// the token names (see [`crate::deferred`]).
    fn answer(&mut self, reply: Reply, now: Instant) {
        let (key, gen) = deferred::slot(reply.token);
        let Some(slot) = self
            .conns
            .get_mut(key)
            .filter(|s| s.gen == gen && !s.closing)
        else {
            return;
        };
        GroupBackend::new(&self.shared, &self.group, Some((&mut self.local, key)))
            .token(reply.token)
            .answer(&mut slot.conn, reply.answer, now);
        self.settle(key, now);
    }

    // ----- stopping -----

    /// Keys of the connections not yet closing.
    fn open_keys(&self) -> Vec<usize> {
        self.conns
            .iter()
            .filter(|(_, s)| !s.closing)
            .map(|(k, _)| k)
            .collect()
    }

    /// Closes every connection and waits (boundedly) for the kernel to finish
    /// with every operation, so that no buffer is freed while it may be used.
    fn shutdown(&mut self) {
        self.stopping = true;
        let now = Instant::now();
        for key in self.open_keys() {
            self.conns[key].conn.handle_close();
            self.settle(key, now);
        }
        self.cancel_fd(self.accept_armed, self.listener.as_raw_fd());
        self.cancel_fd(self.wake_armed, self.inbox.waker().fd());
        let deadline = now + DRAIN_ON_STOP;
        while self.is_busy() && Instant::now() < deadline {
            let _ = self.ring.submit_and_wait(Duration::from_millis(10));
            self.reap(Instant::now());
        }
        if self.is_busy() {
            // The kernel may still write into these after we return: leak them
            // rather than free memory it could use.
            self.bufs.leak();
            self.sends.leak();
            std::mem::forget(std::mem::replace(&mut self.wake_buf, Box::new(0)));
        } else {
            self.bufs.unregister(&self.ring.submitter());
        }
    }

    fn is_busy(&self) -> bool {
        !self.conns.is_empty() || self.accept_armed || self.wake_armed || self.ring.has_backlog()
    }
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("uring: {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;

    /// An idle connection holds its slot and nothing else here (see
    /// `docs/DESIGN.md`, "Memory per connection"): a field added to it, or
    /// to `Conn`, must be a choice, not an accident.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_slot_stays_small() {
        assert!(size_of::<Slot>() <= 88, "{}", size_of::<Slot>());
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
