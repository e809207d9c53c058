/* Evaluation (see eval.h).
 *
 * Pass 1 encodes every news row of the dataset once, in chunks of NEWS_CHUNK: the chunk's
 * distinct words and categories are pulled (sorted, deduplicated), the news LSTM runs on the
 * chunk, and the vectors land in an (news_rows, H) matrix.
 * Pass 2 walks the impressions in chunks of USER_CHUNK: distinct users are pulled, the user
 * LSTM runs once per impression over the history's news vectors (rows of that matrix), and
 * each candidate's score is one dot product. Memory: news_rows x H floats plus chunk buffers. */
#include "worker/eval.h"

#include "common/error.h"
#include "common/params.h"
#include "common/progress.h"
#include "common/timer.h"
#include "worker/params_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { NEWS_CHUNK = 512, USER_CHUNK = 256 };

typedef struct Eval {
    const EvalOptions *opt;
    const ModelDims *d;
    ModelWorkspace *ws;
    ParamsIo io;
    DatasetTxn *txn;
    float *dense;
    DenseParams p;
    float *news_vecs;     /* (news_rows, H) */
    uint64_t news_rows;
    /* chunk scratch */
    uint32_t *ids;        /* (NEWS_CHUNK * title_len) global ids -> sorted distinct */
    int *local;           /* (NEWS_CHUNK * title_len) local ids */
    int *len, *cat_local; /* (NEWS_CHUNK) */
    uint32_t *cat_ids;    /* (NEWS_CHUNK) */
    float *rows;          /* (NEWS_CHUNK * title_len, max(E, H)) pulled rows */
    float *cat_rows;      /* (NEWS_CHUNK, H) */
    int *his;             /* (USER_CHUNK, his_len) */
    int *his_n, *user_local; /* (USER_CHUNK) */
    uint32_t *user_ids;   /* (USER_CHUNK) */
    float *users;         /* (USER_CHUNK, H) vectors */
    ImpressionView *imps; /* (USER_CHUNK) views of the chunk, valid while txn lives */
    float *scores;        /* (max candidates) */
    uint32_t *ranks;
    uint8_t *labels;
    size_t cand_cap;
    MetricsScratch ms;
} Eval;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sort ids[0..n) and drop repeats; returns the distinct count. */
static size_t sort_unique(uint32_t *ids, size_t n)
{
    if (n == 0)
        return 0;
    qsort(ids, n, sizeof *ids, cmp_u32);
    size_t k = 1;
    for (size_t i = 1; i < n; i++)
        if (ids[i] != ids[k - 1])
            ids[k++] = ids[i];
    return k;
}

/* Local id of x among the sorted distinct ids[0..n). */
static int local_of(const uint32_t *ids, size_t n, uint32_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ids[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int)lo;
}

static int encode_news_chunk(Eval *ev, uint64_t first, int n)
{
    const ModelDims *d = ev->d;
    const int T = d->title_len;
    size_t ntok = 0;
    int rc;
    /* Gather the chunk's titles as global ids into local (as u32 for now) and collect ids. */
    uint32_t *tok_global = (uint32_t *)ev->local; /* same size, reused in place below */
    for (int i = 0; i < n; i++) {
        NewsView nv;
        if ((rc = dataset_get_news(ev->txn, (uint32_t)(first + (uint64_t)i), &nv)))
            return rc;
        int len = (int)(nv.ntok < (uint32_t)T ? nv.ntok : (uint32_t)T);
        ev->len[i] = len;
        ev->cat_ids[i] = nv.category;
        for (int t = 0; t < len; t++) {
            tok_global[(size_t)i * (size_t)T + (size_t)t] = nv.tokens[t];
            ev->ids[ntok++] = nv.tokens[t];
        }
    }
    size_t nw = sort_unique(ev->ids, ntok);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < ev->len[i]; t++) {
            size_t at = (size_t)i * (size_t)T + (size_t)t;
            ev->local[at] = local_of(ev->ids, nw, tok_global[at]);
        }
    if ((rc = params_pull_rows(&ev->io, PARAM_WORD, ev->ids, nw, ev->rows)))
        return rc;
    /* Categories: reuse ids after the words are pulled. */
    memcpy(ev->ids, ev->cat_ids, (size_t)n * sizeof *ev->ids);
    size_t nc = sort_unique(ev->ids, (size_t)n);
    for (int i = 0; i < n; i++)
        ev->cat_local[i] = local_of(ev->ids, nc, ev->cat_ids[i]);
    if ((rc = params_pull_rows(&ev->io, PARAM_CAT, ev->ids, nc, ev->cat_rows)))
        return rc;
    return model_encode_news(ev->ws, d, &ev->p, ev->rows, ev->cat_rows, n, ev->local, ev->len,
                             ev->cat_local, ev->news_vecs + first * (uint64_t)d->H);
}

