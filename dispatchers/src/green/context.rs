//! The scheduler of this OS thread, and the green thread running on it.
//!
//! A scheduler thread installs its [`Worker`] for its whole life; the
//! primitives find it here. Green threads never move to another OS thread,
//! so a green thread's thread-locals are its scheduler's, and stay valid
//! across its suspensions.

use std::cell::Cell;
use std::sync::Arc;

use super::remote::Remote;
use super::scheduler::Worker;

thread_local! {
    static WORKER: Cell<*const Worker> = const { Cell::new(std::ptr::null()) };
}

/// Uninstalls the worker when dropped.
pub(super) struct Installed(());

impl Drop for Installed {
    fn drop(&mut self) {
        WORKER.with(|w| w.set(std::ptr::null()));
    }
}

/// Makes `worker` this thread's scheduler until the guard drops; `worker`
/// must outlive the guard.
pub(super) fn install(worker: &Worker) -> Installed {
    WORKER.with(|w| w.set(worker));
    Installed(())
}

/// Runs `f` with this thread's scheduler, if it has one.
pub(super) fn try_with<R>(f: impl FnOnce(&Worker) -> R) -> Option<R> {
    let p = WORKER.with(|w| w.get());
    // SAFETY: a non-null pointer was set by `install` from a worker that
    // outlives its guard, which resets it to null before the worker goes.
    (!p.is_null()).then(|| f(unsafe { &*p }))
}

/// Runs `f` with this thread's scheduler.
///
/// # Panics
/// Off a green scheduler's thread: the primitives only work on green threads.
pub(super) fn with<R>(f: impl FnOnce(&Worker) -> R) -> R {
    try_with(f).expect("green: this primitive must be called on a green thread")
}

/// The running green thread: slab key and generation.
///
/// # Panics
/// When no green thread runs (on a scheduler's own stack, or elsewhere).
pub(super) fn current() -> (u32, u32) {
    with(|w| w.current())
        .expect("green: this primitive must be called on a green thread, not on its scheduler")
}

/// Suspends the running green thread until its scheduler resumes it.
pub(super) fn suspend() {
    let yielder = with(|w| w.yielder());
    // SAFETY: `yielder` is the running coroutine's own yielder (the scheduler
    // sets it before every resume), valid while that coroutine exists, and
    // used on its own stack only.
    unsafe { (*yielder).suspend(()) }
}

/// Unparks a task of this thread's scheduler directly, if `remote` is this
/// thread's; `false` if the caller must go through the queue.
pub(super) fn unpark_local(remote: &Arc<Remote>, key: u32, gen: u32) -> bool {
    try_with(|w| w.unpark_here(remote, key, gen)).unwrap_or(false)
}
