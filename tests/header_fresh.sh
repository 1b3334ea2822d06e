#!/usr/bin/env bash
# Fails when include/arenalloc.h, as committed, differs from what cbindgen generates from
# src/ffi/ now.  `make` (build.rs) has just regenerated the file in the work tree, so any
# difference from the committed copy means the committed header is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "header_fresh: not a git checkout, cannot compare with the committed header" >&2
    exit 1
fi
if ! git ls-files --error-unmatch include/arenalloc.h >/dev/null 2>&1; then
    echo "FAIL header_fresh: include/arenalloc.h is not committed" >&2
    exit 1
fi
if ! git diff --quiet HEAD -- include/arenalloc.h; then
    echo "FAIL header_fresh: include/arenalloc.h is stale; commit the regenerated header:" >&2
    git --no-pager diff --stat HEAD -- include/arenalloc.h >&2
    exit 1
fi
# Every function the library exports must be declared in the header, except
# PyMem_SetAllocator (interposed only to see CPython's allocator hooks: its prototype, with
# CPython's types, belongs to Python.h) and glibc's introspection functions (declared by
# <malloc.h>: malloc_trim, malloc_stats; mallopt and mallinfo2 do not match the pattern).
missing=0
for sym in $(nm -D --defined-only target/release/libarenalloc.so | awk '$2=="T"{print $3}' \
             | grep -E '^(malloc|free|calloc|realloc|reallocarray|posix_memalign|aligned_alloc|memalign|valloc|pvalloc|malloc_usable_size|PyMem_|PyObject_|arenalloc_)' \
             | grep -vxE 'PyMem_SetAllocator|malloc_trim|malloc_stats'); do
    grep -Eq "[ *]$sym\(" include/arenalloc.h || { echo "FAIL header_fresh: $sym not declared" >&2; missing=1; }
done
[ "$missing" = 0 ]
echo "PASS header_fresh: include/arenalloc.h matches the sources and declares every export"
