/*
 * faulty_malloc.c - an LD_PRELOAD allocator that corrupts on purpose, to prove
 * that the stress programs notice (tests/stress/selftest.sh).
 *
 * It is a complete, small allocator of its own (no dlsym, no glibc malloc):
 * power-of-two size classes carved from 64 MiB mmap'ed chunks, one free list
 * per class, one global mutex (taken around fork), a 48-byte header before
 * every block, and a mapping of its own for blocks over 1 MiB.  With
 * FAULTY_MODE=none it is simply correct.  Other modes break it in one way a
 * correct program can see, every FAULTY_EVERY-th time (per-mode default):
 *
 *   overlap  malloc, calloc and realloc (when it moves) hand out a block that
 *            is still live (the last one they handed out of that size class)
 *            a second time: two owners share one block.      (every 1000th)
 *   realloc  a realloc that moves the block does not copy the last byte of
 *            the preserved prefix (it gets the byte's complement). (every 50th move)
 *   calloc   calloc does not zero a recycled block (fills it with 0xa5).
 *                                                             (every 200th)
 *   align    memalign/posix_memalign/aligned_alloc with an alignment of 32
 *            or more return a pointer 16 bytes off it.        (every 200th)
 *   leak     free does not take the block back (it stays resident, never
 *            reused): the memory of a long run keeps growing.  (every 10th)
 *
 * The first few corruptions are announced on stderr ("faulty_malloc: ..."),
 * so a log shows that the fault was injected before the program caught it.
 *
 * Build: gcc -O2 -shared -fPIC -pthread -o faulty_malloc.so faulty_malloc.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HDR 48
#define MIN_CLASS 6  /* 64-byte blocks (header included) */
#define MAX_CLASS 20 /* 1 MiB */
#define CHUNK ((size_t)64 << 20)
#define MAGIC_BLOCK 0xfa17b10cU
#define MAGIC_ALIGNED 0xfa17a119U
#define MAGIC_LARGE 0xfa17b16eU

struct hdr {
    uint32_t magic;
    uint16_t cls;
    uint16_t pad0;
    uint32_t users;  /* owners of this block (2 after an overlap fault) */
    uint32_t pad1;
    size_t req;      /* requested size */
    size_t usable;   /* bytes usable from the user pointer */
    void *raw;       /* aligned: the inner block; large: the mapping */
    size_t maplen;   /* large: the mapping's length */
};
_Static_assert(sizeof(struct hdr) == HDR, "header size");

enum mode { M_NONE, M_OVERLAP, M_REALLOC, M_CALLOC, M_ALIGN, M_LEAK };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static void *free_list[MAX_CLASS + 1];
static void *recent[MAX_CLASS + 1]; /* last block handed out per class */
static char *bump, *bump_end;
static enum mode mode = M_NONE;
static unsigned long every = 1000;
static bool configured;
static atomic_ulong counter, announced;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    if (atomic_fetch_add(&announced, 1) >= 3)
        return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    if (write(2, buf, (size_t)n) < 0) {
    }
}

static void die(const char *msg)
{
    if (write(2, msg, strlen(msg)) < 0) {
    }
    abort();
}

/* Read FAULTY_MODE / FAULTY_EVERY once (getenv does not allocate). */
static void configure(void)
{
    if (configured)
        return;
    const char *m = getenv("FAULTY_MODE");
    unsigned long def = 1000;
    if (!m || !strcmp(m, "none"))
        mode = M_NONE;
    else if (!strcmp(m, "overlap"))
        mode = M_OVERLAP, def = 1000;
    else if (!strcmp(m, "realloc"))
        mode = M_REALLOC, def = 50;
    else if (!strcmp(m, "calloc"))
        mode = M_CALLOC, def = 200;
    else if (!strcmp(m, "align"))
        mode = M_ALIGN, def = 200;
    else if (!strcmp(m, "leak"))
        mode = M_LEAK, def = 10;
    else
        die("faulty_malloc: unknown FAULTY_MODE\n");
    const char *e = getenv("FAULTY_EVERY");
    every = e && atol(e) > 0 ? (unsigned long)atol(e) : def;
    configured = true;
}

