//! Connection deadlines: one heap per ring, with lazy deletion.
//!
//! A connection's deadline often moves (every request, every heartbeat), and
//! removing an entry from a binary heap is O(n); so an entry is never removed
//! when it goes stale. Instead each connection remembers the one deadline it
//! *armed*, and an entry that does not match it (or whose key was reused, as
//! its generation tells) is skipped when it comes out. A connection whose
//! deadline moves later keeps its earlier entry and re-arms when that entry
//! fires early; only a deadline that moves earlier pushes a new one. Stale
//! entries are bounded by [`Timers::needs_compaction`], which asks the owner
//! to sweep them once they outnumber the live connections.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// One heap entry: when, and for which connection (slab key, generation).
pub(super) type Entry = (Instant, u32, u32);

#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl Timers {
    pub(super) fn push(&mut self, at: Instant, key: u32, gen: u32) {
        self.heap.push(Reverse((at, key, gen)));
    }

    /// The earliest entry's time, stale or not: waking early for a stale entry
    /// costs one loop turn.
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

    /// Whether stale entries clearly outnumber the `live` connections.
    pub(super) fn needs_compaction(&self, live: usize) -> bool {
        self.heap.len() > 2 * live + 1024
    }

    /// Keeps only the entries `valid` accepts.
    pub(super) fn retain(&mut self, mut valid: impl FnMut(&Entry) -> bool) {
        self.heap.retain(|Reverse(e)| valid(e));
    }

    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Gives back room kept from a peak (after a compaction).
    pub(super) fn shrink(&mut self) {
        if self.heap.capacity() > 1024 && self.heap.len() < self.heap.capacity() / 4 {
            self.heap.shrink_to(self.heap.len() * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_order_only_when_due() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.push(t0 + Duration::from_secs(2), 1, 0);
        t.push(t0 + Duration::from_secs(1), 2, 0);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        let now = t0 + Duration::from_secs(3);
        assert_eq!(t.pop_due(now).map(|e| e.1), Some(2));
        assert_eq!(t.pop_due(now).map(|e| e.1), Some(1));
        assert_eq!(t.pop_due(now), None);
    }

    #[test]
    fn compaction_keeps_valid_entries() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        for i in 0..3000u32 {
            t.push(t0 + Duration::from_millis(i as u64), i % 10, i);
        }
        assert!(t.needs_compaction(10));
        t.retain(|&(_, _, gen)| gen >= 2990);
        assert_eq!(t.len(), 10);
        assert!(!t.needs_compaction(10));
    }
}
