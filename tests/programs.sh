#!/usr/bin/env bash
# tests/programs.sh [LIB]
#
# "Real programs under LD_PRELOAD" test for arenalloc.
#
# Each program is run once WITHOUT the allocator and once WITH it preloaded
# (through scripts/arenalloc-run), in the same fresh work directory and
# environment, and the two runs are compared: exit statuses, stdout and stderr
# byte for byte, and produced artifacts (object files, binaries, databases,
# archives) by digest.  CPython's regression suite prints timings, so for it
# the per-module outcome (from the regrtest summary) and the per-test outcome
# (from --junit-xml) are compared instead of raw output.
#
# LIB defaults to target/release/libarenalloc.so.  Any malloc replacement can
# stand in (e.g. /usr/lib/x86_64-linux-gnu/libjemalloc.so.2): the check that
# the preload took effect looks for LIB's own file name.
#
# Prints one "PASS name" / "FAIL name" line per check (plus a diff excerpt
# under each FAIL), then "N passed, N failed"; exits 1 on any failure, 2 on a
# usage/setup error.  Run from the repository root.
#
# Environment knobs:
#   PROGRAMS_ONLY="python sqlite git gcc misc"   subset of sections to run
#   PROGRAMS_PY_MODULES="test_dict test_list"    override the CPython modules
#   PROGRAMS_KEEP=1                              keep the temp dir (path printed)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

LIB=${1:-target/release/libarenalloc.so}
if [[ ! -f $LIB ]]; then
    echo "programs.sh: error: library not found: $LIB (build it first, or pass a path)" >&2
    exit 2
fi
LIB=$(readlink -f -- "$LIB")
LIBNAME=$(basename -- "$LIB")
RUN=$REPO/scripts/arenalloc-run
if [[ ! -x $RUN ]]; then
    echo "programs.sh: error: $RUN missing or not executable" >&2
    exit 2
fi
# Exported for both runs so the environments only differ by LD_PRELOAD itself.
export ARENALLOC_LIB=$LIB
# Nothing inherited may preload anything into the baseline runs.
unset LD_PRELOAD

ONLY=${PROGRAMS_ONLY:-python sqlite git gcc misc}
want() { [[ " $ONLY " == *" $1 "* ]]; }

T=$(mktemp -d "${TMPDIR:-/tmp}/arenalloc-programs.XXXXXX")
if [[ -n ${PROGRAMS_KEEP:-} ]]; then
    echo "# keeping temp dir $T"
else
    trap 'rm -rf -- "$T"' EXIT
fi
mkdir -p "$T/tmp" "$T/res"
export TMPDIR=$T/tmp
export LC_ALL=C LANG=C TZ=UTC
R=$T/res          # transcripts and artifacts of both runs
W=$T/work         # the scenario work dir: same path for both runs

npass=0
nfail=0
pass() { echo "PASS $1"; npass=$((npass + 1)); }
fail() {
    echo "FAIL $1"
    nfail=$((nfail + 1))
    if [[ -n ${2:-} && -s $2 ]]; then sed -e 's/^/    | /' "$2" | head -n 80; fi
}
# compare NAME BASEFILE PREFILE [CONTEXT]: byte-for-byte, unified diff
# excerpt (CONTEXT lines of context, default 3) on failure
compare() {
    if cmp -s -- "$2" "$3"; then
        pass "$1"
    else
        diff -U "${4:-3}" --label "without-preload" --label "with-preload" -- "$2" "$3" >"$T/diff" || true
        [[ -s $T/diff ]] || echo "(files differ in bytes that diff does not show)" >"$T/diff"
        fail "$1" "$T/diff"
    fi
}

