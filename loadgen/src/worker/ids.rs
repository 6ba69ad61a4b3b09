//! What one subscriber checks of the ids it is given, sans IO.
//!
//! Ids on a channel are 1, 2, 3 ...: the same id again is a duplicate, an
//! older one is out of order, a jump is a gap. A gap the server reported
//! (a `missed` count: what left its backlog) is covered by that report; the
//! rest is settled at the end against the ids nobody was due ([`Excused`]:
//! their publish failed). At the end every subscriber must have reached the
//! last id of its channel.
//!
//! [`Ids`] is the subscriber's part and is carried from one connection to
//! the next when a subscriber comes back, so continuity is checked per
//! subscriber, not per connection.

use std::collections::HashMap;

/// The ids one subscriber has seen, across its connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ids {
    last: u64,
    /// Missed messages reported and not yet matched to a gap.
    missed_credit: u64,
}

/// What an id is, given the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Later than any before; with the gap before it that no report covered.
    New(Option<Gap>),
    /// The last id again.
    Duplicate,
    /// Older than the last id.
    OutOfOrder,
}

/// Ids `first ..= last` skipped, `uncovered` of them not reported missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub first: u64,
    pub last: u64,
    pub uncovered: u64,
}

impl Ids {
    /// The last id seen (0 before any).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The server reported `n` messages missed.
    pub fn handle_missed(&mut self, n: u64) {
        self.missed_credit += n;
    }

    /// Message `id` arrived.
    pub fn handle_id(&mut self, id: u64) -> Seen {
        if id == self.last {
            return Seen::Duplicate;
        }
        if id < self.last {
            return Seen::OutOfOrder;
        }
        let skipped = id - self.last - 1;
        let covered = skipped.min(self.missed_credit);
        self.missed_credit -= covered;
        let gap = (skipped > covered).then(|| Gap {
            first: self.last + 1,
            last: id - 1,
            uncovered: skipped - covered,
        });
        self.last = id;
        Seen::New(gap)
    }

    /// At the end, with `last` the channel's last id: the ids after the last
    /// one seen that neither a missed report nor `excused` account for.
    pub fn lost_at_end(&self, last: u64, excused: &Excused, channel: &str) -> u64 {
        let behind = last.saturating_sub(self.last);
        let covered = behind.min(self.missed_credit);
        (behind - covered).saturating_sub(excused.count(channel, self.last + 1, last))
    }
}

impl Gap {
    /// The ids of the gap that were due: not reported missed, not excused.
    pub fn lost(&self, excused: &Excused, channel: &str) -> u64 {
        self.uncovered
            .saturating_sub(excused.count(channel, self.first, self.last))
    }
}

/// Ids on each channel that no subscriber was due (their publish failed).
#[derive(Debug, Clone, Default)]
pub struct Excused(HashMap<String, Vec<u64>>);

impl Excused {
    /// `ids` per channel, in any order; an id named twice is excused once.
    pub fn new(mut ids: HashMap<String, Vec<u64>>) -> Excused {
        for v in ids.values_mut() {
            v.sort_unstable();
            v.dedup();
        }
        Excused(ids)
    }

    /// How many of `lo ..= hi` on `channel` are excused.
    pub fn count(&self, channel: &str, lo: u64, hi: u64) -> u64 {
        self.0.get(channel).map_or(0, |ids| {
            (ids.partition_point(|&i| i <= hi) - ids.partition_point(|&i| i < lo)) as u64
        })
    }

    /// The messages due on `channel` whose last id is `last`.
    pub fn due(&self, channel: &str, last: u64) -> u64 {
        last - self.count(channel, 1, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(ids: &mut Ids, list: &[u64]) -> Vec<Seen> {
        list.iter().map(|&id| ids.handle_id(id)).collect()
    }

    #[test]
    fn an_id_excused_twice_counts_once() {
        let e = Excused::new(HashMap::from([("c".to_string(), vec![3, 2, 3])]));
        assert_eq!(e.count("c", 1, 5), 2);
        assert_eq!(e.due("c", 5), 3);
    }

    #[test]
    fn in_order_ids_are_new_without_gaps() {
        let mut ids = Ids::default();
        assert_eq!(seen(&mut ids, &[1, 2, 3]), vec![Seen::New(None); 3]);
        assert_eq!(ids.last(), 3);
        assert_eq!(ids.lost_at_end(3, &Excused::default(), "c"), 0);
        assert_eq!(ids.lost_at_end(5, &Excused::default(), "c"), 2);
    }

    #[test]
    fn duplicates_and_disorder() {
        let mut ids = Ids::default();
        let got = seen(&mut ids, &[1, 2, 2, 1, 3]);
        assert_eq!(
            got,
            vec![
                Seen::New(None),
                Seen::New(None),
                Seen::Duplicate,
                Seen::OutOfOrder,
                Seen::New(None)
            ]
        );
        assert_eq!(ids.last(), 3);
    }

    #[test]
    fn a_jump_is_a_gap_unless_reported_missed() {
        let mut ids = Ids::default();
        ids.handle_id(1);
        let gap = Gap {
            first: 2,
            last: 4,
            uncovered: 3,
        };
        assert_eq!(ids.handle_id(5), Seen::New(Some(gap)));
        // Two of the next gap's three were reported missed.
        ids.handle_missed(2);
        let gap = ids.handle_id(9);
        assert_eq!(
            gap,
            Seen::New(Some(Gap {
                first: 6,
                last: 8,
                uncovered: 1
            }))
        );
        // A report larger than the gap leaves credit for the next one.
        ids.handle_missed(5);
        assert_eq!(ids.handle_id(12), Seen::New(None));
        assert_eq!(ids.lost_at_end(15, &Excused::default(), "c"), 0);
        assert_eq!(ids.lost_at_end(16, &Excused::default(), "c"), 1);
    }

    #[test]
    fn missed_credit_carries_across_a_reconnect() {
        let mut ids = Ids::default();
        ids.handle_id(1);
        // Told on the old connection that 3 messages left the backlog...
        ids.handle_missed(3);
        // ... the subscriber comes back on a new connection with what it knew.
        let mut back = ids;
        assert_eq!(back.handle_id(5), Seen::New(None));
        // Without the carried state the same id would be a gap.
        let mut fresh = Ids::default();
        fresh.handle_id(1);
        assert!(matches!(fresh.handle_id(5), Seen::New(Some(_))));
    }

    #[test]
    fn excused_ids_are_not_lost() {
        let excused = Excused::new(HashMap::from([("c".to_string(), vec![7, 3, 4])]));
        assert_eq!(excused.count("c", 1, 10), 3);
        assert_eq!(excused.count("c", 4, 6), 1);
        assert_eq!(excused.count("other", 1, 10), 0);
        assert_eq!(excused.due("c", 10), 7);
        let mut ids = Ids::default();
        ids.handle_id(2);
        let Seen::New(Some(gap)) = ids.handle_id(6) else {
            panic!("a gap")
        };
        // 3 ..= 5 skipped: 3 and 4 were never published.
        assert_eq!(gap.lost(&excused, "c"), 1);
        assert_eq!(gap.lost(&excused, "other"), 3);
        // 7 ..= 8 behind at the end: 7 excused.
        assert_eq!(ids.lost_at_end(8, &excused, "c"), 1);
    }
}
