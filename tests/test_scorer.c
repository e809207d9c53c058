/* Tests of gathered gates (worker/lstm.h lstm_input_gates + lstm_forward_gates, and the
 * scorer's gathered paths, worker/scorer.h) against the plain forward they replace:
 *   - lstm_forward_gates on rows projected once per distinct input equals lstm_forward on the
 *     gathered inputs, for ragged lengths (empty sequences included), with and without h0,
 *     H a multiple of 8 and not (the vector and the scalar gate math), both kernel modes;
 *   - the scorer's news matrix and user vectors equal the plain path's on a `psrec gen` set
 *     (histories empty, short and longer than his_len), with a trained model;
 *   - eval_run's metrics and prediction ranks equal the plain path's (EvalOptions.plain);
 *   - eval_run's encoding of each distinct (user, history) once per block gives the metrics and
 *     predictions of evaluating every impression alone (one-impression ranges, no sharing).
 * Tolerances: the same kernels compute the same sums, only their association differs
 * (h.W_hh + (x.W_ih + b) against (x.W_ih + h.W_hh) + b), so vectors agree to 2e-6 (seen:
 * 5e-7 at T 17, H 128) and metrics to 1e-6. One step from a zero state has no recurrence
 * term, so there, with the vector kernels, the inference gate math (AVX-512) must equal the
 * training one (AVX2) bit for bit: the same polynomials, lane for lane. */
#include "common/dataset.h"
#include "common/error.h"
#include "common/metrics.h"
#include "common/rng.h"
#include "launch/inproc.h"
#include "server/shard.h"
#include "testutil/testutil.h"
#include "worker/eval.h"
#include "worker/lstm.h"
#include "worker/lstm_gemm.h"
#include "worker/scorer.h"
#include "worker/train.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 2e-6

static float *randv(size_t n, float scale, Rng *rng)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)((2.0 * rng_uniform(rng) - 1.0) * scale);
    return v;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        m = d > m || d != d ? d : m;
    }
    return m;
}

/* B sequences of the given sorted lengths over a table of V distinct inputs: the plain
 * forward on the gathered inputs against the gathered gates of the projected table. */
static void gates_case(int In, int H, int B, const int *lens, int V, int use_h0, uint64_t seed,
                       double tol)
{
    Rng rng;
    rng_seed(&rng, seed);
    int bs[40], off[41];
    LstmPack pk;
    CU_ASSERT_EQUAL_FATAL(lstm_pack_init(&pk, lens, B, 40, bs, off), 0);
    const int N = pk.N, H4 = 4 * H;
    float *table = randv((size_t)V * In, 1.0f, &rng);
    float *Wih = randv((size_t)In * H4, 0.4f, &rng), *Whh = randv((size_t)H * H4, 0.4f, &rng);
    float *b = randv((size_t)H4, 0.5f, &rng);
    float *h0 = use_h0 ? randv((size_t)B * H, 0.8f, &rng) : NULL;
    int *which = malloc(((size_t)N + 1) * sizeof *which);
    float *X = malloc(((size_t)N * In + 1) * sizeof *X);
    for (int i = 0; i < N; i++) {
        which[i] = (int)(rng_uniform(&rng) * V) % V;
        memcpy(X + (size_t)i * In, table + (size_t)which[i] * In, (size_t)In * sizeof *X);
    }
    float *H1 = calloc((size_t)N * H + 1, sizeof *H1), *H2 = calloc((size_t)N * H + 1, sizeof *H2);
    float *cache = calloc(lstm_cache_floats(N, H) + 1, sizeof *cache);
    lstm_forward(&pk, In, H, X, h0, Wih, Whh, b, H1, cache);

    float *P = malloc((size_t)V * H4 * sizeof *P);
    lstm_input_gates(V, In, H, table, Wih, b, P);
    float *G = malloc(((size_t)B * H4 + 1) * sizeof *G), *c = malloc((size_t)B * H * sizeof *c);
    lstm_forward_gates(&pk, H, P, which, h0, Whh, G, H2, c, 0);
    double d = max_abs_diff(H1, H2, (size_t)N * H);
    printf(" [In %d H %d N %d h0 %d: max |dH| %.1e]", In, H, N, use_h0, d);
    CU_ASSERT(d <= tol);
    /* Not trivially equal: the states are far from zero. */
    float *zero = calloc((size_t)N * H + 1, sizeof *zero);
    CU_ASSERT(N == 0 || max_abs_diff(H1, zero, (size_t)N * H) > 0.1);
    free(zero);
    float *bufs[] = {table, Wih, Whh, b, h0, X, H1, H2, cache, P, G, c};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(which);
}

