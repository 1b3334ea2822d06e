//! Every system call the allocator makes, in one place (as mimalloc keeps its `prim/` layer).
//!
//! The rest of the crate asks this module for address space (`map`, `map_aligned`),
//! gives it back (`unmap`, `decommit`), moves it (`remap`), and writes diagnostics
//! (`write_stderr`).  Nothing here may allocate: only raw `libc` calls, no `std`.
//!
//! It sits at the bottom of the layers and uses no other module of the crate: the constants
//! it needs about the machine (`PAGE_SIZE`) are defined here, and `config` takes them from it.

use core::ptr;

/// The page size the layout assumes.  Checked against `sysconf` at start-up: on a kernel
/// with larger pages everything still works, only `madvise` releases less.
pub const PAGE_SIZE: usize = 4096;

/// Rounds `n` up to a multiple of the power of two `align`; `None` on overflow.
#[inline]
pub const fn round_up(n: usize, align: usize) -> Option<usize> {
    match n.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// Maps `len` bytes of fresh, zeroed, read-write memory.  Returns null on failure.
pub fn map(len: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no fixed address touches no existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        ptr::null_mut()
    } else {
        p.cast()
    }
}

/// Maps `len` bytes aligned to `align` (a power of two ≥ the page size), by mapping
/// `len + align` and trimming both ends.  Returns null on failure.
pub fn map_aligned(len: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two() && align >= PAGE_SIZE);
    let Some(over) = len.checked_add(align) else { return ptr::null_mut() };
    let raw = map(over);
    if raw.is_null() {
        return raw;
    }
    let start = raw as usize;
    let aligned = (start + align - 1) & !(align - 1);
    let head = aligned - start;
    let tail = over - head - len;
    // SAFETY: both trimmed ranges lie inside the mapping just made and are not handed out.
    unsafe {
        if head != 0 {
            unmap(raw, head);
        }
        if tail != 0 {
            unmap((aligned + len) as *mut u8, tail);
        }
    }
    aligned as *mut u8
}

/// Reserves `len` bytes of address space aligned to `align`: inaccessible (`PROT_NONE`)
/// and uncharged (`MAP_NORESERVE`) until parts of it are committed with `protect_rw`.
/// Returns null on failure.
pub fn reserve_aligned(len: usize, align: usize) -> *mut u8 {
    let Some(over) = len.checked_add(align) else { return ptr::null_mut() };
    // SAFETY: an anonymous private mapping with no fixed address touches no existing memory.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            over,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return ptr::null_mut();
    }
    let start = raw as usize;
    let aligned = (start + align - 1) & !(align - 1);
    // SAFETY: both trimmed ranges lie inside the reservation just made.
    unsafe {
        if aligned != start {
            unmap(raw.cast(), aligned - start);
        }
        if start + over != aligned + len {
            unmap((aligned + len) as *mut u8, start + over - aligned - len);
        }
    }
    aligned as *mut u8
}

