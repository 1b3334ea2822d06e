/* Big buffers, one thread: BUFFERS live buffers of MIN..MAX bytes (uniform); each step
 * allocates a new buffer, zero-fills it (as C++'s make_unique<char[]> does) and frees a
 * random old one in its place.  The pattern of programs that size work buffers per request
 * (image and compression tools, servers with large response buffers), and of
 * mimalloc-bench's malloc-large.  What it measures is whether a freed big block's pages
 * are reused while resident, or every new block faults its pages in again.  Prints steps
 * per second on stdout; on stderr the steps per CPU second ("cpu N") and a checksum.
 *
 *   bigbuf [steps [buffers [min max]]]      default: bigbuf 1000 20 5242880 26214400
 */
#include "common.h"
#include <string.h>

/* Called through a volatile pointer: the compiler would otherwise turn malloc + memset into
 * calloc, which a fresh mapping serves without touching a page. */
static void *(*volatile zero_fill)(void *, int, size_t) = memset;

int main(int argc, char **argv) {
    long steps = argc > 1 ? atol(argv[1]) : 1000;
    int n = argc > 2 ? atoi(argv[2]) : 20;
    size_t lo = argc > 4 ? (size_t)atol(argv[3]) : 5u << 20, hi = argc > 4 ? (size_t)atol(argv[4]) : 25u << 20;
    if (steps < 1 || n < 1 || lo < 1 || hi < lo) die("usage: bigbuf [steps [buffers [min max]]]");
    unsigned char **buf = calloc((size_t)n, sizeof *buf);
    size_t *len = calloc((size_t)n, sizeof *len);
    if (!buf || !len) die("out of memory");
    rng_t rng = rng_seed(42);
    unsigned long check = 0;
    double t0 = now_s(), c0 = cpu_s();
    for (long s = 0; s < steps; s++) {
        int i = (int)(rng_next(&rng) % (uint64_t)n);
        size_t size = rng_range(&rng, lo, hi);
        unsigned char *p = malloc(size);
        if (!p) die("malloc(%zu) failed", size);
        zero_fill(p, 0, size);
        p[size / 2] = (unsigned char)s;
        if (buf[i]) {
            check += buf[i][len[i] / 2] + buf[i][0];
            free(buf[i]);
        }
        buf[i] = p;
        len[i] = size;
    }
    double secs = now_s() - t0, cpus = cpu_s() - c0;
    for (int i = 0; i < n; i++) free(buf[i]);
    free(buf);
    free(len);
    report_rates(steps, secs, cpus);
    fprintf(stderr, "checksum %lu\n", check);
    return 0;
}
