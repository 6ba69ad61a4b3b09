//! The hub as a node's copy of channels numbered elsewhere: when several
//! servers share one broker, the broker gives every message its id and
//! keeps the shared backlog, and each node's hub holds a *mirror* of the
//! channels it follows: the same ids, the same capped backlog, aged by
//! when the broker took each message. Subscribers join and replay from the
//! mirror exactly as from a hub that numbers its own messages.
//!
//! # A mirror stays a run
//! A mirror's backlog is always consecutive ids ending at the channel's
//! last id, as a hub's own is: a message that skips ids (what came between
//! left the broker's backlog before this node could read it) empties the
//! backlog before it is kept. So a `since` before the skip is counted as
//! missed by [`Hub::subscribe`], never answered with the ids on either side
//! of a hole as if nothing were between them.
//!
//! # Pinned channels
//! A channel the node follows is *pinned*: it is never removed, even with
//! no subscriber and nothing left in its backlog, because its last id is
//! what a later subscriber's replay and every missed count are measured
//! from. Unpinning lets it go as any other channel.

use std::sync::Arc;
use std::time::Instant;

use super::{ChannelLimit, Hub, Published};
use crate::message::Message;

/// A message of a mirrored channel, as the broker numbered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    pub id: u64,
    pub data: Box<str>,
    /// When the broker took it (on this process's clock).
    pub at: Instant,
}

impl<G: Clone + PartialEq> Hub<G> {
    /// Makes `channel` exist (a subscriber is about to wait for it to be
    /// followed), within the channel limit.
    pub fn reserve(&mut self, channel: &str, now: Instant) -> Result<(), ChannelLimit> {
        self.channel(channel, now).map(|_| ())
    }

    /// Keeps `channel` from being removed while a node follows it (see
    /// `# Pinned channels`).
    pub fn pin(&mut self, channel: &str) {
        if let Some(ch) = self.channels.get(channel) {
            self.pinned.insert(ch.name.clone());
        }
    }

    /// Lets `channel` go again; it is removed now if nothing of it is left.
    pub fn unpin(&mut self, channel: &str, now: Instant) {
        if !self.pinned.remove(channel) {
            return;
        }
        let ttl = self.limits.message_ttl;
        if self
            .channels
            .get(channel)
            .is_some_and(|ch| ch.is_removable(ttl, now))
        {
            self.remove(channel);
        }
        if self.pinned.is_empty() && self.pinned.capacity() > 64 {
            self.pinned = Default::default();
        }
    }

    /// Whether `channel` is pinned.
    pub fn is_pinned(&self, channel: &str) -> bool {
        self.pinned.contains(channel)
    }

    /// Keeps a message that the broker numbered `id`, and names the groups
    /// to hand it to. `None` when `id` is not newer than the channel's last
    /// id (a copy already kept). A skip empties the backlog first (see
    /// `# A mirror stays a run`).
    pub fn deliver(
        &mut self,
        channel: &str,
        message: Numbered,
        now: Instant,
    ) -> Result<Option<Published<G>>, ChannelLimit> {
        let (backlog, ttl) = (self.limits.backlog, self.limits.message_ttl);
        let ch = self.channel(channel, now)?;
        if message.id <= ch.last_id {
            return Ok(None);
        }
        let kept = ch.insert(message.id, message.data, backlog, message.at);
        ch.trim(ttl, now);
        let published = Published {
            message: kept,
            groups: ch.groups.iter().map(|(g, _)| g.clone()).collect(),
            subscribers: ch.subscribers(),
        };
        self.arm_expiry(channel, now);
        self.published += 1;
        Ok(Some(published))
    }

    /// Makes `channel`'s mirror the broker's backlog as read now: its ids
    /// and messages replace whatever the hub held (a first follow, or a
    /// broker that lost its data). Returns the messages kept.
    pub fn replace(
        &mut self,
        channel: &str,
        messages: Vec<Numbered>,
        last_id: u64,
        now: Instant,
    ) -> Result<Vec<Arc<Message>>, ChannelLimit> {
        let (backlog, ttl) = (self.limits.backlog, self.limits.message_ttl);
        let ch = self.channel(channel, now)?;
        ch.forget_ids();
        let mut kept = Vec::with_capacity(messages.len());
        for m in messages {
            if m.id > ch.last_id {
                kept.push(ch.insert(m.id, m.data, backlog, m.at));
            }
        }
        // Messages that left the broker's backlog still count: the next id
        // is after the broker's last, whatever this read held.
        if last_id > ch.last_id {
            ch.insert_gap(last_id);
        }
        ch.trim(ttl, now);
        self.arm_expiry(channel, now);
        Ok(kept)
    }

    /// Moves `channel`'s last id on to `last_id` when it is behind (what
    /// came between left the broker's backlog unread); the backlog, no
    /// longer a run up to the last id, is emptied (see `# A mirror stays a
    /// run`).
    pub fn advance(&mut self, channel: &str, last_id: u64) {
        if let Some(ch) = self.channels.get_mut(channel) {
            ch.insert_gap(last_id);
        }
    }

    /// The groups holding subscribers on `channel`, each once.
    pub fn groups(&self, channel: &str) -> Vec<G> {
        self.channels
            .get(channel)
            .map(|ch| ch.groups.iter().map(|(g, _)| g.clone()).collect())
            .unwrap_or_default()
    }

    /// Subscribers on `channel` now.
    pub fn subscribers_of(&self, channel: &str) -> u64 {
        self.channels.get(channel).map_or(0, |ch| ch.subscribers())
    }

    /// The last id of `channel` (0 when it does not exist).
    pub fn last_id(&self, channel: &str) -> u64 {
        self.channels.get(channel).map_or(0, |ch| ch.last_id)
    }
}
