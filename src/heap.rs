//! Thread heaps: per-thread `usedpools`, the allocation and free fast paths, and the slow
//! paths behind them.
//!
//! Each thread allocates from its own `Heap`, so the fast paths take no lock and no atomic
//! read-modify-write:
//!
//! ```text
//!  alloc(class):  pool = usedpools[class]            free(b) by the owner:
//!                 b = pool.free; if b == null → slow    b.link = pool.free; pool.free = b
//!                 pool.free = b.link; used += 1         used -= 1
//!                 return b                              if used == 0 or pool was full → slow
//! ```
//!
//! `usedpools[class]` is never null: a class with no pool points at `EMPTY_POOL`, a static
//! pool with nothing to give, so the fast path needs no null test (mimalloc's trick).
//! `malloc` of up to `DIRECT_MAX` bytes reads the same heads from `direct`, indexed by
//! `(size - 1) / 16`, so it needs no size-to-class step at all (`alloc_direct`).
//!
//! The slow path (`alloc_generic`) first collects blocks other threads freed into this
//! heap (`remote.rs`), then carves a never-used block from the first pool, retires pools
//! that are exhausted (state *full*), and finally claims a new pool from the arenas (after
//! tidying one abandoned heap, see `tidy_abandoned_heap`).
//!
//! An empty pool goes back to its arena, except that a heap keeps one empty pool per
//! class, so a loop that allocates and frees around a pool boundary does not claim and
//! release a pool (taking the arena lock) on every iteration.

use core::ptr;

use crate::arena;
use crate::config::{AGING_TICK_MS, KEEP_EMPTY_BIG_SLOTS, KEEP_EMPTY_MAX_SLOTS};
use crate::pool::{state, Block, Freed, OwnerId, Pool};
use crate::registry::{self, Link, Taken};
use crate::remote::RemoteFree;
use crate::size_class::{direct_entries_of, slots_of_class, CLASSES, DIRECT_CLASS, DIRECT_SLOTS};

/// Where a block being freed goes, decided by `free_target`.
pub enum FreeTarget {
    /// A block the freeing heap's pool has carved: its local free list (`Heap::free_local`).
    Local(*mut Pool),
    /// A block start in a pool of another heap (or the freeing thread has no heap): that
    /// heap's remote stack.
    Remote(*mut Heap),
    /// Neither: outside every pool, not a block start, or never carved.  The caller's slow
    /// path finds out which (or, collecting remote frees, reports it).
    Neither,
}

/// Finds the pool of `p` and decides where freeing `p` from the heap `me` (null for a
/// thread without one) sends it: the one test behind the free fast path, the free slow
/// path and the collection of remote frees.  The slot map names the pool of any address
/// in the arena space, or the vacant pool, whose tests all fail: so an address in no pool
/// costs no extra test here.
#[inline(always)]
pub fn free_target(p: *mut u8, me: *mut Heap) -> FreeTarget {
    match crate::space::slot_entry(p as usize) {
        Some(entry) => free_target_in(entry as *mut Pool, p, me),
        None => FreeTarget::Neither,
    }
}

/// `free_target` once the pool is known: `pool` is a live pool head or the vacant pool,
/// and `p` lies in its slots (or, for the vacant pool, anywhere).
#[inline(always)]
pub fn free_target_in(pool: *mut Pool, p: *mut u8, me: *mut Heap) -> FreeTarget {
    // SAFETY: map entries are live pool heads or the vacant pool; a live pool's owner
    // is set, and heaps are never unmapped.  `p` lies in the pool's slots, so its
    // offset fits in 32 bits (for the vacant pool it is meaningless and fails).
    unsafe {
        let offset = (p as usize).wrapping_sub((*pool).start as usize);
        let owner = (*pool).owner();
        if owner == Heap::owner_id(me) {
            // Ours: the block must be one the pool has carved (`bump` is ours).
            if (*pool).is_carved_block_offset(offset) {
                return FreeTarget::Local(pool);
            }
        } else if (*pool).is_block_offset(offset) {
            // Another thread's (or a thread without a heap frees): its remote stack.
            return FreeTarget::Remote(Heap::of_owner(owner));
        }
    }
    FreeTarget::Neither
}

/// A thread's heap.  Lives in memory from the registry (`registry.rs`) and is never unmapped.
#[repr(C)]
pub struct Heap {
    /// Per class, the first pool with a block to give, or `EMPTY_POOL`.  Pools of a class
    /// are doubly linked through `Pool::next`/`prev`; a pool is on its list iff it is in
    /// state *used*.
    usedpools: [*mut Pool; CLASSES],
    /// `usedpools` again, indexed by `(size - 1) / 16` for sizes up to `DIRECT_MAX`, so
    /// that `malloc` goes from size to pool in one load whatever the class (`alloc_direct`).
    /// Entries of one class always equal its `usedpools` entry (`set_head`).
    direct: [*mut Pool; DIRECT_SLOTS],
    /// Per class, the empty pool this heap keeps instead of returning it to its arena, or
    /// null.  A hint: the pool may have been allocated from since (then it is not empty and
    /// a newly emptied pool may take its place); it is always a pool this heap owns.
    kept_empty: [*mut Pool; CLASSES],
    /// Per class, the last pool of the used list, or null when the list is empty.
    tails: [*mut Pool; CLASSES],
    /// Per class, the pool a block of the class was last freed into (by `free_local`), or
    /// `EMPTY_POOL`.  `alloc` (the classes above the direct table's) takes from it first:
    /// its free list starts with the block freed last, still in cache with its pages in the
    /// TLB, as a thread cache's last-in first-out reuse would give (see `alloc`).  Always a
    /// pool this heap owns: reset when it empties (`pool_emptied`, `release_empty_pools`).
    recent: [*mut Pool; CLASSES],
    /// Blocks freed into this heap's pools by other threads: the stack beside the heap in
    /// its `HeapSlot` (a raw pointer, so reaching it asserts nothing about the memory).
    remote: *const RemoteFree,
    /// The registry's link (see `registry.rs`; guarded by the registry lock).
    link: Link,
    /// Slow-path frees left before the next `maintain`.
    maintenance_countdown: u32,
    /// Set while `collect_remote` runs (it frees, and frees may call `maintain`).
    collecting: bool,
    /// Whether `direct` mirrors `usedpools` (`config::tunables::direct_table`); when not,
    /// every entry names the vacant pool and every `malloc` takes the caller's miss path
    /// (debug mode, which wraps the core from there).
    direct_table: bool,
}

