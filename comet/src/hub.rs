//! The channel hub: ids, bounded backlogs, message lifetimes, and who holds
//! subscribers where.
//!
//! The hub is a plain data structure; a multi-threaded dispatcher wraps it in a
//! lock. It does not know subscribers one by one: it counts them per *group*
//! (a reactor, a worker thread: whatever owns a set of connections), so that a
//! publish is handed once to each group with subscribers on the channel, never
//! once per subscriber across threads.
//!
//! # Channels come and go
//! A channel is made by the first request that names it and removed, with
//! its memory, once nothing of it is left: no subscriber, and every message
//! older than [`Limits::message_ttl`]. A message leaves the backlog at that
//! age. The hub never reads a clock: time is passed in, and something must
//! call [`Hub::expire`] now and then (a dispatcher's housekeeping tick) so
//! that channels nobody touches again still go. At most
//! [`Limits::max_channels`] exist at once; a request that would make one
//! more is refused ([`ChannelLimit`]) and nothing else changes.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::message::Message;

mod channel;
mod mirror;

use channel::Channel;
pub use mirror::Numbered;

/// What a subscriber gets when it joins a channel.
#[derive(Debug)]
pub struct Replay {
    /// The hub's name of the channel; the subscriber keeps this one rather
    /// than a copy of its own, and messages carry the same `Arc`.
    pub channel: Arc<str>,
    /// Backlog messages after `since`, oldest first.
    pub messages: Vec<Arc<Message>>,
    /// Messages after `since` that already left the backlog.
    pub missed: u64,
    /// The channel's last id when the subscriber joined: later messages are new.
    pub last_id: u64,
}

/// The outcome of a publish.
#[derive(Debug)]
pub struct Published<G> {
    pub message: Arc<Message>,
    /// Groups holding subscribers on the channel, each once.
    pub groups: Vec<G>,
    /// Subscribers the message was handed to.
    pub subscribers: u64,
}

/// A request would make a channel past [`Limits::max_channels`]: refused,
/// with nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLimit;

/// Totals for `/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Channels that exist now.
    pub channels: u64,
    pub subscribers: u64,
    pub published: u64,
}

/// How much the hub keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Messages kept per channel for replay.
    pub backlog: usize,
    /// Age at which a message leaves the backlog.
    pub message_ttl: Duration,
    /// Channels that may exist at once.
    pub max_channels: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::from(&Config::default())
    }
}

impl From<&Config> for Limits {
    fn from(c: &Config) -> Limits {
        Limits {
            backlog: c.backlog,
            message_ttl: c.message_ttl,
            max_channels: c.max_channels,
        }
    }
}

/// Channels by name. `G` identifies a group of connections (compared with `==`).
#[derive(Debug)]
pub struct Hub<G> {
    channels: HashMap<Arc<str>, Channel<G>>,
    /// When each channel with something to expire should be looked at next,
    /// earliest first; one live entry per channel (its `expires`), stale
    /// ones skipped when they come out.
    expiry: BinaryHeap<Reverse<(Instant, Arc<str>)>>,
    limits: Limits,
    /// Channels kept whatever is left of them (see `mirror`'s `# Pinned
    /// channels`); empty unless a node follows channels at a broker.
    pinned: HashSet<Arc<str>>,
    subscribers: u64,
    published: u64,
}

impl<G: Clone + PartialEq> Hub<G> {
    pub fn new(limits: Limits) -> Hub<G> {
        Hub {
            channels: HashMap::new(),
            expiry: BinaryHeap::new(),
            limits,
            pinned: HashSet::new(),
            subscribers: 0,
            published: 0,
        }
    }

