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
//! # Stopping
//! [`Fanout::close`] drops every channel's sender once publishing has
//! stopped: a receiver then hands on what it still holds and ends with
//! `Closed`, which is how a subscribed task learns of the stop (see
//! `conn.rs`, `# Stopping`). A channel subscribed to after that gets a
//! topic closed from the start.
//!
//! # Answers given later
//! On a node (`--broker`, see `docs/DESIGN.md`, Several nodes) a subscribe
//! may wait for its channel to be followed, and a publish for the broker's
//! id ([`Answer::Later`]). The channel's broadcast is no way back to one
//! connection, so such a connection gets an answer path of its own, an
//! unbounded `tokio::sync::mpsc` channel whose sender is the group the
//! answer is posted to ([`Answers`]), and its task waits on the receiver
//! ([`Slot::Waiting`]) until the answer comes. Only a connection waiting
//! for an answer holds one, in the slot a subscription takes otherwise (a
//! connection waits for one thing at a time): an idle subscriber is no
//! bigger for it. A WebSocket is the exception: it publishes while
//! subscribed, several frames at once, so its subscription is held in the
//! boxed [`Wait`] (its receiver keeps what arrives meanwhile) with a count
//! of the answers still to come, and comes back with the last. Each
//! answer's giver holds the path; once all have let go (every answer so
//! far given), the next publish's path is a new one that takes over what
//! the old still holds unread ([`Wait::path`]). Without a
//! broker every answer is given at once and no answer path is made.
//!
//! When the broker loses a channel's ids, the channel's subscriptions end
//! ([`Item::End`]): the topic swaps its sender for a new one, so that each
//! receiver of the old one hands on what it holds and ends (its task shuts
//! its connection down, as on the stop), and clients coming back with
//! their last id get the new sender's messages.
//!
//! # Slow subscribers
//! A broadcast channel holds [`CAPACITY`] messages; a receiver that falls
//! further behind is told how many it lost (`Lagged`), and the connection
//! drops its subscriber as too slow (counted in `dropped_slow`), as a
//! connection thread does when its inbox overflows: never silently.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use comet::{Accepted, Answer, Backend, Message, Refusal, Replay};
use tokio::sync::{broadcast, mpsc};

use super::deadlines::Deadlines;
use crate::deferred::{Item, Reply};
use crate::group::{Group, Inbox};
use crate::Shared;

/// Messages a channel's broadcast holds for its slowest receiver: as many
/// as a connection thread's inbox (`blocking::INBOX_CAPACITY`).
pub const CAPACITY: usize = 256;

/// One hub channel's broadcast: the group the hub hands its messages to.
/// Its sender is gone once the dispatcher stops.
pub(super) struct Topic {
    tx: Mutex<Option<broadcast::Sender<Arc<Message>>>>,
}

impl Topic {
    fn new(closed: bool) -> Topic {
        Topic {
            tx: Mutex::new((!closed).then(|| broadcast::Sender::new(CAPACITY))),
        }
    }

    fn tx(&self) -> MutexGuard<'_, Option<broadcast::Sender<Arc<Message>>>> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver of what is sent from now on; of a closed topic, one that
    /// ends at once.
    fn subscribe(&self) -> broadcast::Receiver<Arc<Message>> {
        match &*self.tx() {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    fn receivers(&self) -> usize {
        self.tx().as_ref().map_or(0, |tx| tx.receiver_count())
    }

    fn close(&self) {
        self.tx().take();
    }

    /// Ends every receiver after what it holds; a later subscriber gets
    /// what is sent from now on (see `# Answers given later`).
    fn end(&self) {
        let mut tx = self.tx();
        if tx.is_some() {
            *tx = Some(broadcast::Sender::new(CAPACITY));
        }
    }
}

impl Inbox for Topic {
    fn deliver(&self, message: &Arc<Message>) {
        if let Some(tx) = &*self.tx() {
            // Fails only with no receiver left, and then nobody is to be told.
            let _ = tx.send(message.clone());
        }
    }

    /// Answers given later go to the connection's own [`Answers`], never
    /// to a topic.
    fn post(&self, item: Item) {
        match item {
            Item::Message(m) => self.deliver(&m),
            Item::End(_) => self.end(),
            Item::Answer(_) => debug_assert!(false, "an answer posted to a broadcast"),
        }
    }
}

/// One connection's answer path while it waits for an answer given later:
/// the group the answer is posted to (see `# Answers given later`).
struct Answers(mpsc::UnboundedSender<Box<Reply>>);

impl Answers {
    fn open() -> (Group, mpsc::UnboundedReceiver<Box<Reply>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Group(Arc::new(Answers(tx))), rx)
    }
}

impl Inbox for Answers {
    /// Never joins a channel: nothing is delivered here.
    fn deliver(&self, _: &Arc<Message>) {}

