/* Tests of `psrec bench` (launch/bench.c, launch/cmd_bench.c) at tiny sizes: the model mode
 * runs real training steps and reports positive figures of the shape asked for; the FLOP
 * formula is the documented one; prep mode counts the generated impressions, reuses --data
 * untouched and leaves no temporary files; checkpoint mode writes a real, valid checkpoint of
 * every row and reports its size and positive timings; the kernel mode's FLOP count follows
 * its formula; the peer runner passes the shape and parses the figure, and skips (with a
 * reason) without torch, using a stand-in interpreter so no test needs torch; --all prints
 * every figure of issue 11 in one object; bad options are usage errors. No timing
 * thresholds: speed is what the benchmark reports, not what a test asserts. */
#include "common/error.h"
#include "launch/bench.h"
#include "launch/gen.h"
#include "testutil/testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TINY_MODEL "--batch 4 --title-len 6 --his-len 5 --word-dim 8 --hidden 8 --steps 3 " \
                   "--warmup 1 --repeat 1"

static double json_get(const char *json, const char *key)
{
    double v = NAN;
    if (!tu_json_number(json, key, &v))
        CU_FAIL(key);
    return v;
}

/* Entries of a directory other than . and ..; -1 when it cannot be opened. */
static int dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_model_json(void)
{
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_run(&out, "%s bench --json " TINY_MODEL " --threads 1", TU_PSREC), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT(json_get(out, "samples_per_s") > 0);
    CU_ASSERT(json_get(out, "sgemm_gflops") > 0);
    CU_ASSERT(json_get(out, "useful_gflops") > 0);
    CU_ASSERT(json_get(out, "ms_per_step") > 0);
    CU_ASSERT_EQUAL(json_get(out, "threads"), 1);
    CU_ASSERT_EQUAL(json_get(out, "batch"), 4);
    CU_ASSERT_EQUAL(json_get(out, "title_len"), 6);
    CU_ASSERT_EQUAL(json_get(out, "his_len"), 5);
    CU_ASSERT_EQUAL(json_get(out, "word_dim"), 8);
    CU_ASSERT_EQUAL(json_get(out, "hidden"), 8);
    CU_ASSERT_EQUAL(json_get(out, "negatives"), 4);
    CU_ASSERT_EQUAL(json_get(out, "steps"), 3);
    CU_ASSERT_EQUAL(json_get(out, "repeat"), 1);
    /* One repeat: the median is that run. */
    const char *runs = strstr(out, "\"samples_per_s_runs\": [");
    CU_ASSERT_PTR_NOT_NULL_FATAL(runs);
    CU_ASSERT_DOUBLE_EQUAL(strtod(runs + strlen("\"samples_per_s_runs\": ["), NULL),
                           json_get(out, "samples_per_s"), 0.01);
    /* The sgemm shape is the candidates' tokens: B (1 + K) mean title length, 4H, E. */
    CU_ASSERT_EQUAL(json_get(out, "sgemm_m"), 4 * 5 * 4);
    CU_ASSERT_EQUAL(json_get(out, "sgemm_n"), 32);
    CU_ASSERT_EQUAL(json_get(out, "sgemm_k"), 8);
    free(out);

    CU_ASSERT_EQUAL(tu_run(&out, "%s bench --batch 2 --title-len 4 --his-len 3 --word-dim 4 "
                                 "--hidden 4 --steps 2 --warmup 0 --repeat 3",
                           TU_PSREC),
                    0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "samples/s"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "sgemm GFLOP/s"));
    CU_ASSERT_PTR_NULL(strstr(out, "{"));
    free(out);
}

