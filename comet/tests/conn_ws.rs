//! A [`Conn`] speaking WebSocket, driven by the fake-clock harness: the
//! handshake and every refusal, every close code, publishes over the
//! socket, the token, the heartbeat ping and the dead-client drop, replay,
//! refusals and the stop.

mod harness;

use std::sync::Arc;
use std::time::Instant;

use comet::glue::memory::Memory;
use comet::glue::{self, Accepted, Answer, Backend};
use comet::ws::client::{self, SAMPLE_KEY};
use comet::ws::{close, encode, Opcode};
use comet::{Config, Conn, Event, Limits, Refusal, Replay, Transport};
use harness::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// An upgrade request for `room`, the path's query and headers added.
fn upgrade(query: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let path = format!("/sub/room?transport=ws{query}");
    client::request("t", &path, SAMPLE_KEY, extra).unwrap()
}

/// A WebSocket on `room`, its `101` read.
fn open_ws(h: &mut Harness, query: &str, extra: &[(&str, &str)]) -> (u32, Reader) {
    let c = h.open();
    h.send(c, upgrade(query, extra));
    let mut r = Reader::new(Transport::Ws);
    r.feed(&h.take(c));
    let status = r.head.as_ref().map(|h| h.status);
    assert_eq!(status, Some(101), "{:?}", h.events);
    (c, r)
}

fn text(s: &str) -> Vec<u8> {
    client::text(s, MASK).to_vec()
}

fn quick() -> Config {
    Config {
        max_message: 1024,
        ..Config::default()
    }
}

// ----- the handshake -----

const BASE: &str = "GET /sub/room HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
     Sec-WebSocket-Version: 13\r\n";

/// `BASE` with the header lines in `drop` left out and `add` added.
fn head(drop: &[&str], add: &str) -> String {
    let mut lines: Vec<&str> = BASE
        .split("\r\n")
        .filter(|l| !l.is_empty() && !drop.iter().any(|d| l.starts_with(d)))
        .collect();
    lines.extend(add.split("\r\n").filter(|l| !l.is_empty()));
    lines.join("\r\n") + "\r\n\r\n"
}

