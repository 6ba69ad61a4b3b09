//! A load generator worker: one process holding up to ~15,000 subscriber
//! connections in a mio loop.
//!
//! The coordinator writes a few pings on the worker's stdin (answered at
//! once: [`clock_sync`] measures this worker's clock against the
//! coordinator's), then a [`Plan`], and later a [`Finish`] line; the worker
//! writes [`Progress`] lines while it runs and one [`Report`] line at the
//! end, all JSON (the [`protocol`]).
//! Several workers are needed past one process's open-file limit; their
//! histograms are merged by the coordinator, never averaged.
//!
//! # What every subscriber checks
//! Ids on a channel are 1, 2, 3 ...: a repeated id is a duplicate, an older
//! one is out of order, a jump is a loss unless the server reported it as
//! missed, and at the end every subscriber must have reached the last id its
//! channel was given (see [`Ids`]). The ids are the server's
//! ([`IdCheck::Server`]), or, for a server that gives none of its own (the
//! peers), the publisher's per-channel sequence number in the message body
//! ([`IdCheck::Sequence`]).
//!
//! # Faults
//! A [`WorkerFault`] in the plan, and [`ToWorker`] lines from the coordinator,
//! make the worker misbehave on purpose: close every subscriber at once (with
//! FIN or RST), churn them (drop some and bring them back, resuming after the
//! last id seen), leave some unread (slow consumers), send request heads one
//! byte at a time (slowloris), or come back after the server went away
//! (restart). A subscriber that comes back keeps its place: its last id, the
//! missed messages reported to it and its gaps carry over to the new
//! connection, so continuity is checked per subscriber, not per connection.
//!
//! The files: [`protocol`] (the lines), `ids` (the id checks, sans IO),
//! `subscriber` (the plain subscriber), `away` (subscribers dropped and
//! brought back: churn, the storm, a restart), `attack` (slowloris),
//! `finish` (the report at the end), `socket` (sockets and requests),
//! [`clock_sync`] (the clock exchanges before the plan).
//!
//! Gaps are resolved at the end against the ids the coordinator excuses
//! ([`Finish::excused`]: publishes that failed, so no one was due them).

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead};
use std::sync::Arc;
use std::time::Duration;

use comet::Transport;
use hdrhistogram::Histogram;
use mio::{Events, Poll, Token, Waker};
use slab::Slab;

use crate::clock::mono_ns;
use crate::hist;

mod attack;
mod away;
mod chat;
pub mod clock_sync;
mod finish;
mod ids;
pub mod protocol;
mod socket;
mod sse;
mod subscriber;

pub use ids::{Excused, Gap, Ids, Seen};
pub use protocol::{
    Candidate, Channels, FaultCounts, Finish, FromWorker, IdCheck, Plan, Progress, Report,
    SocketPublish, SocketPublished, ToWorker, WorkerFault, RETRY_DELAY_NS,
};

use attack::{Attacker, ATTACK_BASE};
use away::Away;
use chat::Chat;
use subscriber::Client;

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
    /// When each connect in flight started, and its client, oldest first;
    /// entries whose connect ended are dropped when they reach the front.
    connect_queue: VecDeque<(u64, usize)>,
    /// Subscribers open (requested or subscribed), kept as their states
    /// change: counting them in the slab at every progress line was 5.7% of
    /// all CPU late in a ramp to 2,000,000 (perf, 2026-12-03).
    open: usize,
    /// Clients to send their request again, with when (`mono_ns`).
    resend: Vec<(u64, usize)>,
    /// Subscribers away, to connect again when due.
    away: Vec<Away>,
    churn_on: bool,
    /// Fractional churn drops carried to the next tick, and the last tick.
    churn_debt: f64,
    churn_last_ns: u64,
    attack_on: bool,
    attackers: Slab<Attacker>,
    /// Jumps in the ids of each subscriber (its index), on its channel: the
    /// part not covered by a missed report is settled at the end against
    /// the ids nobody was due; all of it tells which ids it never received.
    gaps: Vec<(usize, String, Gap)>,
    /// Resident memory before the first connect, bytes.
    rss_start: u64,
    reconnect_hist: Histogram<u64>,
    attacker_life: Histogram<u64>,
    rng: u64,
    /// Subscriber index to client key, for publishing over a user's socket.
    keys: HashMap<usize, usize>,
    /// Publishing over the sockets, once told to.
    chat: Option<Chat>,
}