/// The heap of a thread that has none: every thread's word starts here (`thread.rs`), and
/// returns here after the thread-exit destructor.  All its lists name the vacant pool, so
/// `malloc`'s fast path, reading the thread word without a test, finds no free block and
/// takes its miss path, which attaches a real heap; and no pool names it as owner, so
/// `free` treats every block as another thread's.  Nothing ever writes to it, and nothing
/// makes a reference to it: it is reached through raw pointers only (`unattached`).
pub struct UnattachedHeap(core::cell::UnsafeCell<Heap>);
// SAFETY: never written, so sharing it between threads is sound.
unsafe impl Sync for UnattachedHeap {}

pub static UNATTACHED: UnattachedHeap = UnattachedHeap(core::cell::UnsafeCell::new(Heap {
    usedpools: [crate::pool::vacant(); CLASSES],
    direct: [crate::pool::vacant(); DIRECT_SLOTS],
    kept_empty: [ptr::null_mut(); CLASSES],
    tails: [ptr::null_mut(); CLASSES],
    recent: [crate::pool::vacant(); CLASSES],
    remote: ptr::null(),
    link: Link::new(),
    maintenance_countdown: 0,
    collecting: false,
    direct_table: false,
}));

/// The unattached heap (see `UNATTACHED`).
#[inline(always)]
pub fn unattached() -> *mut Heap {
    UNATTACHED.0.get()
}

/// The first class whose pools are "big" (over `KEEP_EMPTY_MAX_SLOTS`).
const FIRST_BIG_POOL_CLASS: usize = crate::size_class::first_class_with_pools_over(KEEP_EMPTY_MAX_SLOTS);

/// More pools than any list can hold (every slot of a 1 TiB arena space): `is_valid`'s
/// bound on a list walk.
const MAX_POOLS: usize = 1 << 26;

/// Pools and free blocks a fork child looks at, in all, to check the heaps it reclaims: a
/// few milliseconds of pointer chasing at most.
const FORK_CHECK_BUDGET: usize = 1 << 22;

/// Slow-path frees between two `maintain` calls.
const MAINTENANCE_INTERVAL: u32 = 32;

/// When the last aging round ran (see `maintain`; rounds are `AGING_TICK_MS` apart at least).
static LAST_AGING_MS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The pool every empty `usedpools` entry points at: the vacant pool (`pool::vacant`),
/// which has no free block, so the fast path needs no null test (mimalloc's trick).  It is
/// never written: the fast path reads it through a raw pointer, the slow path checks for it
/// before touching a pool.
#[inline(always)]
fn empty_pool() -> *mut Pool {
    crate::pool::vacant()
}

/// Lets a kept pool of a small class empty again without the slow path (`Pool::keep`),
/// so a malloc+free loop of small blocks stays on the fast paths.  Medium pools still take
/// it each time they empty: the slow path also drives maintenance (`maintain`), which
/// must keep running while a program only churns through kept pools; medium churn costs
/// more than the few instructions this saves anyway.
fn keep_quietly(pool: &mut Pool) {
    if (pool.class()) < crate::size_class::SMALL_CLASSES {
        pool.keep();
    }
}

/// The memory of one heap: its remote stack, which other threads push to, and the heap
/// itself, which only its thread touches.  Kept side by side but apart, so that the owner's
/// `&mut Heap` never covers memory another thread writes (with the stack inside `Heap`,
/// every push raced an exclusive borrow: undefined behaviour, whatever the hardware does).
/// Other threads reach the stack from a heap's address with `Heap::remote_of`, pointer
/// arithmetic that reads nothing of the heap; the owner through its `remote` pointer.
#[repr(C)]
struct HeapSlot {
    remote: RemoteFree,
    heap: Heap,
}

/// Heaps are carved from registry memory in steps of this size (whole cache lines).
const HEAP_STRIDE: usize = (core::mem::size_of::<HeapSlot>() + 63) & !63;

/// Gives the calling thread a heap of its own: one an exited thread abandoned, adopted
/// whole (pools and all), or a new one.  Null when out of memory.
pub fn adopt_or_create() -> *mut Heap {
    match registry::adopt_or_create(HEAP_STRIDE) {
        Taken::Adopted(link) => Heap::of_link(link),
        Taken::Fresh(mem) => {
            // SAFETY: fresh registry memory, `HEAP_STRIDE` bytes, cache-line aligned and
            // ours alone until we hand the heap out.
            unsafe { Heap::init_slot(mem) }
        }
        Taken::Nothing => ptr::null_mut(),
    }
}

/// Puts a heap the calling thread no longer uses on the abandoned list (see
/// `registry::abandon`).
pub fn abandon(h: *mut Heap) {
    registry::abandon(Heap::link_of(h));
}

