//! glibc's heap introspection entry points (`<malloc.h>`), answered from arenalloc's own
//! statistics.  They are not declared in `arenalloc.h`: their prototypes (and
//! `struct mallinfo2`) belong to `<malloc.h>`.

use core::ffi::c_int;

/// glibc's `struct mallinfo2`, field for field.
#[repr(C)]
pub struct MallInfo2 {
    /// Bytes mapped for arenas (non-mmapped space, in glibc's terms).
    pub arena: usize,
    /// Free chunks: here, pools with at least one free block.
    pub ordblks: usize,
    pub smblks: usize,
    /// Large blocks, each in a mapping of its own.
    pub hblks: usize,
    /// Bytes in those mappings.
    pub hblkhd: usize,
    pub usmblks: usize,
    pub fsmblks: usize,
    /// Bytes handed out (pool blocks at their class size, large mappings).
    pub uordblks: usize,
    /// Bytes free inside arenas.
    pub fordblks: usize,
    pub keepcost: usize,
}

/// glibc's older `struct mallinfo`, with `int` fields (values saturate at `INT_MAX`).
#[repr(C)]
pub struct MallInfo {
    pub arena: c_int,
    pub ordblks: c_int,
    pub smblks: c_int,
    pub hblks: c_int,
    pub hblkhd: c_int,
    pub usmblks: c_int,
    pub fsmblks: c_int,
    pub uordblks: c_int,
    pub fordblks: c_int,
    pub keepcost: c_int,
}

fn info() -> MallInfo2 {
    let s = crate::stats::snapshot();
    let arena = s.arenas.current * crate::config::ARENA_SIZE;
    let pools_with_room = s.classes.iter().filter(|c| c.blocks_free > 0).map(|c| c.pools).sum();
    let in_use = s.bytes_in_use();
    MallInfo2 {
        arena,
        ordblks: pools_with_room,
        smblks: 0,
        hblks: s.large_blocks,
        hblkhd: s.large_bytes,
        usmblks: 0,
        fsmblks: 0,
        uordblks: in_use,
        fordblks: arena.saturating_sub(s.pool_bytes_in_use()),
        keepcost: 0,
    }
}

/// Statistics in glibc's `struct mallinfo2` (see `MallInfo2` for what each field means).
/// cbindgen:ignore
#[no_mangle]
pub extern "C" fn mallinfo2() -> MallInfo2 {
    info()
}

/// `mallinfo2` with `int` fields, saturated (glibc's deprecated original).
/// cbindgen:ignore
#[no_mangle]
pub extern "C" fn mallinfo() -> MallInfo {
    let i = info();
    let c = |v: usize| v.min(c_int::MAX as usize) as c_int;
    MallInfo {
        arena: c(i.arena),
        ordblks: c(i.ordblks),
        smblks: c(i.smblks),
        hblks: c(i.hblks),
        hblkhd: c(i.hblkhd),
        usmblks: c(i.usmblks),
        fsmblks: c(i.fsmblks),
        uordblks: c(i.uordblks),
        fordblks: c(i.fordblks),
        keepcost: c(i.keepcost),
    }
}

/// Prints the statistics report to stderr (as glibc's `malloc_stats` does).
/// cbindgen:ignore
#[no_mangle]
pub extern "C" fn malloc_stats() {
    crate::stats::print(&crate::stats::snapshot());
}

/// Gives memory arenalloc holds but does not use back to the OS: the calling thread's
/// empty pools, the empty pools of exited threads' heaps, the pages of free slots inside
/// arenas, spare arenas and cached large mappings.  `pad` is ignored.  Returns 1 when some
/// memory was given back, 0 otherwise, as glibc does.
/// cbindgen:ignore
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    c_int::from(crate::alloc::trim() > 0)
}

/// glibc's tuning parameters (`M_MXFAST` ... `M_ARENA_MAX`) are accepted and have no
/// effect: arenalloc's policies are its own (see the README's tunables).  Returns 1 for
/// those, 0 (failure) for a parameter glibc does not define either.
/// cbindgen:ignore
#[no_mangle]
pub extern "C" fn mallopt(param: c_int, _value: c_int) -> c_int {
    // M_MXFAST 1, M_NLBLKS 2, M_GRAIN 3, M_KEEP 4; M_TRIM_THRESHOLD -1 ... M_ARENA_MAX -8.
    c_int::from(matches!(param, 1..=4 | -8..=-1))
}
