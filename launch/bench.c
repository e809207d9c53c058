/* The benchmarks behind `psrec bench` (see bench.h).
 *
 * Model: four random batches of the requested shape are generated up front (the peer's
 * distribution: tokens in [1, V), title lengths in [title_len/2, title_len], history lengths
 * in [1, his_len], users in [1, U)); every history and candidate slot gets a news id of its
 * own, whose title lives in a bench-owned table read by the BatchNewsFn callback. Steps cycle
 * through the batches; the warm-up creates every sparse row the timed steps touch, so a
 * timed step is exactly what a training step costs in steady state.
 * Prep: generated (or given) MIND-format train split, prep_run into fresh outputs.
 * Checkpoint: a shard with every key of every table pushed once (the largest state a shard of
 * that shape can hold), copied, written, verified and loaded with the functions a run uses.
 * Invariants: nothing here changes the code it measures; the timed region holds only the
 * call being measured. Not here: argument parsing and printing (cmd_bench.c). */
#include "launch/bench.h"

#include "common/error.h"
#include "common/fsutil.h"
#include "common/keys.h"
#include "common/params.h"
#include "common/rng.h"
#include "common/timer.h"
#include "launch/ckptdir.h"
#include "launch/cut.h"
#include "launch/inproc.h"
#include "launch/prep.h"
#include "launch/run.h"
#include "server/loop.h"
#include "server/shard.h"
#include "worker/lstm.h"
#include "worker/lstm_gemm.h"
#include "worker/ps_zmq.h"
#include "worker/train.h"

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define BENCH_BATCHES 4

/* CPU time of the whole process (prep is single-threaded, so this is prep's). */
static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (1 <= n <= BENCH_MAX_REPEAT); v is left unchanged. */
static double median(const double *v, int n)
{
    double s[BENCH_MAX_REPEAT];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

double bench_median(const double *v, int n)
{
    return median(v, n);
}

/* ------------------------------------------------------------------ model */

/* Titles of every news of the pre-generated batches; news id i is row i (row 0 = padding). */
typedef struct BenchNewsTable {
    uint32_t n;          /* rows, padding included */
    int title_len;
    uint32_t *tokens;    /* (n, title_len) */
    uint32_t *len;       /* (n) */
    uint32_t *category;  /* (n) */
} BenchNewsTable;

/* One pre-generated batch in global ids, laid out as train_step_run reads it. */
typedef struct BenchBatch {
    uint32_t *users;  /* (B) */
    uint32_t *his;    /* (B, his_len) */
    int *his_n;       /* (B) */
    uint32_t *cand;   /* (B, 1 + K) */
    uint64_t news_tokens, user_steps, news;
} BenchBatch;

static int news_lookup(void *ctx, uint32_t news, BatchNews *out)
{
    const BenchNewsTable *t = ctx;
    if (news == 0 || news >= t->n)
        return psrec_errf(PSREC_E_RANGE, "bench: no news %u", news);
    out->category = t->category[news];
    out->ntok = t->len[news];
    out->tokens = t->tokens + (size_t)news * (size_t)t->title_len;
    return 0;
}

/* Give the next news row a random title and category; returns its id. */
static uint32_t new_news(BenchNewsTable *t, uint32_t *next, const BenchModelOptions *o, Rng *rng)
{
    const int L = o->dims.title_len;
    const int lo = L / 2 > 1 ? L / 2 : 1;
    uint32_t id = (*next)++;
    uint32_t len = (uint32_t)lo + (uint32_t)rng_below(rng, (uint64_t)(L - lo + 1));
    uint32_t *tok = t->tokens + (size_t)id * (size_t)L;
    for (uint32_t i = 0; i < len; i++)
        tok[i] = 1 + (uint32_t)rng_below(rng, o->vocab - 1);
    t->len[id] = len;
    t->category[id] = (uint32_t)rng_below(rng, o->categories);
    return id;
}

static void batch_fini(BenchBatch *b)
{
    free(b->users);
    free(b->his);
    free(b->his_n);
    free(b->cand);
    memset(b, 0, sizeof *b);
}

static int batch_make(BenchBatch *b, BenchNewsTable *t, uint32_t *next,
                      const BenchModelOptions *o, Rng *rng)
{
    const int B = o->batch, L = o->dims.his_len, C = 1 + o->dims.K;
    memset(b, 0, sizeof *b);
    b->users = malloc((size_t)B * sizeof *b->users);
    b->his = calloc((size_t)B * (size_t)L, sizeof *b->his);
    b->his_n = malloc((size_t)B * sizeof *b->his_n);
    b->cand = malloc((size_t)B * (size_t)C * sizeof *b->cand);
    if (!b->users || !b->his || !b->his_n || !b->cand) {
        batch_fini(b);
        return PSREC_E_NOMEM;
    }
    for (int i = 0; i < B; i++) {
        b->users[i] = 1 + (uint32_t)rng_below(rng, o->users - 1);
        b->his_n[i] = 1 + (int)rng_below(rng, (uint64_t)L);
        /* Slots past his_n stay news 0: batch_build never reads them. */
        for (int h = 0; h < b->his_n[i]; h++) {
            uint32_t id = new_news(t, next, o, rng);
            b->his[(size_t)i * (size_t)L + (size_t)h] = id;
            b->news_tokens += t->len[id];
        }
        for (int c = 0; c < C; c++) {
            uint32_t id = new_news(t, next, o, rng);
            b->cand[(size_t)i * (size_t)C + (size_t)c] = id;
            b->news_tokens += t->len[id];
        }
        b->user_steps += (uint64_t)b->his_n[i];
        b->news += (uint64_t)(b->his_n[i] + C);
    }
    return 0;
}

void bench_model_defaults(BenchModelOptions *o)
{
    *o = (BenchModelOptions){
        .dims = {.E = 128, .H = 128, .title_len = 30, .his_len = 50, .K = 4},
        .batch = 64,
        .steps = 20,
        .warmup = BENCH_BATCHES,
        .repeat = 5,
        .vocab = 50000,
        .categories = 20,
        .users = 100000,
        .seed = 1,
    };
}

double bench_lstm_gflop(const ModelDims *d, uint64_t news_tokens, uint64_t user_steps)
{
    const double H4 = 4.0 * d->H;
    double fwd = 2.0 * (double)news_tokens * H4 * (double)(d->E + d->H) +
                 2.0 * (double)user_steps * H4 * (double)(2 * d->H);
    return 3.0 * fwd * 1e-9;
}

static int check_model_options(const BenchModelOptions *o)
{
    const ModelDims *d = &o->dims;
    if (o->batch < 1 || o->steps < 1 || o->warmup < 0 || o->repeat < 1 ||
        o->repeat > BENCH_MAX_REPEAT || d->E < 1 || d->H < 1 || d->title_len < 1 ||
        d->his_len < 1 || d->K < 0 || o->vocab < 2 || o->categories < 1 || o->users < 2)
        return psrec_errf(PSREC_E_USAGE,
                          "bench: bad options (batch %d, steps %d, warmup %d, repeat %d, E %d, "
                          "H %d, title_len %d, his_len %d, K %d, vocab %u, categories %u, "
                          "users %u)",
                          o->batch, o->steps, o->warmup, o->repeat, d->E, d->H, d->title_len,
                          d->his_len, d->K, o->vocab, o->categories, o->users);
    return 0;
}

/* Run n steps the way the trainer does: with an asynchronous client the next batch's pulls
 * are issued before this batch completes; every step ends with ps_clock. All steps have
 * completed on return. */
static int run_steps(TrainStep *ts, PsClient *ps, const BenchBatch *batches, BenchNewsTable *nt,
                     const BenchModelOptions *o, int n, uint64_t *step, float *loss)
{
    const int depth = ps->ops->async ? 2 : 1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        const BenchBatch *b = &batches[(*step + (uint64_t)train_step_pending(ts)) % BENCH_BATCHES];
        rc = train_step_issue(ts, o->batch, b->users, b->his, b->his_n, b->cand, news_lookup, nt);
        if (!rc && train_step_pending(ts) == depth && !(rc = train_step_complete(ts, loss)))
            rc = ps_clock(ps, (*step)++);
    }
    while (!rc && train_step_pending(ts))
        if (!(rc = train_step_complete(ts, loss)))
            rc = ps_clock(ps, (*step)++);
    return rc;
}

