/* MIND TSV -> LMDB dataset (DESIGN.md "Processes and data flow").
 *
 * Two streaming passes, one per file:
 *   news.tsv:      ids -> news rows (first occurrence of a duplicate id wins), categories in
 *                  order of first appearance, titles tokenized (the raw title and category
 *                  name go to news_text as each row is made); the train split counts words
 *                  and builds the vocabulary afterwards (sorted by bytes, min count), exactly
 *                  as the reference peer does, so ids agree with it.
 *   behaviors.tsv: each line becomes one impression record, and each click one sample
 *                  (user, last his_len history clicks, the click, that impression's negatives).
 * Memory holds the id maps and the news tokens (news_rows x title_len u32), never the
 * behaviors: they stream straight into LMDB.
 * Everything is written under "<out>.tmp-<pid>" and renamed to <out> at the end; any error
 * removes the temporary directory, so <out> is either complete or absent. */
#include "launch/prep.h"

#include "common/error.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/progress.h"
#include "common/strmap.h"
#include "common/tokenize.h"
#include "common/tsv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PREP_DEFAULT_TITLE_LEN 30
#define PREP_DEFAULT_HIS_LEN 50

/* All state of one prep run; freed by prep_fini. */
typedef struct Prep {
    const PrepOptions *opt;
    uint32_t title_len, his_len;
    DatasetWriter *w;
    DatasetMeta meta;
    StrMap *news_ids;   /* news id -> news row (1-based; 0 is padding) */
    StrMap *words;      /* train: word -> provisional id; shared: word -> final id */
    StrMap *cats;       /* category name -> category id (0 = <none>) */
    StrMap *users;      /* user id -> user row (0 = <unk>) */
    StrMap *split_cats; /* categories seen in this news.tsv (for the count) */
    StrMap *split_users; /* users seen in this behaviors.tsv (for the count) */
    uint64_t *word_counts; /* train: provisional id -> count */
    size_t word_counts_cap;
    uint32_t *news_tok;  /* (news_rows, title_len) provisional/final word ids */
    uint32_t *news_ntok; /* (news_rows) */
    uint32_t *news_cat;  /* (news_rows) */
    uint32_t *news_idx;  /* (news_rows) insertion index of the id in news_ids, for its bytes */
    size_t news_cap;
    char *lower;         /* title lowering scratch */
    size_t lower_cap;
    uint32_t *his, *cand, *neg; /* behaviors scratch */
    size_t cand_cap, his_cap;
    TsvSpan *id_spans;   /* (id_cap) a behaviors line's history ids, then candidate ids */
    uint8_t *clicked;    /* (clicked_cap >= id_cap) 1 for a clicked candidate (as id_spans) */
    uint64_t *id_hash;   /* (id_hash_cap >= id_cap) their strmap hashes */
    size_t id_cap, clicked_cap, id_hash_cap;
    ProgressMeter meter;  /* MB of both TSV files read (opt->progress) */
    uint64_t bytes_before; /* bytes of the files read before the current one */
    uint64_t bytes_total;
} Prep;

/* The progress line, every 4096 lines of the file lr reads. */
static void prep_progress(Prep *p, const LineReader *lr)
{
    if (p->meter.on && (lr_lineno(lr) & 4095) == 0)
        progress_meter_update(&p->meter, (p->bytes_before + lr_bytes(lr)) >> 20,
                              p->bytes_total >> 20);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 1024;
    while (nc < need)
        nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np)
        return psrec_errf(PSREC_E_NOMEM, "out of memory");
    *p = np;
    *cap = nc;
    return 0;
}

/* ------------------------------------------------------------------ shared tables */

/* Copy one name table (vocab, categories or users) of the vocab source into the new dataset
 * and into a map. */
