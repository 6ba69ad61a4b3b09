//! Scenario files: what a run measures, as TOML (`scenarios/*.toml`).
//!
//! A scenario names the targets (dispatchers with their flags, peers), the
//! transports, the connection counts to sweep, how fast to ramp, how long to
//! hold, what to publish, and the thresholds that fail a run. Parsing is strict:
//! an unknown field anywhere is an error (a misspelt `rat` must not silently
//! leave the default rate in force), and every error is one line naming the
//! file and the field.
//!
//! ```toml
//! name = "broadcast-10k"                  # required; names the results directory
//! description = "..."                     # default ""
//! dispatchers = ["reactor", { name = "thread-pool", args = ["--pool-size", "512"] }]
//! peers = ["nchan", "pushpin"]             # peer servers, run after the dispatchers
//! server_args = ["--heartbeat", "15"]    # passed to every dispatcher, before its own args
//! transports = ["sse"]                    # required: longpoll | sse | stream | iframe
//! steps = [10000]                         # required: >= 1, strictly increasing
//! hold_secs = 5.0                         # default 5
//! warmup_secs = 1.0                       # default 1
//! sample_interval_ms = 500                # default 500, >= 50
//! publish_listen = false                  # publish and read /stats on a separate port
//! nodes = [1, 2, 4]                       # several servers per case, a sweep like steps
//! broker = "redis"                        # the broker they share (needed with nodes)
//! balancer = "haproxy"                    # one address in front of the nodes (optional)
//! shared_port = false                     # the nodes share one port (SO_REUSEPORT), no balancer
//!
//! [ramp]
//! rate = 5000.0                           # connections/s, default 5000
//! in_flight = 512                         # default 512
//! unanswered = 8192                       # subscribes awaiting their answer at most (default: no bound)
//!
//! [publish]
//! pattern = "broadcast"                   # none (default) | broadcast | per-user
//! rate = 1.0                              # messages/s in total; required > 0 unless none
//! size = 64                               # bytes, 48 ..= 65536, default 64
//! duration_secs = 30.0                    # default 10
//! drain_secs = 2.0                        # default 2
//!
//! [thresholds]                            # each optional; a broken one exits 99
//! max_errors = 0
//! p99_ms = 150.0
//! min_delivered_fraction = 1.0
//!
//! repeat = 1                              # each case this many times, each with a fresh server
//! floor = false                           # also run the floor server, and ratios to it
//! capacity = false                        # step each target until p99 > slo_p99_ms, then stop it
//! slo_p99_ms = 250.0                      # the bound of capacity
//!
//! [placement]                             # optional: pin the processes (sched_setaffinity)
//! server = [0]                            # CPUs of the server, all its processes
//! loadgen = [1]                           # CPUs of the load generator's workers and coordinator
//!
//! [fault]                                 # optional: one fault per run, see [`Fault`]
//! kind = "disconnect"                     # disconnect | churn | slow | slowloris | restart | node
//! reset = true                            # disconnect, churn: RST instead of FIN
//!
//! [hosts]                                 # optional: workers elsewhere, see [`Hosts`]
//! namespaces = 2                          # or names = [...], command = "...", listen = "..."
//! ```
//!
//! What is left out: running anything. [`Scenario`] is plain data; `run` and
//! the CLI act on it.
//!
//! The files: this one (the document's shape, parsing), `fault` (the
//! `[fault]` table, a struct per kind), `hosts` (the `[hosts]` table and
//! `--hosts`), `check` (what serde cannot check),
//! `overrides` (what the command line changes), `error` (refusals as one line),
//! `cluster` (several nodes, their broker and balancer).

use std::fmt;
use std::path::Path;

use comet::Transport;
use serde::de;
use serde::{Deserialize, Serialize};

mod check;
mod cluster;
mod error;
mod fault;
mod hosts;
mod overrides;
mod placement;

pub use cluster::{Balancer, Broker, MAX_NODES};
pub use error::ScenarioError;
pub use fault::{
    Churn, Disconnect, Fault, FaultKind, Kill, Node, Restart, Slow, Slowloris, StopSignal,
};
pub use hosts::{Hosts, MAX_NAMESPACES, NAMESPACE_COMMAND};
pub use placement::Placement;

