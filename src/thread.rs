//! Which heap a thread uses: the thread-local heap pointer, the heap registry, thread exit,
//! `fork()`, and the one-time process initialisation.
//!
//! * The heap pointer is the thread's word (`os::thread_word`, initial-exec TLS on x86-64,
//!   a `const` thread local of a `Drop`-free type elsewhere), so reaching it takes two
//!   loads, never allocates, and registers no destructor with the C runtime.
//! * A thread gets its heap on its first allocation (`attach`): it adopts a heap some exited
//!   thread abandoned, pools and all, or carves a new one from registry memory (mmap'd
//!   directly, never from malloc).  Heaps are never unmapped, so a block freed into a dead
//!   thread's heap is always a push onto valid memory.
//! * Thread exit is seen through a `pthread_key_create` destructor: the heap collects its
//!   remote frees, returns its empty pools, and goes on the abandoned list for the next
//!   thread to adopt.  Until then, any thread about to claim a new pool first tidies one
//!   abandoned heap (collects the frees that arrived since, returns pools left empty).
//!   Allocations after the destructor (from other libraries' destructors) borrow a heap per
//!   call (`with_transient_heap`).
//! * `fork()`: `pthread_atfork` handlers take the registry and arena locks around the fork,
//!   so the child never inherits a lock held by a thread that does not exist there.  Heaps
//!   of the parent's other threads stay as they were in the child: their blocks can still
//!   be freed there (remote pushes), their pools are simply not reused (nor is a heap that
//!   another thread was tidying at the moment of the fork).
//!
//! Initialisation is lazy and allocation-free (`ensure_init`), because the dynamic loader
//! and other libraries' constructors call malloc before our constructor runs.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::heap::Heap;
use crate::{arena, os};

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
    let h = take_heap();
    if h.is_null() {
        return h;
    }
    os::set_thread_word(h as usize);
    // SAFETY: the key was created by `ensure_init`; the value is only read back by us.
    unsafe { libc::pthread_setspecific(key(), h.cast()) };
    h
}

/// The pthread key whose destructor tells us a thread is exiting.
static mut EXIT_KEY: libc::pthread_key_t = 0;

fn key() -> libc::pthread_key_t {
    // SAFETY: written once by `ensure_init` before INIT_STATE becomes DONE (Release), and
    // every reader has observed DONE (Acquire) first.
    unsafe { EXIT_KEY }
}

/// Runs `f` on a heap lent for this one call: adopted, used, and abandoned again.  For
/// threads past their exit destructor (and as a retry when attaching ran out of memory).
/// None when no heap can be had.
#[cold]
#[inline(never)]
pub fn with_transient_heap<R>(f: impl FnOnce(&mut Heap) -> R) -> Option<R> {
    let h = take_heap();
    if h.is_null() {
        return None;
    }
    // SAFETY: the heap is ours until `abandon`; no other thread uses it meanwhile.
    let r = f(unsafe { &mut *h });
    abandon(h);
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
    abandon(h);
}

const INIT_NONE: u8 = 0;
const INIT_RUNNING: u8 = 1;
const INIT_DONE: u8 = 2;
static INIT_STATE: AtomicU8 = AtomicU8::new(INIT_NONE);

/// Creates the thread-exit key, once.  Allocation-free: safe before our constructor runs.
pub fn ensure_init() {
    if INIT_STATE.load(Ordering::Acquire) == INIT_DONE {
        return;
    }
    if INIT_STATE
        .compare_exchange(INIT_NONE, INIT_RUNNING, Ordering::Acquire, Ordering::Acquire)
        .is_ok()
    {
        // The free-list secret and debug mode are fixed before any block is handed out.
        crate::pool::Link::set_key(os::random_word());
        crate::alloc::configure();
        // The arena space, before the first arena (failure leaves pools unavailable:
        // small allocations then fail with ENOMEM, as when memory runs out).
        crate::space::reserve();
        let mut k: libc::pthread_key_t = 0;
        // SAFETY: plain key creation; glibc keeps the first keys in static storage, so
        // creating ours this early means setting it never needs calloc.
        if unsafe { libc::pthread_key_create(&mut k, Some(on_thread_exit)) } != 0 {
            crate::diag::fatal("pthread_key_create failed: cannot track thread exit");
        }
        // SAFETY: only this thread writes, before publishing INIT_DONE.
        unsafe { EXIT_KEY = k };
        INIT_STATE.store(INIT_DONE, Ordering::Release);
    } else {
        while INIT_STATE.load(Ordering::Acquire) != INIT_DONE {
            core::hint::spin_loop();
        }
    }
}

