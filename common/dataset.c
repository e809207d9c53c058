/* LMDB dataset format (see dataset.h for the layout).
 *
 * Records are arrays of u32 words so that decoding is a bounds check plus pointer casts:
 *   news:        [category, ntok, id_len, tok[ntok]..., id bytes padded to 4]
 *   sample:      [user, pos, imp_lo, imp_hi, nhis, nneg, his[nhis]..., neg[nneg]...]
 *   impression:  [user, nhis, ncand, labeled, id_len, his[nhis]..., cand[ncand]...,
 *                 labels (ncand bytes, padded to 4), id bytes padded to 4]
 *   news_text:   [title_len, category_len, title bytes, category bytes] (unpadded)
 * Every accessor checks that the stored size is exactly what its header words imply, so a
 * damaged database gives PSREC_E_FORMAT with the table and key, never a wild read.
 * Writers add rows in key order with MDB_APPEND (fast); the writer also checks that each
 * table stays dense (row k is the k-th row added), which readers rely on. It commits every
 * few thousand rows to bound the dirty-page list. Readers open with MDB_RDONLY |
 * MDB_NOLOCK | MDB_NOTLS: datasets are immutable once prep renames them into place. */
#include "common/dataset.h"

#include "common/error.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* TBL_TEXTS is last: version 1 datasets have every table before it. */
enum { TBL_META, TBL_VOCAB, TBL_CATS, TBL_USERS, TBL_NEWS, TBL_SAMPLES, TBL_IMPS, TBL_TEXTS,
       TBL_COUNT, TBL_COUNT_V1 = TBL_TEXTS };
static const char *const table_names[TBL_COUNT] = {"meta",    "vocab",       "categories",
                                                    "users",   "news",        "samples",
                                                    "impressions", "news_text"};
/* Integer-keyed tables; meta is keyed by name. u32 keys for id tables, size_t for the rest. */
static const unsigned table_flags[TBL_COUNT] = {0, MDB_INTEGERKEY, MDB_INTEGERKEY,
                                                MDB_INTEGERKEY, MDB_INTEGERKEY, MDB_INTEGERKEY,
                                                MDB_INTEGERKEY, MDB_INTEGERKEY};

/* Address space only (the file grows as used). 256 GiB is many times MIND-large, and small
 * enough to fit ThreadSanitizer's ~1.5 TiB application region, where 1 TiB often did not. */
#define WRITER_MAPSIZE ((size_t)1 << 38)
#define WRITER_COMMIT_EVERY 20000

struct Dataset {
    MDB_env *env;
    MDB_dbi dbi[TBL_COUNT];
    DatasetMeta meta;
    int has_text; /* version 2 on: the news_text table exists */
    char path[4096];
};

struct DatasetTxn {
    Dataset *ds;
    MDB_txn *txn;
};

struct DatasetWriter {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi[TBL_COUNT];
    size_t puts_in_txn;
    MDB_cursor *cur[TBL_COUNT]; /* this txn's append cursor per table (NULL until used); LMDB
                                   frees them when the txn ends */
    uint64_t next[TBL_COUNT]; /* rows added per table: the only key each table accepts next */
    uint64_t fp[TBL_COUNT]; /* FNV-1a of the name tables' rows so far (vocab, cats, users) */
    uint32_t *buf; /* record encoding scratch, grown as needed */
    size_t buf_cap;
    char path[4096];
};

/* In 64 bits: a damaged length near 2^32 must not wrap to 0 words and "match" the record. */
static inline uint64_t words_for_bytes(uint32_t n)
{
    return ((uint64_t)n + 3) / 4;
}

/* ------------------------------------------------------------------ reading */

/* LMDB maps the file and trusts its meta page: a page past the end of a truncated file is
 * a SIGBUS on first touch, not an error. So the file must hold every page the newest meta
 * page says is in use (last_pgno + 1 pages). */
