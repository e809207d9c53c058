/* Shard: routes pull/push requests to tables and counts them. Validation of table ids and
 * key ranges happens here (tables check keys too), so a bad request is refused before any
 * row is touched and never crashes the shard. With lazy_dense, dense tables are created as
 * sparse ones (rows on first touch); s->specs keeps the schema's own specs either way.
 * shard_clone exists so a checkpoint pauses training only for a memcpy of the state. */
#include "server/shard.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>

struct Shard {
    ShardOptions opt;
    TableSpec specs[PARAM_TABLES];
    Table *tables[PARAM_TABLES];
    ShardStats stats;
};

int shard_new(const ShardOptions *opt, Shard **out)
{
    *out = NULL;
    Shard *s = calloc(1, sizeof *s);
    if (!s)
        return psrec_nomem(__func__);
    s->opt = *opt;
    params_specs(&opt->shape, s->specs);
    for (int t = 0; t < PARAM_TABLES; t++) {
        TableSpec spec = s->specs[t];
        if (opt->lazy_dense)
            spec.dense = 0;
        int rc = table_new(&spec, &opt->optim, opt->seed, &s->tables[t]);
        if (rc) {
            shard_free(&s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

void shard_free(Shard **sp)
{
    Shard *s = *sp;
    if (!s)
        return;
    for (int t = 0; t < PARAM_TABLES; t++)
        table_free(&s->tables[t]);
    free(s);
    *sp = NULL;
}

static int check_table(Shard *s, uint32_t table)
{
    if (table < PARAM_TABLES)
        return 0;
    s->stats.bad_requests++;
    return psrec_errf(PSREC_E_RANGE, "no table %u", table);
}

int shard_pull(Shard *s, uint32_t table, const uint64_t *keys, size_t n, float *out)
{
    int rc = check_table(s, table);
    if (rc)
        return rc;
    if ((rc = table_pull(s->tables[table], keys, n, out))) {
        s->stats.bad_requests++;
        return rc;
    }
    s->stats.pulls++;
    s->stats.rows_pulled += n;
    return 0;
}

int shard_push(Shard *s, uint32_t table, const uint64_t *keys, size_t n, const float *grads)
{
    int rc = check_table(s, table);
    if (rc)
        return rc;
    if ((rc = table_push(s->tables[table], keys, n, grads))) {
        s->stats.bad_requests++;
        return rc;
    }
    s->stats.pushes++;
    s->stats.rows_pushed += n;
    return 0;
}

int shard_admit(Shard *s, uint32_t table, const uint64_t *keys, size_t n)
{
    if (!s->opt.max_rows || table >= PARAM_TABLES)
        return 0;
    const uint64_t held = table_rows_held(s->tables[table]);
    if (held + n <= s->opt.max_rows) /* fits even if every key is new: no lookups */
        return 0;
    const uint64_t fresh = table_count_missing(s->tables[table], keys, n);
    if (held + fresh <= s->opt.max_rows)
        return 0;
    s->stats.over_limit++;
    return psrec_errf(PSREC_E_RANGE, "table %s holds %llu rows; %llu new ones would pass "
                      "ps.max_rows_per_table = %llu", s->specs[table].name,
                      (unsigned long long)held, (unsigned long long)fresh,
                      (unsigned long long)s->opt.max_rows);
}

uint32_t shard_table_width(const Shard *s, uint32_t table)
{
    return table < PARAM_TABLES ? s->specs[table].width : 0;
}

uint64_t shard_table_rows(const Shard *s, uint32_t table)
{
    return table < PARAM_TABLES ? s->specs[table].rows : 0;
}

void shard_stats(const Shard *s, ShardStats *out)
{
    *out = s->stats;
    out->rows_held = 0;
    for (int t = 0; t < PARAM_TABLES; t++)
        out->rows_held += table_rows_held(s->tables[t]);
}

int shard_save(const Shard *s, CkptWriter *w)
{
    for (int t = 0; t < PARAM_TABLES; t++) {
        int rc = table_save(s->tables[t], w);
        if (rc)
            return rc;
    }
    return 0;
}

int shard_load(Shard *s, const CkptReader *r, int params_only)
{
    return shard_load_filtered(s, r, params_only, NULL, NULL);
}

int shard_load_filtered(Shard *s, const CkptReader *r, int params_only, TableRowFilter keep,
                        void *ctx)
{
    for (int t = 0; t < PARAM_TABLES; t++) {
        int rc = table_load_filtered(s->tables[t], r, params_only, keep, ctx);
        if (rc)
            return rc;
    }
    return 0;
}

int shard_snapshot(const Shard *s, Shard **snap)
{
    Shard *c = *snap;
    if (!c && !(c = calloc(1, sizeof *c)))
        return psrec_nomem(__func__);
    c->opt = s->opt;
    c->stats = s->stats;
    memcpy(c->specs, s->specs, sizeof c->specs);
    for (int t = 0; t < PARAM_TABLES; t++) {
        int rc = table_snapshot(s->tables[t], &c->tables[t]);
        if (rc) {
            shard_free(&c);
            *snap = NULL;
            return rc;
        }
    }
    *snap = c;
    return 0;
}

int shard_clone(const Shard *s, Shard **out)
{
    *out = NULL;
    return shard_snapshot(s, out);
}
