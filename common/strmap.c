/* StrMap: open addressing with linear probing over a power-of-two slot array, kept at most
 * 70% full.
 *
 * Layout, chosen for millions of random lookups of short ids (MIND news and user ids, most
 * words): a 16-byte slot holds a key of at most 7 bytes itself (bytes plus length packed in
 * 64 bits) together with its value, so looking such a key up reads one slot run and nothing
 * else. For a longer key the slot holds its first 8 bytes, and only a slot whose 8 bytes match
 * leads to the entry and the key copy. entries[] keeps the keys in insertion order (for
 * iteration and rehashing); key bytes live in an arena of chunks growing from 4 KiB to 1 MiB
 * (so a map of a few keys stays small; a long key gets a chunk of its own), so a key copy
 * never moves and costs no malloc of its own.
 *
 * Invariants: count < 0.7 * nslots; every key is reachable from its home slot (hash's low
 * bits) by a run of non-empty slots; entries[k] is the k-th key inserted; a slot's val equals
 * its entry's val. Does not delete keys (prep never needs to), and the hash is not seeded, so
 * it is not meant for keys chosen by an attacker. */
#include "common/strmap.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define CHUNK_MIN ((size_t)4 << 10)
#define CHUNK_MAX ((size_t)1 << 20)
#define MIN_SLOTS 16

typedef struct Entry {
    const char *key;  /* arena copy, '\0'-terminated */
    uint32_t len;
    uint32_t val;
} Entry;

#define SHORT_MAX 7
#define SLOT_SHORT 0x80000000u

typedef struct Slot {
    uint64_t key8;  /* short key: its bytes, zero-padded, length in the top byte;
                       long key: its first 8 bytes */
    uint32_t idx1;  /* entry index + 1, | SLOT_SHORT for a short key; 0 = empty */
    uint32_t val;   /* the entry's value */
} Slot;

typedef struct Chunk {
    struct Chunk *next;
    size_t used;
    size_t cap;
    char data[];
} Chunk;

struct StrMap {
    Slot *slots;      /* (nslots) */
    size_t nslots;    /* power of two */
    Entry *entries;   /* (ecap), first count used */
    size_t count;
    size_t ecap;
    Chunk *chunks;    /* head is the chunk being filled */
    size_t chunk_next; /* size of the next shared chunk: CHUNK_MIN, doubling to CHUNK_MAX */
};

/* 64-bit hash: a short key through hash_short(); a longer one through xxHash64-style rounds
 * over 8-, 4- and 1-byte pieces, then its avalanche. */
#define P1 0x9e3779b185ebca87ULL
#define P2 0xc2b2ae3d27d4eb4fULL
#define P3 0x165667b19e3779f9ULL
#define P4 0x85ebca77c2b2ae63ULL
#define P5 0x27d4eb2f165667c5ULL

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* x as read from little-endian memory (so key8_of puts byte i at bits 8i on any host). */
static inline uint32_t le32(uint32_t x)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return __builtin_bswap32(x);
#else
    return x;
#endif
}

static inline uint64_t key8_of(const char *s, size_t n);

/* A key of at most SHORT_MAX bytes (every MIND id, most words) is hashed as its key8 through
 * one multiply-xorshift finaliser: its 8 bytes already are the whole key, length included,
 * and the byte-wise rounds below cost more than the lookup's probing. */
