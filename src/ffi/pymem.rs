//! The `PyMem_*` / `PyObject_*` family, with CPython's semantics, over the same allocator.
//!
//! CPython's rules (Doc/c-api/memory.rst): a request of 0 bytes returns a unique non-NULL
//! pointer (as if 1 byte were asked); `Realloc(NULL, n)` allocates; `Realloc(p, 0)` does
//! not free but returns a minimal block; `Free(NULL)` does nothing; a size above
//! `PY_SSIZE_T_MAX` fails with NULL.  All three domains share arenalloc's heap, so a
//! pointer from any of them is accepted by any other and by `free`.
//!
//! Preloaded into a CPython with a shared libpython, these definitions interpose on
//! libpython's own.  Objects libpython's internal pymalloc made before (or around) us then
//! reach our `Free`/`Realloc`; those pointers are not ours, so they are forwarded to the
//! next definition of the same function (`dlsym(RTLD_NEXT, ...)`), libpython's, which knows
//! them.  Outside a Python process there is no next definition, and a foreign pointer is
//! heap misuse as for `free`.
//!
//! Hooks: tracemalloc, the debug hooks (`PYTHONMALLOC=debug`, `-X dev`) and extensions
//! install wrappers with `PyMem_SetAllocator`.  Interposed functions would bypass them, so
//! we interpose `PyMem_SetAllocator` too, and while a domain is hooked every call on it
//! goes to libpython's definition (through the hook).  A hook passes blocks it did not make
//! on to the allocator underneath, whose frees end in our `free`.

use core::ffi::{c_char, c_void};
use core::ptr;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::alloc;
use crate::debug::Api;
use crate::diag;

/// A lazily resolved next definition of one of our symbols.
struct Next {
    name: &'static [u8], // NUL-terminated
    /// 0: not looked up yet; 1: there is none; else the function's address.
    addr: AtomicUsize,
}

const UNRESOLVED: usize = 0;
const ABSENT: usize = 1;

impl Next {
    const fn new(name: &'static [u8]) -> Self {
        Next { name, addr: AtomicUsize::new(UNRESOLVED) }
    }

    /// The address of the next definition, if any.  `dlsym` may allocate (through us):
    /// that is fine, nothing of ours is locked here.
    fn get(&self) -> Option<usize> {
        let mut a = self.addr.load(Ordering::Acquire);
        if a == UNRESOLVED {
            // SAFETY: `name` is a NUL-terminated static string.
            let f = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr().cast::<c_char>()) };
            a = if f.is_null() { ABSENT } else { f as usize };
            self.addr.store(a, Ordering::Release);
        }
        (a != ABSENT).then_some(a)
    }
}

/// One of CPython's three allocator domains, with libpython's definitions of its functions
/// and whether a hook is installed on it.
struct Domain {
    /// `PyMemAllocatorDomain` value: RAW = 0, MEM = 1, OBJ = 2.
    id: i32,
    malloc: Next,
    calloc: Next,
    realloc: Next,
    free: Next,
    /// HOOK_UNKNOWN until first asked, then whether the domain's allocator is a hook.
    hook: AtomicU8,
}

impl Domain {
    /// The API family debug mode records for this domain.  Told by address, not by `id`:
    /// on the inlined fast paths the domain is a known static, and this folds to a constant
    /// (a field of a static with atomics in it is a load).
    #[inline(always)]
    fn api(&'static self) -> Api {
        if ptr::eq(self, &RAW) {
            Api::Raw
        } else if ptr::eq(self, &MEM) {
            Api::Mem
        } else {
            Api::Obj
        }
    }
}

const HOOK_UNKNOWN: u8 = 0;
const HOOK_NONE: u8 = 1;
const HOOK_INSTALLED: u8 = 2;

macro_rules! domain {
    ($id:expr, $m:literal, $c:literal, $r:literal, $f:literal) => {
        Domain {
            id: $id,
            malloc: Next::new($m),
            calloc: Next::new($c),
            realloc: Next::new($r),
            free: Next::new($f),
            hook: AtomicU8::new(HOOK_UNKNOWN),
        }
    };
}

static RAW: Domain = domain!(0, b"PyMem_RawMalloc\0", b"PyMem_RawCalloc\0", b"PyMem_RawRealloc\0", b"PyMem_RawFree\0");
static MEM: Domain = domain!(1, b"PyMem_Malloc\0", b"PyMem_Calloc\0", b"PyMem_Realloc\0", b"PyMem_Free\0");
static OBJ: Domain = domain!(2, b"PyObject_Malloc\0", b"PyObject_Calloc\0", b"PyObject_Realloc\0", b"PyObject_Free\0");

