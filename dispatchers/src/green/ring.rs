//! A scheduler's io_uring: setup with its fixed-file table, a submission
//! backlog for a full queue, and the one wait of a loop turn.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use io_uring::types::{SubmitArgs, Timespec};
use io_uring::{cqueue, squeue, IoUring};

use crate::io_ring::{self, is_transient};

pub(super) struct Ring {
    ring: IoUring,
    /// SQEs the submission queue could not take, oldest first, each with
    /// whether it is linked to the next (a chain goes in whole).
    backlog: VecDeque<(squeue::Entry, bool)>,
}

impl Ring {
    /// A ring for this thread (its only submitter) with `table` direct
    /// descriptor slots.
    pub(super) fn new(table: u32) -> io::Result<Ring> {
        let ring = io_ring::build(" (the green runtime needs it)")?;
        ring.submitter().register_files_sparse(table).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("green: cannot register {table} direct descriptors: {e}"),
            )
        })?;
        Ok(Ring {
            ring,
            backlog: VecDeque::new(),
        })
    }

    /// Queues `sqes` as one group, so that a link chain is never split.
    ///
    /// # Safety
    /// Every buffer an entry points at must stay valid and unmoved until the
    /// operation's CQE (see `op.rs`, `# Buffer ownership`).
    pub(super) unsafe fn push(&mut self, sqes: &[squeue::Entry]) {
        if self.backlog.is_empty() {
            // SAFETY: the caller's promise.
            if unsafe { self.ring.submission().push_multiple(sqes) }.is_ok() {
                return;
            }
            // SAFETY: as above.
            if self.ring.submit().is_ok()
                && unsafe { self.ring.submission().push_multiple(sqes) }.is_ok()
            {
                return;
            }
        }
        let last = sqes.len().saturating_sub(1);
        self.backlog.extend(
            sqes.iter()
                .enumerate()
                .map(|(i, sqe)| (sqe.clone(), i < last)),
        );
    }

    /// Moves the backlog into the submission queue, a group at a time.
    fn flush_backlog(&mut self) -> io::Result<()> {
        let mut group = Vec::new();
        while !self.backlog.is_empty() {
            let len = 1 + self
                .backlog
                .iter()
                .take_while(|(_, linked)| *linked)
                .count();
            group.clear();
            group.extend(self.backlog.iter().take(len).map(|(sqe, _)| sqe.clone()));
            // SAFETY: pushed under `push`'s contract, which still holds.
            if unsafe { self.ring.submission().push_multiple(&group) }.is_ok() {
                self.backlog.drain(..len);
                continue;
            }
            match self.ring.submit() {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if is_transient(&e) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Submits what is queued and waits up to `timeout` for a completion
    /// (`Duration::ZERO`: only collects what is there).
    pub(super) fn submit_and_wait(&mut self, timeout: Duration) -> io::Result<()> {
        self.flush_backlog()?;
        // Waiting for one CQE, even with a zero timeout, makes the kernel run
        // the deferred task work that produces completions (DEFER_TASKRUN).
        let ts = Timespec::from(timeout);
        let args = SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) || e.raw_os_error() == Some(libc::ETIME) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves every completion there is into `out`.
    pub(super) fn completions(&mut self, out: &mut Vec<cqueue::Entry>) {
        out.extend(self.ring.completion());
    }

    pub(super) fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }
}
