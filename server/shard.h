/* A server shard: the tables (or the parts of them) one shard owns, and the operations a
 * worker's pull/push turn into. Single-process training runs one shard in-process that owns
 * everything; the distributed trainer runs one per server rank behind an event loop.
 * Not thread-safe: one shard, one thread (no locks on parameters). */
#ifndef PSREC_SERVER_SHARD_H
#define PSREC_SERVER_SHARD_H

#include "common/ckpt.h"
#include "common/params.h"
#include "server/optim.h"
#include "server/table.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ShardOptions {
    ParamShape shape;
    OptimConfig optim;
    uint64_t seed;      /* parameter init seed (same on every shard) */
    int lazy_dense;     /* 1: dense tables create a row on first touch, like sparse ones, so
                           a shard of a multi-shard job holds only the dense rows it is asked
                           for (initial values are the same either way: they depend on
                           (seed, table, key) only). Checkpoints then record those tables as
                           sparse, and table_load only accepts them into a shard made with
                           the same setting. 0: dense tables allocated whole (default). */
    uint64_t max_rows;  /* ps.max_rows_per_table: shard_admit refuses a request that would
                           make a table hold more rows; 0: no cap */
} ShardOptions;

typedef struct ShardStats {
    uint64_t pulls, pushes;      /* requests */
    uint64_t rows_pulled, rows_pushed;
    uint64_t rows_held;          /* over all tables */
    uint64_t bad_requests;       /* refused: unknown table, key out of range */
    uint64_t over_limit;         /* refused by shard_admit (max_rows) */
} ShardStats;

typedef struct Shard Shard;

/* Create a shard holding every table of the schema (dense tables allocated now, unless
 * opt->lazy_dense).
 * Returns 0 or an error code with detail. */
int shard_new(const ShardOptions *opt, Shard **out);
void shard_free(Shard **s);

/* Copy rows of table into out (n, width). Unknown table or key out of range: PSREC_E_RANGE,
 * counted as a bad request. */
int shard_pull(Shard *s, uint32_t table, const uint64_t *keys, size_t n, float *out);
/* Apply gradient rows (n, width) with the optimizer. Errors as shard_pull. */
int shard_push(Shard *s, uint32_t table, const uint64_t *keys, size_t n, const float *grads);

/* May a request for keys[0..n) of table go ahead? Refuses (PSREC_E_RANGE, counted in
 * over_limit, message naming the table and ps.max_rows_per_table) when the rows it would
 * create would make the table hold more than opt->max_rows. A key absent from the table is
 * counted each time it appears (a worker's requests carry distinct keys), so near the cap a
 * request with repeated new keys may be refused although it would fit. Changes nothing
 * else; shard_pull / shard_push do not check (an in-process trainer needs no cap). */
int shard_admit(Shard *s, uint32_t table, const uint64_t *keys, size_t n);

/* Width (floats per row) and key range of a table; 0 for an unknown table. */
uint32_t shard_table_width(const Shard *s, uint32_t table);
uint64_t shard_table_rows(const Shard *s, uint32_t table);

void shard_stats(const Shard *s, ShardStats *out);

/* Save every table of the shard into w / load them from r (see table_save/table_load). */
int shard_save(const Shard *s, CkptWriter *w);
int shard_load(Shard *s, const CkptReader *r, int params_only);

/* shard_load keeping only the saved rows keep(ctx, table, key) accepts (NULL: all), with their
 * optimizer state: loading a checkpoint written with another shard count. */
int shard_load_filtered(Shard *s, const CkptReader *r, int params_only, TableRowFilter keep,
                        void *ctx);

/* A deep copy of s (every table with its optimizer state and steps, options, stats) for a
 * consistent checkpoint: the shard loop keeps training s while another thread saves the copy,
 * then frees it. The copy shares nothing with s; the caller owns *out. Runs on s's thread.
 * Returns 0 or PSREC_E_NOMEM. */
int shard_clone(const Shard *s, Shard **out);

/* shard_clone into *snap: NULL, or an earlier copy whose memory is reused (no fresh pages to
 * fault in: at E=H=128, 50k words, 100k users, ~25 ms instead of ~150 ms). A shard loop keeps
 * its snapshot between checkpoints and refreshes it once the writer thread is done with it.
 * On error *snap is freed and NULL. Returns 0 or PSREC_E_NOMEM. */
int shard_snapshot(const Shard *s, Shard **snap);

#endif
