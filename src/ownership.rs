//! The ownership map: for any address, in O(1) and without touching the address itself,
//! whether arenalloc owns it and which region (arena or large mapping) it lies in.
//!
//! Arenas all live in the arena space (`space.rs`): an address is in an arena after a
//! subtract and a compare.  Large mappings are anywhere; each starts on a 4 MiB
//! (`ARENA_SIZE`) boundary, so one entry per 4 MiB "chunk" of address space records them,
//! in a two-level radix tree over 48-bit addresses, as CPython's `address_in_range` radix
//! tree is:
//!
//! ```text
//!  address:  | 13 bits: top index | 13 bits: leaf index | 22 bits: offset in chunk |
//!  TOP[top] ──► Leaf (64 KiB, mapped on first use) ──► entry
//!  entry:    0                       not ours
//!            header     | LARGE      the chunk belongs to the large mapping at `header`
//! ```
//!
//! Leaves are installed with a compare-and-swap and never freed, so readers need no lock.
//! An entry is written before its region is handed out and cleared before the region is
//! unmapped; a reader only looks up pointers that a correct program got from us and has
//! not freed, so Acquire/Release on the entries is all the ordering needed.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::config::{ADDRESS_BITS, ARENA_SHIFT, ARENA_SIZE};
use crate::os;
use crate::space;

const LEAF_BITS: usize = 13;
const TOP_BITS: usize = ADDRESS_BITS - ARENA_SHIFT - LEAF_BITS;
const LEAF_LEN: usize = 1 << LEAF_BITS;
const TOP_LEN: usize = 1 << TOP_BITS;

const TAG_MASK: usize = 0b11;
const TAG_LARGE: usize = 0b10;

struct Leaf {
    entries: [AtomicUsize; LEAF_LEN],
}

static TOP: [AtomicPtr<Leaf>; TOP_LEN] = [const { AtomicPtr::new(ptr::null_mut()) }; TOP_LEN];

/// What the map knows of an address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Region {
    /// Not arenalloc's memory.
    Foreign,
    /// Inside the arena whose header is at this address.
    Arena(usize),
    /// Inside the large mapping whose header is at this address.
    Large(usize),
}

#[inline(always)]
fn split(addr: usize) -> Option<(usize, usize)> {
    if addr >> ADDRESS_BITS != 0 {
        return None;
    }
    let chunk = addr >> ARENA_SHIFT;
    Some((chunk >> LEAF_BITS, chunk & (LEAF_LEN - 1)))
}

/// The raw entry for `addr`'s chunk.  Indices are masked rather than range-checked: an
/// address above 2^48 aliases some chunk below, so callers must check that the entry really
/// covers `addr` (`lookup` does).
#[inline(always)]
fn entry_of(addr: usize) -> usize {
    let top = (addr >> (ARENA_SHIFT + LEAF_BITS)) & (TOP_LEN - 1);
    // SAFETY-free: `top < TOP_LEN` by the mask.
    let leaf = TOP[top].load(Ordering::Acquire);
    if leaf.is_null() {
        return 0;
    }
    // SAFETY: installed leaves are valid forever; the index is masked below LEAF_LEN.
    unsafe { (*leaf).entries.get_unchecked((addr >> ARENA_SHIFT) & (LEAF_LEN - 1)) }.load(Ordering::Acquire)
}

/// Looks up the region containing `addr`.
#[inline]
pub fn lookup(addr: usize) -> Region {
    if space::contains(addr) {
        return Region::Arena(addr & !(ARENA_SIZE - 1));
    }
    lookup_in_tree(addr)
}

/// `lookup` for whatever is not in the arena space.
#[inline(never)]
fn lookup_in_tree(addr: usize) -> Region {
    let entry = entry_of(addr);
    if entry & TAG_MASK == TAG_LARGE && addr >> ADDRESS_BITS == 0 {
        return Region::Large(entry & !TAG_MASK);
    }
    Region::Foreign
}

/// The entry slot for `addr`, installing its leaf if needed.  None when out of memory
/// or when `addr` is outside the mapped address range.
fn slot(addr: usize) -> Option<&'static AtomicUsize> {
    let (top, index) = split(addr)?;
    let mut leaf = TOP[top].load(Ordering::Acquire);
    if leaf.is_null() {
        let fresh = os::map(core::mem::size_of::<Leaf>()).cast::<Leaf>();
        if fresh.is_null() {
            return None;
        }
        // Zeroed pages are a valid all-"not ours" leaf.
        match TOP[top].compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => leaf = fresh,
            Err(winner) => {
                // SAFETY: `fresh` was never published.
                unsafe { os::unmap(fresh.cast(), core::mem::size_of::<Leaf>()) };
                leaf = winner;
            }
        }
    }
    // SAFETY: leaves are never freed; `index < LEAF_LEN`.
    Some(unsafe { (*leaf).entries.get_unchecked(index) })
}

/// Chunks `[start, start+len)` now belong to `value`'s region (or to nobody for 0).
/// Returns false (with nothing changed for a registration) when a leaf could not be mapped.
fn set_range(start: usize, len: usize, value: usize) -> bool {
    debug_assert!(start % ARENA_SIZE == 0);
    let mut chunk = start;
    let end = start + len;
    while chunk < end {
        match slot(chunk) {
            Some(s) => s.store(value, Ordering::Release),
            None => {
                if value != 0 {
                    set_range(start, chunk - start, 0);
                }
                return false;
            }
        }
        chunk += ARENA_SIZE;
    }
    true
}

/// Records a large mapping at `base` (aligned to `ARENA_SIZE`) of `len` bytes.
pub fn register_large(base: usize, len: usize) -> bool {
    set_range(base, len, base | TAG_LARGE)
}

/// Records that the chunks from `from` (aligned to `ARENA_SIZE`) up to `to` now belong to
/// the large mapping at `base` (it grew).  On failure nothing is changed.
pub fn extend_large(base: usize, from: usize, to: usize) -> bool {
    from >= to || set_range(from, to - from, base | TAG_LARGE)
}

/// Forgets the region of `len` bytes at `base` (aligned to `ARENA_SIZE`).  Call before the
/// memory is unmapped: once it is, another thread may map and register the same range.
pub fn unregister(base: usize, len: usize) {
    set_range(base, len, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_out_of_range_addresses_are_foreign() {
        assert_eq!(lookup(0), Region::Foreign);
        assert_eq!(lookup(usize::MAX), Region::Foreign);
        assert_eq!(lookup(1 << 50), Region::Foreign);
        // A stack address is never in an arena.  (It may share a 4 MiB chunk with a large
        // mapping another test made: the tree is chunk-granular, `large.rs` checks bounds.)
        let stack_var = 5u32;
        assert!(!matches!(lookup(&stack_var as *const u32 as usize), Region::Arena(_)));
    }

    #[test]
    fn registered_ranges_are_found_and_forgotten() {
        // An address range nobody maps in this test: high in the 48-bit space.
        let base = 0x7000_0000_0000usize;
        let large = base + 8 * ARENA_SIZE;
        assert!(register_large(large, 3 * ARENA_SIZE + 4096));
        for off in [0, ARENA_SIZE, 3 * ARENA_SIZE + 100] {
            assert_eq!(lookup(large + off), Region::Large(large));
        }
        assert_eq!(lookup(large + 4 * ARENA_SIZE), Region::Foreign);
        unregister(large, 3 * ARENA_SIZE + 4096);
        assert_eq!(lookup(large + ARENA_SIZE), Region::Foreign);
    }
}
