//! The worker thread: runs the owner's requests against the broker, in
//! pipelined batches, and reconnects when the broker is lost.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use redis::{RedisResult, ServerErrorKind, Value};

use super::error::Error;
use super::follow::CatchUp;
use super::link::Inner;
use super::message::Replay;
use super::script;
use super::session::Session;
use super::stats::add;

/// The most requests sent in one pipeline.
const MAX_BATCH: usize = 256;

pub(crate) type PublishDone = Box<dyn FnOnce(Result<u64, Error>) + Send>;
pub(crate) type ReplayDone = Box<dyn FnOnce(Result<Replay, Error>) + Send>;

/// What the link's other parts ask of the worker.
pub(crate) enum Job {
    /// From the owner (publish, replay) or the reader (a catch-up).
    Request(Request),
    Follow(String),
    Unfollow(String),
    /// From a session's reader: its connection closed.
    Lost(u64),
    Stop,
}

/// A request that goes to the broker as one script call.
pub(crate) enum Request {
    Publish {
        channel: String,
        data: String,
        done: PublishDone,
    },
    Replay {
        channel: Arc<str>,
        since: u64,
        done: ReplayDone,
    },
    /// A channel needs its backlog read (see `Table::handle_read`).
    CatchUp(CatchUp),
}

impl Request {
    fn cmd(&self, session: &Session, inner: &Inner) -> redis::Cmd {
        let (shas, config) = (&session.shas, &inner.config);
        match self {
            Request::Publish { channel, data, .. } => {
                script::publish_cmd(shas, config, channel, data)
            }
            Request::Replay { channel, since, .. } => {
                script::read_cmd(shas, config, channel, *since)
            }
            Request::CatchUp(c) => script::read_cmd(shas, config, &c.channel, c.since),
        }
    }

    /// Completes the request with its answer. Err: a catch-up failed, which
    /// the session does not survive (its channel would never go live).
    fn complete(self, inner: &Inner, answer: RedisResult<Value>) -> Result<(), String> {
        let broker = |e: redis::RedisError| Error::Broker(e.to_string());
        match self {
            Request::Publish { done, .. } => {
                let id = answer
                    .map_err(broker)
                    .and_then(|v| script::decode_publish(&v));
                let counter = match id {
                    Ok(_) => &inner.counters.published,
                    Err(_) => &inner.counters.publish_failed,
                };
                add(counter, 1);
                done(id);
            }
            Request::Replay {
                channel,
                since,
                done,
            } => done(
                answer
                    .map_err(broker)
                    .and_then(|v| script::decode_read(&channel, since, v)),
            ),
            Request::CatchUp(c) => {
                let read = answer
                    .map_err(broker)
                    .and_then(|v| script::decode_read(&c.channel, c.since, v))
                    .map_err(|e| format!("reading the backlog of {}: {e}", c.channel))?;
                inner.table().handle_read(&c, read);
            }
        }
        Ok(())
    }

    /// Fails the request without sending it (or with its answer lost).
    pub(crate) fn fail(self, inner: &Inner, error: Error) {
        match self {
            Request::Publish { done, .. } => {
                add(&inner.counters.publish_failed, 1);
                done(Err(error));
            }
            Request::Replay { done, .. } => done(Err(error)),
            // The table asks again once the link is back.
            Request::CatchUp(_) => {}
        }
    }
}

/// How a session ended.
enum End {
    Stop,
    Lost(String),
}

/// The worker's loop, from the session `Link::connect` opened until `Stop`.
pub(crate) fn run(inner: Arc<Inner>, jobs: Receiver<Job>, first: Session) {
    let mut next_id = first.id + 1;
    let mut epoch = first.epoch.clone();
    let mut session = first;
    loop {
        let end = serve(&inner, &jobs, &mut session);
        session.close();
        if let End::Lost(why) = end {
            lose(&inner, why);
            if let Some(s) = reconnect(&inner, &jobs, &mut next_id, &mut epoch) {
                session = s;
                continue;
            }
        }
        // Stopped: whatever is still queued fails.
        for job in jobs.try_iter() {
            down_job(&inner, job, Error::Stopped);
        }
        return;
    }
}

