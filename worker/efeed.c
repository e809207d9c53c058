/* Error feedback for bf16 pushes (see efeed.h for the scheme and why it is sound).
 *
 * Invariants:
 * - res[t][key] is NULL until key's first push, then a row of width[t] floats that holds
 *   exactly (sum of true gradients) - (sum of pushed values) of that row so far.
 * - Every pushed value is exactly representable in bf16 (wire_bf16_round then widened), so
 *   the wire's own rounding of it changes nothing.
 * - A refused row (non-finite or overflowing) leaves its residual untouched.
 * Rows come from chunks of ROWS_PER_CHUNK rows, never moved, freed all at once.
 * Not done here: which rows are pushed, the wire encoding (common/wire.c). */
#include "worker/efeed.h"

#include "common/error.h"
#include "common/wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROWS_PER_CHUNK 256

typedef struct Chunk {
    struct Chunk *next;
    size_t used; /* floats handed out */
    size_t cap;
    float data[];
} Chunk;

struct EFeed {
    uint32_t width[PARAM_TABLES];
    uint64_t rows[PARAM_TABLES];
    float **res[PARAM_TABLES]; /* (rows[t]) residual rows, NULL until pushed */
    Chunk *chunks;
    uint64_t nrows;
};

int efeed_new(const ParamShape *shape, EFeed **out)
{
    *out = NULL;
    EFeed *e = calloc(1, sizeof *e);
    if (!e)
        return psrec_errf(PSREC_E_NOMEM, "no memory for the bf16 residuals");
    TableSpec specs[PARAM_TABLES];
    params_specs(shape, specs);
    for (int t = 0; t < PARAM_TABLES; t++) {
        e->width[t] = specs[t].width;
        e->rows[t] = specs[t].rows;
        if (!(e->res[t] = calloc(specs[t].rows ? specs[t].rows : 1, sizeof *e->res[t]))) {
            efeed_free(&e);
            return psrec_errf(PSREC_E_NOMEM, "no memory for the bf16 residuals of table %s",
                              specs[t].name);
        }
    }
    *out = e;
    return 0;
}

/* A zeroed row of w floats from the current chunk (a new chunk when it is full). */
static float *new_row(EFeed *e, uint32_t w)
{
    Chunk *c = e->chunks;
    if (!c || c->cap - c->used < w) {
        size_t cap = (size_t)w * ROWS_PER_CHUNK;
        if (!(c = calloc(1, sizeof *c + cap * sizeof(float))))
            return NULL;
        c->cap = cap;
        c->next = e->chunks;
        e->chunks = c;
    }
    float *r = c->data + c->used;
    c->used += w;
    e->nrows++;
    return r;
}

int efeed_round_row(EFeed *e, uint32_t table, uint64_t key, const float *grad, float *out)
{
    if (table >= PARAM_TABLES || key >= e->rows[table])
        return psrec_errf(PSREC_E_RANGE, "bf16 residual: no row %llu in table %u",
                          (unsigned long long)key, table);
    const uint32_t w = e->width[table];
    float *r = e->res[table][key];
    if (!r && !(r = e->res[table][key] = new_row(e, w)))
        return psrec_errf(PSREC_E_NOMEM, "no memory for a bf16 residual row");
    /* First check the whole row, so a refused row changes nothing. */
    for (uint32_t i = 0; i < w; i++) {
        uint16_t b = wire_bf16_round(grad[i] + r[i]);
        if ((b & 0x7f80u) == 0x7f80u)
            return psrec_errf(PSREC_E_RANGE, "gradient %g (row %llu of table %u) %s",
                              (double)grad[i], (unsigned long long)key, table,
                              isfinite(grad[i]) ? "overflows bf16" : "is not finite");
    }
    for (uint32_t i = 0; i < w; i++) {
        float g = grad[i] + r[i];
        float q = wire_bf16_widen(wire_bf16_round(g));
        /* Exact: q is g with its low 16 bits rounded away, so g - q fits in those bits. */
        r[i] = g - q;
        out[i] = q;
    }
    return 0;
}

const float *efeed_residual(const EFeed *e, uint32_t table, uint64_t key)
{
    return table < PARAM_TABLES && key < e->rows[table] ? e->res[table][key] : NULL;
}

uint64_t efeed_rows(const EFeed *e)
{
    return e->nrows;
}

void efeed_free(EFeed **ep)
{
    EFeed *e = *ep;
    if (!e)
        return;
    for (int t = 0; t < PARAM_TABLES; t++)
        free(e->res[t]);
    while (e->chunks) {
        Chunk *n = e->chunks->next;
        free(e->chunks);
        e->chunks = n;
    }
    free(e);
    *ep = NULL;
}
