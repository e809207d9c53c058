/* One life of a run (see life.h). */
#include "launch/life.h"

#include "common/error.h"
#include "common/log.h"
#include "common/timer.h"
#include "launch/ckptdir.h"
#include "launch/modelload.h"


#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;   /* the first preemption signal */
static volatile sig_atomic_t first_sec;     /* CLOCK_MONOTONIC seconds of it */

static void on_stop_signal(int sig)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (!stop_signal) {
        stop_signal = sig;
        first_sec = (sig_atomic_t)ts.tv_sec;
        static const char msg[] = "psrec: preemption signal: checkpointing at the next step "
                                  "boundary, then exiting with 75 (a second signal exits at "
                                  "once)\n";
        ssize_t n = write(2, msg, sizeof msg - 1);
        (void)n;
        return;
    }
    /* The same signal delivered twice at once (mpirun's forward and the batch system's own)
     * is one request; a later one means: stop now. */
    if ((long)ts.tv_sec - (long)first_sec < 2)
        return;
    static const char msg[] = "psrec: second signal: exiting now; the previous checkpoint "
                              "stays the newest valid one\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    _exit(EXIT_PREEMPTED);
}

void life_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

int life_stop_requested(void)
{
    return stop_signal != 0;
}

int life_stop_due(uint64_t steps)
{
    if (stop_signal)
        return 1;
    /* Fault injection for tests: a preemption signal that arrives exactly after step N. */
    static long long at = -2;
    if (at == -2) {
        const char *e = getenv("PSREC_TEST_STOP_AT_STEP");
        at = e ? atoll(e) : -1;
    }
    return at >= 0 && steps >= (unsigned long long)at;
}

int life_open_dir(const Config *cfg, const TrainFlags *flags, RunLife *lf)
{
    if (config_checkpoint_dir(cfg, lf->ckpt_root, sizeof lf->ckpt_root)) {
        LOG_ERROR("%s", psrec_errmsg());
        return -1;
    }
    if (rundir_lock(cfg->run.dir, &lf->lock)) {
        LOG_ERROR("%s", psrec_errmsg());
        return -1;
    }
    if (rundir_check_fresh(cfg->run.dir, lf->ckpt_root, flags->resume, flags->force)) {
        LOG_ERROR("%s", psrec_errmsg());
        rundir_unlock(&lf->lock);
        return -1;
    }
    /* An earlier life's half-written step dirs: a writer of this life must never find an old
     * file there and take it for this life's. */
    ckptdir_clear_scratch(lf->ckpt_root);
    return 0;
}

int life_load_resume(const Config *cfg, const TrainFlags *flags, RunMeta *meta, RunLife *lf)
{
    lf->t0 = timer_now();
    meta->run_id = runmeta_new_run_id(); /* a fresh run's; a resumed one keeps its own */
    const char *r = getenv("PSREC_SUPERVISE_RESTARTS");
    lf->restarts = r ? (uint32_t)strtoul(r, NULL, 10) : 0;
    if (!lf->ckpt_root[0] && config_checkpoint_dir(cfg, lf->ckpt_root, sizeof lf->ckpt_root)) {
        LOG_ERROR("%s", psrec_errmsg());
        return -1;
    }
    if (!flags->resume)
        return 0;
    int rc = cut_resume_load(lf->ckpt_root, &lf->rs);
    if (rc == PSREC_E_NOTFOUND) {
        /* Nothing to resume (a run killed before its first checkpoint): start over, so that
         * `psrec supervise` and requeued batch jobs can always add --resume. */
        LOG_WARN("--resume: %s; starting from the beginning", psrec_errmsg());
        return 0;
    }
    if (rc) {
        LOG_ERROR("--resume: %s", psrec_errmsg());
        return -1;
    }
    /* The data first, by the rule eval and recommend use too; then everything else. */
    const IdSpaces ck = modelload_ids_of_model(&lf->rs.meta, lf->rs.step_dir);
    const IdSpaces tr = modelload_ids_of_model(meta, cfg->data.train);
    if (modelload_check_ids(&ck, &tr)) {
        LOG_ERROR("--resume: %s: %s, or start over with --force", lf->rs.step_dir,
                  psrec_errmsg());
        cut_resume_fini(&lf->rs);
        return -1;
    }
    uint64_t want = cut_model_hash(meta);
    if (lf->rs.job.model_hash != want || lf->rs.meta.E != meta->E || lf->rs.meta.H != meta->H) {
        LOG_ERROR("--resume: %s was trained with another model or data (E %u H %u title_len "
                  "%u his_len %u, %llu words, %llu users, optimizer %u, seed %llu; this run: E "
                  "%u H %u title_len %u his_len %u, %llu words, %llu users, optimizer %u, seed "
                  "%llu); resume with the same model.*, data.train, train.optimizer and "
                  "train.seed, or start over with --force",
                  lf->rs.step_dir, lf->rs.meta.E, lf->rs.meta.H, lf->rs.meta.title_len,
                  lf->rs.meta.his_len, (unsigned long long)lf->rs.meta.vocab_rows,
                  (unsigned long long)lf->rs.meta.user_rows, lf->rs.meta.optimizer,
                  (unsigned long long)lf->rs.meta.seed, meta->E, meta->H, meta->title_len,
                  meta->his_len, (unsigned long long)meta->vocab_rows,
                  (unsigned long long)meta->user_rows, meta->optimizer,
                  (unsigned long long)meta->seed);
        cut_resume_fini(&lf->rs);
        return -1;
    }
    if (lf->rs.job.seed != cfg->train.seed) {
        LOG_ERROR("--resume: %s shuffled with train.seed %llu, this run says %llu",
                  lf->rs.step_dir, (unsigned long long)lf->rs.job.seed,
                  (unsigned long long)cfg->train.seed);
        cut_resume_fini(&lf->rs);
        return -1;
    }
    lf->resumed = 1;
    if (lf->rs.meta.run_id) /* 0: a checkpoint older than run ids; the run gets one now */
        meta->run_id = lf->rs.meta.run_id;
    lf->base_samples = lf->rs.job.samples;
    lf->base_wall = lf->rs.job.wall_s;
    RunSummary prev;
    if (rundir_read_summary(cfg->run.dir, &prev) == 0 && prev.wall_s > lf->base_wall)
        lf->base_wall = prev.wall_s; /* the earlier lives' whole time, past their cuts too */
    LOG_INFO("resuming from %s: step %llu, epoch %llu, %llu samples trained by %u worker(s)",
             lf->rs.step_dir, (unsigned long long)lf->rs.job.step,
             (unsigned long long)lf->rs.job.epoch, (unsigned long long)lf->rs.job.samples,
             lf->rs.job.workers);
    return 0;
}

