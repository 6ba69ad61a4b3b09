//! Sampling the server under test from `/proc` and its memory cgroup.
//!
//! A [`Sampler`] reads, for one process (or its whole process tree: peers such
//! as nginx and pushpin run several), resident and proportional memory, threads,
//! open files and CPU time, plus the kernel memory the server costs:
//!
//! - **cgroup v1** ([`KernelSource::CgroupV1`]): the server is moved into a
//!   memory cgroup of its own ([`Cgroup`], `/sys/fs/cgroup/memory/cometbench/NAME`)
//!   right after it is spawned, and `memory.kmem.usage_in_bytes` counts the
//!   kernel memory charged to it: socket structures, kernel stacks, page tables
//!   and other slab objects.
//! - **system-wide** ([`KernelSource::SystemWide`]) where no cgroup can be made:
//!   the growth of `/proc/meminfo` and `/proc/net/sockstat` since the sampler was
//!   created. Everything else on the machine (the load generator included) is in
//!   it, so results label it.
//!
//! # What the v1 cgroup does not say
//! The v1 `memory.stat` has no `kernel_stack`, `sock` or `slab` lines (those are
//! cgroup v2 keys; on kernel 6.18 v1 lists cache, rss, shmem, mapped_file, dirty,
//! writeback, swap, pgpgin ... only). Where a key is missing the field is 0,
//! except `sock`, which falls back to `memory.kmem.tcp.usage_in_bytes` (TCP
//! buffer memory), switched on when the cgroup is made. `total` is always
//! measured. Socket *buffers* are not part of `total` in either source: they
//! are `sock`.
//!
//! The `/proc` files are read through the `procfs` crate; the cgroup v1
//! files, which it does not cover, by [`Cgroup`].

use std::io;
use std::time::Instant;

use serde::{Deserialize, Serialize};

mod cgroup;
mod machine;
mod process;
mod system;

pub use cgroup::Cgroup;
pub use machine::{machine, Machine};
pub use process::{cpu_ns, descendants};
pub use system::memory_available;

use system::SystemKernel;

/// Where the cgroup v1 memory controller is mounted.
pub const CGROUP_V1_MEMORY: &str = "/sys/fs/cgroup/memory";
/// The folder under the mount holding our cgroups.
pub const CGROUP_PARENT: &str = "cometbench";

/// One reading of the server. Memory in bytes, CPU in seconds since the
/// process started (cumulative, over the processes sampled).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the sampler was created.
    pub t: f64,
    pub rss: u64,
    /// Proportional set size (`smaps_rollup`): shared pages divided among sharers.
    pub pss: u64,
    /// Anonymous part of the PSS (`Pss_Anon`): unlike the whole PSS, it does not
    /// shrink when other processes (the load generator) map the same binary.
    pub pss_anon: u64,
    pub threads: u64,
    pub fds: u64,
    /// Processes summed (1 without `include_children`).
    pub processes: u64,
    pub cpu_user: f64,
    pub cpu_sys: f64,
    /// Kernel memory; `None` where neither source could be read.
    pub kernel: Option<KernelMem>,
}

/// Kernel memory attributable to the server, bytes. See the module docs for
/// what each source can and cannot tell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelMem {
    pub source: KernelSource,
    /// cgroup: `memory.kmem.usage_in_bytes`; system-wide: growth of
    /// Slab + KernelStack + PageTables.
    pub total: u64,
    /// cgroup: `kernel_stack` of memory.stat, 0 where absent (v1); system-wide:
    /// growth of KernelStack.
    pub kernel_stack: u64,
    /// Socket buffer memory. cgroup: `sock` of memory.stat, else
    /// `memory.kmem.tcp.usage_in_bytes`; system-wide: growth of sockstat's TCP
    /// `mem` pages.
    pub sock: u64,
    /// cgroup: `slab` of memory.stat, 0 where absent (v1); system-wide: growth
    /// of Slab.
    pub slab: u64,
    /// cgroup: `memory.usage_in_bytes` (user + kernel + page cache charged);
    /// system-wide: growth of MemTotal - MemFree.
    pub usage: u64,
}

/// Where [`KernelMem`] comes from: `cgroup-v1` or `system-wide` in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelSource {
    /// The server's own v1 memory cgroup.
    CgroupV1,
    /// `/proc/meminfo` deltas: the whole machine.
    SystemWide,
}

impl KernelSource {
    /// The name in JSON: `cgroup-v1` or `system-wide`.
    pub fn name(&self) -> &'static str {
        match self {
            KernelSource::CgroupV1 => "cgroup-v1",
            KernelSource::SystemWide => "system-wide",
        }
    }
}

/// Samples one server process, or its process tree.
pub struct Sampler {
    root: u32,
    /// More roots summed with `root` (the other nodes of a case that runs
    /// several); one that has gone is left out, as a child that exits is.
    extra: Vec<u32>,
    include_children: bool,
    started: Instant,
    cgroup: Option<Cgroup>,
    /// System-wide kernel figures when the sampler was created.
    baseline: Option<SystemKernel>,
    last: Option<Sample>,
}

