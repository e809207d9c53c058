/* Optimizers a server shard applies to pushed gradients: Adam (default), Adagrad, SGD.
 *
 * One code path for every parameter: a "row" is a run of `width` floats with its own
 * optimizer state and step count. A sparse table row is a row; a chunk of a dense weight is a
 * row too. Lazy sparse semantics follow from that: a row's moments and step count change
 * only when the row receives a gradient. Single-process training calls the same functions
 * through an in-process shard. Pure functions, no allocation, thread-compatible. */
#ifndef PSREC_SERVER_OPTIM_H
#define PSREC_SERVER_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef enum OptimKind { OPTIM_ADAM, OPTIM_ADAGRAD, OPTIM_SGD } OptimKind;

typedef struct OptimConfig {
    OptimKind kind;
    float lr;
    float beta1, beta2; /* Adam */
    float eps;          /* Adam: added to sqrt(v_hat); Adagrad: added to sqrt(sum) */
} OptimConfig;

/* Floats of optimizer state per parameter float: Adam 2 (m, v), Adagrad 1 (sum g^2), SGD 0. */
size_t optim_state_per_float(OptimKind kind);

/* Apply one gradient to one row, in place.
 *   param  (width) the parameters
 *   state  (width * optim_state_per_float) the row's state, zero for a fresh row; Adam keeps
 *          m in state[0..width) and v in state[width..2*width)
 *   step   the row's update count; incremented here (Adam's bias correction uses it)
 *   grad   (width) the gradient (already averaged over whatever the caller averages)
 * Adam is PyTorch's: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 * Adagrad is PyTorch's with lr_decay 0: s += g^2; p -= lr * g / (sqrt(s) + eps).
 * SGD: p -= lr * g. */
void optim_apply(const OptimConfig *cfg, float *param, float *state, uint32_t *step,
                 const float *grad, size_t width);

#endif
