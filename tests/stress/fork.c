/*
 * fork.c - fork from a multithreaded process.
 *
 * `hammers` threads loop malloc/verify/free (random sizes, some blocks passed
 * between them through an exchange array of atomic pointers) while the main
 * thread forks `forks` times.  Each child, in which only the forking thread
 * survives:
 *   - verifies the main thread's 256 blocks inherited from the parent, and the
 *     blocks parked in the exchange array (allocated by threads that do not
 *     exist in the child) and frees the latter;
 *   - allocates, verifies and frees `child_ops` blocks (malloc, posix_memalign,
 *     realloc);
 *   - starts a thread that does as much, and frees the other half of the
 *     inherited blocks and 32 blocks the child's main thread allocated;
 *   - one child in four forks a grandchild while that thread runs;
 *   - reports its count of verified blocks through a pipe and _exit(0)s.
 * The parent waits for each child at most `timeout_s` seconds (polling
 * waitpid): a child still running then is deadlocked: killed, and the run
 * fails (exit 4).  A child exiting non-zero or killed by a signal fails it too.
 *
 * Promise: `forks` children each verified at least 256 + 2 * child_ops blocks,
 * and every hammer thread did at least 1000 operations.
 */
#include "stress.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define XCHG 64
#define MAIN_SET 256
#define HAMMER_SLOTS 128
#define CHILD_SLOTS 64
#define PASSED 32

struct fk_shared {
    const struct fork_params *p;
    _Atomic(struct blk *) xchg[XCHG]; /* malloc'ed records, filled blocks */
    atomic_bool stop;
    _Atomic uint64_t hammer_ops, hammer_verified;
};

struct fk_thread {
    struct fk_shared *sh;
    unsigned idx;
    pthread_t tid;
};

static void *hammer(void *arg)
{
    struct fk_thread *t = arg;
    struct fk_shared *sh = t->sh;
    struct rng r = rng_make(sh->p->seed, 5000 + t->idx);
    struct blk s[HAMMER_SLOTS] = {{0}};
    const char *what = "before free in a hammer thread";
    uint64_t ops = 0, verified = 0;
    while (ops < 1000 || !atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        struct blk *b = &s[rng_below(&r, HAMMER_SLOTS)];
        if (b->p && rng_one_in(&r, 8)) {
            struct blk *rec = malloc(sizeof *rec);
            if (!rec)
                stress_fail(STRESS_EXIT_FAIL, "malloc(record) returned NULL");
            *rec = *b;
            b->p = NULL;
            struct blk *old = atomic_exchange(&sh->xchg[rng_below(&r, XCHG)], rec);
            if (old) {
                blk_free(old, "before free of an exchanged block in a hammer thread");
                free(old);
                verified++;
            }
        } else if (b->p) {
            blk_free(b, what);
            verified++;
        }
        blk_malloc(b, stress_size(&r, 2 * MiB), blk_id(100 + t->idx, ops));
        ops++;
    }
    for (unsigned i = 0; i < HAMMER_SLOTS; i++)
        if (s[i].p) {
            blk_free(&s[i], what);
            verified++;
        }
    atomic_fetch_add(&sh->hammer_ops, ops);
    atomic_fetch_add(&sh->hammer_verified, verified);
    return NULL;
}

/* ---- in the child -------------------------------------------------------- */

/* n allocations (malloc, posix_memalign, realloc) through a few slots. */
static uint64_t child_churn(struct rng *r, unsigned n, unsigned owner)
{
    struct blk s[CHILD_SLOTS] = {{0}};
    uint64_t verified = 0;
    const char *what = "before free in a forked child";
    for (unsigned i = 0; i < n; i++) {
        struct blk *b = &s[rng_below(r, CHILD_SLOTS)];
        uint64_t x = rng_below(r, 8);
        if (b->p && x == 0) { /* realloc: checks the prefix */
            blk_realloc(b, stress_size(r, 2 * MiB), "in a forked child");
            verified++;
            continue;
        }
        if (b->p) {
            blk_free(b, what);
            verified++;
        }
        if (x == 1) {
            void *q;
            size_t size = stress_size(r, 2 * MiB), al = (size_t)64 << rng_below(r, 8);
            if (posix_memalign(&q, al, size))
                stress_fail(STRESS_EXIT_FAIL, "posix_memalign(%zu, %zu) failed", al, size);
            if ((uintptr_t)q % al)
                stress_fail(STRESS_EXIT_CORRUPT, "MISALIGNED: posix_memalign(%zu, %zu) "
                            "in a forked child returned %p", al, size, q);
            blk_adopt(b, q, size, blk_id(owner, i));
        } else {
            blk_malloc(b, stress_size(r, 2 * MiB), blk_id(owner, i));
        }
    }
    for (unsigned i = 0; i < CHILD_SLOTS; i++)
        if (s[i].p) {
            blk_free(&s[i], what);
            verified++;
        }
    return verified;
}

