//! # arenalloc — CPython's small-object allocator, grown into a complete malloc
//!
//! arenalloc exports the C allocation ABI (`malloc`, `free`, `calloc`, `realloc`, the
//! aligned family, `malloc_usable_size`) and CPython's `PyMem_*`/`PyObject_*` family, to be
//! preloaded under existing programs or linked into new ones.
//!
//! ## Layers (top to bottom, one module each)
//!
//! Each module uses only modules in rows below its own, so no two modules depend on each
//! other (`tests/module_layers.py`, in `make test`, checks every `crate::` path against
//! this table; unit tests may reach up).
//!
//! ```text
//!  ffi/           C ABI shells: argument checks, errno              malloc(n) / free(p)
//!  stats.rs       statistics: snapshot and report (arenalloc_stats, mallinfo2, ...)
//!  fork.rs        pthread_atfork handlers: every lock below taken around fork()
//!  alloc.rs       the front: malloc/free fast paths; debug mode on the cold paths; realloc
//!  debug.rs       ARENALLOC_DEBUG=1: guards, fills, quarantine, made of core blocks
//!  dispatch.rs    the core: size → class or large; pointer → pool or large; local or remote
//!  init.rs        one-time initialisation: secret, tunables, debug mode, fast-path limits
//!  thread.rs      which heap this thread uses; thread exit; heaps lent per call
//!  heap.rs        a thread's usedpools[class] lists; fast paths; slow paths; free_target
//!  registry.rs    every heap: heap memory, the abandoned list, adoption (spinlock)
//!  remote.rs      lock-free stack of blocks freed by other threads
//!  arena.rs       4 MiB arenas carved into 16 KiB slots; the global arena list (spinlock)
//!  pool.rs        a pool: blocks of one class, free list + never-used tail; opaque owner
//!  size_class.rs  request size → class (16 B steps to 512 B, then 8 per doubling to 1 MiB)
//!  large.rs       > 1 MiB: one mapping per block, mremap for realloc
//!  ownership.rs   address → arena / large mapping / not ours, in O(1)
//!  space.rs       the reserved range every arena lives in; slot → pool map
//!  link.rs        free-list links, encoded with the process secret (Block, Link)
//!  diag.rs        one-line diagnostics on stderr, then abort()
//!  config.rs      layout constants and run-time tunables; calls nothing
//!  os.rs          every system call: mmap, munmap, madvise, mremap, write(2)
//! ```
//!
//! ## Glossary
//! * **block** — what `malloc` returns.  Blocks of a pool all have its class's size.
//! * **slot** — a 16 KiB piece of an arena; pools are made of whole slots.
//! * **pool** — one or more consecutive slots of an arena, carved into blocks of one size
//!   class and owned by one thread heap.  Its header is an entry in its arena's pool table.
//! * **arena** — a 4 MiB, 4 MiB-aligned mapping; slot 0 holds the arena header and pool table.
//! * **heap** — one per thread: per size class, the list of that thread's pools that have a
//!   free block (`usedpools`, as in CPython), and a stack of blocks other threads freed.
//! * **large block** — a request above 1 MiB (or over-aligned), in a mapping of its own.
//!
//! ## What happens on malloc / free
//! `malloc(n)` finds the class of `n` and the thread's heap (an initial-exec thread-local
//! word, see `thread::heap_word`), then pops a block off the free list of the first pool in
//! the heap's `usedpools[class]`: no lock, no atomic operation, no call.  Free-list links
//! are encoded with a per-process secret and checked before they are followed
//! (`link::Link`), so a write into a freed block is caught, not obeyed.  When that list is
//! empty, the slow path collects blocks freed by other threads, carves a never-used block,
//! or claims a fresh pool from the arenas (taking the arena-list spinlock once per pool,
//! not per block).
//!
//! `free(p)` finds `p`'s pool with a subtract, a compare and one load of the slot map
//! (`space.rs`; never trusting a pointer it did not hand out), checks `p` starts a block,
//! and pushes the block on the pool's free list when the pool's owner heap is the calling
//! thread's, or on the owner heap's remote stack otherwise.  A block whose first word
//! already decodes to a free-list link is free already: a double free, reported.  An empty pool goes back to its arena (each heap keeps one per class); an
//! empty arena goes back to the OS (a few are kept, see `config::SPARE_ARENAS`).  Large
//! blocks are mappings of their own, recycled through a small cache (`large.rs`).
//!
//! ## Rules every module lives by
//! * Nothing allocates through malloc (we *are* malloc): no `Vec`, `Box`, `String`,
//!   `format!`, no std I/O, no lazily initialised or `Drop` thread locals.  Memory for our
//!   own structures comes straight from `os::map`.
//! * Nothing panics on the allocation paths; `panic = "abort"` in every profile anyway.
//! * Every `unsafe` block says why it is sound in a `// SAFETY:` comment.

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(clippy::missing_safety_doc)] // the C-facing docs live in the header comments

pub mod alloc;
pub mod arena;
pub mod config;
pub mod debug;
pub mod diag;
pub mod dispatch;
pub mod fork;
pub mod heap;
pub mod init;
pub mod large;
pub mod link;
pub mod os;
pub mod ownership;
pub mod pool;
pub mod registry;
pub mod remote;
pub mod size_class;
pub mod space;
pub mod stats;
pub mod thread;

// The C ABI is left out of unit-test builds: a test binary exporting `malloc` would route
// the test harness's own allocations through the code under test.
#[cfg(not(test))]
pub mod ffi;

/// Runs when the library is loaded.  Initialisation does not depend on it (malloc may be
/// called before it runs); it does the parts that may themselves call malloc, which are
/// safe only once the allocator works: `pthread_atfork` and the PyMem `dlsym` lookups.
#[cfg(not(test))]
#[ctor::ctor]
fn arenalloc_constructor() {
    init::ensure_init();
    fork::install_handlers();
    ffi::pymem::resolve_next_definitions();
    if os::page_size() > config::SLOT_SIZE {
        diag::fatal("kernel page size exceeds the 16 KiB pool slot; rebuild with a larger SLOT_SHIFT");
    }
    if os::env_flag(c"ARENALLOC_STATS") {
        STATS_AT_EXIT.store(true, core::sync::atomic::Ordering::Relaxed);
    }
}

/// `ARENALLOC_STATS=1`: print the statistics report when the process exits.
#[cfg(not(test))]
static STATS_AT_EXIT: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Runs at exit (after `atexit` handlers, with the other shared objects' destructors).
#[cfg(not(test))]
#[ctor::dtor]
fn arenalloc_destructor() {
    if STATS_AT_EXIT.load(core::sync::atomic::Ordering::Relaxed) {
        stats::print(&stats::snapshot());
    }
}
