//! The comparison table `cometbench run` prints, as HTML, with each fault's
//! pass line under it.
//!
//! The columns, units and rounding are those of `loadgen::results::write_table`
//! (its formatters are used here), which writes plain text to a terminal and
//! exposes no rows to reuse; a column added there is added here too. A figure with a spread over repeats
//! shows `median [min–max]` (see [`super::spread`]).

use std::fmt::Write;

use loadgen::results::{bytes, fraction, ms, us};

use super::html::esc;
use super::spread::{shown, Figure, Shown, WIDE};
use crate::chart::results::Case;

/// The header, as the terminal table has it.
const COLUMNS: [&str; 16] = loadgen::results::HEADER;

/// One figure's cell: `-` without a value, the range after the value.
fn figure_cell(s: Shown, fmt: fn(f64) -> String) -> String {
    let Some(v) = s.value else {
        return "<td class=\"num\">-</td>".into();
    };
    let mut text = esc(&fmt(v));
    if let Some((lo, hi)) = s.range {
        let _ = write!(
            text,
            " <span class=\"range\">[{}–{}]</span>",
            esc(&fmt(lo)),
            esc(&fmt(hi))
        );
    }
    if s.wide {
        format!(
            "<td class=\"num wide\" title=\"range wider than {:.0}% of the median\">{text}</td>",
            WIDE * 100.0
        )
    } else {
        format!("<td class=\"num\">{text}</td>")
    }
}

fn row(c: &Case) -> String {
    let (class, status) = match &c.failure {
        Some(f) => ("failed", format!("FAILED: {f}")),
        None if c.is_failed() => ("failed", c.status.clone()),
        None => (c.status.as_str(), c.status.clone()),
    };
    let num = |v: String| format!("<td class=\"num\">{}</td>", esc(&v));
    let cells = [
        format!("<th scope=\"row\">{}</th>", esc(&c.target)),
        format!("<td>{}</td>", esc(&c.transport)),
        num(format!("{}/{}", c.connections.connected, c.step)),
        figure_cell(shown(c, Figure::RssPerConn), bytes),
        figure_cell(shown(c, Figure::KernelPerConn), bytes),
        num(c.server.threads.to_string()),
        num(c.server.processes.to_string()),
        figure_cell(shown(c, Figure::P50), ms),
        figure_cell(shown(c, Figure::P99), ms),
        figure_cell(shown(c, Figure::P999), ms),
        figure_cell(shown(c, Figure::CpuPerDelivery), us),
        figure_cell(shown(c, Figure::DeliveredFraction), fraction),
        figure_cell(shown(c, Figure::LoadgenCpuPerDelivery), us),
        figure_cell(shown(c, Figure::LoadgenRssPerConn), bytes),
        num(c.errors().to_string()),
        format!("<td class=\"status\">{}</td>", esc(&status)),
    ];
    format!(
        "<tr class=\"case {}\">{}</tr>\n",
        esc(class),
        cells.join("")
    )
}

/// The table, then a note on ranges when any figure has one.
pub fn comparison(cases: &[Case]) -> String {
    let mut out = String::from("<div class=\"scroll\"><table class=\"comparison\">\n<thead><tr>");
    for c in COLUMNS {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(c));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for c in cases {
        out.push_str(&row(c));
    }
    out.push_str("</tbody>\n</table></div>\n");
    if cases.iter().any(|c| !c.spread.is_empty()) {
        let _ = writeln!(
            out,
            "<p class=\"legend\">Figures over repeats: median <span class=\"range\">[min–max]</span>; \
             <span class=\"wide\">marked</span> where the range passes {:.0}% of the median.</p>",
            WIDE * 100.0
        );
    }
    out
}

/// Each fault's pass line, item by item; empty when the run injected none.
pub fn faults(cases: &[Case]) -> String {
    let mut out = String::new();
    for c in cases {
        let Some(f) = &c.fault else { continue };
        let verdict = if f.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(
            out,
            "<div class=\"fault\"><p><strong>fault {} on {} {} {}: <span class=\"{}\">{verdict}</span></strong></p>\n<ul>",
            esc(&f.kind),
            esc(&c.target),
            esc(&c.transport),
            c.step,
            if f.passed { "pass" } else { "fail" }
        );
        for check in &f.checks {
            let _ = writeln!(
                out,
                "<li{}>[{}] {}: {}</li>",
                if check.passed { "" } else { " class=\"fail\"" },
                if check.passed { "ok" } else { "FAIL" },
                esc(&check.what),
                esc(&check.detail)
            );
        }
        out.push_str("</ul></div>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_round_as_the_terminal_table_does() {
        type Unit = fn(f64) -> String;
        let cases: [(Unit, f64, &str); 7] = [
            (fraction, 0.5, "0.5000"),
            (bytes, 300.4, "300 B"),
            (bytes, 10_239.0, "10239 B"),
            (bytes, 10_240.0, "10.0 KiB"),
            (ms, 98_349.0, "98.3"),
            (ms, 0.0, "0.0"),
            (us, 9.25, "9.2"),
        ];
        for (f, v, want) in cases {
            assert_eq!(f(v), want, "{v}");
        }
    }

    #[test]
    fn a_row_has_every_column_and_says_why_a_case_failed() {
        let mut c = Case {
            target: "thread-pool".into(),
            transport: "sse".into(),
            step: 100,
            status: "failed".into(),
            failure: Some("9 of 100 <never> served".into()),
            ..Default::default()
        };
        c.connections.connected = 91;
        c.connections.failed.insert("refused".into(), 9);
        c.delivery.lost = 2;
        let r = row(&c);
        assert_eq!(
            r.matches("<td").count() + r.matches("<th").count(),
            COLUMNS.len()
        );
        assert!(r.starts_with("<tr class=\"case failed\">"), "{r}");
        assert!(r.contains("<td class=\"num\">91/100</td>"), "{r}");
        assert!(r.contains("<td class=\"num\">11</td>"), "errors: {r}");
        assert!(r.contains("FAILED: 9 of 100 &lt;never&gt; served"), "{r}");
    }
}
