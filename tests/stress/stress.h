/*
 * stress.h - shared helpers of the allocator stress programs (tests/stress/).
 *
 * The programs call the plain C allocation functions (malloc, free, ...), so
 * they run under any allocator: the system's, or one preloaded with
 * LD_PRELOAD (tests/stress/run.sh).  They never link against arenalloc.
 *
 * Every block a program allocates is described by a `struct blk` kept OUTSIDE
 * the block (pointer, size, seed, id) and filled with a pattern derived from
 * its seed: the whole block up to STRESS_FULL_FILL bytes, beyond that the
 * first and last 4 KiB plus one 8-byte word every 512 bytes.  The pattern is
 * checked before every free (and after every realloc, over the preserved
 * prefix).  A mismatch prints ONE line on stderr, "stress NAME: CORRUPTION
 * ...", with the address, size, offset, expected and found bytes, and ends the
 * process with exit status 3.  All diagnostics are written with write(2), so
 * they are safe in forked children and with other threads running.
 *
 * Exit statuses of every program: 0 pass, 1 failure (fewer operations than
 * promised, allocation failure, ...), 2 usage, 3 corruption, 4 hang (a forked
 * child timed out), 5 the expected allocator is not the one in use.
 */
#ifndef STRESS_H
#define STRESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

enum {
    STRESS_EXIT_FAIL = 1,
    STRESS_EXIT_USAGE = 2,
    STRESS_EXIT_CORRUPT = 3,
    STRESS_EXIT_HANG = 4,
    STRESS_EXIT_PRELOAD = 5,
};

/* Blocks up to this size are filled and checked whole; larger ones sampled. */
#define STRESS_FULL_FILL (256 * KiB)

/* Effort levels: a scenario's parameters are chosen by level. */
enum stress_level { STRESS_SOAK_ROUND, STRESS_QUICK, STRESS_FULL };

struct stress_opts {
    enum stress_level level; /* STRESS_QUICK (default) or STRESS_FULL */
    uint64_t seed;           /* --seed N (default 12345) */
    double seconds;          /* --seconds N (soak only; 0: level default) */
    bool verbose;            /* --verbose */
};

/* ---- process-wide state (stress.c) ------------------------------------- */

extern const char *stress_prog;        /* program name for messages */
extern volatile int stress_in_child;   /* set in forked children */
extern bool stress_track_live;         /* account live bytes (soak) */
extern _Atomic int64_t stress_live_bytes;
extern _Atomic int64_t stress_live_peak;

/* Parse the common options (exits 2 on a usage error), check the allocator in
 * use (exits 5 on a mismatch), remember the program's name. */
void stress_init(int argc, char **argv, const char *prog,
                 struct stress_opts *o);
