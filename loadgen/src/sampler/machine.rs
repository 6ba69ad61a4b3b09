//! The machine a run happened on, and the limits in force.

use std::fs;

use serde::{Deserialize, Serialize};

/// The machine a run happened on, and the limits in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs online on the machine (not the ones this process is pinned
    /// to: with `--cpus` the coordinator runs on one, and the run was
    /// recorded as on a 1-core machine).
    pub cores: u64,
    /// `uname -r`.
    pub kernel: String,
    /// MemTotal, bytes.
    pub memory_total: u64,
    /// RLIMIT_NOFILE of this process (`u64::MAX`: unlimited).
    pub nofile_soft: u64,
    pub nofile_hard: u64,
    pub pid_max: u64,
    /// `kernel.threads-max`.
    pub threads_max: u64,
    pub max_map_count: u64,
    pub somaxconn: u64,
    pub tcp_max_syn_backlog: u64,
    /// Ephemeral ports, first and last.
    pub ip_local_port_range: (u32, u32),
    pub cpu_model: String,
}

/// Reads [`Machine`] from /proc and getrlimit; what cannot be read is 0 or "".
pub fn machine() -> Machine {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let num = |p: &str| read(p).trim().parse::<u64>().unwrap_or(0);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let ports: Vec<u32> = read("/proc/sys/net/ipv4/ip_local_port_range")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k.trim(), "model name" | "Model" | "cpu model").then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let cores = if online > 0 {
        online as u64
    } else {
        cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count() as u64
    };
    Machine {
        cores,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        memory_total: super::system::memory_total(),
        nofile_soft: if ok { limit.rlim_cur } else { 0 },
        nofile_hard: if ok { limit.rlim_max } else { 0 },
        pid_max: num("/proc/sys/kernel/pid_max"),
        threads_max: num("/proc/sys/kernel/threads-max"),
        max_map_count: num("/proc/sys/vm/max_map_count"),
        somaxconn: num("/proc/sys/net/core/somaxconn"),
        tcp_max_syn_backlog: num("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
        ip_local_port_range: (
            ports.first().copied().unwrap_or(0),
            ports.get(1).copied().unwrap_or(0),
        ),
        cpu_model,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_figures() {
        let m = machine();
        assert!(m.cores >= 1);
        assert!(!m.kernel.is_empty() && !m.kernel.contains('\n'));
        assert!(m.memory_total > 0);
        assert!(m.nofile_soft > 0 && m.nofile_soft <= m.nofile_hard);
        assert!(m.pid_max > 0 && m.max_map_count > 0 && m.somaxconn > 0);
        assert!(m.ip_local_port_range.0 < m.ip_local_port_range.1);
        let v = serde_json::to_value(&m).unwrap();
        assert!(v["ip_local_port_range"].is_array());
    }

    #[test]
    fn cores_are_the_machines_whatever_this_thread_is_pinned_to() {
        let all = machine().cores;
        let pinned = std::thread::spawn(|| {
            // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and
            // sched_setaffinity(0) touch only it and this thread.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(0, &mut set);
                assert_eq!(
                    libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set),
                    0
                );
            }
            assert_eq!(std::thread::available_parallelism().unwrap().get(), 1);
            machine().cores
        })
        .join()
        .unwrap();
        assert_eq!(pinned, all);
    }
}
