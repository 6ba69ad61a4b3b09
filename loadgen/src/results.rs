//! The results of a run: `run.json`, documented in `results/README.md`.
//!
//! Every figure is measured, never derived from another run; a step that
//! failed says why in `failure` and keeps what was measured up to then.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::hist::Summary;
use crate::sampler::{Machine, Sample};
use crate::spread::{self, Spread, WIDE};

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
    /// The cores the server and the load generator were pinned to, when
    /// they were (`--cpus`, the scenario's `[placement]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<crate::scenario::Placement>,
    /// A capacity run's result per target and transport.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity: Vec<Capacity>,
}

/// How many subscribers a target held within the scenario's p99 bound.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Capacity {
    pub target: String,
    pub transport: String,
    pub slo_p99_ms: f64,
    /// The largest step whose broadcast p99 stayed within the bound (and
    /// whose case was ok); null when the first step already did not.
    pub held: Option<u64>,
    /// The first step that did not, and why; stepping stopped there.
    pub failed_at: Option<u64>,
    pub why: Option<String>,
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
    /// Which repeat this is, from 1 (0 in a run written before repeats).
    pub repeat: u32,
    /// With repeats: every repeat, the first included, each a whole case;
    /// this case's own figures are the first repeat's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repeats: Vec<Case>,
    /// With repeats: per headline figure (its path in the case), the median
    /// and min-max over the repeats (see [`crate::spread`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub spread: BTreeMap<String, Spread>,
    /// Per fan-out figure, this case's (median) over the floor's (median) at
    /// the same transport and step in the same run.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub floor_ratio: BTreeMap<String, f64>,
    /// Capacity runs: whether the case held the scenario's p99 bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_held: Option<bool>,
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
    /// Connections the server closed for sending no request within its
    /// deadline, by its `/stats` `closed_idle` after the ramp (our
    /// dispatchers only): a failed connect counted there was the server's
    /// deadline, not the kernel's refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_closed_idle: Option<u64>,
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
    /// The CPUs the server may run on, read at the end of the hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Vec<usize>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
