//! `slow`: some subscribers stop reading once subscribed; the server must
//! drop them, serve the others, and keep its memory bounded.

use std::time::Duration;

use super::{all_delivered, check, clean, FaultHook};
use crate::results::{Case, Check, FaultResult};
use crate::run::case::CaseRun;
use crate::run::server::stats;
use crate::scenario::{self, FaultKind};
use crate::worker::WorkerFault;

pub(super) struct Slow {
    f: scenario::Slow,
    /// Our server's `/stats` at the end.
    end_stats: Option<serde_json::Value>,
}

impl Slow {
    pub fn new(f: scenario::Slow) -> Slow {
        Slow { f, end_stats: None }
    }
}

impl FaultHook for Slow {
    fn kind(&self) -> FaultKind {
        FaultKind::Slow
    }

    fn worker(&self, _workers: u64, _worker: u64) -> WorkerFault {
        let fraction = self.f.fraction();
        WorkerFault {
            slow_every: if fraction > 0.0 {
                (1.0 / fraction).round().max(1.0) as u64
            } else {
                0
            },
            ..WorkerFault::default()
        }
    }

    fn before_server_stop(&mut self, run: &mut CaseRun) {
        if run.ours {
            self.end_stats = stats(run.server.publish_addr, Duration::from_secs(5));
        }
    }

    fn verdict(&mut self, case: &mut Case, fr: &mut FaultResult) -> Vec<Check> {
        fr.server_dropped_slow = self
            .end_stats
            .as_ref()
            .and_then(|v| v["dropped_slow"].as_u64());
        if let Some(b) = &case.server.baseline {
            fr.rss_growth = Some(case.server.peak_rss as i64 - b.rss as i64);
        }
        let c = &fr.counts;
        let growth = fr.rss_growth.unwrap_or(i64::MAX);
        let max_mib = self.f.max_rss_growth_mib();
        vec![
            check(
                "every slow subscriber was dropped",
                c.slow > 0 && c.slow_dropped == c.slow,
                format!(
                    "{} of {} slow subscribers found closed; server dropped_slow {}",
                    c.slow_dropped,
                    c.slow,
                    fr.server_dropped_slow.map_or("-".into(), |n| n.to_string())
                ),
            ),
            check(
                &format!("server RSS grew at most {max_mib} MiB"),
                (growth as f64) <= max_mib * 1024.0 * 1024.0,
                format!(
                    "peak RSS {:.1} MiB over baseline",
                    growth as f64 / 1048576.0
                ),
            ),
            all_delivered(case, "healthy subscribers got everything"),
            clean(case),
        ]
    }
}
