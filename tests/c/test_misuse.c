/*
 * test_misuse.c - heap misuse must end in exactly one diagnostic line and SIGABRT.
 *
 * arenalloc promises (arenalloc.h, src/diag.rs) that heap misuse is never silent: it
 * prints one line on stderr,
 *
 *     arenalloc: <func>(0x<hex pointer>): <what is wrong>
 *
 * and calls abort().  Each test below commits one kind of misuse in a forked child
 * (alarm(10) against hangs, RLIMIT_CORE 0, stderr captured through a pipe) and checks
 * that the child
 *   - died of SIGABRT (not SIGSEGV, not SIGALRM, not a normal exit),
 *   - wrote exactly one line to stderr, of the form above,
 *   - named the expected C function (<func>),
 *   - printed the pointer involved (when the test knows it: the child records it in a
 *     shared page before the misuse),
 *   - and said what was wrong (<what> contains the expected phrase).
 *
 * Tests of misuse arenalloc does not (yet) catch, or catches with another diagnostic
 * than the one it should print, are compiled in only with -D<macro> (see KNOWN GAPS
 * below; -DARENALLOC_EXPECT_ALL_GAPS enables them all); the default build passes.
 * Built with -DTEST_AGAINST_GLIBC (run.sh --glibc) the program only says it is skipped:
 * glibc's diagnostics are another matter.
 *
 * Build (from the repository root):
 *   gcc -O2 -g -Wall -Wextra -Werror -I include -fno-builtin-malloc -fno-builtin-free \
 *       -fno-builtin-realloc -fno-builtin-calloc tests/c/test_misuse.c -o test_misuse \
 *       -L target/release -larenalloc -Wl,-rpath,$PWD/target/release -lpthread
 * Run: ./test_misuse [-v] [substring...]
 *   -v prints the diagnostic each child wrote; substrings select tests by name.
 * One line per test (PASS/FAIL), a summary, exit status 1 if any test failed.
 */
#define _GNU_SOURCE
#ifdef TEST_AGAINST_GLIBC
#include <stdio.h>
int main(void)
{
    printf("test_misuse: skipped (glibc build: arenalloc's diagnostics only)\n");
    return 0;
}
#else
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include("arenalloc.h")
#include "arenalloc.h"
#define HAVE_ARENALLOC_H 1
#endif
#endif
#ifndef HAVE_ARENALLOC_H
void PyMem_RawFree(void *ptr);
void PyMem_Free(void *ptr);
void PyObject_Free(void *ptr);
void *PyMem_RawRealloc(void *ptr, size_t new_size);
void *PyMem_Realloc(void *ptr, size_t new_size);
void *PyObject_Realloc(void *ptr, size_t new_size);
void *PyMem_Malloc(size_t size);
void *PyObject_Malloc(size_t size);
#endif

#include "check.h"

/* Every test misuses the heap on purpose; GCC must neither warn about it nor reason
 * about the pointers (values go through opaque_ptr()). */
#if defined(__clang__)
#pragma GCC diagnostic ignored "-Wunknown-warning-option"
#endif
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wmismatched-dealloc"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
/* Layout facts of arenalloc (src/config.rs): arenas are 4 MiB mappings aligned to
 * 4 MiB whose first 16 KiB slot is the arena header and pool table; requests above
 * 1 MiB get a mapping of their own (large blocks), kept in a reuse cache when freed
 * if at most 64 MiB long. */
#define ARENA_SIZE (4 * MiB)
#define LARGE_UNCACHED (100 * MiB)

/* Hide a value from the optimiser: no constant folding, no provenance, no elision. */
__attribute__((noinline)) static void *opaque_ptr(void *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

__attribute__((noinline)) static size_t opaque_size(size_t n)
{
    __asm__ volatile("" : "+r"(n) : : "memory");
    return n;
}

/* ------------------------------------------------------------------------ */
/* The child runner                                                          */
/* ------------------------------------------------------------------------ */

/* Shared (MAP_SHARED) between the parent and the forked children: the pointer the
 * diagnostic must name, as the child knows it. */
struct shared {
    volatile uintptr_t ptr;
    volatile int ptr_set;
    volatile int stage; /* how far the child got, for failure messages */
};
static struct shared *g_sh;

/* In a child: the diagnostic must print this pointer. */
static void expect_ptr(const void *p)
{
    g_sh->ptr = (uintptr_t)p;
    g_sh->ptr_set = 1;
}

static void stage(int s) { g_sh->stage = s; }

/* What one test expects of its child. */
struct test {
    const char *name;
    void (*child)(void);
    const char *func;    /* the C function the diagnostic must name */
    const char *phrase;  /* <what> must contain this ... */
    const char *phrase2; /* ... or this (NULL: no alternative) */
};

static int g_verbose;

/* Reads everything from fd into buf (NUL-terminated, truncated at cap - 1). */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == cap - 1) {
            char sink[256]; /* drain, so the child never blocks on a full pipe */
            while (read(fd, sink, sizeof sink) > 0) {
            }
            break;
        }
    }
    buf[len] = '\0';
    return len;
}

