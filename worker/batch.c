/* In-batch dedup: global ids -> dense local ids, one open-addressing map per id space.
 *
 * Invariants: local ids are given in first-seen order (samples in order; per sample the
 * history, oldest first, then the candidates; per news its tokens, then its category), so
 * the same input gives the same batch. Maps are cleared in O(1) by bumping a generation
 * stamp; every buffer is sized at creation for the largest batch, so a build never
 * allocates.
 * Not here: reading the dataset, pulling rows. */
#include "worker/batch.h"

#include "common/error.h"
#include "common/rng.h"

#include <stdlib.h>
#include <string.h>

/* uint32 -> local int map with generation stamps (a slot is live iff its stamp is gen). */
typedef struct IdMap {
    uint32_t *keys;  /* (cap) */
    int *vals;       /* (cap) */
    uint32_t *stamp; /* (cap) */
    uint32_t gen;
    size_t mask;     /* cap - 1, cap a power of two >= 2 * max entries */
    uint32_t *ids;   /* (max) global ids in local order */
    int n, max;
} IdMap;

struct BatchBuilder {
    ModelDims d;
    int max_B;
    IdMap news, words, cats, users;
    int *news_tok;  /* (max news, title_len) */
    int *news_len;  /* (max news) */
    int *news_cat;  /* (max news) */
    int *user;      /* (max_B) */
    int *his;       /* (max_B, his_len) */
    int *his_n;     /* (max_B) */
    int *cand;      /* (max_B, 1 + K) */
};

static int idmap_init(IdMap *m, int max)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)max)
        cap *= 2;
    m->keys = calloc(cap, sizeof *m->keys);
    m->vals = calloc(cap, sizeof *m->vals);
    m->stamp = calloc(cap, sizeof *m->stamp);
    m->ids = calloc((size_t)max, sizeof *m->ids);
    m->mask = cap - 1;
    m->gen = 1;
    m->n = 0;
    m->max = max;
    return m->keys && m->vals && m->stamp && m->ids ? 0 : PSREC_E_NOMEM;
}

static void idmap_fini(IdMap *m)
{
    free(m->keys);
    free(m->vals);
    free(m->stamp);
    free(m->ids);
}

static void idmap_clear(IdMap *m)
{
    m->n = 0;
    if (++m->gen == 0) { /* wrapped: old stamps could look live again */
        memset(m->stamp, 0, (m->mask + 1) * sizeof *m->stamp);
        m->gen = 1;
    }
}

/* Local id of key, adding it when new (*added set to 1). The caller guarantees at most
 * max distinct keys between clears. */
static int idmap_get(IdMap *m, uint32_t key, int *added)
{
    size_t i = rng_mix64(key) & m->mask;
    while (m->stamp[i] == m->gen) {
        if (m->keys[i] == key) {
            *added = 0;
            return m->vals[i];
        }
        i = (i + 1) & m->mask;
    }
    m->stamp[i] = m->gen;
    m->keys[i] = key;
    m->vals[i] = m->n;
    m->ids[m->n] = key;
    *added = 1;
    return m->n++;
}

int batch_builder_new(BatchBuilder **out, const ModelDims *d, int max_B)
{
    *out = NULL;
    if (max_B < 1 || d->title_len < 1 || d->his_len < 1 || d->K < 0)
        return psrec_errf(PSREC_E_RANGE, "batch: bad sizes max_B=%d title_len=%d his_len=%d K=%d",
                          max_B, d->title_len, d->his_len, d->K);
    BatchBuilder *bb = calloc(1, sizeof *bb);
    if (!bb)
        return psrec_errf(PSREC_E_NOMEM, "batch: no memory for a builder");
    bb->d = *d;
    bb->max_B = max_B;
    size_t C = (size_t)d->K + 1;
    int max_news = max_B * (d->his_len + (int)C);
    int rc = idmap_init(&bb->news, max_news);
    rc = rc ? rc : idmap_init(&bb->words, max_news * d->title_len);
    rc = rc ? rc : idmap_init(&bb->cats, max_news);
    rc = rc ? rc : idmap_init(&bb->users, max_B);
    bb->news_tok = malloc((size_t)max_news * d->title_len * sizeof(int));
    bb->news_len = malloc((size_t)max_news * sizeof(int));
    bb->news_cat = malloc((size_t)max_news * sizeof(int));
    bb->user = malloc((size_t)max_B * sizeof(int));
    bb->his = malloc((size_t)max_B * d->his_len * sizeof(int));
    bb->his_n = malloc((size_t)max_B * sizeof(int));
    bb->cand = malloc((size_t)max_B * C * sizeof(int));
    if (rc || !bb->news_tok || !bb->news_len || !bb->news_cat || !bb->user || !bb->his ||
        !bb->his_n || !bb->cand) {
        batch_builder_free(&bb);
        return psrec_errf(PSREC_E_NOMEM, "batch: no memory for a builder of %d samples", max_B);
    }
    *out = bb;
    return 0;
}

