/* A full disk while writing a prep database or a checkpoint: a forked child runs the write
 * under a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored, so a write past it fails with
 * EFBIG as on a full disk), for a sweep of limits from "nothing fits" to "everything fits".
 * Each failing write must end in an error naming the path being written, and leave nothing
 * that looks valid: no dataset at the output path (and no scratch), or, for a checkpoint, the
 * previous step still the newest valid one and the new step not committed. */
#include "common/dataset.h"
#include "common/error.h"
#include "launch/ckptdir.h"
#include "launch/cut.h"
#include "launch/prep.h"
#include "launch/run.h"
#include "server/snapshot.h"
#include "testutil/testutil.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef int (*WriteFn)(void *ctx);

/* Run fn(ctx) in a child whose files may not grow past limit bytes. Returns fn's result as
 * 0 / 1 (error) and its psrec_errmsg() in msg, or -1 when the child died otherwise. */
static int run_limited(rlim_t limit, WriteFn fn, void *ctx, char *msg, size_t n)
{
    int fd[2];
    CU_ASSERT_FATAL(pipe(fd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {limit, limit};
        setrlimit(RLIMIT_FSIZE, &rl);
        psrec_errclear();
        int rc = fn(ctx);
        const char *m = rc ? psrec_errmsg() : "";
        if (write(fd[1], m, strlen(m)) < 0)
            _exit(3);
        _exit(rc ? 1 : 0);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < n && (r = read(fd[0], msg + got, n - 1 - got)) > 0)
        got += (size_t)r;
    msg[got] = '\0';
    close(fd[0]);
    int status;
    CU_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) > 1) {
        fprintf(stderr, "\n  child died: status 0x%x\n", status);
        return -1;
    }
    return WEXITSTATUS(status);
}

/* ---- prep ------------------------------------------------------------------------------- */

typedef struct PrepCase {
    char dir[4096], news[4200], beh[4200], out[4200];
} PrepCase;

static int do_prep(void *ctx)
{
    PrepCase *c = ctx;
    PrepOptions o = {.news_path = c->news, .behaviors_path = c->beh, .out_path = c->out,
                     .title_len = 12, .his_len = 10, .min_count = 1};
    return prep_run(&o, NULL);
}

