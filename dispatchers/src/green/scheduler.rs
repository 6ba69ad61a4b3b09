//! One scheduler: an OS thread, its run queue and its ring.
//!
//! # A loop turn
//! 1. Resume every green thread queued at the start of the turn, each until
//!    it suspends or ends; after each, check its stack's red zone.
//! 2. Submit what they queued and wait, in one `io_uring_enter`, for a
//!    completion, the earliest deadline, or a message from another thread
//!    (the eventfd). With green threads still queued it does not wait.
//! 3. Hand every completion to its operation and wake its owner; take the
//!    messages of other threads (unparks, spawns, the stop); fire due
//!    deadlines.
//!
//! A green thread runs until it suspends: there is no preemption. One that
//! computes for long holds up its whole scheduler.

use std::cell::{Cell, RefCell};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corosensei::{CoroutineResult, Yielder};
use io_uring::cqueue;

use super::accept::Acceptor;
use super::context;
use super::core::Core;
use super::op::Token;
use super::remote::{Msg, Remote};
use super::stack::{red_zone_is_zero, StackPool};
use super::task::{body, Co};
use super::StopReport;
use crate::io_ring::Ring;

/// How long the end of a stop waits for green threads cut off at the end of
/// the grace period to notice and return.
const HARD_GRACE: Duration = Duration::from_millis(200);
/// How long the end of a stop waits for the kernel to finish operations
/// (of green threads still there, then of the scheduler itself).
const DRAIN: Duration = Duration::from_secs(1);
/// Longest sleep when nothing is due. Only a safety net: every message of
/// another thread wakes the ring through its eventfd (see `remote.rs`), and
/// the tests would not notice that path broken behind a short net.
const IDLE: Duration = Duration::from_secs(60);
/// How often the scheduler gives back room kept from a peak.
const SHRINK: Duration = Duration::from_secs(1);

/// Where a stop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Waking everything; at `hard_at`, the grace period ends.
    Soft {
        hard_at: Instant,
    },
    /// Every primitive fails; at `end_at`, what is left is unwound.
    Hard {
        end_at: Instant,
    },
}

/// What a scheduler thread is made of.
pub(super) struct Setup {
    pub index: usize,
    pub stack_size: usize,
    pub region_bytes: usize,
    pub table: u32,
    pub accept: Acceptor,
}

pub(super) struct Worker {
    core: RefCell<Core>,
    remote: Arc<Remote>,
    /// The running green thread.
    current: Cell<Option<(u32, u32)>>,
    yielder: Cell<*const Yielder<(), ()>>,
    /// Green threads are being unwound at the end of a stop.
    unwinding: Cell<bool>,
    /// Descriptors dropped while the core was borrowed, closed next turn.
    orphans: RefCell<Vec<(u32, Option<u32>)>>,
    phase: Cell<Phase>,
    stack_size: usize,
    index: usize,
}

impl Worker {
    /// Sets up the ring on the calling thread, which becomes its only submitter.
    pub(super) fn new(setup: Setup, remote: Arc<Remote>) -> io::Result<Worker> {
        let ring = Ring::new(setup.table, "green", " (the green runtime needs it)")?;
        let pool = StackPool::new(setup.stack_size, setup.region_bytes);
        let stack_size = pool.stack_size();
        Ok(Worker {
            core: RefCell::new(Core::new(ring, pool, setup.accept, remote.clone())),
            remote,
            current: Cell::new(None),
            yielder: Cell::new(std::ptr::null()),
            unwinding: Cell::new(false),
            orphans: RefCell::new(Vec::new()),
            phase: Cell::new(Phase::Running),
            stack_size,
            index: setup.index,
        })
    }

    // ----- for the primitives -----