static int check_file_size(MDB_env *env, const char *path)
{
    MDB_envinfo info;
    MDB_stat st;
    int fd, rc;
    struct stat fs;
    if ((rc = mdb_env_info(env, &info)) || (rc = mdb_env_stat(env, &st)) ||
        (rc = mdb_env_get_fd(env, &fd)))
        return psrec_errf(rc, "%s: %s", path, mdb_strerror(rc));
    if (fstat(fd, &fs) != 0)
        return psrec_errf(errno, "%s/data.mdb: %s", path, strerror(errno));
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    if ((uint64_t)fs.st_size < need)
        return psrec_errf(PSREC_E_FORMAT,
                          "%s/data.mdb: truncated: %llu bytes, LMDB's meta page says %llu "
                          "pages of %u bytes (%llu bytes); re-run psrec prep",
                          path, (unsigned long long)fs.st_size,
                          (unsigned long long)info.me_last_pgno + 1, st.ms_psize,
                          (unsigned long long)need);
    return 0;
}

int dataset_open(const char *path, Dataset **out)
{
    *out = NULL;
    Dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return psrec_errf(PSREC_E_NOMEM, "%s: out of memory", path);
    snprintf(ds->path, sizeof ds->path, "%s", path);
    int rc;
    MDB_txn *txn = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        rc = psrec_errf(PSREC_E_NOTFOUND, "%s: no such dataset (run `psrec prep` to make one)",
                        path);
        goto fail;
    }
    /* Map only what the file holds (LMDB raises a smaller map size to the committed data),
     * not the writer's 1 TiB reservation: a process opening several datasets would otherwise
     * reserve terabytes of address space, which sanitizer builds cannot provide. */
    if ((rc = mdb_env_create(&ds->env)) || (rc = mdb_env_set_maxdbs(ds->env, TBL_COUNT)) ||
        (rc = mdb_env_set_mapsize(ds->env, 1))) {
        psrec_errf(rc, "%s: %s", path, mdb_strerror(rc));
        goto fail;
    }
    rc = mdb_env_open(ds->env, path, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS | MDB_NORDAHEAD, 0);
    if (rc) {
        psrec_errf(rc, "%s: cannot open as an LMDB dataset: %s", path, mdb_strerror(rc));
        goto fail;
    }
    if ((rc = check_file_size(ds->env, path)))
        goto fail;
    if ((rc = mdb_txn_begin(ds->env, NULL, MDB_RDONLY, &txn))) {
        psrec_errf(rc, "%s: %s", path, mdb_strerror(rc));
        goto fail;
    }
    for (int t = 0; t < TBL_COUNT_V1; t++) {
        rc = mdb_dbi_open(txn, table_names[t], table_flags[t], &ds->dbi[t]);
        if (rc) {
            rc = psrec_errf(PSREC_E_FORMAT, "%s: not a psrec dataset (table '%s': %s)", path,
                            table_names[t], mdb_strerror(rc));
            goto fail;
        }
    }
    MDB_val key = {4, "meta"}, val;
    if ((rc = mdb_get(txn, ds->dbi[TBL_META], &key, &val))) {
        rc = psrec_errf(PSREC_E_FORMAT, "%s: meta record missing: %s", path, mdb_strerror(rc));
        goto fail;
    }
    if (val.mv_size < 16) {
        rc = psrec_errf(PSREC_E_FORMAT, "%s: meta record too short (%zu bytes)", path,
                        val.mv_size);
        goto fail;
    }
    DatasetMeta m = {0};
    memcpy(&m, val.mv_data, val.mv_size < sizeof m ? val.mv_size : sizeof m);
    if (m.magic != DATASET_MAGIC) {
        rc = psrec_errf(PSREC_E_FORMAT, "%s: bad magic, not a psrec dataset", path);
        goto fail;
    }
    if (m.version < DATASET_VERSION_MIN || m.version > DATASET_VERSION) {
        rc = psrec_errf(PSREC_E_FORMAT,
                        "%s: dataset format version %u, this psrec reads versions %u..%u "
                        "(re-run psrec prep)",
                        path, m.version, DATASET_VERSION_MIN, DATASET_VERSION);
        goto fail;
    }
    ds->has_text = m.version >= 2;
    if (ds->has_text &&
        (rc = mdb_dbi_open(txn, table_names[TBL_TEXTS], table_flags[TBL_TEXTS],
                           &ds->dbi[TBL_TEXTS]))) {
        rc = psrec_errf(PSREC_E_FORMAT, "%s: version %u dataset without table '%s': %s", path,
                        m.version, table_names[TBL_TEXTS], mdb_strerror(rc));
        goto fail;
    }
    /* Before version 3 the record ends before fingerprint (left 0: unknown). */
    const size_t want = m.version >= 3 ? sizeof m : DATASET_META_V2_SIZE;
    if (m.size != want || val.mv_size != want) {
        rc = psrec_errf(PSREC_E_FORMAT, "%s: meta record is %zu bytes, header says %u, need %zu",
                        path, val.mv_size, m.size, want);
        goto fail;
    }
    if (m.title_len == 0 || m.news_rows == 0 || m.vocab_rows < 2 || m.user_rows == 0 ||
        m.category_rows == 0) {
        rc = psrec_errf(PSREC_E_FORMAT, "%s: meta record has impossible sizes", path);
        goto fail;
    }
    MDB_stat ms;
    struct {
        int t;
        uint64_t want;
    } checks[] = {{TBL_VOCAB, m.vocab_rows}, {TBL_CATS, m.category_rows},
                  {TBL_USERS, m.user_rows},  {TBL_NEWS, m.news_rows},
                  {TBL_SAMPLES, m.samples},  {TBL_IMPS, m.impressions},
                  {TBL_TEXTS, m.news_rows}};
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        if (checks[i].t == TBL_TEXTS && !ds->has_text)
            continue;
        mdb_stat(txn, ds->dbi[checks[i].t], &ms);
        if (ms.ms_entries != checks[i].want) {
            rc = psrec_errf(PSREC_E_FORMAT, "%s: table '%s' has %zu rows, meta says %llu", path,
                            table_names[checks[i].t], ms.ms_entries,
                            (unsigned long long)checks[i].want);
            goto fail;
        }
    }
    /* Commit, not abort: LMDB closes the table handles opened in a transaction that is
     * aborted, and every later read would fail with EINVAL. */
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) {
        psrec_errf(rc, "%s: %s", path, mdb_strerror(rc));
        goto fail;
    }
    ds->meta = m;
    *out = ds;
    return 0;
