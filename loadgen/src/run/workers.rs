//! The load generator's worker processes seen from the coordinator: started
//! with their plans, told what to do, listened to, and their reports merged
//! into the case (counts summed, histograms merged, never averaged).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use crate::clock::mono_ns;
use crate::hist::{self, Interval, Summary};
use crate::publisher::PublishReport;
use crate::results::{Case, FaultResult};
use crate::sampler::Sampler;
use crate::worker::protocol::write_line;
use crate::worker::{
    FaultCounts, Finish, FromWorker, Plan, Progress, Report, SocketPublished, ToWorker,
};

/// A worker process and what it said last.
struct WorkerProc {
    child: Child,
    stdin: Option<ChildStdin>,
    progress: Progress,
    report: Option<Report>,
}

/// Every worker of a case, and the lines they send.
pub(super) struct Workers {
    procs: Vec<WorkerProc>,
    rx: mpsc::Receiver<(usize, FromWorker)>,
}

impl Workers {
    /// No workers yet.
    pub fn none() -> Workers {
        Workers {
            procs: Vec::new(),
            rx: mpsc::channel().1,
        }
    }

    /// Starts `cometbench worker` once per plan, in order, each told its plan.
    pub fn spawn(exe: &Path, plans: Vec<Plan>) -> Result<Workers> {
        let (tx, rx) = mpsc::channel();
        let mut procs = Vec::new();
        for plan in plans {
            procs.push(spawn(exe, plan, tx.clone())?);
        }
        Ok(Workers { procs, rx })
    }

    /// Takes in the next line of any worker, waiting up to `wait` for one.
    pub fn collect(&mut self, wait: Duration) {
        match self.rx.recv_timeout(wait) {
            Ok((w, FromWorker::Progress(p))) => self.procs[w].progress = p,
            Ok((w, FromWorker::Report(r))) => self.procs[w].report = Some(*r),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every worker has gone: wait as asked rather than spin.
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
        }
    }

    /// Sends `line` to every worker.
    pub fn send(&mut self, line: &ToWorker) {
        for w in self.procs.iter_mut() {
            if let Some(stdin) = w.stdin.as_mut() {
                let _ = write_line(stdin, line);
            }
        }
    }

    /// The workers' latest progress, summed.
    pub fn total(&self) -> Progress {
        let mut sum = Progress::default();
        for w in &self.procs {
            sum += &w.progress;
        }
        sum
    }

    /// CPU seconds the workers have used.
    pub fn cpu(&self) -> f64 {
        self.procs
            .iter()
            .filter_map(|w| Sampler::new(w.child.id(), false).sample().ok())
            .map(|s| s.cpu_user + s.cpu_sys)
            .sum()
    }