static int grow_cand(Eval *ev, size_t n)
{
    if (n <= ev->cand_cap)
        return 0;
    size_t cap = n * 2;
    float *s = realloc(ev->scores, cap * sizeof *s);
    if (s)
        ev->scores = s;
    uint32_t *r = realloc(ev->ranks, cap * sizeof *r);
    if (r)
        ev->ranks = r;
    uint8_t *l = realloc(ev->labels, cap);
    if (l)
        ev->labels = l;
    if (!s || !r || !l)
        return PSREC_E_NOMEM;
    ev->cand_cap = cap;
    return 0;
}

static int write_prediction(Eval *ev, const ImpressionView *iv)
{
    int rc = metrics_ranks(ev->scores, iv->ncand, ev->ranks, &ev->ms);
    if (rc)
        return rc;
    FILE *f = ev->opt->predictions;
    fprintf(f, "%.*s [", (int)iv->id_len, iv->id);
    for (uint32_t i = 0; i < iv->ncand; i++)
        fprintf(f, i ? ",%u" : "%u", ev->ranks[i]);
    fputs("]\n", f);
    return ferror(f) ? psrec_errf(EIO, "writing predictions failed") : 0;
}

static int score_impressions(Eval *ev, uint64_t first, int n, MetricsAcc *acc, EvalStats *st)
{
    const ModelDims *d = ev->d;
    const int L = d->his_len, H = d->H;
    int rc;
    for (int i = 0; i < n; i++) {
        if ((rc = dataset_get_impression(ev->txn, first + (uint64_t)i, &ev->imps[i])))
            return rc;
        const ImpressionView iv = ev->imps[i];
        uint32_t skip = iv.nhis > (uint32_t)L ? iv.nhis - (uint32_t)L : 0;
        ev->his_n[i] = (int)(iv.nhis - skip);
        for (int t = 0; t < ev->his_n[i]; t++)
            ev->his[(size_t)i * (size_t)L + (size_t)t] = (int)iv.his[skip + (uint32_t)t];
        ev->user_ids[i] = iv.user;
    }
    memcpy(ev->ids, ev->user_ids, (size_t)n * sizeof *ev->ids);
    size_t nu = sort_unique(ev->ids, (size_t)n);
    for (int i = 0; i < n; i++)
        ev->user_local[i] = local_of(ev->ids, nu, ev->user_ids[i]);
    if ((rc = params_pull_rows(&ev->io, PARAM_USER, ev->ids, nu, ev->rows)))
        return rc;
    if ((rc = model_encode_users(ev->ws, d, &ev->p, ev->rows, n, ev->user_local, ev->news_vecs,
                                 (int)ev->news_rows, ev->his, ev->his_n, ev->users)))
        return rc;
    for (int i = 0; i < n; i++) {
        const ImpressionView iv = ev->imps[i];
        if ((rc = grow_cand(ev, iv.ncand)))
            return rc;
        for (uint32_t c = 0; c < iv.ncand; c++) {
            const float *nv = ev->news_vecs + (size_t)iv.cand[c] * (size_t)H;
            const float *u = ev->users + (size_t)i * (size_t)H;
            float s = 0;
            for (int h = 0; h < H; h++)
                s += u[h] * nv[h];
            ev->scores[c] = s;
        }
        if (iv.labeled) {
            memcpy(ev->labels, iv.labels, iv.ncand);
            metrics_impression(ev->scores, ev->labels, iv.ncand, acc, &ev->ms);
        }
        if (ev->opt->predictions && (rc = write_prediction(ev, &iv)))
            return rc;
        st->impressions++;
        st->candidates += iv.ncand;
    }
    return 0;
}

static void eval_fini(Eval *ev)
{
    model_workspace_free(&ev->ws);
    params_io_fini(&ev->io);
    dataset_txn_free(&ev->txn);
    free(ev->dense);
    free(ev->news_vecs);
    free(ev->ids);
    free(ev->local);
    free(ev->len);
    free(ev->cat_local);
    free(ev->cat_ids);
    free(ev->rows);
    free(ev->cat_rows);
    free(ev->his);
    free(ev->his_n);
    free(ev->user_local);
    free(ev->user_ids);
    free(ev->users);
    free(ev->imps);
    free(ev->scores);
    free(ev->ranks);
    free(ev->labels);
    metrics_scratch_fini(&ev->ms);
}

