//! A case's headline figures over its repeats: median, min and max.
//!
//! Each repeat is a whole case (a fresh server, fresh workers) and its
//! percentiles come from its own merged histogram; only then are the
//! repeats summarised, figure by figure. So `delivery.latency_us.p99` in a
//! spread is the median of the repeats' p99s, never a percentile of pooled
//! samples nor an average of percentiles. The median of an even number of
//! repeats is the mean of the middle two.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::results::Case;

/// One figure over repeats, in the figure's own unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    /// (max - min) / median: how wide the range is next to the median.
    pub fn width(&self) -> f64 {
        if self.median == 0.0 {
            if self.max == self.min {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (self.max - self.min).abs() / self.median.abs()
        }
    }
}

/// A range wider than this share of its median is marked as noisy.
pub const WIDE: f64 = 0.10;

/// The headline figures, each by its path in a case.
pub const FIGURES: [&str; 10] = [
    "server.rss_per_conn",
    "server.kernel_per_conn",
    "delivery.latency_us.p50",
    "delivery.latency_us.p99",
    "delivery.latency_us.p999",
    "delivery.latency_us.max",
    "server.cpu_per_delivery_us",
    "delivery.delivered_fraction",
    "loadgen.cpu_per_delivery_us",
    "loadgen.rss_per_conn",
];

/// The figures that fan-out is judged by, and so are compared with the
/// floor; `max` is the last delivery (of one broadcast, the whole fan-out).
pub const FAN_OUT: [&str; 5] = [
    "delivery.latency_us.p50",
    "delivery.latency_us.p99",
    "delivery.latency_us.p999",
    "delivery.latency_us.max",
    "server.cpu_per_delivery_us",
];

/// Figure `key` of `case` (latencies in microseconds), when it has one.
pub fn value(case: &Case, key: &str) -> Option<f64> {
    let l = &case.delivery.latency_us;
    let latency = |v: u64| (l.count > 0).then_some(v as f64);
    match key {
        "server.rss_per_conn" => case.server.rss_per_conn,
        "server.kernel_per_conn" => case.server.kernel_per_conn,
        "delivery.latency_us.p50" => latency(l.p50),
        "delivery.latency_us.p99" => latency(l.p99),
        "delivery.latency_us.p999" => latency(l.p999),
        "delivery.latency_us.max" => latency(l.max),
        "server.cpu_per_delivery_us" => case.server.cpu_per_delivery_us,
        "delivery.delivered_fraction" => case.delivery.delivered_fraction,
        "loadgen.cpu_per_delivery_us" => case.loadgen.cpu_per_delivery_us,
        "loadgen.rss_per_conn" => case.loadgen.rss_per_conn,
        _ => None,
    }
}

/// Figure `key` of `case` as it is reported: the median over its repeats
/// when it has a spread, else its own value.
pub fn headline(case: &Case, key: &str) -> Option<f64> {
    match case.spread.get(key) {
        Some(s) => Some(s.median),
        None => value(case, key),
    }
}

/// Every headline figure that some repeat has, over the repeats.
pub fn summarise(repeats: &[Case]) -> BTreeMap<String, Spread> {
    let mut out = BTreeMap::new();
    for key in FIGURES {
        let values: Vec<f64> = repeats.iter().filter_map(|c| value(c, key)).collect();
        if let Some(s) = Spread::of(&values) {
            out.insert(key.to_string(), s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range() {
        let s = Spread::of(&[113.9, 110.6, 113.3]).unwrap();
        assert_eq!((s.median, s.min, s.max), (113.3, 110.6, 113.9));
        // Even: the mean of the middle two.
        let s = Spread::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        let one = Spread::of(&[7.0]).unwrap();
        assert_eq!((one.median, one.min, one.max), (7.0, 7.0, 7.0));
        assert_eq!(one.width(), 0.0);
        assert_eq!(Spread::of(&[]), None);
        // Not-a-number is no measurement.
        assert_eq!(Spread::of(&[f64::NAN, 2.0]).unwrap().median, 2.0);
    }

    #[test]
    fn width_against_the_median() {
        let s = Spread::of(&[84.7, 96.6, 111.6]).unwrap();
        assert!((s.width() - (111.6 - 84.7) / 96.6).abs() < 1e-12);
        assert!(s.width() > WIDE);
        assert!(Spread::of(&[100.0, 104.0, 109.0]).unwrap().width() < WIDE);
        assert_eq!(Spread::of(&[0.0, 1.0, 0.0]).unwrap().width(), f64::INFINITY);
    }

    fn case(p99: u64, cpu: Option<f64>) -> Case {
        let mut c = Case::default();
        c.delivery.latency_us.count = 10;
        c.delivery.latency_us.p99 = p99;
        c.server.cpu_per_delivery_us = cpu;
        c.delivery.delivered_fraction = Some(1.0);
        c
    }

    #[test]
    fn summarised_figure_by_figure() {
        let reps = [
            case(110_600, Some(9.0)),
            case(113_900, None),
            case(113_300, Some(9.4)),
        ];
        let s = summarise(&reps);
        let p99 = s["delivery.latency_us.p99"];
        assert_eq!(
            (p99.median, p99.min, p99.max),
            (113_300.0, 110_600.0, 113_900.0)
        );
        // A figure some repeats lack is summarised over those that have it.
        let cpu = s["server.cpu_per_delivery_us"];
        assert_eq!((cpu.median, cpu.min, cpu.max), (9.2, 9.0, 9.4));
        assert_eq!(s["delivery.delivered_fraction"].median, 1.0);
        assert_eq!(s["delivery.latency_us.p50"].max, 0.0);
        assert!(!s.contains_key("server.rss_per_conn"));
        // No latencies recorded: no latency figure at all.
        let mut quiet = case(0, None);
        quiet.delivery.latency_us.count = 0;
        assert!(!summarise(&[quiet]).contains_key("delivery.latency_us.p99"));
        assert_eq!(
            headline(&reps[1], "delivery.latency_us.p99"),
            Some(113_900.0)
        );
    }
}
