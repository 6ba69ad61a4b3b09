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
//!
//! # Faults
//! A [`WorkerFault`] in the plan, and [`Control`] lines from the coordinator,
//! make the worker misbehave on purpose: close every subscriber at once (with
//! FIN or RST), churn them (drop some and bring them back, resuming after the
//! last id seen), leave some unread (slow consumers), send request heads one
//! byte at a time (slowloris), or come back after the server went away
//! (restart). A subscriber that comes back keeps its place: its last id, the
//! missed messages reported to it and its gaps carry over to the new
//! connection, so continuity is checked per subscriber, not per connection.
//!
//! Gaps are resolved at the end against the ids the coordinator excuses
//! ([`Finish::excused`]: publishes that failed, so no one was due them).

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
    #[serde(default)]
    pub fault: WorkerFault,
}

/// How this worker misbehaves (see the module docs); all off by default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerFault {
    /// A subscriber whose connection the server ends (or refuses) comes back,
    /// after a backoff, resuming after the last id it saw.
    pub reconnect: bool,
    /// While churn is on: the fraction of subscribers dropped per second.
    pub churn_rate: f64,
    /// Of the churn drops, the fraction made with RST.
    pub churn_reset_fraction: f64,
    /// Time a churned subscriber stays away, ms, drawn uniformly.
    pub away_min_ms: u64,
    pub away_max_ms: u64,
    /// Subscribers whose global index is a multiple of this stop reading once
    /// subscribed (0: none).
    pub slow_every: u64,
    /// Slowloris connections this worker keeps open while the attack is on.
    pub attackers: usize,
    pub byte_interval_ms: u64,
    /// Path of the attackers' request line.
    pub attack_path: String,
}

/// A line from the coordinator, after the plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Control {
    /// Publishing is over: report and exit.
    Finish(Finish),
    /// Close every subscriber now; `reset` with RST.
    Disconnect { reset: bool },
    /// Churn on or off ([`WorkerFault::churn_rate`]); off brings every
    /// subscriber away back at once.
    Churn(bool),
    /// Slowloris on or off; off closes the attackers.
    Attack(bool),
}

/// Sent by the coordinator when publishing is over.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Finish {
    /// Last id published on each channel; subscribers should have reached it.
    pub expect: HashMap<String, u64>,
    /// Ids on each channel that no subscriber was due (their publish failed), sorted.
    #[serde(default)]
    pub excused: HashMap<String, Vec<u64>>,
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
    /// Subscribers open now (subscribed or awaiting an answer).
    #[serde(default)]
    pub open: u64,
    /// Subscribers away (dropped, not yet back).
    #[serde(default)]
    pub away: u64,
    /// Subscribers closed by a `disconnect` storm.
    #[serde(default)]
    pub storm_closed: u64,
    /// Slowloris connections open now.
    #[serde(default)]
    pub attackers: u64,
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
    #[serde(default)]
    pub fault: FaultCounts,
}

/// What a worker counted of the fault it injected.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultCounts {
    /// Subscribers closed by the disconnect storm.
    pub storm_closed: u64,
    /// Subscribers dropped on purpose by churn, and of them with RST.
    pub churned: u64,
    pub churned_reset: u64,
    /// Subscribers the server closed (or refused) that came back on their own.
    pub server_drops: u64,
    /// Connects made to bring a subscriber back, and how many of them failed.
    pub reconnect_attempts: u64,
    pub reconnect_failures: u64,
    /// Subscribers back after a drop; time from the drop to subscribed again (µs, encoded).
    pub reconnects: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reconnect_us: String,
    /// Subscribers still away when the worker finished.
    pub away_at_end: u64,
    /// Slow subscribers (never read once subscribed), and of them those the
    /// server closed.
    pub slow: u64,
    pub slow_dropped: u64,
    /// Slowloris: connections opened, closed by the server (of them with a
    /// `408`, or another answer), refused (connect failed or `503`), and still
    /// open when the attack stopped.
    pub attackers_started: u64,
    pub attackers_closed: u64,
    pub attackers_408: u64,
    pub attackers_other_answer: u64,
    pub attackers_refused: u64,
    pub attackers_open_at_stop: u64,
    /// Life of each attacker the server closed, from connect to close (µs, encoded).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub attacker_life_us: String,
    /// The age of the oldest attacker still open when the attack stopped, µs.
    pub attacker_oldest_at_stop_us: u64,
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
    /// The server's id of the last message (what `since` resumes after);
    /// `last_id` is what continuity is checked by, the same unless ids are
    /// the publisher's sequence.
    resume_id: u64,
    /// Never read once subscribed (a slow consumer).
    slow: bool,
    /// Brought back after a drop: when the drop happened, and the connects
    /// tried so far.
    away_since: Option<u64>,
    attempt: u32,
}

