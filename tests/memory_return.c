/* Memory return: after a program frees what it allocated, is the memory back with the OS?
 *
 * Run with the allocator under test preloaded (tests/memory_return.sh does that).  The
 * program reads its resident set size (RSS) from /proc/self/statm, then allocates about
 * 380 MB, touching every page:
 *   small    16..512 B blocks, main thread                                  120 MB
 *   medium   1 KiB..1 MiB (log-uniform), main thread                         80 MB
 *   large    1..8 MiB (log-uniform), main thread                             60 MB
 *   xdead    small+medium, allocated by a thread that then exits;
 *            freed by main (the owner is gone)                                40 MB
 *   xlive    small+medium, allocated by a thread that stays alive;
 *            freed by main while it waits, then it does a few mallocs, exits 40 MB
 *   xmain    small, allocated by main; freed by another thread,
 *            then main does a few mallocs                                     40 MB
 * It frees them category by category, reading RSS after each step, then "settles" (a few
 * malloc/free calls in main and in a new thread, so deferred frees get processed), reads
 * RSS once more and prints, per category and in total, how much RSS it grew by and how much
 * went back.  Exit status 0 when at least MEMRET_MIN_PCT (default 90) percent of the growth
 * went back, 1 when not, 2 on a usage or set-up error.
 *
 * Environment:
 *   MEMRET_KEEP_EVERY=N   keep (do not free) every N-th block of every category until after
 *                         the last reading: N=3 keeps a third, and the test must fail (the
 *                         negative control); N=4096 keeps one small block in ~1 MB, so
 *                         arenas stay alive and only their empty pools can go back (sparse)
 *   MEMRET_MIN_PCT=P      the pass mark (default 90)
 *   MEMRET_SCALE=F        scale every category's size (default 1)
 *   MEMRET_SLEEP_MS=T     idle this long, then make a few allocator calls, before the
 *                         last reading (default 0; tests/memory_return.sh uses 250)
 * The bookkeeping arrays are mmap'ed and faulted in before the first reading, so only the
 * allocator's memory is measured.  Attribution per category is "the RSS drop at that step":
 * an allocator that returns memory late shows it under a later step; the total is exact.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum { SMALL, MEDIUM, LARGE, XDEAD, XLIVE, XMAIN, NCAT };
static const char *cat_name[NCAT] = {"small", "medium", "large", "xdead", "xlive", "xmain"};
static const double cat_mb[NCAT] = {120, 80, 60, 40, 40, 40};

typedef struct {
    void **ptr;
    size_t n, cap;
    double target; /* bytes */
    uint64_t rng;
    int kind; /* 0 small, 1 small+medium, 2 medium, 3 large */
} set_t;

static set_t sets[NCAT];
static long keep_every;
static long page_size;

static double rss_mb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (!f || fscanf(f, "%ld %ld", &size, &res) != 2) {
        perror("memory_return: /proc/self/statm");
        exit(2);
    }
    fclose(f);
    return (double)res * (double)page_size / 1e6;
}

static uint64_t next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static size_t logrange(uint64_t *s, size_t lo, size_t hi) {
    int blo = 63 - __builtin_clzll(lo), bhi = 63 - __builtin_clzll(hi);
    int b = blo + (int)(next(s) % (uint64_t)(bhi - blo + 1));
    size_t base = (size_t)1 << b, v = base + (size_t)(next(s) % base);
    return v < lo ? lo : v > hi ? hi : v;
}

static size_t pick(set_t *s) {
    switch (s->kind) {
    case 0: return 16 + next(&s->rng) % 497;
    case 1: return next(&s->rng) % 8 ? 16 + next(&s->rng) % 497 : logrange(&s->rng, 1024, 1 << 20);
    case 2: return logrange(&s->rng, 1024, 1 << 20);
    default: return logrange(&s->rng, 1 << 20, 8 << 20);
    }
}

static void *map_zeroed(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("memory_return: mmap"); exit(2); }
    memset(p, 0, bytes); /* faulted in now, before the first reading */
    return p;
}

static void fill(set_t *s) { /* allocate blocks until the set holds its target, touching all */
    double got = 0;
    while (got < s->target) {
        size_t n = pick(s);
        unsigned char *p = malloc(n);
        if (!p) { fprintf(stderr, "memory_return: malloc(%zu) failed\n", n); exit(2); }
        memset(p, (int)(s->n & 0xff) | 1, n);
        if (s->n == s->cap) { fprintf(stderr, "memory_return: bookkeeping full\n"); exit(2); }
        s->ptr[s->n++] = p;
        got += (double)n;
    }
}

static void drain(set_t *s) { /* free every block but the kept ones */
    for (size_t i = 0; i < s->n; i++)
        if (s->ptr[i] && !(keep_every > 0 && i % (size_t)keep_every == (size_t)keep_every - 1)) {
            if (((unsigned char *)s->ptr[i])[0] != ((i & 0xff) | 1)) {
                fprintf(stderr, "memory_return: block corrupted\n");
                exit(2);
            }
            free(s->ptr[i]);
            s->ptr[i] = NULL;
        }
}

static void settle(void) { /* a few allocations, so deferred (e.g. cross-thread) frees get processed */
    static void *volatile sink;
    (void)sink;
    for (int round = 0; round < 4; round++)
        for (size_t n = 16; n <= (1 << 20); n = n * 5 / 4 + 16) {
            void *p = malloc(n);
            sink = p;
            free(p);
        }
}

static void *settle_thread(void *arg) { (void)arg; settle(); return NULL; }
static void *fill_thread(void *arg) { fill(arg); return NULL; }
static void *drain_thread(void *arg) { drain(arg); return NULL; }

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int live_stage; /* 1: xlive filled; 2: main freed it, owner may settle and exit */

