//! Network namespaces that stand for hosts: one for the server under test,
//! one per worker host, each worker host joined to the server's by a veth
//! link of its own, and the server's joined to the root namespace (where the
//! coordinator publishes from and reads `/stats`).
//!
//! ```text
//!   root ns (coordinator, publisher)
//!      | 198.19.x.y/30
//!   cometbench-PID-N-server ---- 198.18.0.0/24 ---- cometbench-PID-N-w0 (workers)
//!                          \---- 198.18.1.0/24 ---- cometbench-PID-N-w1 (workers)
//! ```
//!
//! A link may be rate-limited with `tc`'s `tbf`, both ways. Delay and loss
//! cannot be emulated on this kernel (`netem` is not available; `tc` offers
//! `tbf`, `htb` and `pfifo`): the links are as fast as veth, at the rate
//! asked at most. The server's process stays visible from the root namespace
//! (pids are global), so the sampler and its memory cgroup work as before.
//!
//! [`Lab`] is the guard: made whole or not at all, removed when dropped, on
//! SIGINT, SIGTERM or SIGHUP, or by the next run after a kill (`cleanup`).
//! The files: `addresses` (the address plan), `cleanup` (removal however a
//! run ends).

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};

pub mod addresses;
pub mod cleanup;

pub use cleanup::PREFIX;

/// A worker host's namespace.
#[derive(Debug, Clone)]
pub struct HostNs {
    pub name: String,
    /// The server's end of this host's link: what its workers connect to.
    pub server_ip: Ipv4Addr,
    /// This host's addresses, its workers' sources.
    pub addresses: Vec<Ipv4Addr>,
}

/// A run's namespaces, removed when dropped.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    /// The server's namespace.
    pub server: String,
    /// The server's end of the root link: where the coordinator reaches it.
    pub server_reach: Ipv4Addr,
    pub hosts: Vec<HostNs>,
    pub rate_mbit: Option<f64>,
}

impl Lab {
    /// Makes a server namespace and `hosts` worker namespaces of
    /// `addresses` addresses each, their links limited to `rate_mbit` when
    /// given. The namespaces of killed runs are removed first.
    pub fn create(hosts: usize, addresses: usize, rate_mbit: Option<f64>) -> Result<Lab> {
        static LABS: AtomicU32 = AtomicU32::new(0);
        if hosts == 0 || hosts > 256 {
            bail!("1 to 256 worker namespaces, not {hosts}");
        }
        if addresses == 0 || addresses > addresses::MAX_HOST_ADDRESSES {
            bail!(
                "1 to {} addresses per worker namespace, not {addresses}",
                addresses::MAX_HOST_ADDRESSES
            );
        }
        for name in cleanup::sweep() {
            eprintln!("cometbench: removed {name}, left by a run that was killed");
        }
        cleanup::install_handler().context("handling SIGINT and SIGTERM")?;
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let prefix = format!("{PREFIX}{pid}-{n}-");
        let root_end = cleanup::root_link_name(&prefix);
        let mut lab = Lab {
            server: format!("{prefix}server"),
            prefix,
            server_reach: Ipv4Addr::UNSPECIFIED,
            hosts: Vec::new(),
            rate_mbit,
        };
        // Built under the lock, so that a signal now waits and then removes
        // all of it. On an error the lab is dropped after the lock is let go,
        // and that removes what was made.
        let mut live = cleanup::live();
        live.push(lab.prefix.clone());
        let built = (|| {
            lab.server_reach = lab.make_server(&root_end, pid ^ n.rotate_left(7))?;
            for h in 0..hosts {
                let host = lab.make_host(h, addresses)?;
                lab.hosts.push(host);
            }
            Ok::<(), anyhow::Error>(())
        })();
        drop(live);
        built.map(|()| lab)
    }

