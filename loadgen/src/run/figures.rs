//! The server's figures of a case: per connection from the samples at the
//! baseline and at the step, CPU per delivery from the readings around the
//! publish phase.

use crate::results::Case;
use crate::sampler::Sample;

/// A CPU reading: the server's sample, and the load generator's CPU seconds
/// (its workers and this process).
pub(super) type CpuReading = (Option<Sample>, f64, f64);

/// Fills in `case.server` and `case.loadgen` from the samples and readings;
/// per connection over `at_step` connections, those open when the step was
/// sampled (0: those open at the end, `connections.held`), as a disconnect
/// storm leaves none open at the end.
pub(super) fn summarise_server(
    case: &mut Case,
    samples: &[(String, Sample)],
    cpu_before: Option<CpuReading>,
    cpu_after: CpuReading,
    at_step: u64,
) {
    let srv = &mut case.server;
    srv.peak_rss = samples.iter().map(|(_, s)| s.rss).max().unwrap_or(0);
    let conns = match at_step {
        0 => case.connections.held as f64,
        n => n as f64,
    };
    if let (Some(b), Some(a)) = (&srv.baseline, &srv.at_step) {
        srv.threads = a.threads;
        srv.fds = a.fds;
        srv.processes = a.processes;
        if conns > 0.0 {
            srv.rss_per_conn = Some((a.rss as f64 - b.rss as f64) / conns);
            srv.anon_pss_per_conn = Some((a.pss_anon as f64 - b.pss_anon as f64) / conns);
            if let (Some(kb), Some(ka)) = (&b.kernel, &a.kernel) {
                srv.kernel_per_conn = Some((ka.total as f64 - kb.total as f64) / conns);
                srv.kernel_source = Some(ka.source.name().to_string());
            }
        }
    }
    let lg = &mut case.loadgen;
    if conns > 0.0 && lg.rss_at_step > 0 {
        lg.rss_per_conn = Some((lg.rss_at_step as f64 - lg.rss_start as f64) / conns);
    }
    if let Some((Some(b), lg_before, workers_before)) = cpu_before {
        if let Some(a) = &cpu_after.0 {
            srv.publish_cpu_user = a.cpu_user - b.cpu_user;
            srv.publish_cpu_sys = a.cpu_sys - b.cpu_sys;
        }
        let received = case.delivery.counts.received as f64;
        if received > 0.0 {
            srv.cpu_per_delivery_us =
                Some((srv.publish_cpu_user + srv.publish_cpu_sys) * 1e6 / received);
            case.loadgen.publish_cpu = cpu_after.1 - lg_before;
            case.loadgen.publish_cpu_workers = cpu_after.2 - workers_before;
            case.loadgen.cpu_per_delivery_us = Some(case.loadgen.publish_cpu * 1e6 / received);
        }
    }
}

