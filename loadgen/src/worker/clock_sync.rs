//! A worker's clock against the coordinator's, NTP-style, over the control
//! channel.
//!
//! Latency is receipt minus scheduled send: the receipt is read on the
//! worker's clock, the schedule on the coordinator's. On one machine both are
//! the same `CLOCK_MONOTONIC`; on another they differ by the time between the
//! two boots. So before the plan the coordinator sends a few [`Ping`]s, and
//! the worker answers each with a [`Pong`] saying when it read the ping (t1)
//! and when it wrote the answer (t2), on its own clock. With the coordinator's
//! send (t0) and receipt (t3), one exchange gives
//!
//! ```text
//! offset = ((t1 - t0) + (t2 - t3)) / 2      (worker minus coordinator)
//! delay  = (t3 - t0) - (t2 - t1)            (the round trip, less the worker's turn)
//! ```
//!
//! Whatever the split of the delay between the two directions, the true
//! offset lies within `delay / 2` of the estimate; so of several exchanges the
//! one with the smallest delay is kept (as NTP's clock filter does), and
//! `delay / 2` is the estimate's uncertainty. [`Sync`] is the coordinator's
//! side, sans IO; [`read_plan`] the worker's, up to its plan.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::protocol::{write_line, FromWorker, Plan, ToWorker};
use crate::clock::mono_ns;

/// How many exchanges the coordinator makes with each worker.
pub const EXCHANGES: usize = 8;

/// The coordinator's question: its clock when it sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    pub t0: u64,
}

/// The worker's answer: the ping's `t0`, and the worker's clock when it read
/// the ping (`t1`) and when it wrote this (`t2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    pub t0: u64,
    pub t1: u64,
    pub t2: u64,
}

/// One exchange, its four times in nanoseconds: t0 and t3 on the
/// coordinator's clock, t1 and t2 on the worker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    pub t0: u64,
    pub t1: u64,
    pub t2: u64,
    pub t3: u64,
}

impl Exchange {
    /// The worker's clock minus the coordinator's, as this exchange sees it.
    pub fn offset_ns(&self) -> i64 {
        let (t0, t1, t2, t3) = (
            self.t0 as i128,
            self.t1 as i128,
            self.t2 as i128,
            self.t3 as i128,
        );
        (((t1 - t0) + (t2 - t3)) / 2) as i64
    }

    /// The time the two messages spent on the way.
    pub fn delay_ns(&self) -> u64 {
        let round_trip = self.t3.saturating_sub(self.t0);
        round_trip.saturating_sub(self.t2.saturating_sub(self.t1))
    }
}

/// What the exchanges with one worker say of its clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    /// The worker's clock minus the coordinator's.
    pub offset_ns: i64,
    /// The true offset is within this of `offset_ns`: half the best exchange's delay.
    pub uncertainty_ns: u64,
    /// The best exchange's delay (the round trip less the worker's turn).
    pub rtt_ns: u64,
    /// Exchanges made.
    pub exchanges: u32,
}

impl Estimate {
    /// The exchange with the smallest delay; `None` without one.
    pub fn best(exchanges: &[Exchange]) -> Option<Estimate> {
        let best = exchanges.iter().min_by_key(|e| e.delay_ns())?;
        Some(Estimate {
            offset_ns: best.offset_ns(),
            uncertainty_ns: best.delay_ns().div_ceil(2),
            rtt_ns: best.delay_ns(),
            exchanges: exchanges.len() as u32,
        })
    }
}

/// The coordinator's side of the exchanges with one worker: one ping at a
/// time, [`EXCHANGES`] of them (or as many as asked).
#[derive(Debug)]
pub struct Sync {
    want: usize,
    done: Vec<Exchange>,
    /// The ping sent and not yet answered.
    waiting: Option<Ping>,
}

impl Sync {
    pub fn new(want: usize) -> Sync {
        Sync {
            want,
            done: Vec::new(),
            waiting: None,
        }
    }

    /// The next ping to send, stamped `now`; none while one is unanswered or
    /// when every exchange is done.
    pub fn poll_ping(&mut self, now: u64) -> Option<Ping> {
        if self.waiting.is_some() || self.is_done() {
            return None;
        }
        let ping = Ping { t0: now };
        self.waiting = Some(ping);
        Some(ping)
    }

