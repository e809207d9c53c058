/* Tests of common/metrics: AUC/MRR/nDCG on impressions worked by hand (the computation is in
 * each comment), the tie rules, skipped impressions, the nDCG cut-offs, merging, ranks, input
 * errors, and a randomized comparison with a brute-force O(n^2) reference. */
#include "common/error.h"
#include "common/metrics.h"
#include "common/rng.h"
#include "testutil/testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-9

static void one(const float *s, const uint8_t *y, size_t n, MetricsResult *r)
{
    MetricsAcc acc;
    metrics_acc_init(&acc);
    CU_ASSERT_EQUAL_FATAL(metrics_impression(s, y, n, &acc, NULL), 0);
    metrics_result(&acc, r);
}

/* scores [0.9 0.8 0.3 0.1], labels [1 0 1 0].
 * AUC: pairs (pos, neg) = (.9,.8) right, (.9,.1) right, (.3,.8) wrong, (.3,.1) right -> 3/4.
 * Ranking = candidate order; clicks at ranks 1 and 3: MRR = (1/1 + 1/3) / 2 = 2/3.
 * DCG = 1/log2(2) + 1/log2(4) = 1.5; ideal (2 clicks at ranks 1, 2) = 1 + 1/log2(3);
 * nDCG@5 = nDCG@10 = 1.5 / (1 + 1/log2(3)). */
static void test_hand_basic(void)
{
    const float s[] = {0.9f, 0.8f, 0.3f, 0.1f};
    const uint8_t y[] = {1, 0, 1, 0};
    MetricsResult r;
    one(s, y, 4, &r);
    double ndcg = (1.0 + 1.0 / log2(4.0)) / (1.0 + 1.0 / log2(3.0));
    CU_ASSERT_DOUBLE_EQUAL(r.auc, 0.75, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.mrr, (1.0 + 1.0 / 3.0) / 2.0, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.ndcg5, ndcg, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.ndcg10, ndcg, EPS);
    CU_ASSERT_EQUAL(r.impressions, 1);
    CU_ASSERT_EQUAL(r.skipped, 0);
}

/* All scores equal, labels [0 1 0 1]. AUC: all 4 pairs tied -> 4 * 1/2 / 4 = 0.5.
 * Ranking keeps candidate order (ties to the earlier candidate): clicks at ranks 2 and 4,
 * MRR = (1/2 + 1/4) / 2 = 0.375; DCG = 1/log2(3) + 1/log2(5), ideal = 1 + 1/log2(3). */
static void test_all_tied(void)
{
    const float s[] = {0.5f, 0.5f, 0.5f, 0.5f};
    const uint8_t y[] = {0, 1, 0, 1};
    MetricsResult r;
    one(s, y, 4, &r);
    double ndcg = (1.0 / log2(3.0) + 1.0 / log2(5.0)) / (1.0 + 1.0 / log2(3.0));
    CU_ASSERT_DOUBLE_EQUAL(r.auc, 0.5, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.mrr, 0.375, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.ndcg5, ndcg, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.ndcg10, ndcg, EPS);
}

/* scores [0.4 0.5 0.5 0.2 0.9]. Ranking: c4 (.9), c1 (.5), c2 (.5, tie -> after c1), c0, c3.
 * (a) labels [0 1 0 0 1]: c4 beats the 3 negatives = 3; c1 beats c0 and c3, ties c2 = 2.5;
 *     AUC = 5.5 / 6. Clicks at ranks 1, 2: MRR = (1 + 1/2) / 2 = 0.75, nDCG = 1.
 * (b) labels [0 0 1 0 1]: AUC the same 5.5 / 6 (ties are 1/2 whatever the order), but the
 *     click c2 is rank 3: MRR = (1 + 1/3) / 2, nDCG = (1 + 1/log2(4)) / (1 + 1/log2(3)). */
static void test_partial_ties(void)
{
    const float s[] = {0.4f, 0.5f, 0.5f, 0.2f, 0.9f};
    const uint8_t ya[] = {0, 1, 0, 0, 1};
    const uint8_t yb[] = {0, 0, 1, 0, 1};
    MetricsResult r;
    one(s, ya, 5, &r);
    CU_ASSERT_DOUBLE_EQUAL(r.auc, 5.5 / 6.0, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.mrr, 0.75, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.ndcg5, 1.0, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.ndcg10, 1.0, EPS);
    one(s, yb, 5, &r);
    double ndcg = (1.0 + 1.0 / log2(4.0)) / (1.0 + 1.0 / log2(3.0));
    CU_ASSERT_DOUBLE_EQUAL(r.auc, 5.5 / 6.0, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.mrr, (1.0 + 1.0 / 3.0) / 2.0, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.ndcg5, ndcg, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.ndcg10, ndcg, EPS);
}

