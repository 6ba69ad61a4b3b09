//! One case (a target at one transport and step) as a value, and its phases
//! in the order they run: [`CaseRun::start`] (the server, its sampler, its
//! baseline), [`CaseRun::ramp`] (the workers connect), [`CaseRun::hold`],
//! [`CaseRun::publish`], [`CaseRun::collect`] (the workers' reports, the
//! server stopped) and [`CaseRun::verdict`]. The scenario's fault hooks in
//! between (see `fault`).

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use comet::client::Dialect;
use comet::Transport;
use indicatif::{ProgressBar, ProgressStyle};

use super::cluster::{Cluster, Files, Nodes};
use super::fault::{self, FaultHook, Publishing};
use super::figures::{judge_connections, summarise_server, CpuReading};
use super::hosts::Layout;
use super::placement::affinity_of;
use super::sampling::SamplerThread;
use super::server::{stats_field, Server};
use super::target::Target;
use super::workers::Workers;
use super::{consistency, reconcile};
use super::{RunArgs, PEER_RETRIES};

use crate::clock::{mono_ns, self_cpu};
use crate::peers;
use crate::publisher::{self, PublishFormat, PublishPlan};
use crate::results::Case;
use crate::sampler::{Cgroup, Sample, Sampler};
use crate::scenario::{Pattern, Scenario};
use crate::worker::{Channels, Finish, IdCheck, Plan, SocketPublish, ToWorker};

/// How long after the ramp the server's `/stats` may take to count every
/// subscriber the clients count before the missing ones are judged never
/// served.
const SERVED_WITHIN: Duration = Duration::from_secs(3);

/// A case while it runs.
pub(super) struct CaseRun<'a> {
    pub args: &'a RunArgs,
    pub target: &'a Target,
    pub transport: Transport,
    pub step: u64,
    /// `TARGET-TRANSPORT-STEP`: names the case's files and progress bars.
    label: String,
    dir: &'a Path,
    samples_file: &'a Arc<Mutex<File>>,
    /// Where the workers (and the server) run.
    layout: &'a Layout,
    started: Instant,
    /// What is measured, filled in phase by phase.
    pub case: Case,
    /// The server, or node 0 of several.
    pub server: Server,
    /// The broker and nodes 1 .. N, when the case runs several.
    pub cluster: Option<Cluster>,
    /// Subscribe path template, with `{channel}` and `{transport}`.
    pub sub_path: String,
    pub_path: String,
    /// The server is one of our dispatchers (it has `/stats`).
    pub ours: bool,
    dialect: Dialect,
    /// Where the ids subscribers check come from.
    pub ids: IdCheck,
    format: PublishFormat,
    /// How long one publish may take.
    pub publish_timeout: Duration,
    ramp_rate: f64,
    sampler: Option<SamplerThread>,
    pub workers: Workers,
    /// Subscribers open when the ramp ended: those a churn or a restart must
    /// see back. (The merged reports' `subscribed` is not known until the end.)
    pub held: u64,
    epoch_ns: u64,
    channels: Channels,
    /// What the workers are told at the end.
    finish: Finish,
    cpu_before: Option<CpuReading>,
    cpu_after: CpuReading,
    fault: Option<Box<dyn FaultHook>>,
}

/// What every case of a run shares.
pub(super) struct Shared<'a> {
    pub args: &'a RunArgs,
    /// The run's results directory.
    pub dir: &'a Path,
    /// `samples.jsonl`.
    pub samples_file: &'a Arc<Mutex<File>>,
    pub layout: &'a Layout,
    /// Which repeat of the case this is, from 1.
    pub repeat: u32,
}

impl<'a> CaseRun<'a> {
    /// Runs one case, phase by phase; `nodes`: that many servers sharing
    /// the scenario's broker.
    pub fn run(
        shared: &Shared<'a>,
        target: &'a Target,
        transport: Transport,
        step: u64,
        nodes: Option<u64>,
    ) -> Result<Case> {
        if let Some(skipped) = target.skipped_case(transport, step) {
            return Ok(skipped);
        }
        let mut run = CaseRun::start(shared, target, transport, step, nodes)?;
        run.ramp()?;
        run.hold();
        run.publish();
        run.collect()?;
        run.verdict()
    }

