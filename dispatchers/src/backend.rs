//! The hub as one connection of one group sees it: the dispatchers'
//! [`comet::Backend`], so that every dispatcher answers a connection's events
//! with the same glue as the core's tests ([`comet::glue::drain`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use comet::{Accepted, Answer, Backend, Conn, Refusal, Replay};

use crate::group::Group;
use crate::local::LocalSubs;
use crate::shared::Shared;

/// One connection's view of the shared hub: its group, and (for a group of
/// many connections) the group's own map and the connection's key in it,
/// which the backend keeps up to date as the connection joins and leaves.
pub struct GroupBackend<'a> {
    shared: &'a Shared,
    group: &'a Group,
    local: Option<(&'a mut LocalSubs, usize)>,
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
        }
    }

    /// Answers every event `conn` raised (see [`comet::glue::drain`]).
    pub fn drain(mut self, conn: &mut Conn, now: Instant) {
        comet::glue::drain(conn, &mut self, now);
    }
}

impl Backend for GroupBackend<'_> {
    fn subscribe(
        &mut self,
        channel: &Arc<str>,
        since: Option<u64>,
        now: Instant,
    ) -> Answer<Result<Replay, Refusal>> {
        let replay = match self.shared.subscribe(channel, since, self.group, now) {
            Ok(replay) => replay,
            Err(_) => return Answer::Now(Err(Refusal::ChannelLimit)),
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
        Answer::Now(self.shared.publish(channel, data, now))
    }

    fn stats(&mut self) -> String {
        self.shared.stats_json()
    }

    fn unresponsive(&mut self) {
        self.shared
            .counters
            .dropped_unresponsive
            .fetch_add(1, Ordering::Relaxed);
    }
}
