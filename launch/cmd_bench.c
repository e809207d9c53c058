/* `psrec bench`: the command-line front end of launch/bench.c.
 *
 * Model mode (default) times full training steps on random batches of a given shape (the
 * peer's bench mode) plus cblas_sgemm at an LSTM-like shape in the same process and thread
 * count; --prep times prep_run on MIND-small-sized generated data; --checkpoint times what a
 * checkpoint costs at a model shape (training pause, write, verify, load). Options are parsed
 * strictly (digits only, within range; unknown options, stray arguments, and options of the
 * other mode are usage errors, exit 2). With --json one JSON object goes to stdout, else a
 * readable summary; every speed claim in the README comes from this output. */
#include "common/error.h"
#include "common/heap.h"
#include "common/log.h"
#include "common/wire.h"
#include "launch/bench.h"
#include "launch/bench_io.h"
#include "launch/bench_wire.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/run.h"

#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* sgemm timings per run: the median of this many calls. */
#define SGEMM_CALLS 7

static void bench_usage(FILE *f)
{
    BenchModelOptions m;
    BenchPrepOptions p;
    bench_model_defaults(&m);
    bench_prep_defaults(&p);
    fprintf(f,
            "usage: psrec bench [--json] [model options] [--threads N] [--repeat R]\n"
            "       psrec bench --ps [--json] [model options] [--threads N] [--repeat R]\n"
            "       psrec bench --prep [--json] [--data DIR | prep size options] [--repeat R]\n"
            "       psrec bench --checkpoint [--json] [shape options] [--dir DIR] [--repeat R]\n"
            "       psrec bench --all [--json] [model options] [--threads N] [--repeat R]\n"
            "                   [--peer SCRIPT]\n"
            "       psrec bench --kernel [--json] [model options] [--threads N] [--repeat R]\n"
            "       psrec bench --apply [--json] [--repeat R]\n\n"
            "Model mode (default): time full training steps (dedup, pull, forward/backward,\n"
            "push with Adam through an in-process shard) on four random batches, cycled, and\n"
            "cblas_sgemm at an LSTM-like shape. Reports the median samples/s of R repeats,\n"
            "the useful GFLOP/s (LSTM GEMMs over real tokens only) and the sgemm GFLOP/s.\n"
            "  --batch N          samples per step (default %d)\n"
            "  --title-len N      max tokens per title (default %d)\n"
            "  --his-len N        max clicks per history (default %d)\n"
            "  --word-dim N       word embedding size E (default %d)\n"
            "  --hidden N         hidden size H (default %d)\n"
            "  --negatives N      negatives per sample K (default %d)\n"
            "  --vocab N          vocabulary rows (default %u)\n"
            "  --categories N     category rows (default %u)\n"
            "  --users N          user rows (default %u)\n"
            "  --steps N          timed steps per repeat (default %d)\n"
            "  --warmup N         untimed steps first (default %d)\n"
            "  --seed N           random seed (default %" PRIu64 ")\n"
            "  --threads N        OpenBLAS threads (default 2; 1 on a one-core machine)\n"
            "PS mode (--ps): the model steps twice in one run, in-process and through one\n"
            "shard over loopback TCP (BSP, the worker's next pull overlapping its compute;\n"
            "shard and worker each with its own ZeroMQ context, as in a job), R pairs of\n"
            "one in-process and one PS repeat (alternating which goes first); prints\n"
            "samples_per_s, ps_samples_per_s, ps_ratio (median of the pairs' ratios,\n"
            "ps_ratio_runs), bytes_per_sample (pulled +\n"
            "pushed payload), dense_bytes (a full pull of every table), cpu_ms_per_step and\n"
            "ps_cpu_ms_per_step (process CPU time per step, every thread).\n"
            "  --asp              the shard runs ASP instead of BSP\n"
            "  --wire-dtype T     f32 (default) or bf16: pulled rows and pushed gradients on\n"
            "                     the wire (ps.wire_dtype); bytes_per_sample counts them so\n"
            "                     (wire_dtype in the JSON)\n"
            "  --security S       curve (default, as ps.security) or none; JSON field security\n"
            "  --io-threads N     ZMQ_IO_THREADS of each context (default: ZeroMQ's, 1)\n"
            "Apply mode (--apply): one shard applying a flood of pushed rows (Adam, E=H=128),\n"
            "against memcpy and bf16 conversion in the same run (docs/scaling.md's inputs).\n"
            "Prep mode: time prep_run of a train split (one core).\n"
            "  --prep             this mode\n"
            "  --data DIR         reuse DIR/train/{news,behaviors}.tsv instead of generating\n"
            "  --prep-news N      news to generate (default %u)\n"
            "  --prep-users N     users to generate (default %u)\n"
            "  --prep-impressions N  train impressions to generate (default %u)\n"
            "Checkpoint mode (--checkpoint): one shard of the shape (--word-dim, --hidden,\n"
            "--vocab, --categories, --users, --seed; defaults as above) with every row of\n"
            "every table present and pushed once (Adam moments and step counts), then per\n"
            "repeat: pause_ms_fresh (copy into new memory: a life's first cut),\n"
            "pause_ms_reuse (refresh the previous copy: every later cut), write_s (shard file,\n"
            "job.ckpt, MANIFEST commit, fsync), verify_s and load_s (the step dir just\n"
            "written: page cache warm); checkpoint_bytes is one step dir's files.\n"
            "  --checkpoint       this mode\n"
            "  --dir DIR          write the checkpoints into DIR (new or empty; the last one\n"
            "                     is left there); default: a temporary dir under $TMPDIR,\n"
            "                     removed afterwards\n"
            "All (--all): every figure in one run: the model mode's step (sgemm timed after\n"
            "each repeat: useful_ratio), the LSTM kernel alone (B (his_len + 1 + K) titles,\n"
            "forward + backward: kernel_gflops, kernel_ratio), --ps (ps_samples_per_s,\n"
            "ps_ratio, bytes_per_sample), the PyTorch peer at the same shape and threads\n"
            "(peer_samples_per_s, peer_ratio; skipped with a reason without torch), eval,\n"
            "prep, recommend and a worker's memory (skipped with a reason when unavailable),\n"
            "and the load average before and after. --prep-news/-users/-impressions size\n"
            "the generated data set of the data-path figures (default MIND-small's).\n"
            "  --all              this mode\n"
            "Kernel (--kernel): only the LSTM kernel part of --all (kernel_gflops,\n"
            "sgemm_gflops, kernel_ratio).\n"
            "  --peer SCRIPT      the peer (default ../shared/peers/torch_lstmnr.py, also\n"
            "                     looked up beside the executable's checkout; the interpreter\n"
            "                     is $PSREC_PYTHON, else python3 or /usr/bin/python3)\n"
            "All modes:\n"
            "  --repeat R         repeats; figures are medians (default %d, max %d)\n"
            "  --json             one JSON object on stdout instead of the summary\n"
            "  -h, --help         this text\n",
            m.batch, m.dims.title_len, m.dims.his_len, m.dims.E, m.dims.H, m.dims.K, m.vocab,
            m.categories, m.users, m.steps, m.warmup, m.seed, p.gen.news, p.gen.users,
            p.gen.train_impressions, m.repeat, BENCH_MAX_REPEAT);
}