/// The dispatchers `cometbench serve` knows.
pub const DISPATCHERS: [&str; 6] = [
    "thread-per-connection",
    "thread-pool",
    "reactor",
    "uring",
    "green",
    "tokio",
];

/// The peer servers a run can start (see [`crate::peers`]).
pub const PEERS: [&str; 2] = ["nchan", "pushpin"];

/// The smallest payload: the latency stamp needs room.
pub const MIN_SIZE: usize = 48;
/// The largest payload: the server's default message limit.
pub const MAX_SIZE: usize = 65536;
/// The shortest sampling interval.
pub const MIN_SAMPLE_INTERVAL_MS: u64 = 50;

/// One experiment, parsed and checked.
///
/// Build it with [`Scenario::from_path`] or [`Scenario::from_str`], which
/// check it; `Deserialize` alone (to read a run's scenario back from
/// `run.json`) does not run the range checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub dispatchers: Vec<DispatcherSpec>,
    /// Peer servers (`nchan`, `pushpin`), started through `scripts/peers/`.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Flags for every dispatcher, before each dispatcher's own.
    #[serde(default)]
    pub server_args: Vec<String>,
    #[serde(with = "transport_names")]
    pub transports: Vec<Transport>,
    /// Connection counts, strictly increasing.
    pub steps: Vec<u64>,
    /// Time held at a step before measuring and publishing.
    #[serde(default = "default_hold_secs")]
    pub hold_secs: f64,
    /// Time the server settles before the baseline sample.
    #[serde(default = "default_warmup_secs")]
    pub warmup_secs: f64,
    #[serde(default = "default_sample_interval_ms")]
    pub sample_interval_ms: u64,
    /// Publish (and read `/stats`) through each dispatcher's separate
    /// `--publish-listen` port, so that subscriber starvation (a full thread
    /// pool) is measured on its own instead of blocking the publisher too.
    #[serde(default)]
    pub publish_listen: bool,
    /// Node counts: each case runs this many servers of its target sharing
    /// `broker`, with subscribers spread over them by the clients (see
    /// `docs/DESIGN.md`, Several nodes). Empty: one server, no broker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<Broker>,
    /// One address in front of the nodes (subscribers and publishers both
    /// go through it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balancer: Option<Balancer>,
    /// The nodes share one port (`SO_REUSEPORT`): the kernel spreads the
    /// connections over them, so that together they hold past one process's
    /// open-file limit. Needs `nodes` and `publish_listen`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_port: bool,
    #[serde(default)]
    pub ramp: Ramp,
    #[serde(default)]
    pub publish: Publish,
    #[serde(default)]
    pub thresholds: Thresholds,
    /// A fault injected while the step is held; its pass line is checked by
    /// the run (a broken one exits 99 like a threshold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Where the workers run (and the server, with namespaces); all here
    /// without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Hosts>,
    /// Every case is run this many times, each with a fresh server; the
    /// headline figures are summarised over them (see [`crate::spread`]).
    #[serde(default = "default_repeat")]
    pub repeat: u32,
    /// Runs the floor (`cometbench floor`, a plain write loop: the fastest
    /// fan-out this machine allows) as a target before the others, and
    /// gives every fan-out figure its ratio to the floor's.
    #[serde(default)]
    pub floor: bool,
    /// The cores the server and the load generator are pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Steps each target until a case's broadcast p99 passes `slo_p99_ms`,
    /// then stops stepping it; the largest step that held is its capacity.
    #[serde(default)]
    pub capacity: bool,
    /// The p99 bound of `capacity`, milliseconds.
    #[serde(default = "default_slo_p99_ms")]
    pub slo_p99_ms: f64,
}

/// A dispatcher and the flags passed to `cometbench serve --dispatcher NAME`.
///
/// In TOML either a bare name (`"reactor"`) or a table
/// (`{ name = "thread-pool", args = ["--pool-size", "512"] }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DispatcherSpec {
    pub name: String,
    pub args: Vec<String>,
}

