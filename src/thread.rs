//! Which heap a thread uses: the thread-local heap pointer, and thread exit.  (Where heaps
//! come from and wait between threads is `registry.rs`; `fork()` is `fork.rs`; the one-time
//! process initialisation, which creates the thread-exit key here, is `init.rs`.)
//!
//! * The heap pointer is the thread's word (`os::thread_word`, initial-exec TLS on x86-64,
//!   a `const` thread local of a `Drop`-free type elsewhere), so reaching it takes two
//!   loads, never allocates, and registers no destructor with the C runtime.
//! * A thread gets its heap on its first allocation (`attach`): it adopts a heap some exited
//!   thread abandoned, pools and all, or carves a new one from registry memory (mmap'd
//!   directly, never from malloc; see `registry.rs`).  Heaps are never unmapped, so a block
//!   freed into a dead thread's heap is always a push onto valid memory.
//! * Thread exit is seen through a `pthread_key_create` destructor: the heap collects its
//!   remote frees, returns its empty pools, and goes on the abandoned list for the next
//!   thread to adopt.  Until then, any thread about to claim a new pool first tidies one
//!   abandoned heap (collects the frees that arrived since, returns pools left empty).
//!   Allocations after the destructor (from other libraries' destructors) borrow a heap per
//!   call (`with_transient_heap`).
//!
//! Initialisation (`init::ensure_init`) must have run before a thread attaches a heap:
//! callers of `heap` and `with_transient_heap` see to it.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::heap::{self, Heap};
use crate::os;

std::thread_local! {
    /// Set once the thread-exit destructor ran: later allocations (from other libraries'
    /// destructors) borrow a heap per call instead of attaching one that nobody would
    /// abandon again.
    static EXITING: Cell<bool> = const { Cell::new(false) };
}

/// The calling thread's heap, attaching one on first use.  Null when out of memory or when
/// the thread is exiting; callers then use `with_transient_heap`.  The heap pointer lives
/// in the thread's word (`os::thread_word`): null before the first allocation and after
/// the thread-exit destructor.
#[inline(always)]
pub fn heap() -> *mut Heap {
    let h = current_heap();
    if !h.is_null() {
        return h;
    }
    attach()
}

/// The calling thread's heap if it has one attached, else null.
#[inline(always)]
pub fn current_heap() -> *mut Heap {
    os::thread_word() as *mut Heap
}

#[cold]
#[inline(never)]
fn attach() -> *mut Heap {
    if EXITING.get() {
        return ptr::null_mut();
    }
    let h = heap::adopt_or_create();
    if h.is_null() {
        return h;
    }
    os::set_thread_word(h as usize);
    // Only the initialising thread, re-entered before the key exists, can attach without
    // it; `create_exit_key` registers that heap once the key is made.
    if KEY_CREATED.load(Ordering::Acquire) {
        // SAFETY: the key was created by `create_exit_key`; the value is only read back by us.
        unsafe { libc::pthread_setspecific(key(), h.cast()) };
    }
    h
}

/// The pthread key whose destructor tells us a thread is exiting.
static mut EXIT_KEY: libc::pthread_key_t = 0;
/// Set (Release) once `EXIT_KEY` holds the key.
static KEY_CREATED: AtomicBool = AtomicBool::new(false);

fn key() -> libc::pthread_key_t {
    // SAFETY: written once by `create_exit_key` before `init::ensure_init` publishes
    // INIT_DONE (Release), and every reader has observed DONE (Acquire) first: callers of
    // `heap` and `with_transient_heap` ensure initialisation.
    unsafe { EXIT_KEY }
}

/// Runs `f` on a heap lent for this one call: adopted, used, and abandoned again.  For
/// threads past their exit destructor (and as a retry when attaching ran out of memory).
/// None when no heap can be had.
#[cold]
#[inline(never)]
pub fn with_transient_heap<R>(f: impl FnOnce(&mut Heap) -> R) -> Option<R> {
    let h = heap::adopt_or_create();
    if h.is_null() {
        return None;
    }
    // SAFETY: the heap is ours until `abandon`; no other thread uses it meanwhile.
    let r = f(unsafe { &mut *h });
    heap::abandon(h);
    Some(r)
}

extern "C" fn on_thread_exit(value: *mut libc::c_void) {
    let h = value.cast::<Heap>();
    if h.is_null() {
        return;
    }
    EXITING.set(true);
    os::set_thread_word(0);
    // SAFETY: `h` was this thread's heap; no other thread uses it.
    unsafe { (*h).release_empty_pools() };
    heap::abandon(h);
}

/// Creates the thread-exit key; called once by `init::ensure_init`, before it publishes
/// that initialisation is done.
pub fn create_exit_key() {
    let mut k: libc::pthread_key_t = 0;
    // SAFETY: plain key creation; glibc keeps the first keys in static storage, so
    // creating ours this early means setting it never needs calloc.
    if unsafe { libc::pthread_key_create(&mut k, Some(on_thread_exit)) } != 0 {
        crate::diag::fatal("pthread_key_create failed: cannot track thread exit");
    }
    // SAFETY: only the initialising thread writes, before `ensure_init` publishes INIT_DONE.
    unsafe { EXIT_KEY = k };
    KEY_CREATED.store(true, Ordering::Release);
    // A heap this thread attached while the key was being made (an interposed
    // pthread_key_create that allocates) is registered now, to be abandoned at exit.
    let h = current_heap();
    if !h.is_null() {
        // SAFETY: the key was just created; the value is only read back by us.
        unsafe { libc::pthread_setspecific(k, h.cast()) };
    }
}
