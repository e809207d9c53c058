/* Tests for common/dataset: the LMDB format round-trips through the public API (every field of
 * every row, meta included), and every way a dataset can be wrong gives a clean error that
 * names the path: missing, not a dataset, row counts that disagree with meta, damaged records,
 * rows out of order, rows that do not exist. Damaged databases are made by writing raw LMDB
 * values over a good dataset, since the public writer cannot produce them. */
#include "common/dataset.h"
#include "common/error.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Sizes of the fixture. title_len and his_len are reached exactly by some rows. */
enum {
    FX_TITLE_LEN = 5,
    FX_HIS_LEN = 50,
    FX_VOCAB = 12,
    FX_CATS = 4,
    FX_USERS = 9,
    FX_NEWS = 30,
    FX_SAMPLES = 64,
    FX_IMPS = 21,
    FX_BIG_SAMPLE = 10, /* 3000 negatives: a record larger than a page */
    FX_BIG_NNEG = 3000,
};

/* ---- deterministic fixture contents, one function per field ---- */

static uint32_t word_len(uint32_t id)
{
    return id < 2 ? 5 : id % 9; /* id 9: an empty word */
}

static void word_str(uint32_t id, char *buf)
{
    if (id < 2) {
        memcpy(buf, id == 0 ? "<pad>" : "<unk>", 5);
        return;
    }
    for (uint32_t j = 0; j < word_len(id); j++)
        buf[j] = (char)('a' + (id + j) % 26);
}

static uint32_t name_len(uint32_t row)
{
    return 1 + row % 7; /* 1..7 bytes: every padding remainder */
}

static void name_str(char tag, uint32_t row, char *buf)
{
    buf[0] = tag;
    for (uint32_t j = 1; j < name_len(row); j++)
        buf[j] = (char)('0' + (row * 3 + j) % 10);
}

static void fixture_news(uint32_t row, NewsView *n, uint32_t *tok, char *id)
{
    n->category = row % FX_CATS;
    n->ntok = 1 + row % FX_TITLE_LEN;
    for (uint32_t j = 0; j < n->ntok; j++)
        tok[j] = (row * 31 + j) % FX_VOCAB;
    n->tokens = tok;
    n->id_len = name_len(row);
    name_str('N', row, id);
    n->id = id;
}

/* Raw title "Title <row>!" (empty for row 0, the padding news) and category "cat<row % 3>"
 * (empty for every 5th row); title and cat need 64 bytes. */
static void fixture_text(uint32_t row, NewsText *t, char *title, char *cat)
{
    t->title_len = row ? (uint32_t)snprintf(title, 64, "Title %u, caf\xc3\xa9!", row) : 0;
    t->category_len = row % 5 ? (uint32_t)snprintf(cat, 64, "cat%u", row % 3) : 0;
    t->title = t->title_len ? title : NULL;
    t->category = t->category_len ? cat : NULL;
}

/* his and neg need room for FX_HIS_LEN and FX_BIG_NNEG entries. Empty arrays are passed as
 * NULL, which the writer must accept. */
static void fixture_sample(uint64_t i, SampleView *s, uint32_t *his, uint32_t *neg)
{
    s->user = (uint32_t)(i % FX_USERS);
    s->pos = (uint32_t)((i * 3) % FX_NEWS);
    s->impression = i / 4; /* < FX_IMPS */
    s->nhis = (uint32_t)(i % (FX_HIS_LEN + 1));
    s->nneg = (uint32_t)((i * 7) % 13);
    if (i == FX_BIG_SAMPLE)
        s->nneg = FX_BIG_NNEG;
    for (uint32_t j = 0; j < s->nhis; j++)
        his[j] = (uint32_t)((i * 1000 + j) % FX_NEWS);
    for (uint32_t j = 0; j < s->nneg; j++)
        neg[j] = (uint32_t)((i * 10000 + j) % FX_NEWS);
    s->his = s->nhis ? his : NULL;
    s->neg = s->nneg ? neg : NULL;
}

static void fixture_impression(uint64_t i, ImpressionView *imp, uint32_t *his, uint32_t *cand,
                               uint8_t *labels, char *id)
{
    imp->user = (uint32_t)(i % FX_USERS);
    imp->nhis = (uint32_t)(i % 4);
    imp->ncand = (uint32_t)(2 * (i % 5) + 1); /* odd: 1..9, label bytes never fill a word */
    imp->labeled = i % 3 != 0;
    for (uint32_t j = 0; j < imp->nhis; j++)
        his[j] = (uint32_t)((i * 100 + j) % FX_NEWS);
    for (uint32_t j = 0; j < imp->ncand; j++) {
        cand[j] = (uint32_t)((i * 100 + 50 + j) % FX_NEWS);
        labels[j] = (uint8_t)((i + j) % 2);
    }
    imp->his = imp->nhis ? his : NULL;
    imp->cand = cand;
    imp->labels = imp->labeled ? labels : NULL;
    imp->id_len = name_len((uint32_t)i);
    name_str('I', (uint32_t)i, id);
    imp->id = id;
}

static DatasetMeta fixture_meta(void)
{
    DatasetMeta m;
    memset(&m, 0, sizeof m);
    m.title_len = FX_TITLE_LEN;
    m.his_len = FX_HIS_LEN;
    m.min_count = 3;
    m.vocab_shared = 1;
    m.reserved0 = 0;
    m.news = 101;
    m.users = 102;
    m.impressions = FX_IMPS;
    m.labeled_impressions = 14;
    m.samples = FX_SAMPLES;
    m.candidates = 103;
    m.history_refs = 104;
    m.vocab = FX_VOCAB - 2;
    m.categories = FX_CATS - 1;
    m.missing_news_refs = 105;
    m.skipped_lines = 106;
    m.duplicate_news = 107;
    m.unknown_users = 108;
    m.news_rows = FX_NEWS;
    m.user_rows = FX_USERS;
    m.vocab_rows = FX_VOCAB;
    m.category_rows = FX_CATS;
    m.tsv_bytes = 0x123456789aULL;
    return m;
}

