/* Only the job may touch its model (issue 9): the real binary under mpirun on loopback (1
 * shard = rank 0, 1 BSP worker = rank 1) while this test plays outsiders at the shard's TCP
 * port, found in the run's log ("serving 1 workers on tcp://..."):
 *   - a ZeroMQ DEALER without a key sending well-formed PULL, PUSH (values 1e30), CLOCK and
 *     SHUTDOWN messages (common/wire.c encoders);
 *   - a DEALER with a valid CURVE keypair of its own and a random server key;
 *   - a DEALER with a keypair of its own and the shard's REAL public key (test hook
 *     PSREC_TEST_DUMP_SERVER_PUBKEY): the CURVE handshake works, so only ZAP stands between
 *     it and the model;
 *   - raw TCP: random bytes, a truncated ZMTP greeting.
 * None may get a reply; the final checkpoint's tables equal a clean run's bit for bit; the
 * shard counts the refusals (its stats line "refused N" in the run's log, N > 0).
 * Also: every rank on one host binds 127.0.0.1 and says why; ps.security = none trains and
 * says so loudly in the log and in config.effective.
 *
 * The worker sleeps PSREC_TEST_SLEEP seconds mid-run (heartbeats go on) in both runs, so the
 * attack lands while the job trains; the sleep does not change the result. */
#include "testutil/outsider.h"
#include "testutil/testutil.h"

#include "common/keys.h"
#include "common/params.h"
#include "common/runmeta.h"
#include "launch/ckptdir.h"
#include "server/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define MPIRUN TU_MPIRUN " --oversubscribe --allow-run-as-root --mca btl self,tcp --mca btl_tcp_if_include lo"
#define SLEEP_ENV "PSREC_TEST_SLEEP=0:40:6" /* worker 0 sleeps 6 s after step 40 */
#define COMMON                                                                                 \
    "--ps.servers=1 --ps.consistency=bsp --train.epochs=1 --ps.rendezvous_timeout=20 "        \
    "--ps.heartbeat_timeout=3" /* a worker whose heartbeats were refused dies in its sleep */

static char dir[4096];

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void setup_data(void)
{
    if (dir[0])
        return;
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("security"));
    CU_ASSERT_FATAL(tu_small_experiment(dir, 1, "") == 0);
}

/* Exit status of pid (0..255, 128+signal); non-blocking: -2 while it runs. */
static int reaped(pid_t pid)
{
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r != pid)
        return r == 0 ? -2 : -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* FNV-1a over every row of every table of the newest checkpoint under run/ckpt: the model
 * itself, without the files' timestamps. Returns 0 on failure (and asserts). */
static uint64_t model_digest(const char *run)
{
    char root[4400], step_dir[4600];
    uint64_t step = 0;
    snprintf(root, sizeof root, "%s/ckpt", run);
    if (ckptdir_newest(root, &step, step_dir, sizeof step_dir)) {
        CU_FAIL("no checkpoint");
        return 0;
    }
    RunMeta meta;
    Shard *s = NULL;
    if (ckptdir_load_model(step_dir, 0, &meta, &s)) {
        CU_FAIL("checkpoint does not load");
        return 0;
    }
    uint64_t h = 1469598103934665603ULL;
    for (uint32_t t = 0; t < PARAM_TABLES; t++) {
        const uint32_t w = shard_table_width(s, t);
        const uint64_t rows = shard_table_rows(s, t);
        float *row = malloc((size_t)w * sizeof *row + 1);
        for (uint64_t k = 0; row && k < rows; k++) {
            if (shard_pull(s, t, &k, 1, row))
                continue;
            const unsigned char *b = (const unsigned char *)row;
            for (size_t i = 0; i < (size_t)w * sizeof *row; i++)
                h = (h ^ b[i]) * 1099511628211ULL;
        }
        free(row);
    }
    shard_free(&s);
    return h;
}

/* The last "refused N" of shard 0's stats lines in a log; -1 when there is none. */
static long long refused_count(const char *log_text)
{
    long long n = -1;
    for (const char *p = log_text; (p = strstr(p, "shard 0: pulls ")); p++) {
        const char *eol = strchr(p, '\n');
        const char *r = strstr(p, " refused ");
        if (r && (!eol || r < eol))
            n = atoll(r + 9);
    }
    return n;
}

/* ---- outsiders: tests/testutil/outsider.h ---------------------------------------------- */