/* 2 threads, or every core when there are fewer. */
static int default_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores >= 2 ? 2 : 1;
}

/* v[0..n) with `decimals` digits after the point, separated by sep. */
static void print_runs(const double *v, int n, int decimals, const char *sep)
{
    for (int i = 0; i < n; i++) {
        if (i)
            fputs(sep, stdout);
        printf("%.*f", decimals, v[i]);
    }
}

/* --ps's runs: o->repeat pairs of one in-process and one PS repeat, which of the two goes
 * first alternating, so a machine whose load changes during the invocation (other jobs)
 * moves both runs of a pair alike; ratios[r] is pair r's PS / in-process samples/s. a and b
 * hold the runs in order and the medians of samples/s and CPU per step; their other fields
 * are the first pair's. Returns 0 or bench_model's error. */
static int ps_pairs(const BenchModelOptions *o, BenchModelResult *a, BenchModelResult *b,
                    double *ratios)
{
    BenchModelOptions inproc = *o, remote = *o;
    inproc.ps = 0;
    remote.ps = 1;
    inproc.repeat = remote.repeat = 1;
    double acpu[BENCH_MAX_REPEAT], bcpu[BENCH_MAX_REPEAT];
    for (int r = 0; r < o->repeat; r++) {
        BenchModelResult x, y;
        int rc = r % 2 ? bench_model(&remote, &y) || bench_model(&inproc, &x)
                       : bench_model(&inproc, &x) || bench_model(&remote, &y);
        if (rc)
            return -1;
        if (r == 0) {
            *a = x;
            *b = y;
        }
        a->runs[r] = x.runs[0];
        b->runs[r] = y.runs[0];
        acpu[r] = x.cpu_ms_per_step;
        bcpu[r] = y.cpu_ms_per_step;
        ratios[r] = y.runs[0] / x.runs[0];
    }
    a->repeat = b->repeat = o->repeat;
    a->samples_per_s = bench_median(a->runs, o->repeat);
    b->samples_per_s = bench_median(b->runs, o->repeat);
    a->cpu_ms_per_step = bench_median(acpu, o->repeat);
    b->cpu_ms_per_step = bench_median(bcpu, o->repeat);
    return 0;
}

/* --ps: the same steps in-process and against one shard over loopback TCP, in this one
 * invocation, paired repeat by repeat (ps_pairs), so the ratio compares like with like on a
 * noisy machine: ps_ratio is the median of the pairs' ratios. */
static int run_ps(const BenchModelOptions *o, int json)
{
    BenchModelResult a, b;
    double ratios[BENCH_MAX_REPEAT];
    heap_tune_messages(); /* as the PS runs' ps_zmq_new does: the in-process runs alike */
    if (ps_pairs(o, &a, &b, ratios)) {
        fprintf(stderr, "psrec bench: %s\n", psrec_errmsg());
        return EXIT_FAIL;
    }
    const double ratio = bench_median(ratios, o->repeat);
    const double bytes_per_sample =
        (b.pulled_mb_per_step + b.pushed_mb_per_step) * 1e6 / (double)o->batch;
    if (json) {
        printf("{\"mode\": \"ps\", \"wire_dtype\": \"%s\", \"security\": \"%s\", "
               "\"io_threads\": %d, \"consistency\": \"%s\", \"threads\": %d, \"batch\": %d, "
               "\"title_len\": %d, "
               "\"his_len\": %d, \"word_dim\": %d, \"hidden\": %d, \"negatives\": %d, "
               "\"steps\": %d, \"repeat\": %d, \"samples_per_s\": %.2f, "
               "\"ps_samples_per_s\": %.2f, \"ps_ratio\": %.4f, \"samples_per_s_runs\": [",
               wire_dtype_name(o->wire_dtype), o->ps_insecure ? "none" : "curve",
               o->ps_io_threads > 0 ? o->ps_io_threads : 1, o->ps_asp ? "asp" : "bsp",
               openblas_get_num_threads(), o->batch,
               o->dims.title_len, o->dims.his_len,
               o->dims.E, o->dims.H, o->dims.K, o->steps, o->repeat, a.samples_per_s,
               b.samples_per_s, ratio);
        print_runs(a.runs, a.repeat, 2, ", ");
        printf("], \"ps_samples_per_s_runs\": [");
        print_runs(b.runs, b.repeat, 2, ", ");
        printf("], \"ps_ratio_runs\": [");
        print_runs(ratios, o->repeat, 4, ", ");
        printf("], \"cpu_ms_per_step\": %.1f, \"ps_cpu_ms_per_step\": %.1f",
               a.cpu_ms_per_step, b.cpu_ms_per_step);
        printf(", \"bytes_per_sample\": %.1f, \"wire_bytes_per_sample\": %.1f, "
               "\"dense_bytes\": %.0f, \"pulled_mb_per_step\": %.3f, "
               "\"pushed_mb_per_step\": %.3f}\n",
               bytes_per_sample, b.wire_mb_per_step * 1e6 / (double)o->batch, b.dense_bytes,
               b.pulled_mb_per_step, b.pushed_mb_per_step);
        return EXIT_OK;
    }
    printf("psrec bench --ps: training steps in-process vs one shard over loopback TCP (%s, "
           "security %s)\n", wire_dtype_name(o->wire_dtype), o->ps_insecure ? "none" : "curve");
    printf("  in-process samples/s  %.1f (median of %d)\n", a.samples_per_s, a.repeat);
    printf("  PS samples/s          %.1f (median of %d)\n", b.samples_per_s, b.repeat);
    printf("  ratio                 %.3f (median of %d pairs)\n", ratio, o->repeat);
    printf("  bytes/sample          %.0f pulled+pushed (%.0f on the wire)\n", bytes_per_sample,
           b.wire_mb_per_step * 1e6 / (double)o->batch);
    printf("  whole model           %.1f MB (a full pull of every table)\n", b.dense_bytes / 1e6);
    return EXIT_OK;
}

