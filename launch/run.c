/* Shared start-up steps (see run.h). */
#include "launch/run.h"

#include "common/error.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "launch/modelload.h"
#include "server/optim.h"
#include "worker/lstm_gemm.h"

#include <cblas.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int run_open_datasets(const Config *cfg, Dataset **train, Dataset **dev)
{
    *train = *dev = NULL;
    if (dataset_open(cfg->data.train, train)) {
        LOG_ERROR("data.train: %s", psrec_errmsg());
        return -1;
    }
    const DatasetMeta *tm = dataset_meta(*train);
    if (tm->samples == 0 || tm->news == 0) {
        /* Training would run zero steps and exit 0 with an untrained model. */
        LOG_ERROR("data.train %s: dataset has no trainable sample (%llu samples, %llu news); "
                  "prepare it from behaviors with clicks and a non-empty news.tsv",
                  cfg->data.train, (unsigned long long)tm->samples,
                  (unsigned long long)tm->news);
        dataset_free(train);
        return -1;
    }
    if (!cfg->data.dev[0])
        return 0;
    if (dataset_open(cfg->data.dev, dev)) {
        LOG_ERROR("data.dev: %s", psrec_errmsg());
        dataset_free(train);
        return -1;
    }
    /* The rule eval and recommend apply to a model, here with the training set. */
    const IdSpaces t = modelload_ids_of_data(dataset_meta(*train), cfg->data.train);
    const IdSpaces d = modelload_ids_of_data(dataset_meta(*dev), cfg->data.dev);
    if (modelload_check_ids(&t, &d)) {
        LOG_ERROR("data.dev: %s", psrec_errmsg());
        dataset_free(train);
        dataset_free(dev);
        return -1;
    }
    return 0;
}

int run_prepare_dir(const Config *cfg, int append, FILE **metrics)
{
    *metrics = NULL;
    char path[4400];
    if (fs_mkdir_p(cfg->run.dir)) {
        LOG_ERROR("run.dir: %s", psrec_errmsg());
        return -1;
    }
    snprintf(path, sizeof path, "%s/config.effective", cfg->run.dir);
    FILE *f = fopen(path, "w");
    if (!f || config_write(cfg, f) || fclose(f)) {
        LOG_ERROR("%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/metrics.jsonl", cfg->run.dir);
    if (!(*metrics = fopen(path, append ? "a" : "w"))) {
        LOG_ERROR("%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int run_open_log(const Config *cfg)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/log", cfg->run.dir);
    if (log_open_file(path)) {
        LOG_WARN("run.dir: %s; logging to stderr only", psrec_errmsg());
        return -1;
    }
    return 0;
}

ProgressMode run_progress_setup(int reporting)
{
    ProgressMode mode = reporting ? progress_mode_auto() : PROGRESS_OFF;
    log_set_detail_stderr(reporting && mode != PROGRESS_TTY);
    return mode;
}

void run_set_threads(int n)
{
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 1;
    }
    openblas_set_num_threads(n);
    lstm_gemm_set_threads(n); /* the LSTM's own GEMMs: the same cores, not more */
}

/* The model part of the run meta (everything a config alone decides). */
static void meta_model_fields(const Config *cfg, RunMeta *m)
{
    m->E = (uint32_t)cfg->model.word_dim;
    m->H = (uint32_t)cfg->model.hidden;
    m->title_len = (uint32_t)cfg->model.title_len;
    m->his_len = (uint32_t)cfg->model.his_len;
    m->K = (uint32_t)cfg->train.negatives;
}

void run_meta_from_config(const Config *cfg, const DatasetMeta *t, RunMeta *m)
{
    memset(m, 0, sizeof *m);
    meta_model_fields(cfg, m);
    switch (cfg->train.optimizer) {
    case OPTIMIZER_ADAM: m->optimizer = OPTIM_ADAM; break;
    case OPTIMIZER_ADAGRAD: m->optimizer = OPTIM_ADAGRAD; break;
    case OPTIMIZER_SGD: m->optimizer = OPTIM_SGD; break;
    }
    m->lr = (float)cfg->train.lr;
    m->beta1 = (float)cfg->train.adam_beta1;
    m->beta2 = (float)cfg->train.adam_beta2;
    m->eps = (float)(cfg->train.optimizer == OPTIMIZER_ADAGRAD ? cfg->train.adagrad_eps
                                                               : cfg->train.adam_eps);
    m->vocab_rows = t->vocab_rows;
    m->category_rows = t->category_rows;
    m->user_rows = t->user_rows;
    m->data_fingerprint = t->fingerprint;
    m->seed = cfg->train.seed;
    m->shards = 1;
    m->workers = 1;
}

void run_meta_dims(const RunMeta *m, ModelDims *d)
{
    d->E = (int)m->E;
    d->H = (int)m->H;
    d->title_len = (int)m->title_len;
    d->his_len = (int)m->his_len;
    d->K = (int)m->K;
}

void run_meta_shard_options(const RunMeta *m, ShardOptions *o)
{
    memset(o, 0, sizeof *o);
    o->shape = (ParamShape){.E = m->E,
                            .H = m->H,
                            .vocab_rows = m->vocab_rows,
                            .category_rows = m->category_rows,
                            .user_rows = m->user_rows};
    o->optim = (OptimConfig){.kind = (OptimKind)m->optimizer,
                             .lr = m->lr,
                             .beta1 = m->beta1,
                             .beta2 = m->beta2,
                             .eps = m->eps};
    o->seed = m->seed;
}

/* The metric fields every evaluation line shares, without braces. */
static void eval_fields(FILE *f, const MetricsResult *r)
{
    fprintf(f,
            "\"auc\":%.6f,\"mrr\":%.6f,\"ndcg5\":%.6f,\"ndcg10\":%.6f,\"impressions\":%llu,"
            "\"skipped\":%llu",
            r->auc, r->mrr, r->ndcg5, r->ndcg10, (unsigned long long)r->impressions,
            (unsigned long long)r->skipped);
}

void run_print_eval(FILE *f, const MetricsResult *r)
{
    fputc('{', f);
    eval_fields(f, r);
    fputs("}\n", f);
}

void run_write_eval(FILE *metrics, uint64_t epoch, uint64_t step, const MetricsResult *r)
{
    if (!metrics)
        return;
    fprintf(metrics, "{\"epoch\":%llu,\"step\":%llu,", (unsigned long long)epoch,
            (unsigned long long)step);
    eval_fields(metrics, r);
    fputs("}\n", metrics);
    fflush(metrics);
}
