//! What a case of several nodes records (`cluster` in `run.json`): the
//! nodes and their broker (and balancer), what each node's `/stats` said at
//! the end, and the figures that show what sharing a broker costs: CPU per
//! delivery of the nodes and of the broker, the broker's CPU per publish
//! and share, and broker-to-node messages per publish (O(l) routing).
//!
//! The case's `server` figures are the nodes together (their samples
//! summed); the broker's and the balancer's are here.

use serde::{Deserialize, Serialize};

/// A case's nodes, their broker, and what they cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterResult {
    /// Servers of the target sharing the broker.
    pub nodes: u64,
    /// `redis`.
    pub broker: String,
    /// `haproxy` when one stood in front of the nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balancer: Option<String>,
    pub node_pids: Vec<u32>,
    pub broker_pid: Option<u32>,
    /// Each node's `/stats` at the end, node 0 first.
    pub per_node: Vec<NodeFigures>,
    /// Publishes the broker numbered, over every node.
    pub published: u64,
    /// Messages the broker sent the nodes (pub/sub), over every node.
    pub broker_to_node: u64,
    /// `broker_to_node / published`: 1 when every message reaches one node
    /// (a per-user channel), the node count for a broadcast every node holds.
    pub broker_to_node_per_publish: Option<f64>,
    /// CPU seconds (user + system) during the publish phase: the nodes
    /// together, the broker, the balancer.
    pub nodes_cpu: f64,
    pub broker_cpu: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balancer_cpu: Option<f64>,
    /// The broker's publish-phase CPU per publish it numbered, µs.
    pub broker_cpu_per_publish_us: Option<f64>,
    /// Nodes and broker together, per message received by a subscriber, µs
    /// (the balancer's, if any, is in `balancer_cpu` beside it).
    pub cpu_per_delivery_us: Option<f64>,
    /// The broker's part of `cpu_per_delivery_us`, µs, and as a fraction.
    pub broker_cpu_per_delivery_us: Option<f64>,
    pub broker_share: Option<f64>,
    /// The broker's peak RSS, bytes, and its kernel memory at the end
    /// (its own cgroup, where one could be made).
    pub broker_peak_rss: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_kernel: Option<u64>,
}

/// One node's `/stats` at the end of a case (ours; a peer has none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeFigures {
    /// Where subscribers reached it.
    pub addr: String,
    pub subscribers: u64,
    /// Messages it handed to its subscribers.
    pub delivered: u64,
    /// Broker-to-node messages it got (`broker.received`).
    pub received: u64,
    /// Messages the broker had to replay to it (follows, catch-ups).
    pub replayed: u64,
    /// Messages its catch-ups found gone from the shared backlog.
    pub missed: u64,
    /// Publishes through it the broker numbered.
    pub published: u64,
    /// Times it lost the broker, and came back.
    pub downs: u64,
    pub reconnects: u64,
    /// How the node ended when it did not end as asked (a fault killed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<String>,
}

impl NodeFigures {
    /// From a node's `/stats` document.
    pub fn from_stats(addr: String, stats: &serde_json::Value) -> NodeFigures {
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        let b = &stats["broker"];
        NodeFigures {
            addr,
            subscribers: n(&stats["subscribers"]),
            delivered: n(&stats["delivered"]),
            received: n(&b["received"]),
            replayed: n(&b["replayed"]),
            missed: n(&b["missed"]),
            published: n(&b["published"]),
            downs: n(&b["downs"]),
            reconnects: n(&b["reconnects"]),
            exit: None,
        }
    }
}

impl ClusterResult {
    /// The derived figures, from the nodes' and broker's publish-phase CPU
    /// and what the case delivered (`received`) and published (`accepted`).
    pub fn settle(&mut self, received: u64, accepted: u64) {
        self.published = self.per_node.iter().map(|n| n.published).sum();
        self.broker_to_node = self.per_node.iter().map(|n| n.received).sum();
        // A peer says nothing of its broker traffic: leave what it lacks out.
        let publishes = if self.published > 0 {
            self.published
        } else {
            accepted
        };
        if self.published > 0 {
            self.broker_to_node_per_publish =
                Some(self.broker_to_node as f64 / self.published as f64);
        }
        if publishes > 0 {
            self.broker_cpu_per_publish_us = Some(self.broker_cpu * 1e6 / publishes as f64);
        }
        if received > 0 {
            let total = self.nodes_cpu + self.broker_cpu;
            self.cpu_per_delivery_us = Some(total * 1e6 / received as f64);
            self.broker_cpu_per_delivery_us = Some(self.broker_cpu * 1e6 / received as f64);
            if total > 0.0 {
                self.broker_share = Some(self.broker_cpu / total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_two_nodes() {
        let stats = |received, published| {
            serde_json::json!({
                "subscribers": 5, "delivered": 50,
                "broker": { "received": received, "published": published, "replayed": 1 }
            })
        };
        let mut c = ClusterResult {
            nodes: 2,
            per_node: vec![
                NodeFigures::from_stats("a".into(), &stats(10, 6)),
                NodeFigures::from_stats("b".into(), &stats(10, 4)),
            ],
            nodes_cpu: 0.3,
            broker_cpu: 0.1,
            ..ClusterResult::default()
        };
        c.settle(100, 10);
        assert_eq!((c.published, c.broker_to_node), (10, 20));
        assert_eq!(c.broker_to_node_per_publish, Some(2.0));
        assert_eq!(c.per_node[0].replayed, 1);
        let near = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        assert!(near(c.broker_cpu_per_publish_us, 10_000.0));
        assert!(near(c.cpu_per_delivery_us, 4_000.0));
        assert!(near(c.broker_cpu_per_delivery_us, 1_000.0));
        assert!(near(c.broker_share, 0.25));
        // Nothing received: no per-delivery figures.
        let mut idle = ClusterResult::default();
        idle.settle(0, 0);
        assert_eq!(idle.cpu_per_delivery_us, None);
        assert_eq!(idle.broker_to_node_per_publish, None);
    }
}
