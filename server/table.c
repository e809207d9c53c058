/* Row storage for sparse and dense parameter tables.
 *
 * Layout: rows live in one growable array of slots; slot s holds `width` parameters followed
 * by `width * k` optimizer-state floats (k from the optimizer), and steps[s] its update count.
 * Dense tables map key -> slot directly (slot = key). Sparse tables find the slot through an
 * open-addressing hash map from key to slot (linear probing, power-of-two capacity, load at
 * most 1/2), so a table of millions of possible users costs only the rows touched. */
#include "server/table.h"

#include "common/error.h"
#include "common/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EMPTY_SLOT UINT32_MAX

struct Table {
    TableSpec spec;
    OptimConfig opt;
    uint64_t seed;
    size_t row_floats;   /* width * (1 + state per float) */
    float *data;         /* (cap, row_floats) */
    uint32_t *steps;     /* (cap) */
    uint64_t *slot_keys; /* (cap) key of each slot, for saving */
    size_t used, cap;    /* slots */
    uint64_t *keys;      /* sparse: (map_cap) keys */
    uint32_t *slots;     /* sparse: (map_cap) slot or EMPTY_SLOT */
    size_t map_cap;
};

void table_init_row(const TableSpec *spec, uint64_t seed, uint64_t key, float *out)
{
    Rng rng;
    rng_seed(&rng, rng_mix64(seed ^ rng_mix64(((uint64_t)spec->id << 48) ^ key)));
    for (uint32_t i = 0; i < spec->width; i++) {
        switch (spec->init) {
        case TABLE_INIT_NORMAL:
            out[i] = (float)(spec->scale * rng_normal(&rng));
            break;
        case TABLE_INIT_UNIFORM:
            out[i] = (float)(spec->scale * (2.0 * rng_uniform(&rng) - 1.0));
            break;
        case TABLE_INIT_UNIFORM_SUM2:
            out[i] = (float)(spec->scale * (2.0 * rng_uniform(&rng) - 1.0)) +
                     (float)(spec->scale * (2.0 * rng_uniform(&rng) - 1.0));
            break;
        case TABLE_INIT_ZERO:
            out[i] = 0.0f;
            break;
        }
    }
}

static int grow_slots(Table *t, size_t need)
{
    if (need <= t->cap)
        return 0;
    size_t cap = t->cap ? t->cap : 64;
    while (cap < need)
        cap *= 2;
    float *d = realloc(t->data, cap * t->row_floats * sizeof *d);
    if (!d)
        return psrec_nomem(__func__);
    t->data = d;
    uint32_t *s = realloc(t->steps, cap * sizeof *s);
    if (!s)
        return psrec_nomem(__func__);
    t->steps = s;
    uint64_t *k = realloc(t->slot_keys, cap * sizeof *k);
    if (!k)
        return psrec_nomem(__func__);
    t->slot_keys = k;
    t->cap = cap;
    return 0;
}

/* Append a fresh slot for key: initial parameters (zeros when !init: the caller overwrites
 * them, as a checkpoint load does, and the random init was half of loading a model), zero
 * state, step 0. */
static int new_slot(Table *t, uint64_t key, int init, uint32_t *slot)
{
    int rc = grow_slots(t, t->used + 1);
    if (rc)
        return rc;
    float *row = t->data + t->used * t->row_floats;
    size_t from = 0;
    if (init) {
        table_init_row(&t->spec, t->seed, key, row);
        from = t->spec.width;
    }
    memset(row + from, 0, (t->row_floats - from) * sizeof *row);
    t->steps[t->used] = 0;
    t->slot_keys[t->used] = key;
    *slot = (uint32_t)t->used++;
    return 0;
}

static inline size_t hash_key(uint64_t key, size_t mask)
{
    return (size_t)rng_mix64(key) & mask;
}

static int map_grow(Table *t)
{
    size_t cap = t->map_cap ? t->map_cap * 2 : 1024;
    uint64_t *keys = malloc(cap * sizeof *keys);
    uint32_t *slots = malloc(cap * sizeof *slots);
    if (!keys || !slots) {
        free(keys);
        free(slots);
        return psrec_nomem(__func__);
    }
    memset(slots, 0xff, cap * sizeof *slots);
    for (size_t i = 0; i < t->map_cap; i++) {
        if (t->slots[i] == EMPTY_SLOT)
            continue;
        size_t h = hash_key(t->keys[i], cap - 1);
        while (slots[h] != EMPTY_SLOT)
            h = (h + 1) & (cap - 1);
        keys[h] = t->keys[i];
        slots[h] = t->slots[i];
    }
    free(t->keys);
    free(t->slots);
    t->keys = keys;
    t->slots = slots;
    t->map_cap = cap;
    return 0;
}

