//! How each route begins, once its head is parsed: a refusal, a preflight,
//! a subscribe raised as an event, a publish waiting for its body, and a
//! stream's first bytes once its subscribe is answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::bearer::bearer_matches;
use super::{Conn, Event, Pending, Phase, Sub};
use crate::message::Message;
use crate::request::Head;
use crate::route::RouteError;
use crate::transport::{self, Frame, Transport};

impl Conn {
    /// A head that routes nowhere: its status, and `Allow` for a `405`.
    pub(super) fn respond_route_error(&mut self, e: RouteError, now: Instant) {
        let (reason, extra) = match &e {
            RouteError::BadRequest(r) => (*r, vec![]),
            RouteError::NotFound => ("not found", vec![]),
            RouteError::MethodNotAllowed(allow) => {
                ("method not allowed", vec![("Allow", allow.to_string())])
            }
        };
        self.respond_body(e.status(), &extra, "text/plain", format!("{reason}\n"), now);
    }

    /// `OPTIONS` on a known path: what may be asked, and CORS when enabled.
    pub(super) fn respond_preflight(&mut self, now: Instant) {
        let mut extra = vec![("Allow", "GET, POST, OPTIONS".to_string())];
        if self.config.allow_origin.is_some() {
            extra.push((
                "Access-Control-Allow-Methods",
                "GET, POST, OPTIONS".to_string(),
            ));
            extra.push((
                "Access-Control-Allow-Headers",
                "Last-Event-ID, Authorization, Content-Type, Cache-Control".to_string(),
            ));
            extra.push(("Access-Control-Max-Age", "600".to_string()));
        }
        self.respond(204, &extra, Some(Bytes::new()), now);
    }

    /// `GET /` or `/chat`: the embedded chat page, never copied.
    pub(super) fn respond_page(&mut self, now: Instant) {
        let extra = [
            ("Content-Type", "text/html; charset=utf-8".to_string()),
            ("Cache-Control", "no-cache".to_string()),
            ("X-Content-Type-Options", "nosniff".to_string()),
            ("Content-Security-Policy", crate::page::POLICY.to_string()),
        ];
        let body = Bytes::from_static(crate::page::CHAT.as_bytes());
        self.respond(200, &extra, Some(body), now);
    }

    /// Raises the subscribe and waits for its answer.
    pub(super) fn begin_subscribe(
        &mut self,
        channel: String,
        transport: Transport,
        since: Option<u64>,
        timeout: Option<u64>,
    ) {
        let poll_timeout = timeout
            .map_or(self.config.poll_timeout, Duration::from_secs)
            .min(self.config.max_poll_timeout);
        let poll_timeout_ms = poll_timeout.as_millis().try_into().unwrap_or(u32::MAX);
        let channel: Arc<str> = channel.into();
        self.set_deadline(None);
        self.phase = Phase::Waiting(Pending::Subscribe {
            channel: channel.clone(),
            transport,
            poll_timeout_ms,
        });
        self.raise(Event::Subscribe { channel, since });
    }

    /// Checks the token and the length before the body is read (`401`,
    /// `411`, `413`, each closing the connection), then waits for the body.
    pub(super) fn begin_publish(&mut self, channel: String, head: &Head, now: Instant) {
        if let Some(token) = &self.config.publish_token {
            let given = head.authorization.as_deref().unwrap_or("");
            if !bearer_matches(given, token) {
                self.keep_alive = false;
                let extra = [("WWW-Authenticate", "Bearer".to_string())];
                return self.respond_body(
                    401,
                    &extra,
                    "text/plain",
                    "publish token required\n".into(),
                    now,
                );
            }
        }
        let Some(len) = head.content_length else {
            self.keep_alive = false;
            return self.respond_text(411, "Content-Length required", now);
        };
        if len > self.config.max_message {
            self.keep_alive = false;
            return self.respond_text(413, "message too large", now);
        }
        // An HTTP/1.0 client's expectation is ignored (RFC 9110 section 10.1.1).
        if head.expect_continue && !head.http10 {
            self.push(Bytes::from_static(b"HTTP/1.1 100 Continue\r\n\r\n"));
        }
        self.phase = Phase::Body {
            channel: channel.into(),
            len,
        };
    }

    /// A streaming subscribe was answered: the response head, prelude,
    /// missed notice and replay, all queued at once (see
    /// [`Conn::handle_subscribed`]), then the stream is held.
    pub(super) fn start_stream(
        &mut self,
        channel: Arc<str>,
        transport: Transport,
        messages: &[Arc<Message>],
        missed: u64,
        last_id: u64,
        now: Instant,
    ) {
        let chunked = !self.http10;
        if !chunked {
            // An HTTP/1.0 stream ends only when the connection does
            // (`head_start` then says `Connection: close`).
            self.keep_alive = false;
        }
        // Nothing more is read from a streaming client: drop what it pipelined.
        self.take_input();
        let mut head = self.head_start(200);
        head.push_str("Content-Type: ");
        head.push_str(
            transport
                .content_type()
                .unwrap_or("application/octet-stream"),
        );
        head.push_str("\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
        if chunked {
            head.push_str("Transfer-Encoding: chunked\r\n");
        }
        head.push_str("\r\n");
        self.push(Bytes::from(head));
        if let Some(p) = transport::prelude(transport, self.config.sse_retry_ms, chunked) {
            self.push(p);
        }
        if missed > 0 {
            self.push(transport::missed_notice(transport, missed, chunked));
        }
        let frame = Frame::Stream { transport, chunked };
        for m in messages {
            self.push(m.frame(frame));
        }
        // Everything queued so far is the start of the stream, not lag.
        self.queued_is_replay();
        self.set_deadline(Some(now + self.config.heartbeat));
        self.phase = Phase::Subscribed(Sub::new(channel, transport, last_id, chunked));
    }
}