/* Impressions with only clicks, only non-clicks, or no candidates are skipped and counted;
 * they change no sum. The counted one is test_hand_basic's (AUC 0.75). */
static void test_skipped(void)
{
    const float s[] = {0.9f, 0.8f, 0.3f, 0.1f};
    const uint8_t all1[] = {1, 1, 1, 1};
    const uint8_t all0[] = {0, 0, 0, 0};
    const uint8_t y[] = {1, 0, 1, 0};
    MetricsAcc acc;
    metrics_acc_init(&acc);
    CU_ASSERT_EQUAL(metrics_impression(s, all1, 4, &acc, NULL), 0);
    CU_ASSERT_EQUAL(metrics_impression(s, all0, 4, &acc, NULL), 0);
    CU_ASSERT_EQUAL(metrics_impression(s, y, 0, &acc, NULL), 0);
    CU_ASSERT_EQUAL(acc.skipped, 3);
    CU_ASSERT_EQUAL(acc.impressions, 0);
    CU_ASSERT_DOUBLE_EQUAL(acc.auc_sum, 0.0, EPS);
    MetricsResult r;
    metrics_result(&acc, &r);
    CU_ASSERT_DOUBLE_EQUAL(r.auc, 0.0, EPS);
    CU_ASSERT_EQUAL(r.skipped, 3);
    CU_ASSERT_EQUAL(metrics_impression(s, y, 4, &acc, NULL), 0);
    metrics_result(&acc, &r);
    CU_ASSERT_EQUAL(r.impressions, 1);
    CU_ASSERT_EQUAL(r.skipped, 3);
    CU_ASSERT_DOUBLE_EQUAL(r.auc, 0.75, EPS);
}

/* 12 candidates, candidate i scores 12 - i (ranking = candidate order), clicks at ranks 1, 7
 * and 11 (candidates 0, 6, 10).
 * AUC: 9 negatives (ranks 2-6, 8-10, 12); rank 1 beats 9, rank 7 beats 4 (8, 9, 10, 12),
 *      rank 11 beats 1 (12): 14 / 27.
 * MRR = (1 + 1/7 + 1/11) / 3.
 * ideal DCG (3 clicks, k >= 3) = 1 + 1/log2(3) + 1/log2(4) for both cut-offs.
 * nDCG@5: only rank 1 is in the top 5: 1 / ideal. nDCG@10: ranks 1 and 7: (1 + 1/log2(8)) /
 * ideal. Rank 11 counts for neither. */
static void test_ndcg_cutoffs(void)
{
    float s[12];
    uint8_t y[12] = {0};
    for (int i = 0; i < 12; i++)
        s[i] = (float)(12 - i);
    y[0] = y[6] = y[10] = 1;
    MetricsResult r;
    one(s, y, 12, &r);
    double ideal = 1.0 + 1.0 / log2(3.0) + 1.0 / log2(4.0);
    CU_ASSERT_DOUBLE_EQUAL(r.auc, 14.0 / 27.0, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.mrr, (1.0 + 1.0 / 7.0 + 1.0 / 11.0) / 3.0, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.ndcg5, 1.0 / ideal, EPS);
    CU_ASSERT_DOUBLE_EQUAL(r.ndcg10, (1.0 + 1.0 / 3.0) / ideal, EPS);
}

/* Merging two accumulators equals feeding one with every impression; the mean of the
 * test_hand_basic (AUC 3/4) and test_ndcg_cutoffs (AUC 14/27) impressions is their average. */
