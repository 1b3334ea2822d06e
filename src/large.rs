//! Large blocks: requests above `MEDIUM_MAX` (1 MiB), or aligned beyond what a pool can
//! give, each in a mapping of its own.
//!
//! ```text
//!  base (aligned to max(ARENA_SIZE, align))                      base + len
//!  ┌──────────────┬─────────────────┬───────────────────────────────┐
//!  │ LargeHeader  │ (untouched gap  │ user block, page-granular     │
//!  │ first page   │  when aligned)  │                               │
//!  └──────────────┴─────────────────┴───────────────────────────────┘
//!                 user = base + max(PAGE_SIZE, align)
//! ```
//!
//! The mapping starts on a 4 MiB boundary so the ownership map can record it (every chunk
//! it covers points at its header), and the header sits in its first page, away from the
//! user's block.  A mapping is never shared, so `free` is one `munmap` and `realloc` can
//! grow in place or move the pages with `mremap` instead of copying them.  Fresh mappings
//! read as zero: `calloc` of a large block touches nothing.  Mappings over 4 MiB span whole
//! huge pages and, for `malloc`, are advised to use them (`mapping_len`).
//!
//! Freed mappings up to 64 MiB are kept, resident, in a small lock-free cache (see
//! `cache`).  A new block takes a cached mapping of about its size (up to 1.5×) as it is,
//! or else the resident one closest in size, resized with `mremap` (`reuse_resized`): only
//! the pages it grows by are faulted in.  Resident cached memory goes back to the OS after the purge
//! delay, as free pool slots do.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::config::{ARENA_SIZE, PAGE_SIZE};
use crate::diag;
use crate::os::{self, round_up};
use crate::ownership;

/// The record at the start of every large mapping.
#[repr(C)]
struct LargeHeader {
    /// Length of the whole mapping, header included.
    len: usize,
    /// The address handed to the user.
    user: usize,
    /// Alignment of the mapping's base.
    base_align: usize,
    /// The block was freed and the mapping waits in the reuse cache.
    cached: bool,
}

/// Freed large mappings kept for reuse, so a program that allocates and frees big buffers
/// in a loop does not pay `mmap` + `munmap` and a page fault per page each time.
///
/// A mapping enters the cache *dirty* (its pages still resident, no system call) while the
/// dirty mappings in the cache total at most `MAX_DIRTY`; beyond that, or once it has sat
/// unused for the purge delay (`config::PURGE_DELAY_MS`, checked by `age_cache` from
/// `Heap::maintain`), its pages are replaced by fresh ones (`os::refresh`) and it stays as
/// address space only.
/// Reusing a dirty mapping costs one `mprotect` (undoing any protection its last user left
/// on it), and for `calloc` the refresh instead.  A cached mapping stays in the ownership
/// map with `cached` set in its header, so a second free of the block is still caught.
///
/// Each slot holds `base | flags | pages` (the base is 4 MiB-aligned: the low 22 bits hold
/// the length in pages, below 2^15, and two flags), or 0.  Slots are claimed and emptied
/// with compare-and-swap: no lock, so nothing to hold across `fork()`.  A taker only
/// touches a mapping after its CAS took it out of the cache.
mod cache {
    use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use crate::config::{ARENA_MASK, PAGE_SIZE};

    /// Mappings kept at most (`ARENALLOC_LARGE_CACHE` may lower it).
    const SLOTS: usize = crate::config::LARGE_CACHE_SLOTS;
    /// Largest mapping kept (bytes); bigger ones are unmapped at once.
    pub const MAX_LEN: usize = 64 << 20;
    /// Most bytes of dirty (resident) mappings the cache holds.  (64 MiB gave churn with
    /// 0.5% blocks of 1–8 MiB 1.8× the page faults.)
    pub const MAX_DIRTY: usize = 128 << 20;
    const PAGES_MASK: usize = (1 << 15) - 1;
    /// The mapping's pages hold old data (are resident).
    pub const DIRTY: usize = 1 << 20;
    const _: () = assert!(MAX_LEN / PAGE_SIZE <= PAGES_MASK && PAGES_MASK < DIRTY && DIRTY <= ARENA_MASK);

