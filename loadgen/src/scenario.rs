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
//!
//! [ramp]
//! rate = 5000.0                           # connections/s, default 5000
//! in_flight = 512                         # default 512
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
//! [fault]                                 # optional: one fault per run, see [`Fault`]
//! kind = "disconnect"                     # disconnect | churn | slow | slowloris | restart
//! reset = true                            # disconnect, churn: RST instead of FIN
//! ```
//!
//! What is left out: running anything. [`Scenario`] is plain data; `run` and
//! the CLI act on it.

use std::fmt;
use std::io;
use std::path::Path;

use comet::Transport;
use serde::de;
use serde::{Deserialize, Serialize};

/// The dispatchers `cometbench serve` knows.
pub const DISPATCHERS: [&str; 4] = ["thread-per-connection", "thread-pool", "reactor", "uring"];

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
}

/// A fault the load generator injects, and the pass line the run checks.
///
/// One table for every kind; a field that belongs to another kind is refused.
///
/// | kind | what happens | pass line |
/// | --- | --- | --- |
/// | `disconnect` | after the hold every subscriber closes at once (`reset`: with RST) | the server's fds, threads, RSS and `/stats` subscribers and connections are back within `tolerance` of the pre-ramp baseline within `recover_secs` |
/// | `churn` | while publishing, `rate` of the subscribers per second drop (`reset_fraction` of them with RST) and come back after `away_min_ms ..= away_max_ms`, resuming with `since` / `Last-Event-ID` | every id published arrives exactly once at every subscriber, or was reported missed; none lost silently |
/// | `slow` | `fraction` of the subscribers stop reading once subscribed | every slow one is dropped by the server, the healthy ones get everything, the server's RSS grows by at most `max_rss_growth_mib` |
/// | `slowloris` | `connections` attackers send a request head one byte every `byte_interval_ms` (closed ones are replaced) while the step is held and published to | every attacker is closed within `max_life_secs`, a new connection is answered within `max_life_secs`, the subscribers get everything |
/// | `restart` | `at_secs` into the publish phase the server is stopped (`signal`) and started again on the same ports after `downtime_secs`; subscribers reconnect | every subscriber is back within `max_reconnect_secs`; the messages lost across the restart are reported (the backlog is in memory) |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub kind: FaultKind,
    /// disconnect, churn: close with RST (`SO_LINGER` 0) instead of FIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<bool>,
    /// disconnect: time allowed to get back to the baseline, seconds (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recover_secs: Option<f64>,
    /// disconnect: how far from the baseline counts as back, a fraction (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// churn: fraction of the subscribers dropped per second (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// churn: of the drops, the fraction made with RST (default 0.5; `reset` sets 1 or 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_fraction: Option<f64>,
    /// churn: shortest and longest time away before reconnecting, ms (defaults 0 and 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_min_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_max_ms: Option<u64>,
    /// slow: fraction of the subscribers that stop reading (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// slow: the bound on the server's RSS growth over its baseline, MiB (default 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rss_growth_mib: Option<f64>,
    /// slowloris: attacking connections kept open (default 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// slowloris: one byte of the request head per this interval, ms (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_interval_ms: Option<u64>,
    /// slowloris: the longest an attacker may live, seconds (default 12: the
    /// 10 s header deadline and 2 s of slack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_life_secs: Option<f64>,
    /// restart: seconds into the publish phase (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_secs: Option<f64>,
    /// restart: seconds between the old server's end and the new one's start (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_secs: Option<f64>,
    /// restart: `term` (SIGTERM, default) or `kill` (SIGKILL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<StopSignal>,
    /// restart: the longest a subscriber may take to be back, seconds (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reconnect_secs: Option<f64>,
}

/// The faults [`Fault`] can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Disconnect,
    Churn,
    Slow,
    Slowloris,
    Restart,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Disconnect => "disconnect",
            FaultKind::Churn => "churn",
            FaultKind::Slow => "slow",
            FaultKind::Slowloris => "slowloris",
            FaultKind::Restart => "restart",
        }
    }

    /// The fields of [`Fault`] this kind reads.
    fn fields(self) -> &'static [&'static str] {
        match self {
            FaultKind::Disconnect => &["reset", "recover_secs", "tolerance"],
            FaultKind::Churn => &[
                "reset",
                "rate",
                "reset_fraction",
                "away_min_ms",
                "away_max_ms",
            ],
            FaultKind::Slow => &["fraction", "max_rss_growth_mib"],
            FaultKind::Slowloris => &["connections", "byte_interval_ms", "max_life_secs"],
            FaultKind::Restart => &["at_secs", "downtime_secs", "signal", "max_reconnect_secs"],
        }
    }
}

/// How a restarted server is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopSignal {
    #[default]
    Term,
    Kill,
}

impl Fault {
    pub fn reset(&self) -> bool {
        self.reset.unwrap_or(false)
    }
    pub fn recover_secs(&self) -> f64 {
        self.recover_secs.unwrap_or(5.0)
    }
    pub fn tolerance(&self) -> f64 {
        self.tolerance.unwrap_or(0.05)
    }
    pub fn rate(&self) -> f64 {
        self.rate.unwrap_or(0.05)
    }
    pub fn reset_fraction(&self) -> f64 {
        match (self.reset_fraction, self.reset) {
            (Some(f), _) => f,
            (None, Some(true)) => 1.0,
            (None, Some(false)) => 0.0,
            (None, None) => 0.5,
        }
    }
    pub fn away_ms(&self) -> (u64, u64) {
        (
            self.away_min_ms.unwrap_or(0),
            self.away_max_ms.unwrap_or(2000),
        )
    }
    pub fn fraction(&self) -> f64 {
        self.fraction.unwrap_or(0.1)
    }
    pub fn max_rss_growth_mib(&self) -> f64 {
        self.max_rss_growth_mib.unwrap_or(256.0)
    }
    pub fn connections(&self) -> u64 {
        self.connections.unwrap_or(2000)
    }
    pub fn byte_interval_ms(&self) -> u64 {
        self.byte_interval_ms.unwrap_or(1000)
    }
    pub fn max_life_secs(&self) -> f64 {
        self.max_life_secs.unwrap_or(12.0)
    }
    pub fn at_secs(&self) -> f64 {
        self.at_secs.unwrap_or(3.0)
    }
    pub fn downtime_secs(&self) -> f64 {
        self.downtime_secs.unwrap_or(1.0)
    }
    pub fn signal(&self) -> StopSignal {
        self.signal.unwrap_or_default()
    }
    pub fn max_reconnect_secs(&self) -> f64 {
        self.max_reconnect_secs.unwrap_or(10.0)
    }

