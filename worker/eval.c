/* Evaluation (see eval.h): the scorer (worker/scorer.h) encodes every news row of the
 * dataset once; the impressions are walked in chunks of USER_CHUNK, each chunk's users are
 * encoded in one scorer call, each candidate gets its score, and the labeled impressions go
 * into the metric sums (and, when asked, MIND's prediction lines). */
#include "worker/eval.h"

#include "common/error.h"
#include "common/params.h"
#include "common/progress.h"
#include "common/timer.h"
#include "worker/scorer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { USER_CHUNK = 256 };

typedef struct Eval {
    const EvalOptions *opt;
    Scorer *sc;
    DatasetTxn *txn;
    const uint32_t *his[USER_CHUNK];
    uint32_t nhis[USER_CHUNK], user_ids[USER_CHUNK];
    float *users;         /* (USER_CHUNK, H) vectors */
    ImpressionView *imps; /* (USER_CHUNK) views of the chunk, valid while txn lives */
    float *scores;        /* (max candidates) */
    uint32_t *ranks;
    uint8_t *labels;
    size_t cand_cap;
    MetricsScratch ms;
} Eval;

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
    const size_t H = (size_t)ev->opt->dims.H;
    int rc;
    for (int i = 0; i < n; i++) {
        if ((rc = dataset_get_impression(ev->txn, first + (uint64_t)i, &ev->imps[i])))
            return rc;
        ev->user_ids[i] = ev->imps[i].user;
        ev->his[i] = ev->imps[i].his;
        ev->nhis[i] = ev->imps[i].nhis;
    }
    if ((rc = scorer_encode_users(ev->sc, n, ev->user_ids, ev->his, ev->nhis, ev->users)))
        return rc;
    for (int i = 0; i < n; i++) {
        const ImpressionView iv = ev->imps[i];
        if ((rc = grow_cand(ev, iv.ncand)))
            return rc;
        scorer_score(ev->sc, ev->users + (size_t)i * H, iv.cand, iv.ncand, ev->scores);
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

int eval_run(const EvalOptions *opt, MetricsAcc *acc, EvalStats *stats)
{
    const double t0 = timer_now();
    EvalStats st = {0};
    Eval ev = {.opt = opt};
    ProgressMeter meter = {0}; /* off unless opt->progress */
    metrics_scratch_init(&ev.ms);
    const DatasetMeta *m = dataset_meta(opt->data);
    int rc;
    if ((rc = scorer_new(&ev.sc, &opt->dims, opt->ps, m->news_rows, USER_CHUNK)) ||
        (rc = dataset_txn_new(opt->data, &ev.txn)))
        goto out;
    ev.users = malloc((size_t)USER_CHUNK * (size_t)opt->dims.H * sizeof *ev.users);
    ev.imps = malloc(USER_CHUNK * sizeof *ev.imps);
    if (!ev.users || !ev.imps || (rc = grow_cand(&ev, 64))) {
        rc = psrec_errf(PSREC_E_NOMEM, "evaluation: out of memory");
        goto out;
    }
    scorer_set_gathered(ev.sc, !opt->plain);
    /* Every impression's history steps go through the user LSTM: project each news once. */
    if ((rc = scorer_encode_news(ev.sc, ev.txn)) || (rc = scorer_project_news(ev.sc)))
        goto out;
    st.news_encoded = m->news_rows;
    uint64_t end = opt->end < m->impressions ? opt->end : m->impressions;
    if (opt->progress)
        progress_meter_init(&meter, "eval: scoring", "impressions");
    for (uint64_t first = opt->begin; first < end; first += USER_CHUNK) {
        uint64_t left = end - first;
        int n = (int)(left < USER_CHUNK ? left : USER_CHUNK);
        if ((rc = score_impressions(&ev, first, n, acc, &st)))
            goto out;
        progress_meter_update(&meter, first + (uint64_t)n - opt->begin, end - opt->begin);
    }
out:
    progress_meter_end(&meter);
    scorer_free(&ev.sc);
    dataset_txn_free(&ev.txn);
    free(ev.users);
    free(ev.imps);
    free(ev.scores);
    free(ev.ranks);
    free(ev.labels);
    metrics_scratch_fini(&ev.ms);
    st.seconds = timer_now() - t0;
    if (stats)
        *stats = st;
    return rc;
}
