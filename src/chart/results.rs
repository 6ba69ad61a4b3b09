//! The parts of `run.json` (schema `cometbench-run/1`, `results/README.md`)
//! that charts read.
//!
//! # Why not `loadgen::results::Run`
//! The load generator's types describe the run being written *now*: a field
//! added there is required when reading. Charts must go on reading the runs
//! committed under `results/reference/` by earlier versions, so this view names
//! only the documented fields charts use, each defaulted when absent, and
//! ignores the rest. Only `schema` and `cases` are required.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    pub schema: String,
    #[serde(default)]
    pub scenario: serde_json::Value,
    #[serde(default)]
    pub started_at: String,
    /// Empty while a run is being written.
    #[serde(default)]
    pub finished_at: String,
    #[serde(default)]
    pub machine: Machine,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Machine {
    pub cores: u64,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_total: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Case {
    pub target: String,
    pub kind: String,
    pub transport: String,
    pub step: u64,
    /// `ok`, `failed` or `skipped`.
    pub status: String,
    pub failure: Option<String>,
    pub notes: Vec<String>,
    pub server: Server,
    pub loadgen: Loadgen,
    /// Null when nothing was published.
    pub publish: Option<serde_json::Value>,
    pub delivery: Delivery,
    pub wire: Wire,
    pub hlog: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Server {
    pub at_step: Option<Sample>,
    pub rss_per_conn: Option<f64>,
    pub kernel_per_conn: Option<f64>,
    pub kernel_source: Option<String>,
    pub threads: u64,
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
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Delivery {
    pub received: u64,
    pub latency_us: Summary,
}

/// Microseconds.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
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

impl Case {
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
}
