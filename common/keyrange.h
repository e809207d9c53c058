/* Key partitioning: which server shard owns a row of a parameter table. Every worker and
 * every tool that needs to find a row (the PS client, checkpoint inspection) asks this one
 * function, so they cannot disagree.
 *
 * Sparse tables (word, category, user): a hash of (table, key), so ids that cluster (new
 * users get consecutive ids, frequent words have small ids) still spread evenly.
 * Dense tables: row `key` of table `table` goes to (table + key) mod shards, round-robin,
 * so a weight matrix's rows (4H floats each) are spread over every shard and no shard carries
 * all of the dense traffic; the per-table offset spreads the one-row bias tables too.
 *
 * The mapping is part of a multi-shard checkpoint's meaning (a shard saves the rows it owns):
 * changing it breaks resuming old checkpoints with the same shard count. */
#ifndef PSREC_COMMON_KEYRANGE_H
#define PSREC_COMMON_KEYRANGE_H

#include <stdint.h>

/* The shard (0..shards-1) that owns row key of table (a ParamTable id; ids >= PARAM_FIRST_DENSE
 * are dense). A pure function of its arguments, the same on every platform. shards 0 is
 * treated as 1 (returns 0). Thread-safe. */
uint32_t keyrange_owner(uint32_t table, uint64_t key, uint32_t shards);

#endif
