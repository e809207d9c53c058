/* Ranking metrics per impression (AUC, MRR, nDCG@5, nDCG@10), MIND's official definitions.
 *
 * One sort per impression: candidates are ordered by (score descending, candidate index
 * ascending). That key is a total order, so the result of the (unstable) qsort is the one
 * stable descending order, identical on every platform. From that order:
 *   - AUC walks groups of equal scores from the top, counting for each clicked candidate the
 *     non-clicked ones strictly below it plus 1/2 per non-clicked one tied with it;
 *   - MRR and nDCG read the 1-based position in the order as the rank.
 * Invariants: inputs are validated before acc is touched, so an error leaves acc as it was;
 * labels are 0/1, so the gain 2^y - 1 is y and the ideal DCG is the discount sum over the
 * first min(clicks, k) ranks. Does not: weight impressions, or evaluate graded labels. */
#include "common/metrics.h"

#include "common/error.h"

#include <math.h>
#include <stdlib.h>

struct MetricsItem {
    float score;
    uint32_t index;
};

typedef struct MetricsItem MetricsItem;

void metrics_scratch_init(MetricsScratch *scratch)
{
    scratch->items = NULL;
    scratch->cap = 0;
}

void metrics_scratch_fini(MetricsScratch *scratch)
{
    free(scratch->items);
    metrics_scratch_init(scratch);
}

void metrics_acc_init(MetricsAcc *acc)
{
    acc->auc_sum = acc->mrr_sum = acc->ndcg5_sum = acc->ndcg10_sum = 0.0;
    acc->impressions = acc->skipped = 0;
}

static int item_cmp(const void *pa, const void *pb)
{
    const MetricsItem *a = pa, *b = pb;
    if (a->score > b->score)
        return -1;
    if (a->score < b->score)
        return 1;
    return (a->index > b->index) - (a->index < b->index);
}

static int check_scores(const float *scores, size_t n)
{
    if (n > UINT32_MAX)
        return psrec_errf(PSREC_E_RANGE, "metrics: %zu candidates in one impression (max %u)", n,
                          UINT32_MAX);
    for (size_t i = 0; i < n; i++)
        if (isnan(scores[i]))
            return psrec_errf(PSREC_E_RANGE, "metrics: score of candidate %zu is NaN", i);
    return 0;
}

/* Sort the candidates into the ranking order. *items points into the scratch, or into a
 * fresh allocation returned in *owned (the caller frees it) when scratch is NULL. */
static int sort_items(const float *scores, size_t n, MetricsScratch *scratch, MetricsItem **items,
                      MetricsItem **owned)
{
    MetricsItem *buf;
    *owned = NULL;
    if (scratch) {
        if (scratch->cap < n) {
            size_t cap = scratch->cap ? scratch->cap : 64;
            while (cap < n)
                cap *= 2;
            buf = realloc(scratch->items, cap * sizeof *buf);
            if (!buf)
                return psrec_errf(PSREC_E_NOMEM, "metrics: no memory for %zu candidates", n);
            scratch->items = buf;
            scratch->cap = cap;
        }
        buf = scratch->items;
    } else {
        buf = malloc((n ? n : 1) * sizeof *buf);
        if (!buf)
            return psrec_errf(PSREC_E_NOMEM, "metrics: no memory for %zu candidates", n);
        *owned = buf;
    }
    for (size_t i = 0; i < n; i++) {
        buf[i].score = scores[i];
        buf[i].index = (uint32_t)i;
    }
    qsort(buf, n, sizeof *buf, item_cmp);
    *items = buf;
    return 0;
}

/* Sum of 1/log2(r + 1) for r = 1..m. */
static double ideal_dcg(uint64_t m)
{
    double s = 0.0;
    for (uint64_t r = 1; r <= m; r++)
        s += 1.0 / log2((double)r + 1.0);
    return s;
}

int metrics_impression(const float *scores, const uint8_t *labels, size_t n, MetricsAcc *acc,
                       MetricsScratch *scratch)
{
    int rc = check_scores(scores, n);
    if (rc)
        return rc;
    uint64_t npos = 0;
    for (size_t i = 0; i < n; i++) {
        if (labels[i] > 1)
            return psrec_errf(PSREC_E_RANGE, "metrics: label of candidate %zu is %u, need 0 or 1",
                              i, (unsigned)labels[i]);
        npos += labels[i];
    }
    uint64_t nneg = (uint64_t)n - npos;
    if (npos == 0 || nneg == 0) {
        acc->skipped++;
        return 0;
    }

    MetricsItem *items, *owned;
    rc = sort_items(scores, n, scratch, &items, &owned);
    if (rc)
        return rc;

    /* AUC: pairs (clicked, not clicked) ordered right, ties 1/2. */
    double wins = 0.0;
    uint64_t neg_above = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint64_t p = 0, q = 0;
        while (j < n && items[j].score == items[i].score) {
            if (labels[items[j].index])
                p++;
            else
                q++;
            j++;
        }
        wins += (double)p * (double)(nneg - neg_above - q) + 0.5 * (double)p * (double)q;
        neg_above += q;
        i = j;
    }

    double mrr = 0.0, dcg5 = 0.0, dcg10 = 0.0;
    for (size_t r = 1; r <= n; r++) {
        if (!labels[items[r - 1].index])
            continue;
        mrr += 1.0 / (double)r;
        double disc = 1.0 / log2((double)r + 1.0);
        if (r <= 5)
            dcg5 += disc;
        if (r <= 10)
            dcg10 += disc;
    }
    free(owned);

    acc->auc_sum += wins / ((double)npos * (double)nneg);
    acc->mrr_sum += mrr / (double)npos;
    acc->ndcg5_sum += dcg5 / ideal_dcg(npos < 5 ? npos : 5);
    acc->ndcg10_sum += dcg10 / ideal_dcg(npos < 10 ? npos : 10);
    acc->impressions++;
    return 0;
}

int metrics_ranks(const float *scores, size_t n, uint32_t *ranks, MetricsScratch *scratch)
{
    int rc = check_scores(scores, n);
    if (rc)
        return rc;
    MetricsItem *items, *owned;
    rc = sort_items(scores, n, scratch, &items, &owned);
    if (rc)
        return rc;
    for (size_t r = 0; r < n; r++)
        ranks[items[r].index] = (uint32_t)(r + 1);
    free(owned);
    return 0;
}

void metrics_acc_merge(MetricsAcc *into, const MetricsAcc *from)
{
    into->auc_sum += from->auc_sum;
    into->mrr_sum += from->mrr_sum;
    into->ndcg5_sum += from->ndcg5_sum;
    into->ndcg10_sum += from->ndcg10_sum;
    into->impressions += from->impressions;
    into->skipped += from->skipped;
}

void metrics_result(const MetricsAcc *acc, MetricsResult *out)
{
    double k = acc->impressions ? (double)acc->impressions : 1.0;
    out->auc = acc->auc_sum / k;
    out->mrr = acc->mrr_sum / k;
    out->ndcg5 = acc->ndcg5_sum / k;
    out->ndcg10 = acc->ndcg10_sum / k;
    out->impressions = acc->impressions;
    out->skipped = acc->skipped;
}
