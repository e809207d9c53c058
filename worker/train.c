/* The training loop (see train.h).
 *
 * A step: dedup the batch (batch_build), pull the distinct word/category/user rows and the
 * dense weights, run the model's forward/backward, push the row gradients and the dense
 * gradient, tell the PS the step is done (ps_clock). Buffers are sized once for the largest
 * batch in train_step_new; nothing is allocated per step.
 * Determinism: one process, one thread, same seed -> same loss sequence; the reader's order
 * and the negative sampling are both seeded, the latter per (seed, epoch, sample).
 * Progress: the steps of an epoch are ceil(this worker's samples of it / B), its samples being
 * its partition of the dataset or, in an epoch a resume re-partitioned, its share of the plan;
 * a run resumed inside an epoch starts that epoch's count at ceil(offset / B). */
#include "worker/train.h"

#include "common/error.h"
#include "common/log.h"
#include "common/params.h"
#include "common/timer.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One batch in flight: its dedup, pulled rows and the tickets of its pulls. */
typedef struct StepSlot {
    BatchBuilder *bb;
    ModelBatch mb;
    BatchKeys k;
    float *dense;              /* (dense floats) pulled weights */
    DenseParams p;
    float *word_rows;          /* (max_words, E) */
    float *cat_rows;           /* (max_news, H) */
    float *user_rows;          /* (max_B, H) */
    PsTicket tickets[3 + PARAMS_DENSE_TABLES];
    uint64_t clock;            /* the step this batch is */
} StepSlot;

struct TrainStep {
    ModelDims dims;
    int max_B;
    ModelWorkspace *ws;
    ParamsIo io;
    StepSlot slots[2];         /* issued batches complete in order: oldest first */
    int first, pending;        /* index of the oldest issued slot; slots issued (0..2) */
    uint64_t next_clock;       /* step of the next batch issued */
    float *gdense;             /* (dense floats) */
    DenseParams g;
    float *g_word, *g_cat, *g_user;
    size_t max_words, max_news;
    uint64_t nan_at;           /* test hook PSREC_TEST_NAN_AT_STEP: this step's loss is NaN
                                  (0: never) */
};

static void *xcalloc(size_t n, size_t size, int *fail)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        *fail = 1;
    return p;
}

int train_step_new(TrainStep **out, const ModelDims *d, int max_B, PsClient *ps)
{
    *out = NULL;
    TrainStep *ts = calloc(1, sizeof *ts);
    if (!ts)
        return PSREC_E_NOMEM;
    ts->dims = *d;
    ts->max_B = max_B;
    ts->max_news = (size_t)max_B * (size_t)(d->his_len + 1 + d->K);
    ts->max_words = ts->max_news * (size_t)d->title_len;
    const char *nan_at = getenv("PSREC_TEST_NAN_AT_STEP");
    ts->nan_at = nan_at ? strtoull(nan_at, NULL, 10) : 0;
    int rc, fail = 0;
    if ((rc = model_workspace_new(&ts->ws, d, max_B, 0, 0)) ||
        (rc = params_io_init(&ts->io, ps, d, ts->max_words)))
        goto fail;
    size_t nd = model_dense_floats(d);
    for (int i = 0; i < 2; i++) {
        StepSlot *s = &ts->slots[i];
        if ((rc = batch_builder_new(&s->bb, d, max_B)))
            goto fail;
        s->dense = xcalloc(nd, sizeof(float), &fail);
        s->word_rows = xcalloc(ts->max_words * (size_t)d->E, sizeof(float), &fail);
        s->cat_rows = xcalloc(ts->max_news * (size_t)d->H, sizeof(float), &fail);
        s->user_rows = xcalloc((size_t)max_B * (size_t)d->H, sizeof(float), &fail);
        if (!fail)
            model_dense_bind(&s->p, d, s->dense);
    }
    ts->gdense = xcalloc(nd, sizeof(float), &fail);
    ts->g_word = xcalloc(ts->max_words * (size_t)d->E, sizeof(float), &fail);
    ts->g_cat = xcalloc(ts->max_news * (size_t)d->H, sizeof(float), &fail);
    ts->g_user = xcalloc((size_t)max_B * (size_t)d->H, sizeof(float), &fail);
    if (fail) {
        rc = PSREC_E_NOMEM;
        goto fail;
    }
    model_dense_bind(&ts->g, d, ts->gdense);
    *out = ts;
    return 0;
fail:
    train_step_free(&ts);
    return rc;
}

