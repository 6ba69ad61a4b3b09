//! The `[fault]` table: one kind per run, each kind a struct of its own.
//!
//! | kind | what happens | pass line |
//! | --- | --- | --- |
//! | `disconnect` | after the hold every subscriber closes at once (`reset`: with RST) | the server's fds, threads, RSS and `/stats` subscribers and connections are back within `tolerance` of the pre-ramp baseline within `recover_secs` |
//! | `churn` | while publishing, `rate` of the subscribers per second drop (`reset_fraction` of them with RST) and come back after `away_min_ms ..= away_max_ms`, resuming with `since` / `Last-Event-ID` | every id published arrives exactly once at every subscriber, or was reported missed; none lost silently |
//! | `slow` | `fraction` of the subscribers stop reading once subscribed | every slow one is dropped by the server, the healthy ones get everything, the server's RSS grows by at most `max_rss_growth_mib` |
//! | `slowloris` | `connections` attackers send a request head one byte every `byte_interval_ms` (closed ones are replaced) while the step is held and published to | every attacker is closed within `max_life_secs`, a new connection is answered within `max_life_secs`, the subscribers get everything |
//! | `restart` | `at_secs` into the publish phase the server is stopped (`signal`) and started again on the same ports after `downtime_secs`; subscribers reconnect | every subscriber is back within `max_reconnect_secs`; the messages lost across the restart are reported (the backlog is in memory) |
//! | `node` | with several nodes sharing a broker, `at_secs` into the publish phase node `node` is SIGKILLed (`kill = "node"`: its subscribers fail over to the next node of their list and resume there) or the broker is SIGKILLed and started again `downtime_secs` later (`kill = "broker"`) | every subscriber is back within `max_reconnect_secs`; a killed node loses nothing unreported; what a broker restart lost is reported |
//!
//! # Unknown fields
//! `kind` is the tag of an internally tagged enum. serde's
//! `deny_unknown_fields` does not reach through such an enum to its
//! variants, so every per-kind struct carries its own, and a test proves that
//! a misspelt key is refused in every kind. A key of another kind is refused
//! with a message saying so (see the `error` module).

use serde::{Deserialize, Serialize};

use super::{Pattern, Scenario};

/// A fault the load generator injects, and the pass line the run checks.
/// Every field is optional; each kind's methods give the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    Disconnect(Disconnect),
    Churn(Churn),
    Slow(Slow),
    Slowloris(Slowloris),
    Restart(Restart),
    Node(Node),
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
    Node,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Disconnect,
        FaultKind::Churn,
        FaultKind::Slow,
        FaultKind::Slowloris,
        FaultKind::Restart,
        FaultKind::Node,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Disconnect => "disconnect",
            FaultKind::Churn => "churn",
            FaultKind::Slow => "slow",
            FaultKind::Slowloris => "slowloris",
            FaultKind::Restart => "restart",
            FaultKind::Node => "node",
        }
    }

    /// The fields of this kind's table, in the order of its struct.
    pub fn fields(self) -> &'static [&'static str] {
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
            FaultKind::Node => &[
                "kill",
                "at_secs",
                "node",
                "downtime_secs",
                "max_reconnect_secs",
            ],
        }
    }
}

/// After the hold every subscriber closes at once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disconnect {
    /// Close with RST (`SO_LINGER` 0) instead of FIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<bool>,
    /// Time allowed to get back to the baseline, seconds (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recover_secs: Option<f64>,
    /// How far from the baseline counts as back, a fraction (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
}

/// While publishing, subscribers drop and come back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Drops with RST: `reset_fraction` 1 (true) or 0 (false) unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<bool>,
    /// Fraction of the subscribers dropped per second (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Of the drops, the fraction made with RST (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_fraction: Option<f64>,
    /// Shortest and longest time away before reconnecting, ms (defaults 0 and 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_min_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_max_ms: Option<u64>,
}

/// Some subscribers stop reading once subscribed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slow {
    /// Fraction of the subscribers that stop reading (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// The bound on the server's RSS growth over its baseline, MiB (default 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rss_growth_mib: Option<f64>,
}

/// Attackers send a request head one byte at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slowloris {
    /// Attacking connections kept open (default 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// One byte of the request head per this interval, ms (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_interval_ms: Option<u64>,
    /// The longest an attacker may live, seconds (default 12: the 10 s header
    /// deadline and 2 s of slack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_life_secs: Option<f64>,
}

