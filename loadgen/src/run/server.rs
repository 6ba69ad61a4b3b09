//! The server of one case while it runs: started (ours, a peer's script, or
//! nothing for an external server), asked for its `/stats`, stopped (at the
//! end, or for a restart, and started again on the same ports).

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::hosts::ServerPlace;
use super::External;
use crate::child;
use crate::clock::mono_ns;
use crate::peers::{self, Peer};
use crate::results;
use crate::scenario::{self, StopSignal};

pub(super) struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// Where to publish and read `/stats`: `addr`, or the separate publish listener.
    pub publish_addr: SocketAddr,
    pub pid: Option<u32>,
    log: PathBuf,
    /// The child leads a process group of its own (a peer's script): stop the group.
    group: bool,
    /// What `cometbench serve` was given after its dispatcher and address:
    /// a restart gives it again (a node's `--broker` included).
    serve_args: Vec<String>,
    /// Where it runs and listens (a restart starts it there again).
    place: ServerPlace,
}

impl Server {
    /// `cometbench serve --dispatcher NAME ARGS` on free ports, with a
    /// publish listener of its own when asked.
    pub fn ours(
        exe: &Path,
        name: &str,
        args: &[String],
        publish_listen: bool,
        log: PathBuf,
        place: &ServerPlace,
    ) -> Result<Server> {
        let (port, publish_port) = free_ports(publish_listen)?;
        Server::ours_on(exe, name, args, port, publish_port, log, place)
    }

    /// `cometbench serve` joining `port` (`--reuse-port`, as the server
    /// that took it did), with a publish listener of its own when asked.
    pub fn ours_joining(
        exe: &Path,
        name: &str,
        args: &[String],
        port: u16,
        publish_listen: bool,
        log: PathBuf,
        place: &ServerPlace,
    ) -> Result<Server> {
        let (_, publish_port) = free_ports(publish_listen)?;
        Server::ours_on(exe, name, args, port, publish_port, log, place)
    }