    /// Only answers are posted here. A send fails only once the task has
    /// stopped waiting, and then nobody is to be told (see
    /// [`crate::deferred`]).
    fn post(&self, item: Item) {
        if let Item::Answer(reply) = item {
            let _ = self.0.send(reply);
        }
    }
}

/// What a connection's task holds of the fan-out: a subscription, or the
/// answer path of an answer it waits for, or (`Waiting(None)`) nothing.
// Two variants, not three: the subscription's one spare value (a null
// `Arc`) tells them apart, and the slot stays the subscription's 24 bytes.
pub(super) enum Slot {
    Subscribed(Subscription),
    Waiting(Option<Box<Wait>>),
}

impl Slot {
    pub(super) const IDLE: Slot = Slot::Waiting(None);

    /// One answer came: once none is left to come, the subscription held
    /// meanwhile (a WebSocket's) is back in its place.
    pub(super) fn answered(&mut self) {
        let Slot::Waiting(Some(wait)) = self else {
            return;
        };
        wait.pending = wait.pending.saturating_sub(1);
        if wait.pending == 0 {
            self.abandoned();
        }
    }

    /// No answer can come any more (the path's senders are gone, or none is
    /// left to come): the wait ends, its subscription back in its place.
    pub(super) fn abandoned(&mut self) {
        if let Slot::Waiting(Some(wait)) = self {
            let held = wait.held.take();
            *self = held.map_or(Slot::IDLE, Slot::Subscribed);
        }
    }
}

/// Answers waited for: their path, how many are still to come, and the
/// subscription of a WebSocket whose client published (see `# Answers
/// given later`). Boxed: the slot stays the subscription's size.
pub(super) struct Wait {
    pub(super) answers: mpsc::UnboundedReceiver<Box<Reply>>,
    /// Weak: the path ends (the receiver's `None`) once every answer is
    /// given or its giver gone, not held open by its own waiter.
    group: Weak<dyn Inbox>,
    pending: u32,
    held: Option<Subscription>,
}

impl Wait {
    /// The group to post one more answer to: the path waited on, or, when
    /// every giver of its answers has let go of it, a new one that takes
    /// over the answers given on the old one and not read yet. (Replacing
    /// the receiver outright lost them: a WebSocket's first publish,
    /// answered between its second and third, left the connection waiting
    /// for an answer it had been given; CI, 2026-12-03, tokio.)
    fn path(&mut self) -> Group {
        if let Some(inbox) = self.group.upgrade() {
            return Group(inbox);
        }
        let (group, rx) = Answers::open();
        let mut old = std::mem::replace(&mut self.answers, rx);
        while let Ok(reply) = old.try_recv() {
            group.0.post(Item::Answer(reply));
        }
        self.group = Arc::downgrade(&group.0);
        group
    }
}

impl Default for Slot {
    fn default() -> Slot {
        Slot::IDLE
    }
}

/// A connection's subscription: its channel's topic and its receiver.
pub(super) struct Subscription {
    topic: Arc<Topic>,
    pub(super) rx: broadcast::Receiver<Arc<Message>>,
}

/// The dispatcher's channels, each with its broadcast, and what else its
/// tasks share: the hub, the connections' deadlines.
pub(super) struct Fanout {
    pub(super) shared: Arc<Shared>,
    pub(super) deadlines: Deadlines,
    topics: Mutex<Topics>,
}

#[derive(Default)]
struct Topics {
    map: HashMap<Arc<str>, Arc<Topic>>,
    closed: bool,
}

impl Fanout {
    pub(super) fn new(shared: Arc<Shared>) -> Fanout {
        Fanout {
            shared,
            deadlines: Deadlines::new(),
            topics: Mutex::default(),
        }
    }