static void test_flop_formula(void)
{
    ModelDims d = {.E = 8, .H = 8, .title_len = 6, .his_len = 5, .K = 4};
    /* forward: 2*10*32*(8+8) + 2*3*32*(8+8) = 10240 + 3072; total 3x. */
    CU_ASSERT_DOUBLE_EQUAL(bench_lstm_gflop(&d, 10, 3), 3.0 * 13312 * 1e-9, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(bench_lstm_gflop(&d, 0, 0), 0.0, 1e-15);
    d.E = 16;
    /* The news LSTM's input width counts; the user LSTM's (H) does not change. */
    CU_ASSERT_DOUBLE_EQUAL(bench_lstm_gflop(&d, 1, 0), 3.0 * 2 * 32 * 24 * 1e-9, 1e-15);
}

static void test_model_library(void)
{
    BenchModelOptions o;
    bench_model_defaults(&o);
    CU_ASSERT_EQUAL(o.batch, 64);
    CU_ASSERT_EQUAL(o.dims.title_len, 30);
    CU_ASSERT_EQUAL(o.dims.his_len, 50);
    o.dims = (ModelDims){.E = 8, .H = 8, .title_len = 6, .his_len = 5, .K = 2};
    o.batch = 3;
    o.steps = 2;
    o.warmup = 1;
    o.repeat = 3;
    o.vocab = 100;
    o.users = 10;
    BenchModelResult r;
    CU_ASSERT_EQUAL_FATAL(bench_model(&o, &r), 0);
    CU_ASSERT_EQUAL(r.repeat, 3);
    for (int i = 0; i < 3; i++)
        CU_ASSERT(r.runs[i] > 0);
    CU_ASSERT(r.samples_per_s > 0);
    /* Every slot is its own news: B (1 + K) candidates plus 1..his_len clicks per sample,
     * each title 3..6 tokens. */
    CU_ASSERT(r.news_per_step >= 3 * (3 + 1) && r.news_per_step <= 3 * (3 + 5));
    CU_ASSERT(r.tokens_per_step >= 3 * r.news_per_step && r.tokens_per_step <= 6 * r.news_per_step);
    CU_ASSERT(r.useful_gflop_per_step > 0);
    CU_ASSERT(r.pulled_mb_per_step > 0 && r.pushed_mb_per_step > 0);
    /* Softmax over 3 candidates of a barely trained model: near ln 3. */
    CU_ASSERT(r.last_loss > 0.5 && r.last_loss < 2.0);

    o.repeat = 0;
    CU_ASSERT_EQUAL(bench_model(&o, &r), PSREC_E_USAGE);
    o.repeat = 1;
    o.vocab = 1;
    CU_ASSERT_EQUAL(bench_model(&o, &r), PSREC_E_USAGE);
}

static void test_kernel_formula(void)
{
    /* E 8, H 8: forward 2*10*32*8 + 2*(10-4)*8*32 = 5120 + 3072; total 3x. */
    CU_ASSERT_DOUBLE_EQUAL(bench_kernel_gflop(8, 8, 10, 4), 3.0 * 8192 * 1e-9, 1e-15);
    /* Every row at t = 0 (one step each): no recurrence GEMM. */
    CU_ASSERT_DOUBLE_EQUAL(bench_kernel_gflop(16, 8, 5, 5), 3.0 * 2 * 5 * 16 * 32 * 1e-9, 1e-15);
}

static void test_kernel_library(void)
{
    BenchKernelOptions o;
    bench_kernel_defaults(&o);
    CU_ASSERT_EQUAL(o.seqs, 3520);
    CU_ASSERT_EQUAL(o.T, 30);
    o = (BenchKernelOptions){.seqs = 10, .T = 6, .E = 8, .H = 8, .calls = 1, .repeat = 2,
                             .sgemm_m = 20, .sgemm_n = 32, .sgemm_k = 8, .seed = 3};
    BenchKernelResult r;
    CU_ASSERT_EQUAL_FATAL(bench_kernel(&o, &r), 0);
    CU_ASSERT_EQUAL(r.repeat, 2);
    /* Lengths 3..6: every sequence is active at t = 0. */
    CU_ASSERT(r.rows >= 30 && r.rows <= 60);
    CU_ASSERT_DOUBLE_EQUAL(r.gflop, bench_kernel_gflop(8, 8, r.rows, 10), 1e-15);
    for (int i = 0; i < 2; i++)
        CU_ASSERT(r.kernel_runs[i] > 0 && r.sgemm_runs[i] > 0 && r.own_runs[i] > 0);
    CU_ASSERT(r.kernel_gflops > 0 && r.sgemm_gflops > 0 && r.ms > 0);
    CU_ASSERT(r.kernel_ratio > 0 && r.kernel_ratio_own > 0);
    o.repeat = 0;
    CU_ASSERT_EQUAL(bench_kernel(&o, &r), PSREC_E_USAGE);
}

/* A stand-in interpreter: `-c ...` (the torch probe) exits with `probe`, a script run prints
 * what the peer prints. */
static const char *fake_python(const char *dir, int probe, const char *figure)
{
    static char path[512];
    char text[512];
    snprintf(path, sizeof path, "%s/python-%d", dir, probe);
    snprintf(text, sizeof text,
             "#!/bin/sh\nif [ \"$1\" = -c ]; then exit %d; fi\n"
             "echo \"$@\" > %s/args\nprintf 'torch 9.9.9 threads=2\\nsamples_per_s %s\\n'\n",
             probe, dir, figure);
    CU_ASSERT_EQUAL(tu_write_file(path, text), 0);
    chmod(path, 0755);
    return path;
}

static void test_peer(void)
{
    const char *dir = tu_mkdtemp("bench-peer");
    char script[512];
    snprintf(script, sizeof script, "%s/peer.py", dir);
    CU_ASSERT_EQUAL(tu_write_file(script, "# stand-in\n"), 0);
    BenchPeerOptions o = {.python = fake_python(dir, 0, "12.5"), .script = script,
                          .dims = {.E = 8, .H = 16, .title_len = 6, .his_len = 5, .K = 2},
                          .batch = 3, .threads = 2, .steps = 4, .warmup = 1, .repeat = 2,
                          .vocab = 100, .categories = 3, .users = 10};
    BenchPeerResult r;
    CU_ASSERT_EQUAL_FATAL(bench_peer(&o, &r), 0);
    CU_ASSERT_EQUAL(r.repeat, 2);
    CU_ASSERT_DOUBLE_EQUAL(r.samples_per_s, 12.5, 1e-9);
    CU_ASSERT_STRING_EQUAL(r.skipped, "");
    CU_ASSERT_STRING_EQUAL(r.version, "9.9.9");
    /* The peer ran at the options' shape and threads. */
    char args[600];
    snprintf(args, sizeof args, "%s/args", dir);
    char *a = tu_read_file(args, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL(strstr(a, "bench --batch 3 --title-len 6 --his-len 5 --word-dim 8 "
                                     "--hidden 16 --neg 2 --vocab 100 --cats 3 --users 10 "
                                     "--steps 4 --warmup 1 --threads 2"));
    free(a);
    /* No torch: skipped with the reason, not an error. */
    o.python = fake_python(dir, 1, "12.5");
    CU_ASSERT_EQUAL(bench_peer(&o, &r), 0);
    CU_ASSERT_EQUAL(r.repeat, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.skipped, "import torch"));
    /* No script: skipped. */
    o.python = fake_python(dir, 0, "12.5");
    o.script = "/nonexistent/peer.py";
    CU_ASSERT_EQUAL(bench_peer(&o, &r), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.skipped, "not found"));
    /* A peer that prints no figure is an error. */
    o.script = script;
    o.python = fake_python(dir, 0, "oops");
    CU_ASSERT_NOT_EQUAL(bench_peer(&o, &r), 0);
    tu_rmtree(dir);
}

