//! The open-loop publisher: messages at a constant rate, wrk2 style.
//!
//! Message `k` is scheduled at `start + k / rate` whatever happened to the
//! ones before it, and carries that time; a subscriber's latency is measured
//! from it, so a server that stalls publishers is charged for the stall
//! (coordinated omission corrected). The actual send time rides along for the
//! uncorrected figure. Several connections share the schedule so that one slow
//! answer does not hold the others back.
//!
//! # Sequence numbers
//! Every message also carries its place in its channel's publish sequence
//! (1, 2, 3 ..., see [`crate::clock::Stamp`]). Where the server answers no
//! integer id (the peers), that sequence is the id subscribers check and the
//! last one the run expects; `ordered` then serialises the publishes to each
//! channel, so that the sequence is the order in which the server receives
//! them (a publish waiting for the one before is charged to the server through
//! its scheduled time, as any stall is).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use comet::client::parse_response_head;
use comet::request::Status;
use comet::transport::{encode_event, encode_object};
use comet::Transport;
use serde::{Deserialize, Serialize};

use crate::clock::{mono_ns, stamped_seq};
use crate::worker::Channels;

/// How a message is put into a publish request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishFormat {
    /// The message is the body (our dispatchers, nchan).
    Body,
    /// Pushpin: GRIP items JSON for the channel, the message framed for the
    /// transport's subscribers with its sequence number as the id (the
    /// `http-stream` content of an SSE event, an ndjson line or a script tag,
    /// the `http-response` body of a long-poll, or the `ws-message` content
    /// of a WebSocket: the JSON object our dispatchers send).
    Grip(Transport),
}

/// The body of a GRIP publish of message `seq` on `channel` (see [`PublishFormat::Grip`]).
pub fn grip_items(transport: Transport, channel: &str, seq: u64, message: &str) -> String {
    let format = match transport {
        Transport::Longpoll => serde_json::json!({
            "http-response": { "body": format!("[{}]", encode_object(seq, message)) }
        }),
        Transport::Ws => serde_json::json!({
            "ws-message": { "content": encode_object(seq, message) }
        }),
        t => serde_json::json!({
            "http-stream": {
                "content": String::from_utf8_lossy(&encode_event(t, seq, message))
            }
        }),
    };
    serde_json::json!({ "items": [{ "channel": channel, "formats": format }] }).to_string()
}

