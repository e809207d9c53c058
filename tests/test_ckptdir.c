/* Checkpoint directories: commit + verify, each kind of damage detected and named (size, CRC,
 * no MANIFEST), fall back to the previous valid step with the skip logged, pruning that keeps
 * the newest N and always the just-committed one, the multi-writer
 * protocol (idempotent begin, failure notes, timeouts), a full disk leaving the previous
 * checkpoint valid, shard_clone bit for bit and independent, re-hashed loads into other
 * shard counts keeping every row (values, optimizer state, steps) exactly once, and `psrec
 * inspect` on fixtures and on the cuts of a real single-process run (stopping, periodic,
 * final, with and without a re-partition plan). */
#include "common/ckpt.h"
#include "common/error.h"
#include "common/keyrange.h"
#include "common/runmeta.h"
#include "launch/ckptdir.h"
#include "launch/cut.h"
#include "launch/run.h"
#include "server/shard.h"
#include "server/table.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[4096];

/* ------------------------------------------------------------------ fixtures */

static RunMeta small_meta(void)
{
    return (RunMeta){.E = 4, .H = 4, .title_len = 6, .his_len = 5, .K = 2,
                     .optimizer = OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f,
                     .eps = 1e-8f, .vocab_rows = 60, .category_rows = 6, .user_rows = 50,
                     .seed = 11, .shards = 1, .workers = 1};
}

/* A single shard holding every table with trained rows: some keys pushed once or more, some
 * only pulled (fresh state), so state and steps differ from row to row. */
static Shard *trained_shard(const RunMeta *m)
{
    ShardOptions so;
    run_meta_shard_options(m, &so);
    Shard *s;
    CU_ASSERT_FATAL(shard_new(&so, &s) == 0);
    float buf[4096];
    for (uint32_t t = 0; t < PARAM_TABLES; t++) {
        uint32_t w = shard_table_width(s, t);
        uint64_t rows = shard_table_rows(s, t);
        for (uint64_t k = 0; k < rows; k += 1 + (k % 3)) {
            for (uint32_t i = 0; i < w; i++)
                buf[i] = 0.01f * (float)((k * 7 + i + t) % 13) - 0.06f;
            CU_ASSERT_FATAL(shard_push(s, t, &k, 1, buf) == 0);
            if (k % 2 == 0)
                CU_ASSERT_FATAL(shard_push(s, t, &k, 1, buf) == 0);
            uint64_t pulled = (k * 5 + 3) % rows;
            CU_ASSERT_FATAL(shard_pull(s, t, &pulled, 1, buf) == 0);
        }
    }
    return s;
}

static void step_dir(char *out, size_t n, uint64_t step)
{
    snprintf(out, n, "%s/step-%010llu", root, (unsigned long long)step);
}

static void save_step(const Shard *s, uint64_t step, int keep)
{
    RunMeta m = small_meta();
    m.step = step;
    const uint64_t job = step * 3;
    const CkptdirSection sec = {"test.job", &job, sizeof job};
    CU_ASSERT_FATAL(ckptdir_save(root, &m, s, &sec, 1, keep) == 0);
}

/* Does <root>/step-<step><suffix> exist? */
static int exists(uint64_t step, const char *suffix)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/step-%010llu%s", root, (unsigned long long)step, suffix);
    return access(p, F_OK) == 0;
}

/* Flip one byte of a file at offset (from the end when negative). */
static void flip_byte(const char *path, long offset)
{
    FILE *f = fopen(path, "r+b");
    CU_ASSERT_FATAL(f != NULL);
    fseek(f, offset, offset < 0 ? SEEK_END : SEEK_SET);
    int c = fgetc(f);
    fseek(f, -1, SEEK_CUR);
    fputc(c ^ 0x01, f);
    fclose(f);
}

/* Run fn with stderr captured; returns the text (caller frees). */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/stderr.txt", root);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *text = tu_read_file(path, NULL);
    unlink(path);
    return text ? text : strdup("");
}

/* Every row of a shard, read back from what shard_save writes: per table, per key: present,
 * row floats (params + optimizer state) and step count. */
typedef struct RowSet {
    uint32_t width[PARAM_TABLES], row_floats[PARAM_TABLES];
    uint64_t rows[PARAM_TABLES];
    unsigned char *seen[PARAM_TABLES];
    float *data[PARAM_TABLES];
    uint32_t *steps[PARAM_TABLES];
    uint64_t total;
} RowSet;

static void rowset_init(RowSet *rs, const RunMeta *m)
{
    memset(rs, 0, sizeof *rs);
    ParamShape shape = {.E = m->E, .H = m->H, .vocab_rows = m->vocab_rows,
                        .category_rows = m->category_rows, .user_rows = m->user_rows};
    TableSpec specs[PARAM_TABLES];
    params_specs(&shape, specs);
    for (int t = 0; t < PARAM_TABLES; t++) {
        rs->width[t] = specs[t].width;
        rs->row_floats[t] = specs[t].width * 3; /* Adam: param, m, v */
        rs->rows[t] = specs[t].rows;
        rs->seen[t] = calloc(specs[t].rows, 1);
        rs->data[t] = calloc(specs[t].rows * rs->row_floats[t], sizeof(float));
        rs->steps[t] = calloc(specs[t].rows, sizeof(uint32_t));
    }
}

static void rowset_fini(RowSet *rs)
{
    for (int t = 0; t < PARAM_TABLES; t++) {
        free(rs->seen[t]);
        free(rs->data[t]);
        free(rs->steps[t]);
    }
}

