//! Writing responses: the status line and the headers every response
//! carries, whole responses, and a long-poll's JSON array.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::Conn;
use crate::message::Message;
use crate::transport::Frame;

impl Conn {
    pub(super) fn respond_poll(&mut self, messages: &[Arc<Message>], missed: u64, now: Instant) {
        let mut body = Vec::with_capacity(messages.len() + 2);
        body.push(Bytes::from_static(b"["));
        for (i, m) in messages.iter().enumerate() {
            if i > 0 {
                body.push(Bytes::from_static(b","));
            }
            body.push(m.frame(Frame::Object));
        }
        body.push(Bytes::from_static(b"]"));
        let len: usize = body.iter().map(Bytes::len).sum();
        let mut head = self.head_start(200);
        head.push_str("Content-Type: application/json\r\nCache-Control: no-cache\r\n");
        if missed > 0 {
            head.push_str(&format!("X-Comet-Missed: {missed}\r\n"));
        }
        head.push_str(&format!("Content-Length: {len}\r\n\r\n"));
        self.push(Bytes::from(head));
        for b in body {
            self.push(b);
        }
        self.after_response(now);
    }

    pub(super) fn respond_text(&mut self, status: u16, text: &str, now: Instant) {
        self.respond_body(status, &[], "text/plain", format!("{text}\n"), now);
    }

    pub(super) fn respond_json(&mut self, status: u16, body: String, now: Instant) {
        self.respond_body(status, &[], "application/json", body, now);
    }

    pub(super) fn respond_body(
        &mut self,
        status: u16,
        extra: &[(&str, String)],
        content_type: &str,
        body: String,
        now: Instant,
    ) {
        let mut extra = extra.to_vec();
        extra.push(("Content-Type", content_type.to_string()));
        self.respond(status, &extra, Some(Bytes::from(body)), now);
    }

    /// Queues a whole response and moves on to the next request.
    pub(super) fn respond(
        &mut self,
        status: u16,
        extra: &[(&str, String)],
        body: Option<Bytes>,
        now: Instant,
    ) {
        let mut head = self.head_start(status);
        for (k, v) in extra {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        let body = body.unwrap_or_default();
        if status != 204 {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        self.push(Bytes::from(head));
        if !body.is_empty() {
            self.push(body);
        }
        self.after_response(now);
    }

    /// Status line and the headers every response carries.
    pub(super) fn head_start(&self, status: u16) -> String {
        let mut h = format!(
            "HTTP/1.1 {status} {}\r\nServer: cometbench\r\n",
            reason(status)
        );
        if let Some(origin) = &self.config.allow_origin {
            h.push_str("Access-Control-Allow-Origin: ");
            h.push_str(origin);
            // A long-poll's missed count must be readable across origins.
            h.push_str("\r\nAccess-Control-Expose-Headers: X-Comet-Missed\r\n");
        }
        if !self.keep_alive {
            h.push_str("Connection: close\r\n");
        } else if self.http10 {
            h.push_str("Connection: keep-alive\r\n");
        }
        h
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A whole `503` response, for a dispatcher that cannot take a connection on
/// (no thread or descriptor to spare) and closes it.
pub fn service_unavailable() -> &'static [u8] {
    b"HTTP/1.1 503 Service Unavailable\r\nServer: cometbench\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 31\r\n\r\nserver at its connection limit\n"
}
