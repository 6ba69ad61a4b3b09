//! `cometbench`: threads or events? Serve, load, measure and chart Comet.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use dispatchers::{Kind, Options};

mod chart;
mod compare;
mod floor;
mod report;

#[derive(Parser)]
#[command(
    name = "cometbench",
    version,
    about = "Threads or events? A workbench for Comet servers."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Comet protocol with one dispatcher until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Run a scenario against every dispatcher it names (or an external server).
    Run(RunArgs),
    /// Draw slides (SVG, PNG) from result directories; runs nothing.
    Chart(ChartArgs),
    /// Write one self-contained HTML page per result directory; runs nothing.
    Report(ReportArgs),
    /// Compare two runs figure by figure; exit 99 when one regresses past the threshold.
    Compare(CompareArgs),
    /// List the dispatchers and transports.
    List,
    /// The fan-out floor: a plain write loop to SSE subscribers (a run's `floor` target).
    #[command(hide = true)]
    Floor(FloorArgs),
    /// A load generator worker process (started by `run`; reads its plan on stdin).
    #[command(hide = true)]
    Worker,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scenario file (TOML), e.g. scenarios/smoke.toml.
    scenario: PathBuf,
    /// Only these dispatchers (repeatable).
    #[arg(long = "dispatcher")]
    dispatchers: Vec<String>,
    /// Only these peers, nchan or pushpin (repeatable; with --dispatcher, both).
    #[arg(long = "peer")]
    peers: Vec<String>,
    /// Connection-count steps instead of the scenario's, comma-separated.
    #[arg(long, value_delimiter = ',')]
    steps: Option<Vec<u64>>,
    /// Results root; the run goes to OUT/<scenario>/<UTC timestamp>/.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Steps divided by 10, hold and publish times by 5: a quick look.
    #[arg(long)]
    quick: bool,
    /// Drive an already running server: subscribe URL template with {channel}
    /// and {transport}, e.g. 'http://127.0.0.1:8080/sub/{channel}?transport={transport}'.
    #[arg(long)]
    target: Option<String>,
    /// Publish URL template with {channel} (default: the target's with /sub/ -> /pub/, no query).
    #[arg(long, requires = "target")]
    publish: Option<String>,
    /// PID of the external server, to sample its memory, threads and CPU.
    #[arg(long, requires = "target")]
    pid: Option<u32>,
    /// Run every case N times, each with a fresh server; figures get their median and range.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    repeat: Option<u32>,
    /// Pin the server and the load generator: server=LIST,loadgen=LIST (e.g. server=0,loadgen=1).
    #[arg(long, value_name = "server=LIST,loadgen=LIST")]
    cpus: Option<String>,
    /// Also run the floor (a plain write loop) and give fan-out figures their ratio to it.
    #[arg(long)]
    floor: bool,
    /// Where the workers run, instead of the scenario's [hosts]: `local`
    /// (all here), `netns:N` (N network namespaces the run makes, the server
    /// in one more), or host names separated by commas (with --host-command
    /// and --host-listen).
    #[arg(long)]
    hosts: Option<String>,
    /// The command that starts a worker on {host}, split at spaces; {exe} is
    /// this binary, e.g. 'ssh {host} cometbench worker'.
    #[arg(long, requires = "hosts")]
    host_command: Option<String>,
    /// With host names: the address the server listens on, which the hosts reach.
    #[arg(long, requires = "hosts")]
    host_listen: Option<std::net::IpAddr>,
    /// Name the run (and its results directory) this instead of the scenario's name.
    #[arg(long)]
    name: Option<String>,
}

#[derive(clap::Args)]
struct CompareArgs {
    /// The run before: a results directory or its run.json.
    a: PathBuf,
    /// The run after.
    b: PathBuf,
    /// A figure worse than this many percent (beyond the noise) is a regression: exit 99.
    #[arg(long, default_value_t = 10.0)]
    threshold: f64,
}

