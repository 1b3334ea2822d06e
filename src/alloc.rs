//! The allocator's front: one function per operation, choosing between the thread heap
//! (sizes up to `MEDIUM_MAX`) and large mappings, and between local and remote frees.
//!
//! These functions speak Rust (null for failure, no `errno`); `ffi/` wraps them in the C
//! ABI.  Every pointer is checked against the ownership map before it is trusted: a
//! pointer that is not ours, or not the start of a live block we can identify, ends in a
//! diagnostic and `abort()`, naming the C function (`func`) the user called.

use core::ptr;

use crate::arena;
use crate::config::{MEDIUM_MAX, MIN_ALIGN};
use crate::diag;
use crate::large;
use crate::ownership::{self, Region};
use crate::pool::{Block, Pool};
use crate::size_class::{aligned_class_of, class_of};
use crate::thread;

/// Largest request we try to serve: like glibc, nothing above `PTRDIFF_MAX`.
pub const MAX_REQUEST: usize = isize::MAX as usize;

/// Allocates a block of `class` from the calling thread's heap (zero-filled if `zeroed`).
#[inline(always)]
fn alloc_class(class: usize, zeroed: bool) -> *mut u8 {
    let heap = thread::current_heap();
    if heap.is_null() {
        return alloc_class_attach(class, zeroed);
    }
    // SAFETY: a thread's heap is used only by that thread.
    let heap = unsafe { &mut *heap };
    if zeroed {
        heap.alloc_zeroed(class)
    } else {
        heap.alloc(class)
    }
}

/// The calling thread has no heap yet: attach one, or borrow one for this call when the
/// thread is exiting (or attaching ran out of memory).
#[cold]
#[inline(never)]
fn alloc_class_attach(class: usize, zeroed: bool) -> *mut u8 {
    let heap = thread::heap();
    if heap.is_null() {
        return thread::with_transient_heap(|heap| if zeroed { heap.alloc_zeroed(class) } else { heap.alloc(class) })
            .unwrap_or(ptr::null_mut());
    }
    // SAFETY: a thread's heap is used only by that thread.
    let heap = unsafe { &mut *heap };
    if zeroed {
        heap.alloc_zeroed(class)
    } else {
        heap.alloc(class)
    }
}

/// Allocates `size` bytes, 16-byte aligned.  Null when out of memory.
#[inline(always)]
pub fn malloc(size: usize) -> *mut u8 {
    if size <= MEDIUM_MAX {
        return alloc_class(class_of(size), false);
    }
    malloc_large(size)
}

#[cold]
fn malloc_large(size: usize) -> *mut u8 {
    if size > MAX_REQUEST {
        return ptr::null_mut();
    }
    large::alloc(size, MIN_ALIGN)
}

/// Allocates `size` zeroed bytes.  Null when out of memory.
pub fn calloc(size: usize) -> *mut u8 {
    if size <= MEDIUM_MAX {
        return alloc_class(class_of(size), true);
    }
    malloc_large(size) // fresh mappings are zero
}

/// Allocates `size` bytes aligned to `align`, a power of two.  Null when out of memory.
pub fn memalign(align: usize, size: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    if align <= MIN_ALIGN {
        return malloc(size);
    }
    if size > MAX_REQUEST {
        return ptr::null_mut();
    }
    match aligned_class_of(size, align) {
        Some(class) => alloc_class(class, false),
        None => large::alloc(size, align),
    }
}

/// Where a pointer handed to `free`/`realloc`/`malloc_usable_size` lives.
enum Owner {
    Pool(*mut Pool),
    Large(usize),
}

/// Identifies the block `p` starts, or aborts naming `func`.
#[inline(always)]
fn owner_of(p: *mut u8, func: &str) -> Owner {
    match ownership::arena_of(p as usize) {
        Some(base) => block_in_arena(base, p, func),
        None => owner_of_uncommon(p, func),
    }
}

/// Large blocks, arenas the bitmap does not cover, and foreign pointers.
#[inline(never)]
fn owner_of_uncommon(p: *mut u8, func: &str) -> Owner {
    match ownership::lookup(p as usize) {
        Region::Arena(base) => block_in_arena(base, p, func),
        Region::Large(base) => Owner::Large(base),
        Region::Foreign => diag::misuse(func, p, "pointer not allocated by arenalloc"),
    }
}

#[inline(always)]
fn block_in_arena(base: usize, p: *mut u8, func: &str) -> Owner {
    match arena::pool_of(base, p as usize) {
        // SAFETY: `pool_of` returns live pool heads only.
        Some((pool, offset)) if unsafe { (*pool).is_block_offset(offset) } => Owner::Pool(pool),
        Some(_) => diag::misuse(func, p, "pointer into a block, not the start of one"),
        None => diag::misuse(func, p, "pointer into arenalloc memory that is not an allocated block"),
    }
}

