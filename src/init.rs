//! The one-time process initialisation, and the settings it fixes before the first block
//! is handed out: the free-list secret, the run-time tunables, debug mode and the fast
//! paths' limits that follow from it, the arena space, the thread-exit key.
//!
//! Initialisation is lazy and allocation-free (`ensure_init`), because the dynamic loader
//! and other libraries' constructors call malloc before our constructor runs.  Every way
//! into the heaps passes through it first: the front's slow paths (`alloc.rs`), attaching a
//! heap to a thread (`dispatch::alloc_class`), statistics and `malloc_trim`
//! (`alloc::settle_frees`).

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use crate::config::MEDIUM_MAX;
use crate::os;

const INIT_NONE: u8 = 0;
const INIT_RUNNING: u8 = 1;
/// The free-list secret, the settings and the arena space are in place: enough to serve
/// allocations, though the thread-exit key is still to come.
const INIT_CORE_READY: u8 = 2;
const INIT_DONE: u8 = 3;
static INIT_STATE: AtomicU8 = AtomicU8::new(INIT_NONE);

std::thread_local! {
    /// True on the thread that is running the initialisation, while it runs: a call back
    /// into the allocator from a function initialisation calls (an interposed `getenv`,
    /// `mmap` or `pthread_key_create` that allocates) must not wait for itself.
    static INITIALISING: Cell<bool> = const { Cell::new(false) };
}

/// Initialises the process's allocator state, once.  Allocation-free: safe before our
/// constructor runs.
///
/// Other threads wait while one initialises.  The initialising thread itself may come back
/// here, when a function it calls is interposed by something that allocates; it then goes
/// on with what is set up so far, which serves allocations from the point the arena space
/// is reserved (the thread-exit key, created last, is registered for any heap attached
/// meanwhile).  Coming back any earlier is reported and aborts: the free-list secret or the
/// settings could change under blocks already handed out, and waiting would hang for ever.
#[inline]
pub fn ensure_init() {
    if INIT_STATE.load(Ordering::Acquire) != INIT_DONE {
        init_slow();
    }
}

#[cold]
#[inline(never)]
fn init_slow() {
    if INITIALISING.get() {
        if INIT_STATE.load(Ordering::Acquire) != INIT_CORE_READY {
            crate::diag::fatal("allocator re-entered while initialising, before it could serve (an interposed getenv, getrandom or mmap that allocates?)");
        }
        return;
    }
    if INIT_STATE
        .compare_exchange(INIT_NONE, INIT_RUNNING, Ordering::Acquire, Ordering::Acquire)
        .is_ok()
    {
        INITIALISING.set(true);
        // The free-list secret and debug mode are fixed before any block is handed out.
        crate::link::Link::set_key(os::random_word());
        configure();
        // The arena space, before the first arena (failure leaves pools unavailable:
        // small allocations then fail with ENOMEM, as when memory runs out).
        crate::space::reserve();
        INIT_STATE.store(INIT_CORE_READY, Ordering::Release);
        crate::thread::create_exit_key();
        INIT_STATE.store(INIT_DONE, Ordering::Release);
        INITIALISING.set(false);
    } else {
        while INIT_STATE.load(Ordering::Acquire) != INIT_DONE {
            core::hint::spin_loop();
        }
    }
}

/// `malloc`/`calloc` take their class path for requests of 1 to `FAST_LIMIT` bytes
/// (compared as `size - 1 < limit`, so 0 takes the slow path too).  0 until
/// initialisation has read the environment (so the first call takes the slow path, which
/// initialises), then `MEDIUM_MAX`, or still 0 in debug mode, where every allocation goes
/// through `debug.rs`.  (`malloc` up to `DIRECT_MAX` needs no such gate: see
/// `heap::UNATTACHED` and `config::tunables::direct_table`.)
static FAST_LIMIT: AtomicUsize = AtomicUsize::new(0);

/// Debug mode (`ARENALLOC_DEBUG=1`, see `debug.rs`), fixed before any block exists.
static DEBUG_MODE: AtomicBool = AtomicBool::new(false);

/// Reads the settings that must be fixed before the first block is handed out.
fn configure() {
    crate::config::tunables::read_environment(os::env_usize);
    if os::env_flag(c"ARENALLOC_DEBUG") {
        DEBUG_MODE.store(true, Ordering::Relaxed);
        crate::config::tunables::disable_direct_table();
    } else {
        FAST_LIMIT.store(MEDIUM_MAX, Ordering::Relaxed);
    }
}

/// The class fast path's limit (see `FAST_LIMIT`).
#[inline(always)]
pub fn fast_limit() -> usize {
    FAST_LIMIT.load(Ordering::Relaxed)
}

/// True in debug mode.
#[inline]
pub fn debug_mode() -> bool {
    DEBUG_MODE.load(Ordering::Relaxed)
}
