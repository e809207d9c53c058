/* Tests of worker/lstm: the packed step structure, gradients against central finite
 * differences, and that a packed variable-length batch equals each sequence run alone (so
 * padding is neither stored nor computed on).
 *
 * Gradient-check tolerance: the layer computes in float; the test perturbs one input by
 * eps = 1e-2 both ways, takes the loss L = sum(Wt .* Hout) in double, and requires
 * |analytic - numeric| <= 5e-4 + 5e-3 * |numeric| for every element. At these sizes (values
 * of order 0.1..1) the float rounding of L contributes ~1e-5 and the O(eps^2) truncation
 * ~1e-4, so a wrong term (errors of order 1e-1) cannot hide under it. No kinks exist
 * (sigmoid, tanh are smooth), so nothing is skipped. */
#include "testutil/testutil.h"

#include "common/error.h"
#include "common/rng.h"
#include "worker/lstm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FD_EPS 1e-2f
#define FD_ABS 5e-4
#define FD_REL 5e-3

/* One problem: sizes, lengths and every buffer forward/backward need. */
typedef struct Prob {
    int In, H, B, maxT;
    int lens[8];
    int bs[16], off[17];
    LstmPack pk;
    float *X, *h0, *Wih, *Whh, *b, *Hout, *cache, *Wt;
    float *dX, *dWih, *dWhh, *db, *dh0, *ws;
    int use_h0;
} Prob;

static float *randv(size_t n, float scale, Rng *rng)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)((2.0 * rng_uniform(rng) - 1.0) * scale);
    return v;
}

static void prob_init(Prob *p, int In, int H, int B, const int *lens, int use_h0, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    Rng rng;
    rng_seed(&rng, seed);
    p->In = In;
    p->H = H;
    p->B = B;
    p->maxT = 16;
    p->use_h0 = use_h0;
    memcpy(p->lens, lens, (size_t)B * sizeof *lens);
    int rc = lstm_pack_init(&p->pk, p->lens, B, p->maxT, p->bs, p->off);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    int N = p->pk.N, H4 = 4 * H;
    p->X = randv((size_t)N * In, 1.0f, &rng);
    p->h0 = use_h0 ? randv((size_t)B * H, 0.8f, &rng) : NULL;
    p->Wih = randv((size_t)In * H4, 0.6f, &rng);
    p->Whh = randv((size_t)H * H4, 0.6f, &rng);
    p->b = randv((size_t)H4, 0.5f, &rng);
    p->Wt = randv((size_t)N * H, 1.0f, &rng);
    p->Hout = calloc((size_t)N * H + 1, sizeof(float));
    p->cache = calloc(lstm_cache_floats(N, H) + 1, sizeof(float));
    p->dX = calloc((size_t)N * In + 1, sizeof(float));
    p->dWih = calloc((size_t)In * H4, sizeof(float));
    p->dWhh = calloc((size_t)H * H4, sizeof(float));
    p->db = calloc((size_t)H4, sizeof(float));
    p->dh0 = calloc((size_t)B * H, sizeof(float));
    p->ws = calloc(lstm_backward_ws_floats(B, H), sizeof(float));
}

static void prob_free(Prob *p)
{
    float *bufs[] = {p->X, p->h0, p->Wih, p->Whh, p->b, p->Hout, p->cache, p->Wt,
                     p->dX, p->dWih, p->dWhh, p->db, p->dh0, p->ws};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
}

static double prob_loss(Prob *p)
{
    lstm_forward(&p->pk, p->In, p->H, p->X, p->h0, p->Wih, p->Whh, p->b, p->Hout, p->cache);
    double L = 0.0;
    for (size_t i = 0; i < (size_t)p->pk.N * p->H; i++)
        L += (double)p->Wt[i] * p->Hout[i];
    return L;
}

static void prob_backward(Prob *p)
{
    prob_loss(p);
    lstm_backward(&p->pk, p->In, p->H, p->X, p->h0, p->Wih, p->Whh, p->Hout, p->cache, p->Wt,
                  p->dX, p->dWih, p->dWhh, p->db, p->dh0, p->ws);
}

