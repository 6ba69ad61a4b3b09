//! A message as the broker gives it, and a backlog read.

use std::sync::Arc;

/// A message of a channel, with the id the broker gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub channel: Arc<str>,
    /// 1, 2, 3 ... per channel, across every node.
    pub id: u64,
    /// When the broker took it, in milliseconds since the Unix epoch (the
    /// broker's clock), so an owner can age a copy of the backlog.
    pub time_ms: u64,
    pub data: Box<str>,
}

/// What the shared backlog holds after some id: the answer to a replay, and
/// what a follow hands on first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    /// The id the messages come after. A `since` greater than the channel's
    /// last id cannot name a message of the broker's current life (its ids
    /// started again), so it is read as 0, as the hub does.
    pub since: u64,
    /// Backlog messages after `since`, oldest first.
    pub messages: Vec<Message>,
    /// Messages after `since` that already left the backlog (capped or aged).
    pub missed: u64,
    /// The channel's last id when the backlog was read.
    pub last_id: u64,
}
