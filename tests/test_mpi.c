/* Multi-process training: the real binary under mpirun --oversubscribe on loopback, every run
 * bounded by `timeout`. Checks numbers: BSP with W workers of batch B/W reproduces the
 * single-process loss curve of batch B; SSP with 2 shards and 2 workers reaches the
 * single-process dev AUC; a misconfigured job fails fast with a clear message; the model a
 * distributed run leaves behind evaluates like the run said. */
#include "testutil/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MPIRUN TU_MPIRUN " --oversubscribe --allow-run-as-root --mca btl self,tcp --mca btl_tcp_if_include lo"

static char dir[4096];

static void make_data(void)
{
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("mpi"));
    CU_ASSERT_FATAL(
        tu_small_experiment(dir, 5, "[ps]\nhost = 127.0.0.1\nrendezvous_timeout = 20\n") == 0);
}

/* Loss of every step of worker w (log_every = 1) from a metrics.jsonl, up to max steps. */
static int losses(const char *run, int worker, double *out, int max)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    char *text = tu_read_file(p, NULL);
    if (!text)
        return 0;
    int n = 0;
    char *save;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        double w, step, loss;
        if (!tu_json_number(line, "loss", &loss) || !tu_json_number(line, "worker", &w) ||
            !tu_json_number(line, "step", &step) || (int)w != worker)
            continue;
        if (step >= 1 && step <= max) {
            out[(int)step - 1] = loss;
            if ((int)step > n)
                n = (int)step;
        }
    }
    free(text);
    return n;
}

/* SGD, interleaved partitions: 2 workers with batch 16 vs one process with batch 32. The
 * mean of the two workers' losses at step t equals the single loss at step t. */
static void test_bsp_equivalence(void)
{
    make_data();
    char *out = NULL;
    const char *common = "--train.optimizer=sgd --train.lr=0.5 --train.epochs=1 "
                         "--run.log_every=1 --data.partition=interleave";
    int rc = tu_run(&out, "timeout 300 %s train %s/exp.conf %s --run.dir=%s/single "
                          "--train.batch_size=32", TU_PSREC, dir, common, dir);
    CU_ASSERT_FATAL(rc == 0);
    free(out);
    rc = tu_run(&out, "timeout 300 " MPIRUN " -np 3 %s train %s/exp.conf %s --run.dir=%s/bsp "
                      "--train.batch_size=16 --ps.servers=1 --ps.consistency=bsp",
                TU_PSREC, dir, common, dir);
    if (rc)
        fprintf(stderr, "%s\n", out);
    CU_ASSERT_FATAL(rc == 0);
    /* Split evaluation over 2 workers gives the numbers of one process evaluating the same
     * parameters: under BSP every worker evaluates the final model, which the checkpoint
     * holds. */
    double split = -1, whole = -1;
    CU_ASSERT(tu_json_number(strrchr(out, '{'), "auc", &split));
    free(out);
    rc = tu_run(&out, "%s eval --ckpt %s/bsp/ckpt --data %s/dev.db --json", TU_PSREC, dir, dir);
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT(tu_json_number(out, "auc", &whole));
    fprintf(stderr, "\n  dev AUC split over 2 workers %.6f, one process on the checkpoint %.6f\n",
            split, whole);
    CU_ASSERT(fabs(split - whole) < 1e-6);
    free(out);
    double single[20], w0[20], w1[20];
    char run[4200];
    snprintf(run, sizeof run, "%s/single", dir);
    CU_ASSERT_FATAL(losses(run, 0, single, 20) == 20);
    snprintf(run, sizeof run, "%s/bsp", dir);
    CU_ASSERT_FATAL(losses(run, 0, w0, 20) == 20);
    CU_ASSERT_FATAL(losses(run, 1, w1, 20) == 20);
    double worst = 0;
    for (int t = 0; t < 20; t++) {
        double d = fabs((w0[t] + w1[t]) / 2 - single[t]);
        worst = d > worst ? d : worst;
    }
    fprintf(stderr, "\n  BSP vs single process, 20 steps: largest loss difference %.2e "
                    "(first %.6f vs %.6f, last %.6f vs %.6f)\n",
            worst, (w0[0] + w1[0]) / 2, single[0], (w0[19] + w1[19]) / 2, single[19]);
    CU_ASSERT(worst < 1e-4);
    /* The curve moved: SGD at lr 0.5 changes the loss over 20 steps. */
    CU_ASSERT(fabs(single[19] - single[0]) > 1e-3);
}

