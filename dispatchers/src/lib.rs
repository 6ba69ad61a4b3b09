//! The four dispatchers of cometbench. Each owns only I/O, waiting and
//! wake-ups; every one drives the same sans-IO core ([`comet::Conn`]),
//! answers its events with the same glue ([`backend::GroupBackend`]) and
//! shares the same hub ([`shared::Shared`]), so they differ only in how they
//! wait. The two event loops share their timer heap (`timers.rs`), inbox
//! ([`mailbox`]) and the names of their steps (`settle`, `deliver_inbox`,
//! `expire`, `housekeeping`); the two thread dispatchers share everything
//! but how they get a thread ([`blocking`]).
//!
//! - [`thread_per_conn`]: one OS thread per connection (raw pthreads with a set
//!   stack and no guard page, so the ceiling is pid_max, not Rust's mapping count).
//! - [`thread_pool`]: N workers fed by a channel of accepted connections; a
//!   worker holds its connection until it closes.
//! - [`reactor`]: mio readiness loops, one per thread.
//! - [`uring`]: io_uring completion loops, one ring per thread.
//!
//! # Stopping
//! [`Running::stop`] is graceful, in the same order in every dispatcher, so
//! that a restart under load loses no message the server accepted:
//! 1. publishing stops ([`Shared::stop_publishing`]): from then on a publish,
//!    on any listener, is answered `503` and its connection closed, and the
//!    separate publish listener stops accepting;
//! 2. the dispatcher stops accepting, and every group drains its inbox,
//!    handing each message accepted before step 1 to its subscribers;
//! 3. every connection ends ([`comet::Conn::handle_shutdown`]): a long-poll
//!    held with no message is closed, a stream or a response keeps what is
//!    queued, and that output is written out;
//! 4. connections close once flushed, and `stop` returns. Clients that do not
//!    read get [`STOP_GRACE`] in all, counted from the start of the stop;
//!    what they have not taken by then is dropped.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long a stop waits for connections to take their last output.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

mod accept_error;
pub mod backend;
pub mod blocking;
pub mod broker;
pub mod cluster;
pub mod counters;
pub mod deferred;
pub mod green;
pub mod green_conn;
pub mod group;
pub mod hangup;
mod io_ring;
pub mod listen;
pub mod local;
pub mod mailbox;
pub mod memory;
pub mod reactor;
mod room;
pub mod shared;
pub mod spare;
pub mod tasks;
pub mod thread_per_conn;
pub mod thread_pool;
mod timers;
pub mod uring;

pub use shared::Shared;

/// Which dispatcher to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ThreadPerConn,
    ThreadPool,
    Reactor,
    Uring,
    Green,
    Tokio,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::ThreadPerConn,
        Kind::ThreadPool,
        Kind::Reactor,
        Kind::Uring,
        Kind::Green,
        Kind::Tokio,
    ];

    /// The name used by `--dispatcher`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ThreadPerConn => "thread-per-connection",
            Kind::ThreadPool => "thread-pool",
            Kind::Reactor => "reactor",
            Kind::Uring => "uring",
            Kind::Green => "green",
            Kind::Tokio => "tokio",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// How to run a dispatcher.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: comet::Config,
    pub listen: SocketAddr,
    /// Reactors, rings, schedulers or workers (`reactor`, `uring`, `green`, `tokio`).
    pub threads: usize,
    /// Workers (`thread-pool`).
    pub pool_size: usize,
    /// Stack bytes per connection thread (`thread-per-connection`, `green`).
    pub thread_stack: usize,
    /// A separate listener for publishing and `/stats`, served by its own threads.
    pub publish_listen: Option<SocketAddr>,
    /// The broker this server shares its channels with, as one node of
    /// several (see [`cluster`]); its backlog and message lifetime are
    /// taken from `config`.
    pub broker: Option<broker::Config>,
    /// Listen with `SO_REUSEPORT` even with one listener, so that separate
    /// processes share the port: nodes of one address, the kernel spreading
    /// connections over them.
    pub reuse_port: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: comet::Config::default(),
            listen: "127.0.0.1:0".parse().expect("valid address"),
            threads: 1,
            pool_size: 64,
            thread_stack: 128 * 1024,
            publish_listen: None,
            broker: None,
            reuse_port: false,
        }
    }
}

/// A dispatcher serving in background threads.
pub struct Running {
    /// The address subscribers (and publishers) connect to.
    pub addr: SocketAddr,
    /// The separate publish listener's address, if any.
    pub publish_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    stop: Box<dyn FnOnce() + Send>,
    /// Stops the separate publish listener's acceptor.
    publish_stop: Option<Box<dyn FnOnce() + Send>>,
}

impl Running {
    pub fn new(addr: SocketAddr, shared: Arc<Shared>, stop: Box<dyn FnOnce() + Send>) -> Running {
        Running {
            addr,
            publish_addr: None,
            shared,
            stop,
            publish_stop: None,
        }
    }

    /// Stops gracefully (see `# Stopping`): refuses publishes, delivers
    /// what was accepted, flushes and closes every connection, and returns
    /// within about [`STOP_GRACE`].
    pub fn stop(self) {
        self.shared.stop_publishing();
        if let Some(stop) = self.publish_stop {
            stop();
        }
        (self.stop)()
    }
}

/// Starts dispatcher `kind`; returns once it is listening.
pub fn start(kind: Kind, opts: Options) -> io::Result<Running> {
    let mut running = match kind {
        Kind::ThreadPerConn => thread_per_conn::start(&opts)?,
        Kind::ThreadPool => thread_pool::start(&opts)?,
        Kind::Reactor => reactor::start(&opts)?,
        Kind::Uring => uring::start(&opts)?,
        Kind::Green => green_conn::start(&opts)?,
        Kind::Tokio => tasks::start(&opts)?,
    };
    if opts.broker.is_some() && running.shared.node().is_none() {
        // A dispatcher that made its state without `Shared::for_options`
        // would serve as a lone server while told to share a broker.
        running.stop();
        return Err(io::Error::other(format!(
            "{} does not follow a broker",
            kind.name()
        )));
    }
    if let Some(addr) = opts.publish_listen {
        let (addr, stop) = blocking::publish_listener(addr, running.shared.clone())?;
        running.publish_addr = Some(addr);
        running.publish_stop = Some(stop);
    }
    Ok(running)
}

/// The settings a dispatcher reports in `/stats`.
pub fn settings_json(kind: Kind, opts: &Options) -> serde_json::Value {
    match kind {
        Kind::ThreadPerConn => serde_json::json!({
            "thread_stack": thread_per_conn::stack_size(opts.thread_stack),
            "thread_stack_requested": opts.thread_stack,
        }),
        Kind::ThreadPool => serde_json::json!({ "pool_size": opts.pool_size }),
        Kind::Reactor | Kind::Uring | Kind::Tokio => {
            serde_json::json!({ "threads": opts.threads })
        }
        Kind::Green => serde_json::json!({
            "threads": opts.threads,
            "thread_stack": green_conn::stack_size(opts.thread_stack),
            "thread_stack_requested": opts.thread_stack,
        }),
    }
}