void batch_builder_free(BatchBuilder **bb)
{
    if (!bb || !*bb)
        return;
    BatchBuilder *b = *bb;
    idmap_fini(&b->news);
    idmap_fini(&b->words);
    idmap_fini(&b->cats);
    idmap_fini(&b->users);
    free(b->news_tok);
    free(b->news_len);
    free(b->news_cat);
    free(b->user);
    free(b->his);
    free(b->his_n);
    free(b->cand);
    free(b);
    *bb = NULL;
}

/* Local id of global news id, looking it up and deduping its words and category when new. */
static int add_news(BatchBuilder *bb, uint32_t id, BatchNewsFn news_fn, void *ctx, int *local)
{
    int added;
    int n = idmap_get(&bb->news, id, &added);
    *local = n;
    if (!added)
        return 0;
    BatchNews info;
    int rc = news_fn(ctx, id, &info);
    if (rc)
        return rc;
    if (info.ntok < 1)
        return psrec_errf(PSREC_E_RANGE, "batch: news %u has no token", id);
    int len = info.ntok > (uint32_t)bb->d.title_len ? bb->d.title_len : (int)info.ntok;
    int *tok = bb->news_tok + (size_t)n * bb->d.title_len;
    for (int t = 0; t < len; t++)
        tok[t] = idmap_get(&bb->words, info.tokens[t], &added);
    for (int t = len; t < bb->d.title_len; t++)
        tok[t] = 0; /* never read by the model; keeps the batch fully defined */
    bb->news_len[n] = len;
    bb->news_cat[n] = idmap_get(&bb->cats, info.category, &added);
    return 0;
}

int batch_build(BatchBuilder *bb, int B, const uint32_t *users, const uint32_t *his,
                const int *his_n, const uint32_t *cand, BatchNewsFn news_fn, void *ctx,
                ModelBatch *out, BatchKeys *keys)
{
    const int L = bb->d.his_len, C = bb->d.K + 1;
    if (B < 0 || B > bb->max_B)
        return psrec_errf(PSREC_E_RANGE, "batch: %d samples, builder holds %d", B, bb->max_B);
    for (int b = 0; b < B; b++)
        if (his_n[b] < 0 || his_n[b] > L)
            return psrec_errf(PSREC_E_RANGE, "batch: sample %d has %d clicks, allowed 0..%d", b,
                              his_n[b], L);
    idmap_clear(&bb->news);
    idmap_clear(&bb->words);
    idmap_clear(&bb->cats);
    idmap_clear(&bb->users);
    int added, rc = 0;
    for (int b = 0; b < B && !rc; b++) {
        bb->user[b] = idmap_get(&bb->users, users[b], &added);
        bb->his_n[b] = his_n[b];
        int *h = bb->his + (size_t)b * L;
        for (int t = 0; t < his_n[b] && !rc; t++)
            rc = add_news(bb, his[(size_t)b * L + t], news_fn, ctx, &h[t]);
        for (int t = his_n[b]; t < L; t++)
            h[t] = 0; /* padding: never read by the model */
        for (int c = 0; c < C && !rc; c++)
            rc = add_news(bb, cand[(size_t)b * C + c], news_fn, ctx, &bb->cand[(size_t)b * C + c]);
    }
    if (rc)
        return rc;
    *out = (ModelBatch){
        .B = B,
        .n_words = bb->words.n,
        .n_cats = bb->cats.n,
        .n_users = bb->users.n,
        .n_news = bb->news.n,
        .news_tok = bb->news_tok,
        .news_len = bb->news_len,
        .news_cat = bb->news_cat,
        .user = bb->user,
        .his = bb->his,
        .his_n = bb->his_n,
        .cand = bb->cand,
    };
    *keys = (BatchKeys){
        .n_words = bb->words.n,
        .words = bb->words.ids,
        .n_cats = bb->cats.n,
        .cats = bb->cats.ids,
        .n_users = bb->users.n,
        .users = bb->users.ids,
        .n_news = bb->news.n,
        .news = bb->news.ids,
    };
    return 0;
}