/// In a fork child, before it starts a thread: puts the heaps of the parent's other
/// threads (which do not exist here) on the abandoned list, for the child's threads to
/// adopt and tidy, as if those threads had exited.  A thread may have been halfway through
/// changing its heap when the parent forked, so each heap is checked first, every list
/// and the free list of every pool on them; one that fails stays where it is, unused.
/// `mine` is the calling thread's heap, or null.  Returns the heaps reclaimed.
///
/// # Safety
/// Only in a fork child, before any other thread exists there.
pub unsafe fn reclaim_orphans_after_fork(mine: *mut Heap) -> usize {
    let link_offset = core::mem::offset_of!(HeapSlot, heap) + core::mem::offset_of!(Heap, link);
    let mine = if mine.is_null() { ptr::null_mut() } else { Heap::link_of(mine) };
    // The checks walk every free list: bounded, so that forking a process with a huge heap
    // stays quick (heaps past the budget are left unused, as before this reclaim).
    let mut budget = FORK_CHECK_BUDGET;
    let consistent = |link: *mut Link| {
        let h = Heap::of_link(link);
        // SAFETY: the child's only thread; registry memory of a heap that was carved: it is
        // initialised if its `remote` points to its own stack and its countdown is not 0
        // (written after everything else but fields that read as valid when zero), and
        // then readable throughout.
        unsafe {
            (*h).remote == Heap::remote_of(h)
                && (*h).maintenance_countdown != 0
                && !(*h).collecting
                && (*h).is_valid_within(&mut budget)
                && (*h).owned_pools_are_consistent(&mut budget)
        }
    };
    // SAFETY: the caller's guarantee.
    unsafe { registry::reclaim_orphans(HEAP_STRIDE, link_offset, mine, consistent) }
}

/// Gives back what one abandoned heap no longer needs: the blocks other threads freed into
/// it since its thread exited, and the pools that left empty.  Called by any thread about
/// to claim a new pool, so a dead thread's memory returns to the arenas (and the OS) even
/// when no new thread comes to adopt its heap.  Heaps are tidied in turn (taken from the
/// front of the list, put back at the end).
pub fn tidy_abandoned_heap() {
    let link = registry::take_to_tidy();
    if link.is_null() {
        return;
    }
    let h = Heap::of_link(link);
    // SAFETY: off the list, `h` is ours alone (it is not our thread word's heap, so even
    // our own frees into its pools go through its remote stack).
    unsafe { (*h).release_empty_pools() };
    registry::put_back_tidied(link);
}

impl Heap {
    /// The registry's link inside the heap `this`.
    fn link_of(this: *mut Heap) -> *mut Link {
        this.cast::<u8>().wrapping_add(core::mem::offset_of!(Heap, link)).cast()
    }

    /// The heap whose registry link is `link` (the inverse of `link_of`).
    fn of_link(link: *mut Link) -> *mut Heap {
        link.cast::<u8>().wrapping_sub(core::mem::offset_of!(Heap, link)).cast()
    }

    /// What the pools of the heap `this` record as their owner (`pool::OwnerId`): its
    /// address.  No pool has the unattached heap's, nor `OwnerId::NONE` (null).
    #[inline(always)]
    pub fn owner_id(this: *const Heap) -> OwnerId {
        OwnerId(this as usize)
    }

    /// The heap a pool's `OwnerId` names (see `owner_id`).
    #[inline(always)]
    pub fn of_owner(owner: OwnerId) -> *mut Heap {
        owner.0 as *mut Heap
    }

    /// The head of `class`'s used list.  Unchecked indexing: `class < CLASSES` is an
    /// invariant of every class value (see `size_class`), and a bounds-check panic would
    /// allocate.
    #[inline(always)]
    fn list(&self, class: usize) -> *mut Pool {
        debug_assert!(class < CLASSES);
        // SAFETY: class < CLASSES.
        unsafe { *self.usedpools.get_unchecked(class) }
    }

    /// Makes `pool` the head of `class`'s used list, in `usedpools` and in the direct
    /// table's entries of the class.
    #[inline(always)]
    fn set_head(&mut self, class: usize, pool: *mut Pool) {
        debug_assert!(class < CLASSES);
        // SAFETY: class < CLASSES.
        unsafe { *self.usedpools.get_unchecked_mut(class) = pool };
        if self.direct_table {
            for i in direct_entries_of(class) {
                // SAFETY: `direct_entries_of` gives indices below DIRECT_SLOTS.
                unsafe { *self.direct.get_unchecked_mut(i) = pool };
            }
        }
    }

    #[inline(always)]
    fn recent_mut(&mut self, class: usize) -> &mut *mut Pool {
        debug_assert!(class < CLASSES);
        // SAFETY: class < CLASSES.
        unsafe { self.recent.get_unchecked_mut(class) }
    }

    #[inline(always)]
    fn kept_mut(&mut self, class: usize) -> &mut *mut Pool {
        debug_assert!(class < CLASSES);
        // SAFETY: class < CLASSES.
        unsafe { self.kept_empty.get_unchecked_mut(class) }
    }

    /// Initialises a heap and its remote stack in `mem` (heaps live in raw memory, never on
    /// the stack) and returns the heap.
    ///
    /// # Safety
    /// `mem` must point to `HEAP_STRIDE` writable bytes, 64-byte aligned, used by nobody.
    unsafe fn init_slot(mem: *mut u8) -> *mut Heap {
        let slot = mem.cast::<HeapSlot>();
        // SAFETY: the caller gives us the memory; the stack is written before the heap
        // that points to it, and every field before use.
        unsafe {
            let remote = ptr::addr_of_mut!((*slot).remote);
            remote.write(RemoteFree::new());
            let this = ptr::addr_of_mut!((*slot).heap);
            Heap::init(this, remote);
            this
        }
    }

    /// The remote stack of the heap at `this`: address arithmetic only (every heap lives in
    /// a `HeapSlot`), so any thread may ask while the owner holds `&mut` to the heap.
    #[inline(always)]
    pub fn remote_of(this: *mut Heap) -> *const RemoteFree {
        this.cast::<u8>().wrapping_sub(core::mem::offset_of!(HeapSlot, heap)).cast()
    }

