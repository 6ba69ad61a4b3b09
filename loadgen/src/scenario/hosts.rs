//! The `[hosts]` table: where the load generator's workers run, when not all
//! beside the coordinator.
//!
//! ```toml
//! [hosts]
//! namespaces = 2             # the run makes 2 network namespaces for the workers
//!                            # and a third for the server, and removes them after
//! rate_mbit = 1000.0         # optional: each worker's link rate-limited (tc tbf)
//!
//! # or: hosts of any kind, each worker started through a command
//! names = ["load1", "load2"]
//! command = "ssh {host} cometbench worker"   # split at spaces; {host}, {exe}
//! listen = "192.0.2.10"      # the server listens here; the hosts connect here
//! ```
//!
//! A worker's stdin and stdout are its control channel whatever starts it,
//! which is what `ssh` and `ip netns exec` give. With namespaces, `command`
//! defaults to [`NAMESPACE_COMMAND`]. `--hosts` on the command line replaces
//! the table ([`Scenario::with_hosts`]).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::error::ScenarioError;
use super::fault::Refusal;
use super::Scenario;

/// How a worker starts in a namespace host, unless `command` says otherwise.
pub const NAMESPACE_COMMAND: &str = "ip netns exec {host} {exe} worker";

/// Worker namespaces at most (each has a /24 of its own, see `crate::netns`).
pub const MAX_NAMESPACES: u32 = 64;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hosts {
    /// Hosts reached through `command`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Or: this many network namespaces, made by the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<u32>,
    /// The command that starts a worker on `{host}`, split at spaces (no
    /// shell); `{exe}` is this binary's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// With `names`: the address the server listens on, which the hosts reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<IpAddr>,
    /// With `namespaces`: each worker link's rate, Mbit/s (tc `tbf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_mbit: Option<f64>,
}

impl Hosts {
    /// The command template in force.
    pub fn command(&self) -> &str {
        self.command.as_deref().unwrap_or(NAMESPACE_COMMAND)
    }

    /// What serde cannot check: one kind of host, and what each kind needs.
    pub(super) fn check(&self, s: &Scenario) -> Result<(), Refusal> {
        let refuse = |field: &str, m: String| Err((format!("hosts.{field}"), m));
        if !s.peers.is_empty() {
            return refuse(
                "names",
                "hosts: peers serve on 127.0.0.1 only: leave them out of a scenario with hosts"
                    .into(),
            );
        }
        if s.broker.is_some() {
            return refuse(
                "names",
                "hosts: nodes and their broker run on 127.0.0.1 only: leave nodes and broker out of a scenario with hosts"
                    .into(),
            );
        }
        match (self.names.is_empty(), self.namespaces) {
            (true, None) => {
                return refuse(
                    "names",
                    "hosts needs names = [...] (with command and listen), or namespaces = N".into(),
                );
            }
            (false, Some(_)) => {
                return refuse(
                    "namespaces",
                    "hosts: either names or namespaces, not both".into(),
                );
            }
            (true, Some(n)) if n == 0 || n > MAX_NAMESPACES => {
                return refuse(
                    "namespaces",
                    format!("hosts.namespaces must be 1 ..= {MAX_NAMESPACES}, got {n}"),
                );
            }
            _ => {}
        }
        let name_ok = |c: char| c.is_ascii_alphanumeric() || "._@:-".contains(c);
        for (i, n) in self.names.iter().enumerate() {
            if n.is_empty() || !n.chars().all(name_ok) {
                return refuse(
                    "names",
                    format!("hosts.names: a host name is 1 or more of [A-Za-z0-9._@:-], got {n:?}"),
                );
            }
            if self.names[..i].contains(n) {
                return refuse("names", format!("hosts.names lists {n:?} twice"));
            }
        }
        if !self.command().split(' ').any(|w| w.contains("{host}")) {
            return refuse(
                "command",
                format!("hosts.command must name {{host}}, got {:?}", self.command()),
            );
        }
        if self.names.is_empty() {
            if self.listen.is_some() {
                return refuse(
                    "listen",
                    "hosts.listen goes with names: with namespaces the server has one of its own"
                        .into(),
                );
            }
        } else {
            if self.command.is_none() {
                return refuse(
                    "command",
                    "hosts.command is needed with names: what starts a worker there, e.g. \"ssh {host} cometbench worker\"".into(),
                );
            }
            if self.listen.is_none() {
                return refuse(
                    "listen",
                    "hosts.listen is needed with names: the address the server listens on, which the hosts reach".into(),
                );
            }
            if self.rate_mbit.is_some() {
                return refuse(
                    "rate_mbit",
                    "hosts.rate_mbit: links are rate-limited only between the run's own namespaces"
                        .into(),
                );
            }
        }
        if let Some(r) = self.rate_mbit {
            if !(r.is_finite() && r > 0.0) {
                return refuse("rate_mbit", format!("hosts.rate_mbit must be > 0, got {r}"));
            }
        }
        Ok(())
    }

    /// The `--hosts` flag: `local` (every worker here), `netns:N`, or host
    /// names separated by commas (with `--host-command` and `--host-listen`).
    fn from_flag(
        flag: &str,
        command: Option<String>,
        listen: Option<IpAddr>,
    ) -> Result<Option<Hosts>, String> {
        if flag == "local" {
            if command.is_some() || listen.is_some() {
                return Err("--hosts local takes no --host-command or --host-listen".into());
            }
            return Ok(None);
        }
        if let Some(n) = flag.strip_prefix("netns:") {
            let n = n
                .parse()
                .map_err(|_| format!("--hosts netns:N needs a number, got {flag:?}"))?;
            return Ok(Some(Hosts {
                namespaces: Some(n),
                command,
                listen,
                ..Hosts::default()
            }));
        }
        Ok(Some(Hosts {
            names: flag.split(',').map(str::to_string).collect(),
            command,
            listen,
            ..Hosts::default()
        }))
    }
}

impl Scenario {
    /// Applies `--hosts` (and `--host-command`, `--host-listen`): the
    /// scenario's `[hosts]` is replaced, and checked again.
    pub fn with_hosts(
        mut self,
        flag: &str,
        command: Option<String>,
        listen: Option<IpAddr>,
    ) -> Result<Scenario, ScenarioError> {
        self.hosts = Hosts::from_flag(flag, command, listen)
            .map_err(|m| ScenarioError::invalid("--hosts", "hosts", m))?;
        if let Some(h) = &self.hosts {
            h.check(&self)
                .map_err(|(field, m)| ScenarioError::invalid("--hosts", &field, m))?;
        }
        Ok(self)
    }
}
