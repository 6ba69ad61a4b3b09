//! Stopping a child process: a signal, a grace period, and what the caller
//! does when the grace runs out. One loop for every server a run stops (ours
//! at the end of a case or for a restart, a peer's process group).

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Sends `signal` to process `pid`, or to process group `-pid` when `pid`
/// is negative.
pub fn signal(pid: i32, signal: i32) {
    // SAFETY: kill has no memory-safety preconditions; callers pass the id of
    // a child of ours (or of the process group it leads) not yet reaped.
    unsafe { libc::kill(pid, signal) };
}

/// Waits up to `grace` for `child` to exit, looking every 10 ms: how it
/// ended, or `None` when it still runs.
pub fn wait_exit(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + grace;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    #[test]
    fn a_child_that_ends_on_sigterm_is_waited_for() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        assert_eq!(wait_exit(&mut child, Duration::ZERO), None);
        signal(child.id() as i32, libc::SIGTERM);
        let status = wait_exit(&mut child, Duration::from_secs(10)).expect("ended");
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn a_child_that_ignores_sigterm_is_still_running_after_the_grace() {
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; echo ready; sleep 30"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The trap is in place once the shell says so.
        let mut line = String::new();
        let out = child.stdout.take().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
        assert_eq!(line, "ready\n");
        signal(child.id() as i32, libc::SIGTERM);
        assert_eq!(wait_exit(&mut child, Duration::from_millis(300)), None);
        child.kill().unwrap();
        let status = wait_exit(&mut child, Duration::from_secs(10)).expect("killed");
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