/* Add the rows of shard s; each must be owned by `shard` of `shards` and new to rs. */
static void rowset_add(RowSet *rs, const Shard *s, uint32_t shard, uint32_t shards)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/rowset.ckpt", root);
    CkptWriter *w;
    CU_ASSERT_FATAL(ckpt_writer_new(path, &w) == 0);
    CU_ASSERT_FATAL(shard_save(s, w) == 0);
    CU_ASSERT_FATAL(ckpt_writer_finish(&w) == 0);
    CkptReader *r;
    CU_ASSERT_FATAL(ckpt_reader_open(path, &r) == 0);
    ParamShape shape = {.E = 4, .H = 4, .vocab_rows = 60, .category_rows = 6, .user_rows = 50};
    TableSpec specs[PARAM_TABLES];
    params_specs(&shape, specs);
    for (uint32_t t = 0; t < PARAM_TABLES; t++) {
        char name[CKPT_NAME_MAX];
        const void *kp, *dp, *sp;
        size_t kn, dn, sn;
        snprintf(name, sizeof name, "%s.keys", specs[t].name);
        CU_ASSERT_FATAL(ckpt_section(r, name, &kp, &kn) == 0);
        snprintf(name, sizeof name, "%s.data", specs[t].name);
        CU_ASSERT_FATAL(ckpt_section(r, name, &dp, &dn) == 0);
        snprintf(name, sizeof name, "%s.steps", specs[t].name);
        CU_ASSERT_FATAL(ckpt_section(r, name, &sp, &sn) == 0);
        size_t n = kn / sizeof(uint64_t), rf = rs->row_floats[t];
        CU_ASSERT_FATAL(dn == n * rf * sizeof(float) && sn == n * sizeof(uint32_t));
        const uint64_t *keys = kp;
        for (size_t i = 0; i < n; i++) {
            uint64_t k = keys[i];
            CU_ASSERT_FATAL(k < rs->rows[t]);
            CU_ASSERT(keyrange_owner(t, k, shards) == shard);
            CU_ASSERT(!rs->seen[t][k]);
            rs->seen[t][k] = 1;
            memcpy(rs->data[t] + k * rf, (const float *)dp + i * rf, rf * sizeof(float));
            rs->steps[t][k] = ((const uint32_t *)sp)[i];
            rs->total++;
        }
    }
    ckpt_reader_free(&r);
    unlink(path);
}

static int rowset_equal(const RowSet *a, const RowSet *b)
{
    if (a->total != b->total)
        return 0;
    for (int t = 0; t < PARAM_TABLES; t++)
        if (memcmp(a->seen[t], b->seen[t], a->rows[t]) ||
            memcmp(a->data[t], b->data[t], a->rows[t] * a->row_floats[t] * sizeof(float)) ||
            memcmp(a->steps[t], b->steps[t], a->rows[t] * sizeof(uint32_t)))
            return 0;
    return 1;
}

static char parent[4000];

/* A new empty tree for each test; the previous test's is removed. */
static void fresh_root(void)
{
    if (parent[0])
        tu_rmtree(parent);
    snprintf(parent, sizeof parent, "%s", tu_mkdtemp("ckptdir"));
    snprintf(root, sizeof root, "%s/ckpt", parent);
}

/* ------------------------------------------------------------------ tests */

static void test_commit_and_verify(void)
{
    fresh_root();
    RunMeta m = small_meta();
    Shard *s = trained_shard(&m);
    save_step(s, 7, 3);
    char dir[4200];
    step_dir(dir, sizeof dir, 7);
    CkptManifest man;
    CU_ASSERT_FATAL(ckptdir_verify(dir, &man) == 0);
    CU_ASSERT(man.step == 7 && man.version == CKPTDIR_MANIFEST_VERSION && man.nfiles == 2);
    CU_ASSERT(!strcmp(man.files[0].name, "shard-0.ckpt") && !strcmp(man.files[1].name, "job.ckpt"));
    /* The listed size and CRC are the file's. */
    char p[4400];
    snprintf(p, sizeof p, "%s/shard-0.ckpt", dir);
    size_t len;
    char *bytes = tu_read_file(p, &len);
    CU_ASSERT_FATAL(bytes != NULL);
    CU_ASSERT(man.files[0].size == len && man.files[0].crc == ckpt_crc32(0, bytes, len));
    free(bytes);
    ckptdir_manifest_fini(&man);
    CU_ASSERT(!exists(7, ".tmp"));
    snprintf(p, sizeof p, "%s/LATEST", root);
    char *latest = tu_read_file(p, NULL);
    CU_ASSERT(latest && !strcmp(latest, "step-0000000007\n"));
    free(latest);
    /* resolve: the root and the step dir both name it; the model loads back. */
    char got[4400];
    CU_ASSERT(ckptdir_resolve(root, got, sizeof got) == 0 && !strcmp(got, dir));
    CU_ASSERT(ckptdir_resolve(dir, got, sizeof got) == 0 && !strcmp(got, dir));
    uint64_t step = 0;
    CU_ASSERT(ckptdir_newest(root, &step, got, sizeof got) == 0 && step == 7);
    /* job.ckpt holds run.meta and the caller's section. */
    snprintf(p, sizeof p, "%s/job.ckpt", dir);
    CkptReader *r;
    CU_ASSERT_FATAL(ckpt_reader_open(p, &r) == 0);
    const void *d;
    size_t n;
    CU_ASSERT(ckpt_section(r, "test.job", &d, &n) == 0 && n == 8 && *(const uint64_t *)d == 21);
    CU_ASSERT(ckpt_section(r, "run.meta", &d, &n) == 0);
    ckpt_reader_free(&r);
    shard_free(&s);
}