/* Compare the analytic gradient grad (n) of parameter x (n) with central differences. */
static void check_grad(Prob *p, const char *name, float *x, const float *grad, size_t n)
{
    double worst = 0.0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + FD_EPS;
        double lp = prob_loss(p);
        x[i] = keep - FD_EPS;
        double lm = prob_loss(p);
        x[i] = keep;
        double num = (lp - lm) / (2.0 * FD_EPS);
        double err = fabs(num - grad[i]);
        double excess = err - (FD_ABS + FD_REL * fabs(num));
        if (excess > 0 && bad++ < 5)
            fprintf(stderr, "  %s[%zu]: analytic %.6g numeric %.6g\n", name, i, grad[i], num);
        if (err > worst)
            worst = err;
    }
    CU_ASSERT_EQUAL(bad, 0);
    printf(" [%s max abs err %.2e]", name, worst);
}

static void gradcheck(int In, int H, int B, const int *lens, int use_h0, uint64_t seed)
{
    Prob p;
    prob_init(&p, In, H, B, lens, use_h0, seed);
    prob_backward(&p);
    int N = p.pk.N, H4 = 4 * H;
    /* Copies: the checks re-run forward, which must not disturb the gradients under test. */
    size_t sizes[] = {(size_t)N * In, (size_t)In * H4, (size_t)H * H4, (size_t)H4, (size_t)B * H};
    float *src[] = {p.dX, p.dWih, p.dWhh, p.db, p.dh0};
    float *cp[5];
    for (int k = 0; k < 5; k++) {
        cp[k] = malloc((sizes[k] ? sizes[k] : 1) * sizeof(float));
        memcpy(cp[k], src[k], sizes[k] * sizeof(float));
    }
    check_grad(&p, "dX", p.X, cp[0], sizes[0]);
    check_grad(&p, "dWih", p.Wih, cp[1], sizes[1]);
    check_grad(&p, "dWhh", p.Whh, cp[2], sizes[2]);
    check_grad(&p, "db", p.b, cp[3], sizes[3]);
    if (use_h0)
        check_grad(&p, "dh0", p.h0, cp[4], sizes[4]);
    for (int k = 0; k < 5; k++)
        free(cp[k]);
    prob_free(&p);
}

static void test_pack(void)
{
    int lens[] = {5, 3, 1, 1, 0};
    int bs[8], off[9];
    LstmPack pk;
    CU_ASSERT_EQUAL_FATAL(lstm_pack_init(&pk, lens, 5, 8, bs, off), 0);
    CU_ASSERT_EQUAL(pk.T, 5);
    CU_ASSERT_EQUAL(pk.N, 10);
    int want_bs[] = {4, 2, 2, 1, 1}, want_off[] = {0, 4, 6, 8, 9, 10};
    for (int t = 0; t < 5; t++)
        CU_ASSERT_EQUAL(bs[t], want_bs[t]);
    for (int t = 0; t <= 5; t++)
        CU_ASSERT_EQUAL(off[t], want_off[t]);

    int empty[] = {0, 0};
    CU_ASSERT_EQUAL(lstm_pack_init(&pk, empty, 2, 8, bs, off), 0);
    CU_ASSERT_EQUAL(pk.T, 0);
    CU_ASSERT_EQUAL(pk.N, 0);

    int unsorted[] = {2, 3};
    CU_ASSERT_EQUAL(lstm_pack_init(&pk, unsorted, 2, 8, bs, off), PSREC_E_RANGE);
    int too_long[] = {9};
    CU_ASSERT_EQUAL(lstm_pack_init(&pk, too_long, 1, 8, bs, off), PSREC_E_RANGE);
}

static void test_gradcheck_h0(void)
{
    int lens[] = {5, 3, 1, 1};
    gradcheck(3, 4, 4, lens, 1, 11);
}

static void test_gradcheck_zero_state(void)
{
    int lens[] = {4, 4, 2, 1};
    gradcheck(3, 4, 4, lens, 0, 12);
}

static void test_gradcheck_empty_sequence(void)
{
    /* A length-0 sequence: no packed row, dh0 of its row must come out 0. */
    int lens[] = {3, 2, 0};
    gradcheck(2, 3, 3, lens, 1, 13);
    Prob p;
    prob_init(&p, 2, 3, 3, lens, 1, 13);
    for (int j = 0; j < 3; j++)
        p.dh0[2 * 3 + j] = 99.0f; /* must be overwritten */
    prob_backward(&p);
    for (int j = 0; j < 3; j++)
        CU_ASSERT_EQUAL(p.dh0[2 * 3 + j], 0.0f);
    prob_free(&p);
}

/* H = 10: the vector kernels take columns 0..7, the scalar tail 8..9; both checked, in both
 * kernel modes. */
