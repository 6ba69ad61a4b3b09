//! The channel hub: ids, bounded backlogs, and who holds subscribers where.
//!
//! The hub is a plain data structure; a multi-threaded dispatcher wraps it in a
//! lock. It does not know subscribers one by one: it counts them per *group*
//! (a reactor, a worker thread: whatever owns a set of connections), so that a
//! publish is handed once to each group with subscribers on the channel, never
//! once per subscriber across threads.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::message::Message;

/// What a subscriber gets when it joins a channel.
#[derive(Debug, Default)]
pub struct Replay {
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

#[derive(Debug)]
struct Channel<G> {
    /// The same `Arc` as the map's key, shared by every message of the channel.
    name: Arc<str>,
    last_id: u64,
    backlog: VecDeque<Arc<Message>>,
    /// Subscriber count per group; a handful of entries, so a Vec beats a map.
    groups: Vec<(G, u64)>,
}

/// Totals for `/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    pub channels: u64,
    pub subscribers: u64,
    pub published: u64,
}

/// Channels by name. `G` identifies a group of connections (compared with `==`).
#[derive(Debug)]
pub struct Hub<G> {
    channels: HashMap<Arc<str>, Channel<G>>,
    backlog: usize,
    stats: HubStats,
}

impl<G: Clone + PartialEq> Hub<G> {
    /// A hub whose channels keep `backlog` messages each.
    pub fn new(backlog: usize) -> Hub<G> {
        Hub {
            channels: HashMap::new(),
            backlog,
            stats: HubStats::default(),
        }
    }

    fn channel(&mut self, name: &str) -> &mut Channel<G> {
        if !self.channels.contains_key(name) {
            self.stats.channels += 1;
            let name: Arc<str> = Arc::from(name);
            self.channels.insert(
                name.clone(),
                Channel {
                    name,
                    last_id: 0,
                    backlog: VecDeque::new(),
                    groups: Vec::new(),
                },
            );
        }
        self.channels.get_mut(name).expect("inserted above")
    }

    /// Adds one subscriber of `group` to `channel` and returns what it missed.
    ///
    /// With `since`, the replay holds the backlog after it and `missed` counts
    /// what is gone.
    ///
    /// # A `since` from an earlier life
    /// Ids are per channel and start at 1 again when the server restarts, so a
    /// `since` greater than the channel's last id cannot name a message of this
    /// server: the client's ids come from before a restart. Everything this
    /// server published on the channel is then new to that client, so it is
    /// replayed whole, exactly as `since = 0` would be (with `missed` counting
    /// what already left the backlog). Reading it as "now" instead would lose,
    /// silently, every message published between the restart and the
    /// client's reconnect.
    pub fn subscribe(&mut self, channel: &str, since: Option<u64>, group: &G) -> Replay {
        self.stats.subscribers += 1;
        let ch = self.channel(channel);
        match ch.groups.iter_mut().find(|(g, _)| g == group) {
            Some((_, n)) => *n += 1,
            None => ch.groups.push((group.clone(), 1)),
        }
        let mut replay = Replay {
            last_id: ch.last_id,
            ..Replay::default()
        };
        if let Some(since) = since {
            // See `# A since from an earlier life`.
            let since = if since > ch.last_id { 0 } else { since };
            let first = ch.backlog.front().map_or(ch.last_id + 1, |m| m.id());
            replay.missed = first.saturating_sub(since + 1);
            replay.messages = ch
                .backlog
                .iter()
                .filter(|m| m.id() > since)
                .cloned()
                .collect();
        }
        replay
    }

    /// Removes one subscriber of `group` from `channel`.
    pub fn unsubscribe(&mut self, channel: &str, group: &G) {
        let Some(ch) = self.channels.get_mut(channel) else {
            return;
        };
        if let Some(i) = ch.groups.iter().position(|(g, _)| g == group) {
            self.stats.subscribers -= 1;
            ch.groups[i].1 -= 1;
            if ch.groups[i].1 == 0 {
                ch.groups.swap_remove(i);
                // A thread dispatcher is a group per connection: after a
                // storm this list had room for ten thousand (384 KiB).
                let cap = ch.groups.capacity();
                if cap > 64 && ch.groups.len() < cap / 4 {
                    ch.groups.shrink_to(ch.groups.len() * 2);
                }
            }
        }
    }

