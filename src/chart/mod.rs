//! `cometbench chart`: slides (SVG and PNG, 1920x1080) from result directories.
//!
//! Reads only the documented result files (`run.json`, `.hlog`), never runs
//! anything. Which chart a run feeds is decided by its data:
//!
//! | data | chart | file |
//! | --- | --- | --- |
//! | several steps, memory | memory per connection vs connections | `memory-per-connection` |
//! | several steps, latency | p50 / p99 latency vs connections | `latency-vs-connections` |
//! | one step, nothing published | server memory and threads | `idle-<step>-memory-threads` |
//! | one step, latency log | latency percentile distribution (a panel per transport) | `latency-distribution` |
//! | one step, CPU per delivery | CPU time per delivered message (a bar per target and transport) | `cpu-per-delivery` |
//! | several transports, wire bytes | bytes on the wire per message | `wire-bytes-per-message` |
//! | several node counts sharing a broker | latency and CPU per delivery vs nodes | `scale-out` |
//!
//! Runs of the same kind given together are merged (see [`data`]); when two
//! kinds feed the same chart, the one from the scenario the chart is named for
//! (`ramp`, `broadcast-10k`, `transports`, `scale-out`) keeps the plain file
//! name and the others get `-<scenario>` appended. Runs of several nodes feed
//! only `scale-out`: their cases differ by node count, not by connections.
//!
//! What this leaves out: nothing is averaged across runs, no value is
//! interpolated, and a failed step is drawn as measured with a cross, never
//! dropped; a target without a value for a chart is named in a note.
//!
//! `cometbench report` draws the same charts into memory ([`svgs`]) and
//! inlines them in its pages.

mod cpu;
pub mod data;
mod figure;
mod latency;
mod memory;
mod render;
pub mod results;
mod scale;
mod style;
mod wire;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

pub use render::Format;
pub use style::Theme;

use data::{failure_text, Entry, Group, RunDir};
use figure::{short_count, Figure, LegendItem};

/// What `cometbench chart` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub dirs: Vec<PathBuf>,
    pub out: PathBuf,
    pub formats: Vec<Format>,
    pub theme: Theme,
}

/// The charts this command draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    MemoryPerConnection,
    LatencyVsConnections,
    IdleMemoryThreads,
    LatencyDistribution,
    CpuPerDelivery,
    WireBytes,
    ScaleOut,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::MemoryPerConnection,
        Kind::IdleMemoryThreads,
        Kind::LatencyDistribution,
        Kind::LatencyVsConnections,
        Kind::WireBytes,
        Kind::CpuPerDelivery,
        Kind::ScaleOut,
    ];

    /// Whether the group's data can feed this chart.
    fn fits(self, g: &Group) -> bool {
        let any = |f: &dyn Fn(&Entry) -> bool| g.entries.iter().any(f);
        let mut counts: Vec<u64> = g.entries.iter().filter_map(Entry::nodes).collect();
        counts.sort();
        counts.dedup();
        // Several nodes: the scale-out chart, or at one node count (a case
        // per target, as on one server) its latency distribution too.
        let cluster_fits = match self {
            Kind::ScaleOut => true,
            Kind::LatencyDistribution => counts.len() == 1,
            _ => false,
        };
        if g.key.cluster && !cluster_fits || !g.key.cluster && self == Kind::ScaleOut {
            return false;
        }
        match self {
            Kind::ScaleOut => {
                counts.len() > 1
                    && any(&|e| {
                        e.case.delivery.latency_us.count > 0
                            || e.case
                                .cluster
                                .as_ref()
                                .is_some_and(|c| c.cpu_per_delivery_us.is_some())
                    })
            }
            Kind::MemoryPerConnection => {
                g.is_sweep()
                    && any(&|e| {
                        e.case.server.rss_per_conn.is_some()
                            || e.case.server.kernel_per_conn.is_some()
                    })
            }
            Kind::LatencyVsConnections => {
                g.is_sweep() && any(&|e| e.case.delivery.latency_us.count > 0)
            }
            Kind::IdleMemoryThreads => {
                g.is_idle() && !g.is_sweep() && any(&|e| e.case.server.at_step.is_some())
            }
            Kind::LatencyDistribution => !g.is_sweep() && any(&|e| e.case.hlog.is_some()),
            Kind::CpuPerDelivery => {
                !g.is_sweep()
                    && any(&|e| {
                        e.case.server.cpu_per_delivery_us.is_some()
                            || e.case.loadgen.cpu_per_delivery_us.is_some()
                    })
            }
            Kind::WireBytes => {
                g.key.transports.len() > 1 && any(&|e| e.case.wire.per_message_total.is_some())
            }
        }
    }

    /// The file name, without extension.
    fn stem(self, g: &Group) -> String {
        match self {
            Kind::MemoryPerConnection => "memory-per-connection".into(),
            Kind::LatencyVsConnections => "latency-vs-connections".into(),
            Kind::IdleMemoryThreads => format!(
                "idle-{}-memory-threads",
                short_count(g.key.step.unwrap_or(0) as f64)
            ),
            Kind::LatencyDistribution => "latency-distribution".into(),
            Kind::CpuPerDelivery => "cpu-per-delivery".into(),
            Kind::WireBytes => "wire-bytes-per-message".into(),
            Kind::ScaleOut => "scale-out".into(),
        }
    }

    /// The scenario the chart is named after: it wins the plain file name.
    fn scenario(self) -> &'static str {
        match self {
            Kind::MemoryPerConnection | Kind::LatencyVsConnections => "ramp",
            Kind::IdleMemoryThreads => "idle-10k",
            Kind::LatencyDistribution | Kind::CpuPerDelivery => "broadcast-10k",
            Kind::WireBytes => "transports",
            Kind::ScaleOut => "scale-out",
        }
    }

    fn build(self, g: &Group, theme: Theme) -> Result<Figure> {
        match self {
            Kind::MemoryPerConnection => Ok(memory::per_connection(g, theme)),
            Kind::IdleMemoryThreads => Ok(memory::idle(g, theme)),
            Kind::LatencyDistribution => latency::distribution(g, theme),
            Kind::LatencyVsConnections => Ok(latency::vs_connections(g, theme)),
            Kind::WireBytes => Ok(wire::per_message(g, theme)),
            Kind::CpuPerDelivery => Ok(cpu::per_delivery(g, theme)),
            Kind::ScaleOut => Ok(scale::scale_out(g, theme)),
        }
    }
}

