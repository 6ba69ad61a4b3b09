//! One run as one HTML document: what was run, when and where, the
//! comparison table, the charts, the notes on the targets, the machine, the
//! command line and the scenario. Everything is inline (the style sheet
//! below, the SVG charts); there is no script, and nothing is fetched.

use std::fmt::Write;

use super::html::{esc, facts, shell_line};
use super::{charts, hosts, notes, table};
use crate::chart::data::{scenario_name, RunDir};
use crate::chart::results::{Machine, Run};
use crate::chart::Svg;

const STYLE: &str = include_str!("report.css");

/// The whole document.
pub fn document(rd: &RunDir, svgs: &[Svg]) -> String {
    let run = &rd.run;
    let name = scenario_name(rd);
    let notes = notes::section(&run.cases);
    let faults = table::faults(&run.cases);
    let hosts = hosts::section(&run.cases);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
         <title>{} · cometbench report</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        esc(&name)
    );
    out.push_str(&header(rd, &name));
    out.push_str(&contents(
        svgs,
        !faults.is_empty(),
        !hosts.is_empty(),
        !notes.is_empty(),
    ));
    let _ = write!(
        out,
        "<section id=\"table\">\n<h2>Comparison</h2>\n{}{}</section>\n",
        table::comparison(&run.cases),
        thresholds(run)
    );
    if !hosts.is_empty() {
        let _ = write!(
            out,
            "<section id=\"hosts\">\n<h2>Load generator hosts</h2>\n{hosts}</section>\n"
        );
    }
    if !faults.is_empty() {
        let _ = write!(
            out,
            "<section id=\"faults\">\n<h2>Faults and their pass lines</h2>\n{faults}</section>\n"
        );
    }
    let _ = write!(
        out,
        "<section id=\"charts\">\n<h2>Charts</h2>\n{}</section>\n",
        charts::section(svgs)
    );
    if !notes.is_empty() {
        let _ = write!(
            out,
            "<section id=\"notes\">\n<h2>Notes on the targets</h2>\n{notes}</section>\n"
        );
    }
    let _ = write!(
        out,
        "<section id=\"machine\">\n<h2>Machine</h2>\n{}</section>\n",
        machine(&run.machine)
    );
    let _ = write!(
        out,
        "<section id=\"command\">\n<h2>Command line</h2>\n<pre><code>{}</code></pre>\n</section>\n",
        if run.command_line.is_empty() {
            "(not recorded)".to_string()
        } else {
            esc(&shell_line(&run.command_line))
        }
    );
    let _ = write!(
        out,
        "<section id=\"scenario\">\n<h2>Scenario</h2>\n<details><summary>as the run parsed it, \
         defaults filled in</summary>\n<pre><code>{}</code></pre></details>\n</section>\n",
        esc(&serde_json::to_string_pretty(&run.scenario).unwrap_or_default())
    );
    let _ = write!(
        out,
        "<footer>Written by cometbench {} <code>report</code> from <code>run.json</code> and \
         the latency logs beside it. Self-contained: no script, nothing fetched; text in \
         DejaVu Sans where it is installed, else the browser's sans-serif.</footer>\n\
         </body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    out
}

