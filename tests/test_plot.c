/* `psrec plot` run as the real binary: a valid PNG from a short single-process run (signature,
 * size, IHDR), two runs overlaid (both run.names in every panel of the kept gnuplot script, the
 * default ./plot.png for several runs), the reduction of metrics.jsonl (mean over workers,
 * later lines of a resumed run win, epochs completed on x) and the counting of malformed lines
 * on a hand-made file, the install hint without gnuplot, and a missing metrics.jsonl named.
 * Needs gnuplot (CI installs gnuplot-nox from .ci/packages); without it the rendering tests
 * fail with that hint rather than pass untested. */
#include "testutil/testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char exp_dir[4096]; /* tu_small_experiment + two trained runs, made once */

static int have_gnuplot(void)
{
    char *out = NULL;
    int rc = tu_run(&out, "command -v gnuplot");
    free(out);
    if (rc)
        fprintf(stderr, "\ntest_plot: gnuplot is not installed: apt-get install -y gnuplot-nox\n");
    return rc == 0;
}

/* dir/run (run.name alpha, 2 epochs) and dir/run2 (run.name beta, 1 epoch), trained once. */
static const char *experiment(void)
{
    if (exp_dir[0])
        return exp_dir;
    snprintf(exp_dir, sizeof exp_dir, "%s", tu_mkdtemp("plot"));
    CU_ASSERT_EQUAL_FATAL(tu_small_experiment(exp_dir, 1, "name = alpha\n"), 0);
    char *out = NULL;
    int rc = tu_run(&out, "(cd %s && %s train exp.conf && %s train exp.conf --run.dir=%s/run2 "
                          "--run.name=beta --train.epochs=1)",
                    exp_dir, TU_PSREC, TU_PSREC, exp_dir);
    if (rc)
        fprintf(stderr, "%s\n", out);
    free(out);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return exp_dir;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* path is a PNG: signature, then an IHDR chunk (length 13) with a plausible size. */
static void assert_png(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t len = 0;
    char *png = tu_read_file(path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(png);
    const unsigned char *b = (const unsigned char *)png;
    CU_ASSERT_FATAL(len > 33);
    CU_ASSERT(memcmp(b, sig, 8) == 0);
    CU_ASSERT_EQUAL(be32(b + 8), 13);
    CU_ASSERT(memcmp(b + 12, "IHDR", 4) == 0);
    uint32_t w = be32(b + 16), h = be32(b + 20);
    CU_ASSERT(w >= 300 && w <= 5000);
    CU_ASSERT(h >= 300 && h <= 5000);
    free(png);
}

/* The path after "gnuplot script kept: " in out (static), or NULL. */
static const char *kept_script(const char *out)
{
    static char path[4096];
    const char *p = strstr(out, "gnuplot script kept: ");
    if (!p)
        return NULL;
    p += strlen("gnuplot script kept: ");
    size_t n = strcspn(p, "\n");
    snprintf(path, sizeof path, "%.*s", (int)n, p);
    return path;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

/* The kept script's directory (its data files) is removed with the script. */
static void remove_kept(const char *script)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", script);
    char *slash = strrchr(dir, '/');
    CU_ASSERT_PTR_NOT_NULL_FATAL(slash);
    *slash = '\0';
    CU_ASSERT_PTR_NOT_NULL(strstr(dir, "psrec-plot-"));
    tu_rmtree(dir);
}

/* One run, default --out: RUN_DIR/plot.png, its path alone on stdout. */
static void test_png_one_run(void)
{
    CU_ASSERT_FATAL(have_gnuplot());
    const char *d = experiment();
    char png[4200], *out = NULL;
    snprintf(png, sizeof png, "%s/run/plot.png", d);
    int rc = tu_run(&out, "(%s plot %s/run 2>/dev/null)", TU_PSREC, d);
    CU_ASSERT_EQUAL(rc, 0);
    char want[4300];
    snprintf(want, sizeof want, "%s\n", png);
    CU_ASSERT_STRING_EQUAL(out, want);
    free(out);
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(png, &st), 0);
    CU_ASSERT(st.st_size > 1000);
    assert_png(png);
}

/* Two runs overlay: each run.name labels a curve in all three panels; default ./plot.png. */
static void test_two_runs_overlay(void)
{
    CU_ASSERT_FATAL(have_gnuplot());
    const char *d = experiment();
    char *out = NULL;
    int rc = tu_run(&out, "cd %s && rm -f plot.png && %s plot run run2 --keep-script", d,
                    TU_PSREC);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "plot.png\n"));
    const char *script = kept_script(out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(script);
    char *gp = tu_read_file(script, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(gp);
    CU_ASSERT_EQUAL(count(gp, "title 'alpha'"), 3);
    CU_ASSERT_EQUAL(count(gp, "title 'beta'"), 3);
    CU_ASSERT_EQUAL(count(gp, "\nplot "), 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(gp, "multiplot"));
    free(gp);
    /* run's data: 2 epochs of 240 steps logged every 10 -> 48 loss points, 2 evaluations. */
    char path[4200];
    snprintf(path, sizeof path, "%.4000s", script);
    strcpy(strrchr(path, '/'), "/run0-loss.dat");
    char *loss = tu_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loss);
    CU_ASSERT_EQUAL(count(loss, "\n"), 1 + 48);
    CU_ASSERT(strncmp(strchr(loss, '\n') + 1, "10 ", 3) == 0);
    free(loss);
    strcpy(strrchr(path, '/'), "/run1-eval.dat");
    char *eval = tu_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(eval);
    CU_ASSERT_EQUAL(count(eval, "\n"), 1 + 1);
    CU_ASSERT(strncmp(strchr(eval, '\n') + 1, "1 0.", 4) == 0);
    free(eval);
    remove_kept(script);
    free(out);
    snprintf(path, sizeof path, "%s/plot.png", d);
    assert_png(path);
}