fail:
    if (txn)
        mdb_txn_abort(txn);
    if (ds->env)
        mdb_env_close(ds->env);
    free(ds);
    return rc;
}

void dataset_free(Dataset **ds)
{
    if (!ds || !*ds)
        return;
    mdb_env_close((*ds)->env);
    free(*ds);
    *ds = NULL;
}

const DatasetMeta *dataset_meta(const Dataset *ds)
{
    return &ds->meta;
}

int dataset_txn_new(Dataset *ds, DatasetTxn **out)
{
    *out = NULL;
    DatasetTxn *t = calloc(1, sizeof *t);
    if (!t)
        return psrec_nomem(__func__);
    t->ds = ds;
    int rc = mdb_txn_begin(ds->env, NULL, MDB_RDONLY, &t->txn);
    if (rc) {
        free(t);
        return psrec_errf(rc, "%s: %s", ds->path, mdb_strerror(rc));
    }
    *out = t;
    return 0;
}

void dataset_txn_free(DatasetTxn **txn)
{
    if (!txn || !*txn)
        return;
    mdb_txn_abort((*txn)->txn);
    free(*txn);
    *txn = NULL;
}

int dataset_txn_reset(DatasetTxn *txn)
{
    mdb_txn_reset(txn->txn);
    int rc = mdb_txn_renew(txn->txn);
    return rc ? psrec_errf(rc, "%s: %s", txn->ds->path, mdb_strerror(rc)) : 0;
}

/* Fetch the record of an integer key; u32 keys for id tables, size_t for samples/impressions. */
static int get_u32_key(DatasetTxn *txn, int table, uint32_t id, MDB_val *val)
{
    MDB_val key = {sizeof id, &id};
    int rc = mdb_get(txn->txn, txn->ds->dbi[table], &key, val);
    if (rc == MDB_NOTFOUND)
        return psrec_errf(PSREC_E_NOTFOUND, "%s: %s row %u does not exist", txn->ds->path,
                          table_names[table], id);
    return rc ? psrec_errf(rc, "%s: %s", txn->ds->path, mdb_strerror(rc)) : 0;
}