/* The reference GEMM of every mode: the news LSTM's input projection of one batch's
 * candidates, (B (1 + K) mean-title-length tokens, E) x (E, 4H). bench_model refuses shapes
 * whose workspace (a multiple of this) does not fit in an int. */
static void sgemm_shape(BenchModelOptions *o)
{
    const ModelDims *d = &o->dims;
    const int lo = d->title_len / 2 > 1 ? d->title_len / 2 : 1;
    const long long rows = (long long)o->batch * (1 + d->K) * ((lo + d->title_len) / 2);
    o->sgemm_m = rows < INT32_MAX ? (int)rows : INT32_MAX;
    o->sgemm_n = 4 * d->H;
    o->sgemm_k = d->E;
}

static int run_model(const BenchModelOptions *o, int json)
{
    const ModelDims *d = &o->dims;
    BenchModelResult r;
    if (bench_model(o, &r)) {
        fprintf(stderr, "psrec bench: %s\n", psrec_errmsg());
        return EXIT_FAIL;
    }
    BenchModelOptions shape = *o;
    sgemm_shape(&shape);
    const int M = shape.sgemm_m, N = shape.sgemm_n, K = shape.sgemm_k;
    double sgemm;
    if (bench_sgemm(M, N, K, SGEMM_CALLS, &sgemm)) {
        fprintf(stderr, "psrec bench: %s\n", psrec_errmsg());
        return EXIT_FAIL;
    }
    const int threads = openblas_get_num_threads();
    if (json) {
        printf("{\"mode\": \"model\", \"threads\": %d, \"batch\": %d, \"title_len\": %d, "
               "\"his_len\": %d, \"word_dim\": %d, \"hidden\": %d, \"negatives\": %d, "
               "\"vocab\": %u, \"categories\": %u, \"users\": %u, \"steps\": %d, "
               "\"warmup\": %d, \"repeat\": %d, \"samples_per_s\": %.2f, "
               "\"samples_per_s_runs\": [",
               threads, o->batch, d->title_len, d->his_len, d->E, d->H, d->K, o->vocab,
               o->categories, o->users, o->steps, o->warmup, o->repeat, r.samples_per_s);
        print_runs(r.runs, r.repeat, 2, ", ");
        printf("], \"ms_per_step\": %.3f, \"useful_gflop_per_step\": %.4f, "
               "\"useful_gflops\": %.3f, \"sgemm_gflops\": %.3f, \"sgemm_m\": %d, "
               "\"sgemm_n\": %d, \"sgemm_k\": %d, \"news_per_step\": %.1f, "
               "\"tokens_per_step\": %.1f, \"pulled_mb_per_step\": %.3f, "
               "\"pushed_mb_per_step\": %.3f, \"loss\": %.6f}\n",
               r.ms_per_step, r.useful_gflop_per_step, r.useful_gflops, sgemm, M, N, K,
               r.news_per_step, r.tokens_per_step, r.pulled_mb_per_step, r.pushed_mb_per_step,
               r.last_loss);
        return EXIT_OK;
    }
    printf("psrec bench: training steps, B=%d title_len=%d his_len=%d E=%d H=%d K=%d; "
           "%d OpenBLAS threads; %d steps x %d repeats after %d warm-up steps\n",
           o->batch, d->title_len, d->his_len, d->E, d->H, d->K, threads, o->steps, o->repeat,
           o->warmup);
    printf("  samples/s       %.1f (median; runs: ", r.samples_per_s);
    print_runs(r.runs, r.repeat, 1, " ");
    printf(")\n  ms/step         %.4g\n", r.ms_per_step);
    printf("  useful GFLOP/s  %.2f (%.4g GFLOP/step: %.0f news, %.0f real title tokens)\n",
           r.useful_gflops, r.useful_gflop_per_step, r.news_per_step, r.tokens_per_step);
    printf("  sgemm GFLOP/s   %.2f (%dx%dx%d, median of %d calls)\n", sgemm, M, N, K,
           SGEMM_CALLS);
    printf("  parameters      %.2f MB pulled, %.2f MB pushed per step\n", r.pulled_mb_per_step,
           r.pushed_mb_per_step);
    return EXIT_OK;
}

static int run_prep(const BenchPrepOptions *o, int json)
{
    BenchPrepResult r;
    if (bench_prep(o, &r)) {
        fprintf(stderr, "psrec bench: %s\n", psrec_errmsg());
        return EXIT_FAIL;
    }
    const DatasetMeta *m = &r.meta;
    if (json) {
        printf("{\"mode\": \"prep\", \"threads\": 1, \"repeat\": %d, \"prep_mb_per_s\": %.2f, "
               "\"tsv_bytes\": %llu, \"seconds\": %.4f, \"seconds_runs\": [",
               r.repeat, r.mb_per_s, (unsigned long long)m->tsv_bytes, r.seconds);
        print_runs(r.runs, r.repeat, 4, ", ");
        printf("], \"cpu_seconds\": %.4f, \"prep_mb_per_cpu_s\": %.2f, \"news\": %llu, "
               "\"users\": %llu, \"impressions\": %llu, \"samples\": %llu, \"vocab\": %llu, "
               "\"gen_seconds\": %.3f}\n",
               r.cpu_seconds, (double)m->tsv_bytes / 1e6 / r.cpu_seconds,
               (unsigned long long)m->news, (unsigned long long)m->users,
               (unsigned long long)m->impressions, (unsigned long long)m->samples,
               (unsigned long long)m->vocab, r.gen_seconds);
        return EXIT_OK;
    }
    printf("psrec bench --prep: train split of %s, %d repeats (one core)\n",
           o->data ? o->data : "generated data", r.repeat);
    printf("  MB/s            %.1f (median; %.1f per CPU second)\n", r.mb_per_s,
           (double)m->tsv_bytes / 1e6 / r.cpu_seconds);
    printf("  seconds         %.3f (runs: ", r.seconds);
    print_runs(r.runs, r.repeat, 3, " ");
    printf(")\n  input           %.1f MB of TSV: %llu news, %llu impressions -> %llu users, "
           "%llu samples, vocab %llu\n",
           (double)m->tsv_bytes / 1e6, (unsigned long long)m->news,
           (unsigned long long)m->impressions, (unsigned long long)m->users,
           (unsigned long long)m->samples, (unsigned long long)m->vocab);
    if (!o->data)
        printf("  generating it   %.2f s (not timed)\n", r.gen_seconds);
    return EXIT_OK;
}

