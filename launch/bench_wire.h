/* `psrec bench --apply`: how fast one shard applies pushed gradients, for docs/scaling.md's
 * model. A synthetic push flood (random rows of the word and user tables and every dense
 * row, Adam as the trainer configures it) straight into shard_push, against memcpy bandwidth
 * and the bf16 encode/decode rate measured in the same run. Medians of `repeat` runs; for
 * reports, never for pass/fail tests. */
#ifndef PSREC_LAUNCH_BENCH_WIRE_H
#define PSREC_LAUNCH_BENCH_WIRE_H

#include <stdint.h>

typedef struct BenchApplyOptions {
    uint32_t E, H;       /* model dims (row widths) */
    uint32_t vocab;      /* word rows */
    uint32_t users;      /* user rows */
    uint32_t rows;       /* rows per push message, >= 1 */
    int pushes;          /* timed pushes per repeat, >= 1 */
    int repeat;          /* 1..BENCH_MAX_REPEAT */
    uint64_t seed;
} BenchApplyOptions;

typedef struct BenchApplyResult {
    double rows_per_s;          /* rows applied per second (median) */
    double apply_gb_per_s;      /* gradient bytes (f32) applied per second, 1e9 B */
    double apply_cpu_gb_per_s;  /* the same per CPU second of the applying thread */
    double touched_gb_per_s;    /* bytes the apply reads and writes (param, m, v: 3 reads +
                                   3 writes of 4 B, plus the 4 B gradient), 1e9 B/s */
    double memcpy_gb_per_s;     /* memcpy of a 256 MB buffer, bytes copied per second */
    double bf16_encode_gb_per_s; /* f32 values rounded to bf16, f32 bytes in per second */
    double bf16_decode_gb_per_s; /* bf16 widened to f32, f32 bytes out per second */
    double sparse_fraction;     /* of the rows pushed: sparse (word, user) rows */
} BenchApplyResult;

/* Reference shape: E = H = 128, vocab 50000, users 100000, 4096 rows a push, 200 pushes,
 * 5 repeats. */
void bench_apply_defaults(BenchApplyOptions *o);

/* Run the flood. Single-threaded (a shard is one thread). Returns 0, PSREC_E_USAGE (an option
 * out of range), PSREC_E_NOMEM or shard_push's error. */
int bench_apply(const BenchApplyOptions *o, BenchApplyResult *r);

#endif
