/* In-process PsClient over a Shard: requests complete synchronously, the ticket carries the
 * result code so that ps_wait reports it as a remote client would. */
#include "launch/inproc.h"

#include <stdint.h>

/* A completed request's ticket is its result code, which ps_wait hands back. */
static PsTicket done(int rc)
{
    return (PsTicket)(int64_t)rc;
}

static int ip_pull(void *impl, uint32_t table, const uint64_t *keys, size_t n, float *out,
                   PsTicket *t)
{
    *t = done(shard_pull(impl, table, keys, n, out));
    return 0;
}

static int ip_push(void *impl, uint32_t table, const uint64_t *keys, size_t n,
                   const float *grads, PsTicket *t)
{
    *t = done(shard_push(impl, table, keys, n, grads));
    return 0;
}

static int ip_wait(void *impl, PsTicket t)
{
    (void)impl;
    return (int)(int64_t)t;
}

static int ip_clock(void *impl, uint64_t clock)
{
    (void)impl;
    (void)clock;
    return 0;
}

static void ip_set_clock(void *impl, uint64_t clock)
{
    (void)impl;
    (void)clock;
}

static uint32_t ip_width(void *impl, uint32_t table)
{
    return shard_table_width(impl, table);
}

static const PsClientOps inproc_ops = {ip_pull,  ip_push,      ip_wait, ip_clock,
                                        ip_width, ip_set_clock, 0};

void inproc_client_init(PsClient *client, Shard *shard)
{
    client->ops = &inproc_ops;
    client->impl = shard;
}
