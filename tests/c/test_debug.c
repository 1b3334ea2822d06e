/* Debug mode (ARENALLOC_DEBUG=1): the errors it exists to catch, each in a child process
 * started with the variable set (debug mode is fixed when the allocator initialises), and
 * the behaviour a correct program sees: fill patterns, exact usable sizes, realloc that
 * keeps contents, aligned and large blocks, threads and fork.
 *
 *   test_debug            run every case (re-executing itself per case)
 *   test_debug CASE       run one case in this process (ARENALLOC_DEBUG must be set) */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arenalloc.h"
#include "check.h"

#ifndef TEST_AGAINST_GLIBC

/* Keeps GCC from seeing through the misuse (and from warning about it). */
static void *volatile g_sink;
__attribute__((noinline)) static char *opaque(void *p)
{
    g_sink = p;
    return (char *)g_sink;
}

/* ---- cases that must abort ---------------------------------------------- */

static void overrun_by_one(void)
{
    char *p = opaque(malloc(24));
    p[24] = 'x';
    free(p);
}

static void overrun_medium(void)
{
    char *p = opaque(malloc(5000));
    memset(p, 1, 5003);
    free(p);
}

static void underrun(void)
{
    char *p = opaque(malloc(100));
    p[-1] = 'x';
    free(p);
}

static void overrun_seen_by_realloc(void)
{
    char *p = opaque(malloc(40));
    p[41] = 'x';
    p = realloc(p, 400);
    free(p);
}

static void use_after_free_write(void)
{
    char *p = opaque(malloc(64));
    free(p);
    p[10] = 'x'; /* not the link word: the default mode would miss this */
    /* The block leaves the quarantine after 1024 more frees, and is checked then. */
    for (int i = 0; i < 3000; i++)
        free(opaque(malloc(32)));
}

static void api_mismatch_pymem_free(void)
{
    char *p = opaque(PyMem_Malloc(50));
    free(p);
}

static void api_mismatch_pyobject_free(void)
{
    char *p = opaque(PyMem_Malloc(50));
    PyObject_Free(p);
}

static void api_mismatch_raw(void)
{
    char *p = opaque(malloc(50));
    PyMem_RawFree(p);
}

static void double_free(void)
{
    char *p = opaque(malloc(70));
    free(p);
    free(p);
}

static void double_free_large(void)
{
    char *p = opaque(malloc(3u << 20));
    free(p);
    free(p);
}

static void interior_pointer(void)
{
    char *p = opaque(malloc(70));
    free(p + 8);
}

/* ---- a correct program under debug mode --------------------------------- */

static void *thread_work(void *arg)
{
    char **shared = arg;
    for (int i = 0; i < 2000; i++) {
        char *p = malloc((size_t)(i % 700) + 1);
        CHECK(p != NULL);
        memset(p, 7, (size_t)(i % 700) + 1);
        free(p);
    }
    free(*shared); /* a block of the main thread */
    return NULL;
}

