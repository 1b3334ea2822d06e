//! Functions of arenalloc's own, under the `arenalloc_` prefix.

use core::ffi::c_char;

/// The library version as a static NUL-terminated string, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn arenalloc_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Arenas currently mapped from the OS (each `ARENA_SIZE`, 4 MiB, of address space).
#[no_mangle]
pub extern "C" fn arenalloc_arenas_mapped() -> usize {
    crate::arena::stats().current
}

/// Arenas returned to the OS since the process started.
#[no_mangle]
pub extern "C" fn arenalloc_arenas_unmapped() -> usize {
    crate::arena::stats().unmapped
}

/// Thread heaps in existence (attached to a live thread or waiting for adoption).
#[no_mangle]
pub extern "C" fn arenalloc_heaps() -> usize {
    crate::registry::heap_counts().0
}

/// Blocks allocated and not yet freed, all threads together.  A snapshot: exact when no
/// other thread allocates or frees meanwhile (a block another live thread's heap has not
/// yet collected from its cross-thread free list still counts).  Walks every arena under
/// the arena lock (tens of microseconds for a large heap): for statistics and leak checks,
/// not for a tight loop, which would keep other threads from claiming pools.
#[no_mangle]
pub extern "C" fn arenalloc_allocated_blocks() -> usize {
    crate::alloc::allocated_blocks()
}

/// Heap statistics, as `arenalloc_stats()` fills them in.  A snapshot: exact when no
/// other thread allocates or frees meanwhile.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct arenalloc_stats {
    /// Bytes in blocks handed out: pool blocks at their size class, large blocks at their
    /// mapping (headers included).
    pub bytes_in_use: usize,
    /// Address space mapped for blocks: every arena (4 MiB each) and large mapping.
    pub bytes_mapped: usize,
    /// Blocks handed out and not freed, pools and large blocks together.
    pub blocks_in_use: usize,
    /// Bytes in pool blocks not handed out (free lists and never-used tails of pools).
    pub pool_bytes_free: usize,
    /// Pools in existence (each of one size class, owned by one thread heap).
    pub pools: usize,
    /// Arenas mapped now, at most at once, since start, and returned to the OS since start.
    pub arenas_current: usize,
    pub arenas_peak: usize,
    pub arenas_allocated: usize,
    pub arenas_freed: usize,
    /// Large blocks (over 1 MiB) in use, and the bytes their mappings span.
    pub large_blocks: usize,
    pub large_bytes: usize,
    /// Thread heaps in existence, and how many are attached to live threads.
    pub heaps: usize,
    pub heaps_attached: usize,
}

/// Fills `*out` with a snapshot of the heap statistics.  Returns 0, or -1 when `out` is
/// NULL.  Takes the arena lock while it walks the pools (tens of microseconds for a large
/// heap).  Not async-signal-safe.
///
/// # Safety
/// `out` must be NULL or point to writable memory for one `struct arenalloc_stats`.
#[no_mangle]
pub unsafe extern "C" fn arenalloc_stats(out: *mut arenalloc_stats) -> core::ffi::c_int {
    if out.is_null() {
        return -1;
    }
    let s = crate::stats::snapshot();
    let filled = arenalloc_stats {
        bytes_in_use: s.bytes_in_use(),
        bytes_mapped: s.bytes_mapped(),
        blocks_in_use: s.blocks_in_use(),
        pool_bytes_free: s.pool_bytes_free(),
        pools: s.pools(),
        arenas_current: s.arenas.current,
        arenas_peak: s.arenas.peak,
        arenas_allocated: s.arenas.mapped,
        arenas_freed: s.arenas.unmapped,
        large_blocks: s.large_blocks,
        large_bytes: s.large_bytes,
        heaps: s.heaps,
        heaps_attached: s.heaps_attached,
    };
    // SAFETY: the caller's guarantee.
    unsafe { out.write(filled) };
    0
}

/// Writes a report of the heap to stderr: per size class the pools, blocks in use and free
/// blocks; arenas allocated, freed, current and peak; bytes in use against bytes mapped;
/// thread heaps.  (`ARENALLOC_STATS=1` prints it at exit.)  Allocates nothing.  Not
/// async-signal-safe.
#[no_mangle]
pub extern "C" fn arenalloc_stats_print() {
    crate::stats::print(&crate::stats::snapshot());
}
