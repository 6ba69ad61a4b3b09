//! How many idle green threads, each holding a loopback connection, one
//! process holds; what each costs; where it stops.
//!
//! ```text
//! cargo run --release -p dispatchers --example green_hold -- run \
//!     --conns 100000 --threads 8 --stack 32768 --mode read
//! ```
//!
//! `run` starts a server process (`serve`) and as many client processes
//! (`load`, at most `--per-load` connections each, every one from its own
//! loopback source address, since one process holds at most ~20,000 sockets
//! and one source ~28,000 ports towards one server port), waits until every
//! client has connected or failed, samples the server from /proc, prints one
//! report, and ends every process it started.
//!
//! - `serve --port P --threads K --stack BYTES --mode read|wait`: one green
//!   thread per connection, parked in `Stream::read` with a 2 KiB buffer on
//!   its stack (`read`, as a connection loop waiting for a request) or in
//!   `Stream::wait` for a hang-up (`wait`, as a held subscriber). Prints its
//!   counters every 200 ms; stops when its standard input closes.
//! - `load --port P --source 127.0.0.X --conns N`: connects, prints how many
//!   it holds and why the others failed, and holds them until its standard
//!   input closes.
//! - `probe --stack BYTES`: a green thread that panics (and is caught) on a
//!   stack of that size; the process aborts with the red zone's line if the
//!   stack is too small for it.
//!
//! # Measured here (2 cores, release build, 32 KiB stacks)
//! | run | held | server RSS per green thread | mappings | OS threads | stop |
//! | --- | --- | --- | --- | --- | --- |
//! | `--conns 100000 --threads 8 --mode read` | 100,000 | 4,245 B | 116 -> 228 | 10 | 1.07 s, all ended |
//! | `--conns 100000 --threads 8 --mode wait` | 100,000 | 4,245 B | 116 -> 227 | 10 | 1.20 s, all ended |
//! | `--conns 200000 --threads 8 --mode wait` | 159,992 | 4,241 B | 116 -> 276 | 10 | |
//! | `--conns 300000 --threads 16 --mode wait` | 300,000 | 4,241 B | 192 -> 512 | 18 | |
//!
//! A green thread holds one stack page and its records; the kernel holds
//! about 9 KB of slab per connection, both ends (system-wide). With 8
//! schedulers it stops at 8 x 19,999: every ring's fixed-file table is full
//! (RLIMIT_NOFILE slots, one kept to refuse with), and the 40,008 others
//! were refused and counted (a `503`, or the kernel's `ENFILE`), nothing
//! crashed. More schedulers, more tables: 16 held 300,000.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatchers::green::{self, Config, Interest, Runtime, Stream};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(verb) = args.first() else {
        return usage();
    };
    let opts = Opts::parse(&args[1..]);
    let result = match verb.as_str() {
        "serve" => serve(&opts),
        "load" => load(&opts),
        "run" => run(&opts),
        "probe" => probe(&opts),
        _ => return usage(),
    };
    if let Err(e) = result {
        eprintln!("green_hold {verb}: {e}");
        std::process::exit(1);
    }
}

fn usage() {
    eprintln!("usage: green_hold run|serve|load|probe [--conns N] [--threads K] [--stack BYTES] [--mode read|wait] [--port P] [--source IP] [--per-load N]");
    std::process::exit(2);
}

struct Opts {
    conns: usize,
    threads: usize,
    stack: usize,
    mode: String,
    port: u16,
    source: Ipv4Addr,
    per_load: usize,
}

impl Opts {
    fn parse(args: &[String]) -> Opts {
        let mut o = Opts {
            conns: 100_000,
            threads: 8,
            stack: 32 * 1024,
            mode: "read".into(),
            port: 24_000,
            source: Ipv4Addr::new(127, 0, 0, 2),
            per_load: 15_000,
        };
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let v = it.next().unwrap_or_else(|| {
                eprintln!("{k} needs a value");
                std::process::exit(2)
            });
            let bad = || -> ! {
                eprintln!("bad value for {k}: {v}");
                std::process::exit(2)
            };
            match k.as_str() {
                "--conns" => o.conns = v.parse().unwrap_or_else(|_| bad()),
                "--threads" => o.threads = v.parse().unwrap_or_else(|_| bad()),
                "--stack" => o.stack = v.parse().unwrap_or_else(|_| bad()),
                "--mode" if v == "read" || v == "wait" => o.mode = v.clone(),
                "--port" => o.port = v.parse().unwrap_or_else(|_| bad()),
                "--source" => o.source = v.parse().unwrap_or_else(|_| bad()),
                "--per-load" => o.per_load = v.parse().unwrap_or_else(|_| bad()),
                _ => bad(),
            }
        }
        o
    }
}

