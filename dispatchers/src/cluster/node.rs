//! A node: this server's link to the broker, and how a subscribe, an
//! unsubscribe and a publish go through it. [`crate::Shared`] calls it with
//! the hub locked (its `state`), so that whether a channel is followed and
//! who is subscribed there change together.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use comet::{Accepted, Answer, Refusal, Replay};

use super::follows::{Ask, AHEAD_WAIT};
use super::sink::NodeSink;
use crate::broker::{self, Link};
use crate::deferred::{Deferred, Waiter};
use crate::group::Group;
use crate::shared::State;

/// How long a followed channel is kept after its last subscriber here left,
/// so that a long-poll's next poll (or a reconnect) does not unfollow and
/// follow again at the broker.
pub const LINGER: Duration = Duration::from_secs(2);

/// This server as one node of several sharing a broker.
pub struct Node {
    link: Link,
    state: Arc<Mutex<State>>,
    linger: Duration,
}

impl Node {
    /// Connects to the broker; fails at once, naming its URL, when it cannot
    /// be reached.
    pub(crate) fn connect(
        config: broker::Config,
        state: Arc<Mutex<State>>,
    ) -> Result<Node, broker::Error> {
        let sink = Arc::new(NodeSink {
            state: state.clone(),
        });
        let link = Link::connect(config, sink)?;
        Ok(Node {
            link,
            state,
            linger: LINGER,
        })
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    /// A subscribe on `channel`, with the hub locked (`st`). `None`: the
    /// channel is followed live and the hub answers it from the mirror as
    /// usual. Else the subscriber waits for the follow to be in step (the
    /// first one starts it), or is refused: past the channel limit, or with
    /// the broker down and no mirror to answer from.
    pub(crate) fn subscribe(
        &self,
        st: &mut State,
        channel: &Arc<str>,
        since: Option<u64>,
        group: &Group,
        token: u64,
        now: Instant,
    ) -> Option<Answer<Result<Replay, Refusal>>> {
        let up = self.link.is_up();
        // Only a new follow makes a channel: it must fit first.
        if up && !st.follows.is_followed(channel) && st.hub.reserve(channel, now).is_err() {
            return Some(Answer::Now(Err(Refusal::ChannelLimit)));
        }
        let waiter = || {
            let w = Waiter {
                group: group.clone(),
                token,
            };
            (w, since)
        };
        match st.follows.subscribe(channel, waiter, up) {
            Some(Ask::Join) => match since {
                // See `# A since ahead of the mirror` in `follows`.
                Some(since) if since > st.hub.last_id(channel) => {
                    if up && st.follows.wait_ahead(channel, waiter(), since, now) {
                        return Some(Answer::Later);
                    }
                    self.left(st, channel, now);
                    Some(Answer::Now(Err(Refusal::Broker)))
                }
                _ => None,
            },
            Some(Ask::Wait) => Some(Answer::Later),
            Some(Ask::Follow) => {
                st.hub.pin(channel);
                self.link.follow(channel);
                Some(Answer::Later)
            }
            None => Some(Answer::Now(Err(Refusal::Broker))),
        }
    }

    /// A subscriber of `channel` left (the hub locked): the follow lingers
    /// once nobody is left here.
    pub(crate) fn left(&self, st: &mut State, channel: &str, now: Instant) {
        if st.hub.subscribers_of(channel) == 0 {
            st.follows.left(channel, now);
        }
    }

    /// Unfollows the channels idle for the linger, and answers the
    /// subscribers that waited ahead of a mirror for too long (the hub
    /// locked).
    pub(crate) fn sweep(&self, st: &mut State, now: Instant) {
        for (channel, (waiter, _), since) in st.follows.ahead_due(now, AHEAD_WAIT) {
            // Still ahead: an earlier life's id, so the whole backlog.
            let since = if since <= st.hub.last_id(&channel) {
                since
            } else {
                0
            };
            waiter.answer(Deferred::Subscribe {
                channel: channel.clone(),
                since: Some(since),
            });
            self.left(st, &channel, now);
        }
        for channel in st.follows.due(now, self.linger) {
            st.hub.unpin(&channel, now);
            self.link.unfollow(&channel);
        }
    }

    /// A publish: the broker gives the id, and the message comes back to
    /// this node's subscribers through the link like everyone else's, so it
    /// is not handed to them here. The answer goes to the publisher's group.
    pub(crate) fn publish(
        &self,
        channel: &Arc<str>,
        data: &str,
        group: &Group,
        token: u64,
    ) -> Answer<Result<Accepted, Refusal>> {
        if !self.link.is_up() {
            return Answer::Now(Err(Refusal::Broker));
        }
        let waiter = Waiter {
            group: group.clone(),
            token,
        };
        let (state, name) = (self.state.clone(), channel.clone());
        self.link.publish(channel, data, move |result| {
            let answer = match result {
                // The subscribers it goes to on this node, as far as known
                // now (the others are other nodes' to count).
                Ok(id) => Deferred::Published(Accepted {
                    id,
                    subscribers: lock(&state).hub.subscribers_of(&name),
                }),
                Err(_) => Deferred::Refused(Refusal::Broker),
            };
            waiter.answer(answer);
        });
        Answer::Later
    }

    /// What `/stats` shows under `broker` (the hub locked: `st`).
    pub(crate) fn stats_json(&self, st: &State) -> serde_json::Value {
        let config = self.link.config();
        let mut v = serde_json::json!({
            "url": config.url,
            "structure": config.structure.name(),
            "prefix": config.prefix,
            "linger_secs": self.linger.as_secs_f64(),
            "followed_here": st.follows.len(),
            "waiting": st.follows.waiting(),
            "last_error": self.link.last_error(),
        });
        if let (Some(obj), serde_json::Value::Object(stats)) =
            (v.as_object_mut(), self.link.stats().to_json())
        {
            obj.extend(stats);
        }
        v
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}
