//! Size classes: which block size serves a request, and how many slots a pool of it spans.
//!
//! ```text
//!  request (bytes)        class       block size     spacing   pool
//!  ----------------       -----       ----------     -------   ----------------------
//!     0 ..    16            0               16          16      1 slot (16 KiB)
//!    17 ..    32            1               32          16      1 slot
//!      ...                 ...             ...                  ...
//!   497 ..   512           31              512          16      1 slot       (pymalloc's range)
//!   513 ..   576           32              576          64      2 slots (32 blocks or more)
//!      ...                 ...             ...                  ...
//!   961 ..  1024           39             1024          64
//!  1025 ..  1152           40             1152         128
//!      ...   8 classes per power of two, spacing = 1/8 of the power below ...
//!  917505 .. 1048576       119          1 MiB       128 KiB      64 slots (one block)
//!  1048577 and up          —            page-rounded mapping of its own (large.rs)
//! ```
//!
//! Small classes are pymalloc's, at 16-byte spacing (every block 16-byte aligned).  Medium
//! classes keep 8 per power of two, so a block wastes at most 1/9 of itself (12.5 % of the
//! request).  Every class size is a multiple of 16, and a class size that is a multiple of
//! a power of two `a ≤ SLOT_SIZE` gives `a`-aligned blocks, since pools start on slot
//! boundaries — the aligned allocators rely on that.
//!
//! A pool spans enough slots to hold about 32 blocks (at most 256 KiB, at least one
//! block) and then grows until the tail it cannot use is at most 1/8 of the pool.

use crate::config::{
    DIRECT_MAX, GRANULE_SLOTS, MAX_POOL_SLOTS, MEDIUM_CLASSES_PER_DOUBLING, MEDIUM_MAX, MIN_ALIGN, SLOT_SIZE, SMALL_MAX,
};

/// Number of small classes (16-byte spacing up to `SMALL_MAX`).
pub const SMALL_CLASSES: usize = SMALL_MAX / MIN_ALIGN;
const SMALL_MAX_SHIFT: usize = SMALL_MAX.trailing_zeros() as usize;
const MEDIUM_MAX_SHIFT: usize = MEDIUM_MAX.trailing_zeros() as usize;
const PER_DOUBLING_SHIFT: usize = MEDIUM_CLASSES_PER_DOUBLING.trailing_zeros() as usize;
/// Total number of classes.
pub const CLASSES: usize =
    SMALL_CLASSES + (MEDIUM_MAX_SHIFT - SMALL_MAX_SHIFT) * MEDIUM_CLASSES_PER_DOUBLING;

const _: () = assert!(SMALL_MAX.is_power_of_two() && MEDIUM_MAX.is_power_of_two());
const _: () = assert!(MEDIUM_CLASSES_PER_DOUBLING.is_power_of_two());
const _: () = assert!(CLASSES <= 255, "classes are stored in a u8");

/// Block size of each class.
pub static CLASS_SIZE: [u32; CLASSES] = build_sizes();
/// Slots spanned by a pool of each class.
pub static CLASS_SLOTS: [u8; CLASSES] = build_slots();
/// Bytes of a pool of each class that its whole blocks cover (capacity × block size).
pub static CLASS_LIMIT: [u32; CLASSES] = build_limits();

const fn build_limits() -> [u32; CLASSES] {
    let mut t = [0u32; CLASSES];
    let mut c = 0;
    while c < CLASSES {
        let size = class_size_of(c);
        let pool = slots_for(size) * SLOT_SIZE;
        t[c] = (pool / size * size) as u32;
        c += 1;
    }
    t
}

/// Entries of the direct table (`Heap::alloc_direct`): one per 16 bytes up to `DIRECT_MAX`.
pub const DIRECT_SLOTS: usize = DIRECT_MAX / MIN_ALIGN;

/// The class that serves requests of `16 * i + 1 ..= 16 * (i + 1)` bytes, for each entry
/// `i` of the direct table.  Every class size is a multiple of 16, so all the sizes of an
/// entry share one class: the smallest at least `16 * (i + 1)`.
pub static DIRECT_CLASS: [u8; DIRECT_SLOTS] = {
    let mut t = [0u8; DIRECT_SLOTS];
    let mut i = 0;
    let mut class = 0;
    while i < DIRECT_SLOTS {
        while class_size_of(class) < (i + 1) * MIN_ALIGN {
            class += 1;
        }
        t[i] = class as u8;
        i += 1;
    }
    t
};