#[test]
fn every_handshake_and_its_answer() {
    let origin = |o: &str| Config {
        allow_origin: Some(o.to_string()),
        ..Config::default()
    };
    // (name, config, request, status, header that must be there)
    type Case = (
        &'static str,
        Config,
        String,
        u16,
        Option<(&'static str, &'static str)>,
    );
    let accepted = Some(("Sec-WebSocket-Accept", SAMPLE_ACCEPT));
    let table: Vec<Case> = vec![
        (
            "rfc sample",
            Config::default(),
            head(&[], ""),
            101,
            accepted,
        ),
        (
            "transport=ws",
            Config::default(),
            head(&[], "").replace("/sub/room", "/sub/room?transport=ws"),
            101,
            accepted,
        ),
        (
            "deflate offered, declined",
            Config::default(),
            head(
                &[],
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
            ),
            101,
            accepted,
        ),
        (
            "connection list, mixed case",
            Config::default(),
            head(
                &["Connection", "Upgrade"],
                "Connection: keep-alive, upgrade\r\nUpgrade: WebSocket",
            ),
            101,
            accepted,
        ),
        (
            "version 8",
            Config::default(),
            head(&["Sec-WebSocket-Version"], "Sec-WebSocket-Version: 8"),
            426,
            Some(("Sec-WebSocket-Version", "13")),
        ),
        (
            "no version",
            Config::default(),
            head(&["Sec-WebSocket-Version"], ""),
            426,
            Some(("Sec-WebSocket-Version", "13")),
        ),
        (
            "two versions",
            Config::default(),
            head(&[], "Sec-WebSocket-Version: 8"),
            426,
            Some(("Sec-WebSocket-Version", "13")),
        ),
        (
            "no key",
            Config::default(),
            head(&["Sec-WebSocket-Key"], ""),
            400,
            None,
        ),
        (
            "key of 15 bytes",
            Config::default(),
            head(
                &["Sec-WebSocket-Key"],
                "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA",
            ),
            400,
            None,
        ),
        (
            "two keys",
            Config::default(),
            head(&[], "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="),
            400,
            None,
        ),
        (
            "connection keep-alive",
            Config::default(),
            head(&["Connection"], "Connection: keep-alive"),
            400,
            None,
        ),
        (
            "transport=ws, no Upgrade",
            Config::default(),
            head(&["Upgrade"], "").replace("/sub/room", "/sub/room?transport=ws"),
            400,
            None,
        ),
        (
            "upgrade to h2c",
            Config::default(),
            head(&["Upgrade"], "Upgrade: h2c").replace("/sub/room", "/sub/room?transport=ws"),
            400,
            None,
        ),
        (
            "HTTP/1.0",
            Config::default(),
            head(&[], "").replace("HTTP/1.1", "HTTP/1.0"),
            400,
            None,
        ),
        (
            "a body",
            Config::default(),
            head(&[], "Content-Length: 5") + "hello",
            400,
            None,
        ),
        (
            "bad channel",
            Config::default(),
            head(&[], "").replace("/sub/room", "/sub/a%2F"),
            400,
            None,
        ),
        (
            "POST",
            Config::default(),
            head(&[], "").replace("GET", "POST"),
            405,
            None,
        ),
        (
            "origin allowed",
            origin("http://ok.example"),
            head(&[], "Origin: http://OK.example"),
            101,
            accepted,
        ),
        (
            "origin another",
            origin("http://ok.example"),
            head(&[], "Origin: http://evil.example"),
            403,
            None,
        ),
        (
            "origin missing",
            origin("http://ok.example"),
            head(&[], ""),
            403,
            None,
        ),
        (
            "any origin",
            origin("*"),
            head(&[], "Origin: http://any.example"),
            101,
            accepted,
        ),
        (
            "sse named, upgrade ignored",
            Config::default(),
            head(&[], "").replace("/sub/room", "/sub/room?transport=sse"),
            200,
            Some(("Content-Type", "text/event-stream")),
        ),
    ];
    for (name, config, req, status, want) in table {
        let mut h = Harness::new(config);
        let c = h.open();
        h.send(c, &req);
        let out = h.take(c);
        let (got, raw) = head_of(&out);
        assert_eq!(got.status, status, "{name}: {raw}");
        if let Some((k, v)) = want {
            let r = Resp {
                head: got.clone(),
                raw: raw.clone(),
                body: Vec::new(),
            };
            assert_eq!(r.header(k).as_deref(), Some(v), "{name}: {raw}");
        }
        if status == 101 {
            assert_eq!(
                out.len(),
                got.len,
                "{name}: only the head, nothing replayed"
            );
            assert!(raw.contains("\r\nUpgrade: websocket\r\n"), "{name}: {raw}");
            assert!(!raw.contains("Sec-WebSocket-Extensions"), "{name}: {raw}");
            assert!(h.conn(c).is_duplex(), "{name}");
            assert_eq!(h.hub().stats().subscribers, 1, "{name}");
        } else {
            assert!(!h.conn(c).is_duplex(), "{name}");
            if status != 200 {
                assert_eq!(h.hub().stats().subscribers, 0, "{name}");
            }
        }
    }
}

#[test]
fn a_refused_handshake_keeps_the_connection_for_the_next_request() {
    let mut h = Harness::default();
    let c = h.open();
    h.send(
        c,
        head(&["Sec-WebSocket-Version"], "Sec-WebSocket-Version: 7"),
    );
    assert_eq!(response(&h.take(c)).status(), 426);
    h.send(c, upgrade("", &[]));
    let out = h.take(c);
    assert_eq!(head_of(&out).0.status, 101);
}

