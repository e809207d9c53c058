/* Tests of worker/model (LSTM-NR forward/backward) and worker/batch (in-batch dedup).
 *
 * - Finite differences of the whole mean loss w.r.t. every parameter group (news LSTM, user
 *   LSTM, word rows, category rows, user rows) on a tiny batch with ragged titles, a length-1
 *   title, an empty history, a user with two samples and a news both in histories and among
 *   candidates. The model computes in float; eps = 1e-2, central differences, and every
 *   element must satisfy |analytic - numeric| <= 5e-5 + 5e-3 * |numeric| (observed errors are
 *   ~1e-5; a wrong term is off by 1e-2 or more at these scales). No kinks to skip.
 * - The loss piece (softmax cross-entropy) by finite differences in double (<= 1e-5, the
 *   O(eps^2) term with eps = 1e-2).
 * - The masked mean: encode_news equals the LSTM run on the title alone, averaged by hand,
 *   and never reads the tokens past a title's length.
 * - The eval path (encode_news, encode_users, score) gives the training loss.
 * - The golden test: tests/fixtures/golden_tiny.txt (tests/golden/make_golden.py, PyTorch
 *   peer in float64). Loss, scores and every gradient tensor must satisfy
 *   max|c - torch| <= 1e-4 * max|torch| per tensor (relative to the tensor's largest entry),
 *   after dedup through batch_build and scattering the local row gradients to full tables. */
#include "testutil/testutil.h"

#include "common/error.h"
#include "common/rng.h"
#include "worker/batch.h"
#include "worker/lstm.h"
#include "worker/lstm_gemm.h"
#include "worker/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FD_EPS 1e-2f
#define FD_ABS 5e-5
#define FD_REL 5e-3
#define GOLDEN_TOL 1e-4

/* ------------------------------------------------------------------ a tiny local batch */

enum { T_E = 3, T_H = 4, T_L = 4, T_HL = 3, T_K = 2, T_C = T_K + 1, T_B = 3 };
enum { T_WORDS = 7, T_CATS = 3, T_USERS = 2, T_NEWS = 6 };

static const int t_tok[T_NEWS * T_L] = {
    0, 1, 2, 3, /* len 4 */
    4, 6, 6, 6, /* len 1; the 6s are past the end and must never be read */
    5, 6, 0, 6, /* len 3 */
    1, 1, 6, 6, /* len 2, a repeated word */
    6, 5, 4, 3, /* len 4 */
    2, 0, 6, 6, /* len 2 */
};
static const int t_len[T_NEWS] = {4, 1, 3, 2, 4, 2};
static const int t_cat[T_NEWS] = {0, 1, 2, 0, 1, 2};
static const int t_user[T_B] = {0, 1, 0};                    /* user 0 has two samples */
static const int t_his[T_B * T_HL] = {0, 1, 2, 5, 5, 5, 3, 0, 5}; /* 5s are padding */
static const int t_his_n[T_B] = {3, 0, 2};                   /* sample 1: empty history */
static const int t_cand[T_B * T_C] = {4, 0, 5, 1, 5, 2, 2, 4, 3}; /* news 0: history+cand */

static const ModelDims t_dims = {T_E, T_H, T_L, T_HL, T_K};

static ModelBatch tiny_batch(void)
{
    return (ModelBatch){.B = T_B, .n_words = T_WORDS, .n_cats = T_CATS, .n_users = T_USERS,
                        .n_news = T_NEWS, .news_tok = t_tok, .news_len = t_len,
                        .news_cat = t_cat, .user = t_user, .his = t_his, .his_n = t_his_n,
                        .cand = t_cand};
}

typedef struct Tiny {
    ModelWorkspace *ws;
    float *arena, *garena;
    DenseParams p, g;
    float word[T_WORDS * T_E], cat[T_CATS * T_H], user[T_USERS * T_H];
    float gword[T_WORDS * T_E], gcat[T_CATS * T_H], guser[T_USERS * T_H];
} Tiny;

static void tiny_init(Tiny *t, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    Rng rng;
    rng_seed(&rng, seed);
    CU_ASSERT_EQUAL_FATAL(model_workspace_new(&t->ws, &t_dims, T_B, 0, 0), 0);
    size_t n = model_dense_floats(&t_dims);
    t->arena = malloc(n * sizeof(float));
    t->garena = calloc(n, sizeof(float));
    model_dense_bind(&t->p, &t_dims, t->arena);
    model_dense_bind(&t->g, &t_dims, t->garena);
    for (size_t i = 0; i < n; i++)
        t->arena[i] = (float)(rng_uniform(&rng) - 0.5);
    for (int i = 0; i < T_WORDS * T_E; i++)
        t->word[i] = (float)(0.5 * rng_normal(&rng));
    for (int i = 0; i < T_CATS * T_H; i++)
        t->cat[i] = (float)(0.5 * rng_normal(&rng));
    for (int i = 0; i < T_USERS * T_H; i++)
        t->user[i] = (float)(0.5 * rng_normal(&rng));
}