#[derive(clap::Args)]
struct FloorArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A second listener (publishing and /stats), as serve's.
    #[arg(long)]
    publish_listen: Option<SocketAddr>,
    /// Processes sharing the subscribers' port, each holding its share (past
    /// one process's open-file limit); needs --publish-listen.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    processes: u16,
    /// One of the processes of --processes, driven by its parent.
    #[arg(long, hide = true)]
    child: bool,
}

#[derive(clap::Args)]
struct ChartArgs {
    /// Result directories (results/<scenario>/<timestamp>/); runs of the same kind are merged.
    #[arg(required = true, value_name = "RESULTS_DIR")]
    dirs: Vec<PathBuf>,
    /// Where the charts go.
    #[arg(long, default_value = "results/charts")]
    out: PathBuf,
    /// Output formats, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "svg,png")]
    format: Vec<chart::Format>,
    /// Light or dark slides.
    #[arg(long, value_enum, default_value = "light")]
    theme: chart::Theme,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// Result directories (results/<scenario>/<timestamp>/), one page each.
    #[arg(required = true, value_name = "RESULTS_DIR")]
    dirs: Vec<PathBuf>,
    /// Where the pages go (<scenario>.html).
    #[arg(long, default_value = "results/reports")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// thread-per-connection, thread-pool, reactor, uring, green or tokio.
    #[arg(long, value_parser = parse_kind)]
    dispatcher: Kind,
    /// Address to listen on (port 0 picks one; the bound address is the first line printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Reactors, rings, schedulers or workers (reactor, uring, green, tokio).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Worker threads (thread-pool).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=30000))]
    pool_size: u32,
    /// Stack bytes per connection thread (thread-per-connection, green).
    #[arg(long, default_value_t = 128 * 1024)]
    thread_stack: usize,
    /// Require `Authorization: Bearer T` to publish.
    #[arg(long)]
    publish_token: Option<String>,
    /// Seconds between heartbeats on streaming transports.
    #[arg(long, default_value_t = 15.0)]
    heartbeat: f64,
    /// Seconds a long-poll is held when the request gives no ?timeout=.
    #[arg(long, default_value_t = 30.0)]
    poll_timeout: f64,
    /// Seconds a request (head and body) may take: from accept for a
    /// connection's first, from its first byte for a later one; then 408.
    #[arg(long, default_value_t = 10.0)]
    header_timeout: f64,
    /// Messages kept per channel for since / Last-Event-ID replay.
    #[arg(long, default_value_t = 64)]
    backlog: usize,
    /// Seconds a message stays in the backlog; a channel with no subscriber
    /// and no message younger than this is removed.
    #[arg(long, default_value_t = 3600.0)]
    message_ttl: f64,
    /// Channels that may exist at once; a request that would make one more gets 503.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_channels: u64,
    /// Largest publish body in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    max_message: usize,
    /// Unsent bytes a subscriber may have queued before it is dropped as too slow.
    #[arg(long, default_value_t = 256 * 1024)]
    max_queue: usize,
    /// Send Access-Control-Allow-Origin (an origin, or *) and answer CORS preflights.
    #[arg(long)]
    allow_origin: Option<String>,
    /// Serve publishing and /stats on this separate listener too, with its own threads.
    #[arg(long)]
    publish_listen: Option<SocketAddr>,
    /// Listen with SO_REUSEPORT, so that other processes (nodes of one
    /// address) can join the port and the kernel spreads connections over them.
    #[arg(long)]
    reuse_port: bool,
    /// Allow listening beyond loopback without a publish token.
    #[arg(long)]
    insecure_public: bool,
    /// Share channels with other servers through this Redis broker
    /// (redis://HOST:PORT): one id sequence and backlog per channel across
    /// every node that names it. Unreachable at start: serve exits.
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// Prefix of every broker key and pub/sub channel (nodes of one
    /// deployment share it).
    #[arg(long, default_value = "cometbench:", requires = "broker")]
    broker_prefix: String,
    /// How the broker keeps a channel's backlog: list or stream.
    #[arg(long, default_value = "list", value_parser = parse_structure, requires = "broker")]
    broker_structure: dispatchers::broker::Structure,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::from_name(s).ok_or_else(|| {
        let names: Vec<_> = Kind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown dispatcher '{s}' (one of: {})", names.join(", "))
    })
}

