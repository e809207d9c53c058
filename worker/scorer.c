/* The scorer (see scorer.h).
 *
 * News are encoded in chunks of NEWS_CHUNK rows: the chunk's distinct words and categories
 * are pulled (sorted, deduplicated), the news LSTM runs on the chunk, and the vectors land in
 * the (news_rows, H) matrix. Users are encoded in one batch per call: distinct user rows are
 * pulled, the user LSTM runs once per user over rows of that matrix. A score is a plain dot
 * product summed in h order, so eval's numbers do not depend on who calls. Memory: news_rows
 * x H floats plus chunk buffers sized at scorer_new. */
#include "worker/scorer.h"

#include "common/error.h"
#include "common/params.h"
#include "worker/params_io.h"

#include <stdlib.h>
#include <string.h>

enum { NEWS_CHUNK = 512 };

struct Scorer {
    ModelDims d;
    int max_users;
    ModelWorkspace *ws;
    ParamsIo io;
    float *dense;
    DenseParams p;
    float *news_vecs;     /* (news_rows, H) */
    uint64_t news_rows;
    uint32_t *ids;        /* (max(NEWS_CHUNK * title_len, max_users)) -> sorted distinct */
    int *local;           /* (NEWS_CHUNK * title_len) local ids */
    int *len, *cat_local; /* (NEWS_CHUNK) */
    uint32_t *cat_ids;    /* (NEWS_CHUNK) */
    float *rows;          /* (max ids, max(E, H)) pulled rows */
    float *cat_rows;      /* (NEWS_CHUNK, H) */
    int *his;             /* (max_users, his_len) */
    int *his_n, *user_local; /* (max_users) */
};

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

void scorer_free(Scorer **sp)
{
    Scorer *s = sp ? *sp : NULL;
    if (!s)
        return;
    model_workspace_free(&s->ws);
    params_io_fini(&s->io);
    free(s->dense);
    free(s->news_vecs);
    free(s->ids);
    free(s->local);
    free(s->len);
    free(s->cat_local);
    free(s->cat_ids);
    free(s->rows);
    free(s->cat_rows);
    free(s->his);
    free(s->his_n);
    free(s->user_local);
    free(s);
    *sp = NULL;
}

int scorer_new(Scorer **out, const ModelDims *d, PsClient *ps, uint64_t news_rows,
               int max_users)
{
    *out = NULL;
    if (max_users < 1 || news_rows == 0)
        return psrec_errf(PSREC_E_RANGE, "scorer: %d users per call, %llu news rows", max_users,
                          (unsigned long long)news_rows);
    Scorer *s = calloc(1, sizeof *s);
    if (!s)
        return psrec_errf(PSREC_E_NOMEM, "scorer: out of memory");
    s->d = *d;
    s->max_users = max_users;
    s->news_rows = news_rows;
    const size_t T = (size_t)d->title_len, H = (size_t)d->H, E = (size_t)d->E;
    const size_t W = E > H ? E : H, U = (size_t)max_users;
    const size_t max_ids = NEWS_CHUNK * T > U ? NEWS_CHUNK * T : U;
    int rc;
    if ((rc = model_workspace_new(&s->ws, d, max_users, NEWS_CHUNK, (int)(NEWS_CHUNK * T))) ||
        (rc = params_io_init(&s->io, ps, d, max_ids)))
        goto fail;
    s->dense = malloc(model_dense_floats(d) * sizeof(float));
    s->news_vecs = malloc(news_rows * H * sizeof(float));
    s->ids = malloc(max_ids * sizeof *s->ids);
    s->local = calloc(NEWS_CHUNK * T, sizeof *s->local);
    s->len = malloc(NEWS_CHUNK * sizeof *s->len);
    s->cat_local = malloc(NEWS_CHUNK * sizeof *s->cat_local);
    s->cat_ids = malloc(NEWS_CHUNK * sizeof *s->cat_ids);
    s->rows = malloc(max_ids * W * sizeof *s->rows);
    s->cat_rows = malloc(NEWS_CHUNK * H * sizeof *s->cat_rows);
    s->his = calloc(U * (size_t)d->his_len + 1, sizeof *s->his);
    s->his_n = malloc(U * sizeof *s->his_n);
    s->user_local = malloc(U * sizeof *s->user_local);
    if (!s->dense || !s->news_vecs || !s->ids || !s->local || !s->len || !s->cat_local ||
        !s->cat_ids || !s->rows || !s->cat_rows || !s->his || !s->his_n || !s->user_local) {
        rc = psrec_errf(PSREC_E_NOMEM, "scorer: out of memory (%llu news x %zu floats)",
                        (unsigned long long)news_rows, H);
        goto fail;
    }
    model_dense_bind(&s->p, d, s->dense);
    if ((rc = params_pull_dense(&s->io, &s->p)))
        goto fail;
    *out = s;
    return 0;
fail:
    scorer_free(&s);
    return rc;
}

