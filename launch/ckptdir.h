/* Checkpoint directories: the on-disk layout of a run's checkpoints and its atomic update.
 *
 *   <root>/step-0000001234/shard-<k>.ckpt   one per server shard: run.meta + its tables
 *   <root>/step-0000001234/worker-<r>.ckpt  one per worker: run.meta + worker.state
 *   <root>/LATEST                           "step-0000001234\n": the newest complete one
 * A step directory is written as "<name>.tmp" and renamed when complete; LATEST is replaced
 * by rename after that. So a crash at any point leaves LATEST naming a complete checkpoint. */
#ifndef PSREC_LAUNCH_CKPTDIR_H
#define PSREC_LAUNCH_CKPTDIR_H

#include "common/runmeta.h"
#include "server/shard.h"
#include "worker/reader.h"

#include <stddef.h>
#include <stdint.h>

/* A worker's part of a consistent cut. */
typedef struct WorkerState {
    ReaderPosition pos;   /* next sample (negatives are keyed by sample, so no RNG state) */
    uint64_t step;
} WorkerState;

/* Write a single-process checkpoint (one shard, one worker) for meta->step into root, then
 * delete all but the newest `keep` step directories. Returns 0 or an error with detail. */
int ckptdir_save(const char *root, const RunMeta *meta, const Shard *shard,
                 const WorkerState *worker, int keep);

/* The steps of a multi-process checkpoint: one rank creates <root>/step-N.tmp (begin; the
 * path is returned in tmpdir), every shard writes its file into it (write_shard), then one
 * rank renames it into place, points LATEST at it and prunes old ones (publish), or removes
 * it on failure (abandon). ckptdir_save is these steps for one process. */
int ckptdir_begin(const char *root, uint64_t step, char *tmpdir, size_t size);
int ckptdir_write_shard(const char *dir, const RunMeta *meta, const Shard *shard);
int ckptdir_publish(const char *root, uint64_t step, int keep);
void ckptdir_abandon(const char *tmpdir);

/* Resolve path to a step directory: a root with LATEST, or a step directory itself.
 * Returns 0 or PSREC_E_NOTFOUND with a message naming path. */
int ckptdir_resolve(const char *path, char *step_dir, size_t size);

/* Load every shard file of step_dir (their tables hold disjoint rows) into one shard, for
 * evaluation or single-process use of a distributed run's model. */
int ckptdir_load_model(const char *step_dir, int params_only, RunMeta *meta, Shard **out);

/* Deprecated: run_meta_shard_options (launch/run.h); kept until launch/job.c switches. */
void ckptdir_shard_options(const RunMeta *meta, ShardOptions *out);

#endif
