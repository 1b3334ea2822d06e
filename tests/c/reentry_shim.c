/* A library preloaded before arenalloc that allocates from inside functions arenalloc
 * calls while it initialises, as tracing and profiling shims do.  Which function is
 * interposed is chosen at build time:
 *   -DSHIM_KEY_CREATE: pthread_key_create allocates (after the arena space is reserved:
 *                      arenalloc must serve the call);
 *   -DSHIM_GETENV:     getenv allocates (before arenalloc can serve anything: it must say
 *                      so and abort, not wait for itself for ever).
 * Used by tests/c/reentry.sh. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void touch_the_heap(void)
{
    char *p = malloc(100);
    if (p) {
        memset(p, 0x5a, 100);
        free(p);
    }
}

#ifdef SHIM_KEY_CREATE
int pthread_key_create(pthread_key_t *key, void (*destructor)(void *))
{
    static int (*real)(pthread_key_t *, void (*)(void *));
    touch_the_heap();
    if (!real)
        real = (int (*)(pthread_key_t *, void (*)(void *)))dlsym(RTLD_NEXT, "pthread_key_create");
    return real(key, destructor);
}
#endif

#ifdef SHIM_GETENV
char *getenv(const char *name)
{
    extern char **environ;
    size_t n = strlen(name);
    touch_the_heap();
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}
#endif
