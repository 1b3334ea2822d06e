//! Pools: runs of slots inside an arena, carved into blocks of one size class.
//!
//! A pool's header does not live in the pool: it is an entry of its arena's pool table
//! (see `arena.rs`), one 64-byte entry per slot.  Keeping headers out of line means a fresh
//! pool touches only the pages it hands out, an empty pool can be `madvise`d whole, and an
//! overrun off the end of a block hits the next block, not the bookkeeping.
//!
//! ## Blocks
//! Within a pool, blocks are handed out two ways, as in pymalloc:
//! * from `free`, a singly linked list threaded through the free blocks themselves (the
//!   first word of a free block points to the next), which is where freed blocks go;
//! * from `bump`, the offset of the first block never handed out.  Blocks above `bump` have
//!   never been touched, so a new pool faults in only what it gives away, and when the pool's
//!   memory was zero when it was claimed (`zeroed`), `calloc` can skip clearing them.
//!
//! ## Pool states (of a head entry; tail entries only point back at their head)
//! * **used** — on its owner heap's `usedpools[class]` list, iff it has a free block or
//!   bump room, or it is the one empty pool a heap keeps per class.  `next`/`prev` are the
//!   list links.
//! * **full** — it had every block handed out when the heap last looked; on no list.
//!   `next`/`prev` mean nothing.  Freed blocks collect on its free list, and once `RELINK`
//!   of them have come back it goes on the used list again.  Waiting for a few instead of
//!   one keeps a pool that hovers at full (the steady state of random churn) from moving
//!   on and off its list at every free and every allocation.
//! * **empty** — `used == 0`.  Returned to the arena (its slots become free) unless the heap
//!   keeps it as the last pool of its class against thrash.
//!
//! `used` counts blocks handed out and not yet returned to *this pool's* free list; a block
//! freed by another thread stays counted until the owner collects it (see `remote.rs`).

use core::ptr;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU8, AtomicUsize, Ordering};

use crate::config::SLOT_SIZE;
use crate::config::{ARENA_MASK, PAGE_SIZE, SLOT_SHIFT};
pub use crate::link::{Block, Link};
use crate::size_class::{divisor_of_class, slots_of_class, Divisor, CLASSES, CLASS_LIMIT, CLASS_SIZE, CLASS_SLOTS};

/// Which heap owns a pool, as the pool sees it: an opaque word, compared and handed back,
/// never followed here (`heap.rs`, above this module, makes it from a heap's address and
/// turns it back: `Heap::owner_id`, `Heap::of_owner`).  `NONE` for no heap.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub struct OwnerId(pub usize);

impl OwnerId {
    pub const NONE: OwnerId = OwnerId(0);
}

/// What a pool-table entry describes.
pub mod kind {
    /// The slot belongs to no pool (the arena's initial state: zeroed memory reads as this).
    pub const FREE: u8 = 0;
    /// The first slot of a pool: the entry is the pool header.
    pub const HEAD: u8 = 1;
    /// A later slot of a multi-slot pool (the slot map names its head: `space.rs`).
    pub const TAIL: u8 = 2;
}

/// Pool states for a head entry.
pub mod state {
    pub const USED: u8 = 0;
    pub const FULL: u8 = 1;
}

