//! The node's side of following: per channel, whether the node is waiting
//! for its follow to be in step (and who waits with it) or follows it live,
//! and since when a live one has had no subscriber here. Sans-IO: the node
//! asks it what to do and tells it what happened; it never calls the link.
//!
//! # A `since` ahead of the mirror
//! A node's mirror trails the broker by the time a message takes to reach
//! it, so a client that saw id N on a node further along may resume here
//! while this mirror's last id is below N. Read as an earlier life (the
//! hub's rule for a `since` beyond the last id), it would be handed the
//! whole backlog again: ids it has (CI, 2026-12-02, a resume got 7..=10
//! from a mirror that had not yet kept 11 and 12). So such a subscriber
//! waits, live channel and all, until the mirror reaches its `since`, and
//! asks again; one still ahead after [`AHEAD_WAIT`] does come from an
//! earlier life of the broker (its data lost), and asks again with
//! `since = 0`, the whole backlog, as the rule says.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the node stands with one channel.
#[derive(Debug)]
enum Follow<W> {
    /// Asked to follow it; the first subscribers wait for the broker's
    /// backlog, which will be the mirror they are answered from.
    Waiting(Vec<W>),
    /// In step with the broker: the mirror answers every subscriber.
    /// `idle`: since when no subscriber has been here (the follow ends a
    /// linger after that). `ahead`: subscribers whose `since` the mirror
    /// has not reached yet (see `# A since ahead of the mirror`).
    Live {
        idle: Option<Instant>,
        ahead: Vec<Ahead<W>>,
    },
}

/// A subscriber waiting for the mirror to reach its `since`.
#[derive(Debug)]
struct Ahead<W> {
    waiter: W,
    since: u64,
    /// When it began to wait.
    at: Instant,
}

/// How long a subscriber whose `since` is ahead of a live mirror waits for
/// it before its `since` is read as an earlier life's. A message reaches
/// the nodes within milliseconds of each other; a second is room for a
/// loaded machine, and short beside a reconnecting client's patience.
pub(crate) const AHEAD_WAIT: Duration = Duration::from_secs(1);

/// What a subscribe on a channel asks of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    /// Live: join the mirror now.
    Join,
    /// Waiting already: the subscriber waits too.
    Wait,
    /// Not followed: follow it, and the subscriber waits.
    Follow,
}

/// Followed channels by name, and the order live ones went idle in.
#[derive(Debug)]
pub(crate) struct Follows<W> {
    channels: HashMap<Arc<str>, Follow<W>>,
    /// Channels that went idle, oldest first; an entry whose time is no
    /// longer the channel's `idle` is stale.
    idle: VecDeque<(Instant, Arc<str>)>,
    /// Subscribers waiting ahead of a mirror, over all channels: the
    /// housekeeping scan for those past [`AHEAD_WAIT`] is skipped at 0.
    ahead: usize,
}

impl<W> Default for Follows<W> {
    fn default() -> Self {
        Follows {
            channels: HashMap::new(),
            idle: VecDeque::new(),
            ahead: 0,
        }
    }
}

impl<W> Follows<W> {
    /// Channels followed (waiting or live).
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// Subscribers waiting for a follow to be in step, or for a mirror to
    /// reach their `since`.
    pub fn waiting(&self) -> usize {
        let follows: usize = self
            .channels
            .values()
            .map(|f| match f {
                Follow::Waiting(w) => w.len(),
                Follow::Live { .. } => 0,
            })
            .sum();
        follows + self.ahead
    }

    /// Whether `channel` is followed live (its mirror is in step).
    pub fn is_live(&self, channel: &str) -> bool {
        matches!(self.channels.get(channel), Some(Follow::Live { .. }))
    }

    /// Whether `channel` is followed at all.
    pub fn is_followed(&self, channel: &str) -> bool {
        self.channels.contains_key(channel)
    }

    /// What a subscribe on `channel` needs. A live channel has a subscriber
    /// again; `waiter` is kept when the subscriber has to wait, and
    /// `can_follow` says whether a follow can start now (the broker is up).
    /// `None`: it cannot be answered (not live, and the broker is down).
    pub fn subscribe(
        &mut self,
        channel: &Arc<str>,
        waiter: impl FnOnce() -> W,
        can_follow: bool,
    ) -> Option<Ask> {
        match self.channels.get_mut(channel) {
            Some(Follow::Live { idle, .. }) => {
                *idle = None;
                Some(Ask::Join)
            }
            Some(Follow::Waiting(waiters)) if can_follow => {
                waiters.push(waiter());
                Some(Ask::Wait)
            }
            None if can_follow => {
                self.channels
                    .insert(channel.clone(), Follow::Waiting(vec![waiter()]));
                Some(Ask::Follow)
            }
            _ => None,
        }
    }