/* One shard event loop in a thread on tcp://127.0.0.1, and a ZeroMQ client for one worker,
 * each with its own ZeroMQ context as in a job, where they are two processes: the shard's
 * I/O thread encrypts and decrypts its end of the connection, the worker's its own, at the
 * same time. */
typedef struct Loopback {
    void *ctx;        /* the worker's */
    void *shard_ctx;
    ServerLoop *loop;
    int running, loop_rc;
    PsZmq *client;
} Loopback;

/* With CURVE (the default of ps.security), a fresh server and client keypair, as a job's:
 * the figure includes the encryption a real job pays. */
static int loopback_start(Loopback *lb, const ShardOptions *so, const BenchModelOptions *o)
{
    KeyPair server, client;
    memset(&server, 0, sizeof server);
    memset(&client, 0, sizeof client);
    int rc = 0;
    if (!(lb->ctx = zmq_ctx_new()) || !(lb->shard_ctx = zmq_ctx_new()))
        return psrec_errf(zmq_errno(), "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    if (o->ps_io_threads > 0 && (zmq_ctx_set(lb->ctx, ZMQ_IO_THREADS, o->ps_io_threads) ||
                                 zmq_ctx_set(lb->shard_ctx, ZMQ_IO_THREADS, o->ps_io_threads)))
        return psrec_errf(zmq_errno(), "ZMQ_IO_THREADS %d: %s", o->ps_io_threads,
                          zmq_strerror(zmq_errno()));
    if (!o->ps_insecure && ((rc = keys_pair_new(&server)) || (rc = keys_pair_new(&client))))
        goto out;
    ServerLoopOptions lo = {.shard = *so,
                            .shard_count = 1,
                            .workers = 1,
                            .consistency = o->ps_asp ? SERVER_ASP : SERVER_BSP,
                            .endpoint = "tcp://127.0.0.1:*",
                            .zmq_ctx = lb->shard_ctx};
    char keyset[2][KEYS_Z85_SIZE]; /* [0] the client's public key, [1] the server's */
    memcpy(keyset[0], client.pub, KEYS_Z85_SIZE);
    memcpy(keyset[1], server.pub, KEYS_Z85_SIZE);
    if (!o->ps_insecure) {
        lo.curve_secret = server.sec;
        lo.curve_clients = (const char (*)[KEYS_Z85_SIZE])keyset;
        lo.curve_nclients = 1;
    }
    if ((rc = server_loop_new(&lo, &lb->loop)) || (rc = server_loop_start(lb->loop)))
        goto out;
    lb->running = 1;
    const char *ep = server_loop_endpoint(lb->loop);
    KeysClient kc = {.pub = client.pub, .sec = client.sec,
                     .servers = (const char (*)[KEYS_Z85_SIZE])(keyset + 1)};
    PsZmqOptions po = {.zmq_ctx = lb->ctx, .endpoints = &ep, .shards = 1, .worker_rank = 0,
                       .workers = 1, .shape = so->shape, .timeout = 120.0,
                       .wire_dtype = o->wire_dtype,
                       .curve = o->ps_insecure ? NULL : &kc};
    rc = ps_zmq_new(&po, &lb->client);
