//! The client side: request builders and incremental decoders for every
//! transport, as the load generator and the tests read the server.
//!
//! Decoders take bytes as they arrive, in pieces of any size, and return what
//! became complete. They never panic on bad input: they return [`DecodeError`].
//!
//! # Dialects
//! Besides this workbench's own protocol (`docs/DESIGN.md`, "Wire protocol"), the decoders
//! read the peers it is compared with where their wire format differs
//! ([`Dialect`]): a message without an integer id of ours becomes
//! [`Item::Opaque`], and the client checks continuity by other means (the
//! load generator: a sequence number its publisher puts in every message).

use crate::request::Status;
use crate::transport::Transport;

mod ws;

pub use ws::WsReader;

/// A response or frame the client could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The response head is not HTTP/1.x.
    BadHead,
    /// A chunk size line is malformed.
    BadChunk,
    /// A frame's JSON or fields are malformed; the text says which.
    BadFrame(String),
    /// A WebSocket's `101` did not accept the handshake; the text says why.
    BadHandshake(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::BadHead => write!(f, "malformed response head"),
            DecodeError::BadChunk => write!(f, "malformed chunk"),
            DecodeError::BadFrame(s) => write!(f, "malformed frame: {s}"),
            DecodeError::BadHandshake(s) => write!(f, "WebSocket handshake refused: {s}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Whose wire format a subscriber reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// This workbench's protocol: every message carries an integer id 1, 2, 3 ...
    #[default]
    Comet,
    /// nginx + nchan. SSE events carry ids `TIME:INDEX`; a long-poll answer is
    /// one raw message whose id is in `Last-Modified` and `Etag` (sent back as
    /// `If-Modified-Since` and `If-None-Match` for the next one; a poll that
    /// times out is `408`); `stream` is nchan's `http-raw-stream`, raw messages
    /// each followed by a newline. No forever-iframe subscriber. Messages come
    /// out as [`Item::Opaque`].
    Nchan,
}

/// What a subscriber receives, whatever the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Message {
        id: u64,
        data: String,
    },
    /// A message without an integer id of ours (a peer's [`Dialect`]): `id`
    /// is the server's own (nchan: `TIME:INDEX`), when it gives one.
    Opaque {
        id: Option<String>,
        data: String,
    },
    /// `K` messages left the backlog before they could be replayed.
    Missed(u64),
    Heartbeat,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub content_type: Option<String>,
    pub content_length: Option<usize>,
    pub chunked: bool,
    pub close: bool,
    /// `X-Comet-Missed`.
    pub missed: Option<u64>,
    /// `Last-Modified` and `Etag` (nchan's long-poll message id).
    pub last_modified: Option<String>,
    pub etag: Option<String>,
    /// Bytes the head occupied.
    pub len: usize,
}

/// Parses a response head at the start of `buf`.
pub fn parse_response_head(buf: &[u8]) -> Result<Status<ResponseHead>, DecodeError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Status::Partial),
        Err(_) => return Err(DecodeError::BadHead),
    };
    let mut head = ResponseHead {
        status: resp.code.unwrap_or(0),
        content_type: None,
        content_length: None,
        chunked: false,
        close: resp.version == Some(0),
        missed: None,
        last_modified: None,
        etag: None,
        len,
    };
    for h in resp.headers.iter() {
        let v = String::from_utf8_lossy(h.value).trim().to_string();
        let n = h.name;
        if n.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(v);
        } else if n.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(v.parse().map_err(|_| DecodeError::BadHead)?);
        } else if n.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = v.to_ascii_lowercase().contains("chunked");
        } else if n.eq_ignore_ascii_case("connection") {
            head.close = v.eq_ignore_ascii_case("close");
        } else if n.eq_ignore_ascii_case("x-comet-missed") {
            head.missed = Some(v.parse().map_err(|_| DecodeError::BadHead)?);
        } else if n.eq_ignore_ascii_case("last-modified") {
            head.last_modified = Some(v);
        } else if n.eq_ignore_ascii_case("etag") {
            head.etag = Some(v);
        }
    }
    Ok(Status::Complete(head))
}

