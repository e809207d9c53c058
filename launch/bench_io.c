/* `psrec bench --all`'s data-path figures (see bench_io.h).
 *
 * bench_io_new lays out, under one temporary root:
 *   data/{train,dev}/{news,behaviors}.tsv   psrec gen's output (unless o->data is given)
 *   train.db, dev.db                        psrec prep (dev with --vocab-from train.db)
 *   ckpt/step-0000000001                    a checkpoint of a fresh model with every row of
 *                                           every table (as large as a trained one's)
 * and each bench_* call times one path on it, the same way the command does it: eval_run over
 * the dev set through the loaded model (psrec eval), cmd_recommend itself with stdout sent to
 * /dev/null (psrec recommend), bench_prep (psrec bench --prep). Memory is measured in this
 * process around a worker's data path (open, one epoch through the reader, one walk over the
 * dev impressions, the scorer's news matrix): the anonymous pages it adds are its heap, the
 * resident pages of the data.mdb maps are the mapped dataset. */
#include "launch/bench_io.h"

#include "common/error.h"
#include "common/fsutil.h"
#include "common/params.h"
#include "common/timer.h"
#include "launch/bench.h"
#include "launch/commands.h"
#include "launch/cut.h"
#include "launch/inproc.h"
#include "launch/modelload.h"
#include "launch/prep.h"
#include "launch/run.h"
#include "server/shard.h"
#include "worker/eval.h"
#include "worker/reader.h"
#include "worker/scorer.h"

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

struct BenchIo {
    BenchIoOptions o;
    char root[3000];
    char data[3100];  /* gen layout */
    char train[3100]; /* train.db */
    char dev[3100];   /* dev.db */
    char ckpt[3100];  /* checkpoint root */
};

void bench_io_defaults(BenchIoOptions *o)
{
    memset(o, 0, sizeof *o);
    gen_options_default(&o->gen);
    o->gen.news = 51000;
    o->gen.users = 50000;
    o->gen.train_impressions = 157000;
    o->gen.dev_impressions = 20000;
    o->dims = (ModelDims){.E = 128, .H = 128, .title_len = 30, .his_len = 50, .K = 4};
    o->seed = 1;
    o->repeat = 3;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) ? errno : 0;
}

/* rm -rf path; a missing path is fine. Returns 0 or an errno value. */
static int rm_tree(const char *path)
{
    int rc = nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc < 0)
        return errno == ENOENT ? 0 : errno;
    return rc;
}

/* A run meta for a fresh model of dims d over the train dataset's id spaces (Adam, one shard,
 * one worker), as psrec train would make it. */
static RunMeta fresh_meta(const BenchIoOptions *o, const DatasetMeta *dm)
{
    return (RunMeta){.version = RUNMETA_VERSION,
                     .size = sizeof(RunMeta),
                     .E = (uint32_t)o->dims.E,
                     .H = (uint32_t)o->dims.H,
                     .title_len = (uint32_t)o->dims.title_len,
                     .his_len = (uint32_t)o->dims.his_len,
                     .K = (uint32_t)o->dims.K,
                     .optimizer = OPTIM_ADAM,
                     .lr = 1e-3f,
                     .beta1 = 0.9f,
                     .beta2 = 0.999f,
                     .eps = 1e-8f,
                     .vocab_rows = (uint32_t)dm->vocab_rows,
                     .category_rows = (uint32_t)dm->category_rows,
                     .user_rows = (uint32_t)dm->user_rows,
                     .seed = o->seed,
                     .shards = 1,
                     .workers = 1};
}

/* Make every row of every table exist (a pull initialises a row from the seed), so the
 * checkpoint is as large as a trained model's and loading it costs what it costs then. */
