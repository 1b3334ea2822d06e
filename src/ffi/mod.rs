//! The C face: thin `extern "C"` shells over `alloc.rs`.
//!
//! Each exported function checks its arguments the way the C standard, POSIX or glibc
//! says, sets `errno` on failure, and calls one core function.  Nothing here allocates or
//! panics.  The header `include/arenalloc.h` is generated from these declarations and their
//! doc comments by cbindgen (see build.rs).
//!
//! * `malloc.rs`  — malloc, free, calloc, realloc, reallocarray, malloc_usable_size
//! * `aligned.rs` — posix_memalign, aligned_alloc, memalign, valloc, pvalloc
//! * `pymem.rs`   — the PyMem_* / PyObject_* family, for CPython
//! * `extras.rs`  — arenalloc_* functions of our own: version, counters, statistics
//! * `glibc.rs`   — glibc's introspection: mallinfo2, malloc_stats, malloc_trim, mallopt

pub mod aligned;
pub mod extras;
pub mod glibc;
pub mod malloc;
pub mod pymem;