/* --checkpoint: what one checkpoint of a fully populated shard costs. */
static int run_checkpoint(const BenchCheckpointOptions *o, int json)
{
    BenchCheckpointResult r;
    int rc = bench_checkpoint(o, &r);
    if (rc) {
        fprintf(stderr, "psrec bench: %s\n", psrec_errmsg());
        return rc == PSREC_E_USAGE ? EXIT_USAGE : EXIT_FAIL;
    }
    if (json) {
        printf("{\"mode\": \"checkpoint\", \"word_dim\": %u, \"hidden\": %u, \"vocab\": %u, "
               "\"categories\": %u, \"users\": %u, \"repeat\": %d, \"rows\": %llu, "
               "\"checkpoint_bytes\": %llu, \"pause_ms_fresh\": %.4f, \"pause_ms_reuse\": %.4f, "
               "\"write_s\": %.6f, \"verify_s\": %.6f, \"load_s\": %.6f, "
               "\"write_mb_per_s\": %.1f, \"pause_ms_fresh_runs\": [",
               o->E, o->H, o->vocab, o->categories, o->users, r.repeat,
               (unsigned long long)r.rows, (unsigned long long)r.checkpoint_bytes,
               r.pause_ms_fresh, r.pause_ms_reuse, r.write_s, r.verify_s, r.load_s,
               (double)r.checkpoint_bytes / 1e6 / r.write_s);
        print_runs(r.fresh_ms_runs, r.repeat, 4, ", ");
        printf("], \"pause_ms_reuse_runs\": [");
        print_runs(r.reuse_ms_runs, r.repeat, 4, ", ");
        printf("], \"write_s_runs\": [");
        print_runs(r.write_s_runs, r.repeat, 6, ", ");
        printf("], \"verify_s_runs\": [");
        print_runs(r.verify_s_runs, r.repeat, 6, ", ");
        printf("], \"load_s_runs\": [");
        print_runs(r.load_s_runs, r.repeat, 6, ", ");
        printf("]}\n");
        return EXIT_OK;
    }
    printf("psrec bench --checkpoint: one shard, E=%u H=%u, %u words, %u categories, %u users; "
           "%d repeats (medians)\n",
           o->E, o->H, o->vocab, o->categories, o->users, r.repeat);
    printf("  checkpoint      %.1f MB (%llu rows with Adam state)\n",
           (double)r.checkpoint_bytes / 1e6, (unsigned long long)r.rows);
    printf("  pause           %.2f ms first cut (new memory), %.2f ms later cuts (reused copy)\n",
           r.pause_ms_fresh, r.pause_ms_reuse);
    printf("  write           %.3f s (%.0f MB/s, fsync and commit included)\n", r.write_s,
           (double)r.checkpoint_bytes / 1e6 / r.write_s);
    printf("  verify          %.4g s\n  load            %.4g s\n", r.verify_s, r.load_s);
    return EXIT_OK;
}

/* --wire-dtype f32|bf16 (ps.wire_dtype's words). Returns 0, or 1 after a usage message. */
static int wire_dtype_arg(const char *arg, uint32_t *out)
{
    if (!strcmp(arg, "f32") || !strcmp(arg, "bf16")) {
        *out = strcmp(arg, "f32") ? WIRE_DTYPE_BF16 : WIRE_DTYPE_F32;
        return 0;
    }
    fprintf(stderr, "psrec bench: --wire-dtype takes f32 or bf16, not '%s'\n", arg);
    return 1;
}

/* --apply (launch/bench_wire.h, owned by the wire work): the shard's apply rate. */
static int run_apply(int repeat, int json)
{
    BenchApplyOptions o;
    BenchApplyResult r;
    bench_apply_defaults(&o);
    o.repeat = repeat;
    if (bench_apply(&o, &r)) {
        fprintf(stderr, "psrec bench: %s\n", psrec_errmsg());
        return EXIT_FAIL;
    }
    if (json) {
        printf("{\"mode\": \"apply\", \"word_dim\": %u, \"hidden\": %u, \"rows_per_push\": %u, "
               "\"repeat\": %d, \"apply_rows_per_s\": %.0f, \"apply_gb_per_s\": %.3f, "
               "\"apply_cpu_gb_per_s\": %.3f, \"apply_touched_gb_per_s\": %.3f, \"memcpy_gb_per_s\": %.3f, "
               "\"bf16_encode_gb_per_s\": %.3f, \"bf16_decode_gb_per_s\": %.3f, "
               "\"sparse_fraction\": %.3f}\n",
               o.E, o.H, o.rows, o.repeat, r.rows_per_s, r.apply_gb_per_s, r.apply_cpu_gb_per_s,
               r.touched_gb_per_s,
               r.memcpy_gb_per_s, r.bf16_encode_gb_per_s, r.bf16_decode_gb_per_s,
               r.sparse_fraction);
        return EXIT_OK;
    }
    printf("psrec bench --apply: one shard applying pushed rows (Adam), E=%u H=%u\n", o.E, o.H);
    printf("  apply         %.0f rows/s, %.3f GB/s of gradients (%.3f GB/s touched; "
           "%.3f GB/s per CPU second)\n",
           r.rows_per_s, r.apply_gb_per_s, r.touched_gb_per_s, r.apply_cpu_gb_per_s);
    printf("  memcpy        %.3f GB/s copied\n", r.memcpy_gb_per_s);
    printf("  bf16          encode %.3f GB/s, decode %.3f GB/s (f32 side)\n",
           r.bf16_encode_gb_per_s, r.bf16_decode_gb_per_s);
    return EXIT_OK;
}

/* Peer runs per --all and timed steps per run: at the reference shape a step takes the
 * peer about 2 s on a quiet 2-core machine, and minutes on a loaded one (its OpenMP threads
 * wait on each other), so --all keeps its share of the run bounded. */
#define PEER_REPEAT_MAX 3
#define PEER_STEPS 4

/* The 1-minute load average, or -1: --all reports it so a reader can judge the figures. */
static double load1(void)
{
    double l[1];
    return getloadavg(l, 1) == 1 ? l[0] : -1.0;
}

