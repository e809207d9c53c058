/* Allocation-failure injection for tests (as SQLite's test_malloc): the Nth allocation made
 * from now fails with ENOMEM.
 *
 * Only a test executable linked with
 *   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=aligned_alloc
 * has it (tests/CMakeLists.txt: PSREC_ALLOC_HOOK_TESTS), so release builds pay nothing. The
 * wrap covers every call our own objects (the static psrec libraries and the test) make;
 * shared libraries (libzmq, liblmdb, libprotobuf-c) allocate unhooked, except where we hand
 * them an allocator (protobuf-c unpacking in common/wire.c). Under ASan the __real_ functions
 * are ASan's, so leaks of the paths under test are still found.
 *
 * Counting is process-wide (atomic), so allocations of every thread count, except those of
 * threads that called alloc_hook_exempt_thread(1) (a test's own client code). */
#ifndef PSREC_TESTUTIL_ALLOC_HOOK_H
#define PSREC_TESTUTIL_ALLOC_HOOK_H

/* Arm: the nth counted allocation from now fails (n >= 1), and only that one; n = 0 disarms.
 * Also resets the count. */
void alloc_hook_fail_at(long n);

/* Counted allocations since the last alloc_hook_fail_at. */
long alloc_hook_count(void);

/* 1 once the armed failure was injected (since the last alloc_hook_fail_at). */
int alloc_hook_fired(void);

/* on = 1: allocations of the calling thread are neither counted nor failed. */
void alloc_hook_exempt_thread(int on);

#endif
