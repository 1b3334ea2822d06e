#!/usr/bin/env bash
# scripts/stress.sh [--quick | --full] [--only NAME]... [--alloc PATH.so] [--keep]
#
# Real programs, run twice: without and with a malloc replacement preloaded.
#
# Every program of the catalogue below runs once with the system allocator
# ("base") and once with LD_PRELOAD of the library ("pre"), in the same work
# directory path and the same environment, and the two runs are compared:
#
#   * exit status of every command, and its stdout and stderr byte for byte
#     (a transcript per run: "$ command", its output, "[exit N]");
#   * produced artifacts (databases, object files, archives, compressed
#     streams) by SHA-256 digest, written into the transcript;
#   * where a program is not deterministic, only a digest of its deterministic
#     part: CPython's regression suite prints timings, so the per-module and
#     per-test outcomes are compared (regrtest summary + --junit-xml), and
#     redis-benchmark's request rates vary, so only the list of benchmarks that
#     completed is compared (plus a deterministic SET/GET/... session);
#   * wall time and peak RSS: each command runs under /usr/bin/time (for the
#     peak RSS, %M) and is timed by the script around it ($EPOCHREALTIME, which
#     /usr/bin/time's 10 ms %e is too coarse for).  A scenario's time is the sum
#     over its commands, its peak RSS the largest of any one process.  The
#     script's own bash is never preloaded: only the programs are.  The table
#     shows the ratios preloaded / base (medians over the repetitions).
#
# Proof that the library really served the run.  A run that silently did not
# preload (a library that failed to load, a library that does not define
# malloc, an LD_PRELOAD dropped on the way) must fail, for any --alloc library.
# So the script builds a tiny probe library with gcc (into
# ${XDG_CACHE_HOME:-~/.cache}/arenalloc-stress/) and preloads it AFTER the
# allocator, in both runs (base: LD_PRELOAD=probe; pre: LD_PRELOAD=alloc:probe).
# At start-up the probe's constructor asks the dynamic linker where malloc,
# calloc, realloc, free, posix_memalign, aligned_alloc, malloc_usable_size and
# PyMem_RawMalloc/PyMem_Malloc/PyObject_Malloc resolve (dlsym(RTLD_DEFAULT) +
# dladdr, looking past a canonical PLT entry of the program); at exit its
# destructor appends one line per process (pid, executable, the file each
# symbol resolves into; for arenalloc also its own counters
# arenalloc_arenas_mapped + _unmapped and arenalloc_allocated_blocks, read
# then) to the file named by $STRESS_PROBE_LOG, with open/write only.  A
# process that ends by exec, _exit or a signal does not report.  After each
# pair of runs the script requires of the preloaded run:
#   - at least one process reported;
#   - in every process that reported, malloc (and each of the other symbols
#     that the library itself defines, per nm -D) resolved into the library;
#   - every executable that reported in the base run reported in the
#     preloaded run too (so the main program and its children were covered;
#     for CPython's suite, whose thousands of child processes depend on
#     timing, the interpreter itself);
#   - for arenalloc (a library exporting arenalloc_arenas_mapped): its own
#     counters show arenas were mapped, i.e. it really allocated;
#   - no "cannot be preloaded" message from ld.so.
# Redis additionally checks /proc/PID/maps of the running server.  The
# thread-stress entry is the exception: tests/stress/run.sh sets LD_PRELOAD
# itself, and each of its programs checks the resolution of malloc & co.
#
# The catalogue (NAME: what):
#   python-malloc  CPython's regression suite, PYTHONMALLOC=malloc (every object
#                  through malloc): 12 modules in --quick, the whole suite
#                  in --full minus what fails or hangs here without the preload
#   python-pymem   the same with PYTHONMALLOC unset (pymalloc, with the PyMem_*
#                  / PyObject_* interposition path of the library, if it has one)
#   sqlite3        build, index, query, update, vacuum a generated database
#                  (100k rows; 1M in --full)
#   git            init, 50 commits (300 in --full), branch, merge, log, blame,
#                  grep, gc --aggressive, fsck, repack, clone
#   gcc            gcc and g++ compiling a multi-file C program and a threaded
#                  C++17 program (operator new/delete through malloc); the
#                  programs built run too; objects and binaries compared
#   perl           hashes, arrays, sorting, regexes on generated data
#   sort           coreutils sort (external merge sort, 2 threads), sort -u
#   gzip-tar       tar (deterministic archive) + gzip -9, then back; compared
#   xz             xz -T2 compress + decompress (multi-threaded)
#   pigz           pigz -p2 compress + decompress (multi-threaded)
#   redis          redis-server on a free loopback port driven by redis-benchmark
#                  (10 tests of 20000 requests; 100000 in --full) and a
#                  deterministic redis-cli session (replies compared)
#   thread-stress  the project's own C stress programs: tests/stress/run.sh,
#                  --no-preload vs --alloc (its programs check the preload)
#
# Modes: --quick (default; `make test`: a few minutes) runs every program once
# on the small inputs; --full runs the larger inputs, the whole CPython suite
# (once per mode: ~10 min a run), tests/stress/run.sh --full (once), and
# repeats every other program 3 times (median times; every repetition
# compared).  --full takes about an hour on 2 cores.  --only NAME
# (repeatable, or a comma list; "python" selects both python-*) restricts the
# catalogue.  --alloc PATH.so tests another allocator
# (default: target/release/libarenalloc.so), e.g.
#   /usr/lib/x86_64-linux-gnu/libjemalloc.so.2        (libjemalloc2)
#   /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 (libtcmalloc-minimal4)
#   /usr/lib/x86_64-linux-gnu/libmimalloc.so.2        (libmimalloc2.0)
# --keep keeps the temporary directory (it is also kept after a failure).
#
# A tool that is missing is installed with apt-get (sudo if not root); if that
# is impossible the program is reported as SKIP, with the reason, never
# silently.  A progress line is printed per program, then a summary table
# (Markdown) with the date, allocator and machine.  Exit status: 0 if nothing
# failed (SKIPs allowed), 1 on any FAIL, 2 on a usage or setup error.
#
# CPython tests that differ between the two runs are run again, base and
# preloaded, module by module; a difference that does not reproduce on the
# rerun is reported in the notes as flaky and does not fail the run.
set -euo pipefail
trap 'echo "stress.sh: internal error: line $LINENO: $BASH_COMMAND exited $?" >&2' ERR

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}
die() {
    echo "stress.sh: error: $*" >&2
    exit 2
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

SIZE=quick
ONLY=()
ALLOC=
KEEP=
while (($#)); do
    case $1 in
    --quick) SIZE=quick ;;
    --full) SIZE=full ;;
    --only)
        (($# >= 2)) || die "--only needs a NAME"
        IFS=, read -ra _o <<<"$2"
        ONLY+=("${_o[@]}")
        shift
        ;;
    --only=*)
        IFS=, read -ra _o <<<"${1#--only=}"
        ONLY+=("${_o[@]}")
        ;;
    --alloc)
        (($# >= 2)) || die "--alloc needs a PATH.so"
        ALLOC=$2
        shift
        ;;
    --alloc=*) ALLOC=${1#--alloc=} ;;
    --keep) KEEP=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done

ALLOC=${ALLOC:-target/release/libarenalloc.so}
[[ -f $ALLOC ]] || die "allocator library not found: $ALLOC (build it with 'make build', or pass --alloc PATH.so)"
ALLOC=$(readlink -f -- "$ALLOC")
ALLOCNAME=$(basename -- "$ALLOC")
[[ $ALLOC != *[\ :]* ]] || die "library path contains a space or colon, which LD_PRELOAD cannot express: $ALLOC"

# Nothing inherited may preload anything into the baseline runs.
unset LD_PRELOAD
export LC_ALL=C LANG=C TZ=UTC

if [[ $SIZE == full ]]; then REPS=3; else REPS=1; fi

# ---------------------------------------------------------------------------
# Tools: install what is missing, or say why a program is skipped.
# ---------------------------------------------------------------------------
SUDO=
[[ $(id -u) == 0 ]] || SUDO=sudo
APT_UPDATED=
declare -A APT_TRIED=()
# apt_install PKG...: 0 if apt-get installed them (updating the lists once if needed)
apt_install() {
    local p key="$*"
    [[ -z ${APT_TRIED[$key]:-} ]] || return "${APT_TRIED[$key]}"
    APT_TRIED[$key]=1
    command -v apt-get >/dev/null 2>&1 || return 1
    if [[ -n $SUDO ]] && ! command -v sudo >/dev/null 2>&1; then return 1; fi
    echo "# installing $* (apt-get)" >&2
    for p in 1 2; do
        if DEBIAN_FRONTEND=noninteractive timeout 600 $SUDO apt-get install -y -qq "$@" </dev/null >&2; then
            APT_TRIED[$key]=0
            return 0
        fi
        [[ -z $APT_UPDATED ]] || break
        APT_UPDATED=1
        DEBIAN_FRONTEND=noninteractive timeout 600 $SUDO apt-get update -qq </dev/null >&2 || break
    done
    return 1
}
# need CMD PKG: CMD on PATH, installing PKG if needed; else 1 and MISSING set
MISSING=
need() {
    local cmd=$1 pkg=$2
    if [[ $cmd == /* ]]; then [[ -x $cmd ]] && return 0; else command -v "$cmd" >/dev/null 2>&1 && return 0; fi
    if apt_install "$pkg"; then
        if [[ $cmd == /* ]]; then [[ -x $cmd ]] && return 0; else hash -r && command -v "$cmd" >/dev/null 2>&1 && return 0; fi
    fi
    MISSING="$cmd not installed and could not be installed (Debian package $pkg)"
    return 1
}

need /usr/bin/time time || die "$MISSING: it measures peak RSS"
need gcc gcc || die "$MISSING: it builds the preload probe"
need nm binutils || die "$MISSING: it lists the symbols the library defines"

# ---------------------------------------------------------------------------
# Temp dir, results.
# ---------------------------------------------------------------------------
T=$(mktemp -d "${TMPDIR:-/tmp}/arenalloc-stress.XXXXXX")
ANYFAIL=
cleanup() {
    local pidf
    for pidf in "$T"/*.serverpid; do
        [[ -f $pidf ]] && kill -KILL "$(cat "$pidf")" 2>/dev/null
    done
    if [[ -n $KEEP || -n $ANYFAIL ]]; then
        echo "# temp dir kept: $T"
    else
        rm -rf -- "$T"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$T/tmp" "$T/res" "$T/in"
export TMPDIR=$T/tmp
R=$T/res  # transcripts, logs and artifacts of both runs
W=$T/work # a scenario's work dir: the same path for both runs
IN=$T/in  # generated inputs, shared by both runs

# ---------------------------------------------------------------------------
# The probe (see the header).
# ---------------------------------------------------------------------------
PROBE_SRC=$(
    cat <<'EOF'
/* stress.sh preload probe: append to $STRESS_PROBE_LOG, at exit, one line
 * telling where malloc & co resolve in this process.  The resolution is
 * worked out at start-up (it cannot change later: a library loaded later
 * comes after every preloaded one in the global scope); at exit the probe only
 * reads arenalloc's counters and writes, with open/write: it allocates
 * nothing then, when the allocator may already have shut down (mimalloc's
 * atexit handler runs before library destructors and prints a stray newline
 * if it is used again). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef size_t (*counter)(void);
static char logpath[4096], line[8192];
static size_t linelen;
static counter mapped, unmapped, blocks;
static const char *const syms[] = {
    "malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc",
    "malloc_usable_size", "PyMem_RawMalloc", "PyMem_Malloc", "PyObject_Malloc", 0};

static void add(char *b, size_t *n, size_t cap, const char *s) {
    size_t l = strlen(s), room = *n + 2 < cap ? cap - 2 - *n : 0;
    if (l > room) l = room;
    memcpy(b + *n, s, l);
    *n += l;
}
static void addu(char *b, size_t *n, size_t cap, unsigned long long v) {
    char t[24];
    int i = 23;
    t[i] = 0;
    do { t[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    add(b, n, cap, t + i);
}
/* The file that defines the symbol the dynamic linker binds SYM to (its link
 * map in *lmp).  dlsym(RTLD_DEFAULT) returns the canonical PLT entry of the
 * main program when the program takes the function's address (cc1, pigz do):
 * then look further, in load order, for the first object defining SYM. */
static const char *resolve(const char *sym, struct link_map **lmp) {
    void *p = dlsym(RTLD_DEFAULT, sym), *q, *h;
    Dl_info di, dq;
    struct link_map *lm = 0, *l, *lq;
    *lmp = 0;
    if (!p) return "-";
    if (!dladdr1(p, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm) return "?";
    const ElfW(Sym) *se = 0;
    if (lm->l_prev == 0 && !(dladdr1(p, &dq, (void **)&se, RTLD_DL_SYMENT) && se && se->st_shndx != SHN_UNDEF &&
                             dq.dli_saddr == p)) {
        for (l = lm->l_next; l; l = l->l_next) {
            if (!l->l_name || !l->l_name[0]) continue;
            h = dlopen(l->l_name, RTLD_LAZY | RTLD_NOLOAD);
            if (!h) continue;
            q = dlsym(h, sym);
            dlclose(h);
            lq = 0;
            if (q && dladdr1(q, &dq, (void **)&lq, RTLD_DL_LINKMAP) && lq == l) {
                *lmp = l;
                return l->l_name;
            }
        }
        return "?";
    }
    *lmp = lm;
    return di.dli_fname && di.dli_fname[0] ? di.dli_fname : "?";
}

__attribute__((constructor)) static void probe_init(void) {
    char exe[4096];
    struct link_map *mlm = 0, *lm;
    size_t cap = sizeof line;
    int i;
    /* copied now: the program may clear its environment before it exits */
    const char *p = getenv("STRESS_PROBE_LOG");
    if (!p || strlen(p) >= sizeof logpath) return;
    strcpy(logpath, p);
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[l > 0 ? l : 0] = 0;
    add(line, &linelen, cap, "\texe=");
    add(line, &linelen, cap, l > 0 ? exe : "?");
    for (i = 0; syms[i]; i++) {
        const char *f = resolve(syms[i], &lm);
        if (i == 0) mlm = lm;
        add(line, &linelen, cap, "\t");
        add(line, &linelen, cap, syms[i]);
        add(line, &linelen, cap, "=");
        add(line, &linelen, cap, f);
    }
    /* arenalloc's own counters, if arenalloc is the malloc in use */
    if (mlm && resolve("arenalloc_arenas_mapped", &lm) && lm == mlm) {
        mapped = (counter)dlsym(RTLD_DEFAULT, "arenalloc_arenas_mapped");
        unmapped = (counter)dlsym(RTLD_DEFAULT, "arenalloc_arenas_unmapped");
        blocks = (counter)dlsym(RTLD_DEFAULT, "arenalloc_allocated_blocks");
    }
}

__attribute__((destructor)) static void probe_report(void) {
    char buf[8192 + 128];
    size_t n = 0, cap = sizeof buf;
    if (!logpath[0]) return;
    add(buf, &n, cap, "pid=");
    addu(buf, &n, cap, (unsigned long long)getpid());
    memcpy(buf + n, line, linelen);
    n += linelen;
    if (mapped && unmapped && blocks) {
        add(buf, &n, cap, "\tarenas=");
        addu(buf, &n, cap, (unsigned long long)(mapped() + unmapped()));
        add(buf, &n, cap, "\tblocks=");
        addu(buf, &n, cap, (unsigned long long)blocks());
    }
    buf[n++] = '\n';
    int fd = open(logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, buf, n);
        (void)w;
        close(fd);
    }
}
EOF
)
CACHE=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/arenalloc-stress
PROBE=$CACHE/probe-$(printf '%s' "$PROBE_SRC" | sha256sum | cut -c1-16).so
if [[ ! -f $PROBE ]]; then
    if ! mkdir -p "$CACHE" 2>/dev/null || [[ ! -w $CACHE ]]; then
        PROBE=$T/probe.so
    fi
    printf '%s\n' "$PROBE_SRC" >"$T/probe.c"
    gcc -O2 -shared -fPIC -Wall -Wextra -o "$PROBE.tmp.$$" "$T/probe.c" || die "could not build the preload probe"
    mv -f -- "$PROBE.tmp.$$" "$PROBE"
fi
[[ $PROBE != *[\ :]* ]] || die "probe path contains a space or colon: $PROBE"

# The symbols the library itself defines must resolve into it (malloc always).
ALLSYMS=(malloc calloc realloc free posix_memalign aligned_alloc malloc_usable_size PyMem_RawMalloc PyMem_Malloc PyObject_Malloc)
REQSYMS=(malloc)
DEFINED=$( (nm -D --defined-only -- "$ALLOC" 2>/dev/null || true) | awk '{ print $NF }' | sed 's/@.*//' | sort -u)
for s in "${ALLSYMS[@]:1}"; do
    if grep -qx -- "$s" <<<"$DEFINED"; then REQSYMS+=("$s"); fi
done
IS_ARENALLOC=
if grep -qx arenalloc_arenas_mapped <<<"$DEFINED"; then IS_ARENALLOC=1; fi

# ---------------------------------------------------------------------------
# Running commands: `x CMD...` runs CMD under timeout, /usr/bin/time and the
# preload of the current run; `r CMD...` also logs the command and its exit
# status into the transcript (stdout and stderr).  Accounting (wall time in
# microseconds, peak RSS in KiB) goes to $ACCT, the probe's lines to $PLOG.
# ---------------------------------------------------------------------------
RUNMODE=base
TO=120
ACCT=/dev/null
PLOG=/dev/null
NOTIME=
x() {
    local rc=0 t0 t1 tf rss
    tf=$(mktemp "$T/tmp/time.XXXXXX")
    local pre=$PROBE
    [[ $RUNMODE == pre ]] && pre=$ALLOC:$PROBE
    t0=${EPOCHREALTIME/./}
    timeout -k 5 "$TO" /usr/bin/time -f '%M' -o "$tf" env LD_PRELOAD="$pre" STRESS_PROBE_LOG="$PLOG" "$@" || rc=$?
    t1=${EPOCHREALTIME/./}
    rss=$(tail -n 1 "$tf" 2>/dev/null)
    [[ $rss =~ ^[0-9]+$ ]] || rss=0
    rm -f -- "$tf"
    if [[ -n $NOTIME ]]; then t0=$t1; fi
    echo "$((t1 - t0)) $rss" >>"$ACCT"
    return $rc
}
SCRUB= # a run-specific string (redis' port) shown as "<port>" in transcripts
shown() { local c="$*"; [[ -z $SCRUB ]] || c=${c//"$SCRUB"/<port>}; printf '%s\n' "$c"; }
r() {
    local rc=0
    echo "\$ $(shown "$@")"
    echo "\$ $(shown "$@")" >&2
    x "$@" || rc=$?
    echo "[exit $rc]"
    if ((rc == 124 || rc == 137)); then echo "[TIMEOUT after ${TO}s: $*]" >&2; fi
    return 0
}
# ro FILE CMD...: like r, but CMD's stdout goes to FILE (in the work dir)
ro() {
    local f=$1 rc=0
    shift
    echo "\$ $(shown "$@") >$f"
    echo "\$ $(shown "$@") >$f" >&2
    x "$@" >"$f" || rc=$?
    echo "[exit $rc]"
    if ((rc == 124 || rc == 137)); then echo "[TIMEOUT after ${TO}s: $*]" >&2; fi
    return 0
}
# digest FILE...: content digests (computed by the script, not preloaded)
digest() { sha256sum -- "$@" | sed 's/^/[sha256] /'; }

# ---------------------------------------------------------------------------
# Checks.  Each appends a reason to $REASONS (one line each) when it fails;
# details (diff excerpts, ...) go to $DETAILS.
# ---------------------------------------------------------------------------
REASONS=$T/reasons
DETAILS=$T/details
NOTES=$T/notes
reason() { echo "$*" >>"$REASONS"; }
# compare WHAT BASEFILE PREFILE [CONTEXT]
compare() {
    if ! cmp -s -- "$2" "$3"; then
        reason "$1 differs"
        {
            echo "--- $1 (- without preload, + with preload):"
            diff -U "${4:-3}" --label without-preload --label with-preload -- "$2" "$3" | head -n 60 || true
        } >>"$DETAILS"
    fi
}
# ld.so only warns about a preload it cannot load, then runs without it.
check_loader_errors() {
    local f
    for f in "$@"; do
        if grep -E -m 3 'ld\.so: object .* cannot be preloaded|error while loading shared libraries' "$f" >"$T/lderr" 2>/dev/null; then
            reason "the dynamic loader did not preload the library"
            sed 's/^/    /' "$T/lderr" >>"$DETAILS"
            return
        fi
    done
}
# probe_field LOG NAME: the values of NAME= in the probe lines
probe_field() { awk -F'\t' -v k="$2=" '{ for (i = 1; i <= NF; i++) if (index($i, k) == 1) print substr($i, length(k) + 1) }' "$1"; }
# check_probe BASELOG PRELOG: the library served the preloaded run
EXE_MUST= # if set: the executables that must have reported, instead of all the base run's
check_probe() {
    local base=$1 pre=$2 s f nproc bad missing
    if [[ ! -s $pre ]]; then
        reason "preload not in effect: no process reported through the probe"
        return
    fi
    nproc=$(wc -l <"$pre")
    for s in "${REQSYMS[@]}"; do
        while IFS= read -r f; do
            [[ -n $f ]] || continue
            if [[ $f == - || $(readlink -f -- "$f" 2>/dev/null) != "$ALLOC" ]]; then
                bad=$(awk -F'\t' -v k="$s=$f" '{ for (i = 1; i <= NF; i++) if ($i == k) { n++; split($2, e, "="); x = e[2] } } END { printf "%d process(es), e.g. %s", n, x }' "$pre")
                reason "preload not in effect: $s resolved to $f, not $ALLOCNAME, in $bad"
            fi
        done < <(probe_field "$pre" "$s" | sort -u)
    done
    if [[ -n $EXE_MUST ]]; then
        # only these must have reported (see run_python)
        missing=$(comm -23 <(tr ' ' '\n' <<<"$EXE_MUST" | sed '/^$/d' | sort -u) <(probe_field "$pre" exe | sort -u) | tr '\n' ' ')
    else
        missing=$(comm -23 <(probe_field "$base" exe | sort -u) <(probe_field "$pre" exe | sort -u) | tr '\n' ' ')
    fi
    if [[ -n $missing ]]; then
        reason "preload not in effect: these programs reported without the preload but not with it: $missing"
    fi
    if [[ -n $IS_ARENALLOC ]]; then
        local sum
        sum=$(probe_field "$pre" arenas | awk '{ s += $1 } END { print s + 0 }')
        if ((sum == 0)); then
            reason "preload not in effect: $ALLOCNAME's own counters show no arena mapped in any of $nproc processes"
        fi
    fi
    echo "probe: $nproc preloaded process(es) reported; ${REQSYMS[*]} resolved into $ALLOCNAME" >>"$DETAILS.probe"
}

# tally ACCTFILE: "TIME_US MAXRSS_KB"
tally() { awk '{ t += $1; if ($2 > m) m = $2 } END { printf "%d %d\n", t, m }' "$1"; }
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR ? a[int((NR + 1) / 2)] : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a > 0) printf "%.2fx", a / b; else print "-" }'; }
fmt_time() { awk -v u="$1" 'BEGIN { s = u / 1e6; if (s < 10) printf "%.2f s", s; else if (s < 600) printf "%.1f s", s; else printf "%d min %02d s", s / 60, s % 60 }'; }
fmt_rss() { awk -v k="$1" 'BEGIN { if (k >= 1048576) printf "%.2f GiB", k / 1048576; else printf "%.1f MiB", k / 1024 }'; }

# ---------------------------------------------------------------------------
# Generic entry: run_scenario ID FUNC TIMEOUT runs FUNC REPS times, base then
# pre each time, in a fresh $W, and compares transcripts and probe logs.
# Sets BASE_T/PRE_T/BASE_M/PRE_M (medians).
# ---------------------------------------------------------------------------
run_scenario() {
    local id=$1 fn=$2 rep m bt=() pt=() bm=() pm=() t mx
    TO=$3
    for ((rep = 1; rep <= REPS; rep++)); do
        for m in base pre; do
            RUNMODE=$m
            ACCT=$R/$id.$m.acct
            PLOG=$R/$id.$m.probe
            : >"$ACCT"
            : >"$PLOG"
            rm -rf -- "$W"
            mkdir -p "$W"
            (cd "$W" && set +e && "$fn") >"$R/$id.$m.out" 2>"$R/$id.$m.err" </dev/null || true
            rm -rf -- "${R:?}/$id.$m.w"
            mv -- "$W" "$R/$id.$m.w"
            read -r t mx < <(tally "$ACCT")
            if [[ $m == base ]]; then bt+=("$t") bm+=("$mx"); else pt+=("$t") pm+=("$mx"); fi
        done
        RUNMODE=base
        # Every command of a scenario is meant to succeed: a failing baseline
        # means a missing or broken tool, and two identical failures must not pass.
        if grep -B1 -E '^\[exit [1-9][0-9]*\]$' "$R/$id.base.out" >"$T/basefail"; then
            reason "a command failed without the preload too (broken tool?)"
            sed 's/^/    /' "$T/basefail" | head -n 20 >>"$DETAILS"
        fi
        check_loader_errors "$R/$id.pre.err"
        check_probe "$R/$id.base.probe" "$R/$id.pre.probe"
        compare "stdout + exit statuses" "$R/$id.base.out" "$R/$id.pre.out"
        compare "stderr" "$R/$id.base.err" "$R/$id.pre.err"
        [[ ! -s $REASONS ]] || break
    done
    BASE_T=$(median "${bt[@]}") PRE_T=$(median "${pt[@]}")
    BASE_M=$(median "${bm[@]}") PRE_M=$(median "${pm[@]}")
}

# ===========================================================================
# The catalogue.
# ===========================================================================

# --- CPython ---------------------------------------------------------------
# --quick: heavy allocation of every size class, all fast and passing on the
# stock interpreter here (3.11.7; each 0.2-3.8 s alone).  test_capi and
# test_tracemalloc exercise PyMem_SetAllocator, the debug hooks and
# tracemalloc; test_thread allocates from several threads.
PY_QUICK=(test_dict test_list test_set test_unicode test_bytes test_re test_collections
    test_gc test_sqlite3 test_capi test_tracemalloc test_thread)
# --full: the whole suite except what fails (or hangs) on this machine
# WITHOUT the preload too (python3 3.11.7, Debian 12, 2 cores, as root, no
# network): it says nothing about the allocator and costs minutes.
PY_FULL_EXCLUDE=(test__xxsubinterpreters test_interpreters # hang here either way
    test_cmd_line test_compileall test_distutils test_regrtest test_threading)
# single tests that hang here either way (regrtest --ignore glob patterns):
# AF_VSOCK accept() never returns in this VM
PY_FULL_IGNORE=('*.ThreadedVSOCKSocketStreamTest.*')

PARSE_PY=$T/parse_regrtest.py
cat >"$PARSE_PY" <<'PYEOF'
"""parse_regrtest.py OUT XML [MODULES...]

Writes canonical (timing-free) files next to OUT:
  OUT.modules : "<module> <OK|FAILED|SKIPPED|...>" per module run, plus the
                "Result:" line.
  OUT.tests   : "<test id> <ok|skipped|failure|error>" per test case, plus the
                "Total tests" counters.
  OUT.msgs    : "<test id>: <first lines of the message>" per failing test
                (for the report only; never compared).
"""
import re, sys
import xml.etree.ElementTree as ET

out_path, xml_path, modules = sys.argv[1], sys.argv[2], sys.argv[3:]
lines = open(out_path, encoding="utf-8", errors="replace").read().splitlines()

# Progress lines: "0:00:40 load avg: 1.45 [ 80/462] test_class passed"
seen = {}
prog = re.compile(r"^\S+ (?:load avg: \S+ )?\[\s*\d+/\d+(?:/\d+)?\] (test[\w.]*)(?: (\w+))?")
for l in lines:
    m = prog.match(l)
    if m:
        seen[m.group(1)] = m.group(2) or "?"

start = max((i for i, l in enumerate(lines) if l.startswith("== Tests result:")), default=None)
status = {}
result = "Result: <no summary: regrtest did not finish>"
totals = "Total tests: <none>"
if start is not None:
    headings = [
        (re.compile(r"^\d+ tests? omitted:$"), "OMITTED"),
        (re.compile(r"^\d+ tests? skipped:$"), "SKIPPED"),
        (re.compile(r"^\d+ tests? skipped \(resource denied\):$"), "RESOURCE_DENIED"),
        (re.compile(r"^\d+ tests? run no tests:$"), "RUN_NO_TESTS"),
        (re.compile(r"^\d+ tests? altered the execution environment.*:$"), "ENV_CHANGED"),
        (re.compile(r"^\d+ re-run tests?:$"), "RERUN"),
        (re.compile(r"^\d+ tests? failed:$"), "FAILED"),
    ]
    current = None
    for l in lines[start + 1:]:
        if l.startswith("    ") and current:
            for name in l.split():
                status[name] = current  # the most important category wins (printed last)
            continue
        current = None
        for rx, cat in headings:
            if rx.match(l):
                current = cat
        if l.startswith("Result:"):
            result = l.strip()
        if l.startswith("Total tests:"):
            totals = l.strip()
    for m, word in seen.items():
        if m not in status:
            status[m] = "OK" if word == "passed" else word.upper()
for m in modules:
    status.setdefault(m, "NOT-REPORTED")

with open(out_path + ".modules", "w") as f:
    for m in sorted(status):
        f.write("%s %s\n" % (m, status[m]))
    f.write(result + "\n")

msgs = []
with open(out_path + ".tests", "w") as f:
    f.write(totals + "\n")
    cases = []
    try:
        root = ET.parse(xml_path).getroot()
        for tc in root.iter("testcase"):
            kinds = [k for k in tc if k.tag in ("skipped", "failure", "error")]
            outcome = kinds[0].tag if kinds else "ok"
            cases.append("%s %s" % (tc.get("name"), outcome))
            if outcome in ("failure", "error"):
                msg = (kinds[0].get("message") or kinds[0].text or "").strip().splitlines()
                msgs.append("%s: %s" % (tc.get("name"), " / ".join(l.strip() for l in msg[:3] if l.strip())[:300]))
    except Exception as e:  # missing or truncated XML: say so, comparably
        cases.append("<junit xml unreadable: %s>" % type(e).__name__)
    for c in sorted(cases):
        f.write(c + "\n")
with open(out_path + ".msgs", "w") as f:
    for m in sorted(msgs):
        f.write(m + "\n")
PYEOF

PY=
find_python() {
    local cand p
    [[ -z $PY ]] || return 0
    for cand in python3 /usr/bin/python3; do
        # Resolve the real interpreter (a pyenv shim is a bash script, and the
        # point is to preload into the interpreter, not into a shell).
        p=$(timeout 30 "$cand" -c 'import os, sys; print(os.path.realpath(sys.executable))' 2>/dev/null) || continue
        if timeout 60 "$p" -c 'import test.support, test.libregrtest' 2>/dev/null; then
            PY=$p
            return 0
        fi
    done
    return 1
}
need_python() {
    find_python && return 0
    if ! command -v python3 >/dev/null 2>&1; then
        need python3 python3 || return 1
    fi
    find_python && return 0
    local v
    v=$(timeout 30 python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || v=3
    apt_install "libpython$v-testsuite" || apt_install libpython3-testsuite || true
    find_python && return 0
    MISSING="python3 has no regression test suite (module 'test') and libpython$v-testsuite could not be installed"
    return 1
}

# py_regrtest OUT ARGS...: one regrtest run (preloaded or not per $RUNMODE)
py_regrtest() {
    local out=$1 rc=0
    shift
    rm -rf -- "$W"
    mkdir -p "$W"
    (cd "$W" && x "$PY" -X faulthandler -m test -unone -j2 --junit-xml "$out.xml" "$@") >"$out.out" 2>&1 </dev/null || rc=$?
    echo "exit $rc" >"$out.rc"
    local f
    if timeout 120 "$PY" -I "$PARSE_PY" "$out.out" "$out.xml"; then
        for f in modules tests msgs; do mv -f -- "$out.out.$f" "$out.$f"; done
    else
        for f in modules tests msgs; do echo "<parse failed>" >"$out.$f"; done
    fi
    return 0
}
# py_differing_modules BASE PRE: the modules whose outcome or tests differ
py_differing_modules() {
    local b=$1 p=$2
    {
        diff <(sed 1d "$b.tests") <(sed 1d "$p.tests") | sed -n 's/^[<>] //p' | sed -E 's/^test\.(test_[A-Za-z0-9_]+).*/\1/;t;d'
        diff <(sed '$d' "$b.modules") <(sed '$d' "$p.modules") | sed -n 's/^[<>] \(test[A-Za-z0-9_.]*\) .*/\1/p' | sed -E 's/^test\.(test_[A-Za-z0-9_]+).*/\1/'
    } | sort -u
}
run_python() {
    local id=$1 pmode=$2 args=() m s t mx out bt=() pt=() bm=() pm=() mods
    TO=$3
    if [[ $pmode == malloc ]]; then export PYTHONMALLOC=malloc; else unset PYTHONMALLOC; fi
    if [[ $SIZE == full ]]; then
        args=(--timeout=1200)
        for s in "${PY_FULL_IGNORE[@]}"; do args+=(--ignore "$s"); done
        # -x: the modules listed are excluded, all others run
        args+=(-x "${PY_FULL_EXCLUDE[@]}")
    else
        args=(--timeout=240 "${PY_QUICK[@]}")
    fi
    for m in base pre; do
        RUNMODE=$m
        ACCT=$R/$id.$m.acct PLOG=$R/$id.$m.probe
        : >"$ACCT"
        : >"$PLOG"
        s=$SECONDS
        py_regrtest "$R/$id.$m" "${args[@]}"
        read -r t mx < <(tally "$ACCT")
        if [[ $m == base ]]; then bt+=("$t") bm+=("$mx"); else pt+=("$t") pm+=("$mx"); fi
        printf '%s %ds %s; ' "$m" $((SECONDS - s)) "$(cat "$R/$id.$m.rc")"
    done
    RUNMODE=base
    BASE_T=${bt[0]} PRE_T=${pt[0]} BASE_M=${bm[0]} PRE_M=${pm[0]}
    local b=$R/$id.base p=$R/$id.pre
    check_loader_errors "$p.out"
    # The suite starts thousands of processes, some killed before they exit
    # (no report) depending on timing: require the interpreter's own reports,
    # and that every process that reported resolved into the library.
    EXE_MUST=$PY
    check_probe "$b.probe" "$p.probe"
    if ! grep -q 'test_' "$b.modules"; then
        reason "regrtest did not run without the preload (see $b.out)"
        tail -n 20 "$b.out" | sed 's/^/    /' >>"$DETAILS"
        return
    fi
    if cmp -s "$b.rc" "$p.rc" && cmp -s "$b.modules" "$p.modules" && cmp -s "$b.tests" "$p.tests"; then
        return
    fi
    # Something differs: rerun the modules concerned, base and preloaded.
    mods=$(py_differing_modules "$b" "$p" | tr '\n' ' ')
    if [[ -z ${mods// /} ]]; then
        compare "regrtest exit status" "$b.rc" "$p.rc"
        compare "per-module outcome" "$b.modules" "$p.modules"
        return
    fi
    printf 'rerun %s; ' "$mods"
    # shellcheck disable=SC2206 # module names
    local rmods=($mods)
    local rto=--timeout=240
    [[ $SIZE == full ]] && rto=--timeout=1200
    for m in base pre; do
        RUNMODE=$m
        ACCT=/dev/null PLOG=$R/$id.$m.rerun.probe
        : >"$PLOG"
        py_regrtest "$R/$id.$m.rerun" "$rto" "${rmods[@]}"
    done
    RUNMODE=base
    check_probe "$R/$id.base.rerun.probe" "$R/$id.pre.rerun.probe"
    EXE_MUST=
    local n0
    n0=$(wc -l <"$REASONS" 2>/dev/null || echo 0)
    compare "per-module outcome (rerun of $mods)" "$b.rerun.modules" "$p.rerun.modules"
    compare "per-test outcome (rerun of $mods)" "$b.rerun.tests" "$p.rerun.tests" 0
    if [[ $(wc -l <"$REASONS" 2>/dev/null || echo 0) == "$n0" ]]; then
        echo "first-run differences in $mods (exit: base $(cat "$b.rc"), pre $(cat "$p.rc")) did not reproduce on a rerun: flaky" >>"$NOTES"
        {
            echo "--- first run, per-test outcome (flaky, did not reproduce):"
            diff -U0 --label without-preload --label with-preload "$b.tests" "$p.tests" | head -n 30
        } >>"$DETAILS"
    elif grep -qvxFf "$b.msgs" "$p.msgs"; then
        echo "--- failure messages with the preload only:" >>"$DETAILS"
        grep -vxFf "$b.msgs" "$p.msgs" | head -n 20 | sed 's/^/    /' >>"$DETAILS"
    fi
}
entry_python-malloc() { need_python || return 3; run_python python-malloc malloc "$PYTO"; }
entry_python-pymem() { need_python || return 3; run_python python-pymem default "$PYTO"; }

# --- sqlite3 ---------------------------------------------------------------
scenario_sqlite() {
    cat >load.sql <<SQL
.bail on
PRAGMA page_size = 4096;
PRAGMA cache_size = -4000;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL, blob BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $SQL_ROWS)
INSERT INTO t(id, grp, name, val, blob)
  SELECT x, (x * 7919) % 97,
         printf('name-%07d-%s', (x * 104729) % $SQL_ROWS, substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26, 1 + x % 13)),
         (x % 1000) * 1.25 + x / 7.0,
         zeroblob(x % 200)
  FROM c;
CREATE INDEX t_grp_name ON t(grp, name);
CREATE INDEX t_name ON t(name);
CREATE TABLE g AS SELECT grp, count(*) AS n, sum(val) AS s FROM t GROUP BY grp;
SQL
    cat >query.sql <<'SQL'
.bail on
.headers on
.mode list
SELECT count(*), sum(id), total(val), sum(length(blob)) FROM t;
SELECT grp, count(*), round(sum(val), 3), min(name), max(name), group_concat(id % 10, '') FILTER (WHERE id < 2000)
  FROM t GROUP BY grp ORDER BY count(*) DESC, grp LIMIT 25;
SELECT substr(name, -3), count(*) AS n, round(avg(val), 4) FROM t GROUP BY 1 ORDER BY n DESC, 1 LIMIT 20;
SELECT name, val FROM t WHERE grp = 42 ORDER BY name LIMIT 10;
SELECT id, name, rank() OVER (PARTITION BY grp ORDER BY val DESC, id) AS rk
  FROM t WHERE id % 1000 = 0 ORDER BY id LIMIT 30;
SELECT t.grp, g.n, count(DISTINCT t.name) FROM t JOIN g USING (grp) GROUP BY t.grp HAVING count(*) > 500 ORDER BY 3 DESC, 1 LIMIT 10;
SELECT length(group_concat(name, ',')) FROM (SELECT name FROM t ORDER BY name DESC);
SELECT grp, json_group_array(id) FROM (SELECT grp, id FROM t WHERE id % 997 = 0) GROUP BY grp ORDER BY grp LIMIT 5;
CREATE TEMP TABLE w AS SELECT name, count(*) OVER (ORDER BY val ROWS BETWEEN 50 PRECEDING AND CURRENT ROW) AS c FROM t;
SELECT count(*), sum(c) FROM w;
UPDATE t SET name = upper(name) || '-x' WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), max(length(name)) FROM t;
EXPLAIN QUERY PLAN SELECT * FROM t WHERE grp = 1 ORDER BY name;
PRAGMA integrity_check;
VACUUM;
PRAGMA integrity_check;
SELECT count(*) FROM t;
SQL
    r sqlite3 -batch db.sqlite <load.sql
    r sqlite3 -batch db.sqlite <query.sql
    ro dump.sql sqlite3 -batch db.sqlite .dump
    r sqlite3 -batch -csv :memory: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < $SQL_ROWS) SELECT x % 13, count(*), sum(x), length(group_concat(hex(x), '')) FROM c GROUP BY 1 ORDER BY 2 DESC, 1;"
    digest dump.sql db.sqlite
}
entry_sqlite3() { need sqlite3 sqlite3 || return 3; run_scenario sqlite3 scenario_sqlite 600; }

# --- git -------------------------------------------------------------------
scenario_git() {
    export HOME=$W/home GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
    export GIT_AUTHOR_NAME="A U Thor" GIT_AUTHOR_EMAIL=author@example.com
    export GIT_COMMITTER_NAME="C O Mitter" GIT_COMMITTER_EMAIL=committer@example.com
    export GIT_TERMINAL_PROMPT=0 GIT_PAGER=cat PAGER=cat
    mkdir -p "$HOME"
    set_date() {
        export GIT_AUTHOR_DATE="@$((1700000000 + $1 * 3631)) +0000"
        export GIT_COMMITTER_DATE="@$((1700000000 + $1 * 3631 + 17)) +0000"
    }
    local n=$GIT_COMMITS i j
    r git init -q -b main repo
    cd repo || return
    r git config core.autocrlf false
    r git config gc.auto 0
    # one delta-search thread, so the pack (named by its checksum) is
    # deterministic; a threaded repack is exercised further down
    r git config pack.threads 1
    for ((i = 1; i <= n; i++)); do
        mkdir -p "src/d$((i % 5))" docs
        for ((j = 0; j < 40; j++)); do echo "line $i.$j $(((i * 131 + j * 17) % 1009)) lorem ipsum dolor sit amet"; done >>docs/log.txt
        for ((j = 0; j < 60; j++)); do echo "int f${i}_$j(int x) { return x * $(((i + j) % 97)) + $j; }"; done >"src/d$((i % 5))/gen$((i % 7)).c"
        seq "$i" "$((i * 37))" | tr '\n' ' ' >"src/d$((i % 5))/n$i.txt"
        if ((i % 10 == 0)); then rm -f "src/d$((i % 5))/n$((i - 5)).txt"; fi
        if ((i == n / 2)); then r git branch side; fi
        set_date "$i"
        r git add -A
        r git commit -q -m "commit $i" -m "Generated commit number $i of the arenalloc stress test."
    done
    r git checkout -q side
    for ((i = n + 1; i <= n + 5; i++)); do
        echo "side $i" >>side.txt
        set_date "$i"
        r git add side.txt
        r git commit -q -m "side $i"
    done
    r git checkout -q main
    set_date $((n + 6))
    r git merge -q --no-ff -m "merge side" side
    r git tag -a -m "release v1" v1
    r git log --stat --format=fuller
    r git log --graph --oneline --decorate --all
    r git log -p -3 --format=%H
    r git diff --stat HEAD~40 HEAD
    r git blame -s docs/log.txt
    r git grep -n -e 'return x \* 9[0-6] ' HEAD
    r git grep -c -e 'line 4[0-9]\.1' HEAD -- docs
    r git gc -q --aggressive --prune=now
    r git fsck --full --strict --no-progress
    r git count-objects -v
    r git rev-list --objects --all
    r git cat-file --batch-all-objects --batch-check
    r git cat-file -p HEAD
    r git cat-file -p v1
    r git cat-file -p HEAD~10:src/d0/gen0.c
    r git verify-pack -s .git/objects/pack/*.idx
    r git archive --format=tar -o ../head.tar HEAD
    # threaded repack and clone: their packs may differ run to run, so only
    # exit statuses and pack-independent output are compared
    r git -c pack.threads=2 repack -q -a -d -f --window=50
    r git fsck --full --strict --no-progress
    r git cat-file --batch-all-objects --batch-check='%(objectname) %(objecttype) %(objectsize)'
    r git clone -q --no-local --bare . ../clone.git
    r git -C ../clone.git fsck --full --strict --no-progress
    r git -C ../clone.git rev-parse HEAD v1 side
    r git ls-tree -r -l HEAD
    cd .. || return
    digest head.tar
}
entry_git() { need git git || return 3; run_scenario git scenario_git 600; }

# --- gcc / g++ -------------------------------------------------------------
write_c_sources() {
    cat >ht.h <<'EOF'
#ifndef HT_H
#define HT_H
#include <stddef.h>
typedef struct ht ht;
ht *ht_new(size_t cap);
void ht_put(ht *h, const char *key, long val);
long *ht_get(ht *h, const char *key);
size_t ht_len(const ht *h);
void ht_free(ht *h);
char **ht_keys_sorted(const ht *h);
#endif
EOF
    cat >ht.c <<'EOF'
#include "ht.h"
#include <stdlib.h>
#include <string.h>
struct ent { char *key; long val; struct ent *next; };
struct ht { struct ent **b; size_t cap, len; };
static size_t hash(const char *s) { size_t h = 1469598103934665603ull; while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull; return h; }
ht *ht_new(size_t cap) { ht *h = malloc(sizeof *h); h->cap = cap; h->len = 0; h->b = calloc(cap, sizeof *h->b); return h; }
static void grow(ht *h) {
    size_t nc = h->cap * 2; struct ent **nb = calloc(nc, sizeof *nb);
    for (size_t i = 0; i < h->cap; i++) for (struct ent *e = h->b[i], *n; e; e = n) { n = e->next; size_t k = hash(e->key) % nc; e->next = nb[k]; nb[k] = e; }
    free(h->b); h->b = nb; h->cap = nc;
}
void ht_put(ht *h, const char *key, long val) {
    long *p = ht_get(h, key); if (p) { *p = val; return; }
    if (h->len * 4 > h->cap * 3) grow(h);
    struct ent *e = malloc(sizeof *e); e->key = strdup(key); e->val = val;
    size_t k = hash(key) % h->cap; e->next = h->b[k]; h->b[k] = e; h->len++;
}
long *ht_get(ht *h, const char *key) { for (struct ent *e = h->b[hash(key) % h->cap]; e; e = e->next) if (!strcmp(e->key, key)) return &e->val; return NULL; }
size_t ht_len(const ht *h) { return h->len; }
static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
char **ht_keys_sorted(const ht *h) {
    char **k = NULL; size_t n = 0;
    for (size_t i = 0; i < h->cap; i++) for (struct ent *e = h->b[i]; e; e = e->next) { k = realloc(k, (n + 1) * sizeof *k); k[n++] = e->key; }
    qsort(k, n, sizeof *k, cmp); return k;
}
void ht_free(ht *h) { for (size_t i = 0; i < h->cap; i++) for (struct ent *e = h->b[i], *n; e; e = n) { n = e->next; free(e->key); free(e); } free(h->b); free(h); }
EOF
    cat >main.c <<'EOF'
#include "ht.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    ht *h = ht_new(8);
    char buf[64];
    for (int i = 0; i < n; i++) { snprintf(buf, sizeof buf, "k%u", (unsigned)(i * 2654435761u) % (unsigned)(n / 2 + 1)); long *p = ht_get(h, buf); ht_put(h, buf, p ? *p + i : i); }
    char **keys = ht_keys_sorted(h);
    unsigned long long sum = 0;
    for (size_t i = 0; i < ht_len(h); i++) sum = sum * 31 + (unsigned long long)*ht_get(h, keys[i]) + strlen(keys[i]);
    printf("entries=%zu first=%s last=%s checksum=%llu\n", ht_len(h), keys[0], keys[ht_len(h) - 1], sum);
    free(keys);
    ht_free(h);
    char *s = NULL; size_t len = 0;
    for (int i = 0; i < 20000; i++) { s = realloc(s, len + 8); len += (size_t)sprintf(s + len, "%d,", i % 1000); }
    void *al[64]; int okal = 1;
    for (int i = 0; i < 64; i++) { size_t a = (size_t)16 << (i % 8); if (posix_memalign(&al[i], a, 1 + i * 100)) return 2; okal &= ((uintptr_t)al[i] % a) == 0; memset(al[i], i, 1 + i * 100); }
    for (int i = 0; i < 64; i++) free(al[i]);
    unsigned char *big = calloc(64, 1 << 20); unsigned long zeros = 0; for (size_t i = 0; i < (64u << 20); i += 4096) zeros += big[i] == 0; free(big);
    void *aa = aligned_alloc(4096, 3 * 4096); okal &= ((uintptr_t)aa % 4096) == 0; free(aa);
    printf("strlen=%zu tail=%.12s aligned=%d zeros=%lu\n", strlen(s), s + len - 12, okal, zeros);
    free(s);
    return 0;
}
EOF
    cat >app.cpp <<'EOF'
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>
struct Node { std::string name; std::vector<std::shared_ptr<Node>> kids; };
static std::map<std::string, long> work(int seed, int n) {
    std::map<std::string, long> m;
    for (int i = 0; i < n; i++) {
        std::string k = "key" + std::to_string((i * 7919 + seed) % (n / 3 + 1));
        m[k] += i;
    }
    return m;
}
int main() {
    std::vector<std::string> words;
    for (int i = 0; i < 50000; i++) words.push_back(std::string(1 + i % 23, char('a' + i % 26)) + std::to_string(i));
    std::sort(words.begin(), words.end(), [](const std::string &a, const std::string &b) { return a.size() != b.size() ? a.size() < b.size() : a < b; });
    std::unordered_map<std::string, int> counts;
    for (auto &w : words) counts[w.substr(0, 3)]++;
    std::map<std::string, int> ordered(counts.begin(), counts.end());
    std::ostringstream os;
    for (auto &kv : ordered) os << kv.first << '=' << kv.second << ';';
    std::string joined = os.str();
    std::regex re("([a-z])\\1{2}=([0-9]+)");
    long regex_sum = 0; int regex_n = 0;
    for (std::sregex_iterator it(joined.begin(), joined.end(), re), end; it != end; ++it) { regex_sum += std::stol((*it)[2]); regex_n++; }
    auto root = std::make_shared<Node>(); root->name = "root";
    for (int i = 0; i < 2000; i++) { auto k = std::make_shared<Node>(); k->name = words[i]; for (int j = 0; j < i % 5; j++) k->kids.push_back(std::make_shared<Node>(Node{words[j], {}})); root->kids.push_back(k); }
    size_t nodes = 1; for (auto &k : root->kids) nodes += 1 + k->kids.size();
    std::map<std::string, long> r1, r2;
    std::thread t1([&] { r1 = work(1, 200000); }), t2([&] { r2 = work(2, 200000); });
    t1.join(); t2.join();
    long s1 = std::accumulate(r1.begin(), r1.end(), 0L, [](long a, auto &kv) { return a + kv.second * (long)kv.first.size(); });
    long s2 = std::accumulate(r2.begin(), r2.end(), 0L, [](long a, auto &kv) { return a ^ (kv.second + (long)kv.first.size()); });
    std::cout << "words=" << words.size() << " first=" << words.front() << " last=" << words.back()
              << " prefixes=" << ordered.size() << " joined=" << joined.size()
              << " regex=" << regex_n << '/' << regex_sum << " nodes=" << nodes
              << " r1=" << r1.size() << '/' << s1 << " r2=" << r2.size() << '/' << s2 << std::endl;
    return 0;
}
EOF
}
scenario_gcc() {
    write_c_sources
    r gcc -O2 -g -Wall -Wextra -c ht.c -o ht.o
    r gcc -O2 -g -Wall -Wextra -c main.c -o main.o
    r gcc -O2 -g ht.o main.o -o cprog
    r gcc -O0 -g3 -Wall -o cprog0 ht.c main.c
    r gcc -O2 -S -o main.s main.c
    r g++ -std=c++17 -O2 -g -Wall -Wextra -c app.cpp -o app.o
    r g++ -pthread -O2 -g app.o -o cxxprog
    r g++ -std=c++17 -O0 -fsyntax-only app.cpp
    if [[ $SIZE == full ]]; then
        # LTO with 2 parallel partitions; stripped (the symbol table names
        # random temporary files)
        r g++ -std=c++17 -O3 -flto=2 -s -pthread -o cxxprog3 app.cpp
        r gcc -O3 -flto=2 -s -o cprog3 ht.c main.c
        r ./cxxprog3
        r ./cprog3 1000000
        digest cxxprog3 cprog3
    fi
    r ./cprog 200000
    r ./cprog0 50000
    r ./cxxprog
    digest ht.o main.o app.o main.s cprog cprog0 cxxprog
}
entry_gcc() {
    need gcc gcc || return 3
    need g++ g++ || return 3
    run_scenario gcc scenario_gcc 600
}

# --- perl ------------------------------------------------------------------
scenario_perl() {
    # shellcheck disable=SC2016 # perl code, not shell
    r perl -e '
        my $n = shift;
        my %h; my @a;
        for my $i (0 .. $n - 1) { my $k = "k" . (($i * 7919) % 65537); $h{$k} .= chr(65 + $i % 26); push @a, [$i, $k] if $i % 3; }
        my @s = sort { length($h{$a}) <=> length($h{$b}) or $a cmp $b } keys %h;
        my $c = 0; $c = ($c * 33 + length($h{$_})) % 1000000007 for @s;
        my $j = join ",", map { $_->[1] } @a[0 .. 999];
        (my $t = $j) =~ s/k(\d+)/<$1>/g;
        my %w; $w{$_}++ for map { /(\d{2})$/ ? $1 : "x" } keys %h;
        printf "keys=%d first=%s last=%s c=%d a=%d t=%d w=%s\n", scalar(@s), $s[0], $s[-1], $c, scalar(@a), length($t),
            join(",", map { "$_:$w{$_}" } (sort keys %w)[0 .. 9]);' "$PERL_N"
    # text processing on a generated file: split, hash of arrays, sprintf, join
    # shellcheck disable=SC2016
    r perl -ne 'my @f = split / /; push @{ $g{substr($f[1], 0, 2)} }, $f[0]; END { for (sort keys %g) { my @v = sort @{ $g{$_} }; printf "%s %d %s %s\n", $_, scalar(@v), $v[0], $v[-1] } }' "$IN/lines.txt"
}
entry_perl() { need perl perl || return 3; gen_lines; run_scenario perl scenario_perl 600; }

# --- sort ------------------------------------------------------------------
scenario_sort() {
    r sort -S 2M --parallel=2 -T "$W" -k2,2 -k1,1n "$IN/lines.txt" -o sorted.txt
    r sort -u -S 2M --parallel=2 -T "$W" "$IN/lines.txt" -o uniq.txt
    r sort -t ' ' -k3,3 -k1,1r "$IN/lines.txt" -o bykey.txt
    digest sorted.txt uniq.txt bykey.txt
}
entry_sort() { need sort coreutils || return 3; gen_lines; run_scenario sort scenario_sort 600; }

# generated inputs, made once per invocation (not timed)
gen_lines() {
    [[ -f $IN/lines.txt ]] && return 0
    awk -v n="$LINES" 'BEGIN { for (i = 0; i < n; i++) printf "%08d %s %s\n", (i * 2654435761) % 1000003, substr("qwertyuiopasdfghjklzxcvbnm", i % 26 + 1, i % 9 + 1), (i * 7919) % 4099 }' >"$IN/lines.txt"
}
# gen_blob: MB of mixed text (words, numbers, repeats): compressible, not trivially
gen_blob() {
    [[ -f $IN/blob.txt ]] && return 0
    awk -v mb="$BLOB_MB" 'BEGIN {
        split("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega malloc free arena pool block", w, " ")
        x = 12345; total = mb * 1048576; n = 0
        while (n < total) {
            line = ""
            for (k = 0; k < 12; k++) { x = (x * 1103515245 + 12345) % 2147483648; line = line w[1 + int(x / 65536) % 32] (x % 7 == 0 ? sprintf(" %d", x % 100000) : "") " " }
            print line; n += length(line) + 1
        } }' >"$IN/blob.txt"
}
gen_tree() {
    [[ -d $IN/tree ]] && return 0
    gen_blob
    local a b
    for a in 0 1 2 3 4 5 6; do for b in 0 1 2; do mkdir -p "$IN/tree/d$a/e$b"; done; done
    # files of assorted sizes cut from the blob, in nested dirs
    awk -v dir="$IN/tree" -v files="$TREE_FILES" 'BEGIN { f = 0; sz = 0 }
        { if (sz == 0) { f++; if (f > files) exit; out = dir "/d" (f % 7) "/e" (f % 3) "/f" f ".txt"; sz = 1 + (f * 7919) % 400 }
          print > out; if (--sz == 0) close(out) }' "$IN/blob.txt"
    touch -d @1700000000 "$IN/tree" "$IN"/tree/*/* "$IN"/tree/*/*/* 2>/dev/null || true
}

# --- gzip + tar ------------------------------------------------------------
scenario_gzip_tar() {
    r tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -C "$IN" -cf tree.tar tree
    r gzip -9 -n -k tree.tar
    ro blob.gz gzip -1 -n -c "$IN/blob.txt"
    r gzip -t tree.tar.gz blob.gz
    r gzip -l tree.tar.gz
    mkdir -p out
    r tar -C out -xzf tree.tar.gz
    r tar -tvzf tree.tar.gz --numeric-owner
    ro blob.out gzip -d -c blob.gz
    r diff -r "$IN/tree" out/tree
    r cmp "$IN/blob.txt" blob.out
    digest tree.tar tree.tar.gz blob.gz
    rm -rf out
}
entry_gzip-tar() {
    need gzip gzip || return 3
    need tar tar || return 3
    gen_tree
    run_scenario gzip-tar scenario_gzip_tar 600
}

# --- xz -T2 ----------------------------------------------------------------
scenario_xz() {
    ro blob.xz xz -T2 -6 -c "$IN/blob.txt"
    r xz -T2 -t blob.xz
    r xz -l blob.xz
    ro blob.out xz -T2 -d -c blob.xz
    r cmp "$IN/blob.txt" blob.out
    digest blob.xz
    rm -f blob.out
}
entry_xz() { need xz xz-utils || return 3; gen_blob; run_scenario xz scenario_xz 900; }

# --- pigz -p2 --------------------------------------------------------------
scenario_pigz() {
    ro blob.gz pigz -p 2 -9 -n -c "$IN/blob.txt"
    ro lines.gz pigz -p 2 -6 -b 32 --rsyncable -n -c "$IN/lines.txt"
    head -c 400000 "$IN/blob.txt" >small.txt
    ro small.gz pigz -p 2 -11 -n -c small.txt
    r pigz -t blob.gz lines.gz small.gz
    ro blob.out pigz -p 2 -d -c blob.gz
    ro lines.out pigz -d -c lines.gz
    r cmp "$IN/blob.txt" blob.out
    r cmp "$IN/lines.txt" lines.out
    ro small.out pigz -d -c small.gz
    r cmp small.txt small.out
    digest blob.gz lines.gz small.gz
    rm -f blob.out lines.out small.out
}
entry_pigz() { need pigz pigz || return 3; gen_blob; gen_lines; run_scenario pigz scenario_pigz 900; }

# --- redis -----------------------------------------------------------------
redis_cmds() { # deterministic session for redis-cli (no reply depends on hash seeds or the allocator)
    awk -v n="$1" 'BEGIN {
        for (i = 1; i <= n; i++) {
            printf "SET key:%d val-%d-%s\n", i, (i * 7919) % 10007, substr("abcdefghijklmnopqrstuvwxyz0123456789", 1, 1 + i % 36)
            if (i % 3 == 0) printf "APPEND key:%d -appended-%d\n", i, i
            printf "INCRBY counter %d\n", i
            printf "RPUSH list:%d %d\n", i % 10, i
            printf "HSET h:%d f%d %d\n", i % 50, i, i * 3
            printf "SADD s:%d m%d\n", i % 20, (i * 31) % 1000
            printf "ZADD z %d m%d\n", (i * 7) % 997, i
            if (i % 100 == 0) printf "SET big:%d %s\n", i, sprintf("%" (i * 17 % 5000) "s", "x")
            if (i % 7 == 0) printf "DEL key:%d\n", i - 3
        }
        for (i = 1; i <= n; i += 13) printf "GET key:%d\n", i
        for (i = 0; i < 10; i++) printf "LLEN list:%d\nLRANGE list:%d 0 5\nLPOP list:%d 2\n", i, i, i
        for (i = 0; i < 50; i += 7) printf "HLEN h:%d\nHGET h:%d f%d\n", i, i, i + 50
        for (i = 0; i < 20; i += 3) printf "SCARD s:%d\nSORT s:%d ALPHA LIMIT 0 5\nSISMEMBER s:%d m62\n", i, i, i
        printf "ZCARD z\nZRANGE z 0 20 WITHSCORES\nZRANGEBYSCORE z 100 110\nZRANK z m500\nGET counter\nSTRLEN big:%d\nDBSIZE\n", int(n / 100) * 100
    }'
}
REDIS_PORT=
redis_start() { # start the server on a free loopback port; sets REDIS_PORT
    local try port i
    mkdir -p rdata
    for ((try = 0; try < 8; try++)); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
        (NOTIME=1 x redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$W/rdata" \
            --daemonize no --logfile "$W/rdata/redis.log" --protected-mode yes --io-threads 1) &
        echo $! >"$R/redis.bgpid"
        for ((i = 0; i < 100; i++)); do
            if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
                REDIS_PORT=$port SCRUB=$port
                redis-cli -h 127.0.0.1 -p "$port" info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p' >"$T/redis.serverpid"
                cp -- "/proc/$(cat "$T/redis.serverpid")/maps" "$R/redis.$RUNMODE.maps" 2>/dev/null || true
                return 0
            fi
            kill -0 "$(cat "$R/redis.bgpid")" 2>/dev/null || break
            sleep 0.1
        done
        wait "$(cat "$R/redis.bgpid")" 2>/dev/null || true
    done
    echo "[redis-server did not start]"
    return 1
}
redis_stop() {
    [[ -n $REDIS_PORT ]] || return 0
    r redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave
    local i pid
    pid=$(cat "$T/redis.serverpid" 2>/dev/null)
    for ((i = 0; i < 100; i++)); do
        if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
    wait "$(cat "$R/redis.bgpid")" 2>/dev/null || true
    rm -f -- "$T/redis.serverpid"
    REDIS_PORT=
}
scenario_redis() {
    trap redis_stop EXIT
    redis_start || return
    local cli=(redis-cli -h 127.0.0.1 -p "$REDIS_PORT")
    redis_cmds "$REDIS_KEYS" >cmds.txt
    echo "\$ redis-cli -n 1 <cmds.txt"
    x "${cli[@]}" -n 1 <cmds.txt >replies.txt
    echo "[exit $?]"
    digest replies.txt
    # redis-benchmark: request rates vary run to run; compare which tests ran
    echo "\$ redis-benchmark -n $REDIS_N ... --csv | cut -d, -f1"
    x redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -n "$REDIS_N" -c 16 -r 100000 -d 64 \
        -t set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100,mset --csv >bench.csv
    echo "[exit $?]"
    awk -F, 'NR > 1 { gsub(/"/, ""); print $1, ($2 > 0 ? "completed" : "NO-REQUESTS") }' bench.csv
    # the deterministic session again, over the heap the benchmark left
    echo "\$ redis-cli -n 2 <cmds.txt"
    x "${cli[@]}" -n 2 <cmds.txt >replies2.txt
    echo "[exit $?]"
    r cmp replies.txt replies2.txt
    r "${cli[@]}" -n 1 dbsize
    r "${cli[@]}" -n 1 lrange list:3 0 -1
    redis_stop
    trap - EXIT
}
entry_redis() {
    need redis-server redis-server || return 3
    need redis-cli redis-tools || return 3
    need redis-benchmark redis-tools || return 3
    rm -f -- "$R"/redis.*.maps
    run_scenario redis scenario_redis 600
    # the server itself, while it ran: the library mapped
    if [[ -f $R/redis.pre.maps ]]; then
        if ! awk -v n="$ALLOC" '$6 == n { f = 1 } END { exit !f }' "$R/redis.pre.maps"; then
            reason "preload not in effect: $ALLOCNAME is not mapped in the running redis-server (/proc/PID/maps)"
        fi
    else
        reason "could not read the preloaded redis-server's /proc/PID/maps"
    fi
}

# --- the project's own thread stress programs --------------------------------
# tests/stress/run.sh builds them (gcc) and runs each under LD_PRELOAD of the
# allocator; each program itself checks at start-up that malloc & co resolve
# into it (exit 5 if not), which is the proof here (LD_PRELOAD is the runner's
# own, so the probe is not used).  Run once with --no-preload (base) and once
# with --alloc; their outputs carry timings, so the list of programs that
# passed is compared.
entry_thread-stress() {
    local runner=$REPO/tests/stress/run.sh rc m t0 t1 to=600 bt=() pt=() rep
    if [[ ! -f $runner ]]; then
        MISSING="tests/stress/run.sh not found (the C stress programs are not in this tree)"
        return 3
    fi
    [[ $SIZE == full ]] && to=7200
    # once even in --full: its own --full runs several minutes per program
    for ((rep = 1; rep <= 1; rep++)); do
        for m in base pre; do
            local args=(--no-preload)
            [[ $m == pre ]] && args=(--alloc "$ALLOC")
            rc=0
            t0=${EPOCHREALTIME/./}
            STRESS_OUT=$T/stress-build timeout -k 10 "$to" bash "$runner" "--$SIZE" "${args[@]}" \
                >"$R/thread-stress.$m.out" 2>&1 </dev/null || rc=$?
            t1=${EPOCHREALTIME/./}
            if [[ $m == base ]]; then bt+=($((t1 - t0))); else pt+=($((t1 - t0))); fi
            echo "exit $rc" >"$R/thread-stress.$m.rc"
            sed -n 's/^\(PASS\|FAIL\) \([A-Za-z0-9_-]*\).*/\1 \2/p' "$R/thread-stress.$m.out" >"$R/thread-stress.$m.list"
            echo "exit $rc" >>"$R/thread-stress.$m.list"
            if ((rc != 0)); then
                reason "tests/stress/run.sh --$SIZE ${args[*]} exited $rc"
                grep -A5 '^FAIL' "$R/thread-stress.$m.out" | head -n 30 | sed 's/^/    /' >>"$DETAILS"
            fi
        done
        if ! grep -q '^PASS' "$R/thread-stress.pre.list"; then
            reason "tests/stress/run.sh ran no program"
        fi
        compare "programs passed (tests/stress/run.sh)" "$R/thread-stress.base.list" "$R/thread-stress.pre.list"
        [[ ! -s $REASONS ]] || break
    done
    BASE_T=$(median "${bt[@]}") PRE_T=$(median "${pt[@]}") BASE_M=0 PRE_M=0
    echo "RSS not measured: tests/stress/run.sh runs the programs itself" >>"$NOTES"
}

# ===========================================================================
# Sizes per mode.
# ===========================================================================
if [[ $SIZE == full ]]; then
    SQL_ROWS=1000000 GIT_COMMITS=300 PERL_N=2000000 LINES=3000000
    BLOB_MB=64 TREE_FILES=4000 REDIS_N=100000 REDIS_KEYS=20000 PYTO=10800
else
    SQL_ROWS=100000 GIT_COMMITS=50 PERL_N=200000 LINES=300000
    BLOB_MB=12 TREE_FILES=600 REDIS_N=20000 REDIS_KEYS=3000 PYTO=600
fi

CATALOGUE=(python-malloc python-pymem sqlite3 git gcc perl sort gzip-tar xz pigz redis thread-stress)
SELECTED=()
if ((${#ONLY[@]})); then
    for o in "${ONLY[@]}"; do
        [[ -n $o ]] || continue
        found=
        for e in "${CATALOGUE[@]}"; do
            if [[ $e == "$o" || $e == "$o"-* ]]; then
                [[ " ${SELECTED[*]} " == *" $e "* ]] || SELECTED+=("$e")
                found=1
            fi
        done
        [[ -n $found ]] || die "--only $o: no such program (catalogue: ${CATALOGUE[*]})"
    done
    # keep catalogue order
    mapfile -t SELECTED < <(for e in "${CATALOGUE[@]}"; do [[ " ${SELECTED[*]} " == *" $e "* ]] && echo "$e"; done)
else
    SELECTED=("${CATALOGUE[@]}")
fi

CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
MACHINE="$(uname -m), $(nproc) CPUs (${CPU:-unknown CPU}), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, $(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null | grep . || uname -sr)"
START=$(date -u '+%Y-%m-%d %H:%M UTC')
echo "# stress.sh --$SIZE: allocator $ALLOC"
echo "# $START; $MACHINE"
echo "# probe: $PROBE; must resolve into the library: ${REQSYMS[*]}${IS_ARENALLOC:+; arenalloc counters checked}"

declare -A RES=() TR=() RR=() BT=() BM=() NOTE=()
N=${#SELECTED[@]}
i=0
T_START=$SECONDS
for e in "${SELECTED[@]}"; do
    i=$((i + 1))
    printf '[%d/%d] %-14s ... ' "$i" "$N" "$e"
    : >"$REASONS"
    : >"$DETAILS"
    : >"$NOTES"
    rm -f -- "$DETAILS.probe"
    BASE_T=0 PRE_T=0 BASE_M=0 PRE_M=0 MISSING='' EXE_MUST=''
    s=$SECONDS
    rc=0
    "entry_$e" || rc=$?
    if ((rc == 3)); then
        RES[$e]=SKIP
        NOTE[$e]=$MISSING
        echo "SKIP"
        echo "SKIP $e: $MISSING"
        continue
    fi
    if [[ -s $REASONS ]]; then
        RES[$e]=FAIL
        ANYFAIL=1
    else
        RES[$e]=PASS
    fi
    TR[$e]=$(ratio "$PRE_T" "$BASE_T")
    RR[$e]=$(ratio "$PRE_M" "$BASE_M")
    BT[$e]=$( ((BASE_T > 0)) && fmt_time "$BASE_T" || echo -)
    BM[$e]=$( ((BASE_M > 0)) && fmt_rss "$BASE_M" || echo -)
    NOTE[$e]=$(cat "$REASONS" "$NOTES" | paste -sd ';' | sed 's/;/; /g')
    printf '%s  time %s  RSS %s  (%ds)\n' "${RES[$e]}" "${TR[$e]}" "${RR[$e]}" $((SECONDS - s))
    if [[ ${RES[$e]} == FAIL ]]; then
        sed 's/^/    FAIL: /' "$REASONS"
        sed 's/^/    | /' "$DETAILS" | head -n 120
    elif [[ -s $NOTES ]]; then
        sed 's/^/    note: /' "$NOTES"
    fi
done
TOTAL=$((SECONDS - T_START))

# ---------------------------------------------------------------------------
# Summary table.
# ---------------------------------------------------------------------------
echo
echo "stress.sh --$SIZE, $START, $(printf '%dm%02ds' $((TOTAL / 60)) $((TOTAL % 60))) in all"
echo "allocator: $ALLOC$( [[ -n $IS_ARENALLOC ]] && echo " (arenalloc)")"
echo "machine: $MACHINE"
echo "time and RSS ratios: preloaded / system allocator$( ((REPS > 1)) && echo ", medians of $REPS runs")"
echo
{
    echo "program|result|time ratio|RSS ratio|base time|base peak RSS"
    echo "---|---|---|---|---|---"
    for e in "${SELECTED[@]}"; do
        echo "$e|${RES[$e]}|${TR[$e]:--}|${RR[$e]:--}|${BT[$e]:--}|${BM[$e]:--}"
    done
} | awk -F'|' '
    { for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NF; rows = NR }
    END { for (r = 1; r <= rows; r++) { line = "|"
            for (i = 1; i <= n; i++) { v = c[r, i]; if (r == 2) { v = ""; while (length(v) < w[i]) v = v "-" }
                line = line " " sprintf("%-" w[i] "s", v) " |" }
            print line } }'
for e in "${SELECTED[@]}"; do
    [[ -z ${NOTE[$e]:-} ]] || echo "- $e: ${RES[$e]}: ${NOTE[$e]}"
done
if [[ -n $ANYFAIL ]]; then
    echo "stress.sh: FAILED"
    exit 1
fi
echo "stress.sh: all passed ($(printf '%s\n' "${RES[@]}" | grep -c PASS) PASS, $(printf '%s\n' "${RES[@]}" | grep -c SKIP) SKIP)"
