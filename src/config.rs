//! Tunables and layout constants, with the compile-time checks that keep them consistent.
//!
//! Everything here is a `const`: the layout is fixed at build time so that the hot paths
//! compile to shifts and masks.  Nothing in this module calls anything.
//!
//! ## Why these sizes (4 KiB-page Linux, x86-64 and aarch64)
//!
//! * **Slot (16 KiB)** — the unit an arena is carved into, and the size of a small pool.
//!   CPython 3.10+ moved from 4 KiB to 16 KiB pools: with 4 KiB pools the 512-byte class
//!   wastes a block in every pool and the per-pool bookkeeping shows up in profiles.  16 KiB
//!   is four 4 KiB pages (so an empty pool can be given back with `madvise` on page
//!   boundaries) and one 16 KiB page on aarch64 kernels configured that way.
//! * **Arena (4 MiB)** — CPython uses 1 MiB arenas for ≤512 B objects only.  Here arenas also
//!   hold medium pools up to 1 MiB (one 1 MiB block), so the arena must hold several of
//!   those; 4 MiB keeps the header (one slot, 0.4 %) small and the number of `mmap`s low,
//!   while an idle arena costs address space, not memory: untouched pages are never faulted in.
//!   Arenas are aligned to their size, so `ptr & !ARENA_MASK` finds the header in O(1).
//! * **Medium limit (1 MiB)** — requests up to 1 MiB are served from pools with no system call
//!   in steady state; above it a request gets its own `mmap`, where the cost of the system call
//!   is small next to the cost of touching that much memory.

/// log2 of the slot (and small-pool) size.
pub const SLOT_SHIFT: usize = 14;
/// Size of one arena slot, the granule in which pools are carved from arenas.
pub const SLOT_SIZE: usize = 1 << SLOT_SHIFT;

/// log2 of the arena size.
pub const ARENA_SHIFT: usize = 22;
/// Size (and alignment) of an arena.
pub const ARENA_SIZE: usize = 1 << ARENA_SHIFT;
/// `addr & ARENA_MASK` is the offset of `addr` inside its arena.
pub const ARENA_MASK: usize = ARENA_SIZE - 1;
/// Slots per arena; slot 0 holds the arena header and the pool table.
pub const SLOTS_PER_ARENA: usize = ARENA_SIZE / SLOT_SIZE;

/// The page size the layout assumes (see `os::PAGE_SIZE`: a fact about the machine, kept
/// with the system calls, which sit below this module).
pub use crate::os::PAGE_SIZE;

/// Alignment of every block (what glibc guarantees: `alignof(max_align_t)`).
pub const MIN_ALIGN: usize = 16;

/// Requests up to this size use the small classes (16 bytes apart), as in pymalloc.
pub const SMALL_MAX: usize = 512;
/// `malloc` of up to this size finds its pool in one load from a table indexed by
/// `(size - 1) / 16` (`Heap::alloc_direct`), small and medium classes alike: a program
/// whose sizes straddle `SMALL_MAX` (larson's 8–1000 B) would otherwise mispredict the
/// branch between the small and medium paths on half its calls (measured: 0.5 of
/// arenalloc's 0.79 mispredicted branches per larson step, cachegrind).  mimalloc's
/// `pages_free_direct` covers the same 1 KiB.
pub const DIRECT_MAX: usize = 1024;
/// Requests up to this size use pools; above it they are mapped directly (see `large.rs`).
pub const MEDIUM_MAX: usize = 1 << 20;
/// Medium classes per power of two: 8 keeps internal waste under 1/9 of the block.
pub const MEDIUM_CLASSES_PER_DOUBLING: usize = 8;

/// Most slots a single pool may span (a 1 MiB pool).
pub const MAX_POOL_SLOTS: usize = 64;

/// Pools start on, and span whole, granules of this many slots (64 KiB), so that the slot
/// map (`space.rs`) needs one entry per granule, not per slot: a quarter of the entries,
/// and of the cache lines `free` reads them from.  The first granule of an arena holds
/// its header slot; its other three slots are never used (address space only).
pub const GRANULE_SLOTS: usize = 4;
/// log2 of the granule's size in bytes: the slot map's shift.
pub const GRANULE_SHIFT: usize = SLOT_SHIFT + GRANULE_SLOTS.trailing_zeros() as usize;