out:
    keys_wipe(&server, sizeof server);
    keys_wipe(&client, sizeof client);
    return rc;
}

static void loopback_stop(Loopback *lb)
{
    if (lb->client)
        ps_zmq_shutdown(lb->client);
    if (lb->running) {
        if (!lb->client)
            server_loop_stop(lb->loop);
        server_loop_join(lb->loop, -1, &lb->loop_rc);
    }
    ps_zmq_free(&lb->client);
    server_loop_free(&lb->loop);
    if (lb->ctx)
        zmq_ctx_term(lb->ctx);
    if (lb->shard_ctx)
        zmq_ctx_term(lb->shard_ctx);
    memset(lb, 0, sizeof *lb);
}

/* The bench's model as a run meta (Adam with PyTorch's defaults, one shard, one worker), so
 * the shard is set up by the same conversion train and eval use. */
static RunMeta bench_meta(const ModelDims *d, uint32_t vocab, uint32_t categories,
                          uint32_t users, uint64_t seed)
{
    return (RunMeta){.version = RUNMETA_VERSION,
                     .size = sizeof(RunMeta),
                     .E = (uint32_t)d->E,
                     .H = (uint32_t)d->H,
                     .title_len = (uint32_t)d->title_len,
                     .his_len = (uint32_t)d->his_len,
                     .K = (uint32_t)d->K,
                     .optimizer = OPTIM_ADAM,
                     .lr = 1e-3f,
                     .beta1 = 0.9f,
                     .beta2 = 0.999f,
                     .eps = 1e-8f,
                     .vocab_rows = vocab,
                     .category_rows = categories,
                     .user_rows = users,
                     .seed = seed,
                     .shards = 1,
                     .workers = 1};
}