# ---------------------------------------------------------------------------
# Scenario machinery.  A scenario is a bash function that runs programs only
# through `r` (and `x`), which prefixes the preload wrapper in the "pre" run
# and a timeout in both.  Its stdout/stderr become the transcripts that are
# compared; `r` also logs each command and its exit status into both.
# ---------------------------------------------------------------------------
MODE=base
TO=120
x() {
    if [[ $MODE == pre ]]; then
        timeout -k 5 "$TO" "$RUN" "$@"
    else
        timeout -k 5 "$TO" "$@"
    fi
}
r() {
    local rc=0
    echo "\$ $*"
    echo "\$ $*" >&2
    x "$@" || rc=$?
    echo "[exit $rc]"
    if ((rc == 124 || rc == 137)); then echo "[TIMEOUT after ${TO}s: $*]" >&2; fi
    return 0
}
# ro FILE CMD...: like r, but CMD's stdout goes to FILE (in the work dir)
ro() {
    local f=$1 rc=0
    shift
    echo "\$ $* >$f"
    echo "\$ $* >$f" >&2
    x "$@" >"$f" || rc=$?
    echo "[exit $rc]"
    if ((rc == 124 || rc == 137)); then echo "[TIMEOUT after ${TO}s: $*]" >&2; fi
    return 0
}
# digest FILE...: content digests (computed without the preload) into the transcript
digest() { (cd "$W" && sha256sum -- "$@") | sed 's/^/[sha256] /'; }

# run_scenario ID FUNC TIMEOUT: run FUNC in a fresh $W without, then with,
# the preload; then compare stdout and stderr transcripts.
run_scenario() {
    local id=$1 fn=$2 m
    TO=$3
    for m in base pre; do
        MODE=$m
        rm -rf -- "$W"
        mkdir -p "$W"
        (cd "$W" && set +e && "$fn") >"$R/$id.$m.out" 2>"$R/$id.$m.err" </dev/null || true
        # keep the artifacts this run left, for comparison by the caller
        rm -rf -- "${R:?}/$id.$m.w"
        mv -- "$W" "$R/$id.$m.w"
    done
    MODE=base
    # Every command of a scenario is meant to succeed: a failing baseline means
    # a missing or broken tool, and two identical failures must not pass.
    if grep -B1 -E '^\[exit [1-9][0-9]*\]$' "$R/$id.base.out" >"$T/basefail"; then
        fail "$id: baseline (no preload) runs cleanly" "$T/basefail"
    else
        pass "$id: baseline (no preload) runs cleanly"
    fi
    check_loader_errors "$id" "$R/$id.pre.err"
    compare "$id: stdout + exit statuses" "$R/$id.base.out" "$R/$id.pre.out"
    compare "$id: stderr" "$R/$id.base.err" "$R/$id.pre.err"
}
# ld.so reports a preload it could not load on stderr and then carries on
# without it: treat that as a failure, wherever it appears.
check_loader_errors() {
    if grep -E 'ld\.so: object .* cannot be preloaded|error while loading shared libraries' "$2" >"$T/lderr" 2>/dev/null; then
        fail "$1: dynamic loader accepted the preload" "$T/lderr"
    fi
}

echo "# library: $LIB"

# ---------------------------------------------------------------------------
# 0. The preload really takes effect.
# ---------------------------------------------------------------------------
# A mapping whose path (6th field of /proc/PID/maps) ends in /LIBNAME; the
# loader's stderr must be empty (a preload it cannot load is only warned about).
maps_has_lib() { awk -v n="/$LIBNAME" '{ if (length($6) >= length(n) && substr($6, length($6) - length(n) + 1) == n) f = 1 } END { exit !f }' "$1"; }
preload_check() { # NAME MAPSFILE ERRFILE
    if maps_has_lib "$2" && [[ ! -s $3 ]]; then
        pass "$1"
    else
        cat "$3" "$2" >"$T/maps.both"
        fail "$1" "$T/maps.both"
    fi
}
timeout 10 cat /proc/self/maps >"$T/maps.none" 2>/dev/null || true
LD_PRELOAD=$LIB timeout 10 cat /proc/self/maps >"$T/maps.direct" 2>"$T/maps.direct.err" || true
timeout 10 "$RUN" cat /proc/self/maps >"$T/maps.wrapper" 2>"$T/maps.wrapper.err" || true
if maps_has_lib "$T/maps.none"; then
    fail "preload: $LIBNAME absent from a process started without it"