static void expect_invalid(const char *dir, int code, const char *want1, const char *want2)
{
    int rc = ckptdir_verify(dir, NULL);
    CU_ASSERT(rc == code);
    CU_ASSERT(strstr(psrec_errmsg(), want1) != NULL);
    CU_ASSERT(strstr(psrec_errmsg(), want2) != NULL);
    if (rc != code || !strstr(psrec_errmsg(), want1) || !strstr(psrec_errmsg(), want2))
        fprintf(stderr, "got %d: %s\n", rc, psrec_errmsg());
}

static void test_damage_detected(void)
{
    fresh_root();
    RunMeta m = small_meta();
    Shard *s = trained_shard(&m);
    char dir[4200], p[4400];
    struct stat st;
    /* Truncated shard file: the size check names it. */
    save_step(s, 1, 10);
    step_dir(dir, sizeof dir, 1);
    snprintf(p, sizeof p, "%s/shard-0.ckpt", dir);
    CU_ASSERT_FATAL(stat(p, &st) == 0);
    CU_ASSERT_FATAL(truncate(p, st.st_size - 16) == 0);
    expect_invalid(dir, PSREC_E_FORMAT, "shard-0.ckpt: size", "truncated");
    /* One flipped byte, size unchanged: the CRC check names the file. */
    save_step(s, 2, 10);
    step_dir(dir, sizeof dir, 2);
    snprintf(p, sizeof p, "%s/job.ckpt", dir);
    flip_byte(p, -3);
    expect_invalid(dir, PSREC_E_FORMAT, "job.ckpt: CRC", "damaged");
    /* No MANIFEST: not a checkpoint at all. */
    save_step(s, 3, 10);
    step_dir(dir, sizeof dir, 3);
    snprintf(p, sizeof p, "%s/MANIFEST", dir);
    CU_ASSERT_FATAL(unlink(p) == 0);
    expect_invalid(dir, PSREC_E_NOTFOUND, "no MANIFEST", "step-0000000003");
    /* A damaged MANIFEST (one digit of a size changed) fails its own CRC. */
    save_step(s, 4, 10);
    step_dir(dir, sizeof dir, 4);
    snprintf(p, sizeof p, "%s/MANIFEST", dir);
    char *text = tu_read_file(p, NULL);
    CU_ASSERT_FATAL(text != NULL);
    char *sp = strstr(text, "shard-0.ckpt ") + strlen("shard-0.ckpt ");
    *sp = *sp == '9' ? '8' : (char)(*sp + 1);
    CU_ASSERT_FATAL(tu_write_file(p, text) == 0);
    free(text);
    expect_invalid(dir, PSREC_E_FORMAT, "MANIFEST CRC mismatch", "step-0000000004");
    /* A missing listed file. */
    save_step(s, 5, 10);
    step_dir(dir, sizeof dir, 5);
    snprintf(p, sizeof p, "%s/job.ckpt", dir);
    CU_ASSERT_FATAL(unlink(p) == 0);
    expect_invalid(dir, PSREC_E_FORMAT, "job.ckpt: missing", "step-0000000005");
    /* resolve refuses a named invalid step dir. */
    char got[4400];
    CU_ASSERT(ckptdir_resolve(dir, got, sizeof got) != 0);
    shard_free(&s);
}

typedef struct ResolveCall {
    int rc;
    char dir[4200];
} ResolveCall;

static void call_resolve(void *arg)
{
    ResolveCall *c = arg;
    c->rc = ckptdir_resolve(root, c->dir, sizeof c->dir);
}

static void test_resolve_falls_back(void)
{
    fresh_root();
    RunMeta m = small_meta();
    Shard *s = trained_shard(&m);
    save_step(s, 10, 5);
    save_step(s, 20, 5);
    save_step(s, 30, 5);
    char dir[4200], p[4400];
    step_dir(dir, sizeof dir, 30);
    snprintf(p, sizeof p, "%s/shard-0.ckpt", dir);
    flip_byte(p, 5000);
    step_dir(dir, sizeof dir, 20);
    snprintf(p, sizeof p, "%s/MANIFEST", dir);
    CU_ASSERT_FATAL(unlink(p) == 0);
    ResolveCall c;
    char *log = capture_stderr(call_resolve, &c);
    step_dir(dir, sizeof dir, 10);
    CU_ASSERT(c.rc == 0 && !strcmp(c.dir, dir));
    /* Each skipped one is logged by name with its reason. */
    CU_ASSERT(strstr(log, "step-0000000030 skipped") && strstr(log, "shard-0.ckpt: CRC"));
    CU_ASSERT(strstr(log, "step-0000000020 skipped") && strstr(log, "no MANIFEST"));
    if (!strstr(log, "step-0000000030 skipped"))
        fprintf(stderr, "log: %s\n", log);
    free(log);
    /* LATEST (naming step 30) is not trusted. */
    snprintf(p, sizeof p, "%s/LATEST", root);
    char *latest = tu_read_file(p, NULL);
    CU_ASSERT(latest && strstr(latest, "step-0000000030"));
    free(latest);
    /* Nothing valid: NOTFOUND, saying how many were skipped. */
    step_dir(dir, sizeof dir, 10);
    snprintf(p, sizeof p, "%s/job.ckpt", dir);
    CU_ASSERT_FATAL(truncate(p, 10) == 0);
    log = capture_stderr(call_resolve, &c);
    free(log);
    CU_ASSERT(c.rc == PSREC_E_NOTFOUND && strstr(psrec_errmsg(), "3 damaged or incomplete"));
    /* An empty dir is not a checkpoint root. */
    char empty[4400];
    snprintf(empty, sizeof empty, "%s/empty", root);
    CU_ASSERT_FATAL(mkdir(empty, 0755) == 0);
    CU_ASSERT(ckptdir_resolve(empty, dir, sizeof dir) == PSREC_E_NOTFOUND &&
              strstr(psrec_errmsg(), "no checkpoint here"));
    shard_free(&s);
}