    static SLOT: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
    /// When each slot's mapping was put in (`os::coarse_millis`).  Written after the slot,
    /// so an aging round may read the previous occupant's time: at worst a mapping is
    /// purged early (costing page faults), never kept longer than the delay allows.
    static PUT_AT_MS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
    /// Bytes of the dirty mappings in the cache (an estimate while puts and takes race).
    static DIRTY_BYTES: AtomicUsize = AtomicUsize::new(0);

    fn len_of(entry: usize) -> usize {
        (entry & PAGES_MASK) * PAGE_SIZE
    }

    /// Room for `len` more dirty bytes?
    pub fn dirty_room(len: usize) -> bool {
        DIRTY_BYTES.load(Ordering::Relaxed) + len <= MAX_DIRTY
    }

    /// Offers the mapping at `base` of `len` bytes (`dirty`: its pages still resident);
    /// false when the cache is full.
    pub fn put(base: usize, len: usize, dirty: bool) -> bool {
        let entry = base | (len / PAGE_SIZE) | if dirty { DIRTY } else { 0 };
        // Counted before it can be taken (taking subtracts), so the count never wraps.
        if dirty {
            DIRTY_BYTES.fetch_add(len, Ordering::Relaxed);
        }
        let slots = SLOT.iter().zip(PUT_AT_MS.iter()).take(crate::config::tunables::large_cache_slots());
        for (s, put_at) in slots {
            if s.compare_exchange(0, entry, Ordering::Release, Ordering::Relaxed).is_ok() {
                if dirty {
                    put_at.store(crate::os::coarse_millis(), Ordering::Relaxed);
                }
                return true;
            }
        }
        if dirty {
            DIRTY_BYTES.fetch_sub(len, Ordering::Relaxed);
        }
        false
    }

    fn took(entry: usize) -> (usize, usize, bool) {
        let dirty = entry & DIRTY != 0;
        if dirty {
            DIRTY_BYTES.fetch_sub(len_of(entry), Ordering::Relaxed);
        }
        (entry & !ARENA_MASK, len_of(entry), dirty)
    }

    /// Takes a cached mapping of at least `len` bytes and at most half as much again, to
    /// use as it is; returns its base, length and whether it is dirty.  (Anything bigger is
    /// shrunk to size, `take_dirty_nearest`.)  The excess stays resident while the block
    /// lives, but shrinking with `mremap` drops pages that the next, bigger block faults in
    /// again (zeroing them, in 2 MiB huge pages): measured 2026-12-02, allowing half
    /// instead of an eighth made bench/bigbuf (5–25 MiB buffers) 1.5× and churn with 0.5%
    /// blocks of 1–8 MiB 1.25× as fast, for 3.5% and 0.1% more peak RSS.
    pub fn take(len: usize) -> Option<(usize, usize, bool)> {
        for s in SLOT.iter() {
            let entry = s.load(Ordering::Relaxed);
            let have = len_of(entry);
            if entry != 0 && have >= len && have - len <= len / 2
                && s.compare_exchange(entry, 0, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                return Some(took(entry));
            }
        }
        None
    }

    /// Takes the dirty mapping closest in length to `len` (the fewest pages to fault in
    /// or to give back when it is resized to `len`); returns its base and length.
    pub fn take_dirty_nearest(len: usize) -> Option<(usize, usize)> {
        loop {
            let mut best: Option<(&AtomicUsize, usize)> = None;
            for s in SLOT.iter() {
                let entry = s.load(Ordering::Relaxed);
                if entry & DIRTY != 0
                    && best.map_or(true, |(_, b)| len_of(entry).abs_diff(len) < len_of(b).abs_diff(len))
                {
                    best = Some((s, entry));
                }
            }
            let (s, entry) = best?;
            if s.compare_exchange(entry, 0, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                let (base, have, _) = took(entry);
                return Some((base, have));
            }
            // Another thread took it first: look again.
        }
    }

    /// Takes any cached mapping (to give it back to the OS).
    pub fn take_any() -> Option<(usize, usize, bool)> {
        for s in SLOT.iter() {
            let entry = s.swap(0, Ordering::Acquire);
            if entry != 0 {
                return Some(took(entry));
            }
        }
        None
    }