    /// Initialises a heap in place whose remote stack is `remote`.
    ///
    /// # Safety
    /// `this` must point to writable memory of `size_of::<Heap>()` bytes, suitably aligned,
    /// and `remote` to an initialised stack that outlives the heap.
    unsafe fn init(this: *mut Heap, remote: *const RemoteFree) {
        // SAFETY: the caller gives us the memory; every field is written before use.
        unsafe {
            for i in 0..DIRECT_SLOTS {
                (*this).direct[i] = empty_pool();
            }
            for c in 0..CLASSES {
                (*this).usedpools[c] = empty_pool();
                (*this).kept_empty[c] = ptr::null_mut();
                (*this).tails[c] = ptr::null_mut();
                (*this).recent[c] = empty_pool();
            }
            (*this).remote = remote;
            (*this).link = Link::new();
            (*this).maintenance_countdown = MAINTENANCE_INTERVAL;
            (*this).collecting = false;
            (*this).direct_table = crate::config::tunables::direct_table();
        }
    }

    /// Allocates a block of `class`.  Null only when the OS is out of memory.
    #[inline(always)]
    pub fn alloc(&mut self, class: usize) -> *mut u8 {
        // First the pool of the last free of this class: the block it hands out is the one
        // freed last.  Medium pools hold few blocks, and under churn the free blocks of the
        // list's first pool were mostly freed long ago: profiles of churn of 512 B–64 KiB
        // blocks showed half of the slow path's time in the miss on the block's link, and
        // tcmalloc, which reuses the block freed last, 1.5× as fast.  Measured 2026-12-02
        // (7 interleaved rounds): 3.10M -> 3.30M ops/s, 11% fewer CPU samples, for 3 more
        // instructions per free (the store in `free_local`).  The vacant pool has no block.
        let recent = self.recent_mut(class);
        // SAFETY: `recent` entries are pools this heap owns, or the vacant pool.
        let b = unsafe { Pool::pop_free(*recent) };
        if !b.is_null() {
            return b.cast();
        }
        // `Pool::pop_free` written out, so that every exit is a tail call (no stack frame).
        let pool = self.list(class);
        // SAFETY: usedpools entries are our pools or the vacant one, whose free list is
        // empty (so it is only read).
        unsafe {
            let b = (*pool).free;
            if b.is_null() {
                return self.alloc_slow(class);
            }
            let next = crate::link::Link::read(b);
            if !Pool::links_to_carved(pool, next) {
                return Pool::pop_last(pool, b, next).cast();
            }
            Pool::pop_first(pool, b, next).cast()
        }
    }

    /// Allocates a block for a `malloc` of `16 * index + 1 ..= 16 * (index + 1)` bytes
    /// (sizes up to `DIRECT_MAX`): `alloc`, with the pool found in the direct table, and
    /// `miss(this)` when its first pool has no free block (`alloc_direct_miss`, or the
    /// caller's way to it).  A raw pointer, not `&mut self`: `this` may be the unattached
    /// heap, which all threads share, and which this reads only.
    ///
    /// # Safety
    /// `this` must be the calling thread's heap or the unattached heap.
    #[inline(always)]
    pub unsafe fn alloc_direct(this: *mut Heap, index: usize, miss: impl FnOnce(*mut Heap) -> *mut u8) -> *mut u8 {
        debug_assert!(index < DIRECT_SLOTS);
        // SAFETY: index < DIRECT_SLOTS; entries are our pools or the vacant one, as in
        // `alloc`; the caller's guarantee for `this`.
        unsafe {
            let pool = *(*this).direct.get_unchecked(index);
            let b = (*pool).free;
            if b.is_null() {
                return miss(this);
            }
            let next = crate::link::Link::read(b);
            if !Pool::links_to_carved(pool, next) {
                return Pool::pop_last(pool, b, next).cast();
            }
            Pool::pop_first(pool, b, next).cast()
        }
    }

    /// `alloc_direct`'s miss on an attached heap: the slow path of the class of `index`.
    /// Inlined into the front's cold miss path (`alloc::malloc_direct_miss`), so the miss
    /// is one call, not a chain of them, before `alloc_slow`.
    #[inline]
    pub fn alloc_direct_miss(&mut self, index: usize) -> *mut u8 {
        let class = match DIRECT_CLASS.get(index) {
            Some(&class) => class as usize,
            None => return ptr::null_mut(),
        };
        self.alloc_slow(class)
    }

    /// `alloc`'s slow path as a plain pointer-returning call that sets `errno` itself on
    /// failure, so `malloc` can end in a tail call and needs no stack frame of its own.
    #[cold]
    #[inline(never)]
    fn alloc_slow(&mut self, class: usize) -> *mut u8 {
        let b = self.alloc_generic(class).0;
        if b.is_null() {
            crate::os::set_errno(libc::ENOMEM);
        }
        b.cast()
    }

    /// Allocates a zero-filled block of `class` (for calloc): recycled blocks are cleared,
    /// never-used blocks of a pool that started zeroed are not touched.
    pub fn alloc_zeroed(&mut self, class: usize) -> *mut u8 {
        let (b, zero) = {
            // SAFETY: as in `alloc`.
            let b = unsafe { Pool::pop_free(self.list(class)) };
            if !b.is_null() {
                (b, false)
            } else {
                self.alloc_generic(class)
            }
        };
        if !b.is_null() && !zero {
            // SAFETY: the block is ours and `size_of_class(class)` bytes long.
            unsafe { ptr::write_bytes(b.cast::<u8>(), 0, crate::size_class::size_of_class(class)) };
        }
        b.cast()
    }

