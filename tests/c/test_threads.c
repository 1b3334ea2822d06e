/*
 * test_threads.c - multithreaded stress tests for arenalloc.
 *
 * Linked against libarenalloc.so (see run.sh), so malloc/free below are
 * arenalloc's.  Three groups:
 *
 *  (a) cross-thread frees: NTHREADS threads allocate blocks of random sizes
 *      (8 B .. 100 KiB, occasionally 2 MiB), fill them with a pattern derived
 *      from the block's address and size, and hand them through per-thread
 *      mutex-protected rings to a *different* thread, which verifies and
 *      frees them.
 *  (b) thread churn: 2000 short-lived threads (in batches) each allocate 50
 *      blocks, free half and leave the other half live when they exit; the
 *      main thread verifies and frees the leftovers afterwards.
 *  (c) fork while other threads allocate: 3 worker threads loop malloc/free;
 *      the main thread forks 50 times; every child verifies blocks inherited
 *      from the parent, does ~10,000 malloc/free operations (plus a thread of
 *      its own) and _exit(0)s.  A child that fails, crashes or does not finish
 *      within CHILD_TIMEOUT_S (deadlock) fails the test.
 *
 * Every block's contents are verified before it is freed.  Prints one line
 * per group and "ALL OK" at the end; on failure prints the failed check and
 * exits 1.  Builds against plain glibc too (-DTEST_AGAINST_GLIBC, run.sh
 * --glibc); nothing here is arenalloc-specific.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include("arenalloc.h")
#include "arenalloc.h"
#endif
#endif

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* ------------------------------------------------------------------------ */
/* Checking helpers                                                          */
/* ------------------------------------------------------------------------ */

#include "check.h"

/* If the allocator kills the process (abort from a diagnostic, segfault),
 * say in which group, then die from the same signal. */
static void write_str(const char *s)
{
    if (write(2, s, strlen(s)) < 0) {
        /* nothing to do */
    }
}

