/* `psrec bench` as library calls: the throughput of training steps on random batches (the
 * peer's bench mode, shared/peers/torch_lstmnr.py), of OpenBLAS sgemm at an LSTM-like shape,
 * of prep on MIND-small-sized generated data, and what a checkpoint costs (the training
 * pause, writing, verifying and loading one) at a given model shape. Every figure is measured with
 * CLOCK_MONOTONIC and is the median of `repeat` runs, so one noisy run does not move it.
 * Timings are for reports (psrec bench), never for pass/fail tests. */
#ifndef PSREC_LAUNCH_BENCH_H
#define PSREC_LAUNCH_BENCH_H

#include "common/dataset.h"
#include "launch/gen.h"
#include "worker/model.h"

#include <stdint.h>

/* Most repeats one call measures (the per-repeat figures are kept in fixed arrays). */
#define BENCH_MAX_REPEAT 100

typedef struct BenchModelOptions {
    ModelDims dims;      /* E, H, title_len, his_len, K */
    int batch;           /* B: samples per step */
    int steps;           /* timed steps per repeat, >= 1 */
    int warmup;          /* untimed steps before the first repeat, >= 0 */
    int repeat;          /* 1..BENCH_MAX_REPEAT */
    uint32_t vocab;      /* word ids drawn from [1, vocab) */
    uint32_t categories; /* category ids drawn from [0, categories) */
    uint32_t users;      /* user ids drawn from [1, users) */
    uint64_t seed;
    int ps;              /* 0: in-process shard; 1: one shard event loop in a thread, reached
                            by the ZeroMQ client over loopback TCP (what a worker does) */
    int ps_asp;          /* with ps: 0 = BSP (the same updates as in-process), 1 = ASP (the
                            next pull no longer waits for this step's update) */
    uint32_t wire_dtype; /* with ps: WireDtype of pulled rows and pushed gradients (0 = f32) */
    int sgemm_m, sgemm_n, sgemm_k; /* when sgemm_m > 0: bench_sgemm at this shape after each
                                      repeat (untimed for the steps), so useful_ratio compares
                                      each repeat with the machine's state right after it */
    int ps_insecure;     /* with ps: 0 = CURVE with fresh keys (ps.security's default),
                            1 = no security (ps.security = none) */
    int ps_io_threads;   /* with ps: ZMQ_IO_THREADS of the context; 0 = ZeroMQ's default */
} BenchModelOptions;

typedef struct BenchModelResult {
    int repeat;
    double runs[BENCH_MAX_REPEAT]; /* (repeat) samples/s of each repeat, in run order */
    double samples_per_s;          /* median of runs */
    double ms_per_step;            /* median step time */
    double cpu_ms_per_step;        /* median CPU time of this process (every thread: compute,
                                      ZeroMQ I/O and CURVE, the shard's loop) per step; unlike
                                      wall time it hardly moves when other jobs load the
                                      machine */
    double useful_gflop_per_step;  /* mean over the batches (see bench_lstm_gflop) */
    double useful_gflops;          /* useful_gflop_per_step / median step time */
    double news_per_step;          /* distinct news encoded per step (mean) */
    double tokens_per_step;        /* their real title tokens (mean) */
    double pulled_mb_per_step;     /* parameter payload, 1e6 bytes (with ps: as it travels,
                                      wire_dtype_size bytes a value) */
    double pushed_mb_per_step;
    double last_loss;
    double wire_mb_per_step;       /* --ps: bytes on the wire, both ways, 1e6 bytes */
    double dense_bytes;            /* bytes of a full pull of every table (the whole model) */
    double sgemm_runs[BENCH_MAX_REPEAT]; /* (repeat) with sgemm_m > 0: GFLOP/s after each */
    double sgemm_gflops;           /* median of sgemm_runs (0 without sgemm_m) */
    double useful_ratio;           /* median of the repeats' useful GFLOP/s / sgemm_runs */
} BenchModelResult;

/* Median of v[0..n), n >= 1 (v is not changed). */
double bench_median(const double *v, int n);

/* The reference shape of the peer's bench: B 64, title_len 30, his_len 50, E 128, H 128,
 * K 4, vocab 50000, 20 categories, 100000 users; 20 steps after 4 warm-up steps (one pass
 * over the four batches, so every sparse row exists before timing starts), 5 repeats. */
void bench_model_defaults(BenchModelOptions *o);

/* Time full training steps (train_step_run: dedup, pull, forward/backward, push with Adam)
 * through an in-process shard on four pre-generated random batches, cycled. Each candidate
 * and history slot is a news of its own with an independent random title, as in the peer.
 * Uses OpenBLAS's current thread count. Returns 0, PSREC_E_USAGE (an option out of range)
 * or the first error of the step (detail in psrec_errmsg()). */
int bench_model(const BenchModelOptions *o, BenchModelResult *r);

