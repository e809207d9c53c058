/* psrec prep: MIND TSV -> LMDB, against hand-written fixtures that carry every real-data quirk
 * (CRLF, empty history and abstract, non-ASCII, duplicate ids, ids missing from news.tsv,
 * unlabeled test impressions, very long lines) and malformed lines. Counts are worked out by
 * hand from the fixture text in the comments. */
#include "common/dataset.h"
#include "common/error.h"
#include "launch/prep.h"
#include "testutil/testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[4096];

/* Train news (CRLF): N1 duplicated (second copy ignored), N3 has an empty abstract and a
 * non-ASCII title, N4 an empty title. Titles tokenized:
 *   N1 "Big Game, big win!"   -> big game , big win !
 *   N2 "Stocks fall"          -> stocks fall
 *   N3 "Café owners' rally"   -> café owners rally
 *   N4 ""                     -> (empty: one <unk>)
 * Word counts: big 2, game 1, "," 1, win 1, "!" 1, stocks 1, fall 1, café 1, owners 1, rally 1
 * -> 10 distinct words. Sorted by bytes: "!" "," big café fall game owners rally stocks win. */
static const char *train_news =
    "N1\tsports\tsoccer\tBig Game, big win!\tabstract one\thttp://x/1\t[]\t[]\r\n"
    "N2\tfinance\tmarkets\tStocks fall\tabs\thttp://x/2\t[]\t[]\r\n"
    "N1\tsports\tsoccer\tDuplicate title\tdup\thttp://x/1\t[]\t[]\r\n"
    "N3\tlifestyle\tfood\tCaf\xc3\xa9 owners' rally\t\thttp://x/3\t[]\t[]\r\n"
    "N4\tsports\tgolf\t\t\thttp://x/4\t[]\t[]\r\n";

/* Train behaviors: 4 impressions, users U1 U2 U1 U3 (3 distinct).
 *   1: U1 history N1 N2 N3 (his_len 2 keeps N2 N3); N1-1 N2-0 N4-1 -> 2 samples, negs {N2}
 *   2: U2 empty history; N3-1 N9-0 (N9 missing) -> 1 sample, negs {pad}
 *   3: U1 history N8 N1 (N8 missing); N2-0 N1-1 -> 1 sample
 *   4: U3 history N4; N4-0 N3-0 N2-1 N1-0 -> 1 sample, 3 negs
 * samples 5, candidates 11, missing refs 2, history refs 6. */
static const char *train_beh =
    "1\tU1\t11/11/2019 9:05:58 AM\tN1 N2 N3\tN1-1 N2-0 N4-1\n"
    "2\tU2\t11/12/2019 12:00:00 PM\t\tN3-1 N9-0\n"
    "3\tU1\t11/13/2019 1:02:03 PM\tN8 N1\tN2-0 N1-1\n"
    "4\tU3\t11/14/2019 11:59:59 PM\tN4\tN4-0 N3-0 N2-1 N1-0\n";

static void setup_files(void)
{
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("prep"));
    char p[4200];
    snprintf(p, sizeof p, "%s/news.tsv", dir);
    CU_ASSERT_FATAL(tu_write_file(p, train_news) == 0);
    snprintf(p, sizeof p, "%s/beh.tsv", dir);
    CU_ASSERT_FATAL(tu_write_file(p, train_beh) == 0);
}

static int prep_files(const char *news, const char *beh, const char *out, const char *vocab_from,
                      int skip, DatasetMeta *m)
{
    char pn[4200], pb[4200], po[4200], pv[4200];
    snprintf(pn, sizeof pn, "%s/%s", dir, news);
    snprintf(pb, sizeof pb, "%s/%s", dir, beh);
    snprintf(po, sizeof po, "%s/%s", dir, out);
    if (vocab_from)
        snprintf(pv, sizeof pv, "%s/%s", dir, vocab_from);
    PrepOptions o = {.news_path = pn,
                     .behaviors_path = pb,
                     .out_path = po,
                     .vocab_from = vocab_from ? pv : NULL,
                     .title_len = vocab_from ? 0 : 4,
                     .his_len = vocab_from ? 0 : 2,
                     .min_count = 1,
                     .skip_bad_lines = skip};
    return prep_run(&o, m);
}