void train_step_free(TrainStep **tsp)
{
    TrainStep *ts = *tsp;
    if (!ts)
        return;
    model_workspace_free(&ts->ws);
    params_io_fini(&ts->io);
    for (int i = 0; i < 2; i++) {
        StepSlot *s = &ts->slots[i];
        batch_builder_free(&s->bb);
        free(s->dense);
        free(s->word_rows);
        free(s->cat_rows);
        free(s->user_rows);
    }
    free(ts->gdense);
    free(ts->g_word);
    free(ts->g_cat);
    free(ts->g_user);
    free(ts);
    *tsp = NULL;
}

void train_step_set_clock(TrainStep *ts, uint64_t clock)
{
    ts->next_clock = clock;
}

int train_step_pending(const TrainStep *ts)
{
    return ts->pending;
}

/* Drop the oldest batch in flight: wait for its pulls (the replies own no caller buffer
 * after that) and forget it. */
static int train_step_discard(TrainStep *ts)
{
    if (ts->pending == 0)
        return 0;
    StepSlot *s = &ts->slots[ts->first];
    ts->first = (ts->first + 1) % 2;
    ts->pending--;
    return params_wait(&ts->io, s->tickets, 3 + PARAMS_DENSE_TABLES);
}

int train_step_issue(TrainStep *ts, int B, const uint32_t *users, const uint32_t *his,
                     const int *his_n, const uint32_t *cand, BatchNewsFn news_fn, void *ctx)
{
    if (ts->pending == 2)
        return psrec_errf(PSREC_E_STATE, "train step: two batches already in flight");
    StepSlot *s = &ts->slots[(ts->first + ts->pending) % 2];
    int rc = batch_build(s->bb, B, users, his, his_n, cand, news_fn, ctx, &s->mb, &s->k);
    if (rc)
        return rc;
    s->clock = ts->next_clock++;
    ps_set_clock(ts->io.ps, s->clock);
    /* Issue every pull, then count the slot as in flight so complete() waits for whatever
     * was issued even when a later issue failed. */
    memset(s->tickets, 0, sizeof s->tickets);
    rc = params_pull_rows_async(&ts->io, PARAM_WORD, s->k.words, (size_t)s->k.n_words,
                                s->word_rows, &s->tickets[0]);
    if (!rc)
        rc = params_pull_rows_async(&ts->io, PARAM_CAT, s->k.cats, (size_t)s->k.n_cats,
                                    s->cat_rows, &s->tickets[1]);
    if (!rc)
        rc = params_pull_rows_async(&ts->io, PARAM_USER, s->k.users, (size_t)s->k.n_users,
                                    s->user_rows, &s->tickets[2]);
    if (!rc)
        rc = params_pull_dense_async(&ts->io, &s->p, &s->tickets[3]);
    ts->pending++;
    return rc;
}

/* Index of the first non-finite float of x[0..n), or n. */
static size_t first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return n;
}

/* A step whose loss or gradients are not finite means the model diverged: pushing it would
 * poison the shards' parameters (a remote shard refuses non-finite values, the in-process one
 * of a single-process run does not check), and a step pushed in part is worse. So the worker
 * stops before pushing anything of it. step = the step's 1-based number (as in the logs). */
static int check_finite(const TrainStep *ts, const BatchKeys *k, uint64_t step, float *loss)
{
    const ModelDims *d = &ts->dims;
    if (ts->nan_at && step == ts->nan_at)
        *loss = NAN;
    const char *what = NULL;
    if (!isfinite(*loss))
        what = isnan(*loss) ? "the loss is NaN" : "the loss is infinite";
    else if (first_nonfinite(ts->gdense, model_dense_floats(d)) < model_dense_floats(d))
        what = "an LSTM weight gradient is not finite";
    else if (first_nonfinite(ts->g_word, (size_t)k->n_words * (size_t)d->E) <
                 (size_t)k->n_words * (size_t)d->E ||
             first_nonfinite(ts->g_cat, (size_t)k->n_cats * (size_t)d->H) <
                 (size_t)k->n_cats * (size_t)d->H ||
             first_nonfinite(ts->g_user, (size_t)k->n_users * (size_t)d->H) <
                 (size_t)k->n_users * (size_t)d->H)
        what = "an embedding gradient is not finite";
    if (!what)
        return 0;
    return psrec_errf(PSREC_E_RANGE, "training diverged at step %" PRIu64 ": %s; nothing of "
                      "that step was pushed (lower train.lr, or resume from the last "
                      "checkpoint)", step, what);
}