// ----- serve -----

/// A connection loop's wait for its next request: a read with the buffer on
/// the green thread's stack.
fn hold_in_read(s: Stream) {
    let mut buf = [0u8; 2048];
    while let Ok(n) = s.read(&mut buf, None) {
        if n == 0 {
            return;
        }
    }
}

/// A held subscriber: waiting for its client to go (or the stop).
fn hold_in_wait(s: Stream) {
    loop {
        let w = s.wait(Interest::HangUp, None);
        if w.stopping || !w.ready.is_empty() {
            return;
        }
    }
}

fn serve(o: &Opts) -> io::Result<()> {
    let hold: fn(Stream) = if o.mode == "read" {
        hold_in_read
    } else {
        hold_in_wait
    };
    let config = Config {
        threads: o.threads,
        stack_size: o.stack,
        listen: Some(SocketAddr::from(([127, 0, 0, 1], o.port))),
        refusal: Some(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"),
        ..Config::default()
    };
    let rt = Runtime::start(config, move |_| {
        while let Ok(s) = green::accept() {
            if let Err(e) = green::spawn(move || hold(s)) {
                eprintln!("spawn: {e}");
            }
        }
    })?;
    println!("listening {} stack {}", o.port, rt.stack_size());
    let done = Arc::new(Mutex::new(false));
    {
        let done = done.clone();
        std::thread::spawn(move || {
            let _ = io::stdin().read_to_end(&mut Vec::new());
            *done.lock().unwrap() = true;
        });
    }
    while !*done.lock().unwrap() {
        let s = rt.stats();
        println!(
            "stats tasks {} open {} accepted {} refused {} regions {}",
            s.tasks, s.open, s.accepted, s.refused, s.regions
        );
        io::stdout().flush()?;
        std::thread::sleep(Duration::from_millis(200));
    }
    let t0 = Instant::now();
    let report = rt.stop(Duration::from_secs(2));
    println!("stopped in {:?}: {report:?}", t0.elapsed());
    Ok(())
}

// ----- load -----

fn connect_from(source: Ipv4Addr, target: SocketAddr) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    // Let connect() pick the port per destination: each source address
    // then has its whole ephemeral range towards the server.
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads `one` (a c_int of the given size) only.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&s),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    s.bind(&SocketAddr::new(IpAddr::V4(source), 0).into())?;
    s.connect_timeout(&target.into(), Duration::from_secs(5))?;
    Ok(s.into())
}

fn load(o: &Opts) -> io::Result<()> {
    let target = SocketAddr::from(([127, 0, 0, 1], o.port));
    let mut held = Vec::with_capacity(o.conns);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..o.conns {
        match connect_from(o.source, target) {
            Ok(s) => held.push(s),
            Err(e) => *errors.entry(e.to_string()).or_default() += 1,
        }
    }
    // A refused connection is closed by the server at once (with a 503):
    // it is not held.
    std::thread::sleep(Duration::from_millis(500));
    let mut refused = 0;
    held.retain(|s| {
        let mut b = [0u8; 1];
        let _ = s.set_nonblocking(true);
        match (&*s).read(&mut b) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            _ => {
                refused += 1;
                false
            }
        }
    });
    if refused > 0 {
        errors.insert("closed by the server (refused)".into(), refused);
    }
    println!("held {} errors {:?}", held.len(), errors);
    io::stdout().flush()?;
    let _ = io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}

// ----- run -----

fn status_of(pid: u32, field: &str) -> u64 {
    status_of_file(&format!("/proc/{pid}/status"), field)
}

/// A /proc/meminfo field in kB (system-wide).
fn meminfo(field: &str) -> u64 {
    status_of_file("/proc/meminfo", field)
}

fn status_of_file(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn maps_of(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Keeps the last line a child printed.
fn last_line(out: ChildStdout) -> Arc<Mutex<String>> {
    let last = Arc::new(Mutex::new(String::new()));
    let l = last.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            *l.lock().unwrap() = line;
        }
    });
    last
}

struct Proc {
    child: Child,
    last: Arc<Mutex<String>>,
}

