//! Figures of a case that cannot all be true: any of them fails the case.
//!
//! A case whose counts contradict each other (more received than due, more
//! connected than asked for) measured something other than what it says, so
//! it is an error of the case, never `ok`, with each contradiction named.

use crate::results::Case;

/// The contradictions among `case`'s figures, one line each.
pub(super) fn contradictions(case: &Case) -> Vec<String> {
    let mut out = Vec::new();
    let c = &case.connections;
    let d = &case.delivery.counts;
    let mut check = |bad: bool, what: String| {
        if bad {
            out.push(what);
        }
    };
    if let Some(f) = case.delivery.delivered_fraction {
        check(f > 1.0, format!("delivered fraction {f:.4} > 1"));
    }
    check(
        d.received > d.expected && d.expected > 0,
        format!("received {} > expected {}", d.received, d.expected),
    );
    check(
        d.lost > d.expected,
        format!("lost {} > expected {}", d.lost, d.expected),
    );
    check(
        d.received + d.lost > d.expected && d.expected > 0,
        format!(
            "received {} + lost {} > expected {}",
            d.received, d.lost, d.expected
        ),
    );
    check(
        c.connected > c.requested.max(case.step),
        format!("connected {} > requested {}", c.connected, case.step),
    );
    check(
        c.held > c.connected,
        format!("held {} > connected {}", c.held, c.connected),
    );
    let latency = case.delivery.latency_us.count;
    check(
        latency > d.received,
        format!("latencies recorded {latency} > received {}", d.received),
    );
    let w = &case.wire.counts;
    check(
        w.bytes_payload + w.bytes_head > w.bytes_total,
        format!(
            "payload {} + heads {} bytes > {} read",
            w.bytes_payload, w.bytes_head, w.bytes_total
        ),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consistent() -> Case {
        let mut case = Case {
            step: 10,
            ..Case::default()
        };
        case.connections.requested = 10;
        case.connections.connected = 10;
        case.connections.held = 10;
        let d = &mut case.delivery;
        d.counts.expected = 100;
        d.counts.received = 98;
        d.counts.lost = 2;
        d.delivered_fraction = Some(0.98);
        d.latency_us.count = 98;
        case.wire.counts.bytes_total = 1000;
        case.wire.counts.bytes_head = 100;
        case.wire.counts.bytes_payload = 800;
        case
    }

    #[test]
    fn consistent_figures_pass() {
        assert_eq!(contradictions(&consistent()), Vec::<String>::new());
        // Nothing due (no publish) is no contradiction either.
        assert_eq!(contradictions(&Case::default()), Vec::<String>::new());
    }

    #[test]
    fn each_contradiction_is_named() {
        // The measured one: twice what was due, fraction 2.
        let mut c = consistent();
        c.delivery.counts.received = 200;
        c.delivery.counts.lost = 0;
        c.delivery.delivered_fraction = Some(2.0);
        c.delivery.latency_us.count = 200;
        assert_eq!(
            contradictions(&c),
            vec![
                "delivered fraction 2.0000 > 1".to_string(),
                "received 200 > expected 100".into(),
                "received 200 + lost 0 > expected 100".into(),
            ]
        );
        type Spoil = fn(&mut Case);
        let table: &[(Spoil, &str)] = &[
            (
                |c| c.delivery.counts.lost = 3,
                "received 98 + lost 3 > expected 100",
            ),
            (
                |c| c.connections.connected = 11,
                "connected 11 > requested 10",
            ),
            (|c| c.connections.held = 12, "held 12 > connected 10"),
            (
                |c| c.delivery.latency_us.count = 99,
                "latencies recorded 99 > received 98",
            ),
            (
                |c| c.wire.counts.bytes_payload = 950,
                "payload 950 + heads 100 bytes > 1000 read",
            ),
        ];
        for (spoil, want) in table {
            let mut c = consistent();
            spoil(&mut c);
            assert_eq!(contradictions(&c), vec![want.to_string()]);
        }
    }
}
