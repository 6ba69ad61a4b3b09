//! A connection that became a WebSocket (`docs/DESIGN.md`, "WebSocket"):
//! the handshake, the client's frames (publishes, pings, pongs, its close),
//! the heartbeat ping and the dead-client drop, and the closing handshake.
//!
//! # Memory
//! An idle WebSocket subscriber holds what an idle SSE subscriber holds: its
//! `Sub` carries two flag bytes more, in room the struct had anyway. The
//! decoder and the count of publishes awaiting answers are boxed in
//! [`Reading`] only while a frame is half read, a fragmented message is
//! being joined, or a publish waits; between messages the box is gone.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::bearer::{bearer_matches, token_matches};
use super::{max_input, replay_last_id, Conn, Event, Linger, Pending, Phase, Refusal, Sub};
use crate::hub::Replay;
use crate::request::Head;
use crate::transport::{self, Frame, Transport};
use crate::ws::{close, encode, handshake, Decoder, Event as WsEvent, Opcode};

/// An accepted handshake, kept while its subscribe is answered.
#[derive(Debug)]
pub(super) struct Upgrade {
    pub(super) channel: Arc<str>,
    accept: handshake::Accept,
    may_publish: bool,
}

/// What a WebSocket holds only while it reads a frame or publishes wait.
#[derive(Debug)]
pub(super) struct Reading {
    decoder: Decoder,
    /// Publishes raised and not answered yet; input waits until none is.
    publishing: u32,
}

/// The frame of a WebSocket message (never chunked).
const FRAME: Frame = Frame::Stream {
    transport: Transport::Ws,
    chunked: false,
};

impl Conn {
    /// A subscribe asking for a WebSocket: refused with its status, or
    /// accepted and its subscribe raised (the `101` waits for the answer, so
    /// that a refused subscribe is still a plain `503`).
    pub(super) fn begin_upgrade(
        &mut self,
        channel: String,
        since: Option<u64>,
        token: Option<String>,
        head: &Head,
        now: Instant,
    ) {
        if head.content_length.unwrap_or(0) > 0 {
            return self.respond_text(400, "a WebSocket upgrade has no body", now);
        }
        let u = &head.upgrade;
        let req = handshake::Request {
            // Only a GET routes to a subscribe.
            method: "GET",
            http11: !head.http10,
            upgrade: u.upgrade.as_deref(),
            connection: u.connection.as_deref(),
            key: u.key.as_deref(),
            version: u.version.as_deref(),
            origin: u.origin.as_deref(),
        };
        let allowed = self.config.allow_origin.as_deref().filter(|o| *o != "*");
        let accept = match handshake::accept(&req, allowed) {
            Ok(accept) => accept,
            Err(refusal) => {
                let extra: Vec<(&str, String)> = refusal
                    .headers()
                    .iter()
                    .map(|(k, v)| (*k, v.to_string()))
                    .collect();
                let text = format!("{}\n", refusal.message());
                return self.respond_body(refusal.status(), &extra, "text/plain", text, now);
            }
        };
        let may_publish = match &self.config.publish_token {
            None => true,
            Some(t) => {
                bearer_matches(head.authorization.as_deref().unwrap_or(""), t)
                    || token.is_some_and(|given| token_matches(&given, t))
            }
        };
        let channel: Arc<str> = channel.into();
        self.set_deadline(None);
        self.phase = Phase::Waiting(Pending::Upgrade(Box::new(Upgrade {
            channel: channel.clone(),
            accept,
            may_publish,
        })));
        self.raise(Event::Subscribe { channel, since });
    }

    /// The subscribe of an accepted handshake was answered: the `101`, the
    /// missed notice and the replay, all queued at once and none of it lag
    /// (as a stream's start, see [`Conn::handle_subscribed`]); then whatever
    /// the client sent after its handshake is read as frames.
    pub(super) fn start_ws(&mut self, upgrade: Upgrade, replay: Replay, now: Instant) {
        // The connection never goes back to HTTP.
        self.keep_alive = false;
        self.push(upgrade.accept.response_head());
        if replay.missed > 0 {
            self.push(transport::missed_notice(
                Transport::Ws,
                replay.missed,
                false,
            ));
        }
        for m in &replay.messages {
            self.push(m.frame(FRAME));
        }
        self.queued_is_replay();
        self.set_deadline(Some(now + self.config.heartbeat));
        let last_id = replay_last_id(&replay);
        let mut sub = Sub::new(replay.channel, Transport::Ws, last_id, false);
        sub.may_publish = upgrade.may_publish;
        self.phase = Phase::Subscribed(sub);
        let early = self.take_input();
        if !early.is_empty() {
            self.ws_feed(&early, now);
        }
    }

    /// Bytes from a WebSocket client: decoded, or kept while a publish waits.
    pub(super) fn ws_read(&mut self, data: &[u8], now: Instant) {
        if self.ws_reading().is_some_and(|r| r.publishing > 0) {
            self.busy().input.extend_from_slice(data);
            if self.input().len() > max_input(&self.config) {
                self.close(true);
            }
            return;
        }
        self.ws_feed(data, now);
    }

    /// Whether publishes of the socket wait for their answers.
    pub(super) fn ws_publishing(&self) -> bool {
        self.ws_reading().is_some_and(|r| r.publishing > 0)
    }

    fn ws_reading(&self) -> Option<&Reading> {
        self.busy.as_ref()?.ws.as_deref()
    }

    fn ws_reading_mut(&mut self) -> Option<&mut Reading> {
        self.busy.as_mut()?.ws.as_deref_mut()
    }

