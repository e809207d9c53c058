/* StrMap suite: lookups, no-overwrite interning, overwrite by set, binary and empty keys,
 * growth from a tiny table to a million keys, key pointer stability, insertion-order
 * iteration. */
#include "common/strmap.h"
#include "testutil/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_intern_get_set(void)
{
    StrMap *m = strmap_new(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    uint32_t v = 0;
    int ins = -1;
    CU_ASSERT_EQUAL(strmap_get(m, "N1", 2, &v), 0);
    CU_ASSERT_EQUAL(strmap_intern(m, "N1", 2, 7, &v, &ins), 0);
    CU_ASSERT_EQUAL(v, 7);
    CU_ASSERT_EQUAL(ins, 1);
    /* A second intern keeps the first value and reports it. */
    CU_ASSERT_EQUAL(strmap_intern(m, "N1", 2, 99, &v, &ins), 0);
    CU_ASSERT_EQUAL(v, 7);
    CU_ASSERT_EQUAL(ins, 0);
    CU_ASSERT_EQUAL(strmap_get(m, "N1", 2, &v), 1);
    CU_ASSERT_EQUAL(v, 7);
    /* The key is compared by bytes, not by pointer or NUL: a longer buffer's prefix matches. */
    CU_ASSERT_EQUAL(strmap_get(m, "N12", 2, &v), 1);
    CU_ASSERT_EQUAL(strmap_get(m, "N12", 3, &v), 0);
    CU_ASSERT_EQUAL(strmap_get(m, "N", 1, NULL), 0);
    /* set overwrites and inserts. */
    CU_ASSERT_EQUAL(strmap_set(m, "N1", 2, 42), 0);
    CU_ASSERT_EQUAL(strmap_get(m, "N1", 2, &v), 1);
    CU_ASSERT_EQUAL(v, 42);
    CU_ASSERT_EQUAL(strmap_set(m, "N2", 2, 5), 0);
    CU_ASSERT_EQUAL(strmap_get(m, "N2", 2, &v), 1);
    CU_ASSERT_EQUAL(v, 5);
    CU_ASSERT_EQUAL(strmap_count(m), 2);
    /* Iteration sees the overwritten value. */
    size_t pos = 0;
    StrMapEntry e;
    CU_ASSERT_EQUAL_FATAL(strmap_next(m, &pos, &e), 1);
    CU_ASSERT(e.len == 2 && memcmp(e.key, "N1", 3) == 0 && e.val == 42);
    /* NULL out-params are allowed. */
    CU_ASSERT_EQUAL(strmap_intern(m, "N3", 2, 3, NULL, NULL), 0);
    CU_ASSERT_EQUAL(strmap_count(m), 3);
    strmap_free(&m);
    CU_ASSERT_PTR_NULL(m);
    strmap_free(&m);
    strmap_free(NULL);
}

static void test_empty_key(void)
{
    StrMap *m = strmap_new(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    uint32_t v;
    int ins;
    CU_ASSERT_EQUAL(strmap_get(m, NULL, 0, &v), 0);
    CU_ASSERT_EQUAL(strmap_intern(m, NULL, 0, 11, &v, &ins), 0);
    CU_ASSERT_EQUAL(ins, 1);
    /* "" through a real pointer is the same key. */
    CU_ASSERT_EQUAL(strmap_intern(m, "", 0, 12, &v, &ins), 0);
    CU_ASSERT_EQUAL(ins, 0);
    CU_ASSERT_EQUAL(v, 11);
    CU_ASSERT_EQUAL(strmap_get(m, "x", 0, &v), 1);
    CU_ASSERT_EQUAL(strmap_get(m, "x", 1, NULL), 0);
    size_t pos = 0;
    StrMapEntry e;
    CU_ASSERT_EQUAL(strmap_next(m, &pos, &e), 1);
    CU_ASSERT_EQUAL(e.len, 0);
    CU_ASSERT_PTR_NOT_NULL(e.key);
    CU_ASSERT_EQUAL(e.key[0], '\0');
    CU_ASSERT_EQUAL(strmap_next(m, &pos, &e), 0);
    strmap_free(&m);
}

static void test_binary_keys(void)
{
    StrMap *m = strmap_new(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    /* Every single byte value, NUL included, is its own key. */
    for (int b = 0; b < 256; b++) {
        char k = (char)b;
        int ins;
        CU_ASSERT_EQUAL(strmap_intern(m, &k, 1, (uint32_t)b, NULL, &ins), 0);
        CU_ASSERT_EQUAL(ins, 1);
    }
    /* Keys that differ only by a NUL or by length stay apart. */
    static const struct { const char *s; size_t n; } keys[] = {
        {"a\0", 2}, {"\0a", 2}, {"\0\0", 2}, {"a\0\0\0\0\0\0\0", 8}, {"a\0\0\0\0\0\0\0\0", 9},
        {"\xff\xfe\x80\x01", 4}, {"\xff\xfe\x80\x01\x00", 5},
    };
    size_t nk = sizeof keys / sizeof keys[0];
    for (size_t i = 0; i < nk; i++) {
        int ins;
        CU_ASSERT_EQUAL(strmap_intern(m, keys[i].s, keys[i].n, 1000 + (uint32_t)i, NULL, &ins), 0);
        CU_ASSERT_EQUAL(ins, 1);
    }
    CU_ASSERT_EQUAL(strmap_count(m), 256 + nk);
    for (int b = 0; b < 256; b++) {
        char k = (char)b;
        uint32_t v = 9999;
        CU_ASSERT_EQUAL(strmap_get(m, &k, 1, &v), 1);
        CU_ASSERT_EQUAL(v, (uint32_t)b);
    }
    for (size_t i = 0; i < nk; i++) {
        uint32_t v = 9999;
        CU_ASSERT_EQUAL(strmap_get(m, keys[i].s, keys[i].n, &v), 1);
        CU_ASSERT_EQUAL(v, 1000 + i);
    }
    /* Iteration hands back exact copies, each followed by a NUL. */
    size_t pos = 256;
    StrMapEntry e;
    for (size_t i = 0; i < nk; i++) {
        CU_ASSERT_EQUAL_FATAL(strmap_next(m, &pos, &e), 1);
        CU_ASSERT_EQUAL(e.len, keys[i].n);
        CU_ASSERT(memcmp(e.key, keys[i].s, keys[i].n) == 0);
        CU_ASSERT_EQUAL(e.key[e.len], '\0');
    }
    strmap_free(&m);
}

/* Keys around the 7/8-byte boundary, where a short key is stored packed with its length:
 * "abcdefg" packs to the same 8 bytes as the 8-byte key "abcdefg\x07", and long keys may share
 * their first 8 bytes. All must stay apart, whatever the insertion order. */
static void test_short_long_boundary(void)
{
    static const struct { const char *s; size_t n; } keys[] = {
        {"abcdefg", 7}, {"abcdefg\x07", 8}, {"abcdefg\x07X", 9}, {"abcdefgh", 8},
        {"abcdefghX", 9}, {"abcdefghY", 9}, {"abcdefghXY", 10}, {"abc", 3},
        {"abc\0\0\0\0", 7}, {"abc\0\0\0\0\0", 8}, {"abc\0\0\0\0\x03", 8},
    };
    size_t nk = sizeof keys / sizeof keys[0];
    for (int order = 0; order < 2; order++) {
        StrMap *m = strmap_new(0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        for (size_t j = 0; j < nk; j++) {
            size_t i = order ? nk - 1 - j : j;
            int ins;
            CU_ASSERT_EQUAL(strmap_intern(m, keys[i].s, keys[i].n, (uint32_t)i, NULL, &ins), 0);
            CU_ASSERT_EQUAL(ins, 1);
        }
        for (size_t i = 0; i < nk; i++) {
            uint32_t v = 9999;
            CU_ASSERT_EQUAL(strmap_get(m, keys[i].s, keys[i].n, &v), 1);
            CU_ASSERT_EQUAL(v, i);
        }
        CU_ASSERT_EQUAL(strmap_get(m, "abcdefghZ", 9, NULL), 0);
        CU_ASSERT_EQUAL(strmap_get(m, "abcdefg\x06", 8, NULL), 0);
        CU_ASSERT_EQUAL(strmap_get(m, "abcdef", 6, NULL), 0);
        CU_ASSERT_EQUAL(strmap_count(m), nk);
        strmap_free(&m);
    }
}

/* Forced collisions: pairs of keys that look alike to a slot (same packed 8 bytes, or same
 * first 8 bytes and length), each pair alone in a fresh 16-slot map. A pair shares a home
 * slot with probability ~1/16, so 2000 pairs put ~125 of them in one probe run whatever the
 * hash function is; every pair must still be two keys. */
static void test_forced_collisions(void)
{
    char a[32], b[32];
    size_t bad = 0;
    for (int i = 0; i < 2000; i++) {
        size_t an, bn;
        switch (i % 3) {
        case 0: /* 7-byte key vs the 8-byte key of the same bytes plus 0x07 */
            an = (size_t)snprintf(a, sizeof a, "k%06d", i);
            memcpy(b, a, 7);
            b[7] = 7;
            bn = 8;
            break;
        case 1: /* short key vs itself padded with NULs to 7 bytes */
            an = (size_t)snprintf(a, sizeof a, "%d", i);
            memset(b, 0, 8);
            memcpy(b, a, an);
            bn = 7;
            break;
        default: /* long keys with the same first 8 bytes and length */
            an = (size_t)snprintf(a, sizeof a, "longkey_%05d", i);
            bn = (size_t)snprintf(b, sizeof b, "longkey_%05d", i + 1);
            break;
        }
        for (int order = 0; order < 2; order++) {
            const char *x = order ? b : a, *y = order ? a : b;
            size_t xn = order ? bn : an, yn = order ? an : bn;
            StrMap *m = strmap_new(0);
            CU_ASSERT_PTR_NOT_NULL_FATAL(m);
            int ins = 0;
            uint32_t v = 0;
            bad += strmap_intern(m, x, xn, 1, NULL, &ins) != 0 || ins != 1;
            bad += strmap_get(m, y, yn, NULL) != 0;
            bad += strmap_intern(m, y, yn, 2, NULL, &ins) != 0 || ins != 1;
            bad += !(strmap_get(m, x, xn, &v) == 1 && v == 1);
            bad += !(strmap_get(m, y, yn, &v) == 1 && v == 2);
            strmap_free(&m);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
}

/* Every prefix of one string, and every one-bit flip of a 16-byte key, is a distinct key:
 * covers the 8-, 4- and 1-byte paths of the hash and keys equal but for one bit. */
static void test_similar_keys(void)
{
    StrMap *m = strmap_new(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    const char *s = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH";
    size_t n = strlen(s);
    for (size_t k = 0; k <= n; k++)
        CU_ASSERT_EQUAL(strmap_intern(m, s, k, (uint32_t)k, NULL, NULL), 0);
    char base[16];
    memcpy(base, "news-id-00000001", 16);
    for (int bit = 0; bit < 128; bit++) {
        char k[16];
        memcpy(k, base, 16);
        k[bit / 8] ^= (char)(1 << (bit % 8));
        int ins;
        CU_ASSERT_EQUAL(strmap_intern(m, k, 16, 100 + (uint32_t)bit, NULL, &ins), 0);
        CU_ASSERT_EQUAL(ins, 1);
    }
    CU_ASSERT_EQUAL(strmap_count(m), n + 1 + 128);
    for (size_t k = 0; k <= n; k++) {
        uint32_t v = 9999;
        CU_ASSERT_EQUAL(strmap_get(m, s, k, &v), 1);
        CU_ASSERT_EQUAL(v, k);
    }
    for (int bit = 0; bit < 128; bit++) {
        char k[16];
        memcpy(k, base, 16);
        k[bit / 8] ^= (char)(1 << (bit % 8));
        uint32_t v = 9999;
        CU_ASSERT_EQUAL(strmap_get(m, k, 16, &v), 1);
        CU_ASSERT_EQUAL(v, 100 + (uint32_t)bit);
    }
    CU_ASSERT_EQUAL(strmap_get(m, base, 16, NULL), 0);
    strmap_free(&m);
}

/* Probe runs in a table that starts at its minimum size: each growth step must keep every
 * key reachable, checked after every insertion. */
static void test_growth_keeps_values(void)
{
    StrMap *m = strmap_new(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    char k[32];
    size_t bad = 0;
    for (uint32_t i = 0; i < 3000; i++) {
        int n = snprintf(k, sizeof k, "U%u", i * 7919u);
        CU_ASSERT_EQUAL_FATAL(strmap_intern(m, k, (size_t)n, i, NULL, NULL), 0);
        for (uint32_t j = 0; j <= i; j++) {
            uint32_t v = UINT32_MAX;
            n = snprintf(k, sizeof k, "U%u", j * 7919u);
            bad += !(strmap_get(m, k, (size_t)n, &v) == 1 && v == j);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(strmap_count(m), 3000);
    strmap_free(&m);
}

static void test_million_keys(void)
{
    const uint32_t N = 1000000;
    StrMap *m = strmap_new(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    char k[32];
    size_t bad = 0;
    for (uint32_t i = 0; i < N; i++) {
        int n = snprintf(k, sizeof k, "N%u", i);
        uint32_t v;
        int ins;
        CU_ASSERT_EQUAL_FATAL(strmap_intern(m, k, (size_t)n, (uint32_t)strmap_count(m), &v, &ins), 0);
        bad += !(ins == 1 && v == i);
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(strmap_count(m), N);
    /* Re-interning finds everything and changes nothing. */
    for (uint32_t i = 0; i < N; i += 3) {
        int n = snprintf(k, sizeof k, "N%u", i);
        uint32_t v;
        int ins;
        CU_ASSERT_EQUAL_FATAL(strmap_intern(m, k, (size_t)n, 0, &v, &ins), 0);
        bad += !(ins == 0 && v == i);
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(strmap_count(m), N);
    for (uint32_t i = 0; i < N; i++) {
        int n = snprintf(k, sizeof k, "N%u", i);
        uint32_t v = UINT32_MAX;
        bad += !(strmap_get(m, k, (size_t)n, &v) == 1 && v == i);
        n = snprintf(k, sizeof k, "M%u", i);
        bad += strmap_get(m, k, (size_t)n, &v) != 0;
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* Iteration: insertion order, every key once, values as stored. */
    size_t pos = 0, seen = 0;
    StrMapEntry e;
    while (strmap_next(m, &pos, &e)) {
        int n = snprintf(k, sizeof k, "N%zu", seen);
        bad += !(e.len == (uint32_t)n && memcmp(e.key, k, (size_t)n) == 0 && e.val == seen
                 && e.key[e.len] == '\0');
        seen++;
    }
    CU_ASSERT_EQUAL(seen, N);
    CU_ASSERT_EQUAL(bad, 0);
    strmap_free(&m);
}

/* Key pointers from iteration survive growth of the table, the entry array and the arena,
 * including keys longer than a small chunk (100 KB) and too long for a shared one (3 MB). */
static void test_key_pointers_stable(void)
{
    StrMap *m = strmap_new(4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    size_t big_n = 3u << 20;
    char *big = malloc(big_n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    for (size_t i = 0; i < big_n; i++)
        big[i] = (char)('a' + i % 26);
    CU_ASSERT_EQUAL(strmap_intern(m, "first", 5, 1, NULL, NULL), 0);
    CU_ASSERT_EQUAL(strmap_intern(m, big, big_n, 2, NULL, NULL), 0);
    CU_ASSERT_EQUAL(strmap_intern(m, big + 1, 100000, 3, NULL, NULL), 0);
    size_t pos = 0;
    StrMapEntry e0, e1, e2;
    CU_ASSERT_EQUAL_FATAL(strmap_next(m, &pos, &e0), 1);
    CU_ASSERT_EQUAL_FATAL(strmap_next(m, &pos, &e1), 1);
    CU_ASSERT_EQUAL_FATAL(strmap_next(m, &pos, &e2), 1);
    char k[32];
    for (uint32_t i = 0; i < 200000; i++) {
        int n = snprintf(k, sizeof k, "key%u", i);
        CU_ASSERT_EQUAL_FATAL(strmap_intern(m, k, (size_t)n, i, NULL, NULL), 0);
        if (i % 50000 == 0) {
            /* Medium keys (own chunk once past a quarter chunk) mixed in. */
            big[0] = (char)('A' + i / 50000);
            CU_ASSERT_EQUAL_FATAL(strmap_intern(m, big, 300000, i, NULL, NULL), 0);
            big[0] = 'a';
        }
    }
    pos = 0;
    StrMapEntry f0, f1, f2;
    CU_ASSERT_EQUAL_FATAL(strmap_next(m, &pos, &f0), 1);
    CU_ASSERT_EQUAL_FATAL(strmap_next(m, &pos, &f1), 1);
    CU_ASSERT_EQUAL_FATAL(strmap_next(m, &pos, &f2), 1);
    CU_ASSERT_PTR_EQUAL(f0.key, e0.key);
    CU_ASSERT_PTR_EQUAL(f1.key, e1.key);
    CU_ASSERT_PTR_EQUAL(f2.key, e2.key);
    CU_ASSERT(e2.len == 100000 && memcmp(e2.key, big + 1, 100000) == 0 && e2.key[100000] == '\0');
    CU_ASSERT(e0.len == 5 && memcmp(e0.key, "first", 6) == 0);
    CU_ASSERT(e1.len == big_n && memcmp(e1.key, big, big_n) == 0 && e1.key[big_n] == '\0');
    uint32_t v;
    CU_ASSERT_EQUAL(strmap_get(m, big, big_n, &v), 1);
    CU_ASSERT_EQUAL(v, 2);
    big[0] = 'C';
    CU_ASSERT_EQUAL(strmap_get(m, big, 300000, &v), 1);
    CU_ASSERT_EQUAL(v, 100000);
    CU_ASSERT_EQUAL(strmap_get(m, big + 1, 100000, &v), 1);
    CU_ASSERT_EQUAL(v, 3);
    CU_ASSERT_EQUAL(strmap_count(m), 3 + 200000 + 4);
    free(big);
    strmap_free(&m);
}

/* Keys inserted during iteration come after the cursor and are visited. */
static void test_insert_while_iterating(void)
{
    StrMap *m = strmap_new(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(strmap_intern(m, "a", 1, 0, NULL, NULL), 0);
    size_t pos = 0, visits = 0;
    StrMapEntry e;
    char k[16];
    while (strmap_next(m, &pos, &e)) {
        visits++;
        if (strmap_count(m) < 100) {
            int n = snprintf(k, sizeof k, "k%zu", strmap_count(m));
            CU_ASSERT_EQUAL(strmap_intern(m, k, (size_t)n, 0, NULL, NULL), 0);
        }
    }
    CU_ASSERT_EQUAL(visits, 100);
    strmap_free(&m);
}

/* The batched path (hash, prefetch, get_hashed) answers exactly as strmap_get, for present
 * and absent keys of both lengths classes, across growth. */
static void test_hashed_lookup(void)
{
    StrMap *m = strmap_new(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    char key[32];
    for (uint32_t i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof key, i % 2 ? "N%u" : "long-news-id-%u", i);
        CU_ASSERT_EQUAL_FATAL(strmap_intern(m, key, (size_t)n, i, NULL, NULL), 0);
    }
    for (uint32_t i = 0; i < 10000; i++) {
        int n = snprintf(key, sizeof key, i % 2 ? "N%u" : "long-news-id-%u", i);
        uint64_t h = strmap_hash(key, (size_t)n);
        strmap_prefetch(m, h);
        uint32_t a = UINT32_MAX, b = UINT32_MAX;
        int fa = strmap_get(m, key, (size_t)n, &a);
        int fb = strmap_get_hashed(m, key, (size_t)n, h, &b);
        CU_ASSERT_EQUAL(fa, i < 5000);
        CU_ASSERT_EQUAL(fb, fa);
        CU_ASSERT_EQUAL(b, a);
        if (i < 5000)
            CU_ASSERT_EQUAL(b, i);
    }
    strmap_free(&m);
}

static void test_presized(void)
{
    StrMap *m = strmap_new(100000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    char k[32];
    for (uint32_t i = 0; i < 100000; i++) {
        int n = snprintf(k, sizeof k, "w%u", i);
        CU_ASSERT_EQUAL_FATAL(strmap_intern(m, k, (size_t)n, i * 2, NULL, NULL), 0);
    }
    uint32_t v;
    CU_ASSERT_EQUAL(strmap_get(m, "w99999", 6, &v), 1);
    CU_ASSERT_EQUAL(v, 199998);
    strmap_free(&m);
}

int main(void)
{
    static const TuTest tests[] = {
        {"intern, get, set", test_intern_get_set},
        {"empty key", test_empty_key},
        {"binary keys", test_binary_keys},
        {"short/long key boundary", test_short_long_boundary},
        {"forced collisions", test_forced_collisions},
        {"similar keys", test_similar_keys},
        {"growth keeps values", test_growth_keeps_values},
        {"a million keys", test_million_keys},
        {"key pointers stable", test_key_pointers_stable},
        {"insert while iterating", test_insert_while_iterating},
        {"presized", test_presized},
        {"hashed lookup", test_hashed_lookup},
        {NULL, NULL},
    };
    tu_add_suite("strmap", tests);
    return tu_run_all();
}
