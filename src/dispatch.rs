//! The allocator's core, without debug mode: size → class or large mapping; pointer → its
//! pool or large mapping; a pool block freed locally or remotely.  What the front
//! (`alloc.rs`) serves when debug mode is off, and what debug mode (`debug.rs`) makes its
//! blocks of.  Nothing here knows debug mode exists: a caller that allows pointers inside
//! blocks says so (`owner_of`'s `interior_ok`).
//!
//! Every pointer is checked against the ownership map before it is trusted: a pointer that
//! is not ours, or not the start of a live block we can identify, ends in a diagnostic and
//! `abort()`, naming the C function (`func`) the user called.

use core::ptr;

use crate::arena;
use crate::config::{MEDIUM_MAX, MIN_ALIGN};
use crate::diag;
use crate::heap::{self, FreeTarget};
use crate::init;
use crate::large;
use crate::os;
use crate::ownership::{self, Region};
use crate::pool::{Block, Pool};
use crate::size_class::{aligned_class_of, class_of};
use crate::thread;

/// Largest request we try to serve: like glibc, nothing above `PTRDIFF_MAX`.
pub const MAX_REQUEST: usize = isize::MAX as usize;

/// Allocates a block of `class` from the calling thread's heap (zero-filled if `zeroed`).
#[inline(always)]
pub fn alloc_class(class: usize, zeroed: bool) -> *mut u8 {
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

/// Allocates a block for a `malloc` of up to `DIRECT_MAX` bytes, `index` being
/// `(size - 1) / 16`: `Heap::alloc_direct` on the calling thread's heap, or on the
/// unattached heap when it has none.  `miss(heap)` when that finds no free block: the
/// caller's slow path, which must attach a heap when `heap` is the unattached one (see
/// `alloc_direct_miss`).
#[inline(always)]
pub fn alloc_direct(index: usize, miss: impl FnOnce(*mut heap::Heap) -> *mut u8) -> *mut u8 {
    // SAFETY: the thread's own heap, or the unattached one, as `alloc_direct` requires.
    unsafe { heap::Heap::alloc_direct(thread::heap_word(), index, miss) }
}

/// `alloc_direct`'s miss on `heap`, an attached heap (the caller tells the unattached one
/// apart: `thread::is_unattached`): that heap's slow path.
#[inline]
pub fn alloc_direct_miss(heap: *mut heap::Heap, index: usize) -> *mut u8 {
    // SAFETY: the calling thread's own heap (the caller's guarantee).
    unsafe { (*heap).alloc_direct_miss(index) }
}

/// The calling thread has no heap yet: attach one, or borrow one for this call when the
/// thread is exiting (or attaching ran out of memory).
#[cold]
#[inline(never)]
fn alloc_class_attach(class: usize, zeroed: bool) -> *mut u8 {
    // Attaching needs the thread-exit key (and the heaps their arena space).
    init::ensure_init();
    let heap = thread::heap();
    if heap.is_null() {
        let b = thread::with_transient_heap(|heap| if zeroed { heap.alloc_zeroed(class) } else { heap.alloc(class) })
            .unwrap_or(ptr::null_mut());
        if b.is_null() {
            os::set_errno(libc::ENOMEM);
        }
        return b;
    }
    // SAFETY: a thread's heap is used only by that thread.
    let heap = unsafe { &mut *heap };
    if zeroed {
        heap.alloc_zeroed(class)
    } else {
        heap.alloc(class)
    }
}

/// `malloc` without debug mode: what debug blocks are made of.
pub fn core_malloc(size: usize) -> *mut u8 {
    if size <= MEDIUM_MAX {
        return alloc_class(class_of(size), false);
    }
    malloc_large(size)
}

/// `calloc` without debug mode.
pub fn core_calloc(size: usize) -> *mut u8 {
    if size <= MEDIUM_MAX {
        return alloc_class(class_of(size), true);
    }
    if size > MAX_REQUEST {
        return ptr::null_mut();
    }
    large::alloc(size, MIN_ALIGN, true)
}

#[cold]
fn malloc_large(size: usize) -> *mut u8 {
    if size > MAX_REQUEST {
        return ptr::null_mut();
    }
    large::alloc(size, MIN_ALIGN, false)
}

/// `memalign` without debug mode.
pub fn core_memalign(align: usize, size: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    if align <= MIN_ALIGN {
        return core_malloc(size);
    }
    if size > MAX_REQUEST {
        return ptr::null_mut();
    }
    match aligned_class_of(size, align) {
        Some(class) => alloc_class(class, false),
        None => large::alloc(size, align, false),
    }
}

/// Where a pointer handed to `free`/`realloc`/`malloc_usable_size` lives.
#[derive(Clone, Copy)]
pub enum Owner {
    Pool(*mut Pool),
    Large(usize),
    /// Inside a block, not at its start, where the caller allows that: in debug mode, a
    /// debug block (`debug.rs` checks).
    Interior,
}

/// Identifies the block `p` starts, or aborts naming `func`.  A pointer inside a block,
/// not at its start, is `Owner::Interior` when `interior_ok` (debug mode, whose blocks
/// start inside core blocks), else misuse: reported here for a pool block, by `large.rs`
/// for a large one (which then is `Owner::Large`).
#[inline(never)]
pub fn owner_of(p: *mut u8, func: &str, interior_ok: bool) -> Owner {
    match ownership::lookup(p as usize) {
        Region::Arena(_) => block_in_arena(p, func, interior_ok),
        Region::Large(base) if interior_ok && !large::is_block_start(base, p) => Owner::Interior,
        Region::Large(base) => Owner::Large(base),
        Region::Foreign => diag::misuse(func, p, "pointer not allocated by arenalloc"),
    }
}

fn block_in_arena(p: *mut u8, func: &str, interior_ok: bool) -> Owner {
    match arena::pool_at(p as usize) {
        // SAFETY: `pool_at` returns live pool heads only.
        Some((pool, offset)) if unsafe { (*pool).is_block_offset(offset as usize) } => Owner::Pool(pool),
        Some(_) if interior_ok => Owner::Interior,
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

/// `free` without debug mode: a debug block's core block, which starts its block.
pub fn core_free(p: *mut u8, func: &str) {
    free_owned(owner_of(p, func, true), p, func)
}

/// Frees `p`, whose owner `owner_of` found.  An interior pointer is misuse here: whoever
/// allows them (debug mode) handles them before.
pub fn free_owned(owner: Owner, p: *mut u8, func: &str) {
    match owner {
        Owner::Pool(pool) => free_in_pool(pool, p, func),
        Owner::Large(base) => large::free(base, p, func),
        Owner::Interior => diag::misuse(func, p, "pointer into a block, not the start of one"),
    }
}

/// The core block containing `p`, and its usable size: for debug mode, which finds its
/// header from there.  None when `p` is not inside a block handed out.
pub fn block_containing(p: *mut u8) -> Option<(*mut u8, usize)> {
    match ownership::lookup(p as usize) {
        Region::Arena(_) => {
            let (pool, offset) = arena::pool_at(p as usize)?;
            // SAFETY: `pool_at` returns live pool heads.
            let pool = unsafe { &*pool };
            if offset >= pool.limit() {
                return None;
            }
            let size = pool.block_size();
            let block = pool.start().wrapping_add((offset - offset.checked_rem(size)?) as usize);
            (!pool.looks_free(block.cast())).then_some((block, size as usize))
        }
        Region::Large(base) => large::block_of(base, p),
        Region::Foreign => None,
    }
}

/// Frees the block `p` of `pool` (checked by `owner_of`): locally or remotely.
#[inline(always)]
fn free_in_pool(pool: *mut Pool, p: *mut u8, func: &str) {
    // `owner_of` checked that `p` starts a block of `pool`: what is left to decide is the
    // owner.  A thread without a heap, such as one past its exit destructor, has the
    // unattached heap here, which owns no pool: it frees remotely.
    let me = thread::heap_word();
    match heap::free_target_in(pool, p, me) {
        // SAFETY: we own the heap and so the pool; `p` is one of its blocks being freed.
        FreeTarget::Local(pool) => unsafe { (*me).free_local(pool, p.cast::<Block>(), func) },
        // SAFETY: the remote stack takes other threads' frees; `p` is a live block of a
        // pool of `owner`.
        FreeTarget::Remote(owner) => unsafe { (*heap::Heap::remote_of(owner)).push(p.cast::<Block>()) },
        // The pool is ours, but has not carved the block yet.
        FreeTarget::Neither => diag::misuse(func, p, "pointer to a block that was never allocated"),
    }
}

/// Aborts when the pool block `p` is free already (its first word is a free-list link).
/// For the calls that use a block without freeing it: `realloc`, `malloc_usable_size`.
pub fn check_not_free(pool: *mut Pool, p: *mut u8, func: &str) {
    // SAFETY: `pool` is a live pool head and `p` one of its blocks (checked by owner_of).
    if unsafe { (*pool).looks_free(p.cast()) } {
        diag::misuse(func, p, "the block is free (use after free)");
    }
}