    pub(super) fn core(&self) -> std::cell::RefMut<'_, Core> {
        self.core.borrow_mut()
    }

    pub(super) fn current(&self) -> Option<(u32, u32)> {
        self.current.get()
    }

    pub(super) fn yielder(&self) -> *const Yielder<(), ()> {
        let y = self.yielder.get();
        assert!(!y.is_null(), "green: suspend outside a green thread");
        y
    }

    pub(super) fn remote(&self) -> &Arc<Remote> {
        &self.remote
    }

    pub(super) fn index(&self) -> usize {
        self.index
    }

    pub(super) fn is_unwinding(&self) -> bool {
        self.unwinding.get()
    }

    /// The running coroutine starts: remember its yielder.
    pub(super) fn started(&self, yielder: &Yielder<(), ()>) {
        self.yielder.set(yielder);
        if let Some(me) = self.current.get() {
            self.core().me(me).yielder = yielder;
        }
    }

    /// Unparks `(key, gen)` if `remote` is this scheduler's and its core is free.
    pub(super) fn unpark_here(&self, remote: &Arc<Remote>, key: u32, gen: u32) -> bool {
        if !Arc::ptr_eq(remote, &self.remote) {
            return false;
        }
        match self.core.try_borrow_mut() {
            Ok(mut c) => {
                c.unpark((key, gen));
                true
            }
            Err(_) => false,
        }
    }

    /// Closes a stream's descriptor without waiting; safe to call anywhere
    /// on this thread.
    pub(super) fn close_detached(&self, fd: u32, poll: Option<u32>) {
        match self.core.try_borrow_mut() {
            Ok(mut c) => c.close_detached(fd, poll),
            Err(_) => self.orphans.borrow_mut().push((fd, poll)),
        }
    }

    /// Starts a green thread running `f` on this scheduler.
    pub(super) fn spawn<F: FnOnce() + 'static>(&self, f: F) -> io::Result<(u32, u32)> {
        let stack = {
            let mut c = self.core();
            if c.stopping {
                return Err(super::stopping());
            }
            c.pool.get()
        };
        // `f` is dropped here, outside the borrow, if there was no stack.
        let stack = stack?;
        let bottom = stack.bottom();
        let co = Co::with_stack(stack, move |y, ()| body(y, f));
        let mut c = self.core();
        let who = c.insert_task(co, bottom);
        c.remote
            .counters
            .regions
            .store(c.pool.regions(), Ordering::Relaxed);
        Ok(who)
    }

    // ----- the loop -----

    /// Runs `main` as the first green thread, then serves until stopped.
    pub(super) fn run(&self, main: impl FnOnce() + 'static) -> StopReport {
        let _installed = context::install(self);
        {
            let mut c = self.core();
            c.arm_wake();
            c.arm_accept();
        }
        if let Err(e) = self.spawn(main) {
            eprintln!(
                "green-{}: cannot start the first green thread: {e}",
                self.index
            );
        }
        let mut report = StopReport::default();
        let mut cqes = Vec::new();
        let mut msgs = Vec::new();
        let mut next_shrink = Instant::now() + SHRINK;
        loop {
            let ended = self.run_ready();
            if self.phase.get() != Phase::Running {
                report.ended += ended;
            }
            self.close_orphans();
            let now = Instant::now();
            if self.is_done(now) {
                break;
            }
            if let Err(e) = self.wait(now, next_shrink) {
                eprintln!(
                    "green-{}: the ring failed; stopping this scheduler: {e}",
                    self.index
                );
                break;
            }
            self.reap(&mut cqes);
            self.take_messages(&mut msgs);
            let now = Instant::now();
            self.core().fire_timers(now);
            if now >= next_shrink {
                self.core().shrink();
                next_shrink = now + SHRINK;
            }
            self.advance_stop(now);
        }
        self.teardown(&mut report);
        report
    }

    /// Resumes the green threads queued now; returns how many ended.
    fn run_ready(&self) -> usize {
        let budget = self.core().ready.len();
        let mut ended = 0;
        for _ in 0..budget {
            let Some(key) = self.core().ready.pop_front() else {
                break;
            };
            if self.resume(key) {
                ended += 1;
            }
        }
        ended
    }

    /// Runs one green thread until it suspends; returns whether it ended.
    fn resume(&self, key: u32) -> bool {
        let (mut co, yielder, gen, bottom) = {
            let mut c = self.core();
            let Some(t) = c.tasks.get_mut(key as usize) else {
                return false;
            };
            t.queued = false;
            let Some(co) = t.co.take() else {
                return false;
            };
            (co, t.yielder, t.gen, t.bottom)
        };
        self.current.set(Some((key, gen)));
        self.yielder.set(yielder);
        let result = co.resume(());
        self.current.set(None);
        self.yielder.set(std::ptr::null());
        if !red_zone_is_zero(bottom) {
            overflow(self.stack_size);
        }
        match result {
            CoroutineResult::Yield(()) => {
                self.core().tasks[key as usize].co = Some(co);
                false
            }
            CoroutineResult::Return(()) => {
                self.finish(key, co);
                true
            }
        }
    }

    /// A green thread has returned: its stack goes back to the pool.
    fn finish(&self, key: u32, co: Co) {
        let stack = co.into_stack();
        let mut c = self.core();
        let task = c.tasks.remove(key as usize);
        c.remote.counters.tasks.fetch_sub(1, Ordering::Relaxed);
        if task.in_flight > 0 {
            // Not possible through the primitives (they wait for their
            // CQEs); if it were, the kernel may still write to this stack,
            // so its slot is never handed out again.
            let _ = stack;
            c.pool.leak();
        } else {
            c.pool.put(stack);
        }
    }

    fn close_orphans(&self) {
        let orphans = std::mem::take(&mut *self.orphans.borrow_mut());
        let mut c = self.core();
        for (fd, poll) in orphans {
            c.close_detached(fd, poll);
        }
    }

    /// Submits, and sleeps until something is due (not at all with green
    /// threads queued).
    fn wait(&self, now: Instant, next_shrink: Instant) -> io::Result<()> {
        let mut c = self.core();
        let mut timeout = Duration::ZERO;
        if c.ready.is_empty() && self.orphans.borrow().is_empty() {
            let mut until = now + IDLE;
            if c.has_room_to_give_back() {
                // Not otherwise, so that the eventfd path is not hidden
                // behind a short net (see `IDLE`).
                until = until.min(next_shrink);
            }
            if let Some(t) = c.timers.next() {
                until = until.min(t);
            }
            match self.phase.get() {
                Phase::Running => {}
                Phase::Soft { hard_at } => until = until.min(hard_at),
                Phase::Hard { end_at } if now < end_at => until = until.min(end_at),
                // Waiting for completions: look again now and then.
                Phase::Hard { .. } => until = until.min(now + Duration::from_millis(10)),
            }
            timeout = until.saturating_duration_since(now);
        }
        if timeout.is_zero() || !self.remote.sleep() {
            return c.ring.submit_and_wait(Duration::ZERO);
        }
        let r = c.ring.submit_and_wait(timeout);
        self.remote.awake();
        r
    }

    /// Handles every completion there is.
    fn reap(&self, cqes: &mut Vec<cqueue::Entry>) {
        let mut c = self.core();
        loop {
            cqes.clear();
            c.ring.completions(cqes);
            if cqes.is_empty() {
                return;
            }
            for cqe in cqes.iter() {
                let (res, flags) = (cqe.result(), cqe.flags());
                match Token::decode(cqe.user_data()) {
                    Some(Token::Op(key)) => c.on_op(key, res, cqueue::more(flags)),
                    Some(Token::Accept) => c.on_accept(res, flags),
                    Some(Token::Wake) => c.on_wake(),
                    Some(Token::Close) => c.on_close(),
                    Some(Token::Ignore) | None => {}
                }
            }
        }
    }

    /// Takes the messages of other threads.
    fn take_messages(&self, msgs: &mut Vec<Msg>) {
        self.remote.drain(msgs);
        for msg in msgs.drain(..) {
            match msg {
                Msg::Unpark(key, gen) => self.core().unpark((key, gen)),
                Msg::Spawn(f) => {
                    if let Err(e) = self.spawn(f) {
                        if !super::is_stopping(&e) {
                            eprintln!("green-{}: cannot spawn a green thread: {e}", self.index);
                        }
                    }
                }
                Msg::Stop(hard_at) => self.begin_stop(hard_at),
            }
        }
    }

    // ----- stopping -----

    fn begin_stop(&self, hard_at: Instant) {
        if self.phase.get() != Phase::Running {
            return;
        }
        let mut c = self.core();
        c.stopping = true;
        c.pool.end();
        c.cancel_accept();
        c.wake_all();
        self.phase.set(Phase::Soft { hard_at });
    }

    fn advance_stop(&self, now: Instant) {
        if let Phase::Soft { hard_at } = self.phase.get() {
            if now >= hard_at {
                let mut c = self.core();
                c.hard = true;
                c.wake_all();
                self.phase.set(Phase::Hard {
                    end_at: now + HARD_GRACE,
                });
            }
        }
    }

    /// After the grace period: green threads still there are unwound once
    /// none has an operation in the kernel, or left as they are (leaked)
    /// once even [`DRAIN`] more has not brought their completions.
    fn is_done(&self, now: Instant) -> bool {
        let c = self.core();
        match self.phase.get() {
            Phase::Running => false,
            Phase::Soft { .. } => c.tasks.is_empty(),
            Phase::Hard { end_at } => {
                c.tasks.is_empty()
                    || (now >= end_at && c.tasks.iter().all(|(_, t)| t.in_flight == 0))
                    || now >= end_at + DRAIN
            }
        }
    }

    /// Unwinds the green threads left (or leaks those the kernel still
    /// writes to), closes what is open and waits for the kernel to let go.
    fn teardown(&self, report: &mut StopReport) {
        {
            let mut c = self.core();
            c.stopping = true;
            c.hard = true;
        }
        let keys: Vec<u32> = self.core().tasks.iter().map(|(k, _)| k as u32).collect();
        for key in keys {
            if self.unwind(key) {
                report.unwound += 1;
            } else {
                report.leaked += 1;
            }
        }
        let mut c = self.core();
        c.cancel_accept();
        c.close_unaccepted();
        if c.wake_armed {
            let sqe = io_uring::opcode::AsyncCancel::new(Token::Wake.encode())
                .build()
                .user_data(Token::Ignore.encode());
            // SAFETY: a cancel names no memory.
            unsafe { c.push(&[sqe]) };
        }
        drop(c);
        let deadline = Instant::now() + DRAIN;
        let mut cqes = Vec::new();
        while self.core().is_busy() && Instant::now() < deadline {
            self.close_orphans();
            let r = self.core().ring.submit_and_wait(Duration::from_millis(10));
            if r.is_err() {
                break;
            }
            self.reap(&mut cqes);
        }
        let mut c = self.core();
        if c.is_busy() || report.leaked > 0 {
            // The kernel may still write into these: keep them.
            report.leaked_memory = true;
            c.pool.leak();
            std::mem::forget(std::mem::replace(&mut c.wake_buf, Box::new(0)));
        }
    }

    /// Unwinds a green thread left at the end of a stop; `false` if it has
    /// operations in flight, in which case it is leaked instead.
    fn unwind(&self, key: u32) -> bool {
        let (co, gen, in_flight) = {
            let mut c = self.core();
            let t = &mut c.tasks[key as usize];
            (t.co.take(), t.gen, t.in_flight)
        };
        let Some(mut co) = co else {
            return false;
        };
        if in_flight > 0 {
            std::mem::forget(co);
            let mut c = self.core();
            c.tasks.remove(key as usize);
            c.remote.counters.tasks.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        let yielder = self.core().tasks[key as usize].yielder;
        self.current.set(Some((key, gen)));
        self.yielder.set(yielder);
        self.unwinding.set(true);
        // Its destructors run now; every primitive fails at once (`hard`),
        // so nothing in them waits.
        co.force_unwind();
        self.unwinding.set(false);
        self.current.set(None);
        self.yielder.set(std::ptr::null());
        if !red_zone_is_zero(self.core().tasks[key as usize].bottom) {
            overflow(self.stack_size);
        }
        self.finish(key, co);
        true
    }
}

/// A green thread overran its stack (see `stack.rs`, `# Overflow`).
fn overflow(stack_size: usize) -> ! {
    eprintln!(
        "green: stack overflow: a green thread ran past the red zone of its {stack_size}-byte stack; \
         aborting (give green threads a larger stack, --thread-stack)"
    );
    std::process::abort()
}