static void test_gradcheck_vector_width(void)
{
    int lens[] = {4, 2, 1};
    int simd = lstm_set_simd(1);
    gradcheck(3, 10, 3, lens, 1, 14);
    lstm_set_simd(0);
    gradcheck(3, 10, 3, lens, 1, 14);
    lstm_set_simd(1);
    printf(" [vector kernels %s]", simd ? "on" : "unavailable");
}

/* The vector kernels agree with libm's: forward outputs to 1e-6, gradients to 1e-5 relative
 * to their scale, with pre-activations from -12 to 12 (saturated gates, both tanh branches).
 * H = 10: 8 columns 8-wide, 2 scalar; 20: 16 columns 16-wide (AVX-512), 4 scalar; 27: 16
 * 16-wide, 8 8-wide, 3 scalar. */
static void simd_matches_scalar(int H)
{
    int lens[] = {7, 5, 5, 3, 1};
    const int B = 5, In = 6, H4 = 4 * H;
    Prob a, b;
    prob_init(&a, In, H, B, lens, 1, 41);
    prob_init(&b, In, H, B, lens, 1, 41);
    for (int i = 0; i < H4; i++) {
        a.b[i] = (float)(i % 25) - 12.0f; /* spreads pre-activations over [-13, 13] */
        b.b[i] = a.b[i];
    }
    lstm_set_simd(0);
    prob_backward(&a);
    int simd = lstm_set_simd(1);
    prob_backward(&b);
    const int N = a.pk.N;
    double eh = 0.0, eg = 0.0, gscale = 0.0;
    for (size_t i = 0; i < (size_t)N * H; i++)
        eh = fmax(eh, fabs(a.Hout[i] - b.Hout[i]));
    const float *ga[] = {a.dX, a.dWih, a.dWhh, a.db, a.dh0};
    const float *gb[] = {b.dX, b.dWih, b.dWhh, b.db, b.dh0};
    size_t n[] = {(size_t)N * In, (size_t)In * H4, (size_t)H * H4, (size_t)H4, (size_t)B * H};
    for (int k = 0; k < 5; k++)
        for (size_t i = 0; i < n[k]; i++) {
            eg = fmax(eg, fabs(ga[k][i] - gb[k][i]));
            gscale = fmax(gscale, fabs(ga[k][i]));
        }
    CU_ASSERT(eh <= 1e-6);
    CU_ASSERT(eg <= 1e-5 * gscale);
    CU_ASSERT(gscale > 0.0);
    printf(" [vector kernels %s: h %.1e, grads %.1e of %.1e]", simd ? "on" : "unavailable", eh, eg,
           gscale);
    prob_free(&a);
    prob_free(&b);
}

static void test_simd_matches_scalar(void)
{
    static const int widths[] = {10, 20, 27};
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++)
        simd_matches_scalar(widths[i]);
}

/* The packed batch equals each sequence alone (forward outputs to 1e-6, weight gradients
 * summed over the single runs to 1e-5), and nothing past row N is written. */
