//! What the two io_uring loops (the `uring` rings and the green
//! runtime's schedulers) share: a ring tuned for one thread with its
//! fixed-file table, a submission backlog for a full queue, the one wait of
//! a loop turn, the size of the table, and the errors after which a loop
//! goes on.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use io_uring::types::{SubmitArgs, Timespec};
use io_uring::{cqueue, squeue, IoUring};

/// Submission queue entries; a fuller queue is submitted early.
const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries: a broadcast completes one send per subscriber
/// in a turn, and the kernel keeps what overflows anyway (`FEAT_NODROP`).
const CQ_ENTRIES: u32 = 16 * 1024;

/// A ring for one thread (single issuer, deferred task work), or a plain
/// one where the kernel lacks those flags; where io_uring is refused
/// altogether, the error says so (`io_uring is not available on this
/// kernel: ...`), with `needed_by` after it.
fn build(needed_by: &str) -> io::Result<IoUring> {
    let tuned = IoUring::builder()
        .setup_cqsize(CQ_ENTRIES)
        .setup_submit_all()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(SQ_ENTRIES);
    let ring = match tuned {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES),
        other => other,
    };
    ring.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("io_uring is not available on this kernel: {e}{needed_by}"),
        )
    })
}

/// Slots of a ring's fixed-file table: the open-file soft limit, the most
/// the kernel lets one table hold.
pub(crate) fn file_table_size() -> u32 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    // The kernel's own ceiling on a table (IORING_MAX_FIXED_FILES).
    lim.rlim_cur.min(1 << 20) as u32
}

/// Errors of `io_uring_enter` after which the loop simply goes on.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
    )
}

pub(crate) struct Ring {
    ring: IoUring,
    /// SQEs the submission queue could not take, oldest first, each with
    /// whether it is linked to the next (a chain goes in whole).
    backlog: VecDeque<(squeue::Entry, bool)>,
}

impl Ring {
    /// A ring for this thread (its only submitter) with `table` direct
    /// descriptor slots; `who` names the loop in errors, and `needed_by`
    /// follows the error of a kernel that refuses io_uring.
    pub(crate) fn new(table: u32, who: &str, needed_by: &str) -> io::Result<Ring> {
        let ring = build(needed_by)?;
        ring.submitter().register_files_sparse(table).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{who}: cannot register {table} direct descriptors: {e}"),
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
    pub(crate) unsafe fn push(&mut self, sqes: &[squeue::Entry]) {
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
    pub(crate) fn submit_and_wait(&mut self, timeout: Duration) -> io::Result<()> {
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
    pub(crate) fn completions(&mut self, out: &mut Vec<cqueue::Entry>) {
        out.extend(self.ring.completion());
    }

    pub(crate) fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// For registering buffers and the like.
    pub(crate) fn submitter(&self) -> io_uring::Submitter<'_> {
        self.ring.submitter()
    }

    /// Gives back the backlog's room after a burst (from housekeeping).
    pub(crate) fn shrink(&mut self) {
        if self.backlog.is_empty() && self.backlog.capacity() > 64 {
            self.backlog = VecDeque::new();
        }
    }
}
