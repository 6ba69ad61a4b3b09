//! One HTTP connection of a Comet server, sans-IO, and the WebSocket it may
//! become (`conn/ws.rs`).
//!
//! The dispatcher feeds it bytes read (`handle_read`), bytes written
//! (`handle_written`), the passing of time (`handle_timeout`), messages for
//! its subscription (`handle_message`) and the answers to the events it
//! raised (`handle_subscribed`, `handle_published`, `handle_refused`,
//! `handle_stats`). It takes out bytes to write (`poll_transmit`), when to
//! shut the write side down (`poll_shutdown`), the next deadline
//! (`poll_timeout`) and events (`poll_event`); `is_done` says when to close.
//! While it holds a subscription it expects nothing from the peer, except as
//! a WebSocket ([`Conn::is_duplex`]), whose client may send at any time.
//!
//! # Buffer ownership
//! Bytes read are copied into the connection only while a request is
//! incomplete; once it is parsed the buffer is freed, so an idle subscriber
//! holds no input buffer. Output is a queue of `Bytes`: message frames are
//! shared handles to one encoding, never copied per subscriber. A
//! readiness dispatcher borrows the queue as `IoSlice`s
//! ([`Conn::poll_transmit`]) for one `writev`; a completion dispatcher, whose
//! kernel reads the buffers after the call returns, clones the `Bytes`
//! handles ([`Conn::pending`]) and holds them until the write completes.
//!
//! # Events
//! An event is answered once: a `Subscribe` with `handle_subscribed` or
//! `handle_refused`, a `Publish` with `handle_published` or
//! `handle_refused`, `Stats` with `handle_stats`; `Unsubscribe`,
//! `Unresponsive` and `IdleTimeout` need none. A WebSocket's publishes (its text frames) are
//! answered the same way, several may wait at once, and while any does, what
//! the client sends next is kept, not decoded.
//! [`crate::glue::drain`] does this against a [`crate::glue::Backend`],
//! after every `handle_*` call. The answer may come later than the event (a
//! broker on another thread): until it does, input is kept but not acted on.
//!
//! # Closing
//! A connection ends in one of three ways. Aborted (the peer is gone, or too
//! slow): [`Conn::is_done`] at once and unsent output is dropped. Closed after
//! a last response: `is_done` once that response is written. Or, when the
//! last response was given before its request was read whole (a `401` or
//! `413` before the body, a head refused before its end, requests pipelined
//! after a `Connection: close`), *lingering* as nginx does: once the
//! response is written, [`Conn::poll_shutdown`] asks for the write side to be
//! shut down, and whatever the client still sends is read and discarded,
//! until it closes its side or [`Config::linger_timeout`] passes without a
//! byte, for at most [`Config::linger_time`] and [`Config::linger_bytes`].
//! Closing with those bytes unread would make the kernel answer them with a
//! reset, which destroys the response on its way: the client would see
//! "connection reset" or "broken pipe" instead of the answer. A WebSocket
//! whose server sends the first close frame closes the same way after it:
//! the client's answer (a close frame of its own) and whatever it sent
//! meanwhile are read and discarded, so the close frame is never lost to a
//! reset. One whose client closed first has its close echoed and is closed
//! once the echo is written: the client sends nothing after its close.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::Config;
use crate::hub::Replay;
use crate::message::Message;
use crate::request::{parse_head, Head, Status, MAX_HEADER_BLOCK, MAX_REQUEST_LINE};
use crate::route::{route, Route};
use crate::transport::{self, Frame, Transport};
use deadline::Deadline;

mod bearer;
mod busy;
mod deadline;
mod respond;
mod start;
mod ws;

pub use respond::service_unavailable;