/* JSON string body of s (quotes, backslashes and control characters escaped). */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* "key": value with `decimals` digits, or "key": null and "key_skipped": why. */
static void json_num(const char *key, double v, int decimals, const char *skipped)
{
    if (skipped && *skipped) {
        printf(", \"%s\": null, \"%s_skipped\": ", key, key);
        json_str(skipped);
    } else {
        printf(", \"%s\": %.*f", key, decimals, v);
    }
}

/* The detail of the last error, copied (the next call may overwrite it). */
static void keep_err(char *dst, size_t cap)
{
    snprintf(dst, cap, "%s", psrec_errmsg());
}

/* The kernel bench at the model options' shape: every title slot of a batch, B (his_len + 1
 * + K) sequences (as the peer encodes them), sgemm_shape's GEMM after each repeat. */
static void kernel_options(const BenchModelOptions *mo, BenchKernelOptions *ko)
{
    BenchModelOptions s = *mo;
    sgemm_shape(&s);
    bench_kernel_defaults(ko);
    ko->seqs = mo->batch * (mo->dims.his_len + 1 + mo->dims.K);
    ko->T = mo->dims.title_len;
    ko->E = mo->dims.E;
    ko->H = mo->dims.H;
    ko->repeat = mo->repeat;
    ko->seed = mo->seed;
    ko->sgemm_m = s.sgemm_m;
    ko->sgemm_n = s.sgemm_n;
    ko->sgemm_k = s.sgemm_k;
}

/* --kernel: the LSTM layer alone against sgemm. */
static int run_kernel(const BenchModelOptions *mo, int json)
{
    BenchKernelOptions ko;
    kernel_options(mo, &ko);
    BenchKernelResult k;
    if (bench_kernel(&ko, &k)) {
        fprintf(stderr, "psrec bench: %s\n", psrec_errmsg());
        return EXIT_FAIL;
    }
    if (json) {
        printf("{\"mode\": \"kernel\", \"threads\": %d, \"sequences\": %d, \"title_len\": %d, "
               "\"word_dim\": %d, \"hidden\": %d, \"repeat\": %d, \"rows\": %llu, "
               "\"gflop\": %.4f, \"kernel_ms\": %.3f, \"kernel_gflops\": %.3f, "
               "\"sgemm_gflops\": %.3f, \"kernel_ratio\": %.4f, \"kernel_gflops_runs\": [",
               openblas_get_num_threads(), ko.seqs, ko.T, ko.E, ko.H, k.repeat,
               (unsigned long long)k.rows, k.gflop, k.ms, k.kernel_gflops, k.sgemm_gflops,
               k.kernel_ratio);
        print_runs(k.kernel_runs, k.repeat, 3, ", ");
        printf("], \"sgemm_gflops_runs\": [");
        print_runs(k.sgemm_runs, k.repeat, 3, ", ");
        printf("], \"own_gemm_gflops\": %.3f, \"kernel_ratio_own\": %.4f}\n",
               k.own_gemm_gflops, k.kernel_ratio_own);
        return EXIT_OK;
    }
    printf("psrec bench --kernel: LSTM forward+backward, %d sequences, T %d, E %d, H %d "
           "(%llu rows, %.3f GFLOP); %d repeats\n",
           ko.seqs, ko.T, ko.E, ko.H, (unsigned long long)k.rows, k.gflop, k.repeat);
    printf("  kernel          %.2f GFLOP/s (%.1f ms)\n", k.kernel_gflops, k.ms);
    printf("  sgemm           %.2f GFLOP/s (%dx%dx%d, after each repeat)\n", k.sgemm_gflops,
           ko.sgemm_m, ko.sgemm_n, ko.sgemm_k);
    printf("  ratio           %.3f (median of the repeats' ratios)\n", k.kernel_ratio);
    printf("  own GEMM        %.2f GFLOP/s at that shape; kernel keeps %.3f of it\n",
           k.own_gemm_gflops, k.kernel_ratio_own);
    return EXIT_OK;
}

/* --all: every figure of issue 11 in one run and one JSON object (or a summary). The figures
 * that need optional parts (the peer: torch; the data paths: launch/bench_io.c) say why they
 * are missing instead of failing the run. */
