//! One channel of the hub: its ids, its backlog with the time each message
//! was published, and its subscribers counted per group.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::message::Message;

use super::Replay;

#[derive(Debug)]
pub(super) struct Channel<G> {
    /// The same `Arc` as the map's key, shared by every message of the
    /// channel and adopted by every subscriber's `Conn`.
    pub(super) name: Arc<str>,
    pub(super) last_id: u64,
    /// When the last message was published: ids must outlive it by the
    /// message lifetime even when no backlog is kept (see `is_removable`).
    last_published: Option<Instant>,
    backlog: VecDeque<(Instant, Arc<Message>)>,
    /// Subscriber count per group; a handful of entries, so a Vec beats a map.
    pub(super) groups: Vec<(G, u64)>,
    /// The deadline of this channel's entry in the hub's expiry heap, if it
    /// has one; an entry whose time differs is stale.
    pub(super) expires: Option<Instant>,
}

impl<G: Clone + PartialEq> Channel<G> {
    pub(super) fn new(name: Arc<str>) -> Channel<G> {
        Channel {
            name,
            last_id: 0,
            last_published: None,
            backlog: VecDeque::new(),
            groups: Vec::new(),
            expires: None,
        }
    }

    /// Drops the backlog messages published `ttl` or longer before `now`.
    pub(super) fn trim(&mut self, ttl: Duration, now: Instant) {
        while self.backlog.front().is_some_and(|(at, _)| *at + ttl <= now) {
            self.backlog.pop_front();
        }
        if self.backlog.is_empty() && self.backlog.capacity() > 0 {
            self.backlog = VecDeque::new();
        }
    }

    /// Gives the next id to `data`, keeps it in a backlog of at most
    /// `backlog` messages, and returns it.
    pub(super) fn publish(&mut self, data: Box<str>, backlog: usize, now: Instant) -> Arc<Message> {
        self.last_id += 1;
        self.last_published = Some(now);
        let message = Arc::new(Message::new(self.name.clone(), self.last_id, data));
        if backlog > 0 {
            if self.backlog.len() == backlog {
                self.backlog.pop_front();
            } else if self.backlog.capacity() == 0 {
                // A first push would make room for four; most channels of
                // a million-channel server never hold a second message.
                self.backlog.reserve_exact(1);
            }
            self.backlog.push_back((now, message.clone()));
        }
        message
    }

    /// Keeps `data` under `id`, given elsewhere (a broker), published at
    /// `at`: see [`super::Hub::deliver`]. The caller has checked that `id`
    /// is newer than `last_id`; a jump past `last_id + 1` empties the
    /// backlog first, so that it stays a run of consecutive ids ending at
    /// `last_id` (what `replay` counts missed messages by).
    pub(super) fn insert(
        &mut self,
        id: u64,
        data: Box<str>,
        backlog: usize,
        at: Instant,
    ) -> Arc<Message> {
        if id != self.last_id + 1 {
            self.backlog = VecDeque::new();
        }
        self.last_id = id;
        self.last_published = Some(self.last_published.map_or(at, |t| t.max(at)));
        let message = Arc::new(Message::new(self.name.clone(), id, data));
        if backlog > 0 {
            if self.backlog.len() == backlog {
                self.backlog.pop_front();
            }
            self.backlog.push_back((at, message.clone()));
        }
        message
    }

    /// Moves the last id on to `id` without a message (those between left
    /// the broker's backlog unread): the backlog no longer ends at the last
    /// id, so it is emptied.
    pub(super) fn insert_gap(&mut self, id: u64) {
        if id > self.last_id {
            self.last_id = id;
            self.backlog = VecDeque::new();
        }
    }

    /// Forgets every id: the next message may be numbered from 1 again.
    pub(super) fn forget_ids(&mut self) {
        self.last_id = 0;
        self.backlog = VecDeque::new();
    }

    /// What a subscriber joining with `since` gets (see [`super::Hub::subscribe`]).
    pub(super) fn replay(&self, since: Option<u64>) -> Replay {
        let mut replay = Replay {
            channel: self.name.clone(),
            messages: Vec::new(),
            missed: 0,
            last_id: self.last_id,
        };
        if let Some(since) = since {
            // See `# A since from an earlier life` on `Hub::subscribe`.
            let since = if since > self.last_id { 0 } else { since };
            let first = self
                .backlog
                .front()
                .map_or(self.last_id + 1, |(_, m)| m.id());
            replay.missed = first.saturating_sub(since + 1);
            replay.messages = self
                .backlog
                .iter()
                .filter(|(_, m)| m.id() > since)
                .map(|(_, m)| m.clone())
                .collect();
        }
        replay
    }

    pub(super) fn join(&mut self, group: &G) {
        match self.groups.iter_mut().find(|(g, _)| g == group) {
            Some((_, n)) => *n += 1,
            None => self.groups.push((group.clone(), 1)),
        }
    }

    /// Removes one subscriber of `group`; returns whether there was one.
    pub(super) fn leave(&mut self, group: &G) -> bool {
        let Some(i) = self.groups.iter().position(|(g, _)| g == group) else {
            return false;
        };
        self.groups[i].1 -= 1;
        if self.groups[i].1 == 0 {
            self.groups.swap_remove(i);
            // A thread dispatcher is a group per connection: after a storm
            // this list had room for ten thousand (384 KiB).
            let cap = self.groups.capacity();
            if cap > 64 && self.groups.len() < cap / 4 {
                self.groups.shrink_to(self.groups.len() * 2);
            }
        }
        true
    }

    pub(super) fn subscribers(&self) -> u64 {
        self.groups.iter().map(|(_, n)| n).sum()
    }

    /// When something of this channel next expires: its oldest backlog
    /// message, or (with no backlog) the lifetime of its last message.
    pub(super) fn next_expiry(&self, ttl: Duration) -> Option<Instant> {
        match self.backlog.front() {
            Some((at, _)) => Some(*at + ttl),
            None => self.last_published.map(|at| at + ttl),
        }
    }

    /// No subscriber, an empty backlog, and no message younger than `ttl`:
    /// nothing of the channel is left to keep. Its ids go with it, which a
    /// later subscriber's `since` reads as an earlier life (see
    /// `Hub::subscribe`).
    pub(super) fn is_removable(&self, ttl: Duration, now: Instant) -> bool {
        self.groups.is_empty()
            && self.backlog.is_empty()
            && self.last_published.is_none_or(|at| at + ttl <= now)
    }
}
