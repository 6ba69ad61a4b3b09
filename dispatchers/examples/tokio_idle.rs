//! Where an idle `tokio` subscriber's bytes go: the dispatcher in this
//! process, idle long-poll subscribers connected to it, and a global
//! allocator that counts what is live by request (size and alignment).
//!
//! ```text
//! cargo run --release -p dispatchers --example tokio_idle -- 5000
//! ```
//!
//! Argument: subscribers (5,000; both ends of each socket are in this
//! process, so at most half the open-file limit). It reports, per
//! subscriber, the bytes live on the heap as requested, the allocations
//! live, the resident growth (what malloc rounds and pads on top of the
//! requests), and the live allocations that grew by at least one per
//! subscriber, by size and alignment. The client ends are plain blocking
//! sockets made before the baseline and allocate nothing after it.
//!
//! Run it with the tunables `serve` sets itself (`src/main.rs`,
//! `tune_malloc`), or glibc's defaults are measured instead:
//!
//! ```text
//! GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0:glibc.pthread.stack_cache_size=0 \
//!   target/release/examples/tokio_idle 5000
//! ```
//!
//! It also gives glibc's own account of its heap (`mallinfo2`): what `brk`
//! took, how much of it is in chunks handed out (headers included) and how
//! much lies free between them, and what large blocks of their own mapping
//! hold (the deadlines' table, at its capacity).
//!
//! # Measured here (2026-12-02, 2 cores shared, release, 5,000 subscribers)
//! | build | asked per subscriber | blocks | resident (fresh heap) |
//! | --- | --- | --- | --- |
//! | one wait of five branches, loop in an `async fn` | 1,027 B | 768 + 256, 128-aligned | 1,391 B, 1,378 B |
//! | two waits, loop in the task's block, a `Sleep` per task | 899 B | 640 + 256, 128-aligned | 1,319 B (load 6.7) |
//! | the same, jemalloc preloaded (`LD_PRELOAD=.../libjemalloc.so.2`) | 899 B | the same | 1,037 B (load 4.9) |
//! | the same, serve's tunables (06:03, load 3.7) | 900 B | the same | 1,295-1,345 B; `brk` 1,298 B: 932 handed out, 366 free |
//! | now: deadlines in one table (`tasks/deadlines.rs`), serve's tunables (06:06, load 5.5) | 837 B (the table's room included) | 512 + 256, 128-aligned | 1,255-1,296 B; `brk` 1,147 B: 806 handed out, 342 free; 67 B mapped |
//!
//! The gap between what is asked and what is resident is the allocator's:
//! glibc's `memalign` takes a block, its 16-byte header and up to 160 bytes
//! around it, and frees the pieces before and after; they are small enough
//! for glibc's fastbins, which keep them apart for requests of exactly
//! their size, and no idle connection asks for one again. jemalloc's size
//! classes hold 512, 640 and 256-byte blocks in slabs without headers,
//! aligned as they come.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use comet::client::subscribe_request;
use comet::Transport;
use dispatchers::{Kind, Options};

/// Live allocations by size class (16-byte steps up to 8 KiB, then one
/// bucket) for the two alignments that occur (at most 16, and 128).
const CLASSES: usize = 513;

struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE: AtomicI64 = AtomicI64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicI64 = AtomicI64::new(0);
static BY_CLASS: [[AtomicI64; CLASSES]; 2] = [[ZERO; CLASSES], [ZERO; CLASSES]];

fn class(layout: Layout) -> (usize, usize) {
    let a = usize::from(layout.align() > 16);
    (a, (layout.size().div_ceil(16)).min(CLASSES - 1))
}

fn count(layout: Layout, sign: i64) {
    LIVE_BYTES.fetch_add(sign * layout.size() as i64, Ordering::Relaxed);
    LIVE.fetch_add(sign, Ordering::Relaxed);
    let (a, c) = class(layout);
    BY_CLASS[a][c].fetch_add(sign, Ordering::Relaxed);
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters only observe the layouts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout, 1);
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout, -1);
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout, -1);
        // SAFETY: the layout's alignment with a size the caller vouches for.
        count(
            unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) },
            1,
        );
        // SAFETY: `ptr` came from `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

