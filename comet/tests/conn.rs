//! Scenario tests of [`Conn`] against a hub, the way a dispatcher drives
//! them, with no sockets, no threads and no sleeps: time is a fake clock
//! (`start + Duration`) moved by hand, and output is decoded with
//! [`comet::client`], through the harness in `harness/`.

mod harness;

use std::collections::BTreeMap;
use std::io::IoSlice;
use std::sync::Arc;

use comet::client::{self, Item};
use comet::{Config, Event, Transport};
use harness::*;

// ----- transports -----

#[test]
fn every_streaming_transport_delivers_in_order() {
    let data = ["one", "two\nlines", "three \"quoted\" \\ é"];
    for t in STREAMING {
        let mut h = Harness::default();
        let c = h.subscribe("room", t, None);
        let mut r = Reader::new(t);
        r.feed(&h.take(c));
        let head = r.head.clone().expect("head at once");
        assert_eq!(head.status, 200, "{t:?}");
        assert_eq!(head.content_type.as_deref(), t.content_type(), "{t:?}");
        assert!(head.chunked, "{t:?}");
        assert!(!head.close, "{t:?}");
        assert_eq!(r.take(), vec![], "{t:?}");
        for (i, d) in data.iter().enumerate() {
            assert_eq!(h.publish("room", d), (i as u64 + 1, 1), "{t:?}");
        }
        r.feed(&h.take(c));
        let want: Vec<Item> = data
            .iter()
            .enumerate()
            .map(|(i, d)| msg(i as u64 + 1, d))
            .collect();
        assert_eq!(r.take(), want, "{t:?}");
        assert_eq!(r.ended, 0);
        assert!(!h.conn(c).is_done());
    }
}

