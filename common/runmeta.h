/* What every checkpoint file of a run records about the run, so that psrec eval, inspect and
 * a resumed job rebuild exactly the same model and tables: model dims, id-space sizes, the
 * optimizer, the init seed, and where training stood. Stored as section "run.meta" in every
 * shard-<k>.ckpt and in job.ckpt. Version 2 adds the training set's fingerprint (which data's
 * ids the tables are indexed by) and the run id (which run a file belongs to: a shard file
 * copied in from another run's checkpoint of the same step is refused at load). */
#ifndef PSREC_COMMON_RUNMETA_H
#define PSREC_COMMON_RUNMETA_H

#include "common/ckpt.h"

#include <stddef.h>
#include <stdint.h>

#define RUNMETA_VERSION 2u
#define RUNMETA_VERSION_MIN 1u /* version 1: no data_fingerprint, no run_id (read as 0) */

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
    /* version 2 on (0 in older files: unknown, not checked) */
    uint64_t data_fingerprint; /* DatasetMeta.fingerprint of the training set */
    uint64_t run_id;        /* random, made at the run's first life, kept across resumes:
                               every checkpoint file of the run carries it */
} RunMeta;

/* The size of a version 1 run.meta. */
#define RUNMETA_V1_SIZE offsetof(RunMeta, data_fingerprint)

/* Add the "run.meta" section. */
int runmeta_write(CkptWriter *w, const RunMeta *m);
/* Read and check "run.meta" (version, size, non-zero dims). A version 1 section reads with
 * data_fingerprint and run_id 0. Errors name path. */
int runmeta_read(const CkptReader *r, const char *path, RunMeta *m);

/* A new run id: 64 random bits from the kernel, never 0. */
uint64_t runmeta_new_run_id(void);

/* When a and b are both known (non-zero) and differ, the error (PSREC_E_STATE) that file
 * (carrying run id `got`) belongs to another run than `ref_name` (carrying `want`); else 0. */
int runmeta_check_run_id(const char *file, uint64_t got, const char *ref_name, uint64_t want);

#endif
