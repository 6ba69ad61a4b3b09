//! Giving memory back to the system after a mass close, or after a mass of
//! channels expired.
//!
//! When ten thousand connections close at once, what they used is freed, but
//! freed is not returned: glibc's malloc keeps freed chunks in its arenas
//! (only the top of the main heap shrinks on its own), and a thread's stack
//! keeps every page it ever touched. So RSS stays at its peak long after the
//! connections are gone. Three remedies, all cheap and all run only when
//! there is something to give back:
//!
//! - [`Trim`]: once the open connections (or, with a second `Trim`, the live
//!   channels) fall to half of their peak and by at least [`TRIM_MIN_DROP`],
//!   `malloc_trim(0)`, which returns the free pages of every arena. Measured
//!   with `scripts/storm.py` (10,000 SSE subscribers closed at once,
//!   2026-11-25): with the reactor's housekeeping RSS went from 7.7 MB back
//!   to 4.9 MB (baseline 4.7) within a second; without, it stayed at 7.7 MB.
//!   And with 1,000,000 channels made by one publish each, then expired
//!   (release build, `--message-ttl 30`, 2026-12-01): reactor 4.7 MB, 758 MB
//!   at the peak, 5.0 MB after; uring 6.0, 761 and 6.2 MB.
//! - [`Growth`]: an event loop whose slab grew trims too, for the copies
//!   the growth of its vectors left freed in the heap.
//! - [`release_stack`]: a thread gives back the pages of its own stack below
//!   the frame it runs in, which hold nothing live.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes below the current frame that [`release_stack`] leaves alone.
const STACK_MARGIN: usize = 1024;

/// A drop in open connections smaller than this is not worth a trim.
/// (A few hundred connections leave a few hundred KB on the heap, 5% of a
/// small server's RSS: measured with 400 on a debug build, +452 KB without a trim.)
pub const TRIM_MIN_DROP: u64 = 100;

/// Tracks the peak of open connections since the last trim.
#[derive(Debug, Default)]
pub struct Trim {
    peak: AtomicU64,
    /// Trims still due after a drop: memory is freed for a while after the
    /// count falls (threads end after counting their close).
    again: AtomicU32,
}

/// Ticks that trim again after a drop.
const SETTLE_TRIMS: u32 = 3;

impl Trim {
    /// Notes that `open` connections are open now.
    pub fn opened(&self, open: u64) {
        self.peak.fetch_max(open, Ordering::Relaxed);
    }

