//! Peer servers measured beside our dispatchers: nginx + nchan and Pushpin.
//!
//! A [`Peer`] says how to start one (a script in `scripts/peers/`, see
//! [`scripts_dir`]), how to drive it (URL templates, the [`Dialect`] its
//! subscribers speak, how messages are published to it), and what it lacks
//! compared with our protocol (`docs/DESIGN.md`), said in each case's `notes` instead of
//! faked: a transport it does not have is a `skipped` case.
//!
//! # Starting and stopping
//! The script runs in a process group of its own, installs the peer's Debian
//! packages when missing, writes a private configuration into a temporary
//! directory, starts the peer in the foreground on the 127.0.0.1 ports it is
//! given, and prints `ready ADDR publish ADDR pid PID` once requests go
//! through. PID is the root of the peer's own processes, and the coordinator
//! samples its whole tree (nginx: the master and its worker; Pushpin: its
//! runner, condure, zurl, pushpin-proxy and pushpin-handler), never the root
//! alone; the script's shell and Pushpin's GRIP backend (which stands for the
//! application) are left out. The peer is stopped by signalling the script's
//! whole process group ([`stop_group`]).
//!
//! What is left out: the peers' own configuration, which lives in the scripts.

use std::env;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{bail, Result};
use comet::client::Dialect;
use comet::Transport;

use crate::child;
use crate::publisher::PublishFormat;
use crate::script::start_ready;
use crate::worker::IdCheck;

/// The environment variable naming the directory of the peer scripts.
pub const SCRIPTS_ENV: &str = "COMETBENCH_PEERS_DIR";

/// How long a peer may take to print its ready line.
pub use crate::script::READY_TIMEOUT;

/// One peer server and how the load generator drives it.
#[derive(Debug)]
pub struct Peer {
    pub name: &'static str,
    /// File name in the scripts directory.
    pub script: &'static str,
    /// Subscribe path template with `{channel}` and `{transport}`.
    pub subscribe_path: &'static str,
    /// Publish path template (with `{channel}` where the channel is in the path).
    pub publish_path: &'static str,
    /// Publishing always goes to a port of its own (else as the scenario's
    /// `publish_listen` says).
    pub own_publish_port: bool,
    pub dialect: Dialect,
    /// How continuity is checked at every subscriber.
    pub ids: IdCheck,
    /// Messages are published as GRIP items framed for the transport (Pushpin),
    /// else as the request body.
    pub grip: bool,
    /// The fastest ramp (connections per second) the peer is driven at, and
    /// why: past it, it refuses subscribes on this machine.
    pub max_ramp: Option<(f64, &'static str)>,
    /// Transports offered, each with what differs from our protocol ("" when nothing).
    pub transports: &'static [(Transport, &'static str)],
    /// What the peer lacks or does differently, whatever the transport.
    pub notes: &'static [&'static str],
}

