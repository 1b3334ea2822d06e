//! The heap registry: where thread heaps come from and where they wait between threads.
//!
//! * Heap memory is mapped here in chunks, directly (never from malloc), and carved into
//!   heaps; it is never unmapped, so a block freed into a dead thread's heap is always a
//!   push onto valid memory.
//! * A heap whose thread exited goes on the abandoned list; the next thread that needs a
//!   heap adopts it, pools and all.  Until then any thread about to claim a new pool first
//!   tidies one abandoned heap (`heap::tidy_abandoned_heap`), so a dead thread's memory
//!   goes back even if no thread replaces it.
//!
//! This module sits below `heap.rs`: it knows a heap only as `stride` bytes of memory with
//! a `Link` inside, which `heap.rs` converts to and from a `Heap`.  One spinlock guards it,
//! taken once per heap adopted, created, abandoned or tidied, never on an allocation path.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::os;

/// The registry's word inside every heap: its abandoned-list link (guarded by the lock).
#[repr(C)]
pub struct Link {
    next: *mut Link,
}

impl Link {
    pub const fn new() -> Link {
        Link { next: ptr::null_mut() }
    }
}

/// What `adopt_or_create` gives a thread.
pub enum Taken {
    /// A heap an exited thread abandoned: its link.
    Adopted(*mut Link),
    /// Zeroed memory for a new heap, `stride` bytes, for the caller to initialise.
    Fresh(*mut u8),
    /// Out of memory.
    Nothing,
}

/// All heaps ever made, and those waiting for a new thread.
struct Registry {
    /// Heaps of exited threads, linked through their `Link`: newly abandoned ones at the
    /// front (adopted first, their pools are the warmest), tidied ones at the back.
    abandoned: *mut Link,
    abandoned_tail: *mut Link,
    /// Unused space of the current heap chunk.
    chunk_next: *mut u8,
    chunk_left: usize,
    /// The most recently mapped chunk; each chunk's `ChunkHeader` links to the one before,
    /// so every heap ever made can be found (`reclaim_orphans`).
    chunks: *mut ChunkHeader,
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
    chunks: ptr::null_mut(),
    total: 0,
    attached: 0,
});

impl Registry {
    /// Takes the heap at the front of the abandoned list.
    fn pop_abandoned(&mut self) -> *mut Link {
        let h = self.abandoned;
        if !h.is_null() {
            // SAFETY: abandoned heaps are live; linked under the lock.
            self.abandoned = unsafe { (*h).next };
            if self.abandoned.is_null() {
                self.abandoned_tail = ptr::null_mut();
            }
        }
        h
    }

    /// Puts `h` on the abandoned list, at the front or the back.
    fn push_abandoned(&mut self, h: *mut Link, at_back: bool) {
        // SAFETY: `h` is a live heap nobody uses; linked under the lock.
        unsafe {
            if self.abandoned.is_null() {
                (*h).next = ptr::null_mut();
                self.abandoned = h;
                self.abandoned_tail = h;
            } else if at_back {
                (*h).next = ptr::null_mut();
                (*self.abandoned_tail).next = h;
                self.abandoned_tail = h;
            } else {
                (*h).next = self.abandoned;
                self.abandoned = h;
            }
        }
    }

    /// True when `h` is on the abandoned list.
    fn is_abandoned(&self, h: *mut Link) -> bool {
        let mut p = self.abandoned;
        while !p.is_null() {
            if p == h {
                return true;
            }
            // SAFETY: abandoned heaps are live; the lock is held.
            p = unsafe { (*p).next };
        }
        false
    }

    /// Carves `stride` bytes off the current chunk (which has them) for a new heap.
    fn carve(&mut self, stride: usize) -> *mut u8 {
        let h = self.chunk_next;
        // SAFETY: the chunk has at least `stride` bytes left.
        self.chunk_next = unsafe { self.chunk_next.add(stride) };
        self.chunk_left -= stride;
        self.total += 1;
        self.attached += 1;
        h
    }
}

/// Heap memory is mapped in chunks of this size (about 50 heaps each).
const HEAP_CHUNK: usize = 64 * 1024;

/// The first cache line of every heap chunk; heaps are carved after it.
#[repr(C, align(64))]
struct ChunkHeader {
    /// The chunk mapped before this one, or null.
    previous: *mut ChunkHeader,
}

const CHUNK_HEADER: usize = core::mem::size_of::<ChunkHeader>();

