//! The server side: request heads, routing, and the connection state machine
//! fed arbitrary bytes in arbitrary pieces, with time passing, its events
//! answered by the dispatchers' own glue against an in-memory hub (which
//! panics if the connection breaks the one-subscription rule).
#![no_main]

use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use comet::glue::{self, memory::Memory};
use comet::{Config, Conn, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = comet::request::parse_head(data);
    if let Ok(comet::request::Status::Complete(h)) = comet::request::parse_head(data) {
        let _ = comet::route::route(&h);
    }
    // The first byte chooses the piece size, so splits are explored too.
    let (cut, body) = match data.split_first() {
        Some((c, rest)) => ((*c as usize % 64) + 1, rest),
        None => return,
    };
    let config = Config {
        max_message: 4096,
        max_queue: 8192,
        backlog: 4,
        max_channels: 4,
        message_ttl: Duration::from_secs(20),
        ..Config::default()
    };
    let mut memory: Memory<u8> = Memory::new(Limits::from(&config));
    let mut now = Instant::now();
    let mut conn = Conn::new(Arc::new(config), now);
    for piece in body.chunks(cut) {
        conn.handle_read(piece, now);
        settle(&mut conn, &mut memory, now);
        now += Duration::from_secs(piece[0] as u64 % 16);
        conn.handle_timeout(now);
        memory.expire(now);
        settle(&mut conn, &mut memory, now);
    }
    conn.handle_close();
    settle(&mut conn, &mut memory, now);
    assert_eq!(memory.hub().stats().subscribers, 0);
});

/// Answers the events, delivers what was published, writes what is queued
/// and shuts down when asked, as a dispatcher's turn does.
fn settle(conn: &mut Conn, memory: &mut Memory<u8>, now: Instant) {
    glue::drain(conn, &mut memory.backend(0), now);
    while let Some(m) = memory.take_published() {
        conn.handle_message(&m, now);
        glue::drain(conn, &mut memory.backend(0), now);
    }
    let mut iov = [IoSlice::new(&[]); 8];
    let n = conn.poll_transmit(&mut iov);
    let written: usize = iov[..n].iter().map(|b| b.len()).sum();
    conn.handle_written(written);
    glue::drain(conn, &mut memory.backend(0), now);
    let _ = conn.poll_shutdown(now);
}
