//! What the broker link hands the node, put into the hub: live messages and
//! follows in step fanned out to the groups exactly as a local publish is,
//! waiting subscribers told to ask again, and what a lost broker means.
//!
//! Called on the link's threads with its follow table locked; each call
//! takes the hub lock (the link's methods never take the table lock, so
//! the order table, then hub, is the only one). Nothing here blocks: every
//! hand-off is an inbox post.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use comet::hub::Numbered;
use comet::{Hub, Refusal};

use crate::broker::{Cause, Message, Replay, Sink};
use crate::deferred::{Deferred, Item};
use crate::group::Group;
use crate::shared::State;

/// The node's [`Sink`]: the hub and the follow table, behind the hub lock.
pub(crate) struct NodeSink {
    pub state: Arc<Mutex<State>>,
}

impl NodeSink {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Sink for NodeSink {
    fn message(&self, m: Message) {
        let now = Instant::now();
        let numbered = numbered(m.id, m.time_ms, m.data, now);
        let mut st = self.lock();
        // A message of a channel unfollowed a moment ago, or of a follow
        // not yet in step, is not this node's to hand on.
        if st.follows.is_live(&m.channel) {
            hand_on(&mut st.hub, &m.channel, numbered, now);
            ask_again_caught_up(&mut st, &m.channel, now);
        }
    }

    fn followed(&self, channel: &str, cause: Cause, replay: Replay) {
        let now = Instant::now();
        let messages: Vec<Numbered> = replay
            .messages
            .into_iter()
            .map(|m| numbered(m.id, m.time_ms, m.data, now))
            .collect();
        let mut st = self.lock();
        let State { hub, follows } = &mut *st;
        if !follows.is_followed(channel) {
            return;
        }
        let name: Arc<str> = Arc::from(channel);
        if cause == Cause::Reset {
            // The broker lost the channel's ids: subscribers holding ids of
            // its last life would drop the new ones as old. They end, and
            // come back with their last id, which this life reads as an
            // earlier one (the whole new backlog).
            for g in hub.groups(channel) {
                g.0.post(Item::End(name.clone()));
            }
        }
        if cause == Cause::Reset || !follows.is_live(channel) {
            // A first follow (nobody has joined its mirror yet), or a new
            // life: the broker's backlog becomes the mirror.
            let _ = hub.replace(channel, messages, replay.last_id, now);
        } else {
            // In step again after a reconnect or a gap: what came meanwhile
            // goes to the subscribers as live messages would, a skip told
            // as missed by each `Conn`.
            for m in messages {
                hand_on(hub, channel, m, now);
            }
            hub.advance(channel, replay.last_id);
        }
        let empty = hub.subscribers_of(channel) == 0;
        for (waiter, since) in follows.followed(channel, empty, now).unwrap_or_default() {
            waiter.answer(Deferred::Subscribe {
                channel: name.clone(),
                since,
            });
        }
        ask_again_caught_up(&mut st, channel, now);
    }

    fn link_state(&self, up: bool) {
        if up {
            return;
        }
        // Subscribers still waiting for a follow would wait for as long as
        // the broker is away: they are refused, and may go to another node.
        let waiters = self.lock().follows.lost();
        for (waiter, _) in waiters {
            waiter.answer(Deferred::Refused(Refusal::Broker));
        }
    }
}

/// Tells the subscribers waiting ahead of `channel`'s mirror that it has
/// reached their `since` to ask again (see `# A since ahead of the mirror`
/// in `follows`). They ask with the `since` they gave. None has joined yet,
/// so a channel with nobody else here lingers from now, as if they had
/// left; one that asks again makes it busy again.
fn ask_again_caught_up(st: &mut State, channel: &str, now: Instant) {
    // Every broker message comes here: no lookups while nobody waits.
    if !st.follows.any_ahead() {
        return;
    }
    let last = st.hub.last_id(channel);
    let waiters = st.follows.caught_up(channel, last);
    if waiters.is_empty() {
        return;
    }
    let name: Arc<str> = Arc::from(channel);
    for (waiter, since) in waiters {
        waiter.answer(Deferred::Subscribe {
            channel: name.clone(),
            since,
        });
    }
    if st.hub.subscribers_of(channel) == 0 {
        st.follows.left(channel, now);
    }
}

/// Keeps `m` in `channel`'s mirror and hands it to every group with
/// subscribers there, as a local publish does.
fn hand_on(hub: &mut Hub<Group>, channel: &str, m: Numbered, now: Instant) {
    if let Ok(Some(p)) = hub.deliver(channel, m, now) {
        for g in &p.groups {
            g.0.deliver(&p.message);
        }
    }
}

/// A broker message as the hub keeps it: its age on the broker's clock
/// (milliseconds since the Unix epoch) carried over to this process's
/// monotonic clock, so that the mirror ages it as the broker's backlog does.
fn numbered(id: u64, time_ms: u64, data: Box<str>, now: Instant) -> Numbered {
    let wall_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let age = Duration::from_millis(wall_ms.saturating_sub(time_ms));
    Numbered {
        id,
        data,
        at: now.checked_sub(age).unwrap_or(now),
    }
}