    /// The slow path: collect remote frees, carve fresh blocks, retire full pools, claim a
    /// new pool.  Returns the block and whether its memory is known to be zero.
    #[cold]
    #[inline(never)]
    fn alloc_generic(&mut self, class: usize) -> (*mut Block, bool) {
        self.collect_remote("malloc");
        loop {
            let pool = self.list(class);
            if pool == empty_pool() {
                break;
            }
            // SAFETY: pools on our lists are ours and live.
            let b = unsafe { Pool::pop_free(pool) };
            if !b.is_null() {
                return (b, false);
            }
            // SAFETY: as above.
            let pool = unsafe { &mut *pool };
            let b = pool.pop_fresh();
            if !b.is_null() {
                return (b, pool.zeroed);
            }
            // Exhausted: the pool becomes full and leaves the list until blocks come back.
            debug_assert!(pool.is_exhausted());
            self.unlink(pool);
            pool.mark_full();
        }
        // Before taking more memory, give back what dead threads' heaps no longer use.
        tidy_abandoned_heap();
        let Some(claim) = arena::claim_pool(slots_of_class(class)) else {
            return (ptr::null_mut(), false);
        };
        // SAFETY: the claim is ours alone; `start` is its first byte.
        let pool = unsafe {
            (*claim.pool).init(class, claim.start, Heap::owner_id(self), claim.zeroed);
            &mut *claim.pool
        };
        self.push_front(pool);
        (pool.pop_fresh(), pool.zeroed)
    }

    /// Frees `b`, a block of `pool`, which this heap owns.
    ///
    /// # Safety
    /// `pool` must be owned by this heap and `b` a handed-out block of it.
    #[inline(always)]
    pub unsafe fn free_local(&mut self, pool: *mut Pool, b: *mut Block, func: &str) {
        // SAFETY: the caller guarantees ownership and that `b` is a block of `pool`.
        let pool = unsafe { &mut *pool };
        // Before the push: if it empties the pool, `pool_emptied` resets the entry.
        *self.recent_mut(pool.class()) = pool;
        // SAFETY: as above.  Every exit is a tail call: the free fast path has no frame.
        match unsafe { pool.push_free(b) } {
            Freed::Kept => {}
            Freed::ReachedMark => self.free_generic(pool),
            Freed::AlreadyFree => crate::pool::report_double_free(func, b),
        }
    }

    /// A free changed the pool's state: full → used (enough blocks came back), or → empty.
    #[cold]
    #[inline(never)]
    fn free_generic(&mut self, pool: &mut Pool) {
        if pool.state == state::FULL {
            pool.mark_used();
            self.push_back(pool);
        }
        if pool.used() == 0 {
            self.pool_emptied(pool);
        }
        self.maintenance_countdown -= 1;
        if self.maintenance_countdown == 0 {
            self.maintenance_countdown = MAINTENANCE_INTERVAL;
            self.maintain();
        }
    }

    /// Every `MAINTENANCE_INTERVAL` slow-path frees: collect the blocks other threads
    /// freed into this heap, and tidy one abandoned heap.  Otherwise both happen only when
    /// an allocation runs out of blocks, and a thread that frees but seldom allocates
    /// (or has plenty of free blocks) would keep other threads' freed memory from going
    /// back to the OS indefinitely.
    #[cold]
    fn maintain(&mut self) {
        if self.collecting {
            return;
        }
        self.collect_remote("free");
        tidy_abandoned_heap();
        // Memory freed but kept for reuse (free slots' pages, cached large mappings) goes
        // back to the OS once it has sat unused for the purge delay (`PURGE_DELAY_MS`),
        // checked here at most every AGING_TICK_MS: churn keeps reusing it without page
        // faults, and a program that stops using memory gets it back shortly after.
        let now = crate::os::coarse_millis();
        let last = LAST_AGING_MS.load(core::sync::atomic::Ordering::Relaxed);
        if now.wrapping_sub(last) >= AGING_TICK_MS
            && LAST_AGING_MS
                .compare_exchange(last, now, core::sync::atomic::Ordering::Relaxed, core::sync::atomic::Ordering::Relaxed)
                .is_ok()
        {
            crate::large::age_cache(now);
            arena::age();
        }
    }

    /// An empty pool returns to its arena, except that the heap keeps one empty pool per
    /// class: a program whose live blocks of a class hover around a pool boundary would
    /// otherwise claim and release a pool (the arena lock, and page faults once the arena
    /// purged it) over and over.  Pools over `KEEP_EMPTY_MAX_SLOTS` are kept only while the
    /// kept ones total at most `KEEP_EMPTY_BIG_SLOTS`: a kept pool's pages are never purged,
    /// and a buffer grown by `realloc` through the medium classes would leave one behind in
    /// each (see `config`).
    fn pool_emptied(&mut self, pool: &mut Pool) {
        let class = pool.class();
        if *self.recent_mut(class) == pool as *mut Pool {
            *self.recent_mut(class) = empty_pool();
        }
        let kept = *self.kept_mut(class);
        if kept == pool as *mut Pool {
            // The kept pool emptied again: kept still.
            keep_quietly(pool);
            return;
        }
        // SAFETY: `kept_empty` entries are null or pools this heap owns.
        let may_keep = kept.is_null() || unsafe { (*kept).used() } != 0;
        if may_keep
            && (pool.slots() <= KEEP_EMPTY_MAX_SLOTS
                || self.kept_big_slots() + pool.slots() <= KEEP_EMPTY_BIG_SLOTS)
        {
            if !kept.is_null() {
                // SAFETY: as above; it is not empty, so it may be released when it is.
                unsafe { (*kept).unkeep() };
            }
            *self.kept_mut(class) = pool;
            keep_quietly(pool);
            return;
        }
        self.unlink(pool);
        // SAFETY: the pool is empty, ours, and now on no list.
        unsafe { arena::release_pool(pool) };
    }

    /// Slots of the empty pools over `KEEP_EMPTY_MAX_SLOTS` this heap keeps.  (Counted when
    /// needed, on the slow path of a big pool emptying: a kept pool stops being empty on the
    /// allocation fast path, which should not keep accounts.)
    fn kept_big_slots(&self) -> usize {
        let mut slots = 0;
        for &kept in &self.kept_empty[FIRST_BIG_POOL_CLASS..] {
            // SAFETY: `kept_empty` entries are null or pools this heap owns.
            if !kept.is_null() && unsafe { (*kept).used() } == 0 {
                // SAFETY: as above.
                slots += unsafe { (*kept).slots() };
            }
        }
        slots
    }

