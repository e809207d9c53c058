/* psrec recommend end to end on psrec gen data: a short training, then questions to the
 * model. Users whose planted taste (gen --truth) has one dominant topic get that topic's news
 * first; the JSON has the documented fields; --impression ranks exactly as eval's predictions
 * do; an unknown user is said to be one; the news-vector cache is built, reused (same output)
 * and rebuilt when the checkpoint or the cache file changes. */
#include "testutil/testutil.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[4096];
static int ready = -1; /* -1 not tried, 0 failed, 1 ready */
static char step_final[4600], step_other[4600]; /* final step dirs of run and run2 */

/* gen (with the truth file) + prep + 2 epochs of training, twice (seeds 1 and 2), once for
 * the whole suite. */
static int fixture(void)
{
    if (ready >= 0)
        return ready;
    ready = 0;
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("recommend"));
    char *out = NULL;
    int rc = tu_run(&out,
                    "%s gen --out %s/g --news 1000 --users 500 --train-impressions 6000 "
                    "--dev-impressions 600 --topics 12 --seed 1 --truth %s/g/truth.tsv && "
                    "%s prep --news %s/g/train/news.tsv --behaviors %s/g/train/behaviors.tsv "
                    "--out %s/train.db --title-len 20 --his-len 30 && "
                    "%s prep --news %s/g/dev/news.tsv --behaviors %s/g/dev/behaviors.tsv "
                    "--out %s/dev.db --vocab-from %s/train.db",
                    TU_PSREC, dir, dir, TU_PSREC, dir, dir, dir, TU_PSREC, dir, dir, dir, dir);
    if (rc) {
        fprintf(stderr, "%s\n", out);
        free(out);
        return 0;
    }
    free(out);
    char conf[4200], text[16384];
    snprintf(conf, sizeof conf, "%s/exp.conf", dir);
    snprintf(text, sizeof text,
             "[data]\ntrain = %s/train.db\ndev = %s/dev.db\n"
             "[model]\nword_dim = 32\nhidden = 32\ntitle_len = 20\nhis_len = 30\n"
             "[train]\nepochs = 2\nbatch_size = 64\nnegatives = 4\nlr = 0.001\nthreads = 1\n"
             
             "[run]\ndir = %s/run\nlog_every = 50\n",
             dir, dir, dir);
    if (tu_write_file(conf, text))
        return 0;
    out = NULL;
    /* Two runs that differ only in their seed: their final checkpoints have the same step
     * and different files. */
    rc = tu_run(&out, "%s train %s/exp.conf && %s train %s/exp.conf --train.seed=2 "
                      "--run.dir=%s/run2",
                TU_PSREC, dir, TU_PSREC, dir, dir);
    if (rc) {
        fprintf(stderr, "%s\n", out);
        free(out);
        return 0;
    }
    free(out);
    /* The last step dir of each run. */
    char root[4200];
    snprintf(root, sizeof root, "%s/run2/ckpt", dir);
    DIR *d = opendir(root);
    if (!d)
        return 0;
    struct dirent *e;
    char hi[256] = "";
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "step-", 5) || strchr(e->d_name, '.'))
            continue;
        if (!hi[0] || strcmp(e->d_name, hi) > 0)
            snprintf(hi, sizeof hi, "%s", e->d_name);
    }
    closedir(d);
    if (!hi[0])
        return 0;
    snprintf(step_other, sizeof step_other, "%s/%s", root, hi);
    snprintf(step_final, sizeof step_final, "%s/run/ckpt/%s", dir, hi);
    struct stat st;
    if (stat(step_final, &st) != 0)
        return 0;
    ready = 1;
    return 1;
}

/* ------------------------------------------------------------ a small strict JSON reader */

typedef struct Item {
    char keys[5][32];
    int nkeys;
    long rank;
    char news[32], category[64], title[512];
    double score;
} Item;

typedef struct Answer {
    char top_keys[16][32];
    int ntop;
    char user[64];
    int unknown_user;
    char cache[64];
    long excluded;
    Item items[2000];
    int nitems;
} Answer;

