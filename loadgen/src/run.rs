//! The coordinator of `cometbench run`: for each target, transport and step,
//! starts the server under test as a child process, starts as many worker
//! processes as the connections need, ramps, holds, publishes, samples the
//! server, merges what the workers measured, and writes the results.
//!
//! A target that fails or hangs is recorded with its reason and killed; the
//! run goes on with the next. Targets are our dispatchers (`cometbench
//! serve`), the scenario's peers (nginx + nchan, Pushpin: see [`crate::peers`]),
//! or one external server.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use comet::Transport;
use indicatif::{ProgressBar, ProgressStyle};

use crate::clock::{mono_ns, self_cpu, utc, Precision};
use crate::hist::{self, Interval, Summary};
use crate::peers::{self, Peer};
use crate::publisher::{self, PublishFormat, PublishPlan};
use crate::results::{
    self, Case, Check, FaultResult, Probe, Recovery, Restart, Run, ThresholdResult,
};
use crate::sampler::{self, Cgroup, Sample, Sampler};
use crate::scenario::{Fault, FaultKind, Pattern, Scenario, StopSignal};
use crate::worker::{
    Channels, Control, FaultCounts, Finish, IdCheck, Plan, Progress, Report, WorkerFault,
};
use comet::client::Dialect;

/// Answers 500-503 to a peer's subscribes retried per connection (our
/// dispatchers' refusals are never retried: they are what is measured).
pub const PEER_RETRIES: u32 = 3;

/// Connections one worker process holds at most (the open-file limit is 20,000).
pub const PER_WORKER: u64 = 15_000;

/// A server not started by the run: any Comet server, driven by URL templates.
#[derive(Debug, Clone)]
pub struct External {
    pub addr: SocketAddr,
    /// Path template with `{channel}` and `{transport}`.
    pub subscribe_path: String,
    /// Path template with `{channel}`.
    pub publish_path: String,
    pub pid: Option<u32>,
}

pub struct RunArgs {
    pub scenario: Scenario,
    pub exe: PathBuf,
    pub out_root: PathBuf,
    pub external: Option<External>,
    pub command_line: Vec<String>,
}

pub struct Outcome {
    pub dir: PathBuf,
    pub run: Run,
}

/// What the run is pointed at, for one case.
#[derive(Debug, Clone)]
enum Target {
    Dispatcher { name: String, args: Vec<String> },
    Peer(&'static Peer),
    External(External),
}

impl Target {
    fn label(&self) -> String {
        match self {
            Target::Dispatcher { name, .. } => name.clone(),
            Target::Peer(p) => p.name.into(),
            Target::External(_) => "external".into(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Target::Dispatcher { .. } => "dispatcher",
            Target::Peer(_) => "peer",
            Target::External(_) => "external",
        }
    }

    fn notes(&self, transport: Transport) -> Vec<String> {
        match self {
            Target::Peer(p) => p.case_notes(transport),
            _ => Vec::new(),
        }
    }
}

/// The server of one case while it runs.
struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    /// Where to publish and read `/stats`: `addr`, or the separate publish listener.
    publish_addr: SocketAddr,
    pid: Option<u32>,
    log: PathBuf,
    /// The child leads a process group of its own (a peer's script): stop the group.
    group: bool,
}

impl Server {
    fn exit_status(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(describe_exit(status, &self.log)),
            _ => None,
        }
    }

    fn stop(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            if self.group {
                peers::stop_group(&mut child, Duration::ZERO);
            }
            return Some(describe_exit(status, &self.log));
        }
        if self.group {
            return peers::stop_group(&mut child, Duration::from_secs(10));
        }
        // SAFETY: kill sends a signal to our own child, which has not been reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Some("did not stop within 5 s of SIGTERM: killed".into())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.group {
                peers::stop_group(&mut c, Duration::from_secs(2));
            } else {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn describe_exit(status: std::process::ExitStatus, log: &Path) -> String {
    use std::os::unix::process::ExitStatusExt;
    let tail = fs::read_to_string(log)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .map(|l| format!(" ({})", l.trim()))
        .unwrap_or_default();
    match status.signal() {
        Some(sig) => format!("server killed by signal {sig}{}{tail}", signal_name(sig)),
        None => format!("server exited with {}{tail}", status.code().unwrap_or(-1)),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGKILL => " (SIGKILL: out of memory?)",
        libc::SIGBUS => " (SIGBUS)",
        _ => "",
    }
}

/// A free port below the ephemeral range, so no client socket can take it.
fn free_port() -> io::Result<u16> {
    let seed = (mono_ns() as u32 ^ std::process::id()) as u64;
    for i in 0..2000u64 {
        let port = 10_000 + ((seed + i * 7919) % 22_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free port below 32000",
    ))
}

fn start_server(
    exe: &Path,
    name: &str,
    args: &[String],
    publish_listen: bool,
    log: PathBuf,
) -> Result<Server> {
    let port = free_port()?;
    let publish_port = if publish_listen {
        let mut p = free_port()?;
        while p == port {
            p = free_port()?;
        }
        Some(p)
    } else {
        None
    };
    start_server_on(exe, name, args, port, publish_port, log)
}

/// Starts `cometbench serve` on the given ports (a restart takes the old ones).
fn start_server_on(
    exe: &Path,
    name: &str,
    args: &[String],
    port: u16,
    publish_port: Option<u16>,
    log: PathBuf,
) -> Result<Server> {
    let mut extra = Vec::new();
    if let Some(p) = publish_port {
        extra.push("--publish-listen".to_string());
        extra.push(format!("127.0.0.1:{p}"));
    }
    let err = File::options()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("creating {}", log.display()))?;
    let mut child = Command::new(exe)
        .arg("serve")
        .arg("--dispatcher")
        .arg(name)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .args(&extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {} serve", exe.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let pid = child.id();
    let local = |p: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p);
    let mut server = Server {
        child: Some(child),
        addr: local(port),
        publish_addr: local(publish_port.unwrap_or(port)),
        pid: Some(pid),
        log,
        group: false,
    };
    match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(line) if !line.trim().is_empty() => {
            server.addr = line
                .trim()
                .parse()
                .with_context(|| format!("server printed {line:?}"))?;
            if publish_port.is_none() {
                server.publish_addr = server.addr;
            }
            Ok(server)
        }
        _ => {
            let why = server
                .stop()
                .unwrap_or_else(|| "no address printed within 15 s".into());
            bail!("{why}")
        }
    }
}

/// A worker process and the lines it sends.
struct WorkerProc {
    child: Child,
    stdin: Option<ChildStdin>,
    progress: Progress,
    report: Option<Report>,
}

enum WorkerMsg {
    Progress(Progress),
    Report(Box<Report>),
}

