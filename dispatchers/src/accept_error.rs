//! What a failed `accept` means, for every acceptor: the blocking ones,
//! the reactor's and tokio's, and the two io_uring multishot accepts.

/// A failed accept, by what the acceptor should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// No descriptor (or table slot) is free: shed the connection with a
    /// `503` if there is a spare, else back off (see [`crate::spare`]).
    OutOfFiles,
    /// Memory pressure: back off a moment.
    NoMemory,
    /// A connection that failed before it was taken, or a signal: the next
    /// one may well work.
    Transient,
    /// The accept was cancelled (an io_uring multishot accept ended).
    Cancelled,
    /// Not expected: do not spin on it.
    Unexpected,
}

impl AcceptError {
    pub(crate) fn of(errno: i32) -> AcceptError {
        match errno {
            libc::EMFILE | libc::ENFILE => AcceptError::OutOfFiles,
            libc::ENOBUFS | libc::ENOMEM => AcceptError::NoMemory,
            libc::ECONNABORTED | libc::EPROTO | libc::EPERM | libc::EINTR | libc::EAGAIN => {
                AcceptError::Transient
            }
            libc::ECANCELED => AcceptError::Cancelled,
            _ => AcceptError::Unexpected,
        }
    }

    /// The kind of an `io::Error` from `accept`.
    pub(crate) fn of_io(e: &std::io::Error) -> AcceptError {
        e.raw_os_error()
            .map_or(AcceptError::Unexpected, AcceptError::of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_by_what_to_do() {
        for (errno, want) in [
            (libc::EMFILE, AcceptError::OutOfFiles),
            (libc::ENFILE, AcceptError::OutOfFiles),
            (libc::ENOMEM, AcceptError::NoMemory),
            (libc::ECONNABORTED, AcceptError::Transient),
            (libc::EAGAIN, AcceptError::Transient),
            (libc::ECANCELED, AcceptError::Cancelled),
            (libc::EINVAL, AcceptError::Unexpected),
        ] {
            assert_eq!(AcceptError::of(errno), want, "errno {errno}");
        }
    }
}
