/* `psrec eval --ckpt DIR --data DB [--predictions FILE] [--json] [--threads N]`: score every
 * candidate of every impression of a dataset with a trained model; print MIND's metrics and
 * optionally write MIND's submission file (works for the unlabeled test split too). */
#include "common/error.h"
#include "common/log.h"
#include "common/metrics.h"
#include "launch/commands.h"
#include "launch/inproc.h"
#include "launch/modelload.h"
#include "launch/run.h"
#include "worker/eval.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void eval_usage(FILE *f)
{
    fprintf(f, "usage: psrec eval --ckpt DIR --data DB [--predictions FILE] [--json] [--threads N]\n\n"
               "Score every candidate of every impression of DB with the model in DIR.\n"
               "  --ckpt DIR          a run's checkpoint directory (its newest valid step) or a step-N dir\n"
               "  --data DB           a dataset made by psrec prep --vocab-from <the train set>\n"
               "  --predictions FILE  write MIND's submission format: \"impid [r1,r2,...]\" per\n"
               "                      impression, 1-based ranks in candidate order\n"
               "  --json              print {\"auc\",\"mrr\",\"ndcg5\",\"ndcg10\",\"impressions\",\"skipped\"}\n"
               "  --threads N         BLAS threads (default: all cores)\n"
               "  -h, --help          this text\n");
}

int cmd_eval(int argc, char **argv)
{
    enum { O_CKPT = 256, O_DATA, O_PRED, O_JSON, O_THREADS };
    static const struct option opts[] = {{"ckpt", required_argument, NULL, O_CKPT},
                                          {"data", required_argument, NULL, O_DATA},
                                          {"predictions", required_argument, NULL, O_PRED},
                                          {"json", no_argument, NULL, O_JSON},
                                          {"threads", required_argument, NULL, O_THREADS},
                                          {"help", no_argument, NULL, 'h'},
                                          {0, 0, 0, 0}};
    const char *ckpt = NULL, *data = NULL, *pred = NULL;
    int json = 0, threads = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_CKPT: ckpt = optarg; break;
        case O_DATA: data = optarg; break;
        case O_PRED: pred = optarg; break;
        case O_JSON: json = 1; break;
        case O_THREADS: threads = atoi(optarg); break;
        case 'h': eval_usage(stdout); return EXIT_OK;
        default: eval_usage(stderr); return EXIT_USAGE;
        }
    }
    if (!ckpt || !data || optind != argc) {
        fprintf(stderr, "psrec eval: --ckpt and --data are required\n");
        eval_usage(stderr);
        return EXIT_USAGE;
    }
    log_set_identity("eval", 0);
    run_set_threads(threads);
    LoadedModel lm = {0};
    Dataset *ds = NULL;
    FILE *pf = NULL;
    int rc = EXIT_FAIL;
    if (modelload_open(ckpt, &lm) || dataset_open(data, &ds) ||
        modelload_check_data(&lm.meta, lm.step_dir, dataset_meta(ds), data)) {
        fprintf(stderr, "psrec eval: %s\n", psrec_errmsg());
        goto out;
    }
    if (pred && !(pf = fopen(pred, "w"))) {
        fprintf(stderr, "psrec eval: %s: cannot write\n", pred);
        goto out;
    }
    PsClient ps;
    inproc_client_init(&ps, lm.shard);
    EvalOptions eo = {.dims = lm.dims, .data = ds, .ps = &ps, .begin = 0, .end = UINT64_MAX,
                      .predictions = pf, .progress = 1};
    MetricsAcc acc;
    metrics_acc_init(&acc);
    EvalStats st;
    if (eval_run(&eo, &acc, &st)) {
        fprintf(stderr, "psrec eval: %s\n", psrec_errmsg());
        goto out;
    }
    if (pf && fclose(pf) != 0) {
        pf = NULL;
        fprintf(stderr, "psrec eval: %s: write failed\n", pred);
        goto out;
    }
    pf = NULL;
    MetricsResult r;
    metrics_result(&acc, &r);
    if (json)
        run_print_eval(stdout, &r);
    else
        printf("AUC %.4f  MRR %.4f  nDCG@5 %.4f  nDCG@10 %.4f  (%llu impressions, %llu skipped; "
               "model %s step %llu; %.1f s)\n", r.auc, r.mrr, r.ndcg5, r.ndcg10,
               (unsigned long long)r.impressions, (unsigned long long)r.skipped, lm.step_dir,
               (unsigned long long)lm.meta.step, st.seconds);
    rc = EXIT_OK;
out:
    if (pf)
        fclose(pf);
    modelload_close(&lm);
    dataset_free(&ds);
    return rc;
}
