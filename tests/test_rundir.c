/* Run directory: the flock that keeps two runs out of one dir (held by another process, named
 * by host and pid, dropped on unlock and on exit), the fresh-start refusal and exactly what
 * --force deletes, and summary.json's round trip and strictness. */
#include "common/error.h"
#include "launch/rundir.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int exists(const char *dir, const char *name)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static void touch(const char *dir, const char *name)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    CU_ASSERT_EQUAL_FATAL(tu_write_file(p, "x\n"), 0);
}

static void mkdir_in(const char *dir, const char *name)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    CU_ASSERT_EQUAL_FATAL(mkdir(p, 0755), 0);
}

/* A child takes the lock and holds it until told; the parent's attempt fails at once and names
 * the child's pid and this host. After the child exits (without unlocking) the lock is free. */
static void test_lock_other_process(void)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/run/nested", tu_mkdtemp("rundir-lock"));
    int ready[2], done[2];
    CU_ASSERT_EQUAL_FATAL(pipe(ready), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(done), 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        RunDirLock *l = NULL;
        char rc = (char)(rundir_lock(dir, &l) == 0);
        if (write(ready[1], &rc, 1) != 1)
            _exit(3);
        char c;
        if (read(done[0], &c, 1) != 1)
            _exit(4);
        _exit(0); /* no unlock: the kernel must drop the lock at exit */
    }
    char ok = 0;
    CU_ASSERT_EQUAL_FATAL(read(ready[0], &ok, 1), 1);
    CU_ASSERT_EQUAL_FATAL(ok, 1);

    char want_pid[64], host[256], want_host[300];
    snprintf(want_pid, sizeof want_pid, "pid %ld ", (long)pid);
    CU_ASSERT_EQUAL(gethostname(host, sizeof host), 0);
    host[sizeof host - 1] = '\0';
    snprintf(want_host, sizeof want_host, "on host %s", host);
    char lockfile[4200];
    snprintf(lockfile, sizeof lockfile, "%s/.lock", dir);
    char *text = tu_read_file(lockfile, NULL);
    char want_text[400];
    snprintf(want_text, sizeof want_text, "%s %ld\n", host, (long)pid);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_STRING_EQUAL(text, want_text);
    free(text);

    RunDirLock *l = (RunDirLock *)&ok; /* must be cleared on failure */
    CU_ASSERT_EQUAL(rundir_lock(dir, &l), EBUSY);
    CU_ASSERT_PTR_NULL(l);
    const char *msg = psrec_errmsg();
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "is in use by"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, want_pid));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, want_host));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, dir));

    CU_ASSERT_EQUAL(write(done[1], "x", 1), 1);
    int st;
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CU_ASSERT_EQUAL(rundir_lock(dir, &l), 0);
    CU_ASSERT_PTR_NOT_NULL(l);
    text = tu_read_file(lockfile, NULL);
    snprintf(want_text, sizeof want_text, "%s %ld\n", host, (long)getpid());
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_STRING_EQUAL(text, want_text); /* truncated, not appended */
    free(text);
    rundir_unlock(&l);
    CU_ASSERT_PTR_NULL(l);
    rundir_unlock(&l); /* a cleared lock is fine */
    for (int i = 0; i < 2; i++) {
        close(ready[i]);
        close(done[i]);
    }
}

/* Two locks of one process are separate open files: the second fails until the first is
 * unlocked, which shows unlock (not only exit) releases it. */
static void test_unlock_releases(void)
{
    const char *dir = tu_mkdtemp("rundir-unlock");
    RunDirLock *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(rundir_lock(dir, &a), 0);
    CU_ASSERT_EQUAL(rundir_lock(dir, &b), EBUSY);
    rundir_unlock(&a);
    CU_ASSERT_EQUAL(rundir_lock(dir, &b), 0);
    rundir_unlock(&b);
    tu_rmtree(dir);
}

