/*
 * soak.c - all the scenarios at once for N seconds, watching the RSS.
 *
 * One driver thread per scenario (prodcons, churn, realloc, aligned, fork)
 * runs rounds of it (small parameters, a new seed each round) back to back
 * until --seconds have passed (default 8 in --quick, 180 in --full), so
 * short-lived threads exit, remote frees and forks happen all the time while
 * the others run.  Every block is verified as in the single programs.
 *
 * The main thread samples the RSS (/proc/self/statm) every second.  After a
 * warm-up (a tenth of the run, at least 2 s) the samples are split in thirds;
 * the run fails if
 *   - the highest RSS of the last third exceeds 1.5 x the highest of the
 *     first third plus 32 MiB (memory keeps growing: a leak through thread
 *     exits or remote frees), or
 *   - any RSS sample exceeds 8 x the peak live set (bytes in blocks the
 *     program holds, tracked by the helpers) plus 512 MiB (checked as the
 *     samples come: the run stops at once).  Generous on purpose: glibc's
 *     malloc, fragmenting across its arenas, sits at about 6 x the live set
 *     (470 -> 750 MiB over the first two minutes of a --full soak).
 * Promise: every scenario completed at least one round, and at least
 * 1000 blocks per second were verified.
 */
#include "stress.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SC_PRODCONS, SC_CHURN, SC_REALLOC, SC_ALIGNED, SC_FORK, SC_COUNT };
static const char *const sc_name[SC_COUNT] = {"prodcons", "churn", "realloc",
                                              "aligned", "fork"};

/* The absolute RSS limit, from the peak live set. */
#define RSS_BOUND(live_peak) (8 * (live_peak) + 512 * MiB)

struct driver {
    unsigned sc;
    uint64_t seed;
    double deadline;
    uint64_t rounds, verified;
    pthread_t tid;
};

static void *drive(void *v)
{
    struct driver *d = v;
    while (d->rounds == 0 || stress_now() < d->deadline) {
        uint64_t seed = d->seed + 1000003 * d->rounds;
        switch (d->sc) {
        case SC_PRODCONS: {
            struct prodcons_params p;
            prodcons_preset(&p, STRESS_SOAK_ROUND, seed);
            d->verified += prodcons_run(&p);
            break;
        }
        case SC_CHURN: {
            struct churn_params p;
            churn_preset(&p, STRESS_SOAK_ROUND, seed);
            d->verified += churn_run(&p);
            break;
        }
        case SC_REALLOC: {
            struct realloc_params p;
            uint64_t reallocs;
            realloc_preset(&p, STRESS_SOAK_ROUND, seed);
            realloc_run(&p, &reallocs);
            d->verified += reallocs;
            break;
        }
        case SC_ALIGNED: {
            struct aligned_params p;
            aligned_preset(&p, STRESS_SOAK_ROUND, seed);
            d->verified += aligned_run(&p);
            break;
        }
        case SC_FORK: {
            struct fork_params p;
            struct fork_result r;
            fork_preset(&p, STRESS_SOAK_ROUND, seed);
            fork_run(&p, &r);
            d->verified += r.child_verified + r.parent_verified;
            break;
        }
        }
        d->rounds++;
    }
    return NULL;
}

static double mib(size_t b)
{
    return (double)b / (double)MiB;
}

