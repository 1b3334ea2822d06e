#!/usr/bin/env bash
# Build and run the C ABI tests of arenalloc.
#
# Usage (from the repository root):
#   bash tests/c/run.sh            # link against target/release/libarenalloc.so
#   bash tests/c/run.sh --glibc    # sanity-check the tests against plain glibc
#                                  # (arenalloc-only checks are skipped)
#
# Binaries go to target/ctest/ (target/ctest-glibc/ for --glibc).  Exits
# non-zero if a build fails or any test fails or times out.  The library must
# already have been built (cargo build --release); this script never runs cargo.
set -u

cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD
CC=${CC:-gcc}

MODE=arenalloc
case "${1:-}" in
    "") ;;
    --glibc) MODE=glibc ;;
    *) echo "usage: bash tests/c/run.sh [--glibc]" >&2; exit 2 ;;
esac

# -fno-builtin-*: stop GCC from reasoning about the allocation functions
# (eliding malloc/free pairs, assuming alignment of aligned_alloc results, ...),
# which could hide allocator bugs.
CFLAGS=(-O2 -g -Wall -Wextra -Werror -I include
        -fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc
        -fno-builtin-free -fno-builtin-aligned_alloc
        -fno-builtin-posix_memalign -fno-builtin-memalign)

if [ "$MODE" = arenalloc ]; then
    LIB=target/release/libarenalloc.so
    if [ ! -f "$LIB" ]; then
        echo "run.sh: $LIB not found; build it first (cargo build --release)" >&2
        exit 2
    fi
    OUT=target/ctest
    LIBS=(-L target/release -larenalloc -Wl,-rpath,"$ROOT/target/release" -lpthread)
else
    OUT=target/ctest-glibc
    CFLAGS+=(-DTEST_AGAINST_GLIBC)
    LIBS=(-lpthread)
fi
mkdir -p "$OUT" || exit 2

# name  time-limit(s)  [source]  (test_abi_static: test_abi linked with libarenalloc.a)
TESTS=("test_abi 60" "test_threads 120" "test_oom 60" "test_misuse 60" "test_debug 120")
[ "$MODE" = arenalloc ] && TESTS+=("test_abi_static 60 test_abi")
failed=()

for entry in "${TESTS[@]}"; do
    set -- $entry
    name=$1 limit=$2 src=${3:-$1}
    libs=("${LIBS[@]}") extra=()
    if [ "$name" = test_abi_static ]; then
        # -rdynamic: the test looks its own symbols up with dlsym.
        libs=(-rdynamic target/release/libarenalloc.a -lpthread -ldl -lm) extra=(-DTEST_STATIC_LINK)
    fi
    echo "=== build $name ($MODE)"
    if ! "$CC" "${CFLAGS[@]}" "${extra[@]}" -o "$OUT/$name" "tests/c/$src.c" "${libs[@]}"; then
        failed+=("$name (build)")
        continue
    fi
    echo "=== run $name"
    timeout --signal=KILL "$limit" "$OUT/$name"
    rc=$?
    if [ $rc -ne 0 ]; then
        if [ $rc -eq 137 ]; then
            echo "=== $name: killed (timeout ${limit}s or SIGKILL)" >&2
        else
            echo "=== $name: FAILED (exit status $rc)" >&2
        fi
        failed+=("$name")
    fi
done

if [ "$MODE" = arenalloc ]; then
    echo "=== run reentry.sh"
    bash tests/c/reentry.sh || failed+=("reentry.sh")
fi

if [ ${#failed[@]} -ne 0 ]; then
    echo "=== C tests FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "=== C tests passed ($MODE)"
