/* The in-process parameter server: a PsClient whose requests go straight to a Shard in the
 * same process (single-process training, psrec eval, benchmarks). Same optimizer code and
 * same tables as the distributed shards. */
#ifndef PSREC_LAUNCH_INPROC_H
#define PSREC_LAUNCH_INPROC_H

#include "server/shard.h"
#include "worker/ps_client.h"

/* A client over shard (borrowed: it must outlive the client). Every request completes
 * before pull/push return; wait returns the stored result. */
void inproc_client_init(PsClient *client, Shard *shard);

#endif
