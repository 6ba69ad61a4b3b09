//! The connections' deadlines, kept outside their tasks: the event loops'
//! heap ([`Timers`], `timers.rs`: 8-byte entries, lazy deletion) for the
//! whole dispatcher, a slab of slots, and one task that sleeps until the
//! earliest entry and wakes the tasks whose deadline has come.
//!
//! # Why not a `Sleep` per task
//! A `tokio::time::Sleep` is 112 bytes, and held in a connection's future
//! it made every task cell 640 bytes instead of 512 (tokio rounds a cell up
//! to 128, see `conn.rs`, `# Memory of an idle connection`). Here a
//! connection holds a key (in what was the task's padding), a slot (its
//! task's waker and the tick it armed, 24 bytes) and an entry in the heap
//! per armed deadline (8): 32 bytes per connection, in two large blocks
//! that no allocator rounds per connection.
//!
//! # Arming and waking
//! A task arms its deadline from inside its wait's poll, with the waker it
//! is polled with; as in the event loops, a deadline later than the one
//! armed keeps the earlier entry, which wakes the task early once, and the
//! task arms again. A woken task compares its deadline with the clock
//! itself, so a stale wake costs one poll, never a deadline handled early.
//! The driver sleeps until the heap's earliest entry; an arm earlier than
//! that wakes it (a [`Notify`] permit, kept if the driver is busy). It
//! wakes the due tasks outside the lock.
//!
//! # Memory
//! A slot's waker keeps its task's cell alive, so a task's drop closes its
//! slot: a closed connection's cell is freed at once, whatever stale
//! entries it left (they are skipped, then swept by [`Deadlines::housekeeping`],
//! which also gives back slab room kept from a peak).
//!
//! # Stopping
//! The driver runs until the runtime shuts down, not until the stop: a
//! connection finishing its output after the stop still has its deadlines.

