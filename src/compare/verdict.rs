//! One figure of one case in two runs: the ratio, both ranges, a verdict.
//!
//! As criterion's change detection does, a difference counts only beyond
//! the runs' own noise: when the two ranges over repeats (min to max)
//! overlap, or the medians differ by less than [`NOISE`], the verdict is
//! "no change". A run without repeats has a range of one value, so its
//! noise is unknown and only [`NOISE`] protects it: repeat runs that are
//! compared.

use loadgen::spread::Spread;

/// Medians closer than this share are the same, ranges or not.
pub const NOISE: f64 = 0.02;

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// What became of a figure from run A to run B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Better,
    Worse,
    NoChange,
}

/// A figure's words for better and worse.
pub fn words(key: &str) -> (&'static str, &'static str) {
    if key.contains("latency") || key.contains("cpu") {
        ("faster", "slower")
    } else if key.contains("rss") || key.contains("kernel") {
        ("smaller", "larger")
    } else {
        ("better", "worse")
    }
}

/// Which way is better for figure `key`.
pub fn better(key: &str) -> Better {
    if key == "delivery.delivered_fraction" {
        Better::Higher
    } else {
        Better::Lower
    }
}

/// One figure compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub a: Spread,
    pub b: Spread,
    /// B's median over A's.
    pub ratio: f64,
    pub verdict: Verdict,
    /// Worse by more than this share (|ratio - 1|), when worse; else 0.
    pub regression: f64,
}

/// Compares `a` and `b` of a figure where `better` is better.
pub fn compare(a: Spread, b: Spread, better: Better) -> Change {
    let ratio = if a.median == 0.0 {
        if b.median == 0.0 {
            1.0
        } else {
            f64::INFINITY
        }
    } else {
        b.median / a.median
    };
    let overlap = a.min <= b.max && b.min <= a.max;
    let verdict = if overlap || (ratio - 1.0).abs() < NOISE {
        Verdict::NoChange
    } else if (b.median < a.median) == (better == Better::Lower) {
        Verdict::Better
    } else {
        Verdict::Worse
    };
    let regression = match verdict {
        Verdict::Worse => (ratio - 1.0).abs(),
        _ => 0.0,
    };
    Change {
        a,
        b,
        ratio,
        verdict,
        regression,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(median: f64, min: f64, max: f64) -> Spread {
        Spread { median, min, max }
    }

    #[test]
    fn verdicts() {
        type Row = (Spread, Spread, Better, Verdict);
        let table: [Row; 6] = [
            // The measured noise: uring p99 84.7-111.6 ms, then 96-100: no change.
            (
                s(96.6, 84.7, 111.6),
                s(98.0, 96.0, 100.0),
                Better::Lower,
                Verdict::NoChange,
            ),
            // Apart, lower is better.
            (
                s(110.0, 108.0, 113.0),
                s(90.0, 88.0, 92.0),
                Better::Lower,
                Verdict::Better,
            ),
            (
                s(90.0, 88.0, 92.0),
                s(110.0, 108.0, 113.0),
                Better::Lower,
                Verdict::Worse,
            ),
            // Apart, higher is better (the delivered fraction).
            (
                s(0.9, 0.9, 0.9),
                s(1.0, 1.0, 1.0),
                Better::Higher,
                Verdict::Better,
            ),
            // Single runs 1% apart: within the noise floor.
            (
                s(100.0, 100.0, 100.0),
                s(101.0, 101.0, 101.0),
                Better::Lower,
                Verdict::NoChange,
            ),
            (
                s(100.0, 100.0, 100.0),
                s(120.0, 120.0, 120.0),
                Better::Lower,
                Verdict::Worse,
            ),
        ];
        for (a, b, better, want) in table {
            assert_eq!(compare(a, b, better).verdict, want, "{a:?} -> {b:?}");
        }
        let c = compare(s(90.0, 88.0, 92.0), s(110.0, 108.0, 113.0), Better::Lower);
        assert!((c.ratio - 110.0 / 90.0).abs() < 1e-12);
        assert!((c.regression - 20.0 / 90.0).abs() < 1e-12);
        assert_eq!(
            compare(s(0.0, 0.0, 0.0), s(0.0, 0.0, 0.0), Better::Lower).ratio,
            1.0
        );
    }

    #[test]
    fn words_and_directions() {
        assert_eq!(words("delivery.latency_us.p99"), ("faster", "slower"));
        assert_eq!(words("server.rss_per_conn"), ("smaller", "larger"));
        assert_eq!(better("delivery.delivered_fraction"), Better::Higher);
        assert_eq!(better("server.cpu_per_delivery_us"), Better::Lower);
    }
}
