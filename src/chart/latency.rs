//! Delivery latency charts: the percentile distribution at one step (from the
//! `.hlog` logs) and p50 / p99 against connections (from `run.json`).
//!
//! Latency is from each publish's *scheduled* time to its receipt (corrected
//! for coordinated omission): the `corrected` intervals of a log, merged.

use anyhow::Result;

use super::data::{panel_title, Entry, Group};
use super::figure::{
    plain, short_count, Anchor, Axis, Dash, Figure, LegendItem, Mark, Panel, Thin,
};
use super::style::{target_color, Theme};
use super::{
    case_notes, failure_note, missing_note, series_name, sweep_failure_note, sweep_marks,
    target_legend, SweepPoint,
};

/// Highest percentile axis: 99.9999 %.
const MAX_NINES: f64 = 6.0;
/// Points per decade of 1/(1-p) on a distribution curve.
const PER_DECADE: usize = 60;

/// `0%`, `90%`, `99%`, `99.9%` ... for `k` nines.
fn percentile_label(k: f64) -> String {
    let k = k.round() as i32;
    if k <= 0 {
        return "0%".into();
    }
    let p = 100.0 * (1.0 - 10f64.powi(-k));
    format!("{p:.*}%", (k - 2).max(0) as usize)
}

/// Chart 3: latency by percentile, one line per target, HdrHistogram style;
/// a group of several transports gets one panel per transport, side by side
/// on one latency scale, so that no line stands for two transports.
pub fn distribution(g: &Group, theme: Theme) -> Result<Figure> {
    let mut curves = Vec::new();
    let mut missing = Vec::new();
    let mut notes = Vec::new();
    for e in &g.entries {
        notes.extend(failure_note(g, e));
        match g.latency(e)? {
            Some(h) => curves.push((e, h)),
            None if e.case.hlog.is_none() => {
                missing.push(format!("{} (nothing delivered)", series_name(g, e)))
            }
            None => missing.push(format!("{} (no corrected interval)", series_name(g, e))),
        }
    }
    let nines = curves
        .iter()
        .map(|(_, h)| (h.len() as f64).log10())
        .fold(2.0, f64::max)
        .min(MAX_NINES);
    let x_hi = nines.ceil();
    let lines: Vec<(&Entry, Vec<(f64, f64)>)> = curves
        .iter()
        .map(|(e, h)| (*e, percentile_curve(h, x_hi)))
        .collect();
    let y_max = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let transports = g.transports();
    let panels: Vec<Panel> = transports
        .iter()
        .filter(|t| lines.iter().any(|(e, _)| &e.case.transport == *t))
        .enumerate()
        .map(|(i, t)| {
            let y = Axis::linear("latency (ms)", 0.0, y_max, plain);
            Panel {
                title: panel_title(t, transports.len()),
                weight: 1,
                x: Axis {
                    // Beside the first, a short label that fits a narrow panel.
                    label: if i == 0 {
                        "percentile (log scale)"
                    } else {
                        "percentile"
                    }
                    .into(),
                    ..percentile_axis(x_hi)
                },
                // Panels beside the first share its latency labels.
                y: if i == 0 { y } else { y.unlabelled() },
                marks: curve_marks(lines.iter().filter(|(e, _)| &e.case.transport == t), theme),
            }
        })
        .collect();
    let failed = panels
        .iter()
        .any(|p| p.marks.iter().any(|m| matches!(m, Mark::Failure { .. })));
    notes.extend(missing_note("no latency recorded", &missing));
    notes.extend(case_notes(g));

    let mut legend = target_legend(g, theme, true);
    legend.retain(|l| match l {
        LegendItem::Target { name, .. } => curves.iter().any(|(e, _)| &e.case.target == name),
        _ => true,
    });
    if failed {
        legend.push(LegendItem::Failure {
            text: "case failed (below)".into(),
        });
    }
    let step = g.key.step.unwrap_or(0);
    let publish = g
        .publish_phrase()
        .map(|p| format!(", {p}"))
        .unwrap_or_default();
    // A group of several nodes is charted here at one node count.
    let nodes = g
        .entries
        .iter()
        .find_map(Entry::nodes)
        .map(|n| format!(" over {n} nodes sharing a broker"))
        .unwrap_or_default();
    Ok(Figure {
        title: "Delivery latency by percentile".into(),
        subtitle: Some(format!(
            "{} {} subscribers{nodes}{publish}; from scheduled publish to receipt",
            super::figure::thousands(step),
            g.transport_phrase()
        )),
        panels: if panels.is_empty() {
            vec![Panel {
                title: None,
                weight: 1,
                x: percentile_axis(x_hi),
                y: Axis::linear("latency (ms)", 0.0, y_max, plain),
                marks: Vec::new(),
            }]
        } else {
            panels
        },
        legend,
        notes,
        footer: g.footer(),
    })
}

