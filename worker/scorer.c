/* The scorer (see scorer.h).
 *
 * News are encoded in chunks of NEWS_CHUNK rows: the chunk's distinct words and categories
 * are pulled (sorted, deduplicated), the news LSTM runs on the chunk, and the vectors land in
 * the (news_rows, H) matrix. Users are encoded in one batch per call: distinct user rows are
 * pulled, the user LSTM runs once per user over rows of that matrix. A score is a plain dot
 * product summed in h order, so eval's numbers do not depend on who calls. Memory: news_rows
 * x H floats plus chunk buffers sized at scorer_new.
 *
 * Gathered gates (scorer.h): scorer_encode_news maps every title word of the dataset to a
 * dense local id (an int per vocabulary id up to the largest seen), pulls those rows in
 * pieces of max_ids and projects them into P_word (distinct words, 4H, bias included); each
 * chunk then names, per packed token, its row of P_word (prow) and runs lstm_forward_gates.
 * scorer_project_news makes P_news = news matrix . user W_ih + b the same way for the
 * histories.
 * The packing, the mean over the title and the last-state pick are model.c's, step by step,
 * so that only float rounding can differ from the plain path. */
#include "worker/scorer.h"

#include "common/error.h"
#include "common/params.h"
#include "worker/lstm.h"
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
    int gathered;         /* gathered gates on (scorer.h) */
    /* gathered path: packed rows up to max_rows = max(NEWS_CHUNK * title_len,
     * max_users * his_len), sequences up to max_seq = max(NEWS_CHUNK, max_users) */
    int *prow;            /* (max_rows) each packed row's row of P_word / P_news */
    float *g;             /* (max_seq, 4H) one step's gates, lstm_forward_gates' G */
    float *hout;          /* (max_rows, H) packed hidden states */
    float *c;             /* (max_seq, H) cell states */
    float *h0;            /* (max_users, H) user rows in sorted order */
    int *order, *slen;    /* (max_seq) sequences sorted by length, longest first; lengths */
    int *bs, *off, *count; /* (L), (L + 1), (L + 2) with L = max(title_len, his_len) */
    float *p_news;        /* (news_rows, 4H) scorer_project_news, or NULL */
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
    free(s->prow);
    free(s->g);
    free(s->hout);
    free(s->c);
    free(s->h0);
    free(s->order);
    free(s->slen);
    free(s->bs);
    free(s->off);
    free(s->count);
    free(s->p_news);
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
    const size_t L = (size_t)(d->title_len > d->his_len ? d->title_len : d->his_len);
    const size_t UL = U * (size_t)d->his_len;
    const size_t max_rows = NEWS_CHUNK * T > UL ? NEWS_CHUNK * T : UL;
    const size_t max_seq = NEWS_CHUNK > U ? NEWS_CHUNK : U;
    s->gathered = 1;
    s->prow = malloc(max_rows * sizeof *s->prow);
    s->g = malloc(max_seq * 4 * H * sizeof *s->g);
    s->hout = malloc(max_rows * H * sizeof *s->hout);
    s->c = malloc(max_seq * H * sizeof *s->c);
    s->h0 = malloc(U * H * sizeof *s->h0);
    s->order = malloc(max_seq * sizeof *s->order);
    s->slen = malloc(max_seq * sizeof *s->slen);
    s->bs = malloc(L * sizeof *s->bs);
    s->off = malloc((L + 1) * sizeof *s->off);
    s->count = malloc((L + 2) * sizeof *s->count);
    if (!s->dense || !s->news_vecs || !s->ids || !s->local || !s->len || !s->cat_local ||
        !s->cat_ids || !s->rows || !s->cat_rows || !s->his || !s->his_n || !s->user_local ||
        !s->prow || !s->g || !s->hout || !s->c || !s->h0 || !s->order || !s->slen || !s->bs || !s->off ||
        !s->count) {
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

/* News rows first..first+n-1: title lengths into s->len, categories into s->cat_ids and the
 * titles' vocabulary ids into tok (n, title_len). */
static int read_chunk_titles(Scorer *s, DatasetTxn *txn, uint64_t first, int n, uint32_t *tok)
{
    const int T = s->d.title_len;
    for (int i = 0; i < n; i++) {
        NewsView nv;
        int rc = dataset_get_news(txn, (uint32_t)(first + (uint64_t)i), &nv);
        if (rc)
            return rc;
        int len = (int)(nv.ntok < (uint32_t)T ? nv.ntok : (uint32_t)T);
        s->len[i] = len;
        s->cat_ids[i] = nv.category;
        memcpy(tok + (size_t)i * (size_t)T, nv.tokens, (size_t)len * sizeof *tok);
    }
    return 0;
}

/* The chunk's distinct categories (s->cat_ids of n news) pulled into s->cat_rows, their
 * local ids into s->cat_local. Uses s->ids. */
static int pull_chunk_categories(Scorer *s, int n)
{
    memcpy(s->ids, s->cat_ids, (size_t)n * sizeof *s->ids);
    size_t nc = sort_unique(s->ids, (size_t)n);
    for (int i = 0; i < n; i++)
        s->cat_local[i] = local_of(s->ids, nc, s->cat_ids[i]);
    return params_pull_rows(&s->io, PARAM_CAT, s->ids, nc, s->cat_rows);
}

static int encode_news_chunk_plain(Scorer *s, DatasetTxn *txn, uint64_t first, int n)
{
    const ModelDims *d = &s->d;
    const int T = d->title_len;
    size_t ntok = 0;
    /* The chunk's titles as global ids into local (as u32 for now), and their ids. */
    uint32_t *tok_global = (uint32_t *)s->local; /* same size, reused in place below */
    int rc = read_chunk_titles(s, txn, first, n, tok_global);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < s->len[i]; t++)
            s->ids[ntok++] = tok_global[(size_t)i * (size_t)T + (size_t)t];
    size_t nw = sort_unique(s->ids, ntok);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < s->len[i]; t++) {
            size_t at = (size_t)i * (size_t)T + (size_t)t;
            s->local[at] = local_of(s->ids, nw, tok_global[at]);
        }
    if ((rc = params_pull_rows(&s->io, PARAM_WORD, s->ids, nw, s->rows)))
        return rc;
    /* Categories: reuse ids after the words are pulled. */
    if ((rc = pull_chunk_categories(s, n)))
        return rc;
    return model_encode_news(s->ws, d, &s->p, s->rows, s->cat_rows, n, s->local, s->len,
                             s->cat_local, s->news_vecs + first * (uint64_t)d->H);
}