typedef struct Json {
    const char *p;
    int ok;
} Json;

static void ws(Json *j)
{
    while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')
        j->p++;
}

/* A string into out (cap bytes, escapes decoded for \" \\ and \u00XX only). */
static void jstr(Json *j, char *out, size_t cap)
{
    ws(j);
    size_t n = 0;
    if (*j->p != '"') {
        j->ok = 0;
        return;
    }
    j->p++;
    while (*j->p && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') {
            c = *j->p++;
            if (c == 'u') {
                unsigned v;
                if (sscanf(j->p, "%4x", &v) != 1) {
                    j->ok = 0;
                    return;
                }
                j->p += 4;
                c = (char)v;
            } else if (c != '"' && c != '\\') {
                j->ok = 0;
                return;
            }
        } else if ((unsigned char)c < 0x20) {
            j->ok = 0;
            return;
        }
        if (n + 1 < cap)
            out[n++] = c;
    }
    if (*j->p != '"') {
        j->ok = 0;
        return;
    }
    j->p++;
    out[n] = '\0';
}

static double jnum(Json *j)
{
    ws(j);
    char *end;
    double v = strtod(j->p, &end);
    if (end == j->p)
        j->ok = 0;
    j->p = end;
    return v;
}

static int lit(Json *j, const char *w)
{
    ws(j);
    if (strncmp(j->p, w, strlen(w)) == 0) {
        j->p += strlen(w);
        return 1;
    }
    return 0;
}

static int expect(Json *j, char c)
{
    ws(j);
    if (*j->p == c) {
        j->p++;
        return 1;
    }
    j->ok = 0;
    return 0;
}

static void item(Json *j, Item *it)
{
    memset(it, 0, sizeof *it);
    if (!expect(j, '{'))
        return;
    do {
        char key[32];
        jstr(j, key, sizeof key);
        if (!j->ok || !expect(j, ':'))
            return;
        if (it->nkeys < 5)
            snprintf(it->keys[it->nkeys], sizeof it->keys[0], "%s", key);
        it->nkeys++;
        if (!strcmp(key, "rank"))
            it->rank = (long)jnum(j);
        else if (!strcmp(key, "score"))
            it->score = jnum(j);
        else if (!strcmp(key, "news"))
            jstr(j, it->news, sizeof it->news);
        else if (!strcmp(key, "category"))
            jstr(j, it->category, sizeof it->category);
        else if (!strcmp(key, "title"))
            jstr(j, it->title, sizeof it->title);
        else
            j->ok = 0;
    } while (j->ok && lit(j, ","));
    expect(j, '}');
}

/* Parse recommend's JSON; 1 when it is valid and complete. */
static int parse_answer(const char *text, Answer *a)
{
    memset(a, 0, sizeof *a);
    Json j = {text, 1};
    if (!expect(&j, '{'))
        return 0;
    do {
        char key[32];
        jstr(&j, key, sizeof key);
        if (!j.ok || !expect(&j, ':'))
            return 0;
        if (a->ntop < 16)
            snprintf(a->top_keys[a->ntop++], sizeof a->top_keys[0], "%s", key);
        if (!strcmp(key, "items")) {
            expect(&j, '[');
            ws(&j);
            if (*j.p != ']')
                do {
                    if (a->nitems >= 2000)
                        return 0;
                    item(&j, &a->items[a->nitems++]);
                } while (j.ok && lit(&j, ","));
            expect(&j, ']');
        } else if (lit(&j, "null")) {
        } else if (lit(&j, "true")) {
            a->unknown_user |= !strcmp(key, "unknown_user");
        } else if (lit(&j, "false")) {
        } else {
            ws(&j);
            if (*j.p == '"') {
                char v[64];
                jstr(&j, v, sizeof v);
                if (!strcmp(key, "user"))
                    snprintf(a->user, sizeof a->user, "%s", v);
                if (!strcmp(key, "cache"))
                    snprintf(a->cache, sizeof a->cache, "%s", v);
            } else {
                double v = jnum(&j);
                if (!strcmp(key, "excluded"))
                    a->excluded = (long)v;
            }
        }
    } while (j.ok && lit(&j, ","));
    expect(&j, '}');
    ws(&j);
    return j.ok && *j.p == '\0';
}

