//! A case of several nodes while it runs: the broker they share, nodes
//! 1 .. N of the target (node 0 is the case's own `server`, which every
//! phase already watches, stops and restarts), the balancer if any, and the
//! samplers of the broker and the balancer. The nodes are sampled together
//! with node 0, as one server; the broker and the balancer each on their
//! own, in cgroups of their own.

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

use super::hosts::ServerPlace;
use super::sampling::SamplerThread;
use super::server::{free_ports, stats, Server};
use crate::balancer::Balancer;
use crate::broker::Broker;
use crate::cluster::{ClusterResult, NodeFigures};
use crate::peers::{self, Peer};
use crate::sampler::{cpu_ns, Cgroup, Sample, Sampler};
use crate::scenario::{self, Scenario};

/// What the nodes are.
pub(super) enum Nodes<'a> {
    /// `cometbench serve --dispatcher NAME ARGS --broker URL`.
    Ours { name: &'a str, args: &'a [String] },
    /// A peer's script with `REDIS_URL` (only nchan can).
    Peer(&'a Peer, peers::Settings),
}

/// The running parts of a case of several nodes, besides node 0.
pub(super) struct Cluster {
    pub broker: Broker,
    /// Nodes 1 .. N.
    pub others: Vec<Server>,
    pub balancer: Option<Balancer>,
    samplers: Vec<(&'static str, SamplerThread)>,
    /// The broker's and the balancer's samples when publishing began.
    before: Vec<Option<Sample>>,
    /// The broker's run time when publishing began (`cpu_ns`).
    broker_ns: Option<u64>,
    pub result: ClusterResult,
}

/// Where a case's files go, and its samples.
pub(super) struct Files<'a> {
    pub dir: &'a Path,
    pub label: &'a str,
    pub samples: &'a Arc<Mutex<File>>,
}

impl Cluster {
    /// Starts the broker, `n` nodes and the balancer the scenario asks for:
    /// node 0 and the rest.
    pub fn start(
        s: &Scenario,
        exe: &Path,
        nodes: Nodes,
        n: u64,
        files: &Files,
    ) -> Result<(Server, Cluster)> {
        let scripts = peers::scripts_dir(exe)?;
        let (port, _) = free_ports(false)?;
        let broker = Broker::start(
            &scripts,
            port,
            files.dir.join(format!("{}.broker.log", files.label)),
        )?;
        let mut started: Vec<Server> = Vec::new();
        for i in 0..n {
            let log = match i {
                0 => files.dir.join(format!("{}.server.log", files.label)),
                i => files
                    .dir
                    .join(format!("{}.node{i}.server.log", files.label)),
            };
            let node = match &nodes {
                Nodes::Ours { name, args } => {
                    let mut a = args.to_vec();
                    a.extend(["--broker".to_string(), broker.url.clone()]);
                    // Nodes and their broker run here, on loopback (a
                    // scenario with hosts and nodes is refused).
                    let here = &ServerPlace::here();
                    if s.shared_port {
                        a.push("--reuse-port".into());
                    }
                    // Sharing a port, the first node takes it and the others join it.
                    match started.first().filter(|_| s.shared_port) {
                        None => Server::ours(exe, name, &a, s.publish_listen, log, here),
                        Some(first) => {
                            let port = first.addr.port();
                            Server::ours_joining(exe, name, &a, port, s.publish_listen, log, here)
                        }
                    }
                }
                Nodes::Peer(p, settings) => Server::peer(
                    p,
                    exe,
                    *settings,
                    s.publish_listen,
                    &[("REDIS_URL", broker.url.clone())],
                    log,
                ),
            };
            started.push(node.with_context(|| format!("starting node {i} of {n}"))?);
        }
        let balancer = match s.balancer {
            Some(scenario::Balancer::Haproxy) => {
                let (port, _) = free_ports(false)?;
                let backends: Vec<SocketAddr> = started.iter().map(|n| n.addr).collect();
                let log = files.dir.join(format!("{}.balancer.log", files.label));
                Some(Balancer::start(&scripts, port, &backends, log)?)
            }
            None => None,
        };
        let mut started = started.into_iter();
        let first = started.next().context("no node")?;
        let cluster = Cluster {
            result: ClusterResult {
                nodes: n,
                broker: s.broker.map_or("redis", |b| b.name()).into(),
                balancer: s.balancer.map(|b| b.name().into()),
                broker_pid: Some(broker.pid),
                ..ClusterResult::default()
            },
            broker,
            others: started.collect(),
            balancer,
            samplers: Vec::new(),
            before: Vec::new(),
            broker_ns: None,
        };
        Ok((first, cluster))
    }

    /// Every node's subscribe address, node 0's first.
    pub fn node_addrs(&self, first: &Server) -> Vec<SocketAddr> {
        std::iter::once(first.addr)
            .chain(self.others.iter().map(|n| n.addr))
            .collect()
    }

    /// Every node's publish and `/stats` address, node 0's first.
    pub fn publish_addrs(&self, first: &Server) -> Vec<SocketAddr> {
        std::iter::once(first.publish_addr)
            .chain(self.others.iter().map(|n| n.publish_addr))
            .collect()
    }

    /// The pids of nodes 1 .. N, to be sampled with node 0.
    pub fn other_pids(&self) -> Vec<u32> {
        self.others.iter().filter_map(|n| n.pid).collect()
    }