/// Decodes `Transfer-Encoding: chunked` bodies.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    /// Bytes of the current chunk still to come, plus its CRLF.
    remaining: usize,
    /// A size line (or CRLF after a chunk) split across reads.
    line: Vec<u8>,
    in_data: bool,
    done: bool,
}

impl ChunkedDecoder {
    /// Appends the body bytes found in `input` to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        while !input.is_empty() && !self.done {
            if self.in_data {
                // Data of the chunk, then its trailing CRLF (2 bytes, counted in `remaining`).
                let take = self.remaining.min(input.len());
                let data_left = self.remaining.saturating_sub(2);
                out.extend_from_slice(&input[..take.min(data_left)]);
                self.remaining -= take;
                input = &input[take..];
                if self.remaining == 0 {
                    self.in_data = false;
                }
                continue;
            }
            let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(input);
                if self.line.len() > 1024 {
                    return Err(DecodeError::BadChunk);
                }
                return Ok(());
            };
            self.line.extend_from_slice(&input[..nl]);
            input = &input[nl + 1..];
            let line = std::mem::take(&mut self.line);
            let text = std::str::from_utf8(&line).map_err(|_| DecodeError::BadChunk)?;
            let size = text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| DecodeError::BadChunk)?;
            if size == 0 {
                self.done = true;
            } else {
                self.remaining = size + 2;
                self.in_data = true;
            }
        }
        Ok(())
    }

    /// The last (zero-size) chunk arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// One thing an SSE stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    Event {
        id: Option<String>,
        data: String,
    },
    /// An event with an `event:` type but no `data:` (browsers dispatch
    /// nothing; nchan's pings are `event: ping`).
    Empty {
        event: String,
    },
    Comment(String),
    Retry(u64),
}

/// Decodes `text/event-stream` as the HTML standard says (fields `id`, `data`,
/// `retry`; comments; CRLF, CR or LF line ends).
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    /// The last byte was CR: an LF right after it ends nothing more.
    after_cr: bool,
}

impl SseDecoder {
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<SseItem>) {
        for &b in input {
            if self.after_cr && b == b'\n' {
                self.after_cr = false;
                continue;
            }
            self.after_cr = b == b'\r';
            if b == b'\r' || b == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.line_done(&String::from_utf8_lossy(&line), out);
            } else {
                self.line.push(b);
            }
        }
    }

    fn line_done(&mut self, line: &str, out: &mut Vec<SseItem>) {
        if line.is_empty() {
            let event = self.event.take();
            if let Some(data) = self.data.take() {
                out.push(SseItem::Event {
                    id: self.id.take(),
                    data,
                });
            } else if let Some(event) = event {
                out.push(SseItem::Empty { event });
            }
            return;
        }
        if let Some(c) = line.strip_prefix(':') {
            out.push(SseItem::Comment(c.trim_start().to_string()));
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "id" => self.id = Some(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            "retry" => {
                if let Ok(ms) = value.parse() {
                    out.push(SseItem::Retry(ms))
                }
            }
            _ => {}
        }
    }
}

pub(crate) fn parse_object(json: &str) -> Result<Item, DecodeError> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| DecodeError::BadFrame(e.to_string()))?;
    if let Some(k) = v.get("missed").and_then(|k| k.as_u64()) {
        return Ok(Item::Missed(k));
    }
    let id = v
        .get("id")
        .and_then(|i| i.as_u64())
        .ok_or_else(|| DecodeError::BadFrame(format!("no id in {json}")))?;
    let data = v
        .get("data")
        .and_then(|d| d.as_str())
        .ok_or_else(|| DecodeError::BadFrame(format!("no data in {json}")))?;
    Ok(Item::Message {
        id,
        data: data.to_string(),
    })
}

/// Decodes a long-poll body: `[{"id":N,"data":"..."}, ...]`.
pub fn parse_longpoll(body: &[u8]) -> Result<Vec<Item>, DecodeError> {
    let v: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| DecodeError::BadFrame(e.to_string()))?;
    v.iter().map(|o| parse_object(&o.to_string())).collect()
}

/// Decodes a stream body into items, for the `sse`, `stream` and `iframe` transports.
#[derive(Debug)]
pub struct StreamDecoder {
    transport: Transport,
    dialect: Dialect,
    sse: SseDecoder,
    buf: Vec<u8>,
}