static int get_size_key(DatasetTxn *txn, int table, uint64_t index, MDB_val *val)
{
    size_t k = (size_t)index;
    MDB_val key = {sizeof k, &k};
    int rc = mdb_get(txn->txn, txn->ds->dbi[table], &key, val);
    if (rc == MDB_NOTFOUND)
        return psrec_errf(PSREC_E_NOTFOUND, "%s: %s row %llu does not exist", txn->ds->path,
                          table_names[table], (unsigned long long)index);
    return rc ? psrec_errf(rc, "%s: %s", txn->ds->path, mdb_strerror(rc)) : 0;
}

static int corrupt(DatasetTxn *txn, int table, uint64_t key, const char *why)
{
    return psrec_errf(PSREC_E_FORMAT, "%s: %s row %llu is damaged (%s)", txn->ds->path,
                      table_names[table], (unsigned long long)key, why);
}

/* Why a record of u32 words cannot be decoded, or NULL when its size and alignment are fine.
 * LMDB aligns values only to 2 bytes; records that are whole words with 4- or 8-byte keys
 * always land 4-aligned, so a misaligned one means a neighbouring record has a damaged size,
 * and reading it through a u32 pointer would be undefined. */
static const char *words_problem(const MDB_val *v, size_t min_words)
{
    if (v->mv_size % 4 || v->mv_size / 4 < min_words)
        return "size mismatch";
    if ((uintptr_t)v->mv_data % 4)
        return "misaligned: a record near it is damaged";
    return NULL;
}

/* 1 when every one of the n ids is below rows. */
static int ids_below(const uint32_t *ids, uint32_t n, uint64_t rows)
{
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] >= rows)
            return 0;
    return 1;
}

const char *dataset_decode_news(const void *data, size_t size, const DatasetMeta *m,
                                NewsView *out)
{
    MDB_val v = {size, (void *)data};
    const char *why = words_problem(&v, 3);
    if (why)
        return why;
    const uint32_t *w = data;
    size_t nw = size / 4;
    if (w[1] == 0 || w[1] > m->title_len)
        return "token count out of 1..title_len";
    if (nw != 3 + (size_t)w[1] + words_for_bytes(w[2]))
        return "size mismatch";
    if (w[0] >= m->category_rows)
        return "category id out of range";
    if (!ids_below(w + 3, w[1], m->vocab_rows))
        return "word id out of range";
    out->category = w[0];
    out->ntok = w[1];
    out->id_len = w[2];
    out->tokens = w + 3;
    out->id = (const char *)(w + 3 + w[1]);
    return NULL;
}

const char *dataset_decode_sample(const void *data, size_t size, const DatasetMeta *m,
                                  SampleView *out)
{
    MDB_val v = {size, (void *)data};
    const char *why = words_problem(&v, 6);
    if (why)
        return why;
    const uint32_t *w = data;
    size_t nw = size / 4;
    if (nw != 6 + (size_t)w[4] + w[5])
        return "size mismatch";
    if (w[4] > m->his_len)
        return "history longer than his_len";
    uint64_t imp = (uint64_t)w[2] | (uint64_t)w[3] << 32;
    if (w[0] >= m->user_rows)
        return "user row out of range";
    if (w[1] >= m->news_rows || !ids_below(w + 6, w[4] + w[5], m->news_rows))
        return "news row out of range";
    if (imp >= m->impressions)
        return "impression index out of range";
    out->user = w[0];
    out->pos = w[1];
    out->impression = imp;
    out->nhis = w[4];
    out->nneg = w[5];
    out->his = w + 6;
    out->neg = w + 6 + w[4];
    return NULL;
}

