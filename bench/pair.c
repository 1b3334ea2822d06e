/* A tight malloc/free loop of one small size, for counting instructions per pair with
 * callgrind: run it with two loop counts and divide the difference.
 *   pair N [size]   (default size 32) */
#include <stdlib.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000L;
    size_t size = argc > 2 ? (size_t)atol(argv[2]) : 32;
    void *volatile sink;
    for (long i = 0; i < n; i++) {
        void *p = malloc(size);
        sink = p;
        free(p);
    }
    (void)sink;
    return 0;
}