/// Empty arenas kept mapped (not returned to the OS) against alloc/free thrash at an arena
/// boundary, as CPython's arena logic warns about.  Each costs at most 4 MiB of address
/// space and only as much memory as it had touched.  Default of the run-time tunable
/// `ARENALLOC_SPARE_ARENAS` (see `tunables`).
pub const SPARE_ARENAS: usize = 1;

/// Free memory that may hold data (free pool slots' pages, cached large mappings) is given
/// back to the OS once it has sat unused this long, measured at heap maintenance: reused
/// sooner, it costs no page faults; a program that stops using memory has it returned
/// about this long after its next allocator call.  Measured with `make bench`'s workloads:
/// on churn with 0.5% blocks of 1–8 MiB ("large"), 20 ms gave 1.1–1.3× the page faults of
/// 100 ms and 50 ms 1.02× (the earlier rule, two aging rounds of 10 ms counted per arena,
/// gave 2.7×); 100 ms raised sqlite3's peak RSS from 52 MB to 65 MB, 50 ms did not.
/// Default of `ARENALLOC_PURGE_DELAY_MS`.
pub const PURGE_DELAY_MS: usize = 50;
/// Heap maintenance ages free memory at most this often; stamps count in these ticks.
pub const AGING_TICK_MS: u64 = 10;

/// Free slots holding data an arena may keep before it decommits them all at once, without
/// waiting for `PURGE_DELAY_MS`.  By default a whole arena's worth, so never: free pages go
/// back by age alone.  Measured (2026-12-02, interleaved, 64 KiB pools): the earlier 2 MiB
/// (half an arena) made programs that build and drop structures fault their pages back in
/// over and over: CPython's object-tree workload took 28.5k page faults against 5.4k and
/// 10% more CPU time, strings 22k against 7k, larson with thread churn 20.7k against 7.0k,
/// for 1–3 MB less peak RSS (26 MB against 27 MB for the object trees, 21 against 24 for
/// larson).  Earlier still, 512 KiB made small churn 30% and producer/consumer 2.3×
/// slower.  Default of `ARENALLOC_PURGE_KIB` (4096 KiB).
pub const PURGE_SLOTS: usize = ARENA_SIZE / SLOT_SIZE;

/// A heap keeps one empty pool per class against claim/release thrash
/// (`Heap::pool_emptied`): every pool up to this many slots (64 KiB: the classes up to
/// 2 KiB), and bigger ones while they total at most `KEEP_EMPTY_BIG_SLOTS`.
pub const KEEP_EMPTY_MAX_SLOTS: usize = 4;
/// Slots of big empty pools (over `KEEP_EMPTY_MAX_SLOTS`) a heap keeps all together: 4 MiB.
/// Measured: with no bound, a list grown by `realloc` through the medium classes left a
/// pool behind in each, 11 MB of CPython's peak RSS in `make bench`'s py-lists (71.8 MB,
/// 62.1 MB with the bound); keeping none doubled the page faults of the realloc benchmark
/// (68.7k to 141k) and cost it 13% of its speed, 4 MiB costs it nothing.
pub const KEEP_EMPTY_BIG_SLOTS: usize = 256;

/// Freed large mappings kept for reuse.  Default of `ARENALLOC_LARGE_CACHE`.
pub const LARGE_CACHE_SLOTS: usize = 16;

/// Run-time tunables: environment variables read once, by the first allocation (before any
/// block is handed out), each bounded to a sane range.  See the README's table.
pub mod tunables {
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    static SPARE_ARENAS: AtomicUsize = AtomicUsize::new(super::SPARE_ARENAS);
    static PURGE_SLOTS: AtomicUsize = AtomicUsize::new(super::PURGE_SLOTS);
    static LARGE_CACHE_SLOTS: AtomicUsize = AtomicUsize::new(super::LARGE_CACHE_SLOTS);
    static PURGE_DELAY_MS: AtomicUsize = AtomicUsize::new(super::PURGE_DELAY_MS);
    static DIRECT_TABLE: AtomicBool = AtomicBool::new(true);

