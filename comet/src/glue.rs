//! The glue between a connection and the hub: one function that answers a
//! [`Conn`]'s events against whatever serves as the hub for it.
//!
//! Every dispatcher, the test harnesses and the fuzz target answer events
//! with [`drain`], so the tests exercise the code the dispatchers run. What
//! differs between them is the [`Backend`]: the hub as the owner of one
//! connection sees it. A dispatcher's backend is its shared hub behind a lock
//! and the connection's fan-out group; the tests' is [`memory::Memory`], a
//! hub in one thread's memory.
//!
//! # What a backend may do
//! - Answer later. [`Answer::Later`] leaves the connection waiting (it keeps
//!   input but acts on none); the owner hands the answer to the `Conn`
//!   itself (`handle_subscribed`, `handle_published`, `handle_refused`) when
//!   it comes, then calls [`drain`] again. A backend that asks another
//!   process for a message id (a link to a Redis broker) works so.
//! - Fan out as it likes. Handing a published message to the subscribers is
//!   the backend's business, not the glue's: a dispatcher hands it to each
//!   group's inbox once, a broadcast channel per topic would do as well.

use std::sync::Arc;
use std::time::Instant;

use crate::conn::{Conn, Event, Refusal};
use crate::hub::Replay;

pub mod memory;

/// An answer now, or a promise that the owner hands it to the `Conn` later.
#[derive(Debug)]
#[must_use = "a connection waits for its answer"]
pub enum Answer<T> {
    Now(T),
    /// The owner will call the `Conn`'s `handle_*` with the answer, then
    /// [`drain`] again.
    Later,
}

/// A publish taken: the id given, and how many subscribers it went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub id: u64,
    pub subscribers: u64,
}

/// The hub as the owner of one connection sees it.
pub trait Backend {
    /// Adds the connection as a subscriber of `channel` and returns its
    /// replay (see [`crate::Hub::subscribe`]), or why it may not join.
    fn subscribe(
        &mut self,
        channel: &Arc<str>,
        since: Option<u64>,
        now: Instant,
    ) -> Answer<Result<Replay, Refusal>>;

    /// Removes the connection's subscription to `channel`.
    fn unsubscribe(&mut self, channel: &Arc<str>, now: Instant);

    /// Publishes `data` on `channel` and hands it to the channel's
    /// subscribers.
    fn publish(
        &mut self,
        channel: &Arc<str>,
        data: Box<str>,
        now: Instant,
    ) -> Answer<Result<Accepted, Refusal>>;

    /// The `/stats` document.
    fn stats(&mut self) -> String;

    /// A WebSocket client answered no ping for two heartbeats and was cut
    /// off ([`Event::Unresponsive`]): count it.
    fn unresponsive(&mut self);

    /// A connection sent no request within its deadline and was closed
    /// ([`Event::IdleTimeout`]): count it.
    fn idle_timeout(&mut self);
}

/// Answers the next event `conn` raised; returns whether there was one.
pub fn answer(conn: &mut Conn, backend: &mut impl Backend, now: Instant) -> bool {
    let Some(event) = conn.poll_event() else {
        return false;
    };
    match event {
        Event::Subscribe { channel, since } => match backend.subscribe(&channel, since, now) {
            Answer::Now(Ok(replay)) => conn.handle_subscribed(replay, now),
            Answer::Now(Err(refusal)) => conn.handle_refused(refusal, now),
            Answer::Later => {}
        },
        Event::Unsubscribe { channel } => backend.unsubscribe(&channel, now),
        Event::Unresponsive => backend.unresponsive(),
        Event::IdleTimeout => backend.idle_timeout(),
        Event::Publish { channel, data } => match backend.publish(&channel, data, now) {
            Answer::Now(Ok(a)) => conn.handle_published(a.id, a.subscribers, now),
            Answer::Now(Err(refusal)) => conn.handle_refused(refusal, now),
            Answer::Later => {}
        },
        Event::Stats => {
            let json = backend.stats();
            conn.handle_stats(json, now);
        }
    }
    true
}

/// Answers every event `conn` raised, and those the answers raised in turn.
/// Call after every `handle_*` call.
pub fn drain(conn: &mut Conn, backend: &mut impl Backend, now: Instant) {
    while answer(conn, backend, now) {}
}
