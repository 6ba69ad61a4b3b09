//! The connections a thread dispatcher serves, so that a stop can wake each
//! one and wait for it to end (see the module docs, `# Stopping`).

use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use slab::Slab;

use super::inbox::ThreadInbox;

/// The connections a thread dispatcher serves.
#[derive(Default)]
pub(crate) struct Live {
    state: Mutex<LiveState>,
    /// Signalled when the last connection unregisters.
    empty: Condvar,
}

#[derive(Default)]
struct LiveState {
    /// Each connection's socket and inbox. The socket stays open while it is
    /// here (its thread unregisters before closing it), so shutting it down
    /// under the lock never reaches a descriptor number reused meanwhile.
    conns: Slab<(RawFd, Arc<ThreadInbox>)>,
    stopped: bool,
}

impl Live {
    fn lock(&self) -> MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a connection; `None` once stopped (the caller closes it at once).
    pub(super) fn register(&self, fd: RawFd, inbox: &Arc<ThreadInbox>) -> Option<usize> {
        let mut st = self.lock();
        (!st.stopped).then(|| st.conns.insert((fd, inbox.clone())))
    }

    /// Removes a connection; call before its socket closes.
    pub(super) fn unregister(&self, key: usize) {
        let mut st = self.lock();
        st.conns.try_remove(key);
        if st.conns.is_empty() {
            self.empty.notify_all();
        }
    }

    /// Marks every connection stopped and wakes its thread, wherever it waits;
    /// connections registering later are refused.
    pub(crate) fn stop(&self) {
        let mut st = self.lock();
        st.stopped = true;
        for (_, (fd, inbox)) in st.conns.iter() {
            // The mark first: a thread woken by the shutdown below (EOF, or
            // the watcher's hang-up) finds it and delivers before closing.
            inbox.stop();
            // SAFETY: `fd` is open while registered (see `LiveState::conns`).
            unsafe {
                libc::shutdown(*fd, libc::SHUT_RD);
            }
        }
    }

    /// Waits until every connection has ended or `deadline` passes; then
    /// shuts the rest down whole, which ends a write blocked on a client that
    /// does not read, and gives their threads a moment to go.
    pub(crate) fn wait(&self, deadline: Instant) {
        let mut st = self.lock();
        while !st.conns.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .empty
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        for (_, (fd, _)) in st.conns.iter() {
            // SAFETY: as in `stop`.
            unsafe {
                libc::shutdown(*fd, libc::SHUT_RDWR);
            }
        }
        // The threads now fail at once; they are not joined beyond this.
        let end = Instant::now() + Duration::from_millis(100);
        while !st.conns.is_empty() && Instant::now() < end {
            st = self
                .empty
                .wait_timeout(st, end.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