/* The shard's endpoint from a run's log ("serving 1 workers on tcp://..."), waiting for it
 * up to timeout_s. */
static int find_endpoint(const char *log, double timeout_s, char *ep, size_t n)
{
    const double end = mono() + timeout_s;
    while (mono() < end) {
        char *text = tu_read_file(log, NULL);
        const char *p = text ? strstr(text, "serving 1 workers on ") : NULL;
        if (p) {
            p += strlen("serving 1 workers on ");
            snprintf(ep, n, "%.*s", (int)strcspn(p, " \n"), p);
            free(text);
            return 1;
        }
        free(text);
        usleep(50000);
    }
    return 0;
}

/* ---- tests -------------------------------------------------------------------------------- */

static uint64_t clean_digest;

/* A clean run: loopback bind (every rank on this host, no ps.host) and its reason logged;
 * CURVE on by default; nothing refused. */
static void test_clean_run_binds_loopback(void)
{
    setup_data();
    char *out = NULL;
    int rc = tu_run(&out, "%s timeout 300 " MPIRUN " -x PSREC_TEST_SLEEP -np 2 %s train "
                    "%s/exp.conf " COMMON " --run.dir=%s/clean", SLEEP_ENV, TU_PSREC, dir, dir);
    if (rc)
        fprintf(stderr, "%s\n", out);
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT(strstr(out, "shard 0 binds 127.0.0.1 (all 2 ranks on host ") &&
              strstr(out, "binding loopback"));
    CU_ASSERT(strstr(out, "serving 1 workers on tcp://127.0.0.1:") != NULL);
    CU_ASSERT(strstr(out, "CURVE: only this job's workers may connect") != NULL);
    CU_ASSERT(strstr(out, "security: CURVE with new keys") != NULL);
    CU_ASSERT(refused_count(out) == 0);
    free(out);
    char run[4200];
    snprintf(run, sizeof run, "%s/clean", dir);
    clean_digest = model_digest(run);
    CU_ASSERT(clean_digest != 0);
}

/* Outsiders of every kind while the job trains; the job's model is the clean run's. */
static void test_outsiders_get_nothing(void)
{
    CU_ASSERT_FATAL(clean_digest != 0);
    char cmd[16384], log[4400], run[4200], keyfile[4400], ep[256];
    snprintf(run, sizeof run, "%s/attacked", dir);
    snprintf(log, sizeof log, "%s/attacked.out", dir);
    snprintf(keyfile, sizeof keyfile, "%s/server.pub", dir);
    snprintf(cmd, sizeof cmd,
             "%s PSREC_TEST_DUMP_SERVER_PUBKEY=%s exec timeout 300 " MPIRUN
             " -x PSREC_TEST_SLEEP -x PSREC_TEST_DUMP_SERVER_PUBKEY -np 2 %s train %s/exp.conf "
             COMMON " --run.dir=%s",
             SLEEP_ENV, keyfile, TU_PSREC, dir, run);
    pid_t job = (pid_t)tu_spawn(cmd, log);
    CU_ASSERT_FATAL(job > 0);
    int found = find_endpoint(log, 60, ep, sizeof ep);
    CU_ASSERT(found);
    char *pub = found ? tu_read_file(keyfile, NULL) : NULL;
    CU_ASSERT(pub && keys_decode(strtok(pub, "\n"), NULL));
    KeyPair random_server;
    CU_ASSERT_FATAL(keys_pair_new(&random_server) == 0);
    void *ctx = zmq_ctx_new();
    /* The experiment's shape (tu_small_experiment: E = H = 16): pushes the shard would take. */
    const ParamShape shape = {.E = 16, .H = 16, .vocab_rows = 64, .category_rows = 4,
                              .user_rows = 64};
    int sent[3] = {0}, replies[3] = {0}, raw = 0, rounds = 0, rc = -2;
    while (found && (rc = reaped(job)) == -2 && rounds < 40) {
        replies[0] += tu_outsider(ctx, ep, NULL, &shape, 0.3, &sent[0]);
        replies[1] += tu_outsider(ctx, ep, random_server.pub, &shape, 0.3, &sent[1]);
        if (pub)
            replies[2] += tu_outsider(ctx, ep, pub, &shape, 0.3, &sent[2]);
        raw += tu_garbage(ep, (unsigned)rounds);
        rounds++;
    }
    zmq_ctx_term(ctx);
    const double deadline = mono() + 300;
    while (rc == -2 && mono() < deadline) {
        usleep(50000);
        rc = reaped(job);
    }
    if (rc == -2) {
        kill(-job, SIGKILL);
        waitpid(job, NULL, 0);
    }
    char *text = tu_read_file(log, NULL);
    fprintf(stderr, "\n  %d attack rounds; sent (queued) without key %d, foreign key %d, "
                    "real server key %d, raw %d; replies %d %d %d; exit %d; refused %lld\n",
            rounds, sent[0], sent[1], sent[2], raw, replies[0], replies[1], replies[2], rc,
            text ? refused_count(text) : -1);
    if (rc != 0 && text)
        fprintf(stderr, "%s\n", text);
    CU_ASSERT(rc == 0);
    CU_ASSERT(rounds >= 2); /* the attack landed while the job ran */
    CU_ASSERT(sent[0] > 0 && sent[1] > 0 && sent[2] > 0 && raw > 0);
    CU_ASSERT(replies[0] == 0); /* no key */
    CU_ASSERT(replies[1] == 0); /* a key of its own, a random server key */
    CU_ASSERT(replies[2] == 0); /* a key of its own, the real server key: ZAP */
    CU_ASSERT(text && refused_count(text) > 0);
    /* ZAP said no to the client that knew the real server key: the guard's lines count
     * those refusals apart ("N with a CURVE key not of this job"). */
    long long auth = 0;
    for (const char *p = text; p && (p = strstr(p, "shard 0: refused ")); p++) {
        const char *eol = strchr(p, '\n');
        const char *k = strstr(p, " with a CURVE key not of this job");
        if (k && (!eol || k < eol)) {
            while (k > p && k[-1] >= '0' && k[-1] <= '9')
                k--;
            auth += atoll(k);
        }
        fprintf(stderr, "  | %.*s\n", eol ? (int)(eol - p) : (int)strlen(p), p);
    }
    CU_ASSERT(auth > 0);
    CU_ASSERT(model_digest(run) == clean_digest);
    free(text);
    free(pub);
    keys_wipe(&random_server, sizeof random_server);
}

