//! The aligned family: POSIX `posix_memalign`, C11 `aligned_alloc`, and glibc's
//! `memalign`, `valloc`, `pvalloc`.  Any alignment that is a power of two is supported
//! (pools serve alignments up to 16 KiB; larger ones get a mapping of their own).

use core::ffi::c_void;
use core::ptr;

use crate::alloc;
use crate::os::{self, round_up, set_errno};

/// Allocates `size` bytes aligned to `alignment` and stores the pointer in `*memptr`.
///
/// Returns 0 on success; `EINVAL` when `alignment` is not a power of two multiple of
/// `sizeof(void *)`; `ENOMEM` when memory is short.  On error `*memptr` is not modified
/// (POSIX.1-2017) and `errno` is unchanged.
///
/// # Safety
/// `memptr` must be valid for a pointer-sized write.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(memptr: *mut *mut c_void, alignment: usize, size: usize) -> core::ffi::c_int {
    if !alignment.is_power_of_two() || alignment % core::mem::size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    // SAFETY: reading errno is always allowed.
    let saved_errno = unsafe { *libc::__errno_location() };
    let p = alloc::memalign(alignment, size);
    if p.is_null() {
        set_errno(saved_errno); // a failed mmap set it; posix_memalign reports by return value
        return libc::ENOMEM;
    }
    // SAFETY: the caller guarantees `memptr` is writable.
    unsafe { *memptr = p.cast() };
    0
}

/// C11 aligned allocation.  `alignment` must be a power of two (else NULL with
/// `errno = EINVAL`, as glibc 2.38 does); `size` need not be a multiple of it.
#[no_mangle]
pub extern "C" fn aligned_alloc(alignment: usize, size: usize) -> *mut c_void {
    if !alignment.is_power_of_two() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    memalign(alignment, size)
}

/// glibc's `memalign`: an `alignment` that is not a power of two is rounded up to the next
/// one (0 means 16).  NULL with `errno = ENOMEM` on failure (also when the rounded
/// alignment would overflow: `EINVAL`, as glibc).
#[no_mangle]
pub extern "C" fn memalign(alignment: usize, size: usize) -> *mut c_void {
    let Some(align) = alignment.max(1).checked_next_power_of_two() else {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    };
    let p = alloc::memalign(align, size);
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p.cast()
}

/// `memalign(page size, size)`.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    memalign(os::page_size(), size)
}

/// Page-aligned, with `size` rounded up to a whole number of pages (`pvalloc(0)` gives one
/// page).  NULL with `errno = ENOMEM` if the rounding overflows.
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = os::page_size();
    match round_up(size.max(1), page) {
        Some(rounded) => memalign(page, rounded),
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}
