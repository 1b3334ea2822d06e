//! The allocator's front: one function per operation.  The fast paths (small and medium
//! `malloc`, `free` of a pool block) are written here; everything else goes to the core
//! (`dispatch.rs`: thread heap or large mapping, local or remote free) or, in debug mode,
//! to `debug.rs`, which this module alone calls: the core knows nothing of debug mode.
//!
//! These functions speak Rust (null for failure); `ffi/` wraps them in the C ABI.  One
//! exception, for the fast path's sake: `malloc`'s slow paths set `errno` to `ENOMEM`
//! themselves when they fail, so the C `malloc` is a tail call with no stack frame.
//!
//! Every pointer is checked against the ownership map before it is trusted (`dispatch.rs`).

use core::ptr;

use crate::arena;
use crate::config::{DIRECT_MAX, MEDIUM_MAX, MIN_ALIGN};
use crate::debug::{self, Api};
use crate::diag;
use crate::dispatch::{self, alloc_class, check_not_free, core_calloc, core_malloc, core_memalign, owner_of, Owner};
use crate::heap::{self, FreeTarget};
use crate::init;
use crate::large;
use crate::os;
use crate::pool::Block;
use crate::registry;
use crate::size_class::class_of;
use crate::thread;

pub use crate::dispatch::{owns, MAX_REQUEST};

/// Allocates `size` bytes, 16-byte aligned.  Null when out of memory.
#[inline(always)]
pub fn malloc(size: usize) -> *mut u8 {
    malloc_api(size, Api::C)
}

/// `malloc` on behalf of API family `api` (which debug mode records).  The fast path is
/// sizes up to `DIRECT_MAX`, small and medium classes alike: `(size - 1) / 16`, one shift,
/// indexes the heap's direct table of pools.
#[inline(always)]
pub fn malloc_api(size: usize, api: Api) -> *mut u8 {
    let s = size.wrapping_sub(1);
    if s < DIRECT_MAX {
        return dispatch::alloc_direct(s >> 4, |heap| malloc_direct_miss(heap, size, api));
    }
    malloc_medium(size, api)
}

/// The direct table had no free block for `size`: the heap's slow path, or, when the
/// thread has no heap yet (`heap` is the unattached one) or in debug mode (whose heaps
/// keep no direct table), the slow path that initialises, attaches, and wraps.
#[cold]
#[inline(never)]
fn malloc_direct_miss(heap: *mut crate::heap::Heap, size: usize, api: Api) -> *mut u8 {
    if thread::is_unattached(heap) || debug::enabled() {
        return malloc_slow(size, api, false);
    }
    dispatch::alloc_direct_miss(heap, (size - 1) >> 4)
}

/// `malloc` of what the direct table does not cover: medium classes, else the slow path.
#[inline(never)]
fn malloc_medium(size: usize, api: Api) -> *mut u8 {
    if size.wrapping_sub(1) < init::fast_limit() {
        return alloc_class(class_of(size), false);
    }
    malloc_slow(size, api, false)
}

#[cold]
#[inline(never)]
fn malloc_slow(size: usize, api: Api, zeroed: bool) -> *mut u8 {
    let p = malloc_slow_inner(size, api, zeroed);
    if p.is_null() {
        os::set_errno(libc::ENOMEM);
    }
    p
}

fn malloc_slow_inner(size: usize, api: Api, zeroed: bool) -> *mut u8 {
    init::ensure_init();
    if debug::enabled() {
        return debug::alloc(api, size, MIN_ALIGN, zeroed);
    }
    if zeroed {
        core_calloc(size)
    } else {
        core_malloc(size)
    }
}

/// Allocates `size` zeroed bytes.  Null when out of memory.
pub fn calloc(size: usize) -> *mut u8 {
    calloc_api(size, Api::C)
}

/// `calloc` on behalf of API family `api`.
#[inline(always)]
pub fn calloc_api(size: usize, api: Api) -> *mut u8 {
    // Up to `DIRECT_MAX`, `malloc`'s direct path and a short clear beat finding the class
    // and asking whether the block is fresh memory.
    let s = size.wrapping_sub(1);
    if s < DIRECT_MAX {
        let p = dispatch::alloc_direct(s >> 4, |heap| malloc_direct_miss(heap, size, api));
        if !p.is_null() {
            // SAFETY: a new block of at least `size` bytes.
            unsafe { ptr::write_bytes(p, 0, size) };
        }
        return p;
    }
    if s < init::fast_limit() {
        return alloc_class(class_of(size), true);
    }
    malloc_slow(size, api, true)
}

