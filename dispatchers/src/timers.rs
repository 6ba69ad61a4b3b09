//! Connection deadlines of an event loop (a reactor, a ring, a green
//! scheduler; and tokio's one table, `tasks/deadlines.rs`): one heap per
//! loop, with lazy deletion.
//!
//! A connection's deadline often moves (every request, every heartbeat), and
//! removing an entry from a binary heap is O(n); so an entry is never removed
//! when it goes stale. Instead each connection remembers the one deadline it
//! *armed*, and an entry that does not match it is skipped when it comes
//! out. A connection whose deadline moves later keeps its earlier entry and
//! re-arms when that entry fires early; only a deadline that moves earlier
//! pushes a new one. Stale entries are bounded by [`Timers::compact_slots`],
//! which sweeps them once they outnumber the live connections.
//!
//! # Memory
//! An idle connection has one entry, 8 bytes, and its slot 4 bytes of
//! armed tick (see `docs/DESIGN.md`, "Memory per connection"): deadlines are
//! kept to the millisecond, rounded up, never as 16-byte `Instant`s.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use slab::Slab;

/// One heap entry, packed into 8 bytes: the deadline's tick (milliseconds
/// since the heap's epoch, rounded up) in the high bits, the slot's key in
/// the low [`KEY_BITS`]. Ordering entries orders their ticks. No generation:
/// an entry fires only for a slot that armed that very tick, and if a new
/// connection in a reused slot did, the deadline is its own.
type Entry = u64;

/// Bits of an entry that name the slot: a loop holds fewer connections than
/// this (an open-file table each), and [`Timers::arm_slot`] checks it.
const KEY_BITS: u32 = 24;
const KEY_MASK: u64 = (1 << KEY_BITS) - 1;
/// The furthest a deadline is armed ahead of the heap's clock: one further
/// away fires early, is found not due, and is armed again. It keeps every
/// armed tick within 2^31 ms of every other, so that a slot may keep only
/// its low 32 bits (see [`Armed`]).
const HORIZON_MS: u64 = 1 << 30;

/// A deadline as a slot keeps it: the low 32 bits of its tick, 0 for none.
pub(crate) type Tick = u32;

/// A loop's connection slot, as its timer heap sees it.
pub(crate) trait Armed {
    /// The tick of the deadline the slot has in the heap, 0 if none.
    fn armed(&mut self) -> &mut Tick;
}

#[derive(Debug)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    epoch: Instant,
    /// The tick of the latest `now` seen, which the horizon is counted from.
    clock: u64,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            epoch: Instant::now(),
            clock: 0,
        }
    }
}

impl Timers {
    /// `at` in ticks, rounded up so that no deadline fires early.
    fn tick(&self, at: Instant) -> u64 {
        let ns = at.saturating_duration_since(self.epoch).as_nanos();
        ns.div_ceil(1_000_000).min(u64::MAX as u128) as u64
    }

    fn instant(&self, tick: u64) -> Instant {
        self.epoch + Duration::from_millis(tick)
    }

    /// Arms deadline `at` for slot `key`, whose armed tick is `armed`: a
    /// later deadline keeps the earlier entry, which re-arms when it fires.
    fn arm(&mut self, armed: &mut Tick, at: Instant, key: usize) {
        assert!((key as u64) <= KEY_MASK, "slot key {key} past the timer's");
        let mut tick = self.tick(at).min(self.clock + HORIZON_MS);
        if tick as u32 == 0 {
            // 0 is "none" in a slot: a millisecond later is as good.
            tick += 1;
        }
        // Within the horizon, the wrapping difference orders two ticks.
        if *armed != 0 && (tick as u32).wrapping_sub(*armed) as i32 >= 0 {
            return;
        }
        *armed = tick as u32;
        self.heap.push(Reverse(tick << KEY_BITS | key as u64));
    }

