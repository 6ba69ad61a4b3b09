//! One conformance suite, run against every dispatcher: real sockets on
//! 127.0.0.1, port 0, the wire protocol of `docs/DESIGN.md`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use comet::client::Item;
use comet::{Config, Transport};
use dispatchers::{Kind, Options, Running};
use testkit::*;

fn server(kind: Kind, config: Config) -> Running {
    common::start(kind, config, 64)
}

/// Publishing needs the token `s3cret`; a message is at most 1 KiB.
fn guarded() -> Config {
    Config {
        publish_token: Some("s3cret".into()),
        max_message: 1024,
        ..quick()
    }
}

fn quick() -> Config {
    Config {
        heartbeat: Duration::from_secs(1),
        header_timeout: Duration::from_secs(1),
        ..Config::default()
    }
}

pub fn transports_in_order(kind: Kind) {
    let srv = server(kind, quick());
    let a = srv.addr;
    let mut subs: Vec<(Transport, Sub)> = [Transport::Sse, Transport::Stream, Transport::Iframe]
        .into_iter()
        .map(|t| (t, Sub::open(a, "room", t, "", "")))
        .collect();
    for (t, s) in &mut subs {
        let h = s.wait_head().clone();
        assert_eq!(h.status, 200, "{t:?}");
        assert_eq!(
            h.content_type
                .as_deref()
                .map(|c| c.split(';').next().unwrap()),
            t.content_type().map(|c| c.split(';').next().unwrap())
        );
        assert!(h.chunked || *t == Transport::Sse, "{t:?} is chunked");
    }
    let lp = Sub::open(a, "room", Transport::Longpoll, "", "");
    wait_subscribers(a, 4, Duration::from_secs(5));
    let sent: Vec<String> = (0..5).map(|i| format!("message {i}\nline two")).collect();
    for (i, m) in sent.iter().enumerate() {
        assert_eq!(publish(a, "room", m), i as u64 + 1);
        // Another channel's messages, with the same ids, reach nobody here.
        assert_eq!(publish(a, "other", "not for room"), i as u64 + 1);
    }
    let want: Vec<(u64, String)> = sent
        .iter()
        .enumerate()
        .map(|(i, m)| (i as u64 + 1, m.clone()))
        .collect();
    for (t, s) in &mut subs {
        assert_eq!(s.wait_messages(5), want, "{t:?}");
    }
    let mut lp = lp;
    assert_eq!(lp.wait_messages(1), want[..1].to_vec());
    let h = lp.head.clone().unwrap();
    assert_eq!(h.content_type.as_deref(), Some("application/json"));
    srv.stop();
}

/// Long-polls on one keep-alive connection: answered at once from the
/// backlog with `since`, held otherwise, `204` on timeout. Everything else
/// goes over one control connection, so the server must have accepted two.
pub fn longpoll_repoll_with_since(kind: Kind) {
    let srv = server(kind, quick());
    let a = srv.addr;
    let mut ctl = Control::connect(a);
    let mut lp = Sub::open(a, "lp", Transport::Longpoll, "", "");
    ctl.wait_subscribers(1, Duration::from_secs(5));
    ctl.publish("lp", "first");
    assert_eq!(lp.wait_messages(1), vec![(1, "first".to_string())]);
    assert!(lp.read_until(Duration::from_secs(5), |s| s.ended));
    // Published while no poll is open: the next poll with since gets them all.
    for m in ["second", "third", "fourth"] {
        ctl.publish("lp", m);
    }
    lp.items.clear();
    lp.repoll("lp", "&since=1");
    let got = lp.wait_messages(3);
    assert_eq!(
        got,
        vec![
            (2, "second".into()),
            (3, "third".into()),
            (4, "fourth".into())
        ]
    );
    // Same connection again, waiting this time.
    lp.items.clear();
    assert!(lp.read_until(Duration::from_secs(5), |s| s.ended));
    lp.repoll("lp", "&since=4");
    ctl.wait_subscribers(1, Duration::from_secs(5));
    ctl.publish("lp", "fifth");
    assert_eq!(lp.wait_messages(1), vec![(5, "fifth".into())]);
    // A timeout answers 204 on the same connection.
    assert!(lp.read_until(Duration::from_secs(5), |s| s.ended));
    lp.items.clear();
    lp.repoll("lp", "&since=5&timeout=1");
    assert!(lp.read_until(Duration::from_secs(5), |s| s.ended));
    assert_eq!(lp.head.as_ref().unwrap().status, 204);
    let st = ctl.stats();
    assert_eq!(
        st["accepted"],
        2,
        "{}: the polls and the control: {st}",
        kind.name()
    );
    assert_eq!(st["delivered"], 5, "{st}");
    srv.stop();
}

