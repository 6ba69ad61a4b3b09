//! A load generator worker: one process holding up to ~15,000 subscriber
//! connections in a mio loop.
//!
//! The coordinator writes a [`Plan`] as the first line of the worker's stdin
//! and later a [`Finish`] line; the worker writes [`Progress`] lines while it
//! runs and one [`Report`] line at the end, all JSON. Several workers are
//! needed past one process's open-file limit; their histograms are merged by
//! the coordinator, never averaged.
//!
//! # What every subscriber checks
//! Ids on a channel are 1, 2, 3 ...: a repeated id is a duplicate, an older
//! one is out of order, a jump is a loss unless the server reported it as
//! missed, and at the end every subscriber must have reached the last id its
//! channel was given. The ids are the server's ([`IdCheck::Server`]), or,
//! for a server that gives none of its own (the peers), the publisher's
//! per-channel sequence number in the message body ([`IdCheck::Sequence`]).

use std::collections::HashMap;
use std::io::{self, BufRead, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use comet::client::{ClientEvent, Dialect, Item, Subscriber};
use comet::Transport;
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use serde::{Deserialize, Serialize};
use slab::Slab;

use crate::clock::{mono_ns, parse_stamp, self_cpu, Stamp};
use crate::hist;

/// Which channel each subscriber joins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channels {
    /// Every subscriber on one channel.
    Broadcast(String),
    /// Subscriber `i` (global index) on `{prefix}{i}`.
    PerUser(String),
}

impl Channels {
    pub fn name(&self, index: usize) -> String {
        match self {
            Channels::Broadcast(c) => c.clone(),
            Channels::PerUser(prefix) => format!("{prefix}{index}"),
        }
    }
}

/// Where the id that every subscriber checks comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdCheck {
    /// The id the server put in the frame (ours: 1, 2, 3 ... per channel).
    #[default]
    Server,
    /// The publisher's per-channel sequence number in the message's stamp
    /// (see [`crate::clock::Stamp`]); the frame's id, if any, is not used.
    Sequence,
}

/// The wait before a subscribe answered 500-503 is sent again.
pub const RETRY_DELAY_NS: u64 = 100_000_000;

/// What one worker does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub worker: usize,
    pub target: SocketAddr,
    /// Source addresses to bind client sockets to, used in turn.
    pub sources: Vec<IpAddr>,
    /// `/sub/{channel}?transport={transport}`-style path template.
    pub path: String,
    /// Query parameter carrying the last id on a long-poll re-poll (not
    /// used with [`Dialect::Nchan`], which resumes through headers).
    pub since_param: String,
    /// The server's wire format.
    #[serde(default)]
    pub dialect: Dialect,
    #[serde(default)]
    pub ids: IdCheck,
    /// Answers 500-503 that may be retried per connection (after
    /// [`RETRY_DELAY_NS`], on the same connection), as browsers' clients do:
    /// 0 for our dispatchers, whose refusals are what is measured.
    #[serde(default)]
    pub retry_5xx: u32,
    pub transport: String,
    pub count: usize,
    /// Global index of this worker's first subscriber.
    pub first_index: usize,
    pub channels: Channels,
    /// Connections per second.
    pub rate: f64,
    pub in_flight: usize,
    pub connect_timeout_ms: u64,
    /// `mono_ns` origin of latency intervals, shared by all workers.
    pub epoch_ns: u64,
    pub interval_ms: u64,
}

/// Sent by the coordinator when publishing is over.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Finish {
    /// Last id published on each channel; subscribers should have reached it.
    pub expect: HashMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    pub worker: usize,
    /// TCP connections established.
    pub connected: u64,
    /// Subscriptions confirmed (a stream's response head; a long-poll request sent).
    pub subscribed: u64,
    pub failed: u64,
    pub received: u64,
    /// Connections still being set up.
    pub pending: u64,
}

/// Everything a worker measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub worker: usize,
    pub connected: u64,
    pub subscribed: u64,
    /// Connections still open at the end, answered or waiting for an answer.
    pub open: u64,
    /// Failed connects and subscribes by cause.
    pub failed: HashMap<String, u64>,
    /// Answers 500-503 retried (see [`Plan::retry_5xx`]).
    #[serde(default)]
    pub retried: u64,
    /// Connections the server closed after they were subscribed.
    pub disconnects: u64,
    pub received: u64,
    /// Deliveries due: for each subscribed client, the last id of its channel.
    pub expected: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub missed_reported: u64,
    pub protocol_errors: u64,
    /// Messages without a parsable latency stamp, or, checked by
    /// [`IdCheck::Sequence`], without a sequence number.
    pub unstamped: u64,
    pub heartbeats: u64,
    pub bytes_total: u64,
    pub bytes_head: u64,
    pub bytes_payload: u64,
    pub cpu_user: f64,
    pub cpu_sys: f64,
    /// Encoded histograms (see [`crate::hist::encode`]), microseconds.
    pub connect_us: String,
    pub latency_us: String,
    pub latency_raw_us: String,
    /// Per interval since `epoch_ns`: (index, corrected, raw).
    pub intervals: Vec<(u64, String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    /// Request written, response head not yet read.
    Requested,
    /// Receiving a stream, or a long-poll waiting for its answer.
    Subscribed,
    Closed,
}

