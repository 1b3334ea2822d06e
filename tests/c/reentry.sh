#!/usr/bin/env bash
# Initialisation re-entered by a preloaded library that allocates from inside a function
# arenalloc calls while it initialises (tests/c/reentry_shim.c).  Once the arena space is
# reserved, arenalloc serves such calls; before, it must report and abort, never hang.
# Usage (from the repository root, after cargo build --release): bash tests/c/reentry.sh
set -u
cd "$(dirname "$0")/../.." || exit 2
LIB=$PWD/target/release/libarenalloc.so
OUT=target/ctest
mkdir -p "$OUT" || exit 2
CC=${CC:-gcc}
fail=0

gcc_ok() { "$CC" -O2 -g -Wall -Wextra -Werror "$@" || exit 2; }
gcc_ok -o "$OUT/reentry_main" tests/c/reentry_main.c -lpthread
gcc_ok -shared -fPIC -DSHIM_KEY_CREATE -o "$OUT/reentry_key_create.so" tests/c/reentry_shim.c -ldl
gcc_ok -shared -fPIC -DSHIM_GETENV -o "$OUT/reentry_getenv.so" tests/c/reentry_shim.c -ldl

# pthread_key_create allocates: the program runs to the end, threads and all.
out=$(timeout --signal=KILL 30 env LD_PRELOAD="$PWD/$OUT/reentry_key_create.so $LIB" "$OUT/reentry_main" 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ "$out" = "reentry: ok" ]; then
    echo "re-entry from pthread_key_create served  ... ok"
else
    echo "re-entry from pthread_key_create served  ... FAILED (status $rc): $out" >&2
    fail=1
fi

# getenv allocates: one diagnostic and SIGABRT (134), not a hang (SIGKILL from timeout, 137).
out=$(timeout --signal=KILL 30 env LD_PRELOAD="$PWD/$OUT/reentry_getenv.so $LIB" "$OUT/reentry_main" 2>&1)
rc=$?
if [ $rc -eq 134 ] && printf '%s\n' "$out" | grep -q "^arenalloc: fatal: allocator re-entered while initialising"; then
    echo "re-entry from getenv reported, no hang   ... ok"
else
    echo "re-entry from getenv reported, no hang   ... FAILED (status $rc): $out" >&2
    fail=1
fi
exit $fail