pub fn sse_last_event_id_replays(kind: Kind) {
    let srv = server(kind, quick());
    let a = srv.addr;
    for i in 1..=6 {
        publish(a, "news", &format!("n{i}"));
    }
    let mut s = Sub::open(
        a,
        "news",
        Transport::Sse,
        "&since=1",
        "Last-Event-ID: 3\r\n",
    );
    let got = s.wait_messages(3);
    assert_eq!(
        got,
        vec![(4, "n4".into()), (5, "n5".into()), (6, "n6".into())]
    );
    publish(a, "news", "n7");
    assert_eq!(s.wait_messages(4)[3], (7, "n7".into()));
    srv.stop();
}

pub fn missed_is_reported(kind: Kind) {
    let srv = server(
        kind,
        Config {
            backlog: 4,
            ..quick()
        },
    );
    let a = srv.addr;
    for i in 1..=10 {
        publish(a, "m", &format!("x{i}"));
    }
    // Backlog holds 7..10; since=2 missed 3..6.
    for t in [Transport::Sse, Transport::Stream, Transport::Iframe] {
        let mut s = Sub::open(a, "m", t, "&since=2", "");
        assert!(
            s.read_until(Duration::from_secs(5), |s| s.messages().len() >= 4),
            "{t:?}"
        );
        assert_eq!(
            s.items.iter().find(|i| matches!(i, Item::Missed(_))),
            Some(&Item::Missed(4)),
            "{t:?}"
        );
        assert_eq!(s.messages()[0].0, 7);
    }
    let mut lp = Sub::open(a, "m", Transport::Longpoll, "&since=2", "");
    assert_eq!(
        lp.wait_messages(4).iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![7, 8, 9, 10]
    );
    assert_eq!(lp.head.as_ref().unwrap().missed, Some(4));
    srv.stop();
}

