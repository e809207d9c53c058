/* A job's guards, end to end (the real binary, alone and under mpirun with 1 shard and 1
 * worker).
 * A worker whose loss turns non-finite (worker/train.c check_finite; the test hook
 * PSREC_TEST_NAN_AT_STEP=n makes step n's loss NaN, since an exploding lr does not get this
 * LSTM's bounded scores to NaN) stops with a message naming the step and pushes nothing of it:
 *   - one process: exit 1, summary.json "failed", loss lines for steps 1..n-1 only, no model;
 *   - mpirun, NaN at step 1: every rank exits non-zero, the shard's final stats line counts
 *     0 pushes and 0 refused messages (nothing was even sent to refuse).
 * Each ps.max_* limit set too low reaches the shard and the worker: the job fails naming the
 * key, and the shard's stats line counts the refusal when the shard was the one to refuse
 * (tests/test_limits.c checks the limits themselves). */
#include "testutil/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MPIRUN TU_MPIRUN " --oversubscribe --allow-run-as-root --mca btl self,tcp --mca btl_tcp_if_include lo"

static char dir[4096];

static void make_data(void)
{
    if (dir[0])
        return;
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("jobguards"));
    CU_ASSERT_FATAL(tu_small_experiment(dir, 3, "[ps]\nhost = 127.0.0.1\n") == 0);
}

/* The value of key in the last line of run/metrics.jsonl that has `tag` and key. */
static int last_number(const char *run, const char *tag, const char *key, double *v)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    char *text = tu_read_file(p, NULL);
    if (!text)
        return 0;
    int found = 0;
    char *save;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (strstr(line, tag) && tu_json_number(line, key, v))
            found = 1;
    free(text);
    return found;
}

static void test_single_process(void)
{
    make_data();
    char *out = NULL;
    int rc = tu_run(&out, "PSREC_TEST_NAN_AT_STEP=5 timeout 300 %s train %s/exp.conf "
                    "--run.dir=%s/single --run.log_every=1", TU_PSREC, dir, dir);
    CU_ASSERT(rc == 1);
    CU_ASSERT(out && strstr(out, "diverged at step 5: the loss is NaN"));
    char run[4200], p[4400];
    snprintf(run, sizeof run, "%s/single", dir);
    double step = 0;
    CU_ASSERT(last_number(run, "\"loss\"", "step", &step) && step == 4);
    snprintf(p, sizeof p, "%s/summary.json", run);
    char *summary = tu_read_file(p, NULL);
    CU_ASSERT(summary && strstr(summary, "\"status\": \"failed\""));
    free(summary);
    if (rc != 1 && out)
        fprintf(stderr, "%s\n", out);
    free(out);
}

static void test_mpirun(void)
{
    make_data();
    char *out = NULL;
    int rc = tu_run(&out, "PSREC_TEST_NAN_AT_STEP=1 timeout 300 " MPIRUN " -np 2 "
                    "-x PSREC_TEST_NAN_AT_STEP %s train %s/exp.conf --ps.servers=1 "
                    "--run.dir=%s/mpi", TU_PSREC, dir, dir);
    CU_ASSERT(rc != 0 && rc != 124); /* failed, and did not hang */
    CU_ASSERT(out && strstr(out, "diverged at step 1: the loss is NaN"));
    char run[4200];
    snprintf(run, sizeof run, "%s/mpi", dir);
    double pushes = -1, bad = -1, pulls = -1;
    CU_ASSERT(last_number(run, "\"shard\"", "pushes", &pushes) && pushes == 0);
    CU_ASSERT(last_number(run, "\"shard\"", "bad_messages", &bad) && bad == 0);
    CU_ASSERT(last_number(run, "\"shard\"", "pulls", &pulls) && pulls > 0); /* it did run */
    if ((rc == 0 || pushes != 0) && out)
        fprintf(stderr, "%s\n", out);
    free(out);
}

static void test_job_limits(void)
{
    make_data();
    static const struct {
        const char *arg, *says, *run;
        int shard_refused; /* the shard refused (the worker checks the message limits first) */
    } rows[] = {
        {"--ps.max_rows_per_table=50", "ps.max_rows_per_table = 50", "rows", 1},
        {"--ps.max_keys_per_request=50", "ps.max_keys_per_request = 50", "keys", 0},
        {"--ps.max_message_bytes=65536", "ps.max_message_bytes = 65536", "bytes", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *out = NULL;
        int rc = tu_run(&out, "timeout 300 " MPIRUN " -np 2 %s train %s/exp.conf %s "
                        "--run.dir=%s/%s", TU_PSREC, dir, rows[i].arg, dir, rows[i].run);
        CU_ASSERT(rc != 0 && rc != 124);
        CU_ASSERT(out && strstr(out, rows[i].says));
        char run[4200];
        snprintf(run, sizeof run, "%s/%s", dir, rows[i].run);
        double over = -1;
        CU_ASSERT(last_number(run, "\"shard\"", "over_limit", &over) && over == rows[i].shard_refused);
        if (!out || !strstr(out, rows[i].says))
            fprintf(stderr, "\n%s\n", out ? out : "");
        free(out);
    }
}

int main(void)
{
    static const TuTest tests[] = {
        {"one process: NaN loss at step 5 stops the run, step named, nothing pushed",
         test_single_process},
        {"mpirun: NaN loss at step 1, every rank fails, the shard got no push", test_mpirun},
        {"mpirun: each ps.max_* key reaches the shard and the worker", test_job_limits},
        {NULL, NULL}};
    tu_add_suite("jobguards", tests);
    int rc = tu_run_all();
    if (dir[0])
        tu_rmtree(dir);
    return rc;
}