#[test]
fn frames_sent_with_the_handshake_are_read_after_the_101() {
    let mut h = Harness::new(quick());
    let c = h.open();
    let mut bytes = upgrade("", &[]);
    bytes.extend_from_slice(&text("early"));
    h.send(c, bytes);
    let mut r = Reader::new(Transport::Ws);
    r.feed(&h.take(c));
    assert_eq!(r.head.as_ref().unwrap().status, 101);
    assert_eq!(r.take(), vec![msg(1, "early")]);
}

// ----- close codes -----

/// An unmasked frame: what no client may send.
fn unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![first, payload.len() as u8];
    v.extend_from_slice(payload);
    v
}

fn masked_close(payload: &[u8]) -> Vec<u8> {
    client::frame(true, Opcode::Close, payload, MASK).to_vec()
}

#[test]
fn every_close_code_the_server_sends() {
    let guarded = Config {
        publish_token: Some("s3cret".into()),
        ..quick()
    };
    let too_big = "x".repeat(1025);
    let half = "y".repeat(600);
    let mut fragments = client::frame(false, Opcode::Text, half.as_bytes(), MASK).to_vec();
    fragments.extend_from_slice(&client::frame(
        true,
        Opcode::Continuation,
        half.as_bytes(),
        MASK,
    ));
    let mut close_4001 = 4001u16.to_be_bytes().to_vec();
    close_4001.extend_from_slice(b"bye");
    // (name, config, what the client sends, the close code sent back:
    // `None` for an empty close frame)
    let table: Vec<(&str, Config, Vec<u8>, Option<u16>)> = vec![
        ("unmasked text", quick(), unmasked(0x81, b"hi"), Some(1002)),
        (
            "binary",
            quick(),
            client::frame(true, Opcode::Binary, b"\x00\x01", MASK).to_vec(),
            Some(1003),
        ),
        (
            "text not UTF-8",
            quick(),
            client::frame(true, Opcode::Text, b"caf\xe9", MASK).to_vec(),
            Some(1007),
        ),
        ("publish without the token", guarded, text("hi"), Some(1008)),
        ("one frame too big", quick(), text(&too_big), Some(1009)),
        ("fragments too big together", quick(), fragments, Some(1009)),
        (
            "reserved bit",
            quick(),
            {
                let mut f = text("hi");
                f[0] |= 0x40;
                f
            },
            Some(1002),
        ),
        (
            "reserved opcode",
            quick(),
            {
                let mut f = text("hi");
                f[0] = 0x83;
                f
            },
            Some(1002),
        ),
        (
            "continuation with no message",
            quick(),
            client::frame(true, Opcode::Continuation, b"x", MASK).to_vec(),
            Some(1002),
        ),
        (
            "close code 1005 sent",
            quick(),
            masked_close(&1005u16.to_be_bytes()),
            Some(1002),
        ),
        (
            "close 1000 echoed",
            quick(),
            client::close(1000, "", MASK).to_vec(),
            Some(1000),
        ),
        (
            "close 4001 echoed",
            quick(),
            masked_close(&close_4001),
            Some(4001),
        ),
        ("empty close echoed", quick(), masked_close(b""), None),
    ];
    for (name, config, sent, code) in table {
        let mut h = Harness::new(config);
        let (c, mut r) = open_ws(&mut h, "", &[]);
        h.send(c, &sent);
        r.feed(&h.take(c));
        assert_eq!(r.closes, vec![code], "{name}");
        assert_eq!(r.ended, 1, "{name}");
        assert_eq!(h.unsubscribes(c), 1, "{name}");
        assert_eq!(h.hub().stats().subscribers, 0, "{name}");
        assert_eq!(h.hub().stats().published, 0, "{name}: nothing published");
        if name.ends_with("echoed") {
            // The client closed first: closed once the echo is written.
            assert!(h.conn(c).is_done(), "{name}");
            assert!(!h.shut(c), "{name}");
            continue;
        }
        // Lingering: the write side shuts once the close frame is out, and
        // what the client still sends is read and discarded until it closes.
        assert!(!h.conn(c).is_done(), "{name}");
        assert!(h.shut(c), "{name}: shut the write side");
        h.send(c, client::close(1000, "", MASK));
        assert!(
            h.take(c).is_empty(),
            "{name}: nothing after the close frame"
        );
        let now = h.now;
        h.conn(c).handle_eof(now);
        assert!(h.conn(c).is_done(), "{name}");
    }
}