pub fn iframe_cannot_be_broken_out_of(kind: Kind) {
    let srv = server(kind, quick());
    let a = srv.addr;
    let mut s = Sub::open(a, "f", Transport::Iframe, "", "");
    s.wait_head();
    let hostile = "</script><script>alert(1)</script>\u{2028}\u{2029}<!--&amp;";
    publish(a, "f", hostile);
    // Read raw bytes too: the script element must not contain '<' etc.
    assert_eq!(s.wait_messages(1), vec![(1, hostile.to_string())]);
    let mut raw = TcpStream::connect(a).unwrap();
    raw.write_all(b"GET /sub/f?transport=iframe&since=0 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&buf).contains("</script>") {
        let n = raw.read(&mut chunk).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let start = text.find("<script>").unwrap() + "<script>".len();
    let end = start + text[start..].find("</script>").unwrap();
    let script = &text[start..end];
    assert!(
        !script.contains(['<', '>', '&', '\u{2028}', '\u{2029}']),
        "{script}"
    );
    srv.stop();
}

pub fn errors_have_the_right_status(kind: Kind) {
    let srv = server(kind, guarded());
    let a = srv.addr;
    let status = |raw: &[u8]| request(a, raw).0.status;
    assert_eq!(status(b"GET /sub/bad!name HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(
        status(b"GET /sub/a?transport=carrier-pigeon HTTP/1.1\r\n\r\n"),
        400
    );
    assert_eq!(status(b"GET /sub/a?since=x HTTP/1.1\r\n\r\n"), 400);
    assert_eq!(status(b"NONSENSE\r\n\r\n"), 400);
    assert_eq!(
        status(b"POST /pub/a HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"),
        401
    );
    assert_eq!(
        status(
            b"POST /pub/a HTTP/1.1\r\nAuthorization: Bearer wrong\r\nContent-Length: 2\r\n\r\nhi"
        ),
        401
    );
    assert_eq!(
        status(b"POST /pub/a HTTP/1.1\r\nContent-Length: 99999\r\n\r\n"),
        401
    );
    assert_eq!(
        status(
            b"POST /pub/a HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nContent-Length: 2\r\n\r\nhi"
        ),
        202
    );
    assert_eq!(status(b"POST /pub/a HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nContent-Length: 2\r\n\r\n\xff\xfe"), 400);
    assert_eq!(
        status(
            b"POST /pub/a HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nContent-Length: 2000\r\n\r\n"
        ),
        413
    );
    assert_eq!(status(b"GET /nowhere HTTP/1.1\r\n\r\n"), 404);
    let (h, _) = request(a, b"GET /pub/a HTTP/1.1\r\n\r\n");
    assert_eq!(h.status, 405);
    let long = format!("GET /sub/{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
    assert_eq!(status(long.as_bytes()), 414);
    let big = format!("GET /sub/a HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(9000));
    assert_eq!(status(big.as_bytes()), 431);
    // Nothing was published by the refused requests.
    assert_eq!(stats(a)["published"], 1);
    // Slow headers: closed after the header timeout (1 s here), 408 first.
    let mut slow = TcpStream::connect(a).unwrap();
    slow.write_all(b"GET /sub/a HTTP/1.1\r\nX-Slow: ").unwrap();
    let t0 = Instant::now();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let _ = slow.read_to_end(&mut got);
    assert!(t0.elapsed() < Duration::from_secs(8), "not closed in time");
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408"),
        "{got:?}"
    );
    srv.stop();
}

pub fn disconnected_client_is_removed(kind: Kind) {
    let srv = server(kind, quick());
    let a = srv.addr;
    let mut keep = Sub::open(a, "d", Transport::Sse, "", "");
    keep.wait_head();
    for t in [Transport::Sse, Transport::Stream, Transport::Iframe] {
        let mut s = Sub::open(a, "d", t, "", "");
        s.wait_head();
        wait_subscribers(a, 2, Duration::from_secs(5));
        drop(s);
        // Thread dispatchers notice at the next heartbeat (1 s here).
        wait_subscribers(a, 1, Duration::from_secs(5));
    }
    let st = stats(a);
    assert_eq!(st["dispatcher"], kind.name());
    srv.stop();
}

pub fn broadcast_to_1000_sse(kind: Kind) {
    // The pool must hold every subscriber, or the rest would (rightly) wait.
    let srv = common::start(kind, quick(), 1100);
    let a = srv.addr;
    let mut subs: Vec<Sub> = (0..1000)
        .map(|_| Sub::open(a, "all", Transport::Sse, "", ""))
        .collect();
    wait_subscribers(a, 1000, Duration::from_secs(30));
    publish(a, "all", "to everyone");
    for s in &mut subs {
        assert_eq!(s.wait_messages(1), vec![(1, "to everyone".to_string())]);
    }
    let st = stats(a);
    assert_eq!(st["delivered"], 1000);
    srv.stop();
}

pub fn keep_alive_and_pipelining(kind: Kind) {
    let srv = server(kind, quick());
    let a = srv.addr;
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"POST /pub/p HTTP/1.1\r\nContent-Length: 1\r\n\r\naPOST /pub/p HTTP/1.1\r\nContent-Length: 1\r\n\r\nbGET /nope HTTP/1.1\r\n\r\nGET /stats HTTP/1.1\r\n\r\n").unwrap();
    let mut r = read_responses(&mut s, 4).into_iter();
    let (h1, b1) = r.next().unwrap();
    let (h2, b2) = r.next().unwrap();
    let (h3, _) = r.next().unwrap();
    let (h4, b4) = r.next().unwrap();
    assert_eq!(
        (h1.status, h2.status, h3.status, h4.status),
        (202, 202, 404, 200)
    );
    assert!(String::from_utf8_lossy(&b1).contains("\"id\":1"));
    assert!(String::from_utf8_lossy(&b2).contains("\"id\":2"));
    let st: serde_json::Value = serde_json::from_slice(&b4).unwrap();
    assert_eq!(st["published"], 2, "{st}");
    // HTTP/1.0 is answered and closed.
    let (h, _) = request(a, b"GET /stats HTTP/1.0\r\n\r\n");
    assert_eq!(h.status, 200);
    assert!(h.close);
    srv.stop();
}

/// A server stopped and started again on the same port, as after a SIGTERM:
/// the port binds at once although the old server's closed connections sit
/// in TIME_WAIT (`SO_REUSEADDR`), and a subscriber that reconnects with ids
/// from the old life gets what the new one published meanwhile.
pub fn restart_on_the_same_port_and_resume(kind: Kind) {
    let srv = server(kind, quick());
    let a = srv.addr;
    let mut s = Sub::open(a, "r", Transport::Sse, "", "");
    s.wait_head();
    wait_subscribers(a, 1, Duration::from_secs(5));
    for i in 1..=3 {
        publish(a, "r", &format!("old{i}"));
    }
    assert_eq!(s.wait_messages(3).last().unwrap().0, 3);
    // `Connection: close` requests: the server closes first, so these sit in
    // TIME_WAIT on the server's port.
    for _ in 0..5 {
        stats(a);
    }
    srv.stop();
    drop(s);
    let srv = dispatchers::start(
        kind,
        Options {
            config: quick(),
            listen: a,
            threads: 2,
            ..Options::default()
        },
    )
    .unwrap_or_else(|e| panic!("{}: restart on {a}: {e}", kind.name()));
    assert_eq!(srv.addr, a);
    // Published before the client is back.
    assert_eq!(publish(a, "r", "new1"), 1);
    assert_eq!(publish(a, "r", "new2"), 2);
    let mut s = Sub::open(a, "r", Transport::Sse, "", "Last-Event-ID: 3\r\n");
    assert_eq!(
        s.wait_messages(2),
        vec![(1, "new1".into()), (2, "new2".into())]
    );
    // A long-poll with an old `since` gets them too.
    let mut lp = Sub::open(a, "r", Transport::Longpoll, "&since=3", "");
    assert_eq!(
        lp.wait_messages(2),
        vec![(1, "new1".into()), (2, "new2".into())]
    );
    srv.stop();
}

/// A restart under load: the server is stopped right after a publish was
/// answered `202`, with no pause between. Every subscriber, of every
/// transport, must get that message before its connection closes; a
/// long-poll held on a channel with no message is simply closed. A few
/// rounds, as the stop races the delivery.
pub fn stop_delivers_what_was_accepted(kind: Kind) {
    const PER_TRANSPORT: usize = 3;
    let transports = [
        Transport::Sse,
        Transport::Stream,
        Transport::Iframe,
        Transport::Ws,
        Transport::Longpoll,
    ];
    for round in 0..5 {
        let srv = server(kind, quick());
        let a = srv.addr;
        let mut subs: Vec<(Transport, Sub)> = transports
            .iter()
            .flat_map(|&t| (0..PER_TRANSPORT).map(move |_| t))
            .map(|t| (t, Sub::open(a, "bye", t, "", "")))
            .collect();
        let mut idle = Sub::open(a, "quiet", Transport::Longpoll, "", "");
        wait_subscribers(a, subs.len() as u64 + 1, Duration::from_secs(5));
        // Warm the streams up to a message each, so the last one is not
        // also the first bytes of a response.
        assert_eq!(publish(a, "bye", "before"), 1);
        for (t, s) in &mut subs {
            if *t != Transport::Longpoll {
                assert_eq!(s.wait_messages(1)[0].0, 1, "{t:?}");
            }
        }
        // The long-polls were answered; poll again (and again wait until
        // they are held, or the message would only reach the backlog).
        for (t, s) in &mut subs {
            if *t == Transport::Longpoll {
                assert!(s.read_until(Duration::from_secs(5), |s| s.ended), "{t:?}");
                s.items.clear();
                s.repoll("bye", "&since=1");
            }
        }
        wait_subscribers(a, subs.len() as u64 + 1, Duration::from_secs(5));
        assert_eq!(publish(a, "bye", "last words"), 2);
        let started = Instant::now();
        srv.stop();
        let took = started.elapsed();
        for (t, s) in &mut subs {
            assert!(
                s.read_to_close(Duration::from_secs(5)),
                "{} round {round}: {t:?} not closed",
                kind.name()
            );
            assert!(
                s.messages().contains(&(2, "last words".to_string())),
                "{} round {round}: {t:?} lost the last message: {:?}",
                kind.name(),
                s.items
            );
        }
        assert!(idle.read_to_close(Duration::from_secs(5)), "idle long-poll");
        assert!(idle.messages().is_empty(), "{:?}", idle.items);
        // Every client read: nothing waited for the deadline.
        assert!(
            took < dispatchers::STOP_GRACE,
            "{}: stop took {took:?}",
            kind.name()
        );
    }
}

/// Once a stop has begun, no publish is accepted, on the main listener or
/// on the publish listener: `503`, and the connection closes.
pub fn publish_refused_once_stopping(kind: Kind) {
    let srv = dispatchers::start(
        kind,
        Options {
            config: quick(),
            threads: 2,
            publish_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..Options::default()
        },
    )
    .unwrap();
    let a = srv.addr;
    let p = srv.publish_addr.unwrap();
    assert_eq!(publish(a, "c", "one"), 1);
    assert_eq!(publish(p, "c", "two"), 2);
    srv.shared.stop_publishing();
    for addr in [a, p] {
        let (head, _) = request(
            addr,
            comet::client::publish_request("c", "three", None).as_bytes(),
        );
        assert_eq!(head.status, 503, "{}", kind.name());
        assert!(head.close);
    }
    assert_eq!(stats(a)["published"], 2);
    srv.stop();
}

/// A client that does not read does not hold a stop up past its deadline.
pub fn stop_does_not_wait_for_a_client_that_does_not_read(kind: Kind) {
    let srv = server(
        kind,
        Config {
            max_queue: 256 << 20,
            ..quick()
        },
    );
    let a = srv.addr;
    let mut s = Sub::open(a, "full", Transport::Stream, "", "");
    s.wait_head();
    wait_subscribers(a, 1, Duration::from_secs(5));
    // Far more than the socket buffers hold; the subscriber reads nothing.
    let big = "x".repeat(60 * 1024);
    for _ in 0..400 {
        publish(a, "full", &big);
    }
    let started = Instant::now();
    srv.stop();
    let took = started.elapsed();
    assert!(
        took < dispatchers::STOP_GRACE + Duration::from_secs(2),
        "{}: stop took {took:?}",
        kind.name()
    );
    drop(s);
}

/// A stop with streams held and connections that never sent a byte is
/// prompt, closes every one of them, and closes the listener.
pub fn stop_is_prompt_and_closes_the_listener(kind: Kind) {
    let srv = common::start(kind, quick(), 100);
    let a = srv.addr;
    let mut subs: Vec<Sub> = (0..20)
        .map(|_| Sub::open(a, "stay", Transport::Sse, "", ""))
        .collect();
    for s in &mut subs {
        s.wait_head();
    }
    let idle: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(a).unwrap()).collect();
    let t0 = Instant::now();
    srv.stop();
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "{}: {:?}",
        kind.name(),
        t0.elapsed()
    );
    for s in &mut subs {
        assert!(
            s.read_to_close(Duration::from_secs(2)),
            "{}: still open",
            kind.name()
        );
    }
    drop(idle);
    assert!(
        TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_err(),
        "{}: still listening",
        kind.name()
    );
}