    /// `cometbench serve` on the given ports (a restart takes the old ones).
    fn ours_on(
        exe: &Path,
        name: &str,
        args: &[String],
        port: u16,
        publish_port: Option<u16>,
        log: PathBuf,
        place: &ServerPlace,
    ) -> Result<Server> {
        let mut extra = Vec::new();
        if let Some(p) = publish_port {
            extra.push("--publish-listen".to_string());
            extra.push(SocketAddr::new(place.listen, p).to_string());
        }
        let err = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = place.command(exe);
        super::placement::server(&mut cmd);
        match name {
            super::FLOOR => cmd.arg(super::FLOOR),
            _ => cmd.arg("serve").arg("--dispatcher").arg(name),
        };
        let mut child = cmd
            .arg("--listen")
            .arg(SocketAddr::new(place.listen, port).to_string())
            .args(&place.args)
            .args(args)
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {} serve", exe.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let pid = child.id();
        let mut server = Server {
            child: Some(child),
            addr: SocketAddr::new(place.reach, port),
            publish_addr: SocketAddr::new(place.reach, publish_port.unwrap_or(port)),
            pid: Some(pid),
            log,
            group: false,
            serve_args: args.to_vec(),
            place: place.clone(),
        };
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(line) if !line.trim().is_empty() => {
                let printed: SocketAddr = line
                    .trim()
                    .parse()
                    .with_context(|| format!("server printed {line:?}"))?;
                server.addr = SocketAddr::new(place.reach, printed.port());
                if publish_port.is_none() {
                    server.publish_addr = server.addr;
                }
                Ok(server)
            }
            _ => {
                let why = server
                    .stop()
                    .unwrap_or_else(|| "no address printed within 15 s".into());
                bail!("{why}")
            }
        }
    }

    /// A peer's script on free ports (see [`crate::peers`]), with `env`
    /// added to its environment.
    pub fn peer(
        p: &Peer,
        exe: &Path,
        settings: peers::Settings,
        publish_listen: bool,
        env: &[(&str, String)],
        log: PathBuf,
    ) -> Result<Server> {
        let scripts = peers::scripts_dir(exe)?;
        let (port, publish_port) = free_ports(p.own_publish_port || publish_listen)?;
        let publish_port = publish_port.unwrap_or(port);
        let started = peers::start_with(p, &scripts, port, publish_port, settings, env, &log)?;
        Ok(Server {
            pid: Some(started.pid),
            child: Some(started.child),
            addr: started.addr,
            publish_addr: started.publish_addr,
            log,
            group: true,
            serve_args: Vec::new(),
            place: ServerPlace::here(),
        })
    }

    /// A server the run did not start: nothing to stop.
    pub fn external(e: &External) -> Server {
        Server {
            child: None,
            addr: e.addr,
            publish_addr: e.addr,
            pid: e.pid,
            log: PathBuf::new(),
            group: false,
            serve_args: Vec::new(),
            place: ServerPlace::here(),
        }
    }

    /// SIGKILLs the server where it stands (a fault): how it ended.
    pub fn kill(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        if self.group {
            return peers::stop_group(&mut child, Duration::ZERO);
        }
        let _ = child.kill();
        child.wait().ok().map(|s| describe_exit(s, &self.log))
    }

    /// How the server ended, when it has on its own.
    pub fn exit_status(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(describe_exit(status, &self.log)),
            _ => None,
        }
    }

    /// Stops the server: SIGTERM, up to 5 s (10 s for a peer's group), then
    /// SIGKILL. `None` when it stopped as asked, else what happened.
    pub fn stop(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            if self.group {
                peers::stop_group(&mut child, Duration::ZERO);
            }
            return Some(describe_exit(status, &self.log));
        }
        if self.group {
            return peers::stop_group(&mut child, Duration::from_secs(10));
        }
        child::signal(child.id() as i32, libc::SIGTERM);
        if child::wait_exit(&mut child, Duration::from_secs(5)).is_some() {
            return None;
        }
        let _ = child.kill();
        let _ = child.wait();
        Some("did not stop within 5 s of SIGTERM: killed".into())
    }

    /// Stops the server as the restart fault says and starts it again on the
    /// same ports with the same arguments, `at_secs` into the publish phase:
    /// what happened, and the new server or why there is none.
    pub fn restart(
        &mut self,
        f: &scenario::Restart,
        exe: &Path,
        name: &str,
        at_secs: f64,
    ) -> (results::Restart, Result<Server>) {
        let mut r = results::Restart {
            signal: match f.signal() {
                StopSignal::Term => "term".into(),
                StopSignal::Kill => "kill".into(),
            },
            at_secs,
            old_pid: self.pid,
            ..results::Restart::default()
        };
        let t = Instant::now();
        if let Some(mut child) = self.child.take() {
            r.exit = self.stop_for_restart(&mut child, f.signal());
        }
        r.stop_secs = t.elapsed().as_secs_f64();
        let down = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(f.downtime_secs()));
        let publish_port = (self.publish_addr != self.addr).then(|| self.publish_addr.port());
        let new = Server::ours_on(
            exe,
            name,
            &self.serve_args,
            self.addr.port(),
            publish_port,
            self.log.clone(),
            &self.place,
        );
        r.down_secs = down.elapsed().as_secs_f64();
        if let Ok(n) = &new {
            r.new_pid = n.pid;
        }
        (r, new)
    }

    /// Sends `signal` and waits up to 10 s; how it ended when not as asked.
    fn stop_for_restart(&self, child: &mut Child, signal: StopSignal) -> Option<String> {
        let sig = match signal {
            StopSignal::Term => libc::SIGTERM,
            StopSignal::Kill => libc::SIGKILL,
        };
        child::signal(child.id() as i32, sig);
        match child::wait_exit(child, Duration::from_secs(10)) {
            Some(status) => {
                let expected = match signal {
                    StopSignal::Term => status.success(),
                    StopSignal::Kill => status.signal() == Some(libc::SIGKILL),
                };
                (!expected).then(|| describe_exit(status, &self.log))
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Some("did not stop within 10 s: killed".into())
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.group {
                peers::stop_group(&mut c, Duration::from_secs(2));
            } else {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn describe_exit(status: ExitStatus, log: &Path) -> String {
    let tail = fs::read_to_string(log)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .map(|l| format!(" ({})", l.trim()))
        .unwrap_or_default();
    match status.signal() {
        Some(sig) => format!("server killed by signal {sig}{}{tail}", signal_name(sig)),
        None => format!("server exited with {}{tail}", status.code().unwrap_or(-1)),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGKILL => " (SIGKILL: out of memory?)",
        libc::SIGBUS => " (SIGBUS)",
        _ => "",
    }
}

/// A free port below the ephemeral range, so no client socket can take it.
fn free_port() -> io::Result<u16> {
    let seed = (mono_ns() as u32 ^ std::process::id()) as u64;
    for i in 0..2000u64 {
        let port = 10_000 + ((seed + i * 7919) % 22_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free port below 32000",
    ))
}

/// A free port, and a second one unlike it when `two`.
pub(super) fn free_ports(two: bool) -> io::Result<(u16, Option<u16>)> {
    let port = free_port()?;
    if !two {
        return Ok((port, None));
    }
    let mut other = free_port()?;
    while other == port {
        other = free_port()?;
    }
    Ok((port, Some(other)))
}

/// The server's `/stats` document, read whole (the server has closed the
/// connection when this returns).
pub(super) fn stats(addr: SocketAddr, timeout: Duration) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    if !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    let body = text.split("\r\n\r\n").nth(1)?;
    // A chunked body would need decoding; ours is sent with a length.
    serde_json::from_str(body).ok()
}

/// One counter of the server's `/stats` now.
pub(super) fn stats_field(addr: SocketAddr, field: &str) -> Option<u64> {
    stats(addr, Duration::from_secs(5))?[field].as_u64()
}