/* A hand-made metrics.jsonl: two workers, a resumed life rewriting step 10 and epoch 0, shard
 * lines, and seven malformed lines, an infinity among them (skipped, counted, the first one
 * named). No config.effective: the directory's name labels the run. */
static void test_reduce_and_malformed(void)
{
    CU_ASSERT_FATAL(have_gnuplot());
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("plot-hand"));
    snprintf(path, sizeof path, "%s/hand", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/hand/metrics.jsonl", dir);
    CU_ASSERT_EQUAL_FATAL(
        tu_write_file(path,
                      "{\"worker\":0,\"epoch\":0,\"step\":10,\"loss\":2.5,\"samples_per_s\":9.0}\n"
                      "not json\n"
                      "{\"worker\":1,\"epoch\":0,\"step\":10,\"loss\":0.5,\"samples_per_s\":9.0}\n"
                      "{\"shard\":0,\"time\":1.5,\"pulls\":3}\n"
                      "{\"worker\":0,\"epoch\":0,\"step\":20,\"loss\":0.25}\n"
                      "{\"worker\":0,\"step\":30,\"loss\":nan}\n"
                      "{\"worker\":0,\"step\":3e1,\"loss\":1}\n"
                      "{\"worker\":-1,\"step\":30,\"loss\":1}\n"
                      "{\"epoch\":0,\"step\":20,\"auc\":0.6,\"ndcg10\":0.3,\"mrr\":0.2}\n"
                      "\n"
                      "{\"worker\":0,\"step\":30,\"loss\":0x1}\n"
                      "{\"worker\":0,\"step\":30,\"loss\":1e999}\n"
                      /* the resumed life: step 10 and epoch 0 again */
                      "{\"worker\":0,\"epoch\":0,\"step\":10,\"loss\":1.5}\n"
                      "{\"epoch\":0,\"step\":20,\"auc\":0.75,\"ndcg10\":0.5}\n"
                      "{\"epoch\":1,\"step\":40,\"auc\":0.8,\"ndcg10\":0.55}\n"
                      "{\"worker\":1,\"epoch\":1,\"step\":40,\"lo"),
        0);
    char *out = NULL;
    int rc = tu_run(&out, "cd %s && %s plot hand --keep-script", dir, TU_PSREC);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "skipped 7 malformed line(s), the first at line 2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "hand/plot.png\n"));
    const char *script = kept_script(out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(script);
    char *gp = tu_read_file(script, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(gp);
    CU_ASSERT_EQUAL(count(gp, "title 'hand'"), 3);
    free(gp);
    snprintf(path, sizeof path, "%.4000s", script);
    strcpy(strrchr(path, '/'), "/run0-loss.dat");
    char *loss = tu_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loss);
    /* step 10: (1.5 from the later life + 0.5) / 2 workers; step 20: worker 0 alone. */
    CU_ASSERT_STRING_EQUAL(strchr(loss, '\n') + 1, "10 1\n20 0.25\n");
    free(loss);
    strcpy(strrchr(path, '/'), "/run0-eval.dat");
    char *eval = tu_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(eval);
    CU_ASSERT_STRING_EQUAL(strchr(eval, '\n') + 1, "1 0.75 0.5\n2 0.8 0.55\n");
    free(eval);
    remove_kept(script);
    free(out);
    snprintf(path, sizeof path, "%s/hand/plot.png", dir);
    assert_png(path);
    tu_rmtree(dir);
}

/* No gnuplot on PATH: the exact package to install, exit 1, no PNG. Needs no gnuplot. */
static void test_no_gnuplot(void)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("plot-nognuplot"));
    snprintf(path, sizeof path, "%s/bin", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    CU_ASSERT_EQUAL_FATAL(tu_write_file(path, "{\"worker\":0,\"step\":10,\"loss\":1}\n"), 0);
    char *out = NULL;
    int rc = tu_run(&out, "PATH=%s/bin %s plot %s", dir, TU_PSREC, dir);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "gnuplot not found"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "apt-get install gnuplot-nox"));
    free(out);
    snprintf(path, sizeof path, "%s/plot.png", dir);
    struct stat st;
    CU_ASSERT_NOT_EQUAL(stat(path, &st), 0);
    tu_rmtree(dir);
}

