/* Optimizer steps over one row (see optim.h). Bias corrections are computed in double once
 * per row so that long runs (large t) do not lose precision in b^t. */
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

static void adam_row(const OptimConfig *cfg, float *p, float *m, float *v, uint32_t t,
                     const float *g, size_t n)
{
    const float b1 = cfg->beta1, b2 = cfg->beta2;
    const double bc1 = 1.0 - pow((double)b1, (double)t);
    const double bc2 = 1.0 - pow((double)b2, (double)t);
    const float step_size = (float)((double)cfg->lr / bc1);
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    for (size_t i = 0; i < n; i++) {
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