struct child_thread_arg {
    const struct fork_params *p;
    struct blk *main_set; /* frees the odd half */
    struct blk *passed;   /* PASSED blocks of the child's main thread */
    uint64_t seed, verified;
};

static void *child_thread(void *v)
{
    struct child_thread_arg *a = v;
    struct rng r = rng_make(a->seed, 7);
    for (unsigned i = 1; i < MAIN_SET; i += 2)
        blk_free(&a->main_set[i], "before free of an inherited block in a child's thread");
    for (unsigned i = 0; i < PASSED; i++)
        blk_free(&a->passed[i], "before free in a child's thread");
    a->verified = MAIN_SET / 2 + PASSED + child_churn(&r, a->p->child_ops, 301);
    return NULL;
}

/* Wait for pid at most timeout_s seconds; on timeout kill it, fail the run. */
static int wait_child(pid_t pid, unsigned timeout_s, unsigned fork_no)
{
    double deadline = stress_now() + timeout_s;
    int st;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            stress_fail(STRESS_EXIT_FAIL, "waitpid(%d): %s", (int)pid, strerror(errno));
        if (stress_now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            stress_fail(STRESS_EXIT_HANG,
                        "HANG: child %d of fork #%u still running after %u s "
                        "(deadlock?): killed",
                        (int)pid, fork_no, timeout_s);
        }
        stress_sleep_ms(1);
    }
    if (WIFSIGNALED(st))
        stress_fail(STRESS_EXIT_FAIL, "child %d of fork #%u killed by signal %d (%s)",
                    (int)pid, fork_no, WTERMSIG(st), strsignal(WTERMSIG(st)));
    if (WEXITSTATUS(st) != 0)
        stress_fail(WEXITSTATUS(st) == STRESS_EXIT_CORRUPT ? STRESS_EXIT_CORRUPT
                                                          : STRESS_EXIT_FAIL,
                    "child %d of fork #%u exited with status %d",
                    (int)pid, fork_no, WEXITSTATUS(st));
    return 0;
}

static void child_main(struct fk_shared *sh, struct blk *main_set,
                       unsigned fork_no, int out_fd)
{
    const struct fork_params *p = sh->p;
    stress_in_child = 1;
    struct rng r = rng_make(p->seed, 6000 + fork_no);
    uint64_t verified = 0;

    for (unsigned i = 0; i < MAIN_SET; i++)
        blk_check(&main_set[i], SIZE_MAX, "inherited block, in a forked child");
    for (unsigned j = 0; j < XCHG; j++) {
        struct blk *rec = atomic_load(&sh->xchg[j]);
        if (rec) {
            blk_free(rec, "before free of a hammer thread's block in a forked child");
            free(rec);
            atomic_store(&sh->xchg[j], NULL);
            verified++;
        }
    }
    for (unsigned i = 0; i < MAIN_SET; i += 2)
        blk_free(&main_set[i], "before free of an inherited block in a forked child");
    verified += MAIN_SET / 2;
    verified += child_churn(&r, p->child_ops, 300);

    struct blk passed[PASSED];
    for (unsigned i = 0; i < PASSED; i++)
        blk_malloc(&passed[i], stress_size(&r, 0), blk_id(302, i));
    struct child_thread_arg a = {p, main_set, passed, p->seed ^ fork_no, 0};
    pthread_t tid;
    if (pthread_create(&tid, NULL, child_thread, &a))
        stress_fail(STRESS_EXIT_FAIL, "pthread_create in a forked child failed");
    if (fork_no % 4 == 0) { /* fork again while the child's thread runs */
        pid_t g = fork();
        if (g < 0)
            stress_fail(STRESS_EXIT_FAIL, "fork in a child: %s", strerror(errno));
        if (g == 0) {
            struct rng r2 = rng_make(p->seed, 9000 + fork_no);
            child_churn(&r2, p->child_ops / 4, 303);
            _exit(0);
        }
        wait_child(g, p->timeout_s, fork_no);
    }
    pthread_join(tid, NULL);
    verified += a.verified;
    if (write(out_fd, &verified, sizeof verified) != sizeof verified)
        stress_fail(STRESS_EXIT_FAIL, "write to the parent's pipe failed");
    _exit(0);
}

/* ---- in the parent ------------------------------------------------------- */

void fork_preset(struct fork_params *p, enum stress_level l, uint64_t seed)
{
    p->seed = seed;
    p->timeout_s = 10;
    switch (l) {
    case STRESS_SOAK_ROUND:
        p->hammers = 1, p->forks = 5, p->child_ops = 2000;
        break;
    case STRESS_QUICK:
        p->hammers = 2, p->forks = 30, p->child_ops = 3000;
        break;
    case STRESS_FULL:
        p->hammers = 3, p->forks = 300, p->child_ops = 8000;
        break;
    }
}

