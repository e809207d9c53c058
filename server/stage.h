/* A worker's pushes of the step it is working on, held until its CLOCK commits the step.
 *
 * Why: a worker can die half-way through a step, after some of its pushes reached the shard.
 * Applied at once, those rows would be in the model while the worker's position says the
 * step's samples were not trained, and the survivors would train them again. Held here, they
 * are applied exactly when the step is complete (its CLOCK), or dropped with the worker.
 *
 * One Stage per worker; buffers are kept between steps (no allocation per step once warm).
 * Not thread-safe: the shard loop's thread only. */
#ifndef PSREC_SERVER_STAGE_H
#define PSREC_SERVER_STAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct StagedPush {
    uint32_t table;
    uint32_t width;       /* floats per row */
    size_t n;             /* rows */
    uint64_t *keys;       /* (cap_keys) */
    float *vals;          /* (cap_vals) */
    size_t cap_keys, cap_vals;
} StagedPush;

typedef struct Stage {
    StagedPush *items;    /* (cap) the first n hold this step's pushes, in arrival order */
    size_t n, cap;
    size_t bytes;         /* key and value bytes held now */
} Stage;

/* Called by stage_apply for each held push, in arrival order; keys/vals borrowed. */
typedef int (*StageApplyFn)(void *ctx, uint32_t table, const uint64_t *keys, size_t n,
                            const float *vals, uint32_t width);

/* Copy a push (n rows of width floats) into the stage. Returns 0 or PSREC_E_NOMEM (nothing
 * held then). */
int stage_add(Stage *s, uint32_t table, const uint64_t *keys, size_t n, const float *vals,
              uint32_t width);

/* Hand every held push to fn in order, then empty the stage (memory kept). Stops at fn's
 * first error and returns it (the stage is emptied either way). */
int stage_apply(Stage *s, StageApplyFn fn, void *ctx);

/* Forget what is held (the step is not committed: its worker died). */
void stage_drop(Stage *s);

void stage_fini(Stage *s);

#endif