/* The word table of gathered news encoding: map[w] = local id of vocabulary id w (-1 when no
 * title holds it), words[k] = the vocabulary id of local id k, pw (nw, 4H) = E_word[words[k]]
 * . news W_ih + news b. And the first step, which depends on a title's first word only (the
 * state before it is 0): first[w] = index of w among the distinct first words (-1: none),
 * h1, c1 (nf, H) the state after it, r1 (nf, 4H) = h1 . news W_hh, step 1's recurrence term
 * (titles: 99k; distinct first words: a few thousand). */
typedef struct WordGates {
    int *map;
    uint32_t *words;
    float *pw;
    int *first;
    float *h1, *c1, *r1;
} WordGates;

static void word_gates_free(WordGates *wg)
{
    free(wg->map);
    free(wg->words);
    free(wg->pw);
    free(wg->first);
    free(wg->h1);
    free(wg->c1);
    free(wg->r1);
}

/* h1, c1, r1 of the nf distinct first words whose local ids are fw (nf). */
static int first_step_make(Scorer *s, WordGates *wg, const int *fw, int nf)
{
    const size_t H = (size_t)s->d.H, n = nf > 0 ? (size_t)nf : 1;
    int bs[1], off[2], rc = 0;
    int *ones = malloc(n * sizeof *ones);
    float *g = malloc(n * 4 * H * sizeof *g);
    wg->h1 = malloc(n * H * sizeof *wg->h1);
    wg->c1 = malloc(n * H * sizeof *wg->c1);
    wg->r1 = malloc(n * 4 * H * sizeof *wg->r1);
    if (!ones || !g || !wg->h1 || !wg->c1 || !wg->r1) {
        rc = psrec_errf(PSREC_E_NOMEM, "scorer: out of memory (%d first words)", nf);
        goto out;
    }
    for (int k = 0; k < nf; k++)
        ones[k] = 1;
    LstmPack pk;
    if ((rc = lstm_pack_init(&pk, ones, nf, 1, bs, off)))
        goto out;
    lstm_forward_gates(&pk, s->d.H, wg->pw, fw, NULL, s->p.news_Whh, g, wg->h1, wg->c1, 0);
    lstm_input_gates(nf, s->d.H, s->d.H, wg->h1, s->p.news_Whh, NULL, wg->r1);
out:
    free(ones);
    free(g);
    return rc;
}