/// The peers a scenario may name.
pub static PEERS: [Peer; 2] = [
    Peer {
        name: "nchan",
        script: "nchan.sh",
        subscribe_path: "/sub/{transport}/{channel}",
        publish_path: "/pub/{channel}",
        own_publish_port: false,
        dialect: Dialect::Nchan,
        ids: IdCheck::Sequence,
        grip: false,
        max_ramp: None,
        transports: &[
            (
                Transport::Longpoll,
                "long-poll: nchan answers one raw message per poll (not a JSON array); the next poll resumes with If-Modified-Since/If-None-Match from Last-Modified/Etag, nchan's replay from its buffer, instead of ?since=; a poll timeout is 408, taken as an empty poll",
            ),
            (
                Transport::Sse,
                "sse: event ids are nchan's TIME:INDEX; its ping is a `:` comment every heartbeat, and a `: hi` comment opens the stream",
            ),
            (
                Transport::Stream,
                "stream: nchan's http-raw-stream, raw messages each followed by a newline, not ndjson objects with ids; no heartbeat",
            ),
            (
                Transport::Ws,
                "ws: nchan's websocket subscriber, each message a raw text frame, not a JSON object with an id; a ping every heartbeat (nchan_websocket_ping_interval); it is a subscriber only, so publishing over the socket (the per-user pattern over ws) is not offered",
            ),
        ],
        notes: &[
            "nginx 1.22 + nchan 1.3.6: 1 master + 1 worker process (worker_processes 1), in-memory store, 64 messages buffered per channel; sampled: the master and its worker",
            "continuity checked by the publisher's per-channel sequence number in each message body (nchan's ids are TIME:INDEX, not 1, 2, 3); publishes to one channel are serialised so that the sequence is the order nchan receives them",
            "missed messages are never reported by nchan: every gap counts as lost",
            "publish answers 201/202 with nchan's channel info (subscribers counted)",
        ],
    },
    Peer {
        name: "pushpin",
        script: "pushpin.sh",
        subscribe_path: "/sub/{channel}?transport={transport}",
        publish_path: "/publish/",
        own_publish_port: true,
        dialect: Dialect::Comet,
        ids: IdCheck::Sequence,
        grip: true,
        max_ramp: Some((
            1000.0,
            "every subscribe goes through pushpin-proxy, zurl and the GRIP backend: at 1,500 subscribes/s on this 2-core machine hundreds in 10,000 were answered 502 (zurl unavailable) or 500 (accept service unavailable); at 1,000/s a few dozen, which are retried",
        )),
        transports: &[
            (
                Transport::Longpoll,
                "long-poll: GRIP hold `response`; no backlog, so a message published while a client is between two polls is lost to it (counted in lost), and ?since= is ignored; seen on this machine: in about half of the short runs one early message reaches no long-poll subscriber at all (also with plain Python clients)",
            ),
            (Transport::Sse, ""),
            (Transport::Stream, ""),
            (Transport::Iframe, ""),
            (
                Transport::Ws,
                "ws: WebSocket-over-HTTP (the route's over_http): Pushpin holds the socket and tells the GRIP backend of it in HTTP requests; the backend subscribes it to the channel and asks for a ping when it is idle for a heartbeat (seen here: every 0.3-0.9 s at a 1 s heartbeat), and the publisher sends each message as a ws-message item; the backend publishes nothing a client sends, so publishing over the socket (the per-user pattern over ws) is not offered",
            ),
        ],
        notes: &[
            "Pushpin 1.36, stock configuration but for message_rate (deliveries per second: 2,500 stock, which delivered a quarter of a 10,000-subscriber broadcast at 1 message/s and dropped the rest) raised to 1,000,000; sampled: the runner and its services condure, zurl, pushpin-proxy, pushpin-handler; not the GRIP backend (python3 asyncio, standing for the application) that answers each subscribe request forwarded to it",
            "Pushpin gives no message ids: the publisher frames each message for the transport itself (GRIP items, http-stream or http-response) with its per-channel sequence number as the id, and continuity is checked by that sequence in the message body; publishes to one channel are serialised so that the sequence is the order Pushpin receives them",
            "no backlog: in GRIP, history is the application's (the backend's) job and ours keeps none, so no since / Last-Event-ID replay, and missed messages are never reported: every gap counts as lost",
            "publishing goes to the handler's own port as GRIP items JSON and answers 200 without a subscriber count: publish.handed_to stays 0",
        ],
    },
];

/// The names of [`PEERS`].
pub fn names() -> Vec<&'static str> {
    PEERS.iter().map(|p| p.name).collect()
}

/// The peer called `name`.
pub fn find(name: &str) -> Option<&'static Peer> {
    PEERS.iter().find(|p| p.name == name)
}

impl Peer {
    /// Whether the peer offers `transport`, and what differs when it does.
    pub fn transport(&self, transport: Transport) -> Option<&'static str> {
        self.transports
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, note)| *note)
    }

    /// What a case of `transport` says about this peer: its general notes,
    /// then the transport's, or why the transport is not run.
    pub fn case_notes(&self, transport: Transport) -> Vec<String> {
        let mut notes: Vec<String> = self.notes.iter().map(|n| n.to_string()).collect();
        match self.transport(transport) {
            Some("") => {}
            Some(n) => notes.push(n.to_string()),
            None => notes.push(format!(
                "skipped: {} has no {} transport (it offers {})",
                self.name,
                transport.name(),
                self.transports
                    .iter()
                    .map(|(t, _)| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
        notes
    }

    /// The ramp rate to use when the scenario asks for `rate`, and the note
    /// saying why, when the peer caps it.
    pub fn ramp_cap(&self, rate: f64) -> Option<(f64, String)> {
        let (max, why) = self.max_ramp?;
        (rate > max).then(|| {
            (
                max,
                format!("ramped at {max:.0} connections/s, not the scenario's {rate:.0}: {why}"),
            )
        })
    }

    /// How the publisher sends a message to a case of `transport`.
    pub fn publish_format(&self, transport: Transport) -> PublishFormat {
        if self.grip {
            PublishFormat::Grip(transport)
        } else {
            PublishFormat::Body
        }
    }
}

/// The directory holding the peer scripts: `$COMETBENCH_PEERS_DIR` when set,
/// else the first `scripts/peers` found going up from the current directory,
/// then from the executable's (`target/release/cometbench` is two levels
/// under the repository). Found at run time, so a release binary run from
/// anywhere inside the repository, or from its own place in `target/`, finds
/// them; a binary copied elsewhere needs the variable.
pub fn scripts_dir(exe: &Path) -> Result<PathBuf> {
    if let Some(dir) = env::var_os(SCRIPTS_ENV) {
        let dir = PathBuf::from(dir);
        if !dir.join("common.sh").is_file() {
            bail!(
                "{SCRIPTS_ENV}={} holds no peer scripts (common.sh)",
                dir.display()
            );
        }
        return Ok(dir);
    }
    let mut starts = Vec::new();
    if let Ok(cwd) = env::current_dir() {
        starts.push(cwd);
    }
    if let Some(parent) = exe.parent() {
        starts.push(parent.to_path_buf());
    }
    for start in &starts {
        if let Some(dir) = search_up(start) {
            return Ok(dir);
        }
    }
    bail!(
        "no scripts/peers/ found above {}: run from inside the repository or set {SCRIPTS_ENV}",
        starts
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" or ")
    )
}

fn search_up(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join("scripts").join("peers"))
        .find(|d| d.join("common.sh").is_file())
}

/// A started peer: the script (leader of its own process group), where it
/// listens, and the root of the peer's own processes.
pub struct Started {
    pub child: Child,
    pub addr: SocketAddr,
    pub publish_addr: SocketAddr,
    pub pid: u32,
}

/// Settings passed to a peer script through its environment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Seconds between heartbeats on streams.
    pub heartbeat: u64,
    /// Seconds a long-poll is held.
    pub poll_timeout: u64,
}

