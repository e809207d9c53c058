/* Key partitioning: the owner of a row is deterministic (pinned values: a changed mapping
 * would send old checkpoints' rows to the wrong shards), always in range, balanced over many
 * sparse keys, and dense tables' rows spread round-robin over every shard. */
#include "common/keyrange.h"
#include "common/params.h"
#include "testutil/testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_S 8
#define NKEYS 100000

/* Same answer on every call, and the mapping pinned at a few points. */
static void test_deterministic(void)
{
    for (uint32_t t = 0; t < PARAM_TABLES; t++)
        for (uint64_t k = 0; k < 1000; k++)
            for (uint32_t s = 1; s <= MAX_S; s++)
                CU_ASSERT_EQUAL(keyrange_owner(t, k, s), keyrange_owner(t, k, s));
    static const struct {
        uint32_t table;
        uint64_t key;
        uint32_t shards, owner;
    } pinned[] = {
        {PARAM_WORD, 0, 2, 0},
        {PARAM_WORD, 1, 3, 1},
        {PARAM_WORD, 12345, 5, 2},
        {PARAM_CAT, 7, 4, 2},
        {PARAM_USER, 999999, 7, 0},
        {PARAM_USER, 42, 6, 2},
        {PARAM_NEWS_WIH, 0, 3, 0},  /* (3 + 0) % 3 */
        {PARAM_NEWS_B, 0, 4, 1},    /* 5 % 4 */
        {PARAM_USER_B, 5, 7, 6},    /* 13 % 7 */
        {PARAM_USER_WIH, 3, 5, 4},  /* 9 % 5 */
    };
    for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++) {
        uint32_t got = keyrange_owner(pinned[i].table, pinned[i].key, pinned[i].shards);
        if (got != pinned[i].owner)
            fprintf(stderr, "\n  table %u key %llu shards %u: owner %u, pinned %u\n",
                    pinned[i].table, (unsigned long long)pinned[i].key, pinned[i].shards, got,
                    pinned[i].owner);
        CU_ASSERT_EQUAL(got, pinned[i].owner);
    }
}

/* Owners are in 0..S-1; one shard owns everything. */
static void test_range_and_single_shard(void)
{
    for (uint32_t t = 0; t < PARAM_TABLES; t++)
        for (uint64_t k = 0; k < 5000; k++) {
            CU_ASSERT_EQUAL(keyrange_owner(t, k, 1), 0);
            CU_ASSERT_EQUAL(keyrange_owner(t, k, 0), 0);
            for (uint32_t s = 2; s <= MAX_S; s++)
                CU_ASSERT(keyrange_owner(t, k, s) < s);
        }
    CU_ASSERT(keyrange_owner(PARAM_USER, UINT64_MAX, 5) < 5);
    CU_ASSERT(keyrange_owner(PARAM_USER_B, UINT64_MAX, 5) < 5);
}

/* Sparse tables: 1e5 consecutive ids (the worst case for a naive modulo of clustered ids)
 * split within 3% of the even share on every shard, for S = 2..7; and the same key of two
 * tables does not always land on the same shard. */
static void test_sparse_balance(void)
{
    for (uint32_t t = 0; t < PARAM_FIRST_DENSE; t++)
        for (uint32_t s = 2; s <= 7; s++) {
            uint64_t count[MAX_S] = {0};
            for (uint64_t k = 0; k < NKEYS; k++)
                count[keyrange_owner(t, k, s)]++;
            double even = (double)NKEYS / s;
            for (uint32_t i = 0; i < s; i++) {
                double dev = ((double)count[i] - even) / even;
                if (dev > 0.03 || dev < -0.03)
                    fprintf(stderr, "\n  table %u, %u shards: shard %u has %llu keys\n", t, s,
                            i, (unsigned long long)count[i]);
                CU_ASSERT(dev <= 0.03 && dev >= -0.03);
            }
        }
    uint64_t same = 0;
    for (uint64_t k = 0; k < NKEYS; k++)
        same += keyrange_owner(PARAM_WORD, k, 4) == keyrange_owner(PARAM_USER, k, 4);
    CU_ASSERT(same > NKEYS / 5 && same < NKEYS / 3); /* independent: about 1/4 */
}

/* Dense tables: consecutive rows go round-robin, so a table of rows >= S touches every shard
 * and no shard has more than one row above another; the one-row bias tables land on
 * different shards (table offset). Checked for the model's real shapes too. */
static void test_dense_spread(void)
{
    for (uint32_t s = 1; s <= MAX_S; s++)
        for (uint32_t t = PARAM_FIRST_DENSE; t < PARAM_TABLES; t++)
            for (uint64_t rows = s; rows <= 3 * s + 1; rows++) {
                uint64_t count[MAX_S] = {0};
                for (uint64_t k = 0; k < rows; k++)
                    count[keyrange_owner(t, k, s)]++;
                uint64_t lo = UINT64_MAX, hi = 0;
                for (uint32_t i = 0; i < s; i++) {
                    lo = count[i] < lo ? count[i] : lo;
                    hi = count[i] > hi ? count[i] : hi;
                }
                CU_ASSERT(lo >= 1);
                CU_ASSERT(hi - lo <= 1);
                for (uint64_t k = 1; k < rows; k++)
                    CU_ASSERT_EQUAL(keyrange_owner(t, k, s), (keyrange_owner(t, k - 1, s) + 1) % s);
            }

    ParamShape shape = {.E = 16, .H = 8, .vocab_rows = 10, .category_rows = 5, .user_rows = 5};
    TableSpec specs[PARAM_TABLES];
    params_specs(&shape, specs);
    for (uint32_t s = 2; s <= 7; s++) {
        uint64_t rows_on[MAX_S] = {0};
        for (uint32_t t = PARAM_FIRST_DENSE; t < PARAM_TABLES; t++)
            for (uint64_t k = 0; k < specs[t].rows; k++)
                rows_on[keyrange_owner(t, k, s)]++;
        for (uint32_t i = 0; i < s; i++)
            CU_ASSERT(rows_on[i] >= 1);
    }
    /* The two bias rows (news_b, user_b: tables 3 apart) sit on different shards whenever S
     * does not divide 3. */
    CU_ASSERT(keyrange_owner(PARAM_NEWS_B, 0, 2) != keyrange_owner(PARAM_USER_B, 0, 2));
    CU_ASSERT(keyrange_owner(PARAM_NEWS_B, 0, 4) != keyrange_owner(PARAM_USER_B, 0, 4));
}

int main(void)
{
    static const TuTest tests[] = {
        {"deterministic and pinned", test_deterministic},
        {"in range; one shard owns all", test_range_and_single_shard},
        {"sparse keys balanced (S = 2..7)", test_sparse_balance},
        {"dense rows round-robin over every shard", test_dense_spread},
        {NULL, NULL},
    };
    tu_add_suite("keyrange", tests);
    return tu_run_all();
}