impl StreamDecoder {
    pub fn new(transport: Transport) -> StreamDecoder {
        StreamDecoder::with_dialect(transport, Dialect::Comet)
    }

    pub fn with_dialect(transport: Transport, dialect: Dialect) -> StreamDecoder {
        StreamDecoder {
            transport,
            dialect,
            sse: SseDecoder::default(),
            buf: Vec::new(),
        }
    }

    /// Decodes body bytes (after any chunk framing is removed).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Item>) -> Result<(), DecodeError> {
        if self.dialect == Dialect::Nchan {
            return self.feed_nchan(input, out);
        }
        match self.transport {
            Transport::Sse => {
                let mut items = Vec::new();
                self.sse.feed(input, &mut items);
                for it in items {
                    match it {
                        SseItem::Event { id, data } => {
                            let id = id
                                .as_deref()
                                .and_then(|i| i.parse().ok())
                                .ok_or_else(|| DecodeError::BadFrame(format!("SSE id {id:?}")))?;
                            out.push(Item::Message { id, data });
                        }
                        SseItem::Comment(c) => match c.strip_prefix("missed ") {
                            Some(k) => out.push(Item::Missed(
                                k.parse()
                                    .map_err(|_| DecodeError::BadFrame(format!(": {c}")))?,
                            )),
                            None => out.push(Item::Heartbeat),
                        },
                        SseItem::Retry(_) | SseItem::Empty { .. } => {}
                    }
                }
            }
            Transport::Stream => {
                self.buf.extend_from_slice(input);
                while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=nl).collect();
                    let line = std::str::from_utf8(&line[..nl])
                        .map_err(|_| DecodeError::BadFrame("stream line not UTF-8".into()))?;
                    if line.trim().is_empty() {
                        out.push(Item::Heartbeat);
                    } else {
                        out.push(parse_object(line)?);
                    }
                }
            }
            Transport::Iframe => {
                const OPEN: &[u8] = b"<script>parent.comet(";
                const CLOSE: &[u8] = b");</script>";
                self.buf.extend_from_slice(input);
                loop {
                    let Some(lt) = self.buf.iter().position(|&b| b == b'<') else {
                        self.buf.clear();
                        break;
                    };
                    let rest = &self.buf[lt..];
                    let consumed = if rest.starts_with(b"<!--") {
                        let Some(end) = find(rest, b"-->") else { break };
                        if &rest[..end + 3] == b"<!-- -->" {
                            out.push(Item::Heartbeat);
                        }
                        lt + end + 3
                    } else if rest.starts_with(OPEN) {
                        let Some(end) = find(rest, CLOSE) else { break };
                        let json = std::str::from_utf8(&rest[OPEN.len()..end])
                            .map_err(|_| DecodeError::BadFrame("iframe script not UTF-8".into()))?;
                        out.push(parse_object(json)?);
                        lt + end + CLOSE.len()
                    } else if rest.len() < OPEN.len() && OPEN.starts_with(rest) {
                        break;
                    } else {
                        // Prelude markup: skip the tag.
                        match rest.iter().position(|&b| b == b'>') {
                            Some(end) => lt + end + 1,
                            None => break,
                        }
                    };
                    self.buf.drain(..consumed);
                }
            }
            Transport::Longpoll => {
                return Err(DecodeError::BadFrame(
                    "long-poll bodies are decoded whole (parse_longpoll)".into(),
                ))
            }
            Transport::Ws => return Err(ws_has_frames()),
        }
        Ok(())
    }
}

/// A WebSocket's messages are frames, which [`Subscriber`] (through
/// [`WsReader`]) decodes: there is no body to hand a [`StreamDecoder`].
fn ws_has_frames() -> DecodeError {
    DecodeError::BadFrame("WebSocket frames are read by Subscriber, not StreamDecoder".into())
}

