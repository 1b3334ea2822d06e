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
    crate::thread::heap_counts().0
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
