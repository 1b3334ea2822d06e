//! The arena space: one range of address space, reserved once, that every arena lives in,
//! and the slot map that names the pool of any address in it with one load.
//!
//! ```text
//!  start                                                          start + len
//!  ┌─────────┬─────────┬─────────┬─────────┬─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─┐
//!  │ arena 0 │ arena 1 │ (free)  │ arena 3 │  reserved: PROT_NONE         │
//!  └─────────┴─────────┴─────────┴─────────┴─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─┘
//!  ◄──────────────── span (arenas ever taken) ──────►
//!  map: one word per 64 KiB granule of the span: its pool's header, or the vacant value
//! ```
//!
//! Why one range: the free path's first question, "is this pointer one of ours, and which
//! pool is it in?", becomes a subtract, a compare and one load (`slot_entry`), instead of
//! a bitmap test and a hop through the arena's pool table.  mimalloc 3's page map and
//! scudo's primary regions answer it the same way.
//!
//! The range is reserved `PROT_NONE` and `MAP_NORESERVE` at initialisation: it costs
//! address space, not memory or commit charge.  An arena is committed (`mprotect` read-write)
//! when the arena list takes it and decommitted (fresh `PROT_NONE` pages mapped over it)
//! when it goes back, so an arena given back to the OS keeps its address range for the next
//! one, and a stray pointer into it faults.
//!
//! The map is a separate `MAP_NORESERVE` mapping, one word per granule of the range (1/8192 of
//! it), touched only where arenas were taken.  Entries below `span` are always valid (the
//! arena layer fills an arena's entries before `span` covers it), so readers need no
//! other test.
//!
//! `ulimit -v` (RLIMIT_AS) counts the whole reservation at once, and committing maps
//! nothing new, so a process under a limit set after start-up would never run out of
//! memory for small blocks.  So committing an arena checks the limit itself, counting
//! committed arenas as fresh mappings (`within_address_limit`): small blocks fail with
//! ENOMEM about where they would have without the reservation.  Under a limit set before
//! start-up, the reservation is at most a quarter of it.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use crate::config::{ARENA_SHIFT, ARENA_SIZE, GRANULE_SHIFT};
use crate::os;

/// The largest range reserved: 1 TiB, 262,144 arenas.
const MAX_RESERVE_SHIFT: usize = 40;
/// The smallest range tried before giving up (under a tight `ulimit -v`).
const MIN_RESERVE_SHIFT: usize = 28;
const MAX_ARENAS: usize = 1 << (MAX_RESERVE_SHIFT - ARENA_SHIFT);

/// Where the range is: read on every free, so kept together in one cache line.
#[repr(C, align(64))]
struct Range {
    /// First byte of the range (0 until reserved: then no address is in it).
    start: AtomicUsize,
    /// Bytes from `start` that arenas have ever been taken from: the part the map covers.
    span: AtomicUsize,
    /// The slot map: entry `i` describes slot `i` of the range.
    map: AtomicPtr<AtomicUsize>,
    /// Bytes reserved.
    len: AtomicUsize,
}

static RANGE: Range = Range {
    start: AtomicUsize::new(0),
    span: AtomicUsize::new(0),
    map: AtomicPtr::new(ptr::null_mut()),
    len: AtomicUsize::new(0),
};

/// Which arena places are taken: guarded by a lock of its own, never held across a
/// system call, taken only when an arena is committed or decommitted (see `lock_for_fork`).
struct Places {
    /// Arena places handed out at least once (`span / ARENA_SIZE`).
    high: usize,
    /// Bit `i` set iff place `i < high` is free (decommitted) and may be taken again.
    free: [u64; MAX_ARENAS / 64],
    /// Lowest word of `free` that may have a bit set.
    free_hint: usize,
}

static PLACES: spin::Mutex<Places> = spin::Mutex::new(Places { high: 0, free: [0; MAX_ARENAS / 64], free_hint: 0 });