static void test_merge(void)
{
    const float s1[] = {0.9f, 0.8f, 0.3f, 0.1f};
    const uint8_t y1[] = {1, 0, 1, 0};
    float s2[12];
    uint8_t y2[12] = {0};
    for (int i = 0; i < 12; i++)
        s2[i] = (float)(12 - i);
    y2[0] = y2[6] = y2[10] = 1;
    const uint8_t none[] = {0, 0, 0, 0};

    MetricsAcc a, b, all;
    metrics_acc_init(&a);
    metrics_acc_init(&b);
    metrics_acc_init(&all);
    CU_ASSERT_EQUAL(metrics_impression(s1, y1, 4, &a, NULL), 0);
    CU_ASSERT_EQUAL(metrics_impression(s1, none, 4, &a, NULL), 0);
    CU_ASSERT_EQUAL(metrics_impression(s2, y2, 12, &b, NULL), 0);
    CU_ASSERT_EQUAL(metrics_impression(s1, y1, 4, &all, NULL), 0);
    CU_ASSERT_EQUAL(metrics_impression(s1, none, 4, &all, NULL), 0);
    CU_ASSERT_EQUAL(metrics_impression(s2, y2, 12, &all, NULL), 0);
    metrics_acc_merge(&a, &b);
    CU_ASSERT_EQUAL(a.impressions, 2);
    CU_ASSERT_EQUAL(a.skipped, 1);
    CU_ASSERT_DOUBLE_EQUAL(a.auc_sum, all.auc_sum, EPS);
    CU_ASSERT_DOUBLE_EQUAL(a.mrr_sum, all.mrr_sum, EPS);
    CU_ASSERT_DOUBLE_EQUAL(a.ndcg5_sum, all.ndcg5_sum, EPS);
    CU_ASSERT_DOUBLE_EQUAL(a.ndcg10_sum, all.ndcg10_sum, EPS);
    MetricsResult r;
    metrics_result(&a, &r);
    CU_ASSERT_DOUBLE_EQUAL(r.auc, (0.75 + 14.0 / 27.0) / 2.0, EPS);
    CU_ASSERT_EQUAL(r.impressions, 2);
    CU_ASSERT_EQUAL(r.skipped, 1);
}

/* scores [0.3 0.9 0.3 0.5 0.9]: order c1, c4 (tie: c1 first), c3, c0, c2 (tie: c0 first),
 * so ranks in candidate order are [4 1 5 3 2]. */
static void test_ranks(void)
{
    const float s[] = {0.3f, 0.9f, 0.3f, 0.5f, 0.9f};
    const uint32_t want[] = {4, 1, 5, 3, 2};
    uint32_t ranks[5];
    MetricsScratch sc;
    metrics_scratch_init(&sc);
    CU_ASSERT_EQUAL(metrics_ranks(s, 5, ranks, &sc), 0);
    CU_ASSERT_EQUAL(memcmp(ranks, want, sizeof want), 0);
    memset(ranks, 0, sizeof ranks);
    CU_ASSERT_EQUAL(metrics_ranks(s, 5, ranks, NULL), 0);
    CU_ASSERT_EQUAL(memcmp(ranks, want, sizeof want), 0);
    metrics_scratch_fini(&sc);
    CU_ASSERT_PTR_NULL(sc.items);
}

/* A NaN score or a label other than 0/1 is PSREC_E_RANGE and leaves the accumulator as is. */
static void test_bad_input(void)
{
    float s[] = {0.9f, NAN, 0.3f};
    const uint8_t y[] = {1, 0, 0};
    const uint8_t y2[] = {1, 2, 0};
    MetricsAcc acc;
    metrics_acc_init(&acc);
    CU_ASSERT_EQUAL(metrics_impression(s, y, 3, &acc, NULL), PSREC_E_RANGE);
    CU_ASSERT(strstr(psrec_errmsg(), "NaN") != NULL);
    uint32_t ranks[3];
    CU_ASSERT_EQUAL(metrics_ranks(s, 3, ranks, NULL), PSREC_E_RANGE);
    s[1] = 0.5f;
    CU_ASSERT_EQUAL(metrics_impression(s, y2, 3, &acc, NULL), PSREC_E_RANGE);
    CU_ASSERT(strstr(psrec_errmsg(), "label") != NULL);
    CU_ASSERT_EQUAL(acc.impressions, 0);
    CU_ASSERT_EQUAL(acc.skipped, 0);
    CU_ASSERT_DOUBLE_EQUAL(acc.auc_sum, 0.0, EPS);
}

/* Brute force straight from the definitions: AUC over all pairs, rank of i = 1 + the number
 * of candidates with a higher score or an equal score earlier in the impression. */
