/*
 * stress.c - shared helpers of the stress programs (see stress.h).
 */
#include "stress.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

const char *stress_prog = "?";
volatile int stress_in_child;
bool stress_track_live;
_Atomic int64_t stress_live_bytes;
_Atomic int64_t stress_live_peak;
static uint64_t g_run_seed;

/* ---- messages ----------------------------------------------------------- */

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

void stress_fail(int code, const char *fmt, ...)
{
    char msg[1024];
    int len = snprintf(msg, sizeof msg, "stress %s%s: ", stress_prog,
                       stress_in_child ? " (forked child)" : "");
    va_list ap;
    va_start(ap, fmt);
    if (len >= 0 && (size_t)len < sizeof msg)
        len += vsnprintf(msg + len, sizeof msg - len, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len > sizeof msg - 2)
        len = (int)sizeof msg - 2;
    msg[len++] = '\n';
    if (!stress_in_child)
        fflush(stdout);
    write_all(2, msg, (size_t)len);
    _exit(code);
}

void stress_expect(const char *what, uint64_t done, uint64_t promised)
{
    if (done < promised)
        stress_fail(STRESS_EXIT_FAIL,
                    "FAILED: only %llu %s, %llu promised",
                    (unsigned long long)done, what,
                    (unsigned long long)promised);
}

void stress_summary(double t0, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("stress %s: %s, 0 errors, %.1f s\n", stress_prog, msg,
           stress_now() - t0);
    fflush(stdout);
}

double stress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void stress_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

size_t stress_rss(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        stress_fail(STRESS_EXIT_FAIL, "cannot open /proc/self/statm: %s",
                    strerror(errno));
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    unsigned long long size = 0, resident = 0;
    if (n <= 0)
        stress_fail(STRESS_EXIT_FAIL, "cannot read /proc/self/statm");
    buf[n] = 0;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        stress_fail(STRESS_EXIT_FAIL, "cannot parse /proc/self/statm: %s", buf);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* ---- options ------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
            "usage: %s [--quick|--full] [--seed N] [--seconds N] [--verbose]\n"
            "  --quick      short run (default; part of make test)\n"
            "  --full       long run\n"
            "  --seed N     seed of all random choices (default 12345)\n"
            "  --seconds N  soak duration (soak only)\n"
            "environment: STRESS_EXPECT_ALLOC=libfoo.so  fail unless malloc & co.\n"
            "             resolve into a file of that name\n",
            stress_prog);
    exit(STRESS_EXIT_USAGE);
}

static uint64_t parse_u64(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-')
        usage();
    return v;
}

void stress_init(int argc, char **argv, const char *prog,
                 struct stress_opts *o)
{
    stress_prog = prog;
    o->level = STRESS_QUICK;
    o->seed = 12345;
    o->seconds = 0;
    o->verbose = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quick"))
            o->level = STRESS_QUICK;
        else if (!strcmp(a, "--full"))
            o->level = STRESS_FULL;
        else if (!strcmp(a, "--verbose"))
            o->verbose = true;
        else if (!strcmp(a, "--seed") && i + 1 < argc)
            o->seed = parse_u64(argv[++i]);
        else if (!strcmp(a, "--seconds") && i + 1 < argc)
            o->seconds = (double)parse_u64(argv[++i]);
        else
            usage();
    }
    g_run_seed = o->seed;
    setvbuf(stdout, NULL, _IOLBF, 0);
    stress_check_preload();
}

/* ---- is the expected allocator in use? ---------------------------------- */

void stress_check_preload(void)
{
    static const char *const syms[] = {
        "malloc", "free", "calloc", "realloc", "posix_memalign",
        "aligned_alloc", "memalign", "valloc", "malloc_usable_size",
    };
    const char *want = getenv("STRESS_EXPECT_ALLOC");
    if (!want || !*want)
        return;
    /* The addresses the program itself calls (through its GOT: PIE) ... */
    void *const used[] = {
        (void *)malloc, (void *)free, (void *)calloc, (void *)realloc,
        (void *)posix_memalign, (void *)aligned_alloc, (void *)memalign,
        (void *)valloc, (void *)malloc_usable_size,
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        /* ... and the definition the dynamic linker's global lookup finds. */
        void *def = dlsym(RTLD_DEFAULT, syms[i]);
        Dl_info info;
        if (!def || !dladdr(def, &info) || !info.dli_fname)
            stress_fail(STRESS_EXIT_PRELOAD,
                        "PRELOAD CHECK FAILED: cannot locate %s", syms[i]);
        const char *base = strrchr(info.dli_fname, '/');
        base = base ? base + 1 : info.dli_fname;
        if (strcmp(base, want) != 0)
            stress_fail(STRESS_EXIT_PRELOAD,
                        "PRELOAD CHECK FAILED: %s resolves into %s, expected %s "
                        "(STRESS_EXPECT_ALLOC)",
                        syms[i], info.dli_fname, want);
        if (used[i] != def)
            stress_fail(STRESS_EXIT_PRELOAD,
                        "PRELOAD CHECK FAILED: the program's %s (%p) is not "
                        "the global definition in %s (%p)",
                        syms[i], used[i], info.dli_fname, def);
    }
}

