/* Optimizer steps over one row (see optim.h). Bias corrections are computed in double (kept
 * per thread for the last step count) so that long runs (large t) do not lose precision in
 * b^t. Adam runs 16 floats at a time with AVX-512 where the CPU has it, with the scalar
 * loop's roundings exactly. */
#include "server/optim.h"

#include <math.h>

size_t optim_state_per_float(OptimKind kind)
{
    switch (kind) {
    case OPTIM_ADAM: return 2;
    case OPTIM_ADAGRAD: return 1;
    case OPTIM_SGD: return 0;
    }
    return 0;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define OPTIM_X86 1

/* adam_row's loop 16 floats at a time, operation for operation (no FMA: the same roundings,
 * sqrt and division are correctly rounded in both), so a row's result does not depend on the
 * CPU. Returns where it stopped. */
__attribute__((target("avx512f"))) static size_t adam_avx512(float b1, float b2,
                                                             float step_size,
                                                             float inv_sqrt_bc2, float eps,
                                                             float *p, float *m, float *v,
                                                             const float *g, size_t n)
{
    const __m512 vb1 = _mm512_set1_ps(b1), vb2 = _mm512_set1_ps(b2);
    const __m512 c1 = _mm512_set1_ps(1.0f - b1), c2 = _mm512_set1_ps(1.0f - b2);
    const __m512 ss = _mm512_set1_ps(step_size), ib = _mm512_set1_ps(inv_sqrt_bc2);
    const __m512 ve = _mm512_set1_ps(eps);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 gv = _mm512_loadu_ps(g + i);
        __m512 mv = _mm512_add_ps(_mm512_mul_ps(vb1, _mm512_loadu_ps(m + i)),
                                  _mm512_mul_ps(c1, gv));
        __m512 vv = _mm512_add_ps(_mm512_mul_ps(vb2, _mm512_loadu_ps(v + i)),
                                  _mm512_mul_ps(_mm512_mul_ps(c2, gv), gv));
        __m512 denom = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vv), ib), ve);
        _mm512_storeu_ps(m + i, mv);
        _mm512_storeu_ps(v + i, vv);
        _mm512_storeu_ps(p + i, _mm512_sub_ps(_mm512_loadu_ps(p + i),
                                              _mm512_div_ps(_mm512_mul_ps(ss, mv), denom)));
    }
    return i;
}
#else
#define OPTIM_X86 0
#endif

/* Adam's per-step factors for step t: two pow() in double, which cost as much as the update
 * of a 128-float row, so the last ones are kept (rows of a push mostly share t). */
typedef struct AdamFactors {
    uint32_t t;
    float lr, b1, b2;
    float step_size, inv_sqrt_bc2;
} AdamFactors;

static _Thread_local AdamFactors last_factors;

static void adam_factors(const OptimConfig *cfg, uint32_t t, float *step_size,
                         float *inv_sqrt_bc2)
{
    AdamFactors *f = &last_factors;
    if (f->t != t || f->lr != cfg->lr || f->b1 != cfg->beta1 || f->b2 != cfg->beta2) {
        const double bc1 = 1.0 - pow((double)cfg->beta1, (double)t);
        const double bc2 = 1.0 - pow((double)cfg->beta2, (double)t);
        *f = (AdamFactors){.t = t, .lr = cfg->lr, .b1 = cfg->beta1, .b2 = cfg->beta2,
                           .step_size = (float)((double)cfg->lr / bc1),
                           .inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2))};
    }
    *step_size = f->step_size;
    *inv_sqrt_bc2 = f->inv_sqrt_bc2;
}

static void adam_row(const OptimConfig *cfg, float *p, float *m, float *v, uint32_t t,
                     const float *g, size_t n)
{
    const float b1 = cfg->beta1, b2 = cfg->beta2;
    float step_size, inv_sqrt_bc2;
    adam_factors(cfg, t, &step_size, &inv_sqrt_bc2);
    size_t i = 0;
#if OPTIM_X86
    if (n >= 16 && __builtin_cpu_supports("avx512f"))
        i = adam_avx512(b1, b2, step_size, inv_sqrt_bc2, cfg->eps, p, m, v, g, n);
#endif
    for (; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        float denom = sqrtf(v[i]) * inv_sqrt_bc2 + cfg->eps;
        p[i] -= step_size * m[i] / denom;
    }
}

void optim_apply(const OptimConfig *cfg, float *param, float *state, uint32_t *step,
                 const float *grad, size_t width)
{
    uint32_t t = ++*step;
    switch (cfg->kind) {
    case OPTIM_ADAM:
        adam_row(cfg, param, state, state + width, t, grad, width);
        break;
    case OPTIM_ADAGRAD:
        for (size_t i = 0; i < width; i++) {
            state[i] += grad[i] * grad[i];
            param[i] -= cfg->lr * grad[i] / (sqrtf(state[i]) + cfg->eps);
        }
        break;
    case OPTIM_SGD:
        for (size_t i = 0; i < width; i++)
            param[i] -= cfg->lr * grad[i];
        break;
    }
}