float *scorer_news_vecs(Scorer *s)
{
    return s->news_vecs;
}

uint64_t scorer_news_rows(const Scorer *s)
{
    return s->news_rows;
}

static int encode_news_chunk(Scorer *s, DatasetTxn *txn, uint64_t first, int n)
{
    const ModelDims *d = &s->d;
    const int T = d->title_len;
    size_t ntok = 0;
    int rc;
    /* Gather the chunk's titles as global ids into local (as u32 for now) and collect ids. */
    uint32_t *tok_global = (uint32_t *)s->local; /* same size, reused in place below */
    for (int i = 0; i < n; i++) {
        NewsView nv;
        if ((rc = dataset_get_news(txn, (uint32_t)(first + (uint64_t)i), &nv)))
            return rc;
        int len = (int)(nv.ntok < (uint32_t)T ? nv.ntok : (uint32_t)T);
        s->len[i] = len;
        s->cat_ids[i] = nv.category;
        for (int t = 0; t < len; t++) {
            tok_global[(size_t)i * (size_t)T + (size_t)t] = nv.tokens[t];
            s->ids[ntok++] = nv.tokens[t];
        }
    }
    size_t nw = sort_unique(s->ids, ntok);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < s->len[i]; t++) {
            size_t at = (size_t)i * (size_t)T + (size_t)t;
            s->local[at] = local_of(s->ids, nw, tok_global[at]);
        }
    if ((rc = params_pull_rows(&s->io, PARAM_WORD, s->ids, nw, s->rows)))
        return rc;
    /* Categories: reuse ids after the words are pulled. */
    memcpy(s->ids, s->cat_ids, (size_t)n * sizeof *s->ids);
    size_t nc = sort_unique(s->ids, (size_t)n);
    for (int i = 0; i < n; i++)
        s->cat_local[i] = local_of(s->ids, nc, s->cat_ids[i]);
    if ((rc = params_pull_rows(&s->io, PARAM_CAT, s->ids, nc, s->cat_rows)))
        return rc;
    return model_encode_news(s->ws, d, &s->p, s->rows, s->cat_rows, n, s->local, s->len,
                             s->cat_local, s->news_vecs + first * (uint64_t)d->H);
}

int scorer_encode_news(Scorer *s, DatasetTxn *txn)
{
    for (uint64_t first = 0; first < s->news_rows; first += NEWS_CHUNK) {
        uint64_t left = s->news_rows - first;
        int rc = encode_news_chunk(s, txn, first, (int)(left < NEWS_CHUNK ? left : NEWS_CHUNK));
        if (rc)
            return rc;
    }
    return 0;
}

int scorer_encode_users(Scorer *s, int n, const uint32_t *user, const uint32_t *const *his,
                        const uint32_t *nhis, float *out)
{
    const int L = s->d.his_len;
    if (n < 0 || n > s->max_users)
        return psrec_errf(PSREC_E_RANGE, "scorer: %d users in one call, at most %d", n,
                          s->max_users);
    for (int i = 0; i < n; i++) {
        uint32_t skip = nhis[i] > (uint32_t)L ? nhis[i] - (uint32_t)L : 0;
        s->his_n[i] = (int)(nhis[i] - skip);
        for (int t = 0; t < s->his_n[i]; t++) {
            uint32_t row = his[i][skip + (uint32_t)t];
            if (row >= s->news_rows)
                return psrec_errf(PSREC_E_RANGE, "scorer: history news row %u of %llu rows",
                                  row, (unsigned long long)s->news_rows);
            s->his[(size_t)i * (size_t)L + (size_t)t] = (int)row;
        }
    }
    memcpy(s->ids, user, (size_t)n * sizeof *s->ids);
    size_t nu = sort_unique(s->ids, (size_t)n);
    for (int i = 0; i < n; i++)
        s->user_local[i] = local_of(s->ids, nu, user[i]);
    int rc = params_pull_rows(&s->io, PARAM_USER, s->ids, nu, s->rows);
    if (rc)
        return rc;
    return model_encode_users(s->ws, &s->d, &s->p, s->rows, n, s->user_local, s->news_vecs,
                              (int)s->news_rows, s->his, s->his_n, out);
}

void scorer_score(const Scorer *s, const float *u, const uint32_t *cand, uint64_t n, float *out)
{
    const int H = s->d.H;
    for (uint64_t c = 0; c < n; c++) {
        const float *nv = s->news_vecs + (size_t)cand[c] * (size_t)H;
        float v = 0;
        for (int h = 0; h < H; h++)
            v += u[h] * nv[h];
        out[c] = v;
    }
}
