//! `node`: several nodes share a broker, and one of them is SIGKILLed for
//! good while it is published to (its subscribers go on to the next node of
//! their list and resume there from the shared backlog, so nothing is lost
//! unreported), or the broker is SIGKILLed and started again without its
//! data (what it held and had not handed on is lost, and reported).

use std::time::{Duration, Instant};

use super::{check, clean, Comeback, FaultHook, Publishing};
use crate::publisher::PublishReport;
use crate::results::{self, Case, Check, FaultResult};
use crate::run::case::CaseRun;
use crate::scenario::{self, FaultKind, Kill};
use crate::worker::{Finish, IdCheck, WorkerFault};

pub(super) struct NodeKill {
    f: scenario::Node,
    /// From when the node died, or the broker was started again.
    back: Comeback,
    what: Option<results::Restart>,
}

impl NodeKill {
    pub fn new(f: scenario::Node) -> NodeKill {
        NodeKill {
            f,
            back: Comeback::default(),
            what: None,
        }
    }

    fn strike(&mut self, run: &mut CaseRun, publishing: &mut Publishing, at_secs: f64) {
        if run.cluster.is_none() {
            run.case.failure = Some("fault \"node\" needs several nodes".into());
            return;
        }
        let mut r = results::Restart {
            signal: "kill".into(),
            at_secs,
            ..results::Restart::default()
        };
        let t = Instant::now();
        match self.f.kill() {
            Kill::Node => {
                let node = self.f.node() as usize;
                match run.cluster.as_mut().and_then(|c| c.kill_node(node)) {
                    Some((pid, _)) => r.old_pid = pid,
                    None => run.case.failure = Some(format!("there is no node {node} to kill")),
                }
            }
            Kill::Broker => {
                run.set_phase("restart");
                let downtime = Duration::from_secs_f64(self.f.downtime_secs());
                let Some((old, new)) = run.cluster.as_mut().map(|c| c.restart_broker(downtime))
                else {
                    return;
                };
                r.old_pid = Some(old);
                match new {
                    Ok(pid) => r.new_pid = Some(pid),
                    Err(e) => {
                        r.exit = Some(format!("{e:#}"));
                        run.case.failure = Some(format!("the broker did not start again: {e:#}"));
                    }
                }
                r.down_secs = t.elapsed().as_secs_f64();
                publishing.deadline += Duration::from_secs_f64(r.down_secs);
                run.set_phase("publish");
            }
        }
        self.back.from = Some(Instant::now());
        self.what = Some(r);
    }
}

impl FaultHook for NodeKill {
    fn kind(&self) -> FaultKind {
        FaultKind::Node
    }

    fn worker(&self, _workers: u64, _worker: u64) -> WorkerFault {
        WorkerFault {
            reconnect: true,
            ..WorkerFault::default()
        }
    }

    fn before_baseline(&mut self, run: &mut CaseRun) {
        if self.f.kill() == Kill::Broker {
            // A broker without its data numbers from 1 again: continuity
            // across it is checked by the publisher's sequence.
            run.ids = IdCheck::Sequence;
        }
        // Short while a node or the broker refuses, so the schedule goes on.
        run.publish_timeout = Duration::from_secs(1);
    }

    fn publishing(&mut self, run: &mut CaseRun, publishing: &mut Publishing) {
        let at = publishing.started.elapsed().as_secs_f64();
        if self.back.from.is_none() && at >= self.f.at_secs() {
            self.strike(run, publishing, at);
        }
        self.back.watch(run);
    }

    /// Subscribers not yet back come back before the end is taken; with
    /// the publisher's sequence, they were due what it gave, less what
    /// failed to publish.
    fn publish_over(&mut self, run: &mut CaseRun, report: &PublishReport, finish: &mut Finish) {
        self.back.settle(run, self.f.max_reconnect_secs());
        if run.ids == IdCheck::Sequence {
            finish.expect = report.last_seqs.clone();
            finish.excused = report.failed_seqs.clone();
        }
        if let Some(r) = self.what.as_mut() {
            r.all_back_secs = self.back.all_back;
            r.publishes_failed = report.failed.values().sum();
        }
    }

    fn verdict(&mut self, case: &mut Case, fr: &mut FaultResult) -> Vec<Check> {
        let mut r = self.what.take().unwrap_or_default();
        let d = &case.delivery.counts;
        r.lost = d.lost;
        let c = &fr.counts;
        let max = fr.reconnect_us.as_ref().map_or(0, |s| s.max) as f64 / 1e6;
        let back = check(
            &format!(
                "every subscriber back within {} s",
                self.f.max_reconnect_secs()
            ),
            c.away_at_end == 0
                && c.reconnects >= c.server_drops
                && max <= self.f.max_reconnect_secs(),
            format!(
                "{} dropped, {} back (max {max:.2} s from the drop), {} still away; all back {}",
                c.server_drops,
                c.reconnects,
                c.away_at_end,
                r.all_back_secs
                    .map_or("never".into(), |s| format!("{s:.2} s after"))
            ),
        );
        let mut checks = Vec::new();
        match self.f.kill() {
            Kill::Node => {
                checks.push(check(
                    &format!("node {} was killed mid-broadcast", self.f.node()),
                    r.old_pid.is_some() && c.server_drops > 0,
                    format!(
                        "SIGKILL {:.2} s into publishing (pid {}); {} publishes failed",
                        r.at_secs,
                        r.old_pid.map_or("none".into(), |p| p.to_string()),
                        r.publishes_failed
                    ),
                ));
                checks.push(back);
                // Its subscribers resume on another node from the shared
                // backlog: nothing may be lost unreported.
                checks.push(clean(case));
            }
            Kill::Broker => {
                case.notes.push(format!(
                    "the broker was started again without its data: what it held and had not handed on is gone ({} deliveries lost, by the publisher's sequence)",
                    d.lost
                ));
                checks.push(check(
                    "the broker came back",
                    r.new_pid.is_some() && r.exit.is_none(),
                    format!(
                        "SIGKILL {:.2} s into publishing, serving again {:.2} s later{}",
                        r.at_secs,
                        r.down_secs,
                        r.exit
                            .as_deref()
                            .map(|e| format!("; {e}"))
                            .unwrap_or_default()
                    ),
                ));
                checks.push(back);
                checks.push(check(
                    "no duplicates, no disorder",
                    d.duplicates == 0 && d.out_of_order == 0 && d.protocol_errors == 0,
                    format!(
                        "{} duplicates, {} out of order, {} protocol errors; {} deliveries lost ({} publishes failed while it was down)",
                        d.duplicates, d.out_of_order, d.protocol_errors, d.lost, r.publishes_failed
                    ),
                ));
            }
        }
        fr.restart = Some(r);
        checks
    }
}