    /// The broker handed `channel` over, in step: it goes live and its
    /// waiters are returned, to be told to ask again. `None`: the node does
    /// not follow it (any more). `empty`: no subscriber is here, so it is
    /// idle from `now`.
    pub fn followed(&mut self, channel: &str, empty: bool, now: Instant) -> Option<Vec<W>> {
        let (name, follow) = self.channels.get_key_value(channel)?;
        let name = name.clone();
        let waiters = match follow {
            Follow::Waiting(_) => {
                let live = Follow::Live {
                    idle: empty.then_some(now),
                    ahead: Vec::new(),
                };
                let Some(Follow::Waiting(w)) = self.channels.insert(name.clone(), live) else {
                    unreachable!("matched above");
                };
                if empty {
                    self.idle.push_back((now, name));
                }
                w
            }
            Follow::Live { .. } => Vec::new(),
        };
        Some(waiters)
    }

    /// A subscriber of live `channel` (it asked [`Ask::Join`]) whose
    /// `since` is past the mirror's last id waits for the mirror (see
    /// `# A since ahead of the mirror`). False when `channel` is not live.
    pub fn wait_ahead(&mut self, channel: &str, waiter: W, since: u64, now: Instant) -> bool {
        let Some(Follow::Live { ahead, .. }) = self.channels.get_mut(channel) else {
            return false;
        };
        ahead.push(Ahead {
            waiter,
            since,
            at: now,
        });
        self.ahead += 1;
        true
    }

    /// Whether any subscriber waits ahead of a mirror, on any channel.
    pub fn any_ahead(&self) -> bool {
        self.ahead > 0
    }

    /// The mirror of `channel` reached `last_id`: the subscribers waiting
    /// for an id up to it, to be told to ask again.
    pub fn caught_up(&mut self, channel: &str, last_id: u64) -> Vec<W> {
        let Some(Follow::Live { ahead, .. }) = self.channels.get_mut(channel) else {
            return Vec::new();
        };
        if ahead.is_empty() {
            return Vec::new();
        }
        let (done, wait) = std::mem::take(ahead)
            .into_iter()
            .partition::<Vec<_>, _>(|a| a.since <= last_id);
        *ahead = wait;
        self.ahead -= done.len();
        done.into_iter().map(|a| a.waiter).collect()
    }

    /// The subscribers that have waited ahead of a mirror for `wait` by
    /// `now`, with their channel and `since`.
    pub fn ahead_due(&mut self, now: Instant, wait: Duration) -> Vec<(Arc<str>, W, u64)> {
        let mut out = Vec::new();
        if self.ahead == 0 {
            return out;
        }
        for (name, follow) in &mut self.channels {
            let Follow::Live { ahead, .. } = follow else {
                continue;
            };
            if !ahead.iter().any(|a| a.at + wait <= now) {
                continue;
            }
            let (done, rest) = std::mem::take(ahead)
                .into_iter()
                .partition::<Vec<_>, _>(|a| a.at + wait <= now);
            *ahead = rest;
            out.extend(done.into_iter().map(|a| (name.clone(), a.waiter, a.since)));
        }
        self.ahead -= out.len();
        out
    }

    /// The broker is lost: every waiting subscriber is returned, to be
    /// refused (the follows stay, and go live when the broker is back). One
    /// waiting ahead of a mirror is refused too: the mirror cannot move on
    /// until the broker is back.
    pub fn lost(&mut self) -> Vec<W> {
        let mut out = Vec::new();
        for follow in self.channels.values_mut() {
            match follow {
                Follow::Waiting(w) => out.append(w),
                Follow::Live { ahead, .. } => out.extend(ahead.drain(..).map(|a| a.waiter)),
            }
        }
        self.ahead = 0;
        out
    }

    /// The last subscriber of live `channel` here left at `now`.
    pub fn left(&mut self, channel: &str, now: Instant) {
        if let Some((name, Follow::Live { idle: None, .. })) = self.channels.get_key_value(channel)
        {
            let name = name.clone();
            if let Some(Follow::Live { idle, .. }) = self.channels.get_mut(&name) {
                *idle = Some(now);
            }
            self.idle.push_back((now, name));
        }
    }