static int path_exists(const char *name)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

/* No "<out>.tmp-*" directory may survive a run. */
static int tmp_left(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)))
        found |= strstr(e->d_name, ".tmp-") != NULL;
    closedir(d);
    return found;
}

static void word_is(DatasetTxn *t, uint32_t id, const char *want)
{
    const char *s;
    uint32_t n;
    CU_ASSERT_FATAL(dataset_get_word(t, id, &s, &n) == 0);
    CU_ASSERT(n == strlen(want) && memcmp(s, want, n) == 0);
}

static void test_train_split(void)
{
    setup_files();
    DatasetMeta m;
    int rc = prep_files("news.tsv", "beh.tsv", "train.db", NULL, 0, &m);
    if (rc)
        fprintf(stderr, "%s\n", psrec_errmsg());
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT(!tmp_left());
    char p[4200];
    snprintf(p, sizeof p, "%s/train.db", dir);
    Dataset *ds;
    CU_ASSERT_FATAL(dataset_open(p, &ds) == 0);
    const DatasetMeta *dm = dataset_meta(ds);
    CU_ASSERT_EQUAL(dm->news, 4);
    CU_ASSERT_EQUAL(dm->news_rows, 5);
    CU_ASSERT_EQUAL(dm->duplicate_news, 1);
    CU_ASSERT_EQUAL(dm->users, 3);
    CU_ASSERT_EQUAL(dm->user_rows, 4);
    CU_ASSERT_EQUAL(dm->impressions, 4);
    CU_ASSERT_EQUAL(dm->labeled_impressions, 4);
    CU_ASSERT_EQUAL(dm->samples, 5);
    CU_ASSERT_EQUAL(dm->candidates, 11);
    CU_ASSERT_EQUAL(dm->history_refs, 6);
    CU_ASSERT_EQUAL(dm->missing_news_refs, 2);
    CU_ASSERT_EQUAL(dm->vocab, 10);
    CU_ASSERT_EQUAL(dm->vocab_rows, 12);
    CU_ASSERT_EQUAL(dm->categories, 3);
    CU_ASSERT_EQUAL(dm->category_rows, 4);
    CU_ASSERT_EQUAL(dm->skipped_lines, 0);
    CU_ASSERT_EQUAL(dm->title_len, 4);
    CU_ASSERT_EQUAL(dm->his_len, 2);
    CU_ASSERT_EQUAL(dm->tsv_bytes, strlen(train_news) + strlen(train_beh));

    DatasetTxn *t;
    CU_ASSERT_FATAL(dataset_txn_new(ds, &t) == 0);
    /* Vocabulary in byte order after <pad> <unk>. */
    const char *order[] = {"<pad>", "<unk>", "!", ",", "big", "caf\xc3\xa9", "fall",
                           "game", "owners", "rally", "stocks", "win"};
    for (uint32_t i = 0; i < 12; i++)
        word_is(t, i, order[i]);
    /* N1 = row 1: "big game , big" cut to title_len 4 -> 4 5 ... ids 4 7 3 4; sports = cat 1. */
    NewsView nv;
    CU_ASSERT_FATAL(dataset_get_news(t, 1, &nv) == 0);
    CU_ASSERT_EQUAL(nv.ntok, 4);
    CU_ASSERT(nv.tokens[0] == 4 && nv.tokens[1] == 7 && nv.tokens[2] == 3 && nv.tokens[3] == 4);
    CU_ASSERT_EQUAL(nv.category, 1);
    CU_ASSERT(nv.id_len == 2 && memcmp(nv.id, "N1", 2) == 0);
    /* N3 = row 3: café owners rally -> 5 8 9, lifestyle = cat 3. */
    CU_ASSERT_FATAL(dataset_get_news(t, 3, &nv) == 0);
    CU_ASSERT(nv.ntok == 3 && nv.tokens[0] == 5 && nv.tokens[1] == 8 && nv.tokens[2] == 9);
    CU_ASSERT_EQUAL(nv.category, 3);
    /* N4 = row 4: empty title -> one <unk>; sports again = cat 1. */
    CU_ASSERT_FATAL(dataset_get_news(t, 4, &nv) == 0);
    CU_ASSERT(nv.ntok == 1 && nv.tokens[0] == 1 && nv.category == 1);
    /* Padding news. */
    CU_ASSERT_FATAL(dataset_get_news(t, 0, &nv) == 0);
    CU_ASSERT(nv.ntok == 1 && nv.tokens[0] == 0 && nv.category == 0);

    /* Samples 0,1 from impression 0: user U1 = row 1, his last 2 = N2 N3 = 2 3, neg N2. */
    SampleView sv;
    CU_ASSERT_FATAL(dataset_get_sample(t, 0, &sv) == 0);
    CU_ASSERT(sv.user == 1 && sv.pos == 1 && sv.impression == 0 && sv.nhis == 2);
    CU_ASSERT(sv.his[0] == 2 && sv.his[1] == 3 && sv.nneg == 1 && sv.neg[0] == 2);
    CU_ASSERT_FATAL(dataset_get_sample(t, 1, &sv) == 0);
    CU_ASSERT(sv.pos == 4 && sv.impression == 0);
    /* Sample 2: U2 (row 2), empty history, neg = missing N9 -> padding 0. */
    CU_ASSERT_FATAL(dataset_get_sample(t, 2, &sv) == 0);
    CU_ASSERT(sv.user == 2 && sv.nhis == 0 && sv.pos == 3 && sv.nneg == 1 && sv.neg[0] == 0);
    /* Sample 3: missing N8 in history -> 0, then N1. */
    CU_ASSERT_FATAL(dataset_get_sample(t, 3, &sv) == 0);
    CU_ASSERT(sv.user == 1 && sv.nhis == 2 && sv.his[0] == 0 && sv.his[1] == 1);
    CU_ASSERT_FATAL(dataset_get_sample(t, 4, &sv) == 0);
    CU_ASSERT(sv.user == 3 && sv.pos == 2 && sv.nneg == 3 && sv.neg[0] == 4 && sv.neg[1] == 3 &&
              sv.neg[2] == 1 && sv.impression == 3);
    /* Impression 3 keeps candidate order and labels. */
    ImpressionView iv;
    CU_ASSERT_FATAL(dataset_get_impression(t, 3, &iv) == 0);
    CU_ASSERT(iv.ncand == 4 && iv.labeled == 1 && iv.cand[2] == 2 && iv.labels[2] == 1 &&
              iv.labels[0] == 0 && iv.id_len == 1 && iv.id[0] == '4');
    const char *s;
    uint32_t n;
    CU_ASSERT(dataset_get_user(t, 3, &s, &n) == 0 && n == 2 && memcmp(s, "U3", 2) == 0);
    CU_ASSERT(dataset_get_category(t, 2, &s, &n) == 0 && n == 7 && !memcmp(s, "finance", 7));
    /* Raw texts as news.tsv had them: N3's title untokenized, N4's empty, padding empty. */
    NewsText tx;
    CU_ASSERT_FATAL(dataset_get_news_text(t, 3, &tx) == 0);
    CU_ASSERT(tx.title_len == strlen("Caf\xc3\xa9 owners' rally") &&
              !memcmp(tx.title, "Caf\xc3\xa9 owners' rally", tx.title_len));
    CU_ASSERT(tx.category_len == 9 && !memcmp(tx.category, "lifestyle", 9));
    CU_ASSERT_FATAL(dataset_get_news_text(t, 1, &tx) == 0); /* the first N1 wins */
    CU_ASSERT(tx.title_len == 18 && !memcmp(tx.title, "Big Game, big win!", 18));
    CU_ASSERT_FATAL(dataset_get_news_text(t, 4, &tx) == 0);
    CU_ASSERT(tx.title_len == 0 && tx.category_len == 6 && !memcmp(tx.category, "sports", 6));
    CU_ASSERT_FATAL(dataset_get_news_text(t, 0, &tx) == 0);
    CU_ASSERT(tx.title_len == 0 && tx.category_len == 0);
    dataset_txn_free(&t);
    dataset_free(&ds);
}