/// Bit `i` set iff arena place `i` holds a live (committed, initialised) arena; set and
/// cleared by the arena layer under its lock, read by its walks (`for_each_live_arena`).
static LIVE: [AtomicU64; MAX_ARENAS / 64] = [const { AtomicU64::new(0) }; MAX_ARENAS / 64];

/// Bytes of arenas committed now (for the address-limit check).
static COMMITTED: AtomicUsize = AtomicUsize::new(0);

/// Reserves the range (once, at initialisation, before any arena is taken).  Tries 1 TiB,
/// then halves, down to 256 MiB; under `ulimit -v` at most a quarter of the limit.  False
/// when nothing could be reserved (every small allocation will then fail with ENOMEM).
pub fn reserve() -> bool {
    if RANGE.start.load(Ordering::Acquire) != 0 {
        return true;
    }
    let mut shift = MAX_RESERVE_SHIFT;
    if let Some(limit) = os::address_space_limit() {
        while shift > MIN_RESERVE_SHIFT && (1usize << shift) > limit / 4 {
            shift -= 1;
        }
    }
    while shift >= MIN_RESERVE_SHIFT {
        let len = 1usize << shift;
        let map_len = (len >> GRANULE_SHIFT) * core::mem::size_of::<usize>();
        let map = os::map(map_len);
        if !map.is_null() {
            let start = os::reserve_aligned(len, ARENA_SIZE);
            if !start.is_null() {
                RANGE.map.store(map.cast(), Ordering::Relaxed);
                RANGE.len.store(len, Ordering::Relaxed);
                RANGE.start.store(start as usize, Ordering::Release);
                return true;
            }
            // SAFETY: the map was just made and never published.
            unsafe { os::unmap(map, map_len) };
        }
        shift -= 1;
    }
    false
}

/// The slot-map entry for `addr`, or None when `addr` is outside the arenas ever taken.
/// The free path's whole ownership test.
#[inline(always)]
pub fn slot_entry(addr: usize) -> Option<usize> {
    let offset = addr.wrapping_sub(RANGE.start.load(Ordering::Relaxed));
    if offset >= RANGE.span.load(Ordering::Relaxed) {
        return None;
    }
    let map = RANGE.map.load(Ordering::Relaxed);
    // SAFETY: `offset < span`, and the map covers the span: its entry is mapped and valid.
    Some(unsafe { (*map.add(offset >> GRANULE_SHIFT)).load(Ordering::Acquire) })
}

/// True when `addr` lies in an arena place ever taken (it may be free now).
#[inline]
pub fn contains(addr: usize) -> bool {
    addr.wrapping_sub(RANGE.start.load(Ordering::Relaxed)) < RANGE.span.load(Ordering::Acquire)
}

/// Sets the map entries of the `len` bytes from `addr` (whole granules inside a taken
/// arena: `config::GRANULE_SLOTS`) to `value`.
pub fn set_range(addr: usize, len: usize, value: usize) {
    let map = RANGE.map.load(Ordering::Relaxed);
    let first = (addr - RANGE.start.load(Ordering::Relaxed)) >> GRANULE_SHIFT;
    let n = len >> GRANULE_SHIFT;
    debug_assert!(addr % (1 << GRANULE_SHIFT) == 0 && len % (1 << GRANULE_SHIFT) == 0);
    debug_assert!((first + n) << GRANULE_SHIFT <= RANGE.span.load(Ordering::Relaxed));
    for i in first..first + n {
        // SAFETY: the slots lie in a taken arena, inside the span the map covers.
        unsafe { (*map.add(i)).store(value, Ordering::Release) };
    }
}