/* FLOPs of the LSTM GEMMs one training step must do, in GFLOP, counting 2*M*N*K per GEMM:
 *   forward  = 2 * T_news * 4H * (E + H)     news LSTM: x.W_ih and h.W_hh per real token
 *            + 2 * T_user * 4H * (H + H)     user LSTM: per real history step
 *   backward ~ 2 * forward                   dX = dG.W^T and dW = X^T.dG for both weights
 *   total    = 3 * forward
 * T_news = real title tokens of the distinct news of the batch, T_user = real history steps.
 * Padding is not counted: it is work the step does not have to do. */
double bench_lstm_gflop(const ModelDims *d, uint64_t news_tokens, uint64_t user_steps);

/* Median GFLOP/s of cblas_sgemm on row-major (M, K) x (K, N) over `calls` timed calls (after
 * one untimed call), with OpenBLAS's current threads. Returns 0 or PSREC_E_NOMEM. */
int bench_sgemm(int M, int N, int K, int calls, double *gflops);

/* The LSTM kernel alone (worker/lstm.h): lstm_forward then lstm_backward over `seqs` packed
 * sequences whose lengths are drawn as the model bench's titles (uniform in [T/2, T]), with
 * random inputs and weights, against cblas_sgemm at a reference shape in the same
 * repeat, so the ratio compares like with like on a loaded machine. */
typedef struct BenchKernelOptions {
    int seqs;         /* sequences N (3520 = B (his_len + 1 + K) at the reference shape) */
    int T;            /* longest length (title_len) */
    int E, H;         /* input and hidden sizes */
    int calls;        /* timed forward+backward pairs per repeat, >= 1 */
    int repeat;       /* 1..BENCH_MAX_REPEAT */
    int sgemm_m, sgemm_n, sgemm_k; /* the reference GEMM timed after each repeat */
    uint64_t seed;
} BenchKernelOptions;

typedef struct BenchKernelResult {
    int repeat;
    uint64_t rows;                        /* packed rows: the sum of the lengths */
    double gflop;                         /* one forward+backward (bench_kernel_gflop) */
    double kernel_runs[BENCH_MAX_REPEAT]; /* (repeat) GFLOP/s of each repeat */
    double sgemm_runs[BENCH_MAX_REPEAT];  /* (repeat) sgemm GFLOP/s right after it */
    double ms;                            /* median milliseconds of one forward+backward */
    double kernel_gflops;                 /* median of kernel_runs */
    double sgemm_gflops;                  /* median of sgemm_runs */
    double kernel_ratio;                  /* median of kernel_runs[i] / sgemm_runs[i] */
    double own_runs[BENCH_MAX_REPEAT];    /* (repeat) bench_own_gemm at the same shape */
    double own_gemm_gflops;               /* median of own_runs */
    double kernel_ratio_own;              /* median of kernel_runs[i] / own_runs[i]: what the
                                             layer keeps of its own GEMMs' speed */
} BenchKernelResult;

/* The reference shape: 3520 sequences, T 30, E = H = 128, 3 calls per repeat, 5 repeats,
 * sgemm 7040 x 512 x 128 (the model bench's). */
void bench_kernel_defaults(BenchKernelOptions *o);

/* FLOPs of one lstm_forward + lstm_backward (with dX, without dh0) in GFLOP, 2*M*N*K per GEMM:
 *   forward  = 2 rows E 4H            X.W_ih, one GEMM over every packed row
 *            + 2 (rows - bs0) H 4H    h_{t-1}.W_hh for t >= 1 (h0 = 0: no GEMM at t = 0)
 *   backward = 2 rows E 4H (dW_ih) + 2 rows E 4H (dX)
 *            + 2 (rows - bs0) H 4H (dW_hh) + 2 (rows - bs0) H 4H (dh_{t-1})
 *   total    = 3 * forward
 * rows = packed rows (real tokens), bs0 = sequences of length >= 1. The element-wise gate
 * math is not counted: it is overhead against sgemm, as in bench_lstm_gflop. */
double bench_kernel_gflop(int E, int H, uint64_t rows, int bs0);

/* Per repeat: `calls` forward+backward pairs timed together, then bench_sgemm at the
 * reference shape. Uses OpenBLAS's current thread count. Returns 0, PSREC_E_USAGE or
 * PSREC_E_NOMEM (detail in psrec_errmsg()). */
int bench_kernel(const BenchKernelOptions *o, BenchKernelResult *r);

/* The PyTorch peer's bench mode (shared/peers/torch_lstmnr.py bench) at a given shape. */
typedef struct BenchPeerOptions {
    const char *python; /* interpreter; NULL: $PSREC_PYTHON, else the first of python3 and
                           /usr/bin/python3 that can `import torch` */
    const char *script; /* the peer script; NULL: ../shared/peers/torch_lstmnr.py from the
                           working directory, else from two levels above the executable's
                           directory (build/psrec in a checkout beside shared/) */
    ModelDims dims;
    int batch, threads, steps, warmup, repeat; /* repeat: runs of the script, 1..BENCH_MAX_REPEAT */
    uint32_t vocab, categories, users;
} BenchPeerOptions;

typedef struct BenchPeerResult {
    int repeat;                    /* runs made; 0 when skipped */
    double runs[BENCH_MAX_REPEAT]; /* samples/s of each run */
    double samples_per_s;          /* median */
    char skipped[256];             /* why it did not run ("" when it ran) */
    char version[64];              /* torch version the script printed */
} BenchPeerResult;

