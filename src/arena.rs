//! Arenas: 4 MiB, 4 MiB-aligned mappings carved into 16 KiB slots, handed out as pools.
//!
//! ```text
//!  arena (ARENA_SIZE, aligned to ARENA_SIZE)
//!  ┌──────────────┬────────┬────────┬────────────────────┬────────┬─── ─ ─ ──┐
//!  │ slot 0:      │ slot 1 │ slot 2 │ slots 3..=6        │ slot 7 │          │
//!  │ ArenaInfo +  │ pool   │ pool   │ one 4-slot pool    │ free   │  ...     │
//!  │ pool table   │ (16 B) │ (576 B)│ (medium class)     │        │          │
//!  └──────────────┴────────┴────────┴────────────────────┴────────┴─── ─ ─ ──┘
//!  pool table entry s describes slot s: a pool head, a later slot of a pool (a tail), or free.
//! ```
//!
//! The header slot holds `ArenaInfo` (64 bytes) followed by the pool table, 255 `Pool`
//! entries of 64 bytes, so the entry for slot `s` is at `arena + 64 * s`.  A block's pool is
//! found through the slot map instead (`space.rs`), which names the head for every slot.
//!
//! ## The arena list
//! One global list, guarded by a spinlock, holds every arena with at least one free slot
//! (CPython's `usable_arenas`), sorted by number of free slots, fewest first.  Pools are
//! claimed from the first arena with room, so allocation concentrates in the most used arenas
//! and the others get a chance to drain; an arena all of whose pools are empty is unmapped
//! (keeping up to `tunables::spare_arenas()` mapped against thrash).  The lock is taken only to claim
//! or release a whole pool — never per block.  `mmap`/`munmap` happen outside the lock.
//!
//! Invariants (under the lock): an arena is on the list iff `free_slots > 0` and it is not
//! spare; bit `s` of `in_use` is set iff slot `s` belongs to a pool (bit 0: the header);
//! `free_slots` = number of clear bits.

use core::ptr;

use crate::config::{
    tunables, AGING_TICK_MS, ARENA_MASK, ARENA_SIZE, GRANULE_SLOTS, SLOTS_PER_ARENA, SLOT_SHIFT, SLOT_SIZE,
};
use crate::os;
use crate::pool::{kind, Pool};
use crate::space;

/// Usable slots in an arena (all but the header slot).
pub const POOL_SLOTS: u32 = (SLOTS_PER_ARENA - GRANULE_SLOTS) as u32;

/// Arena-level fields, in the space pool-table entry 0 would take.
#[repr(C, align(64))]
pub struct ArenaInfo {
    next: *mut Arena,
    prev: *mut Arena,
    /// Bit `s` set iff slot `s` belongs to a pool (bit 0: the header slot).
    in_use: [u64; SLOTS_PER_ARENA / 64],
    /// Clear bits in `in_use`.
    free_slots: u32,
    /// Free slots whose pages may hold data (`Pool::dirty` set on a free entry): what
    /// `purge` would decommit.  Kept under the lock, so purging need not scan for them.
    dirty_free: u16,
    /// Always zero.  `ArenaInfo` sits where pool-table entry 0 would, and these bytes are
    /// where an entry keeps `kind`: so entry 0 reads as a FREE entry, and
    /// `pool_of` needs no test for the header slot.
    reads_as_free_entry: [u8; 8],
    /// Free slots taken out of circulation to be decommitted with the lock released
    /// (`purge`): their `in_use` bits are set, so no claim takes them, but `free_slots`
    /// still counts them.  While it is not zero the arena is never given back.
    purging: u16,
}

const _: () = {
    let zero_from = core::mem::offset_of!(ArenaInfo, reads_as_free_entry);
    let zero_to = zero_from + 8;
    assert!(core::mem::offset_of!(Pool, kind) >= zero_from && core::mem::offset_of!(Pool, kind) < zero_to);
};

/// The header of an arena: its first slot.
#[repr(C)]
pub struct Arena {
    info: ArenaInfo,
    /// `pools[s - 1]` describes slot `s`.
    pools: [Pool; SLOTS_PER_ARENA - 1],
}

const _: () = assert!(core::mem::size_of::<ArenaInfo>() == core::mem::size_of::<Pool>());
const _: () = assert!(core::mem::size_of::<Arena>() == SLOT_SIZE);

impl Arena {
    /// The pool-table entry of slot `slot` (1 ≤ slot < SLOTS_PER_ARENA).
    #[inline(always)]
    fn entry(this: *mut Arena, slot: usize) -> *mut Pool {
        debug_assert!(slot < SLOTS_PER_ARENA); // 0: the ArenaInfo, read as a free entry
        // SAFETY-free arithmetic: entry `slot` sits `slot` pool-sized steps into the header.
        (this as usize + slot * core::mem::size_of::<Pool>()) as *mut Pool
    }