static int copy_table(Prep *p, DatasetTxn *txn, uint64_t rows,
                      int (*get)(DatasetTxn *, uint32_t, const char **, uint32_t *),
                      int (*put)(DatasetWriter *, uint32_t, const char *, uint32_t), StrMap *map)
{
    for (uint64_t i = 0; i < rows; i++) {
        const char *s;
        uint32_t n;
        int rc = get(txn, (uint32_t)i, &s, &n);
        if (rc || (rc = put(p->w, (uint32_t)i, s, n)))
            return rc;
        if (map && (rc = strmap_set(map, s, n, (uint32_t)i)))
            return rc;
    }
    return 0;
}

static int load_vocab_source(Prep *p)
{
    Dataset *src = NULL;
    DatasetTxn *txn = NULL;
    int rc = dataset_open(p->opt->vocab_from, &src);
    if (rc)
        return psrec_errf(rc, "--vocab-from: %s", psrec_errmsg());
    const DatasetMeta *sm = dataset_meta(src);
    if (!p->opt->title_len)
        p->title_len = sm->title_len;
    if (!p->opt->his_len)
        p->his_len = sm->his_len;
    p->meta.min_count = sm->min_count;
    p->meta.vocab = sm->vocab;
    p->meta.vocab_rows = sm->vocab_rows;
    p->meta.category_rows = sm->category_rows;
    p->meta.user_rows = sm->user_rows;
    if ((rc = dataset_txn_new(src, &txn)))
        goto out;
    /* Reserved rows (<pad>, <unk>, <none>) are copied too but kept out of the maps so a
     * real word spelled "<unk>" cannot alias them. */
    if ((rc = copy_table(p, txn, sm->vocab_rows, dataset_get_word, dataset_put_word, p->words)) ||
        (rc = copy_table(p, txn, sm->category_rows, dataset_get_category, dataset_put_category,
                         p->cats)) ||
        (rc = copy_table(p, txn, sm->user_rows, dataset_get_user, dataset_put_user, p->users)))
        goto out;
    for (const char *reserved[] = {"<pad>", "<unk>", "<none>", NULL}, **r = reserved; *r; r++) {
        uint32_t v;
        if (strmap_get(p->words, *r, strlen(*r), &v) && v < 2)
            strmap_set(p->words, *r, strlen(*r), UINT32_MAX);
        if (strmap_get(p->cats, *r, strlen(*r), &v) && v == 0)
            strmap_set(p->cats, *r, strlen(*r), UINT32_MAX);
        if (strmap_get(p->users, *r, strlen(*r), &v) && v == 0)
            strmap_set(p->users, *r, strlen(*r), UINT32_MAX);
    }
out:
    dataset_txn_free(&txn);
    dataset_free(&src);
    return rc;
}

/* ------------------------------------------------------------------ news.tsv */

static int bad_line(Prep *p, const char *path, uint64_t lineno, const char *reason)
{
    if (p->opt->skip_bad_lines) {
        p->meta.skipped_lines++;
        if (p->meta.skipped_lines <= 10)
            LOG_WARN("%s:%llu: %s (skipped)", path, (unsigned long long)lineno, reason);
        return 0;
    }
    return psrec_errf(PSREC_E_PARSE, "%s:%llu: %s", path, (unsigned long long)lineno, reason);
}

/* Tokenize one title into row's token slots; words map to provisional (train) or final
 * (shared vocabulary) ids. All tokens are counted, as the peer counts them; only the first
 * title_len are kept. */
