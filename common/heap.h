/* Heap settings of a psrec process for the parameter-server path.
 *
 * A worker and a shard send and receive a step's rows as messages of about 1 MiB (the
 * chunks of worker/ps_zmq.h), and ZeroMQ's CURVE allocates two more buffers of a message's
 * size per message and direction. With glibc's defaults each such buffer is a fresh mmap
 * (or heap memory trimmed back to the system right after the free), so every one of its
 * pages faults in, zeroed by the kernel, and is unmapped again: about 15 ms of CPU per
 * reference step. heap_tune_messages keeps them in the heap instead. */
#ifndef PSREC_COMMON_HEAP_H
#define PSREC_COMMON_HEAP_H

#define HEAP_MMAP_THRESHOLD (4u << 20)  /* allocations below it come from the heap */
#define HEAP_TRIM_THRESHOLD (64u << 20) /* free heap top kept up to this, not given back */

/* With glibc, set M_MMAP_THRESHOLD and M_TRIM_THRESHOLD to the values above, once per
 * process (any thread, any number of calls), unless the environment tunes malloc itself
 * (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ or GLIBC_TUNABLES set). Elsewhere: nothing.
 * Returns 1 when it set them (on this call or an earlier one), 0 when it left malloc alone. */
int heap_tune_messages(void);

#endif
