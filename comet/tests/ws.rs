//! WebSocket: the handshake, every close code the decoder gives, and
//! reassembly of fragments fed in every way.

use bytes::Bytes;
use comet::request::Status;
use comet::ws::client::{self, HandshakeError};
use comet::ws::handshake::{self, Refusal, Request};
use comet::ws::{encode, Decoder, Error, Event, Header, Opcode};

const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const SAMPLE_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const MAX: usize = 1024;

fn good() -> Request<'static> {
    Request {
        method: "GET",
        http11: true,
        upgrade: Some("websocket"),
        connection: Some("Upgrade"),
        key: Some(SAMPLE_KEY),
        version: Some("13"),
        origin: Some("http://example.com"),
    }
}

#[test]
fn rfc_sample_key_gives_the_rfc_accept() {
    assert_eq!(handshake::accept_key(SAMPLE_KEY), SAMPLE_ACCEPT);
    let a = handshake::accept(&good(), None).expect("accepted");
    assert_eq!(a.value(), SAMPLE_ACCEPT);
}

#[test]
fn accepted_variants() {
    type Edit = fn(&mut Request<'static>);
    let table: &[(&str, Edit)] = &[
        ("as is", |_| {}),
        ("connection list", |r| {
            r.connection = Some("keep-alive, Upgrade")
        }),
        ("connection lower case", |r| r.connection = Some("upgrade")),
        ("upgrade mixed case", |r| r.upgrade = Some("WebSocket")),
        ("upgrade list", |r| r.upgrade = Some("h2c, websocket")),
        ("version with spaces", |r| r.version = Some(" 13 ")),
        ("key with spaces", |r| {
            r.key = Some("  dGhlIHNhbXBsZSBub25jZQ== ")
        }),
        ("no origin", |r| r.origin = None),
    ];
    for (name, edit) in table {
        let mut r = good();
        edit(&mut r);
        let a = handshake::accept(&r, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(a.value(), SAMPLE_ACCEPT, "{name}");
    }
}

#[test]
fn every_refusal_and_its_status() {
    type Edit = fn(&mut Request<'static>);
    let table: &[(&str, Edit, Refusal, u16)] = &[
        ("POST", |r| r.method = "POST", Refusal::Method, 400),
        ("lower-case get", |r| r.method = "get", Refusal::Method, 400),
        ("HTTP/1.0", |r| r.http11 = false, Refusal::HttpVersion, 400),
        ("no upgrade", |r| r.upgrade = None, Refusal::Upgrade, 400),
        (
            "upgrade h2c",
            |r| r.upgrade = Some("h2c"),
            Refusal::Upgrade,
            400,
        ),
        (
            "no connection",
            |r| r.connection = None,
            Refusal::Connection,
            400,
        ),
        (
            "connection keep-alive",
            |r| r.connection = Some("keep-alive"),
            Refusal::Connection,
            400,
        ),
        (
            "connection upgrades",
            |r| r.connection = Some("upgrades"),
            Refusal::Connection,
            400,
        ),
        ("no version", |r| r.version = None, Refusal::Version, 426),
        (
            "version 8",
            |r| r.version = Some("8"),
            Refusal::Version,
            426,
        ),
        (
            "version list",
            |r| r.version = Some("13, 8"),
            Refusal::Version,
            426,
        ),
        (
            "version empty",
            |r| r.version = Some(""),
            Refusal::Version,
            426,
        ),
        ("no key", |r| r.key = None, Refusal::Key, 400),
        ("empty key", |r| r.key = Some(""), Refusal::Key, 400),
        (
            "key not base64",
            |r| r.key = Some("dGhlIHNhbXBsZSBub25jZ!=="),
            Refusal::Key,
            400,
        ),
        (
            "key of 15 bytes",
            |r| r.key = Some("AAAAAAAAAAAAAAAAAAAA"),
            Refusal::Key,
            400,
        ),
        (
            "key of 18 bytes",
            |r| r.key = Some("AAAAAAAAAAAAAAAAAAAAAAAA"),
            Refusal::Key,
            400,
        ),
        (
            "key unpadded",
            |r| r.key = Some("dGhlIHNhbXBsZSBub25jZQ"),
            Refusal::Key,
            400,
        ),
        (
            "key of 32 bytes",
            |r| r.key = Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Refusal::Key,
            400,
        ),
        (
            "other origin",
            |r| r.origin = Some("http://evil.example"),
            Refusal::Origin,
            403,
        ),
        ("no origin", |r| r.origin = None, Refusal::Origin, 403),
    ];
    for (name, edit, refusal, status) in table {
        let mut r = good();
        edit(&mut r);
        let got = handshake::accept(&r, Some("http://EXAMPLE.com"));
        assert_eq!(got, Err(*refusal), "{name}");
        assert_eq!(refusal.status(), *status, "{name}");
        let headers = refusal.headers();
        if *status == 426 {
            assert_eq!(headers, &[("Sec-WebSocket-Version", "13")], "{name}");
        } else {
            assert!(headers.is_empty(), "{name}");
        }
    }
}

#[test]
fn the_101_head_is_exact_and_names_no_extension() {
    let a = handshake::accept(&good(), None).unwrap();
    assert_eq!(
        &a.response_head()[..],
        b"HTTP/1.1 101 Switching Protocols\r\nServer: cometbench\r\n\
          Upgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
}

#[test]
fn is_upgrade_reads_the_token_list() {
    assert!(handshake::is_upgrade(Some("WebSocket")));
    assert!(handshake::is_upgrade(Some("foo, websocket")));
    assert!(!handshake::is_upgrade(Some("websockets")));
    assert!(!handshake::is_upgrade(None));
}

/// The client's request, parsed as a server would, accepted, and the server's
/// head checked by the client: both halves agree.
#[test]
fn client_and_server_handshakes_agree() {
    let key = client::key(*b"the sample nonce");
    assert_eq!(key, SAMPLE_KEY);
    let req = client::request(
        "127.0.0.1:8080",
        "/sub/news?transport=ws",
        &key,
        &[
            ("Origin", "http://example.com"),
            ("Authorization", "Bearer t"),
        ],
    )
    .unwrap();
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Request::new(&mut headers);
    assert!(parsed.parse(&req).unwrap().is_complete());
    assert_eq!(parsed.path, Some("/sub/news?transport=ws"));
    let get = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| std::str::from_utf8(h.value).unwrap())
    };
    assert_eq!(get("Host"), Some("127.0.0.1:8080"));
    assert_eq!(get("Authorization"), Some("Bearer t"));
    let r = Request {
        method: parsed.method.unwrap(),
        http11: parsed.version == Some(1),
        upgrade: get("Upgrade"),
        connection: get("Connection"),
        key: get("Sec-WebSocket-Key"),
        version: get("Sec-WebSocket-Version"),
        origin: get("Origin"),
    };
    let accepted = handshake::accept(&r, Some("http://example.com")).unwrap();
    let mut wire = accepted.response_head().to_vec();
    let head_len = wire.len();
    wire.extend_from_slice(&encode::text("first"));
    for cut in 0..head_len {
        assert_eq!(
            client::parse_response(&wire[..cut], &key),
            Ok(Status::Partial),
            "cut {cut}"
        );
    }
    assert_eq!(
        client::parse_response(&wire, &key),
        Ok(Status::Complete(head_len))
    );
}

#[test]
fn client_refuses_bad_responses() {
    let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    let accept = format!("Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n");
    let table: Vec<(&str, String, HandshakeError)> = vec![
        (
            "status 400",
            format!("HTTP/1.1 400 Bad Request\r\n{accept}\r\n"),
            HandshakeError::Status(400),
        ),
        (
            "status 200",
            "HTTP/1.1 200 OK\r\n\r\n".into(),
            HandshakeError::Status(200),
        ),
        (
            "not http",
            "SSH-2.0-OpenSSH\r\n\r\n".into(),
            HandshakeError::Malformed,
        ),
        (
            "http/1.0",
            format!("HTTP/1.0 101 Switching\r\n{accept}\r\n"),
            HandshakeError::Malformed,
        ),
        (
            "no upgrade",
            format!("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n{accept}\r\n"),
            HandshakeError::Upgrade,
        ),
        (
            "no connection",
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n{accept}\r\n"),
            HandshakeError::Connection,
        ),
        ("no accept", format!("{ok}\r\n"), HandshakeError::Accept),
        (
            "wrong accept",
            format!(
                "{ok}Sec-WebSocket-Accept: {}\r\n\r\n",
                handshake::accept_key("AAAAAAAAAAAAAAAAAAAAAA==")
            ),
            HandshakeError::Accept,
        ),
        (
            "an extension",
            format!("{ok}{accept}Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"),
            HandshakeError::Extension,
        ),
    ];
    for (name, resp, err) in table {
        assert_eq!(
            client::parse_response(resp.as_bytes(), SAMPLE_KEY),
            Err(err),
            "{name}"
        );
    }
    let good = format!("{ok}{accept}\r\n");
    assert_eq!(
        client::parse_response(good.as_bytes(), SAMPLE_KEY),
        Ok(Status::Complete(good.len()))
    );
    let endless = vec![b'a'; 9000];
    let mut head = b"HTTP/1.1 101 Switching Protocols\r\nX: ".to_vec();
    head.extend_from_slice(&endless);
    assert_eq!(
        client::parse_response(&head, SAMPLE_KEY),
        Err(HandshakeError::Malformed)
    );
}

#[test]
fn client_request_refuses_header_injection() {
    let bad = [
        client::request("h\r\nX: y", "/", SAMPLE_KEY, &[]),
        client::request("h", "/ HTTP/1.1\r\n", SAMPLE_KEY, &[]),
        client::request("h", "/", SAMPLE_KEY, &[("Origin", "a\nb")]),
        client::request("h", "/", SAMPLE_KEY, &[("X\0", "a")]),
    ];
    for r in bad {
        assert_eq!(r, Err(HandshakeError::Injection));
    }
    let head = client::request("h", "/", SAMPLE_KEY, &[]).unwrap();
    assert_eq!(
        String::from_utf8(head).unwrap(),
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
}

// ---- frames ----

/// A masked frame with any first byte and payload: what a hostile client sends.
fn raw(first: u8, payload: &[u8]) -> Vec<u8> {
    let header = Header::new(
        false,
        Opcode::Continuation,
        payload.len() as u64,
        Some(MASK),
    );
    let mut out = header.as_bytes().to_vec();
    out[0] = first;
    let start = out.len();
    out.extend_from_slice(payload);
    comet::ws::apply_mask(&mut out[start..], MASK, 0);
    out
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Feeds `bytes` whole, and again a byte at a time: both must agree.
fn decode(bytes: &[u8]) -> (Vec<Event>, Result<(), Error>) {
    let whole = {
        let mut d = Decoder::server(MAX);
        let mut out = Vec::new();
        let r = d.feed(bytes, &mut out);
        (out, r)
    };
    let mut d = Decoder::server(MAX);
    let mut out = Vec::new();
    let mut r = Ok(());
    for b in bytes {
        r = d.feed(std::slice::from_ref(b), &mut out);
        if r.is_err() {
            break;
        }
    }
    assert_eq!(
        whole,
        (out, r),
        "whole and byte-at-a-time disagree on {bytes:02x?}"
    );
    whole
}

#[test]
fn every_hostile_frame_gets_its_close_code() {
    let mut top_bit = vec![0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
    top_bit.extend_from_slice(&MASK);
    let mut huge = vec![0x81, 0x80 | 127, 0, 0, 1, 0, 0, 0, 0, 0];
    huge.extend_from_slice(&MASK);
    let big = vec![b'a'; MAX + 1];
    let half = vec![b'a'; MAX / 2 + 1];
    let table: Vec<(&str, Vec<u8>, Error, u16)> = vec![
        (
            "unmasked text",
            vec![0x81, 0x02, b'h', b'i'],
            Error::Unmasked,
            1002,
        ),
        ("unmasked ping", vec![0x89, 0x00], Error::Unmasked, 1002),
        (
            "rsv1 (deflate not negotiated)",
            raw(0xC1, b"x"),
            Error::Reserved,
            1002,
        ),
        ("rsv2", raw(0xA1, b"x"), Error::Reserved, 1002),
        ("rsv3", raw(0x91, b"x"), Error::Reserved, 1002),
        ("opcode 3", raw(0x83, b""), Error::Opcode(3), 1002),
        ("opcode 7", raw(0x87, b""), Error::Opcode(7), 1002),
        ("opcode 0xB", raw(0x8B, b""), Error::Opcode(0xB), 1002),
        ("opcode 0xF", raw(0x8F, b""), Error::Opcode(0xF), 1002),
        (
            "ping of 126 bytes",
            raw(0x89, &[0; 126]),
            Error::ControlTooLong,
            1002,
        ),
        (
            "close of 126 bytes",
            raw(0x88, &[0; 126]),
            Error::ControlTooLong,
            1002,
        ),
        (
            "fragmented ping",
            raw(0x09, b""),
            Error::ControlFragmented,
            1002,
        ),
        (
            "fragmented close",
            raw(0x08, &close_payload(1000, b"")),
            Error::ControlFragmented,
            1002,
        ),
        (
            "continuation first",
            raw(0x80, b"x"),
            Error::NoContinuation,
            1002,
        ),
        (
            "unfinished continuation first",
            raw(0x00, b"x"),
            Error::NoContinuation,
            1002,
        ),
        (
            "continuation after a whole message",
            cat(&[&raw(0x81, b"done"), &raw(0x80, b"x")]),
            Error::NoContinuation,
            1002,
        ),
        (
            "text inside text",
            cat(&[&raw(0x01, b"a"), &raw(0x81, b"b")]),
            Error::Interleaved,
            1002,
        ),
        (
            "binary inside text",
            cat(&[&raw(0x01, b"a"), &raw(0x82, b"b")]),
            Error::Interleaved,
            1002,
        ),
        ("64-bit length top bit", top_bit, Error::LengthTopBit, 1002),
        (
            "close of one byte",
            raw(0x88, &[3]),
            Error::CloseOneByte,
            1002,
        ),
        ("binary", raw(0x82, b"\x00\x01"), Error::Binary, 1003),
        ("unfinished binary", raw(0x02, b"\x00"), Error::Binary, 1003),
        ("empty binary", raw(0x82, b""), Error::Binary, 1003),
        ("text not UTF-8", raw(0x81, b"\xff"), Error::Utf8, 1007),
        ("overlong UTF-8", raw(0x81, b"\xc0\xaf"), Error::Utf8, 1007),
        (
            "UTF-16 surrogate",
            raw(0x81, b"\xed\xa0\x80"),
            Error::Utf8,
            1007,
        ),
        (
            "truncated UTF-8",
            raw(0x81, b"ok\xe2\x82"),
            Error::Utf8,
            1007,
        ),
        (
            "fragments not UTF-8 together",
            cat(&[&raw(0x01, b"\xe2\x82"), &raw(0x80, b"x")]),
            Error::Utf8,
            1007,
        ),
        (
            "close reason not UTF-8",
            raw(0x88, &close_payload(1000, b"\xff")),
            Error::Utf8,
            1007,
        ),
        ("text above the max", raw(0x81, &big), Error::TooBig, 1009),
        ("2^40 bytes announced", huge, Error::TooBig, 1009),
        (
            "fragments above the max",
            cat(&[&raw(0x01, &half), &raw(0x80, &half)]),
            Error::TooBig,
            1009,
        ),
    ];
    let mut rows = table;
    for code in [
        0u16, 1, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        rows.push((
            "close code",
            raw(0x88, &close_payload(code, b"r")),
            Error::CloseCode(code),
            1002,
        ));
    }
    for (name, bytes, err, code) in rows {
        let (_, r) = decode(&bytes);
        assert_eq!(r, Err(err), "{name}");
        assert_eq!(err.close_code(), code, "{name}");
        // The error sticks, and the decoder lets go of what it held.
        let mut d = Decoder::server(MAX);
        let _ = d.feed(&bytes, &mut Vec::new());
        assert_eq!(
            d.feed(&raw(0x81, b"after"), &mut Vec::new()),
            Err(err),
            "{name}"
        );
        assert_eq!(d.feed(&[], &mut Vec::new()), Err(err), "{name}");
        assert_eq!(d.buffered(), 0, "{name}");
    }
}

#[test]
fn a_message_above_the_max_is_refused_from_its_header_alone() {
    let frame = raw(0x81, &vec![b'a'; MAX + 1]);
    let mut d = Decoder::server(MAX);
    // Two bytes, the 16-bit length and the mask: the payload never arrives.
    assert_eq!(d.feed(&frame[..8], &mut Vec::new()), Err(Error::TooBig));
    assert_eq!(d.buffered(), 0);
}

#[test]
fn hostile_bytes_are_refused_before_the_header_ends() {
    // One byte is enough to refuse a reserved bit, a bad opcode or binary.
    for (first, err) in [
        (0xC1, Error::Reserved),
        (0x83, Error::Opcode(3)),
        (0x82, Error::Binary),
    ] {
        let mut d = Decoder::server(MAX);
        assert_eq!(d.feed(&[first], &mut Vec::new()), Err(err));
    }
    let mut d = Decoder::server(MAX);
    assert_eq!(d.feed(&[0x81, 0x05], &mut Vec::new()), Err(Error::Unmasked));
}

#[test]
fn every_sendable_close_code_is_accepted() {
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1014, 3000, 4000, 4999,
    ] {
        let (events, r) = decode(&raw(0x88, &close_payload(code, "why é".as_bytes())));
        assert_eq!(r, Ok(()), "{code}");
        assert_eq!(
            events,
            vec![Event::Close {
                code: Some(code),
                reason: "why é".into()
            }]
        );
    }
    let (events, r) = decode(&raw(0x88, b""));
    assert_eq!(
        (events, r),
        (
            vec![Event::Close {
                code: None,
                reason: String::new()
            }],
            Ok(())
        )
    );
}

#[test]
fn nothing_is_read_after_a_close() {
    let bytes = cat(&[
        &raw(0x88, &close_payload(1000, b"")),
        &raw(0x81, b"late"),
        &[0xff, 0xff],
    ]);
    let mut d = Decoder::server(MAX);
    let mut out = Vec::new();
    assert_eq!(d.feed(&bytes, &mut out), Ok(()));
    assert!(d.is_closed());
    assert_eq!(
        out,
        vec![Event::Close {
            code: Some(1000),
            reason: String::new()
        }]
    );
}

#[test]
fn rfc_fragmented_hello_with_a_ping_between() {
    // RFC 6455 section 5.7 "Hel" + "lo", masked, a ping in the middle.
    let bytes = cat(&[
        &raw(0x01, b"Hel"),
        &raw(0x89, b"are you there"),
        &raw(0x80, b"lo"),
    ]);
    let (events, r) = decode(&bytes);
    assert_eq!(r, Ok(()));
    assert_eq!(
        events,
        vec![
            Event::Ping(Bytes::from_static(b"are you there")),
            Event::Text("Hello".into())
        ]
    );
}

#[test]
fn fragments_may_be_empty_and_may_split_a_character() {
    let euro = "€".as_bytes();
    let bytes = cat(&[
        &raw(0x01, b""),
        &raw(0x00, &euro[..1]),
        &raw(0x8A, b""),
        &raw(0x00, &euro[1..]),
        &raw(0x80, b""),
    ]);
    let (events, r) = decode(&bytes);
    assert_eq!(r, Ok(()));
    assert_eq!(
        events,
        vec![Event::Pong(Bytes::new()), Event::Text("€".into())]
    );
}

#[test]
fn many_frames_in_one_piece_and_the_exact_max() {
    let full = "m".repeat(MAX);
    let bytes = cat(&[
        &raw(0x81, b"one"),
        &raw(0x81, b""),
        &raw(0x01, &full.as_bytes()[..MAX - 1]),
        &raw(0x80, &full.as_bytes()[MAX - 1..]),
        &raw(0x89, b""),
        &raw(0x81, "two é".as_bytes()),
    ]);
    let (events, r) = decode(&bytes);
    assert_eq!(r, Ok(()));
    assert_eq!(
        events,
        vec![
            Event::Text("one".into()),
            Event::Text(String::new()),
            Event::Text(full),
            Event::Ping(Bytes::new()),
            Event::Text("two é".into()),
        ]
    );
}

#[test]
fn every_length_form_decodes() {
    for len in [0usize, 1, 125, 126, 127, 1000, 65535, 65536, 70000] {
        let text = "z".repeat(len);
        let mut d = Decoder::server(len);
        let mut out = Vec::new();
        d.feed(&client::text(&text, MASK), &mut out).unwrap();
        assert_eq!(out, vec![Event::Text(text)], "len {len}");
    }
}

#[test]
fn events_before_an_error_are_kept() {
    let bytes = cat(&[&raw(0x81, b"kept"), &raw(0x82, b"bin")]);
    let (events, r) = decode(&bytes);
    assert_eq!(
        (events, r),
        (vec![Event::Text("kept".into())], Err(Error::Binary))
    );
}

#[test]
fn nothing_is_held_between_messages() {
    let mut d = Decoder::server(MAX);
    assert_eq!(d.buffered(), 0);
    let bytes = cat(&[&raw(0x01, b"part"), &raw(0x89, b"p")]);
    let mut out = Vec::new();
    d.feed(&bytes, &mut out).unwrap();
    assert!(d.buffered() > 0, "a message in progress is held");
    d.feed(&raw(0x80, b" two"), &mut out).unwrap();
    assert_eq!(out.last(), Some(&Event::Text("part two".into())));
    assert_eq!(d.buffered(), 0);
    // An idle decoder is a few words: the workbench counts bytes per connection.
    let size = std::mem::size_of::<Decoder>();
    println!("size_of::<Decoder>() = {size}");
    assert!(size <= 96, "idle decoder grew to {size} bytes");
}

#[test]
fn the_client_decoder_refuses_a_masked_frame_and_reads_server_frames() {
    let mut d = Decoder::client(MAX);
    let mut out = Vec::new();
    let bytes = cat(&[
        &encode::message(7, "hi"),
        &encode::ping(b"hb"),
        &encode::pong(b""),
        &encode::close(1001, "going"),
    ]);
    for b in &bytes {
        d.feed(std::slice::from_ref(b), &mut out).unwrap();
    }
    assert_eq!(
        out,
        vec![
            Event::Text(r#"{"id":7,"data":"hi"}"#.into()),
            Event::Ping(Bytes::from_static(b"hb")),
            Event::Pong(Bytes::new()),
            Event::Close {
                code: Some(1001),
                reason: "going".into()
            },
        ]
    );
    let mut d = Decoder::client(MAX);
    assert_eq!(
        d.feed(&client::text("x", MASK), &mut Vec::new()),
        Err(Error::Masked)
    );
    assert_eq!(Error::Masked.close_code(), 1002);
}

#[test]
fn a_shared_payload_needs_only_its_header() {
    let payload = Bytes::from_static(br#"{"id":1,"data":"shared"}"#);
    let h = encode::text_header(payload.len());
    let mut d = Decoder::client(MAX);
    let mut out = Vec::new();
    d.feed(h.as_bytes(), &mut out).unwrap();
    d.feed(&payload, &mut out).unwrap();
    assert_eq!(out, vec![Event::Text(r#"{"id":1,"data":"shared"}"#.into())]);
    assert_eq!(
        [h.as_bytes(), &payload[..]].concat(),
        encode::frame(true, Opcode::Text, &payload, None).to_vec()
    );
}