    /// Frees every block other threads gave back to this heap (`func` is the C function
    /// in progress, for diagnostics).  Nothing on the stack is trusted: each block must
    /// start a block of a pool this heap owns (else it was freed twice by other threads,
    /// its pool having gone back to the arenas in between), and each link must decode to an
    /// arena address (else the block was written to while it waited: use after free).
    pub fn collect_remote(&mut self, func: &str) {
        let was_collecting = core::mem::replace(&mut self.collecting, true);
        self.collect_remote_inner(func);
        self.collecting = was_collecting;
    }

    fn collect_remote_inner(&mut self, func: &str) {
        // SAFETY: our stack, initialised with the heap and never unmapped.
        let mut b = unsafe { (*self.remote).take_all() };
        let mut prev: *mut Block = ptr::null_mut();
        while !b.is_null() {
            let FreeTarget::Local(pool) = free_target(b.cast(), self) else {
                // Not a block of ours.  Reached through a link that decodes to no arena
                // address: the previous block was written to while it waited.  Else it
                // was ours once and freed twice by other threads, its pool having gone
                // back to the arenas in between.
                if !prev.is_null() && !crate::space::contains(b as usize) {
                    crate::diag::misuse(func, prev.cast(), "a freed block was written to (use after free): its free-list link is corrupt");
                }
                crate::diag::misuse(func, b.cast(), "double free: the block is already free");
            };
            // SAFETY: a block of a pool of ours, taken from the stack; its link was written
            // by the pushing thread before its Release CAS (see remote.rs).
            let next = unsafe { RemoteFree::next_of(b) };
            // SAFETY: as above.  A block met twice on this stack (freed twice by other
            // threads) went on the pool's free list the first time round: `push_free`
            // then finds its link and reports the double free, before `next` (read from
            // that link) is followed.
            unsafe { self.free_local(pool, b, func) };
            prev = b;
            b = next;
        }
    }

    /// Collects remote frees and returns every empty pool to its arena, the kept ones
    /// included: before the heap is abandoned (its thread exits, so a dead thread holds only
    /// pools with live blocks), when an abandoned heap is tidied, and for `malloc_trim`.
    pub fn release_empty_pools(&mut self) {
        self.collect_remote("free");
        for class in 0..CLASSES {
            let kept = *self.kept_mut(class);
            // SAFETY: `kept_empty` entries are null or pools this heap owns.  An empty one is
            // released below; one in use goes back to being released when it empties.
            if !kept.is_null() && unsafe { (*kept).used() } != 0 {
                // SAFETY: as above.
                unsafe { (*kept).unkeep() };
            }
            let mut p = self.list(class);
            while p != empty_pool() {
                // SAFETY: pools on our lists are ours and live.
                let pool = unsafe { &mut *p };
                let next = if pool.next.is_null() { empty_pool() } else { pool.next };
                if pool.used() == 0 {
                    self.unlink(pool);
                    // SAFETY: empty, ours, on no list.
                    unsafe { arena::release_pool(pool) };
                }
                p = next;
            }
            *self.kept_mut(class) = ptr::null_mut();
            *self.recent_mut(class) = empty_pool();
        }
    }

    fn tail_mut(&mut self, class: usize) -> &mut *mut Pool {
        debug_assert!(class < CLASSES);
        // SAFETY: class < CLASSES.
        unsafe { self.tails.get_unchecked_mut(class) }
    }

    /// Appends `pool` to its class's used list: a pool that comes back from *full* waits
    /// behind the others, gathering more freed blocks before the fast path drains it again
    /// (each visit then serves more allocations between two slow paths).
    fn push_back(&mut self, pool: &mut Pool) {
        let class = pool.class();
        let tail = *self.tail_mut(class);
        if tail.is_null() {
            return self.push_front(pool);
        }
        pool.next = ptr::null_mut();
        pool.prev = tail;
        // SAFETY: `tail` is a live pool on our list.
        unsafe { (*tail).next = pool };
        *self.tail_mut(class) = pool;
    }

    fn push_front(&mut self, pool: &mut Pool) {
        let class = pool.class();
        let head = self.list(class);
        pool.prev = ptr::null_mut();
        if head == empty_pool() {
            pool.next = ptr::null_mut();
            *self.tail_mut(class) = pool;
        } else {
            pool.next = head;
            // SAFETY: `head` is a live pool on our list.
            unsafe { (*head).prev = pool };
        }
        self.set_head(class, pool);
    }

    fn unlink(&mut self, pool: &mut Pool) {
        let class = pool.class();
        // SAFETY: neighbours on our list are live pools of ours.
        unsafe {
            if pool.prev.is_null() {
                self.set_head(class, if pool.next.is_null() { empty_pool() } else { pool.next });
            } else {
                (*pool.prev).next = pool.next;
            }
            if !pool.next.is_null() {
                (*pool.next).prev = pool.prev;
            } else {
                *self.tail_mut(class) = pool.prev;
            }
        }
        pool.next = ptr::null_mut();
        pool.prev = ptr::null_mut();
    }

    /// Number of pools on `class`'s used list (for statistics and tests).
    pub fn used_pool_count(&self, class: usize) -> usize {
        let mut n = 0;
        let mut p = self.list(class);
        // A list ends in null (the head alone is EMPTY_POOL when the list is empty).
        while p != empty_pool() && !p.is_null() {
            n += 1;
            // SAFETY: pools on our lists are live.
            p = unsafe { (*p).next };
        }
        n
    }