/* Fail with a one-line diagnostic "stress PROG: ..." and _exit(code). */
void stress_fail(int code, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));
/* Fail (exit 1) if fewer operations were done than the mode promised. */
void stress_expect(const char *what, uint64_t done, uint64_t promised);
/* Print "stress PROG: <msg>, 0 errors, T s" on stdout. */
void stress_summary(double t0, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
double stress_now(void);
void stress_sleep_ms(unsigned ms);
/* Resident set size of this process, bytes (from /proc/self/statm). */
size_t stress_rss(void);
/* Check that the allocation functions resolve into the library named by
 * $STRESS_EXPECT_ALLOC (a file name, e.g. libarenalloc.so); nothing if unset. */
void stress_check_preload(void);

/* ---- random numbers (splitmix64; one state per thread) ----------------- */

struct rng {
    uint64_t s;
};

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline struct rng rng_make(uint64_t seed, uint64_t stream)
{
    struct rng r = {mix64(seed ^ mix64(stream + 0x51ed270b27a5f1ULL))};
    return r;
}

static inline uint64_t rng_next(struct rng *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return mix64(r->s);
}

/* Uniform in [0, n). */
static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* True with probability 1/n. */
static inline bool rng_one_in(struct rng *r, uint64_t n)
{
    return rng_below(r, n) == 0;
}

/* Log-uniform in [lo, hi) (lo >= 1): every power-of-two band equally likely. */
size_t rng_log(struct rng *r, size_t lo, size_t hi);

/* A random allocation size: mostly small (1..512 B), some medium (to 64 KiB),
 * a few up to 1 MiB and rare large ones up to large_max (0: none). */
size_t stress_size(struct rng *r, size_t large_max);

/* ---- verified blocks ---------------------------------------------------- */

struct blk {
    unsigned char *p;
    size_t size;    /* bytes covered by the pattern */
    uint64_t seed;  /* pattern seed */
    uint64_t id;    /* owner << 40 | serial, for messages */
    uint64_t check; /* a hash of the fields above: records live in malloc'ed
                       memory too, and are checked before they are used */
};

static inline uint64_t blk_id(unsigned owner, uint64_t serial)
{
    return ((uint64_t)owner << 40) | (serial & ((1ULL << 40) - 1));
}

/* Give b a fresh seed derived from its id, size and the run's seed (and seal). */
void blk_reseed(struct blk *b);
/* Recompute b->check after changing b's fields by hand. */
void blk_seal(struct blk *b);
/* Fail (exit 3) if b->check does not match: the record itself was overwritten.
 * blk_check, blk_check_range, blk_realloc and blk_free do it first. */
void blk_validate(const struct blk *b, const char *what);
/* Write the pattern over b's sample set. */
void blk_fill(const struct blk *b);
/* Check the pattern over b's sample set below `limit` (SIZE_MAX: all);
 * `what` says where (e.g. "before free in consumer 3"). */
void blk_check(const struct blk *b, size_t limit, const char *what);
/* The same, over [from, to) only (from rounded down to a multiple of 8). */
void blk_fill_range(const struct blk *b, size_t from, size_t to);
void blk_check_range(const struct blk *b, size_t from, size_t to,
                     const char *what);
/* Check that n bytes at p are zero (calloc); sampled beyond 1 MiB. */
void stress_check_zero(const void *p, size_t n, const char *what);

/* malloc(size) + reseed + fill (+ live accounting); fails the run on NULL. */
void blk_malloc(struct blk *b, size_t size, uint64_t id);
/* Register an already-allocated block of `size` bytes: reseed, fill, account. */
void blk_adopt(struct blk *b, void *p, size_t size, uint64_t id);
/* Check the whole pattern, free, account, b->p = NULL. */
void blk_free(struct blk *b, const char *what);
/* realloc(b->p, n): check the part a shrink cuts off before, the preserved
 * prefix after, then refill the whole block with a fresh pattern. */
void blk_realloc(struct blk *b, size_t n, const char *what);
/* Its first half: the checks and the realloc, with b->p the new block but
 * b->size still the old size, which it returns (the caller refills). */
size_t blk_realloc_checked(struct blk *b, size_t n, const char *what);
/* Zeroed memory for the programs' own control structures (queues, slot
 * arrays, exchange arrays), mapped with mmap: outside the allocator under
 * test, so a corrupting allocator cannot crash the harness before a check
 * reports it.  The records of blocks in flight (batches, exchange records)
 * are malloc'ed on purpose, and sealed (blk_validate). */
void *stress_meta_alloc(size_t n);
void stress_meta_free(void *p, size_t n);
/* Live-bytes accounting (only when stress_track_live). */
void stress_live_add(int64_t delta);

/* ---- the scenarios (one file each; soak.c runs them all) --------------- */

struct prodcons_params {
    unsigned producers, consumers;
    uint64_t per_producer; /* blocks each producer allocates */
    size_t large_max;
    uint64_t seed;
};
void prodcons_preset(struct prodcons_params *p, enum stress_level l,
                     uint64_t seed);
uint64_t prodcons_run(const struct prodcons_params *p); /* blocks verified */

struct churn_params {
    unsigned threads;    /* short-lived threads in all */
    unsigned wave;       /* spawned at a time */
    unsigned per_thread; /* blocks each allocates */
    unsigned reapers;    /* long-lived threads freeing what others left */
    size_t large_max;
    uint64_t seed;
};
void churn_preset(struct churn_params *p, enum stress_level l, uint64_t seed);
uint64_t churn_run(const struct churn_params *p); /* blocks verified */

struct realloc_params {
    unsigned threads;
    uint64_t steps; /* per thread */
    unsigned slots; /* blocks each thread keeps */
    uint64_t seed;
};
void realloc_preset(struct realloc_params *p, enum stress_level l,
                    uint64_t seed);
/* Returns the steps done (each one realloc, or a free); *reallocs the reallocs. */
uint64_t realloc_run(const struct realloc_params *p, uint64_t *reallocs);

struct aligned_params {
    unsigned threads;
    uint64_t ops;   /* allocations per thread */
    unsigned slots; /* live blocks per thread */
    size_t max_align;
    uint64_t seed;
};
void aligned_preset(struct aligned_params *p, enum stress_level l,
                    uint64_t seed);
uint64_t aligned_run(const struct aligned_params *p); /* blocks verified */

struct fork_params {
    unsigned hammers;     /* threads allocating while the main thread forks */
    unsigned forks;
    unsigned child_ops;   /* allocations in each child (and as many in its thread) */
    unsigned timeout_s;   /* per child */
    uint64_t seed;
};
void fork_preset(struct fork_params *p, enum stress_level l, uint64_t seed);
struct fork_result {
    uint64_t forks, child_verified, hammer_ops, parent_verified;
};
void fork_run(const struct fork_params *p, struct fork_result *res);

#endif