/* vec: the vector kernels are on (lstm_set_simd(1) returned 1). Only then is the one-step
 * case exact: cblas_sgemm (the scalar mode's GEMM) may block 9 rows unlike 16. */
static void gates_all_cases(int vec)
{
    const int ragged[] = {17, 13, 13, 9, 5, 5, 3, 1, 1, 0, 0};
    const int one[] = {4};
    const int empty[] = {0, 0};
    const int step1[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    gates_case(16, 16, 11, ragged, 7, 0, 1, TOL);
    gates_case(16, 16, 11, ragged, 7, 1, 2, TOL);
    gates_case(24, 40, 11, ragged, 300, 1, 3, TOL);
    gates_case(12, 13, 11, ragged, 5, 1, 4, TOL);   /* H % 8 != 0: the scalar tail */
    gates_case(128, 128, 11, ragged, 50, 0, 5, TOL); /* the reference E = H */
    gates_case(8, 8, 1, one, 2, 1, 6, TOL);
    gates_case(8, 8, 2, empty, 2, 1, 7, TOL);       /* N = 0: nothing to do, nothing touched */
    gates_case(128, 128, 16, step1, 9, 0, 8, vec ? 0.0 : TOL); /* one step from zero */
    gates_case(20, 48, 16, step1, 9, 0, 9, vec ? 0.0 : TOL);
}

static void test_gates_equal_forward(void)
{
    int was = lstm_set_simd(1);
    gates_all_cases(was);
    lstm_set_simd(0);
    gates_all_cases(0);
    lstm_set_simd(1);
    /* 2 threads over 700 sequences: each step's GEMM and gate math split in chunks of rows
     * (both paths), which must not mix up rows. */
    static int many[700];
    for (int i = 0; i < 700; i++)
        many[i] = 12 - i * 12 / 700; /* 12 down to 1 */
    lstm_gemm_set_threads(2);
    gates_case(32, 64, 700, many, 60, 1, 10, TOL);
    lstm_gemm_set_threads(1);
}

/* ------------------------------------------------------------------ scorer and eval */

static char dir[4096];
static Dataset *dev;
static Shard *shard;
static PsClient ps;
static const ModelDims dims = {.E = 24, .H = 40, .title_len = 12, .his_len = 15, .K = 4};

static int setup(void)
{
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("scorer"));
    if (tu_small_experiment(dir, 2, "") != 0)
        return 1;
    char p[4200];
    Dataset *train;
    snprintf(p, sizeof p, "%s/train.db", dir);
    if (dataset_open(p, &train))
        return 1;
    snprintf(p, sizeof p, "%s/dev.db", dir);
    if (dataset_open(p, &dev))
        return 1;
    openblas_set_num_threads(1);
    const DatasetMeta *m = dataset_meta(train);
    ShardOptions so = {.shape = {.E = (uint32_t)dims.E, .H = (uint32_t)dims.H,
                                 .vocab_rows = m->vocab_rows, .category_rows = m->category_rows,
                                 .user_rows = m->user_rows},
                       .optim = {.kind = OPTIM_ADAM, .lr = 0.003f, .beta1 = 0.9f,
                                 .beta2 = 0.999f, .eps = 1e-8f},
                       .seed = 1};
    if (shard_new(&so, &shard))
        return 1;
    inproc_client_init(&ps, shard);
    /* One epoch: weights away from their initial scale, scores far from ties. */
    TrainOptions to = {.batch_size = 32, .epochs = 1, .seed = 1, .rank = 0, .world = 1,
                       .train = train, .ps = &ps, .dims = dims};
    TrainResult res;
    int rc = train_run(&to, &res);
    dataset_free(&train);
    return rc;
}