/* Slot of key, creating the row when create is set. find_slot's create argument: 0 = find only, 1 = create with initial parameters,
 * FIND_CREATE_BLANK = create with zeros (the caller writes the parameters). */
enum { FIND_CREATE_BLANK = 2 };

static int find_slot(Table *t, uint64_t key, int create, uint32_t *slot)
{
    if (key >= t->spec.rows)
        return psrec_errf(PSREC_E_RANGE, "table %s: key %llu out of range [0, %llu)",
                          t->spec.name, (unsigned long long)key,
                          (unsigned long long)t->spec.rows);
    if (t->spec.dense) {
        *slot = (uint32_t)key;
        return 0;
    }
    if ((t->used + 1) * 2 > t->map_cap) {
        int rc = map_grow(t);
        if (rc)
            return rc;
    }
    size_t mask = t->map_cap - 1, h = hash_key(key, mask);
    while (t->slots[h] != EMPTY_SLOT) {
        if (t->keys[h] == key) {
            *slot = t->slots[h];
            return 0;
        }
        h = (h + 1) & mask;
    }
    if (!create)
        return PSREC_E_NOTFOUND;
    int rc = new_slot(t, key, create != FIND_CREATE_BLANK, slot);
    if (rc)
        return rc;
    t->keys[h] = key;
    t->slots[h] = *slot;
    return 0;
}

uint64_t table_count_missing(const Table *t, const uint64_t *keys, size_t n)
{
    if (t->spec.dense)
        return 0;
    uint64_t missing = 0;
    const size_t mask = t->map_cap ? t->map_cap - 1 : 0;
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        if (t->map_cap)
            for (size_t h = hash_key(keys[i], mask); t->slots[h] != EMPTY_SLOT;
                 h = (h + 1) & mask)
                if (t->keys[h] == keys[i]) {
                    found = 1;
                    break;
                }
        missing += !found;
    }
    return missing;
}

int table_new(const TableSpec *spec, const OptimConfig *opt, uint64_t seed, Table **out)
{
    *out = NULL;
    if (spec->width == 0 || spec->rows == 0 || (spec->dense && spec->rows > UINT32_MAX))
        return psrec_errf(PSREC_E_RANGE, "table %s: bad shape (%llu rows of %u)", spec->name,
                          (unsigned long long)spec->rows, spec->width);
    Table *t = calloc(1, sizeof *t);
    if (!t)
        return psrec_nomem(__func__);
    t->spec = *spec;
    t->opt = *opt;
    t->seed = seed;
    t->row_floats = spec->width * (1 + optim_state_per_float(opt->kind));
    if (spec->dense) {
        uint32_t slot;
        int rc = grow_slots(t, spec->rows);
        for (uint64_t k = 0; !rc && k < spec->rows; k++)
            rc = new_slot(t, k, 1, &slot);
        if (rc) {
            table_free(&t);
            return rc;
        }
    }
    *out = t;
    return 0;
}

void table_free(Table **tp)
{
    Table *t = *tp;
    if (!t)
        return;
    free(t->data);
    free(t->steps);
    free(t->slot_keys);
    free(t->keys);
    free(t->slots);
    free(t);
    *tp = NULL;
}

/* Make *buf hold at least need bytes (have: what it holds now). A buffer big enough is kept
 * as it is: its pages are already mapped, and faulting in fresh pages costs several times the
 * memcpy that follows. Otherwise it is replaced (not realloc'ed: the old bytes are dead). */
static int ensure_block(void **buf, size_t have, size_t need)
{
    if (*buf && have >= need)
        return 0;
    free(*buf);
    *buf = need ? malloc(need) : NULL;
    return need && !*buf ? psrec_nomem(__func__) : 0;
}

