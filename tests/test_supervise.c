/* `psrec supervise` around stand-in commands: shell scripts invoked as `fake.sh train CONFIG
 * [overrides]` that write step dirs (with MANIFEST) into the checkpoint root the config names,
 * record every call (restart count from the environment and the arguments), then fail, succeed
 * or exit 75 as each test needs. Checks restarts with --resume (and without --force), early
 * give-up without progress, 75 passed on, --max-restarts, and signal forwarding. */
#include "testutil/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[4096];

/* dir/fake.sh with the given body after a prologue that logs the call to dir/calls and sets
 * $ck (the checkpoint root the test's config names) and $n (calls so far, this one included).
 * Also writes dir/exp.conf. */
static void setup(const char *body)
{
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("supervise"));
    char path[4200], text[8192];
    snprintf(path, sizeof path, "%s/exp.conf", dir);
    snprintf(text, sizeof text, "[run]\ndir = %s/run\nname = t\n", dir);
    CU_ASSERT_EQUAL_FATAL(tu_write_file(path, text), 0);
    snprintf(path, sizeof path, "%s/fake.sh", dir);
    snprintf(text, sizeof text,
             "#!/bin/sh\n"
             "d='%s'\n"
             "ck=\"$d/ck\"\n"
             "echo \"${PSREC_SUPERVISE_RESTARTS:-unset} $*\" >> \"$d/calls\"\n"
             "n=$(wc -l < \"$d/calls\")\n"
             "step() { mkdir -p \"$ck/step-$1\" && touch \"$ck/step-$1/MANIFEST\"; }\n"
             "%s\n",
             dir, body);
    CU_ASSERT_EQUAL_FATAL(tu_write_file(path, text), 0);
    CU_ASSERT_EQUAL_FATAL(chmod(path, 0755), 0);
}

/* Run supervise with opts around `fake.sh train exp.conf --checkpoint.dir=DIR/ck extra`. */
static int run_supervise(char **out, const char *opts, const char *extra)
{
    return tu_run(out, "cd %s && %s supervise %s -- ./fake.sh train exp.conf "
                       "--checkpoint.dir=%s/ck %s",
                  dir, TU_PSREC, opts, dir, extra);
}

static char *calls(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/calls", dir);
    char *text = tu_read_file(path, NULL);
    return text ? text : strdup("");
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Killed by SIGKILL after a checkpoint: one restart, with --resume, without --force, told it is
 * restart 1, from the newest step dir that has a MANIFEST (not a newer one without). */
static void test_restart_once_then_complete(void)
{
    setup("case \" $* \" in *' --resume '*) exit 0;; esac\n"
          "step 0000000100; step 0000000040\n"
          "mkdir -p \"$ck/step-0000000900\" \"$ck/step-0000000200.tmp\"\n"
          "touch \"$ck/step-0000000200.tmp/MANIFEST\"\n"
          "kill -9 $$");
    char *out = NULL;
    int rc = run_supervise(&out, "--backoff 0", "--train.lr=0.01 --force");
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "attempt 2 of 11 after exit code 137"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "resuming from step 100\n"));
    char *c = calls();
    char want[10000];
    snprintf(want, sizeof want,
             "0 train exp.conf --checkpoint.dir=%s/ck --train.lr=0.01 --force\n"
             "1 train exp.conf --checkpoint.dir=%s/ck --train.lr=0.01 --resume\n",
             dir, dir);
    CU_ASSERT_STRING_EQUAL(c, want);
    if (rc || strcmp(c, want))
        printf("\n%s\n%s", out, c);
    free(c);
    free(out);
    tu_rmtree(dir);
}

/* A restart after which the newest step did not move is the last: exit 1, said so. Also when
 * there never is a checkpoint. --resume given by the user is not repeated. */
static void test_give_up_without_progress(void)
{
    for (int with_ckpt = 0; with_ckpt < 2; with_ckpt++) {
        setup(with_ckpt ? "[ $n = 1 ] && step 0000000300\nexit 3" : "exit 3");
        char *out = NULL;
        int rc = run_supervise(&out, "--backoff 0", "--resume");
        CU_ASSERT_EQUAL(rc, 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "giving up: no progress since the last restart"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, with_ckpt ? "newest checkpoint still step 300"
                                                     : "still no checkpoint under"));
        char *c = calls();
        CU_ASSERT_EQUAL(count_lines(c), 2);
        CU_ASSERT_PTR_NULL(strstr(c, "--resume --resume"));
        free(c);
        free(out);
        tu_rmtree(dir);
    }
}

