//! Whether a run's largest step fits this machine's memory, judged before
//! anything starts from measured per-connection costs: a case that would
//! drive the machine into the OOM killer is refused with its figures.
//!
//! Every subscriber costs both ends of a loopback connection in the kernel,
//! the server's user space and the load generator's. The figures below are
//! measured (`results/reference/idle-10k/`, 2026-12-02: RSS growth and
//! kernel growth per idle subscriber), rounded up, so the estimate errs
//! towards refusing; see docs/DESIGN.md, "Machine limits".

use anyhow::{bail, Result};

use crate::scenario::Scenario;

/// The kernel's part of the load generator's end of an idle loopback
/// connection (the server's end is in [`server_cost`]).
const CLIENT_KERNEL: u64 = 4 * 1024;
/// The load generator's user space per connection (RSS growth: 483-489 B
/// measured), rounded up.
const LOADGEN_USER: u64 = 640;
/// One worker process before it opens anything (RSS, rounded up).
const WORKER_BASE: u64 = 16 << 20;
/// A server before its first subscriber, and what the rest of the run uses.
const BASE: u64 = 256 << 20;

/// What one idle subscriber costs a server: (user space, kernel), bytes.
fn server_cost(target: &str) -> (u64, u64) {
    match target {
        // Kernel: a thread's stack and task, besides the socket.
        "thread-per-connection" => (14 * 1024, 27 * 1024),
        "thread-pool" => (4608, 4 * 1024),
        "reactor" | "uring" | "floor" => (512, 4 * 1024),
        "tokio" => (1536, 4 * 1024),
        "green" => (4608, 4 * 1024),
        "nchan" => (11 * 1024, 4 * 1024),
        "pushpin" => (46 * 1024, 4 * 1024),
        // A server we know nothing of: the most any of ours or a peer costs.
        _ => (46 * 1024, 27 * 1024),
    }
}

/// The memory one case needs, bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Need {
    pub kernel: u64,
    pub server: u64,
    pub loadgen: u64,
}

impl Need {
    pub fn of(target: &str, conns: u64, workers: u64) -> Need {
        let (user, kernel) = server_cost(target);
        Need {
            kernel: conns * (kernel + CLIENT_KERNEL),
            server: conns * user,
            loadgen: conns * LOADGEN_USER + workers * WORKER_BASE,
        }
    }

    pub fn total(&self) -> u64 {
        self.kernel + self.server + self.loadgen + BASE
    }
}

/// The targets a run will measure, by name (an external server as `target`).
fn targets(s: &Scenario, external: bool) -> Vec<String> {
    let mut names: Vec<String> = s.dispatchers.iter().map(|d| d.name.clone()).collect();
    names.extend(s.peers.iter().cloned());
    if s.floor {
        names.push("floor".into());
    }
    if external {
        names.push("target".into());
    }
    names
}

/// Refuses the run when any target's largest step needs more than
/// `available` bytes, naming each such case with its figures.
pub fn check(s: &Scenario, external: bool, workers: u64, available: u64) -> Result<()> {
    let conns = *s.steps.iter().max().unwrap_or(&0);
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let mut refused = Vec::new();
    for t in targets(s, external) {
        let need = Need::of(&t, conns, workers);
        if need.total() > available {
            refused.push(format!(
                "{t} at {conns} connections needs about {:.1} GiB ({:.1} kernel for both ends \
                 of each connection, {:.1} server, {:.1} load generator)",
                gib(need.total()),
                gib(need.kernel),
                gib(need.server),
                gib(need.loadgen)
            ));
        }
    }
    if !refused.is_empty() {
        bail!(
            "{}; this machine has {:.1} GiB available: lower the steps or leave the target out",
            refused.join("; "),
            gib(available)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn scenario(dispatchers: &[&str], steps: &[u64]) -> Scenario {
        let names: Vec<String> = dispatchers.iter().map(|d| format!("\"{d}\"")).collect();
        let steps: Vec<String> = steps.iter().map(u64::to_string).collect();
        let text = format!(
            "name = \"t\"\ndispatchers = [{}]\ntransports = [\"sse\"]\nsteps = [{}]\n",
            names.join(", "),
            steps.join(", ")
        );
        Scenario::from_str(&text, "test").unwrap()
    }

    #[test]
    fn two_million_uring_subscribers_fit_in_this_machines_memory() {
        let s = scenario(&["uring"], &[1000, 2_000_000]);
        let workers = 2_000_000u64.div_ceil(crate::run::PER_WORKER);
        let need = Need::of("uring", 2_000_000, workers);
        // 8 KiB of kernel per connection dominates: about 15 GiB.
        assert!(need.kernel > 15 * GIB && need.kernel < 16 * GIB, "{need:?}");
        assert!(check(&s, false, workers, 22 * GIB).is_ok());
        // Not on a machine of 16 GiB.
        let err = check(&s, false, workers, 16 * GIB).unwrap_err().to_string();
        assert!(
            err.starts_with("uring at 2000000 connections needs about 1"),
            "{err}"
        );
        assert!(err.contains("16.0 GiB available"), "{err}");
    }

    #[test]
    fn every_case_that_cannot_fit_is_named_and_only_those() {
        let s = scenario(&["reactor", "thread-per-connection"], &[500_000]);
        let err = check(&s, true, 34, 20 * GIB).unwrap_err().to_string();
        assert!(
            err.contains("thread-per-connection at 500000 connections needs about 22."),
            "{err}"
        );
        // An external server of unknown cost is judged at the worst known.
        assert!(err.contains("target at 500000"), "{err}");
        assert!(!err.contains("reactor"), "{err}");
    }
}