impl StreamDecoder {
    /// nchan's eventsource (ids `TIME:INDEX`) and http-raw-stream (raw
    /// messages, newline-separated).
    fn feed_nchan(&mut self, input: &[u8], out: &mut Vec<Item>) -> Result<(), DecodeError> {
        match self.transport {
            Transport::Sse => {
                let mut items = Vec::new();
                self.sse.feed(input, &mut items);
                for it in items {
                    match it {
                        SseItem::Event { id, data } => out.push(Item::Opaque { id, data }),
                        // `: hi` opens the stream; pings are `event: ping`.
                        SseItem::Comment(_) | SseItem::Empty { .. } => out.push(Item::Heartbeat),
                        SseItem::Retry(_) => {}
                    }
                }
            }
            Transport::Stream => {
                self.buf.extend_from_slice(input);
                while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.buf.drain(..=nl).collect();
                    let line = std::str::from_utf8(&line[..nl])
                        .map_err(|_| DecodeError::BadFrame("raw stream line not UTF-8".into()))?;
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    if line.is_empty() {
                        out.push(Item::Heartbeat);
                    } else {
                        out.push(Item::Opaque {
                            id: None,
                            data: line.to_string(),
                        });
                    }
                }
            }
            Transport::Iframe => {
                return Err(DecodeError::BadFrame(
                    "nchan has no forever-iframe subscriber".into(),
                ))
            }
            Transport::Longpoll => {
                return Err(DecodeError::BadFrame(
                    "long-poll bodies are decoded whole".into(),
                ))
            }
            Transport::Ws => return Err(ws_has_frames()),
        }
        Ok(())
    }
}

/// Offset of the first `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What a [`Subscriber`] reads from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The response head arrived.
    Head(ResponseHead),
    Item(Item),
    /// A WebSocket ping: answer it with a pong carrying the same payload
    /// ([`crate::ws::client::pong`]), or the server drops the client.
    Ping(bytes::Bytes),
    /// The server's WebSocket close frame (`code` is `None` for an empty
    /// one); [`ClientEvent::End`] follows. Echo it to finish the closing
    /// handshake.
    Close {
        code: Option<u16>,
        reason: String,
    },
    /// The response is complete (long-poll answered, or a stream ended).
    End,
}

#[derive(Debug)]
enum SubState {
    Head,
    Body {
        chunked: Option<ChunkedDecoder>,
        length: Option<usize>,
        body: Vec<u8>,
        /// The head's status, and (nchan long-poll) the message's id from it.
        status: u16,
        nchan_id: Option<String>,
    },
    /// A WebSocket after its `101`.
    Ws(Box<WsReader>),
    Done,
}

/// Client side of one subscribe response of any transport.
///
/// For long-poll, call [`Subscriber::reset`] before reading the next poll's response.
///
/// A WebSocket subscriber checks the `101` against the key its request sent
/// ([`Subscriber::websocket`]; [`crate::ws::client::SAMPLE_KEY`] otherwise),
/// then reads frames: each text frame is an [`Item`]; pings come out as
/// [`ClientEvent::Ping`] for the owner to answer.
#[derive(Debug)]
pub struct Subscriber {
    transport: Transport,
    dialect: Dialect,
    state: SubState,
    head_buf: Vec<u8>,
    stream: StreamDecoder,
    /// The `Sec-WebSocket-Key` the request sent (WebSocket only).
    key: Box<str>,
}

impl Subscriber {
    pub fn new(transport: Transport) -> Subscriber {
        Subscriber::with_dialect(transport, Dialect::Comet)
    }

    /// A subscriber reading a peer's wire format (see [`Dialect`]).
    pub fn with_dialect(transport: Transport, dialect: Dialect) -> Subscriber {
        Subscriber {
            transport,
            dialect,
            state: SubState::Head,
            head_buf: Vec::new(),
            stream: StreamDecoder::with_dialect(transport, dialect),
            key: crate::ws::client::SAMPLE_KEY.into(),
        }
    }

    /// A WebSocket subscriber whose request sent `key` (see
    /// [`crate::ws::client::key`]).
    pub fn websocket(dialect: Dialect, key: &str) -> Subscriber {
        Subscriber {
            key: key.into(),
            ..Subscriber::with_dialect(Transport::Ws, dialect)
        }
    }

