//! Reading result directories and sorting their cases into groups of the same
//! kind of run, each of which feeds the charts its data allows.
//!
//! Only the documented files are read: `run.json` (schema `cometbench-run/1`,
//! `results/README.md`) and the `.hlog` latency logs it names.
//!
//! # Kinds of run
//! Runs are of the same kind when they measured the same thing: the same
//! publish pattern (or none), rate and size, the same transports, and either
//! the same single step or both a sweep of steps. Their cases are merged, so
//! that dispatchers measured in one run and peers in another are drawn side by
//! side; when two runs of one scenario measured the same target, transport
//! and step, the newer run (by `started_at`) wins. Runs of two scenarios that
//! measured the same case (one with its load from other hosts, say, and one
//! beside it) are kept apart instead: each feeds charts of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use loadgen::hist::{merge, new_histogram, read_log};
use loadgen::results::SCHEMA;

use super::results::{Case, Run};

/// One result directory, read.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub dir: PathBuf,
    pub run: Run,
}

/// A case and the directory its files are in.
#[derive(Debug, Clone)]
pub struct Entry {
    pub case: Case,
    pub dir: PathBuf,
    /// Index of its run in [`Group::runs`].
    pub run: usize,
}

/// What makes runs comparable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// `None` when nothing was published (idle).
    pub publish: Option<String>,
    /// `None` for a sweep of several steps.
    pub step: Option<u64>,
    pub transports: BTreeSet<String>,
    /// Its cases run several nodes sharing a broker.
    pub cluster: bool,
}

/// Runs of one kind and their merged cases.
#[derive(Debug, Clone)]
pub struct Group {
    pub key: Key,
    pub runs: Vec<RunDir>,
    /// Cases run (ok or failed), merged.
    pub entries: Vec<Entry>,
    /// Cases not run (`skipped`: a peer without the transport).
    pub skipped: Vec<Entry>,
}

/// Reads `dir/run.json`. Errors are one line naming the file.
pub fn load(dir: &Path) -> Result<RunDir> {
    if !dir.is_dir() {
        bail!("{}: no such directory", dir.display());
    }
    let path = dir.join("run.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let hint = newest_run_below(dir)
                .map(|d| format!(" (it holds runs: pass one, e.g. {})", d.display()))
                .unwrap_or_default();
            bail!(
                "{}: no run.json, not a cometbench result directory{hint}",
                dir.display()
            );
        }
        Err(e) => bail!("{}: {e}", path.display()),
    };
    let run: Run = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a cometbench run", path.display()))?;
    if run.schema != SCHEMA {
        bail!(
            "{}: schema {:?}, this cometbench reads {SCHEMA:?}",
            path.display(),
            run.schema
        );
    }
    Ok(RunDir {
        dir: dir.to_path_buf(),
        run,
    })
}

/// The newest `<timestamp>/run.json` directly below `dir`, if any.
pub fn newest_run_below(dir: &Path) -> Option<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("run.json").is_file())
        .collect();
    runs.sort();
    runs.pop()
}

/// The publish parameters of a run, from its scenario, as a comparable text:
/// `broadcast 1/s 64 B`, or `None` when nothing was published.
fn publish_key(rd: &RunDir) -> Option<String> {
    if rd.run.cases.iter().all(|c| c.publish.is_none()) {
        return None;
    }
    let p = rd.run.scenario.get("publish");
    let field = |k: &str| {
        p.and_then(|p| p.get(k))
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_else(|| "?".into())
    };
    Some(format!(
        "{} {}/s {} B",
        field("pattern"),
        field("rate"),
        field("size")
    ))
}