/* Write every table of the fixture; the caller finishes or aborts. */
static void write_tables(DatasetWriter *w)
{
    char buf[64];
    static uint32_t his[FX_HIS_LEN], neg[FX_BIG_NNEG], tok[FX_TITLE_LEN], cand[16];
    uint8_t labels[16];
    for (uint32_t id = 0; id < FX_VOCAB; id++) {
        word_str(id, buf);
        CU_ASSERT_EQUAL_FATAL(dataset_put_word(w, id, word_len(id) ? buf : NULL, word_len(id)), 0);
    }
    for (uint32_t id = 0; id < FX_CATS; id++) {
        name_str('C', id, buf);
        CU_ASSERT_EQUAL_FATAL(dataset_put_category(w, id, buf, name_len(id)), 0);
    }
    for (uint32_t row = 0; row < FX_USERS; row++) {
        name_str('U', row, buf);
        CU_ASSERT_EQUAL_FATAL(dataset_put_user(w, row, buf, name_len(row)), 0);
    }
    for (uint32_t row = 0; row < FX_NEWS; row++) {
        NewsView n;
        fixture_news(row, &n, tok, buf);
        CU_ASSERT_EQUAL_FATAL(dataset_put_news(w, row, &n), 0);
    }
    for (uint32_t row = 0; row < FX_NEWS; row++) {
        char title[64], cat[64];
        NewsText t;
        fixture_text(row, &t, title, cat);
        CU_ASSERT_EQUAL_FATAL(dataset_put_news_text(w, row, &t), 0);
    }
    for (uint64_t i = 0; i < FX_SAMPLES; i++) {
        SampleView s;
        fixture_sample(i, &s, his, neg);
        CU_ASSERT_EQUAL_FATAL(dataset_put_sample(w, i, &s), 0);
    }
    for (uint64_t i = 0; i < FX_IMPS; i++) {
        ImpressionView imp;
        fixture_impression(i, &imp, his, cand, labels, buf);
        CU_ASSERT_EQUAL_FATAL(dataset_put_impression(w, i, &imp), 0);
    }
}

/* Build the fixture with the given meta in a fresh temp dir; returns the malloc'ed dataset
 * path (inside a temp dir the caller removes with tu_rmtree(dirname)). */
static char *build_fixture(const DatasetMeta *meta, char **tmpdir)
{
    *tmpdir = strdup(tu_mkdtemp("dataset"));
    char *path = malloc(strlen(*tmpdir) + 8);
    sprintf(path, "%s/ds", *tmpdir);
    DatasetWriter *w = NULL;
    CU_ASSERT_EQUAL_FATAL(dataset_writer_new(path, &w), 0);
    write_tables(w);
    CU_ASSERT_EQUAL_FATAL(dataset_writer_finish(&w, meta), 0);
    CU_ASSERT_PTR_NULL(w);
    return path;
}

static void cleanup_fixture(char *path, char *tmpdir)
{
    tu_rmtree(tmpdir);
    free(path);
    free(tmpdir);
}

