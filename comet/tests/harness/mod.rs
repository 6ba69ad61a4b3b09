//! The harness of the `Conn` scenario tests (`conn.rs`, `conn_ws.rs`): no
//! sockets, no threads and no sleeps: time is a fake clock (`start +
//! Duration`) moved by hand, and output is decoded with [`comet::client`].
//!
//! [`Harness`] plays a single-group dispatcher: it feeds bytes
//! (`handle_read`), moves time (`handle_timeout`), answers every event with
//! the dispatchers' own glue ([`comet::glue::answer`]) against an
//! in-memory hub ([`Memory`]), hands each published message to the
//! channel's subscribers (`handle_message`) before the next event is
//! answered, and takes every conn's output (`poll_transmit` then
//! `handle_written`) unless the conn is marked stalled (a socket that never
//! drains).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use comet::client::{self, ClientEvent, Item, ResponseHead, Subscriber};
use comet::glue::memory::Memory;
use comet::glue::{self, Accepted, Answer, Backend};
use comet::request::Status;
use comet::{Config, Conn, Event, Hub, Limits, Refusal, Replay, Transport};

pub fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

pub fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

pub struct Harness {
    pub config: Arc<Config>,
    pub memory: Memory<u32>,
    pub start: Instant,
    pub now: Instant,
    pub conns: BTreeMap<u32, Conn>,
    /// Output taken from each conn, not yet read by the test.
    pub out: BTreeMap<u32, Vec<u8>>,
    /// Conns whose output is never taken.
    pub stalled: BTreeSet<u32>,
    /// Every event answered, in order, with its conn.
    pub events: Vec<(u32, Event)>,
    pub next: u32,
    pub publisher: Option<u32>,
}

/// A backend that notes every event it is asked to answer, then passes it on.
pub struct Recorder<'a, B> {
    pub inner: B,
    pub id: u32,
    pub events: &'a mut Vec<(u32, Event)>,
}

impl<B: Backend> Backend for Recorder<'_, B> {
    fn subscribe(
        &mut self,
        channel: &Arc<str>,
        since: Option<u64>,
        now: Instant,
    ) -> Answer<Result<Replay, Refusal>> {
        let channel = channel.clone();
        self.events.push((
            self.id,
            Event::Subscribe {
                channel: channel.clone(),
                since,
            },
        ));
        self.inner.subscribe(&channel, since, now)
    }

    fn unsubscribe(&mut self, channel: &Arc<str>, now: Instant) {
        let channel = channel.clone();
        self.events.push((
            self.id,
            Event::Unsubscribe {
                channel: channel.clone(),
            },
        ));
        self.inner.unsubscribe(&channel, now)
    }

    fn publish(
        &mut self,
        channel: &Arc<str>,
        data: Box<str>,
        now: Instant,
    ) -> Answer<Result<Accepted, Refusal>> {
        let (channel, event_data) = (channel.clone(), data.clone());
        self.events.push((
            self.id,
            Event::Publish {
                channel: channel.clone(),
                data: event_data,
            },
        ));
        self.inner.publish(&channel, data, now)
    }

    fn stats(&mut self) -> String {
        self.events.push((self.id, Event::Stats));
        self.inner.stats()
    }

    fn unresponsive(&mut self) {
        self.events.push((self.id, Event::Unresponsive));
        self.inner.unresponsive()
    }

    fn idle_timeout(&mut self) {
        self.events.push((self.id, Event::IdleTimeout));
        self.inner.idle_timeout()
    }
}

impl Harness {
    pub fn new(config: Config) -> Harness {
        let start = Instant::now();
        Harness {
            memory: Memory::new(Limits::from(&config)),
            config: Arc::new(config),
            start,
            now: start,
            conns: BTreeMap::new(),
            out: BTreeMap::new(),
            stalled: BTreeSet::new(),
            events: Vec::new(),
            next: 1,
            publisher: None,
        }
    }

    pub fn default() -> Harness {
        Harness::new(Config::default())
    }

    pub fn hub(&self) -> &Hub<()> {
        self.memory.hub()
    }

    /// A connection accepted now.
    pub fn open(&mut self) -> u32 {
        let id = self.next;
        self.next += 1;
        self.conns
            .insert(id, Conn::new(self.config.clone(), self.now));
        self.out.insert(id, Vec::new());
        id
    }

    pub fn conn(&mut self, id: u32) -> &mut Conn {
        self.conns.get_mut(&id).expect("no such conn")
    }

    /// `poll_shutdown` of `id` now.
    pub fn shut(&mut self, id: u32) -> bool {
        let now = self.now;
        self.conn(id).poll_shutdown(now)
    }

    /// Sets the fake clock to `start + d` (never backwards).
    pub fn at(&mut self, d: Duration) {
        let t = self.start + d;
        assert!(t >= self.now, "the clock goes forward only");
        self.now = t;
    }