fn header(rd: &RunDir, name: &str) -> String {
    let run = &rd.run;
    let s = &run.scenario;
    let mut out = format!("<header>\n<h1>{}</h1>\n", esc(name));
    if let Some(d) = s.get("description").and_then(|v| v.as_str()) {
        let _ = writeln!(out, "<p class=\"lede\">{}</p>", esc(d));
    }
    let mut rows: Vec<(&str, String)> = vec![("run", esc(&when(run)))];
    let mut targets: Vec<&str> = Vec::new();
    for c in &run.cases {
        if !targets.contains(&c.target.as_str()) {
            targets.push(&c.target);
        }
    }
    rows.push(("targets", esc(&targets.join(", "))));
    let list = |k: &str| {
        s.get(k).and_then(|v| v.as_array()).map(|a| {
            a.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    if let Some(t) = list("transports") {
        rows.push(("transports", esc(&t)));
    }
    if let Some(t) = list("steps") {
        rows.push(("connections", esc(&t)));
    }
    if let Some(p) = publish(s) {
        rows.push(("publishing", esc(&p)));
    }
    rows.push((
        "results",
        format!("<code>{}</code>", esc(&rd.dir.display().to_string())),
    ));
    out.push_str(&facts("facts", &rows));
    out.push_str("</header>\n");
    out
}

/// `2026-11-24 09:42:55 UTC to 09:47:09 UTC`, or that the run is unfinished.
fn when(run: &Run) -> String {
    let pretty = |t: &str| t.replacen('T', " ", 1).replace('Z', " UTC");
    let start = pretty(&run.started_at);
    if run.finished_at.is_empty() {
        return format!("{start}, unfinished (run.json was still being written)");
    }
    let end = pretty(&run.finished_at);
    match (start.split_once(' '), end.split_once(' ')) {
        (Some((d0, _)), Some((d1, t1))) if d0 == d1 => format!("{start} to {t1}"),
        _ => format!("{start} to {end}"),
    }
}

/// `broadcast, 1 msg/s for 30 s, 64 B`, or `none`.
fn publish(s: &serde_json::Value) -> Option<String> {
    let p = s.get("publish")?;
    let pattern = p.get("pattern")?.as_str()?;
    if pattern == "none" {
        return Some("none".into());
    }
    let mut out = pattern.to_string();
    if let Some(r) = p.get("rate").and_then(|v| v.as_f64()) {
        let _ = write!(out, ", {r} msg/s");
    }
    if let Some(d) = p.get("duration_secs").and_then(|v| v.as_f64()) {
        let _ = write!(out, " for {d} s");
    }
    if let Some(b) = p.get("size").and_then(|v| v.as_u64()) {
        let _ = write!(out, ", {b} B");
    }
    Some(out)
}

fn thresholds(run: &Run) -> String {
    let Some(t) = &run.thresholds else {
        return String::new();
    };
    if t.passed {
        return "<p class=\"pass\">Thresholds: all held.</p>\n".into();
    }
    let mut out = String::from("<p class=\"fail\">Thresholds broken:</p>\n<ul class=\"fail\">\n");
    for b in &t.broken {
        let _ = writeln!(out, "<li>{}</li>", esc(b));
    }
    out.push_str("</ul>\n");
    out
}

fn machine(m: &Machine) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    let cpu = if m.cpu_model.is_empty() {
        String::new()
    } else {
        format!(" ({})", m.cpu_model)
    };
    rows.push(("cores", esc(&format!("{}{cpu}", m.cores))));
    rows.push(("kernel", esc(&format!("Linux {}", m.kernel))));
    rows.push((
        "memory",
        format!("{:.1} GiB", m.memory_total as f64 / (1u64 << 30) as f64),
    ));
    if let (Some(s), Some(h)) = (m.nofile_soft, m.nofile_hard) {
        rows.push(("open files", format!("{s} soft, {h} hard")));
    }
    let limits = [
        ("pid_max", m.pid_max),
        ("threads-max", m.threads_max),
        ("max_map_count", m.max_map_count),
        ("somaxconn", m.somaxconn),
        ("tcp_max_syn_backlog", m.tcp_max_syn_backlog),
    ];
    for (k, v) in limits {
        if let Some(v) = v {
            rows.push((k, v.to_string()));
        }
    }
    if let [lo, hi] = m.ip_local_port_range[..] {
        rows.push(("local ports", format!("{lo}–{hi}")));
    }
    facts("facts", &rows)
}

fn contents(svgs: &[Svg], faults: bool, hosts: bool, notes: bool) -> String {
    let mut out = String::from("<nav>\n<ul>\n<li><a href=\"#table\">Comparison</a></li>\n");
    if hosts {
        out.push_str("<li><a href=\"#hosts\">Load generator hosts</a></li>\n");
    }
    if faults {
        out.push_str("<li><a href=\"#faults\">Faults</a></li>\n");
    }
    let list = charts::contents(svgs);
    if list.is_empty() {
        out.push_str("<li><a href=\"#charts\">Charts</a></li>\n");
    } else {
        let _ = writeln!(
            out,
            "<li><a href=\"#charts\">Charts</a><ul>{list}</ul></li>"
        );
    }
    if notes {
        out.push_str("<li><a href=\"#notes\">Notes on the targets</a></li>\n");
    }
    out.push_str(
        "<li><a href=\"#machine\">Machine</a></li>\n<li><a href=\"#command\">Command line</a></li>\n\
         <li><a href=\"#scenario\">Scenario</a></li>\n</ul>\n</nav>\n",
    );
    out
}