static NEXT_GET_ALLOCATOR: Next = Next::new(b"PyMem_GetAllocator\0");
static NEXT_SET_ALLOCATOR: Next = Next::new(b"PyMem_SetAllocator\0");

/// CPython's `PyMemAllocatorEx`: a context and four functions.
#[repr(C)]
struct PyMemAllocatorEx {
    ctx: *mut c_void,
    functions: [usize; 4],
}

type MallocFn = unsafe extern "C" fn(usize) -> *mut c_void;
type CallocFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type ReallocFn = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);

impl Domain {
    /// True when someone (tracemalloc, the debug hooks of `PYTHONMALLOC=debug` or `-X dev`,
    /// an extension calling `PyMem_SetAllocator`) installed a hook on this domain.  CPython's
    /// own base allocators have a NULL context; every hook CPython installs has one.
    #[inline]
    fn hooked(&self) -> bool {
        match self.hook.load(Ordering::Relaxed) {
            HOOK_NONE => false,
            HOOK_INSTALLED => true,
            _ => self.refresh(),
        }
    }

    /// True when the domain is known to have no hook: the fast paths' one test (a byte
    /// compare).  False when hooked or not yet asked (`hooked` then finds out).
    #[inline(always)]
    fn known_unhooked(&self) -> bool {
        self.hook.load(Ordering::Relaxed) == HOOK_NONE
    }

    /// Asks libpython which allocator the domain has now.
    fn refresh(&self) -> bool {
        let hooked = match NEXT_GET_ALLOCATOR.get() {
            Some(f) => {
                // SAFETY: `f` is libpython's PyMem_GetAllocator(domain, PyMemAllocatorEx *).
                let get: unsafe extern "C" fn(i32, *mut PyMemAllocatorEx) = unsafe { core::mem::transmute(f) };
                let mut a = PyMemAllocatorEx { ctx: ptr::null_mut(), functions: [0; 4] };
                // SAFETY: `a` is a valid PyMemAllocatorEx to fill.
                unsafe { get(self.id, &mut a) };
                !a.ctx.is_null()
            }
            None => false, // not a Python process
        };
        self.hook.store(if hooked { HOOK_INSTALLED } else { HOOK_NONE }, Ordering::Relaxed);
        hooked
    }
}

/// Looks up every next definition now, from the library constructor, so the lookups do
/// not happen later in some delicate context.
pub fn resolve_next_definitions() {
    for d in [&RAW, &MEM, &OBJ] {
        for n in [&d.malloc, &d.calloc, &d.realloc, &d.free] {
            n.get();
        }
    }
    NEXT_GET_ALLOCATOR.get();
    NEXT_SET_ALLOCATOR.get();
    NEXT_GET_ALLOCATED_BLOCKS.get();
}

/// CPython refuses sizes above PY_SSIZE_T_MAX.
const PY_SSIZE_T_MAX: usize = isize::MAX as usize;

/// The fast path of every `*_Malloc`: inlined into each, so that the domain is a constant
/// and, with no hook installed, the call costs one byte compare more than `malloc`.
/// A size of 0 is served as `malloc(0)` serves it (a unique minimal block), and a size
/// above `PY_SSIZE_T_MAX` fails on the slow path (`MAX_REQUEST` is the same bound).
#[inline(always)]
fn py_malloc(d: &'static Domain, size: usize) -> *mut c_void {
    if !d.known_unhooked() {
        return py_malloc_hooked_or_unknown(d, size);
    }
    alloc::malloc_api(size, d.api()).cast()
}

#[cold]
#[inline(never)]
fn py_malloc_hooked_or_unknown(d: &'static Domain, size: usize) -> *mut c_void {
    if d.hooked() {
        if let Some(f) = d.malloc.get() {
            // SAFETY: libpython's definition of this very function.
            return unsafe { core::mem::transmute::<usize, MallocFn>(f)(size) };
        }
    }
    if size > PY_SSIZE_T_MAX {
        return ptr::null_mut();
    }
    alloc::malloc_api(size.max(1), d.api()).cast()
}

/// The fast path of every `*_Calloc`, inlined into each as `py_malloc` is.
#[inline(always)]
fn py_calloc(d: &'static Domain, nelem: usize, elsize: usize) -> *mut c_void {
    if !d.known_unhooked() {
        return py_calloc_hooked_or_unknown(d, nelem, elsize);
    }
    py_calloc_unhooked(d, nelem, elsize)
}

