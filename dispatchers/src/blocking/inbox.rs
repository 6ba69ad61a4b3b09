//! The inbox of one connection's thread: a group of one connection (see the
//! module docs, `# Inbox`). What wakes the thread is the thread package's
//! business ([`Signal`]): an OS thread waits on a condition variable, a
//! green thread is unparked.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use comet::Message;

use crate::deferred::Item;
use crate::group::Inbox;
use crate::hangup::HangUp;

/// Messages an inbox holds before its subscriber is dropped as too slow.
pub const INBOX_CAPACITY: usize = 256;

/// Wakes the thread of an inbox. Called with the inbox unlocked, and from a
/// publish with the hub locked: it must not block.
pub(crate) trait Signal: Send + Sync {
    fn signal(&self);
}

impl Signal for Condvar {
    fn signal(&self) {
        self.notify_one();
    }
}

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
pub(crate) struct Woken {
    pub(crate) messages: VecDeque<Item>,
    pub(crate) overflow: bool,
    pub(crate) hangup: bool,
    pub(crate) stop: bool,
}

impl InboxState {
    fn is_due(&self) -> bool {
        !self.queue.is_empty() || self.overflow || self.hangup || self.stop
    }

    fn take(&mut self) -> Woken {
        Woken {
            messages: std::mem::take(&mut self.queue),
            overflow: self.overflow,
            hangup: std::mem::take(&mut self.hangup),
            stop: self.stop,
        }
    }
}

/// The inbox of one connection's thread, woken through `S`.
pub(crate) struct ConnInbox<S> {
    state: Mutex<InboxState>,
    signal: S,
}

/// The inbox of an OS connection thread.
pub(crate) type ThreadInbox = ConnInbox<Condvar>;

impl Default for ThreadInbox {
    fn default() -> Self {
        ConnInbox::new(Condvar::new())
    }
}

impl<S: Signal> ConnInbox<S> {
    pub(crate) fn new(signal: S) -> ConnInbox<S> {
        ConnInbox {
            state: Mutex::new(InboxState::default()),
            signal,
        }
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes what is there without waiting; `None` when nothing is.
    pub(crate) fn try_take(&self) -> Option<Woken> {
        let mut st = self.lock();
        st.is_due().then(|| st.take())
    }

    /// Takes what is there without waiting, nothing included.
    pub(crate) fn take(&self) -> Woken {
        self.lock().take()
    }

    /// Puts `messages`, taken by a wait, back in front of what came since.
    pub(crate) fn put_back(&self, mut messages: VecDeque<Item>) {
        let mut st = self.lock();
        messages.append(&mut st.queue);
        st.queue = messages;
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.lock().stop
    }

    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.signal.signal();
    }

    /// Throws away what is queued: messages that arrived for a subscription
    /// that has ended since.
    pub(crate) fn clear(&self) {
        let mut st = self.lock();
        let left = std::mem::take(&mut st.queue);
        // A hang-up seen while reading is the reader's to find (EOF).
        st.hangup = false;
        drop(st);
        drop(left);
    }
}

impl ThreadInbox {
    /// Waits until a message arrives, the inbox overflows, the client hangs
    /// up, the dispatcher stops, or `deadline` passes; takes every message queued.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Woken {
        let mut st = self.lock();
        loop {
            if st.is_due() {
                return st.take();
            }
            match deadline {
                None => st = self.signal.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if d <= now {
                        return Woken::default();
                    }
                    st = self
                        .signal
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }
}

impl HangUp for ThreadInbox {
    fn hung_up(&self) {
        self.lock().hangup = true;
        self.signal.signal();
    }
}

impl<S: Signal> Inbox for ConnInbox<S> {
    fn deliver(&self, message: &Arc<Message>) {
        let mut st = self.lock();
        if st.queue.len() >= INBOX_CAPACITY {
            st.overflow = true;
            drop(st);
            self.signal.signal();
            return;
        }
        let wake = st.queue.is_empty();
        st.queue.push_back(Item::Message(message.clone()));
        drop(st);
        if wake {
            self.signal.signal();
        }
    }

    fn post(&self, item: Item) {
        let mut st = self.lock();
        let wake = st.queue.is_empty();
        st.queue.push_back(item);
        drop(st);
        if wake {
            self.signal.signal();
        }
    }
}
