//! The state a scheduler shares with its green threads: tasks, the run
//! queue, operations in flight, deadlines, the stack pool and the ring.
//!
//! It lives in a `RefCell` of the worker. The scheduler borrows it for a
//! step of its loop, a primitive for the few lines that record what it waits
//! for; nobody holds it across a switch, so a green thread always finds it
//! free.
//!
//! # Waking
//! Everything that may interest a suspended green thread (a completion of
//! its operation, its deadline, an unpark, the stop) puts it in the run
//! queue; the primitive it is suspended in looks again at what it waits for
//! and suspends again if that has not happened. A wake-up too many costs a
//! switch; a lost one would hang the green thread, so the rule is "wake on
//! anything".

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use io_uring::{opcode, squeue};
use slab::Slab;

use super::accept::Acceptor;
use super::op::{Op, Token};
use super::remote::Remote;
use super::stack::StackPool;
use super::task::{Co, Task};
use crate::io_ring::Ring;
use crate::room::shrink_slab;
use crate::timers::Timers;

/// Which stop interrupts a primitive (see the module docs of `green`, `# Stopping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Interrupt {
    /// Reads, accepts, waits and sleeps end as soon as the stop begins.
    Soft,
    /// Writes and shutdowns go on through the grace period.
    Hard,
    /// Closes always complete.
    Never,
}

/// Field order is drop order: the ring goes first, so that the kernel has let
/// go of every operation (or at least lost its last user) before the stacks
/// and buffers go.
pub(super) struct Core {
    pub ring: Ring,
    pub tasks: Slab<Task>,
    pub ready: VecDeque<u32>,
    pub ops: Slab<Op>,
    pub timers: Timers,
    pub accept: Acceptor,
    pub pool: StackPool,
    pub remote: Arc<Remote>,
    /// Where the eventfd read lands; boxed so that it does not move.
    pub wake_buf: Box<u64>,
    pub wake_armed: bool,
    /// Direct descriptors in use: accepted and not yet closed.
    pub open: u32,
    /// Closes submitted and not completed.
    pub closing: u32,
    /// The stop has begun: soft interruptions apply.
    pub stopping: bool,
    /// The grace period is over: every primitive fails at once.
    pub hard: bool,
    next_gen: u32,
}

impl Core {
    pub(super) fn new(ring: Ring, pool: StackPool, accept: Acceptor, remote: Arc<Remote>) -> Core {
        Core {
            ring,
            tasks: Slab::new(),
            ready: VecDeque::new(),
            ops: Slab::new(),
            timers: Timers::default(),
            accept,
            pool,
            remote,
            wake_buf: Box::new(0),
            wake_armed: false,
            open: 0,
            closing: 0,
            stopping: false,
            hard: false,
            next_gen: 0,
        }
    }

    /// Queues `sqes` (one group).
    ///
    /// # Safety
    /// As [`Ring::push`]: what they point at stays put until their CQEs.
    pub(super) unsafe fn push(&mut self, sqes: &[squeue::Entry]) {
        // SAFETY: the caller's promise.
        unsafe { self.ring.push(sqes) }
    }

    // ----- tasks -----

    /// Adds a green thread (not yet run) and queues it.
    pub(super) fn insert_task(&mut self, co: Co, bottom: usize) -> (u32, u32) {
        self.next_gen = self.next_gen.wrapping_add(1);
        let gen = self.next_gen;
        let key = self.tasks.insert(Task::new(co, gen, bottom)) as u32;
        self.remote.counters.tasks.fetch_add(1, Ordering::Relaxed);
        self.wake((key, gen));
        (key, gen)
    }

    fn task(&mut self, (key, gen): (u32, u32)) -> Option<&mut Task> {
        self.tasks.get_mut(key as usize).filter(|t| t.gen == gen)
    }

    /// The running task's record.
    pub(super) fn me(&mut self, me: (u32, u32)) -> &mut Task {
        self.task(me).expect("the running task is in the slab")
    }

