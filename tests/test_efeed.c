/* Error feedback for bf16 pushes (worker/efeed.h): every pushed value is a bf16 value, and
 * over many steps the pushed values sum to the true gradients minus the final residual, both
 * exactly (dyadic gradients, where float arithmetic makes no error) and within float rounding
 * (random gradients); a refused row leaves its residual alone. */
#include "common/error.h"
#include "common/wire.h"
#include "worker/efeed.h"
#include "testutil/testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const ParamShape shape = {
    .E = 4, .H = 3, .vocab_rows = 100, .category_rows = 10, .user_rows = 50};

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* Dyadic gradients k * 2^-12 (|k| < 2^10): sums, residuals and rounded values are all
 * multiples of 2^-12 below 2^8, exact in f32, so the identity must hold bit for bit. */
static void test_sum_exact(void)
{
    EFeed *e;
    CU_ASSERT_FATAL(efeed_new(&shape, &e) == 0);
    const uint32_t w = 4; /* PARAM_WORD width = E */
    double sum_g[2][4] = {{0}}, sum_q[2][4] = {{0}};
    const uint64_t keys[2] = {7, 93};
    uint64_t seed = 1;
    int rounded = 0;
    for (int step = 0; step < 500; step++) {
        for (int r = 0; r < 2; r++) {
            float g[4], q[4];
            for (uint32_t i = 0; i < w; i++)
                g[i] = (float)((int)(lcg(&seed) % 2047) - 1023) / 4096.0f;
            CU_ASSERT_FATAL(efeed_round_row(e, PARAM_WORD, keys[r], g, q) == 0);
            for (uint32_t i = 0; i < w; i++) {
                CU_ASSERT(wire_bf16_widen(wire_bf16_round(q[i])) == q[i]); /* a bf16 value */
                rounded += q[i] != g[i];
                sum_g[r][i] += g[i];
                sum_q[r][i] += q[i];
            }
        }
    }
    CU_ASSERT(rounded > 100); /* the test exercises rounding at all */
    for (int r = 0; r < 2; r++) {
        const float *res = efeed_residual(e, PARAM_WORD, keys[r]);
        CU_ASSERT_FATAL(res != NULL);
        for (uint32_t i = 0; i < w; i++) {
            CU_ASSERT(sum_q[r][i] == sum_g[r][i] - res[i]);
            CU_ASSERT(fabs(res[i]) <= 1.0 / 256); /* half a bf16 ulp of values below 2 */
        }
    }
    CU_ASSERT(efeed_residual(e, PARAM_WORD, 8) == NULL);
    CU_ASSERT_EQUAL(efeed_rows(e), 2);
    efeed_free(&e);
    CU_ASSERT(e == NULL);
    efeed_free(&e);
}

/* Random gradients with a small steady component that plain rounding would drop every time:
 * with feedback the pushed sum tracks the true sum (error = residual + float rounding), while
 * rounding without feedback loses the component entirely. */
static void test_sum_tracks_small_component(void)
{
    EFeed *e;
    CU_ASSERT_FATAL(efeed_new(&shape, &e) == 0);
    const uint32_t w = 12; /* PARAM_NEWS_WIH width = 4H */
    double sum_g[12] = {0}, sum_q[12] = {0}, sum_plain[12] = {0};
    uint64_t seed = 5;
    for (int step = 0; step < 2000; step++) {
        float g[12];
        for (uint32_t i = 0; i < w; i++)
            g[i] = 1.0f + 1e-3f * (float)(i + 1) +
                   1e-6f * (float)((int)(lcg(&seed) % 1001) - 500) / 500.0f;
        float q[12];
        CU_ASSERT_FATAL(efeed_round_row(e, PARAM_NEWS_WIH, 2, g, q) == 0);
        for (uint32_t i = 0; i < w; i++) {
            sum_g[i] += g[i];
            sum_q[i] += q[i];
            sum_plain[i] += wire_bf16_widen(wire_bf16_round(g[i]));
        }
    }
    const float *res = efeed_residual(e, PARAM_NEWS_WIH, 2);
    for (uint32_t i = 0; i < w; i++) {
        double err = fabs(sum_q[i] - (sum_g[i] - res[i]));
        CU_ASSERT(err < 2000 * 2.0 * 0x1p-24 * 1.02); /* one f32 rounding of g + r a step */
        CU_ASSERT(fabs(sum_q[i] - sum_g[i]) <= 1.0 / 256 + 1e-3);
    }
    /* 1.003 rounds to 1 in bf16 (ulp 2^-7): without feedback about 6 of the third value's
     * sum of about 2006 are lost. */
    CU_ASSERT(fabs(sum_plain[2] - sum_g[2]) > 5.0);
    efeed_free(&e);
}

/* A row that would not fit bf16 is refused and its residual is left as it was. */
static void test_refusal_keeps_residual(void)
{
    EFeed *e;
    CU_ASSERT_FATAL(efeed_new(&shape, &e) == 0);
    float g[4] = {0.1f, 0.2f, 0.3f, 0.4f}, q[4];
    CU_ASSERT_FATAL(efeed_round_row(e, PARAM_WORD, 3, g, q) == 0);
    float before[4];
    memcpy(before, efeed_residual(e, PARAM_WORD, 3), sizeof before);
    const float bad[][4] = {{0.1f, NAN, 0.3f, 0.4f},
                            {0.1f, 0.2f, INFINITY, 0.4f},
                            {0.1f, 0.2f, 0.3f, 3.4e38f}};
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT(efeed_round_row(e, PARAM_WORD, 3, bad[i], q) == PSREC_E_RANGE);
        CU_ASSERT(memcmp(before, efeed_residual(e, PARAM_WORD, 3), sizeof before) == 0);
    }
    CU_ASSERT(efeed_round_row(e, PARAM_WORD, 100, g, q) == PSREC_E_RANGE);
    CU_ASSERT(efeed_round_row(e, PARAM_TABLES, 0, g, q) == PSREC_E_RANGE);
    /* In place: grad and out the same buffer. */
    float inplace[4] = {1.00390625f, 2, 3, 4}; /* 1 + 2^-8: a tie, rounds to 1 */
    CU_ASSERT(efeed_round_row(e, PARAM_WORD, 4, inplace, inplace) == 0);
    CU_ASSERT(inplace[0] == 1.0f && efeed_residual(e, PARAM_WORD, 4)[0] == 0.00390625f);
    efeed_free(&e);
}

int main(void)
{
    static const TuTest tests[] = {
        {"pushed sum = true sum - residual, exactly", test_sum_exact},
        {"feedback keeps a component rounding drops", test_sum_tracks_small_component},
        {"refused row keeps its residual", test_refusal_keeps_residual},
        {NULL, NULL},
    };
    tu_add_suite("efeed", tests);
    return tu_run_all();
}
