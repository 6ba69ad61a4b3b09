//! Fan-out the tokio way: one `tokio::sync::broadcast` channel per hub
//! channel, a receiver per subscriber, behind a [`comet::Backend`] of its
//! own.
//!
//! # Against the groups rule
//! In the other dispatchers a group is whatever waits on its own (a
//! reactor, a ring, a connection thread), and a publish hands the message
//! once to each group. Here the group is the *channel's* broadcast sender:
//! the hub hands a message to it once, whatever the number of subscribers
//! or workers, and the broadcast wakes every receiving task, on whichever
//! worker the scheduler runs it. So a publish is one hand-off under the hub
//! lock, and the wake-ups (one per subscriber, as for threads) happen in
//! `Sender::send`, also under the hub lock, since the hub calls the inbox
//! with it held.
//!
//! # Order and subscribing
//! A subscriber's receiver is made *before* the hub replays its backlog,
//! with the map of channels locked (the map, then the hub: a publish takes
//! the hub and then the sender's own lock, never the map). A message
//! published in between is both replayed and received; the core drops the
//! second copy (it keeps the last id it handed on), so nothing is lost or
//! doubled. The broadcast keeps a channel's messages in send order, which
//! is id order (sends happen with the hub locked).
//!
//! # Slow subscribers
//! A broadcast channel holds [`CAPACITY`] messages; a receiver that falls
//! further behind is told how many it lost (`Lagged`), and the connection
//! drops its subscriber as too slow (counted in `dropped_slow`), as a
//! connection thread does when its inbox overflows: never silently.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use comet::{Accepted, Answer, Backend, Message, Refusal, Replay};
use tokio::sync::broadcast;

use crate::deferred::Item;
use crate::group::{Group, Inbox};
use crate::Shared;

/// Messages a channel's broadcast holds for its slowest receiver: as many
/// as a connection thread's inbox (`blocking::INBOX_CAPACITY`).
pub const CAPACITY: usize = 256;

/// One hub channel's broadcast: the group the hub hands its messages to.
pub(super) struct Topic {
    tx: broadcast::Sender<Arc<Message>>,
}

impl Inbox for Topic {
    fn deliver(&self, message: &Arc<Message>) {
        // Fails only with no receiver left, and then nobody is to be told.
        let _ = self.tx.send(message.clone());
    }

    /// Only a broker posts anything but messages (answers given later, the
    /// end of a channel's life), and tokio refuses `--broker` (see
    /// [`super::NO_BROKER`]).
    fn post(&self, item: Item) {
        if let Item::Message(m) = item {
            self.deliver(&m);
        }
    }
}

/// A connection's subscription: its channel's topic and its receiver.
pub(super) struct Subscription {
    topic: Arc<Topic>,
    pub(super) rx: broadcast::Receiver<Arc<Message>>,
}

/// The dispatcher's channels, each with its broadcast.
pub(super) struct Fanout {
    pub(super) shared: Arc<Shared>,
    topics: Mutex<HashMap<Arc<str>, Arc<Topic>>>,
}

impl Fanout {
    pub(super) fn new(shared: Arc<Shared>) -> Fanout {
        Fanout {
            shared,
            topics: Mutex::new(HashMap::new()),
        }
    }

    fn topics(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Topic>>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The hub as one connection task sees it: the shared hub for ids, the
/// backlog and publishing, the channel's broadcast for fan-out.
pub(super) struct TaskBackend<'a> {
    pub(super) fanout: &'a Fanout,
    pub(super) sub: &'a mut Option<Subscription>,
}

impl Backend for TaskBackend<'_> {
    fn subscribe(
        &mut self,
        channel: &Arc<str>,
        since: Option<u64>,
        now: Instant,
    ) -> Answer<Result<Replay, Refusal>> {
        let mut topics = self.fanout.topics();
        let topic = topics
            .entry(channel.clone())
            .or_insert_with(|| {
                Arc::new(Topic {
                    tx: broadcast::Sender::new(CAPACITY),
                })
            })
            .clone();
        // Before the replay (see `# Order and subscribing`).
        let rx = topic.tx.subscribe();
        let group = Group(topic.clone());
        let shared = &self.fanout.shared;
        let replay = match shared.subscribe_here(channel, since, &group, now) {
            Ok(replay) => replay,
            Err(refusal) => {
                drop(rx);
                if topic.tx.receiver_count() == 0 {
                    topics.remove(channel);
                }
                return Answer::Now(Err(refusal));
            }
        };
        drop(topics);
        *self.sub = Some(Subscription { topic, rx });
        let replayed = replay.messages.len() as u64;
        shared
            .counters
            .delivered
            .fetch_add(replayed, Ordering::Relaxed);
        Answer::Now(Ok(replay))
    }

    fn unsubscribe(&mut self, channel: &Arc<str>, now: Instant) {
        let Some(Subscription { topic, rx }) = self.sub.take() else {
            return;
        };
        let mut topics = self.fanout.topics();
        self.fanout
            .shared
            .unsubscribe(channel, &Group(topic.clone()), now);
        drop(rx);
        // With the map locked, so that a subscriber joining meanwhile finds
        // either this topic with its receiver counted, or none.
        if topic.tx.receiver_count() == 0 {
            topics.remove(channel);
        }
    }

    fn publish(
        &mut self,
        channel: &Arc<str>,
        data: Box<str>,
        now: Instant,
    ) -> Answer<Result<Accepted, Refusal>> {
        Answer::Now(self.fanout.shared.publish_here(channel, data, now))
    }

    fn stats(&mut self) -> String {
        self.fanout.shared.stats_json()
    }

    fn unresponsive(&mut self) {
        self.fanout
            .shared
            .counters
            .dropped_unresponsive
            .fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend<'a>(fanout: &'a Fanout, sub: &'a mut Option<Subscription>) -> TaskBackend<'a> {
        TaskBackend { fanout, sub }
    }

    #[test]
    fn one_hand_off_reaches_every_receiver_and_a_topic_ends_with_its_last() {
        let shared = Arc::new(Shared::new(
            comet::Config::default(),
            "tokio",
            serde_json::json!({}),
            0,
        ));
        let fanout = Fanout::new(shared.clone());
        let ch: Arc<str> = "room".into();
        let now = Instant::now();
        let (mut a, mut b) = (None, None);
        for sub in [&mut a, &mut b] {
            let r = backend(&fanout, sub).subscribe(&ch, None, now);
            assert!(matches!(r, Answer::Now(Ok(_))));
        }
        assert_eq!(fanout.topics().len(), 1, "one broadcast per channel");
        let p = backend(&fanout, &mut None).publish(&ch, "hello".into(), now);
        assert!(matches!(
            p,
            Answer::Now(Ok(Accepted {
                id: 1,
                subscribers: 2
            }))
        ));
        for sub in [&mut a, &mut b] {
            let m = sub.as_mut().unwrap().rx.try_recv().expect("delivered");
            assert_eq!((m.id(), m.data()), (1, "hello"));
        }
        backend(&fanout, &mut a).unsubscribe(&ch, now);
        assert_eq!(fanout.topics().len(), 1, "b still listens");
        backend(&fanout, &mut b).unsubscribe(&ch, now);
        assert_eq!(
            fanout.topics().len(),
            0,
            "no topic outlives its subscribers"
        );
        let p = backend(&fanout, &mut None).publish(&ch, "nobody".into(), now);
        assert!(matches!(
            p,
            Answer::Now(Ok(Accepted {
                id: 2,
                subscribers: 0
            }))
        ));
    }
}
