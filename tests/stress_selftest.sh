#!/usr/bin/env bash
# tests/stress_selftest.sh: scripts/stress.sh must fail when it should.
#
# Builds test allocators from tests/stress_sh/shim.c (gcc) and runs one cheap
# catalogue entry (perl) of `scripts/stress.sh --quick` under each:
#   good.so     malloc & co forward to glibc         -> PASS, exit 0
#   noisy.so    the same, plus one stray byte on stdout from its constructor:
#               the preloaded output differs          -> FAIL (output), exit 1
#   nomalloc.so loads fine, defines no malloc: the preload does not take
#               effect                                -> FAIL (preload), exit 1
#   broken.so   not an ELF file: ld.so only warns and runs without it
#                                                     -> FAIL (preload), exit 1
# Prints PASS/FAIL per case; exits 1 if any case misbehaved.  ~15 s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

T=$(mktemp -d "${TMPDIR:-/tmp}/stress-selftest.XXXXXX")
trap 'rm -rf -- "$T"' EXIT
# stress.sh keeps its temp dir after a failure: keep those inside ours
export TMPDIR=$T
command -v gcc >/dev/null || { echo "stress_selftest: gcc not found" >&2; exit 2; }
for v in good:"" noisy:-DSHIM_NOISY nomalloc:-DSHIM_NO_MALLOC; do
    # shellcheck disable=SC2086 # the flag may be empty
    gcc -O2 -shared -fPIC -Wall -Wextra ${v#*:} -o "$T/${v%%:*}.so" tests/stress_sh/shim.c
done
echo "this is not an ELF file" >"$T/broken.so"

nbad=0
# case LIB WANT_RC WANT_RESULT REASON_REGEX
case_() {
    local lib=$1 want_rc=$2 want=$3 why=$4 rc=0 out=$T/${1%.so}.log
    bash scripts/stress.sh --quick --only perl --alloc "$T/$lib" >"$out" 2>&1 || rc=$?
    if ((rc == want_rc)) && grep -Eq "^\| perl +\| $want +\|" "$out" && { [[ -z $why ]] || grep -Eq "$why" "$out"; }; then
        echo "PASS stress.sh --alloc $lib: exit $rc, perl $want${why:+ ($why)}"
    else
        echo "FAIL stress.sh --alloc $lib: exit $rc (want $want_rc), perl row $(grep -E '^\| perl ' "$out" || echo missing) (want $want${why:+, /$why/})"
        sed 's/^/    | /' "$out" | tail -n 30
        nbad=$((nbad + 1))
    fi
}
case_ good.so 0 PASS ""
case_ noisy.so 1 FAIL "FAIL: stdout \+ exit statuses differs"
case_ nomalloc.so 1 FAIL "FAIL: preload not in effect: malloc resolved to .*libc\.so\.6"
case_ broken.so 1 FAIL "FAIL: (the dynamic loader did not preload|preload not in effect)"
if ((nbad)); then
    echo "stress_selftest: $nbad case(s) failed"
    exit 1
fi
echo "stress_selftest: all 4 cases behaved"