int train_step_complete(TrainStep *ts, float *loss)
{
    if (ts->pending == 0)
        return psrec_errf(PSREC_E_STATE, "train step: no batch in flight");
    const ModelDims *d = &ts->dims;
    StepSlot *s = &ts->slots[ts->first];
    ts->first = (ts->first + 1) % 2;
    ts->pending--;
    int rc = params_wait(&ts->io, s->tickets, 3 + PARAMS_DENSE_TABLES);
    if (rc)
        return rc;
    const BatchKeys *k = &s->k;
    memset(ts->gdense, 0, model_dense_floats(d) * sizeof(float));
    memset(ts->g_word, 0, (size_t)k->n_words * (size_t)d->E * sizeof(float));
    memset(ts->g_cat, 0, (size_t)k->n_cats * (size_t)d->H * sizeof(float));
    memset(ts->g_user, 0, (size_t)k->n_users * (size_t)d->H * sizeof(float));
    if ((rc = model_train_step_grads(ts->ws, d, &s->p, s->word_rows, s->cat_rows, s->user_rows,
                                     &s->mb, &ts->g, ts->g_word, ts->g_cat, ts->g_user, loss)))
        return rc;
    if ((rc = check_finite(ts, k, s->clock + 1, loss)))
        return rc;
    PsTicket t[3 + PARAMS_DENSE_TABLES] = {0};
    ps_set_clock(ts->io.ps, s->clock);
    rc = params_push_rows_async(&ts->io, PARAM_WORD, k->words, (size_t)k->n_words, ts->g_word,
                                &t[0]);
    if (!rc)
        rc = params_push_rows_async(&ts->io, PARAM_CAT, k->cats, (size_t)k->n_cats, ts->g_cat,
                                    &t[1]);
    if (!rc)
        rc = params_push_rows_async(&ts->io, PARAM_USER, k->users, (size_t)k->n_users,
                                    ts->g_user, &t[2]);
    if (!rc)
        rc = params_push_dense_async(&ts->io, &ts->g, &t[3]);
    int wrc = params_wait(&ts->io, t, 3 + PARAMS_DENSE_TABLES);
    return rc ? rc : wrc;
}

int train_step_run(TrainStep *ts, int B, const uint32_t *users, const uint32_t *his,
                   const int *his_n, const uint32_t *cand, BatchNewsFn news_fn, void *ctx,
                   float *loss)
{
    int rc = train_step_issue(ts, B, users, his, his_n, cand, news_fn, ctx);
    int crc = ts->pending ? train_step_complete(ts, loss) : 0;
    return rc ? rc : crc;
}

void train_step_bytes(const TrainStep *ts, uint64_t *pulled, uint64_t *pushed)
{
    *pulled = ts->io.bytes_pulled;
    *pushed = ts->io.bytes_pushed;
}

void train_sample_candidates(Rng *rng, uint32_t pos, const uint32_t *neg, uint32_t nneg, int K,
                             uint32_t *scratch, uint32_t *cand)
{
    cand[0] = pos;
    if (nneg <= (uint32_t)K) {
        /* Too few: every negative, then padding news, as the peer does. */
        for (uint32_t i = 0; i < nneg; i++)
            cand[1 + i] = neg[i];
        for (int i = (int)nneg; i < K; i++)
            cand[1 + i] = DATASET_PAD_NEWS;
        return;
    }
    /* Partial Fisher-Yates: the first K slots become a uniform sample without replacement. */
    memcpy(scratch, neg, nneg * sizeof *scratch);
    for (int i = 0; i < K; i++) {
        uint32_t j = (uint32_t)i + (uint32_t)rng_below(rng, nneg - (uint32_t)i);
        uint32_t t = scratch[i];
        scratch[i] = scratch[j];
        scratch[j] = t;
        cand[1 + i] = scratch[i];
    }
}

