/* Shared checking helpers of the C tests: CHECK/CHECKF report the failed expression
 * with file, line and test group, then end the process with exit status 1.  The report is
 * written with write(2), so it is safe in forked children and with other threads still
 * running. */
#ifndef ARENALLOC_TEST_CHECK_H
#define ARENALLOC_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static const char *g_group = "?"; /* current test group, for failure messages */
static int g_in_child;             /* set in forked children */

static void check_failed(const char *file, int line, const char *expr,
                         const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

static void check_failed(const char *file, int line, const char *expr,
                         const char *fmt, ...)
{
    char msg[1024];
    int len = snprintf(msg, sizeof msg, "%s:%d: [%s%s] CHECK failed: %s", file,
                       line, g_group, g_in_child ? ", forked child" : "", expr);
    if (fmt && len > 0 && (size_t)len < sizeof msg) {
        va_list ap;
        va_start(ap, fmt);
        len += snprintf(msg + len, sizeof msg - len, "  -- ");
        if ((size_t)len < sizeof msg)
            len += vsnprintf(msg + len, sizeof msg - len, fmt, ap);
        va_end(ap);
    }
    if (len < 0 || (size_t)len >= sizeof msg - 1)
        len = (int)sizeof msg - 2;
    msg[len++] = '\n';
    fflush(stdout);
    if (write(2, msg, (size_t)len) < 0) {
        /* nothing sensible left to do */
    }
    _exit(1);
}

/* CHECK(expr): fail the test run (exit 1) if expr is false. */
#define CHECK(expr)                                                         \
    do {                                                                    \
        if (!(expr))                                                        \
            check_failed(__FILE__, __LINE__, #expr, NULL);                  \
    } while (0)

/* CHECKF(expr, fmt, ...): like CHECK, plus a printf-style detail message. */
#define CHECKF(expr, ...)                                                   \
    do {                                                                    \
        if (!(expr))                                                        \
            check_failed(__FILE__, __LINE__, #expr, __VA_ARGS__);           \
    } while (0)

#endif
