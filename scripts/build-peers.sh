#!/usr/bin/env bash
# build-peers.sh: the newest peer allocators, built into preloadable shared libraries for
# `make bench` (and the mimalloc-bench runs of issue 12) to compare arenalloc against.
#
#   scripts/build-peers.sh [--rebuild] [--jobs N]
#
# Debian's own mimalloc is 2.0.9, years old, and Debian has no snmalloc; comparing against
# them would flatter arenalloc.  The newest releases reach any machine through crates.io: the
# crate libmimalloc-sys ships mimalloc's C sources for both v3 (c_src/mimalloc/v3, its
# default) and v2 (c_src/mimalloc/v2, its "v2" feature), and snmalloc-sys ships snmalloc's
# C++ sources (upstream/).  This script
#   1. lets cargo resolve and download the newest versions of both crates, into a throwaway
#      cargo project under the cache directory (no registry list is searched: cargo reads
#      the index entries of these two crates only), and finds their directories with
#      `cargo metadata`;
#   2. builds each allocator with its OWN CMake, release, default options: mimalloc's
#      `mimalloc` target (the shared library, malloc overridden as by default) for v3 and v2,
#      and snmalloc's `snmallocshim` target.  mimalloc's tests are off (the crate does not
#      ship test/), and so are snmalloc's (only the shim is built; the option does not
#      change it).  The crate leaves out mimalloc's cmake/ helper directory, which its
#      CMakeLists.txt includes for two things only, the version numbers and a join_paths()
#      function for the pkg-config file; this script writes both (from the MI_MALLOC_VERSION
#      in the shipped mimalloc.h) into a copy of the sources;
#   3. checks that each library defines malloc and free and that a program runs with it
#      preloaded, and installs it as
#        bench/peers/lib/libmimalloc-v3.so, libmimalloc-v2.so, libsnmalloc.so
#      (not in git), and records what was built in bench/peers/versions.txt (in git: the
#      versions a results table was measured with).
#
# Idempotent: a library already built is kept, and nothing is fetched or compiled when all
# three exist.  --rebuild resolves the newest crate versions again and rebuilds all three.
# --jobs N: parallel compile jobs (default: the number of CPUs).
#
# Environment: PEERS_CACHE (default bench/peers/.build): the cargo project, sources and CMake
# build trees; MIMALLOC_SYS_VERSION, SNMALLOC_SYS_VERSION (default "*", the newest): cargo
# version requirements, to pin older crates.
# Needs cargo (rustup), cmake >= 3.21, gcc, g++, make and python3; the Debian packages among
# these are installed with apt-get when missing and the script runs as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

rebuild=0 jobs=$(nproc 2>/dev/null || echo 2)
while [ $# -gt 0 ]; do
    case $1 in
        --rebuild) rebuild=1; shift ;;
        --jobs) jobs=$2; shift 2 ;;
        --jobs=*) jobs=${1#*=}; shift ;;
        -h|--help) sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-peers.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "build-peers.sh: --jobs wants a positive number" >&2; exit 2; }

LIBDIR=$ROOT/bench/peers/lib
VERSIONS=$ROOT/bench/peers/versions.txt
CACHE=${PEERS_CACHE:-$ROOT/bench/peers/.build}
PEERS=(mimalloc-v3 mimalloc-v2 snmalloc)
libfile() { case $1 in mimalloc-v3) echo libmimalloc-v3.so ;; mimalloc-v2) echo libmimalloc-v2.so ;; snmalloc) echo libsnmalloc.so ;; esac; }

die() { echo "build-peers.sh: $*" >&2; exit 1; }

todo=()
for p in "${PEERS[@]}"; do
    if [ $rebuild = 1 ] || [ ! -f "$LIBDIR/$(libfile "$p")" ]; then todo+=("$p"); fi