int bench_model(const BenchModelOptions *o, BenchModelResult *r)
{
    memset(r, 0, sizeof *r);
    int rc = check_model_options(o);
    if (rc)
        return rc;
    const ModelDims *d = &o->dims;
    const uint64_t slots = (uint64_t)o->batch * (uint64_t)(d->his_len + 1 + d->K);
    BenchNewsTable nt = {.title_len = d->title_len};
    BenchBatch batches[BENCH_BATCHES] = {0};
    Shard *shard = NULL;
    TrainStep *ts = NULL;
    PsClient ps;
    Loopback lb = {0};
    if (1 + BENCH_BATCHES * slots > UINT32_MAX)
        return psrec_errf(PSREC_E_USAGE, "bench: the batches hold too many news");
    nt.n = (uint32_t)(1 + BENCH_BATCHES * slots);
    nt.tokens = calloc((size_t)nt.n * (size_t)d->title_len, sizeof *nt.tokens);
    nt.len = calloc(nt.n, sizeof *nt.len);
    nt.category = calloc(nt.n, sizeof *nt.category);
    if (!nt.tokens || !nt.len || !nt.category) {
        rc = psrec_errf(PSREC_E_NOMEM, "bench: no memory for %u news", nt.n);
        goto out;
    }
    Rng rng;
    rng_seed(&rng, o->seed);
    uint32_t next = 1;
    double gflop = 0, news = 0, tokens = 0;
    for (int i = 0; i < BENCH_BATCHES; i++) {
        if ((rc = batch_make(&batches[i], &nt, &next, o, &rng))) {
            psrec_errf(rc, "bench: no memory for the batches");
            goto out;
        }
        gflop += bench_lstm_gflop(d, batches[i].news_tokens, batches[i].user_steps);
        news += (double)batches[i].news;
        tokens += (double)batches[i].news_tokens;
    }
    const RunMeta meta = bench_meta(d, o->vocab, o->categories, o->users, o->seed);
    ShardOptions so;
    run_meta_shard_options(&meta, &so);
    {
        TableSpec specs[PARAM_TABLES];
        params_specs(&so.shape, specs);
        for (int t = 0; t < PARAM_TABLES; t++)
            r->dense_bytes += (double)specs[t].rows * specs[t].width * sizeof(float);
    }
    if (o->ps) {
        if ((rc = loopback_start(&lb, &so, o)))
            goto out;
        ps_zmq_client(lb.client, &ps);
    } else {
        if ((rc = shard_new(&so, &shard)))
            goto out;
        inproc_client_init(&ps, shard);
    }
    if ((rc = train_step_new(&ts, d, o->batch, &ps)))
        goto out;
    float loss = 0;
    uint64_t step = 0;
    if ((rc = run_steps(ts, &ps, batches, &nt, o, o->warmup, &step, &loss)))
        goto out;
    uint64_t pulled0, pushed0;
    train_step_bytes(ts, &pulled0, &pushed0);
    double step_s[BENCH_MAX_REPEAT], step_gflops[BENCH_MAX_REPEAT], ratio[BENCH_MAX_REPEAT];
    double step_cpu[BENCH_MAX_REPEAT];
    for (int rep = 0; rep < o->repeat; rep++) {
        double run_gflop = 0;
        double t0 = timer_now(), c0 = cpu_s();
        if ((rc = run_steps(ts, &ps, batches, &nt, o, o->steps, &step, &loss)))
            goto out;
        double dt = timer_now() - t0;
        step_cpu[rep] = (cpu_s() - c0) / (double)o->steps;
        /* Outside the timed region: which batches this repeat ran. */
        for (uint64_t s = step - (uint64_t)o->steps; s < step; s++) {
            const BenchBatch *b = &batches[s % BENCH_BATCHES];
            run_gflop += bench_lstm_gflop(d, b->news_tokens, b->user_steps);
        }
        if (dt <= 0)
            dt = 1e-9;
        r->runs[rep] = (double)o->batch * (double)o->steps / dt;
        step_s[rep] = dt / (double)o->steps;
        step_gflops[rep] = run_gflop / dt;
        if (o->sgemm_m > 0) {
            if ((rc = bench_sgemm(o->sgemm_m, o->sgemm_n, o->sgemm_k, 3, &r->sgemm_runs[rep])))
                goto out;
            ratio[rep] = step_gflops[rep] / r->sgemm_runs[rep];
        }
    }
    if (o->sgemm_m > 0) {
        r->sgemm_gflops = median(r->sgemm_runs, o->repeat);
        r->useful_ratio = median(ratio, o->repeat);
    }
    uint64_t pulled, pushed;
    train_step_bytes(ts, &pulled, &pushed);
    const double timed = (double)o->steps * (double)o->repeat;
    r->repeat = o->repeat;
    r->samples_per_s = median(r->runs, o->repeat);
    r->ms_per_step = 1e3 * median(step_s, o->repeat);
    r->cpu_ms_per_step = 1e3 * median(step_cpu, o->repeat);
    r->useful_gflop_per_step = gflop / BENCH_BATCHES;
    r->useful_gflops = median(step_gflops, o->repeat);
    r->news_per_step = news / BENCH_BATCHES;
    r->tokens_per_step = tokens / BENCH_BATCHES;
    /* The step counts f32 values; over the wire they take wire_dtype_size bytes each. */
    const double value_scale = o->ps ? (double)wire_dtype_size(o->wire_dtype) / sizeof(float) : 1;
    r->pulled_mb_per_step = (double)(pulled - pulled0) / 1e6 / timed * value_scale;
    r->pushed_mb_per_step = (double)(pushed - pushed0) / 1e6 / timed * value_scale;
    r->last_loss = loss;
    if (lb.client) {
        uint64_t sent, received;
        ps_zmq_bytes(lb.client, &sent, &received);
        r->wire_mb_per_step = (double)(sent + received) / 1e6 / (timed + (double)o->warmup);
    }
out:
    train_step_free(&ts);
    loopback_stop(&lb);
    shard_free(&shard);
    for (int i = 0; i < BENCH_BATCHES; i++)
        batch_fini(&batches[i]);
    free(nt.tokens);
    free(nt.len);
    free(nt.category);
    return rc;
}

/* ------------------------------------------------------------------ sgemm */

/* Median GFLOP/s of (M, K) x (K, N): cblas_sgemm, or lstm_gemm_nn's fast kernels (own). */
static int time_gemm(int own, int M, int N, int K, int calls, double *gflops)
{
    *gflops = 0;
    if (M < 1 || N < 1 || K < 1 || calls < 1 || calls > BENCH_MAX_REPEAT)
        return psrec_errf(PSREC_E_USAGE, "bench: bad sgemm shape %dx%dx%d, %d calls", M, N, K,
                          calls);
    float *A = malloc((size_t)M * (size_t)K * sizeof *A);
    float *Bm = malloc((size_t)K * (size_t)N * sizeof *Bm);
    float *C = malloc((size_t)M * (size_t)N * sizeof *C);
    if (!A || !Bm || !C) {
        free(A);
        free(Bm);
        free(C);
        return psrec_errf(PSREC_E_NOMEM, "bench: no memory for a %dx%dx%d sgemm", M, N, K);
    }
    Rng rng;
    rng_seed(&rng, 42);
    for (size_t i = 0; i < (size_t)M * (size_t)K; i++)
        A[i] = (float)(rng_uniform(&rng) - 0.5);
    for (size_t i = 0; i < (size_t)K * (size_t)N; i++)
        Bm[i] = (float)(rng_uniform(&rng) - 0.5);
    double t[BENCH_MAX_REPEAT];
    for (int c = -1; c < calls; c++) {
        double t0 = timer_now();
        if (own)
            lstm_gemm_nn(1, M, N, K, A, K, Bm, N, 0.0f, C, N);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, Bm, N,
                        0.0f, C, N);
        double dt = timer_now() - t0;
        if (c >= 0)
            t[c] = dt > 0 ? dt : 1e-9;
    }
    *gflops = 2.0 * M * (double)N * K / median(t, calls) * 1e-9;
    free(A);
    free(Bm);
    free(C);
    return 0;
}

int bench_sgemm(int M, int N, int K, int calls, double *gflops)
{
    return time_gemm(0, M, N, K, calls, gflops);
}