    /// Trims the heap when `open` is at most half the peak and at least
    /// [`TRIM_MIN_DROP`] below it, and on the next few calls after that;
    /// returns whether it did. Cheap otherwise: call it from housekeeping
    /// ticks (about once a second).
    pub fn maybe_trim(&self, open: u64) -> bool {
        let peak = self.peak.load(Ordering::Relaxed);
        let dropped = peak >= open + TRIM_MIN_DROP
            && open <= peak / 2
            // One trimmer per drop, whichever thread gets here first.
            && self
                .peak
                .compare_exchange(peak, open, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if dropped {
            self.again.store(SETTLE_TRIMS, Ordering::Relaxed);
        } else if self
            .again
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_err()
        {
            return false;
        }
        trim_heap();
        true
    }
}

/// Trims the heap after an event loop's connections grew its slab: a
/// growing vector leaves its old copy freed in the heap (below glibc's mmap
/// threshold; above it the copy is an `mremap`), and those pages stay
/// resident until trimmed, about 11 bytes an idle connection at 10,000 (see
/// `docs/DESIGN.md`, "Memory per connection"). A slab doubles, so this trims
/// a handful of times in a ramp, and never while the count holds.
#[derive(Debug, Default)]
pub struct Growth {
    seen: usize,
}

/// Below this slab capacity, the copies are not worth a trim.
const GROWTH_TRIM_MIN: usize = 1024;

impl Growth {
    /// Trims when `capacity` is past what the last call saw; returns whether
    /// it did. Call from housekeeping.
    pub fn maybe_trim(&mut self, capacity: usize) -> bool {
        let grew = capacity > self.seen && capacity >= GROWTH_TRIM_MIN;
        self.seen = capacity;
        if grew {
            trim_heap();
        }
        grew
    }
}

/// Returns every free page of the allocator's arenas to the system.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it takes the arena locks itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Gives back the pages of the calling thread's stack below its current
/// frame (less a page of margin), which hold nothing live: the next call that
/// reaches them finds zeroed pages, as a fresh stack would. Returns the bytes
/// given back (0 if the stack could not be found).
#[inline(never)]
pub fn release_stack() -> usize {
    let Some((low, _high)) = stack_bounds() else {
        return 0;
    };
    // SAFETY: `low` is the bottom of this thread's own stack, which runs
    // from there up to the caller's frame.
    unsafe { release_stack_down_to(low) }
}

/// Gives back the pages of the running stack between `low` and the
/// caller's frame (less [`STACK_MARGIN`]); `low` is the stack's lowest
/// address the caller may give back (a thread's stack bottom, a green
/// thread's red zone top). Returns the bytes given back.
///
/// # Safety
/// `[low, caller's frame)` must be the running stack's own unused part.
#[inline(never)]
pub(crate) unsafe fn release_stack_down_to(low: usize) -> usize {
    let page = page_size();
    let marker = 0u8;
    // An address in this frame, below the caller's: everything from here up
    // is in use.
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    // What runs below `here` until madvise returns (the rest of this frame,
    // the red zone, the libc wrapper's return address) takes far less than
    // this margin; the page holding it is kept, every page below it freed.
    // A whole page of margin would leave one more resident page per thread:
    // 40 MB over 10,000 pool workers, measured.
    let top = here.saturating_sub(STACK_MARGIN) & !(page - 1);
    let low = low.div_ceil(page) * page;
    if top <= low {
        return 0;
    }
    // SAFETY: [low, top) lies inside the running stack (the caller's
    // promise), below the frame running now and below the calls it makes;
    // no live data is there, and MADV_DONTNEED on private anonymous memory
    // only makes it read back as zeroes.
    let r = unsafe { libc::madvise(low as *mut libc::c_void, top - low, libc::MADV_DONTNEED) };
    if r == 0 {
        top - low
    } else {
        0
    }
}

/// The calling thread's usable stack, `[low, high)`, without its guard.
fn stack_bounds() -> Option<(usize, usize)> {
    // SAFETY: all-zero is a valid bit pattern for the plain C struct, which
    // pthread_getattr_np initialises; it is destroyed before returning.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let r = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if r != 0 || addr.is_null() {
            return None;
        }
        Some((addr as usize, addr as usize + size))
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_per_drop() {
        let t = Trim::default();
        t.opened(5000);
        assert!(!t.maybe_trim(4000), "not down to half");
        assert!(t.maybe_trim(100));
        for _ in 0..SETTLE_TRIMS {
            assert!(t.maybe_trim(100), "while it settles");
        }
        assert!(!t.maybe_trim(100), "then no more");
        t.opened(100 + TRIM_MIN_DROP - 1);
        assert!(!t.maybe_trim(100), "a drop under TRIM_MIN_DROP");
        t.opened(100 + 2 * TRIM_MIN_DROP);
        assert!(t.maybe_trim(100), "a drop of TRIM_MIN_DROP and to half");
    }

    #[test]
    fn a_thread_gives_back_its_stack() {
        let h = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(|| {
                #[inline(never)]
                fn deep(n: usize) -> u8 {
                    let buf = std::hint::black_box([n as u8; 4096]);
                    if n == 0 {
                        buf[0]
                    } else {
                        deep(n - 1).wrapping_add(buf[1])
                    }
                }
                deep(32);
                let freed = release_stack();
                // Still usable afterwards.
                deep(32);
                freed
            })
            .unwrap();
        assert!(h.join().unwrap() > 100 * 1024);
    }
}