    fn slot_addr(this: *mut Arena, slot: usize) -> *mut u8 {
        (this as usize + (slot << SLOT_SHIFT)) as *mut u8
    }
}

/// The pool header of the block at `addr` and the offset of `addr` from the pool's first
/// byte; None when `addr` is outside the arenas, in an arena header, or in a slot that
/// belongs to no pool.  (The free fast path does the same through `space::slot_entry`
/// inline, letting the vacant pool's failing tests stand in for the None.)
#[inline(always)]
pub fn pool_at(addr: usize) -> Option<(*mut Pool, u32)> {
    let pool = space::slot_entry(addr)? as *mut Pool;
    if pool == crate::pool::vacant() {
        return None;
    }
    // SAFETY: map entries other than the vacant pool are live pool heads; `addr` lies in
    // the pool's slots, so the offset fits in 32 bits.
    Some((pool, (addr - unsafe { (*pool).start } as usize) as u32))
}

struct ArenaList {
    /// Arenas with a free slot, fewest free slots first.
    usable: *mut Arena,
    /// Empty arenas kept mapped, linked through `info.next`.
    spare: *mut Arena,
    spare_count: usize,
    /// When the last aging round ran (`os::coarse_millis`), to tell when slot stamps may
    /// have wrapped.
    last_aged_ms: u64,
    stats: ArenaStats,
}

/// Counters of arena traffic, for statistics and tests.
#[derive(Clone, Copy, Default, Debug)]
pub struct ArenaStats {
    /// Arenas mapped now.
    pub current: usize,
    /// Most arenas mapped at once.
    pub peak: usize,
    /// Arenas mapped since start.
    pub mapped: usize,
    /// Arenas returned to the OS since start.
    pub unmapped: usize,
}

// SAFETY: the raw pointers are only dereferenced under the list's lock.
unsafe impl Send for ArenaList {}

static ARENAS: spin::Mutex<ArenaList> = spin::Mutex::new(ArenaList {
    usable: ptr::null_mut(),
    spare: ptr::null_mut(),
    spare_count: 0,
    last_aged_ms: 0,
    stats: ArenaStats { current: 0, peak: 0, mapped: 0, unmapped: 0 },
});

/// A freshly claimed pool's place: its head entry and first byte.
pub struct Claim {
    pub pool: *mut Pool,
    pub start: *mut u8,
    /// The pool's memory is all zero (never written, or decommitted since).
    pub zeroed: bool,
}

/// Finds `n` consecutive clear bits in `bits` (`n` a whole number of granules) starting on
/// a granule boundary; returns the index of the first.
fn find_run(bits: &[u64; SLOTS_PER_ARENA / 64], n: usize) -> Option<usize> {
    debug_assert!(n > 0 && n % GRANULE_SLOTS == 0);
    const GRANULE_BITS: u64 = (1 << GRANULE_SLOTS) - 1;
    let mut run = 0;
    let mut i = GRANULE_SLOTS; // granule 0 holds the header
    while i < SLOTS_PER_ARENA {
        if bits[(i / 64) & 3] >> (i % 64) & GRANULE_BITS == 0 {
            run += GRANULE_SLOTS;
            if run == n {
                return Some(i + GRANULE_SLOTS - n);
            }
        } else {
            run = 0;
        }
        i += GRANULE_SLOTS;
    }
    None
}

fn set_bits(bits: &mut [u64; SLOTS_PER_ARENA / 64], first: usize, n: usize, on: bool) {
    for s in first..first + n {
        if on {
            bits[(s / 64) & 3] |= 1 << (s % 64);
        } else {
            bits[(s / 64) & 3] &= !(1 << (s % 64));
        }
    }
}

impl ArenaList {
    /// Unlinks `a` from `usable`.
    ///
    /// # Safety
    /// `a` must be on `usable`.
    unsafe fn unlink(&mut self, a: *mut Arena) {
        // SAFETY: `a` and its neighbours are live arenas on the list (lock held).
        unsafe {
            let (next, prev) = ((*a).info.next, (*a).info.prev);
            if prev.is_null() {
                self.usable = next;
            } else {
                (*prev).info.next = next;
            }
            if !next.is_null() {
                (*next).info.prev = prev;
            }
            (*a).info.next = ptr::null_mut();
            (*a).info.prev = ptr::null_mut();
        }
    }

