//! Where a run's load comes from: every worker beside the coordinator (no
//! `[hosts]`), on hosts reached through a command (`ssh {host} ...`), or in
//! network namespaces the run makes (with the server in one of its own).
//!
//! The [`Layout`] is made once per run and answers, for each case: how many
//! workers, which host each one runs on and how it is started there, which
//! address it connects to and from which sources, and where the server
//! listens. Workers go to the hosts in turn (worker `w` on host `w mod H`),
//! every host with as many, so connections are spread evenly. The network
//! namespaces themselves are `crate::netns`'s; the layout holds the guard.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::PER_WORKER;
use crate::netns::Lab;
use crate::scenario::{Hosts, Scenario};

/// Source addresses per worker, as on one machine.
const SOURCES_PER_WORKER: usize = 4;

/// Connections one host elsewhere may carry: its workers share its one
/// source address, and so the ~28,000 ephemeral ports towards the server.
const PER_REMOTE_HOST: u64 = 28_000;

/// Where the server runs and listens.
#[derive(Debug, Clone)]
pub(super) struct ServerPlace {
    /// What its command is run through (`ip netns exec NS`), or nothing.
    pub wrapper: Vec<String>,
    /// The address it listens on.
    pub listen: IpAddr,
    /// The address the coordinator reaches it at (publishes, `/stats`).
    pub reach: IpAddr,
    /// More flags for `serve`: beyond loopback it wants a publish token, or
    /// to be told that its network is private.
    pub args: Vec<String>,
    /// The token the publisher sends.
    pub token: Option<String>,
}

impl ServerPlace {
    /// On this machine's loopback, as without hosts.
    pub fn here() -> ServerPlace {
        ServerPlace {
            wrapper: Vec::new(),
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            reach: IpAddr::V4(Ipv4Addr::LOCALHOST),
            args: Vec::new(),
            token: None,
        }
    }

    /// `exe`, run where the server runs.
    pub fn command(&self, exe: &Path) -> Command {
        match self.wrapper.split_first() {
            None => Command::new(exe),
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(exe);
                c
            }
        }
    }
}

/// How one host's workers reach the server.
#[derive(Debug)]
enum Reach {
    /// Beside the coordinator: loopback sources of their own, as ever.
    Loopback,
    /// A namespace: its link's server end, and its addresses, four per worker.
    Link {
        server_ip: IpAddr,
        addresses: Vec<IpAddr>,
    },
    /// Elsewhere: the server's listen address, from the host's own address.
    Remote,
}

#[derive(Debug)]
struct Host {
    name: String,
    /// The command's words, `{host}` filled in; `None`: this binary, here.
    command: Option<Vec<String>>,
    reach: Reach,
}

/// The hosts of a run, and the namespaces when it made them.
#[derive(Debug)]
pub(super) struct Layout {
    hosts: Vec<Host>,
    server: ServerPlace,
    notes: Vec<String>,
    /// Held for its drop, which removes the namespaces.
    _lab: Option<Lab>,
}

impl Layout {
    /// The scenario's hosts; its namespaces made (sized for its largest step).
    pub fn new(s: &Scenario) -> Result<Layout> {
        let Some(h) = &s.hosts else {
            return Ok(Layout {
                hosts: vec![Host {
                    name: "local".into(),
                    command: None,
                    reach: Reach::Loopback,
                }],
                server: ServerPlace::here(),
                notes: Vec::new(),
                _lab: None,
            });
        };
        if let Some(n) = h.namespaces {
            return Layout::namespaces(s, h, n as usize);
        }
        let listen = h.listen.expect("checked: names come with listen");
        // On a real network anyone could publish: a token of the run's own.
        let token = token()?;
        let hosts = h
            .names
            .iter()
            .map(|name| Host {
                name: name.clone(),
                command: Some(words(h.command(), name)),
                reach: Reach::Remote,
            })
            .collect();
        Ok(Layout {
            hosts,
            server: ServerPlace {
                wrapper: Vec::new(),
                listen,
                reach: listen,
                args: vec!["--publish-token".into(), token.clone()],
                token: Some(token),
            },
            notes: vec![format!(
                "load from {} hosts ({}), started by `{}`; the server listens on {listen}",
                h.names.len(),
                h.names.join(", "),
                h.command()
            )],
            _lab: None,
        })
    }

