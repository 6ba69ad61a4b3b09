//! The client side, for the load generator and tests: the upgrade request,
//! the check of the server's `101`, and masked frames.
//!
//! Randomness stays with the caller: the handshake nonce and every masking
//! key are arguments, so a test can replay any byte stream exactly.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;

use super::close;
use super::encode::{self, control};
use super::handshake::{accept_key, has_token, VERSION};
use super::opcode::Opcode;
use crate::request::{Status, MAX_HEADER_BLOCK};

/// Why a handshake could not be made or was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// A host, path or header given for the request holds CR, LF or NUL.
    Injection,
    /// The response is not an HTTP/1.1 head, or is longer than the cap.
    Malformed,
    /// The status is not `101` (the status is given).
    Status(u16),
    /// `Upgrade` does not name `websocket`.
    Upgrade,
    /// `Connection` does not name `upgrade`.
    Connection,
    /// `Sec-WebSocket-Accept` is missing or does not match the key.
    Accept,
    /// The server named an extension, though none was offered.
    Extension,
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Injection => f.write_str("CR, LF or NUL in a request value"),
            HandshakeError::Malformed => f.write_str("malformed response head"),
            HandshakeError::Status(s) => write!(f, "status {s}, not 101"),
            HandshakeError::Upgrade => f.write_str("Upgrade does not name websocket"),
            HandshakeError::Connection => f.write_str("Connection does not name Upgrade"),
            HandshakeError::Accept => f.write_str("Sec-WebSocket-Accept does not match the key"),
            HandshakeError::Extension => f.write_str("the server chose an extension not offered"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// The sample key of RFC 6455 section 1.3, for tests and fuzzing, where
/// bytes that replay exactly matter more than a fresh nonce; a real client
/// (the load generator) draws one per connection ([`key`]).
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// The `Sec-WebSocket-Key` for a 16-byte nonce the caller drew.
pub fn key(nonce: [u8; 16]) -> String {
    STANDARD.encode(nonce)
}

/// The upgrade request head for `path` (with any query) on `host`, with
/// `extra` headers such as `Authorization` or `Origin`.
pub fn request(
    host: &str,
    path: &str,
    key: &str,
    extra: &[(&str, &str)],
) -> Result<Vec<u8>, HandshakeError> {
    let values = [host, path, key].into_iter();
    let extras = extra.iter().flat_map(|(k, v)| [*k, *v]);
    if values
        .chain(extras)
        .any(|s| s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)))
    {
        return Err(HandshakeError::Injection);
    }
    let mut head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{}",
        upgrade_lines(key)
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    Ok(head.into_bytes())
}

/// The header lines that make a request an upgrade with `key`, each ended by
/// CRLF, for a caller writing the rest of the head itself.
pub fn upgrade_lines(key: &str) -> String {
    format!(
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Version: {VERSION}\r\n"
    )
}

/// Checks the server's answer to the request made with `key`. On success,
/// the length of the head: the frames start right after it, possibly in `buf`.
pub fn parse_response(buf: &[u8], key: &str) -> Result<Status<usize>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEADER_BLOCK => {
            return Ok(Status::Partial)
        }
        _ => return Err(HandshakeError::Malformed),
    };
    if resp.version != Some(1) {
        return Err(HandshakeError::Malformed);
    }
    match resp.code {
        Some(101) => {}
        Some(code) => return Err(HandshakeError::Status(code)),
        None => return Err(HandshakeError::Malformed),
    }
    let value = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    if !value("Upgrade").is_some_and(|v| has_token(v, "websocket")) {
        return Err(HandshakeError::Upgrade);
    }
    if !value("Connection").is_some_and(|v| has_token(v, "upgrade")) {
        return Err(HandshakeError::Connection);
    }
    if value("Sec-WebSocket-Accept").map(str::trim) != Some(accept_key(key).as_str()) {
        return Err(HandshakeError::Accept);
    }
    if value("Sec-WebSocket-Extensions").is_some_and(|v| !v.trim().is_empty()) {
        return Err(HandshakeError::Extension);
    }
    Ok(Status::Complete(len))
}

/// A whole text message in one frame, masked with `mask`.
pub fn text(payload: &str, mask: [u8; 4]) -> Bytes {
    encode::frame(true, Opcode::Text, payload.as_bytes(), Some(mask))
}

/// One masked frame: for fragments, `Opcode::Text` first, then
/// `Opcode::Continuation`, with `fin` on the last.
pub fn frame(fin: bool, opcode: Opcode, payload: &[u8], mask: [u8; 4]) -> Bytes {
    encode::frame(fin, opcode, payload, Some(mask))
}

/// A masked ping.
///
/// # Panics
/// If `payload` is longer than [`encode::MAX_CONTROL`].
pub fn ping(payload: &[u8], mask: [u8; 4]) -> Bytes {
    control(Opcode::Ping, payload, Some(mask))
}

/// A masked pong.
///
/// # Panics
/// If `payload` is longer than [`encode::MAX_CONTROL`].
pub fn pong(payload: &[u8], mask: [u8; 4]) -> Bytes {
    control(Opcode::Pong, payload, Some(mask))
}

/// A masked close with `code` and `reason` (cut to [`close::MAX_REASON`] bytes).
pub fn close(code: u16, reason: &str, mask: [u8; 4]) -> Bytes {
    encode::frame(
        true,
        Opcode::Close,
        &close::payload(code, reason),
        Some(mask),
    )
}