static int tokenize_title(Prep *p, const TsvSpan *title, uint32_t row)
{
    int rc = grow((void **)&p->lower, &p->lower_cap, title->n + 1, 1);
    if (rc)
        return rc;
    tokenize_lower(p->lower, title->p, title->n);
    uint32_t *slots = p->news_tok + (size_t)row * p->title_len;
    uint32_t ntok = 0;
    size_t pos = 0, len;
    const char *tok;
    const int shared = p->opt->vocab_from != NULL;
    while (tokenize_next(p->lower, title->n, &pos, &tok, &len)) {
        uint32_t id;
        if (shared) {
            if (ntok >= p->title_len)
                break;
            if (!strmap_get(p->words, tok, len, &id) || id == UINT32_MAX)
                id = DATASET_UNK_WORD;
        } else {
            int inserted;
            if ((rc = strmap_intern(p->words, tok, len, (uint32_t)strmap_count(p->words), &id,
                                    &inserted)))
                return rc;
            if ((rc = grow((void **)&p->word_counts, &p->word_counts_cap, (size_t)id + 1,
                           sizeof *p->word_counts)))
                return rc;
            if (inserted)
                p->word_counts[id] = 0;
            p->word_counts[id]++;
        }
        if (ntok < p->title_len)
            slots[ntok++] = id;
    }
    if (ntok == 0) { /* an empty title reads as one unknown word, as in the peer */
        slots[0] = shared ? DATASET_UNK_WORD : UINT32_MAX;
        ntok = 1;
    }
    p->news_ntok[row] = ntok;
    return 0;
}

static int read_news(Prep *p)
{
    const char *path = p->opt->news_path;
    LineReader *lr = NULL;
    int rc = lr_open(&lr, path);
    if (rc)
        return rc;
    const char *line;
    size_t len;
    char reason[256];
    uint32_t rows = 1; /* row 0 = padding news */
    /* Texts go out as the rows are made (the table is dense in row order): nothing about a
     * raw title waits for the vocabulary. */
    if ((rc = dataset_put_news_text(p->w, DATASET_PAD_NEWS, &(NewsText){.title = "",
                                                                          .category = ""})))
        goto out;
    while ((rc = lr_next(lr, &line, &len)) == 0) {
        prep_progress(p, lr);
        NewsRow nr;
        if (tsv_parse_news(line, len, &nr, reason, sizeof reason)) {
            if ((rc = bad_line(p, path, lr_lineno(lr), reason)))
                goto out;
            continue;
        }
        uint32_t row;
        int inserted;
        if ((rc = strmap_intern(p->news_ids, nr.id.p, nr.id.n, rows, &row, &inserted)))
            goto out;
        if (!inserted) {
            p->meta.duplicate_news++;
            continue;
        }
        size_t cap = p->news_cap;
        if ((rc = grow((void **)&p->news_ntok, &p->news_cap, (size_t)rows + 1, 4)))
            goto out;
        if (cap != p->news_cap) {
            cap = p->news_cap;
            if (!(p->news_tok = realloc(p->news_tok, cap * p->title_len * 4)) ||
                !(p->news_cat = realloc(p->news_cat, cap * 4)) ||
                !(p->news_idx = realloc(p->news_idx, cap * 4))) {
                rc = psrec_errf(PSREC_E_NOMEM, "out of memory");
                goto out;
            }
        }
        p->news_idx[row] = (uint32_t)(strmap_count(p->news_ids) - 1);
        uint32_t cat;
        if ((rc = strmap_intern(p->split_cats, nr.category.p, nr.category.n, 0, NULL, NULL)))
            goto out;
        if (p->opt->vocab_from) {
            if (!strmap_get(p->cats, nr.category.p, nr.category.n, &cat) || cat == UINT32_MAX)
                cat = 0;
        } else if ((rc = strmap_intern(p->cats, nr.category.p, nr.category.n,
                                       (uint32_t)strmap_count(p->cats) + 1, &cat, NULL))) {
            goto out;
        }
        p->news_cat[row] = cat;
        if ((rc = tokenize_title(p, &nr.title, row)))
            goto out;
        NewsText text = {.title = nr.title.p, .title_len = (uint32_t)nr.title.n,
                         .category = nr.category.p, .category_len = (uint32_t)nr.category.n};
        if ((rc = dataset_put_news_text(p->w, row, &text)))
            goto out;
        rows++;
    }
    if (rc != PSREC_E_NOTFOUND)
        goto out;
    rc = 0;
    p->meta.news = rows - 1;
    p->meta.news_rows = rows;
    p->meta.categories = strmap_count(p->split_cats);
    p->meta.tsv_bytes += lr_bytes(lr);
out:
    lr_close(&lr);
    return rc;
}

