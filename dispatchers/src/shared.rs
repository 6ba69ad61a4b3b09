//! What every thread of a dispatcher shares: the hub behind a lock, the
//! `/stats` counters, the housekeeping that expires channels and gives
//! memory back, and, with a broker, the node that follows channels there
//! ([`crate::cluster`]).
//!
//! # Closing publishing
//! A stop begins with [`Shared::stop_publishing`], which raises a flag with
//! the hub locked; [`Shared::publish`] checks it with the hub locked too. So
//! once `stop_publishing` has returned, every publish answered `202` has its
//! message in the inboxes already, and none will be added: a group that
//! drains its inbox after that hands every accepted message on.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use comet::{Accepted, Answer, ChannelLimit, Config, Conn, Hub, Limits, Message, Refusal, Replay};

use crate::cluster::{Follows, Node};
use crate::counters::Counters;
use crate::deferred::Waiter;
use crate::group::Group;
use crate::memory::Trim;
use crate::Options;

/// Channels one housekeeping step looks at with the hub locked, so that a
/// million channels expiring at once do not hold publishing up for long.
const EXPIRE_BATCH: usize = 4096;

/// What the hub lock guards: the hub, and which channels the node follows
/// at the broker (empty without one), so that the two change together.
pub(crate) struct State {
    pub hub: Hub<Group>,
    /// A subscriber waiting for a follow, with the `since` it asked with.
    pub follows: Follows<(Waiter, Option<u64>)>,
}

/// Server-wide state, shared by every thread of a dispatcher.
pub struct Shared {
    pub config: Arc<Config>,
    pub counters: Counters,
    /// Connections accepted by each reactor or ring, in order (empty for
    /// the thread dispatchers): how the kernel spread them.
    pub accepted_per_loop: Box<[AtomicU64]>,
    /// The dispatcher's name, as in `--dispatcher`.
    pub name: &'static str,
    /// The dispatcher's settings, for `/stats`.
    pub settings: serde_json::Value,
    /// Behind an `Arc`: the broker link's threads reach the hub too.
    state: Arc<Mutex<State>>,
    /// This server as one node of several, when it has a broker.
    node: Option<Node>,
    /// Publishing has stopped (see `# Closing publishing`). Read and written
    /// with the hub locked only, so the lock orders it.
    publishing_closed: AtomicBool,
    started: Instant,
    /// Trims the heap after a drop of open connections...
    conn_trim: Trim,
    /// ... and after a drop of live channels.
    channel_trim: Trim,
}

impl Shared {
    /// The state of dispatcher `name` with `loops` reactors or rings (0 for
    /// a thread dispatcher).
    pub fn new(
        config: Config,
        name: &'static str,
        settings: serde_json::Value,
        loops: usize,
    ) -> Shared {
        let state = State {
            hub: Hub::new(Limits::from(&config)),
            follows: Follows::default(),
        };
        Shared {
            state: Arc::new(Mutex::new(state)),
            node: None,
            publishing_closed: AtomicBool::new(false),
            config: Arc::new(config),
            counters: Counters::default(),
            accepted_per_loop: (0..loops).map(|_| AtomicU64::new(0)).collect(),
            name,
            settings,
            started: Instant::now(),
            conn_trim: Trim::default(),
            channel_trim: Trim::default(),
        }
    }

    /// The state of dispatcher `name` as `opts` ask: with a node, when
    /// `opts.broker` names a broker (connected now: an unreachable one is
    /// an error naming its URL). Its backlog and message lifetime are the
    /// server's, so that every mirror holds what the shared backlog holds.
    pub fn for_options(
        opts: &Options,
        name: &'static str,
        settings: serde_json::Value,
        loops: usize,
    ) -> io::Result<Shared> {
        let mut shared = Shared::new(opts.config.clone(), name, settings, loops);
        if let Some(broker) = &opts.broker {
            let mut config = broker.clone();
            config.backlog = opts.config.backlog;
            config.message_ttl = opts.config.message_ttl;
            let node = Node::connect(config, shared.state.clone())
                .map_err(|e| io::Error::other(e.to_string()))?;
            shared.node = Some(node);
        }
        Ok(shared)
    }