static void tiny_free(Tiny *t)
{
    model_workspace_free(&t->ws);
    free(t->arena);
    free(t->garena);
}

static float tiny_step(Tiny *t)
{
    ModelBatch b = tiny_batch();
    float loss = NAN;
    int rc = model_train_step_grads(t->ws, &t_dims, &t->p, t->word, t->cat, t->user, &b, &t->g,
                                    t->gword, t->gcat, t->guser, &loss);
    CU_ASSERT_EQUAL(rc, 0);
    return loss;
}

/* Loss only, with gradients going to scratch copies (the FD loop must not disturb the
 * gradients under test). */
static double tiny_loss(Tiny *t)
{
    Tiny s = *t;
    size_t n = model_dense_floats(&t_dims);
    float *ga = calloc(n, sizeof(float));
    model_dense_bind(&s.g, &t_dims, ga);
    ModelBatch b = tiny_batch();
    float loss = NAN;
    int rc = model_train_step_grads(t->ws, &t_dims, &t->p, t->word, t->cat, t->user, &b, &s.g,
                                    s.gword, s.gcat, s.guser, &loss);
    CU_ASSERT_EQUAL(rc, 0);
    free(ga);
    return loss;
}

static void fd_check(Tiny *t, const char *name, float *x, const float *grad, size_t n)
{
    double worst = 0.0, gmax = 0.0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + FD_EPS;
        double lp = tiny_loss(t);
        x[i] = keep - FD_EPS;
        double lm = tiny_loss(t);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * FD_EPS);
        double err = fabs(num - grad[i]);
        if (err > FD_ABS + FD_REL * fabs(num) && bad++ < 5)
            fprintf(stderr, "  %s[%zu]: analytic %.6g numeric %.6g\n", name, i, grad[i], num);
        worst = fmax(worst, err);
        gmax = fmax(gmax, fabs(num));
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(gmax > 1e-3); /* the group really receives gradient in this batch */
    printf(" [%s err %.1e of %.1e]", name, worst, gmax);
}

static void test_fd_whole_model(void)
{
    Tiny t;
    tiny_init(&t, 7);
    tiny_step(&t);
    size_t n = model_dense_floats(&t_dims);
    float *g = malloc(n * sizeof(float));
    memcpy(g, t.garena, n * sizeof(float));
    DenseParams gc;
    model_dense_bind(&gc, &t_dims, g);
    float gword[T_WORDS * T_E], gcat[T_CATS * T_H], guser[T_USERS * T_H];
    memcpy(gword, t.gword, sizeof gword);
    memcpy(gcat, t.gcat, sizeof gcat);
    memcpy(guser, t.guser, sizeof guser);
    DenseLayout l;
    model_dense_layout(&t_dims, &l);
    fd_check(&t, "news_Wih", t.p.news_Wih, gc.news_Wih, l.news_Whh - l.news_Wih);
    fd_check(&t, "news_Whh", t.p.news_Whh, gc.news_Whh, l.news_b - l.news_Whh);
    fd_check(&t, "news_b", t.p.news_b, gc.news_b, l.user_Wih - l.news_b);
    fd_check(&t, "user_Wih", t.p.user_Wih, gc.user_Wih, l.user_Whh - l.user_Wih);
    fd_check(&t, "user_Whh", t.p.user_Whh, gc.user_Whh, l.user_b - l.user_Whh);
    fd_check(&t, "user_b", t.p.user_b, gc.user_b, l.total - l.user_b);
    fd_check(&t, "word", t.word, gword, T_WORDS * T_E);
    fd_check(&t, "cat", t.cat, gcat, T_CATS * T_H);
    fd_check(&t, "user", t.user, guser, T_USERS * T_H);
    free(g);
    tiny_free(&t);
}

static void test_grads_accumulate(void)
{
    Tiny t;
    tiny_init(&t, 8);
    float l1 = tiny_step(&t);
    size_t n = model_dense_floats(&t_dims);
    float *g1 = malloc(n * sizeof(float));
    memcpy(g1, t.garena, n * sizeof(float));
    float gw1[T_WORDS * T_E];
    memcpy(gw1, t.gword, sizeof gw1);
    float l2 = tiny_step(&t);
    CU_ASSERT_EQUAL(l1, l2);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_DOUBLE_EQUAL(t.garena[i], 2.0f * g1[i], 1e-6 + 1e-6 * fabs(g1[i]));
    for (int i = 0; i < T_WORDS * T_E; i++)
        CU_ASSERT_DOUBLE_EQUAL(t.gword[i], 2.0f * gw1[i], 1e-6 + 1e-6 * fabs(gw1[i]));
    free(g1);
    tiny_free(&t);
}

/* A batch big enough for the encoder's row loops to be split over 2 threads (chunks of
 * sequences, halves of the word ids) must give the loss and every gradient of 1 thread, bit
 * for bit: the splits are disjoint and keep each row's order of additions. */
