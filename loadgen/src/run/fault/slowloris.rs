//! `slowloris`: attackers send a request head one byte at a time while the
//! step is held and published to; the server must cut them off within the
//! header deadline, answer new connections and serve its subscribers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{all_delivered, check, clean, FaultHook, Publishing};
use crate::results::{Case, Check, FaultResult, Probe};
use crate::run::case::CaseRun;
use crate::run::server::stats;
use crate::scenario::{self, FaultKind};
use crate::worker::{ToWorker, WorkerFault};

/// The probe thread, and the flag that stops it: the time each new
/// connection took to be answered, or None.
type Probing = (Arc<AtomicBool>, JoinHandle<Vec<Option<f64>>>);

pub(super) struct Slowloris {
    f: scenario::Slowloris,
    probing: Option<Probing>,
    probe: Option<Probe>,
}

impl Slowloris {
    pub fn new(f: scenario::Slowloris) -> Slowloris {
        Slowloris {
            f,
            probing: None,
            probe: None,
        }
    }
}

impl FaultHook for Slowloris {
    fn kind(&self) -> FaultKind {
        FaultKind::Slowloris
    }

    /// The attackers, spread over the workers, the first ones taking the remainder.
    fn worker(&self, workers: u64, worker: u64) -> WorkerFault {
        let attackers = self.f.connections();
        WorkerFault {
            attackers: (attackers / workers + u64::from(worker < attackers % workers)) as usize,
            byte_interval_ms: self.f.byte_interval_ms(),
            // The case's transport: a WebSocket's attackers send an upgrade.
            attack_path: "/sub/loris?transport={transport}".into(),
            ..WorkerFault::default()
        }
    }

    fn hold_start(&mut self, run: &mut CaseRun) {
        run.workers.send(&ToWorker::Attack(true));
    }

    /// New connections are tried once a second while the publisher runs.
    fn publish_start(&mut self, run: &mut CaseRun, publishing: &Publishing) {
        let stop = publishing.stop.clone();
        let addr = run.server.addr;
        let limit = Duration::from_secs_f64(self.f.max_life_secs() * 2.0);
        let probe_stop = stop.clone();
        let handle = std::thread::spawn(move || probe_loop(addr, probe_stop, limit));
        self.probing = Some((stop, handle));
    }

    fn hold_over(&mut self, run: &mut CaseRun) {
        if let Some((stop, h)) = self.probing.take() {
            stop.store(true, Ordering::Relaxed);
            let times = h.join().unwrap_or_default();
            let mut ok: Vec<f64> = times.iter().flatten().copied().collect();
            ok.sort_by(f64::total_cmp);
            self.probe = Some(Probe {
                tried: times.len() as u64,
                answered: ok.len() as u64,
                p50_ms: ok.get(ok.len() / 2).copied().unwrap_or(0.0),
                max_ms: ok.last().copied().unwrap_or(0.0),
            });
        }
        run.workers.send(&ToWorker::Attack(false));
    }

    fn verdict(&mut self, case: &mut Case, fr: &mut FaultResult) -> Vec<Check> {
        fr.probe = self.probe.take();
        let c = &fr.counts;
        let max_life_secs = self.f.max_life_secs();
        let max_life = max_life_secs * 1e6;
        let life = fr.attacker_life_us.as_ref();
        let probe = fr.probe.clone().unwrap_or_default();
        vec![
            check(
                &format!("every attacker closed within {max_life_secs} s"),
                c.attackers_closed > 0
                    && life.is_some_and(|l| (l.max as f64) <= max_life)
                    && (c.attacker_oldest_at_stop_us as f64) <= max_life,
                format!(
                    "{} closed by the server ({} with 408), {} refused, life p50 {:.1} s max {:.1} s; {} open at the end, oldest {:.1} s",
                    c.attackers_closed,
                    c.attackers_408,
                    c.attackers_refused,
                    life.map_or(0.0, |l| l.p50 as f64 / 1e6),
                    life.map_or(0.0, |l| l.max as f64 / 1e6),
                    c.attackers_open_at_stop,
                    c.attacker_oldest_at_stop_us as f64 / 1e6
                ),
            ),
            check(
                &format!("new connections answered within {max_life_secs} s"),
                probe.tried > 0
                    && probe.answered == probe.tried
                    && probe.max_ms <= max_life_secs * 1000.0,
                format!(
                    "{} of {} answered, p50 {:.1} ms, max {:.1} ms",
                    probe.answered, probe.tried, probe.p50_ms, probe.max_ms
                ),
            ),
            all_delivered(case, "subscribers got everything"),
            clean(case),
        ]
    }
}

/// New connections to `addr` during an attack, one a second until `stop`:
/// the time each took to get a whole `/stats` answer, or None.
fn probe_loop(addr: SocketAddr, stop: Arc<AtomicBool>, limit: Duration) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let answered = stats(addr, limit).is_some();
        out.push(answered.then(|| t.elapsed().as_secs_f64() * 1000.0));
        if let Some(rest) = Duration::from_secs(1).checked_sub(t.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    out
}
