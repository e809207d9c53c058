/* Key partitioning (see keyrange.h).
 *
 * Invariants: the result is < shards (or 0 when shards <= 1); it depends only on (table, key,
 * shards). Sparse rows: rng_mix64 of the key mixed with a per-table salt, so the same key of
 * two tables lands on unrelated shards. Dense rows: round-robin with a per-table offset.
 * Not done here: rebalancing, replication, or any knowledge of which shards are alive. */
#include "common/keyrange.h"

#include "common/params.h"
#include "common/rng.h"

uint32_t keyrange_owner(uint32_t table, uint64_t key, uint32_t shards)
{
    if (shards <= 1)
        return 0;
    if (table >= PARAM_FIRST_DENSE)
        return (uint32_t)(((uint64_t)table + key) % shards);
    return (uint32_t)(rng_mix64(key ^ rng_mix64((uint64_t)table + 1)) % shards);
}
