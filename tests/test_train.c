/* Training and evaluation end to end on a small `psrec gen` set: the trained model's dev AUC
 * rises clearly above the untrained one's; one process, one thread, same seed -> the same
 * loss sequence; the checkpoint psrec train leaves behind gives psrec eval the same metrics;
 * prediction files have MIND's format, also for an unlabeled test split. */
#include "common/dataset.h"
#include "common/error.h"
#include "common/metrics.h"
#include "common/rng.h"
#include "launch/inproc.h"
#include "server/shard.h"
#include "testutil/testutil.h"
#include "worker/eval.h"
#include "worker/train.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[4096];

static void make_data(void)
{
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("train"));
    CU_ASSERT_FATAL(tu_small_experiment(dir, 3, "") == 0);
}

static void dims(ModelDims *d)
{
    *d = (ModelDims){.E = 16, .H = 16, .title_len = 12, .his_len = 15, .K = 4};
}

static double eval_auc(Dataset *dev, PsClient *ps)
{
    ModelDims d;
    dims(&d);
    EvalOptions eo = {.dims = d, .data = dev, .ps = ps, .begin = 0, .end = UINT64_MAX};
    MetricsAcc acc;
    metrics_acc_init(&acc);
    CU_ASSERT_FATAL(eval_run(&eo, &acc, NULL) == 0);
    MetricsResult r;
    metrics_result(&acc, &r);
    CU_ASSERT(r.impressions == 500);
    return r.auc;
}

/* Library path: the untrained model ranks near chance; two epochs lift AUC clearly. */
static void test_auc_rises(void)
{
    make_data();
    char p[4200];
    Dataset *train, *dev;
    snprintf(p, sizeof p, "%s/train.db", dir);
    CU_ASSERT_FATAL(dataset_open(p, &train) == 0);
    snprintf(p, sizeof p, "%s/dev.db", dir);
    CU_ASSERT_FATAL(dataset_open(p, &dev) == 0);
    openblas_set_num_threads(1);
    const DatasetMeta *m = dataset_meta(train);
    ShardOptions so = {.shape = {.E = 16, .H = 16, .vocab_rows = m->vocab_rows,
                                 .category_rows = m->category_rows, .user_rows = m->user_rows},
                       .optim = {.kind = OPTIM_ADAM, .lr = 0.003f, .beta1 = 0.9f,
                                 .beta2 = 0.999f, .eps = 1e-8f},
                       .seed = 1};
    Shard *shard;
    CU_ASSERT_FATAL(shard_new(&so, &shard) == 0);
    PsClient ps;
    inproc_client_init(&ps, shard);
    double before = eval_auc(dev, &ps);
    TrainOptions to = {.batch_size = 32, .epochs = 2, .seed = 1, .rank = 0, .world = 1,
                       .train = train, .ps = &ps};
    dims(&to.dims);
    TrainResult res;
    CU_ASSERT_FATAL(train_run(&to, &res) == 0);
    CU_ASSERT_EQUAL(res.samples, 2 * m->samples);
    double after = eval_auc(dev, &ps);
    fprintf(stderr, "\n  dev AUC untrained %.4f -> trained %.4f\n", before, after);
    CU_ASSERT(fabs(before - 0.5) < 0.1);
    CU_ASSERT(after > before + 0.1);
    CU_ASSERT(after > 0.65);
    ShardStats st;
    shard_stats(shard, &st);
    CU_ASSERT(st.bad_requests == 0 && st.pushes > 0);
    shard_free(&shard);
    dataset_free(&train);
    dataset_free(&dev);
}

/* Loss lines of metrics.jsonl (the per-interval ones), concatenated without the timing. */
static char *loss_lines(const char *metrics_path)
{
    char *text = tu_read_file(metrics_path, NULL);
    CU_ASSERT_FATAL(text != NULL);
    char *out = calloc(strlen(text) + 1, 1);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *sps = strstr(line, ",\"samples_per_s\"");
        if (!sps)
            continue;
        *sps = '\0';
        strcat(out, line);
        strcat(out, "\n");
    }
    free(text);
    return out;
}

