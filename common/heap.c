/* Heap settings for the PS path (see heap.h).
 *
 * Invariants: mallopt runs at most once per process (pthread_once), before or while other
 * threads allocate (glibc's mallopt takes the arena locks). A malloc tuned by the environment
 * is left as the user set it.
 * Not done here: anything for allocators other than glibc's. */
#include "common/heap.h"

#include <pthread.h>
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int tuned;

static void tune(void)
{
#if defined(__GLIBC__)
    if (getenv("MALLOC_MMAP_THRESHOLD_") || getenv("MALLOC_TRIM_THRESHOLD_") ||
        getenv("GLIBC_TUNABLES"))
        return;
    /* Setting either also stops glibc's dynamic threshold, which would otherwise move the
     * mmap threshold to the size of the last mapped block freed and trim at twice it. */
    tuned = mallopt(M_MMAP_THRESHOLD, (int)HEAP_MMAP_THRESHOLD) == 1 &&
            mallopt(M_TRIM_THRESHOLD, (int)HEAP_TRIM_THRESHOLD) == 1;
#endif
}

int heap_tune_messages(void)
{
    pthread_once(&once, tune);
    return tuned;
}