    /// Inserts `a` (not on the list) in order of free slots, fewest first.
    ///
    /// # Safety
    /// `a` must be a live arena that is on no list.
    unsafe fn insert_sorted(&mut self, a: *mut Arena) {
        // SAFETY: all arenas reached are live and on the list (lock held).
        unsafe {
            let free = (*a).info.free_slots;
            let mut prev: *mut Arena = ptr::null_mut();
            let mut cur = self.usable;
            while !cur.is_null() && (*cur).info.free_slots < free {
                prev = cur;
                cur = (*cur).info.next;
            }
            (*a).info.prev = prev;
            (*a).info.next = cur;
            if prev.is_null() {
                self.usable = a;
            } else {
                (*prev).info.next = a;
            }
            if !cur.is_null() {
                (*cur).info.prev = a;
            }
        }
    }

    /// Restores the ordering after `a.free_slots` changed (CPython moves the arena along
    /// the list the same way; the list is short and moves are local in practice).
    ///
    /// # Safety
    /// `a` must be on `usable`.
    unsafe fn reposition(&mut self, a: *mut Arena) {
        // SAFETY: `a` is on the list; neighbours are live.
        unsafe {
            let free = (*a).info.free_slots;
            let prev = (*a).info.prev;
            let next = (*a).info.next;
            let misplaced = (!prev.is_null() && (*prev).info.free_slots > free)
                || (!next.is_null() && (*next).info.free_slots < free);
            if misplaced {
                self.unlink(a);
                self.insert_sorted(a);
            }
        }
    }

    /// Claims `n` consecutive slots from the first arena that has them.
    fn try_claim(&mut self, n: usize) -> Option<(*mut Arena, usize)> {
        let mut a = self.usable;
        while !a.is_null() {
            // SAFETY: arenas on the list are live; the lock is held.
            unsafe {
                if (*a).info.free_slots as usize >= n {
                    if let Some(first) = find_run(&(*a).info.in_use, n) {
                        set_bits(&mut (*a).info.in_use, first, n, true);
                        for slot in first..first + n {
                            if (*Arena::entry(a, slot)).dirty {
                                (*a).info.dirty_free -= 1;
                            }
                        }
                        (*a).info.free_slots -= n as u32;
                        if (*a).info.free_slots == 0 {
                            self.unlink(a);
                        } else {
                            self.reposition(a);
                        }
                        return Some((a, first));
                    }
                }
                a = (*a).info.next;
            }
        }
        None
    }

    /// Marks slots `first..first+n` of `a` free again and keeps the list in order.  Returns
    /// true when `a` became empty and must be unmapped by the caller (outside the lock);
    /// otherwise an empty arena is kept as a spare.
    fn release_slots(&mut self, a: *mut Arena, first: usize, n: usize) -> bool {
        // SAFETY: lock held (or a private list in tests); `a` is a live arena.
        unsafe {
            let was_full = (*a).info.free_slots == 0;
            set_bits(&mut (*a).info.in_use, first, n, false);
            (*a).info.free_slots += n as u32;
            if was_full {
                self.insert_sorted(a);
            } else {
                self.reposition(a);
            }
            if (*a).info.free_slots < POOL_SLOTS || (*a).info.purging != 0 {
                return false;
            }
            self.retire_empty(a)
        }
    }

    /// `a`, on `usable`, holds no pool any more: keeps it as a spare, or takes it off the
    /// lists and returns true, for the caller to give back to the OS.
    ///
    /// # Safety
    /// `a` must be on `usable`, with every slot free and none out for purging.
    unsafe fn retire_empty(&mut self, a: *mut Arena) -> bool {
        // SAFETY: the caller's guarantee; the lock is held.
        unsafe {
            self.unlink(a);
            if self.spare_count < tunables::spare_arenas() {
                (*a).info.next = self.spare;
                self.spare = a;
                self.spare_count += 1;
                return false;
            }
        }
        self.stats.current -= 1;
        self.stats.unmapped += 1;
        true
    }

    /// True when `a` is on the spare list.
    fn is_spare(&self, a: *mut Arena) -> bool {
        let mut s = self.spare;
        while !s.is_null() {
            if s == a {
                return true;
            }
            // SAFETY: spare arenas are live and linked through `info.next` (lock held).
            s = unsafe { (*s).info.next };
        }
        false
    }

    /// Puts a spare arena back in use, if there is one.
    fn revive_spare(&mut self) -> bool {
        let a = self.spare;
        if a.is_null() {
            return false;
        }
        // SAFETY: spare arenas are live and linked through `info.next` (lock held).
        unsafe {
            self.spare = (*a).info.next;
            self.spare_count -= 1;
            (*a).info.next = ptr::null_mut();
            self.insert_sorted(a);
        }
        true
    }
}