static void brute(const float *s, const uint8_t *y, size_t n, MetricsAcc *acc)
{
    double npos = 0, nneg = 0, wins = 0, mrr = 0, d5 = 0, d10 = 0, i5 = 0, i10 = 0;
    for (size_t i = 0; i < n; i++)
        if (y[i])
            npos++;
        else
            nneg++;
    if (npos == 0 || nneg == 0) {
        acc->skipped++;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (!y[i])
            continue;
        for (size_t j = 0; j < n; j++)
            if (!y[j])
                wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
        size_t rank = 1;
        for (size_t j = 0; j < n; j++)
            if (s[j] > s[i] || (s[j] == s[i] && j < i))
                rank++;
        mrr += 1.0 / (double)rank;
        if (rank <= 5)
            d5 += 1.0 / log2((double)rank + 1.0);
        if (rank <= 10)
            d10 += 1.0 / log2((double)rank + 1.0);
    }
    for (size_t r = 1; r <= (size_t)npos; r++) {
        if (r <= 5)
            i5 += 1.0 / log2((double)r + 1.0);
        if (r <= 10)
            i10 += 1.0 / log2((double)r + 1.0);
    }
    acc->auc_sum += wins / (npos * nneg);
    acc->mrr_sum += mrr / npos;
    acc->ndcg5_sum += d5 / i5;
    acc->ndcg10_sum += d10 / i10;
    acc->impressions++;
}

/* 2000 random impressions of 0..60 candidates, scores on a coarse grid (many ties), one
 * scratch reused throughout (it grows): every sum and count equals the brute force's, and the
 * ranks agree with the brute-force rank definition. */
static void test_random_vs_brute(void)
{
    Rng rng;
    rng_seed(&rng, 7);
    MetricsScratch sc;
    metrics_scratch_init(&sc);
    MetricsAcc fast, slow;
    metrics_acc_init(&fast);
    metrics_acc_init(&slow);
    float s[60];
    uint8_t y[60];
    uint32_t ranks[60];
    int rank_errors = 0;
    for (int t = 0; t < 2000; t++) {
        size_t n = (size_t)rng_below(&rng, 61);
        uint64_t levels = 1 + rng_below(&rng, 8);
        double pclick = rng_uniform(&rng);
        for (size_t i = 0; i < n; i++) {
            s[i] = (float)rng_below(&rng, levels) - 3.0f;
            y[i] = rng_uniform(&rng) < pclick;
        }
        CU_ASSERT_EQUAL_FATAL(metrics_impression(s, y, n, &fast, &sc), 0);
        brute(s, y, n, &slow);
        CU_ASSERT_EQUAL_FATAL(metrics_ranks(s, n, ranks, &sc), 0);
        for (size_t i = 0; i < n; i++) {
            uint32_t rank = 1;
            for (size_t j = 0; j < n; j++)
                if (s[j] > s[i] || (s[j] == s[i] && j < i))
                    rank++;
            rank_errors += ranks[i] != rank;
        }
    }
    CU_ASSERT_EQUAL(rank_errors, 0);
    CU_ASSERT_EQUAL(fast.impressions, slow.impressions);
    CU_ASSERT_EQUAL(fast.skipped, slow.skipped);
    CU_ASSERT(fast.impressions > 1000);
    CU_ASSERT(fast.skipped > 50);
    CU_ASSERT_DOUBLE_EQUAL(fast.auc_sum, slow.auc_sum, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(fast.mrr_sum, slow.mrr_sum, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(fast.ndcg5_sum, slow.ndcg5_sum, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(fast.ndcg10_sum, slow.ndcg10_sum, 1e-7);
    CU_ASSERT(sc.cap >= 60);
    metrics_scratch_fini(&sc);
}

int main(void)
{
    static const TuTest tests[] = {
        {"hand_basic", test_hand_basic},
        {"all_tied", test_all_tied},
        {"partial_ties", test_partial_ties},
        {"skipped", test_skipped},
        {"ndcg_cutoffs", test_ndcg_cutoffs},
        {"merge", test_merge},
        {"ranks", test_ranks},
        {"bad_input", test_bad_input},
        {"random_vs_brute", test_random_vs_brute},
        {NULL, NULL},
    };
    tu_add_suite("metrics", tests);
    return tu_run_all();
}