/* Overwrite one raw record of an existing dataset (to damage it on purpose). */
static void raw_put(const char *path, const char *table, unsigned flags, const void *key,
                    size_t klen, const void *val, size_t vlen)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    CU_ASSERT_EQUAL_FATAL(mdb_env_create(&env), 0);
    CU_ASSERT_EQUAL_FATAL(mdb_env_set_maxdbs(env, 16), 0);
    CU_ASSERT_EQUAL_FATAL(mdb_env_set_mapsize(env, (size_t)1 << 30), 0);
    CU_ASSERT_EQUAL_FATAL(mdb_env_open(env, path, 0, 0644), 0);
    CU_ASSERT_EQUAL_FATAL(mdb_txn_begin(env, NULL, 0, &txn), 0);
    CU_ASSERT_EQUAL_FATAL(mdb_dbi_open(txn, table, flags | MDB_CREATE, &dbi), 0);
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    CU_ASSERT_EQUAL_FATAL(mdb_put(txn, dbi, &k, &v, 0), 0);
    CU_ASSERT_EQUAL_FATAL(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static int msg_has(const char *needle)
{
    if (strstr(psrec_errmsg(), needle))
        return 1;
    fprintf(stderr, "\n  message \"%s\" lacks \"%s\"\n", psrec_errmsg(), needle);
    return 0;
}

/* ------------------------------------------------------------------ tests */

static void test_roundtrip(void)
{
    DatasetMeta meta = fixture_meta();
    char *tmpdir;
    char *path = build_fixture(&meta, &tmpdir);

    Dataset *ds = NULL;
    CU_ASSERT_EQUAL_FATAL(dataset_open(path, &ds), 0);
    const DatasetMeta *m = dataset_meta(ds);
    DatasetMeta want = meta;
    want.magic = DATASET_MAGIC;
    want.version = DATASET_VERSION;
    want.size = sizeof(DatasetMeta);
    want.tokenizer_version = DATASET_TOKENIZER_VERSION;
    CU_ASSERT_EQUAL(m->magic, DATASET_MAGIC);
    CU_ASSERT_EQUAL(m->version, DATASET_VERSION);
    CU_ASSERT_EQUAL(m->size, sizeof(DatasetMeta));
    CU_ASSERT_EQUAL(m->tsv_bytes, meta.tsv_bytes);
    CU_ASSERT_NOT_EQUAL(m->fingerprint, 0);
    want.fingerprint = m->fingerprint;
    CU_ASSERT_EQUAL(memcmp(m, &want, sizeof want), 0);

    DatasetTxn *txn = NULL;
    CU_ASSERT_EQUAL_FATAL(dataset_txn_new(ds, &txn), 0);
    char buf[64];
    const char *str;
    uint32_t len;
    for (uint32_t id = 0; id < FX_VOCAB; id++) {
        CU_ASSERT_EQUAL_FATAL(dataset_get_word(txn, id, &str, &len), 0);
        word_str(id, buf);
        CU_ASSERT_EQUAL(len, word_len(id));
        CU_ASSERT(len == 0 || memcmp(str, buf, len) == 0);
    }
    for (uint32_t id = 0; id < FX_CATS; id++) {
        CU_ASSERT_EQUAL_FATAL(dataset_get_category(txn, id, &str, &len), 0);
        name_str('C', id, buf);
        CU_ASSERT_EQUAL(len, name_len(id));
        CU_ASSERT_EQUAL(memcmp(str, buf, len), 0);
    }
    for (uint32_t row = 0; row < FX_USERS; row++) {
        CU_ASSERT_EQUAL_FATAL(dataset_get_user(txn, row, &str, &len), 0);
        name_str('U', row, buf);
        CU_ASSERT_EQUAL(len, name_len(row));
        CU_ASSERT_EQUAL(memcmp(str, buf, len), 0);
    }
    int saw_full_title = 0;
    for (uint32_t row = 0; row < FX_NEWS; row++) {
        uint32_t tok[FX_TITLE_LEN];
        NewsView exp, got;
        fixture_news(row, &exp, tok, buf);
        CU_ASSERT_EQUAL_FATAL(dataset_get_news(txn, row, &got), 0);
        CU_ASSERT_EQUAL(got.category, exp.category);
        CU_ASSERT_EQUAL_FATAL(got.ntok, exp.ntok);
        CU_ASSERT_EQUAL(memcmp(got.tokens, exp.tokens, exp.ntok * 4), 0);
        CU_ASSERT_EQUAL_FATAL(got.id_len, exp.id_len);
        CU_ASSERT_EQUAL(memcmp(got.id, exp.id, exp.id_len), 0);
        saw_full_title |= got.ntok == FX_TITLE_LEN;
    }
    CU_ASSERT(saw_full_title);
    static uint32_t his[FX_HIS_LEN], neg[FX_BIG_NNEG];
    int saw_empty = 0, saw_full_his = 0;
    for (uint64_t i = 0; i < FX_SAMPLES; i++) {
        SampleView exp, got;
        fixture_sample(i, &exp, his, neg);
        CU_ASSERT_EQUAL_FATAL(dataset_get_sample(txn, i, &got), 0);
        CU_ASSERT_EQUAL(got.user, exp.user);
        CU_ASSERT_EQUAL(got.pos, exp.pos);
        CU_ASSERT_EQUAL(got.impression, exp.impression);
        CU_ASSERT_EQUAL_FATAL(got.nhis, exp.nhis);
        CU_ASSERT_EQUAL_FATAL(got.nneg, exp.nneg);
        CU_ASSERT(got.nhis == 0 || memcmp(got.his, exp.his, got.nhis * 4) == 0);
        CU_ASSERT(got.nneg == 0 || memcmp(got.neg, exp.neg, got.nneg * 4) == 0);
        saw_empty |= got.nhis == 0 && got.nneg == 0;
        saw_full_his |= got.nhis == FX_HIS_LEN;
    }
    CU_ASSERT(saw_empty);
    CU_ASSERT(saw_full_his);
    for (uint64_t i = 0; i < FX_IMPS; i++) {
        uint32_t ehis[8], ecand[16];
        uint8_t elab[16];
        ImpressionView exp, got;
        fixture_impression(i, &exp, ehis, ecand, elab, buf);
        CU_ASSERT_EQUAL_FATAL(dataset_get_impression(txn, i, &got), 0);
        CU_ASSERT_EQUAL(got.user, exp.user);
        CU_ASSERT_EQUAL(got.labeled, exp.labeled);
        CU_ASSERT_EQUAL_FATAL(got.nhis, exp.nhis);
        CU_ASSERT_EQUAL_FATAL(got.ncand, exp.ncand);
        CU_ASSERT(got.nhis == 0 || memcmp(got.his, exp.his, got.nhis * 4) == 0);
        CU_ASSERT_EQUAL(memcmp(got.cand, exp.cand, got.ncand * 4), 0);
        if (exp.labeled)
            CU_ASSERT_EQUAL(memcmp(got.labels, exp.labels, got.ncand), 0);
        CU_ASSERT_EQUAL_FATAL(got.id_len, exp.id_len);
        CU_ASSERT_EQUAL(memcmp(got.id, exp.id, exp.id_len), 0);
    }

    /* A reset transaction reads the same rows again. */
    CU_ASSERT_EQUAL(dataset_txn_reset(txn), 0);
    SampleView s;
    CU_ASSERT_EQUAL(dataset_get_sample(txn, FX_BIG_SAMPLE, &s), 0);
    CU_ASSERT_EQUAL(s.nneg, FX_BIG_NNEG);
    CU_ASSERT_EQUAL(s.neg[FX_BIG_NNEG - 1], (FX_BIG_SAMPLE * 10000 + FX_BIG_NNEG - 1) % FX_NEWS);

    CU_ASSERT(dataset_has_news_text(ds));
    for (uint32_t row = 0; row < FX_NEWS; row++) {
        char title[64], cat[64];
        NewsText want_t, got;
        fixture_text(row, &want_t, title, cat);
        CU_ASSERT_EQUAL_FATAL(dataset_get_news_text(txn, row, &got), 0);
        CU_ASSERT_EQUAL(got.title_len, want_t.title_len);
        CU_ASSERT_EQUAL(got.category_len, want_t.category_len);
        CU_ASSERT(got.title_len == 0 || memcmp(got.title, title, got.title_len) == 0);
        CU_ASSERT(got.category_len == 0 || memcmp(got.category, cat, got.category_len) == 0);
    }
    uint32_t urow = 99;
    name_str('U', 3, buf);
    CU_ASSERT_EQUAL(dataset_find_user(txn, buf, name_len(3), &urow), 0);
    CU_ASSERT_EQUAL(urow, 3);
    CU_ASSERT_EQUAL(dataset_find_user(txn, "nobody", 6, &urow), PSREC_E_NOTFOUND);
    dataset_txn_free(&txn);
    CU_ASSERT_PTR_NULL(txn);
    dataset_free(&ds);
    CU_ASSERT_PTR_NULL(ds);
    cleanup_fixture(path, tmpdir);
}

/* Enough rows that the writer commits in the middle; all of them must survive. */
static void test_many_rows(void)
{
    const uint64_t n = 45001;
    uint32_t neg0 = 0;
    char *tmpdir = strdup(tu_mkdtemp("dataset"));
    char path[4200];
    snprintf(path, sizeof path, "%s/ds", tmpdir);
    DatasetWriter *w = NULL;
    CU_ASSERT_EQUAL_FATAL(dataset_writer_new(path, &w), 0);
    CU_ASSERT_EQUAL_FATAL(dataset_put_word(w, 0, "<pad>", 5), 0);
    CU_ASSERT_EQUAL_FATAL(dataset_put_word(w, 1, "<unk>", 5), 0);
    CU_ASSERT_EQUAL_FATAL(dataset_put_category(w, 0, "", 0), 0);
    CU_ASSERT_EQUAL_FATAL(dataset_put_user(w, 0, "", 0), 0);
    uint32_t tok = 1;
    NewsView nv = {.category = 0, .ntok = 1, .tokens = &tok, .id = "", .id_len = 0};
    /* Every sample names its own news rows, which must exist (the reader checks ids). */
    for (uint32_t r = 0; r < n; r++) {
        CU_ASSERT_EQUAL_FATAL(dataset_put_news(w, r, &nv), 0);
        CU_ASSERT_EQUAL_FATAL(
            dataset_put_news_text(w, r, &(NewsText){.title = "", .category = ""}), 0);
    }
    for (uint64_t i = 0; i < n; i++) {
        uint32_t neg = (uint32_t)(n - 1 - i);
        SampleView s = {.user = 0, .pos = (uint32_t)i, .impression = 0,
                        .nhis = 0, .nneg = 1, .his = NULL, .neg = &neg};
        CU_ASSERT_EQUAL_FATAL(dataset_put_sample(w, i, &s), 0);
    }
    ImpressionView imp = {.user = 0, .ncand = 1, .cand = &neg0, .id = "", .id_len = 0};
    CU_ASSERT_EQUAL_FATAL(dataset_put_impression(w, 0, &imp), 0);
    DatasetMeta m;
    memset(&m, 0, sizeof m);
    m.title_len = 1;
    m.samples = n;
    m.impressions = 1;
    m.news_rows = n;
    m.user_rows = m.category_rows = 1;
    m.vocab_rows = 2;
    CU_ASSERT_EQUAL_FATAL(dataset_writer_finish(&w, &m), 0);

    Dataset *ds = NULL;
    DatasetTxn *txn = NULL;
    CU_ASSERT_EQUAL_FATAL(dataset_open(path, &ds), 0);
    CU_ASSERT_EQUAL(dataset_meta(ds)->samples, n);
    CU_ASSERT_EQUAL_FATAL(dataset_txn_new(ds, &txn), 0);
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++) {
        SampleView s;
        if (dataset_get_sample(txn, i, &s) || s.user != 0 || s.pos != (uint32_t)i ||
            s.impression != 0 || s.nhis != 0 || s.nneg != 1 || s.neg[0] != (uint32_t)(n - 1 - i))
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    dataset_txn_free(&txn);
    dataset_free(&ds);
    tu_rmtree(tmpdir);
    free(tmpdir);
}

static void test_open_missing(void)
{
    const char *dir = tu_mkdtemp("dataset");
    char path[4200];
    snprintf(path, sizeof path, "%s/no-such-dataset", dir);
    Dataset *ds = (Dataset *)&ds; /* must be cleared on error */
    psrec_errclear();
    CU_ASSERT_EQUAL(dataset_open(path, &ds), PSREC_E_NOTFOUND);
    CU_ASSERT_PTR_NULL(ds);
    CU_ASSERT(msg_has(path));
    tu_rmtree(dir);
}

static void test_open_not_a_dataset(void)
{
    char *dir = strdup(tu_mkdtemp("dataset"));
    Dataset *ds = NULL;

    /* An empty directory. */
    psrec_errclear();
    CU_ASSERT_NOT_EQUAL(dataset_open(dir, &ds), 0);
    CU_ASSERT_PTR_NULL(ds);
    CU_ASSERT(msg_has(dir));

    /* A regular file. */
    char path[4200];
    snprintf(path, sizeof path, "%s/file.txt", dir);
    CU_ASSERT_EQUAL_FATAL(tu_write_file(path, "news\tbehaviors\n"), 0);
    psrec_errclear();
    CU_ASSERT_NOT_EQUAL(dataset_open(path, &ds), 0);
    CU_ASSERT_PTR_NULL(ds);
    CU_ASSERT(msg_has(path));

    /* A directory whose data.mdb is not LMDB. */
    snprintf(path, sizeof path, "%s/junk", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
    char file[4300];
    snprintf(file, sizeof file, "%s/data.mdb", path);
    char *junk = calloc(1, 20000);
    memset(junk, 'x', 19999);
    CU_ASSERT_EQUAL_FATAL(tu_write_file(file, junk), 0);
    free(junk);
    psrec_errclear();
    CU_ASSERT_NOT_EQUAL(dataset_open(path, &ds), 0);
    CU_ASSERT_PTR_NULL(ds);
    CU_ASSERT(msg_has(path));

    /* A valid LMDB environment without psrec's tables. */
    snprintf(path, sizeof path, "%s/other", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
    raw_put(path, "something", 0, "k", 1, "v", 1);
    psrec_errclear();
    CU_ASSERT_EQUAL(dataset_open(path, &ds), PSREC_E_FORMAT);
    CU_ASSERT_PTR_NULL(ds);
    CU_ASSERT(msg_has(path));
    CU_ASSERT(msg_has("not a psrec dataset"));

    tu_rmtree(dir);
    free(dir);
}

static void test_bad_meta(void)
{
    DatasetMeta meta = fixture_meta();
    char *tmpdir;
    char *path = build_fixture(&meta, &tmpdir);
    Dataset *ds = NULL;

    DatasetMeta m = meta;
    m.magic = DATASET_MAGIC;
    m.version = DATASET_VERSION + 1;
    m.size = sizeof m;
    raw_put(path, "meta", 0, "meta", 4, &m, sizeof m);
    psrec_errclear();
    CU_ASSERT_EQUAL(dataset_open(path, &ds), PSREC_E_FORMAT);
    CU_ASSERT_PTR_NULL(ds);
    CU_ASSERT(msg_has(path));
    CU_ASSERT(msg_has("version"));

    m.version = DATASET_VERSION;
    m.magic = DATASET_MAGIC ^ 1;
    raw_put(path, "meta", 0, "meta", 4, &m, sizeof m);
    CU_ASSERT_EQUAL(dataset_open(path, &ds), PSREC_E_FORMAT);
    CU_ASSERT(msg_has("magic"));

    m.magic = DATASET_MAGIC;
    raw_put(path, "meta", 0, "meta", 4, &m, sizeof m - 8); /* truncated */
    CU_ASSERT_EQUAL(dataset_open(path, &ds), PSREC_E_FORMAT);
    CU_ASSERT_PTR_NULL(ds);

    raw_put(path, "meta", 0, "meta", 4, &m, sizeof m); /* repaired: opens again */
    CU_ASSERT_EQUAL(dataset_open(path, &ds), 0);
    dataset_free(&ds);
    cleanup_fixture(path, tmpdir);
}

/* A version 1 dataset (before news_text) still opens, without texts; a version below the
 * oldest one read is refused with the fix in the message. */
static void test_version1(void)
{
    DatasetMeta meta = fixture_meta();
    char *tmpdir;
    char *path = build_fixture(&meta, &tmpdir);
    DatasetMeta m = meta;
    m.magic = DATASET_MAGIC;
    m.version = 1;
    m.size = DATASET_META_V2_SIZE;
    m.tokenizer_version = DATASET_TOKENIZER_VERSION;
    m.fingerprint = 77; /* past the record's end: not read */
    raw_put(path, "meta", 0, "meta", 4, &m, DATASET_META_V2_SIZE);
    Dataset *ds = NULL;
    CU_ASSERT_EQUAL_FATAL(dataset_open(path, &ds), 0);
    CU_ASSERT(!dataset_has_news_text(ds));
    CU_ASSERT_EQUAL(dataset_meta(ds)->fingerprint, 0); /* unknown */
    DatasetTxn *txn = NULL;
    CU_ASSERT_EQUAL_FATAL(dataset_txn_new(ds, &txn), 0);
    NewsText t;
    CU_ASSERT_EQUAL(dataset_get_news_text(txn, 1, &t), 0);
    CU_ASSERT(t.title_len == 0 && t.category_len == 0 && t.title && t.category);
    NewsView nv;
    CU_ASSERT_EQUAL(dataset_get_news(txn, 1, &nv), 0);
    dataset_txn_free(&txn);
    dataset_free(&ds);
    m.version = DATASET_VERSION_MIN - 1;
    raw_put(path, "meta", 0, "meta", 4, &m, sizeof m);
    psrec_errclear();
    CU_ASSERT_EQUAL(dataset_open(path, &ds), PSREC_E_FORMAT);
    CU_ASSERT(msg_has("re-run psrec prep"));
    cleanup_fixture(path, tmpdir);
}

/* One table's count in meta off by one: open refuses, naming the table. */
static void check_count_mismatch(const char *table, DatasetMeta meta)
{
    char *tmpdir;
    char *path = build_fixture(&meta, &tmpdir);
    Dataset *ds = NULL;
    psrec_errclear();
    CU_ASSERT_EQUAL(dataset_open(path, &ds), PSREC_E_FORMAT);
    CU_ASSERT_PTR_NULL(ds);
    CU_ASSERT(msg_has(path));
    char want[64];
    snprintf(want, sizeof want, "table '%s'", table);
    CU_ASSERT(msg_has(want));
    cleanup_fixture(path, tmpdir);
}

static void test_count_mismatch(void)
{
    DatasetMeta m = fixture_meta();
    m.samples++;
    check_count_mismatch("samples", m);
    m = fixture_meta();
    m.impressions--;
    check_count_mismatch("impressions", m);
    m = fixture_meta();
    m.news_rows++;
    check_count_mismatch("news", m);
    m = fixture_meta();
    m.vocab_rows++;
    check_count_mismatch("vocab", m);
    m = fixture_meta();
    m.user_rows--;
    check_count_mismatch("users", m);
    m = fixture_meta();
    m.category_rows++;
    check_count_mismatch("categories", m);
}

static void test_damaged_records(void)
{
    DatasetMeta meta = fixture_meta();
    char *tmpdir;
    char *path = build_fixture(&meta, &tmpdir);

    /* Sample 7: header says 3 history entries, but the record holds only 2. */
    size_t k7 = 7;
    uint32_t bad_sample[8] = {1, 2, 0, 0, 3, 0, 11, 12};
    raw_put(path, "samples", MDB_INTEGERKEY, &k7, sizeof k7, bad_sample, sizeof bad_sample);
    /* Sample 9: consistent sizes, but more history than meta.his_len allows. */
    size_t k9 = 9;
    static uint32_t long_his[6 + FX_HIS_LEN + 1];
    long_his[4] = FX_HIS_LEN + 1;
    raw_put(path, "samples", MDB_INTEGERKEY, &k9, sizeof k9, long_his, sizeof long_his);
    /* News 4: more tokens than title_len. */
    uint32_t k4 = 4;
    uint32_t bad_news[3 + FX_TITLE_LEN + 1] = {0, FX_TITLE_LEN + 1, 0};
    raw_put(path, "news", MDB_INTEGERKEY, &k4, sizeof k4, bad_news, sizeof bad_news);
    /* Impression 3: truncated by one word. */
    size_t k3 = 3;
    uint32_t bad_imp[5] = {0, 0, 2, 1, 0};
    raw_put(path, "impressions", MDB_INTEGERKEY, &k3, sizeof k3, bad_imp, sizeof bad_imp);
    /* Sample 8: a size that is not a whole number of words. LMDB packs values at 2-byte
     * granularity, so the record stored after it in the page (sample 6, rewritten with a valid
     * record of a new size) lands misaligned for u32 reads. */
    size_t k8 = 8, k6 = 6;
    raw_put(path, "samples", MDB_INTEGERKEY, &k8, sizeof k8, bad_sample, 26);
    uint32_t good_sample[7] = {1, 2, 0, 0, 0, 1, 99};
    raw_put(path, "samples", MDB_INTEGERKEY, &k6, sizeof k6, good_sample, sizeof good_sample);

    /* Impression 2: well-formed, but a candidate names a news row that does not exist. */
    size_t k2 = 2;
    uint32_t bad_cand[8] = {1, 0, 2, 1, 0, 3, FX_NEWS + 7, 0x0100};
    raw_put(path, "impressions", MDB_INTEGERKEY, &k2, sizeof k2, bad_cand, sizeof bad_cand);

    Dataset *ds = NULL;
    DatasetTxn *txn = NULL;
    CU_ASSERT_EQUAL_FATAL(dataset_open(path, &ds), 0);
    CU_ASSERT_EQUAL_FATAL(dataset_txn_new(ds, &txn), 0);
    SampleView s;
    NewsView n;
    ImpressionView imp;
    CU_ASSERT_EQUAL(dataset_get_impression(txn, 2, &imp), PSREC_E_FORMAT);
    CU_ASSERT(msg_has(path));
    CU_ASSERT(msg_has("impressions row 2 is damaged (news row out of range)"));
    CU_ASSERT_EQUAL(dataset_get_sample(txn, 7, &s), PSREC_E_FORMAT);
    CU_ASSERT(msg_has(path));
    CU_ASSERT(msg_has("samples row 7"));
    CU_ASSERT_EQUAL(dataset_get_sample(txn, 8, &s), PSREC_E_FORMAT);
    CU_ASSERT(msg_has("samples row 8"));
    CU_ASSERT_EQUAL(dataset_get_sample(txn, 9, &s), PSREC_E_FORMAT);
    CU_ASSERT(msg_has("samples row 9"));
    CU_ASSERT(msg_has("his_len"));
    CU_ASSERT_EQUAL(dataset_get_sample(txn, 6, &s), PSREC_E_FORMAT);
    CU_ASSERT(msg_has("samples row 6"));
    CU_ASSERT(msg_has("misaligned"));
    CU_ASSERT_EQUAL(dataset_get_news(txn, 4, &n), PSREC_E_FORMAT);
    CU_ASSERT(msg_has("news row 4"));
    CU_ASSERT_EQUAL(dataset_get_impression(txn, 3, &imp), PSREC_E_FORMAT);
    CU_ASSERT(msg_has("impressions row 3"));
    /* Neighbours are intact. */
    CU_ASSERT_EQUAL(dataset_get_sample(txn, 10, &s), 0);
    CU_ASSERT_EQUAL(dataset_get_news(txn, 5, &n), 0);
    dataset_txn_free(&txn);
    dataset_free(&ds);
    cleanup_fixture(path, tmpdir);
}

static void test_missing_rows(void)
{
    DatasetMeta meta = fixture_meta();
    char *tmpdir;
    char *path = build_fixture(&meta, &tmpdir);
    Dataset *ds = NULL;
    DatasetTxn *txn = NULL;
    CU_ASSERT_EQUAL_FATAL(dataset_open(path, &ds), 0);
    CU_ASSERT_EQUAL_FATAL(dataset_txn_new(ds, &txn), 0);
    SampleView s;
    NewsView n;
    ImpressionView imp;
    const char *str;
    uint32_t len;
    CU_ASSERT_EQUAL(dataset_get_sample(txn, FX_SAMPLES, &s), PSREC_E_NOTFOUND);
    CU_ASSERT(msg_has(path));
    CU_ASSERT(msg_has("samples row 64"));
    CU_ASSERT_EQUAL(dataset_get_sample(txn, UINT64_MAX, &s), PSREC_E_NOTFOUND);
    CU_ASSERT_EQUAL(dataset_get_impression(txn, FX_IMPS, &imp), PSREC_E_NOTFOUND);
    CU_ASSERT(msg_has("impressions row 21"));
    CU_ASSERT_EQUAL(dataset_get_news(txn, FX_NEWS, &n), PSREC_E_NOTFOUND);
    CU_ASSERT(msg_has("news row 30"));
    CU_ASSERT_EQUAL(dataset_get_word(txn, FX_VOCAB, &str, &len), PSREC_E_NOTFOUND);
    CU_ASSERT_EQUAL(dataset_get_category(txn, FX_CATS, &str, &len), PSREC_E_NOTFOUND);
    CU_ASSERT_EQUAL(dataset_get_user(txn, FX_USERS, &str, &len), PSREC_E_NOTFOUND);
    /* The transaction still works after misses. */
    CU_ASSERT_EQUAL(dataset_get_sample(txn, FX_SAMPLES - 1, &s), 0);
    dataset_txn_free(&txn);
    dataset_free(&ds);
    cleanup_fixture(path, tmpdir);
}

static void test_put_order(void)
{
    char *dir = strdup(tu_mkdtemp("dataset"));
    char path[4200];
    snprintf(path, sizeof path, "%s/ds", dir);
    DatasetWriter *w = NULL;
    CU_ASSERT_EQUAL_FATAL(dataset_writer_new(path, &w), 0);
    uint32_t neg = 3;
    SampleView s = {.user = 1, .pos = 2, .nneg = 1, .neg = &neg};

    CU_ASSERT_EQUAL(dataset_put_sample(w, 0, &s), 0);
    CU_ASSERT_EQUAL(dataset_put_sample(w, 1, &s), 0);
    psrec_errclear();
    CU_ASSERT_NOT_EQUAL(dataset_put_sample(w, 1, &s), 0); /* repeated */
    CU_ASSERT(msg_has("samples"));
    CU_ASSERT_NOT_EQUAL(dataset_put_sample(w, 0, &s), 0); /* backwards */
    CU_ASSERT_NOT_EQUAL(dataset_put_sample(w, 3, &s), 0); /* a gap: rows are dense */
    CU_ASSERT_EQUAL(dataset_put_sample(w, 2, &s), 0);     /* the right next row still goes in */

    CU_ASSERT_NOT_EQUAL(dataset_put_word(w, 1, "x", 1), 0); /* tables start at 0 */
    CU_ASSERT_EQUAL(dataset_put_word(w, 0, "<pad>", 5), 0);
    CU_ASSERT_EQUAL(dataset_put_word(w, 1, "<unk>", 5), 0);
    CU_ASSERT_NOT_EQUAL(dataset_put_word(w, 1, "<unk>", 5), 0);

    uint32_t tok[2] = {1, 1};
    NewsView nv = {.ntok = 0, .tokens = tok, .id = "n", .id_len = 1};
    CU_ASSERT_EQUAL(dataset_put_news(w, 0, &nv), PSREC_E_RANGE); /* no tokens */

    dataset_writer_abort(&w);
    CU_ASSERT_PTR_NULL(w);
    tu_rmtree(dir);
    free(dir);
}

static void test_writer_abort(void)
{
    char *dir = strdup(tu_mkdtemp("dataset"));
    char path[4200];
    snprintf(path, sizeof path, "%s/ds", dir);
    DatasetWriter *w = NULL;
    CU_ASSERT_EQUAL_FATAL(dataset_writer_new(path, &w), 0);
    write_tables(w);
    struct stat st;
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    dataset_writer_abort(&w);
    CU_ASSERT_PTR_NULL(w);
    errno = 0;
    CU_ASSERT_EQUAL(stat(path, &st), -1);
    CU_ASSERT_EQUAL(errno, ENOENT);
    dataset_writer_abort(&w); /* no-op on NULL */

    /* The writer refuses to reuse an existing path, and leaves it alone. */
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0755), 0);
    psrec_errclear();
    CU_ASSERT_NOT_EQUAL(dataset_writer_new(path, &w), 0);
    CU_ASSERT_PTR_NULL(w);
    CU_ASSERT(msg_has(path));
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    tu_rmtree(dir);
    free(dir);
}

/* Found by tests/fuzz (now corpus/dataset/crash-impression-idlen-wrap): an id length
 * near 2^32 made the padded word count wrap to 0 in 32-bit arithmetic, so the record's size
 * "matched" and the view claimed ~4 GiB of id bytes past the record. */
static void test_decode_id_length_wrap(void)
{
    NewsView nv;
    ImpressionView iv;
    DatasetMeta meta = fixture_meta();
    const DatasetMeta *m = &meta;
    /* news: category, ntok 1, id_len, token */
    for (uint32_t len = 0xFFFFFFFDu; len != 0; len++) {
        uint32_t news[4] = {1, 1, len, 5};
        CU_ASSERT(dataset_decode_news(news, sizeof news, m, &nv) != NULL);
        /* impression: user, nhis 0, ncand 0, labeled, id_len (no other words) */
        uint32_t imp[5] = {1, 0, 0, 1, len};
        CU_ASSERT(dataset_decode_impression(imp, sizeof imp, m, &iv) != NULL);
    }
    uint32_t good[5] = {1, 0, 0, 1, 0};
    CU_ASSERT(dataset_decode_impression(good, sizeof good, m, &iv) == NULL);
}

/* A minimal dataset whose users table is {"", user1}; returns its fingerprint (0 on error). */
static uint64_t small_fingerprint(const char *dirpath, const char *name, const char *user1,
                                  const char *word2)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dirpath, name);
    DatasetWriter *w = NULL;
    uint32_t tok = 1;
    NewsView nv = {.ntok = 1, .tokens = &tok, .id = "", .id_len = 0};
    if (dataset_writer_new(path, &w) || dataset_put_word(w, 0, "<pad>", 5) ||
        dataset_put_word(w, 1, "<unk>", 5) || dataset_put_word(w, 2, word2, (uint32_t)strlen(word2)) ||
        dataset_put_category(w, 0, "", 0) || dataset_put_user(w, 0, "", 0) ||
        dataset_put_user(w, 1, user1, (uint32_t)strlen(user1)) || dataset_put_news(w, 0, &nv) ||
        dataset_put_news_text(w, 0, &(NewsText){.title = "", .category = ""}))
        return 0;
    DatasetMeta m;
    memset(&m, 0, sizeof m);
    m.title_len = 1;
    m.news_rows = m.category_rows = 1;
    m.user_rows = 2;
    m.vocab_rows = 3;
    if (dataset_writer_finish(&w, &m))
        return 0;
    Dataset *ds = NULL;
    if (dataset_open(path, &ds))
        return 0;
    uint64_t fp = dataset_meta(ds)->fingerprint;
    dataset_free(&ds);
    return fp;
}