/// Channels come and go: `/stats` `channels` counts the live ones; past
/// `max_channels` a request that would make one more is `503` on either
/// route and nothing else changes; a message leaves the backlog at
/// `message_ttl`, and a channel left with no subscriber and no message is
/// removed by the housekeeping tick, with no traffic; a held one stays.
pub fn channels_expire_and_are_bounded(kind: Kind) {
    let ttl = Duration::from_secs(2);
    let srv = server(
        kind,
        Config {
            message_ttl: ttl,
            max_channels: 3,
            ..quick()
        },
    );
    let a = srv.addr;
    let mut held = Sub::open(a, "held", Transport::Sse, "", "");
    held.wait_head();
    assert_eq!(publish(a, "a", "one"), 1);
    assert_eq!(publish(a, "b", "two"), 1);
    let born = Instant::now();
    assert_eq!(stats(a)["channels"], 3);
    let (head, body) = request(a, comet::client::publish_request("c", "x", None).as_bytes());
    assert_eq!(
        (head.status, String::from_utf8_lossy(&body).as_ref()),
        (503, "too many channels\n"),
        "{}",
        kind.name()
    );
    let (head, _) = request(
        a,
        b"GET /sub/c?transport=longpoll HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(head.status, 503, "{}", kind.name());
    // The channels there are take requests as before.
    assert_eq!(publish(a, "held", "to the held one"), 1);
    assert_eq!(held.wait_messages(1), vec![(1, "to the held one".into())]);
    let st = stats(a);
    assert_eq!(
        (st["channels"].as_u64(), st["published"].as_u64()),
        (Some(3), Some(3))
    );
    // Past their lifetime a and b go; the held channel stays, without its message.
    let end = Instant::now() + ttl + Duration::from_secs(8);
    while stats(a)["channels"] != 1 {
        assert!(Instant::now() < end, "{}: {}", kind.name(), stats(a));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(born.elapsed() >= ttl, "{}: expired early", kind.name());
    let mut late = Sub::open(a, "held", Transport::Longpoll, "&since=0", "");
    assert_eq!(late.wait_head().missed, Some(1), "{}", kind.name());
    // Room again; and a channel made again starts a new life.
    assert_eq!(publish(a, "a", "new life"), 1);
    assert_eq!(publish(a, "c", "at last"), 1);
    drop(held);
    // Its last subscriber gone, nothing of "held" is left: removed at once.
    let end = Instant::now() + Duration::from_secs(5);
    while stats(a)["channels"] != 2 {
        assert!(Instant::now() < end, "{}: {}", kind.name(), stats(a));
        std::thread::sleep(Duration::from_millis(20));
    }
    srv.stop();
}

/// An answer given before the request's body is read (`401`, `413`) reaches
/// a client that sends the head, then the body a moment later in two writes,
/// as HTTP libraries do. Closing with that body unread would make the kernel
/// reset the connection, and the client would see "connection reset" or
/// "broken pipe" instead of the answer; the server reads and discards what
/// still comes (a lingering close) and closes after the client's end.
pub fn early_answer_survives_a_late_body(kind: Kind) {
    const TRIES: usize = 10;
    let srv = server(kind, guarded());
    let a = srv.addr;
    let mut lost = Vec::new();
    for (auth, len, want) in [("wrong", 4096, 401), ("s3cret", 100_000, 413)] {
        for i in 0..TRIES {
            match late_body(a, auth, len) {
                Ok(status) if status == want => {}
                other => lost.push(format!("{want} try {i}: {other:?}")),
            }
        }
    }
    assert!(
        lost.is_empty(),
        "{}: {} of {} answers lost: {lost:?}",
        kind.name(),
        lost.len(),
        2 * TRIES
    );
    srv.stop();
}

/// Sends a publish head, then `len` bytes of body in two writes with pauses
/// between; returns the status read back, or why there was none.
fn late_body(a: std::net::SocketAddr, auth: &str, len: usize) -> Result<u16, String> {
    let pause = Duration::from_millis(30);
    let mut s = TcpStream::connect(a).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /pub/early HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {auth}\r\nContent-Length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes())
        .map_err(|e| format!("head: {e}"))?;
    let body = vec![b'x'; len];
    for half in body.chunks(len.div_ceil(2)) {
        std::thread::sleep(pause);
        s.write_all(half).map_err(|e| format!("body: {e}"))?;
    }
    let mut got = Vec::new();
    s.read_to_end(&mut got).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&got);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no answer: {text:?}"))
}

