/* Building a ModelBatch from global ids: in-batch dedup of news, words, categories and users.
 *
 * Input: per sample a user, the history's news ids (oldest first) and the 1 + K candidate
 * news ids; a callback that gives a news' title tokens and category. Output: a ModelBatch in
 * local ids (worker/model.h) plus, for each local id space, the global ids in local order:
 * the rows to pull from E_word / E_cat / E_user before the step and to push gradients to
 * after it. Only the first his_n[b] history entries of a sample are read: the rest are
 * padding and never reach the model. */
#ifndef PSREC_WORKER_BATCH_H
#define PSREC_WORKER_BATCH_H

#include "worker/model.h"

#include <stdint.h>

/* One news as the callback describes it. */
typedef struct BatchNews {
    uint32_t category;       /* global category id */
    uint32_t ntok;           /* >= 1; cut to title_len */
    const uint32_t *tokens;  /* (ntok) global word ids; read before the callback is called again */
} BatchNews;

/* Look up global news id `news`; fill *out and return 0, or return a non-zero error code
 * (errno or PSREC_E*) that batch_build passes on. */
typedef int (*BatchNewsFn)(void *ctx, uint32_t news, BatchNews *out);

/* Global ids of the local rows, borrowed from the builder until its next build or free. */
typedef struct BatchKeys {
    int n_words;
    const uint32_t *words; /* (n_words) local word -> global word id */
    int n_cats;
    const uint32_t *cats;  /* (n_cats) */
    int n_users;
    const uint32_t *users; /* (n_users) */
    int n_news;
    const uint32_t *news;  /* (n_news) local news -> global news id */
} BatchKeys;

typedef struct BatchBuilder BatchBuilder;

/* A builder for batches of up to max_B samples of dims d (title_len, his_len, K are used).
 * Returns 0, PSREC_E_RANGE for bad sizes, PSREC_E_NOMEM. *out is owned by the caller. */
int batch_builder_new(BatchBuilder **out, const ModelDims *d, int max_B);

/* Free a builder and clear the caller's pointer; NULL-safe. */
void batch_builder_free(BatchBuilder **bb);

/* Dedup one batch.
 *   users (B) global user ids; his (B, his_len) global news ids, oldest first; his_n (B)
 *   0..his_len; cand (B, 1 + K) global news ids, positive first
 *   news_fn, ctx: news lookup, called once per distinct news
 *   out: the ModelBatch (arrays owned by the builder); keys: global ids of the local rows
 * Both stay valid until the next batch_build or batch_builder_free. Returns 0,
 * PSREC_E_RANGE (B or a history length out of range, a news with no token), or the
 * callback's error. */
int batch_build(BatchBuilder *bb, int B, const uint32_t *users, const uint32_t *his,
                const int *his_n, const uint32_t *cand, BatchNewsFn news_fn, void *ctx,
                ModelBatch *out, BatchKeys *keys);

#endif
