//! A held WebSocket on a connection thread: its client may send at any time
//! (publishes, pongs, its close), so the thread must read its socket while
//! it waits on its inbox. Its wait wakes for bytes to read as well as for a
//! hang-up (`Wire::wait` with `readable`); woken, it reads what is there
//! without blocking.

use std::io;
use std::time::Instant;

use super::super::wire::Wire;
use super::{Served, READ_BUF};

impl<W: Wire> Served<'_, W> {
    /// Reads what the socket holds without blocking, until it holds no more
    /// (the wake-up is edge-triggered), the client closes, or the connection
    /// stops being a WebSocket; events are answered after each read, so
    /// that publishes never wait behind the rest of the input.
    pub(super) fn read_ready(&mut self) {
        let mut buf = [0u8; READ_BUF];
        while self.conn.is_duplex() {
            let now = Instant::now();
            match self.wire.read_now(&mut buf) {
                Ok(0) => return self.conn.handle_eof(now),
                Ok(n) => {
                    self.conn.handle_read(&buf[..n], now);
                    self.drain();
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => return,
                    io::ErrorKind::Interrupted => {}
                    // Cut off by the stop: `run` ends the connection.
                    _ if self.wire.is_stopped(&self.inbox) => return,
                    _ => return self.conn.handle_close(),
                },
            }
        }
    }
}