/* Run the peer script `repeat` times at the options' shape and threads, parsing its
 * "samples_per_s X" line. When no interpreter can import torch or the script is not found,
 * returns 0 with r->skipped saying why (the peer is optional: nothing may depend on it).
 * Returns PSREC_E_USAGE (bad options or a path with a quote), EIO (the script ran
 * but failed or printed no figure; detail in psrec_errmsg()). */
int bench_peer(const BenchPeerOptions *o, BenchPeerResult *r);

/* bench_sgemm's measurement of the LSTM's own GEMM (lstm_gemm_nn, fast kernels, its threads;
 * cblas_sgemm where the CPU lacks them). Returns 0 or PSREC_E_NOMEM / PSREC_E_USAGE. */
int bench_own_gemm(int M, int N, int K, int calls, double *gflops);

typedef struct BenchPrepOptions {
    const char *data; /* directory with train/news.tsv + train/behaviors.tsv (gen's layout) to
                         reuse, or NULL to generate gen into the temporary directory */
    GenOptions gen;   /* what to generate when data is NULL (out is ignored) */
    int repeat;       /* 1..BENCH_MAX_REPEAT */
} BenchPrepOptions;

typedef struct BenchPrepResult {
    int repeat;
    double runs[BENCH_MAX_REPEAT]; /* (repeat) seconds of each prep_run */
    double seconds;                /* median */
    double mb_per_s;               /* meta.tsv_bytes / 1e6 / seconds */
    double cpu_seconds;            /* median process CPU time of a run: on a busy machine,
                                      what one core needs when nothing preempts prep */
    double gen_seconds;            /* generating the input, 0 when reused */
    DatasetMeta meta;              /* of the last run */
} BenchPrepResult;

/* MIND-small's size: 51000 news, 50000 users, 157000 train and 1000 dev impressions. */
void bench_prep_defaults(BenchPrepOptions *o);

/* Time prep_run of the train split `repeat` times, each into a fresh dataset under a
 * temporary directory ($TMPDIR or /tmp), which is removed before returning (also on error).
 * Single-threaded: prep uses one core. Returns 0 or an error code (detail in psrec_errmsg()). */
int bench_prep(const BenchPrepOptions *o, BenchPrepResult *r);

typedef struct BenchCheckpointOptions {
    uint32_t E, H;       /* word embedding and hidden sizes */
    uint32_t vocab;      /* word rows */
    uint32_t categories; /* category rows */
    uint32_t users;      /* user rows */
    uint64_t seed;       /* init seed and gradient values */
    int repeat;          /* 1..BENCH_MAX_REPEAT */
    const char *dir;     /* checkpoint root to write into: must not exist or be empty (the
                            cuts prune step dirs there); the last cut is left in it, valid
                            for `psrec inspect`. NULL: a temporary root under $TMPDIR (or
                            /tmp), removed before returning (also on error). */
} BenchCheckpointOptions;

typedef struct BenchCheckpointResult {
    int repeat;
    uint64_t rows;             /* rows held over every table (every key of every table) */
    uint64_t checkpoint_bytes; /* the files of one step dir: shard-0.ckpt, job.ckpt, MANIFEST */
    /* Per repeat, in run order; the figures below are their medians. */
    double fresh_ms_runs[BENCH_MAX_REPEAT], reuse_ms_runs[BENCH_MAX_REPEAT];
    double write_s_runs[BENCH_MAX_REPEAT], verify_s_runs[BENCH_MAX_REPEAT];
    double load_s_runs[BENCH_MAX_REPEAT];
    double pause_ms_fresh;     /* shard_clone into new memory: the first cut of a life */
    double pause_ms_reuse;     /* shard_snapshot refreshing the previous copy: later cuts */
    double write_s;            /* cut_write (shard file, job.ckpt, MANIFEST commit with fsync,
                                  LATEST, pruning the previous step dir) */
    double verify_s;           /* ckptdir_verify of the step dir just written (page cache warm) */
    double load_s;             /* ckptdir_load_shard of it into one shard (page cache warm,
                                  fresh memory as in a resumed process) */
} BenchCheckpointResult;

/* The reference shape: E = H = 128, vocab 50000, 20 categories, 100000 users, 5 repeats. */
void bench_checkpoint_defaults(BenchCheckpointOptions *o);

/* One shard of the given shape (Adam, as the trainer makes it) with every row of every table
 * present and pushed once (moments and step counts exist), then per repeat: a shard_clone
 * into new memory, a shard_snapshot refreshing the previous copy, cut_write of that copy as
 * step rep+1 of a one-shard, one-worker cut through the real checkpoint directory code (keep
 * 1), ckptdir_verify and ckptdir_load_shard of the step dir. The loaded shard must hold every
 * row, else PSREC_E_STATE. Single-threaded. Returns 0, PSREC_E_USAGE (an option out of range,
 * or dir not empty) or the first error (detail in psrec_errmsg()). */
int bench_checkpoint(const BenchCheckpointOptions *o, BenchCheckpointResult *r);

#endif