    /// Puts a suspended task in the run queue (see `# Waking`).
    pub(super) fn wake(&mut self, who: (u32, u32)) {
        let Some(t) = self.task(who) else { return };
        if t.co.is_some() && !t.queued {
            t.queued = true;
            self.ready.push_back(who.0);
        }
    }

    pub(super) fn wake_all(&mut self) {
        let all: Vec<(u32, u32)> = self.tasks.iter().map(|(k, t)| (k as u32, t.gen)).collect();
        for who in all {
            self.wake(who);
        }
    }

    pub(super) fn unpark(&mut self, who: (u32, u32)) {
        if let Some(t) = self.task(who) {
            t.unparked = true;
            self.wake(who);
        }
    }

    /// Whether a primitive interrupted by `level` must end now.
    pub(super) fn is_stopped(&self, level: Interrupt) -> bool {
        match level {
            Interrupt::Soft => self.stopping,
            Interrupt::Hard => self.hard,
            Interrupt::Never => false,
        }
    }

    // ----- deadlines -----

    /// Sets (or clears) the deadline of `who`'s current wait.
    pub(super) fn set_deadline(&mut self, who: (u32, u32), at: Option<Instant>) {
        let Some(t) = self.task(who) else { return };
        t.deadline = at;
        let Some(at) = at else { return };
        // A later deadline keeps the earlier entry, which re-arms when it fires.
        self.timers
            .arm_slot(&mut self.tasks[who.0 as usize], at, who.0 as usize);
        self.timers.compact_slots(&mut self.tasks);
    }