struct Client {
    stream: TcpStream,
    state: State,
    dec: Subscriber,
    index: usize,
    started_ns: u64,
    last_id: u64,
    /// Missed messages reported and not yet matched to a gap.
    missed_credit: u64,
    /// nchan long-poll: `Last-Modified` and `Etag` of the last message, sent
    /// back as `If-Modified-Since` and `If-None-Match`.
    resume: (Option<String>, Option<String>),
    request: Vec<u8>,
    written: usize,
    /// Answers 500-503 retried so far, and whether one is being read now.
    retries: u32,
    retrying: bool,
}

const STDIN: Token = Token(usize::MAX);

struct Worker {
    plan: Plan,
    transport: Transport,
    poll: Poll,
    clients: Slab<Client>,
    buf: Vec<u8>,
    report: Report,
    connect_hist: Histogram<u64>,
    latency: Histogram<u64>,
    latency_raw: Histogram<u64>,
    intervals: HashMap<u64, (Histogram<u64>, Histogram<u64>)>,
    started: usize,
    /// Connections not yet subscribed (connecting, or awaiting a response).
    pending: usize,
    /// TCP connects in flight.
    connecting: usize,
    /// Clients to send their request again, with when (`mono_ns`).
    resend: Vec<(u64, usize)>,
}

/// Runs a worker on this process's stdin and stdout. Returns when finished.
pub fn main() -> io::Result<()> {
    let stdin = io::stdin();
    let mut lines = stdin.lock().lines();
    let plan: Plan = match lines.next() {
        Some(line) => serde_json::from_str(&line?)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        None => return Ok(()),
    };
    drop(lines);
    let transport = Transport::from_name(&plan.transport)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "unknown transport"))?;
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), STDIN)?);
    let (tx, rx) = crossbeam_channel::unbounded::<Option<Finish>>();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if let Ok(f) = serde_json::from_str::<Finish>(&line) {
                let _ = tx.send(Some(f));
                let _ = waker.wake();
            }
        }
        // The coordinator is gone: finish with what we have.
        let _ = tx.send(None);
        let _ = waker.wake();
    });
    let mut w = Worker {
        report: Report {
            worker: plan.worker,
            ..Report::default()
        },
        plan,
        transport,
        poll,
        clients: Slab::new(),
        buf: vec![0; 64 * 1024],
        connect_hist: hist::new_histogram(),
        latency: hist::new_histogram(),
        latency_raw: hist::new_histogram(),
        intervals: HashMap::new(),
        started: 0,
        pending: 0,
        connecting: 0,
        resend: Vec::new(),
    };
    let finish = w.run(&rx)?;
    w.finish(finish);
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, &w.report)?;
    out.write_all(b"\n")?;
    out.flush()
}

fn cause(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "refused",
        Some(libc::ETIMEDOUT) => "timeout",
        Some(libc::ECONNRESET) | Some(libc::EPIPE) => "reset",
        Some(libc::EADDRNOTAVAIL) => "no_ports",
        Some(libc::EMFILE) | Some(libc::ENFILE) => "fd_limit",
        _ => "other",
    }
}

impl Worker {
    fn run(&mut self, rx: &crossbeam_channel::Receiver<Option<Finish>>) -> io::Result<Finish> {
        let mut events = Events::with_capacity(4096);
        let t0 = mono_ns();
        let mut last_progress = 0;
        loop {
            let now = mono_ns();
            self.ramp(now, t0);
            let timeout = if self.started < self.plan.count {
                Duration::from_millis(2)
            } else {
                Duration::from_millis(100)
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                if ev.token() == STDIN {
                    if let Ok(f) = rx.try_recv() {
                        return Ok(f.unwrap_or_default());
                    }
                    continue;
                }
                let key = ev.token().0;
                self.handle(key);
            }
            let now = mono_ns();
            self.expire_connects(now);
            self.resend_due(now);
            if now - last_progress > 250_000_000 {
                last_progress = now;
                self.progress()?;
            }
        }
    }

