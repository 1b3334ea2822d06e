/*
 * prodcons.c - producer/consumer: cross-thread frees at a high rate.
 *
 * P producer threads allocate blocks of random sizes (mostly 1..512 B, some
 * to 64 KiB, a few to 1 MiB, rare ones to a few MiB), fill each with its
 * pattern and push them, in batches of BATCH, through one bounded queue
 * (mutex + condition variables) to C consumer threads.  A consumer verifies
 * and frees each block -- usually at once, sometimes later and out of order
 * (a small stash) -- so nearly every free is a remote free into the heap of
 * a producer that is busy allocating.  The batch records themselves are
 * malloc'ed by producers and freed by consumers too.
 *
 * Promise: every block produced is verified and freed (P * per_producer).
 */
#include "stress.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define BATCH 64
#define QCAP 64   /* batches in flight */
#define STASH 128 /* blocks a consumer may hold back */

struct batch {
    unsigned n;
    struct blk b[BATCH];
};

struct queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    struct batch *ring[QCAP];
    unsigned head, count;
    bool closed;
};

struct pc_shared {
    const struct prodcons_params *p;
    struct queue q;
    _Atomic uint64_t verified;
};

struct pc_thread {
    struct pc_shared *sh;
    unsigned idx;
    pthread_t tid;
};

static void q_push(struct queue *q, struct batch *b)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == QCAP)
        pthread_cond_wait(&q->not_full, &q->mu);
    q->ring[(q->head + q->count) % QCAP] = b;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

/* NULL once the queue is closed and empty. */
static struct batch *q_pop(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && !q->closed)
        pthread_cond_wait(&q->not_empty, &q->mu);
    struct batch *b = NULL;
    if (q->count) {
        b = q->ring[q->head];
        q->head = (q->head + 1) % QCAP;
        q->count--;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->mu);
    return b;
}

static void *producer(void *arg)
{
    struct pc_thread *t = arg;
    const struct prodcons_params *p = t->sh->p;
    struct rng r = rng_make(p->seed, 100 + t->idx);
    uint64_t serial = 0;
    while (serial < p->per_producer) {
        struct batch *bt = malloc(sizeof *bt);
        if (!bt)
            stress_fail(STRESS_EXIT_FAIL, "malloc(batch) returned NULL");
        bt->n = 0;
        while (bt->n < BATCH && serial < p->per_producer) {
            blk_malloc(&bt->b[bt->n], stress_size(&r, p->large_max),
                       blk_id(t->idx, serial));
            bt->n++;
            serial++;
        }
        q_push(&t->sh->q, bt);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct pc_thread *t = arg;
    struct rng r = rng_make(t->sh->p->seed, 200 + t->idx);
    struct blk stash[STASH] = {0};
    uint64_t verified = 0;
    char what[64];
    snprintf(what, sizeof what, "before free in consumer %u", t->idx);
    struct batch *bt;
    while ((bt = q_pop(&t->sh->q)) != NULL) {
        if (bt->n == 0 || bt->n > BATCH)
            stress_fail(STRESS_EXIT_CORRUPT, "CORRUPTION in consumer %u: batch "
                        "record %p (malloc'ed) says it holds %u blocks", t->idx,
                        (void *)bt, bt->n);
        for (unsigned i = 0; i < bt->n; i++) {
            struct blk *b = &bt->b[i];
            if (rng_one_in(&r, 8)) {
                /* hold this one back, free an older one instead */
                struct blk *s = &stash[rng_below(&r, STASH)];
                struct blk keep = *b;
                if (s->p) {
                    blk_free(s, what);
                    verified++;
                }
                *s = keep;
            } else {
                blk_free(b, what);
                verified++;
            }
        }
        free(bt);
    }
    for (unsigned i = 0; i < STASH; i++)
        if (stash[i].p) {
            blk_free(&stash[i], what);
            verified++;
        }
    atomic_fetch_add(&t->sh->verified, verified);
    return NULL;
}

void prodcons_preset(struct prodcons_params *p, enum stress_level l,
                     uint64_t seed)
{
    p->seed = seed;
    p->large_max = 4 * MiB;
    switch (l) {
    case STRESS_SOAK_ROUND:
        p->producers = 2, p->consumers = 2, p->per_producer = 20000;
        break;
    case STRESS_QUICK:
        p->producers = 2, p->consumers = 2, p->per_producer = 100000;
        break;
    case STRESS_FULL:
        p->producers = 6, p->consumers = 6, p->per_producer = 1700000;
        break;
    }
}

uint64_t prodcons_run(const struct prodcons_params *p)
{
    struct pc_shared sh = {.p = p};
    pthread_mutex_init(&sh.q.mu, NULL);
    pthread_cond_init(&sh.q.not_empty, NULL);
    pthread_cond_init(&sh.q.not_full, NULL);
    unsigned n = p->producers + p->consumers;
    struct pc_thread *th = stress_meta_alloc(n * sizeof *th);
    for (unsigned i = 0; i < n; i++) {
        th[i].sh = &sh;
        th[i].idx = i < p->producers ? i : i - p->producers;
        if (pthread_create(&th[i].tid, NULL,
                           i < p->producers ? producer : consumer, &th[i]))
            stress_fail(STRESS_EXIT_FAIL, "pthread_create failed");
    }
    for (unsigned i = 0; i < p->producers; i++)
        pthread_join(th[i].tid, NULL);
    pthread_mutex_lock(&sh.q.mu);
    sh.q.closed = true;
    pthread_cond_broadcast(&sh.q.not_empty);
    pthread_mutex_unlock(&sh.q.mu);
    for (unsigned i = p->producers; i < n; i++)
        pthread_join(th[i].tid, NULL);
    stress_meta_free(th, n * sizeof *th);
    pthread_cond_destroy(&sh.q.not_empty);
    pthread_cond_destroy(&sh.q.not_full);
    pthread_mutex_destroy(&sh.q.mu);
    return atomic_load(&sh.verified);
}

#ifndef STRESS_NO_MAIN
int main(int argc, char **argv)
{
    struct stress_opts o;
    stress_init(argc, argv, "prodcons", &o);
    struct prodcons_params p;
    prodcons_preset(&p, o.level, o.seed);
    double t0 = stress_now();
    uint64_t verified = prodcons_run(&p);
    uint64_t promised = p.producers * p.per_producer;
    stress_expect("blocks verified", verified, promised);
    stress_summary(t0, "%llu blocks verified (%u producers -> %u consumers, cross-thread frees)",
                   (unsigned long long)verified, p.producers, p.consumers);
    return 0;
}
#endif
