//! Thread-per-connection: one OS thread per accepted connection, blocking
//! `std::net` ([`crate::blocking`]), as the first Comet servers did.
//!
//! # Why raw pthreads
//! A Rust `std::thread` takes four memory mappings (stack, guard page, and the
//! signal stack with its own guard), so a process aborts near 16,000 threads
//! when it reaches `vm.max_map_count` (65,530). Connection threads here are
//! raw pthreads: detached, with the configured stack (`--thread-stack`,
//! rounded up to a page, at least [`MIN_STACK`]) and no guard
//! page, one mapping each (adjacent stacks may even merge). The ceiling is
//! then `pid_max` or memory, and reaching it is an error, not an abort: when
//! `pthread_create` fails the connection gets a `503` and is closed (counted
//! in `refused`), and the server goes on. Measured here (2026-11-24, 64 KiB
//! stacks): 19,987 connection threads in one process with 75 mappings in all;
//! what stopped it was the open-file limit (20,000), where the acceptor
//! answers `503` (see [`crate::blocking`], `# Out of descriptors`).
//!
//! # Stack
//! Without a guard page an overflow is not caught: it writes into whatever
//! lies below the stack. So the stack is at least [`MIN_STACK`] (64 KiB),
//! whatever is asked. Measured on painted stacks (2026-11-24): serving a
//! connection (subscribe, heartbeats, publish of 60 KB, `/stats`, errors)
//! touches at most 10.5 KiB in a release build and 17 KiB in a debug build,
//! of which about 5 KiB is the thread's TLS and descriptor that glibc carves
//! from the stack; a caught panic alone touches 26 KiB. RSS counts touched
//! pages only, so a smaller stack would save address space, not memory.
//!
//! # Stopping
//! After publishing has stopped ([`crate`] `# Stopping`), `stop` sets a flag
//! and shuts the listener down, which wakes the acceptor, and waits for it to
//! end. Then it wakes every connection thread through the [`Live`] set: each
//! hands on the messages in its inbox, writes out what is queued and closes
//! (see [`crate::blocking`] `# Stopping`). `stop` returns once every thread
//! has unregistered, or after [`crate::STOP_GRACE`] with the stragglers'
//! sockets shut down. The threads are detached, not joined.

use std::io;
use std::net::TcpStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::blocking::{accept_loop, refuse, serve_conn_until, wake_acceptor, Live};
use crate::hangup::Watcher;
use crate::memory::release_stack;
use crate::{Kind, Options, Running, Shared};

/// The smallest connection thread stack used, whatever `--thread-stack` asks:
/// enough for a panic in the deepest frame (see `# Stack`).
pub const MIN_STACK: usize = 64 * 1024;

pub fn start(opts: &Options) -> io::Result<Running> {
    let shared = Arc::new(Shared::for_options(
        opts,
        Kind::ThreadPerConn.name(),
        crate::settings_json(Kind::ThreadPerConn, opts),
        0,
    )?);
    let spawner = Spawner::new(opts.thread_stack)?;
    let listener = crate::listen::listener(opts.listen, opts.reuse_port)?;
    let addr = listener.local_addr()?;
    let waker = listener.try_clone()?;
    let stop = Arc::new(AtomicBool::new(false));
    let live = Arc::new(Live::default());
    let watcher = {
        let shared = shared.clone();
        Watcher::start(move || {
            shared.housekeeping(Instant::now());
        })?
    };
    let acceptor = {
        let shared = shared.clone();
        let stop = stop.clone();
        let live = live.clone();
        std::thread::Builder::new()
            .name("tpc-accept".into())
            .spawn(move || {
                accept_loop(&listener, &stop, &shared, |stream, accepted| {
                    spawner.spawn(stream, accepted, &shared, &live, &watcher)
                })
            })?
    };
    let stop_fn = move || {
        let deadline = Instant::now() + crate::STOP_GRACE;
        stop.store(true, Ordering::Relaxed);
        wake_acceptor(&waker);
        let _ = acceptor.join();
        live.stop();
        live.wait(deadline);
    };
    Ok(Running::new(addr, shared, Box::new(stop_fn)))
}

/// Creates connection threads: the attributes, prepared once.
struct Spawner {
    /// Boxed so that it never moves once initialised.
    attr: Box<libc::pthread_attr_t>,
}

// SAFETY: the attributes are only read by `pthread_create`, from the one
// thread that owns the spawner.
unsafe impl Send for Spawner {}

