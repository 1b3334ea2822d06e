/*
 * churn.c - thread churn: thousands of short-lived threads exit with live blocks.
 *
 * The main thread spawns `threads` short-lived threads, `wave` at a time (one
 * in four detached, the others joined).  Each one:
 *   - allocates `per_thread` blocks of random sizes and fills them;
 *   - takes up to 8 blocks left by threads that have already exited from the
 *     global pool, verifies and frees them;
 *   - verifies and frees about half of its own blocks;
 *   - gives one block to the "keepers" list, freed only at the very end by
 *     the main thread, and the rest to the global pool;
 *   - keeps one more block for its pthread key's destructor, which runs
 *     during thread exit (maybe after the allocator's own exit hook): it
 *     verifies and frees that block, then allocates a last one for the pool.
 * `reapers` long-lived threads meanwhile verify and free blocks from the pool
 * (a quarter of them after a realloc: out of a dead thread's heap, mostly).
 *
 * Promise: threads * (per_thread + 2) blocks verified, every thread ran.
 */
#include "stress.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#define POOL_CAP 8192
#define TAKE 8
#define MAX_WAVE 64

struct churn_thread {
    struct churn_shared *sh;
    unsigned idx;
    struct blk kept; /* the block in its pthread key, freed by the destructor */
};

struct churn_shared {
    const struct churn_params *p;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct blk pool[POOL_CAP];
    unsigned pool_n;
    bool done;
    struct blk *keepers; /* one per thread */
    unsigned keepers_n;
    struct churn_thread *threads; /* one per thread */
    pthread_key_t key;
    _Atomic uint64_t verified;
    _Atomic unsigned detached_done, finished;
};

/* Put a block in the pool; false if the pool is full. */
static bool pool_put(struct churn_shared *sh, const struct blk *b)
{
    bool ok = false;
    pthread_mutex_lock(&sh->mu);
    if (sh->pool_n < POOL_CAP) {
        sh->pool[sh->pool_n++] = *b;
        ok = true;
        pthread_cond_signal(&sh->cv);
    }
    pthread_mutex_unlock(&sh->mu);
    return ok;
}

/* Take up to max blocks (waiting for some if `wait`); 0: none (and done). */
static unsigned pool_take(struct churn_shared *sh, struct blk *out,
                          unsigned max, bool wait)
{
    pthread_mutex_lock(&sh->mu);
    while (wait && sh->pool_n == 0 && !sh->done)
        pthread_cond_wait(&sh->cv, &sh->mu);
    unsigned n = 0;
    while (n < max && sh->pool_n > 0)
        out[n++] = sh->pool[--sh->pool_n];
    pthread_mutex_unlock(&sh->mu);
    return n;
}

/* Verify and free a block, or hand it to the pool if `give` and there is room. */
static void give_or_free(struct churn_shared *sh, struct blk *b, bool give,
                         const char *what)
{
    if (give && pool_put(sh, b))
        return;
    blk_free(b, what);
    atomic_fetch_add(&sh->verified, 1);
}

/* pthread key destructor: runs while the thread exits. */
static void key_destructor(void *v)
{
    struct churn_thread *t = v;
    struct churn_shared *sh = t->sh;
    blk_free(&t->kept, "before free in a thread-exit destructor");
    atomic_fetch_add(&sh->verified, 1);
    /* allocate during thread exit; someone else frees it */
    struct blk late;
    blk_malloc(&late, 1 + (t->idx * 37) % 700, blk_id(t->idx, 1000001));
    give_or_free(sh, &late, true, "before free in a thread-exit destructor");
    atomic_fetch_add(&sh->finished, 1);
    if (t->idx % 4 == 3) /* detached */
        atomic_fetch_add(&sh->detached_done, 1);
}

static void *short_lived(void *arg)
{
    struct churn_thread *t = arg;
    struct churn_shared *sh = t->sh;
    const struct churn_params *p = sh->p;
    struct rng r = rng_make(p->seed, 1000 + t->idx);
    const char *what = "before free in a short-lived thread";

    struct blk mine[64];
    unsigned n = p->per_thread < 64 ? p->per_thread : 64;
    for (unsigned i = 0; i < n; i++)
        blk_malloc(&mine[i], stress_size(&r, p->large_max), blk_id(t->idx, i));

    struct blk taken[TAKE];
    unsigned k = pool_take(sh, taken, TAKE, false);
    for (unsigned i = 0; i < k; i++) {
        blk_free(&taken[i], "before free of a dead thread's block");
        atomic_fetch_add(&sh->verified, 1);
    }

    blk_malloc(&t->kept, stress_size(&r, 0), blk_id(t->idx, 1000000));
    pthread_setspecific(sh->key, t);

    for (unsigned i = 0; i < n; i++) {
        if (i == 0) {
            pthread_mutex_lock(&sh->mu);
            sh->keepers[sh->keepers_n++] = mine[i];
            pthread_mutex_unlock(&sh->mu);
        } else {
            give_or_free(sh, &mine[i], rng_one_in(&r, 2), what);
        }
    }
    return NULL;
}

static void *reaper(void *arg)
{
    struct churn_shared *sh = arg;
    struct rng r = rng_make(sh->p->seed, 999);
    struct blk got[32];
    unsigned n;
    while ((n = pool_take(sh, got, 32, true)) > 0) {
        for (unsigned i = 0; i < n; i++) {
            /* the owner has probably exited: realloc out of its heap */
            if (rng_one_in(&r, 4))
                blk_realloc(&got[i], stress_size(&r, sh->p->large_max),
                            "in a reaper thread");
            blk_free(&got[i], "before free in a reaper thread");
        }
        atomic_fetch_add(&sh->verified, n);
    }
    return NULL;
}

