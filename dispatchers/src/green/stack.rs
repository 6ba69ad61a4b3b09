//! Green thread stacks without a mapping each.
//!
//! A [`StackPool`] carves stacks of one size out of large [`Region`]s (one
//! `mmap` each, [`DEFAULT_REGION`] bytes unless told otherwise). A stack that
//! is put back has its pages given back (`MADV_DONTNEED`) and is handed out
//! again, most recently freed first. So the process's mapping count grows by
//! two per region (the region and its guard page), not by one or two per
//! stack as with `mmap` per stack: at `vm.max_map_count` = 65,530 that is
//! the difference between about 32,000 green threads and millions.
//!
//! # Overflow: a red zone instead of a guard page
//! A guard page per stack would split the region into one mapping per stack
//! again. Instead the lowest [`RED_ZONE`] bytes of each stack are a red
//! zone: never used by the coroutine (its limit is above it) and always zero
//! (fresh anonymous memory is, and `MADV_DONTNEED` makes it so again).
//! [`Stack::is_intact`] checks that it is still all zero; the scheduler
//! checks it every time a green thread suspends or ends, and aborts the
//! process with one line naming the stack size if it is not.
//!
//! What this gives up against a guard page, knowingly:
//! - detection comes *after* the fact, at the next switch. A stack that ran
//!   past its red zone has written into the stack below it (another green
//!   thread's, suspended); the abort comes before that thread runs again,
//!   but the write has happened.
//! - a write of zeroes, or a frame larger than the red zone that skips it
//!   entirely, goes unseen. Rust's stack probes of large frames touch each
//!   page without changing it, so they do not trip it either.
//! - checking reads the red zone: one page (the shared zero page while it
//!   is untouched, so no memory) per switch.
//!
//! The red zone costs no memory while it is intact: a zero page that is only
//! read is the kernel's shared zero page, not a page of this process. A
//! written canary word at each stack's limit would cost one resident page
//! per stack, doubling what an idle green thread holds.
//!
//! The lowest stack of a region sits on the region's guard page, so its
//! overflow faults instead of reaching another mapping.

use std::io;

use super::region::{page_size, Region};

/// Bytes at the bottom of every stack that must stay zero (see the module docs).
pub const RED_ZONE: usize = 4096;

/// The smallest stack handed out whatever is asked: enough for a panic near
/// the top of a green thread, with `RUST_BACKTRACE=1`, to print its
/// backtrace and be caught. Measured with `examples/green_hold.rs probe`: a
/// panic without a backtrace fits 16 KiB, one with needs 28 KiB (24 KiB
/// overran the red zone). Pages never touched cost nothing, so the floor
/// costs address space, not memory.
pub const MIN_STACK: usize = 32 * 1024;

/// Usable bytes of regions when not told otherwise.
pub const DEFAULT_REGION: usize = 64 << 20;

/// `requested` rounded up to whole pages and to [`MIN_STACK`].
pub fn stack_size(requested: usize) -> usize {
    let page = page_size();
    requested.max(MIN_STACK).div_ceil(page) * page
}

/// One stack: `[lo, lo + size)`, growing down from `lo + size`.
#[derive(Debug)]
pub struct Stack {
    lo: usize,
    size: usize,
    /// Index in the pool, so that it can be put back.
    slot: usize,
}

// SAFETY: `base` is the top of `[lo, lo + size)` and `limit` the top of the
// red zone, both page aligned (so aligned to STACK_ALIGNMENT), with at least
// `MIN_STACK - RED_ZONE` (28 KiB, above corosensei's MIN_STACK_SIZE) usable bytes
// between them, in memory the pool keeps mapped while the stack is out. The
// trait asks for a guard page; there is none per stack. The red zone check
// replaces it, with the weaker guarantee written in the module docs
// (detection after the fact, by abort).
unsafe impl corosensei::stack::Stack for Stack {
    fn base(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.lo + self.size).expect("stack above address 0")
    }

    fn limit(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.lo + RED_ZONE).expect("stack above address 0")
    }
}

impl Stack {
    /// Bytes of the stack, red zone included.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Lowest address (the red zone's first byte).
    pub fn bottom(&self) -> usize {
        self.lo
    }

    /// Whether the red zone is still all zero, i.e. no overflow was seen.
    pub fn is_intact(&self) -> bool {
        red_zone_is_zero(self.lo)
    }