/// WebSocket: the sockets get what HTTP publishes and what they publish
/// themselves (the sender too), ids in order, resume with `since`, and
/// the close codes of a client that breaks the rules.
pub fn websocket_publish_resume_and_close(kind: Kind) {
    let srv = server(kind, quick());
    let a = srv.addr;
    let mut ws: Vec<Sub> = (0..2)
        .map(|_| Sub::open(a, "chat", Transport::Ws, "", ""))
        .collect();
    let mut sse = Sub::open(a, "chat", Transport::Sse, "", "");
    for s in &mut ws {
        assert_eq!(s.wait_head().status, 101, "{}", kind.name());
    }
    wait_subscribers(a, 3, Duration::from_secs(5));
    ws[0].send_text("from the socket");
    // Its own message back is its acknowledgement: published by then.
    assert_eq!(ws[0].wait_messages(1)[0].0, 1, "{}", kind.name());
    assert_eq!(publish(a, "chat", "from http"), 2);
    ws[1].send_text("from the other \u{2028} é");
    let want = vec![
        (1, "from the socket".to_string()),
        (2, "from http".to_string()),
        (3, "from the other \u{2028} é".to_string()),
    ];
    for s in &mut ws {
        assert_eq!(s.wait_messages(3), want, "{}", kind.name());
    }
    assert_eq!(sse.wait_messages(3), want, "{}", kind.name());
    let mut back = Sub::open(a, "chat", Transport::Ws, "&since=1", "");
    assert_eq!(back.wait_messages(2), want[1..].to_vec(), "{}", kind.name());
    // A client breaking the rules gets its close code, then the connection ends.
    let bad: [(&[u8], u16); 3] = [
        (b"\x82\x81\0\0\0\0\x01", 1003),
        (b"\x81\x01x", 1002),
        (b"\x81\x82\0\0\0\0\xc3\x28", 1007),
    ];
    for (frame, code) in bad {
        let mut s = Sub::open(a, "chat", Transport::Ws, "", "");
        assert_eq!(s.wait_head().status, 101);
        s.send_raw(frame);
        assert!(
            s.read_to_close(Duration::from_secs(5)),
            "{}: {code}",
            kind.name()
        );
        assert_eq!(s.closes, vec![Some(code)], "{}", kind.name());
    }
    // The client's own close is echoed with its code.
    let mut s = Sub::open(a, "chat", Transport::Ws, "", "");
    s.wait_head();
    s.send_raw(&comet::ws::client::close(4321, "bye", MASK));
    assert!(s.read_to_close(Duration::from_secs(5)), "{}", kind.name());
    assert_eq!(s.closes, vec![Some(4321)], "{}", kind.name());
    drop(ws);
    drop(sse);
    drop(back);
    wait_subscribers(a, 0, Duration::from_secs(5));
    srv.stop();
}

