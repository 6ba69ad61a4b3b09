//! The five Comet transports and their framing.
//!
//! Every frame is encoded once per message and transport (see [`crate::Message`]);
//! this module holds the encoders, the static pieces (preludes, heartbeats) and
//! the JSON escaping that keeps a message inside an iframe's script element.

use bytes::Bytes;

/// How a subscriber receives messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// XHR long-polling: one JSON array per request.
    Longpoll,
    /// Server-Sent Events.
    Sse,
    /// XHR streaming: newline-delimited JSON.
    Stream,
    /// Forever iframe / htmlfile: script tags.
    Iframe,
    /// WebSocket (RFC 6455): one text frame per message, and the client's
    /// text frames are publishes (see [`crate::ws`]).
    Ws,
}

impl Transport {
    pub const ALL: [Transport; 5] = [
        Transport::Longpoll,
        Transport::Sse,
        Transport::Stream,
        Transport::Iframe,
        Transport::Ws,
    ];

    /// The name used in `?transport=`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Longpoll => "longpoll",
            Transport::Sse => "sse",
            Transport::Stream => "stream",
            Transport::Iframe => "iframe",
            Transport::Ws => "ws",
        }
    }

    pub fn from_name(name: &str) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The response's `Content-Type`; a WebSocket's `101` has none.
    pub fn content_type(self) -> Option<&'static str> {
        match self {
            Transport::Longpoll => Some("application/json"),
            Transport::Sse => Some("text/event-stream"),
            Transport::Stream => Some("application/x-ndjson"),
            Transport::Iframe => Some("text/html; charset=utf-8"),
            Transport::Ws => None,
        }
    }

    /// Whether the response is a never-ending stream (every transport but long-poll).
    pub fn is_streaming(self) -> bool {
        self != Transport::Longpoll
    }
}

/// One message's encoding for one way of sending it. Indexes [`crate::Message`]'s
/// frame cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// `{"id":N,"data":"..."}`: an element of a long-poll array.
    Object,
    /// A streaming transport's event; `chunked` wraps it as one HTTP/1.1 chunk.
    Stream { transport: Transport, chunked: bool },
}

impl Frame {
    pub(crate) const COUNT: usize = 8;

    pub(crate) fn index(self) -> usize {
        match self {
            Frame::Object => 0,
            // A WebSocket frame is never chunked.
            Frame::Stream {
                transport: Transport::Ws,
                ..
            } => 7,
            Frame::Stream { transport, chunked } => {
                let t = match transport {
                    Transport::Sse => 0,
                    Transport::Stream => 1,
                    // Long-poll never streams; folding it onto iframe keeps the table small.
                    Transport::Iframe | Transport::Longpoll | Transport::Ws => 2,
                };
                1 + t * 2 + chunked as usize
            }
        }
    }
}

/// `{"id":N,"data":"..."}` with `data` as a JSON string.
pub fn encode_object(id: u64, data: &str) -> String {
    let mut s = String::with_capacity(data.len() + 24);
    s.push_str("{\"id\":");
    s.push_str(&id.to_string());
    s.push_str(",\"data\":");
    s.push_str(&serde_json::to_string(data).expect("a str always serialises"));
    s.push('}');
    s
}

/// Escapes JSON text so that it is inert inside an HTML `<script>` element:
/// `<`, `>`, `&`, U+2028 and U+2029 become `\uXXXX` escapes. Valid only for JSON,
/// where these characters can occur only inside strings.
pub fn escape_for_script(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The event of `transport` for one message, before any chunk framing (a
/// WebSocket's is its whole text frame).
pub fn encode_event(transport: Transport, id: u64, data: &str) -> Vec<u8> {
    match transport {
        Transport::Ws => crate::ws::encode::message(id, data).to_vec(),
        Transport::Sse => {
            let mut s = format!("id: {id}\n");
            for line in split_lines(data) {
                s.push_str("data: ");
                s.push_str(line);
                s.push('\n');
            }
            s.push('\n');
            s.into_bytes()
        }
        Transport::Stream => {
            let mut s = encode_object(id, data);
            s.push('\n');
            s.into_bytes()
        }
        Transport::Iframe | Transport::Longpoll => script(&encode_object(id, data)).into_bytes(),
    }
}

/// Lines of `data` as SSE sees them: split at CRLF, CR or LF.
fn split_lines(data: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let s = rest?;
        match s.find(['\r', '\n']) {
            Some(i) => {
                let skip = if s[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&s[i + skip..]);
                Some(&s[..i])
            }
            None => {
                rest = None;
                Some(s)
            }
        }
    })
}