/* Checks one diagnostic against t; on failure writes the reason to why. */
static int check_diag(const struct test *t, const char *out, size_t len, char *why,
                      size_t whylen)
{
    static const char prefix[] = "arenalloc: ";
    const char *nl = memchr(out, '\n', len);
    if (len == 0) {
        snprintf(why, whylen, "nothing on stderr");
        return 0;
    }
    if (nl == NULL || (size_t)(nl - out) != len - 1) {
        snprintf(why, whylen, "stderr is not exactly one line");
        return 0;
    }
    if (strncmp(out, prefix, sizeof prefix - 1) != 0) {
        snprintf(why, whylen, "line does not start with \"%s\"", prefix);
        return 0;
    }
    const char *f = out + sizeof prefix - 1;
    const char *paren = strchr(f, '(');
    if (paren == NULL || paren > nl) {
        snprintf(why, whylen, "no \"(\" after the function name");
        return 0;
    }
    size_t flen = (size_t)(paren - f);
    if (flen != strlen(t->func) || strncmp(f, t->func, flen) != 0) {
        snprintf(why, whylen, "names function \"%.*s\", expected \"%s\"", (int)flen, f,
                 t->func);
        return 0;
    }
    if (strncmp(paren, "(0x", 3) != 0) {
        snprintf(why, whylen, "pointer does not start with 0x");
        return 0;
    }
    const char *hex = paren + 3, *h = hex;
    uintptr_t v = 0;
    while ((*h >= '0' && *h <= '9') || (*h >= 'a' && *h <= 'f')) {
        v = v * 16 + (uintptr_t)(*h <= '9' ? *h - '0' : *h - 'a' + 10);
        h++;
    }
    if (h == hex || h - hex > 16 || strncmp(h, "): ", 3) != 0) {
        snprintf(why, whylen, "malformed \"(0x<hex>): \" part");
        return 0;
    }
    if (g_sh->ptr_set && v != g_sh->ptr) {
        snprintf(why, whylen, "printed pointer 0x%jx, expected 0x%jx", (uintmax_t)v,
                 (uintmax_t)g_sh->ptr);
        return 0;
    }
    const char *what = h + 3;
    size_t wlen = (size_t)(nl - what);
    char wbuf[512];
    snprintf(wbuf, sizeof wbuf, "%.*s", (int)wlen, what);
    if (wlen == 0 || (strstr(wbuf, t->phrase) == NULL &&
                      (t->phrase2 == NULL || strstr(wbuf, t->phrase2) == NULL))) {
        snprintf(why, whylen, "message lacks \"%s\"%s%s%s", t->phrase,
                 t->phrase2 ? " (or \"" : "", t->phrase2 ? t->phrase2 : "",
                 t->phrase2 ? "\")" : "");
        return 0;
    }
    return 1;
}

/* Runs t->child in a forked child; returns 1 if it died as t expects. */
static int run_test(const struct test *t)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    g_sh->ptr = 0;
    g_sh->ptr_set = 0;
    g_sh->stage = 0;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        g_in_child = 1;
        g_group = t->name;
        struct rlimit nocore = {0, 0};
        setrlimit(RLIMIT_CORE, &nocore); /* aborts must not dump core */
        signal(SIGABRT, SIG_DFL);
        signal(SIGSEGV, SIG_DFL);
        signal(SIGALRM, SIG_DFL);
        alarm(10); /* a hang kills the child with SIGALRM */
        close(fds[0]);
        if (dup2(fds[1], 2) < 0)
            _exit(3);
        close(fds[1]);
        t->child();
        _exit(0); /* reaching this is a failure: the misuse went undetected */
    }
    close(fds[1]);
    char out[4096];
    size_t len = read_all(fds[0], out, sizeof out);
    close(fds[0]);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);

    char why[600] = "";
    int ok = 0;
    if (WIFEXITED(st))
        snprintf(why, sizeof why, "child exited normally (status %d, stage %d): misuse not "
                 "detected", WEXITSTATUS(st), g_sh->stage);
    else if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
        snprintf(why, sizeof why, "child killed by signal %d (%s) at stage %d, expected SIGABRT",
                 WTERMSIG(st), strsignal(WTERMSIG(st)), g_sh->stage);
    else
        ok = check_diag(t, out, len, why, sizeof why);

    /* The child's stderr, on one line, for the report. */
    char shown[1024];
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < sizeof shown; i++)
        shown[n++] = out[i] == '\n' ? '|' : out[i];
    shown[n] = '\0';
    if (ok && g_verbose)
        printf("PASS %s    [stage %d] %s\n", t->name, g_sh->stage, shown);
    else if (ok)
        printf("PASS %s\n", t->name);
    else
        printf("FAIL %s: %s; child stderr: \"%s\"\n", t->name, why, shown);
    fflush(stdout);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Children: one misuse each                                                 */
/* ------------------------------------------------------------------------ */

static char g_static_buf[256] __attribute__((aligned(64)));

static char *checked_malloc(size_t n)
{
    char *p = malloc(opaque_size(n));
    CHECK(p != NULL);
    memset(p, 0x5a, n < 256 ? n : 256); /* a live block with data in its first word */
    return opaque_ptr(p);
}

static void free_expect(void *p)
{
    expect_ptr(p);
    free(opaque_ptr(p));
}

/* --- pointers arenalloc never handed out --------------------------------- */

static void c_free_stack(void)
{
    char buf[256] __attribute__((aligned(64)));
    memset(buf, 1, sizeof buf);
    free_expect(buf + 64);
}