    /// Ready for the next response on the same connection.
    pub fn reset(&mut self) {
        self.state = SubState::Head;
        self.stream = StreamDecoder::with_dialect(self.transport, self.dialect);
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, SubState::Done)
    }

    /// Decodes bytes read; returns bytes of `input` past the end of the response
    /// (the start of the next one) untouched in `rest`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<ClientEvent>) -> Result<usize, DecodeError> {
        let mut used = 0;
        if let SubState::Head = self.state {
            self.head_buf.extend_from_slice(input);
            let head = match parse_response_head(&self.head_buf)? {
                Status::Partial => return Ok(input.len()),
                Status::Complete(h) => h,
            };
            // Only the head's bytes from this input count as used.
            let before = self.head_buf.len() - input.len();
            used = head.len - before;
            if self.transport == Transport::Ws && head.status == 101 {
                crate::ws::client::parse_response(&self.head_buf[..head.len], &self.key)
                    .map_err(|e| DecodeError::BadHandshake(e.to_string()))?;
                self.head_buf.clear();
                self.state = SubState::Ws(Box::new(WsReader::new(self.dialect)));
                out.push(ClientEvent::Head(head));
                return Ok(used + self.feed_ws(&input[used..], out)?);
            }
            self.head_buf.clear();
            let length = if head.chunked {
                None
            } else if head.status == 204 || head.status == 304 {
                Some(0)
            } else {
                head.content_length
            };
            let nchan_id = match (&head.last_modified, &head.etag) {
                (None, None) => None,
                (lm, tag) => Some(format!(
                    "{}:{}",
                    lm.as_deref().unwrap_or(""),
                    tag.as_deref().unwrap_or("")
                )),
            };
            self.state = SubState::Body {
                chunked: head.chunked.then(ChunkedDecoder::default),
                length,
                body: Vec::new(),
                status: head.status,
                nchan_id,
            };
            out.push(ClientEvent::Head(head));
        }
        if let SubState::Ws(_) = self.state {
            return self.feed_ws(input, out);
        }
        let SubState::Body {
            chunked,
            length,
            body,
            status,
            nchan_id,
        } = &mut self.state
        else {
            return Ok(used);
        };
        let input = &input[used..];
        let mut data = Vec::new();
        let mut taken = input.len();
        let mut ended = false;
        match (chunked.as_mut(), length) {
            (Some(dec), _) => {
                dec.feed(input, &mut data)?;
                ended = dec.is_done();
            }
            (None, Some(len)) => {
                let want = *len - body.len().min(*len);
                taken = want.min(input.len());
                data.extend_from_slice(&input[..taken]);
                ended = body.len() + taken >= *len;
            }
            (None, None) => data.extend_from_slice(input),
        }
        if self.transport == Transport::Longpoll {
            body.extend_from_slice(&data);
            if ended {
                let body = std::mem::take(body);
                if self.dialect == Dialect::Nchan {
                    // One raw message per 200; a 408 (poll timeout) or 304 has none.
                    if *status == 200 {
                        let data = String::from_utf8(body).map_err(|_| {
                            DecodeError::BadFrame("long-poll message not UTF-8".into())
                        })?;
                        out.push(ClientEvent::Item(Item::Opaque {
                            id: nchan_id.take(),
                            data,
                        }));
                    }
                } else if *status == 200 && !body.is_empty() {
                    // An error's body (a 502 page) is no message array.
                    for it in parse_longpoll(&body)? {
                        out.push(ClientEvent::Item(it));
                    }
                }
            }
        } else if *status == 200 {
            let mut items = Vec::new();
            self.stream.feed(&data, &mut items)?;
            out.extend(items.into_iter().map(ClientEvent::Item));
        }
        // Any other answer's body (an error page) is read to its end, not decoded.
        if ended {
            self.state = SubState::Done;
            out.push(ClientEvent::End);
        }
        Ok(used + taken)
    }
}

impl Subscriber {
    /// Frames after a `101`; every byte is used (what follows a close frame
    /// is not read).
    fn feed_ws(&mut self, input: &[u8], out: &mut Vec<ClientEvent>) -> Result<usize, DecodeError> {
        let SubState::Ws(reader) = &mut self.state else {
            return Ok(0);
        };
        reader.feed(input, out)?;
        if reader.is_closed() {
            self.state = SubState::Done;
            out.push(ClientEvent::End);
        }
        Ok(input.len())
    }
}