/* 2 shards + 2 workers, SSP s = 2, against one process on the same data and epochs. */
static void test_ssp_end_to_end(void)
{
    char *out = NULL;
    int rc = tu_run(&out, "timeout 300 %s train %s/exp.conf --run.dir=%s/one", TU_PSREC, dir, dir);
    CU_ASSERT_FATAL(rc == 0);
    double one = -1, dist = -1;
    CU_ASSERT(tu_json_number(strrchr(out, '{'), "auc", &one));
    free(out);
    rc = tu_run(&out, "timeout 300 " MPIRUN " -np 4 %s train %s/exp.conf --run.dir=%s/ssp "
                      "--ps.servers=2 --ps.consistency=ssp --ps.staleness=2",
                TU_PSREC, dir, dir);
    if (rc)
        fprintf(stderr, "%s\n", out);
    CU_ASSERT_FATAL(rc == 0);
    char *json = strrchr(out, '{');
    CU_ASSERT_FATAL(json != NULL);
    CU_ASSERT(tu_json_number(json, "auc", &dist));
    double imps = 0;
    CU_ASSERT(tu_json_number(json, "impressions", &imps) && imps == 500);
    fprintf(stderr, "\n  dev AUC: one process %.4f, 2 shards + 2 workers SSP(2) %.4f\n", one, dist);
    CU_ASSERT(fabs(one - dist) < 0.01);
    CU_ASSERT(dist > 0.7);
    /* Every rank names its role and rank. */
    CU_ASSERT(strstr(out, "[server 0 ") && strstr(out, "[server 1 ") && strstr(out, "[worker 2 ") &&
              strstr(out, "[worker 3 "));
    free(out);
    /* The shards' stats reached metrics.jsonl. */
    char p[4400];
    snprintf(p, sizeof p, "%s/ssp/metrics.jsonl", dir);
    char *m = tu_read_file(p, NULL);
    CU_ASSERT(m && strstr(m, "\"shard\":0") && strstr(m, "\"shard\":1"));
    free(m);
    /* The model of the distributed run (two shard files) evaluates close to what the run
     * said; under SSP the other worker may still push while one evaluates, so not exactly. */
    rc = tu_run(&out, "%s eval --ckpt %s/ssp/ckpt --data %s/dev.db --json", TU_PSREC, dir, dir);
    CU_ASSERT_FATAL(rc == 0);
    double auc = -1;
    CU_ASSERT(tu_json_number(out, "auc", &auc) && fabs(auc - dist) < 0.01);
    free(out);
}

/* ps.colocate: every rank runs a shard thread and a worker (ASP here). ps.host names a
 * network, which each shard resolves to its own machine's address in it. */
static void test_colocate(void)
{
    char *out = NULL;
    int rc = tu_run(&out, "timeout 300 " MPIRUN " -np 2 %s train %s/exp.conf --run.dir=%s/colo "
                          "--ps.colocate=true --ps.consistency=asp --ps.host=127.0.0.0/8",
                    TU_PSREC, dir, dir);
    if (rc)
        fprintf(stderr, "%s\n", out);
    CU_ASSERT_FATAL(rc == 0);
    double auc = 0, imps = 0;
    char *json = strrchr(out, '{');
    CU_ASSERT_FATAL(json != NULL);
    CU_ASSERT(tu_json_number(json, "auc", &auc) && auc > 0.7);
    CU_ASSERT(tu_json_number(json, "impressions", &imps) && imps == 500);
    CU_ASSERT(strstr(out, "[server+worker 0 ") && strstr(out, "[server+worker 1 "));
    CU_ASSERT(strstr(out, "shard 0 binds 127.0.0.1 (network 127.0.0.0/8 (interface lo))") &&
              strstr(out, "shard 1 binds 127.0.0.1 (network 127.0.0.0/8 (interface lo))"));
    free(out);
}

