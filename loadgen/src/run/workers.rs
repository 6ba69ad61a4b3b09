//! The load generator's worker processes seen from the coordinator: started
//! on their hosts with their plans (`launch`), told what to do, listened to,
//! given up when one cannot start, dies or falls silent (named with its host;
//! the case goes on without it), and their reports merged into the case
//! (counts summed, histograms merged, never averaged).

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::process::{Child, ChildStdin};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;

use super::hosts::Layout;
use super::launch::{launch, Event, Heard, Tail};
use crate::child;
use crate::clock::mono_ns;
use crate::hist::{self, Interval, Summary};
use crate::publisher::PublishReport;
use crate::results::{Case, FaultResult, HostResult, WorkerResult};
use crate::sampler::Sampler;
use crate::worker::clock_sync::Estimate;
use crate::worker::protocol::write_line;
use crate::worker::{
    Candidate, FaultCounts, Finish, FromWorker, Plan, Progress, Report, SocketPublished, ToWorker,
};

/// How long a worker has to start and answer the clock exchanges (a host
/// reached over ssh takes seconds).
const START_SECS: u64 = 20;

/// A worker heard from for this long (it writes progress every 250 ms) has
/// fallen silent.
const SILENT_SECS: u64 = 15;

/// A worker process and what it said last.
struct WorkerProc {
    /// `worker W` or `worker W on HOST`, as it is named in messages.
    label: String,
    host: String,
    /// Connections planned.
    count: u64,
    /// `None` when it could not be started at all.
    child: Option<Child>,
    /// Set once it has answered the clock exchanges and has its plan.
    stdin: Option<ChildStdin>,
    tail: Tail,
    clock: Option<Estimate>,
    corrected: bool,
    /// When its last line came (`mono_ns`).
    heard_ns: u64,
    /// Why it is gone without a report.
    failure: Option<String>,
    progress: Progress,
    report: Option<Report>,
}

impl WorkerProc {
    fn live(&self) -> bool {
        self.failure.is_none()
    }

    /// Gone for `why`: ended, and said at once; the case goes on without it.
    fn fail(&mut self, why: String) {
        eprintln!(
            "{}: {why}; the case goes on without its {} connections",
            self.label, self.count
        );
        self.failure = Some(why);
        self.stdin.take();
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// How its process ended, and the last it said.
    fn ended(&mut self) -> String {
        let how = match self.child.as_mut() {
            Some(c) => match child::wait_exit(c, Duration::from_secs(1)) {
                Some(status) => status.to_string(),
                None => "its output closed".into(),
            },
            None => "never started".into(),
        };
        self.tail.wait_closed(Duration::from_secs(1));
        format!("{how}{}", self.tail.said())
    }
}

/// What process `pid` is doing, as `; process state S in WCHAN` (empty when
/// it cannot be read): a worker that falls silent is named with whether it
/// was stopped, waiting in the kernel (and where) or running, so that a
/// silence tells a stalled machine from a stuck worker.
fn doing(pid: u32) -> String {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return String::new();
    };
    // The state follows the command's closing parenthesis.
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .unwrap_or("?");
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    match wchan.trim() {
        "" | "0" => format!("; process state {state}"),
        w => format!("; process state {state} in {w}"),
    }
}

/// Every worker of a case, and the lines they send.
pub(super) struct Workers {
    procs: Vec<WorkerProc>,
    rx: mpsc::Receiver<Heard>,
    /// The finish is sent: reports take their time, silence is no failure.
    finishing: bool,
}

impl Workers {
    /// No workers yet.
    pub fn none() -> Workers {
        Workers {
            procs: Vec::new(),
            rx: mpsc::channel().1,
            finishing: false,
        }
    }

    /// Starts a worker per plan on its host, each told its plan once its
    /// clock is measured; waits until every one has started or failed. An
    /// error only when none started.
    pub fn spawn(layout: &Layout, exe: &Path, plans: Vec<Plan>) -> Result<Workers> {
        let (tx, rx) = mpsc::channel();
        let mut procs = Vec::new();
        for plan in plans {
            let w = plan.worker;
            let host = layout.host_name(w).to_string();
            let label = match layout.corrects(w) {
                true => format!("worker {w} on {host}"),
                false => format!("worker {w}"),
            };
            let mut p = WorkerProc {
                label: label.clone(),
                host,
                count: plan.count as u64,
                child: None,
                stdin: None,
                tail: Tail::default(),
                clock: None,
                corrected: layout.corrects(w),
                heard_ns: mono_ns(),
                failure: None,
                progress: Progress::default(),
                report: None,
            };
            let mut cmd = layout.command(w, exe);
            super::placement::loadgen(&mut cmd);
            match launch(cmd, label, plan, p.corrected, tx.clone()) {
                Ok((child, tail)) => {
                    p.child = Some(child);
                    p.tail = tail;
                }
                Err(e) => p.fail(format!("could not start: {e}")),
            }
            procs.push(p);
        }
        let mut workers = Workers {
            procs,
            rx,
            finishing: false,
        };
        workers.wait_started();
        if workers.procs.iter().all(|p| p.stdin.is_none()) {
            bail!(
                "no load generator worker started: {}",
                workers.missing().unwrap_or_default()
            );
        }
        Ok(workers)
    }