static int touch_every_row(Shard *s)
{
    enum { CHUNK = 1024 };
    uint64_t keys[CHUNK];
    float *rows = NULL;
    int rc = 0;
    for (uint32_t t = 0; t < PARAM_TABLES && !rc; t++) {
        const uint64_t n_rows = shard_table_rows(s, t);
        const size_t w = shard_table_width(s, t);
        float *nr = realloc(rows, CHUNK * w * sizeof *rows);
        if (!nr) {
            rc = psrec_errf(PSREC_E_NOMEM, "bench: out of memory");
            break;
        }
        rows = nr;
        for (uint64_t k0 = 0; k0 < n_rows && !rc; k0 += CHUNK) {
            const size_t n = n_rows - k0 < CHUNK ? (size_t)(n_rows - k0) : CHUNK;
            for (size_t i = 0; i < n; i++)
                keys[i] = k0 + i;
            rc = shard_pull(s, t, keys, n, rows);
        }
    }
    free(rows);
    return rc;
}

/* Write step 1 of a fresh model into b->ckpt through the real checkpoint code. */
static int write_fresh_checkpoint(BenchIo *b)
{
    Dataset *ds = NULL;
    Shard *s = NULL;
    CutImage *img = NULL;
    int rc = dataset_open(b->train, &ds);
    if (rc)
        return rc;
    const RunMeta meta = fresh_meta(&b->o, dataset_meta(ds));
    ShardOptions so;
    run_meta_shard_options(&meta, &so);
    if ((rc = fs_mkdir_p(b->ckpt)) || (rc = shard_new(&so, &s)) || (rc = touch_every_row(s)) ||
        (rc = cut_image_new(1, &img)))
        goto out;
    img->shards = 1;
    const WorkerCut wc = {.pos = {.seed = b->o.seed, .world = 1}};
    size_t len;
    if ((rc = workercut_encode(&wc, img->cuts, SNAP_CUT_MAX, &len)))
        goto out;
    img->cut_len[0] = (uint32_t)len;
    CutWriter cw = {.meta = meta,
                    .config_text = "# psrec bench --all (fresh model)\n",
                    .model_hash = cut_model_hash(&meta),
                    .seed = b->o.seed,
                    .keep = 1,
                    .committer = 1,
                    .wait_timeout = 60.0,
                    .life_t0 = timer_now()};
    snprintf(cw.root, sizeof cw.root, "%s", b->ckpt);
    if ((rc = shard_snapshot(s, &img->copy)))
        goto out;
    img->step = 1;
    img->finished[0] = 1;
    rc = cut_write(&cw, img);
out:
    cut_image_free(&img);
    shard_free(&s);
    dataset_free(&ds);
    return rc;
}

int bench_io_new(BenchIo **out, const BenchIoOptions *o)
{
    *out = NULL;
    if (o->repeat < 1 || o->repeat > BENCH_MAX_REPEAT)
        return psrec_errf(PSREC_E_USAGE, "bench: --repeat %d out of range 1..%d", o->repeat,
                          BENCH_MAX_REPEAT);
    BenchIo *b = calloc(1, sizeof *b);
    if (!b)
        return psrec_errf(PSREC_E_NOMEM, "bench: out of memory");
    b->o = *o;
    const char *tmp = getenv("TMPDIR");
    snprintf(b->root, sizeof b->root, "%s/psrec-bench-io-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(b->root)) {
        int e = errno;
        free(b);
        return psrec_errf(e, "bench: mkdtemp: %s", strerror(e));
    }
    int rc = 0;
    if (o->data) {
        snprintf(b->data, sizeof b->data, "%s", o->data);
    } else {
        snprintf(b->data, sizeof b->data, "%s/data", b->root);
        GenOptions g = o->gen;
        g.out = b->data;
        if ((rc = gen_run(&g, NULL)))
            goto fail;
    }
    snprintf(b->train, sizeof b->train, "%s/train.db", b->root);
    snprintf(b->dev, sizeof b->dev, "%s/dev.db", b->root);
    snprintf(b->ckpt, sizeof b->ckpt, "%s/ckpt", b->root);
    char news[4400], beh[4400];
    const char *split[2] = {"train", "dev"};
    for (int i = 0; i < 2; i++) {
        snprintf(news, sizeof news, "%s/%s/news.tsv", b->data, split[i]);
        snprintf(beh, sizeof beh, "%s/%s/behaviors.tsv", b->data, split[i]);
        PrepOptions po = {.news_path = news, .behaviors_path = beh,
                          .out_path = i ? b->dev : b->train, .vocab_from = i ? b->train : NULL,
                          .title_len = (uint32_t)o->dims.title_len,
                          .his_len = (uint32_t)o->dims.his_len, .min_count = 1};
        if ((rc = prep_run(&po, NULL)))
            goto fail;
    }
    if ((rc = write_fresh_checkpoint(b)))
        goto fail;
    *out = b;
    return 0;
fail:
    bench_io_free(&b);
    return rc;
}

