/* Tests of `psrec gen` (launch/gen.c, launch/cmd_gen.c): byte-identical output for a seed,
 * MIND's grammar on every line of every file, every referenced id present in its split's
 * news.tsv, the shape of the data (title length, empty histories and abstracts, non-ASCII
 * titles, new users in dev), and the planted signal: the oracle is well above chance, random
 * scores are at chance, and scoring by the recency-weighted history beats the plain bag of the
 * history (the order of clicks matters). Also the command line: help, usage errors, output. */
#include "common/error.h"
#include "common/metrics.h"
#include "common/rng.h"
#include "launch/gen.h"
#include "testutil/testutil.h"

#include <math.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const files[] = {"train/news.tsv", "train/behaviors.tsv", "dev/news.tsv",
                                    "dev/behaviors.tsv", "oracle.json"};
#define NFILES (sizeof files / sizeof files[0])

/* The default-sized data set, made once (seed 1) and shared by the tests that read it. */
static char main_dir[4096];
static GenStats main_stats;

static const char *main_set(void)
{
    if (main_dir[0])
        return main_dir;
    snprintf(main_dir, sizeof main_dir, "%s", tu_mkdtemp("gen"));
    GenOptions o;
    gen_options_default(&o);
    o.out = main_dir;
    int rc = gen_run(&o, &main_stats);
    if (rc) {
        fprintf(stderr, "gen_run: %s\n", psrec_errmsg());
        abort();
    }
    return main_dir;
}

static char *read_in(const char *dir, const char *name, size_t *len)
{
    char path[8400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return tu_read_file(path, len);
}

/* ---------------------------------------------------------------- a small MIND parser */

/* Split line (no "\n") at tabs in place; returns the field count (up to max). */
static int split_tabs(char *line, char **f, int max)
{
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p; p++)
        if (*p == '\t') {
            *p = '\0';
            if (n == max)
                return max + 1;
            f[n++] = p + 1;
        }
    return n;
}

/* "<prefix><number>" with a number >= 1 and no leading zero; returns it, or 0. */
static uint64_t parse_id(const char *s, char prefix, const char **end)
{
    if (*s != prefix || s[1] < '1' || s[1] > '9')
        return 0;
    uint64_t v = 0;
    for (s++; *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (uint64_t)(*s - '0');
    if (end)
        *end = s;
    else if (*s)
        return 0;
    return v;
}

static int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k;
        if (c < 0x80)
            k = 0;
        else if (c >= 0xC2 && c <= 0xDF)
            k = 1;
        else if ((c & 0xF0) == 0xE0)
            k = 2;
        else if (c >= 0xF0 && c <= 0xF4)
            k = 3;
        else
            return 0;
        if (i + k >= n)
            return 0;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
        i += k + 1;
    }
    return 1;
}

typedef struct NewsEntry {
    uint64_t id;
    uint32_t cat;
} NewsEntry;

typedef struct Split {
    NewsEntry *news; /* sorted by id */
    size_t nnews;
    char cats[64][32];
    uint32_t ncats;
    /* shape counters */
    double title_tokens;
    size_t empty_abstracts, nonascii_titles, entity_lists;
    size_t lines, empty_his, candidates, clicks;
    uint8_t *user_seen; /* (max_user + 1) */
    uint64_t max_user;
    int errors;         /* grammar violations (each also reported once) */
} Split;

static void bad(Split *s, const char *file, size_t line, const char *what)
{
    if (s->errors++ < 5)
        fprintf(stderr, "\n%s:%zu: %s\n", file, line, what);
}

