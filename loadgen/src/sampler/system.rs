//! The machine's kernel memory, for servers without a cgroup of their own:
//! `/proc/meminfo` (read through the `procfs` crate) and the TCP buffer
//! pages of `/proc/net/sockstat` (which procfs does not read).

use std::fs;
use std::io;

use procfs::{Current, Meminfo};

use super::process::io_error;
use super::{KernelMem, KernelSource};

/// System-wide kernel figures, bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct SystemKernel {
    pub slab: u64,
    pub kernel_stack: u64,
    pub page_tables: u64,
    /// MemTotal - MemFree.
    pub used: u64,
    /// TCP buffer memory (sockstat pages * page size).
    pub tcp: u64,
}

impl SystemKernel {
    pub fn read() -> io::Result<SystemKernel> {
        let m = Meminfo::current().map_err(io_error)?;
        let tcp_pages = fs::read_to_string("/proc/net/sockstat")
            .ok()
            .and_then(|s| sockstat_tcp_mem(&s))
            .unwrap_or(0);
        Ok(SystemKernel::of(&m, tcp_pages * procfs::page_size()))
    }

    /// What is taken of procfs's meminfo (bytes), with `tcp` bytes of TCP buffers.
    fn of(m: &Meminfo, tcp: u64) -> SystemKernel {
        SystemKernel {
            slab: m.slab,
            kernel_stack: m.kernel_stack.unwrap_or(0),
            page_tables: m.page_tables.unwrap_or(0),
            used: m.mem_total.saturating_sub(m.mem_free),
            tcp,
        }
    }

    /// Growth since `base`; a figure that shrank is 0.
    pub fn since(&self, base: &SystemKernel) -> KernelMem {
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

/// The machine's MemAvailable, bytes (0 when unreadable): what a run can
/// take without pushing anything else out.
pub fn memory_available() -> u64 {
    Meminfo::current().map_or(0, |m| m.mem_available.unwrap_or(m.mem_free))
}

/// The machine's MemTotal, bytes (0 when unreadable).
pub(super) fn memory_total() -> u64 {
    Meminfo::current().map_or(0, |m| m.mem_total)
}

/// The `mem` figure of the `TCP:` line of `/proc/net/sockstat`: pages of TCP
/// buffer memory.
fn sockstat_tcp_mem(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "mem")
        .and_then(|w| w[1].parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::FromRead;

    /// `/proc/meminfo` as kernel 6.18 writes it.
    const MEMINFO: &str = "MemTotal:       24684084 kB\nMemFree:        23231744 kB\n\
        MemAvailable:   24244948 kB\nBuffers:           14020 kB\nCached:          3177068 kB\n\
        SwapCached:            0 kB\nActive:          1183088 kB\nInactive:        2437148 kB\n\
        Active(anon):       1616 kB\nInactive(anon):   438024 kB\nActive(file):    1181472 kB\n\
        Inactive(file):  1999124 kB\nUnevictable:       17032 kB\nMlocked:           16044 kB\n\
        SwapTotal:             0 kB\nSwapFree:              0 kB\nZswap:                 0 kB\n\
        Zswapped:              0 kB\nDirty:            130180 kB\nWriteback:             0 kB\n\
        AnonPages:        446192 kB\nMapped:           156324 kB\nShmem:             10488 kB\n\
        KReclaimable:      77032 kB\nSlab:             112156 kB\nSReclaimable:      77032 kB\n\
        SUnreclaim:        35124 kB\nKernelStack:        3520 kB\nPageTables:         3680 kB\n\
        SecPageTables:         0 kB\nNFS_Unstable:          0 kB\nBounce:                0 kB\n\
        WritebackTmp:          0 kB\nCommitLimit:    12342040 kB\nCommitted_AS:    1757540 kB\n\
        VmallocTotal:   34359738367 kB\nVmallocUsed:       15244 kB\nVmallocChunk:          0 kB\n\
        Percpu:              712 kB\nAnonHugePages:         0 kB\nShmemHugePages:        0 kB\n\
        ShmemPmdMapped:        0 kB\nFileHugePages:     24576 kB\nFilePmdMapped:         0 kB\n\
        HugePages_Total:       0\nHugePages_Free:        0\nHugePages_Rsvd:        0\n\
        HugePages_Surp:        0\nHugepagesize:       2048 kB\nHugetlb:               0 kB\n\
        DirectMap4k:       30720 kB\nDirectMap2M:     2066432 kB\nDirectMap1G:    25165824 kB\n";

    const SOCKSTAT: &str = "sockets: used 110\nTCP: inuse 99 orphan 0 tw 4837 alloc 99 mem 141\n\
        UDP: inuse 0 mem 7\nUDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n";

    #[test]
    fn takes_meminfo_and_sockstat_figures() {
        let m = Meminfo::from_read(MEMINFO.as_bytes()).unwrap();
        assert_eq!(m.mem_total, 24684084 * 1024);
        assert_eq!(m.hugepages_total, Some(0));
        let k = SystemKernel::of(&m, 4096);
        assert_eq!(
            k,
            SystemKernel {
                slab: 112156 * 1024,
                kernel_stack: 3520 * 1024,
                page_tables: 3680 * 1024,
                used: (24684084 - 23231744) * 1024,
                tcp: 4096,
            }
        );
        assert_eq!(sockstat_tcp_mem(SOCKSTAT), Some(141));
        assert_eq!(sockstat_tcp_mem("sockets: used 1\n"), None);
    }

    #[test]
    fn reads_this_machine() {
        let k = SystemKernel::read().unwrap();
        assert!(
            k.slab > 0 && k.kernel_stack > 0 && k.page_tables > 0,
            "{k:?}"
        );
        assert!(k.used > 0 && k.used < memory_total(), "{k:?}");
        // Slab is a part of what is used, in the same unit.
        assert!(k.slab < k.used, "{k:?}");
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
}