/// A pool header: one entry of an arena's pool table.  Exactly 64 bytes (one cache line):
/// the fields the fast paths read come first.
#[repr(C, align(64))]
pub struct Pool {
    /// Head of the local free list; null when empty.
    pub free: *mut Block,
    /// `used() - relink_at`, wrapping: the blocks still to come back before the free path
    /// must take its slow branch (at 0).  Kept this way, not as `used` itself, so the free
    /// fast path's whole bookkeeping is one decrement and its flags.
    /// 32 bits, though `used()` fits 16, so that the decrement's own flags are the test.
    /// Atomic because statistics read it from other threads (`used_racy`); only the owner
    /// writes it, with a load and a store.
    above_mark: AtomicU32,
    /// Offset from `start` of the first never-used block.
    pub bump: u32,
    /// First byte of the pool's memory.  (It also follows from where this entry sits in its
    /// arena's table, but the allocation fast path checks free-list links against it, and
    /// a load is cheaper than the arithmetic.)
    pub start: *mut u8,
    /// The test for "this offset starts a block" (see `size_class::Divisor`), cached from
    /// the class so the free path reads one field instead of a table.
    pub divisor: Divisor,
    /// The heap that owns the pool (an `OwnerId`); only that heap's thread touches `free`,
    /// `used`, `bump`.  Written only while no block of the pool is live, read by any thread
    /// freeing a block.
    owner: AtomicUsize,
    /// usedpools links (meaningful iff `state == USED`).
    pub next: *mut Pool,
    pub prev: *mut Pool,
    /// Size class index.
    class: AtomicU8,
    /// `kind::FREE`, `kind::HEAD` or `kind::TAIL`.
    pub(crate) kind: AtomicU8,
    /// `state::USED` or `state::FULL`.
    pub state: u8,
    /// Memory from `bump` to `limit()` is known to be zero (fresh or decommitted pages).
    pub zeroed: bool,
    /// This slot's memory may hold data (it has been part of a pool since last decommit).
    pub dirty: bool,
    /// For a free slot that may hold data: when its pool was released, in aging ticks
    /// (`arena::tick_of`, wrapping).  Aging decommits it once it has sat free for the
    /// purge delay.
    pub freed_tick: u8,
    /// Where the free path takes its slow branch, as a count of blocks handed out: 0 for a
    /// used pool (it became empty), `capacity - RELINK` for a full one (enough blocks came
    /// back to put it on the used list again), `KEPT` (never) for the pool the heap keeps
    /// empty.  One counter covers every event.  Atomic, as `above_mark`.
    relink_at: AtomicU16,
}

/// What `Pool::push_free` did with a block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Freed {
    /// The block went on the free list.
    Kept,
    /// The block went on the free list, and the pool's state must change (see `relink_at`).
    ReachedMark,
    /// The block was free already: nothing changed (a double free).
    AlreadyFree,
}

/// The pool that is no pool: what the slot map names for every slot outside a pool, and
/// what an empty `usedpools` entry points at.  Every test a fast path makes of it fails
/// (no free block, nothing carved, no offset starts a block), so neither path needs a
/// null test; nothing ever writes to it.
struct VacantPool(core::cell::UnsafeCell<Pool>);
// SAFETY: never written, so sharing it between threads is sound.
unsafe impl Sync for VacantPool {}

static VACANT: VacantPool = VacantPool(core::cell::UnsafeCell::new(Pool {
    free: ptr::null_mut(),
    above_mark: AtomicU32::new(0),
    bump: 0,
    start: ptr::null_mut(),
    divisor: Divisor::NONE,
    owner: AtomicUsize::new(OwnerId::NONE.0),
    next: ptr::null_mut(),
    prev: ptr::null_mut(),
    class: AtomicU8::new(0),
    kind: AtomicU8::new(kind::FREE),
    state: state::FULL,
    zeroed: false,
    dirty: false,
    freed_tick: 0,
    relink_at: AtomicU16::new(0),
}));

/// The vacant pool (see `VACANT`).  Only ever read through this pointer.
#[inline(always)]
pub const fn vacant() -> *mut Pool {
    VACANT.0.get()
}

const _: () = assert!(core::mem::size_of::<Pool>() == 64);
/// Entry `i` of an arena's table describes slot `i`: shifting an entry's offset in the
/// arena by this much gives its slot's offset.
const ENTRY_TO_SLOT_SHIFT: usize = SLOT_SHIFT - core::mem::size_of::<Pool>().trailing_zeros() as usize;
// `used` and `relink_at` are u16: the largest capacity is a 64 KiB pool of 16-byte blocks.
const _: () = assert!(SLOT_SIZE / crate::config::MIN_ALIGN <= u16::MAX as usize);

/// True when a decoded link `next` is null or points into the first `bound` bytes of the
/// pool starting at `start`: the test behind `looks_free` (and, written out, `push_free`).
#[inline(always)]
fn is_link_below(next: *mut Block, start: usize, bound: u32) -> bool {
    next.is_null() || (next as usize).wrapping_sub(start) < bound as usize
}