/// Runs a worker on this process's stdin and stdout. Returns when finished.
pub fn main() -> io::Result<()> {
    let Some(plan) = clock_sync::read_plan(io::stdin().lock().lines(), io::stdout().lock())? else {
        return Ok(());
    };
    let transport = Transport::from_name(&plan.transport)
        .ok_or_else(|| invalid(format!("unknown transport {:?}", plan.transport)))?;
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), STDIN)?);
    let (tx, rx) = crossbeam_channel::unbounded::<ToWorker>();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<ToWorker>(&line) {
                Ok(c) => {
                    let _ = tx.send(c);
                    let _ = waker.wake();
                }
                Err(e) => eprintln!("worker: unreadable line from the coordinator: {e}"),
            }
        }
        // The coordinator is gone: finish with what we have.
        let _ = tx.send(ToWorker::Finish(Finish::default()));
        let _ = waker.wake();
    });
    let mut w = Worker::new(plan, transport, poll);
    let finish = w.run(&rx)?;
    w.finish(finish);
    protocol::write_line(io::stdout().lock(), &FromWorker::Report(Box::new(w.report)))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

impl Worker {
    fn new(plan: Plan, transport: Transport, poll: Poll) -> Worker {
        let seed = mono_ns() ^ (plan.worker as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Worker {
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
            connect_queue: VecDeque::new(),
            open: 0,
            resend: Vec::new(),
            away: Vec::new(),
            churn_on: false,
            churn_debt: 0.0,
            churn_last_ns: 0,
            attack_on: false,
            attackers: Slab::new(),
            gaps: Vec::new(),
            rss_start: resident_bytes(),
            reconnect_hist: hist::new_histogram(),
            attacker_life: hist::new_histogram(),
            rng: seed | 1,
            keys: HashMap::new(),
            chat: None,
        }
    }

    /// The loop, until the coordinator says finish.
    fn run(&mut self, rx: &crossbeam_channel::Receiver<ToWorker>) -> io::Result<Finish> {
        let mut events = Events::with_capacity(4096);
        let t0 = mono_ns();
        let mut last_progress = 0;
        loop {
            let now = mono_ns();
            self.ramp(now, t0);
            let busy =
                self.churn_on || self.attack_on || !self.away.is_empty() || !self.resend.is_empty();
            let timeout = if self.started < self.plan.count {
                Duration::from_millis(2)
            } else if busy {
                Duration::from_millis(10)
            } else {
                Duration::from_millis(100)
            };
            let timeout = self.chat_wait(now).map_or(timeout, |w| w.min(timeout));
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                if ev.token() == STDIN {
                    while let Ok(line) = rx.try_recv() {
                        if let Some(finish) = self.control(line)? {
                            return Ok(finish);
                        }
                    }
                    continue;
                }
                let token = ev.token().0;
                if token >= ATTACK_BASE {
                    self.handle_attacker(token - ATTACK_BASE);
                } else {
                    self.handle(token, ev.is_read_closed() || ev.is_error());
                }
            }
            let now = mono_ns();
            self.expire_connects(now);
            self.resend_due(now);
            self.churn(now);
            self.come_back(now);
            self.attack(now);
            self.publish_due(now);
            if now - last_progress > 250_000_000 {
                last_progress = now;
                self.progress()?;
            }
        }
    }