    /// Tells the workers to finish, waits up to 30 s for their reports, and
    /// ends them.
    pub fn finish(&mut self, finish: Finish) {
        self.send(&ToWorker::Finish(finish));
        let t = Instant::now();
        while !self.all_reported() && t.elapsed() < Duration::from_secs(30) {
            self.collect(Duration::from_millis(100));
        }
        for w in self.procs.iter_mut() {
            w.stdin.take();
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }

    pub fn all_reported(&self) -> bool {
        self.procs.iter().all(|w| w.report.is_some())
    }

    fn reports(&self) -> impl Iterator<Item = &Report> {
        self.procs.iter().filter_map(|w| w.report.as_ref())
    }

    /// The reports summed into `case`; the latency intervals written to
    /// `dir/LABEL.hlog`, timed from `epoch_ns`.
    pub fn merge_into(
        &self,
        case: &mut Case,
        dir: &Path,
        label: &str,
        epoch_ns: u64,
    ) -> Result<()> {
        let c = &mut case.connections;
        let d = &mut case.delivery;
        let wire = &mut case.wire;
        c.requested = case.step;
        for r in self.reports() {
            c.connected += r.connected;
            c.subscribed += r.subscribed;
            c.held += r.open;
            c.disconnects += r.disconnects;
            for (k, v) in &r.failed {
                *c.failed.entry(k.clone()).or_default() += v;
            }
            c.retried += r.retried;
            d.counts += &r.delivery;
            wire.counts += &r.wire;
        }
        c.waiting = c.connected.saturating_sub(c.subscribed + c.disconnects);
        let h = self.histograms()?;
        c.connect_us = Summary::of(&h.connect);
        d.latency_us = Summary::of(&h.latency);
        d.latency_raw_us = Summary::of(&h.latency_raw);
        if d.counts.expected > 0 {
            d.delivered_fraction = Some(d.counts.received as f64 / d.counts.expected as f64);
        }
        if d.counts.received > 0 {
            let received = d.counts.received as f64;
            wire.per_message_total = Some(wire.counts.bytes_total as f64 / received);
            wire.per_message_payload = Some(wire.counts.bytes_payload as f64 / received);
        }
        if !h.intervals.is_empty() {
            let name = format!("{label}.hlog");
            write_hlog(&dir.join(&name), h.intervals, epoch_ns)?;
            case.hlog = Some(name);
        }
        Ok(())
    }

    fn histograms(&self) -> Result<Histograms> {
        let mut h = Histograms {
            connect: hist::new_histogram(),
            latency: hist::new_histogram(),
            latency_raw: hist::new_histogram(),
            intervals: HashMap::new(),
        };
        for r in self.reports() {
            hist::merge(&mut h.connect, &hist::decode(&r.connect_us)?);
            hist::merge(&mut h.latency, &hist::decode(&r.latency_us)?);
            hist::merge(&mut h.latency_raw, &hist::decode(&r.latency_raw_us)?);
            for (i, cor, raw) in &r.intervals {
                let e = h
                    .intervals
                    .entry(*i)
                    .or_insert_with(|| (hist::new_histogram(), hist::new_histogram()));
                hist::merge(&mut e.0, &hist::decode(cor)?);
                hist::merge(&mut e.1, &hist::decode(raw)?);
            }
        }
        Ok(h)
    }

    /// What the workers' sockets published (the per-user pattern over
    /// WebSocket), into `p`: `accepted` is what was written to a subscribed
    /// socket (its echo, the acknowledgement, is counted in `delivery`),
    /// `failed.not_connected` what was due while its user was away.
    pub fn merge_socket_publish(&self, p: &mut PublishReport) {
        let mut t = SocketPublished::default();
        for r in self.reports() {
            t += &r.socket_publish;
        }
        p.accepted += t.sent;
        p.unsent += p.scheduled.saturating_sub(t.sent + t.not_connected);
        if t.not_connected > 0 {
            *p.failed.entry("not_connected".into()).or_default() += t.not_connected;
        }
        p.max_lag_us = p.max_lag_us.max(t.max_lag_us);
    }

    /// The workers' fault counts and histograms, summed into `fr`.
    pub fn merge_fault_counts(&self, fr: &mut FaultResult) -> Result<()> {
        let mut reconnect = hist::new_histogram();
        let mut life = hist::new_histogram();
        let mut t = FaultCounts::default();
        for r in self.reports() {
            let f = &r.fault;
            t += f;
            if !f.reconnect_us.is_empty() {
                hist::merge(&mut reconnect, &hist::decode(&f.reconnect_us)?);
            }
            if !f.attacker_life_us.is_empty() {
                hist::merge(&mut life, &hist::decode(&f.attacker_life_us)?);
            }
        }
        if !reconnect.is_empty() {
            fr.reconnect_us = Some(Summary::of(&reconnect));
        }
        if !life.is_empty() {
            fr.attacker_life_us = Some(Summary::of(&life));
        }
        fr.counts = t;
        Ok(())
    }
}

/// The workers' histograms, merged.
struct Histograms {
    connect: Histogram<u64>,
    latency: Histogram<u64>,
    latency_raw: Histogram<u64>,
    /// Per interval index: corrected and raw.
    intervals: HashMap<u64, (Histogram<u64>, Histogram<u64>)>,
}

/// The intervals as an interval log whose start is `epoch_ns` on the wall clock.
fn write_hlog(
    path: &Path,
    mut intervals: HashMap<u64, (Histogram<u64>, Histogram<u64>)>,
    epoch_ns: u64,
) -> Result<()> {
    let mut idx: Vec<_> = intervals.keys().copied().collect();
    idx.sort();
    let mut list = Vec::new();
    for i in idx {
        let (cor, raw) = intervals.remove(&i).expect("key listed");
        for (tag, h) in [("corrected", cor), ("raw", raw)] {
            list.push(Interval {
                start_offset_secs: i as f64,
                duration_secs: 1.0,
                tag: Some(tag.into()),
                hist: h,
            });
        }
    }
    let start = SystemTime::now() - Duration::from_nanos(mono_ns().saturating_sub(epoch_ns));
    hist::write_log(File::create(path)?, start, &list)?;
    Ok(())
}

fn spawn(exe: &Path, plan: Plan, tx: mpsc::Sender<(usize, FromWorker)>) -> Result<WorkerProc> {
    let mut child = Command::new(exe)
        .arg("worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a load generator worker")?;
    let mut stdin = child.stdin.take().expect("piped");
    let w = plan.worker;
    write_line(&mut stdin, &ToWorker::Plan(Box::new(plan)))?;
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<FromWorker>(&line) {
                Ok(m) => {
                    if tx.send((w, m)).is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("worker {w}: unreadable line: {e}"),
            }
        }
    });
    Ok(WorkerProc {
        child,
        stdin: Some(stdin),
        progress: Progress::default(),
        report: None,
    })
}
