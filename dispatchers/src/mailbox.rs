//! The inbox of an event loop (a reactor, a ring): the messages other
//! threads publish to its subscribers, and what wakes it.
//!
//! # Waking once per burst
//! [`Mailbox::deliver`] always queues the message, but wakes the loop only
//! when `notified` was clear. The loop clears `notified` *before* it takes
//! the queue ([`Mailbox::clear`], then [`Mailbox::take`] until empty), so a
//! message queued after the taking began either is seen by it or finds
//! `notified` clear and wakes the loop again: none is left waiting, and a
//! burst of publishes costs one wake-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use comet::Message;
use crossbeam_channel::{Receiver, Sender};

use crate::deferred::Item;
use crate::group::Inbox;

/// What wakes a loop from its wait: mio's `Waker`, a ring's eventfd.
pub trait Wake: Send + Sync {
    fn wake(&self);
}

impl Wake for mio::Waker {
    fn wake(&self) {
        // Fails only if the poll is gone, and then nobody is left to wake.
        let _ = mio::Waker::wake(self);
    }
}

/// A loop's inbox and its waker.
pub struct Mailbox<W> {
    tx: Sender<Item>,
    rx: Receiver<Item>,
    notified: AtomicBool,
    waker: W,
}

impl<W: Wake> Mailbox<W> {
    pub fn new(waker: W) -> Mailbox<W> {
        let (tx, rx) = crossbeam_channel::unbounded();
        Mailbox {
            tx,
            rx,
            notified: AtomicBool::new(false),
            waker,
        }
    }

    pub fn waker(&self) -> &W {
        &self.waker
    }

    /// Wakes the loop whether or not it was notified (used to stop it).
    pub fn wake(&self) {
        self.waker.wake();
    }

    /// The loop is about to take the queue: later messages must wake it again.
    pub fn clear(&self) {
        self.notified.store(false, Ordering::SeqCst);
    }

    /// The oldest item queued, if any. Call [`Mailbox::clear`] first.
    pub fn take(&self) -> Option<Item> {
        self.rx.try_recv().ok()
    }
}

impl<W: Wake> Inbox for Mailbox<W> {
    fn deliver(&self, message: &Arc<Message>) {
        self.post(Item::Message(message.clone()));
    }

    fn post(&self, item: Item) {
        // Both ends live as long as the mailbox: this cannot fail.
        let _ = self.tx.send(item);
        if !self.notified.swap(true, Ordering::SeqCst) {
            self.waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_burst_wakes_once_and_a_message_after_the_clear_wakes_again() {
        let m = Mailbox::new(Count::default());
        let msg = |id| Arc::new(Message::new("c".into(), id, "x".into()));
        for id in 1..=3 {
            m.deliver(&msg(id));
        }
        assert_eq!(m.waker().0.load(Ordering::SeqCst), 1);
        m.clear();
        let id = |item: Item| match item {
            Item::Message(m) => m.id(),
            other => panic!("not a message: {other:?}"),
        };
        assert_eq!(m.take().map(id), Some(1));
        // Queued while the loop takes: woken again, and still seen.
        m.deliver(&msg(4));
        assert_eq!(m.waker().0.load(Ordering::SeqCst), 2);
        let rest: Vec<u64> = std::iter::from_fn(|| m.take()).map(id).collect();
        assert_eq!(rest, vec![2, 3, 4]);
    }
}