static void test_packed_equals_single(void)
{
    int lens[] = {6, 4, 4, 2, 1};
    const int B = 5, In = 3, H = 5, H4 = 4 * H;
    Prob p;
    prob_init(&p, In, H, B, lens, 1, 21);
    const int N = p.pk.N;
    /* Sentinels just past every output: a write to a padding row would change them. */
    p.Hout[(size_t)N * H] = 12345.0f;
    p.dX[(size_t)N * In] = 12345.0f;
    p.cache[lstm_cache_floats(N, H)] = 12345.0f;
    prob_backward(&p);
    CU_ASSERT_EQUAL(p.Hout[(size_t)N * H], 12345.0f);
    CU_ASSERT_EQUAL(p.dX[(size_t)N * In], 12345.0f);
    CU_ASSERT_EQUAL(p.cache[lstm_cache_floats(N, H)], 12345.0f);

    float *sWih = calloc((size_t)In * H4, sizeof(float));
    float *sWhh = calloc((size_t)H * H4, sizeof(float));
    float *sb = calloc((size_t)H4, sizeof(float));
    double max_h = 0.0, max_dx = 0.0, max_dh0 = 0.0;
    for (int r = 0; r < B; r++) {
        const int n = lens[r];
        int bs[16], off[17];
        LstmPack one;
        CU_ASSERT_EQUAL_FATAL(lstm_pack_init(&one, &lens[r], 1, 16, bs, off), 0);
        float *X = malloc((size_t)n * In * sizeof(float));
        float *Wt = malloc((size_t)n * H * sizeof(float));
        for (int t = 0; t < n; t++) {
            size_t row = (size_t)p.off[t] + r;
            memcpy(X + (size_t)t * In, p.X + row * In, (size_t)In * sizeof(float));
            memcpy(Wt + (size_t)t * H, p.Wt + row * H, (size_t)H * sizeof(float));
        }
        float *Hout = malloc((size_t)n * H * sizeof(float));
        float *cache = malloc(lstm_cache_floats(n, H) * sizeof(float));
        float *dX = malloc((size_t)n * In * sizeof(float));
        float dh0[16], ws[32];
        lstm_forward(&one, In, H, X, p.h0 + (size_t)r * H, p.Wih, p.Whh, p.b, Hout, cache);
        for (int t = 0; t < n; t++)
            for (int j = 0; j < H; j++) {
                double e = fabs(Hout[(size_t)t * H + j] - p.Hout[((size_t)p.off[t] + r) * H + j]);
                max_h = e > max_h ? e : max_h;
            }
        lstm_backward(&one, In, H, X, p.h0 + (size_t)r * H, p.Wih, p.Whh, Hout, cache, Wt, dX,
                      sWih, sWhh, sb, dh0, ws);
        for (int t = 0; t < n; t++)
            for (int j = 0; j < In; j++) {
                double e = fabs(dX[(size_t)t * In + j] - p.dX[((size_t)p.off[t] + r) * In + j]);
                max_dx = e > max_dx ? e : max_dx;
            }
        for (int j = 0; j < H; j++) {
            double e = fabs(dh0[j] - p.dh0[(size_t)r * H + j]);
            max_dh0 = e > max_dh0 ? e : max_dh0;
        }
        free(X);
        free(Wt);
        free(Hout);
        free(cache);
        free(dX);
    }
    CU_ASSERT(max_h <= 1e-6);
    CU_ASSERT(max_dx <= 1e-5);
    CU_ASSERT(max_dh0 <= 1e-5);
    double max_w = 0.0;
    for (int i = 0; i < In * H4; i++)
        max_w = fmax(max_w, fabs(sWih[i] - p.dWih[i]));
    for (int i = 0; i < H * H4; i++)
        max_w = fmax(max_w, fabs(sWhh[i] - p.dWhh[i]));
    for (int i = 0; i < H4; i++)
        max_w = fmax(max_w, fabs(sb[i] - p.db[i]));
    CU_ASSERT(max_w <= 1e-5);
    printf(" [h %.1e dX %.1e dh0 %.1e dW %.1e]", max_h, max_dx, max_dh0, max_w);
    free(sWih);
    free(sWhh);
    free(sb);
    prob_free(&p);
}

/* Weight gradients accumulate: two backward calls give twice one call's gradient. */
static void test_accumulates(void)
{
    int lens[] = {3, 2};
    Prob p;
    prob_init(&p, 2, 3, 2, lens, 1, 31);
    prob_backward(&p);
    float db1[12];
    memcpy(db1, p.db, sizeof db1);
    float dX1[5 * 2]; /* N = 5 rows of In = 2 */
    memcpy(dX1, p.dX, sizeof dX1);
    prob_backward(&p);
    for (int i = 0; i < 12; i++)
        CU_ASSERT_DOUBLE_EQUAL(p.db[i], 2.0f * db1[i], 1e-6);
    /* dX is overwritten, not accumulated. */
    for (int i = 0; i < 5 * 2; i++)
        CU_ASSERT_DOUBLE_EQUAL(p.dX[i], dX1[i], 1e-7);
    prob_free(&p);
}

int main(void)
{
    static const TuTest tests[] = {
        {"pack_init", test_pack},
        {"gradcheck_h0_lengths_5_3_1_1", test_gradcheck_h0},
        {"gradcheck_zero_initial_state", test_gradcheck_zero_state},
        {"gradcheck_empty_sequence", test_gradcheck_empty_sequence},
        {"gradcheck_vector_width", test_gradcheck_vector_width},
        {"simd_matches_scalar", test_simd_matches_scalar},
        {"packed_equals_single", test_packed_equals_single},
        {"weight_grads_accumulate", test_accumulates},
        {NULL, NULL},
    };
    tu_add_suite("lstm", tests);
    return tu_run_all();
}