    /// Takes out a dirty mapping put in `delay_ms` or longer before `now` (to be refreshed
    /// and put back clean by the caller).
    pub fn take_aged(now: u64, delay_ms: u64) -> Option<(usize, usize, bool)> {
        for (s, put_at) in SLOT.iter().zip(PUT_AT_MS.iter()) {
            let entry = s.load(Ordering::Relaxed);
            if entry & DIRTY != 0
                && now.saturating_sub(put_at.load(Ordering::Relaxed)) >= delay_ms
                && s.compare_exchange(entry, 0, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                return Some(took(entry));
            }
        }
        None
    }
}

fn layout(size: usize, align: usize) -> Option<(usize, usize)> {
    let offset = align.max(PAGE_SIZE);
    let len = mapping_len(size, offset)?;
    if len > isize::MAX as usize {
        return None;
    }
    Some((offset, len))
}

/// Mappings above this are advised to use transparent huge pages and span whole huge
/// pages (see `mapping_len`).
const HUGE_FROM: usize = 4 << 20;

/// The length of the mapping for a block of `size` bytes that starts `offset` bytes in:
/// whole pages, at least one (so even a 0-byte block lies inside its mapping), and above
/// `HUGE_FROM` whole huge pages.  A block that big is mostly written whole, and then its
/// last, partial huge page would fault in 4 KiB at a time, up to 511 faults, while the
/// rounding costs at most 2 MiB of a block over 4 MiB.  Measured with bench/bigbuf.c
/// (20 buffers of 5–25 MiB, zero-filled): rounding took the faults from 185k to 1.5k and
/// the time by 20%, for 8% more peak RSS (475 MB, glibc's 468 MB).
fn mapping_len(size: usize, offset: usize) -> Option<usize> {
    let len = round_up(size.max(1), PAGE_SIZE)?.checked_add(offset)?;
    if len > HUGE_FROM {
        return round_up(len, os::HUGE_PAGE_SIZE);
    }
    Some(len)
}

/// Large blocks allocated and not freed, and the bytes their mappings span (statistics).
static LIVE: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Large blocks allocated and not yet freed.
pub fn live_blocks() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Bytes of address space the live large blocks' mappings span (headers included).
pub fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// A live block's mapping changed length from `old` to `new` bytes.
fn account_resize(old: usize, new: usize) {
    if new >= old {
        LIVE_BYTES.fetch_add(new - old, Ordering::Relaxed);
    } else {
        LIVE_BYTES.fetch_sub(old - new, Ordering::Relaxed);
    }
}

/// Maps a large block of `size` bytes aligned to `align` (a power of two), zero-filled if
/// `zeroed`.  Null on failure.
pub fn alloc(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    let p = alloc_mapping(size, align, zeroed);
    if !p.is_null() {
        // A system call (or a cache hit) per large block: one more atomic is noise here.
        LIVE.fetch_add(1, Ordering::Relaxed);
    }
    p
}

fn alloc_mapping(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    let Some((offset, len)) = layout(size, align) else { return core::ptr::null_mut() };
    if offset == PAGE_SIZE {
        if let Some((base, have, dirty)) = cache::take(len) {
            let block = (base + PAGE_SIZE) as *mut u8;
            // SAFETY: the cache gave us this mapping; its block pages hold nothing live.  A
            // dirty one gets fresh pages for calloc, else just default protection back.
            let ready = !dirty
                || unsafe { if zeroed { os::refresh(block, have - PAGE_SIZE) } else { os::protect_rw(block, have - PAGE_SIZE) } };
            if !ready {
                release_mapping(base, have);
                return alloc_mapping(size, align, zeroed);
            }
            let h = base as *mut LargeHeader;
            // SAFETY: the cache gave us this mapping (header page intact, still registered).
            unsafe { h.write(LargeHeader { len: have, user: base + offset, base_align: ARENA_SIZE, cached: false }) };
            account_resize(0, have);
            return (base + offset) as *mut u8;
        }
    }
    if offset == PAGE_SIZE && !zeroed {
        if let Some(p) = reuse_resized(size, len) {
            return p;
        }
    }
    let base_align = align.max(ARENA_SIZE);
    let base = os::map_aligned(len, base_align);
    if base.is_null() {
        return base;
    }
    if len > HUGE_FROM && !zeroed {
        // Huge pages for a block malloc'd: it is about to be written, and 512 times fewer
        // page faults fill it (the mapping is 4 MiB-aligned, so every whole 2 MiB of it can
        // be one).  Not for calloc: a big zeroed block is often touched sparsely (a table
        // indexed by key), and a huge page would make each touch cost 2 MiB of memory.
        // Growing with mremap keeps the advice (the mapping's flags move with it).
        // SAFETY: the fresh mapping is ours.
        unsafe { os::advise_huge_pages(base, len) };
    }
    let h = base.cast::<LargeHeader>();
    // SAFETY: `base` is a fresh mapping of `len ≥ PAGE_SIZE` bytes.
    unsafe { h.write(LargeHeader { len, user: base as usize + offset, base_align, cached: false }) };
    if !ownership::register_large(base as usize, len) {
        // SAFETY: never published.
        unsafe { os::unmap(base, len) };
        return core::ptr::null_mut();
    }
    account_resize(0, len);
    (base as usize + offset) as *mut u8
}

