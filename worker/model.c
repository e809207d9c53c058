/* LSTM-NR forward and backward over one batch in local ids (see model.h for the model).
 *
 * Data flow of a training step, all buffers in the workspace:
 *   distinct news --sort by title length--> packed word vectors (N, E) --news LSTM--> (N, H)
 *   --masked mean + category row--> news vectors nv (n_news, H), local news order
 *   samples --sort by history length--> packed history vectors (Nu, H), h0 = user rows
 *   --user LSTM--> u (B, H) = state after the last click (h0 when the history is empty)
 *   scores (B, 1+K) = u . nv[cand] --softmax cross-entropy--> loss and dscores
 * and backward the same way in reverse: the news-vector gradient dnv sums every occurrence of
 * a news (as candidate and as history entry) before the news LSTM runs backward once.
 *
 * Invariants: a news is encoded once per batch; padding (titles shorter than title_len,
 * histories shorter than his_len) is never computed on; the order of the samples and of the
 * distinct news in the batch is the caller's, the sorted orders are internal.
 * Not here: global ids, dedup, pulling/pushing rows (worker/batch.c and the PS client), the
 * optimizer. */
#include "worker/model.h"

#include "common/error.h"
#include "worker/lstm.h"
#include "worker/lstm_gemm.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct ModelWorkspace {
    ModelDims d;
    int max_B, max_news, max_tokens;
    int *count;      /* (max(title_len, his_len) + 2) counting-sort buckets */
    /* news encoder */
    int *n_order;    /* (max_news) local news ids sorted by title length, longest first */
    int *n_lens;     /* (max_news) their title lengths */
    int *n_bs;       /* (title_len) */
    int *n_off;      /* (title_len + 1) */
    LstmPack n_pack;
    float *n_X;      /* (max_tokens, E) packed word vectors */
    float *n_H;      /* (max_tokens, H) packed news-LSTM outputs */
    float *n_cache;  /* lstm_cache_floats(max_tokens, H) */
    float *n_dH;     /* (max_tokens, H) */
    float *n_dX;     /* (max_tokens, E) */
    float *n_bws;    /* lstm_backward_ws_floats(max_news, H) */
    float *nv;       /* (max_news, H) news vectors, local news order */
    float *dnv;      /* (max_news, H) their gradients */
    /* user encoder */
    int *u_order;    /* (max_B) samples sorted by history length, longest first */
    int *u_lens;     /* (max_B) their history lengths */
    int *u_bs;       /* (his_len) */
    int *u_off;      /* (his_len + 1) */
    LstmPack u_pack;
    float *u_X;      /* (max_B * his_len, H) packed history news vectors */
    float *u_H;      /* (max_B * his_len, H) packed user-LSTM outputs */
    float *u_cache;  /* lstm_cache_floats(max_B * his_len, H) */
    float *u_dH;     /* (max_B * his_len, H) */
    float *u_dX;     /* (max_B * his_len, H) */
    float *u_bws;    /* lstm_backward_ws_floats(max_B, H) */
    float *h0;       /* (max_B, H) user rows, sorted order */
    float *dh0;      /* (max_B, H) sorted order */
    float *uv;       /* (max_B, H) user vectors, batch order */
    float *duv;      /* (max_B, H) */
    float *scores;   /* (max_B, 1 + K) */
    float *dscores;  /* (max_B, 1 + K) */
    float *fmem;     /* the one float allocation holding every float buffer above */
    int *imem;       /* the one int allocation */
};

/* ------------------------------------------------------------------ dense parameters */

void model_dense_layout(const ModelDims *d, DenseLayout *out)
{
    size_t E = (size_t)d->E, H = (size_t)d->H, H4 = 4 * H, o = 0;
    out->news_Wih = o;
    o += E * H4;
    out->news_Whh = o;
    o += H * H4;
    out->news_b = o;
    o += H4;
    out->user_Wih = o;
    o += H * H4;
    out->user_Whh = o;
    o += H * H4;
    out->user_b = o;
    o += H4;
    out->total = o;
}