void churn_preset(struct churn_params *p, enum stress_level l, uint64_t seed)
{
    p->seed = seed;
    p->wave = 4;
    p->per_thread = 32;
    p->reapers = 2;
    p->large_max = 2 * MiB;
    switch (l) {
    case STRESS_SOAK_ROUND:
        p->threads = 200;
        break;
    case STRESS_QUICK:
        p->threads = 2000;
        break;
    case STRESS_FULL:
        p->threads = 40000;
        p->wave = 16;
        break;
    }
}

uint64_t churn_run(const struct churn_params *p)
{
    if (p->wave < 1 || p->wave > MAX_WAVE)
        stress_fail(STRESS_EXIT_USAGE, "churn: wave must be 1..%d", MAX_WAVE);
    struct churn_shared *sh = stress_meta_alloc(sizeof *sh);
    sh->p = p;
    pthread_mutex_init(&sh->mu, NULL);
    pthread_cond_init(&sh->cv, NULL);
    sh->keepers = stress_meta_alloc(p->threads * sizeof *sh->keepers);
    sh->threads = stress_meta_alloc(p->threads * sizeof *sh->threads);
    if (pthread_key_create(&sh->key, key_destructor))
        stress_fail(STRESS_EXIT_FAIL, "pthread_key_create failed");

    pthread_t *reapers = stress_meta_alloc(p->reapers * sizeof *reapers);
    for (unsigned i = 0; i < p->reapers; i++)
        if (pthread_create(&reapers[i], NULL, reaper, sh))
            stress_fail(STRESS_EXIT_FAIL, "pthread_create(reaper) failed");

    pthread_attr_t joinable, detached;
    pthread_attr_init(&joinable);
    pthread_attr_setstacksize(&joinable, 256 * KiB);
    pthread_attr_init(&detached);
    pthread_attr_setstacksize(&detached, 256 * KiB);
    pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);

    unsigned spawned_detached = 0;
    for (unsigned base = 0; base < p->threads; base += p->wave) {
        pthread_t wave[MAX_WAVE];
        bool joined[MAX_WAVE];
        unsigned w = p->threads - base < p->wave ? p->threads - base : p->wave;
        for (unsigned i = 0; i < w; i++) {
            struct churn_thread *t = &sh->threads[base + i];
            t->sh = sh;
            t->idx = base + i;
            bool det = t->idx % 4 == 3;
            joined[i] = !det;
            spawned_detached += det;
            int err;
            while ((err = pthread_create(&wave[i], det ? &detached : &joinable,
                                         short_lived, t)) != 0)
                stress_sleep_ms(1); /* EAGAIN: too many exiting threads */
        }
        for (unsigned i = 0; i < w; i++)
            if (joined[i])
                pthread_join(wave[i], NULL);
        /* keep at most one wave of detached threads in flight */
        while (spawned_detached - atomic_load(&sh->detached_done) > p->wave)
            sched_yield();
    }
    while (atomic_load(&sh->detached_done) < spawned_detached)
        stress_sleep_ms(1);

    pthread_mutex_lock(&sh->mu);
    sh->done = true;
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    for (unsigned i = 0; i < p->reapers; i++)
        pthread_join(reapers[i], NULL);
    /* anything a late destructor put back after the reapers left */
    struct blk left[32];
    unsigned n;
    while ((n = pool_take(sh, left, 32, false)) > 0)
        for (unsigned i = 0; i < n; i++) {
            blk_free(&left[i], "before free in the main thread");
            atomic_fetch_add(&sh->verified, 1);
        }
    for (unsigned i = 0; i < sh->keepers_n; i++)
        blk_free(&sh->keepers[i], "before free of a kept block at the end");
    atomic_fetch_add(&sh->verified, sh->keepers_n);

    uint64_t verified = atomic_load(&sh->verified);
    if (atomic_load(&sh->finished) != p->threads)
        stress_fail(STRESS_EXIT_FAIL, "FAILED: %u of %u threads finished",
                    atomic_load(&sh->finished), p->threads);
    pthread_attr_destroy(&joinable);
    pthread_attr_destroy(&detached);
    pthread_key_delete(sh->key);
    pthread_cond_destroy(&sh->cv);
    pthread_mutex_destroy(&sh->mu);
    stress_meta_free(reapers, p->reapers * sizeof *reapers);
    stress_meta_free(sh->threads, p->threads * sizeof *sh->threads);
    stress_meta_free(sh->keepers, p->threads * sizeof *sh->keepers);
    stress_meta_free(sh, sizeof *sh);
    return verified;
}

#ifndef STRESS_NO_MAIN
int main(int argc, char **argv)
{
    struct stress_opts o;
    stress_init(argc, argv, "churn", &o);
    struct churn_params p;
    churn_preset(&p, o.level, o.seed);
    double t0 = stress_now();
    uint64_t verified = churn_run(&p);
    stress_expect("blocks verified", verified,
                  (uint64_t)p.threads * (p.per_thread + 2));
    stress_summary(t0, "%llu blocks verified (%u short-lived threads, %u at a time, %u reapers)",
                   (unsigned long long)verified, p.threads, p.wave, p.reapers);
    return 0;
}
#endif
