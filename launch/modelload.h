/* One way to get a trained model for use (eval, recommend) and one rule for whether a
 * dataset fits a model (eval, recommend, train --resume).
 *
 * modelload_open resolves a --ckpt path to its newest valid step dir (ckptdir_resolve: every
 * file's CRC checked), loads every shard file into one in-process shard (parameters only) and
 * keeps the step dir's MANIFEST, which identifies the checkpoint (a cache of derived data,
 * like recommend's news vectors, is keyed by it).
 *
 * The compatibility rule (one for eval, recommend, train --resume and dev vs train): a
 * dataset fits a model (or a training set) when its id spaces (vocabulary, categories, users)
 * are the same: the model's tables are indexed by those ids, and a split prepared with prep
 * --vocab-from <the train set> shares them. "The same" means equal fingerprints
 * (DatasetMeta.fingerprint, recorded in a checkpoint as RunMeta.data_fingerprint) and equal
 * row counts. Where one side predates fingerprints (0: a dataset before format version 3 or
 * a checkpoint before run.meta version 2), only the row counts are compared, with a warning
 * saying how to get the full check. */
#ifndef PSREC_LAUNCH_MODELLOAD_H
#define PSREC_LAUNCH_MODELLOAD_H

#include "common/dataset.h"
#include "common/runmeta.h"
#include "launch/ckptdir.h"
#include "server/shard.h"
#include "worker/model.h"

#include <stdint.h>

typedef struct LoadedModel {
    char step_dir[4200];     /* the verified step dir */
    RunMeta meta;            /* shard file 0's run.meta */
    ModelDims dims;          /* from meta (run_meta_dims) */
    CkptManifest manifest;   /* the step dir's MANIFEST (files with sizes and CRCs), owned */
    Shard *shard;            /* every row of the checkpoint, owned */
} LoadedModel;

/* Resolve and load ckpt (a run's checkpoint root or one step dir) into *m. Returns 0 or an
 * error whose message names the path and the reason; on error *m holds nothing to free
 * (modelload_close is still safe). */
int modelload_open(const char *ckpt, LoadedModel *m);
/* Free what m owns; safe on a zeroed or failed LoadedModel. */
void modelload_close(LoadedModel *m);

/* One side of the rule: what it is called in messages (a path) and its id spaces. */
typedef struct IdSpaces {
    const char *name;
    const char *vocab_from; /* what the fix says to pass to prep --vocab-from */
    uint64_t fingerprint; /* 0: unknown (older files) */
    uint64_t vocab_rows, category_rows, user_rows;
} IdSpaces;

IdSpaces modelload_ids_of_model(const RunMeta *model, const char *name);
IdSpaces modelload_ids_of_data(const DatasetMeta *dm, const char *name);

/* The compatibility rule above: 0 when data fits ref, else PSREC_E_STATE with a message
 * naming both (paths and fingerprints, or row counts) and the fix. Logs a warning when only
 * row counts could be compared. */
int modelload_check_ids(const IdSpaces *ref, const IdSpaces *data);
/* The same rule for the model in step dir model_name and the dataset data. */
int modelload_check_data(const RunMeta *model, const char *model_name, const DatasetMeta *dm,
                         const char *data);

#endif