size_t model_dense_floats(const ModelDims *d)
{
    DenseLayout l;
    model_dense_layout(d, &l);
    return l.total;
}

void model_dense_bind(DenseParams *p, const ModelDims *d, float *arena)
{
    DenseLayout l;
    model_dense_layout(d, &l);
    p->arena = arena;
    p->news_Wih = arena + l.news_Wih;
    p->news_Whh = arena + l.news_Whh;
    p->news_b = arena + l.news_b;
    p->user_Wih = arena + l.user_Wih;
    p->user_Whh = arena + l.user_Whh;
    p->user_b = arena + l.user_b;
}

static void fill_uniform(float *x, size_t n, double k, Rng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((2.0 * rng_uniform(rng) - 1.0) * k);
}

/* Sum of two U(-k, k) draws per element: PyTorch's b_ih + b_hh. */
static void fill_bias(float *x, size_t n, double k, Rng *rng)
{
    for (size_t i = 0; i < n; i++) {
        double a = (2.0 * rng_uniform(rng) - 1.0) * k;
        double b = (2.0 * rng_uniform(rng) - 1.0) * k;
        x[i] = (float)(a + b);
    }
}

void model_init_dense(DenseParams *p, const ModelDims *d, Rng *rng)
{
    size_t E = (size_t)d->E, H = (size_t)d->H, H4 = 4 * H;
    double k = 1.0 / sqrt((double)d->H);
    fill_uniform(p->news_Wih, E * H4, k, rng);
    fill_uniform(p->news_Whh, H * H4, k, rng);
    fill_bias(p->news_b, H4, k, rng);
    fill_uniform(p->user_Wih, H * H4, k, rng);
    fill_uniform(p->user_Whh, H * H4, k, rng);
    fill_bias(p->user_b, H4, k, rng);
}

void model_init_embedding_row(float *row, int dim, Rng *rng)
{
    for (int i = 0; i < dim; i++)
        row[i] = (float)(0.1 * rng_normal(rng));
}

/* ------------------------------------------------------------------ workspace */

/* Bump allocation over one block: called once with base NULL to count, once to assign.
 * Every buffer starts on a 64-byte boundary. */
typedef struct Bump {
    char *base;
    size_t used;
} Bump;

static void *bump(Bump *b, size_t bytes)
{
    size_t at = b->used;
    b->used += (bytes + 63) & ~(size_t)63;
    return b->base ? b->base + at : NULL;
}

static void ws_layout(ModelWorkspace *w, Bump *fb, Bump *ib)
{
    const ModelDims *d = &w->d;
    size_t E = (size_t)d->E, H = (size_t)d->H, C = (size_t)d->K + 1;
    size_t mt = (size_t)w->max_tokens, mn = (size_t)w->max_news, mb = (size_t)w->max_B;
    size_t mu = mb * (size_t)d->his_len;
    size_t f = sizeof(float), i = sizeof(int);
    int maxlen = d->title_len > d->his_len ? d->title_len : d->his_len;

    w->count = bump(ib, ((size_t)maxlen + 2) * i);
    w->n_order = bump(ib, mn * i);
    w->n_lens = bump(ib, mn * i);
    w->n_bs = bump(ib, (size_t)d->title_len * i);
    w->n_off = bump(ib, ((size_t)d->title_len + 1) * i);
    w->u_order = bump(ib, mb * i);
    w->u_lens = bump(ib, mb * i);
    w->u_bs = bump(ib, (size_t)d->his_len * i);
    w->u_off = bump(ib, ((size_t)d->his_len + 1) * i);

    w->n_X = bump(fb, mt * E * f);
    w->n_H = bump(fb, mt * H * f);
    w->n_cache = bump(fb, lstm_cache_floats(w->max_tokens, d->H) * f);
    w->n_dH = bump(fb, mt * H * f);
    w->n_dX = bump(fb, mt * E * f);
    w->n_bws = bump(fb, lstm_backward_ws_floats(w->max_news, d->H) * f);
    w->nv = bump(fb, mn * H * f);
    w->dnv = bump(fb, mn * H * f);
    w->u_X = bump(fb, mu * H * f);
    w->u_H = bump(fb, mu * H * f);
    w->u_cache = bump(fb, lstm_cache_floats((int)mu, d->H) * f);
    w->u_dH = bump(fb, mu * H * f);
    w->u_dX = bump(fb, mu * H * f);
    w->u_bws = bump(fb, lstm_backward_ws_floats(w->max_B, d->H) * f);
    w->h0 = bump(fb, mb * H * f);
    w->dh0 = bump(fb, mb * H * f);
    w->uv = bump(fb, mb * H * f);
    w->duv = bump(fb, mb * H * f);
    w->scores = bump(fb, mb * C * f);
    w->dscores = bump(fb, mb * C * f);
}

