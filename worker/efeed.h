/* Error feedback for gradients pushed in bf16 (ps.wire_dtype = bf16).
 *
 * Rounding a gradient row to bf16 cuts off up to half a bf16 ulp (2^-8 of its magnitude) per
 * value. Dropped every step, that bias adds up: a small, steady gradient component below half
 * an ulp of the row's large components would never reach the shard. Error feedback keeps what
 * rounding cut off, per pushed row, and adds it to that row's next push:
 *     g' = g_t + r_{t-1};   q_t = bf16(g');   r_t = g' - q_t      (r_0 = 0)
 * so over any number of steps  sum_t q_t = sum_t g_t - r_T : everything computed is pushed,
 * late by at most one residual, and |r_T| <= half a bf16 ulp of the last g', at most
 * 2^-8 |g'| (bounded, never growing). The shard sums or applies q_t exactly as it would g_t.
 * With Adam the update is a non-linear function of the pushed values, so this bounds the
 * gradient error, not the weight error; the AUC comparison in the README is the evidence for
 * the whole loop.
 * Residuals are not checkpointed: a resume starts them at zero, losing at most one residual
 * per row.
 *
 * Memory: one residual row per row ever pushed (allocated on its first push, kept until
 * efeed_free): at most the model's size in f32, usually the rows a worker's data touches.
 * Thread rules: one thread uses an EFeed (the PS client's). */
#ifndef PSREC_WORKER_EFEED_H
#define PSREC_WORKER_EFEED_H

#include "common/params.h"

#include <stddef.h>
#include <stdint.h>

typedef struct EFeed EFeed;

/* Residuals for the tables of shape, all zero. Returns 0 and *out, or PSREC_E_NOMEM. */
int efeed_new(const ParamShape *shape, EFeed **out);

/* Round one row of `table` for key (width = the table's width): out = bf16(grad + r) as f32
 * (every value exactly a bf16 value), r = (grad + r) - out. grad and out may be the same.
 * Returns 0, PSREC_E_RANGE (unknown table, key out of range, or a value that is not finite or
 * overflows bf16: then the residual is left as it was) or PSREC_E_NOMEM. */
int efeed_round_row(EFeed *e, uint32_t table, uint64_t key, const float *grad, float *out);

/* The residual row of key (width floats), or NULL when the row was never pushed. Borrowed
 * until efeed_free. For tests and the README's soundness check. */
const float *efeed_residual(const EFeed *e, uint32_t table, uint64_t key);

/* Rows that hold a residual (memory: that times width floats). */
uint64_t efeed_rows(const EFeed *e);

/* Free everything; *e = NULL. NULL or *e NULL: nothing. */
void efeed_free(EFeed **e);

#endif