struct Snapshot {
    bytes: i64,
    live: i64,
    rss: i64,
    by_class: Vec<[i64; 2]>,
    heap: Heap,
}

/// glibc's own account of its heap (`mallinfo2`).
struct Heap {
    /// Taken from the system by `brk`.
    arena: i64,
    /// In chunks handed out, headers included.
    used: i64,
    /// In free chunks between them.
    free: i64,
    /// In blocks of their own mapping (large ones: tables, buffers).
    mapped: i64,
}

fn heap() -> Heap {
    // SAFETY: `mallinfo2` only reads the allocator's statistics.
    let m = unsafe { libc::mallinfo2() };
    let n = |v: usize| v as i64;
    Heap {
        arena: n(m.arena),
        used: n(m.uordblks),
        free: n(m.fordblks),
        mapped: n(m.hblkhd),
    }
}

fn snapshot() -> Snapshot {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .expect("rss")
        .parse()
        .expect("number");
    Snapshot {
        bytes: LIVE_BYTES.load(Ordering::Relaxed),
        live: LIVE.load(Ordering::Relaxed),
        rss: pages * 4096,
        by_class: (0..CLASSES)
            .map(|c| [0, 1].map(|a| BY_CLASS[a][c].load(Ordering::Relaxed)))
            .collect(),
        heap: heap(),
    }
}

fn subscribers(running: &dispatchers::Running) -> u64 {
    let stats: serde_json::Value =
        serde_json::from_str(&running.shared.stats_json()).expect("stats");
    stats["subscribers"].as_u64().unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let opts = Options {
        config: comet::Config {
            poll_timeout: Duration::from_secs(600),
            ..Default::default()
        },
        threads: 2,
        ..Options::default()
    };
    let running = dispatchers::start(Kind::Tokio, opts).expect("start");
    let request = subscribe_request("idle", Transport::Longpoll, None);
    let mut clients = Vec::with_capacity(2 * n);
    // A first round, dropped, so that the runtime's and the hub's own
    // tables have grown to this size before the baseline.
    for round in 0..2 {
        let before = snapshot();
        for _ in 0..n {
            let mut s = TcpStream::connect(running.addr).expect("connect");
            s.write_all(request.as_bytes()).expect("request");
            clients.push(s);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while subscribers(&running) < n as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        let after = snapshot();
        println!(
            "{}",
            [
                "first round (tables growing, fresh heap)",
                "second round (after the first closed)"
            ][round]
        );
        report(n, subscribers(&running), &before, &after);
        if round == 0 {
            clients.clear();
            while running.shared.counters.connections.load(Ordering::Relaxed) > 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    drop(clients);
    running.stop();
}

fn report(n: usize, held: u64, before: &Snapshot, after: &Snapshot) {
    let per = |a: i64, b: i64| (a - b) as f64 / n as f64;
    println!("{held} of {n} subscribers held");
    println!(
        "per subscriber: {:.0} B requested live, {:.2} allocations, {:.0} B resident",
        per(after.bytes, before.bytes),
        per(after.live, before.live),
        per(after.rss, before.rss)
    );
    let (a, b) = (&after.heap, &before.heap);
    println!(
        "glibc's heap per subscriber: {:.0} B taken by brk: {:.0} B in chunks handed out, {:.0} B free between them; {:.0} B mapped for large blocks",
        per(a.arena, b.arena),
        per(a.used, b.used),
        per(a.free, b.free),
        per(a.mapped, b.mapped)
    );
    let mut rows = BTreeMap::new();
    for (c, (a, b)) in after.by_class.iter().zip(&before.by_class).enumerate() {
        for align in 0..2 {
            let grew = per(a[align], b[align]);
            if grew >= 0.5 {
                rows.insert((c * 16, align), grew);
            }
        }
    }
    println!("size class (B, up to)  alignment  live per subscriber");
    for ((size, align), grew) in rows {
        let align = if align == 1 { "128" } else { "<=16" };
        println!("{size:>21}  {align:>9}  {grew:.2}");
    }
}
