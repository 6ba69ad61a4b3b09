//! A headline figure of a case, with its range when the run has repeats.
//!
//! # Where the range comes from
//! A run with repeats carries, per case, `spread`: for each headline figure,
//! keyed by the figure's path in the case (the [`Figure::key`]s below), its
//! `median`, `min` and `max` over the repeats, in the figure's own unit (see
//! `chart::results::Spread`). A figure with a spread is shown as
//! `median [min–max]`, marked when the range passes [`WIDE`] of the median;
//! without one, as the case's own value. A run format that puts the summary
//! elsewhere changes only [`Figure::key`] or the `spread` field's reading.

use crate::chart::results::{Case, Spread};

/// A range wider than this share of the median is marked.
pub const WIDE: f64 = 0.10;

/// The figures of the comparison table that repeats summarise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    RssPerConn,
    KernelPerConn,
    P50,
    P99,
    P999,
    CpuPerDelivery,
    DeliveredFraction,
    LoadgenCpuPerDelivery,
    LoadgenRssPerConn,
}

impl Figure {
    /// The figure's path in a case, as the key of its `spread`.
    pub fn key(self) -> &'static str {
        match self {
            Figure::RssPerConn => "server.rss_per_conn",
            Figure::KernelPerConn => "server.kernel_per_conn",
            Figure::P50 => "delivery.latency_us.p50",
            Figure::P99 => "delivery.latency_us.p99",
            Figure::P999 => "delivery.latency_us.p999",
            Figure::CpuPerDelivery => "server.cpu_per_delivery_us",
            Figure::DeliveredFraction => "delivery.delivered_fraction",
            Figure::LoadgenCpuPerDelivery => "loadgen.cpu_per_delivery_us",
            Figure::LoadgenRssPerConn => "loadgen.rss_per_conn",
        }
    }

    /// The case's own value of the figure (latencies in microseconds).
    fn value(self, c: &Case) -> Option<f64> {
        let l = &c.delivery.latency_us;
        let latency = |v: u64| (l.count > 0).then_some(v as f64);
        match self {
            Figure::RssPerConn => c.server.rss_per_conn,
            Figure::KernelPerConn => c.server.kernel_per_conn,
            Figure::P50 => latency(l.p50),
            Figure::P99 => latency(l.p99),
            Figure::P999 => latency(l.p999),
            Figure::CpuPerDelivery => c.server.cpu_per_delivery_us,
            Figure::DeliveredFraction => c.delivery.delivered_fraction,
            Figure::LoadgenCpuPerDelivery => c.loadgen.cpu_per_delivery_us,
            Figure::LoadgenRssPerConn => c.loadgen.rss_per_conn,
        }
    }
}

/// What a table cell shows of one figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    /// The value, or the median over repeats.
    pub value: Option<f64>,
    pub range: Option<(f64, f64)>,
    /// The range passes [`WIDE`] of the median.
    pub wide: bool,
}

/// The figure of `c` as the table shows it.
pub fn shown(c: &Case, f: Figure) -> Shown {
    match c.spread.get(f.key()) {
        Some(&Spread { median, min, max }) => Shown {
            value: Some(median),
            range: Some((min, max)),
            wide: median != 0.0 && (max - min).abs() / median.abs() > WIDE,
        },
        None => Shown {
            value: f.value(c),
            range: None,
            wide: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(spread: &[(&str, f64, f64, f64)]) -> Case {
        let mut c = Case::default();
        c.delivery.latency_us.count = 10;
        c.delivery.latency_us.p99 = 9_000;
        c.server.rss_per_conn = Some(300.0);
        for (k, median, min, max) in spread {
            c.spread.insert(
                k.to_string(),
                Spread {
                    median: *median,
                    min: *min,
                    max: *max,
                },
            );
        }
        c
    }

    #[test]
    fn a_figure_with_a_spread_shows_its_median_and_range() {
        let c = case(&[
            ("delivery.latency_us.p99", 10_000.0, 9_500.0, 10_400.0),
            ("server.rss_per_conn", 310.0, 250.0, 330.0),
        ]);
        let p99 = shown(&c, Figure::P99);
        assert_eq!(p99.value, Some(10_000.0));
        assert_eq!(p99.range, Some((9_500.0, 10_400.0)));
        // 900 of 10,000 is 9%: not marked; 80 of 310 is 26%: marked.
        assert!(!p99.wide);
        assert!(shown(&c, Figure::RssPerConn).wide);
    }

    #[test]
    fn without_a_spread_the_case_value_is_shown_alone() {
        let c = case(&[]);
        let want = [
            (Figure::P99, Some(9_000.0)),
            (Figure::RssPerConn, Some(300.0)),
            (Figure::KernelPerConn, None),
            (Figure::CpuPerDelivery, None),
        ];
        for (f, value) in want {
            let s = shown(&c, f);
            assert_eq!((s.value, s.range, s.wide), (value, None, false), "{f:?}");
        }
        let mut none_delivered = c.clone();
        none_delivered.delivery.latency_us.count = 0;
        assert_eq!(shown(&none_delivered, Figure::P99).value, None);
    }
}
