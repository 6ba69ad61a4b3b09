//! The plain subscriber: connect, ask, read what comes, check every id, and
//! ask again after a long-poll's answer (or a 500-503 of a peer). What a fault
//! adds (coming back after a drop, reading nothing) is in `away` and
//! `finish`; this file only asks them.

use std::io::{self, Read, Write};
use std::net::IpAddr;

use comet::client::{parse_response_head, ClientEvent, Dialect, Item, ResponseHead, Subscriber};
use comet::request::Status;
use comet::{ws, Transport};
use mio::net::TcpStream;
use mio::{Interest, Token};

use super::away::Away;
use super::socket::{open_socket_with, request};
use super::sse::{Event, SseReader};
use super::{Gap, IdCheck, Ids, Seen, Worker, RETRY_DELAY_NS};
use crate::clock::{mono_ns, parse_stamp, Stamp};
use crate::hist;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Connecting,
    /// Request written, response head not yet read.
    Requested,
    /// Receiving a stream, or a long-poll waiting for its answer.
    Subscribed,
    Closed,
}

/// One subscriber's connection.
pub(super) struct Client {
    pub stream: TcpStream,
    pub state: State,
    reader: Reader,
    pub index: usize,
    started_ns: u64,
    /// What continuity is checked by; carried over when the subscriber comes back.
    pub ids: Ids,
    /// nchan long-poll: `Last-Modified` and `Etag` of the last message, sent
    /// back as `If-Modified-Since` and `If-None-Match`.
    resume: (Option<String>, Option<String>),
    request: Vec<u8>,
    written: usize,
    /// Answers 500-503 retried so far, and whether one is being read now.
    retries: u32,
    retrying: bool,
    /// The server's id of the last message (what `since` resumes after);
    /// `ids` is what continuity is checked by, the same unless ids are the
    /// publisher's sequence.
    pub resume_id: u64,
    /// Never read once subscribed (a slow consumer).
    pub slow: bool,
    /// Brought back after a drop: when the drop happened, and the connects
    /// tried so far.
    pub away_since: Option<u64>,
    pub attempt: u32,
    /// Which of the plan's nodes it is on, counted from its first (see
    /// [`super::Plan::nodes`]).
    pub node: usize,
}

/// What a client reads its responses with.
enum Reader {
    /// An SSE response of this workbench's own dialect whose head has not
    /// all come yet: a chunked `200` is then read by the [`SseReader`],
    /// anything else by the general decoder from its first byte.
    Head(Vec<u8>),
    Sse(SseReader),
    General(Subscriber),
}

impl Reader {
    fn new(transport: Transport, dialect: Dialect) -> Reader {
        if transport == Transport::Sse && dialect == Dialect::Comet {
            Reader::Head(Vec::new())
        } else {
            Reader::General(Subscriber::with_dialect(transport, dialect))
        }
    }

    /// Ready for the next response on the same connection.
    fn reset(&mut self, transport: Transport, dialect: Dialect) {
        match self {
            Reader::General(s) if transport != Transport::Sse || dialect != Dialect::Comet => {
                s.reset()
            }
            _ => *self = Reader::new(transport, dialect),
        }
    }
}

impl Worker {
    /// Client `key`'s connect or subscribe failed of `cause`.
    pub(super) fn fail(&mut self, key: usize, cause: String) {
        if self.retry_later(key) {
            return;
        }
        *self.report.failed.entry(cause).or_default() += 1;
        self.close(key);
    }

    /// The server closed subscribed client `key`: a disconnect, or, when
    /// subscribers come back, a drop to recover from.
    fn dropped_by_server(&mut self, key: usize) {
        if !self.come_back_later(key) {
            self.report.disconnects += 1;
            if let Some(c) = self.clients.get_mut(key) {
                if matches!(c.state, State::Requested | State::Subscribed) {
                    self.open -= 1;
                }
                c.state = State::Closed;
            }
            self.close(key);
        }
    }

