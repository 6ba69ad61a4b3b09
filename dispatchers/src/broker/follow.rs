//! The follow table: per followed channel, where it stands between
//! subscribing, catching up from the backlog and passing live messages on.
//!
//! Sans-IO: the worker and the reader feed it confirmations, live messages
//! and backlog reads, and it answers with the reads to make and the sink
//! calls; it never touches a socket. It is what keeps the module's
//! `# Follow without a gap` invariant.

use std::collections::HashMap;
use std::sync::Arc;

use super::message::{Message, Replay};
use super::sink::{Cause, Sink};
use super::stats::{add, Counters};

/// A backlog read the table needs before `channel` can go live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CatchUp {
    pub channel: Arc<str>,
    /// Read the backlog after this id.
    pub since: u64,
    /// Which buffering round asked, so that a late answer is recognised.
    pub round: u64,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for the broker to confirm the latest (un)subscribe: live
    /// messages now belong to an older subscription and are dropped.
    Subscribing,
    /// Subscribed; live messages wait here for the backlog read, and once
    /// it is in (`read`), for the pub/sub connection to pass a marker sent
    /// after it.
    Buffering {
        buffered: Vec<Message>,
        read: Option<Replay>,
    },
    /// In step: the next live message must be `last + 1`.
    Live,
}

#[derive(Debug)]
struct Entry {
    name: Arc<str>,
    /// Whether the owner follows it (an unfollowed entry stays while its
    /// unsubscribe is unconfirmed).
    wanted: bool,
    /// Subscribes and unsubscribes written on this connection whose
    /// confirmation has not come back.
    pending: u32,
    /// The last id handed on in this follow (0: none yet).
    last: u64,
    /// Whether this follow has had its [`Sink::followed`].
    caught: bool,
    /// Why the next catch-up happens.
    cause: Cause,
    round: u64,
    phase: Phase,
}

/// Followed channels by name.
#[derive(Debug, Default)]
pub(crate) struct Table {
    channels: HashMap<Arc<str>, Entry>,
    following: u64,
    /// Reads in, waiting for the next marker to be sent: (channel, round).
    unsealed: Vec<(Arc<str>, u64)>,
    /// Reads waiting for marker `.0` to come back.
    sealed: Vec<(u64, Arc<str>, u64)>,
    /// The last marker handed out; never reset, so that a marker of a lost
    /// connection cannot match.
    mark: u64,
}

impl Table {
    /// Channels the owner follows now.
    pub fn following(&self) -> u64 {
        self.following
    }

    /// The owner follows `channel`. True when a `SUBSCRIBE` must be written
    /// (`connected`: there is a connection to write it on).
    pub fn follow(&mut self, channel: &str, connected: bool) -> bool {
        let entry = match self.channels.get_mut(channel) {
            Some(e) if e.wanted => return false,
            Some(e) => e,
            None => {
                let name: Arc<str> = Arc::from(channel);
                self.channels.entry(name.clone()).or_insert(Entry {
                    name,
                    wanted: false,
                    pending: 0,
                    last: 0,
                    caught: false,
                    cause: Cause::Follow,
                    round: 0,
                    phase: Phase::Subscribing,
                })
            }
        };
        entry.wanted = true;
        entry.last = 0;
        entry.caught = false;
        entry.cause = Cause::Follow;
        entry.phase = Phase::Subscribing;
        entry.pending += connected as u32;
        self.following += 1;
        connected
    }

    /// The owner stops following `channel`. True when an `UNSUBSCRIBE` must
    /// be written.
    pub fn unfollow(&mut self, channel: &str, connected: bool) -> bool {
        let Some(entry) = self.channels.get_mut(channel) else {
            return false;
        };
        if !entry.wanted {
            return false;
        }
        entry.wanted = false;
        entry.phase = Phase::Subscribing;
        self.following -= 1;
        if connected {
            entry.pending += 1;
        } else if entry.pending == 0 {
            self.channels.remove(channel);
        }
        connected
    }

    /// The broker confirmed a subscribe or unsubscribe of `channel`. Once the
    /// latest is confirmed, a followed channel buffers and needs its read.
    pub fn handle_confirmed(&mut self, channel: &str) -> Option<CatchUp> {
        let entry = self.channels.get_mut(channel)?;
        entry.pending = entry.pending.saturating_sub(1);
        if entry.pending > 0 || !matches!(entry.phase, Phase::Subscribing) {
            return None;
        }
        if !entry.wanted {
            self.channels.remove(channel);
            return None;
        }
        Some(buffer(entry, Vec::new()))
    }

