//! HTTP/1.1 request heads: parsing with hard size caps.
//!
//! Built on `httparse`; this module adds the limits of the wire protocol
//! (`docs/DESIGN.md`: request line 8 KiB, header block 8 KiB) and extracts
//! the few headers the core uses.

/// Longest request line accepted, in bytes (longer is `414`).
pub const MAX_REQUEST_LINE: usize = 8192;
/// Largest header block accepted, in bytes (larger is `431`).
pub const MAX_HEADER_BLOCK: usize = 8192;
/// Most header fields accepted (more is `431`).
pub const MAX_HEADERS: usize = 64;

/// Result of a parse that may need more bytes, like `httparse::Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole item was parsed.
    Complete(T),
    /// More bytes are needed; nothing was consumed.
    Partial,
}

/// Request methods the protocol knows; anything else is kept for `405`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Options,
    Head,
    /// Any other token; answered `405`.
    Other,
}

/// A parsed request head and the headers the protocol reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: Method,
    /// The request target as sent: path and query.
    pub target: String,
    /// `true` for HTTP/1.0.
    pub http10: bool,
    /// Whether the connection may stay open after the response.
    pub keep_alive: bool,
    pub content_length: Option<usize>,
    /// A `Transfer-Encoding` header was present (request bodies must use `Content-Length`).
    pub transfer_encoding: bool,
    /// `Accept` names `text/event-stream`.
    pub accepts_sse: bool,
    pub last_event_id: Option<String>,
    pub authorization: Option<String>,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// What a WebSocket upgrade needs: each header as sent, a header sent
    /// more than once joined with commas (RFC 9110 section 5.3).
    pub upgrade: Upgrade,
    /// Bytes of the buffer the head occupied, including the blank line.
    pub len: usize,
}

/// The headers of a WebSocket upgrade (RFC 6455 section 4.1), unchecked:
/// [`crate::ws::handshake::accept`] judges them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upgrade {
    pub upgrade: Option<String>,
    /// `Connection`, as sent: the upgrade needs its `Upgrade` token.
    pub connection: Option<String>,
    /// `Sec-WebSocket-Key`.
    pub key: Option<String>,
    /// `Sec-WebSocket-Version`.
    pub version: Option<String>,
    pub origin: Option<String>,
}

impl Upgrade {
    /// Whether the request asks for a WebSocket, whatever else is wrong with it.
    pub fn is_requested(&self) -> bool {
        crate::ws::handshake::is_upgrade(self.upgrade.as_deref())
    }
}

/// Appends `value` to a header kept so far, comma-separated.
fn join(slot: &mut Option<String>, value: &str) {
    match slot {
        Some(s) => {
            s.push_str(", ");
            s.push_str(value);
        }
        None => *slot = Some(value.to_string()),
    }
}

/// Why a request head was refused. Each maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// The request line is longer than [`MAX_REQUEST_LINE`]: `414`.
    UriTooLong,
    /// The header block is larger than [`MAX_HEADER_BLOCK`] or has too many fields: `431`.
    HeadersTooLarge,
    /// Not HTTP/1.x, or malformed syntax, or conflicting lengths: `400`.
    Malformed,
}

impl HeadError {
    /// The status this error is answered with.
    pub fn status(self) -> u16 {
        match self {
            HeadError::UriTooLong => 414,
            HeadError::HeadersTooLarge => 431,
            HeadError::Malformed => 400,
        }
    }
}

