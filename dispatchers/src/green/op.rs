//! What an SQE's `user_data` names, and the state of a green thread's
//! operation until its last CQE.
//!
//! # Buffer ownership
//! A read or a write names memory on its green thread's stack (the buffer,
//! the iovecs, the `msghdr`). The kernel may use it until the CQE, so the
//! green thread does not return from the primitive, for any reason
//! (deadline, stop), before that CQE: an operation that must end early is
//! cancelled and then still waited for. Such an operation *pins* its task:
//! [`Op::pins`] counts in the task's `in_flight`, and a task with anything
//! in flight is never unwound nor its stack reused (it is leaked instead,
//! see the scheduler's stop).
//!
//! A multishot poll names no memory. It belongs to a `Stream` and outlives
//! single waits; when its stream goes, it is *detached*: cancelled, and its
//! slot freed at its last CQE.

/// Kinds of `user_data`, in the top byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Token {
    /// A green thread's operation: its key in the ops slab.
    Op(u32),
    /// The listener's multishot accept.
    Accept,
    /// The read armed on the scheduler's eventfd.
    Wake,
    /// Closing a direct descriptor (counted when it completes).
    Close,
    /// Cancels and refusals: nothing waits for them.
    Ignore,
}

const KIND_SHIFT: u32 = 56;

impl Token {
    pub(super) fn encode(self) -> u64 {
        let (kind, low) = match self {
            Token::Op(key) => (1u64, key),
            Token::Accept => (2, 0),
            Token::Wake => (3, 0),
            Token::Close => (4, 0),
            Token::Ignore => (5, 0),
        };
        (kind << KIND_SHIFT) | low as u64
    }

    /// `None` for a value no token encodes to.
    pub(super) fn decode(user_data: u64) -> Option<Token> {
        let low = user_data as u32;
        Some(match user_data >> KIND_SHIFT {
            1 => Token::Op(low),
            2 => Token::Accept,
            3 => Token::Wake,
            4 => Token::Close,
            5 => Token::Ignore,
            _ => return None,
        })
    }
}

/// One operation of a green thread, from its SQE to its last CQE.
#[derive(Debug)]
pub(super) struct Op {
    /// The task woken by its completions: slab key and generation.
    pub owner: (u32, u32),
    /// A multishot poll: completions add to `events` and it stays armed.
    pub multishot: bool,
    /// It names memory on its owner's stack (see `# Buffer ownership`).
    pub pins: bool,
    /// The kernel has not sent its last CQE yet.
    pub armed: bool,
    /// Nobody waits for it any more: freed at its last CQE.
    pub detached: bool,
    /// A cancel was submitted for it.
    pub cancelled: bool,
    /// The result of a one-shot operation, once complete.
    pub res: i32,
    /// Poll events reported and not yet taken.
    pub events: u32,
}

impl Op {
    pub(super) fn new(owner: (u32, u32), multishot: bool, pins: bool) -> Op {
        Op {
            owner,
            multishot,
            pins,
            armed: true,
            detached: false,
            cancelled: false,
            res: 0,
            events: 0,
        }
    }

    /// Records a CQE; returns whether it was the last one.
    pub(super) fn complete(&mut self, res: i32, more: bool) -> bool {
        if self.multishot {
            if res >= 0 {
                self.events |= res as u32;
            } else if res != -libc::ECANCELED {
                // The poll failed (the descriptor is gone, or worse): the
                // waiter must look at its socket.
                self.events |= libc::POLLERR as u32;
            }
            self.armed = more;
        } else {
            self.res = res;
            self.armed = false;
        }
        !self.armed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for t in [
            Token::Op(0),
            Token::Op(u32::MAX),
            Token::Accept,
            Token::Wake,
            Token::Close,
            Token::Ignore,
        ] {
            assert_eq!(Token::decode(t.encode()), Some(t));
        }
        assert_eq!(Token::decode(0), None);
        assert_eq!(Token::decode(9 << KIND_SHIFT), None);
    }

    #[test]
    fn poll_events_accumulate_until_the_last_cqe() {
        let mut op = Op::new((1, 1), true, false);
        assert!(!op.complete(libc::POLLIN as i32, true));
        assert!(!op.complete(libc::POLLRDHUP as i32, true));
        assert_eq!(op.events, (libc::POLLIN | libc::POLLRDHUP) as u32);
        assert!(op.complete(-libc::ECANCELED, false));
        assert_eq!(op.events & libc::POLLERR as u32, 0, "a cancel is no error");
        let mut op = Op::new((1, 1), true, false);
        assert!(op.complete(-libc::EBADF, false));
        assert_ne!(op.events & libc::POLLERR as u32, 0);
    }

    #[test]
    fn one_shot_ends_at_its_cqe() {
        let mut op = Op::new((1, 1), false, true);
        assert!(op.complete(42, false));
        assert_eq!(op.res, 42);
        assert!(!op.armed);
    }
}
