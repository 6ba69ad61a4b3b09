//! The results of a run: `run.json`, documented in `results/README.md`.
//!
//! Every figure is measured, never derived from another run; a step that
//! failed says why in `failure` and keeps what was measured up to then.

use std::collections::HashMap;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::hist::Summary;
use crate::sampler::{Machine, Sample};

mod hosts;

pub use hosts::{HostResult, WorkerResult};

/// The version of this document's shape.
pub const SCHEMA: &str = "cometbench-run/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub schema: String,
    pub scenario: serde_json::Value,
    pub command_line: Vec<String>,
    pub started_at: String,
    pub finished_at: String,
    pub machine: Machine,
    pub cases: Vec<Case>,
    pub thresholds: ThresholdResult,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub passed: bool,
    /// One line per threshold broken, naming the case.
    pub broken: Vec<String>,
}

/// One target (dispatcher or peer) at one transport and connection count.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
// Fields added later default, so older runs still load.
#[serde(default)]
pub struct Case {
    /// Dispatcher or peer name, as in the scenario.
    pub target: String,
    /// `dispatcher`, `peer` or `external`.
    pub kind: String,
    pub args: Vec<String>,
    pub transport: String,
    /// Connections asked for.
    pub step: u64,
    /// `ok`, `failed`, or `skipped` (a peer without the transport: `notes` says so).
    pub status: String,
    pub failure: Option<String>,
    /// Things the target cannot do, said instead of faked.
    pub notes: Vec<String>,
    pub duration_secs: f64,
    pub connections: Connections,
    pub server: Server,
    pub loadgen: Loadgen,
    pub publish: Option<crate::publisher::PublishReport>,
    pub delivery: Delivery,
    pub wire: Wire,
    /// File name of the latency interval log, beside run.json.
    pub hlog: Option<String>,
    /// The fault injected and its pass line, when the scenario has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultResult>,
    /// The nodes, broker and balancer of a case that runs several servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::cluster::ClusterResult>,
}

/// A fault injected into one case, what it did, and whether the pass line held.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultResult {
    /// `disconnect`, `churn`, `slow`, `slowloris` or `restart`.
    pub kind: String,
    /// Every check held.
    pub passed: bool,
    pub checks: Vec<Check>,
    /// What the workers counted, summed.
    pub counts: crate::worker::FaultCounts,
    /// Time from a subscriber's drop (restart) or its planned return (churn)
    /// to subscribed again, microseconds.
    pub reconnect_us: Option<Summary>,
    /// Life of the slowloris connections the server closed, microseconds.
    pub attacker_life_us: Option<Summary>,
    /// disconnect: each figure before the storm, its baseline and how long it
    /// took to get back.
    pub recovery: Vec<Recovery>,
    /// slowloris: new connections made during the attack and answered.
    pub probe: Option<Probe>,
    /// slow: the server's `dropped_slow` at the end.
    pub server_dropped_slow: Option<u64>,
    /// slow: the server's peak RSS during the case minus its baseline, bytes.
    pub rss_growth: Option<i64>,
    pub restart: Option<Restart>,
}

/// One item of a pass line.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Check {
    pub what: String,
    pub passed: bool,
    /// The figures it was judged on.
    pub detail: String,
}

/// One server figure through a disconnect storm.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Recovery {
    /// `rss`, `fds`, `threads`, `subscribers` or `connections` (the last two from `/stats`).
    pub metric: String,
    /// Before the ramp.
    pub baseline: f64,
    /// Just before the storm.
    pub before: f64,
    /// At the end of the observation.
    pub after: f64,
    /// Within this of the baseline counts as back.
    pub allowed: f64,
    /// Seconds from the storm to back for good (within `allowed` from then
    /// on), or null when it never was.
    pub secs: Option<f64>,
}

/// New connections tried while an attack went on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Probe {
    pub tried: u64,
    pub answered: u64,
    /// Time to a whole answer, milliseconds.
    pub p50_ms: f64,
    pub max_ms: f64,
}

