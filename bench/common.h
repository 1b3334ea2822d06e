/* Helpers shared by the benchmark programs in bench/: a small fast PRNG, a monotonic clock,
 * page touching and a fatal-error helper.  The programs call plain malloc/free/realloc, so
 * whatever allocator the process has (glibc's, or one preloaded with LD_PRELOAD) is the one
 * measured; build them with -fno-builtin-malloc -fno-builtin-free -fno-builtin-realloc so
 * the compiler cannot elide or merge allocations. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct { uint64_t s; } rng_t;

static inline uint64_t rng_next(rng_t *r) { /* xorshift64* */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ull;
}

static inline rng_t rng_seed(uint64_t seed) {
    rng_t r = { seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull };
    if (r.s == 0) r.s = 1;
    for (int i = 0; i < 4; i++) rng_next(&r);
    return r;
}

/* uniform in [lo, hi] */
static inline size_t rng_range(rng_t *r, size_t lo, size_t hi) {
    return lo + (size_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* log-uniform in [lo, hi] (lo >= 1): as many blocks of 64-128 KiB as of 4-8 MiB */
static inline size_t rng_logrange(rng_t *r, size_t lo, size_t hi) {
    int blo = 63 - __builtin_clzll(lo), bhi = 63 - __builtin_clzll(hi);
    int b = blo + (int)(rng_next(r) % (uint64_t)(bhi - blo + 1));
    size_t base = (size_t)1 << b;
    size_t v = base + (size_t)(rng_next(r) % base);
    return v < lo ? lo : v > hi ? hi : v;
}

static inline double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* CPU time (user + system) of the whole process, every thread, exited ones included.  On a
 * machine shared with other jobs, work per CPU second varies far less than work per second
 * of wall-clock time: each program prints both (see report_rates). */
static inline double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The result lines every program ends with: operations per wall-clock second on stdout (the
 * metric), operations per CPU second on stderr as "cpu N" (scripts/bench.sh reads both). */
static inline void report_rates(double ops, double wall, double cpu) {
    printf("%.0f\n", ops / wall);
    fprintf(stderr, "cpu %.0f\n", ops / cpu);
}

/* Write a tag at the start and the complement at the end of the block, and one byte in
 * every 4 KiB page between (a program uses the memory it asks for: every page is faulted
 * in, as it would be by a real program filling the block). */
static inline void touch(unsigned char *p, size_t n, unsigned char tag) {
    p[0] = tag;
    for (size_t o = 4096; o < n; o += 4096) p[o] = tag;
    p[n - 1] = (unsigned char)~tag;
}

static inline int touched_ok(const unsigned char *p, size_t n, unsigned char tag) {
    return p[0] == tag && p[n - 1] == (unsigned char)~tag;
}

__attribute__((noreturn, format(printf, 1, 2)))
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(3);
}

static inline void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) die("malloc(%zu) failed", n);
    return p;
}

#endif