    /// Wakes every task whose deadline has come.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        // Entries pushed while firing wait for the next turn.
        let mut budget = self.timers.len();
        while let Some(key) = self.timers.pop_due_slot(now, &mut self.tasks, &mut budget) {
            let t = &mut self.tasks[key];
            match t.deadline {
                Some(d) if d <= now => {
                    let gen = t.gen;
                    self.wake((key as u32, gen));
                }
                Some(d) => self.timers.arm_slot(t, d, key),
                None => {}
            }
        }
    }

    // ----- operations -----

    /// Submits `sqe` (after `before`, hard-linked to it) as an operation of
    /// `owner`; returns its key.
    ///
    /// # Safety
    /// What `sqe` and `before` point at stays put until their CQEs; with
    /// `pins`, that memory is `owner`'s stack and it waits for the last CQE.
    pub(super) unsafe fn submit(
        &mut self,
        owner: (u32, u32),
        before: Option<squeue::Entry>,
        sqe: squeue::Entry,
        multishot: bool,
        pins: bool,
    ) -> u32 {
        let key = self.ops.insert(Op::new(owner, multishot, pins)) as u32;
        let sqe = sqe.user_data(Token::Op(key).encode());
        if pins {
            self.me(owner).in_flight += 1;
        }
        // SAFETY: the caller's promise.
        unsafe {
            match before {
                Some(b) => self.push(&[b.flags(squeue::Flags::IO_HARDLINK), sqe]),
                None => self.push(&[sqe]),
            }
        }
        key
    }

    /// Asks the kernel to end operation `key` early (its CQE still comes).
    pub(super) fn cancel(&mut self, key: u32) {
        let op = &mut self.ops[key as usize];
        if !op.armed || op.cancelled {
            return;
        }
        op.cancelled = true;
        let sqe = opcode::AsyncCancel::new(Token::Op(key).encode())
            .build()
            .user_data(Token::Ignore.encode());
        // SAFETY: a cancel names no memory.
        unsafe { self.push(&[sqe]) }
    }

    /// Nobody will wait for `key` again: cancel it and free it at its last CQE.
    pub(super) fn detach(&mut self, key: u32) {
        if self.ops[key as usize].armed {
            self.cancel(key);
            self.ops[key as usize].detached = true;
        } else {
            self.ops.remove(key as usize);
        }
    }

    /// A CQE of operation `key`.
    pub(super) fn on_op(&mut self, key: u32, res: i32, more: bool) {
        let Some(op) = self.ops.get_mut(key as usize) else {
            return;
        };
        if !op.complete(res, more) {
            let owner = op.owner;
            if !op.detached {
                self.wake(owner);
            }
            return;
        }
        let (owner, pins, detached) = (op.owner, op.pins, op.detached);
        if detached {
            self.ops.remove(key as usize);
        }
        if pins {
            if let Some(t) = self.task(owner) {
                t.in_flight -= 1;
            }
        }
        if !detached {
            self.wake(owner);
        }
    }

    /// Closes direct descriptor `fd` without waiting, after detaching its
    /// poll (cancelled first: an armed poll keeps the socket open).
    pub(super) fn close_detached(&mut self, fd: u32, poll: Option<u32>) {
        let cancel = poll.filter(|&p| self.ops[p as usize].armed).map(|p| {
            opcode::AsyncCancel::new(Token::Op(p).encode())
                .build()
                .user_data(Token::Ignore.encode())
                .flags(squeue::Flags::IO_HARDLINK)
        });
        if let Some(p) = poll {
            // Marked cancelled so that `detach` does not cancel it twice.
            if cancel.is_some() {
                self.ops[p as usize].cancelled = true;
            }
            self.detach(p);
        }
        let close = opcode::Close::new(io_uring::types::Fixed(fd))
            .build()
            .user_data(Token::Close.encode());
        self.closing += 1;
        // SAFETY: neither names memory.
        unsafe {
            match cancel {
                Some(c) => self.push(&[c, close]),
                None => self.push(&[close]),
            }
        }
    }

    /// A detached close completed.
    pub(super) fn on_close(&mut self) {
        self.closing -= 1;
        self.closed();
    }

    /// A direct descriptor left the table.
    pub(super) fn closed(&mut self) {
        self.open -= 1;
        self.remote.counters.open.fetch_sub(1, Ordering::Relaxed);
    }

    // ----- the eventfd -----

    pub(super) fn arm_wake(&mut self) {
        if self.hard {
            return;
        }
        let buf: *mut u64 = &mut *self.wake_buf;
        let sqe = opcode::Read::new(io_uring::types::Fd(self.remote.fd()), buf.cast(), 8)
            .build()
            .user_data(Token::Wake.encode());
        self.wake_armed = true;
        // SAFETY: the read lands in `wake_buf`, boxed and owned until the
        // core drops, which leaks it if the read is still armed then.
        unsafe { self.push(&[sqe]) }
    }

    pub(super) fn on_wake(&mut self) {
        self.wake_armed = false;
        self.arm_wake();
    }

    /// Gives back the room a peak of green threads left in the tables
    /// (after a mass disconnect); keys stay valid. About once a second.
    pub(super) fn shrink(&mut self) {
        shrink_slab(&mut self.tasks);
        shrink_slab(&mut self.ops);
        if self.ready.capacity() > 1024 && self.ready.len() < self.ready.capacity() / 4 {
            self.ready.shrink_to(self.ready.len() * 2);
        }
        self.timers.compact_slots(&mut self.tasks);
    }

    /// Whether [`Core::shrink`] would give back much.
    pub(super) fn has_room_to_give_back(&self) -> bool {
        let sparse = |len: usize, cap: usize| cap > 1024 && len < cap / 4;
        sparse(self.tasks.len(), self.tasks.capacity())
            || sparse(self.ops.len(), self.ops.capacity())
    }

    /// Operations or closes the kernel still holds.
    pub(super) fn is_busy(&self) -> bool {
        !self.ops.is_empty()
            || self.closing > 0
            || self.wake_armed
            || self.accept.is_armed()
            || self.ring.has_backlog()
    }
}
