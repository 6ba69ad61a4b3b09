//! A connection speaking WebSocket: a valid upgrade (with or without the
//! publish token), then arbitrary client bytes in arbitrary pieces, with
//! time passing and messages published from outside, answered by the
//! dispatchers' own glue against an in-memory hub (which panics if the
//! connection breaks the one-subscription rule). Everything the server
//! writes must decode as a `101` and well-formed frames.
#![no_main]

use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use comet::client::{ClientEvent, Subscriber};
use comet::glue::{self, memory::Memory};
use comet::ws::client::{self, SAMPLE_KEY};
use comet::{Config, Conn, Limits, Transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Two bytes choose the piece size and the setting; the rest is what the
    // client sends after its handshake.
    let [cut, flags, body @ ..] = data else {
        return;
    };
    let cut = (*cut as usize % 64) + 1;
    let config = Config {
        max_message: 512,
        max_queue: 4096,
        backlog: 4,
        max_channels: 4,
        heartbeat: Duration::from_secs(15),
        publish_token: (flags & 1 == 1).then(|| "t0k".to_string()),
        ..Config::default()
    };
    let query = match flags >> 1 & 3 {
        0 => "",
        1 => "&token=t0k",
        2 => "&since=1",
        _ => "&token=wrong",
    };
    let mut memory: Memory<u8> = Memory::new(Limits::from(&config));
    let mut now = Instant::now();
    memory.publish("f", "before".into(), now).unwrap();
    let mut conn = Conn::new(Arc::new(config), now);
    let path = format!("/sub/f?transport=ws{query}");
    let head = client::request("fuzz", &path, SAMPLE_KEY, &[]).unwrap();
    conn.handle_read(&head, now);
    let mut wire = Vec::new();
    settle(&mut conn, &mut memory, now, &mut wire);
    assert!(conn.is_duplex(), "the upgrade was refused");
    for (i, piece) in body.chunks(cut).enumerate() {
        conn.handle_read(piece, now);
        settle(&mut conn, &mut memory, now, &mut wire);
        if piece[0] & 0x0f == 0 {
            let _ = memory.publish("f", format!("from outside {i} <&>").into(), now);
        }
        now += Duration::from_secs(piece[0] as u64 >> 4);
        conn.handle_timeout(now);
        settle(&mut conn, &mut memory, now, &mut wire);
    }
    conn.handle_close();
    settle(&mut conn, &mut memory, now, &mut wire);
    assert_eq!(memory.hub().stats().subscribers, 0);
    // The server's side of the conversation reads back cleanly.
    let mut reader = Subscriber::new(Transport::Ws);
    let mut events = Vec::new();
    reader
        .feed(&wire, &mut events)
        .expect("the server wrote a malformed frame");
    let head = events.first().expect("a response head");
    assert!(matches!(head, ClientEvent::Head(h) if h.status == 101));
});

/// Answers the events, delivers what was published, writes what is queued
/// into `wire` and shuts down when asked, as a dispatcher's turn does.
fn settle(conn: &mut Conn, memory: &mut Memory<u8>, now: Instant, wire: &mut Vec<u8>) {
    glue::drain(conn, &mut memory.backend(0), now);
    while let Some(m) = memory.take_published() {
        conn.handle_message(&m, now);
        glue::drain(conn, &mut memory.backend(0), now);
    }
    let mut iov = [IoSlice::new(&[]); 16];
    let n = conn.poll_transmit(&mut iov);
    let mut written = 0;
    for b in &iov[..n] {
        wire.extend_from_slice(b);
        written += b.len();
    }
    conn.handle_written(written);
    glue::drain(conn, &mut memory.backend(0), now);
    let _ = conn.poll_shutdown(now);
}
