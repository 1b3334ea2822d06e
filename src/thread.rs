//! Which heap a thread uses: the thread-local heap pointer, and thread exit.  (Where heaps
//! come from and wait between threads is `registry.rs`; `fork()` is `fork.rs`; the one-time
//! process initialisation, which creates the thread-exit key here, is `init.rs`.)
//!
//! * The heap pointer is a word of thread-local storage (`heap_word`, initial-exec TLS on
//!   x86-64, a `const` thread local of a `Drop`-free type elsewhere), so reaching it takes
//!   two loads, never allocates, and registers no destructor with the C runtime.  It starts
//!   at the unattached heap (`heap::UNATTACHED`), so the fast paths need no test for it.
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

std::thread_local! {
    /// Set once the thread-exit destructor ran: later allocations (from other libraries'
    /// destructors) borrow a heap per call instead of attaching one that nobody would
    /// abandon again.
    static EXITING: Cell<bool> = const { Cell::new(false) };
}

// The calling thread's heap pointer: one word per thread, which starts at the unattached
// heap (`heap::UNATTACHED`) in every new thread.  The fast paths read it without a test:
// `malloc` through the unattached heap's direct table misses and attaches a real heap;
// `free` finds that no pool is the unattached heap's.
//
// On x86-64 it is an *initial-exec* thread local defined in assembly, so reading it is two
// loads (its offset from the GOT, then `%fs:offset`).  Rust's own thread locals in a
// shared object use the general-dynamic model, a call to `__tls_get_addr` that cost a
// fifth of a malloc/free pair; stable Rust cannot ask for another model.  Initial-exec
// TLS is what mimalloc uses too: it is always available to a library that is preloaded
// or linked at start-up, and to a `dlopen`ed one while glibc's surplus of static TLS
// lasts (it reserves some for exactly this; we take 8 bytes).  Its initial value is the
// unattached heap's address: a relocation the dynamic loader applies to the TLS image
// before any thread copies it.  Elsewhere a `const` `thread_local!` of a `Drop`-free type
// stands in, its 0 read as the unattached heap.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .tdata,\"awT\",@progbits",
    ".p2align 3",
    ".globl arenalloc_thread_heap",
    ".hidden arenalloc_thread_heap",
    ".type arenalloc_thread_heap,@object",
    ".size arenalloc_thread_heap,8",
    "arenalloc_thread_heap:",
    ".quad {unattached}",
    ".popsection",
    unattached = sym heap::UNATTACHED,
);

#[cfg(not(target_arch = "x86_64"))]
std::thread_local! {
    static THREAD_HEAP: Cell<usize> = const { Cell::new(0) };
}

/// The calling thread's heap, or the unattached heap when it has none: for the fast
/// paths, which need no test (see above).
#[inline(always)]
pub fn heap_word() -> *mut Heap {
    #[cfg(target_arch = "x86_64")]
    {
        let value: usize;
        // SAFETY: reads this thread's own TLS word, defined above; the GOT entry holds its
        // offset from the thread pointer (filled in by the dynamic loader or the linker).
        unsafe {
            core::arch::asm!(
                "mov {offset}, qword ptr [rip + arenalloc_thread_heap@GOTTPOFF]",
                "mov {value}, qword ptr fs:[{offset}]",
                offset = out(reg) _,
                value = lateout(reg) value,
                options(nostack, readonly, preserves_flags)
            )
        };
        value as *mut Heap
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        match THREAD_HEAP.get() {
            0 => heap::unattached(),
            h => h as *mut Heap,
        }
    }
}

/// True when `h` is the unattached heap (a thread's word before it has a heap).
#[inline(always)]
pub fn is_unattached(h: *mut Heap) -> bool {
    h == heap::unattached()
}

/// Sets the calling thread's heap pointer (`heap::unattached()` for none).
fn set_heap_word(h: *mut Heap) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: writes this thread's own TLS word (see `heap_word`).
        unsafe {
            core::arch::asm!(
                "mov {offset}, qword ptr [rip + arenalloc_thread_heap@GOTTPOFF]",
                "mov qword ptr fs:[{offset}], {value}",
                offset = out(reg) _,
                value = in(reg) h as usize,
                options(nostack, preserves_flags)
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        THREAD_HEAP.set(h as usize)
    }
}

/// The calling thread's heap, attaching one on first use.  Null when out of memory or when
/// the thread is exiting; callers then use `with_transient_heap`.
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
    let h = heap_word();
    if is_unattached(h) {
        ptr::null_mut()
    } else {
        h
    }
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
    set_heap_word(h);
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
    set_heap_word(heap::unattached());
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

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicUsize;

    static SEEN: AtomicUsize = AtomicUsize::new(0);

    extern "C" fn report_heap_word(_: *mut libc::c_void) -> *mut libc::c_void {
        SEEN.store(heap_word() as usize, Ordering::SeqCst);
        ptr::null_mut()
    }

    #[test]
    fn a_new_thread_starts_at_the_unattached_heap() {
        // A raw pthread: nothing runs in it before the start routine that could allocate.
        let mut t: libc::pthread_t = 0;
        // SAFETY: plain thread creation and join with a start routine that only reads.
        unsafe {
            assert_eq!(libc::pthread_create(&mut t, ptr::null(), report_heap_word, ptr::null_mut()), 0);
            assert_eq!(libc::pthread_join(t, ptr::null_mut()), 0);
        }
        assert_eq!(SEEN.load(Ordering::SeqCst), heap::unattached() as usize);
        assert_ne!(heap::unattached() as usize, 0);
    }
}