    fn namespaces(s: &Scenario, h: &Hosts, n: usize) -> Result<Layout> {
        let per_host = per_host(max_step(s), n) as usize;
        let lab = Lab::create(n, per_host * SOURCES_PER_WORKER, h.rate_mbit)?;
        let hosts = lab
            .hosts
            .iter()
            .map(|ns| Host {
                name: ns.name.clone(),
                command: Some(words(h.command(), &ns.name)),
                reach: Reach::Link {
                    server_ip: IpAddr::V4(ns.server_ip),
                    addresses: ns.addresses.iter().map(|&a| IpAddr::V4(a)).collect(),
                },
            })
            .collect();
        Ok(Layout {
            hosts,
            server: ServerPlace {
                wrapper: ["ip", "netns", "exec", &lab.server]
                    .map(String::from)
                    .to_vec(),
                listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                reach: IpAddr::V4(lab.server_reach),
                // Its namespace is reached only from the run's namespaces and
                // from this machine, as loopback is: no token, so the server
                // does the same work per publish as on one host.
                args: vec!["--insecure-public".into()],
                token: None,
            },
            notes: vec![lab.describe()],
            _lab: Some(lab),
        })
    }

    /// Workers for `step` connections: as many as the open-file limit asks,
    /// and the same number on every host.
    pub fn workers(&self, step: u64) -> u64 {
        let n = self.hosts.len() as u64;
        per_host(step, n as usize) * n
    }

    pub fn host_name(&self, w: usize) -> &str {
        &self.host(w).name
    }

    fn host(&self, w: usize) -> &Host {
        &self.hosts[w % self.hosts.len()]
    }

    /// Worker `w`'s target (the server's `addr` as the coordinator reaches
    /// it, or its link's end) and its source addresses.
    pub fn route(&self, w: usize, addr: SocketAddr) -> (SocketAddr, Vec<IpAddr>) {
        match &self.host(w).reach {
            Reach::Loopback => {
                let w = w as u64;
                let sources = (0..SOURCES_PER_WORKER as u8)
                    .map(|i| {
                        IpAddr::V4(Ipv4Addr::new(
                            127,
                            1 + (w / 60) as u8,
                            (w % 60) as u8 * 4 + i,
                            2,
                        ))
                    })
                    .collect();
                (addr, sources)
            }
            Reach::Link {
                server_ip,
                addresses,
            } => {
                let j = w / self.hosts.len() * SOURCES_PER_WORKER;
                let sources = addresses[j..j + SOURCES_PER_WORKER].to_vec();
                (SocketAddr::new(*server_ip, addr.port()), sources)
            }
            Reach::Remote => (addr, vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]),
        }
    }

    /// The command that starts worker `w`, `exe` being this binary.
    pub fn command(&self, w: usize, exe: &Path) -> Command {
        match &self.host(w).command {
            None => {
                let mut c = Command::new(exe);
                c.arg("worker");
                c
            }
            Some(words) => {
                let exe = exe.to_string_lossy();
                let mut words = words.iter().map(|word| word.replace("{exe}", &exe));
                let mut c = Command::new(words.next().unwrap_or_default());
                c.args(words);
                c
            }
        }
    }

    /// Worker `w`'s receipt times are corrected by its clock's offset: it
    /// runs through a host's command, so its clock may be another machine's.
    pub fn corrects(&self, w: usize) -> bool {
        self.host(w).command.is_some()
    }

    pub fn server(&self) -> &ServerPlace {
        &self.server
    }

    /// What every case of the run says of where its load came from.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }
}

/// 16 random bytes in hex.
fn token() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the publish token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Workers per host for `step` connections over `hosts` hosts.
fn per_host(step: u64, hosts: usize) -> u64 {
    step.div_ceil(PER_WORKER).max(1).div_ceil(hosts as u64)
}

fn max_step(s: &Scenario) -> u64 {
    s.steps.iter().copied().max().unwrap_or(1)
}

/// `template` split at spaces, `{host}` filled in.
fn words(template: &str, host: &str) -> Vec<String> {
    template
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| w.replace("{host}", host))
        .collect()
}