    /// Gives `data` the channel's next id, keeps it in the backlog, and names
    /// the groups to hand it to.
    pub fn publish(&mut self, channel: &str, data: Box<str>) -> Published<G> {
        self.stats.published += 1;
        let backlog = self.backlog;
        let ch = self.channel(channel);
        ch.last_id += 1;
        let message = Arc::new(Message::new(ch.name.clone(), ch.last_id, data));
        if backlog > 0 {
            if ch.backlog.len() == backlog {
                ch.backlog.pop_front();
            }
            ch.backlog.push_back(message.clone());
        }
        Published {
            message,
            groups: ch.groups.iter().map(|(g, _)| g.clone()).collect(),
            subscribers: ch.groups.iter().map(|(_, n)| n).sum(),
        }
    }

    pub fn stats(&self) -> HubStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(r: &Replay) -> Vec<u64> {
        r.messages.iter().map(|m| m.id()).collect()
    }

    #[test]
    fn ids_backlog_and_missed() {
        let mut hub: Hub<u32> = Hub::new(3);
        for i in 1..=5 {
            let p = hub.publish("a", format!("m{i}").into());
            assert_eq!(p.message.id(), i);
            assert_eq!(p.subscribers, 0);
        }
        // Backlog holds 3, 4, 5.
        let r = hub.subscribe("a", Some(0), &1);
        assert_eq!((ids(&r), r.missed, r.last_id), (vec![3, 4, 5], 2, 5));
        let r = hub.subscribe("a", Some(3), &1);
        assert_eq!((ids(&r), r.missed), (vec![4, 5], 0));
        let r = hub.subscribe("a", Some(5), &1);
        assert_eq!((ids(&r), r.missed), (vec![], 0));
        let r = hub.subscribe("a", None, &1);
        assert_eq!((ids(&r), r.missed, r.last_id), (vec![], 0, 5));
        // From the future (an earlier life of the server): the whole
        // backlog, as since=0, with what left it counted.
        let r = hub.subscribe("a", Some(99), &2);
        assert_eq!((ids(&r), r.missed), (vec![3, 4, 5], 2));
        let r = hub.subscribe("a", Some(6), &2);
        assert_eq!((ids(&r), r.missed), (vec![3, 4, 5], 2));
        // A channel this life has not seen yet: nothing to replay, nothing missed.
        let r = hub.subscribe("fresh", Some(7), &2);
        assert_eq!((ids(&r), r.missed, r.last_id), (vec![], 0, 0));
        // Other channels have their own ids.
        assert_eq!(hub.publish("b", "x".into()).message.id(), 1);
        // a, fresh (made by subscribing) and b.
        assert_eq!(hub.stats().channels, 3);
    }

    #[test]
    fn groups_once_each() {
        let mut hub: Hub<u32> = Hub::new(8);
        for g in [1, 1, 2, 1, 3] {
            hub.subscribe("a", None, &g);
        }
        let p = hub.publish("a", "x".into());
        assert_eq!(p.subscribers, 5);
        let mut g = p.groups.clone();
        g.sort();
        assert_eq!(g, vec![1, 2, 3]);
        hub.unsubscribe("a", &2);
        hub.unsubscribe("a", &2); // not subscribed any more: ignored
        hub.unsubscribe("nope", &1);
        let p = hub.publish("a", "y".into());
        assert_eq!((p.subscribers, p.groups.len()), (4, 2));
        assert_eq!(hub.stats().subscribers, 4);
    }

    #[test]
    fn missed_with_empty_backlog() {
        let mut hub: Hub<u32> = Hub::new(0);
        hub.publish("a", "x".into());
        hub.publish("a", "y".into());
        let r = hub.subscribe("a", Some(0), &1);
        assert_eq!((ids(&r), r.missed), (vec![], 2));
    }
}