    /// The live channels idle for `linger` by `now`: they are no longer
    /// followed, and the caller unfollows them at the broker.
    pub fn due(&mut self, now: Instant, linger: Duration) -> Vec<Arc<str>> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.idle.front() {
            if *at + linger > now {
                break;
            }
            let (at, name) = self.idle.pop_front().expect("peeked");
            // One waiting ahead of the mirror keeps it (its channel was
            // made busy again by its subscribe, so this is belt and braces).
            let due = matches!(self.channels.get(&name),
                Some(Follow::Live { idle: Some(t), ahead }) if *t == at && ahead.is_empty());
            if due {
                self.channels.remove(&name);
                out.push(name);
            }
        }
        if self.idle.is_empty() && self.idle.capacity() > 64 {
            self.idle = VecDeque::new();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn the_first_subscriber_follows_later_ones_wait_then_join() {
        let t0 = Instant::now();
        let mut f: Follows<u32> = Follows::default();
        let a = name("a");
        assert_eq!(f.subscribe(&a, || 1, true), Some(Ask::Follow));
        assert_eq!(f.subscribe(&a, || 2, true), Some(Ask::Wait));
        assert_eq!((f.len(), f.waiting(), f.is_live("a")), (1, 2, false));
        assert_eq!(f.followed("a", true, t0), Some(vec![1, 2]));
        assert!(f.is_live("a"));
        assert_eq!(f.subscribe(&a, || 3, true), Some(Ask::Join));
        // A late replay of a channel not followed is not ours.
        assert_eq!(f.followed("b", true, t0), None);
        // Followed again while live (a reconnect): nobody waits.
        assert_eq!(f.followed("a", false, t0), Some(vec![]));
    }

    #[test]
    fn a_live_channel_is_unfollowed_a_linger_after_its_last_subscriber() {
        let t0 = Instant::now();
        let linger = Duration::from_secs(2);
        let mut f: Follows<u32> = Follows::default();
        let a = name("a");
        f.subscribe(&a, || 1, true);
        f.followed("a", false, t0);
        f.left("a", t0);
        assert!(f.due(t0 + Duration::from_secs(1), linger).is_empty());
        // Back before the linger ends: the idle entry is stale.
        assert_eq!(f.subscribe(&a, || 2, true), Some(Ask::Join));
        assert!(f.due(t0 + Duration::from_secs(3), linger).is_empty());
        f.left("a", t0 + Duration::from_secs(3));
        assert_eq!(f.due(t0 + Duration::from_secs(5), linger), vec![a.clone()]);
        assert!(!f.is_followed("a"));
        // Followed with nobody left (the waiters went): idle at once.
        f.subscribe(&a, || 3, true);
        f.followed("a", true, t0 + Duration::from_secs(6));
        assert_eq!(f.due(t0 + Duration::from_secs(8), linger), vec![a]);
    }

    #[test]
    fn a_since_ahead_of_the_mirror_waits_until_it_is_reached_or_for_long() {
        let t0 = Instant::now();
        let wait = Duration::from_secs(1);
        let mut f: Follows<u32> = Follows::default();
        let a = name("a");
        // Not live: nothing to wait ahead of.
        assert!(!f.wait_ahead("a", 0, 5, t0));
        f.subscribe(&a, || 1, true);
        f.followed("a", false, t0);
        assert!(!f.any_ahead());
        assert!(f.wait_ahead("a", 2, 7, t0));
        assert!(f.any_ahead());
        assert!(f.wait_ahead("a", 3, 9, t0 + Duration::from_millis(500)));
        assert_eq!(f.waiting(), 2);
        assert_eq!(f.caught_up("a", 6), Vec::<u32>::new());
        assert_eq!(f.caught_up("a", 8), vec![2]);
        assert!(f
            .ahead_due(t0 + Duration::from_millis(1400), wait)
            .is_empty());
        assert_eq!(
            f.ahead_due(t0 + Duration::from_millis(1500), wait),
            vec![(a.clone(), 3, 9)]
        );
        assert_eq!(f.waiting(), 0);
        assert!(!f.any_ahead());
        // Waiting ahead keeps the follow past the linger; lost, refused.
        f.left("a", t0);
        f.subscribe(&a, || 4, true);
        f.wait_ahead("a", 4, 20, t0);
        assert!(f.due(t0 + Duration::from_secs(5), wait).is_empty());
        assert_eq!(f.lost(), vec![4]);
        assert_eq!(f.waiting(), 0);
    }

    #[test]
    fn with_the_broker_down_waiters_are_refused_and_new_follows_too() {
        let t0 = Instant::now();
        let mut f: Follows<u32> = Follows::default();
        let (a, b) = (name("a"), name("b"));
        f.subscribe(&a, || 1, true);
        f.subscribe(&b, || 2, true);
        f.followed("b", false, t0);
        let mut refused = f.lost();
        refused.sort();
        assert_eq!(refused, vec![1]);
        // Down: a live channel still joins from its mirror; others cannot.
        assert_eq!(f.subscribe(&b, || 3, false), Some(Ask::Join));
        assert_eq!(f.subscribe(&a, || 4, false), None);
        assert_eq!(f.subscribe(&name("c"), || 5, false), None);
        // Back: the follow that waited goes live with nobody waiting.
        assert_eq!(f.followed("a", true, t0), Some(vec![]));
    }
}