    /// A live message from the broker.
    pub fn handle_live(
        &mut self,
        message: Message,
        sink: &dyn Sink,
        counters: &Counters,
    ) -> Option<CatchUp> {
        let Some(entry) = self.channels.get_mut(&*message.channel) else {
            add(&counters.ignored, 1);
            return None;
        };
        match &mut entry.phase {
            Phase::Subscribing => add(&counters.ignored, 1),
            Phase::Buffering { buffered, .. } => buffered.push(message),
            Phase::Live if message.id <= entry.last => add(&counters.duplicates, 1),
            Phase::Live if message.id == entry.last + 1 => {
                entry.last = message.id;
                add(&counters.handed_on, 1);
                sink.message(message);
            }
            Phase::Live => {
                entry.cause = Cause::Gap;
                return Some(buffer(entry, vec![message]));
            }
        }
        None
    }

    /// Whether `catch_up` is still wanted: its channel is buffering in that
    /// round, without its read (not unfollowed, lost or asked again since).
    pub fn is_due(&self, catch_up: &CatchUp) -> bool {
        self.channels
            .get(&catch_up.channel)
            .filter(|e| e.round == catch_up.round)
            .is_some_and(|e| matches!(e.phase, Phase::Buffering { read: None, .. }))
    }

    /// The backlog read for `catch_up` is in. It is kept until the pub/sub
    /// connection passes a marker sent after it ([`Table::seal`]): the read
    /// came back on the command connection, and live messages published
    /// before it may still be on their way; one that has left the capped
    /// backlog is in neither the read nor the buffer until then.
    pub fn handle_read(&mut self, catch_up: &CatchUp, replay: Replay) {
        if !self.is_due(catch_up) {
            return;
        }
        let entry = self
            .channels
            .get_mut(&catch_up.channel)
            .expect("is_due found it");
        if let Phase::Buffering { read, .. } = &mut entry.phase {
            *read = Some(replay);
        }
        self.unsealed
            .push((catch_up.channel.clone(), catch_up.round));
    }

    /// The marker to send on the pub/sub connection (as `PING`) for the
    /// reads that came in since the last one, if any did.
    pub fn seal(&mut self) -> Option<u64> {
        if self.unsealed.is_empty() {
            return None;
        }
        self.mark += 1;
        let mark = self.mark;
        self.sealed
            .extend(self.unsealed.drain(..).map(|(c, round)| (mark, c, round)));
        Some(mark)
    }

    /// Marker `mark` came back on the pub/sub connection: every live
    /// message published before the reads it seals has arrived, so each of
    /// those channels hands the owner its backlog and buffer, merged by id,
    /// and goes live.
    pub fn handle_marker(&mut self, mark: u64, sink: &dyn Sink, counters: &Counters) {
        let (done, waiting): (Vec<_>, Vec<_>) =
            self.sealed.drain(..).partition(|(m, ..)| *m <= mark);
        self.sealed = waiting;
        for (_, channel, round) in done {
            let Some(entry) = self.channels.get_mut(&channel).filter(|e| e.round == round) else {
                continue;
            };
            if let Phase::Buffering { read: Some(_), .. } = entry.phase {
                let Phase::Buffering { buffered, read } =
                    std::mem::replace(&mut entry.phase, Phase::Live)
                else {
                    unreachable!("matched above");
                };
                go_live(
                    entry,
                    read.expect("matched above"),
                    buffered,
                    sink,
                    counters,
                );
            }
        }
    }

    /// The connection is gone: no confirmation will come, nothing is
    /// subscribed. Unfollowed channels are forgotten.
    pub fn handle_lost(&mut self) {
        self.unsealed.clear();
        self.sealed.clear();
        self.channels.retain(|_, e| e.wanted);
        for entry in self.channels.values_mut() {
            entry.pending = 0;
            entry.phase = Phase::Subscribing;
            entry.cause = if entry.caught {
                Cause::Reconnect
            } else {
                Cause::Follow
            };
        }
    }

