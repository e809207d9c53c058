/* Parameter tables held by a server shard: sparse embedding tables whose rows are created on
 * first touch, and dense tables (chunks of LSTM weights) created whole.
 *
 * A row's initial value is a pure function of (seed, table id, row key), so it does not
 * depend on which shard owns the row or on the order rows are touched: any sharding of a
 * run starts from the same parameters. Memory grows only with the rows that exist.
 * Not thread-safe: a table belongs to one shard loop (or one single-process trainer). */
#ifndef PSREC_SERVER_TABLE_H
#define PSREC_SERVER_TABLE_H

#include "common/ckpt.h"
#include "common/params.h"
#include "server/optim.h"

#include <stddef.h>
#include <stdint.h>


typedef struct Table Table;

/* Create a table; a dense one allocates and initialises every row now.
 * Returns 0, PSREC_E_RANGE (width 0, dense with rows 0) or PSREC_E_NOMEM. */
int table_new(const TableSpec *spec, const OptimConfig *opt, uint64_t seed, Table **out);
void table_free(Table **t);
const TableSpec *table_spec(const Table *t);

/* Copy rows keys[0..n) into out (n, width), creating missing sparse rows.
 * Returns 0, PSREC_E_RANGE for a key >= rows (nothing copied after it), PSREC_E_NOMEM. */
int table_pull(Table *t, const uint64_t *keys, size_t n, float *out);

/* Apply grads (n, width) to rows keys[0..n) with the table's optimizer, creating missing rows
 * first. A key may appear more than once; each occurrence is one optimizer step.
 * Returns as table_pull. */
int table_push(Table *t, const uint64_t *keys, size_t n, const float *grads);

/* How many of keys[0..n) have no row yet (a repeated absent key counts each time; keys out
 * of range count too). Allocates nothing, changes nothing. */
uint64_t table_count_missing(const Table *t, const uint64_t *keys, size_t n);

/* Rows that exist (sparse: touched so far; dense: all). */
uint64_t table_rows_held(const Table *t);

/* Direct access to one existing row for checkpoints and tests: param (width) floats, state
 * (width * optim_state_per_float) floats and the step count. Returns 0 or PSREC_E_NOTFOUND.
 * Pointers are valid until the next call that can create rows. */
int table_row(Table *t, uint64_t key, float **param, float **state, uint32_t **step);

/* Save every existing row (keys, parameters, optimizer state, steps) as sections
 * "<name>.meta", "<name>.keys", "<name>.data", "<name>.steps" of a checkpoint. */
int table_save(const Table *t, CkptWriter *w);

/* Load rows saved by table_save into t (same name, width and key range). With params_only,
 * optimizer state and steps are left fresh (evaluation does not need them, and the saved
 * state may be of another optimizer). Rows absent from the file keep their initial value.
 * Returns 0, PSREC_E_NOTFOUND (no such table in the file) or PSREC_E_FORMAT (shape differs). */
int table_load(Table *t, const CkptReader *r, int params_only);

/* Decides whether a saved row is loaded: nonzero keeps row key of table (a ParamTable id). */
typedef int (*TableRowFilter)(void *ctx, uint32_t table, uint64_t key);

/* table_load, keeping only the saved rows keep(ctx, id, key) accepts (keep NULL: all), with
 * their optimizer state and steps. Used to load a checkpoint into another shard count. */
int table_load_filtered(Table *t, const CkptReader *r, int params_only, TableRowFilter keep,
                        void *ctx);

/* A deep copy of t: rows, optimizer state, steps, and the key index, each contiguous block
 * copied with one memcpy. The copy is independent of t (a background thread may save it while
 * t keeps training). Returns 0 or PSREC_E_NOMEM. */
int table_clone(const Table *t, Table **out);

/* table_clone into *snap: NULL, or an earlier copy (of any table) whose memory is reused
 * where it is large enough, which avoids faulting in fresh pages (several times the cost of
 * the copy itself for large tables). On error *snap is freed and NULL. */
int table_snapshot(const Table *t, Table **snap);

/* What table_save recorded about a table, read back without loading its rows. */
typedef struct TableSavedInfo {
    uint32_t id, width, dense, state_per_float;
    uint64_t rows, held; /* key range; rows saved */
} TableSavedInfo;

/* Read the "<name>.meta" section of table `name`. Returns 0, PSREC_E_NOTFOUND or
 * PSREC_E_FORMAT. */
int table_saved_info(const CkptReader *r, const char *name, TableSavedInfo *out);

/* The initial value of a row, as table_pull would create it. */
void table_init_row(const TableSpec *spec, uint64_t seed, uint64_t key, float *out);

#endif
