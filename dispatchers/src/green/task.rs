//! One green thread as its scheduler keeps it: a coroutine on a pooled
//! stack, and what it waits for.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Instant;

use corosensei::{Coroutine, Yielder};

use super::context;
use super::stack::Stack;
use crate::timers::{Armed, Tick};

/// A green thread's coroutine: resumed with nothing, suspends with nothing.
pub(super) type Co = Coroutine<(), (), (), Stack>;

pub(super) struct Task {
    /// `None` while it runs (the scheduler holds it then).
    pub co: Option<Co>,
    pub gen: u32,
    /// Set by the coroutine itself when it first runs.
    pub yielder: *const Yielder<(), ()>,
    /// Lowest address of its stack, where the red zone is.
    pub bottom: usize,
    /// In the run queue.
    pub queued: bool,
    /// The unpark permit.
    pub unparked: bool,
    /// The deadline of its current wait.
    pub deadline: Option<Instant>,
    /// The tick of the entry it has in the timer heap, if any (see `crate::timers`).
    pub armed: Tick,
    /// Operations naming its stack that the kernel still holds (see `op.rs`).
    pub in_flight: u32,
}

impl Armed for Task {
    fn armed(&mut self) -> &mut Tick {
        &mut self.armed
    }
}

impl Task {
    pub(super) fn new(co: Co, gen: u32, bottom: usize) -> Task {
        Task {
            co: Some(co),
            gen,
            yielder: std::ptr::null(),
            bottom,
            queued: false,
            unparked: false,
            deadline: None,
            armed: 0,
            in_flight: 0,
        }
    }
}

/// The whole life of a green thread running `f`.
pub(super) fn body<F: FnOnce()>(yielder: &Yielder<(), ()>, f: F) {
    context::with(|w| w.started(yielder));
    if let Err(panic) = catch_unwind(AssertUnwindSafe(f)) {
        // The scheduler unwinds green threads left at the end of a stop by
        // a panic of corosensei's own, which must reach the coroutine's root.
        if context::with(|w| w.is_unwinding()) {
            resume_unwind(panic);
        }
        // One bad green thread must never take its scheduler down.
        eprintln!("green: a green thread panicked and ended; its scheduler goes on");
    }
}
