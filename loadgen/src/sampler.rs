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
//! The pure parsers (`parse_*`) are public for tests and other tools.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

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

    /// The last successful sample.
    pub fn last(&self) -> Option<&Sample> {
        self.last.as_ref()
    }

    /// The processes a sample sums: the root first.
    pub fn pids(&self) -> io::Result<Vec<u32>> {
        if !self.include_children {
            return Ok(vec![self.root]);
        }
        Ok(descendants(self.root, &process_table()?))
    }

    /// Reads the server now. A root process that has exited (or is a zombie)
    /// is an error of kind `NotFound`; children that exit meanwhile are left out.
    pub fn sample(&mut self) -> io::Result<Sample> {
        let t = self.started.elapsed().as_secs_f64();
        let pids = self.pids()?;
        let ticks = clock_ticks();
        let mut s = Sample {
            t,
            ..Sample::default()
        };
        for pid in pids {
            let p = match read_process(pid) {
                Ok(p) => p,
                Err(e) if pid == self.root => return Err(exited_or(pid, e)),
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

/// Figures of one process.
#[derive(Debug, Clone, Copy, Default)]
struct ProcessFigures {
    rss: u64,
    pss: u64,
    pss_anon: u64,
    threads: u64,
    fds: u64,
    utime: u64,
    stime: u64,
}

fn proc_path(pid: u32, file: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{file}"))
}

fn read_process(pid: u32) -> io::Result<ProcessFigures> {
    let stat = fs::read_to_string(proc_path(pid, "stat"))?;
    let stat = parse_stat(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable stat"))?;
    if stat.state == 'Z' || stat.state == 'X' {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("process {pid} has exited"),
        ));
    }
    let status = parse_status(&fs::read_to_string(proc_path(pid, "status"))?);
    // A kernel thread has no smaps_rollup to speak of; a gone process is caught above or below.
    let (pss, pss_anon) = match fs::read_to_string(proc_path(pid, "smaps_rollup")) {
        Ok(text) => (
            parse_smaps_rollup(&text),
            parse_smaps_key(&text, "Pss_Anon:"),
        ),
        Err(e) if is_gone(&e) => return Err(e),
        Err(_) => (0, 0),
    };
    let fds = fs::read_dir(proc_path(pid, "fd"))?.count() as u64;
    Ok(ProcessFigures {
        rss: status.rss,
        pss,
        pss_anon,
        threads: status.threads,
        fds,
        utime: stat.utime,
        stime: stat.stime,
    })
}

fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// `NotFound` when the process is gone, else the error as it was.
fn exited_or(pid: u32, e: io::Error) -> io::Error {
    let gone = is_gone(&e)
        || !Path::new(&format!("/proc/{pid}")).exists()
        || fs::read_to_string(proc_path(pid, "stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
            .is_some_and(|s| s.state == 'Z' || s.state == 'X');
    if gone {
        io::Error::new(io::ErrorKind::NotFound, format!("process {pid} has exited"))
    } else {
        e
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// (pid, ppid) of every process in /proc.
fn process_table() -> io::Result<Vec<(u32, u32)>> {
    let mut table = Vec::new();
    for entry in fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(stat) = fs::read_to_string(proc_path(pid, "stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
        {
            table.push((pid, stat.ppid));
        }
    }
    Ok(table)
}

/// `root` and every process descending from it in `table` of (pid, ppid),
/// root first. `root` is listed even when absent from the table.
pub fn descendants(root: u32, table: &[(u32, u32)]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for &(pid, ppid) in table {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = vec![root];
    let mut seen = HashSet::from([root]);
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            for &k in kids {
                if seen.insert(k) {
                    out.push(k);
                }
            }
        }
        i += 1;
    }
    out
}

/// System-wide kernel figures, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SystemKernel {
    slab: u64,
    kernel_stack: u64,
    page_tables: u64,
    /// MemTotal - MemFree.
    used: u64,
    /// TCP buffer memory (sockstat pages * page size).
    tcp: u64,
}

impl SystemKernel {
    fn read() -> io::Result<SystemKernel> {
        let m = parse_meminfo(&fs::read_to_string("/proc/meminfo")?);
        let get = |k: &str| m.get(k).copied().unwrap_or(0);
        let tcp = fs::read_to_string("/proc/net/sockstat")
            .ok()
            .and_then(|s| parse_sockstat_tcp_mem(&s))
            .unwrap_or(0)
            * page_size();
        Ok(SystemKernel {
            slab: get("Slab"),
            kernel_stack: get("KernelStack"),
            page_tables: get("PageTables"),
            used: get("MemTotal").saturating_sub(get("MemFree")),
            tcp,
        })
    }

    /// Growth since `base`; a figure that shrank is 0.
    fn since(&self, base: &SystemKernel) -> KernelMem {
        let total = |k: &SystemKernel| k.slab + k.kernel_stack + k.page_tables;
        KernelMem {
            source: KernelSource::SystemWide,
            total: total(self).saturating_sub(total(base)),
            kernel_stack: self.kernel_stack.saturating_sub(base.kernel_stack),
            sock: self.tcp.saturating_sub(base.tcp),
            slab: self.slab.saturating_sub(base.slab),
            usage: self.used.saturating_sub(base.used),
        }
    }
}

/// A v1 memory cgroup of the server's own:
/// `/sys/fs/cgroup/memory/cometbench/NAME`.
///
/// # Lifetime
/// Dropping it moves any process still inside back to the memory cgroup this
/// process was in when the cgroup was made (the root of the hierarchy if that
/// cannot be told), then removes the directory. The `cometbench` parent stays
/// (other runs may be using it).
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    /// Where remaining processes go on drop.
    home: PathBuf,
    /// The root of the hierarchy: where they go when `home` refuses them.
    mount: PathBuf,
    /// `memory.kmem.tcp.usage_in_bytes` counts (TCP accounting switched on).
    tcp_accounting: bool,
}

impl Cgroup {
    /// Makes `/sys/fs/cgroup/memory/cometbench/NAME`. Fails where the machine
    /// has no v1 memory controller or refuses (not root, EPERM): the sampler
    /// then stays system-wide. An existing cgroup of that name is reused.
    pub fn create(name: &str) -> io::Result<Cgroup> {
        Cgroup::create_under(Path::new(CGROUP_V1_MEMORY), name)
    }

    /// As [`Cgroup::create`], under another mount of the v1 memory controller.
    pub fn create_under(mount: &Path, name: &str) -> io::Result<Cgroup> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad cgroup name {name:?}"),
            ));
        }
        if !mount.join("memory.usage_in_bytes").exists() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("no cgroup v1 memory controller at {}", mount.display()),
            ));
        }
        let parent = mount.join(CGROUP_PARENT);
        fs::create_dir_all(&parent)?;
        let dir = parent.join(name);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let home = own_memory_cgroup()
            .map(|rel| mount.join(rel.trim_start_matches('/')))
            .filter(|p| p.join("cgroup.procs").exists())
            .unwrap_or_else(|| mount.to_path_buf());
        let mut cg = Cgroup {
            dir,
            home,
            mount: mount.to_path_buf(),
            tcp_accounting: false,
        };
        if !cg.dir.join("memory.kmem.usage_in_bytes").exists() {
            // Dropping `cg` removes the directory again.
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{} has no memory.kmem.usage_in_bytes", cg.dir.display()),
            ));
        }
        // v1 counts TCP buffer memory per cgroup only once a limit is set
        // ("-1": unlimited). The kernel logs a deprecation notice for it.
        cg.tcp_accounting =
            fs::write(cg.dir.join("memory.kmem.tcp.limit_in_bytes"), "-1\n").is_ok();
        Ok(cg)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Moves process `pid` (all its threads) into the cgroup. Do it right
    /// after spawning: memory charged before the move stays where it was.
    pub fn add_pid(&self, pid: u32) -> io::Result<()> {
        fs::write(self.dir.join("cgroup.procs"), format!("{pid}\n"))
    }

    /// The processes in the cgroup.
    pub fn pids(&self) -> io::Result<Vec<u32>> {
        Ok(fs::read_to_string(self.dir.join("cgroup.procs"))?
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }

    /// The cgroup's kernel memory now.
    pub fn read(&self) -> io::Result<KernelMem> {
        let total = read_u64(&self.dir.join("memory.kmem.usage_in_bytes"))?;
        let usage = read_u64(&self.dir.join("memory.usage_in_bytes"))?;
        let stat = parse_key_values(&fs::read_to_string(self.dir.join("memory.stat"))?);
        let sock = match stat.get("sock") {
            Some(&s) => s,
            None if self.tcp_accounting => {
                read_u64(&self.dir.join("memory.kmem.tcp.usage_in_bytes")).unwrap_or(0)
            }
            None => 0,
        };
        let slab = stat.get("slab").copied().unwrap_or_else(|| {
            stat.get("slab_reclaimable").copied().unwrap_or(0)
                + stat.get("slab_unreclaimable").copied().unwrap_or(0)
        });
        Ok(KernelMem {
            source: KernelSource::CgroupV1,
            total,
            kernel_stack: stat.get("kernel_stack").copied().unwrap_or(0),
            sock,
            slab,
            usage,
        })
    }

    fn evacuate(&self) {
        if let Ok(pids) = self.pids() {
            for pid in pids {
                let line = format!("{pid}\n");
                if fs::write(self.home.join("cgroup.procs"), &line).is_err() {
                    let _ = fs::write(self.mount.join("cgroup.procs"), &line);
                }
            }
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            self.evacuate();
            match fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                // EBUSY while a process is still being moved or is exiting.
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// This process's memory cgroup path (v1 `N:memory:/path` line).
fn own_memory_cgroup() -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then(|| path.to_string())
    })
}

