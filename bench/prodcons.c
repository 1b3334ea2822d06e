/* Producer/consumer: one thread allocates blocks (sizes uniform in [min, max]), writes a tag
 * into each and passes it through a single-producer single-consumer ring buffer to a second
 * thread, which checks the tag and frees it.  Every free is a cross-thread free to a live
 * owner.  Prints blocks per second (malloc+free pairs) on stdout; on stderr blocks per CPU
 * second ("cpu N", both threads' CPU, spinning included) and a checksum.
 *
 *   prodcons [N [min max [ring]]]      default 10,000,000 blocks of 8..512 B, ring of 1024
 */
#include "common.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

static long N = 10000000;
static size_t MIN = 8, MAX = 512;
static size_t RING = 1024; /* power of two */
static unsigned char **ring;
static size_t *ring_size;
static _Alignas(64) atomic_size_t head; /* next slot the producer fills */
static _Alignas(64) atomic_size_t tail; /* next slot the consumer empties */
static _Alignas(64) unsigned long consumer_check;

static inline void backoff(unsigned *spins) {
    if (++*spins < 64) __builtin_ia32_pause();
    else { sched_yield(); *spins = 0; }
}

static void *producer(void *arg) {
    (void)arg;
    rng_t rng = rng_seed(7);
    size_t h = 0, cached_tail = 0;
    for (long k = 0; k < N; k++) {
        uint64_t r = rng_next(&rng);
        size_t n = MIN + r % (MAX - MIN + 1);
        unsigned char *p = malloc(n);
        if (!p) die("malloc failed");
        touch(p, n, (unsigned char)k);
        unsigned spins = 0;
        while (h - cached_tail >= RING) {
            cached_tail = atomic_load_explicit(&tail, memory_order_acquire);
            if (h - cached_tail >= RING) backoff(&spins);
        }
        ring[h & (RING - 1)] = p;
        ring_size[h & (RING - 1)] = n;
        atomic_store_explicit(&head, ++h, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    size_t t = 0, cached_head = 0;
    unsigned long check = 0;
    for (long k = 0; k < N; k++) {
        unsigned spins = 0;
        while (t == cached_head) {
            cached_head = atomic_load_explicit(&head, memory_order_acquire);
            if (t == cached_head) backoff(&spins);
        }
        unsigned char *p = ring[t & (RING - 1)];
        size_t n = ring_size[t & (RING - 1)];
        if (p[0] != (unsigned char)k || !touched_ok(p, n, p[0])) die("prodcons: block %ld corrupted", k);
        check += p[n - 1];
        free(p);
        atomic_store_explicit(&tail, ++t, memory_order_release);
    }
    consumer_check = check;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) N = atol(argv[1]);
    if (argc > 3) { MIN = (size_t)atol(argv[2]); MAX = (size_t)atol(argv[3]); }
    if (argc > 4) RING = (size_t)atol(argv[4]);
    if (N < 1 || MIN < 2 || MAX < MIN || RING < 2 || (RING & (RING - 1)))
        die("usage: prodcons [N [min>=2 max [ring (power of two)]]]");
    ring = xmalloc(RING * sizeof *ring);
    ring_size = xmalloc(RING * sizeof *ring_size);
    pthread_t p, c;
    double t0 = now_s(), c0 = cpu_s();
    if (pthread_create(&c, NULL, consumer, NULL) || pthread_create(&p, NULL, producer, NULL))
        die("pthread_create failed");
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    double secs = now_s() - t0, cpus = cpu_s() - c0;
    free(ring);
    free(ring_size);
    report_rates(N, secs, cpus);
    fprintf(stderr, "checksum %lu\n", consumer_check);
    return 0;
}
