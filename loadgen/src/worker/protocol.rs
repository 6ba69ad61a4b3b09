//! The lines between the coordinator and a worker, one JSON document a line:
//! [`ToWorker`] on the worker's stdin (pings for its clock, a [`Plan`], then
//! controls) and [`FromWorker`] on its stdout (pongs, [`Progress`] while it
//! runs, one [`Report`] at the end). The pings and pongs are
//! [`super::clock_sync`]'s.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};

use comet::client::Dialect;
use serde::{Deserialize, Serialize};

use super::clock_sync::{Ping, Pong};
use crate::results::{DeliveryCounts, WireCounts};

/// Writes `line` and a line break, and flushes.
fn no_bound() -> usize {
    usize::MAX
}

pub fn write_line<W: Write, T: Serialize>(mut w: W, line: &T) -> io::Result<()> {
    serde_json::to_writer(&mut w, line)?;
    w.write_all(b"\n")?;
    w.flush()
}

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
    /// Several servers sharing a broker: subscriber `i` starts on
    /// `nodes[i % len]` and, when a connect to come back fails, goes on to
    /// the next node of the list (the client's own failover: no server
    /// balances). Empty: every subscriber on `target`.
    #[serde(default)]
    pub nodes: Vec<SocketAddr>,
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
    /// Connections not yet answered at most (see the scenario's
    /// `ramp.unanswered`); `usize::MAX`: no bound.
    #[serde(default = "no_bound")]
    pub unanswered: usize,
    pub connect_timeout_ms: u64,
    /// `mono_ns` origin of latency intervals, shared by all workers.
    pub epoch_ns: u64,
    pub interval_ms: u64,
    #[serde(default)]
    pub fault: WorkerFault,
    /// Added to this worker's clock it gives the coordinator's: what its
    /// receipt times are corrected by before a stamp is subtracted.
    #[serde(default)]
    pub clock_offset_ns: i64,
}

impl Plan {
    /// The coordinator's clock at `local`, a time on this worker's.
    pub fn coordinator_ns(&self, local: u64) -> u64 {
        local.saturating_add_signed(self.clock_offset_ns)
    }
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
    /// Path of the attackers' request line; `{transport}` is the case's.
    pub attack_path: String,
}

/// A line from the coordinator to a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToWorker {
    /// The coordinator's clock, to be answered with a pong at once.
    Ping(Ping),
    /// What to do: after the pings, and only once.
    Plan(Box<Plan>),
    /// Publishing is over: report and exit.
    Finish(Finish),
    /// Close every subscriber now; `reset` with RST.
    Disconnect { reset: bool },
    /// Churn on or off ([`WorkerFault::churn_rate`]); off brings every
    /// subscriber away back at once.
    Churn(bool),
    /// Slowloris on or off; off closes the attackers.
    Attack(bool),
    /// Publish over the subscribers' own WebSockets from now on (see
    /// `chat.rs`): each message is a text frame its user's socket sends.
    Publish(SocketPublish),
}

/// The per-user publish schedule, kept by the workers themselves when every
/// user publishes over its own WebSocket: message `k` (of `total`) is due at
/// `start_ns + k / rate` and goes to user `k % users`, the `k / users + 1`th
/// on that user's channel, stamped and padded to `size` bytes as the
/// coordinator's publisher stamps its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SocketPublish {
    pub start_ns: u64,
    pub rate: f64,
    pub users: u64,
    pub size: usize,
    pub total: u64,
}

/// What a worker's sockets published of a [`SocketPublish`] schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SocketPublished {
    /// Messages due to this worker's users.
    pub scheduled: u64,
    /// Written to a subscribed socket.
    pub sent: u64,
    /// Due while their user's socket was not subscribed: not sent.
    pub not_connected: u64,
    /// Microseconds a send lagged its schedule, worst case.
    pub max_lag_us: u64,
}

impl std::ops::AddAssign<&SocketPublished> for SocketPublished {
    fn add_assign(&mut self, o: &SocketPublished) {
        self.scheduled += o.scheduled;
        self.sent += o.sent;
        self.not_connected += o.not_connected;
        self.max_lag_us = self.max_lag_us.max(o.max_lag_us);
    }
}

/// Sent by the coordinator when publishing is over.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Finish {
    /// Last id published on each channel; subscribers should have reached it.
    pub expect: HashMap<String, u64>,
    /// Ids on each channel that no subscriber was due (their publish failed).
    #[serde(default)]
    pub excused: HashMap<String, Vec<u64>>,
    /// Ids on each channel whose publish lost its answer: excused here too,
    /// and each counted in the report ([`Report::candidates`]), so that the
    /// coordinator can tell from what the subscribers saw whether it was
    /// published after all.
    #[serde(default)]
    pub candidates: HashMap<String, Vec<u64>>,
}

/// One id whose publish lost its answer, as one worker's subscribers saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Candidate {
    pub channel: String,
    pub id: u64,
    /// Subscribers that would have been due it (counted in `expected` for
    /// the channel).
    pub due: u64,
    /// Of them, those that received it.
    pub received: u64,
}