/* Train split: sort the counted words by bytes (Python's str order for UTF-8), keep those
 * with count >= min_count as ids 2.., map the rest to <unk>, and rewrite the titles. */
typedef struct WordRef {
    const char *s;
    uint32_t n;
    uint32_t prov;
} WordRef;

static int wordref_cmp(const void *a, const void *b)
{
    const WordRef *x = a, *y = b;
    uint32_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, n);
    if (c)
        return c;
    return (x->n > y->n) - (x->n < y->n);
}

static int build_vocab(Prep *p)
{
    size_t nw = strmap_count(p->words);
    WordRef *refs = malloc((nw ? nw : 1) * sizeof *refs);
    uint32_t *final_id = malloc((nw ? nw : 1) * sizeof *final_id);
    int rc = 0;
    if (!refs || !final_id) {
        rc = psrec_errf(PSREC_E_NOMEM, "out of memory");
        goto out;
    }
    StrMapEntry e;
    size_t pos = 0, k = 0;
    while (strmap_next(p->words, &pos, &e))
        refs[k++] = (WordRef){e.key, e.len, e.val};
    qsort(refs, nw, sizeof *refs, wordref_cmp);
    if ((rc = dataset_put_word(p->w, DATASET_PAD_WORD, "<pad>", 5)) ||
        (rc = dataset_put_word(p->w, DATASET_UNK_WORD, "<unk>", 5)))
        goto out;
    uint32_t next = 2;
    for (size_t i = 0; i < nw; i++) {
        if (p->word_counts[refs[i].prov] >= p->opt->min_count) {
            final_id[refs[i].prov] = next;
            if ((rc = dataset_put_word(p->w, next, refs[i].s, refs[i].n)))
                goto out;
            next++;
        } else {
            final_id[refs[i].prov] = DATASET_UNK_WORD;
        }
    }
    p->meta.vocab = next - 2;
    p->meta.vocab_rows = next;
    for (uint32_t row = 1; row < p->meta.news_rows; row++) {
        uint32_t *t = p->news_tok + (size_t)row * p->title_len;
        for (uint32_t i = 0; i < p->news_ntok[row]; i++)
            t[i] = t[i] == UINT32_MAX ? DATASET_UNK_WORD : final_id[t[i]];
    }
out:
    free(refs);
    free(final_id);
    return rc;
}

static int write_news(Prep *p)
{
    uint32_t pad_tok = DATASET_PAD_WORD;
    NewsView nv = {.category = 0, .ntok = 1, .tokens = &pad_tok, .id = "", .id_len = 0};
    int rc = dataset_put_news(p->w, DATASET_PAD_NEWS, &nv);
    for (uint32_t row = 1; !rc && row < p->meta.news_rows; row++) {
        StrMapEntry e;
        size_t pos = p->news_idx[row];
        strmap_next(p->news_ids, &pos, &e);
        nv = (NewsView){.category = p->news_cat[row],
                        .ntok = p->news_ntok[row],
                        .tokens = p->news_tok + (size_t)row * p->title_len,
                        .id = e.key,
                        .id_len = e.len};
        rc = dataset_put_news(p->w, row, &nv);
    }
    return rc;
}

static int write_own_names(Prep *p, StrMap *map, const char *reserved,
                           int (*put)(DatasetWriter *, uint32_t, const char *, uint32_t),
                           uint64_t *rows)
{
    int rc = put(p->w, 0, reserved, (uint32_t)strlen(reserved));
    StrMapEntry e;
    size_t pos = 0;
    uint32_t next = 1;
    while (!rc && strmap_next(map, &pos, &e))
        rc = put(p->w, next++, e.key, e.len);
    *rows = next;
    return rc;
}

