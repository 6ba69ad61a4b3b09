//! `cometbench compare RUN_A RUN_B [--threshold PCT]`: two runs, figure by
//! figure and case by case, each with its ratio, both ranges over repeats
//! and a verdict ([`verdict`]); a figure worse by more than the threshold
//! is a regression, and any regression makes the command exit 99, so CI
//! can hold a line.
//!
//! Cases are matched by target, transport and step; a case in one run only
//! is said and skipped. Figures are the headline ones
//! (`loadgen::spread::FIGURES`): the spread where the run has repeats, else
//! the case's own value.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use loadgen::results::{Case, Run};
use loadgen::spread::{self, Spread, FIGURES};

mod verdict;

use verdict::{compare, Verdict};

pub struct Options {
    pub a: PathBuf,
    pub b: PathBuf,
    /// A figure worse by more than this many percent is a regression.
    pub threshold_pct: f64,
}

/// Writes the comparison to `out`; the number of regressions.
pub fn run<W: Write>(o: &Options, mut out: W) -> Result<usize> {
    let a = read(&o.a)?;
    let b = read(&o.b)?;
    writeln!(
        out,
        "A: {} ({})\nB: {} ({})",
        o.a.display(),
        a.started_at,
        o.b.display(),
        b.started_at
    )?;
    writeln!(
        out,
        "{:<34} {:<28} {:>24} {:>24} {:>7}  verdict",
        "case", "figure", "A median [min-max]", "B median [min-max]", "B/A"
    )?;
    let mut regressions = 0;
    for cb in &b.cases {
        let name = format!("{} {} {}", cb.target, cb.transport, cb.step);
        let Some(ca) = a
            .cases
            .iter()
            .find(|c| (&c.target, &c.transport, c.step) == (&cb.target, &cb.transport, cb.step))
        else {
            writeln!(out, "{name:<34} only in B")?;
            continue;
        };
        for key in FIGURES {
            let (Some(sa), Some(sb)) = (spread_of(ca, key), spread_of(cb, key)) else {
                continue;
            };
            let c = compare(sa, sb, verdict::better(key));
            let (good, bad) = verdict::words(key);
            let mut said = match c.verdict {
                Verdict::Better => good.to_string(),
                Verdict::Worse => bad.to_string(),
                Verdict::NoChange => "no change beyond the noise".to_string(),
            };
            if c.regression * 100.0 > o.threshold_pct {
                regressions += 1;
                said.push_str(&format!(" REGRESSION (> {}%)", o.threshold_pct));
            }
            writeln!(
                out,
                "{name:<34} {key:<28} {:>24} {:>24} {:>7.3}  {said}",
                show(&sa),
                show(&sb),
                c.ratio
            )?;
        }
    }
    for ca in &a.cases {
        if !b
            .cases
            .iter()
            .any(|c| (&c.target, &c.transport, c.step) == (&ca.target, &ca.transport, ca.step))
        {
            writeln!(out, "{} {} {}: only in A", ca.target, ca.transport, ca.step)?;
        }
    }
    if regressions > 0 {
        writeln!(
            out,
            "{regressions} figures regressed by more than {}%",
            o.threshold_pct
        )?;
    }
    Ok(regressions)
}

/// A run from its directory or its `run.json`.
fn read(path: &Path) -> Result<Run> {
    let file = if path.is_dir() {
        path.join("run.json")
    } else {
        path.to_path_buf()
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a run.json", file.display()))
}

/// Figure `key` of `c` over its repeats, or its one value as a range of one.
fn spread_of(c: &Case, key: &str) -> Option<Spread> {
    c.spread.get(key).copied().or_else(|| {
        spread::value(c, key).map(|v| Spread {
            median: v,
            min: v,
            max: v,
        })
    })
}

fn show(s: &Spread) -> String {
    let f = |v: f64| {
        if v.abs() >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.3}")
        }
    };
    if s.min == s.max {
        f(s.median)
    } else {
        format!("{} [{}-{}]", f(s.median), f(s.min), f(s.max))
    }
}
