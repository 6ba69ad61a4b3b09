//! A v1 memory cgroup of the server's own, and what its files say.
//!
//! The `procfs` crate does not read cgroup v1's memory controller: `memory.kmem.*`
//! and `memory.stat` are read here.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{KernelMem, KernelSource, CGROUP_PARENT, CGROUP_V1_MEMORY};

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

/// This process's memory cgroup path (the v1 hierarchy with `memory` among its controllers).
fn own_memory_cgroup() -> Option<String> {
    let groups = procfs::process::Process::myself().ok()?.cgroups().ok()?;
    groups
        .0
        .into_iter()
        .find(|g| g.controllers.iter().any(|c| c == "memory"))
        .map(|g| g.pathname)
}

fn read_u64(path: &Path) -> io::Result<u64> {
    fs::read_to_string(path)?.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// `key value` lines, as in a cgroup's `memory.stat`.
fn parse_key_values(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (k, v) = (it.next()?, it.next()?);
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::Sampler;
    use super::*;
    use std::process::{Child, Command};

    fn spawn(cmd: &str, args: &[&str]) -> Child {
        Command::new(cmd).args(args).spawn().expect("spawn")
    }

    /// memory.stat of a v1 cgroup on kernel 6.18 (abridged): no kernel_stack, sock or slab.
    const MEMORY_STAT_V1: &str = "cache 1888256\nrss 16158720\nrss_huge 0\nshmem 0\n\
        mapped_file 253952\ndirty 0\nwriteback 0\nswap 0\npgpgin 4452\npgpgout 3000\n\
        hierarchical_memory_limit 9223372036854771712\ntotal_cache 1888256\n";

    /// memory.stat of a cgroup v2 (abridged), for the keys v1 lacks.
    const MEMORY_STAT_V2: &str = "anon 4096000\nfile 8192\nkernel 2500000\nkernel_stack 163840\n\
        pagetables 40960\nsock 12288\nslab_reclaimable 100000\nslab_unreclaimable 900000\nslab 1000000\n";

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
        let in_cgroup = fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
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
        let now = fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
        assert!(
            now.contains(&format!(":memory:{home}\n")),
            "moved home ({home}): {now}"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