/// Reports a double free and aborts.  Declared to return, so the free fast path can end
/// in a jump to it and needs no stack frame of its own (a call to a `-> !` function is a
/// `call`, which needs one).
#[cold]
#[inline(never)]
pub fn report_double_free(func: &str, b: *mut Block) {
    // `black_box` hides from the optimiser that this never returns.
    if core::hint::black_box(true) {
        crate::diag::misuse(func, b.cast(), "double free: the block is already free");
    }
}

/// `relink_at` of the pool a heap keeps: a count `used` never reaches (see `Pool::keep`).
const KEPT: u16 = u16::MAX;

/// At most this many blocks must come back to a full pool before it is used again.
const MAX_RELINK: u32 = 16;

/// Per class, `used` at which a full pool goes back on its used list: when an eighth of
/// its blocks (at least 1, at most `MAX_RELINK`) have come back.  A table, because the
/// division it takes would cost more than the rest of `mark_full`.
static RELINK_AT: [u16; CLASSES] = {
    let mut t = [0u16; CLASSES];
    let mut c = 0;
    while c < CLASSES {
        let cap = (CLASS_SLOTS[c] as u32 * SLOT_SIZE as u32) / CLASS_SIZE[c];
        let mut back = cap / 8;
        if back < 1 {
            back = 1;
        }
        if back > MAX_RELINK {
            back = MAX_RELINK;
        }
        t[c] = (cap - back) as u16;
        c += 1;
    }
    t
};

impl Pool {
    /// Makes this (head) entry a fresh pool of `class` owned by `owner`.
    ///
    /// # Safety
    /// The entry and the `slots` entries after it must have just been claimed from the
    /// arena by the caller, and `start` must be the first byte of those slots.
    pub unsafe fn init(&mut self, class: usize, start: *mut u8, owner: OwnerId, zeroed: bool) {
        debug_assert_eq!(start as usize, self.start_from_table_position());
        self.free = ptr::null_mut();
        self.above_mark.store(0, Ordering::Relaxed);
        self.relink_at.store(0, Ordering::Relaxed);
        self.bump = 0;
        self.divisor = divisor_of_class(class);
        self.next = ptr::null_mut();
        self.prev = ptr::null_mut();
        self.owner = AtomicUsize::new(owner.0);
        self.start = start;
        self.class.store(class as u8, Ordering::Relaxed);
        self.kind.store(kind::HEAD, Ordering::Relaxed);
        self.state = state::USED;
        self.zeroed = zeroed;
    }

    /// The heap that owns the pool.  Any thread may ask (see `owner`).
    #[inline(always)]
    pub fn owner(&self) -> OwnerId {
        OwnerId(self.owner.load(Ordering::Relaxed))
    }

    /// Pops a block off the free list of `this`, or null.  Aborts when the block's link
    /// was overwritten (a use-after-free write): see `Link`.  (The heap's allocation fast
    /// path is this, written out so that each exit is a tail call: `Heap::alloc`.)
    ///
    /// # Safety
    /// `this` must be a pool owned by the calling thread's heap, or the vacant pool (whose
    /// free list is empty, so nothing is written).  A raw pointer, not `&mut self`: the
    /// vacant pool is shared by every thread.
    #[inline(always)]
    pub unsafe fn pop_free(this: *mut Pool) -> *mut Block {
        // SAFETY: the caller's guarantee; fields are reached through the raw pointer.
        unsafe {
            let b = (*this).free;
            if b.is_null() {
                return b;
            }
            let next = Link::read(b);
            if !Pool::links_to_carved(this, next) {
                return Pool::pop_last(this, b, next);
            }
            Pool::pop_first(this, b, next)
        }
    }

    /// True when the decoded link `next` points to a block `this` has carved: one compare
    /// on the allocation fast path.  False for the end of the list (null) as well, which
    /// `pop_last` tells apart from a corrupt link.
    ///
    /// # Safety
    /// `this` must be a live pool (or the vacant one).
    #[inline(always)]
    pub unsafe fn links_to_carved(this: *mut Pool, next: *mut Block) -> bool {
        // SAFETY: the caller's guarantee.
        unsafe { (next as usize).wrapping_sub((*this).start as usize) < (*this).bump as usize }
    }