static inline uint64_t hash_short(uint64_t key8)
{
    uint64_t h = key8 * P1;
    h ^= h >> 32;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    if (n <= SHORT_MAX)
        return hash_short(key8_of(s, n));
    const unsigned char *p = (const unsigned char *)s;
    uint64_t h = P5 + (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w = rotl64(w * P2, 31) * P1;
        h = rotl64(h ^ w, 27) * P1 + P4;
        p += 8;
        n -= 8;
    }
    if (n >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        h = rotl64(h ^ ((uint64_t)w * P1), 23) * P2 + P3;
        p += 4;
        n -= 4;
    }
    while (n > 0) {
        h = rotl64(h ^ ((uint64_t)*p * P5), 11) * P1;
        p++;
        n--;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* Slot.key8 of key s[0..n): exact for n <= SHORT_MAX, the first 8 bytes otherwise. The value
 * never leaves the process: it only has to be the same for the same key and differ for
 * different short keys. A short key is assembled from loads that stay inside s (two
 * overlapping 4-byte loads, or bytes 0, n/2 and n-1) and shifts: going through a byte buffer
 * on the stack stalled every lookup on a failed store-to-load forward (a quarter of
 * find_slot's time). Byte i of the key lands in bits 8i..8i+7, the length in the top byte. */
static inline uint64_t key8_of(const char *s, size_t n)
{
    uint64_t w;
    if (n > SHORT_MAX) {
        memcpy(&w, s, 8);
        return w;
    }
    const unsigned char *u = (const unsigned char *)s;
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, s, 4);
        memcpy(&hi, s + n - 4, 4);
        w = (uint64_t)le32(lo) | (uint64_t)le32(hi) << (8 * (n - 4)); /* overlap: same bytes */
    } else if (n > 0) {
        w = (uint64_t)u[0] | (uint64_t)u[n / 2] << (8 * (n / 2)) |
            (uint64_t)u[n - 1] << (8 * (n - 1));
    } else {
        w = 0;
    }
    return w | (uint64_t)n << 56;
}

#define HUGE_PAGE ((size_t)2 << 20)

/* A zeroed slot array of ns slots (free() releases it); NULL when out of memory. An array
 * of a huge page or more is aligned to huge pages and asks the kernel for them: lookups hit
 * random slots, so with 4 KiB pages a map of every MIND user (16 MiB of slots) also missed
 * the TLB on nearly every lookup. The advice is a hint; without it the array works as well. */
static Slot *slots_alloc(size_t ns)
{
    size_t bytes = ns * sizeof(Slot);
    if (bytes < HUGE_PAGE)
        return calloc(ns, sizeof(Slot));
    Slot *sl = aligned_alloc(HUGE_PAGE, bytes); /* ns is a power of two: bytes is a multiple */
    if (!sl)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(sl, bytes, MADV_HUGEPAGE);
#endif
    memset(sl, 0, bytes);
    return sl;
}

StrMap *strmap_new(size_t expected_keys)
{
    StrMap *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (expected_keys > STRMAP_MAX_KEYS)
        expected_keys = STRMAP_MAX_KEYS;
    /* The same 70% rule as upsert(), so expected_keys insertions never grow the slots. */
    size_t ns = MIN_SLOTS;
    while ((uint64_t)expected_keys * 10 > (uint64_t)ns * 7) {
        if (ns > SIZE_MAX / 2 / sizeof(Slot)) {
            free(m);
            return NULL;
        }
        ns *= 2;
    }
    m->nslots = ns;
    m->chunk_next = CHUNK_MIN;
    m->ecap = expected_keys > MIN_SLOTS ? expected_keys : MIN_SLOTS;
    m->slots = slots_alloc(ns);
    m->entries = m->ecap <= SIZE_MAX / sizeof(Entry) ? malloc(m->ecap * sizeof *m->entries)
                                                     : NULL;
    if (!m->slots || !m->entries) {
        strmap_free(&m);
        return NULL;
    }
    return m;
}

void strmap_free(StrMap **pm)
{
    if (!pm || !*pm)
        return;
    StrMap *m = *pm;
    Chunk *c = m->chunks;
    while (c) {
        Chunk *next = c->next;
        free(c);
        c = next;
    }
    free(m->slots);
    free(m->entries);
    free(m);
    *pm = NULL;
}

/* Slot holding key s[0..n) with hash h (*found = 1), or the empty slot ending its probe run
 * (*found = 0). The table always has an empty slot, so the loop ends. */
static size_t find_slot(const StrMap *m, const char *s, size_t n, uint64_t h, int *found)
{
    size_t mask = m->nslots - 1, i = (size_t)h & mask;
    uint64_t key8 = key8_of(s, n);
    uint32_t kind = n <= SHORT_MAX ? SLOT_SHORT : 0;
    for (;;) {
        const Slot *sl = &m->slots[i];
        if (sl->idx1 == 0) {
            *found = 0;
            return i;
        }
        if (sl->key8 == key8 && (sl->idx1 & SLOT_SHORT) == kind) {
            if (kind) {
                *found = 1;
                return i;
            }
            const Entry *e = &m->entries[sl->idx1 - 1]; /* long key: no SLOT_SHORT bit */
            if (e->len == n && memcmp(e->key + 8, s + 8, n - 8) == 0) {
                *found = 1;
                return i;
            }
        }
        i = (i + 1) & mask;
    }
}

static void slot_fill(Slot *sl, const Entry *e, size_t k)
{
    sl->key8 = key8_of(e->key, e->len);
    sl->idx1 = ((uint32_t)k + 1) | (e->len <= SHORT_MAX ? SLOT_SHORT : 0);
    sl->val = e->val;
}

/* Double the slot array and reinsert every entry, in insertion order (keys are read
 * sequentially from the arena). */
static int grow_slots(StrMap *m)
{
    if (m->nslots > SIZE_MAX / 2 / sizeof(Slot))
        return psrec_nomem(__func__);
    size_t ns = m->nslots * 2, mask = ns - 1;
    Slot *slots = slots_alloc(ns);
    if (!slots)
        return psrec_nomem(__func__);
    for (size_t k = 0; k < m->count; k++) {
        const Entry *e = &m->entries[k];
        size_t i = (size_t)hash_bytes(e->key, e->len) & mask;
        while (slots[i].idx1)
            i = (i + 1) & mask;
        slot_fill(&slots[i], e, k);
    }
    free(m->slots);
    m->slots = slots;
    m->nslots = ns;
    return 0;
}

static int grow_entries(StrMap *m)
{
    if (m->ecap > SIZE_MAX / 2 / sizeof(Entry))
        return psrec_nomem(__func__);
    size_t ncap = m->ecap * 2;
    Entry *e = realloc(m->entries, ncap * sizeof *e);
    if (!e)
        return psrec_nomem(__func__);
    m->entries = e;
    m->ecap = ncap;
    return 0;
}

/* Copy s[0..n) plus a '\0' into the arena; NULL when out of memory. */
static const char *arena_copy(StrMap *m, const char *s, size_t n)
{
    size_t need = n + 1;
    Chunk *c = m->chunks;
    if (!c || c->cap - c->used < need) {
        int own = need > CHUNK_MAX / 4;
        size_t size = m->chunk_next;
        while (!own && size - sizeof(Chunk) < need)
            size *= 2;
        size_t cap = own ? need : size - sizeof(Chunk);
        Chunk *nc = malloc(sizeof(Chunk) + cap);
        if (!nc)
            return NULL;
        if (!own)
            m->chunk_next = size < CHUNK_MAX ? size * 2 : CHUNK_MAX;
        nc->used = 0;
        nc->cap = cap;
        if (own && c) {
            /* Keep filling the current head; the long key's chunk goes behind it. */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            m->chunks = nc;
        }
        c = nc;
    }
    char *p = c->data + c->used;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    c->used += need;
    return p;
}

/* Find or insert; overwrite selects strmap_set() semantics. */
static int upsert(StrMap *m, const char *s, size_t n, uint32_t new_val, int overwrite,
                  uint32_t *val, int *inserted)
{
    if (n > UINT32_MAX)
        return psrec_errf(PSREC_E_RANGE, "strmap: key of %zu bytes is too long", n);
    uint64_t h = hash_bytes(s, n);
    int found;
    size_t i = find_slot(m, s, n, h, &found);
    if (found) {
        Slot *sl = &m->slots[i];
        if (overwrite) {
            sl->val = new_val;
            m->entries[(sl->idx1 & ~SLOT_SHORT) - 1].val = new_val;
        }
        if (val)
            *val = sl->val;
        if (inserted)
            *inserted = 0;
        return 0;
    }
    if (m->count >= STRMAP_MAX_KEYS)
        return psrec_errf(PSREC_E_RANGE, "strmap: more than %u keys", STRMAP_MAX_KEYS);
    /* Every allocation happens before the map changes, so a failure leaves it as it was. */
    if ((uint64_t)(m->count + 1) * 10 > (uint64_t)m->nslots * 7) {
        if (grow_slots(m))
            return psrec_errf(PSREC_E_NOMEM, "strmap: out of memory for %zu slots",
                              m->nslots * 2);
        i = find_slot(m, s, n, h, &found);
    }
    if (m->count == m->ecap && grow_entries(m))
        return psrec_errf(PSREC_E_NOMEM, "strmap: out of memory for %zu keys", m->ecap * 2);
    const char *key = arena_copy(m, s, n);
    if (!key)
        return psrec_errf(PSREC_E_NOMEM, "strmap: out of memory for a %zu-byte key", n);
    Entry *e = &m->entries[m->count];
    e->key = key;
    e->len = (uint32_t)n;
    e->val = new_val;
    slot_fill(&m->slots[i], e, m->count);
    m->count++;
    if (val)
        *val = new_val;
    if (inserted)
        *inserted = 1;
    return 0;
}

int strmap_get(const StrMap *m, const char *s, size_t n, uint32_t *val)
{
    return strmap_get_hashed(m, s, n, hash_bytes(s, n), val);
}

uint64_t strmap_hash(const char *s, size_t n)
{
    return hash_bytes(s, n);
}

void strmap_prefetch(const StrMap *m, uint64_t h)
{
    __builtin_prefetch(&m->slots[(size_t)h & (m->nslots - 1)]);
}

int strmap_get_hashed(const StrMap *m, const char *s, size_t n, uint64_t h, uint32_t *val)
{
    if (n > UINT32_MAX)
        return 0;
    int found;
    size_t i = find_slot(m, s, n, h, &found);
    if (found && val)
        *val = m->slots[i].val;
    return found;
}

int strmap_intern(StrMap *m, const char *s, size_t n, uint32_t new_val, uint32_t *val,
                  int *inserted)
{
    return upsert(m, s, n, new_val, 0, val, inserted);
}

int strmap_set(StrMap *m, const char *s, size_t n, uint32_t val)
{
    return upsert(m, s, n, val, 1, NULL, NULL);
}

size_t strmap_count(const StrMap *m)
{
    return m->count;
}

int strmap_next(const StrMap *m, size_t *pos, StrMapEntry *e)
{
    if (*pos >= m->count)
        return 0;
    const Entry *x = &m->entries[*pos];
    e->key = x->key;
    e->len = x->len;
    e->val = x->val;
    (*pos)++;
    return 1;
}
