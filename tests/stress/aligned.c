/*
 * aligned.c - aligned allocations mixed with malloc and calloc.
 *
 * Each thread keeps `slots` live blocks and replaces one per operation with a
 * block from malloc, calloc, posix_memalign, aligned_alloc, memalign or
 * valloc; alignments 8 B .. max_align (2 MiB), mostly up to a page.  Checks:
 *   - the pointer has the requested alignment (malloc: 16, or 8 below 9 B);
 *   - malloc_usable_size(p) >= the requested size, and the same at free time;
 *   - calloc memory reads as zero;
 *   - the WHOLE usable size is writable: the pattern covers it, and is
 *     verified before the free.
 * A quarter of the replaced blocks go through a shared exchange array, so
 * they are verified and freed by another thread.
 *
 * Promise: threads * ops allocations made, all of them verified and freed.
 */
#include "stress.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XCHG 32

enum method { M_MALLOC, M_CALLOC, M_POSIX_MEMALIGN, M_ALIGNED_ALLOC, M_MEMALIGN,
              M_VALLOC, M_COUNT };
static const char *const method_name[M_COUNT] = {
    "malloc", "calloc", "posix_memalign", "aligned_alloc", "memalign", "valloc",
};

struct ablk {
    struct blk b; /* b.size is the usable size: the pattern covers all of it */
    size_t req, align;
    enum method m;
};

struct al_shared {
    const struct aligned_params *p;
    pthread_mutex_t mu;
    struct ablk xchg[XCHG];
    _Atomic uint64_t allocs, verified, by_method[M_COUNT], big_aligned;
};

struct al_thread {
    struct al_shared *sh;
    unsigned idx;
    pthread_t tid;
};

static size_t pick_align(struct rng *r, size_t max_align)
{
    uint64_t x = rng_below(r, 100);
    unsigned lg = x < 80 ? 3 + (unsigned)rng_below(r, 10)   /* 8 .. 4 KiB */
                : x < 98 ? 13 + (unsigned)rng_below(r, 4) /* 8 .. 64 KiB */
                : 17 + (unsigned)rng_below(r, 5);         /* 128 KiB .. 2 MiB */
    size_t a = (size_t)1 << lg;
    return a > max_align ? max_align : a;
}

static void al_alloc(struct al_shared *sh, struct rng *r, struct ablk *a,
                     uint64_t id)
{
    size_t size = stress_size(r, 3 * MiB);
    enum method m = (enum method)rng_below(r, M_COUNT);
    size_t align = pick_align(r, sh->p->max_align);
    void *p = NULL;
    switch (m) {
    case M_MALLOC:
        p = malloc(size);
        align = size <= 8 ? 8 : 16;
        break;
    case M_CALLOC: {
        size_t n = 1 + (size_t)rng_below(r, 4); /* nmemb * elem covers size */
        size = (size + n - 1) / n * n;
        p = calloc(n, size / n);
        align = size <= 8 ? 8 : 16;
        break;
    }
    case M_POSIX_MEMALIGN: {
        int err = posix_memalign(&p, align, size);
        if (err)
            stress_fail(STRESS_EXIT_FAIL, "posix_memalign(%zu, %zu) failed: %s",
                        align, size, strerror(err));
        break;
    }
    case M_ALIGNED_ALLOC:
        /* C11 wanted size to be a multiple of align, C17 (DR 460) does not;
         * half the calls follow C11 (ASan insists: -DSTRESS_C11_ALIGNED_ALLOC) */
#ifndef STRESS_C11_ALIGNED_ALLOC
        if (rng_one_in(r, 2))
#endif
            size = (size + align - 1) / align * align;
        p = aligned_alloc(align, size);
        break;
    case M_MEMALIGN:
        p = memalign(align, size);
        break;
    case M_VALLOC:
        p = valloc(size);
        align = (size_t)sysconf(_SC_PAGESIZE);
        break;
    case M_COUNT:
        break;
    }
    if (!p)
        stress_fail(STRESS_EXIT_FAIL, "%s(align %zu, size %zu) returned NULL",
                    method_name[m], align, size);
    if ((uintptr_t)p % align)
        stress_fail(STRESS_EXIT_CORRUPT,
                    "MISALIGNED: %s(align %zu, size %zu) returned %p",
                    method_name[m], align, size, p);
    size_t usable = malloc_usable_size(p);
    if (usable < size)
        stress_fail(STRESS_EXIT_CORRUPT,
                    "USABLE SIZE TOO SMALL: %s(align %zu, size %zu) = %p: "
                    "malloc_usable_size %zu",
                    method_name[m], align, size, p, usable);
    if (m == M_CALLOC) {
        char what[96];
        snprintf(what, sizeof what, "calloc(%zu) in thread", size);
        stress_check_zero(p, size, what);
    }
    a->req = size;
    a->align = align;
    a->m = m;
    blk_adopt(&a->b, p, usable, id);
    atomic_fetch_add_explicit(&sh->by_method[m], 1, memory_order_relaxed);
    if (m != M_MALLOC && m != M_CALLOC && align >= 128 * KiB)
        atomic_fetch_add_explicit(&sh->big_aligned, 1, memory_order_relaxed);
}

