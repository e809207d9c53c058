/* `psrec train CONFIG [--section.key=value ...]`. Under mpirun the job runs distributed
 * (launch/job.c); without it, one process trains with an in-process shard (the same tables and
 * optimizer code as the distributed shards). Either way: evaluation on data.dev after each
 * epoch, metrics.jsonl, config.effective, checkpoints under checkpoint.dir (run.dir/ckpt). */
#include "common/config.h"
#include "common/dataset.h"
#include "common/error.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/runmeta.h"
#include "launch/ckptdir.h"
#include "launch/commands.h"
#include "launch/inproc.h"
#include "launch/job.h"
#include "launch/run.h"
#include "worker/eval.h"
#include "worker/train.h"

#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void train_usage(FILE *f)
{
    fprintf(f, "usage: psrec train CONFIG [--section.key=value ...]\n\n"
               "Train LSTM-NR as the config says; evaluate on data.dev after each epoch.\n"
               "Writes into run.dir: config.effective, metrics.jsonl, log lines on stderr,\n"
               "and checkpoints under checkpoint.dir (default run.dir/ckpt).\n\n"
               "Config keys (section.key  type  default  range  doc):\n");
    config_print_reference(f);
}

typedef struct TrainCtx {
    const Config *cfg;
    Dataset *dev;
    PsClient *ps;
    Shard *shard;
    ModelDims dims;
    RunMeta meta;
    FILE *metrics;
    char ckpt_root[4096];
    MetricsResult last_eval;
    int evaluated;
} TrainCtx;

static int after_epoch(void *ctx, uint64_t epoch, uint64_t step)
{
    TrainCtx *c = ctx;
    (void)step;
    if (!c->dev)
        return 0;
    MetricsAcc acc;
    metrics_acc_init(&acc);
    EvalOptions eo = {.dims = c->dims, .data = c->dev, .ps = c->ps, .begin = 0, .end = UINT64_MAX};
    EvalStats st;
    int rc = eval_run(&eo, &acc, &st);
    if (rc)
        return rc;
    metrics_result(&acc, &c->last_eval);
    c->evaluated = 1;
    run_write_eval(c->metrics, epoch, step, &c->last_eval);
    LOG_INFO("epoch %llu dev auc %.4f mrr %.4f ndcg@5 %.4f ndcg@10 %.4f (%llu impressions, "
             "%llu skipped, %.1f s)",
             (unsigned long long)epoch, c->last_eval.auc, c->last_eval.mrr, c->last_eval.ndcg5,
             c->last_eval.ndcg10, (unsigned long long)c->last_eval.impressions,
             (unsigned long long)c->last_eval.skipped, st.seconds);
    return 0;
}

static int checkpoint(void *ctx, uint64_t step, const ReaderPosition *pos, int final)
{
    TrainCtx *c = ctx;
    (void)final;
    WorkerState ws = {.pos = *pos, .step = step};
    c->meta.step = step;
    c->meta.epoch = pos->epoch;
    const CkptdirSection js = {"worker.state", &ws, sizeof ws};
    int rc = ckptdir_save(c->ckpt_root, &c->meta, c->shard, &js, 1, c->cfg->checkpoint.keep);
    if (!rc)
        LOG_INFO("checkpoint at step %llu in %s", (unsigned long long)step, c->ckpt_root);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        train_usage(stdout);
        return EXIT_OK;
    }
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "psrec train: need a CONFIG file first\n");
        fprintf(stderr, "usage: psrec train CONFIG [--section.key=value ...]  (--help: keys)\n");
        return EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++)
        if (strncmp(argv[i], "--", 2) != 0 || !strchr(argv[i], '.') || !strchr(argv[i], '=')) {
            fprintf(stderr, "psrec train: '%s' is not an override of the form "
                            "--section.key=value\n", argv[i]);
            return EXIT_USAGE;
        }
    log_set_identity("train", 0);
    Config cfg;
    if (config_load(&cfg, argv[1], argc - 2, argv + 2) < 0) {
        fprintf(stderr, "psrec train: %s\n", psrec_errmsg());
        return EXIT_USAGE;
    }
    if (!cfg.data.train[0]) {
        fprintf(stderr, "psrec train: %s: data.train is not set (a dataset made by psrec prep)\n",
                argv[1]);
        return EXIT_USAGE;
    }
    if (job_under_mpirun())
        return job_train_mpi(&cfg, argv[1]);
    TrainCtx c = {.cfg = &cfg};
    Dataset *train = NULL;
    Shard *shard = NULL;
    PsClient ps;
    int rc = EXIT_FAIL;
    if (run_open_datasets(&cfg, &train, &c.dev) || run_prepare_dir(&cfg, &c.metrics))
        goto out;
    run_set_threads(cfg.train.threads);
    const DatasetMeta *tm = dataset_meta(train);
    run_model_dims(&cfg, &c.dims);
    run_meta_from_config(&cfg, tm, &c.meta);
    ShardOptions so;
    ckptdir_shard_options(&c.meta, &so);
    if (shard_new(&so, &shard)) {
        LOG_ERROR("%s", psrec_errmsg());
        goto out;
    }
    inproc_client_init(&ps, shard);
    c.ps = &ps;
    c.shard = shard;
    if (config_checkpoint_dir(&cfg, c.ckpt_root, sizeof c.ckpt_root)) {
        LOG_ERROR("%s", psrec_errmsg());
        goto out;
    }
    LOG_INFO("training %s: %llu samples, %llu users, vocab %llu; E=%d H=%d B=%d K=%d, %s lr %g",
             cfg.data.train, (unsigned long long)tm->samples, (unsigned long long)tm->user_rows,
             (unsigned long long)tm->vocab_rows, c.dims.E, c.dims.H, cfg.train.batch_size,
             c.dims.K, config_optimizer_name(cfg.train.optimizer), cfg.train.lr);
    TrainOptions to = {.dims = c.dims,
                       .batch_size = cfg.train.batch_size,
                       .epochs = cfg.train.epochs,
                       .log_every = cfg.run.log_every,
                       .checkpoint_every = cfg.checkpoint.every_steps,
                       .seed = cfg.train.seed,
                       .rank = 0,
                       .world = 1,
                       .train = train,
                       .ps = &ps,
                       .metrics = c.metrics,
                       .hooks = {.ctx = &c, .after_epoch = after_epoch, .checkpoint = checkpoint}};
    TrainResult res;
    if (train_run(&to, &res)) {
        LOG_ERROR("%s", psrec_errmsg());
        goto out;
    }
    LOG_INFO("done: %llu steps, %llu samples in %.1f s (%.0f samples/s), last loss %.4f",
             (unsigned long long)res.steps, (unsigned long long)res.samples, res.seconds,
             (double)res.samples / (res.seconds > 0 ? res.seconds : 1), res.last_loss);
    if (c.evaluated)
        run_print_eval(stdout, &c.last_eval);
    rc = EXIT_OK;
out:
    if (c.metrics)
        fclose(c.metrics);
    shard_free(&shard);
    dataset_free(&train);
    dataset_free(&c.dev);
    return rc;
}
