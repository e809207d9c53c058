/* Loading a trained model and the one dataset compatibility rule (see modelload.h). */
#include "launch/modelload.h"

#include "common/error.h"
#include "launch/run.h"

#include <stdio.h>
#include <string.h>

int modelload_open(const char *ckpt, LoadedModel *m)
{
    memset(m, 0, sizeof *m);
    int rc;
    if ((rc = ckptdir_resolve(ckpt, m->step_dir, sizeof m->step_dir)) ||
        (rc = ckptdir_read_manifest(m->step_dir, &m->manifest)) ||
        (rc = ckptdir_load_model(m->step_dir, 1, &m->meta, &m->shard))) {
        modelload_close(m);
        return rc;
    }
    run_meta_dims(&m->meta, &m->dims);
    return 0;
}

void modelload_close(LoadedModel *m)
{
    shard_free(&m->shard);
    ckptdir_manifest_fini(&m->manifest);
}

int modelload_check_ids(const RunMeta *model, uint64_t vocab_rows, uint64_t category_rows,
                        uint64_t user_rows, const char *data)
{
    if (vocab_rows == model->vocab_rows && category_rows == model->category_rows &&
        user_rows == model->user_rows)
        return 0;
    return psrec_errf(PSREC_E_STATE,
                      "%s does not share the model's vocabulary/users/categories (%llu/%llu/%llu "
                      "rows vs %llu/%llu/%llu); prepare it with --vocab-from the training set",
                      data, (unsigned long long)vocab_rows, (unsigned long long)user_rows,
                      (unsigned long long)category_rows, (unsigned long long)model->vocab_rows,
                      (unsigned long long)model->user_rows,
                      (unsigned long long)model->category_rows);
}

int modelload_check_data(const RunMeta *model, const DatasetMeta *dm, const char *data)
{
    return modelload_check_ids(model, dm->vocab_rows, dm->category_rows, dm->user_rows, data);
}