/// The percentile axis up to `x_hi` nines.
fn percentile_axis(x_hi: f64) -> Axis {
    Axis {
        label: "percentile (log scale)".into(),
        lo: 0.0,
        hi: x_hi,
        ticks: (0..=x_hi as i32)
            .map(|k| (k as f64, percentile_label(k as f64)))
            .collect(),
        grid: true,
        thin: Thin::Uniform,
    }
}

/// A histogram's latency (ms) by percentile (x in nines), to where its
/// count stops resolving percentiles or to `x_hi`.
fn percentile_curve(h: &hdrhistogram::Histogram<u64>, x_hi: f64) -> Vec<(f64, f64)> {
    let end = (h.len() as f64).log10().min(x_hi);
    let n = ((end * PER_DECADE as f64).ceil() as usize).max(1);
    (0..=n)
        .map(|i| {
            let xv = end * i as f64 / n as f64;
            let q = (1.0 - 10f64.powf(-xv)).clamp(0.0, 1.0);
            (xv, h.value_at_quantile(q) as f64 / 1000.0)
        })
        .collect()
}

/// One line per curve in its target's colour, and a cross at the end of a
/// failed case's line (drawn last, above the lines).
fn curve_marks<'a>(
    lines: impl Iterator<Item = &'a (&'a Entry, Vec<(f64, f64)>)>,
    theme: Theme,
) -> Vec<Mark> {
    let mut marks = Vec::new();
    let mut failures = Vec::new();
    for (e, points) in lines {
        let color = target_color(&e.case.target, theme);
        if e.case.is_failed() {
            if let Some(last) = points.last() {
                failures.push(Mark::Failure { at: *last, color });
            }
        }
        marks.push(Mark::Line {
            points: points.clone(),
            color,
            dash: Dash::Solid,
            dots: false,
        });
    }
    marks.extend(failures);
    marks
}

/// The p50 and p99 of every entry that has a latency, in ms (above 0): what
/// a latency axis must hold.
pub(super) fn p50_p99_ms<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<f64> {
    entries
        .into_iter()
        .filter(|e| e.case.delivery.latency_us.count > 0)
        .flat_map(|e| {
            let l = &e.case.delivery.latency_us;
            // The ranges over repeats must fit too.
            let ranges = ["delivery.latency_us.p50", "delivery.latency_us.p99"]
                .into_iter()
                .filter_map(|k| e.case.spread.get(k))
                .flat_map(|s| [s.min / 1000.0, s.max / 1000.0]);
            [l.p50 as f64 / 1000.0, l.p99 as f64 / 1000.0]
                .into_iter()
                .chain(ranges)
        })
        .filter(|v| *v > 0.0)
        .collect()
}

/// A capacity run's p99 bound (`slo_p99_ms`), drawn across the chart: the
/// steps below it held, the first above it is where stepping stopped.
fn capacity_bound(g: &Group) -> Option<f64> {
    g.runs.iter().find_map(|r| {
        let s = &r.run.scenario;
        (s["capacity"].as_bool() == Some(true)).then(|| s["slo_p99_ms"].as_f64().unwrap_or(250.0))
    })
}

