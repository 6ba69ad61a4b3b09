//! One anonymous mapping that many stacks are carved from.
//!
//! A region is a single `mmap` (`MAP_NORESERVE`, so that only the pages a
//! stack touches cost memory) with one `PROT_NONE` page below its lowest
//! stack: two entries in `/proc/self/maps` however many stacks it holds.
//! Giving a stack's pages back (`MADV_DONTNEED`) changes no mapping flag, so
//! it never splits the mapping.

use std::io;
use std::ptr::NonNull;

/// The page size every address here is aligned to.
pub(super) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        page as usize
    } else {
        4096
    }
}

/// A mapping: one guard page, then `len` bytes of zeroed, readable and writable memory.
pub(super) struct Region {
    /// The guard page; the usable bytes start one page above.
    map: NonNull<u8>,
    len: usize,
    /// The kernel may still write into this memory: never unmap it.
    leaked: bool,
}

// SAFETY: the region is plain memory owned by this value; nothing in it is
// tied to the thread that mapped it.
unsafe impl Send for Region {}

impl Region {
    /// Maps `len` usable bytes (a whole number of pages).
    pub(super) fn map(len: usize) -> io::Result<Region> {
        let page = page_size();
        assert!(
            len > 0 && len.is_multiple_of(page),
            "a region is whole pages"
        );
        let total = len + page;
        // SAFETY: a fresh anonymous private mapping at an address the kernel
        // picks; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let region = Region {
            map: NonNull::new(p.cast()).expect("mmap does not return null"),
            len,
            leaked: false,
        };
        // SAFETY: the first page of the mapping made above.
        if unsafe { libc::mprotect(p, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Transparent huge pages would turn one touched page per stack into
        // 2 MiB. Failing is harmless (a kernel without THP).
        // SAFETY: advice on memory of this mapping only.
        unsafe {
            libc::madvise(
                region.start() as *mut libc::c_void,
                len,
                libc::MADV_NOHUGEPAGE,
            );
        }
        Ok(region)
    }

    /// Address of the first usable byte.
    pub(super) fn start(&self) -> usize {
        self.map.as_ptr() as usize + page_size()
    }

    /// Gives back the pages of `[addr, addr + len)`: the next touch finds zeroes.
    pub(super) fn release(&self, addr: usize, len: usize) {
        debug_assert!(addr >= self.start() && addr + len <= self.start() + self.len);
        // SAFETY: the range lies inside this region (asserted above in debug
        // builds, guaranteed by the pool's arithmetic); its owner has
        // finished with it. DONTNEED cannot fail on a valid private range.
        unsafe {
            libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }

    /// Keeps the memory mapped for the rest of the process.
    pub(super) fn leak(&mut self) {
        self.leaked = true;
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        // SAFETY: the whole mapping made in `map`; the pool drops a region
        // only when no stack of it is in use (or leaks it).
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.len + page_size());
        }
    }
}