const char *dataset_decode_impression(const void *data, size_t size, const DatasetMeta *m,
                                      ImpressionView *out)
{
    MDB_val v = {size, (void *)data};
    const char *why = words_problem(&v, 5);
    if (why)
        return why;
    const uint32_t *w = data;
    size_t nw = size / 4;
    if (nw != 5 + (size_t)w[1] + w[2] + words_for_bytes(w[2]) + words_for_bytes(w[4]))
        return "size mismatch";
    if (w[1] > m->his_len)
        return "history longer than his_len";
    if (w[0] >= m->user_rows)
        return "user row out of range";
    if (w[3] > 1)
        return "labeled flag not 0/1";
    if (!ids_below(w + 5, w[1] + w[2], m->news_rows))
        return "news row out of range";
    const uint8_t *labels = (const uint8_t *)(w + 5 + w[1] + w[2]);
    for (uint32_t i = 0; w[3] && i < w[2]; i++)
        if (labels[i] > 1)
            return "label not 0/1";
    out->user = w[0];
    out->nhis = w[1];
    out->ncand = w[2];
    out->labeled = w[3];
    out->id_len = w[4];
    out->his = w + 5;
    out->cand = w + 5 + w[1];
    out->labels = labels;
    out->id = (const char *)(w + 5 + w[1] + w[2] + words_for_bytes(w[2]));
    return NULL;
}

int dataset_get_news(DatasetTxn *txn, uint32_t row, NewsView *out)
{
    MDB_val v;
    int rc = get_u32_key(txn, TBL_NEWS, row, &v);
    if (rc)
        return rc;
    const char *why = dataset_decode_news(v.mv_data, v.mv_size, &txn->ds->meta, out);
    return why ? corrupt(txn, TBL_NEWS, row, why) : 0;
}

int dataset_get_sample(DatasetTxn *txn, uint64_t index, SampleView *out)
{
    MDB_val v;
    int rc = get_size_key(txn, TBL_SAMPLES, index, &v);
    if (rc)
        return rc;
    const char *why = dataset_decode_sample(v.mv_data, v.mv_size, &txn->ds->meta, out);
    return why ? corrupt(txn, TBL_SAMPLES, index, why) : 0;
}

int dataset_get_impression(DatasetTxn *txn, uint64_t index, ImpressionView *out)
{
    MDB_val v;
    int rc = get_size_key(txn, TBL_IMPS, index, &v);
    if (rc)
        return rc;
    const char *why = dataset_decode_impression(v.mv_data, v.mv_size, &txn->ds->meta, out);
    return why ? corrupt(txn, TBL_IMPS, index, why) : 0;
}

static int get_name(DatasetTxn *txn, int table, uint32_t id, const char **str, uint32_t *len)
{
    MDB_val v;
    int rc = get_u32_key(txn, table, id, &v);
    if (rc)
        return rc;
    *str = v.mv_data;
    *len = (uint32_t)v.mv_size;
    return 0;
}

int dataset_get_word(DatasetTxn *txn, uint32_t id, const char **str, uint32_t *len)
{
    return get_name(txn, TBL_VOCAB, id, str, len);
}

int dataset_get_category(DatasetTxn *txn, uint32_t id, const char **str, uint32_t *len)
{
    return get_name(txn, TBL_CATS, id, str, len);
}

int dataset_get_user(DatasetTxn *txn, uint32_t row, const char **str, uint32_t *len)
{
    return get_name(txn, TBL_USERS, row, str, len);
}

int dataset_has_news_text(const Dataset *ds)
{
    return ds->has_text;
}

int dataset_get_news_text(DatasetTxn *txn, uint32_t row, NewsText *out)
{
    *out = (NewsText){.title = "", .category = ""};
    if (!txn->ds->has_text)
        return 0;
    MDB_val v;
    int rc = get_u32_key(txn, TBL_TEXTS, row, &v);
    if (rc)
        return rc;
    if (v.mv_size < 8)
        return corrupt(txn, TBL_TEXTS, row, "size mismatch");
    uint32_t tl, cl;
    memcpy(&tl, v.mv_data, 4);
    memcpy(&cl, (const char *)v.mv_data + 4, 4);
    if ((uint64_t)v.mv_size != 8 + (uint64_t)tl + cl)
        return corrupt(txn, TBL_TEXTS, row, "size mismatch");
    out->title = (const char *)v.mv_data + 8;
    out->title_len = tl;
    out->category = out->title + tl;
    out->category_len = cl;
    return 0;
}