/* ------------------------------------------------------------------ the loop */

typedef struct NewsLookup {
    DatasetTxn *txn;
    uint32_t title_len;
} NewsLookup;

static int lookup_news(void *ctx, uint32_t news, BatchNews *out)
{
    NewsLookup *nl = ctx;
    NewsView nv;
    int rc = dataset_get_news(nl->txn, news, &nv);
    if (rc)
        return rc;
    out->category = nv.category;
    out->ntok = nv.ntok < nl->title_len ? nv.ntok : nl->title_len;
    out->tokens = nv.tokens;
    return 0;
}

/* Counters of the loop, shared by the steps it completes. */
typedef struct TrainLoop {
    const TrainOptions *opt;
    TrainResult *res;
    uint64_t step;               /* global steps completed */
    uint64_t issued;             /* batches issued */
    uint64_t samples_in_flight[2]; /* sizes of the issued batches, by issue order */
    ReaderPosition pos_after[2]; /* reader position right after each issued batch */
    WorkerCut cut;                /* position after the last finished step */
    double t0, t_log, loss_sum;
    uint64_t loss_n, samples_log;
    TrainProgress progress;
    uint64_t epoch_step;          /* steps done in the current epoch */
    uint64_t epoch_steps;         /* steps of the current epoch */
    uint64_t steps_after;         /* steps of the epochs after the current one */
} TrainLoop;

/* Steps this worker takes in epoch (see the top). */
static uint64_t epoch_steps(const TrainOptions *opt, uint64_t epoch)
{
    const uint64_t B = (uint64_t)opt->batch_size;
    uint64_t n = 0;
    int planned = 0;
    for (uint32_t i = 0; opt->plan && i < opt->plan->nparts; i++)
        if (opt->plan->parts[i].epoch == epoch) {
            n = reader_plan_share(&opt->plan->parts[i], opt->rank, opt->world);
            planned = 1;
        }
    if (!planned)
        n = reader_partition_size(dataset_meta(opt->train)->samples, opt->rank, opt->world,
                                  opt->interleave);
    return (n + B - 1) / B;
}

/* Set the progress counters for the start of epoch (offset samples of it done already). */
static void progress_epoch(TrainLoop *lp, uint64_t epoch, uint64_t offset)
{
    const TrainOptions *opt = lp->opt;
    const uint64_t B = (uint64_t)opt->batch_size;
    lp->epoch_steps = epoch_steps(opt, epoch);
    lp->epoch_step = (offset + B - 1) / B;
    lp->steps_after = 0;
    for (uint64_t e = epoch + 1; e < (uint64_t)opt->epochs; e++)
        lp->steps_after += epoch_steps(opt, e);
}

/* Complete the oldest batch in flight: forward/backward and push, tell the PS the step is
 * done, log, and checkpoint when due. */