static void teardown(void)
{
    dataset_free(&dev);
    shard_free(&shard);
    tu_rmtree(dir);
}

/* Histories of the dev set's first n impressions, plus hand-made ones: empty, one click, and
 * more clicks than his_len. */
static void test_scorer_equal_plain(void)
{
    enum { NU = 64 };
    const DatasetMeta *m = dataset_meta(dev);
    DatasetTxn *txn;
    CU_ASSERT_FATAL(dataset_txn_new(dev, &txn) == 0);
    Scorer *a, *b;
    CU_ASSERT_FATAL(scorer_new(&a, &dims, &ps, m->news_rows, NU) == 0);
    CU_ASSERT_FATAL(scorer_new(&b, &dims, &ps, m->news_rows, NU) == 0);
    scorer_set_gathered(b, 0);
    CU_ASSERT_FATAL(scorer_encode_news(a, txn) == 0);
    CU_ASSERT_FATAL(scorer_encode_news(b, txn) == 0);
    const size_t H = (size_t)dims.H, nn = m->news_rows * H;
    double dn = max_abs_diff(scorer_news_vecs(a), scorer_news_vecs(b), nn);
    double scale = max_abs_diff(scorer_news_vecs(b), scorer_news_vecs(b) + H, nn - H);
    printf(" [news: max |d| %.1e, spread %.2f]", dn, scale);
    CU_ASSERT(dn <= TOL);
    CU_ASSERT(scale > 0.05);
    CU_ASSERT_FATAL(scorer_project_news(a) == 0);
    CU_ASSERT_FATAL(scorer_project_news(b) == 0); /* off: a no-op, the plain path stays */

    uint32_t user[NU], nhis[NU], longh[40];
    const uint32_t *his[NU];
    for (uint32_t k = 0; k < 40; k++)
        longh[k] = (k * 7919u) % (uint32_t)m->news_rows;
    for (int i = 0; i < NU; i++) {
        ImpressionView iv;
        CU_ASSERT_FATAL(dataset_get_impression(txn, (uint64_t)i, &iv) == 0);
        user[i] = iv.user;
        his[i] = iv.his;
        nhis[i] = iv.nhis;
    }
    nhis[1] = 0;
    nhis[2] = nhis[2] ? 1 : 0;
    his[3] = longh;
    nhis[3] = 40;
    his[4] = longh;
    nhis[4] = (uint32_t)dims.his_len;
    float ua[NU * 40], ub[NU * 40];
    CU_ASSERT_FATAL(scorer_encode_users(a, NU, user, his, nhis, ua) == 0);
    CU_ASSERT_FATAL(scorer_encode_users(b, NU, user, his, nhis, ub) == 0);
    double du = max_abs_diff(ua, ub, NU * H);
    printf(" [users: max |d| %.1e]", du);
    CU_ASSERT(du <= TOL);
    /* A smaller call (another packing) gives each user the same vector. */
    CU_ASSERT_FATAL(scorer_encode_users(a, 5, user, his, nhis, ub) == 0);
    CU_ASSERT(max_abs_diff(ua, ub, 5 * H) <= TOL);
    scorer_free(&a);
    scorer_free(&b);
    dataset_txn_free(&txn);
}