int dataset_find_user(DatasetTxn *txn, const char *str, uint32_t len, uint32_t *row)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn->txn, txn->ds->dbi[TBL_USERS], &c);
    if (rc)
        return psrec_errf(rc, "%s: %s", txn->ds->path, mdb_strerror(rc));
    MDB_val k, v;
    rc = PSREC_E_NOTFOUND;
    for (int op = MDB_FIRST; mdb_cursor_get(c, &k, &v, (MDB_cursor_op)op) == 0; op = MDB_NEXT) {
        if (v.mv_size == len && k.mv_size == 4 && memcmp(v.mv_data, str, len) == 0) {
            memcpy(row, k.mv_data, 4);
            rc = 0;
            break;
        }
    }
    mdb_cursor_close(c);
    return rc;
}

/* ------------------------------------------------------------------ writing */

static int writer_fail(DatasetWriter *w, int rc, const char *what)
{
    return psrec_errf(rc, "%s: %s: %s", w->path, what, psrec_strerror(rc));
}

int dataset_writer_new(const char *path, DatasetWriter **out)
{
    *out = NULL;
    DatasetWriter *w = calloc(1, sizeof *w);
    if (!w)
        return psrec_nomem(__func__);
    snprintf(w->path, sizeof w->path, "%s", path);
    int rc;
    if (mkdir(path, 0755) != 0) {
        rc = errno;
        psrec_errf(rc, "%s: cannot create dataset directory: %s", path, strerror(rc));
        free(w);
        return rc;
    }
    if ((rc = mdb_env_create(&w->env)) || (rc = mdb_env_set_maxdbs(w->env, TBL_COUNT)) ||
        (rc = mdb_env_set_mapsize(w->env, WRITER_MAPSIZE)) ||
        (rc = mdb_env_open(w->env, path, MDB_NOSYNC | MDB_NOMETASYNC, 0644))) {
        writer_fail(w, rc, "cannot create LMDB environment");
        goto fail;
    }
    if ((rc = mdb_txn_begin(w->env, NULL, 0, &w->txn))) {
        writer_fail(w, rc, "begin");
        goto fail;
    }
    for (int t = 0; t < TBL_COUNT; t++)
        if ((rc = mdb_dbi_open(w->txn, table_names[t], table_flags[t] | MDB_CREATE, &w->dbi[t]))) {
            writer_fail(w, rc, table_names[t]);
            goto fail;
        }
    *out = w;
    return 0;
fail:
    dataset_writer_abort(&w);
    return rc;
}

static uint32_t *writer_buf(DatasetWriter *w, size_t words)
{
    if (words > w->buf_cap) {
        size_t cap = words * 2;
        uint32_t *nb = realloc(w->buf, cap * 4);
        if (!nb)
            return NULL;
        w->buf = nb;
        w->buf_cap = cap;
    }
    return w->buf;
}

/* Rows go in through one cursor per table kept for the whole txn: an appending cursor stays
 * on its last leaf, where mdb_put would open a new one and walk the tree from the root for
 * every row (a tenth of prep's time). The pages written are the same. */
static int writer_put(DatasetWriter *w, int table, MDB_val *key, MDB_val *val)
{
    int rc;
    if (table == TBL_META) {
        rc = mdb_put(w->txn, w->dbi[table], key, val, 0);
    } else {
        if (!w->cur[table] && (rc = mdb_cursor_open(w->txn, w->dbi[table], &w->cur[table])))
            return writer_fail(w, rc, table_names[table]);
        rc = mdb_cursor_put(w->cur[table], key, val, MDB_APPEND);
    }
    if (rc == MDB_KEYEXIST)
        return psrec_errf(PSREC_E_STATE, "%s: %s rows must be added in increasing order",
                          w->path, table_names[table]);
    if (rc)
        return writer_fail(w, rc, table_names[table]);
    if (++w->puts_in_txn >= WRITER_COMMIT_EVERY) {
        memset(w->cur, 0, sizeof w->cur); /* the commit frees them */
        if ((rc = mdb_txn_commit(w->txn))) {
            w->txn = NULL;
            return writer_fail(w, rc, "commit");
        }
        w->txn = NULL;
        if ((rc = mdb_txn_begin(w->env, NULL, 0, &w->txn)))
            return writer_fail(w, rc, "begin");
        w->puts_in_txn = 0;
    }
    return 0;
}