/* Is it time for the next fault? (counts the calls of the mode's kind) */
static bool fault_now(enum mode m)
{
    configure();
    return mode == m && (atomic_fetch_add(&counter, 1) + 1) % every == 0;
}

static void prepare(void) { pthread_mutex_lock(&mu); }
static void release(void) { pthread_mutex_unlock(&mu); }
__attribute__((constructor)) static void init(void)
{
    configure();
    pthread_atfork(prepare, release, release);
}

static struct hdr *hdr_of(void *p)
{
    struct hdr *h = (struct hdr *)((char *)p - HDR);
    if (h->magic != MAGIC_BLOCK && h->magic != MAGIC_ALIGNED && h->magic != MAGIC_LARGE)
        die("faulty_malloc: free/realloc of a pointer it did not allocate\n");
    return h;
}

static unsigned class_of(size_t size)
{
    unsigned c = MIN_CLASS;
    while (((size_t)1 << c) < size + HDR)
        c++;
    return c;
}

/* A block of at least size bytes; 16-aligned user pointer. */
static void *alloc_block(size_t size, bool may_overlap)
{
    if (size > ((size_t)1 << MAX_CLASS) - HDR) {
        if (size > ((size_t)1 << 46))
            return NULL;
        size_t len = (size + HDR + 4095) & ~(size_t)4095;
        char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        struct hdr *h = (struct hdr *)m;
        *h = (struct hdr){.magic = MAGIC_LARGE, .users = 1, .req = size,
                          .usable = len - HDR, .raw = m, .maplen = len};
        return m + HDR;
    }
    unsigned c = class_of(size);
    size_t bsize = (size_t)1 << c;
    bool overlap = may_overlap && fault_now(M_OVERLAP);
    pthread_mutex_lock(&mu);
    char *b;
    if (overlap && recent[c]) {
        b = recent[c];
        recent[c] = NULL;
        struct hdr *h = (struct hdr *)b;
        h->users++;
        pthread_mutex_unlock(&mu);
        say("faulty_malloc: overlap: handing out live block %p (%zu usable) a second time",
            (void *)(b + HDR), h->usable);
        return b + HDR;
    }
    if (free_list[c]) {
        b = free_list[c];
        free_list[c] = *(void **)b;
    } else {
        if (!bump || (size_t)(bump_end - bump) < bsize) {
            char *m = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED) {
                pthread_mutex_unlock(&mu);
                return NULL;
            }
            bump = m, bump_end = m + CHUNK;
        }
        b = bump;
        bump += bsize;
    }
    if (may_overlap) /* only plain blocks are shared: an aligned block's inner */
        recent[c] = b; /* block has a header inside it */
    struct hdr *h = (struct hdr *)b;
    *h = (struct hdr){.magic = MAGIC_BLOCK, .cls = (uint16_t)c, .users = 1,
                      .req = size, .usable = bsize - HDR};
    pthread_mutex_unlock(&mu);
    return b + HDR;
}

static void free_block(void *p)
{
    struct hdr *h = hdr_of(p);
    if (h->magic != MAGIC_ALIGNED && fault_now(M_LEAK)) {
        say("faulty_malloc: leak: dropping %p (%zu bytes) instead of freeing it",
            p, h->usable);
        h->magic = 0;
        return;
    }
    if (h->magic == MAGIC_ALIGNED) {
        void *inner = h->raw;
        h->magic = 0;
        free_block(inner);
        return;
    }
    if (h->magic == MAGIC_LARGE) {
        h->magic = 0;
        munmap(h->raw, h->maplen);
        return;
    }
    pthread_mutex_lock(&mu);
    if (--h->users == 0) {
        unsigned c = h->cls;
        if (recent[c] == (void *)h)
            recent[c] = NULL;
        h->magic = 0;
        *(void **)h = free_list[c];
        free_list[c] = h;
    }
    pthread_mutex_unlock(&mu);
}

