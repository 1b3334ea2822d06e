/* Realloc growth, one thread, two patterns interleaved over a working set of live objects:
 *  - vector doubling: a vector grows from 16 B by doubling its capacity with realloc up to a
 *    final size drawn log-uniform in [64 B, 1 MiB] (every new page written, as push_back
 *    would), while 64 such vectors are kept and replaced at random;
 *  - string building: a string grows by small appends (1..32 bytes each), each append a
 *    realloc to the exact new length + 1 (the naive builder), up to a final length drawn in
 *    [16 B, 16 KiB], while 256 strings are kept and replaced at random; the content is
 *    checked when the string is dropped.
 * Prints realloc calls per second on stdout; on stderr calls per CPU second ("cpu N") and a
 * checksum.
 *
 *   realloc [OBJECTS]      default 60,000 objects (vectors and strings, 1 vector in 8)
 */
#include "common.h"
#include <string.h>

#define NVEC 64
#define NSTR 256

static unsigned long reallocs;

static unsigned char *xrealloc(unsigned char *p, size_t n) {
    unsigned char *q = realloc(p, n);
    if (!q) die("realloc(%zu) failed", n);
    reallocs++;
    return q;
}

int main(int argc, char **argv) {
    long objects = argc > 1 ? atol(argv[1]) : 60000;
    if (objects < 1) die("usage: realloc [OBJECTS]");
    rng_t rng = rng_seed(3);
    unsigned char *vec[NVEC] = {0}, *str[NSTR] = {0};
    size_t vec_len[NVEC] = {0}, str_len[NSTR] = {0};
    unsigned long check = 0;
    double t0 = now_s(), c0 = cpu_s();
    for (long o = 0; o < objects; o++) {
        if (o % 8 == 0) { /* a vector */
            int i = (int)(rng_next(&rng) % NVEC);
            if (vec[i]) {
                if (!touched_ok(vec[i], vec_len[i], vec[i][0])) die("vector corrupted");
                check += vec[i][vec_len[i] / 2];
                free(vec[i]);
            }
            size_t final = rng_logrange(&rng, 64, 1 << 20), cap = 16;
            unsigned char *v = xrealloc(NULL, cap);
            v[0] = (unsigned char)o;
            while (cap < final) {
                size_t old = cap;
                cap *= 2;
                v = xrealloc(v, cap);
                v[old] = (unsigned char)o; /* the new half is written, page by page */
                for (size_t off = (old + 4095) & ~(size_t)4095; off < cap; off += 4096)
                    v[off] = (unsigned char)o;
            }
            v[cap - 1] = (unsigned char)~v[0];
            vec[i] = v;
            vec_len[i] = cap;
        } else { /* a string */
            int i = (int)(rng_next(&rng) % NSTR);
            if (str[i]) {
                /* the string is the bytes 'a' + (k % 26) for k < len */
                size_t n = str_len[i];
                if (str[i][n] != 0 || str[i][0] != 'a' || str[i][n - 1] != 'a' + (n - 1) % 26)
                    die("string corrupted");
                check += n;
                free(str[i]);
            }
            size_t final = rng_range(&rng, 16, 16384), len = 0;
            unsigned char *s = NULL;
            while (len < final) {
                size_t piece = 1 + rng_next(&rng) % 32;
                s = xrealloc(s, len + piece + 1);
                for (size_t k = 0; k < piece; k++) s[len + k] = (unsigned char)('a' + (len + k) % 26);
                len += piece;
                s[len] = 0;
            }
            str[i] = s;
            str_len[i] = len;
        }
    }
    double secs = now_s() - t0, cpus = cpu_s() - c0;
    for (int i = 0; i < NVEC; i++) free(vec[i]);
    for (int i = 0; i < NSTR; i++) free(str[i]);
    report_rates(reallocs, secs, cpus);
    fprintf(stderr, "checksum %lu reallocs %lu\n", check, reallocs);
    return 0;
}
