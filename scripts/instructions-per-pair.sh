#!/usr/bin/env bash
# Instructions per malloc+free pair on the fast path, counted by callgrind (repeatable on a
# noisy machine): bench/pair.c run with two loop counts, the difference divided by the
# extra iterations, so start-up costs cancel out.
#
#   instructions-per-pair.sh [--sizes 32,256] [--n N] [--csv] [ALLOC...]
#
# ALLOC is NAME=LIB.so, a bare LIB.so (named after the file), or "glibc" (no preload).
# No ALLOC: glibc and arenalloc ($ARENALLOC_LIB or target/release/libarenalloc.so).
# --csv prints "allocator,size,instructions" lines (scripts/bench.sh uses this).
# An allocator whose run fails under valgrind (snmalloc cannot initialise there: valgrind
# will not map the address range it reserves) gets no line and a warning; the others go on.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=32 n=1000000 csv=0 allocs=()
while [ $# -gt 0 ]; do
    case $1 in
        --sizes) sizes=$2; shift 2 ;;
        --n) n=$2; shift 2 ;;
        --csv) csv=1; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) allocs+=("$1"); shift ;;
    esac
done
[ ${#allocs[@]} -gt 0 ] || allocs=(glibc "arenalloc=${ARENALLOC_LIB:-$PWD/target/release/libarenalloc.so}")
command -v valgrind >/dev/null || { echo "instructions-per-pair.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
mkdir -p target/bench
bin=target/bench/pair
if [ ! -x $bin ] || [ bench/pair.c -nt $bin ]; then
    gcc -O2 -fno-builtin-malloc -fno-builtin-free -o $bin.tmp.$$ bench/pair.c && mv $bin.tmp.$$ $bin
fi
ir() { # ir LIB N SIZE -> total instructions of the run; fails if the program did not exit 0
    local out rc=0
    if [ -z "$1" ]; then
        out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null $bin "$2" "$3" 2>&1) || rc=$?
    else
        out=$(env LD_PRELOAD="$1" valgrind --tool=callgrind --callgrind-out-file=/dev/null $bin "$2" "$3" 2>&1) || rc=$?
    fi
    # a crash still prints a count (of the instructions up to it): that is no figure
    if [ $rc != 0 ] || grep -q 'Process terminating' <<<"$out"; then
        echo "exit status $rc: $(grep -v '^==' <<<"$out" | grep . | tail -n 3 | tr '\n' ' ')" >&2
        return 1
    fi
    sed -n 's/.*Collected : *\([0-9]*\).*/\1/p' <<<"$out" | grep . || { echo "callgrind failed: $out" >&2; return 1; }
}
[ $csv = 1 ] && echo "allocator,size,instructions"
for spec in "${allocs[@]}"; do
    case $spec in
        glibc|glibc=*) name=glibc lib= ;;
        *=*) name=${spec%%=*} lib=${spec#*=} ;;
        *) name=$(basename "$spec" .so) lib=$spec ;;
    esac
    if [ -n "$lib" ]; then
        [ -f "$lib" ] || { echo "instructions-per-pair.sh: $name: no such library: $lib" >&2; exit 1; }
        lib=$(readlink -f "$lib")
    fi
    for size in ${sizes//,/ }; do
        if ! { a=$(ir "$lib" $((n / 10)) "$size") && b=$(ir "$lib" $((n + n / 10)) "$size"); }; then
            echo "instructions-per-pair.sh: $name: the run under callgrind failed (above): not counted" >&2
            continue 2
        fi
        per=$(awk -v a="$a" -v b="$b" -v n="$n" 'BEGIN{printf "%.1f", (b - a) / n}')
        if [ $csv = 1 ]; then echo "$name,$size,$per"
        else printf '%-12s %6s instructions per malloc(%s)+free pair\n' "$name" "$per" "$size"; fi
    done
done
