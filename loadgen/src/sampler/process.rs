//! One process's figures, and the process table, read through the `procfs`
//! crate: `/proc/PID/stat` (state, ppid, CPU ticks), `status` (VmRSS,
//! threads), `smaps_rollup` (PSS) and the count of `fd`.
//!
//! procfs parses the files; what is ours is which fields a sample takes and
//! what a process that has gone (or is a zombie) means: `NotFound`.

use std::collections::{HashMap, HashSet};
use std::io;

use procfs::process::{Process, SmapsRollup, Stat, Status};
use procfs::ProcError;

/// Figures of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Figures {
    /// `VmRSS`, bytes (a kernel thread has none: 0).
    pub rss: u64,
    /// `Pss` and `Pss_Anon` of `smaps_rollup`, bytes (0 when absent).
    pub pss: u64,
    pub pss_anon: u64,
    pub threads: u64,
    pub fds: u64,
    /// Clock ticks.
    pub utime: u64,
    pub stime: u64,
}

impl Figures {
    /// What a sample takes of procfs's readings of one process.
    pub fn of(stat: &Stat, status: &Status, rollup: Option<&SmapsRollup>, fds: u64) -> Figures {
        let rollup_kib = |key: &str| {
            rollup
                .and_then(|r| r.memory_map_rollup.iter().next())
                .and_then(|m| m.extension.map.get(key).copied())
                .unwrap_or(0)
        };
        Figures {
            // procfs gives status figures in kB, smaps figures in bytes.
            rss: status.vmrss.unwrap_or(0) * 1024,
            pss: rollup_kib("Pss"),
            pss_anon: rollup_kib("Pss_Anon"),
            threads: status.threads,
            fds,
            utime: stat.utime,
            stime: stat.stime,
        }
    }
}

/// Reads process `pid`. A zombie or dead process is `NotFound`.
pub(super) fn read(pid: u32) -> io::Result<Figures> {
    let p = Process::new(pid as i32).map_err(io_error)?;
    let stat = p.stat().map_err(io_error)?;
    if has_exited(&stat) {
        return Err(exited(pid));
    }
    let status = p.status().map_err(io_error)?;
    // A kernel thread has no smaps_rollup to speak of; a gone process is caught above or below.
    let rollup = match p.smaps_rollup().map_err(io_error) {
        Ok(r) => Some(r),
        Err(e) if is_gone(&e) => return Err(e),
        Err(_) => None,
    };
    Ok(Figures::of(&stat, &status, rollup.as_ref(), fd_count(pid)?))
}

/// The descriptors `/proc/PID/fd` lists, up to [`LISTED_FDS`]; past that,
/// the directory's size.
///
/// On Linux 6.2 and later the size of `/proc/PID/fd` is the number of
/// descriptors in use, which also counts one reserved and not yet filled (a
/// thread blocked in `accept`), so a thread-per-connection server would
/// count one more than it holds: small counts, where one matters (a
/// baseline, a recovery), are listed. Listing 10,000 entries twice a second
/// was four fifths of the coordinator's CPU during a broadcast, CPU charged
/// to the load generator and taken from the server's machine; past
/// [`LISTED_FDS`] the reserved ones are under a tenth of a percent. A
/// kernel that gives no size (0) is listed whatever the count.
fn fd_count(pid: u32) -> io::Result<u64> {
    let dir = format!("/proc/{pid}/fd");
    let size = std::fs::metadata(&dir)?.len();
    if size > LISTED_FDS {
        return Ok(size);
    }
    Ok(std::fs::read_dir(&dir)?.count() as u64)
}

/// Nanoseconds the threads of process `pid` now running have run on a CPU,
/// user and system (each `/proc/PID/task/TID/schedstat`, which counts in
/// nanoseconds where `stat` counts 10 ms ticks); `None` where the kernel
/// keeps no such count or the process is gone.
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        // A thread that ends meanwhile is left out.
        let Ok(text) = task.and_then(|t| std::fs::read_to_string(t.path().join("schedstat")))
        else {
            continue;
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Descriptor counts up to this are listed one by one (see [`fd_count`]).
pub const LISTED_FDS: u64 = 1024;

/// `NotFound` when process `pid` is gone (or a zombie), else `e` as it was.
pub(super) fn exited_or(pid: u32, e: io::Error) -> io::Error {
    let gone = is_gone(&e)
        || match Process::new(pid as i32) {
            Err(_) => true,
            Ok(p) => p.stat().is_ok_and(|s| has_exited(&s)),
        };
    if gone {
        exited(pid)
    } else {
        e
    }
}

fn has_exited(stat: &Stat) -> bool {
    stat.state == 'Z' || stat.state == 'X'
}

fn exited(pid: u32) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("process {pid} has exited"))
}

fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// procfs's error as the `io::Error` the sampler reports.
pub(super) fn io_error(e: ProcError) -> io::Error {
    match e {
        ProcError::Io(e, _) => e,
        ProcError::NotFound(path) => io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} not found", path.unwrap_or_default().display()),
        ),
        ProcError::PermissionDenied(path) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{}: permission denied", path.unwrap_or_default().display()),
        ),
        e => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
    }
}

/// (pid, ppid) of every process in /proc.
pub(super) fn table() -> io::Result<Vec<(u32, u32)>> {
    let mut table = Vec::new();
    for p in procfs::process::all_processes().map_err(io_error)? {
        // A process that ends while the table is read is left out.
        let Ok(p) = p else { continue };
        if let Ok(stat) = p.stat() {
            table.push((p.pid as u32, stat.ppid as u32));
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

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::FromRead;

    /// `/proc/PID/status` as kernel 6.18 writes it.
    const STATUS: &str = "Name:\tnginx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n\
        Ngid:\t0\nPid:\t4242\nPPid:\t1\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n\
        FDSize:\t64\nGroups:\t \nNStgid:\t4242\nNSpid:\t4242\nNSpgid:\t4242\nNSsid:\t4242\n\
        Kthread:\t0\nVmPeak:\t  123456 kB\nVmSize:\t  120000 kB\nVmLck:\t       0 kB\n\
        VmPin:\t       0 kB\nVmHWM:\t   14000 kB\nVmRSS:\t   13312 kB\nRssAnon:\t    4000 kB\n\
        RssFile:\t    9312 kB\nRssShmem:\t       0 kB\nVmData:\t    5640 kB\nVmStk:\t     132 kB\n\
        VmExe:\t     772 kB\nVmLib:\t    1596 kB\nVmPTE:\t      48 kB\nVmSwap:\t       0 kB\n\
        HugetlbPages:\t       0 kB\nCoreDumping:\t0\nTHP_enabled:\t1\n\
        untag_mask:\t0xffffffffffffffff\nThreads:\t17\nSigQ:\t0/95711\n\
        SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000014002\n\
        SigIgn:\t0000000000000000\nSigCgt:\t0000000000014000\nCapInh:\t0000000000000000\n\
        CapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n\
        CapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\n\
        Speculation_Store_Bypass:\tvulnerable\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n\
        Mems_allowed:\t00000001\nMems_allowed_list:\t0\nvoluntary_ctxt_switches:\t150\n\
        nonvoluntary_ctxt_switches:\t0\n";

    /// A kernel thread's status: no Vm* lines.
    const KTHREAD_STATUS: &str = "Name:\tkthreadd\nUmask:\t0022\nState:\tS (sleeping)\n\
        Tgid:\t2\nNgid:\t0\nPid:\t2\nPPid:\t0\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n\
        FDSize:\t64\nGroups:\t \nKthread:\t1\nThreads:\t1\nSigQ:\t0/96365\n\
        SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\n\
        SigIgn:\tffffffffffffffff\nSigCgt:\t0000000000000000\nCapInh:\t0000000000000000\n\
        CapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n";

    const SMAPS_ROLLUP: &str =
        "55efb922b000-7fffde35f000 ---p 00000000 00:00 0                          [rollup]\n\
        Rss:                1812 kB\nPss:                 531 kB\nPss_Dirty:            96 kB\n\
        Pss_Anon:             92 kB\nPss_File:            439 kB\nPss_Shmem:             0 kB\n\
        Shared_Clean:       1300 kB\nPrivate_Dirty:         96 kB\n";

    /// A comm with spaces and parentheses, as `prctl(PR_SET_NAME)` allows.
    const STAT: &str = "4242 (my (odd) name) S 4200 4242 4200 0 -1 4194560 1500 0 0 0 \
        250 75 0 0 20 0 9 0 166267 3133440 382 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    fn stat(text: &str) -> Option<Stat> {
        Stat::from_read(text.as_bytes()).ok()
    }

    #[test]
    fn takes_the_figures_a_sample_needs() {
        let status = Status::from_read(STATUS.as_bytes()).unwrap();
        let rollup = SmapsRollup::from_read(SMAPS_ROLLUP.as_bytes()).unwrap();
        let stat = stat(STAT).unwrap();
        assert_eq!(
            Figures::of(&stat, &status, Some(&rollup), 11),
            Figures {
                rss: 13312 * 1024,
                pss: 531 * 1024,
                pss_anon: 92 * 1024,
                threads: 17,
                fds: 11,
                utime: 250,
                stime: 75,
            }
        );
        // A kernel thread has no VmRSS and an empty smaps_rollup.
        let kthread = Status::from_read(KTHREAD_STATUS.as_bytes()).unwrap();
        let empty = SmapsRollup::from_read(&b""[..]).unwrap();
        let f = Figures::of(&stat, &kthread, Some(&empty), 0);
        assert_eq!((f.rss, f.pss, f.pss_anon, f.threads), (0, 0, 0, 1));
        assert_eq!(Figures::of(&stat, &kthread, None, 0).pss, 0);
    }

    #[test]
    fn reads_stat_with_an_awkward_comm() {
        let s = stat(STAT).unwrap();
        assert_eq!(
            (s.state, s.ppid, s.utime, s.stime, s.num_threads),
            ('S', 4200, 250, 75, 9)
        );
        assert_eq!(s.comm, "my (odd) name");
        assert!(!has_exited(&s));
        assert!(has_exited(&stat(&STAT.replace(") S ", ") Z ")).unwrap()));
        assert!(stat("12 (a) b) R 1 2 3").is_none(), "too short");
        assert!(stat("garbage").is_none());
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let f = read(me).unwrap();
        assert!(f.pss > 0 && f.pss_anon > 0 && f.pss_anon <= f.pss, "{f:?}");
        assert!(f.threads >= 1 && f.fds >= 3, "{f:?}");
        // Units: RSS now is at most the peak getrusage reports (KiB), and PSS
        // (bytes in procfs's smaps) is of the order of RSS (kB in status).
        // SAFETY: getrusage writes only the struct passed in.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let peak = ru.ru_maxrss as u64 * 1024;
        assert!(
            f.rss > 0 && f.rss <= peak + (16 << 20),
            "{f:?}, peak {peak}"
        );
        assert!(f.pss <= 2 * f.rss + (16 << 20), "{f:?}");
        let table = table().unwrap();
        let parent = std::os::unix::process::parent_id();
        assert!(table.contains(&(me, parent)), "{me} under {parent}");
    }

    /// A process blocked in `accept` has a descriptor reserved for the
    /// connection to come; it is not one the process holds.
    #[test]
    fn cpu_ns_counts_the_time_a_process_runs() {
        let me = std::process::id();
        let before = cpu_ns(me).expect("schedstat");
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = cpu_ns(me).unwrap();
        // 30 ms of wall time spinning is some run time, whatever the load.
        assert!(after > before, "{before} -> {after}");
        assert_eq!(cpu_ns(u32::MAX), None);
    }

    #[test]
    fn counts_fds_as_the_fd_directory_lists_them() {
        let mut ready = [0 as libc::c_int; 2];
        // SAFETY: pipe writes two descriptors into the array passed in.
        assert_eq!(unsafe { libc::pipe(ready.as_mut_ptr()) }, 0);
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: the child calls only async-signal-safe functions (socket,
        // bind, listen, write, accept, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: as above; every pointer is to this stack frame.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len);
                libc::listen(fd, 1);
                libc::write(ready[1], b"x".as_ptr().cast(), 1);
                libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut());
                libc::_exit(0);
            }
        }
        let mut byte = 0u8;
        // SAFETY: read writes at most one byte into `byte`.
        assert_eq!(
            unsafe { libc::read(ready[0], (&mut byte as *mut u8).cast(), 1) },
            1
        );
        let pid = pid as u32;
        // Asleep in accept, from the child's write on.
        let t = std::time::Instant::now();
        while Process::new(pid as i32)
            .and_then(|p| p.stat())
            .map_or(true, |s| s.state != 'S')
        {
            assert!(t.elapsed().as_secs() < 10, "the child never slept");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let listed = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count() as u64;
        let figures = read(pid);
        // SAFETY: kill and waitpid on our own child; close on our own pipe.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
            libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
            libc::close(ready[0]);
            libc::close(ready[1]);
        }
        assert_eq!(figures.unwrap().fds, listed);
    }

    /// Past [`LISTED_FDS`] the count is the directory's size: the same
    /// count for a process with no descriptor reserved.
    #[test]
    fn counts_many_fds_by_the_directory_size() {
        let mut ready = [0 as libc::c_int; 2];
        // SAFETY: pipe writes two descriptors into the array passed in.
        assert_eq!(unsafe { libc::pipe(ready.as_mut_ptr()) }, 0);
        let want = LISTED_FDS as usize + 200;
        // SAFETY: the child calls only async-signal-safe functions (dup,
        // write, pause, _exit).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: as above.
            unsafe {
                for _ in 0..want {
                    libc::dup(ready[1]);
                }
                libc::write(ready[1], b"x".as_ptr().cast(), 1);
                libc::pause();
                libc::_exit(0);
            }
        }
        let mut byte = 0u8;
        // SAFETY: read writes at most one byte into `byte`.
        assert_eq!(
            unsafe { libc::read(ready[0], (&mut byte as *mut u8).cast(), 1) },
            1
        );
        let pid = pid as u32;
        let listed = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count() as u64;
        let counted = fd_count(pid);
        // SAFETY: kill and waitpid on our own child; close on our own pipe.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
            libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
            libc::close(ready[0]);
            libc::close(ready[1]);
        }
        assert!(listed > want as u64, "{listed}");
        assert_eq!(counted.unwrap(), listed);
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
}
