/* The program run under tests/c/reentry_shim.c: allocates on the main thread and on
 * threads that exit (their heaps must be abandoned and adopted as usual), then checks
 * every block kept its contents. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *worker(void *arg)
{
    size_t seed = (size_t)arg;
    for (int round = 0; round < 100; round++) {
        void *blocks[64];
        for (int i = 0; i < 64; i++) {
            blocks[i] = malloc(16 + (seed * 7 + (size_t)i * 13) % 600);
            if (!blocks[i])
                return (void *)1;
            memset(blocks[i], (int)(i + seed), 16);
        }
        for (int i = 0; i < 64; i++) {
            unsigned char *b = blocks[i];
            if (b[0] != (unsigned char)(i + seed) || b[15] != (unsigned char)(i + seed))
                return (void *)1;
            free(b);
        }
    }
    return NULL;
}

int main(void)
{
    for (int wave = 0; wave < 4; wave++) {
        pthread_t t[4];
        for (size_t i = 0; i < 4; i++)
            if (pthread_create(&t[i], NULL, worker, (void *)(i + 1 + 4 * (size_t)wave)) != 0)
                return 1;
        for (int i = 0; i < 4; i++) {
            void *r;
            pthread_join(t[i], &r);
            if (r)
                return 1;
        }
    }
    if (worker((void *)99))
        return 1;
    puts("reentry: ok");
    return 0;
}