else
    pass "preload: $LIBNAME absent from a process started without it"
fi
preload_check "preload: LD_PRELOAD=LIB cat /proc/self/maps maps $LIBNAME" "$T/maps.direct" "$T/maps.direct.err"
preload_check "preload: scripts/arenalloc-run cat /proc/self/maps maps $LIBNAME" "$T/maps.wrapper" "$T/maps.wrapper.err"
# The wrapper must refuse clearly, not silently run unpreloaded, when the
# library is missing.
wrc=0
ARENALLOC_LIB=$T/no-such-lib.so timeout 10 "$RUN" true >"$T/wrap.out" 2>&1 || wrc=$?
if ((wrc != 0)) && grep -q 'not found' "$T/wrap.out"; then
    pass "wrapper: fails clearly when the library is missing"
else
    echo "exit $wrc" >>"$T/wrap.out"
    fail "wrapper: fails clearly when the library is missing" "$T/wrap.out"
fi
# ...and keeps an existing LD_PRELOAD, after the library.
wrc=0
LD_PRELOAD=/nonexistent-keep-me.so timeout 10 "$RUN" printenv LD_PRELOAD >"$T/wrap.out" 2>/dev/null || wrc=$?
if [[ $(cat "$T/wrap.out") == "$LIB:/nonexistent-keep-me.so" ]]; then
    pass "wrapper: prepends to an existing LD_PRELOAD"
else
    fail "wrapper: prepends to an existing LD_PRELOAD" "$T/wrap.out"
fi

# ---------------------------------------------------------------------------
# 1. CPython and its own regression test suite.
# ---------------------------------------------------------------------------
# Chosen for heavy allocation of every size class, and for passing quickly on
# the stock interpreter (3.11.7 here).  Baseline wall time of each module run
# alone, no preload, on 2 cores (s):
#   test_dict 0.2  test_list 0.2  test_set 1.1  test_unicode 0.8  test_bytes 0.8
#   test_json 1.0  test_re 0.3  test_collections 0.3  test_itertools 1.2
#   test_gc 1.6  test_weakref 1.6  test_deque 0.4  test_sqlite3 0.2
#   test_pickle 2.1  test_capi 3.8  test_tracemalloc 1.5  test_thread 1.0
# (~18 s in sequence; one -j2 run of all of them takes 10-17 s).
# test_capi and test_tracemalloc exercise the PyMem_*/PyObject_* APIs and the
# PyMem_SetAllocator hooks (tracemalloc, PYTHONMALLOC=debug) directly;
# test_thread allocates from several threads.  Left out: test_threading
# (test_import_from_another_thread fails here even without a preload),
# test_io (10 s) and test_queue (7.5 s); 3.11 has no test_str.
PY_MODULES=${PROGRAMS_PY_MODULES:-"test_dict test_list test_set test_unicode test_bytes test_json test_re test_collections test_itertools test_gc test_weakref test_deque test_sqlite3 test_pickle test_capi test_tracemalloc test_thread"}

PARSE_PY=$T/parse_regrtest.py
cat >"$PARSE_PY" <<'PYEOF'
"""parse_regrtest.py OUT XML MODULES... -> MODULES.txt and TESTS.txt on stdout-ish.

Writes two canonical (timing-free) files next to OUT:
  OUT.modules : "<module> <OK|FAILED|SKIPPED|...>" per requested module, plus
                the "Result:" line.
  OUT.tests   : "<test id> <ok|skipped|failure|error>" per test case, plus the
                "Total tests" counters.
  OUT.msgs    : "<test id>: <first lines of the message>" per failing test
                (for the report only; never compared).
"""
import re, sys
import xml.etree.ElementTree as ET

out_path, xml_path, modules = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(out_path, encoding="utf-8", errors="replace").read()
lines = text.splitlines()

