//! A small blocking HTTP client for the tests: real sockets on 127.0.0.1,
//! decoded with `comet::client`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use comet::client::{parse_response_head, ClientEvent, Item, ResponseHead, Subscriber};
use comet::request::Status;
use comet::Transport;

/// Sends `raw` on a new connection and reads one response (head and body).
pub fn request(addr: SocketAddr, raw: &[u8]) -> (ResponseHead, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).expect("write request");
    read_response(&mut s)
}

/// Reads one whole response with a Content-Length (or none) from `s`.
pub fn read_response(s: &mut TcpStream) -> (ResponseHead, Vec<u8>) {
    read_responses(s, 1).remove(0)
}

/// Reads `n` pipelined responses from `s`.
pub fn read_responses(s: &mut TcpStream, n: usize) -> Vec<(ResponseHead, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut out = Vec::new();
    while out.len() < n {
        if let Some(r) = take_response(&mut buf) {
            out.push(r);
            continue;
        }
        let got = s.read(&mut chunk).expect("read response");
        assert!(
            got > 0,
            "EOF before a whole response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..got]);
    }
    out
}

/// Takes one whole response (with a `Content-Length` body, or none) off the
/// front of `buf`, if it holds one.
pub fn take_response(buf: &mut Vec<u8>) -> Option<(ResponseHead, Vec<u8>)> {
    let Status::Complete(head) = parse_response_head(buf).expect("response head") else {
        return None;
    };
    let want = head.len + head.content_length.unwrap_or(0);
    if buf.len() < want {
        return None;
    }
    let body = buf[head.len..want].to_vec();
    buf.drain(..want);
    Some((head, body))
}

pub fn get(addr: SocketAddr, path: &str) -> (ResponseHead, Vec<u8>) {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Publishes and returns the id given.
pub fn publish(addr: SocketAddr, channel: &str, data: &str) -> u64 {
    publish_counted(addr, channel, data).0
}

/// Publishes and returns the id given and the subscribers it went to.
pub fn publish_counted(addr: SocketAddr, channel: &str, data: &str) -> (u64, u64) {
    let (head, body) = request(
        addr,
        comet::client::publish_request(channel, data, None).as_bytes(),
    );
    assert_eq!(head.status, 202, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    (
        v["id"].as_u64().unwrap(),
        v["subscribers"].as_u64().unwrap(),
    )
}

pub fn stats(addr: SocketAddr) -> serde_json::Value {
    let (head, body) = get(addr, "/stats");
    assert_eq!(head.status, 200);
    serde_json::from_slice(&body).unwrap()
}

/// Waits until `/stats` reports `n` subscribers.
pub fn wait_subscribers(addr: SocketAddr, n: u64, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let got = stats(addr)["subscribers"].as_u64().unwrap();
        if got == n {
            return;
        }
        assert!(Instant::now() < end, "subscribers: {got}, want {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What one read of a subscriber's socket came to.
enum Got {
    /// Bytes (or a timeout before `end`): read on.
    Data,
    /// EOF or a reset.
    Closed,
    /// The time ran out.
    Late,
}

/// One subscriber connection. A WebSocket one answers the server's pings,
/// and its close with a close and the end of its own side, as a browser
/// does (unless `answers` is cleared), and keeps the close codes it gets.
pub struct Sub {
    pub stream: TcpStream,
    pub dec: Subscriber,
    pub head: Option<ResponseHead>,
    pub items: Vec<Item>,
    pub ended: bool,
    /// WebSocket: pings received, and the server's close frames' codes
    /// (`None` for an empty one).
    pub pings: usize,
    pub closes: Vec<Option<u16>>,
    pub answers: bool,
    /// Bytes read past the end of a response.
    rest: Vec<u8>,
}

/// The mask of every frame a test client sends: tests want bytes that replay.
pub const MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x01];

impl Sub {
    pub fn open(
        addr: SocketAddr,
        channel: &str,
        transport: Transport,
        query: &str,
        headers: &str,
    ) -> Sub {
        let stream = TcpStream::connect(addr).expect("connect");
        let mut sub = Sub {
            stream,
            dec: Subscriber::new(transport),
            head: None,
            items: Vec::new(),
            ended: false,
            pings: 0,
            closes: Vec::new(),
            answers: true,
            rest: Vec::new(),
        };
        sub.send(channel, transport, query, headers);
        sub
    }

    /// Sends another subscribe request on the same connection (a WebSocket's
    /// upgrade, with [`comet::ws::client::SAMPLE_KEY`], which `dec` expects).
    pub fn send(&mut self, channel: &str, transport: Transport, query: &str, headers: &str) {
        let upgrade = if transport == Transport::Ws {
            comet::ws::client::upgrade_lines(comet::ws::client::SAMPLE_KEY)
        } else {
            String::new()
        };
        let req = format!(
            "GET /sub/{channel}?transport={}{query} HTTP/1.1\r\nHost: t\r\n{upgrade}{headers}\r\n",
            transport.name()
        );
        self.stream.write_all(req.as_bytes()).expect("write");
    }

    /// WebSocket: sends `text` as one masked text frame (a publish).
    pub fn send_text(&mut self, text: &str) {
        self.send_raw(&comet::ws::client::text(text, MASK));
    }

    /// Writes `bytes` as they are (frames of the test's own making).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Next long-poll on the same keep-alive connection.
    pub fn repoll(&mut self, channel: &str, query: &str) {
        self.dec.reset();
        self.head = None;
        self.ended = false;
        self.send(channel, Transport::Longpoll, query, "");
        let rest = std::mem::take(&mut self.rest);
        self.feed(&rest);
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.ended {
                self.rest.extend_from_slice(data);
                return;
            }
            let mut out = Vec::new();
            let used = self.dec.feed(data, &mut out).expect("decode");
            for ev in out {
                match ev {
                    ClientEvent::Head(h) => self.head = Some(h),
                    ClientEvent::Item(it) => self.items.push(it),
                    ClientEvent::End => self.ended = true,
                    ClientEvent::Ping(payload) => {
                        self.pings += 1;
                        if self.answers {
                            // A server that is gone makes the next read say so.
                            let pong = comet::ws::client::pong(&payload, MASK);
                            let _ = self.stream.write_all(&pong);
                        }
                    }
                    ClientEvent::Close { code, .. } => {
                        self.closes.push(code);
                        if self.answers {
                            let echo = comet::ws::client::close(code.unwrap_or(1000), "", MASK);
                            let _ = self.stream.write_all(&echo);
                            let _ = self.stream.shutdown(std::net::Shutdown::Write);
                        }
                    }
                }
            }
            data = &data[used..];
        }
    }

    /// Reads until `done(self)` or the time runs out; returns whether it held.
    pub fn read_until(&mut self, within: Duration, done: impl Fn(&Sub) -> bool) -> bool {
        let end = Instant::now() + within;
        while !done(self) {
            match self.read_once(end) {
                Got::Data => {}
                Got::Closed => return done(self),
                Got::Late => return false,
            }
        }
        true
    }

    /// Reads until the server closes the connection (EOF or reset); returns
    /// whether it did within `within`.
    pub fn read_to_close(&mut self, within: Duration) -> bool {
        let end = Instant::now() + within;
        loop {
            match self.read_once(end) {
                Got::Data => {}
                Got::Closed => return true,
                Got::Late => return false,
            }
        }
    }

    /// One read, waiting until `end` at most; what it read is decoded.
    fn read_once(&mut self, end: Instant) -> Got {
        let now = Instant::now();
        if now >= end {
            return Got::Late;
        }
        self.stream.set_read_timeout(Some(end - now)).unwrap();
        let mut buf = [0u8; 8192];
        match self.stream.read(&mut buf) {
            Ok(0) => Got::Closed,
            Ok(n) => {
                self.feed(&buf[..n]);
                Got::Data
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Got::Data
            }
            Err(_) => Got::Closed,
        }
    }

    /// Whether a whole long-poll response has arrived, reading what is
    /// there without waiting.
    pub fn is_answered(&mut self) -> bool {
        self.read_until(Duration::from_millis(1), |s| s.ended)
    }

    /// Waits for a whole long-poll response and returns its messages.
    pub fn poll_response(&mut self) -> Vec<(u64, String)> {
        assert!(
            self.read_until(Duration::from_secs(10), |s| s.ended),
            "no whole response: {:?}",
            self.items
        );
        assert_eq!(self.head.as_ref().map(|h| h.status), Some(200));
        self.messages()
    }

    pub fn wait_head(&mut self) -> &ResponseHead {
        assert!(
            self.read_until(Duration::from_secs(10), |s| s.head.is_some()),
            "no response head"
        );
        self.head.as_ref().unwrap()
    }

    /// Messages received so far as (id, data).
    pub fn messages(&self) -> Vec<(u64, String)> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Message { id, data } => Some((*id, data.clone())),
                _ => None,
            })
            .collect()
    }

    pub fn wait_messages(&mut self, n: usize) -> Vec<(u64, String)> {
        let ok = self.read_until(Duration::from_secs(10), |s| s.messages().len() >= n);
        assert!(ok, "got {:?}, want {n} messages", self.items);
        self.messages()
    }
}