static void *alloc_aligned(size_t align, size_t size)
{
    if (align <= 16)
        return alloc_block(size, false);
    if (size > ((size_t)1 << 46) || align > ((size_t)1 << 40))
        return NULL;
    char *inner = alloc_block(size + align + HDR, false);
    if (!inner)
        return NULL;
    struct hdr *ih = hdr_of(inner);
    uintptr_t u = ((uintptr_t)inner + HDR + align - 1) & ~(uintptr_t)(align - 1);
    if (align >= 32 && fault_now(M_ALIGN)) {
        say("faulty_malloc: align: returning %p, 16 bytes off alignment %zu",
            (void *)(u + 16), align);
        u += 16;
    }
    struct hdr *h = (struct hdr *)(u - HDR);
    *h = (struct hdr){.magic = MAGIC_ALIGNED, .users = 1, .req = size,
                      .usable = ih->usable - (u - (uintptr_t)inner), .raw = inner};
    return (void *)u;
}

/* ---- the exported functions ---------------------------------------------- */

void *malloc(size_t size)
{
    void *p = alloc_block(size, true);
    if (!p)
        errno = ENOMEM;
    return p;
}

void free(void *p)
{
    if (p)
        free_block(p);
}

void *calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = alloc_block(total, true);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    struct hdr *h = hdr_of(p);
    if (total >= 16 && h->magic == MAGIC_BLOCK && fault_now(M_CALLOC)) {
        say("faulty_malloc: calloc: not zeroing %p (%zu bytes)", p, total);
        memset(p, 0xa5, total);
    } else if (h->magic == MAGIC_BLOCK) {
        memset(p, 0, total); /* mappings (large) are fresh, hence zero */
    }
    return p;
}

size_t malloc_usable_size(void *p)
{
    return p ? hdr_of(p)->usable : 0;
}

void *realloc(void *p, size_t size)
{
    if (!p)
        return malloc(size);
    if (size == 0) {
        free(p);
        return NULL;
    }
    struct hdr *h = hdr_of(p);
    if (h->magic != MAGIC_ALIGNED && size <= h->usable && size >= h->usable / 4) {
        h->req = size;
        return p; /* in place */
    }
    if (h->magic == MAGIC_LARGE && size > ((size_t)1 << MAX_CLASS) - HDR &&
        size <= ((size_t)1 << 46)) { /* large to large: mremap, all of it kept */
        size_t len = (size + HDR + 4095) & ~(size_t)4095;
        char *m = mremap(h->raw, h->maplen, len, MREMAP_MAYMOVE);
        if (m == MAP_FAILED) {
            errno = ENOMEM;
            return NULL;
        }
        h = (struct hdr *)m;
        h->raw = m, h->maplen = len, h->req = size, h->usable = len - HDR;
        return m + HDR;
    }
    void *q = alloc_block(size, true);
    if (!q) {
        errno = ENOMEM;
        return NULL;
    }
    size_t keep = h->req < size ? h->req : size;
    size_t copy = h->usable < size ? h->usable : size;
    memcpy(q, p, copy);
    if (keep > 0 && fault_now(M_REALLOC)) {
        unsigned char *last = (unsigned char *)q + keep - 1;
        say("faulty_malloc: realloc: %p (%zu) -> %p (%zu): last byte of the prefix "
            "not copied", p, h->req, q, size);
        *last = (unsigned char)~*last;
    }
    free(p);
    return q;
}

void *reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, total);
}

int posix_memalign(void **out, size_t align, size_t size)
{
    if (align < sizeof(void *) || (align & (align - 1)))
        return EINVAL;
    void *p = alloc_aligned(align, size);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t size)
{
    if (align == 0 || (align & (align - 1))) {
        errno = EINVAL;
        return NULL;
    }
    void *p = alloc_aligned(align, size);
    if (!p)
        errno = ENOMEM;
    return p;
}

void *memalign(size_t align, size_t size)
{
    size_t a = 16;
    while (a < align)
        a <<= 1;
    void *p = alloc_aligned(a, size);
    if (!p)
        errno = ENOMEM;
    return p;
}

void *valloc(size_t size)
{
    return memalign((size_t)sysconf(_SC_PAGESIZE), size);
}

void *pvalloc(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return memalign(page, size ? (size + page - 1) & ~(page - 1) : page);
}