    /// Pages of the stack that hold memory now (`mincore`).
    pub fn resident_pages(&self) -> io::Result<usize> {
        let page = page_size();
        let mut vec = vec![0u8; self.size / page];
        // SAFETY: `[lo, lo + size)` is mapped (the pool keeps it so while the
        // stack exists) and page aligned; `vec` has one byte per page.
        let r = unsafe {
            libc::mincore(
                self.lo as *mut libc::c_void,
                self.size,
                vec.as_mut_ptr().cast(),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(vec.iter().filter(|&&b| b & 1 != 0).count())
    }
}

/// Whether the [`RED_ZONE`] bytes at `lo` are all zero.
pub(super) fn red_zone_is_zero(lo: usize) -> bool {
    // SAFETY: `lo` is the bottom of a stack of the pool, mapped and readable
    // for at least RED_ZONE bytes, and u64 aligned (page aligned). Nothing
    // writes to it concurrently: the only code that could (its coroutine)
    // runs on this thread and is suspended.
    let words = unsafe { std::slice::from_raw_parts(lo as *const u64, RED_ZONE / 8) };
    words.iter().fold(0, |acc, w| acc | w) == 0
}

/// Stacks of one size, carved out of regions and recycled.
pub struct StackPool {
    size: usize,
    per_region: usize,
    regions: Vec<Region>,
    /// Slots given back, most recent last.
    free: Vec<usize>,
    /// Slots below this have been handed out at least once.
    fresh: usize,
    in_use: usize,
    /// The pool is about to be unmapped whole: stacks put back keep their
    /// pages rather than cost a `madvise` each.
    ending: bool,
}

impl StackPool {
    /// A pool of stacks of [`stack_size`]`(requested)` bytes in regions of
    /// about `region_bytes` (at least one stack each).
    pub fn new(requested: usize, region_bytes: usize) -> StackPool {
        let size = stack_size(requested);
        StackPool {
            size,
            per_region: (region_bytes / size).max(1),
            regions: Vec::new(),
            free: Vec::new(),
            fresh: 0,
            in_use: 0,
            ending: false,
        }
    }

    /// Bytes of each stack.
    pub fn stack_size(&self) -> usize {
        self.size
    }

    /// Stacks handed out and not put back.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Regions mapped (each is two mappings: itself and its guard page).
    pub fn regions(&self) -> usize {
        self.regions.len()
    }

    /// A stack: the most recently put back, or a fresh one (mapping a new
    /// region when the last is full; that is where this can fail).
    pub fn get(&mut self) -> io::Result<Stack> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                if self.fresh == self.regions.len() * self.per_region {
                    self.regions.push(Region::map(self.per_region * self.size)?);
                }
                self.fresh += 1;
                self.fresh - 1
            }
        };
        self.in_use += 1;
        Ok(Stack {
            lo: self.address(slot),
            size: self.size,
            slot,
        })
    }

    /// Takes `stack` back and gives its pages back to the system (unless
    /// the pool is [`StackPool::end`]ing).
    pub fn put(&mut self, stack: Stack) {
        debug_assert_eq!(stack.lo, self.address(stack.slot));
        if !self.ending {
            self.regions[stack.slot / self.per_region].release(stack.lo, stack.size);
        }
        self.free.push(stack.slot);
        self.in_use -= 1;
        if self.in_use == 0 && self.free.capacity() > 4096 {
            // After a storm: the list of free slots need not stay at its peak.
            self.free.shrink_to(4096);
        }
    }

    /// The pool will be dropped (its regions unmapped) once the stacks out
    /// are back: from now on [`StackPool::put`] keeps the pages, which the
    /// unmapping frees in one go. After a mass stop of 100,000 green threads
    /// that is 100,000 system calls (and TLB shootdowns) fewer.
    pub fn end(&mut self) {
        self.ending = true;
    }

    /// Keeps every region mapped for the rest of the process: a stack still
    /// out may be written by the kernel (a pending read) or by a coroutine
    /// that was never unwound.
    pub fn leak(&mut self) {
        for r in &mut self.regions {
            r.leak();
        }
    }

    fn address(&self, slot: usize) -> usize {
        self.regions[slot / self.per_region].start() + (slot % self.per_region) * self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of /proc/self/maps: one per mapping.
    fn mappings() -> usize {
        std::fs::read_to_string("/proc/self/maps")
            .expect("/proc/self/maps")
            .lines()
            .count()
    }

    #[test]
    fn sizes_round_up_to_pages_and_the_floor() {
        assert_eq!(stack_size(1), MIN_STACK);
        assert_eq!(stack_size(MIN_STACK + 1), MIN_STACK + page_size());
        assert_eq!(stack_size(64 * 1024), 64 * 1024);
        assert_eq!(StackPool::new(40 * 1024, 1 << 20).stack_size(), 40 * 1024);
    }

    #[test]
    fn thousands_of_stacks_keep_the_mapping_count_flat() {
        let before = mappings();
        let mut pool = StackPool::new(32 * 1024, DEFAULT_REGION);
        let mut stacks: Vec<Stack> = (0..5000).map(|_| pool.get().expect("stack")).collect();
        for s in &stacks {
            // Touch each stack's top, as a coroutine does.
            // SAFETY: the last word below the top of a stack we own.
            unsafe { ((s.lo + s.size - 8) as *mut u64).write(1) };
        }
        let during = mappings();
        // 5000 x 32 KiB = 160 MiB: three regions, two mappings each. Other
        // tests of this process may map a little meanwhile: allow for it,
        // far below one mapping per stack.
        assert_eq!(pool.regions(), 3);
        assert!(
            during <= before + 6 + 40,
            "mappings went from {before} to {during} for 5000 stacks"
        );
        for s in stacks.drain(..) {
            pool.put(s);
        }
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn stacks_do_not_overlap_and_are_reused_most_recent_first() {
        let mut pool = StackPool::new(32 * 1024, 128 * 1024);
        let a = pool.get().unwrap();
        let b = pool.get().unwrap();
        let c = pool.get().unwrap();
        let mut spans = [(a.lo, a.size), (b.lo, b.size), (c.lo, c.size)];
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "{spans:?}");
        }
        let b_lo = b.lo;
        pool.put(a);
        pool.put(b);
        assert_eq!(pool.get().unwrap().lo, b_lo);
        pool.put(c);
    }

    #[test]
    fn red_zone_catches_a_write() {
        let mut pool = StackPool::new(32 * 1024, 1 << 20);
        let s = pool.get().unwrap();
        assert!(s.is_intact());
        // A deliberate overflow: one byte near the top of the red zone,
        // where a frame below the limit would land first.
        // SAFETY: inside the red zone of a stack we own.
        unsafe { ((s.lo + RED_ZONE - 3) as *mut u8).write(0x5a) };
        assert!(!s.is_intact());
        // Given back, the page comes back zero: the slot is clean again.
        pool.put(s);
        let s = pool.get().unwrap();
        assert!(s.is_intact());
        pool.put(s);
    }

    #[test]
    fn a_recycled_stack_has_given_its_pages_back() {
        let mut pool = StackPool::new(32 * 1024, 1 << 20);
        let s = pool.get().unwrap();
        let page = page_size();
        for addr in (s.lo + RED_ZONE..s.lo + s.size).step_by(page) {
            // SAFETY: usable bytes of a stack we own.
            unsafe { (addr as *mut u8).write(7) };
        }
        let usable = (s.size - RED_ZONE) / page;
        assert_eq!(s.resident_pages().unwrap(), usable);
        let lo = s.lo;
        pool.put(s);
        let s = pool.get().unwrap();
        assert_eq!(s.lo, lo, "the same slot comes back");
        assert_eq!(s.resident_pages().unwrap(), 0);
        // SAFETY: as above.
        assert_eq!(unsafe { ((lo + RED_ZONE) as *const u8).read() }, 0);
        pool.put(s);
    }

    #[test]
    fn an_ending_pool_keeps_the_pages_for_the_unmapping() {
        let mut pool = StackPool::new(32 * 1024, 1 << 20);
        let s = pool.get().unwrap();
        // SAFETY: the top word of a stack we own.
        unsafe { ((s.lo + s.size - 8) as *mut u64).write(1) };
        let lo = s.lo;
        pool.end();
        pool.put(s);
        let s = pool.get().unwrap();
        assert_eq!(s.lo, lo);
        assert_eq!(s.resident_pages().unwrap(), 1, "no madvise once ending");
        pool.put(s);
    }

    #[test]
    fn giving_pages_back_does_not_split_the_region() {
        let mut pool = StackPool::new(32 * 1024, 1 << 20);
        let stacks: Vec<Stack> = (0..8).map(|_| pool.get().unwrap()).collect();
        let region = |lo: usize| {
            std::fs::read_to_string("/proc/self/maps")
                .unwrap()
                .lines()
                .filter_map(|l| {
                    let (range, _) = l.split_once(' ')?;
                    let (a, b) = range.split_once('-')?;
                    let (a, b) = (
                        usize::from_str_radix(a, 16).ok()?,
                        usize::from_str_radix(b, 16).ok()?,
                    );
                    (a <= lo && lo < b).then_some((a, b))
                })
                .next()
                .expect("the stack is mapped")
        };
        let whole = region(stacks[0].lo);
        let mut stacks = stacks.into_iter();
        // Give back every other stack: holes of DONTNEED in a live mapping.
        let (mut kept, mut given) = (Vec::new(), Vec::new());
        for (i, s) in stacks.by_ref().enumerate() {
            if i % 2 == 0 {
                given.push(s);
            } else {
                kept.push(s);
            }
        }
        for s in given {
            pool.put(s);
        }
        for s in &kept {
            assert_eq!(region(s.lo), whole, "the mapping was split");
        }
        for s in kept {
            pool.put(s);
        }
    }
}
