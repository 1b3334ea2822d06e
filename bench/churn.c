/* Churn, one thread: a working set of LIVE blocks of random sizes; each step frees a random
 * live block (checking the tag written into it) and allocates a new one in its place,
 * writing its first and last byte and one byte in every 4 KiB page (so the block is really
 * used).  Prints the operations (malloc+free pairs) per second on stdout; on stderr the
 * operations per CPU second ("cpu N") and a checksum.  Whatever malloc the process has is measured, so the same binary compares
 * allocators under LD_PRELOAD.
 *
 *   churn [steps [min max [live [large_permille large_max]]]]
 *
 * default 20,000,000 steps of 8..512 bytes (uniform), 50,000 live.  With large_permille > 0,
 * that many allocations in a thousand are "large": log-uniform in (max, large_max].
 *   churn 10000000                          small objects (make bench: "small")
 *   churn 1000000 512 65536 5000            medium objects
 *   churn 1000000 512 65536 5000 10 8388608 medium, 1% large up to 8 MiB
 */
#include "common.h"

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 20000000L;
    size_t lo = argc > 3 ? (size_t)atol(argv[2]) : 8, hi = argc > 3 ? (size_t)atol(argv[3]) : 512;
    int LIVE = argc > 4 ? atoi(argv[4]) : 50000;
    unsigned permille = argc > 6 ? (unsigned)atoi(argv[5]) : 0;
    size_t large_max = argc > 6 ? (size_t)atol(argv[6]) : hi;
    if (steps < 1 || lo < 2 || hi < lo || LIVE < 1 || permille > 1000 || (permille && large_max <= hi))
        die("usage: churn [steps [min>=2 max>=min [live [large_permille large_max>max]]]]");
    unsigned char **live = calloc((size_t)LIVE, sizeof *live);
    size_t *size = calloc((size_t)LIVE, sizeof *size);
    if (!live || !size) die("out of memory");
    rng_t rng = rng_seed(1);
#define PICK_SIZE(r) (permille && (r) % 1000 < permille ? rng_logrange(&rng, hi + 1, large_max) \
                                                         : lo + ((r) >> 32) % (hi - lo + 1))
    for (int i = 0; i < LIVE; i++) {
        uint64_t r = rng_next(&rng);
        size[i] = PICK_SIZE(r);
        live[i] = xmalloc(size[i]);
        touch(live[i], size[i], (unsigned char)i);
    }
    double t0 = now_s(), c0 = cpu_s();
    unsigned long check = 0;
    for (long s = 0; s < steps; s++) {
        uint64_t r = rng_next(&rng);
        int i = (int)((r & 0xffffffffu) % (unsigned)LIVE);
        unsigned char tag = live[i][0];
        if (!touched_ok(live[i], size[i], tag)) die("block %d corrupted", i);
        check += tag;
        free(live[i]);
        r = rng_next(&rng);
        size[i] = PICK_SIZE(r);
        live[i] = malloc(size[i]);
        if (!live[i]) die("malloc(%zu) failed", size[i]);
        touch(live[i], size[i], (unsigned char)s);
    }
    double secs = now_s() - t0, cpus = cpu_s() - c0;
    for (int i = 0; i < LIVE; i++) free(live[i]);
    free(live);
    free(size);
    report_rates(steps, secs, cpus);
    fprintf(stderr, "checksum %lu\n", check);
    return 0;
}