/* A run dir without metrics.jsonl is named (also when it is the second of two); exit 1.
 * Needs no gnuplot: the inputs are checked first. */
static void test_missing_metrics(void)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("plot-missing"));
    snprintf(path, sizeof path, "%s/good", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/empty", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/good/metrics.jsonl", dir);
    CU_ASSERT_EQUAL_FATAL(tu_write_file(path, "{\"worker\":0,\"step\":10,\"loss\":1}\n"), 0);
    char *out = NULL;
    int rc = tu_run(&out, "cd %s && %s plot good empty --out x.png", dir, TU_PSREC);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "empty/metrics.jsonl: No such file or directory"));
    CU_ASSERT_PTR_NULL(strstr(out, "good/metrics.jsonl"));
    free(out);
    snprintf(path, sizeof path, "%s/x.png", dir);
    struct stat st;
    CU_ASSERT_NOT_EQUAL(stat(path, &st), 0);
    tu_rmtree(dir);
}

static void test_usage(void)
{
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_run(&out, "%s plot", TU_PSREC), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "no RUN_DIR given"));
    free(out);
    CU_ASSERT_EQUAL(tu_run(&out, "%s plot --bogus x", TU_PSREC), 2);
    free(out);
    CU_ASSERT_EQUAL(tu_run(&out, "%s plot --help", TU_PSREC), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage: psrec plot RUN_DIR"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "gnuplot-nox"));
    free(out);
    CU_ASSERT_EQUAL(tu_run(&out, "%s help plot", TU_PSREC), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "--keep-script"));
    free(out);
}

int main(void)
{
    static const TuTest tests[] = {
        {"one run: a PNG at RUN_DIR/plot.png, path on stdout", test_png_one_run},
        {"two runs overlay with their run.names; ./plot.png", test_two_runs_overlay},
        {"mean over workers, later lives win, malformed lines counted", test_reduce_and_malformed},
        {"no gnuplot: the install hint, exit 1", test_no_gnuplot},
        {"missing metrics.jsonl is named, exit 1", test_missing_metrics},
        {"usage and help", test_usage},
        {NULL, NULL},
    };
    tu_add_suite("plot", tests);
    int rc = tu_run_all();
    if (exp_dir[0])
        tu_rmtree(exp_dir);
    return rc;
}
