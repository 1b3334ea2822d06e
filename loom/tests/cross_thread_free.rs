//! The cross-thread free protocol (`src/remote.rs`), model-checked with loom: a thread
//! freeing a block of another thread's heap pushes it on that heap's remote stack, and the
//! owner takes the whole stack when it collects.  loom runs every interleaving of the
//! threads' atomic operations (and, for each load, every value the memory model allows), so
//! a lost push, a block collected twice or a link read before it was published fails here.
//!
//! The library's own `link.rs` and `remote.rs` are compiled into this test, with loom's
//! atomics (`--cfg loom`).  Blocks are loom cells from the system allocator: this binary
//! does not link the library's `malloc`.

#[path = "../../src/link.rs"]
#[allow(dead_code)]
mod link;
#[path = "../../src/remote.rs"]
#[allow(dead_code)]
mod remote;

use link::Block;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use remote::RemoteFree;

/// `N` blocks, each a loom cell standing for a block's first word (see `remote.rs`'s
/// `load_word`), handed between threads as addresses.
struct Blocks<const N: usize> {
    words: Box<[UnsafeCell<usize>; N]>,
}

// SAFETY: the cells are only reached through the protocol under test, which loom checks.
unsafe impl<const N: usize> Send for Blocks<N> {}
// SAFETY: as above.
unsafe impl<const N: usize> Sync for Blocks<N> {}

impl<const N: usize> Blocks<N> {
    fn new() -> Self {
        Blocks { words: Box::new(core::array::from_fn(|_| UnsafeCell::new(0))) }
    }
    fn block(&self, i: usize) -> usize {
        &self.words[i] as *const UnsafeCell<usize> as usize
    }
    /// Index of block `b`, which must be one of ours (what the owner's collector checks
    /// of every block before it trusts its link).
    fn index(&self, b: *mut Block) -> usize {
        (0..N).find(|&i| self.block(i) == b as usize).unwrap_or_else(|| panic!("collected {b:?}, not one of the blocks: a corrupt link"))
    }
}

/// Walks a list `take_all` returned, counting each block in `seen`.
fn collect<const N: usize>(blocks: &Blocks<N>, mut b: *mut Block, seen: &mut [u32; N]) {
    while !b.is_null() {
        seen[blocks.index(b)] += 1;
        // SAFETY: a block of ours, taken off the stack: its link was written by its pusher
        // before the push was published.
        b = unsafe { RemoteFree::next_of(b) };
    }
}

/// Pushes block `i` of `blocks` (given as the block's address) on `stack`.
fn free_remotely(stack: &RemoteFree, block: usize) {
    // SAFETY: each block is pushed once, by one thread, and not touched after.
    unsafe { stack.push(block as *mut Block) };
}

#[test]
fn frees_racing_the_owners_collection_are_each_collected_once() {
    loom::model(|| {
        let blocks = Arc::new(Blocks::<3>::new());
        let stack = Arc::new(RemoteFree::new());
        let (b0, b1, b2) = (blocks.block(0), blocks.block(1), blocks.block(2));
        let s1 = stack.clone();
        let t1 = thread::spawn(move || {
            free_remotely(&s1, b0);
            free_remotely(&s1, b1);
        });
        let s2 = stack.clone();
        let t2 = thread::spawn(move || free_remotely(&s2, b2));
        // The owner collects while the others free (its slow path), then once more after.
        let mut seen = [0u32; 3];
        collect(&blocks, stack.take_all(), &mut seen);
        t1.join().unwrap();
        t2.join().unwrap();
        collect(&blocks, stack.take_all(), &mut seen);
        assert_eq!(seen, [1, 1, 1], "every block collected exactly once");
        assert!(stack.take_all().is_null());
    });
}

#[test]
fn frees_into_an_exiting_heap_reach_the_adopter() {
    // The owner's thread exits: its exit path collects the stack and abandons the heap
    // (publishing that with a Release store, as the registry's lock does).  A free racing
    // the exit lands either in that last collection or on the stack, where the thread that
    // adopts the heap finds it.  Heaps are never unmapped, so the late push is sound.
    loom::model(|| {
        let blocks = Arc::new(Blocks::<2>::new());
        let stack = Arc::new(RemoteFree::new());
        let abandoned = Arc::new(AtomicBool::new(false));
        let (b0, b1) = (blocks.block(0), blocks.block(1));
        let s = stack.clone();
        let freer = thread::spawn(move || {
            free_remotely(&s, b0);
            free_remotely(&s, b1);
        });
        let (s, bl, ab) = (stack.clone(), blocks.clone(), abandoned.clone());
        let owner = thread::spawn(move || {
            let mut seen = [0u32; 2];
            collect(&bl, s.take_all(), &mut seen);
            ab.store(true, Ordering::Release);
            seen
        });
        freer.join().unwrap();
        let mut seen = owner.join().unwrap();
        // The adopter.
        assert!(abandoned.load(Ordering::Acquire));
        collect(&blocks, stack.take_all(), &mut seen);
        assert_eq!(seen, [1, 1], "every block collected exactly once, none lost at exit");
    });
}
