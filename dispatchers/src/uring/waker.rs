//! A ring's inbox: the messages other threads publish to its subscribers,
//! and the eventfd that wakes it.
//!
//! # Waking once per burst
//! [`Waker::deliver`] always queues the message, but writes the eventfd only
//! when `notified` was clear. The ring clears `notified` *before* it drains
//! the queue, so a message queued after the drain began either is seen by
//! that drain or finds `notified` clear and writes the eventfd again: none
//! is left waiting, and a burst of publishes costs one wake-up.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use comet::Message;
use crossbeam_channel::Sender;

use crate::shared::Inbox;

pub(super) struct Waker {
    tx: Sender<Arc<Message>>,
    fd: OwnedFd,
    notified: AtomicBool,
}

impl Waker {
    pub(super) fn new(tx: Sender<Arc<Message>>) -> io::Result<Waker> {
        // Non-blocking, so that io_uring polls it rather than parking a worker
        // thread in a blocking read.
        // SAFETY: eventfd takes no pointers; a negative result is an error.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Waker {
            tx,
            // SAFETY: `fd` was just created and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            notified: AtomicBool::new(false),
        })
    }

    pub(super) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Wakes the ring whether or not it was notified (used to stop it).
    pub(super) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. It can
        // only fail (EAGAIN) when the counter is near overflow, and then the
        // ring has a wake-up pending anyway.
        unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
    }

    /// The ring is about to drain its queue: later messages must wake it again.
    pub(super) fn clear(&self) {
        self.notified.store(false, Ordering::SeqCst);
    }
}

impl Inbox for Waker {
    fn deliver(&self, message: &Arc<Message>) {
        if self.tx.send(message.clone()).is_err() {
            // The ring has ended; nobody is left to deliver to.
            return;
        }
        if !self.notified.swap(true, Ordering::SeqCst) {
            self.wake();
        }
    }
}