/* Tables are dense (readers index them 0..rows-1), so the next key is the row count. */
static int check_next(DatasetWriter *w, int table, uint64_t key)
{
    if (key != w->next[table])
        return psrec_errf(PSREC_E_STATE, "%s: %s row %llu added out of order (next is %llu)",
                          w->path, table_names[table], (unsigned long long)key,
                          (unsigned long long)w->next[table]);
    return 0;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* A name table's row into its running hash: id and length as LE u32, then the bytes. */
static void fingerprint_row(DatasetWriter *w, int table, uint32_t id, const void *data,
                            uint32_t len)
{
    const unsigned char hdr[8] = {(unsigned char)id,         (unsigned char)(id >> 8),
                                  (unsigned char)(id >> 16), (unsigned char)(id >> 24),
                                  (unsigned char)len,        (unsigned char)(len >> 8),
                                  (unsigned char)(len >> 16), (unsigned char)(len >> 24)};
    if (!w->fp[table])
        w->fp[table] = FNV_OFFSET;
    w->fp[table] = fnv(fnv(w->fp[table], hdr, sizeof hdr), data, len);
}

/* The dataset's fingerprint: the three name tables' hashes, each with its table's tag. Never
 * 0, which means "unknown" (datasets before version 3). */
static uint64_t fingerprint_finish(const DatasetWriter *w)
{
    uint64_t h = FNV_OFFSET;
    const int tables[] = {TBL_VOCAB, TBL_CATS, TBL_USERS};
    for (size_t i = 0; i < 3; i++) {
        unsigned char b[9] = {(unsigned char)tables[i]};
        for (int k = 0; k < 8; k++)
            b[1 + k] = (unsigned char)(w->fp[tables[i]] >> (8 * k));
        h = fnv(h, b, sizeof b);
    }
    return h ? h : 1;
}

static int put_u32(DatasetWriter *w, int table, uint32_t id, const void *data, size_t size)
{
    MDB_val key = {sizeof id, &id}, val = {size, (void *)data};
    int rc = check_next(w, table, id);
    if (!rc && !(rc = writer_put(w, table, &key, &val))) {
        w->next[table]++;
        if (table == TBL_VOCAB || table == TBL_CATS || table == TBL_USERS)
            fingerprint_row(w, table, id, data, (uint32_t)size);
    }
    return rc;
}

static int put_size(DatasetWriter *w, int table, uint64_t index, const void *data, size_t size)
{
    size_t k = (size_t)index;
    MDB_val key = {sizeof k, &k}, val = {size, (void *)data};
    int rc = check_next(w, table, index);
    if (!rc && !(rc = writer_put(w, table, &key, &val)))
        w->next[table]++;
    return rc;
}

/* memcpy of n bytes where src may be NULL when n is 0 (NULL is UB even for 0 bytes). */
static void copy_in(void *dst, const void *src, size_t n)
{
    if (n)
        memcpy(dst, src, n);
}

int dataset_put_word(DatasetWriter *w, uint32_t id, const char *str, uint32_t len)
{
    return put_u32(w, TBL_VOCAB, id, str, len);
}

int dataset_put_category(DatasetWriter *w, uint32_t id, const char *str, uint32_t len)
{
    return put_u32(w, TBL_CATS, id, str, len);
}

int dataset_put_user(DatasetWriter *w, uint32_t row, const char *str, uint32_t len)
{
    return put_u32(w, TBL_USERS, row, str, len);
}

int dataset_put_news(DatasetWriter *w, uint32_t row, const NewsView *n)
{
    if (n->ntok == 0)
        return psrec_errf(PSREC_E_RANGE, "%s: news row %u has no tokens", w->path, row);
    size_t words = 3 + (size_t)n->ntok + words_for_bytes(n->id_len);
    uint32_t *b = writer_buf(w, words);
    if (!b)
        return psrec_nomem(__func__);
    b[0] = n->category;
    b[1] = n->ntok;
    b[2] = n->id_len;
    memcpy(b + 3, n->tokens, (size_t)n->ntok * 4);
    b[words - 1] = 0; /* zero the id's padding bytes */
    copy_in(b + 3 + n->ntok, n->id, n->id_len);
    return put_u32(w, TBL_NEWS, row, b, words * 4);
}

int dataset_put_news_text(DatasetWriter *w, uint32_t row, const NewsText *t)
{
    size_t bytes = 8 + (size_t)t->title_len + t->category_len;
    char *b = (char *)writer_buf(w, words_for_bytes((uint32_t)bytes));
    if (!b)
        return psrec_nomem(__func__);
    memcpy(b, &t->title_len, 4);
    memcpy(b + 4, &t->category_len, 4);
    copy_in(b + 8, t->title, t->title_len);
    copy_in(b + 8 + t->title_len, t->category, t->category_len);
    return put_u32(w, TBL_TEXTS, row, b, bytes);
}

int dataset_put_sample(DatasetWriter *w, uint64_t index, const SampleView *s)
{
    size_t words = 6 + (size_t)s->nhis + s->nneg;
    uint32_t *b = writer_buf(w, words);
    if (!b)
        return psrec_nomem(__func__);
    b[0] = s->user;
    b[1] = s->pos;
    b[2] = (uint32_t)s->impression;
    b[3] = (uint32_t)(s->impression >> 32);
    b[4] = s->nhis;
    b[5] = s->nneg;
    copy_in(b + 6, s->his, (size_t)s->nhis * 4);
    copy_in(b + 6 + s->nhis, s->neg, (size_t)s->nneg * 4);
    return put_size(w, TBL_SAMPLES, index, b, words * 4);
}

int dataset_put_impression(DatasetWriter *w, uint64_t index, const ImpressionView *imp)
{
    size_t lw = words_for_bytes(imp->ncand), iw = words_for_bytes(imp->id_len);
    size_t words = 5 + (size_t)imp->nhis + imp->ncand + lw + iw;
    uint32_t *b = writer_buf(w, words);
    if (!b)
        return psrec_nomem(__func__);
    memset(b, 0, words * 4);
    b[0] = imp->user;
    b[1] = imp->nhis;
    b[2] = imp->ncand;
    b[3] = imp->labeled;
    b[4] = imp->id_len;
    copy_in(b + 5, imp->his, (size_t)imp->nhis * 4);
    copy_in(b + 5 + imp->nhis, imp->cand, (size_t)imp->ncand * 4);
    if (imp->labeled)
        copy_in(b + 5 + imp->nhis + imp->ncand, imp->labels, imp->ncand);
    copy_in(b + 5 + imp->nhis + imp->ncand + lw, imp->id, imp->id_len);
    return put_size(w, TBL_IMPS, index, b, words * 4);
}

int dataset_writer_finish(DatasetWriter **wp, const DatasetMeta *meta)
{
    DatasetWriter *w = *wp;
    DatasetMeta m = *meta;
    m.magic = DATASET_MAGIC;
    m.version = DATASET_VERSION;
    m.size = sizeof m;
    m.tokenizer_version = DATASET_TOKENIZER_VERSION;
    m.fingerprint = fingerprint_finish(w);
    MDB_val key = {4, "meta"}, val = {sizeof m, &m};
    int rc = writer_put(w, TBL_META, &key, &val);
    if (rc)
        goto fail;
    rc = mdb_txn_commit(w->txn);
    w->txn = NULL;
    if (rc) {
        writer_fail(w, rc, "commit");
        goto fail;
    }
    if ((rc = mdb_env_sync(w->env, 1))) {
        writer_fail(w, rc, "sync");
        goto fail;
    }
    mdb_env_close(w->env);
    free(w->buf);
    free(w);
    *wp = NULL;
    return 0;
fail:
    dataset_writer_abort(wp);
    return rc;
}

void dataset_writer_abort(DatasetWriter **wp)
{
    DatasetWriter *w = *wp;
    if (!w)
        return;
    if (w->txn)
        mdb_txn_abort(w->txn);
    if (w->env)
        mdb_env_close(w->env);
    /* Remove what was written: the two LMDB files, then the directory. */
    char p[4200];
    snprintf(p, sizeof p, "%s/data.mdb", w->path);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", w->path);
    unlink(p);
    rmdir(w->path);
    free(w->buf);
    free(w);
    *wp = NULL;
}
