//! WebSocket: the frame decoders of both ends fed arbitrary bytes in
//! arbitrary pieces, and the handshake checks fed arbitrary header values.
#![no_main]

use comet::ws::client;
use comet::ws::handshake::{self, Request};
use comet::ws::{close, Decoder, Event};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fn decode(mut d: Decoder, body: &[u8], cut: usize) {
    let mut out = Vec::new();
    let mut failed = None;
    for piece in body.chunks(cut) {
        if let Err(e) = d.feed(piece, &mut out) {
            failed = Some(e);
            break;
        }
    }
    for ev in &out {
        match ev {
            Event::Text(t) => assert!(t.len() <= MAX, "a message above the max"),
            Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= 125, "control payload > 125"),
            Event::Close { code, reason } => {
                assert!(code.is_none_or(close::is_valid), "invalid close code let through");
                assert!(reason.len() <= 123);
            }
        }
    }
    let closes = out.iter().filter(|e| matches!(e, Event::Close { .. })).count();
    assert!(closes <= 1, "events after a close");
    if closes == 1 {
        assert!(matches!(out.last(), Some(Event::Close { .. })));
    }
    match failed {
        Some(e) => {
            assert!([1002, 1003, 1007, 1009].contains(&e.close_code()));
            assert!(close::is_valid(e.close_code()));
            // The error sticks, and nothing is held after it.
            assert_eq!(d.feed(b"\x81\x80\0\0\0\0", &mut Vec::new()), Err(e));
            assert_eq!(d.buffered(), 0);
        }
        None if d.is_closed() => assert_eq!(closes, 1),
        None => {}
    }
}

/// Header values cut out of `data` at NUL bytes.
fn handshake(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut f = text.split('\0');
    let mut next = || f.next();
    let method = next().unwrap_or("");
    let flags = next().unwrap_or("");
    let req = Request {
        method,
        http11: !flags.is_empty(),
        upgrade: next(),
        connection: next(),
        key: next(),
        version: next(),
        origin: next(),
    };
    let allowed = next();
    match handshake::accept(&req, allowed) {
        Ok(a) => {
            let key = req.key.expect("accepted without a key").trim();
            assert_eq!(a.value(), handshake::accept_key(key));
            assert_eq!(a.value().len(), 28);
            let head = a.response_head();
            assert_eq!(
                client::parse_response(&head, key),
                Ok(comet::request::Status::Complete(head.len()))
            );
        }
        Err(r) => assert!([400, 403, 426].contains(&r.status())),
    }
    if let Some(key) = req.key {
        let _ = client::parse_response(data, key);
    }
}

fuzz_target!(|data: &[u8]| {
    let (cut, body) = match data.split_first() {
        Some((c, rest)) => ((*c as usize % 64) + 1, rest),
        None => return,
    };
    decode(Decoder::server(MAX), body, cut);
    decode(Decoder::client(MAX), body, cut);
    handshake(body);
});
