//! The open-loop publisher: messages at a constant rate, wrk2 style.
//!
//! Message `k` is scheduled at `start + k / rate` whatever happened to the
//! ones before it, and carries that time; a subscriber's latency is measured
//! from it, so a server that stalls publishers is charged for the stall
//! (coordinated omission corrected). The actual send time rides along for the
//! uncorrected figure. Several connections share the schedule so that one slow
//! answer does not hold the others back.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use comet::client::parse_response_head;
use comet::request::Status;
use serde::{Deserialize, Serialize};

use crate::clock::{mono_ns, stamped};
use crate::worker::Channels;

#[derive(Debug, Clone)]
pub struct PublishPlan {
    pub target: SocketAddr,
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
    /// Last id the server gave on each channel.
    #[serde(skip)]
    pub last_ids: HashMap<String, u64>,
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
    let threads: Vec<_> = (0..plan.connections.max(1))
        .map(|j| {
            let plan = plan.clone();
            let report = report.clone();
            let stop = stop.clone();
            std::thread::spawn(move || publish_thread(j, &plan, total, start, &report, &stop))
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let r = report.lock().unwrap_or_else(|e| e.into_inner()).clone();
    r
}

fn publish_thread(
    j: usize,
    plan: &PublishPlan,
    total: u64,
    start: u64,
    report: &Mutex<PublishReport>,
    stop: &AtomicBool,
) {
    let mut conn: Option<TcpStream> = None;
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
        let sent = mono_ns();
        let body = stamped(scheduled, sent, plan.size);
        let result = publish_one(&mut conn, plan, &channel, &body);
        let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
        r.max_lag_us = r.max_lag_us.max(sent.saturating_sub(scheduled) / 1000);
        match result {
            Ok((id, subscribers)) => {
                r.accepted += 1;
                r.handed_to += subscribers;
                let last = r.last_ids.entry(channel).or_default();
                *last = (*last).max(id);
            }
            Err(cause) => {
                conn = None;
                *r.failed.entry(cause).or_default() += 1;
            }
        }
        k += step;
    }
}

/// One publish on a keep-alive connection: (id, subscribers) or a failure cause.
fn publish_one(
    conn: &mut Option<TcpStream>,
    plan: &PublishPlan,
    channel: &str,
    body: &str,
) -> Result<(u64, u64), String> {
    let io_cause = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timeout".to_string(),
        io::ErrorKind::ConnectionRefused => "refused".to_string(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => "reset".to_string(),
        _ => "io".to_string(),
    };
    if conn.is_none() {
        let s = TcpStream::connect_timeout(&plan.target, plan.timeout).map_err(io_cause)?;
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
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        plan.target,
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
                if head.status != 202 && head.status != 200 {
                    return Err(format!("http_{}", head.status));
                }
                let v: serde_json::Value =
                    serde_json::from_slice(&buf[head.len..want]).unwrap_or_default();
                let id = v["id"].as_u64().unwrap_or(0);
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
