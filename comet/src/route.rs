//! Routing: from a request head to one of the protocol's operations.

use crate::request::{Head, Method};
use crate::transport::Transport;

/// Longest channel name, in bytes.
pub const MAX_CHANNEL: usize = 64;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /sub/{channel}`.
    Subscribe {
        channel: String,
        transport: Transport,
        /// Replay messages after this id (`Last-Event-ID` wins over `?since=`).
        since: Option<u64>,
        /// `?timeout=` seconds for long-poll, uncapped here.
        timeout: Option<u64>,
        /// `?token=`: the publish token of a WebSocket, whose browser
        /// client cannot set `Authorization`.
        token: Option<String>,
    },
    /// `POST /pub/{channel}`.
    Publish { channel: String },
    /// `GET /stats`.
    Stats,
    /// `OPTIONS` on a known path: a CORS preflight.
    Preflight,
    /// `GET /` or `GET /chat`: the chat page (`crate::page`).
    Page,
}

/// A request that routes nowhere. Each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No such path: `404`.
    NotFound,
    /// The path exists but not for this method: `405` with this `Allow` value.
    MethodNotAllowed(&'static str),
    /// A bad channel name or query parameter: `400` with this reason.
    BadRequest(&'static str),
}

impl RouteError {
    pub fn status(&self) -> u16 {
        match self {
            RouteError::NotFound => 404,
            RouteError::MethodNotAllowed(_) => 405,
            RouteError::BadRequest(_) => 400,
        }
    }
}

/// `true` when `name` is 1-64 of `[A-Za-z0-9_.-]`.
pub fn is_valid_channel(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHANNEL
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Routes a parsed head.
pub fn route(head: &Head) -> Result<Route, RouteError> {
    let (path, query) = match head.target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (head.target.as_str(), ""),
    };
    let (kind, channel) = if let Some(c) = path.strip_prefix("/sub/") {
        ("sub", c)
    } else if let Some(c) = path.strip_prefix("/pub/") {
        ("pub", c)
    } else if path == "/stats" {
        ("stats", "")
    } else if path == "/" || path == "/chat" {
        ("page", "")
    } else {
        return Err(RouteError::NotFound);
    };
    let allow = match kind {
        "pub" => "POST, OPTIONS",
        _ => "GET, OPTIONS",
    };
    match (head.method, kind) {
        (Method::Options, _) => return Ok(Route::Preflight),
        (Method::Get, "sub" | "stats" | "page") | (Method::Post, "pub") => {}
        _ => return Err(RouteError::MethodNotAllowed(allow)),
    }
    match kind {
        "stats" => return Ok(Route::Stats),
        "page" => return Ok(Route::Page),
        _ => {}
    }
    if !is_valid_channel(channel) {
        return Err(RouteError::BadRequest("invalid channel name"));
    }
    let channel = channel.to_string();
    if kind == "pub" {
        return Ok(Route::Publish { channel });
    }
    let mut transport = None;
    let mut since = None;
    let mut timeout = None;
    let mut token = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "transport" => {
                transport = Some(
                    Transport::from_name(v).ok_or(RouteError::BadRequest("unknown transport"))?,
                )
            }
            "since" => since = Some(parse_u64(v).ok_or(RouteError::BadRequest("bad since"))?),
            "timeout" => timeout = Some(parse_u64(v).ok_or(RouteError::BadRequest("bad timeout"))?),
            "token" => token = Some(v.to_string()),
            _ => {}
        }
    }
    if let Some(id) = &head.last_event_id {
        since = Some(parse_u64(id).ok_or(RouteError::BadRequest("bad Last-Event-ID"))?);
    }
    // A named transport wins over an `Upgrade` header, which a server may
    // ignore (RFC 9110 section 7.8).
    let transport = transport.unwrap_or(if head.upgrade.is_requested() {
        Transport::Ws
    } else if head.accepts_sse {
        Transport::Sse
    } else {
        Transport::Longpoll
    });
    Ok(Route::Subscribe {
        channel,
        transport,
        since,
        timeout,
        token,
    })
}

/// A non-negative decimal integer, without sign or spaces.
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{parse_head, Status};

    fn r(req: &str) -> Result<Route, RouteError> {
        match parse_head(req.as_bytes()).unwrap() {
            Status::Complete(h) => route(&h),
            Status::Partial => panic!("partial"),
        }
    }

    #[test]
    fn table() {
        use Transport::*;
        let sub = |c: &str, t, s, to| {
            Ok(Route::Subscribe {
                channel: c.into(),
                transport: t,
                since: s,
                timeout: to,
                token: None,
            })
        };
        let cases =
            vec![
            (
                "GET /sub/a HTTP/1.1\r\n\r\n",
                sub("a", Longpoll, None, None),
            ),
            (
                "GET /sub/a HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n",
                sub("a", Sse, None, None),
            ),
            (
                "GET /sub/a.b-c_D9?transport=iframe&since=3&timeout=5 HTTP/1.1\r\n\r\n",
                sub("a.b-c_D9", Iframe, Some(3), Some(5)),
            ),
            (
                "GET /sub/a?transport=sse&since=3 HTTP/1.1\r\nLast-Event-ID: 9\r\n\r\n",
                sub("a", Sse, Some(9), None),
            ),
            (
                "GET /sub/a?transport=stream HTTP/1.1\r\n\r\n",
                sub("a", Stream, None, None),
            ),
            (
                "GET /sub/a?transport=ws HTTP/1.1\r\n\r\n",
                sub("a", Ws, None, None),
            ),
            (
                "GET /sub/a HTTP/1.1\r\nUpgrade: websocket\r\nAccept: text/event-stream\r\n\r\n",
                sub("a", Ws, None, None),
            ),
            (
                "GET /sub/a?since=4 HTTP/1.1\r\nUpgrade: WebSocket\r\n\r\n",
                sub("a", Ws, Some(4), None),
            ),
            (
                "GET /sub/a?transport=sse HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
                sub("a", Sse, None, None),
            ),
            (
                "GET /sub/a HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
                sub("a", Longpoll, None, None),
            ),
            (
                "GET /sub/a?transport=websocket HTTP/1.1\r\n\r\n",
                Err(RouteError::BadRequest("unknown transport")),
            ),
            (
                "GET /sub/a?since=-1 HTTP/1.1\r\n\r\n",
                Err(RouteError::BadRequest("bad since")),
            ),
            (
                "GET /sub/a?timeout=x HTTP/1.1\r\n\r\n",
                Err(RouteError::BadRequest("bad timeout")),
            ),
            (
                "GET /sub/a HTTP/1.1\r\nLast-Event-ID: 1:2\r\n\r\n",
                Err(RouteError::BadRequest("bad Last-Event-ID")),
            ),
            (
                "GET /sub/ HTTP/1.1\r\n\r\n",
                Err(RouteError::BadRequest("invalid channel name")),
            ),
            (
                "GET /sub/a%2F HTTP/1.1\r\n\r\n",
                Err(RouteError::BadRequest("invalid channel name")),
            ),
            (
                "GET /sub/../etc HTTP/1.1\r\n\r\n",
                Err(RouteError::BadRequest("invalid channel name")),
            ),
            (
                &*Box::leak(
                    format!("GET /sub/{} HTTP/1.1\r\n\r\n", "x".repeat(65)).into_boxed_str(),
                ),
                Err(RouteError::BadRequest("invalid channel name")),
            ),
            (
                "POST /pub/a HTTP/1.1\r\n\r\n",
                Ok(Route::Publish {
                    channel: "a".into(),
                }),
            ),
            (
                "GET /pub/a HTTP/1.1\r\n\r\n",
                Err(RouteError::MethodNotAllowed("POST, OPTIONS")),
            ),
            (
                "POST /sub/a HTTP/1.1\r\n\r\n",
                Err(RouteError::MethodNotAllowed("GET, OPTIONS")),
            ),
            (
                "DELETE /stats HTTP/1.1\r\n\r\n",
                Err(RouteError::MethodNotAllowed("GET, OPTIONS")),
            ),
            ("GET /stats HTTP/1.1\r\n\r\n", Ok(Route::Stats)),
            ("OPTIONS /pub/a HTTP/1.1\r\n\r\n", Ok(Route::Preflight)),
            (
                "GET /etc/passwd HTTP/1.1\r\n\r\n",
                Err(RouteError::NotFound),
            ),
            ("GET / HTTP/1.1\r\n\r\n", Ok(Route::Page)),
            (
                "GET /chat?server=http://127.0.0.1:1&room=a HTTP/1.1\r\n\r\n",
                Ok(Route::Page),
            ),
            (
                "POST /chat HTTP/1.1\r\n\r\n",
                Err(RouteError::MethodNotAllowed("GET, OPTIONS")),
            ),
            ("GET /chat/x HTTP/1.1\r\n\r\n", Err(RouteError::NotFound)),
            ("GET /index.html HTTP/1.1\r\n\r\n", Err(RouteError::NotFound)),
        ];
        for (req, want) in cases {
            assert_eq!(r(req), want, "{req:?}");
        }
    }

    #[test]
    fn a_token_in_the_query_is_kept() {
        let got = r("GET /sub/a?transport=ws&token=s3cret&since=2 HTTP/1.1\r\n\r\n");
        assert!(
            matches!(&got, Ok(Route::Subscribe { token: Some(t), since: Some(2), .. }) if t == "s3cret"),
            "{got:?}"
        );
    }
}