/// `GET /sub/{channel}` for `transport`, with `since` when given. A
/// WebSocket's is the upgrade request with [`crate::ws::client::SAMPLE_KEY`],
/// which [`Subscriber::new`] expects.
pub fn subscribe_request(channel: &str, transport: Transport, since: Option<u64>) -> String {
    let since = since.map(|s| format!("&since={s}")).unwrap_or_default();
    let path = format!("/sub/{channel}?transport={}{since}", transport.name());
    if transport == Transport::Ws {
        let head =
            crate::ws::client::request("localhost", &path, crate::ws::client::SAMPLE_KEY, &[])
                .expect("a valid channel name holds no CR or LF");
        return String::from_utf8(head).expect("the request head is text");
    }
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

/// `POST /pub/{channel}` carrying `data`.
pub fn publish_request(channel: &str, data: &str, token: Option<&str>) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /pub/{channel} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: {}\r\n\r\n{data}",
        data.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_in_pieces() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n";
        for split in 1..wire.len() {
            let mut d = ChunkedDecoder::default();
            let mut out = Vec::new();
            d.feed(&wire[..split], &mut out).unwrap();
            d.feed(&wire[split..], &mut out).unwrap();
            assert_eq!(out, b"hello world!", "split at {split}");
            assert!(d.is_done());
        }
        let mut d = ChunkedDecoder::default();
        assert_eq!(
            d.feed(b"zz\r\n", &mut Vec::new()),
            Err(DecodeError::BadChunk)
        );
    }

    #[test]
    fn sse_standard_cases() {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        d.feed(
            b"retry: 10\n\n: hi\r\nid: 1\r\ndata: a\rdata:b\n\ndata: no id\n\n",
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                SseItem::Retry(10),
                SseItem::Comment("hi".into()),
                SseItem::Event {
                    id: Some("1".into()),
                    data: "a\nb".into()
                },
                SseItem::Event {
                    id: None,
                    data: "no id".into()
                },
            ]
        );
    }

    #[test]
    fn iframe_and_stream() {
        let mut d = StreamDecoder::new(Transport::Iframe);
        let mut out = Vec::new();
        let wire = "<!DOCTYPE html><html><body><!--    --><!-- --><script>parent.comet({\"id\":1,\"data\":\"\\u003c/script\\u003e\"});</script>\n<script>parent.comet({\"missed\":3});</script>";
        for b in wire.as_bytes().chunks(7) {
            d.feed(b, &mut out).unwrap();
        }
        assert_eq!(
            out,
            vec![
                Item::Heartbeat,
                Item::Message {
                    id: 1,
                    data: "</script>".into()
                },
                Item::Missed(3)
            ]
        );
        let mut d = StreamDecoder::new(Transport::Stream);
        let mut out = Vec::new();
        d.feed(
            b"{\"id\":2,\"data\":\"x\"}\n\n{\"missed\":1}\n{\"id\":",
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                Item::Message {
                    id: 2,
                    data: "x".into()
                },
                Item::Heartbeat,
                Item::Missed(1)
            ]
        );
        assert!(d.feed(b"oops}\n", &mut out).is_err());
    }

    /// Every event of `wire` fed to `sub` in pieces of `piece` bytes.
    fn feed_all(sub: &mut Subscriber, wire: &[u8], piece: usize) -> Vec<ClientEvent> {
        let mut out = Vec::new();
        let mut rest = wire;
        while !rest.is_empty() {
            let n = piece.min(rest.len());
            let mut part = &rest[..n];
            while !part.is_empty() {
                let used = sub.feed(part, &mut out).unwrap();
                part = &part[used..];
                if sub.is_done() {
                    break;
                }
            }
            rest = &rest[n..];
        }
        out
    }

    #[test]
    fn nchan_sse_ids_are_time_index() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n\