impl Proc {
    fn start(args: &[String]) -> io::Result<Proc> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let last = last_line(child.stdout.take().expect("piped"));
        Ok(Proc { child, last })
    }

    fn last(&self) -> String {
        self.last.lock().unwrap().clone()
    }

    /// Closes its standard input (which stops it) and waits, killing it
    /// after `patience`; returns its last line, or why there is none.
    fn end(mut self, patience: Duration) -> String {
        drop(self.child.stdin.take());
        let end = Instant::now() + patience;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                // Its last line may still be on its way through the pipe.
                std::thread::sleep(Duration::from_millis(100));
                return self.last();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!("killed after {patience:?}")
    }
}

fn stat(line: &str, key: &str) -> u64 {
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        if w == key {
            return it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    0
}

fn run(o: &Opts) -> io::Result<()> {
    let s = |v: &dyn ToString| v.to_string();
    let server = Proc::start(&[
        s(&"serve"),
        s(&"--port"),
        s(&o.port),
        s(&"--threads"),
        s(&o.threads),
        s(&"--stack"),
        s(&o.stack),
        s(&"--mode"),
        s(&o.mode),
    ])?;
    let pid = server.child.id();
    let t0 = Instant::now();
    while !server.last().starts_with("stats") {
        if t0.elapsed() > Duration::from_secs(10) {
            server.end(Duration::from_secs(1));
            return Err(io::Error::other("the server did not start"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (rss0, maps0) = (status_of(pid, "VmRSS:"), maps_of(pid));
    let slab0 = meminfo("Slab:");
    let mut loads = Vec::new();
    let mut left = o.conns;
    let mut source = 2u8;
    while left > 0 {
        let n = left.min(o.per_load);
        left -= n;
        loads.push(Proc::start(&[
            s(&"load"),
            s(&"--port"),
            s(&o.port),
            s(&"--conns"),
            s(&n),
            s(&"--source"),
            s(&Ipv4Addr::new(127, 0, 0, source)),
        ])?);
        source = source.checked_add(1).expect("at most 253 clients");
    }
    // Until every client has reported.
    while !loads.iter().all(|l| l.last().starts_with("held")) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ramp = t0.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let stats = server.last();
    let tasks = stat(&stats, "tasks");
    let held: u64 = loads.iter().map(|l| stat(&l.last(), "held")).sum();
    let (rss, maps) = (status_of(pid, "VmRSS:"), maps_of(pid));
    let threads = status_of(pid, "Threads:");
    let slab = meminfo("Slab:");
    println!(
        "mode {} threads {} stack {}: {} connections asked, {held} held by clients, {tasks} green threads",
        o.mode, o.threads, o.stack, o.conns
    );
    println!("server: {stats}");
    let conns = tasks.saturating_sub(o.threads as u64).max(1);
    println!(
        "server RSS {rss0} kB -> {rss} kB: {:.0} bytes per green thread; maps {maps0} -> {maps}; OS threads {threads}; ramp {ramp:.1?}",
        (rss.saturating_sub(rss0) * 1024) as f64 / conns as f64
    );
    println!(
        "system-wide slab {slab0} kB -> {slab} kB: {:.0} bytes per connection, both ends and every process",
        (slab.saturating_sub(slab0) * 1024) as f64 / held.max(1) as f64
    );
    for (i, l) in loads.iter().enumerate() {
        let line = l.last();
        if !line.ends_with("{}") {
            println!("client {i}: {line}");
        }
    }
    // The server first, so that its stop meets every connection still open.
    let t_stop = Instant::now();
    let last = server.end(Duration::from_secs(30));
    println!("server stop, {:.1?}: {last}", t_stop.elapsed());
    for l in loads {
        l.end(Duration::from_secs(30));
    }
    Ok(())
}

// ----- probe -----

fn probe(o: &Opts) -> io::Result<()> {
    let rt = Runtime::start(
        Config {
            threads: 1,
            stack_size: o.stack,
            ..Config::default()
        },
        |_| panic!("deliberate panic, caught by the runtime"),
    )?;
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn_on(0, move || tx.send(()).unwrap())?;
    rx.recv_timeout(Duration::from_secs(10))
        .map_err(|_| io::Error::other("the scheduler did not go on"))?;
    println!(
        "a caught panic fits a {}-byte green thread stack",
        rt.stack_size()
    );
    rt.stop(Duration::from_secs(1));
    Ok(())
}
