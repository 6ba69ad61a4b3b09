//! A chart as plain data: panels of marks on axes with chosen ticks, a
//! legend, notes and a footer. Each chart builds a [`Figure`] from run data;
//! [`super::render`] draws any figure on any backend, so the SVG and the PNG of
//! a chart are the same drawing.
//!
//! # Log axes
//! A log axis is a linear axis over `log10(value)`: marks are placed at
//! `log10(v)`, and the ticks say which value each position stands for. This
//! keeps tick placement (1-2-5 per decade, or the steps actually measured)
//! under our control instead of the plotting library's.

use plotters::style::RGBColor;

/// One slide.
#[derive(Debug, Clone)]
pub struct Figure {
    pub title: String,
    /// What was measured, under the title.
    pub subtitle: Option<String>,
    pub panels: Vec<Panel>,
    pub legend: Vec<LegendItem>,
    /// Lines under the plot: failures, targets without a value, caveats.
    pub notes: Vec<String>,
    /// Machine and run date.
    pub footer: String,
}

/// One plot area.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Above the plot when a figure has several panels.
    pub title: Option<String>,
    /// Share of the width among the figure's panels.
    pub weight: u32,
    pub x: Axis,
    pub y: Axis,
    pub marks: Vec<Mark>,
}

#[derive(Debug, Clone)]
pub struct Axis {
    /// With its unit, e.g. `latency (ms)`.
    pub label: String,
    pub lo: f64,
    pub hi: f64,
    /// Positions (in axis coordinates) and their labels.
    pub ticks: Vec<(f64, String)>,
    /// Grid lines at the ticks.
    pub grid: bool,
    /// How tick labels that would overlap are dropped.
    pub thin: Thin,
}

/// Dropping tick labels that would overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thin {
    /// Every k-th tick, for the smallest k that fits: regular axes.
    Uniform,
    /// Each tick that clears the previous one kept: ticks at measured values.
    Greedy,
}

/// How a line is stroked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dash {
    Solid,
    Dashed,
}

/// How a bar is filled: the target colour, or paler shades of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    Solid,
    /// Blended towards the background by this amount, with a solid outline.
    Pale(f64),
}

/// Where a text sits relative to its point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// Left edge at the point, vertically centred (after a horizontal bar).
    Left,
}

#[derive(Debug, Clone)]
pub enum Mark {
    /// A polyline with a dot at each point.
    Line {
        points: Vec<(f64, f64)>,
        color: RGBColor,
        dash: Dash,
        dots: bool,
    },
    /// A step that failed: a bold cross.
    Failure { at: (f64, f64), color: RGBColor },
    /// A rectangle from `(x0, y0)` to `(x1, y1)`.
    Bar {
        x: (f64, f64),
        y: (f64, f64),
        color: RGBColor,
        fill: Fill,
    },
    Text {
        at: (f64, f64),
        text: String,
        anchor: Anchor,
    },
    /// A figure's range over repeats: a bar from `from` to `to` with a cap
    /// across each end (an error bar; the median is the line's or bar's).
    Range {
        from: (f64, f64),
        to: (f64, f64),
        color: RGBColor,
    },
}

#[derive(Debug, Clone)]
pub enum LegendItem {
    /// A target: its colour, drawn as a line or a swatch.
    Target {
        name: String,
        color: RGBColor,
        line: bool,
    },
    /// What a line style means (in the foreground colour).
    Line { text: String, dash: Dash },
    /// What a fill means (in the foreground colour).
    Swatch { text: String, fill: Fill },
    /// The failure cross.
    Failure { text: String },
}

impl Axis {
    /// A linear axis from 0 (or `lo`) to a round value above `max`, with 4-8 ticks.
    pub fn linear(label: &str, lo: f64, max: f64, fmt: impl Fn(f64) -> String) -> Axis {
        let max = if max.is_finite() && max > lo {
            max
        } else {
            lo + 1.0
        };
        let step = nice_step((max - lo) / 5.0);
        let hi = (max / step).ceil() * step;
        // Leave room above the highest value (labels on bars, line ends).
        let hi = if hi - max < step * 0.15 {
            hi + step
        } else {
            hi
        };
        let mut ticks = Vec::new();
        let mut v = (lo / step).ceil() * step;
        while v <= hi + step * 1e-9 {
            ticks.push((v, fmt(v)));
            v += step;
        }
        Axis {
            label: label.to_string(),
            lo,
            hi,
            ticks,
            grid: true,
            thin: Thin::Uniform,
        }
    }