/* Run recommend with args; stdout into *out (caller frees), stderr into dir/stderr. */
static int recommend(char **out, const char *ckpt, const char *args)
{
    return tu_run(out, "{ %s recommend --ckpt %s --data %s/dev.db --threads 1 %s 2>%s/stderr; }",
                  TU_PSREC, ckpt, dir, args, dir);
}

static int ask(Answer *a, const char *ckpt, const char *args)
{
    char *out = NULL;
    int rc = recommend(&out, ckpt, args);
    int ok = rc == 0 && out && parse_answer(out, a);
    if (!ok)
        fprintf(stderr, "\n  recommend %s: exit %d: %s\n", args, rc, out ? out : "");
    free(out);
    return ok;
}

/* ------------------------------------------------------------ tests */

/* Users with one dominant planted topic (affinity >= 0.7, the next <= 0.2) who have a dev
 * impression: the model's top news for them is of that topic for most of them, and most of
 * their top 10 is. A model that ignored the user (or a broken user encoder) ranks every user
 * alike and fails: no single topic holds the dominant topic of more than a few of them. */
static void test_preferred_topic_first(void)
{
    CU_ASSERT_FATAL(fixture());
    char p[4200];
    snprintf(p, sizeof p, "%s/g/truth.tsv", dir);
    char *truth = tu_read_file(p, NULL);
    snprintf(p, sizeof p, "%s/g/dev/behaviors.tsv", dir);
    char *beh = tu_read_file(p, NULL);
    snprintf(p, sizeof p, "%s/g/train/behaviors.tsv", dir);
    char *train = tu_read_file(p, NULL); /* users of train are the ones the model knows */
    CU_ASSERT_FATAL(truth && beh && train);
    int chosen = 0, top1 = 0, in_top10 = 0, distinct_tops = 0;
    char tops[20][64];
    for (char *line = strtok(truth, "\n"); line && chosen < 20; line = strtok(NULL, "\n")) {
        char user[32], t1[64], t2[64];
        double a1, a2;
        if (sscanf(line, "%31s %63s %lf %63s %lf", user, t1, &a1, t2, &a2) != 5)
            continue;
        if (a1 < 0.7 || a2 > 0.2)
            continue;
        char needle[40];
        snprintf(needle, sizeof needle, "\t%s\t", user);
        if (!strstr(beh, needle) || !strstr(train, needle))
            continue;
        char args[128];
        snprintf(args, sizeof args, "--user %s --k 10 --json", user);
        static Answer a;
        char ckpt[4200];
        snprintf(ckpt, sizeof ckpt, "%s/run/ckpt", dir);
        CU_ASSERT_FATAL(ask(&a, ckpt, args));
        CU_ASSERT_EQUAL(a.nitems, 10);
        CU_ASSERT_STRING_EQUAL(a.user, user);
        CU_ASSERT(!a.unknown_user);
        if (a.nitems < 1)
            continue;
        top1 += !strcmp(a.items[0].category, t1);
        for (int i = 0; i < a.nitems; i++)
            in_top10 += !strcmp(a.items[i].category, t1);
        int seen = 0;
        for (int k = 0; k < distinct_tops; k++)
            seen |= !strcmp(tops[k], a.items[0].category);
        if (!seen)
            snprintf(tops[distinct_tops++], sizeof tops[0], "%s", a.items[0].category);
        chosen++;
    }
    fprintf(stderr, "\n  %d users with a dominant topic: top-1 in it for %d, %d of %d top-10 "
                    "items, %d distinct top-1 topics\n",
            chosen, top1, in_top10, chosen * 10, distinct_tops);
    CU_ASSERT(chosen >= 15);
    CU_ASSERT(top1 * 4 >= chosen * 3);          /* >= 75% */
    CU_ASSERT(in_top10 * 10 >= chosen * 10 * 6); /* >= 60% of the items */
    CU_ASSERT(distinct_tops >= 4);
    free(truth);
    free(beh);
    free(train);
}