/// Initialises the header of a freshly mapped (zeroed) arena.
///
/// # Safety
/// `a` must point to a fresh zeroed mapping of `ARENA_SIZE` bytes.
unsafe fn init_arena(a: *mut Arena) {
    // SAFETY: the mapping is ours; zeroed memory already reads as all-FREE pool entries.
    unsafe {
        (*a).info.in_use = [0; SLOTS_PER_ARENA / 64];
        // The header slot, and the rest of its granule, which no pool can use.
        (*a).info.in_use[0] = (1 << GRANULE_SLOTS) - 1;
        (*a).info.free_slots = POOL_SLOTS;
    }
}

/// Commits a new arena from the arena space; null when out of memory.  Its slot-map
/// entries read as the vacant pool.  Not yet live (`space::set_live`): the caller marks it
/// so under the lock when it puts it on the list.
fn new_arena() -> *mut Arena {
    let base = space::take_arena(crate::pool::vacant() as usize);
    if base.is_null() {
        return ptr::null_mut();
    }
    let a = base.cast::<Arena>();
    // SAFETY: freshly committed, zeroed memory of ARENA_SIZE bytes.
    unsafe { init_arena(a) };
    a
}

/// Claims a pool of `slots` slots.  Returns None when the OS has no memory to give.
pub fn claim_pool(slots: usize) -> Option<Claim> {
    debug_assert!(slots >= 1 && slots <= POOL_SLOTS as usize);
    loop {
        {
            let mut list = ARENAS.lock();
            if let Some((a, first)) = list.try_claim(slots) {
                drop(list);
                return Some(mark_claimed(a, first, slots));
            }
            if list.revive_spare() {
                continue;
            }
        }
        // No room anywhere: map a new arena outside the lock, then offer it to everyone.
        let a = new_arena();
        if a.is_null() {
            return None;
        }
        let mut list = ARENAS.lock();
        list.stats.current += 1;
        list.stats.mapped += 1;
        list.stats.peak = list.stats.peak.max(list.stats.current);
        // Live from now on: `for_each_pool` (under the lock) may walk it.
        space::set_live(a as usize, true);
        // SAFETY: `a` is a live arena on no list.
        unsafe { list.insert_sorted(a) };
    }
}

/// Sets up the pool-table entries of slots `first..first+n`, just claimed by us.
fn mark_claimed(a: *mut Arena, first: usize, n: usize) -> Claim {
    let head = Arena::entry(a, first);
    let mut zeroed = true;
    for i in 0..n {
        let e = Arena::entry(a, first + i);
        // SAFETY: the slots were claimed under the lock: their entries are ours alone.
        unsafe {
            zeroed &= !(*e).dirty;
            (*e).dirty = true;
            (*e).set_kind(if i == 0 { kind::HEAD } else { kind::TAIL });
        }
    }
    let start = Arena::slot_addr(a, first);
    // Every slot of the pool names its head in the slot map, so a free finds it in one load.
    space::set_range(start as usize, n * SLOT_SIZE, head as usize);
    Claim { pool: head, start, zeroed }
}

/// Returns an empty pool's slots to its arena, and the arena to the OS if it is now empty.
///
/// # Safety
/// `pool` must be the head entry of a pool with no live block, owned by the caller, and
/// never used again by the caller.
pub unsafe fn release_pool(pool: *mut Pool) {
    let base = pool as usize & !ARENA_MASK;
    let a = base as *mut Arena;
    let first = (pool as usize - base) / core::mem::size_of::<Pool>();
    // SAFETY: the caller owns the pool; its entries are ours until the bits are cleared.
    let n = unsafe { (*pool).slots() };
    // The slots keep their pages: a pool claimed again soon reuses them without page
    // faults.  They are decommitted once they have sat free for the purge delay (`age`),
    // at once when enough free pages holding data gather in the arena (`purge_slots`), or
    // by `malloc_trim`.
    let released_at = tick_of(os::coarse_millis());
    // Before the slots go back: another thread may claim them as soon as the lock allows.
    space::set_range(Arena::slot_addr(a, first) as usize, n * SLOT_SIZE, crate::pool::vacant() as usize);
    for i in 0..n {
        let e = Arena::entry(a, first + i);
        // SAFETY: still ours (bits not yet cleared).
        unsafe {
            (*e).set_kind(kind::FREE);
        }
    }
    let (unmap, purge_now) = {
        let mut list = ARENAS.lock();
        let unmap = list.release_slots(a, first, n);
        if unmap {
            // Under the lock, so that `live_blocks` (which holds it) never meets an arena
            // that is being given back.
            space::set_live(base, false);
            (true, false)
        } else {
            // SAFETY: the lock is held and the arena stays mapped; the slots are free.
            unsafe {
                for i in 0..n {
                    (*Arena::entry(a, first + i)).freed_tick = released_at;
                }
                (*a).info.dirty_free += n as u16;
                (false, (*a).info.dirty_free as usize >= tunables::purge_slots())
            }
        }
    };
    if unmap {
        // SAFETY: the arena is on no list, not live, and holds no pool: nobody can reach it.
        unsafe { space::give_back_arena(base as *mut u8) };
    } else if purge_now {
        purge(Purge::All, a);
    }
}

