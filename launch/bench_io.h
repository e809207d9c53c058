/* The data paths of `psrec bench --all`: prep MB/s, eval impressions/s, recommend's first and
 * cached answer, and a worker's memory split into heap and mapped dataset pages.
 *
 * A BenchIo holds one generated MIND-format data set (psrec gen) and its prepared train and
 * dev datasets (psrec prep, dev with --vocab-from train) in a temporary directory ($TMPDIR or
 * /tmp), made once by bench_io_new and removed by bench_io_free, so that every figure is taken
 * on the same input. The model is a fresh one of the given dims (random init from seed, no
 * training): speed does not depend on the weights' values.
 *
 * Every timing is CLOCK_MONOTONIC, the median of `repeat` runs. Timings are for reports (psrec
 * bench), never for pass/fail tests. A BenchIo is single-threaded; OpenBLAS uses its current
 * thread count (the caller sets it). */
#ifndef PSREC_LAUNCH_BENCH_IO_H
#define PSREC_LAUNCH_BENCH_IO_H

#include "launch/gen.h"
#include "worker/model.h"

#include <stdint.h>

typedef struct BenchIoOptions {
    const char *data; /* a directory in gen's layout (train/ and dev/ with news.tsv and
                         behaviors.tsv) to reuse, or NULL to generate gen */
    GenOptions gen;   /* what to generate when data is NULL (out is ignored) */
    ModelDims dims;   /* model shape (E, H, title_len, his_len; K unused) */
    uint64_t seed;    /* model init */
    int repeat;       /* 1..BENCH_MAX_REPEAT (launch/bench.h) */
} BenchIoOptions;

/* MIND-small's size (51000 news, 50000 users, 157000 train impressions) with 20000 dev
 * impressions, the reference model dims (E = H = 128, title_len 30, his_len 50, K 4), seed 1,
 * 3 repeats. (`psrec gen --news 100000 --users 700000 --train-impressions 2200000` is
 * MIND-large's size.) */
void bench_io_defaults(BenchIoOptions *o);

typedef struct BenchIo BenchIo;

/* Generate (unless o->data) and prepare the train and dev datasets. o is copied (o->data must
 * outlive the BenchIo). Returns 0, PSREC_E_USAGE (an option out of range) or the first error
 * (detail in psrec_errmsg()); on error *out is NULL and nothing is left on disk. */
int bench_io_new(BenchIo **out, const BenchIoOptions *o);
/* Removes the temporary directory. NULL-safe; clears the caller's pointer. */
void bench_io_free(BenchIo **b);

typedef struct BenchEvalResult {
    double impressions_per_s; /* median over repeats: eval_run over every dev impression */
    double candidates_per_s;  /* the same runs' candidates/s */
    double seconds;           /* median seconds of one eval_run (news encoding included) */
    uint64_t impressions;     /* dev impressions per run */
    uint64_t candidates;
} BenchEvalResult;

/* eval_run of the fresh model over every impression of the dev dataset, `repeat` times, each
 * with a fresh in-process shard (the pull of dense weights and the news encoding included, as
 * psrec eval does them). Returns 0 or the first error (detail in psrec_errmsg()). */
int bench_eval(BenchIo *b, BenchEvalResult *r);

typedef struct BenchPrepIoResult {
    double mb_per_s;      /* median over repeats: TSV bytes of the train split / 1e6 / s */
    double mb_per_cpu_s;  /* the same over the process CPU time of a run (one core) */
    double seconds;       /* median seconds of one prep_run */
    uint64_t tsv_bytes;
} BenchPrepIoResult;

/* prep_run of the train split into a fresh dataset, `repeat` times (one core). Returns 0 or
 * the first error (detail in psrec_errmsg()). */
int bench_prep_io(BenchIo *b, BenchPrepIoResult *r);

typedef struct BenchRecommendResult {
    double first_ms;      /* median: load the checkpoint, open the dataset, encode every news
                             (and write the news-vector cache), rank every news for one user */
    double cached_ms;     /* median: the same question again, news vectors from the cache */
    uint64_t news_rows;   /* rows ranked */
} BenchRecommendResult;

/* psrec recommend --user on the train dataset with a checkpoint of the fresh model: the first
 * question of each repeat runs with no news-vector cache, the second one with it. Returns 0 or
 * the first error (detail in psrec_errmsg()). */
int bench_recommend(BenchIo *b, BenchRecommendResult *r);

typedef struct BenchMemory {
    double peak_rss_mb;       /* the bench process's peak RSS so far (getrusage ru_maxrss) */
    double rss_mb;            /* its RSS at the end of the worker's data path (smaps) */
    double heap_mb;           /* anonymous resident pages the data path added (malloc heap,
                                 mmapped allocations, thread stacks): what the worker owns */
    double mapped_dataset_mb; /* resident file pages of the datasets' data.mdb maps: page
                                 cache, shared with every process mapping the file, dropped
                                 by the kernel under memory pressure */
    double mapped_other_mb;   /* other resident file-backed pages (the binary, libraries) */
    double eval_news_mb;      /* of heap_mb: the scorer's (news_rows, H) matrix of the dev
                                 set, the one part that scales with the data (its news) */
    uint64_t dataset_bytes;   /* the train and dev data.mdb files' sizes */
} BenchMemory;

/* What a worker holds for its data, measured in this process from /proc/self/smaps before and
 * after the worker's data path: open both datasets, read every training sample through the
 * reader (one epoch, B 64), walk every dev impression, and allocate and fill the scorer's news
 * matrix as eval does. The model (loaded before the first measurement) is not counted: it
 * lives on the shards. Returns 0 or the first error (detail in psrec_errmsg()). */
int bench_memory(BenchIo *b, BenchMemory *m);

#endif