static void test_refuse_existing_run(void)
{
    char dir[4096], root[4200], missing[4200];
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("rundir-fresh"));
    snprintf(root, sizeof root, "%s/ckpt", dir);
    snprintf(missing, sizeof missing, "%s/none", dir);
    /* Nothing of a run: fine, with or without flags; a dir that does not exist too. */
    CU_ASSERT_EQUAL(rundir_check_fresh(missing, root, 0, 0), 0);
    touch(dir, "notes.txt");
    mkdir_in(dir, "ckpt");
    touch(root, "README");
    CU_ASSERT_EQUAL(rundir_check_fresh(dir, root, 0, 0), 0);

    static const char *const markers[] = {"config.effective", "metrics.jsonl", "summary.json",
                                          "ckpt/step-0000000100"};
    for (int i = 0; i < 4; i++) {
        if (i == 3)
            mkdir_in(dir, markers[i]);
        else
            touch(dir, markers[i]);
        CU_ASSERT_EQUAL(rundir_check_fresh(dir, root, 0, 0), PSREC_E_STATE);
        const char *msg = psrec_errmsg();
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "--resume"));
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "--force"));
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, dir));
        CU_ASSERT_EQUAL(rundir_check_fresh(dir, root, 1, 0), 0);
        CU_ASSERT_EQUAL(rundir_check_fresh(dir, root, 1, 1), PSREC_E_USAGE);
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, markers[i]);
        CU_ASSERT_EQUAL(i == 3 ? rmdir(p) : unlink(p), 0);
        CU_ASSERT_EQUAL(rundir_check_fresh(dir, root, 0, 0), 0);
    }
    tu_rmtree(dir);
}

/* Run f with stderr going to a file; returns what was written (caller frees). */
static char *capture_stderr(int (*f)(const char *, const char *), const char *dir,
                            const char *root)
{
    char log[4200];
    snprintf(log, sizeof log, "%s.stderr", dir);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    int rc = f(dir, root);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    CU_ASSERT_EQUAL(rc, 0);
    char *text = tu_read_file(log, NULL);
    unlink(log);
    return text;
}

static int force(const char *dir, const char *root)
{
    return rundir_check_fresh(dir, root, 0, 1);
}

static int says(const char *log, const char *verb, const char *dir, const char *name)
{
    char want[4400];
    snprintf(want, sizeof want, "--force: %s %s/%s", verb, dir, name);
    return strstr(log, want) != NULL;
}

/* --force deletes the run files, the step dirs and LATEST, names each, and keeps (and names)
 * a stranger in the run dir and one in the checkpoint root; the lock file stays unnamed. Then
 * the dir no longer holds a run. Also with checkpoint.dir outside run.dir. */
static void test_force_deletes_exactly(void)
{
    for (int outside = 0; outside < 2; outside++) {
        char dir[4096], root[4200];
        const char *base = tu_mkdtemp("rundir-force");
        snprintf(dir, sizeof dir, "%s/run", base);
        snprintf(root, sizeof root, outside ? "%s/elsewhere" : "%s/run/ckpt", base);
        RunDirLock *l = NULL;
        CU_ASSERT_EQUAL_FATAL(rundir_lock(dir, &l), 0);
        mkdir(root, 0755);
        static const char *const files[] = {"config.effective", "metrics.jsonl", "summary.json",
                                            "log"};
        for (int i = 0; i < 4; i++)
            touch(dir, files[i]);
        touch(dir, "notes.txt");
        mkdir_in(root, "step-0000000100");
        touch(root, "step-0000000100/shard-0.ckpt");
        touch(root, "step-0000000100/MANIFEST");
        mkdir_in(root, "step-0000000200.tmp");
        touch(root, "step-0000000200.tmp/shard-0.ckpt");
        touch(root, "LATEST");
        touch(root, "README");

        char *log = capture_stderr(force, dir, root);
        CU_ASSERT_PTR_NOT_NULL_FATAL(log);
        for (int i = 0; i < 4; i++) {
            CU_ASSERT_FALSE(exists(dir, files[i]));
            CU_ASSERT(says(log, "deleting", dir, files[i]));
        }
        CU_ASSERT_FALSE(exists(root, "step-0000000100"));
        CU_ASSERT_FALSE(exists(root, "step-0000000200.tmp"));
        CU_ASSERT_FALSE(exists(root, "LATEST"));
        CU_ASSERT(says(log, "deleting", root, "step-0000000100/"));
        CU_ASSERT(says(log, "deleting", root, "step-0000000200.tmp/"));
        CU_ASSERT(says(log, "deleting", root, "LATEST"));
        CU_ASSERT(exists(dir, "notes.txt"));
        CU_ASSERT(exists(root, "README"));
        CU_ASSERT(exists(dir, ".lock"));
        CU_ASSERT(says(log, "keeping", dir, "notes.txt"));
        CU_ASSERT(says(log, "keeping", root, "README"));
        CU_ASSERT_PTR_NULL(strstr(log, ".lock"));
        if (!outside) { /* the checkpoint root inside the run dir is not a stranger */
            char want[4400];
            snprintf(want, sizeof want, "keeping %s\n", root);
            CU_ASSERT_PTR_NULL(strstr(log, want));
            snprintf(want, sizeof want, "keeping %s (", root);
            CU_ASSERT_PTR_NULL(strstr(log, want));
        }
        free(log);
        CU_ASSERT_EQUAL(rundir_check_fresh(dir, root, 0, 0), 0);
        rundir_unlock(&l);
        tu_rmtree(base);
    }
}

