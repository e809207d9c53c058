/* The training loop (see train.h).
 *
 * A step: dedup the batch (batch_build), pull the distinct word/category/user rows and the
 * dense weights, run the model's forward/backward, push the row gradients and the dense
 * gradient, tell the PS the step is done (ps_clock). Buffers are sized once for the largest
 * batch in train_step_new; nothing is allocated per step.
 * Determinism: one process, one thread, same seed -> same loss sequence; the reader's order
 * and the negative sampling are both seeded, the latter per (seed, epoch, sample). */
#include "worker/train.h"

#include "common/error.h"
#include "common/log.h"
#include "common/params.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct TrainStep {
    ModelDims dims;
    int max_B;
    ModelWorkspace *ws;
    BatchBuilder *bb;
    ParamsIo io;
    float *dense, *gdense; /* (dense floats) */
    DenseParams p, g;
    float *word_rows, *g_word; /* (max_words, E) */
    float *cat_rows, *g_cat;   /* (max_news, H) */
    float *user_rows, *g_user; /* (max_B, H) */
    size_t max_words, max_news;
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
    int rc, fail = 0;
    if ((rc = model_workspace_new(&ts->ws, d, max_B, 0, 0)) ||
        (rc = batch_builder_new(&ts->bb, d, max_B)) ||
        (rc = params_io_init(&ts->io, ps, d, ts->max_words)))
        goto fail;
    size_t nd = model_dense_floats(d);
    ts->dense = xcalloc(nd, sizeof(float), &fail);
    ts->gdense = xcalloc(nd, sizeof(float), &fail);
    ts->word_rows = xcalloc(ts->max_words * (size_t)d->E, sizeof(float), &fail);
    ts->g_word = xcalloc(ts->max_words * (size_t)d->E, sizeof(float), &fail);
    ts->cat_rows = xcalloc(ts->max_news * (size_t)d->H, sizeof(float), &fail);
    ts->g_cat = xcalloc(ts->max_news * (size_t)d->H, sizeof(float), &fail);
    ts->user_rows = xcalloc((size_t)max_B * (size_t)d->H, sizeof(float), &fail);
    ts->g_user = xcalloc((size_t)max_B * (size_t)d->H, sizeof(float), &fail);
    if (fail) {
        rc = PSREC_E_NOMEM;
        goto fail;
    }
    model_dense_bind(&ts->p, d, ts->dense);
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
    batch_builder_free(&ts->bb);
    params_io_fini(&ts->io);
    free(ts->dense);
    free(ts->gdense);
    free(ts->word_rows);
    free(ts->g_word);
    free(ts->cat_rows);
    free(ts->g_cat);
    free(ts->user_rows);
    free(ts->g_user);
    free(ts);
    *tsp = NULL;
}