/* Entries of dir besides the inputs. */
static int leftovers(const char *dir, const char *const *keep)
{
    DIR *d = opendir(dir);
    CU_ASSERT_FATAL(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int known = e->d_name[0] == '.';
        for (int i = 0; keep[i] && !known; i++)
            known = !strcmp(e->d_name, keep[i]);
        if (!known) {
            fprintf(stderr, "\n  left behind: %s\n", e->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

static void test_prep_disk_full(void)
{
    PrepCase c;
    snprintf(c.dir, sizeof c.dir, "%s", tu_mkdtemp("diskfull-prep"));
    snprintf(c.news, sizeof c.news, "%s/news.tsv", c.dir);
    snprintf(c.beh, sizeof c.beh, "%s/beh.tsv", c.dir);
    snprintf(c.out, sizeof c.out, "%s/train.db", c.dir);
    /* About 400 KB of LMDB: 3000 news, 3000 impressions. */
    FILE *f = fopen(c.news, "w");
    CU_ASSERT_FATAL(f != NULL);
    for (int i = 1; i <= 3000; i++)
        fprintf(f, "N%d\tcat%d\tsub\tword%d another%d title of news %d\tabs\thttp://x\t[]\t[]\n",
                i, i % 7, i % 500, i % 300, i);
    fclose(f);
    f = fopen(c.beh, "w");
    CU_ASSERT_FATAL(f != NULL);
    for (int i = 1; i <= 3000; i++)
        fprintf(f, "%d\tU%d\t11/11/2019 9:05:58 AM\tN%d N%d N%d\tN%d-1 N%d-0 N%d-0\n", i,
                i % 900, i % 3000 + 1, (i * 7) % 3000 + 1, (i * 13) % 3000 + 1,
                (i * 17) % 3000 + 1, (i * 19) % 3000 + 1, (i * 23) % 3000 + 1);
    fclose(f);
    static const char *const keep[] = {"news.tsv", "beh.tsv", NULL};
    int failed = 0, ok = 0;
    for (rlim_t limit = 0; limit <= (64u << 20) && !ok; limit = limit ? limit * 2 : 4096) {
        char msg[1024];
        int rc = run_limited(limit, do_prep, &c, msg, sizeof msg);
        CU_ASSERT(rc == 0 || rc == 1);
        if (rc == 1) {
            failed++;
            /* The path being written, and why. */
            CU_ASSERT(strstr(msg, c.out) != NULL);
            CU_ASSERT(strstr(msg, ": cannot write the dataset (is the disk full?): ") != NULL);
            struct stat st;
            CU_ASSERT(stat(c.out, &st) != 0);
            Dataset *ds = NULL;
            CU_ASSERT(dataset_open(c.out, &ds) != 0);
            dataset_free(&ds);
            CU_ASSERT(leftovers(c.dir, keep) == 0);
            if (failed == 1 || !strstr(msg, ": cannot write the dataset (is the disk full?): "))
                fprintf(stderr, "\n  limit %lu: %s\n", (unsigned long)limit, msg);
        } else if (rc == 0) {
            ok = 1;
            Dataset *ds = NULL;
            CU_ASSERT(dataset_open(c.out, &ds) == 0);
            dataset_free(&ds);
            fprintf(stderr, "\n  prep fits in %lu bytes per file; %d smaller limits failed "
                    "cleanly\n", (unsigned long)limit, failed);
        } else {
            break;
        }
    }
    CU_ASSERT(ok && failed >= 5);
    tu_rmtree(c.dir);
}

/* ---- checkpoint ----------------------------------------------------------------------- */

typedef struct CkptCase {
    CutWriter cw;
    Shard *shard;
    uint64_t step;
} CkptCase;

static int do_cut(void *ctx)
{
    CkptCase *c = ctx;
    CutImage *img = NULL;
    int rc = cut_image_new(1, &img);
    if (rc)
        return rc;
    img->shards = 1;
    const WorkerCut wc = {.pos = {.seed = 5, .world = 1}};
    size_t len;
    if (!(rc = workercut_encode(&wc, img->cuts, SNAP_CUT_MAX, &len))) {
        img->cut_len[0] = (uint32_t)len;
        img->step = img->finished[0] = c->step;
        if (!(rc = shard_snapshot(c->shard, &img->copy)))
            rc = cut_write(&c->cw, img);
    }
    cut_image_free(&img);
    return rc;
}

static void test_checkpoint_disk_full(void)
{
    char root[4096];
    snprintf(root, sizeof root, "%s", tu_mkdtemp("diskfull-ckpt"));
    RunMeta meta = {.version = RUNMETA_VERSION, .size = sizeof(RunMeta), .E = 16, .H = 16,
                    .title_len = 4, .his_len = 3, .K = 2, .optimizer = OPTIM_ADAM,
                    .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                    .vocab_rows = 3000, .category_rows = 10, .user_rows = 500, .seed = 5};
    ShardOptions so;
    run_meta_shard_options(&meta, &so);
    CkptCase c = {.step = 1};
    CU_ASSERT_FATAL(shard_new(&so, &c.shard) == 0);
    uint64_t keys[2000];
    float g[2000 * 16];
    for (int i = 0; i < 2000; i++)
        keys[i] = (uint64_t)i;
    for (int i = 0; i < 2000 * 16; i++)
        g[i] = 0.001f * (float)(i % 13);
    CU_ASSERT_FATAL(shard_push(c.shard, PARAM_WORD, keys, 2000, g) == 0);
    c.cw = (CutWriter){.meta = meta, .config_text = "# disk full\n",
                       .model_hash = cut_model_hash(&meta), .seed = 5, .keep = 10,
                       .committer = 1, .wait_timeout = 5.0};
    snprintf(c.cw.root, sizeof c.cw.root, "%s", root);
    CU_ASSERT_FATAL(do_cut(&c) == 0); /* step 1: the previous checkpoint */
    c.step = 2;
    int failed = 0, ok = 0;
    for (rlim_t limit = 0; limit <= (64u << 20) && !ok; limit = limit ? limit * 2 : 1024) {
        char msg[1024];
        int rc = run_limited(limit, do_cut, &c, msg, sizeof msg);
        CU_ASSERT(rc == 0 || rc == 1);
        uint64_t step = 0;
        char dir[4400];
        CU_ASSERT_FATAL(ckptdir_newest(root, &step, dir, sizeof dir) == 0);
        if (rc == 1) {
            failed++;
            CU_ASSERT(strstr(msg, root) != NULL); /* names the file */
            CU_ASSERT(step == 1 && !ckptdir_committed(root, 2));
            CU_ASSERT(ckptdir_verify(dir, NULL) == 0);
            if (failed == 1 || !strstr(msg, root))
                fprintf(stderr, "\n  limit %lu: %s\n", (unsigned long)limit, msg);
        } else if (rc == 0) {
            ok = 1;
            CU_ASSERT(step == 2 && ckptdir_verify(dir, NULL) == 0);
            fprintf(stderr, "\n  the cut fits in %lu bytes per file; %d smaller limits "
                    "failed cleanly\n", (unsigned long)limit, failed);
        } else {
            break;
        }
    }
    CU_ASSERT(ok && failed >= 5);
    shard_free(&c.shard);
    tu_rmtree(root);
}

int main(void)
{
    static const TuTest tests[] = {
        {"prep under a file-size limit: an error naming the path, no dataset",
         test_prep_disk_full},
        {"checkpoint under a file-size limit: the previous one stays the newest",
         test_checkpoint_disk_full},
        {NULL, NULL}};
    tu_add_suite("diskfull", tests);
    return tu_run_all();
}