static void crash_handler(int sig)
{
    write_str("\n*** test_threads: ");
    write_str(sig == SIGABRT ? "SIGABRT" : sig == SIGSEGV ? "SIGSEGV"
              : sig == SIGBUS ? "SIGBUS" : "fatal signal");
    write_str(" in group [");
    write_str(g_group);
    write_str(g_in_child ? "], in a forked child\n" : "]\n");
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Per-thread PRNG (xorshift64*); state passed explicitly. */
static inline uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------ */
/* Block patterns: word i of a block is f(address, size) + i * K, so a block */
/* handed to the wrong owner, moved, or overlapped by another is detected.   */
/* ------------------------------------------------------------------------ */

#define PAT_K 0x9E3779B97F4A7C15ULL

static inline uint64_t block_seed(const void *p, size_t n)
{
    uint64_t x = (uint64_t)(uintptr_t)p ^ ((uint64_t)n << 40);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static void fill_block(void *p, size_t n)
{
    uint64_t seed = block_seed(p, n);
    uint64_t *w = p;
    size_t nw = n / 8;
    for (size_t i = 0; i < nw; i++)
        w[i] = seed + i * PAT_K;
    uint8_t *b = p;
    for (size_t i = nw * 8; i < n; i++)
        b[i] = (uint8_t)(seed >> ((i & 7) * 8)) ^ 0x5A;
}

/* Returns 1 if the block still carries its pattern. */
static int block_ok(const void *p, size_t n)
{
    uint64_t seed = block_seed(p, n);
    const uint64_t *w = p;
    size_t nw = n / 8;
    uint64_t diff = 0;
    for (size_t i = 0; i < nw; i++)
        diff |= w[i] ^ (seed + i * PAT_K);
    const uint8_t *b = p;
    for (size_t i = nw * 8; i < n; i++)
        diff |= b[i] ^ ((uint8_t)(seed >> ((i & 7) * 8)) ^ 0x5A);
    return diff == 0;
}

/* Allocate n bytes, check alignment, fill with the block pattern. */
static void *alloc_block(size_t n)
{
    void *p = malloc(n);
    CHECKF(p != NULL, "malloc(%zu) returned NULL", n);
    CHECKF(((uintptr_t)p & 15) == 0, "malloc(%zu) = %p not 16-aligned", n, p);
    fill_block(p, n);
    return p;
}

/* Verify then free. */
static void free_block(void *p, size_t n)
{
    CHECKF(block_ok(p, n), "block %p (%zu bytes) corrupted before free", p, n);
    free(p);
}

/* Random size, log-uniform: 8 B .. 2^(max_shift + 4) B, capped at 100 KiB;
 * 1 in `big_every` (if non-zero) is ~2 MiB instead. */
static size_t random_size_upto(uint64_t *rng, unsigned big_every,
                               unsigned max_shift)
{
    uint64_t r = rnd(rng);
    if (big_every && r % big_every == 0)
        return 2 * MiB + (r >> 32) % (64 * KiB);
    size_t base = (size_t)8 << ((r >> 8) % (max_shift + 1));
    size_t n = base + (r >> 24) % base;
    return n > 100 * KiB ? 100 * KiB : n;
}

/* 8 B .. 100 KiB (mean ~15 KiB), 1 in `big_every` ~2 MiB. */
static size_t random_size(uint64_t *rng, unsigned big_every)
{
    return random_size_upto(rng, big_every, 13);
}

/* 8 B .. 16 KiB (mean ~2.5 KiB), 1 in `big_every` ~2 MiB. */
static size_t small_size(uint64_t *rng, unsigned big_every)
{
    return random_size_upto(rng, big_every, 10);
}

/* ------------------------------------------------------------------------ */
/* (a) cross-thread frees through per-thread rings                           */
/* ------------------------------------------------------------------------ */

enum {
    A_THREADS = 4,
    A_BLOCKS_PER_THREAD = 60000, /* 240,000 blocks in total */
    A_RING = 512,
    A_BATCH = 64,
};

struct item {
    void *p;
    size_t n;
};

/* Ring i is consumed only by thread i and filled by the other threads. */
struct ring {
    pthread_mutex_t lock;
    size_t head, count;
    struct item items[A_RING];
};

static struct ring a_rings[A_THREADS];
static atomic_size_t a_consumed;

static int ring_try_push(struct ring *r, struct item it)
{
    int ok = 0;
    pthread_mutex_lock(&r->lock);
    if (r->count < A_RING) {
        r->items[(r->head + r->count) % A_RING] = it;
        r->count++;
        ok = 1;
    }
    pthread_mutex_unlock(&r->lock);
    return ok;
}

static size_t ring_pop_batch(struct ring *r, struct item *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&r->lock);
    while (n < max && r->count > 0) {
        out[n++] = r->items[r->head];
        r->head = (r->head + 1) % A_RING;
        r->count--;
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

static void *a_thread(void *arg)
{
    size_t self = (size_t)(uintptr_t)arg;
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (self + 1);
    size_t produced = 0;
    struct item pending = {NULL, 0};
    size_t target = 0;
    const size_t total = (size_t)A_THREADS * A_BLOCKS_PER_THREAD;

    for (;;) {
        int progress = 0;
        if (produced < A_BLOCKS_PER_THREAD) {
            if (!pending.p) {
                pending.n = random_size(&rng, 1000);
                pending.p = alloc_block(pending.n);
                /* always a different thread than ourselves */
                target = (self + 1 + rnd(&rng) % (A_THREADS - 1)) % A_THREADS;
            }
            if (ring_try_push(&a_rings[target], pending)) {
                pending.p = NULL;
                produced++;
                progress = 1;
            }
        }
        struct item batch[A_BATCH];
        size_t got = ring_pop_batch(&a_rings[self], batch, A_BATCH);
        for (size_t i = 0; i < got; i++)
            free_block(batch[i].p, batch[i].n);
        if (got) {
            atomic_fetch_add(&a_consumed, got);
            progress = 1;
        }
        if (produced == A_BLOCKS_PER_THREAD && atomic_load(&a_consumed) == total)
            break;
        if (!progress)
            sched_yield();
    }
    return NULL;
}

static void test_cross_thread(void)
{
    g_group = "cross-thread frees";
    double t0 = now_s();
    for (int i = 0; i < A_THREADS; i++)
        pthread_mutex_init(&a_rings[i].lock, NULL);
    pthread_t th[A_THREADS];
    for (size_t i = 0; i < A_THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, a_thread, (void *)(uintptr_t)i) == 0);
    for (int i = 0; i < A_THREADS; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    for (int i = 0; i < A_THREADS; i++)
        CHECK(a_rings[i].count == 0);
    CHECK(atomic_load(&a_consumed) == (size_t)A_THREADS * A_BLOCKS_PER_THREAD);
    printf("(a) cross-thread frees: %d threads, %d blocks ... ok (%.2f s)\n",
           A_THREADS, A_THREADS * A_BLOCKS_PER_THREAD, now_s() - t0);
}

/* ------------------------------------------------------------------------ */
/* (b) thread churn: short-lived threads leave live blocks behind            */
/* ------------------------------------------------------------------------ */

enum {
    B_THREADS = 2000,
    B_BATCH = 50,       /* threads alive at the same time */
    B_BLOCKS = 50,      /* allocated per thread */
    B_LEFT = B_BLOCKS / 2, /* left live at thread exit */
};

static struct item b_left[B_THREADS][B_LEFT];

static void *b_thread(void *arg)
{
    size_t id = (size_t)(uintptr_t)arg;
    uint64_t rng = 0xD1B54A32D192ED03ULL * (id + 1);
    struct item mine[B_BLOCKS];
    for (int i = 0; i < B_BLOCKS; i++) {
        /* mostly small; some medium; 1 in 500 is 2 MiB */
        size_t n = rnd(&rng) % 4 ? 1 + rnd(&rng) % 1024
                                  : random_size(&rng, 500);
        mine[i].n = n;
        mine[i].p = alloc_block(n);
    }
    /* free every other block ourselves, publish the rest */
    for (int i = 0; i < B_BLOCKS; i++) {
        if (i % 2 == 0)
            free_block(mine[i].p, mine[i].n);
        else
            b_left[id][i / 2] = mine[i];
    }
    return NULL;
}

static void test_thread_churn(void)
{
    g_group = "thread churn";
    double t0 = now_s();
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * KiB);
    for (size_t base = 0; base < B_THREADS; base += B_BATCH) {
        pthread_t th[B_BATCH];
        for (size_t i = 0; i < B_BATCH; i++) {
            int rc = pthread_create(&th[i], &attr, b_thread,
                                    (void *)(uintptr_t)(base + i));
            CHECKF(rc == 0, "pthread_create #%zu: %s", base + i, strerror(rc));
        }
        for (size_t i = 0; i < B_BATCH; i++)
            CHECK(pthread_join(th[i], NULL) == 0);
        /* Between batches, the main thread frees a few leftovers of the
         * previous batch, so frees of blocks owned by dead threads happen
         * while new threads allocate. */
        if (base >= B_BATCH)
            for (size_t t = base - B_BATCH; t < base; t++) {
                free_block(b_left[t][0].p, b_left[t][0].n);
                b_left[t][0].p = NULL;
            }
    }
    pthread_attr_destroy(&attr);
    size_t freed = 0;
    for (size_t t = 0; t < B_THREADS; t++)
        for (size_t k = 0; k < B_LEFT; k++)
            if (b_left[t][k].p) {
                free_block(b_left[t][k].p, b_left[t][k].n);
                freed++;
            }
    printf("(b) thread churn: %d threads, %zu orphaned blocks ... ok (%.2f s)\n",
           B_THREADS, freed, now_s() - t0);
}

/* ------------------------------------------------------------------------ */
/* (c) fork while other threads allocate                                     */
/* ------------------------------------------------------------------------ */

enum {
    C_WORKERS = 3,
    C_FORKS = 50,
    C_CHILD_OPS = 10000,
    C_CHILD_SLOTS = 256,
    C_PARENT_BLOCKS = 200,
    CHILD_TIMEOUT_S = 10,
};

static atomic_int c_stop;
static atomic_long c_worker_ops;
static struct item c_parent_blocks[C_PARENT_BLOCKS];

/* Worker: keep 64 blocks, replace a random one each iteration. */
static void *c_worker(void *arg)
{
    uint64_t rng = 0xA0761D6478BD642FULL * ((uintptr_t)arg + 1);
    struct item slot[64] = {{0}};
    long ops = 0;
    while (!atomic_load_explicit(&c_stop, memory_order_relaxed)) {
        struct item *s = &slot[rnd(&rng) % 64];
        if (s->p)
            free_block(s->p, s->n);
        s->n = small_size(&rng, 1000);
        s->p = alloc_block(s->n);
        ops++;
    }
    for (int i = 0; i < 64; i++)
        if (slot[i].p)
            free_block(slot[i].p, slot[i].n);
    atomic_fetch_add(&c_worker_ops, ops);
    return NULL;
}

/* A thread started inside a forked child. */
static void *c_child_thread(void *arg)
{
    uint64_t rng = (uintptr_t)arg | 1;
    struct item slot[32] = {{0}};
    for (int i = 0; i < 2000; i++) {
        struct item *s = &slot[rnd(&rng) % 32];
        if (s->p)
            free_block(s->p, s->n);
        s->n = small_size(&rng, 0);
        s->p = alloc_block(s->n);
    }
    for (int i = 0; i < 32; i++)
        if (slot[i].p)
            free_block(slot[i].p, slot[i].n);
    return NULL;
}

/* Body of a forked child.  Never returns. */
static void c_child(int k)
{
    g_in_child = 1;
    alarm(CHILD_TIMEOUT_S + 5); /* backstop if the parent's timeout fails */
    uint64_t rng = 0x8BB84B93962EACC9ULL * (uint64_t)(k + 1);

    /* Blocks inherited from the parent are intact; free half of them
     * (freeing memory allocated before fork must work in the child). */
    for (int i = 0; i < C_PARENT_BLOCKS; i++) {
        CHECKF(block_ok(c_parent_blocks[i].p, c_parent_blocks[i].n),
               "inherited block %d corrupted", i);
        if (i % 2)
            free(c_parent_blocks[i].p);
    }

    /* ~10,000 mixed operations on up to C_CHILD_SLOTS live blocks. */
    struct item slot[C_CHILD_SLOTS];
    memset(slot, 0, sizeof slot);
    for (int op = 0; op < C_CHILD_OPS; op++) {
        struct item *s = &slot[rnd(&rng) % C_CHILD_SLOTS];
        unsigned what = rnd(&rng) % 8;
        if (s->p && what == 0) {
            /* realloc keeps the old pattern prefix; re-fill for new size */
            size_t n = small_size(&rng, 100);
            CHECK(block_ok(s->p, s->n));
            void *q = realloc(s->p, n);
            CHECKF(q != NULL, "realloc(%zu) failed in child", n);
            s->p = q;
            s->n = n;
            fill_block(q, n);
            continue;
        }
        if (s->p)
            free_block(s->p, s->n);
        s->n = small_size(&rng, 300);
        if (what == 1) {
            s->p = calloc(1, s->n);
            CHECK(s->p != NULL);
            for (size_t i = 0; i < s->n; i += 61)
                CHECKF(((uint8_t *)s->p)[i] == 0,
                       "calloc(1, %zu) in child: byte %zu non-zero", s->n, i);
            fill_block(s->p, s->n);
        } else {
            s->p = alloc_block(s->n);
        }
    }
    for (int i = 0; i < C_CHILD_SLOTS; i++)
        if (slot[i].p)
            free_block(slot[i].p, slot[i].n);

    /* Threads still work in the child. */
    pthread_t th;
    CHECK(pthread_create(&th, NULL, c_child_thread, (void *)(uintptr_t)k) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    _exit(0);
}

/* Wait for pid with a timeout; returns its status, fails the test on hang. */
static int wait_child(pid_t pid, int k)
{
    double deadline = now_s() + CHILD_TIMEOUT_S;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        CHECKF(r == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
        if (now_s() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            CHECKF(0, "forked child #%d did not finish within %d s "
                   "(deadlock after fork?)", k, CHILD_TIMEOUT_S);
        }
        usleep(1000);
    }
}

static void test_fork(void)
{
    g_group = "fork with threads";
    double t0 = now_s();
    uint64_t rng = 12345;
    for (int i = 0; i < C_PARENT_BLOCKS; i++) {
        c_parent_blocks[i].n = random_size(&rng, 50);
        c_parent_blocks[i].p = alloc_block(c_parent_blocks[i].n);
    }

    pthread_t th[C_WORKERS];
    for (size_t i = 0; i < C_WORKERS; i++)
        CHECK(pthread_create(&th[i], NULL, c_worker, (void *)(uintptr_t)i) == 0);
    usleep(20000); /* let the workers get going */

    for (int k = 0; k < C_FORKS; k++) {
        fflush(stdout);
        pid_t pid = fork();
        CHECKF(pid >= 0, "fork: %s", strerror(errno));
        if (pid == 0)
            c_child(k);
        int st = wait_child(pid, k);
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0,
               "forked child #%d: %s %d", k,
               WIFEXITED(st) ? "exit status" : "killed by signal",
               WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        usleep((useconds_t)(rnd(&rng) % 2000)); /* vary the fork moment */
    }

    atomic_store(&c_stop, 1);
    for (int i = 0; i < C_WORKERS; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    for (int i = 0; i < C_PARENT_BLOCKS; i++)
        free_block(c_parent_blocks[i].p, c_parent_blocks[i].n);
    printf("(c) fork while allocating: %d forks, %d workers (%ld ops) ... ok "
           "(%.2f s)\n", C_FORKS, C_WORKERS, (long)atomic_load(&c_worker_ops),
           now_s() - t0);
}

/* ------------------------------------------------------------------------ */
/* (d) allocation after the allocator's own thread-exit destructor           */
/* ------------------------------------------------------------------------ */

/* A pthread key whose destructor allocates in every destructor round, after
 * arenalloc's own destructor has already retired the thread's heap.  Those
 * late allocations must not leave a heap behind that nobody adopts: after
 * many such threads the number of heaps must stay small. */
static pthread_key_t d_key;
static void d_destructor(void *v)
{
    char *p = v;
    CHECK(p[0] == 'd' && p[99] == 'd');
    free(p);
    static _Thread_local int rounds;
    if (++rounds < 6) { /* keep asking for another round, as some libraries do */
        char *q = malloc(100);
        CHECK(q != NULL);
        memset(q, 'd', 100);
        pthread_setspecific(d_key, q);
    }
}
static void *d_thread(void *arg)
{
    (void)arg;
    char *p = malloc(100);
    CHECK(p != NULL);
    memset(p, 'd', 100);
    pthread_setspecific(d_key, p);
    return NULL;
}
static void test_late_exit_allocations(void)
{
    g_group = "(d) allocation during thread exit";
    printf("(d) allocations in late thread-exit destructors ... ");
    double t0 = now_s();
    CHECK(pthread_key_create(&d_key, d_destructor) == 0);
#ifndef TEST_AGAINST_GLIBC
    size_t before = arenalloc_heaps();
#endif
    for (int i = 0; i < 200; i++) {
        pthread_t th;
        CHECK(pthread_create(&th, NULL, d_thread, NULL) == 0);
        CHECK(pthread_join(th, NULL) == 0);
    }
#ifndef TEST_AGAINST_GLIBC
    /* Earlier groups left heaps to adopt; sequential threads need at most one more. */
    size_t heaps = arenalloc_heaps();
    CHECKF(heaps <= before + 1, "%zu heaps before, %zu after 200 sequential threads: "
           "heaps leak on thread exit", before, heaps);
    printf("ok (%zu heaps before, %zu after, %.2f s)\n", before, heaps, now_s() - t0);
#else
    printf("ok (%.2f s)\n", now_s() - t0);
#endif
}

/* ------------------------------------------------------------------------ */
/* (e) large realloc racing with mappings made by another thread             */
/* ------------------------------------------------------------------------ */

/* A large block shrunk or moved by realloc gives address space back; another
 * thread may map a block there at once.  Its blocks must stay valid. */
static atomic_int e_stop;
static void *e_realloc_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&e_stop)) {
        char *p = malloc(24 * MiB);
        CHECK(p != NULL);
        p[0] = 1;
        p = realloc(p, 2 * MiB + 1);
        CHECK(p != NULL && p[0] == 1);
        p = realloc(p, 9 * MiB);
        CHECK(p != NULL && p[0] == 1);
        free(p);
    }
    return NULL;
}
static void test_large_realloc_race(void)
{
    g_group = "(e) large realloc race";
    printf("(e) large realloc racing with other mappings ... ");
    double t0 = now_s();
    pthread_t th;
    atomic_store(&e_stop, 0);
    CHECK(pthread_create(&th, NULL, e_realloc_thread, NULL) == 0);
    long rounds = 0;
    while (now_s() - t0 < 2.0) {
        char *q = malloc(5 * MiB);
        char *r = malloc(3000);
        CHECK(q != NULL && r != NULL);
        q[0] = 2;
        q[5 * MiB - 1] = 3;
        memset(r, 4, 3000);
        CHECK(malloc_usable_size(q) >= 5 * MiB);
        free(q);
        free(r);
        rounds++;
    }
    atomic_store(&e_stop, 1);
    CHECK(pthread_join(th, NULL) == 0);
    printf("ok (%ld rounds, %.2f s)\n", rounds, now_s() - t0);
}

/* ------------------------------------------------------------------------ */
/* (f) memory of an exited thread returns without a new thread adopting it   */
/* ------------------------------------------------------------------------ */

/* Runs first in main(), so the arenas hold nothing else and the dead thread's pools
 * fill whole arenas that must go back to the OS. */
#define F_BLOCKS 16384
#define F_SIZE 2000
static char *f_blocks[F_BLOCKS];
static void *f_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < F_BLOCKS; i++) {
        f_blocks[i] = malloc(F_SIZE);
        CHECK(f_blocks[i] != NULL);
        memset(f_blocks[i], (unsigned char)i, F_SIZE);
    }
    return NULL; /* exits with 32 MiB live */
}
static void test_abandoned_memory_returns(void)
{
    g_group = "(f) abandoned heap tidied";
    printf("(f) an exited thread's memory returns to the OS ... ");
    double t0 = now_s();
    pthread_t th;
    CHECK(pthread_create(&th, NULL, f_thread, NULL) == 0);
    CHECK(pthread_join(th, NULL) == 0);
#ifndef TEST_AGAINST_GLIBC
    size_t before = arenalloc_arenas_mapped();
#endif
    for (int i = 0; i < F_BLOCKS; i++) { /* remote frees into the dead thread's heap */
        CHECK((unsigned char)f_blocks[i][F_SIZE - 1] == (unsigned char)i);
        free(f_blocks[i]);
    }
    /* A size this thread never used: it must claim a pool, which tidies the dead heap. */
    void *p = malloc(600 * 1024);
    CHECK(p != NULL);
    free(p);
#ifndef TEST_AGAINST_GLIBC
    size_t after = arenalloc_arenas_mapped();
    CHECKF(after + 4 <= before, "arenas mapped: %zu before the frees, %zu after; the dead "
           "thread's 32 MiB did not go back", before, after);
    printf("ok (arenas %zu -> %zu, %.2f s)\n", before, after, now_s() - t0);
#else
    printf("ok (%.2f s)\n", now_s() - t0);
#endif
}

