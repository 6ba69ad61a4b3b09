//! Namespaces removed however a run ends: the lab's drop on a normal end or
//! an error, a handler on SIGINT, SIGTERM and SIGHUP (Ctrl-C), and, for a
//! run killed outright, the next run, which finds the namespaces of a
//! process that no longer runs by their name, `cometbench-PID-...`.
//!
//! Removing a namespace first kills what still runs in it (a worker or a
//! server the run started there), then deletes its name; its links go with
//! it.

use std::process::Command;
use std::sync::{Mutex, MutexGuard, Once};

/// Every namespace a run makes is named `PREFIX` + its pid + `-`.
pub const PREFIX: &str = "cometbench-";

/// The prefixes of this process's labs that still exist.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The labs of this process, held while one is made so that a signal does
/// not remove half of one and let the rest be made after.
pub(super) fn live() -> MutexGuard<'static, Vec<String>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes this process's labs on SIGINT, SIGTERM or SIGHUP, then ends the
/// process as the signal would have. Installed once, by the first lab.
pub(super) fn install_handler() -> std::io::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            Ok(mut signals) => {
                std::thread::spawn(move || {
                    if let Some(sig) = signals.forever().next() {
                        let live = live();
                        for prefix in live.iter() {
                            let gone = remove(prefix);
                            eprintln!(
                                "cometbench: signal {sig}: removed network namespaces {}",
                                gone.join(", ")
                            );
                        }
                        let _ = signal_hook::low_level::emulate_default_handler(sig);
                        std::process::exit(128 + sig);
                    }
                });
            }
            Err(e) => result = Err(e),
        }
    });
    result
}

/// Removes every namespace named `prefix...`: what runs in it is killed,
/// then the name deleted. The names removed.
pub fn remove(prefix: &str) -> Vec<String> {
    let names: Vec<String> = list()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    for name in &names {
        for pid in pids(name) {
            // SAFETY: kill has no memory-safety preconditions; `pid` runs in a
            // namespace this program made, so it is a process a run started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = Command::new("ip").args(["netns", "del", name]).output();
    }
    // The root end of the server's link goes with the server's namespace,
    // once the kernel has let it go; taken down now rather than then.
    let link = root_link_name(prefix);
    for dev in root_links() {
        if dev == link || dev.starts_with(&format!("{link}-")) {
            let _ = Command::new("ip").args(["link", "del", &dev]).output();
        }
    }
    names
}

/// The root end of the server's link of lab `cometbench-PID-N-`:
/// `cbPID-N` (an interface name has at most 15 bytes). For a prefix
/// `cometbench-PID-`, the start of every such name of that process.
pub fn root_link_name(prefix: &str) -> String {
    let rest = prefix.strip_prefix(PREFIX).unwrap_or(prefix);
    format!("cb{}", rest.trim_end_matches('-'))
}

/// The names of the root namespace's veth devices.
fn root_links() -> Vec<String> {
    let Ok(out) = Command::new("ip")
        .args(["-o", "link", "show", "type", "veth"])
        .output()
    else {
        return Vec::new();
    };
    // `7: cb123-0@if2: <BROADCAST,...`
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// Removes the namespaces of runs that no longer run (killed outright, so
/// that neither the drop nor the handler ran). The names removed.
pub fn sweep() -> Vec<String> {
    let mut gone = Vec::new();
    let mut dead = Vec::new();
    for name in list() {
        if let Some(pid) = owner(&name) {
            if !alive(pid) && !dead.contains(&pid) {
                dead.push(pid);
            }
        }
    }
    for pid in dead {
        gone.extend(remove(&format!("{PREFIX}{pid}-")));
    }
    gone
}

/// The pid in a name `cometbench-PID-...`.
pub fn owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok().filter(|&p| p > 0)
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 checks that the process exists, and sends nothing.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The names `ip netns list` gives (`NAME (id: N)` a line).
pub fn list() -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The processes in namespace `name`.
fn pids(name: &str) -> Vec<i32> {
    let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_read_from_the_name() {
        assert_eq!(owner("cometbench-4242-0-server"), Some(4242));
        assert_eq!(owner("cometbench-17-3-w1"), Some(17));
        for other in [
            "cometbench-x-1",
            "cometbench-",
            "blue",
            "cometbench-0-w",
            "cometbench-12",
        ] {
            assert_eq!(owner(other), None, "{other}");
        }
        assert!(alive(std::process::id() as i32));
        assert_eq!(root_link_name("cometbench-4194303-999-"), "cb4194303-999");
        assert!(root_link_name("cometbench-4194303-999-").len() <= 15);
        assert_eq!(root_link_name("cometbench-17-"), "cb17");
    }
}
