//! The notes on the targets: how each was driven and what it cannot do
//! (a peer's processes sampled, its ids, its missing backlog), once per target
//! in the order first met, as `cometbench run` prints them after its table.

use std::fmt::Write;

use super::html::{esc, shell_line};
use crate::chart::results::Case;

/// One block per target that has notes or flags; empty when none has.
pub fn section(cases: &[Case]) -> String {
    let mut targets: Vec<&Case> = Vec::new();
    for c in cases {
        if !targets.iter().any(|t| t.target == c.target) {
            targets.push(c);
        }
    }
    let mut out = String::new();
    for first in targets {
        let mine: Vec<&Case> = cases.iter().filter(|c| c.target == first.target).collect();
        let mut notes: Vec<&str> = Vec::new();
        for n in mine.iter().flat_map(|c| c.notes.iter()) {
            if !notes.contains(&n.as_str()) {
                notes.push(n);
            }
        }
        if notes.is_empty() && first.args.is_empty() {
            continue;
        }
        let kind = if first.kind.is_empty() {
            String::new()
        } else {
            format!(" <span class=\"kind\">{}</span>", esc(&first.kind))
        };
        let _ = writeln!(
            out,
            "<div class=\"target\"><h3>{}{kind}</h3>",
            esc(&first.target)
        );
        if !first.args.is_empty() {
            let _ = writeln!(
                out,
                "<p>given: <code>{}</code></p>",
                esc(&shell_line(&first.args))
            );
        }
        if !notes.is_empty() {
            out.push_str("<ul>\n");
            for n in notes {
                let _ = writeln!(out, "<li>{}</li>", esc(n));
            }
            out.push_str("</ul>\n");
        }
        out.push_str("</div>\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(target: &str, notes: &[&str], args: &[&str]) -> Case {
        Case {
            target: target.into(),
            kind: "peer".into(),
            notes: notes.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn notes_are_said_once_per_target_in_the_order_met() {
        let cases = [
            case("nchan", &["no ids", "sampled: master"], &[]),
            case("reactor", &[], &[]),
            case("pushpin", &["no backlog"], &["HEARTBEAT=15"]),
            case("nchan", &["no ids", "iframe: none"], &[]),
        ];
        let html = section(&cases);
        assert!(!html.contains("reactor"), "no notes, no flags: {html}");
        assert_eq!(html.matches("no ids").count(), 1, "{html}");
        let order: Vec<usize> = ["nchan", "sampled: master", "iframe: none", "pushpin"]
            .iter()
            .map(|s| html.find(s).unwrap_or_else(|| panic!("{s}: {html}")))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{html}");
        assert!(html.contains("<code>HEARTBEAT=15</code>"), "{html}");
        assert_eq!(section(&[case("reactor", &[], &[])]), "");
    }
}
