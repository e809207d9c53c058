/* Tests of launch/bench_io (the data-path figures of `psrec bench --all`) at a tiny size: every
 * call reports figures of the data it was given (eval scores every dev impression, prep reads
 * every TSV byte, recommend ranks every news row), the memory split sees the datasets' pages
 * as mapped and a small heap, the cached recommend answer comes from the cache, and nothing is
 * left in $TMPDIR. No timing thresholds beyond "positive": speed is what the bench reports. */
#include "common/error.h"
#include "common/metrics.h"
#include "launch/bench_io.h"
#include "testutil/testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Entries of dir other than . and .. whose name starts with prefix; -1 when it cannot be
 * opened. */
static int count_prefixed(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static void tiny_options(BenchIoOptions *o)
{
    bench_io_defaults(o);
    o->gen.news = 300;
    o->gen.users = 200;
    o->gen.train_impressions = 600;
    o->gen.dev_impressions = 150;
    o->dims = (ModelDims){.E = 8, .H = 8, .title_len = 10, .his_len = 8, .K = 4};
    o->repeat = 1;
}

static void test_every_figure(void)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", tu_mkdtemp("bench-io"));
    char *old = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
    setenv("TMPDIR", tmp, 1);
    BenchIoOptions o;
    tiny_options(&o);
    BenchIo *b = NULL;
    int rc = bench_io_new(&b, &o);
    if (rc)
        fprintf(stderr, "bench_io_new: %s\n", psrec_errmsg());
    CU_ASSERT_FATAL(rc == 0 && b != NULL);

    BenchEvalResult e;
    CU_ASSERT_EQUAL(bench_eval(b, &e), 0);
    CU_ASSERT_EQUAL(e.impressions, 150);
    CU_ASSERT(e.candidates > e.impressions);
    CU_ASSERT(e.impressions_per_s > 0 && e.candidates_per_s > e.impressions_per_s);
    CU_ASSERT(e.seconds > 0);

    BenchPrepIoResult p;
    CU_ASSERT_EQUAL(bench_prep_io(b, &p), 0);
    CU_ASSERT(p.tsv_bytes > 10000);
    CU_ASSERT(p.mb_per_s > 0 && p.mb_per_cpu_s > 0 && p.seconds > 0);

    BenchRecommendResult r;
    rc = bench_recommend(b, &r);
    if (rc)
        fprintf(stderr, "bench_recommend: %s\n", psrec_errmsg());
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(r.news_rows > 100);
    CU_ASSERT(r.first_ms > 0 && r.cached_ms > 0);

    BenchMemory m;
    CU_ASSERT_EQUAL(bench_memory(b, &m), 0);
    CU_ASSERT(m.dataset_bytes > 0);
    /* Reading every sample and impression faulted the maps' pages in: they show as mapped
     * file pages, not as heap. */
    CU_ASSERT(m.mapped_dataset_mb > 0);
    CU_ASSERT(m.mapped_dataset_mb <= (double)m.dataset_bytes / 1e6 + 0.01);
    CU_ASSERT(m.heap_mb >= m.eval_news_mb);
    CU_ASSERT(m.eval_news_mb > 0);
    CU_ASSERT(m.heap_mb < 64); /* reader buffers, txns, the news matrix: small here */
    CU_ASSERT(m.peak_rss_mb >= m.mapped_dataset_mb);
    CU_ASSERT(m.rss_mb >= m.mapped_dataset_mb + m.mapped_other_mb);

    CU_ASSERT_EQUAL(count_prefixed(tmp, "psrec-bench-io-"), 1);
    bench_io_free(&b);
    CU_ASSERT_PTR_NULL(b);
    bench_io_free(&b); /* NULL-safe */
    CU_ASSERT_EQUAL(count_prefixed(tmp, "psrec-bench-io-"), 0);
    if (old) {
        setenv("TMPDIR", old, 1);
        free(old);
    } else {
        unsetenv("TMPDIR");
    }
    tu_rmtree(tmp);
}

static void test_bad_repeat(void)
{
    BenchIoOptions o;
    tiny_options(&o);
    o.repeat = 0;
    BenchIo *b = (BenchIo *)1;
    CU_ASSERT_EQUAL(bench_io_new(&b, &o), PSREC_E_USAGE);
    CU_ASSERT_PTR_NULL(b);
}

int main(void)
{
    static const TuTest tests[] = {
        {"every figure of a tiny data set", test_every_figure},
        {"repeat out of range", test_bad_repeat},
        {NULL, NULL},
    };
    tu_add_suite("bench_io", tests);
    return tu_run_all();
}