    /// A hub whose channels keep `backlog` messages each, with the other
    /// limits at their defaults.
    pub fn with_backlog(backlog: usize) -> Hub<G> {
        Hub::new(Limits {
            backlog,
            ..Limits::default()
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The channel named `name`, made if it does not exist and the limit
    /// allows; its expired messages are gone.
    fn channel(&mut self, name: &str, now: Instant) -> Result<&mut Channel<G>, ChannelLimit> {
        if !self.channels.contains_key(name) {
            if self.channels.len() >= self.limits.max_channels {
                return Err(ChannelLimit);
            }
            let name: Arc<str> = Arc::from(name);
            self.channels.insert(name.clone(), Channel::new(name));
        }
        let ch = self.channels.get_mut(name).expect("inserted above");
        ch.trim(self.limits.message_ttl, now);
        Ok(ch)
    }

    /// Adds one subscriber of `group` to `channel` and returns what it missed.
    ///
    /// With `since`, the replay holds the backlog after it and `missed` counts
    /// what is gone.
    ///
    /// # A `since` from an earlier life
    /// Ids are per channel and start at 1 again when the server restarts (or
    /// the channel was removed and made again), so a `since` greater than the
    /// channel's last id cannot name a message of this channel: the client's
    /// ids come from before. Everything this server published on the channel
    /// is then new to that client, so it is replayed whole, exactly as
    /// `since = 0` would be (with `missed` counting what already left the
    /// backlog). Reading it as "now" instead would lose, silently, every
    /// message published between the restart and the client's reconnect.
    pub fn subscribe(
        &mut self,
        channel: &str,
        since: Option<u64>,
        group: &G,
        now: Instant,
    ) -> Result<Replay, ChannelLimit> {
        let ch = self.channel(channel, now)?;
        ch.join(group);
        let replay = ch.replay(since);
        self.subscribers += 1;
        Ok(replay)
    }

    /// Removes one subscriber of `group` from `channel`; the channel goes if
    /// nothing of it is left.
    pub fn unsubscribe(&mut self, channel: &str, group: &G, now: Instant) {
        let ttl = self.limits.message_ttl;
        let Some(ch) = self.channels.get_mut(channel) else {
            return;
        };
        if !ch.leave(group) {
            return;
        }
        self.subscribers -= 1;
        ch.trim(ttl, now);
        if ch.is_removable(ttl, now) && !self.pinned.contains(channel) {
            self.remove(channel);
        }
    }

    /// Gives `data` the channel's next id, keeps it in the backlog, and names
    /// the groups to hand it to.
    pub fn publish(
        &mut self,
        channel: &str,
        data: Box<str>,
        now: Instant,
    ) -> Result<Published<G>, ChannelLimit> {
        let backlog = self.limits.backlog;
        let ch = self.channel(channel, now)?;
        let message = ch.publish(data, backlog, now);
        let published = Published {
            message,
            groups: ch.groups.iter().map(|(g, _)| g.clone()).collect(),
            subscribers: ch.subscribers(),
        };
        self.arm_expiry(channel, now);
        self.published += 1;
        Ok(published)
    }

    /// Gives `channel` an entry in the expiry heap if it has none: its
    /// oldest message (or, with no backlog, its last one) is due to expire.
    fn arm_expiry(&mut self, channel: &str, now: Instant) {
        let ttl = self.limits.message_ttl;
        let Some(ch) = self.channels.get_mut(channel) else {
            return;
        };
        if ch.expires.is_some() {
            return;
        }
        let Some(at) = ch.next_expiry(ttl) else {
            return;
        };
        let at = at.max(now);
        ch.expires = Some(at);
        self.expiry.push(Reverse((at, ch.name.clone())));
    }

    /// Expires what is due at `now`: messages past their lifetime leave
    /// their backlogs, and channels left with nothing are removed. Looks at
    /// no more than `budget` channels, so that a caller holding a lock can
    /// let go between batches; returns how many it looked at (`budget`
    /// means there may be more).
    pub fn expire(&mut self, now: Instant, budget: usize) -> usize {
        let ttl = self.limits.message_ttl;
        let mut seen = 0;
        while seen < budget {
            match self.expiry.peek() {
                Some(Reverse((at, _))) if *at <= now => {}
                _ => break,
            }
            let Some(Reverse((at, name))) = self.expiry.pop() else {
                break;
            };
            seen += 1;
            let Some(ch) = self.channels.get_mut(&name) else {
                continue;
            };
            if ch.expires != Some(at) {
                continue;
            }
            ch.expires = None;
            ch.trim(ttl, now);
            if ch.is_removable(ttl, now) && !self.pinned.contains(&name) {
                self.remove(&name);
            } else if let Some(next) = ch.next_expiry(ttl).filter(|&t| t > now) {
                ch.expires = Some(next);
                self.expiry.push(Reverse((next, name)));
            }
        }
        if self.expiry.capacity() > 64 && self.expiry.len() < self.expiry.capacity() / 4 {
            self.expiry.shrink_to(self.expiry.len() * 2);
        }
        seen
    }

    /// The earliest time [`Hub::expire`] has something to do, if any.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.peek().map(|Reverse((at, _))| *at)
    }

    fn remove(&mut self, name: &str) {
        self.channels.remove(name);
        // A million channels come and go: give the table back as they do.
        let cap = self.channels.capacity();
        if cap > 64 && self.channels.len() < cap / 4 {
            self.channels.shrink_to(self.channels.len() * 2);
        }
    }

    pub fn stats(&self) -> HubStats {
        HubStats {
            channels: self.channels.len() as u64,
            subscribers: self.subscribers,
            published: self.published,
        }
    }
}

#[cfg(test)]
mod tests;