/// A block of `size` bytes (a mapping of `len`) made from the resident cached mapping
/// closest in length, resized with `mremap`: growing faults in only the pages added, and a
/// move carries the resident pages along without copying them.  So a program that frees
/// big buffers and allocates others of different sizes (no cached one fits: the common
/// case) reuses their memory instead of faulting every page of each new block in again.
/// Not for `calloc`, whose block must read as zero: fresh pages cost it the same.
fn reuse_resized(size: usize, len: usize) -> Option<*mut u8> {
    let (base, have) = cache::take_dirty_nearest(len)?;
    let user = base + PAGE_SIZE;
    // SAFETY: the cache gave us this mapping; its block pages hold nothing live.
    if !unsafe { os::protect_rw(user as *mut u8, have - PAGE_SIZE) } {
        release_mapping(base, have);
        return None;
    }
    let h = base as *mut LargeHeader;
    // SAFETY: the cache gave us this mapping (header page intact, still registered).
    unsafe { h.write(LargeHeader { len: have, user, base_align: ARENA_SIZE, cached: false }) };
    account_resize(0, have);
    let p = realloc(base, user as *mut u8, size);
    if p.is_null() {
        // No address space to grow into: give it back whole and map afresh.
        account_resize(have, 0);
        release_mapping(base, have);
        return None;
    }
    Some(p)
}

/// The header of the large block `p` inside the mapping at `base`, after checking that `p`
/// is that block's start; aborts with a diagnostic naming `func` otherwise.
fn checked_header(base: usize, p: *mut u8, func: &str) -> *mut LargeHeader {
    let h = base as *mut LargeHeader;
    // SAFETY: the ownership map says a live large mapping starts at `base`.
    let (len, user, cached) = unsafe { ((*h).len, (*h).user, (*h).cached) };
    if p as usize == user && cached {
        diag::misuse(func, p, "double free: the large block is already free");
    }
    if p as usize != user {
        if (p as usize) < base + len {
            diag::misuse(func, p, "pointer into a large block, not the start of one");
        }
        diag::misuse(func, p, "pointer not allocated by arenalloc");
    }
    h
}

/// True when `p` is the start of the large block at `base`.
pub fn is_block_start(base: usize, p: *mut u8) -> bool {
    // SAFETY: the ownership map says a live large mapping starts at `base`.
    unsafe { (*(base as *const LargeHeader)).user == p as usize }
}

/// The large block at `base` and its usable size, if `p` lies inside it and it is not
/// free (for debug mode, which finds its header from the block).
pub fn block_of(base: usize, p: *mut u8) -> Option<(*mut u8, usize)> {
    // SAFETY: as above.
    let (len, user, cached) = unsafe {
        let h = base as *const LargeHeader;
        ((*h).len, (*h).user, (*h).cached)
    };
    let inside = (p as usize) >= user && (p as usize) < base + len;
    (inside && !cached).then_some((user as *mut u8, base + len - user))
}