int table_snapshot(const Table *t, Table **snap)
{
    Table *c = *snap;
    if (!c && !(c = calloc(1, sizeof *c)))
        return psrec_nomem(__func__);
    /* Capacities the copy's blocks have now, in bytes (0 for a new copy). */
    const size_t have_rows = c->cap * c->row_floats * sizeof *c->data;
    const size_t have_steps = c->cap * sizeof *c->steps;
    const size_t have_keys = c->cap * sizeof *c->slot_keys;
    const size_t have_map = c->map_cap;
    /* Room for the source's capacity, not just its used slots: the next snapshot of a table
     * that grew then still fits (pages never written cost nothing). */
    const size_t cap = t->cap > c->cap || c->row_floats != t->row_floats ? t->cap : c->cap;
    void *data = c->data, *steps = c->steps, *slot_keys = c->slot_keys, *keys = c->keys,
         *slots = c->slots;
    int rc = 0;
    if (c->row_floats != t->row_floats) {
        free(data);
        data = NULL;
    }
    rc |= ensure_block(&data, have_rows, cap * t->row_floats * sizeof *t->data);
    rc |= ensure_block(&steps, have_steps, cap * sizeof *t->steps);
    rc |= ensure_block(&slot_keys, have_keys, cap * sizeof *t->slot_keys);
    /* The key index takes the source's capacity (*c = *t below); a larger buffer is fine. */
    rc |= ensure_block(&keys, have_map * sizeof *t->keys, t->map_cap * sizeof *t->keys);
    rc |= ensure_block(&slots, have_map * sizeof *t->slots, t->map_cap * sizeof *t->slots);
    *c = *t;
    c->data = data;
    c->steps = steps;
    c->slot_keys = slot_keys;
    c->keys = keys;
    c->slots = slots;
    c->cap = cap;
    if (rc) {
        table_free(&c);
        *snap = NULL;
        return psrec_nomem(__func__);
    }
    /* One memcpy per contiguous block. */
    if (t->used) {
        memcpy(c->data, t->data, t->used * t->row_floats * sizeof *t->data);
        memcpy(c->steps, t->steps, t->used * sizeof *t->steps);
        memcpy(c->slot_keys, t->slot_keys, t->used * sizeof *t->slot_keys);
    }
    if (t->map_cap) {
        memcpy(c->keys, t->keys, t->map_cap * sizeof *t->keys);
        memcpy(c->slots, t->slots, t->map_cap * sizeof *t->slots);
    }
    *snap = c;
    return 0;
}

int table_clone(const Table *t, Table **out)
{
    *out = NULL;
    return table_snapshot(t, out);
}

const TableSpec *table_spec(const Table *t)
{
    return &t->spec;
}

int table_pull(Table *t, const uint64_t *keys, size_t n, float *out)
{
    const size_t w = t->spec.width;
    for (size_t i = 0; i < n; i++) {
        uint32_t slot;
        int rc = find_slot(t, keys[i], 1, &slot);
        if (rc)
            return rc;
        memcpy(out + i * w, t->data + slot * t->row_floats, w * sizeof *out);
    }
    return 0;
}

int table_push(Table *t, const uint64_t *keys, size_t n, const float *grads)
{
    const size_t w = t->spec.width;
    for (size_t i = 0; i < n; i++) {
        uint32_t slot;
        int rc = find_slot(t, keys[i], 1, &slot);
        if (rc)
            return rc;
        float *row = t->data + slot * t->row_floats;
        optim_apply(&t->opt, row, row + w, &t->steps[slot], grads + i * w, w);
    }
    return 0;
}

uint64_t table_rows_held(const Table *t)
{
    return t->used;
}

int table_row(Table *t, uint64_t key, float **param, float **state, uint32_t **step)
{
    uint32_t slot;
    int rc = find_slot(t, key, 0, &slot);
    if (rc)
        return rc;
    float *row = t->data + slot * t->row_floats;
    if (param)
        *param = row;
    if (state)
        *state = row + t->spec.width;
    if (step)
        *step = &t->steps[slot];
    return 0;
}

static void section_name(char *out, size_t size, const char *table, const char *part)
{
    snprintf(out, size, "%s.%s", table, part);
}

int table_save(const Table *t, CkptWriter *w)
{
    char name[CKPT_NAME_MAX];
    TableSavedInfo m = {.id = t->spec.id,
                       .width = t->spec.width,
                       .dense = (uint32_t)t->spec.dense,
                       .state_per_float = (uint32_t)optim_state_per_float(t->opt.kind),
                       .rows = t->spec.rows,
                       .held = t->used};
    int rc;
    section_name(name, sizeof name, t->spec.name, "meta");
    if ((rc = ckpt_write_section(w, name, &m, sizeof m)))
        return rc;
    section_name(name, sizeof name, t->spec.name, "keys");
    if ((rc = ckpt_write_section(w, name, t->slot_keys, t->used * sizeof *t->slot_keys)))
        return rc;
    section_name(name, sizeof name, t->spec.name, "data");
    if ((rc = ckpt_write_section(w, name, t->data, t->used * t->row_floats * sizeof *t->data)))
        return rc;
    section_name(name, sizeof name, t->spec.name, "steps");
    return ckpt_write_section(w, name, t->steps, t->used * sizeof *t->steps);
}