/// WebSocket: a ping every heartbeat; a client that answers them stays, one
/// that answers none is dropped after two heartbeats and counted.
pub fn websocket_ping_and_the_dead_client(kind: Kind) {
    let srv = server(kind, quick());
    let a = srv.addr;
    let mut alive = Sub::open(a, "hb", Transport::Ws, "", "");
    let mut dead = Sub::open(a, "hb", Transport::Ws, "", "");
    dead.answers = false;
    alive.wait_head();
    dead.wait_head();
    // Both read at once: the live one answers as it reads.
    let reader = std::thread::spawn(move || {
        let kept = alive.read_until(Duration::from_secs(8), |s| s.pings >= 4);
        (alive, kept)
    });
    let t = Instant::now();
    assert!(
        dead.read_to_close(Duration::from_secs(10)),
        "{}: not dropped",
        kind.name()
    );
    let took = t.elapsed();
    // The heartbeat is 1 s: dropped at the third, unanswered since the first.
    assert!(
        took >= Duration::from_millis(1900),
        "{}: {took:?}",
        kind.name()
    );
    assert!(dead.pings >= 2, "{}: {} pings", kind.name(), dead.pings);
    let (mut alive, kept) = reader.join().unwrap();
    assert!(kept, "{}: {} pings", kind.name(), alive.pings);
    let st = stats(a);
    assert_eq!(st["dropped_unresponsive"], 1, "{}: {st}", kind.name());
    assert_eq!(st["subscribers"], 1, "{}: {st}", kind.name());
    alive.send_text("still here");
    assert_eq!(alive.wait_messages(1)[0].1, "still here");
    srv.stop();
}