/// Blocks handed out from pools and not yet freed (a block freed by another thread counts
/// until its owner collects it), summed over every arena.  For statistics: the counts of
/// pools owned by running threads are read while those threads may change them, so the
/// total is a snapshot, exact only when the other threads are quiet.
pub fn live_blocks() -> usize {
    let mut total = 0;
    for_each_pool(|pool| total += pool.used);
    total
}

/// What `for_each_pool` reports of one pool.
pub struct PoolSnapshot {
    pub class: usize,
    /// Blocks handed out (including those freed by other threads and not yet collected).
    pub used: usize,
    /// Blocks the pool holds.
    pub capacity: usize,
    pub slots: usize,
}

/// Calls `f` for every pool of every arena, under the arena lock (so no arena is unmapped
/// meanwhile).  Owners keep allocating and freeing: a snapshot, for statistics.
pub fn for_each_pool(mut f: impl FnMut(&PoolSnapshot)) {
    let _list = ARENAS.lock();
    space::for_each_live_arena(|base| {
        for slot in 1..SLOTS_PER_ARENA {
            let e = Arena::entry(base as *mut Arena, slot);
            // SAFETY: a registered arena's pool table is mapped and initialised.  The fields
            // read here are atomics: statistics, racing the pools' owners.
            unsafe {
                if (*e).kind() == kind::HEAD {
                    let class = (*e).class().min(crate::size_class::CLASSES - 1);
                    f(&PoolSnapshot {
                        class,
                        used: Pool::used_racy(e) as usize,
                        capacity: (crate::size_class::CLASS_LIMIT[class] / crate::size_class::CLASS_SIZE[class]) as usize,
                        slots: (*e).slots(),
                    });
                }
            }
        }
    });
}

/// True when `p` is where a pool-table entry of a live arena lies: what a pointer to a
/// pool must be before it is followed, when it comes from a heap that may be torn (a fork
/// child's orphans, `heap.rs`).
pub fn is_pool_entry(p: *mut Pool) -> bool {
    let offset = p as usize & ARENA_MASK;
    let size = core::mem::size_of::<Pool>();
    space::in_live_arena(p as usize) && offset % size == 0 && (1..SLOTS_PER_ARENA).contains(&(offset / size))
}

/// Calls `f` with the head entry of every pool of every arena, under the arena lock.  For a
/// fork child checking the heaps of threads that do not exist there (`heap.rs`): nothing
/// else runs, so the entries may be read as they are.
pub fn for_each_pool_head(mut f: impl FnMut(*mut Pool)) {
    let _list = ARENAS.lock();
    space::for_each_live_arena(|base| {
        for slot in 1..SLOTS_PER_ARENA {
            let e = Arena::entry(base as *mut Arena, slot);
            // SAFETY: a registered arena's pool table is mapped and initialised.
            if unsafe { (*e).kind() } == kind::HEAD {
                f(e);
            }
        }
    });
}

/// Gives the OS back what the arenas hold but do not use (for `malloc_trim`): the pages of
/// every free slot that may hold data, and every spare arena.  Returns the bytes given back.
pub fn trim() -> usize {
    let mut released = purge(Purge::All, ptr::null_mut());
    loop {
        let a = {
            let mut list = ARENAS.lock();
            let a = list.spare;
            // SAFETY: spare arenas are live (lock held).  One being purged stays (rare:
            // `malloc_trim` racing the aging of another thread).
            if a.is_null() || unsafe { (*a).info.purging } != 0 {
                break;
            }
            // SAFETY: spare arenas are live and linked through `info.next` (lock held).
            list.spare = unsafe { (*a).info.next };
            list.spare_count -= 1;
            list.stats.current -= 1;
            list.stats.unmapped += 1;
            space::set_live(a as usize, false);
            a
        };
        // SAFETY: the arena is on no list, not live, and holds no pool.
        unsafe { space::give_back_arena(a.cast()) };
        released += ARENA_SIZE;
    }
    released
}

/// Which of an arena's free slots holding data `purge` decommits.
#[derive(Clone, Copy)]
enum Purge {
    /// Every one (too many have gathered, or `malloc_trim`).
    All,
    /// Those released at least `delay` ticks before tick `now`.
    ReleasedBefore { now: u8, delay: u8 },
}

