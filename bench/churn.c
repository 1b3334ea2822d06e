/* Small-object churn, one thread: a working set of 50,000 live blocks of random sizes
 * 8..512 bytes; each step frees a random live block and allocates a new one in its place,
 * writing its first and last byte (so the block is really used).  Prints the operations
 * (malloc+free pairs) per second.  Whatever malloc the process has is measured, so the
 * same binary compares allocators under LD_PRELOAD.
 *
 *   churn [steps [min max [live]]]   default 20,000,000 steps of 8..512 bytes, 50,000 live
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>


static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static inline uint64_t next_random(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 20000000L;
    size_t lo = argc > 3 ? (size_t)atol(argv[2]) : 8, hi = argc > 3 ? (size_t)atol(argv[3]) : 512;
    int LIVE = argc > 4 ? atoi(argv[4]) : 50000;
    char **live = calloc((size_t)LIVE, sizeof *live);
    size_t *size = calloc((size_t)LIVE, sizeof *size);
    size_t span = hi - lo + 1;
    for (int i = 0; i < LIVE; i++) {
        size[i] = lo + next_random() % span;
        live[i] = malloc(size[i]);
        live[i][0] = (char)i;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long check = 0;
    for (long s = 0; s < steps; s++) {
        uint64_t r = next_random();
        int i = (int)(r % LIVE);
        check += (unsigned char)live[i][0];
        free(live[i]);
        size[i] = lo + (r >> 32) % span;
        live[i] = malloc(size[i]);
        live[i][0] = (char)s;
        live[i][size[i] - 1] = 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    for (int i = 0; i < LIVE; i++) free(live[i]);
    free(live);
    free(size);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%.0f\n", steps / secs);
    fprintf(stderr, "checksum %lu\n", check);
    return 0;
}
