//! `loadgen.hosts` of a case: where its workers ran, what each host carried,
//! how far each one's clock was from the coordinator's, and the CPU each
//! worker used.

use serde::{Deserialize, Serialize};

use crate::worker::clock_sync::Estimate;

/// One host of a case's load.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HostResult {
    /// `local` (beside the coordinator), a namespace's name, or a host's.
    pub host: String,
    /// Connections planned on this host, and connected by the workers that reported.
    pub connections: u64,
    pub connected: u64,
    /// The host's clock minus the coordinator's, from its worker measured
    /// with the smallest uncertainty; null when none was.
    pub offset_ns: Option<i64>,
    pub uncertainty_ns: Option<u64>,
    /// CPU seconds its workers used, summed over those that reported.
    pub cpu_user: f64,
    pub cpu_sys: f64,
    pub workers: Vec<WorkerResult>,
}

/// One worker of a case.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerResult {
    pub worker: usize,
    /// Connections planned, and connected (from its report).
    pub connections: u64,
    pub connected: u64,
    /// Its clock against the coordinator's; null when it never answered.
    pub clock: Option<Estimate>,
    /// Its receipt times were corrected by the offset (a worker started
    /// through a host's command); one beside the coordinator shares its
    /// clock and is measured only as a check.
    pub corrected: bool,
    /// CPU seconds it used from start to report (user, system).
    pub cpu_user: f64,
    pub cpu_sys: f64,
    /// Why it is missing from the merged figures: it could not start, died,
    /// fell silent or did not report; null when it reported.
    pub failure: Option<String>,
}

impl HostResult {
    /// The workers grouped by host, hosts in the order first met.
    pub fn group(workers: Vec<(String, WorkerResult)>) -> Vec<HostResult> {
        let mut hosts: Vec<HostResult> = Vec::new();
        for (host, w) in workers {
            let i = match hosts.iter().position(|h| h.host == host) {
                Some(i) => i,
                None => {
                    hosts.push(HostResult {
                        host,
                        ..HostResult::default()
                    });
                    hosts.len() - 1
                }
            };
            let h = &mut hosts[i];
            h.connections += w.connections;
            h.connected += w.connected;
            h.cpu_user += w.cpu_user;
            h.cpu_sys += w.cpu_sys;
            if let Some(c) = w.clock {
                if h.uncertainty_ns.is_none_or(|u| c.uncertainty_ns < u) {
                    h.offset_ns = Some(c.offset_ns);
                    h.uncertainty_ns = Some(c.uncertainty_ns);
                }
            }
            h.workers.push(w);
        }
        hosts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(w: usize, offset: i64, uncertainty: u64) -> WorkerResult {
        WorkerResult {
            worker: w,
            connections: 10,
            connected: 9,
            clock: Some(Estimate {
                offset_ns: offset,
                uncertainty_ns: uncertainty,
                rtt_ns: uncertainty * 2,
                exchanges: 8,
            }),
            cpu_user: 1.0,
            cpu_sys: 0.5,
            ..WorkerResult::default()
        }
    }

    #[test]
    fn grouped_by_host_with_the_surest_clock() {
        let missing = WorkerResult {
            worker: 3,
            connections: 10,
            failure: Some("could not start".into()),
            ..WorkerResult::default()
        };
        let hosts = HostResult::group(vec![
            ("b".into(), worker(0, 500, 90)),
            ("a".into(), worker(1, -20, 40)),
            ("b".into(), worker(2, 700, 30)),
            ("a".into(), missing),
        ]);
        assert_eq!(hosts.len(), 2);
        let (b, a) = (&hosts[0], &hosts[1]);
        assert_eq!((b.host.as_str(), a.host.as_str()), ("b", "a"));
        assert_eq!((b.connections, b.connected), (20, 18));
        assert_eq!((b.offset_ns, b.uncertainty_ns), (Some(700), Some(30)));
        assert_eq!((a.connections, a.connected), (20, 9));
        assert_eq!((a.offset_ns, a.uncertainty_ns), (Some(-20), Some(40)));
        assert_eq!((b.cpu_user, b.cpu_sys), (2.0, 1.0));
        assert_eq!(a.workers.len(), 2);
    }
}
