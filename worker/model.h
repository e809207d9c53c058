/* LSTM-NR, the model (semantics: shared/peers/torch_lstmnr.py, DESIGN.md "The model").
 *
 *   news vector n = mean over the title's real tokens of the news-LSTM hidden states
 *                   + E_cat[category]                                     (dim H)
 *   user vector u = user-LSTM (h0 = E_user[user], c0 = 0) over the history's news vectors,
 *                   oldest first; the hidden state after the last click; u = h0 when empty
 *   score         = u . n;  loss = mean over the batch of softmax cross-entropy over the
 *                   1 + K candidates, the positive in column 0.
 *
 * Parameter-server ready: the model never sees global ids. A ModelBatch is in LOCAL ids
 * after in-batch dedup (worker/batch.h builds one): the caller pulls the distinct rows of
 * E_word / E_cat / E_user into dense local tables, the model reads those and writes gradients
 * of the same shapes. Each distinct news is encoded once per batch and its gradient is summed
 * over all its occurrences (history or candidate).
 *
 * Threads: GEMMs use OpenBLAS's threads (set them with openblas_set_num_threads); a
 * ModelWorkspace is used by one thread at a time. */
#ifndef PSREC_WORKER_MODEL_H
#define PSREC_WORKER_MODEL_H

#include "common/rng.h"

#include <stddef.h>

/* Shapes of a model. */
typedef struct ModelDims {
    int E;         /* word embedding size */
    int H;         /* hidden size = category, user and news vector size */
    int title_len; /* max tokens per title */
    int his_len;   /* max clicks per history */
    int K;         /* negatives per sample: 1 + K candidates */
} ModelDims;

/* The dense weights, pointers into one arena of model_dense_floats() floats in this order.
 * Weights are (input, 4H) row-major, gates i, f, g, o: the transpose of PyTorch's
 * weight_ih_l0 / weight_hh_l0; each bias is PyTorch's bias_ih_l0 + bias_hh_l0. A gradient
 * uses the same struct. */
typedef struct DenseParams {
    float *arena;    /* all of the below, contiguous */
    float *news_Wih; /* (E, 4H) */
    float *news_Whh; /* (H, 4H) */
    float *news_b;   /* (4H) */
    float *user_Wih; /* (H, 4H) */
    float *user_Whh; /* (H, 4H) */
    float *user_b;   /* (4H) */
} DenseParams;

/* Offsets (in floats) of each dense tensor in the arena, and the total. */
typedef struct DenseLayout {
    size_t news_Wih, news_Whh, news_b, user_Wih, user_Whh, user_b;
    size_t total;
} DenseLayout;

/* The arena layout for dims. */
void model_dense_layout(const ModelDims *d, DenseLayout *out);

/* Total floats of the dense arena (= layout.total). */
size_t model_dense_floats(const ModelDims *d);

/* Point p's fields into arena (model_dense_floats(d) floats, caller-owned, borrowed for as
 * long as p is used). Does not touch the values. */
void model_dense_bind(DenseParams *p, const ModelDims *d, float *arena);

/* PyTorch's LSTM initialisation: every weight U(-1/sqrt(H), 1/sqrt(H)). PyTorch draws two
 * bias vectors that way and psrec keeps their sum, so each bias is the sum of two such draws
 * (a triangular distribution on (-2/sqrt(H), 2/sqrt(H))), as in the peer. p must be bound. */
void model_init_dense(DenseParams *p, const ModelDims *d, Rng *rng);

/* Embedding initialisation: row (dim) gets N(0, 0.1^2) values. */
void model_init_embedding_row(float *row, int dim, Rng *rng);

/* One training batch in local ids. Arrays are borrowed for the call. */
typedef struct ModelBatch {
    int B;              /* samples */
    int n_words;        /* distinct words: rows of word_rows / g_word */
    int n_cats;         /* distinct categories: rows of cat_rows / g_cat */
    int n_users;        /* distinct users: rows of user_rows / g_user */
    int n_news;         /* distinct news */
    const int *news_tok; /* (n_news, title_len) local word ids; the first news_len[i] count */
    const int *news_len; /* (n_news) title lengths, 1..title_len */
    const int *news_cat; /* (n_news) local category ids */
    const int *user;     /* (B) local user ids */
    const int *his;      /* (B, his_len) local news ids, oldest first; the first his_n[b] count */
    const int *his_n;    /* (B) history lengths, 0..his_len */
    const int *cand;     /* (B, 1 + K) local news ids, the positive in column 0 */
} ModelBatch;