/* The JSON: exact field names in order, ranks 1..k, scores not increasing, the title and
 * category as news.tsv has them; clicked news left out by default, kept on request. */
static void test_json_fields(void)
{
    CU_ASSERT_FATAL(fixture());
    char ckpt[4200];
    snprintf(ckpt, sizeof ckpt, "%s/run/ckpt", dir);
    /* The user of the first dev impression with a history. */
    char p[4200];
    snprintf(p, sizeof p, "%s/g/dev/behaviors.tsv", dir);
    char *beh = tu_read_file(p, NULL);
    CU_ASSERT_FATAL(beh != NULL);
    char user[32] = "", his[4200] = "";
    for (char *line = strtok(beh, "\n"); line && !user[0]; line = strtok(NULL, "\n")) {
        char u[32], h[4096];
        if (sscanf(line, "%*s\t%31[^\t]\t%*[^\t]\t%4095[^\t]", u, h) == 2 && h[0] == 'N') {
            snprintf(user, sizeof user, "%s", u);
            snprintf(his, sizeof his, " %s ", h);
        }
    }
    free(beh);
    CU_ASSERT_FATAL(user[0]);
    char args[128];
    snprintf(args, sizeof args, "--user %s --k 0 --json", user);
    static Answer a, b;
    CU_ASSERT_FATAL(ask(&a, ckpt, args));
    const char *top[] = {"user", "impression", "unknown_user", "history", "excluded", "step",
                         "cache", "items"};
    CU_ASSERT_EQUAL(a.ntop, 8);
    for (int i = 0; i < 8 && i < a.ntop; i++)
        CU_ASSERT_STRING_EQUAL(a.top_keys[i], top[i]);
    const char *names[] = {"rank", "news", "category", "score", "title"};
    snprintf(p, sizeof p, "%s/g/dev/news.tsv", dir);
    char *news = tu_read_file(p, NULL);
    CU_ASSERT_FATAL(news != NULL);
    CU_ASSERT(a.nitems + a.excluded == 990); /* every news of dev.db */
    CU_ASSERT(a.excluded > 0);
    for (int i = 0; i < a.nitems; i++) {
        const Item *it = &a.items[i];
        CU_ASSERT_EQUAL(it->nkeys, 5);
        for (int k = 0; k < 5; k++)
            CU_ASSERT_STRING_EQUAL(it->keys[k], names[k]);
        CU_ASSERT_EQUAL(it->rank, i + 1);
        if (i)
            CU_ASSERT(it->score <= a.items[i - 1].score);
        char needle[40];
        snprintf(needle, sizeof needle, " %s ", it->news);
        CU_ASSERT(strstr(his, needle) == NULL); /* not already clicked */
        if (i < 5) { /* its news.tsv line: id, category, subcategory, title */
            char line[1024];
            snprintf(line, sizeof line, "%s\t%s\t", it->news, it->category);
            const char *at = strstr(news, line);
            CU_ASSERT_FATAL(at != NULL && (at == news || at[-1] == '\n'));
            at = strchr(at + strlen(line), '\t') + 1;
            CU_ASSERT(strncmp(at, it->title, strlen(it->title)) == 0 &&
                      at[strlen(it->title)] == '\t' && it->title[0]);
        }
    }
    free(news);
    snprintf(args, sizeof args, "--user %s --k 0 --json --include-clicked", user);
    CU_ASSERT_FATAL(ask(&b, ckpt, args));
    CU_ASSERT_EQUAL(b.excluded, 0);
    int found = 0; /* a history news comes back */
    for (int i = 0; i < b.nitems; i++) {
        char needle[40];
        snprintf(needle, sizeof needle, " %s ", b.items[i].news);
        found |= strstr(his, needle) != NULL;
    }
    CU_ASSERT(found);
    CU_ASSERT_EQUAL(b.nitems, 990);
}

