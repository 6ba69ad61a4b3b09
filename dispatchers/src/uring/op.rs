//! What an SQE's `user_data` names, and the state a send keeps until its CQE.
//!
//! # Buffer ownership
//! A send's SQE points at bytes of the connection's output queue, and a
//! `SendMsg` also at an iovec array and a `msghdr`. The kernel reads all of
//! them at any time until the CQE, while `Conn` may drop its queue in the
//! meantime (`handle_close` discards unsent output). So a [`Send`] holds its
//! own `Bytes` handles to every buffer it names (a reference count each, no
//! copy) and boxes the iovecs and header so that they do not move; the
//! connection's slot keeps the `Send` until the CQE arrives, and only then
//! drops it.

use std::num::NonZeroU32;

use bytes::Bytes;
use slab::Slab;

/// Kinds of operation, the top bits of `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// The listener's multishot accept.
    Accept,
    /// The read armed on the ring's eventfd.
    Wake,
    /// A connection's multishot recv.
    Recv,
    /// A connection's send (one in flight at most).
    Send,
    /// Cancelling a connection's operations before its close.
    Cancel,
    /// Closing a connection's direct descriptor.
    Close,
    /// Shutting a lingering connection's write side down.
    Shutdown,
}

const OP_SHIFT: u32 = 60;
const GEN_SHIFT: u32 = 32;
/// Generations wrap at 28 bits; a slot would have to be reused 2^28 times
/// while one of its CQEs is pending to be mistaken, and slots are only freed
/// once nothing of theirs is pending anyway.
pub(super) const GEN_MASK: u32 = (1 << (OP_SHIFT - GEN_SHIFT)) - 1;

/// `user_data`: operation kind, connection generation and slab key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Token {
    pub op: Op,
    pub key: u32,
    pub gen: u32,
}

impl Token {
    pub(super) fn new(op: Op, key: u32, gen: u32) -> Token {
        Token { op, key, gen }
    }

    pub(super) fn encode(self) -> u64 {
        let op = match self.op {
            Op::Accept => 1u64,
            Op::Wake => 2,
            Op::Recv => 3,
            Op::Send => 4,
            Op::Cancel => 5,
            Op::Close => 6,
            Op::Shutdown => 7,
        };
        (op << OP_SHIFT) | (((self.gen & GEN_MASK) as u64) << GEN_SHIFT) | self.key as u64
    }

    /// `None` for a value no token of ours encodes to.
    pub(super) fn decode(user_data: u64) -> Option<Token> {
        let op = match user_data >> OP_SHIFT {
            1 => Op::Accept,
            2 => Op::Wake,
            3 => Op::Recv,
            4 => Op::Send,
            5 => Op::Cancel,
            6 => Op::Close,
            7 => Op::Shutdown,
            _ => return None,
        };
        Some(Token {
            op,
            gen: (user_data >> GEN_SHIFT) as u32 & GEN_MASK,
            key: user_data as u32,
        })
    }
}

/// Buffers an SQE points at, kept alive and unmoved until its CQE.
///
/// Most sends name one buffer (a message frame to a subscriber): that case
/// is an `IORING_OP_SEND` and allocates nothing. Several buffers (a response
/// head and body) go out in one `SendMsg`.
pub(super) enum Send {
    One(Bytes),
    Many(Box<Gather>),
}

impl Send {
    /// Bytes the SQE asked to write: a completion can report no more.
    pub(super) fn len(&self) -> usize {
        match self {
            Send::One(b) => b.len(),
            Send::Many(g) => g.len(),
        }
    }
}

/// The sends in flight, kept apart from the connections' slots: a slot
/// names its send by a 4-byte [`SendId`] instead of holding 40 bytes that an
/// idle connection never uses (see `docs/DESIGN.md`, "Memory per
/// connection"). Moving a `Send` (as the slab grows) moves no byte an SQE
/// points at: those are the `Bytes`' heap data and the boxed `Gather`.
#[derive(Default)]
pub(super) struct Sends(Slab<Send>);

/// Which send of [`Sends`] a slot has in flight: its key plus one.
pub(super) type SendId = NonZeroU32;

impl Sends {
    pub(super) fn hold(&mut self, send: Send) -> SendId {
        let key = self.0.insert(send) as u32;
        SendId::new(key + 1).expect("a slab key plus one is not zero")
    }

    pub(super) fn take(&mut self, id: SendId) -> Send {
        self.0.remove(id.get() as usize - 1)
    }

    /// Gives back room kept from a peak (a broadcast to every connection).
    pub(super) fn shrink(&mut self) {
        crate::room::shrink_slab(&mut self.0);
    }

    /// Forgets every send: the kernel may still read what they hold.
    pub(super) fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.0));
    }
}

/// The `SendMsg` header, its iovecs, and the handles that keep their bytes alive.
pub(super) struct Gather {
    pub msg: libc::msghdr,
    iov: Vec<libc::iovec>,
    _held: Vec<Bytes>,
}

// SAFETY: the raw pointers in `msg` and `iov` point into `iov`'s own heap
// buffer and into the `Bytes` held beside them, which move with the value.
unsafe impl std::marker::Send for Gather {}

/// Most iovecs one `SendMsg` carries; the rest goes in the next send.
pub(super) const MAX_IOV: usize = 64;

impl Gather {
    /// A boxed header over (at most [`MAX_IOV`] of) `bufs`.
    pub(super) fn new<'a>(bufs: impl Iterator<Item = &'a Bytes>) -> Box<Gather> {
        let held: Vec<Bytes> = bufs
            .filter(|b| !b.is_empty())
            .take(MAX_IOV)
            .cloned()
            .collect();
        let iov: Vec<libc::iovec> = held
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len() as _;
        Box::new(Gather {
            msg,
            iov,
            _held: held,
        })
    }

    /// Bytes this send would write whole.
    pub(super) fn len(&self) -> usize {
        self.iov.iter().map(|v| v.iov_len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for op in [
            Op::Accept,
            Op::Wake,
            Op::Recv,
            Op::Send,
            Op::Cancel,
            Op::Close,
            Op::Shutdown,
        ] {
            for (key, gen) in [(0, 0), (u32::MAX, GEN_MASK), (17, 12345)] {
                let t = Token::new(op, key, gen);
                assert_eq!(Token::decode(t.encode()), Some(t));
            }
        }
        assert_eq!(Token::decode(0), None);
    }

    #[test]
    fn gather_points_at_held_bytes() {
        let a = Bytes::from_static(b"head");
        let b = Bytes::from(vec![b'x'; 10]);
        let bufs = [a.clone(), Bytes::new(), b.clone()];
        let g = Gather::new(bufs.iter());
        assert_eq!(g.len(), 14);
        assert_eq!(g.msg.msg_iovlen, 2);
        // SAFETY: the header points at `g.iov`, alive while `g` is.
        let iov = unsafe { std::slice::from_raw_parts(g.msg.msg_iov, 2) };
        assert_eq!(iov[0].iov_base as *const u8, a.as_ptr());
        assert_eq!(iov[1].iov_base as *const u8, b.as_ptr());
    }
}
