//! Reliability under bad input, against every dispatcher on real sockets
//! (127.0.0.1, port 0): the publish token, hostile messages in the iframe
//! transport, paths that try to reach files, and the limits of the wire
//! protocol (`docs/DESIGN.md`) while subscribers are being served.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use comet::{Config, Transport};
use dispatchers::{Kind, Running};
use testkit::{hostile, *};

fn server(kind: Kind, config: Config, pool_size: usize) -> Running {
    common::start(kind, config, pool_size)
}

fn quick() -> Config {
    Config {
        heartbeat: Duration::from_secs(1),
        header_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

const TOKEN: &str = "s3cret-Token_42";

fn publish_with(a: std::net::SocketAddr, channel: &str, auth: Option<&str>, body: &[u8]) -> u16 {
    let mut raw = format!("POST /pub/{channel} HTTP/1.1\r\nHost: t\r\n").into_bytes();
    if let Some(v) = auth {
        raw.extend_from_slice(format!("Authorization: {v}\r\n").as_bytes());
    }
    raw.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    raw.extend_from_slice(body);
    exchange(a, &raw).0
}

/// Without the right `Authorization: Bearer`, a publish is `401` and nothing
/// is published: `/stats` says so, and a subscriber's first message is the
/// first authorised one, with id 1.
pub fn publish_token_is_required(kind: Kind) {
    let srv = server(
        kind,
        Config {
            publish_token: Some(TOKEN.into()),
            max_message: 1024,
            ..quick()
        },
        64,
    );
    let a = srv.addr;
    let mut sse = Sub::open(a, "tok", Transport::Sse, "", "");
    let mut stream = Sub::open(a, "tok", Transport::Stream, "", "");
    sse.wait_head();
    stream.wait_head();
    wait_subscribers(a, 2, Duration::from_secs(5));
    let wrong: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some("Bearer wrong".into()),
        Some(TOKEN.into()),
        Some(format!("Basic {TOKEN}")),
        Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Bearer {TOKEN}{TOKEN}")),
        Some(format!("Bearer {}", TOKEN.to_uppercase())),
        Some(format!("Bearer {}", "s".repeat(TOKEN.len()))),
        Some(format!("Bearer\t{TOKEN}")),
    ];
    for auth in &wrong {
        let status = publish_with(a, "tok", auth.as_deref(), b"forged");
        assert_eq!(status, 401, "{}: Authorization {auth:?}", kind.name());
    }
    // The token in other places than the header does not count either.
    let (status, _, _) = exchange(
        a,
        format!(
            "POST /pub/tok?token={TOKEN} HTTP/1.1\r\nX-Authorization: Bearer {TOKEN}\r\nCookie: token={TOKEN}\r\nContent-Length: 6\r\n\r\nforged"
        )
        .as_bytes(),
    );
    assert_eq!(status, 401);
    // Refused before the body: a too-large or non-UTF-8 body is still 401.
    let (status, head, _) = exchange(
        a,
        b"POST /pub/tok HTTP/1.1\r\nContent-Length: 999999\r\n\r\n",
    );
    assert_eq!(status, 401);
    assert!(header(&head, "WWW-Authenticate").is_some(), "{head}");
    assert_eq!(publish_with(a, "tok", None, b"\xff\xfe"), 401);
    // A wrong token on a keep-alive connection does not leave the connection
    // open for a pipelined second try without one.
    let (status, _, rest) = exchange(
        a,
        b"POST /pub/tok HTTP/1.1\r\nAuthorization: Bearer no\r\nContent-Length: 0\r\n\r\n\
          POST /pub/tok HTTP/1.1\r\nContent-Length: 6\r\n\r\nforged",
    );
    assert_eq!(status, 401);
    assert!(!String::from_utf8_lossy(&rest).contains("202"));

    let st = stats(a);
    assert_eq!(st["published"], 0, "{}: {st}", kind.name());
    assert_eq!(st["delivered"], 0, "{}: {st}", kind.name());
    // Now the right token: the subscribers' first message is this one, id 1.
    let good = format!("Bearer {TOKEN}");
    assert_eq!(publish_with(a, "tok", Some(&good), b"genuine"), 202);
    assert_eq!(sse.wait_messages(1), vec![(1, "genuine".to_string())]);
    assert_eq!(stream.wait_messages(1), vec![(1, "genuine".to_string())]);
    // A longpoll replay of the whole backlog holds only that one too.
    let mut lp = Sub::open(a, "tok", Transport::Longpoll, "&since=0", "");
    assert_eq!(lp.wait_messages(1), vec![(1, "genuine".to_string())]);
    assert_eq!(stats(a)["published"], 1);
    srv.stop();
}

/// Hostile messages on the iframe transport, live and replayed: between
/// `<script>` and `</script>` of each message there is no `<`, `>`, `&`,
/// U+2028 or U+2029, the element is exactly `parent.comet(JSON);`, and the
/// JSON gives back the exact message.
pub fn iframe_hostile_payloads(kind: Kind) {
    let srv = server(kind, quick(), 64);
    let a = srv.addr;
    let msgs = hostile::hostile_messages();
    let mut live = Sub::open(a, "evil", Transport::Iframe, "", "");
    live.wait_head();
    wait_subscribers(a, 1, Duration::from_secs(5));
    // The live stream is read raw on a second connection opened now too.
    let live_raw = std::thread::spawn({
        let n = msgs.len();
        move || iframe_body(a, "evil", "", n)
    });
    wait_subscribers(a, 2, Duration::from_secs(5));
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(publish(a, "evil", m), i as u64 + 1);
    }
    let want: Vec<(u64, String)> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| (i as u64 + 1, m.clone()))
        .collect();
    // The project's own decoder agrees.
    assert_eq!(live.wait_messages(msgs.len()), want);
    let bodies = [
        ("live", live_raw.join().unwrap()),
        ("replay", iframe_body(a, "evil", "&since=0", msgs.len())),
    ];
    for (what, body) in bodies {
        let first = body.find("<script>").expect("a script element");
        // The prelude before the first message holds no element that runs.
        assert!(!body[..first].to_ascii_lowercase().contains("<script"));
        let mut rest = &body[first..];
        let mut got = Vec::new();
        while let Some(start) = rest.find("<script>") {
            // Between messages only whitespace or heartbeat comments.
            let between = rest[..start].trim();
            assert!(
                between.is_empty()
                    || between
                        .split_whitespace()
                        .all(|w| w == "<!--" || w == "-->"),
                "{what}: {between:?}"
            );
            let inner_start = start + "<script>".len();
            let len = rest[inner_start..]
                .find("</script>")
                .expect("each script element closes");
            let inner = &rest[inner_start..inner_start + len];
            rest = &rest[inner_start + len + "</script>".len()..];
            assert!(
                !inner.contains(['<', '>', '&', '\u{2028}', '\u{2029}']),
                "{}: {what}: script element {}: {inner:?}",
                kind.name(),
                got.len() + 1
            );
            let json = inner
                .strip_prefix("parent.comet(")
                .and_then(|s| s.strip_suffix(");"))
                .unwrap_or_else(|| panic!("{what}: not one call: {inner:?}"));
            let v: serde_json::Value =
                serde_json::from_str(json).unwrap_or_else(|e| panic!("{what}: {e}: {json:?}"));
            got.push((
                v["id"].as_u64().expect("id"),
                v["data"].as_str().expect("data").to_string(),
            ));
        }
        assert_eq!(got.len(), want.len(), "{}: {what}", kind.name());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{}: {what}", kind.name());
        }
    }
    srv.stop();
}

