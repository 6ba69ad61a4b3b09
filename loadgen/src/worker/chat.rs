//! Publishing over the subscribers' own WebSockets: the per-user ("chat")
//! pattern over `ws`, where each user's messages are text frames its own
//! socket sends, and come back to it on its channel (the server's id in the
//! echo is the acknowledgement).
//!
//! The schedule is the coordinator's publisher's, kept here so that no
//! message crosses a pipe on its way ([`SocketPublish`]): open loop, message
//! `k` due at `start + k / rate` whatever became of the ones before, and
//! stamped with that time, so latency is measured from the schedule. The
//! worker's loop wakes for the next message due to one of its users; a send
//! is late by at most the loop's millisecond (`max_lag_us`, and the raw
//! latency, say by how much).

use std::collections::HashMap;
use std::time::Duration;

use comet::ws::client;

use super::subscriber::State;
use super::{Plan, SocketPublish, SocketPublished, Worker};
use crate::clock::{mono_ns, stamped_seq};

/// A schedule being worked through, and what came of it.
pub(super) struct Chat {
    p: SocketPublish,
    /// This worker's users: global indexes `first .. first + count`.
    first: u64,
    count: u64,
    /// The next message to look at.
    next: u64,
    /// Messages sent per user (the last id its channel should reach).
    pub sent: HashMap<usize, u64>,
    pub counts: SocketPublished,
}

impl Chat {
    pub fn new(p: SocketPublish, plan: &Plan) -> Chat {
        let mut chat = Chat {
            p,
            first: plan.first_index as u64,
            count: plan.count as u64,
            next: 0,
            sent: HashMap::new(),
            counts: SocketPublished::default(),
        };
        chat.next = chat.mine_from(0);
        chat
    }

    /// The first message at or after `k` that goes to one of this worker's users.
    fn mine_from(&self, k: u64) -> u64 {
        let users = self.p.users.max(1);
        let r = k % users;
        let end = self.first + self.count;
        if self.count == 0 {
            u64::MAX
        } else if r < self.first {
            k + (self.first - r)
        } else if r >= end {
            k + (users - r) + self.first
        } else {
            k
        }
    }

    fn due_ns(&self, k: u64) -> u64 {
        self.p.start_ns + (k as f64 * 1e9 / self.p.rate) as u64
    }

    fn is_over(&self) -> bool {
        self.next >= self.p.total
    }
}

impl Worker {
    /// How long the loop may wait before the next message is due.
    pub(super) fn chat_wait(&self, now: u64) -> Option<Duration> {
        let chat = self.chat.as_ref().filter(|c| !c.is_over())?;
        // The schedule is on the coordinator's clock, as the stamps are.
        let now = self.plan.coordinator_ns(now);
        Some(Duration::from_nanos(
            chat.due_ns(chat.next).saturating_sub(now),
        ))
    }

    /// Sends every message due by `now`.
    pub(super) fn publish_due(&mut self, now: u64) {
        let now = self.plan.coordinator_ns(now);
        loop {
            let Some(chat) = self.chat.as_mut().filter(|c| !c.is_over()) else {
                return;
            };
            let k = chat.next;
            let scheduled = chat.due_ns(k);
            if scheduled > now {
                return;
            }
            chat.next = chat.mine_from(k + 1);
            chat.counts.scheduled += 1;
            let users = chat.p.users.max(1);
            let index = (k % users) as usize;
            let seq = k / users + 1;
            let size = chat.p.size;
            self.send_message(index, scheduled, seq, size);
        }
    }

    /// User `index` sends its message number `seq`, due at `scheduled`.
    fn send_message(&mut self, index: usize, scheduled: u64, seq: u64, size: usize) {
        let key = self.keys.get(&index).copied();
        let subscribed = key
            .and_then(|k| self.clients.get(k))
            .is_some_and(|c| c.state == State::Subscribed && !c.slow);
        let chat = self.chat.as_mut().expect("publishing");
        let (Some(key), true) = (key, subscribed) else {
            chat.counts.not_connected += 1;
            return;
        };
        let sent = self.plan.coordinator_ns(mono_ns());
        chat.counts.sent += 1;
        chat.counts.max_lag_us = chat
            .counts
            .max_lag_us
            .max(sent.saturating_sub(scheduled) / 1000);
        *chat.sent.entry(index).or_default() += 1;
        let message = stamped_seq(scheduled, sent, seq, size);
        let mask = self.mask();
        // The publisher's traffic, as an HTTP publish is: not the
        // subscribers' bytes on the wire.
        self.send_frame(key, &client::text(&message, mask), false);
    }

    /// At the end: each user's channel should reach the number of messages
    /// its socket sent (nobody else publishes there), and the counts go in
    /// the report.
    pub(super) fn chat_finish(&mut self, expect: &mut HashMap<String, u64>) {
        let Some(chat) = self.chat.take() else {
            return;
        };
        for (&index, &n) in &chat.sent {
            expect.entry(self.plan.channels.name(index)).or_insert(n);
        }
        self.report.socket_publish = chat.counts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(first: u64, count: u64, users: u64) -> Chat {
        Chat {
            p: SocketPublish {
                start_ns: 0,
                rate: 10.0,
                users,
                size: 64,
                total: 100,
            },
            first,
            count,
            next: 0,
            sent: HashMap::new(),
            counts: SocketPublished::default(),
        }
    }

    #[test]
    fn each_worker_takes_exactly_its_users_messages() {
        // Ten users over three workers: every message is one worker's.
        let workers = [chat(0, 4, 10), chat(4, 4, 10), chat(8, 2, 10)];
        let mut owner = vec![None; 100];
        for (w, c) in workers.iter().enumerate() {
            let mut k = c.mine_from(0);
            while k < 100 {
                assert!(owner[k as usize].is_none(), "message {k} twice");
                let user = k % 10;
                assert!((c.first..c.first + c.count).contains(&user));
                owner[k as usize] = Some(w);
                k = c.mine_from(k + 1);
            }
        }
        assert!(owner.iter().all(Option::is_some), "{owner:?}");
        assert_eq!(chat(0, 0, 10).mine_from(0), u64::MAX);
        assert_eq!(chat(3, 2, 10).due_ns(15), 1_500_000_000);
    }
}