static void test_prune(void)
{
    fresh_root();
    RunMeta m = small_meta();
    Shard *s = trained_shard(&m);
    /* Ordinary run: keep 2 newest. */
    save_step(s, 1, 2);
    save_step(s, 2, 2);
    save_step(s, 3, 2);
    CU_ASSERT(!exists(1, ""));
    CU_ASSERT(exists(2, "") && exists(3, ""));
    /* An earlier life left higher steps; a new life commits step 3 again with keep 2: the
     * committed one replaces the old step 3 and survives, with the newest other one. */
    save_step(s, 300, 10);
    save_step(s, 200, 10);
    char scratch[4400];
    snprintf(scratch, sizeof scratch, "%s/step-%010llu.tmp", root, 400ULL);
    CU_ASSERT_FATAL(mkdir(scratch, 0755) == 0); /* a newer one being written */
    snprintf(scratch, sizeof scratch, "%s/step-%010llu.tmp", root, 0ULL);
    CU_ASSERT_FATAL(mkdir(scratch, 0755) == 0); /* an older one abandoned */
    RunMeta m3 = small_meta();
    m3.step = 3;
    m3.epoch = 42; /* tells the new step 3 from the old one */
    CU_ASSERT_FATAL(ckptdir_save(root, &m3, s, NULL, 0, 2) == 0);
    CU_ASSERT(exists(3, ""));
    CU_ASSERT(exists(300, ""));
    CU_ASSERT(!exists(200, "") && !exists(2, ""));
    CU_ASSERT(exists(400, ".tmp"));
    CU_ASSERT(!exists(0, ".tmp"));
    CU_ASSERT(!exists(3, ".replaced"));
    char dir[4200];
    step_dir(dir, sizeof dir, 3);
    CU_ASSERT(ckptdir_verify(dir, NULL) == 0);
    RunMeta back;
    Shard *loaded;
    CU_ASSERT_FATAL(ckptdir_load_model(dir, 1, &back, &loaded) == 0);
    CU_ASSERT(back.epoch == 42);
    shard_free(&loaded);
    /* keep 1 keeps only the committed one. */
    save_step(s, 5, 1);
    CU_ASSERT(exists(5, "") && !exists(3, "") &&
              !exists(300, ""));
    shard_free(&s);
}

static void test_multi_writer(void)
{
    fresh_root();
    RunMeta m = small_meta();
    Shard *s = trained_shard(&m);
    char tmp[4400], tmp2[4400];
    CU_ASSERT_FATAL(ckptdir_begin(root, 9, tmp, sizeof tmp) == 0);
    m.step = 9;
    m.shards = 2;
    m.shard = 1;
    CU_ASSERT_FATAL(ckptdir_write_shard(tmp, &m, s) == 0);
    /* A second writer's begin keeps what the first wrote. */
    CU_ASSERT_FATAL(ckptdir_begin(root, 9, tmp2, sizeof tmp2) == 0);
    CU_ASSERT(!strcmp(tmp, tmp2));
    const char *files[] = {"shard-0.ckpt", "shard-1.ckpt"};
    CU_ASSERT(ckptdir_wait_files(tmp, files + 1, 1, 1.0) == 0);
    /* Missing: a timeout naming it. */
    CU_ASSERT(ckptdir_wait_files(tmp, files, 2, 0.05) == ETIMEDOUT);
    CU_ASSERT(strstr(psrec_errmsg(), "shard-0.ckpt") != NULL);
    /* A failure note ends the wait at once, quoting the reason. */
    CU_ASSERT_FATAL(ckptdir_mark_failed(tmp, "shard-0.ckpt", "No space left on device") == 0);
    CU_ASSERT(ckptdir_wait_files(tmp, files, 2, 30.0) == PSREC_E_STATE);
    CU_ASSERT(strstr(psrec_errmsg(), "shard-0.ckpt failed: No space left on device") != NULL);
    /* The committer refuses a file that is not there, and publishes nothing. */
    CU_ASSERT(ckptdir_commit(root, 9, files, 2, 3) != 0);
    CU_ASSERT(!exists(9, ""));
    ckptdir_abandon(tmp);
    CU_ASSERT(!exists(9, ".tmp"));
    /* All written: committed, and verifies. */
    CU_ASSERT_FATAL(ckptdir_begin(root, 9, tmp, sizeof tmp) == 0);
    for (uint32_t k = 0; k < 2; k++) {
        m.shard = k;
        CU_ASSERT_FATAL(ckptdir_write_shard(tmp, &m, s) == 0);
    }
    CU_ASSERT_FATAL(ckptdir_write_job(tmp, &m, NULL, 0) == 0);
    const char *all[] = {"shard-0.ckpt", "shard-1.ckpt", "job.ckpt"};
    CU_ASSERT(ckptdir_wait_files(tmp, all, 3, 1.0) == 0);
    CU_ASSERT_FATAL(ckptdir_commit(root, 9, all, 3, 3) == 0);
    char dir[4200];
    step_dir(dir, sizeof dir, 9);
    CkptManifest man;
    CU_ASSERT(ckptdir_verify(dir, &man) == 0 && man.nfiles == 3);
    ckptdir_manifest_fini(&man);
    shard_free(&s);
}