/// Takes an arena place and commits it: `ARENA_SIZE` bytes of zeroed read-write memory,
/// aligned to `ARENA_SIZE`, whose map entries all read `vacant`.  Null when the range is
/// full, the OS refuses, or committing would exceed `ulimit -v`.
pub fn take_arena(vacant: usize) -> *mut u8 {
    let start = RANGE.start.load(Ordering::Acquire);
    if start == 0 || !within_address_limit() {
        return ptr::null_mut();
    }
    let Some(place) = take_place(vacant) else { return ptr::null_mut() };
    let base = (start + (place << ARENA_SHIFT)) as *mut u8;
    // SAFETY: the place is ours alone (taken under the lock) and inside the reservation.
    if !unsafe { os::protect_rw(base, ARENA_SIZE) } {
        give_back_place(place);
        return ptr::null_mut();
    }
    COMMITTED.fetch_add(ARENA_SIZE, Ordering::Relaxed);
    base
}

fn take_place(vacant: usize) -> Option<usize> {
    let mut places = PLACES.lock();
    let words = places.high.div_ceil(64);
    let mut w = places.free_hint;
    while w < words {
        // SAFETY-free indexing: `words <= MAX_ARENAS / 64`.
        let bits = places.free[w & (MAX_ARENAS / 64 - 1)];
        if bits != 0 {
            let place = w * 64 + bits.trailing_zeros() as usize;
            places.free[w & (MAX_ARENAS / 64 - 1)] &= bits - 1;
            places.free_hint = w;
            return Some(place);
        }
        w += 1;
    }
    places.free_hint = words;
    let place = places.high;
    let len = RANGE.len.load(Ordering::Relaxed);
    if (place + 1) << ARENA_SHIFT > len || place >= MAX_ARENAS {
        return None;
    }
    // A place never taken: its map entries are fresh zeros.  Fill them before the span
    // covers it, so that every entry a reader can reach is valid.
    let map = RANGE.map.load(Ordering::Relaxed);
    let first_entry = place << (ARENA_SHIFT - GRANULE_SHIFT);
    for i in first_entry..first_entry + (1 << (ARENA_SHIFT - GRANULE_SHIFT)) {
        // SAFETY: inside the map (the range holds this place, the map covers the range).
        unsafe { (*map.add(i)).store(vacant, Ordering::Relaxed) };
    }
    places.high = place + 1;
    RANGE.span.store((place + 1) << ARENA_SHIFT, Ordering::Release);
    Some(place)
}

fn give_back_place(place: usize) {
    let mut places = PLACES.lock();
    places.free[(place / 64) & (MAX_ARENAS / 64 - 1)] |= 1 << (place % 64);
    places.free_hint = places.free_hint.min(place / 64);
}

/// Decommits the arena at `base` and frees its place: its pages go back to the OS and it
/// reads as inaccessible until taken again.  Every map entry of the arena must read the
/// vacant value again (the arena layer releases each pool before).
///
/// # Safety
/// `base` must come from `take_arena`, hold nothing anyone uses, and not be marked live.
pub unsafe fn give_back_arena(base: *mut u8) {
    let start = RANGE.start.load(Ordering::Relaxed);
    // SAFETY: the caller's guarantee: the arena is ours and unused.
    if unsafe { os::unreserve_in_place(base, ARENA_SIZE) } {
        COMMITTED.fetch_sub(ARENA_SIZE, Ordering::Relaxed);
        give_back_place((base as usize - start) >> ARENA_SHIFT);
    } else {
        // The kernel refused (no memory for the mapping split).  Dropping the pages still
        // frees the memory; the place stays committed and lost, which is harmless.
        // SAFETY: as above.
        let _ = unsafe { os::decommit(base, ARENA_SIZE) };
    }
}

/// True when `addr` lies in an arena that is live (committed and registered by the arena
/// layer, `set_live`): one whose memory may be read.
pub fn in_live_arena(addr: usize) -> bool {
    if !contains(addr) {
        return false;
    }
    let place = (addr - RANGE.start.load(Ordering::Relaxed)) >> ARENA_SHIFT;
    LIVE[(place / 64) & (MAX_ARENAS / 64 - 1)].load(Ordering::Acquire) >> (place % 64) & 1 == 1
}

