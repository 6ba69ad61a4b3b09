//! Where the load came from, for a run whose workers ran on other hosts:
//! per case and host, the connections it carried, its clock against the
//! coordinator's, its workers' CPU, and any worker lost (`loadgen.hosts`).
//! A run with every worker beside the coordinator has no such section.

use std::fmt::Write;

use super::html::esc;
use crate::chart::results::Case;

const COLUMNS: [&str; 7] = [
    "case",
    "host",
    "conns",
    "clock offset µs",
    "± µs",
    "worker CPU s",
    "lost",
];

/// The table, or nothing when every case's load was local.
pub fn section(cases: &[Case]) -> String {
    let remote = cases
        .iter()
        .flat_map(|c| &c.loadgen.hosts)
        .any(|h| h.host != "local");
    if !remote {
        return String::new();
    }
    let mut out = String::from("<table class=\"comparison hosts\">\n<thead><tr>");
    for c in COLUMNS {
        let _ = write!(out, "<th>{}</th>", esc(c));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for c in cases {
        let case = format!("{} {} {}", c.target, c.transport, c.step);
        for h in &c.loadgen.hosts {
            let micros = |ns: Option<f64>| ns.map_or("-".into(), |v| format!("{:.1}", v / 1000.0));
            let lost: Vec<String> = h
                .workers
                .iter()
                .filter_map(|w| {
                    w.failure
                        .as_ref()
                        .map(|f| format!("worker {}: {f}", w.worker))
                })
                .collect();
            let _ = writeln!(
                out,
                "<tr{}><td>{}</td><td><code>{}</code></td><td class=\"num\">{}/{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.2}</td>\
                 <td class=\"status\">{}</td></tr>",
                if lost.is_empty() {
                    ""
                } else {
                    " class=\"failed\""
                },
                esc(&case),
                esc(&h.host),
                h.connected,
                h.connections,
                micros(h.offset_ns.map(|v| v as f64)),
                micros(h.uncertainty_ns.map(|v| v as f64)),
                h.cpu_user + h.cpu_sys,
                esc(&lost.join("; "))
            );
        }
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(hosts: serde_json::Value) -> Case {
        serde_json::from_value(serde_json::json!({
            "target": "uring", "transport": "sse", "step": 400,
            "loadgen": {"hosts": hosts}
        }))
        .unwrap()
    }

    #[test]
    fn only_load_from_elsewhere_gets_a_table() {
        let local = case(serde_json::json!([{"host": "local", "connections": 400}]));
        assert_eq!(section(&[local]), "");
        let two = case(serde_json::json!([
            {"host": "ns-w0", "connections": 200, "connected": 200, "offset_ns": 2500,
             "uncertainty_ns": 7700, "cpu_user": 0.5, "cpu_sys": 0.25,
             "workers": [{"worker": 0, "failure": null}]},
            {"host": "ns-w1", "connections": 200, "connected": 0, "offset_ns": null,
             "workers": [{"worker": 1, "failure": "could not start: <refused>"}]}
        ]));
        let html = section(&[two]);
        assert!(
            html.contains("<td>uring sse 400</td><td><code>ns-w0</code></td>"),
            "{html}"
        );
        assert!(html.contains("<td class=\"num\">200/200</td><td class=\"num\">2.5</td><td class=\"num\">7.7</td><td class=\"num\">0.75</td>"), "{html}");
        assert!(html.contains("<tr class=\"failed\"><td>uring sse 400</td><td><code>ns-w1</code></td><td class=\"num\">0/200</td><td class=\"num\">-</td>"), "{html}");
        assert!(
            html.contains("worker 1: could not start: &lt;refused&gt;"),
            "{html}"
        );
    }
}