static size_t max_of(const size_t *v, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

int main(int argc, char **argv)
{
    struct stress_opts o;
    stress_init(argc, argv, "soak", &o);
    double seconds = o.seconds > 0 ? o.seconds : o.level == STRESS_FULL ? 180 : 8;
    double warmup = seconds / 10 < 2 ? 2 : seconds / 10;
    if (seconds < warmup + 3)
        stress_fail(STRESS_EXIT_USAGE, "--seconds must be at least %.0f", warmup + 3);
    stress_track_live = true;

    double t0 = stress_now();
    struct driver d[SC_COUNT];
    memset(d, 0, sizeof d);
    for (unsigned i = 0; i < SC_COUNT; i++) {
        d[i].sc = i;
        d[i].seed = o.seed + 7919 * i;
        d[i].deadline = t0 + seconds;
        if (pthread_create(&d[i].tid, NULL, drive, &d[i]))
            stress_fail(STRESS_EXIT_FAIL, "pthread_create failed");
    }

    /* one sample per second after the warm-up, until the deadline */
    size_t cap = (size_t)seconds + 2, n = 0;
    size_t *rss = stress_meta_alloc(cap * sizeof *rss);
    size_t *live = stress_meta_alloc(cap * sizeof *live);
    for (unsigned s = 1; t0 + s <= t0 + seconds && n < cap; s++) {
        double wake = t0 + s, now = stress_now();
        if (wake > now)
            stress_sleep_ms((unsigned)((wake - now) * 1000));
        if (s <= warmup)
            continue;
        rss[n] = stress_rss();
        live[n] = (size_t)atomic_load(&stress_live_bytes);
        if (o.verbose)
            fprintf(stderr, "soak t=%us rss %.1f MiB live %.1f MiB\n", s,
                    mib(rss[n]), mib(live[n]));
        size_t bound = RSS_BOUND((size_t)atomic_load(&stress_live_peak));
        if (rss[n] > bound) /* no need to wait for the end */
            stress_fail(STRESS_EXIT_FAIL,
                        "FAILED: RSS %.1f MiB at %u s exceeds 8 x the live set peak "
                        "(%.1f MiB) + 512 MiB",
                        mib(rss[n]), s, mib((size_t)atomic_load(&stress_live_peak)));
        n++;
    }
    for (unsigned i = 0; i < SC_COUNT; i++)
        pthread_join(d[i].tid, NULL);
    double elapsed = stress_now() - t0;

    uint64_t total = 0;
    char per[512];
    size_t len = 0;
    for (unsigned i = 0; i < SC_COUNT; i++) {
        if (d[i].rounds == 0)
            stress_fail(STRESS_EXIT_FAIL, "FAILED: %s completed no round", sc_name[i]);
        total += d[i].verified;
        len += (size_t)snprintf(per + len, sizeof per - len, "%s%s %llu rounds",
                                i ? ", " : "", sc_name[i],
                                (unsigned long long)d[i].rounds);
    }
    stress_expect("blocks verified", total, (uint64_t)(1000 * seconds));

    /* the RSS verdict */
    if (n < 3)
        stress_fail(STRESS_EXIT_FAIL, "FAILED: only %zu RSS samples", n);
    size_t third = n / 3;
    size_t first = max_of(rss, third), last = max_of(rss + n - third, third);
    size_t peak = max_of(rss, n);
    size_t live_peak = (size_t)atomic_load(&stress_live_peak);
    printf("stress soak: RSS after %.0f s warm-up, %zu samples (MiB):", warmup, n);
    size_t step = n > 60 ? (n + 59) / 60 : 1;
    for (size_t i = 0; i < n; i += step)
        printf(" %.0f", mib(rss[i]));
    printf("\nstress soak: RSS max first third %.1f MiB, last third %.1f MiB "
           "(limit %.1f), overall max %.1f MiB; live set peak %.1f MiB "
           "(RSS limit %.1f)\n",
           mib(first), mib(last), mib(first) * 1.5 + 32, mib(peak), mib(live_peak),
           mib(RSS_BOUND(live_peak)));
    if ((double)last > 1.5 * (double)first + 32.0 * MiB)
        stress_fail(STRESS_EXIT_FAIL,
                    "FAILED: RSS keeps growing: max %.1f MiB in the last third "
                    "against %.1f MiB in the first",
                    mib(last), mib(first));
    if (peak > RSS_BOUND(live_peak))
        stress_fail(STRESS_EXIT_FAIL,
                    "FAILED: RSS %.1f MiB exceeds 8 x the live set peak (%.1f MiB) "
                    "+ 512 MiB",
                    mib(peak), mib(live_peak));
    stress_meta_free(rss, cap * sizeof *rss);
    stress_meta_free(live, cap * sizeof *live);
    stress_summary(t0, "%llu blocks verified in %.0f s (%s)",
                   (unsigned long long)total, elapsed, per);
    return 0;
}