/// Registers the fork handlers; called from the library constructor, where calling into
/// libc functions that may themselves allocate is safe.
pub fn install_fork_handlers() {
    // SAFETY: the handlers are plain extern "C" functions valid for the process lifetime.
    unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork_parent), Some(after_fork_child)) };
}

extern "C" fn before_fork() {
    crate::debug::lock_for_fork();
    core::mem::forget(REGISTRY.lock());
    arena::lock_for_fork();
    crate::space::lock_for_fork();
}

extern "C" fn after_fork_parent() {
    // SAFETY: `before_fork` left the three locks held by this thread.
    unsafe {
        crate::space::unlock_after_fork();
        arena::unlock_after_fork();
        REGISTRY.force_unlock();
        crate::debug::unlock_after_fork();
    }
}

extern "C" fn after_fork_child() {
    // SAFETY: the child's only thread is the one that held the locks in `before_fork`.
    unsafe {
        crate::space::unlock_after_fork();
        arena::unlock_after_fork();
        REGISTRY.force_unlock();
        crate::debug::unlock_after_fork();
    }
    // The heaps of the parent's other threads stay attached to threads that do not exist
    // here: no thread's word points to them, so every free into their pools is remote, and
    // they are not on the abandoned list, so no new thread adopts one that was mid-update.
}

/// All heaps ever made, and those waiting for a new thread.
struct Registry {
    /// Heaps of exited threads, linked through `next_abandoned`: newly abandoned ones at
    /// the front (adopted first, their pools are the warmest), tidied ones at the back.
    abandoned: *mut Heap,
    abandoned_tail: *mut Heap,
    /// Unused space of the current heap chunk.
    chunk_next: *mut u8,
    chunk_left: usize,
    /// Heaps in existence, and how many are attached to live threads.
    total: usize,
    attached: usize,
}

// SAFETY: the raw pointers are only dereferenced under the registry lock (or by the one
// thread that owns the heap they point to).
unsafe impl Send for Registry {}

static REGISTRY: spin::Mutex<Registry> = spin::Mutex::new(Registry {
    abandoned: ptr::null_mut(),
    abandoned_tail: ptr::null_mut(),
    chunk_next: ptr::null_mut(),
    chunk_left: 0,
    total: 0,
    attached: 0,
});

impl Registry {
    /// Takes the heap at the front of the abandoned list.
    fn pop_abandoned(&mut self) -> *mut Heap {
        let h = self.abandoned;
        if !h.is_null() {
            // SAFETY: abandoned heaps are live; linked under the lock.
            self.abandoned = unsafe { (*h).next_abandoned };
            if self.abandoned.is_null() {
                self.abandoned_tail = ptr::null_mut();
            }
        }
        h
    }

    /// Puts `h` on the abandoned list, at the front or the back.
    fn push_abandoned(&mut self, h: *mut Heap, at_back: bool) {
        // SAFETY: `h` is a live heap nobody uses; linked under the lock.
        unsafe {
            if self.abandoned.is_null() {
                (*h).next_abandoned = ptr::null_mut();
                self.abandoned = h;
                self.abandoned_tail = h;
            } else if at_back {
                (*h).next_abandoned = ptr::null_mut();
                (*self.abandoned_tail).next_abandoned = h;
                self.abandoned_tail = h;
            } else {
                (*h).next_abandoned = self.abandoned;
                self.abandoned = h;
            }
        }
    }
}

/// Heap memory is mapped in chunks of this size (about 50 heaps each).
const HEAP_CHUNK: usize = 64 * 1024;
const HEAP_STRIDE: usize = (core::mem::size_of::<Heap>() + 63) & !63;