/// The entries of the direct table that `class` serves (empty above `DIRECT_MAX`, and for
/// a class that does not exist, so that no caller needs a bounds check that could panic).
pub fn direct_entries_of(class: usize) -> core::ops::Range<usize> {
    let size = match CLASS_SIZE.get(class) {
        Some(&size) if size as usize <= DIRECT_MAX => size as usize,
        _ => return 0..0,
    };
    let below = if class == 0 { 0 } else { CLASS_SIZE[class - 1] as usize };
    below / MIN_ALIGN..size / MIN_ALIGN
}

const fn class_size_of(class: usize) -> usize {
    if class < SMALL_CLASSES {
        (class + 1) * MIN_ALIGN
    } else {
        let m = class - SMALL_CLASSES;
        let k = SMALL_MAX_SHIFT + m / MEDIUM_CLASSES_PER_DOUBLING;
        let j = m % MEDIUM_CLASSES_PER_DOUBLING;
        (1 << k) + (j + 1) * (1 << (k - PER_DOUBLING_SHIFT))
    }
}

const fn build_sizes() -> [u32; CLASSES] {
    let mut t = [0u32; CLASSES];
    let mut c = 0;
    while c < CLASSES {
        t[c] = class_size_of(c) as u32;
        c += 1;
    }
    t
}

/// The smallest pool: 64 KiB, four slots, as mimalloc's small pages.  With one-slot pools
/// (16 KiB, until 2026-12-02) a program with 13 MB of small blocks had some 800 pool
/// headers, more than L1 holds beside the blocks: free missed L1 on the header about once
/// a call (cachegrind, `churn 1000000 8 512 50000`: 1.3M simulated D1 read misses in
/// free, against mimalloc's 0.7M).  A quarter as many pools took small churn from 62M to
/// 70M operations/s and larson from 94M to 110M (1 thread) and 64M to 82M (2 threads),
/// for no measurable change in peak RSS (`make bench --quick`): pools are carved a page at
/// a time, so their untouched pages cost address space only.
const MIN_POOL_BYTES: usize = 4 * SLOT_SIZE;

const fn slots_for(size: usize) -> usize {
    // Aim for ~32 blocks, at least MIN_POOL_BYTES, capped at 256 KiB worth of pool, never
    // less than one block.
    // Few blocks per pool make the slow paths frequent: a full pool goes back on its
    // heap's list once an eighth of its blocks have come back, and those few blocks are
    // soon used up.  With 8 blocks per pool, larson (8-1000 B, blocks handed between
    // threads) took a slow path every 9.4 mallocs; 32 took its instructions from 66.4M
    // to 60.8M and its simulated L2 misses from 229k to 160k (callgrind/cachegrind,
    // `larson 1 4 100000 5000 8 1000`), for no change in peak RSS: a pool is carved a page
    // at a time, so its untouched pages cost address space only.
    let mut target = size * 32;
    if target < MIN_POOL_BYTES {
        target = MIN_POOL_BYTES;
    }
    if target > 16 * SLOT_SIZE {
        target = 16 * SLOT_SIZE;
    }
    if target < size {
        target = size;
    }
    // Whole granules (see `GRANULE_SLOTS`), then grown a granule at a time until the
    // unusable tail is at most 1/8 of the pool.
    let granule = GRANULE_SLOTS * SLOT_SIZE;
    let mut n = (target + granule - 1) / granule * GRANULE_SLOTS;
    while n < MAX_POOL_SLOTS && (n * SLOT_SIZE) % size > (n * SLOT_SIZE) / 8 {
        n += GRANULE_SLOTS;
    }
    n
}

const fn build_slots() -> [u8; CLASSES] {
    let mut t = [0u8; CLASSES];
    let mut c = 0;
    while c < CLASSES {
        t[c] = slots_for(class_size_of(c)) as u8;
        c += 1;
    }
    t
}

/// Divisibility by a class size without a division, for checking that a pointer is the
/// start of a block.  Lemire, Kaser and Kurz ("Faster remainder by direct computation",
/// 2019): for a 32-bit `x` and `magic = ⌈2^64 / size⌉`, `x` is a multiple of `size` iff
/// `x * magic mod 2^64 < magic`.  One multiply and one compare against a value the pool
/// header carries, so the free path reads no table.  Offsets inside a pool are below 2^32.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Divisor(u64);

