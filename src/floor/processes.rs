//! The floor as several processes, for steps past one process's open-file
//! limit: each child holds its share of the subscribers, accepted on its own
//! `SO_REUSEPORT` listener of the one port, and writes to them in its own
//! plain loop; the parent answers the publish listener, gives each message
//! its id, encodes it once and hands the frame to every child at once (they
//! write in parallel, as a server's threads would), then sums what they wrote.
//!
//! Parent and child speak over the child's stdin and stdout: `pub CHANNEL
//! LEN` and the frame's LEN bytes, answered with the count written; `stats`,
//! answered `SUBSCRIBERS CHANNELS`. A child ends when its stdin closes, so
//! none outlives its parent.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use socket2::{Domain, Socket, Type};

use super::{accept_loop, encode, print_addr, publish_loop, signals, stop_on, Fanout, Floor};

/// Seconds the children have to exit when the parent stops.
const STOP_SECS: u64 = 3;

/// A child and its pipes.
struct Link {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// The children, and each channel's last id.
struct Processes {
    inner: Mutex<(Vec<Link>, HashMap<String, u64>)>,
}

/// The parent: `n` children sharing `listen`, publishes on `publish`.
pub fn run(listen: SocketAddr, publish: SocketAddr, n: usize) -> Result<()> {
    // The port is held bound (SO_REUSEPORT, never listening, so the kernel
    // gives it no connection) while the children join it.
    let reserve = Socket::new(Domain::for_address(listen), Type::STREAM, None)?;
    reserve.set_reuse_port(true)?;
    reserve
        .bind(&listen.into())
        .with_context(|| format!("binding {listen}"))?;
    let addr = reserve
        .local_addr()?
        .as_socket()
        .context("the reserved address is not an IP one")?;
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut links = Vec::with_capacity(n);
    for i in 0..n {
        links.push(start_child(&exe, addr).with_context(|| format!("starting floor child {i}"))?);
    }
    for (i, l) in links.iter_mut().enumerate() {
        let mut line = String::new();
        l.stdout.read_line(&mut line)?;
        if line.trim() != "ready" {
            bail!("floor child {i} did not start (it said {:?})", line.trim());
        }
    }
    drop(reserve);
    let publish_listener =
        TcpListener::bind(publish).with_context(|| format!("binding {publish}"))?;
    let signals = signals()?;
    let floor = Arc::new(Processes {
        inner: Mutex::new((links, HashMap::new())),
    });
    print_addr(addr)?;
    let f: Arc<dyn Fanout> = floor.clone();
    std::thread::spawn(move || publish_loop(&publish_listener, &f));
    stop_on(signals, &*floor);
    floor.stop();
    Ok(())
}

fn start_child(exe: &std::path::Path, addr: SocketAddr) -> Result<Link> {
    let mut child = Command::new(exe)
        .args(["floor", "--child", "--listen", &addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = BufReader::new(child.stdout.take().expect("piped"));
    Ok(Link {
        child,
        stdin,
        stdout,
    })
}

impl Processes {
    /// Asks every child `line` (and `frame` after it), then reads each
    /// answer: one per child, `None` for a child that is gone.
    fn ask(links: &mut [Link], line: &str, frame: &[u8]) -> Vec<Option<String>> {
        let mut message = line.as_bytes().to_vec();
        message.extend_from_slice(frame);
        let sent: Vec<bool> = links
            .iter_mut()
            .map(|l| l.stdin.write_all(&message).is_ok())
            .collect();
        links
            .iter_mut()
            .zip(sent)
            .map(|(l, sent)| {
                let mut answer = String::new();
                match sent && l.stdout.read_line(&mut answer).is_ok_and(|n| n > 0) {
                    true => Some(answer),
                    false => None,
                }
            })
            .collect()
    }

    /// Closes every child's stdin at once (their end: they exit together)
    /// and gives them [`STOP_SECS`] in all before a kill. A child's exit
    /// closes its share of the sockets, all of them still open (the floor
    /// reads nothing after a head, so it never sees a subscriber leave): a
    /// million closes take the kernel seconds, and whoever stops us waits 5 s.
    fn stop(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut children: Vec<Child> = inner.0.drain(..).map(|l| l.child).collect();
        let end = Instant::now() + Duration::from_secs(STOP_SECS);
        for child in &mut children {
            let left = end.saturating_duration_since(Instant::now());
            if loadgen::child::wait_exit(child, left).is_none() {
                // Reaped by init once we are gone; no wait for its closes.
                let _ = child.kill();
            }
        }
    }
}

impl Fanout for Processes {
    fn publish(&self, channel: &str, text: &str) -> (u64, u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (links, last_ids) = &mut *inner;
        let id = last_ids.entry(channel.to_string()).or_default();
        *id += 1;
        let frame = encode(*id, text);
        let answers = Processes::ask(links, &format!("pub {channel} {}\n", frame.len()), &frame);
        let written = answers
            .iter()
            .flatten()
            .filter_map(|a| a.trim().parse::<u64>().ok())
            .sum();
        (*id, written)
    }

    /// Subscribers summed over the children; `channels` is the most any one
    /// child has (a channel's subscribers are spread over all of them).
    fn stats(&self) -> String {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let answers = Processes::ask(&mut inner.0, "stats\n", &[]);
        let (mut subscribers, mut channels, mut gone) = (0u64, 0u64, 0);
        for a in &answers {
            let counts: Option<Vec<u64>> = a.as_deref().map(|a| {
                a.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            });
            match counts.as_deref() {
                Some([s, c]) => {
                    subscribers += s;
                    channels = channels.max(*c);
                }
                _ => gone += 1,
            }
        }
        format!(
            "{{\"dispatcher\":\"floor\",\"subscribers\":{subscribers},\"channels\":{channels},\"processes\":{},\"processes_gone\":{gone}}}",
            answers.len()
        )
    }
}

/// A child: subscribers on its share of `listen`, frames from the parent.
pub fn child(listen: SocketAddr) -> Result<()> {
    // The dispatchers' listener: their deep backlog, and the port shared.
    let listener =
        dispatchers::listen::listener(listen, true).with_context(|| format!("binding {listen}"))?;
    let floor = Arc::new(Floor::default());
    let f = floor.clone();
    std::thread::spawn(move || accept_loop(&listener, &f, false));
    let mut out = io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut input = io::stdin().lock();
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            // The parent is gone or done.
            return Ok(());
        }
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["pub", channel, len] => {
                let mut frame = vec![0; len.parse().context("a frame's length")?];
                input.read_exact(&mut frame)?;
                writeln!(out, "{}", floor.write_frame(channel, &frame))?;
            }
            ["stats"] => {
                let (subscribers, channels) = floor.counts();
                writeln!(out, "{subscribers} {channels}")?;
            }
            _ => bail!("floor child: unreadable line from the parent: {line:?}"),
        }
        out.flush()?;
    }
}