#[test]
fn a_close_frame_fed_a_byte_at_a_time_is_echoed() {
    let mut h = Harness::new(quick());
    let (c, mut r) = open_ws(&mut h, "", &[]);
    h.send_bytewise(c, client::close(3000, "done", MASK));
    r.feed(&h.take(c));
    assert_eq!(r.closes, vec![Some(3000)]);
}

// ----- publishing over the socket -----

#[test]
fn a_text_frame_is_a_publish_every_subscriber_gets_back() {
    let mut h = Harness::new(quick());
    let (a, mut ra) = open_ws(&mut h, "", &[]);
    let (b, mut rb) = open_ws(&mut h, "", &[]);
    let sse = h.subscribe("room", Transport::Sse, None);
    let mut rs = Reader::new(Transport::Sse);
    rs.feed(&h.take(sse));
    h.send(a, text("from a"));
    h.send(b, text("from b \"quoted\" é"));
    let want = vec![msg(1, "from a"), msg(2, "from b \"quoted\" é")];
    ra.feed(&h.take(a));
    rb.feed(&h.take(b));
    rs.feed(&h.take(sse));
    assert_eq!(
        ra.take(),
        want,
        "the sender gets its own back: the id is its ack"
    );
    assert_eq!(rb.take(), want);
    assert_eq!(rs.take(), want);
    let publishes = h
        .events
        .iter()
        .filter(|(k, e)| *k == a && matches!(e, Event::Publish { .. }))
        .count();
    assert_eq!(publishes, 1);
    // An HTTP publish reaches the sockets too.
    assert_eq!(h.publish("room", "over http"), (3, 3));
    ra.feed(&h.take(a));
    assert_eq!(ra.take(), vec![msg(3, "over http")]);
}

#[test]
fn fragments_are_joined_and_a_ping_between_them_is_answered() {
    let mut h = Harness::new(quick());
    let (c, mut r) = open_ws(&mut h, "", &[]);
    let mut wire = client::frame(false, Opcode::Text, "hé".as_bytes(), MASK).to_vec();
    wire.extend_from_slice(&client::ping(b"are you there", MASK));
    // The second fragment starts inside the character é's neighbour.
    wire.extend_from_slice(&client::frame(false, Opcode::Continuation, b"llo ", MASK));
    wire.extend_from_slice(&client::frame(true, Opcode::Continuation, b"world", MASK));
    for piece in wire.chunks(3) {
        h.send(c, piece);
    }
    let out = h.take(c);
    let pong = encode::pong(b"are you there");
    assert_eq!(
        &out[..pong.len()],
        &pong[..],
        "the pong first, echoing the ping"
    );
    r.feed(&out[pong.len()..]);
    assert_eq!(r.take(), vec![msg(1, "héllo world")]);
}