int eval_run(const EvalOptions *opt, MetricsAcc *acc, EvalStats *stats)
{
    const double t0 = timer_now();
    EvalStats st = {0};
    ProgressMeter meter = {0}; /* off unless opt->progress */
    Eval ev = {.opt = opt, .d = &opt->dims};
    metrics_scratch_init(&ev.ms);
    const ModelDims *d = &opt->dims;
    const DatasetMeta *m = dataset_meta(opt->data);
    ev.news_rows = m->news_rows;
    const size_t T = (size_t)d->title_len, H = (size_t)d->H, E = (size_t)d->E;
    const size_t W = E > H ? E : H;
    const size_t max_ids = NEWS_CHUNK * T > USER_CHUNK ? NEWS_CHUNK * T : USER_CHUNK;
    int rc;
    if ((rc = model_workspace_new(&ev.ws, d, USER_CHUNK, NEWS_CHUNK, (int)(NEWS_CHUNK * T))) ||
        (rc = params_io_init(&ev.io, opt->ps, d, max_ids)) ||
        (rc = dataset_txn_new(opt->data, &ev.txn)))
        goto out;
    ev.dense = malloc(model_dense_floats(d) * sizeof(float));
    ev.news_vecs = malloc(ev.news_rows * H * sizeof(float));
    ev.ids = malloc(max_ids * sizeof *ev.ids);
    ev.local = calloc(NEWS_CHUNK * T, sizeof *ev.local);
    ev.len = malloc(NEWS_CHUNK * sizeof *ev.len);
    ev.cat_local = malloc(NEWS_CHUNK * sizeof *ev.cat_local);
    ev.cat_ids = malloc(NEWS_CHUNK * sizeof *ev.cat_ids);
    ev.rows = malloc(max_ids * W * sizeof *ev.rows);
    ev.cat_rows = malloc(NEWS_CHUNK * H * sizeof *ev.cat_rows);
    ev.his = calloc((size_t)USER_CHUNK * (size_t)d->his_len + 1, sizeof *ev.his);
    ev.his_n = malloc(USER_CHUNK * sizeof *ev.his_n);
    ev.user_local = malloc(USER_CHUNK * sizeof *ev.user_local);
    ev.user_ids = malloc(USER_CHUNK * sizeof *ev.user_ids);
    ev.users = malloc(USER_CHUNK * H * sizeof *ev.users);
    ev.imps = malloc(USER_CHUNK * sizeof *ev.imps);
    if (!ev.dense || !ev.news_vecs || !ev.ids || !ev.local || !ev.len || !ev.cat_local ||
        !ev.cat_ids || !ev.rows || !ev.cat_rows || !ev.his || !ev.his_n || !ev.user_local ||
        !ev.user_ids || !ev.users || !ev.imps || (rc = grow_cand(&ev, 64))) {
        rc = psrec_errf(PSREC_E_NOMEM, "evaluation: out of memory");
        goto out;
    }
    model_dense_bind(&ev.p, d, ev.dense);
    if ((rc = params_pull_dense(&ev.io, &ev.p)))
        goto out;
    if (opt->progress)
        progress_meter_init(&meter, "eval: encoding news", "news");
    for (uint64_t first = 0; first < ev.news_rows; first += NEWS_CHUNK) {
        uint64_t left = ev.news_rows - first;
        int n = (int)(left < NEWS_CHUNK ? left : NEWS_CHUNK);
        if ((rc = encode_news_chunk(&ev, first, n)))
            goto out;
        st.news_encoded += (uint64_t)n;
        progress_meter_update(&meter, first + (uint64_t)n, ev.news_rows);
    }
    uint64_t end = opt->end < m->impressions ? opt->end : m->impressions;
    meter.what = "eval: scoring";
    meter.unit = "impressions";
    for (uint64_t first = opt->begin; first < end; first += USER_CHUNK) {
        uint64_t left = end - first;
        int n = (int)(left < USER_CHUNK ? left : USER_CHUNK);
        if ((rc = score_impressions(&ev, first, n, acc, &st)))
            goto out;
        progress_meter_update(&meter, first + (uint64_t)n - opt->begin, end - opt->begin);
    }
out:
    progress_meter_end(&meter);
    eval_fini(&ev);
    st.seconds = timer_now() - t0;
    if (stats)
        *stats = st;
    return rc;
}
