//! `churn`: while publishing, subscribers drop and come back, resuming after
//! the last id they saw; none may lose a message silently.

use super::{check, clean, FaultHook, Publishing};
use crate::publisher::PublishReport;
use crate::results::{Case, Check, FaultResult};
use crate::run::case::CaseRun;
use crate::scenario::{self, FaultKind};
use crate::worker::{Finish, ToWorker, WorkerFault};

pub(super) struct Churn {
    f: scenario::Churn,
}

impl Churn {
    pub fn new(f: scenario::Churn) -> Churn {
        Churn { f }
    }
}

impl FaultHook for Churn {
    fn kind(&self) -> FaultKind {
        FaultKind::Churn
    }

    fn worker(&self, _workers: u64, _worker: u64) -> WorkerFault {
        let (away_min_ms, away_max_ms) = self.f.away_ms();
        WorkerFault {
            churn_rate: self.f.rate(),
            churn_reset_fraction: self.f.reset_fraction(),
            away_min_ms,
            away_max_ms,
            ..WorkerFault::default()
        }
    }

    fn publish_start(&mut self, run: &mut CaseRun, _publishing: &Publishing) {
        run.workers.send(&ToWorker::Churn(true));
    }

    /// Churn stops; the subscribers away come back before the end is taken.
    fn publish_over(&mut self, run: &mut CaseRun, _report: &PublishReport, _finish: &mut Finish) {
        run.workers.send(&ToWorker::Churn(false));
        run.wait_back(10.0);
    }

    fn verdict(&mut self, case: &mut Case, fr: &mut FaultResult) -> Vec<Check> {
        let c = &fr.counts;
        let failed: u64 = case.connections.failed.values().sum();
        vec![
            check(
                "subscribers were churned",
                c.churned > 0,
                format!(
                    "{} dropped ({} with RST), {} back",
                    c.churned, c.churned_reset, c.reconnects
                ),
            ),
            check(
                "every churned subscriber came back",
                c.away_at_end == 0 && failed == 0,
                format!("{} still away, {failed} connects failed", c.away_at_end),
            ),
            clean(case),
        ]
    }
}
