//! What the dispatcher suites share beyond `testkit`: a dispatcher started
//! in this process, on 127.0.0.1 port 0.
#![allow(dead_code)]

use comet::Config;
use dispatchers::{Kind, Options, Running};

/// Dispatcher `kind` with two reactors, rings or schedulers, a pool of
/// `pool_size` workers and 256 KiB connection stacks; green threads get the
/// smallest stack the runtime allows, so that every suite shows it is enough.
pub fn start(kind: Kind, config: Config, pool_size: usize) -> Running {
    let thread_stack = match kind {
        Kind::Green => dispatchers::green::MIN_STACK,
        _ => 256 * 1024,
    };
    start_with(
        kind,
        Options {
            config,
            threads: 2,
            pool_size,
            thread_stack,
            ..Options::default()
        },
    )
}

pub fn start_with(kind: Kind, opts: Options) -> Running {
    dispatchers::start(kind, opts).unwrap_or_else(|e| panic!("{}: start: {e}", kind.name()))
}

/// A suite parametrised by a list of dispatchers must list every one.
pub fn assert_every_kind(covered: &[Kind]) {
    for kind in Kind::ALL {
        assert!(
            covered.contains(&kind),
            "{} is not in the suite",
            kind.name()
        );
    }
}