fn spawn_worker(
    exe: &Path,
    plan: &Plan,
    tx: mpsc::Sender<(usize, WorkerMsg)>,
) -> Result<WorkerProc> {
    let mut child = Command::new(exe)
        .arg("worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a load generator worker")?;
    let mut stdin = child.stdin.take().expect("piped");
    serde_json::to_writer(&mut stdin, plan)?;
    stdin.write_all(b"\n")?;
    stdin.flush()?;
    let stdout = child.stdout.take().expect("piped");
    let w = plan.worker;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let msg = if line.contains("\"latency_us\"") {
                serde_json::from_str::<Report>(&line).map(|r| WorkerMsg::Report(Box::new(r)))
            } else {
                serde_json::from_str::<Progress>(&line).map(WorkerMsg::Progress)
            };
            if let Ok(m) = msg {
                if tx.send((w, m)).is_err() {
                    break;
                }
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

/// Samples the server every interval in a thread of its own.
struct SamplerThread {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(String, Sample)>>>,
    phase: Arc<Mutex<String>>,
    handle: Option<std::thread::JoinHandle<Sampler>>,
}

impl SamplerThread {
    fn start(
        mut sampler: Sampler,
        interval: Duration,
        out: Arc<Mutex<File>>,
        case: String,
    ) -> SamplerThread {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let phase = Arc::new(Mutex::new("baseline".to_string()));
        let (s, v, p) = (stop.clone(), samples.clone(), phase.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(sample) = sampler.sample() {
                    let phase = p.lock().unwrap().clone();
                    let line =
                        serde_json::json!({ "case": case, "phase": phase, "sample": sample });
                    let _ = writeln!(out.lock().unwrap(), "{line}");
                    v.lock().unwrap().push((phase, sample));
                }
                std::thread::sleep(interval);
            }
            sampler
        });
        SamplerThread {
            stop,
            samples,
            phase,
            handle: Some(handle),
        }
    }

    fn set_phase(&self, phase: &str) {
        *self.phase.lock().unwrap() = phase.to_string();
    }

    fn finish(mut self) -> Option<Sampler> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().and_then(|h| h.join().ok())
    }
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

/// The checks the machine can make before a run starts.
pub fn preflight(s: &Scenario) -> Result<()> {
    let max = *s.steps.iter().max().unwrap_or(&0);
    let m = sampler::machine();
    let workers = max.div_ceil(PER_WORKER);
    if workers > 200 {
        bail!("{max} connections need {workers} worker processes; at most 200 are supported");
    }
    // Both ends of an idle loopback connection cost ~9.6 KB of kernel memory
    // (MACHINE.md), plus the load generator's own state.
    let need = max * 12 * 1024;
    if need > m.memory_total / 2 {
        bail!(
            "{max} connections need about {} MiB of kernel and client memory, more than half of this machine's {} MiB",
            need >> 20,
            m.memory_total >> 20
        );
    }
    Ok(())
}

/// Runs the scenario and writes `results/<scenario>/<timestamp>/`.
pub fn run(args: RunArgs) -> Result<Outcome> {
    let s = &args.scenario;
    preflight(s)?;
    let started_at = timestamp(SystemTime::now());
    let dir = args
        .out_root
        .join(&s.name)
        .join(started_at.replace(':', "-"));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let samples_file = Arc::new(Mutex::new(File::create(dir.join("samples.jsonl"))?));
    let targets: Vec<Target> = match &args.external {
        Some(e) => vec![Target::External(e.clone())],
        None => {
            let mut t: Vec<Target> = s
                .dispatchers
                .iter()
                .map(|d| Target::Dispatcher {
                    name: d.name.clone(),
                    args: s.server_args.iter().chain(&d.args).cloned().collect(),
                })
                .collect();
            for name in &s.peers {
                let peer = peers::find(name).with_context(|| {
                    format!(
                        "unknown peer {name:?} (expected one of {})",
                        peers::names().join(", ")
                    )
                })?;
                t.push(Target::Peer(peer));
            }
            t
        }
    };
    if let Some(f) = &s.fault {
        if targets.iter().any(|t| matches!(t, Target::Peer(_))) {
            bail!(
                "fault \"{}\" drives our dispatchers only: leave peers out of this scenario",
                f.kind.name()
            );
        }
        if f.kind == FaultKind::Restart && args.external.is_some() {
            bail!("fault \"restart\" needs a server the run starts: not --target");
        }
    }
    let mut run = Run {
        schema: results::SCHEMA.into(),
        scenario: serde_json::to_value(s)?,
        command_line: args.command_line.clone(),
        started_at,
        finished_at: String::new(),
        machine: sampler::machine(),
        cases: Vec::new(),
        thresholds: ThresholdResult::default(),
    };
    for target in &targets {
        for &transport in &s.transports {
            for &step in &s.steps {
                let case = run_case(&args, &dir, target, transport, step, &samples_file);
                let case = case.unwrap_or_else(|e| Case {
                    target: target.label(),
                    kind: target.kind().into(),
                    transport: transport.name().into(),
                    step,
                    status: "failed".into(),
                    failure: Some(format!("{e:#}")),
                    notes: target.notes(transport),
                    ..Case::default()
                });
                if let Some(f) = &case.failure {
                    eprintln!("{} {} {}: FAILED: {f}", case.target, case.transport, step);
                } else if case.status == "skipped" {
                    eprintln!(
                        "{} {} {}: skipped ({})",
                        case.target,
                        case.transport,
                        step,
                        case.notes.last().map(String::as_str).unwrap_or("")
                    );
                }
                run.cases.push(case);
                write_json(&dir.join("run.json"), &run)?;
            }
        }
    }
    run.thresholds = check_thresholds(s, &run.cases);
    run.finished_at = timestamp(SystemTime::now());
    write_json(&dir.join("run.json"), &run)?;
    Ok(Outcome { dir, run })
}

fn write_json(path: &Path, run: &Run) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_string_pretty(run)?)?;
    fs::rename(&tmp, path)?;
    Ok(())
}

fn check_thresholds(s: &Scenario, cases: &[Case]) -> ThresholdResult {
    let t = &s.thresholds;
    let mut broken = Vec::new();
    for c in cases {
        let name = format!("{} {} {}", c.target, c.transport, c.step);
        if let Some(max) = t.max_errors {
            if c.errors() > max {
                broken.push(format!("{name}: {} errors > {max}", c.errors()));
            }
        }
        if let Some(p99) = t.p99_ms {
            let got = c.delivery.latency_us.p99 as f64 / 1000.0;
            if c.delivery.latency_us.count > 0 && got > p99 {
                broken.push(format!("{name}: p99 {got:.1} ms > {p99} ms"));
            }
        }
        if let (Some(min), Some(f)) = (t.min_delivered_fraction, c.delivery.delivered_fraction) {
            if f < min {
                broken.push(format!("{name}: delivered {f:.4} < {min}"));
            }
        }
        if let Some(f) = c.fault.as_ref().filter(|f| !f.passed) {
            for check in f.checks.iter().filter(|c| !c.passed) {
                broken.push(format!(
                    "{name}: fault {}: {} ({})",
                    f.kind, check.what, check.detail
                ));
            }
            if f.checks.is_empty() {
                broken.push(format!("{name}: fault {}: not judged", f.kind));
            }
        }
    }
    ThresholdResult {
        passed: broken.is_empty(),
        broken,
    }
}

fn timestamp(t: SystemTime) -> String {
    utc(t, Precision::Seconds)
}

fn stats_subscribers(addr: SocketAddr) -> Option<u64> {
    stats(addr, Duration::from_secs(5))?["subscribers"].as_u64()
}

