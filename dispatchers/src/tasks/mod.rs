//! The `tokio` dispatcher: async tasks on a tokio multi-thread runtime
//! (work stealing), `--threads K` workers, one task per connection on
//! `tokio::net`, written the way a tokio user would.
//!
//! Each task drives the same sans-IO core ([`comet::Conn`]) through the
//! same glue ([`comet::glue::drain`]) as the other dispatchers, against a
//! backend of its own (`fanout.rs`): fan-out is a `tokio::sync::broadcast`
//! channel per hub channel, where the others hand a message to each group
//! of connections that waits on its own (see `fanout.rs`, `# Against the
//! groups rule`). The hub itself (ids, backlog, replay, expiry, `/stats`)
//! is the same [`Shared`].
//!
//! # Several nodes
//! With `--broker` the dispatcher is one node of several (see
//! [`crate::cluster`]): the broker's messages reach the channel's broadcast
//! as a local publish's do, and an answer the broker gives later reaches
//! its connection through an answer path of its own (see `fanout.rs`,
//! `# Answers given later`).
//!
//! # Out of descriptors
//! The acceptor keeps a spare descriptor ([`crate::spare`]) and answers
//! `503` with it when `accept` fails with `EMFILE`; when even the spare is
//! gone it backs off for 10 ms. One process holds at most the open-file
//! limit's sockets (tokio's sockets are ordinary descriptors).
//!
//! # Deadlines
//! Every connection's deadline (heartbeat, header and long-poll timeouts,
//! pings, lingering) is kept in one table for the dispatcher, which one
//! task drives (`deadlines.rs`), not in a `Sleep` per task.
//!
//! # Housekeeping
//! A task runs [`Shared::housekeeping`] once a second (expiring channels,
//! trimming the heap) and sweeps the deadlines' table.
//!
//! # Stopping
//! After publishing has stopped ([`crate`] `# Stopping`), every channel's
//! broadcast is closed, which ends each subscribed task's receiver after
//! what it holds, and a cancellation token (tokio-util's, what tokio users
//! stop tasks with) tells the acceptor and every task not subscribed; each
//! connection hands on
//! what its receiver holds, ends, and writes out its output (see `conn.rs`,
//! `# Stopping`). The stop waits until every connection has closed or
//! [`crate::STOP_GRACE`] has passed, then shuts the runtime down, which
//! drops the tasks left.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accept_error::AcceptError;
use crate::hangup::TICK;
use crate::spare::Spare;
use crate::{Kind, Options, Running, Shared};

mod conn;
mod deadlines;
mod fanout;

pub use fanout::CAPACITY;

use conn::Task;
use fanout::Fanout;

/// How long the acceptor waits when it cannot take a connection at all.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

pub fn start(opts: &Options) -> io::Result<Running> {
    let threads = opts.threads.max(1);
    let shared = Arc::new(Shared::for_options(
        opts,
        Kind::Tokio.name(),
        crate::settings_json(Kind::Tokio, opts),
        0,
    )?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("tokio-worker")
        .enable_io()
        .enable_time()
        .build()?;
    let std_listener = crate::listen::listener(opts.listen, opts.reuse_port)?;
    let addr = std_listener.local_addr()?;
    std_listener.set_nonblocking(true)?;
    let listener = {
        let _entered = rt.enter();
        TcpListener::from_std(std_listener)?
    };
    let fanout = Arc::new(Fanout::new(shared.clone()));
    let stop_token = CancellationToken::new();
    rt.spawn(accept_loop(listener, fanout.clone(), stop_token.clone()));
    let driven = fanout.clone();
    rt.spawn(async move { driven.deadlines.drive().await });
    rt.spawn(housekeeping(fanout.clone(), stop_token.clone()));
    let stopped = shared.clone();
    let stop = move || {
        let deadline = Instant::now() + crate::STOP_GRACE;
        // Subscribers hear of the stop from their receivers, the others
        // (and the acceptor) from the token.
        fanout.close();
        stop_token.cancel();
        rt.block_on(async {
            while stopped.counters.connections.load(Ordering::Relaxed) > 0
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        rt.shutdown_timeout(Duration::from_millis(100));
        drop(fanout);
    };
    Ok(Running::new(addr, shared, Box::new(stop)))
}

/// Accepts until the stop, a task per connection.
async fn accept_loop(listener: TcpListener, fanout: Arc<Fanout>, stop: CancellationToken) {
    let mut spare = Spare::new();
    let mut warned = false;
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        let err = match accepted {
            Ok((stream, _)) => {
                let task = Task::new(stream, Instant::now(), &fanout, stop.clone());
                tokio::spawn(task.run());
                continue;
            }
            Err(e) => e,
        };
        match AcceptError::of_io(&err) {
            AcceptError::OutOfFiles => {
                crate::blocking::warn_out_of_files(&mut warned, &err);
                if !spare.shed(|| refuse_one(&listener, &fanout.shared)) {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
            AcceptError::Transient => {}
            AcceptError::NoMemory | AcceptError::Cancelled | AcceptError::Unexpected => {
                tokio::time::sleep(ACCEPT_BACKOFF).await
            }
        }
    }
}

/// Takes one pending connection, without waiting, and answers it `503`.
fn refuse_one(listener: &TcpListener, shared: &Shared) -> bool {
    match socket2::SockRef::from(listener).accept() {
        Ok((socket, _)) => {
            crate::blocking::refuse(socket.into(), shared);
            true
        }
        Err(_) => false,
    }
}

/// Housekeeping once a [`TICK`] until the stop: the hub's, and the
/// deadlines' room.
async fn housekeeping(fanout: Arc<Fanout>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {
                fanout.shared.housekeeping(Instant::now());
                fanout.deadlines.housekeeping();
            }
        }
    }
}