/* More shards than ranks: every rank knows at once; the job exits non-zero within seconds
 * with a message saying what to change. */
static void test_rendezvous_failure(void)
{
    char *out = NULL;
    int rc = tu_run(&out, "timeout 60 " MPIRUN " -np 2 %s train %s/exp.conf --run.dir=%s/bad "
                          "--ps.servers=2", TU_PSREC, dir, dir);
    CU_ASSERT(rc != 0 && rc != 124); /* 124: timeout fired, i.e. it hung */
    CU_ASSERT(strstr(out, "ps.servers = 2 needs at least 3 MPI ranks") != NULL);
    free(out);
    /* A ps.host that is not this machine's (an address, a network, an interface) fails the
     * job at once, never hangs, and says what the machine has. */
    static const char *const foreign[] = {"203.0.113.77", "203.0.113.0/24", "nosuchif0"};
    for (int i = 0; i < 3; i++) {
        rc = tu_run(&out, "timeout 60 " MPIRUN " -np 2 %s train %s/exp.conf --run.dir=%s/bad2-%d "
                          "--ps.host=%s", TU_PSREC, dir, dir, i, foreign[i]);
        CU_ASSERT(rc != 0 && rc != 124);
        char want[96];
        snprintf(want, sizeof want, "shard 0: ps.host = %s", foreign[i]);
        CU_ASSERT(strstr(out, want) != NULL);
        CU_ASSERT(strstr(out, "(it has: lo 127.0.0.1") != NULL);
        free(out);
    }
    /* A rank that never starts psrec (here: `sleep`): MPI_Init itself would wait forever; the
     * start-up watchdog ends the job after ps.rendezvous_timeout (+10 s) with a message. */
    rc = tu_run(&out, "timeout 90 " MPIRUN " -np 2 %s train %s/exp.conf --run.dir=%s/bad3 "
                      "--ps.rendezvous_timeout=2 : -np 1 sleep 120", TU_PSREC, dir, dir);
    CU_ASSERT(rc != 0 && rc != 124);
    CU_ASSERT(strstr(out, "rendezvous: the job did not start within") != NULL);
    free(out);
}

/* A worker that fails before it reaches any shard: the shards hear of it point to point and
 * stop, the other worker's waiting pull is refused, and the job exits non-zero, never hangs. */
static void test_worker_failure(void)
{
    char *out = NULL;
    int rc = tu_run(&out, "timeout 120 " MPIRUN " -np 3 -x PSREC_TEST_FAIL_WORKER=1 %s train "
                          "%s/exp.conf --run.dir=%s/fail", TU_PSREC, dir, dir);
    CU_ASSERT(rc != 0 && rc != 124);
    CU_ASSERT(strstr(out, "failing on purpose") != NULL);
    CU_ASSERT(strstr(out, "reports its worker failed") != NULL);
    free(out);
    char p[4400];
    snprintf(p, sizeof p, "%s/fail/ckpt/LATEST", dir);
    CU_ASSERT(access(p, F_OK) != 0); /* a failed job publishes no model */
    tu_rmtree(dir);
}

int main(void)
{
    static const TuTest tests[] = {{"BSP equals one process", test_bsp_equivalence},
                                   {"SSP 2 shards 2 workers end to end", test_ssp_end_to_end},
                                   {"colocated shards and workers", test_colocate},
                                   {"rendezvous failures", test_rendezvous_failure},
                                   {"a worker fails", test_worker_failure},
                                   {NULL, NULL}};
    tu_add_suite("mpi", tests);
    return tu_run_all();
}