/// Which charts the groups feed, each as (kind, group index, file stem).
fn plan(groups: &[Group]) -> Vec<(Kind, usize, String)> {
    let mut plan: Vec<(Kind, usize, String)> = Vec::new();
    for kind in Kind::ALL {
        let mut fits: Vec<usize> = (0..groups.len())
            .filter(|i| kind.fits(&groups[*i]))
            .collect();
        // The chart's own scenario first, then the order given.
        fits.sort_by_key(|i| !groups[*i].name().split('+').any(|n| n == kind.scenario()));
        for (n, i) in fits.into_iter().enumerate() {
            let mut stem = kind.stem(&groups[i]);
            if n > 0 {
                stem = format!("{stem}-{}", sanitize(&groups[i].name()));
            }
            while plan.iter().any(|p| p.2 == stem) {
                stem.push_str("-2");
            }
            plan.push((kind, i, stem));
        }
    }
    plan
}

/// Draws every chart the directories feed into `opts.out`, printing each file written.
pub fn run<W: Write>(opts: &Options, mut out: W) -> Result<()> {
    if opts.dirs.is_empty() {
        bail!("no result directory given");
    }
    let mut runs = Vec::new();
    for d in &opts.dirs {
        runs.push(data::load(d)?);
    }
    let groups = data::group(runs);
    let plan = plan(&groups);
    for (i, g) in groups.iter().enumerate() {
        if !plan.iter().any(|p| p.1 == i) {
            let dirs: Vec<String> = g.runs.iter().map(|r| r.dir.display().to_string()).collect();
            eprintln!(
                "cometbench chart: {} feeds no chart (one step with publishing but no latency, \
                 memory or CPU figures)",
                dirs.join(", ")
            );
        }
    }
    if plan.is_empty() {
        bail!(
            "nothing to chart in the runs given: no sweep, idle run, latency, CPU or wire figures"
        );
    }
    let mut formats: Vec<Format> = Vec::new();
    for f in &opts.formats {
        if !formats.contains(f) {
            formats.push(*f);
        }
    }
    if formats.is_empty() {
        bail!("no output format given (svg, png)");
    }
    // Every input is read before anything is written.
    let figures = plan
        .into_iter()
        .map(|(kind, i, stem)| Ok((kind.build(&groups[i], opts.theme)?, stem)))
        .collect::<Result<Vec<_>>>()?;
    style::load_fonts()?;
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("{}: cannot create the chart directory", opts.out.display()))?;
    for (fig, stem) in figures {
        for path in render::write(&fig, opts.theme, &opts.out, &stem, &formats)? {
            writeln!(out, "{}", path.display())?;
        }
    }
    Ok(())
}

