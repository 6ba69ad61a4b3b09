//! The provided buffer ring a ring's multishot receives read into.
//!
//! # Buffer ownership
//! The ring of descriptors and the buffers are one page-aligned allocation
//! each, registered with the kernel under one group id. A buffer whose
//! descriptor sits between the kernel's head and our tail belongs to the
//! kernel: it may write into it at any time. A receive completion names the
//! buffer it filled (`IORING_CQE_F_BUFFER`); from then the buffer is ours until
//! [`BufRing::give_back`] publishes it again. The loop gives each buffer back
//! while handling its completion, right after `Conn::handle_read` copied what
//! it keeps, so the whole pool is the kernel's between loop turns.
//!
//! The memory must outlive every receive that may still pick a buffer: the
//! ring unregisters the group (or leaks the memory, see [`BufRing::leak`])
//! before it is freed.

use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// Bytes per buffer: one page, as a request head seldom needs more in one read.
pub(super) const BUF_SIZE: usize = 4096;

const PAGE: usize = 4096;

pub(super) struct BufRing {
    entries: NonNull<BufRingEntry>,
    bufs: NonNull<u8>,
    count: u16,
    /// Our copy of the tail: the next descriptor slot to fill.
    tail: u16,
    bgid: u16,
    /// The kernel may still use the memory: never free it.
    leaked: bool,
}

// SAFETY: the raw pointers are owned allocations that only this value frees;
// the kernel's access to them is governed by the registration, not by threads.
unsafe impl Send for BufRing {}

impl BufRing {
    /// `count` buffers (a power of two, at most 32768) for group `bgid`, all
    /// handed to the kernel once [`BufRing::register`] is called.
    pub(super) fn new(count: u16, bgid: u16) -> io::Result<BufRing> {
        assert!(count.is_power_of_two() && count <= 32768);
        let entries = alloc_pages(ring_layout(count))?.cast::<BufRingEntry>();
        let bufs = match alloc_pages(bufs_layout(count)) {
            Ok(b) => b,
            Err(e) => {
                // SAFETY: allocated just above with this layout, not yet shared.
                unsafe { alloc::dealloc(entries.as_ptr().cast(), ring_layout(count)) };
                return Err(e);
            }
        };
        let mut ring = BufRing {
            entries,
            bufs,
            count,
            tail: 0,
            bgid,
            leaked: false,
        };
        for bid in 0..count {
            ring.give_back(bid);
        }
        Ok(ring)
    }

    /// Registers the ring with the kernel, which may use every buffer from now on.
    pub(super) fn register(&self, submitter: &Submitter<'_>) -> io::Result<()> {
        // SAFETY: both allocations live until `Drop`, which runs only after
        // `unregister` succeeded or never frees them (`leaked`).
        unsafe {
            submitter.register_buf_ring_with_flags(
                self.entries.as_ptr() as u64,
                self.count,
                self.bgid,
                0,
            )
        }
    }

    /// Takes the memory back from the kernel; after this it is ours to free.
    pub(super) fn unregister(&mut self, submitter: &Submitter<'_>) {
        if submitter.unregister_buf_ring(self.bgid).is_err() {
            self.leaked = true;
        }
    }

    /// Never frees the memory: for a ring torn down with receives that may
    /// still be pending in the kernel.
    pub(super) fn leak(&mut self) {
        self.leaked = true;
    }

    pub(super) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// The `len` bytes the kernel wrote into buffer `bid`.
    ///
    /// Call only between the completion naming `bid` and `give_back(bid)`.
    pub(super) fn get(&self, bid: u16, len: usize) -> &[u8] {
        assert!(
            bid < self.count && len <= BUF_SIZE,
            "buffer {bid}/{len} out of range"
        );
        // SAFETY: in bounds (checked above); the completion handed buffer `bid`
        // to us, so the kernel does not write it until we give it back.
        unsafe { std::slice::from_raw_parts(self.bufs.as_ptr().add(bid as usize * BUF_SIZE), len) }
    }

    /// Hands buffer `bid` back to the kernel.
    pub(super) fn give_back(&mut self, bid: u16) {
        debug_assert!(bid < self.count);
        let slot = (self.tail & (self.count - 1)) as usize;
        // SAFETY: `slot < count`, so the descriptor is inside the allocation.
        // The kernel reads descriptors only below the published tail, and this
        // one is at the tail, so nobody else touches it. Only its addr, len and
        // bid are written: descriptor 0's last field is the shared tail itself.
        unsafe {
            let e = &mut *self.entries.as_ptr().add(slot);
            e.set_addr(self.bufs.as_ptr().add(bid as usize * BUF_SIZE) as u64);
            e.set_len(BUF_SIZE as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail is a u16 inside descriptor 0, which lives as long as
        // `self`; the kernel reads it with acquire semantics, and this release
        // store publishes the descriptor written above before the new tail.
        unsafe {
            let tail = BufRingEntry::tail(self.entries.as_ptr()) as *mut u16;
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        // SAFETY: allocated in `new` with these layouts; the kernel no longer
        // uses them (unregistered, or the ring had no receive left, see the
        // module docs).
        unsafe {
            alloc::dealloc(self.entries.as_ptr().cast(), ring_layout(self.count));
            alloc::dealloc(self.bufs.as_ptr(), bufs_layout(self.count));
        }
    }
}

fn ring_layout(count: u16) -> Layout {
    let size = count as usize * std::mem::size_of::<BufRingEntry>();
    Layout::from_size_align(size.max(PAGE), PAGE).expect("valid layout")
}

fn bufs_layout(count: u16) -> Layout {
    Layout::from_size_align(count as usize * BUF_SIZE, PAGE).expect("valid layout")
}

/// Zeroed, page-aligned memory, as the kernel requires of a buffer ring.
fn alloc_pages(layout: Layout) -> io::Result<NonNull<u8>> {
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc::alloc_zeroed(layout) };
    NonNull::new(p).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))
}
