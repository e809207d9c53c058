/* Evaluation (see eval.h): the scorer (worker/scorer.h) encodes every news row of the
 * dataset once (and projects it for the user LSTM once); the impressions are walked in blocks
 * of BLOCK, each block's distinct users are encoded in scorer calls of USER_CHUNK, each
 * candidate gets its score, and the labeled impressions go into the metric sums (and, when
 * asked, MIND's prediction lines), in impression order.
 *
 * Distinct users: a user's vector depends on its user row and its history (the last his_len
 * clicks) only, and a user's impressions repeat the same history (MIND's behaviors do; gen's
 * too: 20000 dev impressions hold 14871 distinct ones), so a block encodes each distinct
 * (user, history) once. Memory: BLOCK x H floats of user vectors plus BLOCK views. */
#include "worker/eval.h"

#include "common/error.h"
#include "common/params.h"
#include "common/progress.h"
#include "common/timer.h"
#include "worker/scorer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { USER_CHUNK = 256, BLOCK = 1 << 16 };

typedef struct Eval {
    const EvalOptions *opt;
    Scorer *sc;
    DatasetTxn *txn;
    const uint32_t *his[USER_CHUNK];
    uint32_t nhis[USER_CHUNK], user_ids[USER_CHUNK];
    float *users;         /* (BLOCK, H) vectors of the block's distinct users */
    ImpressionView *imps; /* (BLOCK) views of the block, valid while txn lives */
    uint32_t *uix;        /* (BLOCK) each impression's distinct user */
    uint32_t *rep;        /* (BLOCK) each distinct user's first impression in the block */
    uint32_t *slot;       /* (nslots) hash of (user, history) -> distinct user + 1, 0 empty */
    uint32_t nslots;      /* a power of two >= 2 x the block */
    ProgressMeter *meter;
    uint64_t done, total; /* impressions scored, to score (the progress line) */
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

/* The history the user LSTM reads: the last his_len clicks. */
static void effective_his(const ImpressionView *iv, uint32_t L, const uint32_t **his,
                          uint32_t *n)
{
    uint32_t skip = iv->nhis > L ? iv->nhis - L : 0;
    *his = iv->his + skip;
    *n = iv->nhis - skip;
}

static uint64_t user_hash(uint32_t user, const uint32_t *his, uint32_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ user;
    for (uint32_t t = 0; t < n; t++)
        h = (h ^ his[t]) * 0x100000001b3ull;
    h ^= n;
    h ^= h >> 29;
    return h * 0xbf58476d1ce4e5b9ull;
}

/* Distinct (user, history) of the block's n impressions: uix, rep; returns their count. */
static uint32_t distinct_users(Eval *ev, int n)
{
    const uint32_t L = (uint32_t)ev->opt->dims.his_len;
    const uint32_t mask = ev->nslots - 1;
    uint32_t nd = 0;
    memset(ev->slot, 0, ev->nslots * sizeof *ev->slot);
    for (int i = 0; i < n; i++) {
        const ImpressionView *iv = &ev->imps[i];
        const uint32_t *h;
        uint32_t nh;
        effective_his(iv, L, &h, &nh);
        uint32_t at = (uint32_t)(user_hash(iv->user, h, nh) & mask);
        for (;; at = (at + 1) & mask) {
            if (ev->slot[at] == 0) {
                ev->slot[at] = nd + 1;
                ev->rep[nd] = (uint32_t)i;
                ev->uix[i] = nd++;
                break;
            }
            const ImpressionView *o = &ev->imps[ev->rep[ev->slot[at] - 1]];
            const uint32_t *oh;
            uint32_t on;
            effective_his(o, L, &oh, &on);
            if (o->user == iv->user && on == nh && memcmp(oh, h, nh * sizeof *h) == 0) {
                ev->uix[i] = ev->slot[at] - 1;
                break;
            }
        }
    }
    return nd;
}

static int score_impressions(Eval *ev, uint64_t first, int n, MetricsAcc *acc, EvalStats *st)
{
    const size_t H = (size_t)ev->opt->dims.H;
    int rc;
    for (int i = 0; i < n; i++)
        if ((rc = dataset_get_impression(ev->txn, first + (uint64_t)i, &ev->imps[i])))
            return rc;
    const uint32_t nd = distinct_users(ev, n);
    for (uint32_t d0 = 0; d0 < nd; d0 += USER_CHUNK) {
        const int m = (int)(nd - d0 < USER_CHUNK ? nd - d0 : USER_CHUNK);
        for (int k = 0; k < m; k++) {
            const ImpressionView *iv = &ev->imps[ev->rep[d0 + (uint32_t)k]];
            ev->user_ids[k] = iv->user;
            ev->his[k] = iv->his;
            ev->nhis[k] = iv->nhis;
        }
        if ((rc = scorer_encode_users(ev->sc, m, ev->user_ids, ev->his, ev->nhis,
                                      ev->users + (size_t)d0 * H)))
            return rc;
    }
    for (int i = 0; i < n; i++) {
        const ImpressionView iv = ev->imps[i];
        if ((rc = grow_cand(ev, iv.ncand)))
            return rc;
        scorer_score(ev->sc, ev->users + (size_t)ev->uix[i] * H, iv.cand, iv.ncand, ev->scores);
        if (iv.labeled) {
            memcpy(ev->labels, iv.labels, iv.ncand);
            metrics_impression(ev->scores, ev->labels, iv.ncand, acc, &ev->ms);
        }
        if (ev->opt->predictions && (rc = write_prediction(ev, &iv)))
            return rc;
        st->impressions++;
        st->candidates += iv.ncand;
        if (++ev->done % USER_CHUNK == 0 || ev->done == ev->total)
            progress_meter_update(ev->meter, ev->done, ev->total);
    }
    return 0;
}

int eval_run(const EvalOptions *opt, MetricsAcc *acc, EvalStats *stats)
{
    const double t0 = timer_now();
    EvalStats st = {0};
    ProgressMeter meter = {0}; /* off unless opt->progress */
    Eval ev = {.opt = opt, .meter = &meter};
    metrics_scratch_init(&ev.ms);
    const DatasetMeta *m = dataset_meta(opt->data);
    int rc;
    if ((rc = scorer_new(&ev.sc, &opt->dims, opt->ps, m->news_rows, USER_CHUNK)) ||
        (rc = dataset_txn_new(opt->data, &ev.txn)))
        goto out;
    uint64_t end = opt->end < m->impressions ? opt->end : m->impressions;
    uint64_t span = end > opt->begin ? end - opt->begin : 0;
    size_t block = span < BLOCK ? (size_t)span + 1 : BLOCK; /* small ranges, small buffers */
    ev.total = span;
    ev.users = malloc(block * (size_t)opt->dims.H * sizeof *ev.users);
    ev.imps = malloc(block * sizeof *ev.imps);
    ev.uix = malloc(block * sizeof *ev.uix);
    ev.rep = malloc(block * sizeof *ev.rep);
    for (ev.nslots = 2; ev.nslots < 2 * block; ev.nslots *= 2)
        ;
    ev.slot = malloc(ev.nslots * sizeof *ev.slot);
    if (!ev.users || !ev.imps || !ev.uix || !ev.rep || !ev.slot || (rc = grow_cand(&ev, 64))) {
        rc = psrec_errf(PSREC_E_NOMEM, "evaluation: out of memory");
        goto out;
    }
    scorer_set_gathered(ev.sc, !opt->plain);
    /* Every impression's history steps go through the user LSTM: project each news once. */
    if ((rc = scorer_encode_news(ev.sc, ev.txn)) || (rc = scorer_project_news(ev.sc)))
        goto out;
    st.news_encoded = m->news_rows;
    if (opt->progress)
        progress_meter_init(&meter, "eval: scoring", "impressions");
    for (uint64_t first = opt->begin; first < end; first += BLOCK) {
        uint64_t left = end - first;
        int n = (int)(left < BLOCK ? left : BLOCK);
        if ((rc = score_impressions(&ev, first, n, acc, &st)))
            goto out;
    }
out:
    progress_meter_end(&meter);
    scorer_free(&ev.sc);
    dataset_txn_free(&ev.txn);
    free(ev.users);
    free(ev.imps);
    free(ev.uix);
    free(ev.rep);
    free(ev.slot);
    free(ev.scores);
    free(ev.ranks);
    free(ev.labels);
    metrics_scratch_fini(&ev.ms);
    st.seconds = timer_now() - t0;
    if (stats)
        *stats = st;
    return rc;
}
