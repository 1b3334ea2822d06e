//! The core C allocation functions (C17 7.22.3, plus glibc's reallocarray and
//! malloc_usable_size).

use core::ffi::c_void;
use core::ptr;

use crate::alloc;
use crate::os::set_errno;

/// Allocates `size` bytes, aligned to 16, uninitialised.
///
/// `malloc(0)` returns a unique pointer to a minimal block (16 bytes), which must be freed.
/// Returns NULL with `errno = ENOMEM` when the memory cannot be had (including any size
/// above `PTRDIFF_MAX`).
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    // On failure the allocator's slow paths have set errno to ENOMEM (see alloc.rs).
    alloc::malloc(size).cast()
}

/// Frees a block returned by any allocation function of this library.  `free(NULL)` does
/// nothing.  A pointer arenalloc did not return (foreign, interior, stack, ...) is heap
/// misuse: a one-line diagnostic on stderr, then `abort()`.
///
/// # Safety
/// `ptr` must be NULL or a live block from this library; it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    // NULL included: see `alloc::free`.
    alloc::free(ptr.cast());
}

/// Allocates an array of `nmemb` elements of `size` bytes, zero-filled.
///
/// Returns NULL with `errno = ENOMEM` when `nmemb * size` overflows or memory is short.
/// Recycled blocks are cleared; fresh pages from the OS are known zero and not touched.
#[no_mangle]
pub extern "C" fn calloc(nmemb: usize, size: usize) -> *mut c_void {
    let Some(total) = nmemb.checked_mul(size) else {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    let p = alloc::calloc(total);
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p.cast()
}

/// Resizes the block `ptr` to `size` bytes, keeping its contents up to the smaller size.
///
/// * `realloc(NULL, size)` is `malloc(size)`.
/// * `realloc(ptr, 0)` with `ptr` non-NULL frees `ptr` and returns NULL, as glibc does.
/// * On failure it returns NULL with `errno = ENOMEM` and `ptr` is left intact.
/// * Large blocks (over 1 MiB) grow in place or move with `mremap`, without copying.
///
/// # Safety
/// `ptr` must be NULL or a live block from this library.
#[no_mangle]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    if ptr.is_null() {
        return malloc(size);
    }
    if size == 0 {
        alloc::free_api(ptr.cast(), crate::debug::Api::C, "realloc");
        return ptr::null_mut();
    }
    let p = alloc::realloc(ptr.cast(), size);
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p.cast()
}

/// `realloc(ptr, nmemb * size)`, except that an overflowing product fails with NULL and
/// `errno = ENOMEM`, leaving `ptr` intact.
///
/// # Safety
/// As for `realloc`.
#[no_mangle]
pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, nmemb: usize, size: usize) -> *mut c_void {
    match nmemb.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { realloc(ptr, total) },
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// The number of bytes usable in the block `ptr` (at least what was asked for); 0 for NULL.
/// A pointer arenalloc did not return is heap misuse (diagnostic, then `abort()`).
///
/// # Safety
/// `ptr` must be NULL or a live block from this library.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    if ptr.is_null() {
        return 0;
    }
    alloc::usable_size(ptr.cast())
}