    /// Takes `b`, the first block of the free list of `this`, whose link `next` has been
    /// checked.
    ///
    /// # Safety
    /// `this` must be a pool of the calling thread's heap and `b` its first free block.
    #[inline(always)]
    pub unsafe fn pop_first(this: *mut Pool, b: *mut Block, next: *mut Block) -> *mut Block {
        // SAFETY: the caller's guarantee.
        unsafe {
            (*this).free = next;
            // `b` is now handed out; clearing its link word makes "first word decodes to a
            // link" mean "already free" (see `Block`).
            b.cast::<usize>().write(0);
            Pool::add_used(this, 1);
        }
        b
    }

    /// `pop_first` of a block whose link is no carved block: the last of the list (null
    /// link), or a block a use-after-free write corrupted (abort).
    ///
    /// # Safety
    /// As for `pop_first`.
    #[cold]
    #[inline(never)]
    pub unsafe fn pop_last(this: *mut Pool, b: *mut Block, next: *mut Block) -> *mut Block {
        if !next.is_null() {
            crate::diag::misuse("malloc", b.cast(), "a freed block was written to (use after free): its free-list link is corrupt");
        }
        // SAFETY: the caller's guarantee.
        unsafe { Pool::pop_first(this, b, next) }
    }

    /// Hands out the next never-used block, or null when the pool is carved out.  Call
    /// only with an empty free list: the blocks after it, up to the end of its OS page,
    /// are carved at the same time and become the free list, so the allocation fast path
    /// serves them and a new pool is still faulted in one page at a time.
    #[inline]
    pub fn pop_fresh(&mut self) -> *mut Block {
        debug_assert!(self.free.is_null());
        if self.bump >= self.limit() {
            return ptr::null_mut();
        }
        let size = self.block_size() as usize;
        let start = self.start() as usize;
        let first = start + self.bump as usize;
        // Blocks wholly below `end` join the free list.
        let end = ((first | (PAGE_SIZE - 1)) + 1).min(start + self.limit() as usize);
        let mut carved_end = first + size;
        if carved_end + size <= end {
            self.free = carved_end as *mut Block;
            while carved_end + 2 * size <= end {
                // SAFETY: the block at `carved_end` lies inside the pool, unused.
                unsafe { Link::write(carved_end as *mut Block, (carved_end + size) as *mut Block) };
                carved_end += size;
            }
            // SAFETY: as above; the last block carved ends the list.
            unsafe { Link::write(carved_end as *mut Block, ptr::null_mut()) };
            carved_end += size;
        }
        self.bump = (carved_end - start) as u32;
        // SAFETY: `&mut self`: the caller owns the pool.
        unsafe { Pool::add_used(self, 1) };
        // SAFETY: the first block is inside the pool; a recycled pool's memory may hold an
        // old link there, which would make freeing the block look like a double free.
        unsafe { (first as *mut usize).write(0) };
        first as *mut Block
    }

    /// Returns a block to the local free list.  `AlreadyFree`, changing nothing, when the
    /// block is free already (a double free, which the caller reports); `ReachedMark` when
    /// the pool's state must change (`used()` came down to `relink_at`, see there).
    ///
    /// # Safety
    /// `b` must be the start of a block of this pool that has been carved
    /// (`is_carved_block_offset`).
    #[inline(always)]
    #[must_use]
    pub unsafe fn push_free(&mut self, b: *mut Block) -> Freed {
        let start = self.start() as usize;
        let mask = Link::mask_of(Link::key(), b);
        // SAFETY: `b` is a block of this pool, readable.
        let word = unsafe { b.cast::<usize>().read() };
        // Free already if the word encodes a link this pool's free list may hold: to null
        // (compared encoded, before decoding, which saves the optimiser a copy) or to a
        // carved block.
        let next = Link::decode_masked(mask, word);
        if word == Link::encode_masked(mask, ptr::null_mut()) || (next as usize).wrapping_sub(start) < self.bump as usize {
            return Freed::AlreadyFree;
        }
        // SAFETY: the block is ours and no longer in use: its first word is free to link.
        unsafe { b.cast::<usize>().write(Link::encode_masked(mask, self.free)) };
        self.free = b;
        // The new count is tested as computed, not loaded again: one decrement and its flags.
        let above = self.above_mark.load(Ordering::Relaxed).wrapping_sub(1);
        self.above_mark.store(above, Ordering::Relaxed);
        if above == 0 {
            Freed::ReachedMark
        } else {
            Freed::Kept
        }
    }

