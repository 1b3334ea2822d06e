//! Cross-thread frees: how a block goes back to the heap that owns its pool, without a lock.
//!
//! Only the owner thread of a pool may touch the pool's free list and counts.  A thread
//! freeing a block of someone else's pool pushes the block onto the owner heap's
//! `RemoteFree` stack instead: a lock-free (Treiber) stack threaded through the blocks.
//! The owner takes the whole stack in one atomic swap when it next runs out of blocks in a
//! class (the slow path), and frees each block locally.
//!
//! ```text
//!  freeing thread                         owner thread (slow path)
//!  b.next = head          ─┐              list = head.swap(null, Acquire)
//!  CAS(head: b.next → b)   │ Release      for b in list: free_local(b)
//!  (retry on failure)     ─┘
//! ```
//!
//! Orderings: the push is a Release CAS so that everything the freeing thread did to the
//! block (including writing `b.next`) happens-before the owner reads it after its Acquire
//! swap.  The failed-CAS reload is Relaxed: it only feeds the next attempt.
//! There is no ABA problem: the consumer never pops one element, it takes the whole list,
//! so a head that is freed and pushed again cannot be mistaken for an old value.
//!
//! Heaps are never unmapped (a dead thread's heap is adopted whole by a new thread), so a
//! push to an owner that has exited is still a push to valid memory; the blocks wait
//! there for the adopter.

use core::ptr;
#[cfg(not(loom))]
use core::sync::atomic::{AtomicPtr, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicPtr, Ordering};

use crate::link::{Block, Link};

/// A multi-producer, single-consumer stack of blocks freed by other threads.
#[repr(C, align(64))] // its own cache line: other threads write it, the owner rarely reads it
pub struct RemoteFree {
    head: AtomicPtr<Block>,
}

impl RemoteFree {
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        RemoteFree { head: AtomicPtr::new(ptr::null_mut()) }
    }

    /// loom's atomics are made at run time, inside a model (`loom/`).
    #[cfg(loom)]
    pub fn new() -> Self {
        RemoteFree { head: AtomicPtr::new(ptr::null_mut()) }
    }

    /// Pushes `b` (a block this thread is freeing but does not own).
    ///
    /// # Safety
    /// `b` must be a handed-out block of a pool owned by the heap this stack belongs to,
    /// and the caller must not touch it afterwards.
    pub unsafe fn push(&self, b: *mut Block) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the block is being freed: its first word is ours to write.
            unsafe { store_word(b, Link::encode_remote(head, b)) };
            match self.head.compare_exchange_weak(head, b, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// The block after `b` on a list `take_all` returned.  Links are encoded with the free
    /// lists' secret (`link::Link::encode_remote`), so a stray write into a waiting block
    /// decodes to an address the collector's checks refuse.
    ///
    /// # Safety
    /// `b` must be a block taken with `take_all` and not yet freed locally.
    pub unsafe fn next_of(b: *mut Block) -> *mut Block {
        // SAFETY: the caller's guarantee: the first word is the link written by `push`.
        Link::decode_remote(unsafe { load_word(b) }, b)
    }

    /// Takes every block pushed so far; the owner frees them locally.
    pub fn take_all(&self) -> *mut Block {
        if self.head.load(Ordering::Relaxed).is_null() {
            return ptr::null_mut(); // the common case costs no read-modify-write
        }
        self.head.swap(ptr::null_mut(), Ordering::Acquire)
    }
}

/// The first word of block `b`, where a block on the stack keeps its link: a plain load.
/// Under loom (`loom/`) a block is a `loom::cell::UnsafeCell<usize>`, so that the model
/// checks every read of a link is ordered after the write it reads (the push's Release CAS,
/// the collector's Acquire swap).
///
/// # Safety
/// `b` must be a block whose first word is readable.
#[cfg(not(loom))]
#[inline(always)]
unsafe fn load_word(b: *mut Block) -> usize {
    // SAFETY: the caller's guarantee.
    unsafe { b.cast::<usize>().read() }
}

/// Writes the first word of block `b` (see `load_word`).
///
/// # Safety
/// `b` must be a block whose first word the caller may write.
#[cfg(not(loom))]
#[inline(always)]
unsafe fn store_word(b: *mut Block, word: usize) {
    // SAFETY: the caller's guarantee.
    unsafe { b.cast::<usize>().write(word) }
}

#[cfg(loom)]
unsafe fn load_word(b: *mut Block) -> usize {
    // SAFETY: under loom, blocks are cells (see above).
    unsafe { (*b.cast::<loom::cell::UnsafeCell<usize>>()).with(|p| *p) }
}

#[cfg(loom)]
unsafe fn store_word(b: *mut Block, word: usize) {
    // SAFETY: as above.
    unsafe { (*b.cast::<loom::cell::UnsafeCell<usize>>()).with_mut(|p| *p = word) }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_pushes_are_all_collected_once() {
        const THREADS: usize = 4;
        const PER: usize = 10_000;
        let stack = Arc::new(RemoteFree::new());
        // The "blocks": one word each, addressed as plain integers across threads.
        let words: Vec<usize> = vec![0; THREADS * PER];
        let base = words.as_ptr() as usize;
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let stack = stack.clone();
                std::thread::spawn(move || {
                    for i in t * PER..(t + 1) * PER {
                        let b = (base + i * core::mem::size_of::<usize>()) as *mut Block;
                        // SAFETY: each word is pushed by exactly one thread, once; `words`
                        // outlives the threads.
                        unsafe { stack.push(b) };
                    }
                })
            })
            .collect();
        let mut seen = vec![false; THREADS * PER];
        let mut count = 0;
        let mut drain = |mut b: *mut Block| {
            while !b.is_null() {
                let i = (b as usize - base) / core::mem::size_of::<usize>();
                assert!(!seen[i], "block {i} collected twice");
                seen[i] = true;
                count += 1;
                // SAFETY: b is one of our blocks, taken from the stack.
                b = unsafe { RemoteFree::next_of(b) };
            }
        };
        for h in handles {
            drain(stack.take_all());
            h.join().unwrap();
        }
        drain(stack.take_all());
        assert_eq!(count, THREADS * PER);
        assert!(stack.take_all().is_null());
        drop(words);
    }
}