    fn ws_feed(&mut self, data: &[u8], now: Instant) {
        let max = self.config.max_message;
        if !self.is_duplex() {
            return;
        }
        let reading = self.busy().ws.get_or_insert_with(|| {
            Box::new(Reading {
                decoder: Decoder::server(max),
                publishing: 0,
            })
        });
        let mut events = Vec::new();
        let result = reading.decoder.feed(data, &mut events);
        for e in events {
            self.ws_event(e, now);
        }
        match result {
            Err(e) => self.ws_close(e.close_code(), &e.to_string(), now),
            Ok(()) => self.ws_tidy(),
        }
    }

    /// Gives the reading state back once nothing is half read or waiting.
    fn ws_tidy(&mut self) {
        if let Some(b) = self.busy.as_mut() {
            if b.ws
                .as_ref()
                .is_some_and(|r| r.publishing == 0 && r.decoder.is_idle())
            {
                b.ws = None;
            }
        }
        self.tidy();
    }

    fn ws_event(&mut self, event: WsEvent, now: Instant) {
        let Phase::Subscribed(sub) = &mut self.phase else {
            return;
        };
        match event {
            WsEvent::Text(text) => {
                if !sub.may_publish {
                    return self.ws_close(close::POLICY, "publish token required", now);
                }
                let channel = sub.channel.clone();
                if let Some(r) = self.ws_reading_mut() {
                    r.publishing += 1;
                }
                self.raise(Event::Publish {
                    channel,
                    data: text.into_boxed_str(),
                });
            }
            WsEvent::Ping(payload) => {
                // A client that does not read its pongs gets no more of them:
                // RFC 6455 section 5.5.3 lets a pong answer only the latest
                // ping, and so the queue never grows with them.
                if self.lag() <= self.config.max_queue {
                    self.push(encode::pong(&payload));
                }
            }
            WsEvent::Pong(_) => sub.pings = 0,
            WsEvent::Close { code, .. } => {
                let echo = match code {
                    Some(code) => encode::close(code, ""),
                    None => encode::frame(true, Opcode::Close, b"", None),
                };
                // The client sends nothing after its close (RFC 6455 section
                // 5.5.1): the server closes the connection once the echo is
                // out, first, as section 7.1.1 asks.
                self.ws_end(echo, Some(now), false);
            }
        }
    }

    /// A heartbeat is due: a ping, or the drop of a client that answered
    /// none of the last two.
    pub(super) fn ws_heartbeat(&mut self, now: Instant) {
        let Phase::Subscribed(sub) = &mut self.phase else {
            return;
        };
        if sub.pings >= 2 {
            self.raise(Event::Unresponsive);
            return self.close(true);
        }
        sub.pings += 1;
        self.set_deadline(Some(now + self.config.heartbeat));
        self.push(transport::heartbeat(Transport::Ws, false));
    }

    /// The answer to one of the socket's publishes: input kept meanwhile is
    /// read once every publish is answered.
    pub(super) fn ws_published(&mut self, now: Instant) {
        let Some(r) = self.ws_reading_mut().filter(|r| r.publishing > 0) else {
            return;
        };
        r.publishing -= 1;
        if r.publishing > 0 {
            return;
        }
        let kept = self.take_input();
        if kept.is_empty() {
            self.ws_tidy();
        } else {
            self.ws_feed(&kept, now);
        }
    }

    /// A publish of the socket was refused: there is no answer to a frame
    /// but another frame, so the socket closes, saying why: `1001` while the
    /// server stops (the client comes back to another), `1013` past the
    /// channel limit or while the broker cannot be reached (it may try again
    /// later, or on another node).
    pub(super) fn ws_refused(&mut self, refusal: Refusal, now: Instant) {
        if self.ws_reading().is_none_or(|r| r.publishing == 0) {
            return;
        }
        match refusal {
            Refusal::Stopping => self.ws_close(close::GOING_AWAY, "server is stopping", now),
            Refusal::ChannelLimit => {
                self.ws_close(close::TRY_AGAIN_LATER, "too many channels", now)
            }
            Refusal::Broker => self.ws_close(close::TRY_AGAIN_LATER, "broker unavailable", now),
        }
    }

    /// The server stops: a close frame `1001`, and the connection closes
    /// once it is written, as every stream does then: a stop waits for no
    /// client's answer (see `docs/DESIGN.md`, "Stopping").
    pub(super) fn ws_going_away(&mut self) {
        let frame = encode::close(close::GOING_AWAY, "server is stopping");
        self.ws_end(frame, None, false);
    }

    /// The server closes: `code` and `reason` in a close frame, then the
    /// lingering close.
    fn ws_close(&mut self, code: u16, reason: &str, now: Instant) {
        if self.is_duplex() {
            self.ws_end(encode::close(code, reason), Some(now), true);
        }
    }

    /// Ends the subscription with `frame` (a close). When the server began
    /// the closing handshake it closes `linger`ing (see `# Closing`): the
    /// frame goes out, the write side is shut, and what the client still
    /// sends (its own close, and what was on its way) is discarded until it
    /// closes too. The frame gets as long to drain as a request gets to
    /// arrive, from `now`.
    fn ws_end(&mut self, frame: Bytes, now: Option<Instant>, linger: bool) {
        let next = if linger {
            Phase::Lingering(Linger {
                shut: None,
                discarded: 0,
            })
        } else {
            Phase::Closed
        };
        let Phase::Subscribed(sub) = std::mem::replace(&mut self.phase, next) else {
            return;
        };
        self.raise(Event::Unsubscribe {
            channel: sub.channel,
        });
        self.push(frame);
        if let Some(b) = self.busy.as_mut() {
            b.ws = None;
        }
        self.take_input();
        self.set_deadline(now.map(|now| now + self.config.header_timeout));
    }
}