    /// Checks the list invariants of every class (tests, and a fork child's orphans: see
    /// `reclaim_orphans_after_fork`).  Bounded: a torn list that loops fails; and no pool
    /// pointer is followed before it is known to lie in a live arena (a torn list may name
    /// a pool whose arena has gone back to the OS).
    pub fn is_valid(&self) -> bool {
        let mut unbounded = usize::MAX;
        self.is_valid_within(&mut unbounded)
    }

    /// True when every pool that names this heap its owner is where its state says: a
    /// *used* pool on its class's list (`is_valid` checks those), a *full* one whole
    /// (`Pool::is_valid`).  A thread stopped halfway through moving a pool between the two
    /// (or through claiming one) leaves a pool owned but on no list, which this finds: the
    /// lists alone do not show it.  For a fork child's orphans (`reclaim_orphans_after_fork`),
    /// within the same `budget`.
    fn owned_pools_are_consistent(&self, budget: &mut usize) -> bool {
        let me = Heap::owner_id(self);
        let mut on_lists = 0usize;
        for class in 0..CLASSES {
            on_lists += self.used_pool_count(class);
        }
        let mut used_found = 0usize;
        let mut whole = true;
        arena::for_each_pool_head(|p| {
            // SAFETY: a live pool head; in the fork child nothing else runs.
            let pool = unsafe { &*p };
            if !whole || pool.owner() != me {
                return;
            }
            if *budget == 0 {
                whole = false;
                return;
            }
            *budget -= 1;
            match pool.state {
                state::USED => used_found += 1,
                state::FULL => whole &= pool.is_valid_within(budget),
                _ => whole = false,
            }
        });
        whole && used_found == on_lists
    }

    /// `is_valid`, giving up (false) once it has looked at `budget` pools and blocks in
    /// all (see `reclaim_orphans_after_fork`).
    pub fn is_valid_within(&self, budget: &mut usize) -> bool {
        for i in 0..DIRECT_SLOTS {
            let want = if self.direct_table { self.list(DIRECT_CLASS[i] as usize) } else { empty_pool() };
            if self.direct[i] != want {
                return false;
            }
        }
        for class in 0..CLASSES {
            let mut prev: *mut Pool = ptr::null_mut();
            let mut p = self.list(class);
            let mut steps = 0usize;
            while p != empty_pool() && !p.is_null() {
                steps += 1;
                if steps > MAX_POOLS || *budget == 0 || !arena::is_pool_entry(p) {
                    return false;
                }
                *budget -= 1;
                // SAFETY: pools on our lists are live.
                let pool = unsafe { &*p };
                if pool.prev != prev
                    || pool.class() != class
                    || pool.state != state::USED
                    || pool.owner() != Heap::owner_id(self)
                    || !pool.is_valid_within(budget)
                {
                    return false;
                }
                prev = p;
                p = pool.next;
            }
            // A list ends in null; the vacant pool stands only for an empty list.
            if (p == empty_pool() && !prev.is_null()) || self.tails[class] != prev {
                return false;
            }
            let kept = self.kept_empty[class];
            if !kept.is_null() && !self.is_own_pool_head(kept) {
                return false;
            }
            let recent = self.recent[class];
            if recent != empty_pool() && !self.is_own_pool_head(recent) {
                return false;
            }
        }
        true
    }

    /// True when `p` is the head entry of a pool in a live arena, owned by this heap
    /// (for `is_valid_within`: `p` may be anything).
    fn is_own_pool_head(&self, p: *mut Pool) -> bool {
        // SAFETY: read only once it is known to lie in a live arena's pool table.
        arena::is_pool_entry(p)
            && unsafe { (*p).kind() == crate::pool::kind::HEAD && (*p).owner() == Heap::owner_id(self) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::size_class::{class_of, size_of_class};

    fn new_heap() -> *mut Heap {
        // The free-list key is set once, before the first pool: here as in the library
        // (another test allocating through the front would set it under our pools' feet).
        crate::init::ensure_init();
        let mem = crate::os::map(HEAP_STRIDE);
        // SAFETY: a fresh mapping of the right size, page-aligned.
        unsafe { Heap::init_slot(mem) }
    }

    fn pool_of_block(b: *mut u8) -> *mut Pool {
        arena::pool_at(b as usize).expect("block in a pool").0
    }

    #[test]
    fn a_medium_class_reuses_the_block_freed_last_whatever_its_pool() {
        // SAFETY: the heap is private to this test thread.
        let heap = unsafe { &mut *new_heap() };
        let class = class_of(3000);
        assert!(crate::size_class::size_of_class(class) > crate::config::DIRECT_MAX);
        // Enough blocks for several pools: the first ones are full, the list's first pool
        // has fresh blocks to give.
        let blocks: std::vec::Vec<*mut u8> = (0..200).map(|_| heap.alloc(class)).collect();
        let first_pool = pool_of_block(blocks[0]);
        assert_ne!(first_pool, pool_of_block(blocks[199]), "the blocks span more than one pool");
        for &b in [blocks[3], blocks[5]].iter() {
            // SAFETY: a live block of our own pool.
            unsafe { heap.free_local(first_pool, b.cast(), "test") };
        }
        // Last in, first out, from the full pool, not a fresh block of the list's first.
        assert_eq!(heap.alloc(class), blocks[5]);
        assert_eq!(heap.alloc(class), blocks[3]);
        assert!(heap.is_valid());
        for &b in blocks.iter() {
            // SAFETY: each block is live and ours.
            unsafe { heap.free_local(pool_of_block(b), b.cast(), "test") };
        }
        assert!(heap.is_valid());
        // The pool the last free went into emptied: the entry names no pool of ours.
        assert_eq!(heap.recent[class], empty_pool());
    }

    #[test]
    fn allocates_distinct_blocks_and_reuses_freed_ones() {
        // SAFETY: the heap is private to this test thread.
        let heap = unsafe { &mut *new_heap() };
        let class = class_of(40);
        let mut blocks = std::vec::Vec::new();
        for i in 0..5000usize {
            let b = heap.alloc(class);
            assert!(!b.is_null());
            assert_eq!(b as usize % 16, 0);
            // SAFETY: the block is ours and 48 bytes long.
            unsafe { ptr::write_bytes(b, (i % 251) as u8, size_of_class(class)) };
            blocks.push(b);
        }
        let mut sorted = blocks.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), blocks.len(), "a block was handed out twice");
        // 5000 blocks of 48 B need several 64 KiB pools; all but the current head are full.
        assert!(heap.is_valid());
        let last = blocks[4999];
        let pool = pool_of_block(last);
        // SAFETY: the block is a live block of `pool`, owned by `heap`.
        unsafe { heap.free_local(pool, last.cast(), "test") };
        assert_eq!(heap.alloc(class), last, "the most recently freed block comes back first");
        for &b in &blocks {
            // SAFETY: each block is live and owned by `heap`.
            unsafe { heap.free_local(pool_of_block(b), b.cast(), "test") };
        }
        assert!(heap.is_valid());
        // Everything freed: all pools but one went back to the arenas.
        assert_eq!(heap.used_pool_count(class), 1, "one empty pool is kept");
        heap.release_empty_pools();
        assert_eq!(heap.used_pool_count(class), 0, "abandoning returns empty pools");
    }