static void test_threads_bit_identical(void)
{
    enum { E = 16, H = 16, L = 6, HL = 5, K = 2, C = K + 1, B = 20 };
    enum { WORDS = 51, CATS = 3, USERS = 20, NEWS = 200 };
    static const ModelDims d = {E, H, L, HL, K};
    static int tok[NEWS * L], len[NEWS], cat[NEWS], user[B], his[B * HL], his_n[B], cand[B * C];
    Rng rng;
    rng_seed(&rng, 77);
    for (int i = 0; i < NEWS; i++) {
        len[i] = 1 + (int)(rng_uniform(&rng) * L) % L;
        cat[i] = i % CATS;
        for (int t = 0; t < L; t++)
            tok[i * L + t] = (int)(rng_uniform(&rng) * WORDS) % WORDS;
    }
    for (int b = 0; b < B; b++) {
        user[b] = b;
        his_n[b] = b % (HL + 1);
        for (int t = 0; t < HL; t++)
            his[b * HL + t] = (b * 7 + t * 13) % NEWS;
        for (int c = 0; c < C; c++)
            cand[b * C + c] = (b * 11 + c * 29 + 100) % NEWS;
    }
    ModelBatch mb = {.B = B, .n_words = WORDS, .n_cats = CATS, .n_users = USERS, .n_news = NEWS,
                     .news_tok = tok, .news_len = len, .news_cat = cat, .user = user,
                     .his = his, .his_n = his_n, .cand = cand};
    const size_t nd = model_dense_floats(&d);
    float *arena = malloc(nd * sizeof(float));
    float *word = malloc(WORDS * E * sizeof(float)), *catr = malloc(CATS * H * sizeof(float));
    float *userr = malloc(USERS * H * sizeof(float));
    for (size_t i = 0; i < nd; i++)
        arena[i] = (float)(rng_uniform(&rng) - 0.5);
    for (int i = 0; i < WORDS * E; i++)
        word[i] = (float)(0.5 * rng_normal(&rng));
    for (int i = 0; i < CATS * H; i++)
        catr[i] = (float)(0.5 * rng_normal(&rng));
    for (int i = 0; i < USERS * H; i++)
        userr[i] = (float)(0.5 * rng_normal(&rng));
    DenseParams p;
    model_dense_bind(&p, &d, arena);
    ModelWorkspace *ws = NULL;
    CU_ASSERT_EQUAL_FATAL(model_workspace_new(&ws, &d, B, NEWS, 0), 0);
    float loss[2];
    float *ga[2], *gw[2], *gc[2], *gu[2];
    for (int run = 0; run < 2; run++) {
        lstm_gemm_set_threads(run + 1);
        ga[run] = calloc(nd, sizeof(float));
        gw[run] = calloc(WORDS * E, sizeof(float));
        gc[run] = calloc(CATS * H, sizeof(float));
        gu[run] = calloc(USERS * H, sizeof(float));
        DenseParams g;
        model_dense_bind(&g, &d, ga[run]);
        CU_ASSERT_EQUAL(model_train_step_grads(ws, &d, &p, word, catr, userr, &mb, &g, gw[run],
                                               gc[run], gu[run], &loss[run]),
                        0);
    }
    lstm_gemm_set_threads(1);
    CU_ASSERT(memcmp(&loss[0], &loss[1], sizeof loss[0]) == 0);
    CU_ASSERT(memcmp(ga[0], ga[1], nd * sizeof(float)) == 0);
    CU_ASSERT(memcmp(gw[0], gw[1], WORDS * E * sizeof(float)) == 0);
    CU_ASSERT(memcmp(gc[0], gc[1], CATS * H * sizeof(float)) == 0);
    CU_ASSERT(memcmp(gu[0], gu[1], USERS * H * sizeof(float)) == 0);
    int nonzero = 0; /* every word occurs: its gradient row is not all zero */
    for (int i = 0; i < WORDS * E; i++)
        nonzero += gw[0][i] != 0.0f;
    CU_ASSERT(nonzero > WORDS * E / 2);
    for (int run = 0; run < 2; run++) {
        free(ga[run]);
        free(gw[run]);
        free(gc[run]);
        free(gu[run]);
    }
    model_workspace_free(&ws);
    free(arena);
    free(word);
    free(catr);
    free(userr);
}

static void test_softmax_xent(void)
{
    float s[2 * 4] = {0.5f, 0.5f, 0.5f, 0.5f, 2.0f, -1.0f, 0.25f, 3.0f};
    float ds[2 * 4];
    double loss = model_softmax_xent(2, 4, s, ds);
    /* Row 0: uniform scores, loss log 4; row 1 by hand. */
    double z = exp(2.0) + exp(-1.0) + exp(0.25) + exp(3.0);
    CU_ASSERT_DOUBLE_EQUAL(loss, (log(4.0) + (log(z) - 2.0)) / 2.0, 1e-7);
    for (int b = 0; b < 2; b++) {
        double sum = 0.0;
        for (int c = 0; c < 4; c++)
            sum += ds[b * 4 + c];
        CU_ASSERT_DOUBLE_EQUAL(sum, 0.0, 1e-7);
    }
    for (int i = 0; i < 8; i++) {
        float keep = s[i];
        const float eps = 1e-2f;
        s[i] = keep + eps;
        double lp = model_softmax_xent(2, 4, s, NULL);
        s[i] = keep - eps;
        double lm = model_softmax_xent(2, 4, s, NULL);
        s[i] = keep;
        /* Double loss and exact float steps: only the O(eps^2) term (< 1e-5) remains. */
        CU_ASSERT_DOUBLE_EQUAL((lp - lm) / (2.0 * eps), ds[i], 1e-5);
    }
}