static int news_cmp(const void *a, const void *b)
{
    const NewsEntry *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static const NewsEntry *find_news(const Split *s, uint64_t id)
{
    NewsEntry key = {id, 0};
    return bsearch(&key, s->news, s->nnews, sizeof key, news_cmp);
}

/* Parse and check a news.tsv: 8 fields, id N<n> unique, category, subcategory, non-empty
 * title, URL, entity lists "[]" or a JSON list of objects; valid UTF-8; "\n" line ends. */
static void check_news(const char *dir, const char *name, Split *s)
{
    size_t len;
    char *text = read_in(dir, name, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT(len > 0 && text[len - 1] == '\n');
    CU_ASSERT(strchr(text, '\r') == NULL);
    CU_ASSERT(valid_utf8((const unsigned char *)text, len));
    size_t cap = 1024;
    s->news = malloc(cap * sizeof *s->news);
    size_t lineno = 0;
    for (char *line = text, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        lineno++;
        char *f[9];
        if (split_tabs(line, f, 8) != 8) {
            bad(s, name, lineno, "not 8 fields");
            continue;
        }
        uint64_t id = parse_id(f[0], 'N', NULL);
        if (!id)
            bad(s, name, lineno, "bad news id");
        uint32_t c = 0;
        while (c < s->ncats && strcmp(s->cats[c], f[1]))
            c++;
        if (c == s->ncats && c < 64)
            snprintf(s->cats[s->ncats++], sizeof s->cats[0], "%s", f[1]);
        if (!*f[1] || strspn(f[1], "abcdefghijklmnopqrstuvwxyz0123456789") != strlen(f[1]))
            bad(s, name, lineno, "bad category");
        if (strncmp(f[2], f[1], strlen(f[1])) || f[2][strlen(f[1])] != '_')
            bad(s, name, lineno, "subcategory is not <category>_<name>");
        if (!*f[3])
            bad(s, name, lineno, "empty title");
        if (strncmp(f[5], "https://", 8))
            bad(s, name, lineno, "bad url");
        for (int k = 6; k <= 7; k++) {
            size_t n = strlen(f[k]);
            int ok = !strcmp(f[k], "[]") || (n > 14 && !strncmp(f[k], "[{\"Label\": \"", 12) &&
                                             !strcmp(f[k] + n - 2, "}]"));
            if (!ok)
                bad(s, name, lineno, "bad entity list");
            s->entity_lists += strcmp(f[k], "[]") != 0;
        }
        int tokens = 0, in = 0, nonascii = 0;
        for (const char *p = f[3]; *p; p++) {
            if (*p != ' ' && !in)
                tokens++;
            in = *p != ' ';
            nonascii |= (unsigned char)*p >= 0x80;
        }
        s->title_tokens += tokens;
        s->nonascii_titles += nonascii;
        s->empty_abstracts += !*f[4];
        if (s->nnews == cap) {
            cap *= 2;
            s->news = realloc(s->news, cap * sizeof *s->news);
        }
        s->news[s->nnews].id = id;
        s->news[s->nnews++].cat = c;
    }
    qsort(s->news, s->nnews, sizeof *s->news, news_cmp);
    for (size_t i = 1; i < s->nnews; i++)
        if (s->news[i].id == s->news[i - 1].id)
            bad(s, name, i, "duplicate news id");
    free(text);
}

/* Per impression, what the scoring tests need: candidate categories, labels, history. */
typedef struct Impression {
    uint32_t n, nhis;
    uint32_t cat[64];
    uint8_t label[64];
    uint32_t his_cat[64];
} Impression;

typedef void (*ImpressionFn)(const Impression *imp, void *ctx);

/* Parse and check a behaviors.tsv against its split's news: 5 fields, id = line number,
 * U<n>, MIND's time, history ids and Nid-label candidates all in news.tsv, >= 1 click and
 * >= 1 non-click. Calls fn (when non-NULL) for each impression. */
static void check_behaviors(const char *dir, const char *name, Split *s, const char *date_prefix,
                            ImpressionFn fn, void *ctx)
{
    regex_t re;
    CU_ASSERT_EQUAL_FATAL(regcomp(&re,
                                  "^([1-9]|1[0-2])/([1-9]|[12][0-9]|3[01])/20[0-9][0-9] "
                                  "([1-9]|1[0-2]):[0-5][0-9]:[0-5][0-9] (AM|PM)$",
                                  REG_EXTENDED | REG_NOSUB),
                          0);
    size_t len;
    char *text = read_in(dir, name, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT(len > 0 && text[len - 1] == '\n');
    CU_ASSERT(strchr(text, '\r') == NULL);
    s->max_user = 0;
    s->user_seen = calloc(1, 1);
    size_t lineno = 0;
    Impression imp;
    for (char *line = text, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        lineno++;
        s->lines++;
        char *f[6];
        if (split_tabs(line, f, 5) != 5) {
            bad(s, name, lineno, "not 5 fields");
            continue;
        }
        char *end;
        if (strtoull(f[0], &end, 10) != lineno || *end || f[0][0] == '0')
            bad(s, name, lineno, "impression id is not the 1-based line number");
        uint64_t user = parse_id(f[1], 'U', NULL);
        if (!user)
            bad(s, name, lineno, "bad user id");
        if (user > s->max_user) {
            s->user_seen = realloc(s->user_seen, user + 1);
            memset(s->user_seen + s->max_user + 1, 0, user - s->max_user);
            s->max_user = user;
        }
        s->user_seen[user] = 1;
        if (regexec(&re, f[2], 0, NULL, 0) || strncmp(f[2], date_prefix, strlen(date_prefix)))
            bad(s, name, lineno, "bad time");
        imp.n = imp.nhis = 0;
        if (!*f[3])
            s->empty_his++;
        for (const char *p = f[3]; *p;) {
            const char *e;
            uint64_t id = parse_id(p, 'N', &e);
            const NewsEntry *ne = id ? find_news(s, id) : NULL;
            if (!ne || (*e && *e != ' ') || (*e == ' ' && !e[1])) {
                bad(s, name, lineno, "bad or unknown history id");
                break;
            }
            if (imp.nhis < 64)
                imp.his_cat[imp.nhis++] = ne->cat;
            p = *e ? e + 1 : e;
        }
        uint32_t clicks = 0, n = 0;
        for (const char *p = f[4]; *p;) {
            const char *e;
            uint64_t id = parse_id(p, 'N', &e);
            const NewsEntry *ne = id ? find_news(s, id) : NULL;
            if (!ne || e[0] != '-' || (e[1] != '0' && e[1] != '1') || (e[2] && e[2] != ' ') ||
                (e[2] == ' ' && !e[3])) {
                bad(s, name, lineno, "bad or unknown candidate");
                break;
            }
            clicks += e[1] == '1';
            if (n < 64) {
                imp.cat[n] = ne->cat;
                imp.label[n] = (uint8_t)(e[1] - '0');
            }
            n++;
            p = e[2] ? e + 3 : e + 2;
        }
        if (clicks < 1 || clicks >= n)
            bad(s, name, lineno, "impression without a click or without a non-click");
        s->candidates += n;
        s->clicks += clicks;
        imp.n = n < 64 ? n : 64;
        if (fn)
            fn(&imp, ctx);
    }
    regfree(&re);
    free(text);
}

static void split_free(Split *s)
{
    free(s->news);
    free(s->user_seen);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- tests */

static int same_file(const char *a, const char *b, const char *name)
{
    size_t la, lb;
    char *x = read_in(a, name, &la), *y = read_in(b, name, &lb);
    int same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

/* Same seed, same bytes in every file; another seed, different files. */
static void test_deterministic(void)
{
    char a[4096], b[4096], c[4096];
    snprintf(a, sizeof a, "%s", tu_mkdtemp("gen-a"));
    snprintf(b, sizeof b, "%s", tu_mkdtemp("gen-b"));
    snprintf(c, sizeof c, "%s", tu_mkdtemp("gen-c"));
    GenOptions o;
    gen_options_default(&o);
    o.news = 800;
    o.users = 500;
    o.train_impressions = 1500;
    o.dev_impressions = 500;
    o.seed = 42;
    o.out = a;
    CU_ASSERT_EQUAL_FATAL(gen_run(&o, NULL), 0);
    o.out = b;
    CU_ASSERT_EQUAL_FATAL(gen_run(&o, NULL), 0);
    o.out = c;
    o.seed = 43;
    CU_ASSERT_EQUAL_FATAL(gen_run(&o, NULL), 0);
    for (size_t i = 0; i < NFILES; i++) {
        CU_ASSERT(same_file(a, b, files[i]));
        CU_ASSERT(!same_file(a, c, files[i]));
    }
    tu_rmtree(a);
    tu_rmtree(b);
    tu_rmtree(c);
}

/* Every line of the default set follows MIND's grammar; ids resolve within the split. */
static void test_grammar(void)
{
    const char *dir = main_set();
    Split tr = {0}, dv = {0};
    check_news(dir, "train/news.tsv", &tr);
    check_news(dir, "dev/news.tsv", &dv);
    check_behaviors(dir, "train/behaviors.tsv", &tr, "11/", NULL, NULL);
    check_behaviors(dir, "dev/behaviors.tsv", &dv, "11/15/2019 ", NULL, NULL);
    CU_ASSERT_EQUAL(tr.errors, 0);
    CU_ASSERT_EQUAL(dv.errors, 0);
    CU_ASSERT_EQUAL(tr.lines, 16000);
    CU_ASSERT_EQUAL(dv.lines, 3000);
    CU_ASSERT_EQUAL(tr.nnews, main_stats.news_train);
    CU_ASSERT_EQUAL(dv.nnews, main_stats.news_dev);
    CU_ASSERT_EQUAL(tr.ncats, 12);
    split_free(&tr);
    split_free(&dv);
}

/* The shape of the default set: titles ~12 tokens, a few percent of histories and abstracts
 * empty, some non-ASCII titles, ~1-3 clicks of ~22 candidates, new users in dev. */
static void test_shape(void)
{
    const char *dir = main_set();
    Split tr = {0}, dv = {0};
    check_news(dir, "train/news.tsv", &tr);
    check_news(dir, "dev/news.tsv", &dv);
    check_behaviors(dir, "train/behaviors.tsv", &tr, "11/", NULL, NULL);
    check_behaviors(dir, "dev/behaviors.tsv", &dv, "11/15/2019 ", NULL, NULL);
    double title_mean = tr.title_tokens / (double)tr.nnews;
    CU_ASSERT(title_mean >= 8.0 && title_mean <= 16.0);
    double empty_his = (double)(tr.empty_his + dv.empty_his) / (double)(tr.lines + dv.lines);
    CU_ASSERT(empty_his >= 0.01 && empty_his <= 0.10);
    double empty_abs = (double)tr.empty_abstracts / (double)tr.nnews;
    CU_ASSERT(empty_abs > 0.005 && empty_abs < 0.10);
    double nonascii = (double)tr.nonascii_titles / (double)tr.nnews;
    CU_ASSERT(nonascii > 0.005 && nonascii < 0.10);
    CU_ASSERT(tr.entity_lists > tr.nnews / 4);
    double clicks = (double)dv.clicks / (double)dv.lines;
    double cands = (double)dv.candidates / (double)dv.lines;
    CU_ASSERT(clicks >= 1.0 && clicks <= 3.0);
    CU_ASSERT(cands >= 15.0 && cands <= 30.0);
    size_t dev_users = 0, new_users = 0;
    for (uint64_t u = 1; u <= dv.max_user; u++) {
        if (!dv.user_seen[u])
            continue;
        dev_users++;
        new_users += u > tr.max_user || !tr.user_seen[u];
    }
    CU_ASSERT(new_users > 0 && new_users < dev_users / 4);
    CU_ASSERT_EQUAL(new_users, main_stats.users_dev_only);
    split_free(&tr);
    split_free(&dv);
}

typedef struct ScoreCtx {
    Rng rng;
    MetricsAcc random, bag, recency;
    MetricsScratch scratch;
} ScoreCtx;

/* Score one dev impression three ways: random; the share of the history in the candidate's
 * category (order-blind); the same count with weights 0.6^age (order-aware). */
static void score_impression(const Impression *imp, void *p)
{
    ScoreCtx *c = p;
    float rnd[64], bag[64], rec[64];
    for (uint32_t j = 0; j < imp->n; j++) {
        rnd[j] = (float)rng_uniform(&c->rng);
        double b = 0.0, r = 0.0, wgt = 1.0;
        for (uint32_t i = imp->nhis; i-- > 0; wgt *= 0.6)
            if (imp->his_cat[i] == imp->cat[j]) {
                b += 1.0;
                r += wgt;
            }
        bag[j] = (float)(b / (imp->nhis ? imp->nhis : 1));
        rec[j] = (float)r;
    }
    CU_ASSERT_EQUAL(metrics_impression(rnd, imp->label, imp->n, &c->random, &c->scratch), 0);
    CU_ASSERT_EQUAL(metrics_impression(bag, imp->label, imp->n, &c->bag, &c->scratch), 0);
    CU_ASSERT_EQUAL(metrics_impression(rec, imp->label, imp->n, &c->recency, &c->scratch), 0);
}

/* oracle.json is the oracle gen_run returned; its AUC is well above chance while random
 * scores on the same impressions are at chance; the recency-weighted history beats the bag
 * of the history, and the oracle beats both. */
static void test_oracle(void)
{
    const char *dir = main_set();
    size_t len;
    char *json = read_in(dir, "oracle.json", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(json);
    double auc = 0, mrr = 0, n5 = 0, n10 = 0, imps = 0;
    CU_ASSERT(tu_json_number(json, "auc", &auc));
    CU_ASSERT(tu_json_number(json, "mrr", &mrr));
    CU_ASSERT(tu_json_number(json, "ndcg5", &n5));
    CU_ASSERT(tu_json_number(json, "ndcg10", &n10));
    CU_ASSERT(tu_json_number(json, "impressions", &imps));
    CU_ASSERT_DOUBLE_EQUAL(auc, main_stats.oracle.auc, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(imps, 3000, 0);
    CU_ASSERT(auc > 0.65 && auc < 0.95);
    CU_ASSERT(mrr > 0.0 && mrr <= 1.0 && n5 > 0.0 && n5 <= n10 + 1e-9 && n10 <= 1.0);
    free(json);

    Split dv = {0};
    ScoreCtx c;
    rng_seed(&c.rng, 99);
    metrics_acc_init(&c.random);
    metrics_acc_init(&c.bag);
    metrics_acc_init(&c.recency);
    metrics_scratch_init(&c.scratch);
    check_news(dir, "dev/news.tsv", &dv);
    check_behaviors(dir, "dev/behaviors.tsv", &dv, "11/15/2019 ", score_impression, &c);
    MetricsResult rnd, bag, rec;
    metrics_result(&c.random, &rnd);
    metrics_result(&c.bag, &bag);
    metrics_result(&c.recency, &rec);
    fprintf(stderr, "\n  oracle AUC %.4f, recency %.4f, bag %.4f, random %.4f\n", auc, rec.auc,
            bag.auc, rnd.auc);
    CU_ASSERT_EQUAL(rnd.impressions, 3000);
    CU_ASSERT(fabs(rnd.auc - 0.5) < 0.03);
    CU_ASSERT(rec.auc > bag.auc + 0.02);
    CU_ASSERT(auc > rec.auc);
    metrics_scratch_fini(&c.scratch);
    split_free(&dv);
}

/* The smallest world (20 news, 1 user, 2 topics) still writes valid files: the candidate
 * fallback and the forced labels keep every impression well-formed. */
static void test_tiny_world(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("gen-tiny"));
    GenOptions o;
    gen_options_default(&o);
    o.out = dir;
    o.news = GEN_NEWS_MIN;
    o.users = 1;
    o.topics = 2;
    o.train_impressions = 200;
    o.dev_impressions = 50;
    GenStats st;
    CU_ASSERT_EQUAL_FATAL(gen_run(&o, &st), 0);
    Split tr = {0}, dv = {0};
    check_news(dir, "train/news.tsv", &tr);
    check_news(dir, "dev/news.tsv", &dv);
    check_behaviors(dir, "train/behaviors.tsv", &tr, "11/", NULL, NULL);
    check_behaviors(dir, "dev/behaviors.tsv", &dv, "11/15/2019 ", NULL, NULL);
    CU_ASSERT_EQUAL(tr.errors, 0);
    CU_ASSERT_EQUAL(dv.errors, 0);
    CU_ASSERT_EQUAL(tr.lines, 200);
    CU_ASSERT_EQUAL(dv.lines, 50);
    CU_ASSERT_EQUAL(st.oracle.impressions, 50);
    split_free(&tr);
    split_free(&dv);
    tu_rmtree(dir);
}

/* gen_run refuses options out of range and an output path that is a file. */
static void test_bad_options(void)
{
    GenOptions o;
    gen_options_default(&o);
    CU_ASSERT_EQUAL(gen_run(&o, NULL), PSREC_E_USAGE);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("gen-bad"));
    o.out = dir;
    o.news = GEN_NEWS_MIN - 1;
    CU_ASSERT_EQUAL(gen_run(&o, NULL), PSREC_E_USAGE);
    CU_ASSERT(strstr(psrec_errmsg(), "news") != NULL);
    o.news = 100;
    o.topics = GEN_TOPICS_MAX + 1;
    CU_ASSERT_EQUAL(gen_run(&o, NULL), PSREC_E_USAGE);
    CU_ASSERT(strstr(psrec_errmsg(), "topics") != NULL);
    o.topics = 4;
    o.train_impressions = 0;
    CU_ASSERT_EQUAL(gen_run(&o, NULL), PSREC_E_USAGE);
    o.train_impressions = 10;
    char file[4200];
    snprintf(file, sizeof file, "%s/plain", dir);
    CU_ASSERT_EQUAL_FATAL(tu_write_file(file, "x"), 0);
    o.out = file;
    CU_ASSERT_NOT_EQUAL(gen_run(&o, NULL), 0);
    CU_ASSERT(strstr(psrec_errmsg(), "plain") != NULL);
    tu_rmtree(dir);
}

/* The binary: --help lists every option with its default; usage errors exit 2 with a clear
 * line; a run exits 0, prints the oracle JSON on stdout (= oracle.json) and writes what
 * gen_run writes for the same options. */
static void test_cli(void)
{
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_run(&out, "%s gen --help", TU_PSREC), 0);
    const char *want[] = {"--out",  "--seed",  "--news",   "--users", "--train-impressions",
                          "--dev-impressions", "--topics", "--help", "(default 3000)",
                          "(default 16000)", "(default 12)"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CU_ASSERT(out && strstr(out, want[i]) != NULL);
    free(out);

    struct {
        const char *args, *msg;
    } bad_cases[] = {
        {"--out /tmp/x --bogus", "unknown option '--bogus'"},
        {"--out /tmp/x -q", "unknown option '-q'"},
        {"--out /tmp/x --news abc", "--news needs a non-negative integer"},
        {"--out /tmp/x --news -5", "--news needs a non-negative integer"},
        {"--out /tmp/x --news 10", "out of range"},
        {"--out /tmp/x --topics 99", "out of range"},
        {"--out /tmp/x --seed", "needs a value"},
        {"--news 100", "--out DIR is required"},
        {"--out /tmp/x stray", "unexpected argument 'stray'"},
    };
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        out = NULL;
        CU_ASSERT_EQUAL(tu_run(&out, "%s gen %s", TU_PSREC, bad_cases[i].args), 2);
        CU_ASSERT(out && strstr(out, bad_cases[i].msg) != NULL);
        if (!out || !strstr(out, bad_cases[i].msg))
            fprintf(stderr, "\n  %s -> %s\n", bad_cases[i].args, out ? out : "(null)");
        free(out);
    }

    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s", tu_mkdtemp("gen-cli"));
    snprintf(b, sizeof b, "%s", tu_mkdtemp("gen-lib"));
    out = NULL;
    CU_ASSERT_EQUAL(tu_run(&out,
                           "(%s gen --out %s/set --seed 7 --news 300 --users 200 "
                           "--train-impressions 400 --dev-impressions 300 --topics 5 "
                           "2>/dev/null)",
                           TU_PSREC, a),
                    0);
    char dir_a[4200];
    snprintf(dir_a, sizeof dir_a, "%s/set", a);
    size_t len;
    char *json = read_in(dir_a, "oracle.json", &len);
    CU_ASSERT(json && out && !strcmp(out, json));
    free(json);
    free(out);
    GenOptions o;
    gen_options_default(&o);
    o.out = b;
    o.seed = 7;
    o.news = 300;
    o.users = 200;
    o.train_impressions = 400;
    o.dev_impressions = 300;
    o.topics = 5;
    CU_ASSERT_EQUAL(gen_run(&o, NULL), 0);
    for (size_t i = 0; i < NFILES; i++)
        CU_ASSERT(same_file(dir_a, b, files[i]));

    out = NULL;
    CU_ASSERT_EQUAL(tu_run(&out, "%s gen --out %s/set2 --news 300 --users 200 "
                                 "--train-impressions 100 --dev-impressions 100",
                           TU_PSREC, a),
                    0);
    CU_ASSERT(out && strstr(out, "psrec gen: wrote") != NULL && strstr(out, "\"auc\"") != NULL);
    free(out);
    tu_rmtree(a);
    tu_rmtree(b);
}

int main(void)
{
    static const TuTest tests[] = {
        {"deterministic", test_deterministic},
        {"grammar", test_grammar},
        {"shape", test_shape},
        {"oracle", test_oracle},
        {"tiny_world", test_tiny_world},
        {"bad_options", test_bad_options},
        {"cli", test_cli},
        {NULL, NULL},
    };
    tu_add_suite("gen", tests);
    int rc = tu_run_all();
    if (main_dir[0])
        tu_rmtree(main_dir);
    return rc;
}
