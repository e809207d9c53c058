/* Evaluation: score every candidate of every impression in a range of a dataset, encoding
 * each news of the dataset once and each impression's user once, and accumulate MIND's
 * metrics; optionally write MIND's prediction lines. Parameters come through a PsClient. */
#ifndef PSREC_WORKER_EVAL_H
#define PSREC_WORKER_EVAL_H

#include "common/dataset.h"
#include "common/metrics.h"
#include "worker/model.h"
#include "worker/ps_client.h"

#include <stdint.h>
#include <stdio.h>

typedef struct EvalOptions {
    ModelDims dims;           /* K is not used */
    Dataset *data;            /* borrowed */
    PsClient *ps;             /* borrowed */
    uint64_t begin, end;      /* impression index range; end = UINT64_MAX for all */
    FILE *predictions;        /* MIND submission lines "impid [r1,r2,...]", or NULL */
    int progress;             /* a progress line on stderr when it is a terminal and the
                                 evaluation takes over ~2 s (psrec eval) */
    int plain;                /* 1: the scorer's plain forward instead of gathered gates
                                 (scorer_set_gathered; tests compare the two); 0 default */
} EvalOptions;

typedef struct EvalStats {
    uint64_t impressions;     /* impressions scored */
    uint64_t candidates;
    uint64_t news_encoded;
    double seconds;
} EvalStats;

/* Evaluate; metrics of labeled impressions are added to *acc (initialised by the caller).
 * Returns 0 or an error code with detail. */
int eval_run(const EvalOptions *opt, MetricsAcc *acc, EvalStats *stats);

#endif