/// A run of an arena's free slots holding data, taken out of circulation for `purge`.
#[derive(Clone, Copy)]
struct PurgeRun {
    arena: *mut Arena,
    first: usize,
    n: usize,
}

/// Runs `purge` takes out of circulation at a time.
const PURGE_BATCH: usize = 16;

/// Decommits free slots that may hold data, as `which` selects, in every arena on the
/// lists, or in `only` alone when it is not null (pools are not decommitted one by one
/// when released: a system call per pool would cost churny programs dearly), runs of
/// slots in one call each.  Returns the bytes decommitted.
///
/// No system call is made with the arena lock held, where it would stall every thread
/// claiming or releasing a pool.  Under the lock, each run is taken out of circulation:
/// its `in_use` bits are set, so no claim takes it, and the arena's `purging` count keeps
/// the arena from being given back; the lock is released for the `madvise`; then, under
/// the lock again, the run is put back, clean.
fn purge(which: Purge, only: *mut Arena) -> usize {
    let mut released = 0;
    loop {
        let mut runs = [PurgeRun { arena: ptr::null_mut(), first: 0, n: 0 }; PURGE_BATCH];
        let mut count = 0;
        {
            let list = ARENAS.lock();
            for head in [list.usable, list.spare] {
                let mut a = head;
                while !a.is_null() && count < PURGE_BATCH {
                    // SAFETY: arenas on the lists are live; the lock is held.
                    unsafe {
                        if (only.is_null() || a == only) && (*a).info.dirty_free > 0 {
                            count = take_purge_runs(a, which, &mut runs, count);
                        }
                        a = (*a).info.next;
                    }
                }
            }
        }
        if count == 0 {
            return released;
        }
        let mut decommitted = [false; PURGE_BATCH];
        for (run, done) in runs[..count].iter().zip(decommitted.iter_mut()) {
            // SAFETY: the run is out of circulation: free, and claimed by nobody until
            // `put_back_purge_runs`.
            *done = unsafe { os::decommit(Arena::slot_addr(run.arena, run.first), run.n * SLOT_SIZE) };
            if *done {
                released += run.n * SLOT_SIZE;
            }
        }
        let unmap = put_back_purge_runs(&runs[..count], &decommitted);
        for a in unmap.iter().take_while(|a| !a.is_null()) {
            // SAFETY: the arena is on no list, not live, and holds no pool.
            unsafe { space::give_back_arena(a.cast()) };
        }
        if decommitted[..count].contains(&false) {
            // The kernel refused (locked pages): those slots keep their data; a later
            // round retries.
            return released;
        }
    }
}

/// Takes the runs of `a`'s free slots that `which` selects out of circulation, adding
/// them to `runs` from index `count`; returns the new count.
///
/// # Safety
/// The arena lock must be held and `a` must be live.
unsafe fn take_purge_runs(a: *mut Arena, which: Purge, runs: &mut [PurgeRun; PURGE_BATCH], mut count: usize) -> usize {
    let eligible = move |slot: usize| {
        // SAFETY: the caller holds the lock; free entries belong to nobody.
        unsafe {
            slot_is_free_and_dirty(a, slot)
                && match which {
                    Purge::All => true,
                    Purge::ReleasedBefore { now, delay } => {
                        now.wrapping_sub((*Arena::entry(a, slot)).freed_tick) >= delay
                    }
                }
        }
    };
    let mut slot = 1;
    while slot < SLOTS_PER_ARENA && count < PURGE_BATCH {
        let mut end = slot;
        while end < SLOTS_PER_ARENA && eligible(end) {
            end += 1;
        }
        if end > slot {
            let n = end - slot;
            // SAFETY: the caller's guarantee.
            unsafe {
                set_bits(&mut (*a).info.in_use, slot, n, true);
                (*a).info.purging += n as u16;
            }
            runs[count] = PurgeRun { arena: a, first: slot, n };
            count += 1;
        }
        slot = end + 1;
    }
    count
}

