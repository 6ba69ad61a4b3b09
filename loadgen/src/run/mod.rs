//! The coordinator of `cometbench run`: for each target, transport and step,
//! starts the server under test as a child process, starts as many worker
//! processes as the connections need, ramps, holds, publishes, samples the
//! server, merges what the workers measured, and writes the results.
//!
//! A target that fails or hangs is recorded with its reason and killed; the
//! run goes on with the next. Targets are our dispatchers (`cometbench
//! serve`), the scenario's peers (nginx + nchan, Pushpin: see [`crate::peers`]),
//! or one external server.
//!
//! The files, in the order a case meets them: `target` (what a case is
//! pointed at), `server` (starting and stopping it), `sampling` (the sampler
//! thread), `hosts` (where the workers run: here, on hosts reached by a
//! command, or in network namespaces the run makes), `launch` (one worker
//! started, its clock measured, its plan sent), `workers` (the worker
//! processes and their merged reports),
//! `case` (one case as a value, phase by phase), `fault` (what each fault adds
//! to the phases and how it is judged), `placement` (the server and the
//! workers pinned to CPUs), `reconcile` (a publish whose answer was lost,
//! settled by what the subscribers saw), `consistency` (figures that
//! contradict each other fail the case), `repeat` (a case's repeats as one,
//! and ratios to the floor), `capacity` (stepping until the p99 bound). This
//! file holds the run around them: its checks before it starts, the repeats,
//! and the thresholds after.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

use crate::clock::{utc, Precision};
use crate::results::{self, Case, Run, ThresholdResult};
use crate::sampler;
use crate::scenario::{Fault, Scenario};

mod capacity;
mod case;
mod cluster;
mod consistency;
mod fault;
mod figures;
mod fit;
mod hosts;
mod launch;
mod placement;
mod reconcile;
mod repeat;
mod sampling;
mod server;
mod target;
mod warmup;
mod workers;

use case::{CaseRun, Shared};
use hosts::Layout;
use target::Target;

pub use placement::affinity_of;
pub use repeat::FLOOR;

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

/// The checks the machine can make before a run starts (`external`: the
/// run drives a server of its own, of unknown cost).
pub fn preflight(s: &Scenario, external: bool) -> Result<()> {
    let max = *s.steps.iter().max().unwrap_or(&0);
    hosts::preflight(s)?;
    let workers = max.div_ceil(PER_WORKER);
    if workers > 200 {
        bail!("{max} connections need {workers} worker processes; at most 200 are supported");
    }
    fit::check(s, external, workers, sampler::memory_available())
}

/// Runs the scenario and writes `results/<scenario>/<timestamp>/`.
pub fn run(args: RunArgs) -> Result<Outcome> {
    let s = &args.scenario;
    preflight(s, args.external.is_some())?;
    let started_at = utc(SystemTime::now(), Precision::Seconds);
    let dir = args
        .out_root
        .join(&s.name)
        .join(started_at.replace(':', "-"));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let samples_file = Arc::new(Mutex::new(File::create(dir.join("samples.jsonl"))?));
    let targets = Target::all(s, args.external.as_ref())?;
    if let Some(f) = &s.fault {
        check_fault_targets(f, &targets)?;
    }
    placement::set(s.placement.as_ref())?;
    if s.hosts.is_some() && args.external.is_some() {
        bail!("--target drives a server on this machine's loopback: not with hosts");
    }
    // Made once for the run; its drop removes the namespaces, whatever ends it.
    let layout = Layout::new(s)?;
    let mut run = Run {
        schema: results::SCHEMA.into(),
        scenario: serde_json::to_value(s)?,
        command_line: args.command_line.clone(),
        started_at,
        finished_at: String::new(),
        machine: sampler::machine(),
        cases: Vec::new(),
        thresholds: ThresholdResult::default(),
        placement: s.placement.clone(),
        capacity: Vec::new(),
    };
    // One server per case, or each of the scenario's node counts.
    let node_counts: Vec<Option<u64>> = match s.node_counts() {
        counts if counts.is_empty() => vec![None],
        counts => counts.into_iter().map(Some).collect(),
    };
    for target in &targets {
        for &transport in &s.transports {
            let mut capacity = capacity::Stepping::new(s, target.label(), transport.name());
            for &step in &s.steps {
                if !capacity.goes_on() {
                    break;
                }
                for &nodes in &node_counts {
                    let mut repeats = Vec::new();
                    for r in 1..=s.repeat {
                        let shared = Shared {
                            args: &args,
                            dir: &dir,
                            samples_file: &samples_file,
                            layout: &layout,
                            repeat: r,
                        };
                        let mut case = CaseRun::run(&shared, target, transport, step, nodes)
                            .unwrap_or_else(|e| {
                                let mut case = target.failed_case(transport, step, e);
                                case.cluster = nodes.map(|nodes| crate::cluster::ClusterResult {
                                    nodes,
                                    ..Default::default()
                                });
                                case
                            });
                        case.repeat = r;
                        say(&case);
                        let skipped = case.status == "skipped";
                        repeats.push(case);
                        if skipped {
                            // Nothing was run: nothing to repeat.
                            break;
                        }
                    }
                    let mut case = repeat::combine(repeats);
                    capacity.judge(&mut case);
                    run.cases.push(case);
                    write_json(&dir.join("run.json"), &run)?;
                }
            }
            run.capacity.extend(capacity.result());
        }
    }
    repeat::floor_ratios(&mut run.cases);
    run.thresholds = check_thresholds(s, &run.cases);
    run.finished_at = utc(SystemTime::now(), Precision::Seconds);
    write_json(&dir.join("run.json"), &run)?;
    Ok(Outcome { dir, run })
}