/// One raw exchange on a new connection: the status, the response head as
/// text and the body (by Content-Length, or up to EOF). A reset after the
/// server wrote its answer (it may close with unread request bytes) still
/// yields what arrived; a reset before a whole head is a failure.
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before reading all of an oversized
    // request: a failed write is not the test's business, the answer is.
    let _ = s.write_all(raw);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Status::Complete(head)) = parse_response_head(&buf) {
            if let Some(len) = head.content_length {
                if buf.len() >= head.len + len {
                    let text = String::from_utf8_lossy(&buf[..head.len]).into_owned();
                    return (head.status, text, buf[head.len..head.len + len].to_vec());
                }
            }
        }
        match s.read(&mut chunk) {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            Ok(_) | Err(_) => break,
        }
    }
    match parse_response_head(&buf) {
        Ok(Status::Complete(head)) if head.content_length.is_none() => {
            let text = String::from_utf8_lossy(&buf[..head.len]).into_owned();
            (head.status, text, buf[head.len..].to_vec())
        }
        _ => panic!(
            "no whole response to {:?}...: got {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(80)]),
            String::from_utf8_lossy(&buf)
        ),
    }
}

/// The value of header `name` in a response head given as text.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Opens an iframe stream with `query` and reads its decoded (de-chunked)
/// body until it holds `n` script elements; returns the body.
pub fn iframe_body(addr: SocketAddr, channel: &str, query: &str, n: usize) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET /sub/{channel}?transport=iframe{query} HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let mut raw = Vec::new();
    let mut body = Vec::new();
    let mut head_len = None;
    let mut dec = comet::client::ChunkedDecoder::default();
    let mut chunk = [0u8; 16384];
    loop {
        let text = String::from_utf8_lossy(&body);
        if text.matches("</script>").count() >= n {
            return String::from_utf8(body).expect("iframe body is UTF-8");
        }
        let now = Instant::now();
        assert!(
            now < end,
            "{} of {n} scripts: {text:?}",
            text.matches("</script>").count()
        );
        s.set_read_timeout(Some(end - now)).unwrap();
        let got = match s.read(&mut chunk) {
            Ok(0) => panic!("stream closed after {text:?}"),
            Ok(got) => got,
            Err(e) => panic!("read: {e}"),
        };
        match head_len {
            Some(_) => dec.feed(&chunk[..got], &mut body).expect("chunked body"),
            None => {
                raw.extend_from_slice(&chunk[..got]);
                if let Status::Complete(h) = parse_response_head(&raw).expect("head") {
                    assert_eq!(h.status, 200);
                    assert!(h.chunked, "iframe stream is chunked");
                    head_len = Some(h.len);
                    dec.feed(&raw[h.len..], &mut body).expect("chunked body");
                }
            }
        }
    }
}