: hi\n\nid: 1795510827:0\ndata: 1 2 5 xxxx\n\nid: 1795510827:1\ndata: 1 2 6 xxxx\n\nevent: ping\n\n";
        for piece in [1, 7, wire.len()] {
            let mut sub = Subscriber::with_dialect(Transport::Sse, Dialect::Nchan);
            let items: Vec<Item> = feed_all(&mut sub, wire, piece)
                .into_iter()
                .filter_map(|e| match e {
                    ClientEvent::Item(i) => Some(i),
                    _ => None,
                })
                .collect();
            assert_eq!(
                items,
                vec![
                    Item::Heartbeat,
                    Item::Opaque {
                        id: Some("1795510827:0".into()),
                        data: "1 2 5 xxxx".into()
                    },
                    Item::Opaque {
                        id: Some("1795510827:1".into()),
                        data: "1 2 6 xxxx".into()
                    },
                    Item::Heartbeat,
                ],
                "piece {piece}"
            );
        }
        // Our own dialect still refuses an id that is not an integer.
        let mut d = StreamDecoder::new(Transport::Sse);
        assert!(d
            .feed(b"id: 1795510827:0\ndata: x\n\n", &mut Vec::new())
            .is_err());
    }

    #[test]
    fn nchan_longpoll_headers() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\
Last-Modified: Tue, 24 Nov 2026 09:00:21 GMT\r\nEtag: 1\r\n\
Vary: If-None-Match, If-Modified-Since\r\n\r\n1 2 4 xxxx";
        let timeout = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 5\r\n\r\nnope!";
        for piece in [1, 5, 1000] {
            let mut sub = Subscriber::with_dialect(Transport::Longpoll, Dialect::Nchan);
            let ev = feed_all(&mut sub, answer, piece);
            let ClientEvent::Head(h) = &ev[0] else {
                panic!("{ev:?}")
            };
            assert_eq!(h.status, 200);
            assert_eq!(
                h.last_modified.as_deref(),
                Some("Tue, 24 Nov 2026 09:00:21 GMT")
            );
            assert_eq!(h.etag.as_deref(), Some("1"));
            assert_eq!(
                ev[1..],
                [
                    ClientEvent::Item(Item::Opaque {
                        id: Some("Tue, 24 Nov 2026 09:00:21 GMT:1".into()),
                        data: "1 2 4 xxxx".into()
                    }),
                    ClientEvent::End
                ],
                "piece {piece}"
            );
            // The next poll on the same connection times out: no message.
            sub.reset();
            let ev = feed_all(&mut sub, timeout, piece);
            assert!(matches!(&ev[0], ClientEvent::Head(h) if h.status == 408));
            assert_eq!(ev[1..], [ClientEvent::End]);
        }
        // Our own long-poll still reads JSON arrays.
        let mut sub = Subscriber::new(Transport::Longpoll);
        let ev = feed_all(
            &mut sub,
            b"HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\n[{\"id\":3,\"data\":\"x\"}]",
            1000,
        );
        assert_eq!(
            ev[1],
            ClientEvent::Item(Item::Message {
                id: 3,
                data: "x".into()
            })
        );
    }

    #[test]
    fn error_bodies_are_not_decoded() {
        // A proxy's 502 page, arriving with its head in one read: the head
        // is reported and the body skipped, whatever the transport.
        let wire = b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 32\r\n\r\nError while proxying to origin.\n";
        for t in Transport::ALL {
            for dialect in [Dialect::Comet, Dialect::Nchan] {
                let mut sub = Subscriber::with_dialect(t, dialect);
                let mut out = Vec::new();
                let used = sub.feed(wire, &mut out).unwrap();
                assert_eq!(used, wire.len());
                assert!(matches!(&out[0], ClientEvent::Head(h) if h.status == 502));
                assert_eq!(out[1..], [ClientEvent::End], "{t:?} {dialect:?}");
            }
        }
    }

    #[test]
    fn nchan_raw_stream() {
        let wire = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n1 2 3 xxxx\n1 2 4 xxxx\n1 2";
        let mut sub = Subscriber::with_dialect(Transport::Stream, Dialect::Nchan);
        let items: Vec<ClientEvent> = feed_all(&mut sub, wire, 3);
        assert_eq!(
            items[1..],
            [
                ClientEvent::Item(Item::Opaque {
                    id: None,
                    data: "1 2 3 xxxx".into()
                }),
                ClientEvent::Item(Item::Opaque {
                    id: None,
                    data: "1 2 4 xxxx".into()
                }),
            ]
        );
        let mut d = StreamDecoder::with_dialect(Transport::Iframe, Dialect::Nchan);
        assert!(d.feed(b"<script>", &mut Vec::new()).is_err());
    }
}
