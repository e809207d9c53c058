/* One way to get a trained model for use (eval, recommend) and one rule for whether a
 * dataset fits a model (eval, recommend, train --resume).
 *
 * modelload_open resolves a --ckpt path to its newest valid step dir (ckptdir_resolve: every
 * file's CRC checked), loads every shard file into one in-process shard (parameters only) and
 * keeps the step dir's MANIFEST, which identifies the checkpoint (a cache of derived data,
 * like recommend's news vectors, is keyed by it).
 *
 * The compatibility rule: a dataset fits a model when its id spaces (vocabulary, categories,
 * users) have exactly the model's row counts: the model's tables are indexed by those ids,
 * and a split prepared with prep --vocab-from <the train set> shares them. */
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

/* The compatibility rule above, for a model described by model and a dataset whose id
 * spaces have vocab_rows, category_rows and user_rows rows. data names the dataset in the
 * message. Returns 0 or PSREC_E_STATE with a message naming both sides and the fix. */
int modelload_check_ids(const RunMeta *model, uint64_t vocab_rows, uint64_t category_rows,
                        uint64_t user_rows, const char *data);
/* The same rule against a dataset's meta. */
int modelload_check_data(const RunMeta *model, const DatasetMeta *dm, const char *data);

#endif