/* ------------------------------------------------------------------------ */
/* (g) a fork child reclaims the heaps of the parent's other threads        */
/* ------------------------------------------------------------------------ */

/* Threads that allocated and freed (their heaps hold pools with free blocks), then wait
 * while the parent forks.  In the child those threads do not exist: their heaps must be
 * up for adoption (not attached), and a thread started there adopts one instead of
 * making a new heap. */
enum { G_THREADS = 4, G_BLOCKS = 2000 };
static pthread_barrier_t g_ready, g_done;
static void *g_thread(void *arg)
{
    (void)arg;
    void **blocks = malloc(G_BLOCKS * sizeof *blocks);
    CHECK(blocks != NULL);
    for (int i = 0; i < G_BLOCKS; i++) {
        blocks[i] = malloc(48 + (size_t)(i % 7) * 16);
        CHECK(blocks[i] != NULL);
        memset(blocks[i], 'g', 48);
    }
    for (int i = 0; i < G_BLOCKS; i += 2)
        free(blocks[i]);
    pthread_barrier_wait(&g_ready);
    pthread_barrier_wait(&g_done); /* the parent forks meanwhile */
    for (int i = 1; i < G_BLOCKS; i += 2)
        free(blocks[i]);
    free(blocks);
    return NULL;
}
static void *g_child_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        void *p = malloc(64);
        CHECK(p != NULL);
        memset(p, 'c', 64);
        free(p);
    }
    return NULL;
}
static void test_fork_reclaims_heaps(void)
{
    g_group = "(g) fork reclaims heaps";
    printf("(g) a fork child adopts the heaps of the parent's other threads ... ");
    double t0 = now_s();
    pthread_t th[G_THREADS];
    CHECK(pthread_barrier_init(&g_ready, NULL, G_THREADS + 1) == 0);
    CHECK(pthread_barrier_init(&g_done, NULL, G_THREADS + 1) == 0);
    for (int i = 0; i < G_THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, g_thread, NULL) == 0);
    pthread_barrier_wait(&g_ready);
    fflush(stdout);
    pid_t pid = fork();
    CHECKF(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        g_in_child = 1;
        alarm(CHILD_TIMEOUT_S + 5);
#ifndef TEST_AGAINST_GLIBC
        struct arenalloc_stats s;
        CHECK(arenalloc_stats(&s) == 0);
        CHECKF(s.heaps_attached == 1, "in the fork child %zu heaps are attached (of %zu); "
               "only this thread's should be: the parent's other threads' heaps were not "
               "reclaimed", s.heaps_attached, s.heaps);
        size_t heaps = s.heaps;
#endif
        pthread_t c;
        CHECK(pthread_create(&c, NULL, g_child_thread, NULL) == 0);
        CHECK(pthread_join(c, NULL) == 0);
#ifndef TEST_AGAINST_GLIBC
        CHECK(arenalloc_stats(&s) == 0);
        CHECKF(s.heaps == heaps, "a thread in the fork child made a new heap (%zu -> %zu) "
               "instead of adopting one", heaps, s.heaps);
#endif
        _exit(0);
    }
    int st = wait_child(pid, 0);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork child: %s %d",
           WIFEXITED(st) ? "exit status" : "killed by signal",
           WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    pthread_barrier_wait(&g_done);
    for (int i = 0; i < G_THREADS; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    pthread_barrier_destroy(&g_ready);
    pthread_barrier_destroy(&g_done);
    printf("ok (%.2f s)\n", now_s() - t0);
}

