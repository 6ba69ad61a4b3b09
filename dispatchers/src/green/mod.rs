//! The green runtime: stackful user-level threads on io_uring, so that
//! blocking-style code (one green thread per connection, the shape of
//! `thread-per-connection`) runs on a few OS threads.
//!
//! - [`Runtime::start`] starts `threads` schedulers. Each is one OS thread
//!   with its own run queue, its own io_uring ring and, if the runtime
//!   listens, its own `SO_REUSEPORT` listener. A green thread lives on the
//!   scheduler that started it; nothing migrates, nothing is shared but the
//!   queues other threads unpark through.
//! - A green thread is a [corosensei] coroutine on a stack from a
//!   [`StackPool`]: no mapping per stack (see `stack.rs`).
//! - On a green thread, the primitives look blocking and suspend it until
//!   their operation completes: [`accept`]; [`Stream::read`],
//!   [`Stream::writev`] with deadlines; [`Stream::shutdown`],
//!   [`Stream::close`]; [`Stream::wait`] for "the socket, an unpark, or a
//!   deadline"; [`park`], [`sleep_until`], [`yield_now`], [`spawn`]. An
//!   [`Unparker`] unparks a green thread from any OS thread.
//!
//! # Why corosensei and not `may`
//! `may` gives each coroutine stack its own `mmap` with a guard page (two
//! mappings), so at `vm.max_map_count` = 65,530 it cannot pass about 32,000
//! green threads; and its I/O is epoll over ordinary descriptors, so one
//! process cannot hold more connections than RLIMIT_NOFILE (20,000 here,
//! fixed). corosensei is only the context switch, with the stack left to
//! us: stacks come from a few large regions, and I/O goes through io_uring
//! with direct descriptors, which count against neither limit.
//!
//! # Memory of a green thread
//! Its stack costs the pages it touched (one, 4 KiB, for a green thread
//! parked in a read or a wait near the top of a small loop), nothing for
//! the rest (`MAP_NORESERVE`), and nothing after it ends (the pages are
//! given back). Beside it: its task record and, while it waits on a socket,
//! one operation record (a few dozen bytes each), and the kernel's
//! request for its armed operation.
//!
//! # Stopping
//! [`Runtime::stop`] asks every scheduler to stop with a grace period:
//! 1. the listener's accept is cancelled (later connections are refused);
//!    every green thread is woken. From now on [`accept`], [`Stream::read`],
//!    [`park`], [`Stream::wait`] and [`sleep_until`] return at once with the
//!    stop ([`Wake::stopping`], or an error [`is_stopping`] recognises), so
//!    that each can hand on what it holds, write it out and return. Writes
//!    and shutdowns still work: that is what the grace period is for.
//! 2. when the grace period ends, writes fail too, and operations in flight
//!    are cancelled; green threads get a moment more to return.
//! 3. then the green threads left are unwound (their destructors run, every
//!    primitive failing at once), the connections left are closed, and the
//!    scheduler waits for the kernel to finish with every operation. One the
//!    kernel has not finished keeps the memory it names: that green thread
//!    and the stack pool are leaked rather than freed under the kernel.
//!
//! # Buffer ownership
//! See `op.rs`: a primitive returns only after its operation's last CQE, so
//! a buffer on the green thread's stack is never reused while the kernel may
//! write to it.

mod accept;
mod context;
mod core;
mod io;
mod op;
mod park;
mod region;
mod remote;
mod runtime;
mod scheduler;
mod stack;
mod task;

pub use self::accept::OnRefused;
pub use self::io::{accept, Interest, Stream};
pub use self::park::{
    current, park, release_stack, scheduler_index, sleep_until, spawn, stop_requested, yield_now,
    Ready, Wake,
};
pub use self::remote::Unparker;
pub use self::runtime::{Config, Runtime, Stats, StopReport};
pub use self::stack::{stack_size, Stack, StackPool, DEFAULT_REGION, MIN_STACK, RED_ZONE};

/// The error of a primitive cut off by the stop (see `# Stopping`).
#[derive(Debug)]
pub struct Stopping;

impl std::fmt::Display for Stopping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the green scheduler is stopping")
    }
}

impl std::error::Error for Stopping {}

/// An `io::Error` of kind `ConnectionAborted` carrying [`Stopping`]: code
/// that treats any error as the end of its connection does the right thing.
pub(crate) fn stopping() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, Stopping)
}

/// Whether `e` is the error of a primitive cut off by the stop.
pub fn is_stopping(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Stopping>())
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "green: the deadline passed")
}