void bench_io_free(BenchIo **bp)
{
    BenchIo *b = bp ? *bp : NULL;
    if (!b)
        return;
    rm_tree(b->root);
    free(b);
    *bp = NULL;
}

int bench_eval(BenchIo *b, BenchEvalResult *r)
{
    memset(r, 0, sizeof *r);
    double ips[BENCH_MAX_REPEAT], cps[BENCH_MAX_REPEAT], secs[BENCH_MAX_REPEAT];
    LoadedModel lm = {0};
    Dataset *ds = NULL;
    int rc;
    if ((rc = modelload_open(b->ckpt, &lm)) || (rc = dataset_open(b->dev, &ds)))
        goto out;
    for (int rep = 0; rep < b->o.repeat; rep++) {
        PsClient ps;
        inproc_client_init(&ps, lm.shard);
        EvalOptions eo = {.dims = lm.dims, .data = ds, .ps = &ps, .begin = 0,
                          .end = UINT64_MAX};
        MetricsAcc acc;
        metrics_acc_init(&acc);
        EvalStats st;
        if ((rc = eval_run(&eo, &acc, &st)))
            goto out;
        double s = st.seconds > 0 ? st.seconds : 1e-9;
        ips[rep] = (double)st.impressions / s;
        cps[rep] = (double)st.candidates / s;
        secs[rep] = s;
        r->impressions = st.impressions;
        r->candidates = st.candidates;
    }
    r->impressions_per_s = bench_median(ips, b->o.repeat);
    r->candidates_per_s = bench_median(cps, b->o.repeat);
    r->seconds = bench_median(secs, b->o.repeat);
out:
    dataset_free(&ds);
    modelload_close(&lm);
    return rc;
}

int bench_prep_io(BenchIo *b, BenchPrepIoResult *r)
{
    memset(r, 0, sizeof *r);
    BenchPrepOptions po;
    bench_prep_defaults(&po);
    po.data = b->data;
    po.repeat = b->o.repeat;
    BenchPrepResult pr;
    int rc = bench_prep(&po, &pr);
    if (rc)
        return rc;
    r->mb_per_s = pr.mb_per_s;
    r->mb_per_cpu_s = (double)pr.meta.tsv_bytes / 1e6 / pr.cpu_seconds;
    r->seconds = pr.seconds;
    r->tsv_bytes = pr.meta.tsv_bytes;
    return 0;
}

/* Remove the news-vector caches of the checkpoint's step dir (newsvec-*.cache, see
 * launch/newscache.h), so that the next question encodes every news again. */
static int drop_news_caches(const BenchIo *b)
{
    char step[4400], path[4800];
    snprintf(step, sizeof step, "%s/step-%010u", b->ckpt, 1u);
    DIR *d = opendir(step);
    if (!d)
        return psrec_errf(errno, "bench: %s: %s", step, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "newsvec-", 8) != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", step, e->d_name);
        if (unlink(path) != 0 && errno != ENOENT) {
            rc = psrec_errf(errno, "bench: removing %s: %s", path, strerror(errno));
            break;
        }
    }
    closedir(d);
    return rc;
}

