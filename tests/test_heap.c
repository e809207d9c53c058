/* Heap settings for the PS path: after heap_tune_messages, a message-sized block (2 MiB) comes
 * from the heap, not from a mapping of its own, and freeing it leaves the heap mapped (not
 * trimmed back), so the next one faults nothing in. Skipped where malloc is not glibc's or
 * is replaced (sanitizers). */
#include "common/heap.h"
#include "testutil/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define REPLACED_MALLOC 1
#else
#define REPLACED_MALLOC 0
#endif

static void test_blocks_stay_in_heap(void)
{
#if defined(__GLIBC__) && !REPLACED_MALLOC && defined(M_MMAP_THRESHOLD)
    unsetenv("GLIBC_TUNABLES");
    unsetenv("MALLOC_MMAP_THRESHOLD_");
    unsetenv("MALLOC_TRIM_THRESHOLD_");
    CU_ASSERT_FATAL(heap_tune_messages() == 1);
    CU_ASSERT(heap_tune_messages() == 1); /* once, and it stays so */
    const size_t size = 2u << 20;
    struct mallinfo2 before = mallinfo2();
    char *p = malloc(size);
    CU_ASSERT_FATAL(p != NULL);
    memset(p, 1, size);
    struct mallinfo2 held = mallinfo2();
    CU_ASSERT_EQUAL(held.hblks, before.hblks); /* no mapping of its own */
    CU_ASSERT(held.arena >= before.arena + size);
    free(p);
    struct mallinfo2 after = mallinfo2();
    CU_ASSERT(after.arena >= before.arena + size); /* not trimmed back */
    CU_ASSERT(after.fordblks >= size);
#else
    fprintf(stderr, "\n  skipped: malloc is not glibc's or is replaced\n");
#endif
}

int main(void)
{
    static const TuTest tests[] = {
        {"message-sized blocks stay in the heap", test_blocks_stay_in_heap},
        {NULL, NULL},
    };
    tu_add_suite("heap", tests);
    return tu_run_all();
}