/// No route serves a file, and channel names cannot name one: `400` for an
/// invalid channel, `404` for an unknown path, and never a byte of a file.
pub fn paths_cannot_reach_files(kind: Kind) {
    let srv = server(kind, quick(), 64);
    let a = srv.addr;
    let cases: &[(&str, u16)] = &[
        ("GET /sub/../../etc/passwd", 400),
        ("GET /sub/..%2f..%2fetc%2fpasswd", 400),
        ("GET /sub/%2e%2e%2fetc%2fpasswd", 400),
        ("GET /sub/%2e%2e/%2e%2e/etc/passwd", 400),
        ("GET /sub/..\\..\\etc\\passwd", 400),
        ("GET /sub/a/b", 400),
        ("GET /sub/a/", 400),
        ("GET /sub//etc/passwd", 400),
        ("GET /sub/%00", 400),
        ("GET /sub/a%00.txt", 400),
        ("GET /sub/", 400),
        ("POST /pub/../../etc/passwd", 400),
        ("POST /pub/a/b", 400),
        ("POST /pub/%2e%2e", 400),
        ("GET /pub/..", 405),
        ("GET /../etc/passwd", 404),
        ("GET /etc/passwd", 404),
        ("GET //etc/passwd", 404),
        ("GET /stats/../../etc/passwd", 404),
        ("GET /./sub/a", 404),
        ("GET /%2e%2e/etc/passwd", 404),
        ("GET /sub%2f..%2f..%2fetc%2fpasswd", 404),
        ("GET /chat/", 404),
        ("GET /chat/../../etc/passwd", 404),
        ("GET /chat.html", 404),
        ("GET /index.html", 404),
        ("GET /Cargo.toml", 404),
        ("GET /proc/self/environ", 404),
        ("GET http://127.0.0.1/etc/passwd", 404),
        ("GET file:///etc/passwd", 404),
        ("GET *", 404),
    ];
    let long = format!("GET /sub/{}", "a".repeat(65));
    let long_pub = format!("POST /pub/{}", "b".repeat(65));
    let exactly_64 = format!("POST /pub/{}", "c".repeat(64));
    let mut all: Vec<(&str, u16)> = cases.to_vec();
    all.push((&long, 400));
    all.push((&long_pub, 400));
    for (line, want) in all {
        let raw =
            format!("{line} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let (status, head, body) = exchange(a, raw.as_bytes());
        assert_eq!(status, want, "{}: {line}", kind.name());
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("root:"), "{line}: {text}");
        assert!(body.len() < 100, "{line}: a body of {} bytes", body.len());
        if want == 405 {
            assert!(header(&head, "Allow").is_some(), "{line}: {head}");
        }
    }
    // The root is the chat page, and only that: the embedded bytes.
    for line in ["GET /", "GET /chat", "GET /?server=http://127.0.0.1:1"] {
        let raw = format!("{line} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let (status, _, body) = exchange(a, raw.as_bytes());
        assert_eq!(status, 200, "{}: {line}", kind.name());
        assert!(body == comet::page::CHAT.as_bytes(), "{line}: another body");
    }
    // 64 characters is still a channel.
    let (status, _, _) = exchange(
        a,
        format!("{exactly_64} HTTP/1.1\r\nContent-Length: 1\r\n\r\nx").as_bytes(),
    );
    assert_eq!(status, 202);
    srv.stop();
}

/// While 300 SSE subscribers take 20 messages, several threads send requests
/// over every limit. Each gets its status, nothing they send is published, and
/// every subscriber gets every message exactly once.
pub fn limits_under_load(kind: Kind) {
    const SUBS: usize = 300;
    const MESSAGES: usize = 20;
    const THREADS: usize = 4;
    const ROUNDS: usize = 4;
    let max_message = 1024;
    let srv = server(
        kind,
        Config {
            max_message,
            ..quick()
        },
        // The pool holds every subscriber and the concurrent requests.
        SUBS + 64,
    );
    let a = srv.addr;
    let mut subs: Vec<Sub> = (0..SUBS)
        .map(|_| Sub::open(a, "load", Transport::Sse, "", ""))
        .collect();
    wait_subscribers(a, SUBS as u64, Duration::from_secs(30));

    let bad: Vec<(&'static str, Vec<u8>, u16)> = vec![
        (
            "request line over 8 KiB",
            format!(
                "GET /sub/load?pad={} HTTP/1.1\r\nHost: t\r\n\r\n",
                "p".repeat(8300)
            )
            .into_bytes(),
            414,
        ),
        (
            "header block over 8 KiB",
            format!(
                "GET /sub/load HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
                "h".repeat(8300)
            )
            .into_bytes(),
            431,
        ),
        (
            "many headers over 8 KiB",
            format!(
                "POST /pub/load HTTP/1.1\r\n{}Content-Length: 1\r\n\r\nx",
                "X-Many: 0123456789012345678901234567890123456789\r\n".repeat(200)
            )
            .into_bytes(),
            431,
        ),
        (
            "body over --max-message",
            {
                let mut r = format!(
                    "POST /pub/load HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                    max_message + 1
                )
                .into_bytes();
                r.extend(std::iter::repeat_n(b'm', max_message + 1));
                r
            },
            413,
        ),
        (
            "declared body far over --max-message",
            b"POST /pub/load HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n".to_vec(),
            413,
        ),
        (
            "non-UTF-8 body",
            b"POST /pub/load HTTP/1.1\r\nContent-Length: 6\r\n\r\nab\xff\xfe\xc0\x80".to_vec(),
            400,
        ),
        (
            "invalid channel (sub)",
            b"GET /sub/lo%61d?transport=sse HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
        (
            "invalid channel (pub)",
            b"POST /pub/load! HTTP/1.1\r\nContent-Length: 1\r\n\r\nx".to_vec(),
            400,
        ),
        (
            "unknown transport",
            b"GET /sub/load?transport=websocket HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
        (
            "wrong method (pub)",
            b"PUT /pub/load HTTP/1.1\r\nContent-Length: 1\r\n\r\nx".to_vec(),
            405,
        ),
        (
            "wrong method (sub)",
            b"DELETE /sub/load HTTP/1.1\r\n\r\n".to_vec(),
            405,
        ),
    ];
    let bad = Arc::new(bad);
    let start = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let bad = bad.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let mut answered = 0;
                for round in 0..ROUNDS {
                    // Each thread walks the list from a different place.
                    for i in 0..bad.len() {
                        let (what, raw, want) = &bad[(i + t + round) % bad.len()];
                        let (status, head, _) = exchange(a, raw);
                        assert_eq!(status, *want, "{what}");
                        if *want == 405 {
                            let allow = header(&head, "Allow").unwrap_or_default();
                            let method = if raw.starts_with(b"PUT") {
                                "POST"
                            } else {
                                "GET"
                            };
                            assert!(allow.contains(method), "{what}: Allow {allow:?}");
                        }
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    start.wait();
    let want: Vec<(u64, String)> = (1..=MESSAGES as u64)
        .map(|i| (i, format!("message {i}")))
        .collect();
    for (id, data) in &want {
        assert_eq!(publish(a, "load", data), *id);
    }
    let answered: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(answered, THREADS * ROUNDS * bad.len());
    // A last message after every bad request: any duplicate or stray message
    // would arrive before it on an ordered stream.
    let last = MESSAGES as u64 + 1;
    assert_eq!(publish(a, "load", "last"), last);
    let mut all = want.clone();
    all.push((last, "last".into()));
    for (i, s) in subs.iter_mut().enumerate() {
        assert_eq!(
            s.wait_messages(all.len()),
            all,
            "{}: subscriber {i}",
            kind.name()
        );
    }
    let st = stats(a);
    assert_eq!(st["published"], last, "{st}");
    assert_eq!(st["delivered"], last * SUBS as u64, "{st}");
    assert_eq!(st["subscribers"], SUBS as u64, "{st}");
    srv.stop();
}

/// A message that escaping makes several times `max_queue` (64 KiB of `<` is
/// a ~384 KiB iframe frame, of `\x01` a ~384 KiB stream frame, with the
/// default 256 KiB bound) reaches every streaming subscriber live and again
/// by replay, and nobody is dropped as too slow for it.
pub fn big_escaped_message_keeps_its_subscribers(kind: Kind) {
    let config = Config {
        backlog: 4,
        ..quick()
    };
    let big = config.max_message;
    let srv = server(kind, config, 64);
    let a = srv.addr;
    let cases = [
        ("lt", Transport::Iframe, "<".repeat(big)),
        ("ctl", Transport::Stream, "\x01".repeat(big)),
        ("nl", Transport::Sse, "\n".repeat(big)),
    ];
    let mut held = Vec::new();
    for (channel, t, data) in &cases {
        let mut live = Sub::open(a, channel, *t, "", "");
        // The head is written once the subscription is in the hub.
        live.wait_head();
        assert_eq!(publish(a, channel, data), 1);
        assert_eq!(live.wait_messages(1), vec![(1, data.clone())], "{t:?}");
        for _ in 0..2 {
            let mut again = Sub::open(a, channel, *t, "&since=0", "");
            assert_eq!(again.wait_messages(1), vec![(1, data.clone())], "{t:?}");
        }
        held.push(live);
    }
    let st = stats(a);
    assert_eq!(st["dropped_slow"], 0, "{}: {st}", kind.name());
    drop(held);
    srv.stop();
}

/// `Authorization: bearer TOKEN` publishes (the scheme name is
/// case-insensitive, RFC 9110 section 11.1); a `Content-Length` that is not
/// 1*DIGIT is `400` and publishes nothing.
pub fn auth_scheme_and_content_length(kind: Kind) {
    let srv = server(
        kind,
        Config {
            publish_token: Some(TOKEN.into()),
            ..quick()
        },
        64,
    );
    let a = srv.addr;
    for value in ["+5", "-1", "5 5", "0x10", ""] {
        let (status, _, _) = exchange(
            a,
            format!(
                "POST /pub/cl HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {value}\r\n\r\nhello"
            )
            .as_bytes(),
        );
        assert_eq!(status, 400, "{}: Content-Length {value:?}", kind.name());
    }
    assert_eq!(stats(a)["published"], 0);
    for (i, scheme) in ["bearer", "BEARER", "Bearer"].into_iter().enumerate() {
        let auth = format!("{scheme} {TOKEN}");
        assert_eq!(publish_with(a, "cl", Some(&auth), b"ok"), 202, "{auth}");
        assert_eq!(stats(a)["published"], i as u64 + 1);
    }
    srv.stop();
}

macro_rules! security {
    ($($module:ident => $kind:expr),* $(,)?) => {
        #[test]
        fn every_dispatcher_is_in_the_suite() {
            common::assert_every_kind(&[$($kind),*]);
        }
        $(
        mod $module {
            use super::*;
            #[test] fn publish_token_is_required() { super::publish_token_is_required($kind) }
            #[test] fn iframe_hostile_payloads() { super::iframe_hostile_payloads($kind) }
            #[test] fn paths_cannot_reach_files() { super::paths_cannot_reach_files($kind) }
            #[test] fn limits_under_load() { super::limits_under_load($kind) }
            #[test] fn big_escaped_message_keeps_its_subscribers() {
                super::big_escaped_message_keeps_its_subscribers($kind)
            }
            #[test] fn auth_scheme_and_content_length() {
                super::auth_scheme_and_content_length($kind)
            }
        }
    )*
    };
}

security! {
    reactor => Kind::Reactor,
    uring => Kind::Uring,
    thread_per_connection => Kind::ThreadPerConn,
    thread_pool => Kind::ThreadPool,
    green => Kind::Green,
    tokio => Kind::Tokio,
}
