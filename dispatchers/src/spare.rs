//! The spare descriptor an acceptor keeps for the moment the process has
//! no other.
//!
//! # Out of descriptors
//! With no descriptor free, `accept` fails with `EMFILE` (or `ENFILE`) at
//! once, whether a connection is pending or not: retrying would spin hot,
//! and clients would hang in the backlog. So an acceptor holds one spare
//! (`/dev/null`): it frees it, accepts the next connection into the
//! descriptor that frees, answers it `503` and closes it (counted in
//! `refused`), and takes the spare back. If the spare is gone (another
//! thread took the descriptor) the acceptor backs off instead.

use std::fs::File;

pub struct Spare(Option<File>);

impl Spare {
    pub fn new() -> Spare {
        Spare(File::open("/dev/null").ok())
    }

    /// Frees the spare, lets `refuse` accept one connection into it and
    /// answer it `503` (returning whether it did), then takes the spare back.
    /// Returns whether a connection was refused *and* the spare is back; if
    /// not, the acceptor should back off for a moment.
    pub fn shed(&mut self, refuse: impl FnOnce() -> bool) -> bool {
        let Some(f) = self.0.take() else {
            self.0 = File::open("/dev/null").ok();
            return false;
        };
        drop(f);
        let refused = refuse();
        // After the refused connection is closed, so that the spare takes
        // back the descriptor it freed.
        self.0 = File::open("/dev/null").ok();
        refused && self.0.is_some()
    }
}

impl Default for Spare {
    fn default() -> Spare {
        Spare::new()
    }
}