/// `calloc` of `nelem * elsize` bytes on our heap, with CPython's rules (overflow and sizes
/// above `PY_SSIZE_T_MAX` fail, 0 bytes give a minimal block).
#[inline(always)]
fn py_calloc_unhooked(d: &'static Domain, nelem: usize, elsize: usize) -> *mut c_void {
    match nelem.checked_mul(elsize) {
        Some(total) if total <= PY_SSIZE_T_MAX => alloc::calloc_api(total.max(1), d.api()).cast(),
        _ => ptr::null_mut(),
    }
}

#[cold]
#[inline(never)]
fn py_calloc_hooked_or_unknown(d: &'static Domain, nelem: usize, elsize: usize) -> *mut c_void {
    if d.hooked() {
        if let Some(f) = d.calloc.get() {
            // SAFETY: libpython's definition of this very function.
            return unsafe { core::mem::transmute::<usize, CallocFn>(f)(nelem, elsize) };
        }
    }
    py_calloc_unhooked(d, nelem, elsize)
}

/// The fast path of every `*_Realloc`, inlined into each as `py_malloc` is: with no hook
/// installed, a block of one of the calling thread's pools is resized as `realloc` would.
#[inline(always)]
fn py_realloc(d: &'static Domain, p: *mut c_void, size: usize, func: &'static str) -> *mut c_void {
    if !d.known_unhooked() || p.is_null() {
        return py_realloc_uncommon(d, p.cast(), size, func);
    }
    alloc::realloc_block_or(p.cast(), size.max(1), func, |p| py_realloc_uncommon(d, p, size, func).cast()).cast()
}

#[cold]
#[inline(never)]
fn py_realloc_uncommon(d: &'static Domain, p: *mut u8, size: usize, func: &'static str) -> *mut c_void {
    if d.hooked() || (!p.is_null() && !alloc::owns(p)) {
        // Through the hook, or libpython's own block: libpython's realloc.
        let Some(f) = d.realloc.get() else { diag::misuse(func, p, "pointer not allocated by arenalloc") };
        // SAFETY: libpython's definition of this very function.
        return unsafe { core::mem::transmute::<usize, ReallocFn>(f)(p.cast(), size) };
    }
    if p.is_null() {
        return py_malloc(d, size);
    }
    if size > PY_SSIZE_T_MAX {
        return ptr::null_mut();
    }
    alloc::realloc_api(p, size.max(1), d.api(), func).cast()
}

/// The fast path of every `*_Free`, inlined into each as `py_malloc` is: with no hook
/// installed, a block of one of our pools is freed as `free` frees it.  Null, our large
/// and debug blocks, libpython's own blocks and hooked domains take `py_free_uncommon`.
#[inline(always)]
fn py_free(d: &'static Domain, p: *mut c_void, func: &'static str) {
    if !d.known_unhooked() {
        return py_free_uncommon(d, p.cast(), func);
    }
    alloc::free_block_or(p.cast(), func, |p| py_free_uncommon(d, p, func));
}

#[cold]
#[inline(never)]
fn py_free_uncommon(d: &'static Domain, p: *mut u8, func: &'static str) {
    if p.is_null() {
        return;
    }
    if !d.hooked() && alloc::owns(p) {
        alloc::free_api(p, d.api(), func);
        return;
    }
    // Through the hook, or libpython's own block: libpython's free.  (A block of ours that
    // reaches a hook's free is passed on by the hook to the allocator underneath, which
    // ends in our `free`.)
    let Some(f) = d.free.get() else { diag::misuse(func, p, "pointer not allocated by arenalloc") };
    // SAFETY: libpython's definition of this very function.
    unsafe { core::mem::transmute::<usize, FreeFn>(f)(p.cast()) }
}

static NEXT_GET_ALLOCATED_BLOCKS: Next = Next::new(b"_Py_GetAllocatedBlocks\0");

/// Interposes libpython's `_Py_GetAllocatedBlocks`, behind `sys.getallocatedblocks()`:
/// with our `PyObject_*` in place, pymalloc's own count would miss every object, and
/// regrtest's reference-leak hunter (`-R`) and `test_sys` read it.  Returns pymalloc's
/// count plus ours.  Not declared in the header: it is CPython's private API.
///
/// cbindgen:ignore
#[no_mangle]
pub extern "C" fn _Py_GetAllocatedBlocks() -> isize {
    let theirs = match NEXT_GET_ALLOCATED_BLOCKS.get() {
        // SAFETY: libpython's `Py_ssize_t _Py_GetAllocatedBlocks(void)`.
        Some(f) => unsafe { core::mem::transmute::<usize, unsafe extern "C" fn() -> isize>(f)() },
        None => 0,
    };
    theirs + alloc::allocated_blocks() as isize
}