impl Settings {
    /// Our dispatchers' defaults, overridden by `--heartbeat` and
    /// `--poll-timeout` among a scenario's `server_args` (rounded up to whole
    /// seconds), so that peers hold and ping as the dispatchers do.
    pub fn from_server_args(args: &[String]) -> Settings {
        let mut s = Settings {
            heartbeat: 15,
            poll_timeout: 30,
        };
        let secs = |v: &str| -> Option<u64> {
            let f: f64 = v.parse().ok()?;
            (f.is_finite() && f > 0.0).then(|| f.ceil() as u64)
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (flag, value) = match a.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (a.as_str(), None),
            };
            let target = match flag {
                "--heartbeat" => &mut s.heartbeat,
                "--poll-timeout" => &mut s.poll_timeout,
                _ => continue,
            };
            if let Some(v) = value.or_else(|| it.next().cloned()).and_then(|v| secs(&v)) {
                *target = v;
            }
        }
        s
    }
}

/// Starts `peer`'s script on `port` (and `publish_port`), its stderr into
/// `log`, and waits for its ready line.
pub fn start(
    peer: &Peer,
    scripts: &Path,
    port: u16,
    publish_port: u16,
    settings: Settings,
    log: &Path,
) -> Result<Started> {
    start_with(peer, scripts, port, publish_port, settings, &[], log)
}

/// [`start`] with more of the script's environment (`REDIS_URL` for an
/// nchan node sharing a Redis).
pub fn start_with(
    peer: &Peer,
    scripts: &Path,
    port: u16,
    publish_port: u16,
    settings: Settings,
    env: &[(&str, String)],
    log: &Path,
) -> Result<Started> {
    let mut vars = vec![
        ("HEARTBEAT", settings.heartbeat.to_string()),
        ("POLL_TIMEOUT", settings.poll_timeout.to_string()),
    ];
    vars.extend(env.iter().cloned());
    let (mut child, line) = start_ready(
        peer.name,
        &scripts.join(peer.script),
        &[port.to_string(), publish_port.to_string()],
        &vars,
        log,
    )?;
    match parse_ready(&line) {
        Some(r) => Ok(Started {
            pid: r.pid.unwrap_or(child.id()),
            child,
            addr: r.addr,
            publish_addr: r.publish_addr,
        }),
        None => {
            stop_group(&mut child, Duration::from_secs(5));
            bail!(
                "{} printed {line:?}, not `ready ADDR publish ADDR pid PID`",
                peer.script
            )
        }
    }
}

/// What a peer script's ready line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub addr: SocketAddr,
    /// The same as `addr` when the line names none.
    pub publish_addr: SocketAddr,
    /// The root of the peer's own processes; the script itself when not given.
    pub pid: Option<u32>,
}

