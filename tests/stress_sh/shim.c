/* Test allocators for tests/stress_selftest.sh (built with gcc -shared -fPIC).
 *
 * A "good" shim: malloc, calloc, realloc and free forward to glibc's own
 * __libc_* entry points, so every pointer stays a glibc heap block (the other
 * allocation functions, not defined here, are glibc's and mix freely).
 *   -DSHIM_NOISY   the constructor also writes one stray byte to stdout, so
 *                  the output of every preloaded program differs
 *   -DSHIM_NO_MALLOC  defines no allocation function at all: it loads fine,
 *                  but malloc still resolves into libc (a preload that "did
 *                  not take effect")
 */
#include <stddef.h>
#include <unistd.h>

#ifndef SHIM_NO_MALLOC
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

void *malloc(size_t n) { return __libc_malloc(n); }
void *calloc(size_t n, size_t s) { return __libc_calloc(n, s); }
void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
#endif

#ifdef SHIM_NOISY
__attribute__((constructor)) static void shim_noise(void) {
    ssize_t w = write(1, "#", 1);
    (void)w;
}
#endif

int stress_shim_present(void) { return 1; }