    fn progress(&self) -> io::Result<()> {
        let p = Progress {
            worker: self.plan.worker,
            connected: self.report.connected,
            subscribed: self.report.subscribed,
            failed: self.report.failed.values().sum(),
            received: self.report.received,
            pending: self.pending as u64,
        };
        let mut out = io::stdout().lock();
        serde_json::to_writer(&mut out, &p)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    fn fail(&mut self, key: usize, cause: String) {
        *self.report.failed.entry(cause).or_default() += 1;
        self.close(key);
    }

    fn close(&mut self, key: usize) {
        if let Some(mut c) = self.clients.try_remove(key) {
            if matches!(c.state, State::Connecting | State::Requested) {
                self.pending -= 1;
            }
            if c.state == State::Connecting {
                self.connecting -= 1;
            }
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    /// Starts connects at the planned rate, within the in-flight bound.
    fn ramp(&mut self, now: u64, t0: u64) {
        let due = (((now - t0) as f64 / 1e9) * self.plan.rate).ceil() as usize;
        let due = due.min(self.plan.count);
        // The bound is on TCP connects: a connection the server accepted but
        // does not answer (a starved pool) no longer holds a slot.
        while self.started < due && self.connecting < self.plan.in_flight {
            let index = self.plan.first_index + self.started;
            let source = self.plan.sources[self.started % self.plan.sources.len()];
            self.started += 1;
            if let Err(e) = self.connect(index, source, now) {
                *self.report.failed.entry(cause(&e).to_string()).or_default() += 1;
            }
        }
    }

    fn connect(&mut self, index: usize, source: IpAddr, now: u64) -> io::Result<()> {
        use socket2::{Domain, Socket, Type};
        let target = self.plan.target;
        let s = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
        s.set_nonblocking(true)?;
        s.set_nodelay(true)?;
        // Let connect() pick the port per destination, so each source address
        // gives a whole ephemeral range towards the server.
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads `one` (a c_int of the given size) only.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        s.bind(&SocketAddr::new(source, 0).into())?;
        match s.connect(&target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let mut stream = TcpStream::from_std(s.into());
        let entry = self.clients.vacant_entry();
        self.poll.registry().register(
            &mut stream,
            Token(entry.key()),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let channel = self.plan.channels.name(index);
        let path = self
            .plan
            .path
            .replace("{channel}", &channel)
            .replace("{transport}", self.transport.name());
        entry.insert(Client {
            stream,
            state: State::Connecting,
            dec: Subscriber::with_dialect(self.transport, self.plan.dialect),
            index,
            started_ns: now,
            last_id: 0,
            missed_credit: 0,
            resume: (None, None),
            request: request(&path, &self.plan.target, self.transport, ""),
            written: 0,
            retries: 0,
            retrying: false,
        });
        self.pending += 1;
        self.connecting += 1;
        Ok(())
    }

    fn expire_connects(&mut self, now: u64) {
        let limit = self.plan.connect_timeout_ms * 1_000_000;
        // Only connects time out: a connection accepted but not answered
        // (a starved thread pool) stays open and is reported as waiting.
        let expired: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, c)| c.state == State::Connecting && now - c.started_ns > limit)
            .map(|(k, _)| k)
            .collect();
        for k in expired {
            self.fail(k, "timeout".into());
        }
    }

    fn handle(&mut self, key: usize) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        if c.state == State::Connecting {
            match c.stream.take_error() {
                Ok(Some(e)) | Err(e) => return self.fail(key, cause(&e).into()),
                Ok(None) => {}
            }
            match c.stream.peer_addr() {
                Ok(_) => {
                    let now = mono_ns();
                    let _ = self
                        .connect_hist
                        .record(((now - c.started_ns) / 1000).max(1));
                    c.state = State::Requested;
                    self.connecting -= 1;
                    self.report.connected += 1;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return,
                Err(e) => return self.fail(key, cause(&e).into()),
            }
        }
        self.write(key);
        self.read(key);
    }

    fn write(&mut self, key: usize) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        while c.written < c.request.len() {
            match c.stream.write(&c.request[c.written..]) {
                Ok(n) => c.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(key, cause(&e).into()),
            }
        }
        if c.written == c.request.len() && !c.request.is_empty() {
            c.request = Vec::new();
            c.written = 0;
            let _ = self
                .poll
                .registry()
                .reregister(&mut c.stream, Token(key), Interest::READABLE);
            if self.transport == Transport::Longpoll && c.state == State::Requested {
                // A long-poll is subscribed once its request is out; the
                // answer comes when a message does.
                c.state = State::Subscribed;
                self.report.subscribed += 1;
                self.pending -= 1;
            }
        }
    }

    fn read(&mut self, key: usize) {
        loop {
            let Some(c) = self.clients.get_mut(key) else {
                return;
            };
            match c.stream.read(&mut self.buf) {
                Ok(0) => {
                    let state = c.state;
                    if state == State::Subscribed {
                        self.report.disconnects += 1;
                        c.state = State::Closed;
                        self.close(key);
                    } else {
                        self.fail(key, "closed".into());
                    }
                    return;
                }
                Ok(n) => {
                    self.report.bytes_total += n as u64;
                    let data = std::mem::take(&mut self.buf);
                    let ok = self.feed(key, &data[..n]);
                    self.buf = data;
                    if !ok {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let subscribed = c.state == State::Subscribed;
                    if subscribed {
                        self.report.disconnects += 1;
                        self.close(key);
                    } else {
                        self.fail(key, cause(&e).into());
                    }
                    return;
                }
            }
        }
    }

    /// Decodes bytes of client `key`; false when it was closed.
    fn feed(&mut self, key: usize, mut data: &[u8]) -> bool {
        let now = mono_ns();
        while !data.is_empty() {
            let c = &mut self.clients[key];
            let mut out = Vec::new();
            let used = match c.dec.feed(data, &mut out) {
                Ok(u) => u,
                Err(_) => {
                    self.report.protocol_errors += 1;
                    self.fail(key, "protocol".into());
                    return false;
                }
            };
            data = &data[used..];
            for ev in out {
                match ev {
                    ClientEvent::Head(h) => {
                        self.report.bytes_head += h.len as u64;
                        // nchan ends a long-poll that timed out with 408.
                        let empty_poll = self.plan.dialect == Dialect::Nchan
                            && self.transport == Transport::Longpoll
                            && matches!(h.status, 304 | 408);
                        let c = &mut self.clients[key];
                        if (500..=503).contains(&h.status)
                            && !h.close
                            && c.retries < self.plan.retry_5xx
                        {
                            // Read the error to its end, then ask again.
                            c.retries += 1;
                            c.retrying = true;
                            self.report.retried += 1;
                            continue;
                        }
                        if h.status != 200 && h.status != 204 && !empty_poll {
                            self.fail(key, format!("http_{}", h.status));
                            return false;
                        }
                        if h.status == 200 && (h.last_modified.is_some() || h.etag.is_some()) {
                            c.resume = (h.last_modified, h.etag);
                        }
                        if c.state == State::Requested {
                            c.state = State::Subscribed;
                            self.report.subscribed += 1;
                            self.pending -= 1;
                        }
                    }
                    ClientEvent::Item(item) => self.item(key, item, now),
                    ClientEvent::End => {
                        let c = &mut self.clients[key];
                        if c.retrying {
                            c.retrying = false;
                            c.dec.reset();
                            self.resend.push((now + RETRY_DELAY_NS, key));
                            continue;
                        }
                        if self.transport != Transport::Longpoll {
                            self.report.disconnects += 1;
                            self.close(key);
                            return false;
                        }
                        self.repoll(key);
                    }
                }
            }
            if used == 0 {
                break;
            }
        }
        true
    }

    fn item(&mut self, key: usize, item: Item, now: u64) {
        let c = &mut self.clients[key];
        let (id, data) = match item {
            Item::Heartbeat => {
                self.report.heartbeats += 1;
                return;
            }
            Item::Missed(k) => {
                self.report.missed_reported += k;
                c.missed_credit += k;
                return;
            }
            Item::Message { id, data } => (Some(id), data),
            Item::Opaque { data, .. } => (None, data),
        };
        self.report.bytes_payload += data.len() as u64;
        let stamp = parse_stamp(&data);
        let id = match self.plan.ids {
            IdCheck::Server => id,
            IdCheck::Sequence => stamp.and_then(|s| s.seq),
        };
        match id {
            Some(id) => {
                if id == c.last_id {
                    self.report.duplicates += 1;
                    return;
                }
                if id < c.last_id {
                    self.report.out_of_order += 1;
                    return;
                }
                let gap = id - c.last_id - 1;
                let covered = gap.min(c.missed_credit);
                c.missed_credit -= covered;
                self.report.lost += gap - covered;
                c.last_id = id;
            }
            // Nothing to check it by (an Opaque frame read by server ids, or
            // a body without a sequence): delivered, but counted unstamped.
            None => self.report.unstamped += 1,
        }
        self.report.received += 1;
        match stamp {
            Some(Stamp {
                scheduled_ns,
                sent_ns,
                ..
            }) => {
                let corrected = (now.saturating_sub(scheduled_ns) / 1000).max(1);
                let raw = (now.saturating_sub(sent_ns) / 1000).max(1);
                let _ = self.latency.record(corrected);
                let _ = self.latency_raw.record(raw);
                let idx = now.saturating_sub(self.plan.epoch_ns)
                    / (self.plan.interval_ms.max(1) * 1_000_000);
                let e = self
                    .intervals
                    .entry(idx)
                    .or_insert_with(|| (hist::new_histogram(), hist::new_histogram()));
                let _ = e.0.record(corrected);
                let _ = e.1.record(raw);
            }
            None if id.is_some() => self.report.unstamped += 1,
            None => {}
        }
    }

    /// Sends again the requests of clients whose retry is due.
    fn resend_due(&mut self, now: u64) {
        if self.resend.is_empty() {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = self.resend.drain(..).partition(|(t, _)| *t <= now);
        self.resend = later;
        for (_, key) in due {
            let Some(c) = self.clients.get(key) else {
                continue;
            };
            // A long-poll that has had messages resumes after them; else the
            // first request again.
            if self.transport == Transport::Longpoll
                && (c.last_id > 0 || c.resume.0.is_some() || c.resume.1.is_some())
            {
                self.repoll(key);
                continue;
            }
            let channel = self.plan.channels.name(c.index);
            let path = self
                .plan
                .path
                .replace("{channel}", &channel)
                .replace("{transport}", self.transport.name());
            let c = &mut self.clients[key];
            c.request = request(&path, &self.plan.target, self.transport, "");
            c.written = 0;
            let _ = self.poll.registry().reregister(
                &mut c.stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            );
            self.write(key);
        }
    }

    fn repoll(&mut self, key: usize) {
        let c = &mut self.clients[key];
        c.dec.reset();
        let channel = self.plan.channels.name(c.index);
        let mut path = self
            .plan
            .path
            .replace("{channel}", &channel)
            .replace("{transport}", self.transport.name());
        let mut extra = String::new();
        if self.plan.dialect == Dialect::Nchan {
            if let Some(lm) = &c.resume.0 {
                extra.push_str(&format!("If-Modified-Since: {lm}\r\n"));
            }
            if let Some(tag) = &c.resume.1 {
                extra.push_str(&format!("If-None-Match: {tag}\r\n"));
            }
        } else {
            path.push(if path.contains('?') { '&' } else { '?' });
            path.push_str(&format!("{}={}", self.plan.since_param, c.last_id));
        }
        c.request = request(&path, &self.plan.target, self.transport, &extra);
        c.written = 0;
        let _ = self.poll.registry().reregister(
            &mut c.stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        );
        self.write(key);
    }

    fn finish(&mut self, finish: Finish) {
        self.report.open = self
            .clients
            .iter()
            .filter(|(_, c)| matches!(c.state, State::Requested | State::Subscribed))
            .count() as u64;
        for (_, c) in self.clients.iter() {
            let channel = self.plan.channels.name(c.index);
            let Some(&last) = finish.expect.get(&channel) else {
                continue;
            };
            // A connection accepted but never answered (a starved pool) was due
            // every message too: undelivered, though not an id-check loss.
            match c.state {
                State::Requested => self.report.expected += last,
                State::Subscribed => {
                    self.report.expected += last;
                    let behind = last.saturating_sub(c.last_id);
                    let covered = behind.min(c.missed_credit);
                    self.report.lost += behind - covered;
                }
                State::Connecting | State::Closed => {}
            }
        }
        let (u, s) = self_cpu();
        self.report.cpu_user = u;
        self.report.cpu_sys = s;
        self.report.connect_us = hist::encode(&self.connect_hist);
        self.report.latency_us = hist::encode(&self.latency);
        self.report.latency_raw_us = hist::encode(&self.latency_raw);
        let mut idx: Vec<_> = self.intervals.keys().copied().collect();
        idx.sort();
        self.report.intervals = idx
            .into_iter()
            .map(|i| {
                let (c, r) = &self.intervals[&i];
                (i, hist::encode(c), hist::encode(r))
            })
            .collect();
    }
}

/// A subscribe request; SSE asks for `text/event-stream` as browsers do
/// (nchan serves eventsource only then). `extra` is more header lines.
fn request(path: &str, target: &SocketAddr, transport: Transport, extra: &str) -> Vec<u8> {
    let accept = match transport {
        Transport::Sse => "text/event-stream",
        _ => "*/*",
    };
    format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nAccept: {accept}\r\n{extra}\r\n").into_bytes()
}