/// Chart 4: p50 (solid) and p99 (dashed) delivery latency against connections.
pub fn vs_connections(g: &Group, theme: Theme) -> Figure {
    let bound = capacity_bound(g);
    let mut values = p50_p99_ms(&g.entries);
    values.extend(bound);
    let (y, log) = Axis::auto("latency (ms)", "latency (ms, log scale)", &values, plain);
    let fy = move |v: f64| if log { v.max(1e-3).log10() } else { v };
    let steps: Vec<f64> = g.entries.iter().map(|e| e.case.step as f64).collect();
    let x = Axis::log_at("connections (log scale)", &steps, short_count);

    let mut keys: Vec<(String, String)> = Vec::new();
    for e in &g.entries {
        let k = (e.case.target.clone(), e.case.transport.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut marks = Vec::new();
    let mut notes = Vec::new();
    let mut missing = Vec::new();
    for (target, transport) in &keys {
        let entries: Vec<_> = g
            .entries
            .iter()
            .filter(|e| &e.case.target == target && &e.case.transport == transport)
            .collect();
        let color = target_color(target, theme);
        // The median over repeats where there are repeats, with its range.
        let pts = |key: &str, f: &dyn Fn(&super::results::Summary) -> u64| -> Vec<SweepPoint> {
            entries
                .iter()
                .map(|e| {
                    let l = &e.case.delivery.latency_us;
                    let own = (l.count > 0).then(|| f(l) as f64);
                    SweepPoint {
                        step: e.case.step,
                        value: e.case.figure(key, own).0.map(|us| us / 1000.0),
                        failed: e.case.is_failed(),
                    }
                })
                .collect()
        };
        let p50 = pts("delivery.latency_us.p50", &|l| l.p50);
        let p99 = pts("delivery.latency_us.p99", &|l| l.p99);
        for e in &entries {
            for key in ["delivery.latency_us.p50", "delivery.latency_us.p99"] {
                if let (_, Some((lo, hi))) = e.case.figure(key, None) {
                    let x = (e.case.step as f64).log10();
                    marks.push(Mark::Range {
                        from: (x, fy(lo / 1000.0)),
                        to: (x, fy(hi / 1000.0)),
                        color,
                    });
                }
            }
        }
        if p50.iter().all(|p| p.value.is_none()) {
            missing.push(series_name(g, entries[0]));
        }
        marks.extend(sweep_marks(&p99, color, Dash::Dashed, fy, y.lo));
        marks.extend(sweep_marks(&p50, color, Dash::Solid, fy, y.lo));
        notes.extend(sweep_failure_note(g, &entries));
    }
    notes.extend(missing_note("no latency recorded", &missing));
    notes.extend(case_notes(g));
    if let Some(b) = bound {
        // Muted, so that it reads as a bound and not as one more p99.
        marks.push(Mark::Line {
            points: vec![(x.lo, fy(b)), (x.hi, fy(b))],
            color: theme.palette().muted,
            dash: Dash::Dashed,
            dots: false,
        });
        marks.push(Mark::Text {
            at: (x.lo, fy(b) + (y.hi - y.lo) * 0.05),
            text: format!("capacity's p99 bound, {} ms", plain(b)),
            anchor: Anchor::Left,
        });
    }

    let mut legend = target_legend(g, theme, true);
    legend.push(LegendItem::Line {
        text: "p50 (median)".into(),
        dash: Dash::Solid,
    });
    legend.push(LegendItem::Line {
        text: "p99".into(),
        dash: Dash::Dashed,
    });
    if marks.iter().any(|m| matches!(m, Mark::Failure { .. })) {
        legend.push(LegendItem::Failure {
            text: "step failed (below)".into(),
        });
    }
    let publish = g
        .publish_phrase()
        .map(|p| format!(", {p}"))
        .unwrap_or_default();
    Figure {
        title: "Delivery latency vs connections".into(),
        subtitle: Some(format!(
            "{} subscribers{publish}; from scheduled publish to receipt",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels() {
        let l: Vec<String> = (0..=5).map(|k| percentile_label(k as f64)).collect();
        assert_eq!(l, ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
    }
}