static void correct_program(void)
{
    unsigned char *p = (unsigned char *)malloc(100);
    CHECK(p != NULL && (uintptr_t)p % 16 == 0);
    for (int i = 0; i < 100; i++)
        CHECKF(p[i] == 0xCD, "fresh byte %d is 0x%02x, expected 0xCD", i, p[i]);
    CHECK(malloc_usable_size(p) == 100);
    memset(p, 'a', 100);
    p = realloc(p, 5000);
    CHECK(p != NULL && malloc_usable_size(p) == 5000);
    for (int i = 0; i < 100; i++)
        CHECK(p[i] == 'a');
    CHECK(p[100] == 0xCD);
    p = realloc(p, 10);
    CHECK(p != NULL && p[9] == 'a' && malloc_usable_size(p) == 10);
    free(p);

    unsigned char *z = calloc(300, 7);
    CHECK(z != NULL);
    for (int i = 0; i < 2100; i++)
        CHECK(z[i] == 0);
    free(z);

    for (size_t align = 32; align <= 65536; align *= 2) {
        void *a = NULL;
        CHECK(posix_memalign(&a, align, 200) == 0);
        CHECKF((uintptr_t)a % align == 0, "posix_memalign(%zu) gave %p", align, a);
        memset(a, 1, 200);
        free(a);
        a = aligned_alloc(align, align * 2);
        CHECK(a != NULL && (uintptr_t)a % align == 0);
        free(a);
    }

    char *big = malloc(6u << 20);
    CHECK(big != NULL);
    memset(big, 3, 6u << 20);
    big = realloc(big, 9u << 20);
    CHECK(big != NULL && big[(6u << 20) - 1] == 3);
    free(big);

    char *py = PyMem_Malloc(40), *obj = PyObject_Malloc(40), *raw = PyMem_RawMalloc(40);
    CHECK(py && obj && raw);
    py = PyMem_Realloc(py, 400);
    CHECK(py != NULL);
    PyMem_Free(py);
    PyObject_Free(obj);
    PyMem_RawFree(raw);

    /* Threads, and a block freed by another thread. */
    pthread_t th[4];
    char *shared[4];
    for (int t = 0; t < 4; t++) {
        shared[t] = malloc(64);
        CHECK(shared[t] != NULL);
        CHECK(pthread_create(&th[t], NULL, thread_work, &shared[t]) == 0);
    }
    for (int t = 0; t < 4; t++)
        CHECK(pthread_join(th[t], NULL) == 0);

    /* fork: the child allocates and frees (the quarantine lock must not be inherited held). */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        for (int i = 0; i < 3000; i++)
            free(malloc(48));
        _exit(0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* Many frees: blocks cycle through the quarantine and are checked on the way out. */
    for (int i = 0; i < 5000; i++) {
        char *q = malloc((size_t)(i % 3000) + 1);
        CHECK(q != NULL);
        q[0] = 1;
        free(q);
    }
    printf("correct program ok\n");
}

struct debug_case {
    const char *name;
    void (*fn)(void);
    const char *func;   /* function the diagnostic names; NULL: must exit 0 */
    const char *phrase; /* what it must say */
};

static const struct debug_case g_cases[] = {
    {"overrun_by_one", overrun_by_one, "free", "buffer overrun"},
    {"overrun_medium", overrun_medium, "free", "buffer overrun"},
    {"underrun", underrun, "free", "buffer underrun"},
    {"overrun_seen_by_realloc", overrun_seen_by_realloc, "realloc", "buffer overrun"},
    {"use_after_free_write", use_after_free_write, "free", "use after free"},
    {"api_mismatch_pymem_free", api_mismatch_pymem_free, "free", "API mismatch"},
    {"api_mismatch_pyobject_free", api_mismatch_pyobject_free, "PyObject_Free", "API mismatch"},
    {"api_mismatch_raw", api_mismatch_raw, "PyMem_RawFree", "API mismatch"},
    {"double_free", double_free, "free", "double free"},
    {"double_free_large", double_free_large, "free", "double free"},
    {"interior_pointer", interior_pointer, "free", "not the start"},
    {"correct_program", correct_program, NULL, NULL},
};
#define NCASES (sizeof g_cases / sizeof g_cases[0])

/* Runs `self CASE` with ARENALLOC_DEBUG=1; checks how it ended and what it printed. */
static int run_case(const char *self, const struct debug_case *c)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        setenv("ARENALLOC_DEBUG", "1", 1);
        alarm(30);
        execl(self, self, c->name, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[2048];
    size_t len = 0;
    ssize_t r;
    while (len < sizeof buf - 1 && (r = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(fds[0]);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    int ok;
    if (c->func == NULL) {
        ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 && len == 0;
    } else {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "arenalloc: %s(0x", c->func);
        ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strncmp(buf, prefix, strlen(prefix)) == 0 &&
             strstr(buf, c->phrase) != NULL && strchr(buf, '\n') == buf + len - 1;
        /* Every report names the block's size and serial number, except those about
         * pointers that are not debug blocks at all. */
        if (ok && strstr(c->phrase, "not the start") == NULL && strstr(c->phrase, "API") == NULL)
            ok = strstr(buf, " bytes, serial ") != NULL;
    }
    printf("%s %s", ok ? "PASS" : "FAIL", c->name);
    if (!ok)
        printf(" (status 0x%x, stderr: \"%s\")", st, buf);
    else if (len)
        printf(": %.*s", (int)(len - 1), buf);
    printf("\n");
    return ok;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1) {
        for (size_t i = 0; i < NCASES; i++) {
            if (strcmp(argv[1], g_cases[i].name) == 0) {
                g_group = g_cases[i].name;
                g_cases[i].fn();
                return 0;
            }
        }
        fprintf(stderr, "test_debug: no case %s\n", argv[1]);
        return 2;
    }
    int failed = 0;
    for (size_t i = 0; i < NCASES; i++)
        failed += !run_case("/proc/self/exe", &g_cases[i]);
    printf("test_debug: %zu cases, %d failed\n", NCASES, failed);
    return failed != 0;
}

#else
int main(void)
{
    CHECK(1); /* (keeps check.h's helpers used) */
    printf("test_debug: skipped (glibc build)\n");
    return 0;
}
#endif
