/* `psrec recommend --ckpt DIR --data DB (--user UID | --impression IMPID) [--k N]
 * [--exclude-clicked | --include-clicked] [--json] [--threads N]`: ask a trained model for
 * recommendations.
 *
 *   --user: the user's latest history in DB (the history of the user's last impression in
 *     file order) is encoded and every news of DB is ranked; what the user already clicked
 *     (that history, and the clicked candidates of every impression of the user in DB) is
 *     left out unless --include-clicked. A user not in DB's users table gets the model's
 *     empty-history path (u = the unknown-user row of E_user) and the output says so.
 *   --impression: that impression's candidates ranked as eval ranks them (same user vector,
 *     scores and tie rule as eval's predictions file); --exclude-clicked there leaves out
 *     candidates already in its history.
 * Ranks are metrics_ranks' (descending score, ties to the lower news row / earlier candidate).
 * The news vectors come from launch/newscache (encoded once per checkpoint and dataset). */
#include "common/error.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/timer.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/inproc.h"
#include "launch/modelload.h"
#include "launch/newscache.h"
#include "launch/run.h"
#include "worker/scorer.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void recommend_usage(FILE *f)
{
    fprintf(f,
            "usage: psrec recommend --ckpt DIR --data DB (--user UID | --impression IMPID)\n"
            "                       [--k N] [--exclude-clicked | --include-clicked] [--json]\n\n"
            "Rank news for a user, or an impression's candidates, with the model in DIR.\n"
            "  --ckpt DIR          a run's checkpoint directory (its newest valid step) or a step-N dir\n"
            "  --data DB           a dataset sharing the model's vocabulary (prep --vocab-from)\n"
            "  --user UID          rank every news of DB for this user (its latest history in DB);\n"
            "                      news the user already clicked in DB are left out by default\n"
            "  --impression IMPID  rank that impression's candidates, as psrec eval does\n"
            "  --k N               items to print (default 10; 0 = all)\n"
            "  --exclude-clicked   leave out news the user already clicked (the default for --user;\n"
            "                      for --impression: candidates already in its history)\n"
            "  --include-clicked   keep them (--user)\n"
            "  --json              print {\"user\",\"impression\",\"unknown_user\",\"history\",\n"
            "                      \"excluded\",\"step\",\"cache\",\"items\":[{\"rank\",\"news\",\n"
            "                      \"category\",\"score\",\"title\"}]}\n"
            "  --threads N         BLAS threads (default: all cores)\n"
            "  -h, --help          this text\n"
            "The news vectors are cached in DIR's step dir (newsvec-*.cache): the first call\n"
            "encodes every news of DB, later ones read them.\n");
}

/* The question, the answer and what they need. */
typedef struct Rec {
    const char *user_id, *imp_id;
    int exclude; /* leave out clicked news */
    uint64_t k;
    Dataset *ds;
    DatasetTxn *txn;
    Scorer *sc;
    uint32_t user_row;
    int unknown_user;    /* user not in DB's users table */
    const uint32_t *his; /* history fed to the user encoder (views of txn) */
    uint32_t nhis;
    ImpressionView imp;  /* --impression: the impression; --user: the latest one */
    int have_imp;
    uint8_t *drop;       /* (news_rows) 1 = left out */
    uint64_t excluded;
    uint32_t *cand;      /* (ncand) news rows ranked */
    uint64_t ncand;
    float *scores;       /* (ncand) */
    uint32_t *ranks;     /* (ncand) 1-based */
    uint64_t *order;     /* (ncand) candidate index by rank */
} Rec;