/// One chart drawn in memory.
#[derive(Debug, Clone)]
pub struct Svg {
    /// The name `cometbench chart` would give its file, without extension.
    pub stem: String,
    pub title: String,
    /// A whole SVG document, 1920x1080 with a viewBox, no XML declaration.
    pub svg: String,
}

/// Every chart the runs feed, drawn as SVG in memory, in the order
/// `cometbench chart` writes them. Runs that feed no chart give none: that
/// is no error here.
pub fn svgs(runs: Vec<RunDir>, theme: Theme) -> Result<Vec<Svg>> {
    let groups = data::group(runs);
    let plan = plan(&groups);
    let figures = plan
        .into_iter()
        .map(|(kind, i, stem)| Ok((kind.build(&groups[i], theme)?, stem)))
        .collect::<Result<Vec<_>>>()?;
    if figures.is_empty() {
        return Ok(Vec::new());
    }
    style::load_fonts()?;
    figures
        .into_iter()
        .map(|(fig, stem)| {
            Ok(Svg {
                svg: render::svg(&fig, theme)?,
                title: fig.title,
                stem,
            })
        })
        .collect()
}

/// `name` as a file name: anything but ASCII letters, digits, `-` and `_` becomes `-`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `thread-pool` or, when the group has several transports, `thread-pool (SSE)`.
fn series_name(g: &Group, e: &Entry) -> String {
    if g.key.transports.len() > 1 {
        format!(
            "{} ({})",
            e.case.target,
            data::transport_name(&e.case.transport)
        )
    } else {
        e.case.target.clone()
    }
}

/// One legend entry per target of the group, in the fixed order.
fn target_legend(g: &Group, theme: Theme, line: bool) -> Vec<LegendItem> {
    g.targets()
        .into_iter()
        .map(|t| LegendItem::Target {
            color: style::target_color(&t, theme),
            name: t,
            line,
        })
        .collect()
}

/// `✗ thread-pool at 10k: 9488 of 10000 connections ...` for a failed entry.
fn failure_note(g: &Group, e: &Entry) -> Option<String> {
    failure_text(&e.case).map(|f| {
        let at = if g.is_sweep() {
            format!(" at {}", short_count(e.case.step as f64))
        } else {
            String::new()
        };
        format!("✗ {}{at}: {f}", series_name(g, e))
    })
}