fn script(json: &str) -> String {
    format!(
        "<script>parent.comet({});</script>\n",
        escape_for_script(json)
    )
}

/// Wraps `body` as one HTTP/1.1 chunk.
pub fn chunk(body: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
    out
}

fn maybe_chunk(body: Vec<u8>, chunked: bool) -> Bytes {
    if chunked {
        Bytes::from(chunk(&body))
    } else {
        Bytes::from(body)
    }
}

/// What a streaming transport sends first, after the response head.
pub fn prelude(transport: Transport, retry_ms: u64, chunked: bool) -> Option<Bytes> {
    let body = match transport {
        Transport::Longpoll | Transport::Stream | Transport::Ws => return None,
        Transport::Sse => format!("retry: {retry_ms}\n\n").into_bytes(),
        Transport::Iframe => {
            // Browsers start rendering (and running scripts) only after some
            // kilobytes; the padding makes the first message show at once.
            let mut s = String::from(
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>comet</title></head><body>\n<!--",
            );
            s.push_str(&" ".repeat(1024));
            s.push_str("-->\n");
            s.into_bytes()
        }
    };
    Some(maybe_chunk(body, chunked))
}

/// A heartbeat for a streaming transport (a WebSocket's is a ping).
pub fn heartbeat(transport: Transport, chunked: bool) -> Bytes {
    let body: &[u8] = match transport {
        Transport::Ws => return crate::ws::encode::ping(b""),
        Transport::Sse => b":\n\n",
        Transport::Stream => b"\n",
        Transport::Iframe | Transport::Longpoll => b"<!-- -->\n",
    };
    maybe_chunk(body.to_vec(), chunked)
}

/// The notice that `missed` messages after `since` left the backlog.
pub fn missed_notice(transport: Transport, missed: u64, chunked: bool) -> Bytes {
    let body = match transport {
        Transport::Ws => return crate::ws::encode::text(&format!("{{\"missed\":{missed}}}")),
        Transport::Sse => format!(": missed {missed}\n\n").into_bytes(),
        Transport::Stream => format!("{{\"missed\":{missed}}}\n").into_bytes(),
        Transport::Iframe | Transport::Longpoll => {
            script(&format!("{{\"missed\":{missed}}}")).into_bytes()
        }
    };
    maybe_chunk(body, chunked)
}

/// Encodes one frame of a message.
pub(crate) fn encode_frame(frame: Frame, id: u64, data: &str) -> Bytes {
    match frame {
        Frame::Object => Bytes::from(encode_object(id, data)),
        Frame::Stream {
            transport: Transport::Ws,
            ..
        } => crate::ws::encode::message(id, data),
        Frame::Stream { transport, chunked } => {
            maybe_chunk(encode_event(transport, id, data), chunked)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_lines() {
        assert_eq!(
            encode_event(Transport::Sse, 3, "a\nb\r\nc\rd"),
            b"id: 3\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(encode_event(Transport::Sse, 1, ""), b"id: 1\ndata: \n\n");
    }

    #[test]
    fn script_escape() {
        let e = String::from_utf8(encode_event(
            Transport::Iframe,
            1,
            "</script><script>alert(1)</script>&\u{2028}\u{2029}",
        ))
        .unwrap();
        let inner = e
            .strip_prefix("<script>parent.comet(")
            .unwrap()
            .strip_suffix(");</script>\n")
            .unwrap();
        assert!(
            !inner.contains(['<', '>', '&', '\u{2028}', '\u{2029}']),
            "{inner}"
        );
        let v: serde_json::Value = serde_json::from_str(inner).unwrap();
        assert_eq!(
            v["data"],
            "</script><script>alert(1)</script>&\u{2028}\u{2029}"
        );
    }

    #[test]
    fn chunks() {
        assert_eq!(chunk(b"hello world 1234"), b"10\r\nhello world 1234\r\n");
        let p = prelude(Transport::Iframe, 0, false).unwrap();
        assert!(p.len() >= 1024);
    }

    #[test]
    fn frame_indexes_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        seen.insert(Frame::Object.index());
        assert!(seen.insert(
            Frame::Stream {
                transport: Transport::Ws,
                chunked: false
            }
            .index()
        ));
        for t in [Transport::Sse, Transport::Stream, Transport::Iframe] {
            for chunked in [false, true] {
                assert!(seen.insert(
                    Frame::Stream {
                        transport: t,
                        chunked
                    }
                    .index()
                ));
            }
        }
        assert!(seen.iter().all(|&i| i < Frame::COUNT));
    }
}
