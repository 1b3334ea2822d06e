#!/usr/bin/env bash
# tests/stress/run.sh - build and run the C stress programs under an allocator.
#
# Usage (from anywhere; paths are relative to the repository root):
#   bash tests/stress/run.sh [--quick|--full] [--alloc PATH.so|--no-preload]
#                            [--only NAME[,NAME...]] [--seed N] [--seconds N]
#                            [--build-only]
#
#   --quick        short runs, ~30 s in all (default; what `make test` runs)
#   --full         long runs, several minutes (soak: 180 s unless --seconds)
#   --alloc PATH   allocator to preload (default target/release/libarenalloc.so)
#   --no-preload   no LD_PRELOAD: the system allocator (glibc), as a sanity check
#                  of the programs themselves
#   --only NAMES   run only these programs: prodcons churn realloc aligned fork soak
#   --seed N       seed of every random choice (default 12345)
#   --seconds N    soak duration
#   --build-only   build the programs into target/stress/ and stop
#
# The programs (tests/stress/*.c) are built with gcc into target/stress/
# (never with cargo; the allocator must already be built).  Each runs under
# `timeout` with LD_PRELOAD=<allocator> and STRESS_EXPECT_ALLOC=<its file
# name>: at start-up every program checks that malloc, free, calloc, realloc,
# the aligned allocators and malloc_usable_size resolve into a file of that
# name (dlsym + dladdr) and fails (exit 5) if not, so a preload that did not
# take effect cannot pass.  Prints each program's summary line and a PASS or
# FAIL line (with the tail of its stderr); exits 1 if any program failed,
# 2 on a usage or setup error.  Logs: target/stress/logs/.
set -u

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
SRC=tests/stress
OUT=${STRESS_OUT:-target/stress}
CC=${CC:-gcc}
PROGRAMS=(prodcons churn realloc aligned fork soak)

usage() {
    sed -n '2,/^set -u/p' "${BASH_SOURCE[0]}" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

MODE=--quick ALLOC=target/release/libarenalloc.so PRELOAD=1 ONLY="" SEED=12345
SECONDS_ARG=() BUILD_ONLY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick|--full) MODE=$1 ;;
        --alloc) [ $# -ge 2 ] || usage; ALLOC=$2; PRELOAD=1; shift ;;
        --no-preload) PRELOAD=0 ;;
        --only) [ $# -ge 2 ] || usage; ONLY=${2//,/ }; shift ;;
        --seed) [ $# -ge 2 ] || usage; SEED=$2; shift ;;
        --seconds) [ $# -ge 2 ] || usage; SECONDS_ARG=(--seconds "$2"); shift ;;
        --build-only) BUILD_ONLY=1 ;;
        -h|--help) usage ;;
        *) echo "run.sh: unknown argument: $1" >&2; usage ;;
    esac
    shift
done
if [ -n "$ONLY" ]; then
    for n in $ONLY; do
        case " ${PROGRAMS[*]} " in
            *" $n "*) ;;
            *) echo "run.sh: unknown program '$n' (have: ${PROGRAMS[*]})" >&2; exit 2 ;;
        esac
    done
    read -r -a PROGRAMS <<< "$ONLY"
fi

# ---- build -------------------------------------------------------------------

command -v "$CC" > /dev/null || { echo "run.sh: $CC not found (apt-get install gcc)" >&2; exit 2; }
command -v timeout > /dev/null || { echo "run.sh: timeout not found (coreutils)" >&2; exit 2; }
mkdir -p "$OUT/logs" || exit 2

# -fno-builtin-*: GCC must not reason about the allocation functions (elide
# malloc/free pairs, turn malloc+memset into calloc), which could hide bugs.
# PIE: the program's own address of malloc is then the global definition,
# which the start-up allocator check compares.
CFLAGS=(-O2 -g -Wall -Wextra -Werror -pthread -fPIE -pie
        -fno-builtin-malloc -fno-builtin-calloc -fno-builtin-realloc -fno-builtin-free)
SCENARIOS=(prodcons churn realloc aligned fork)