    /// Takes in events until every worker has started or failed, for up to
    /// [`START_SECS`].
    fn wait_started(&mut self) {
        let end = Instant::now() + Duration::from_secs(START_SECS);
        let waiting = |ws: &Workers| ws.procs.iter().any(|p| p.live() && p.stdin.is_none());
        while waiting(self) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.rx.recv_timeout(left) {
                Ok(h) => self.handle(h),
                Err(_) => break,
            }
        }
        for p in self
            .procs
            .iter_mut()
            .filter(|p| p.live() && p.stdin.is_none())
        {
            let said = p.tail.said();
            p.fail(format!(
                "could not start: no answer to the clock exchanges within {START_SECS} s{said}"
            ));
        }
    }

    fn handle(&mut self, h: Heard) {
        let p = &mut self.procs[h.worker];
        p.heard_ns = h.at_ns;
        match h.event {
            Event::Started { stdin, clock } => {
                if p.live() {
                    p.stdin = Some(stdin);
                    p.clock = Some(clock);
                }
            }
            Event::Line(FromWorker::Progress(progress)) => p.progress = progress,
            Event::Line(FromWorker::Report(r)) => p.report = Some(*r),
            Event::Line(FromWorker::Pong(_)) => {}
            Event::Gone if p.live() && p.report.is_none() => {
                let how = p.ended();
                let why = match p.stdin.is_some() {
                    true => format!("died: {how}"),
                    false => format!("could not start: {how}"),
                };
                p.fail(why);
            }
            Event::Gone => {}
        }
    }

    /// Takes in what the workers said, waiting up to `wait` for a first
    /// line; a worker not heard from for [`SILENT_SECS`] is given up.
    pub fn collect(&mut self, wait: Duration) {
        match self.rx.recv_timeout(wait) {
            Ok(h) => self.handle(h),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every worker has gone: wait as asked rather than spin.
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
        }
        while let Ok(h) = self.rx.try_recv() {
            self.handle(h);
        }
        if self.finishing {
            return;
        }
        let now = mono_ns();
        for p in self.procs.iter_mut() {
            let quiet = now.saturating_sub(p.heard_ns);
            if p.live() && p.report.is_none() && quiet > SILENT_SECS * 1_000_000_000 {
                let last = &p.progress;
                let state = p.child.as_ref().map_or(String::new(), |c| doing(c.id()));
                p.fail(format!(
                    "fell silent: nothing heard for {SILENT_SECS} s (last said: {} connected, {} subscribed, {} failed, {} pending){state}",
                    last.connected, last.subscribed, last.failed, last.pending
                ));
            }
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

    /// The latest progress of the workers still there, summed.
    pub fn total(&self) -> Progress {
        let mut sum = Progress::default();
        for w in self.procs.iter().filter(|w| w.live()) {
            sum += &w.progress;
        }
        sum
    }

    /// The first worker's process id, while there is one.
    pub fn first_pid(&self) -> Option<u32> {
        self.procs
            .iter()
            .find_map(|w| w.child.as_ref())
            .map(|c| c.id())
    }

    /// Connections planned on the workers still there.
    pub fn planned(&self) -> u64 {
        self.procs
            .iter()
            .filter(|w| w.live())
            .map(|w| w.count)
            .sum()
    }

    /// CPU seconds the workers' processes here have used (a host's command,
    /// for a worker elsewhere: its own report says what it used).
    pub fn cpu(&self) -> f64 {
        self.procs
            .iter()
            .filter_map(|w| w.child.as_ref())
            .filter_map(|c| Sampler::new(c.id(), false).sample().ok())
            .map(|s| s.cpu_user + s.cpu_sys)
            .sum()
    }

    /// Tells the workers to finish, waits up to 30 s for their reports, and
    /// ends them.
    pub fn finish(&mut self, finish: Finish) {
        self.finishing = true;
        self.send(&ToWorker::Finish(finish));
        let t = Instant::now();
        let waiting = |ws: &Workers| ws.procs.iter().any(|w| w.live() && w.report.is_none());
        while waiting(self) && t.elapsed() < Duration::from_secs(30) {
            self.collect(Duration::from_millis(100));
        }
        for w in self.procs.iter_mut() {
            if w.live() && w.report.is_none() {
                w.fail("did not report within 30 s of the finish".into());
            }
            w.stdin.take();
            if let Some(c) = w.child.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// The workers without a report, each with its host and why; `None`
    /// when every one reported.
    pub fn missing(&self) -> Option<String> {
        let lost: Vec<String> = self
            .procs
            .iter()
            .filter(|w| w.report.is_none())
            .map(|w| {
                let why = w.failure.as_deref().unwrap_or("no report");
                format!("{}: {why}", w.label)
            })
            .collect();
        (!lost.is_empty()).then(|| lost.join("; "))
    }

    /// `loadgen.hosts`: every worker by host, with its clock and CPU.
    pub fn hosts(&self) -> Vec<HostResult> {
        let workers = self.procs.iter().enumerate().map(|(i, w)| {
            let r = w.report.as_ref();
            let result = WorkerResult {
                worker: i,
                connections: w.count,
                connected: r.map_or(0, |r| r.connected),
                clock: w.clock,
                corrected: w.corrected,
                cpu_user: r.map_or(0.0, |r| r.cpu_user),
                cpu_sys: r.map_or(0.0, |r| r.cpu_sys),
                failure: w.failure.clone(),
            };
            (w.host.clone(), result)
        });
        HostResult::group(workers.collect())
    }

    /// What every worker counted of the candidates (see `reconcile`).
    pub fn candidates(&self) -> Vec<Candidate> {
        self.reports()
            .flat_map(|r| r.candidates.iter().cloned())
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_silent_process_is_named_with_its_state() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let end = Instant::now() + Duration::from_secs(5);
        // Asleep in the kernel once it has started its nanosleep.
        while !doing(pid).starts_with("; process state S") && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            doing(pid).starts_with("; process state S"),
            "{}",
            doing(pid)
        );
        child::signal(pid as i32, libc::SIGSTOP);
        while !doing(pid).starts_with("; process state T") && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            doing(pid).starts_with("; process state T"),
            "{}",
            doing(pid)
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(doing(pid), "", "a reaped process has no state");
    }
}
