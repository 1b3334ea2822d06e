#!/usr/bin/env bash
# Memory-return test (issue 4): tests/memory_return.c preloaded with an allocator, in three
# scenarios, each a separate process:
#   full     everything allocated is freed (small, medium, large, cross-thread with the
#            owner gone, alive, and main's blocks freed by another thread): at least 90% of
#            the RSS growth must be back with the OS          -> must PASS
#   sparse   the same, but one small block in 4096 (~1 per MB) stays allocated, so arenas
#            stay alive and only their empty pools can go back (madvise): at least 90% of the
#            growth must be back                              -> must PASS
#   control  one block in 3 stays allocated: at most ~2/3 can go back, so the program must
#            report FAIL (proves the check can fail)          -> must FAIL
# Before its last reading the program idles MEMRET_SLEEP_MS (default here 250 ms) and then
# makes a few allocator calls: arenalloc keeps freed memory for reuse for its purge delay
# (50 ms, ARENALLOC_PURGE_DELAY_MS) and gives it back at a call after that.
#
#   tests/memory_return.sh [LIB.so | glibc] [--scenarios full,sparse,control] [--quiet]
#
# Default library: $ARENALLOC_LIB or target/release/libarenalloc.so.  "glibc" runs without
# a preload.  Exit status 0 when every scenario behaves as required.  The last line is
# "memory_return: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
lib=${ARENALLOC_LIB:-$PWD/target/release/libarenalloc.so}
scenarios=full,sparse,control quiet=0
while [ $# -gt 0 ]; do
    case $1 in
        --scenarios) scenarios=$2; shift 2 ;;
        --quiet) quiet=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) lib=$1; shift ;;
    esac
done
preload=()
if [ "$lib" != glibc ] && [ "$lib" != none ]; then
    [ -f "$lib" ] || { echo "memory_return.sh: no such library: $lib" >&2; exit 2; }
    preload=(env "LD_PRELOAD=$(readlink -f "$lib")")
fi
mkdir -p target/tests
bin=target/tests/memory_return
gcc -O2 -Wall -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
    -pthread -o $bin.$$ tests/memory_return.c
mv $bin.$$ $bin
passed=0 failed=0
for sc in ${scenarios//,/ }; do
    case $sc in
        full) keep=0 want=0 ;;
        sparse) keep=4096 want=0 ;;
        control) keep=3 want=1 ;;
        *) echo "memory_return.sh: unknown scenario $sc" >&2; exit 2 ;;
    esac
    set +e
    out=$(MEMRET_KEEP_EVERY=$keep MEMRET_SLEEP_MS=${MEMRET_SLEEP_MS:-250} timeout 60 "${preload[@]}" $bin 2>&1)
    rc=$?
    set -e
    if [ $rc -eq "$want" ]; then verdict=ok; passed=$((passed + 1))
    else verdict="NOT OK (exit $rc, wanted $want)"; failed=$((failed + 1)); fi
    if [ $quiet = 1 ]; then
        echo "$sc: $(tail -n1 <<<"$out") -> $verdict"
    else
        echo "--- scenario $sc ($( [ "$want" = 0 ] && echo 'must pass' || echo 'must fail'), ${lib##*/}): $verdict"
        echo "$out"
    fi
done
echo "memory_return: $passed passed, $failed failed"
[ $failed -eq 0 ]