/// Puts runs taken by `take_purge_runs` back in circulation, clean where `decommitted`.
/// Returns the arenas this left empty that must be given back (null-terminated).
fn put_back_purge_runs(runs: &[PurgeRun], decommitted: &[bool; PURGE_BATCH]) -> [*mut Arena; PURGE_BATCH] {
    let mut unmap = [ptr::null_mut(); PURGE_BATCH];
    let mut unmapped = 0;
    let mut list = ARENAS.lock();
    for (run, &done) in runs.iter().zip(decommitted.iter()) {
        let a = run.arena;
        // SAFETY: the run's arena stayed live (its `purging` count kept it); lock held.
        unsafe {
            if done {
                for s in run.first..run.first + run.n {
                    (*Arena::entry(a, s)).dirty = false;
                }
                (*a).info.dirty_free -= run.n as u16;
            }
            set_bits(&mut (*a).info.in_use, run.first, run.n, false);
            (*a).info.purging -= run.n as u16;
            // Its last pool went back while the run was out: what `release_slots` would
            // have done then.
            if (*a).info.purging == 0 && (*a).info.free_slots == POOL_SLOTS && !list.is_spare(a) && list.retire_empty(a) {
                space::set_live(a as usize, false);
                // One arena per run at most, so there is room (`get_mut`: no panic path).
                if let Some(entry) = unmap.get_mut(unmapped) {
                    *entry = a;
                    unmapped += 1;
                }
            }
        }
    }
    unmap
}

/// True when slot `slot` of `a` belongs to no pool and may hold data.
///
/// # Safety
/// The arena lock must be held and `a` must be live.
unsafe fn slot_is_free_and_dirty(a: *mut Arena, slot: usize) -> bool {
    // SAFETY: the caller's guarantee; `slot < SLOTS_PER_ARENA` for every caller.
    unsafe {
        let in_use = ptr::addr_of!((*a).info.in_use).read();
        in_use[(slot / 64) & 3] >> (slot % 64) & 1 == 0 && (*Arena::entry(a, slot)).dirty
    }
}

/// `ms` (a `coarse_millis` reading) in aging ticks, wrapping at 256 (2.56 s): what a free
/// slot's one-byte stamp holds.  Ages are told apart only within one wrap, so `age` purges
/// every free slot when the rounds were too far apart for that (see there).
fn tick_of(ms: u64) -> u8 {
    (ms / AGING_TICK_MS) as u8
}

/// Ticks in one wrap of a slot's stamp.
const TICKS_PER_WRAP: u64 = 256;

/// One aging round (from heap maintenance): free slots released the purge delay or longer
/// ago give their pages back.  Only arenas with free slots can hold any: those on the
/// usable and spare lists.
///
/// The clock is read under the lock, and `release_pool` stamps with a reading taken
/// before it takes the lock, so no stamp is newer than `now`.  A slot still waiting was
/// younger than the delay at the previous round; if that round was more than a wrap minus
/// the delay ago, its stamp may read as young again, so every free slot is purged (at
/// worst a few freed just now, costing page faults later, never memory kept too long).
pub fn age() {
    let delay_ms = tunables::purge_delay_ms() as u64;
    let which = {
        let mut list = ARENAS.lock();
        let now_ms = os::coarse_millis();
        let since_last = now_ms.saturating_sub(list.last_aged_ms);
        list.last_aged_ms = now_ms;
        if since_last + delay_ms >= TICKS_PER_WRAP * AGING_TICK_MS {
            Purge::All
        } else {
            Purge::ReleasedBefore { now: tick_of(now_ms), delay: delay_ms.div_ceil(AGING_TICK_MS) as u8 }
        }
    };
    purge(which, ptr::null_mut());
}

/// A snapshot of the arena counters.
pub fn stats() -> ArenaStats {
    ARENAS.lock().stats
}

/// Takes the arena lock before `fork()`, so the child never inherits it held by a thread
/// that does not exist there.
pub fn lock_for_fork() {
    core::mem::forget(ARENAS.lock());
}