    /// Bytes read on `id`, in one piece.
    pub fn send(&mut self, id: u32, bytes: impl AsRef<[u8]>) {
        let now = self.now;
        self.conn(id).handle_read(bytes.as_ref(), now);
        self.settle();
    }

    /// Bytes read on `id`, one read per byte.
    pub fn send_bytewise(&mut self, id: u32, bytes: impl AsRef<[u8]>) {
        for b in bytes.as_ref() {
            self.send(id, [*b]);
        }
    }

    /// Calls `handle_timeout` on every conn at the current time, due or not:
    /// a conn must do nothing before its deadline.
    pub fn tick(&mut self) {
        let now = self.now;
        for c in self.conns.values_mut() {
            c.handle_timeout(now);
        }
        self.settle();
    }

    /// Answers every event of every conn, then takes their output, until quiet.
    pub fn settle(&mut self) {
        loop {
            let mut busy = false;
            let ids: Vec<u32> = self.conns.keys().copied().collect();
            for id in ids {
                busy |= self.drain(id);
            }
            for (id, c) in self.conns.iter_mut() {
                if self.stalled.contains(id) {
                    continue;
                }
                let out = self.out.get_mut(id).expect("out");
                let n = transmit_all(c, out);
                if n > 0 {
                    c.handle_written(n);
                }
                assert!(!c.has_pending());
            }
            if !busy {
                break;
            }
        }
    }

    /// Answers the events of `id` one at a time with the dispatchers' glue,
    /// handing what each publish queued to its subscribers before the next
    /// (as a dispatcher does after each delivery: an answered long-poll
    /// leaves the channel before the next publish). Returns whether there
    /// were any.
    pub fn drain(&mut self, id: u32) -> bool {
        let mut any = false;
        loop {
            let now = self.now;
            let conn = self.conns.get_mut(&id).expect("no such conn");
            let mut recorder = Recorder {
                inner: self.memory.backend(id),
                id,
                events: &mut self.events,
            };
            if !glue::answer(conn, &mut recorder, now) {
                return any;
            }
            any = true;
            while let Some(m) = self.memory.take_published() {
                for k in self.memory.subscribers(m.channel()) {
                    self.conn(k).handle_message(&m, now);
                    self.drain(k);
                }
            }
        }
    }

    /// Output of `id` taken since the last call.
    pub fn take(&mut self, id: u32) -> Vec<u8> {
        std::mem::take(self.out.get_mut(&id).expect("out"))
    }

    pub fn take_str(&mut self, id: u32) -> String {
        String::from_utf8(self.take(id)).expect("output is UTF-8")
    }

    /// Opens a conn and sends `GET /sub/{channel}` for `transport`.
    pub fn subscribe(&mut self, channel: &str, transport: Transport, since: Option<u64>) -> u32 {
        let id = self.open();
        self.send(id, client::subscribe_request(channel, transport, since));
        id
    }

    /// Publishes on a keep-alive publisher conn; returns `(id, subscribers)`.
    pub fn publish(&mut self, channel: &str, data: &str) -> (u64, u64) {
        let p = match self.publisher {
            Some(p) => p,
            None => {
                let p = self.open();
                self.publisher = Some(p);
                p
            }
        };
        self.send(p, client::publish_request(channel, data, None));
        let r = response(&self.take(p));
        assert_eq!(r.status(), 202, "{r:?}");
        published(&r)
    }

    pub fn unsubscribes(&self, id: u32) -> usize {
        self.events
            .iter()
            .filter(|(k, e)| *k == id && matches!(e, Event::Unsubscribe { .. }))
            .count()
    }

    /// Takes the first `n` bytes of `id`'s output, as a short write would.
    pub fn take_some(&mut self, id: u32, n: usize) {
        let c = self.conns.get_mut(&id).expect("no such conn");
        let mut all = Vec::new();
        transmit_all(c, &mut all);
        assert!(all.len() >= n);
        c.handle_written(n);
        self.out
            .get_mut(&id)
            .expect("out")
            .extend_from_slice(&all[..n]);
    }

    pub fn queued(&mut self, id: u32) -> usize {
        transmit_all(self.conn(id), &mut Vec::new())
    }
}

/// Copies all of `c`'s output into `out` through `poll_transmit`, without
/// telling `c` it was written; returns how many bytes.
pub fn transmit_all(c: &Conn, out: &mut Vec<u8>) -> usize {
    let mut iov = vec![IoSlice::new(&[]); c.pending().len()];
    let n = c.poll_transmit(&mut iov);
    assert_eq!(n, iov.len(), "every slice fits");
    let before = out.len();
    for b in &iov[..n] {
        out.extend_from_slice(b);
    }
    out.len() - before
}

