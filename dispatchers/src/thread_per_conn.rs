//! Not built yet.

use std::io;

use crate::{Options, Running};

pub fn start(_opts: &Options) -> io::Result<Running> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "thread_per_conn: not built yet"))
}