typedef struct ModelWorkspace ModelWorkspace;

/* Allocate a workspace for batches up to the given sizes; nothing is allocated afterwards.
 *   max_B      samples per batch (and users per model_encode_users call)
 *   max_news   distinct news per batch / model_encode_news call; <= 0 means the most a batch
 *              can hold, max_B * (his_len + 1 + K)
 *   max_tokens sum of the distinct news' title lengths; <= 0 means max_news * title_len
 * Memory is about max_tokens * (2E + 8H) + max_news * 4H + max_B * his_len * 10H floats
 * (4 bytes each); the defaults fit the worst case, a caller that knows its data (titles
 * shorter than title_len, repeated news) can pass smaller maxima.
 * Returns 0, PSREC_E_RANGE for bad dims, PSREC_E_NOMEM. *out is owned by the caller. */
int model_workspace_new(ModelWorkspace **out, const ModelDims *d, int max_B, int max_news,
                        int max_tokens);

/* Free a workspace and clear the caller's pointer; NULL-safe. */
void model_workspace_free(ModelWorkspace **ws);

/* Forward and backward of one training batch.
 *   ws        workspace made for dims d (sizes not exceeded)
 *   p         dense weights
 *   word_rows (n_words, E), cat_rows (n_cats, H), user_rows (n_users, H): pulled rows
 *   b         the batch in local ids
 *   g         dense gradients, ACCUMULATED (+=): zero them before the first batch
 *   g_word (n_words, E), g_cat (n_cats, H), g_user (n_users, H): row gradients, ACCUMULATED
 *   loss      out: mean loss of the batch
 * All gradients are of the batch's mean loss. Returns 0, or PSREC_E_RANGE (with detail) when
 * the batch exceeds the workspace or holds an out-of-range id or length; then nothing has
 * been written. */
int model_train_step_grads(ModelWorkspace *ws, const ModelDims *d, const DenseParams *p,
                           const float *word_rows, const float *cat_rows, const float *user_rows,
                           const ModelBatch *b, DenseParams *g, float *g_word, float *g_cat,
                           float *g_user, float *loss);

/* News vectors of n news (eval, or anything that scores).
 *   tok (n, title_len) local word ids into word_rows (rows of E); len (n) 1..title_len;
 *   cat (n) local ids into cat_rows (rows of H); out (n, H).
 * Word and category ids must be rows of word_rows / cat_rows (not checked here).
 * Returns 0 or PSREC_E_RANGE when n or the token count exceeds the workspace, a length is out
 * of range or dims differ from the workspace's. */
int model_encode_news(ModelWorkspace *ws, const ModelDims *d, const DenseParams *p,
                      const float *word_rows, const float *cat_rows, int n, const int *tok,
                      const int *len, const int *cat, float *out);

/* User vectors of B users from their histories' news vectors.
 *   user_rows: rows of E_user (H); user (B) local ids into them
 *   news_vecs (n_news, H); his (B, his_len) ids into news_vecs, oldest first; his_n (B)
 *   out (B, H)
 * User ids must be rows of user_rows (not checked here).
 * Returns 0 or PSREC_E_RANGE when B exceeds the workspace, a history length or news id is out
 * of range or dims differ from the workspace's. */
int model_encode_users(ModelWorkspace *ws, const ModelDims *d, const DenseParams *p,
                       const float *user_rows, int B, const int *user, const float *news_vecs,
                       int n_news, const int *his, const int *his_n, float *out);

/* Scores of one user against n news: out[i] = u . news_vecs[ids[i]].
 *   u (H); news_vecs (rows, H); ids (n) row indices, or NULL for rows 0..n-1; out (n). */
void model_score(int H, const float *u, const float *news_vecs, int n, const int *ids,
                 float *out);

/* Mean softmax cross-entropy of B rows of C scores with the target in column 0.
 *   scores (B, C); dscores (B, C) out: gradient of the mean loss (overwritten), or NULL.
 * Returns the mean loss (computed in double). */
double model_softmax_xent(int B, int C, const float *scores, float *dscores);

#endif