    /// Starts the server and its sampler, and takes its baseline.
    fn start(
        shared: &Shared<'a>,
        target: &'a Target,
        transport: Transport,
        step: u64,
        nodes: Option<u64>,
    ) -> Result<CaseRun<'a>> {
        let Shared {
            args,
            dir,
            samples_file,
            layout,
            repeat,
        } = *shared;
        let s = &args.scenario;
        let started = Instant::now();
        let mut label = format!("{}-{}-{}", target.label(), transport.name(), step);
        if let Some(n) = nodes {
            label.push_str(&format!("-{n}n"));
        }
        if repeat > 1 {
            label.push_str(&format!("-r{repeat}"));
        }
        let mut case = target.case(transport, step);
        case.notes.extend(layout.notes().iter().cloned());
        let log = dir.join(format!("{label}.server.log"));
        let files = Files {
            dir,
            label: &label,
            samples: samples_file,
        };
        let mut cluster = None;
        let (server, sub_path, pub_path) = match target {
            Target::Dispatcher { name, .. } => {
                let a = &target.args_at(step, nofile_limit());
                case.args = a.clone();
                let srv = match nodes {
                    Some(n) => {
                        let ours = Nodes::Ours { name, args: a };
                        let (first, c) = Cluster::start(s, &args.exe, ours, n, &files)?;
                        cluster = Some(c);
                        first
                    }
                    None => {
                        Server::ours(&args.exe, name, a, s.publish_listen, log, layout.server())?
                    }
                };
                let paths = ("/sub/{channel}?transport={transport}", "/pub/{channel}");
                (srv, paths.0.to_string(), paths.1.to_string())
            }
            Target::Peer(p) => {
                let settings = peers::Settings::from_server_args(&s.server_args);
                case.args = vec![
                    format!("HEARTBEAT={}", settings.heartbeat),
                    format!("POLL_TIMEOUT={}", settings.poll_timeout),
                ];
                let srv = match nodes {
                    Some(n) => {
                        let peer = Nodes::Peer(p, settings);
                        let (first, c) = Cluster::start(s, &args.exe, peer, n, &files)?;
                        cluster = Some(c);
                        case.notes.push(format!(
                            "as one of {n} nodes, each {} keeps its channels in the shared Redis (REDIS_URL), not in its own memory",
                            p.name
                        ));
                        first
                    }
                    None => Server::peer(p, &args.exe, settings, s.publish_listen, &[], log)?,
                };
                (srv, p.subscribe_path.into(), p.publish_path.into())
            }
            Target::External(e) => (
                Server::external(e),
                e.subscribe_path.clone(),
                e.publish_path.clone(),
            ),
        };
        case.server.pid = server.pid;
        let (dialect, ids, format) = match target {
            Target::Peer(p) => (p.dialect, p.ids, p.publish_format(transport)),
            _ => (Dialect::Comet, IdCheck::Server, PublishFormat::Body),
        };
        let mut run = CaseRun {
            args,
            target,
            transport,
            step,
            label: label.clone(),
            dir,
            samples_file,
            layout,
            started,
            case,
            server,
            cluster,
            sub_path,
            pub_path,
            ours: matches!(target, Target::Dispatcher { .. }),
            dialect,
            ids,
            format,
            // A server may write to every subscriber before it answers (the
            // floor does, a few microseconds each): 5 s, or 10 us each.
            publish_timeout: Duration::from_secs(5).max(Duration::from_micros(step * 10)),
            ramp_rate: s.ramp.rate,
            sampler: None,
            workers: Workers::none(),
            held: 0,
            epoch_ns: 0,
            channels: match s.publish.pattern {
                Pattern::PerUser => Channels::PerUser("u".into()),
                _ => Channels::Broadcast("bc".into()),
            },
            finish: Finish::default(),
            cpu_before: None,
            cpu_after: (None, 0.0, 0.0),
            fault: s.fault.as_ref().map(fault::hook),
        };
        run.cap_ramp_rate();
        run.sampler = run.start_sampler();
        let interval = run.sample_interval();
        if let Some(c) = run.cluster.as_mut() {
            c.start_samplers(interval, &files);
        }
        run.warm_up();
        run.with_fault(|f, run| f.before_baseline(run));
        std::thread::sleep(Duration::from_secs_f64(s.warmup_secs));
        // Wait for the first sample after warm-up.
        std::thread::sleep(Duration::from_millis(s.sample_interval_ms.min(500)));
        run.case.server.baseline = run.last_sample();
        run.with_fault(|f, run| f.before_ramp(run));
        Ok(run)
    }

    /// A round of subscribers that come and go on every server the step's
    /// subscribers go to, before the baseline (see [`super::warmup`]).
    fn warm_up(&mut self) {
        // The floor reads nothing after a subscriber's head, so it would
        // keep the round's closed connections as subscribers until a write
        // to them failed; it has no code of a kind to page in either.
        if self.target.kind() == "floor" {
            return;
        }
        let n = super::warmup::round(self.step);
        let path = self
            .sub_path
            .replace("{channel}", "warmup")
            .replace("{transport}", self.transport.name());
        let (to, nodes) = self.subscribe_targets();
        let addrs = if nodes.is_empty() { vec![to] } else { nodes };
        for addr in &addrs {
            super::warmup::warm_up(*addr, &path, self.transport, n);
        }
        self.case.notes.push(format!(
            "the baseline was taken after a warm-up round of {n} {} subscribers that came and went",
            self.transport.name()
        ));
    }

    /// A peer may only keep up with a slower ramp; said in the notes.
    fn cap_ramp_rate(&mut self) {
        if let Target::Peer(p) = self.target {
            if let Some((rate, note)) = p.ramp_cap(self.ramp_rate) {
                self.case.notes.push(note);
                self.ramp_rate = rate;
            }
        }
    }

    /// The sampler, in a cgroup of the server's own where the machine allows.
    /// A dispatcher is one process; a peer, the whole tree under the root its
    /// script named (the nginx master, the pushpin runner). Several nodes
    /// are sampled as one server, summed, in one cgroup.
    fn start_sampler(&self) -> Option<SamplerThread> {
        let pid = self.server.pid?;
        // A peer's workers, and the floor's processes past one.
        let tree = !self.ours || self.target.kind() == "floor";
        let mut sampler = Sampler::new(pid, tree);
        for other in self.cluster.iter().flat_map(Cluster::other_pids) {
            sampler.add_root(other);
        }
        let started_here = !matches!(self.target, Target::External(_));
        if started_here {
            if let Ok(cg) = Cgroup::create(&format!("{}-{}", std::process::id(), self.label)) {
                // A peer is already running: move every process of its tree
                // (what they allocate from now on is charged to the cgroup;
                // the baseline is taken after this).
                let pids = sampler.pids().unwrap_or_else(|_| vec![pid]);
                if pids.iter().all(|&p| cg.add_pid(p).is_ok()) {
                    sampler.attach_cgroup(cg);
                }
            }
        }
        Some(SamplerThread::start(
            sampler,
            self.sample_interval(),
            self.samples_file.clone(),
            self.label.clone(),
        ))
    }

    fn scenario(&self) -> &'a Scenario {
        &self.args.scenario
    }

    fn sample_interval(&self) -> Duration {
        Duration::from_millis(self.scenario().sample_interval_ms)
    }

    /// The phase the next samples are taken in.
    pub fn set_phase(&self, phase: &str) {
        if let Some(t) = &self.sampler {
            t.set_phase(phase);
        }
        if let Some(c) = &self.cluster {
            c.set_phase(phase);
        }
    }

    fn last_sample(&self) -> Option<Sample> {
        self.sampler.as_ref().and_then(SamplerThread::last)
    }

    /// Samples process `pid` (a restarted server) from now on, in `phase`.
    pub fn follow(&mut self, pid: u32, phase: &str) {
        if let Some(t) = self.sampler.take() {
            self.sampler = Some(t.follow(pid, phase));
        }
    }

    /// Calls a hook of the scenario's fault, if it has one.
    fn with_fault(&mut self, call: impl FnOnce(&mut dyn FaultHook, &mut CaseRun<'a>)) {
        if let Some(mut f) = self.fault.take() {
            call(&mut *f, self);
            self.fault = Some(f);
        }
    }

    /// CPU now: the server's, the load generator's, and its workers'.
    fn cpu_now(&self) -> CpuReading {
        let sample = self.last_sample();
        let workers = self.workers.cpu();
        let (u, s) = self_cpu();
        (sample, workers + (u + s), workers)
    }

    /// Starts the workers, and waits until every connection is up or failed
    /// and answers have had time to come.
    fn ramp(&mut self) -> Result<()> {
        self.set_phase("ramp");
        let workers = self.layout.workers(self.step);
        self.case.loadgen.workers = workers;
        self.epoch_ns = mono_ns();
        self.workers = Workers::spawn(self.layout, &self.args.exe, self.plans(workers))?;
        let pb = bar(self.step, "ramp").with_prefix(self.label.clone());
        let t_ramp = Instant::now();
        // A ramp bounded by the unanswered goes at the server's pace, which
        // may be slower than the rate: twice the planned time, then.
        let paced = if self.scenario().ramp.unanswered.is_some() {
            2.0
        } else {
            1.0
        };
        let budget = Duration::from_secs_f64(paced * self.step as f64 / self.ramp_rate)
            + Duration::from_secs(20);
        let mut settled_since: Option<Instant> = None;
        loop {
            self.workers.collect(Duration::from_millis(100));
            let p = self.workers.total();
            pb.set_position(p.subscribed + p.failed);
            if let Some(why) = self.server.exit_status() {
                self.case.failure = Some(why);
                break;
            }
            // A worker given up takes its connections with it.
            if p.connected + p.failed >= self.workers.planned() {
                // Everything connected or failed; unanswered subscribes get a grace period.
                if p.pending == 0 {
                    break;
                }
                let since = *settled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(5) {
                    break;
                }
            }
            if t_ramp.elapsed() > budget {
                break;
            }
        }
        pb.finish_and_clear();
        self.held = self.workers.total().open;
        self.case.connections.ramp_secs = t_ramp.elapsed().as_secs_f64();
        if self.ours {
            let addrs = match &self.cluster {
                Some(c) => c.publish_addrs(&self.server),
                None => vec![self.server.publish_addr],
            };
            let sum = |field| {
                addrs
                    .iter()
                    .map(|a| stats_field(*a, field))
                    .sum::<Option<u64>>()
            };
            if self.case.failure.is_none() {
                // A long-poll counts as subscribed once its request is out,
                // and a loaded server may not have read the last few yet:
                // never served means not served within a while, not not yet
                // (thread-pool, faults-churn 2026-12-03: 3 of 1,000 in one
                // repeat, with builds running beside it).
                let subscribed = self.workers.total().subscribed;
                let end = Instant::now() + SERVED_WITHIN;
                let mut n = sum("subscribers");
                while n.is_some_and(|n| n < subscribed) && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(100));
                    n = sum("subscribers");
                }
                self.case.connections.server_subscribers = n;
            }
            self.case.connections.server_closed_idle = sum("closed_idle");
        }
        Ok(())
    }

    /// What each of `workers` workers does: its share of the step, where it
    /// connects and from which sources (see `hosts`), the fault's part.
    fn plans(&self, workers: u64) -> Vec<Plan> {
        let s = self.scenario();
        let (to, nodes) = self.subscribe_targets();
        let mut plans = Vec::new();
        let mut first = 0u64;
        for w in 0..workers {
            let count = (self.step - first).min(self.step.div_ceil(workers));
            let (target, sources) = self.layout.route(w as usize, to);
            plans.push(Plan {
                worker: w as usize,
                target,
                nodes: nodes.clone(),
                sources,
                path: self.sub_path.clone(),
                since_param: "since".into(),
                dialect: self.dialect,
                ids: self.ids,
                retry_5xx: if matches!(self.target, Target::Peer(_)) {
                    PEER_RETRIES
                } else {
                    0
                },
                transport: self.transport.name().into(),
                count: count as usize,
                first_index: first as usize,
                channels: self.channels.clone(),
                rate: self.ramp_rate / workers as f64,
                in_flight: (s.ramp.in_flight / workers as usize).max(1),
                unanswered: s
                    .ramp
                    .unanswered
                    .map_or(usize::MAX, |u| (u / workers as usize).max(1)),
                connect_timeout_ms: 10_000,
                epoch_ns: self.epoch_ns,
                interval_ms: 1000,
                fault: self
                    .fault
                    .as_ref()
                    .map(|f| f.worker(workers, w))
                    .unwrap_or_default(),
                clock_offset_ns: 0,
            });
            first += count;
        }
        plans
    }

    /// Where subscribers connect: the server (or the balancer in front of
    /// the nodes), and the nodes each subscriber spreads over and fails
    /// over along when there is no balancer.
    fn subscribe_targets(&self) -> (std::net::SocketAddr, Vec<std::net::SocketAddr>) {
        match &self.cluster {
            Some(Cluster {
                balancer: Some(b), ..
            }) => (b.addr, Vec::new()),
            Some(c) => (self.server.addr, c.node_addrs(&self.server)),
            None => (self.server.addr, Vec::new()),
        }
    }

    /// Where messages are published, in turn: the server, the balancer, or
    /// every node.
    fn publish_targets(&self) -> Vec<std::net::SocketAddr> {
        match &self.cluster {
            Some(Cluster {
                balancer: Some(b), ..
            }) => vec![b.addr],
            Some(c) => c.publish_addrs(&self.server),
            None => vec![self.server.publish_addr],
        }
    }

    /// Holds the step, then takes its figures.
    fn hold(&mut self) {
        self.set_phase("hold");
        if self.case.failure.is_none() {
            self.with_fault(|f, run| f.hold_start(run));
            let hold_secs = self.scenario().hold_secs;
            let pb = bar((hold_secs * 10.0) as u64, "hold").with_prefix(self.label.clone());
            let t_hold = Instant::now();
            while t_hold.elapsed().as_secs_f64() < hold_secs {
                self.workers.collect(Duration::from_millis(100));
                pb.set_position((t_hold.elapsed().as_secs_f64() * 10.0) as u64);
                if let Some(why) = self.server.exit_status() {
                    self.case.failure = Some(why);
                    break;
                }
            }
            pb.finish_and_clear();
        }
        self.case.server.at_step = self.last_sample();
        let p = self.workers.total();
        (self.case.loadgen.rss_start, self.case.loadgen.rss_at_step) = (p.rss_start, p.rss);
        self.case.server.cpus = self.server.pid.and_then(|p| affinity_of(p).ok());
        self.case.loadgen.cpus = self.workers.first_pid().and_then(|p| affinity_of(p).ok());
        if self.case.failure.is_none() {
            self.with_fault(|f, run| f.hold_end(run));
        }
    }

    /// Publishes as the scenario says, lets deliveries in flight arrive, and
    /// takes the CPU used.
    fn publish(&mut self) {
        let s = self.scenario();
        if s.publish.pattern != Pattern::None && self.case.failure.is_none() {
            self.set_phase("publish");
            self.cpu_before = Some(self.cpu_now());
            if let Some(c) = self.cluster.as_mut() {
                c.publish_started();
            }
            let report = if self.publishes_over_sockets() {
                self.run_socket_publish()
            } else {
                self.run_publisher()
            };
            self.finish.expect = report.last_ids.clone();
            let mut finish = std::mem::take(&mut self.finish);
            self.with_fault(|f, run| f.publish_over(run, &report, &mut finish));
            reconcile::candidates(&report, self.ids, &mut finish);
            self.finish = finish;
            let t_drain = Instant::now();
            while t_drain.elapsed().as_secs_f64() < s.publish.drain_secs {
                self.workers.collect(Duration::from_millis(100));
            }
            self.case.publish = Some(report);
        }
        self.with_fault(|f, run| f.hold_over(run));
        self.cpu_after = self.cpu_now();
        if let Some(c) = self.cluster.as_mut() {
            c.publish_over();
        }
    }

    /// Runs the publisher to its end (or its deadline).
    fn run_publisher(&mut self) -> publisher::PublishReport {
        let s = self.scenario();
        let targets = self.publish_targets();
        let plan = PublishPlan {
            target: targets[0],
            targets,
            path: self.pub_path.clone(),
            token: self.layout.server().token.clone(),
            channels: self.channels.clone(),
            users: self.step as usize,
            rate: s.publish.rate,
            size: s.publish.size,
            duration: Duration::from_secs_f64(s.publish.duration_secs),
            connections: 4,
            timeout: self.publish_timeout,
            format: self.format,
            ordered: self.ids == IdCheck::Sequence,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let total = ((plan.rate * plan.duration.as_secs_f64()).floor() as u64).max(1);
        let pb = bar(total, "publish").with_prefix(self.label.clone());
        let mut publishing = Publishing {
            started: Instant::now(),
            deadline: Instant::now(),
            stop: stop.clone(),
        };
        self.with_fault(|f, run| f.publish_start(run, &publishing));
        publishing.started = Instant::now();
        let handle = std::thread::spawn(move || publisher::run(&plan, &stop));
        publishing.deadline = Instant::now()
            + Duration::from_secs_f64(s.publish.duration_secs + s.publish.drain_secs + 10.0);
        while !handle.is_finished() {
            self.workers.collect(Duration::from_millis(100));
            pb.set_position(self.workers.total().received / self.step.max(1));
            if Instant::now() > publishing.deadline {
                publishing.stop.store(true, Ordering::Relaxed);
            }
            self.with_fault(|f, run| f.publishing(run, &mut publishing));
        }
        pb.finish_and_clear();
        handle.join().unwrap_or_default()
    }

    /// The per-user pattern over WebSocket: each user's messages go over its
    /// own socket (`worker/chat.rs`), not through the HTTP publisher.
    fn publishes_over_sockets(&self) -> bool {
        self.transport == Transport::Ws && self.scenario().publish.pattern == Pattern::PerUser
    }

    /// Tells the workers to publish over their sockets and waits out the
    /// schedule; what they sent is added at the end, from their reports
    /// ([`Workers::merge_socket_publish`]).
    fn run_socket_publish(&mut self) -> publisher::PublishReport {
        let s = self.scenario();
        let total = ((s.publish.rate * s.publish.duration_secs).floor() as u64).max(1);
        let duration = Duration::from_secs_f64(s.publish.duration_secs);
        let mut publishing = Publishing {
            started: Instant::now(),
            deadline: Instant::now() + duration + Duration::from_secs(10),
            stop: Arc::new(AtomicBool::new(false)),
        };
        self.with_fault(|f, run| f.publish_start(run, &publishing));
        let start_ns = mono_ns() + 10_000_000;
        self.workers.send(&ToWorker::Publish(SocketPublish {
            start_ns,
            rate: s.publish.rate,
            users: self.step,
            size: s.publish.size,
            total,
        }));
        publishing.started = Instant::now();
        let pb = bar(total, "publish").with_prefix(self.label.clone());
        let end = publishing.started + duration + Duration::from_millis(10);
        while Instant::now() < end && !publishing.stop.load(Ordering::Relaxed) {
            self.workers.collect(Duration::from_millis(100));
            pb.set_position(self.workers.total().received);
            self.with_fault(|f, run| f.publishing(run, &mut publishing));
        }
        pb.finish_and_clear();
        publisher::PublishReport {
            scheduled: total,
            ..publisher::PublishReport::default()
        }
    }

    /// Subscribers away (churned, or not yet back after a restart) come back:
    /// waits up to `limit_secs` for five fresh progress reports in a row
    /// (they come every 250 ms) saying none is away.
    pub fn wait_back(&mut self, limit_secs: f64) {
        let t_back = Instant::now();
        let mut fresh = 0;
        while t_back.elapsed().as_secs_f64() < limit_secs {
            self.workers.collect(Duration::from_millis(100));
            let p = self.workers.total();
            if p.away == 0 && p.open >= self.held {
                fresh += 1;
                if fresh >= 5 {
                    break;
                }
            } else {
                fresh = 0;
            }
        }
    }

    /// The workers' reports, the server stopped, and what they add up to.
    fn collect(&mut self) -> Result<()> {
        self.workers.finish(std::mem::take(&mut self.finish));
        self.set_phase("end");
        self.with_fault(|f, run| f.before_server_stop(run));
        if let Some(c) = self.cluster.as_mut() {
            c.read_nodes(&self.server, self.ours);
        }
        self.case.server.exit = self.server.stop();
        if self.case.failure.is_none() {
            self.case.failure = self.case.server.exit.clone();
        }
        let cluster_exit = self.cluster.as_mut().and_then(Cluster::stop);
        if self.case.failure.is_none() {
            self.case.failure = cluster_exit;
        }
        let samples = self
            .sampler
            .take()
            .map(SamplerThread::finish)
            .unwrap_or_default();
        self.workers
            .merge_into(&mut self.case, self.dir, &self.label, self.epoch_ns)?;
        if self.publishes_over_sockets() {
            if let Some(p) = self.case.publish.as_mut() {
                self.workers.merge_socket_publish(p);
            }
        }
        self.case.loadgen.hosts = self.workers.hosts();
        reconcile::settle(&mut self.case, &self.workers.candidates(), self.ids);
        let c = &mut self.case;
        if c.connections.retried > 0 {
            c.notes.push(format!(
                "{} answers 500-503 to subscribes were retried on the same connection {} ms later (at most {PEER_RETRIES} per connection), as browsers' clients retry: connections.retried",
                c.connections.retried,
                crate::worker::RETRY_DELAY_NS / 1_000_000
            ));
        }
        let at_step = self.held;
        summarise_server(
            c,
            &samples,
            self.cpu_before.take(),
            self.cpu_after.clone(),
            at_step,
        );
        if let Some(cluster) = self.cluster.as_mut() {
            let mut r = std::mem::take(&mut cluster.result);
            r.nodes_cpu = c.server.publish_cpu_user + c.server.publish_cpu_sys;
            let accepted = c.publish.as_ref().map_or(0, |p| p.accepted);
            r.settle(c.delivery.counts.received, accepted);
            c.cluster = Some(r);
        }
        Ok(())
    }

    /// The fault's pass line, then what else fails the case.
    fn verdict(mut self) -> Result<Case> {
        if let Some(mut f) = self.fault.take() {
            fault::judge(&mut *f, &mut self.case, &self.workers)?;
        }
        let case = &mut self.case;
        if let Some(lost) = self.workers.missing() {
            case.failure
                .get_or_insert_with(|| format!("a load generator worker did not report: {lost}"));
        }
        judge_connections(case);
        let wrong = consistency::contradictions(case);
        if case.failure.is_none() && !wrong.is_empty() {
            case.failure = Some(format!("figures contradict: {}", wrong.join("; ")));
        }
        if case.failure.is_some() {
            case.status = "failed".into();
        }
        case.duration_secs = self.started.elapsed().as_secs_f64();
        Ok(std::mem::take(case))
    }
}

/// The open-file limit a server started from here gets (it raises its soft
/// limit to this hard one).
fn nofile_limit() -> u64 {
    crate::sampler::machine().nofile_hard
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>28} {msg:<12} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}