impl Spawner {
    fn new(stack: usize) -> io::Result<Spawner> {
        let stack = stack_size(stack);
        // SAFETY: all-zero is a valid bit pattern for the plain C struct;
        // `pthread_attr_init` initialises it before any other use, and `Drop`
        // destroys it once `spawner` exists.
        unsafe {
            let mut attr: Box<libc::pthread_attr_t> = Box::new(std::mem::zeroed());
            check(libc::pthread_attr_init(&mut *attr))?;
            let mut spawner = Spawner { attr };
            let attr: *mut libc::pthread_attr_t = &mut *spawner.attr;
            check(libc::pthread_attr_setdetachstate(
                attr,
                libc::PTHREAD_CREATE_DETACHED,
            ))?;
            check(libc::pthread_attr_setstacksize(attr, stack))?;
            check(libc::pthread_attr_setguardsize(attr, 0))?;
            Ok(spawner)
        }
    }

    /// Serves `stream` on a new thread, or refuses it with a `503`.
    fn spawn(
        &self,
        stream: TcpStream,
        accepted: Instant,
        shared: &Arc<Shared>,
        live: &Arc<Live>,
        watcher: &Arc<Watcher>,
    ) {
        let start = Box::into_raw(Box::new(Start {
            stream,
            accepted,
            shared: shared.clone(),
            live: live.clone(),
            watcher: watcher.clone(),
        }));
        let mut thread: libc::pthread_t = 0;
        // SAFETY: `attr` was initialised in `new`; on success the new thread
        // owns `start` and frees it, on failure it is still ours.
        let r = unsafe {
            libc::pthread_create(
                &mut thread,
                &*self.attr,
                conn_thread,
                start.cast::<libc::c_void>(),
            )
        };
        if r != 0 {
            // EAGAIN (pid_max, threads-max, RLIMIT_NPROC) or ENOMEM.
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "cometbench: pthread_create: {}: answering 503 to connections without a thread",
                    io::Error::from_raw_os_error(r)
                );
            }
            // SAFETY: no thread took `start`.
            let start = unsafe { Box::from_raw(start) };
            refuse(start.stream, shared);
        }
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`.
        unsafe {
            libc::pthread_attr_destroy(&mut *self.attr);
        }
    }
}

/// What a connection thread starts with.
struct Start {
    stream: TcpStream,
    accepted: Instant,
    shared: Arc<Shared>,
    live: Arc<Live>,
    watcher: Arc<Watcher>,
}

/// Entry point of a connection thread.
extern "C" fn conn_thread(arg: *mut libc::c_void) -> *mut libc::c_void {
    // A new thread inherits its creator's name; `top -H` and the sampler
    // should tell connection threads from the acceptor.
    // SAFETY: a NUL-terminated name of at most 16 bytes, for this thread.
    unsafe {
        libc::pthread_setname_np(libc::pthread_self(), c"tpc-conn".as_ptr());
    }
    // `serve_conn_until` catches panics itself; this one keeps anything else
    // (a panic while dropping) from unwinding across the FFI boundary.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `arg` is the `Box<Start>` leaked by `Spawner::spawn`, handed
        // to exactly this thread.
        let start = unsafe { Box::from_raw(arg.cast::<Start>()) };
        let Start {
            stream,
            accepted,
            shared,
            live,
            watcher,
        } = *start;
        serve_conn_until(stream, accepted, &shared, &live, Some(&watcher));
    }));
    // glibc keeps the stacks of ended threads (up to 40 MiB of them) with
    // the pages they touched; give back what lies below this frame first.
    release_stack();
    std::ptr::null_mut()
}

/// `requested` rounded up to a whole page, to [`MIN_STACK`] and to the system minimum.
pub fn stack_size(requested: usize) -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if page > 0 { page as usize } else { 4096 };
    // SAFETY: as above.
    let min = unsafe { libc::sysconf(libc::_SC_THREAD_STACK_MIN) };
    let min = (min.max(0) as usize)
        .max(libc::PTHREAD_STACK_MIN)
        .max(MIN_STACK);
    requested.max(min).div_ceil(page) * page
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

#[cfg(test)]
mod tests {
    use super::{stack_size, MIN_STACK};

    #[test]
    fn stack_rounding() {
        assert_eq!(stack_size(96 * 1024), 96 * 1024);
        assert_eq!(stack_size(96 * 1024 + 1), 100 * 1024);
        assert_eq!(stack_size(1), MIN_STACK);
        assert_eq!(stack_size(16 * 1024), MIN_STACK);
    }
}