use std::sync::{Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use slab::Slab;
use tokio::sync::Notify;

use crate::room::{shrink_slab, shrink_vec};
use crate::timers::{Armed, Tick, Timers};

/// How long the driver sleeps with no entry at all: only an arm wakes it.
const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// Every connection's deadline.
pub(super) struct Deadlines {
    table: Mutex<Table>,
    /// An entry earlier than the driver's sleep was pushed.
    earlier: Notify,
}

#[derive(Default)]
struct Table {
    timers: Timers,
    slots: Slab<Slot>,
    /// What the driver sleeps until (`None`: the heap was empty).
    wakes_at: Option<Instant>,
}

/// One connection's deadline.
struct Slot {
    /// The task's waker (a no-op one until it first arms).
    waker: Waker,
    /// The tick of the deadline it has in the heap (0: none).
    armed: Tick,
}

impl Armed for Slot {
    fn armed(&mut self) -> &mut Tick {
        &mut self.armed
    }
}

impl Deadlines {
    pub(super) fn new() -> Deadlines {
        Deadlines {
            table: Mutex::default(),
            earlier: Notify::new(),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection; its key.
    pub(super) fn open(&self) -> u32 {
        let key = self.table().slots.insert(Slot {
            waker: Waker::noop().clone(),
            armed: 0,
        });
        u32::try_from(key).expect("fewer than 2^32 connections")
    }

    /// Lets a connection's slot go (its task ends).
    pub(super) fn close(&self, key: u32) {
        let slot = self.table().slots.try_remove(key as usize);
        // The waker may hold the last reference to a task: dropped unlocked.
        drop(slot);
    }

    /// Arms deadline `at` for connection `key`, whose task `waker` wakes.
    pub(super) fn arm(&self, key: u32, at: Instant, waker: &Waker) {
        let mut t = self.table();
        let Table {
            timers,
            slots,
            wakes_at,
        } = &mut *t;
        let Some(slot) = slots.get_mut(key as usize) else {
            return;
        };
        if !slot.waker.will_wake(waker) {
            slot.waker.clone_from(waker);
        }
        timers.arm_slot(slot, at, key as usize);
        // Arming only ever brings the earliest entry forward.
        let earliest = timers.next();
        if earliest.is_some_and(|e| wakes_at.is_none_or(|w| e < w)) {
            *wakes_at = earliest;
            drop(t);
            self.earlier.notify_one();
        }
    }

    /// Collects the wakers of the connections due at `now` into `woken`;
    /// the next entry's time.
    fn due(&self, now: Instant, woken: &mut Vec<Waker>) -> Option<Instant> {
        let mut t = self.table();
        let Table {
            timers,
            slots,
            wakes_at,
        } = &mut *t;
        let mut budget = usize::MAX;
        while let Some(key) = timers.pop_due_slot(now, slots, &mut budget) {
            woken.push(slots[key].waker.clone());
        }
        *wakes_at = timers.next();
        *wakes_at
    }

    /// Sweeps the stale entries once they clearly outnumber the slots, and
    /// gives back room kept from a peak; called once a second.
    pub(super) fn housekeeping(&self) {
        let mut t = self.table();
        let Table { timers, slots, .. } = &mut *t;
        timers.compact_slots(slots);
        shrink_slab(slots);
    }

    /// Wakes every connection when its deadline comes; runs until the
    /// runtime shuts down (see `# Stopping`).
    pub(super) async fn drive(&self) {
        let sleep = tokio::time::sleep(FAR);
        tokio::pin!(sleep);
        let mut woken = Vec::new();
        loop {
            let next = self.due(Instant::now(), &mut woken);
            woken.drain(..).for_each(Waker::wake);
            shrink_vec(&mut woken);
            let at = next.unwrap_or_else(|| Instant::now() + FAR);
            sleep.as_mut().reset(at.into());
            tokio::select! {
                () = self.earlier.notified() => {}
                () = &mut sleep => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    /// Counts its wakes.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    /// The instant the table counts its ticks from.
    fn epoch(d: &Deadlines) -> Instant {
        d.table().timers.epoch()
    }

    fn fire(d: &Deadlines, now: Instant) -> Option<Instant> {
        let mut woken = Vec::new();
        let next = d.due(now, &mut woken);
        woken.into_iter().for_each(Waker::wake);
        next
    }

    #[test]
    fn a_task_is_woken_at_its_deadline_never_before() {
        let d = Deadlines::new();
        let (count, waker) = counter();
        let key = d.open();
        let at = epoch(&d) + Duration::from_micros(2_500);
        d.arm(key, at, &waker);
        assert!(fire(&d, at - Duration::from_micros(1)).is_some_and(|n| n >= at));
        assert_eq!(count.0.load(Ordering::Relaxed), 0);
        assert_eq!(fire(&d, epoch(&d) + Duration::from_millis(3)), None);
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_later_deadline_wakes_early_once_an_earlier_one_at_its_time() {
        let d = Deadlines::new();
        let (count, waker) = counter();
        let key = d.open();
        let t0 = epoch(&d);
        let ms = |n| t0 + Duration::from_millis(n);
        d.arm(key, ms(10), &waker);
        d.arm(key, ms(20), &waker);
        d.arm(key, ms(5), &waker);
        // 5 is armed; 10's entry is stale and wakes no one; 20 was never
        // pushed (10 was earlier).
        assert_eq!(fire(&d, ms(12)), None);
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        // The task, woken early for 20, arms it again.
        d.arm(key, ms(20), &waker);
        assert_eq!(fire(&d, ms(20)), None);
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_closed_slot_lets_its_waker_go_and_its_entries_are_swept() {
        let d = Deadlines::new();
        let (count, waker) = counter();
        let t0 = epoch(&d);
        for n in 0..2000 {
            let key = d.open();
            d.arm(key, t0 + Duration::from_secs(60 + n), &waker);
            d.close(key);
        }
        drop(waker);
        assert_eq!(Arc::strong_count(&count), 1, "no slot keeps the task");
        assert_eq!(d.table().timers.len(), 2000);
        d.housekeeping();
        assert_eq!(d.table().timers.len(), 0);
        assert_eq!(fire(&d, t0 + Duration::from_secs(3600)), None);
        assert_eq!(count.0.load(Ordering::Relaxed), 0);
    }
}