static void test_kernel_json(void)
{
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_run(&out, "%s bench --kernel --json --batch 2 --title-len 6 --his-len 3 "
                                 "--word-dim 8 --hidden 8 --negatives 1 --repeat 1 --threads 2",
                           TU_PSREC),
                    0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL(json_get(out, "sequences"), 2 * (3 + 1 + 1));
    CU_ASSERT_EQUAL(json_get(out, "threads"), 2);
    CU_ASSERT(json_get(out, "kernel_gflops") > 0);
    CU_ASSERT(json_get(out, "sgemm_gflops") > 0);
    CU_ASSERT(json_get(out, "kernel_ratio") > 0);
    CU_ASSERT(json_get(out, "own_gemm_gflops") > 0);
    free(out);
}

/* --all at a tiny shape with no torch: every figure of the issue is a number, the peer's null
 * with a reason. */
static void test_all_json(void)
{
    const char *dir = tu_mkdtemp("bench-all");
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_run(&out, "PSREC_PYTHON=%s %s bench --all --json " TINY_MODEL
                                 " --threads 1 --prep-news 200 --prep-users 100 "
                                 "--prep-impressions 300",
                           fake_python(dir, 1, "1"), TU_PSREC),
                    0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    static const char *const positive[] = {
        "samples_per_s", "useful_gflops", "sgemm_gflops", "useful_ratio", "kernel_gflops",
        "kernel_ratio", "ps_samples_per_s", "ps_ratio", "bytes_per_sample", "prep_mb_per_s",
        "eval_impressions_per_s", "recommend_ms", "peak_rss_mb", "worker_rss_mb",
        "worker_mapped_dataset_mb"};
    for (size_t i = 0; i < sizeof positive / sizeof *positive; i++) {
        double v = json_get(out, positive[i]);
        if (!(v > 0))
            fprintf(stderr, "%s: %g\n", positive[i], v);
        CU_ASSERT(v > 0);
    }
    CU_ASSERT_EQUAL(json_get(out, "kernel_sequences"), 4 * (5 + 1 + 4));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"peer_samples_per_s\": null"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"peer_ratio_skipped\": \""));
    static const char *const keys[] = {"worker_heap_mb", "worker_eval_news_mb"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char k[64];
        snprintf(k, sizeof k, "\"%s\": ", keys[i]);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, k));
    }
    const char *obj = strstr(out, "{\"mode\": \"all\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(obj);
    CU_ASSERT_PTR_NULL(strchr(obj + 1, '{')); /* one flat object (log lines come before) */
    free(out);
    tu_rmtree(dir);
}

