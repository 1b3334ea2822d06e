/*
 * realloc.c - realloc storms across the size-class boundaries.
 *
 * Each thread keeps `slots` blocks and, step after step, reallocs one of them
 * to a new size: a random walk (x0.5 .. x2) that wanders through the small
 * (16..512 B), medium (512 B..1 MiB) and large (> 1 MiB) ranges, jumps to
 * just below / at / just above a class or page boundary, or to a random size.
 * After every realloc the preserved prefix min(old, new) is checked against
 * the block's pattern, then the new part is filled (and now and then the whole
 * block refilled with a fresh pattern).  When shrinking, the part about to be
 * cut off is checked first.  Some steps start from realloc(NULL, n), some do
 * realloc(p, 0) (which frees p, or returns a minimal block, by allocator), some
 * free.  Threads swap blocks through a shared exchange array now and then, so
 * blocks are realloc'ed by threads other than the one that allocated them.
 *
 * Promise: threads * steps steps done, over 90 % of them reallocs.
 */
#include "stress.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define XCHG 16
#define MAX_SIZE (6 * MiB)
#define LARGE_PER_THREAD 3 /* blocks above 1 MiB a thread may hold */

struct ra_shared {
    const struct realloc_params *p;
    pthread_mutex_t mu;
    struct blk xchg[XCHG];
    _Atomic uint64_t steps, reallocs;
};

struct ra_thread {
    struct ra_shared *sh;
    unsigned idx;
    pthread_t tid;
};

static const size_t boundaries[] = {
    16, 32, 48, 64, 128, 256, 496, 512, 528, 576, 640, 1024, 2048, 4096,
    8192, 16384, 32768, 65536, 131072, 262144, 524288, MiB - 4096, MiB,
    MiB + 4096, 2 * MiB, 4 * MiB,
};

static size_t next_size(struct rng *r, size_t old)
{
    uint64_t x = rng_below(r, 100);
    size_t n;
    if (x < 15) {
        size_t b = boundaries[rng_below(r, sizeof boundaries / sizeof boundaries[0])];
        n = b - 16 + (size_t)rng_below(r, 33);
    } else if (x < 20) {
        n = stress_size(r, MAX_SIZE);
    } else if (x < 60) { /* grow x1..x2 */
        n = old + old * (size_t)rng_below(r, 129) / 128 + (size_t)rng_below(r, 16);
    } else { /* shrink x1..x0.5 */
        n = old * 128 / (128 + (size_t)rng_below(r, 129));
    }
    if (n < 1)
        n = 1 + (size_t)rng_below(r, 16);
    return n > MAX_SIZE ? MAX_SIZE : n;
}

/* reallocs that crossed small|medium and medium|large, for the summary */
static _Atomic uint64_t crossings[2];

static int range_of(size_t n)
{
    return n <= 512 ? 0 : n <= MiB ? 1 : 2;
}

static unsigned count_large(const struct blk *s, unsigned n)
{
    unsigned c = 0;
    for (unsigned i = 0; i < n; i++)
        c += s[i].p && s[i].size > MiB;
    return c;
}

/* realloc b to n bytes, verifying the prefix and filling the rest. */
static void do_realloc(struct rng *r, struct blk *b, size_t n, unsigned tidx)
{
    char what[32];
    snprintf(what, sizeof what, "thread %u", tidx);
    size_t old = blk_realloc_checked(b, n, what);
    bool was_whole = old <= STRESS_FULL_FILL;
    b->size = n;
    blk_seal(b);
    if (rng_one_in(r, 8)) { /* fresh pattern: stale copies cannot match */
        blk_reseed(b);
        blk_fill(b);
    } else {
        /* below `old` a wholly filled block already holds the pattern; a
         * sampled one only at its old sample points */
        blk_fill_range(b, was_whole ? old : 0, n);
    }
    stress_live_add((int64_t)n - (int64_t)old);
    int a = range_of(old), c = range_of(n);
    if (a != c)
        atomic_fetch_add_explicit(&crossings[(a > c ? a : c) - 1], 1,
                                  memory_order_relaxed);
}