/// Allocates `size` bytes aligned to `align`, a power of two.  Null when out of memory.
pub fn memalign(align: usize, size: usize) -> *mut u8 {
    init::ensure_init();
    if debug::enabled() {
        return debug::alloc(Api::C, size, align.max(MIN_ALIGN), false);
    }
    core_memalign(align, size)
}

/// Frees `p`; null is allowed (and costs nothing on the fast path: it is outside the
/// arena space, so it takes `free_uncommon`, which returns).
#[inline(always)]
pub fn free(p: *mut u8) {
    free_api(p, Api::C, "free")
}

/// Frees `p` (non-null) for the function `func` of API family `api` (named in
/// diagnostics; debug mode checks the family).  The fast path is a block of a pool, at a
/// block start (`heap::free_target`); everything else takes `free_uncommon`.
#[inline(always)]
pub fn free_api(p: *mut u8, api: Api, func: &str) {
    free_block_or(p, func, |p| free_uncommon(p, api, func))
}

/// `free`'s fast path, shared by every free function of the C and Python families: a
/// block of a pool, at a block start, goes to its pool (ours) or its owner's remote stack;
/// anything else (null included) goes to `otherwise`, the caller's cold path.
#[inline(always)]
pub fn free_block_or(p: *mut u8, func: &str, otherwise: impl FnOnce(*mut u8)) {
    // The unattached heap when the thread has none: it owns no pool (see `free_in_pool`).
    let me = thread::heap_word();
    match heap::free_target(p, me) {
        // SAFETY: `me` owns the pool (so it is the calling thread's heap, not null) and `p`
        // is a carved block of it.
        FreeTarget::Local(pool) => unsafe { (*me).free_local(pool, p.cast::<Block>(), func) },
        // SAFETY: heaps are never unmapped; `p` starts a block of a pool of `owner`.
        FreeTarget::Remote(owner) => unsafe { (*heap::Heap::remote_of(owner)).push(p.cast::<Block>()) },
        FreeTarget::Neither => otherwise(p),
    }
}

/// Null, large blocks, debug blocks, and misuse.
#[inline(never)]
fn free_uncommon(p: *mut u8, api: Api, func: &str) {
    if p.is_null() {
        return;
    }
    match owner_of(p, func, debug::enabled()) {
        Owner::Interior => debug::free(p, api, func),
        owner => dispatch::free_owned(owner, p, func),
    }
}

/// Usable size of the block `p` (non-null).
pub fn usable_size(p: *mut u8) -> usize {
    let func = "malloc_usable_size";
    match owner_of(p, func, debug::enabled()) {
        Owner::Interior => debug::usable_size(p, func),
        Owner::Pool(pool) => {
            check_not_free(pool, p, func);
            // SAFETY: live pool head.
            unsafe { (*pool).block_size() as usize }
        }
        Owner::Large(base) => large::usable_size(base, p, func),
    }
}

/// Resizes the block `p` (non-null) to `size` (non-zero) bytes.  Returns the new block, or
/// null with `p` untouched when out of memory.
pub fn realloc(p: *mut u8, size: usize) -> *mut u8 {
    realloc_api(p, size, Api::C, "realloc")
}

/// `realloc` for the function `func` of API family `api` (named in diagnostics).
///
/// The common case, a block of one of the calling thread's own pools, is found as `free`
/// finds it (`heap::free_target`) and, when it stays, returned with no stack frame set up;
/// a block that moves takes `realloc_move`, everything else `realloc_uncommon`.
#[inline(always)]
pub fn realloc_api(p: *mut u8, size: usize, api: Api, func: &str) -> *mut u8 {
    realloc_block_or(p, size, func, |p| realloc_uncommon(p, size, api, func))
}

/// `realloc`'s fast path, shared by the C and Python families: a block of one of the
/// calling thread's own pools (and a size up to `MAX_REQUEST`) stays or moves here;
/// anything else goes to `otherwise`, the caller's other path.
#[inline(always)]
pub fn realloc_block_or(p: *mut u8, size: usize, func: &str, otherwise: impl FnOnce(*mut u8) -> *mut u8) -> *mut u8 {
    let me = thread::heap_word();
    match heap::free_target(p, me) {
        FreeTarget::Local(pool) if size <= MAX_REQUEST => {
            check_not_free(pool, p, func);
            // SAFETY: `free_target` returns live pool heads of ours.
            let (have, class) = unsafe { ((*pool).block_size() as usize, (*pool).class()) };
            if fits_in_place(size, have, class) {
                return p;
            }
            realloc_move(me, pool, p, size, have, func)
        }
        _ => otherwise(p),
    }
}