// ----- decoding -----

/// One whole response with a `Content-Length` body (or none).
#[derive(Debug)]
pub struct Resp {
    pub head: ResponseHead,
    pub raw: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn status(&self) -> u16 {
        self.head.status
    }

    pub fn headers(&self, name: &str) -> Vec<String> {
        self.raw
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let mut h = self.headers(name);
        assert!(h.len() <= 1, "{name} given {} times: {}", h.len(), self.raw);
        h.pop()
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

pub fn head_of(buf: &[u8]) -> (ResponseHead, String) {
    match client::parse_response_head(buf).expect("a response head") {
        Status::Complete(h) => {
            let raw = String::from_utf8(buf[..h.len].to_vec()).expect("UTF-8 head");
            (h, raw)
        }
        Status::Partial => panic!("partial head: {:?}", String::from_utf8_lossy(buf)),
    }
}

/// Splits `buf` into whole non-streaming responses; all of it must be used.
pub fn responses(mut buf: &[u8]) -> Vec<Resp> {
    let mut all = Vec::new();
    while !buf.is_empty() {
        let (head, raw) = head_of(buf);
        assert!(!head.chunked, "not a whole response: {raw}");
        let len = if head.status < 200 || head.status == 204 {
            assert_eq!(head.content_length, None, "{raw}");
            0
        } else {
            head.content_length.expect("Content-Length")
        };
        let body = buf[head.len..head.len + len].to_vec();
        buf = &buf[head.len + len..];
        all.push(Resp { head, raw, body });
    }
    all
}

pub fn response(buf: &[u8]) -> Resp {
    let mut r = responses(buf);
    assert_eq!(r.len(), 1, "{r:?}");
    r.remove(0)
}

pub fn published(r: &Resp) -> (u64, u64) {
    assert_eq!(r.head.content_type.as_deref(), Some("application/json"));
    let v = r.json();
    assert_eq!(v.as_object().map(|o| o.len()), Some(2), "{v}");
    (
        v["id"].as_u64().unwrap(),
        v["subscribers"].as_u64().unwrap(),
    )
}

/// Splits a chunked body strictly: each chunk's size line, data and CRLF.
pub fn chunks(mut body: &[u8]) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    while !body.is_empty() {
        let nl = body.iter().position(|&b| b == b'\n').expect("size line");
        let line = std::str::from_utf8(&body[..nl]).unwrap();
        let size =
            usize::from_str_radix(line.strip_suffix('\r').expect("CRLF"), 16).expect("hex size");
        assert!(size > 0, "an endless stream sends no last chunk");
        let data = &body[nl + 1..nl + 1 + size];
        assert_eq!(&body[nl + 1 + size..nl + 3 + size], b"\r\n");
        all.push(data.to_vec());
        body = &body[nl + 3 + size..];
    }
    all
}

pub fn chunk(s: &str) -> String {
    format!("{:x}\r\n{s}\r\n", s.len())
}

/// A client reading one subscribe response as it arrives.
pub struct Reader {
    pub sub: Subscriber,
    pub head: Option<ResponseHead>,
    pub items: Vec<Item>,
    pub ended: usize,
    /// A WebSocket's pings (their payloads) and close frames (their codes).
    pub pings: Vec<Vec<u8>>,
    pub closes: Vec<Option<u16>>,
}

impl Reader {
    pub fn new(t: Transport) -> Reader {
        Reader {
            sub: Subscriber::new(t),
            head: None,
            items: Vec::new(),
            ended: 0,
            pings: Vec::new(),
            closes: Vec::new(),
        }
    }

    /// Decodes `bytes`; a long-poll reader resets after each response, so
    /// several polls on one conn can be read in a row.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let mut evs = Vec::new();
            let used = self.sub.feed(bytes, &mut evs).expect("decodes");
            bytes = &bytes[used..];
            for e in evs {
                match e {
                    ClientEvent::Head(h) => self.head = Some(h),
                    ClientEvent::Item(i) => self.items.push(i),
                    ClientEvent::End => self.ended += 1,
                    ClientEvent::Ping(p) => self.pings.push(p.to_vec()),
                    ClientEvent::Close { code, .. } => self.closes.push(code),
                }
            }
            if self.sub.is_done() {
                self.sub.reset();
            } else {
                assert!(bytes.is_empty(), "bytes past an unfinished response");
            }
        }
    }

    pub fn take(&mut self) -> Vec<Item> {
        std::mem::take(&mut self.items)
    }
}

pub fn msg(id: u64, data: &str) -> Item {
    Item::Message {
        id,
        data: data.to_string(),
    }
}

pub const STREAMING: [Transport; 3] = [Transport::Sse, Transport::Stream, Transport::Iframe];