/* ------------------------------------------------------------------ behaviors.tsv */

/* rows[i] = news row of ids[i] (padding news for an id not in news.tsv, counted), i < n.
 * All hashes first and their home slots prefetched, then the lookups: a line's ~50 ids
 * each miss the cache in a map of 100k news, and this way the misses overlap (prep spent a
 * third of its time waiting on them one by one). */
static void resolve_news(Prep *p, const TsvSpan *ids, size_t n, uint32_t *rows)
{
    for (size_t i = 0; i < n; i++) {
        p->id_hash[i] = strmap_hash(ids[i].p, ids[i].n);
        strmap_prefetch(p->news_ids, p->id_hash[i]);
    }
    for (size_t i = 0; i < n; i++)
        if (!strmap_get_hashed(p->news_ids, ids[i].p, ids[i].n, p->id_hash[i], &rows[i])) {
            rows[i] = DATASET_PAD_NEWS;
            p->meta.missing_news_refs++;
        }
}

static int read_behaviors(Prep *p)
{
    const char *path = p->opt->behaviors_path;
    LineReader *lr = NULL;
    int rc = lr_open(&lr, path);
    if (rc)
        return rc;
    const char *line;
    size_t len;
    char reason[256];
    const int shared = p->opt->vocab_from != NULL;
    while ((rc = lr_next(lr, &line, &len)) == 0) {
        prep_progress(p, lr);
        /* One pass over the line validates it and collects its ids (history first, then
         * candidates, with their clicks); a line with more ids than the arrays hold grows
         * them and is parsed again, which then cannot fail. */
        BehaviorRow br;
        if (tsv_parse_behavior_ids(line, len, &br, p->id_spans, p->clicked, p->id_cap, reason,
                                   sizeof reason)) {
            if ((rc = bad_line(p, path, lr_lineno(lr), reason)))
                goto out;
            continue;
        }
        size_t nh = br.n_history, nc = br.n_candidates, nneg = 0;
        if (nh + nc > p->id_cap) {
            size_t cap = p->id_cap;
            if ((rc = grow((void **)&p->id_spans, &cap, nh + nc, sizeof *p->id_spans)) ||
                (rc = grow((void **)&p->clicked, &p->clicked_cap, cap, 1)) ||
                (rc = grow((void **)&p->id_hash, &p->id_hash_cap, cap, sizeof *p->id_hash)))
                goto out;
            p->id_cap = cap; /* only once all three hold cap entries */
            tsv_parse_behavior_ids(line, len, &br, p->id_spans, p->clicked, p->id_cap, NULL, 0);
        }
        const uint8_t *labels = p->clicked + nh;
        /* The user's slot in a map of every user misses the cache on nearly every line:
         * start loading it now and look it up after the news ids (a third of the lookup
         * time went to this one miss). */
        uint64_t user_hash = strmap_hash(br.user_id.p, br.user_id.n);
        strmap_prefetch(shared ? p->split_users : p->users, user_hash);
        if (shared)
            strmap_prefetch(p->users, user_hash);
        size_t cap_before = p->cand_cap;
        if ((rc = grow((void **)&p->cand, &p->cand_cap, nc + 1, 4)))
            goto out;
        if (p->cand_cap != cap_before && !(p->neg = realloc(p->neg, p->cand_cap * 4))) {
            rc = psrec_errf(PSREC_E_NOMEM, "out of memory");
            goto out;
        }
        /* Every history id is resolved (and a missing one counted); the stored history
         * keeps the last his_len. The line's ids are resolved in one batch (history first,
         * then candidates; see resolve_news). */
        if ((rc = grow((void **)&p->his, &p->his_cap, nh + nc + 1, 4)))
            goto out;
        const uint32_t *rows = p->his; /* history rows, then candidate rows */
        resolve_news(p, p->id_spans, nh + nc, p->his);
        uint32_t user;
        /* A train split's users table is this split's users: split_users is only kept for a
         * shared table (one random lookup in a map of every user less per line). */
        if (shared &&
            (rc = strmap_intern(p->split_users, br.user_id.p, br.user_id.n, 0, NULL, NULL)))
            goto out;
        if (shared) {
            if (!strmap_get(p->users, br.user_id.p, br.user_id.n, &user) || user == UINT32_MAX) {
                user = DATASET_UNK_USER;
                p->meta.unknown_users++;
            }
        } else if ((rc = strmap_intern(p->users, br.user_id.p, br.user_id.n,
                                       (uint32_t)strmap_count(p->users) + 1, &user, NULL))) {
            goto out;
        }
        p->meta.history_refs += nh;
        const uint32_t *his = p->his + (nh > p->his_len ? nh - p->his_len : 0);
        uint32_t nhis = (uint32_t)(nh > p->his_len ? p->his_len : nh);
        for (size_t i = 0; i < nc; i++) {
            p->cand[i] = rows[nh + i];
            if (br.labeled && !labels[i])
                p->neg[nneg++] = p->cand[i];
        }
        uint64_t imp_index = p->meta.impressions;
        ImpressionView iv = {.user = user,
                             .nhis = nhis,
                             .ncand = (uint32_t)nc,
                             .labeled = (uint32_t)br.labeled,
                             .his = his,
                             .cand = p->cand,
                             .labels = labels,
                             .id = br.impression_id.p,
                             .id_len = (uint32_t)br.impression_id.n};
        if ((rc = dataset_put_impression(p->w, imp_index, &iv)))
            goto out;
        p->meta.impressions++;
        p->meta.candidates += nc;
        p->meta.labeled_impressions += (uint64_t)br.labeled;
        for (size_t i = 0; br.labeled && i < nc; i++) {
            if (!labels[i])
                continue;
            SampleView sv = {.user = user,
                             .pos = p->cand[i],
                             .impression = imp_index,
                             .nhis = nhis,
                             .nneg = (uint32_t)nneg,
                             .his = his,
                             .neg = p->neg};
            if ((rc = dataset_put_sample(p->w, p->meta.samples, &sv)))
                goto out;
            p->meta.samples++;
        }
    }
    if (rc != PSREC_E_NOTFOUND)
        goto out;
    rc = 0;
    p->meta.users = strmap_count(shared ? p->split_users : p->users);
    p->meta.tsv_bytes += lr_bytes(lr);
out:
    lr_close(&lr);
    return rc;
}

