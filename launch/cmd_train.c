/* `psrec train CONFIG [--resume|--force] [--section.key=value ...]`. Under mpirun the job
 * runs distributed (launch/job.c); without it, one process trains with an in-process shard
 * (the same tables and optimizer code as the distributed shards). Either way: evaluation on
 * data.dev after each epoch, metrics.jsonl, config.effective, summary.json, and consistent
 * checkpoints under checkpoint.dir (run.dir/ckpt) that --resume continues from.
 * One process: a cut is the in-process shard copied (the only pause) plus the worker's
 * position; the checkpoint thread writes it. */
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
#include "launch/life.h"
#include "common/timer.h"
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
    fprintf(f, "usage: psrec train CONFIG [--resume | --force] [--section.key=value ...]\n\n"
               "Train LSTM-NR as the config says; evaluate on data.dev after each epoch.\n"
               "Writes into run.dir: config.effective, metrics.jsonl, summary.json, log (every\n"
               "log line of every rank, appended across resumes), and checkpoints under\n"
               "checkpoint.dir (default run.dir/ckpt).\n"
               "Progress on stderr: on a terminal one line redrawn in place; otherwise a line\n"
               "\"progress epoch=E/N step=S/T samples_per_s=R loss=L eta_epoch_s=X eta_s=Y\n"
               "[lag=G]\" every run.log_every_seconds (PSREC_PROGRESS=tty|plain|off overrides).\n"
               "  --resume  continue the run in run.dir from its newest valid checkpoint (with\n"
               "            any number of workers and shards; none yet: start from scratch)\n"
               "  --force   delete the run in run.dir (each file is named) and start over\n"
               "A run.dir that holds a run is refused without one of them. SIGTERM, SIGINT or\n"
               "SIGUSR1 checkpoint at the next step and exit with 75 (requeue me).\n\n"
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
    CutWriter cw;
    SnapWriter *writer;
    double last_cut;             /* timer_now() of the last cut (every_seconds) */
    MetricsResult last_eval;
    int evaluated;
    uint64_t epochs_done;
} TrainCtx;

static int after_epoch(void *ctx, uint64_t epoch, uint64_t step)
{
    TrainCtx *c = ctx;
    c->epochs_done = epoch + 1;
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

static int cut_due(void *ctx, const WorkerCut *cut)
{
    TrainCtx *c = ctx;
    const Config *cfg = c->cfg;
    if (life_stop_due(cut->steps))
        return 1;
    if (cfg->checkpoint.every_steps > 0 && cut->steps % (uint64_t)cfg->checkpoint.every_steps == 0)
        return 1;
    return cfg->checkpoint.every_seconds > 0 &&
           timer_now() - c->last_cut >= cfg->checkpoint.every_seconds;
}

/* The cut of one process: copy the shard and the position (training pauses for that only),
 * hand them to the checkpoint thread. */
static int checkpoint(void *ctx, const WorkerCut *cut, int final)
{
    TrainCtx *c = ctx;
    const int stop = !final && life_stop_due(cut->steps);
    double t0 = timer_now();
    CutImage *img = NULL;
    size_t len;
    int rc = cut_image_new(1, &img);
    if (rc)
        return rc;
    img->step = cut->steps;
    img->shards = 1;
    img->stop = stop;
    img->final = final;
    img->finished[0] = cut->steps;
    img->done[0] = (unsigned char)final;
    img->copy = snapwriter_take_spare(c->writer); /* refreshed in place: a shorter pause */
    if ((rc = workercut_encode(cut, img->cuts, SNAP_CUT_MAX, &len)) ||
        (rc = shard_snapshot(c->shard, &img->copy))) {
        cut_image_free(&img);
        return rc;
    }
    img->cut_len[0] = (uint32_t)len;
    if ((rc = snapwriter_submit(c->writer, &img)))
        return rc;
    c->last_cut = timer_now();
    LOG_INFO("cut at step %llu%s: training paused %.1f ms for the copy",
             (unsigned long long)cut->steps, stop ? " (stopping)" : final ? " (final)" : "",
             (c->last_cut - t0) * 1e3);
    return stop ? TRAIN_STOPPED : 0;
}

/* Split argv after CONFIG into flags (--resume, --force) and --section.key=value overrides,
 * in place: overrides are compacted to the front. Returns the override count, or -1 after
 * printing the problem. */
static int split_args(int argc, char **argv, TrainFlags *flags)
{
    memset(flags, 0, sizeof *flags);
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--resume")) {
            flags->resume = 1;
        } else if (!strcmp(argv[i], "--force")) {
            flags->force = 1;
        } else if (strncmp(argv[i], "--", 2) != 0 || !strchr(argv[i], '.') ||
                   !strchr(argv[i], '=')) {
            fprintf(stderr, "psrec train: '%s' is not --resume, --force or an override of the "
                            "form --section.key=value\n", argv[i]);
            return -1;
        } else {
            argv[n++] = argv[i];
        }
    }
    if (flags->resume && flags->force) {
        fprintf(stderr, "psrec train: --resume continues the run in run.dir, --force deletes "
                        "it: give one of them\n");
        return -1;
    }
    return n;
}