static int complete_step(TrainLoop *lp, TrainStep *ts, uint64_t epoch)
{
    const TrainOptions *opt = lp->opt;
    const uint64_t oldest = lp->issued - (uint64_t)train_step_pending(ts);
    const uint64_t n = lp->samples_in_flight[oldest % 2];
    float loss;
    int rc = train_step_complete(ts, &loss);
    if (rc)
        return rc;
    lp->cut.pos = lp->pos_after[oldest % 2];
    lp->cut.steps = lp->step + 1;
    lp->cut.samples += n;
    if (opt->hooks.step_pushed)
        opt->hooks.step_pushed(opt->hooks.ctx, &lp->cut);
    if ((rc = ps_clock(opt->ps, lp->step)))
        return rc;
    lp->step++;
    lp->res->samples += n;
    lp->samples_log += n;
    lp->loss_sum += loss;
    lp->loss_n++;
    lp->epoch_step++;
    if (opt->progress != PROGRESS_OFF) {
        ProgressPos pp = {.epoch = epoch,
                          .epochs = (uint64_t)opt->epochs,
                          .step = lp->epoch_step,
                          .steps = lp->epoch_steps,
                          .steps_after = lp->steps_after};
        if (opt->hooks.lag)
            pp.has_lag = opt->hooks.lag(opt->hooks.ctx, lp->step, &pp.lag);
        train_progress_step(&lp->progress, timer_now(), loss, n, &pp, NULL);
    }
    if (opt->log_every > 0 && lp->step % (uint64_t)opt->log_every == 0) {
        double t = timer_now(), rate = (double)lp->samples_log / (t - lp->t_log);
        lp->res->last_loss = lp->loss_sum / (double)lp->loss_n;
        if (opt->metrics) {
            fprintf(opt->metrics,
                    "{\"worker\":%u,\"epoch\":%llu,\"step\":%llu,\"loss\":%.6f,"
                    "\"samples_per_s\":%.1f}\n",
                    opt->rank, (unsigned long long)epoch, (unsigned long long)lp->step,
                    lp->res->last_loss, rate);
            fflush(opt->metrics);
        }
        LOG_DETAIL("epoch %llu step %llu loss %.4f %.0f samples/s", (unsigned long long)epoch,
                 (unsigned long long)lp->step, lp->res->last_loss, rate);
        lp->t_log = t;
        lp->loss_sum = 0;
        lp->loss_n = 0;
        lp->samples_log = 0;
    }
    /* A cut needs the position after exactly this step, which pos_after kept even when the
     * next batch is issued already (its pulls change nothing, and nothing of it is pushed). */
    if (opt->hooks.cut_due && opt->hooks.checkpoint && opt->hooks.cut_due(opt->hooks.ctx, &lp->cut))
        return opt->hooks.checkpoint(opt->hooks.ctx, &lp->cut, 0);
    return 0;
}