/* Dev/test splits reuse the train tables: unknown words -> <unk>, unknown users -> 0,
 * unknown categories -> 0; the test split has no labels and so no samples. */
static void test_shared_vocab_and_unlabeled(void)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/test_news.tsv", dir);
    CU_ASSERT_FATAL(tu_write_file(p, "N7\tfinance\tx\tStocks zoom\t\tu\t[]\t[]\n"
                                     "N8\tweather\ty\tBig rain\t\tu\t[]\t[]\n") == 0);
    snprintf(p, sizeof p, "%s/test_beh.tsv", dir);
    CU_ASSERT_FATAL(tu_write_file(p, "10\tU2\t1/2/2020 3:04:05 AM\tN7\tN7 N8\n"
                                     "11\tU99\t1/2/2020 3:04:06 AM\t\tN8\n") == 0);
    DatasetMeta m;
    int rc = prep_files("test_news.tsv", "test_beh.tsv", "test.db", "train.db", 0, &m);
    if (rc)
        fprintf(stderr, "%s\n", psrec_errmsg());
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT(m.vocab_shared == 1 && m.vocab == 10 && m.vocab_rows == 12);
    CU_ASSERT(m.title_len == 4 && m.his_len == 2); /* inherited from train */
    CU_ASSERT(m.news == 2 && m.users == 2 && m.impressions == 2 && m.samples == 0);
    CU_ASSERT(m.labeled_impressions == 0 && m.unknown_users == 1 && m.categories == 2);
    CU_ASSERT(m.user_rows == 4 && m.category_rows == 4);
    snprintf(p, sizeof p, "%s/test.db", dir);
    Dataset *ds;
    DatasetTxn *t;
    CU_ASSERT_FATAL(dataset_open(p, &ds) == 0);
    /* The copied tables give the train set's fingerprint (what eval and resume compare). */
    Dataset *tr;
    snprintf(p, sizeof p, "%s/train.db", dir);
    CU_ASSERT_FATAL(dataset_open(p, &tr) == 0);
    CU_ASSERT(dataset_meta(tr)->fingerprint != 0);
    CU_ASSERT_EQUAL(dataset_meta(ds)->fingerprint, dataset_meta(tr)->fingerprint);
    dataset_free(&tr);
    CU_ASSERT_FATAL(dataset_txn_new(ds, &t) == 0);
    NewsView nv;
    CU_ASSERT_FATAL(dataset_get_news(t, 1, &nv) == 0); /* stocks zoom -> 10 <unk>, finance 2 */
    CU_ASSERT(nv.ntok == 2 && nv.tokens[0] == 10 && nv.tokens[1] == 1 && nv.category == 2);
    CU_ASSERT_FATAL(dataset_get_news(t, 2, &nv) == 0); /* weather unknown -> 0 */
    CU_ASSERT(nv.category == 0 && nv.tokens[0] == 4);
    NewsText tx; /* the category name survives though its id is <none> */
    CU_ASSERT_FATAL(dataset_get_news_text(t, 2, &tx) == 0);
    CU_ASSERT(tx.category_len == 7 && !memcmp(tx.category, "weather", 7));
    CU_ASSERT(tx.title_len == 8 && !memcmp(tx.title, "Big rain", 8));
    ImpressionView iv;
    CU_ASSERT_FATAL(dataset_get_impression(t, 0, &iv) == 0);
    CU_ASSERT(iv.user == 2 && iv.labeled == 0 && iv.ncand == 2 && iv.nhis == 1);
    CU_ASSERT_FATAL(dataset_get_impression(t, 1, &iv) == 0);
    CU_ASSERT(iv.user == 0 && iv.nhis == 0);
    const char *s;
    uint32_t n;
    CU_ASSERT(dataset_get_user(t, 1, &s, &n) == 0 && n == 2 && !memcmp(s, "U1", 2));
    dataset_txn_free(&t);
    dataset_free(&ds);
}