fn parse_structure(s: &str) -> Result<dispatchers::broker::Structure, String> {
    dispatchers::broker::Structure::from_name(s)
        .ok_or_else(|| format!("unknown broker structure '{s}' (one of: list, stream)"))
}

fn secs(name: &str, v: f64) -> Result<Duration> {
    if !(v.is_finite() && v > 0.0) {
        bail!("--{name} must be a positive number of seconds, got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

/// Raises the soft open-file limit to the hard one: the most this process may hold.
fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        if r.rlim_cur < r.rlim_max {
            let mut raised = r;
            raised.rlim_cur = r.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        r.rlim_cur
    }
}

/// The allocator settings `serve` runs with (see [`tune_malloc`]).
const MALLOC_TUNABLES: &str =
    "glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0:glibc.pthread.stack_cache_size=0";

/// What `dispatcher` runs with: [`MALLOC_TUNABLES`], and for `tokio` no
/// fastbins. Its task cells and socket registrations are 128-byte-aligned
/// blocks, which glibc carves out of larger chunks; the remainders are
/// fastbin-sized, and fastbins never coalesce, so each idle subscriber left
/// ~170 B unused beside its blocks (`examples/tokio_idle.rs` with 5,000,
/// 2026-12-02: 1,163 B resident per subscriber, 990 with `mxfast=0`). The
/// other dispatchers make no aligned blocks and keep glibc's fast path.
fn malloc_tunables(dispatcher: Kind) -> String {
    match dispatcher {
        Kind::Tokio => format!("{MALLOC_TUNABLES}:glibc.malloc.mxfast=0"),
        _ => MALLOC_TUNABLES.to_string(),
    }
}

/// Starts this process again with [`malloc_tunables`], unless `GLIBC_TUNABLES`
/// is already set (the user's own choice, or we are the restarted process).
///
/// A server that lost ten thousand connections at once must give their memory
/// back (RSS within 5% of the baseline). glibc keeps it in three
/// places that `malloc_trim` cannot reach, measured with `scripts/storm.py`
/// (10,000 SSE subscribers closed at once, 2026-11-30): each thread's tcache
/// holds freed chunks that pin pages all over the heap (reactor with 2
/// threads +380 KB over a 4.2 MB baseline, uring +580 KB over 6.9 MB); each
/// thread may get an arena of its own whose free pages fragment (16 arenas,
/// ~1 MB each, after thread-per-connection); and ended threads' stacks are
/// cached, touched pages and all (up to 40 MiB). With these settings every
/// dispatcher was back within 1.3 s (uring +64 KB, reactor +140 KB,
/// thread-per-connection +530 KB, thread pool +0.5% of its 100 MB). Tunables
/// are read when the process starts, so the only way to set them from inside
/// is to start again; `exec` keeps the pid, so whoever started the server
/// still has it.
fn tune_malloc(dispatcher: Kind) {
    if !cfg!(all(target_os = "linux", target_env = "gnu"))
        || std::env::var_os("GLIBC_TUNABLES").is_some()
    {
        return;
    }
    use std::os::unix::process::CommandExt;
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let tunables = malloc_tunables(dispatcher);
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", &tunables)
        .exec();
    // Still here: the exec failed. Serving untuned beats not serving.
    eprintln!("cometbench serve: could not restart with {tunables}: {err}");
}

fn serve(a: ServeArgs) -> Result<()> {
    tune_malloc(a.dispatcher);
    let publish_listen_public = a.publish_listen.is_some_and(|p| !p.ip().is_loopback());
    if a.publish_token.is_none()
        && (!a.listen.ip().is_loopback() || publish_listen_public)
        && !a.insecure_public
    {
        bail!(
            "refusing to listen beyond loopback without --publish-token (anyone could publish); \
             give a token, or --insecure-public"
        );
    }
    let config = comet::Config {
        heartbeat: secs("heartbeat", a.heartbeat)?,
        poll_timeout: secs("poll-timeout", a.poll_timeout)?,
        header_timeout: secs("header-timeout", a.header_timeout)?,
        backlog: a.backlog,
        message_ttl: secs("message-ttl", a.message_ttl)?,
        max_channels: usize::try_from(a.max_channels).unwrap_or(usize::MAX),
        max_message: a.max_message,
        max_queue: a.max_queue,
        publish_token: a.publish_token.clone(),
        allow_origin: a.allow_origin,
        ..comet::Config::default()
    };
    let nofile = raise_nofile();
    let opts = Options {
        config,
        listen: a.listen,
        threads: a.threads as usize,
        pool_size: a.pool_size as usize,
        thread_stack: a.thread_stack,
        publish_listen: a.publish_listen,
        reuse_port: a.reuse_port,
        broker: a.broker.as_deref().map(|url| {
            let mut b = dispatchers::broker::Config::new(url);
            b.prefix = a.broker_prefix.clone();
            b.structure = a.broker_structure;
            b
        }),
    };
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("installing signal handlers")?;
    let running = dispatchers::start(a.dispatcher, opts.clone())
        .with_context(|| format!("starting {}", a.dispatcher.name()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", running.addr)?;
    out.flush()?;
    drop(out);
    let publish = running
        .publish_addr
        .map(|p| format!(", publish on {p}"))
        .unwrap_or_default();
    // Publishing is served on every listener, so who "anyone" is depends on
    // whether one of them is reachable beyond this machine.
    let public: Vec<String> = std::iter::once(running.addr)
        .chain(running.publish_addr)
        .filter(|l| !l.ip().is_loopback())
        .map(|l| l.to_string())
        .collect();
    let auth = if a.publish_token.is_some() {
        "publishing needs the token".to_string()
    } else if public.is_empty() {
        "publishing is open to anyone who can connect (loopback only)".to_string()
    } else {
        format!(
            "publishing is open to anyone who can connect, over the network too \
             (listening beyond loopback on {}; --insecure-public, no token)",
            public.join(" and ")
        )
    };
    let broker = a
        .broker
        .as_deref()
        .map(|url| format!("; one node of those sharing the broker {url}"))
        .unwrap_or_default();
    eprintln!(
        "cometbench serve: {} on {}{publish}; open-file limit {nofile}; {auth}{broker}",
        a.dispatcher.name(),
        running.addr
    );
    let sig = signals.forever().next();
    eprintln!(
        "cometbench serve: signal {}, stopping; {}",
        sig.unwrap_or(0),
        running.shared.stats_json()
    );
    // Publishing stops first, then what was accepted is delivered and
    // flushed for at most STOP_GRACE (2 s: a client that does not read does
    // not hold the stop up); process exit closes what is left.
    running.stop();
    Ok(())
}

/// Splits `http://HOST:PORT/path` into the address and the path template.
fn split_url(url: &str) -> Result<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs can be driven"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = authority
        .parse()
        .with_context(|| format!("{url}: the host must be IP:PORT, e.g. 127.0.0.1:8080"))?;
    if !addr.ip().is_loopback() {
        bail!("{url}: load is only sent to loopback addresses (127.0.0.0/8)");
    }
    Ok((
        addr,
        if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
    ))
}

/// Exit code of a run that broke a scenario threshold (as k6 does).
const EXIT_THRESHOLD: u8 = 99;

fn run(a: RunArgs) -> Result<ExitCode> {
    let scenario = match loadgen::scenario::Scenario::from_path(&a.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cometbench: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let only = (!a.dispatchers.is_empty()).then_some(a.dispatchers.clone());
    let only_peers = (!a.peers.is_empty()).then_some(a.peers.clone());
    let scenario = scenario
        .with_overrides(only, only_peers, a.steps.clone(), a.quick)
        .and_then(|s| match &a.hosts {
            Some(h) => s.with_hosts(h, a.host_command.clone(), a.host_listen),
            None => Ok(s),
        })
        .and_then(|s| match &a.name {
            Some(n) => s.with_name(n),
            None => Ok(s),
        })
        .and_then(|s| s.with_run_options(a.repeat, a.cpus.as_deref(), a.floor));
    let scenario = match scenario {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cometbench: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let external = match &a.target {
        None => None,
        Some(t) => {
            let (addr, subscribe_path) = split_url(t)?;
            let publish_path = match &a.publish {
                Some(p) => split_url(p)?.1,
                None => subscribe_path
                    .split('?')
                    .next()
                    .unwrap_or("")
                    .replacen("/sub/", "/pub/", 1),
            };
            Some(loadgen::run::External {
                addr,
                subscribe_path,
                publish_path,
                pid: a.pid,
            })
        }
    };
    raise_nofile();
    let outcome = loadgen::run::run(loadgen::run::RunArgs {
        scenario,
        exe: std::env::current_exe().context("finding the cometbench executable")?,
        out_root: a.out,
        external,
        command_line: std::env::args().collect(),
    })?;
    let mut out = std::io::stdout().lock();
    loadgen::results::write_table(&mut out, &outcome.run.cases)?;
    loadgen::results::write_capacity(&mut out, &outcome.run.capacity)?;
    writeln!(out, "results: {}", outcome.dir.display())?;
    if !outcome.run.thresholds.passed {
        for b in &outcome.run.thresholds.broken {
            writeln!(out, "threshold broken: {b}")?;
        }
        return Ok(ExitCode::from(EXIT_THRESHOLD));
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => match run(a) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Worker => {
            raise_nofile();
            loadgen::worker::main().map_err(anyhow::Error::from)
        }
        Command::Serve(a) => serve(a),
        Command::Floor(a) => {
            raise_nofile();
            match a.child {
                true => floor::child(a.listen),
                false => floor::run(a.listen, a.publish_listen, a.processes.into()),
            }
        }
        Command::Compare(a) => {
            let o = compare::Options {
                a: a.a,
                b: a.b,
                threshold_pct: a.threshold,
            };
            match compare::run(&o, std::io::stdout().lock()) {
                Ok(0) => Ok(()),
                Ok(_) => return ExitCode::from(EXIT_THRESHOLD),
                Err(e) => Err(e),
            }
        }
        Command::Chart(a) => chart::run(
            &chart::Options {
                dirs: a.dirs,
                out: a.out,
                formats: a.format,
                theme: a.theme,
            },
            std::io::stdout().lock(),
        ),
        Command::Report(a) => report::run(
            &report::Options {
                dirs: a.dirs,
                out: a.out,
            },
            std::io::stdout().lock(),
        ),
        Command::List => {
            println!("dispatchers:");
            for k in Kind::ALL {
                println!("  {}", k.name());
            }
            println!("transports:");
            for t in comet::Transport::ALL {
                println!("  {}", t.name());
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cometbench: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokio_runs_without_fastbins() {
        assert!(malloc_tunables(Kind::Tokio).ends_with(":glibc.malloc.mxfast=0"));
        assert!(malloc_tunables(Kind::Tokio).starts_with(MALLOC_TUNABLES));
        for k in Kind::ALL.into_iter().filter(|k| *k != Kind::Tokio) {
            assert_eq!(malloc_tunables(k), MALLOC_TUNABLES, "{}", k.name());
        }
    }

    #[test]
    fn scenarios_know_every_dispatcher() {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names, loadgen::scenario::DISPATCHERS);
    }
}
