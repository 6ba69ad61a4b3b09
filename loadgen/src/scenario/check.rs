//! The checks serde cannot make: ranges, order, consistency.

use super::fault::Refusal;
use super::{
    transport_list, Pattern, Scenario, ScenarioError, DISPATCHERS, MAX_SIZE,
    MIN_SAMPLE_INTERVAL_MS, MIN_SIZE, PEERS,
};

fn refuse(field: &str, message: String) -> Result<(), Refusal> {
    Err((field.to_string(), message))
}

impl Scenario {
    /// The checks serde cannot make, in the order of the file: the first
    /// refusal is reported.
    pub(super) fn validate(&self, origin: &str) -> Result<(), ScenarioError> {
        let refused = |(field, message): Refusal| ScenarioError::invalid(origin, &field, message);
        self.check_targets().map_err(refused)?;
        self.check_transports().map_err(refused)?;
        check_steps(origin, "steps", &self.steps)?;
        self.check_cluster(origin)?;
        self.check_times().map_err(refused)?;
        self.check_publish().map_err(refused)?;
        self.check_thresholds().map_err(refused)?;
        self.check_repeats().map_err(refused)?;
        if let Some(fault) = &self.fault {
            fault.check(self).map_err(refused)?;
        }
        match &self.hosts {
            Some(hosts) => hosts.check(self).map_err(refused),
            None => Ok(()),
        }
    }

    /// Repeats, placement and the capacity bound in range.
    pub(super) fn check_repeats(&self) -> Result<(), Refusal> {
        if !(1..=100).contains(&self.repeat) {
            return refuse(
                "repeat",
                format!("repeat must be 1-100, got {}", self.repeat),
            );
        }
        if let Some(p) = &self.placement {
            for (field, list) in [
                ("placement.server", &p.server),
                ("placement.loadgen", &p.loadgen),
            ] {
                if list.is_empty() || list.iter().any(|&c| c >= 1024) {
                    return refuse(
                        field,
                        format!("{field} must list CPUs 0-1023, got {list:?}"),
                    );
                }
            }
        }
        if !(self.slo_p99_ms.is_finite() && self.slo_p99_ms > 0.0) {
            return refuse(
                "slo_p99_ms",
                format!("slo_p99_ms must be > 0, got {}", self.slo_p99_ms),
            );
        }
        if self.floor && self.hosts.is_some() {
            return refuse(
                "floor",
                "the floor listens on this machine's loopback only: not with hosts".into(),
            );
        }
        if self.capacity && self.publish.pattern != Pattern::Broadcast {
            return refuse(
                "capacity",
                "capacity steps a broadcast: it needs [publish] pattern = \"broadcast\"".into(),
            );
        }
        Ok(())
    }

    /// The name, and dispatchers and peers each listed once.
    pub(super) fn check_targets(&self) -> Result<(), Refusal> {
        let name_ok = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
        if self.name.is_empty()
            || self.name.len() > 64
            || !self.name.chars().all(name_ok)
            || self.name.starts_with('.')
        {
            return refuse(
                "name",
                format!(
                    "name must be 1-64 of [A-Za-z0-9_.-], not starting with '.' (it names the results directory), got {:?}",
                    self.name
                ),
            );
        }
        for (i, d) in self.dispatchers.iter().enumerate() {
            if self.dispatchers[..i].contains(d) {
                return refuse(
                    "dispatchers",
                    format!(
                        "dispatchers lists {:?} with args {:?} twice",
                        d.name, d.args
                    ),
                );
            }
        }
        for (i, p) in self.peers.iter().enumerate() {
            if !PEERS.contains(&p.as_str()) {
                return refuse(
                    "peers",
                    format!(
                        "unknown peer {p:?} in peers (expected one of {}){}",
                        PEERS.join(", "),
                        if DISPATCHERS.contains(&p.as_str()) {
                            "; dispatchers go in dispatchers"
                        } else {
                            ""
                        }
                    ),
                );
            }
            if self.peers[..i].contains(p) {
                return refuse("peers", format!("peers lists {p:?} twice"));
            }
        }
        Ok(())
    }

    fn check_transports(&self) -> Result<(), Refusal> {
        if self.transports.is_empty() {
            return refuse(
                "transports",
                format!(
                    "transports must not be empty (one or more of {})",
                    transport_list()
                ),
            );
        }
        for (i, t) in self.transports.iter().enumerate() {
            if self.transports[..i].contains(t) {
                return refuse(
                    "transports",
                    format!("transports lists {:?} twice", t.name()),
                );
            }
        }
        Ok(())
    }