    pub(super) fn close(&mut self, key: usize) {
        if let Some(mut c) = self.clients.try_remove(key) {
            if self.keys.get(&c.index) == Some(&key) {
                self.keys.remove(&c.index);
            }
            if matches!(c.state, State::Connecting | State::Requested) {
                self.pending -= 1;
            }
            if matches!(c.state, State::Requested | State::Subscribed) {
                self.open -= 1;
            }
            if c.state == State::Connecting {
                self.connecting -= 1;
            }
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    /// Starts connects at the planned rate, within the in-flight bound.
    pub(super) fn ramp(&mut self, now: u64, t0: u64) {
        let due = (((now - t0) as f64 / 1e9) * self.plan.rate).ceil() as usize;
        let due = due.min(self.plan.count);
        // The bound is on TCP connects: a connection the server accepted but
        // does not answer (a starved pool) no longer holds a slot, unless
        // the scenario bounds those too (`ramp.unanswered`).
        while self.started < due
            && self.connecting < self.plan.in_flight
            && self.pending < self.plan.unanswered
        {
            let index = self.plan.first_index + self.started;
            let source = self.plan.sources[self.started % self.plan.sources.len()];
            self.started += 1;
            if let Err(e) = self.connect(index, source, now, None) {
                *self.report.failed.entry(cause(&e).to_string()).or_default() += 1;
            }
        }
    }

    /// Opens subscriber `index`'s connection; `back` carries the state of a
    /// subscriber coming back after a drop.
    pub(super) fn connect(
        &mut self,
        index: usize,
        source: IpAddr,
        now: u64,
        back: Option<&Away>,
    ) -> io::Result<()> {
        let slow = self.plan.fault.slow_every > 0
            && (index as u64).is_multiple_of(self.plan.fault.slow_every);
        let node = back.map_or(0, |a| a.node);
        let addr = self.node_addr(index, node);
        let mut stream = open_socket_with(addr, source, |s| {
            if slow {
                // A small window: the server's queue fills sooner.
                s.set_recv_buffer_size(65536)?;
            }
            Ok(())
        })?;
        let mut path = self.path(index);
        let mut extra = String::new();
        if let Some(a) = back {
            // Resume after the last id seen, as a browser's client does:
            // EventSource sends Last-Event-ID, the others say `since`.
            if self.transport == Transport::Sse {
                extra = format!("Last-Event-ID: {}\r\n", a.resume_id);
            } else {
                add_query(&mut path, &self.plan.since_param, a.resume_id);
            }
        }
        let (reader, request) = self.subscribe_request(&path, addr, &extra);
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(
            &mut stream,
            Token(entry.key()),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        if back.is_some() {
            self.report.fault.reconnect_attempts += 1;
        }
        self.keys.insert(index, entry.key());
        entry.insert(Client {
            stream,
            state: State::Connecting,
            reader,
            index,
            started_ns: now,
            ids: back.map_or(Ids::default(), |a| a.ids),
            resume: (None, None),
            request,
            written: 0,
            retries: 0,
            retrying: false,
            resume_id: back.map_or(0, |a| a.resume_id),
            slow,
            away_since: back.map(|a| a.since_ns),
            attempt: back.map_or(0, |a| a.attempt),
            node,
        });
        self.connect_queue.push_back((now, key));
        self.pending += 1;
        self.connecting += 1;
        Ok(())
    }

    /// A subscriber's reader and its first request: a WebSocket's upgrade
    /// carries a fresh key, which its decoder checks the `101` against.
    /// `addr` is the node asked (its `Host`).
    fn subscribe_request(
        &mut self,
        path: &str,
        addr: std::net::SocketAddr,
        extra: &str,
    ) -> (Reader, Vec<u8>) {
        let dialect = self.plan.dialect;
        if self.transport != Transport::Ws {
            let req = request(path, &addr, self.transport, extra);
            return (Reader::new(self.transport, dialect), req);
        }
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        nonce[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        let key = ws::client::key(nonce);
        let host = addr.to_string();
        let req = ws::client::request(&host, path, &key, &[])
            .expect("a subscribe path from the plan holds no CR or LF");
        (Reader::General(Subscriber::websocket(dialect, &key)), req)
    }

    /// A masking key for the next frame a client sends.
    pub(super) fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }

    /// Queues `frame` on client `key`'s socket and writes what it can;
    /// `framing` counts it in the bytes on the wire (a pong, not a publish).
    /// False when the client is gone.
    pub(super) fn send_frame(&mut self, key: usize, frame: &[u8], framing: bool) -> bool {
        let Some(c) = self.clients.get_mut(key) else {
            return false;
        };
        if c.slow {
            return true;
        }
        if framing {
            self.report.wire.bytes_total += frame.len() as u64;
        }
        c.request.extend_from_slice(frame);
        let _ = self.poll.registry().reregister(
            &mut c.stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        );
        self.write(key);
        self.clients.contains(key)
    }

    /// Fails the connects that have taken longer than the plan allows.
    ///
    /// Connects start in time order, so they are queued in that order and
    /// only the front is looked at: a scan of every client here, once per
    /// loop turn, was half the worker's CPU while a broadcast arrived.
    pub(super) fn expire_connects(&mut self, now: u64) {
        let limit = self.plan.connect_timeout_ms * 1_000_000;
        while let Some(&(started, key)) = self.connect_queue.front() {
            // Only connects time out: a connection accepted but not answered
            // (a starved thread pool) stays open and is reported as waiting.
            // An entry whose client has connected, closed or been replaced
            // (slab keys are reused) is stale.
            let live = self
                .clients
                .get(key)
                .is_some_and(|c| c.state == State::Connecting && c.started_ns == started);
            if live && now - started <= limit {
                break;
            }
            self.connect_queue.pop_front();
            if live {
                self.fail(key, "timeout".into());
            }
        }
    }

    /// Client `key`'s socket is ready; `hangup` when the event also said the
    /// peer closed or the socket failed (see [`Worker::read`]).
    pub(super) fn handle(&mut self, key: usize, hangup: bool) {
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
                    c.state = State::Requested;
                    self.connecting -= 1;
                    self.open += 1;
                    // A connection bringing a subscriber back is counted by
                    // the reconnect figures, not as one more connection.
                    if c.away_since.is_none() {
                        let _ = self
                            .connect_hist
                            .record(((now - c.started_ns) / 1000).max(1));
                        self.report.connected += 1;
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return,
                Err(e) => return self.fail(key, cause(&e).into()),
            }
        }
        self.write(key);
        self.read(key, hangup);
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
                // A WebSocket writes after it is subscribed (pongs,
                // publishes): the server went away.
                Err(_) if c.state == State::Subscribed && self.transport == Transport::Ws => {
                    return self.dropped_by_server(key)
                }
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
                self.mark_subscribed(key);
            }
        }
    }