/// Something the dispatcher must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Join `channel`; answer with [`Conn::handle_subscribed`], or
    /// [`Conn::handle_refused`].
    Subscribe {
        channel: Arc<str>,
        since: Option<u64>,
    },
    /// Leave `channel` (long-poll answered, client gone, or dropped as slow).
    /// The name is the hub's, as the subscribe's answer gave it.
    Unsubscribe { channel: Arc<str> },
    /// A WebSocket client answered no ping for two heartbeats and was cut
    /// off (its `Unsubscribe` comes too); count it. Needs no answer.
    Unresponsive,
    /// A connection that sent nothing of a request within its deadline (a
    /// new one's header timeout, a kept-alive one's idle timeout) was
    /// closed; count it. Needs no answer.
    IdleTimeout,
    /// Publish `data`; answer with [`Conn::handle_published`], or
    /// [`Conn::handle_refused`].
    Publish { channel: Arc<str>, data: Box<str> },
    /// Answer with [`Conn::handle_stats`].
    Stats,
}

/// Why a subscribe or a publish is refused. Each is answered `503`; a
/// WebSocket's publish is answered by a close frame instead (see
/// `conn/ws.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server is stopping and takes no more messages: the connection
    /// closes, so that the client goes elsewhere (or comes back).
    Stopping,
    /// The request would make a channel past `Config::max_channels`; the
    /// connection stays as it was.
    ChannelLimit,
    /// The broker that numbers this server's messages (see `docs/DESIGN.md`,
    /// Several nodes) cannot be reached now: nothing was published or
    /// subscribed, and the connection stays, so the client may try again
    /// here or on another node.
    Broker,
}

#[derive(Debug)]
enum Phase {
    /// Between requests, no byte of the next one yet.
    Idle,
    /// Receiving a request head.
    Head,
    /// Receiving a publish body of `len` bytes.
    Body { channel: Arc<str>, len: usize },
    /// An event was raised; its answer is due.
    Waiting(Pending),
    /// Holding a long-poll or a stream.
    Subscribed(Sub),
    /// The last response was given before its request was read whole; what
    /// the client still sends is discarded (see `# Closing`).
    Lingering(Linger),
    /// Nothing more is read or queued; the socket closes once output is flushed.
    Closed,
}

#[derive(Debug)]
struct Linger {
    /// When the write side was shut down ([`Conn::poll_shutdown`]); `None`
    /// while the response is still being written.
    shut: Option<Instant>,
    /// Bytes read and discarded.
    discarded: usize,
}

#[derive(Debug)]
enum Pending {
    Subscribe {
        channel: Arc<str>,
        transport: Transport,
        /// Milliseconds, so that a waiting subscribe is no larger than a
        /// held one.
        poll_timeout_ms: u32,
    },
    /// A WebSocket handshake was accepted and its subscribe raised; the
    /// `101` goes out with the answer. Boxed, channel and all: a
    /// connection waits so only for an instant, and `Phase` stays as small
    /// as a held subscription needs.
    Upgrade(Box<ws::Upgrade>),
    Publish,
    Stats,
}

#[derive(Debug)]
struct Sub {
    channel: Arc<str>,
    transport: Transport,
    /// Highest id handed to this subscriber; older ones are duplicates.
    last_id: u64,
    chunked: bool,
    /// The fields below are a WebSocket's only; they sit here, not in a
    /// struct of their own, so that `Sub` (and so every `Conn`) is no larger
    /// than a long-poll's. What a frame being read and publishes awaiting
    /// their answers need is kept in the busy state, and only while there
    /// are any (`conn/busy.rs`).
    /// Pings sent since the client's last pong.
    pings: u8,
    /// The handshake carried the publish token (or none is needed).
    may_publish: bool,
}

impl Sub {
    fn new(channel: Arc<str>, transport: Transport, last_id: u64, chunked: bool) -> Sub {
        Sub {
            channel,
            transport,
            last_id,
            chunked,
            pings: 0,
            may_publish: false,
        }
    }
}