    /// Acts on a line of the coordinator; the finish, when it is one.
    fn control(&mut self, line: ToWorker) -> io::Result<Option<Finish>> {
        let now = mono_ns();
        match line {
            ToWorker::Finish(f) => return Ok(Some(f)),
            ToWorker::Disconnect { reset } => {
                self.storm(reset);
                // Tell the coordinator at once: its recovery clock runs.
                self.progress()?;
            }
            ToWorker::Churn(on) => self.set_churn(on, now),
            ToWorker::Attack(on) => self.set_attack(on, now),
            ToWorker::Publish(p) => self.chat = Some(Chat::new(p, &self.plan)),
            ToWorker::Plan(_) => eprintln!("worker: a second plan, ignored"),
            ToWorker::Ping(ping) => {
                protocol::write_line(io::stdout().lock(), &clock_sync::answer(ping, now))?
            }
        }
        Ok(None)
    }

    fn progress(&self) -> io::Result<()> {
        let p = Progress {
            worker: self.plan.worker,
            connected: self.report.connected,
            subscribed: self.report.subscribed,
            failed: self.report.failed.values().sum(),
            received: self.report.delivery.received,
            pending: self.pending as u64,
            open: self.open as u64,
            away: self.away.len() as u64,
            storm_closed: self.report.fault.storm_closed,
            attackers: self.attackers.len() as u64,
            rss: resident_bytes(),
            rss_start: self.rss_start,
        };
        protocol::write_line(io::stdout().lock(), &FromWorker::Progress(p))
    }
}

/// This process's resident memory, bytes (`/proc/self/statm`; 0 where it
/// cannot be read).
fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A server that accepts and never answers: with `unanswered`, the
    /// ramp starts no more connections than that, however fast its rate;
    /// without, only the connects in flight bound it.
    fn started_against_a_silent_server(unanswered: Option<usize>) -> usize {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut plan: Plan = serde_json::from_value(serde_json::json!({
            "worker": 0, "target": listener.local_addr().unwrap().to_string(),
            "sources": ["127.0.0.1"], "path": "/sub/{channel}", "since_param": "since",
            "transport": "sse", "count": 40, "first_index": 0,
            "channels": {"broadcast": "bc"}, "rate": 1e6, "in_flight": 4,
            "connect_timeout_ms": 10000, "epoch_ns": 0, "interval_ms": 1000
        }))
        .unwrap();
        if let Some(u) = unanswered {
            plan.unanswered = u;
        }
        let mut w = Worker::new(plan, Transport::Sse, Poll::new().unwrap());
        let mut events = Events::with_capacity(64);
        let t0 = mono_ns();
        let end = Instant::now() + Duration::from_millis(800);
        while Instant::now() < end {
            w.ramp(mono_ns(), t0);
            w.poll
                .poll(&mut events, Some(Duration::from_millis(5)))
                .unwrap();
            for ev in events.iter() {
                w.handle(ev.token().0, ev.is_read_closed() || ev.is_error());
            }
        }
        assert_eq!(w.connecting, 0, "every connect completed");
        // The running count of open subscribers is the slab's, as they close too.
        let in_slab = |w: &Worker| {
            w.clients
                .iter()
                .filter(|(_, c)| {
                    matches!(
                        c.state,
                        subscriber::State::Requested | subscriber::State::Subscribed
                    )
                })
                .count()
        };
        assert_eq!((w.open, in_slab(&w)), (w.started, w.started));
        let first = w.clients.iter().next().map(|(k, _)| k).unwrap();
        w.close(first);
        assert_eq!(w.open, in_slab(&w));
        assert_eq!(w.open, w.started - 1);
        w.storm(false);
        assert_eq!((w.open, in_slab(&w)), (0, 0));
        w.started
    }

    #[test]
    fn the_ramp_waits_for_answers_only_when_bounded() {
        assert_eq!(started_against_a_silent_server(Some(8)), 8);
        assert_eq!(started_against_a_silent_server(None), 40);
    }
}
