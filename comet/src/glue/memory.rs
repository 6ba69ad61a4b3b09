//! A hub in one thread's memory, for the test harnesses and the fuzz target.
//!
//! [`Memory`] is a [`Hub`] with one group and a map of which connection
//! (by the owner's key) holds which subscription. A publish queues its
//! message for the owner to hand to [`Memory::subscribers`] of the channel
//! (as a dispatcher's group drains its inbox). It checks, as it goes, the
//! rule every dispatcher relies on: a connection holds one subscription at a
//! time and leaves exactly the channel it joined. A `Conn` that breaks it
//! panics here, which is what a fuzz target wants to find.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use crate::conn::Refusal;
use crate::hub::{ChannelLimit, Hub, Limits, Replay};
use crate::message::Message;

use super::{Accepted, Answer, Backend};

/// A single-threaded hub and its subscribers, keyed by `K`.
#[derive(Debug)]
pub struct Memory<K> {
    hub: Hub<()>,
    subs: BTreeMap<K, Arc<str>>,
    /// WebSocket clients cut off for answering no ping.
    unresponsive: u64,
    /// Connections closed for sending no request within their deadline.
    idle_timeouts: u64,
    /// Published messages with subscribers, not yet taken by the owner.
    published: VecDeque<Arc<Message>>,
    stopping: bool,
}

impl<K: Ord + Copy + Debug> Memory<K> {
    pub fn new(limits: Limits) -> Memory<K> {
        Memory {
            hub: Hub::new(limits),
            subs: BTreeMap::new(),
            unresponsive: 0,
            idle_timeouts: 0,
            published: VecDeque::new(),
            stopping: false,
        }
    }

    /// The backend of connection `key`.
    pub fn backend(&mut self, key: K) -> Owner<'_, K> {
        Owner { memory: self, key }
    }

    pub fn hub(&self) -> &Hub<()> {
        &self.hub
    }

    /// Publishes from outside any connection; the message is queued for the
    /// subscribers as a connection's publish would be.
    pub fn publish(
        &mut self,
        channel: &str,
        data: Box<str>,
        now: Instant,
    ) -> Result<Arc<Message>, ChannelLimit> {
        let p = self.hub.publish(channel, data, now)?;
        if p.subscribers > 0 {
            self.published.push_back(p.message.clone());
        }
        Ok(p.message)
    }

    /// The oldest published message not yet taken, for the owner to hand to
    /// the channel's [`Memory::subscribers`].
    pub fn take_published(&mut self) -> Option<Arc<Message>> {
        self.published.pop_front()
    }

    /// The connections subscribed to `channel`, in key order.
    pub fn subscribers(&self, channel: &str) -> Vec<K> {
        self.subs
            .iter()
            .filter(|(_, c)| &***c == channel)
            .map(|(k, _)| *k)
            .collect()
    }

    /// The channel connection `key` is subscribed to.
    pub fn subscription(&self, key: K) -> Option<&Arc<str>> {
        self.subs.get(&key)
    }

    /// WebSocket clients cut off so far for answering no ping.
    pub fn unresponsive(&self) -> u64 {
        self.unresponsive
    }

    /// Connections closed so far for sending no request in time.
    pub fn idle_timeouts(&self) -> u64 {
        self.idle_timeouts
    }

    /// Refuses every publish from now on, as a stopping server does.
    pub fn stop_publishing(&mut self) {
        self.stopping = true;
    }

    /// Expires what is due (see [`Hub::expire`]).
    pub fn expire(&mut self, now: Instant) {
        while self.hub.expire(now, 1024) == 1024 {}
    }
}

/// Connection `key`'s view of a [`Memory`].
#[derive(Debug)]
pub struct Owner<'a, K> {
    memory: &'a mut Memory<K>,
    key: K,
}

impl<K: Ord + Copy + Debug> Backend for Owner<'_, K> {
    fn subscribe(
        &mut self,
        channel: &Arc<str>,
        since: Option<u64>,
        now: Instant,
    ) -> Answer<Result<Replay, Refusal>> {
        let m = &mut *self.memory;
        if let Some(held) = m.subs.get(&self.key) {
            panic!("{:?} subscribed to {channel} while on {held}", self.key);
        }
        let Ok(replay) = m.hub.subscribe(channel, since, &(), now) else {
            return Answer::Now(Err(Refusal::ChannelLimit));
        };
        m.subs.insert(self.key, replay.channel.clone());
        Answer::Now(Ok(replay))
    }

    fn unsubscribe(&mut self, channel: &Arc<str>, now: Instant) {
        let m = &mut *self.memory;
        match m.subs.remove(&self.key) {
            Some(held) if held == *channel => m.hub.unsubscribe(channel, &(), now),
            held => panic!("{:?} left {channel} while on {held:?}", self.key),
        }
    }

    fn publish(
        &mut self,
        channel: &Arc<str>,
        data: Box<str>,
        now: Instant,
    ) -> Answer<Result<Accepted, Refusal>> {
        let m = &mut *self.memory;
        if m.stopping {
            return Answer::Now(Err(Refusal::Stopping));
        }
        let Ok(p) = m.hub.publish(channel, data, now) else {
            return Answer::Now(Err(Refusal::ChannelLimit));
        };
        if p.subscribers > 0 {
            m.published.push_back(p.message.clone());
        }
        Answer::Now(Ok(Accepted {
            id: p.message.id(),
            subscribers: p.subscribers,
        }))
    }

    fn unresponsive(&mut self) {
        self.memory.unresponsive += 1;
    }

    fn idle_timeout(&mut self) {
        self.memory.idle_timeouts += 1;
    }

    fn stats(&mut self) -> String {
        let s = self.memory.hub.stats();
        serde_json::json!({
            "channels": s.channels,
            "subscribers": s.subscribers,
            "published": s.published,
        })
        .to_string()
    }
}