/* A malformed line stops prep with FILE:LINE and leaves nothing at --out. */
static void test_malformed_stops(void)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/bad_beh.tsv", dir);
    CU_ASSERT_FATAL(tu_write_file(p, "1\tU1\t11/11/2019 9:05:58 AM\tN1\tN1-1 N2-0\n"
                                     "2\tU2\t11/11/2019 9:05:58 AM\tN1\tN1-1 N2-7\n"
                                     "3\tU2\t11/11/2019 9:05:58 AM\tN1\tN1-1\n") == 0);
    int rc = prep_files("news.tsv", "bad_beh.tsv", "bad.db", NULL, 0, NULL);
    CU_ASSERT(rc == PSREC_E_PARSE);
    char want[4300];
    snprintf(want, sizeof want, "%s/bad_beh.tsv:2: ", dir);
    CU_ASSERT(strncmp(psrec_errmsg(), want, strlen(want)) == 0);
    CU_ASSERT(!path_exists("bad.db"));
    CU_ASSERT(!tmp_left());

    /* A truncated file: the last line is cut inside the impressions field. */
    snprintf(p, sizeof p, "%s/cut_beh.tsv", dir);
    CU_ASSERT_FATAL(tu_write_file(p, "1\tU1\t11/11/2019 9:05:58 AM\tN1\tN1-1 N2-0\n"
                                     "2\tU2\t11/11/2019 9:05:58 AM\tN1\tN1-1 N2-") == 0);
    rc = prep_files("news.tsv", "cut_beh.tsv", "cut.db", NULL, 0, NULL);
    snprintf(want, sizeof want, "%s/cut_beh.tsv:2: ", dir);
    CU_ASSERT(rc != 0 && strncmp(psrec_errmsg(), want, strlen(want)) == 0);
    CU_ASSERT(!path_exists("cut.db"));

    /* A news line with 7 fields. */
    snprintf(p, sizeof p, "%s/bad_news.tsv", dir);
    CU_ASSERT_FATAL(tu_write_file(p, "N1\ts\tx\tTitle\ta\tu\t[]\t[]\n"
                                     "N2\ts\tx\tTitle\ta\tu\t[]\n") == 0);
    rc = prep_files("bad_news.tsv", "beh.tsv", "bad2.db", NULL, 0, NULL);
    snprintf(want, sizeof want, "%s/bad_news.tsv:2: ", dir);
    CU_ASSERT(rc == PSREC_E_PARSE && strncmp(psrec_errmsg(), want, strlen(want)) == 0);
    CU_ASSERT(!path_exists("bad2.db"));
    CU_ASSERT(!tmp_left());

    /* --skip-bad-lines: the bad line is counted and the rest kept. */
    DatasetMeta m;
    rc = prep_files("news.tsv", "bad_beh.tsv", "skip.db", NULL, 1, &m);
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT(m.skipped_lines == 1 && m.impressions == 2 && m.samples == 2);
}