/// Moves `p`, a block of `have` bytes of `me`'s own `pool`, to a new block for `size`.
#[inline(never)]
fn realloc_move(me: *mut heap::Heap, pool: *mut crate::pool::Pool, p: *mut u8, size: usize, have: usize, func: &str) -> *mut u8 {
    let q = copy_to_new_block(p, have, size);
    if !q.is_null() {
        // SAFETY: `me` owns the pool (so it is the calling thread's heap) and `p` is a
        // carved block of it, checked not free by the caller.
        unsafe { (*me).free_local(pool, p.cast::<Block>(), func) };
    }
    q
}

/// A new block for a `realloc` of `p` (`have` bytes) to `size`, with room to grow
/// (`grown_size`, or exactly `size` when that fails), holding `p`'s first
/// `min(have, size)` bytes; null when out of memory.  The caller frees `p`.
fn copy_to_new_block(p: *mut u8, have: usize, size: usize) -> *mut u8 {
    let q = core_malloc(grown_size(size, have));
    let q = if q.is_null() && size > have { core_malloc(size) } else { q };
    if !q.is_null() {
        // SAFETY: both blocks are live, distinct, and at least min(have, size) long.
        unsafe { ptr::copy_nonoverlapping(p, q, have.min(size)) };
    }
    q
}

/// A pool block of `have` bytes and class `class` serves a `realloc` to `size` as it is
/// when it fits and is not more than twice what is asked (or when a new block would be of
/// the same class anyway).
#[inline(always)]
fn fits_in_place(size: usize, have: usize, class: usize) -> bool {
    size <= have && (size >= have / 2 || class_of(size) == class)
}

/// The size to allocate when a block of `have` bytes moves for a `realloc` to `size`: a
/// block that grows is given room to grow more (a quarter, as tcmalloc does), so that code
/// growing a buffer a little at a time (CPython's lists grow by an eighth) copies it a few
/// times, not once per size class crossed.  `copy_to_new_block` retries with `size` on
/// failure.
#[inline(always)]
fn grown_size(size: usize, have: usize) -> usize {
    if size > have {
        size.saturating_add(have / 4).min(MAX_REQUEST)
    } else {
        size
    }
}

/// `realloc` of anything but a block of the caller's own pools: other threads' blocks,
/// large and debug blocks, sizes beyond `MAX_REQUEST`, and misuse.
#[inline(never)]
fn realloc_uncommon(p: *mut u8, size: usize, api: Api, func: &str) -> *mut u8 {
    let owner = owner_of(p, func, debug::enabled());
    if let Owner::Interior = owner {
        if size > MAX_REQUEST {
            return ptr::null_mut();
        }
        return debug::realloc(p, size, api, func);
    }
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
            let (have, class) = unsafe { ((*pool).block_size() as usize, (*pool).class()) };
            if fits_in_place(size, have, class) {
                return p;
            }
            have
        }
        Owner::Interior => unreachable_owner(),
        Owner::Large(base) => {
            let have = large::usable_size(base, p, func);
            // Large stays large (mremap) unless it shrinks enough to live in a pool.
            if size > MEDIUM_MAX || size >= have / 2 {
                return large::realloc(base, p, size);
            }
            have
        }
    };
    let q = copy_to_new_block(p, old, size);
    if !q.is_null() {
        dispatch::free_owned(owner, p, func);
    }
    q
}

/// `Owner::Interior` was handled before: this arm cannot be reached.
#[cold]
fn unreachable_owner() -> ! {
    diag::fatal("internal error: debug block on the core realloc path")
}

/// Tidies every abandoned heap and collects the calling thread's own remote frees, so that
/// statistics do not count blocks that were freed but not yet collected.  (Blocks freed into
/// other live threads' heaps stay counted until their owners collect them.)
pub fn settle_frees() {
    init::ensure_init();
    for _ in 0..registry::abandoned_count() {
        heap::tidy_abandoned_heap();
    }
    let h = thread::heap();
    if !h.is_null() {
        // SAFETY: our own heap.
        unsafe { (*h).collect_remote("free") };
    }
}