static void c_free_static(void) { free_expect(g_static_buf + 64); }

static void c_free_wild(void) { free_expect((void *)(uintptr_t)0x1000); }

static char *foreign_page(void)
{
    char *m = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    memset(m, 0, 4 * 4096);
    return m + 4096;
}

static void c_free_mmap(void) { free_expect(foreign_page()); }

static void c_free_mmap_off(void) { free_expect(foreign_page() + 48); }

static void c_realloc_foreign(void)
{
    char *p = foreign_page();
    expect_ptr(p);
    (void)opaque_ptr(realloc(opaque_ptr(p), 100));
}

static void c_usable_size_foreign(void)
{
    char *p = foreign_page();
    expect_ptr(p);
    (void)opaque_size(malloc_usable_size(opaque_ptr(p)));
}

/* A large block too big for the reuse cache is unmapped when freed: freeing it again
 * is freeing memory arenalloc no longer has. */
static void c_free_unmapped_large(void)
{
    char *p = checked_malloc(LARGE_UNCACHED);
    free(p);
    stage(1);
    free_expect(p);
}

/* --- interior pointers of live blocks ------------------------------------ */

static void c_free_interior_small(void) { free_expect(checked_malloc(100) + 16); }
static void c_free_interior_small_8(void) { free_expect(checked_malloc(24) + 8); }
static void c_free_interior_medium(void) { free_expect(checked_malloc(3000) + 16); }
static void c_free_interior_medium_1(void) { free_expect(checked_malloc(70000) + 1); }
static void c_free_interior_1mib(void) { free_expect(checked_malloc(MiB) + 4096); }

static void c_realloc_interior(void)
{
    char *p = checked_malloc(100) + 16;
    expect_ptr(p);
    (void)opaque_ptr(realloc(opaque_ptr(p), 200));
}

static void c_usable_size_interior(void)
{
    char *p = checked_malloc(3000) + 16;
    expect_ptr(p);
    (void)opaque_size(malloc_usable_size(opaque_ptr(p)));
}

/* An arena's first 16 KiB are its header and pool table: arenalloc memory, no block. */
static char *arena_header_of(const char *block)
{
    return (char *)(((uintptr_t)block & ~(uintptr_t)(ARENA_SIZE - 1)) + 256);
}

static void c_free_arena_header(void) { free_expect(arena_header_of(checked_malloc(48))); }

static void c_realloc_arena_header(void)
{
    char *p = arena_header_of(checked_malloc(3000));
    expect_ptr(p);
    (void)opaque_ptr(realloc(opaque_ptr(p), 10));
}

/* A pool of a medium class with blocks of a page or more hands out (carves) one block at
 * a time: in a fresh pool, only the first block was ever handed out and the last one
 * never was.  20000 bytes is served by 20 KiB blocks, eight to a 160 KiB pool; the class
 * is used by no other test, so the child's first malloc of it claims a fresh pool and
 * gets its first block. */
static void c_free_never_allocated(void)
{
    char *p = checked_malloc(20000);
    char *last = p + 7 * 20 * KiB;
    memset(last, 0, 16); /* whatever the slot held before, the word now reads "not free" */
    free_expect(last);
}

/* --- large blocks (over 1 MiB, a mapping each) ---------------------------- */

static void c_large_double_free(void)
{
    char *p = checked_malloc(3 * MiB);
    free(p);
    stage(1);
    free_expect(p);
}

static void c_large_interior(void) { free_expect(checked_malloc(3 * MiB) + 4096); }

static void c_large_header_page(void) { free_expect(checked_malloc(3 * MiB) - 16); }

static void c_large_interior_realloc(void)
{
    char *p = checked_malloc(5 * MiB) + 8192;
    expect_ptr(p);
    (void)opaque_ptr(realloc(opaque_ptr(p), 6 * MiB));
}

static void c_large_freed_realloc(void)
{
    char *p = checked_malloc(3 * MiB);
    free(p);
    stage(1);
    expect_ptr(p);
    (void)opaque_ptr(realloc(opaque_ptr(p), 4 * MiB));
}

static void c_large_freed_usable_size(void)
{
    char *p = checked_malloc(3 * MiB);
    free(p);
    stage(1);
    expect_ptr(p);
    (void)opaque_size(malloc_usable_size(opaque_ptr(p)));
}

/* --- double frees of pool blocks ------------------------------------------ */

static void double_free_in_a_row(size_t n)
{
    char *anchor = checked_malloc(n); /* keeps the pool alive */
    char *a = checked_malloc(n);
    free(a);
    stage(1);
    free_expect(a);
    free(anchor);
}

static void c_double_free_24(void) { double_free_in_a_row(24); }
static void c_double_free_0(void) { double_free_in_a_row(0); }
static void c_double_free_512(void) { double_free_in_a_row(512); }
static void c_double_free_3000(void) { double_free_in_a_row(3000); }
static void c_double_free_200k(void) { double_free_in_a_row(200 * KiB); }
static void c_double_free_1mib(void) { double_free_in_a_row(MiB); }

/* free(a); free(b); free(a): a is not the head of the free list any more. */
static void c_double_free_aba(void)
{
    char *anchor = checked_malloc(64);
    char *a = checked_malloc(64);
    char *b = checked_malloc(64);
    free(a);
    free(b);
    stage(1);
    free_expect(a);
    free(anchor);
}