/// WebSocket: the handshake refusals, the origin check, and the publish
/// token asked of the handshake.
pub fn websocket_handshake_and_token(kind: Kind) {
    let srv = server(
        kind,
        Config {
            allow_origin: Some("http://ok.example".into()),
            ..guarded()
        },
    );
    let a = srv.addr;
    let up = |extra: &str| {
        format!(
            "GET /sub/h?transport=ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}\r\n"
        )
    };
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let ok = "Origin: http://ok.example\r\n";
    let (status, head, _) = exchange(
        a,
        up(&format!("{key}Sec-WebSocket-Version: 8\r\n{ok}")).as_bytes(),
    );
    assert_eq!(status, 426, "{}", kind.name());
    assert_eq!(header(&head, "Sec-WebSocket-Version"), Some("13"));
    let (status, _, _) = exchange(
        a,
        up(&format!("Sec-WebSocket-Version: 13\r\n{ok}")).as_bytes(),
    );
    assert_eq!(status, 400, "{}: no key", kind.name());
    let (status, _, _) = exchange(
        a,
        up(&format!(
            "{key}Sec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n"
        ))
        .as_bytes(),
    );
    assert_eq!(status, 403, "{}: another origin", kind.name());
    // No token: subscribed, but a publish is closed with 1008.
    let mut s = Sub::open(a, "h", Transport::Ws, "", ok);
    assert_eq!(s.wait_head().status, 101, "{}", kind.name());
    s.send_text("not allowed");
    assert!(s.read_to_close(Duration::from_secs(5)), "{}", kind.name());
    assert_eq!(s.closes, vec![Some(1008)], "{}", kind.name());
    // The token in the query, as a browser has to give it.
    let mut s = Sub::open(a, "h", Transport::Ws, "&token=s3cret", ok);
    s.wait_head();
    s.send_text("allowed");
    assert_eq!(
        s.wait_messages(1),
        vec![(1, "allowed".into())],
        "{}",
        kind.name()
    );
    assert_eq!(stats(a)["published"], 1);
    srv.stop();
}