void fork_run(const struct fork_params *p, struct fork_result *res)
{
    struct fk_shared *sh = stress_meta_alloc(sizeof *sh);
    struct fk_thread *th = stress_meta_alloc(p->hammers * sizeof *th);
    struct blk *main_set = stress_meta_alloc(MAIN_SET * sizeof *main_set);
    sh->p = p;
    memset(res, 0, sizeof *res);
    struct rng r = rng_make(p->seed, 5999);
    for (unsigned i = 0; i < MAIN_SET; i++)
        blk_malloc(&main_set[i], stress_size(&r, 2 * MiB), blk_id(200, i));
    for (unsigned i = 0; i < p->hammers; i++) {
        th[i].sh = sh;
        th[i].idx = i;
        if (pthread_create(&th[i].tid, NULL, hammer, &th[i]))
            stress_fail(STRESS_EXIT_FAIL, "pthread_create failed");
    }
    uint64_t serial = MAIN_SET;
    const uint64_t per_child = MAIN_SET + 2 * (uint64_t)p->child_ops;
    for (unsigned f = 0; f < p->forks; f++) {
        for (unsigned k = 0; k < 32; k++) { /* change the inherited set a little */
            struct blk *b = &main_set[rng_below(&r, MAIN_SET)];
            blk_free(b, "before free in the forking thread");
            res->parent_verified++;
            blk_malloc(b, stress_size(&r, 2 * MiB), blk_id(200, serial++));
        }
        int fd[2];
        if (pipe(fd))
            stress_fail(STRESS_EXIT_FAIL, "pipe: %s", strerror(errno));
        pid_t pid = fork();
        if (pid < 0)
            stress_fail(STRESS_EXIT_FAIL, "fork: %s", strerror(errno));
        if (pid == 0) {
            close(fd[0]);
            child_main(sh, main_set, f, fd[1]);
        }
        close(fd[1]);
        wait_child(pid, p->timeout_s, f);
        uint64_t got = 0;
        if (read(fd[0], &got, sizeof got) != sizeof got)
            stress_fail(STRESS_EXIT_FAIL, "child of fork #%u reported nothing", f);
        close(fd[0]);
        if (got < per_child)
            stress_fail(STRESS_EXIT_FAIL, "FAILED: child of fork #%u verified only "
                        "%llu blocks, %llu promised", f, (unsigned long long)got,
                        (unsigned long long)per_child);
        res->forks++;
        res->child_verified += got;
    }
    atomic_store(&sh->stop, true);
    for (unsigned i = 0; i < p->hammers; i++)
        pthread_join(th[i].tid, NULL);
    for (unsigned j = 0; j < XCHG; j++) {
        struct blk *rec = atomic_load(&sh->xchg[j]);
        if (rec) {
            blk_free(rec, "before free of an exchanged block in the main thread");
            free(rec);
            res->parent_verified++;
        }
    }
    for (unsigned i = 0; i < MAIN_SET; i++)
        blk_free(&main_set[i], "before free in the forking thread");
    res->parent_verified += MAIN_SET + atomic_load(&sh->hammer_verified);
    res->hammer_ops = atomic_load(&sh->hammer_ops);
    if (res->hammer_ops < 1000ULL * p->hammers)
        stress_fail(STRESS_EXIT_FAIL, "FAILED: hammer threads did only %llu operations",
                    (unsigned long long)res->hammer_ops);
    stress_meta_free(main_set, MAIN_SET * sizeof *main_set);
    stress_meta_free(th, p->hammers * sizeof *th);
    stress_meta_free(sh, sizeof *sh);
}

#ifndef STRESS_NO_MAIN
int main(int argc, char **argv)
{
    struct stress_opts o;
    stress_init(argc, argv, "fork", &o);
    struct fork_params p;
    fork_preset(&p, o.level, o.seed);
    double t0 = stress_now();
    struct fork_result res;
    fork_run(&p, &res);
    stress_expect("forks", res.forks, p.forks);
    stress_expect("blocks verified in children", res.child_verified,
                  (uint64_t)p.forks * (MAIN_SET + 2 * p.child_ops));
    stress_summary(t0, "%llu blocks verified (%llu forks from %u+1 threads: %llu in children, "
                   "%llu in the parent; %llu hammer allocations)",
                   (unsigned long long)(res.child_verified + res.parent_verified),
                   (unsigned long long)res.forks, p.hammers,
                   (unsigned long long)res.child_verified,
                   (unsigned long long)res.parent_verified,
                   (unsigned long long)res.hammer_ops);
    return 0;
}
#endif