#[test]
fn the_token_is_asked_of_the_handshake_by_header_or_query() {
    let config = || Config {
        publish_token: Some("s3cret".into()),
        ..quick()
    };
    // (name, query, headers, may publish)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], bool);
    let table: [Case; 6] = [
        ("none", "", &[], false),
        ("bearer", "", &[("Authorization", "Bearer s3cret")], true),
        (
            "bearer, any case",
            "",
            &[("Authorization", "bearer   s3cret")],
            true,
        ),
        ("query", "&token=s3cret", &[], true),
        ("query wrong", "&token=s3cre", &[], false),
        (
            "bearer wrong",
            "",
            &[("Authorization", "Bearer s3cretx")],
            false,
        ),
    ];
    for (name, query, extra, may) in table {
        let mut h = Harness::new(config());
        let (c, mut r) = open_ws(&mut h, query, extra);
        // Subscribing needs no token.
        let p = h.open();
        h.send(
            p,
            comet::client::publish_request("room", "by http", Some("s3cret")),
        );
        assert_eq!(response(&h.take(p)).status(), 202, "{name}");
        h.send(c, text("by socket"));
        r.feed(&h.take(c));
        if may {
            assert_eq!(
                r.take(),
                vec![msg(1, "by http"), msg(2, "by socket")],
                "{name}"
            );
            assert!(r.closes.is_empty(), "{name}");
        } else {
            assert_eq!(r.take(), vec![msg(1, "by http")], "{name}");
            assert_eq!(r.closes, vec![Some(close::POLICY)], "{name}");
        }
    }
}

// ----- heartbeats -----

#[test]
fn a_ping_every_heartbeat_and_a_client_that_pongs_stays() {
    let mut h = Harness::default();
    let (c, mut r) = open_ws(&mut h, "", &[]);
    for i in 1..=5u64 {
        h.at(s(15 * i) - ms(1));
        h.tick();
        r.feed(&h.take(c));
        assert_eq!(r.pings.len() as u64, i - 1, "nothing before the deadline");
        h.at(s(15 * i));
        h.tick();
        r.feed(&h.take(c));
        assert_eq!(r.pings.len() as u64, i, "a ping at {}s", 15 * i);
        assert_eq!(r.pings.last().unwrap(), b"");
        h.send(c, client::pong(b"", MASK));
    }
    assert!(!h.conn(c).is_done());
    assert_eq!(h.memory.unresponsive(), 0);
}

#[test]
fn a_client_that_answers_no_ping_for_two_heartbeats_is_dropped_and_counted() {
    let mut h = Harness::default();
    let (c, mut r) = open_ws(&mut h, "", &[]);
    h.at(s(15));
    h.tick();
    // The first ping is answered; the next two are not.
    h.send(c, client::pong(b"", MASK));
    for t in [30, 45] {
        h.at(s(t));
        h.tick();
        assert!(!h.conn(c).is_done(), "still there at {t}s");
    }
    r.feed(&h.take(c));
    assert_eq!(r.pings.len(), 3);
    h.at(s(60) - ms(1));
    h.tick();
    assert!(!h.conn(c).is_done(), "not before the third heartbeat");
    h.at(s(60));
    h.tick();
    assert!(h.conn(c).is_done(), "dropped at 60s");
    assert_eq!(h.memory.unresponsive(), 1);
    assert_eq!(h.unsubscribes(c), 1);
    assert_eq!(h.hub().stats().subscribers, 0);
    let counted = h
        .events
        .iter()
        .filter(|(k, e)| *k == c && *e == Event::Unresponsive)
        .count();
    assert_eq!(counted, 1);
    assert!(h.take(c).is_empty(), "cut off, nothing more written");
}

#[test]
fn a_client_ping_is_answered_unless_the_client_reads_nothing() {
    let mut h = Harness::new(Config {
        max_queue: 256,
        ..quick()
    });
    let (c, _) = open_ws(&mut h, "", &[]);
    h.send(c, client::ping(b"123", MASK));
    assert_eq!(h.take(c), encode::pong(b"123").to_vec());
    // A client that reads nothing: once its queue is past the bound, pings
    // go unanswered rather than pile up.
    h.stalled.insert(c);
    let big = "z".repeat(400);
    h.publish("room", &big);
    let queued = h.queued(c);
    for _ in 0..100 {
        h.send(c, client::ping(b"flood", MASK));
    }
    assert_eq!(h.queued(c), queued);
}

// ----- replay, refusals, stopping -----