static void test_prep(void)
{
    char tmp[4096], *out = NULL;
    snprintf(tmp, sizeof tmp, "%s", tu_mkdtemp("bench"));
    CU_ASSERT_EQUAL(tu_run(&out,
                           "TMPDIR=%s %s bench --prep --json --prep-news 200 --prep-users 100 "
                           "--prep-impressions 300 --repeat 2",
                           tmp, TU_PSREC),
                    0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT(json_get(out, "prep_mb_per_s") > 0);
    CU_ASSERT(json_get(out, "tsv_bytes") > 0);
    CU_ASSERT(json_get(out, "seconds") > 0);
    CU_ASSERT_EQUAL(json_get(out, "impressions"), 300);
    /* train/news.tsv holds the news train refers to: some of the 200. */
    CU_ASSERT(json_get(out, "news") > 0 && json_get(out, "news") <= 200);
    CU_ASSERT(json_get(out, "samples") >= 300);
    CU_ASSERT_EQUAL(json_get(out, "repeat"), 2);
    free(out);
    /* Generated data and every prep output are gone. */
    CU_ASSERT_EQUAL(dir_entries(tmp), 0);
    tu_rmtree(tmp);
}

static void test_prep_data(void)
{
    char data[4096], tmp[4300], *out = NULL;
    snprintf(data, sizeof data, "%s", tu_mkdtemp("bench-data"));
    GenOptions g;
    gen_options_default(&g);
    g.out = data;
    g.news = 100;
    g.users = 50;
    g.train_impressions = 120;
    g.dev_impressions = 10;
    CU_ASSERT_EQUAL_FATAL(gen_run(&g, NULL), 0);
    snprintf(tmp, sizeof tmp, "%s/tmp", data);
    CU_ASSERT_EQUAL_FATAL(mkdir(tmp, 0700), 0);
    CU_ASSERT_EQUAL(tu_run(&out, "TMPDIR=%s %s bench --prep --data %s --repeat 1", tmp, TU_PSREC,
                           data),
                    0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "MB/s"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "120 impressions"));
    free(out);
    /* The given data is kept (train, dev, oracle.json, tmp); the temporary dir is gone. */
    CU_ASSERT_EQUAL(dir_entries(data), 4);
    CU_ASSERT_EQUAL(dir_entries(tmp), 0);
    CU_ASSERT_EQUAL(tu_run(&out, "%s bench --prep --data %s/nowhere --repeat 1", TU_PSREC, data),
                    1);
    free(out);
    tu_rmtree(data);
}

/* --ps runs the same steps in-process and through a shard over loopback TCP and reports
 * both; dense_bytes is the whole model: (V E + C H + U H + (E + 3H + 2) 4H) floats. */