/// The scenario's name, or the directory's parent name.
pub fn scenario_name(rd: &RunDir) -> String {
    rd.run
        .scenario
        .get("name")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .or_else(|| {
            rd.dir
                .parent()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| rd.dir.display().to_string())
}

fn key_of(rd: &RunDir) -> Key {
    let steps: BTreeSet<u64> = rd
        .run
        .cases
        .iter()
        .filter(|c| !c.is_skipped())
        .map(|c| c.step)
        .collect();
    Key {
        publish: publish_key(rd),
        step: if steps.len() == 1 {
            steps.first().copied()
        } else {
            None
        },
        // A case not run (a peer without a transport) does not make another kind.
        transports: rd
            .run
            .cases
            .iter()
            .filter(|c| !c.is_skipped())
            .map(|c| c.transport.clone())
            .collect(),
        cluster: rd.run.cases.iter().any(|c| c.cluster.is_some()),
    }
}

/// Sorts runs into groups of the same kind (in the order first given) and
/// merges their cases; a newer run's case replaces an older one's, unless
/// they are runs of two scenarios (see [`rival`]).
pub fn group(runs: Vec<RunDir>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for rd in runs {
        if rd.run.cases.is_empty() {
            continue;
        }
        let key = key_of(&rd);
        let i = match groups
            .iter()
            .position(|g| g.key == key && !g.runs.iter().any(|other| rival(other, &rd)))
        {
            Some(i) => i,
            None => {
                groups.push(Group {
                    key,
                    runs: Vec::new(),
                    entries: Vec::new(),
                    skipped: Vec::new(),
                });
                groups.len() - 1
            }
        };
        groups[i].runs.push(rd);
    }
    for g in &mut groups {
        let mut order: Vec<usize> = (0..g.runs.len()).collect();
        order.sort_by(|a, b| g.runs[*a].run.started_at.cmp(&g.runs[*b].run.started_at));
        let mut by_case: BTreeMap<CaseKey, Entry> = BTreeMap::new();
        for i in order {
            let rd = &g.runs[i];
            for c in &rd.run.cases {
                by_case.insert(
                    case_key(c),
                    Entry {
                        case: c.clone(),
                        dir: rd.dir.clone(),
                        run: i,
                    },
                );
            }
        }
        let (skipped, entries) = by_case.into_values().partition(|e| e.case.is_skipped());
        g.entries = entries;
        g.skipped = skipped;
        g.entries.sort_by(|a, b| {
            super::style::target_rank(&a.case.target)
                .cmp(&super::style::target_rank(&b.case.target))
                .then(a.case.transport.cmp(&b.case.transport))
                .then(a.case.step.cmp(&b.case.step))
                .then(a.nodes().cmp(&b.nodes()))
        });
    }
    groups
}

/// What tells a case apart on a chart: target, transport, step, nodes.
type CaseKey = (String, String, u64, Option<u64>);

fn case_key(c: &Case) -> CaseKey {
    let nodes = c.cluster.as_ref().map(|c| c.nodes);
    (c.target.clone(), c.transport.clone(), c.step, nodes)
}

/// Runs of two scenarios that measured one case (target, transport, step,
/// nodes) each: the same case measured under other conditions (from other
/// hosts, or beside them), which must not replace the other on its chart.
fn rival(a: &RunDir, b: &RunDir) -> bool {
    let cases = |rd: &RunDir| -> BTreeSet<CaseKey> {
        rd.run
            .cases
            .iter()
            .filter(|c| !c.is_skipped())
            .map(case_key)
            .collect()
    };
    scenario_name(a) != scenario_name(b) && !cases(a).is_disjoint(&cases(b))
}

impl Entry {
    /// The nodes of a case of several (`None`: a lone server).
    pub fn nodes(&self) -> Option<u64> {
        self.case.cluster.as_ref().map(|c| c.nodes)
    }
}

impl Group {
    /// Scenario names of the runs, unique, joined with `+`.
    pub fn name(&self) -> String {
        let mut names: Vec<String> = Vec::new();
        for rd in &self.runs {
            let n = scenario_name(rd);
            if !names.contains(&n) {
                names.push(n);
            }
        }
        names.join("+")
    }

    pub fn is_sweep(&self) -> bool {
        self.key.step.is_none()
    }

    pub fn is_idle(&self) -> bool {
        self.key.publish.is_none()
    }

    /// Targets in legend order.
    pub fn targets(&self) -> Vec<String> {
        let mut t: Vec<String> = Vec::new();
        for e in &self.entries {
            if !t.contains(&e.case.target) {
                t.push(e.case.target.clone());
            }
        }
        t
    }

    pub fn transports(&self) -> Vec<String> {
        self.key.transports.iter().cloned().collect()
    }

    /// `<count> <transport> subscribers` style phrase for titles: `SSE`, `long-poll` ...
    pub fn transport_phrase(&self) -> String {
        self.transports()
            .iter()
            .map(|t| transport_name(t))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Publish parameters from the scenario, for subtitles: `1 msg/s, 64 B`.
    pub fn publish_phrase(&self) -> Option<String> {
        let p = self.runs.first()?.run.scenario.get("publish")?;
        let rate = p.get("rate")?.as_f64()?;
        let size = p.get("size")?.as_u64()?;
        let pattern = p.get("pattern").and_then(|v| v.as_str()).unwrap_or("");
        Some(format!(
            "{pattern} {} msg/s, {size} B",
            super::figure::plain(rate)
        ))
    }

    /// Machine and date of the runs whose cases are drawn, one line.
    pub fn footer(&self) -> String {
        let mut machines: Vec<String> = Vec::new();
        let mut times: Vec<String> = Vec::new();
        let mut unfinished = false;
        let used = |i: usize| self.entries.iter().chain(&self.skipped).any(|e| e.run == i);
        for rd in (0..self.runs.len())
            .filter(|i| used(*i))
            .map(|i| &self.runs[i])
        {
            let m = &rd.run.machine;
            let text = format!(
                "{} cores{}, Linux {}, {:.0} GiB",
                m.cores,
                if m.cpu_model.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", m.cpu_model)
                },
                m.kernel,
                m.memory_total as f64 / (1u64 << 30) as f64
            );
            if !machines.contains(&text) {
                machines.push(text);
            }
            if !times.contains(&rd.run.started_at) {
                times.push(rd.run.started_at.clone());
            }
            unfinished |= rd.run.finished_at.is_empty();
        }
        times.sort();
        // `2026-11-24 08:45, 08:52 UTC`: the day once, then each time to the minute.
        let mut dates: Vec<String> = Vec::new();
        let mut day = "";
        for t in &times {
            let (d, rest) = t.split_once('T').unwrap_or((t.as_str(), ""));
            let hm: String = rest.chars().take(5).collect();
            if d != day {
                dates.push(format!("{d} {hm}"));
                day = d;
            } else {
                dates.push(hm);
            }
        }
        let machine = if machines.len() == 1 {
            format!("machine: {}", machines[0])
        } else {
            format!("machines DIFFER: {}", machines.join(" | "))
        };
        format!(
            "{machine}  ·  {} {} UTC{}  ·  {}",
            if dates.len() == 1 { "run" } else { "runs" },
            dates.join(", "),
            if unfinished { " (unfinished)" } else { "" },
            self.name()
        )
    }

    /// Merges the intervals tagged `corrected` of an entry's latency log.
    /// `Ok(None)` when the case has no log or the log has no such interval.
    pub fn latency(&self, e: &Entry) -> Result<Option<Histogram<u64>>> {
        let Some(name) = &e.case.hlog else {
            return Ok(None);
        };
        let path = e.dir.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read the latency log", path.display()))?;
        let intervals = read_log(&text).with_context(|| format!("{}", path.display()))?;
        let mut h = new_histogram();
        let mut any = false;
        for i in intervals
            .iter()
            .filter(|i| i.tag.as_deref() == Some("corrected"))
        {
            merge(&mut h, &i.hist);
            any = true;
        }
        Ok((any && !h.is_empty()).then_some(h))
    }
}

/// How a transport is called on a slide.
/// A panel's title for transport `t` among `of` panels: past two, the
/// panels are too narrow for `forever iframe`, and the last word is enough.
pub fn panel_title(t: &str, of: usize) -> Option<String> {
    let name = transport_name(t);
    match of {
        0 | 1 => None,
        2 => Some(name),
        _ => name.rsplit(' ').next().map(str::to_string),
    }
}

pub fn transport_name(t: &str) -> String {
    match t {
        "sse" => "SSE".into(),
        "longpoll" => "long-poll".into(),
        "stream" => "XHR stream".into(),
        "iframe" => "forever iframe".into(),
        "ws" => "WebSocket".into(),
        other => other.into(),
    }
}

/// A case's failure text, or a generic one when a failed case says nothing.
pub fn failure_text(c: &Case) -> Option<String> {
    if !c.is_failed() {
        return None;
    }
    Some(
        c.failure
            .clone()
            .unwrap_or_else(|| format!("status {}", c.status)),
    )
}
