/* The worker's view of the parameter server: pull rows, push gradients, mark step
 * boundaries. Asynchronous by contract: pull and push return a ticket and only ps_wait()
 * guarantees the output buffer is filled (pull) or the input buffer may be reused (push).
 * An implementation is a table of operations: the in-process one (launch/) completes every
 * request at once; the ZeroMQ one talks to remote shards. The worker never knows which. */
#ifndef PSREC_WORKER_PS_CLIENT_H
#define PSREC_WORKER_PS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

typedef uint64_t PsTicket;

typedef struct PsClientOps {
    /* Request rows keys[0..n) of table into out (n, width). */
    int (*pull)(void *impl, uint32_t table, const uint64_t *keys, size_t n, float *out,
                PsTicket *ticket);
    /* Send gradient rows grads (n, width) for keys[0..n) of table. */
    int (*push)(void *impl, uint32_t table, const uint64_t *keys, size_t n, const float *grads,
                PsTicket *ticket);
    /* Wait for one request; returns its result code. */
    int (*wait)(void *impl, PsTicket ticket);
    /* The worker finished step `clock` (all its pushes for it are sent). */
    int (*clock)(void *impl, uint64_t clock);
    /* Floats per row of a table (0 if unknown). */
    uint32_t (*width)(void *impl, uint32_t table);
    /* The step that the following pulls and pushes belong to (their clock on the wire). A
     * worker that issues step t+1's pulls before finishing step t says so with this. */
    void (*set_clock)(void *impl, uint64_t clock);
    /* 1 when replies come later and a shard answers a pull only once its consistency gate
     * allows (remote shards): a worker may then issue the next step's pull before pushing
     * this step's gradients. 0 when a request completes at issue time (in-process), where
     * that would read rows without this step's update. */
    int async;
} PsClientOps;

typedef struct PsClient {
    const PsClientOps *ops;
    void *impl;
} PsClient;

static inline int ps_pull(PsClient *c, uint32_t table, const uint64_t *keys, size_t n,
                          float *out, PsTicket *t)
{
    return c->ops->pull(c->impl, table, keys, n, out, t);
}

static inline int ps_push(PsClient *c, uint32_t table, const uint64_t *keys, size_t n,
                          const float *grads, PsTicket *t)
{
    return c->ops->push(c->impl, table, keys, n, grads, t);
}

static inline int ps_wait(PsClient *c, PsTicket t)
{
    return c->ops->wait(c->impl, t);
}

static inline void ps_set_clock(PsClient *c, uint64_t clock)
{
    c->ops->set_clock(c->impl, clock);
}

static inline int ps_clock(PsClient *c, uint64_t clock)
{
    return c->ops->clock(c->impl, clock);
}

/* Pull and wait. */
static inline int ps_pull_sync(PsClient *c, uint32_t table, const uint64_t *keys, size_t n,
                               float *out)
{
    PsTicket t;
    int rc = ps_pull(c, table, keys, n, out, &t);
    return rc ? rc : ps_wait(c, t);
}

static inline int ps_push_sync(PsClient *c, uint32_t table, const uint64_t *keys, size_t n,
                               const float *grads)
{
    PsTicket t;
    int rc = ps_push(c, table, keys, n, grads, &t);
    return rc ? rc : ps_wait(c, t);
}

#endif
