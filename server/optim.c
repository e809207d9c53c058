/* Optimizer steps over one row (see optim.h). Bias corrections are computed in double once
 * per (config, step count) so that long runs (large t) do not lose precision in b^t, and kept
 * for the next rows of the same step count. */
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

/* Adam's per-row constants for step t of one config. */
typedef struct AdamConst {
    uint32_t t; /* 0: empty (a row's first step is 1) */
    float b1, b2, lr;
    float step_size, inv_sqrt_bc2;
} AdamConst;

#define ADAM_CONSTS 64 /* slots, by t: the rows of a push share a few step counts */

/* The constants of step t, computed once per (config, t) and kept: two pow calls in double
 * cost more than a row of 128 floats' arithmetic. Thread-local, as the shards of one process
 * run on threads of their own; the values are the ones computed without the cache. */
static const AdamConst *adam_const(const OptimConfig *cfg, uint32_t t)
{
    static _Thread_local AdamConst slots[ADAM_CONSTS];
    AdamConst *c = &slots[t % ADAM_CONSTS];
    if (c->t != t || c->b1 != cfg->beta1 || c->b2 != cfg->beta2 || c->lr != cfg->lr) {
        const double bc1 = 1.0 - pow((double)cfg->beta1, (double)t);
        const double bc2 = 1.0 - pow((double)cfg->beta2, (double)t);
        *c = (AdamConst){.t = t,
                         .b1 = cfg->beta1,
                         .b2 = cfg->beta2,
                         .lr = cfg->lr,
                         .step_size = (float)((double)cfg->lr / bc1),
                         .inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2))};
    }
    return c;
}

/* n values of one row. The rows never overlap (restrict), so blocks of a fixed size
 * vectorize at -O2 (sqrtf too: this file is built with -fno-math-errno; v >= 0 always);
 * the same operations in the same order per value, so the results are the scalar ones. */
static inline void adam_span(float *restrict p, float *restrict m, float *restrict v,
                             const float *restrict g, size_t n, float b1, float b2,
                             float step_size, float inv_sqrt_bc2, float eps)
{
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        float denom = sqrtf(v[i]) * inv_sqrt_bc2 + eps;
        p[i] -= step_size * m[i] / denom;
    }
}

static void adam_row(const OptimConfig *cfg, float *p, float *m, float *v, uint32_t t,
                     const float *g, size_t n)
{
    enum { BLOCK = 16 };
    const AdamConst *c = adam_const(cfg, t);
    const float b1 = cfg->beta1, b2 = cfg->beta2, eps = cfg->eps;
    size_t i = 0;
    for (; n - i >= BLOCK; i += BLOCK)
        adam_span(p + i, m + i, v + i, g + i, BLOCK, b1, b2, c->step_size, c->inv_sqrt_bc2,
                  eps);
    adam_span(p + i, m + i, v + i, g + i, n - i, b1, b2, c->step_size, c->inv_sqrt_bc2, eps);
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