int bench_own_gemm(int M, int N, int K, int calls, double *gflops)
{
    return time_gemm(1, M, N, K, calls, gflops);
}

/* ------------------------------------------------------------------ kernel */

void bench_kernel_defaults(BenchKernelOptions *o)
{
    *o = (BenchKernelOptions){.seqs = 3520, .T = 30, .E = 128, .H = 128, .calls = 3,
                              .repeat = 5, .sgemm_m = 7040, .sgemm_n = 512, .sgemm_k = 128,
                              .seed = 1};
}

double bench_kernel_gflop(int E, int H, uint64_t rows, int bs0)
{
    const double H4 = 4.0 * H, rec = (double)rows - (double)bs0;
    return 3.0 * (2.0 * (double)rows * E * H4 + 2.0 * rec * H * H4) * 1e-9;
}

static void fill_random(float *x, size_t n, float scale, Rng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (float)(rng_uniform(rng) - 0.5);
}

int bench_kernel(const BenchKernelOptions *o, BenchKernelResult *r)
{
    memset(r, 0, sizeof *r);
    if (o->seqs < 1 || o->T < 1 || o->E < 1 || o->H < 1 || o->calls < 1 || o->repeat < 1 ||
        o->repeat > BENCH_MAX_REPEAT || (double)o->seqs * o->T * 6.0 * o->H > (double)INT32_MAX)
        return psrec_errf(PSREC_E_USAGE, "bench: bad kernel shape (%d sequences, T %d, E %d, "
                          "H %d, %d calls, %d repeats)", o->seqs, o->T, o->E, o->H, o->calls,
                          o->repeat);
    const int N = o->seqs, T = o->T, E = o->E, H = o->H, H4 = 4 * H;
    const int lo = T / 2 > 1 ? T / 2 : 1;
    int *lens = malloc((size_t)N * sizeof *lens);
    int *bs = malloc((size_t)T * sizeof *bs);
    int *off = malloc(((size_t)T + 1) * sizeof *off);
    float *X = NULL, *Hout = NULL, *cache = NULL, *dH = NULL, *dX = NULL, *W = NULL, *ws = NULL;
    int rc = 0;
    if (!lens || !bs || !off) {
        rc = psrec_errf(PSREC_E_NOMEM, "bench: no memory for %d sequences", N);
        goto out;
    }
    Rng rng;
    rng_seed(&rng, o->seed);
    /* Lengths drawn as the model bench's titles, then sorted longest first (counting sort:
     * the packed layout's order, which the model's news encoder also produces). */
    {
        int k = 0;
        int *draw = calloc((size_t)T + 1, sizeof *draw);
        if (!draw) {
            rc = psrec_errf(PSREC_E_NOMEM, "bench: no memory for %d sequences", N);
            goto out;
        }
        for (int i = 0; i < N; i++)
            draw[lo + (int)rng_below(&rng, (uint64_t)(T - lo + 1))]++;
        for (int len = T; len >= 0; len--)
            for (int c = 0; c < draw[len]; c++)
                lens[k++] = len;
        free(draw);
    }
    LstmPack pk;
    if ((rc = lstm_pack_init(&pk, lens, N, T, bs, off)))
        goto out;
    const size_t rows = (size_t)pk.N;
    /* W holds W_ih (E, 4H), W_hh (H, 4H), b (4H) and their gradients, in that order. */
    const size_t wn = (size_t)(E + H + 1) * H4;
    X = malloc(rows * E * sizeof *X);
    Hout = malloc(rows * H * sizeof *Hout);
    cache = malloc(lstm_cache_floats(pk.N, H) * sizeof *cache);
    dH = malloc(rows * H * sizeof *dH);
    dX = malloc(rows * E * sizeof *dX);
    W = calloc(2 * wn, sizeof *W);
    ws = malloc(lstm_backward_ws_floats(N, H) * sizeof *ws);
    if (!X || !Hout || !cache || !dH || !dX || !W || !ws) {
        rc = psrec_errf(PSREC_E_NOMEM, "bench: no memory for an LSTM of %zu rows", rows);
        goto out;
    }
    fill_random(X, rows * E, 0.2f, &rng);
    fill_random(dH, rows * H, 0.02f, &rng);
    fill_random(W, wn, 2.0f / sqrtf((float)H), &rng);
    const float *Wih = W, *Whh = W + (size_t)E * H4, *b = W + (size_t)(E + H) * H4;
    float *dWih = W + wn, *dWhh = dWih + (size_t)E * H4, *db = dWhh + (size_t)H * H4;
    r->rows = rows;
    r->gflop = bench_kernel_gflop(E, H, rows, pk.bs[0]);
    double ms[BENCH_MAX_REPEAT], ratio[BENCH_MAX_REPEAT], ratio_own[BENCH_MAX_REPEAT];
    for (int rep = -1; rep < o->repeat; rep++) { /* rep -1: untimed warm-up (page faults) */
        double t0 = timer_now();
        for (int c = 0; c < o->calls; c++) {
            lstm_forward(&pk, E, H, X, NULL, Wih, Whh, b, Hout, cache);
            lstm_backward(&pk, E, H, X, NULL, Wih, Whh, Hout, cache, dH, dX, dWih, dWhh, db,
                          NULL, ws);
        }
        double dt = (timer_now() - t0) / o->calls;
        if (rep < 0)
            continue;
        if (dt <= 0)
            dt = 1e-9;
        if ((rc = bench_sgemm(o->sgemm_m, o->sgemm_n, o->sgemm_k, 3, &r->sgemm_runs[rep])))
            goto out;
        if ((rc = bench_own_gemm(o->sgemm_m, o->sgemm_n, o->sgemm_k, 3, &r->own_runs[rep])))
            goto out;
        ms[rep] = 1e3 * dt;
        r->kernel_runs[rep] = r->gflop / dt;
        ratio[rep] = r->kernel_runs[rep] / r->sgemm_runs[rep];
        ratio_own[rep] = r->kernel_runs[rep] / r->own_runs[rep];
    }
    r->own_gemm_gflops = median(r->own_runs, o->repeat);
    r->kernel_ratio_own = median(ratio_own, o->repeat);
    r->repeat = o->repeat;
    r->ms = median(ms, o->repeat);
    r->kernel_gflops = median(r->kernel_runs, o->repeat);
    r->sgemm_gflops = median(r->sgemm_runs, o->repeat);
    r->kernel_ratio = median(ratio, o->repeat);
out:
    free(lens);
    free(bs);
    free(off);
    free(X);
    free(Hout);
    free(cache);
    free(dH);
    free(dX);
    free(W);
    free(ws);
    return rc;
}

