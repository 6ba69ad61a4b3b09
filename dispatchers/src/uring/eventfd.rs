//! The eventfd that wakes a ring: the ring keeps a read armed on it, and a
//! write from any thread completes that read.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::mailbox::Wake;

pub(super) struct EventFd(OwnedFd);

impl EventFd {
    pub(super) fn new() -> io::Result<EventFd> {
        // Non-blocking, so that io_uring polls it rather than parking a worker
        // thread in a blocking read.
        // SAFETY: eventfd takes no pointers; a negative result is an error.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub(super) fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Wake for EventFd {
    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. It can
        // only fail (EAGAIN) when the counter is near overflow, and then the
        // ring has a wake-up pending anyway.
        unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
    }
}
