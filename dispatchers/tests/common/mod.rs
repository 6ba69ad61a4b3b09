//! What the dispatcher suites share beyond `testkit`: a dispatcher started
//! in this process, on 127.0.0.1 port 0.
#![allow(dead_code)]

use comet::Config;
use dispatchers::{Kind, Options, Running};

/// Dispatcher `kind` with two reactors or rings, a pool of `pool_size`
/// workers and 256 KiB connection stacks.
pub fn start(kind: Kind, config: Config, pool_size: usize) -> Running {
    start_with(
        kind,
        Options {
            config,
            threads: 2,
            pool_size,
            thread_stack: 256 * 1024,
            ..Options::default()
        },
    )
}

pub fn start_with(kind: Kind, opts: Options) -> Running {
    dispatchers::start(kind, opts).unwrap_or_else(|e| panic!("{}: start: {e}", kind.name()))
}
