//! Property tests: arbitrary bytes never panic the core, and any message
//! round-trips through every transport's server output and the matching
//! client decoder.

use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use comet::client::Dialect;
use comet::client::{
    parse_longpoll, parse_response_head, ChunkedDecoder, ClientEvent, Item, SseDecoder,
    StreamDecoder, Subscriber,
};
use comet::glue::{self, memory::Memory};
use comet::{ws, Config, Conn, Limits, Transport};
use proptest::prelude::*;

/// Plays the dispatcher for one conn (key 1): answers its events with the
/// dispatchers' glue and hands it what was published on its channel.
fn drive(conn: &mut Conn, memory: &mut Memory<u32>, now: Instant) {
    glue::drain(conn, &mut memory.backend(1), now);
    while let Some(m) = memory.take_published() {
        conn.handle_message(&m, now);
        glue::drain(conn, &mut memory.backend(1), now);
    }
}

/// Takes every pending byte out of `conn`, a few slices at a time.
fn take(conn: &mut Conn) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut iov = [IoSlice::new(&[]); 3];
        let n = conn.poll_transmit(&mut iov);
        if n == 0 {
            return out;
        }
        let before = out.len();
        for b in &iov[..n] {
            out.extend_from_slice(b);
        }
        let written = out.len() - before;
        conn.handle_written(written);
    }
}

fn memory() -> Memory<u32> {
    Memory::new(Limits {
        backlog: 4,
        ..Limits::default()
    })
}

fn config() -> Arc<Config> {
    Arc::new(Config {
        max_message: 1024,
        max_queue: 4096,
        backlog: 4,
        ..Config::default()
    })
}

/// Bytes that look like requests often enough to reach past the parser.
fn requestish() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        Just(b"GET /sub/a?transport=sse HTTP/1.1\r\n\r\n".to_vec()),
        Just(b"GET /sub/a?since=0 HTTP/1.1\r\nLast-Event-ID: 1\r\n\r\n".to_vec()),
        Just(b"GET /sub/a?transport=iframe&timeout=1 HTTP/1.0\r\n\r\n".to_vec()),
        Just(b"POST /pub/a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec()),
        Just(b"POST /pub/a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n".to_vec()),
        Just(b"GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64),
    ];
    proptest::collection::vec(pieces, 0..8).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_input_never_panics_a_conn(
        input in prop_oneof![proptest::collection::vec(any::<u8>(), 0..2048), requestish()],
        cuts in proptest::collection::vec(1usize..64, 1..16),
        ticks in proptest::collection::vec(0u64..70_000, 0..6),
        publishes in 0usize..4,
        eof in any::<bool>(),
    ) {
        let start = Instant::now();
        let mut now = start;
        let mut memory = memory();
        let mut conn = Conn::new(config(), now);
        let mut rest = &input[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].min(rest.len());
            conn.handle_read(&rest[..n], now);
            drive(&mut conn, &mut memory, now);
            take(&mut conn);
            rest = &rest[n..];
            i += 1;
        }
        for _ in 0..publishes {
            memory.publish("a", "x<\u{2028}".into(), now).unwrap();
            drive(&mut conn, &mut memory, now);
        }
        for t in ticks {
            now += Duration::from_millis(t);
            conn.handle_timeout(now);
            drive(&mut conn, &mut memory, now);
            take(&mut conn);
        }
        if eof {
            conn.handle_eof(now);
        } else {
            conn.handle_close();
        }
        drive(&mut conn, &mut memory, now);
        take(&mut conn);
        // Whatever happened, nobody is left subscribed once the conn is gone.
        prop_assert!(conn.is_done() || !eof);
        prop_assert_eq!(memory.hub().stats().subscribers, 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(
        input in proptest::collection::vec(any::<u8>(), 0..2048),
        cut in 1usize..512,
    ) {
        for t in Transport::ALL {
            let mut s = Subscriber::new(t);
            let mut out = Vec::new();
            for piece in input.chunks(cut) {
                if s.feed(piece, &mut out).is_err() {
                    break;
                }
            }
            if t != Transport::Longpoll {
                let mut d = StreamDecoder::new(t);
                let _ = d.feed(&input, &mut Vec::new());
            }
        }
        let _ = parse_response_head(&input);
        let _ = parse_longpoll(&input);
        let mut sse = SseDecoder::default();
        sse.feed(&input, &mut Vec::new());
        let mut chunked = ChunkedDecoder::default();
        let _ = chunked.feed(&input, &mut Vec::new());
    }

    #[test]
    fn any_message_round_trips(
        data in any::<String>(),
        cut in 1usize..97,
        http10 in any::<bool>(),
        nonce in any::<[u8; 16]>(),
    ) {
        let now = Instant::now();
        for t in Transport::ALL {
            let mut memory = memory();
            let mut conn = Conn::new(Arc::new(Config { max_message: 1 << 20, ..Config::default() }), now);
            let version = if http10 { "1.0" } else { "1.1" };
            // A WebSocket as the load generator opens one: HTTP/1.1 (an
            // upgrade needs it), a fresh key, and a subscriber checking it.
            let key = ws::client::key(nonce);
            let (req, mut s) = if t == Transport::Ws {
                let head = ws::client::request("t", "/sub/ch?transport=ws", &key, &[]).unwrap();
                (String::from_utf8(head).unwrap(), Subscriber::websocket(Dialect::Comet, &key))
            } else {
                let req = format!("GET /sub/ch?transport={} HTTP/{version}\r\n\r\n", t.name());
                (req, Subscriber::new(t))
            };
            conn.handle_read(req.as_bytes(), now);
            drive(&mut conn, &mut memory, now);
            memory.publish("ch", data.clone().into_boxed_str(), now).unwrap();
            drive(&mut conn, &mut memory, now);
            let wire = take(&mut conn);
            let mut events = Vec::new();
            for piece in wire.chunks(cut) {
                s.feed(piece, &mut events).expect("our own output decodes");
            }
            let got: Vec<String> = events
                .into_iter()
                .filter_map(|e| match e {
                    ClientEvent::Item(Item::Message { id: 1, data }) => Some(data),
                    _ => None,
                })
                .collect();
            // SSE has no escape for CR: the HTML standard reads CRLF, CR and LF
            // all as one line end, so a message's CRs come back as LFs.
            let want = if t == Transport::Sse {
                data.replace("\r\n", "\n").replace('\r', "\n")
            } else {
                data.clone()
            };
            prop_assert_eq!(got, vec![want], "{:?}", t);
        }
    }
}