    /// Samples the broker and the balancer, each in a cgroup of its own
    /// where one can be made, into `samples.jsonl` as `LABEL.broker` and
    /// `LABEL.balancer`.
    pub fn start_samplers(&mut self, interval: Duration, files: &Files) {
        let mut roots = vec![("broker", self.broker.pid, false)];
        if let Some(b) = &self.balancer {
            roots.push(("balancer", b.pid, true));
        }
        for (what, pid, tree) in roots {
            let mut sampler = Sampler::new(pid, tree);
            let name = format!("{}-{}-{what}", std::process::id(), files.label);
            if let Ok(cg) = Cgroup::create(&name) {
                let pids = sampler.pids().unwrap_or_else(|_| vec![pid]);
                if pids.iter().all(|&p| cg.add_pid(p).is_ok()) {
                    sampler.attach_cgroup(cg);
                }
            }
            let label = format!("{}.{what}", files.label);
            let thread = SamplerThread::start(sampler, interval, files.samples.clone(), label);
            self.samplers.push((what, thread));
        }
    }

    /// The phase the broker's and the balancer's next samples are taken in.
    pub fn set_phase(&self, phase: &str) {
        for (_, t) in &self.samplers {
            t.set_phase(phase);
        }
    }

    /// Publishing begins: the CPU readings it is measured from.
    pub fn publish_started(&mut self) {
        self.before = self.samplers.iter().map(|(_, t)| t.last()).collect();
        self.broker_ns = cpu_ns(self.broker.pid);
    }

    /// Publishing is over: the broker's and the balancer's CPU since it began.
    pub fn publish_over(&mut self) {
        let cpu = |s: &Sample| s.cpu_user + s.cpu_sys;
        for (i, (what, t)) in self.samplers.iter().enumerate() {
            let (Some(Some(b)), Some(a)) = (self.before.get(i), t.last()) else {
                continue;
            };
            let used = (cpu(&a) - cpu(b)).max(0.0);
            match *what {
                "broker" => self.result.broker_cpu = used,
                _ => self.result.balancer_cpu = Some(used),
            }
        }
        // The broker's own run time in nanoseconds, where the kernel keeps it:
        // a few broadcasts cost it less than one 10 ms tick of the samples.
        if let (Some(b), Some(a)) = (self.broker_ns, cpu_ns(self.broker.pid)) {
            self.result.broker_cpu = a.saturating_sub(b) as f64 / 1e9;
        }
    }

    /// Each node's `/stats` (ours only: a peer's has no such document), read
    /// before the nodes stop.
    pub fn read_nodes(&mut self, first: &Server, ours: bool) {
        self.result.node_pids = std::iter::once(first.pid)
            .chain(self.others.iter().map(|n| n.pid))
            .flatten()
            .collect();
        if !ours {
            return;
        }
        // Nodes sharing a port are told apart by their publish listeners.
        let shared = self.others.iter().any(|o| o.addr == first.addr);
        let nodes = std::iter::once(first).chain(self.others.iter());
        self.result.per_node = nodes
            .map(|n| {
                let doc = stats(n.publish_addr, Duration::from_secs(5)).unwrap_or_default();
                let addr = if shared { n.publish_addr } else { n.addr };
                NodeFigures::from_stats(addr.to_string(), &doc)
            })
            .collect();
    }

    /// SIGKILLs node `i` (1 .. N) for good: its pid, and how it ended. It
    /// leaves the cluster, so that its end is not taken for a failure.
    pub fn kill_node(&mut self, i: usize) -> Option<(Option<u32>, Option<String>)> {
        if i == 0 || i > self.others.len() {
            return None;
        }
        let mut node = self.others.remove(i - 1);
        Some((node.pid, node.kill()))
    }

    /// SIGKILLs the broker and starts it again on its port after `downtime`
    /// (without its data: it keeps none); its sampler follows the new
    /// process. The old pid and the new, or why it did not start.
    pub fn restart_broker(&mut self, downtime: Duration) -> (u32, Result<u32>) {
        let old = self.broker.pid;
        self.broker.kill();
        std::thread::sleep(downtime);
        let started = self.broker.start_again().map(|()| self.broker.pid);
        if let Ok(pid) = started {
            self.result.broker_pid = Some(pid);
            if let Some(i) = self.samplers.iter().position(|(w, _)| *w == "broker") {
                let (what, t) = self.samplers.remove(i);
                self.samplers.insert(i, (what, t.follow(pid, "publish")));
            }
        }
        (old, started)
    }

    /// Stops nodes 1 .. N, the balancer and the broker; what went wrong,
    /// if anything did (a node a fault killed says so in its figures).
    pub fn stop(&mut self) -> Option<String> {
        let mut wrong = Vec::new();
        for (i, n) in self.others.iter_mut().enumerate() {
            if let Some(why) = n.stop() {
                if let Some(f) = self.result.per_node.get_mut(i + 1) {
                    f.exit = Some(why.clone());
                }
                wrong.push(format!("node {}: {why}", i + 1));
            }
        }
        if let Some(why) = self.balancer.as_mut().and_then(Balancer::stop) {
            wrong.push(format!("balancer: {why}"));
        }
        for (what, t) in self.samplers.drain(..) {
            let samples = t.finish();
            if what == "broker" {
                self.result.broker_peak_rss = samples.iter().map(|(_, s)| s.rss).max().unwrap_or(0);
                self.result.broker_kernel = samples
                    .last()
                    .and_then(|(_, s)| s.kernel.as_ref())
                    .map(|k| k.total);
            }
        }
        if let Some(why) = self.broker.stop() {
            wrong.push(format!("broker: {why}"));
        }
        (!wrong.is_empty()).then(|| wrong.join("; "))
    }
}