static int run_all(const BenchModelOptions *mo_in, const BenchPrepOptions *po, int repeat,
                   int threads, const char *peer_script, int json)
{
    BenchModelOptions mo = *mo_in, pso = *mo_in;
    const ModelDims *d = &mo.dims;
    const double load_start = load1();
    sgemm_shape(&mo);
    BenchModelResult m, ps;
    if (bench_model(&mo, &m)) {
        fprintf(stderr, "psrec bench: %s\n", psrec_errmsg());
        return EXIT_FAIL;
    }
    BenchKernelOptions ko;
    kernel_options(&mo, &ko);
    BenchKernelResult k;
    if (bench_kernel(&ko, &k)) {
        fprintf(stderr, "psrec bench: %s\n", psrec_errmsg());
        return EXIT_FAIL;
    }
    /* The PS ratio as --ps makes it: pairs of in-process and PS repeats, so a load that
     * changes during this long run lands on both halves of each ratio. */
    BenchModelResult ps_inproc;
    double ps_ratios[BENCH_MAX_REPEAT];
    heap_tune_messages(); /* as --ps: both halves with the PS processes' malloc settings */
    if (ps_pairs(&pso, &ps_inproc, &ps, ps_ratios)) {
        fprintf(stderr, "psrec bench: %s\n", psrec_errmsg());
        return EXIT_FAIL;
    }
    const double ps_ratio = bench_median(ps_ratios, pso.repeat);
    const double bytes_per_sample =
        (ps.pulled_mb_per_step + ps.pushed_mb_per_step) * 1e6 / (double)mo.batch;
    BenchPeerOptions peo = {.script = peer_script, .dims = *d, .batch = mo.batch,
                            .threads = threads, .steps = PEER_STEPS, .warmup = 1,
                            .repeat = repeat < PEER_REPEAT_MAX ? repeat : PEER_REPEAT_MAX,
                            .vocab = mo.vocab, .categories = mo.categories, .users = mo.users};
    BenchPeerResult peer;
    if (bench_peer(&peo, &peer)) {
        keep_err(peer.skipped, sizeof peer.skipped);
        peer.repeat = 0;
    }
    /* The data paths (launch/bench_io.c) on one generated and prepared data set. */
    char io_err[512] = "", eval_err[512] = "", rec_err[512] = "", mem_err[512] = "",
         prep_err[512] = "";
    BenchEvalResult ev = {0};
    BenchPrepIoResult pr = {0};
    BenchRecommendResult rec = {0};
    BenchMemory mem = {0};
    BenchIoOptions io;
    bench_io_defaults(&io);
    io.dims = *d;
    io.seed = mo.seed;
    io.repeat = repeat;
    io.gen.news = po->gen.news; /* --prep-* size the data set of every data-path figure */
    io.gen.users = po->gen.users;
    io.gen.train_impressions = po->gen.train_impressions;
    BenchIo *bio = NULL;
    if (bench_io_new(&bio, &io)) {
        keep_err(io_err, sizeof io_err);
        snprintf(eval_err, sizeof eval_err, "%s", io_err);
        snprintf(rec_err, sizeof rec_err, "%s", io_err);
        snprintf(mem_err, sizeof mem_err, "%s", io_err);
    } else {
        if (bench_eval(bio, &ev))
            keep_err(eval_err, sizeof eval_err);
        if (bench_prep_io(bio, &pr))
            keep_err(prep_err, sizeof prep_err);
        if (bench_recommend(bio, &rec))
            keep_err(rec_err, sizeof rec_err);
        if (bench_memory(bio, &mem))
            keep_err(mem_err, sizeof mem_err);
        bench_io_free(&bio);
    }
    /* Without the data-path set, prep is timed as --prep does. */
    if (io_err[0] || prep_err[0]) {
        BenchPrepResult bp;
        if (bench_prep(po, &bp)) {
            keep_err(prep_err, sizeof prep_err);
        } else {
            prep_err[0] = '\0';
            pr.mb_per_s = bp.mb_per_s;
            pr.mb_per_cpu_s = (double)bp.meta.tsv_bytes / 1e6 / bp.cpu_seconds;
            pr.seconds = bp.seconds;
            pr.tsv_bytes = bp.meta.tsv_bytes;
        }
    }
    const double load_end = load1();
    const double peer_ratio = peer.repeat ? m.samples_per_s / peer.samples_per_s : 0;
    if (!json) {
        printf("psrec bench --all: B=%d title_len=%d his_len=%d E=%d H=%d K=%d, %d threads, "
               "%d repeats (medians); load %.1f -> %.1f\n",
               mo.batch, d->title_len, d->his_len, d->E, d->H, d->K, threads, repeat,
               load_start, load_end);
        printf("  step            %.1f samples/s, useful %.2f GFLOP/s = %.3f of sgemm %.2f\n",
               m.samples_per_s, m.useful_gflops, m.useful_ratio, m.sgemm_gflops);
        printf("  LSTM kernel     %.2f GFLOP/s = %.3f of sgemm %.2f, %.3f of its own GEMM %.2f "
               "(%.1f ms fwd+bwd, %llu rows)\n",
               k.kernel_gflops, k.kernel_ratio, k.sgemm_gflops, k.kernel_ratio_own,
               k.own_gemm_gflops, k.ms, (unsigned long long)k.rows);
        printf("  one shard       %.1f samples/s = %.3f of in-process; %.0f bytes/sample\n",
               ps.samples_per_s, ps_ratio, bytes_per_sample);
        if (peer.repeat)
            printf("  peer (torch %s) %.1f samples/s; psrec/peer %.2f\n", peer.version,
                   peer.samples_per_s, peer_ratio);
        else
            printf("  peer            skipped: %s\n", peer.skipped);
        printf("  eval            %s%.0f impressions/s\n", eval_err[0] ? "(skipped) " : "",
               ev.impressions_per_s);
        printf("  prep            %s%.1f MB/s\n", prep_err[0] ? "(skipped) " : "", pr.mb_per_s);
        printf("  recommend       %s%.1f ms first, %.1f ms cached\n",
               rec_err[0] ? "(skipped) " : "", rec.first_ms, rec.cached_ms);
        printf("  worker memory   %s%.1f MB peak RSS: %.1f heap, %.1f mapped dataset\n",
               mem_err[0] ? "(skipped) " : "", mem.peak_rss_mb, mem.heap_mb,
               mem.mapped_dataset_mb);
        return EXIT_OK;
    }
    printf("{\"mode\": \"all\", \"threads\": %d, \"repeat\": %d, \"batch\": %d, "
           "\"title_len\": %d, \"his_len\": %d, \"word_dim\": %d, \"hidden\": %d, "
           "\"negatives\": %d, \"vocab\": %u, \"users\": %u, \"load_start\": %.2f, "
           "\"load_end\": %.2f",
           threads, repeat, mo.batch, d->title_len, d->his_len, d->E, d->H, d->K, mo.vocab,
           mo.users, load_start, load_end);
    printf(", \"samples_per_s\": %.2f, \"samples_per_s_runs\": [", m.samples_per_s);
    print_runs(m.runs, m.repeat, 2, ", ");
    printf("], \"ms_per_step\": %.3f, \"useful_gflop_per_step\": %.4f, \"useful_gflops\": %.3f, "
           "\"sgemm_gflops\": %.3f, \"useful_ratio\": %.4f, \"sgemm_m\": %d, \"sgemm_n\": %d, "
           "\"sgemm_k\": %d",
           m.ms_per_step, m.useful_gflop_per_step, m.useful_gflops, m.sgemm_gflops,
           m.useful_ratio, mo.sgemm_m, mo.sgemm_n, mo.sgemm_k);
    printf(", \"kernel_gflops\": %.3f, \"kernel_ratio\": %.4f, \"kernel_sgemm_gflops\": %.3f, "
           "\"kernel_ms\": %.3f, \"kernel_sequences\": %d, \"kernel_rows\": %llu, "
           "\"kernel_gflop\": %.4f, \"kernel_gflops_runs\": [",
           k.kernel_gflops, k.kernel_ratio, k.sgemm_gflops, k.ms, ko.seqs,
           (unsigned long long)k.rows, k.gflop);
    print_runs(k.kernel_runs, k.repeat, 3, ", ");
    printf("], \"kernel_sgemm_gflops_runs\": [");
    print_runs(k.sgemm_runs, k.repeat, 3, ", ");
    printf("], \"own_gemm_gflops\": %.3f, \"kernel_ratio_own\": %.4f", k.own_gemm_gflops,
           k.kernel_ratio_own);
    printf(", \"ps_samples_per_s\": %.2f, \"ps_ratio\": %.4f, \"bytes_per_sample\": %.1f, "
           "\"wire_bytes_per_sample\": %.1f",
           ps.samples_per_s, ps_ratio, bytes_per_sample,
           ps.wire_mb_per_step * 1e6 / (double)mo.batch);
    printf(", \"ps_inproc_samples_per_s\": %.2f, \"ps_ratio_runs\": [", ps_inproc.samples_per_s);
    print_runs(ps_ratios, pso.repeat, 4, ", ");
    printf("]");
    json_num("peer_samples_per_s", peer.samples_per_s, 2, peer.repeat ? "" : peer.skipped);
    json_num("peer_ratio", peer_ratio, 3, peer.repeat ? "" : peer.skipped);
    if (peer.repeat) {
        printf(", \"peer_torch\": ");
        json_str(peer.version);
    }
    json_num("eval_impressions_per_s", ev.impressions_per_s, 1, eval_err);
    json_num("prep_mb_per_s", pr.mb_per_s, 2, prep_err);
    json_num("recommend_ms", rec.first_ms, 2, rec_err);
    json_num("recommend_cached_ms", rec.cached_ms, 2, rec_err);
    json_num("peak_rss_mb", mem.peak_rss_mb, 1, mem_err);
    json_num("worker_rss_mb", mem.rss_mb, 1, mem_err);
    json_num("worker_heap_mb", mem.heap_mb, 1, mem_err);
    json_num("worker_mapped_dataset_mb", mem.mapped_dataset_mb, 1, mem_err);
    json_num("worker_eval_news_mb", mem.eval_news_mb, 1, mem_err);
    printf("}\n");
    return EXIT_OK;
}

