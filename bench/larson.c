/* Larson-style server simulation (after Larson & Krishnan, "Memory allocation for
 * long-running server applications", and the larson benchmark of Hoard / mimalloc-bench).
 *
 * THREADS chains run at once.  Each chain owns an array of SLOTS blocks (sizes uniform in
 * [min, max]), first filled by the main thread.  A chain's thread performs OPS replacements
 * (free a random slot's block, after checking its tag, and malloc a new one of a random
 * size in its place), then starts a successor thread, hands it the array and exits; the
 * successor frees, one by one, blocks its predecessor allocated (cross-thread frees, the
 * owner gone or going) while it allocates its own.  After GENERATIONS threads per chain the
 * main thread frees what is left.
 *
 * Prints the throughput in replacements (malloc+free pairs) per second, all threads
 * together, on stdout; on stderr the replacements per CPU second ("cpu N") and a checksum.  Work is fixed per thread, so with 2 threads on
 * 2 idle cores the ideal is twice the 1-thread figure.
 *
 *   larson THREADS [GENERATIONS [OPS [SLOTS [MIN MAX]]]]
 *   default: larson 1 40 100000 5000 8 1000
 */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

typedef struct {
    unsigned char **block;
    size_t *size;
    rng_t rng;
    int generation;
    unsigned long check;
} chain_t;

static int SLOTS = 5000, GENERATIONS = 40;
static long OPS = 100000;
static size_t MIN = 8, MAX = 1000;
static atomic_int chains_running;
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;

static void *chain_thread(void *arg) {
    chain_t *c = arg;
    for (long k = 0; k < OPS; k++) {
        uint64_t r = rng_next(&c->rng);
        int i = (int)((r & 0xffffffffu) % (unsigned)SLOTS);
        unsigned char tag = c->block[i][0];
        if (!touched_ok(c->block[i], c->size[i], tag)) die("larson: block corrupted");
        c->check += tag;
        free(c->block[i]);
        c->size[i] = MIN + (r >> 32) % (MAX - MIN + 1);
        c->block[i] = malloc(c->size[i]);
        if (!c->block[i]) die("malloc failed");
        touch(c->block[i], c->size[i], (unsigned char)(k + c->generation));
    }
    if (++c->generation < GENERATIONS) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, chain_thread, c)) die("pthread_create failed");
        pthread_attr_destroy(&a);
    } else {
        pthread_mutex_lock(&done_lock);
        if (atomic_fetch_sub(&chains_running, 1) == 1) pthread_cond_signal(&done_cond);
        pthread_mutex_unlock(&done_lock);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (argc > 2) GENERATIONS = atoi(argv[2]);
    if (argc > 3) OPS = atol(argv[3]);
    if (argc > 4) SLOTS = atoi(argv[4]);
    if (argc > 6) { MIN = (size_t)atol(argv[5]); MAX = (size_t)atol(argv[6]); }
    if (threads < 1 || GENERATIONS < 1 || OPS < 1 || SLOTS < 1 || MIN < 2 || MAX < MIN)
        die("usage: larson THREADS [GENERATIONS [OPS [SLOTS [MIN>=2 MAX]]]]");
    chain_t *chains = calloc((size_t)threads, sizeof *chains);
    if (!chains) die("out of memory");
    for (int t = 0; t < threads; t++) {
        chain_t *c = &chains[t];
        c->rng = rng_seed(100 + (uint64_t)t);
        c->block = xmalloc((size_t)SLOTS * sizeof *c->block);
        c->size = xmalloc((size_t)SLOTS * sizeof *c->size);
        for (int i = 0; i < SLOTS; i++) {
            c->size[i] = rng_range(&c->rng, MIN, MAX);
            c->block[i] = xmalloc(c->size[i]);
            touch(c->block[i], c->size[i], (unsigned char)i);
        }
    }
    atomic_store(&chains_running, threads);
    double t0 = now_s(), c0 = cpu_s();
    for (int t = 0; t < threads; t++) {
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &a, chain_thread, &chains[t])) die("pthread_create failed");
        pthread_attr_destroy(&a);
    }
    pthread_mutex_lock(&done_lock);
    while (atomic_load(&chains_running) > 0) pthread_cond_wait(&done_cond, &done_lock);
    pthread_mutex_unlock(&done_lock);
    double secs = now_s() - t0, cpus = cpu_s() - c0;
    unsigned long check = 0;
    for (int t = 0; t < threads; t++) {
        chain_t *c = &chains[t];
        for (int i = 0; i < SLOTS; i++) {
            if (!touched_ok(c->block[i], c->size[i], c->block[i][0])) die("larson: block corrupted");
            free(c->block[i]);
        }
        free(c->block);
        free(c->size);
        check += c->check;
    }
    free(chains);
    report_rates((double)threads * GENERATIONS * OPS, secs, cpus);
    fprintf(stderr, "checksum %lu\n", check);
    return 0;
}
