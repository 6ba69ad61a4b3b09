//! What a connection holds only while it is busy: input of a request still
//! arriving, output not yet written, events not yet taken. Boxed behind one
//! pointer and dropped as soon as all three are empty, so that an idle
//! subscriber's `Conn` holds none of it (see `docs/DESIGN.md`, "Memory per
//! connection").

use std::collections::VecDeque;

use bytes::Bytes;

use super::ws::Reading;
use super::{Conn, Event};

#[derive(Debug, Default)]
pub(super) struct Busy {
    pub(super) input: Vec<u8>,
    pub(super) out: VecDeque<Bytes>,
    /// Bytes in `out`.
    pub(super) queued: usize,
    /// How many of the `queued` bytes, from the front, are the start of a
    /// stream (head, prelude, missed notice, backlog replay): they are not
    /// lag and do not count against `max_queue` (see [`Conn::handle_subscribed`]).
    pub(super) replay_queued: usize,
    pub(super) events: VecDeque<Event>,
    /// A WebSocket's frame being read, or publishes awaiting their answers.
    pub(super) ws: Option<Box<Reading>>,
}

impl Busy {
    fn is_empty(&self) -> bool {
        self.input.is_empty() && self.out.is_empty() && self.events.is_empty() && self.ws.is_none()
    }
}

/// What `pending` lends out when nothing is queued.
static NOTHING: VecDeque<Bytes> = VecDeque::new();

impl Conn {
    /// The busy state, made if the connection had none.
    pub(super) fn busy(&mut self) -> &mut Busy {
        self.busy.get_or_insert_with(Box::default)
    }

    /// Drops the busy state once nothing is in it.
    pub(super) fn tidy(&mut self) {
        if self.busy.as_ref().is_some_and(|b| b.is_empty()) {
            self.busy = None;
        }
    }

    pub(super) fn raise(&mut self, event: Event) {
        self.busy().events.push_back(event);
    }

    pub(super) fn input(&self) -> &[u8] {
        self.busy.as_ref().map_or(&[], |b| &b.input)
    }

    pub(super) fn take_input(&mut self) -> Vec<u8> {
        let input = self.busy.as_mut().map(|b| std::mem::take(&mut b.input));
        self.tidy();
        input.unwrap_or_default()
    }

    pub(super) fn out(&self) -> &VecDeque<Bytes> {
        self.busy.as_ref().map_or(&NOTHING, |b| &b.out)
    }

    /// Unsent bytes beyond the start of a stream: what counts against
    /// `max_queue`.
    pub(super) fn lag(&self) -> usize {
        self.busy.as_ref().map_or(0, |b| b.queued - b.replay_queued)
    }

    /// Everything queued so far is the start of a stream, not lag.
    pub(super) fn queued_is_replay(&mut self) {
        if let Some(b) = self.busy.as_mut() {
            b.replay_queued = b.queued;
        }
    }
}
