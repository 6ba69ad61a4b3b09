//! Subscribers between connections: dropped on purpose (churn, the
//! disconnect storm) or by the server (a restart), and brought back, resuming
//! after the last id they saw.

use super::socket::set_reset_on_close;
use super::subscriber::{cause, State};
use super::{Ids, Worker};
use crate::clock::mono_ns;

/// A subscriber between connections: what carries over to the next one.
pub(super) struct Away {
    pub due_ns: u64,
    pub index: usize,
    pub ids: Ids,
    pub resume_id: u64,
    pub since_ns: u64,
    pub attempt: u32,
    /// The node it comes back to (see [`super::Plan::nodes`]).
    pub node: usize,
}

impl Worker {
    /// The wait before connect number `attempt` of a subscriber coming back:
    /// 100 ms doubling to 1 s, with jitter.
    fn backoff(&mut self, attempt: u32) -> u64 {
        let base = (100_000_000u64 << attempt.min(4)).min(1_000_000_000);
        base / 2 + self.next_u64() % (base / 2).max(1)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        // xorshift64*: enough to pick victims and delays.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Takes client `key` out, keeping what its next connection carries on
    /// with; it connects again at `due_ns`, to the next node of its list
    /// when `fail_over`.
    fn leave(&mut self, key: usize, since_ns: u64, due_ns: u64, attempt: u32, fail_over: bool) {
        let Some(c) = self.clients.get(key) else {
            return;
        };
        let away = Away {
            due_ns,
            index: c.index,
            ids: c.ids,
            resume_id: c.resume_id,
            since_ns: c.away_since.unwrap_or(since_ns),
            attempt,
            node: c.node + usize::from(fail_over),
        };
        self.close(key);
        self.away.push(away);
    }

    /// Connects again the subscribers whose time away is over.
    pub(super) fn come_back(&mut self, now: u64) {
        if self.away.is_empty() {
            return;
        }
        let (due, later): (Vec<Away>, Vec<Away>) =
            self.away.drain(..).partition(|a| a.due_ns <= now);
        self.away = later;
        for a in due {
            let source = self.plan.sources[a.index % self.plan.sources.len()];
            if let Err(e) = self.connect(a.index, source, now, Some(&a)) {
                if self.plan.fault.reconnect {
                    self.report.fault.reconnect_failures += 1;
                    let attempt = a.attempt + 1;
                    let delay = self.backoff(attempt);
                    self.away.push(Away {
                        due_ns: now + delay,
                        attempt,
                        node: a.node + 1,
                        ..a
                    });
                } else {
                    *self.report.failed.entry(cause(&e).to_string()).or_default() += 1;
                }
            }
        }
    }

    /// Client `key` failed: a subscriber on its way back (after a restart)
    /// tries again later, since a refusal while the server is down is
    /// expected. True when it will.
    pub(super) fn retry_later(&mut self, key: usize) -> bool {
        let now = mono_ns();
        let Some(c) = self.clients.get(key) else {
            return false;
        };
        if !(self.plan.fault.reconnect && c.away_since.is_some()) {
            return false;
        }
        self.report.fault.reconnect_failures += 1;
        let attempt = c.attempt + 1;
        let since = c.away_since.unwrap_or(now);
        let delay = self.backoff(attempt);
        // Refused where it was: the next node of its list (the same one
        // when there is one node).
        self.leave(key, since, now + delay, attempt, true);
        true
    }

    /// The server closed subscribed client `key`: where subscribers come
    /// back (a restart), it does so soon. True when it will.
    pub(super) fn come_back_later(&mut self, key: usize) -> bool {
        if !self.plan.fault.reconnect {
            return false;
        }
        self.report.fault.server_drops += 1;
        let now = mono_ns();
        // Spread the herd over 100 ms, as EventSource's retry does.
        let delay = self.next_u64() % 100_000_000;
        self.leave(key, now, now + delay, 0, false);
        true
    }

    /// Closes every subscriber at once (the disconnect storm).
    pub(super) fn storm(&mut self, reset: bool) {
        let keys: Vec<usize> = self.clients.iter().map(|(k, _)| k).collect();
        for key in keys {
            if reset {
                set_reset_on_close(&self.clients[key].stream);
            }
            self.close(key);
            self.report.fault.storm_closed += 1;
        }
        self.away.clear();
    }

    pub(super) fn set_churn(&mut self, on: bool, now: u64) {
        self.churn_on = on;
        self.churn_last_ns = now;
        self.churn_debt = 0.0;
        if !on {
            // Everyone away comes back now, so that the end finds them all.
            for a in &mut self.away {
                a.due_ns = a.due_ns.min(now);
            }
        }
    }

    /// Drops `churn_rate` of the subscribers per second, at random.
    pub(super) fn churn(&mut self, now: u64) {
        if !self.churn_on || self.plan.fault.churn_rate <= 0.0 {
            return;
        }
        let dt = now.saturating_sub(self.churn_last_ns) as f64 / 1e9;
        self.churn_last_ns = now;
        self.churn_debt += self.plan.fault.churn_rate * self.plan.count as f64 * dt;
        let slots = self.clients.capacity().max(1) as u64;
        while self.churn_debt >= 1.0 {
            self.churn_debt -= 1.0;
            // A few random slots; a tick that finds no subscriber skips one drop.
            let victim = (0..16).find_map(|_| {
                let key = (self.next_u64() % slots) as usize;
                self.clients
                    .get(key)
                    .filter(|c| c.state == State::Subscribed && !c.slow)
                    .map(|_| key)
            });
            let Some(key) = victim else { continue };
            let reset =
                (self.next_u64() % 1_000_000) as f64 / 1e6 < self.plan.fault.churn_reset_fraction;
            if reset {
                set_reset_on_close(&self.clients[key].stream);
                self.report.fault.churned_reset += 1;
            }
            self.report.fault.churned += 1;
            let (lo, hi) = (self.plan.fault.away_min_ms, self.plan.fault.away_max_ms);
            let away_ms = lo + self.next_u64() % (hi.saturating_sub(lo) + 1);
            // Its reconnect time runs from its planned return, not its drop.
            let due = now + away_ms * 1_000_000;
            self.leave(key, due, due, 0, false);
        }
    }
}
