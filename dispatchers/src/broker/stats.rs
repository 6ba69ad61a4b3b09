//! Counters of a link, for `/stats`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A snapshot of a link's counters (all since the link was made).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Whether the broker connection is up now.
    pub up: bool,
    /// Channels followed now.
    pub following: u64,
    /// Pub/sub messages the broker sent this node (broker-to-node messages).
    pub received: u64,
    /// Live messages handed to the sink.
    pub handed_on: u64,
    /// Backlog messages handed to the sink by follows and gap fills.
    pub replayed: u64,
    /// Live messages dropped as already handed on (read and received both).
    pub duplicates: u64,
    /// Live messages dropped because their subscription was not confirmed
    /// yet, or the channel no longer followed.
    pub ignored: u64,
    /// Pub/sub payloads that did not decode.
    pub malformed: u64,
    /// Missed counts reported with reconnects and gap fills, summed.
    pub missed: u64,
    /// Publishes the broker numbered.
    pub published: u64,
    /// Publishes that failed (down, lost in flight, or refused).
    pub publish_failed: u64,
    /// Times the broker was lost.
    pub downs: u64,
    /// Times the link came back.
    pub reconnects: u64,
    /// Follows that found the broker had lost the channel's ids.
    pub resets: u64,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub up: AtomicBool,
    pub following: AtomicU64,
    pub received: AtomicU64,
    pub handed_on: AtomicU64,
    pub replayed: AtomicU64,
    pub duplicates: AtomicU64,
    pub ignored: AtomicU64,
    pub malformed: AtomicU64,
    pub missed: AtomicU64,
    pub published: AtomicU64,
    pub publish_failed: AtomicU64,
    pub downs: AtomicU64,
    pub reconnects: AtomicU64,
    pub resets: AtomicU64,
}

/// Adds `n` to a counter: they are statistics, so no ordering is needed.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            up: self.up.load(Ordering::Acquire),
            following: get(&self.following),
            received: get(&self.received),
            handed_on: get(&self.handed_on),
            replayed: get(&self.replayed),
            duplicates: get(&self.duplicates),
            ignored: get(&self.ignored),
            malformed: get(&self.malformed),
            missed: get(&self.missed),
            published: get(&self.published),
            publish_failed: get(&self.publish_failed),
            downs: get(&self.downs),
            reconnects: get(&self.reconnects),
            resets: get(&self.resets),
        }
    }
}

impl Stats {
    /// The counters as the JSON object `/stats` shows under `broker`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "up": self.up,
            "following": self.following,
            "received": self.received,
            "handed_on": self.handed_on,
            "replayed": self.replayed,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
            "malformed": self.malformed,
            "missed": self.missed,
            "published": self.published,
            "publish_failed": self.publish_failed,
            "downs": self.downs,
            "reconnects": self.reconnects,
            "resets": self.resets,
        })
    }
}