/* encode_news equals the LSTM over the title alone, averaged by hand, plus the category. */
static void test_masked_mean(void)
{
    Tiny t;
    tiny_init(&t, 9);
    float nv[T_NEWS * T_H];
    CU_ASSERT_EQUAL_FATAL(model_encode_news(t.ws, &t_dims, &t.p, t.word, t.cat, T_NEWS, t_tok,
                                            t_len, t_cat, nv), 0);
    double worst = 0.0;
    for (int n = 0; n < T_NEWS; n++) {
        int len = t_len[n], bs[T_L], off[T_L + 1];
        LstmPack pk;
        CU_ASSERT_EQUAL_FATAL(lstm_pack_init(&pk, &len, 1, T_L, bs, off), 0);
        float X[T_L * T_E], Hout[T_L * T_H], cache[T_L * 6 * T_H];
        for (int k = 0; k < len; k++)
            memcpy(X + k * T_E, t.word + t_tok[n * T_L + k] * T_E, T_E * sizeof(float));
        lstm_forward(&pk, T_E, T_H, X, NULL, t.p.news_Wih, t.p.news_Whh, t.p.news_b, Hout, cache);
        for (int j = 0; j < T_H; j++) {
            double m = 0.0;
            for (int k = 0; k < len; k++)
                m += Hout[k * T_H + j];
            m = m / len + t.cat[t_cat[n] * T_H + j];
            worst = fmax(worst, fabs(m - nv[n * T_H + j]));
        }
    }
    CU_ASSERT(worst <= 1e-6);
    /* Tokens past the length are never read: change them and nothing changes. */
    int tok2[T_NEWS * T_L];
    for (int i = 0; i < T_NEWS * T_L; i++)
        tok2[i] = (i % T_L) < t_len[i / T_L] ? t_tok[i] : 1000000;
    float nv2[T_NEWS * T_H];
    CU_ASSERT_EQUAL_FATAL(model_encode_news(t.ws, &t_dims, &t.p, t.word, t.cat, T_NEWS, tok2,
                                            t_len, t_cat, nv2), 0);
    CU_ASSERT_EQUAL(memcmp(nv, nv2, sizeof nv), 0);
    tiny_free(&t);
}

/* The eval path (encode news, encode users, score) reproduces the training loss. */
static void test_eval_path_matches_training(void)
{
    Tiny t;
    tiny_init(&t, 10);
    float loss = tiny_step(&t);
    float nv[T_NEWS * T_H], u[T_B * T_H], s[T_B * T_C];
    CU_ASSERT_EQUAL_FATAL(model_encode_news(t.ws, &t_dims, &t.p, t.word, t.cat, T_NEWS, t_tok,
                                            t_len, t_cat, nv), 0);
    CU_ASSERT_EQUAL_FATAL(model_encode_users(t.ws, &t_dims, &t.p, t.user, T_B, t_user, nv,
                                             T_NEWS, t_his, t_his_n, u), 0);
    /* Empty history: the user vector is the user row itself. */
    CU_ASSERT_EQUAL(memcmp(u + 1 * T_H, t.user + 1 * T_H, T_H * sizeof(float)), 0);
    for (int b = 0; b < T_B; b++)
        model_score(T_H, u + b * T_H, nv, T_C, t_cand + b * T_C, s + b * T_C);
    CU_ASSERT_DOUBLE_EQUAL(model_softmax_xent(T_B, T_C, s, NULL), loss, 1e-6);
    tiny_free(&t);
}

static void test_rejects_bad_batches(void)
{
    Tiny t;
    tiny_init(&t, 11);
    ModelBatch b = tiny_batch();
    float loss;
    int rc;
#define STEP(bb) model_train_step_grads(t.ws, &t_dims, &t.p, t.word, t.cat, t.user, &(bb), &t.g, \
                                        t.gword, t.gcat, t.guser, &loss)
    ModelBatch big = b;
    big.B = T_B + 1; /* more samples than the workspace holds */
    CU_ASSERT_EQUAL(STEP(big), PSREC_E_RANGE);
    ModelBatch few = b;
    few.n_news = 5; /* news 5 is referenced */
    CU_ASSERT_EQUAL(STEP(few), PSREC_E_RANGE);
    int lens[T_NEWS];
    memcpy(lens, t_len, sizeof lens);
    lens[2] = T_L + 1;
    ModelBatch longer = b;
    longer.news_len = lens;
    CU_ASSERT_EQUAL(STEP(longer), PSREC_E_RANGE);
    ModelBatch words = b;
    words.n_words = 6; /* word 6 is used by news 2 and 4 */
    CU_ASSERT_EQUAL(STEP(words), PSREC_E_RANGE);
