//! Debug mode (`ARENALLOC_DEBUG=1`, read once at initialisation): CPython's debug hooks
//! (`PYTHONMALLOC=debug`, Objects/obmalloc.c) for every allocation, plus a quarantine.
//!
//! Each block is allocated from the core with room for a header and a trailer:
//!
//! ```text
//!  real                                   p (what the caller gets, aligned as asked)
//!  │ [0xFD padding, if over-aligned] │ Header (32 B) │ data: size bytes │ 0xFD × 16 │ (rest of
//!                                    size, serial,     fresh: 0xCD      trailer      the core
//!                                    offset, api,      freed: 0xDD                   block)
//!                                    state, 0xFD × 10
//! ```
//!
//! * Fresh data is filled with 0xCD (calloc's with zeros), so code that reads memory it
//!   never wrote sees an unmistakable pattern; freed data with 0xDD.
//! * `free` and `realloc` check the 0xFD bytes on both sides: an overrun or underrun is
//!   reported with the block's address, size and allocation serial number.
//! * The header records the API family (`malloc`, `PyMem_RawMalloc`, `PyMem_Malloc`,
//!   `PyObject_Malloc`); freeing with another family's function is reported, as CPython's
//!   debug hooks do.
//! * Freed blocks wait in a quarantine (a FIFO of `QUARANTINE_BLOCKS` blocks, at most
//!   `QUARANTINE_BYTES`) before the core gets them back; when one leaves, its 0xDD fill is
//!   checked, so a write after free is reported (with the serial of the allocation).  A
//!   second free while the block is in quarantine is a double free.
//!
//! Debug blocks are recognised on the free path without cost to the default mode: their
//! address is inside a core block, not its start, so they reach the (cold) path that
//! would otherwise report an interior pointer, which hands them here.
//!
//! Never on by default: every call takes the quarantine lock and touches whole blocks.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::config::MIN_ALIGN;
use crate::diag::Line;
use crate::dispatch;
use crate::os;

/// Which API family allocated a block (CPython's "api id").
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Api {
    /// malloc, calloc, realloc, the aligned family.
    C = b'c',
    /// PyMem_RawMalloc and friends.
    Raw = b'r',
    /// PyMem_Malloc and friends.
    Mem = b'm',
    /// PyObject_Malloc and friends.
    Obj = b'o',
}

impl Api {
    fn from_byte(b: u8) -> Option<Api> {
        match b {
            b'c' => Some(Api::C),
            b'r' => Some(Api::Raw),
            b'm' => Some(Api::Mem),
            b'o' => Some(Api::Obj),
            _ => None,
        }
    }

    fn allocator(self) -> &'static str {
        match self {
            Api::C => "malloc",
            Api::Raw => "PyMem_RawMalloc",
            Api::Mem => "PyMem_Malloc",
            Api::Obj => "PyObject_Malloc",
        }
    }
}

const CLEAN: u8 = 0xCD;
const DEAD: u8 = 0xDD;
const FORBIDDEN: u8 = 0xFD;
const HEADER: usize = 32;
const TRAILER: usize = 16;
const GUARD: usize = 10;
const STATE_LIVE: u8 = 0xA1;
const STATE_FREED: u8 = 0xF7;

/// Freed blocks held back at most (count and bytes of data).
const QUARANTINE_BLOCKS: usize = 1024;
const _: () = assert!(QUARANTINE_BLOCKS.is_power_of_two());
const QUARANTINE_BYTES: usize = 32 << 20;
/// A leaving block's fill is checked whole up to this size, else its first and last
/// `CHECK_EDGE` bytes.
const CHECK_WHOLE: usize = 64 << 10;
const CHECK_EDGE: usize = 4 << 10;

#[repr(C)]
struct Header {
    size: usize,
    serial: usize,
    /// `p - real`.
    offset: u32,
    api: u8,
    state: u8,
    guard: [u8; GUARD],
}

const _: () = assert!(core::mem::size_of::<Header>() == HEADER);

static SERIAL: AtomicUsize = AtomicUsize::new(0);

/// True in debug mode (read from the environment by `init.rs`, before any block exists).
#[inline]
pub fn enabled() -> bool {
    crate::init::debug_mode()
}

fn header(p: *mut u8) -> *mut Header {
    p.wrapping_sub(HEADER).cast()
}

