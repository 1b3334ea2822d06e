#!/usr/bin/env bash
# tests/stress/selftest.sh - prove that the stress programs' checks can fail.
#
# Usage (from anywhere): bash tests/stress/selftest.sh [--no-baseline]
#
# Builds the programs (tests/stress/run.sh --build-only) and the faulty
# allocator tests/stress/faulty_malloc.c into target/stress/faulty_malloc.so,
# then asserts:
#   1. baseline (skipped with --no-baseline): every program PASSES --quick
#      under faulty_malloc.so with FAULTY_MODE=none, so the failures below come
#      from the injected faults, not from the shim or the programs;
#   2. every program FAILS under each fault mode listed for it below: exit
#      status 3 (corruption), a one-line "stress NAME...: CORRUPTION" (or
#      MISALIGNED / USABLE SIZE) diagnostic on stderr, and the shim's
#      "faulty_malloc: ..." announcement that the fault was injected;
#   3. soak (--seconds 12) FAILS (exit 1, "RSS keeps growing") under
#      FAULTY_MODE=leak, where every 10th free leaks its block;
#   4. run.sh reports FAIL and exits non-zero for a corrupting allocator;
#   5. run.sh fails (a program exits 5, "PRELOAD CHECK FAILED") when the
#      preloaded library does not export malloc, so a preload that did not take
#      effect cannot pass; and exits 2 for a library path that does not exist.
# Prints one PASS/FAIL line per assertion; exits 1 if any failed.
set -u

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
SRC=tests/stress
OUT=${STRESS_OUT:-target/stress}
CC=${CC:-gcc}
BASELINE=1
case "${1:-}" in
    "") ;;
    --no-baseline) BASELINE=0 ;;
    *) echo "usage: bash tests/stress/selftest.sh [--no-baseline]" >&2; exit 2 ;;
esac

# program: the fault modes that must catch it
declare -A MODES=(
    [prodcons]="overlap"
    [churn]="overlap"
    [realloc]="overlap realloc"
    [aligned]="overlap calloc align"
    [fork]="overlap realloc align"
    [soak]="overlap realloc"
)
PROGRAMS=(prodcons churn realloc aligned fork soak)

bash "$SRC/run.sh" --build-only > /dev/null || { echo "selftest: build failed" >&2; exit 2; }
SHIM=$OUT/faulty_malloc.so NOMALLOC=$OUT/libnomalloc.so
"$CC" -O2 -g -Wall -Wextra -Werror -shared -fPIC -pthread -o "$SHIM" "$SRC/faulty_malloc.c" ||
    { echo "selftest: build of faulty_malloc.so failed" >&2; exit 2; }
# a library that exports no malloc: preloading it changes nothing
echo 'int stress_nomalloc_marker(void) { return 42; }' |
    "$CC" -shared -fPIC -x c -o "$NOMALLOC" - || exit 2
SHIM=$(readlink -f "$SHIM") NOMALLOC=$(readlink -f "$NOMALLOC")
LOG=$OUT/logs/selftest
mkdir -p "$LOG" || exit 2

npass=0 nfail=0
pass() { echo "PASS $*"; npass=$((npass + 1)); }
fail() { echo "FAIL $*"; nfail=$((nfail + 1)); }

# run_shim MODE PROG [ARGS...]: run PROG --quick under the shim in MODE;
# sets rc, err.
run_shim() {
    local mode=$1 prog=$2; shift 2
    err=$LOG/$prog.$mode.err
    timeout -k 5 120 env LD_PRELOAD="$SHIM" STRESS_EXPECT_ALLOC=faulty_malloc.so \
        FAULTY_MODE="$mode" "$OUT/$prog" --quick "$@" > "$LOG/$prog.$mode.out" 2> "$err"
    rc=$?
}

if [ $BASELINE = 1 ]; then
    for prog in "${PROGRAMS[@]}"; do
        run_shim none "$prog"
        if [ $rc = 0 ]; then
            pass "$prog passes under faulty_malloc.so FAULTY_MODE=none"
        else
            fail "$prog under faulty_malloc.so FAULTY_MODE=none: exit $rc (the shim or the program is broken)"
            tail -n 3 "$err" | sed 's/^/    /'
        fi
    done
fi

for prog in "${PROGRAMS[@]}"; do
    for mode in ${MODES[$prog]}; do
        run_shim "$mode" "$prog"
        diag=$(grep -m1 -E "^stress $prog( \(forked child\))?: (CORRUPTION|MISALIGNED|USABLE SIZE)" "$err")
        if [ $rc = 3 ] && [ -n "$diag" ] && grep -q '^faulty_malloc: ' "$err"; then
            pass "$prog caught FAULTY_MODE=$mode: ${diag:0:150}..."
        else
            fail "$prog NOT caught by FAULTY_MODE=$mode: exit $rc (want 3 with a CORRUPTION diagnostic)"
            tail -n 3 "$err" | sed 's/^/    /'
        fi
    done
done

# the soak's RSS check: a leaking allocator must fail it
run_shim leak soak --seconds 12
if [ $rc = 1 ] && grep -q -E '^stress soak: FAILED: RSS (keeps growing|.* exceeds)' "$err" &&
   grep -q '^faulty_malloc: leak' "$err"; then
    pass "soak caught FAULTY_MODE=leak: $(grep -m1 '^stress soak: FAILED' "$err")"
else
    fail "soak NOT caught by FAULTY_MODE=leak: exit $rc (want 1, RSS keeps growing)"
    tail -n 3 "$err" | sed 's/^/    /'
fi

# run.sh itself: FAIL for a corrupting allocator ...
out=$(FAULTY_MODE=overlap bash "$SRC/run.sh" --quick --alloc "$SHIM" --only churn 2>&1)
rc=$?
if [ $rc = 1 ] && grep -q '^FAIL churn (exit 3: corruption' <<< "$out"; then
    pass "run.sh reports FAIL (exit $rc) under a corrupting allocator"
else
    fail "run.sh under a corrupting allocator: exit $rc"
    tail -n 5 <<< "$out" | sed 's/^/    /'
fi
# ... for a preload that does not take effect ...
out=$(bash "$SRC/run.sh" --quick --alloc "$NOMALLOC" --only prodcons 2>&1)
rc=$?
if [ $rc = 1 ] && grep -q 'PRELOAD CHECK FAILED: malloc resolves into .*libc\.so' <<< "$out" &&
   grep -q '^FAIL prodcons (exit 5' <<< "$out"; then
    pass "run.sh fails (exit $rc) when the preloaded library does not export malloc"
else
    fail "run.sh with a library without malloc: exit $rc (want 1 and PRELOAD CHECK FAILED)"
    tail -n 5 <<< "$out" | sed 's/^/    /'
fi
# ... and for a library that is not there.
bash "$SRC/run.sh" --quick --alloc "$OUT/no-such-lib.so" --only prodcons > /dev/null 2>&1
rc=$?
if [ $rc = 2 ]; then
    pass "run.sh exits 2 for a missing allocator library"
else
    fail "run.sh with a missing allocator library: exit $rc (want 2)"
fi

echo "selftest: $npass passed, $nfail failed"
[ $nfail = 0 ]