/* free(a), then many frees of the same class, then free(a) again: a is deep in its pool's
 * free list, behind blocks of its own pool freed after it, and blocks of other pools
 * were freed in between.  Every fourth block stays allocated, so no pool (a's included)
 * empties and goes back to its arena (that case is c_double_free_released_pool). */
static void deep_double_free(size_t size, int count)
{
    char **v = malloc(sizeof *v * (size_t)count);
    CHECK(v != NULL);
    for (int i = 0; i < count; i++)
        v[i] = checked_malloc(size);
    int ai = count / 2 + 1; /* not a multiple of 4 */
    char *a = v[ai];
    free(a);
    for (int i = 0; i < count; i++)
        if (i != ai && i % 4 != 0)
            free(v[i]);
    stage(1);
    free_expect(a);
}

static void c_double_free_deep_48(void) { deep_double_free(48, 3000); }
static void c_double_free_deep_3000(void) { deep_double_free(3000, 300); }

/* The same, with the frees done in the order the blocks were allocated: a's link is
 * overwritten by nobody, and the blocks freed after a all go in front of it. */
static void c_double_free_deep_same_pool(void)
{
    char *v[64];
    for (int i = 0; i < 64; i++)
        v[i] = checked_malloc(128);
    free(v[10]);
    for (int i = 11; i < 64; i++)
        free(v[i]);
    stage(1);
    free_expect(v[10]);
}

/* Every block of a's class freed, a first: a's pool empties and, the heap keeping one
 * other empty pool of the class already, goes back to its arena before a is freed again.
 * Caught, but as a pointer to no block (the pool is gone), not as a double free. */
static void c_double_free_released_pool(void)
{
    enum { N = 2000 };
    static char *v[N];
    for (int i = 0; i < N; i++)
        v[i] = checked_malloc(48);
    char *a = v[N / 2];
    free(a);
    for (int i = 0; i < N; i++)
        if (i != N / 2)
            free(v[i]);
    stage(1);
    free_expect(a);
}

/* A calloc'd block (cleared memory) freed twice. */
static void c_double_free_calloc(void)
{
    char *anchor = checked_malloc(80);
    char *a = opaque_ptr(calloc(1, 80));
    CHECK(a != NULL);
    free(a);
    stage(1);
    free_expect(a);
    free(anchor);
}

/* realloc(p, 0) frees p; freeing p afterwards is a double free. */
static void c_double_free_after_realloc0(void)
{
    char *anchor = checked_malloc(40);
    char *a = checked_malloc(40);
    (void)opaque_ptr(realloc(a, 0));
    stage(1);
    free_expect(a);
    free(anchor);
}

/* realloc moved the block (it grew out of its class): the old pointer is free. */
static void c_double_free_after_realloc_move(void)
{
    char *anchor = checked_malloc(40);
    char *a = checked_malloc(40);
    char *b = opaque_ptr(realloc(a, 4000));
    CHECK(b != NULL && b != a);
    stage(1);
    free_expect(a);
    free(anchor);
}

/* A block freed through PyObject_Free, then with free (the families share one heap). */
static void c_double_free_pyobject(void)
{
    char *anchor = checked_malloc(40);
    char *a = opaque_ptr(PyObject_Malloc(40));
    CHECK(a != NULL);
    PyObject_Free(a);
    stage(1);
    free_expect(a);
    free(anchor);
}

/* realloc of a small block that was freed, to a size that needs a new block. */
static void c_realloc_freed_small_grow(void)
{
    char *anchor = checked_malloc(100);
    char *a = checked_malloc(100);
    free(a);
    stage(1);
    expect_ptr(a);
    (void)opaque_ptr(realloc(opaque_ptr(a), 5000));
    free(anchor);
}

/* --- use after free: a write into a freed block's first word ---------------- */

static uintptr_t g_uaf_word;
static int g_uaf_victim_is_a; /* corrupt a (second on the free list) rather than b */

/* free(a); free(b); write g_uaf_word into the victim's first word; then malloc of the
 * same size: the allocator pops b, then a, and must notice the bad link when it pops
 * the victim. */
static void uaf_child(void)
{
    char *anchor = checked_malloc(48);
    char *a = checked_malloc(48);
    char *b = checked_malloc(48);
    free(a);
    free(b);
    char *victim = g_uaf_victim_is_a ? a : b;
    uintptr_t w = g_uaf_word;
    memcpy(opaque_ptr(victim), &w, sizeof w);
    expect_ptr(victim);
    stage(1);
    for (int i = 0; i < 4; i++) {
        (void)opaque_ptr(malloc(opaque_size(48)));
        stage(2 + i);
    }
    free(anchor);
}

static void c_uaf_0x41(void)
{
    g_uaf_word = (uintptr_t)0x4141414141414141ULL;
    uaf_child();
}

static void c_uaf_zero(void)
{
    g_uaf_word = 0;
    uaf_child();
}

static void c_uaf_all_ones(void)
{
    g_uaf_word = ~(uintptr_t)0;
    uaf_child();
}

static void c_uaf_stack_ptr(void)
{
    int local = 0;
    g_uaf_word = (uintptr_t)opaque_ptr(&local);
    uaf_child();
}

static void c_uaf_heap_ptr(void)
{
    g_uaf_word = (uintptr_t)checked_malloc(48); /* a live block of the same class */
    uaf_child();
}

