//! A case's repeats combined into one, and fan-out figures against the floor.

use crate::results::Case;
use crate::spread::{self, FAN_OUT};

/// The repeats of one case (a target at a transport and step), in order, as
/// one case: the first repeat's figures, every repeat under `repeats`, the
/// spread of the headline figures. Failed if any repeat failed, saying which.
pub(super) fn combine(mut repeats: Vec<Case>) -> Case {
    if repeats.len() <= 1 {
        return repeats.pop().unwrap_or_default();
    }
    let mut case = repeats[0].clone();
    case.spread = spread::summarise(&repeats);
    let failed: Vec<String> = repeats
        .iter()
        .filter(|r| r.status == "failed" || r.failure.is_some())
        .map(|r| {
            format!(
                "repeat {}: {}",
                r.repeat,
                r.failure.as_deref().unwrap_or("failed")
            )
        })
        .collect();
    if !failed.is_empty() {
        case.status = "failed".into();
        case.failure = Some(failed.join("; "));
    }
    case.duration_secs = repeats.iter().map(|r| r.duration_secs).sum();
    case.repeats = repeats;
    case
}

/// The name of the floor target (see `cometbench floor`).
pub const FLOOR: &str = "floor";

/// Gives every case but the floor's, for each fan-out figure, its ratio to
/// the floor's at the same transport and step (medians over repeats).
pub(super) fn floor_ratios(cases: &mut [Case]) {
    let floors: Vec<Case> = cases
        .iter()
        .filter(|c| c.target == FLOOR && c.failure.is_none())
        .cloned()
        .collect();
    for c in cases.iter_mut().filter(|c| c.target != FLOOR) {
        let Some(f) = floors
            .iter()
            .find(|f| f.transport == c.transport && f.step == c.step)
        else {
            continue;
        };
        for key in FAN_OUT {
            if let (Some(v), Some(base)) = (spread::headline(c, key), spread::headline(f, key)) {
                if base > 0.0 {
                    c.floor_ratio.insert(key.to_string(), v / base);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(target: &str, repeat: u32, p99: u64, cpu: f64) -> Case {
        let mut c = Case {
            target: target.into(),
            transport: "sse".into(),
            step: 10_000,
            status: "ok".into(),
            repeat,
            ..Case::default()
        };
        c.delivery.latency_us.count = 1;
        c.delivery.latency_us.p99 = p99;
        c.server.cpu_per_delivery_us = Some(cpu);
        c
    }

    #[test]
    fn repeats_keep_every_repeat_and_their_spread() {
        let one = combine(vec![case("reactor", 1, 100, 9.0)]);
        assert!(one.repeats.is_empty() && one.spread.is_empty());
        let mut bad = case("reactor", 2, 130, 9.8);
        bad.status = "failed".into();
        bad.failure = Some("server died".into());
        let c = combine(vec![
            case("reactor", 1, 110, 9.2),
            bad,
            case("reactor", 3, 120, 9.4),
        ]);
        assert_eq!(c.repeats.len(), 3);
        assert_eq!(c.repeat, 1);
        let p99 = c.spread["delivery.latency_us.p99"];
        assert_eq!((p99.median, p99.min, p99.max), (120.0, 110.0, 130.0));
        assert_eq!(c.status, "failed");
        assert_eq!(c.failure.as_deref(), Some("repeat 2: server died"));
    }

    #[test]
    fn ratios_to_the_floor_of_the_same_transport_and_step() {
        let mut cases = vec![
            combine(vec![case(FLOOR, 1, 100, 8.0), case(FLOOR, 2, 140, 8.8)]),
            case("reactor", 1, 180, 9.6),
            Case {
                step: 5,
                ..case("uring", 1, 50, 1.0)
            },
        ];
        floor_ratios(&mut cases);
        assert!(cases[0].floor_ratio.is_empty());
        // Against the floor's medians: 120 us and 8.4 us.
        let r = &cases[1].floor_ratio;
        assert!((r["delivery.latency_us.p99"] - 1.5).abs() < 1e-9, "{r:?}");
        assert!((r["server.cpu_per_delivery_us"] - 9.6 / 8.4).abs() < 1e-9);
        // No floor at that step.
        assert!(cases[2].floor_ratio.is_empty());
    }
}