#undef STEP
    /* Nothing was written by the rejected calls. */
    for (size_t i = 0; i < model_dense_floats(&t_dims); i++)
        CU_ASSERT_EQUAL(t.garena[i], 0.0f);
    ModelDims other = t_dims;
    other.H = 5;
    rc = model_encode_news(t.ws, &other, &t.p, t.word, t.cat, 1, t_tok, t_len, t_cat, t.cat);
    CU_ASSERT_EQUAL(rc, PSREC_E_RANGE);
    tiny_free(&t);
}

static void test_init(void)
{
    ModelDims d = {8, 16, 4, 4, 1};
    size_t n = model_dense_floats(&d);
    CU_ASSERT_EQUAL(n, (size_t)(8 * 64 + 16 * 64 + 64 + 16 * 64 + 16 * 64 + 64));
    float *a = malloc(n * sizeof(float));
    DenseParams p;
    model_dense_bind(&p, &d, a);
    CU_ASSERT_PTR_EQUAL(p.news_Wih, a);
    CU_ASSERT_PTR_EQUAL(p.user_b + 64, a + n);
    Rng rng;
    rng_seed(&rng, 5);
    model_init_dense(&p, &d, &rng);
    double k = 0.25; /* 1/sqrt(16) */
    float wmax = 0.0f, bmax = 0.0f;
    for (int i = 0; i < 8 * 64; i++)
        wmax = fmaxf(wmax, fabsf(p.news_Wih[i]));
    for (int i = 0; i < 64; i++)
        bmax = fmaxf(fmaxf(bmax, fabsf(p.news_b[i])), fabsf(p.user_b[i]));
    CU_ASSERT(wmax <= k && wmax > 0.9 * k);
    /* The sum of two U(-k, k) spreads past k (P = 1/4 per entry) but never past 2k. */
    CU_ASSERT(bmax > k && bmax <= 2 * k);
    free(a);

    float row[20000];
    model_init_embedding_row(row, 20000, &rng);
    double s = 0.0, s2 = 0.0;
    for (int i = 0; i < 20000; i++) {
        s += row[i];
        s2 += (double)row[i] * row[i];
    }
    double mean = s / 20000, sd = sqrt(s2 / 20000 - mean * mean);
    CU_ASSERT(fabs(mean) < 0.005);
    CU_ASSERT(fabs(sd - 0.1) < 0.003);
}

/* ------------------------------------------------------------------ golden fixture */

typedef struct Tensor {
    char name[32];
    int ndim, dims[4];
    size_t n;
    double *v;
} Tensor;

typedef struct Golden {
    Tensor t[40];
    int n;
} Golden;

static const Tensor *golden_get(const Golden *g, const char *name)
{
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->t[i].name, name))
            return &g->t[i];
    fprintf(stderr, "golden: no tensor %s\n", name);
    CU_FAIL_FATAL("golden tensor missing");
    return NULL;
}

static int golden_load(Golden *g, const char *path)
{
    char *text = tu_read_file(path, NULL);
    if (!text)
        return -1;
    memset(g, 0, sizeof *g);
    char *save = NULL;
    char *tok = strtok_r(text, " \n", &save);
    int ok = tok && !strcmp(tok, "psrec-golden");
    tok = strtok_r(NULL, " \n", &save);
    ok = ok && tok && !strcmp(tok, "1");
    while (ok && (tok = strtok_r(NULL, " \n", &save)) != NULL) {
        if (g->n == 40) {
            ok = 0;
            break;
        }
        Tensor *t = &g->t[g->n++];
        snprintf(t->name, sizeof t->name, "%s", tok);
        tok = strtok_r(NULL, " \n", &save);
        t->ndim = tok ? atoi(tok) : -1;
        ok = t->ndim >= 0 && t->ndim <= 4;
        t->n = 1;
        for (int k = 0; ok && k < t->ndim; k++) {
            tok = strtok_r(NULL, " \n", &save);
            t->dims[k] = tok ? atoi(tok) : -1;
            ok = t->dims[k] >= 0;
            t->n *= (size_t)(ok ? t->dims[k] : 0);
        }
        t->v = ok ? malloc((t->n ? t->n : 1) * sizeof(double)) : NULL;
        for (size_t i = 0; ok && i < t->n; i++) {
            tok = strtok_r(NULL, " \n", &save);
            ok = tok != NULL;
            if (ok)
                t->v[i] = strtod(tok, NULL);
        }
    }
    free(text);
    return ok ? 0 : -1;
}

static void golden_free(Golden *g)
{
    for (int i = 0; i < g->n; i++)
        free(g->t[i].v);
}

/* News lookup over the fixture's news table. */
typedef struct NewsTable {
    const Tensor *tok, *len, *cat;
    uint32_t buf[64];
} NewsTable;