/// Releases the lock taken by `lock_for_fork`, in the parent and in the child.
///
/// # Safety
/// Must follow `lock_for_fork` in the same thread (or its forked child).
pub unsafe fn unlock_after_fork() {
    // SAFETY: `lock_for_fork` left the lock held and forgot its guard.
    unsafe { ARENAS.force_unlock() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_runs_of_clear_granules() {
        let mut bits = [0u64; 4];
        bits[0] = 1;
        assert_eq!(find_run(&bits, 4), Some(4), "granule 0 is the header's");
        assert_eq!(find_run(&bits, 64), Some(4));
        set_bits(&mut bits, 4, 10, true);
        assert_eq!(find_run(&bits, 4), Some(16), "a granule partly used is skipped whole");
        bits[0] = u64::MAX;
        bits[1] = u64::MAX;
        assert_eq!(find_run(&bits, 8), Some(128));
        bits[2] = 0b1010_0000;
        assert_eq!(find_run(&bits, 8), Some(136));
        bits = [u64::MAX; 4];
        assert_eq!(find_run(&bits, 4), None);
        bits[3] = 1 << 63;
        assert_eq!(find_run(&bits, 60), Some(192));
        assert_eq!(find_run(&bits, 64), None);
    }

    /// Builds a private list of fake arenas (only their headers) to test the ordering.
    #[test]
    fn list_keeps_most_used_arenas_first() {
        let mut list = ArenaList {
            usable: ptr::null_mut(),
            spare: ptr::null_mut(),
            spare_count: 0,
            last_aged_ms: 0,
            stats: ArenaStats::default(),
        };
        let mem = os::map(4 * SLOT_SIZE);
        let arenas: [*mut Arena; 4] =
            core::array::from_fn(|i| (mem as usize + i * SLOT_SIZE) as *mut Arena);
        for (i, &a) in arenas.iter().enumerate() {
            // SAFETY: each header is a fresh zeroed slot-sized piece of the mapping.
            unsafe {
                init_arena(a);
                (*a).info.free_slots = [200, 10, 100, 50][i];
                list.insert_sorted(a);
            }
        }
        let order = |list: &ArenaList| {
            let mut v = [0u32; 4];
            let mut a = list.usable;
            let mut i = 0;
            while !a.is_null() {
                // SAFETY: the fake arenas are live for the whole test.
                unsafe {
                    v[i] = (*a).info.free_slots;
                    a = (*a).info.next;
                }
                i += 1;
            }
            v
        };
        assert_eq!(order(&list), [10, 50, 100, 200]);
        // SAFETY: arenas[1] is on the list.
        unsafe {
            (*arenas[1]).info.free_slots = 150;
            list.reposition(arenas[1]);
        }
        assert_eq!(order(&list), [50, 100, 150, 200]);
        // SAFETY: arenas[0] is on the list.
        unsafe {
            (*arenas[0]).info.free_slots = 1;
            list.reposition(arenas[0]);
        }
        assert_eq!(order(&list), [1, 50, 100, 150]);
        // SAFETY: arenas[2] is on the list.
        unsafe { list.unlink(arenas[2]) };
        assert_eq!(order(&list), [1, 50, 150, 0]);
        // SAFETY: the mapping was made above and the list is dropped.
        unsafe { os::unmap(mem, 4 * SLOT_SIZE) };
    }

    #[test]
    fn pools_fill_the_most_used_arena_and_empty_arenas_are_released() {
        // A private list of three fresh arenas, so other tests cannot interfere.
        let mut list = ArenaList {
            usable: ptr::null_mut(),
            spare: ptr::null_mut(),
            spare_count: 0,
            last_aged_ms: 0,
            stats: ArenaStats { current: 3, peak: 3, mapped: 3, unmapped: 0 },
        };
        let arenas: [*mut Arena; 3] = core::array::from_fn(|_| new_arena());
        for &a in &arenas {
            assert!(!a.is_null());
            assert!(space::contains(a as usize + 5 * SLOT_SIZE));
            assert!(pool_at(a as usize + 5 * SLOT_SIZE).is_none(), "a fresh arena has no pool");
            // SAFETY: fresh arena on no list.
            unsafe { list.insert_sorted(a) };
        }
        // One small pool makes its arena the most used: the next claims go there first.
        let (first_arena, slot) = list.try_claim(4).unwrap();
        assert_eq!(slot, 4, "the header's granule is never a pool");
        let (a, s) = list.try_claim(60).unwrap();
        assert_eq!((a, s), (first_arena, 8), "claims prefer the most used arena");
        let mut claims = std::vec::Vec::new();
        claims.push((first_arena, 4, 4));
        claims.push((a, s, 60));
        // Fill everything with 60-slot pools: 4 fit in each arena's 252 slots (beside the
        // 4-slot pool in the first), and what is left takes 4-slot ones: 2 granules in the
        // first arena, 3 in the others.
        while let Some((a, s)) = list.try_claim(60) {
            claims.push((a, s, 60));
        }
        assert_eq!(claims.len(), 1 + 4 + 4 + 4);
        assert!(list.try_claim(60).is_none());
        while let Some((a, s)) = list.try_claim(4) {
            claims.push((a, s, 4));
        }
        assert_eq!(claims.len(), 13 + 2 + 3 + 3);
        let mut unmapped = 0;
        for &(a, s, n) in &claims {
            if list.release_slots(a, s, n) {
                unmapped += 1;
            }
        }
        // All three emptied: crate::config::SPARE_ARENAS kept, the rest handed back for unmapping.
        assert_eq!(unmapped, 3 - crate::config::SPARE_ARENAS);
        assert_eq!(list.spare_count, crate::config::SPARE_ARENAS);
        assert!(list.usable.is_null());
        assert_eq!(list.stats.unmapped, 3 - crate::config::SPARE_ARENAS);
        for &a in &arenas {
            // SAFETY: the private list is dropped; the arenas were never shared or live.
            unsafe { space::give_back_arena(a.cast()) };
        }
    }
}
