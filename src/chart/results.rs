//! The parts of `run.json` (schema `cometbench-run/1`, `results/README.md`)
//! that charts and reports read.
//!
//! # Why not `loadgen::results::Run`
//! The load generator's types describe the run being written *now*: a field
//! added there is required when reading. Charts must go on reading the runs
//! committed under `results/reference/` by earlier versions, so this view names
//! only the documented fields charts use, each defaulted when absent, and
//! ignores the rest. Only `schema` and `cases` are required.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    pub schema: String,
    #[serde(default)]
    pub scenario: serde_json::Value,
    #[serde(default)]
    pub command_line: Vec<String>,
    #[serde(default)]
    pub started_at: String,
    /// Empty while a run is being written.
    #[serde(default)]
    pub finished_at: String,
    #[serde(default)]
    pub machine: Machine,
    pub cases: Vec<Case>,
    /// Absent in a run written before thresholds were judged.
    #[serde(default)]
    pub thresholds: Option<Thresholds>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    pub passed: bool,
    pub broken: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Machine {
    pub cores: u64,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_total: u64,
    pub nofile_soft: Option<u64>,
    pub nofile_hard: Option<u64>,
    pub pid_max: Option<u64>,
    pub threads_max: Option<u64>,
    pub max_map_count: Option<u64>,
    pub somaxconn: Option<u64>,
    pub tcp_max_syn_backlog: Option<u64>,
    pub ip_local_port_range: Vec<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Case {
    pub target: String,
    pub kind: String,
    /// Flags given to `cometbench serve`, or a peer's settings.
    pub args: Vec<String>,
    pub transport: String,
    pub step: u64,
    /// `ok`, `failed` or `skipped`.
    pub status: String,
    pub failure: Option<String>,
    pub notes: Vec<String>,
    pub connections: Connections,
    pub server: Server,
    pub loadgen: Loadgen,
    /// Null when nothing was published.
    pub publish: Option<serde_json::Value>,
    pub delivery: Delivery,
    pub wire: Wire,
    pub hlog: Option<String>,
    pub fault: Option<Fault>,
    /// A case of several nodes sharing a broker.
    pub cluster: Option<Cluster>,
    /// Per headline figure, its median and min-max over the case's repeats,
    /// keyed by the figure's path in the case (`delivery.latency_us.p99`);
    /// empty for a run without repeats.
    pub spread: BTreeMap<String, Spread>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Connections {
    pub connected: u64,
    /// Failed connects and subscribes by cause.
    pub failed: BTreeMap<String, u64>,
    pub disconnects: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Server {
    pub at_step: Option<Sample>,
    pub rss_per_conn: Option<f64>,
    pub kernel_per_conn: Option<f64>,
    pub kernel_source: Option<String>,
    pub threads: u64,
    pub processes: u64,
    pub cpu_per_delivery_us: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Sample {
    pub rss: u64,
    pub threads: u64,
    pub kernel: Option<KernelMem>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct KernelMem {
    /// `cgroup-v1` or `system-wide`.
    pub source: String,
    pub total: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Loadgen {
    pub cpu_per_delivery_us: Option<f64>,
    /// Where the workers ran (empty in runs from before hosts).
    pub hosts: Vec<Host>,
}

/// One host of a case's load (`loadgen.hosts`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Host {
    pub host: String,
    pub connections: u64,
    pub connected: u64,
    pub offset_ns: Option<i64>,
    pub uncertainty_ns: Option<u64>,
    pub cpu_user: f64,
    pub cpu_sys: f64,
    pub workers: Vec<HostWorker>,
}

/// One worker of a host: only why it was lost, if it was.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HostWorker {
    pub worker: usize,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Delivery {
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub protocol_errors: u64,
    pub latency_us: Summary,
}

/// Microseconds.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Wire {
    pub bytes_total: u64,
    pub bytes_head: u64,
    pub bytes_payload: u64,
    pub per_message_total: Option<f64>,
    pub per_message_payload: Option<f64>,
}

/// The nodes of a case and what the broker cost (`cluster` in run.json).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Cluster {
    pub nodes: u64,
    pub balancer: Option<String>,
    pub cpu_per_delivery_us: Option<f64>,
    pub broker_cpu_per_delivery_us: Option<f64>,
    pub broker_share: Option<f64>,
    pub broker_to_node_per_publish: Option<f64>,
}

/// A fault injected into the case and its pass line.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Fault {
    pub kind: String,
    pub passed: bool,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Check {
    pub what: String,
    pub passed: bool,
    pub detail: String,
}

/// One figure over repeats.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Case {
    /// Errors counted against thresholds, summed as the load generator
    /// sums them (`loadgen::results::Case::errors`): failed connects,
    /// server disconnects, protocol errors, losses, duplicates, reorders.
    pub fn errors(&self) -> u64 {
        self.connections.failed.values().sum::<u64>()
            + self.connections.disconnects
            + self.delivery.protocol_errors
            + self.delivery.lost
            + self.delivery.duplicates
            + self.delivery.out_of_order
    }

    /// Failed, or any status other than `ok` and `skipped`, or a failure text.
    pub fn is_failed(&self) -> bool {
        self.failure.is_some() || !matches!(self.status.as_str(), "ok" | "skipped")
    }

    /// Not run: a peer without the transport (its notes say why).
    pub fn is_skipped(&self) -> bool {
        self.status == "skipped" && self.failure.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_and_newer_runs_read_alike() {
        // A case with fields this view does not know, and one missing most.
        let json = r#"{"schema":"cometbench-run/1","cases":[
            {"target":"reactor","transport":"sse","step":10,"status":"ok",
             "connections":{"held":10,"brand_new":1},"server":{"rss_per_conn":300.5}},
            {"target":"nchan","status":"skipped","notes":["no iframe"]}]}"#;
        let run: Run = serde_json::from_str(json).unwrap();
        assert_eq!(run.cases.len(), 2);
        assert_eq!(run.cases[0].server.rss_per_conn, Some(300.5));
        assert!(!run.cases[0].is_failed());
        assert!(run.cases[1].is_skipped() && !run.cases[1].is_failed());
        assert!(serde_json::from_str::<Run>(r#"{"schema":"x"}"#).is_err());
    }

    #[test]
    fn a_case_reads_its_spreads_and_counts_errors_as_the_load_generator_does() {
        let json = r#"{"target":"uring","connections":{"failed":{"refused":2,"timeout":1},
            "disconnects":1},"delivery":{"lost":4,"duplicates":1,"out_of_order":1,
            "protocol_errors":1},"spread":{"delivery.latency_us.p99":
            {"median":90000.0,"min":84700.0,"max":111600.0}}}"#;
        let c: Case = serde_json::from_str(json).unwrap();
        assert_eq!(c.errors(), 11);
        let s = c.spread["delivery.latency_us.p99"];
        assert_eq!((s.median, s.min, s.max), (90000.0, 84700.0, 111600.0));
        assert!(serde_json::from_str::<Case>(r#"{"spread":{"x":{"median":1}}}"#).is_err());
    }
}
