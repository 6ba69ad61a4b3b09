//! The broker of a case whose servers share one (see `docs/DESIGN.md`,
//! Several nodes): redis-server through `scripts/broker/redis.sh`, in a
//! process group of its own like a peer, on a loopback port it is given;
//! killed and started again on the same port for a fault.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::child;
use crate::peers::stop_group;
use crate::script::start_ready;

/// A running broker.
pub struct Broker {
    child: Option<Child>,
    script: PathBuf,
    log: PathBuf,
    pub port: u16,
    /// `redis://127.0.0.1:PORT`, as the nodes are told.
    pub url: String,
    /// The redis-server process (not the script).
    pub pid: u32,
}

impl Broker {
    /// Starts the broker on `port`; `scripts` is the peers' directory
    /// (`scripts/peers`), whose sibling `broker` holds the script.
    pub fn start(scripts: &Path, port: u16, log: PathBuf) -> Result<Broker> {
        let script = scripts
            .parent()
            .unwrap_or(scripts)
            .join("broker")
            .join("redis.sh");
        let mut b = Broker {
            child: None,
            script,
            log,
            port,
            url: format!("redis://127.0.0.1:{port}"),
            pid: 0,
        };
        b.spawn()?;
        Ok(b)
    }

    fn spawn(&mut self) -> Result<()> {
        let (mut child, line) = start_ready(
            "the broker (redis-server)",
            &self.script,
            &[self.port.to_string()],
            &[],
            &self.log,
        )?;
        match parse_ready(&line, self.port) {
            Some(pid) => {
                self.pid = pid;
                self.child = Some(child);
                Ok(())
            }
            None => {
                stop_group(&mut child, Duration::from_secs(5));
                bail!(
                    "redis.sh printed {line:?}, not `ready {} pid PID`",
                    self.url
                )
            }
        }
    }

    /// The address the nodes connect to.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port)
    }

    /// SIGKILLs redis-server (its data is gone: it keeps none) and waits for
    /// the script to end.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            child::signal(self.pid as i32, libc::SIGKILL);
            stop_group(&mut c, Duration::from_secs(5));
        }
    }

    /// Starts it again on the same port (after [`Broker::kill`]).
    pub fn start_again(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// Stops it: `None` when it stopped as asked, else what happened.
    pub fn stop(&mut self) -> Option<String> {
        let mut c = self.child.take()?;
        stop_group(&mut c, Duration::from_secs(5))
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_group(&mut c, Duration::from_secs(2));
        }
    }
}

/// The redis-server pid in `ready redis://127.0.0.1:PORT pid PID`.
fn parse_ready(line: &str, port: u16) -> Option<u32> {
    let rest = line.strip_prefix(&format!("ready redis://127.0.0.1:{port} pid "))?;
    rest.trim().parse().ok().filter(|&p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lines() {
        assert_eq!(
            parse_ready("ready redis://127.0.0.1:6400 pid 42", 6400),
            Some(42)
        );
        assert_eq!(
            parse_ready("ready redis://127.0.0.1:6400 pid 42", 6401),
            None
        );
        assert_eq!(
            parse_ready("ready redis://127.0.0.1:6400 pid 0", 6400),
            None
        );
        assert_eq!(parse_ready("ready 127.0.0.1:6400 pid 42", 6400), None);
    }
}