/* ---- random sizes ------------------------------------------------------- */

size_t rng_log(struct rng *r, size_t lo, size_t hi)
{
    if (hi <= lo + 1)
        return lo;
    unsigned blo = 63 - (unsigned)__builtin_clzll(lo);
    unsigned bhi = 63 - (unsigned)__builtin_clzll(hi - 1);
    unsigned b = blo + (unsigned)rng_below(r, bhi - blo + 1);
    size_t from = (size_t)1 << b, to = from << 1; /* band [2^b, 2^(b+1)) */
    if (from < lo)
        from = lo;
    if (to > hi || to == 0)
        to = hi;
    return from + (size_t)rng_below(r, to - from);
}

size_t stress_size(struct rng *r, size_t large_max)
{
    uint64_t x = rng_below(r, 10000);
    if (x < 8800)
        return 1 + (size_t)rng_below(r, 512);
    if (x < 9850)
        return rng_log(r, 513, 64 * KiB + 1);
    if (x < 9985 || large_max <= MiB)
        return rng_log(r, 64 * KiB + 1, MiB + 1);
    return rng_log(r, MiB + 1, large_max + 1);
}

/* ---- patterns ----------------------------------------------------------- */

/* The pattern word at byte offset 8*idx of a block with this seed. */
static inline uint64_t pat_word(uint64_t seed, uint64_t idx)
{
    uint64_t x = seed + idx * 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 32)) * 0xd6e8feb86659fd93ULL;
    return x ^ (x >> 32);
}

static uint64_t blk_sum(const struct blk *b)
{
    return mix64((uintptr_t)b->p ^ mix64(b->size ^ 0x5bd1e995) ^ mix64(b->seed) ^ b->id);
}

void blk_seal(struct blk *b)
{
    b->check = blk_sum(b);
}

void blk_validate(const struct blk *b, const char *what)
{
    if (b->check != blk_sum(b))
        stress_fail(STRESS_EXIT_CORRUPT,
                    "CORRUPTION %s: the record of a block (at %p, mostly in "
                    "malloc'ed memory) was overwritten: p %p size %zu id %llu:%llu "
                    "seed %016llx check %016llx",
                    what ? what : "check", (const void *)b, (void *)b->p, b->size,
                    (unsigned long long)(b->id >> 40),
                    (unsigned long long)(b->id & ((1ULL << 40) - 1)),
                    (unsigned long long)b->seed, (unsigned long long)b->check);
}

void blk_reseed(struct blk *b)
{
    static _Atomic uint64_t generation;
    uint64_t g = atomic_fetch_add_explicit(&generation, 1, memory_order_relaxed);
    b->seed = mix64(g_run_seed ^ mix64(b->id) ^ mix64(b->size + (g << 20)));
    blk_seal(b);
}

static void report(const struct blk *b, size_t off, uint64_t want_word,
                   uint64_t got_word, const char *what) __attribute__((noreturn));

static void report(const struct blk *b, size_t off, uint64_t want_word,
                   uint64_t got_word, const char *what)
{
    unsigned char want[8], got[8];
    memcpy(want, &want_word, 8);
    memcpy(got, &got_word, 8);
    size_t k = 0;
    while (k < 7 && want[k] == got[k])
        k++;
    stress_fail(STRESS_EXIT_CORRUPT,
                "CORRUPTION %s: block %p size %zu id %llu:%llu, byte %zu "
                "(%p): expected 0x%02x found 0x%02x (word at +%zu: expected "
                "%016llx found %016llx)",
                what, (void *)b->p, b->size,
                (unsigned long long)(b->id >> 40),
                (unsigned long long)(b->id & ((1ULL << 40) - 1)), off + k,
                (void *)(b->p + off + k), want[k], got[k], off,
                (unsigned long long)want_word, (unsigned long long)got_word);
}

/* Write (check == NULL) or check the pattern over [from, to), from a
 * multiple of 8.  A partial last word uses the low bytes of the word. */
static void pat_range(const struct blk *b, size_t from, size_t to,
                      const char *check)
{
    unsigned char *p = b->p;
    size_t off = from;
    for (; off + 8 <= to; off += 8) {
        uint64_t w = pat_word(b->seed, off >> 3);
        if (!check) {
            memcpy(p + off, &w, 8);
        } else {
            uint64_t got;
            memcpy(&got, p + off, 8);
            if (got != w)
                report(b, off, w, got, check);
        }
    }
    if (off < to) {
        uint64_t w = pat_word(b->seed, off >> 3), got = w;
        if (!check) {
            memcpy(p + off, &w, to - off);
        } else {
            memcpy(&got, p + off, to - off);
            if (got != w)
                report(b, off, w, got, check);
        }
    }
}