    /// A new connection: every followed channel is subscribed again (the
    /// caller writes the `SUBSCRIBE`s). With `reset`, the broker lost its
    /// data, so each channel starts again from id 0.
    pub fn resubscribe(&mut self, reset: bool) -> Vec<Arc<str>> {
        let mut names = Vec::with_capacity(self.channels.len());
        for entry in self.channels.values_mut() {
            entry.pending = 1;
            entry.phase = Phase::Subscribing;
            if reset && entry.caught {
                entry.last = 0;
                entry.cause = Cause::Reset;
            }
            names.push(entry.name.clone());
        }
        names
    }
}

/// Hands the owner `read` and `buffered` merged by id (see `# Follow without
/// a gap`), after the catch-up's `since` (`entry.last`).
fn go_live(
    entry: &mut Entry,
    read: Replay,
    buffered: Vec<Message>,
    sink: &dyn Sink,
    counters: &Counters,
) {
    // The read applies the earlier-life rule: a `since` past the channel's
    // last id came back as 0, so the broker lost the ids.
    let mut cause = entry.cause;
    if read.since != entry.last {
        cause = Cause::Reset;
    }
    if cause == Cause::Reset {
        add(&counters.resets, 1);
    }
    let since = read.since;
    let mut messages: Vec<Message> = read
        .messages
        .into_iter()
        .chain(buffered)
        .filter(|m| m.id > since)
        .collect();
    messages.sort_by_key(|m| m.id);
    messages.dedup_by_key(|m| m.id);
    let first = messages
        .first()
        .map_or(read.last_id.max(since) + 1, |m| m.id);
    // Holes inside the merge cannot happen (see `# Follow without a gap`);
    // were one to, it is counted, not hidden.
    let holes: u64 = messages.windows(2).map(|w| w[1].id - w[0].id - 1).sum();
    let missed = first.saturating_sub(since + 1) + holes;
    let top = messages.last().map_or(0, |m| m.id);
    entry.last = top.max(read.last_id).max(since);
    entry.caught = true;
    entry.cause = Cause::Reconnect;
    add(&counters.replayed, messages.len() as u64);
    if cause != Cause::Follow {
        add(&counters.missed, missed);
    }
    let replay = Replay {
        since,
        messages,
        missed,
        last_id: read.last_id,
    };
    sink.followed(&entry.name, cause, replay);
}

