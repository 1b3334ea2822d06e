# arenalloc — build, test, run, install.
#   make            build libarenalloc.so, libarenalloc.a and include/arenalloc.h
#   make test       every test (module layers, Rust unit tests, the loom model of
#                   cross-thread frees, header freshness, C tests, memory return, stress:
#                   real programs and C stress programs, preloaded; 60 s of fuzzing)
#   make stress-full  scripts/stress.sh --full (the whole CPython suite; about an hour)
#   make fuzz FUZZ_SECONDS=3600   the fuzz target, as long as you like (make test: 60 s)
#   make run        run the demo (Python object churn, every object from arenalloc)
#   make run CMD="sort big.txt"   run any command with the library preloaded
#   make bench      every workload under glibc, jemalloc, tcmalloc, mimalloc v3 and v2,
#                   snmalloc (the newest, built by scripts/build-peers.sh), arenalloc
#                   (and pymalloc), interleaved: bench/results/ (BENCH_ARGS=--quick)
#   make install PREFIX=/usr/local DESTDIR=

CARGO   ?= cargo
PREFIX  ?= /usr/local
DESTDIR ?=
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
PYTHON  ?= python3
CMD     ?= env PYTHONMALLOC=malloc $(PYTHON) scripts/demo.py

SO  := target/release/libarenalloc.so
A   := target/release/libarenalloc.a
HDR := include/arenalloc.h
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

.PHONY: all build test test-layers test-unit test-loom test-header test-no-panics test-c test-install test-stress test-memory-return test-fuzz fuzz stress-full run bench install clean

all: build

build:
	$(CARGO) build --release
	@test -f $(SO) && test -f $(A) && test -f $(HDR)

test: build test-layers test-unit test-loom test-header test-no-panics test-c test-install test-memory-return test-stress test-fuzz
	@echo "make test: all tests passed"

# Each src/ module uses only the modules below it in lib.rs's layer table (no cycles); the
# self-test proves the check fails on an upward use.
test-layers:
	$(PYTHON) tests/module_layers.py --self-test
	$(PYTHON) tests/module_layers.py

test-unit:
	$(CARGO) test --release

# The cross-thread free protocol under loom's model checker (loom/, a package of its own).
test-loom:
	cd loom && $(CARGO) test --release

test-header: build
	bash tests/header_fresh.sh

test-no-panics: build
	bash tests/no_panics.sh $(SO)

test-c: build
	bash tests/c/run.sh

test-install: build
	bash tests/install.sh

# The stress scripts' own self-tests first (they must catch a corrupting allocator and a
# preload that did not take effect), then real programs and the C stress programs.
test-stress: build
	bash tests/stress/selftest.sh --no-baseline
	bash tests/stress_selftest.sh
	bash scripts/stress.sh --quick --alloc $(SO)

# Minutes to an hour: the whole CPython suite, larger inputs, repeated runs.
stress-full: build
	bash scripts/stress.sh --full --alloc $(SO)

test-memory-return: build
	bash tests/memory_return.sh $(SO)

# cargo-fuzz and libFuzzer on the stable toolchain (scripts/fuzz.sh installs cargo-fuzz).
FUZZ_SECONDS ?= 600
test-fuzz:
	bash scripts/fuzz.sh 60

fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

run: build
	scripts/arenalloc-run $(CMD)

BENCH_ARGS ?=
bench: build
	bash scripts/bench.sh $(BENCH_ARGS)

install: build
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 755 $(SO) $(DESTDIR)$(LIBDIR)/libarenalloc.so
	install -m 644 $(A) $(DESTDIR)$(LIBDIR)/libarenalloc.a
	install -m 644 $(HDR) $(DESTDIR)$(INCDIR)/arenalloc.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCDIR@|$(INCDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    arenalloc.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/arenalloc.pc

clean:
	$(CARGO) clean
	rm -rf fuzz/target
