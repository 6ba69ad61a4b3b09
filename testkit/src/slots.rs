//! At most so many of something at once across a test binary's threads (a
//! counting semaphore; std has none): scenario runs that mostly sleep may
//! overlap, a few at a time, where one at a time would leave the machine idle.

use std::sync::{Condvar, Mutex};

/// `max` slots; [`Slots::take`] waits for a free one.
pub struct Slots {
    taken: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

/// A slot held until dropped.
pub struct Slot<'a>(&'a Slots);

impl Slots {
    pub const fn new(max: usize) -> Slots {
        Slots {
            taken: Mutex::new(0),
            freed: Condvar::new(),
            max,
        }
    }

    /// Waits until fewer than `max` slots are taken, and takes one. A test
    /// that panicked holding one has freed it (see [`Slot`]'s drop).
    pub fn take(&self) -> Slot<'_> {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        while *taken >= self.max {
            taken = self.freed.wait(taken).unwrap_or_else(|e| e.into_inner());
        }
        *taken += 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut taken = self.0.taken.lock().unwrap_or_else(|e| e.into_inner());
        *taken -= 1;
        self.0.freed.notify_one();
    }
}