    /// Client `key` is subscribed: counted as new, or as back after a drop.
    fn mark_subscribed(&mut self, key: usize) {
        let now = mono_ns();
        let c = &mut self.clients[key];
        c.state = State::Subscribed;
        self.pending -= 1;
        match c.away_since.take() {
            Some(since) => {
                c.attempt = 0;
                self.report.fault.reconnects += 1;
                let _ = self
                    .reconnect_hist
                    .record((now.saturating_sub(since) / 1000).max(1));
            }
            None => self.report.subscribed += 1,
        }
        if c.slow {
            // A slow consumer: never read again.
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    /// Reads what client `key` has.
    ///
    /// # Draining readiness
    /// Sockets are edge-triggered, yet a read shorter than the buffer ends
    /// the turn: TCP returns less only when its receive queue is empty, and
    /// data arriving after that raises a new edge. That saves the second
    /// `recv` (the one answering `EAGAIN`) per delivery: on a broadcast,
    /// 105,000 `recv` calls for 100,000 deliveries. A FIN or an error that came with
    /// this event raises no new edge, so then (`hangup`) the socket is read
    /// to `EAGAIN` or its end.
    fn read(&mut self, key: usize, hangup: bool) {
        loop {
            let Some(c) = self.clients.get_mut(key) else {
                return;
            };
            if c.slow && c.state == State::Subscribed {
                return;
            }
            match c.stream.read(&mut self.buf) {
                Ok(0) => {
                    if c.state == State::Subscribed {
                        self.dropped_by_server(key);
                    } else {
                        self.fail(key, "closed".into());
                    }
                    return;
                }
                Ok(n) => {
                    self.report.wire.bytes_total += n as u64;
                    let data = std::mem::take(&mut self.buf);
                    let ok = self.feed(key, &data[..n]);
                    let short = n < data.len();
                    self.buf = data;
                    if !ok || (short && !hangup) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if c.state == State::Subscribed {
                        self.dropped_by_server(key);
                    } else {
                        self.fail(key, cause(&e).into());
                    }
                    return;
                }
            }
        }
    }

    /// Decodes bytes of client `key`; false when it was closed.
    fn feed(&mut self, key: usize, data: &[u8]) -> bool {
        let now = mono_ns();
        match &mut self.clients[key].reader {
            Reader::Head(head) => {
                head.extend_from_slice(data);
                self.feed_head(key, now)
            }
            Reader::Sse(_) => self.feed_sse(key, data, now),
            Reader::General(_) => self.feed_general(key, data, now),
        }
    }

    /// Client `key`'s head bytes so far: once they are whole, the reader of
    /// the body is chosen and given what came after them.
    fn feed_head(&mut self, key: usize, now: u64) -> bool {
        let c = &mut self.clients[key];
        let Reader::Head(buf) = &mut c.reader else {
            return true;
        };
        let head = match parse_response_head(buf) {
            Ok(Status::Partial) => return true,
            Ok(Status::Complete(h)) => h,
            Err(_) => {
                self.report.delivery.protocol_errors += 1;
                self.fail(key, "protocol".into());
                return false;
            }
        };
        if head.status == 200 && head.chunked {
            let body = buf.split_off(head.len);
            c.reader = Reader::Sse(SseReader::default());
            self.head(key, head) && self.feed_sse(key, &body, now)
        } else {
            let all = std::mem::take(buf);
            c.reader = Reader::General(Subscriber::with_dialect(self.transport, self.plan.dialect));
            self.feed_general(key, &all, now)
        }
    }

    /// Body bytes of client `key`'s SSE stream.
    fn feed_sse(&mut self, key: usize, data: &[u8], now: u64) -> bool {
        let Reader::Sse(reader) = &mut self.clients[key].reader else {
            return true;
        };
        // Taken out while its events are handled, and put back: no event
        // closes the client (the end of the stream is handled after).
        let mut reader = std::mem::take(reader);
        let fed = reader.feed(data, &mut |e| self.event(key, e, now));
        self.clients[key].reader = Reader::Sse(reader);
        match fed {
            Ok(false) => true,
            Ok(true) => {
                self.dropped_by_server(key);
                false
            }
            Err(_) => {
                self.report.delivery.protocol_errors += 1;
                self.fail(key, "protocol".into());
                false
            }
        }
    }

    /// Bytes of client `key` read by the general decoder.
    fn feed_general(&mut self, key: usize, mut data: &[u8], now: u64) -> bool {
        while !data.is_empty() {
            let c = &mut self.clients[key];
            let Reader::General(dec) = &mut c.reader else {
                return true;
            };
            let mut out = Vec::new();
            let used = match dec.feed(data, &mut out) {
                Ok(u) => u,
                Err(_) => {
                    self.report.delivery.protocol_errors += 1;
                    self.fail(key, "protocol".into());
                    return false;
                }
            };
            data = &data[used..];
            for ev in out {
                match ev {
                    ClientEvent::Head(h) => {
                        if !self.head(key, h) {
                            return false;
                        }
                    }
                    ClientEvent::Item(item) => self.item(key, item, now),
                    ClientEvent::Ping(payload) => {
                        self.report.wire.heartbeats += 1;
                        let mask = self.mask();
                        if !self.send_frame(key, &ws::client::pong(&payload, mask), true) {
                            return false;
                        }
                    }
                    // The end of the stream follows.
                    ClientEvent::Close { .. } => {}
                    ClientEvent::End => {
                        let c = &mut self.clients[key];
                        if c.retrying {
                            c.retrying = false;
                            c.reader.reset(self.transport, self.plan.dialect);
                            self.resend.push((now + RETRY_DELAY_NS, key));
                            continue;
                        }
                        if self.transport != Transport::Longpoll {
                            self.dropped_by_server(key);
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

    /// A response head for client `key`; false when it is not to be read on
    /// (closed, or a slow consumer from now on).
    fn head(&mut self, key: usize, h: ResponseHead) -> bool {
        self.report.wire.bytes_head += h.len as u64;
        // nchan ends a long-poll that timed out with 408.
        let empty_poll = self.plan.dialect == Dialect::Nchan
            && self.transport == Transport::Longpoll
            && matches!(h.status, 304 | 408);
        let c = &mut self.clients[key];
        if (500..=503).contains(&h.status) && !h.close && c.retries < self.plan.retry_5xx {
            // Read the error to its end, then ask again.
            c.retries += 1;
            c.retrying = true;
            self.report.retried += 1;
            return true;
        }
        let upgraded = self.transport == Transport::Ws && h.status == 101;
        if h.status != 200 && h.status != 204 && !empty_poll && !upgraded {
            self.fail(key, format!("http_{}", h.status));
            return false;
        }
        if h.status == 200 && (h.last_modified.is_some() || h.etag.is_some()) {
            c.resume = (h.last_modified, h.etag);
        }
        // A long-poll says what left the backlog in its head.
        if let Some(k) = h.missed {
            self.report.delivery.missed_reported += k;
            c.ids.handle_missed(k);
        }
        if c.state == State::Requested {
            self.mark_subscribed(key);
            if self.clients[key].slow {
                return false;
            }
        }
        true
    }

    /// An item the general decoder read.
    fn item(&mut self, key: usize, item: Item, now: u64) {
        match item {
            Item::Message { id, data } => self.event(key, Event::Message { id, data: &data }, now),
            Item::Opaque { data, .. } => self.message(key, None, &data, now),
            Item::Missed(k) => self.event(key, Event::Missed(k), now),
            Item::Heartbeat => self.event(key, Event::Heartbeat, now),
        }
    }

    /// What a stream carried to client `key`.
    fn event(&mut self, key: usize, event: Event<'_>, now: u64) {
        let c = &mut self.clients[key];
        if c.slow {
            return;
        }
        match event {
            Event::Message { id, data } => self.message(key, Some(id), data, now),
            Event::Missed(k) => {
                self.report.delivery.missed_reported += k;
                c.ids.handle_missed(k);
            }
            Event::Heartbeat => self.report.wire.heartbeats += 1,
        }
    }

    /// A message for client `key`, with the server's integer id when it
    /// gave one: checked, and its latency taken.
    fn message(&mut self, key: usize, id: Option<u64>, data: &str, now: u64) {
        let c = &mut self.clients[key];
        if c.slow {
            return;
        }
        if let Some(id) = id {
            c.resume_id = id;
        }
        self.report.wire.bytes_payload += data.len() as u64;
        let stamp = parse_stamp(data);
        let id = match self.plan.ids {
            IdCheck::Server => id,
            IdCheck::Sequence => stamp.and_then(|s| s.seq),
        };
        let before = c.ids.last();
        match id.map(|id| c.ids.handle_id(id)) {
            Some(Seen::Duplicate) => {
                self.report.delivery.duplicates += 1;
                return;
            }
            Some(Seen::OutOfOrder) => {
                self.report.delivery.out_of_order += 1;
                return;
            }
            Some(Seen::New(gap)) => {
                let id = id.unwrap_or_default();
                if id > before + 1 {
                    // A jump covered by missed reports is kept too: those
                    // ids did not arrive either.
                    let gap = gap.unwrap_or(Gap {
                        first: before + 1,
                        last: id - 1,
                        uncovered: 0,
                    });
                    self.gaps
                        .push((c.index, self.plan.channels.name(c.index), gap));
                }
            }
            // Nothing to check it by (an Opaque frame read by server ids, or
            // a body without a sequence): delivered, but counted unstamped.
            None => self.report.delivery.unstamped += 1,
        }
        self.report.delivery.received += 1;
        match stamp {
            Some(Stamp {
                scheduled_ns,
                sent_ns,
                ..
            }) => {
                // The stamps are the coordinator's clock: so is the receipt.
                let now = self.plan.coordinator_ns(now);
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
            None if id.is_some() => self.report.delivery.unstamped += 1,
            None => {}
        }
    }

    /// Sends again the requests of clients whose retry is due.
    pub(super) fn resend_due(&mut self, now: u64) {
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
                && (c.resume_id > 0 || c.resume.0.is_some() || c.resume.1.is_some())
            {
                self.repoll(key);
                continue;
            }
            let path = self.path(c.index);
            let target = self.plan.target;
            let (reader, again) = self.subscribe_request(&path, target, "");
            self.clients[key].reader = reader;
            self.ask(key, again);
        }
    }

    /// Asks again after a long-poll's answer, resuming after what it had.
    fn repoll(&mut self, key: usize) {
        let mut path = self.path(self.clients[key].index);
        let c = &mut self.clients[key];
        c.reader.reset(self.transport, self.plan.dialect);
        let mut extra = String::new();
        if self.plan.dialect == Dialect::Nchan {
            if let Some(lm) = &c.resume.0 {
                extra.push_str(&format!("If-Modified-Since: {lm}\r\n"));
            }
            if let Some(tag) = &c.resume.1 {
                extra.push_str(&format!("If-None-Match: {tag}\r\n"));
            }
        } else {
            add_query(&mut path, &self.plan.since_param, c.resume_id);
        }
        let again = request(&path, &self.plan.target, self.transport, &extra);
        self.ask(key, again);
    }

    /// Sends client `key` a request again on its connection.
    fn ask(&mut self, key: usize, request: Vec<u8>) {
        let c = &mut self.clients[key];
        c.request = request;
        c.written = 0;
        let _ = self.poll.registry().reregister(
            &mut c.stream,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        );
        self.write(key);
    }

    /// The address of subscriber `index` on its `node`-th node.
    fn node_addr(&self, index: usize, node: usize) -> std::net::SocketAddr {
        match self.plan.nodes.len() {
            0 => self.plan.target,
            n => self.plan.nodes[(index + node) % n],
        }
    }

    /// The subscribe path of subscriber `index`.
    fn path(&self, index: usize) -> String {
        self.plan
            .path
            .replace("{channel}", &self.plan.channels.name(index))
            .replace("{transport}", self.transport.name())
    }
}

/// Appends `param=value` to `path`'s query.
fn add_query(path: &mut String, param: &str, value: u64) {
    path.push(if path.contains('?') { '&' } else { '?' });
    path.push_str(&format!("{param}={value}"));
}

/// The `failed` cause of an error.
pub(super) fn cause(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "refused",
        Some(libc::ETIMEDOUT) => "timeout",
        Some(libc::ECONNRESET) | Some(libc::EPIPE) => "reset",
        Some(libc::EADDRNOTAVAIL) => "no_ports",
        Some(libc::EMFILE) | Some(libc::ENFILE) => "fd_limit",
        _ => "other",
    }
}
