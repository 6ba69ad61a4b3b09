//! What a group's inbox carries besides messages: the answers that come
//! later than the event they answer (a broker numbers a publish, a channel
//! becomes followed), and the end of a channel's subscriptions.
//!
//! # How a deferred answer finds its connection
//! A connection whose event cannot be answered at once is left waiting
//! ([`comet::Answer::Later`]) under a *token*: the key its group knows it by,
//! with the slot's generation in the high half for the event loops, whose
//! slab keys are reused (0 for a thread, whose group is one connection).
//! Whoever answers later (a link thread of the broker) posts the answer to
//! the connection's group, through the group's inbox, exactly where a
//! local publish puts its messages; the group's own thread looks the token
//! up and hands the answer to the `Conn` there. So no thread but a
//! connection's own ever touches it, no lock is taken per connection, and
//! no dispatcher waits in any new way: an answer is one more thing in the
//! inbox it already waits on.
//!
//! An answer that finds no such connection any more (the client left, the
//! slot holds another connection) is dropped; nothing was done for it that
//! would need undoing (see [`Deferred::Subscribe`]).

use std::sync::Arc;

use comet::{Accepted, Message, Refusal};

use crate::group::Group;

/// One thing in a group's inbox, in the order it was posted.
#[derive(Debug)]
pub enum Item {
    /// A message for the group's subscribers of its channel.
    Message(Arc<Message>),
    /// The answer a connection of the group waits for.
    Answer(Box<Reply>),
    /// The group's subscriptions to this channel end (the broker lost the
    /// channel's ids: see `docs/DESIGN.md`, Several nodes); clients come
    /// back with their last id and get the new backlog.
    End(Arc<str>),
}

/// An answer and the token of the connection waiting for it.
#[derive(Debug)]
pub struct Reply {
    pub token: u64,
    pub answer: Deferred,
}

/// A deferred answer.
#[derive(Debug)]
pub enum Deferred {
    /// The channel a subscribe waited for is followed now: the connection
    /// asks again, on its own thread, and joins the hub there. Nothing was
    /// joined for it before, so this answer may be dropped freely.
    Subscribe {
        channel: Arc<str>,
        since: Option<u64>,
    },
    Published(Accepted),
    Refused(Refusal),
}

/// A connection waiting for an answer: its group and its token there.
#[derive(Clone)]
pub struct Waiter {
    pub group: Group,
    pub token: u64,
}

impl Waiter {
    /// Posts `answer` to the connection's group. Does not block, so it may
    /// be called with the hub locked.
    pub fn answer(&self, answer: Deferred) {
        let reply = Reply {
            token: self.token,
            answer,
        };
        self.group.0.post(Item::Answer(Box::new(reply)));
    }
}

/// The token of slab key `key` in generation `gen`.
pub fn token(key: usize, gen: u32) -> u64 {
    (u64::from(gen) << 32) | (key as u64 & 0xffff_ffff)
}

/// The slab key and generation of `token`.
pub fn slot(token: u64) -> (usize, u32) {
    ((token & 0xffff_ffff) as usize, (token >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for (key, gen) in [(0, 0), (1, 7), (123_456, u32::MAX), (0xffff_ffff, 1)] {
            assert_eq!(slot(token(key, gen)), (key, gen));
        }
        assert_ne!(token(5, 1), token(5, 2), "a reused key is another token");
    }
}
