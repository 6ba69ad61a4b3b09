//! How a link talks back to its owner.

use super::message::{Message, Replay};

/// Why a followed channel is handed a [`Replay`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The owner began to follow it: the replay is the shared backlog.
    Follow,
    /// The link reconnected: the replay holds what came after the last
    /// message handed on, `missed` what left the backlog meanwhile.
    Reconnect,
    /// A live message skipped ids (a message lost in transit): the hole is
    /// filled from the backlog, `missed` counts what had left it.
    Gap,
    /// The broker lost its data (restarted without persistence): ids start
    /// again at 1, so the owner must forget the ids it had; the replay is the
    /// new backlog from 0. Messages of the old life that had not arrived are
    /// lost without a count.
    Reset,
}

/// The owner's side of a link.
///
/// Called from the link's threads with its follow table locked: every method
/// must return promptly (hand the work to an inbox) and must not wait for the
/// link. Calling [`Link`](super::Link) methods from here is fine (they only
/// queue work). Messages of a channel arrive in id order, each once per
/// follow; a channel unfollowed a moment ago may still deliver a message or a
/// replay, which the owner drops.
pub trait Sink: Send + Sync {
    /// A live message of a followed channel, the next after those handed on.
    fn message(&self, message: Message);
    /// `channel` is in step with the broker again: `replay.messages` come
    /// next, then live messages.
    fn followed(&self, channel: &str, cause: Cause, replay: Replay);
    /// The broker was lost (`false`; publishes fail from now on) or is back
    /// (`true`).
    fn link_state(&self, up: bool);
}