/// Starts a buffering round on `entry`.
fn buffer(entry: &mut Entry, buffered: Vec<Message>) -> CatchUp {
    entry.round += 1;
    entry.phase = Phase::Buffering {
        buffered,
        read: None,
    };
    CatchUp {
        channel: entry.name.clone(),
        since: entry.last,
        round: entry.round,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records what the table hands on, as (cause or "live", ids).
    #[derive(Default)]
    struct Record(Mutex<Vec<(String, Vec<u64>, u64)>>);

    impl Sink for Record {
        fn message(&self, m: Message) {
            self.0.lock().unwrap().push(("live".into(), vec![m.id], 0));
        }
        fn followed(&self, _: &str, cause: Cause, r: Replay) {
            let ids = r.messages.iter().map(|m| m.id).collect();
            self.0
                .lock()
                .unwrap()
                .push((format!("{cause:?}"), ids, r.missed));
        }
        fn link_state(&self, _: bool) {}
    }

    impl Record {
        fn take(&self) -> Vec<(String, Vec<u64>, u64)> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }

    fn msg(id: u64) -> Message {
        Message {
            channel: Arc::from("a"),
            id,
            time_ms: 0,
            data: format!("m{id}").into(),
        }
    }

    fn read(since: u64, ids: impl IntoIterator<Item = u64>, last_id: u64) -> Replay {
        Replay {
            since,
            messages: ids.into_iter().map(msg).collect(),
            missed: 0,
            last_id,
        }
    }

    /// A read comes in, its marker goes out and comes back.
    fn settle(t: &mut Table, up: &CatchUp, r: Replay, s: &Record, c: &Counters) {
        t.handle_read(up, r);
        let mark = t.seal().expect("a marker to send");
        t.handle_marker(mark, s, c);
    }

    fn live(t: &mut Table, s: &Record, c: &Counters, id: u64) -> Option<CatchUp> {
        t.handle_live(msg(id), s, c)
    }

    #[test]
    fn follow_merges_backlog_and_buffer_once_in_order() {
        let (mut t, s, c) = (Table::default(), Record::default(), Counters::default());
        assert!(t.follow("a", true));
        assert!(!t.follow("a", true), "already followed");
        // Before the confirmation: an older subscription's message.
        assert_eq!(live(&mut t, &s, &c, 1), None);
        let up = t.handle_confirmed("a").expect("a read");
        assert_eq!((up.since, &*up.channel), (0, "a"));
        // Buffered while the read is out: 4 and 5 will be in it too.
        for id in 4..=7 {
            assert_eq!(live(&mut t, &s, &c, id), None);
        }
        settle(&mut t, &up, read(0, 2..=5, 5), &s, &c);
        // Late copies of what the read held, then new ones.
        for id in [5, 6, 7, 8, 9] {
            assert_eq!(live(&mut t, &s, &c, id), None);
        }
        assert_eq!(
            s.take(),
            vec![
                ("Follow".into(), vec![2, 3, 4, 5, 6, 7], 1),
                ("live".into(), vec![8], 0),
                ("live".into(), vec![9], 0),
            ]
        );
        let stats = c.snapshot();
        assert_eq!((stats.ignored, stats.duplicates, stats.missed), (1, 3, 0));
        assert_eq!((stats.handed_on, stats.replayed), (2, 6));
    }

    /// Live messages published before the read can arrive after it: they
    /// wait for the marker, and one that left the capped backlog is not lost.
    #[test]
    fn the_marker_waits_for_live_messages_older_than_the_read() {
        let (mut t, s, c) = (Table::default(), Record::default(), Counters::default());
        t.follow("a", true);
        let up = t.handle_confirmed("a").unwrap();
        live(&mut t, &s, &c, 10);
        // The read (cap 2) sees 13 published; 11 and 12 are still in transit.
        t.handle_read(&up, read(0, 12..=13, 13));
        assert_eq!(t.seal(), Some(1));
        assert_eq!(t.seal(), None, "nothing new to seal");
        live(&mut t, &s, &c, 11);
        live(&mut t, &s, &c, 12);
        live(&mut t, &s, &c, 13);
        assert!(s.take().is_empty(), "handed on before the marker");
        // An older marker does not release it.
        t.handle_marker(0, &s, &c);
        assert!(s.take().is_empty());
        t.handle_marker(1, &s, &c);
        live(&mut t, &s, &c, 14);
        assert_eq!(
            s.take(),
            vec![
                ("Follow".into(), vec![10, 11, 12, 13], 9),
                ("live".into(), vec![14], 0)
            ]
        );
        // A late answer to the same catch-up changes nothing.
        t.handle_read(&up, read(0, 1..=1, 1));
        assert_eq!(t.seal(), None);
    }

    #[test]
    fn without_a_backlog_the_buffer_is_the_start() {
        let (mut t, s, c) = (Table::default(), Record::default(), Counters::default());
        t.follow("a", true);
        let up = t.handle_confirmed("a").unwrap();
        live(&mut t, &s, &c, 7);
        live(&mut t, &s, &c, 8);
        // Backlog 0: the read has the sequence only.
        settle(&mut t, &up, read(0, [], 8), &s, &c);
        live(&mut t, &s, &c, 9);
        assert_eq!(
            s.take(),
            vec![
                ("Follow".into(), vec![7, 8], 6),
                ("live".into(), vec![9], 0)
            ]
        );
    }

    #[test]
    fn only_the_latest_confirmation_starts_a_follow() {
        let (mut t, s, c) = (Table::default(), Record::default(), Counters::default());
        // follow, unfollow, follow written back to back.
        assert!(t.follow("a", true));
        assert!(t.unfollow("a", true));
        assert!(t.follow("a", true));
        assert_eq!(t.following(), 1);
        assert_eq!(t.handle_confirmed("a"), None);
        live(&mut t, &s, &c, 3);
        assert_eq!(t.handle_confirmed("a"), None);
        let up = t.handle_confirmed("a").expect("the third confirmation");
        settle(&mut t, &up, read(0, 1..=3, 3), &s, &c);
        assert_eq!(s.take(), vec![("Follow".into(), vec![1, 2, 3], 0)]);
        // Unfollowed and confirmed: forgotten, later messages ignored.
        assert!(t.unfollow("a", true));
        assert!(!t.unfollow("a", true));
        assert_eq!(t.handle_confirmed("a"), None);
        live(&mut t, &s, &c, 4);
        assert!(s.take().is_empty());
        assert_eq!((t.following(), c.snapshot().ignored), (0, 2));
    }

    #[test]
    fn a_hole_is_filled_from_the_backlog() {
        let (mut t, s, c) = (Table::default(), Record::default(), Counters::default());
        t.follow("a", true);
        let up = t.handle_confirmed("a").unwrap();
        settle(&mut t, &up, read(0, 1..=2, 2), &s, &c);
        let gap = live(&mut t, &s, &c, 6).expect("a hole after 2");
        assert_eq!(gap.since, 2);
        // 3 left the backlog; 4, 5 are in it; 6 was buffered.
        settle(&mut t, &gap, read(2, 4..=5, 6), &s, &c);
        assert_eq!(
            s.take(),
            vec![
                ("Follow".into(), vec![1, 2], 0),
                ("Gap".into(), vec![4, 5, 6], 1)
            ]
        );
        assert_eq!(c.snapshot().missed, 1);
    }

    #[test]
    fn reconnect_resumes_after_the_last_id() {
        let (mut t, s, c) = (Table::default(), Record::default(), Counters::default());
        t.follow("a", true);
        t.follow("b", true);
        let up = t.handle_confirmed("a").unwrap();
        settle(&mut t, &up, read(0, 1..=4, 4), &s, &c);
        let stale = t.handle_confirmed("b").unwrap();
        t.handle_lost();
        // A read asked before the loss is not applied.
        assert!(!t.is_due(&stale));
        t.handle_read(&stale, read(0, 1..=1, 1));
        assert_eq!(t.seal(), None);
        t.unfollow("b", false);
        let names = t.resubscribe(false);
        assert_eq!(names.iter().map(|n| &**n).collect::<Vec<_>>(), vec!["a"]);
        let up = t.handle_confirmed("a").unwrap();
        assert_eq!(up.since, 4);
        settle(&mut t, &up, read(4, 7..=9, 9), &s, &c);
        assert_eq!(
            s.take(),
            vec![
                ("Follow".into(), vec![1, 2, 3, 4], 0),
                ("Reconnect".into(), vec![7, 8, 9], 2)
            ]
        );
        assert_eq!(c.snapshot().missed, 2);
    }

    #[test]
    fn a_broker_that_lost_its_data_resets_the_ids() {
        let (mut t, s, c) = (Table::default(), Record::default(), Counters::default());
        t.follow("a", true);
        let up = t.handle_confirmed("a").unwrap();
        settle(&mut t, &up, read(0, 1..=9, 9), &s, &c);
        s.take();
        // New epoch seen at reconnect: from 0.
        t.handle_lost();
        t.resubscribe(true);
        let up = t.handle_confirmed("a").unwrap();
        assert_eq!(up.since, 0);
        settle(&mut t, &up, read(0, 1..=2, 2), &s, &c);
        live(&mut t, &s, &c, 3);
        assert_eq!(
            s.take(),
            vec![("Reset".into(), vec![1, 2], 0), ("live".into(), vec![3], 0)]
        );
        // Same epoch but a sequence behind the last id (data partly lost):
        // the read answers from 0, which is a reset as well.
        t.handle_lost();
        t.resubscribe(false);
        let up = t.handle_confirmed("a").unwrap();
        assert_eq!(up.since, 3);
        settle(&mut t, &up, read(0, 1..=1, 1), &s, &c);
        assert_eq!(s.take(), vec![("Reset".into(), vec![1], 0)]);
        assert_eq!(c.snapshot().resets, 2);
    }

    #[test]
    fn offline_follows_wait_for_the_connection() {
        let (mut t, s, c) = (Table::default(), Record::default(), Counters::default());
        assert!(!t.follow("a", false));
        assert!(!t.follow("b", false));
        assert!(!t.unfollow("b", false));
        assert_eq!(t.following(), 1);
        let names = t.resubscribe(false);
        assert_eq!(names.len(), 1);
        let up = t.handle_confirmed("a").unwrap();
        settle(&mut t, &up, read(0, 1..=1, 1), &s, &c);
        assert_eq!(s.take(), vec![("Follow".into(), vec![1], 0)]);
    }
}
