//! The four dispatchers of cometbench. Each owns only I/O, waiting and
//! wake-ups; every one drives the same sans-IO core ([`comet::Conn`]) and
//! shares the same hub ([`shared::Shared`]), so they differ only in how they wait.
//!
//! - [`thread_per_conn`]: one OS thread per connection (raw pthreads with a set
//!   stack and no guard page, so the ceiling is pid_max, not Rust's mapping count).
//! - [`thread_pool`]: N workers fed by a channel of accepted connections; a
//!   worker holds its connection until it closes.
//! - [`reactor`]: mio readiness loops, one per thread.
//! - [`uring`]: io_uring completion loops, one ring per thread.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

pub mod blocking;
pub mod hangup;
pub mod listen;
pub mod memory;
pub mod reactor;
pub mod shared;
pub mod thread_per_conn;
pub mod thread_pool;
pub mod uring;

pub use shared::Shared;

/// Which dispatcher to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ThreadPerConn,
    ThreadPool,
    Reactor,
    Uring,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::ThreadPerConn,
        Kind::ThreadPool,
        Kind::Reactor,
        Kind::Uring,
    ];

    /// The name used by `--dispatcher`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ThreadPerConn => "thread-per-connection",
            Kind::ThreadPool => "thread-pool",
            Kind::Reactor => "reactor",
            Kind::Uring => "uring",
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
    /// Reactors or rings (`reactor`, `uring`).
    pub threads: usize,
    /// Workers (`thread-pool`).
    pub pool_size: usize,
    /// Stack bytes per connection thread (`thread-per-connection`).
    pub thread_stack: usize,
    /// A separate listener for publishing and `/stats`, served by its own threads.
    pub publish_listen: Option<SocketAddr>,
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
}

impl Running {
    pub fn new(addr: SocketAddr, shared: Arc<Shared>, stop: Box<dyn FnOnce() + Send>) -> Running {
        Running {
            addr,
            publish_addr: None,
            shared,
            stop,
        }
    }

    /// Stops accepting and asks the dispatcher's threads to end. Connections
    /// still held may be cut off.
    pub fn stop(self) {
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
    };
    if let Some(addr) = opts.publish_listen {
        running.publish_addr = Some(blocking::serve_publish_listener(
            addr,
            running.shared.clone(),
        )?);
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
        Kind::Reactor | Kind::Uring => serde_json::json!({ "threads": opts.threads }),
    }
}