impl Divisor {
    /// The test for multiples of `size` (`size ≥ 2`: for 1, the magic would be 2^64).
    pub const fn new(size: usize) -> Self {
        assert!(size >= 2 && size <= u32::MAX as usize);
        Divisor(u64::MAX / size as u64 + 1)
    }

    /// A test no offset passes (for pools that do not exist).
    pub const NONE: Divisor = Divisor(0);

    /// True when `offset` is a multiple of the size.  Exact for offsets below 2^32 (callers
    /// check a pool bound first); taken as `usize` so the free path needs no zero-extension.
    #[inline(always)]
    pub fn divides(self, offset: usize) -> bool {
        debug_assert!(offset <= u32::MAX as usize);
        (offset as u64).wrapping_mul(self.0) < self.0
    }
}

/// Per class, the divisibility test for its block size.
pub static CLASS_DIVISOR: [Divisor; CLASSES] = {
    let mut t = [Divisor::NONE; CLASSES];
    let mut c = 0;
    while c < CLASSES {
        t[c] = Divisor::new(class_size_of(c));
        c += 1;
    }
    t
};

/// The divisibility test for `class`'s block size.
#[inline(always)]
pub fn divisor_of_class(class: usize) -> Divisor {
    debug_assert!(class < CLASSES);
    // SAFETY: class < CLASSES (see above).
    unsafe { *CLASS_DIVISOR.get_unchecked(class) }
}

/// The class serving a request of `size` bytes, for `size ≤ MEDIUM_MAX`.
#[inline(always)]
pub fn class_of(size: usize) -> usize {
    debug_assert!(size <= MEDIUM_MAX);
    if size <= SMALL_MAX {
        // 0 and 1..=16 → 0, 17..=32 → 1, ..., 497..=512 → 31.
        size.saturating_sub(1) >> 4
    } else {
        medium_class_of(size)
    }
}

#[inline]
fn medium_class_of(size: usize) -> usize {
    let s = size - 1; // exact powers of two close the class below them
    let k = usize::BITS as usize - 1 - s.leading_zeros() as usize; // floor(log2(s)), ≥ 9
    let j = (s >> (k - PER_DOUBLING_SHIFT)) - MEDIUM_CLASSES_PER_DOUBLING;
    SMALL_CLASSES + (k - SMALL_MAX_SHIFT) * MEDIUM_CLASSES_PER_DOUBLING + j
}

// The accessors below index without a bounds check: a bounds-check failure would panic,
// and a panic formats its message (allocating).  Every class value in the crate comes from
// `class_of`/`aligned_class_of` or from a pool header that `Pool::init` wrote from one, so
// `class < CLASSES` is an invariant, asserted in debug builds.

/// Block size of `class`.
#[inline(always)]
pub fn size_of_class(class: usize) -> usize {
    debug_assert!(class < CLASSES);
    // SAFETY: class < CLASSES (see above).
    unsafe { *CLASS_SIZE.get_unchecked(class) as usize }
}

/// Slots spanned by a pool of `class`.
#[inline(always)]
/// The first class whose pools span more than `slots` slots; every class after it does
/// too (checked at compile time for each use).
pub const fn first_class_with_pools_over(slots: usize) -> usize {
    let per_class = build_slots();
    let mut first = 0;
    while first < CLASSES && per_class[first] as usize <= slots {
        first += 1;
    }
    let mut c = first;
    while c < CLASSES {
        assert!(per_class[c] as usize > slots, "pool sizes are not monotonic in class");
        c += 1;
    }
    first
}

pub fn slots_of_class(class: usize) -> usize {
    debug_assert!(class < CLASSES);
    // SAFETY: class < CLASSES (see above).
    unsafe { *CLASS_SLOTS.get_unchecked(class) as usize }
}

