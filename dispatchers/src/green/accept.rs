//! A scheduler's listener: one multishot accept into the ring's fixed-file
//! table, and the connections it took, waiting for [`super::accept`].
//!
//! Accepted sockets are direct descriptors: they live in the ring's table,
//! not in the process's file table, so they do not count against
//! RLIMIT_NOFILE. The kernel caps a table at that limit, but per ring:
//! K schedulers hold up to K times it.
//!
//! # A full table
//! The scheduler counts the slots in use. A connection that takes the last
//! free slot is refused at once: it is sent the configured refusal (a `503`)
//! and closed, which frees the slot again, so that one slot is always there
//! to refuse with. A connection that arrives while even that slot is taken
//! is accepted and closed by the kernel (the CQE says `ENFILE`) before we
//! see it; it is counted as refused too.
//!
//! # Backpressure
//! At most [`QUEUE`] accepted connections wait for a green thread to take
//! them. At that many the multishot accept is cancelled, so that further
//! clients wait in the listen backlog, and it is armed again once the queue
//! has drained to half.

use std::collections::VecDeque;
use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use io_uring::types::{Fd, Fixed};
use io_uring::{cqueue, opcode, squeue};

use super::core::Core;
use super::op::Token;
use crate::accept_error::AcceptError;

/// Accepted connections that may wait for a green thread to take them.
pub(super) const QUEUE: usize = 1024;

/// Called once per refused connection, before it is answered.
pub type OnRefused = Arc<dyn Fn() + Send + Sync>;

pub(super) struct Acceptor {
    listener: Option<TcpListener>,
    /// Slots of the fixed-file table.
    table: u32,
    queue: VecDeque<u32>,
    /// Tasks waiting in `accept`.
    pub waiters: Vec<(u32, u32)>,
    armed: bool,
    /// Cancelled for backpressure (see `# Backpressure`).
    paused: bool,
    refusal: Option<&'static [u8]>,
    on_refused: Option<OnRefused>,
}

impl Acceptor {
    pub(super) fn new(
        listener: Option<TcpListener>,
        table: u32,
        refusal: Option<&'static [u8]>,
        on_refused: Option<OnRefused>,
    ) -> io::Result<Acceptor> {
        if let Some(l) = &listener {
            // Polled by the kernel rather than blocking an io-wq worker.
            l.set_nonblocking(true)?;
        }
        Ok(Acceptor {
            listener,
            table,
            queue: VecDeque::new(),
            waiters: Vec::new(),
            armed: false,
            paused: false,
            refusal,
            on_refused,
        })
    }

    pub(super) fn has_listener(&self) -> bool {
        self.listener.is_some()
    }

    pub(super) fn is_armed(&self) -> bool {
        self.armed
    }
}

impl Core {
    pub(super) fn arm_accept(&mut self) {
        let Some(l) = &self.accept.listener else {
            return;
        };
        if self.accept.armed || self.stopping {
            return;
        }
        let sqe = opcode::AcceptMulti::new(Fd(l.as_raw_fd()))
            .allocate_file_index(true)
            .build()
            .user_data(Token::Accept.encode());
        self.accept.armed = true;
        // SAFETY: a multishot accept into the table names no memory.
        unsafe { self.push(&[sqe]) }
    }

    /// Ends the multishot accept (its last CQE still comes).
    pub(super) fn cancel_accept(&mut self) {
        if !self.accept.armed {
            return;
        }
        let sqe = opcode::AsyncCancel::new(Token::Accept.encode())
            .build()
            .user_data(Token::Ignore.encode());
        // SAFETY: a cancel names no memory.
        unsafe { self.push(&[sqe]) }
    }

    pub(super) fn on_accept(&mut self, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        if !more {
            self.accept.armed = false;
        }
        let mut rearm = !more;
        if res >= 0 {
            self.open += 1;
            self.remote.counters.open.fetch_add(1, Ordering::Relaxed);
            self.remote
                .counters
                .accepted
                .fetch_add(1, Ordering::Relaxed);
            self.admit(res as u32);
        } else {
            match AcceptError::of(-res) {
                AcceptError::OutOfFiles => self.count_refused(),
                AcceptError::Cancelled => rearm = false,
                // The next one may well work.
                AcceptError::Transient | AcceptError::NoMemory => {}
                AcceptError::Unexpected => {
                    eprintln!(
                        "green: accept failed, this scheduler stops accepting: {}",
                        io::Error::from_raw_os_error(-res)
                    );
                    rearm = false;
                }
            }
        }
        if rearm && !self.accept.paused {
            self.arm_accept();
        }
        // The last CQE of an accept cancelled for backpressure: the queue
        // may have drained meanwhile, with nobody left to take from it.
        self.maybe_resume_accept();
    }

    /// Arms the accept again once a queue that paused it has drained to
    /// half (see `# Backpressure`) and the cancelled accept has ended.
    fn maybe_resume_accept(&mut self) {
        if self.accept.paused && !self.accept.armed && self.accept.queue.len() <= QUEUE / 2 {
            self.accept.paused = false;
            self.arm_accept();
        }
    }

    /// A connection in slot `fd`: queued for `accept`, or refused when it
    /// took the last slot (see `# A full table`) or the stop has begun.
    fn admit(&mut self, fd: u32) {
        if self.open >= self.accept.table || self.stopping {
            return self.refuse(fd);
        }
        self.accept.queue.push_back(fd);
        for who in std::mem::take(&mut self.accept.waiters) {
            self.wake(who);
        }
        if self.accept.queue.len() >= QUEUE && self.accept.armed {
            self.accept.paused = true;
            self.cancel_accept();
        }
    }

    fn count_refused(&mut self) {
        self.remote.counters.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = &self.accept.on_refused {
            f();
        }
    }

    /// Sends the refusal (if any) and closes.
    fn refuse(&mut self, fd: u32) {
        // Counted first, so that a client that reads the refusal finds it counted.
        self.count_refused();
        let close = opcode::Close::new(Fixed(fd))
            .build()
            .user_data(Token::Close.encode());
        self.closing += 1;
        let Some(bytes) = self.accept.refusal else {
            // SAFETY: a close names no memory.
            return unsafe { self.push(&[close]) };
        };
        let send = opcode::Send::new(Fixed(fd), bytes.as_ptr(), bytes.len() as u32)
            .flags(libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
            .build()
            .user_data(Token::Ignore.encode())
            // Hard: the close runs whether or not the send worked.
            .flags(squeue::Flags::IO_HARDLINK);
        // SAFETY: the send names `bytes`, which is 'static.
        unsafe { self.push(&[send, close]) }
    }

    /// The next accepted connection, if one waits.
    pub(super) fn take_accepted(&mut self) -> Option<u32> {
        let fd = self.accept.queue.pop_front();
        self.maybe_resume_accept();
        fd
    }

    /// Closes what was accepted and never taken (at the end of a stop).
    pub(super) fn close_unaccepted(&mut self) {
        while let Some(fd) = self.accept.queue.pop_front() {
            self.close_detached(fd, None);
        }
    }
}
