//! What the command line changes in a scenario: `--dispatcher`, `--peer`,
//! `--steps`, `--quick` and `--name` (`--hosts` is the `hosts` module's).

use super::check::check_steps;
use super::{DispatcherSpec, Scenario, ScenarioError, DISPATCHERS, PEERS};

impl Scenario {
    /// Applies the command line: only the named dispatchers and peers (when
    /// either `--dispatcher` or `--peer` is given, nothing else runs), other
    /// steps, and `--quick` (steps / 10, at least 1, deduplicated; hold and
    /// publish durations / 5, at least 1 s unless already shorter).
    ///
    /// A named dispatcher keeps the scenario's entries for it (with their args),
    /// or runs with no args when the scenario does not list it; a peer may be
    /// named by `--peer`, or by `--dispatcher` when the scenario lists it.
    /// Errors name the flag.
    pub fn with_overrides(
        mut self,
        dispatchers: Option<Vec<String>>,
        only_peers: Option<Vec<String>>,
        steps: Option<Vec<u64>>,
        quick: bool,
    ) -> Result<Scenario, ScenarioError> {
        if dispatchers.is_some() || only_peers.is_some() {
            let mut chosen = Vec::new();
            let mut peers = Vec::new();
            for name in only_peers.iter().flatten() {
                if !PEERS.contains(&name.as_str()) {
                    return Err(ScenarioError::invalid(
                        "--peer",
                        "peers",
                        format!(
                            "unknown peer {name:?} (expected one of {}){}",
                            PEERS.join(", "),
                            if DISPATCHERS.contains(&name.as_str()) {
                                "; dispatchers go in --dispatcher"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                if !peers.contains(name) {
                    peers.push(name.clone());
                }
            }
            for name in dispatchers.iter().flatten() {
                let listed: Vec<&DispatcherSpec> = self
                    .dispatchers
                    .iter()
                    .filter(|d| &d.name == name)
                    .collect();
                if !listed.is_empty() {
                    chosen.extend(listed.into_iter().cloned());
                } else if self.peers.contains(name) {
                    if !peers.contains(name) {
                        peers.push(name.clone());
                    }
                } else if DISPATCHERS.contains(&name.as_str()) {
                    chosen.push(DispatcherSpec {
                        name: name.clone(),
                        args: Vec::new(),
                    });
                } else {
                    return Err(ScenarioError::invalid(
                        "--dispatcher",
                        "dispatchers",
                        format!(
                            "unknown dispatcher {name:?} (expected one of {}{})",
                            DISPATCHERS.join(", "),
                            if self.peers.is_empty() {
                                String::new()
                            } else {
                                format!(", or a peer of the scenario: {}", self.peers.join(", "))
                            }
                        ),
                    ));
                }
            }
            chosen.dedup();
            self.dispatchers = chosen;
            self.peers = peers;
        }
        if let Some(steps) = steps {
            check_steps("--steps", "steps", &steps)?;
            self.steps = steps;
        }
        if quick {
            let mut steps: Vec<u64> = self.steps.iter().map(|s| (s / 10).max(1)).collect();
            steps.dedup();
            self.steps = steps;
            self.hold_secs = quick_secs(self.hold_secs);
            let full = self.publish.duration_secs;
            self.publish.duration_secs = quick_secs(full);
            if let Some(f) = self.fault.as_mut() {
                self.publish.duration_secs = f.quicken(full, self.publish.duration_secs);
            }
        }
        Ok(self)
    }
}

impl Scenario {
    /// `--name`: the run is named (and its results directory too) `name`
    /// instead of the scenario's name.
    pub fn with_name(mut self, name: &str) -> Result<Scenario, ScenarioError> {
        self.name = name.to_string();
        self.check_targets()
            .map_err(|(field, m)| ScenarioError::invalid("--name", &field, m))?;
        Ok(self)
    }
}

fn quick_secs(secs: f64) -> f64 {
    (secs / 5.0).max(secs.min(1.0))
}