    #[test]
    fn full_pools_leave_the_list_and_return_when_a_block_is_freed() {
        // SAFETY: private heap.
        let heap = unsafe { &mut *new_heap() };
        let class = class_of(1 << 20); // one block per pool
        let a = heap.alloc(class);
        let b = heap.alloc(class);
        assert!(!a.is_null() && !b.is_null() && a != b);
        // Allocating `b` found `a`'s pool exhausted: it is full and off the list, and
        // one returned block (its whole capacity) is enough to bring it back.
        // SAFETY: the pool entry is live.
        assert_eq!(unsafe { (*pool_of_block(a)).state }, state::FULL);
        // SAFETY: the pool entry is live.
        assert_eq!(unsafe { (*pool_of_block(a)).relink_at() }, 0);
        assert!(heap.is_valid());
        // SAFETY: live block of ours.
        unsafe { heap.free_local(pool_of_block(a), a.cast(), "test") };
        assert!(heap.is_valid());
        // SAFETY: live block of ours.
        unsafe { heap.free_local(pool_of_block(b), b.cast(), "test") };
        assert!(heap.is_valid());
        assert_eq!(heap.used_pool_count(class), 1, "one empty pool is kept");
        heap.release_empty_pools();
        assert_eq!(heap.used_pool_count(class), 0, "abandoning returns empty pools");
    }

    #[test]
    fn big_empty_pools_are_kept_within_a_budget() {
        // SAFETY: private heap.
        let heap = unsafe { &mut *new_heap() };
        // One block in each of the biggest classes (one block per pool, 40+ slots each):
        // more slots than the budget for big empty pools.
        let classes: std::vec::Vec<usize> = (CLASSES - 8..CLASSES).collect();
        let total: usize = classes.iter().map(|&c| slots_of_class(c)).sum();
        assert!(total > KEEP_EMPTY_BIG_SLOTS && slots_of_class(CLASSES - 8) > KEEP_EMPTY_MAX_SLOTS);
        let blocks: std::vec::Vec<*mut u8> = classes.iter().map(|&c| heap.alloc(c)).collect();
        for &b in &blocks {
            // SAFETY: live blocks of ours.
            unsafe { heap.free_local(pool_of_block(b), b.cast(), "test") };
        }
        assert!(heap.is_valid());
        let kept: usize =
            classes.iter().filter(|&&c| heap.used_pool_count(c) == 1).map(|&c| slots_of_class(c)).sum();
        assert!(kept > 0, "some big empty pools are kept");
        assert!(kept <= KEEP_EMPTY_BIG_SLOTS, "kept {kept} slots of big empty pools, over the budget");
        assert!(classes.iter().any(|&c| heap.used_pool_count(c) == 0), "the rest went back");
        heap.release_empty_pools();
    }

    #[test]
    fn zeroed_allocation_clears_recycled_blocks() {
        // SAFETY: private heap.
        let heap = unsafe { &mut *new_heap() };
        let class = class_of(200);
        let b = heap.alloc(class);
        // SAFETY: ours, 208 bytes.
        unsafe { ptr::write_bytes(b, 0xAB, size_of_class(class)) };
        // SAFETY: live block of ours.
        unsafe { heap.free_local(pool_of_block(b), b.cast(), "test") };
        let z = heap.alloc_zeroed(class);
        assert_eq!(z, b);
        // SAFETY: ours, 208 bytes.
        let bytes = unsafe { core::slice::from_raw_parts(z, size_of_class(class)) };
        assert!(bytes.iter().all(|&x| x == 0));
    }

    #[test]
    fn remote_frees_are_collected_by_the_owner() {
        let heap_ptr = new_heap();
        // SAFETY: private heap, used by this thread only except through `remote`.
        let heap = unsafe { &mut *heap_ptr };
        let class = class_of(64);
        let blocks: std::vec::Vec<usize> = (0..1000).map(|_| heap.alloc(class) as usize).collect();
        let h = heap_ptr as usize;
        std::thread::spawn(move || {
            for &b in &blocks {
                // SAFETY: the remote stack is designed for other threads' pushes.
                unsafe { (*Heap::remote_of(h as *mut Heap)).push(b as *mut Block) };
            }
        })
        .join()
        .unwrap();
        heap.collect_remote("test");
        assert!(heap.is_valid());
        assert_eq!(heap.used_pool_count(class), 1);
        // SAFETY: the pool entry is live.
        assert_eq!(unsafe { (*heap.usedpools[class]).used() }, 0);
    }
}