    /// The earliest entry's time, stale or not: waking early for a stale entry
    /// costs one loop turn.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap
            .peek()
            .map(|Reverse(e)| self.instant(e >> KEY_BITS))
    }

    /// Takes out the earliest entry if it is due at `now`: its tick and key.
    fn pop_due(&mut self, now: Instant) -> Option<(u64, usize)> {
        let now = self.tick_floor(now);
        match self.heap.peek() {
            Some(Reverse(e)) if e >> KEY_BITS <= now => {
                let e = self.heap.pop()?.0;
                Some((e >> KEY_BITS, (e & KEY_MASK) as usize))
            }
            _ => None,
        }
    }

    /// The last tick that has begun by `now`, which becomes the heap's clock.
    fn tick_floor(&mut self, now: Instant) -> u64 {
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        self.clock = self.clock.max(ms);
        ms
    }

    /// Sweeps the stale entries once they clearly outnumber the `live`
    /// connections; `is_live` tells an entry (tick, key) its slot still armed.
    fn compact(&mut self, live: usize, mut is_live: impl FnMut(u64, usize) -> bool) {
        if self.heap.len() > 2 * live + 1024 {
            self.heap
                .retain(|Reverse(e)| is_live(e >> KEY_BITS, (e & KEY_MASK) as usize));
        }
    }

    /// Arms `slot`'s deadline `at` (see [`Timers::arm`]).
    pub(crate) fn arm_slot<S: Armed>(&mut self, slot: &mut S, at: Instant, key: usize) {
        self.arm(slot.armed(), at, key);
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
            let (tick, key) = self.pop_due(now)?;
            let Some(slot) = slots.get_mut(key) else {
                continue;
            };
            if *slot.armed() == tick as u32 {
                *slot.armed() = 0;
                return Some(key);
            }
        }
        None
    }

    /// Sweeps the entries whose slot is gone or armed another deadline,
    /// once they outnumber the slots (see [`Timers::compact`]), and gives
    /// back room kept from a peak.
    pub(crate) fn compact_slots<S: Armed>(&mut self, slots: &mut Slab<S>) {
        let live = slots.len();
        self.compact(live, |tick, key| {
            slots
                .get_mut(key)
                .is_some_and(|s| *s.armed() == tick as u32)
        });
        self.shrink();
    }

    /// The instant ticks are counted from.
    #[cfg(test)]
    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
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

    #[test]
    fn pops_in_order_only_when_due() {
        let mut t = Timers::default();
        let t0 = t.epoch;
        let (mut a, mut b) = (0, 0);
        t.arm(&mut a, t0 + Duration::from_secs(2), 1);
        t.arm(&mut b, t0 + Duration::from_secs(1), 2);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        let now = t0 + Duration::from_secs(3);
        assert_eq!(t.pop_due(now).map(|e| e.1), Some(2));
        assert_eq!(t.pop_due(now).map(|e| e.1), Some(1));
        assert_eq!(t.pop_due(now), None);
    }

    #[test]
    fn a_deadline_is_rounded_up_never_early() {
        let mut t = Timers::default();
        let t0 = t.epoch;
        let at = t0 + Duration::from_micros(1500);
        t.arm(&mut 0, at, 3);
        assert_eq!(t.next(), Some(t0 + Duration::from_millis(2)));
        assert_eq!(t.pop_due(at), None, "not before its tick");
        assert_eq!(
            t.pop_due(t0 + Duration::from_millis(2)).map(|e| e.1),
            Some(3)
        );
    }

    #[test]
    fn a_later_deadline_keeps_the_earlier_entry() {
        let mut t = Timers::default();
        let t0 = t.epoch;
        let mut armed = 0;
        t.arm(&mut armed, t0 + Duration::from_secs(5), 1);
        t.arm(&mut armed, t0 + Duration::from_secs(9), 1);
        assert_eq!((t.len(), armed), (1, 5000));
        t.arm(&mut armed, t0 + Duration::from_secs(2), 1);
        assert_eq!((t.len(), armed), (2, 2000));
    }

    #[test]
    fn a_far_deadline_is_armed_at_the_horizon_and_ticks_wrap() {
        let mut t = Timers::default();
        let t0 = t.epoch;
        let mut armed = 0;
        t.arm(&mut armed, t0 + Duration::from_secs(100 * 86_400), 1);
        assert_eq!(armed as u64, HORIZON_MS);
        // Past 2^32 ms the slot's tick wraps; ordering still holds.
        let later = t0 + Duration::from_millis((1 << 32) + 10);
        t.pop_due(later);
        let mut wrapped = 0;
        t.arm(&mut wrapped, later + Duration::from_millis(5), 2);
        assert_eq!(wrapped, 15);
        t.arm(&mut wrapped, later + Duration::from_millis(50), 2);
        assert_eq!(wrapped, 15, "later than the armed one, wrapped or not");
        t.arm(&mut wrapped, later + Duration::from_millis(1), 2);
        assert_eq!(wrapped, 11);
    }

    struct Slot(Tick);

    impl Armed for Slot {
        fn armed(&mut self) -> &mut Tick {
            &mut self.0
        }
    }

    #[test]
    fn only_live_due_slots_come_out_and_within_the_budget() {
        let mut t = Timers::default();
        let t0 = t.epoch;
        let mut slots: Slab<Slot> = Slab::new();
        let a = slots.insert(Slot(0));
        let b = slots.insert(Slot(0));
        let c = slots.insert(Slot(0));
        for (k, ms) in [(a, 10), (b, 20), (c, 30)] {
            t.arm_slot(&mut slots[k], t0 + Duration::from_millis(ms), k);
        }
        // b moved earlier (a new entry; the old one is stale), c was reused
        // by a connection that armed another deadline.
        t.arm_slot(&mut slots[b], t0 + Duration::from_millis(5), b);
        slots.remove(c);
        let c2 = slots.insert(Slot(0));
        assert_eq!(c2, c);
        t.arm_slot(&mut slots[c2], t0 + Duration::from_millis(200), c2);
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
        assert_eq!((slots[a].0, slots[b].0, slots[c2].0), (0, 0, 200));
    }

    #[test]
    fn compaction_keeps_valid_entries() {
        let mut t = Timers::default();
        let t0 = t.epoch;
        for i in 0..3000u64 {
            t.arm(&mut 0, t0 + Duration::from_millis(i + 1), (i % 10) as usize);
        }
        t.compact(1000, |_, _| false);
        assert_eq!(t.len(), 3000, "not yet worth a sweep");
        t.compact(10, |tick, _| tick > 2990);
        assert_eq!(t.len(), 10);
    }
}