/* eval_run over the dev set, whole (one_by_one = 0) or one impression per call. */
static void run_eval(int plain, int one_by_one, MetricsResult *r, const char *pred)
{
    FILE *f = fopen(pred, "w");
    CU_ASSERT_FATAL(f != NULL);
    EvalOptions eo = {.dims = dims, .data = dev, .ps = &ps, .begin = 0, .end = UINT64_MAX,
                      .predictions = f, .plain = plain};
    MetricsAcc acc;
    metrics_acc_init(&acc);
    EvalStats st;
    uint64_t total = 0;
    for (uint64_t i = 0; i < (one_by_one ? 500u : 1u); i++) {
        if (one_by_one) {
            eo.begin = i;
            eo.end = i + 1;
        }
        CU_ASSERT_FATAL(eval_run(&eo, &acc, &st) == 0);
        total += st.impressions;
    }
    fclose(f);
    metrics_result(&acc, r);
    CU_ASSERT(total == 500);
}

static void compare_files(const char *pa, const char *pb)
{
    char *ta = tu_read_file(pa, NULL), *tb = tu_read_file(pb, NULL);
    CU_ASSERT_FATAL(ta && tb);
    CU_ASSERT_STRING_EQUAL(ta, tb);
    free(ta);
    free(tb);
}

static void test_eval_equal_plain(void)
{
    char pa[4200], pb[4200];
    snprintf(pa, sizeof pa, "%s/pred-gathered.txt", dir);
    snprintf(pb, sizeof pb, "%s/pred-plain.txt", dir);
    MetricsResult a, b;
    run_eval(0, 0, &a, pa);
    run_eval(1, 0, &b, pb);
    printf(" [AUC %.6f/%.6f MRR %.6f/%.6f nDCG@10 %.6f/%.6f]", a.auc, b.auc, a.mrr, b.mrr,
           a.ndcg10, b.ndcg10);
    CU_ASSERT(a.impressions == b.impressions && a.impressions > 400);
    CU_ASSERT(fabs(a.auc - b.auc) <= 1e-6);
    CU_ASSERT(fabs(a.mrr - b.mrr) <= 1e-6);
    CU_ASSERT(fabs(a.ndcg5 - b.ndcg5) <= 1e-6);
    CU_ASSERT(fabs(a.ndcg10 - b.ndcg10) <= 1e-6);
    CU_ASSERT(a.auc > 0.6); /* trained: the comparison is not between two chance rankings */
    compare_files(pa, pb);
}

/* The dev set repeats users (500 impressions, 208 users), with the same history each time,
 * and has empty histories of different users: sharing must keep them apart. */
static void test_eval_distinct_users(void)
{
    char pa[4200], pb[4200];
    snprintf(pa, sizeof pa, "%s/pred-block.txt", dir);
    snprintf(pb, sizeof pb, "%s/pred-alone.txt", dir);
    MetricsResult a, b;
    run_eval(0, 0, &a, pa);
    run_eval(0, 1, &b, pb);
    printf(" [AUC %.6f/%.6f MRR %.6f/%.6f]", a.auc, b.auc, a.mrr, b.mrr);
    CU_ASSERT(a.impressions == b.impressions);
    CU_ASSERT(fabs(a.auc - b.auc) <= 1e-6);
    CU_ASSERT(fabs(a.mrr - b.mrr) <= 1e-6);
    CU_ASSERT(fabs(a.ndcg5 - b.ndcg5) <= 1e-6);
    CU_ASSERT(fabs(a.ndcg10 - b.ndcg10) <= 1e-6);
    compare_files(pa, pb);
}

static void test_setup(void)
{
    CU_ASSERT_FATAL(setup() == 0);
}

int main(void)
{
    static const TuTest lstm_tests[] = {
        {"lstm_forward_gates equals lstm_forward (ragged, h0, both kernels)",
         test_gates_equal_forward},
        {NULL, NULL}};
    static const TuTest scorer_tests[] = {
        {"setup: gen data, one trained epoch", test_setup},
        {"gathered news and user vectors equal the plain path's", test_scorer_equal_plain},
        {"eval metrics and prediction ranks equal the plain path's", test_eval_equal_plain},
        {"eval's distinct users per block equal one impression at a time",
         test_eval_distinct_users},
        {NULL, NULL}};
    tu_add_suite("gathered gates", lstm_tests);
    tu_add_suite("scorer gathered vs plain", scorer_tests);
    int rc = tu_run_all();
    teardown();
    return rc;
}