int cmd_train(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        train_usage(stdout);
        return EXIT_OK;
    }
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "psrec train: need a CONFIG file first\n");
        fprintf(stderr, "usage: psrec train CONFIG [--resume | --force] [--section.key=value ...]"
                        "  (--help: keys)\n");
        return EXIT_USAGE;
    }
    TrainFlags flags;
    int nover = split_args(argc - 2, argv + 2, &flags);
    if (nover < 0)
        return EXIT_USAGE;
    log_set_identity("train", 0);
    Config cfg;
    if (config_load(&cfg, argv[1], nover, argv + 2) < 0) {
        fprintf(stderr, "psrec train: %s\n", psrec_errmsg());
        return EXIT_USAGE;
    }
    if (!cfg.data.train[0]) {
        fprintf(stderr, "psrec train: %s: data.train is not set (a dataset made by psrec prep)\n",
                argv[1]);
        return EXIT_USAGE;
    }
    life_signals_install();
    if (job_under_mpirun())
        return job_train_mpi(&cfg, argv[1], &flags);
    TrainCtx c = {.cfg = &cfg};
    RunLife lf = {0};
    Dataset *train = NULL;
    Shard *shard = NULL;
    ReaderPlan *plan = NULL;
    PsClient ps;
    int rc = EXIT_FAIL, opened = 0;
    RunStatus status = RUN_STATUS_FAILED;
    TrainResult res = {0};
    if (run_open_datasets(&cfg, &train, &c.dev) || life_open_dir(&cfg, &flags, &lf))
        goto out;
    opened = 1;
    run_open_log(&cfg); /* the run dir is this run's now: every later line goes to its log */
    run_set_threads(cfg.train.threads);
    const DatasetMeta *tm = dataset_meta(train);
    run_meta_from_config(&cfg, tm, &c.meta);
    run_meta_dims(&c.meta, &c.dims);
    if (life_load_resume(&cfg, &flags, &c.meta, &lf) ||
        life_record_run_id(&cfg, &lf, c.meta.run_id) ||
        run_prepare_dir(&cfg, flags.resume, &c.metrics))
        goto out;
    ReaderPosition start;
    const int interleave = cfg.data.partition == PARTITION_INTERLEAVE;
    if (lf.resumed) {
        RunMeta saved;
        if (ckptdir_load_shard(lf.rs.step_dir, 0, 1, 0, &saved, &shard) ||
            cut_resume_start(&lf.rs, 0, 1, interleave, tm->samples, &start, &plan)) {
            LOG_ERROR("--resume: %s", psrec_errmsg());
            goto out;
        }
    } else {
        ShardOptions so;
        run_meta_shard_options(&c.meta, &so);
        if (shard_new(&so, &shard)) {
            LOG_ERROR("%s", psrec_errmsg());
            goto out;
        }
    }
    inproc_client_init(&ps, shard);
    c.ps = &ps;
    c.shard = shard;
    /* The checkpoint thread writes what the cuts copy. */
    char *cfg_text = NULL;
    size_t cfg_len = 0;
    FILE *mf = open_memstream(&cfg_text, &cfg_len);
    if (mf) {
        config_write(&cfg, mf);
        fclose(mf);
    }
    size_t plan_len = 0;
    void *plan_bytes = NULL;
    if (plan && (plan_bytes = malloc(reader_plan_encoded_size(plan))))
        reader_plan_encode(plan, plan_bytes, reader_plan_encoded_size(plan), &plan_len);
    snprintf(c.cw.root, sizeof c.cw.root, "%s", lf.ckpt_root);
    c.cw.meta = c.meta;
    c.cw.config_text = cfg_text;
    c.cw.model_hash = cut_model_hash(&c.meta);
    c.cw.consistency = (uint32_t)cfg.ps.consistency;
    c.cw.interleave = (uint32_t)interleave;
    c.cw.seed = cfg.train.seed;
    c.cw.keep = cfg.checkpoint.keep;
    c.cw.committer = 1;
    c.cw.wait_timeout = 60;
    c.cw.plan = plan_bytes;
    c.cw.plan_len = plan_len;
    c.cw.base_samples = lf.base_samples;
    c.cw.life_t0 = lf.t0;
    c.cw.base_wall = lf.base_wall;
    c.last_cut = timer_now();
    if (snapwriter_new(cut_write, &c.cw, &c.writer)) {
        LOG_ERROR("%s", psrec_errmsg());
        free(cfg_text);
        free(plan_bytes);
        goto out;
    }
    LOG_INFO("training %s%s%s: %llu samples, %llu users, vocab %llu; E=%d H=%d B=%d K=%d, %s lr %g%s",
             cfg.run.name[0] ? cfg.run.name : "", cfg.run.name[0] ? " on " : "", cfg.data.train, (unsigned long long)tm->samples, (unsigned long long)tm->user_rows,
             (unsigned long long)tm->vocab_rows, c.dims.E, c.dims.H, cfg.train.batch_size,
             c.dims.K, config_optimizer_name(cfg.train.optimizer), cfg.train.lr,
             lf.resumed ? " (resumed)" : "");
    TrainOptions to = {.dims = c.dims,
                       .batch_size = cfg.train.batch_size,
                       .epochs = cfg.train.epochs,
                       .log_every = cfg.run.log_every,
                       .seed = cfg.train.seed,
                       .rank = 0,
                       .world = 1,
                       .interleave = interleave,
                       .train = train,
                       .ps = &ps,
                       .metrics = c.metrics,
                       .start = lf.resumed ? &start : NULL,
                       .plan = plan,
                       .start_step = lf.resumed ? lf.rs.job.step : 0,
                       .progress = run_progress_setup(1),
                       .progress_interval = cfg.run.log_every_seconds,
                       .hooks = {.ctx = &c,
                                 .after_epoch = after_epoch,
                                 .cut_due = cut_due,
                                 .checkpoint = checkpoint}};
    int trc = train_run(&to, &res);
    snapwriter_wait(c.writer);
    SnapStatus ss;
    snapwriter_status(c.writer, &ss);
    snapwriter_free(&c.writer);
    free(cfg_text);
    free(plan_bytes);
    if (ss.failed)
        LOG_ERROR("%llu checkpoint(s) could not be written (last: %s); the newest valid one is "
                  "what --resume would use", (unsigned long long)ss.failed, ss.last_error);
    if (trc == TRAIN_STOPPED) {
        LOG_WARN("preempted: stopped at step %llu with a checkpoint; exit code %d (resume with "
                 "--resume)", (unsigned long long)res.steps, EXIT_PREEMPTED);
        status = ss.last_rc ? RUN_STATUS_FAILED : RUN_STATUS_PREEMPTED;
        rc = ss.last_rc ? EXIT_FAIL : EXIT_PREEMPTED;
        goto summary;
    }
    if (trc) {
        LOG_ERROR("%s", psrec_errmsg());
        goto summary;
    }
    if (ss.last_rc) {
        LOG_ERROR("the final checkpoint could not be written: %s", ss.last_error);
        goto summary;
    }
    LOG_INFO("done: %llu steps, %llu samples in %.1f s (%.0f samples/s), last loss %.4f",
             (unsigned long long)res.steps, (unsigned long long)res.samples, res.seconds,
             (double)res.samples / (res.seconds > 0 ? res.seconds : 1), res.last_loss);
    if (c.evaluated)
        run_print_eval(stdout, &c.last_eval);
    status = RUN_STATUS_COMPLETED;
    rc = EXIT_OK;
summary:
    life_write_summary(&cfg, &lf, status, res.last.steps ? res.last.steps : res.steps,
                       status == RUN_STATUS_COMPLETED ? (uint64_t)cfg.train.epochs
                                                      : res.last.pos.epoch,
                       res.samples, c.evaluated ? &c.last_eval : NULL, (uint32_t)ss.failed,
                       NULL, 0);
out:
    if (!opened)
        rc = EXIT_FAIL;
    snapwriter_free(&c.writer);
    reader_plan_free(&plan);
    if (c.metrics)
        fclose(c.metrics);
    shard_free(&shard);
    dataset_free(&train);
    dataset_free(&c.dev);
    life_close(&lf);
    log_close_file();
    return rc;
}