int train_step_run(TrainStep *ts, int B, const uint32_t *users, const uint32_t *his,
                   const int *his_n, const uint32_t *cand, BatchNewsFn news_fn, void *ctx,
                   float *loss)
{
    const ModelDims *d = &ts->dims;
    ModelBatch mb;
    BatchKeys k;
    int rc = batch_build(ts->bb, B, users, his, his_n, cand, news_fn, ctx, &mb, &k);
    if (rc)
        return rc;
    if ((rc = params_pull_rows(&ts->io, PARAM_WORD, k.words, (size_t)k.n_words, ts->word_rows)) ||
        (rc = params_pull_rows(&ts->io, PARAM_CAT, k.cats, (size_t)k.n_cats, ts->cat_rows)) ||
        (rc = params_pull_rows(&ts->io, PARAM_USER, k.users, (size_t)k.n_users, ts->user_rows)) ||
        (rc = params_pull_dense(&ts->io, &ts->p)))
        return rc;
    memset(ts->gdense, 0, model_dense_floats(d) * sizeof(float));
    memset(ts->g_word, 0, (size_t)k.n_words * (size_t)d->E * sizeof(float));
    memset(ts->g_cat, 0, (size_t)k.n_cats * (size_t)d->H * sizeof(float));
    memset(ts->g_user, 0, (size_t)k.n_users * (size_t)d->H * sizeof(float));
    if ((rc = model_train_step_grads(ts->ws, d, &ts->p, ts->word_rows, ts->cat_rows,
                                     ts->user_rows, &mb, &ts->g, ts->g_word, ts->g_cat,
                                     ts->g_user, loss)))
        return rc;
    if ((rc = params_push_rows(&ts->io, PARAM_WORD, k.words, (size_t)k.n_words, ts->g_word)) ||
        (rc = params_push_rows(&ts->io, PARAM_CAT, k.cats, (size_t)k.n_cats, ts->g_cat)) ||
        (rc = params_push_rows(&ts->io, PARAM_USER, k.users, (size_t)k.n_users, ts->g_user)) ||
        (rc = params_push_dense(&ts->io, &ts->g)))
        return rc;
    return 0;
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

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
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
    int rc = 0;
    if (!users || !his || !his_n || !cand) {
        rc = PSREC_E_NOMEM;
        goto out;
    }
    if ((rc = train_step_new(&ts, d, B, opt->ps)) || (rc = dataset_txn_new(opt->train, &txn)))
        goto out;
    ReaderOptions ro = {.batch_size = (uint32_t)B,
                        .rank = opt->rank,
                        .world = opt->world,
                        .seed = opt->seed,
                        .start = opt->start,
                        .interleave = opt->interleave};
    if ((rc = reader_new(opt->train, &ro, &reader)))
        goto out;
    NewsLookup nl = {txn, (uint32_t)d->title_len};
    uint64_t step = opt->start_step;
    double t0 = now_s(), t_log = t0, loss_sum = 0;
    uint64_t loss_n = 0, samples_log = 0;
    uint64_t epoch = opt->start ? opt->start->epoch : 0;
    for (; epoch < (uint64_t)opt->epochs; epoch++) {
        const ReaderBatch *rb;
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
            float loss;
            if ((rc = train_step_run(ts, n, users, his, his_n, cand, lookup_news, &nl, &loss)))
                goto out;
            if ((rc = ps_clock(opt->ps, step)))
                goto out;
            step++;
            res->samples += (uint64_t)n;
            samples_log += (uint64_t)n;
            loss_sum += loss;
            loss_n++;
            if (opt->log_every > 0 && step % (uint64_t)opt->log_every == 0) {
                double t = now_s();
                res->last_loss = loss_sum / (double)loss_n;
                if (opt->metrics) {
                    fprintf(opt->metrics,
                            "{\"worker\":%u,\"epoch\":%llu,\"step\":%llu,\"loss\":%.6f,"
                            "\"samples_per_s\":%.1f}\n",
                            opt->rank, (unsigned long long)epoch, (unsigned long long)step,
                            res->last_loss,
                            (double)samples_log / (t - t_log));
                    fflush(opt->metrics);
                }
                LOG_INFO("epoch %llu step %llu loss %.4f %.0f samples/s",
                         (unsigned long long)epoch, (unsigned long long)step, res->last_loss,
                         (double)samples_log / (t - t_log));
                t_log = t;
                loss_sum = 0;
                loss_n = 0;
                samples_log = 0;
            }
            if (opt->checkpoint_every > 0 && step % (uint64_t)opt->checkpoint_every == 0 &&
                opt->hooks.checkpoint) {
                ReaderPosition pos;
                reader_position(reader, &pos);
                if ((rc = opt->hooks.checkpoint(opt->hooks.ctx, step, &pos, 0)))
                    goto out;
            }
        }
        if (loss_n)
            res->last_loss = loss_sum / (double)loss_n;
        if (opt->hooks.after_epoch && (rc = opt->hooks.after_epoch(opt->hooks.ctx, epoch, step)))
            goto out;
    }
    res->steps = step;
    res->seconds = now_s() - t0;
    if (opt->hooks.checkpoint) {
        ReaderPosition pos;
        reader_position(reader, &pos);
        rc = opt->hooks.checkpoint(opt->hooks.ctx, step, &pos, 1);
    }
out:
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