/// True when `p` is inside memory arenalloc manages (PyMem_* uses this to forward the
/// pointers libpython's own allocator made).
pub fn owns(p: *const u8) -> bool {
    match ownership::lookup(p as usize) {
        Region::Arena(_) => true,
        Region::Large(base) => large::contains(base, p as usize),
        Region::Foreign => false,
    }
}

/// Frees `p` (non-null).
#[inline(always)]
pub fn free(p: *mut u8) {
    free_named(p, "free")
}

/// Frees `p` (non-null) for the C function `func` (named in diagnostics).
#[inline(always)]
pub fn free_named(p: *mut u8, func: &str) {
    match owner_of(p, func) {
        Owner::Pool(pool) => free_in_pool(pool, p, func),
        Owner::Large(base) => large::free(base, p, func),
    }
}

#[inline(always)]
fn free_in_pool(pool: *mut Pool, p: *mut u8, func: &str) {
    // SAFETY: `pool` is a live pool head (checked by `pool_of`); its owner is set while any
    // of its blocks is live, and heaps are never unmapped.
    let owner = unsafe { (*pool).owner.load(core::sync::atomic::Ordering::Relaxed) };
    if owner == thread::current_heap() {
        // The pool belongs to the calling thread's heap (a thread without a heap, such as
        // one past its exit destructor, has null here and frees remotely).
        // SAFETY: we own the heap and so the pool; `p` is one of its blocks being freed.
        unsafe { (*owner).free_local(pool, p.cast::<Block>(), func) };
    } else {
        // SAFETY: the remote stack takes other threads' frees; `p` is a live block of a
        // pool of `owner`.
        unsafe { (*owner).remote.push(p.cast::<Block>()) };
    }
}

/// Usable size of the block `p` (non-null).
pub fn usable_size(p: *mut u8) -> usize {
    let func = "malloc_usable_size";
    match owner_of(p, func) {
        Owner::Pool(pool) => {
            check_not_free(pool, p, func);
            // SAFETY: live pool head.
            unsafe { (*pool).block_size as usize }
        }
        Owner::Large(base) => large::usable_size(base, p, func),
    }
}

/// Aborts when the pool block `p` is free already (its first word is a free-list link).
/// For the calls that use a block without freeing it: `realloc`, `malloc_usable_size`.
fn check_not_free(pool: *mut Pool, p: *mut u8, func: &str) {
    // SAFETY: `pool` is a live pool head and `p` one of its blocks (checked by owner_of).
    if unsafe { (*pool).looks_free(p.cast()) } {
        diag::misuse(func, p, "the block is free (use after free)");
    }
}

/// Resizes the block `p` (non-null) to `size` (non-zero) bytes.  Returns the new block, or
/// null with `p` untouched when out of memory.
pub fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    realloc_named(p, size, "realloc")
}

/// `realloc` for the C function `func` (named in diagnostics).
pub fn realloc_named(p: *mut u8, size: usize, func: &str) -> *mut u8 {
    let owner = owner_of(p, func);
    if let Owner::Pool(pool) = owner {
        check_not_free(pool, p, func);
    }
    if size > MAX_REQUEST {
        // `p` was validated all the same: a bad pointer must not pass silently.
        return ptr::null_mut();
    }
    let old = match owner {
        Owner::Pool(pool) => {
            // SAFETY: live pool head.
            let (have, class) = unsafe { ((*pool).block_size as usize, (*pool).class as usize) };
            // Keep the block when it fits and is not more than twice what is asked (or
            // when a new block would be of the same class anyway).
            if size <= have && (size >= have / 2 || class_of(size) == class) {
                return p;
            }
            have
        }
        Owner::Large(base) => {
            let have = large::usable_size(base, p, func);
            // Large stays large (mremap) unless it shrinks enough to live in a pool.
            if size > MEDIUM_MAX || size >= have / 2 {
                return large::realloc(base, p, size);
            }
            have
        }
    };
    let q = malloc(size);
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks are live, distinct, and at least min(old, size) bytes long.
    unsafe { ptr::copy_nonoverlapping(p, q, old.min(size)) };
    free_named(p, func);
    q
}

/// Blocks allocated and not yet freed, pools and large mappings together (a snapshot; see
/// `arena::live_blocks`).  Frees waiting in dead threads' heaps and in the caller's own are
/// collected first, so they do not count.
pub fn allocated_blocks() -> usize {
    thread::settle_frees();
    arena::live_blocks() + large::live_blocks()
}

/// Gives unused memory back to the OS (for `malloc_trim`): the calling thread's empty
/// pools, those of exited threads' heaps, free slots' pages, spare arenas and cached large
/// mappings.  Returns the bytes given back (address space unmapped or pages decommitted).
pub fn trim() -> usize {
    thread::settle_frees();
    let h = thread::current_heap();
    if !h.is_null() {
        // SAFETY: the calling thread's own heap.
        unsafe { (*h).release_empty_pools() };
    }
    arena::trim() + large::trim()
}
