/* Pushes held until their step's CLOCK (see stage.h). Invariant: items[0..n) hold the pushes
 * received since the last apply or drop, in order; items[n..cap) are spare buffers. */
#include "server/stage.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return psrec_nomem(__func__);
    *p = q;
    *cap = c;
    return 0;
}

int stage_add(Stage *s, uint32_t table, const uint64_t *keys, size_t n, const float *vals,
              uint32_t width)
{
    if (s->n == s->cap) {
        size_t c = s->cap ? s->cap * 2 : 8;
        StagedPush *it = realloc(s->items, c * sizeof *it);
        if (!it)
            return psrec_nomem(__func__);
        memset(it + s->cap, 0, (c - s->cap) * sizeof *it);
        s->items = it;
        s->cap = c;
    }
    StagedPush *p = &s->items[s->n];
    const size_t nv = n * (size_t)width;
    if (grow((void **)&p->keys, &p->cap_keys, n, sizeof *p->keys) ||
        grow((void **)&p->vals, &p->cap_vals, nv, sizeof *p->vals))
        return psrec_nomem(__func__);
    if (n) {
        memcpy(p->keys, keys, n * sizeof *keys);
        memcpy(p->vals, vals, nv * sizeof *vals);
    }
    p->table = table;
    p->width = width;
    p->n = n;
    s->n++;
    s->bytes += n * sizeof *keys + nv * sizeof *vals;
    return 0;
}

int stage_apply(Stage *s, StageApplyFn fn, void *ctx)
{
    int rc = 0;
    for (size_t i = 0; i < s->n && !rc; i++) {
        const StagedPush *p = &s->items[i];
        rc = fn(ctx, p->table, p->keys, p->n, p->vals, p->width);
    }
    stage_drop(s);
    return rc;
}

void stage_drop(Stage *s)
{
    s->n = 0;
    s->bytes = 0;
}

void stage_fini(Stage *s)
{
    for (size_t i = 0; i < s->cap; i++) {
        free(s->items[i].keys);
        free(s->items[i].vals);
    }
    free(s->items);
    memset(s, 0, sizeof *s);
}
