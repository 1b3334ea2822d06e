#!/usr/bin/env bash
# A malloc must not panic: a panic formats its message, and formatting allocates through
# malloc, which is us.  This test disassembles the built library and fails if any of our own
# functions (the exported C ABI or anything in the arenalloc crate) calls into Rust's panic
# machinery (bounds checks, unwrap, division by zero, overflow checks...).  The std code
# linked into the .so is not ours and is not checked.
set -euo pipefail
cd "$(dirname "$0")/.."
LIB=${1:-target/release/libarenalloc.so}
exports='malloc|free|calloc|realloc|reallocarray|posix_memalign|aligned_alloc|memalign|valloc|pvalloc|malloc_usable_size|PyMem_[A-Za-z]+|PyObject_[A-Za-z]+|arenalloc_[a-z_]+'
offenders=$(objdump -d --no-show-raw-insn "$LIB" | awk -v ex="^<($exports)>:\$" '
    /^[0-9a-f]+ <.*>:$/ { fn = $2; ours = (fn ~ ex) || (fn ~ /arenalloc/) }
    ours && /call.*(panic|unwrap_failed|expect_failed)/ { print fn }' | sort -u)
if [ -n "$offenders" ]; then
    echo "FAIL no_panics: these functions can panic:" >&2
    echo "$offenders" | sed 's/^/    /' >&2
    exit 1
fi
echo "PASS no_panics: no arenalloc function calls into the panic machinery"