#[test]
fn sse_wire_format() {
    let mut h = Harness::default();
    let c = h.subscribe("a", Transport::Sse, None);
    let out = h.take(c);
    let (head, raw) = head_of(&out);
    assert!(raw.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    assert_eq!(head.content_type.as_deref(), Some("text/event-stream"));
    assert!(head.chunked);
    assert_eq!(
        chunks(&out[head.len..]),
        vec![b"retry: 3000\n\n".to_vec()],
        "retry: comes first"
    );
    h.publish("a", "x\ny\r\nz");
    h.publish("a", "");
    assert_eq!(
        h.take_str(c),
        chunk("id: 1\ndata: x\ndata: y\ndata: z\n\n") + &chunk("id: 2\ndata: \n\n")
    );
}

#[test]
fn stream_wire_format() {
    let mut h = Harness::default();
    let c = h.subscribe("a", Transport::Stream, None);
    let out = h.take(c);
    let (head, _) = head_of(&out);
    assert_eq!(head.content_type.as_deref(), Some("application/x-ndjson"));
    assert!(head.chunked);
    assert_eq!(out.len(), head.len, "no prelude for ndjson");
    h.publish("a", "hi\n\"there\"");
    assert_eq!(
        h.take_str(c),
        chunk("{\"id\":1,\"data\":\"hi\\n\\\"there\\\"\"}\n")
    );
}

#[test]
fn iframe_prelude_then_scripts() {
    let mut h = Harness::default();
    let c = h.subscribe("a", Transport::Iframe, None);
    let out = h.take(c);
    let (head, _) = head_of(&out);
    assert_eq!(
        head.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(head.chunked);
    // The prelude is sent at once, before any message.
    let prelude = chunks(&out[head.len..]).concat();
    let prelude = String::from_utf8(prelude).unwrap();
    assert!(prelude.starts_with("<!DOCTYPE html>"), "{prelude}");
    assert!(prelude.len() >= 1024, "prelude of {} bytes", prelude.len());
    assert!(!prelude.contains("<script"));
    h.publish("a", "hi");
    assert_eq!(
        h.take_str(c),
        chunk("<script>parent.comet({\"id\":1,\"data\":\"hi\"});</script>\n")
    );
}

#[test]
fn iframe_message_cannot_break_out() {
    let evil = "</script><script>alert(1)</script><!-- & \u{2028}\u{2029} -->";
    let mut h = Harness::default();
    let c = h.subscribe("a", Transport::Iframe, None);
    h.publish("a", evil);
    h.publish("a", "</SCRIPT >");
    let out = h.take(c);
    let (head, _) = head_of(&out);
    let body = String::from_utf8(chunks(&out[head.len..]).concat()).unwrap();
    let scripts: Vec<&str> = body.split("<script>").skip(1).collect();
    assert_eq!(scripts.len(), 2, "{body}");
    let mut datas = Vec::new();
    for sc in scripts {
        let (text, _) = sc.split_once("</script>").expect("closed");
        assert!(
            !text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']),
            "script text {text:?}"
        );
        let json = text
            .strip_prefix("parent.comet(")
            .and_then(|t| t.strip_suffix(");"))
            .expect("one call");
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        datas.push(v["data"].as_str().unwrap().to_string());
    }
    assert_eq!(datas, vec![evil.to_string(), "</SCRIPT >".to_string()]);
    let mut r = Reader::new(Transport::Iframe);
    r.feed(&out);
    assert_eq!(r.take(), vec![msg(1, evil), msg(2, "</SCRIPT >")]);
}

#[test]
fn default_transport_follows_accept() {
    let mut h = Harness::default();
    let c = h.open();
    h.send(
        c,
        "GET /sub/a HTTP/1.1\r\nAccept: text/html, text/event-stream;q=0.9\r\n\r\n",
    );
    let out = h.take(c);
    assert_eq!(
        head_of(&out).0.content_type.as_deref(),
        Some("text/event-stream")
    );
    let c = h.open();
    h.send(c, "GET /sub/a HTTP/1.1\r\nAccept: */*\r\n\r\n");
    assert_eq!(h.take(c), b"", "long-poll waits");
    h.publish("a", "m");
    let r = response(&h.take(c));
    assert_eq!(r.head.content_type.as_deref(), Some("application/json"));
}

// ----- long-poll -----

#[test]
fn longpoll_waits_then_answers_and_keeps_alive() {
    let mut h = Harness::default();
    let c = h.subscribe("lp", Transport::Longpoll, None);
    assert_eq!(h.take(c), b"", "held");
    assert_eq!(h.hub().stats().subscribers, 1);
    assert_eq!(h.publish("lp", "first"), (1, 1));
    let r = response(&h.take(c));
    assert_eq!(r.status(), 200);
    assert_eq!(r.head.content_type.as_deref(), Some("application/json"));
    assert_eq!(r.header("Connection"), None, "keep-alive");
    assert_eq!(r.header("X-Comet-Missed"), None);
    assert_eq!(r.text(), r#"[{"id":1,"data":"first"}]"#);
    assert_eq!((h.unsubscribes(c), h.hub().stats().subscribers), (1, 0));
    assert!(!h.conn(c).is_done());

    // Published while the client is away: a re-poll with since gets them all at once.
    for d in ["b", "c", "d"] {
        assert_eq!(h.publish("lp", d).1, 0);
    }
    h.send(
        c,
        client::subscribe_request("lp", Transport::Longpoll, Some(1)),
    );
    let r = response(&h.take(c));
    assert_eq!(r.status(), 200);
    assert_eq!(
        client::parse_longpoll(&r.body).unwrap(),
        vec![msg(2, "b"), msg(3, "c"), msg(4, "d")]
    );
    assert_eq!(r.header("Connection"), None);

    // Without since: only what comes after the request.
    h.send(
        c,
        client::subscribe_request("lp", Transport::Longpoll, None),
    );
    assert_eq!(h.take(c), b"");
    h.publish("lp", "e");
    h.publish("lp", "f");
    let r = response(&h.take(c));
    assert_eq!(r.text(), r#"[{"id":5,"data":"e"}]"#);

    // since = the last id: waits too.
    h.send(
        c,
        client::subscribe_request("lp", Transport::Longpoll, Some(6)),
    );
    assert_eq!(h.take(c), b"");
    h.publish("lp", "g");
    let mut r = Reader::new(Transport::Longpoll);
    r.feed(&h.take(c));
    assert_eq!(r.take(), vec![msg(7, "g")]);
    assert_eq!(r.ended, 1);
    assert_eq!(h.unsubscribes(c), 4);
    assert_eq!(h.hub().stats().subscribers, 0);
}

#[test]
fn longpoll_duplicate_message_is_ignored() {
    let mut h = Harness::default();
    h.publish("a", "1");
    let c = h.subscribe("a", Transport::Longpoll, None);
    // The replay's last id is 1: message 1 again is a duplicate.
    let m = Arc::new(comet::Message::new("a".into(), 1, "1".into()));
    let now = h.now;
    assert!(!h.conn(c).handle_message(&m, now));
    h.settle();
    assert_eq!(h.take(c), b"");
}

#[test]
fn longpoll_timeouts() {
    let mut h = Harness::default();
    let c = h.subscribe("a", Transport::Longpoll, None);
    assert_eq!(h.conn(c).poll_timeout(), Some(h.start + s(30)));
    h.at(ms(29_999));
    h.tick();
    assert_eq!(h.take(c), b"");
    h.at(s(30));
    h.tick();
    let r = response(&h.take(c));
    assert_eq!(r.status(), 204);
    assert!(
        r.raw.starts_with("HTTP/1.1 204 No Content\r\n"),
        "{}",
        r.raw
    );
    assert_eq!(r.header("Connection"), None);
    assert!(r.body.is_empty());
    assert_eq!(h.unsubscribes(c), 1);
    assert_eq!(h.hub().stats().subscribers, 0);
    // Idle after the response: the idle timeout runs.
    assert_eq!(h.conn(c).poll_timeout(), Some(h.start + s(90)));

    // ?timeout= on the same connection.
    h.send(
        c,
        "GET /sub/a?transport=longpoll&timeout=5 HTTP/1.1\r\n\r\n",
    );
    h.at(ms(34_999));
    h.tick();
    assert_eq!(h.take(c), b"");
    h.at(s(35));
    h.tick();
    assert_eq!(response(&h.take(c)).status(), 204);

    // ?timeout=0 answers at once (at the next timer).
    h.send(c, "GET /sub/a?timeout=0 HTTP/1.1\r\n\r\n");
    assert_eq!(h.conn(c).poll_timeout(), Some(h.now));
    h.tick();
    assert_eq!(response(&h.take(c)).status(), 204);

    // Capped at 600 s.
    h.send(c, "GET /sub/a?timeout=100000 HTTP/1.1\r\n\r\n");
    assert_eq!(h.conn(c).poll_timeout(), Some(h.start + s(635)));
    h.at(ms(634_999));
    h.tick();
    assert_eq!(h.take(c), b"");
    h.at(s(635));
    h.tick();
    assert_eq!(response(&h.take(c)).status(), 204);

    // And it still works as a poll afterwards.
    h.send(c, client::subscribe_request("a", Transport::Longpoll, None));
    h.publish("a", "x");
    assert_eq!(response(&h.take(c)).text(), r#"[{"id":1,"data":"x"}]"#);
    assert!(!h.conn(c).is_done());
}

// ----- replay and missed -----

#[test]
fn sse_last_event_id_replays_and_wins_over_since() {
    let mut h = Harness::default();
    for i in 1..=5 {
        h.publish("a", &format!("m{i}"));
    }
    let c = h.open();
    h.send(
        c,
        "GET /sub/a?transport=sse&since=4 HTTP/1.1\r\nLast-Event-ID: 2\r\n\r\n",
    );
    let mut r = Reader::new(Transport::Sse);
    r.feed(&h.take(c));
    assert_eq!(r.take(), vec![msg(3, "m3"), msg(4, "m4"), msg(5, "m5")]);
    h.publish("a", "m6");
    r.feed(&h.take(c));
    assert_eq!(r.take(), vec![msg(6, "m6")]);

    // ?since= alone replays too, in every streaming transport.
    for t in STREAMING {
        let c = h.open();
        h.send(
            c,
            format!("GET /sub/a?transport={}&since=4 HTTP/1.1\r\n\r\n", t.name()),
        );
        let mut r = Reader::new(t);
        r.feed(&h.take(c));
        assert_eq!(r.take(), vec![msg(5, "m5"), msg(6, "m6")], "{t:?}");
    }
}

#[test]
fn missed_is_reported_by_every_transport() {
    let mut h = Harness::new(Config {
        backlog: 3,
        ..Config::default()
    });
    for i in 1..=6 {
        h.publish("a", &format!("m{i}"));
    }
    // Backlog holds 4, 5, 6: after since=1, 2 and 3 are gone.
    let want = vec![Item::Missed(2), msg(4, "m4"), msg(5, "m5"), msg(6, "m6")];

    let c = h.subscribe("a", Transport::Longpoll, Some(1));
    let r = response(&h.take(c));
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("X-Comet-Missed").as_deref(), Some("2"));
    assert_eq!(r.head.missed, Some(2));
    assert_eq!(client::parse_longpoll(&r.body).unwrap(), want[1..].to_vec());

    let notices = [
        (Transport::Sse, ": missed 2\n\n"),
        (Transport::Stream, "{\"missed\":2}\n"),
        (
            Transport::Iframe,
            "<script>parent.comet({\"missed\":2});</script>\n",
        ),
    ];
    for (t, notice) in notices {
        let c = h.subscribe("a", t, Some(1));
        let out = h.take(c);
        let (head, _) = head_of(&out);
        let parts = chunks(&out[head.len..]);
        let first_msg = parts
            .iter()
            .position(|p| String::from_utf8_lossy(p).contains("m4"))
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&parts[first_msg - 1]),
            notice,
            "{t:?}: the notice comes right before the replay"
        );
        let mut r = Reader::new(t);
        r.feed(&out);
        assert_eq!(r.take(), want, "{t:?}");
    }

    // since=0: 1, 2 and 3 are gone.
    let c = h.subscribe("a", Transport::Longpoll, Some(0));
    assert_eq!(response(&h.take(c)).head.missed, Some(3));
    // Nothing missed: no notice.
    let c = h.subscribe("a", Transport::Sse, Some(3));
    let mut r = Reader::new(Transport::Sse);
    r.feed(&h.take(c));
    assert_eq!(r.take(), want[1..].to_vec());
}

#[test]
fn since_from_an_earlier_life_replays_the_whole_backlog() {
    // A client saw ids up to 9 from a server that has restarted since; this
    // one has published 1..=3 on the channel. Ids past the last one mean
    // "from before the restart": everything here is new to the client.
    let mut h = Harness::default();
    for i in 1..=3 {
        h.publish("a", &format!("m{i}"));
    }
    let all = vec![msg(1, "m1"), msg(2, "m2"), msg(3, "m3")];

    let c = h.subscribe("a", Transport::Longpoll, Some(9));
    let r = response(&h.take(c));
    assert_eq!((r.status(), r.head.missed), (200, None));
    assert_eq!(client::parse_longpoll(&r.body).unwrap(), all);

    for t in STREAMING {
        let c = h.subscribe("a", t, Some(9));
        let mut r = Reader::new(t);
        r.feed(&h.take(c));
        assert_eq!(r.take(), all, "{t:?}");
    }
    // Last-Event-ID, as an EventSource sends it on reconnect.
    let c = h.open();
    h.send(
        c,
        "GET /sub/a?transport=sse HTTP/1.1\r\nLast-Event-ID: 4\r\n\r\n",
    );
    let mut r = Reader::new(Transport::Sse);
    r.feed(&h.take(c));
    assert_eq!(r.take(), all);
    // And it goes on with new messages, not duplicates.
    h.publish("a", "m4");
    r.feed(&h.take(c));
    assert_eq!(r.take(), vec![msg(4, "m4")]);

    // Beyond a bounded backlog: what left it is reported missed, as since=0.
    let mut h = Harness::new(Config {
        backlog: 2,
        ..Config::default()
    });
    for i in 1..=3 {
        h.publish("a", &format!("m{i}"));
    }
    let c = h.subscribe("a", Transport::Longpoll, Some(50));
    let r = response(&h.take(c));
    assert_eq!(r.head.missed, Some(1));
    assert_eq!(
        client::parse_longpoll(&r.body).unwrap(),
        vec![msg(2, "m2"), msg(3, "m3")]
    );

    // Equal to the last id is still "up to date": a long-poll waits.
    let c = h.subscribe("a", Transport::Longpoll, Some(3));
    assert!(h.take(c).is_empty());
    h.publish("a", "m4");
    let r = response(&h.take(c));
    assert_eq!(client::parse_longpoll(&r.body).unwrap(), vec![msg(4, "m4")]);
}

#[test]
fn longpoll_missed_with_no_backlog_answers_at_once() {
    let mut h = Harness::new(Config {
        backlog: 0,
        ..Config::default()
    });
    h.publish("a", "x");
    h.publish("a", "y");
    let c = h.subscribe("a", Transport::Longpoll, Some(0));
    let r = response(&h.take(c));
    assert_eq!((r.status(), r.head.missed, r.text()), (200, Some(2), "[]"));
}

// ----- heartbeats -----

#[test]
fn heartbeats_exactly_when_due() {
    let beats = [
        (Transport::Sse, ":\n\n"),
        (Transport::Stream, "\n"),
        (Transport::Iframe, "<!-- -->\n"),
    ];
    for (t, beat) in beats {
        let mut h = Harness::default();
        h.at(s(100));
        let c = h.subscribe("a", t, None);
        let mut r = Reader::new(t);
        r.feed(&h.take(c));
        assert_eq!(h.conn(c).poll_timeout(), Some(h.start + s(115)), "{t:?}");
        h.at(ms(114_999));
        h.tick();
        assert_eq!(h.take(c), b"", "{t:?}: not before");
        h.at(s(115));
        h.tick();
        let out = h.take_str(c);
        assert_eq!(out, chunk(beat), "{t:?}");
        r.feed(out.as_bytes());
        assert_eq!(r.take(), vec![Item::Heartbeat], "{t:?}");
        // Every interval, messages or not.
        assert_eq!(h.conn(c).poll_timeout(), Some(h.start + s(130)), "{t:?}");
        h.at(s(120));
        h.publish("a", "m");
        h.at(ms(129_999));
        h.tick();
        r.feed(&h.take(c));
        assert_eq!(r.take(), vec![msg(1, "m")], "{t:?}");
        h.at(s(130));
        h.tick();
        assert_eq!(h.take_str(c), chunk(beat), "{t:?}");
        // A late timer sends one beat, not a burst.
        h.at(s(200));
        h.tick();
        assert_eq!(h.take_str(c), chunk(beat), "{t:?}");
        assert_eq!(h.conn(c).poll_timeout(), Some(h.start + s(215)), "{t:?}");
    }
}

// ----- timeouts of the request itself -----

#[test]
fn header_timeout_runs_from_accept() {
    let mut h = Harness::default();
    let c = h.open();
    assert_eq!(h.conn(c).poll_timeout(), Some(h.start + s(10)));
    h.at(s(5));
    h.send(c, "GET /sub/a HTTP/1.1\r\nHost:");
    h.at(ms(9_999));
    h.tick();
    assert_eq!(h.take(c), b"");
    assert!(!h.conn(c).is_done());
    h.at(s(10));
    h.tick();
    let r = response(&h.take(c));
    assert_eq!(r.status(), 408);
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
    assert!(h.conn(c).is_done());
    assert_eq!(h.conn(c).poll_timeout(), None);
    // A closed conn ignores what comes next.
    h.send(c, " x\r\n\r\n");
    assert_eq!(h.take(c), b"");
}

#[test]
fn header_timeout_of_a_slow_body() {
    let mut h = Harness::default();
    let c = h.open();
    h.send(c, "POST /pub/a HTTP/1.1\r\nContent-Length: 10\r\n\r\nhalf");
    h.at(s(10));
    h.tick();
    assert_eq!(response(&h.take(c)).status(), 408);
    assert!(h.conn(c).is_done());
    assert_eq!(h.hub().stats().published, 0);
}

#[test]
fn fresh_conn_that_sends_nothing_is_closed() {
    let mut h = Harness::default();
    let c = h.open();
    h.at(s(10));
    h.tick();
    assert!(h.conn(c).is_done());
    assert_eq!(h.take(c), b"", "no request, no response");
    // Counted (`/stats` `closed_idle`); one that sent a part is a 408, not this.
    let idle = |h: &Harness| {
        h.events
            .iter()
            .filter(|(_, e)| *e == Event::IdleTimeout)
            .count()
    };
    assert_eq!(idle(&h), 1);
    let d = h.open();
    h.send(d, "GET /sub/a HTTP/1.1\r\n");
    h.at(s(20));
    h.tick();
    assert_eq!(response(&h.take(d)).status(), 408);
    assert_eq!(idle(&h), 1);
}

#[test]
fn keep_alive_deadlines() {
    let mut h = Harness::default();
    let c = h.open();
    h.at(s(3));
    h.send(c, "GET /stats HTTP/1.1\r\n\r\n");
    let r = response(&h.take(c));
    assert_eq!(r.status(), 200);
    assert_eq!(r.head.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({"channels": 0, "subscribers": 0, "published": 0})
    );
    // Between requests: the idle timeout.
    assert_eq!(h.conn(c).poll_timeout(), Some(h.start + s(63)));
    // The header deadline of the next request runs from its first byte.
    h.at(s(30));
    h.send(c, "GET /st");
    assert_eq!(h.conn(c).poll_timeout(), Some(h.start + s(40)));
    h.at(ms(39_999));
    h.send(c, "ats HTTP/1.1\r\n");
    h.tick();
    assert_eq!(h.take(c), b"");
    h.at(s(40));
    h.tick();
    assert_eq!(response(&h.take(c)).status(), 408);
    assert!(h.conn(c).is_done());

    // An idle keep-alive conn is closed after 60 s, without a response.
    let c = h.open();
    h.send(c, "GET /stats HTTP/1.1\r\n\r\n");
    assert_eq!(response(&h.take(c)).status(), 200);
    h.at(ms(99_999));
    h.tick();
    assert!(!h.conn(c).is_done());
    h.at(s(100));
    h.tick();
    assert!(h.conn(c).is_done());
    assert_eq!(h.take(c), b"");
}

// ----- errors -----

struct Case {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    /// The connection stays open for the next request.
    keep_alive: bool,
    /// It closes lingering: the request was not read to its end.
    linger: bool,
    header: Option<(&'static str, &'static str)>,
}

fn case(name: &'static str, request: impl Into<Vec<u8>>, status: u16, keep_alive: bool) -> Case {
    Case {
        name,
        request: request.into(),
        status,
        keep_alive,
        linger: !keep_alive,
        header: None,
    }
}

fn run_cases(config: Config, cases: Vec<Case>) {
    for bytewise in [false, true] {
        for c in &cases {
            if bytewise && c.request.len() > 20_000 {
                continue;
            }
            let mut h = Harness::new(config.clone());
            let id = h.open();
            if bytewise {
                h.send_bytewise(id, &c.request);
            } else {
                h.send(id, &c.request);
            }
            let out = h.take(id);
            let r = response(&out);
            assert_eq!(r.status(), c.status, "{}: {}", c.name, r.raw);
            if let Some((k, v)) = c.header {
                assert_eq!(r.header(k).as_deref(), Some(v), "{}: {}", c.name, r.raw);
            }
            assert_eq!(
                r.header("Connection").as_deref() != Some("close"),
                c.keep_alive,
                "{}: {}",
                c.name,
                r.raw
            );
            let now = h.now;
            if c.linger {
                // Written whole (the harness took it): the write side is
                // shut once, what still comes is discarded, and EOF ends it.
                assert!(!h.conn(id).is_done(), "{}: lingers", c.name);
                assert!(h.conn(id).poll_shutdown(now), "{}", c.name);
                assert!(!h.conn(id).poll_shutdown(now), "{}: once", c.name);
                h.send(id, "more of the body");
                assert_eq!(h.take(id), b"", "{}", c.name);
                h.conn(id).handle_eof(now);
                assert!(h.conn(id).is_done(), "{}", c.name);
            } else {
                assert!(!h.conn(id).poll_shutdown(now), "{}", c.name);
                assert_eq!(h.conn(id).is_done(), !c.keep_alive, "{}", c.name);
            }
            if c.keep_alive {
                h.send(id, "GET /stats HTTP/1.1\r\n\r\n");
                assert_eq!(response(&h.take(id)).status(), 200, "{}: next", c.name);
            }
            assert_eq!(h.hub().stats().published, 0, "{}", c.name);
            assert_eq!(h.hub().stats().subscribers, 0, "{}", c.name);
        }
    }
}

#[test]
fn errors() {
    let long_line = format!("GET /sub/{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
    let big_head = format!("GET /stats HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(9000));
    let big_body = format!(
        "POST /pub/a HTTP/1.1\r\nContent-Length: 100000\r\n\r\n{}",
        "c".repeat(100_000)
    );
    let mut non_utf8 = b"POST /pub/a HTTP/1.1\r\nContent-Length: 3\r\n\r\n".to_vec();
    non_utf8.extend_from_slice(&[b'a', 0xff, 0xfe]);
    let mut cases = vec![
        case("bad channel", "GET /sub/a$b HTTP/1.1\r\n\r\n", 400, true),
        case(
            "channel too long",
            format!("GET /sub/{} HTTP/1.1\r\n\r\n", "x".repeat(65)),
            400,
            true,
        ),
        case(
            "bad transport",
            "GET /sub/a?transport=websocket HTTP/1.1\r\n\r\n",
            400,
            true,
        ),
        case(
            "bad since",
            "GET /sub/a?since=-3 HTTP/1.1\r\n\r\n",
            400,
            true,
        ),
        case(
            "bad Last-Event-ID",
            "GET /sub/a?transport=sse HTTP/1.1\r\nLast-Event-ID: x\r\n\r\n",
            400,
            true,
        ),
        case(
            "bad timeout",
            "GET /sub/a?timeout=1.5 HTTP/1.1\r\n\r\n",
            400,
            true,
        ),
        case(
            "malformed head",
            "GET /stats HTTP/1.1\r\nno colon here\r\n\r\n",
            400,
            false,
        ),
        case("garbage", "\x16\x03\x01\x02\x00 hello\r\n\r\n", 400, false),
        case("not found", "GET /subscribe/a HTTP/1.1\r\n\r\n", 404, true),
        // The root is the chat page; no other file is served.
        case("root", "GET / HTTP/1.1\r\n\r\n", 200, true),
        case("a file", "GET /index.html HTTP/1.1\r\n\r\n", 404, true),
        case(
            "below the page",
            "GET /chat/../stats HTTP/1.1\r\n\r\n",
            404,
            true,
        ),
        Case {
            // Without a length there is no body: nothing more to read.
            linger: false,
            ..case("no length", "POST /pub/a HTTP/1.1\r\n\r\n", 411, false)
        },
        case("too large", big_body, 413, false),
        case(
            "too large, head only",
            "POST /pub/a HTTP/1.1\r\nContent-Length: 65537\r\n\r\n",
            413,
            false,
        ),
        case("line too long", long_line, 414, false),
        case("headers too large", big_head, 431, false),
        case(
            "transfer-encoding",
            "POST /pub/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            501,
            false,
        ),
        case("non-UTF-8 body", non_utf8, 400, true),
    ];
    // Content-Length is 1*DIGIT (RFC 9110 section 8.6); anything else is a
    // length another parser may read differently, so the connection closes.
    for (name, value) in [
        ("length +5", "+5"),
        ("length -1", "-1"),
        ("length 5 5", "5 5"),
        ("length 0x10", "0x10"),
        ("length empty", ""),
    ] {
        cases.push(case(
            name,
            format!("POST /pub/a HTTP/1.1\r\nContent-Length: {value}\r\n\r\nhello"),
            400,
            false,
        ));
    }
    let mut c = case(
        "wrong method on sub",
        "DELETE /sub/a HTTP/1.1\r\n\r\n",
        405,
        true,
    );
    c.header = Some(("Allow", "GET, OPTIONS"));
    cases.push(c);
    let mut c = case(
        "wrong method on pub",
        "GET /pub/a HTTP/1.1\r\n\r\n",
        405,
        true,
    );
    c.header = Some(("Allow", "POST, OPTIONS"));
    cases.push(c);
    let mut c = case(
        "wrong method on stats",
        "POST /stats HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        405,
        true,
    );
    c.header = Some(("Allow", "GET, OPTIONS"));
    cases.push(c);
    run_cases(Config::default(), cases);
}

#[test]
fn publish_token() {
    let config = Config {
        publish_token: Some("s3cret".into()),
        ..Config::default()
    };
    let huge =
        "POST /pub/a HTTP/1.1\r\nAuthorization: Bearer wrong\r\nContent-Length: 10000000\r\n\r\n";
    let mut cases = vec![
        case(
            "missing token",
            client::publish_request("a", "x", None),
            401,
            false,
        ),
        case(
            "wrong token",
            client::publish_request("a", "x", Some("s3cre")),
            401,
            false,
        ),
        case(
            "longer token",
            client::publish_request("a", "x", Some("s3cret2")),
            401,
            false,
        ),
        case(
            "wrong scheme",
            "POST /pub/a HTTP/1.1\r\nAuthorization: Basic s3cret\r\nContent-Length: 1\r\n\r\nx",
            401,
            false,
        ),
        case(
            "token in the wrong case",
            "POST /pub/a HTTP/1.1\r\nAuthorization: Bearer S3CRET\r\nContent-Length: 1\r\n\r\nx",
            401,
            false,
        ),
        case(
            "scheme glued to the token",
            "POST /pub/a HTTP/1.1\r\nAuthorization: Bearers3cret\r\nContent-Length: 1\r\n\r\nx",
            401,
            false,
        ),
        case(
            "scheme only",
            "POST /pub/a HTTP/1.1\r\nAuthorization: bearer\r\nContent-Length: 1\r\n\r\nx",
            401,
            false,
        ),
        case("401 before 413", huge, 401, false),
        case(
            "401 before 413, body sent",
            format!(
                "POST /pub/a HTTP/1.1\r\nContent-Length: 200000\r\n\r\n{}",
                "z".repeat(200_000)
            ),
            401,
            false,
        ),
    ];
    for c in &mut cases {
        c.header = Some(("WWW-Authenticate", "Bearer"));
    }
    run_cases(config.clone(), cases);

    let mut h = Harness::new(config);
    let sub = h.subscribe("a", Transport::Sse, None);
    let c = h.open();
    h.send(c, client::publish_request("a", "ok", Some("s3cret")));
    assert_eq!(published(&response(&h.take(c))), (1, 1));
    let mut r = Reader::new(Transport::Sse);
    r.feed(&h.take(sub));
    assert_eq!(r.take(), vec![msg(1, "ok")]);

    // The scheme name is case-insensitive (RFC 9110 section 11.1), and
    // `1*SP` may separate it from the token.
    for (i, auth) in [
        "bearer s3cret",
        "BEARER s3cret",
        "bEaReR s3cret",
        "Bearer  s3cret",
    ]
    .into_iter()
    .enumerate()
    {
        let c = h.open();
        h.send(
            c,
            format!("POST /pub/a HTTP/1.1\r\nAuthorization: {auth}\r\nContent-Length: 2\r\n\r\nok"),
        );
        let r = response(&h.take(c));
        assert_eq!(r.status(), 202, "{auth:?}: {}", r.raw);
        assert_eq!(published(&r), (i as u64 + 2, 1), "{auth:?}");
    }
}

#[test]
fn connection_close_is_honoured() {
    let mut h = Harness::default();
    let c = h.open();
    h.send(
        c,
        "GET /stats HTTP/1.1\r\nConnection: close\r\n\r\nGET /stats HTTP/1.1\r\n\r\n",
    );
    let r = response(&h.take(c));
    assert_eq!(
        (r.status(), r.header("Connection").as_deref()),
        (200, Some("close"))
    );
    // The request pipelined after it is read and discarded, not reset.
    assert!(h.shut(c));
    let now = h.now;
    h.conn(c).handle_eof(now);
    assert!(h.conn(c).is_done());

    // A long-poll with Connection: close ends the conn once answered.
    let c = h.open();
    h.send(c, "GET /sub/a HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(!h.conn(c).is_done());
    h.publish("a", "x");
    let r = response(&h.take(c));
    assert_eq!(
        (r.status(), r.header("Connection").as_deref()),
        (200, Some("close"))
    );
    assert!(h.conn(c).is_done());

    // A body where none is expected cannot be taken for the next request.
    let c = h.open();
    h.send(
        c,
        "GET /stats HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /stats HTTP/1.1\r\n\r\n",
    );
    let r = response(&h.take(c));
    assert_eq!(
        (r.status(), r.header("Connection").as_deref()),
        (200, Some("close"))
    );
    assert!(h.shut(c), "lingers: its body and what follows are unread");

    // A publish with Connection: close.
    let c = h.open();
    h.send(
        c,
        "POST /pub/a HTTP/1.1\r\nConnection: close\r\nContent-Length: 1\r\n\r\ny",
    );
    let r = response(&h.take(c));
    assert_eq!(published(&r), (2, 0));
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
    assert!(h.conn(c).is_done());
}

#[test]
fn http10_is_answered() {
    let mut h = Harness::default();
    let c = h.open();
    h.send(c, "GET /stats HTTP/1.0\r\n\r\n");
    let r = response(&h.take(c));
    assert_eq!(r.status(), 200);
    assert!(r.head.close);
    assert!(h.conn(c).is_done());

    let c = h.open();
    h.send(c, "GET /stats HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = response(&h.take(c));
    assert_eq!(r.header("Connection").as_deref(), Some("keep-alive"));
    assert!(!h.conn(c).is_done());
    h.send(c, "POST /pub/a HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(published(&response(&h.take(c))), (1, 0));
    assert!(h.conn(c).is_done());

    // Streams are not chunked for HTTP/1.0, and end with the connection.
    for t in STREAMING {
        for extra in ["", "Connection: keep-alive\r\n"] {
            let c = h.open();
            h.send(
                c,
                format!("GET /sub/a?transport={} HTTP/1.0\r\n{extra}\r\n", t.name()),
            );
            let (id, _) = h.publish("a", "line");
            let out = h.take(c);
            let (head, raw) = head_of(&out);
            assert_eq!(head.status, 200, "{t:?}");
            assert!(!head.chunked, "{t:?}: {raw}");
            assert_eq!(head.content_length, None, "{t:?}");
            let conn: Vec<_> = raw
                .lines()
                .filter(|l| l.to_ascii_lowercase().starts_with("connection:"))
                .collect();
            assert_eq!(conn, vec!["Connection: close"], "{t:?} {extra:?}: {raw}");
            let body = String::from_utf8_lossy(&out[head.len..]).into_owned();
            let want = match t {
                Transport::Sse => format!("retry: 3000\n\nid: {id}\ndata: line\n\n"),
                Transport::Stream => format!("{{\"id\":{id},\"data\":\"line\"}}\n"),
                _ => format!("<script>parent.comet({{\"id\":{id},\"data\":\"line\"}});</script>\n"),
            };
            assert!(body.ends_with(&want), "{t:?}: {body:?}");
            let mut r = Reader::new(t);
            r.feed(&out);
            assert_eq!(r.take(), vec![msg(id, "line")], "{t:?}");
            // A heartbeat is not chunked either.
            h.at(h.now - h.start + s(15));
            h.tick();
            let beat = h.take_str(c);
            assert!(
                !beat.is_empty() && !beat.contains("\r\n"),
                "{t:?}: {beat:?}"
            );
            h.conn(c).handle_close();
            h.settle();
        }
    }
}

// ----- publish -----

#[test]
fn expect_continue_before_the_body() {
    let mut h = Harness::default();
    let c = h.open();
    h.send(
        c,
        "POST /pub/a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    assert_eq!(h.take_str(c), "HTTP/1.1 100 Continue\r\n\r\n");
    assert!(h.events.is_empty());
    h.send(c, "hello");
    let r = response(&h.take(c));
    assert_eq!(published(&r), (1, 0));
    // Refused before the body: no 100, straight to the answer.
    h.send(
        c,
        "POST /pub/a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n",
    );
    let r = response(&h.take(c));
    assert_eq!(r.status(), 413);
    // HTTP/1.0 clients never get a 100 (RFC 9110 section 10.1.1).
    let c = h.open();
    h.send(
        c,
        "POST /pub/a HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    );
    assert_eq!(h.take(c), b"");
    h.send(c, "hi");
    assert_eq!(published(&response(&h.take(c))), (2, 0));
}

#[test]
fn publish_ids_per_channel_and_subscriber_counts() {
    let mut h = Harness::default();
    let a1 = h.subscribe("a", Transport::Sse, None);
    let _a2 = h.subscribe("a", Transport::Stream, None);
    let _b1 = h.subscribe("b", Transport::Iframe, None);
    let lp = h.subscribe("a", Transport::Longpoll, None);
    assert_eq!(h.publish("a", "1"), (1, 3));
    assert_eq!(h.publish("b", "1"), (1, 1));
    assert_eq!(h.publish("a", "2"), (2, 2), "the long-poll was answered");
    assert_eq!(h.publish("a", "3"), (3, 2));
    assert_eq!(h.publish("c", "1"), (1, 0));
    assert_eq!(h.publish("b", "2"), (2, 1));
    h.conn(a1).handle_close();
    h.settle();
    assert_eq!(h.publish("a", "4"), (4, 1));
    assert_eq!(response(&h.take(lp)).text(), r#"[{"id":1,"data":"1"}]"#);
    let stats = h.hub().stats();
    assert_eq!(
        (stats.channels, stats.subscribers, stats.published),
        (3, 2, 7)
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut h = Harness::default();
    let c = h.open();
    let mut wire = String::new();
    wire += "GET /stats HTTP/1.1\r\n\r\n";
    wire += &client::publish_request("a", "one", None);
    wire += "GET /nope HTTP/1.1\r\n\r\n";
    wire += &client::publish_request("a", "two", None);
    wire += "OPTIONS /pub/a HTTP/1.1\r\n\r\n";
    wire += "GET /sub/a?since=0 HTTP/1.1\r\n\r\n";
    wire += "GET /stats HTTP/1.1\r\n\r\n";
    h.send(c, &wire);
    let rs = responses(&h.take(c));
    let statuses: Vec<u16> = rs.iter().map(Resp::status).collect();
    assert_eq!(statuses, vec![200, 202, 404, 202, 204, 200, 200]);
    assert_eq!(published(&rs[1]), (1, 0));
    assert_eq!(published(&rs[3]), (2, 0));
    assert_eq!(rs[4].header("Allow").as_deref(), Some("GET, POST, OPTIONS"));
    assert_eq!(
        client::parse_longpoll(&rs[5].body).unwrap(),
        vec![msg(1, "one"), msg(2, "two")]
    );
    // The long-poll made channel a's subscriber and left it.
    assert_eq!(
        rs[6].json(),
        serde_json::json!({"channels": 1, "subscribers": 0, "published": 2})
    );
    assert!(!h.conn(c).is_done());

    // Behind a held long-poll: answered once the poll is.
    let c = h.open();
    h.send(
        c,
        "GET /sub/a HTTP/1.1\r\n\r\nGET /stats HTTP/1.1\r\n\r\nGET /sub/a?timeout=1 HTTP/1.1\r\n\r\nGET /stats HTTP/1.1\r\n\r\n",
    );
    assert_eq!(h.take(c), b"");
    h.publish("a", "three");
    let rs = responses(&h.take(c));
    assert_eq!(
        rs.iter().map(Resp::status).collect::<Vec<_>>(),
        vec![200, 200]
    );
    assert_eq!(rs[0].text(), r#"[{"id":3,"data":"three"}]"#);
    h.at(s(1));
    h.tick();
    let rs = responses(&h.take(c));
    assert_eq!(
        rs.iter().map(Resp::status).collect::<Vec<_>>(),
        vec![204, 200]
    );
}

#[test]
fn cors() {
    let mut h = Harness::new(Config {
        allow_origin: Some("*".into()),
        ..Config::default()
    });
    let c = h.open();
    h.send(
        c,
        "OPTIONS /pub/a HTTP/1.1\r\nOrigin: http://x\r\n\r\nGET /nope HTTP/1.1\r\n\r\n",
    );
    let rs = responses(&h.take(c));
    assert_eq!(rs[0].status(), 204);
    assert_eq!(
        rs[0].header("Access-Control-Allow-Origin").as_deref(),
        Some("*")
    );
    let allowed = rs[0].header("Access-Control-Allow-Headers").unwrap();
    assert!(allowed.contains("Last-Event-ID") && allowed.contains("Authorization"));
    assert!(rs[0]
        .header("Access-Control-Allow-Methods")
        .unwrap()
        .contains("POST"));
    assert_eq!(rs[1].status(), 404);
    assert_eq!(
        rs[1].header("Access-Control-Allow-Origin").as_deref(),
        Some("*")
    );
    let s = h.subscribe("a", Transport::Sse, None);
    let (_, raw) = head_of(&h.take(s));
    assert!(raw.contains("Access-Control-Allow-Origin: *\r\n"), "{raw}");

    let mut h = Harness::default();
    let c = h.open();
    h.send(c, "OPTIONS /pub/a HTTP/1.1\r\n\r\n");
    let r = response(&h.take(c));
    assert_eq!(r.status(), 204);
    assert!(!r.raw.contains("Access-Control"), "{}", r.raw);
}

/// `GET /` and `GET /chat` answer the embedded page on a kept connection;
/// its missed-count header is readable across origins when CORS is on.
#[test]
fn the_chat_page() {
    let mut h = Harness::default();
    let c = h.open();
    h.send(
        c,
        "GET / HTTP/1.1\r\n\r\nGET /chat?room=a&transport=ws HTTP/1.1\r\n\r\nHEAD / HTTP/1.1\r\n\r\n",
    );
    let rs = responses(&h.take(c));
    assert_eq!(rs.len(), 3);
    for r in &rs[..2] {
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.header("Content-Type").as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(r.text(), comet::page::CHAT);
        assert!(r.header("Content-Security-Policy").is_some());
    }
    assert_eq!(rs[2].status(), 405);
    assert!(!h.shut(c), "a page keeps the connection");

    let mut h = Harness::new(Config {
        allow_origin: Some("http://elsewhere".into()),
        ..Config::default()
    });
    let c = h.open();
    h.send(c, "GET /sub/a?since=0 HTTP/1.1\r\n\r\n");
    h.publish("a", "one");
    let r = response(&h.take(c));
    assert_eq!(
        r.header("Access-Control-Expose-Headers").as_deref(),
        Some("X-Comet-Missed")
    );
}

// ----- subscribers going away -----

/// Publishes `data` on `channel` until the stalled conn `id` is dropped;
/// returns how many publishes that took. Checks on the way that the unsent
/// output beyond `base` (the stream's start) grows by whole frames, passes
/// `max_queue` by at most one frame, and that the drop comes only once the
/// bytes waiting *before* a message exceed `max_queue`.
fn publish_until_dropped(
    h: &mut Harness,
    id: u32,
    channel: &str,
    data: &str,
    base: usize,
) -> usize {
    let max_queue = h.config.max_queue;
    let mut published = 0;
    let mut largest_frame = 0;
    loop {
        let before = h.queued(id);
        let (_, k) = h.publish(channel, data);
        published += 1;
        assert!(k >= 1, "handed to it");
        if h.conn(id).is_dropped() {
            assert!(before - base > max_queue, "dropped early at {before}");
            return published;
        }
        let after = h.queued(id);
        largest_frame = largest_frame.max(after - before);
        assert!(after > before);
        assert!(
            after - base <= max_queue + largest_frame,
            "{after} queued: past the bound by more than a frame"
        );
        assert!(published < 1000, "never dropped");
    }
}

#[test]
fn slow_subscriber_is_dropped() {
    let max_queue = 4096;
    let mut h = Harness::new(Config {
        max_queue,
        ..Config::default()
    });
    let slow = h.subscribe("a", Transport::Sse, None);
    let fast = h.subscribe("a", Transport::Sse, None);
    h.stalled.insert(slow);
    // The response head and prelude went out before it stalled.
    assert_eq!(h.queued(slow), 0);
    let data = "x".repeat(1000);
    let published = publish_until_dropped(&mut h, slow, "a", &data, 0);
    // 1021 bytes a frame: after 4 (4084) a fifth is still taken, since no
    // more than 4096 waited before it; the sixth finds 5105 waiting.
    assert_eq!(published, 6);
    assert!(h.conn(slow).is_done());
    assert!(!h.conn(slow).has_pending(), "its output is discarded");
    assert_eq!(h.unsubscribes(slow), 1);
    assert_eq!(h.hub().stats().subscribers, 1);
    assert_eq!(h.publish("a", "next"), (7, 1));
    assert!(!h.conn(fast).is_dropped());
    let mut r = Reader::new(Transport::Sse);
    r.feed(&h.take(fast));
    assert_eq!(r.take().len(), 7);
}

/// The message that escaping grows most on `t`: `<` is six bytes in an
/// iframe script, a control character six in JSON, a newline seven in SSE
/// (`\ndata: `).
const GROWERS: [&str; 3] = ["<", "\x01", "\n"];

#[test]
fn a_message_escaped_past_max_queue_is_delivered_live_and_by_replay() {
    for grower in GROWERS {
        for t in Transport::ALL {
            let config = Config::default();
            let data = grower.repeat(config.max_message);
            let mut h = Harness::new(config);
            let live = h.subscribe("big", t, None);
            let mut r = Reader::new(t);
            r.feed(&h.take(live));
            assert_eq!(h.publish("big", &data), (1, 1), "{t:?} {grower:?}");
            assert!(!h.conn(live).is_dropped(), "{t:?} {grower:?}: dropped live");
            let out = h.take(live);
            r.feed(&out);
            assert_eq!(r.take(), vec![msg(1, &data)], "{t:?} {grower:?}");

            // Reconnecting with `since` gets it from the backlog, every time.
            for _ in 0..2 {
                let again = h.subscribe("big", t, Some(0));
                assert!(!h.conn(again).is_dropped(), "{t:?} {grower:?}: replay");
                let mut r = Reader::new(t);
                r.feed(&h.take(again));
                assert_eq!(r.take(), vec![msg(1, &data)], "{t:?} {grower:?}");
                h.conn(again).handle_close();
                h.settle();
            }
        }
    }
    // The worst case is several times the bound, in one frame.
    let m = comet::Message::new(
        "big".into(),
        1,
        "<".repeat(Config::default().max_message).into(),
    );
    let frame = m.frame(comet::transport::Frame::Stream {
        transport: Transport::Iframe,
        chunked: true,
    });
    assert!(frame.len() > Config::default().max_queue, "{}", frame.len());
}

#[test]
fn a_big_message_then_more_reaches_a_subscriber_that_keeps_up() {
    // A subscriber that drains between messages is never behind by more
    // than one frame, however big: none of these drops it.
    for t in STREAMING {
        let mut h = Harness::default();
        let c = h.subscribe("a", t, None);
        let mut r = Reader::new(t);
        let big = "<\x01\n".repeat(Config::default().max_message / 3);
        for i in 1..=5 {
            assert_eq!(h.publish("a", &big), (i, 1), "{t:?}");
        }
        r.feed(&h.take(c));
        assert!(!h.conn(c).is_dropped(), "{t:?}");
        assert_eq!(r.take().len(), 5, "{t:?}");
    }
}

#[test]
fn replay_past_max_queue_is_delivered_and_live_messages_stay_bounded() {
    let max_queue = 2000;
    let config = Config {
        max_queue,
        ..Config::default()
    };
    let data = "y".repeat(1000);
    for t in STREAMING {
        let mut h = Harness::new(config.clone());
        for _ in 0..5 {
            h.publish("a", &data);
        }
        // A client that never reads still gets its whole replay queued ...
        let c = h.open();
        h.stalled.insert(c);
        h.send(c, client::subscribe_request("a", t, Some(0)));
        assert!(!h.conn(c).is_dropped(), "{t:?}: dropped for its replay");
        let base = h.queued(c);
        assert!(base > 5 * 1000, "{t:?}: {base}");
        // ... and is dropped once what is published after it passes the bound.
        let n = publish_until_dropped(&mut h, c, "a", &data, base);
        assert_eq!(
            n, 3,
            "{t:?}: two frames taken, the third finds >2000 waiting"
        );
        assert!(h.conn(c).is_done());
        assert_eq!(h.unsubscribes(c), 1);
        assert_eq!(h.hub().stats().subscribers, 0);

        // One that reads gets all of it, and once it has read its replay it
        // is held to the same bound as any subscriber.
        let c = h.open();
        h.stalled.insert(c);
        h.send(c, client::subscribe_request("a", t, Some(0)));
        // Half of it is written, then a message comes: the replay still
        // waiting is not lag, so it is taken.
        let half = h.queued(c) / 2;
        h.take_some(c, half);
        h.publish("a", "during the replay");
        assert!(!h.conn(c).is_dropped(), "{t:?}");
        h.stalled.remove(&c);
        h.settle();
        let mut r = Reader::new(t);
        r.feed(&h.take(c));
        let ids: Vec<u64> = r
            .take()
            .into_iter()
            .filter_map(|i| match i {
                Item::Message { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        assert_eq!(ids, (1..=9).collect::<Vec<u64>>(), "{t:?}");
        h.stalled.insert(c);
        let n = publish_until_dropped(&mut h, c, "a", &data, 0);
        assert_eq!(n, 3, "{t:?}: the same bound as a fresh subscriber");
    }
}

#[test]
fn eof_and_close_unsubscribe() {
    for t in Transport::ALL {
        for eof in [true, false] {
            let mut h = Harness::default();
            let c = h.subscribe("a", t, None);
            h.take(c);
            assert_eq!(h.hub().stats().subscribers, 1);
            let now = h.now;
            if eof {
                h.conn(c).handle_eof(now);
            } else {
                h.conn(c).handle_close();
            }
            h.settle();
            assert_eq!(h.unsubscribes(c), 1, "{t:?} eof={eof}");
            assert_eq!(h.hub().stats().subscribers, 0);
            assert!(h.conn(c).is_done());
            assert_eq!(h.conn(c).subscription(), None);
            // Nothing more comes out, and a second close raises nothing.
            assert_eq!(h.publish("a", "late").1, 0);
            h.conn(c).handle_close();
            h.settle();
            assert_eq!(h.take(c), b"");
            assert_eq!(h.unsubscribes(c), 1);
        }
    }
}

#[test]
fn eof_after_a_request_still_flushes_its_response() {
    let mut h = Harness::default();
    let c = h.open();
    h.stalled.insert(c);
    h.send(c, "GET /stats HTTP/1.1\r\n\r\n");
    let now = h.now;
    h.conn(c).handle_eof(now);
    assert!(!h.conn(c).is_done(), "the response is still to be written");
    h.stalled.remove(&c);
    h.settle();
    assert_eq!(response(&h.take(c)).status(), 200);
    assert!(h.conn(c).is_done());
}

#[test]
fn subscription_is_reported() {
    let mut h = Harness::default();
    let c = h.subscribe("chan", Transport::Stream, None);
    let (ch, t) = h.conn(c).subscription().unwrap();
    assert_eq!((&**ch, t), ("chan", Transport::Stream));
    assert!(!h.conn(c).is_reading());
    let c = h.open();
    assert!(h.conn(c).is_reading());
    assert_eq!(h.conn(c).subscription(), None);
    // A streaming subscriber has nothing more to say: what it sends is ignored.
    let s = h.subscribe("chan", Transport::Sse, None);
    h.take(s);
    h.send(s, "GET /stats HTTP/1.1\r\n\r\n");
    assert_eq!(h.take(s), b"");
}

// ----- pieces -----

/// The same conversation, fed in one piece or one byte at a time.
/// Each conn's output, and every event raised.
type Outcome = (BTreeMap<u32, Vec<u8>>, Vec<(u32, Event)>);

fn conversation(bytewise: bool) -> Outcome {
    let mut h = Harness::new(Config {
        backlog: 4,
        ..Config::default()
    });
    let feed = |h: &mut Harness, id: u32, bytes: &[u8]| {
        if bytewise {
            h.send_bytewise(id, bytes);
        } else {
            h.send(id, bytes);
        }
    };
    let sse = h.open();
    let lp = h.open();
    let pubc = h.open();
    let big = h.open();
    feed(
        &mut h,
        lp,
        b"GET /sub/x?transport=longpoll HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let mut wire = Vec::new();
    for i in 0..6 {
        wire.extend_from_slice(
            client::publish_request("x", &format!("w\u{f6}rld {i}\nline"), None).as_bytes(),
        );
    }
    wire.extend_from_slice(b"GET /stats HTTP/1.1\r\n\r\n\r\nGET /nope HTTP/1.1\r\n\r\n");
    wire.extend_from_slice(
        b"POST /pub/x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    );
    wire.extend_from_slice(b"GET /sub/x?transport=longpoll&since=1 HTTP/1.1\r\n\r\n");
    feed(&mut h, pubc, &wire);
    feed(
        &mut h,
        sse,
        b"GET /sub/x?transport=sse HTTP/1.1\r\nAccept: text/event-stream\r\nLast-Event-ID: 2\r\n\r\n",
    );
    feed(
        &mut h,
        pubc,
        client::publish_request("x", "after", None).as_bytes(),
    );
    for t in [Transport::Stream, Transport::Iframe] {
        let c = h.open();
        feed(
            &mut h,
            c,
            client::subscribe_request("x", t, Some(0)).as_bytes(),
        );
    }
    feed(
        &mut h,
        pubc,
        client::publish_request("x", "</script>\u{2028}", None).as_bytes(),
    );
    let mut huge = b"POST /pub/x HTTP/1.1\r\nContent-Length: 100000\r\n\r\n".to_vec();
    huge.extend_from_slice(&[b'q'; 100_000]);
    feed(&mut h, big, &huge);
    assert!(h.shut(big), "the 413 came before the body: it lingers");
    let outs = std::mem::take(&mut h.out);
    (outs, h.events)
}

#[test]
fn bytes_one_at_a_time_give_the_same_result() {
    let (whole, ev_whole) = conversation(false);
    let (bytewise, ev_bytewise) = conversation(true);
    assert_eq!(ev_whole, ev_bytewise);
    assert_eq!(whole.len(), bytewise.len());
    for (k, w) in &whole {
        assert!(!w.is_empty(), "conn {k} said something");
        assert_eq!(
            String::from_utf8_lossy(w),
            String::from_utf8_lossy(&bytewise[k]),
            "conn {k}"
        );
    }
    // And what was said is right: the publisher saw 8 answers in order.
    let pubc = 3;
    let out = &whole[&pubc];
    let statuses: Vec<u16> = responses(out).iter().map(Resp::status).collect();
    assert_eq!(
        statuses,
        [vec![202; 6], vec![200, 404, 100, 202, 200, 202, 202]].concat()
    );
    let lp = response(&whole[&2]);
    assert_eq!(lp.text(), "[{\"id\":1,\"data\":\"w\u{f6}rld 0\\nline\"}]");
    let big = response(&whole[&4]);
    assert_eq!(big.status(), 413);
}

#[test]
fn final_response_not_read_is_given_up() {
    let mut h = Harness::default();
    let c = h.open();
    h.stalled.insert(c);
    h.send(c, "GET /sub/a HTTP/1.1\r\nHost:");
    h.at(s(10));
    h.tick();
    // The 408 is queued but the peer never reads it.
    assert!(h.conn(c).has_pending());
    assert!(!h.conn(c).is_done());
    h.at(s(19));
    h.tick();
    assert!(!h.conn(c).is_done());
    h.at(s(20));
    h.tick();
    assert!(h.conn(c).is_done());
}

#[test]
fn written_after_close_is_harmless() {
    let mut h = Harness::default();
    let c = h.open();
    h.stalled.insert(c);
    h.send(c, "GET /stats HTTP/1.1\r\n\r\n");
    let pending = h.queued(c);
    assert!(pending > 0);
    h.conn(c).handle_close();
    // A completion-based dispatcher learns of the write afterwards.
    h.conn(c).handle_written(pending);
    assert!(h.conn(c).is_done());
}

#[test]
fn another_channels_message_is_ignored() {
    let mut h = Harness::default();
    let c = h.subscribe("a", Transport::Sse, None);
    let now = h.now;
    let stray = std::sync::Arc::new(comet::Message::new("b".into(), 99, "x".into()));
    assert!(!h.conn(c).handle_message(&stray, now));
    // The real channel's next message still arrives.
    h.publish("a", "one");
    let got = h.take_str(c);
    assert!(got.contains("data: one"), "{got}");
}

// ----- output -----

#[test]
fn poll_transmit_fills_no_more_slices_than_given() {
    let mut h = Harness::default();
    let c = h.open();
    h.stalled.insert(c);
    h.send(c, client::subscribe_request("a", Transport::Iframe, None));
    h.publish("a", "one");
    h.publish("a", "two");
    // Head, prelude, two messages: four buffers queued.
    let conn = h.conns.get(&c).unwrap();
    assert!(conn.pending().len() >= 4, "{}", conn.pending().len());
    let mut iov = [IoSlice::new(&[]); 2];
    assert_eq!(conn.poll_transmit(&mut iov), 2);
    assert_eq!(&*iov[0], &conn.pending()[0][..]);
    assert_eq!(&*iov[1], &conn.pending()[1][..]);
    // A short write ends inside the first slice: the rest comes next time.
    let first = iov[0].len();
    let total = h.queued(c);
    h.conn(c).handle_written(first - 1);
    assert_eq!(h.queued(c), total - first + 1);
    let conn = h.conns.get(&c).unwrap();
    let mut iov = [IoSlice::new(&[]); 8];
    let n = conn.poll_transmit(&mut iov);
    assert_eq!(iov[0].len(), 1);
    assert_eq!(n, conn.pending().len());
    assert_eq!(conn.poll_transmit(&mut []), 0);
}

#[test]
fn a_subscriber_adopts_the_hubs_name_of_its_channel() {
    let mut h = Harness::default();
    let a = h.subscribe("room", Transport::Sse, None);
    let b = h.subscribe("room", Transport::Stream, None);
    let hub_name = h.memory.subscription(a).unwrap().clone();
    for c in [a, b] {
        let (name, _) = h.conn(c).subscription().unwrap();
        assert!(Arc::ptr_eq(name, &hub_name), "conn {c} holds its own copy");
    }
    let m = h.memory.publish("room", "x".into(), h.now).unwrap();
    assert!(Arc::ptr_eq(m.channel(), &hub_name));
}

// ----- lingering close -----

/// A publish head with a wrong token and a body of `len` bytes still to come.
fn wrong_token_head(len: usize) -> String {
    format!("POST /pub/a HTTP/1.1\r\nAuthorization: Bearer no\r\nContent-Length: {len}\r\n\r\n")
}

fn with_token() -> Config {
    Config {
        publish_token: Some("s3cret".into()),
        ..Config::default()
    }
}

#[test]
fn an_answer_before_the_body_lingers_until_the_client_ends() {
    let mut h = Harness::new(with_token());
    let c = h.open();
    h.stalled.insert(c);
    h.send(c, wrong_token_head(10_000));
    let now = h.now;
    // The write side is shut only once the answer is written.
    assert!(!h.conn(c).poll_shutdown(now), "output still queued");
    assert!(h.conn(c).is_reading(), "a thread dispatcher keeps reading");
    h.stalled.remove(&c);
    h.settle();
    assert_eq!(response(&h.take(c)).status(), 401);
    assert!(h.conn(c).poll_shutdown(now));
    // The body is read and discarded, with no event and no output.
    let events = h.events.len();
    for _ in 0..10 {
        h.send(c, [b'x'; 1000]);
    }
    assert_eq!((h.events.len(), h.take(c)), (events, vec![]));
    assert!(!h.conn(c).is_done());
    h.conn(c).handle_eof(now);
    assert!(h.conn(c).is_done());
}

#[test]
fn lingering_is_bounded_in_time_and_bytes() {
    // linger_timeout (5 s) without a byte.
    let mut h = Harness::new(with_token());
    let c = h.open();
    h.send(c, wrong_token_head(10));
    h.take(c);
    assert!(h.shut(c));
    assert_eq!(h.conn(c).poll_timeout(), Some(h.start + s(5)));
    h.at(s(3));
    h.send(c, "x");
    assert_eq!(h.conn(c).poll_timeout(), Some(h.start + s(8)));
    h.at(ms(7_999));
    h.tick();
    assert!(!h.conn(c).is_done());
    h.at(s(8));
    h.tick();
    assert!(h.conn(c).is_done());

    // linger_time (30 s) however steadily bytes come.
    let mut h = Harness::new(with_token());
    let c = h.open();
    h.send(c, wrong_token_head(1_000_000));
    h.take(c);
    assert!(h.shut(c));
    for t in 1..30 {
        h.at(s(t));
        h.send(c, "x");
        h.tick();
        assert!(!h.conn(c).is_done(), "at {t} s");
    }
    assert_eq!(h.conn(c).poll_timeout(), Some(h.start + s(30)));
    h.at(s(30));
    h.tick();
    assert!(h.conn(c).is_done());

    // linger_bytes, counting what came with the head.
    let mut h = Harness::new(Config {
        linger_bytes: 5000,
        ..with_token()
    });
    let c = h.open();
    h.send(
        c,
        format!("{}{}", wrong_token_head(100_000), "x".repeat(3000)),
    );
    h.take(c);
    assert!(h.shut(c));
    h.send(c, "x".repeat(2000));
    assert!(!h.conn(c).is_done());
    h.send(c, "x");
    assert!(h.conn(c).is_done(), "cut off past the bound");
}

#[test]
fn a_response_not_taken_is_given_up_before_any_lingering() {
    let mut h = Harness::new(with_token());
    let c = h.open();
    h.stalled.insert(c);
    h.send(c, wrong_token_head(10));
    // The last response gets as long to drain as a request to arrive.
    assert_eq!(h.conn(c).poll_timeout(), Some(h.start + s(10)));
    h.at(s(10));
    h.tick();
    assert!(h.conn(c).is_done());
    assert!(!h.shut(c));
}

#[test]
fn only_a_close_with_the_request_unread_lingers() {
    let now_linger = |request: &str| {
        let mut h = Harness::default();
        let c = h.open();
        h.send(c, request);
        assert!(!h.take(c).is_empty(), "{request:?} was answered");
        let now = h.now;
        let shut = h.conn(c).poll_shutdown(now);
        assert_eq!(h.conn(c).is_done(), !shut, "{request:?}");
        shut
    };
    // Read to its end: closed at once.
    assert!(!now_linger(
        "GET /stats HTTP/1.1\r\nConnection: close\r\n\r\n"
    ));
    assert!(!now_linger("GET /stats HTTP/1.0\r\n\r\n"));
    // More came after it: its answer must not be reset away.
    assert!(now_linger(
        "GET /stats HTTP/1.1\r\nConnection: close\r\n\r\nGET /stats HTTP/1.1\r\n\r\n"
    ));
    // A head refused before its end.
    assert!(now_linger(&format!("GET /{} HTTP/1.1", "a".repeat(9000))));
    // A timed-out request is closed, not waited for again.
    let mut h = Harness::default();
    let c = h.open();
    h.send(c, "POST /pub/a HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    h.at(s(10));
    h.tick();
    assert_eq!(response(&h.take(c)).status(), 408);
    assert!(!h.shut(c));
    assert!(h.conn(c).is_done());
}

#[test]
fn eof_while_the_answer_is_written_closes_without_lingering() {
    let mut h = Harness::new(with_token());
    let c = h.open();
    h.stalled.insert(c);
    h.send(c, wrong_token_head(10));
    let now = h.now;
    h.conn(c).handle_eof(now);
    h.stalled.remove(&c);
    h.settle();
    assert_eq!(response(&h.take(c)).status(), 401);
    assert!(!h.conn(c).poll_shutdown(now));
    assert!(h.conn(c).is_done());
}

// ----- refusals -----

#[test]
fn past_the_channel_limit_a_new_channel_is_refused_and_the_connection_goes_on() {
    let mut h = Harness::new(Config {
        max_channels: 2,
        ..Config::default()
    });
    let _a = h.subscribe("a", Transport::Sse, None);
    h.publish("b", "1");
    let c = h.open();
    h.send(c, client::publish_request("c", "x", None));
    let r = response(&h.take(c));
    assert_eq!((r.status(), r.text()), (503, "too many channels\n"));
    assert_eq!(r.header("Connection"), None, "the connection stays");
    h.send(c, client::subscribe_request("d", Transport::Longpoll, None));
    assert_eq!(response(&h.take(c)).status(), 503);
    assert_eq!(h.memory.subscription(c), None);
    // Nothing else is affected: existing channels on the same connection.
    h.send(c, client::publish_request("a", "hello", None));
    assert_eq!(published(&response(&h.take(c))), (1, 1));
    h.send(
        c,
        client::subscribe_request("b", Transport::Longpoll, Some(0)),
    );
    assert_eq!(response(&h.take(c)).text(), r#"[{"id":1,"data":"1"}]"#);
    assert_eq!(h.unsubscribes(c), 1, "only the poll that was held");
}

#[test]
fn a_stopping_server_refuses_a_publish_and_closes() {
    let mut h = Harness::default();
    let c = h.open();
    h.memory.stop_publishing();
    h.send(c, client::publish_request("a", "x", None));
    let r = response(&h.take(c));
    assert_eq!((r.status(), r.text()), (503, "server is stopping\n"));
    assert_eq!(r.header("Connection").as_deref(), Some("close"));
    assert_eq!(r.header("Retry-After").as_deref(), Some("1"));
    assert!(h.conn(c).is_done());
    assert_eq!(h.hub().stats().published, 0);
}

#[test]
fn messages_expire_from_the_replay() {
    let mut h = Harness::new(Config {
        message_ttl: s(60),
        ..Config::default()
    });
    h.publish("a", "old");
    h.at(s(30));
    h.publish("a", "new");
    h.at(s(60));
    h.memory.expire(h.now);
    let c = h.subscribe("a", Transport::Longpoll, Some(0));
    let r = response(&h.take(c));
    assert_eq!(r.header("X-Comet-Missed").as_deref(), Some("1"));
    assert_eq!(r.text(), r#"[{"id":2,"data":"new"}]"#);
    h.at(s(90));
    h.memory.expire(h.now);
    assert_eq!(h.hub().stats().channels, 0);
}

// ----- several nodes -----

#[test]
fn a_skip_in_ids_is_told_as_missed_on_every_transport() {
    for t in Transport::ALL {
        let mut h = Harness::default();
        h.publish("a", "1");
        let c = h.subscribe("a", t, None);
        let mut r = Reader::new(t);
        r.feed(&h.take(c));
        // Ids 2 to 4 never reach this node (a broker's backlog lost them):
        // the next message it hands on is 5.
        let five = Arc::new(comet::Message::new("a".into(), 5, "five".into()));
        let now = h.now;
        assert!(h.conn(c).handle_message(&five, now), "{t:?}");
        h.settle();
        let out = h.take(c);
        r.feed(&out);
        if t == Transport::Longpoll {
            // A long-poll says it in its head.
            let resp = response(&out);
            assert_eq!(resp.header("X-Comet-Missed").as_deref(), Some("3"));
            assert_eq!(r.take(), vec![msg(5, "five")]);
        } else {
            assert_eq!(r.take(), vec![Item::Missed(3), msg(5, "five")], "{t:?}");
        }
    }
}

#[test]
fn an_answer_given_later_and_a_broker_refusal() {
    use comet::{Conn, Refusal};
    use std::time::Instant;
    let config = Arc::new(Config::default());
    let now = Instant::now();
    let mut c = Conn::new(config, now);
    c.handle_read(client::publish_request("a", "x", None).as_bytes(), now);
    assert!(matches!(c.poll_event(), Some(Event::Publish { .. })));
    // Answered later (a broker gives the id): the conn waits, acting on
    // nothing it reads meanwhile.
    assert!(c.is_waiting());
    c.handle_read(client::publish_request("a", "y", None).as_bytes(), now);
    assert_eq!(c.poll_event(), None, "the second publish waits its turn");
    c.handle_refused(Refusal::Broker, now);
    let mut out = Vec::new();
    let n = transmit_all(&c, &mut out);
    c.handle_written(n);
    let r = response(&out);
    assert_eq!((r.status(), r.text()), (503, "broker unavailable\n"));
    assert_eq!(r.header("Retry-After").as_deref(), Some("1"));
    assert_eq!(r.header("Connection"), None, "the connection stays");
    // The pipelined publish comes next, and its answer can be an id.
    assert!(matches!(c.poll_event(), Some(Event::Publish { data, .. }) if &*data == "y"));
    assert!(c.is_waiting());
    c.handle_published(7, 2, now);
    assert!(!c.is_waiting());
    let mut out = Vec::new();
    transmit_all(&c, &mut out);
    assert_eq!(published(&response(&out)), (7, 2));
}