#[derive(Debug, Clone)]
pub struct PublishPlan {
    pub target: SocketAddr,
    /// Several servers sharing a broker: message `k` goes to
    /// `targets[k % len]`, so publishes are spread over the nodes in turn.
    /// Empty: every message to `target`.
    pub targets: Vec<SocketAddr>,
    /// `/pub/{channel}`-style path template.
    pub path: String,
    pub token: Option<String>,
    pub channels: Channels,
    /// Subscribers (per-user channels) to spread messages over.
    pub users: usize,
    pub rate: f64,
    pub size: usize,
    pub duration: Duration,
    pub connections: usize,
    /// How long one publish may take before it counts as failed.
    pub timeout: Duration,
    pub format: PublishFormat,
    /// One publish at a time per channel (see the module docs).
    pub ordered: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PublishReport {
    pub scheduled: u64,
    /// Answered `202`.
    pub accepted: u64,
    /// Not sent: the run ended before the publisher could.
    pub unsent: u64,
    pub failed: HashMap<String, u64>,
    /// Sum of the subscriber counts the server reported per publish.
    pub handed_to: u64,
    /// Last id the server gave on each channel (its publish sequence where
    /// the server gives none).
    #[serde(skip)]
    pub last_ids: HashMap<String, u64>,
    /// Highest publish sequence number accepted on each channel.
    #[serde(skip)]
    pub last_seqs: HashMap<String, u64>,
    /// Sequence numbers whose publish failed, per channel: no subscriber was
    /// due them (a server restarting refuses some).
    #[serde(skip)]
    pub failed_seqs: HashMap<String, Vec<u64>>,
    /// Microseconds actual sends lagged their schedule, worst case.
    pub max_lag_us: u64,
}

/// Publishes per `plan`; `stop` ends it early. Returns when every thread is done.
pub fn run(plan: &PublishPlan, stop: &Arc<AtomicBool>) -> PublishReport {
    let total = ((plan.rate * plan.duration.as_secs_f64()).floor() as u64).max(1);
    let report = Arc::new(Mutex::new(PublishReport {
        scheduled: total,
        ..PublishReport::default()
    }));
    let start = mono_ns() + 10_000_000;
    let seqs = Arc::new(Sequences::default());
    let threads: Vec<_> = (0..plan.connections.max(1))
        .map(|j| {
            let plan = plan.clone();
            let report = report.clone();
            let stop = stop.clone();
            let seqs = seqs.clone();
            std::thread::spawn(move || {
                publish_thread(j, &plan, total, start, &report, &seqs, &stop)
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let r = report.lock().unwrap_or_else(|e| e.into_inner()).clone();
    r
}

/// The publish sequence of each channel: the last number given out, behind
/// a lock of the channel's own (held through the publish when `ordered`).
#[derive(Default)]
struct Sequences(Mutex<HashMap<String, Arc<Mutex<u64>>>>);

impl Sequences {
    fn of(&self, channel: &str) -> Arc<Mutex<u64>> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(channel.to_string()).or_default().clone()
    }
}

fn publish_thread(
    j: usize,
    plan: &PublishPlan,
    total: u64,
    start: u64,
    report: &Mutex<PublishReport>,
    seqs: &Sequences,
    stop: &AtomicBool,
) {
    // One keep-alive connection per target this thread publishes to.
    let targets = match plan.targets.len() {
        0 => vec![plan.target],
        _ => plan.targets.clone(),
    };
    let mut conns: Vec<Option<TcpStream>> = targets.iter().map(|_| None).collect();
    let step = plan.connections.max(1) as u64;
    let mut k = j as u64;
    while k < total {
        if stop.load(Ordering::Relaxed) {
            report.lock().unwrap().unsent += (total - k).div_ceil(step);
            return;
        }
        let scheduled = start + (k as f64 * 1e9 / plan.rate) as u64;
        let now = mono_ns();
        if scheduled > now {
            std::thread::sleep(Duration::from_nanos(scheduled - now));
        }
        let channel = match &plan.channels {
            Channels::Broadcast(c) => c.clone(),
            Channels::PerUser(p) => format!("{p}{}", k % plan.users.max(1) as u64),
        };
        let counter = seqs.of(&channel);
        let mut held = counter.lock().unwrap_or_else(|e| e.into_inner());
        *held += 1;
        let seq = *held;
        // Unordered, the channel's lock is released at once.
        let held = plan.ordered.then_some(held);
        let sent = mono_ns();
        let message = stamped_seq(scheduled, sent, seq, plan.size);
        let body = match plan.format {
            PublishFormat::Body => message,
            PublishFormat::Grip(t) => grip_items(t, &channel, seq, &message),
        };
        let to = (k % targets.len() as u64) as usize;
        let conn = &mut conns[to];
        let result = publish_one(conn, plan, targets[to], &channel, &body);
        drop(held);
        let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
        r.max_lag_us = r.max_lag_us.max(sent.saturating_sub(scheduled) / 1000);
        match result {
            Ok((id, subscribers)) => {
                r.accepted += 1;
                r.handed_to += subscribers;
                let last = r.last_seqs.entry(channel.clone()).or_default();
                *last = (*last).max(seq);
                let last = r.last_ids.entry(channel).or_default();
                *last = (*last).max(id.unwrap_or(seq));
            }
            Err(cause) => {
                *conn = None;
                *r.failed.entry(cause).or_default() += 1;
                r.failed_seqs.entry(channel).or_default().push(seq);
            }
        }
        k += step;
    }
}

/// One publish on a keep-alive connection: (the id the server gave, if it
/// gave one; subscribers it reported, else 0), or a failure cause. `2xx`
/// answers `200`-`202` count: ours is `202`, nchan's `201` or `202`, Pushpin's `200`.
fn publish_one(
    conn: &mut Option<TcpStream>,
    plan: &PublishPlan,
    target: SocketAddr,
    channel: &str,
    body: &str,
) -> Result<(Option<u64>, u64), String> {
    let io_cause = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timeout".to_string(),
        io::ErrorKind::ConnectionRefused => "refused".to_string(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => "reset".to_string(),
        _ => "io".to_string(),
    };
    if conn.is_none() {
        let s = TcpStream::connect_timeout(&target, plan.timeout).map_err(io_cause)?;
        s.set_nodelay(true).map_err(io_cause)?;
        s.set_read_timeout(Some(plan.timeout)).map_err(io_cause)?;
        s.set_write_timeout(Some(plan.timeout)).map_err(io_cause)?;
        *conn = Some(s);
    }
    let s = conn.as_mut().expect("connected above");
    let path = plan.path.replace("{channel}", channel);
    let auth = plan
        .token
        .as_ref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let ctype = match plan.format {
        PublishFormat::Body => "text/plain",
        PublishFormat::Grip(_) => "application/json",
    };
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\n{auth}Accept: application/json\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
        target,
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(io_cause)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Status::Complete(head) =
            parse_response_head(&buf).map_err(|_| "bad_response".to_string())?
        {
            let want = head.len + head.content_length.unwrap_or(0);
            if buf.len() >= want {
                if !(200..=202).contains(&head.status) {
                    return Err(format!("http_{}", head.status));
                }
                let v: serde_json::Value =
                    serde_json::from_slice(&buf[head.len..want]).unwrap_or_default();
                let id = v["id"].as_u64();
                let subscribers = v["subscribers"].as_u64().unwrap_or(0);
                if head.close {
                    *conn = None;
                }
                return Ok((id, subscribers));
            }
        }
        let n = s.read(&mut chunk).map_err(io_cause)?;
        if n == 0 {
            return Err("closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use comet::client::{ClientEvent, Item, StreamDecoder, Subscriber};

    #[test]
    fn grip_items_frame_the_message_for_each_transport() {
        let v: serde_json::Value =
            serde_json::from_str(&grip_items(Transport::Sse, "bc", 7, "1 2 7 x")).unwrap();
        assert_eq!(v["items"][0]["channel"], "bc");
        let content = v["items"][0]["formats"]["http-stream"]["content"]
            .as_str()
            .unwrap();
        assert_eq!(content, "id: 7\ndata: 1 2 7 x\n\n");
        // What Pushpin passes through decodes as our own frames.
        for t in [Transport::Sse, Transport::Stream, Transport::Iframe] {
            let v: serde_json::Value =
                serde_json::from_str(&grip_items(t, "c", 3, "m <&>")).unwrap();
            let content = v["items"][0]["formats"]["http-stream"]["content"]
                .as_str()
                .unwrap();
            let mut d = StreamDecoder::new(t);
            let mut out = Vec::new();
            d.feed(content.as_bytes(), &mut out).unwrap();
            assert_eq!(
                out,
                vec![Item::Message {
                    id: 3,
                    data: "m <&>".into()
                }],
                "{t:?}"
            );
        }
        // A WebSocket message is the object our text frames carry.
        let v: serde_json::Value =
            serde_json::from_str(&grip_items(Transport::Ws, "c", 5, "m \"q\"")).unwrap();
        let content = v["items"][0]["formats"]["ws-message"]["content"]
            .as_str()
            .unwrap();
        let mut reader = comet::client::WsReader::new(comet::client::Dialect::Comet);
        let mut out = Vec::new();
        reader
            .feed(&comet::ws::encode::text(content), &mut out)
            .unwrap();
        assert_eq!(
            out,
            vec![ClientEvent::Item(Item::Message {
                id: 5,
                data: "m \"q\"".into()
            })]
        );
        let v: serde_json::Value =
            serde_json::from_str(&grip_items(Transport::Longpoll, "c", 4, "m")).unwrap();
        let body = v["items"][0]["formats"]["http-response"]["body"]
            .as_str()
            .unwrap();
        let wire = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut sub = Subscriber::new(Transport::Longpoll);
        let mut out = Vec::new();
        sub.feed(wire.as_bytes(), &mut out).unwrap();
        assert_eq!(
            out[1],
            ClientEvent::Item(Item::Message {
                id: 4,
                data: "m".into()
            })
        );
    }
}