    /// Hold, warm-up, sampling and ramp.
    fn check_times(&self) -> Result<(), Refusal> {
        if !(self.hold_secs.is_finite() && self.hold_secs >= 0.0) {
            return refuse(
                "hold_secs",
                format!("hold_secs must be >= 0 (got {})", self.hold_secs),
            );
        }
        if !(self.warmup_secs.is_finite() && self.warmup_secs >= 0.0) {
            return refuse(
                "warmup_secs",
                format!("warmup_secs must be >= 0 (got {})", self.warmup_secs),
            );
        }
        if self.sample_interval_ms < MIN_SAMPLE_INTERVAL_MS {
            return refuse(
                "sample_interval_ms",
                format!(
                    "sample_interval_ms must be >= {MIN_SAMPLE_INTERVAL_MS} (got {})",
                    self.sample_interval_ms
                ),
            );
        }
        if !(self.ramp.rate.is_finite() && self.ramp.rate > 0.0) {
            return refuse(
                "ramp.rate",
                format!(
                    "ramp.rate must be > 0 connections per second (got {})",
                    self.ramp.rate
                ),
            );
        }
        if self.ramp.in_flight < 1 {
            return refuse(
                "ramp.in_flight",
                "ramp.in_flight must be >= 1 (got 0)".into(),
            );
        }
        if self
            .ramp
            .unanswered
            .is_some_and(|u| u < self.ramp.in_flight)
        {
            return refuse(
                "ramp.unanswered",
                format!(
                    "ramp.unanswered must be >= ramp.in_flight ({}), got {}",
                    self.ramp.in_flight,
                    self.ramp.unanswered.unwrap_or(0)
                ),
            );
        }
        Ok(())
    }

    fn check_publish(&self) -> Result<(), Refusal> {
        let p = &self.publish;
        if !(MIN_SIZE..=MAX_SIZE).contains(&p.size) {
            return refuse(
                "publish.size",
                format!(
                    "publish.size must be {MIN_SIZE} ..= {MAX_SIZE} bytes (got {}; the latency stamp needs {MIN_SIZE})",
                    p.size
                ),
            );
        }
        if !(p.drain_secs.is_finite() && p.drain_secs >= 0.0) {
            return refuse(
                "publish.drain_secs",
                format!("publish.drain_secs must be >= 0 (got {})", p.drain_secs),
            );
        }
        if p.pattern == Pattern::None {
            if !(p.rate.is_finite() && p.rate >= 0.0) {
                return refuse(
                    "publish.rate",
                    format!("publish.rate must be >= 0 (got {})", p.rate),
                );
            }
            if !(p.duration_secs.is_finite() && p.duration_secs >= 0.0) {
                return refuse(
                    "publish.duration_secs",
                    format!(
                        "publish.duration_secs must be >= 0 (got {})",
                        p.duration_secs
                    ),
                );
            }
        } else {
            let pattern = serde_json::to_value(p.pattern)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            if !(p.rate.is_finite() && p.rate > 0.0) {
                return refuse(
                    "publish.rate",
                    format!(
                        "publish.rate must be > 0 messages per second with pattern \"{pattern}\" (got {})",
                        p.rate
                    ),
                );
            }
            if !(p.duration_secs.is_finite() && p.duration_secs > 0.0) {
                return refuse(
                    "publish.duration_secs",
                    format!(
                        "publish.duration_secs must be > 0 with pattern \"{pattern}\" (got {})",
                        p.duration_secs
                    ),
                );
            }
        }
        Ok(())
    }

    fn check_thresholds(&self) -> Result<(), Refusal> {
        let t = &self.thresholds;
        if let Some(p99) = t.p99_ms {
            if !(p99.is_finite() && p99 > 0.0) {
                return refuse(
                    "thresholds.p99_ms",
                    format!("thresholds.p99_ms must be > 0 (got {p99})"),
                );
            }
        }
        if let Some(f) = t.min_delivered_fraction {
            if !(0.0..=1.0).contains(&f) {
                return refuse(
                    "thresholds.min_delivered_fraction",
                    format!("thresholds.min_delivered_fraction must be within 0 ..= 1 (got {f})"),
                );
            }
        }
        Ok(())
    }
}

/// `field` (`steps`, `nodes`) is one or more counts >= 1, strictly increasing.
pub(super) fn check_steps(origin: &str, field: &str, steps: &[u64]) -> Result<(), ScenarioError> {
    if steps.is_empty() {
        return Err(ScenarioError::invalid(
            origin,
            field,
            format!("{field} must not be empty (connection counts, e.g. [1000, 5000])"),
        ));
    }
    if steps.contains(&0) {
        return Err(ScenarioError::invalid(
            origin,
            field,
            format!("{field} must each be >= 1 (got 0)"),
        ));
    }
    if let Some(w) = steps.windows(2).find(|w| w[1] <= w[0]) {
        return Err(ScenarioError::invalid(
            origin,
            field,
            format!(
                "{field} must be strictly increasing (got {} after {})",
                w[1], w[0]
            ),
        ));
    }
    Ok(())
}