/* The user id of the train set's first impression (a user with a history). */
static int first_user(const BenchIo *b, char *uid, size_t cap, uint64_t *news_rows)
{
    Dataset *ds = NULL;
    DatasetTxn *txn = NULL;
    int rc = dataset_open(b->train, &ds);
    if (rc || (rc = dataset_txn_new(ds, &txn)))
        goto out;
    *news_rows = dataset_meta(ds)->news_rows;
    ImpressionView iv;
    const char *s;
    uint32_t n;
    if ((rc = dataset_get_impression(txn, 0, &iv)) || (rc = dataset_get_user(txn, iv.user, &s, &n)))
        goto out;
    snprintf(uid, cap, "%.*s", (int)n, s);
out:
    dataset_txn_free(&txn);
    dataset_free(&ds);
    return rc;
}

/* One `psrec recommend --user uid` with its stdout and stderr (the answer and its timing
 * line) sent to /dev/null; seconds in *dt. */
static int recommend_once(const BenchIo *b, const char *uid, double *dt)
{
    char threads[16];
    snprintf(threads, sizeof threads, "%d", openblas_get_num_threads());
    char *argv[] = {"recommend", "--ckpt", (char *)b->ckpt, "--data", (char *)b->train,
                    "--user", (char *)uid, "--k", "10", "--threads", threads, NULL};
    fflush(stdout);
    fflush(stderr);
    int out = dup(STDOUT_FILENO), err = dup(STDERR_FILENO);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (out < 0 || err < 0 || null < 0 || dup2(null, STDOUT_FILENO) < 0 ||
        dup2(null, STDERR_FILENO) < 0) {
        int e = errno;
        if (out >= 0)
            dup2(out, STDOUT_FILENO), close(out);
        if (err >= 0)
            dup2(err, STDERR_FILENO), close(err);
        if (null >= 0)
            close(null);
        return psrec_errf(e, "bench: redirecting stdout: %s", strerror(e));
    }
    close(null);
    double t0 = timer_now();
    int code = cmd_recommend((int)(sizeof argv / sizeof *argv) - 1, argv);
    *dt = timer_now() - t0;
    fflush(stdout);
    fflush(stderr);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    close(out);
    close(err);
    if (code != EXIT_OK)
        return psrec_errf(PSREC_E_STATE, "bench: psrec recommend --user %s failed (exit %d)",
                          uid, code);
    return 0;
}

int bench_recommend(BenchIo *b, BenchRecommendResult *r)
{
    memset(r, 0, sizeof *r);
    double first[BENCH_MAX_REPEAT], cached[BENCH_MAX_REPEAT];
    char uid[256];
    int rc = first_user(b, uid, sizeof uid, &r->news_rows);
    for (int rep = 0; !rc && rep < b->o.repeat; rep++) {
        if (!(rc = drop_news_caches(b)) && !(rc = recommend_once(b, uid, &first[rep])))
            rc = recommend_once(b, uid, &cached[rep]);
        first[rep] *= 1e3;
        cached[rep] *= 1e3;
    }
    int threads = openblas_get_num_threads();
    run_set_threads(threads); /* cmd_recommend set it to the same; keep the caller's */
    if (rc)
        return rc;
    r->first_ms = bench_median(first, b->o.repeat);
    r->cached_ms = bench_median(cached, b->o.repeat);
    return 0;
}

/* ------------------------------------------------------------------ memory */

typedef struct Smaps {
    double anon_mb;     /* Anonymous: of every mapping */
    double dataset_mb;  /* Rss of mappings of a file named data.mdb */
    double other_mb;    /* Rss - Anonymous of the other mappings */
    double rss_mb;
} Smaps;