impl Sampler {
    /// Samples `root_pid`; with `include_children`, every process descending
    /// from it too (found through the ppid of `/proc/*/stat`), summed.
    /// Takes the system-wide kernel baseline now.
    pub fn new(root_pid: u32, include_children: bool) -> Sampler {
        Sampler {
            root: root_pid,
            extra: Vec::new(),
            include_children,
            started: Instant::now(),
            cgroup: None,
            baseline: SystemKernel::read().ok(),
            last: None,
        }
    }

    /// Kernel memory from now on comes from `cgroup` (which the server should
    /// already be in). The cgroup is removed when the sampler is dropped.
    pub fn attach_cgroup(&mut self, cgroup: Cgroup) {
        self.cgroup = Some(cgroup);
    }

    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// Hands the cgroup back (it is then removed when the caller drops it).
    pub fn detach_cgroup(&mut self) -> Option<Cgroup> {
        self.cgroup.take()
    }

    pub fn pid(&self) -> u32 {
        self.root
    }

    /// Sums process `pid` (and its tree, with `include_children`) into
    /// every sample from now on.
    pub fn add_root(&mut self, pid: u32) {
        if pid != self.root && !self.extra.contains(&pid) {
            self.extra.push(pid);
        }
    }

    /// The roots added with [`Sampler::add_root`].
    pub fn extra_roots(&self) -> &[u32] {
        &self.extra
    }

    /// The last successful sample.
    pub fn last(&self) -> Option<&Sample> {
        self.last.as_ref()
    }

    /// The processes a sample sums: the root first.
    pub fn pids(&self) -> io::Result<Vec<u32>> {
        let roots = std::iter::once(self.root).chain(self.extra.iter().copied());
        if !self.include_children {
            return Ok(roots.collect());
        }
        let table = process::table()?;
        let mut pids = Vec::new();
        for root in roots {
            for pid in descendants(root, &table) {
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
        Ok(pids)
    }

    /// Reads the server now. A root process that has exited (or is a zombie)
    /// is an error of kind `NotFound`; children that exit meanwhile are left out.
    pub fn sample(&mut self) -> io::Result<Sample> {
        let t = self.started.elapsed().as_secs_f64();
        let pids = self.pids()?;
        let ticks = procfs::ticks_per_second().max(1) as f64;
        let mut s = Sample {
            t,
            ..Sample::default()
        };
        for pid in pids {
            let p = match process::read(pid) {
                Ok(p) => p,
                Err(e) if pid == self.root => return Err(process::exited_or(pid, e)),
                Err(_) => continue,
            };
            s.rss += p.rss;
            s.pss += p.pss;
            s.pss_anon += p.pss_anon;
            s.threads += p.threads;
            s.fds += p.fds;
            s.processes += 1;
            s.cpu_user += p.utime as f64 / ticks;
            s.cpu_sys += p.stime as f64 / ticks;
        }
        s.kernel = self.kernel();
        self.last = Some(s.clone());
        Ok(s)
    }

    fn kernel(&self) -> Option<KernelMem> {
        if let Some(cg) = &self.cgroup {
            return cg.read().ok();
        }
        let base = self.baseline.as_ref()?;
        Some(SystemKernel::read().ok()?.since(base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};
    use std::time::Duration;

    fn spawn(cmd: &str, args: &[&str]) -> Child {
        Command::new(cmd).args(args).spawn().expect("spawn")
    }

    #[test]
    fn samples_this_process() {
        let mut s = Sampler::new(std::process::id(), false);
        let a = s.sample().unwrap();
        assert!(a.rss > 0, "{a:?}");
        assert!(a.pss > 0, "{a:?}");
        assert!(a.threads >= 1, "{a:?}");
        assert!(a.fds >= 3, "{a:?}");
        assert_eq!(a.processes, 1);
        assert!(a.cpu_user + a.cpu_sys >= 0.0);
        assert_eq!(
            a.kernel.as_ref().map(|k| k.source.clone()),
            Some(KernelSource::SystemWide)
        );
        assert_eq!(s.last(), Some(&a));
        let b = s.sample().unwrap();
        assert!(b.t >= a.t);
        assert!(b.cpu_user + b.cpu_sys >= a.cpu_user + a.cpu_sys);
    }

    #[test]
    fn samples_a_process_tree() {
        let mut child = spawn("sleep", &["5"]);
        let mut s = Sampler::new(std::process::id(), true);
        let pids = s.pids().unwrap();
        assert_eq!(pids[0], std::process::id());
        assert!(pids.contains(&child.id()), "{pids:?}");
        let tree = s.sample().unwrap();
        assert!(tree.processes >= 2, "{tree:?}");
        let alone = Sampler::new(child.id(), true).sample().unwrap();
        assert_eq!(alone.processes, 1);
        assert!(tree.rss > alone.rss);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn an_exited_process_is_not_found() {
        // Reaped.
        let mut done = spawn("true", &[]);
        let pid = done.id();
        done.wait().unwrap();
        let e = Sampler::new(pid, false).sample().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        // A zombie, not yet reaped.
        let mut zombie = spawn("true", &[]);
        let pid = zombie.id();
        for _ in 0..200 {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if state
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let e = Sampler::new(pid, true).sample().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        zombie.wait().unwrap();
    }
}
