/* One scorer for every way of asking the model for scores (eval, recommend): encode every
 * news of a dataset once into a (news_rows, H) matrix, encode users from their histories,
 * score candidates with one dot product each. Parameters come through a PsClient; the dense
 * weights are pulled once, at scorer_new.
 *
 * Gathered gates (the default): an LSTM's input projection x . W_ih depends on its input
 * only, and eval's inputs repeat (a word occurs in many titles, a news in many histories), so
 * each distinct input is projected once and the LSTMs gather the projected rows
 * (worker/lstm.h lstm_forward_gates). scorer_encode_news does it for the words of the titles;
 * scorer_project_news does it for the news vectors, for scorer_encode_users. The scores equal
 * the plain forward's up to float rounding (the same kernels compute the same sums; see
 * tests/test_scorer.c).
 *
 * A Scorer is single-threaded and holds its scratch: after scorer_new only
 * scorer_encode_news (its word table, for the call) and scorer_project_news allocate.
 * It does not compute metrics, write predictions or know about impressions. */
#ifndef PSREC_WORKER_SCORER_H
#define PSREC_WORKER_SCORER_H

#include "common/dataset.h"
#include "worker/model.h"
#include "worker/ps_client.h"

#include <stdint.h>

typedef struct Scorer Scorer;

/* A scorer for dims d (K unused) and a dataset of news_rows news rows, encoding up to
 * max_users users per scorer_encode_users call. ps is borrowed for the scorer's life.
 * Pulls the dense weights. Returns 0, PSREC_E_NOMEM, or the pull's error, with detail. */
int scorer_new(Scorer **out, const ModelDims *d, PsClient *ps, uint64_t news_rows,
               int max_users);
/* NULL-safe; clears the caller's pointer. */
void scorer_free(Scorer **s);

/* Encode every news row 0..news_rows-1 of the dataset read through txn (borrowed for the
 * call) into the news matrix. Gathered: first pulls every distinct title word and projects it
 * once (a (distinct words, 4H) table, freed before returning). Drops the projection of
 * scorer_project_news. Returns 0 or an error with detail (PSREC_E_NOMEM). */
int scorer_encode_news(Scorer *s, DatasetTxn *txn);

/* The news matrix (news_rows, H), owned by the scorer. Writable so that a caller holding the
 * vectors already (a cache) can fill it instead of scorer_encode_news. */
float *scorer_news_vecs(Scorer *s);
uint64_t scorer_news_rows(const Scorer *s);

/* Gathered gates on (1, the default) or off (0: every call runs the model's plain forward,
 * model_encode_news / model_encode_users, as before gathered gates existed): tests and
 * benchmarks compare the two. Turning it off drops the projection of scorer_project_news. */
void scorer_set_gathered(Scorer *s, int on);

/* Project every row of the news matrix through the user LSTM's input weights once
 * ((news_rows, 4H) floats, 4x the news matrix, held until scorer_free or the next
 * scorer_encode_news), so that scorer_encode_users gathers rows instead of multiplying every
 * history step. Pays when the histories to encode hold more steps than there are news rows
 * (eval); a caller encoding a few users (recommend) skips it. Call after the news matrix is
 * filled. No-op when gathered gates are off. Returns 0 or PSREC_E_NOMEM with detail. */
int scorer_project_news(Scorer *s);

/* User vectors of n <= max_users users: user[i] is a row of E_user (DATASET_UNK_USER for an
 * unknown user), his[i] its nhis[i] clicked news rows oldest first (only the last his_len
 * count, as in training). out (n, H). An empty history gives u = E_user[user] (the model's
 * empty-history path). Needs the news matrix. Returns 0 or an error with detail. */
int scorer_encode_users(Scorer *s, int n, const uint32_t *user, const uint32_t *const *his,
                        const uint32_t *nhis, float *out);

/* out[i] = u . news[cand[i]] for i < n (u: H floats), summed over h in order. cand rows must
 * be < news_rows. */
void scorer_score(const Scorer *s, const float *u, const uint32_t *cand, uint64_t n,
                  float *out);

#endif