done
if [ ${#todo[@]} -eq 0 ]; then
    echo "build-peers.sh: all built ($(cd "$LIBDIR" && echo *.so)); --rebuild to build them again" >&2
    exit 0
fi
echo "build-peers.sh: building ${todo[*]} into $LIBDIR" >&2

# ---------------------------------------------------------------- tools
need_pkgs=()
command -v cmake >/dev/null || need_pkgs+=(cmake)
command -v gcc >/dev/null || need_pkgs+=(gcc)
command -v g++ >/dev/null || need_pkgs+=(g++)
command -v make >/dev/null || need_pkgs+=(make)
command -v python3 >/dev/null || need_pkgs+=(python3)
command -v nm >/dev/null || need_pkgs+=(binutils)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
        die "not root and no sudo: install ${need_pkgs[*]} (Debian packages) first"
    fi
    echo "build-peers.sh: installing ${need_pkgs[*]} (Debian packages)" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq || die "apt-get update failed"
    $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null || die "apt-get install ${need_pkgs[*]} failed"
fi
command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first; cargo fetches the allocators' sources from crates.io"
cmake_ver=$(cmake --version | sed -n '1s/.* \([0-9][0-9.]*\).*/\1/p')
python3 - "$cmake_ver" <<'EOF' || die "cmake $cmake_ver is too old: snmalloc's CMakeLists.txt needs 3.21"
import sys
sys.exit(0 if tuple(map(int, sys.argv[1].split(".")[:2])) >= (3, 21) else 1)
EOF

# ---------------------------------------------------------------- sources, through cargo
mkdir -p "$CACHE/crates" "$LIBDIR"
LOGDIR=$CACHE/logs
mkdir -p "$LOGDIR"
run_logged() { # run_logged LOG WHAT COMMAND...: the command's output goes to LOG; on failure, its tail
    local log=$1 what=$2; shift 2
    if ! "$@" >>"$log" 2>&1; then
        echo "build-peers.sh: $what failed; the last lines of $log:" >&2
        tail -n 25 "$log" | sed 's/^/    /' >&2
        exit 1
    fi
}
proj=$CACHE/crates
cat >"$proj/Cargo.toml.new" <<EOF
# Written by scripts/build-peers.sh: only there to let cargo fetch the allocators' sources.
[package]
name = "arenalloc-peer-sources"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
path = "lib.rs"

[dependencies]
libmimalloc-sys = { version = "${MIMALLOC_SYS_VERSION:-*}", default-features = false }
snmalloc-sys = { version = "${SNMALLOC_SYS_VERSION:-*}", default-features = false }

[workspace]
EOF
# a changed requirement (or --rebuild) resolves again; otherwise the lock file keeps the
# versions that the libraries already built came from
if ! cmp -s "$proj/Cargo.toml.new" "$proj/Cargo.toml" || [ $rebuild = 1 ]; then
    mv "$proj/Cargo.toml.new" "$proj/Cargo.toml"
    rm -f "$proj/Cargo.lock"
else
    rm -f "$proj/Cargo.toml.new"
fi
: >"$proj/lib.rs"
: >"$LOGDIR/cargo.log"
[ -f "$proj/Cargo.lock" ] || run_logged "$LOGDIR/cargo.log" "cargo generate-lockfile (resolving the newest libmimalloc-sys and snmalloc-sys on crates.io)" \
    cargo generate-lockfile --manifest-path "$proj/Cargo.toml"
run_logged "$LOGDIR/cargo.log" "cargo fetch (downloading libmimalloc-sys and snmalloc-sys)" \
    cargo fetch --locked --manifest-path "$proj/Cargo.toml"
cargo metadata --locked --format-version 1 --manifest-path "$proj/Cargo.toml" >"$CACHE/metadata.json" 2>>"$LOGDIR/cargo.log" \
    || die "cargo metadata failed (see $LOGDIR/cargo.log)"
crate_info() { # crate_info NAME: "VERSION DIR" of that crate
    python3 - "$CACHE/metadata.json" "$1" <<'EOF'
import json, os, sys
meta = json.load(open(sys.argv[1]))
for p in meta["packages"]:
    if p["name"] == sys.argv[2]:
        print(p["version"], os.path.dirname(p["manifest_path"]))
        break
else:
    sys.exit(1)
EOF
}
read -r mi_crate_ver mi_crate_dir < <(crate_info libmimalloc-sys) || die "libmimalloc-sys is not in cargo's metadata"
read -r sn_crate_ver sn_crate_dir < <(crate_info snmalloc-sys) || die "snmalloc-sys is not in cargo's metadata"
vcs_sha() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["git"]["sha1"][:12])' "$1/.cargo_vcs_info.json" 2>/dev/null || echo '?'; }
echo "build-peers.sh: libmimalloc-sys $mi_crate_ver ($mi_crate_dir), snmalloc-sys $sn_crate_ver ($sn_crate_dir)" >&2

# ---------------------------------------------------------------- build
declare -A desc=()
check_lib() { # check_lib NAME FILE: exports the allocator's entry points and runs preloaded
    local sym defined
    # Read the symbols once: `nm | grep -q` under pipefail fails at random, when grep
    # exits at its match before nm has written everything (SIGPIPE).
    defined=$(nm -D --defined-only "$2" 2>/dev/null | awk '{print $NF}')
    for sym in malloc free calloc realloc posix_memalign; do
        grep -qx "$sym" <<<"$defined" \
            || die "$1: $2 does not define $sym: it would not replace malloc when preloaded"
    done
    LD_PRELOAD=$2 /bin/sh -c 'ls / >/dev/null' || die "$1: a program preloaded with $2 failed"
}
install_lib() { # install_lib NAME BUILT-FILE
    local dst
    dst=$LIBDIR/$(libfile "$1")
    cp -L "$2" "$dst.tmp.$$"
    check_lib "$1" "$dst.tmp.$$"
    mv "$dst.tmp.$$" "$dst"
    echo "build-peers.sh: $1: $dst" >&2
}

build_mimalloc() { # build_mimalloc v3|v2
    local v=$1 name=mimalloc-$1 src=$CACHE/src/mimalloc-$1 bld=$CACHE/build/mimalloc-$1 log=$LOGDIR/mimalloc-$1.log
    local from=$mi_crate_dir/c_src/mimalloc/$v
    [ -f "$from/CMakeLists.txt" ] || die "libmimalloc-sys $mi_crate_ver has no c_src/mimalloc/$v/CMakeLists.txt: has the crate's layout changed?"
    local num
    num=$(sed -n 's/^#define MI_MALLOC_VERSION[[:space:]]*\([0-9]*\).*/\1/p' "$from/include/mimalloc.h")
    [[ $num =~ ^[0-9]{3,}$ ]] || die "no MI_MALLOC_VERSION in $from/include/mimalloc.h"
    local major=$((num / 10000)) minor=$((num / 100 % 100)) patch=$((num % 100))
    rm -rf "$src" "$bld"
    mkdir -p "$(dirname "$src")"
    cp -a "$from" "$src"
    chmod -R u+w "$src"
    if [ ! -f "$src/cmake/mimalloc-config-version.cmake" ]; then
        mkdir -p "$src/cmake"
        cat >"$src/cmake/mimalloc-config-version.cmake" <<EOF
# Written by arenalloc's scripts/build-peers.sh: libmimalloc-sys leaves out mimalloc's cmake/
# directory.  The version, from MI_MALLOC_VERSION ($num) in include/mimalloc.h.
set(mi_version_major $major)
set(mi_version_minor $minor)
set(mi_version_patch $patch)
set(mi_version \${mi_version_major}.\${mi_version_minor})
set(PACKAGE_VERSION \${mi_version})
EOF
    fi
    if [ ! -f "$src/cmake/JoinPaths.cmake" ]; then
        cat >"$src/cmake/JoinPaths.cmake" <<'EOF'
# Written by arenalloc's scripts/build-peers.sh: join_paths(OUT BASE PATH...) for the
# pkg-config file, which the build of the library does not use.
function(join_paths joined_path first_path_segment)
  set(temp_path "${first_path_segment}")
  foreach(current_segment IN LISTS ARGN)
    if(NOT ("${current_segment}" STREQUAL ""))
      if(IS_ABSOLUTE "${current_segment}")
        set(temp_path "${current_segment}")
      else()
        set(temp_path "${temp_path}/${current_segment}")
      endif()
    endif()
  endforeach()
  set(${joined_path} "${temp_path}" PARENT_SCOPE)
endfunction()
EOF
    fi
    : >"$log"
    echo "build-peers.sh: $name: mimalloc $major.$minor.$patch, cmake (log: $log)" >&2
    run_logged "$log" "$name: cmake configure" \
        cmake -S "$src" -B "$bld" -DCMAKE_BUILD_TYPE=Release -DMI_BUILD_SHARED=ON -DMI_BUILD_TESTS=OFF
    run_logged "$log" "$name: cmake --build --target mimalloc" \
        cmake --build "$bld" --target mimalloc --parallel "$jobs"
    [ -f "$bld/libmimalloc.so" ] || die "$name: the build made no $bld/libmimalloc.so"
    install_lib "$name" "$bld/libmimalloc.so"
    desc[$name]="mimalloc $major.$minor.$patch|crates.io libmimalloc-sys $mi_crate_ver (c_src/mimalloc/$v, git $(vcs_sha "$mi_crate_dir"))|CMake target mimalloc, Release, default options, MI_BUILD_TESTS=OFF"
}

build_snmalloc() {
    local name=snmalloc src=$sn_crate_dir/upstream bld=$CACHE/build/snmalloc log=$LOGDIR/snmalloc.log
    [ -f "$src/CMakeLists.txt" ] || die "snmalloc-sys $sn_crate_ver has no upstream/CMakeLists.txt: has the crate's layout changed?"
    rm -rf "$bld"
    : >"$log"
    echo "build-peers.sh: $name: cmake (log: $log)" >&2
    # out of tree: the crate's directory is only read
    run_logged "$log" "$name: cmake configure" \
        cmake -S "$src" -B "$bld" -DCMAKE_BUILD_TYPE=Release -DSNMALLOC_BUILD_TESTING=OFF
    run_logged "$log" "$name: cmake --build --target snmallocshim" \
        cmake --build "$bld" --target snmallocshim --parallel "$jobs"
    [ -f "$bld/libsnmallocshim.so" ] || die "$name: the build made no $bld/libsnmallocshim.so"
    install_lib "$name" "$bld/libsnmallocshim.so"
    # snmalloc-rs lives in snmalloc's own repository: the crate's git commit is snmalloc's
    desc[$name]="snmalloc git $(vcs_sha "$sn_crate_dir")|crates.io snmalloc-sys $sn_crate_ver (upstream/, the crate's commit in snmalloc's repository)|CMake target snmallocshim, Release, default options, SNMALLOC_BUILD_TESTING=OFF"
}

for p in "${todo[@]}"; do
    case $p in
        mimalloc-v3) build_mimalloc v3 ;;
        mimalloc-v2) build_mimalloc v2 ;;
        snmalloc) build_snmalloc ;;
    esac
done

# ---------------------------------------------------------------- versions.txt
# NAME=VERSION|SOURCE|BUILD|COMPILER, one line per peer; the lines of peers not rebuilt now
# are kept.  No dates or hashes: the file changes only when what is built changes.
declare -A line=()
if [ -f "$VERSIONS" ]; then
    while IFS= read -r l; do
        case $l in '#'*|'') continue ;; esac
        line[${l%%=*}]=$l
    done <"$VERSIONS"
fi
cc_ver="gcc $(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion), cmake $cmake_ver"
for p in "${!desc[@]}"; do line[$p]="$p=${desc[$p]}|$cc_ver"; done
{
    echo "# The peer allocators in bench/peers/lib, as scripts/build-peers.sh built them:"
    echo "# NAME=VERSION|SOURCE|BUILD|COMPILER"
    for p in "${PEERS[@]}"; do [ -n "${line[$p]:-}" ] && echo "${line[$p]}"; done
} >"$VERSIONS.tmp"
mv "$VERSIONS.tmp" "$VERSIONS"
echo "build-peers.sh: done; versions in $VERSIONS:" >&2
grep -v '^#' "$VERSIONS" | sed 's/^/    /' >&2
