/* What every checkpoint file of a run records about the run, so that psrec eval, inspect and
 * a resumed job rebuild exactly the same model and tables: model dims, id-space sizes, the
 * optimizer, the init seed, and where training stood. Stored as section "run.meta". */
#ifndef PSREC_COMMON_RUNMETA_H
#define PSREC_COMMON_RUNMETA_H

#include "common/ckpt.h"

#include <stdint.h>

#define RUNMETA_VERSION 1u

typedef struct RunMeta {
    uint32_t version;       /* RUNMETA_VERSION */
    uint32_t size;          /* sizeof(RunMeta) */
    uint32_t E, H, title_len, his_len, K;
    uint32_t optimizer;     /* OptimKind */
    float lr, beta1, beta2, eps;
    uint64_t vocab_rows, category_rows, user_rows;
    uint64_t seed;          /* parameter init seed */
    uint64_t step;          /* global steps done */
    uint64_t epoch;         /* epoch of the next sample */
    uint32_t shards;        /* shard files in the checkpoint */
    uint32_t shard;         /* which one this file is */
    uint32_t workers;       /* worker state files in the checkpoint */
    uint32_t reserved;
} RunMeta;

/* Add the "run.meta" section. */
int runmeta_write(CkptWriter *w, const RunMeta *m);
/* Read and check "run.meta" (version, size, non-zero dims). Errors name path. */
int runmeta_read(const CkptReader *r, const char *path, RunMeta *m);

#endif