/// Server side of one HTTP/1.x connection.
#[derive(Debug)]
pub struct Conn {
    config: Arc<Config>,
    phase: Phase,
    /// Input, output and events, only while there are any (`conn/busy.rs`).
    busy: Option<Box<busy::Busy>>,
    /// The phase's deadline: a request's (its head and body), the idle one
    /// between requests, a lingering close's or a last response's drain; the
    /// heartbeat or poll timeout while subscribed. One field, not one per
    /// kind: no phase has two.
    deadline: Deadline,
    http10: bool,
    keep_alive: bool,
    /// Output is discarded: the peer is gone or was too slow.
    aborted: bool,
    dropped: bool,
    /// No request has begun yet: the header deadline set at accept still runs.
    fresh: bool,
    /// The request being answered was not read to its end: its head was
    /// refused before its end, or its body before it came.
    unread: bool,
}

/// The last id a subscriber has had once `replay` is queued.
fn replay_last_id(replay: &Replay) -> u64 {
    replay
        .messages
        .last()
        .map_or(replay.last_id, |m| m.id().max(replay.last_id))
}

/// Input held for a request that is still arriving, beyond which the peer is cut off.
fn max_input(config: &Config) -> usize {
    (MAX_REQUEST_LINE + MAX_HEADER_BLOCK + 1024).saturating_add(config.max_message)
}

impl Conn {
    /// A connection accepted at `now`.
    pub fn new(config: Arc<Config>, now: Instant) -> Conn {
        let deadline = now + config.header_timeout;
        Conn {
            config,
            phase: Phase::Idle,
            busy: None,
            deadline: Deadline::new(Some(deadline)),
            http10: false,
            keep_alive: true,
            aborted: false,
            dropped: false,
            fresh: true,
            unread: false,
        }
    }

    // ----- inputs -----

    /// Bytes read from the peer.
    pub fn handle_read(&mut self, data: &[u8], now: Instant) {
        match self.phase {
            Phase::Closed => return,
            Phase::Lingering(ref mut l) => {
                l.discarded += data.len();
                if l.discarded > self.config.linger_bytes {
                    self.close(true);
                } else if let Some(shut) = l.shut {
                    self.set_deadline(Some(self.linger_deadline(shut, now)));
                }
                return;
            }
            Phase::Subscribed(ref s) if s.transport == Transport::Ws => {
                return self.ws_read(data, now)
            }
            // A streaming client has nothing more to say; what it sends is ignored.
            Phase::Subscribed(ref s) if s.transport.is_streaming() => return,
            Phase::Idle if !data.is_empty() => self.begin_request(now),
            _ => {}
        }
        if !data.is_empty() {
            self.busy().input.extend_from_slice(data);
        }
        self.advance_input(now);
        // Checked after parsing, so that a head refused before its body (401,
        // 413) is answered even when that body came in the same read.
        if !matches!(self.phase, Phase::Closed) && self.input().len() > max_input(&self.config) {
            self.close(true);
        }
    }

    /// The peer closed its side.
    pub fn handle_eof(&mut self, now: Instant) {
        match self.phase {
            // A response being written is still flushed.
            Phase::Closed => {}
            _ => self.close(false),
        }
        if self.out().is_empty() {
            self.aborted = true;
        } else {
            self.set_deadline(Some(now + self.config.header_timeout));
        }
    }

    /// The socket failed (reset, broken pipe) or the dispatcher gives up on it.
    pub fn handle_close(&mut self) {
        self.close(true);
    }