fn read_u64(path: &Path) -> io::Result<u64> {
    fs::read_to_string(path)?.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Figures of `/proc/PID/status`, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusFigures {
    /// `VmRSS` (absent for kernel threads: 0).
    pub rss: u64,
    /// `Threads`.
    pub threads: u64,
}

/// Parses `/proc/PID/status`.
pub fn parse_status(text: &str) -> StatusFigures {
    let mut out = StatusFigures::default();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("VmRSS:") {
            out.rss = kb_value(v).unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Threads:") {
            out.threads = v.trim().parse().unwrap_or(0);
        }
    }
    out
}

/// `Pss` of `/proc/PID/smaps_rollup`, bytes (0 when absent).
pub fn parse_smaps_rollup(text: &str) -> u64 {
    parse_smaps_key(text, "Pss:")
}

/// The `key` line (with its colon) of `smaps_rollup`, bytes (0 when absent).
pub fn parse_smaps_key(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(kb_value)
        .unwrap_or(0)
}

/// Fields of `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: R, S, D, Z, ...
    pub state: char,
    /// Field 4.
    pub ppid: u32,
    /// Field 14, clock ticks.
    pub utime: u64,
    /// Field 15, clock ticks.
    pub stime: u64,
    /// Field 20.
    pub num_threads: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    // rest[0] is field 3.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |field: usize| f.get(field - 3)?.parse::<u64>().ok();
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        utime: num(14)?,
        stime: num(15)?,
        num_threads: num(20)?,
    })
}

