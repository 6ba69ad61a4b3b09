//! Bytes on the wire per delivered message, by transport: payload, response
//! heads, and the rest (framing, padding, heartbeats), stacked.

use super::data::{transport_name, Entry, Group};
use super::figure::{plain, thousands, Anchor, Axis, Figure, Fill, LegendItem, Mark, Panel};
use super::style::{target_color, Theme};
use super::{case_notes, failure_note, missing_note, target_legend};

const HEADS: Fill = Fill::Pale(0.45);
const FRAMING: Fill = Fill::Pale(0.78);

/// Transports in the order the protocol lists them, WebSocket beside SSE
/// (the two a browser opens today), others after.
fn transport_rank(t: &str) -> usize {
    ["longpoll", "sse", "ws", "stream", "iframe"]
        .iter()
        .position(|x| *x == t)
        .unwrap_or(5)
}

/// Per delivered message: (payload, heads, framing + padding + heartbeats), bytes.
fn split(e: &Entry) -> Option<(f64, f64, f64)> {
    let w = &e.case.wire;
    let total = w.per_message_total?;
    let received = e.case.delivery.received as f64;
    if received <= 0.0 {
        return None;
    }
    let payload = w
        .per_message_payload
        .unwrap_or(w.bytes_payload as f64 / received);
    let heads = w.bytes_head as f64 / received;
    Some((payload, heads, (total - heads - payload).max(0.0)))
}

/// Chart 5.
pub fn per_message(g: &Group, theme: Theme) -> Figure {
    let mut transports = g.transports();
    transports.sort_by_key(|t| (transport_rank(t), t.clone()));
    let targets = g.targets();
    let names: Vec<String> = transports.iter().map(|t| transport_name(t)).collect();
    let y = Axis::categories("", &names);
    let n = transports.len();
    let band = 0.8;
    let k = band / targets.len().max(1) as f64;

    let mut rows = Vec::new();
    let mut missing = Vec::new();
    let mut notes = Vec::new();
    let mut steps = Vec::new();
    for (i, t) in transports.iter().enumerate() {
        for (j, target) in targets.iter().enumerate() {
            // The largest step with a figure (a sweep has several).
            let best = g
                .entries
                .iter()
                .filter(|e| &e.case.transport == t && &e.case.target == target)
                .filter(|e| split(e).is_some())
                .max_by_key(|e| e.case.step);
            let Some(e) = best else {
                if g.entries
                    .iter()
                    .any(|e| &e.case.transport == t && &e.case.target == target)
                {
                    missing.push(format!("{target} ({})", transport_name(t)));
                }
                continue;
            };
            if !steps.contains(&e.case.step) {
                steps.push(e.case.step);
            }
            notes.extend(failure_note(g, e));
            let yc = (n - 1 - i) as f64 + band / 2.0 - (j as f64 + 0.5) * k;
            rows.push((e, yc, split(e).expect("filtered")));
        }
    }
    let max = rows
        .iter()
        .map(|r| r.2 .0 + r.2 .1 + r.2 .2)
        .fold(0.0, f64::max);
    let x = Axis::linear(
        "bytes on the wire per delivered message",
        0.0,
        max * 1.15,
        plain,
    );
    let mut marks = Vec::new();
    let half = k * 0.42;
    for (e, yc, (payload, heads, rest)) in &rows {
        let color = target_color(&e.case.target, theme);
        let yr = (yc - half, yc + half);
        let mut x0 = 0.0;
        for (w, fill) in [(*payload, Fill::Solid), (*heads, HEADS), (*rest, FRAMING)] {
            marks.push(Mark::Bar {
                x: (x0, x0 + w),
                y: yr,
                color,
                fill,
            });
            x0 += w;
        }
        marks.push(Mark::Text {
            at: (x0, *yc),
            text: format!("{} B", plain(x0)),
            anchor: Anchor::Left,
        });
        if e.case.is_failed() {
            marks.push(Mark::Failure {
                at: (x0, *yc),
                color,
            });
        }
    }
    notes.extend(missing_note(
        "no wire figures (nothing delivered)",
        &missing,
    ));
    notes.extend(case_notes(g));

    let mut legend = target_legend(g, theme, false);
    legend.push(LegendItem::Swatch {
        text: "payload".into(),
        fill: Fill::Solid,
    });
    legend.push(LegendItem::Swatch {
        text: "response heads".into(),
        fill: HEADS,
    });
    legend.push(LegendItem::Swatch {
        text: "framing, padding, heartbeats".into(),
        fill: FRAMING,
    });
    if marks.iter().any(|m| matches!(m, Mark::Failure { .. })) {
        legend.push(LegendItem::Failure {
            text: "case failed (below)".into(),
        });
    }
    steps.sort();
    let at: Vec<String> = steps.iter().map(|s| thousands(*s)).collect();
    let publish = g
        .publish_phrase()
        .map(|p| format!(", {p}"))
        .unwrap_or_default();
    Figure {
        title: "Bytes on the wire per delivered message".into(),
        subtitle: Some(format!(
            "{} subscribers per transport{publish}; all bytes subscribers read ÷ messages received",
            at.join(", ")
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