/* The binary, twice with the same seed: identical loss sequence; a third run with another
 * seed differs. The final eval of training equals psrec eval of its checkpoint. */
static void test_cli_deterministic_and_eval(void)
{
    char *out = NULL, p[4400];
    int rc = tu_run(&out, "%s train %s/exp.conf", TU_PSREC, dir);
    if (rc)
        fprintf(stderr, "%s\n", out);
    CU_ASSERT_FATAL(rc == 0);
    double train_auc = -1;
    CU_ASSERT(tu_json_number(strrchr(out, '{'), "auc", &train_auc));
    free(out);
    snprintf(p, sizeof p, "%s/run/metrics.jsonl", dir);
    char *first = loss_lines(p);
    CU_ASSERT(strlen(first) > 100);
    rc = tu_run(&out, "%s train %s/exp.conf --run.dir=%s/run2", TU_PSREC, dir, dir);
    CU_ASSERT_FATAL(rc == 0);
    free(out);
    snprintf(p, sizeof p, "%s/run2/metrics.jsonl", dir);
    char *second = loss_lines(p);
    CU_ASSERT_STRING_EQUAL(first, second);
    rc = tu_run(&out, "%s train %s/exp.conf --run.dir=%s/run3 --train.seed=2", TU_PSREC, dir, dir);
    CU_ASSERT_FATAL(rc == 0);
    free(out);
    snprintf(p, sizeof p, "%s/run3/metrics.jsonl", dir);
    char *third = loss_lines(p);
    CU_ASSERT(strcmp(first, third) != 0);
    free(first);
    free(second);
    free(third);
    snprintf(p, sizeof p, "%s/run/config.effective", dir);
    char *eff = tu_read_file(p, NULL);
    CU_ASSERT(eff && strstr(eff, "lr = 0.003") && strstr(eff, "hidden = 16"));
    free(eff);

    /* psrec eval of the checkpoint reproduces training's final dev metrics. */
    rc = tu_run(&out, "%s eval --ckpt %s/run/ckpt --data %s/dev.db --json --predictions %s/pred.txt",
                TU_PSREC, dir, dir, dir);
    CU_ASSERT_FATAL(rc == 0);
    double auc = -1, imps = -1;
    CU_ASSERT(tu_json_number(out, "auc", &auc) && fabs(auc - train_auc) < 1e-6);
    CU_ASSERT(tu_json_number(out, "impressions", &imps) && imps == 500);
    free(out);
}

/* Every prediction line: "impid [r1,...]", the ranks a permutation of 1..n, one line per
 * impression in file order; returns the line count. */
static int check_predictions(const char *path, const char *behaviors)
{
    char *pred = tu_read_file(path, NULL), *beh = tu_read_file(behaviors, NULL);
    CU_ASSERT_FATAL(pred && beh);
    int lines = 0;
    char *save1, *save2;
    char *pl = strtok_r(pred, "\n", &save1), *bl = strtok_r(beh, "\n", &save2);
    for (; pl && bl; pl = strtok_r(NULL, "\n", &save1), bl = strtok_r(NULL, "\n", &save2)) {
        lines++;
        size_t idlen = strcspn(bl, "\t");
        CU_ASSERT(strncmp(pl, bl, idlen) == 0 && pl[idlen] == ' ' && pl[idlen + 1] == '[');
        CU_ASSERT(strchr(pl + idlen + 1, ' ') == NULL); /* no spaces inside the brackets */
        int ncand = 1;
        for (const char *c = strrchr(bl, '\t') + 1; *c; c++)
            ncand += *c == ' ';
        int seen[512] = {0}, n = 0;
        for (char *r = pl + idlen + 2; *r && *r != ']'; n++) {
            long v = strtol(r, &r, 10);
            CU_ASSERT(v >= 1 && v <= ncand);
            if (v >= 1 && v < 512)
                seen[v]++;
            if (*r == ',')
                r++;
        }
        CU_ASSERT_EQUAL(n, ncand);
        for (int v = 1; v <= ncand && v < 512; v++)
            CU_ASSERT(seen[v] == 1);
    }
    CU_ASSERT(pl == NULL && bl == NULL);
    free(pred);
    free(beh);
    return lines;
}

