/* A job's CURVE keys, made by rank 0 at start-up and handed out over MPI (issue 9).
 *
 * Every life of a job makes new keys (a resumed job too): secret keys never touch the disk,
 * and a key of an earlier life, or of any other job, opens no session. Every rank learns
 * every public key (they are public); each rank receives only its own secret key(s): shard
 * k's and/or worker w's (a colocated rank gets both). */
#ifndef PSREC_LAUNCH_JOBKEYS_H
#define PSREC_LAUNCH_JOBKEYS_H

#include "common/keys.h"

typedef struct JobKeys {
    int curve;                          /* 0: ps.security = none, nothing below is set */
    int shards, workers;
    char (*pub)[KEYS_Z85_SIZE];         /* (shards + workers): shard k at k, worker w at
                                           shards + w */
    char shard_sec[KEYS_Z85_SIZE];      /* this rank's shard's secret ("" when none) */
    char worker_sec[KEYS_Z85_SIZE];     /* this rank's worker's secret ("" when none) */
} JobKeys;

/* Collective over MPI_COMM_WORLD (call on every rank, while every rank is alive). With
 * curve = 0 it only records that. Shard k is rank k; worker w is rank first_worker_rank + w
 * (with ps.colocate both are rank k = w). Returns 0 on every rank, or -1 on every rank (rank
 * 0 could not make keys, or an allocation failed somewhere; logged). */
int jobkeys_share(JobKeys *k, int curve, int rank, int size, int shards, int workers,
                  int first_worker_rank);

/* Worker w's client keys (NULL when curve is off): borrowed from k. */
const KeysClient *jobkeys_client(const JobKeys *k, int worker, KeysClient *out);

/* Wipe every secret and free; safe on a zeroed or already finished JobKeys. */
void jobkeys_fini(JobKeys *k);

#endif