    /// A log axis over `[min, max]` (values > 0), in log10 coordinates, ticks at
    /// 1, 2, 5 x 10^k (or only at powers of ten when the range is wide).
    pub fn log(label: &str, min: f64, max: f64, fmt: impl Fn(f64) -> String) -> Axis {
        let min = if min > 0.0 { min } else { 1.0 };
        let max = if max > min { max } else { min * 10.0 };
        let decades = (max / min).log10();
        let mantissas: &[f64] = if decades > 4.0 {
            &[1.0]
        } else if decades > 1.6 {
            &[1.0, 2.0, 5.0]
        } else {
            &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0]
        };
        // Axis ends: the tick at or below min, the tick at or above max.
        let mut values = Vec::new();
        let mut k = min.log10().floor() as i32 - 1;
        while 10f64.powi(k) <= max * 10.0 {
            for m in mantissas {
                values.push(m * 10f64.powi(k));
            }
            k += 1;
        }
        let lo = values
            .iter()
            .copied()
            .filter(|v| *v <= min * 1.000_001)
            .fold(min, |_, v| v);
        let hi = values
            .iter()
            .copied()
            .find(|v| *v >= max * 0.999_999)
            .unwrap_or(max);
        let ticks = values
            .iter()
            .filter(|v| **v >= lo * 0.999_999 && **v <= hi * 1.000_001)
            .map(|v| (v.log10(), fmt(*v)))
            .collect();
        Axis {
            label: label.to_string(),
            lo: lo.log10(),
            hi: hi.log10(),
            ticks,
            grid: true,
            thin: Thin::Uniform,
        }
    }

    /// A log axis whose ticks are given values (e.g. the connection counts
    /// measured), padded by `pad` of the range on each side.
    pub fn log_at(label: &str, values: &[f64], fmt: impl Fn(f64) -> String) -> Axis {
        let mut v: Vec<f64> = values.iter().copied().filter(|v| *v > 0.0).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        if v.is_empty() {
            v.push(1.0);
        }
        let (a, b) = (v[0].log10(), v[v.len() - 1].log10());
        let span = (b - a).max(0.5);
        Axis {
            label: label.to_string(),
            lo: a - span * 0.05,
            hi: b + span * 0.05,
            ticks: v.iter().map(|x| (x.log10(), fmt(*x))).collect(),
            grid: true,
            thin: Thin::Greedy,
        }
    }

    /// Categories at 0, 1, ... n-1, labelled with their names, read from top
    /// to bottom on a vertical axis (the first at the top).
    /// The same axis with no label and blank tick labels: for a panel
    /// beside another on the same scale, whose labels it shares.
    pub fn unlabelled(mut self) -> Axis {
        self.label.clear();
        for t in &mut self.ticks {
            t.1.clear();
        }
        self
    }

    pub fn categories(label: &str, names: &[String]) -> Axis {
        let n = names.len().max(1) as f64;
        // Fewer than three rows keep the height of three: no slab-like bars.
        let pad = ((3.0 - n) / 2.0).max(0.0);
        Axis {
            label: label.to_string(),
            lo: -0.5 - pad,
            hi: n - 0.5 + pad,
            ticks: names
                .iter()
                .enumerate()
                .map(|(i, s)| (n - 1.0 - i as f64, s.clone()))
                .collect(),
            grid: false,
            thin: Thin::Uniform,
        }
    }

    /// For lines and markers over `values`: a log axis labelled `log_label`
    /// when they are all positive and span more than 20x (so that small series
    /// stay apart), else a linear one labelled `label`, from 0 (or below, for
    /// negative values); `log` says which. Some room is left below the lowest
    /// value, so that markers there stay clear of the tick labels.
    pub fn auto(
        label: &str,
        log_label: &str,
        values: &[f64],
        fmt: impl Fn(f64) -> String,
    ) -> (Axis, bool) {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(0.0, f64::max);
        let log = min > 0.0 && min.is_finite() && max / min > 20.0;
        let mut axis = if log {
            Axis::log(log_label, min, max, fmt)
        } else {
            let lo = if min < 0.0 { -nice_step(-min) } else { 0.0 };
            Axis::linear(label, lo, max, fmt)
        };
        axis.lo -= (axis.hi - axis.lo) * 0.04;
        (axis, log)
    }

    /// The label of the tick at `v` (the plotting library asks by value).
    pub fn tick_label(&self, v: f64) -> String {
        self.ticks
            .iter()
            .min_by(|a, b| (a.0 - v).abs().total_cmp(&(b.0 - v).abs()))
            .filter(|t| (t.0 - v).abs() <= (self.hi - self.lo).abs() * 1e-6)
            .map(|t| t.1.clone())
            .unwrap_or_default()
    }
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `raw`.
pub fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= raw * 0.999_999 {
            return m * p;
        }
    }
    10.0 * p
}

