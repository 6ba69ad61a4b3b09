//! Green thread deadlines: one heap per scheduler, with lazy deletion.
//!
//! A green thread waits with at most one deadline at a time, and most waits
//! end before it (a read gets its bytes, a subscriber its message), so an
//! entry is never removed when its wait ends. Each task remembers the entry
//! it *armed*; an entry that does not match it (or whose task slot was
//! reused, as the generation tells) is skipped when it comes out. A later
//! deadline keeps the earlier entry and is re-armed when that one fires;
//! only an earlier one pushes. Stale entries are swept once they clearly
//! outnumber the tasks.
//!
//! Deadlines are kept here rather than as io_uring timeout operations: a
//! wait then costs no SQE and no CQE for its deadline, and ending a wait
//! early cancels nothing in the kernel. The scheduler bounds its wait in
//! `io_uring_enter` by [`Timers::next`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// When, and for which task (slab key, generation).
pub(super) type Entry = (Instant, u32, u32);

#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl Timers {
    pub(super) fn push(&mut self, at: Instant, key: u32, gen: u32) {
        self.heap.push(Reverse((at, key, gen)));
    }

    /// The earliest entry's time, stale or not.
    pub(super) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Takes out the earliest entry if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Sweeps stale entries once they clearly outnumber the `live` tasks;
    /// `valid` tells a live entry.
    pub(super) fn compact(&mut self, live: usize, valid: impl FnMut(&Entry) -> bool) {
        if self.heap.len() > 2 * live + 1024 {
            let mut valid = valid;
            self.heap.retain(|Reverse(e)| valid(e));
            if self.heap.capacity() > 1024 && self.heap.len() < self.heap.capacity() / 4 {
                self.heap.shrink_to(self.heap.len() * 2);
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_entries_come_out_in_order() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.push(t0 + Duration::from_secs(2), 1, 0);
        t.push(t0 + Duration::from_secs(1), 2, 0);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        let later = t0 + Duration::from_secs(3);
        assert_eq!(t.pop_due(later).map(|e| e.1), Some(2));
        assert_eq!(t.pop_due(later).map(|e| e.1), Some(1));
        assert_eq!(t.pop_due(later), None);
    }

    #[test]
    fn compaction_waits_for_a_clear_majority_of_stale_entries() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        for i in 0..3000u32 {
            t.push(t0 + Duration::from_millis(i as u64), i % 10, i);
        }
        t.compact(2000, |_| false);
        assert_eq!(t.len(), 3000, "not yet: 3000 <= 2 * 2000 + 1024");
        t.compact(10, |&(_, _, gen)| gen >= 2990);
        assert_eq!(t.len(), 10);
    }
}
