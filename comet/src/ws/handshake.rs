//! The opening handshake, server side (RFC 6455 section 4.2).
//!
//! The caller hands in the few header values that matter, as plain strings,
//! so this check does not depend on how the request head was parsed. A header
//! sent more than once should be passed joined with commas (RFC 9110 section
//! 5.3), which is what the token lists below expect.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use sha1::{Digest, Sha1};

/// Appended to the client's key before hashing (RFC 6455 section 1.3).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version spoken.
pub const VERSION: &str = "13";

/// The handshake-relevant parts of an upgrade request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request<'a> {
    /// The method token as sent (`GET`, case-sensitive).
    pub method: &'a str,
    /// HTTP/1.1 or a later 1.x: HTTP/1.0 has no upgrade.
    pub http11: bool,
    pub upgrade: Option<&'a str>,
    pub connection: Option<&'a str>,
    /// `Sec-WebSocket-Key`.
    pub key: Option<&'a str>,
    /// `Sec-WebSocket-Version`.
    pub version: Option<&'a str>,
    pub origin: Option<&'a str>,
}

/// An accepted handshake: the value of `Sec-WebSocket-Accept`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    value: String,
}

/// Why an upgrade request was refused. Each maps to one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not `GET`: `400`.
    Method,
    /// HTTP/1.0: `400`.
    HttpVersion,
    /// `Upgrade` does not name `websocket`: `400`.
    Upgrade,
    /// `Connection` does not name `upgrade`: `400`.
    Connection,
    /// `Sec-WebSocket-Version` is missing or not 13: `426`, naming 13.
    Version,
    /// `Sec-WebSocket-Key` is missing or not the base64 of 16 bytes: `400`.
    Key,
    /// An allowed origin is configured and `Origin` is missing or another: `403`.
    Origin,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Version => 426,
            Refusal::Origin => 403,
            _ => 400,
        }
    }

    /// Headers the refusal must carry besides the usual ones.
    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Refusal::Version => &[("Sec-WebSocket-Version", VERSION)],
            _ => &[],
        }
    }

    /// A one-line body for people reading the response.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Method => "a WebSocket upgrade must be a GET",
            Refusal::HttpVersion => "a WebSocket upgrade needs HTTP/1.1",
            Refusal::Upgrade => "Upgrade must name websocket",
            Refusal::Connection => "Connection must name Upgrade",
            Refusal::Version => "Sec-WebSocket-Version must be 13",
            Refusal::Key => "Sec-WebSocket-Key must be the base64 of 16 bytes",
            Refusal::Origin => "origin not allowed",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message(), self.status())
    }
}

impl std::error::Error for Refusal {}

/// Whether a request asks for a WebSocket, whatever else is wrong with it.
pub fn is_upgrade(upgrade: Option<&str>) -> bool {
    upgrade.is_some_and(|u| has_token(u, "websocket"))
}

/// Accepts `req` or says why not. With `allowed_origin`, `Origin` must equal
/// it (ASCII case aside); without, any origin or none is accepted.
///
/// The checks run in this order: method, HTTP version, `Upgrade`,
/// `Connection`, version, key, origin; the first failure is reported.
pub fn accept(req: &Request<'_>, allowed_origin: Option<&str>) -> Result<Accept, Refusal> {
    if req.method != "GET" {
        return Err(Refusal::Method);
    }
    if !req.http11 {
        return Err(Refusal::HttpVersion);
    }
    if !is_upgrade(req.upgrade) {
        return Err(Refusal::Upgrade);
    }
    if !req.connection.is_some_and(|c| has_token(c, "upgrade")) {
        return Err(Refusal::Connection);
    }
    if req.version.map(str::trim) != Some(VERSION) {
        return Err(Refusal::Version);
    }
    let key = req.key.map(str::trim).ok_or(Refusal::Key)?;
    if !is_valid_key(key) {
        return Err(Refusal::Key);
    }
    if let Some(allowed) = allowed_origin {
        if !req
            .origin
            .is_some_and(|o| o.trim().eq_ignore_ascii_case(allowed))
        {
            return Err(Refusal::Origin);
        }
    }
    Ok(Accept {
        value: accept_key(key),
    })
}

impl Accept {
    /// The `Sec-WebSocket-Accept` value.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The whole `101` response head. No `Sec-WebSocket-Extensions`: an
    /// offer of `permessage-deflate` is declined by leaving it unanswered.
    pub fn response_head(&self) -> Bytes {
        Bytes::from(format!(
            "HTTP/1.1 101 Switching Protocols\r\nServer: cometbench\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            self.value
        ))
    }
}

/// `base64(SHA-1(key + GUID))`: what proves the server read the key.
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// A key is the base64 of exactly 16 bytes: 24 characters with `==`.
fn is_valid_key(key: &str) -> bool {
    // 18 is what the decoder asks room for from 24 characters.
    let mut out = [0u8; 18];
    STANDARD.decode_slice(key, &mut out) == Ok(16)
}

/// Whether the comma-separated `list` holds `token`, ASCII case aside.
pub(crate) fn has_token(list: &str, token: &str) -> bool {
    list.split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}