/* ------------------------------------------------------------------ peer */

/* 1 when `python -c 'import torch'` succeeds. */
static int python_has_torch(const char *python)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch' >/dev/null 2>&1", python);
    return system(cmd) == 0;
}

static int readable(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f)
        fclose(f);
    return f != NULL;
}

/* The peer script: o->script, else beside the working directory, else two levels above the
 * executable's directory. Returns 1 and fills path when found. */
static int find_peer_script(const char *given, char *path, size_t cap)
{
    static const char rel[] = "shared/peers/torch_lstmnr.py";
    if (given) {
        snprintf(path, cap, "%s", given);
        return readable(path);
    }
    snprintf(path, cap, "../%s", rel);
    if (readable(path))
        return 1;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return 0;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    if ((size_t)snprintf(path, cap, "%s/../../%s", exe, rel) >= cap)
        return 0;
    return readable(path);
}

int bench_peer(const BenchPeerOptions *o, BenchPeerResult *r)
{
    memset(r, 0, sizeof *r);
    const ModelDims *d = &o->dims;
    if (o->repeat < 1 || o->repeat > BENCH_MAX_REPEAT || o->steps < 1 || o->warmup < 0 ||
        o->threads < 1 || o->batch < 1)
        return psrec_errf(PSREC_E_USAGE, "bench: bad peer options");
    char script[4096];
    if (!find_peer_script(o->script, script, sizeof script)) {
        snprintf(r->skipped, sizeof r->skipped, "peer script %s not found",
                 o->script ? o->script : "../shared/peers/torch_lstmnr.py");
        return 0;
    }
    const char *env = getenv("PSREC_PYTHON");
    const char *cands[] = {o->python ? o->python : env && *env ? env : "python3",
                           o->python || (env && *env) ? NULL : "/usr/bin/python3"};
    const char *python = NULL;
    for (size_t i = 0; i < sizeof cands / sizeof *cands && !python; i++) {
        if (cands[i] && strchr(cands[i], '\''))
            return psrec_errf(PSREC_E_USAGE, "bench: python path %s has a quote", cands[i]);
        if (cands[i] && python_has_torch(cands[i]))
            python = cands[i];
    }
    if (!python) {
        snprintf(r->skipped, sizeof r->skipped, "%s -c 'import torch' fails%s", cands[0],
                 cands[1] ? " (so does /usr/bin/python3)" : "");
        return 0;
    }
    if (strchr(script, '\''))
        return psrec_errf(PSREC_E_USAGE, "bench: peer script path %s has a quote", script);
    char cmd[9000];
    snprintf(cmd, sizeof cmd,
             "'%s' '%s' bench --batch %d --title-len %d --his-len %d --word-dim %d --hidden %d "
             "--neg %d --vocab %u --cats %u --users %u --steps %d --warmup %d --threads %d 2>&1",
             python, script, o->batch, d->title_len, d->his_len, d->E, d->H, d->K, o->vocab,
             o->categories, o->users, o->steps, o->warmup, o->threads);
    for (int rep = 0; rep < o->repeat; rep++) {
        FILE *p = popen(cmd, "r");
        if (!p)
            return psrec_errf(errno ? errno : EIO, "bench: cannot start the peer: %s",
                              strerror(errno));
        char line[1024], last[1024] = "";
        double sps = -1;
        while (fgets(line, sizeof line, p)) {
            snprintf(last, sizeof last, "%s", line);
            if (sscanf(line, "samples_per_s %lf", &sps) != 1)
                sscanf(line, "torch %63s", r->version);
        }
        int st = pclose(p);
        if (st != 0 || sps <= 0) {
            last[strcspn(last, "\n")] = '\0';
            return psrec_errf(EIO, "bench: the peer (%s) failed (status %d): %s", cmd,
                              st, last);
        }
        r->runs[rep] = sps;
    }
    r->repeat = o->repeat;
    r->samples_per_s = median(r->runs, o->repeat);
    return 0;
}

/* ------------------------------------------------------------------ prep */

