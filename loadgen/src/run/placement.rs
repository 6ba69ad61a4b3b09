//! Where the processes of a run execute: the server and the load
//! generator pinned to CPUs of their own (`--cpus`, `[placement]`).
//!
//! The affinity is set in the child between `fork` and `exec`, so a server
//! that starts more processes (a peer's script, nginx's workers, Pushpin's
//! services) passes it on to all of them, as a process inherits its
//! parent's. The coordinator pins itself at the start of the run, before
//! its publisher and sampler threads start, so they inherit it too.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Result};

use crate::scenario::Placement;

/// The run's placement, set once at its start (`None`: nothing pinned).
static PLACEMENT: Mutex<Option<Placement>> = Mutex::new(None);

/// Checks `p` against the CPUs this process may use, pins this process's
/// thread to the load generator's, and keeps `p` for the children to come.
pub(super) fn set(p: Option<&Placement>) -> Result<()> {
    if let Some(p) = p {
        let allowed = allowed_cpus()?;
        for cpu in p.server.iter().chain(&p.loadgen) {
            if !allowed.contains(cpu) {
                bail!("--cpus: CPU {cpu} is not one this process may run on ({allowed:?})");
            }
        }
        pin_self(&p.loadgen)?;
    }
    *PLACEMENT.lock().unwrap_or_else(|e| e.into_inner()) = p.cloned();
    Ok(())
}

/// Pins the server started by `cmd` (and all it starts) to the server's CPUs.
pub(super) fn server(cmd: &mut Command) {
    if let Some(p) = current() {
        pin(cmd, p.server);
    }
}

/// Pins a worker started by `cmd` to the load generator's CPUs.
pub(super) fn loadgen(cmd: &mut Command) {
    if let Some(p) = current() {
        pin(cmd, p.loadgen);
    }
}

fn current() -> Option<Placement> {
    PLACEMENT.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn cpu_set(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain bits; all zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: CPU_SET writes bit `c` of the set; the scenario checks
        // keep `c` below 1024, the set's size.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    set
}

fn pin(cmd: &mut Command, cpus: Vec<usize>) {
    let set = cpu_set(&cpus);
    // SAFETY: the closure runs in the child between fork and exec and calls
    // only sched_setaffinity, which is async-signal-safe, on a set built
    // before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn pin_self(cpus: &[usize]) -> Result<()> {
    let set = cpu_set(cpus);
    // SAFETY: sched_setaffinity reads the set passed in.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        bail!(
            "pinning the coordinator to {cpus:?}: {}",
            io::Error::last_os_error()
        );
    }
    Ok(())
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain bits; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity writes at most the size given into `set`.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0
    {
        bail!(
            "reading this process's CPUs: {}",
            io::Error::last_os_error()
        );
    }
    // SAFETY: CPU_ISSET reads bit `c` of the set, `c` below its size.
    Ok((0..1024)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// CPUs process `pid` may run on (for tests and the run's record).
pub fn affinity_of(pid: u32) -> io::Result<Vec<usize>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or("")
        .trim()
        .to_string();
    let mut out = Vec::new();
    for item in list.split(',').filter(|s| !s.is_empty()) {
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (
                    a.parse().map_err(|_| bad(&list))?,
                    b.parse().map_err(|_| bad(&list))?,
                );
                out.extend(a..=b);
            }
            None => out.push(item.parse().map_err(|_| bad(&list))?),
        }
    }
    Ok(out)
}

fn bad(list: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("Cpus_allowed_list {list:?}"),
    )
}