static int news_lookup(void *ctx, uint32_t id, BatchNews *out)
{
    NewsTable *nt = ctx;
    int L = nt->tok->dims[1];
    if (id >= (uint32_t)nt->tok->dims[0])
        return PSREC_E_NOTFOUND;
    for (int k = 0; k < L; k++)
        nt->buf[k] = (uint32_t)nt->tok->v[(size_t)id * L + k];
    out->tokens = nt->buf;
    out->ntok = (uint32_t)nt->len->v[id];
    out->category = (uint32_t)nt->cat->v[id];
    return 0;
}

static double compare(const char *name, const float *c, const Tensor *want)
{
    double scale = 0.0, err = 0.0;
    for (size_t i = 0; i < want->n; i++) {
        scale = fmax(scale, fabs(want->v[i]));
        err = fmax(err, fabs(c[i] - want->v[i]));
    }
    double rel = scale > 0 ? err / scale : err;
    printf("\n    %-14s max|c-torch| %.2e  max|torch| %.2e  ratio %.2e", name, err, scale, rel);
    CU_ASSERT(scale > 0.0);
    CU_ASSERT(rel <= GOLDEN_TOL);
    return rel;
}

static void test_golden(void)
{
    Golden gd;
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fixtures/golden_tiny.txt", TU_SRCDIR);
    CU_ASSERT_EQUAL_FATAL(golden_load(&gd, path), 0);
    const Tensor *dims = golden_get(&gd, "dims");
    CU_ASSERT_EQUAL_FATAL(dims->n, 10);
    const int E = (int)dims->v[1], H = (int)dims->v[2];
    const ModelDims d = {E, H, (int)dims->v[3], (int)dims->v[4], (int)dims->v[5]};
    const int B = (int)dims->v[6], C = d.K + 1;

    /* Dedup the global batch the way the training loop will. */
    BatchBuilder *bb = NULL;
    CU_ASSERT_EQUAL_FATAL(batch_builder_new(&bb, &d, B), 0);
    const Tensor *users = golden_get(&gd, "users"), *his = golden_get(&gd, "his");
    const Tensor *his_n = golden_get(&gd, "his_n"), *cand = golden_get(&gd, "cand");
    uint32_t gu[16], gh[64], gc[64];
    int hn[16];
    for (int b = 0; b < B; b++) {
        gu[b] = (uint32_t)users->v[b];
        hn[b] = (int)his_n->v[b];
    }
    for (size_t i = 0; i < his->n; i++)
        gh[i] = (uint32_t)his->v[i];
    for (size_t i = 0; i < cand->n; i++)
        gc[i] = (uint32_t)cand->v[i];
    NewsTable nt = {golden_get(&gd, "news_tok"), golden_get(&gd, "news_len"),
                    golden_get(&gd, "news_cat"), {0}};
    ModelBatch mb;
    BatchKeys keys;
    CU_ASSERT_EQUAL_FATAL(batch_build(bb, B, gu, gh, hn, gc, news_lookup, &nt, &mb, &keys), 0);

    /* Pull: local rows from the full tables. */
    const Tensor *word = golden_get(&gd, "word"), *cat = golden_get(&gd, "cat");
    const Tensor *user = golden_get(&gd, "user");
    float *wr = malloc((size_t)keys.n_words * E * sizeof(float));
    float *cr = malloc((size_t)keys.n_cats * H * sizeof(float));
    float *ur = malloc((size_t)keys.n_users * H * sizeof(float));
    for (int i = 0; i < keys.n_words; i++)
        for (int j = 0; j < E; j++)
            wr[(size_t)i * E + j] = (float)word->v[(size_t)keys.words[i] * E + j];
    for (int i = 0; i < keys.n_cats; i++)
        for (int j = 0; j < H; j++)
            cr[(size_t)i * H + j] = (float)cat->v[(size_t)keys.cats[i] * H + j];
    for (int i = 0; i < keys.n_users; i++)
        for (int j = 0; j < H; j++)
            ur[(size_t)i * H + j] = (float)user->v[(size_t)keys.users[i] * H + j];

    DenseLayout l;
    model_dense_layout(&d, &l);
    float *arena = malloc(l.total * sizeof(float)), *garena = calloc(l.total, sizeof(float));
    DenseParams p, g;
    model_dense_bind(&p, &d, arena);
    model_dense_bind(&g, &d, garena);
    const char *names[6] = {"news_Wih", "news_Whh", "news_b", "user_Wih", "user_Whh", "user_b"};
    float *dst[6] = {p.news_Wih, p.news_Whh, p.news_b, p.user_Wih, p.user_Whh, p.user_b};
    size_t offs[7] = {l.news_Wih, l.news_Whh, l.news_b, l.user_Wih, l.user_Whh, l.user_b, l.total};
    for (int k = 0; k < 6; k++) {
        const Tensor *t = golden_get(&gd, names[k]);
        CU_ASSERT_EQUAL_FATAL(t->n, offs[k + 1] - offs[k]);
        for (size_t i = 0; i < t->n; i++)
            dst[k][i] = (float)t->v[i];
    }

    ModelWorkspace *ws = NULL;
    CU_ASSERT_EQUAL_FATAL(model_workspace_new(&ws, &d, B, 0, 0), 0);
    float *gw = calloc((size_t)keys.n_words * E, sizeof(float));
    float *gcat = calloc((size_t)keys.n_cats * H, sizeof(float));
    float *guser = calloc((size_t)keys.n_users * H, sizeof(float));
    float loss = NAN;
    CU_ASSERT_EQUAL_FATAL(model_train_step_grads(ws, &d, &p, wr, cr, ur, &mb, &g, gw, gcat, guser,
                                                 &loss), 0);
    double worst = 0.0;
    const Tensor *want_loss = golden_get(&gd, "loss");
    worst = fmax(worst, compare("loss", &loss, want_loss));

    /* Scores through the eval path. */
    float *nv = malloc((size_t)mb.n_news * H * sizeof(float));
    float u[16 * 64], s[16 * 8];
    CU_ASSERT_EQUAL_FATAL(model_encode_news(ws, &d, &p, wr, cr, mb.n_news, mb.news_tok,
                                            mb.news_len, mb.news_cat, nv), 0);
    CU_ASSERT_EQUAL_FATAL(model_encode_users(ws, &d, &p, ur, B, mb.user, nv, mb.n_news, mb.his,
                                             mb.his_n, u), 0);
    for (int b = 0; b < B; b++)
        model_score(H, u + (size_t)b * H, nv, C, mb.cand + (size_t)b * C, s + (size_t)b * C);
    worst = fmax(worst, compare("scores", s, golden_get(&gd, "scores")));

    /* Push: scatter local row gradients to full tables. */
    float *fw = calloc(word->n, sizeof(float)), *fc = calloc(cat->n, sizeof(float));
    float *fu = calloc(user->n, sizeof(float));
    for (int i = 0; i < keys.n_words; i++)
        for (int j = 0; j < E; j++)
            fw[(size_t)keys.words[i] * E + j] += gw[(size_t)i * E + j];
    for (int i = 0; i < keys.n_cats; i++)
        for (int j = 0; j < H; j++)
            fc[(size_t)keys.cats[i] * H + j] += gcat[(size_t)i * H + j];
    for (int i = 0; i < keys.n_users; i++)
        for (int j = 0; j < H; j++)
            fu[(size_t)keys.users[i] * H + j] += guser[(size_t)i * H + j];
    worst = fmax(worst, compare("grad_word", fw, golden_get(&gd, "grad_word")));
    worst = fmax(worst, compare("grad_cat", fc, golden_get(&gd, "grad_cat")));
    worst = fmax(worst, compare("grad_user", fu, golden_get(&gd, "grad_user")));
    float *gsrc[6] = {g.news_Wih, g.news_Whh, g.news_b, g.user_Wih, g.user_Whh, g.user_b};
    for (int k = 0; k < 6; k++) {
        char gname[32];
        snprintf(gname, sizeof gname, "grad_%s", names[k]);
        worst = fmax(worst, compare(gname, gsrc[k], golden_get(&gd, gname)));
    }
    printf("\n    worst ratio %.2e (tolerance %.0e)\n   ", worst, GOLDEN_TOL);

    free(fw);
    free(fc);
    free(fu);
    free(nv);
    free(gw);
    free(gcat);
    free(guser);
    model_workspace_free(&ws);
    CU_ASSERT_PTR_NULL(ws);
    free(arena);
    free(garena);
    free(wr);
    free(cr);
    free(ur);
    batch_builder_free(&bb);
    golden_free(&gd);
}

