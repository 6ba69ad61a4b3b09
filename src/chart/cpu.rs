//! CPU time per delivered message: the server's and the load generator's.

use super::data::{panel_title, Entry, Group};
use super::figure::{plain, thousands, Anchor, Axis, Figure, Fill, LegendItem, Mark, Panel};
use super::style::{target_color, Theme};
use super::{case_notes, failure_note, missing_note, series_name, target_legend};

const LOADGEN: Fill = Fill::Pale(0.6);

/// Chart 6: two bars per target, server (solid) above load generator (pale);
/// a group of several transports gets one panel per transport on one scale.
pub fn per_delivery(g: &Group, theme: Theme) -> Figure {
    let rows: Vec<&Entry> = g
        .entries
        .iter()
        .filter(|e| {
            e.case.server.cpu_per_delivery_us.is_some()
                || e.case.loadgen.cpu_per_delivery_us.is_some()
        })
        .collect();
    let missing: Vec<String> = g
        .entries
        .iter()
        .filter(|e| !rows.iter().any(|r| std::ptr::eq(*r, *e)))
        .map(|e| format!("{} (nothing delivered)", series_name(g, e)))
        .collect();
    let max = rows
        .iter()
        .flat_map(|e| {
            let c = &e.case;
            let top = |key: &str, own: Option<f64>| match c.figure(key, own) {
                (_, Some((_, hi))) => Some(hi),
                (v, None) => v,
            };
            [
                top("server.cpu_per_delivery_us", c.server.cpu_per_delivery_us),
                top("loadgen.cpu_per_delivery_us", c.loadgen.cpu_per_delivery_us),
            ]
        })
        .flatten()
        .fold(0.0, f64::max);
    // Every panel has a row per target of any panel, so that the rows line
    // up and the panels beside the first can share its labels.
    let mut names: Vec<String> = Vec::new();
    for e in &rows {
        if !names.contains(&e.case.target) {
            names.push(e.case.target.clone());
        }
    }
    let transports = g.transports();
    let mut panels: Vec<Panel> = transports
        .iter()
        .filter(|t| rows.iter().any(|e| &e.case.transport == *t))
        .enumerate()
        .map(|(i, t)| {
            let of: Vec<Option<&Entry>> = names
                .iter()
                .map(|n| {
                    rows.iter()
                        .copied()
                        .find(|e| &e.case.transport == t && &e.case.target == n)
                })
                .collect();
            let y = Axis::categories("", &names);
            Panel {
                title: panel_title(t, transports.len()),
                weight: 1,
                x: Axis::linear(
                    // Beside the first, a short label that fits a narrow panel.
                    if i == 0 {
                        "CPU time per delivered message (µs)"
                    } else {
                        "µs"
                    },
                    0.0,
                    max * 1.15,
                    plain,
                ),
                y: if i == 0 { y } else { y.unlabelled() },
                marks: bars(&of, theme),
            }
        })
        .collect();
    if panels.is_empty() {
        panels.push(Panel {
            title: None,
            weight: 1,
            x: Axis::linear("CPU time per delivered message (µs)", 0.0, 1.0, plain),
            y: Axis::categories("", &[]),
            marks: Vec::new(),
        });
    }
    let mut notes: Vec<String> = rows.iter().filter_map(|e| failure_note(g, e)).collect();
    notes.extend(missing_note("no CPU figure", &missing));
    notes.extend(case_notes(g));

    let mut legend = target_legend(g, theme, false);
    legend.retain(|l| match l {
        LegendItem::Target { name, .. } => rows.iter().any(|e| &e.case.target == name),
        _ => true,
    });
    legend.push(LegendItem::Swatch {
        text: "server".into(),
        fill: Fill::Solid,
    });
    legend.push(LegendItem::Swatch {
        text: "load generator".into(),
        fill: LOADGEN,
    });
    let failed = panels
        .iter()
        .any(|p| p.marks.iter().any(|m| matches!(m, Mark::Failure { .. })));
    if failed {
        legend.push(LegendItem::Failure {
            text: "case failed (below)".into(),
        });
    }
    let publish = g
        .publish_phrase()
        .map(|p| format!(", {p}"))
        .unwrap_or_default();
    Figure {
        title: "CPU time per delivered message".into(),
        subtitle: Some(format!(
            "{} {} subscribers{publish}; user + sys CPU while publishing ÷ messages received",
            thousands(g.key.step.unwrap_or(0)),
            g.transport_phrase()
        )),
        panels,
        legend,
        notes,
        footer: g.footer(),
    }
}

/// The bars of one panel, top down in `rows`' order (`None`: a row left
/// empty): per row, the server's
/// figure and the load generator's, each with its range over repeats and
/// its value written after it, and a cross where the case failed.
fn bars(rows: &[Option<&Entry>], theme: Theme) -> Vec<Mark> {
    let n = rows.len();
    let mut marks = Vec::new();
    for (i, e) in rows.iter().enumerate() {
        let Some(e) = e else { continue };
        let color = target_color(&e.case.target, theme);
        let yc = (n - 1 - i) as f64;
        let c = &e.case;
        for ((v, range), fill, y) in [
            (
                c.figure("server.cpu_per_delivery_us", c.server.cpu_per_delivery_us),
                Fill::Solid,
                yc + 0.19,
            ),
            (
                c.figure("loadgen.cpu_per_delivery_us", c.loadgen.cpu_per_delivery_us),
                LOADGEN,
                yc - 0.19,
            ),
        ] {
            let Some(v) = v else { continue };
            marks.push(Mark::Bar {
                x: (0.0, v),
                y: (y - 0.17, y + 0.17),
                color,
                fill,
            });
            if let Some((lo, hi)) = range {
                marks.push(Mark::Range {
                    from: (lo, y),
                    to: (hi, y),
                    color,
                });
            }
            // The value after the bar, or after its range.
            let end = range.map_or(v, |(_, hi)| hi.max(v));
            marks.push(Mark::Text {
                at: (end, y),
                text: format!("{} µs", plain(v)),
                anchor: Anchor::Left,
            });
            if c.is_failed() {
                marks.push(Mark::Failure { at: (v, y), color });
            }
        }
    }
    marks
}