/* --impression ranks the candidates exactly as eval's predictions file does. */
static void test_impression_like_eval(void)
{
    CU_ASSERT_FATAL(fixture());
    char ckpt[4200];
    snprintf(ckpt, sizeof ckpt, "%s/run/ckpt", dir);
    char *out = NULL;
    CU_ASSERT_FATAL(tu_run(&out, "%s eval --ckpt %s --data %s/dev.db --threads 1 "
                                 "--predictions %s/pred.txt",
                           TU_PSREC, ckpt, dir, dir) == 0);
    free(out);
    char p[4200];
    snprintf(p, sizeof p, "%s/pred.txt", dir);
    char *pred = tu_read_file(p, NULL);
    snprintf(p, sizeof p, "%s/g/dev/behaviors.tsv", dir);
    char *beh = tu_read_file(p, NULL);
    CU_ASSERT_FATAL(pred && beh);
    int checked = 0;
    char *save1 = NULL, *save2 = NULL;
    char *pl = strtok_r(pred, "\n", &save1), *bl = strtok_r(beh, "\n", &save2);
    for (int n = 0; pl && bl && n < 40; n++, pl = strtok_r(NULL, "\n", &save1),
             bl = strtok_r(NULL, "\n", &save2)) {
        if (n % 8)
            continue;
        char id[32], cands[8192];
        CU_ASSERT_FATAL(sscanf(bl, "%31[^\t]\t%*[^\t]\t%*[^\t]\t%*[^\t]\t%8191[^\n]", id, cands) == 2 ||
                        sscanf(bl, "%31[^\t]\t%*[^\t]\t%*[^\t]\t\t%8191[^\n]", id, cands) == 2);
        CU_ASSERT_FATAL(strncmp(pl, id, strlen(id)) == 0 && pl[strlen(id)] == ' ');
        char args[128];
        snprintf(args, sizeof args, "--impression %s --k 0 --json", id);
        static Answer a;
        CU_ASSERT_FATAL(ask(&a, ckpt, args));
        /* Candidate c of the line has eval rank r_c; recommend's item of that news must too. */
        const char *r = strchr(pl, '[') + 1;
        int c = 0;
        for (char *tok = strtok(cands, " "); tok; tok = strtok(NULL, " "), c++) {
            char *dash = strrchr(tok, '-');
            if (dash)
                *dash = '\0';
            long want = strtol(r, (char **)&r, 10);
            r++; /* ',' or ']' */
            int hit = 0;
            for (int i = 0; i < a.nitems; i++)
                if (!strcmp(a.items[i].news, tok)) {
                    CU_ASSERT_EQUAL(a.items[i].rank, want);
                    hit = 1;
                }
            CU_ASSERT(hit);
        }
        CU_ASSERT_EQUAL(a.nitems, c);
        checked++;
    }
    CU_ASSERT(checked >= 5);
    free(pred);
    free(beh);
}

/* A user DB has never seen: the empty-history path, said in text and JSON. */
static void test_unknown_user(void)
{
    CU_ASSERT_FATAL(fixture());
    char ckpt[4200];
    snprintf(ckpt, sizeof ckpt, "%s/run/ckpt", dir);
    char *out = NULL;
    CU_ASSERT_FATAL(recommend(&out, ckpt, "--user U999999 --k 3") == 0);
    CU_ASSERT(out && strstr(out, "U999999 is unknown") && strstr(out, "empty-history"));
    free(out);
    static Answer a, k;
    CU_ASSERT_FATAL(ask(&a, ckpt, "--user U999999 --k 3 --json"));
    CU_ASSERT(a.unknown_user);
    CU_ASSERT_EQUAL(a.nitems, 3);
    CU_ASSERT_EQUAL(a.excluded, 0);
    CU_ASSERT_FATAL(ask(&k, ckpt, "--user U1 --k 3 --json"));
    CU_ASSERT(!k.unknown_user);
    /* Usage errors exit 2. */
    CU_ASSERT_EQUAL(recommend(NULL, ckpt, ""), 2);
    CU_ASSERT_EQUAL(recommend(NULL, ckpt, "--user U1 --impression 1"), 2);
}