static void *live_owner(void *arg) {
    fill(arg);
    pthread_mutex_lock(&lock);
    live_stage = 1;
    pthread_cond_broadcast(&cond);
    while (live_stage != 2) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    settle();
    return NULL;
}

static void run_thread(void *(*fn)(void *), void *arg) {
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg)) { fprintf(stderr, "memory_return: pthread_create failed\n"); exit(2); }
    pthread_join(t, NULL);
}

static double env_num(const char *name, double dflt) {
    const char *v = getenv(name);
    return v && *v ? atof(v) : dflt;
}

int main(void) {
    page_size = sysconf(_SC_PAGESIZE);
    keep_every = (long)env_num("MEMRET_KEEP_EVERY", 0);
    double min_pct = env_num("MEMRET_MIN_PCT", 90), scale = env_num("MEMRET_SCALE", 1);
    long sleep_ms = (long)env_num("MEMRET_SLEEP_MS", 0);
    if (keep_every < 0 || scale <= 0 || scale > 10) { fprintf(stderr, "memory_return: bad MEMRET_* setting\n"); return 2; }
    static const int kind[NCAT] = {0, 2, 3, 1, 1, 0};
    for (int c = 0; c < NCAT; c++) {
        set_t *s = &sets[c];
        s->target = cat_mb[c] * 1e6 * scale;
        s->kind = kind[c];
        s->cap = (size_t)(s->target / (s->kind <= 1 ? 200 : 1000)) + 4096; /* small blocks average 264 B */
        s->ptr = map_zeroed(s->cap * sizeof *s->ptr);
        s->rng = 0x9E3779B97F4A7C15ull * (uint64_t)(c + 1);
    }
    settle();
    run_thread(settle_thread, NULL);

    double grown[NCAT], back[NCAT];
    double rss0 = rss_mb(), r = rss0, r1;
    fill(&sets[SMALL]);   r1 = rss_mb(); grown[SMALL] = r1 - r;  r = r1;
    fill(&sets[MEDIUM]);  r1 = rss_mb(); grown[MEDIUM] = r1 - r; r = r1;
    fill(&sets[LARGE]);   r1 = rss_mb(); grown[LARGE] = r1 - r;  r = r1;
    run_thread(fill_thread, &sets[XDEAD]);
    r1 = rss_mb(); grown[XDEAD] = r1 - r; r = r1;
    pthread_t owner;
    if (pthread_create(&owner, NULL, live_owner, &sets[XLIVE])) { fprintf(stderr, "memory_return: pthread_create failed\n"); return 2; }
    pthread_mutex_lock(&lock);
    while (live_stage != 1) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    r1 = rss_mb(); grown[XLIVE] = r1 - r; r = r1;
    fill(&sets[XMAIN]);   r1 = rss_mb(); grown[XMAIN] = r1 - r;  r = r1;
    double peak = r;

    drain(&sets[LARGE]);  r1 = rss_mb(); back[LARGE] = r - r1;  r = r1;
    drain(&sets[MEDIUM]); r1 = rss_mb(); back[MEDIUM] = r - r1; r = r1;
    drain(&sets[SMALL]);  r1 = rss_mb(); back[SMALL] = r - r1;  r = r1;
    drain(&sets[XDEAD]);  r1 = rss_mb(); back[XDEAD] = r - r1;  r = r1;
    drain(&sets[XLIVE]); /* by main, the owner alive and waiting */
    pthread_mutex_lock(&lock);
    live_stage = 2;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    pthread_join(owner, NULL);
    r1 = rss_mb(); back[XLIVE] = r - r1; r = r1;
    run_thread(drain_thread, &sets[XMAIN]); /* main's blocks, freed by another thread */
    settle();
    r1 = rss_mb(); back[XMAIN] = r - r1; r = r1;

    settle();
    run_thread(settle_thread, NULL);
    if (sleep_ms > 0) {
        /* Idle, then call the allocator again: one that keeps freed memory for reuse for a
         * while (arenalloc's purge delay, jemalloc's decay) gives it back on a later call. */
        struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        settle();
    }
    double rss_end = rss_mb();
    double settle_back = r - rss_end;
    double total_grown = peak - rss0, total_back = peak - rss_end;
    double pct = total_grown > 0 ? 100 * total_back / total_grown : 0;

    printf("memory_return: RSS %.1f MB at start, %.1f MB after allocating, %.1f MB after freeing%s\n",
           rss0, peak, rss_end, keep_every ? " (kept blocks excepted)" : "");
    if (keep_every) printf("memory_return: MEMRET_KEEP_EVERY=%ld: one block in %ld is kept\n", keep_every, keep_every);
    printf("  %-8s %10s %10s %8s\n", "category", "grown MB", "back MB", "back %");
    for (int c = 0; c < NCAT; c++)
        printf("  %-8s %10.1f %10.1f %7.1f%%\n", cat_name[c], grown[c], back[c],
               grown[c] > 0.05 ? 100 * back[c] / grown[c] : 0.0);
    printf("  %-8s %10s %10.1f\n", "settle", "", settle_back);
    printf("  %-8s %10.1f %10.1f %7.1f%%\n", "total", total_grown, total_back, pct);
    int ok = pct >= min_pct;
    printf("memory_return: %s: %.1f%% of the %.1f MB growth returned (pass mark %.0f%%)\n",
           ok ? "PASS" : "FAIL", pct, total_grown, min_pct);
    fflush(stdout);
    for (int c = 0; c < NCAT; c++) { /* the kept blocks, then the bookkeeping */
        keep_every = 0;
        drain(&sets[c]);
        munmap(sets[c].ptr, sets[c].cap * sizeof *sets[c].ptr);
    }
    return ok ? 0 : 1;
}