/// The server is stopped and started again while it is published to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// Seconds into the publish phase (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_secs: Option<f64>,
    /// Seconds between the old server's end and the new one's start (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_secs: Option<f64>,
    /// `term` (SIGTERM, default) or `kill` (SIGKILL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<StopSignal>,
    /// The longest a subscriber may take to be back, seconds (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reconnect_secs: Option<f64>,
}

/// Several nodes sharing a broker: one node is killed, or the broker restarted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// `node` (default: SIGKILL one node for good) or `broker` (SIGKILL the
    /// broker and start it again, without its data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill: Option<Kill>,
    /// Seconds into the publish phase (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_secs: Option<f64>,
    /// Which node is killed, from 0 (default 1; node 0 is the one whose
    /// end the run watches, so it must stay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
    /// `kill = "broker"`: seconds between its end and its new start (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_secs: Option<f64>,
    /// The longest a subscriber may take to be back, seconds (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reconnect_secs: Option<f64>,
}

/// What fault `node` kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kill {
    #[default]
    Node,
    Broker,
}

/// How a restarted server is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopSignal {
    #[default]
    Term,
    Kill,
}

impl Disconnect {
    pub fn reset(&self) -> bool {
        self.reset.unwrap_or(false)
    }
    pub fn recover_secs(&self) -> f64 {
        self.recover_secs.unwrap_or(5.0)
    }
    pub fn tolerance(&self) -> f64 {
        self.tolerance.unwrap_or(0.05)
    }
}

impl Churn {
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
}

impl Slow {
    pub fn fraction(&self) -> f64 {
        self.fraction.unwrap_or(0.1)
    }
    pub fn max_rss_growth_mib(&self) -> f64 {
        self.max_rss_growth_mib.unwrap_or(256.0)
    }
}

impl Slowloris {
    pub fn connections(&self) -> u64 {
        self.connections.unwrap_or(2000)
    }
    pub fn byte_interval_ms(&self) -> u64 {
        self.byte_interval_ms.unwrap_or(1000)
    }
    pub fn max_life_secs(&self) -> f64 {
        self.max_life_secs.unwrap_or(12.0)
    }
}

impl Node {
    pub fn kill(&self) -> Kill {
        self.kill.unwrap_or_default()
    }
    pub fn kills_node(&self) -> bool {
        self.kill() == Kill::Node
    }
    pub fn at_secs(&self) -> f64 {
        self.at_secs.unwrap_or(3.0)
    }
    pub fn node(&self) -> u64 {
        self.node.unwrap_or(1)
    }
    pub fn downtime_secs(&self) -> f64 {
        self.downtime_secs.unwrap_or(1.0)
    }
    pub fn max_reconnect_secs(&self) -> f64 {
        self.max_reconnect_secs.unwrap_or(10.0)
    }
}

impl Restart {
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
}

/// What a number given in the table must be.
#[derive(Clone, Copy, PartialEq)]
enum Range {
    /// Finite and >= 0.
    NonNegative,
    /// Within 0 ..= 1.
    Fraction,
}

/// A refusal: the field (`fault.rate`, `peers` ...) and the one-line message.
pub(super) type Refusal = (String, String);

fn refuse(field: &str, message: String) -> Result<(), Refusal> {
    Err((format!("fault.{field}"), message))
}

