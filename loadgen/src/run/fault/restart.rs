//! `restart`: the server is stopped while it is published to and started
//! again on the same ports; subscribers come back, and what the old server
//! held and had not delivered is reported lost (its backlog is in memory).

use std::time::{Duration, Instant};

use super::{check, Comeback, FaultHook, Publishing};
use crate::publisher::PublishReport;
use crate::results::{self, Case, Check, FaultResult};
use crate::run::case::CaseRun;
use crate::run::target::Target;
use crate::scenario::{self, FaultKind};
use crate::worker::{Finish, IdCheck, WorkerFault};

pub(super) struct Restart {
    f: scenario::Restart,
    /// From when the new server was asked to start.
    back: Comeback,
    restart: Option<results::Restart>,
}

impl Restart {
    pub fn new(f: scenario::Restart) -> Restart {
        Restart {
            f,
            back: Comeback::default(),
            restart: None,
        }
    }

    /// Stops the server and starts it again; the new process is sampled
    /// from then on.
    fn restart(&mut self, run: &mut CaseRun, publishing: &mut Publishing, at_secs: f64) {
        let Target::Dispatcher { name, .. } = run.target else {
            return;
        };
        run.set_phase("restart");
        let (r, new) = run.server.restart(&self.f, &run.args.exe, name, at_secs);
        self.back.from = Some(Instant::now());
        publishing.deadline += Duration::from_secs_f64(r.stop_secs + r.down_secs);
        match new {
            Ok(new) => {
                // What was sampled of the old process is kept.
                if let Some(pid) = new.pid {
                    run.follow(pid, "publish");
                }
                run.server = new;
                run.case.server.pid = run.server.pid;
            }
            Err(e) => {
                run.case.failure = Some(format!("the server did not start again: {e:#}"));
                publishing
                    .stop
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.restart = Some(r);
    }
}

impl FaultHook for Restart {
    fn kind(&self) -> FaultKind {
        FaultKind::Restart
    }

    fn worker(&self, _workers: u64, _worker: u64) -> WorkerFault {
        WorkerFault {
            reconnect: true,
            ..WorkerFault::default()
        }
    }

    fn before_baseline(&mut self, run: &mut CaseRun) {
        // The new server counts ids from 1 again: continuity across the
        // restart is checked by the publisher's sequence.
        run.ids = IdCheck::Sequence;
        // Short while a restart refuses publishes, so the schedule goes on.
        run.publish_timeout = Duration::from_secs(1);
    }

    fn publishing(&mut self, run: &mut CaseRun, publishing: &mut Publishing) {
        let at = publishing.started.elapsed().as_secs_f64();
        if self.back.from.is_none() && at >= self.f.at_secs() {
            self.restart(run, publishing, at);
        }
        self.back.watch(run);
    }

    /// Subscribers not yet back come back before the end is taken; they were
    /// due what the publisher's sequence gave, less what failed to publish.
    fn publish_over(&mut self, run: &mut CaseRun, report: &PublishReport, finish: &mut Finish) {
        self.back.settle(run, self.f.max_reconnect_secs());
        finish.expect = report.last_seqs.clone();
        finish.excused = report.failed_seqs.clone();
        if let Some(r) = self.restart.as_mut() {
            r.all_back_secs = self.back.all_back;
            r.publishes_failed = report.failed.values().sum();
        }
    }

    fn verdict(&mut self, case: &mut Case, fr: &mut FaultResult) -> Vec<Check> {
        fr.restart = self.restart.take();
        let d = &case.delivery.counts;
        if let Some(r) = fr.restart.as_mut() {
            r.lost = d.lost;
            case.notes.push(match &case.cluster {
                Some(c) => format!(
                    "node 0 of {} was restarted; the backlog lives in the broker they share, so a subscriber coming back (to the restarted node or, refused, to the next of its list) resumes from it ({} deliveries lost across the restart)",
                    c.nodes, r.lost
                ),
                None => format!(
                    "the backlog lives in the server's memory: what the old server held and had not delivered is gone with it ({} deliveries lost across the restart); a subscriber resuming with an id of the old server is given the new server's whole backlog",
                    r.lost
                ),
            });
        }
        let r = fr.restart.clone().unwrap_or_default();
        let c = &fr.counts;
        let max = fr.reconnect_us.as_ref().map_or(0, |s| s.max) as f64 / 1e6;
        vec![
            check(
                "the server came back",
                r.new_pid.is_some() && r.exit.is_none(),
                format!(
                    "stopped ({}) in {:.2} s, listening again {:.2} s later{}",
                    r.signal,
                    r.stop_secs,
                    r.down_secs,
                    r.exit
                        .as_deref()
                        .map(|e| format!("; {e}"))
                        .unwrap_or_default()
                ),
            ),
            check(
                &format!(
                    "every subscriber back within {} s",
                    self.f.max_reconnect_secs()
                ),
                c.away_at_end == 0
                    && c.server_drops > 0
                    && c.reconnects >= c.server_drops
                    && max <= self.f.max_reconnect_secs(),
                format!(
                    "{} dropped, {} back (p50 {:.2} s, max {max:.2} s from the drop), {} still away; all back {} after the new server listened",
                    c.server_drops,
                    c.reconnects,
                    fr.reconnect_us.as_ref().map_or(0, |s| s.p50) as f64 / 1e6,
                    c.away_at_end,
                    r.all_back_secs.map_or("never".into(), |s| format!("{s:.2} s"))
                ),
            ),
            check(
                "no duplicates, no disorder",
                d.duplicates == 0 && d.out_of_order == 0 && d.protocol_errors == 0,
                format!(
                    "{} duplicates, {} out of order, {} protocol errors; {} deliveries lost across the restart ({} publishes failed while it was down)",
                    d.duplicates, d.out_of_order, d.protocol_errors, d.lost, r.publishes_failed
                ),
            ),
        ]
    }
}
