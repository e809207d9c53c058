/* Start-up pieces every way of running the model shares (train, eval, bench): opening and
 * cross-checking datasets, the run directory, thread count, dims and run meta from a config,
 * and the metrics.jsonl evaluation line. Errors are logged here, in one clear line each. */
#ifndef PSREC_LAUNCH_RUN_H
#define PSREC_LAUNCH_RUN_H

#include "common/config.h"
#include "common/dataset.h"
#include "common/metrics.h"
#include "common/progress.h"
#include "common/runmeta.h"
#include "server/shard.h"
#include "worker/model.h"

#include <stdio.h>

/* Open data.train and (when set) data.dev; dev must share train's vocabulary tables.
 * Returns 0 or -1 (logged). */
int run_open_datasets(const Config *cfg, Dataset **train, Dataset **dev);

/* Create run.dir, write config.effective, open metrics.jsonl (appended to when append: a
 * resumed run keeps its earlier lives' lines) into *metrics.
 * Returns 0 or -1 (logged). */
int run_prepare_dir(const Config *cfg, int append, FILE **metrics);

/* Append every later log line of this process to run.dir/log (created when missing; lines of
 * earlier lives and of other ranks stay). Call once the run dir is this run's (after the
 * refusal / --force / --resume checks). Returns 0 or -1 (logged, to stderr: the run goes on
 * without the file). */
int run_open_log(const Config *cfg);

/* Progress on stderr for one rank: reporting = this rank shows the job's progress (the only
 * process, or the first worker under mpirun). Returns the mode (progress_mode_auto(), or
 * PROGRESS_OFF when not reporting) and routes the per-step detail lines: on stderr only for
 * the reporting rank when its stderr is not a terminal (cluster logs keep them, as before);
 * under a redrawn progress line, and on every other rank, they go to run.dir/log only. */
ProgressMode run_progress_setup(int reporting);

/* Compute threads: OpenBLAS's and the LSTM GEMMs' (lstm_gemm_set_threads), n each (they
 * never run at once: one caller thread issues both), or every core when n == 0. */
void run_set_threads(int n);

/* The run meta a config and its training set describe: model dims, id-space sizes, optimizer,
 * init seed; step 0, one shard, one worker. */
void run_meta_from_config(const Config *cfg, const DatasetMeta *train, RunMeta *m);

/* The one conversion from RunMeta to the worker's ModelDims (E, H, title_len, his_len, K). */
void run_meta_dims(const RunMeta *m, ModelDims *d);

/* The one conversion from RunMeta to a shard's options: table shapes, optimizer, seed;
 * lazy_dense 0 (callers that run one shard of many set it). */
void run_meta_shard_options(const RunMeta *m, ShardOptions *o);

/* {"auc","mrr","ndcg5","ndcg10","impressions","skipped"}: the final result on stdout. */
void run_print_eval(FILE *f, const MetricsResult *r);

/* {"epoch","step","auc","mrr","ndcg5","ndcg10","impressions","skipped"} to metrics. */
void run_write_eval(FILE *metrics, uint64_t epoch, uint64_t step, const MetricsResult *r);

#endif
