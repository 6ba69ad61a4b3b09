//! `cometbench`: threads or events? Serve, load, measure and chart Comet.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use dispatchers::{Kind, Options};

#[derive(Parser)]
#[command(name = "cometbench", version, about = "Threads or events? A workbench for Comet servers.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Comet protocol with one dispatcher until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// List the dispatchers and transports.
    List,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// thread-per-connection, thread-pool, reactor or uring.
    #[arg(long, value_parser = parse_kind)]
    dispatcher: Kind,
    /// Address to listen on (port 0 picks one; the bound address is the first line printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Reactors or rings (reactor, uring).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Worker threads (thread-pool).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=30000))]
    pool_size: u32,
    /// Stack bytes per connection thread (thread-per-connection).
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
    /// Messages kept per channel for since / Last-Event-ID replay.
    #[arg(long, default_value_t = 64)]
    backlog: usize,
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
    /// Allow listening beyond loopback without a publish token.
    #[arg(long)]
    insecure_public: bool,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    Kind::from_name(s).ok_or_else(|| {
        let names: Vec<_> = Kind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown dispatcher '{s}' (one of: {})", names.join(", "))
    })
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

fn serve(a: ServeArgs) -> Result<()> {
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
        backlog: a.backlog,
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
    };
    let mut signals =
        signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
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
    let auth = if a.publish_token.is_some() {
        "publishing needs the token"
    } else {
        "publishing is open to anyone who can connect (loopback only)"
    };
    eprintln!(
        "cometbench serve: {} on {}{publish}; open-file limit {nofile}; {auth}",
        a.dispatcher.name(),
        running.addr
    );
    let sig = signals.forever().next();
    eprintln!(
        "cometbench serve: signal {}, stopping; {}",
        sig.unwrap_or(0),
        running.shared.stats_json()
    );
    // Thread dispatchers may hold thousands of blocked threads: stop what
    // stops promptly, and let process exit close the rest.
    running.stop();
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => serve(a),
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