fn serve(inner: &Inner, jobs: &Receiver<Job>, session: &mut Session) -> End {
    loop {
        let first = match jobs.recv_timeout(inner.config.ping_interval) {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                // A quiet link: make sure the broker is still there.
                if let Err(e) = redis::cmd("PING").exec(&mut session.conn) {
                    return End::Lost(e.to_string());
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return End::Stop,
        };
        let mut requests = Vec::new();
        let mut stop = false;
        let mut lost = None;
        for job in std::iter::once(first).chain(jobs.try_iter().take(MAX_BATCH - 1)) {
            match job {
                Job::Request(Request::CatchUp(c)) if !inner.table().is_due(&c) => {}
                Job::Request(r) => requests.push(r),
                // No connection to write on: the table alone, as when down.
                job @ (Job::Follow(_) | Job::Unfollow(_)) if lost.is_some() => {
                    down_job(inner, job, Error::Lost)
                }
                Job::Follow(channel) => {
                    if let Err(e) = follow(inner, session, &channel, true) {
                        lost = Some(e);
                    }
                }
                Job::Unfollow(channel) => {
                    if let Err(e) = follow(inner, session, &channel, false) {
                        lost = Some(e);
                    }
                }
                Job::Lost(id) if id == session.id => {
                    lost = Some("the pub/sub connection closed".to_string());
                }
                Job::Lost(_) => {}
                Job::Stop => stop = true,
            }
        }
        if let Some(why) = lost {
            // Not sent: nothing of these ran.
            for r in requests {
                r.fail(inner, Error::Down);
            }
            return End::Lost(why);
        }
        if let Err(why) = run_batch(inner, session, requests) {
            return End::Lost(why);
        }
        // Reads came in: the marker after them releases them (see
        // `Table::handle_read`).
        let mark = inner.table().seal();
        if let Some(mark) = mark {
            if let Err(e) = session.write_marker(mark) {
                return End::Lost(format!("writing a marker: {e}"));
            }
        }
        if stop {
            return End::Stop;
        }
    }
}

/// Follows (`on`) or unfollows `channel`, writing to the pub/sub connection
/// when the table says so.
fn follow(inner: &Inner, session: &mut Session, channel: &str, on: bool) -> Result<(), String> {
    let write = {
        let mut table = inner.table();
        let write = if on {
            table.follow(channel, true)
        } else {
            table.unfollow(channel, true)
        };
        inner.set_following(table.following());
        write
    };
    if write {
        let verb = if on { "SUBSCRIBE" } else { "UNSUBSCRIBE" };
        session
            .write_sub(&inner.config, verb, &[channel])
            .map_err(|e| format!("writing {verb}: {e}"))?;
    }
    Ok(())
}

/// Sends `requests` as one pipeline and completes each. A request refused
/// with `NOSCRIPT` did not run: the scripts are loaded again and it is sent
/// once more. Err: the session is lost.
fn run_batch(inner: &Inner, session: &mut Session, requests: Vec<Request>) -> Result<(), String> {
    let mut requests = requests;
    for attempt in 0..2 {
        if requests.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for r in &requests {
            pipe.add_command(r.cmd(session, inner));
        }
        let answers: Vec<RedisResult<Value>> = match pipe.query(&mut session.conn) {
            Ok(answers) => answers,
            Err(e) => {
                for r in requests {
                    r.fail(inner, Error::Lost);
                }
                return Err(e.to_string());
            }
        };
        let mut again = Vec::new();
        let mut fault = None;
        for (r, answer) in requests.into_iter().zip(answers) {
            let noscript = matches!(&answer, Err(e) if e.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript));
            if noscript && attempt == 0 {
                again.push(r);
            } else if let Err(why) = r.complete(inner, answer) {
                fault = Some(why);
            }
        }
        if let Some(why) = fault {
            return Err(why);
        }
        if !again.is_empty() {
            session.shas = script::load(&mut session.conn, inner.config.structure)
                .map_err(|e| format!("reloading the scripts: {e}"))?;
        }
        requests = again;
    }
    Ok(())
}

/// The broker is gone: the owner is told, the table forgets subscriptions.
fn lose(inner: &Inner, why: String) {
    inner.table().handle_lost();
    *inner.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    inner.set_up(false);
    add(&inner.counters.downs, 1);
    inner.sink.link_state(false);
}

/// Reconnects with doubling backoff, answering requests meanwhile. None:
/// stopped.
fn reconnect(
    inner: &Arc<Inner>,
    jobs: &Receiver<Job>,
    next_id: &mut u64,
    epoch: &mut String,
) -> Option<Session> {
    let config = &inner.config;
    let mut wait = config.reconnect_min;
    loop {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match jobs.recv_timeout(left) {
                Ok(Job::Stop) | Err(RecvTimeoutError::Disconnected) => return None,
                Ok(job) => down_job(inner, job, Error::Down),
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        wait = (wait * 2).min(config.reconnect_max);
        let id = *next_id;
        *next_id += 1;
        let mut session = match Session::open(id, inner) {
            Ok(s) => s,
            Err(why) => {
                *inner.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                continue;
            }
        };
        let reset = session.epoch != *epoch;
        epoch.clone_from(&session.epoch);
        let channels = inner.table().resubscribe(reset);
        if session.write_sub(config, "SUBSCRIBE", &channels).is_err() {
            session.close();
            inner.table().handle_lost();
            continue;
        }
        inner.set_up(true);
        add(&inner.counters.reconnects, 1);
        inner.sink.link_state(true);
        return Some(session);
    }
}

/// A job while there is no session: requests fail with `error`, follows
/// and unfollows only change the table.
fn down_job(inner: &Inner, job: Job, error: Error) {
    match job {
        Job::Request(r) => r.fail(inner, error),
        Job::Follow(channel) => {
            let mut table = inner.table();
            table.follow(&channel, false);
            inner.set_following(table.following());
        }
        Job::Unfollow(channel) => {
            let mut table = inner.table();
            table.unfollow(&channel, false);
            inner.set_following(table.following());
        }
        Job::Lost(_) | Job::Stop => {}
    }
}
