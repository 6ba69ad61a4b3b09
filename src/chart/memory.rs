//! Memory charts: per connection over a sweep of connection counts, and the
//! whole server (memory and threads) at one idle step.

use super::data::Group;
use super::figure::{
    plain, short_count, thousands, Anchor, Axis, Dash, Figure, Fill, LegendItem, Mark, Panel,
};
use super::style::{target_color, Theme};
use super::{
    case_notes, failure_note, missing_note, series_name, sweep_failure_note, sweep_marks,
    target_legend, SweepPoint,
};

const KIB: f64 = 1024.0;
const MIB: f64 = 1024.0 * 1024.0;
/// How much paler the kernel part of a bar is.
const KERNEL_FILL: Fill = Fill::Pale(0.6);

/// What the kernel figures of a group are: the server's own cgroup, or the
/// whole machine. Returns the legend wording and a caveat note, if any.
fn kernel_source(g: &Group) -> (String, Option<String>) {
    let mut system_wide: Vec<String> = Vec::new();
    for e in &g.entries {
        let wide = e.case.server.kernel_source.as_deref() == Some("system-wide")
            || e.case
                .server
                .at_step
                .as_ref()
                .and_then(|s| s.kernel.as_ref())
                .is_some_and(|k| k.source == "system-wide");
        if wide && !system_wide.contains(&e.case.target) {
            system_wide.push(e.case.target.clone());
        }
    }
    if system_wide.is_empty() {
        ("kernel (memory cgroup)".into(), None)
    } else {
        (
            "kernel".into(),
            Some(format!(
                "kernel memory of {} is system-wide (/proc/meminfo growth, includes the load \
                 generator's sockets); the others: the server's own memory cgroup",
                system_wide.join(", ")
            )),
        )
    }
}

/// Chart 1: user-space and kernel memory per connection against connections.
pub fn per_connection(g: &Group, theme: Theme) -> Figure {
    let mut series: Vec<(String, String, plotters::style::RGBColor)> = Vec::new();
    for e in &g.entries {
        let key = (e.case.target.clone(), e.case.transport.clone());
        if !series.iter().any(|s| (s.0.clone(), s.1.clone()) == key) {
            series.push((key.0, key.1, target_color(&e.case.target, theme)));
        }
    }
    let values: Vec<f64> = g
        .entries
        .iter()
        .flat_map(|e| [e.case.server.rss_per_conn, e.case.server.kernel_per_conn])
        .flatten()
        .map(|b| b / KIB)
        .collect();
    let (y, log) = Axis::auto(
        "KiB per connection",
        "KiB per connection (log scale)",
        &values,
        plain,
    );
    let fy = move |v: f64| if log { v.max(1e-6).log10() } else { v };
    let steps: Vec<f64> = g.entries.iter().map(|e| e.case.step as f64).collect();
    let x = Axis::log_at("connections (log scale)", &steps, short_count);

    let mut marks = Vec::new();
    let mut notes = Vec::new();
    let mut no_user = Vec::new();
    let mut no_kernel = Vec::new();
    for (target, transport, color) in &series {
        let entries: Vec<_> = g
            .entries
            .iter()
            .filter(|e| &e.case.target == target && &e.case.transport == transport)
            .collect();
        let points = |f: &dyn Fn(&super::data::Entry) -> Option<f64>| -> Vec<SweepPoint> {
            entries
                .iter()
                .map(|e| SweepPoint {
                    step: e.case.step,
                    value: f(e).map(|b| b / KIB),
                    failed: e.case.is_failed(),
                })
                .collect()
        };
        let user = points(&|e| e.case.server.rss_per_conn);
        let kernel = points(&|e| e.case.server.kernel_per_conn);
        let name = series_name(g, entries[0]);
        if user.iter().all(|p| p.value.is_none()) {
            no_user.push(name.clone());
        }
        if kernel.iter().all(|p| p.value.is_none()) {
            no_kernel.push(name.clone());
        }
        marks.extend(sweep_marks(&kernel, *color, Dash::Dashed, fy, y.lo));
        marks.extend(sweep_marks(&user, *color, Dash::Solid, fy, y.lo));
        notes.extend(sweep_failure_note(g, &entries));
    }
    notes.extend(missing_note("no user-space figure", &no_user));
    notes.extend(missing_note("no kernel figure", &no_kernel));
    let (kernel_label, caveat) = kernel_source(g);
    notes.extend(caveat);
    notes.extend(case_notes(g));

    let mut legend = target_legend(g, theme, true);
    legend.push(LegendItem::Line {
        text: "user space (RSS)".into(),
        dash: Dash::Solid,
    });
    legend.push(LegendItem::Line {
        text: kernel_label,
        dash: Dash::Dashed,
    });
    if marks.iter().any(|m| matches!(m, Mark::Failure { .. })) {
        legend.push(LegendItem::Failure {
            text: "step failed (below)".into(),
        });
    }
    Figure {
        title: "Server memory per connection".into(),
        subtitle: Some(format!(
            "{} subscribers; growth from before the ramp to the end of the hold ÷ connections held",
            g.transport_phrase()
        )),
        panels: vec![Panel {
            title: None,
            weight: 1,
            x,
            y,
            marks,
        }],
        legend,
        notes,
        footer: g.footer(),
    }
}

