//! What every dispatcher shares: the hub behind a lock, fan-out groups,
//! counters for `/stats`, and the loop that answers a connection's events.
//!
//! # Fan-out
//! A *group* is whatever owns a set of connections and waits on its own: a
//! reactor, a ring, a thread. The hub counts subscribers per group, and a
//! publish hands the message to each group's [`Inbox`] once; the group then
//! writes to its own subscribers. Delivery happens with the hub locked, so every
//! group sees a channel's messages in id order.
//!
//! # Closing publishing
//! A stop begins with [`Shared::stop_publishing`], which raises a flag with
//! the hub locked; [`Shared::publish`] checks it with the hub locked too. So
//! once `stop_publishing` has returned, every publish answered `202` has its
//! message in the inboxes already, and none will be added: a group that
//! drains its inbox after that hands every accepted message on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use comet::{Config, Conn, Event, Hub, Message, Replay};

use crate::memory::Trim;

/// Where a group receives the messages published on its channels.
pub trait Inbox: Send + Sync {
    /// Hands `message` to the group and wakes it. Called with the hub locked:
    /// it must not block.
    fn deliver(&self, message: &Arc<Message>);
}

/// A group as the hub knows it: compared by identity.
#[derive(Clone)]
pub struct Group(pub Arc<dyn Inbox>);

impl PartialEq for Group {
    fn eq(&self, other: &Group) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}

/// Counters reported in `/stats`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections open now.
    pub connections: AtomicU64,
    /// Connections accepted since start.
    pub accepted: AtomicU64,
    /// Messages handed to subscribers (one per subscriber per message).
    pub delivered: AtomicU64,
    /// Subscribers dropped because their output passed the bound.
    pub dropped_slow: AtomicU64,
    /// Connections refused (`503`, or a full descriptor table) since start.
    pub refused: AtomicU64,
}

/// Server-wide state, shared by every thread of a dispatcher.
pub struct Shared {
    pub config: Arc<Config>,
    pub counters: Counters,
    /// The dispatcher's name, as in `--dispatcher`.
    pub name: &'static str,
    /// The dispatcher's settings, for `/stats`.
    pub settings: serde_json::Value,
    hub: Mutex<Hub<Group>>,
    /// Publishing has stopped (see `# Closing publishing`). Read and written
    /// with the hub locked only, so the lock orders it.
    publishing_closed: AtomicBool,
    started: Instant,
    trim: Trim,
}

impl Shared {
    pub fn new(config: Config, name: &'static str, settings: serde_json::Value) -> Shared {
        Shared {
            hub: Mutex::new(Hub::new(config.backlog)),
            publishing_closed: AtomicBool::new(false),
            config: Arc::new(config),
            counters: Counters::default(),
            name,
            settings,
            started: Instant::now(),
            trim: Trim::default(),
        }
    }