/* ------------------------------------------------------------------ batch (dedup) */

/* News g has g % 4 + 1 tokens: words 100+g, 100+2g, ...; category g % 3. News 999 is never a
 * valid lookup (it only sits in history padding) and 998 has no token. */
typedef struct Lookup {
    int calls;
    uint32_t buf[16];
} Lookup;

static int lookup(void *ctx, uint32_t id, BatchNews *out)
{
    Lookup *lk = ctx;
    lk->calls++;
    if (id == 999)
        return PSREC_E_NOTFOUND;
    uint32_t n = id == 998 ? 0 : id % 4 + 1;
    for (uint32_t k = 0; k < n; k++)
        lk->buf[k] = 100 + (k + 1) * id;
    out->ntok = n;
    out->tokens = lk->buf;
    out->category = id % 3;
    return 0;
}

static void test_batch_dedup(void)
{
    const ModelDims d = {4, 4, 3, 3, 1}; /* title_len 3, his_len 3, C = 2 */
    BatchBuilder *bb = NULL;
    CU_ASSERT_EQUAL_FATAL(batch_builder_new(&bb, &d, 3), 0);
    uint32_t users[3] = {42, 7, 42};
    uint32_t his[9] = {3, 5, 999, 999, 999, 999, 5, 8, 999};
    int his_n[3] = {2, 0, 2};
    uint32_t cand[6] = {5, 11, 3, 0, 8, 3};
    Lookup lk = {0, {0}};
    ModelBatch b;
    BatchKeys k;
    CU_ASSERT_EQUAL_FATAL(batch_build(bb, 3, users, his, his_n, cand, lookup, &lk, &b, &k), 0);
    /* Distinct news 3, 5, 11, 0, 8: one lookup each, first-seen order. */
    CU_ASSERT_EQUAL(b.n_news, 5);
    CU_ASSERT_EQUAL(lk.calls, 5);
    uint32_t want_news[5] = {3, 5, 11, 0, 8};
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(k.news[i], want_news[i]);
    CU_ASSERT_EQUAL(b.n_users, 2);
    CU_ASSERT_EQUAL(k.users[b.user[0]], 42);
    CU_ASSERT_EQUAL(k.users[b.user[1]], 7);
    CU_ASSERT_EQUAL(b.user[0], b.user[2]);
    /* Every local reference maps back to its global id. */
    for (int s = 0; s < 3; s++) {
        CU_ASSERT_EQUAL(b.his_n[s], his_n[s]);
        for (int t = 0; t < his_n[s]; t++)
            CU_ASSERT_EQUAL(k.news[b.his[s * 3 + t]], his[s * 3 + t]);
        for (int c = 0; c < 2; c++)
            CU_ASSERT_EQUAL(k.news[b.cand[s * 2 + c]], cand[s * 2 + c]);
    }
    /* Titles: news 11 has 4 tokens, cut to title_len 3; words map back. */
    for (int i = 0; i < b.n_news; i++) {
        uint32_t gid = k.news[i];
        int n = (int)(gid % 4 + 1) > 3 ? 3 : (int)(gid % 4 + 1);
        CU_ASSERT_EQUAL(b.news_len[i], n);
        CU_ASSERT_EQUAL(k.cats[b.news_cat[i]], gid % 3);
        for (int t = 0; t < n; t++)
            CU_ASSERT_EQUAL(k.words[b.news_tok[i * 3 + t]], 100 + (t + 1) * gid);
    }
    /* No two local words share a global id. */
    int distinct = 0;
    for (int i = 0; i < k.n_words; i++)
        for (int j = 0; j < i; j++)
            distinct += k.words[i] == k.words[j];
    CU_ASSERT_EQUAL(distinct, 0);
    CU_ASSERT_EQUAL(k.n_cats, 2); /* categories 3 % 3 = 0 and 5 % 3 = 2 */

    /* A second batch reuses the builder: ids start over. */
    uint32_t users2[1] = {7};
    uint32_t his2[3] = {8, 999, 999};
    int his_n2[1] = {1};
    uint32_t cand2[2] = {8, 5};
    CU_ASSERT_EQUAL_FATAL(batch_build(bb, 1, users2, his2, his_n2, cand2, lookup, &lk, &b, &k),
                          0);
    CU_ASSERT_EQUAL(b.n_news, 2);
    CU_ASSERT_EQUAL(k.news[0], 8);
    CU_ASSERT_EQUAL(b.n_users, 1);
    CU_ASSERT_EQUAL(b.cand[0], b.his[0]);

    /* Errors: the callback's, a news without tokens, too many samples, bad history length. */
    uint32_t bad[2] = {999, 5};
    CU_ASSERT_EQUAL(batch_build(bb, 1, users2, his2, his_n2, bad, lookup, &lk, &b, &k),
                    PSREC_E_NOTFOUND);
    uint32_t empty[2] = {998, 5};
    CU_ASSERT_EQUAL(batch_build(bb, 1, users2, his2, his_n2, empty, lookup, &lk, &b, &k),
                    PSREC_E_RANGE);
    CU_ASSERT_EQUAL(batch_build(bb, 4, users, his, his_n, cand, lookup, &lk, &b, &k),
                    PSREC_E_RANGE);
    int his_bad[1] = {4};
    CU_ASSERT_EQUAL(batch_build(bb, 1, users2, his2, his_bad, cand2, lookup, &lk, &b, &k),
                    PSREC_E_RANGE);
    batch_builder_free(&bb);
    CU_ASSERT_PTR_NULL(bb);
}

int main(void)
{
    static const TuTest model_tests[] = {
        {"fd_whole_model_every_group", test_fd_whole_model},
        {"grads_accumulate", test_grads_accumulate},
        {"threads_bit_identical", test_threads_bit_identical},
        {"softmax_xent", test_softmax_xent},
        {"masked_mean", test_masked_mean},
        {"eval_path_matches_training", test_eval_path_matches_training},
        {"rejects_bad_batches", test_rejects_bad_batches},
        {"init", test_init},
        {"golden_vs_pytorch", test_golden},
        {NULL, NULL},
    };
    static const TuTest batch_tests[] = {
        {"dedup", test_batch_dedup},
        {NULL, NULL},
    };
    tu_add_suite("model", model_tests);
    tu_add_suite("batch", batch_tests);
    return tu_run_all();
}