static void test_full_disk(void)
{
    fresh_root();
    RunMeta m = small_meta();
    Shard *s = trained_shard(&m);
    save_step(s, 10, 3);
    setenv("PSREC_TEST_CKPT_FAIL_AFTER_BYTES", "2000", 1);
    m.step = 20;
    int rc = ckptdir_save(root, &m, s, NULL, 0, 3);
    unsetenv("PSREC_TEST_CKPT_FAIL_AFTER_BYTES");
    CU_ASSERT(rc == ENOSPC);
    CU_ASSERT(strstr(psrec_errmsg(), "shard-0.ckpt") != NULL);
    CU_ASSERT(!exists(20, "") && !exists(20, ".tmp"));
    uint64_t step = 0;
    char dir[4200];
    CU_ASSERT(ckptdir_newest(root, &step, dir, sizeof dir) == 0 && step == 10);
    shard_free(&s);
}

/* shard_clone and shard_snapshot: bit for bit (values, moments, steps, slot order, stats),
 * and independent of the original in both directions. */
static void test_clone(void)
{
    fresh_root();
    CU_ASSERT_FATAL(mkdir(root, 0755) == 0);
    RunMeta m = small_meta();
    Shard *s = trained_shard(&m), *c;
    CU_ASSERT_FATAL(shard_clone(s, &c) == 0);
    RowSet a, b, a2;
    rowset_init(&a, &m);
    rowset_init(&b, &m);
    rowset_add(&a, s, 0, 1);
    rowset_add(&b, c, 0, 1);
    CU_ASSERT(a.total > 100 && rowset_equal(&a, &b));
    ShardStats sa, sb;
    shard_stats(s, &sa);
    shard_stats(c, &sb);
    CU_ASSERT(!memcmp(&sa, &sb, sizeof sa));
    /* Independent: training the original leaves the copy as it was, and the other way. */
    float g[64];
    for (int i = 0; i < 64; i++)
        g[i] = 0.5f;
    uint64_t key = 3, fresh_key = 59; /* word 59 was never touched */
    CU_ASSERT_FATAL(shard_push(s, PARAM_WORD, &key, 1, g) == 0);
    CU_ASSERT_FATAL(shard_push(s, PARAM_NEWS_WHH, &key, 1, g) == 0);
    CU_ASSERT_FATAL(shard_push(s, PARAM_WORD, &fresh_key, 1, g) == 0);
    RowSet b2;
    rowset_init(&b2, &m);
    rowset_add(&b2, c, 0, 1);
    CU_ASSERT(rowset_equal(&b, &b2));
    CU_ASSERT_FATAL(shard_push(c, PARAM_CAT, &key, 1, g) == 0);
    rowset_init(&a2, &m);
    rowset_add(&a2, s, 0, 1);
    CU_ASSERT(!rowset_equal(&a, &a2));
    CU_ASSERT(a2.seen[PARAM_WORD][59] && !b2.seen[PARAM_WORD][59]);
    float orig[4], copy[4];
    uint64_t k3 = 3;
    CU_ASSERT(shard_pull(s, PARAM_CAT, &k3, 1, orig) == 0);
    CU_ASSERT(shard_pull(c, PARAM_CAT, &k3, 1, copy) == 0);
    CU_ASSERT(memcmp(orig, copy, sizeof orig) != 0);
    /* A snapshot into the earlier copy (memory reused) equals the original as it is now. */
    Shard *kept = c;
    CU_ASSERT_FATAL(shard_snapshot(s, &c) == 0);
    CU_ASSERT(c == kept);
    RowSet c2;
    rowset_init(&c2, &m);
    rowset_add(&c2, c, 0, 1);
    CU_ASSERT(rowset_equal(&c2, &a2));
    rowset_fini(&c2);
    /* And into a copy of an empty shard (every block too small, no key index yet). */
    ShardOptions so;
    run_meta_shard_options(&m, &so);
    Shard *empty, *snap = NULL;
    CU_ASSERT_FATAL(shard_new(&so, &empty) == 0);
    CU_ASSERT_FATAL(shard_snapshot(empty, &snap) == 0);
    CU_ASSERT_FATAL(shard_snapshot(s, &snap) == 0);
    rowset_init(&c2, &m);
    rowset_add(&c2, snap, 0, 1);
    CU_ASSERT(rowset_equal(&c2, &a2));
    rowset_fini(&c2);
    /* The snapshot still works as a shard: a row it never had is created on pull. */
    CU_ASSERT(shard_pull(snap, PARAM_USER, &fresh_key, 1, orig) == PSREC_E_RANGE);
    uint64_t user_key = 49;
    CU_ASSERT(shard_pull(snap, PARAM_USER, &user_key, 1, orig) == 0);
    shard_free(&snap);
    shard_free(&empty);
    rowset_fini(&a);
    rowset_fini(&b);
    rowset_fini(&a2);
    rowset_fini(&b2);
    shard_free(&c);
    shard_free(&s);
}

/* table_snapshot into a copy taken when the table was small: the blocks grow to fit, and
 * every row (value, state, step) matches. */
