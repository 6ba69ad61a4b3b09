//! CPU time per delivered message: the server's and the load generator's.

use super::data::Group;
use super::figure::{plain, thousands, Anchor, Axis, Figure, Fill, LegendItem, Mark, Panel};
use super::style::{target_color, Theme};
use super::{case_notes, failure_note, missing_note, series_name, target_legend};

const LOADGEN: Fill = Fill::Pale(0.6);

/// Chart 6: two bars per target, server (solid) above load generator (pale).
pub fn per_delivery(g: &Group, theme: Theme) -> Figure {
    let rows: Vec<_> = g
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
    let names: Vec<String> = rows.iter().map(|e| series_name(g, e)).collect();
    let n = rows.len();
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
    let x = Axis::linear(
        "CPU time per delivered message (µs)",
        0.0,
        max * 1.15,
        plain,
    );
    let mut marks = Vec::new();
    let mut notes = Vec::new();
    for (i, e) in rows.iter().enumerate() {
        let color = target_color(&e.case.target, theme);
        let yc = (n - 1 - i) as f64;
        let failed = e.case.is_failed();
        notes.extend(failure_note(g, e));
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
            if failed {
                marks.push(Mark::Failure { at: (v, y), color });
            }
        }
    }
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
    if marks.iter().any(|m| matches!(m, Mark::Failure { .. })) {
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
        panels: vec![Panel {
            title: None,
            weight: 1,
            x,
            y: Axis::categories("", &names),
            marks,
        }],
        legend,
        notes,
        footer: g.footer(),
    }
}