    fn hub(&self) -> std::sync::MutexGuard<'_, Hub<Group>> {
        // A panic while holding the hub leaves it consistent enough to go on:
        // every method mutates it in one step.
        self.hub.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self, channel: &str, since: Option<u64>, group: &Group) -> Replay {
        self.hub().subscribe(channel, since, group)
    }

    pub fn unsubscribe(&self, channel: &str, group: &Group) {
        self.hub().unsubscribe(channel, group)
    }

    /// Publishes and hands the message to every group with subscribers on the
    /// channel. Returns the id given and the subscriber count, or `None` once
    /// publishing has stopped.
    pub fn publish(&self, channel: &str, data: Box<str>) -> Option<(u64, u64)> {
        let mut hub = self.hub();
        if self.publishing_closed.load(Ordering::Relaxed) {
            return None;
        }
        let p = hub.publish(channel, data);
        for g in &p.groups {
            g.0.deliver(&p.message);
        }
        Some((p.message.id(), p.subscribers))
    }

    /// Refuses every publish from now on. When this returns, a publish that
    /// was accepted has its message in every inbox it goes to.
    pub fn stop_publishing(&self) {
        let _hub = self.hub();
        self.publishing_closed.store(true, Ordering::Relaxed);
    }

    /// The `/stats` document.
    pub fn stats_json(&self) -> String {
        let h = self.hub().stats();
        let c = &self.counters;
        serde_json::json!({
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
            "uptime_secs": self.started.elapsed().as_secs_f64(),
            "config": {
                "heartbeat_secs": self.config.heartbeat.as_secs_f64(),
                "poll_timeout_secs": self.config.poll_timeout.as_secs_f64(),
                "backlog": self.config.backlog,
                "max_message": self.config.max_message,
                "max_queue": self.config.max_queue,
                "publish_token": self.config.publish_token.is_some(),
                "allow_origin": self.config.allow_origin,
            },
        })
        .to_string()
    }

    /// Answers every event `conn` raised, against the hub. `local` is told of
    /// each subscription change (`true` joined, `false` left) so that a group
    /// can keep its own map of channel to connections.
    pub fn drain_events(
        &self,
        conn: &mut Conn,
        group: &Group,
        now: Instant,
        mut local: impl FnMut(&Arc<str>, bool),
    ) {
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Subscribe { channel, since } => {
                    local(&channel, true);
                    let replay = self.subscribe(&channel, since, group);
                    let n = replay.messages.len() as u64;
                    conn.handle_subscribed(replay, now);
                    self.counters.delivered.fetch_add(n, Ordering::Relaxed);
                }
                Event::Unsubscribe { channel } => {
                    local(&channel, false);
                    self.unsubscribe(&channel, group);
                }
                Event::Publish { channel, data } => match self.publish(&channel, data) {
                    Some((id, subscribers)) => conn.handle_published(id, subscribers, now),
                    None => conn.handle_publish_refused(now),
                },
                Event::Stats => conn.handle_stats(self.stats_json(), now),
            }
        }
    }

    /// Hands `message` to one subscriber and counts it; a subscriber dropped
    /// as too slow is counted too. The caller drains events afterwards.
    pub fn deliver(&self, conn: &mut Conn, message: &Arc<Message>, now: Instant) {
        if conn.handle_message(message, now) {
            self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        }
        if conn.is_dropped() {
            self.counters.dropped_slow.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn conn_opened(&self) {
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let open = self.counters.connections.fetch_add(1, Ordering::Relaxed) + 1;
        self.trim.opened(open);
    }

    /// Gives freed heap memory back to the system if the open connections
    /// fell a lot since their peak (see [`crate::memory`]). Cheap otherwise;
    /// dispatchers call it from a housekeeping tick.
    pub fn maybe_trim(&self) -> bool {
        self.trim
            .maybe_trim(self.counters.connections.load(Ordering::Relaxed))
    }

    pub fn conn_closed(&self) {
        self.counters.connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn conn_refused(&self) {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// A group's own map of channel to the connections (by key) subscribed there.
///
/// Keys are slab keys, small and dense: `pos[key]` is where a key sits in its
/// channel's list, so leaving is O(1) and a mass disconnect stays linear
/// (4 bytes per connection slot). A connection holds one subscription at a time.
#[derive(Debug, Default)]
pub struct LocalSubs {
    by_channel: HashMap<Arc<str>, Vec<usize>>,
    pos: Vec<u32>,
}

impl LocalSubs {
    pub fn update(&mut self, channel: &Arc<str>, key: usize, joined: bool) {
        if joined {
            let keys = self.by_channel.entry(channel.clone()).or_default();
            if self.pos.len() <= key {
                self.pos.resize(key + 1, 0);
            }
            self.pos[key] = keys.len() as u32;
            keys.push(key);
        } else if let Some(keys) = self.by_channel.get_mut(channel) {
            let at = self.pos.get(key).map(|&p| p as usize);
            let i = match at {
                Some(i) if keys.get(i) == Some(&key) => Some(i),
                // Not where the table says: a caller broke the one-subscription
                // rule; find it the slow way rather than corrupt the lists.
                _ => keys.iter().position(|&k| k == key),
            };
            if let Some(i) = i {
                keys.swap_remove(i);
                if let Some(&moved) = keys.get(i) {
                    self.pos[moved] = i as u32;
                }
            }
            if keys.is_empty() {
                self.by_channel.remove(channel);
            }
        }
    }

    /// Gives back room kept from a peak: `keys` is the key space in use now
    /// (the owner's slab capacity). Call from housekeeping, not per event:
    /// it visits every channel.
    pub fn shrink(&mut self, keys: usize) {
        if self.pos.len() > keys {
            self.pos.truncate(keys);
        }
        shrink_vec(&mut self.pos);
        for list in self.by_channel.values_mut() {
            shrink_vec(list);
        }
        if self.by_channel.capacity() > 64 && self.by_channel.len() < self.by_channel.capacity() / 4
        {
            self.by_channel.shrink_to_fit();
        }
    }

    /// Keys subscribed to `channel`, copied so the caller may change the map
    /// while it delivers.
    pub fn keys(&self, channel: &str) -> Vec<usize> {
        self.by_channel.get(channel).cloned().unwrap_or_default()
    }
}

/// Shrinks `v` to twice its length when it uses under a quarter of its
/// capacity: what a storm grew is given back, and a list that keeps its size
/// is not reallocated again and again.
pub fn shrink_vec<T>(v: &mut Vec<T>) {
    if v.capacity() > 64 && v.len() < v.capacity() / 4 {
        v.shrink_to(v.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_subs_join_and_leave_in_any_order() {
        let mut l = LocalSubs::default();
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        for k in 0..100 {
            l.update(if k % 3 == 0 { &b } else { &a }, k, true);
        }
        // Leave in a scrambled order; the survivors are exactly the rest.
        let leaving: Vec<usize> = (0..100)
            .filter(|k| k % 7 != 0)
            .map(|k| (k * 37) % 100)
            .collect();
        for &k in &leaving {
            l.update(if k % 3 == 0 { &b } else { &a }, k, false);
        }
        let mut left: Vec<usize> = l.keys("a").into_iter().chain(l.keys("b")).collect();
        left.sort();
        let mut want: Vec<usize> = (0..100).filter(|k| !leaving.contains(k)).collect();
        want.sort();
        assert_eq!(left, want);
        assert!(l.keys("a").iter().all(|k| k % 3 != 0));
        // A key that left, joining another channel.
        l.update(&b, leaving[0], true);
        assert!(l.keys("b").contains(&leaving[0]));
        // Leaving a channel it is not on changes nothing.
        l.update(&a, leaving[0], false);
        assert!(l.keys("b").contains(&leaving[0]));
    }

    #[test]
    fn local_subs_shrink_after_a_storm() {
        let mut l = LocalSubs::default();
        let a: Arc<str> = "a".into();
        for k in 0..10_000 {
            l.update(&a, k, true);
        }
        for k in 10..10_000 {
            l.update(&a, k, false);
        }
        l.shrink(16);
        assert!(l.pos.capacity() <= 64);
        assert!(l.by_channel["a"].capacity() <= 64);
        let mut left = l.keys("a");
        left.sort();
        assert_eq!(left, (0..10).collect::<Vec<_>>());
        // Still consistent: leave and join again after shrinking.
        l.update(&a, 3, false);
        l.update(&a, 12_000, true);
        left = l.keys("a");
        left.sort();
        assert_eq!(left, vec![0, 1, 2, 4, 5, 6, 7, 8, 9, 12_000]);
    }
}
