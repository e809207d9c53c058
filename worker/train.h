/* Training: one step (pull, forward/backward, push) and the epoch loop over a worker's
 * partition of the samples. Parameters live behind a PsClient, so the same code trains in
 * one process (in-process shard) or against remote shards. */
#ifndef PSREC_WORKER_TRAIN_H
#define PSREC_WORKER_TRAIN_H

#include "common/dataset.h"
#include "common/error.h"
#include "common/progress.h"
#include "common/rng.h"
#include "worker/batch.h"
#include "worker/model.h"
#include "worker/params_io.h"
#include "worker/ps_client.h"
#include "worker/reader.h"

#include <stdint.h>
#include <stdio.h>

/* The per-step machinery, sized once for batches of up to max_B samples. */
typedef struct TrainStep TrainStep;

int train_step_new(TrainStep **out, const ModelDims *d, int max_B, PsClient *ps);
void train_step_free(TrainStep **ts);

/* One training step on a batch in global ids (see batch_build for the arrays):
 * dedup, pull the rows and dense weights, forward/backward, push the gradients.
 * *loss gets the batch's mean loss. Equals train_step_issue + train_step_complete. */
int train_step_run(TrainStep *ts, int B, const uint32_t *users, const uint32_t *his,
                   const int *his_n, const uint32_t *cand, BatchNewsFn news_fn, void *ctx,
                   float *loss);

/* The two halves of a step, so the next batch's pulls can travel while this batch computes:
 * issue dedups a batch and sends its pulls (at most two batches in flight; the input arrays
 * may be reused as soon as it returns); complete waits for the oldest batch's pulls, runs
 * forward/backward and pushes its gradients (waiting for the acks). */
int train_step_issue(TrainStep *ts, int B, const uint32_t *users, const uint32_t *his,
                     const int *his_n, const uint32_t *cand, BatchNewsFn news_fn, void *ctx);
int train_step_complete(TrainStep *ts, float *loss);
/* Step (PS clock) of the next batch issued; batches count up from it (default 0). */
void train_step_set_clock(TrainStep *ts, uint64_t clock);
/* Batches issued and not yet completed. */
int train_step_pending(const TrainStep *ts);

/* Bytes moved by this step object so far (pulled + pushed payload). */
void train_step_bytes(const TrainStep *ts, uint64_t *pulled, uint64_t *pushed);


/* TRAIN_STOPPED: what train_run returns when a cut hook said the job stops there. */
#define TRAIN_STOPPED PSREC_E_STOPPED
/* TRAIN_REPLAN: what a cut hook returns when the job lost a worker and this one must read on
 * from the re-partitioned plan (TrainHooks.replan gives it). */
#define TRAIN_REPLAN PSREC_E_REPLAN

/* Called by train_run at epoch ends and step boundaries; any may be NULL. A non-zero return
 * stops training with that code. */
typedef struct TrainHooks {
    void *ctx;
    /* After epoch `epoch` (0-based) ended at global step `step`. */
    int (*after_epoch)(void *ctx, uint64_t epoch, uint64_t step);
    /* A step's gradients are pushed, its CLOCK not yet sent: cut is the position after it
     * (a distributed worker hands it to its PS client, which carries it on the CLOCK). */
    void (*step_pushed)(void *ctx, const WorkerCut *cut);
    /* After the step's CLOCK: 1 when the job takes a cut at cut->steps (nothing of the next
     * step is pushed yet), else 0. */
    int (*cut_due)(void *ctx, const WorkerCut *cut);
    /* Take part in the cut at cut->steps: 0 = go on, TRAIN_STOPPED = the job stops here
     * (train_run then returns TRAIN_STOPPED), or an error. final is 1 for the end of
     * training (every epoch done). */
    int (*checkpoint)(void *ctx, const WorkerCut *cut, int final);
    /* After a cut hook returned TRAIN_REPLAN: fill ro's start, plan, rank and world (the
     * pointers must stay valid until the next replan or the end of train_run). The batch
     * in flight is dropped (its samples are in the new plan) and reading goes on from there. */
    int (*replan)(void *ctx, ReaderOptions *ro);
    /* For the progress line, when one is due: *lag = this worker's finished steps (steps)
     * minus the slowest worker's; return 1, or 0 when there is no such figure (one process). */
    int (*lag)(void *ctx, uint64_t steps, uint64_t *lag);
} TrainHooks;

typedef struct TrainOptions {
    ModelDims dims;
    int batch_size;
    int epochs;
    int log_every;            /* steps between loss lines in metrics */
    uint64_t seed;
    uint32_t rank, world;     /* this worker's partition */
    int interleave;           /* partition mode (ReaderOptions.interleave) */
    Dataset *train;           /* borrowed */
    PsClient *ps;             /* borrowed */
    FILE *metrics;            /* metrics.jsonl, or NULL */
    const ReaderPosition *start; /* resume position, or NULL */
    const ReaderPlan *plan;   /* re-partition plan of a resume with another layout, or NULL */
    uint64_t start_step;
    uint64_t start_samples;   /* samples trained before start (earlier lives of the run) */
    ProgressMode progress;    /* progress line on stderr (PROGRESS_OFF = none; 0) */
    double progress_interval; /* seconds between PROGRESS_PLAIN lines (run.log_every_seconds) */
    TrainHooks hooks;
} TrainOptions;

typedef struct TrainResult {
    uint64_t steps;           /* global steps at the end */
    uint64_t samples;         /* samples trained in this life of the run */
    WorkerCut last;            /* the position after the last finished step */
    double seconds;
    double last_loss;         /* mean loss of the last logging interval */
} TrainResult;

/* Train for opt->epochs epochs. Returns 0, TRAIN_STOPPED (a cut stopped the job; res holds
 * where), or the first error (with detail). */
int train_run(const TrainOptions *opt, TrainResult *res);

/* Draw the candidates of one sample: the click first, then K of the impression's negatives
 * without replacement in random order, padded with news 0 when there are fewer than K.
 * scratch holds nneg u32. */
void train_sample_candidates(Rng *rng, uint32_t pos, const uint32_t *neg, uint32_t nneg, int K,
                             uint32_t *scratch, uint32_t *cand);

#endif
