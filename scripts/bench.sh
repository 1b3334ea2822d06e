#!/usr/bin/env bash
# make bench: arenalloc against glibc, jemalloc, tcmalloc, mimalloc v3 and v2 and snmalloc (and
# CPython's own pymalloc for the Python workloads), every workload under every allocator,
# interleaved (round 1: A B C D E for each workload, round 2: A B C D E, ...), medians over
# the rounds.
#
#   scripts/bench.sh [--quick] [--rounds N] [--only LIST] [--alloc NAME=PATH]... [--out DIR]
#
#   --quick          smaller workloads and 3 rounds: a smoke run of ~3 minutes (figures are
#                    rougher; not for the README)
#   --rounds N       rounds (default 5; --quick: 3)
#   --only LIST      comma-separated workloads or groups to run: the groups are c, python,
#                    sqlite, instr (callgrind instruction counts), memret (memory-return test);
#                    workloads: small medium large larson-1t larson-2t prodcons realloc bigbuf
#                    py-dicts py-lists py-strings py-json py-objtree sqlite
#   --alloc NAME=PATH  add an allocator, or replace the library of one (NAME=glibc or an empty
#                    PATH means no preload).  Defaults:
#                      glibc       (no preload)
#                      jemalloc    /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
#                      tcmalloc    /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
#                      mimalloc-v3 bench/peers/lib/libmimalloc-v3.so  } the newest releases, built
#                      mimalloc-v2 bench/peers/lib/libmimalloc-v2.so  } by scripts/build-peers.sh
#                      snmalloc    bench/peers/lib/libsnmalloc.so     } (run here when missing)
#                      arenalloc   $ARENALLOC_LIB, else target/release/libarenalloc.so
#                    (Debian's old mimalloc 2.0.9, the column "mimalloc" before: --alloc
#                    mimalloc-deb=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2)
#   --out DIR        where results go (default bench/results)
#
# Environment: PYTHON (default python3; the real binary behind a pyenv shim is used),
# SUBJECT (default arenalloc: the allocator the targets are evaluated for), PEERS (default
# jemalloc,tcmalloc,mimalloc-v3,mimalloc-v2,snmalloc: "the best peer" is the best of these).
#
# Writes DIR/results.md (Markdown tables, machine, versions, targets met or not),
# DIR/results.csv (every run), DIR/medians.csv, DIR/instructions.csv,
# DIR/memory_return.txt and the chart DIR/bench.svg (+ bench.png), drawn with gnuplot.
# Missing tools (gcc, valgrind, gnuplot, sqlite3, GNU time, Debian's jemalloc and tcmalloc)
# are installed with apt-get when the script runs as root (or with sudo); otherwise it stops
# and says what to install.  Missing peers of bench/peers/lib are built (build-peers.sh).
# Each allocator library is copied once at the start, so a rebuild of target/release during
# the run does not mix two versions.  Exit status 1 if any run failed (crash, wrong output;
# see the status column of results.csv), after the report.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ORIG_ARGS=("$@")
T_START=$(date +%s)

