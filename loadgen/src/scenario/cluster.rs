//! Several servers per case: `nodes` (a sweep, like `steps`), the `broker`
//! they share and the `balancer` that may stand in front of them, and what
//! the rest of the scenario must say with them.

use serde::{Deserialize, Serialize};

use super::check::check_steps;
use super::fault::{Fault, Refusal};
use super::{Scenario, ScenarioError};

/// The most nodes of one case: each is a process with its own threads, and
/// all of them share this machine.
pub const MAX_NODES: u64 = 64;

/// The broker the nodes share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Broker {
    /// redis-server, through `scripts/broker/redis.sh`.
    Redis,
}

/// What stands in front of the nodes, giving them one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balancer {
    /// HAProxy in TCP mode, through `scripts/balancer/haproxy.sh`.
    Haproxy,
}

impl Broker {
    pub fn name(self) -> &'static str {
        "redis"
    }
}

impl Balancer {
    pub fn name(self) -> &'static str {
        "haproxy"
    }
}

impl Scenario {
    /// The node counts each case is run at: the scenario's `nodes`, `[1]`
    /// with a broker and no `nodes`, and `[]` for a lone server (no broker).
    pub fn node_counts(&self) -> Vec<u64> {
        match (&self.broker, self.nodes.is_empty()) {
            (None, _) => Vec::new(),
            (Some(_), true) => vec![1],
            (Some(_), false) => self.nodes.clone(),
        }
    }

    /// `nodes`, `broker` and `balancer` together, and with the peers and
    /// the fault.
    pub(super) fn check_cluster(&self, origin: &str) -> Result<(), ScenarioError> {
        if !self.nodes.is_empty() {
            check_steps(origin, "nodes", &self.nodes)?;
        }
        let refused = |(field, message): Refusal| ScenarioError::invalid(origin, &field, message);
        self.check_cluster_fields().map_err(refused)
    }

    fn check_cluster_fields(&self) -> Result<(), Refusal> {
        let refuse = |field: &str, message: &str| Err((field.to_string(), message.to_string()));
        if let Some(&n) = self.nodes.iter().find(|&&n| n > MAX_NODES) {
            return refuse(
                "nodes",
                &format!("nodes must each be <= {MAX_NODES} (got {n})"),
            );
        }
        if self.shared_port {
            if self.nodes.is_empty() {
                return refuse(
                    "shared_port",
                    "shared_port is for nodes: set nodes (and broker = \"redis\")",
                );
            }
            if self.balancer.is_some() {
                return refuse(
                    "shared_port",
                    "nodes sharing a port need no balancer: the kernel spreads the connections; drop one of them",
                );
            }
            if !self.peers.is_empty() {
                return refuse(
                    "shared_port",
                    "a peer's nodes cannot share a port: only ours listen with SO_REUSEPORT",
                );
            }
            if !self.publish_listen {
                return refuse(
                    "publish_listen",
                    "nodes sharing a port need publish_listen = true: each node's /stats must be asked of that node",
                );
            }
        }
        if self.broker.is_none() {
            if !self.nodes.is_empty() {
                return refuse(
                    "broker",
                    "nodes need a broker they share: set broker = \"redis\"",
                );
            }
            if self.balancer.is_some() {
                return refuse(
                    "balancer",
                    "a balancer stands in front of nodes sharing a broker: set broker = \"redis\"",
                );
            }
            if matches!(self.fault, Some(Fault::Node(_))) {
                return refuse(
                    "broker",
                    "fault \"node\" needs nodes sharing a broker: set broker = \"redis\"",
                );
            }
            return Ok(());
        }
        if self.dispatchers.iter().any(|d| d.name == "tokio") {
            return refuse(
                "dispatchers",
                "dispatcher \"tokio\" cannot share a broker: its fan-out is a broadcast per channel, with no inbox per connection for the broker's answers",
            );
        }
        if let Some(p) = self.peers.iter().find(|p| *p != "nchan") {
            return refuse(
                "peers",
                &format!(
                    "peer {p:?} cannot share a broker: only nchan (nchan_redis_pass) runs as nodes"
                ),
            );
        }
        if let Some(Fault::Node(f)) = &self.fault {
            let least = self.node_counts().into_iter().min().unwrap_or(1);
            if f.kills_node() && least < 2 {
                return refuse(
                    "nodes",
                    "fault \"node\" kills a node: every count in nodes must be >= 2, so that its subscribers have another to go to",
                );
            }
            if f.kills_node() && f.node() >= least {
                return refuse(
                    "fault.node",
                    &format!(
                        "fault.node ({}) must be below the smallest count in nodes ({least}); node 0 is the one the run watches",
                        f.node()
                    ),
                );
            }
        }
        Ok(())
    }
}
