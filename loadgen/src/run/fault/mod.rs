//! What a fault adds to a case, behind one hook interface: each kind, in a
//! file of its own, says what its workers do, what it does before the ramp,
//! during the hold (publishing included) and how it is judged. A case calls
//! the hooks in the order its phases run; a hook not written does nothing.
//!
//! To change how a fault is judged, read its `verdict`: the checks it
//! returns are its pass line in `run.json` and the table.

use std::time::Instant;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;

use super::case::CaseRun;
use super::workers::Workers;
use crate::publisher::PublishReport;
use crate::results::{Case, Check, FaultResult};
use crate::scenario::{Fault, FaultKind};
use crate::worker::{Finish, WorkerFault};

mod churn;
mod disconnect;
mod node;
mod restart;
mod slow;
mod slowloris;

/// When the subscribers a server's end dropped were all back: watched while
/// publishing, from the moment a server is there again to take them.
#[derive(Default)]
pub(super) struct Comeback {
    /// When the server was there again (or the node gone, for the others
    /// to take its subscribers).
    pub from: Option<Instant>,
    /// Seconds from then to every subscriber back.
    pub all_back: Option<f64>,
}

impl Comeback {
    /// About every 100 ms while publishing: every subscriber is back when
    /// none is away and as many are open as the ramp held (after 500 ms, so
    /// that the drop has been seen).
    pub fn watch(&mut self, run: &CaseRun) {
        if let Some(t) = self.from.filter(|_| self.all_back.is_none()) {
            let p = run.workers.total();
            if p.away == 0
                && p.open >= run.held
                && t.elapsed() > std::time::Duration::from_millis(500)
            {
                self.all_back = Some(t.elapsed().as_secs_f64());
            }
        }
    }

    /// Publishing is over: subscribers not yet back get up to `limit_secs`.
    pub fn settle(&mut self, run: &mut CaseRun, limit_secs: f64) {
        run.wait_back(limit_secs.max(10.0));
        if let (Some(t), None) = (self.from, self.all_back) {
            if run.workers.total().away == 0 {
                self.all_back = Some(t.elapsed().as_secs_f64());
            }
        }
    }
}

/// The publish phase as a fault sees it while it runs.
pub(super) struct Publishing {
    /// When the publisher started.
    pub started: Instant,
    /// When the publisher is stopped if it has not finished.
    pub deadline: Instant,
    /// Stops the publisher.
    pub stop: Arc<AtomicBool>,
}

/// The hooks of one fault, in the order a case calls them. Each is called
/// only while the case has not failed, except `hold_over` and
/// `before_server_stop`, which undo or observe what the fault did.
pub(super) trait FaultHook {
    fn kind(&self) -> FaultKind;

    // Before the ramp.

    /// What worker `worker` of `workers` does.
    fn worker(&self, _workers: u64, _worker: u64) -> WorkerFault {
        WorkerFault::default()
    }
    /// The server is up, its baseline not yet taken: settle how the case
    /// runs, warm the server up.
    fn before_baseline(&mut self, _run: &mut CaseRun) {}
    /// The baseline is taken; the workers are not started yet.
    fn before_ramp(&mut self, _run: &mut CaseRun) {}

    // During the hold.

    /// Every connection is up or failed; the hold starts.
    fn hold_start(&mut self, _run: &mut CaseRun) {}
    /// The hold is over, the step's figures taken; publishing comes next.
    fn hold_end(&mut self, _run: &mut CaseRun) {}
    /// The publisher is about to start.
    fn publish_start(&mut self, _run: &mut CaseRun, _publishing: &Publishing) {}
    /// About every 100 ms while the publisher runs.
    fn publishing(&mut self, _run: &mut CaseRun, _publishing: &mut Publishing) {}
    /// The publisher is done, deliveries may still be in flight; `finish`
    /// tells the workers what they were due.
    fn publish_over(&mut self, _run: &mut CaseRun, _report: &PublishReport, _finish: &mut Finish) {}
    /// Publishing and its drain are over (or there was none): undo what the
    /// fault still does.
    fn hold_over(&mut self, _run: &mut CaseRun) {}
    /// The workers have reported; the server still runs.
    fn before_server_stop(&mut self, _run: &mut CaseRun) {}

    // In the verdict.

    /// The fault's pass line, from what the case measured (`fr.counts` holds
    /// the workers' counts); it may complete `case` and `fr` first.
    fn verdict(&mut self, case: &mut Case, fr: &mut FaultResult) -> Vec<Check>;
}

/// The hooks of the scenario's fault.
pub(super) fn hook(fault: &Fault) -> Box<dyn FaultHook> {
    match fault {
        Fault::Disconnect(f) => Box::new(disconnect::Disconnect::new(f.clone())),
        Fault::Churn(f) => Box::new(churn::Churn::new(f.clone())),
        Fault::Slow(f) => Box::new(slow::Slow::new(f.clone())),
        Fault::Slowloris(f) => Box::new(slowloris::Slowloris::new(f.clone())),
        Fault::Restart(f) => Box::new(restart::Restart::new(f.clone())),
        Fault::Node(f) => Box::new(node::NodeKill::new(f.clone())),
    }
}

/// Judges the case by the fault's pass line: `case.fault` is set, and a
/// broken pass line is the case's failure (unless it failed already).
pub(super) fn judge(hook: &mut dyn FaultHook, case: &mut Case, workers: &Workers) -> Result<()> {
    let mut fr = FaultResult {
        kind: hook.kind().name().into(),
        ..FaultResult::default()
    };
    workers.merge_fault_counts(&mut fr)?;
    let checks = hook.verdict(case, &mut fr);
    fr.passed = checks.iter().all(|c| c.passed);
    fr.checks = checks;
    if !fr.passed && case.failure.is_none() {
        let broken: Vec<String> = fr
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{} ({})", c.what, c.detail))
            .collect();
        case.failure = Some(format!("fault pass line: {}", broken.join("; ")));
    }
    case.fault = Some(fr);
    Ok(())
}

fn check(what: &str, passed: bool, detail: String) -> Check {
    Check {
        what: what.into(),
        passed,
        detail,
    }
}

/// Every id arrived exactly once, or was reported missed.
fn clean(case: &Case) -> Check {
    let d = &case.delivery.counts;
    check(
        "every id arrived exactly once or was reported missed",
        d.lost == 0 && d.duplicates == 0 && d.out_of_order == 0 && d.protocol_errors == 0,
        format!(
            "{} received of {} due, {} lost silently, {} duplicates, {} out of order, {} protocol errors, {} reported missed",
            d.received, d.expected, d.lost, d.duplicates, d.out_of_order, d.protocol_errors, d.missed_reported
        ),
    )
}

/// Every subscriber got everything: none failed, none disconnected.
fn all_delivered(case: &Case, what: &str) -> Check {
    let d = &case.delivery.counts;
    let failed: u64 = case.connections.failed.values().sum();
    check(
        what,
        d.expected > 0
            && d.received >= d.expected
            && failed == 0
            && case.connections.disconnects == 0,
        format!(
            "{} of {} delivered, {} disconnected, {failed} failed",
            d.received, d.expected, case.connections.disconnects
        ),
    )
}