/// How connections are opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ramp {
    /// Connections per second, over all workers.
    pub rate: f64,
    /// Connects in flight at most, over all workers.
    pub in_flight: usize,
    /// Connections not yet answered (connecting, or their subscribe
    /// waiting for its answer) at most, over all workers; `None`: no bound.
    /// A client's connect completes when the server's kernel answers it,
    /// before the server accepts, so a server slower than the rate fills
    /// its accept queues until the kernel drops connects (idle-2m,
    /// 2026-12-03: 53,419 listen overflows, 48,311 connections closed at
    /// the header deadline after their retransmitted request came late).
    /// With a bound the ramp goes at the server's pace. Without, a starved
    /// pool that never answers does not stall the ramp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unanswered: Option<usize>,
}

impl Default for Ramp {
    fn default() -> Ramp {
        Ramp {
            rate: 5000.0,
            in_flight: 512,
            unanswered: None,
        }
    }
}

/// What is published once the step is held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Publish {
    pub pattern: Pattern,
    /// Messages per second in total (0 with pattern `none`).
    pub rate: f64,
    /// Payload bytes.
    pub size: usize,
    pub duration_secs: f64,
    /// Wait after the last publish for deliveries.
    pub drain_secs: f64,
}

impl Default for Publish {
    fn default() -> Publish {
        Publish {
            pattern: Pattern::None,
            rate: 0.0,
            size: 64,
            duration_secs: 10.0,
            drain_secs: 2.0,
        }
    }
}

/// Who receives each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// Nothing is published: idle connections only.
    #[default]
    None,
    /// One channel, every subscriber receives every message.
    Broadcast,
    /// One channel per subscriber; each message goes to one of them.
    PerUser,
}

/// Limits that a run must stay within (exit 99 otherwise).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Connect failures + protocol errors + losses, per case.
    pub max_errors: Option<u64>,
    /// Corrected p99 delivery latency, milliseconds.
    pub p99_ms: Option<f64>,
    pub min_delivered_fraction: Option<f64>,
}

impl Scenario {
    /// Reads and checks a scenario file; errors name the path as given.
    pub fn from_path(path: &Path) -> Result<Scenario, ScenarioError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            origin: origin.clone(),
            source,
        })?;
        Scenario::from_str(&text, &origin)
    }

    /// Parses and checks scenario text; `origin` names it in errors.
    pub fn from_str(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let doc = toml::Deserializer::parse(text)
            .map_err(|e| ScenarioError::from_toml(&e, text, origin))?;
        let scenario: Scenario = serde_path_to_error::deserialize(doc)
            .map_err(|e| ScenarioError::from_serde(&e, text, origin))?;
        scenario.validate(origin)?;
        Ok(scenario)
    }
}

fn default_hold_secs() -> f64 {
    5.0
}

fn default_warmup_secs() -> f64 {
    1.0
}

fn default_sample_interval_ms() -> u64 {
    500
}

fn default_repeat() -> u32 {
    1
}

fn default_slo_p99_ms() -> f64 {
    250.0
}

fn transport_list() -> String {
    Transport::ALL
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl<'de> Deserialize<'de> for DispatcherSpec {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<DispatcherSpec, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            name: String,
            #[serde(default)]
            args: Vec<String>,
        }

        fn checked<E: de::Error>(name: String, args: Vec<String>) -> Result<DispatcherSpec, E> {
            if DISPATCHERS.contains(&name.as_str()) {
                Ok(DispatcherSpec { name, args })
            } else {
                Err(E::custom(format!(
                    "unknown dispatcher {name:?}{}, expected one of {}",
                    if name == "nchan" || name == "pushpin" {
                        " (peers go in peers)"
                    } else {
                        ""
                    },
                    DISPATCHERS.map(|d| format!("`{d}`")).join(", ")
                )))
            }
        }

        struct Visitor;

        impl<'de> de::Visitor<'de> for Visitor {
            type Value = DispatcherSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dispatcher name or a table { name = \"...\", args = [...] }")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<DispatcherSpec, E> {
                checked(v.to_string(), Vec::new())
            }

            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<DispatcherSpec, A::Error> {
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                checked(t.name, t.args)
            }
        }

        d.deserialize_any(Visitor)
    }
}

/// Transports as their `?transport=` names.
mod transport_names {
    use comet::Transport;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Transport], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|t| t.name()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Transport>, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names
            .iter()
            .map(|n| {
                Transport::from_name(n).ok_or_else(|| {
                    D::Error::custom(format!(
                        "unknown transport {n:?}, expected one of {}",
                        Transport::ALL.map(|t| format!("`{}`", t.name())).join(", ")
                    ))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