static void c_uaf_small_int(void)
{
    g_uaf_word = 1;
    uaf_child();
}

static void c_uaf_second_on_list(void)
{
    g_uaf_victim_is_a = 1;
    g_uaf_word = (uintptr_t)0x4141414141414141ULL;
    uaf_child();
}

/* memset of the whole freed block, as a stale memset(p, 0, n) would do. */
static void c_uaf_memset_block(void)
{
    char *anchor = checked_malloc(200);
    char *a = checked_malloc(200);
    free(a);
    memset(opaque_ptr(a), 0, 200);
    expect_ptr(a);
    stage(1);
    (void)opaque_ptr(malloc(opaque_size(200)));
    free(anchor);
}

/* The corrupted block is found by calloc's path too; the diagnostic names malloc (the
 * allocation path, whatever the entry point). */
static void c_uaf_then_calloc(void)
{
    char *anchor = checked_malloc(64);
    char *a = checked_malloc(64);
    free(a);
    memset(opaque_ptr(a), 0x41, 8);
    expect_ptr(a);
    stage(1);
    (void)opaque_ptr(calloc(1, 64));
    free(anchor);
}

/* --- cross-thread double frees ---------------------------------------------- */

/* A class nothing but these tests uses (not the C library's internal allocations made
 * while a thread is created, which could otherwise take the freed block back). */
#define XT_SIZE 432

static void *g_xt_block;
static int g_xt_frees; /* frees each freeing thread does */

static void *xt_free_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < g_xt_frees; i++)
        free(opaque_ptr(g_xt_block));
    return NULL;
}

static void xt_run_thread(int frees)
{
    pthread_t th;
    g_xt_frees = frees;
    CHECK(pthread_create(&th, NULL, xt_free_thread, NULL) == 0);
    CHECK(pthread_join(th, NULL) == 0);
}

/* The owner allocates blocks of the class until its heap collects the remote frees (the
 * slow path collects them whenever a pool runs out of carved blocks). */
static void xt_owner_allocates(size_t size)
{
    stage(10);
    for (int i = 0; i < 20000; i++)
        (void)opaque_ptr(malloc(opaque_size(size)));
    stage(11);
}

/* Thread B frees the owner's block twice. */
static void c_xt_double_free_same_thread(void)
{
    char *anchor = checked_malloc(XT_SIZE);
    g_xt_block = checked_malloc(XT_SIZE);
    expect_ptr(g_xt_block);
    xt_run_thread(2);
    xt_owner_allocates(XT_SIZE);
    free(anchor);
}

/* Threads B and C free it once each. */
static void c_xt_double_free_two_threads(void)
{
    char *anchor = checked_malloc(XT_SIZE);
    g_xt_block = checked_malloc(XT_SIZE);
    expect_ptr(g_xt_block);
    xt_run_thread(1);
    xt_run_thread(1);
    xt_owner_allocates(XT_SIZE);
    free(anchor);
}

/* B frees a, B frees another block x, B frees a again: the remote list is a -> x -> a. */
static void *g_xt_other;
static void *xt_free_axa(void *arg)
{
    (void)arg;
    free(opaque_ptr(g_xt_block));
    free(opaque_ptr(g_xt_other));
    free(opaque_ptr(g_xt_block));
    return NULL;
}

static void c_xt_double_free_interleaved(void)
{
    char *anchor = checked_malloc(XT_SIZE);
    g_xt_block = checked_malloc(XT_SIZE);
    g_xt_other = checked_malloc(XT_SIZE);
    expect_ptr(g_xt_block);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, xt_free_axa, NULL) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    xt_owner_allocates(XT_SIZE);
    free(anchor);
}

/* A medium block freed twice by another thread. */
static void c_xt_double_free_medium(void)
{
    char *anchor = checked_malloc(3000);
    g_xt_block = checked_malloc(3000);
    expect_ptr(g_xt_block);
    xt_run_thread(2);
    xt_owner_allocates(3000);
    free(anchor);
}

/* The owner frees its block, then another thread frees it again. */
static void c_xt_local_then_remote(void)
{
    char *anchor = checked_malloc(XT_SIZE);
    g_xt_block = checked_malloc(XT_SIZE);
    expect_ptr(g_xt_block);
    free(g_xt_block);
    stage(1);
    xt_run_thread(1);
    xt_owner_allocates(XT_SIZE);
    free(anchor);
}

/* A thread frees a block owned by the main thread twice while the main thread is still
 * running; the main thread then allocates another class (any slow path collects). */
static void c_xt_double_free_collect_other_class(void)
{
    char *anchor = checked_malloc(XT_SIZE);
    g_xt_block = checked_malloc(XT_SIZE);
    expect_ptr(g_xt_block);
    xt_run_thread(2);
    xt_owner_allocates(1000);
    free(anchor);
}

/* The owner thread exits with a live block; another thread frees it twice; a new thread
 * adopts the dead heap and allocates until it collects. */
static void *xt_alloc_thread(void *arg)
{
    (void)arg;
    g_xt_block = checked_malloc(XT_SIZE);
    (void)checked_malloc(XT_SIZE); /* keeps the pool alive */
    return NULL;
}

static void *xt_adopt_and_allocate(void *arg)
{
    (void)arg;
    xt_owner_allocates(XT_SIZE);
    return NULL;
}