/* An existing dataset is never overwritten by accident; --force replaces it whole. */
static void test_existing_out(void)
{
    char pn[4200], pb[4200], po[4200];
    snprintf(pn, sizeof pn, "%s/news.tsv", dir);
    snprintf(pb, sizeof pb, "%s/beh.tsv", dir);
    snprintf(po, sizeof po, "%s/train.db", dir);
    PrepOptions o = {.news_path = pn, .behaviors_path = pb, .out_path = po, .min_count = 2};
    CU_ASSERT(prep_run(&o, NULL) == PSREC_E_USAGE);
    o.force = 1;
    DatasetMeta m;
    CU_ASSERT_FATAL(prep_run(&o, &m) == 0);
    CU_ASSERT_EQUAL(m.vocab, 1); /* only "big" is seen twice */
    CU_ASSERT(!tmp_left());
    Dataset *ds;
    CU_ASSERT_FATAL(dataset_open(po, &ds) == 0);
    CU_ASSERT_EQUAL(dataset_meta(ds)->min_count, 2);
    dataset_free(&ds);
}

/* A 3 MB behaviors line (a 300k-click history) is read whole; his_len keeps the last ones. */
static void test_long_line(void)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/long_beh.tsv", dir);
    FILE *f = fopen(p, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f, "1\tU1\t11/11/2019 9:05:58 AM\t");
    for (int i = 0; i < 300000; i++)
        fprintf(f, "%sN%d", i ? " " : "", 1 + i % 4);
    fprintf(f, "\tN1-1 N2-0\n");
    fclose(f);
    DatasetMeta m;
    CU_ASSERT_FATAL(prep_files("news.tsv", "long_beh.tsv", "long.db", NULL, 0, &m) == 0);
    CU_ASSERT(m.history_refs == 300000 && m.missing_news_refs == 0 && m.samples == 1);
}