/// What a scenario's hosts cannot carry, refused before the run starts.
pub(super) fn preflight(s: &Scenario) -> Result<()> {
    let Some(h) = &s.hosts else { return Ok(()) };
    let max = max_step(s);
    if let Some(n) = h.namespaces {
        let per_host = per_host(max, n as usize);
        let most = crate::netns::addresses::MAX_HOST_ADDRESSES / SOURCES_PER_WORKER;
        if per_host as usize > most {
            bail!(
                "{max} connections over {n} namespaces need {per_host} workers in each; a namespace has room for the sources of {most}: add namespaces"
            );
        }
    } else {
        let each = max.div_ceil(h.names.len() as u64);
        if each > PER_REMOTE_HOST {
            bail!(
                "{max} connections over {} hosts are {each} per host, more than the {PER_REMOTE_HOST} ephemeral ports one source address has towards the server: add hosts",
                h.names.len()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(hosts: usize) -> Layout {
        Layout {
            hosts: (0..hosts)
                .map(|h| Host {
                    name: format!("ns{h}"),
                    command: Some(words(
                        "ip netns exec {host} {exe} worker",
                        &format!("ns{h}"),
                    )),
                    reach: Reach::Link {
                        server_ip: IpAddr::V4(Ipv4Addr::new(198, 18, h as u8, 1)),
                        addresses: (0..8)
                            .map(|i| IpAddr::V4(Ipv4Addr::new(198, 18, h as u8, 2 + i)))
                            .collect(),
                    },
                })
                .collect(),
            server: ServerPlace::here(),
            notes: Vec::new(),
            _lab: None,
        }
    }

    #[test]
    fn workers_spread_evenly_over_the_hosts() {
        let l = layout(2);
        assert_eq!(l.workers(100), 2, "one each even for a few connections");
        assert_eq!(l.workers(15_001), 2);
        assert_eq!(l.workers(45_001), 4, "four needed, two each");
        let one = layout(1);
        assert_eq!(one.workers(15_000), 1);
        assert_eq!(one.workers(15_001), 2);
        assert_eq!(
            (l.host_name(0), l.host_name(1), l.host_name(2)),
            ("ns0", "ns1", "ns0")
        );
    }

    #[test]
    fn each_worker_has_sources_of_its_own_on_its_host() {
        let l = layout(2);
        let server: SocketAddr = "198.19.0.2:20000".parse().unwrap();
        let (t0, s0) = l.route(0, server);
        let (t1, s1) = l.route(1, server);
        let (t2, s2) = l.route(2, server);
        assert_eq!(t0, "198.18.0.1:20000".parse().unwrap());
        assert_eq!(t1, "198.18.1.1:20000".parse().unwrap());
        assert_eq!(t2, t0, "worker 2 is on host 0 too");
        assert_eq!(s0[0], IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)));
        assert_eq!(s2[0], IpAddr::V4(Ipv4Addr::new(198, 18, 0, 6)));
        assert_eq!(s1[3], IpAddr::V4(Ipv4Addr::new(198, 18, 1, 5)));
        assert!(s0.iter().all(|a| !s2.contains(a)));
        assert!(l.corrects(1));
    }

    #[test]
    fn commands_name_their_host_and_this_binary() {
        let l = layout(2);
        let c = l.command(1, Path::new("/opt/cometbench"));
        assert_eq!(c.get_program(), "ip");
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().to_string())
            .collect();
        assert_eq!(args, ["netns", "exec", "ns1", "/opt/cometbench", "worker"]);
        assert_eq!(
            words("ssh  -o BatchMode=yes {host} cometbench worker", "load1"),
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "load1",
                "cometbench",
                "worker"
            ]
        );
        let here = ServerPlace {
            wrapper: words("ip netns exec srv", ""),
            ..ServerPlace::here()
        };
        let args: Vec<_> = here
            .command(Path::new("/x/cometbench"))
            .get_args()
            .map(|a| a.to_string_lossy().to_string())
            .collect();
        assert_eq!(args, ["netns", "exec", "srv", "/x/cometbench"]);
    }

    #[test]
    fn alone_every_worker_has_its_loopback_sources() {
        let l = Layout::new(
            &Scenario::from_str(
                "name = \"x\"\ntransports = [\"sse\"]\nsteps = [20000]\n",
                "x.toml",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(l.workers(20_000), 2);
        let addr: SocketAddr = "127.0.0.1:20000".parse().unwrap();
        let (t, s) = l.route(61, addr);
        assert_eq!(t, addr);
        assert_eq!(s[0], IpAddr::V4(Ipv4Addr::new(127, 2, 4, 2)));
        assert!(!l.corrects(0));
        assert_eq!(l.host_name(5), "local");
    }
}
