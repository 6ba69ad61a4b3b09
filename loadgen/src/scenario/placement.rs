//! `[placement]` and `--cpus`: the CPUs the server and the load generator
//! are pinned to, as `sched_setaffinity` numbers them.

use serde::{Deserialize, Serialize};

/// Where the processes run: CPU numbers as `sched_setaffinity` takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// The server under test, all its processes (ours or a peer's).
    pub server: Vec<usize>,
    /// The load generator: its workers, and the coordinator (publisher, sampler).
    pub loadgen: Vec<usize>,
}

impl Placement {
    /// Reads `server=LIST,loadgen=LIST`, a LIST being CPU numbers and
    /// ranges separated by commas: `server=0,loadgen=1`,
    /// `server=0-1,loadgen=2,3`.
    pub fn parse(text: &str) -> Result<Placement, String> {
        let mut server = None;
        let mut loadgen = None;
        let mut current: Option<&mut Option<Vec<usize>>> = None;
        for part in text.split(',') {
            let part = part.trim();
            let list = if let Some(v) = part.strip_prefix("server=") {
                current = Some(&mut server);
                v
            } else if let Some(v) = part.strip_prefix("loadgen=") {
                current = Some(&mut loadgen);
                v
            } else {
                part
            };
            let Some(slot) = current.as_mut() else {
                return Err(format!("expected server=LIST,loadgen=LIST, got {text:?}"));
            };
            slot.get_or_insert_with(Vec::new)
                .extend(cpu_list(list).map_err(|e| format!("{e} in {text:?}"))?);
        }
        match (server, loadgen) {
            (Some(server), Some(loadgen)) => Ok(Placement { server, loadgen }),
            _ => Err(format!(
                "both server=LIST and loadgen=LIST are needed, got {text:?}"
            )),
        }
    }
}

/// `3` or `0-2`.
fn cpu_list(item: &str) -> Result<Vec<usize>, String> {
    let num = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| format!("{s:?} is not a CPU number"))
    };
    match item.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(format!("{item:?} is an empty range"));
            }
            Ok((a..=b).collect())
        }
        None => Ok(vec![num(item)?]),
    }
}