static void json_str(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* --user: find the row, the latest impression, and what the user clicked. */
static int find_user(Rec *r)
{
    int rc = dataset_find_user(r->txn, r->user_id, (uint32_t)strlen(r->user_id), &r->user_row);
    if (rc == PSREC_E_NOTFOUND || (rc == 0 && r->user_row == DATASET_UNK_USER)) {
        /* Row 0 stands for every unknown user: its impressions are other people's. */
        r->unknown_user = 1;
        r->user_row = DATASET_UNK_USER;
    } else if (rc) {
        return rc;
    }
    const DatasetMeta *dm = dataset_meta(r->ds);
    for (uint64_t i = 0; i < dm->impressions && !r->unknown_user; i++) {
        ImpressionView iv;
        if ((rc = dataset_get_impression(r->txn, i, &iv)))
            return rc;
        if (iv.user != r->user_row)
            continue;
        r->imp = iv;
        r->have_imp = 1;
        if (iv.labeled)
            for (uint32_t c = 0; c < iv.ncand; c++)
                if (iv.labels[c] && iv.cand[c] < dm->news_rows)
                    r->drop[iv.cand[c]] = r->exclude;
    }
    if (r->have_imp) {
        r->his = r->imp.his;
        r->nhis = r->imp.nhis;
        for (uint32_t j = 0; j < r->nhis; j++)
            if (r->his[j] < dm->news_rows)
                r->drop[r->his[j]] = (uint8_t)r->exclude;
    }
    r->drop[DATASET_PAD_NEWS] = 1; /* the padding news is no news */
    for (uint64_t n = 0; n < dm->news_rows; n++)
        r->ncand += !r->drop[n];
    r->excluded = dm->news_rows - 1 - r->ncand;
    if (!(r->cand = malloc((r->ncand ? r->ncand : 1) * sizeof *r->cand)))
        return psrec_errf(PSREC_E_NOMEM, "out of memory");
    uint64_t k = 0;
    for (uint64_t n = 0; n < dm->news_rows; n++)
        if (!r->drop[n])
            r->cand[k++] = (uint32_t)n;
    return 0;
}

/* --impression: find it by its id; its candidates are the ones ranked. */
static int find_impression(Rec *r)
{
    const DatasetMeta *dm = dataset_meta(r->ds);
    size_t idl = strlen(r->imp_id);
    int rc;
    for (uint64_t i = 0; i < dm->impressions && !r->have_imp; i++) {
        ImpressionView iv;
        if ((rc = dataset_get_impression(r->txn, i, &iv)))
            return rc;
        if (iv.id_len == idl && memcmp(iv.id, r->imp_id, idl) == 0) {
            r->imp = iv;
            r->have_imp = 1;
        }
    }
    if (!r->have_imp)
        return psrec_errf(PSREC_E_NOTFOUND, "impression %s is not in the dataset", r->imp_id);
    r->user_row = r->imp.user;
    r->unknown_user = r->imp.user == DATASET_UNK_USER;
    r->his = r->imp.his;
    r->nhis = r->imp.nhis;
    if (r->exclude)
        for (uint32_t j = 0; j < r->nhis; j++)
            if (r->his[j] < dm->news_rows)
                r->drop[r->his[j]] = 1;
    if (!(r->cand = malloc((r->imp.ncand ? r->imp.ncand : 1) * sizeof *r->cand)))
        return psrec_errf(PSREC_E_NOMEM, "out of memory");
    for (uint32_t c = 0; c < r->imp.ncand; c++) {
        if (r->drop[r->imp.cand[c]])
            r->excluded++;
        else
            r->cand[r->ncand++] = r->imp.cand[c];
    }
    return 0;
}

static void print_text(const Rec *r, const LoadedModel *lm, const NewsCacheInfo *ci)
{
    const char *uid = r->user_id;
    const char *s;
    uint32_t n;
    if (r->imp_id) {
        if (dataset_get_user(r->txn, r->user_row, &s, &n) == 0 && !r->unknown_user)
            printf("impression %s of user %.*s: %u history clicks, %llu candidates",
                   r->imp_id, (int)n, s, r->nhis, (unsigned long long)r->ncand);
        else
            printf("impression %s of an unknown user (empty-history path: the model's "
                   "unknown-user row, then its %u history clicks): %llu candidates",
                   r->imp_id, r->nhis, (unsigned long long)r->ncand);
    } else if (r->unknown_user) {
        printf("user %s is unknown to this dataset and model: ranked with the empty-history "
               "path (the model's unknown-user row)", uid);
    } else {
        printf("user %s: latest history %u clicks%s", uid, r->nhis,
               r->have_imp ? "" : " (no impression in this dataset)");
    }
    if (r->excluded)
        printf(", %llu already-clicked news left out", (unsigned long long)r->excluded);
    printf("; model step %llu; news vectors %s\n", (unsigned long long)lm->meta.step,
           ci->outcome == NEWSCACHE_HIT ? "cached" : "encoded");
    printf("%5s  %-12s %-16s %9s  %s\n", "rank", "news", "category", "score", "title");
    uint64_t k = r->k && r->k < r->ncand ? r->k : r->ncand;
    for (uint64_t i = 0; i < k; i++) {
        uint64_t c = r->order[i];
        NewsView nv;
        NewsText t;
        if (dataset_get_news(r->txn, r->cand[c], &nv) || dataset_get_news_text(r->txn, r->cand[c], &t))
            continue;
        printf("%5u  %-12.*s %-16.*s %9.4f  %.*s\n", r->ranks[c], (int)nv.id_len, nv.id,
               (int)t.category_len, t.category, (double)r->scores[c], (int)t.title_len, t.title);
    }
}

static void print_json(const Rec *r, const LoadedModel *lm, const NewsCacheInfo *ci)
{
    const char *s;
    uint32_t n;
    fputs("{\"user\":", stdout);
    if (r->user_id)
        json_str(stdout, r->user_id, strlen(r->user_id));
    else if (!r->unknown_user && dataset_get_user(r->txn, r->user_row, &s, &n) == 0)
        json_str(stdout, s, n);
    else
        fputs("null", stdout);
    fputs(",\"impression\":", stdout);
    if (r->imp_id)
        json_str(stdout, r->imp_id, strlen(r->imp_id));
    else
        fputs("null", stdout);
    printf(",\"unknown_user\":%s,\"history\":%u,\"excluded\":%llu,\"step\":%llu,"
           "\"cache\":\"%s\",\"items\":[",
           r->unknown_user ? "true" : "false", r->nhis, (unsigned long long)r->excluded,
           (unsigned long long)lm->meta.step,
           ci->outcome == NEWSCACHE_HIT ? "hit" : ci->outcome == NEWSCACHE_BUILT ? "built"
                                                                                 : "unsaved");
    uint64_t k = r->k && r->k < r->ncand ? r->k : r->ncand;
    for (uint64_t i = 0; i < k; i++) {
        uint64_t c = r->order[i];
        NewsView nv;
        NewsText t;
        if (dataset_get_news(r->txn, r->cand[c], &nv) || dataset_get_news_text(r->txn, r->cand[c], &t))
            continue;
        printf("%s{\"rank\":%u,\"news\":", i ? "," : "", r->ranks[c]);
        json_str(stdout, nv.id, nv.id_len);
        fputs(",\"category\":", stdout);
        json_str(stdout, t.category, t.category_len);
        printf(",\"score\":%.6g,\"title\":", (double)r->scores[c]);
        json_str(stdout, t.title, t.title_len);
        fputc('}', stdout);
    }
    fputs("]}\n", stdout);
}

int cmd_recommend(int argc, char **argv)
{
    enum { O_CKPT = 256, O_DATA, O_USER, O_IMP, O_K, O_EXCL, O_INCL, O_JSON, O_THREADS };
    static const struct option opts[] = {{"ckpt", required_argument, NULL, O_CKPT},
                                          {"data", required_argument, NULL, O_DATA},
                                          {"user", required_argument, NULL, O_USER},
                                          {"impression", required_argument, NULL, O_IMP},
                                          {"k", required_argument, NULL, O_K},
                                          {"exclude-clicked", no_argument, NULL, O_EXCL},
                                          {"include-clicked", no_argument, NULL, O_INCL},
                                          {"json", no_argument, NULL, O_JSON},
                                          {"threads", required_argument, NULL, O_THREADS},
                                          {"help", no_argument, NULL, 'h'},
                                          {0, 0, 0, 0}};
    const char *ckpt = NULL, *data = NULL;
    Rec r = {.k = 10, .exclude = -1};
    int json = 0, threads = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_CKPT: ckpt = optarg; break;
        case O_DATA: data = optarg; break;
        case O_USER: r.user_id = optarg; break;
        case O_IMP: r.imp_id = optarg; break;
        case O_K:
            if (cli_u64("recommend", "k", optarg, 0, UINT64_MAX, &r.k))
                return EXIT_USAGE;
            break;
        case O_EXCL: r.exclude = 1; break;
        case O_INCL: r.exclude = 0; break;
        case O_JSON: json = 1; break;
        case O_THREADS:
            if (cli_int("recommend", "threads", optarg, 0, 4096, &threads))
                return EXIT_USAGE;
            break;
        case 'h': recommend_usage(stdout); return EXIT_OK;
        default: recommend_usage(stderr); return EXIT_USAGE;
        }
    }
    if (!ckpt || !data || optind != argc || !r.user_id == !r.imp_id) {
        fprintf(stderr, "psrec recommend: --ckpt, --data and one of --user or --impression "
                        "are required\n");
        recommend_usage(stderr);
        return EXIT_USAGE;
    }
    if (r.exclude < 0)
        r.exclude = r.user_id != NULL; /* --user leaves out what was clicked by default */
    log_set_identity("recommend", 0);
    run_set_threads(threads);
    const double t0 = timer_now();
    LoadedModel lm = {0};
    MetricsScratch ms;
    metrics_scratch_init(&ms);
    NewsCacheInfo ci = {0};
    int rc = EXIT_FAIL;
    if (modelload_open(ckpt, &lm) || dataset_open(data, &r.ds) ||
        modelload_check_data(&lm.meta, lm.step_dir, dataset_meta(r.ds), data)) {
        fprintf(stderr, "psrec recommend: %s\n", psrec_errmsg());
        goto out;
    }
    const double t_load = timer_now();
    const DatasetMeta *dm = dataset_meta(r.ds);
    if (!dataset_has_news_text(r.ds))
        LOG_WARN("%s was prepared by an older psrec prep and has no titles; re-run psrec prep "
                 "to print them", data);
    PsClient ps;
    inproc_client_init(&ps, lm.shard);
    if (dataset_txn_new(r.ds, &r.txn) || scorer_new(&r.sc, &lm.dims, &ps, dm->news_rows, 1) ||
        !(r.drop = calloc(dm->news_rows, 1))) {
        fprintf(stderr, "psrec recommend: %s\n", psrec_errmsg());
        goto out;
    }
    if ((r.user_id ? find_user(&r) : find_impression(&r)) ||
        newscache_fill(&lm, r.ds, r.txn, r.sc, &ci)) {
        fprintf(stderr, "psrec recommend: %s\n", psrec_errmsg());
        goto out;
    }
    const double t_news = timer_now();
    float *u = malloc((size_t)lm.dims.H * sizeof *u);
    r.scores = malloc((r.ncand ? r.ncand : 1) * sizeof *r.scores);
    r.ranks = malloc((r.ncand ? r.ncand : 1) * sizeof *r.ranks);
    r.order = malloc((r.ncand ? r.ncand : 1) * sizeof *r.order);
    const uint32_t *his[1] = {r.his};
    uint32_t nhis[1] = {r.nhis}, user[1] = {r.user_row};
    if (!u || !r.scores || !r.ranks || !r.order ||
        scorer_encode_users(r.sc, 1, user, his, nhis, u) ||
        (scorer_score(r.sc, u, r.cand, r.ncand, r.scores), 0) ||
        metrics_ranks(r.scores, r.ncand, r.ranks, &ms)) {
        fprintf(stderr, "psrec recommend: %s\n", u && r.scores && r.ranks && r.order
                                                      ? psrec_errmsg()
                                                      : "out of memory");
        free(u);
        goto out;
    }
    free(u);
    for (uint64_t i = 0; i < r.ncand; i++)
        r.order[r.ranks[i] - 1] = i;
    if (json)
        print_json(&r, &lm, &ci);
    else
        print_text(&r, &lm, &ci);
    fflush(stdout);
    fprintf(stderr,
            "psrec recommend: %.3f s (model %.3f s; news vectors %s %.3f s, data key %.3f s: "
            "%s; user and %llu scores %.3f s)\n",
            timer_now() - t0, t_load - t0,
            ci.outcome == NEWSCACHE_HIT ? "read from cache" : "encoded", ci.seconds,
            ci.key_seconds, ci.path, (unsigned long long)r.ncand, timer_now() - t_news);
    rc = EXIT_OK;
out:
    metrics_scratch_fini(&ms);
    scorer_free(&r.sc);
    dataset_txn_free(&r.txn);
    dataset_free(&r.ds);
    modelload_close(&lm);
    free(r.drop);
    free(r.cand);
    free(r.scores);
    free(r.ranks);
    free(r.order);
    return rc;
}