/// Allocates a debug block of `size` bytes aligned to `align` for `api`.
pub fn alloc(api: Api, size: usize, align: usize, zeroed: bool) -> *mut u8 {
    let offset = HEADER.max(align);
    let Some(total) = size.checked_add(offset + TRAILER) else { return ptr::null_mut() };
    let real = if align <= MIN_ALIGN { dispatch::core_malloc(total) } else { dispatch::core_memalign(align, total) };
    if real.is_null() {
        return real;
    }
    // SAFETY: `real` is a fresh core block of at least `total` bytes; every write below
    // stays inside it.
    unsafe {
        let p = real.add(offset);
        ptr::write_bytes(real, FORBIDDEN, offset - HEADER);
        header(p).write(Header {
            size,
            serial: SERIAL.fetch_add(1, Ordering::Relaxed) + 1,
            offset: offset as u32,
            api: api as u8,
            state: STATE_LIVE,
            guard: [FORBIDDEN; GUARD],
        });
        ptr::write_bytes(p, if zeroed { 0 } else { CLEAN }, size);
        ptr::write_bytes(p.add(size), FORBIDDEN, TRAILER);
        p
    }
}

/// Checks that `p` is a live debug block and its guards are intact, on behalf of `func`
/// called through `api` (None: a query any family may make); returns its header.  Reports
/// and aborts otherwise.
fn checked(p: *mut u8, api: Option<Api>, func: &str) -> *mut Header {
    let Some((real, usable)) = dispatch::block_containing(p) else {
        crate::diag::misuse(func, p, "pointer not allocated by arenalloc");
    };
    let offset = p as usize - real as usize;
    let h = header(p);
    // SAFETY: `p - HEADER ≥ real` whenever offset ≥ HEADER; the header is only read then.
    let plausible = offset >= HEADER && unsafe {
        (*h).offset as usize == offset && (*h).size <= usable && offset + (*h).size + TRAILER <= usable
    };
    if !plausible {
        crate::diag::misuse(func, p, "pointer into a block, not the start of one (no debug header)");
    }
    // SAFETY: a plausible header of a block of `usable` bytes: every read below is inside.
    unsafe {
        let (size, serial) = ((*h).size, (*h).serial);
        if (*h).state == STATE_FREED {
            report(func, p, "double free: the block is already free", size, serial, None);
        }
        if (*h).state != STATE_LIVE {
            report(func, p, "debug header overwritten (buffer underrun?)", size, serial, None);
        }
        for i in 0..GUARD {
            let b = (*h).guard[i];
            if b != FORBIDDEN {
                let at = -((GUARD - i) as isize);
                report(func, p, "buffer underrun: bytes before the block were written", size, serial, Some((at, b)));
            }
        }
        for i in 0..TRAILER {
            let b = *p.add(size + i);
            if b != FORBIDDEN {
                report(func, p, "buffer overrun: bytes past the end of the block were written", size, serial, Some(((size + i) as isize, b)));
            }
        }
        let Some(owner) = Api::from_byte((*h).api) else {
            report(func, p, "debug header overwritten (buffer underrun?)", size, serial, None);
        };
        if api.is_some_and(|api| api != owner) {
            let mut line = Line::new();
            line.str("arenalloc: ").str(func).str("(").hex(p as usize).str("): API mismatch: block of ")
                .dec(size).str(" bytes (serial ").dec(serial).str(") was allocated by ").str(owner.allocator())
                .str("\n");
            line.write();
            os::abort();
        }
    }
    h
}

/// Reports a corrupted block and aborts: `at` is the offending byte's offset from `p` and
/// its value.
fn report(func: &str, p: *mut u8, what: &str, size: usize, serial: usize, at: Option<(isize, u8)>) -> ! {
    let mut line = Line::new();
    line.str("arenalloc: ").str(func).str("(").hex(p as usize).str("): ").str(what).str(" (block of ")
        .dec(size).str(" bytes, serial ").dec(serial).str(")");
    if let Some((offset, value)) = at {
        line.str(": byte at ").str(if offset < 0 { "-" } else { "+" }).dec(offset.unsigned_abs())
            .str(" is ").hex(value as usize);
    }
    line.str("\n").write();
    os::abort()
}

/// Frees the debug block `p` for `func` of family `api`.
pub fn free(p: *mut u8, api: Api, func: &str) {
    let h = checked(p, Some(api), func);
    // SAFETY: a checked live block: its data is `size` bytes at `p`.
    unsafe {
        ptr::write_bytes(p, DEAD, (*h).size);
        (*h).state = STATE_FREED;
    }
    quarantine::admit(p);
}