/// Turns committed memory back into reserved address space: its pages go back to the OS,
/// and it is inaccessible until `protect_rw` commits it again.  False when the kernel
/// refused (the range is then unchanged).
///
/// # Safety
/// The range must be page-aligned, inside one of our reservations, and hold no live data.
#[must_use]
pub unsafe fn unreserve_in_place(p: *mut u8, len: usize) -> bool {
    // SAFETY: MAP_FIXED over a range we own and nobody uses.
    let r = unsafe {
        libc::mmap(
            p.cast(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    r == p.cast()
}

/// The address-space limit (`ulimit -v`, RLIMIT_AS) in bytes, or None when unlimited.
pub fn address_space_limit() -> Option<usize> {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut rl) } != 0 || rl.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(rl.rlim_cur as usize)
}

/// Bytes of address space the process maps (the first field of `/proc/self/statm`, in
/// pages), read with raw system calls; None when unavailable.
pub fn mapped_bytes() -> Option<usize> {
    // SAFETY: a NUL-terminated path; the descriptor is closed below.
    let fd = unsafe { libc::open(c"/proc/self/statm".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 64];
    // SAFETY: reads at most the buffer's length into it.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: our own descriptor.
    unsafe { libc::close(fd) };
    let mut pages: usize = 0;
    let mut digits = 0;
    for &c in buf.iter().take(n.max(0) as usize) {
        if !c.is_ascii_digit() {
            break;
        }
        pages = pages.saturating_mul(10).saturating_add((c - b'0') as usize);
        digits += 1;
    }
    (digits > 0).then(|| pages.saturating_mul(page_size()))
}

/// Returns a mapping to the OS.
///
/// # Safety
/// `[p, p+len)` must be a mapping (or part of one) made by this module that nobody uses.
pub unsafe fn unmap(p: *mut u8, len: usize) {
    // SAFETY: the caller guarantees the range is ours and unused.
    unsafe { libc::munmap(p.cast(), len) };
}

/// Tells the OS the pages of `[p, p+len)` may be dropped; they read back as zeros.
///
/// # Safety
/// The range must be page-aligned, inside one of our mappings, and hold no live data.
/// Returns false when the kernel refused (e.g. locked pages under `mlockall`): the memory
/// then keeps its contents and must not be taken for zero.
#[must_use]
pub unsafe fn decommit(p: *mut u8, len: usize) -> bool {
    // SAFETY: the caller guarantees the range holds nothing anyone will read.
    unsafe { libc::madvise(p.cast(), len, libc::MADV_DONTNEED) == 0 }
}

/// Makes `[p, p+len)` like fresh memory: zero pages, read-write, whatever the user did to
/// it (an `mprotect`ed guard page, `mlockall`).  The common case is `madvise` plus an
/// `mprotect` that finds nothing to change (cheap: no page-table work); when the kernel
/// refuses the `madvise` (locked pages), fresh pages are mapped over the range instead.
/// Returns false on failure (then the range must not be reused as zero memory).
///
/// # Safety
/// The range must be page-aligned, inside one of our mappings, and hold no live data.
#[must_use]
pub unsafe fn refresh(p: *mut u8, len: usize) -> bool {
    // SAFETY: the caller guarantees the range is ours and unused.
    unsafe {
        if decommit(p, len) && libc::mprotect(p.cast(), len, libc::PROT_READ | libc::PROT_WRITE) == 0 {
            return true;
        }
    }
    // SAFETY: MAP_FIXED over a range we own and nobody uses.
    let r = unsafe {
        libc::mmap(
            p.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    r == p.cast()
}

/// Size of a transparent huge page (x86-64 and aarch64 with 4 KiB base pages).
pub const HUGE_PAGE_SIZE: usize = 2 << 20;

/// Asks the kernel to back `[p, p+len)` with transparent huge pages where it can (every
/// aligned 2 MiB of the range): one page fault and one TLB entry per 2 MiB instead of 512.
/// A hint: where THP is off or no huge page is free, nothing changes.
///
/// # Safety
/// The range must be inside one of our mappings.
pub unsafe fn advise_huge_pages(p: *mut u8, len: usize) {
    // SAFETY: advice only; the caller guarantees the range is ours.
    unsafe { libc::madvise(p.cast(), len, libc::MADV_HUGEPAGE) };
}

/// Gives `[p, p+len)` back default protection (read-write), whatever `mprotect` the last
/// user of the memory left on it.  False on failure.
///
/// # Safety
/// The range must be page-aligned, inside one of our mappings, and hold no live data.
#[must_use]
pub unsafe fn protect_rw(p: *mut u8, len: usize) -> bool {
    // SAFETY: the caller guarantees the range is ours.
    unsafe { libc::mprotect(p.cast(), len, libc::PROT_READ | libc::PROT_WRITE) == 0 }
}

/// Resizes the mapping at `p` without moving it.  Returns false when the neighbouring
/// address space is taken (growth) — the mapping is then unchanged.
///
/// # Safety
/// `[p, p+old_len)` must be one whole mapping of ours.
pub unsafe fn remap_in_place(p: *mut u8, old_len: usize, new_len: usize) -> bool {
    // SAFETY: without MREMAP_MAYMOVE the kernel either resizes in place or fails.
    let r = unsafe { libc::mremap(p.cast(), old_len, new_len, 0) };
    r != libc::MAP_FAILED
}

/// Moves the mapping at `p` to `dst`, which must be a mapping of ours of `new_len` bytes
/// that the move replaces.  The pages move; nothing is copied.
///
/// # Safety
/// `[p, p+old_len)` must be one whole mapping of ours and `[dst, dst+new_len)` a
/// mapping of ours that nobody uses.
pub unsafe fn remap_to(p: *mut u8, old_len: usize, new_len: usize, dst: *mut u8) -> bool {
    // SAFETY: MREMAP_FIXED atomically replaces the reservation at `dst`, which we own.
    let r = unsafe {
        libc::mremap(
            p.cast(),
            old_len,
            new_len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            dst as *mut libc::c_void,
        )
    };
    r != libc::MAP_FAILED
}

/// A random word for secrets (the free-list link key): from `getrandom(2)`, falling back
/// on the 16 random bytes the kernel gives every process (`AT_RANDOM`, of which glibc
/// uses the first 16 for its stack and pointer guards, so they are mixed, not copied).
pub fn random_word() -> usize {
    let mut word: usize = 0;
    // SAFETY: getrandom writes at most the buffer's length; GRND_NONBLOCK never waits.
    let n = unsafe { libc::getrandom((&mut word as *mut usize).cast(), core::mem::size_of::<usize>(), libc::GRND_NONBLOCK) };
    if n == core::mem::size_of::<usize>() as isize && word != 0 {
        return word;
    }
    // SAFETY: getauxval has no preconditions; AT_RANDOM, when present, points to 16 bytes.
    let at_random = unsafe { libc::getauxval(libc::AT_RANDOM) } as *const u64;
    let mut mix = (&word as *const usize as u64) ^ 0x9E37_79B9_7F4A_7C15;
    if !at_random.is_null() {
        // SAFETY: see above.
        mix ^= unsafe { at_random.read_unaligned() ^ at_random.add(1).read_unaligned().rotate_left(32) };
    }
    // One round of splitmix64's finaliser, so the word does not reveal its sources.
    mix = (mix ^ (mix >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mix = (mix ^ (mix >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (mix ^ (mix >> 31)) as usize
}

/// A millisecond clock for pacing background work: `CLOCK_MONOTONIC_COARSE`, read through
/// the vDSO without a system call (a few milliseconds of resolution is plenty).
pub fn coarse_millis() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1000).wrapping_add(ts.tv_nsec as u64 / 1_000_000)
}

/// The process id (for reports).
pub fn process_id() -> usize {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() as usize }
}

/// True when the environment variable `name` (NUL-terminated) is set to something other
/// than empty or "0".  `getenv` reads the environment in place: no allocation.
pub fn env_flag(name: &core::ffi::CStr) -> bool {
    // SAFETY: `name` is NUL-terminated; getenv returns null or a NUL-terminated string.
    let v = unsafe { libc::getenv(name.as_ptr()) };
    if v.is_null() {
        return false;
    }
    // SAFETY: as above.
    let first = unsafe { *v };
    first != 0 && !(first == b'0' as libc::c_char && unsafe { *v.add(1) } == 0)
}

/// The value of the environment variable `name` as a decimal number; None when unset or
/// not a number.
pub fn env_usize(name: &core::ffi::CStr) -> Option<usize> {
    // SAFETY: `name` is NUL-terminated; getenv returns null or a NUL-terminated string.
    let mut v = unsafe { libc::getenv(name.as_ptr()) } as *const u8;
    if v.is_null() {
        return None;
    }
    let mut n: usize = 0;
    let mut digits = 0;
    // SAFETY: reading up to the NUL terminator.
    while let c @ b'0'..=b'9' = unsafe { *v } {
        n = n.saturating_mul(10).saturating_add((c - b'0') as usize);
        digits += 1;
        // SAFETY: not past the terminator yet.
        v = unsafe { v.add(1) };
    }
    // SAFETY: `v` points at the first non-digit, at worst the terminator.
    (digits > 0 && unsafe { *v } == 0).then_some(n)
}

/// The kernel's page size (asked once, then remembered).
pub fn page_size() -> usize {
    static CACHED: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    let n = CACHED.load(core::sync::atomic::Ordering::Relaxed);
    if n != 0 {
        return n;
    }
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let n = if n <= 0 { PAGE_SIZE } else { n as usize };
    CACHED.store(n, core::sync::atomic::Ordering::Relaxed);
    n
}

/// Sets the calling thread's `errno`.
pub fn set_errno(code: i32) {
    // SAFETY: __errno_location always returns this thread's errno slot.
    unsafe { *libc::__errno_location() = code };
}

/// Writes all of `bytes` to file descriptor 2 with `write(2)`, never stdio.
pub fn write_stderr(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: the buffer is valid for `rest.len()` bytes.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            // EINTR: retry; anything else: give up, a diagnostic is best effort.
            // SAFETY: reading errno is always allowed.
            if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                continue;
            }
            return;
        }
        rest = rest.get(n as usize..).unwrap_or(&[]);
    }
}

/// Ends the process the way heap misuse must end it: `abort()`.
pub fn abort() -> ! {
    // SAFETY: abort has no preconditions and does not return.
    unsafe { libc::abort() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_up_detects_overflow() {
        assert_eq!(round_up(1, 4096), Some(4096));
        assert_eq!(round_up(4096, 4096), Some(4096));
        assert_eq!(round_up(usize::MAX - 10, 4096), None);
    }
}