static void test_ps_mode(void)
{
    char *out = NULL;
    int rc = tu_run(&out, "%s bench --ps --json --batch 4 --title-len 6 --his-len 5 --word-dim 8 "
                          "--hidden 8 --steps 3 --warmup 1 --repeat 1 --vocab 100 "
                          "--categories 5 --users 50 2>/dev/null", TU_PSREC);
    CU_ASSERT_FATAL(rc == 0);
    double a = 0, b = 0, ratio = 0, bps = 0, dense = 0;
    CU_ASSERT(tu_json_number(out, "samples_per_s", &a) && a > 0);
    CU_ASSERT(tu_json_number(out, "ps_samples_per_s", &b) && b > 0);
    CU_ASSERT(tu_json_number(out, "ps_ratio", &ratio) && fabs(ratio - b / a) < 1e-3 * ratio + 1e-4);
    CU_ASSERT(tu_json_number(out, "bytes_per_sample", &bps) && bps > 0);
    CU_ASSERT(tu_json_number(out, "dense_bytes", &dense));
    CU_ASSERT_EQUAL(dense, 4.0 * (100 * 8 + 5 * 8 + 50 * 8 + (8 + 3 * 8 + 2) * 32));
    free(out);
    CU_ASSERT(tu_run(NULL, "%s bench --ps --prep 2>/dev/null", TU_PSREC) == 2);
}

/* The n numbers of the JSON array named key; returns how many were read. */
static int json_array(const char *json, const char *key, double *v, int n)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": [", key);
    const char *p = strstr(json, pat);
    if (!p)
        return 0;
    p += strlen(pat);
    int got = 0;
    while (got < n) {
        char *end;
        v[got] = strtod(p, &end);
        if (end == p)
            break;
        got++;
        p = end + strspn(end, ", ");
    }
    return got;
}

/* --ps --repeat 3 pairs an in-process and a PS repeat three times: ps_ratio_runs[i] is
 * ps_samples_per_s_runs[i] / samples_per_s_runs[i], and ps_ratio their median. */
static void test_ps_pairs(void)
{
    char *out = NULL;
    int rc = tu_run(&out, "%s bench --ps --json --batch 4 --title-len 6 --his-len 5 --word-dim 8 "
                          "--hidden 8 --steps 3 --warmup 1 --repeat 3 --vocab 100 "
                          "--categories 5 --users 50 2>/dev/null", TU_PSREC);
    CU_ASSERT_FATAL(rc == 0);
    double a[3], b[3], r[3], ratio = 0;
    CU_ASSERT_FATAL(json_array(out, "samples_per_s_runs", a, 3) == 3);
    CU_ASSERT_FATAL(json_array(out, "ps_samples_per_s_runs", b, 3) == 3);
    CU_ASSERT_FATAL(json_array(out, "ps_ratio_runs", r, 3) == 3);
    for (int i = 0; i < 3; i++)
        CU_ASSERT(fabs(r[i] - b[i] / a[i]) < 1e-3 * r[i] + 1e-4);
    double lo = fmin(r[0], fmin(r[1], r[2])), hi = fmax(r[0], fmax(r[1], r[2]));
    double mid = r[0] + r[1] + r[2] - lo - hi;
    CU_ASSERT(tu_json_number(out, "ps_ratio", &ratio) && fabs(ratio - mid) < 1e-4);
    free(out);
}

/* Rows of the checkpoint bench's shard: every key of the sparse tables (V, C, U) and the
 * dense rows (E + H + 1 for the news LSTM, H + H + 1 for the user LSTM). */
static double ckpt_rows(int E, int H, int V, int C, int U)
{
    return (double)V + C + U + (E + H + 1) + (H + H + 1);
}

/* Floats of parameters over every row; the file holds them and two Adam moments. */
static double ckpt_floats(int E, int H, int V, int C, int U)
{
    return (double)V * E + (double)C * H + (double)U * H + (E + 3.0 * H + 2) * 4 * H;
}