static void al_free(struct ablk *a, const char *who)
{
    char what[160];
    size_t usable = malloc_usable_size(a->b.p);
    if (usable != a->b.size)
        stress_fail(STRESS_EXIT_CORRUPT,
                    "USABLE SIZE CHANGED: %s(align %zu, size %zu) = %p: "
                    "malloc_usable_size was %zu, now %zu",
                    method_name[a->m], a->align, a->req, (void *)a->b.p,
                    a->b.size, usable);
    snprintf(what, sizeof what, "before free in %s (%s, align %zu, size %zu, usable)",
             who, method_name[a->m], a->align, a->req);
    blk_free(&a->b, what);
}

static void *al_thread_main(void *arg)
{
    struct al_thread *t = arg;
    struct al_shared *sh = t->sh;
    const struct aligned_params *p = sh->p;
    struct rng r = rng_make(p->seed, 4000 + t->idx);
    struct ablk *s = stress_meta_alloc(p->slots * sizeof *s);
    uint64_t verified = 0;
    for (uint64_t op = 0; op < p->ops; op++) {
        struct ablk *a = &s[rng_below(&r, p->slots)];
        if (a->b.p && rng_one_in(&r, 4)) {
            unsigned j = (unsigned)rng_below(&r, XCHG);
            pthread_mutex_lock(&sh->mu);
            struct ablk got = sh->xchg[j];
            sh->xchg[j] = *a;
            pthread_mutex_unlock(&sh->mu);
            *a = got;
            if (a->b.p) {
                al_free(a, "another thread");
                verified++;
            }
        } else if (a->b.p) {
            al_free(a, "its thread");
            verified++;
        }
        al_alloc(sh, &r, a, blk_id(t->idx, op));
    }
    for (unsigned i = 0; i < p->slots; i++)
        if (s[i].b.p) {
            al_free(&s[i], "its thread, at the end");
            verified++;
        }
    stress_meta_free(s, p->slots * sizeof *s);
    atomic_fetch_add(&sh->allocs, p->ops);
    atomic_fetch_add(&sh->verified, verified);
    return NULL;
}

void aligned_preset(struct aligned_params *p, enum stress_level l, uint64_t seed)
{
    p->seed = seed;
    p->slots = 128;
    p->max_align = 2 * MiB;
    switch (l) {
    case STRESS_SOAK_ROUND:
        p->threads = 2, p->ops = 10000;
        break;
    case STRESS_QUICK:
        p->threads = 2, p->ops = 50000;
        break;
    case STRESS_FULL:
        p->threads = 4, p->ops = 1000000;
        break;
    }
}

static _Atomic uint64_t last_by_method[M_COUNT], last_big_aligned;

uint64_t aligned_run(const struct aligned_params *p)
{
    struct al_shared *sh = stress_meta_alloc(sizeof *sh);
    struct al_thread *th = stress_meta_alloc(p->threads * sizeof *th);
    sh->p = p;
    pthread_mutex_init(&sh->mu, NULL);
    for (unsigned i = 0; i < p->threads; i++) {
        th[i].sh = sh;
        th[i].idx = i;
        if (pthread_create(&th[i].tid, NULL, al_thread_main, &th[i]))
            stress_fail(STRESS_EXIT_FAIL, "pthread_create failed");
    }
    for (unsigned i = 0; i < p->threads; i++)
        pthread_join(th[i].tid, NULL);
    uint64_t verified = atomic_load(&sh->verified);
    for (unsigned j = 0; j < XCHG; j++)
        if (sh->xchg[j].b.p) {
            al_free(&sh->xchg[j], "the main thread");
            verified++;
        }
    if (atomic_load(&sh->allocs) != verified)
        stress_fail(STRESS_EXIT_FAIL, "FAILED: %llu allocations, %llu verified",
                    (unsigned long long)atomic_load(&sh->allocs),
                    (unsigned long long)verified);
    for (int m = 0; m < M_COUNT; m++)
        last_by_method[m] = atomic_load(&sh->by_method[m]);
    last_big_aligned = atomic_load(&sh->big_aligned);
    pthread_mutex_destroy(&sh->mu);
    stress_meta_free(th, p->threads * sizeof *th);
    stress_meta_free(sh, sizeof *sh);
    return verified;
}

#ifndef STRESS_NO_MAIN
int main(int argc, char **argv)
{
    struct stress_opts o;
    stress_init(argc, argv, "aligned", &o);
    struct aligned_params p;
    aligned_preset(&p, o.level, o.seed);
    double t0 = stress_now();
    uint64_t verified = aligned_run(&p);
    uint64_t promised = (uint64_t)p.threads * p.ops;
    stress_expect("blocks verified", verified, promised);
    for (int m = 0; m < M_COUNT; m++)
        stress_expect(method_name[m], last_by_method[m], promised / M_COUNT / 2);
    stress_expect("allocations aligned to 128 KiB or more", last_big_aligned,
                  promised / 1000);
    stress_summary(t0, "%llu blocks verified (%u threads; %llu malloc, %llu calloc, "
                   "%llu posix_memalign, %llu aligned_alloc, %llu memalign, %llu valloc; "
                   "%llu aligned to >= 128 KiB)",
                   (unsigned long long)verified, p.threads,
                   (unsigned long long)last_by_method[0], (unsigned long long)last_by_method[1],
                   (unsigned long long)last_by_method[2], (unsigned long long)last_by_method[3],
                   (unsigned long long)last_by_method[4], (unsigned long long)last_by_method[5],
                   (unsigned long long)last_big_aligned);
    return 0;
}
#endif