/* The sample set of a block of b->size bytes, cut to [from, limit). */
static void pat_walk(const struct blk *b, size_t from, size_t limit,
                     const char *check)
{
    size_t len = b->size;
    if (limit > len)
        limit = len;
    from &= ~(size_t)7; /* ranges start on multiples of 8 */
    if (from >= limit)
        return;
    if (len <= STRESS_FULL_FILL) {
        pat_range(b, from, limit, check);
        return;
    }
    size_t tail = (len - 4 * KiB) & ~(size_t)7;
    if (from < 4 * KiB)
        pat_range(b, from, limit < 4 * KiB ? limit : 4 * KiB, check);
    size_t off = from <= 4 * KiB ? 4 * KiB : 4 * KiB + ((from - 4 * KiB + 511) & ~(size_t)511);
    for (; off + 8 <= tail && off + 8 <= limit; off += 512)
        pat_range(b, off, off + 8, check);
    if (limit > tail)
        pat_range(b, from > tail ? from : tail, limit, check);
}

void blk_fill(const struct blk *b)
{
    pat_walk(b, 0, SIZE_MAX, NULL);
}

void blk_fill_range(const struct blk *b, size_t from, size_t to)
{
    pat_walk(b, from, to, NULL);
}

void blk_check(const struct blk *b, size_t limit, const char *what)
{
    blk_validate(b, what);
    pat_walk(b, 0, limit, what ? what : "check");
}

void blk_check_range(const struct blk *b, size_t from, size_t to,
                     const char *what)
{
    blk_validate(b, what);
    pat_walk(b, from, to, what ? what : "check");
}

void stress_check_zero(const void *p, size_t n, const char *what)
{
    const unsigned char *c = p;
    size_t step = n > MiB ? 4 * KiB : 1; /* beyond 1 MiB: a byte per page */
    for (size_t i = 0; i < n; i += (i < 64 * KiB || i + 64 * KiB >= n) ? 1 : step) {
        if (c[i] != 0)
            stress_fail(STRESS_EXIT_CORRUPT,
                        "CORRUPTION %s: calloc block %p size %zu not zeroed: "
                        "byte %zu (%p) is 0x%02x",
                        what, p, n, i, (const void *)(c + i), c[i]);
    }
}

/* ---- blocks ------------------------------------------------------------- */

void *stress_meta_alloc(size_t n)
{
    void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        stress_fail(STRESS_EXIT_FAIL, "mmap(%zu) for control structures: %s", n,
                    strerror(errno));
    return p;
}

void stress_meta_free(void *p, size_t n)
{
    if (p)
        munmap(p, n ? n : 1);
}

void stress_live_add(int64_t delta)
{
    if (!stress_track_live)
        return;
    int64_t now = atomic_fetch_add_explicit(&stress_live_bytes, delta,
                                            memory_order_relaxed) + delta;
    int64_t peak = atomic_load_explicit(&stress_live_peak, memory_order_relaxed);
    while (now > peak &&
           !atomic_compare_exchange_weak_explicit(&stress_live_peak, &peak, now,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

void blk_adopt(struct blk *b, void *p, size_t size, uint64_t id)
{
    b->p = p;
    b->size = size;
    b->id = id;
    blk_reseed(b);
    blk_fill(b);
    stress_live_add((int64_t)size);
}

void blk_malloc(struct blk *b, size_t size, uint64_t id)
{
    void *p = malloc(size);
    if (!p)
        stress_fail(STRESS_EXIT_FAIL, "malloc(%zu) returned NULL", size);
    blk_adopt(b, p, size, id);
}

size_t blk_realloc_checked(struct blk *b, size_t n, const char *what)
{
    char msg[256];
    size_t old = b->size;
    blk_validate(b, what);
    if (n < old) {
        snprintf(msg, sizeof msg, "%s, before realloc %zu -> %zu (tail)", what, old, n);
        blk_check_range(b, n, old, msg);
    }
    uintptr_t old_p = (uintptr_t)b->p; /* for messages only */
    void *q = realloc(b->p, n);
    if (!q)
        stress_fail(STRESS_EXIT_FAIL, "realloc(%#lx, %zu) returned NULL",
                    (unsigned long)old_p, n);
    b->p = q;
    blk_seal(b);
    snprintf(msg, sizeof msg, "%s, after realloc %zu -> %zu (%#lx -> %p), prefix", what,
             old, n, (unsigned long)old_p, q);
    blk_check(b, n < old ? n : old, msg);
    return old;
}

void blk_realloc(struct blk *b, size_t n, const char *what)
{
    size_t old = blk_realloc_checked(b, n, what);
    b->size = n;
    blk_reseed(b);
    blk_fill(b);
    stress_live_add((int64_t)n - (int64_t)old);
}

void blk_free(struct blk *b, const char *what)
{
    blk_check(b, SIZE_MAX, what);
    free(b->p);
    stress_live_add(-(int64_t)b->size);
    b->p = NULL;
}