/* The binary: exit codes, and inspect --json reporting the counts. */
/* An empty news.tsv made a dataset of 0 news on which training exited 0. prep refuses it;
 * train refuses a dataset with no trainable sample (here: impressions without a click). */
static void test_nothing_to_train(void)
{
    setup_files();
    char p[4200];
    snprintf(p, sizeof p, "%s/empty_news.tsv", dir);
    CU_ASSERT_FATAL(tu_write_file(p, "") == 0);
    DatasetMeta m;
    CU_ASSERT_EQUAL(prep_files("empty_news.tsv", "beh.tsv", "empty.db", NULL, 0, &m),
                    PSREC_E_RANGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "empty_news.tsv: no news"));
    CU_ASSERT(!path_exists("empty.db"));
    snprintf(p, sizeof p, "%s/noclick.tsv", dir);
    CU_ASSERT_FATAL(tu_write_file(p, "1\tU1\t11/11/2019 9:05:58 AM\tN1\tN1-0 N2-0\n") == 0);
    CU_ASSERT_EQUAL_FATAL(prep_files("news.tsv", "noclick.tsv", "noclick.db", NULL, 0, &m), 0);
    CU_ASSERT_EQUAL(m.samples, 0);
    snprintf(p, sizeof p, "%s/noclick.conf", dir);
    char conf[9000];
    snprintf(conf, sizeof conf, "[data]\ntrain = %s/noclick.db\n[run]\ndir = %s/noclick-run\n",
             dir, dir);
    CU_ASSERT_FATAL(tu_write_file(p, conf) == 0);
    char *out = NULL;
    int rc = tu_run(&out, "%s train %s 2>&1", TU_PSREC, p);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "noclick.db: dataset has no trainable sample"));
    if (rc != 1 && out)
        fprintf(stderr, "\n%s\n", out);
    free(out);
    tu_rmtree(dir);
}

static void test_cli(void)
{
    char *out = NULL;
    int rc = tu_run(&out, "%s prep --news %s/news.tsv --behaviors %s/beh.tsv --out %s/cli.db "
                          "--title-len 4 --his-len 2", TU_PSREC, dir, dir, dir);
    CU_ASSERT(rc == 0);
    free(out);
    rc = tu_run(&out, "%s inspect --json %s/cli.db", TU_PSREC, dir);
    CU_ASSERT_FATAL(rc == 0);
    double v;
    const struct {
        const char *k;
        double want;
    } keys[] = {{"news", 4},  {"users", 3},      {"impressions", 4},       {"samples", 5},
                {"vocab", 10}, {"categories", 3}, {"missing_news_refs", 2}, {"skipped_lines", 0}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        CU_ASSERT(tu_json_number(out, keys[i].k, &v) && v == keys[i].want);
    }
    free(out);
    rc = tu_run(&out, "%s prep --news %s/news.tsv --behaviors %s/bad_beh.tsv --out %s/x.db",
                TU_PSREC, dir, dir, dir);
    CU_ASSERT(rc == 1 && strstr(out, "bad_beh.tsv:2: ") != NULL);
    free(out);
    CU_ASSERT(!path_exists("x.db"));
    CU_ASSERT(tu_run(NULL, "%s prep --news %s/news.tsv", TU_PSREC, dir) == 2);
    CU_ASSERT(tu_run(NULL, "%s inspect %s/nope.db", TU_PSREC, dir) == 1);
    tu_rmtree(dir);
}

int main(void)
{
    static const TuTest tests[] = {{"train split, every quirk", test_train_split},
                                   {"vocab-from and unlabeled test split",
                                    test_shared_vocab_and_unlabeled},
                                   {"malformed lines stop with FILE:LINE", test_malformed_stops},
                                   {"existing output and --force", test_existing_out},
                                   {"very long line", test_long_line},
                                   {"command line", test_cli},
                                   {"nothing to train is refused", test_nothing_to_train},
                                   {NULL, NULL}};
    tu_add_suite("prep", tests);
    return tu_run_all();
}