# The summary follows the last "== Tests result: ... ==" line.
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
    n_ok = 0
    for l in lines[start + 1:]:
        if l.startswith("    ") and current:
            for name in re.findall(r"\btest_\w+", l):
                # the most important category wins (they are printed in
                # increasing order of importance)
                status[name] = current
            continue
        current = None
        for rx, cat in headings:
            if rx.match(l):
                current = cat
        m = re.match(r"^(?:All )?(\d+) tests? OK\.$", l)
        if m:
            n_ok = int(m.group(1))
        if l.startswith("Result:"):
            result = l.strip()
        if l.startswith("Total tests:"):
            totals = l.strip()
    leftover = [m for m in modules if m not in status]
    for m in leftover:
        status[m] = "OK" if n_ok == len(leftover) else "UNKNOWN(ok-count=%d)" % n_ok

with open(out_path + ".modules", "w") as f:
    for m in modules:
        f.write("%s %s\n" % (m, status.get(m, "NOT-REPORTED")))
    for m in sorted(set(status) - set(modules)):
        f.write("%s %s (not requested)\n" % (m, status[m]))
    f.write(result + "\n")

with open(out_path + ".tests", "w") as f:
    f.write(totals + "\n")
    cases = []
    msgs = []
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

if want python; then
    # Resolve the real interpreter: the pyenv shim is a bash script, and the
    # point is to preload into the interpreter, not into a shell.
    PY=$(timeout 30 python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
    echo "# python: $PY ($(timeout 30 "$PY" -c 'import sys; print(sys.version.split()[0])'))"
    # shellcheck disable=SC2206
    mods=($PY_MODULES)

    # Where do malloc (and, if LIB exports it, PyMem_Malloc) resolve in a
    # preloaded interpreter?  dlsym(RTLD_DEFAULT) + /proc/self/maps.
    cat >"$T/where.py" <<'PYEOF'
import ctypes, sys
g = ctypes.CDLL(None)
def where(sym):
    try:
        addr = ctypes.cast(getattr(g, sym), ctypes.c_void_p).value
    except AttributeError:
        return "<undefined>"
    for line in open("/proc/self/maps"):
        p = line.split()
        lo, hi = (int(v, 16) for v in p[0].split("-"))
        if lo <= addr < hi:
            return p[5] if len(p) > 5 else "<anonymous>"
    return "<unmapped>"
for s in sys.argv[1:]:
    print(s, where(s))
PYEOF
    syms=(malloc free realloc calloc)
    if nm -D --defined-only "$LIB" 2>/dev/null | grep -qw PyMem_Malloc; then
        syms+=(PyMem_Malloc PyMem_RawMalloc PyObject_Malloc PyObject_Free)
    else
        echo "# $LIBNAME exports no PyMem_Malloc: PyMem_* resolution not checked"
    fi
    for pm in malloc default; do
        pmenv=(env -u PYTHONMALLOC)
        [[ $pm == malloc ]] && pmenv=(env PYTHONMALLOC=malloc)
        timeout 30 "$RUN" "${pmenv[@]}" "$PY" -I "$T/where.py" "${syms[@]}" >"$T/where.out" 2>&1 || true
        bad=$(awk -v lib="/$LIBNAME" '{ n = length(lib); if (substr($2, length($2) - n + 1) != lib) print }' "$T/where.out")
        if [[ -s $T/where.out && -z $bad ]]; then
            pass "python[PYTHONMALLOC=$pm]: ${syms[*]} resolve into $LIBNAME"
        else
            fail "python[PYTHONMALLOC=$pm]: ${syms[*]} resolve into $LIBNAME" "$T/where.out"
        fi
    done

    for pm in malloc default; do
        pmenv=(env -u PYTHONMALLOC)
        [[ $pm == malloc ]] && pmenv=(env PYTHONMALLOC=malloc)
        id="python[PYTHONMALLOC=$pm]"
        for m in base pre; do
            pre=()
            [[ $m == pre ]] && pre=("$RUN")
            rm -rf -- "$W"
            mkdir -p "$W"
            out=$R/py-$pm.$m
            s=$SECONDS
            rc=0
            # -unone: no network/cpu/gui resources; -j2: separate worker
            # processes (they inherit LD_PRELOAD and PYTHONMALLOC);
            # --timeout: per-test watchdog inside regrtest.
            (cd "$W" && timeout -k 10 300 "${pre[@]}" "${pmenv[@]}" "$PY" -X faulthandler -m test \
                -unone -j2 --timeout=240 --junit-xml "$out.xml" "${mods[@]}") \
                >"$out.out" 2>&1 </dev/null || rc=$?
            echo "exit $rc" >"$out.rc"
            echo "# $id $m: exit $rc in $((SECONDS - s))s"
            timeout 60 "$PY" -I "$PARSE_PY" "$out.out" "$out.xml" "${mods[@]}"
        done
        check_loader_errors "$id" "$R/py-$pm.pre.out"
        compare "$id: regrtest exit status" "$R/py-$pm.base.rc" "$R/py-$pm.pre.rc"
        compare "$id: per-module outcome (${#mods[@]} modules)" "$R/py-$pm.base.out.modules" "$R/py-$pm.pre.out.modules"
        compare "$id: per-test outcome" "$R/py-$pm.base.out.tests" "$R/py-$pm.pre.out.tests" 0
        # messages of the tests that fail only under the preload
        if grep -qvxFf "$R/py-$pm.base.out.msgs" "$R/py-$pm.pre.out.msgs"; then
            echo "    | failure messages under the preload (not in the baseline):"
            grep -vxFf "$R/py-$pm.base.out.msgs" "$R/py-$pm.pre.out.msgs" | head -n 40 | sed 's/^/    |   /'
        fi
        if grep -qv ' OK$\|^Result: SUCCESS$' "$R/py-$pm.base.out.modules"; then
            echo "# note: baseline itself is not all-OK for PYTHONMALLOC=$pm:"
            grep -v ' OK$' "$R/py-$pm.base.out.modules" | sed 's/^/#   /'
        fi
    done
fi

# ---------------------------------------------------------------------------
# 2. sqlite3 CLI: 50k generated rows, index, aggregates, sorting, windows.
# ---------------------------------------------------------------------------
scenario_sqlite() {
    cat >load.sql <<'SQL'
.bail on
PRAGMA page_size = 4096;
PRAGMA cache_size = -2000;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL, blob BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)
INSERT INTO t(id, grp, name, val, blob)
  SELECT x, (x * 7919) % 97,
         printf('name-%06d-%s', (x * 104729) % 50000, substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26, 1 + x % 13)),
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
SELECT group_concat(name, ',') FROM (SELECT name FROM t ORDER BY name DESC LIMIT 2000);
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
    r sqlite3 -batch -csv :memory: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 50000) SELECT x % 13, count(*), sum(x), group_concat(hex(x), '') IS NOT NULL FROM c GROUP BY 1 ORDER BY 2 DESC, 1;"
    digest dump.sql db.sqlite
}
if want sqlite; then
    run_scenario sqlite3 scenario_sqlite 60