/// A connection that sends nothing is closed at the header timeout (1 s
/// here) with nothing written, and counted in `/stats` `closed_idle`; one
/// that sent part of a head is answered 408 instead, and not counted.
pub fn a_silent_connection_is_closed_and_counted(kind: Kind) {
    let srv = server(kind, quick());
    let mut silent = TcpStream::connect(srv.addr).unwrap();
    let mut partial = TcpStream::connect(srv.addr).unwrap();
    partial.write_all(b"GET /sub/a HTTP/1.1\r\n").unwrap();
    for s in [&silent, &partial] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    let mut got = Vec::new();
    let n = silent.read_to_end(&mut got).expect("closed within 5 s");
    assert_eq!(n, 0, "{}: nothing written", kind.name());
    let mut answer = String::new();
    let _ = partial.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "{}: {answer:?}",
        kind.name()
    );
    let st = stats(srv.addr);
    assert_eq!(st["closed_idle"], 1, "{}: {st}", kind.name());
    srv.stop();
}

macro_rules! conformance {
    ($($module:ident => $kind:expr),* $(,)?) => {
        #[test]
        fn every_dispatcher_is_in_the_suite() {
            common::assert_every_kind(&[$($kind),*]);
        }
        $(
        mod $module {
            use super::*;
            #[test] fn transports_in_order() { super::transports_in_order($kind) }
            #[test] fn longpoll_repoll_with_since() { super::longpoll_repoll_with_since($kind) }
            #[test] fn sse_last_event_id_replays() { super::sse_last_event_id_replays($kind) }
            #[test] fn missed_is_reported() { super::missed_is_reported($kind) }
            #[test] fn iframe_cannot_be_broken_out_of() { super::iframe_cannot_be_broken_out_of($kind) }
            #[test] fn errors_have_the_right_status() { super::errors_have_the_right_status($kind) }
            #[test] fn disconnected_client_is_removed() { super::disconnected_client_is_removed($kind) }
            #[test] fn broadcast_to_1000_sse() { super::broadcast_to_1000_sse($kind) }
            #[test] fn keep_alive_and_pipelining() { super::keep_alive_and_pipelining($kind) }
            #[test] fn restart_on_the_same_port_and_resume() { super::restart_on_the_same_port_and_resume($kind) }
            #[test] fn stop_delivers_what_was_accepted() { super::stop_delivers_what_was_accepted($kind) }
            #[test] fn publish_refused_once_stopping() { super::publish_refused_once_stopping($kind) }
            #[test] fn stop_does_not_wait_for_a_client_that_does_not_read() { super::stop_does_not_wait_for_a_client_that_does_not_read($kind) }
            #[test] fn early_answer_survives_a_late_body() { super::early_answer_survives_a_late_body($kind) }
            #[test] fn channels_expire_and_are_bounded() { super::channels_expire_and_are_bounded($kind) }
            #[test] fn stop_is_prompt_and_closes_the_listener() { super::stop_is_prompt_and_closes_the_listener($kind) }
            #[test] fn websocket_publish_resume_and_close() { super::websocket_publish_resume_and_close($kind) }
            #[test] fn websocket_ping_and_the_dead_client() { super::websocket_ping_and_the_dead_client($kind) }
            #[test] fn websocket_handshake_and_token() { super::websocket_handshake_and_token($kind) }
            #[test] fn a_silent_connection_is_closed_and_counted() { super::a_silent_connection_is_closed_and_counted($kind) }
        }
    )*
    };
}

conformance! {
    reactor => Kind::Reactor,
    uring => Kind::Uring,
    thread_per_connection => Kind::ThreadPerConn,
    thread_pool => Kind::ThreadPool,
    green => Kind::Green,
    tokio => Kind::Tokio,
}