    /// Blocks handed out and not yet back on `free` (a pool holds at most 1024 blocks).
    #[inline]
    pub fn used(&self) -> u16 {
        self.above_mark.load(Ordering::Relaxed).wrapping_add(self.relink_at.load(Ordering::Relaxed) as u32) as u16
    }

    /// `used()` read by another thread (statistics), racing the owner: a snapshot.
    ///
    /// # Safety
    /// `this` must be a pool-table entry of a live arena.
    pub unsafe fn used_racy(this: *const Pool) -> u16 {
        // SAFETY: the caller's guarantee; both fields are atomics, so the reads race the
        // owner's writes soundly (a snapshot, possibly of two moments).
        unsafe {
            (*this).above_mark.load(Ordering::Relaxed).wrapping_add((*this).relink_at.load(Ordering::Relaxed) as u32) as u16
        }
    }

    /// `relink_at` (see there).
    pub fn relink_at(&self) -> u16 {
        self.relink_at.load(Ordering::Relaxed)
    }

    /// Adds `delta` (wrapping: `u16::MAX` takes one away) to the blocks handed out.  Only
    /// the owner thread calls this, so a load and a store suffice; the field is atomic
    /// because statistics read it from other threads (`used_racy`).
    ///
    /// # Safety
    /// `this` must be a pool of the calling thread's heap.
    #[inline(always)]
    unsafe fn add_used(this: *const Pool, delta: u32) {
        // SAFETY: the caller's guarantee.
        let mark = unsafe { &(*this).above_mark };
        mark.store(mark.load(Ordering::Relaxed).wrapping_add(delta), Ordering::Relaxed);
    }

    /// The pool's size class.  Atomic (Relaxed) because statistics read it from other
    /// threads while the pool is claimed and set up (`arena::for_each_pool`).
    #[inline(always)]
    pub fn class(&self) -> usize {
        self.class.load(Ordering::Relaxed) as usize
    }

    /// Slots the pool spans (they follow from the class).
    #[inline]
    pub fn slots(&self) -> usize {
        slots_of_class(self.class())
    }

    /// `kind::FREE`, `HEAD` or `TAIL` (atomic, as `class`).
    #[inline]
    pub fn kind(&self) -> u8 {
        self.kind.load(Ordering::Relaxed)
    }

    /// Sets what the entry describes (the arena, as it claims and releases slots).
    pub fn set_kind(&self, k: u8) {
        self.kind.store(k, Ordering::Relaxed);
    }

    /// Moves the mark, keeping `used()`.
    fn set_relink_at(&mut self, mark: u16) {
        let used = self.used();
        self.relink_at.store(mark, Ordering::Relaxed);
        self.above_mark.store((used as u32).wrapping_sub(mark as u32), Ordering::Relaxed);
    }

    /// True when the block `b` of this pool has a free-list link in its first word, so it
    /// is free already.  Reads only fields fixed while the pool exists (any thread may ask;
    /// the answer about a block another thread is freeing meanwhile is a guess).
    pub fn looks_free(&self, b: *mut Block) -> bool {
        // SAFETY: `b` is a block of this pool: its first word is mapped.
        let next = Link::decode(unsafe { ptr::read_volatile(b.cast::<usize>()) }, b);
        // `limit`, not `bump`: other threads may ask, and only the owner reads `bump`.
        is_link_below(next, self.start as usize, self.limit())
    }

    /// True when every block is handed out.
    #[inline]
    pub fn is_exhausted(&self) -> bool {
        self.free.is_null() && self.bump >= self.limit()
    }

    /// Number of blocks the pool holds.
    pub fn capacity(&self) -> u32 {
        self.limit() / self.block_size()
    }

    /// The pool leaves the used list: it is full until `relink_after()` blocks come back.
    pub fn mark_full(&mut self) {
        self.state = state::FULL;
        debug_assert!(self.class() < CLASSES);
        // SAFETY: a head's class is below CLASSES.
        self.set_relink_at(unsafe { *RELINK_AT.get_unchecked(self.class()) });
    }

    /// The heap keeps this (used) pool when it empties: its emptying needs no slow path, so
    /// a malloc+free loop on the kept pool stays on the fast paths.  `used` never reaches
    /// `KEPT`, until `mark_full` or `unkeep` sets a reachable threshold again.
    pub fn keep(&mut self) {
        if self.state == state::USED {
            self.set_relink_at(KEPT);
        }
    }