void bench_prep_defaults(BenchPrepOptions *o)
{
    memset(o, 0, sizeof *o);
    gen_options_default(&o->gen);
    o->gen.news = 51000;
    o->gen.users = 50000;
    o->gen.train_impressions = 157000;
    o->gen.dev_impressions = 1000;
    o->repeat = 5;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) ? errno : 0;
}

/* rm -rf path; a missing path is fine. Returns 0 or an errno value. */
static int rmtree(const char *path)
{
    int rc = nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc < 0)
        return errno == ENOENT ? 0 : errno;
    return rc;
}

int bench_prep(const BenchPrepOptions *o, BenchPrepResult *r)
{
    memset(r, 0, sizeof *r);
    if (o->repeat < 1 || o->repeat > BENCH_MAX_REPEAT)
        return psrec_errf(PSREC_E_USAGE, "bench: --repeat %d out of range 1..%d", o->repeat,
                          BENCH_MAX_REPEAT);
    const char *tmp = getenv("TMPDIR");
    char root[4096], data[4200], news[4300], beh[4300], out[4300];
    snprintf(root, sizeof root, "%s/psrec-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root))
        return psrec_errf(errno, "bench: mkdtemp %s: %s", root, strerror(errno));
    int rc = 0;
    if (o->data) {
        snprintf(data, sizeof data, "%s", o->data);
    } else {
        snprintf(data, sizeof data, "%s/data", root);
        GenOptions g = o->gen;
        g.out = data;
        double t0 = timer_now();
        if ((rc = gen_run(&g, NULL)))
            goto out;
        r->gen_seconds = timer_now() - t0;
    }
    double cpu[BENCH_MAX_REPEAT];
    snprintf(news, sizeof news, "%s/train/news.tsv", data);
    snprintf(beh, sizeof beh, "%s/train/behaviors.tsv", data);
    for (int rep = 0; rep < o->repeat; rep++) {
        snprintf(out, sizeof out, "%s/prep-%d", root, rep);
        PrepOptions po = {.news_path = news, .behaviors_path = beh, .out_path = out,
                          .min_count = 1};
        double c0 = cpu_s(), t0 = timer_now();
        rc = prep_run(&po, &r->meta);
        double dt = timer_now() - t0, dc = cpu_s() - c0;
        if (rc)
            goto out;
        r->runs[rep] = dt > 0 ? dt : 1e-9;
        cpu[rep] = dc > 0 ? dc : 1e-9;
        /* Only one dataset on disk at a time: MIND-small's is hundreds of MB. */
        if ((rc = rmtree(out))) {
            psrec_errf(rc, "bench: removing %s: %s", out, strerror(rc));
            goto out;
        }
    }
    r->repeat = o->repeat;
    r->seconds = median(r->runs, o->repeat);
    r->mb_per_s = (double)r->meta.tsv_bytes / 1e6 / r->seconds;
    r->cpu_seconds = median(cpu, o->repeat);
out:;
    int rm = rmtree(root);
    if (!rc && rm)
        rc = psrec_errf(rm, "bench: removing %s: %s", root, strerror(rm));
    return rc;
}

/* ------------------------------------------------------------------ checkpoint */

void bench_checkpoint_defaults(BenchCheckpointOptions *o)
{
    *o = (BenchCheckpointOptions){.E = 128, .H = 128, .vocab = 50000, .categories = 20,
                                  .users = 100000, .seed = 1, .repeat = 5};
}

/* Push one small random gradient to every key of every table, in chunks: every sparse row
 * then exists, and every row has Adam moments and a step count, as after a long run. */
static int populate(Shard *s, uint64_t seed)
{
    enum { CHUNK = 1024 };
    uint64_t keys[CHUNK];
    float *g = NULL;
    Rng rng;
    rng_seed(&rng, seed ^ 0x9e3779b97f4a7c15ULL);
    int rc = 0;
    for (uint32_t t = 0; t < PARAM_TABLES && !rc; t++) {
        const uint64_t rows = shard_table_rows(s, t);
        const size_t w = shard_table_width(s, t);
        float *ng = realloc(g, CHUNK * w * sizeof *g);
        if (!ng) {
            rc = psrec_errf(PSREC_E_NOMEM, "bench: no memory for gradients");
            break;
        }
        g = ng;
        for (uint64_t k0 = 0; k0 < rows && !rc; k0 += CHUNK) {
            const size_t n = rows - k0 < CHUNK ? (size_t)(rows - k0) : CHUNK;
            for (size_t i = 0; i < n; i++)
                keys[i] = k0 + i;
            for (size_t i = 0; i < n * w; i++)
                g[i] = (float)(0.02 * (rng_uniform(&rng) - 0.5));
            rc = shard_push(s, t, keys, n, g);
        }
    }
    free(g);
    return rc;
}

/* Sum of the sizes of the plain files in dir. Returns 0 or an errno value with detail. */
static int dir_bytes(const char *dir, uint64_t *bytes)
{
    *bytes = 0;
    DIR *d = opendir(dir);
    if (!d)
        return psrec_errf(errno, "bench: %s: %s", dir, strerror(errno));
    struct dirent *e;
    char path[4400 + sizeof e->d_name];
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st))
            rc = psrec_errf(errno, "bench: %s: %s", path, strerror(errno));
        else if (S_ISREG(st.st_mode))
            *bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    return rc;
}

/* 1: path does not exist or is an empty directory. */
static int dir_new_or_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty;
}