int train_run(const TrainOptions *opt, TrainResult *res)
{
    const ModelDims *d = &opt->dims;
    const int B = opt->batch_size, K = d->K, L = d->his_len;
    memset(res, 0, sizeof *res);
    TrainStep *ts = NULL;
    Reader *reader = NULL;
    DatasetTxn *txn = NULL;
    uint32_t *users = malloc((size_t)B * sizeof *users);
    uint32_t *his = malloc((size_t)B * (size_t)L * sizeof *his + 1);
    int *his_n = malloc((size_t)B * sizeof *his_n);
    uint32_t *cand = malloc((size_t)B * (size_t)(1 + K) * sizeof *cand);
    uint32_t *scratch = NULL;
    size_t scratch_cap = 0;
    int rc = 0, progress_shown = 0;
    if (!users || !his || !his_n || !cand) {
        rc = PSREC_E_NOMEM;
        goto out;
    }
    if ((rc = train_step_new(&ts, d, B, opt->ps)) || (rc = dataset_txn_new(opt->train, &txn)))
        goto out;
    train_step_set_clock(ts, opt->start_step);
    ReaderOptions ro = {.batch_size = (uint32_t)B,
                        .rank = opt->rank,
                        .world = opt->world,
                        .seed = opt->seed,
                        .start = opt->start,
                        .plan = opt->plan,
                        .interleave = opt->interleave};
    if ((rc = reader_new(opt->train, &ro, &reader)))
        goto out;
    NewsLookup nl = {txn, (uint32_t)d->title_len};
    const int overlap = opt->ps->ops->async;
    TrainLoop lp = {.opt = opt, .res = res, .step = opt->start_step, .t0 = timer_now()};
    lp.t_log = lp.t0;
    reader_position(reader, &lp.cut.pos);
    lp.cut.steps = opt->start_step;
    lp.cut.samples = opt->start_samples;
    uint64_t epoch = opt->start ? opt->start->epoch : opt->plan ? opt->plan->epoch : 0;
    /* Epochs whose end this worker has handled (evaluated). A takeover's plan may report the
     * end of an epoch again that this worker already passed (for a lost worker that had
     * not): it is not evaluated twice. */
    uint64_t epochs_ended = epoch;
    train_progress_init(&lp.progress, opt->progress, opt->progress_interval, lp.t0);
    progress_shown = opt->progress != PROGRESS_OFF;
    while (epoch < (uint64_t)opt->epochs) {
        const ReaderBatch *rb;
        progress_epoch(&lp, epoch,
                       opt->start && opt->start->epoch == epoch ? opt->start->offset : 0);
        for (;;) {
            if ((rc = reader_next(reader, &rb)))
                goto out;
            if (!rb)
                break; /* end of this epoch */
            if (rb->epoch != epoch) {
                rc = psrec_errf(PSREC_E_STATE, "reader at epoch %llu, trainer at %llu",
                                (unsigned long long)rb->epoch, (unsigned long long)epoch);
                goto out;
            }
            const int n = (int)rb->n;
            for (int i = 0; i < n; i++) {
                users[i] = rb->user[i];
                /* The dataset may keep a longer history than the model reads: the last L. */
                uint32_t nh = rb->nhis[i], skip = nh > (uint32_t)L ? nh - (uint32_t)L : 0;
                his_n[i] = (int)(nh - skip);
                memcpy(his + (size_t)i * (size_t)L, rb->his + (size_t)i * rb->his_len + skip,
                       (size_t)his_n[i] * sizeof *his);
                uint32_t nneg = rb->neg_off[i + 1] - rb->neg_off[i];
                if (nneg > scratch_cap) {
                    free(scratch);
                    scratch_cap = nneg * 2;
                    if (!(scratch = malloc(scratch_cap * sizeof *scratch))) {
                        rc = PSREC_E_NOMEM;
                        goto out;
                    }
                }
                /* Negatives come from a stream keyed by (seed, epoch, sample), so they do not
                 * depend on which worker trains the sample or where a run resumed. */
                Rng rng;
                rng_seed(&rng, rng_mix64(opt->seed ^ 0x6e656761746976ULL) ^
                                   rng_mix64(rb->index[i] * 0x100000001b3ULL + epoch));
                train_sample_candidates(&rng, rb->pos[i], rb->neg + rb->neg_off[i], nneg, K,
                                        scratch, cand + (size_t)i * (size_t)(1 + K));
            }
            if ((rc = train_step_issue(ts, n, users, his, his_n, cand, lookup_news, &nl)))
                goto out;
            reader_position(reader, &lp.pos_after[lp.issued % 2]);
            lp.samples_in_flight[(lp.issued++) % 2] = (uint64_t)n;
            /* With an asynchronous PS the next batch is issued before this one completes,
             * so its pulls travel while this one computes. */
            if (train_step_pending(ts) == (overlap ? 2 : 1) &&
                (rc = complete_step(&lp, ts, epoch)))
                goto stepped;
        }
        while (train_step_pending(ts))
            if ((rc = complete_step(&lp, ts, epoch)))
                goto stepped;
        if (lp.loss_n)
            res->last_loss = lp.loss_sum / (double)lp.loss_n;
        if (epoch >= epochs_ended && opt->hooks.after_epoch &&
            (rc = opt->hooks.after_epoch(opt->hooks.ctx, epoch, lp.step)))
            goto out;
        if (epoch >= epochs_ended)
            epochs_ended = epoch + 1;
        epoch++;
        continue;
    stepped:
        if (rc != TRAIN_REPLAN || !opt->hooks.replan)
            goto out;
        /* A worker was lost: drop what is in flight (its samples are in the new plan), read
         * on from the survivors' re-partition of everything left. */
        rc = 0;
        while (train_step_pending(ts)) {
            lp.issued--;
            if ((rc = train_step_discard(ts)))
                goto out;
        }
        train_step_set_clock(ts, lp.step);
        reader_free(&reader);
        if ((rc = opt->hooks.replan(opt->hooks.ctx, &ro)) ||
            (rc = reader_new(opt->train, &ro, &reader)))
            goto out;
        epoch = ro.start ? ro.start->epoch : ro.plan ? ro.plan->epoch : epoch;
        reader_position(reader, &lp.cut.pos);
    }
    res->steps = lp.step;
    res->seconds = timer_now() - lp.t0;
    reader_position(reader, &lp.cut.pos);
    res->last = lp.cut;
    if (opt->hooks.checkpoint)
        rc = opt->hooks.checkpoint(opt->hooks.ctx, &lp.cut, 1);
out:
    if (progress_shown)
        train_progress_end(&lp.progress);
    if (rc == TRAIN_STOPPED) {
        res->steps = lp.step;
        res->seconds = timer_now() - lp.t0;
        res->last = lp.cut;
    }
    reader_free(&reader);
    dataset_txn_free(&txn);
    train_step_free(&ts);
    free(users);
    free(his);
    free(his_n);
    free(cand);
    free(scratch);
    return rc;
}