/// A number as people write it on a slide: `950`, `1.5k`, `10k`, `2M`.
pub fn short_count(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if v.abs() >= 1e6 {
        format!("{}M", trim(format!("{:.1}", v / 1e6)))
    } else if v.abs() >= 1e3 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else {
        trim(format!("{v:.1}"))
    }
}

/// `10,000`.
pub fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A value with as many decimals as it needs to show 2-3 digits: `0.25`, `4.5`, `120`.
pub fn plain(v: f64) -> String {
    let a = v.abs();
    let s = if a == 0.0 || a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_axis_covers_the_data_with_round_ticks() {
        let a = Axis::linear("ms", 0.0, 316.0, plain);
        assert_eq!(a.lo, 0.0);
        assert!(a.hi >= 316.0);
        let labels: Vec<_> = a.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels.first(), Some(&"0"));
        assert!(labels.contains(&"100"), "{labels:?}");
        assert!((4..=9).contains(&a.ticks.len()), "{labels:?}");
    }

    #[test]
    fn log_axis_ticks_are_1_2_5() {
        let a = Axis::log("ms", 3.0, 300.0, plain);
        let labels: Vec<_> = a.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["2", "5", "10", "20", "50", "100", "200", "500"]);
        assert!(a.lo <= 3f64.log10() && a.hi >= 300f64.log10());
        let wide = Axis::log("threads", 1.0, 10_002.0, short_count);
        let labels: Vec<_> = wide.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["1", "10", "100", "1k", "10k", "100k"]);
    }

    #[test]
    fn auto_axis_goes_log_over_a_wide_range() {
        let (a, log) = Axis::auto("KiB", "KiB (log scale)", &[0.3, 3.8, 26.0], plain);
        assert!(log);
        assert_eq!(a.label, "KiB (log scale)");
        assert!(a.lo < 0.3f64.log10() && a.hi >= 26f64.log10());
        let (a, log) = Axis::auto("ms", "ms (log scale)", &[5.0, 30.0], plain);
        assert!(!log);
        assert_eq!(a.label, "ms");
        assert!(a.lo < 0.0 && a.ticks[0].1 == "0", "{:?}", a.ticks);
        let (_, log) = Axis::auto("KiB", "KiB (log scale)", &[-0.1, 30.0], plain);
        assert!(!log, "negative values are linear");
    }

    #[test]
    fn categories_read_top_down_and_labels_are_found_by_value() {
        let a = Axis::categories("", &["a".into(), "b".into(), "c".into()]);
        assert_eq!(a.tick_label(2.0), "a");
        assert_eq!(a.tick_label(0.0), "c");
        assert_eq!(a.tick_label(0.5), "");
    }

    #[test]
    fn numbers_for_slides() {
        assert_eq!(short_count(1000.0), "1k");
        assert_eq!(short_count(15_000.0), "15k");
        assert_eq!(short_count(1500.0), "1.5k");
        assert_eq!(short_count(200.0), "200");
        assert_eq!(short_count(100_000.0), "100k");
        assert_eq!(thousands(10_002), "10,002");
        assert_eq!(thousands(999), "999");
        assert_eq!(plain(0.25), "0.25");
        assert_eq!(plain(316.4), "316");
        assert_eq!(plain(4.5), "4.5");
        assert_eq!(nice_step(63.0), 100.0);
        assert_eq!(nice_step(45.0), 50.0);
        assert_eq!(nice_step(0.3), 0.5);
    }
}