/// The smallest class of at least `size` bytes whose blocks are all `align`-aligned, or
/// `None` when no pool class can give that alignment (then the request is large).
pub fn aligned_class_of(size: usize, align: usize) -> Option<usize> {
    if align > SLOT_SIZE || size > MEDIUM_MAX {
        return None;
    }
    let mut c = class_of(size.max(align));
    while c < CLASSES {
        if size_of_class(c) % align == 0 {
            return Some(c);
        }
        c += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_table_gives_the_class_of_every_size_it_covers() {
        for size in 1..=DIRECT_MAX {
            let i = (size - 1) / MIN_ALIGN;
            assert_eq!(DIRECT_CLASS[i] as usize, class_of(size), "size {size}");
            assert!(direct_entries_of(class_of(size)).contains(&i), "size {size}");
        }
        let covered: usize = (0..CLASSES).map(|c| direct_entries_of(c).len()).sum();
        assert_eq!(covered, DIRECT_SLOTS);
    }

    #[test]
    fn small_classes_are_16_apart() {
        assert_eq!(class_of(0), 0);
        assert_eq!(class_of(1), 0);
        assert_eq!(class_of(16), 0);
        assert_eq!(class_of(17), 1);
        assert_eq!(class_of(512), 31);
        for c in 0..SMALL_CLASSES {
            assert_eq!(size_of_class(c), (c + 1) * 16);
        }
    }

    #[test]
    fn every_size_maps_to_the_smallest_fitting_class() {
        for size in 0..=MEDIUM_MAX {
            let c = class_of(size);
            assert!(size_of_class(c) >= size, "size {size} class {c}");
            if c > 0 {
                assert!(size_of_class(c - 1) < size.max(1), "size {size} could use class {}", c - 1);
            }
        }
        assert_eq!(class_of(MEDIUM_MAX), CLASSES - 1);
        assert_eq!(size_of_class(CLASSES - 1), MEDIUM_MAX);
    }

    #[test]
    fn medium_waste_is_bounded() {
        for size in SMALL_MAX + 1..=MEDIUM_MAX {
            let block = size_of_class(class_of(size));
            // waste ≤ 1/9 of the block, i.e. ≤ 12.5 % of the request
            assert!((block - size) * 8 <= size, "size {size} block {block}");
        }
    }

    #[test]
    fn classes_are_increasing_multiples_of_16() {
        for c in 1..CLASSES {
            assert!(CLASS_SIZE[c] > CLASS_SIZE[c - 1]);
            assert_eq!(CLASS_SIZE[c] % 16, 0);
        }
    }

    #[test]
    fn pools_hold_at_least_one_block_and_waste_little() {
        for c in 0..CLASSES {
            let slots = CLASS_SLOTS[c] as usize;
            let bytes = slots * SLOT_SIZE;
            let size = size_of_class(c);
            assert!((1..=MAX_POOL_SLOTS).contains(&slots));
            assert_eq!(slots % GRANULE_SLOTS, 0, "pools span whole granules");
            assert!(bytes / size >= 1);
            assert!(bytes % size <= bytes / 8, "class {c} size {size} slots {slots}");
            if size <= SMALL_MAX {
                assert_eq!(slots * SLOT_SIZE, MIN_POOL_BYTES, "small pools are the smallest");
            }
            if size * 32 <= 16 * SLOT_SIZE {
                assert!(bytes / size >= 32, "class {c} size {size}: a pool holds at least 32 blocks");
            }
        }
    }

    #[test]
    fn divisibility_test_matches_the_remainder() {
        for c in 0..CLASSES {
            let size = size_of_class(c) as u32;
            let d = divisor_of_class(c);
            assert_eq!(d, Divisor::new(size as usize));
            let pool = CLASS_SLOTS[c] as u32 * SLOT_SIZE as u32;
            let mut x = 0;
            while x < pool {
                assert_eq!(d.divides(x as usize), x % size == 0, "class {c} offset {x}");
                x += if size > 4096 { 16 } else { 1 };
            }
            // Pointers can be off by any amount: check each side of every block boundary.
            let mut k = size;
            while k < pool {
                for x in [k - 1, k, k + 1, k + 8] {
                    assert_eq!(d.divides(x as usize), x % size == 0, "class {c} offset {x}");
                }
                k += size;
            }
            assert!(!Divisor::NONE.divides(0) && !Divisor::NONE.divides(size as usize));
        }
    }

    #[test]
    fn aligned_classes_give_aligned_blocks() {
        let mut align = 16;
        while align <= SLOT_SIZE {
            for size in [0, 1, 100, 1000, 5000, 70000] {
                let c = aligned_class_of(size, align).unwrap();
                assert!(size_of_class(c) >= size && size_of_class(c) % align == 0);
            }
            align *= 2;
        }
        assert_eq!(aligned_class_of(10, SLOT_SIZE * 2), None);
    }
}
