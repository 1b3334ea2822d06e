#!/usr/bin/env bash
# First benchmark: small-object churn (bench/churn.c) under glibc and under arenalloc,
# interleaved (glibc, arenalloc, glibc, arenalloc, ...) for ROUNDS rounds; prints the
# median ops/s of each and their ratio.  Full benchmarking comes with `make bench` later.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-7}
STEPS=${STEPS:-20000000}
LIB=$PWD/target/release/libarenalloc.so
mkdir -p target/bench
gcc -O2 -o target/bench/churn bench/churn.c
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
g=(); a=()
for r in $(seq "$ROUNDS"); do
    g+=("$(target/bench/churn "$STEPS" 2>/dev/null)")
    a+=("$(LD_PRELOAD=$LIB target/bench/churn "$STEPS" 2>/dev/null)")
done
mg=$(printf '%s\n' "${g[@]}" | median)
ma=$(printf '%s\n' "${a[@]}" | median)
printf 'small-object churn, 1 thread, 8-512 B, 50k live, %s steps, median of %s interleaved rounds\n' "$STEPS" "$ROUNDS"
printf '  glibc     %12.0f ops/s\n  arenalloc %12.0f ops/s\n  ratio     %12.2fx\n' "$mg" "$ma" "$(echo "$ma / $mg" | bc -l)"