static void fill(RunSummary *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->run_name, sizeof s->run_name, "q\"b\\s/\n\t\x01 \xc3\xa9 end");
    s->status = RUN_STATUS_PREEMPTED;
    s->steps = 18446744073709551615ull;
    s->epochs = 3;
    s->samples = 123456789012ull;
    s->wall_s = 12.345;
    s->samples_per_s = 1.0 / 3.0;
    s->restarts = 4;
    s->resumed_from_step = 400;
    s->n_lost_workers = 2;
    s->lost_workers[0] = 3;
    s->lost_workers[1] = 17;
    s->has_dev = 1;
    s->dev.auc = 0.71;
    s->dev.mrr = 0.25;
    s->dev.ndcg5 = 1e-300;
    s->dev.ndcg10 = 0.5;
    snprintf(s->checkpoint, sizeof s->checkpoint, "runs/a \"b\"/ckpt/step-0000000400");
}

static void test_summary_round_trip(void)
{
    const char *dir = tu_mkdtemp("rundir-summary");
    RunSummary a, b;
    fill(&a);
    CU_ASSERT_EQUAL_FATAL(rundir_write_summary(dir, &a), 0);
    CU_ASSERT_EQUAL_FATAL(rundir_read_summary(dir, &b), 0);
    CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof a), 0);
    CU_ASSERT_STRING_EQUAL(b.run_name, a.run_name);
    CU_ASSERT_STRING_EQUAL(b.checkpoint, a.checkpoint);
    CU_ASSERT_EQUAL(b.steps, a.steps);
    CU_ASSERT_EQUAL(b.samples_per_s, a.samples_per_s);
    CU_ASSERT_EQUAL(b.n_lost_workers, 2);
    CU_ASSERT_EQUAL(b.lost_workers[1], 17);
    CU_ASSERT_FALSE(exists(dir, "summary.json.tmp"));

    char path[4200];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *text = tu_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"run_name\": \"q\\\"b\\\\s/\\n\\t\\u0001 \xc3\xa9 end\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"status\": \"preempted\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"wall_s\": 12.345,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"lost_workers\": [3, 17]"));
    free(text);

    /* Empty array, no dev, no checkpoint, never resumed, a non-finite value. */
    memset(&a, 0, sizeof a);
    a.status = RUN_STATUS_COMPLETED;
    a.resumed_from_step = -1;
    a.wall_s = NAN;
    CU_ASSERT_EQUAL_FATAL(rundir_write_summary(dir, &a), 0);
    text = tu_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"lost_workers\": []"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"dev\": null"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"checkpoint\": null"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"resumed_from_step\": null"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"wall_s\": null"));
    free(text);
    fill(&b);
    CU_ASSERT_EQUAL_FATAL(rundir_read_summary(dir, &b), 0);
    CU_ASSERT_EQUAL(b.status, RUN_STATUS_COMPLETED);
    CU_ASSERT_EQUAL(b.n_lost_workers, 0);
    CU_ASSERT_EQUAL(b.has_dev, 0);
    CU_ASSERT_STRING_EQUAL(b.checkpoint, "");
    CU_ASSERT_STRING_EQUAL(b.run_name, "");
    CU_ASSERT_EQUAL(b.resumed_from_step, -1);
    CU_ASSERT(isnan(b.wall_s));

    /* Escapes the writer does not make but JSON allows, in any key order. */
    CU_ASSERT_EQUAL(tu_write_file(path,
        "{\"checkpoint\":\"c\\/d\",\"dev\":{\"ndcg10\":4,\"ndcg5\":3,\"mrr\":2,\"auc\":1e0},"
        "\"lost_workers\":[ ],\"resumed_from_step\":0,\"restarts\":0,\"samples_per_s\":0,"
        "\"wall_s\":-0.5,\"samples\":0,\"epochs\":0,\"steps\":0,\"status\":\"failed\","
        "\"checkpoint_failures\":2,"
        "\"run_name\":\"\\u00e9\\ud83d\\ude00\"}"), 0);
    CU_ASSERT_EQUAL_FATAL(rundir_read_summary(dir, &b), 0);
    CU_ASSERT_STRING_EQUAL(b.run_name, "\xc3\xa9\xf0\x9f\x98\x80");
    CU_ASSERT_STRING_EQUAL(b.checkpoint, "c/d");
    CU_ASSERT_EQUAL(b.dev.auc, 1.0);
    CU_ASSERT_EQUAL(b.dev.ndcg10, 4.0);
    CU_ASSERT_EQUAL(b.status, RUN_STATUS_FAILED);
    CU_ASSERT_EQUAL(b.resumed_from_step, 0);
    CU_ASSERT_EQUAL(b.checkpoint_failures, 2);
    tu_rmtree(dir);
}