/// Reads `ready 127.0.0.1:P [publish 127.0.0.1:Q] [pid N]` (loopback only).
pub fn parse_ready(line: &str) -> Option<Ready> {
    let mut it = line.split_whitespace();
    if it.next()? != "ready" {
        return None;
    }
    let addr: SocketAddr = it.next()?.parse().ok()?;
    let mut r = Ready {
        addr,
        publish_addr: addr,
        pid: None,
    };
    while let Some(key) = it.next() {
        let value = it.next()?;
        match key {
            "publish" => r.publish_addr = value.parse().ok()?,
            "pid" => r.pid = Some(value.parse().ok().filter(|&p: &u32| p > 0)?),
            _ => return None,
        }
    }
    (addr.ip().is_loopback() && r.publish_addr.ip().is_loopback()).then_some(r)
}

/// Stops a process group led by `child`: SIGTERM to the group, up to `grace`
/// for the leader (the script stops what it started and cleans up), then
/// SIGKILL to whatever of the group is left. Returns `None` when the leader
/// ended within the grace period, else what happened.
pub fn stop_group(child: &mut Child, grace: Duration) -> Option<String> {
    let pgid = child.id() as i32;
    if let Ok(Some(_)) = child.try_wait() {
        // The leader is gone; its group may not be.
        child::signal(-pgid, libc::SIGKILL);
        return None;
    }
    child::signal(-pgid, libc::SIGTERM);
    let ended = child::wait_exit(child, grace).is_some();
    // Whatever is left of the group (nothing, normally).
    child::signal(-pgid, libc::SIGKILL);
    if ended {
        return None;
    }
    let _ = child.wait();
    Some(format!(
        "did not stop within {} s of SIGTERM: process group killed",
        grace.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peer_is_consistent() {
        for p in &PEERS {
            assert!(p.subscribe_path.contains("{channel}"), "{}", p.name);
            assert!(p.subscribe_path.contains("{transport}"), "{}", p.name);
            assert!(p.transport(Transport::Sse).is_some(), "{}", p.name);
            assert!(find(p.name).is_some());
        }
        assert_eq!(names(), vec!["nchan", "pushpin"]);
        let nchan = find("nchan").unwrap();
        assert!(nchan.transport(Transport::Iframe).is_none());
        let notes = nchan.case_notes(Transport::Iframe);
        assert!(notes.last().unwrap().starts_with(
            "skipped: nchan has no iframe transport (it offers longpoll, sse, stream, ws)"
        ));
        assert!(nchan
            .case_notes(Transport::Longpoll)
            .iter()
            .any(|n| n.contains("If-Modified-Since")));
        assert_eq!(
            find("pushpin").unwrap().publish_format(Transport::Sse),
            PublishFormat::Grip(Transport::Sse)
        );
        assert_eq!(nchan.publish_format(Transport::Sse), PublishFormat::Body);
        assert!(nchan.ramp_cap(1e9).is_none());
        let pushpin = find("pushpin").unwrap();
        let (rate, note) = pushpin.ramp_cap(4000.0).unwrap();
        assert_eq!(rate, 1000.0);
        assert!(note.starts_with("ramped at 1000 connections/s, not the scenario's 4000"));
        assert!(pushpin.ramp_cap(500.0).is_none());
    }

    #[test]
    fn ready_lines() {
        let r = parse_ready("ready 127.0.0.1:18080 publish 127.0.0.1:18081 pid 42").unwrap();
        assert_eq!(
            (r.addr.port(), r.publish_addr.port(), r.pid),
            (18080, 18081, Some(42))
        );
        let r = parse_ready("ready 127.0.0.1:5").unwrap();
        assert_eq!((r.addr, r.pid), (r.publish_addr, None));
        assert!(parse_ready("ready 10.0.0.1:5").is_none());
        assert!(parse_ready("ready 127.0.0.1:5 publish 10.0.0.1:6").is_none());
        assert!(parse_ready("ready 127.0.0.1:5 publish").is_none());
        assert!(parse_ready("ready 127.0.0.1:5 pid 0").is_none());
        assert!(parse_ready("ready 127.0.0.1:5 color blue").is_none());
        assert!(parse_ready("hello").is_none());
    }

    #[test]
    fn settings_follow_server_args() {
        let s = |a: &[&str]| {
            Settings::from_server_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(
            s(&[]),
            Settings {
                heartbeat: 15,
                poll_timeout: 30
            }
        );
        assert_eq!(
            s(&["--poll-timeout", "600", "--heartbeat=2.5", "--backlog", "9"]),
            Settings {
                heartbeat: 3,
                poll_timeout: 600
            }
        );
        assert_eq!(s(&["--heartbeat", "-1"]).heartbeat, 15);
    }

    #[test]
    fn scripts_are_found_from_inside_the_repository() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = search_up(here).expect("the repository's scripts/peers");
        assert!(dir.join("nchan.sh").is_file() && dir.join("pushpin.sh").is_file());
        assert!(search_up(Path::new("/")).is_none());
    }
}