/// The usable size of the debug block `p`: exactly what was asked, so that writing past it
/// is an overrun.  Any API family may ask.
pub fn usable_size(p: *mut u8, func: &str) -> usize {
    let h = checked(p, None, func);
    // SAFETY: checked.
    unsafe { (*h).size }
}

/// Resizes the debug block `p` (a new block, the old one freed: moving every time is what
/// makes stale pointers after realloc show up).
pub fn realloc(p: *mut u8, size: usize, api: Api, func: &str) -> *mut u8 {
    // SAFETY: checked.
    let old = unsafe { (*checked(p, Some(api), func)).size };
    let q = alloc(api, size, MIN_ALIGN, false);
    if q.is_null() {
        return q;
    }
    // SAFETY: both are live debug blocks of at least min(old, size) data bytes.
    unsafe { ptr::copy_nonoverlapping(p, q, old.min(size)) };
    free(p, api, func);
    q
}

/// Freed blocks held back before the core gets them, checked when they leave.
mod quarantine {
    use super::*;

    struct Ring {
        blocks: [*mut u8; QUARANTINE_BLOCKS],
        /// Index of the oldest block, and how many there are.
        head: usize,
        len: usize,
        bytes: usize,
    }

    // SAFETY: the pointers are only used under the lock.
    unsafe impl Send for Ring {}

    static RING: spin::Mutex<Ring> =
        spin::Mutex::new(Ring { blocks: [ptr::null_mut(); QUARANTINE_BLOCKS], head: 0, len: 0, bytes: 0 });

    /// Takes in the freed block `p`; lets the oldest ones go while over the limits.
    pub fn admit(p: *mut u8) {
        // SAFETY: `p` is a freed debug block (header intact).
        let size = unsafe { (*header(p)).size };
        let mut leaving: [*mut u8; 8] = [ptr::null_mut(); 8];
        let mut n = 0;
        {
            let mut ring = RING.lock();
            while n < leaving.len() && ring.len > 0 && (ring.len == QUARANTINE_BLOCKS || ring.bytes + size > QUARANTINE_BYTES) {
                let head = ring.head & (QUARANTINE_BLOCKS - 1);
                let old = ring.blocks[head];
                ring.head = (head + 1) & (QUARANTINE_BLOCKS - 1);
                ring.len -= 1;
                // SAFETY: blocks in the ring are freed debug blocks.
                ring.bytes -= unsafe { (*header(old)).size };
                leaving[n] = old;
                n += 1;
            }
            // There is room now: the loop let one go if the ring was full (and `leaving`
            // has room for 8, so it always can).
            let tail = (ring.head + ring.len) & (QUARANTINE_BLOCKS - 1);
            ring.blocks[tail] = p;
            ring.len += 1;
            ring.bytes += size;
        }
        for &old in leaving.iter().take(n) {
            release(old);
        }
    }

    /// Checks that nobody wrote to `p` since it was freed, then gives it back to the core.
    fn release(p: *mut u8) {
        let h = header(p);
        // SAFETY: a freed debug block: header and `size` data bytes are ours to read.
        let (size, serial, offset) = unsafe { ((*h).size, (*h).serial, (*h).offset as usize) };
        let check = |from: usize, to: usize| {
            for i in from..to {
                // SAFETY: inside the data.
                let b = unsafe { *p.add(i) };
                if b != DEAD {
                    report("free", p, "use after free: the block was written after it was freed", size, serial, Some((i as isize, b)));
                }
            }
        };
        if size <= CHECK_WHOLE {
            check(0, size);
        } else {
            check(0, CHECK_EDGE);
            check(size - CHECK_EDGE, size);
        }
        dispatch::core_free(p.wrapping_sub(offset), "free");
    }

    /// For fork: the child must not inherit the lock held by another thread.
    pub fn lock_for_fork() {
        core::mem::forget(RING.lock());
    }

    /// # Safety
    /// Must follow `lock_for_fork` in the same thread (or its forked child).
    pub unsafe fn unlock_after_fork() {
        // SAFETY: the caller's guarantee.
        unsafe { RING.force_unlock() };
    }
}

pub use quarantine::{lock_for_fork, unlock_after_fork};
