//! The server side: request heads, routing, and the connection state machine
//! fed arbitrary bytes in arbitrary pieces, with time passing.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use comet::{Config, Conn, Event, Hub};
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
    let config = Arc::new(Config {
        max_message: 4096,
        max_queue: 8192,
        backlog: 4,
        ..Config::default()
    });
    let mut now = Instant::now();
    let mut hub: Hub<u32> = Hub::new(4);
    let mut conn = Conn::new(config, now);
    for piece in body.chunks(cut) {
        conn.handle_read(piece, now);
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Subscribe { channel, since } => {
                    let r = hub.subscribe(&channel, since, &1);
                    conn.handle_subscribed(r, now);
                }
                Event::Unsubscribe { channel } => hub.unsubscribe(&channel, &1),
                Event::Publish { channel, data } => {
                    let p = hub.publish(&channel, data);
                    conn.handle_message(&p.message, now);
                    conn.handle_published(p.message.id(), p.subscribers, now);
                }
                Event::Stats => conn.handle_stats("{}".into(), now),
            }
        }
        let n: usize = conn.pending().iter().map(|b| b.len()).sum();
        conn.advance(n);
        now += Duration::from_secs(piece[0] as u64 % 16);
        conn.handle_timeout(now);
    }
    conn.handle_close();
    while conn.poll_event().is_some() {}
});
