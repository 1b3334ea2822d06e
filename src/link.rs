//! Free-list links: how a free block points to the next one, encoded with a per-process
//! secret so that a stray write into a freed block is caught instead of followed.
//!
//! Pools (`pool.rs`) thread their free lists through free blocks with these links, and the
//! remote stacks (`remote.rs`) theirs, with a tweak that tells the two apart.  A module of
//! its own, using nothing of the crate: both of those use it, and the loom model of the
//! remote stacks (`loom/`) compiles it on its own.

use core::sync::atomic::{AtomicUsize, Ordering};

/// A free block: its first word links to the next free block of the same pool.
///
/// On a pool's free list the link is *encoded* (see `Link`); on a heap's remote stack
/// (`remote.rs`) it is encoded differently (`Link::encode_remote`).  A block handed out has
/// a first word of 0 until its user writes there, so an encoded link in a block being freed
/// means it is free already.
#[repr(C)]
pub struct Block {
    pub next: *mut Block,
}

/// Free-list links protected against use-after-free writes and double frees, as glibc's
/// safe-linking and mimalloc's secure mode do: a link is stored as `next ^ key ^ at`,
/// where `at` is the block holding it and `key` a per-process secret.  Every decoded link
/// is checked to be null or a block the pool has carved before it is followed, so a stray
/// write into a freed block is caught (with near certainty, since the writer does not know
/// the key) instead of making the allocator hand out memory outside the pool.  And a block whose first word decodes to such a link is on a free list
/// already: freeing it again is a double free.
pub struct Link;

/// The key always has its top bit set, so a cleared first word (0) decodes to `at ^ key`,
/// never an address in a pool: "first word decodes to a link" cannot be true of a block
/// just handed out.  (Before `set_key`, as in unit tests, a fixed key stands in.)
static LINK_KEY: AtomicUsize = AtomicUsize::new(KEY_TOP_BIT | 0x5bd1_e995_1234_5678);
const KEY_TOP_BIT: usize = 1 << (usize::BITS - 1);
const REMOTE_TWEAK: usize = 1 << (usize::BITS - 2);

impl Link {
    /// Sets the secret; called once, before the first pool exists.
    pub fn set_key(key: usize) {
        LINK_KEY.store(key | KEY_TOP_BIT, Ordering::Relaxed);
    }

    #[inline(always)]
    pub fn key() -> usize {
        LINK_KEY.load(Ordering::Relaxed)
    }

    /// The word block `at` stores to link to `next`.
    #[inline(always)]
    pub fn encode(next: *mut Block, at: *mut Block) -> usize {
        Self::encode_masked(Self::mask_of(Self::key(), at), next)
    }

    /// The block a link stored in `at` points to.
    #[inline(always)]
    pub fn decode(word: usize, at: *mut Block) -> *mut Block {
        Self::decode_masked(Self::mask_of(Self::key(), at), word)
    }

    /// The word a block on a heap's remote stack stores to link to `next`: encoded as a
    /// free-list link, then flipped in bit 62, so that read as a free-list link it decodes
    /// to no pool address and not to null.  A block waiting on a remote stack is thus not
    /// mistaken for a free one when its owner frees it (that would be a double free, caught
    /// when the owner collects the stack).
    #[inline(always)]
    pub fn encode_remote(next: *mut Block, at: *mut Block) -> usize {
        Self::encode(next, at) ^ REMOTE_TWEAK
    }

    /// The block a remote-stack link stored in `at` points to.
    #[inline(always)]
    pub fn decode_remote(word: usize, at: *mut Block) -> *mut Block {
        Self::decode(word ^ REMOTE_TWEAK, at)
    }

    /// What a link stored in `at` is encoded with: the key and the block's own address.
    /// Computed once where a block's link is both checked and written (`Pool::push_free`).
    #[inline(always)]
    pub fn mask_of(key: usize, at: *mut Block) -> usize {
        key ^ at as usize
    }

    /// A link to `next`, encoded with `mask` (`mask_of` the block that stores it).
    #[inline(always)]
    pub fn encode_masked(mask: usize, next: *mut Block) -> usize {
        next as usize ^ mask
    }

    /// The link a word encodes with `mask` (`mask_of` the block that stores it).
    #[inline(always)]
    pub fn decode_masked(mask: usize, word: usize) -> *mut Block {
        (word ^ mask) as *mut Block
    }

    /// Reads the link stored in `at`.
    ///
    /// # Safety
    /// `at` must be a block of a pool (its first word readable).
    #[inline(always)]
    pub unsafe fn read(at: *mut Block) -> *mut Block {
        // SAFETY: the caller's guarantee.
        Self::decode(unsafe { at.cast::<usize>().read() }, at)
    }

    /// Makes `at` link to `next`.
    ///
    /// # Safety
    /// `at` must be a free block of a pool (its first word writable).
    #[inline(always)]
    pub unsafe fn write(at: *mut Block, next: *mut Block) {
        // SAFETY: the caller's guarantee.
        unsafe { at.cast::<usize>().write(Self::encode(next, at)) };
    }
}