usage() { sed -n '2,41p' "$0" | sed 's/^# \{0,1\}//'; }
rounds='' quick=0 only='' out=bench/results
declare -a alloc_names=(glibc jemalloc tcmalloc mimalloc-v3 mimalloc-v2 snmalloc arenalloc)
syslib=/usr/lib/$(uname -m)-linux-gnu # Debian's multiarch directory (x86_64, aarch64)
peerlib=$ROOT/bench/peers/lib # scripts/build-peers.sh's
declare -A alloc_path=(
    [glibc]=''
    [jemalloc]=$syslib/libjemalloc.so.2
    [tcmalloc]=$syslib/libtcmalloc_minimal.so.4
    [mimalloc-v3]=$peerlib/libmimalloc-v3.so
    [mimalloc-v2]=$peerlib/libmimalloc-v2.so
    [snmalloc]=$peerlib/libsnmalloc.so
    [arenalloc]=${ARENALLOC_LIB:-$ROOT/target/release/libarenalloc.so}
)
declare -A alloc_given=()
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1; shift ;;
        --rounds) rounds=$2; shift 2 ;;
        --rounds=*) rounds=${1#*=}; shift ;;
        --only) only=$2; shift 2 ;;
        --only=*) only=${1#*=}; shift ;;
        --alloc) spec=$2; shift 2
            [[ $spec == *=* ]] || { echo "bench.sh: --alloc wants NAME=PATH, got '$spec'" >&2; exit 2; }
            n=${spec%%=*} p=${spec#*=}
            [[ $n =~ ^[A-Za-z0-9_.+-]+$ ]] || { echo "bench.sh: bad allocator name '$n'" >&2; exit 2; }
            [ "$n" = pymalloc ] && { echo "bench.sh: 'pymalloc' is the built-in Python column" >&2; exit 2; }
            [ -n "${alloc_path[$n]+x}" ] || alloc_names+=("$n")
            [ "$n" = glibc ] && p=
            alloc_path[$n]=$p alloc_given[$n]=1 ;;
        --out) out=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$rounds" ] || rounds=$([ $quick = 1 ] && echo 3 || echo 5)
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --rounds wants a positive number" >&2; exit 2; }
SUBJECT=${SUBJECT:-arenalloc}
PEERS=${PEERS:-jemalloc,tcmalloc,mimalloc-v3,mimalloc-v2,snmalloc}