static void test_predictions(void)
{
    char p[4400], b[4400];
    snprintf(p, sizeof p, "%s/pred.txt", dir);
    snprintf(b, sizeof b, "%s/g/dev/behaviors.tsv", dir);
    CU_ASSERT_EQUAL(check_predictions(p, b), 500);
    /* An unlabeled test split: strip the labels, prep with --vocab-from, predict. */
    char *out = NULL;
    int rc = tu_run(&out, "sed -E 's/-[01]( |$)/\\1/g' %s/g/dev/behaviors.tsv > %s/test_beh.tsv && "
                          "%s prep --news %s/g/dev/news.tsv --behaviors %s/test_beh.tsv --out "
                          "%s/test.db --vocab-from %s/train.db && "
                          "%s eval --ckpt %s/run/ckpt --data %s/test.db --json --predictions %s/tp.txt",
                    dir, dir, TU_PSREC, dir, dir, dir, dir, TU_PSREC, dir, dir, dir);
    if (rc)
        fprintf(stderr, "%s\n", out);
    CU_ASSERT_FATAL(rc == 0);
    double imps = -1;
    CU_ASSERT(tu_json_number(out, "impressions", &imps) && imps == 0); /* nothing labeled */
    free(out);
    snprintf(p, sizeof p, "%s/tp.txt", dir);
    snprintf(b, sizeof b, "%s/test_beh.tsv", dir);
    CU_ASSERT_EQUAL(check_predictions(p, b), 500);
    /* The same model ranks the same way with or without labels. */
    char *a = tu_read_file(p, NULL);
    snprintf(p, sizeof p, "%s/pred.txt", dir);
    char *c = tu_read_file(p, NULL);
    CU_ASSERT(a && c && strcmp(a, c) == 0);
    free(a);
    free(c);
    /* Bad use: a dev set not sharing the vocabulary, a missing checkpoint. */
    CU_ASSERT(tu_run(NULL, "%s eval --ckpt %s/run/ckpt --data %s/g/dev", TU_PSREC, dir, dir) == 1);
    CU_ASSERT(tu_run(NULL, "%s eval --ckpt %s/nope --data %s/dev.db", TU_PSREC, dir, dir) == 1);
    CU_ASSERT(tu_run(NULL, "%s eval --data %s/dev.db", TU_PSREC, dir) == 2);
    tu_rmtree(dir);
}

/* Negatives: K distinct ones of the impression when there are enough, all of them plus
 * padding news 0 when not. */
static void test_sample_candidates(void)
{
    Rng rng;
    rng_seed(&rng, 9);
    uint32_t neg[6] = {11, 12, 13, 14, 15, 16}, scratch[6], cand[5];
    int hits[17] = {0};
    for (int trial = 0; trial < 3000; trial++) {
        train_sample_candidates(&rng, 7, neg, 6, 4, scratch, cand);
        CU_ASSERT(cand[0] == 7);
        for (int i = 1; i < 5; i++) {
            CU_ASSERT(cand[i] >= 11 && cand[i] <= 16);
            for (int j = 1; j < i; j++)
                CU_ASSERT(cand[i] != cand[j]);
            hits[cand[i]]++;
        }
    }
    for (int v = 11; v <= 16; v++) /* each picked 3000 * 4/6 = 2000 times on average */
        CU_ASSERT(hits[v] > 1800 && hits[v] < 2200);
    train_sample_candidates(&rng, 7, neg, 2, 4, scratch, cand);
    CU_ASSERT(cand[1] == 11 && cand[2] == 12 && cand[3] == 0 && cand[4] == 0);
}

int main(void)
{
    static const TuTest tests[] = {{"negative sampling", test_sample_candidates},
                                   {"dev AUC rises with training", test_auc_rises},
                                   {"psrec train deterministic, eval of its checkpoint",
                                    test_cli_deterministic_and_eval},
                                   {"prediction files", test_predictions},
                                   {NULL, NULL}};
    tu_add_suite("train", tests);
    return tu_run_all();
}