static void test_table_snapshot_grows(void)
{
    const TableSpec spec = {.id = PARAM_USER, .name = "user", .width = 8, .rows = 1u << 20,
                            .init = TABLE_INIT_NORMAL, .scale = 0.1f};
    const OptimConfig adam = {.kind = OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f,
                              .eps = 1e-8f};
    Table *t, *snap = NULL;
    CU_ASSERT_FATAL(table_new(&spec, &adam, 5, &t) == 0);
    float g[8] = {0.1f, -0.2f, 0.3f, 0.f, 1.f, 2.f, -1.f, 0.5f};
    uint64_t k = 7;
    CU_ASSERT_FATAL(table_push(t, &k, 1, g) == 0);
    CU_ASSERT_FATAL(table_snapshot(t, &snap) == 0);
    for (k = 0; k < 5000; k += 1 + k % 2)
        CU_ASSERT_FATAL(table_push(t, &k, 1, g) == 0);
    Table *kept = snap;
    CU_ASSERT_FATAL(table_snapshot(t, &snap) == 0);
    CU_ASSERT(snap == kept && table_rows_held(snap) == table_rows_held(t));
    int same = 1;
    for (k = 0; k < 5000; k++) {
        float *p1, *s1, *p2, *s2;
        uint32_t *n1, *n2;
        int r1 = table_row(t, k, &p1, &s1, &n1), r2 = table_row(snap, k, &p2, &s2, &n2);
        if (r1 != r2 || (!r1 && (memcmp(p1, p2, 8 * sizeof *p1) || memcmp(s1, s2, 16 * sizeof *s1) ||
                                 *n1 != *n2)))
            same = 0;
    }
    CU_ASSERT(same);
    table_free(&snap);
    table_free(&t);
}

/* Load every shard of step dir into `shards` shards; their union must equal want, each row
 * held by its owner only. */
static void check_rehash(const char *dir, uint32_t shards, int lazy, const RowSet *want)
{
    RowSet got;
    RunMeta m0 = small_meta();
    rowset_init(&got, &m0);
    for (uint32_t k = 0; k < shards; k++) {
        RunMeta meta;
        Shard *sk = NULL;
        CU_ASSERT_FATAL(ckptdir_load_shard(dir, k, shards, lazy, &meta, &sk) == 0);
        CU_ASSERT(meta.E == 4 && meta.vocab_rows == 60);
        rowset_add(&got, sk, k, shards);
        shard_free(&sk);
    }
    CU_ASSERT(rowset_equal(&got, want));
    rowset_fini(&got);
}

static void test_rehash_load(void)
{
    fresh_root();
    RunMeta m = small_meta();
    Shard *s = trained_shard(&m);
    save_step(s, 4, 3);
    RowSet want;
    rowset_init(&want, &m);
    rowset_add(&want, s, 0, 1);
    char dir[4200];
    step_dir(dir, sizeof dir, 4);
    /* 1 -> 2 and 1 -> 3 shards (lazy dense: a shard holds only its own dense rows). */
    check_rehash(dir, 2, 1, &want);
    check_rehash(dir, 3, 1, &want);
    /* 2 shards -> 1: write a 2-shard checkpoint from the 2-shard load, read it into one. */
    char tmp[4400];
    CU_ASSERT_FATAL(ckptdir_begin(root, 8, tmp, sizeof tmp) == 0);
    for (uint32_t k = 0; k < 2; k++) {
        RunMeta meta;
        Shard *sk;
        CU_ASSERT_FATAL(ckptdir_load_shard(dir, k, 2, 1, &meta, &sk) == 0);
        meta.step = 8;
        meta.shards = 2;
        meta.shard = k;
        CU_ASSERT_FATAL(ckptdir_write_shard(tmp, &meta, sk) == 0);
        shard_free(&sk);
    }
    const char *files[] = {"shard-0.ckpt", "shard-1.ckpt"};
    CU_ASSERT_FATAL(ckptdir_commit(root, 8, files, 2, 3) == 0);
    step_dir(dir, sizeof dir, 8);
    CU_ASSERT_FATAL(ckptdir_verify(dir, NULL) == 0);
    check_rehash(dir, 1, 0, &want);
    check_rehash(dir, 3, 1, &want);
    /* And eval's loader sees the whole model. */
    RunMeta meta;
    Shard *all;
    CU_ASSERT_FATAL(ckptdir_load_model(dir, 0, &meta, &all) == 0);
    CU_ASSERT(meta.shards == 2 && meta.step == 8);
    RowSet got;
    rowset_init(&got, &m);
    rowset_add(&got, all, 0, 1);
    CU_ASSERT(rowset_equal(&got, &want));
    rowset_fini(&got);
    shard_free(&all);
    CU_ASSERT(ckptdir_load_shard(dir, 2, 2, 1, &meta, &all) == PSREC_E_RANGE && all == NULL);
    rowset_fini(&want);
    shard_free(&s);
}