int life_record_run_id(const Config *cfg, const RunLife *lf, uint64_t run_id)
{
    char path[4200], text[32];
    snprintf(path, sizeof path, "%s/run_id", cfg->run.dir);
    FILE *f = fopen(path, "r");
    if (f) {
        unsigned long long old = 0;
        int n = fscanf(f, "%16llx", &old);
        fclose(f);
        if (lf->resumed && n == 1 && old && run_id && old != run_id) {
            LOG_ERROR("--resume: %s belongs to another run (run id %016llx; %s says %016llx); "
                      "start over with --force",
                      lf->rs.step_dir, (unsigned long long)run_id, path, old);
            return -1;
        }
    }
    int len = snprintf(text, sizeof text, "%016llx\n", (unsigned long long)run_id);
    int ok = (f = fopen(path, "w")) != NULL;
    if (ok) {
        ok = fwrite(text, 1, (size_t)len, f) == (size_t)len;
        ok = fclose(f) == 0 && ok;
    }
    if (!ok) {
        LOG_ERROR("%s: cannot write: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

void life_write_summary(const Config *cfg, const RunLife *lf, RunStatus status, uint64_t steps,
                        uint64_t epochs, uint64_t samples_life, const MetricsResult *dev,
                        uint32_t checkpoint_failures, const int *lost, uint32_t nlost)
{
    RunSummary *s = calloc(1, sizeof *s);
    if (!s)
        return;
    snprintf(s->run_name, sizeof s->run_name, "%s", cfg->run.name);
    s->status = status;
    s->steps = steps;
    s->epochs = epochs;
    s->samples = lf->base_samples + samples_life;
    s->wall_s = lf->base_wall + (timer_now() - lf->t0);
    s->samples_per_s = s->wall_s > 0 ? (double)s->samples / s->wall_s : 0;
    s->restarts = lf->restarts;
    s->resumed_from_step = lf->resumed ? (int64_t)lf->rs.job.step : -1;
    for (uint32_t i = 0; i < nlost && i < RUNDIR_LOST_MAX; i++)
        s->lost_workers[s->n_lost_workers++] = lost[i];
    if (dev) {
        s->has_dev = 1;
        s->dev.auc = dev->auc;
        s->dev.mrr = dev->mrr;
        s->dev.ndcg5 = dev->ndcg5;
        s->dev.ndcg10 = dev->ndcg10;
    }
    uint64_t step;
    char dir[RUNDIR_PATH_MAX];
    if (ckptdir_newest(lf->ckpt_root, &step, dir, sizeof dir) == 0)
        snprintf(s->checkpoint, sizeof s->checkpoint, "%s", dir);
    s->checkpoint_failures = checkpoint_failures;
    if (rundir_write_summary(cfg->run.dir, s))
        LOG_ERROR("summary.json: %s", psrec_errmsg());
    free(s);
}

void life_close(RunLife *lf)
{
    rundir_unlock(&lf->lock);
    cut_resume_fini(&lf->rs);
}