/* Every prefix of a written summary that stops before its closing brace is an error, as are an
 * unknown field, a repeated one, a bad status and text after the object. */
static void test_summary_strict(void)
{
    const char *dir = tu_mkdtemp("rundir-strict");
    RunSummary a, b;
    fill(&a);
    CU_ASSERT_EQUAL(rundir_read_summary(dir, &b), ENOENT);
    CU_ASSERT_EQUAL_FATAL(rundir_write_summary(dir, &a), 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    size_t len;
    char *full = tu_read_file(path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(full);
    size_t close_at = (size_t)(strrchr(full, '}') - full);
    int failures = 0;
    for (size_t k = 0; k <= close_at; k++) {
        char *cut = strndup(full, k);
        CU_ASSERT_EQUAL_FATAL(tu_write_file(path, cut), 0);
        failures += rundir_read_summary(dir, &b) == PSREC_E_PARSE;
        free(cut);
    }
    CU_ASSERT_EQUAL(failures, (int)close_at + 1);
    CU_ASSERT_EQUAL(tu_write_file(path, full), 0);
    CU_ASSERT_EQUAL(rundir_read_summary(dir, &b), 0);

    static const char *const bad[][2] = {
        {"\"epochs\": 3,", "\"epochs\": 3, \"extra\": 1,"},
        {"\"epochs\": 3,", "\"epochs\": 3, \"steps\": 1,"},
        {"\"preempted\"", "\"paused\""},
        {"\"epochs\": 3,", "\"epochs\": -3,"},
        {"\"epochs\": 3,", "\"epochs\": 3.5,"},
        {"\"restarts\": 4,", "\"restarts\": 4294967296,"},
        {"[3, 17]", "[3, 17,]"},
        {"\\u0001", "\\u0000"},
        {"\\u0001", "\\x01"},
        {"\n}\n", "\n}\n}"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *at = strstr(full, bad[i][0]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(at);
        char text[20000];
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - full), full, bad[i][1],
                 at + strlen(bad[i][0]));
        CU_ASSERT_EQUAL(tu_write_file(path, text), 0);
        CU_ASSERT_EQUAL(rundir_read_summary(dir, &b), PSREC_E_PARSE);
        CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "summary.json"));
    }
    free(full);
    tu_rmtree(dir);
}

int main(void)
{
    static const TuTest tests[] = {
        {"lock held by another process names pid and host", test_lock_other_process},
        {"unlock releases the lock", test_unlock_releases},
        {"an existing run is refused, naming --resume and --force", test_refuse_existing_run},
        {"--force deletes exactly the run's files", test_force_deletes_exactly},
        {"summary round trip", test_summary_round_trip},
        {"summary reader is strict", test_summary_strict},
        {NULL, NULL},
    };
    tu_add_suite("rundir", tests);
    return tu_run_all();
}
