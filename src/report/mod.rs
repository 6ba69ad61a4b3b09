//! `cometbench report`: one self-contained HTML page per result directory.
//!
//! A report holds what the run's `run.json` says and the charts its data
//! feeds (drawn by [`crate::chart`] in memory, inlined as SVG): the scenario,
//! date and results directory, the comparison table `cometbench run` printed
//! (with each figure's range over repeats where the run has them, see
//! [`spread`]), where the load came from when its workers ran on other hosts
//! (`hosts`), the fault pass lines and broken thresholds, the notes on each
//! target, the machine and the command line. The page has no script and
//! refers to nothing outside itself, so it reads the same offline, mailed,
//! or years later.
//!
//! Every directory is read and every page built before anything is written:
//! one bad input writes nothing.

mod charts;
mod hosts;
mod html;
mod notes;
mod page;
mod spread;
mod table;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::chart::data::{self, scenario_name, RunDir};
use crate::chart::{sanitize, svgs, Theme};

/// What `cometbench report` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub dirs: Vec<PathBuf>,
    pub out: PathBuf,
}

/// The file name of each run's page: its scenario's name, and the run's
/// directory name too when two runs given share a scenario.
fn file_names(runs: &[RunDir]) -> Vec<String> {
    let stems: Vec<String> = runs.iter().map(|rd| sanitize(&scenario_name(rd))).collect();
    let mut names: Vec<String> = Vec::new();
    for (i, stem) in stems.iter().enumerate() {
        let mut name = if stems.iter().filter(|s| *s == stem).count() > 1 {
            let dir = runs[i]
                .dir
                .file_name()
                .map(|n| sanitize(&n.to_string_lossy()))
                .unwrap_or_default();
            format!("{stem}-{dir}")
        } else {
            stem.clone()
        };
        // The same directory given twice.
        while names.contains(&format!("{name}.html")) {
            name.push_str("-2");
        }
        names.push(format!("{name}.html"));
    }
    names
}

/// Writes one page per directory into `opts.out`, printing each path written.
pub fn run<W: Write>(opts: &Options, mut out: W) -> Result<()> {
    if opts.dirs.is_empty() {
        bail!("no result directory given");
    }
    let runs = opts
        .dirs
        .iter()
        .map(|d| data::load(d))
        .collect::<Result<Vec<_>>>()?;
    let names = file_names(&runs);
    let mut pages = Vec::new();
    for (rd, name) in runs.iter().zip(names) {
        let charts = svgs(vec![rd.clone()], Theme::Light)
            .with_context(|| format!("{}: drawing its charts", rd.dir.display()))?;
        pages.push((opts.out.join(name), page::document(rd, &charts)));
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("{}: cannot create the report directory", opts.out.display()))?;
    for (path, html) in pages {
        write(&path, &html)?;
        writeln!(out, "{}", path.display())?;
    }
    Ok(())
}

fn write(path: &Path, html: &str) -> Result<()> {
    std::fs::write(path, html).with_context(|| format!("{}: cannot write", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::results::Run;

    fn run_dir(dir: &str, scenario: &str) -> RunDir {
        RunDir {
            dir: PathBuf::from(dir),
            run: serde_json::from_value::<Run>(serde_json::json!({
                "schema": "cometbench-run/1",
                "scenario": {"name": scenario},
                "cases": []
            }))
            .unwrap(),
        }
    }

    #[test]
    fn pages_are_named_after_their_scenario_and_never_collide() {
        let runs = [
            run_dir("r/ramp/T1", "ramp"),
            run_dir("r/smoke/T2", "smoke"),
            run_dir("r/smoke/T3", "smoke"),
            run_dir("r/smoke/T3", "smoke"),
            run_dir("r/odd/T4", "a b/c"),
        ];
        assert_eq!(
            file_names(&runs),
            [
                "ramp.html",
                "smoke-T2.html",
                "smoke-T3.html",
                "smoke-T3-2.html",
                "a-b-c.html"
            ]
        );
    }
}