    /// A pong read at `now`: true when it answers the ping sent; any other
    /// is ignored.
    pub fn handle_pong(&mut self, pong: Pong, now: u64) -> bool {
        if self.waiting.map(|p| p.t0) != Some(pong.t0) {
            return false;
        }
        self.waiting = None;
        self.done.push(Exchange {
            t0: pong.t0,
            t1: pong.t1,
            t2: pong.t2,
            t3: now,
        });
        true
    }

    pub fn is_done(&self) -> bool {
        self.done.len() >= self.want
    }

    /// The best exchange so far.
    pub fn estimate(&self) -> Option<Estimate> {
        Estimate::best(&self.done)
    }
}

/// The worker's answer to `ping`, read at `t1` (its clock).
pub fn answer(ping: Ping, t1: u64) -> FromWorker {
    FromWorker::Pong(Pong {
        t0: ping.t0,
        t1,
        t2: mono_ns(),
    })
}

/// Reads the coordinator's lines up to the plan, answering every ping on
/// `out`; `None` when the coordinator left first.
pub fn read_plan<W: Write>(
    lines: impl Iterator<Item = io::Result<String>>,
    mut out: W,
) -> io::Result<Option<Plan>> {
    for line in lines {
        let line = line?;
        let t1 = mono_ns();
        match serde_json::from_str(&line) {
            Ok(ToWorker::Ping(ping)) => write_line(&mut out, &answer(ping, t1))?,
            Ok(ToWorker::Plan(plan)) => return Ok(Some(*plan)),
            Ok(other) => return Err(invalid(format!("a line before the plan: {other:?}"))),
            Err(e) => return Err(invalid(format!("the first line is not a plan: {e}"))),
        }
    }
    Ok(None)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker whose clock reads the coordinator's plus `offset`, reached
    /// over a channel whose delays each exchange names: on the way there,
    /// the worker's turn, on the way back. The coordinator's clock is `now`.
    struct Fake {
        now: u64,
        offset: i64,
    }

    impl Fake {
        fn worker_clock(&self) -> u64 {
            self.now.saturating_add_signed(self.offset)
        }

        /// Runs `sync` with one exchange per `(there, turn, back)`.
        fn run(&mut self, sync: &mut Sync, delays: &[(u64, u64, u64)]) {
            for &(there, turn, back) in delays {
                let ping = sync.poll_ping(self.now).expect("a ping");
                assert_eq!(sync.poll_ping(self.now), None, "one at a time");
                self.now += there;
                let t1 = self.worker_clock();
                self.now += turn;
                let pong = Pong {
                    t0: ping.t0,
                    t1,
                    t2: self.worker_clock(),
                };
                self.now += back;
                assert!(sync.handle_pong(pong, self.now));
            }
        }
    }

    #[test]
    fn symmetric_delays_give_the_offset_exactly() {
        for offset in [0, 1_500, -2_000_000, 86_400_000_000_000] {
            let mut fake = Fake {
                now: 1_000_000_000_000,
                offset,
            };
            let mut sync = Sync::new(3);
            fake.run(&mut sync, &[(40_000, 5_000, 40_000); 3]);
            assert!(sync.is_done());
            let e = sync.estimate().unwrap();
            assert_eq!(e.offset_ns, offset);
            assert_eq!(e.rtt_ns, 80_000, "the worker's turn is not delay");
            assert_eq!(e.uncertainty_ns, 40_000);
            assert_eq!(e.exchanges, 3);
        }
    }

    #[test]
    fn the_exchange_with_the_smallest_delay_is_kept() {
        let offset = 7_000_000;
        let mut fake = Fake {
            now: 5_000_000_000,
            offset,
        };
        let mut sync = Sync::new(EXCHANGES);
        // Lopsided exchanges (a worker descheduled on the way back, a busy
        // pipe on the way there) pull their own estimates far off; the
        // quick one in the middle is nearly symmetric.
        let delays = [
            (30_000, 1_000, 4_000_000),
            (3_000_000, 1_000, 50_000),
            (900_000, 2_000, 100_000),
            (20_000, 1_000, 26_000),
            (500_000, 1_000, 2_000_000),
            (60_000, 1_000, 1_000_000),
            (2_000_000, 1_000, 2_000_000),
            (80_000, 1_000, 70_000),
        ];
        fake.run(&mut sync, &delays);
        let e = sync.estimate().unwrap();
        assert_eq!(e.rtt_ns, 46_000);
        assert_eq!(e.uncertainty_ns, 23_000);
        // (20 µs there, 26 µs back): 3 µs off, well within the uncertainty.
        assert_eq!(e.offset_ns, offset - 3_000);
        // Each lopsided exchange alone is off by more than the best's bound.
        let worst = delays
            .iter()
            .map(|&(there, _, back)| (there as i64 - back as i64).abs() / 2)
            .max()
            .unwrap();
        assert!(worst > 1_000_000);
    }

    #[test]
    fn the_truth_is_always_within_the_uncertainty() {
        // Every split of the delay between the two ways, every offset sign.
        for offset in [-3_000_000_000i64, -1, 0, 1, 3_000_000_000] {
            for there in [0u64, 1, 999, 10_000, 1_000_000] {
                for back in [0u64, 7, 10_000, 3_000_000] {
                    let mut fake = Fake {
                        now: 10_000_000_000,
                        offset,
                    };
                    let mut sync = Sync::new(1);
                    fake.run(&mut sync, &[(there, 500, back)]);
                    let e = sync.estimate().unwrap();
                    let error = (e.offset_ns - offset).unsigned_abs();
                    assert!(
                        error <= e.uncertainty_ns,
                        "offset {offset}, {there}/{back}: off by {error}, bound {}",
                        e.uncertainty_ns
                    );
                }
            }
        }
    }

    #[test]
    fn stray_and_late_pongs_are_not_exchanges() {
        let mut sync = Sync::new(2);
        assert_eq!(sync.estimate(), None);
        let ping = sync.poll_ping(100).unwrap();
        // An answer to no ping of ours, then one to an older ping.
        let stray = Pong {
            t0: 7,
            t1: 8,
            t2: 9,
        };
        assert!(!sync.handle_pong(stray, 150));
        assert!(sync.estimate().is_none());
        assert_eq!(sync.poll_ping(160), None, "still waiting");
        let answer = Pong {
            t0: ping.t0,
            t1: 120,
            t2: 121,
        };
        assert!(sync.handle_pong(answer, 170));
        assert!(!sync.handle_pong(answer, 900));
        assert_eq!(sync.estimate().unwrap().exchanges, 1, "a repeat is ignored");
        assert!(!sync.is_done());
        assert!(sync.poll_ping(200).is_some());
    }

    #[test]
    fn the_worker_answers_pings_until_its_plan() {
        let plan = serde_json::json!({"plan": {
            "worker": 3, "target": "127.0.0.1:9", "sources": ["127.0.0.1"], "path": "/sub/{channel}",
            "since_param": "since", "transport": "sse", "count": 1, "first_index": 0,
            "channels": {"broadcast": "bc"}, "rate": 1.0, "in_flight": 1,
            "connect_timeout_ms": 1000, "epoch_ns": 0, "interval_ms": 1000
        }})
        .to_string();
        let ping = serde_json::to_string(&ToWorker::Ping(Ping { t0: 42 })).unwrap();
        let lines = vec![Ok(ping.clone()), Ok(ping), Ok(plan), Ok("ignored".into())];
        let mut out = Vec::new();
        let got = read_plan(lines.into_iter(), &mut out)
            .unwrap()
            .expect("a plan");
        assert_eq!((got.worker, got.clock_offset_ns), (3, 0));
        let answers: Vec<FromWorker> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(answers.len(), 2);
        for a in answers {
            let FromWorker::Pong(p) = a else {
                panic!("{a:?}")
            };
            assert_eq!(p.t0, 42);
            assert!(p.t2 >= p.t1 && p.t1 > 0);
        }
        // The coordinator gone before a plan; a line that is not one.
        assert!(read_plan(std::iter::empty(), Vec::new()).unwrap().is_none());
        let bad = read_plan(vec![Ok("{\"x\":1}".to_string())].into_iter(), Vec::new());
        assert_eq!(bad.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let finish = serde_json::to_string(&ToWorker::Churn(true)).unwrap();
        let early = read_plan(vec![Ok(finish)].into_iter(), Vec::new());
        assert!(early.unwrap_err().to_string().contains("before the plan"));
    }
}