/* The binary: inspect verifies and reports; a damaged step dir exits 1 naming the file. */
static void test_inspect(void)
{
    fresh_root();
    RunMeta m = small_meta();
    Shard *s = trained_shard(&m);
    save_step(s, 5, 3);
    save_step(s, 6, 3);
    ShardStats st;
    shard_stats(s, &st);
    char *out = NULL, dir[4200], p[4400];
    int rc = tu_run(&out, "%s inspect --json %s", TU_PSREC, root);
    CU_ASSERT(rc == 0);
    double v;
    CU_ASSERT(tu_json_number(out, "step", &v) && v == 6);
    CU_ASSERT(tu_json_number(out, "shards", &v) && v == 1);
    CU_ASSERT(tu_json_number(out, "workers", &v) && v == 1);
    CU_ASSERT(strstr(out, "\"optimizer\":\"adam\"") != NULL);
    CU_ASSERT(strstr(out, "\"name\":\"shard-0.ckpt\"") && strstr(out, "\"name\":\"job.ckpt\""));
    CU_ASSERT(strstr(out, "\"name\":\"test.job\",\"size\":8") != NULL);
    CU_ASSERT(strstr(out, "\"cut\":null") != NULL); /* a job.ckpt without job.meta */
    /* Rows held per table add up to what the shard holds. */
    double sum = 0;
    const char *q = out;
    while ((q = strstr(q, "\"rows_held\":"))) {
        q += strlen("\"rows_held\":");
        sum += strtod(q, NULL);
    }
    CU_ASSERT(sum == (double)st.rows_held);
    if (rc || sum != (double)st.rows_held)
        fprintf(stderr, "inspect: %s\n", out);
    free(out);
    /* Damage the newest: the root falls back to step 5 (and says so); the step dir fails. */
    step_dir(dir, sizeof dir, 6);
    snprintf(p, sizeof p, "%s/shard-0.ckpt", dir);
    flip_byte(p, 3000);
    rc = tu_run(&out, "%s inspect %s", TU_PSREC, root);
    CU_ASSERT(rc == 0 && strstr(out, "step-0000000006 skipped") && strstr(out, "step-0000000005"));
    free(out);
    rc = tu_run(&out, "%s inspect %s", TU_PSREC, dir);
    CU_ASSERT(rc == 1 && strstr(out, "not a valid checkpoint") && strstr(out, "shard-0.ckpt: CRC"));
    if (rc != 1)
        fprintf(stderr, "inspect: %s\n", out);
    free(out);
    shard_free(&s);
}

/* A cut's job.meta that does not decode, or speaks of another step than the shard files,
 * makes the step dir invalid for inspect, as for resume, though every file matches the
 * MANIFEST. */
static void test_inspect_bad_cut(void)
{
    fresh_root();
    RunMeta m = small_meta();
    m.step = 4;
    Shard *s = trained_shard(&m);
    const uint64_t junk = 4;
    const CkptdirSection sec = {"job.meta", &junk, sizeof junk};
    CU_ASSERT_FATAL(ckptdir_save(root, &m, s, &sec, 1, 3) == 0);
    char *out = NULL;
    int rc = tu_run(&out, "%s inspect --json %s", TU_PSREC, root);
    CU_ASSERT(rc == 1 && strstr(out, "not a valid checkpoint") && strstr(out, "job.meta is 8"));
    if (rc != 1)
        fprintf(stderr, "inspect: %s\n", out);
    free(out);
    /* A well-formed job.meta of another step than the shard files'. */
    m.step = 5;
    JobCutMeta jm = {.version = JOBCUT_VERSION, .size = sizeof jm, .step = 6, .workers = 1,
                     .shards = 1};
    const CkptdirSection sec2 = {"job.meta", &jm, sizeof jm};
    CU_ASSERT_FATAL(ckptdir_save(root, &m, s, &sec2, 1, 3) == 0);
    rc = tu_run(&out, "%s inspect --json %s", TU_PSREC, root);
    CU_ASSERT(rc == 1 && strstr(out, "step 6 (shard files say 5)"));
    if (rc != 1)
        fprintf(stderr, "inspect: %s\n", out);
    free(out);
    shard_free(&s);
}

/* The number after "key": in the object that starts at the first `"obj":{` of json (or -1). */
static double json_in(const char *json, const char *obj, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":{", obj);
    const char *at = strstr(json, pat);
    double v = -1;
    if (!at || !tu_json_number(at, key, &v))
        return -1;
    return v;
}

/* `psrec inspect --json DIR` of a real run; the caller frees. Exit code in *rc. */
static char *inspect_json(const char *dir, int *rc)
{
    char *out = NULL;
    *rc = tu_run(&out, "%s inspect --json %s 2>/dev/null", TU_PSREC, dir);
    return out;
}

/* The cut of a real single-process run: a stopping cut, a periodic one, a cut while a
 * re-partition plan is in effect (resumed with the other partition mode), the final one. */
