//! The balancer a case may put in front of its nodes: HAProxy through
//! `scripts/balancer/haproxy.sh`, in a process group of its own like a
//! peer, on loopback only. Subscribers and publishers then have one address
//! (the usual deployment); without it, the clients spread themselves.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::peers::{parse_ready, stop_group};
use crate::script::start_ready;

/// A running balancer.
pub struct Balancer {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// HAProxy's master process; its worker is its child.
    pub pid: u32,
    pub log: PathBuf,
}

impl Balancer {
    /// HAProxy on `port` in front of `backends`; `scripts` is the peers'
    /// directory (`scripts/peers`), whose sibling `balancer` holds the script.
    pub fn start(
        scripts: &Path,
        port: u16,
        backends: &[SocketAddr],
        log: PathBuf,
    ) -> Result<Balancer> {
        let script = scripts
            .parent()
            .unwrap_or(scripts)
            .join("balancer")
            .join("haproxy.sh");
        let mut args = vec![port.to_string()];
        args.extend(backends.iter().map(|b| b.port().to_string()));
        let (mut child, line) = start_ready("the balancer (haproxy)", &script, &args, &[], &log)?;
        match parse_ready(&line) {
            Some(r) => Ok(Balancer {
                pid: r.pid.unwrap_or(child.id()),
                child: Some(child),
                addr: r.addr,
                log,
            }),
            None => {
                stop_group(&mut child, Duration::from_secs(5));
                bail!("haproxy.sh printed {line:?}, not `ready ADDR pid PID`")
            }
        }
    }

    /// Stops it: `None` when it stopped as asked, else what happened.
    pub fn stop(&mut self) -> Option<String> {
        let mut c = self.child.take()?;
        stop_group(&mut c, Duration::from_secs(5))
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_group(&mut c, Duration::from_secs(2));
        }
    }
}