#[test]
fn since_replays_and_missed_is_a_frame_first() {
    let mut h = Harness::new(Config {
        backlog: 2,
        ..quick()
    });
    for i in 1..=5 {
        h.publish("room", &format!("m{i}"));
    }
    let (_, r) = open_ws(&mut h, "&since=1", &[]);
    let mut r = r;
    assert_eq!(
        r.take(),
        vec![comet::client::Item::Missed(2), msg(4, "m4"), msg(5, "m5")]
    );
    let (c, mut r) = open_ws(&mut h, "&since=4", &[]);
    assert_eq!(r.take(), vec![msg(5, "m5")]);
    h.send(c, text("m6"));
    r.feed(&h.take(c));
    assert_eq!(r.take(), vec![msg(6, "m6")]);
}

#[test]
fn a_publish_refused_while_stopping_closes_going_away() {
    let mut h = Harness::new(quick());
    let (c, mut r) = open_ws(&mut h, "", &[]);
    h.memory.stop_publishing();
    h.send(c, text("too late"));
    r.feed(&h.take(c));
    assert_eq!(r.closes, vec![Some(close::GOING_AWAY)]);
    assert_eq!(h.unsubscribes(c), 1);
}

#[test]
fn the_stop_sends_going_away_and_closes_once_it_is_written() {
    let mut h = Harness::new(quick());
    let (c, mut r) = open_ws(&mut h, "", &[]);
    h.publish("room", "last words");
    h.stalled.insert(c);
    h.conn(c).handle_shutdown();
    h.settle();
    assert!(!h.conn(c).is_done(), "what is queued is written first");
    h.stalled.remove(&c);
    h.settle();
    r.feed(&h.take(c));
    assert_eq!(r.take(), vec![msg(1, "last words")]);
    assert_eq!(r.closes, vec![Some(close::GOING_AWAY)]);
    assert_eq!(h.unsubscribes(c), 1);
    assert!(h.conn(c).is_done());
}

/// A backend that subscribes in memory and answers publishes as told.
struct Publishes {
    memory: Memory<u8>,
    answer: Option<Refusal>,
    later: bool,
    asked: Vec<String>,
}

impl Backend for Publishes {
    fn subscribe(
        &mut self,
        channel: &Arc<str>,
        since: Option<u64>,
        now: Instant,
    ) -> Answer<Result<Replay, Refusal>> {
        self.memory.backend(0).subscribe(channel, since, now)
    }

    fn unsubscribe(&mut self, channel: &Arc<str>, now: Instant) {
        self.memory.backend(0).unsubscribe(channel, now)
    }

    fn publish(
        &mut self,
        _: &Arc<str>,
        data: Box<str>,
        _: Instant,
    ) -> Answer<Result<Accepted, Refusal>> {
        self.asked.push(data.into());
        if self.later {
            return Answer::Later;
        }
        Answer::Now(match self.answer {
            Some(r) => Err(r),
            None => Ok(Accepted {
                id: self.asked.len() as u64,
                subscribers: 1,
            }),
        })
    }

    fn stats(&mut self) -> String {
        String::new()
    }

    fn unresponsive(&mut self) {}

    fn idle_timeout(&mut self) {}
}

fn publishes(answer: Option<Refusal>, later: bool) -> Publishes {
    Publishes {
        memory: Memory::new(Limits::default()),
        answer,
        later,
        asked: Vec::new(),
    }
}

/// A WebSocket conn on `room` with its `101` taken, and its output.
fn direct(b: &mut Publishes, config: Config, now: Instant) -> Conn {
    let mut conn = Conn::new(Arc::new(config), now);
    conn.handle_read(&upgrade("", &[]), now);
    glue::drain(&mut conn, b, now);
    let out = take_all(&mut conn);
    assert_eq!(head_of(&out).0.status, 101);
    conn
}

fn take_all(conn: &mut Conn) -> Vec<u8> {
    let mut out = Vec::new();
    let n = transmit_all(conn, &mut out);
    conn.handle_written(n);
    out
}