    /// Time passed; call at or after [`Conn::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.get().is_none_or(|d| d > now) {
            return;
        }
        self.set_deadline(None);
        match &self.phase {
            Phase::Head | Phase::Body { .. } => {
                self.keep_alive = false;
                // Closed, not lingering: a client this slow is not waited
                // for again (nginx sends nothing at all).
                self.unread = false;
                self.take_input();
                self.respond_text(408, "request timeout", now);
            }
            // Output still queued means the peer stopped reading, or a
            // lingering close is over: give up on it.
            Phase::Idle => {
                self.raise(Event::IdleTimeout);
                self.close(true)
            }
            Phase::Lingering(_) | Phase::Closed => self.close(true),
            Phase::Waiting(_) => {}
            Phase::Subscribed(sub) => {
                if sub.transport == Transport::Ws {
                    self.ws_heartbeat(now);
                } else if sub.transport.is_streaming() {
                    let hb = transport::heartbeat(sub.transport, sub.chunked);
                    self.set_deadline(Some(now + self.config.heartbeat));
                    self.push(hb);
                } else {
                    let channel = sub.channel.clone();
                    self.raise(Event::Unsubscribe { channel });
                    self.finish_request(now);
                    self.respond(204, &[], Some(Bytes::new()), now);
                    self.advance_input(now);
                }
            }
        }
    }

    /// The dispatcher's answer to [`Event::Subscribe`].
    ///
    /// # Replay and the output bound
    /// A streaming subscriber gets its response head, prelude, missed notice
    /// and every backlog message after `since` queued at once, and none of
    /// it counts against `max_queue`: a client that reconnects must get its
    /// backlog however large the messages are once escaped (a 64 KiB message
    /// of `<` is a ~384 KiB iframe frame), or it would be dropped again on
    /// every reconnect. The replay goes out as the socket drains; the bound
    /// applies to what is published after it (see [`Conn::handle_message`]).
    /// The replay is still bounded: at most the channel's backlog, whose
    /// frames are `Bytes` handles shared with the hub's copies of the
    /// messages, so queueing it whole costs no more than writing it out
    /// progressively would. A client that never reads keeps those frames
    /// alive after the hub has let them go, until what is published after
    /// its replay passes the bound and it is dropped.
    ///
    /// # The channel's name
    /// The connection adopts the hub's name of the channel
    /// ([`Replay::channel`]) in place of the one it parsed, so a message is
    /// told to be for this subscription by comparing two pointers, and the
    /// name is allocated once per channel, not once per subscriber.
    pub fn handle_subscribed(&mut self, replay: Replay, now: Instant) {
        let (asked, transport, poll_timeout) = match std::mem::replace(&mut self.phase, Phase::Idle)
        {
            Phase::Waiting(Pending::Subscribe {
                channel,
                transport,
                poll_timeout_ms,
            }) => (
                channel,
                transport,
                Duration::from_millis(poll_timeout_ms.into()),
            ),
            Phase::Waiting(Pending::Upgrade(upgrade)) => {
                debug_assert_eq!(
                    *upgrade.channel, *replay.channel,
                    "a replay of another channel"
                );
                return self.start_ws(*upgrade, replay, now);
            }
            _ => {
                // An answer with no subscribe waiting for it is a dispatcher
                // bug; staying closed is the safe reading of it.
                self.phase = Phase::Closed;
                return;
            }
        };
        debug_assert_eq!(*asked, *replay.channel, "a replay of another channel");
        let last_id = replay_last_id(&replay);
        let channel = replay.channel;
        if transport == Transport::Longpoll {
            if replay.messages.is_empty() && replay.missed == 0 {
                self.set_deadline(Some(now + poll_timeout));
                self.phase = Phase::Subscribed(Sub::new(channel, transport, last_id, false));
            } else {
                self.raise(Event::Unsubscribe { channel });
                self.respond_poll(&replay.messages, replay.missed, now);
            }
            self.advance_input(now);
            return;
        }
        self.start_stream(
            channel,
            transport,
            &replay.messages,
            replay.missed,
            last_id,
            now,
        );
    }

    /// A message published on the subscribed channel. Returns whether it was
    /// handed to this subscriber (not a duplicate, not after the end).
    ///
    /// # A skip is a loss, said
    /// Messages reach a subscriber in id order; one whose id skips ids after
    /// the last one handed on means those will never come (a node that
    /// follows a broker lost them from the shared backlog while it was
    /// away), so the subscriber is told how many it missed, as a replay
    /// would: the missed notice before the frame, or `X-Comet-Missed` on a
    /// long-poll's answer. A hub that numbers its own messages never skips.
    ///
    /// A streaming subscriber that is already behind by more than
    /// `max_queue` unsent bytes (its replay not counted) is dropped instead.
    /// The bound is on what waits *before* the new frame, so a frame is always
    /// taken by a subscriber that has caught up, however much escaping grew
    /// it, and the queue stays below `max_queue` plus one frame (plus the
    /// unsent part of a replay).
    pub fn handle_message(&mut self, message: &Arc<Message>, now: Instant) -> bool {
        let Phase::Subscribed(sub) = &mut self.phase else {
            return false;
        };
        // Ids are per channel: another channel's message is not ours,
        // whatever its id. The hub's messages carry the very `Arc` adopted
        // at subscribe, so the string is compared only for a stray message.
        let ours =
            Arc::ptr_eq(message.channel(), &sub.channel) || **message.channel() == *sub.channel;
        if message.id() <= sub.last_id || !ours {
            return false;
        }
        let missed = message.id() - sub.last_id - 1;
        sub.last_id = message.id();
        if sub.transport == Transport::Longpoll {
            let channel = sub.channel.clone();
            self.raise(Event::Unsubscribe { channel });
            self.finish_request(now);
            self.respond_poll(std::slice::from_ref(message), missed, now);
            self.advance_input(now);
        } else {
            let (transport, chunked) = (sub.transport, sub.chunked);
            if missed > 0 {
                self.push_live(transport::missed_notice(transport, missed, chunked));
            }
            self.push_live(message.frame(Frame::Stream { transport, chunked }));
        }
        true
    }

    /// The dispatcher's answer to [`Event::Publish`]. A WebSocket's answer
    /// is the message itself, coming back on the channel.
    pub fn handle_published(&mut self, id: u64, subscribers: u64, now: Instant) {
        if matches!(self.phase, Phase::Waiting(Pending::Publish)) {
            let body = format!("{{\"id\":{id},\"subscribers\":{subscribers}}}");
            self.respond_json(202, body, now);
            self.advance_input(now);
        } else {
            self.ws_published(now);
        }
    }

    /// The dispatcher's other answer to [`Event::Publish`] and
    /// [`Event::Subscribe`]: `503`. When the server is stopping the
    /// connection closes, so that the client goes elsewhere (or comes back)
    /// rather than send on a connection that is about to end; past the
    /// channel limit, or with the broker unreachable, it stays as the
    /// request left it.
    pub fn handle_refused(&mut self, refusal: Refusal, now: Instant) {
        if self.is_duplex() {
            return self.ws_refused(refusal, now);
        }
        if !matches!(
            self.phase,
            Phase::Waiting(Pending::Publish | Pending::Subscribe { .. } | Pending::Upgrade(_))
        ) {
            return;
        }
        let (extra, text) = match refusal {
            Refusal::Stopping => {
                self.keep_alive = false;
                (
                    Some(("Retry-After", "1".to_string())),
                    "server is stopping\n",
                )
            }
            Refusal::ChannelLimit => (None, "too many channels\n"),
            Refusal::Broker => (
                Some(("Retry-After", "1".to_string())),
                "broker unavailable\n",
            ),
        };
        let extra: Vec<_> = extra.into_iter().collect();
        self.respond_body(503, &extra, "text/plain", text.into(), now);
        self.advance_input(now);
    }

    /// The server stops: nothing more is read or queued, a held long-poll
    /// or stream ends, and what is already queued (a response, messages
    /// handed to this subscriber) is still written; [`Conn::is_done`] once
    /// it is. The dispatcher bounds how long it waits for that; a request
    /// still arriving is dropped unanswered.
    pub fn handle_shutdown(&mut self) {
        if self.is_duplex() {
            self.ws_going_away();
        } else if !matches!(self.phase, Phase::Closed) {
            self.close(false);
        }
        // What a closed connection still had to drain runs on the
        // dispatcher's stop deadline, not on this one.
        self.set_deadline(None);
    }

    /// The dispatcher's answer to [`Event::Stats`]: the JSON document.
    pub fn handle_stats(&mut self, json: String, now: Instant) {
        if matches!(self.phase, Phase::Waiting(Pending::Stats)) {
            self.respond_json(200, json, now);
            self.advance_input(now);
        }
    }

    // ----- outputs -----

    #[must_use = "every event must be answered"]
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.busy.as_mut()?.events.pop_front();
        self.tidy();
        e
    }

    /// Fills `iov` with the output waiting to be written, oldest first, and
    /// returns how many slices it filled: 0 when there is nothing to write.
    /// Tell the connection what the write took with [`Conn::handle_written`].
    #[must_use = "the slices filled are what to write"]
    pub fn poll_transmit<'a>(&'a self, iov: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, b) in iov.iter_mut().zip(self.out()) {
            *slot = IoSlice::new(b);
            n += 1;
        }
        n
    }

    /// The output waiting to be written, as `Bytes` handles: for a
    /// completion dispatcher, which must own what the kernel reads until the
    /// write completes (see `# Buffer ownership`).
    pub fn pending(&self) -> &VecDeque<Bytes> {
        self.out()
    }

    pub fn has_pending(&self) -> bool {
        !self.out().is_empty()
    }

    /// Whether to shut the socket's write side down now: the last response
    /// of a lingering close is written (see `# Closing`). True once; from
    /// then on, read and feed what arrives until [`Conn::is_done`].
    #[must_use = "a lingering close needs the write side shut down"]
    pub fn poll_shutdown(&mut self, now: Instant) -> bool {
        let pending = self.has_pending();
        let Phase::Lingering(l) = &mut self.phase else {
            return false;
        };
        if l.shut.is_some() || pending {
            return false;
        }
        l.shut = Some(now);
        self.set_deadline(Some(self.linger_deadline(now, now)));
        true
    }

    /// `n` bytes of the output were written.
    ///
    /// After an abort ([`Conn::handle_close`], a slow subscriber dropped) the
    /// output is gone and this does nothing: a completion-based dispatcher may
    /// learn of a write after the connection was given up.
    pub fn handle_written(&mut self, mut n: usize) {
        if self.aborted || n == 0 {
            return;
        }
        let b = self.busy.as_mut().expect("advanced past pending output");
        b.queued -= n;
        // Output leaves from the front, where the replay is.
        b.replay_queued = b.replay_queued.saturating_sub(n);
        while n > 0 {
            let front = b.out.front_mut().expect("advanced past pending output");
            if n >= front.len() {
                n -= front.len();
                b.out.pop_front();
            } else {
                bytes::Buf::advance(front, n);
                n = 0;
            }
        }
        if b.out.is_empty() && b.out.capacity() > 0 {
            b.out = VecDeque::new();
        }
        self.tidy();
    }

    /// The next time [`Conn::handle_timeout`] is due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_done() {
            return None;
        }
        self.deadline.get()
    }

    /// The socket should be closed now.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Closed) && (self.aborted || !self.has_pending())
    }

    /// The connection was cut off because its output queue passed the bound.
    pub fn is_dropped(&self) -> bool {
        self.dropped
    }

    /// The channel and transport of the subscription held, if any.
    pub fn subscription(&self) -> Option<(&Arc<str>, Transport)> {
        match &self.phase {
            Phase::Subscribed(s) => Some((&s.channel, s.transport)),
            Phase::Waiting(Pending::Subscribe {
                channel, transport, ..
            }) => Some((channel, *transport)),
            Phase::Waiting(Pending::Upgrade(u)) => Some((&u.channel, Transport::Ws)),
            _ => None,
        }
    }

    /// Whether the connection holds a subscription whose client may send at
    /// any time (a WebSocket): a dispatcher that waits on its inbox rather
    /// than its socket must wake for bytes to read too, not only for a
    /// hang-up.
    pub fn is_duplex(&self) -> bool {
        matches!(&self.phase, Phase::Subscribed(s) if s.transport == Transport::Ws)
    }

    /// Whether an event's answer is due: the connection acts on nothing
    /// until its owner hands it one (see `# Events`).
    pub fn is_waiting(&self) -> bool {
        matches!(self.phase, Phase::Waiting(_))
    }

    /// Whether an answer to one of its events is still to be handed to it:
    /// a request waiting ([`Conn::is_waiting`]), or publishes of a
    /// WebSocket, which goes on receiving meanwhile. A dispatcher whose
    /// answers can come later hands them on only then.
    pub fn awaits_answer(&self) -> bool {
        self.is_waiting() || self.ws_publishing()
    }

    /// Whether bytes from the peer are expected now (idle, mid-request, or
    /// lingering): thread dispatchers block on the socket only then, and on
    /// messages otherwise.
    pub fn is_reading(&self) -> bool {
        matches!(
            self.phase,
            Phase::Idle | Phase::Head | Phase::Body { .. } | Phase::Lingering(_)
        )
    }

    // ----- internals -----

    fn advance_input(&mut self, now: Instant) {
        loop {
            match &self.phase {
                Phase::Idle | Phase::Head => {
                    if self.input().is_empty() {
                        break;
                    }
                    if matches!(self.phase, Phase::Idle) {
                        self.begin_request(now);
                    }
                    match parse_head(self.input()) {
                        Err(e) => {
                            self.keep_alive = false;
                            // Refused before its end: the rest is on its way.
                            self.unread = true;
                            self.respond_text(e.status(), "bad request head", now);
                        }
                        Ok(Status::Partial) => break,
                        Ok(Status::Complete(head)) => {
                            self.busy().input.drain(..head.len);
                            self.handle_head(head, now);
                        }
                    }
                }
                Phase::Body { channel, len } => {
                    let len = *len;
                    if self.input().len() < len {
                        break;
                    }
                    let channel = channel.clone();
                    self.unread = false;
                    let body: Vec<u8> = self.busy().input.drain(..len).collect();
                    match String::from_utf8(body) {
                        Ok(data) => {
                            self.set_deadline(None);
                            self.phase = Phase::Waiting(Pending::Publish);
                            self.raise(Event::Publish {
                                channel,
                                data: data.into_boxed_str(),
                            });
                        }
                        Err(_) => self.respond_text(400, "message is not UTF-8", now),
                    }
                }
                Phase::Waiting(_) | Phase::Subscribed(_) | Phase::Lingering(_) | Phase::Closed => {
                    break
                }
            }
        }
        if let Some(b) = self.busy.as_mut() {
            if b.input.is_empty() && b.input.capacity() > 0 {
                b.input = Vec::new();
            }
        }
        self.tidy();
    }

    fn set_deadline(&mut self, at: Option<Instant>) {
        self.deadline = Deadline::new(at);
    }

    /// The first byte of a request arrived: its header deadline runs from
    /// now, or from accept for the connection's first request.
    fn begin_request(&mut self, now: Instant) {
        self.phase = Phase::Head;
        self.unread = false;
        if !std::mem::take(&mut self.fresh) {
            self.set_deadline(Some(now + self.config.header_timeout));
        }
    }

    fn handle_head(&mut self, head: Head, now: Instant) {
        self.http10 = head.http10;
        self.keep_alive = head.keep_alive;
        let has_body = head.content_length.unwrap_or(0) > 0;
        self.unread = has_body || head.transfer_encoding;
        if head.transfer_encoding {
            self.keep_alive = false;
            return self.respond_text(501, "request bodies need Content-Length", now);
        }
        let route = route(&head);
        if has_body && !matches!(route, Ok(Route::Publish { .. })) {
            // A body we do not read would be taken for the next request.
            self.keep_alive = false;
        }
        match route {
            Err(e) => self.respond_route_error(e, now),
            Ok(Route::Preflight) => self.respond_preflight(now),
            Ok(Route::Page) => self.respond_page(now),
            Ok(Route::Stats) => {
                self.set_deadline(None);
                self.phase = Phase::Waiting(Pending::Stats);
                self.raise(Event::Stats);
            }
            Ok(Route::Subscribe {
                channel,
                transport: Transport::Ws,
                since,
                token,
                ..
            }) => self.begin_upgrade(channel, since, token, &head, now),
            Ok(Route::Subscribe {
                channel,
                transport,
                since,
                timeout,
                ..
            }) => self.begin_subscribe(channel, transport, since, timeout),
            Ok(Route::Publish { channel }) => self.begin_publish(channel, &head, now),
        }
    }

    fn finish_request(&mut self, _now: Instant) {
        self.set_deadline(None);
        self.phase = Phase::Idle;
    }

    fn after_response(&mut self, now: Instant) {
        if self.keep_alive {
            self.phase = Phase::Idle;
            self.set_deadline(Some(now + self.config.idle_timeout));
        } else {
            // More of what the client sent is still to come, or came and
            // is unread: see `# Closing`.
            let linger = std::mem::take(&mut self.unread) || !self.input().is_empty();
            self.phase = if linger {
                Phase::Lingering(Linger {
                    shut: None,
                    discarded: self.input().len(),
                })
            } else {
                Phase::Closed
            };
            self.take_input();
            // The last response gets as long to drain as a request gets to arrive.
            self.set_deadline(Some(now + self.config.header_timeout));
        }
    }

    /// When a lingering close whose write side was shut at `shut` ends, if
    /// nothing more arrives after `now`.
    fn linger_deadline(&self, shut: Instant, now: Instant) -> Instant {
        (shut + self.config.linger_time).min(now + self.config.linger_timeout)
    }

    fn push(&mut self, b: Bytes) {
        if self.aborted || b.is_empty() {
            return;
        }
        let busy = self.busy();
        busy.queued += b.len();
        busy.out.push_back(b);
    }

    /// Queues a live frame, or drops the subscriber when the unsent output
    /// already waiting (a replay aside) passes the bound.
    fn push_live(&mut self, frame: Bytes) {
        if self.lag() > self.config.max_queue {
            self.dropped = true;
            self.close(true);
        } else {
            self.push(frame);
        }
    }

    fn close(&mut self, abort: bool) {
        let channel = match &self.phase {
            Phase::Subscribed(s) => Some(s.channel.clone()),
            _ => None,
        };
        if let Some(channel) = channel {
            self.raise(Event::Unsubscribe { channel });
        }
        self.phase = Phase::Closed;
        if let Some(b) = self.busy.as_mut() {
            if abort {
                b.out = VecDeque::new();
                b.queued = 0;
                b.replay_queued = 0;
            }
            b.input = Vec::new();
            b.ws = None;
        }
        if abort {
            self.aborted = true;
        }
        self.tidy();
        self.set_deadline(None);
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;

    /// Every dispatcher keeps one `Conn` per connection; an idle subscriber
    /// holds only this (see `docs/DESIGN.md`, "Memory per connection"), so
    /// growing it must be a choice, not an accident.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_idle_connection_stays_small() {
        assert!(size_of::<Conn>() <= 64, "Conn: {}", size_of::<Conn>());
        assert!(size_of::<Phase>() <= 32, "Phase: {}", size_of::<Phase>());
        assert!(size_of::<Sub>() <= 32, "Sub: {}", size_of::<Sub>());
    }
}