// Fields added later default, so older runs still load.
#[serde(default)]
pub struct Loadgen {
    pub workers: u64,
    /// CPU seconds of workers and publisher during the publish phase.
    pub publish_cpu: f64,
    /// Of them, the workers' alone.
    pub publish_cpu_workers: f64,
    pub cpu_per_delivery_us: Option<f64>,
    /// The workers' resident memory, summed: before their first connect,
    /// and at the end of the hold, bytes.
    pub rss_start: u64,
    pub rss_at_step: u64,
    /// (rss_at_step - rss_start) / held connections, bytes.
    pub rss_per_conn: Option<f64>,
    /// The CPUs the (first) worker may run on, read at the end of the hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Vec<usize>>,
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
    /// Publishes whose answer was lost at the publisher that subscribers
    /// received: counted as published (see `run::reconcile`).
    pub reconciled: u64,
    /// Publishes whose answer was lost that no subscriber received: counted
    /// as not published.
    pub unconfirmed: u64,
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

/// Bytes as the table prints them: `B` below 10 KiB, else `KiB` to a tenth.
pub fn bytes(b: f64) -> String {
    if b.abs() >= 10_240.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// Microseconds as milliseconds to a tenth.
pub fn ms(us: f64) -> String {
    format!("{:.1}", us / 1000.0)
}

/// Microseconds to a tenth.
pub fn us(v: f64) -> String {
    format!("{v:.1}")
}

/// A fraction to four places.
pub fn fraction(v: f64) -> String {
    format!("{v:.4}")
}

/// Figure `key` of `c` as a cell: `-` without a value; over repeats
/// `median [min-max]`, with `*` after a range wider than [`WIDE`] of its median.
fn cell(c: &Case, key: &str, fmt: fn(f64) -> String) -> String {
    match c.spread.get(key) {
        Some(s) => format!(
            "{} [{}-{}]{}",
            fmt(s.median),
            fmt(s.min),
            fmt(s.max),
            if s.width() > WIDE { "*" } else { "" }
        ),
        None => spread::value(c, key).map_or("-".into(), fmt),
    }
}

/// The table's columns (the report's too); the last one, the status, is not padded.
pub const HEADER: [&str; 16] = [
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
    "delivered",
    "LG us/msg",
    "LG/conn",
    "errors",
    "status",
];

fn row(c: &Case) -> Vec<String> {
    let status = match &c.failure {
        Some(f) => format!("FAILED: {f}"),
        None => c.status.clone(),
    };
    vec![
        c.target.clone(),
        c.transport.clone(),
        format!("{}/{}", c.connections.connected, c.step),
        cell(c, "server.rss_per_conn", bytes),
        cell(c, "server.kernel_per_conn", bytes),
        c.server.threads.to_string(),
        c.server.processes.to_string(),
        cell(c, "delivery.latency_us.p50", ms),
        cell(c, "delivery.latency_us.p99", ms),
        cell(c, "delivery.latency_us.p999", ms),
        cell(c, "server.cpu_per_delivery_us", us),
        cell(c, "delivery.delivered_fraction", fraction),
        cell(c, "loadgen.cpu_per_delivery_us", us),
        cell(c, "loadgen.rss_per_conn", bytes),
        c.errors().to_string(),
        status,
    ]
}

/// A capacity run's result: per target, the largest count that held the bound.
pub fn write_capacity<W: Write>(mut w: W, capacity: &[Capacity]) -> io::Result<()> {
    for c in capacity {
        let held = c
            .held
            .map_or("no step".to_string(), |n| format!("{n} subscribers"));
        let stop = match (c.failed_at, &c.why) {
            (Some(n), Some(why)) => format!("; stopped at {n}: {why}"),
            _ => "; every step held".into(),
        };
        writeln!(
            w,
            "capacity at p99 <= {} ms: {} {}: {held}{stop}",
            c.slo_p99_ms, c.target, c.transport
        )?;
    }
    Ok(())
}

/// Each fan-out figure against the floor of the same run, when it has one.
fn write_floor<W: Write>(w: &mut W, cases: &[Case]) -> io::Result<()> {
    let with: Vec<&Case> = cases.iter().filter(|c| !c.floor_ratio.is_empty()).collect();
    if with.is_empty() {
        return Ok(());
    }
    writeln!(
        w,
        "against the floor (same run, same transport and step; 1.00 = the floor):"
    )?;
    writeln!(
        w,
        "  {:<22} {:<9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "target", "transport", "conns", "p50", "p99", "p99.9", "last", "CPU"
    )?;
    for c in with {
        let r = |k: &str| {
            c.floor_ratio
                .get(k)
                .map_or("-".into(), |v| format!("{v:.2}"))
        };
        writeln!(
            w,
            "  {:<22} {:<9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            c.target,
            c.transport,
            c.step,
            r("delivery.latency_us.p50"),
            r("delivery.latency_us.p99"),
            r("delivery.latency_us.p999"),
            r("delivery.latency_us.max"),
            r("server.cpu_per_delivery_us"),
        )?;
    }
    Ok(())
}

/// The comparison table printed at the end of a run, then each target's notes.
pub fn write_table<W: Write>(mut w: W, cases: &[Case]) -> io::Result<()> {
    let repeats = cases.iter().any(|c| !c.spread.is_empty());
    // A range widens a column: the widths are the widest cell's.
    let rows: Vec<Vec<String>> = cases.iter().map(row).collect();
    let mut widths: Vec<usize> = HEADER.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, v) in r.iter().enumerate() {
            widths[i] = widths[i].max(v.len());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut out = String::new();
        for (i, v) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(&format!("  {v}"));
            } else if i < 2 {
                out.push_str(&format!("{v:<w$} ", w = widths[i]));
            } else {
                out.push_str(&format!("{v:>w$} ", w = widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    writeln!(w, "{}", line(&HEADER.map(String::from)))?;
    for r in &rows {
        writeln!(w, "{}", line(r))?;
    }
    if repeats {
        writeln!(
            w,
            "figures over repeats: median [min-max]; * where the range passes {:.0}% of the median",
            WIDE * 100.0
        )?;
    }
    write_floor(&mut w, cases)?;
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
