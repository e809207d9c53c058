/* Loading a trained model and the one dataset compatibility rule (see modelload.h). */
#include "launch/modelload.h"

#include "common/error.h"
#include "common/log.h"
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

IdSpaces modelload_ids_of_model(const RunMeta *model, const char *name)
{
    return (IdSpaces){.name = name,
                      .vocab_from = "<the model's training set>",
                      .fingerprint = model->data_fingerprint,
                      .vocab_rows = model->vocab_rows,
                      .category_rows = model->category_rows,
                      .user_rows = model->user_rows};
}

IdSpaces modelload_ids_of_data(const DatasetMeta *dm, const char *name)
{
    return (IdSpaces){.name = name,
                      .vocab_from = name,
                      .fingerprint = dm->fingerprint,
                      .vocab_rows = dm->vocab_rows,
                      .category_rows = dm->category_rows,
                      .user_rows = dm->user_rows};
}

int modelload_check_ids(const IdSpaces *ref, const IdSpaces *data)
{
    const int known = ref->fingerprint && data->fingerprint;
    if (known && ref->fingerprint != data->fingerprint)
        return psrec_errf(PSREC_E_STATE,
                          "%s (fingerprint %016llx) does not share the vocabulary, categories "
                          "and users of %s (fingerprint %016llx); prepare it with psrec prep "
                          "--vocab-from %s",
                          data->name, (unsigned long long)data->fingerprint, ref->name,
                          (unsigned long long)ref->fingerprint, ref->vocab_from);
    if (data->vocab_rows != ref->vocab_rows || data->category_rows != ref->category_rows ||
        data->user_rows != ref->user_rows)
        return psrec_errf(PSREC_E_STATE,
                          "%s does not share the vocabulary, categories and users of %s "
                          "(%llu/%llu/%llu vocab/user/category rows vs %llu/%llu/%llu); prepare "
                          "it with psrec prep --vocab-from %s",
                          data->name, ref->name, (unsigned long long)data->vocab_rows,
                          (unsigned long long)data->user_rows,
                          (unsigned long long)data->category_rows,
                          (unsigned long long)ref->vocab_rows, (unsigned long long)ref->user_rows,
                          (unsigned long long)ref->category_rows, ref->vocab_from);
    if (!known)
        LOG_WARN("%s has no data fingerprint (made by an older psrec): only table sizes "
                 "were compared with %s; re-run psrec prep (and train) for the full check",
                 ref->fingerprint ? data->name : ref->name,
                 ref->fingerprint ? ref->name : data->name);
    return 0;
}

int modelload_check_data(const RunMeta *model, const char *model_name, const DatasetMeta *dm,
                         const char *data)
{
    const IdSpaces r = modelload_ids_of_model(model, model_name);
    const IdSpaces d = modelload_ids_of_data(dm, data);
    return modelload_check_ids(&r, &d);
}