enum {
    O_JSON = 256, O_BATCH, O_TITLE, O_HIS, O_WORD, O_HIDDEN, O_NEG, O_VOCAB, O_CATS, O_USERS,
    O_STEPS, O_WARMUP, O_SEED, O_THREADS, O_REPEAT, O_PS, O_ASP, O_PREP, O_DATA, O_PNEWS, O_PUSERS, O_PIMP,
    O_CKPT, O_DIR, O_ALL, O_PEER, O_KERNEL, O_WIRE_DTYPE, O_APPLY, O_SECURITY, O_IOTHREADS
};

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, O_JSON},
        {"batch", required_argument, NULL, O_BATCH},
        {"title-len", required_argument, NULL, O_TITLE},
        {"his-len", required_argument, NULL, O_HIS},
        {"word-dim", required_argument, NULL, O_WORD},
        {"hidden", required_argument, NULL, O_HIDDEN},
        {"negatives", required_argument, NULL, O_NEG},
        {"vocab", required_argument, NULL, O_VOCAB},
        {"categories", required_argument, NULL, O_CATS},
        {"users", required_argument, NULL, O_USERS},
        {"steps", required_argument, NULL, O_STEPS},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"seed", required_argument, NULL, O_SEED},
        {"threads", required_argument, NULL, O_THREADS},
        {"repeat", required_argument, NULL, O_REPEAT},
        {"prep", no_argument, NULL, O_PREP},
        {"ps", no_argument, NULL, O_PS},
        {"asp", no_argument, NULL, O_ASP},
        {"data", required_argument, NULL, O_DATA},
        {"prep-news", required_argument, NULL, O_PNEWS},
        {"prep-users", required_argument, NULL, O_PUSERS},
        {"prep-impressions", required_argument, NULL, O_PIMP},
        {"checkpoint", no_argument, NULL, O_CKPT},
        {"dir", required_argument, NULL, O_DIR},
        {"wire-dtype", required_argument, NULL, O_WIRE_DTYPE},
        {"apply", no_argument, NULL, O_APPLY},
        {"all", no_argument, NULL, O_ALL},
        {"kernel", no_argument, NULL, O_KERNEL},
        {"peer", required_argument, NULL, O_PEER},
        {"security", required_argument, NULL, O_SECURITY},
        {"io-threads", required_argument, NULL, O_IOTHREADS},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0}};
    BenchModelOptions mo;
    BenchPrepOptions po;
    BenchCheckpointOptions co;
    bench_model_defaults(&mo);
    bench_prep_defaults(&po);
    bench_checkpoint_defaults(&co);
    int apply = 0; /* --apply: the shard's apply rate (launch/bench_wire.h) */
    int json = 0, prep = 0, ps = 0, ckpt = 0, all = 0, kernel = 0, threads = default_threads(), repeat = mo.repeat;
    const char *model_opt = NULL, *prep_opt = NULL; /* an option of each mode seen */
    const char *peer = NULL;                         /* --peer SCRIPT (--all) */
    const char *ps_opt = NULL;   /* --security or --io-threads seen (they need --ps) */
    const char *step_opt = NULL; /* a model option that is not about the shape */
    int c, li, bad = 0;
    opterr = 1;
    optind = 1;
    while (!bad && (li = -1, c = getopt_long(argc, argv, "h", opts, &li)) != -1) {
        const char *name = li >= 0 ? opts[li].name : NULL;
        if (c >= O_BATCH && c <= O_SEED)
            model_opt = name;
        if (c >= O_DATA && c <= O_PIMP)
            prep_opt = name;
        if (c == O_BATCH || c == O_TITLE || c == O_HIS || c == O_NEG || c == O_STEPS ||
            c == O_WARMUP || c == O_THREADS)
            step_opt = name;
        switch (c) {
        case O_JSON: json = 1; break;
        case O_BATCH: bad = cli_int("bench", name, optarg, 1, 1 << 16, &mo.batch); break;
        case O_TITLE: bad = cli_int("bench", name, optarg, 1, 4096, &mo.dims.title_len); break;
        case O_HIS: bad = cli_int("bench", name, optarg, 1, 65536, &mo.dims.his_len); break;
        case O_WORD: bad = cli_int("bench", name, optarg, 1, 65536, &mo.dims.E); break;
        case O_HIDDEN: bad = cli_int("bench", name, optarg, 1, 16384, &mo.dims.H); break;
        case O_NEG: bad = cli_int("bench", name, optarg, 0, 4096, &mo.dims.K); break;
        case O_VOCAB: bad = cli_u32("bench", name, optarg, 2, UINT32_MAX, &mo.vocab); break;
        case O_CATS: bad = cli_u32("bench", name, optarg, 1, UINT32_MAX, &mo.categories); break;
        case O_USERS: bad = cli_u32("bench", name, optarg, 2, UINT32_MAX, &mo.users); break;
        case O_STEPS: bad = cli_int("bench", name, optarg, 1, 1000000, &mo.steps); break;
        case O_WARMUP: bad = cli_int("bench", name, optarg, 0, 1000000, &mo.warmup); break;
        case O_SEED: bad = cli_u64("bench", name, optarg, 0, UINT64_MAX, &mo.seed); break;
        case O_THREADS: bad = cli_int("bench", name, optarg, 1, 1024, &threads); break;
        case O_REPEAT: bad = cli_int("bench", name, optarg, 1, BENCH_MAX_REPEAT, &repeat); break;
        case O_PREP: prep = 1; break;
        case O_CKPT: ckpt = 1; break;
        case O_DIR: co.dir = optarg; break;
        case O_ALL: all = 1; break;
        case O_KERNEL: kernel = 1; break;
        case O_PEER: peer = optarg; break;
        case O_PS: ps = 1; break;
        case O_ASP: mo.ps_asp = 1; break;
        case O_WIRE_DTYPE: bad = wire_dtype_arg(optarg, &mo.wire_dtype); break;
        case O_APPLY: apply = 1; break;
        case O_SECURITY:
            ps_opt = name;
            if (strcmp(optarg, "curve") && strcmp(optarg, "none")) {
                fprintf(stderr, "psrec bench: --security %s: expected curve or none\n", optarg);
                bad = 1;
            }
            mo.ps_insecure = strcmp(optarg, "none") == 0;
            break;
        case O_IOTHREADS:
            bad = cli_int("bench", name, optarg, 1, 64, &mo.ps_io_threads);
            ps_opt = name;
            break;
        case O_DATA: po.data = optarg; break;
        case O_PNEWS:
            bad = cli_u32("bench", name, optarg, GEN_NEWS_MIN, GEN_NEWS_MAX, &po.gen.news);
            break;
        case O_PUSERS:
            bad = cli_u32("bench", name, optarg, GEN_USERS_MIN, GEN_USERS_MAX, &po.gen.users);
            break;
        case O_PIMP:
            bad = cli_u32("bench", name, optarg, GEN_IMPRESSIONS_MIN, GEN_IMPRESSIONS_MAX,
                            &po.gen.train_impressions);
            break;
        case 'h': bench_usage(stdout); return EXIT_OK;
        default: bad = 1; break;
        }
    }
    if (bad) {
        bench_usage(stderr);
        return EXIT_USAGE;
    }
    if (optind != argc) {
        fprintf(stderr, "psrec bench: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (kernel && (all || prep || ps || ckpt || mo.ps_asp || prep_opt || co.dir)) {
        fprintf(stderr, "psrec bench: --kernel is a mode of its own; it does not take --%s\n",
                all ? "all" : prep ? "prep" : ps ? "ps" : ckpt ? "checkpoint"
                : mo.ps_asp ? "asp" : prep_opt ? prep_opt : "dir");
        return EXIT_USAGE;
    }
    if (kernel) {
        log_set_identity("bench", -1);
        mo.repeat = repeat;
        run_set_threads(threads);
        return run_kernel(&mo, json);
    }
    if (all && (prep || ps || ckpt || mo.ps_asp || po.data || co.dir)) {
        fprintf(stderr, "psrec bench: --all runs every part itself; it does not take --%s\n",
                prep ? "prep" : ps ? "ps" : ckpt ? "checkpoint" : mo.ps_asp ? "asp"
                : po.data ? "data" : "dir");
        return EXIT_USAGE;
    }
    if (peer && !all) {
        fprintf(stderr, "psrec bench: --peer needs --all\n");
        return EXIT_USAGE;
    }
    if (apply) {
        if (prep || ps || ckpt || all || kernel || model_opt || prep_opt || step_opt || ps_opt) {
            fprintf(stderr, "psrec bench: --apply takes only --json and --repeat\n");
            return EXIT_USAGE;
        }
        log_set_identity("bench", -1);
        return run_apply(repeat, json);
    }
    if (all) {
        log_set_identity("bench", -1);
        mo.repeat = repeat;
        po.repeat = repeat;
        run_set_threads(threads);
        return run_all(&mo, &po, repeat, threads, peer, json);
    }
    if (ckpt && (prep || ps || mo.ps_asp || prep_opt || step_opt || ps_opt)) {
        fprintf(stderr, "psrec bench: --checkpoint does not take --%s\n",
                prep ? "prep" : ps ? "ps" : mo.ps_asp ? "asp" : prep_opt ? prep_opt
                : step_opt ? step_opt : ps_opt);
        return EXIT_USAGE;
    }
    if (co.dir && !ckpt) {
        fprintf(stderr, "psrec bench: --dir needs --checkpoint\n");
        return EXIT_USAGE;
    }
    if (ckpt) {
        log_set_identity("bench", -1);
        co.E = (uint32_t)mo.dims.E;
        co.H = (uint32_t)mo.dims.H;
        co.vocab = mo.vocab;
        co.categories = mo.categories;
        co.users = mo.users;
        co.seed = mo.seed;
        co.repeat = repeat;
        return run_checkpoint(&co, json);
    }
    if (prep && model_opt) {
        fprintf(stderr, "psrec bench: --%s is a model-mode option; --prep does not take it\n",
                model_opt);
        return EXIT_USAGE;
    }
    if (!prep && prep_opt) {
        fprintf(stderr, "psrec bench: --%s needs --prep\n", prep_opt);
        return EXIT_USAGE;
    }
    log_set_identity("bench", -1);
    mo.repeat = repeat;
    po.repeat = repeat;
    if (mo.ps_asp && !ps) {
        fprintf(stderr, "psrec bench: --asp needs --ps\n");
        return EXIT_USAGE;
    }
    if (mo.wire_dtype != WIRE_DTYPE_F32 && !ps) {
        fprintf(stderr, "psrec bench: --wire-dtype needs --ps\n");
        return EXIT_USAGE;
    }
    if (ps_opt && !ps) {
        fprintf(stderr, "psrec bench: --%s needs --ps\n", ps_opt);
        return EXIT_USAGE;
    }
    if (prep && ps) {
        fprintf(stderr, "psrec bench: --ps and --prep are different modes\n");
        return EXIT_USAGE;
    }
    if (prep)
        return run_prep(&po, json);
    run_set_threads(threads);
    return ps ? run_ps(&mo, json) : run_model(&mo, json);
}
