//! Fan-out groups: whatever owns a set of connections and waits on its own
//! (a reactor, a ring, a thread), as the hub knows it.
//!
//! # Fan-out
//! The hub counts subscribers per group, and a publish hands the message to
//! each group's [`Inbox`] once; the group then writes to its own
//! subscribers. Delivery happens with the hub locked, so every group sees a
//! channel's messages in id order.

use std::sync::Arc;

use comet::Message;

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
