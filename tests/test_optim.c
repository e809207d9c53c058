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

/* A row's floats are updated independently, so every float of a wide row (whose first
 * 16-multiple runs in the AVX-512 loop where the CPU has it) must equal, bit for bit, the
 * same float updated alone in a row of width 1 (the scalar loop). Widths below, at and
 * above the vector width, three steps, then a step count far out (bias factors recomputed). */
static void test_adam_wide_equals_scalar(void)
{
    OptimConfig c = {.kind = OPTIM_ADAM, .lr = 0.003f, .beta1 = 0.9f, .beta2 = 0.999f,
                     .eps = 1e-8f};
    static const size_t widths[] = {15, 16, 17, 37, 128};
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
        const size_t w = widths[wi];
        float p[128], st[256], g[128], p1[128], st1[128][2];
        uint32_t step = 0, step1[128] = {0};
        for (size_t i = 0; i < w; i++) {
            p[i] = p1[i] = (float)sin((double)i + 0.5 * (double)wi);
            st[i] = st[w + i] = st1[i][0] = st1[i][1] = 0.0f;
        }
        int same = 1;
        for (int round = 0; round < 4; round++) {
            if (round == 3) { /* far-out step counts */
                step = 100000;
                for (size_t i = 0; i < w; i++)
                    step1[i] = 100000;
            }
            for (size_t i = 0; i < w; i++)
                g[i] = (float)cos(3.0 * (double)i + round) * (round == 1 ? 1e-4f : 1.0f);
            optim_apply(&c, p, st, &step, g, w);
            for (size_t i = 0; i < w; i++)
                optim_apply(&c, &p1[i], st1[i], &step1[i], &g[i], 1);
            for (size_t i = 0; i < w; i++)
                same &= memcmp(&p[i], &p1[i], sizeof p[i]) == 0 &&
                        memcmp(&st[i], &st1[i][0], sizeof st[i]) == 0 &&
                        memcmp(&st[w + i], &st1[i][1], sizeof st[i]) == 0;
        }
        CU_ASSERT(same);
    }
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
                                   {"adam wide rows equal scalar", test_adam_wide_equals_scalar},
                                   {"adam row", test_adam_row},
                                   {"adagrad", test_adagrad},
                                   {"sgd", test_sgd},
                                   {NULL, NULL}};
    tu_add_suite("optim", tests);
    return tu_run_all();
}