static void *ra_thread_main(void *arg)
{
    struct ra_thread *t = arg;
    struct ra_shared *sh = t->sh;
    const struct realloc_params *p = sh->p;
    struct rng r = rng_make(p->seed, 3000 + t->idx);
    struct blk *s = stress_meta_alloc(p->slots * sizeof *s);
    uint64_t reallocs = 0, serial = 0;
    const char *what = "before free in a realloc thread";

    for (uint64_t step = 0; step < p->steps; step++) {
        struct blk *b = &s[rng_below(&r, p->slots)];
        uint64_t x = rng_below(&r, 1000);
        if (x < 16) { /* swap with the exchange array */
            unsigned j = (unsigned)rng_below(&r, XCHG);
            pthread_mutex_lock(&sh->mu);
            struct blk tmp = sh->xchg[j];
            sh->xchg[j] = *b;
            *b = tmp;
            pthread_mutex_unlock(&sh->mu);
            if (b->p && b->size > MiB && count_large(s, p->slots) > LARGE_PER_THREAD) {
                blk_free(b, what);
                continue;
            }
            x = 999; /* realloc the block we got (another thread's, maybe) */
        }
        if (!b->p) {
            size_t n = stress_size(&r, 2 * MiB);
            if (n > MiB && count_large(s, p->slots) >= LARGE_PER_THREAD)
                n = 1 + n % MiB;
            void *q = realloc(NULL, n);
            if (!q)
                stress_fail(STRESS_EXIT_FAIL, "realloc(NULL, %zu) returned NULL", n);
            blk_adopt(b, q, n, blk_id(t->idx, serial++));
            reallocs++;
        } else if (x < 24) {
            blk_free(b, what);
        } else if (x < 32) {
            blk_check(b, SIZE_MAX, "before realloc(p, 0)");
            void *q = realloc(b->p, 0); /* frees (glibc) or shrinks to nothing */
            stress_live_add(-(int64_t)b->size);
            b->p = q;
            b->size = 0;
            blk_seal(b);
            reallocs++;
        } else {
            size_t n = next_size(&r, b->size);
            if (n > MiB && b->size <= MiB &&
                count_large(s, p->slots) >= LARGE_PER_THREAD)
                n = n / 16 + 1;
            do_realloc(&r, b, n, t->idx);
            reallocs++;
        }
    }
    for (unsigned i = 0; i < p->slots; i++)
        if (s[i].p)
            blk_free(&s[i], what);
    stress_meta_free(s, p->slots * sizeof *s);
    atomic_fetch_add(&sh->steps, p->steps);
    atomic_fetch_add(&sh->reallocs, reallocs);
    return NULL;
}

void realloc_preset(struct realloc_params *p, enum stress_level l, uint64_t seed)
{
    p->seed = seed;
    p->slots = 64;
    switch (l) {
    case STRESS_SOAK_ROUND:
        p->threads = 2, p->steps = 10000;
        break;
    case STRESS_QUICK:
        p->threads = 2, p->steps = 40000;
        break;
    case STRESS_FULL:
        p->threads = 4, p->steps = 500000;
        break;
    }
}

uint64_t realloc_run(const struct realloc_params *p, uint64_t *reallocs)
{
    struct ra_shared sh = {.p = p};
    pthread_mutex_init(&sh.mu, NULL);
    struct ra_thread *th = stress_meta_alloc(p->threads * sizeof *th);
    for (unsigned i = 0; i < p->threads; i++) {
        th[i].sh = &sh;
        th[i].idx = i;
        if (pthread_create(&th[i].tid, NULL, ra_thread_main, &th[i]))
            stress_fail(STRESS_EXIT_FAIL, "pthread_create failed");
    }
    for (unsigned i = 0; i < p->threads; i++)
        pthread_join(th[i].tid, NULL);
    for (unsigned j = 0; j < XCHG; j++)
        if (sh.xchg[j].p)
            blk_free(&sh.xchg[j], "before free of an exchanged block");
    stress_meta_free(th, p->threads * sizeof *th);
    pthread_mutex_destroy(&sh.mu);
    *reallocs = atomic_load(&sh.reallocs);
    return atomic_load(&sh.steps);
}

#ifndef STRESS_NO_MAIN
int main(int argc, char **argv)
{
    struct stress_opts o;
    stress_init(argc, argv, "realloc", &o);
    struct realloc_params p;
    realloc_preset(&p, o.level, o.seed);
    double t0 = stress_now();
    uint64_t reallocs;
    uint64_t steps = realloc_run(&p, &reallocs);
    stress_expect("steps", steps, (uint64_t)p.threads * p.steps);
    stress_expect("reallocs", reallocs, (uint64_t)p.threads * p.steps * 9 / 10);
    uint64_t c0 = atomic_load(&crossings[0]), c1 = atomic_load(&crossings[1]);
    stress_expect("reallocs across small|medium", c0, (uint64_t)p.threads * p.steps / 100);
    stress_expect("reallocs across medium|large", c1, (uint64_t)p.threads * p.steps / 1000);
    stress_summary(t0, "%llu reallocs verified (%llu steps, %u threads, %llu across small|medium, "
                   "%llu across medium|large)",
                   (unsigned long long)reallocs, (unsigned long long)steps, p.threads,
                   (unsigned long long)c0, (unsigned long long)c1);
    return 0;
}
#endif