    fn topics(&self) -> MutexGuard<'_, Topics> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends every subscription after what its receiver holds (see
    /// `# Stopping`); for after publishing has stopped.
    pub(super) fn close(&self) {
        let mut topics = self.topics();
        topics.closed = true;
        for topic in topics.map.values() {
            topic.close();
        }
    }
}

/// The hub as one connection task sees it: the shared hub for ids, the
/// backlog and publishing, the channel's broadcast for fan-out.
pub(super) struct TaskBackend<'a> {
    pub(super) fanout: &'a Fanout,
    pub(super) sub: &'a mut Slot,
}

impl TaskBackend<'_> {
    /// The group an answer given later goes to, and its receiver: made only
    /// on a node, the one place an answer can come later.
    /// A connection already waiting (a WebSocket whose client sent several
    /// publishes at once) keeps its path, renewed if its givers are gone.
    fn answers(&mut self) -> Option<(Group, Option<mpsc::UnboundedReceiver<Box<Reply>>>)> {
        self.fanout.shared.node()?;
        if let Slot::Waiting(Some(wait)) = &mut *self.sub {
            return Some((wait.path(), None));
        }
        let (group, rx) = Answers::open();
        Some((group, Some(rx)))
    }

    /// Waits for the answer if it is later: on `rx`, a new path, or on the
    /// one already waited on. A subscription (a WebSocket's) is held in the
    /// wait, its receiver keeping what comes meanwhile.
    fn wait<T>(
        &mut self,
        answer: &Answer<T>,
        group: &Group,
        rx: Option<mpsc::UnboundedReceiver<Box<Reply>>>,
    ) {
        if !matches!(answer, Answer::Later) {
            return;
        }
        match (std::mem::take(self.sub), rx) {
            // `answers` gave the path waited on already, so no new one.
            (Slot::Waiting(Some(mut wait)), _) => {
                wait.pending += 1;
                *self.sub = Slot::Waiting(Some(wait));
            }
            (slot, Some(answers)) => {
                let held = match slot {
                    Slot::Subscribed(sub) => Some(sub),
                    Slot::Waiting(_) => None,
                };
                *self.sub = Slot::Waiting(Some(Box::new(Wait {
                    answers,
                    group: Arc::downgrade(&group.0),
                    pending: 1,
                    held,
                })));
            }
            (slot, None) => *self.sub = slot,
        }
    }
}

