//! What other OS threads hand a scheduler: unparks, spawns and the stop,
//! through a queue and an eventfd the scheduler's ring keeps a read armed on.
//!
//! # Waking only a sleeping ring
//! [`Remote::push`] always queues, but writes the eventfd only when it is
//! the first push since the scheduler last drained (`pending` was clear)
//! *and* the scheduler is asleep in `io_uring_enter` (or about to be). All
//! four flag accesses are `SeqCst`, so of "the scheduler sets `sleeping`,
//! then reads `pending`" and "a pusher sets `pending`, then reads
//! `sleeping`" at least one side sees the other: either the scheduler does
//! not sleep, or the pusher wakes it. An unpark aimed at a busy scheduler,
//! or the second of a burst, costs a lock and two atomics, no system call.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::context;

/// A request from another thread.
pub(super) enum Msg {
    /// Unpark the task with this slab key and generation.
    Unpark(u32, u32),
    /// Run this as a new green thread.
    Spawn(Box<dyn FnOnce() + Send>),
    /// Stop: wake every green thread now, cut off what is left at the instant.
    Stop(Instant),
}

/// Counters a scheduler keeps for whoever reads [`super::Runtime::stats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub tasks: AtomicUsize,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub open: AtomicUsize,
    pub regions: AtomicUsize,
}

pub(super) struct Remote {
    queue: Mutex<Vec<Msg>>,
    pending: AtomicBool,
    sleeping: AtomicBool,
    fd: OwnedFd,
    pub(super) counters: Counters,
}

impl Remote {
    pub(super) fn new() -> io::Result<Remote> {
        // Non-blocking, so that io_uring polls it rather than parking a
        // worker thread in a blocking read.
        // SAFETY: eventfd takes no pointers; a negative result is an error.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Remote {
            queue: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            // SAFETY: `fd` was just created and nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            counters: Counters::default(),
        })
    }

    pub(super) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(super) fn push(&self, msg: Msg) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg);
        if !self.pending.swap(true, Ordering::SeqCst) && self.sleeping.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. It can
        // only fail (EAGAIN) when the counter is near overflow, and then a
        // wake-up is pending anyway.
        unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
    }

    /// The scheduler is about to sleep; `false` if a message came first
    /// (then it must not sleep).
    pub(super) fn sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        if self.pending.load(Ordering::SeqCst) {
            self.sleeping.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    pub(super) fn awake(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }

    /// Takes every queued message into `out` (empty when nothing was pushed
    /// since the last call: one atomic load, no lock).
    pub(super) fn drain(&self, out: &mut Vec<Msg>) {
        if !self.pending.load(Ordering::SeqCst) {
            return;
        }
        // Cleared before taking: a push after this either lands in this take
        // or sets `pending` again for the next turn.
        self.pending.store(false, Ordering::SeqCst);
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        mem::swap(&mut *q, out);
    }
}

/// A handle that unparks one green thread, from any OS thread.
///
/// Unparking gives the green thread a permit, as `std::thread::Thread::unpark`
/// does: its next (or current) [`super::park`] or [`super::Stream::wait`]
/// returns at once with `unparked` set. Permits do not add up. Unparking a
/// green thread that has ended does nothing.
#[derive(Clone)]
pub struct Unparker {
    pub(super) remote: Arc<Remote>,
    pub(super) key: u32,
    pub(super) gen: u32,
}

impl Unparker {
    pub fn unpark(&self) {
        // On the target's own scheduler (a green thread unparking another),
        // the permit is set directly.
        if context::unpark_local(&self.remote, self.key, self.gen) {
            return;
        }
        self.remote.push(Msg::Unpark(self.key, self.gen));
    }
}

impl std::fmt::Debug for Unparker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unparker")
            .field("key", &self.key)
            .field("gen", &self.gen)
            .finish()
    }
}
