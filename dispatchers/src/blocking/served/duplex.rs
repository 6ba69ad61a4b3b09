//! A held WebSocket on a connection thread: its client may send at any time
//! (publishes, pongs, its close), so the thread must read its socket while
//! it waits on its inbox. The watcher wakes it for bytes to read as well as
//! for a hang-up ([`Watcher::watch_readable`]); woken, it reads what is
//! there without blocking.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::{Served, READ_BUF};
#[cfg(doc)]
use crate::hangup::Watcher;

impl Served<'_> {
    /// Registers the held connection with the watcher, once; a WebSocket's
    /// registration wakes for reads too, and replaces one made for a
    /// long-poll held earlier on the same connection.
    pub(super) fn ensure_watch(&mut self) {
        let Some(w) = self.watcher else {
            return;
        };
        let duplex = self.conn.is_duplex();
        if self.watch.is_some() && (self.watching_reads || !duplex) {
            return;
        }
        if let Some(old) = self.watch.take() {
            w.unwatch(old);
        }
        let (fd, target) = (self.stream.as_raw_fd(), self.inbox.clone());
        let watched = if duplex {
            w.watch_readable(fd, target)
        } else {
            w.watch(fd, target)
        };
        // Failing to watch (ENOMEM) leaves the heartbeat check, which reads
        // a WebSocket's socket too.
        self.watch = watched.ok();
        self.watching_reads = duplex && self.watch.is_some();
    }

    /// Reads what the socket holds without blocking, until it holds no more
    /// (the watch is edge-triggered), the client closes, or the connection
    /// stops being a WebSocket; events are answered after each read, so
    /// that publishes never wait behind the rest of the input.
    pub(super) fn read_ready(&mut self) {
        let mut buf = [0u8; READ_BUF];
        while self.conn.is_duplex() {
            let now = Instant::now();
            match recv_nowait(&self.stream, &mut buf) {
                Ok(0) => return self.conn.handle_eof(now),
                Ok(n) => {
                    self.conn.handle_read(&buf[..n], now);
                    self.drain();
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => return,
                    io::ErrorKind::Interrupted => {}
                    _ => return self.conn.handle_close(),
                },
            }
        }
    }
}

/// One `recv` that does not block, whatever the socket's own mode.
fn recv_nowait(stream: &std::net::TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
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