/* The fingerprint follows the name tables' contents: the same rows give the same value, one
 * changed name (same sizes) another one. */
static void test_fingerprint(void)
{
    char *tmp = strdup(tu_mkdtemp("dataset"));
    uint64_t a = small_fingerprint(tmp, "a", "U1", "news");
    uint64_t b = small_fingerprint(tmp, "b", "U1", "news");
    uint64_t c = small_fingerprint(tmp, "c", "U2", "news");
    uint64_t d = small_fingerprint(tmp, "d", "U1", "newt");
    uint64_t e = small_fingerprint(tmp, "e", "U1n", "ews"); /* bytes moved across rows */
    CU_ASSERT_NOT_EQUAL(a, 0);
    CU_ASSERT_EQUAL(a, b);
    CU_ASSERT_NOT_EQUAL(a, c);
    CU_ASSERT_NOT_EQUAL(a, d);
    CU_ASSERT_NOT_EQUAL(a, e);
    tu_rmtree(tmp);
    free(tmp);
}

/* Every id a record holds is checked against the meta's table sizes, so a flipped byte can
 * never index a table out of bounds downstream (eval's score_impressions did, on a damaged
 * candidate id). Each record below is well-formed except for one field. */
static void test_decode_ids_in_range(void)
{
    DatasetMeta meta = fixture_meta(); /* 30 news, 9 users, 12 words, 4 categories, 21 imps */
    const DatasetMeta *m = &meta;
    NewsView nv;
    SampleView sv;
    ImpressionView iv;
    /* news: category, ntok 2, id_len 0, tokens */
    uint32_t news[5] = {3, 2, 0, 11, 1};
    CU_ASSERT_PTR_NULL(dataset_decode_news(news, sizeof news, m, &nv));
    news[0] = FX_CATS;
    CU_ASSERT_STRING_EQUAL(dataset_decode_news(news, sizeof news, m, &nv),
                           "category id out of range");
    news[0] = 0;
    news[4] = FX_VOCAB;
    CU_ASSERT_STRING_EQUAL(dataset_decode_news(news, sizeof news, m, &nv), "word id out of range");
    /* sample: user, pos, imp lo, imp hi, nhis 1, nneg 1, his, neg */
    uint32_t good_s[8] = {FX_USERS - 1, FX_NEWS - 1, FX_IMPS - 1, 0, 1, 1, 0, 29};
    uint32_t smp[8];
    memcpy(smp, good_s, sizeof smp);
    CU_ASSERT_PTR_NULL(dataset_decode_sample(smp, sizeof smp, m, &sv));
    const struct {
        int word;
        uint32_t value;
        const char *why;
    } bad_s[] = {{0, FX_USERS, "user row out of range"},
                 {1, FX_NEWS, "news row out of range"},
                 {6, FX_NEWS, "news row out of range"},
                 {7, 0xFFFFFFFFu, "news row out of range"},
                 {2, FX_IMPS, "impression index out of range"},
                 {3, 1, "impression index out of range"}};
    for (size_t i = 0; i < sizeof bad_s / sizeof bad_s[0]; i++) {
        memcpy(smp, good_s, sizeof smp);
        smp[bad_s[i].word] = bad_s[i].value;
        const char *why = dataset_decode_sample(smp, sizeof smp, m, &sv);
        CU_ASSERT_PTR_NOT_NULL_FATAL(why);
        CU_ASSERT_STRING_EQUAL(why, bad_s[i].why);
    }
    /* impression: user, nhis 1, ncand 2, labeled, id_len 0, his, cand x2, labels {1, 0} */
    uint32_t good_i[9] = {FX_USERS - 1, 1, 2, 1, 0, 5, 0, FX_NEWS - 1, 0x0001};
    uint32_t imp[9];
    memcpy(imp, good_i, sizeof imp);
    CU_ASSERT_PTR_NULL(dataset_decode_impression(imp, sizeof imp, m, &iv));
    const struct {
        int word;
        uint32_t value;
        const char *why;
    } bad_i[] = {{0, FX_USERS, "user row out of range"},
                 {3, 2, "labeled flag not 0/1"},
                 {5, FX_NEWS, "news row out of range"},
                 {7, FX_NEWS, "news row out of range"},
                 {8, 0x0201, "label not 0/1"}};
    for (size_t i = 0; i < sizeof bad_i / sizeof bad_i[0]; i++) {
        memcpy(imp, good_i, sizeof imp);
        imp[bad_i[i].word] = bad_i[i].value;
        const char *why = dataset_decode_impression(imp, sizeof imp, m, &iv);
        CU_ASSERT_PTR_NOT_NULL_FATAL(why);
        CU_ASSERT_STRING_EQUAL(why, bad_i[i].why);
    }
    /* An unlabeled impression's label bytes are not read as labels. */
    memcpy(imp, good_i, sizeof imp);
    imp[3] = 0;
    imp[8] = 0x0707;
    CU_ASSERT_PTR_NULL(dataset_decode_impression(imp, sizeof imp, m, &iv));
    /* History longer than his_len. */
    meta.his_len = 0;
    memcpy(imp, good_i, sizeof imp);
    CU_ASSERT_STRING_EQUAL(dataset_decode_impression(imp, sizeof imp, m, &iv),
                           "history longer than his_len");
}