int model_workspace_new(ModelWorkspace **out, const ModelDims *d, int max_B, int max_news,
                        int max_tokens)
{
    *out = NULL;
    if (d->E < 1 || d->H < 1 || d->title_len < 1 || d->his_len < 1 || d->K < 0 || max_B < 1)
        return psrec_errf(PSREC_E_RANGE, "model: bad dims E=%d H=%d title_len=%d his_len=%d "
                          "K=%d max_B=%d", d->E, d->H, d->title_len, d->his_len, d->K, max_B);
    int64_t mn = max_news > 0 ? max_news : (int64_t)max_B * (d->his_len + 1 + d->K);
    int64_t mt = max_tokens > 0 ? max_tokens : mn * d->title_len;
    int64_t mu = (int64_t)max_B * d->his_len;
    if (mn > INT32_MAX / 8 || mt > INT32_MAX / 8 || mu > INT32_MAX / 8)
        return psrec_errf(PSREC_E_RANGE, "model: workspace sizes too large");
    ModelWorkspace *w = calloc(1, sizeof *w);
    if (!w)
        return psrec_errf(PSREC_E_NOMEM, "model: no memory for a workspace");
    w->d = *d;
    w->max_B = max_B;
    w->max_news = (int)mn;
    w->max_tokens = (int)mt;
    Bump fb = {NULL, 0}, ib = {NULL, 0};
    ws_layout(w, &fb, &ib);
    w->fmem = aligned_alloc(64, fb.used);
    w->imem = aligned_alloc(64, ib.used);
    if (!w->fmem || !w->imem) {
        model_workspace_free(&w);
        return psrec_errf(PSREC_E_NOMEM, "model: no memory for a %zu-byte workspace",
                          fb.used + ib.used);
    }
    fb = (Bump){(char *)w->fmem, 0};
    ib = (Bump){(char *)w->imem, 0};
    ws_layout(w, &fb, &ib);
    *out = w;
    return 0;
}

void model_workspace_free(ModelWorkspace **ws)
{
    if (!ws || !*ws)
        return;
    free((*ws)->fmem);
    free((*ws)->imem);
    free(*ws);
    *ws = NULL;
}

/* ------------------------------------------------------------------ helpers */

/* y (n) += a * x (n) */
static void axpy(int n, float a, const float *x, float *y)
{
    for (int j = 0; j < n; j++)
        y[j] += a * x[j];
}

static void add(int n, const float *x, float *y)
{
    for (int j = 0; j < n; j++)
        y[j] += x[j];
}

static int check_dims(const ModelWorkspace *w, const ModelDims *d)
{
    if (d->E != w->d.E || d->H != w->d.H || d->title_len != w->d.title_len ||
        d->his_len != w->d.his_len || d->K != w->d.K)
        return psrec_errf(PSREC_E_RANGE, "model: dims differ from the workspace's");
    return 0;
}

static int check_ids(const char *what, int n, const int *ids, int limit)
{
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= limit)
            return psrec_errf(PSREC_E_RANGE, "model: %s[%d] = %d, allowed 0..%d", what, i, ids[i],
                              limit - 1);
    return 0;
}