#[test]
fn a_publish_refused_for_a_while_closes_try_again_later() {
    // Past the channel limit, or the broker out of reach: both pass.
    for refusal in [Refusal::ChannelLimit, Refusal::Broker] {
        let now = Instant::now();
        let mut b = publishes(Some(refusal), false);
        let mut conn = direct(&mut b, quick(), now);
        conn.handle_read(&text("one too many"), now);
        glue::drain(&mut conn, &mut b, now);
        let mut r = Reader::new(Transport::Ws);
        r.feed(&upgrade_answer());
        r.feed(&take_all(&mut conn));
        assert_eq!(r.closes, vec![Some(close::TRY_AGAIN_LATER)], "{refusal:?}");
        assert_eq!(b.asked, vec!["one too many"]);
        assert_eq!(b.memory.hub().stats().subscribers, 0, "{refusal:?}");
    }
}

/// The `101` to the sample key, so that a reader can start after it.
fn upgrade_answer() -> Vec<u8> {
    comet::ws::handshake::accept(
        &comet::ws::handshake::Request {
            method: "GET",
            http11: true,
            upgrade: Some("websocket"),
            connection: Some("Upgrade"),
            key: Some(SAMPLE_KEY),
            version: Some("13"),
            origin: None,
        },
        None,
    )
    .unwrap()
    .response_head()
    .to_vec()
}

#[test]
fn input_waits_while_a_publish_is_answered_later() {
    let now = Instant::now();
    let config = quick();
    let max_input = 8192 + 8192 + 1024 + config.max_message;
    let mut b = publishes(None, true);
    let mut conn = direct(&mut b, config.clone(), now);
    let mut wire = text("first");
    wire.extend_from_slice(&text("second"));
    conn.handle_read(&wire, now);
    glue::drain(&mut conn, &mut b, now);
    assert_eq!(b.asked, vec!["first", "second"], "one read, both decoded");
    // While they wait, what comes next is kept, not decoded.
    conn.handle_read(&text("third"), now);
    conn.handle_read(&client::ping(b"p", MASK), now);
    glue::drain(&mut conn, &mut b, now);
    assert_eq!(b.asked.len(), 2);
    assert!(take_all(&mut conn).is_empty(), "the ping waits too");
    conn.handle_published(1, 1, now);
    glue::drain(&mut conn, &mut b, now);
    assert_eq!(b.asked.len(), 2, "one publish still waits");
    conn.handle_published(2, 1, now);
    glue::drain(&mut conn, &mut b, now);
    assert_eq!(b.asked, vec!["first", "second", "third"]);
    assert_eq!(take_all(&mut conn), encode::pong(b"p").to_vec());
    // Kept input is bounded: a client that floods meanwhile is cut off.
    let flood = vec![0u8; 4096];
    let mut fed = 0;
    while !conn.is_done() {
        conn.handle_read(&flood, now);
        fed += flood.len();
        assert!(fed <= max_input + flood.len(), "not cut off");
    }
    assert!(fed > max_input - flood.len());
}

#[test]
fn an_idle_websocket_keeps_nothing_between_messages() {
    // Nothing to see from outside but what a dispatcher sees: no deadline
    // but the heartbeat, nothing queued, nothing read held.
    let mut h = Harness::new(quick());
    let (c, _) = open_ws(&mut h, "", &[]);
    h.send(c, text("one"));
    h.take(c);
    let now = h.now;
    assert_eq!(
        h.conn(c).poll_timeout(),
        Some(now + Config::default().heartbeat)
    );
    assert!(!h.conn(c).has_pending());
    assert!(!h.conn(c).is_reading());
    assert!(h.conn(c).is_duplex());
    // A frame cut in two is finished by its second half.
    let f = text("two");
    h.send(c, &f[..3]);
    h.send(c, &f[3..]);
    let mut r = Reader::new(Transport::Ws);
    r.feed(&upgrade_answer());
    r.feed(&h.take(c));
    assert_eq!(r.take(), vec![msg(2, "two")]);
}