/* Exit 75 is passed on at once: no restart. */
static void test_preempted_passed_on(void)
{
    setup("step 0000000100\nexit 75");
    char *out = NULL;
    CU_ASSERT_EQUAL(run_supervise(&out, "--backoff 0", ""), 75);
    char *c = calls();
    CU_ASSERT_EQUAL(count_lines(c), 1);
    free(c);
    free(out);
    tu_rmtree(dir);
}

/* Progress on every try but never success: --max-restarts 2 means three tries, and the last
 * failure's exit code comes back. */
static void test_max_restarts(void)
{
    setup("step $(printf %010d $((n * 100)))\nexit 3");
    char *out = NULL;
    CU_ASSERT_EQUAL(run_supervise(&out, "--max-restarts 2 --backoff 0", ""), 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "attempt 3 of 3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "resuming from step 200"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "2 restarts done"));
    char *c = calls();
    CU_ASSERT_EQUAL(count_lines(c), 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "\n2 train"));
    free(c);
    free(out);
    tu_rmtree(dir);
}

/* SIGTERM to supervise reaches the child exactly once; its 75 comes back. A child that dies of
 * the signal is not restarted (we were asked to stop): 128+15 comes back. */
static void test_signal_forwarded(void)
{
    for (int trapped = 1; trapped >= 0; trapped--) {
        setup(trapped ? "trap 'echo TERM >> \"$d/got\"; exit 75' TERM\n"
                        "touch \"$d/started\"\ni=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done"
                      : "touch \"$d/started\"\ni=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done");
        char *out = NULL;
        int rc = tu_run(&out,
                        "cd %s && { %s supervise --backoff 0 -- ./fake.sh train exp.conf & "
                        "p=$!; i=0; while [ ! -e started ] && [ $i -lt 200 ]; do sleep 0.05; "
                        "i=$((i+1)); done; kill -TERM $p; wait $p; }",
                        dir, TU_PSREC);
        CU_ASSERT_EQUAL(rc, trapped ? 75 : 128 + 15);
        char path[4200];
        snprintf(path, sizeof path, "%s/got", dir);
        char *got = tu_read_file(path, NULL);
        if (trapped) {
            CU_ASSERT_PTR_NOT_NULL(got);
            CU_ASSERT_STRING_EQUAL(got ? got : "", "TERM\n");
        } else {
            CU_ASSERT_PTR_NOT_NULL(strstr(out, "not restarting"));
        }
        char *c = calls();
        CU_ASSERT_EQUAL(count_lines(c), 1);
        free(c);
        free(got);
        free(out);
        tu_rmtree(dir);
    }
}

static void test_usage(void)
{
    setup("exit 0");
    char *out = NULL;
    CU_ASSERT_EQUAL(tu_run(&out, "cd %s && %s supervise ./fake.sh train exp.conf", dir,
                           TU_PSREC), 2);
    free(out);
    CU_ASSERT_EQUAL(tu_run(&out, "cd %s && %s supervise --max-restarts -1 -- ./fake.sh train "
                                 "exp.conf", dir, TU_PSREC), 2);
    free(out);
    CU_ASSERT_EQUAL(tu_run(&out, "cd %s && %s supervise --backoff 1s -- ./fake.sh train "
                                 "exp.conf", dir, TU_PSREC), 2);
    free(out);
    CU_ASSERT_EQUAL(tu_run(&out, "cd %s && %s supervise -- ./fake.sh exp.conf", dir, TU_PSREC),
                    2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "train CONFIG"));
    free(out);
    CU_ASSERT_EQUAL(tu_run(&out, "cd %s && %s supervise -- ./fake.sh train exp.conf "
                                 "--train.lr=abc", dir, TU_PSREC), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "train.lr"));
    free(out);
    CU_ASSERT_EQUAL(tu_run(&out, "cd %s && %s supervise -- ./missing.sh train exp.conf", dir,
                           TU_PSREC), 127);
    free(out);
    char *c = calls();
    CU_ASSERT_EQUAL(count_lines(c), 0);
    free(c);
    tu_rmtree(dir);
}

int main(void)
{
    static const TuTest tests[] = {
        {"killed once: restarts with --resume and completes", test_restart_once_then_complete},
        {"no progress after a restart: gives up", test_give_up_without_progress},
        {"exit 75 is passed on without restarting", test_preempted_passed_on},
        {"--max-restarts is respected", test_max_restarts},
        {"SIGTERM is forwarded once, and stops restarts", test_signal_forwarded},
        {"usage errors", test_usage},
        {NULL, NULL},
    };
    tu_add_suite("supervise", tests);
    return tu_run_all();
}
