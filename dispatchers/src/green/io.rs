//! Blocking-style socket primitives of a green thread: each submits one
//! operation to its scheduler's ring and suspends the green thread until
//! the operation's completion.
//!
//! # Deadlines
//! A deadline is a scheduler timer, not a kernel timeout: when it passes
//! first, the green thread cancels its operation and still waits for the
//! operation's CQE (see `op.rs`, `# Buffer ownership`). Bytes that arrived
//! as the cancel went in are returned, not lost. A deadline already passed
//! when the call starts makes the operation non-blocking (`MSG_DONTWAIT`):
//! a read then returns what has arrived, or times out at once.
//!
//! # Waiting on a socket and an unpark at once
//! [`Stream::wait`] keeps one multishot poll armed on the socket (asking
//! for a hang-up, or for bytes too) from its first call until the stream is
//! closed, and waits for that poll's events, an unpark, the deadline or the
//! stop, whichever comes first. A poll rather than a recv: it names no
//! buffer (a held connection costs no memory for it), consumes nothing the
//! client sends, and one armed poll serves every wait, so that waking a
//! held subscriber for a message costs no SQE, and no cancel either. The
//! poll is edge-triggered: each event is reported once, by the wait in
//! progress or the next one.

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::marker::PhantomData;
use std::net::Shutdown;
use std::time::Instant;

use io_uring::types::Fixed;
use io_uring::{opcode, squeue};

use super::context;
use super::core::Interrupt;
use super::op::Token;
use super::park::{wait_until, Wake};
use super::{stopping, timed_out};

/// What [`Stream::wait`] watches the socket for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// The client closing or resetting (`POLLRDHUP`, `POLLHUP`, `POLLERR`):
    /// what a held subscriber watches for. Bytes it sends do not wake.
    HangUp,
    /// Bytes to read, or a hang-up.
    Readable,
}

impl Interest {
    fn mask(self) -> u32 {
        match self {
            Interest::HangUp => libc::POLLRDHUP as u32,
            Interest::Readable => (libc::POLLIN | libc::POLLRDHUP) as u32,
        }
    }
}

/// A connection accepted by a scheduler, as a direct descriptor of its ring.
///
/// Not `Send`: the descriptor means something only to that ring, and a
/// green thread never leaves its scheduler. Dropping it closes the
/// connection without waiting; [`Stream::close`] waits and reports.
pub struct Stream {
    fd: u32,
    /// The multishot poll of [`Stream::wait`]: op key and mask.
    poll: Cell<Option<(u32, u32)>>,
    _local: PhantomData<*const ()>,
}

/// Takes the next connection accepted on this scheduler's listener,
/// waiting for one.
///
/// # Errors
/// `InvalidInput` if the runtime has no listener; the stopping error (see
/// [`super::is_stopping`]) once the stop has begun.
pub fn accept() -> io::Result<Stream> {
    let me = context::current();
    loop {
        let taken = context::with(|w| {
            let mut c = w.core();
            if !c.accept.has_listener() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "green: this runtime has no listener",
                ));
            }
            if c.stopping {
                return Err(stopping());
            }
            if let Some(fd) = c.take_accepted() {
                return Ok(Some(fd));
            }
            if !c.accept.waiters.contains(&me) {
                c.accept.waiters.push(me);
            }
            Ok(None)
        })?;
        if let Some(fd) = taken {
            return Ok(Stream {
                fd,
                poll: Cell::new(None),
                _local: PhantomData,
            });
        }
        context::suspend();
    }
}

/// Why an operation was cancelled.
#[derive(Clone, Copy)]
enum Cut {
    Deadline,
    Stop,
}

/// Submits `sqe` for the running green thread and suspends until its CQE;
/// the result is the CQE's (`Ok` for a non-negative one).
///
/// # Safety
/// What `sqe` points at lives on this green thread's stack (or longer) and
/// stays put until this returns, which is only after the CQE.
unsafe fn io(
    before: Option<squeue::Entry>,
    sqe: squeue::Entry,
    deadline: Option<Instant>,
    level: Interrupt,
) -> io::Result<i32> {
    let me = context::current();
    let key = context::with(|w| {
        let mut c = w.core();
        if c.is_stopped(level) {
            return Err(stopping());
        }
        // SAFETY: the caller's promise; `pins` makes the stop wait for the CQE.
        let key = unsafe { c.submit(me, before, sqe, false, true) };
        c.set_deadline(me, deadline);
        Ok(key)
    })?;
    let mut cut = None;
    let res = loop {
        context::suspend();
        let done = context::with(|w| {
            let mut c = w.core();
            if !c.ops[key as usize].armed {
                c.set_deadline(me, None);
                return Some(c.ops.remove(key as usize).res);
            }
            if cut.is_none() {
                if c.is_stopped(level) {
                    cut = Some(Cut::Stop);
                } else if deadline.is_some_and(|d| Instant::now() >= d) {
                    cut = Some(Cut::Deadline);
                }
                if cut.is_some() {
                    c.cancel(key);
                }
            }
            None
        });
        if let Some(res) = done {
            break res;
        }
    };
    match (res, cut) {
        (r, Some(Cut::Deadline)) if r == -libc::ECANCELED => Err(timed_out()),
        (r, Some(Cut::Stop)) if r == -libc::ECANCELED => Err(stopping()),
        (r, _) if r < 0 => Err(io::Error::from_raw_os_error(-r)),
        (r, _) => Ok(r),
    }
}

fn is_past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| d <= Instant::now())
}

/// `EAGAIN` of a non-blocking try at a passed deadline is a timeout.
fn again_is_timeout(r: io::Result<i32>) -> io::Result<i32> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Err(timed_out()),
        other => other,
    }
}

