//! The hang-up watcher of the thread dispatchers: one thread and one epoll set
//! per dispatcher that notices a held connection's client going away.
//!
//! A connection thread that holds a long-poll or a stream blocks on its inbox,
//! not on its socket, so without help it would notice a vanished client only at
//! its next write or heartbeat (15 s by default): after a disconnect storm, its
//! thread, descriptor and subscription would all outlive the client by that
//! long. So each held connection's socket is in the watcher's epoll set with
//! `EPOLLRDHUP` (a FIN), plus `EPOLLHUP` and `EPOLLERR` (a reset), which epoll
//! always reports. When one fires, the watcher wakes the owning thread through
//! its [`HangUp`] target; the thread checks the socket itself and closes.
//!
//! The socket is registered as it is (no `dup`), so the watcher costs no
//! descriptor per connection, only an epoll item in the kernel (~150 bytes)
//! and an entry in the watcher's map. Registration is edge-triggered: one
//! wake-up per change of state, never a busy loop on a half-closed socket.
//!
//! A WebSocket's client may send at any time, so its socket is watched for
//! bytes to read too ([`Watcher::watch_readable`], `EPOLLIN`): the owning
//! thread is woken for each arrival and reads what is there without
//! blocking.
//!
//! The epoll set's items carry an id, not a pointer: the watcher looks the id
//! up under a lock, so a hang-up racing with the connection's own end finds
//! nothing (or an entry that is still alive) rather than freed memory.
//!
//! # Housekeeping
//! The thread wakes at least once per [`TICK`] to run the dispatcher's
//! housekeeping (expiring channels, giving memory back after a mass close:
//! see [`crate::shared::Shared::housekeeping`]), and ends at such a tick once
//! nobody else holds the watcher.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Longest wait of the watcher thread between two housekeeping runs.
pub const TICK: Duration = Duration::from_secs(1);

/// Events taken per `epoll_wait`.
const BATCH: usize = 256;

/// What the watcher wakes when a watched connection's client goes away.
pub trait HangUp: Send + Sync {
    /// Called on the watcher thread; must not block.
    fn hung_up(&self);
}

struct Registry {
    next: u64,
    targets: HashMap<u64, Arc<dyn HangUp>>,
}

/// One dispatcher's hang-up watcher (see the module docs).
pub struct Watcher {
    epoll: OwnedFd,
    registry: Mutex<Registry>,
}

/// A connection's registration; [`Watcher::unwatch`] it before its socket closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    id: u64,
    fd: RawFd,
}

impl Watcher {
    /// Starts the watcher thread. `housekeeping` runs on it at least once per
    /// [`TICK`].
    pub fn start(housekeeping: impl Fn() + Send + 'static) -> io::Result<Arc<Watcher>> {
        // SAFETY: no pointer arguments; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let watcher = Arc::new(Watcher {
            // SAFETY: `fd` is a new descriptor that nothing else owns.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            registry: Mutex::new(Registry {
                next: 1,
                targets: HashMap::new(),
            }),
        });
        let w = watcher.clone();
        std::thread::Builder::new()
            .name("hangup-watch".into())
            .stack_size(128 * 1024)
            .spawn(move || w.run(housekeeping))?;
        Ok(watcher)
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches `fd` (a connected socket) until [`Watcher::unwatch`]; `target`
    /// is woken when its peer closes or resets. A peer already gone when this
    /// is called is reported at once.
    pub fn watch(&self, fd: RawFd, target: Arc<dyn HangUp>) -> io::Result<Watch> {
        self.add(fd, target, libc::EPOLLRDHUP)
    }

    /// As [`Watcher::watch`], and `target` is woken when bytes arrive too
    /// (edge-triggered: once per arrival, so the owner reads until
    /// `EWOULDBLOCK` each time).
    pub fn watch_readable(&self, fd: RawFd, target: Arc<dyn HangUp>) -> io::Result<Watch> {
        self.add(fd, target, libc::EPOLLRDHUP | libc::EPOLLIN)
    }

    fn add(&self, fd: RawFd, target: Arc<dyn HangUp>, events: i32) -> io::Result<Watch> {
        let id = {
            let mut r = self.registry();
            let id = r.next;
            r.next += 1;
            r.targets.insert(id, target);
            id
        };
        let mut ev = libc::epoll_event {
            events: (events | libc::EPOLLET) as u32,
            u64: id,
        };
        // SAFETY: valid descriptors and a valid event struct; the kernel copies it.
        let r =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            let err = io::Error::last_os_error();
            self.registry().targets.remove(&id);
            return Err(err);
        }
        Ok(Watch { id, fd })
    }

    /// Stops watching; call while the socket is still open.
    pub fn unwatch(&self, w: Watch) {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL (since 2.6.9).
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                w.fd,
                std::ptr::null_mut(),
            );
        }
        let mut r = self.registry();
        r.targets.remove(&w.id);
        // A storm leaves a map sized for its peak; give that back once it is
        // mostly empty.
        if r.targets.capacity() > 1024 && r.targets.len() < r.targets.capacity() / 8 {
            r.targets.shrink_to_fit();
        }
    }

    /// Connections watched now.
    pub fn len(&self) -> usize {
        self.registry().targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn run(self: Arc<Watcher>, housekeeping: impl Fn()) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; BATCH];
        let mut woken: Vec<Arc<dyn HangUp>> = Vec::new();
        loop {
            // SAFETY: `events` has room for `BATCH` entries.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    BATCH as i32,
                    TICK.as_millis() as i32,
                )
            };
            if n > 0 {
                {
                    let r = self.registry();
                    woken.extend(
                        events[..n as usize]
                            .iter()
                            .filter_map(|ev| r.targets.get(&{ ev.u64 }).cloned()),
                    );
                }
                // Outside the registry lock: a woken thread may unwatch at once.
                for t in woken.drain(..) {
                    t.hung_up();
                }
                if n as usize == BATCH {
                    // More are waiting: take them before housekeeping.
                    continue;
                }
            } else if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                eprintln!(
                    "cometbench: hang-up watcher: epoll_wait: {}; held connections are checked at heartbeats only",
                    io::Error::last_os_error()
                );
                return;
            }
            housekeeping();
            if Arc::strong_count(&self) == 1 {
                // The dispatcher and every connection are gone.
                return;
            }
        }
    }
}