/// The server's `/stats` document, read whole (the server has closed the
/// connection when this returns).
fn stats(addr: SocketAddr, timeout: Duration) -> Option<serde_json::Value> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    if !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    let body = text.split("\r\n\r\n").nth(1)?;
    // A chunked body would need decoding; ours is sent with a length.
    serde_json::from_str(body).ok()
}

/// Opens `n` subscribers on `path`, reads what each is answered at once, and
/// closes them all.
fn warm_up(addr: SocketAddr, path: &str, n: usize) {
    use std::io::Read;
    let mut conns = Vec::new();
    for _ in 0..n {
        let Ok(mut c) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            continue;
        };
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
        if c.write_all(req.as_bytes()).is_ok() {
            conns.push(c);
        }
    }
    // Streams answer with their head at once; a long-poll holds its answer.
    for c in &mut conns {
        let _ = c.set_read_timeout(Some(Duration::from_millis(50)));
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
    }
    drop(conns);
}

/// Sends one control line to every worker.
fn send_control(workers: &mut [WorkerProc], control: &Control) {
    let Ok(line) = serde_json::to_string(control) else {
        return;
    };
    for w in workers.iter_mut() {
        if let Some(stdin) = w.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }
}

/// What the workers do for the scenario's fault.
fn worker_fault(fault: Option<&Fault>, workers: u64, worker: u64) -> WorkerFault {
    let Some(f) = fault else {
        return WorkerFault::default();
    };
    let (away_min_ms, away_max_ms) = f.away_ms();
    let attackers = f.connections();
    match f.kind {
        FaultKind::Restart => WorkerFault {
            reconnect: true,
            ..WorkerFault::default()
        },
        FaultKind::Churn => WorkerFault {
            churn_rate: f.rate(),
            churn_reset_fraction: f.reset_fraction(),
            away_min_ms,
            away_max_ms,
            ..WorkerFault::default()
        },
        FaultKind::Slow => WorkerFault {
            slow_every: if f.fraction() > 0.0 {
                (1.0 / f.fraction()).round().max(1.0) as u64
            } else {
                0
            },
            ..WorkerFault::default()
        },
        FaultKind::Slowloris => WorkerFault {
            // Spread over the workers, the first ones taking the remainder.
            attackers: (attackers / workers + u64::from(worker < attackers % workers)) as usize,
            byte_interval_ms: f.byte_interval_ms(),
            attack_path: "/sub/loris?transport=sse".into(),
            ..WorkerFault::default()
        },
        FaultKind::Disconnect => WorkerFault::default(),
    }
}