/// Settles the connections the server never took up, and fails the case
/// (unless it failed already) on connections that failed or were accepted
/// and never served.
pub(super) fn judge_connections(case: &mut Case) {
    let step = case.step;
    let failed: u64 = case.connections.failed.values().sum();
    if case.failure.is_none() && failed > 0 {
        let mut causes: Vec<_> = case.connections.failed.iter().collect();
        causes.sort_by(|a, b| b.1.cmp(a.1));
        let what: Vec<String> = causes.iter().map(|(k, v)| format!("{v} {k}")).collect();
        let idle = match case.connections.server_closed_idle {
            Some(n) => format!("; the server closed {n} for sending no request in time"),
            None => String::new(),
        };
        case.failure = Some(format!(
            "{failed} of {step} connections failed ({}{idle})",
            what.join(", ")
        ));
    }
    // A long-poll counts as subscribed once its request is out; the server's
    // own count tells whether it was taken up.
    let c = &mut case.connections;
    if let Some(n) = c.server_subscribers {
        c.waiting = c.waiting.max(c.subscribed.saturating_sub(n));
    }
    if case.failure.is_none() && c.waiting > 0 {
        case.failure = Some(format!(
            "{} of {step} connections were accepted but never served",
            c.waiting
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{KernelMem, KernelSource};

    fn sample(rss: u64, kernel: u64, cpu: f64) -> Sample {
        Sample {
            rss,
            pss_anon: rss / 2,
            threads: 3,
            fds: 9,
            processes: 1,
            cpu_user: cpu,
            cpu_sys: cpu / 2.0,
            kernel: Some(KernelMem {
                source: KernelSource::CgroupV1,
                total: kernel,
                kernel_stack: 0,
                sock: 0,
                slab: 0,
                usage: 0,
            }),
            ..Sample::default()
        }
    }

    #[test]
    fn per_connection_and_per_delivery() {
        let mut case = Case::default();
        case.connections.held = 100;
        case.delivery.counts.received = 1000;
        case.server.baseline = Some(sample(1_000_000, 50_000, 1.0));
        case.server.at_step = Some(sample(2_000_000, 450_000, 1.0));
        let samples = vec![
            ("hold".to_string(), sample(2_500_000, 0, 0.0)),
            ("end".to_string(), sample(2_000_000, 0, 0.0)),
        ];
        case.loadgen.rss_start = 3_000_000;
        case.loadgen.rss_at_step = 3_200_000;
        let before = (Some(sample(0, 0, 1.0)), 10.0, 9.0);
        let after = (Some(sample(0, 0, 3.0)), 10.5, 9.4);
        summarise_server(&mut case, &samples, Some(before), after.clone(), 0);
        let s = &case.server;
        assert_eq!(s.peak_rss, 2_500_000);
        assert_eq!(s.rss_per_conn, Some(10_000.0));
        assert_eq!(s.anon_pss_per_conn, Some(5_000.0));
        assert_eq!(s.kernel_per_conn, Some(4_000.0));
        assert_eq!(s.kernel_source.as_deref(), Some("cgroup-v1"));
        assert_eq!((s.threads, s.fds, s.processes), (3, 9, 1));
        // 2 s user + 1 s system over 1000 deliveries.
        assert_eq!(s.cpu_per_delivery_us, Some(3000.0));
        assert_eq!(case.loadgen.cpu_per_delivery_us, Some(500.0));
        assert!((case.loadgen.publish_cpu_workers - 0.4).abs() < 1e-9);
        assert_eq!(case.loadgen.rss_per_conn, Some(2_000.0));
        // After a storm none is open at the end: the step's count divides.
        case.connections.held = 0;
        case.server.rss_per_conn = None;
        summarise_server(&mut case, &samples, None, after, 100);
        assert_eq!(case.server.rss_per_conn, Some(10_000.0));
        assert_eq!(case.loadgen.rss_per_conn, Some(2_000.0));
    }

    #[test]
    fn failed_and_waiting_connections() {
        let mut case = Case {
            step: 10,
            ..Case::default()
        };
        judge_connections(&mut case);
        assert_eq!(case.failure, None);
        case.connections.subscribed = 10;
        case.connections.server_subscribers = Some(7);
        judge_connections(&mut case);
        assert_eq!(case.connections.waiting, 3);
        assert_eq!(
            case.failure.as_deref(),
            Some("3 of 10 connections were accepted but never served")
        );
        // Failed connections come first; waiting is settled either way.
        let mut case = Case {
            step: 10,
            ..Case::default()
        };
        case.connections.failed.insert("refused".into(), 2);
        case.connections.failed.insert("timeout".into(), 5);
        case.connections.subscribed = 3;
        case.connections.server_subscribers = Some(1);
        judge_connections(&mut case);
        assert_eq!(
            case.failure.as_deref(),
            Some("7 of 10 connections failed (5 timeout, 2 refused)")
        );
        assert_eq!(case.connections.waiting, 2);
        // What the server closed for silence is said beside them.
        let mut case = Case {
            step: 10,
            ..Case::default()
        };
        case.connections.failed.insert("closed".into(), 4);
        case.connections.server_closed_idle = Some(3);
        judge_connections(&mut case);
        assert_eq!(
            case.failure.as_deref(),
            Some("4 of 10 connections failed (4 closed; the server closed 3 for sending no request in time)")
        );
    }
}
