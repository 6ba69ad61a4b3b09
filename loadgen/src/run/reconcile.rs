//! Publishes whose answer was lost, settled by what the subscribers saw.
//!
//! A publish that timed out (or whose connection was reset or closed) after
//! its request was written may have been published: the server took it and
//! the answer never came back. Counted as failed, it made a case report
//! more deliveries than were due (measured: 1,000,000 subscribers, one of
//! two publishes timed out at the publisher and was delivered, and the case
//! said `received 2,000,000`, `expected 1,000,000`). So each such publish is
//! a *candidate*: the workers are told its id ([`candidates`]), leave it out
//! of what is due, and count for it the subscribers that were due their
//! channel's messages and those that received it ([`crate::worker::Candidate`]).
//! A candidate that anyone received was published: it is then due to every
//! subscriber of its channel ([`settle`]); one that nobody received is
//! taken as never published.
//!
//! The id of a candidate is its sequence number where subscribers check the
//! publisher's sequence; where they check the server's ids, which the lost
//! answer never gave, the candidates are the ids just past the last one the
//! server answered, one per lost answer, and since the server gives ids in
//! order, every candidate up to the highest one received was published.

use std::collections::BTreeMap;

use crate::publisher::PublishReport;
use crate::results::Case;
use crate::worker::{Candidate, Finish, IdCheck};

/// Puts the publishes of `report` whose answer was lost into `finish` as
/// candidates, raising the last id due so that they are within it.
pub(super) fn candidates(report: &PublishReport, ids: IdCheck, finish: &mut Finish) {
    for (channel, seqs) in &report.unanswered_seqs {
        let last = finish.expect.entry(channel.clone()).or_default();
        let list: Vec<u64> = match ids {
            IdCheck::Sequence => seqs.clone(),
            IdCheck::Server => (*last + 1..=*last + seqs.len() as u64).collect(),
        };
        *last = (*last).max(list.iter().copied().max().unwrap_or(0));
        finish.candidates.insert(channel.clone(), list);
    }
}

