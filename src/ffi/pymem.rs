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

use core::ffi::{c_char, c_void};
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::alloc;
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

static NEXT_RAW_FREE: Next = Next::new(b"PyMem_RawFree\0");
static NEXT_RAW_REALLOC: Next = Next::new(b"PyMem_RawRealloc\0");
static NEXT_MEM_FREE: Next = Next::new(b"PyMem_Free\0");
static NEXT_MEM_REALLOC: Next = Next::new(b"PyMem_Realloc\0");
static NEXT_OBJ_FREE: Next = Next::new(b"PyObject_Free\0");
static NEXT_OBJ_REALLOC: Next = Next::new(b"PyObject_Realloc\0");

/// Looks up every next definition now, from the library constructor, so the lookups do
/// not happen later in some delicate context.
pub fn resolve_next_definitions() {
    for n in [&NEXT_RAW_FREE, &NEXT_RAW_REALLOC, &NEXT_MEM_FREE, &NEXT_MEM_REALLOC, &NEXT_OBJ_FREE, &NEXT_OBJ_REALLOC] {
        n.get();
    }
}

/// CPython refuses sizes above PY_SSIZE_T_MAX.
const PY_SSIZE_T_MAX: usize = isize::MAX as usize;

fn py_malloc(size: usize) -> *mut c_void {
    if size > PY_SSIZE_T_MAX {
        return ptr::null_mut();
    }
    alloc::malloc(size.max(1)).cast()
}

fn py_calloc(nelem: usize, elsize: usize) -> *mut c_void {
    match nelem.checked_mul(elsize) {
        Some(total) if total <= PY_SSIZE_T_MAX => alloc::calloc(total.max(1)).cast(),
        _ => ptr::null_mut(),
    }
}

fn py_realloc(p: *mut c_void, size: usize, next: &Next, func: &str) -> *mut c_void {
    if p.is_null() {
        return py_malloc(size);
    }
    if !alloc::owns(p.cast()) {
        let Some(f) = next.get() else { diag::misuse(func, p.cast(), "pointer not allocated by arenalloc") };
        // SAFETY: `f` is the next definition of this very function, same signature.
        let f: unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void = unsafe { core::mem::transmute(f) };
        // SAFETY: the pointer belongs to that allocator.
        return unsafe { f(p, size) };
    }
    if size > PY_SSIZE_T_MAX {
        return ptr::null_mut();
    }
    alloc::realloc(p.cast(), size.max(1)).cast()
}

fn py_free(p: *mut c_void, next: &Next, func: &str) {
    if p.is_null() {
        return;
    }
    if alloc::owns(p.cast()) {
        alloc::free(p.cast());
        return;
    }
    let Some(f) = next.get() else { diag::misuse(func, p.cast(), "pointer not allocated by arenalloc") };
    // SAFETY: `f` is the next definition of this very function, same signature.
    let f: unsafe extern "C" fn(*mut c_void) = unsafe { core::mem::transmute(f) };
    // SAFETY: the pointer belongs to that allocator.
    unsafe { f(p) }
}

/// CPython's raw-domain malloc (callable without the GIL).  0 bytes gives a unique block.
#[no_mangle]
pub extern "C" fn PyMem_RawMalloc(size: usize) -> *mut c_void {
    py_malloc(size)
}

/// Raw-domain calloc; NULL if `nelem * elsize` overflows.
#[no_mangle]
pub extern "C" fn PyMem_RawCalloc(nelem: usize, elsize: usize) -> *mut c_void {
    py_calloc(nelem, elsize)
}

/// Raw-domain realloc: `(NULL, n)` allocates, `(p, 0)` returns a minimal block.
///
/// # Safety
/// `ptr` must be NULL or a live block of this domain.
#[no_mangle]
pub unsafe extern "C" fn PyMem_RawRealloc(ptr: *mut c_void, new_size: usize) -> *mut c_void {
    py_realloc(ptr, new_size, &NEXT_RAW_REALLOC, "PyMem_RawRealloc")
}

/// Raw-domain free; NULL is a no-op.
///
/// # Safety
/// `ptr` must be NULL or a live block of this domain.
#[no_mangle]
pub unsafe extern "C" fn PyMem_RawFree(ptr: *mut c_void) {
    py_free(ptr, &NEXT_RAW_FREE, "PyMem_RawFree")
}

/// CPython's "mem" domain malloc.
#[no_mangle]
pub extern "C" fn PyMem_Malloc(size: usize) -> *mut c_void {
    py_malloc(size)
}

/// "mem" domain calloc.
#[no_mangle]
pub extern "C" fn PyMem_Calloc(nelem: usize, elsize: usize) -> *mut c_void {
    py_calloc(nelem, elsize)
}

/// "mem" domain realloc.
///
/// # Safety
/// `ptr` must be NULL or a live block of this domain.
#[no_mangle]
pub unsafe extern "C" fn PyMem_Realloc(ptr: *mut c_void, new_size: usize) -> *mut c_void {
    py_realloc(ptr, new_size, &NEXT_MEM_REALLOC, "PyMem_Realloc")
}

/// "mem" domain free.
///
/// # Safety
/// `ptr` must be NULL or a live block of this domain.
#[no_mangle]
pub unsafe extern "C" fn PyMem_Free(ptr: *mut c_void) {
    py_free(ptr, &NEXT_MEM_FREE, "PyMem_Free")
}

/// CPython's object-domain malloc (what pymalloc serves in CPython).
#[no_mangle]
pub extern "C" fn PyObject_Malloc(size: usize) -> *mut c_void {
    py_malloc(size)
}

/// Object-domain calloc.
#[no_mangle]
pub extern "C" fn PyObject_Calloc(nelem: usize, elsize: usize) -> *mut c_void {
    py_calloc(nelem, elsize)
}

/// Object-domain realloc.
///
/// # Safety
/// `ptr` must be NULL or a live block of this domain.
#[no_mangle]
pub unsafe extern "C" fn PyObject_Realloc(ptr: *mut c_void, new_size: usize) -> *mut c_void {
    py_realloc(ptr, new_size, &NEXT_OBJ_REALLOC, "PyObject_Realloc")
}

/// Object-domain free.
///
/// # Safety
/// `ptr` must be NULL or a live block of this domain.
#[no_mangle]
pub unsafe extern "C" fn PyObject_Free(ptr: *mut c_void) {
    py_free(ptr, &NEXT_OBJ_FREE, "PyObject_Free")
}