static int check_news(const ModelWorkspace *w, int n, const int *len, const int *cat, int n_cats)
{
    if (n < 0 || n > w->max_news)
        return psrec_errf(PSREC_E_RANGE, "model: %d news, workspace holds %d", n, w->max_news);
    int64_t tokens = 0;
    for (int i = 0; i < n; i++) {
        if (len[i] < 1 || len[i] > w->d.title_len)
            return psrec_errf(PSREC_E_RANGE, "model: news %d has %d tokens, allowed 1..%d", i,
                              len[i], w->d.title_len);
        tokens += len[i];
    }
    if (tokens > w->max_tokens)
        return psrec_errf(PSREC_E_RANGE, "model: %lld title tokens, workspace holds %d",
                          (long long)tokens, w->max_tokens);
    return n_cats >= 0 ? check_ids("news_cat", n, cat, n_cats) : 0;
}

static int check_users(const ModelWorkspace *w, int B, const int *his, const int *his_n,
                       int n_news)
{
    if (B < 0 || B > w->max_B)
        return psrec_errf(PSREC_E_RANGE, "model: %d samples, workspace holds %d", B, w->max_B);
    for (int b = 0; b < B; b++) {
        if (his_n[b] < 0 || his_n[b] > w->d.his_len)
            return psrec_errf(PSREC_E_RANGE, "model: sample %d has %d clicks, allowed 0..%d", b,
                              his_n[b], w->d.his_len);
        int rc = check_ids("his", his_n[b], his + (size_t)b * w->d.his_len, n_news);
        if (rc)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------ news encoder */

/* The per-row loops of the news encoder around its LSTM, each run on the LSTM's threads over
 * disjoint parts (lstm_gemm_parallel_for): sequences r for the gather, the pooling and the
 * pooled gradient; word ids for the scatter of dX into g_word, so that no two threads add
 * to one row (and each row's adds keep their order: results do not depend on threads). */
typedef struct NewsRows {
    ModelWorkspace *w;
    const int *tok;
    const float *word_rows, *cat_rows, *dnv;
    const int *cat;
    float *out, *g_word;
} NewsRows;

/* Sequences [lo, hi): their packed input rows from the word rows. */
static void news_gather(void *ctx, int lo, int hi)
{
    const NewsRows *a = ctx;
    const ModelWorkspace *w = a->w;
    const int E = w->d.E, L = w->d.title_len;
    for (int r = lo; r < hi; r++)
        for (int t = 0; t < w->n_lens[r]; t++) {
            int word = a->tok[(size_t)w->n_order[r] * L + t];
            memcpy(w->n_X + ((size_t)w->n_pack.off[t] + r) * E, a->word_rows + (size_t)word * E,
                   (size_t)E * sizeof(float));
        }
}

/* Sequences [lo, hi): news vector = mean of the hidden states + the category row. */
static void news_pool(void *ctx, int lo, int hi)
{
    const NewsRows *a = ctx;
    const ModelWorkspace *w = a->w;
    const int H = w->d.H;
    for (int r = lo; r < hi; r++) {
        int id = w->n_order[r];
        float *v = a->out + (size_t)id * H;
        memset(v, 0, (size_t)H * sizeof *v);
        for (int t = 0; t < w->n_lens[r]; t++)
            add(H, w->n_H + ((size_t)w->n_pack.off[t] + r) * H, v);
        float inv = 1.0f / (float)w->n_lens[r];
        const float *cv = a->cat_rows + (size_t)a->cat[id] * H;
        for (int j = 0; j < H; j++)
            v[j] = v[j] * inv + cv[j];
    }
}

/* Sequences [lo, hi): every hidden state's gradient is the news vector's over the length. */
static void news_pool_back(void *ctx, int lo, int hi)
{
    const NewsRows *a = ctx;
    ModelWorkspace *w = a->w;
    const int H = w->d.H;
    for (int r = lo; r < hi; r++) {
        const float *dv = a->dnv + (size_t)w->n_order[r] * H;
        float inv = 1.0f / (float)w->n_lens[r];
        for (int t = 0; t < w->n_lens[r]; t++) {
            float *dh = w->n_dH + ((size_t)w->n_pack.off[t] + r) * H;
            for (int j = 0; j < H; j++)
                dh[j] = dv[j] * inv;
        }
    }
}

/* Word ids [lo, hi): add the dX of each of their packed rows to their g_word row. */
static void news_scatter(void *ctx, int lo, int hi)
{
    const NewsRows *a = ctx;
    const ModelWorkspace *w = a->w;
    const int E = w->d.E, L = w->d.title_len;
    const LstmPack *pk = &w->n_pack;
    for (int t = 0; t < pk->T; t++)
        for (int r = 0; r < pk->bs[t]; r++) {
            int word = a->tok[(size_t)w->n_order[r] * L + t];
            if (word >= lo && word < hi)
                add(E, w->n_dX + ((size_t)pk->off[t] + r) * E, a->g_word + (size_t)word * E);
        }
}

/* Sequences per chunk of the row loops (a helper's wake-up costs about a few sequences). */
enum { NEWS_GRAIN = 32 };

/* News vectors of n news into out (n, H), local news order. Leaves the packed forward state
 * (sorted order, packed input and outputs, LSTM cache) in the workspace for news_backward. */
static void news_forward(ModelWorkspace *w, const DenseParams *p, const float *word_rows,
                         const float *cat_rows, int n, const int *tok, const int *len,
                         const int *cat, float *out)
{
    const int E = w->d.E, H = w->d.H, L = w->d.title_len;
    LstmPack *pk = &w->n_pack;
    lstm_sort_by_len_desc(n, len, L, w->count, w->n_order, w->n_lens);
    lstm_pack_init(pk, w->n_lens, n, L, w->n_bs, w->n_off); /* cannot fail: checked, sorted */
    NewsRows a = {.w = w, .tok = tok, .word_rows = word_rows, .cat_rows = cat_rows, .cat = cat,
                  .out = out};
    lstm_gemm_parallel_for(n, NEWS_GRAIN, news_gather, &a);
    lstm_forward(pk, E, H, w->n_X, NULL, p->news_Wih, p->news_Whh, p->news_b, w->n_H,
                 w->n_cache);
    lstm_gemm_parallel_for(n, NEWS_GRAIN, news_pool, &a);
}

/* Backward of news_forward for dnv (n, H) = gradient of the news vectors; n_words: rows of
 * g_word. */
static void news_backward(ModelWorkspace *w, const DenseParams *p, int n, int n_words,
                          const int *tok, const int *cat, const float *dnv, DenseParams *g,
                          float *g_word, float *g_cat)
{
    const int E = w->d.E, H = w->d.H;
    const LstmPack *pk = &w->n_pack;
    for (int r = 0; r < n; r++) { /* serial: news share categories */
        int id = w->n_order[r];
        add(H, dnv + (size_t)id * H, g_cat + (size_t)cat[id] * H);
    }
    NewsRows a = {.w = w, .tok = tok, .dnv = dnv, .g_word = g_word};
    lstm_gemm_parallel_for(n, NEWS_GRAIN, news_pool_back, &a);
    lstm_backward(pk, E, H, w->n_X, NULL, p->news_Wih, p->news_Whh, w->n_H, w->n_cache, w->n_dH,
                  w->n_dX, g->news_Wih, g->news_Whh, g->news_b, NULL, w->n_bws);
    /* Two halves of the word ids: every chunk scans all packed rows, so few chunks. */
    lstm_gemm_parallel_for(n_words, n_words / 2 > 1 ? n_words / 2 : 1, news_scatter, &a);
}

/* ------------------------------------------------------------------ user encoder */

/* User vectors (B, H) into out, batch order. Leaves the packed state for user_backward. */
static void user_forward(ModelWorkspace *w, const DenseParams *p, const float *user_rows, int B,
                         const int *user, const float *nv, const int *his, const int *his_n,
                         float *out)
{
    const int H = w->d.H, L = w->d.his_len;
    LstmPack *pk = &w->u_pack;
    lstm_sort_by_len_desc(B, his_n, L, w->count, w->u_order, w->u_lens);
    lstm_pack_init(pk, w->u_lens, B, L, w->u_bs, w->u_off); /* cannot fail: checked, sorted */
    for (int r = 0; r < B; r++)
        memcpy(w->h0 + (size_t)r * H, user_rows + (size_t)user[w->u_order[r]] * H,
               (size_t)H * sizeof(float));
    for (int t = 0; t < pk->T; t++)
        for (int r = 0; r < pk->bs[t]; r++) {
            int id = his[(size_t)w->u_order[r] * L + t];
            memcpy(w->u_X + ((size_t)pk->off[t] + r) * H, nv + (size_t)id * H,
                   (size_t)H * sizeof(float));
        }
    lstm_forward(pk, H, H, w->u_X, w->h0, p->user_Wih, p->user_Whh, p->user_b, w->u_H,
                 w->u_cache);
    for (int r = 0; r < B; r++) {
        int n = w->u_lens[r];
        const float *last =
            n > 0 ? w->u_H + ((size_t)pk->off[n - 1] + r) * H : w->h0 + (size_t)r * H;
        memcpy(out + (size_t)w->u_order[r] * H, last, (size_t)H * sizeof(float));
    }
}

/* Backward of user_forward for duv (B, H): adds to g's user weights, g_user and dnv. */
static void user_backward(ModelWorkspace *w, const DenseParams *p, int B, const int *user,
                          const int *his, const float *duv, DenseParams *g, float *g_user,
                          float *dnv)
{
    const int H = w->d.H, L = w->d.his_len;
    const LstmPack *pk = &w->u_pack;
    memset(w->u_dH, 0, (size_t)pk->N * H * sizeof(float));
    for (int r = 0; r < B; r++) {
        int n = w->u_lens[r];
        if (n > 0)
            memcpy(w->u_dH + ((size_t)pk->off[n - 1] + r) * H, duv + (size_t)w->u_order[r] * H,
                   (size_t)H * sizeof(float));
    }
    lstm_backward(pk, H, H, w->u_X, w->h0, p->user_Wih, p->user_Whh, w->u_H, w->u_cache, w->u_dH,
                  w->u_dX, g->user_Wih, g->user_Whh, g->user_b, w->dh0, w->u_bws);
    for (int r = 0; r < B; r++) {
        int b = w->u_order[r];
        /* An empty history makes u = h0: its gradient goes to the user row directly. */
        const float *dh = w->u_lens[r] > 0 ? w->dh0 + (size_t)r * H : duv + (size_t)b * H;
        add(H, dh, g_user + (size_t)user[b] * H);
    }
    for (int t = 0; t < pk->T; t++)
        for (int r = 0; r < pk->bs[t]; r++) {
            int id = his[(size_t)w->u_order[r] * L + t];
            add(H, w->u_dX + ((size_t)pk->off[t] + r) * H, dnv + (size_t)id * H);
        }
}

/* ------------------------------------------------------------------ scores and loss */

void model_score(int H, const float *u, const float *news_vecs, int n, const int *ids,
                 float *out)
{
    for (int i = 0; i < n; i++) {
        const float *v = news_vecs + (size_t)(ids ? ids[i] : i) * H;
        out[i] = cblas_sdot(H, u, 1, v, 1);
    }
}

double model_softmax_xent(int B, int C, const float *scores, float *dscores)
{
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *s = scores + (size_t)b * C;
        double m = s[0];
        for (int c = 1; c < C; c++)
            m = s[c] > m ? s[c] : m;
        double z = 0.0;
        for (int c = 0; c < C; c++)
            z += exp(s[c] - m);
        total += log(z) + m - s[0];
        if (dscores)
            for (int c = 0; c < C; c++)
                dscores[(size_t)b * C + c] =
                    (float)((exp(s[c] - m) / z - (c == 0 ? 1.0 : 0.0)) / B);
    }
    return B > 0 ? total / B : 0.0;
}

/* ------------------------------------------------------------------ public entry points */

int model_encode_news(ModelWorkspace *ws, const ModelDims *d, const DenseParams *p,
                      const float *word_rows, const float *cat_rows, int n, const int *tok,
                      const int *len, const int *cat, float *out)
{
    int rc = check_dims(ws, d);
    if (!rc)
        rc = check_news(ws, n, len, cat, -1);
    if (rc)
        return rc;
    news_forward(ws, p, word_rows, cat_rows, n, tok, len, cat, out);
    return 0;
}

int model_encode_users(ModelWorkspace *ws, const ModelDims *d, const DenseParams *p,
                       const float *user_rows, int B, const int *user, const float *news_vecs,
                       int n_news, const int *his, const int *his_n, float *out)
{
    int rc = check_dims(ws, d);
    if (!rc)
        rc = check_users(ws, B, his, his_n, n_news);
    if (rc)
        return rc;
    user_forward(ws, p, user_rows, B, user, news_vecs, his, his_n, out);
    return 0;
}

static int check_batch(const ModelWorkspace *w, const ModelBatch *b)
{
    const ModelDims *d = &w->d;
    int rc = check_news(w, b->n_news, b->news_len, b->news_cat, b->n_cats);
    if (!rc) {
        for (int i = 0; i < b->n_news && !rc; i++)
            rc = check_ids("news_tok", b->news_len[i], b->news_tok + (size_t)i * d->title_len,
                           b->n_words);
    }
    if (!rc)
        rc = check_users(w, b->B, b->his, b->his_n, b->n_news);
    if (!rc)
        rc = check_ids("user", b->B, b->user, b->n_users);
    if (!rc)
        rc = check_ids("cand", b->B * (d->K + 1), b->cand, b->n_news);
    return rc;
}

int model_train_step_grads(ModelWorkspace *ws, const ModelDims *d, const DenseParams *p,
                           const float *word_rows, const float *cat_rows, const float *user_rows,
                           const ModelBatch *b, DenseParams *g, float *g_word, float *g_cat,
                           float *g_user, float *loss)
{
    const int H = d->H, C = d->K + 1, B = b->B;
    int rc = check_dims(ws, d);
    if (!rc)
        rc = check_batch(ws, b);
    if (rc)
        return rc;

    news_forward(ws, p, word_rows, cat_rows, b->n_news, b->news_tok, b->news_len, b->news_cat,
                 ws->nv);
    user_forward(ws, p, user_rows, B, b->user, ws->nv, b->his, b->his_n, ws->uv);
    for (int s = 0; s < B; s++)
        model_score(H, ws->uv + (size_t)s * H, ws->nv, C, b->cand + (size_t)s * C,
                    ws->scores + (size_t)s * C);
    *loss = (float)model_softmax_xent(B, C, ws->scores, ws->dscores);

    memset(ws->dnv, 0, (size_t)b->n_news * H * sizeof(float));
    memset(ws->duv, 0, (size_t)B * H * sizeof(float));
    for (int s = 0; s < B; s++) {
        const float *u = ws->uv + (size_t)s * H;
        float *du = ws->duv + (size_t)s * H;
        for (int c = 0; c < C; c++) {
            int id = b->cand[(size_t)s * C + c];
            float ds = ws->dscores[(size_t)s * C + c];
            axpy(H, ds, ws->nv + (size_t)id * H, du);
            axpy(H, ds, u, ws->dnv + (size_t)id * H);
        }
    }
    user_backward(ws, p, B, b->user, b->his, ws->duv, g, g_user, ws->dnv);
    news_backward(ws, p, b->n_news, b->n_words, b->news_tok, b->news_cat, ws->dnv, g, g_word,
                  g_cat);
    return 0;
}
