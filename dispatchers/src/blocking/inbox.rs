//! The inbox of one connection thread: a group of one connection, waited on
//! with a condition variable (see the module docs, `# Inbox`).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use comet::Message;

use crate::deferred::Item;
use crate::group::Inbox;
use crate::hangup::HangUp;

/// Messages an inbox holds before its subscriber is dropped as too slow.
pub const INBOX_CAPACITY: usize = 256;

#[derive(Default)]
struct InboxState {
    queue: VecDeque<Item>,
    overflow: bool,
    /// The watcher saw the client close or reset.
    hangup: bool,
    /// The dispatcher is stopping (see `# Stopping`).
    stop: bool,
}

/// What ended a wait on the inbox.
#[derive(Default)]
pub(super) struct Woken {
    pub(super) messages: VecDeque<Item>,
    pub(super) overflow: bool,
    pub(super) hangup: bool,
    pub(super) stop: bool,
}

/// The inbox of one connection thread.
#[derive(Default)]
pub(super) struct ThreadInbox {
    state: Mutex<InboxState>,
    ready: Condvar,
}

impl ThreadInbox {
    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a message arrives, the inbox overflows, the client hangs
    /// up, the dispatcher stops, or `deadline` passes; takes every message queued.
    pub(super) fn wait(&self, deadline: Option<Instant>) -> Woken {
        let mut st = self.lock();
        loop {
            if !st.queue.is_empty() || st.overflow || st.hangup || st.stop {
                return Woken {
                    messages: std::mem::take(&mut st.queue),
                    overflow: st.overflow,
                    hangup: std::mem::take(&mut st.hangup),
                    stop: st.stop,
                };
            }
            match deadline {
                None => st = self.ready.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if d <= now {
                        return Woken::default();
                    }
                    st = self
                        .ready
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }

    /// Puts `messages`, taken by a wait, back in front of what came since.
    pub(super) fn put_back(&self, mut messages: VecDeque<Item>) {
        let mut st = self.lock();
        messages.append(&mut st.queue);
        st.queue = messages;
    }

    pub(super) fn is_stopped(&self) -> bool {
        self.lock().stop
    }

    pub(super) fn stop(&self) {
        self.lock().stop = true;
        self.ready.notify_one();
    }

    /// Throws away what is queued: messages that arrived for a subscription
    /// that has ended since.
    pub(super) fn clear(&self) {
        let mut st = self.lock();
        let left = std::mem::take(&mut st.queue);
        // A hang-up seen while reading is the reader's to find (EOF).
        st.hangup = false;
        drop(st);
        drop(left);
    }
}

impl HangUp for ThreadInbox {
    fn hung_up(&self) {
        self.lock().hangup = true;
        self.ready.notify_one();
    }
}

impl Inbox for ThreadInbox {
    fn deliver(&self, message: &Arc<Message>) {
        let mut st = self.lock();
        if st.queue.len() >= INBOX_CAPACITY {
            st.overflow = true;
            drop(st);
            self.ready.notify_one();
            return;
        }
        let wake = st.queue.is_empty();
        st.queue.push_back(Item::Message(message.clone()));
        drop(st);
        if wake {
            self.ready.notify_one();
        }
    }

    fn post(&self, item: Item) {
        let mut st = self.lock();
        let wake = st.queue.is_empty();
        st.queue.push_back(item);
        drop(st);
        if wake {
            self.ready.notify_one();
        }
    }
}