/* Bytes of the plain files in dir; -1 when it cannot be opened. */
static double files_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    double n = 0;
    struct dirent *e;
    char path[8192];
    while ((e = readdir(d))) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!stat(path, &st) && S_ISREG(st.st_mode))
            n += (double)st.st_size;
    }
    closedir(d);
    return n;
}

static void test_checkpoint_json(void)
{
    char tmp[4096], ck[4200], step[4300], *out = NULL;
    snprintf(tmp, sizeof tmp, "%s", tu_mkdtemp("bench-ckpt"));
    /* Default dir: a temporary one under $TMPDIR, gone afterwards. */
    CU_ASSERT_EQUAL(tu_run(&out, "TMPDIR=%s %s bench --checkpoint --json --word-dim 4 --hidden 4 "
                                 "--vocab 50 --categories 3 --users 20 --repeat 2 2>/dev/null",
                           tmp, TU_PSREC),
                    0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"mode\": \"checkpoint\""));
    CU_ASSERT_EQUAL(json_get(out, "word_dim"), 4);
    CU_ASSERT_EQUAL(json_get(out, "users"), 20);
    CU_ASSERT_EQUAL(json_get(out, "repeat"), 2);
    CU_ASSERT_EQUAL(json_get(out, "rows"), ckpt_rows(4, 4, 50, 3, 20));
    const double small = json_get(out, "checkpoint_bytes");
    /* Parameters and both Adam moments are in the file. */
    CU_ASSERT(small >= 12 * ckpt_floats(4, 4, 50, 3, 20));
    CU_ASSERT(json_get(out, "pause_ms_fresh") > 0);
    CU_ASSERT(json_get(out, "pause_ms_reuse") > 0);
    CU_ASSERT(json_get(out, "write_s") > 0);
    CU_ASSERT(json_get(out, "verify_s") > 0);
    CU_ASSERT(json_get(out, "load_s") > 0);
    CU_ASSERT(json_get(out, "write_mb_per_s") > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"write_s_runs\": ["));
    free(out);
    CU_ASSERT_EQUAL(dir_entries(tmp), 0);

    /* A larger shape into --dir: more rows and bytes, by at least its extra floats (x3); the
     * step dir left there is a valid checkpoint of exactly checkpoint_bytes. */
    snprintf(ck, sizeof ck, "%s/ck", tmp);
    CU_ASSERT_EQUAL(tu_run(&out, "%s bench --checkpoint --json --word-dim 8 --hidden 8 --vocab 500 "
                                 "--categories 3 --users 200 --repeat 3 --dir %s 2>/dev/null",
                           TU_PSREC, ck),
                    0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL(json_get(out, "rows"), ckpt_rows(8, 8, 500, 3, 200));
    const double big = json_get(out, "checkpoint_bytes");
    CU_ASSERT(big - small >= 12 * (ckpt_floats(8, 8, 500, 3, 200) - ckpt_floats(4, 4, 50, 3, 20)));
    /* keep 1: only the last repeat's step (3) remains, with LATEST. */
    CU_ASSERT_EQUAL(dir_entries(ck), 2);
    snprintf(step, sizeof step, "%s/step-0000000003", ck);
    CU_ASSERT_EQUAL(files_bytes(step), big);
    free(out);
    CU_ASSERT_EQUAL(tu_run(&out, "%s inspect %s", TU_PSREC, ck), 0);
    CU_ASSERT(out && strstr(out, "500 / 500") != NULL); /* every word row is there */
    free(out);
    /* It refuses a dir that holds something: the cuts prune step dirs there. */
    CU_ASSERT_EQUAL(tu_run(&out, "%s bench --checkpoint --dir %s", TU_PSREC, ck), 2);
    CU_ASSERT(out && strstr(out, "not empty") != NULL);
    free(out);
    CU_ASSERT_EQUAL(dir_entries(step), 3);
    tu_rmtree(tmp);
}