fi

# ---------------------------------------------------------------------------
# 3. git: 50+ commits with fixed identities and dates, then log/gc/fsck/...
# ---------------------------------------------------------------------------
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
    r git init -q -b main repo
    cd repo || return
    r git config core.autocrlf false
    r git config gc.auto 0
    # one delta-search thread, so the pack (whose name is its checksum) is
    # deterministic; a threaded repack is exercised further down
    r git config pack.threads 1
    local i j
    for ((i = 1; i <= 50; i++)); do
        mkdir -p "src/d$((i % 5))" docs
        # a growing file, a rewritten file, and a new file each commit
        for ((j = 0; j < 40; j++)); do echo "line $i.$j $(((i * 131 + j * 17) % 1009)) lorem ipsum dolor sit amet"; done >>docs/log.txt
        for ((j = 0; j < 60; j++)); do echo "int f${i}_$j(int x) { return x * $(((i + j) % 97)) + $j; }"; done >"src/d$((i % 5))/gen$((i % 7)).c"
        seq "$i" "$((i * 37))" | tr '\n' ' ' >"src/d$((i % 5))/n$i.txt"
        if ((i % 10 == 0)); then rm -f "src/d$((i % 5))/n$((i - 5)).txt"; fi
        if ((i == 25)); then r git branch side; fi
        set_date "$i"
        r git add -A
        r git commit -q -m "commit $i" -m "Generated commit number $i of the arenalloc program test."
    done
    r git checkout -q side
    for ((i = 51; i <= 55; i++)); do
        echo "side $i" >>side.txt
        set_date "$i"
        r git add side.txt
        r git commit -q -m "side $i"
    done
    r git checkout -q main
    set_date 56
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
    r git cat-file -s HEAD:docs/log.txt
    r git verify-pack -s .git/objects/pack/*.idx
    r git archive --format=tar -o ../head.tar HEAD
    # threaded repack and index-pack: their packs may differ run to run, so
    # only exit statuses and pack-independent output are compared
    r git -c pack.threads=2 repack -q -a -d -f --window=50
    r git fsck --full --strict --no-progress
    r git cat-file --batch-all-objects --batch-check='%(objectname) %(objecttype) %(objectsize)'
    r git clone -q --no-local --bare . ../clone.git
    r git -C ../clone.git -c pack.threads=2 fsck --full --strict --no-progress
    r git -C ../clone.git rev-parse HEAD v1 side
    r git ls-tree -r -l HEAD
    cd .. || return
    digest head.tar
}
if want git; then
    run_scenario git scenario_git 60
fi

# ---------------------------------------------------------------------------
# 4. gcc / g++: the compilers run under the preload; the produced programs
#    run under it too (in the "pre" run); objects and binaries compared.
# ---------------------------------------------------------------------------
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
    /* assorted allocation shapes: realloc chains, aligned, big, calloc'd */
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
    r ./cprog 200000
    r ./cprog0 50000
    r ./cxxprog
    digest ht.o main.o app.o main.s cprog cprog0 cxxprog
}
if want gcc; then
    run_scenario gcc scenario_gcc 120
