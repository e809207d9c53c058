/* Per-job CURVE keys over MPI (see jobkeys.h). Invariants: rank 0's table of every secret
 * is wiped and freed before jobkeys_share returns; a rank's own secrets are wiped by their
 * users (right after the sockets are set up) and again by jobkeys_fini. */
#include "launch/jobkeys.h"

#include "common/error.h"
#include "common/log.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

typedef char RankSecrets[2][KEYS_Z85_SIZE]; /* [0] shard's, [1] worker's */

/* Rank 0: one keypair per shard and per worker; publics into k->pub, secrets by rank. */
static int make_all(JobKeys *k, int size, int first_worker_rank, RankSecrets *secs)
{
    for (int i = 0; i < k->shards + k->workers; i++) {
        KeyPair kp;
        if (keys_pair_new(&kp)) {
            LOG_ERROR("%s", psrec_errmsg());
            return -1;
        }
        const int shard = i < k->shards;
        const int r = shard ? i : first_worker_rank + (i - k->shards);
        if (r < 0 || r >= size) {
            keys_wipe(&kp, sizeof kp);
            return -1;
        }
        memcpy(k->pub[i], kp.pub, KEYS_Z85_SIZE);
        memcpy(secs[r][shard ? 0 : 1], kp.sec, KEYS_Z85_SIZE);
        keys_wipe(&kp, sizeof kp);
    }
    return 0;
}

int jobkeys_share(JobKeys *k, int curve, int rank, int size, int shards, int workers,
                  int first_worker_rank)
{
    memset(k, 0, sizeof *k);
    k->curve = curve;
    k->shards = shards;
    k->workers = workers;
    if (!curve)
        return 0;
    const int npub = shards + workers;
    RankSecrets *secs = NULL;
    RankSecrets mine;
    int ok = (k->pub = calloc((size_t)npub, sizeof *k->pub)) != NULL;
    if (rank == 0) {
        ok = ok && (secs = calloc((size_t)size, sizeof *secs)) != NULL;
        if (!ok)
            LOG_ERROR("security: out of memory for %d CURVE keypairs", npub);
        ok = ok && make_all(k, size, first_worker_rank, secs) == 0;
    } else if (!ok) {
        LOG_ERROR("security: out of memory for %d public keys", npub);
    }
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (all) {
        MPI_Bcast(k->pub, npub * KEYS_Z85_SIZE, MPI_CHAR, 0, MPI_COMM_WORLD);
        MPI_Scatter(secs, (int)sizeof(RankSecrets), MPI_CHAR, mine, (int)sizeof(RankSecrets),
                    MPI_CHAR, 0, MPI_COMM_WORLD);
        memcpy(k->shard_sec, mine[0], KEYS_Z85_SIZE);
        memcpy(k->worker_sec, mine[1], KEYS_Z85_SIZE);
        keys_wipe(mine, sizeof mine);
        if (rank == 0)
            LOG_INFO("security: CURVE with new keys for this life: %d shard and %d worker "
                     "keypair(s), handed out over MPI, never written to disk", shards, workers);
    }
    if (secs) {
        keys_wipe(secs, (size_t)size * sizeof *secs);
        free(secs);
    }
    if (!all) {
        jobkeys_fini(k);
        return -1;
    }
    return 0;
}

const KeysClient *jobkeys_client(const JobKeys *k, int worker, KeysClient *out)
{
    if (!k->curve)
        return NULL;
    *out = (KeysClient){.pub = k->pub[k->shards + worker],
                        .sec = k->worker_sec,
                        .servers = (const char (*)[KEYS_Z85_SIZE])k->pub};
    return out;
}

void jobkeys_fini(JobKeys *k)
{
    keys_wipe(k->shard_sec, sizeof k->shard_sec);
    keys_wipe(k->worker_sec, sizeof k->worker_sec);
    free(k->pub);
    k->pub = NULL;
}