int table_saved_info(const CkptReader *r, const char *table, TableSavedInfo *out)
{
    char name[CKPT_NAME_MAX];
    const void *p;
    size_t n;
    section_name(name, sizeof name, table, "meta");
    if (ckpt_section(r, name, &p, &n))
        return psrec_errf(PSREC_E_NOTFOUND, "checkpoint has no table '%s'", table);
    if (n != sizeof *out)
        return psrec_errf(PSREC_E_FORMAT, "table '%s': bad meta section", table);
    memcpy(out, p, sizeof *out);
    /* Bounds every reader relies on: a row's saved floats stay small (no optimizer keeps more
     * than two floats of state per weight) and a file never holds more rows than the table
     * has, so no size computed from them overflows. */
    if (out->width == 0 || out->state_per_float > 2 || out->held > out->rows)
        return psrec_errf(PSREC_E_FORMAT,
                          "table '%s': bad meta section (width %u, %u state floats per weight, "
                          "%llu of %llu rows held)",
                          table, out->width, out->state_per_float,
                          (unsigned long long)out->held, (unsigned long long)out->rows);
    return 0;
}

/* A section of `bytes` holds exactly `rows` rows of `row_bytes` (> 0). */
static int holds_rows(size_t bytes, size_t row_bytes, uint64_t rows)
{
    return bytes % row_bytes == 0 && bytes / row_bytes == rows;
}

int table_load(Table *t, const CkptReader *r, int params_only)
{
    return table_load_filtered(t, r, params_only, NULL, NULL);
}

int table_load_filtered(Table *t, const CkptReader *r, int params_only, TableRowFilter keep,
                        void *ctx)
{
    char name[CKPT_NAME_MAX];
    const void *kp, *dp, *sp;
    size_t ks, ds, ss;
    TableSavedInfo m;
    int rc = table_saved_info(r, t->spec.name, &m);
    if (rc)
        return rc;
    size_t spf = optim_state_per_float(t->opt.kind);
    /* The storage kind may differ (a lazy-dense shard saves a dense table sparsely): rows are
     * keyed either way. */
    if (m.width != t->spec.width || m.rows != t->spec.rows)
        return psrec_errf(PSREC_E_FORMAT,
                          "table '%s': checkpoint has %llu rows of %u, the model wants %llu of %u",
                          t->spec.name, (unsigned long long)m.rows, m.width,
                          (unsigned long long)t->spec.rows, t->spec.width);
    if (!params_only && m.state_per_float != spf)
        return psrec_errf(PSREC_E_FORMAT, "table '%s': checkpoint optimizer state differs",
                          t->spec.name);
    const size_t saved_row = (size_t)m.width * (1 + m.state_per_float);
    /* Section sizes are compared by division: held comes from the file, and a product could
     * wrap to a size that matches (a fuzzer found one). */
    int bad = 0;
    section_name(name, sizeof name, t->spec.name, "keys");
    bad |= ckpt_section(r, name, &kp, &ks) || !holds_rows(ks, sizeof(uint64_t), m.held);
    section_name(name, sizeof name, t->spec.name, "data");
    bad |= ckpt_section(r, name, &dp, &ds) ||
           !holds_rows(ds, saved_row * sizeof(float), m.held);
    section_name(name, sizeof name, t->spec.name, "steps");
    bad |= ckpt_section(r, name, &sp, &ss) || !holds_rows(ss, sizeof(uint32_t), m.held);
    if (bad)
        return psrec_errf(PSREC_E_FORMAT, "table '%s': sections missing or of the wrong size",
                          t->spec.name);
    const uint64_t *keys = kp;
    const float *data = dp;
    const uint32_t *steps = sp;
    for (uint64_t i = 0; i < m.held; i++) {
        uint32_t slot;
        if (keep && !keep(ctx, t->spec.id, keys[i]))
            continue;
        if ((rc = find_slot(t, keys[i], FIND_CREATE_BLANK, &slot)))
            return rc;
        float *row = t->data + slot * t->row_floats;
        const float *src = data + i * saved_row;
        if (params_only) {
            memcpy(row, src, m.width * sizeof *row);
        } else {
            memcpy(row, src, t->row_floats * sizeof *row);
            t->steps[slot] = steps[i];
        }
    }
    return 0;
}
