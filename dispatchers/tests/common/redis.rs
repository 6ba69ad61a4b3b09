//! A real redis-server for tests and measurements, started through
//! `scripts/broker/redis.sh` (which installs it when missing) on a free
//! loopback port below the ephemeral range. Included by path where needed.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// How long the script may take to answer: a first run installs redis-server.
const START_TIMEOUT: Duration = Duration::from_secs(300);

pub struct Redis {
    script: Child,
    pub port: u16,
    /// The redis-server process (not the script).
    pub pid: i32,
    pub url: String,
    data: Option<PathBuf>,
    log: PathBuf,
}

fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/broker/redis.sh")
}

/// A port nothing listens on, in 20000-31999 (clients' ephemeral ports
/// start at 32768).
pub fn free_port() -> u16 {
    // Tests run in parallel threads: each call starts from a new candidate.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() % 1000) as u16 * 12;
    let mut n = 0u16;
    loop {
        let port = 20000 + (seed + NEXT.fetch_add(1, Ordering::Relaxed)) % 12000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
        n += 1;
        assert!(n < 12000, "no free port in 20000-31999");
    }
}

impl Redis {
    /// A broker without persistence on a free port.
    pub fn start() -> Redis {
        Redis::start_on(free_port(), None)
    }

    /// A broker keeping an append-only file in `data`.
    pub fn start_persistent(data: &Path) -> Redis {
        Redis::start_on(free_port(), Some(data))
    }

    pub fn start_on(port: u16, data: Option<&Path>) -> Redis {
        let (script, pid, log) = spawn(port, data);
        Redis {
            script,
            port,
            pid,
            url: format!("redis://127.0.0.1:{port}"),
            data: data.map(Path::to_path_buf),
            log,
        }
    }

    /// SIGKILLs redis-server (the script then exits) and waits for both.
    pub fn kill(&mut self) {
        // SAFETY: kill(2) with a pid we started; no memory is involved.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let _ = self.script.wait();
    }

    /// Kills it and starts a new one on the same port (and data directory).
    pub fn restart(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
        (self.script, self.pid, self.log) = spawn(self.port, self.data.as_deref());
    }

    /// redis-server's CPU time so far (user + system), from /proc.
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).expect("stat");
        // Fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no memory effects.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_nanos(ticks * 1_000_000_000 / hz)
    }

    /// A plain connection for checking keys from the outside.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .expect("connect to the test broker")
    }

    /// Waits until `check` holds, for at most `secs`.
    pub fn wait_for(secs: u64, mut check: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if check() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        check()
    }
}

/// Runs the script and waits for its ready line: the script, the
/// redis-server pid, the log file (the script's stderr).
fn spawn(port: u16, data: Option<&Path>) -> (Child, i32, PathBuf) {
    let log = std::env::temp_dir().join(format!(
        "cometbench-redis-test-{}-{port}.log",
        std::process::id()
    ));
    let mut cmd = Command::new("bash");
    cmd.arg(script_path()).arg(port.to_string());
    if let Some(d) = data {
        cmd.arg(d);
    }
    let mut script = cmd
        .stdout(Stdio::piped())
        .stderr(File::create(&log).expect("redis log file"))
        .spawn()
        .expect("run bash scripts/broker/redis.sh");
    let stdout = script.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
    let want = format!("ready redis://127.0.0.1:{port} pid ");
    let Some(pid) = line.trim().strip_prefix(&want).and_then(|p| p.parse().ok()) else {
        let _ = script.kill();
        let _ = script.wait();
        panic!(
            "scripts/broker/redis.sh {port} did not start redis-server (it installs \
                 the Debian package redis-server when missing; install it with \
                 `apt-get install -y redis-server`). Its output: {line:?}\n{}",
            tail(&log)
        );
    };
    (script, pid, log)
}

fn tail(log: &Path) -> String {
    let mut s = String::new();
    let _ = File::open(log).and_then(|mut f| f.read_to_string(&mut s));
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl Drop for Redis {
    fn drop(&mut self) {
        // SAFETY: kill(2) with the script's pid, which we started.
        unsafe { libc::kill(self.script.id() as i32, libc::SIGTERM) };
        let _ = self.script.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