static void test_inspect_real_cut(void)
{
    fresh_root();
    char *out = NULL, dir[4200], ckpt[4400], file[4600];
    snprintf(dir, sizeof dir, "%s", parent);
    CU_ASSERT_FATAL(tu_small_experiment(dir, 1, "[checkpoint]\nevery_steps = 100\n") == 0);
    snprintf(ckpt, sizeof ckpt, "%s/run/ckpt", dir);
    int rc = tu_run(&out, "%s inspect --json %s/train.db", TU_PSREC, dir);
    double n = 0, v;
    CU_ASSERT_FATAL(rc == 0 && tu_json_number(out, "samples", &n) && n > 0);
    free(out);
    const double B = 32;

    /* Life 1: preempted after step 150 (a stopping cut; step 100 was periodic). */
    rc = tu_run(&out, "PSREC_TEST_STOP_AT_STEP=150 %s train %s/exp.conf", TU_PSREC, dir);
    CU_ASSERT_FATAL(rc == 75);
    free(out);
    out = inspect_json(ckpt, &rc);
    CU_ASSERT(rc == 0);
    CU_ASSERT(json_in(out, "cut", "step") == 150);
    CU_ASSERT(json_in(out, "cut", "epoch") == 0);
    CU_ASSERT(json_in(out, "cut", "samples") == 150 * B);
    CU_ASSERT(json_in(out, "cut", "wall_s") > 0);
    CU_ASSERT(json_in(out, "cut", "seed") == 1);
    CU_ASSERT(json_in(out, "cut", "shards") == 1);
    CU_ASSERT(strstr(out, "\"consistency\":\"bsp\",\"partition\":\"range\",\"kind\":\"stopping\","
                          "\"stop\":true,\"final\":false") != NULL);
    CU_ASSERT(strstr(out, "\"workers\":[{\"worker\":0,\"epoch\":0,\"offset\":4800,"
                          "\"planned\":false,\"steps\":150,\"samples\":4800,\"done\":false}],"
                          "\"plan\":null}") != NULL);
    /* The model hash is the one resume checks, of the meta in the shard file. */
    snprintf(file, sizeof file, "%s/step-0000000150/shard-0.ckpt", ckpt);
    CkptReader *r = NULL;
    RunMeta m;
    CU_ASSERT_FATAL(ckpt_reader_open(file, &r) == 0 && runmeta_read(r, file, &m) == 0);
    ckpt_reader_free(&r);
    char hash[64];
    snprintf(hash, sizeof hash, "\"model_hash\":\"%016llx\"",
             (unsigned long long)cut_model_hash(&m));
    CU_ASSERT(strstr(out, hash) != NULL);
    if (!strstr(out, hash) || json_in(out, "cut", "step") != 150)
        fprintf(stderr, "inspect: %s\n", out);
    free(out);
    snprintf(file, sizeof file, "%s/step-0000000100", ckpt);
    out = inspect_json(file, &rc);
    CU_ASSERT(rc == 0 && json_in(out, "cut", "step") == 100);
    CU_ASSERT(strstr(out, "\"kind\":\"periodic\",\"stop\":false,\"final\":false") != NULL);
    CU_ASSERT(strstr(out, "\"offset\":3200,\"planned\":false,\"steps\":100") != NULL);
    free(out);

    /* Life 2: the other partition mode needs a plan over the samples epoch 0 has left. */
    rc = tu_run(&out, "PSREC_TEST_STOP_AT_STEP=200 %s train %s/exp.conf --resume "
                      "--data.partition=interleave", TU_PSREC, dir);
    CU_ASSERT_FATAL(rc == 75);
    free(out);
    out = inspect_json(ckpt, &rc);
    CU_ASSERT(rc == 0 && json_in(out, "cut", "step") == 200);
    CU_ASSERT(json_in(out, "cut", "samples") == 200 * B); /* over the run's life */
    CU_ASSERT(strstr(out, "\"partition\":\"interleave\",\"kind\":\"stopping\"") != NULL);
    /* The worker's offset counts within its share of the plan; its samples this life. */
    CU_ASSERT(strstr(out, "{\"worker\":0,\"epoch\":0,\"offset\":1600,\"planned\":true,"
                          "\"steps\":200,\"samples\":1600,\"done\":false}") != NULL);
    CU_ASSERT(json_in(out, "plan", "epoch") == 0);
    CU_ASSERT(json_in(out, "plan", "samples") == n);
    const char *parts = strstr(out, "\"parts\":[");
    CU_ASSERT_FATAL(parts != NULL);
    CU_ASSERT(tu_json_number(parts, "remaining", &v) && v == n - 150 * B);
    CU_ASSERT(strstr(parts, "\"segments\":1,\"base_workers\":1,\"base_partition\":\"range\"}]") !=
              NULL);
    free(out);

    /* Life 3: to the end; the final cut, every sample of both epochs trained once. */
    rc = tu_run(&out, "%s train %s/exp.conf --resume --data.partition=interleave", TU_PSREC,
                dir);
    CU_ASSERT_FATAL(rc == 0);
    free(out);
    out = inspect_json(ckpt, &rc);
    CU_ASSERT(rc == 0);
    CU_ASSERT(strstr(out, "\"kind\":\"final\",\"stop\":false,\"final\":true") != NULL);
    CU_ASSERT(json_in(out, "cut", "samples") == 2 * n);
    CU_ASSERT(json_in(out, "cut", "epoch") == 2);
    const char *w = strstr(out, "\"workers\":[");
    CU_ASSERT_FATAL(w != NULL);
    CU_ASSERT(tu_json_number(w, "epoch", &v) && v == 2);
    CU_ASSERT(tu_json_number(w, "steps", &v) && v == json_in(out, "cut", "step"));
    CU_ASSERT(strstr(w, "\"done\":true}]") != NULL);
    CU_ASSERT(json_in(out, "plan", "epoch") == 0); /* still the plan the worker followed */
    free(out);
    /* The text form says the same. */
    rc = tu_run(&out, "%s inspect %s", TU_PSREC, ckpt);
    CU_ASSERT(rc == 0 && strstr(out, ": final (end of training)") &&
              strstr(out, "re-partition plan in effect from epoch 0") &&
              strstr(out, "partition      interleave"));
    if (rc || !strstr(out, ": final (end of training)"))
        fprintf(stderr, "inspect: %s\n", out);
    free(out);
}

int main(void)
{
    static const TuTest tests[] = {{"commit and verify", test_commit_and_verify},
                                   {"damage detected and named", test_damage_detected},
                                   {"resolve falls back, logs skips", test_resolve_falls_back},
                                   {"prune keeps newest and committed", test_prune},
                                   {"multi-writer protocol", test_multi_writer},
                                   {"full disk keeps the previous one", test_full_disk},
                                   {"clone bit for bit, independent", test_clone},
                                   {"table snapshot grows", test_table_snapshot_grows},
                                   {"re-hashed load into other shard counts", test_rehash_load},
                                   {"psrec inspect", test_inspect},
                                   {"psrec inspect: a cut that does not decode",
                                    test_inspect_bad_cut},
                                   {"psrec inspect: the cuts of a real run",
                                    test_inspect_real_cut},
                                   {NULL, NULL}};
    tu_add_suite("ckptdir", tests);
    int rc = tu_run_all();
    if (parent[0])
        tu_rmtree(parent);
    return rc;
}