/// The failures of one series of a sweep in one note. Consecutive failures
/// whose texts differ only in their numbers are said once:
/// `✗ thread-pool at 1k: 488 of 1000 connections were accepted but never
/// served (likewise at 2k, 5k); at 20k: 13 of 20000 connections failed (13 http_503)`.
fn sweep_failure_note(g: &Group, entries: &[&Entry]) -> Option<String> {
    let mut failed: Vec<(&Entry, String)> = entries
        .iter()
        .filter_map(|e| failure_text(&e.case).map(|f| (*e, f)))
        .collect();
    failed.sort_by_key(|(e, _)| e.case.step);
    let first = failed.first()?;
    let shape = |t: &str| -> String {
        let mut out = String::new();
        for c in t.chars() {
            if c.is_ascii_digit() {
                if !out.ends_with('#') {
                    out.push('#');
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    // (text, its step, the steps alike)
    let mut runs: Vec<(String, u64, Vec<u64>)> = Vec::new();
    for (e, f) in &failed {
        match runs.last_mut() {
            Some(r) if shape(&r.0) == shape(f) => r.2.push(e.case.step),
            _ => runs.push((f.clone(), e.case.step, Vec::new())),
        }
    }
    let parts: Vec<String> = runs
        .iter()
        .map(|(text, step, alike)| {
            let likewise = if alike.is_empty() {
                String::new()
            } else {
                let steps: Vec<String> = alike.iter().map(|s| short_count(*s as f64)).collect();
                format!(" (likewise at {})", steps.join(", "))
            };
            format!("at {}: {text}{likewise}", short_count(*step as f64))
        })
        .collect();
    Some(format!(
        "✗ {} {}",
        series_name(g, first.0),
        parts.join("; ")
    ))
}

/// One line naming the targets that carry notes ("what the target cannot do":
/// too long for a slide, they stay in run.json), and the cases not run.
fn case_notes(g: &Group) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut noted: Vec<&str> = Vec::new();
    for e in &g.entries {
        if !e.case.notes.is_empty() && !noted.contains(&e.case.target.as_str()) {
            noted.push(&e.case.target);
        }
    }
    if !noted.is_empty() {
        out.push(format!(
            "notes on {} (how driven, limits): see run.json",
            noted.join(", ")
        ));
    }
    for e in &g.skipped {
        let line = format!(
            "not run: {} {} at {}",
            e.case.target,
            data::transport_name(&e.case.transport),
            short_count(e.case.step as f64)
        );
        if !out.contains(&line) {
            out.push(line);
        }
    }
    out
}

/// `no latency recorded: thread-pool, nchan` when some targets have no value.
fn missing_note(what: &str, targets: &[String]) -> Option<String> {
    (!targets.is_empty()).then(|| format!("not shown, {what}: {}", targets.join(", ")))
}

/// One step of a series over connection counts.
#[derive(Debug, Clone, Copy)]
struct SweepPoint {
    step: u64,
    value: Option<f64>,
    failed: bool,
}

/// The marks of a series over connections (x = log10(step), y = `fy(value)`):
/// a line through the steps that did not fail, broken where one failed or has
/// no value, and a cross at each failed step, at its measured value or, when
/// it has none, where the line stopped (at `floor` when nothing was drawn).
fn sweep_marks(
    points: &[SweepPoint],
    color: plotters::style::RGBColor,
    dash: figure::Dash,
    fy: impl Fn(f64) -> f64,
    floor: f64,
) -> Vec<figure::Mark> {
    let mut marks = Vec::new();
    let mut line: Vec<(f64, f64)> = Vec::new();
    let mut last_y = None;
    let flush = |line: &mut Vec<(f64, f64)>, marks: &mut Vec<figure::Mark>| {
        if !line.is_empty() {
            marks.push(figure::Mark::Line {
                points: std::mem::take(line),
                color,
                dash,
                dots: true,
            });
        }
    };
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|p| p.step);
    for p in sorted {
        let x = (p.step.max(1) as f64).log10();
        match (p.failed, p.value) {
            (false, Some(v)) => {
                line.push((x, fy(v)));
                last_y = Some(fy(v));
            }
            (false, None) => flush(&mut line, &mut marks),
            (true, v) => {
                flush(&mut line, &mut marks);
                let y = v.map(&fy).or(last_y).unwrap_or(floor);
                marks.push(figure::Mark::Failure { at: (x, y), color });
            }
        }
    }
    flush(&mut line, &mut marks);
    marks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_names_are_file_safe() {
        assert_eq!(sanitize("broadcast-10k+peers x"), "broadcast-10k-peers-x");
    }

    fn sweep_of(failures: &[(u64, Option<&str>)]) -> Group {
        group_of(
            failures
                .iter()
                .map(|(step, f)| results::Case {
                    target: "thread-pool".into(),
                    transport: "sse".into(),
                    step: *step,
                    status: if f.is_some() { "failed" } else { "ok" }.into(),
                    failure: f.map(str::to_string),
                    ..Default::default()
                })
                .collect(),
        )
    }

    /// One run of `cases`, as its one group.
    fn group_of(cases: Vec<results::Case>) -> Group {
        let runs = vec![data::RunDir {
            dir: PathBuf::from("/r"),
            run: results::Run {
                schema: "cometbench-run/1".into(),
                scenario: serde_json::Value::Null,
                command_line: Vec::new(),
                started_at: String::new(),
                finished_at: String::new(),
                machine: Default::default(),
                cases,
                thresholds: None,
            },
        }];
        data::group(runs).remove(0)
    }

    /// Reactor cases over `counts` nodes, each with a latency log.
    fn nodes_of(counts: &[u64]) -> Group {
        let cases = counts
            .iter()
            .map(|&n| results::Case {
                target: "reactor".into(),
                transport: "sse".into(),
                step: 1000,
                status: "ok".into(),
                hlog: Some(format!("reactor-sse-1000-{n}n.hlog")),
                cluster: Some(results::Cluster {
                    nodes: n,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        group_of(cases)
    }

    #[test]
    fn nodes_at_one_count_draw_their_latency_and_at_several_the_scale_out() {
        let one = nodes_of(&[60]);
        assert!(Kind::LatencyDistribution.fits(&one));
        assert!(!Kind::ScaleOut.fits(&one));
        assert!(!Kind::CpuPerDelivery.fits(&one));
        let two = nodes_of(&[1, 2]);
        assert!(!Kind::LatencyDistribution.fits(&two), "a target twice");
        let mut lone = sweep_of(&[(1000, None)]);
        lone.entries[0].case.hlog = Some("x.hlog".into());
        assert!(Kind::LatencyDistribution.fits(&lone));
        assert!(!Kind::ScaleOut.fits(&lone));
    }

    #[test]
    fn sweep_failures_share_one_note_per_series() {
        let g = sweep_of(&[
            (500, None),
            (
                2000,
                Some("1488 of 2000 connections were accepted but never served"),
            ),
            (
                1000,
                Some("488 of 1000 connections were accepted but never served"),
            ),
            (
                5000,
                Some("4488 of 5000 connections were accepted but never served"),
            ),
            (20_000, Some("13 of 20000 connections failed (13 http_503)")),
            (50_000, Some("worker 2 did not report")),
        ]);
        let all: Vec<&Entry> = g.entries.iter().collect();
        assert_eq!(
            sweep_failure_note(&g, &all).unwrap(),
            "✗ thread-pool at 1k: 488 of 1000 connections were accepted but never served \
             (likewise at 2k, 5k); at 20k: 13 of 20000 connections failed (13 http_503); \
             at 50k: worker 2 did not report"
        );
        let g = sweep_of(&[(100, None), (200, Some("server exited: signal 9"))]);
        let all: Vec<&Entry> = g.entries.iter().collect();
        assert_eq!(
            sweep_failure_note(&g, &all).unwrap(),
            "✗ thread-pool at 200: server exited: signal 9"
        );
        let g = sweep_of(&[(100, None), (200, None)]);
        let all: Vec<&Entry> = g.entries.iter().collect();
        assert_eq!(sweep_failure_note(&g, &all), None);
    }

    #[test]
    fn a_capacity_run_draws_its_p99_bound_and_no_other_run_does() {
        let bound_marks = |g: &Group| {
            let f = latency::vs_connections(g, style::Theme::Light);
            f.panels[0]
                .marks
                .iter()
                .filter(
                    |m| matches!(m, figure::Mark::Text { text, .. } if text.contains("p99 bound")),
                )
                .count()
        };
        let mut g = sweep_of(&[(1000, None), (2000, None)]);
        assert_eq!(bound_marks(&g), 0);
        g.runs[0].run.scenario = serde_json::json!({"capacity": true, "slo_p99_ms": 250.0});
        assert_eq!(bound_marks(&g), 1);
        let f = latency::vs_connections(&g, style::Theme::Light);
        assert!(f.panels[0].y.hi >= 250.0, "the bound is on the chart");
    }

    #[test]
    fn a_sweep_line_stops_at_a_failed_step_and_marks_it() {
        let p = |step, value, failed| SweepPoint {
            step,
            value,
            failed,
        };
        let c = plotters::style::RGBColor(1, 2, 3);
        let marks = sweep_marks(
            &[
                p(2000, Some(2.0), false),
                p(1000, Some(1.0), false),
                p(5000, None, true),
                p(10000, Some(7.0), true),
            ],
            c,
            figure::Dash::Solid,
            |v| v,
            0.0,
        );
        assert_eq!(marks.len(), 3, "{marks:?}");
        match &marks[0] {
            figure::Mark::Line { points, .. } => {
                assert_eq!(points, &vec![(3.0, 1.0), ((2000f64).log10(), 2.0)])
            }
            m => panic!("{m:?}"),
        }
        // No value: where the line stopped; with a value: at it.
        assert!(matches!(marks[1], figure::Mark::Failure { at, .. } if at.1 == 2.0));
        assert!(matches!(marks[2], figure::Mark::Failure { at, .. } if at == (4.0, 7.0)));
    }
}