    /// The node, when this server has a broker.
    pub fn node(&self) -> Option<&Node> {
        self.node.as_ref()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the hub leaves it consistent enough to go on:
        // every method mutates it in one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a subscriber of `group` (known there by `token`) to `channel`.
    /// With a broker, a channel this node does not follow yet is answered
    /// later (see [`crate::cluster`]): the answer is posted to `group`.
    pub fn subscribe(
        &self,
        channel: &Arc<str>,
        since: Option<u64>,
        group: &Group,
        token: u64,
        now: Instant,
    ) -> Answer<Result<Replay, Refusal>> {
        self.subscribe_answered_at(channel, since, group, group, token, now)
    }

    /// [`Shared::subscribe`] for a dispatcher whose fan-out group is not
    /// where its connection waits: `group` joins the hub, an answer given
    /// later is posted to `answers` (tokio: a channel's broadcast joins, the
    /// connection's own answer path hears the answer).
    pub fn subscribe_answered_at(
        &self,
        channel: &Arc<str>,
        since: Option<u64>,
        group: &Group,
        answers: &Group,
        token: u64,
        now: Instant,
    ) -> Answer<Result<Replay, Refusal>> {
        let mut st = self.state();
        if let Some(node) = &self.node {
            if let Some(answer) = node.subscribe(&mut st, channel, since, answers, token, now) {
                return answer;
            }
        }
        Answer::Now(self.join(&mut st, channel, since, group, now))
    }

    fn join(
        &self,
        st: &mut State,
        channel: &Arc<str>,
        since: Option<u64>,
        group: &Group,
        now: Instant,
    ) -> Result<Replay, Refusal> {
        let replay = st.hub.subscribe(channel, since, group, now);
        self.channel_trim.opened(st.hub.stats().channels);
        replay.map_err(|ChannelLimit| Refusal::ChannelLimit)
    }

    pub fn unsubscribe(&self, channel: &str, group: &Group, now: Instant) {
        let mut st = self.state();
        st.hub.unsubscribe(channel, group, now);
        if let Some(node) = &self.node {
            node.left(&mut st, channel, now);
        }
    }

    /// Publishes and hands the message to every group with subscribers on
    /// the channel; refused once publishing has stopped, or when it would
    /// make a channel past the limit. With a broker, the broker numbers it
    /// and the answer is posted to `group` for `token` later.
    pub fn publish(
        &self,
        channel: &Arc<str>,
        data: Box<str>,
        group: &Group,
        token: u64,
        now: Instant,
    ) -> Answer<Result<Accepted, Refusal>> {
        match &self.node {
            Some(node) => {
                let st = self.state();
                if self.publishing_closed.load(Ordering::Relaxed) {
                    return Answer::Now(Err(Refusal::Stopping));
                }
                drop(st);
                node.publish(channel, &data, group, token)
            }
            None => Answer::Now(self.publish_here(channel, data, now)),
        }
    }

    /// A publish of a lone server (no broker): numbered by the hub and
    /// handed to its groups at once.
    pub fn publish_here(
        &self,
        channel: &Arc<str>,
        data: Box<str>,
        now: Instant,
    ) -> Result<Accepted, Refusal> {
        debug_assert!(self.node.is_none(), "a node publishes through the broker");
        let mut st = self.state();
        if self.publishing_closed.load(Ordering::Relaxed) {
            return Err(Refusal::Stopping);
        }
        let p = match st.hub.publish(channel, data, now) {
            Ok(p) => p,
            Err(ChannelLimit) => return Err(Refusal::ChannelLimit),
        };
        for g in &p.groups {
            g.0.deliver(&p.message);
        }
        self.channel_trim.opened(st.hub.stats().channels);
        Ok(Accepted {
            id: p.message.id(),
            subscribers: p.subscribers,
        })
    }

    /// Refuses every publish from now on. When this returns, a publish that
    /// was accepted has its message in every inbox it goes to (with a
    /// broker: every publish the broker took is in its backlog, and reaches
    /// the subscribers through the link).
    pub fn stop_publishing(&self) {
        let _st = self.state();
        self.publishing_closed.store(true, Ordering::Relaxed);
    }

    /// The `/stats` document.
    pub fn stats_json(&self) -> String {
        let st = self.state();
        let h = st.hub.stats();
        let broker = self.node.as_ref().map(|n| n.stats_json(&st));
        drop(st);
        let c = &self.counters;
        let mut doc = serde_json::json!({
            "dispatcher": self.name,
            "settings": self.settings,
            "connections": c.connections.load(Ordering::Relaxed),
            "accepted": c.accepted.load(Ordering::Relaxed),
            "refused": c.refused.load(Ordering::Relaxed),
            "subscribers": h.subscribers,
            "channels": h.channels,
            "published": h.published,
            "delivered": c.delivered.load(Ordering::Relaxed),
            "dropped_slow": c.dropped_slow.load(Ordering::Relaxed),
            "dropped_unresponsive": c.dropped_unresponsive.load(Ordering::Relaxed),
            "closed_idle": c.closed_idle.load(Ordering::Relaxed),
            "uptime_secs": self.started.elapsed().as_secs_f64(),
            "config": {
                "heartbeat_secs": self.config.heartbeat.as_secs_f64(),
                "poll_timeout_secs": self.config.poll_timeout.as_secs_f64(),
                "backlog": self.config.backlog,
                "message_ttl_secs": self.config.message_ttl.as_secs_f64(),
                "max_channels": self.config.max_channels,
                "max_message": self.config.max_message,
                "max_queue": self.config.max_queue,
                "publish_token": self.config.publish_token.is_some(),
                "allow_origin": self.config.allow_origin,
            },
        });
        if let (Some(b), Some(obj)) = (broker, doc.as_object_mut()) {
            obj.insert("broker".into(), b);
        }
        doc.to_string()
    }

    /// Hands `message` to one subscriber and counts it; a subscriber dropped
    /// as too slow is counted too. The caller answers events afterwards.
    pub fn deliver(&self, conn: &mut Conn, message: &Arc<Message>, now: Instant) {
        if conn.handle_message(message, now) {
            self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        }
        if conn.is_dropped() {
            self.counters.dropped_slow.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The work of a housekeeping tick (about once a second, from every
    /// reactor, ring or hang-up watcher; cheap when there is nothing to do):
    /// expires messages and channels due at `now`, a batch at a time, and
    /// gives freed heap memory back to the system if open connections or
    /// live channels fell a lot since their peak (see [`crate::memory`]);
    /// returns whether it trimmed.
    pub fn housekeeping(&self, now: Instant) -> bool {
        if let Some(node) = &self.node {
            node.sweep(&mut self.state(), now);
        }
        let channels = loop {
            let mut st = self.state();
            let seen = st.hub.expire(now, EXPIRE_BATCH);
            if seen < EXPIRE_BATCH {
                break st.hub.stats().channels;
            }
        };
        let open = self.counters.connections.load(Ordering::Relaxed);
        // Both are asked each tick: each counts down its own settling trims.
        self.conn_trim.maybe_trim(open) | self.channel_trim.maybe_trim(channels)
    }

    /// A reactor or ring (`loop_index`), or a thread acceptor (`None`), took a connection.
    pub fn conn_opened(&self, loop_index: Option<usize>) {
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = loop_index.and_then(|i| self.accepted_per_loop.get(i)) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        let open = self.counters.connections.fetch_add(1, Ordering::Relaxed) + 1;
        self.conn_trim.opened(open);
    }

    pub fn conn_closed(&self) {
        self.counters.connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn conn_refused(&self) {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
    }
}