    /// The heap no longer keeps this pool: it goes back to its arena when it empties.
    pub fn unkeep(&mut self) {
        if self.state == state::USED {
            self.set_relink_at(0);
        }
    }

    /// The pool is back on the used list.
    pub fn mark_used(&mut self) {
        self.state = state::USED;
        self.set_relink_at(0);
    }

    /// Size of each block (the class size).
    #[inline(always)]
    pub fn block_size(&self) -> u32 {
        debug_assert!(self.class() < CLASSES);
        // SAFETY: every pool's class is below CLASSES.
        unsafe { *CLASS_SIZE.get_unchecked(self.class()) }
    }

    /// Offset from `start` just past the last whole block: `bump == limit()` when carved out.
    #[inline(always)]
    pub fn limit(&self) -> u32 {
        debug_assert!(self.class() < CLASSES);
        // SAFETY: as in `block_size`.
        unsafe { *CLASS_LIMIT.get_unchecked(self.class()) }
    }

    /// First byte of the pool's memory.
    #[inline(always)]
    pub fn start(&self) -> *mut u8 {
        self.start
    }

    /// Where the pool must start, given where its header is: entry `i` of an arena's table
    /// heads a pool that starts at slot `i`.
    fn start_from_table_position(&self) -> usize {
        let entry = self as *const Pool as usize;
        let arena = entry & !ARENA_MASK;
        arena + ((entry - arena) << ENTRY_TO_SLOT_SHIFT)
    }

    /// True when `p` is the start of a block of this pool (not an interior pointer, not
    /// past the last block).  No division: see `size_class::Divisor`.  Reads only fields
    /// fixed while the pool exists, so any thread may ask.
    #[inline(always)]
    pub fn is_block_start(&self, p: usize) -> bool {
        let offset = p.wrapping_sub(self.start() as usize);
        self.is_block_offset(offset)
    }

    /// `is_block_offset`, and the block has been carved (handed out at least once): for
    /// the owner thread only, which alone moves `bump`.
    #[inline(always)]
    pub fn is_carved_block_offset(&self, offset: usize) -> bool {
        // The range test first: past it, the offset fits the divisor's 32 bits.
        offset < self.bump as usize && self.divisor.divides(offset)
    }

    /// `is_block_start` for an address `offset` bytes into the pool.
    #[inline(always)]
    pub fn is_block_offset(&self, offset: usize) -> bool {
        // As above.
        offset < self.limit() as usize && self.divisor.divides(offset)
    }

    /// Checks the invariants that must hold of a head entry between operations.
    pub fn is_valid(&self) -> bool {
        let mut unbounded = usize::MAX;
        self.is_valid_within(&mut unbounded)
    }