impl Stream {
    /// Slot in the ring's fixed-file table.
    pub fn fixed_fd(&self) -> u32 {
        self.fd
    }

    /// Reads into `buf`; `Ok(0)` is the end of the stream.
    ///
    /// # Errors
    /// `TimedOut` when `deadline` passes first; the stopping error once the
    /// stop has begun; the socket's error otherwise.
    pub fn read(&self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        let flags = if is_past(deadline) {
            libc::MSG_DONTWAIT
        } else {
            0
        };
        let len = buf.len().min(u32::MAX as usize) as u32;
        let sqe = opcode::Recv::new(Fixed(self.fd), buf.as_mut_ptr(), len)
            .flags(flags)
            .build();
        // SAFETY: `buf` is borrowed for the whole call, which returns only
        // after the CQE.
        let r = unsafe { io(None, sqe, deadline, Interrupt::Soft) };
        again_is_timeout(r).map(|n| n as usize)
    }

    /// Writes from `bufs` in one `sendmsg`; returns the bytes written, which
    /// may be fewer than given.
    ///
    /// # Errors
    /// `TimedOut` when `deadline` passes first (nothing was written then);
    /// the stopping error once the grace period of a stop is over; the
    /// socket's error otherwise (`EPIPE`, `ECONNRESET`; never `SIGPIPE`).
    pub fn writev(&self, bufs: &[IoSlice<'_>], deadline: Option<Instant>) -> io::Result<usize> {
        let mut flags = libc::MSG_NOSIGNAL as u32;
        if is_past(deadline) {
            flags |= libc::MSG_DONTWAIT as u32;
        }
        // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        // `IoSlice` is ABI compatible with `iovec` on Unix.
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = bufs.len() as _;
        let sqe = opcode::SendMsg::new(Fixed(self.fd), &msg)
            .flags(flags)
            .build();
        // SAFETY: `msg`, the iovecs and the bytes they name are borrowed by
        // this frame for the whole call, which returns only after the CQE.
        let r = unsafe { io(None, sqe, deadline, Interrupt::Hard) };
        again_is_timeout(r).map(|n| n as usize)
    }

    /// Writes all of `buf` (a convenience over [`Stream::writev`]).
    pub fn write_all(&self, mut buf: &[u8], deadline: Option<Instant>) -> io::Result<()> {
        while !buf.is_empty() {
            match self.writev(&[IoSlice::new(buf)], deadline)? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        };
        let sqe = opcode::Shutdown::new(Fixed(self.fd), how).build();
        // SAFETY: names no memory.
        unsafe { io(None, sqe, None, Interrupt::Hard) }.map(|_| ())
    }

    /// Closes the connection and waits for the close to complete.
    pub fn close(self) -> io::Result<()> {
        let me = std::mem::ManuallyDrop::new(self);
        let poll = me.poll.take();
        // An armed poll keeps the socket open: it is cancelled first, in a
        // hard link, so that the close runs whatever the cancel finds.
        let before = context::with(|w| {
            let mut c = w.core();
            let (key, _) = poll?;
            let armed = c.ops[key as usize].armed;
            if armed {
                c.ops[key as usize].cancelled = true;
            }
            c.detach(key);
            armed.then(|| {
                opcode::AsyncCancel::new(Token::Op(key).encode())
                    .build()
                    .user_data(Token::Ignore.encode())
            })
        });
        let sqe = opcode::Close::new(Fixed(me.fd)).build();
        // SAFETY: names no memory.
        let r = unsafe { io(before, sqe, None, Interrupt::Never) };
        if r.is_ok() {
            context::with(|w| w.core().closed());
        }
        r.map(|_| ())
    }

    /// Waits for the socket to show `interest`, an unpark of this green
    /// thread, `deadline`, or the stop, whichever comes first (see
    /// `# Waiting on a socket and an unpark at once`).
    ///
    /// With a passed deadline it returns at once, with what the poll has
    /// reported since the last wait: the check for a vanished client before
    /// a heartbeat (a direct descriptor cannot be given to `poll(2)`). The
    /// poll is armed at the first wait, so that check needs one wait before it.
    pub fn wait(&self, interest: Interest, deadline: Option<Instant>) -> Wake {
        let poll = self.arm_poll(interest.mask());
        wait_until(deadline, poll)
    }

    /// The poll for `mask`, armed (or re-armed) and owned by the running
    /// green thread; `None` when the stop has begun.
    fn arm_poll(&self, mask: u32) -> Option<u32> {
        let me = context::current();
        context::with(|w| {
            let mut c = w.core();
            if c.hard {
                return None;
            }
            let mut leftover = 0;
            match self.poll.get() {
                Some((key, m)) if m == mask && c.ops[key as usize].armed => {
                    c.ops[key as usize].owner = me;
                    return Some(key);
                }
                Some((key, _)) => {
                    // Ended (events kept for this wait) or watching for other events.
                    leftover = std::mem::take(&mut c.ops[key as usize].events);
                    c.detach(key);
                }
                None => {}
            }
            let sqe = opcode::PollAdd::new(Fixed(self.fd), mask)
                .multi(true)
                .build();
            // SAFETY: a poll names no memory.
            let key = unsafe { c.submit(me, None, sqe, true, false) };
            c.ops[key as usize].events = leftover;
            self.poll.set(Some((key, mask)));
            Some(key)
        })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let poll = self.poll.take().map(|(key, _)| key);
        // Off its scheduler's thread the ring is gone, and its table with it.
        context::try_with(|w| w.close_detached(self.fd, poll));
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("fixed_fd", &self.fd)
            .finish()
    }
}