impl Backend for TaskBackend<'_> {
    fn subscribe(
        &mut self,
        channel: &Arc<str>,
        since: Option<u64>,
        now: Instant,
    ) -> Answer<Result<Replay, Refusal>> {
        let mut topics = self.fanout.topics();
        let closed = topics.closed;
        let topic = topics
            .map
            .entry(channel.clone())
            .or_insert_with(|| Arc::new(Topic::new(closed)))
            .clone();
        // Before the replay (see `# Order and subscribing`).
        let rx = topic.subscribe();
        let group = Group(topic.clone());
        let (answers, waiting) = self.answers().unzip();
        let shared = &self.fanout.shared;
        let answer = shared.subscribe_answered_at(
            channel,
            since,
            &group,
            answers.as_ref().unwrap_or(&group),
            0,
            now,
        );
        let waiting = waiting.flatten();
        let replay = match answer {
            Answer::Now(Ok(replay)) => replay,
            other => {
                drop(rx);
                remove_if_unheard(&mut topics, channel, &topic);
                drop(topics);
                if let Some(answers) = &answers {
                    self.wait(&other, answers, waiting);
                }
                return other;
            }
        };
        drop(topics);
        *self.sub = Slot::Subscribed(Subscription { topic, rx });
        let replayed = replay.messages.len() as u64;
        shared
            .counters
            .delivered
            .fetch_add(replayed, Ordering::Relaxed);
        Answer::Now(Ok(replay))
    }

    fn unsubscribe(&mut self, channel: &Arc<str>, now: Instant) {
        let held = match std::mem::take(self.sub) {
            Slot::Subscribed(sub) => sub,
            // A WebSocket closing with publishes unanswered: the answers
            // find nobody waiting, which is no loss (see `crate::deferred`).
            Slot::Waiting(Some(wait)) => match wait.held {
                Some(sub) => sub,
                None => return,
            },
            Slot::Waiting(None) => return,
        };
        let Subscription { topic, rx } = held;
        let mut topics = self.fanout.topics();
        self.fanout
            .shared
            .unsubscribe(channel, &Group(topic.clone()), now);
        drop(rx);
        remove_if_unheard(&mut topics, channel, &topic);
    }

    fn publish(
        &mut self,
        channel: &Arc<str>,
        data: Box<str>,
        now: Instant,
    ) -> Answer<Result<Accepted, Refusal>> {
        let Some((answers, rx)) = self.answers() else {
            return Answer::Now(self.fanout.shared.publish_here(channel, data, now));
        };
        let answer = self.fanout.shared.publish(channel, data, &answers, 0, now);
        self.wait(&answer, &answers, rx);
        answer
    }

    fn stats(&mut self) -> String {
        self.fanout.shared.stats_json()
    }

    fn idle_timeout(&mut self) {
        self.fanout
            .shared
            .counters
            .closed_idle
            .fetch_add(1, Ordering::Relaxed);
    }

    fn unresponsive(&mut self) {
        self.fanout
            .shared
            .counters
            .dropped_unresponsive
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Drops `channel`'s topic from the map once nobody receives from it, with
/// the map locked, so that a subscriber joining meanwhile finds either this
/// topic with its receiver counted, or none; a topic that is no longer the
/// map's (its subscribers ended) stays out of it.
fn remove_if_unheard(topics: &mut Topics, channel: &str, topic: &Arc<Topic>) {
    let current = topics
        .map
        .get(channel)
        .is_some_and(|t| Arc::ptr_eq(t, topic));
    if current && topic.receivers() == 0 {
        topics.map.remove(channel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend<'a>(fanout: &'a Fanout, sub: &'a mut Slot) -> TaskBackend<'a> {
        TaskBackend { fanout, sub }
    }

    fn receiver(slot: &mut Slot) -> &mut broadcast::Receiver<Arc<Message>> {
        match slot {
            Slot::Subscribed(sub) => &mut sub.rx,
            _ => panic!("not subscribed"),
        }
    }

    fn fanout() -> Fanout {
        Fanout::new(Arc::new(Shared::new(
            comet::Config::default(),
            "tokio",
            serde_json::json!({}),
            0,
        )))
    }

    #[test]
    fn a_path_renewed_after_its_givers_left_keeps_the_answers_given_on_it() {
        let (group, answers) = Answers::open();
        let mut wait = Wait {
            answers,
            group: Arc::downgrade(&group.0),
            pending: 2,
            held: None,
        };
        let reply = |token| {
            Item::Answer(Box::new(Reply {
                token,
                answer: crate::deferred::Deferred::Refused(Refusal::Broker),
            }))
        };
        // Still held by a giver: the same path.
        assert!(Arc::ptr_eq(&wait.path().0, &group.0));
        group.0.post(reply(1));
        drop(group);
        let renewed = wait.path();
        renewed.0.post(reply(2));
        drop(renewed);
        let tokens: Vec<u64> = std::iter::from_fn(|| wait.answers.try_recv().ok())
            .map(|r| r.token)
            .collect();
        assert_eq!(tokens, [1, 2], "the first answer, given before, kept");
        assert!(wait.answers.try_recv().is_err());
    }

    #[test]
    fn one_hand_off_reaches_every_receiver_and_a_topic_ends_with_its_last() {
        let fanout = fanout();
        let ch: Arc<str> = "room".into();
        let now = Instant::now();
        let (mut a, mut b) = (Slot::IDLE, Slot::IDLE);
        for sub in [&mut a, &mut b] {
            let r = backend(&fanout, sub).subscribe(&ch, None, now);
            assert!(matches!(r, Answer::Now(Ok(_))));
        }
        assert_eq!(fanout.topics().map.len(), 1, "one broadcast per channel");
        let p = backend(&fanout, &mut Slot::default()).publish(&ch, "hello".into(), now);
        assert!(matches!(
            p,
            Answer::Now(Ok(Accepted {
                id: 1,
                subscribers: 2
            }))
        ));
        for sub in [&mut a, &mut b] {
            let m = receiver(sub).try_recv().expect("delivered");
            assert_eq!((m.id(), m.data()), (1, "hello"));
        }
        backend(&fanout, &mut a).unsubscribe(&ch, now);
        assert_eq!(fanout.topics().map.len(), 1, "b still listens");
        backend(&fanout, &mut b).unsubscribe(&ch, now);
        assert_eq!(
            fanout.topics().map.len(),
            0,
            "no topic outlives its subscribers"
        );
        let p = backend(&fanout, &mut Slot::default()).publish(&ch, "nobody".into(), now);
        assert!(matches!(
            p,
            Answer::Now(Ok(Accepted {
                id: 2,
                subscribers: 0
            }))
        ));
    }

    #[test]
    fn a_close_ends_each_receiver_after_what_it_holds_and_a_later_subscriber_at_once() {
        let fanout = fanout();
        let ch: Arc<str> = "room".into();
        let now = Instant::now();
        let mut sub = Slot::IDLE;
        let r = backend(&fanout, &mut sub).subscribe(&ch, None, now);
        assert!(matches!(r, Answer::Now(Ok(_))));
        for data in ["one", "two"] {
            let p = backend(&fanout, &mut Slot::default()).publish(&ch, data.into(), now);
            assert!(matches!(p, Answer::Now(Ok(_))));
        }
        fanout.close();
        let rx = receiver(&mut sub);
        let held: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok().map(|m| m.id())).collect();
        assert_eq!(held, [1, 2], "what was sent before the close is handed on");
        assert!(
            matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Closed)),
            "then the receiver ends"
        );
        let mut late = Slot::IDLE;
        let r = backend(&fanout, &mut late).subscribe(&"other".into(), None, now);
        assert!(matches!(r, Answer::Now(Ok(_))));
        let rx = receiver(&mut late);
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Closed)
        ));
        backend(&fanout, &mut sub).unsubscribe(&ch, now);
        backend(&fanout, &mut late).unsubscribe(&"other".into(), now);
        assert_eq!(
            fanout.topics().map.len(),
            0,
            "closed topics go with their subscribers"
        );
    }

    #[test]
    fn an_end_ends_each_receiver_after_what_it_holds_and_the_channel_goes_on() {
        let fanout = fanout();
        let ch: Arc<str> = "room".into();
        let now = Instant::now();
        let mut old = Slot::default();
        let r = backend(&fanout, &mut old).subscribe(&ch, None, now);
        assert!(matches!(r, Answer::Now(Ok(_))));
        let p = backend(&fanout, &mut Slot::default()).publish(&ch, "old".into(), now);
        assert!(matches!(p, Answer::Now(Ok(_))));
        let topic = fanout.topics().map[&ch].clone();
        Group(topic).0.post(Item::End(ch.clone()));
        let mut new = Slot::default();
        let r = backend(&fanout, &mut new).subscribe(&ch, Some(1), now);
        assert!(matches!(r, Answer::Now(Ok(_))));
        let p = backend(&fanout, &mut Slot::default()).publish(&ch, "new".into(), now);
        assert!(matches!(p, Answer::Now(Ok(_))));
        let rx = receiver(&mut old);
        assert_eq!(rx.try_recv().expect("held").data(), "old");
        assert!(
            matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Closed)),
            "then the old receiver ends"
        );
        let rx = receiver(&mut new);
        assert_eq!(rx.try_recv().expect("after the end").data(), "new");
        backend(&fanout, &mut old).unsubscribe(&ch, now);
        assert_eq!(
            fanout.topics().map.len(),
            1,
            "the new subscriber still listens"
        );
        backend(&fanout, &mut new).unsubscribe(&ch, now);
        assert_eq!(fanout.topics().map.len(), 0);
    }
}
