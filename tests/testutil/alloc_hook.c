/* Link-time allocator wrappers behind tests/testutil/alloc_hook.h. Each __wrap_x counts the
 * call and either fails it (the armed one: NULL, errno ENOMEM) or calls __real_x. Not built
 * into psrec itself, only into the test executables that ask for --wrap.
 * Invariants: at most one failure per arming; realloc that fails leaves the old block as it
 * was (as the real one does), so callers' error paths see exactly what a real ENOMEM gives. */
#include "testutil/alloc_hook.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t m, size_t n);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__real_aligned_alloc(size_t a, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t m, size_t n);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
void *__wrap_aligned_alloc(size_t a, size_t n);

static atomic_long fail_at; /* 0: disarmed */
static atomic_long counted;
static atomic_int fired;
static _Thread_local int exempt;

void alloc_hook_fail_at(long n)
{
    atomic_store(&fail_at, 0);
    atomic_store(&counted, 0);
    atomic_store(&fired, 0);
    atomic_store(&fail_at, n);
}

long alloc_hook_count(void)
{
    return atomic_load(&counted);
}

int alloc_hook_fired(void)
{
    return atomic_load(&fired);
}

void alloc_hook_exempt_thread(int on)
{
    exempt = on;
}

/* 1: fail this allocation. */
static int should_fail(void)
{
    if (exempt)
        return 0;
    long k = atomic_fetch_add(&counted, 1) + 1;
    if (k != atomic_load(&fail_at))
        return 0;
    atomic_store(&fired, 1);
    errno = ENOMEM;
    return 1;
}

void *__wrap_malloc(size_t n)
{
    return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t m, size_t n)
{
    return should_fail() ? NULL : __real_calloc(m, n);
}

void *__wrap_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return should_fail() ? NULL : __real_strdup(s);
}

void *__wrap_aligned_alloc(size_t a, size_t n)
{
    return should_fail() ? NULL : __real_aligned_alloc(a, n);
}