/// A subscriber between connections: what carries over to the next one.
struct Away {
    due_ns: u64,
    index: usize,
    last_id: u64,
    resume_id: u64,
    missed_credit: u64,
    since_ns: u64,
    attempt: u32,
}

/// A slowloris connection.
struct Attacker {
    stream: TcpStream,
    started_ns: u64,
    connected: bool,
    /// Bytes of the head sent so far (then `a` forever).
    sent: usize,
    next_byte_ns: u64,
    answer: Vec<u8>,
}

/// Tokens of attackers start here; subscribers' are their slab keys.
const ATTACK_BASE: usize = 1 << 40;

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
    /// Subscribers away, to connect again when due.
    away: Vec<Away>,
    churn_on: bool,
    /// Fractional churn drops carried to the next tick, and the last tick.
    churn_debt: f64,
    churn_last_ns: u64,
    attack_on: bool,
    attackers: Slab<Attacker>,
    /// Unreported gaps: (channel, first id, last id, ids not covered by a missed report).
    gaps: Vec<(String, u64, u64, u64)>,
    reconnect_hist: Histogram<u64>,
    attacker_life: Histogram<u64>,
    rng: u64,
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
    let (tx, rx) = crossbeam_channel::unbounded::<Control>();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if let Ok(c) = serde_json::from_str::<Control>(&line) {
                let _ = tx.send(c);
                let _ = waker.wake();
            }
        }
        // The coordinator is gone: finish with what we have.
        let _ = tx.send(Control::Finish(Finish::default()));
        let _ = waker.wake();
    });
    let seed = mono_ns() ^ ((plan.worker as u64 + 1) * 0x9E37_79B9_7F4A_7C15);
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
        away: Vec::new(),
        churn_on: false,
        churn_debt: 0.0,
        churn_last_ns: 0,
        attack_on: false,
        attackers: Slab::new(),
        gaps: Vec::new(),
        reconnect_hist: hist::new_histogram(),
        attacker_life: hist::new_histogram(),
        rng: seed | 1,
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
    fn run(&mut self, rx: &crossbeam_channel::Receiver<Control>) -> io::Result<Finish> {
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
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in events.iter() {
                if ev.token() == STDIN {
                    while let Ok(control) = rx.try_recv() {
                        let now = mono_ns();
                        match control {
                            Control::Finish(f) => return Ok(f),
                            Control::Disconnect { reset } => {
                                self.storm(reset);
                                // Tell the coordinator at once: its recovery clock runs.
                                self.progress()?;
                            }
                            Control::Churn(on) => self.set_churn(on, now),
                            Control::Attack(on) => self.set_attack(on, now),
                        }
                    }
                    continue;
                }
                let token = ev.token().0;
                if token >= ATTACK_BASE {
                    self.handle_attacker(token - ATTACK_BASE);
                } else {
                    self.handle(token);
                }
            }
            let now = mono_ns();
            self.expire_connects(now);
            self.resend_due(now);
            self.churn(now);
            self.come_back(now);
            self.attack(now);
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
            open: self
                .clients
                .iter()
                .filter(|(_, c)| matches!(c.state, State::Requested | State::Subscribed))
                .count() as u64,
            away: self.away.len() as u64,
            storm_closed: self.report.fault.storm_closed,
            attackers: self.attackers.len() as u64,
        };
        let mut out = io::stdout().lock();
        serde_json::to_writer(&mut out, &p)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    fn fail(&mut self, key: usize, cause: String) {
        let now = mono_ns();
        if let Some(c) = self.clients.get(key) {
            // A subscriber on its way back (after a restart) tries again
            // later: a refusal while the server is down is expected.
            if self.plan.fault.reconnect && c.away_since.is_some() {
                self.report.fault.reconnect_failures += 1;
                let attempt = c.attempt + 1;
                let since = c.away_since.unwrap_or(now);
                let delay = self.backoff(attempt);
                self.leave(key, since, now + delay, attempt);
                return;
            }
        }
        *self.report.failed.entry(cause).or_default() += 1;
        self.close(key);
    }

    /// The server closed subscribed client `key`: a disconnect, or, when
    /// subscribers come back, a drop to recover from.
    fn dropped_by_server(&mut self, key: usize) {
        if self.plan.fault.reconnect {
            self.report.fault.server_drops += 1;
            let now = mono_ns();
            // Spread the herd over 100 ms, as EventSource's retry does.
            let delay = self.next_u64() % 100_000_000;
            self.leave(key, now, now + delay, 0);
        } else {
            self.report.disconnects += 1;
            if let Some(c) = self.clients.get_mut(key) {
                c.state = State::Closed;
            }
            self.close(key);
        }
    }

    /// The wait before connect number `attempt` of a subscriber coming back:
    /// 100 ms doubling to 1 s, with jitter.
    fn backoff(&mut self, attempt: u32) -> u64 {
        let base = (100_000_000u64 << attempt.min(4)).min(1_000_000_000);
        base / 2 + self.next_u64() % (base / 2).max(1)
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*: enough to pick victims and delays.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Takes client `key` out, keeping what its next connection carries on
    /// with; it connects again at `due_ns`.
    fn leave(&mut self, key: usize, since_ns: u64, due_ns: u64, attempt: u32) {
        let Some(c) = self.clients.get(key) else {
            return;
        };
        let away = Away {
            due_ns,
            index: c.index,
            last_id: c.last_id,
            resume_id: c.resume_id,
            missed_credit: c.missed_credit,
            since_ns: c.away_since.unwrap_or(since_ns),
            attempt,
        };
        self.close(key);
        self.away.push(away);
    }

    /// Connects again the subscribers whose time away is over.
    fn come_back(&mut self, now: u64) {
        if self.away.is_empty() {
            return;
        }
        let (due, later): (Vec<Away>, Vec<Away>) =
            self.away.drain(..).partition(|a| a.due_ns <= now);
        self.away = later;
        for a in due {
            let source = self.plan.sources[a.index % self.plan.sources.len()];
            if let Err(e) = self.connect(a.index, source, now, Some(&a)) {
                if self.plan.fault.reconnect {
                    self.report.fault.reconnect_failures += 1;
                    let attempt = a.attempt + 1;
                    let delay = self.backoff(attempt);
                    self.away.push(Away {
                        due_ns: now + delay,
                        attempt,
                        ..a
                    });
                } else {
                    *self.report.failed.entry(cause(&e).to_string()).or_default() += 1;
                }
            }
        }
    }

    /// Closes every subscriber at once (the disconnect storm).
    fn storm(&mut self, reset: bool) {
        let keys: Vec<usize> = self.clients.iter().map(|(k, _)| k).collect();
        for key in keys {
            if reset {
                set_reset_on_close(&self.clients[key].stream);
            }
            self.close(key);
            self.report.fault.storm_closed += 1;
        }
        self.away.clear();
    }

    fn set_churn(&mut self, on: bool, now: u64) {
        self.churn_on = on;
        self.churn_last_ns = now;
        self.churn_debt = 0.0;
        if !on {
            // Everyone away comes back now, so that the end finds them all.
            for a in &mut self.away {
                a.due_ns = a.due_ns.min(now);
            }
        }
    }

    /// Drops `churn_rate` of the subscribers per second, at random.
    fn churn(&mut self, now: u64) {
        if !self.churn_on || self.plan.fault.churn_rate <= 0.0 {
            return;
        }
        let dt = now.saturating_sub(self.churn_last_ns) as f64 / 1e9;
        self.churn_last_ns = now;
        self.churn_debt += self.plan.fault.churn_rate * self.plan.count as f64 * dt;
        let slots = self.clients.capacity().max(1) as u64;
        while self.churn_debt >= 1.0 {
            self.churn_debt -= 1.0;
            // A few random slots; a tick that finds no subscriber skips one drop.
            let victim = (0..16).find_map(|_| {
                let key = (self.next_u64() % slots) as usize;
                self.clients
                    .get(key)
                    .filter(|c| c.state == State::Subscribed && !c.slow)
                    .map(|_| key)
            });
            let Some(key) = victim else { continue };
            let reset =
                (self.next_u64() % 1_000_000) as f64 / 1e6 < self.plan.fault.churn_reset_fraction;
            if reset {
                set_reset_on_close(&self.clients[key].stream);
                self.report.fault.churned_reset += 1;
            }
            self.report.fault.churned += 1;
            let (lo, hi) = (self.plan.fault.away_min_ms, self.plan.fault.away_max_ms);
            let away_ms = lo + self.next_u64() % (hi.saturating_sub(lo) + 1);
            // Its reconnect time runs from its planned return, not its drop.
            let due = now + away_ms * 1_000_000;
            self.leave(key, due, due, 0);
        }
    }

    fn set_attack(&mut self, on: bool, now: u64) {
        self.attack_on = on;
        if on {
            return;
        }
        let keys: Vec<usize> = self.attackers.iter().map(|(k, _)| k).collect();
        for key in keys {
            let mut a = self.attackers.remove(key);
            let _ = self.poll.registry().deregister(&mut a.stream);
            let f = &mut self.report.fault;
            f.attackers_open_at_stop += 1;
            f.attacker_oldest_at_stop_us = f
                .attacker_oldest_at_stop_us
                .max(now.saturating_sub(a.started_ns) / 1000);
        }
    }

    /// Keeps the attackers' number up and sends each its next byte when due.
    fn attack(&mut self, now: u64) {
        if !self.attack_on {
            return;
        }
        let mut opened = 0;
        while self.attackers.len() < self.plan.fault.attackers && opened < 100 {
            opened += 1;
            let source = self.plan.sources
                [self.report.fault.attackers_started as usize % self.plan.sources.len()];
            self.report.fault.attackers_started += 1;
            match open_socket(self.plan.target, source) {
                Ok(mut stream) => {
                    let entry = self.attackers.vacant_entry();
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut stream,
                            Token(ATTACK_BASE + entry.key()),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        self.report.fault.attackers_refused += 1;
                        continue;
                    }
                    entry.insert(Attacker {
                        stream,
                        started_ns: now,
                        connected: false,
                        sent: 0,
                        next_byte_ns: now,
                        answer: Vec::new(),
                    });
                }
                Err(_) => self.report.fault.attackers_refused += 1,
            }
        }
        let head = attack_head(&self.plan.fault.attack_path, &self.plan.target);
        let interval = self.plan.fault.byte_interval_ms.max(1) * 1_000_000;
        let mut gone = Vec::new();
        for (key, a) in self.attackers.iter_mut() {
            if !a.connected || a.next_byte_ns > now {
                continue;
            }
            let byte = head.get(a.sent).copied().unwrap_or(b'a');
            match a.stream.write(&[byte]) {
                Ok(_) => {
                    a.sent += 1;
                    a.next_byte_ns = now + interval;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => gone.push(key),
            }
        }
        for key in gone {
            self.attacker_closed(key, now);
        }
    }

    fn handle_attacker(&mut self, key: usize) {
        let now = mono_ns();
        let Some(a) = self.attackers.get_mut(key) else {
            return;
        };
        if !a.connected {
            match a.stream.take_error() {
                Ok(Some(_)) | Err(_) => return self.attacker_refused(key),
                Ok(None) => {}
            }
            match a.stream.peer_addr() {
                Ok(_) => {
                    a.connected = true;
                    let _ = self.poll.registry().reregister(
                        &mut a.stream,
                        Token(ATTACK_BASE + key),
                        Interest::READABLE,
                    );
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return,
                Err(_) => return self.attacker_refused(key),
            }
        }
        let mut buf = [0u8; 512];
        loop {
            let Some(a) = self.attackers.get_mut(key) else {
                return;
            };
            match a.stream.read(&mut buf) {
                Ok(0) => return self.attacker_closed(key, now),
                Ok(n) => {
                    let room = 256usize.saturating_sub(a.answer.len());
                    a.answer.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.attacker_closed(key, now),
            }
        }
    }

    fn attacker_refused(&mut self, key: usize) {
        if let Some(mut a) = self.attackers.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut a.stream);
            self.report.fault.attackers_refused += 1;
        }
    }

    /// The server ended attacker `key`: how long it lived, and what it said.
    fn attacker_closed(&mut self, key: usize, now: u64) {
        let Some(mut a) = self.attackers.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut a.stream);
        let f = &mut self.report.fault;
        let status = std::str::from_utf8(a.answer.get(9..12).unwrap_or_default()).unwrap_or("");
        if a.answer.starts_with(b"HTTP/1.1 503") || !a.connected {
            f.attackers_refused += 1;
            return;
        }
        f.attackers_closed += 1;
        match status {
            "408" => f.attackers_408 += 1,
            "" => {}
            _ => f.attackers_other_answer += 1,
        }
        let _ = self
            .attacker_life
            .record((now.saturating_sub(a.started_ns) / 1000).max(1));
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
            if let Err(e) = self.connect(index, source, now, None) {
                *self.report.failed.entry(cause(&e).to_string()).or_default() += 1;
            }
        }
    }

    /// Opens subscriber `index`'s connection; `back` carries the state of a
    /// subscriber coming back after a drop.
    fn connect(
        &mut self,
        index: usize,
        source: IpAddr,
        now: u64,
        back: Option<&Away>,
    ) -> io::Result<()> {
        let slow = self.plan.fault.slow_every > 0
            && (index as u64).is_multiple_of(self.plan.fault.slow_every);
        let mut stream = open_socket_with(self.plan.target, source, |s| {
            if slow {
                // A small window: the server's queue fills sooner.
                s.set_recv_buffer_size(65536)?;
            }
            Ok(())
        })?;
        let entry = self.clients.vacant_entry();
        self.poll.registry().register(
            &mut stream,
            Token(entry.key()),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let channel = self.plan.channels.name(index);
        let mut path = self
            .plan
            .path
            .replace("{channel}", &channel)
            .replace("{transport}", self.transport.name());
        let mut extra = String::new();
        if let Some(a) = back {
            // Resume after the last id seen, as a browser's client does:
            // EventSource sends Last-Event-ID, the others say `since`.
            if self.transport == Transport::Sse {
                extra = format!("Last-Event-ID: {}\r\n", a.resume_id);
            } else {
                path.push(if path.contains('?') { '&' } else { '?' });
                path.push_str(&format!("{}={}", self.plan.since_param, a.resume_id));
            }
            self.report.fault.reconnect_attempts += 1;
        }
        entry.insert(Client {
            stream,
            state: State::Connecting,
            dec: Subscriber::with_dialect(self.transport, self.plan.dialect),
            index,
            started_ns: now,
            last_id: back.map_or(0, |a| a.last_id),
            missed_credit: back.map_or(0, |a| a.missed_credit),
            resume: (None, None),
            request: request(&path, &self.plan.target, self.transport, &extra),
            written: 0,
            retries: 0,
            retrying: false,
            resume_id: back.map_or(0, |a| a.resume_id),
            slow,
            away_since: back.map(|a| a.since_ns),
            attempt: back.map_or(0, |a| a.attempt),
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
                    c.state = State::Requested;
                    self.connecting -= 1;
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

    fn read(&mut self, key: usize) {
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
                        // A long-poll says what left the backlog in its head.
                        if let Some(k) = h.missed {
                            self.report.missed_reported += k;
                            c.missed_credit += k;
                        }
                        if c.state == State::Requested {
                            self.mark_subscribed(key);
                            if self.clients[key].slow {
                                return false;
                            }
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

    fn item(&mut self, key: usize, item: Item, now: u64) {
        let c = &mut self.clients[key];
        if c.slow {
            return;
        }
        if let Item::Message { id, .. } = &item {
            c.resume_id = *id;
        }
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
                if gap > covered {
                    // Settled at the end, against the ids nobody was due.
                    let channel = self.plan.channels.name(c.index);
                    self.gaps
                        .push((channel, c.last_id + 1, id - 1, gap - covered));
                }
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
                && (c.resume_id > 0 || c.resume.0.is_some() || c.resume.1.is_some())
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
            path.push_str(&format!("{}={}", self.plan.since_param, c.resume_id));
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
            .filter(|(_, c)| matches!(c.state, State::Requested | State::Subscribed) && !c.slow)
            .count() as u64;
        let excused = |channel: &str, lo: u64, hi: u64| -> u64 {
            finish.excused.get(channel).map_or(0, |ids| {
                (ids.partition_point(|&i| i <= hi) - ids.partition_point(|&i| i < lo)) as u64
            })
        };
        let mut slow = Vec::new();
        for (key, c) in self.clients.iter() {
            if c.slow && c.state == State::Subscribed {
                slow.push(key);
                continue;
            }
            let channel = self.plan.channels.name(c.index);
            let Some(&last) = finish.expect.get(&channel) else {
                continue;
            };
            let due = last - excused(&channel, 1, last);
            // A connection accepted but never answered (a starved pool) was due
            // every message too: undelivered, though not an id-check loss.
            // So was a subscriber still on its way back.
            match (c.state, c.away_since) {
                (State::Requested | State::Connecting, Some(_)) | (State::Subscribed, _) => {
                    self.report.expected += due;
                    let behind = last.saturating_sub(c.last_id);
                    let covered = behind.min(c.missed_credit);
                    let unexcused = excused(&channel, c.last_id + 1, last);
                    self.report.lost += (behind - covered).saturating_sub(unexcused);
                }
                (State::Requested, None) => self.report.expected += due,
                (State::Connecting | State::Closed, _) => {}
            }
        }
        for a in std::mem::take(&mut self.away) {
            let channel = self.plan.channels.name(a.index);
            self.report.fault.away_at_end += 1;
            if let Some(&last) = finish.expect.get(&channel) {
                self.report.expected += last - excused(&channel, 1, last);
                let behind = last.saturating_sub(a.last_id);
                let covered = behind.min(a.missed_credit);
                self.report.lost +=
                    (behind - covered).saturating_sub(excused(&channel, a.last_id + 1, last));
            }
        }
        for (channel, lo, hi, uncovered) in std::mem::take(&mut self.gaps) {
            self.report.lost += uncovered.saturating_sub(excused(&channel, lo, hi));
        }
        // A slow consumer the server dropped reads to the end of what was
        // queued for it, then finds the connection closed.
        for key in slow {
            let c = &mut self.clients[key];
            self.report.fault.slow += 1;
            if drained_to_close(&mut c.stream, &mut self.buf) {
                self.report.fault.slow_dropped += 1;
            }
        }
        self.report.fault.reconnect_us = hist::encode(&self.reconnect_hist);
        self.report.fault.attacker_life_us = hist::encode(&self.attacker_life);
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

/// A non-blocking socket from `source` connecting to `target`.
fn open_socket(target: SocketAddr, source: IpAddr) -> io::Result<TcpStream> {
    open_socket_with(target, source, |_| Ok(()))
}

/// [`open_socket`], with `setup` run on the socket before it connects.
fn open_socket_with(
    target: SocketAddr,
    source: IpAddr,
    setup: impl FnOnce(&socket2::Socket) -> io::Result<()>,
) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
    s.set_nonblocking(true)?;
    s.set_nodelay(true)?;
    setup(&s)?;
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
    Ok(TcpStream::from_std(s.into()))
}

/// Makes the coming close send RST instead of FIN (`SO_LINGER` 0).
fn set_reset_on_close(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// The head an attacker sends one byte at a time; it never ends (`a` follows
/// for ever), so only the server's header deadline ends it.
fn attack_head(path: &str, target: &SocketAddr) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nX-Slowloris: ").into_bytes()
}

/// Reads what the server queued for a slow consumer; true when the
/// connection then turns out closed (EOF or reset), false when it is still
/// open (nothing more within 300 ms, or more than 64 MiB).
fn drained_to_close(stream: &mut TcpStream, buf: &mut [u8]) -> bool {
    use std::os::fd::AsRawFd;
    let mut total = 0usize;
    loop {
        match stream.read(buf) {
            Ok(0) => return true,
            Ok(n) => {
                total += n;
                if total > 64 << 20 {
                    return false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut pfd = libc::pollfd {
                    fd: stream.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: poll reads and writes only the one pollfd passed in.
                let n = unsafe { libc::poll(&mut pfd, 1, 300) };
                if n == 0 {
                    return false;
                }
            }
            Err(_) => return true,
        }
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
