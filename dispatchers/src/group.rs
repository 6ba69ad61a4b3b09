//! Fan-out groups: whatever owns a set of connections and waits on its own
//! (a reactor, a ring, a thread), as the hub knows it.
//!
//! # Fan-out
//! The hub counts subscribers per group, and a publish hands the message to
//! each group's [`Inbox`] once; the group then writes to its own
//! subscribers. Delivery happens with the hub locked, so every group sees a
//! channel's messages in id order.
//!
//! The same inbox carries the answers given later than their event and the
//! end of a channel's subscriptions ([`Item`], see [`crate::deferred`]), in
//! the order they were posted among the messages.

use std::sync::Arc;

use comet::Message;

use crate::deferred::Item;

/// Where a group receives the messages published on its channels.
pub trait Inbox: Send + Sync {
    /// Hands `message` to the group and wakes it. Called with the hub locked:
    /// it must not block.
    fn deliver(&self, message: &Arc<Message>);

    /// Hands `item` to the group and wakes it; an answer or an end is never
    /// refused for a full inbox (a connection waits for one answer at a
    /// time). May be called with the hub locked: it must not block.
    fn post(&self, item: Item);
}

/// A group as the hub knows it: compared by identity.
#[derive(Clone)]
pub struct Group(pub Arc<dyn Inbox>);

impl PartialEq for Group {
    fn eq(&self, other: &Group) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}