static void c_xt_double_free_dead_owner(void)
{
    pthread_t th;
    CHECK(pthread_create(&th, NULL, xt_alloc_thread, NULL) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    expect_ptr(g_xt_block);
    xt_run_thread(2);
    CHECK(pthread_create(&th, NULL, xt_adopt_and_allocate, NULL) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    stage(20); /* the adopter did not collect it: the main thread tries too */
    xt_owner_allocates(XT_SIZE);
}

/* --- the Python allocator families on a pointer arenalloc never handed out --- */

static void c_pymem_free_foreign(void) { char *p = foreign_page(); expect_ptr(p); PyMem_Free(opaque_ptr(p)); }
static void c_pyobject_free_foreign(void) { char *p = foreign_page(); expect_ptr(p); PyObject_Free(opaque_ptr(p)); }
static void c_pymem_rawfree_foreign(void) { char *p = foreign_page(); expect_ptr(p); PyMem_RawFree(opaque_ptr(p)); }
static void c_pyobject_free_stack(void)
{
    char buf[64];
    memset(buf, 0, sizeof buf);
    expect_ptr(buf + 16);
    PyObject_Free(opaque_ptr(buf + 16));
}
static void c_pymem_realloc_foreign(void)
{
    char *p = foreign_page();
    expect_ptr(p);
    (void)opaque_ptr(PyMem_Realloc(opaque_ptr(p), 100));
}
static void c_pyobject_realloc_foreign(void)
{
    char *p = foreign_page();
    expect_ptr(p);
    (void)opaque_ptr(PyObject_Realloc(opaque_ptr(p), 100));
}
static void c_pymem_rawrealloc_foreign(void)
{
    char *p = foreign_page();
    expect_ptr(p);
    (void)opaque_ptr(PyMem_RawRealloc(opaque_ptr(p), 100));
}

/* Misuse of arenalloc's own blocks through the Python functions is caught by the shared
 * free path; the diagnostic names "free" (the Python entry points hand their own blocks
 * to it). */
static void c_pyobject_free_interior(void)
{
    char *p = opaque_ptr(PyObject_Malloc(64));
    CHECK(p != NULL);
    expect_ptr(p + 16);
    PyObject_Free(opaque_ptr(p + 16));
}

static void c_pymem_free_double(void)
{
    char *anchor = opaque_ptr(PyMem_Malloc(64));
    char *p = opaque_ptr(PyMem_Malloc(64));
    CHECK(anchor != NULL && p != NULL);
    PyMem_Free(p);
    stage(1);
    expect_ptr(p);
    PyMem_Free(opaque_ptr(p));
}

/* ------------------------------------------------------------------------ */
/* Using a freed block, naming the function called, and cross-thread misuse  */
/* ------------------------------------------------------------------------ */

/* malloc_usable_size of a freed pool block returns the class size. */
static void c_usable_size_freed_small(void)
{
    char *anchor = checked_malloc(100);
    char *a = checked_malloc(100);
    free(a);
    stage(1);
    expect_ptr(a);
    (void)opaque_size(malloc_usable_size(opaque_ptr(a)));
    free(anchor);
}

/* realloc of a freed pool block to a size its block still fits returns it. */
static void c_realloc_freed_small_fits(void)
{
    char *anchor = checked_malloc(100);
    char *a = checked_malloc(100);
    free(a);
    stage(1);
    expect_ptr(a);
    (void)opaque_ptr(realloc(opaque_ptr(a), 100));
    free(anchor);
}

/* realloc(p, 0) frees p: a foreign p is reported as realloc's. */
static void c_realloc0_foreign(void)
{
    char *p = foreign_page();
    expect_ptr(p);
    (void)opaque_ptr(realloc(opaque_ptr(p), 0));
}

/* Another thread frees the block first (it waits on the owner's remote list), then the
 * owner frees it locally, then allocates the class again. */
static void c_xt_remote_then_local(void)
{
    char *anchor = checked_malloc(XT_SIZE);
    g_xt_block = checked_malloc(XT_SIZE);
    expect_ptr(g_xt_block);
    xt_run_thread(1);
    free(g_xt_block);
    stage(1);
    xt_owner_allocates(XT_SIZE);
    free(anchor);
}

/* A write into a block that waits on the owner's remote list (freed by another thread,
 * not yet collected): the remote list's links are plain pointers, followed unchecked. */
static void c_xt_uaf_on_remote_list(void)
{
    char *anchor = checked_malloc(XT_SIZE);
    g_xt_block = checked_malloc(XT_SIZE);
    expect_ptr(g_xt_block);
    xt_run_thread(1);
    memset(opaque_ptr(g_xt_block), 0x41, 8);
    stage(1);
    xt_owner_allocates(XT_SIZE);
    free(anchor);
}

/* Another thread frees a block twice; when the owner collects, the first free empties
 * the block's pool, which goes back to its arena (the heap keeps one other empty pool of
 * the class already), and the second one finds no pool.  1 MiB blocks: one per pool. */
static void c_xt_double_free_emptied_pool(void)
{
    char *x = checked_malloc(MiB);
    g_xt_block = checked_malloc(MiB);
    free(x); /* x's pool: the empty pool the heap keeps */
    expect_ptr(g_xt_block);
    xt_run_thread(2);
    xt_owner_allocates(48); /* any slow path collects */
}

/* Known gap, compiled in only with -DARENALLOC_EXPECT_UAF_PAST_FIRST_WORD: the
 * default mode checks only a freed block's link word (ARENALLOC_DEBUG=1 checks it all). */
#ifdef ARENALLOC_EXPECT_UAF_PAST_FIRST_WORD
/* A write into a freed block past its first word (the link). */
static void c_uaf_second_word(void)
{
    char *anchor = checked_malloc(48);
    char *a = checked_malloc(48);
    free(a);
    memset(opaque_ptr(a + 8), 0x41, 8);
    expect_ptr(a);
    stage(1);
    for (int i = 0; i < 4; i++)
        (void)opaque_ptr(malloc(opaque_size(48)));
    free(anchor);
}
#endif


/* ------------------------------------------------------------------------ */

#define T(name, fn, func, phrase) {name, fn, func, phrase, NULL}
#define T2(name, fn, func, phrase, alt) {name, fn, func, phrase, alt}

#define FOREIGN "pointer not allocated by arenalloc"
#define INTERIOR "pointer into a block, not the start of one"
#define NOT_BLOCK "pointer into arenalloc memory that is not an allocated block"
#define NEVER "pointer to a block that was never allocated"
#define LARGE_DOUBLE "double free: the large block is already free"
#define LARGE_INTERIOR "pointer into a large block, not the start of one"
#define DOUBLE "double free: the block is already free"
#define UAF "a freed block was written to (use after free): its free-list link is corrupt"
#define FREED "the block is free (use after free)"

static const struct test g_tests[] = {
    /* foreign pointers */
    T("free(stack address)", c_free_stack, "free", FOREIGN),
    T("free(static variable)", c_free_static, "free", FOREIGN),
    T("free(wild 0x1000)", c_free_wild, "free", FOREIGN),
    T("free(mmap'd page)", c_free_mmap, "free", FOREIGN),
    T("free(mmap'd page + 48)", c_free_mmap_off, "free", FOREIGN),
    T("realloc(mmap'd page)", c_realloc_foreign, "realloc", FOREIGN),
    T("malloc_usable_size(mmap'd page)", c_usable_size_foreign, "malloc_usable_size", FOREIGN),
    T("free(freed+unmapped 100 MiB block)", c_free_unmapped_large, "free", FOREIGN),
    /* interior pointers, arena header, never-carved block */
    T("free(malloc(100) + 16)", c_free_interior_small, "free", INTERIOR),
    T("free(malloc(24) + 8)", c_free_interior_small_8, "free", INTERIOR),
    T("free(malloc(3000) + 16)", c_free_interior_medium, "free", INTERIOR),
    T("free(malloc(70000) + 1)", c_free_interior_medium_1, "free", INTERIOR),
    T("free(malloc(1 MiB) + 4096)", c_free_interior_1mib, "free", INTERIOR),
    T("realloc(malloc(100) + 16)", c_realloc_interior, "realloc", INTERIOR),
    T("malloc_usable_size(malloc(3000) + 16)", c_usable_size_interior, "malloc_usable_size", INTERIOR),
    T("free(arena header)", c_free_arena_header, "free", NOT_BLOCK),
    T("realloc(arena header)", c_realloc_arena_header, "realloc", NOT_BLOCK),
    T("free(never-carved block of a fresh pool)", c_free_never_allocated, "free", NEVER),
    /* large blocks */
    T("large: free, free (3 MiB)", c_large_double_free, "free", LARGE_DOUBLE),
    T("large: free(p + 4096)", c_large_interior, "free", LARGE_INTERIOR),
    T("large: free(p - 16) (header page)", c_large_header_page, "free", LARGE_INTERIOR),
    T("large: realloc(p + 8192)", c_large_interior_realloc, "realloc", LARGE_INTERIOR),
    T("large: realloc(freed)", c_large_freed_realloc, "realloc", LARGE_DOUBLE),
    T("large: malloc_usable_size(freed)", c_large_freed_usable_size, "malloc_usable_size", LARGE_DOUBLE),
    /* double frees of pool blocks */
    T("double free in a row (24)", c_double_free_24, "free", DOUBLE),
    T("double free in a row (malloc(0))", c_double_free_0, "free", DOUBLE),
    T("double free in a row (512)", c_double_free_512, "free", DOUBLE),
    T("double free in a row (3000)", c_double_free_3000, "free", DOUBLE),
    T("double free in a row (200 KiB)", c_double_free_200k, "free", DOUBLE),
    T("double free in a row (1 MiB)", c_double_free_1mib, "free", DOUBLE),
    T("free(a); free(b); free(a)", c_double_free_aba, "free", DOUBLE),
    T("free(a); 2249 frees of 48 B; free(a)", c_double_free_deep_48, "free", DOUBLE),
    T("free(a); 224 frees of 3000 B; free(a)", c_double_free_deep_3000, "free", DOUBLE),
    T("free(a); 53 frees of its pool; free(a)", c_double_free_deep_same_pool, "free", DOUBLE),
    T2("free(a); free all 48 B blocks (pool released); free(a)", c_double_free_released_pool, "free", DOUBLE, NOT_BLOCK),
    T("double free of a calloc block", c_double_free_calloc, "free", DOUBLE),
    T("free after realloc(p, 0)", c_double_free_after_realloc0, "free", DOUBLE),
    T("free of the old pointer after realloc moved it", c_double_free_after_realloc_move, "free", DOUBLE),
    T("PyObject_Free then free", c_double_free_pyobject, "free", DOUBLE),
    T("realloc(freed small, larger)", c_realloc_freed_small_grow, "realloc", FREED),
    T("realloc(freed small block, same size)", c_realloc_freed_small_fits, "realloc", FREED),
    T("malloc_usable_size(freed small block)", c_usable_size_freed_small, "malloc_usable_size", FREED),
    T("realloc(mmap'd page, 0)", c_realloc0_foreign, "realloc", FOREIGN),
    /* use after free: writes into a freed block's link word */
    T("UAF: 0x4141414141414141 into freed block, malloc", c_uaf_0x41, "malloc", UAF),
    T("UAF: 0 into freed block, malloc", c_uaf_zero, "malloc", UAF),
    T("UAF: ~0 into freed block, malloc", c_uaf_all_ones, "malloc", UAF),
    T("UAF: 1 into freed block, malloc", c_uaf_small_int, "malloc", UAF),
    T("UAF: stack pointer into freed block, malloc", c_uaf_stack_ptr, "malloc", UAF),
    T("UAF: live heap pointer into freed block, malloc", c_uaf_heap_ptr, "malloc", UAF),
    T("UAF: 2nd block on free list corrupted, malloc x2", c_uaf_second_on_list, "malloc", UAF),
    T("UAF: memset(freed, 0, size), malloc", c_uaf_memset_block, "malloc", UAF),
    T("UAF: corrupted block popped by calloc", c_uaf_then_calloc, "malloc", UAF),
    /* cross-thread double frees: caught when the owner collects its remote list, in
     * its next malloc that takes the slow path */
    T("thread B frees A's 432 B block twice", c_xt_double_free_same_thread, "malloc", DOUBLE),
    T("threads B and C free A's block", c_xt_double_free_two_threads, "malloc", DOUBLE),
    T("thread B frees a, x, a (A's blocks)", c_xt_double_free_interleaved, "malloc", DOUBLE),
    T("thread B frees A's 3000 B block twice", c_xt_double_free_medium, "malloc", DOUBLE),
    T("thread B frees A's block twice, A collects via another class", c_xt_double_free_collect_other_class, "malloc", DOUBLE),
    T("owner exited; B frees its block twice; adopter collects", c_xt_double_free_dead_owner, "malloc", DOUBLE),
    T2("A frees its block, then B frees it", c_xt_local_then_remote, "malloc", UAF, DOUBLE),
    /* the Python families */
    T("PyMem_Free(mmap'd page)", c_pymem_free_foreign, "PyMem_Free", FOREIGN),
    T("PyObject_Free(mmap'd page)", c_pyobject_free_foreign, "PyObject_Free", FOREIGN),
    T("PyMem_RawFree(mmap'd page)", c_pymem_rawfree_foreign, "PyMem_RawFree", FOREIGN),
    T("PyObject_Free(stack address)", c_pyobject_free_stack, "PyObject_Free", FOREIGN),
    T("PyMem_Realloc(mmap'd page)", c_pymem_realloc_foreign, "PyMem_Realloc", FOREIGN),
    T("PyObject_Realloc(mmap'd page)", c_pyobject_realloc_foreign, "PyObject_Realloc", FOREIGN),
    T("PyMem_RawRealloc(mmap'd page)", c_pymem_rawrealloc_foreign, "PyMem_RawRealloc", FOREIGN),
    T("PyObject_Free(interior)", c_pyobject_free_interior, "PyObject_Free", INTERIOR),
    T("PyMem_Free twice", c_pymem_free_double, "PyMem_Free", DOUBLE),
    /* cross-thread frees caught when the owner collects its remote list (in malloc) */
    T2("B frees A's block, then A frees it", c_xt_remote_then_local, "malloc", UAF, DOUBLE),
    T("UAF write into a block on the remote list", c_xt_uaf_on_remote_list, "malloc", UAF),
    T("B frees A's 1 MiB block twice; its pool empties at collection", c_xt_double_free_emptied_pool, "malloc", DOUBLE),
    /* known gaps */
#ifdef ARENALLOC_EXPECT_UAF_PAST_FIRST_WORD
    T("UAF: write to bytes 8..15 of a freed block", c_uaf_second_word, "malloc", UAF),
#endif
};

int main(int argc, char **argv)
{
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        g_verbose = 1;
        first = 2;
    }
    g_sh = mmap(NULL, sizeof *g_sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(g_sh != MAP_FAILED);
    /* The allocator is initialised and has live blocks before the first fork. */
    void *live = malloc(100), *live_big = malloc(4 * MiB);
    CHECK(live != NULL && live_big != NULL);

    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof g_tests / sizeof g_tests[0]; i++) {
        int selected = first >= argc;
        for (int a = first; a < argc && !selected; a++)
            selected = strstr(g_tests[i].name, argv[a]) != NULL;
        if (!selected)
            continue;
        if (run_test(&g_tests[i]))
            passed++;
        else
            failed++;
    }
    printf("test_misuse: %d passed, %d failed\n", passed, failed);
    free(live);
    free(live_big);
    return failed ? 1 : 0;
}
#endif /* !TEST_AGAINST_GLIBC */