/// Chart 2: total server memory (RSS + kernel, stacked) and threads, at one idle step.
pub fn idle(g: &Group, theme: Theme) -> Figure {
    let step = g.key.step.unwrap_or(0);
    let rows: Vec<_> = g.entries.iter().collect();
    let names: Vec<String> = rows.iter().map(|e| series_name(g, e)).collect();
    let n = rows.len();
    let row_y = |i: usize| (n - 1 - i) as f64;
    const HALF: f64 = 0.32;

    let mem: Vec<Option<(f64, f64)>> = rows
        .iter()
        .map(|e| {
            e.case.server.at_step.as_ref().map(|s| {
                (
                    s.rss as f64 / MIB,
                    s.kernel.as_ref().map_or(0.0, |k| k.total as f64) / MIB,
                )
            })
        })
        .collect();
    let threads: Vec<Option<u64>> = rows
        .iter()
        .map(|e| e.case.server.at_step.as_ref().map(|s| s.threads.max(1)))
        .collect();
    let max_mem = mem.iter().flatten().map(|m| m.0 + m.1).fold(0.0, f64::max);
    let max_threads = threads.iter().flatten().copied().max().unwrap_or(1);

    let mem_axis = Axis::linear("server memory (MiB)", 0.0, max_mem * 1.3, plain);
    let thr_axis = Axis::log(
        "threads (log scale)",
        1.0,
        max_threads as f64 * 8.0,
        short_count,
    );
    let mut mem_marks = Vec::new();
    let mut thr_marks = Vec::new();
    let mut notes = Vec::new();
    let mut missing = Vec::new();
    for (i, e) in rows.iter().enumerate() {
        let color = target_color(&e.case.target, theme);
        let yc = row_y(i);
        let failed = e.case.is_failed();
        notes.extend(failure_note(g, e));
        let (Some((rss, kernel)), Some(th)) = (mem[i], threads[i]) else {
            missing.push(names[i].clone());
            continue;
        };
        mem_marks.push(Mark::Bar {
            x: (0.0, rss),
            y: (yc - HALF, yc + HALF),
            color,
            fill: Fill::Solid,
        });
        mem_marks.push(Mark::Bar {
            x: (rss, rss + kernel),
            y: (yc - HALF, yc + HALF),
            color,
            fill: KERNEL_FILL,
        });
        mem_marks.push(Mark::Text {
            at: (rss + kernel, yc),
            text: format!("{} MiB", plain(rss + kernel)),
            anchor: Anchor::Left,
        });
        let tx = (th as f64).log10();
        thr_marks.push(Mark::Bar {
            x: (thr_axis.lo, tx),
            y: (yc - HALF, yc + HALF),
            color,
            fill: Fill::Solid,
        });
        thr_marks.push(Mark::Text {
            at: (tx, yc),
            text: thousands(th),
            anchor: Anchor::Left,
        });
        if failed {
            mem_marks.push(Mark::Failure {
                at: (rss + kernel, yc),
                color,
            });
            thr_marks.push(Mark::Failure {
                at: (tx, yc),
                color,
            });
        }
    }
    notes.extend(missing_note("no sample at the step", &missing));
    let (kernel_label, caveat) = kernel_source(g);
    notes.extend(caveat);
    notes.extend(case_notes(g));

    let mut legend = target_legend(g, theme, false);
    legend.push(LegendItem::Swatch {
        text: "user space (RSS)".into(),
        fill: Fill::Solid,
    });
    legend.push(LegendItem::Swatch {
        text: kernel_label,
        fill: KERNEL_FILL,
    });
    if mem_marks.iter().any(|m| matches!(m, Mark::Failure { .. })) {
        legend.push(LegendItem::Failure {
            text: "case failed (below)".into(),
        });
    }
    let blank: Vec<String> = names.iter().map(|_| String::new()).collect();
    Figure {
        title: format!("Memory and threads at {} idle connections", thousands(step)),
        subtitle: Some(format!(
            "{} subscribers, nothing published; measured at the end of the hold",
            g.transport_phrase()
        )),
        panels: vec![
            Panel {
                title: None,
                weight: 4,
                x: mem_axis,
                y: Axis::categories("", &names),
                marks: mem_marks,
            },
            Panel {
                title: None,
                weight: 3,
                x: thr_axis,
                y: Axis::categories("", &blank),
                marks: thr_marks,
            },
        ],
        legend,
        notes,
        footer: g.footer(),
    }
}
