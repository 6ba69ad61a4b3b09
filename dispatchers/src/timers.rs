//! Connection deadlines of an event loop (a reactor, a ring): one heap per
//! loop, with lazy deletion.
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

use slab::Slab;

/// One heap entry: when, and for which connection (slab key, generation).
pub(crate) type Entry = (Instant, u32, u32);

/// A loop's connection slot, as its timer heap sees it.
pub(crate) trait Armed {
    /// The deadline the slot has in the heap, if any.
    fn armed(&mut self) -> &mut Option<Instant>;
    /// Tells a reused slab key from the connection an entry was pushed for.
    fn gen(&self) -> u32;
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl Timers {
    /// Arms deadline `at` for connection `key` of generation `gen`, whose
    /// slot keeps the deadline it has in the heap in `armed`: a later
    /// deadline keeps the earlier entry, which re-arms when it fires.
    fn arm(&mut self, armed: &mut Option<Instant>, at: Instant, key: u32, gen: u32) {
        if armed.is_some_and(|a| a <= at) {
            return;
        }
        *armed = Some(at);
        self.heap.push(Reverse((at, key, gen)));
    }

    /// The earliest entry's time, stale or not: waking early for a stale entry
    /// costs one loop turn.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Takes out the earliest entry if it is due at `now`.
    fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Sweeps the stale entries once they clearly outnumber the `live`
    /// connections; `is_live` tells an entry its slot still armed.
    fn compact(&mut self, live: usize, mut is_live: impl FnMut(&Entry) -> bool) {
        if self.heap.len() > 2 * live + 1024 {
            self.heap.retain(|Reverse(e)| is_live(e));
        }
    }

    /// Arms `slot`'s deadline `at` (see [`Timers::arm`]).
    pub(crate) fn arm_slot<S: Armed>(&mut self, slot: &mut S, at: Instant, key: usize) {
        let gen = slot.gen();
        self.arm(slot.armed(), at, key as u32, gen);
    }

    /// The next slot of `slots` whose armed deadline is due at `now`, with
    /// that deadline cleared; stale entries are skipped. Looks at no more
    /// than `budget` entries in all, so entries pushed while the due ones
    /// are handled wait for the next turn and a zero interval cannot spin.
    pub(crate) fn pop_due_slot<S: Armed>(
        &mut self,
        now: Instant,
        slots: &mut Slab<S>,
        budget: &mut usize,
    ) -> Option<usize> {
        while *budget > 0 {
            *budget -= 1;
            let (at, key, gen) = self.pop_due(now)?;
            let Some(slot) = slots.get_mut(key as usize) else {
                continue;
            };
            if slot.gen() == gen && *slot.armed() == Some(at) {
                *slot.armed() = None;
                return Some(key as usize);
            }
        }
        None
    }

    /// Sweeps the entries whose slot is gone or armed another deadline,
    /// once they outnumber the slots (see [`Timers::compact`]), and gives
    /// back room kept from a peak.
    pub(crate) fn compact_slots<S: Armed>(&mut self, slots: &mut Slab<S>) {
        let live = slots.len();
        self.compact(live, |&(at, key, gen)| {
            slots
                .get_mut(key as usize)
                .is_some_and(|s| s.gen() == gen && *s.armed() == Some(at))
        });
        self.shrink();
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Gives back room kept from a peak (after a compaction).
    fn shrink(&mut self) {
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
        let (mut a, mut b) = (None, None);
        t.arm(&mut a, t0 + Duration::from_secs(2), 1, 0);
        t.arm(&mut b, t0 + Duration::from_secs(1), 2, 0);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        let now = t0 + Duration::from_secs(3);
        assert_eq!(t.pop_due(now).map(|e| e.1), Some(2));
        assert_eq!(t.pop_due(now).map(|e| e.1), Some(1));
        assert_eq!(t.pop_due(now), None);
    }

    #[test]
    fn a_later_deadline_keeps_the_earlier_entry() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let mut armed = None;
        t.arm(&mut armed, t0 + Duration::from_secs(5), 1, 0);
        t.arm(&mut armed, t0 + Duration::from_secs(9), 1, 0);
        assert_eq!((t.len(), armed), (1, Some(t0 + Duration::from_secs(5))));
        t.arm(&mut armed, t0 + Duration::from_secs(2), 1, 0);
        assert_eq!((t.len(), armed), (2, Some(t0 + Duration::from_secs(2))));
    }

    struct Slot(Option<Instant>, u32);

    impl Armed for Slot {
        fn armed(&mut self) -> &mut Option<Instant> {
            &mut self.0
        }
        fn gen(&self) -> u32 {
            self.1
        }
    }

    #[test]
    fn only_live_due_slots_come_out_and_within_the_budget() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let mut slots: Slab<Slot> = Slab::new();
        let a = slots.insert(Slot(None, 1));
        let b = slots.insert(Slot(None, 2));
        let c = slots.insert(Slot(None, 3));
        for (k, ms) in [(a, 10), (b, 20), (c, 30)] {
            t.arm_slot(&mut slots[k], t0 + Duration::from_millis(ms), k);
        }
        // b moved earlier (a new entry; the old one is stale), c was reused.
        t.arm_slot(&mut slots[b], t0 + Duration::from_millis(5), b);
        slots.remove(c);
        let c2 = slots.insert(Slot(None, 4));
        assert_eq!(c2, c);
        let now = t0 + Duration::from_millis(100);
        let mut budget = 1;
        assert_eq!(t.pop_due_slot(now, &mut slots, &mut budget), Some(b));
        assert_eq!(
            t.pop_due_slot(now, &mut slots, &mut budget),
            None,
            "budget spent"
        );
        let mut budget = t.len();
        let due: Vec<usize> =
            std::iter::from_fn(|| t.pop_due_slot(now, &mut slots, &mut budget)).collect();
        assert_eq!(due, vec![a], "b's old entry and c's are stale");
        assert!(slots.iter().all(|(_, s)| s.0.is_none()));
    }

    #[test]
    fn compaction_keeps_valid_entries() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        for i in 0..3000u32 {
            t.arm(&mut None, t0 + Duration::from_millis(i as u64), i % 10, i);
        }
        t.compact(1000, |_| false);
        assert_eq!(t.len(), 3000, "not yet worth a sweep");
        t.compact(10, |&(_, _, gen)| gen >= 2990);
        assert_eq!(t.len(), 10);
    }
}