/// Parses one request head at the start of `buf`.
///
/// Leading empty lines are skipped (RFC 9112 section 2.2) and counted in `len`.
/// The caps are on bytes received, so an over-long line is refused before it ends.
pub fn parse_head(buf: &[u8]) -> Result<Status<Head>, HeadError> {
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    let rest = &buf[skip..];
    let line_end = match memchr(b'\n', rest) {
        Some(i) if i > MAX_REQUEST_LINE => return Err(HeadError::UriTooLong),
        Some(i) => i + 1,
        None if rest.len() > MAX_REQUEST_LINE => return Err(HeadError::UriTooLong),
        None => return Ok(Status::Partial),
    };
    let block_end = match find_blank_line(&rest[line_end..]) {
        Some(i) if i > MAX_HEADER_BLOCK => return Err(HeadError::HeadersTooLarge),
        Some(i) => line_end + i,
        None if rest.len() - line_end > MAX_HEADER_BLOCK => return Err(HeadError::HeadersTooLarge),
        None => return Ok(Status::Partial),
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(&rest[..block_end]) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::HeadersTooLarge),
        Err(_) => return Err(HeadError::Malformed),
    };
    let method = match req.method.unwrap_or("") {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "OPTIONS" => Method::Options,
        "HEAD" => Method::Head,
        _ => Method::Other,
    };
    let http10 = req.version == Some(0);
    let mut head = Head {
        method,
        target: req.path.unwrap_or("").to_string(),
        http10,
        keep_alive: !http10,
        content_length: None,
        transfer_encoding: false,
        accepts_sse: false,
        last_event_id: None,
        authorization: None,
        expect_continue: false,
        upgrade: Upgrade::default(),
        len: skip + n,
    };
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| HeadError::Malformed)?;
        let value = value.trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let len = parse_content_length(value)?;
            if head.content_length.is_some_and(|l| l != len) {
                return Err(HeadError::Malformed);
            }
            head.content_length = Some(len);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("connection") {
            join(&mut head.upgrade.connection, value);
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("accept") {
            head.accepts_sse |= value
                .split(',')
                .any(|v| v.trim().starts_with("text/event-stream"));
        } else if name.eq_ignore_ascii_case("last-event-id") {
            head.last_event_id = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("authorization") {
            head.authorization = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("upgrade") {
            join(&mut head.upgrade.upgrade, value);
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            join(&mut head.upgrade.key, value);
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            join(&mut head.upgrade.version, value);
        } else if name.eq_ignore_ascii_case("origin") {
            join(&mut head.upgrade.origin, value);
        }
    }
    // A length and a transfer coding together is the request-smuggling shape.
    if head.transfer_encoding && head.content_length.is_some() {
        return Err(HeadError::Malformed);
    }
    Ok(Status::Complete(head))
}

/// `Content-Length` is `1*DIGIT` (RFC 9110 section 8.6). `usize::from_str`
/// alone would also take a leading `+`, and a length two parsers read
/// differently is how requests get smuggled past a proxy.
fn parse_content_length(value: &str) -> Result<usize, HeadError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeadError::Malformed);
    }
    // Only digits are left, so the one error is overflow.
    value.parse().map_err(|_| HeadError::Malformed)
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