static int word_gates_make(Scorer *s, DatasetTxn *txn, WordGates *wg)
{
    const ModelDims *d = &s->d;
    const size_t H4 = 4 * (size_t)d->H;
    const size_t piece = NEWS_CHUNK * (size_t)d->title_len; /* params_io's max rows */
    uint32_t max_w = 0;
    size_t nw = 0;
    NewsView nv;
    int rc;
    for (uint64_t i = 0; i < s->news_rows; i++) {
        if ((rc = dataset_get_news(txn, (uint32_t)i, &nv)))
            return rc;
        for (uint32_t t = 0; t < nv.ntok && t < (uint32_t)d->title_len; t++)
            max_w = nv.tokens[t] > max_w ? nv.tokens[t] : max_w;
    }
    const size_t ids = (size_t)max_w + 1;
    int nf = 0;
    wg->map = malloc(ids * sizeof *wg->map);
    wg->words = malloc(ids * sizeof *wg->words);
    wg->first = malloc(ids * sizeof *wg->first);
    int *fw = malloc(ids * sizeof *fw);
    if (!wg->map || !wg->words || !wg->first || !fw) {
        free(fw);
        return psrec_errf(PSREC_E_NOMEM, "scorer: out of memory (word map of %u ids)", max_w);
    }
    memset(wg->map, 0xff, ids * sizeof *wg->map); /* -1 */
    memset(wg->first, 0xff, ids * sizeof *wg->first);
    for (uint64_t i = 0; i < s->news_rows; i++) {
        if ((rc = dataset_get_news(txn, (uint32_t)i, &nv))) {
            free(fw);
            return rc;
        }
        for (uint32_t t = 0; t < nv.ntok && t < (uint32_t)d->title_len; t++)
            if (wg->map[nv.tokens[t]] < 0) {
                wg->map[nv.tokens[t]] = (int)nw;
                wg->words[nw++] = nv.tokens[t];
            }
        if (nv.ntok > 0 && wg->first[nv.tokens[0]] < 0) {
            wg->first[nv.tokens[0]] = nf;
            fw[nf++] = wg->map[nv.tokens[0]];
        }
    }
    wg->pw = malloc((nw ? nw : 1) * H4 * sizeof *wg->pw);
    if (!wg->pw) {
        free(fw);
        return psrec_errf(PSREC_E_NOMEM, "scorer: out of memory (%zu word gate rows)", nw);
    }
    for (size_t k = 0; k < nw; k += piece) {
        size_t m = nw - k < piece ? nw - k : piece;
        if ((rc = params_pull_rows(&s->io, PARAM_WORD, wg->words + k, m, s->rows))) {
            free(fw);
            return rc;
        }
        lstm_input_gates((int)m, d->E, d->H, s->rows, s->p.news_Wih, s->p.news_b,
                         wg->pw + k * H4);
    }
    rc = first_step_make(s, wg, fw, nf);
    free(fw);
    return rc;
}

/* News rows first..first+n-1 into the news matrix through the word table. */
static int encode_news_chunk_gathered(Scorer *s, DatasetTxn *txn, const WordGates *wg,
                                      uint64_t first, int n)
{
    const ModelDims *d = &s->d;
    const int T = d->title_len, H = d->H;
    const size_t H4 = 4 * (size_t)H;
    uint32_t *tok_global = (uint32_t *)s->local; /* mapped in place to word-table ids */
    int rc = read_chunk_titles(s, txn, first, n, tok_global);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < s->len[i]; t++) {
            size_t at = (size_t)i * (size_t)T + (size_t)t;
            s->local[at] = wg->map[tok_global[at]];
        }
    if ((rc = pull_chunk_categories(s, n)))
        return rc;
    LstmPack pk;
    lstm_sort_by_len_desc(n, s->len, T, s->count, s->order, s->slen);
    if ((rc = lstm_pack_init(&pk, s->slen, n, T, s->bs, s->off)))
        return rc;
    for (int t = 0; t < pk.T; t++)
        for (int r = 0; r < pk.bs[t]; r++)
            s->prow[pk.off[t] + r] = s->local[(size_t)s->order[r] * (size_t)T + (size_t)t];
    /* Step 0 and step 1's recurrence term from the first-word table (every title has a
     * first word: lengths are >= 1), the rest by lstm_forward_gates from step 1. */
    for (int r = 0; r < pk.bs[0]; r++) {
        size_t k = (size_t)wg->first[wg->words[s->prow[r]]]; /* prow of step 0: off[0] = 0 */
        memcpy(s->hout + (size_t)r * (size_t)H, wg->h1 + k * (size_t)H, (size_t)H * sizeof(float));
        memcpy(s->c + (size_t)r * (size_t)H, wg->c1 + k * (size_t)H, (size_t)H * sizeof(float));
        if (pk.T > 1 && r < pk.bs[1])
            memcpy(s->g + (size_t)r * H4, wg->r1 + k * H4, H4 * sizeof(float));
    }
    lstm_forward_gates(&pk, H, wg->pw, s->prow, NULL, s->p.news_Whh, s->g, s->hout, s->c, 1);
    /* The mean over the title plus the category row, summed as model.c's news_forward. */
    for (int r = 0; r < n; r++) {
        int id = s->order[r];
        float *v = s->news_vecs + (first + (uint64_t)id) * (uint64_t)H;
        memset(v, 0, (size_t)H * sizeof *v);
        for (int t = 0; t < s->slen[r]; t++) {
            const float *h = s->hout + ((size_t)pk.off[t] + (size_t)r) * (size_t)H;
            for (int j = 0; j < H; j++)
                v[j] += h[j];
        }
        float inv = 1.0f / (float)s->slen[r];
        const float *cv = s->cat_rows + (size_t)s->cat_local[id] * (size_t)H;
        for (int j = 0; j < H; j++)
            v[j] = v[j] * inv + cv[j];
    }
    return 0;
}