    /// `is_valid`, giving up (false) once it has looked at `budget` blocks in all: the
    /// budget is shared by the checks of many pools (`heap::reclaim_orphans_after_fork`).
    pub fn is_valid_within(&self, budget: &mut usize) -> bool {
        if self.kind() != kind::HEAD || self.class() >= CLASSES || self.block_size() == 0 {
            return false;
        }
        let cap = self.capacity();
        let mut on_list = 0u32;
        let mut b = self.free;
        while !b.is_null() {
            if !self.is_block_start(b as usize) || b as usize - self.start() as usize >= self.bump as usize {
                return false;
            }
            on_list += 1;
            if on_list > cap || *budget == 0 {
                return false; // a cycle, or the caller's patience is spent
            }
            *budget -= 1;
            // SAFETY: b was checked to be a block of this pool.
            b = unsafe { Link::read(b) };
        }
        let carved = self.bump / self.block_size();
        let used = self.used() as u32;
        self.bump <= self.limit() && used + on_list == carved && used <= cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ARENA_SIZE;
    use crate::os;
    use crate::size_class::{class_of, CLASSES};

    /// A pool of `class` laid out as in an arena: header at entry 1 of a table at the
    /// start of an arena-aligned mapping, memory from slot 1.  Returns the pool, its memory,
    /// its length and the mapping (to unmap, `ARENA_SIZE` long).
    fn fresh_pool(class: usize) -> (&'static mut Pool, *mut u8, usize, *mut u8) {
        crate::init::ensure_init(); // fixes the free-list key before any link is written
        let len = slots_of_class(class) * SLOT_SIZE;
        let arena = os::map_aligned(ARENA_SIZE, ARENA_SIZE);
        assert!(!arena.is_null());
        // SAFETY: entry 1 lies in the fresh mapping; all-zero bytes are a valid (FREE) entry.
        let p = unsafe { &mut *arena.add(core::mem::size_of::<Pool>()).cast::<Pool>() };
        // SAFETY: slot 1 onwards is unused memory of the mapping.
        let mem = unsafe { arena.add(SLOT_SIZE) };
        // SAFETY: the entry and its slots are ours alone.
        unsafe { p.init(class, mem, OwnerId::NONE, true) };
        assert_eq!(p.start(), mem);
        (p, mem, len, arena)
    }

    /// A block as the heap takes one: from the free list, else freshly carved.
    fn take(p: &mut Pool) -> *mut Block {
        let b = unsafe { Pool::pop_free(p) };
        if b.is_null() {
            p.pop_fresh()
        } else {
            b
        }
    }

    #[test]
    fn carving_hands_out_every_block_once_in_address_order() {
        for class in [0, class_of(100), class_of(512), class_of(3000), CLASSES - 1] {
            let (p, mem, len, arena) = fresh_pool(class);
            let size = p.block_size() as usize;
            let cap = p.capacity() as usize;
            assert!(cap >= 1 && cap * size <= len);
            for i in 0..cap {
                let b = take(p);
                assert_eq!(b as usize, mem as usize + i * size);
                assert!(p.is_valid());
                // Carving stays within the OS page the block ends in.
                let end = mem as usize + p.bump as usize;
                assert!(end <= ((b as usize + size - 1) | (PAGE_SIZE - 1)) + 1, "class {class} block {i}");
            }
            assert!(unsafe { Pool::pop_free(p) }.is_null());
            assert!(p.pop_fresh().is_null());
            assert!(p.is_exhausted());
            assert_eq!(p.used() as usize, cap);
            p.mark_full();
            assert!(p.relink_at() as usize >= cap.saturating_sub(16) && (p.relink_at() as usize) < cap);
            // SAFETY: the mapping was made above.
            unsafe { os::unmap(arena, ARENA_SIZE) };
        }
    }

    #[test]
    fn free_list_is_lifo_and_counts_balance() {
        let (p, _mem, _len, arena) = fresh_pool(class_of(48));
        let blocks: [*mut Block; 5] = core::array::from_fn(|_| take(p));
        // SAFETY: every block was handed out by this pool.
        unsafe {
            assert_eq!(p.push_free(blocks[1]), Freed::Kept);
            assert_eq!(p.push_free(blocks[3]), Freed::Kept);
        }
        assert_eq!(p.used(), 3);
        assert!(p.is_valid());
        assert_eq!(unsafe { Pool::pop_free(p) }, blocks[3]);
        assert_eq!(unsafe { Pool::pop_free(p) }, blocks[1]);
        // Then the blocks carved with the first, in address order.
        assert_eq!(unsafe { Pool::pop_free(p) } as usize, blocks[4] as usize + 48);
        assert_eq!(p.used(), 6);
        assert!(p.is_valid());
        assert!(p.is_block_start(blocks[2] as usize));
        assert!(!p.is_block_start(blocks[2] as usize + 8));
        // SAFETY: the mapping was made above.
        unsafe { os::unmap(arena, ARENA_SIZE) };
    }

    #[test]
    fn validity_check_catches_a_corrupted_link() {
        let (p, mem, _len, arena) = fresh_pool(class_of(64));
        let a = take(p);
        let _b = take(p);
        // SAFETY: `a` was handed out by this pool.
        assert_eq!(unsafe { p.push_free(a) }, Freed::Kept);
        assert!(p.is_valid());
        // SAFETY: `a` is a free block of the pool; we overwrite its link on purpose.
        unsafe { (*a).next = (mem as usize + 8) as *mut Block };
        assert!(!p.is_valid());
        // SAFETY: the mapping was made above.
        unsafe { os::unmap(arena, ARENA_SIZE) };
    }
}