impl Fault {
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Disconnect(_) => FaultKind::Disconnect,
            Fault::Churn(_) => FaultKind::Churn,
            Fault::Slow(_) => FaultKind::Slow,
            Fault::Slowloris(_) => FaultKind::Slowloris,
            Fault::Restart(_) => FaultKind::Restart,
            Fault::Node(_) => FaultKind::Node,
        }
    }

    /// The numbers given, in the order of the kind's fields, with their range.
    fn numbers(&self) -> Vec<(&'static str, Option<f64>, Range)> {
        use Range::{Fraction, NonNegative};
        let u = |x: Option<u64>| x.map(|x| x as f64);
        match self {
            Fault::Disconnect(f) => vec![
                ("recover_secs", f.recover_secs, NonNegative),
                ("tolerance", f.tolerance, Fraction),
            ],
            Fault::Churn(f) => vec![
                ("rate", f.rate, Fraction),
                ("reset_fraction", f.reset_fraction, Fraction),
                ("away_min_ms", u(f.away_min_ms), NonNegative),
                ("away_max_ms", u(f.away_max_ms), NonNegative),
            ],
            Fault::Slow(f) => vec![
                ("fraction", f.fraction, Fraction),
                ("max_rss_growth_mib", f.max_rss_growth_mib, NonNegative),
            ],
            Fault::Slowloris(f) => vec![
                ("connections", u(f.connections), NonNegative),
                ("byte_interval_ms", u(f.byte_interval_ms), NonNegative),
                ("max_life_secs", f.max_life_secs, NonNegative),
            ],
            Fault::Restart(f) => vec![
                ("at_secs", f.at_secs, NonNegative),
                ("downtime_secs", f.downtime_secs, NonNegative),
                ("max_reconnect_secs", f.max_reconnect_secs, NonNegative),
            ],
            Fault::Node(f) => vec![
                ("at_secs", f.at_secs, NonNegative),
                ("node", u(f.node), NonNegative),
                ("downtime_secs", f.downtime_secs, NonNegative),
                ("max_reconnect_secs", f.max_reconnect_secs, NonNegative),
            ],
        }
    }

    /// Ranges, and what the rest of the scenario must give for this kind.
    pub(super) fn check(&self, s: &Scenario) -> Result<(), Refusal> {
        let numbers = self.numbers();
        for &(name, x, _) in &numbers {
            if let Some(x) = x.filter(|x| !(x.is_finite() && *x >= 0.0)) {
                return refuse(name, format!("fault.{name} must be >= 0 (got {x})"));
            }
        }
        for &(name, x, range) in &numbers {
            if let Some(x) = x.filter(|&x| range == Range::Fraction && x > 1.0) {
                return refuse(
                    name,
                    format!("fault.{name} must be within 0 ..= 1 (got {x})"),
                );
            }
        }
        self.check_kind()?;
        self.check_scenario(s)
    }

    /// What one kind's fields must say together.
    fn check_kind(&self) -> Result<(), Refusal> {
        match self {
            Fault::Churn(f) => {
                let (lo, hi) = f.away_ms();
                if lo > hi {
                    return refuse(
                        "away_max_ms",
                        format!("fault.away_max_ms ({hi}) must be >= fault.away_min_ms ({lo})"),
                    );
                }
            }
            Fault::Slowloris(f) => {
                if f.connections() == 0 {
                    return refuse(
                        "connections",
                        "fault.connections must be >= 1 (got 0)".into(),
                    );
                }
                if f.byte_interval_ms() == 0 {
                    return refuse(
                        "byte_interval_ms",
                        "fault.byte_interval_ms must be >= 1 (got 0)".into(),
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// What the rest of the scenario must give for this kind.
    fn check_scenario(&self, s: &Scenario) -> Result<(), Refusal> {
        let kind = self.kind().name();
        if !s.peers.is_empty() {
            return Err((
                "peers".into(),
                format!("fault \"{kind}\" drives our dispatchers only: leave peers out"),
            ));
        }
        let publishes = s.publish.pattern != Pattern::None;
        match self {
            Fault::Churn(_) | Fault::Slow(_) | Fault::Restart(_) | Fault::Node(_)
                if !publishes =>
            {
                Err((
                "publish.pattern".into(),
                format!(
                    "fault kind \"{kind}\" needs messages: set publish.pattern to \"broadcast\" or \"per-user\""
                ),
            ))
            }
            Fault::Node(f) if f.at_secs() >= s.publish.duration_secs => refuse(
                "at_secs",
                format!(
                    "fault.at_secs ({}) must be within publish.duration_secs ({})",
                    f.at_secs(),
                    s.publish.duration_secs
                ),
            ),
            Fault::Restart(f) if f.at_secs() >= s.publish.duration_secs => refuse(
                "at_secs",
                format!(
                    "fault.at_secs ({}) must be within publish.duration_secs ({})",
                    f.at_secs(),
                    s.publish.duration_secs
                ),
            ),
            _ => Ok(()),
        }
    }

    /// `--quick` shortened the publish phase from `full` seconds to
    /// `publish_secs`: the fault keeps its meaning. Returns the publish
    /// phase's length the fault needs.
    pub(super) fn quicken(&mut self, full: f64, publish_secs: f64) -> f64 {
        match self {
            // The restart keeps its place in the shorter publish phase.
            Fault::Restart(f) => {
                f.at_secs = Some(f.at_secs() * publish_secs / full.max(1e-9));
                publish_secs
            }
            Fault::Node(f) => {
                f.at_secs = Some(f.at_secs() * publish_secs / full.max(1e-9));
                publish_secs
            }
            // Attackers must live long enough to meet the header deadline.
            Fault::Slowloris(f) => full.min(publish_secs.max(f.max_life_secs() + 3.0)),
            _ => publish_secs,
        }
    }
}