/// True when `p` lies inside the large mapping at `base` (the rest of its last 4 MiB chunk
/// may hold somebody else's mapping).
pub fn contains(base: usize, p: usize) -> bool {
    // SAFETY: the ownership map says a live large mapping starts at `base`.
    let len = unsafe { (*(base as *const LargeHeader)).len };
    p >= base && p < base + len
}

/// Usable bytes of the large block `p`.
pub fn usable_size(base: usize, p: *mut u8, func: &str) -> usize {
    let h = checked_header(base, p, func);
    // SAFETY: checked: a live header.
    unsafe { base + (*h).len - (*h).user }
}

/// Unmaps the large block `p` (for the C function `func`, named in diagnostics).
pub fn free(base: usize, p: *mut u8, func: &str) {
    let h = checked_header(base, p, func);
    LIVE.fetch_sub(1, Ordering::Relaxed);
    // SAFETY: checked: a live header.
    let (len, user) = unsafe { ((*h).len, (*h).user) };
    account_resize(len, 0);
    // Cache it: as it is while the cache's dirty bytes allow (reuse then costs no page
    // faults), else with fresh pages over the block (`os::refresh`: zero, read-write, and
    // no longer resident).
    if user == base + PAGE_SIZE && len <= cache::MAX_LEN {
        let dirty = cache::dirty_room(len);
        // SAFETY: the block is being freed: its pages hold nothing anyone may read.
        if dirty || unsafe { os::refresh(user as *mut u8, len - PAGE_SIZE) } {
            // SAFETY: the header page is ours and untouched by the refresh.
            unsafe { (*h).cached = true };
            if cache::put(base, len, dirty) {
                return;
            }
        }
    }
    release_mapping(base, len);
}

/// Forgets and unmaps the mapping at `base` of `len` bytes.
fn release_mapping(base: usize, len: usize) {
    ownership::unregister(base, len);
    // SAFETY: the mapping is a block being freed (or a cached one we took): nobody may use
    // it any more.
    unsafe { os::unmap(base as *mut u8, len) };
}

/// One aging round of the cache (from heap maintenance; `now` from `os::coarse_millis`):
/// dirty mappings unused for the purge delay get fresh pages, so their memory goes back to
/// the OS.
pub fn age_cache(now: u64) {
    let delay_ms = crate::config::tunables::purge_delay_ms() as u64;
    while let Some((base, len, _)) = cache::take_aged(now, delay_ms) {
        // SAFETY: the cache held it: its block pages hold nothing live.
        if unsafe { os::refresh((base + PAGE_SIZE) as *mut u8, len - PAGE_SIZE) } && cache::put(base, len, false) {
            continue;
        }
        release_mapping(base, len);
    }
}

/// Unmaps every cached mapping (for `malloc_trim`); returns the bytes of address space
/// given back.
pub fn trim() -> usize {
    let mut released = 0;
    while let Some((base, len, _)) = cache::take_any() {
        release_mapping(base, len);
        released += len;
    }
    released
}