/* ps.security = none still trains, and says so loudly (log and config.effective). */
static void test_security_none_says_so(void)
{
    setup_data();
    char *out = NULL;
    int rc = tu_run(&out, "timeout 300 " MPIRUN " -np 2 %s train %s/exp.conf " COMMON
                    " --ps.security=none --run.dir=%s/none", TU_PSREC, dir, dir);
    if (rc)
        fprintf(stderr, "%s\n", out);
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT(strstr(out, "WARNING: ps.security = none") != NULL);
    CU_ASSERT(strstr(out, "security none: anyone who reaches this port") != NULL);
    CU_ASSERT(strstr(out, "security: CURVE") == NULL);
    double auc = 0;
    CU_ASSERT(tu_json_number(strrchr(out, '{'), "auc", &auc) && auc > 0.6);
    free(out);
    char p[4400];
    snprintf(p, sizeof p, "%s/none/config.effective", dir);
    char *eff = tu_read_file(p, NULL);
    CU_ASSERT(eff && strstr(eff, "# WARNING: ps.security = none") &&
              strstr(eff, "security = none"));
    free(eff);
}

/* ps.host still wins over the loopback default. */
static void test_ps_host_overrides(void)
{
    setup_data();
    char *out = NULL;
    int rc = tu_run(&out, "timeout 300 " MPIRUN " -np 2 %s train %s/exp.conf " COMMON
                    " --ps.host=127.0.0.1 --run.dir=%s/host", TU_PSREC, dir, dir);
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT(strstr(out, "shard 0 binds 127.0.0.1 (ps.host)") != NULL);
    CU_ASSERT(strstr(out, "binding loopback") == NULL);
    free(out);
}

int main(void)
{
    static const TuTest tests[] = {
        {"clean run binds loopback, CURVE on", test_clean_run_binds_loopback},
        {"outsiders get no reply, model unchanged, refusals counted", test_outsiders_get_nothing},
        {"ps.security = none trains and warns", test_security_none_says_so},
        {"ps.host overrides the loopback default", test_ps_host_overrides},
        {NULL, NULL}};
    tu_add_suite("security", tests);
    int rc = tu_run_all();
    if (dir[0])
        tu_rmtree(dir);
    return rc;
}
