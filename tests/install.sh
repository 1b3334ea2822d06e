#!/usr/bin/env bash
# `make install` into a scratch DESTDIR must give a usable library, header and pkg-config
# file: a program built with `pkg-config --cflags --libs arenalloc` against the installed
# copy runs, and its malloc is arenalloc's.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v pkg-config >/dev/null || { echo "FAIL install: pkg-config is not installed" >&2; exit 1; }
D=$(mktemp -d); trap 'rm -rf "$D"' EXIT
make -s install DESTDIR="$D/root" PREFIX=/opt/arenalloc >/dev/null
L=$D/root/opt/arenalloc/lib
for f in "$L/libarenalloc.so" "$L/libarenalloc.a" "$D/root/opt/arenalloc/include/arenalloc.h" "$L/pkgconfig/arenalloc.pc"; do
    [ -f "$f" ] || { echo "FAIL install: $f missing" >&2; exit 1; }
done
cat > "$D/t.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <arenalloc.h>
int main(void) {
    char *p = malloc(100);
    strcpy(p, "installed");
    Dl_info info;
    if (!dladdr((void *)malloc, &info) || !strstr(info.dli_fname, "libarenalloc")) return 2;
    printf("%s %s\n", p, arenalloc_version());
    free(p);
    return 0;
}
C
# The .pc file names the final prefix; point the compiler at the staged copy instead.
flags=$(PKG_CONFIG_PATH=$L/pkgconfig PKG_CONFIG_SYSROOT_DIR=$D/root pkg-config --cflags --libs arenalloc)
gcc -fno-builtin-malloc "$D/t.c" $flags -Wl,-rpath,"$L" -ldl -o "$D/t"
out=$("$D/t")
[ "$out" = "installed $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)" ] || { echo "FAIL install: got '$out'" >&2; exit 1; }
echo "PASS install: library, header and arenalloc.pc install and link ($out)"
