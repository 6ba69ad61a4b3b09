//! What a case is pointed at: one of our dispatchers, a peer, or an external
//! server.

use anyhow::{Context, Result};
use comet::Transport;

use super::External;
use crate::peers::{self, Peer};
use crate::results::Case;
use crate::scenario::Scenario;

#[derive(Debug, Clone)]
pub(super) enum Target {
    /// `cometbench serve --dispatcher NAME ARGS...`.
    Dispatcher {
        name: String,
        args: Vec<String>,
    },
    Peer(&'static Peer),
    External(External),
}

impl Target {
    /// The scenario's dispatchers then its peers, or the external server alone.
    pub fn all(s: &Scenario, external: Option<&External>) -> Result<Vec<Target>> {
        if let Some(e) = external {
            return Ok(vec![Target::External(e.clone())]);
        }
        let mut t: Vec<Target> = Vec::new();
        if s.floor {
            t.push(Target::Dispatcher {
                name: super::FLOOR.into(),
                args: Vec::new(),
            });
        }
        t.extend(s.dispatchers.iter().map(|d| Target::Dispatcher {
            name: d.name.clone(),
            args: s.server_args.iter().chain(&d.args).cloned().collect(),
        }));
        for name in &s.peers {
            let peer = peers::find(name).with_context(|| {
                format!(
                    "unknown peer {name:?} (expected one of {})",
                    peers::names().join(", ")
                )
            })?;
            t.push(Target::Peer(peer));
        }
        Ok(t)
    }

    pub fn label(&self) -> String {
        match self {
            Target::Dispatcher { name, .. } => name.clone(),
            Target::Peer(p) => p.name.into(),
            Target::External(_) => "external".into(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Target::Dispatcher { name, .. } if name == super::FLOOR => "floor",
            Target::Dispatcher { .. } => "dispatcher",
            Target::Peer(_) => "peer",
            Target::External(_) => "external",
        }
    }

    /// The target's flags at `step`: the floor is as many processes as the
    /// step needs with `nofile` descriptors each.
    pub fn args_at(&self, step: u64, nofile: u64) -> Vec<String> {
        match self {
            Target::Dispatcher { name, args } if name == super::FLOOR => {
                let n = floor_processes(step, nofile);
                match n {
                    1 => args.clone(),
                    _ => [args.clone(), vec!["--processes".into(), n.to_string()]].concat(),
                }
            }
            Target::Dispatcher { args, .. } => args.clone(),
            _ => Vec::new(),
        }
    }

    pub fn notes(&self, transport: Transport) -> Vec<String> {
        match self {
            Target::Peer(p) => p.case_notes(transport),
            _ => Vec::new(),
        }
    }

    /// A case of this target, as it starts.
    pub fn case(&self, transport: Transport, step: u64) -> Case {
        Case {
            target: self.label(),
            kind: self.kind().into(),
            transport: transport.name().into(),
            step,
            status: "ok".into(),
            notes: self.notes(transport),
            ..Case::default()
        }
    }

    /// A case that could not run, with why.
    pub fn failed_case(&self, transport: Transport, step: u64, e: anyhow::Error) -> Case {
        Case {
            status: "failed".into(),
            failure: Some(format!("{e:#}")),
            ..self.case(transport, step)
        }
    }

    /// A peer without the transport: the case is said, not run.
    pub fn skipped_case(&self, transport: Transport, step: u64) -> Option<Case> {
        match self {
            Target::Peer(p) if p.transport(transport).is_none() => {
                let mut case = self.case(transport, step);
                case.status = "skipped".into();
                case.connections.requested = step;
                Some(case)
            }
            Target::Dispatcher { name, .. }
                if name == super::FLOOR && transport != Transport::Sse =>
            {
                let mut case = self.case(transport, step);
                case.status = "skipped".into();
                case.connections.requested = step;
                case.notes
                    .push("the floor speaks SSE only: a plain write loop of one SSE frame".into());
                Some(case)
            }
            _ => None,
        }
    }
}

/// Descriptors a floor process keeps for other than subscribers (its
/// listeners, pipes, a publisher's connections).
const FLOOR_SPARE_FDS: u64 = 64;

/// Floor processes for `step` subscribers with `nofile` descriptors each:
/// a share of 85% of what is left, as `SO_REUSEPORT` spreads connections by
/// hash, not evenly (the uring rings are sized with the same margin).
pub(super) fn floor_processes(step: u64, nofile: u64) -> u64 {
    let share = (nofile.saturating_sub(FLOOR_SPARE_FDS) * 85 / 100).max(1);
    step.div_ceil(share).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_as_many_processes_as_its_descriptors_need() {
        assert_eq!(floor_processes(10_000, 20_000), 1);
        assert_eq!(floor_processes(16_945, 20_000), 1);
        assert_eq!(floor_processes(16_946, 20_000), 2);
        assert_eq!(floor_processes(1_000_000, 20_000), 60);
        // A limit too small for its spare still gets processes, not a panic.
        assert_eq!(floor_processes(10, 10), 10);
        let floor = Target::Dispatcher {
            name: super::super::FLOOR.into(),
            args: Vec::new(),
        };
        assert!(floor.args_at(10_000, 20_000).is_empty());
        assert_eq!(floor.args_at(1_000_000, 20_000), ["--processes", "60"]);
        let reactor = Target::Dispatcher {
            name: "reactor".into(),
            args: vec!["--threads".into(), "2".into()],
        };
        assert_eq!(reactor.args_at(1_000_000, 20_000), ["--threads", "2"]);
    }
}
