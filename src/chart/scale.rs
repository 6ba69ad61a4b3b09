//! Scaling out: fan-out latency and CPU per delivery against the number of
//! nodes sharing a broker, the broker's part of the CPU marked, so that
//! "pub/sub can't scale linearly" is a measured line.

use super::data::{Entry, Group};
use super::figure::{plain, short_count, Axis, Dash, Figure, LegendItem, Mark, Panel};
use super::style::{target_color, Theme};
use super::{case_notes, missing_note, series_name, sweep_marks, target_legend, SweepPoint};

/// The chart `scale-out`: two panels over node counts. Left: p50 (solid)
/// and p99 (dashed) fan-out latency; right: CPU per delivery of the nodes
/// and the broker together (solid) and the broker's part of it (dashed).
pub fn scale_out(g: &Group, theme: Theme) -> Figure {
    let ms = |us: u64| us as f64 / 1000.0;
    let entries: Vec<&Entry> = g.entries.iter().filter(|e| e.nodes().is_some()).collect();
    let counts: Vec<f64> = entries
        .iter()
        .filter_map(|e| e.nodes())
        .map(|n| n as f64)
        .collect();
    let latencies = super::latency::p50_p99_ms(entries.iter().copied());
    let (latency_y, log) = Axis::auto("latency (ms)", "latency (ms, log scale)", &latencies, plain);
    let fy = move |v: f64| if log { v.max(1e-3).log10() } else { v };
    let cpu_max = entries
        .iter()
        .filter_map(|e| e.case.cluster.as_ref()?.cpu_per_delivery_us)
        .fold(0.0, f64::max);
    let cpu_y = Axis::linear("CPU time per delivered message (µs)", 0.0, cpu_max, plain);
    let nodes_x = || Axis::log_at("nodes (log scale)", &counts, short_count);

    let mut latency = Vec::new();
    let mut cpu = Vec::new();
    let mut notes = Vec::new();
    let mut missing = Vec::new();
    let mut series: Vec<(String, String)> = Vec::new();
    for e in &entries {
        let k = (e.case.target.clone(), e.case.transport.clone());
        if !series.contains(&k) {
            series.push(k);
        }
    }
    for (target, transport) in &series {
        let mine: Vec<&Entry> = entries
            .iter()
            .copied()
            .filter(|e| &e.case.target == target && &e.case.transport == transport)
            .collect();
        let color = target_color(target, theme);
        let points = |f: &dyn Fn(&Entry) -> Option<f64>| -> Vec<SweepPoint> {
            mine.iter()
                .map(|e| SweepPoint {
                    step: e.nodes().unwrap_or(1),
                    value: f(e),
                    failed: e.case.is_failed(),
                })
                .collect()
        };
        let lat = |f: fn(&super::results::Summary) -> u64| {
            move |e: &Entry| {
                let l = &e.case.delivery.latency_us;
                (l.count > 0).then(|| ms(f(l)))
            }
        };
        let p50 = points(&lat(|l| l.p50));
        if p50.iter().all(|p| p.value.is_none()) {
            missing.push(series_name(g, mine[0]));
        }
        latency.extend(sweep_marks(
            &points(&lat(|l| l.p99)),
            color,
            Dash::Dashed,
            fy,
            latency_y.lo,
        ));
        latency.extend(sweep_marks(&p50, color, Dash::Solid, fy, latency_y.lo));
        let total = points(&|e| e.case.cluster.as_ref()?.cpu_per_delivery_us);
        let broker = points(&|e| e.case.cluster.as_ref()?.broker_cpu_per_delivery_us);
        cpu.extend(sweep_marks(&total, color, Dash::Solid, |v| v, 0.0));
        cpu.extend(sweep_marks(&broker, color, Dash::Dashed, |v| v, 0.0));
        notes.extend(share_note(g, &mine));
        for e in mine.iter().filter(|e| e.case.is_failed()) {
            if let Some(f) = super::data::failure_text(&e.case) {
                let n = e.nodes().unwrap_or(1);
                notes.push(format!(
                    "✗ {} at {n} node{}: {f}",
                    series_name(g, e),
                    plural(n)
                ));
            }
        }
    }
    notes.extend(missing_note("no latency recorded", &missing));
    notes.extend(case_notes(g));
    let cores = g.runs.first().map_or(0, |r| r.run.machine.cores);
    notes.insert(
        0,
        format!(
            "the nodes and the broker share this machine's {cores} cores: the latency does not carry to more machines, the CPU per delivery does"
        ),
    );

    let mut legend = target_legend(g, theme, true);
    legend.push(LegendItem::Line {
        text: "p50 | nodes + broker".into(),
        dash: Dash::Solid,
    });
    legend.push(LegendItem::Line {
        text: "p99 | the broker's part".into(),
        dash: Dash::Dashed,
    });
    if latency
        .iter()
        .chain(&cpu)
        .any(|m| matches!(m, Mark::Failure { .. }))
    {
        legend.push(LegendItem::Failure {
            text: "case failed (below)".into(),
        });
    }
    let publish = g
        .publish_phrase()
        .map(|p| format!(", {p}"))
        .unwrap_or_default();
    Figure {
        title: "Scaling out through a broker".into(),
        subtitle: Some(format!(
            "{} {} subscribers over N nodes sharing one Redis{publish}",
            super::figure::thousands(g.key.step.unwrap_or(0)),
            g.transport_phrase()
        )),
        panels: vec![
            Panel {
                title: Some("fan-out latency".into()),
                weight: 1,
                x: nodes_x(),
                y: latency_y,
                marks: latency,
            },
            Panel {
                title: Some("CPU per delivery".into()),
                weight: 1,
                x: nodes_x(),
                y: cpu_y,
                marks: cpu,
            },
        ],
        legend,
        notes,
        footer: g.footer(),
    }
}

/// `reactor: the broker's share of CPU per delivery 21% at 1 node, 14% at 2, 9% at 4`.
fn share_note(g: &Group, entries: &[&Entry]) -> Option<String> {
    let mut shares: Vec<(u64, f64)> = entries
        .iter()
        .filter_map(|e| Some((e.nodes()?, e.case.cluster.as_ref()?.broker_share?)))
        .collect();
    shares.sort_by_key(|s| s.0);
    let first = entries.first()?;
    let parts: Vec<String> = shares
        .iter()
        .enumerate()
        .map(|(i, (n, s))| {
            let at = if i == 0 {
                format!("{n} node{}", plural(*n))
            } else {
                n.to_string()
            };
            format!("{:.0}% at {at}", s * 100.0)
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "{}: the broker's share of CPU per delivery {}",
            series_name(g, first),
            parts.join(", ")
        )
    })
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
