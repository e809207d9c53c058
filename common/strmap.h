/* StrMap: a string -> u32 hash map for millions of keys (news ids, user ids, words,
 * categories). Keys are byte strings of any content (NUL included) and length, the empty
 * string included; they are copied into the map, so callers may pass borrowed spans.
 * No deletion. Iteration is in insertion order, so anything built from it is deterministic.
 * Not thread-safe: concurrent strmap_get() calls are fine only while nobody writes. */
#ifndef PSREC_COMMON_STRMAP_H
#define PSREC_COMMON_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct StrMap StrMap;

/* Most keys one map holds. */
#define STRMAP_MAX_KEYS 0x7fffffffu

/* One entry, as iteration reports it. key points to the map's own copy, which is followed by
 * a '\0' (not counted in len) and stays valid and unchanged until strmap_free(), however the
 * map grows. */
typedef struct StrMapEntry {
    const char *key;
    uint32_t len;
    uint32_t val;
} StrMapEntry;

/* New empty map sized for expected_keys entries without growing (0 for a small start).
 * Returns NULL when out of memory. Free with strmap_free(). */
StrMap *strmap_new(size_t expected_keys);

/* Free the map and every key copy, set *map to NULL. NULL or *map == NULL is a no-op. */
void strmap_free(StrMap **map);

/* Look up key s[0..n) (s may be NULL when n == 0).
 * Returns 1 and sets *val (when val is non-NULL) if present, 0 if absent. */
int strmap_get(const StrMap *map, const char *s, size_t n, uint32_t *val);

/* Batched lookups, for a caller resolving many keys at once (prep resolves a behaviors
 * line's ~50 news ids): hash every key, prefetch every key's home slot, then look them up,
 * so the cache misses of a large map overlap instead of following one another.
 *   strmap_hash      the map's hash of s[0..n) (the same for every map)
 *   strmap_prefetch  a hint only: start loading the home slot of hash h into the cache
 *   strmap_get_hashed  strmap_get with h = strmap_hash(s, n) given (a wrong h gives a wrong
 *                    answer); same results as strmap_get. */
uint64_t strmap_hash(const char *s, size_t n);
void strmap_prefetch(const StrMap *map, uint64_t h);
int strmap_get_hashed(const StrMap *map, const char *s, size_t n, uint64_t h, uint32_t *val);

/* Insert key s[0..n) with new_val unless present; never overwrites.
 *   val       when non-NULL, set to the key's value: new_val if inserted, else the old one
 *   inserted  when non-NULL, set to 1 if the key was added, 0 if it was already there
 * Typical use, dense ids: strmap_intern(m, s, n, (uint32_t)strmap_count(m), &id, NULL).
 * Returns 0, PSREC_E_NOMEM (map unchanged), or PSREC_E_RANGE when the key is longer than
 * UINT32_MAX bytes or the map already holds STRMAP_MAX_KEYS keys. */
int strmap_intern(StrMap *map, const char *s, size_t n, uint32_t new_val, uint32_t *val,
                  int *inserted);

/* Insert key s[0..n) with val, or overwrite its value if present (its position in the
 * iteration order does not change). Returns as strmap_intern(). */
int strmap_set(StrMap *map, const char *s, size_t n, uint32_t val);

/* Number of keys. */
size_t strmap_count(const StrMap *map);

/* Next entry in insertion order.
 *   pos  cursor, start with 0 (it is the entry's insertion index: entry k is the k-th key
 *        ever inserted, 0-based)
 *   e    set to the entry
 * Returns 1 while entries remain, then 0. Inserting while iterating is allowed: the new keys
 * come at the end. */
int strmap_next(const StrMap *map, size_t *pos, StrMapEntry *e);

#endif