/* ------------------------------------------------------------------ driver */

static void prep_fini(Prep *p)
{
    dataset_writer_abort(&p->w);
    strmap_free(&p->news_ids);
    strmap_free(&p->words);
    strmap_free(&p->cats);
    strmap_free(&p->users);
    strmap_free(&p->split_cats);
    strmap_free(&p->split_users);
    free(p->word_counts);
    free(p->news_tok);
    free(p->news_ntok);
    free(p->news_cat);
    free(p->news_idx);
    free(p->lower);
    free(p->his);
    free(p->cand);
    free(p->neg);
    free(p->clicked);
    free(p->id_spans);
    free(p->id_hash);
}

/* Move the finished dataset into place; with --force an old one is replaced. */
static int publish(const char *tmp, const char *out, int force)
{
    struct stat st;
    if (stat(out, &st) == 0) {
        if (!force)
            return psrec_errf(PSREC_E_USAGE, "%s exists; remove it or pass --force", out);
        char old[4200];
        snprintf(old, sizeof old, "%s.old-%ld", out, (long)getpid());
        if (rename(out, old) != 0)
            return psrec_errf(errno, "%s: %s", out, strerror(errno));
        if (rename(tmp, out) != 0) {
            int e = errno;
            rename(old, out);
            return psrec_errf(e, "%s: %s", out, strerror(e));
        }
        return fs_remove_flat_dir(old);
    }
    if (rename(tmp, out) != 0)
        return psrec_errf(errno, "cannot rename %s to %s: %s", tmp, out, strerror(errno));
    return 0;
}