/* ------------------------------------------------------------------------ */
/* (h) decommitting free memory while other threads claim and fill pools     */
/* ------------------------------------------------------------------------ */

/* Free pages are decommitted (madvise) with the arena lock released, the slots held
 * out of circulation meanwhile.  If a slot could be claimed while its pages are being
 * dropped, a block's contents would turn to zeros: churners check every byte pattern
 * while one thread trims in a loop. */
enum { H_THREADS = 2, H_BLOCKS = 400, H_ROUNDS = 300 };
static atomic_int h_stop;
static void *h_churn(void *arg)
{
    uint64_t rng = 0x9E3779B97F4A7C15ULL * ((uintptr_t)arg + 1);
    struct item *blocks = calloc(H_BLOCKS, sizeof *blocks);
    CHECK(blocks != NULL);
    for (int round = 0; round < H_ROUNDS; round++) {
        for (int i = 0; i < H_BLOCKS; i++) { /* medium sizes: a pool per few blocks */
            blocks[i].n = 600 + rnd(&rng) % 30000;
            blocks[i].p = alloc_block(blocks[i].n);
        }
        for (int i = 0; i < H_BLOCKS; i++)
            free_block(blocks[i].p, blocks[i].n); /* checks the pattern first */
    }
    free(blocks);
    return NULL;
}
static void *h_trimmer(void *arg)
{
    (void)arg;
    while (!atomic_load(&h_stop)) {
        malloc_trim(0);
        sched_yield();
    }
    return NULL;
}
static void test_purge_races_claims(void)
{
    g_group = "(h) purge racing claims";
    printf("(h) free memory decommitted while other threads claim pools ... ");
    double t0 = now_s();
    pthread_t churn[H_THREADS], trim;
    atomic_store(&h_stop, 0);
    CHECK(pthread_create(&trim, NULL, h_trimmer, NULL) == 0);
    for (int i = 0; i < H_THREADS; i++)
        CHECK(pthread_create(&churn[i], NULL, h_churn, (void *)(uintptr_t)i) == 0);
    for (int i = 0; i < H_THREADS; i++)
        CHECK(pthread_join(churn[i], NULL) == 0);
    atomic_store(&h_stop, 1);
    CHECK(pthread_join(trim, NULL) == 0);
    printf("ok (%.2f s)\n", now_s() - t0);
}

int main(void)
{
    double t0 = now_s();
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGABRT, crash_handler);
    signal(SIGSEGV, crash_handler);
    signal(SIGBUS, crash_handler);
#ifdef TEST_AGAINST_GLIBC
    printf("test_threads: built against glibc\n");
#endif
    /* First, while the heap is not yet fragmented by the other groups: it counts arenas. */
    test_abandoned_memory_returns();
    test_cross_thread();
    test_thread_churn();
    test_fork();
    test_fork_reclaims_heaps();
    test_late_exit_allocations();
    test_large_realloc_race();
    test_purge_races_claims();
    printf("ALL OK (%.2f s)\n", now_s() - t0);
    return 0;
}