/* Sum /proc/self/smaps into s. Returns 0 or an errno value with detail. */
static int smaps_read(Smaps *s)
{
    memset(s, 0, sizeof *s);
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return psrec_errf(errno, "bench: /proc/self/smaps: %s", strerror(errno));
    char line[4600];
    int dataset = 0;
    double rss = 0, anon = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long kb, lo, hi;
        if (sscanf(line, "Rss: %lu kB", &kb) == 1) {
            rss = (double)kb * 1024 / 1e6;
            s->rss_mb += rss;
            if (dataset)
                s->dataset_mb += rss;
        } else if (sscanf(line, "Anonymous: %lu kB", &kb) == 1) {
            anon = (double)kb * 1024 / 1e6;
            s->anon_mb += anon;
            if (!dataset)
                s->other_mb += rss - anon;
        } else if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            /* A mapping's header: "start-end perms offset dev inode [path]". */
            size_t n = strcspn(line, "\n");
            line[n] = '\0';
            dataset = n >= 9 && strcmp(line + n - 9, "/data.mdb") == 0;
        }
    }
    fclose(f);
    return 0;
}

/* Every train sample through the reader (one epoch, B = 64, one worker), then every dev
 * impression; the datasets stay open so their maps are counted. */
static int worker_data_path(const BenchIo *b, Dataset *tr, Dataset *dv)
{
    Reader *rd = NULL;
    DatasetTxn *txn = NULL;
    ReaderOptions ro = {.batch_size = 64, .rank = 0, .world = 1, .seed = b->o.seed};
    int rc = reader_new(tr, &ro, &rd);
    const ReaderBatch *batch;
    while (!rc && !(rc = reader_next(rd, &batch)) && batch)
        ;
    reader_free(&rd);
    if (rc || (rc = dataset_txn_new(dv, &txn)))
        return rc;
    const uint64_t n = dataset_meta(dv)->impressions;
    for (uint64_t i = 0; !rc && i < n; i++) {
        ImpressionView iv;
        rc = dataset_get_impression(txn, i, &iv);
    }
    dataset_txn_free(&txn);
    return rc;
}

int bench_memory(BenchIo *b, BenchMemory *m)
{
    memset(m, 0, sizeof *m);
    Dataset *tr = NULL, *dv = NULL;
    Scorer *sc = NULL;
    LoadedModel lm = {0};
    Smaps before, after;
    struct stat st;
    int rc;
    char path[4400];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/data.mdb", i ? b->dev : b->train);
        if (stat(path, &st) == 0)
            m->dataset_bytes += (uint64_t)st.st_size;
    }
    /* The model is loaded first and is not the worker's data: it lives on the shards. */
    if ((rc = modelload_open(b->ckpt, &lm)))
        return rc;
    malloc_trim(0); /* freed blocks of earlier benches would hide new pages */
    if ((rc = smaps_read(&before)))
        goto out;
    if ((rc = dataset_open(b->train, &tr)) || (rc = dataset_open(b->dev, &dv)) ||
        (rc = worker_data_path(b, tr, dv)))
        goto out;
    PsClient ps;
    inproc_client_init(&ps, lm.shard);
    /* The scorer's (news_rows, H) matrix of the dev set: the one thing that scales with the
     * data (with its news, not its samples); allocated and touched as eval does. */
    if ((rc = scorer_new(&sc, &lm.dims, &ps, dataset_meta(dv)->news_rows, 256)))
        goto out;
    memset(scorer_news_vecs(sc), 0,
           (size_t)scorer_news_rows(sc) * (size_t)lm.dims.H * sizeof(float));
    if ((rc = smaps_read(&after)))
        goto out;
    m->eval_news_mb = (double)scorer_news_rows(sc) * lm.dims.H * sizeof(float) / 1e6;
    m->rss_mb = after.rss_mb;
    m->heap_mb = after.anon_mb - before.anon_mb;
    m->mapped_dataset_mb = after.dataset_mb;
    m->mapped_other_mb = after.other_mb;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    m->peak_rss_mb = (double)ru.ru_maxrss * 1024 / 1e6;
out:
    scorer_free(&sc);
    dataset_free(&tr);
    dataset_free(&dv);
    modelload_close(&lm);
    return rc;
}