/* A data.mdb cut short (a copy that ran out of disk, a partial download): LMDB would map the
 * missing pages and die with SIGBUS on first touch. dataset_open compares the file with the
 * pages LMDB's meta page says are in use and refuses it, naming the file. Run in a child so
 * that a regression is a failed test, not a dead suite. */
static void test_truncated_file(void)
{
    DatasetMeta meta = fixture_meta();
    char *tmpdir;
    char *path = build_fixture(&meta, &tmpdir);
    char mdb[4200];
    snprintf(mdb, sizeof mdb, "%s/data.mdb", path);
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(mdb, &st), 0);
    size_t full = (size_t)st.st_size;
    char *orig = tu_read_file(mdb, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(orig);
    const size_t sizes[] = {8192, full / 2, full - 4096};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        FILE *f = fopen(mdb, "wb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_EQUAL(fwrite(orig, 1, sizes[i], f), sizes[i]);
        fclose(f);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            Dataset *ds = NULL;
            int rc = dataset_open(path, &ds);
            if (rc == 0) { /* touch every row, as eval would */
                DatasetTxn *txn = NULL;
                SampleView s;
                dataset_txn_new(ds, &txn);
                for (uint64_t k = 0; k < FX_SAMPLES; k++)
                    dataset_get_sample(txn, k, &s);
                _exit(3);
            }
            _exit(rc == PSREC_E_FORMAT && strstr(psrec_errmsg(), mdb) &&
                          strstr(psrec_errmsg(), "truncated")
                      ? 0
                      : 4);
        }
        int status = 0;
        CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status))
            fprintf(stderr, "\n  %zu bytes: status 0x%x\n", sizes[i], status);
        CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    /* The whole file again: it opens. */
    FILE *f = fopen(mdb, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(orig, 1, full, f), full);
    fclose(f);
    Dataset *ds = NULL;
    CU_ASSERT_EQUAL(dataset_open(path, &ds), 0);
    dataset_free(&ds);
    free(orig);
    cleanup_fixture(path, tmpdir);
}

int main(void)
{
    static const TuTest tests[] = {
        {"roundtrip of every table and meta", test_roundtrip},
        {"many rows across writer commits", test_many_rows},
        {"open a missing path", test_open_missing},
        {"open something that is not a dataset", test_open_not_a_dataset},
        {"bad meta record", test_bad_meta},
        {"version 1 datasets open without texts", test_version1},
        {"table row count disagrees with meta", test_count_mismatch},
        {"damaged records", test_damaged_records},
        {"rows that do not exist", test_missing_rows},
        {"puts out of order", test_put_order},
        {"writer abort removes the directory", test_writer_abort},
        {"record id lengths near 2^32 are refused", test_decode_id_length_wrap},
        {"decoded ids are checked against the meta", test_decode_ids_in_range},
        {"fingerprint of the name tables", test_fingerprint},
        {"a truncated data.mdb is refused at open", test_truncated_file},
        {NULL, NULL},
    };
    tu_add_suite("dataset", tests);
    return tu_run_all();
}