/// A line from a worker to the coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FromWorker {
    /// The answer to a ping.
    Pong(Pong),
    /// Every 250 ms, and at once after a disconnect storm.
    Progress(Progress),
    /// The last line.
    Report(Box<Report>),
}

/// What a worker has done so far; summed over the workers by the coordinator.
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
    /// The worker's resident memory now, and before its first connect, bytes.
    #[serde(default)]
    pub rss: u64,
    #[serde(default)]
    pub rss_start: u64,
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
    pub delivery: DeliveryCounts,
    pub wire: WireCounts,
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
    /// What the subscribers saw of each of [`Finish::candidates`].
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    /// Publishing over the sockets, when the schedule was the workers'.
    #[serde(default)]
    pub socket_publish: SocketPublished,
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

impl std::ops::AddAssign<&Progress> for Progress {
    /// Sums every count (`worker` is left as it was).
    fn add_assign(&mut self, o: &Progress) {
        self.connected += o.connected;
        self.subscribed += o.subscribed;
        self.failed += o.failed;
        self.received += o.received;
        self.pending += o.pending;
        self.open += o.open;
        self.away += o.away;
        self.storm_closed += o.storm_closed;
        self.attackers += o.attackers;
        self.rss += o.rss;
        self.rss_start += o.rss_start;
    }
}

impl std::ops::AddAssign<&FaultCounts> for FaultCounts {
    /// Sums the counts, keeps the oldest attacker; the encoded histograms
    /// are left out (they are merged as histograms, see `crate::hist::merge`).
    fn add_assign(&mut self, o: &FaultCounts) {
        self.storm_closed += o.storm_closed;
        self.churned += o.churned;
        self.churned_reset += o.churned_reset;
        self.server_drops += o.server_drops;
        self.reconnect_attempts += o.reconnect_attempts;
        self.reconnect_failures += o.reconnect_failures;
        self.reconnects += o.reconnects;
        self.away_at_end += o.away_at_end;
        self.slow += o.slow;
        self.slow_dropped += o.slow_dropped;
        self.attackers_started += o.attackers_started;
        self.attackers_closed += o.attackers_closed;
        self.attackers_408 += o.attackers_408;
        self.attackers_other_answer += o.attackers_other_answer;
        self.attackers_refused += o.attackers_refused;
        self.attackers_open_at_stop += o.attackers_open_at_stop;
        self.attacker_oldest_at_stop_us = self
            .attacker_oldest_at_stop_us
            .max(o.attacker_oldest_at_stop_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip_to_worker(line: &ToWorker) -> ToWorker {
        let mut buf = Vec::new();
        write_line(&mut buf, line).unwrap();
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
        serde_json::from_slice(&buf).unwrap()
    }

    #[test]
    fn each_line_says_what_it_is() {
        let report = Report {
            worker: 3,
            delivery: DeliveryCounts {
                received: 7,
                ..DeliveryCounts::default()
            },
            ..Report::default()
        };
        let mut buf = Vec::new();
        write_line(&mut buf, &FromWorker::Progress(Progress::default())).unwrap();
        write_line(&mut buf, &FromWorker::Report(Box::new(report))).unwrap();
        let lines: Vec<FromWorker> = buf
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert!(matches!(lines[0], FromWorker::Progress(_)));
        assert!(
            matches!(&lines[1], FromWorker::Report(r) if r.worker == 3 && r.delivery.received == 7)
        );
        // A report is a report by its tag, not by the fields it happens to hold.
        let empty = serde_json::to_string(&FromWorker::Report(Box::default())).unwrap();
        assert!(empty.starts_with("{\"report\":"), "{empty}");
        assert!(serde_json::from_str::<FromWorker>("{\"worker\":1}").is_err());

        let back = round_trip_to_worker(&ToWorker::Disconnect { reset: true });
        assert!(matches!(back, ToWorker::Disconnect { reset: true }));
        let back = round_trip_to_worker(&ToWorker::Finish(Finish {
            expect: HashMap::from([("bc".into(), 9)]),
            ..Finish::default()
        }));
        assert!(matches!(back, ToWorker::Finish(f) if f.expect["bc"] == 9));
    }

    #[test]
    fn sums() {
        let mut p = Progress {
            worker: 1,
            open: 2,
            away: 1,
            ..Progress::default()
        };
        p += &Progress {
            worker: 2,
            open: 3,
            received: 4,
            ..Progress::default()
        };
        assert_eq!((p.worker, p.open, p.away, p.received), (1, 5, 1, 4));
        let mut f = FaultCounts {
            churned: 1,
            attacker_oldest_at_stop_us: 50,
            ..FaultCounts::default()
        };
        f += &FaultCounts {
            churned: 2,
            attacker_oldest_at_stop_us: 20,
            reconnect_us: "x".into(),
            ..FaultCounts::default()
        };
        assert_eq!((f.churned, f.attacker_oldest_at_stop_us), (3, 50));
        assert!(f.reconnect_us.is_empty());
    }
}