/// Gives the calling thread a heap of its own (adopted or new).  Null when out of memory.
fn take_heap() -> *mut Heap {
    ensure_init();
    adopt_or_create()
}

fn adopt_or_create() -> *mut Heap {
    {
        let mut reg = REGISTRY.lock();
        let h = reg.pop_abandoned();
        if !h.is_null() {
            reg.attached += 1;
            ABANDONED_HEAPS.store(reg.total - reg.attached, Ordering::Relaxed);
            return h;
        }
        if reg.chunk_left >= HEAP_STRIDE {
            return carve(&mut reg);
        }
    }
    let chunk = os::map(HEAP_CHUNK);
    if chunk.is_null() {
        return ptr::null_mut();
    }
    let mut reg = REGISTRY.lock();
    if reg.chunk_left >= HEAP_STRIDE {
        // Another thread mapped a chunk meanwhile: use it and give ours back.
        let h = carve(&mut reg);
        drop(reg);
        // SAFETY: `chunk` was never published.
        unsafe { os::unmap(chunk, HEAP_CHUNK) };
        return h;
    }
    reg.chunk_next = chunk;
    reg.chunk_left = HEAP_CHUNK;
    carve(&mut reg)
}

fn carve(reg: &mut Registry) -> *mut Heap {
    let h = reg.chunk_next.cast::<Heap>();
    // SAFETY: the chunk has at least HEAP_STRIDE bytes left; heap memory is zeroed mmap.
    unsafe {
        reg.chunk_next = reg.chunk_next.add(HEAP_STRIDE);
        Heap::init(h);
    }
    reg.chunk_left -= HEAP_STRIDE;
    reg.total += 1;
    reg.attached += 1;
    h
}

/// Puts a heap the calling thread no longer uses on the abandoned list.  The caller has
/// cleared its thread word first (or never set it, for a transient heap), so from then on
/// every free into the heap's pools is remote.
fn abandon(h: *mut Heap) {
    let mut reg = REGISTRY.lock();
    reg.push_abandoned(h, false);
    reg.attached -= 1;
    ABANDONED_HEAPS.store(reg.total - reg.attached, Ordering::Relaxed);
}

/// How many heaps wait on the abandoned list: a hint that lets `tidy_abandoned_heap` skip
/// the registry lock when there is nothing to tidy.
static ABANDONED_HEAPS: AtomicUsize = AtomicUsize::new(0);

/// Gives back what one abandoned heap no longer needs: the blocks other threads freed into
/// it since its thread exited, and the pools that left empty.  Called by any thread about
/// to claim a new pool, so a dead thread's memory returns to the arenas (and the OS) even
/// when no new thread comes to adopt its heap.  Heaps are tidied in turn (taken from the
/// front of the list, put back at the end).
pub fn tidy_abandoned_heap() {
    if ABANDONED_HEAPS.load(Ordering::Relaxed) == 0 {
        return;
    }
    let h = REGISTRY.lock().pop_abandoned();
    if h.is_null() {
        return;
    }
    // SAFETY: off the list, `h` is ours alone (it is not our thread word's heap, so even
    // our own frees into its pools go through its remote stack).
    unsafe { (*h).release_empty_pools() };
    REGISTRY.lock().push_abandoned(h, true);
}

/// Tidies every abandoned heap and collects the calling thread's own remote frees, so that
/// statistics do not count blocks that were freed but not yet collected.  (Blocks freed into
/// other live threads' heaps stay counted until their owners collect them.)
pub fn settle_frees() {
    for _ in 0..ABANDONED_HEAPS.load(Ordering::Relaxed) {
        tidy_abandoned_heap();
    }
    let h = heap();
    if !h.is_null() {
        // SAFETY: our own heap.
        unsafe { (*h).collect_remote("free") };
    }
}

/// Heaps in existence and heaps attached to a live thread.
pub fn heap_counts() -> (usize, usize) {
    let reg = REGISTRY.lock();
    (reg.total, reg.attached)
}
