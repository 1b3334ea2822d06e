//! `fork()`: `pthread_atfork` handlers take every lock of the allocator around the fork
//! (debug mode's quarantine, the heap registry, the arena list, the arena space), so the
//! child never inherits a lock held by a thread that does not exist there.  In the child,
//! the heaps of the parent's other threads go on the abandoned list, as if those threads
//! had exited, so the child's threads adopt them, pools and all: a server forking workers
//! from a threaded master does not leak the master threads' heaps in every worker.  A heap
//! its thread was changing at the moment of the fork (which a check of its lists finds)
//! stays unused instead.
//!
//! This module sits above every module whose lock it takes, debug mode's included, so
//! none of them needs to know about fork.

use crate::{arena, debug, heap, registry, space, thread};

/// Registers the fork handlers; called from the library constructor, where calling into
/// libc functions that may themselves allocate is safe.
pub fn install_handlers() {
    // SAFETY: the handlers are plain extern "C" functions valid for the process lifetime.
    unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork_parent), Some(after_fork_child)) };
}

extern "C" fn before_fork() {
    debug::lock_for_fork();
    registry::lock_for_fork();
    arena::lock_for_fork();
    space::lock_for_fork();
}

extern "C" fn after_fork_parent() {
    // SAFETY: `before_fork` left the four locks held by this thread.
    unsafe {
        space::unlock_after_fork();
        arena::unlock_after_fork();
        registry::unlock_after_fork();
        debug::unlock_after_fork();
    }
}

extern "C" fn after_fork_child() {
    // SAFETY: the child's only thread is the one that held the locks in `before_fork`.
    unsafe {
        space::unlock_after_fork();
        arena::unlock_after_fork();
        registry::unlock_after_fork();
        debug::unlock_after_fork();
    }
    // The heaps of the parent's other threads: no thread's word points to them here, so
    // until a thread adopts one, every free into their pools is remote.
    // SAFETY: the child has no other thread yet.
    unsafe { heap::reclaim_orphans_after_fork(thread::current_heap()) };
}