int prep_run(const PrepOptions *opt, DatasetMeta *meta_out)
{
    Prep p = {.opt = opt};
    p.title_len = opt->title_len ? opt->title_len : PREP_DEFAULT_TITLE_LEN;
    p.his_len = opt->his_len ? opt->his_len : PREP_DEFAULT_HIS_LEN;
    p.meta.min_count = opt->min_count ? opt->min_count : 1;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", opt->out_path, (long)getpid());
    struct stat st;
    if (!opt->force && stat(opt->out_path, &st) == 0)
        return psrec_errf(PSREC_E_USAGE, "%s exists; remove it or pass --force", opt->out_path);
    int rc;
    if (!(p.news_ids = strmap_new(1 << 16)) || !(p.words = strmap_new(1 << 16)) ||
        !(p.cats = strmap_new(64)) || !(p.users = strmap_new(1 << 16)) ||
        !(p.split_cats = strmap_new(64)) || !(p.split_users = strmap_new(1 << 16))) {
        rc = psrec_errf(PSREC_E_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = dataset_writer_new(tmp, &p.w)))
        goto out;
    if (opt->vocab_from) {
        p.meta.vocab_shared = 1;
        if ((rc = load_vocab_source(&p)))
            goto out;
    }
    if (p.title_len > 4096 || p.his_len > 65536) {
        rc = psrec_errf(PSREC_E_RANGE, "title_len %u / his_len %u too large", p.title_len,
                        p.his_len);
        goto out;
    }
    p.meta.title_len = p.title_len;
    p.meta.his_len = p.his_len;
    if (opt->progress) {
        progress_meter_init(&p.meter, "prep", "MB");
        struct stat sn, sb;
        if (stat(opt->news_path, &sn) == 0 && stat(opt->behaviors_path, &sb) == 0)
            p.bytes_total = (uint64_t)sn.st_size + (uint64_t)sb.st_size;
    }
    if ((rc = read_news(&p)))
        goto out;
    if (p.meta.news == 0) { /* every candidate would be the padding news: nothing to learn */
        rc = psrec_errf(PSREC_E_RANGE, "%s: no news: the dataset would have no trainable "
                        "sample and nothing to score", opt->news_path);
        goto out;
    }
    p.bytes_before = p.meta.tsv_bytes;
    if (!opt->vocab_from) {
        if ((rc = build_vocab(&p)) ||
            (rc = write_own_names(&p, p.cats, "<none>", dataset_put_category,
                                  &p.meta.category_rows)))
            goto out;
    }
    if ((rc = write_news(&p)) || (rc = read_behaviors(&p)))
        goto out;
    if (!opt->vocab_from &&
        (rc = write_own_names(&p, p.users, "<unk>", dataset_put_user, &p.meta.user_rows)))
        goto out;
    if ((rc = dataset_writer_finish(&p.w, &p.meta)))
        goto out;
    if ((rc = publish(tmp, opt->out_path, opt->force))) {
        fs_remove_flat_dir(tmp);
        goto out;
    }
    if (meta_out)
        *meta_out = p.meta;
out:
    /* A failed write (LMDB reports a short one as EIO): say so with the path asked for (the
     * detail names the scratch dir, which is gone already). */
    if (rc == ENOSPC || rc == EFBIG || rc == EDQUOT || rc == EIO) {
        char why[1024];
        snprintf(why, sizeof why, "%s", psrec_errmsg());
        rc = psrec_errf(rc, "%s: cannot write the dataset (is the disk full?): %s; no dataset "
                        "was written", opt->out_path, why);
    }
    progress_meter_end(&p.meter);
    prep_fini(&p);
    return rc;
}
