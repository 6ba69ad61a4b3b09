//! The owner's handle on a broker link.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use super::config::Config;
use super::error::Error;
use super::follow::Table;
use super::message::Replay;
use super::session::{self, Session};
use super::sink::Sink;
use super::stats::{Counters, Stats};
use super::worker::{self, Job, Request};

/// What the worker and the reader share.
pub(crate) struct Inner {
    pub config: Config,
    table: Mutex<Table>,
    pub sink: Arc<dyn Sink>,
    pub counters: Counters,
    pub jobs: Sender<Job>,
    /// Why the broker was last lost, or the last reconnect failed.
    pub last_error: Mutex<Option<String>>,
}

impl Inner {
    /// The follow table. A panic in a sink call poisons nothing worth
    /// stopping for: the table is consistent between its methods.
    pub fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_up(&self, up: bool) {
        self.counters.up.store(up, Ordering::Release);
    }

    pub fn set_following(&self, n: u64) {
        self.counters.following.store(n, Ordering::Relaxed);
    }
}

/// A node's link to its broker (see the module docs). Dropping it stops the
/// link's threads; requests still queued fail with [`Error::Stopped`].
pub struct Link {
    inner: Arc<Inner>,
    worker: Option<JoinHandle<()>>,
}

impl Link {
    /// Connects to the broker at `config.url`, loads the scripts and starts
    /// the link's threads. Fails at once, naming the URL, when the broker
    /// cannot be reached within `config.timeout`.
    pub fn connect(config: Config, sink: Arc<dyn Sink>) -> Result<Link, Error> {
        session::parse_url(&config.url)?;
        let (jobs, rx) = crossbeam_channel::unbounded();
        let url = config.url.clone();
        let inner = Arc::new(Inner {
            config,
            table: Mutex::new(Table::default()),
            sink,
            counters: Counters::default(),
            jobs,
            last_error: Mutex::new(None),
        });
        let first =
            Session::open(1, &inner).map_err(|reason| Error::Unreachable { url, reason })?;
        inner.set_up(true);
        let worker_inner = inner.clone();
        let worker = std::thread::Builder::new()
            .name("broker-worker".into())
            .spawn(move || worker::run(worker_inner, rx, first))
            .map_err(|e| Error::Broker(format!("cannot start the worker thread: {e}")))?;
        Ok(Link {
            inner,
            worker: Some(worker),
        })
    }

    /// Publishes `data` on `channel`. `done` gets the id the broker gave it,
    /// or why it failed: [`Error::Down`] while the link is down (nothing was
    /// published), [`Error::Lost`] when the connection dropped with it in
    /// flight (it may have been). Called once, on a link thread.
    pub fn publish(
        &self,
        channel: &str,
        data: &str,
        done: impl FnOnce(Result<u64, Error>) + Send + 'static,
    ) {
        self.request(Request::Publish {
            channel: channel.to_string(),
            data: data.to_string(),
            done: Box::new(done),
        });
    }

    /// Begins to follow `channel`: live messages go to the sink after its
    /// [`Sink::followed`]. Following a followed channel does nothing.
    pub fn follow(&self, channel: &str) {
        let _ = self.inner.jobs.send(Job::Follow(channel.to_string()));
    }

    /// Stops following `channel`.
    pub fn unfollow(&self, channel: &str) {
        let _ = self.inner.jobs.send(Job::Unfollow(channel.to_string()));
    }

    /// Reads the shared backlog of `channel` after `since`; `done` gets it,
    /// with the missed count, on a link thread.
    pub fn replay(
        &self,
        channel: &str,
        since: u64,
        done: impl FnOnce(Result<Replay, Error>) + Send + 'static,
    ) {
        self.request(Request::Replay {
            channel: Arc::from(channel),
            since,
            done: Box::new(done),
        });
    }

    /// Whether the broker connection is up now.
    pub fn is_up(&self) -> bool {
        self.inner.counters.up.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// Why the broker was last lost (or the last reconnect failed).
    pub fn last_error(&self) -> Option<String> {
        self.inner
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Queues `request`; when the worker is gone, it fails at once.
    fn request(&self, request: Request) {
        if let Err(e) = self.inner.jobs.send(Job::Request(request)) {
            if let Job::Request(r) = e.into_inner() {
                r.fail(&self.inner, Error::Stopped);
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = self.inner.jobs.send(Job::Stop);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}
