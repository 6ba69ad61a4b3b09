//! What the two io_uring loops (the `uring` rings and the green
//! runtime's schedulers) share: a ring tuned for one thread, the size of
//! its fixed-file table, and the errors after which a loop goes on.

use std::io;

use io_uring::IoUring;

/// Submission queue entries; a fuller queue is submitted early.
pub(crate) const SQ_ENTRIES: u32 = 1024;
/// Completion queue entries: a broadcast completes one send per subscriber
/// in a turn, and the kernel keeps what overflows anyway (`FEAT_NODROP`).
pub(crate) const CQ_ENTRIES: u32 = 16 * 1024;

/// A ring for one thread (single issuer, deferred task work), or a plain
/// one where the kernel lacks those flags; where io_uring is refused
/// altogether, the error says so (`io_uring is not available on this
/// kernel: ...`), with `needed_by` after it.
pub(crate) fn build(needed_by: &str) -> io::Result<IoUring> {
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
pub(crate) fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
    )
}
