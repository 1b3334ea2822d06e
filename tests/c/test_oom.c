/* Out of memory: under RLIMIT_AS (what `ulimit -v` sets), every allocation function must
 * fail with NULL and errno ENOMEM when the address space runs out (never abort, never
 * crash), leave the blocks it already gave intact, and work again once memory is freed.
 *
 * Each size family (small, medium, large) is exhausted in turn, from the main thread and
 * then from a second thread (which needs a heap of its own while memory is short).  The
 * limit is set relative to what the process already maps, so the test does not depend on
 * the machine.  Runs linked against arenalloc (tests/c/run.sh) or, for comparison, glibc. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "check.h"

#define MiB ((size_t)1 << 20)
#define MAX_BLOCKS 8000000

static void **g_blocks; /* mapped before the limit, so the test's own table never fails */

/* Bytes of address space the process maps now (first field of /proc/self/statm, in pages). */
static size_t mapped_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL);
    unsigned long pages = 0;
    CHECK(fscanf(f, "%lu", &pages) == 1);
    fclose(f);
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

static void fill(unsigned char *p, size_t size, size_t i)
{
    /* First and last bytes and a byte per page: enough to notice overlaps or lost blocks. */
    for (size_t off = 0; off < size; off += 4096)
        p[off] = (unsigned char)(i + off / 4096);
    p[size - 1] = (unsigned char)~i;
}

static void verify(const unsigned char *p, size_t size, size_t i)
{
    for (size_t off = 0; off < size; off += 4096)
        CHECKF(p[off] == (unsigned char)(i + off / 4096), "block %zu (%zu B) changed at +%zu", i, size, off);
    CHECKF(p[size - 1] == (unsigned char)~i, "block %zu (%zu B) changed at its end", i, size);
}

/* Allocates `size`-byte blocks with `how` until it fails; checks the failure, that every
 * block survived, that the allocator still works, then frees them all.  Returns the count. */
static size_t exhaust(size_t size, int how)
{
    static const char *const names[] = {"malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc"};
    size_t n = 0;
    int err = 0;
    for (;;) {
        CHECKF(n < MAX_BLOCKS, "%s(%zu) never failed", names[how], size);
        void *p = NULL;
        errno = 0;
        switch (how) {
        case 0: p = malloc(size); break;
        case 1: p = calloc(1, size); break;
        case 2: p = realloc(NULL, size); break;
        case 3: {
            int rc = posix_memalign(&p, 64, size);
            if (rc != 0) {
                CHECKF(p == NULL, "posix_memalign failed (%d) but set its result", rc);
                errno = rc;
            }
            break;
        }
        case 4: p = aligned_alloc(4096, size); break;
        }
        if (p == NULL) {
            err = errno;
            break;
        }
        if (how == 1)
            CHECK(((unsigned char *)p)[size - 1] == 0 && ((unsigned char *)p)[0] == 0);
        fill(p, size, n);
        g_blocks[n++] = p;
    }
    CHECKF(err == ENOMEM, "%s(%zu) failed after %zu blocks with errno %d (%s), expected ENOMEM",
           names[how], size, n, err, strerror(err));
    CHECKF(n > 0, "%s(%zu): not even one block under the limit", names[how], size);
    /* Growing a block in place or by moving must fail cleanly too, keeping the block. */
    void *grown = realloc(g_blocks[0], 64 * 1024 * MiB);
    CHECK(grown == NULL && errno == ENOMEM);
    for (size_t i = 0; i < n; i++)
        verify(g_blocks[i], size, i);
    for (size_t i = 0; i < n; i++)
        free(g_blocks[i]);
    /* Memory came back: every family allocates again. */
    void *a = malloc(100), *b = malloc(300 * 1024), *c = malloc(8 * MiB);
    CHECKF(a && b && c, "after freeing %zu blocks of %zu B: malloc(100) %p, malloc(300 KiB) %p, "
           "malloc(8 MiB) %p", n, size, a, b, c);
    free(a);
    free(b);
    free(c);
    return n;
}

static void *thread_main(void *arg)
{
    size_t size = (size_t)(uintptr_t)arg;
    return (void *)(uintptr_t)exhaust(size, 0);
}

static void *idle_thread(void *arg)
{
    free(malloc(100));
    return arg;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    g_blocks = calloc(MAX_BLOCKS, sizeof *g_blocks);
    CHECK(g_blocks != NULL);
    memset(g_blocks, 0, MAX_BLOCKS * sizeof *g_blocks); /* mapped before the limit */
    /* A thread started and joined before the limit: glibc caches its stack for reuse. */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, idle_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);

    size_t limit = mapped_bytes() + 96 * MiB;
    struct rlimit rl = {limit, limit};
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
    printf("test_oom: address space limited to %zu MiB (%zu MiB mapped at start)\n",
           limit / MiB, (limit - 96 * MiB) / MiB);

    static const size_t sizes[] = {24, 200, 3000, 200 * 1024, 3 * MiB};
    g_group = "oom: main thread";
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        for (int how = 0; how < 5; how++) {
            if (how == 4 && sizes[k] % 4096 != 0 && sizes[k] < 4096)
                continue; /* aligned_alloc wants a multiple of the alignment (C11) */
            size_t n = exhaust(sizes[k], how);
            if (how == 0)
                printf("  %8zu B blocks: %zu before ENOMEM\n", sizes[k], n);
        }
    }
    g_group = "oom: second thread";
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        pthread_t th;
        int rc = pthread_create(&th, NULL, thread_main, (void *)(uintptr_t)sizes[k]);
        CHECKF(rc == 0, "pthread_create under the limit: %s", strerror(rc));
        void *res;
        CHECK(pthread_join(th, &res) == 0);
        CHECK((size_t)(uintptr_t)res > 0);
    }
    printf("test_oom: ok\n");
    return 0;
}