/// Blocks allocated and not yet freed, pools and large mappings together (a snapshot; see
/// `arena::live_blocks`).  Frees waiting in dead threads' heaps and in the caller's own are
/// collected first, so they do not count.
pub fn allocated_blocks() -> usize {
    settle_frees();
    arena::live_blocks() + large::live_blocks()
}

/// Gives unused memory back to the OS (for `malloc_trim`): the calling thread's empty
/// pools, those of exited threads' heaps, free slots' pages, spare arenas and cached large
/// mappings.  Returns the bytes given back (address space unmapped or pages decommitted).
pub fn trim() -> usize {
    settle_frees();
    let h = thread::current_heap();
    if !h.is_null() {
        // SAFETY: the calling thread's own heap.
        unsafe { (*h).release_empty_pools() };
    }
    arena::trim() + large::trim()
}

#[cfg(test)]
mod tests {
    //! A model-based test: random sequences of the C operations against a shadow model of
    //! what each live block must hold.

    use super::*;
    use std::vec::Vec;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        /// Sizes spread over the small, medium and large ranges (mostly small).
        fn size(&mut self) -> usize {
            match self.below(100) {
                0..=69 => self.below(600) as usize,
                70..=96 => 512 + self.below(200_000) as usize,
                _ => 1 << 20 | self.below(3 << 20) as usize,
            }
        }
    }

    /// A live block in the model: where, how big, and the byte it was filled with.
    struct Live {
        p: *mut u8,
        size: usize,
        fill: u8,
    }

    /// The bytes the model checks: all of a small block, the ends and a stride of a big one.
    fn checked_offsets(size: usize) -> impl Iterator<Item = usize> {
        let stride = if size <= 8192 { 1 } else { 509 };
        (0..size).step_by(stride).chain(size.saturating_sub(64)..size)
    }

    fn fill(b: &Live) {
        // SAFETY: the block is live and `size` bytes long.
        unsafe { ptr::write_bytes(b.p, b.fill, b.size) };
    }

    fn verify(b: &Live, what: &str) {
        for i in checked_offsets(b.size) {
            // SAFETY: as above.
            let v = unsafe { *b.p.add(i) };
            assert_eq!(v, b.fill, "{what}: block {:?} of {} bytes changed at +{i}", b.p, b.size);
        }
    }

    #[test]
    fn random_operations_keep_every_block_intact() {
        let mut rng = Rng(0x5EED_1234_ABCD_0001);
        let mut live: Vec<Live> = Vec::new();
        let mut fill_byte = 1u8;
        for step in 0..30_000 {
            fill_byte = fill_byte.wrapping_add(1).max(1);
            let op = rng.below(100);
            if live.len() < 400 && op < 45 {
                let size = rng.size();
                let (p, zeroed, align) = match rng.below(3) {
                    0 => (malloc(size), false, MIN_ALIGN),
                    1 => (calloc(size), true, MIN_ALIGN),
                    _ => {
                        let align = 1usize << (4 + rng.below(14)); // 16 B .. 128 KiB
                        (memalign(align, size), false, align)
                    }
                };
                assert!(!p.is_null(), "step {step}: allocation of {size} failed");
                assert_eq!(p as usize % align, 0, "step {step}: {p:?} not aligned to {align}");
                assert!(usable_size(p) >= size, "step {step}: usable size below {size}");
                let b = Live { p, size, fill: fill_byte };
                if zeroed {
                    for i in checked_offsets(size) {
                        // SAFETY: a fresh block of `size` bytes.
                        assert_eq!(unsafe { *p.add(i) }, 0, "step {step}: calloc'd byte +{i} not zero");
                    }
                }
                fill(&b);
                live.push(b);
            } else if !live.is_empty() && op < 75 {
                let b = live.swap_remove(rng.below(live.len() as u64) as usize);
                verify(&b, "before free");
                free(b.p);
            } else if !live.is_empty() {
                let i = rng.below(live.len() as u64) as usize;
                verify(&live[i], "before realloc");
                let new_size = rng.size().max(1);
                let q = realloc(live[i].p, new_size);
                assert!(!q.is_null(), "step {step}: realloc to {new_size} failed");
                let kept = Live { p: q, size: live[i].size.min(new_size), fill: live[i].fill };
                verify(&kept, "after realloc");
                live[i] = Live { p: q, size: new_size, fill: fill_byte };
                fill(&live[i]);
            }
        }
        for b in live.drain(..) {
            verify(&b, "at the end");
            free(b.p);
        }
    }
}