# ---------------------------------------------------------------- workloads
# name|group|unit|higher_is_better|command (@B@ = binaries, @PY@ = python, @R@ = repo)
if [ $quick = 1 ]; then S=5 PYS=0.3; else S=1 PYS=1; fi
q() { echo $(( $1 / S )); } # scale a count down in quick mode
workloads=(
    "small|c|ops/s|1|@B@/churn $(q 20000000) 8 512 50000"
    "medium|c|ops/s|1|@B@/churn $(q 1000000) 512 65536 5000"
    "large|c|ops/s|1|@B@/churn $(q 300000) 512 65536 5000 5 8388608"
    "larson-1t|c|ops/s|1|@B@/larson 1 $(q 200) 100000 5000 8 1000"
    "larson-2t|c|ops/s|1|@B@/larson 2 $(q 200) 100000 5000 8 1000"
    "prodcons|c|ops/s|1|@B@/prodcons $(q 10000000) 8 512 1024"
    "realloc|c|ops/s|1|@B@/realloc $(q 30000)"
    "bigbuf|c|ops/s|1|@B@/bigbuf $(q 1000) 20 5242880 26214400"
    "py-dicts|python|s|0|@PY@ @R@/bench/python/dicts.py $PYS"
    "py-lists|python|s|0|@PY@ @R@/bench/python/lists.py $PYS"
    "py-strings|python|s|0|@PY@ @R@/bench/python/strings.py $PYS"
    "py-json|python|s|0|@PY@ @R@/bench/python/json_roundtrip.py $PYS"
    "py-objtree|python|s|0|@PY@ @R@/bench/python/objtree.py $PYS"
    "sqlite|sqlite|s|0|sqlite3 -batch"
)
selected() { # selected NAME GROUP
    [ -z "$only" ] && return 0
    local x
    for x in ${only//,/ }; do [ "$x" = "$1" ] || [ "$x" = "$2" ] && return 0; done
    return 1
}
if [ -n "$only" ]; then # reject misspellings instead of silently running nothing
    for x in ${only//,/ }; do
        ok=0
        for w in "${workloads[@]}"; do IFS='|' read -r n g _ <<<"$w"; [ "$x" = "$n" ] || [ "$x" = "$g" ] && ok=1; done
        case $x in instr|memret) ok=1 ;; esac
        [ $ok = 1 ] || { echo "bench.sh: --only: unknown workload or group '$x'" >&2; exit 2; }
    done
fi

# ---------------------------------------------------------------- tools
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
need_pkgs=()
want_cmd() { command -v "$1" >/dev/null 2>&1 || need_pkgs+=("$2"); }
want_cmd gcc gcc
want_cmd valgrind valgrind
want_cmd gnuplot gnuplot-nox
want_cmd sqlite3 sqlite3
want_cmd timeout coreutils
[ -x /usr/bin/time ] || need_pkgs+=(time)
declare -A peer_pkg=([jemalloc]=libjemalloc2 [tcmalloc]=libtcmalloc-minimal4)
for n in "${!peer_pkg[@]}"; do
    # only the default paths are ours to install; a path given with --alloc must exist
    if [ -z "${alloc_given[$n]:-}" ] && [ ! -f "${alloc_path[$n]}" ]; then need_pkgs+=("${peer_pkg[$n]}"); fi
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "bench.sh: installing ${need_pkgs[*]} (Debian packages)" >&2
    if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
        echo "bench.sh: not root and no sudo: install ${need_pkgs[*]} first" >&2; exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi
PYTHON_BIN=$("${PYTHON:-python3}" -c 'import os, sys; print(os.path.realpath(sys.executable))')
# the newest mimalloc v3, v2 and snmalloc: built from crates.io sources on first use (a
# minute; needs cargo and cmake, which build-peers.sh installs when it can)
for n in mimalloc-v3 mimalloc-v2 snmalloc; do
    if [ -n "${alloc_path[$n]+x}" ] && [ -z "${alloc_given[$n]:-}" ] && [ ! -f "${alloc_path[$n]}" ]; then
        echo "bench.sh: building the peer allocators (scripts/build-peers.sh)" >&2
        bash scripts/build-peers.sh || { echo "bench.sh: scripts/build-peers.sh failed" >&2; exit 1; }
        break
    fi
done

# ---------------------------------------------------------------- allocators
work=$ROOT/target/bench
mkdir -p "$work" "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/lib" # this run's copies: a concurrent rebuild or bench run cannot swap them
for n in "${alloc_names[@]}"; do
    p=${alloc_path[$n]}
    [ -z "$p" ] && continue
    if [ ! -f "$p" ]; then
        echo "bench.sh: $n: no such library: $p" >&2
        [ "$n" = arenalloc ] && echo "bench.sh: build it (make build) or pass --alloc arenalloc=/path/to/libarenalloc.so" >&2
        exit 1
    fi
    cp -L "$p" "$tmp/lib/$n.so"
done
lib_of() { [ -n "${alloc_path[$1]}" ] && echo "$tmp/lib/$1.so" || true; }

# ---------------------------------------------------------------- build
CFLAGS=(-O2 -g -Wall -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc -pthread)
for p in churn larson prodcons realloc bigbuf pair; do
    gcc "${CFLAGS[@]}" -o "$work/$p.tmp.$$" "bench/$p.c"
    mv "$work/$p.tmp.$$" "$work/$p"
done

csv=$out/results.csv
echo "workload,group,unit,higher_is_better,allocator,round,metric,cpu_metric,wall_s,peak_rss_kb,loadavg,status" >"$csv"
failures=0

run_one() { # run_one WORKLOAD-LINE ALLOCATOR ROUND
    local name group unit hib cmd
    IFS='|' read -r name group unit hib cmd <<<"$1"
    local a=$2 r=$3 lib envs=()
    cmd=${cmd//@B@/$work}; cmd=${cmd//@PY@/$PYTHON_BIN}; cmd=${cmd//@R@/$ROOT}
    if [ "$a" = pymalloc ]; then lib=
    else lib=$(lib_of "$a"); [ "$group" = python ] && envs+=(PYTHONMALLOC=malloc); fi
    [ -n "$lib" ] && envs+=("LD_PRELOAD=$lib")
    local stdin=/dev/null
    [ "$name" = sqlite ] && stdin=$ROOT/bench/sqlite.sql
    local load t0 rc=0
    load=$(cut -d' ' -f1 /proc/loadavg)
    t0=$EPOCHREALTIME
    # shellcheck disable=SC2086 # cmd is a word list by design
    timeout 600 /usr/bin/time -f '%M %U %S' -o "$tmp/time" env -u LD_PRELOAD -u PYTHONMALLOC "${envs[@]}" $cmd \
        <"$stdin" >"$tmp/out" 2>"$tmp/err" || rc=$?
    local t1=$EPOCHREALTIME
    local wall rss metric cpu status=ok
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b - a}')
    rss=$(tail -n1 "$tmp/time" 2>/dev/null | awk 'NF == 3 && $1 ~ /^[0-9]+$/ {print $1}')
    if [ "$name" = sqlite ]; then
        metric=$wall
        cpu=$(tail -n1 "$tmp/time" 2>/dev/null | awk 'NF == 3 {printf "%.2f", $2 + $3}')
        grep -q '^ok|66666|211|5000|2000|100000|10000|55555|366663$' "$tmp/out" || status=wrong-output
    else
        metric=$(tail -n1 "$tmp/out" | grep -E '^[0-9]+(\.[0-9]+)?$' || echo "")
        cpu=$(sed -n 's/^cpu \([0-9.]*\)$/\1/p' "$tmp/err" | tail -n1)
        [ -n "$metric" ] || status=no-metric
    fi
    [ $rc = 0 ] || status=exit-$rc
    if [ $status != ok ]; then
        failures=$((failures + 1))
        metric='' cpu=''
        {
            echo "bench.sh: $name under $a (round $r) failed: $status"
            tail -n 5 "$tmp/err"
        } >&2
    fi
    echo "$name,$group,$unit,$hib,$a,$r,$metric,$cpu,$wall,$rss,$load,$status" >>"$csv"
    printf '  %-11s %-11s %14s %-5s (cpu %14s) %7.2fs %8s KB  load %5s %s\n' "$name" "$a" "${metric:-—}" "$unit" \
        "${cpu:-—}" "$wall" "${rss:-?}" "$load" \
        "$([ $status = ok ] || echo "$status")" >&2
}

n_sel=0 py_sel=
for w in "${workloads[@]}"; do
    IFS='|' read -r n g _ <<<"$w"
    selected "$n" "$g" || continue
    n_sel=$((n_sel + 1))
    [ "$g" = python ] && py_sel=' pymalloc'
done
uptime_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench.sh: $n_sel workloads x allocators (${alloc_names[*]}$py_sel), $rounds interleaved rounds$([ $quick = 1 ] && echo ', quick')" >&2
for r in $(seq "$rounds"); do
    [ $n_sel -gt 0 ] && echo "bench.sh: round $r of $rounds" >&2
    for w in "${workloads[@]}"; do
        IFS='|' read -r name group _ <<<"$w"
        selected "$name" "$group" || continue
        cols=("${alloc_names[@]}")
        [ "$group" = python ] && cols+=(pymalloc)
        for a in "${cols[@]}"; do run_one "$w" "$a" "$r"; done
    done
done

# ---------------------------------------------------------------- instruction counts
instr_csv=$out/instructions.csv
if selected instr instr; then
    echo "bench.sh: instructions per malloc+free pair (callgrind)" >&2
    specs=()
    for n in "${alloc_names[@]}"; do
        l=$(lib_of "$n"); if [ -z "$l" ]; then specs+=(glibc); else specs+=("$n=$l"); fi
    done
    bash scripts/instructions-per-pair.sh --csv --sizes 32,256 --n "$([ $quick = 1 ] && echo 200000 || echo 1000000)" \
        "${specs[@]}" >"$instr_csv.tmp" && mv "$instr_csv.tmp" "$instr_csv" \
        || { echo "bench.sh: instruction counting failed" >&2; failures=$((failures + 1)); rm -f "$instr_csv.tmp"; }
    # a peer that cannot run under valgrind (snmalloc) is left out with a warning; the subject may not be
    if [ -f "$instr_csv" ] && [ -n "${alloc_path[$SUBJECT]+x}" ] && ! grep -q "^$SUBJECT," "$instr_csv"; then
        echo "bench.sh: no instruction count for $SUBJECT (its run under callgrind failed)" >&2
        failures=$((failures + 1))
    fi
else
    rm -f "$instr_csv"
fi

# ---------------------------------------------------------------- memory return
memret=$out/memory_return.txt
if selected memret memret; then
    echo "bench.sh: memory-return test under each allocator" >&2
    : >"$memret"
    for n in "${alloc_names[@]}"; do
        l=$(lib_of "$n")
        echo "== $n" >>"$memret"
        bash tests/memory_return.sh "${l:-glibc}" --scenarios full,sparse >>"$memret" 2>&1 || true
    done
else
    rm -f "$memret"
fi

# ---------------------------------------------------------------- machine and versions
uptime_end=$(cut -d' ' -f1-3 /proc/loadavg)
meta=$out/meta.txt
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
    echo "nproc=$(nproc)"
    echo "kernel=$(uname -sr)"
    echo "os=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-?}")"
    echo "mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "gcc=$(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion)"
    echo "python=$("$PYTHON_BIN" -c 'import sys; print(sys.version.split()[0])') ($PYTHON_BIN)"
    echo "sqlite=$(sqlite3 -version | cut -d' ' -f1)"
    echo "rounds=$rounds"
    echo "quick=$quick"
    echo "only=$only"
    echo "loadavg_start=$uptime_start"
    echo "loadavg_end=$uptime_end"
    echo "seconds=$(( $(date +%s) - T_START ))"
    echo "subject=$SUBJECT"
    echo "peers=$PEERS"
    echo "command=scripts/bench.sh$([ ${#ORIG_ARGS[@]} -eq 0 ] || printf ' %q' "${ORIG_ARGS[@]}")"
    for n in "${alloc_names[@]}"; do
        l=$(lib_of "$n")
        if [ -z "$l" ]; then
            echo "alloc.$n=no preload|glibc $(dpkg-query -W -f '${Version}' libc6 2>/dev/null || ldd --version | head -n1 | awk '{print $NF}')|"
            continue
        fi
        src=$(readlink -f "${alloc_path[$n]}")
        ver=
        pkg=$(dpkg -S "$src" 2>/dev/null | head -n1 | cut -d: -f1) || true
        [ -n "$pkg" ] && ver="$pkg $(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null)"
        if [ -z "$ver" ] && [[ $src == "$peerlib"/* ]] && [ -f bench/peers/versions.txt ]; then # built by build-peers.sh
            ver=$(awk -F'|' -v k="$n=" 'index($0, k) == 1 {v = substr($1, length(k) + 1); s = $2; sub(/ \(.*/, "", s); sub(/^crates.io /, "", s); print v " (" s ")"}' bench/peers/versions.txt)
        fi
        if [ -z "$ver" ]; then # ours: ask the library itself (a dlopen'ed copy is a separate allocator)
            ver=$("$PYTHON_BIN" -c 'import ctypes, sys
f = getattr(ctypes.CDLL(sys.argv[1]), "arenalloc_version", None)
if f: f.restype = ctypes.c_char_p; print("arenalloc " + f().decode())' "$l" 2>/dev/null) || true
            case $src in "$ROOT"/*) ver="${ver:-?}, built from $(git rev-parse --short HEAD 2>/dev/null)$(git status --porcelain -- src 2>/dev/null | grep -q . && echo '+local changes' || true)" ;; esac
        fi
        echo "alloc.$n=$src|${ver:-unknown}|$(sha256sum "$l" | cut -c1-12)"
    done
} >"$meta"

# ---------------------------------------------------------------- report and chart
"$PYTHON_BIN" bench/report.py --out "$out" --allocators "$(IFS=,; echo "${alloc_names[*]}")"
echo "bench.sh: wrote $out/results.md, $out/results.csv, $out/bench.svg ($(( $(date +%s) - T_START )) s)" >&2
if [ $failures -gt 0 ]; then
    echo "bench.sh: $failures run(s) failed; see above and the status column of $csv" >&2
    exit 1
fi
