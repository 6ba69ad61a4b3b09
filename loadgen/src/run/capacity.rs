//! A capacity run (`capacity = true`): each target steps up its
//! subscribers until a broadcast's p99 passes `slo_p99_ms`, and the largest
//! step that held the bound is its capacity, as Hashrocket's
//! websocket-shootout added clients until the broadcast round trip's p95
//! passed 500 ms. Once a target fails the bound it is not stepped further:
//! more subscribers would only fail it again, slower.

use crate::results::{Capacity, Case};
use crate::scenario::Scenario;
use crate::spread;

/// One target and transport being stepped.
pub(super) struct Stepping {
    /// `None` outside a capacity run: every step runs, nothing is judged.
    bound_ms: Option<f64>,
    result: Capacity,
}

impl Stepping {
    pub fn new(s: &Scenario, target: String, transport: &str) -> Stepping {
        Stepping {
            bound_ms: s.capacity.then_some(s.slo_p99_ms),
            result: Capacity {
                target,
                transport: transport.into(),
                slo_p99_ms: s.slo_p99_ms,
                ..Capacity::default()
            },
        }
    }

    /// Whether the next step is run.
    pub fn goes_on(&self) -> bool {
        self.result.failed_at.is_none()
    }

    /// Judges a step's case against the bound (its p99 over repeats: the
    /// median), and says so in the case.
    pub fn judge(&mut self, case: &mut Case) {
        let Some(bound) = self.bound_ms else {
            return;
        };
        let p99_ms = spread::headline(case, "delivery.latency_us.p99").map(|us| us / 1000.0);
        let why = match (case.failure.as_deref(), p99_ms) {
            (Some(f), _) => Some(format!("failed: {f}")),
            (None, None) => Some("nothing delivered".to_string()),
            (None, Some(p)) if p > bound => Some(format!("p99 {p:.1} ms > {bound} ms")),
            (None, Some(_)) => None,
        };
        case.slo_held = Some(why.is_none());
        match why {
            None => self.result.held = Some(case.step),
            Some(w) => {
                self.result.failed_at = Some(case.step);
                self.result.why = Some(w);
            }
        }
    }

    /// The capacity found, in a capacity run.
    pub fn result(self) -> Option<Capacity> {
        self.bound_ms.map(|_| self.result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(capacity: bool) -> Scenario {
        let text = format!(
            "name = \"c\"\ntransports = [\"sse\"]\nsteps = [1, 2, 3]\ncapacity = {capacity}\nslo_p99_ms = 100.0\n\
             [publish]\npattern = \"broadcast\"\nrate = 1.0\n"
        );
        Scenario::from_str(&text, "test").unwrap()
    }

    fn case(step: u64, p99_ms: u64) -> Case {
        let mut c = Case {
            step,
            ..Case::default()
        };
        c.delivery.latency_us.count = 1;
        c.delivery.latency_us.p99 = p99_ms * 1000;
        c
    }

    #[test]
    fn steps_until_the_bound_is_passed_then_stops() {
        let mut s = Stepping::new(&scenario(true), "reactor".into(), "sse");
        let mut cases = [case(1, 40), case(2, 90), case(3, 150)];
        for c in cases.iter_mut() {
            assert!(s.goes_on());
            s.judge(c);
        }
        assert!(!s.goes_on());
        assert_eq!(
            cases.map(|c| c.slo_held),
            [Some(true), Some(true), Some(false)]
        );
        let r = s.result().unwrap();
        assert_eq!((r.held, r.failed_at), (Some(2), Some(3)));
        assert_eq!(r.why.as_deref(), Some("p99 150.0 ms > 100 ms"));
    }

    #[test]
    fn a_failed_case_holds_nothing() {
        let mut s = Stepping::new(&scenario(true), "uring".into(), "sse");
        let mut c = case(1, 10);
        c.failure = Some("3 of 1 connections failed".into());
        s.judge(&mut c);
        assert!(!s.goes_on());
        let r = s.result().unwrap();
        assert_eq!((r.held, r.failed_at), (None, Some(1)));
    }

    #[test]
    fn outside_a_capacity_run_nothing_is_judged() {
        let mut s = Stepping::new(&scenario(false), "reactor".into(), "sse");
        let mut c = case(1, 900);
        s.judge(&mut c);
        assert!(s.goes_on());
        assert_eq!(c.slo_held, None);
        assert!(s.result().is_none());
    }
}