/// Interposes libpython's `PyMem_SetAllocator` to learn when a hook is installed or
/// removed (tracemalloc, debug hooks), then installs it as CPython would.  While a domain is
/// hooked, its allocations go through libpython (and so through the hook).  Outside a
/// Python process it does nothing.  Not declared in the header: its prototype is Python.h's.
///
/// cbindgen:ignore
///
/// # Safety
/// `allocator` must point to a valid `PyMemAllocatorEx`.
#[no_mangle]
pub unsafe extern "C" fn PyMem_SetAllocator(domain: i32, allocator: *mut c_void) {
    if let Some(f) = NEXT_SET_ALLOCATOR.get() {
        // SAFETY: libpython's PyMem_SetAllocator(domain, PyMemAllocatorEx *).
        let set: unsafe extern "C" fn(i32, *mut c_void) = unsafe { core::mem::transmute(f) };
        // SAFETY: forwarded contract.
        unsafe { set(domain, allocator) };
    }
    for d in [&RAW, &MEM, &OBJ] {
        if d.id == domain {
            d.refresh();
        }
    }
}

/// CPython's raw-domain malloc (callable without the GIL).  0 bytes gives a unique block.
#[no_mangle]
pub extern "C" fn PyMem_RawMalloc(size: usize) -> *mut c_void {
    py_malloc(&RAW, size)
}

/// Raw-domain calloc; NULL if `nelem * elsize` overflows.
#[no_mangle]
pub extern "C" fn PyMem_RawCalloc(nelem: usize, elsize: usize) -> *mut c_void {
    py_calloc(&RAW, nelem, elsize)
}

/// Raw-domain realloc: `(NULL, n)` allocates, `(p, 0)` returns a minimal block.
///
/// # Safety
/// `ptr` must be NULL or a live block of this domain.
#[no_mangle]
pub unsafe extern "C" fn PyMem_RawRealloc(ptr: *mut c_void, new_size: usize) -> *mut c_void {
    py_realloc(&RAW, ptr, new_size, "PyMem_RawRealloc")
}

/// Raw-domain free; NULL is a no-op.
///
/// # Safety
/// `ptr` must be NULL or a live block of this domain.
#[no_mangle]
pub unsafe extern "C" fn PyMem_RawFree(ptr: *mut c_void) {
    py_free(&RAW, ptr, "PyMem_RawFree")
}

/// CPython's "mem" domain malloc.
#[no_mangle]
pub extern "C" fn PyMem_Malloc(size: usize) -> *mut c_void {
    py_malloc(&MEM, size)
}

/// "mem" domain calloc.
#[no_mangle]
pub extern "C" fn PyMem_Calloc(nelem: usize, elsize: usize) -> *mut c_void {
    py_calloc(&MEM, nelem, elsize)
}

/// "mem" domain realloc.
///
/// # Safety
/// `ptr` must be NULL or a live block of this domain.
#[no_mangle]
pub unsafe extern "C" fn PyMem_Realloc(ptr: *mut c_void, new_size: usize) -> *mut c_void {
    py_realloc(&MEM, ptr, new_size, "PyMem_Realloc")
}

/// "mem" domain free.
///
/// # Safety
/// `ptr` must be NULL or a live block of this domain.
#[no_mangle]
pub unsafe extern "C" fn PyMem_Free(ptr: *mut c_void) {
    py_free(&MEM, ptr, "PyMem_Free")
}

/// CPython's object-domain malloc (what pymalloc serves in CPython).
#[no_mangle]
pub extern "C" fn PyObject_Malloc(size: usize) -> *mut c_void {
    py_malloc(&OBJ, size)
}

/// Object-domain calloc.
#[no_mangle]
pub extern "C" fn PyObject_Calloc(nelem: usize, elsize: usize) -> *mut c_void {
    py_calloc(&OBJ, nelem, elsize)
}

/// Object-domain realloc.
///
/// # Safety
/// `ptr` must be NULL or a live block of this domain.
#[no_mangle]
pub unsafe extern "C" fn PyObject_Realloc(ptr: *mut c_void, new_size: usize) -> *mut c_void {
    py_realloc(&OBJ, ptr, new_size, "PyObject_Realloc")
}

/// Object-domain free.
///
/// # Safety
/// `ptr` must be NULL or a live block of this domain.
#[no_mangle]
pub unsafe extern "C" fn PyObject_Free(ptr: *mut c_void) {
    py_free(&OBJ, ptr, "PyObject_Free")
}
