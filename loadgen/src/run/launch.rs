//! Starting one worker wherever its host is: its command (this binary, or
//! the host's launcher, whose stdin and stdout become the worker's), the
//! clock exchanges over them, then its plan; and from then on every line it
//! writes, stamped as it arrives. What it writes on stderr is passed on,
//! named, and its last lines kept: they say why a host's command failed.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::clock::mono_ns;
use crate::worker::clock_sync::{Estimate, Sync, EXCHANGES};
use crate::worker::protocol::write_line;
use crate::worker::{FromWorker, Plan, ToWorker};

/// What a worker's stdout said, or that it closed.
pub(super) enum Event {
    /// The clock exchanges are done and the plan is sent; controls go to `stdin`.
    Started {
        stdin: ChildStdin,
        clock: Estimate,
    },
    Line(FromWorker),
    /// Its stdout closed: it ended, or its host's command did.
    Gone,
}

/// An event of worker `worker`, and when it arrived (`mono_ns`).
pub(super) struct Heard {
    pub worker: usize,
    pub at_ns: u64,
    pub event: Event,
}

/// The last lines a worker (or its host's command) wrote on stderr, and
/// whether its stderr has closed.
#[derive(Debug, Clone, Default)]
pub(super) struct Tail(Arc<(Mutex<Said>, Condvar)>);

#[derive(Debug, Default)]
struct Said {
    lines: VecDeque<String>,
    closed: bool,
}

impl Tail {
    const LINES: usize = 3;

    /// Its stderr closed: [`Tail::wait_closed`] returns.
    fn close(&self) {
        let (said, closed) = &*self.0;
        said.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        closed.notify_all();
    }

    /// Waits up to `limit` for its stderr to close. A command that has
    /// exited may have its last line still in the pipe, unread by the
    /// thread that keeps them: the reason it failed.
    pub fn wait_closed(&self, limit: Duration) {
        let (said, closed) = &*self.0;
        let said = said.lock().unwrap_or_else(|e| e.into_inner());
        let _ = closed.wait_timeout_while(said, limit, |s| !s.closed);
    }

    /// Keeps `line` unless it is part of a backtrace (indented, or its
    /// heading and notes), which would crowd out the panic's message.
    fn push(&self, line: String) {
        let noise = line.starts_with(char::is_whitespace)
            || line.starts_with("stack backtrace")
            || line.starts_with("note: ");
        if noise || line.trim().is_empty() {
            return;
        }
        let mut said = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        let t = &mut said.lines;
        if t.len() == Self::LINES {
            t.pop_front();
        }
        t.push_back(line);
    }

    /// `": LINE | LINE"`, or nothing when it wrote nothing.
    pub fn said(&self) -> String {
        let said = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        let t = &said.lines;
        if t.is_empty() {
            return String::new();
        }
        let lines: Vec<&str> = t.iter().map(|l| l.trim()).collect();
        format!(": {}", lines.join(" | "))
    }
}

/// Starts `cmd` as worker `plan.worker` (named `label` on stderr), and the
/// threads that talk to it; its receipt times are corrected by its clock's
/// offset when `correct`. Its events go to `tx`.
pub(super) fn launch(
    mut cmd: Command,
    label: String,
    plan: Plan,
    correct: bool,
    tx: Sender<Heard>,
) -> std::io::Result<(Child, Tail)> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let tail = Tail::default();
    let kept = tail.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("{label}: {line}");
            kept.push(line);
        }
        kept.close();
    });
    std::thread::spawn(move || talk(stdin, stdout, plan, correct, tx));
    Ok((child, tail))
}

/// The worker's side of the pipes: the exchanges and the plan, then every
/// line until its stdout closes.
fn talk(
    mut stdin: ChildStdin,
    stdout: ChildStdout,
    mut plan: Plan,
    correct: bool,
    tx: Sender<Heard>,
) {
    let w = plan.worker;
    let send = |event| {
        tx.send(Heard {
            worker: w,
            at_ns: mono_ns(),
            event,
        })
        .is_ok()
    };
    let mut out = BufReader::new(stdout);
    let Some(clock) = exchanges(&mut stdin, &mut out) else {
        send(Event::Gone);
        return;
    };
    plan.clock_offset_ns = if correct { -clock.offset_ns } else { 0 };
    if write_line(&mut stdin, &ToWorker::Plan(Box::new(plan))).is_err()
        || !send(Event::Started { stdin, clock })
    {
        send(Event::Gone);
        return;
    }
    for line in out.lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<FromWorker>(&line) {
            Ok(m) => {
                if !send(Event::Line(m)) {
                    return;
                }
            }
            Err(e) => eprintln!("worker {w}: unreadable line: {e}"),
        }
    }
    send(Event::Gone);
}

/// [`EXCHANGES`] pings, one at a time, each answer stamped as it is read;
/// `None` when the worker's stdout closes first. The first one also waits
/// for the worker to start: its long round trip is never the best.
fn exchanges(stdin: &mut ChildStdin, out: &mut BufReader<ChildStdout>) -> Option<Estimate> {
    let mut sync = Sync::new(EXCHANGES);
    let mut line = String::new();
    while let Some(ping) = sync.poll_ping(mono_ns()) {
        write_line(&mut *stdin, &ToWorker::Ping(ping)).ok()?;
        loop {
            line.clear();
            if out.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let now = mono_ns();
            // Anything else a host's command writes first (a banner) is passed over.
            if let Ok(FromWorker::Pong(pong)) = serde_json::from_str(&line) {
                if sync.handle_pong(pong, now) {
                    break;
                }
            }
        }
    }
    sync.estimate()
}
