/* Optimizer steps against values worked out by hand (see each comment). */
#include "server/optim.h"
#include "testutil/testutil.h"

#include <math.h>
#include <string.h>

#define NEAR(a, b, tol) CU_ASSERT(fabs((double)(a) - (double)(b)) <= (tol))
/* Relative: the hyper-parameters are floats (0.999f is 0.99900001287), so moments carry a
 * relative error of about 1e-5 against the decimal values worked out below. */
#define NEAR_REL(a, b, rel) CU_ASSERT(fabs((double)(a) - (double)(b)) <= (rel) * fabs((double)(b)))

/* Adam, lr 0.1, b1 0.9, b2 0.999, eps 1e-8, p0 = 1.
 * t=1, g=0.5:  m = 0.05, v = 0.00025, bc1 = 0.1, bc2 = 0.001,
 *              p = 1 - (0.1/0.1) * 0.05 / (sqrt(0.00025)/sqrt(0.001) + 1e-8) = 1 - 0.05/0.5 = 0.9
 * t=2, g=-0.5: m = 0.045 - 0.05 = -0.005, v = 0.00024975 + 0.00025 = 0.00049975,
 *              bc1 = 0.19, bc2 = 0.001999, v/bc2 = 0.25 exactly,
 *              p = 0.9 + (0.1/0.19) * 0.005 / 0.5 = 0.9 + 0.00526315789 = 0.90526315789 */
static void test_adam_bias_correction(void)
{
    OptimConfig c = {.kind = OPTIM_ADAM, .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    float p = 1.0f, st[2] = {0, 0}, g = 0.5f;
    uint32_t step = 0;
    CU_ASSERT_EQUAL(optim_state_per_float(OPTIM_ADAM), 2);
    optim_apply(&c, &p, st, &step, &g, 1);
    CU_ASSERT_EQUAL(step, 1);
    NEAR_REL(st[0], 0.05, 1e-5);
    NEAR_REL(st[1], 0.00025, 1e-4);
    NEAR(p, 0.9, 1e-6);
    g = -0.5f;
    optim_apply(&c, &p, st, &step, &g, 1);
    CU_ASSERT_EQUAL(step, 2);
    NEAR_REL(st[0], -0.005, 1e-4);
    NEAR_REL(st[1], 0.00049975, 1e-4);
    NEAR(p, 0.90526315789, 2e-6);
}

/* Two floats in one row share the step count but not the moments. */
static void test_adam_row(void)
{
    OptimConfig c = {.kind = OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    float p[2] = {0.0f, 0.0f}, st[4] = {0}, g[2] = {2.0f, -0.001f};
    uint32_t step = 0;
    optim_apply(&c, p, st, &step, g, 2);
    /* First Adam step moves each coordinate by lr * sign(g) (up to eps). */
    NEAR(p[0], -0.01, 1e-6);
    NEAR(p[1], 0.01, 1e-5);
    NEAR_REL(st[2], 0.004, 1e-4); /* v of coordinate 0: 0.001 * 4 */
}

/* Adam as written in optim.h, one value at a time (the reference for bit-for-bit checks). */
static void adam_ref(const OptimConfig *c, float *p, float *st, uint32_t *step, const float *g,
                     size_t n)
{
    const uint32_t t = ++*step;
    const double bc1 = 1.0 - pow((double)c->beta1, (double)t);
    const double bc2 = 1.0 - pow((double)c->beta2, (double)t);
    const float step_size = (float)((double)c->lr / bc1);
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    float *m = st, *v = st + n;
    for (size_t i = 0; i < n; i++) {
        m[i] = c->beta1 * m[i] + (1.0f - c->beta1) * g[i];
        v[i] = c->beta2 * v[i] + (1.0f - c->beta2) * g[i] * g[i];
        float denom = sqrtf(v[i]) * inv_sqrt_bc2 + c->eps;
        p[i] -= step_size * m[i] / denom;
    }
}

/* The row loop (blocks and a tail: width 131) and the per-step constants kept between rows
 * (two configs interleaved, step counts 1..70 and repeated, more than the slots) give the
 * reference's bits exactly. */
static void test_adam_bits(void)
{
    enum { W = 131, ROWS = 6 };
    const OptimConfig cfg[2] = {
        {.kind = OPTIM_ADAM, .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f},
        {.kind = OPTIM_ADAM, .lr = 3e-2f, .beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-6f}};
    static float p[ROWS][W], st[ROWS][2 * W], rp[ROWS][W], rst[ROWS][2 * W], g[W];
    uint32_t step[ROWS] = {0, 0, 0, 63, 64, 65}, rstep[ROWS] = {0, 0, 0, 63, 64, 65};
    for (int r = 0; r < ROWS; r++)
        for (int i = 0; i < W; i++)
            p[r][i] = rp[r][i] = (float)(i - r) / 7.0f;
    int same = 1;
    for (int it = 0; it < 70; it++) {
        for (int i = 0; i < W; i++)
            g[i] = (float)((i * 13 + it * 7) % 23 - 11) / 9.0f;
        for (int r = 0; r < ROWS; r++) {
            const OptimConfig *c = &cfg[(r + it) % 2];
            optim_apply(c, p[r], st[r], &step[r], g, W);
            adam_ref(c, rp[r], rst[r], &rstep[r], g, W);
        }
    }
    for (int r = 0; r < ROWS; r++)
        same &= step[r] == rstep[r] && !memcmp(p[r], rp[r], sizeof p[r]) &&
                !memcmp(st[r], rst[r], sizeof st[r]);
    CU_ASSERT(same);
}

/* Adagrad, lr 0.1, eps 1e-10, p0 = 1, g = 0.5 twice:
 * s = 0.25, p = 1 - 0.1 * 0.5 / 0.5 = 0.9; s = 0.5, p = 0.9 - 0.05 / sqrt(0.5) = 0.829289322 */
static void test_adagrad(void)
{
    OptimConfig c = {.kind = OPTIM_ADAGRAD, .lr = 0.1f, .eps = 1e-10f};
    float p = 1.0f, s = 0.0f, g = 0.5f;
    uint32_t step = 0;
    optim_apply(&c, &p, &s, &step, &g, 1);
    NEAR(p, 0.9, 1e-6);
    optim_apply(&c, &p, &s, &step, &g, 1);
    NEAR(s, 0.5, 1e-7);
    NEAR(p, 0.829289322, 1e-6);
}

/* SGD: p = 1 - 0.1 * 0.5 = 0.95, no state. */
static void test_sgd(void)
{
    OptimConfig c = {.kind = OPTIM_SGD, .lr = 0.1f};
    float p = 1.0f, g = 0.5f;
    uint32_t step = 0;
    CU_ASSERT_EQUAL(optim_state_per_float(OPTIM_SGD), 0);
    optim_apply(&c, &p, NULL, &step, &g, 1);
    NEAR(p, 0.95, 1e-7);
}

int main(void)
{
    static const TuTest tests[] = {{"adam with bias correction", test_adam_bias_correction},
                                   {"adam row", test_adam_row},
                                   {"adam: the reference's bits", test_adam_bits},
                                   {"adagrad", test_adagrad},
                                   {"sgd", test_sgd},
                                   {NULL, NULL}};
    tu_add_suite("optim", tests);
    return tu_run_all();
}