    /// `ARENALLOC_SPARE_ARENAS` (0–64): empty arenas kept mapped.
    pub fn spare_arenas() -> usize {
        SPARE_ARENAS.load(Ordering::Relaxed)
    }

    /// `ARENALLOC_PURGE_KIB` (16–4096, in KiB, rounded to slots): free dirty memory an arena
    /// keeps before giving it back at once.
    pub fn purge_slots() -> usize {
        PURGE_SLOTS.load(Ordering::Relaxed)
    }

    /// `ARENALLOC_PURGE_DELAY_MS` (0–2000): how long free memory holding data is kept for
    /// reuse before it goes back to the OS.
    pub fn purge_delay_ms() -> usize {
        PURGE_DELAY_MS.load(Ordering::Relaxed)
    }

    /// Whether heaps keep `malloc`'s direct table (`heap::Heap::alloc_direct`).  Off in
    /// debug mode (set before the first heap exists), so that every `malloc` misses it and
    /// reaches debug mode's wrapper.
    pub fn direct_table() -> bool {
        DIRECT_TABLE.load(Ordering::Relaxed)
    }

    /// Turns the direct table off (see `direct_table`).
    pub fn disable_direct_table() {
        DIRECT_TABLE.store(false, Ordering::Relaxed);
    }

    /// `ARENALLOC_LARGE_CACHE` (0–16): freed large mappings kept for reuse.
    pub fn large_cache_slots() -> usize {
        LARGE_CACHE_SLOTS.load(Ordering::Relaxed)
    }

    /// Reads the environment (once, at initialisation) through `env_usize` (`os::env_usize`
    /// in the library: passed in, so that this module calls nothing and sits below `os`).
    pub fn read_environment(env_usize: impl Fn(&core::ffi::CStr) -> Option<usize>) {
        if let Some(v) = env_usize(c"ARENALLOC_SPARE_ARENAS") {
            SPARE_ARENAS.store(v.min(64), Ordering::Relaxed);
        }
        if let Some(kib) = env_usize(c"ARENALLOC_PURGE_KIB") {
            let slots = kib.clamp(16, 4096) * 1024 / super::SLOT_SIZE;
            PURGE_SLOTS.store(slots.max(1), Ordering::Relaxed);
        }
        if let Some(v) = env_usize(c"ARENALLOC_LARGE_CACHE") {
            LARGE_CACHE_SLOTS.store(v.min(super::LARGE_CACHE_SLOTS), Ordering::Relaxed);
        }
        if let Some(ms) = env_usize(c"ARENALLOC_PURGE_DELAY_MS") {
            PURGE_DELAY_MS.store(ms.min(2000), Ordering::Relaxed);
        }
    }
}

/// Address bits covered by the ownership map (x86-64 and aarch64 user space, 4-level paging).
pub const ADDRESS_BITS: usize = 48;

const _: () = assert!(ARENA_SIZE % SLOT_SIZE == 0);
const _: () = assert!(SLOT_SIZE % PAGE_SIZE == 0);
const _: () = assert!(SLOTS_PER_ARENA == 256, "pool table and slot bitmap are sized for 256 slots");
const _: () = assert!(MAX_POOL_SLOTS * SLOT_SIZE >= MEDIUM_MAX);
const _: () = assert!(MAX_POOL_SLOTS < SLOTS_PER_ARENA);
const _: () = assert!(GRANULE_SLOTS.is_power_of_two() && MAX_POOL_SLOTS % GRANULE_SLOTS == 0);
const _: () = assert!(KEEP_EMPTY_MAX_SLOTS % GRANULE_SLOTS == 0);
const _: () = assert!(SMALL_MAX % MIN_ALIGN == 0);
const _: () = assert!(DIRECT_MAX % MIN_ALIGN == 0 && DIRECT_MAX >= SMALL_MAX && DIRECT_MAX <= MEDIUM_MAX);