    /// The fields given, by name, with whether each is a finite number >= 0
    /// where it is a number.
    fn given(&self) -> Vec<(&'static str, Option<f64>)> {
        let mut v = Vec::new();
        let f = |x: Option<f64>| x;
        let u = |x: Option<u64>| x.map(|x| x as f64);
        let mut add = |name, given: bool, num: Option<f64>| {
            if given {
                v.push((name, num));
            }
        };
        add("reset", self.reset.is_some(), None);
        add(
            "recover_secs",
            self.recover_secs.is_some(),
            f(self.recover_secs),
        );
        add("tolerance", self.tolerance.is_some(), f(self.tolerance));
        add("rate", self.rate.is_some(), f(self.rate));
        add(
            "reset_fraction",
            self.reset_fraction.is_some(),
            f(self.reset_fraction),
        );
        add(
            "away_min_ms",
            self.away_min_ms.is_some(),
            u(self.away_min_ms),
        );
        add(
            "away_max_ms",
            self.away_max_ms.is_some(),
            u(self.away_max_ms),
        );
        add("fraction", self.fraction.is_some(), f(self.fraction));
        add(
            "max_rss_growth_mib",
            self.max_rss_growth_mib.is_some(),
            f(self.max_rss_growth_mib),
        );
        add(
            "connections",
            self.connections.is_some(),
            u(self.connections),
        );
        add(
            "byte_interval_ms",
            self.byte_interval_ms.is_some(),
            u(self.byte_interval_ms),
        );
        add(
            "max_life_secs",
            self.max_life_secs.is_some(),
            f(self.max_life_secs),
        );
        add("at_secs", self.at_secs.is_some(), f(self.at_secs));
        add(
            "downtime_secs",
            self.downtime_secs.is_some(),
            f(self.downtime_secs),
        );
        add("signal", self.signal.is_some(), None);
        add(
            "max_reconnect_secs",
            self.max_reconnect_secs.is_some(),
            f(self.max_reconnect_secs),
        );
        v
    }

    /// Fields of another kind, ranges, and what the rest of the scenario
    /// must give for this kind; `Err((field, message))`.
    fn check(&self, s: &Scenario) -> Result<(), (String, String)> {
        let kind = self.kind.name();
        let bad = |field: &str, message: String| Err((format!("fault.{field}"), message));
        for (name, num) in self.given() {
            if !self.kind.fields().contains(&name) {
                return bad(
                    name,
                    format!(
                        "fault.{name} does not apply to kind \"{kind}\" (it reads {})",
                        self.kind.fields().join(", ")
                    ),
                );
            }
            if let Some(x) = num {
                if !(x.is_finite() && x >= 0.0) {
                    return bad(name, format!("fault.{name} must be >= 0 (got {x})"));
                }
            }
        }
        for (name, x) in [
            ("tolerance", self.tolerance),
            ("rate", self.rate),
            ("reset_fraction", self.reset_fraction),
            ("fraction", self.fraction),
        ] {
            if let Some(x) = x {
                if x > 1.0 {
                    return bad(
                        name,
                        format!("fault.{name} must be within 0 ..= 1 (got {x})"),
                    );
                }
            }
        }
        let (lo, hi) = self.away_ms();
        if lo > hi {
            return bad(
                "away_max_ms",
                format!("fault.away_max_ms ({hi}) must be >= fault.away_min_ms ({lo})"),
            );
        }
        if self.kind == FaultKind::Slowloris && self.connections() == 0 {
            return bad(
                "connections",
                "fault.connections must be >= 1 (got 0)".into(),
            );
        }
        if self.kind == FaultKind::Slowloris && self.byte_interval_ms() == 0 {
            return bad(
                "byte_interval_ms",
                "fault.byte_interval_ms must be >= 1 (got 0)".into(),
            );
        }
        if !s.peers.is_empty() {
            return Err((
                "peers".into(),
                format!("fault \"{kind}\" drives our dispatchers only: leave peers out"),
            ));
        }
        let publishes = s.publish.pattern != Pattern::None;
        match self.kind {
            FaultKind::Churn | FaultKind::Slow | FaultKind::Restart if !publishes => Err((
                "publish.pattern".into(),
                format!(
                    "fault kind \"{kind}\" needs messages: set publish.pattern to \"broadcast\" or \"per-user\""
                ),
            )),
            FaultKind::Restart if self.at_secs() >= s.publish.duration_secs => bad(
                "at_secs",
                format!(
                    "fault.at_secs ({}) must be within publish.duration_secs ({})",
                    self.at_secs(),
                    s.publish.duration_secs
                ),
            ),
            _ => Ok(()),
        }
    }
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
}