/// A server restart under load.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Restart {
    /// `term` or `kill`.
    pub signal: String,
    /// Seconds into the publish phase the stop was sent.
    pub at_secs: f64,
    pub old_pid: Option<u32>,
    /// Seconds the old server took to end.
    pub stop_secs: f64,
    /// How it ended, when not as asked.
    pub exit: Option<String>,
    /// Seconds from the old server's end to the new one listening.
    pub down_secs: f64,
    pub new_pid: Option<u32>,
    /// Seconds from the new server listening to every subscriber back, or
    /// null when some never came back.
    pub all_back_secs: Option<f64>,
    /// Publishes refused or unanswered (no subscriber was due them).
    pub publishes_failed: u64,
    /// Messages accepted that some subscriber never got, summed over
    /// subscribers (`delivery.lost`): the backlog lives in the server's memory.
    pub lost: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
// Fields added later default, so older runs still load.
#[serde(default)]
pub struct Connections {
    pub requested: u64,
    /// TCP connections established.
    pub connected: u64,
    /// Subscriptions confirmed by the client (stream head, long-poll request sent).
    pub subscribed: u64,
    /// Subscribers the server's `/stats` reported after the ramp (our dispatchers only).
    pub server_subscribers: Option<u64>,
    /// Connected but never answered (a starved thread pool holds them in its queue).
    pub waiting: u64,
    /// Connections open at the end (served or waiting to be): the ones the
    /// server holds. Per-connection figures divide by this.
    pub held: u64,
    /// Failed connects and subscribes by cause: refused, timeout, reset, http_503 ...
    pub failed: HashMap<String, u64>,
    /// Answers 500-503 to a peer's subscribes that were retried (peers only).
    pub retried: u64,
    /// Connections the server closed after they were subscribed.
    pub disconnects: u64,
    pub connect_us: Summary,
    pub ramp_secs: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
// Fields added later default, so older runs still load.
#[serde(default)]
pub struct Server {
    pub pid: Option<u32>,
    pub baseline: Option<Sample>,
    /// Taken at the end of the hold, all connections up.
    pub at_step: Option<Sample>,
    pub peak_rss: u64,
    /// (RSS at step - RSS at baseline) / held connections, bytes.
    pub rss_per_conn: Option<f64>,
    /// Growth of the anonymous PSS / connected, bytes.
    pub anon_pss_per_conn: Option<f64>,
    /// Kernel memory growth / connected, bytes; see `kernel_source`.
    pub kernel_per_conn: Option<f64>,
    /// `cgroup-v1` (the server's own) or `system-wide` (/proc/meminfo deltas).
    pub kernel_source: Option<String>,
    pub threads: u64,
    pub fds: u64,
    /// Processes sampled at step (1 for a dispatcher; a peer's whole tree).
    pub processes: u64,
    /// CPU seconds during the publish phase.
    pub publish_cpu_user: f64,
    pub publish_cpu_sys: f64,
    pub cpu_per_delivery_us: Option<f64>,
    /// How the server process ended, when it did on its own.
    pub exit: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
// Fields added later default, so older runs still load.
#[serde(default)]
pub struct Loadgen {
    pub workers: u64,
    /// CPU seconds of workers and publisher during the publish phase.
    pub publish_cpu: f64,
    pub cpu_per_delivery_us: Option<f64>,
    /// Where the workers ran, what each host carried, its clock and CPU.
    pub hosts: Vec<HostResult>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
// Fields added later default, so older runs still load.
#[serde(default)]
pub struct Delivery {
    #[serde(flatten)]
    pub counts: DeliveryCounts,
    pub delivered_fraction: Option<f64>,
    /// Scheduled send to receipt (coordinated omission corrected), microseconds.
    pub latency_us: Summary,
    /// Actual send to receipt, microseconds.
    pub latency_raw_us: Summary,
}

/// What the subscribers counted of the messages due them: one worker's
/// (in its report), or a case's sum (in `run.json`'s `delivery`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliveryCounts {
    /// Deliveries due: for each subscribed client, the messages of its channel.
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Reported by the server as missed (left the backlog): not silent.
    pub missed_reported: u64,
    pub protocol_errors: u64,
    /// Messages without a parsable latency stamp, or, checked by the
    /// publisher's sequence, without a sequence number.
    pub unstamped: u64,
}

impl std::ops::AddAssign<&DeliveryCounts> for DeliveryCounts {
    fn add_assign(&mut self, o: &DeliveryCounts) {
        self.expected += o.expected;
        self.received += o.received;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
        self.out_of_order += o.out_of_order;
        self.missed_reported += o.missed_reported;
        self.protocol_errors += o.protocol_errors;
        self.unstamped += o.unstamped;
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
// Fields added later default, so older runs still load.
#[serde(default)]
pub struct Wire {
    #[serde(flatten)]
    pub counts: WireCounts,
    /// Bytes per delivered message: all, payload only.
    pub per_message_total: Option<f64>,
    pub per_message_payload: Option<f64>,
}

/// What the subscribers read off the wire: one worker's, or a case's sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WireCounts {
    pub bytes_total: u64,
    pub bytes_head: u64,
    pub bytes_payload: u64,
    pub heartbeats: u64,
}

impl std::ops::AddAssign<&WireCounts> for WireCounts {
    fn add_assign(&mut self, o: &WireCounts) {
        self.bytes_total += o.bytes_total;
        self.bytes_head += o.bytes_head;
        self.bytes_payload += o.bytes_payload;
        self.heartbeats += o.heartbeats;
    }
}

impl Case {
    /// Errors counted against thresholds: failed connects, protocol errors, losses.
    pub fn errors(&self) -> u64 {
        self.connections.failed.values().sum::<u64>()
            + self.delivery.counts.protocol_errors
            + self.delivery.counts.lost
            + self.delivery.counts.duplicates
            + self.delivery.counts.out_of_order
            + self.connections.disconnects
    }
}

fn bytes(b: Option<f64>) -> String {
    match b {
        None => "-".into(),
        Some(b) if b.abs() >= 10_240.0 => format!("{:.1} KiB", b / 1024.0),
        Some(b) => format!("{b:.0} B"),
    }
}

fn ms(us: u64, count: u64) -> String {
    if count == 0 {
        "-".into()
    } else {
        format!("{:.1}", us as f64 / 1000.0)
    }
}

fn us(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) => format!("{v:.1}"),
    }
}

/// The comparison table printed at the end of a run, then each target's notes.
pub fn write_table<W: Write>(mut w: W, cases: &[Case]) -> io::Result<()> {
    writeln!(
        w,
        "{:<22} {:<9} {:>11} {:>10} {:>11} {:>8} {:>5} {:>9} {:>9} {:>9} {:>9} {:>7}  status",
        "target",
        "transport",
        "conns",
        "RSS/conn",
        "kernel/conn",
        "threads",
        "procs",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "CPU us/msg",
        "errors"
    )?;
    for c in cases {
        let l = &c.delivery.latency_us;
        let status = match &c.failure {
            Some(f) => format!("FAILED: {f}"),
            None => c.status.clone(),
        };
        writeln!(
            w,
            "{:<22} {:<9} {:>11} {:>10} {:>11} {:>8} {:>5} {:>9} {:>9} {:>9} {:>9} {:>7}  {}",
            c.target,
            c.transport,
            format!("{}/{}", c.connections.connected, c.step),
            bytes(c.server.rss_per_conn),
            bytes(c.server.kernel_per_conn),
            c.server.threads,
            c.server.processes,
            ms(l.p50, l.count),
            ms(l.p99, l.count),
            ms(l.p999, l.count),
            us(c.server.cpu_per_delivery_us),
            c.errors(),
            status
        )?;
    }
    // Each fault's pass line, item by item.
    for c in cases {
        let Some(f) = &c.fault else { continue };
        writeln!(
            w,
            "fault {} on {} {} {}: {}",
            f.kind,
            c.target,
            c.transport,
            c.step,
            if f.passed { "PASS" } else { "FAIL" }
        )?;
        for check in &f.checks {
            writeln!(
                w,
                "  [{}] {}: {}",
                if check.passed { "ok" } else { "FAIL" },
                check.what,
                check.detail
            )?;
        }
    }
    // Notes once per target, in the order first met.
    let mut targets: Vec<&str> = Vec::new();
    for c in cases.iter().filter(|c| !c.notes.is_empty()) {
        if !targets.contains(&c.target.as_str()) {
            targets.push(&c.target);
        }
    }
    for t in targets {
        writeln!(w, "notes on {t}:")?;
        let mut seen: Vec<&str> = Vec::new();
        for n in cases
            .iter()
            .filter(|c| c.target == t)
            .flat_map(|c| c.notes.iter())
        {
            if !seen.contains(&n.as_str()) {
                seen.push(n);
                writeln!(w, "  - {n}")?;
            }
        }
    }
    Ok(())
}