    /// The server's namespace, linked to the root one over a free /30; the
    /// server's end of it.
    fn make_server(&self, root_end: &str, seed: u32) -> Result<Ipv4Addr> {
        let ns = &self.server;
        ip(&["netns", "add", ns])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        let used = root_addresses()?;
        let block = addresses::free_root_block(seed % addresses::ROOT_BLOCKS, &used)
            .context("no free /30 left in 198.19.0.0/16")?;
        let (root, server) = addresses::root_link(block);
        ip(&[
            "link", "add", root_end, "type", "veth", "peer", "name", "up0", "netns", ns,
        ])?;
        ip(&["addr", "add", &format!("{root}/30"), "dev", root_end])?;
        ip(&["link", "set", root_end, "up"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{server}/30"),
            "dev",
            "up0",
        ])?;
        ip(&["-n", ns, "link", "set", "up0", "up"])?;
        Ok(server)
    }

    /// Worker namespace `h`, its link to the server's, its addresses and
    /// its rate.
    fn make_host(&self, h: usize, addresses: usize) -> Result<HostNs> {
        let name = format!("{}w{h}", self.prefix);
        ip(&["netns", "add", &name])?;
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        let (server_dev, host_dev) = (format!("w{h}"), "eth0");
        ip(&[
            "link",
            "add",
            &server_dev,
            "netns",
            &self.server,
            "type",
            "veth",
            "peer",
            "name",
            host_dev,
            "netns",
            &name,
        ])?;
        let server_ip = addresses::server_end(h);
        ip(&[
            "-n",
            &self.server,
            "addr",
            "add",
            &format!("{server_ip}/24"),
            "dev",
            &server_dev,
        ])?;
        let list: Vec<Ipv4Addr> = (0..addresses)
            .map(|i| addresses::host_address(h, i))
            .collect();
        for a in &list {
            ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("{a}/24"),
                "dev",
                host_dev,
            ])?;
        }
        ip(&["-n", &self.server, "link", "set", &server_dev, "up"])?;
        ip(&["-n", &name, "link", "set", host_dev, "up"])?;
        if let Some(rate) = self.rate_mbit {
            tbf(&self.server, &server_dev, rate)?;
            tbf(&name, host_dev, rate)?;
        }
        Ok(HostNs {
            name,
            server_ip,
            addresses: list,
        })
    }

    /// Every namespace of the lab, the server's first.
    pub fn names(&self) -> Vec<String> {
        let mut all = vec![self.server.clone()];
        all.extend(self.hosts.iter().map(|h| h.name.clone()));
        all
    }

    /// The namespaces' prefix, `cometbench-PID-N-`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// One line on the lab for a case's notes.
    pub fn describe(&self) -> String {
        let rate = match self.rate_mbit {
            Some(r) => format!("rate-limited to {r} Mbit/s each way (tc tbf)"),
            None => "not rate-limited".into(),
        };
        format!(
            "load from {} network namespaces, the server in another, over veth links (198.18.0.0/15) {rate}; no delay or loss emulated: netem is not available on this kernel",
            self.hosts.len()
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut live = cleanup::live();
        cleanup::remove(&self.prefix);
        live.retain(|p| p != &self.prefix);
    }
}

/// `ip ARGS`; its stderr in the error.
fn ip(args: &[&str]) -> Result<()> {
    run("ip", args)
}

fn run(cmd: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running `{cmd}` (network namespaces need iproute2, and root)"))?;
    if !out.status.success() {
        bail!(
            "`{cmd} {}` failed (network namespaces need root): {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A `tbf` at `rate_mbit` on `dev` in namespace `ns`.
fn tbf(ns: &str, dev: &str, rate_mbit: f64) -> Result<()> {
    let rate = format!("{}kbit", (rate_mbit * 1000.0).round() as u64);
    let burst = addresses::tbf_burst_bytes(rate_mbit).to_string();
    run(
        "tc",
        &[
            "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", &rate, "burst", &burst,
            "latency", "50ms",
        ],
    )
}

/// The IPv4 addresses of the root namespace.
fn root_addresses() -> Result<Vec<Ipv4Addr>> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .context("running `ip addr show`")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .collect())
}
