//! Starting a helper script in the foreground and waiting for its ready
//! line: the peers (`scripts/peers/`), the broker (`scripts/broker/`) and
//! the balancer (`scripts/balancer/`) all run so. The script leads a process
//! group of its own, installs what it needs when missing, and prints one line
//! beginning `ready ` once what it started answers; it is stopped by
//! signalling its group ([`crate::peers::stop_group`]).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::peers::stop_group;

/// How long a script may take to print its ready line: the first start may
/// install its packages.
pub const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `bash SCRIPT ARGS` with `env`, its stderr into `log` (appended),
/// and returns it with its ready line. `what` names it in errors.
pub fn start_ready(
    what: &str,
    script: &Path,
    args: &[String],
    env: &[(&str, String)],
    log: &Path,
) -> Result<(Child, String)> {
    if !script.is_file() {
        bail!("{} missing", script.display());
    }
    let err = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("creating {}", log.display()))?;
    let mut child = Command::new("bash")
        .arg(script)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", script.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // Keep reading after the ready line: the script must never
            // write into a closed pipe.
            if line.starts_with("ready ") {
                let _ = tx.send(line);
            }
        }
    });
    let name = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let t0 = Instant::now();
    let line = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => break Some(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if t0.elapsed() > READY_TIMEOUT {
                    break None;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break None;
                }
            }
        }
    };
    let Some(line) = line else {
        let why = match child.try_wait() {
            Ok(Some(status)) => format!("{name} exited with {status}"),
            _ => format!(
                "{name} printed no ready line within {} s",
                READY_TIMEOUT.as_secs()
            ),
        };
        stop_group(&mut child, Duration::from_secs(5));
        let tail = last_line(log).map(|l| format!(": {l}")).unwrap_or_default();
        bail!("{what} did not start: {why}{tail}");
    };
    Ok((child, line))
}

/// The last line of `log` with something on it.
pub fn last_line(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}