int bench_checkpoint(const BenchCheckpointOptions *o, BenchCheckpointResult *r)
{
    memset(r, 0, sizeof *r);
    if (o->repeat < 1 || o->repeat > BENCH_MAX_REPEAT || o->E < 1 || o->H < 1 ||
        o->vocab < 2 || o->categories < 1 || o->users < 2)
        return psrec_errf(PSREC_E_USAGE, "bench: bad options (repeat %d, E %u, H %u, vocab %u, "
                          "categories %u, users %u)", o->repeat, o->E, o->H, o->vocab,
                          o->categories, o->users);
    char root[4096], step_dir[4400];
    if (o->dir) {
        if (!dir_new_or_empty(o->dir))
            return psrec_errf(PSREC_E_USAGE, "bench: --dir %s exists and is not empty (the "
                              "bench prunes checkpoints there): give a new directory", o->dir);
        snprintf(root, sizeof root, "%s", o->dir);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(root, sizeof root, "%s/psrec-bench-ckpt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(root))
            return psrec_errf(errno, "bench: mkdtemp %s: %s", root, strerror(errno));
    }
    Shard *s = NULL, *fresh = NULL, *loaded = NULL;
    CutImage *img = NULL;
    int rc = 0;
    const ModelDims d = {.E = (int)o->E, .H = (int)o->H, .title_len = 30, .his_len = 50, .K = 4};
    const RunMeta meta = bench_meta(&d, o->vocab, o->categories, o->users, o->seed);
    ShardOptions so;
    run_meta_shard_options(&meta, &so);
    if ((rc = fs_mkdir_p(root)) || (rc = shard_new(&so, &s)) || (rc = populate(s, o->seed)))
        goto out;
    ShardStats st;
    shard_stats(s, &st);
    r->rows = st.rows_held;
    /* The image the checkpoint thread would get: the copy plus one worker's position. */
    if ((rc = cut_image_new(1, &img)))
        goto out;
    img->shards = 1;
    const WorkerCut wc = {.pos = {.seed = o->seed, .world = 1}};
    size_t len;
    if ((rc = workercut_encode(&wc, img->cuts, SNAP_CUT_MAX, &len)))
        goto out;
    img->cut_len[0] = (uint32_t)len;
    CutWriter cw = {.meta = meta,
                    .config_text = "# psrec bench --checkpoint\n",
                    .model_hash = cut_model_hash(&meta),
                    .seed = o->seed,
                    .keep = 1,
                    .committer = 1,
                    .wait_timeout = 60.0,
                    .life_t0 = timer_now()};
    snprintf(cw.root, sizeof cw.root, "%s", root);
    /* The first cut's copy, into new memory (untimed here: timed below), then kept. */
    if ((rc = shard_snapshot(s, &img->copy)))
        goto out;
    for (int rep = 0; rep < o->repeat; rep++) {
        /* main() keeps freed blocks in the heap (mallopt): hand them back to the kernel, or
         * this "fresh" copy would land in pages the previous repeat's copies faulted in. */
        malloc_trim(0);
        double t0 = timer_now();
        rc = shard_clone(s, &fresh);
        r->fresh_ms_runs[rep] = 1e3 * (timer_now() - t0);
        shard_free(&fresh);
        if (rc)
            goto out;
        t0 = timer_now();
        rc = shard_snapshot(s, &img->copy);
        r->reuse_ms_runs[rep] = 1e3 * (timer_now() - t0);
        if (rc)
            goto out;
        img->step = (uint64_t)rep + 1;
        img->finished[0] = img->step;
        t0 = timer_now();
        if ((rc = cut_write(&cw, img)))
            goto out;
        r->write_s_runs[rep] = timer_now() - t0;
        snprintf(step_dir, sizeof step_dir, "%s/step-%010llu", root,
                 (unsigned long long)img->step);
        t0 = timer_now();
        if ((rc = ckptdir_verify(step_dir, NULL)))
            goto out;
        r->verify_s_runs[rep] = timer_now() - t0;
        RunMeta saved;
        malloc_trim(0); /* a resume loads into a new process: fresh pages */
        t0 = timer_now();
        if ((rc = ckptdir_load_shard(step_dir, 0, 1, so.lazy_dense, &saved, &loaded)))
            goto out;
        r->load_s_runs[rep] = timer_now() - t0;
        ShardStats ls;
        shard_stats(loaded, &ls);
        shard_free(&loaded);
        if (ls.rows_held != r->rows) {
            rc = psrec_errf(PSREC_E_STATE, "bench: %s loaded %llu rows, %llu were saved",
                            step_dir, (unsigned long long)ls.rows_held,
                            (unsigned long long)r->rows);
            goto out;
        }
    }
    if ((rc = dir_bytes(step_dir, &r->checkpoint_bytes)))
        goto out;
    r->repeat = o->repeat;
    r->pause_ms_fresh = median(r->fresh_ms_runs, o->repeat);
    r->pause_ms_reuse = median(r->reuse_ms_runs, o->repeat);
    r->write_s = median(r->write_s_runs, o->repeat);
    r->verify_s = median(r->verify_s_runs, o->repeat);
    r->load_s = median(r->load_s_runs, o->repeat);
out:
    cut_image_free(&img);
    shard_free(&loaded);
    shard_free(&fresh);
    shard_free(&s);
    if (!o->dir) {
        int rm = rmtree(root);
        if (!rc && rm)
            rc = psrec_errf(rm, "bench: removing %s: %s", root, strerror(rm));
    }
    return rc;
}
