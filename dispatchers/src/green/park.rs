//! Waiting without a socket: park and unpark, sleep, yield; and starting
//! green threads.

use std::io;
use std::time::Instant;

use super::context;
use super::remote::Unparker;
use super::stopping;

/// Socket events a wait saw (`poll(2)` bits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready(pub u32);

impl Ready {
    /// Bytes (or the end of the stream) to read.
    pub fn is_readable(self) -> bool {
        self.0 & libc::POLLIN as u32 != 0
    }

    /// The client closed its side, or the connection is gone.
    pub fn is_hung_up(self) -> bool {
        self.0 & (libc::POLLRDHUP | libc::POLLHUP) as u32 != 0
    }

    /// The socket (or the poll on it) failed.
    pub fn is_error(self) -> bool {
        self.0 & libc::POLLERR as u32 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// What ended a wait; several may hold at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wake {
    /// The green thread was unparked (the permit is taken).
    pub unparked: bool,
    /// Socket events, for [`super::Stream::wait`].
    pub ready: Ready,
    /// The deadline passed.
    pub timed_out: bool,
    /// The scheduler is stopping: finish up and return.
    pub stopping: bool,
}

impl Wake {
    fn any(&self) -> bool {
        self.unparked || !self.ready.is_empty() || self.timed_out || self.stopping
    }
}

/// Suspends until an unpark, poll `poll`'s events (if any), `deadline` or
/// the stop.
pub(super) fn wait_until(deadline: Option<Instant>, poll: Option<u32>) -> Wake {
    let me = context::current();
    loop {
        let woken = context::with(|w| {
            let mut c = w.core();
            let mut wake = Wake {
                stopping: c.stopping,
                timed_out: deadline.is_some_and(|d| Instant::now() >= d),
                ..Wake::default()
            };
            wake.unparked = std::mem::take(&mut c.me(me).unparked);
            if let Some(p) = poll {
                wake.ready = Ready(std::mem::take(&mut c.ops[p as usize].events));
            }
            let done = wake.any();
            c.set_deadline(me, if done { None } else { deadline });
            done.then_some(wake)
        });
        if let Some(wake) = woken {
            return wake;
        }
        context::suspend();
    }
}

/// Suspends the running green thread until it is unparked (see
/// [`Unparker`]), `deadline` passes, or the stop begins.
pub fn park(deadline: Option<Instant>) -> Wake {
    wait_until(deadline, None)
}

/// Suspends until `at`. Unparks do not end a sleep (the permit stays).
///
/// # Errors
/// The stopping error when the stop begins first.
pub fn sleep_until(at: Instant) -> io::Result<()> {
    let me = context::current();
    loop {
        let over = context::with(|w| {
            let mut c = w.core();
            if c.stopping {
                c.set_deadline(me, None);
                return Some(Err(stopping()));
            }
            if Instant::now() >= at {
                c.set_deadline(me, None);
                return Some(Ok(()));
            }
            c.set_deadline(me, Some(at));
            None
        });
        if let Some(r) = over {
            return r;
        }
        context::suspend();
    }
}

/// Lets the other green threads of this scheduler run first.
pub fn yield_now() {
    let me = context::current();
    context::with(|w| {
        let mut c = w.core();
        let t = c.me(me);
        if !std::mem::replace(&mut t.queued, true) {
            c.ready.push_back(me.0);
        }
    });
    context::suspend();
}

/// Starts a green thread running `f` on the running green thread's
/// scheduler; returns a handle that unparks it.
///
/// # Errors
/// The stopping error once the stop has begun; the pool's error when no
/// stack can be had (a region could not be mapped).
pub fn spawn<F: FnOnce() + 'static>(f: F) -> io::Result<Unparker> {
    context::with(|w| {
        let (key, gen) = w.spawn(f)?;
        Ok(Unparker {
            remote: w.remote().clone(),
            key,
            gen,
        })
    })
}

/// A handle that unparks the running green thread.
pub fn current() -> Unparker {
    let (key, gen) = context::current();
    context::with(|w| Unparker {
        remote: w.remote().clone(),
        key,
        gen,
    })
}

/// Whether this scheduler's stop has begun.
pub fn stop_requested() -> bool {
    context::with(|w| w.core().stopping)
}

/// Which scheduler (0 to `threads - 1`) the running green thread is on.
pub fn scheduler_index() -> usize {
    context::with(|w| w.index())
}

/// Gives back the pages of the running green thread's stack below its
/// current frame, which hold nothing live ([`crate::memory`]'s, down to the
/// red zone, which stays as it is); returns the bytes given back. A green
/// thread about to wait for long calls it after deep work (parsing a
/// request, answering it), so that it holds the pages of its waiting frames
/// only, not those of its deepest call.
pub fn release_stack() -> usize {
    let me = context::current();
    let bottom = context::with(|w| w.core().me(me).bottom);
    // SAFETY: [red zone top, the caller's frame) is the running green
    // thread's own stack, unused below the running frame.
    unsafe { crate::memory::release_stack_down_to(bottom + super::RED_ZONE) }
}
