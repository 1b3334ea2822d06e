#!/usr/bin/env bash
# Instructions per malloc+free pair on the fast path, counted by callgrind (repeatable on a
# noisy machine): bench/pair.c run with two loop counts, the difference divided by the
# extra iterations, so start-up costs cancel out.  Usage: instructions-per-pair.sh [LIB.so...]
# (no argument: glibc and arenalloc).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench
gcc -O2 -fno-builtin-malloc -fno-builtin-free -o target/bench/pair bench/pair.c
ir() { # ir LIB N -> total instructions
    if [ "$1" = glibc ]; then
        valgrind --tool=callgrind --callgrind-out-file=/dev/null target/bench/pair "$2" 2>&1
    else
        LD_PRELOAD=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null target/bench/pair "$2" 2>&1
    fi | sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
}
libs=("$@")
[ ${#libs[@]} -gt 0 ] || libs=(glibc "$PWD/target/release/libarenalloc.so")
for lib in "${libs[@]}"; do
    a=$(ir "$lib" 100000); b=$(ir "$lib" 1100000)
    printf '%-40s %6.1f instructions per malloc(32)+free pair\n' "$(basename "$lib")" "$(echo "($b - $a) / 1000000" | bc -l)"
done