/// The workers' counts of the candidates, summed, settled into `case`:
/// what became due, what was lost, and the notes that say so.
pub(super) fn settle(case: &mut Case, counts: &[Candidate], ids: IdCheck) {
    if counts.is_empty() {
        return;
    }
    let mut sum: BTreeMap<(&str, u64), (u64, u64)> = BTreeMap::new();
    for c in counts {
        let e = sum.entry((c.channel.as_str(), c.id)).or_default();
        e.0 += c.due;
        e.1 += c.received;
    }
    // Server ids are given in order: a candidate below one received was
    // published too, whether or not anyone received it.
    let mut highest: BTreeMap<&str, u64> = BTreeMap::new();
    if ids == IdCheck::Server {
        for (&(channel, id), &(_, received)) in &sum {
            if received > 0 {
                let h = highest.entry(channel).or_default();
                *h = (*h).max(id);
            }
        }
    }
    let d = &mut case.delivery;
    for (&(channel, id), &(due, received)) in &sum {
        let published = received > 0 || highest.get(channel).is_some_and(|&h| id <= h);
        if published {
            d.reconciled += 1;
            d.counts.expected += due;
            d.counts.lost += due.saturating_sub(received);
        } else {
            d.unconfirmed += 1;
        }
    }
    if d.counts.expected > 0 {
        d.delivered_fraction = Some(d.counts.received as f64 / d.counts.expected as f64);
    }
    if d.reconciled > 0 {
        case.notes.push(format!(
            "{} publishes lost their answer at the publisher but reached subscribers: counted as published, due to every subscriber of their channel (delivery.reconciled)",
            d.reconciled
        ));
    }
    if d.unconfirmed > 0 {
        case.notes.push(format!(
            "{} publishes lost their answer at the publisher and reached no subscriber: counted as not published (delivery.unconfirmed)",
            d.unconfirmed
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn report(unanswered: &[(&str, &[u64])]) -> PublishReport {
        PublishReport {
            unanswered_seqs: unanswered
                .iter()
                .map(|(c, s)| (c.to_string(), s.to_vec()))
                .collect(),
            ..PublishReport::default()
        }
    }

    fn cand(channel: &str, id: u64, due: u64, received: u64) -> Candidate {
        Candidate {
            channel: channel.into(),
            id,
            due,
            received,
        }
    }

    #[test]
    fn candidates_by_server_id_follow_the_last_answered() {
        let mut f = Finish {
            expect: HashMap::from([("bc".to_string(), 1)]),
            ..Finish::default()
        };
        candidates(
            &report(&[("bc", &[2]), ("new", &[1, 2])]),
            IdCheck::Server,
            &mut f,
        );
        assert_eq!(f.expect["bc"], 2);
        assert_eq!(f.candidates["bc"], vec![2]);
        // A channel no publish was answered on starts at id 1.
        assert_eq!(f.expect["new"], 2);
        assert_eq!(f.candidates["new"], vec![1, 2]);
    }

    #[test]
    fn candidates_by_sequence_are_the_sequence_numbers() {
        let mut f = Finish {
            expect: HashMap::from([("c".to_string(), 3)]),
            ..Finish::default()
        };
        candidates(&report(&[("c", &[2, 5])]), IdCheck::Sequence, &mut f);
        assert_eq!(f.candidates["c"], vec![2, 5]);
        assert_eq!(f.expect["c"], 5);
    }

    /// The measured case: 1,000,000 subscribers, two publishes, the second
    /// answer lost, the message delivered to all.
    #[test]
    fn a_lost_answer_that_was_delivered_is_due() {
        let mut case = Case::default();
        case.delivery.counts.expected = 1_000_000;
        case.delivery.counts.received = 2_000_000;
        // Two workers of 500,000.
        let counts = [
            cand("bc", 2, 500_000, 500_000),
            cand("bc", 2, 500_000, 500_000),
        ];
        settle(&mut case, &counts, IdCheck::Server);
        let d = &case.delivery;
        assert_eq!(d.counts.expected, 2_000_000);
        assert_eq!(d.counts.lost, 0);
        assert_eq!(d.delivered_fraction, Some(1.0));
        assert_eq!((d.reconciled, d.unconfirmed), (1, 0));
        assert!(
            case.notes[0].contains("reached subscribers"),
            "{:?}",
            case.notes
        );
    }

    #[test]
    fn partly_received_is_due_and_the_rest_lost() {
        let mut case = Case::default();
        case.delivery.counts.expected = 10;
        case.delivery.counts.received = 13;
        settle(&mut case, &[cand("c", 4, 5, 3)], IdCheck::Sequence);
        let d = &case.delivery;
        assert_eq!((d.counts.expected, d.counts.lost), (15, 2));
        assert_eq!(d.delivered_fraction, Some(13.0 / 15.0));
    }

    #[test]
    fn received_by_nobody_is_not_published() {
        let mut case = Case::default();
        case.delivery.counts.expected = 10;
        case.delivery.counts.received = 10;
        settle(&mut case, &[cand("c", 2, 10, 0)], IdCheck::Sequence);
        let d = &case.delivery;
        assert_eq!((d.counts.expected, d.counts.lost), (10, 0));
        assert_eq!((d.reconciled, d.unconfirmed), (0, 1));
    }

    #[test]
    fn server_ids_below_one_received_were_published() {
        // Ids 3 and 4 lost their answers; only 4 reached anyone, so 3 was
        // published too and lost by all.
        let mut case = Case::default();
        case.delivery.counts.expected = 20;
        case.delivery.counts.received = 22;
        let counts = [cand("bc", 3, 10, 0), cand("bc", 4, 10, 2)];
        settle(&mut case, &counts, IdCheck::Server);
        let d = &case.delivery;
        assert_eq!((d.reconciled, d.unconfirmed), (2, 0));
        assert_eq!(d.counts.expected, 40);
        assert_eq!(d.counts.lost, 10 + 8);
        // By sequence, each stands alone.
        let mut case = Case::default();
        settle(&mut case, &counts, IdCheck::Sequence);
        assert_eq!(
            (case.delivery.reconciled, case.delivery.unconfirmed),
            (1, 1)
        );
    }
}