fi

# ---------------------------------------------------------------------------
# 5. Quick extras: coreutils sort (external merge sort, 2 threads) and perl.
# ---------------------------------------------------------------------------
scenario_misc() {
    awk 'BEGIN { for (i = 0; i < 300000; i++) printf "%08d %s\n", (i * 2654435761) % 1000003, substr("qwertyuiopasdfghjklzxcvbnm", i % 26 + 1, i % 9 + 1) }' >in.txt
    r sort -S 2M --parallel=2 -T "$W" -k2,2 -k1,1n in.txt -o sorted.txt
    r sort -u -S 2M in.txt -o uniq.txt
    # shellcheck disable=SC2016 # perl code, not shell
    r perl -e '
        my %h; my @a;
        for my $i (0 .. 199999) { my $k = "k" . (($i * 7919) % 65537); $h{$k} .= chr(65 + $i % 26); push @a, [$i, $k] if $i % 3; }
        my @s = sort { length($h{$a}) <=> length($h{$b}) or $a cmp $b } keys %h;
        my $c = 0; $c = ($c * 33 + length($h{$_})) % 1000000007 for @s;
        my $j = join ",", map { $_->[1] } @a[0 .. 999];
        (my $t = $j) =~ s/k(\d+)/<$1>/g;
        printf "keys=%d first=%s last=%s c=%d a=%d t=%d\n", scalar(@s), $s[0], $s[-1], $c, scalar(@a), length($t);'
    digest sorted.txt uniq.txt
}
if want misc; then
    run_scenario "sort+perl" scenario_misc 60
fi

echo "$npass passed, $nfail failed"
((nfail == 0))