static void test_checkpoint_library(void)
{
    BenchCheckpointOptions o;
    bench_checkpoint_defaults(&o);
    CU_ASSERT_EQUAL(o.E, 128);
    CU_ASSERT_EQUAL(o.H, 128);
    CU_ASSERT_EQUAL(o.vocab, 50000);
    CU_ASSERT_EQUAL(o.users, 100000);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", tu_mkdtemp("bench-ckpt-lib"));
    o = (BenchCheckpointOptions){.E = 6, .H = 5, .vocab = 30, .categories = 2, .users = 11,
                                 .seed = 3, .repeat = 3, .dir = tmp};
    BenchCheckpointResult r;
    CU_ASSERT_EQUAL_FATAL(bench_checkpoint(&o, &r), 0);
    CU_ASSERT_EQUAL(r.repeat, 3);
    CU_ASSERT_EQUAL(r.rows, (uint64_t)ckpt_rows(6, 5, 30, 2, 11));
    int is_run = 0;
    for (int i = 0; i < 3; i++) {
        CU_ASSERT(r.fresh_ms_runs[i] > 0 && r.reuse_ms_runs[i] > 0);
        CU_ASSERT(r.write_s_runs[i] > 0 && r.verify_s_runs[i] > 0 && r.load_s_runs[i] > 0);
        is_run |= r.write_s == r.write_s_runs[i];
    }
    CU_ASSERT(is_run); /* an odd count's median is one of the runs */
    char step[4200];
    snprintf(step, sizeof step, "%s/step-0000000003", tmp);
    CU_ASSERT_EQUAL(files_bytes(step), (double)r.checkpoint_bytes);
    o.repeat = 0;
    CU_ASSERT_EQUAL(bench_checkpoint(&o, &r), PSREC_E_USAGE);
    o.repeat = 1;
    CU_ASSERT_EQUAL(bench_checkpoint(&o, &r), PSREC_E_USAGE); /* tmp is not empty now */
    tu_rmtree(tmp);
}

static void test_bad_options(void)
{
    static const char *const bad[] = {
        "--batch 0",
        "--batch x",
        "--batch -4",
        "--hidden",
        "--repeat 0",
        "--repeat 101",
        "--threads 0",
        "--vocab 1",
        "--bogus",
        "stray",
        "--prep --batch 4",
        "--prep --title-len 6",
        "--data /tmp",
        "--prep-news 100",
        "--prep --prep-news 5",
        "--prep --prep-impressions 0",
        "--checkpoint --batch 4",
        "--checkpoint --steps 2",
        "--checkpoint --threads 1",
        "--checkpoint --prep",
        "--checkpoint --ps",
        "--checkpoint --repeat 0",
        "--checkpoint --dir",
        "--dir /tmp",
        "--all --prep",
        "--all --ps",
        "--all --checkpoint",
        "--all --data /tmp",
        "--kernel --all",
        "--kernel --ps",
        "--peer x.py",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = NULL;
        int rc = tu_run(&out, "%s bench %s", TU_PSREC, bad[i]);
        if (rc != 2)
            fprintf(stderr, "bench %s: exit %d\n%s\n", bad[i], rc, out ? out : "");
        CU_ASSERT_EQUAL(rc, 2);
        CU_ASSERT_PTR_NOT_NULL(out);
        CU_ASSERT(out && strstr(out, "psrec bench") != NULL);
        free(out);
    }
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_run(&out, "%s bench --help", TU_PSREC), 0);
    CU_ASSERT(out && strstr(out, "--prep-impressions") != NULL);
    free(out);
    CU_ASSERT_EQUAL(tu_run(&out, "%s help bench", TU_PSREC), 0);
    CU_ASSERT(out && strstr(out, "usage: psrec bench") != NULL);
    free(out);
}

int main(void)
{
    static const TuTest tests[] = {
        {"model_json", test_model_json},
        {"flop_formula", test_flop_formula},
        {"model_library", test_model_library},
        {"prep", test_prep},
        {"prep_data", test_prep_data},
        {"bad_options", test_bad_options},
        {"ps_mode", test_ps_mode},
        {"ps pairs: ratio = median of paired ratios", test_ps_pairs},
        {"checkpoint_json", test_checkpoint_json},
        {"checkpoint_library", test_checkpoint_library},
        {"kernel_formula", test_kernel_formula},
        {"kernel_library", test_kernel_library},
        {"kernel_json", test_kernel_json},
        {"peer", test_peer},
        {"all_json", test_all_json},
        {NULL, NULL},
    };
    tu_add_suite("bench", tests);
    return tu_run_all();
}
