#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] — run the fuzz target fuzz/fuzz_targets/ops.rs under libFuzzer.
#
# The fuzzer's bytes are a program of malloc/calloc/realloc/free/aligned calls, checked
# against a model of every live block (see the target's comment).  Two thirds of the time
# go to the default mode, one third to ARENALLOC_DEBUG=1; 60 s in all unless told (CI runs
# the default; run longer by hand: scripts/fuzz.sh 3600).
#
# Why these options:
# * --sanitizer none: AddressSanitizer replaces malloc, and malloc is what is under test.
# * --no-trace-compares: libFuzzer would learn the operands of the allocator's own
#   comparisons, among them free-list links encoded with the per-process secret, and write
#   them into its inputs, which live in blocks of this allocator.  A block whose first word
#   is the exact encoded link for its own address is indistinguishable from a free block, so
#   freeing it is reported as a double free.  No program can do that without reading the
#   secret, which an in-process comparison tracer does.  Coverage guidance stays on.
# A crash leaves its input in fuzz/artifacts/ops/; replay it with
#   cargo fuzz run -s none ops fuzz/artifacts/ops/<file>
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
debug_seconds=$(( seconds / 3 ))
default_seconds=$(( seconds - debug_seconds ))

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "scripts/fuzz.sh: installing cargo-fuzz from crates.io"
    cargo install --locked cargo-fuzz --version 0.13.2
fi

flags=(--sanitizer none --no-trace-compares --release)
cargo fuzz build "${flags[@]}" ops
mkdir -p fuzz/corpus/ops

run() { # run MODE-NAME SECONDS [ENV...]
    local name=$1 secs=$2; shift 2
    [ "$secs" -gt 0 ] || return 0
    echo "== fuzz: $name mode, $secs s"
    env "$@" cargo fuzz run "${flags[@]}" ops -- \
        -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
        2>&1 | grep -v -e '^#[0-9]*[[:space:]]*\(NEW\|REDUCE\)' \
        || { echo "scripts/fuzz.sh: the fuzz target failed in $name mode (input in fuzz/artifacts/ops/)" >&2; return 1; }
}
run default "$default_seconds"
run debug "$debug_seconds" ARENALLOC_DEBUG=1
echo "scripts/fuzz.sh: no failure in $seconds s"