/// `key value` lines, as in a cgroup's `memory.stat`.
pub fn parse_key_values(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (k, v) = (it.next()?, it.next()?);
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// `/proc/meminfo`, values in bytes (`kB` figures times 1024; counts such as
/// `HugePages_Total` as they are).
pub fn parse_meminfo(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let mut it = v.split_whitespace();
            let n: u64 = it.next()?.parse().ok()?;
            let n = if it.next() == Some("kB") { n * 1024 } else { n };
            Some((k.trim().to_string(), n))
        })
        .collect()
}

/// The `mem` figure of the `TCP:` line of `/proc/net/sockstat`: pages of TCP
/// buffer memory.
pub fn parse_sockstat_tcp_mem(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "mem")
        .and_then(|w| w[1].parse().ok())
}

fn kb_value(v: &str) -> Option<u64> {
    let mut it = v.split_whitespace();
    let n: u64 = it.next()?.parse().ok()?;
    Some(match it.next() {
        Some("kB") | Some("KB") | Some("kb") => n * 1024,
        _ => n,
    })
}

/// The machine a run happened on, and the limits in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs this process may run on.
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
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or_else(|_| {
            cpuinfo
                .lines()
                .filter(|l| l.starts_with("processor"))
                .count() as u64
        });
    Machine {
        cores,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        memory_total: parse_meminfo(&read("/proc/meminfo"))
            .get("MemTotal")
            .copied()
            .unwrap_or(0),
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
    use std::process::{Child, Command};

    const STATUS: &str = "Name:\tnginx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n\
        Pid:\t4242\nPPid:\t1\nVmPeak:\t  123456 kB\nVmSize:\t  120000 kB\nVmHWM:\t   14000 kB\n\
        VmRSS:\t   13312 kB\nRssAnon:\t    4000 kB\nVmSwap:\t       0 kB\nThreads:\t17\n\
        SigQ:\t0/95711\nvoluntary_ctxt_switches:\t150\n";

    const SMAPS_ROLLUP: &str =
        "55efb922b000-7fffde35f000 ---p 00000000 00:00 0                          [rollup]\n\
        Rss:                1812 kB\nPss:                 531 kB\nPss_Dirty:            96 kB\n\
        Pss_Anon:             92 kB\nPss_File:            439 kB\nPss_Shmem:             0 kB\n\
        Shared_Clean:       1300 kB\nPrivate_Dirty:         96 kB\n";

    /// A comm with spaces and parentheses, as `prctl(PR_SET_NAME)` allows.
    const STAT: &str = "4242 (my (odd) name) S 4200 4242 4200 0 -1 4194560 1500 0 0 0 \
        250 75 0 0 20 0 9 0 166267 3133440 382 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    /// memory.stat of a v1 cgroup on kernel 6.18 (abridged): no kernel_stack, sock or slab.
    const MEMORY_STAT_V1: &str = "cache 1888256\nrss 16158720\nrss_huge 0\nshmem 0\n\
        mapped_file 253952\ndirty 0\nwriteback 0\nswap 0\npgpgin 4452\npgpgout 3000\n\
        hierarchical_memory_limit 9223372036854771712\ntotal_cache 1888256\n";

    /// memory.stat of a cgroup v2 (abridged), for the keys v1 lacks.
    const MEMORY_STAT_V2: &str = "anon 4096000\nfile 8192\nkernel 2500000\nkernel_stack 163840\n\
        pagetables 40960\nsock 12288\nslab_reclaimable 100000\nslab_unreclaimable 900000\nslab 1000000\n";

    const MEMINFO: &str = "MemTotal:       24684084 kB\nMemFree:        23231744 kB\n\
        MemAvailable:   24244948 kB\nSlab:             112156 kB\nSReclaimable:      77032 kB\n\
        SUnreclaim:        35124 kB\nKernelStack:        3520 kB\nPageTables:         3680 kB\n\
        HugePages_Total:       0\nHugepagesize:       2048 kB\n";

    const SOCKSTAT: &str = "sockets: used 110\nTCP: inuse 99 orphan 0 tw 4837 alloc 99 mem 141\n\
        UDP: inuse 0 mem 7\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n";

    #[test]
    fn parses_status() {
        assert_eq!(
            parse_status(STATUS),
            StatusFigures {
                rss: 13312 * 1024,
                threads: 17
            }
        );
        // A kernel thread has no VmRSS.
        assert_eq!(parse_status("Name:\tkworker\nThreads:\t1\n").rss, 0);
    }

    #[test]
    fn parses_smaps_rollup() {
        assert_eq!(parse_smaps_rollup(SMAPS_ROLLUP), 531 * 1024);
        assert_eq!(parse_smaps_rollup(""), 0);
    }

    #[test]
    fn parses_stat_with_an_awkward_comm() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(
            s,
            ProcStat {
                state: 'S',
                ppid: 4200,
                utime: 250,
                stime: 75,
                num_threads: 9
            }
        );
        assert_eq!(parse_stat("12 (a) b) R 1 2 3"), None, "too short");
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn parses_memory_stat() {
        let v1 = parse_key_values(MEMORY_STAT_V1);
        assert_eq!(v1["rss"], 16158720);
        assert_eq!(v1["hierarchical_memory_limit"], 9223372036854771712);
        assert!(
            !v1.contains_key("kernel_stack")
                && !v1.contains_key("sock")
                && !v1.contains_key("slab")
        );
        let v2 = parse_key_values(MEMORY_STAT_V2);
        assert_eq!(
            (v2["kernel_stack"], v2["sock"], v2["slab"]),
            (163840, 12288, 1000000)
        );
    }

    #[test]
    fn parses_meminfo_and_sockstat() {
        let m = parse_meminfo(MEMINFO);
        assert_eq!(m["MemTotal"], 24684084 * 1024);
        assert_eq!(m["Slab"], 112156 * 1024);
        assert_eq!(m["KernelStack"], 3520 * 1024);
        assert_eq!(m["HugePages_Total"], 0);
        assert_eq!(parse_sockstat_tcp_mem(SOCKSTAT), Some(141));
        assert_eq!(parse_sockstat_tcp_mem("sockets: used 1\n"), None);
    }

    #[test]
    fn system_wide_deltas() {
        let base = SystemKernel {
            slab: 100,
            kernel_stack: 10,
            page_tables: 5,
            used: 1000,
            tcp: 8192,
        };
        let now = SystemKernel {
            slab: 300,
            kernel_stack: 50,
            page_tables: 15,
            used: 1500,
            tcp: 4096,
        };
        let k = now.since(&base);
        assert_eq!(k.source, KernelSource::SystemWide);
        assert_eq!(
            (k.total, k.slab, k.kernel_stack, k.sock, k.usage),
            (250, 200, 40, 0, 500)
        );
        assert_eq!(serde_json::to_value(k.source).unwrap(), "system-wide");
        assert_eq!(
            serde_json::to_value(KernelSource::CgroupV1).unwrap(),
            "cgroup-v1"
        );
    }

    #[test]
    fn process_tree() {
        let table = [
            (1, 0),
            (10, 1),
            (11, 10),
            (12, 10),
            (13, 11),
            (20, 1),
            (21, 20),
        ];
        assert_eq!(descendants(10, &table), vec![10, 11, 12, 13]);
        assert_eq!(descendants(13, &table), vec![13]);
        assert_eq!(descendants(99, &table), vec![99]);
        // A ppid loop (cannot happen, but must not hang).
        assert_eq!(descendants(5, &[(5, 6), (6, 5)]), vec![5, 6]);
    }

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
            let state = fs::read_to_string(proc_path(pid, "stat"))
                .ok()
                .and_then(|s| parse_stat(&s));
            if state.is_some_and(|s| s.state == 'Z') {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let e = Sampler::new(pid, true).sample().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        zombie.wait().unwrap();
    }

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
    fn refuses_bad_cgroup_names_and_missing_controllers() {
        for name in ["", ".", "..", "a/b"] {
            let e = Cgroup::create(name).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{name:?}");
        }
        let e = Cgroup::create_under(Path::new("/proc/self"), "x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    }

    #[test]
    fn cgroup_holds_a_child_and_gives_it_back() {
        let name = format!("test-{}", std::process::id());
        let cg = match Cgroup::create(&name) {
            Ok(cg) => cg,
            Err(e) => {
                eprintln!("note: skipping the cgroup test, no writable v1 memory cgroup here: {e}");
                return;
            }
        };
        let dir = cg.path().to_path_buf();
        let home = own_memory_cgroup().unwrap_or_default();
        // The shell forks after the move, so the cgroup is charged for something.
        let mut child = spawn("sh", &["-c", "sleep 0.3; ls / > /dev/null; exec sleep 5"]);
        cg.add_pid(child.id()).unwrap();
        assert!(cg.pids().unwrap().contains(&child.id()));
        let in_cgroup = fs::read_to_string(proc_path(child.id(), "cgroup")).unwrap();
        assert!(
            in_cgroup.contains(&format!(":memory:/{CGROUP_PARENT}/{name}\n")),
            "{in_cgroup}"
        );
        std::thread::sleep(Duration::from_millis(700));
        let k = cg.read().unwrap();
        assert_eq!(k.source, KernelSource::CgroupV1);
        assert!(k.usage > 0, "{k:?}");
        assert!(k.total > 0, "{k:?}");

        let mut s = Sampler::new(child.id(), false);
        s.attach_cgroup(cg);
        let sample = s.sample().unwrap();
        assert_eq!(
            sample.kernel.map(|k| k.source),
            Some(KernelSource::CgroupV1)
        );

        // Dropping the sampler drops the cgroup while the child still lives in it.
        drop(s);
        assert!(!dir.exists(), "{} removed", dir.display());
        let now = fs::read_to_string(proc_path(child.id(), "cgroup")).unwrap();
        assert!(
            now.contains(&format!(":memory:{home}\n")),
            "moved home ({home}): {now}"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