static int count_caches(const char *step_dir, char *name, size_t n)
{
    DIR *d = opendir(step_dir);
    int c = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "newsvec-", 8))
            continue;
        c++;
        if (name)
            snprintf(name, n, "%s/%s", step_dir, e->d_name);
    }
    if (d)
        closedir(d);
    return c;
}

/* The cache: built on the first call, read on the second with the same output, rebuilt when
 * the checkpoint in the dir changes and when the file is damaged; never a tmp file left. */
static void test_cache(void)
{
    CU_ASSERT_FATAL(fixture());
    char model[4200], cache[4600];
    snprintf(model, sizeof model, "%s/model", dir);
    char *out = NULL;
    CU_ASSERT_FATAL(tu_run(&out, "rm -rf %s && cp -r %s %s && rm -f %s/newsvec-*", model,
                           step_final, model, model) == 0);
    free(out);
    static Answer a, b, c;
    char *o1 = NULL, *o2 = NULL, *o3 = NULL;
    CU_ASSERT_FATAL(recommend(&o1, model, "--user U1 --k 20 --json") == 0);
    CU_ASSERT_FATAL(parse_answer(o1, &a));
    CU_ASSERT_STRING_EQUAL(a.cache, "built");
    CU_ASSERT_EQUAL(count_caches(model, cache, sizeof cache), 1);
    CU_ASSERT_FATAL(recommend(&o2, model, "--user U1 --k 20 --json") == 0);
    CU_ASSERT_FATAL(parse_answer(o2, &b));
    CU_ASSERT_STRING_EQUAL(b.cache, "hit");
    CU_ASSERT_STRING_EQUAL(strstr(o1, "\"items\""), strstr(o2, "\"items\"")); /* same answer */
    free(o2);
    o2 = NULL;

    /* Damage one float of the cache: detected, rebuilt, same answer. */
    FILE *f = fopen(cache, "r+b");
    CU_ASSERT_FATAL(f != NULL);
    fseek(f, 100, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 100, SEEK_SET);
    fputc(ch ^ 0x40, f);
    fclose(f);
    CU_ASSERT_FATAL(recommend(&o2, model, "--user U1 --k 20 --json") == 0);
    CU_ASSERT_FATAL(parse_answer(o2, &b));
    CU_ASSERT_STRING_EQUAL(b.cache, "built");
    CU_ASSERT_STRING_EQUAL(strstr(o1, "\"items\""), strstr(o2, "\"items\""));

    /* Another checkpoint of the same step in the same dir: the cache no longer matches. */
    CU_ASSERT_FATAL(tu_run(&out, "cp %s/* %s/", step_other, model) == 0);
    free(out);
    CU_ASSERT_FATAL(recommend(&o3, model, "--user U1 --k 20 --json") == 0);
    CU_ASSERT_FATAL(parse_answer(o3, &c));
    CU_ASSERT_STRING_EQUAL(c.cache, "built");
    CU_ASSERT(strcmp(strstr(o1, "\"items\""), strstr(o3, "\"items\"")) != 0);
    /* ... and equals what that checkpoint answers from its own dir. */
    char *o4 = NULL;
    CU_ASSERT_FATAL(recommend(&o4, step_other, "--user U1 --k 20 --json") == 0);
    CU_ASSERT(o4 && strcmp(strstr(o3, "\"items\""), strstr(o4, "\"items\"")) == 0);
    CU_ASSERT_EQUAL(count_caches(model, NULL, 0), 1); /* replaced, no tmp left */
    free(o1);
    free(o2);
    free(o3);
    free(o4);
}

int main(void)
{
    static const TuTest tests[] = {
        {"a user's dominant planted topic comes first", test_preferred_topic_first},
        {"JSON fields, order, titles, clicked news left out", test_json_fields},
        {"--impression ranks as eval's predictions", test_impression_like_eval},
        {"an unknown user is said to be one", test_unknown_user},
        {"news-vector cache built, reused, rebuilt", test_cache},
        {NULL, NULL},
    };
    tu_add_suite("recommend", tests);
    int rc = tu_run_all();
    if (ready == 1 && rc == 0)
        tu_rmtree(dir);
    return rc;
}
