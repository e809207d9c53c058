/* Ranking metrics of click impressions, MIND's official definitions.
 *
 * Per impression (candidates with a score and a 0/1 click label):
 *   AUC     Mann-Whitney: the share of (clicked, not clicked) pairs the scores order
 *           correctly; a tied pair counts 1/2 (the rank-average AUC).
 *   MRR     sum over clicked candidates of 1/rank, divided by the number clicked.
 *   nDCG@k  DCG@k / ideal DCG@k, gain 2^y - 1, discount log2(rank + 1), k = 5 and 10.
 * Ranks are 1-based by descending score. Ties in a ranking (MRR, nDCG, metrics_ranks) are
 * broken deterministically: among equal scores the candidate that comes earlier in the
 * impression ranks higher (a stable descending sort). AUC does not rank: ties count 1/2.
 *
 * An impression counts only when it has both a click and a non-click; the others are skipped
 * (and counted), as MIND's evaluation does. MetricsAcc holds sums and counts, not means, so the
 * accumulators of several workers add up exactly (metrics_acc_merge, or an MPI sum reduction
 * over its four doubles and two uint64s). Everything is double precision. */
#ifndef PSREC_COMMON_METRICS_H
#define PSREC_COMMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct MetricsAcc {
    double auc_sum, mrr_sum, ndcg5_sum, ndcg10_sum; /* over counted impressions */
    uint64_t impressions;                           /* counted: both classes present */
    uint64_t skipped;                               /* no click, or no non-click */
} MetricsAcc;

typedef struct MetricsResult {
    double auc, mrr, ndcg5, ndcg10; /* means over counted impressions; 0 when none counted */
    uint64_t impressions;
    uint64_t skipped;
} MetricsResult;

/* Reusable sort buffer, so a loop over impressions allocates only when a larger impression
 * than any before arrives. Embedded object: metrics_scratch_init / metrics_scratch_fini.
 * One scratch per thread. */
struct MetricsItem;
typedef struct MetricsScratch {
    struct MetricsItem *items; /* (cap) */
    size_t cap;
} MetricsScratch;

void metrics_scratch_init(MetricsScratch *scratch);
/* Frees the buffer; the scratch is empty (and reusable) afterwards. */
void metrics_scratch_fini(MetricsScratch *scratch);

void metrics_acc_init(MetricsAcc *acc);

/* Add one impression of n candidates to acc.
 * scores: (n) model scores, any finite or infinite value; NaN is rejected.
 * labels: (n) 0 or 1; any other value is rejected.
 * scratch: a MetricsScratch to sort in (grown as needed), or NULL to allocate per call.
 * Returns 0 (the impression was counted or skipped), PSREC_E_RANGE for a NaN score, a label
 * other than 0/1 or n > UINT32_MAX, PSREC_E_NOMEM. acc is unchanged on error.
 * O(n log n). */
int metrics_impression(const float *scores, const uint8_t *labels, size_t n, MetricsAcc *acc,
                       MetricsScratch *scratch);

/* 1-based rank of each candidate, in candidate order (what MIND's prediction file holds):
 * ranks[i] = position of candidate i in the descending-score order, ties to the earlier
 * candidate. scores (n), ranks (n). scratch as above. Returns 0, PSREC_E_RANGE (NaN score,
 * n > UINT32_MAX) or PSREC_E_NOMEM; ranks is unspecified on error. */
int metrics_ranks(const float *scores, size_t n, uint32_t *ranks, MetricsScratch *scratch);

/* into += from (sums and counts). */
void metrics_acc_merge(MetricsAcc *into, const MetricsAcc *from);

/* Means of the counted impressions, and the counts. */
void metrics_result(const MetricsAcc *acc, MetricsResult *out);

#endif
