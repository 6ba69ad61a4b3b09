//! The hub as one connection of one group sees it: the dispatchers'
//! [`comet::Backend`], so that every dispatcher answers a connection's events
//! with the same glue as the core's tests ([`comet::glue::drain`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use comet::{Accepted, Answer, Backend, Conn, Refusal, Replay};

use crate::deferred::Deferred;
use crate::group::Group;
use crate::local::LocalSubs;
use crate::shared::Shared;

/// One connection's view of the shared hub: its group, (for a group of
/// many connections) the group's own map and the connection's key in it,
/// which the backend keeps up to date as the connection joins and leaves,
/// and the token an answer given later finds it by ([`crate::deferred`]).
pub struct GroupBackend<'a> {
    shared: &'a Shared,
    group: &'a Group,
    local: Option<(&'a mut LocalSubs, usize)>,
    token: u64,
}

impl<'a> GroupBackend<'a> {
    pub fn new(
        shared: &'a Shared,
        group: &'a Group,
        local: Option<(&'a mut LocalSubs, usize)>,
    ) -> GroupBackend<'a> {
        GroupBackend {
            shared,
            group,
            local,
            token: 0,
        }
    }

    /// The connection's token in its group (0 when the group is the
    /// connection alone).
    pub fn token(mut self, token: u64) -> GroupBackend<'a> {
        self.token = token;
        self
    }

    /// Answers every event `conn` raised (see [`comet::glue::drain`]).
    pub fn drain(mut self, conn: &mut Conn, now: Instant) {
        comet::glue::drain(conn, &mut self, now);
    }

    /// Hands `conn` an answer given later than its event, if it still waits
    /// for that one, then answers every event it raised.
    pub fn answer(mut self, conn: &mut Conn, answer: Deferred, now: Instant) {
        hand_answer(&mut self, conn, answer, now);
        self.drain(conn, now);
    }
}

/// Hands `conn` an answer given later than its event, if it still waits for
/// that one; a subscribe's answer asks `backend` again (see
/// [`Deferred::Subscribe`]). The caller then answers the events it raised.
pub fn hand_answer(backend: &mut impl Backend, conn: &mut Conn, answer: Deferred, now: Instant) {
    if !conn.awaits_answer() {
        return;
    }
    match answer {
        Deferred::Subscribe { channel, since } => {
            let asked = conn.subscription().is_some_and(|(c, _)| **c == *channel);
            if asked {
                match backend.subscribe(&channel, since, now) {
                    Answer::Now(Ok(replay)) => conn.handle_subscribed(replay, now),
                    Answer::Now(Err(refusal)) => conn.handle_refused(refusal, now),
                    Answer::Later => {}
                }
            }
        }
        Deferred::Published(a) => conn.handle_published(a.id, a.subscribers, now),
        Deferred::Refused(refusal) => conn.handle_refused(refusal, now),
    }
}

impl Backend for GroupBackend<'_> {
    fn subscribe(
        &mut self,
        channel: &Arc<str>,
        since: Option<u64>,
        now: Instant,
    ) -> Answer<Result<Replay, Refusal>> {
        let replay = match self
            .shared
            .subscribe(channel, since, self.group, self.token, now)
        {
            Answer::Now(Ok(replay)) => replay,
            other => return other,
        };
        if let Some((local, key)) = &mut self.local {
            // Under the hub's name: the map shares the hub's allocation.
            local.update(&replay.channel, *key, true);
        }
        let replayed = replay.messages.len() as u64;
        self.shared
            .counters
            .delivered
            .fetch_add(replayed, Ordering::Relaxed);
        Answer::Now(Ok(replay))
    }

    fn unsubscribe(&mut self, channel: &Arc<str>, now: Instant) {
        if let Some((local, key)) = &mut self.local {
            local.update(channel, *key, false);
        }
        self.shared.unsubscribe(channel, self.group, now);
    }

    fn publish(
        &mut self,
        channel: &Arc<str>,
        data: Box<str>,
        now: Instant,
    ) -> Answer<Result<Accepted, Refusal>> {
        self.shared
            .publish(channel, data, self.group, self.token, now)
    }

    fn stats(&mut self) -> String {
        self.shared.stats_json()
    }

    fn idle_timeout(&mut self) {
        self.shared
            .counters
            .closed_idle
            .fetch_add(1, Ordering::Relaxed);
    }

    fn unresponsive(&mut self) {
        self.shared
            .counters
            .dropped_unresponsive
            .fetch_add(1, Ordering::Relaxed);
    }
}