# build NAME EXTRA_FLAGS SOURCES... : compile into $OUT/NAME unless it is newer
# than every source, the header and this script (written to a temporary name
# first: runs may overlap).
build() {
    local name=$1 extra=$2; shift 2
    local bin=$OUT/$name up=1 f tmp
    for f in "$@" "$SRC/stress.h" "${BASH_SOURCE[0]}"; do
        [ "$bin" -nt "$f" ] || up=0
    done
    [ $up = 1 ] && return 0
    tmp=$(mktemp "$OUT/.$name.XXXXXX") || return 1
    # shellcheck disable=SC2086 # extra: zero or more flags
    if ! "$CC" "${CFLAGS[@]}" $extra -o "$tmp" "$@" -ldl; then
        rm -f "$tmp"
        echo "run.sh: build of $name failed" >&2
        return 1
    fi
    chmod 755 "$tmp" && mv -f "$tmp" "$bin"
}

build_failed=0
soak_src=("$SRC/soak.c" "$SRC/stress.c")
for s in "${SCENARIOS[@]}"; do
    build "$s" "" "$SRC/$s.c" "$SRC/stress.c" || build_failed=1
    soak_src+=("$SRC/$s.c")
done
# soak links every scenario in, without their main()s
build soak -DSTRESS_NO_MAIN "${soak_src[@]}" || build_failed=1
[ $build_failed = 0 ] || exit 2
[ $BUILD_ONLY = 1 ] && { echo "run.sh: built into $OUT/"; exit 0; }

# ---- the allocator -------------------------------------------------------------

ENV=()
if [ $PRELOAD = 1 ]; then
    if [ ! -f "$ALLOC" ]; then
        echo "run.sh: allocator not found: $ALLOC (build it first, or pass --alloc PATH / --no-preload)" >&2
        exit 2
    fi
    ALLOC=$(readlink -f -- "$ALLOC")
    case "$ALLOC" in
        *[\ :]*) echo "run.sh: LD_PRELOAD cannot express a path with a space or colon: $ALLOC" >&2; exit 2 ;;
    esac
    ENV=(LD_PRELOAD="$ALLOC" STRESS_EXPECT_ALLOC="$(basename -- "$ALLOC")")
    echo "stress: allocator $ALLOC (preloaded; each program checks malloc & co. resolve into it)"
else
    ENV=(-u LD_PRELOAD STRESS_EXPECT_ALLOC=libc.so.6)
    echo "stress: no preload: the system allocator (each program checks malloc & co. resolve into libc.so.6)"
fi

# ---- run -------------------------------------------------------------------------

limit_of() { # per-program timeout, seconds
    if [ "$MODE" = --quick ]; then
        [ "$1" = soak ] && echo 180 || echo 120
    else
        local s=180
        [ ${#SECONDS_ARG[@]} -gt 0 ] && s=${SECONDS_ARG[1]}
        [ "$1" = soak ] && echo $((s + 600)) || echo 3600
    fi
}

failed=() passed=0
now_ms() { date +%s%3N; }
secs_since() { local d=$(( $(now_ms) - $1 + 50 )); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }
t_all=$(now_ms)
for prog in "${PROGRAMS[@]}"; do
    args=("$MODE" --seed "$SEED")
    [ "$prog" = soak ] && args+=("${SECONDS_ARG[@]}")
    limit=$(limit_of "$prog")
    log=$OUT/logs/$prog
    t0=$(now_ms)
    timeout -k 10 "$limit" env "${ENV[@]}" "$OUT/$prog" "${args[@]}" > "$log.out" 2> "$log.err"
    rc=$?
    dt=$(secs_since "$t0")
    cat "$log.out"
    if [ $rc = 0 ] && grep -q "^stress $prog: .* verified" "$log.out"; then
        printf 'PASS %s (%s s)\n' "$prog" "$dt"
        passed=$((passed + 1))
    else
        case $rc in
            0) why="exit 0 but no summary line" ;;
            124|137) why="TIMEOUT after ${limit} s (killed)" ;;
            3) why="exit 3: corruption" ;;
            4) why="exit 4: a forked child hung" ;;
            5) why="exit 5: the preload did not take effect" ;;
            *) if [ $rc -gt 128 ]; then why="killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null))"
               else why="exit $rc"; fi ;;
        esac
        printf 'FAIL %s (%s, %s s); to reproduce: env %s %s %s\n' "$prog" "$why" "$dt" \
            "${ENV[*]}" "$OUT/$prog" "${args[*]}"
        tail -n 5 "$log.err" | sed 's/^/    /'
        failed+=("$prog")
    fi
done
printf 'stress: %d passed, %d failed (%s, %s s)\n' "$passed" "${#failed[@]}" "${MODE#--}" "$(secs_since "$t_all")"
[ ${#failed[@]} = 0 ] || { echo "stress: FAILED: ${failed[*]}" >&2; exit 1; }
exit 0