impl Default for Ramp {
    fn default() -> Ramp {
        Ramp {
            rate: 5000.0,
            in_flight: 512,
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

/// Why a scenario was refused. Display is one line, naming the file (or the
/// command-line flag) and the field.
#[derive(Debug)]
pub enum ScenarioError {
    /// The file could not be read.
    Io { origin: String, source: io::Error },
    /// Not TOML, or a field unknown, missing or of the wrong type. `line`
    /// counts from 1, where the TOML parser could tell.
    Parse {
        origin: String,
        line: Option<usize>,
        message: String,
    },
    /// A value out of its range or inconsistent with another; `message` names
    /// `field`.
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
}

impl ScenarioError {
    fn invalid(origin: &str, field: &str, message: String) -> ScenarioError {
        ScenarioError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            message,
        }
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::Io { origin, source } => {
                write!(f, "{origin}: {}", one_line(&source.to_string()))
            }
            ScenarioError::Parse {
                origin,
                line: Some(line),
                message,
            } => write!(f, "{origin}:{line}: {message}"),
            ScenarioError::Parse {
                origin,
                line: None,
                message,
            } => write!(f, "{origin}: {message}"),
            ScenarioError::Invalid {
                origin, message, ..
            } => write!(f, "{origin}: {message}"),
        }
    }
}

impl std::error::Error for ScenarioError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScenarioError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
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
        let doc = toml::Deserializer::parse(text).map_err(|e| {
            let mut message = one_line(e.message());
            // "duplicate key" says which key only through its span.
            if let Some(key) = e
                .span()
                .and_then(|s| text.get(s))
                .filter(|_| message == "duplicate key")
            {
                message = format!("duplicate key `{}`", key.trim());
            }
            ScenarioError::Parse {
                origin: origin.to_string(),
                line: e.span().map(|s| line_of(text, s.start)),
                message,
            }
        })?;
        let scenario: Scenario = serde_path_to_error::deserialize(doc).map_err(|e| {
            let inner = e.inner();
            let place = Place::of(e.path(), inner.message());
            // A field missing from the document has the whole document as its span.
            let whole = place.path.is_empty() && inner.message().starts_with("missing field");
            ScenarioError::Parse {
                origin: origin.to_string(),
                line: inner
                    .span()
                    .filter(|_| !whole)
                    .map(|s| line_of(text, s.start)),
                message: place.explain(&one_line(inner.message())),
            }
        })?;
        scenario.validate(origin)?;
        Ok(scenario)
    }

    /// Applies the command line: only the named dispatchers and peers (when
    /// either `--dispatcher` or `--peer` is given, nothing else runs), other
    /// steps, and `--quick` (steps / 10, at least 1, deduplicated; hold and
    /// publish durations / 5, at least 1 s unless already shorter).
    ///
    /// A named dispatcher keeps the scenario's entries for it (with their args),
    /// or runs with no args when the scenario does not list it; a peer may be
    /// named by `--peer`, or by `--dispatcher` when the scenario lists it.
    /// Errors name the flag.
    pub fn with_overrides(
        mut self,
        dispatchers: Option<Vec<String>>,
        only_peers: Option<Vec<String>>,
        steps: Option<Vec<u64>>,
        quick: bool,
    ) -> Result<Scenario, ScenarioError> {
        if dispatchers.is_some() || only_peers.is_some() {
            let mut chosen = Vec::new();
            let mut peers = Vec::new();
            for name in only_peers.iter().flatten() {
                if !PEERS.contains(&name.as_str()) {
                    return Err(ScenarioError::invalid(
                        "--peer",
                        "peers",
                        format!(
                            "unknown peer {name:?} (expected one of {}){}",
                            PEERS.join(", "),
                            if DISPATCHERS.contains(&name.as_str()) {
                                "; dispatchers go in --dispatcher"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                if !peers.contains(name) {
                    peers.push(name.clone());
                }
            }
            for name in dispatchers.iter().flatten() {
                let listed: Vec<&DispatcherSpec> = self
                    .dispatchers
                    .iter()
                    .filter(|d| &d.name == name)
                    .collect();
                if !listed.is_empty() {
                    chosen.extend(listed.into_iter().cloned());
                } else if self.peers.contains(name) {
                    if !peers.contains(name) {
                        peers.push(name.clone());
                    }
                } else if DISPATCHERS.contains(&name.as_str()) {
                    chosen.push(DispatcherSpec {
                        name: name.clone(),
                        args: Vec::new(),
                    });
                } else {
                    return Err(ScenarioError::invalid(
                        "--dispatcher",
                        "dispatchers",
                        format!(
                            "unknown dispatcher {name:?} (expected one of {}{})",
                            DISPATCHERS.join(", "),
                            if self.peers.is_empty() {
                                String::new()
                            } else {
                                format!(", or a peer of the scenario: {}", self.peers.join(", "))
                            }
                        ),
                    ));
                }
            }
            chosen.dedup();
            self.dispatchers = chosen;
            self.peers = peers;
        }
        if let Some(steps) = steps {
            check_steps("--steps", "steps", &steps)?;
            self.steps = steps;
        }
        if quick {
            let mut steps: Vec<u64> = self.steps.iter().map(|s| (s / 10).max(1)).collect();
            steps.dedup();
            self.steps = steps;
            self.hold_secs = quick_secs(self.hold_secs);
            let full = self.publish.duration_secs;
            self.publish.duration_secs = quick_secs(full);
            if let Some(f) = self.fault.as_mut() {
                match f.kind {
                    // The restart keeps its place in the shorter publish phase.
                    FaultKind::Restart => {
                        f.at_secs = Some(f.at_secs() * self.publish.duration_secs / full.max(1e-9))
                    }
                    // Attackers must live long enough to meet the header deadline.
                    FaultKind::Slowloris => {
                        self.publish.duration_secs =
                            full.min(self.publish.duration_secs.max(f.max_life_secs() + 3.0))
                    }
                    _ => {}
                }
            }
        }
        Ok(self)
    }

    /// The checks serde cannot make: ranges, order, consistency.
    fn validate(&self, origin: &str) -> Result<(), ScenarioError> {
        let bad =
            |field: &str, message: String| Err(ScenarioError::invalid(origin, field, message));
        let name_ok = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
        if self.name.is_empty()
            || self.name.len() > 64
            || !self.name.chars().all(name_ok)
            || self.name.starts_with('.')
        {
            return bad(
                "name",
                format!(
                    "name must be 1-64 of [A-Za-z0-9_.-], not starting with '.' (it names the results directory), got {:?}",
                    self.name
                ),
            );
        }
        for (i, d) in self.dispatchers.iter().enumerate() {
            if self.dispatchers[..i].contains(d) {
                return bad(
                    "dispatchers",
                    format!(
                        "dispatchers lists {:?} with args {:?} twice",
                        d.name, d.args
                    ),
                );
            }
        }
        for (i, p) in self.peers.iter().enumerate() {
            if !PEERS.contains(&p.as_str()) {
                return bad(
                    "peers",
                    format!(
                        "unknown peer {p:?} in peers (expected one of {}){}",
                        PEERS.join(", "),
                        if DISPATCHERS.contains(&p.as_str()) {
                            "; dispatchers go in dispatchers"
                        } else {
                            ""
                        }
                    ),
                );
            }
            if self.peers[..i].contains(p) {
                return bad("peers", format!("peers lists {p:?} twice"));
            }
        }
        if self.transports.is_empty() {
            return bad(
                "transports",
                format!(
                    "transports must not be empty (one or more of {})",
                    transport_list()
                ),
            );
        }
        for (i, t) in self.transports.iter().enumerate() {
            if self.transports[..i].contains(t) {
                return bad(
                    "transports",
                    format!("transports lists {:?} twice", t.name()),
                );
            }
        }
        check_steps(origin, "steps", &self.steps)?;
        if !(self.hold_secs.is_finite() && self.hold_secs >= 0.0) {
            return bad(
                "hold_secs",
                format!("hold_secs must be >= 0 (got {})", self.hold_secs),
            );
        }
        if !(self.warmup_secs.is_finite() && self.warmup_secs >= 0.0) {
            return bad(
                "warmup_secs",
                format!("warmup_secs must be >= 0 (got {})", self.warmup_secs),
            );
        }
        if self.sample_interval_ms < MIN_SAMPLE_INTERVAL_MS {
            return bad(
                "sample_interval_ms",
                format!(
                    "sample_interval_ms must be >= {MIN_SAMPLE_INTERVAL_MS} (got {})",
                    self.sample_interval_ms
                ),
            );
        }
        if !(self.ramp.rate.is_finite() && self.ramp.rate > 0.0) {
            return bad(
                "ramp.rate",
                format!(
                    "ramp.rate must be > 0 connections per second (got {})",
                    self.ramp.rate
                ),
            );
        }
        if self.ramp.in_flight < 1 {
            return bad(
                "ramp.in_flight",
                "ramp.in_flight must be >= 1 (got 0)".into(),
            );
        }
        let p = &self.publish;
        if !(MIN_SIZE..=MAX_SIZE).contains(&p.size) {
            return bad(
                "publish.size",
                format!(
                    "publish.size must be {MIN_SIZE} ..= {MAX_SIZE} bytes (got {}; the latency stamp needs {MIN_SIZE})",
                    p.size
                ),
            );
        }
        if !(p.drain_secs.is_finite() && p.drain_secs >= 0.0) {
            return bad(
                "publish.drain_secs",
                format!("publish.drain_secs must be >= 0 (got {})", p.drain_secs),
            );
        }
        if p.pattern == Pattern::None {
            if !(p.rate.is_finite() && p.rate >= 0.0) {
                return bad(
                    "publish.rate",
                    format!("publish.rate must be >= 0 (got {})", p.rate),
                );
            }
            if !(p.duration_secs.is_finite() && p.duration_secs >= 0.0) {
                return bad(
                    "publish.duration_secs",
                    format!(
                        "publish.duration_secs must be >= 0 (got {})",
                        p.duration_secs
                    ),
                );
            }
        } else {
            let pattern = serde_json::to_value(p.pattern)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            if !(p.rate.is_finite() && p.rate > 0.0) {
                return bad(
                    "publish.rate",
                    format!(
                        "publish.rate must be > 0 messages per second with pattern \"{pattern}\" (got {})",
                        p.rate
                    ),
                );
            }
            if !(p.duration_secs.is_finite() && p.duration_secs > 0.0) {
                return bad(
                    "publish.duration_secs",
                    format!(
                        "publish.duration_secs must be > 0 with pattern \"{pattern}\" (got {})",
                        p.duration_secs
                    ),
                );
            }
        }
        let t = &self.thresholds;
        if let Some(p99) = t.p99_ms {
            if !(p99.is_finite() && p99 > 0.0) {
                return bad(
                    "thresholds.p99_ms",
                    format!("thresholds.p99_ms must be > 0 (got {p99})"),
                );
            }
        }
        if let Some(f) = t.min_delivered_fraction {
            if !(0.0..=1.0).contains(&f) {
                return bad(
                    "thresholds.min_delivered_fraction",
                    format!("thresholds.min_delivered_fraction must be within 0 ..= 1 (got {f})"),
                );
            }
        }
        if let Some(fault) = &self.fault {
            if let Err((field, message)) = fault.check(self) {
                return bad(&field, message);
            }
        }
        Ok(())
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

fn quick_secs(secs: f64) -> f64 {
    (secs / 5.0).max(secs.min(1.0))
}

fn check_steps(origin: &str, field: &str, steps: &[u64]) -> Result<(), ScenarioError> {
    if steps.is_empty() {
        return Err(ScenarioError::invalid(
            origin,
            field,
            format!("{field} must not be empty (connection counts, e.g. [1000, 5000])"),
        ));
    }
    if steps.contains(&0) {
        return Err(ScenarioError::invalid(
            origin,
            field,
            format!("{field} must each be >= 1 (got 0)"),
        ));
    }
    if let Some(w) = steps.windows(2).find(|w| w[1] <= w[0]) {
        return Err(ScenarioError::invalid(
            origin,
            field,
            format!(
                "{field} must be strictly increasing (got {} after {})",
                w[1], w[0]
            ),
        ));
    }
    Ok(())
}

fn transport_list() -> String {
    Transport::ALL
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Collapses every run of whitespace, line breaks included, into one space.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Where in the document an error arose, from serde_path_to_error's path.
struct Place {
    /// `publish.size`, `dispatchers[1].args`, or "" at the top level.
    path: String,
    /// Every segment is a key: a `[table]` (or a key of the top level).
    keys_only: bool,
}

impl Place {
    /// The place of an error with `message`. The path of an unknown field
    /// ends with that field: the place is the table holding it.
    fn of(path: &serde_path_to_error::Path, message: &str) -> Place {
        let mut segments: Vec<&serde_path_to_error::Segment> = path.iter().collect();
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
        {
            if matches!(segments.last(), Some(serde_path_to_error::Segment::Map { key }) if key == field)
            {
                segments.pop();
            }
        }
        let mut out = String::new();
        let mut keys_only = true;
        for seg in segments {
            match seg {
                serde_path_to_error::Segment::Map { key } => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                serde_path_to_error::Segment::Seq { index } => {
                    keys_only = false;
                    out.push_str(&format!("[{index}]"));
                }
                serde_path_to_error::Segment::Enum { variant } => {
                    keys_only = false;
                    out.push_str(&format!("::{variant}"));
                }
                serde_path_to_error::Segment::Unknown => {
                    keys_only = false;
                    out.push_str("[?]");
                }
            }
        }
        Place {
            path: out,
            keys_only,
        }
    }

    /// Rewrites serde's message to name the place: "unknown field `rat`,
    /// expected one of `a`, `b`" at `publish` becomes "unknown field `rat` in
    /// [publish] (expected one of a, b)".
    fn explain(&self, message: &str) -> String {
        let field_of_table =
            message.starts_with("unknown field") || message.starts_with("missing field");
        let place = if self.path.is_empty() {
            String::new()
        } else if field_of_table && self.keys_only {
            format!(" in [{}]", self.path)
        } else {
            format!(" in {}", self.path)
        };
        if self.path.is_empty() && message.starts_with("missing field") {
            return message.replacen("missing field", "missing required field", 1);
        }
        match message.split_once(", expected ") {
            Some((head, expected)) => {
                format!("{head}{place} (expected {})", plain_expected(expected))
            }
            None => format!("{message}{place}"),
        }
    }
}

/// serde's "expected" in words for a scenario's author.
fn plain_expected(expected: &str) -> String {
    let e = expected.replace('`', "");
    match e.as_str() {
        "u64" | "usize" | "u32" => "a whole number >= 0".into(),
        "f64" => "a number".into(),
        "a sequence" => "an array".into(),
        _ if e.starts_with("struct ") => "a table".into(),
        _ => e,
    }
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
mod tests {
    use super::*;

    const FULL: &str = r#"
name = "broadcast-10k"
description = "10,000 SSE subscribers, one channel, 1 publish/s for 30 s"
dispatchers = ["thread-per-connection", { name = "thread-pool", args = ["--pool-size", "512"] }, "reactor", "uring"]
peers = ["nchan"]
server_args = ["--heartbeat", "15"]
transports = ["sse", "longpoll"]
steps = [1000, 10000]
hold_secs = 3.5
warmup_secs = 2.0
sample_interval_ms = 250

[ramp]
rate = 4000.0
in_flight = 256

[publish]
pattern = "broadcast"
rate = 1.0
size = 128
duration_secs = 30.0
drain_secs = 3.0

[thresholds]
max_errors = 0
p99_ms = 150.0
min_delivered_fraction = 1.0
"#;

    const MINIMAL: &str = r#"
name = "tiny"
transports = ["stream"]
steps = [10]
"#;

    fn err(text: &str) -> String {
        let e = Scenario::from_str(text, "scenarios/x.toml").expect_err("should be refused");
        let s = e.to_string();
        assert!(!s.contains('\n'), "one line: {s}");
        assert!(s.starts_with("scenarios/x.toml"), "names the file: {s}");
        s
    }

    fn with(extra_top: &str, tables: &str) -> String {
        format!("name = \"x\"\ntransports = [\"sse\"]\nsteps = [10]\n{extra_top}\n{tables}")
    }

    #[test]
    fn full_file_parses() {
        let s = Scenario::from_str(FULL, "full.toml").unwrap();
        let expected = Scenario {
            name: "broadcast-10k".into(),
            description: "10,000 SSE subscribers, one channel, 1 publish/s for 30 s".into(),
            dispatchers: vec![
                DispatcherSpec {
                    name: "thread-per-connection".into(),
                    args: vec![],
                },
                DispatcherSpec {
                    name: "thread-pool".into(),
                    args: vec!["--pool-size".into(), "512".into()],
                },
                DispatcherSpec {
                    name: "reactor".into(),
                    args: vec![],
                },
                DispatcherSpec {
                    name: "uring".into(),
                    args: vec![],
                },
            ],
            peers: vec!["nchan".into()],
            server_args: vec!["--heartbeat".into(), "15".into()],
            transports: vec![Transport::Sse, Transport::Longpoll],
            steps: vec![1000, 10000],
            hold_secs: 3.5,
            warmup_secs: 2.0,
            sample_interval_ms: 250,
            publish_listen: false,
            ramp: Ramp {
                rate: 4000.0,
                in_flight: 256,
            },
            publish: Publish {
                pattern: Pattern::Broadcast,
                rate: 1.0,
                size: 128,
                duration_secs: 30.0,
                drain_secs: 3.0,
            },
            thresholds: Thresholds {
                max_errors: Some(0),
                p99_ms: Some(150.0),
                min_delivered_fraction: Some(1.0),
            },
            fault: None,
        };
        assert_eq!(s, expected);
    }

    #[test]
    fn defaults() {
        let s = Scenario::from_str(MINIMAL, "min.toml").unwrap();
        assert_eq!(s.name, "tiny");
        assert_eq!(s.description, "");
        assert!(s.dispatchers.is_empty() && s.peers.is_empty() && s.server_args.is_empty());
        assert_eq!(s.transports, vec![Transport::Stream]);
        assert_eq!(s.steps, vec![10]);
        assert_eq!(s.hold_secs, 5.0);
        assert_eq!(s.warmup_secs, 1.0);
        assert_eq!(s.sample_interval_ms, 500);
        assert_eq!(
            s.ramp,
            Ramp {
                rate: 5000.0,
                in_flight: 512
            }
        );
        assert_eq!(s.publish, Publish::default());
        assert_eq!(s.publish.pattern, Pattern::None);
        assert_eq!(s.publish.size, 64);
        assert_eq!(s.publish.duration_secs, 10.0);
        assert_eq!(s.publish.drain_secs, 2.0);
        assert_eq!(s.thresholds, Thresholds::default());
        // A partial table keeps the defaults of the fields it leaves out.
        let s = Scenario::from_str(
            &with(
                "",
                "[publish]\npattern = \"per-user\"\nrate = 5.0\n[ramp]\nrate = 100.0",
            ),
            "p.toml",
        )
        .unwrap();
        assert_eq!(s.publish.pattern, Pattern::PerUser);
        assert_eq!(s.publish.size, 64);
        assert_eq!(s.publish.duration_secs, 10.0);
        assert_eq!(s.ramp.in_flight, 512);
        // Whole numbers where numbers are expected.
        let s = Scenario::from_str(
            &with(
                "hold_secs = 2",
                "[publish]\npattern = \"broadcast\"\nrate = 1",
            ),
            "p.toml",
        )
        .unwrap();
        assert_eq!((s.hold_secs, s.publish.rate), (2.0, 1.0));
    }

    #[test]
    fn serializes_for_run_json() {
        let s = Scenario::from_str(FULL, "full.toml").unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["transports"], serde_json::json!(["sse", "longpoll"]));
        assert_eq!(v["publish"]["pattern"], "broadcast");
        assert_eq!(v["dispatchers"][1]["args"][1], "512");
        assert_eq!(v["dispatchers"][0]["name"], "thread-per-connection");
        // And back (charts may read a run's scenario).
        let back: Scenario = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn unknown_top_level_field() {
        let e = err(&with("steps_max = 3", ""));
        assert!(e.contains("unknown field `steps_max` (expected"), "{e}");
        assert!(e.contains("expected one of name, description"), "{e}");
        assert!(e.contains("x.toml:4:"), "line: {e}");
    }

    #[test]
    fn unknown_field_in_publish() {
        let e = err(&with("", "[publish]\npattern = \"broadcast\"\nrat = 1.0\n"));
        assert!(e.contains("unknown field `rat` in [publish]"), "{e}");
        assert!(
            e.contains("(expected one of pattern, rate, size, duration_secs, drain_secs)"),
            "{e}"
        );
        assert!(e.contains("x.toml:7:"), "line: {e}");
        let e = err(&with("", "[thresholds]\np99 = 1.0\n"));
        assert!(e.contains("unknown field `p99` in [thresholds]"), "{e}");
        let e = err(&with("", "[ramp]\nspeed = 1.0\n"));
        assert!(e.contains("unknown field `speed` in [ramp]"), "{e}");
        let e = err(&with(
            "dispatchers = [{ name = \"reactor\", flags = [] }]",
            "",
        ));
        assert!(e.contains("unknown field `flags` in dispatchers[0]"), "{e}");
    }

    #[test]
    fn bad_transport() {
        let e = err(&with("", "").replace("[\"sse\"]", "[\"sse\", \"websocket\"]"));
        assert!(
            e.contains("unknown transport \"websocket\" in transports"),
            "{e}"
        );
        assert!(e.contains("longpoll, sse, stream, iframe"), "{e}");
        let e = err(&with("", "").replace("[\"sse\"]", "[]"));
        assert!(e.contains("transports must not be empty"), "{e}");
        let e = err(&with("", "").replace("[\"sse\"]", "[\"sse\", \"sse\"]"));
        assert!(e.contains("transports lists \"sse\" twice"), "{e}");
    }

    #[test]
    fn bad_dispatcher() {
        let e = err(&with("dispatchers = [\"reactor\", \"epoll\"]", ""));
        assert!(
            e.contains("unknown dispatcher \"epoll\" in dispatchers[1]"),
            "{e}"
        );
        assert!(
            e.contains("thread-per-connection, thread-pool, reactor, uring"),
            "{e}"
        );
        let e = err(&with("dispatchers = [{ name = \"nchan\" }]", ""));
        assert!(
            e.contains("unknown dispatcher \"nchan\" (peers go in peers) in dispatchers[0]"),
            "{e}"
        );
        let e = err(&with("dispatchers = [{ args = [] }]", ""));
        assert!(e.contains("missing field `name` in dispatchers[0]"), "{e}");
        let e = err(&with("dispatchers = [3]", ""));
        assert!(e.contains("dispatchers[0]"), "{e}");
    }

    #[test]
    fn bad_peer() {
        let e = err(&with("peers = [\"nginx\"]", ""));
        assert!(
            e.contains("unknown peer \"nginx\" in peers (expected one of nchan, pushpin)"),
            "{e}"
        );
        let e = err(&with("peers = [\"reactor\"]", ""));
        assert!(e.contains("dispatchers go in dispatchers"), "{e}");
        let e = err(&with("peers = [\"nchan\", \"nchan\"]", ""));
        assert!(e.contains("peers lists \"nchan\" twice"), "{e}");
        let s =
            Scenario::from_str(&with("peers = [\"pushpin\", \"nchan\"]", ""), "p.toml").unwrap();
        assert_eq!(s.peers, vec!["pushpin", "nchan"]);
    }

    #[test]
    fn decreasing_steps() {
        let e = err(&with("", "").replace("[10]", "[100, 500, 200]"));
        assert!(
            e.contains("steps must be strictly increasing (got 200 after 500)"),
            "{e}"
        );
        let e = err(&with("", "").replace("[10]", "[100, 100]"));
        assert!(e.contains("strictly increasing (got 100 after 100)"), "{e}");
        let e = err(&with("", "").replace("[10]", "[0, 5]"));
        assert!(e.contains("steps must each be >= 1"), "{e}");
        let e = err(&with("", "").replace("[10]", "[]"));
        assert!(e.contains("steps must not be empty"), "{e}");
        let e = err(&with("", "").replace("[10]", "[-5]"));
        assert!(e.contains("in steps[0]"), "{e}");
    }

    #[test]
    fn size_too_small() {
        let e = err(&with(
            "",
            "[publish]\npattern = \"broadcast\"\nrate = 1.0\nsize = 16\n",
        ));
        assert!(
            e.contains("publish.size must be 48 ..= 65536 bytes (got 16"),
            "{e}"
        );
        let e = err(&with("", "[publish]\nsize = 70000\n"));
        assert!(e.contains("publish.size"), "{e}");
    }

    #[test]
    fn missing_required_field() {
        let e = err("transports = [\"sse\"]\nsteps = [1]\n");
        assert!(e.contains("missing required field `name`"), "{e}");
        let e = err("name = \"x\"\nsteps = [1]\n");
        assert!(e.contains("missing required field `transports`"), "{e}");
        let e = err("name = \"x\"\ntransports = [\"sse\"]\n");
        assert!(e.contains("missing required field `steps`"), "{e}");
    }

    #[test]
    fn other_refusals_are_one_line_too() {
        let e = err(&with("", "[publish]\npattern = \"broadcast\"\n"));
        assert!(e.contains("publish.rate must be > 0"), "{e}");
        let e = err(&with("", "[publish]\npattern = \"fanout\"\n"));
        assert!(e.contains("unknown variant `fanout` in publish.pattern (expected one of none, broadcast, per-user)"), "{e}");
        let e = err(&with("", "[publish]\nsize = \"big\"\n"));
        assert!(e.contains("in publish.size"), "{e}");
        let e = err(&with("sample_interval_ms = 10", ""));
        assert!(e.contains("sample_interval_ms must be >= 50"), "{e}");
        let e = err(&with("", "[ramp]\nrate = 0.0\n"));
        assert!(e.contains("ramp.rate must be > 0"), "{e}");
        let e = err(&with("", "[ramp]\nin_flight = 0\n"));
        assert!(e.contains("ramp.in_flight must be >= 1"), "{e}");
        let e = err(&with("", "[thresholds]\nmin_delivered_fraction = 1.5\n"));
        assert!(e.contains("thresholds.min_delivered_fraction"), "{e}");
        let e = err(&with("hold_secs = -1.0", ""));
        assert!(e.contains("hold_secs must be >= 0"), "{e}");
        let e = err(&with("", "").replace("\"x\"", "\"a/b\""));
        assert!(e.contains("name must be"), "{e}");
        // Not TOML at all: the parser's multi-line report, flattened.
        let e = err("name = \"x\"\n[publish\n");
        assert!(e.contains("x.toml:2: unclosed table"), "{e}");
        let e = err(&with("name = \"y\"", ""));
        assert!(e.contains("x.toml:4: duplicate key `name`"), "{e}");
        let e = err(&with("", "[publish]\nsize = \"big\"\n"));
        assert!(e.contains("x.toml:6: invalid type: string \"big\" in publish.size (expected a whole number >= 0)"), "{e}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = Scenario::from_path(Path::new("/nonexistent/s.toml")).unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("/nonexistent/s.toml: "), "{s}");
        assert!(matches!(e, ScenarioError::Io { .. }));
    }

    #[test]
    fn overrides() {
        let s = Scenario::from_str(FULL, "full.toml").unwrap();
        let o = s
            .clone()
            .with_overrides(
                Some(vec!["thread-pool".into(), "nchan".into()]),
                None,
                None,
                false,
            )
            .unwrap();
        assert_eq!(o.dispatchers.len(), 1);
        assert_eq!(o.dispatchers[0].args, vec!["--pool-size", "512"]);
        assert_eq!(o.peers, vec!["nchan"]);
        let o = s
            .clone()
            .with_overrides(Some(vec!["reactor".into()]), None, None, false)
            .unwrap();
        assert!(o.peers.is_empty());
        let min = Scenario::from_str(MINIMAL, "min.toml").unwrap();
        let o = min
            .with_overrides(Some(vec!["uring".into()]), None, None, false)
            .unwrap();
        assert_eq!(
            o.dispatchers,
            vec![DispatcherSpec {
                name: "uring".into(),
                args: vec![]
            }]
        );
        let e = s
            .clone()
            .with_overrides(Some(vec!["epoll".into()]), None, None, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--dispatcher: unknown dispatcher \"epoll\""),
            "{e}"
        );

        let o = s
            .clone()
            .with_overrides(None, None, Some(vec![5, 50]), false)
            .unwrap();
        assert_eq!(o.steps, vec![5, 50]);
        let e = s
            .clone()
            .with_overrides(None, None, Some(vec![50, 5]), false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--steps: steps must be strictly increasing (got 5 after 50)"
        );

        let o = s
            .clone()
            .with_overrides(None, None, Some(vec![1, 5, 10, 100, 10000]), true)
            .unwrap();
        assert_eq!(o.steps, vec![1, 10, 1000]);
        assert_eq!(o.hold_secs, 1.0); // 3.5 / 5 = 0.7, raised to 1 s
        assert_eq!(o.publish.duration_secs, 6.0);
        assert_eq!(o.warmup_secs, s.warmup_secs);
        // --peer alone: only the peers named run, listed in the scenario or not.
        let o = s
            .clone()
            .with_overrides(
                None,
                Some(vec!["pushpin".into(), "nchan".into()]),
                None,
                false,
            )
            .unwrap();
        assert!(o.dispatchers.is_empty());
        assert_eq!(o.peers, vec!["pushpin", "nchan"]);
        // Both flags: the union; a peer named twice runs once.
        let o = s
            .clone()
            .with_overrides(
                Some(vec!["reactor".into(), "nchan".into()]),
                Some(vec!["nchan".into()]),
                None,
                false,
            )
            .unwrap();
        assert_eq!(o.dispatchers.len(), 1);
        assert_eq!(o.peers, vec!["nchan"]);
        let e = s
            .clone()
            .with_overrides(None, Some(vec!["reactor".into()]), None, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--peer: unknown peer \"reactor\" (expected one of nchan, pushpin); dispatchers go in --dispatcher"),
            "{e}"
        );
        let short = Scenario::from_str(&with("hold_secs = 0.5", ""), "s.toml").unwrap();
        assert_eq!(
            short
                .with_overrides(None, None, None, true)
                .unwrap()
                .hold_secs,
            0.5
        );
    }

    #[test]
    fn fault_table() {
        let s = Scenario::from_str(
            &with(
                "",
                "[publish]\npattern = \"broadcast\"\nrate = 5.0\n[fault]\nkind = \"churn\"\nrate = 0.2\naway_max_ms = 4000\n",
            ),
            "f.toml",
        )
        .unwrap();
        let f = s.fault.clone().unwrap();
        assert_eq!(f.kind, FaultKind::Churn);
        assert_eq!(f.rate(), 0.2);
        assert_eq!(f.away_ms(), (0, 4000));
        assert_eq!(f.reset_fraction(), 0.5);
        // Round-trips through run.json.
        let back: Scenario = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let s = Scenario::from_str(
            &with("", "[fault]\nkind = \"disconnect\"\nreset = true\n"),
            "f.toml",
        )
        .unwrap();
        assert!(s.fault.unwrap().reset());
    }

    #[test]
    fn quick_keeps_the_fault_meaningful() {
        let text = with(
            "hold_secs = 5.0",
            "[publish]\npattern = \"broadcast\"\nrate = 5.0\nduration_secs = 20.0\n[fault]\nkind = \"restart\"\nat_secs = 8.0\n",
        );
        let s = Scenario::from_str(&text, "q.toml")
            .unwrap()
            .with_overrides(None, None, None, true)
            .unwrap();
        assert_eq!(s.publish.duration_secs, 4.0);
        assert_eq!(s.fault.unwrap().at_secs(), 1.6);
        let text = text.replace("\"restart\"\nat_secs = 8.0", "\"slowloris\"");
        let s = Scenario::from_str(&text, "q.toml")
            .unwrap()
            .with_overrides(None, None, None, true)
            .unwrap();
        assert_eq!(s.publish.duration_secs, 15.0);
    }

    #[test]
    fn fault_refusals_name_the_field() {
        let e = err(&with("", "[fault]\nkind = \"flood\"\n"));
        assert!(e.contains("unknown variant `flood`"), "{e}");
        assert!(e.contains("in fault.kind"), "{e}");
        let e = err(&with(
            "",
            "[fault]\nkind = \"disconnect\"\nconnections = 5\n",
        ));
        assert!(
            e.contains("fault.connections does not apply to kind \"disconnect\""),
            "{e}"
        );
        let e = err(&with("", "[fault]\nkind = \"slow\"\n"));
        assert!(e.contains("needs messages"), "{e}");
        let e = err(&with(
            "",
            "[fault]\nkind = \"disconnect\"\ntolerance = 1.5\n",
        ));
        assert!(e.contains("fault.tolerance must be within 0 ..= 1"), "{e}");
        let e = err(&with(
            "",
            "[fault]\nkind = \"slowloris\"\nconnections = 0\n",
        ));
        assert!(e.contains("fault.connections must be >= 1"), "{e}");
        let e = err(&with(
            "",
            "[publish]\npattern = \"broadcast\"\nrate = 1.0\nduration_secs = 2.0\n[fault]\nkind = \"restart\"\nat_secs = 5.0\n",
        ));
        assert!(
            e.contains("fault.at_secs (5) must be within publish.duration_secs"),
            "{e}"
        );
        let e = err(&with("", "[fault]\nkind = \"churn\"\nspeed = 1\n"));
        assert!(e.contains("unknown field `speed` in [fault]"), "{e}");
    }

    #[test]
    fn repository_scenarios_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("note: no {} to check", dir.display());
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                if let Err(e) = Scenario::from_path(&path) {
                    panic!("{e}");
                }
            }
        }
    }
}