/// Resizes the large block `p` to `size` bytes, keeping its alignment: shrinks or grows the
/// mapping in place when it can, else moves its pages with `mremap`.  Returns the block's
/// new address, or null (the block unchanged) when there is no memory.
pub fn realloc(base: usize, p: *mut u8, size: usize) -> *mut u8 {
    let h = checked_header(base, p, "realloc");
    // SAFETY: checked: a live header.
    let (old_len, user, base_align) = unsafe { ((*h).len, (*h).user, (*h).base_align) };
    let offset = user - base;
    let Some(new_len) = mapping_len(size, offset) else {
        return core::ptr::null_mut();
    };
    if new_len == old_len {
        return p;
    }
    // Ownership-map order: entries for address space we give up are cleared *before* the
    // mremap that gives it up (another thread may map and register it the moment it is
    // free); entries for address space we gain are written before anyone can see the block.
    // SAFETY (all mremap calls below): `[base, base+old_len)` is exactly this block's mapping.
    let chunk_end = |addr: usize| addr.next_multiple_of(ARENA_SIZE);
    if new_len < old_len {
        let (keep_to, drop_to) = (chunk_end(base + new_len), base + old_len);
        if keep_to < drop_to {
            ownership::unregister(keep_to, drop_to - keep_to);
        }
        if unsafe { os::remap_in_place(base as *mut u8, old_len, new_len) } {
            // SAFETY: the header page is still mapped.
            unsafe { (*h).len = new_len };
            account_resize(old_len, new_len);
        } else {
            // A failed shrink leaves a bigger block: still correct.  The leaves exist, so
            // re-registering cannot fail.
            ownership::extend_large(base, keep_to, drop_to);
        }
        return p;
    }
    if unsafe { os::remap_in_place(base as *mut u8, old_len, new_len) } {
        if ownership::extend_large(base, chunk_end(base + old_len), base + new_len) {
            // SAFETY: the header page is unchanged.
            unsafe { (*h).len = new_len };
            account_resize(old_len, new_len);
            return p;
        }
        // SAFETY: shrinking back what we just grew (never registered).
        unsafe { os::remap_in_place(base as *mut u8, new_len, old_len) };
        return core::ptr::null_mut();
    }
    // Move: reserve a suitably aligned destination, then let mremap move the pages there.
    let dst = os::map_aligned(new_len, base_align);
    if dst.is_null() {
        return dst;
    }
    if !ownership::register_large(dst as usize, new_len) {
        // SAFETY: never published.
        unsafe { os::unmap(dst, new_len) };
        return core::ptr::null_mut();
    }
    ownership::unregister(base, old_len);
    if !unsafe { os::remap_to(base as *mut u8, old_len, new_len, dst) } {
        ownership::unregister(dst as usize, new_len);
        ownership::register_large(base, old_len); // the leaves exist: cannot fail
        // SAFETY: our unused reservation.
        unsafe { os::unmap(dst, new_len) };
        return core::ptr::null_mut();
    }
    let nh = dst.cast::<LargeHeader>();
    // SAFETY: the header moved with the pages.
    unsafe {
        (*nh).len = new_len;
        (*nh).user = dst as usize + offset;
    }
    account_resize(old_len, new_len);
    (dst as usize + offset) as *mut u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use ownership::Region;

    fn base_of(p: *mut u8) -> usize {
        match ownership::lookup(p as usize) {
            Region::Large(b) => b,
            r => panic!("{p:?} is {r:?}"),
        }
    }

    #[test]
    fn alloc_is_registered_aligned_and_zeroed() {
        for align in [16, PAGE_SIZE, 1 << 16, ARENA_SIZE, 2 * ARENA_SIZE] {
            // Zeroed (as calloc asks): a mapping reused from the cache may hold old data.
            let p = alloc(3 << 20, align, true);
            assert!(!p.is_null());
            assert_eq!(p as usize % align.max(PAGE_SIZE), 0);
            let base = base_of(p);
            assert!(usable_size(base, p, "test") >= 3 << 20);
            // SAFETY: 3 MiB block of ours.
            let s = unsafe { core::slice::from_raw_parts_mut(p, 3 << 20) };
            assert!(s.iter().step_by(4096).all(|&b| b == 0));
            s[(3 << 20) - 1] = 1;
            free(base, p, "test");
            // Page-aligned mappings wait (registered) in the reuse cache; others are gone.
            let expect = if align <= PAGE_SIZE { Region::Large(base) } else { Region::Foreign };
            assert_eq!(ownership::lookup(p as usize), expect);
        }
    }

    #[test]
    fn zero_byte_blocks_with_huge_alignment_lie_inside_their_mapping() {
        let p = alloc(0, 2 * ARENA_SIZE, false);
        assert_eq!(p as usize % (2 * ARENA_SIZE), 0);
        let base = base_of(p);
        assert!(contains(base, p as usize));
        assert!(usable_size(base, p, "test") >= 1);
        free(base, p, "test");
    }

    #[test]
    fn freed_mappings_are_reused_dirty_for_malloc_and_zeroed_for_calloc() {
        // Distinctive sizes so other tests running in parallel do not take our mapping.
        let size = 5 * ARENA_SIZE + 12345;
        let p = alloc(size, 16, false);
        // SAFETY: a block of `size` bytes.
        unsafe { core::ptr::write_bytes(p, 0xEE, size) };
        let base = base_of(p);
        free(base, p, "test");
        // Still registered while cached (so a second free is caught), and handed out again
        // for a request it fits: zeroed when calloc asks.
        assert_eq!(ownership::lookup(p as usize), Region::Large(base));
        let q = alloc(size - 4096, 16, true);
        assert_eq!(q, p, "the cached mapping is reused");
        // SAFETY: a block of at least `size - 4096` bytes.
        let s = unsafe { core::slice::from_raw_parts(q, size - 4096) };
        assert!(s.iter().step_by(511).all(|&b| b == 0), "calloc's reused pages read as zero");
        // SAFETY: as above.
        unsafe { core::ptr::write_bytes(q, 0xEE, size - 4096) };
        free(base_of(q), q, "test");
        // An aging round past the purge delay gives the pages back: reused then, they
        // read as zero.
        age_cache(crate::os::coarse_millis() + crate::config::tunables::purge_delay_ms() as u64);
        let r = alloc(size - 8192, 16, false);
        // (Other tests' heap maintenance ages the cache too, and may have refreshed or
        // reused the mapping meanwhile: check the pages only when we got it back.)
        if r == p {
            // SAFETY: a block of at least `size - 8192` bytes.
            let s = unsafe { core::slice::from_raw_parts(r, size - 8192) };
            assert!(s.iter().step_by(511).all(|&b| b == 0), "aged pages were given back");
        }
        free(base_of(r), r, "test");
        // A calloc less than half the cached length does not take it (a malloc may, to
        // shrink it: see the next test).
        let t = alloc(ARENA_SIZE, 16, true);
        assert_ne!(t, p);
        free(base_of(t), t, "test");
    }

    #[test]
    fn resident_mappings_are_resized_for_blocks_they_do_not_fit() {
        // Tests in parallel may take the cached mapping first (the nearest in size is taken
        // whatever its size): the reuse must be seen in one of a few tries.
        let size = 3 * ARENA_SIZE + 4321;
        let bigger = 3 * size;
        let mut carried = false;
        for _ in 0..5 {
            let p = alloc(size, 16, false);
            // SAFETY: a block of `size` bytes.
            unsafe { core::ptr::write_bytes(p, 0xAB, size) };
            free(base_of(p), p, "test");
            // Three times as big: no cached mapping fits, so the resident one is grown.
            let q = alloc(bigger, 16, false);
            assert!(!q.is_null());
            assert!(usable_size(base_of(q), q, "test") >= bigger);
            // SAFETY: a block of `bigger` bytes.
            let s = unsafe { core::slice::from_raw_parts_mut(q, bigger) };
            carried |= s[..size].iter().step_by(4093).all(|&b| b == 0xAB);
            // The pages it grew by are fresh, and all of it is usable.
            assert!(s[size.next_multiple_of(PAGE_SIZE)..].iter().step_by(4093).all(|&b| b == 0));
            s.fill(0xCD);
            // Shrinking it for a smaller malloc keeps the block whole too.
            free(base_of(q), q, "test");
            let r = alloc(size / 2, 16, false);
            // SAFETY: a block of `size / 2` bytes.
            unsafe { core::ptr::write_bytes(r, 0x11, size / 2) };
            assert!(usable_size(base_of(r), r, "test") >= size / 2);
            free(base_of(r), r, "test");
            if carried {
                break;
            }
        }
        assert!(carried, "a freed resident mapping was never reused for a bigger block");
    }

    #[test]
    fn realloc_keeps_contents_when_growing_and_shrinking() {
        let mut p = alloc(2 << 20, 16, false);
        // SAFETY: 2 MiB block of ours.
        unsafe { core::ptr::write_bytes(p, 0x5A, 2 << 20) };
        for size in [5 << 20, 20 << 20, 3 << 20, 64 << 20] {
            p = realloc(base_of(p), p, size);
            assert!(!p.is_null());
            let base = base_of(p);
            assert!(usable_size(base, p, "test") >= size);
            // SAFETY: the first 2 MiB are the original contents.
            let s = unsafe { core::slice::from_raw_parts(p, 2 << 20) };
            assert!(s.iter().step_by(997).all(|&b| b == 0x5A));
        }
        free(base_of(p), p, "test");
    }
}