/// A fault needs servers the run starts, and our dispatchers.
fn check_fault_targets(f: &Fault, targets: &[Target]) -> Result<()> {
    if targets.iter().any(|t| matches!(t, Target::Peer(_))) {
        bail!(
            "fault \"{}\" drives our dispatchers only: leave peers out of this scenario",
            f.kind().name()
        );
    }
    if matches!(f, Fault::Restart(_)) && targets.iter().any(|t| matches!(t, Target::External(_))) {
        bail!("fault \"restart\" needs a server the run starts: not --target");
    }
    Ok(())
}

/// A case that failed or was skipped, said on stderr as it ends.
fn say(case: &Case) {
    if let Some(f) = &case.failure {
        eprintln!(
            "{} {} {}: FAILED: {f}",
            case.target, case.transport, case.step
        );
    } else if case.status == "skipped" {
        eprintln!(
            "{} {} {}: skipped ({})",
            case.target,
            case.transport,
            case.step,
            case.notes.last().map(String::as_str).unwrap_or("")
        );
    }
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
    // Every repeat is judged, and named (repeat 1 too) when there are repeats.
    let all = cases.iter().flat_map(|c| match c.repeats.as_slice() {
        [] => vec![(c, false)],
        r => r.iter().map(|c| (c, true)).collect(),
    });
    for (c, repeated) in all {
        let mut name = format!("{} {} {}", c.target, c.transport, c.step);
        if repeated {
            name.push_str(&format!(" repeat {}", c.repeat));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn case(repeat: u32, p99_ms: u64) -> Case {
        let mut c = Case {
            target: "reactor".into(),
            transport: "sse".into(),
            step: 100,
            repeat,
            ..Case::default()
        };
        c.delivery.latency_us.count = 1;
        c.delivery.latency_us.p99 = p99_ms * 1000;
        c
    }

    #[test]
    fn every_repeat_is_judged_by_its_number() {
        let text =
            "name = \"t\"\ndispatchers = [\"reactor\"]\ntransports = [\"sse\"]\nsteps = [100]\n\
                    [thresholds]\np99_ms = 150.0\n";
        let s = Scenario::from_str(text, "t.toml").unwrap();
        let mut repeated = case(1, 200);
        repeated.repeats = vec![case(1, 200), case(2, 100), case(3, 300)];
        let t = check_thresholds(&s, &[repeated, case(1, 400)]);
        assert!(!t.passed);
        assert_eq!(
            t.broken,
            [
                "reactor sse 100 repeat 1: p99 200.0 ms > 150 ms",
                "reactor sse 100 repeat 3: p99 300.0 ms > 150 ms",
                "reactor sse 100: p99 400.0 ms > 150 ms",
            ]
        );
    }
}