/// Offset just past the first empty line (`\r\n` or `\n`) of a header block,
/// where the block may also be empty.
fn find_blank_line(block: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    while let Some(i) = memchr(b'\n', &block[line_start..]) {
        let line = &block[line_start..line_start + i];
        if line.is_empty() || line == b"\r" {
            return Some(line_start + i + 1);
        }
        line_start += i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Head {
        match parse_head(s.as_bytes()) {
            Ok(Status::Complete(h)) => h,
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn table() {
        let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST_LINE));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            (0..MAX_HEADERS + 1)
                .map(|i| format!("X-{i}: v\r\n"))
                .collect::<String>()
        );
        let big = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "b".repeat(MAX_HEADER_BLOCK)
        );
        type Case<'a> = (&'a str, &'a str, Result<Option<()>, HeadError>);
        let cases: Vec<Case> =
            vec![
            ("simple", "GET /stats HTTP/1.1\r\nHost: x\r\n\r\n", Ok(Some(()))),
            ("bare LF", "GET /stats HTTP/1.1\nHost: x\n\n", Ok(Some(()))),
            ("no headers", "GET / HTTP/1.1\r\n\r\n", Ok(Some(()))),
            ("leading CRLF", "\r\n\r\nGET / HTTP/1.1\r\n\r\n", Ok(Some(()))),
            ("partial line", "GET /sub/a HT", Ok(None)),
            ("partial headers", "GET / HTTP/1.1\r\nHost: x\r\n", Ok(None)),
            ("empty", "", Ok(None)),
            ("bad version", "GET / HTTP/2.0\r\n\r\n", Err(HeadError::Malformed)),
            ("garbage", "\x01\x02 nonsense\r\n\r\n", Err(HeadError::Malformed)),
            ("bad header", "GET / HTTP/1.1\r\nNo colon\r\n\r\n", Err(HeadError::Malformed)),
            (
                "two lengths",
                "POST /pub/a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                Err(HeadError::Malformed),
            ),
            (
                "length and chunked",
                "POST /pub/a HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(HeadError::Malformed),
            ),
            (
                "bad length",
                "POST /pub/a HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                Err(HeadError::Malformed),
            ),
            ("long line", &long_line, Err(HeadError::UriTooLong)),
            ("long line partial", &long_line[..MAX_REQUEST_LINE + 10], Err(HeadError::UriTooLong)),
            ("too many headers", &many, Err(HeadError::HeadersTooLarge)),
            ("big block", &big, Err(HeadError::HeadersTooLarge)),
            ("big block partial", &big[..big.len() - 4], Err(HeadError::HeadersTooLarge)),
        ];
        for (name, input, want) in cases {
            let got = parse_head(input.as_bytes()).map(|s| match s {
                Status::Complete(_) => Some(()),
                Status::Partial => None,
            });
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn fields() {
        let h = head(
            "POST /pub/room HTTP/1.1\r\nContent-Length: 5\r\nAuthorization: Bearer t\r\n\
             Expect: 100-continue\r\nAccept: text/html, text/event-stream\r\nLast-Event-ID: 7\r\n\r\nhello",
        );
        assert_eq!(h.method, Method::Post);
        assert_eq!(h.target, "/pub/room");
        assert_eq!(h.content_length, Some(5));
        assert_eq!(h.authorization.as_deref(), Some("Bearer t"));
        assert!(h.expect_continue && h.accepts_sse && h.keep_alive && !h.http10);
        assert_eq!(h.last_event_id.as_deref(), Some("7"));
        assert_eq!(h.len, "POST /pub/room HTTP/1.1\r\nContent-Length: 5\r\nAuthorization: Bearer t\r\nExpect: 100-continue\r\nAccept: text/html, text/event-stream\r\nLast-Event-ID: 7\r\n\r\n".len());
    }

    #[test]
    fn content_length_is_digits_only() {
        // httparse trims the value's surrounding whitespace; what is left must
        // be 1*DIGIT, not whatever `usize::from_str` takes.
        let cases: [(&str, Option<usize>); 14] = [
            ("5", Some(5)),
            ("0", Some(0)),
            ("007", Some(7)),
            ("  5  ", Some(5)),
            ("+5", None),
            ("-1", None),
            ("-0", None),
            ("5 5", None),
            ("0x10", None),
            ("1e3", None),
            ("5,5", None),
            ("", None),
            ("\u{0665}", None),
            ("99999999999999999999999999", None),
        ];
        for (value, want) in cases {
            let req = format!("POST /pub/a HTTP/1.1\r\nContent-Length: {value}\r\n\r\n");
            let got = match parse_head(req.as_bytes()) {
                Ok(Status::Complete(h)) => Ok(h.content_length),
                other => other.map(|_| None),
            };
            match want {
                Some(n) => assert_eq!(got, Ok(Some(n)), "{value:?}"),
                None => assert_eq!(got, Err(HeadError::Malformed), "{value:?}"),
            }
        }
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\n\r\n").http10);
    }
}