void scorer_set_gathered(Scorer *s, int on)
{
    s->gathered = on != 0;
    if (!s->gathered) {
        free(s->p_news);
        s->p_news = NULL;
    }
}

int scorer_encode_news(Scorer *s, DatasetTxn *txn)
{
    WordGates wg = {0};
    int rc = 0;
    free(s->p_news); /* projects the old matrix */
    s->p_news = NULL;
    if (s->gathered && (rc = word_gates_make(s, txn, &wg)))
        goto out;
    for (uint64_t first = 0; first < s->news_rows; first += NEWS_CHUNK) {
        uint64_t left = s->news_rows - first;
        int n = (int)(left < NEWS_CHUNK ? left : NEWS_CHUNK);
        rc = s->gathered ? encode_news_chunk_gathered(s, txn, &wg, first, n)
                         : encode_news_chunk_plain(s, txn, first, n);
        if (rc)
            goto out;
    }
out:
    word_gates_free(&wg);
    return rc;
}

int scorer_project_news(Scorer *s)
{
    if (!s->gathered || s->p_news)
        return 0;
    const size_t H4 = 4 * (size_t)s->d.H;
    s->p_news = malloc(s->news_rows * H4 * sizeof *s->p_news);
    if (!s->p_news)
        return psrec_errf(PSREC_E_NOMEM, "scorer: out of memory (%llu x %zu news gate floats)",
                          (unsigned long long)s->news_rows, H4);
    /* One GEMM per NEWS_CHUNK rows: the same M as a chunk of titles, no giant call. */
    for (uint64_t first = 0; first < s->news_rows; first += NEWS_CHUNK) {
        uint64_t left = s->news_rows - first;
        int n = (int)(left < NEWS_CHUNK ? left : NEWS_CHUNK);
        lstm_input_gates(n, s->d.H, s->d.H, s->news_vecs + first * (uint64_t)s->d.H,
                         s->p.user_Wih, s->p.user_b, s->p_news + first * H4);
    }
    return 0;
}

/* User vectors of n users (his, his_n, user_local and the pulled rows set) through P_news. */
static void encode_users_gathered(Scorer *s, int n, float *out)
{
    const int L = s->d.his_len, H = s->d.H;
    LstmPack pk;
    lstm_sort_by_len_desc(n, s->his_n, L, s->count, s->order, s->slen);
    lstm_pack_init(&pk, s->slen, n, L, s->bs, s->off); /* cannot fail: checked, sorted */
    for (int r = 0; r < n; r++)
        memcpy(s->h0 + (size_t)r * H, s->rows + (size_t)s->user_local[s->order[r]] * H,
               (size_t)H * sizeof(float));
    for (int t = 0; t < pk.T; t++)
        for (int r = 0; r < pk.bs[t]; r++)
            s->prow[pk.off[t] + r] = s->his[(size_t)s->order[r] * (size_t)L + (size_t)t];
    lstm_forward_gates(&pk, H, s->p_news, s->prow, s->h0, s->p.user_Whh, s->g, s->hout, s->c,
                       0);
    for (int r = 0; r < n; r++) {
        int len = s->slen[r];
        const float *last = len > 0 ? s->hout + ((size_t)pk.off[len - 1] + (size_t)r) * H
                                    : s->h0 + (size_t)r * H;
        memcpy(out + (size_t)s->order[r] * H, last, (size_t)H * sizeof(float));
    }
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
    if (s->p_news) {
        encode_users_gathered(s, n, out);
        return 0;
    }
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