/// Gives a thread a heap of its own: an abandoned one, or `stride` bytes of zeroed memory
/// (heap memory is zeroed mmap) for a new one.
pub fn adopt_or_create(stride: usize) -> Taken {
    debug_assert!(stride <= HEAP_CHUNK);
    {
        let mut reg = REGISTRY.lock();
        let h = reg.pop_abandoned();
        if !h.is_null() {
            reg.attached += 1;
            ABANDONED_HEAPS.store(reg.total - reg.attached, Ordering::Relaxed);
            return Taken::Adopted(h);
        }
        if reg.chunk_left >= stride {
            return Taken::Fresh(reg.carve(stride));
        }
    }
    let chunk = os::map(HEAP_CHUNK);
    if chunk.is_null() {
        return Taken::Nothing;
    }
    let mut reg = REGISTRY.lock();
    if reg.chunk_left >= stride {
        // Another thread mapped a chunk meanwhile: use it and give ours back.
        let h = reg.carve(stride);
        drop(reg);
        // SAFETY: `chunk` was never published.
        unsafe { os::unmap(chunk, HEAP_CHUNK) };
        return Taken::Fresh(h);
    }
    let header = chunk.cast::<ChunkHeader>();
    // SAFETY: the chunk is fresh and ours; its first line is the header.
    unsafe { header.write(ChunkHeader { previous: reg.chunks }) };
    reg.chunks = header;
    // SAFETY: the chunk is larger than its header.
    reg.chunk_next = unsafe { chunk.add(CHUNK_HEADER) };
    reg.chunk_left = HEAP_CHUNK - CHUNK_HEADER;
    Taken::Fresh(reg.carve(stride))
}

/// Puts a heap the calling thread no longer uses on the abandoned list.  The caller has
/// cleared its thread word first (or never set it, for a transient heap), so from then on
/// every free into the heap's pools is remote.
pub fn abandon(h: *mut Link) {
    let mut reg = REGISTRY.lock();
    reg.push_abandoned(h, false);
    reg.attached -= 1;
    ABANDONED_HEAPS.store(reg.total - reg.attached, Ordering::Relaxed);
}

/// How many heaps wait on the abandoned list: a hint that lets `take_to_tidy` skip the
/// registry lock when there is nothing to tidy.
static ABANDONED_HEAPS: AtomicUsize = AtomicUsize::new(0);

/// Heaps waiting on the abandoned list (a hint: see `ABANDONED_HEAPS`).
pub fn abandoned_count() -> usize {
    ABANDONED_HEAPS.load(Ordering::Relaxed)
}

/// Takes the abandoned heap next in turn to be tidied off the list, or null when there is
/// none.  Off the list it is the caller's alone, until `put_back_tidied`.
pub fn take_to_tidy() -> *mut Link {
    if ABANDONED_HEAPS.load(Ordering::Relaxed) == 0 {
        return ptr::null_mut();
    }
    REGISTRY.lock().pop_abandoned()
}

/// Puts a heap `take_to_tidy` gave back on the abandoned list, at the end: heaps are tidied
/// in turn.
pub fn put_back_tidied(h: *mut Link) {
    REGISTRY.lock().push_abandoned(h, true);
}

/// In a fork child, puts on the abandoned list every heap that is neither the calling
/// thread's (`mine`, or null) nor on that list already, and that `consistent` accepts.
/// These are the heaps of the parent's other threads, which do not exist in the child:
/// without this their pools would never be used again.  A thread may have been in the
/// middle of changing its heap when the parent forked, so the caller checks each heap
/// (`consistent`) and leaves one that fails where it is, as lost as before.  `stride` is
/// the heap size given to `adopt_or_create`, `link_offset` where the `Link` lies in each
/// heap's memory.  Returns how many heaps were reclaimed.
///
/// # Safety
/// Only in a fork child, before it starts any thread: no other thread may touch any heap.
pub unsafe fn reclaim_orphans(stride: usize, link_offset: usize, mine: *mut Link, mut consistent: impl FnMut(*mut Link) -> bool) -> usize {
    let mut reg = REGISTRY.lock();
    let mut reclaimed = 0;
    let mut chunk = reg.chunks;
    let mut newest = true;
    while !chunk.is_null() {
        // The newest chunk is carved up to `chunk_next`, older ones as far as a whole
        // stride fitted.
        let first = chunk as usize + CHUNK_HEADER;
        let end = if newest { reg.chunk_next as usize } else { chunk as usize + HEAP_CHUNK };
        let mut at = first;
        while at + stride <= end {
            let h = (at + link_offset) as *mut Link;
            if h != mine && !reg.is_abandoned(h) && consistent(h) {
                reg.push_abandoned(h, true);
                reg.attached -= 1;
                reclaimed += 1;
            }
            at += stride;
        }
        newest = false;
        // SAFETY: chunk headers are written when the chunk is mapped, never unmapped.
        chunk = unsafe { (*chunk).previous };
    }
    ABANDONED_HEAPS.store(reg.total - reg.attached, Ordering::Relaxed);
    reclaimed
}

/// Heaps in existence and heaps attached to a live thread.
pub fn heap_counts() -> (usize, usize) {
    let reg = REGISTRY.lock();
    (reg.total, reg.attached)
}

/// For fork: the child must not inherit the lock held by another thread.
pub fn lock_for_fork() {
    core::mem::forget(REGISTRY.lock());
}

/// # Safety
/// Must follow `lock_for_fork` in the same thread (or its forked child).
pub unsafe fn unlock_after_fork() {
    // SAFETY: the caller's guarantee.
    unsafe { REGISTRY.force_unlock() };
}
