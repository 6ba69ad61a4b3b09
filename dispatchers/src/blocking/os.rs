//! The connection loop's operations on an OS thread: blocking `std::net`,
//! a condition variable, and the dispatcher's hang-up watcher.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar};
use std::time::Instant;

use super::inbox::{ConnInbox, ThreadInbox, Woken};
use super::live::Live;
use super::wire::{Peer, Wire};
use super::WRITE_TIMEOUT;
use crate::hangup::{Watch, Watcher};

/// An accepted `std::net` socket served by the calling thread.
pub(crate) struct OsWire<'a> {
    stream: TcpStream,
    watcher: Option<&'a Watcher>,
    /// Registered with the watcher at the first hold, until the end.
    watch: Option<Watch>,
    /// The watch wakes for bytes to read too (a held WebSocket).
    watching_reads: bool,
    live: &'a Live,
    /// The connection's key in `live`, unregistered at the end.
    registered: Option<usize>,
}

impl<'a> OsWire<'a> {
    /// Registers `stream` and its inbox with `live`; `registered` is `None`
    /// when the dispatcher stops already (the caller closes it at once).
    pub(crate) fn new(
        stream: TcpStream,
        inbox: &Arc<ThreadInbox>,
        live: &'a Live,
        watcher: Option<&'a Watcher>,
    ) -> OsWire<'a> {
        let registered = live.register(stream.as_raw_fd(), inbox);
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        OsWire {
            stream,
            watcher,
            watch: None,
            watching_reads: false,
            live,
            registered,
        }
    }

    pub(crate) fn is_registered(&self) -> bool {
        self.registered.is_some()
    }

    /// Registers the held connection with the watcher, once; a WebSocket's
    /// registration wakes for reads too, and replaces one made for a
    /// long-poll held earlier on the same connection.
    fn ensure_watch(&mut self, inbox: &Arc<ThreadInbox>, readable: bool) {
        let Some(w) = self.watcher else {
            return;
        };
        if self.watch.is_some() && (self.watching_reads || !readable) {
            return;
        }
        if let Some(old) = self.watch.take() {
            w.unwatch(old);
        }
        let (fd, target) = (self.stream.as_raw_fd(), inbox.clone());
        let watched = if readable {
            w.watch_readable(fd, target)
        } else {
            w.watch(fd, target)
        };
        // Failing to watch (ENOMEM) leaves the heartbeat check, which reads
        // a WebSocket's socket too.
        self.watch = watched.ok();
        self.watching_reads = readable && self.watch.is_some();
    }

    /// A read at a passed deadline: what has arrived, without blocking.
    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` bytes for the whole call.
        let n = unsafe {
            libc::recv(
                self.stream.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl Wire for OsWire<'_> {
    type Signal = Condvar;

    fn read(&mut self, buf: &mut [u8], deadline: Option<Instant>) -> io::Result<usize> {
        let timeout = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(t) if !t.is_zero() => Some(t),
                _ => return self.read_now(buf),
            },
            None => None,
        };
        self.stream.set_read_timeout(timeout)?;
        self.stream.read(buf)
    }

    fn writev(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.stream.write_vectored(bufs)
    }

    fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        OsWire::read_now(self, buf)
    }

    fn wait(
        &mut self,
        inbox: &Arc<ThreadInbox>,
        deadline: Option<Instant>,
        readable: bool,
    ) -> Woken {
        self.ensure_watch(inbox, readable);
        inbox.wait(deadline)
    }

    fn peer(&mut self) -> Peer {
        peer_state(&self.stream)
    }

    fn is_stopped(&self, inbox: &ConnInbox<Condvar>) -> bool {
        inbox.is_stopped()
    }

    fn finish(&mut self) {
        if let (Some(w), Some(watch)) = (self.watcher, self.watch.take()) {
            // Before the socket closes, so that its number, free for reuse
            // then, is no longer in the epoll set.
            w.unwatch(watch);
        }
        if let Some(key) = self.registered.take() {
            self.live.unregister(key);
        }
    }
}

/// Whether the client is still there, without reading or blocking.
fn peer_state(stream: &TcpStream) -> Peer {
    let mut p = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    if r <= 0 {
        Peer::Open
    } else if p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
        Peer::Failed
    } else if p.revents & libc::POLLRDHUP != 0 {
        Peer::HungUp
    } else {
        Peer::Open
    }
}