/// Marks the arena at `base` live (`true`, once initialised) or not (`false`, before it is
/// given back), for `for_each_live_arena`.  Called under the arena lock.
pub fn set_live(base: usize, live: bool) {
    let place = (base - RANGE.start.load(Ordering::Relaxed)) >> ARENA_SHIFT;
    let word = &LIVE[(place / 64) & (MAX_ARENAS / 64 - 1)];
    if live {
        word.fetch_or(1 << (place % 64), Ordering::Release);
    } else {
        word.fetch_and(!(1 << (place % 64)), Ordering::Release);
    }
}

/// Calls `f` with the base of every live arena.  Call under the arena lock, so that none
/// is given back meanwhile.
pub fn for_each_live_arena(mut f: impl FnMut(usize)) {
    let start = RANGE.start.load(Ordering::Acquire);
    let high = RANGE.span.load(Ordering::Acquire) >> ARENA_SHIFT;
    for (w, word) in LIVE.iter().enumerate().take(high.div_ceil(64)) {
        let mut bits = word.load(Ordering::Acquire);
        while bits != 0 {
            let place = w * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            f(start + (place << ARENA_SHIFT));
        }
    }
}

/// Bytes reserved, and committed now (statistics).
pub fn sizes() -> (usize, usize) {
    (RANGE.len.load(Ordering::Relaxed), COMMITTED.load(Ordering::Relaxed))
}

/// True when one more arena fits under `ulimit -v`.  The kernel counts the whole
/// reservation as mapped, and committing part of it maps nothing new; so a committed arena
/// is counted here as if it were a fresh mapping on top.  (This counts arenas twice, which
/// errs on the side of failing early: a limit set as "what is mapped now plus N" leaves
/// N bytes for arenas, as it would with plain `mmap`.)
fn within_address_limit() -> bool {
    let Some(limit) = os::address_space_limit() else { return true };
    let Some(mapped) = os::mapped_bytes() else { return true };
    mapped.saturating_add(COMMITTED.load(Ordering::Relaxed)).saturating_add(ARENA_SIZE) <= limit
}

/// Takes the places lock before `fork()` (see `fork.rs`).
pub fn lock_for_fork() {
    core::mem::forget(PLACES.lock());
}

/// Releases the lock `lock_for_fork` took, in the parent and in the child.
///
/// # Safety
/// Must follow `lock_for_fork` in the same thread (or its forked child).
pub unsafe fn unlock_after_fork() {
    // SAFETY: `lock_for_fork` left the lock held and forgot its guard.
    unsafe { PLACES.force_unlock() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arenas_are_aligned_zeroed_and_their_places_reused() {
        assert!(reserve());
        let vacant = 0xdead_0000usize;
        let a = take_arena(vacant);
        assert!(!a.is_null());
        assert_eq!(a as usize % ARENA_SIZE, 0);
        assert!(contains(a as usize) && contains(a as usize + ARENA_SIZE - 1));
        assert_eq!(slot_entry(a as usize + 12345), Some(vacant));
        // SAFETY: a fresh committed arena.
        unsafe {
            assert_eq!(*a.add(100), 0);
            *a.add(100) = 7;
        }
        set_range(a as usize + (3 << GRANULE_SHIFT), 2 << GRANULE_SHIFT, 42);
        assert_eq!(slot_entry(a as usize + (4 << GRANULE_SHIFT) + 5), Some(42));
        set_range(a as usize + (3 << GRANULE_SHIFT), 2 << GRANULE_SHIFT, vacant);
        // SAFETY: the arena is ours and unused.
        unsafe { give_back_arena(a) };
        // Still in the span (its entries stay valid), and taken again before any new place.
        assert_eq!(slot_entry(a as usize), Some(vacant));
        let b = take_arena(vacant);
        assert!(!b.is_null());
        // Another test may have taken the freed place first; either way, fresh memory.
        // SAFETY: a fresh committed arena.
        unsafe { assert_eq!(*b.add(100), 0) };
        // SAFETY: ours and unused.
        unsafe { give_back_arena(b) };
        assert!(!contains(0) && !contains(usize::MAX));
    }
}