/// The disconnect storm: every worker closes its subscribers at once; the
/// server is watched (its /proc figures, then its `/stats`) every 100 ms
/// until `recover_secs` and 3 s more have passed.
fn storm(
    f: &Fault,
    workers: &mut [WorkerProc],
    server: &Server,
    baseline: (&Sample, &serde_json::Value),
    before: (&Sample, Option<&serde_json::Value>),
    fr: &mut FaultResult,
) {
    let Some(pid) = server.pid else {
        return;
    };
    let mut sampler = Sampler::new(pid, false);
    send_control(workers, &Control::Disconnect { reset: f.reset() });
    let t0 = Instant::now();
    let observe = Duration::from_secs_f64(f.recover_secs() + 3.0);
    // (seconds, rss, fds, threads, subscribers, connections)
    let mut series: Vec<(f64, [f64; 5])> = Vec::new();
    while t0.elapsed() < observe {
        // /proc first: the /stats connection of the round before is closed by now.
        let sample = sampler.sample().ok();
        let st = stats(server.publish_addr, Duration::from_secs(2));
        if let (Some(p), Some(st)) = (sample, st) {
            series.push((
                t0.elapsed().as_secs_f64(),
                [
                    p.rss as f64,
                    p.fds as f64,
                    p.threads as f64,
                    st["subscribers"].as_f64().unwrap_or(f64::NAN),
                    st["connections"].as_f64().unwrap_or(f64::NAN),
                ],
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let base = [
        baseline.0.rss as f64,
        baseline.0.fds as f64,
        baseline.0.threads as f64,
        baseline.1["subscribers"].as_f64().unwrap_or(0.0),
        baseline.1["connections"].as_f64().unwrap_or(0.0),
    ];
    let pre = [
        before.0.rss as f64,
        before.0.fds as f64,
        before.0.threads as f64,
        before
            .1
            .and_then(|v| v["subscribers"].as_f64())
            .unwrap_or(f64::NAN),
        before
            .1
            .and_then(|v| v["connections"].as_f64())
            .unwrap_or(f64::NAN),
    ];
    for (i, metric) in ["rss", "fds", "threads", "subscribers", "connections"]
        .iter()
        .enumerate()
    {
        // Counts are whole: 5% of 11 fds allows none.
        let allowed = if *metric == "rss" {
            base[i] * f.tolerance()
        } else {
            (base[i] * f.tolerance()).floor()
        };
        let within = |v: f64| (v - base[i]).abs() <= allowed;
        // Back for good: the first sample from which every later one is within.
        let back = series
            .iter()
            .rposition(|(_, v)| !within(v[i]))
            .map_or(0, |last_out| last_out + 1);
        fr.recovery.push(Recovery {
            metric: metric.to_string(),
            baseline: base[i],
            before: pre[i],
            after: series.last().map_or(f64::NAN, |(_, v)| v[i]),
            allowed,
            secs: series.get(back).map(|(t, _)| *t),
        });
    }
}

/// New connections to `addr` during an attack, one a second until `stop`:
/// the time each took to get a whole `/stats` answer, or None.
fn probe_loop(addr: SocketAddr, stop: Arc<AtomicBool>, limit: Duration) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let answered = stats(addr, limit).is_some();
        out.push(answered.then(|| t.elapsed().as_secs_f64() * 1000.0));
        if let Some(rest) = Duration::from_secs(1).checked_sub(t.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    out
}

/// Stops the server as the restart fault says and starts it again on the
/// same ports; the new server, or why there is none.
#[allow(clippy::too_many_arguments)]
fn restart_server(
    f: &Fault,
    server: &mut Server,
    exe: &Path,
    name: &str,
    args: &[String],
    log: PathBuf,
    at_secs: f64,
) -> (Restart, Result<Server>) {
    let mut r = Restart {
        signal: match f.signal() {
            StopSignal::Term => "term".into(),
            StopSignal::Kill => "kill".into(),
        },
        at_secs,
        old_pid: server.pid,
        ..Restart::default()
    };
    let t = Instant::now();
    if let Some(child) = server.child.as_mut() {
        let sig = match f.signal() {
            StopSignal::Term => libc::SIGTERM,
            StopSignal::Kill => libc::SIGKILL,
        };
        // SAFETY: kill sends a signal to our own child, not yet reaped.
        unsafe { libc::kill(child.id() as i32, sig) };
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    use std::os::unix::process::ExitStatusExt;
                    let expected = match f.signal() {
                        StopSignal::Term => status.success(),
                        StopSignal::Kill => status.signal() == Some(libc::SIGKILL),
                    };
                    if !expected {
                        r.exit = Some(describe_exit(status, &server.log));
                    }
                    break;
                }
                _ if Instant::now() > end => {
                    let _ = child.kill();
                    let _ = child.wait();
                    r.exit = Some("did not stop within 10 s: killed".into());
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        server.child = None;
    }
    r.stop_secs = t.elapsed().as_secs_f64();
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(f.downtime_secs()));
    let publish_port = (server.publish_addr != server.addr).then(|| server.publish_addr.port());
    let new = start_server_on(exe, name, args, server.addr.port(), publish_port, log);
    r.down_secs = down.elapsed().as_secs_f64();
    if let Ok(n) = &new {
        r.new_pid = n.pid;
    }
    (r, new)
}

/// Sums the workers' fault counts and histograms into `fr`.
fn merge_fault_counts(fr: &mut FaultResult, workers: &[WorkerProc]) -> Result<()> {
    let mut reconnect = hist::new_histogram();
    let mut life = hist::new_histogram();
    let mut t = FaultCounts::default();
    for r in workers.iter().filter_map(|w| w.report.as_ref()) {
        let f = &r.fault;
        t.storm_closed += f.storm_closed;
        t.churned += f.churned;
        t.churned_reset += f.churned_reset;
        t.server_drops += f.server_drops;
        t.reconnect_attempts += f.reconnect_attempts;
        t.reconnect_failures += f.reconnect_failures;
        t.reconnects += f.reconnects;
        t.away_at_end += f.away_at_end;
        t.slow += f.slow;
        t.slow_dropped += f.slow_dropped;
        t.attackers_started += f.attackers_started;
        t.attackers_closed += f.attackers_closed;
        t.attackers_408 += f.attackers_408;
        t.attackers_other_answer += f.attackers_other_answer;
        t.attackers_refused += f.attackers_refused;
        t.attackers_open_at_stop += f.attackers_open_at_stop;
        t.attacker_oldest_at_stop_us = t
            .attacker_oldest_at_stop_us
            .max(f.attacker_oldest_at_stop_us);
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

/// Checks the fault's pass line against what the case measured.
fn judge(f: &Fault, case: &Case, fr: &mut FaultResult) {
    let mut checks = Vec::new();
    let mut check = |what: &str, passed: bool, detail: String| {
        checks.push(Check {
            what: what.into(),
            passed,
            detail,
        })
    };
    let c = &fr.counts;
    let d = &case.delivery;
    let failed: u64 = case.connections.failed.values().sum();
    let clean = |check: &mut dyn FnMut(&str, bool, String)| {
        check(
            "every id arrived exactly once or was reported missed",
            d.lost == 0 && d.duplicates == 0 && d.out_of_order == 0 && d.protocol_errors == 0,
            format!(
                "{} received of {} due, {} lost silently, {} duplicates, {} out of order, {} protocol errors, {} reported missed",
                d.received, d.expected, d.lost, d.duplicates, d.out_of_order, d.protocol_errors, d.missed_reported
            ),
        );
    };
    let all_delivered = |check: &mut dyn FnMut(&str, bool, String), what: &str| {
        check(
            what,
            d.expected > 0
                && d.received >= d.expected
                && failed == 0
                && case.connections.disconnects == 0,
            format!(
                "{} of {} delivered, {} disconnected, {failed} failed",
                d.received, d.expected, case.connections.disconnects
            ),
        );
    };
    match f.kind {
        FaultKind::Disconnect => {
            let subscribed = case.connections.subscribed;
            check(
                "every subscriber closed at once",
                c.storm_closed > 0 && c.storm_closed >= subscribed,
                format!(
                    "{} closed ({}) of {subscribed} subscribed",
                    c.storm_closed,
                    if f.reset() { "RST" } else { "FIN" }
                ),
            );
            for r in &fr.recovery {
                let ok = r.secs.is_some_and(|s| s <= f.recover_secs());
                check(
                    &format!("{} back within {} s", r.metric, f.recover_secs()),
                    ok,
                    format!(
                        "baseline {}, before {}, after {} (allowed ±{:.0}); back after {}",
                        r.baseline,
                        r.before,
                        r.after,
                        r.allowed,
                        r.secs.map_or("never".into(), |s| format!("{s:.1} s"))
                    ),
                );
            }
        }
        FaultKind::Churn => {
            check(
                "subscribers were churned",
                c.churned > 0,
                format!(
                    "{} dropped ({} with RST), {} back",
                    c.churned, c.churned_reset, c.reconnects
                ),
            );
            check(
                "every churned subscriber came back",
                c.away_at_end == 0 && failed == 0,
                format!("{} still away, {failed} connects failed", c.away_at_end),
            );
            clean(&mut check);
        }
        FaultKind::Slow => {
            check(
                "every slow subscriber was dropped",
                c.slow > 0 && c.slow_dropped == c.slow,
                format!(
                    "{} of {} slow subscribers found closed; server dropped_slow {}",
                    c.slow_dropped,
                    c.slow,
                    fr.server_dropped_slow.map_or("-".into(), |n| n.to_string())
                ),
            );
            let growth = fr.rss_growth.unwrap_or(i64::MAX);
            check(
                &format!("server RSS grew at most {} MiB", f.max_rss_growth_mib()),
                (growth as f64) <= f.max_rss_growth_mib() * 1024.0 * 1024.0,
                format!(
                    "peak RSS {:.1} MiB over baseline",
                    growth as f64 / 1048576.0
                ),
            );
            all_delivered(&mut check, "healthy subscribers got everything");
            clean(&mut check);
        }
        FaultKind::Slowloris => {
            let max_life = f.max_life_secs() * 1e6;
            let life = fr.attacker_life_us.as_ref();
            check(
                &format!("every attacker closed within {} s", f.max_life_secs()),
                c.attackers_closed > 0
                    && life.is_some_and(|l| (l.max as f64) <= max_life)
                    && (c.attacker_oldest_at_stop_us as f64) <= max_life,
                format!(
                    "{} closed by the server ({} with 408), {} refused, life p50 {:.1} s max {:.1} s; {} open at the end, oldest {:.1} s",
                    c.attackers_closed,
                    c.attackers_408,
                    c.attackers_refused,
                    life.map_or(0.0, |l| l.p50 as f64 / 1e6),
                    life.map_or(0.0, |l| l.max as f64 / 1e6),
                    c.attackers_open_at_stop,
                    c.attacker_oldest_at_stop_us as f64 / 1e6
                ),
            );
            let probe = fr.probe.clone().unwrap_or_default();
            check(
                &format!("new connections answered within {} s", f.max_life_secs()),
                probe.tried > 0
                    && probe.answered == probe.tried
                    && probe.max_ms <= f.max_life_secs() * 1000.0,
                format!(
                    "{} of {} answered, p50 {:.1} ms, max {:.1} ms",
                    probe.answered, probe.tried, probe.p50_ms, probe.max_ms
                ),
            );
            all_delivered(&mut check, "subscribers got everything");
            clean(&mut check);
        }
        FaultKind::Restart => {
            let r = fr.restart.clone().unwrap_or_default();
            check(
                "the server came back",
                r.new_pid.is_some() && r.exit.is_none(),
                format!(
                    "stopped ({}) in {:.2} s, listening again {:.2} s later{}",
                    r.signal,
                    r.stop_secs,
                    r.down_secs,
                    r.exit
                        .as_deref()
                        .map(|e| format!("; {e}"))
                        .unwrap_or_default()
                ),
            );
            let max = fr.reconnect_us.as_ref().map_or(0, |s| s.max) as f64 / 1e6;
            check(
                &format!("every subscriber back within {} s", f.max_reconnect_secs()),
                c.away_at_end == 0
                    && c.server_drops > 0
                    && c.reconnects >= c.server_drops
                    && max <= f.max_reconnect_secs(),
                format!(
                    "{} dropped, {} back (p50 {:.2} s, max {max:.2} s from the drop), {} still away; all back {} after the new server listened",
                    c.server_drops,
                    c.reconnects,
                    fr.reconnect_us.as_ref().map_or(0, |s| s.p50) as f64 / 1e6,
                    c.away_at_end,
                    r.all_back_secs.map_or("never".into(), |s| format!("{s:.2} s"))
                ),
            );
            check(
                "no duplicates, no disorder",
                d.duplicates == 0 && d.out_of_order == 0 && d.protocol_errors == 0,
                format!(
                    "{} duplicates, {} out of order, {} protocol errors; {} deliveries lost across the restart ({} publishes failed while it was down)",
                    d.duplicates, d.out_of_order, d.protocol_errors, d.lost, r.publishes_failed
                ),
            );
        }
    }
    fr.passed = checks.iter().all(|c| c.passed);
    fr.checks = checks;
}

fn run_case(
    args: &RunArgs,
    dir: &Path,
    target: &Target,
    transport: Transport,
    step: u64,
    samples_file: &Arc<Mutex<File>>,
) -> Result<Case> {
    let s = &args.scenario;
    let t_case = Instant::now();
    let label = format!("{}-{}-{}", target.label(), transport.name(), step);
    let mut case = Case {
        target: target.label(),
        kind: target.kind().into(),
        transport: transport.name().into(),
        step,
        status: "ok".into(),
        notes: target.notes(transport),
        ..Case::default()
    };
    // A transport the peer does not have is said, not run.
    if let Target::Peer(p) = target {
        if p.transport(transport).is_none() {
            case.status = "skipped".into();
            case.connections.requested = step;
            return Ok(case);
        }
    }
    // The server.
    let (mut server, sub_path, pub_path) = match target {
        Target::Dispatcher { name, args: a } => {
            case.args = a.clone();
            let srv = start_server(
                &args.exe,
                name,
                a,
                s.publish_listen,
                dir.join(format!("{label}.server.log")),
            )?;
            (
                srv,
                "/sub/{channel}?transport={transport}".to_string(),
                "/pub/{channel}".to_string(),
            )
        }
        Target::Peer(p) => {
            let scripts = peers::scripts_dir(&args.exe)?;
            let settings = peers::Settings::from_server_args(&s.server_args);
            case.args = vec![
                format!("HEARTBEAT={}", settings.heartbeat),
                format!("POLL_TIMEOUT={}", settings.poll_timeout),
            ];
            let port = free_port()?;
            let publish_port = if p.own_publish_port || s.publish_listen {
                let mut q = free_port()?;
                while q == port {
                    q = free_port()?;
                }
                q
            } else {
                port
            };
            let log = dir.join(format!("{label}.server.log"));
            let started = peers::start(p, &scripts, port, publish_port, settings, &log)?;
            let srv = Server {
                pid: Some(started.pid),
                child: Some(started.child),
                addr: started.addr,
                publish_addr: started.publish_addr,
                log,
                group: true,
            };
            (
                srv,
                p.subscribe_path.to_string(),
                p.publish_path.to_string(),
            )
        }
        Target::External(e) => {
            let srv = Server {
                child: None,
                addr: e.addr,
                publish_addr: e.addr,
                pid: e.pid,
                log: PathBuf::new(),
                group: false,
            };
            (srv, e.subscribe_path.clone(), e.publish_path.clone())
        }
    };
    case.server.pid = server.pid;
    let ours = matches!(target, Target::Dispatcher { .. });
    let started_here = !matches!(target, Target::External(_));
    let fault = s.fault.as_ref();
    let kind = fault.map(|f| f.kind);
    let (dialect, mut ids, format) = match target {
        Target::Peer(p) => (p.dialect, p.ids, p.publish_format(transport)),
        _ => (Dialect::Comet, IdCheck::Server, PublishFormat::Body),
    };
    if kind == Some(FaultKind::Restart) {
        // The new server counts ids from 1 again: continuity across the
        // restart is checked by the publisher's sequence.
        ids = IdCheck::Sequence;
    }
    // A peer may only keep up with a slower ramp; said in the notes.
    let ramp_rate = match target {
        Target::Peer(p) => match p.ramp_cap(s.ramp.rate) {
            Some((rate, note)) => {
                case.notes.push(note);
                rate
            }
            None => s.ramp.rate,
        },
        _ => s.ramp.rate,
    };
    // The sampler, in a cgroup of the server's own where the machine allows.
    // A dispatcher is one process; a peer, the whole tree under the root its
    // script named (the nginx master, the pushpin runner).
    let mut sampler_thread = server.pid.map(|pid| {
        let mut sampler = Sampler::new(pid, !ours);
        if started_here {
            if let Ok(cg) = Cgroup::create(&format!("{}-{label}", std::process::id())) {
                // A peer is already running: move every process of its tree
                // (what they allocate from now on is charged to the cgroup;
                // the baseline is taken after this).
                let pids = sampler.pids().unwrap_or_else(|_| vec![pid]);
                if pids.iter().all(|&p| cg.add_pid(p).is_ok()) {
                    sampler.attach_cgroup(cg);
                }
            }
        }
        SamplerThread::start(
            sampler,
            Duration::from_millis(s.sample_interval_ms),
            samples_file.clone(),
            label.clone(),
        )
    });
    if kind == Some(FaultKind::Disconnect) && case.failure.is_none() {
        // The storm is judged against a server that has served: a few
        // subscribers come and go first, so that the baseline holds the code
        // pages and buffers any serving touches once. What must come back is
        // what the step's connections held.
        let n = (step / 100).clamp(10, 100) as usize;
        let path = sub_path
            .replace("{channel}", "warmup")
            .replace("{transport}", transport.name());
        warm_up(server.addr, &path, n);
        case.notes.push(format!(
            "the baseline was taken after a warm-up round of {n} subscribers that came and went"
        ));
        // Housekeeping (trimming) runs about once a second.
        std::thread::sleep(Duration::from_millis(1500));
    }
    std::thread::sleep(Duration::from_secs_f64(s.warmup_secs));
    let sample_now = |st: &Option<SamplerThread>| -> Option<Sample> {
        st.as_ref()
            .and_then(|t| t.samples.lock().unwrap().last().map(|(_, s)| s.clone()))
    };
    // Wait for the first sample after warm-up.
    std::thread::sleep(Duration::from_millis(s.sample_interval_ms.min(500)));
    case.server.baseline = sample_now(&sampler_thread);
    // The disconnect storm compares /stats with what it said before any connection.
    let stats_baseline = match kind {
        Some(FaultKind::Disconnect) if ours => stats(server.publish_addr, Duration::from_secs(5)),
        _ => None,
    };
    let mut fr = fault.map(|f| FaultResult {
        kind: f.kind.name().into(),
        ..FaultResult::default()
    });
    if let Some(t) = &sampler_thread {
        t.set_phase("ramp");
    }

    // Workers.
    let workers_n = step.div_ceil(PER_WORKER).max(1);
    case.loadgen.workers = workers_n;
    let epoch_ns = mono_ns();
    let channels = match s.publish.pattern {
        Pattern::PerUser => Channels::PerUser("u".into()),
        _ => Channels::Broadcast("bc".into()),
    };
    let (tx, rx) = mpsc::channel();
    let mut workers = Vec::new();
    let mut first = 0u64;
    for w in 0..workers_n {
        let count = (step - first).min(step.div_ceil(workers_n));
        let sources = (0..4)
            .map(|i| {
                IpAddr::V4(Ipv4Addr::new(
                    127,
                    1 + (w / 60) as u8,
                    (w % 60) as u8 * 4 + i,
                    2,
                ))
            })
            .collect();
        let plan = Plan {
            worker: w as usize,
            target: server.addr,
            sources,
            path: sub_path.clone(),
            since_param: "since".into(),
            dialect,
            ids,
            retry_5xx: if matches!(target, Target::Peer(_)) {
                PEER_RETRIES
            } else {
                0
            },
            transport: transport.name().into(),
            count: count as usize,
            first_index: first as usize,
            channels: channels.clone(),
            rate: ramp_rate / workers_n as f64,
            in_flight: (s.ramp.in_flight / workers_n as usize).max(1),
            connect_timeout_ms: 10_000,
            epoch_ns,
            interval_ms: 1000,
            fault: worker_fault(fault, workers_n, w),
        };
        workers.push(spawn_worker(&args.exe, &plan, tx.clone())?);
        first += count;
    }
    drop(tx);
    let collect =
        |workers: &mut Vec<WorkerProc>, rx: &mpsc::Receiver<(usize, WorkerMsg)>, wait: Duration| {
            if let Ok((w, m)) = rx.recv_timeout(wait) {
                match m {
                    WorkerMsg::Progress(p) => workers[w].progress = p,
                    WorkerMsg::Report(r) => workers[w].report = Some(*r),
                }
            }
        };

    // Ramp: until every connection is up or failed, and answers have had time to come.
    let pb = bar(step, "ramp").with_prefix(label.clone());
    let t_ramp = Instant::now();
    let ramp_budget = Duration::from_secs_f64(step as f64 / ramp_rate) + Duration::from_secs(20);
    let mut settled_since: Option<Instant> = None;
    loop {
        collect(&mut workers, &rx, Duration::from_millis(100));
        let (connected, subscribed, failed, pending): (u64, u64, u64, u64) =
            workers.iter().fold((0, 0, 0, 0), |a, w| {
                let p = &w.progress;
                (
                    a.0 + p.connected,
                    a.1 + p.subscribed,
                    a.2 + p.failed,
                    a.3 + p.pending,
                )
            });
        pb.set_position(subscribed + failed);
        if let Some(why) = server.exit_status() {
            case.failure = Some(why);
            break;
        }
        if connected + failed >= step {
            // Everything connected or failed; unanswered subscribes get a grace period.
            if pending == 0 {
                break;
            }
            let since = *settled_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
        if t_ramp.elapsed() > ramp_budget {
            break;
        }
    }
    pb.finish_and_clear();
    case.connections.ramp_secs = t_ramp.elapsed().as_secs_f64();
    if ours && case.failure.is_none() {
        case.connections.server_subscribers = stats_subscribers(server.publish_addr);
    }

    // Hold.
    if let Some(t) = &sampler_thread {
        t.set_phase("hold");
    }
    if kind == Some(FaultKind::Slowloris) && case.failure.is_none() {
        send_control(&mut workers, &Control::Attack(true));
    }
    if case.failure.is_none() {
        let pb = bar((s.hold_secs * 10.0) as u64, "hold").with_prefix(label.clone());
        let t_hold = Instant::now();
        while t_hold.elapsed().as_secs_f64() < s.hold_secs {
            collect(&mut workers, &rx, Duration::from_millis(100));
            pb.set_position((t_hold.elapsed().as_secs_f64() * 10.0) as u64);
            if let Some(why) = server.exit_status() {
                case.failure = Some(why);
                break;
            }
        }
        pb.finish_and_clear();
    }
    case.server.at_step = sample_now(&sampler_thread);

    // The disconnect storm, watched until the server is back (or not).
    if let (Some(f), Some(fr)) = (fault, fr.as_mut()) {
        if f.kind == FaultKind::Disconnect && case.failure.is_none() {
            if let Some(t) = &sampler_thread {
                t.set_phase("storm");
            }
            let before_stats = stats(server.publish_addr, Duration::from_secs(5));
            match (&case.server.baseline, &case.server.at_step, &stats_baseline) {
                (Some(base), Some(at), Some(sb)) => storm(
                    f,
                    &mut workers,
                    &server,
                    (base, sb),
                    (at, before_stats.as_ref()),
                    fr,
                ),
                _ => {
                    send_control(&mut workers, &Control::Disconnect { reset: f.reset() });
                    case.notes.push(
                        "the disconnect storm was not watched: no baseline sample or /stats of the server".into(),
                    );
                }
            }
        }
    }

    // Publish.
    let mut finish = Finish::default();
    let mut cpu_before = None;
    if s.publish.pattern != Pattern::None && case.failure.is_none() {
        if let Some(t) = &sampler_thread {
            t.set_phase("publish");
        }
        cpu_before = Some((
            sample_now(&sampler_thread),
            workers_cpu(&workers) + total_cpu(self_cpu()),
        ));
        let plan = PublishPlan {
            target: server.publish_addr,
            path: pub_path.clone(),
            token: None,
            channels: channels.clone(),
            users: step as usize,
            rate: s.publish.rate,
            size: s.publish.size,
            duration: Duration::from_secs_f64(s.publish.duration_secs),
            connections: 4,
            // Short while a restart refuses publishes, so the schedule goes on.
            timeout: Duration::from_secs(if kind == Some(FaultKind::Restart) {
                1
            } else {
                5
            }),
            format,
            ordered: ids == IdCheck::Sequence,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let total = ((plan.rate * plan.duration.as_secs_f64()).floor() as u64).max(1);
        let pb = bar(total, "publish").with_prefix(label.clone());
        if kind == Some(FaultKind::Churn) {
            send_control(&mut workers, &Control::Churn(true));
        }
        let probe = match (kind, fault) {
            (Some(FaultKind::Slowloris), Some(f)) => {
                let stop = stop.clone();
                let addr = server.addr;
                let limit = Duration::from_secs_f64(f.max_life_secs() * 2.0);
                Some((
                    stop.clone(),
                    std::thread::spawn(move || probe_loop(addr, stop, limit)),
                ))
            }
            _ => None,
        };
        let t_publish = Instant::now();
        let handle = {
            let stop = stop.clone();
            std::thread::spawn(move || publisher::run(&plan, &stop))
        };
        let mut deadline = Instant::now()
            + Duration::from_secs_f64(s.publish.duration_secs + s.publish.drain_secs + 10.0);
        let mut restarted_at: Option<Instant> = None;
        let mut all_back: Option<f64> = None;
        while !handle.is_finished() {
            collect(&mut workers, &rx, Duration::from_millis(100));
            let received: u64 = workers.iter().map(|w| w.progress.received).sum();
            pb.set_position(received / step.max(1));
            if Instant::now() > deadline {
                stop.store(true, Ordering::Relaxed);
            }
            if let (Some(f), Target::Dispatcher { name, args: a }) = (fault, target) {
                let at = t_publish.elapsed().as_secs_f64();
                if f.kind == FaultKind::Restart && restarted_at.is_none() && at >= f.at_secs() {
                    if let Some(t) = &sampler_thread {
                        t.set_phase("restart");
                    }
                    let log = server.log.clone();
                    let (r, new) = restart_server(f, &mut server, &args.exe, name, a, log, at);
                    restarted_at = Some(Instant::now());
                    deadline += Duration::from_secs_f64(r.stop_secs + r.down_secs);
                    match new {
                        Ok(new) => {
                            // Sample the new process from now on; what was
                            // sampled of the old one is kept.
                            if let (Some(old), Some(pid)) = (sampler_thread.take(), new.pid) {
                                let kept = old.samples.lock().unwrap().clone();
                                drop(old.finish());
                                let t = SamplerThread::start(
                                    Sampler::new(pid, false),
                                    Duration::from_millis(s.sample_interval_ms),
                                    samples_file.clone(),
                                    label.clone(),
                                );
                                t.set_phase("publish");
                                t.samples.lock().unwrap().splice(0..0, kept);
                                sampler_thread = Some(t);
                            }
                            server = new;
                            case.server.pid = server.pid;
                        }
                        Err(e) => {
                            case.failure = Some(format!("the server did not start again: {e:#}"));
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    if let Some(fr) = fr.as_mut() {
                        fr.restart = Some(r);
                    }
                }
            }
            if let Some(t) = restarted_at.filter(|_| all_back.is_none()) {
                let open: u64 = workers.iter().map(|w| w.progress.open).sum();
                let away: u64 = workers.iter().map(|w| w.progress.away).sum();
                if away == 0
                    && open >= case.connections.subscribed
                    && t.elapsed() > Duration::from_millis(500)
                {
                    all_back = Some(t.elapsed().as_secs_f64());
                }
            }
        }
        pb.finish_and_clear();
        let report = handle.join().unwrap_or_default();
        if kind == Some(FaultKind::Churn) {
            send_control(&mut workers, &Control::Churn(false));
        }
        // Subscribers away (churned, or not yet back after a restart) come back
        // before the end is taken.
        if matches!(kind, Some(FaultKind::Churn | FaultKind::Restart)) {
            let t_back = Instant::now();
            let limit = fault.map_or(10.0, |f| f.max_reconnect_secs().max(10.0));
            // Progress lines come every 250 ms: wait for fresh ones.
            let mut fresh = 0;
            while t_back.elapsed().as_secs_f64() < limit {
                collect(&mut workers, &rx, Duration::from_millis(100));
                let away: u64 = workers.iter().map(|w| w.progress.away).sum();
                let open: u64 = workers.iter().map(|w| w.progress.open).sum();
                if away == 0 && open >= case.connections.subscribed {
                    fresh += 1;
                    if fresh >= 5 {
                        break;
                    }
                } else {
                    fresh = 0;
                }
            }
            if let (Some(t), None) = (restarted_at, all_back) {
                let away: u64 = workers.iter().map(|w| w.progress.away).sum();
                if away == 0 {
                    all_back = Some(t.elapsed().as_secs_f64());
                }
            }
        }
        // Let deliveries in flight arrive.
        let t_drain = Instant::now();
        while t_drain.elapsed().as_secs_f64() < s.publish.drain_secs {
            collect(&mut workers, &rx, Duration::from_millis(100));
        }
        if let Some((stop, h)) = probe {
            stop.store(true, Ordering::Relaxed);
            let times = h.join().unwrap_or_default();
            let mut ok: Vec<f64> = times.iter().flatten().copied().collect();
            ok.sort_by(f64::total_cmp);
            if let Some(fr) = fr.as_mut() {
                fr.probe = Some(Probe {
                    tried: times.len() as u64,
                    answered: ok.len() as u64,
                    p50_ms: ok.get(ok.len() / 2).copied().unwrap_or(0.0),
                    max_ms: ok.last().copied().unwrap_or(0.0),
                });
            }
        }
        if kind == Some(FaultKind::Restart) {
            finish.expect = report.last_seqs.clone();
            finish.excused = report
                .failed_seqs
                .iter()
                .map(|(c, v)| {
                    let mut v = v.clone();
                    v.sort_unstable();
                    (c.clone(), v)
                })
                .collect();
            if let Some(r) = fr.as_mut().and_then(|fr| fr.restart.as_mut()) {
                r.all_back_secs = all_back;
                r.publishes_failed = report.failed.values().sum();
            }
        } else {
            finish.expect = report.last_ids.clone();
        }
        case.publish = Some(report);
    }
    if kind == Some(FaultKind::Slowloris) {
        send_control(&mut workers, &Control::Attack(false));
    }
    let cpu_after = (
        sample_now(&sampler_thread),
        workers_cpu(&workers) + total_cpu(self_cpu()),
    );

    // Collect the workers' reports.
    send_control(&mut workers, &Control::Finish(finish));
    let t_collect = Instant::now();
    while workers.iter().any(|w| w.report.is_none())
        && t_collect.elapsed() < Duration::from_secs(30)
    {
        collect(&mut workers, &rx, Duration::from_millis(100));
    }
    for w in workers.iter_mut() {
        w.stdin.take();
        let _ = w.child.kill();
        let _ = w.child.wait();
    }
    if let Some(t) = &sampler_thread {
        t.set_phase("end");
    }
    let end_stats = match kind {
        Some(FaultKind::Slow) if ours => stats(server.publish_addr, Duration::from_secs(5)),
        _ => None,
    };
    case.server.exit = server.stop();
    if case.failure.is_none() {
        if let Some(why) = &case.server.exit {
            case.failure = Some(why.clone());
        }
    }
    let samples = sampler_thread
        .map(|t| {
            let v = t.samples.lock().unwrap().clone();
            drop(t.finish());
            v
        })
        .unwrap_or_default();
    merge_reports(&mut case, &workers, dir, &label, epoch_ns)?;
    if case.connections.retried > 0 {
        case.notes.push(format!(
            "{} answers 500-503 to subscribes were retried on the same connection {} ms later (at most {PEER_RETRIES} per connection), as browsers' clients retry: connections.retried",
            case.connections.retried,
            crate::worker::RETRY_DELAY_NS / 1_000_000
        ));
    }
    summarise_server(&mut case, &samples, cpu_before, cpu_after);
    if let (Some(f), Some(mut fr)) = (fault, fr) {
        merge_fault_counts(&mut fr, &workers)?;
        if f.kind == FaultKind::Disconnect {
            // The storm closed them: what the server held is what was closed.
            case.connections.held = case.connections.held.max(fr.counts.storm_closed);
        }
        if f.kind == FaultKind::Slow {
            fr.server_dropped_slow = end_stats.as_ref().and_then(|v| v["dropped_slow"].as_u64());
            if let Some(b) = &case.server.baseline {
                fr.rss_growth = Some(case.server.peak_rss as i64 - b.rss as i64);
            }
        }
        if let Some(r) = fr.restart.as_mut() {
            r.lost = case.delivery.lost;
            case.notes.push(format!(
                "the backlog lives in the server's memory: what the old server held and had not delivered is gone with it ({} deliveries lost across the restart); a subscriber resuming with an id of the old server is given the new server's whole backlog",
                r.lost
            ));
        }
        judge(f, &case, &mut fr);
        if !fr.passed && case.failure.is_none() {
            let broken: Vec<String> = fr
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("{} ({})", c.what, c.detail))
                .collect();
            case.failure = Some(format!("fault pass line: {}", broken.join("; ")));
        }
        case.fault = Some(fr);
    }
    if workers.iter().any(|w| w.report.is_none()) {
        case.failure
            .get_or_insert_with(|| "a load generator worker did not report".into());
    }
    let failed: u64 = case.connections.failed.values().sum();
    if case.failure.is_none() && failed > 0 {
        let mut causes: Vec<_> = case.connections.failed.iter().collect();
        causes.sort_by(|a, b| b.1.cmp(a.1));
        let what: Vec<String> = causes.iter().map(|(k, v)| format!("{v} {k}")).collect();
        case.failure = Some(format!(
            "{failed} of {step} connections failed ({})",
            what.join(", ")
        ));
    }
    // A long-poll counts as subscribed once its request is out; the server's
    // own count tells whether it was taken up.
    let c = &mut case.connections;
    if let Some(n) = c.server_subscribers {
        c.waiting = c.waiting.max(c.subscribed.saturating_sub(n));
    }
    if case.failure.is_none() && c.waiting > 0 {
        case.failure = Some(format!(
            "{} of {step} connections were accepted but never served",
            c.waiting
        ));
    }
    if case.failure.is_some() {
        case.status = "failed".into();
    }
    case.duration_secs = t_case.elapsed().as_secs_f64();
    Ok(case)
}

fn total_cpu((u, s): (f64, f64)) -> f64 {
    u + s
}

fn workers_cpu(workers: &[WorkerProc]) -> f64 {
    workers
        .iter()
        .filter_map(|w| Sampler::new(w.child.id(), false).sample().ok())
        .map(|s| s.cpu_user + s.cpu_sys)
        .sum()
}

fn merge_reports(
    case: &mut Case,
    workers: &[WorkerProc],
    dir: &Path,
    label: &str,
    epoch_ns: u64,
) -> Result<()> {
    let mut connect = hist::new_histogram();
    let mut latency = hist::new_histogram();
    let mut latency_raw = hist::new_histogram();
    let mut intervals: HashMap<u64, (hdrhistogram::Histogram<u64>, hdrhistogram::Histogram<u64>)> =
        HashMap::new();
    let c = &mut case.connections;
    let d = &mut case.delivery;
    let wire = &mut case.wire;
    c.requested = case.step;
    for r in workers.iter().filter_map(|w| w.report.as_ref()) {
        c.connected += r.connected;
        c.subscribed += r.subscribed;
        c.held += r.open;
        c.disconnects += r.disconnects;
        for (k, v) in &r.failed {
            *c.failed.entry(k.clone()).or_default() += v;
        }
        c.retried += r.retried;
        d.expected += r.expected;
        d.received += r.received;
        d.lost += r.lost;
        d.duplicates += r.duplicates;
        d.out_of_order += r.out_of_order;
        d.missed_reported += r.missed_reported;
        d.protocol_errors += r.protocol_errors;
        d.unstamped += r.unstamped;
        wire.bytes_total += r.bytes_total;
        wire.bytes_head += r.bytes_head;
        wire.bytes_payload += r.bytes_payload;
        wire.heartbeats += r.heartbeats;
        hist::merge(&mut connect, &hist::decode(&r.connect_us)?);
        hist::merge(&mut latency, &hist::decode(&r.latency_us)?);
        hist::merge(&mut latency_raw, &hist::decode(&r.latency_raw_us)?);
        for (i, cor, raw) in &r.intervals {
            let e = intervals
                .entry(*i)
                .or_insert_with(|| (hist::new_histogram(), hist::new_histogram()));
            hist::merge(&mut e.0, &hist::decode(cor)?);
            hist::merge(&mut e.1, &hist::decode(raw)?);
        }
    }
    c.waiting = c.connected.saturating_sub(c.subscribed + c.disconnects);
    c.connect_us = Summary::of(&connect);
    d.latency_us = Summary::of(&latency);
    d.latency_raw_us = Summary::of(&latency_raw);
    if d.expected > 0 {
        d.delivered_fraction = Some(d.received as f64 / d.expected as f64);
    }
    if d.received > 0 {
        wire.per_message_total = Some(wire.bytes_total as f64 / d.received as f64);
        wire.per_message_payload = Some(wire.bytes_payload as f64 / d.received as f64);
    }
    if !intervals.is_empty() {
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
        let name = format!("{label}.hlog");
        let start = SystemTime::now() - Duration::from_nanos(mono_ns().saturating_sub(epoch_ns));
        hist::write_log(File::create(dir.join(&name))?, start, &list)?;
        case.hlog = Some(name);
    }
    Ok(())
}

fn summarise_server(
    case: &mut Case,
    samples: &[(String, Sample)],
    cpu_before: Option<(Option<Sample>, f64)>,
    cpu_after: (Option<Sample>, f64),
) {
    let srv = &mut case.server;
    srv.peak_rss = samples.iter().map(|(_, s)| s.rss).max().unwrap_or(0);
    let conns = case.connections.held as f64;
    if let (Some(b), Some(a)) = (&srv.baseline, &srv.at_step) {
        srv.threads = a.threads;
        srv.fds = a.fds;
        srv.processes = a.processes;
        if conns > 0.0 {
            srv.rss_per_conn = Some((a.rss as f64 - b.rss as f64) / conns);
            srv.anon_pss_per_conn = Some((a.pss_anon as f64 - b.pss_anon as f64) / conns);
            if let (Some(kb), Some(ka)) = (&b.kernel, &a.kernel) {
                srv.kernel_per_conn = Some((ka.total as f64 - kb.total as f64) / conns);
                srv.kernel_source = Some(
                    serde_json::to_value(&ka.source)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                );
            }
        }
    }
    if let Some((Some(b), lg_before)) = cpu_before {
        if let Some(a) = &cpu_after.0 {
            srv.publish_cpu_user = a.cpu_user - b.cpu_user;
            srv.publish_cpu_sys = a.cpu_sys - b.cpu_sys;
        }
        let received = case.delivery.received as f64;
        if received > 0.0 {
            srv.cpu_per_delivery_us =
                Some((srv.publish_cpu_user + srv.publish_cpu_sys) * 1e6 / received);
            case.loadgen.publish_cpu = cpu_after.1 - lg_before;
            case.loadgen.cpu_per_delivery_us = Some(case.loadgen.publish_cpu * 1e6 / received);
        }
    }
}
