//! The charts of a run, inline: the SVG documents `cometbench chart` draws,
//! rendered in memory and placed in the page as they are.
//!
//! Their text asks for `DejaVu Sans, sans-serif`: where DejaVu is not
//! installed the browser's own sans-serif stands in (labels may then be a
//! little wider or narrower than they were laid out for); nothing is fetched.

use std::fmt::Write;

use super::html::esc;
use crate::chart::Svg;

/// The chart documents as figures, each with an anchor; an explanation when
/// the run feeds none.
pub fn section(charts: &[Svg]) -> String {
    if charts.is_empty() {
        return "<p class=\"none\">No chart: this run has no sweep of steps, idle \
                memory, latency log, CPU or wire figures to draw.</p>\n"
            .into();
    }
    let mut out = String::new();
    for c in charts {
        let _ = writeln!(
            out,
            "<figure class=\"chart\" id=\"chart-{}\">\n{}\n</figure>",
            esc(&c.stem),
            labelled(&c.svg, &c.title)
        );
    }
    out
}

/// The SVG with its title as its accessible name; unchanged when it does not
/// start with an `<svg ` element.
fn labelled(svg: &str, title: &str) -> String {
    let svg = svg.trim();
    match svg.strip_prefix("<svg ") {
        Some(rest) => format!("<svg role=\"img\" aria-label=\"{}\" {rest}", esc(title)),
        None => svg.to_string(),
    }
}

/// The chart list for the page's contents.
pub fn contents(charts: &[Svg]) -> String {
    let mut out = String::new();
    for c in charts {
        let _ = write!(
            out,
            "<li><a href=\"#chart-{}\">{}</a></li>",
            esc(&c.stem),
            esc(&c.title)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_gets_its_title_as_its_name() {
        assert_eq!(
            labelled("<svg width=\"1\">x</svg>\n", "p99 <by> target"),
            "<svg role=\"img\" aria-label=\"p99 &lt;by&gt; target\" width=\"1\">x</svg>"
        );
        assert_eq!(labelled("<?xml?><svg>", "t"), "<?xml?><svg>");
    }

    #[test]
    fn a_run_without_charts_says_so() {
        assert!(section(&[]).contains("No chart"));
    }
}
