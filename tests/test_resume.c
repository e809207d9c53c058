/* Checkpoint, preemption and resume end to end (issue 7): the real binary, single process and
 * under mpirun --oversubscribe on loopback, every command bounded by `timeout`. One generated
 * dataset (seed 1: 7674 train samples, 500 dev impressions) is shared by every test; each test
 * writes its own run dirs beside it.
 *
 * What is checked, in numbers:
 *   - stopped and resumed with one worker under BSP, a run repeats the uninterrupted run bit
 *     for bit: every step's (epoch, step, loss) and every dev evaluation in metrics.jsonl, the
 *     final shard-0.ckpt byte for byte (but for the run id), the summary's samples (single
 *     process and mpirun);
 *   - SIGUSR1 to mpirun: exit 75, a valid stopping checkpoint; --resume with 3 workers instead
 *     of 2 trains every sample of every epoch exactly once (samples == epochs x N) and lands
 *     within 0.01 dev AUC of an uninterrupted run;
 *   - shard counts change across a resume (1 -> 2 shards, single process -> 2 shards, 2 shards
 *     -> single process): samples == epochs x N, the new shard count on disk, and the same
 *     losses and AUC, bit for bit, as a run that differs only in its shard count;
 *   - damaged checkpoints (truncated, one flipped byte) are named, skipped, and resume falls
 *     back to the previous valid one;
 *   - `psrec supervise` restarts a job whose rank was SIGKILLed and the run completes;
 *   - run-dir ownership: refusal without --resume/--force, what --force deletes, the lock
 *     naming its holder, fewer epochs after --force;
 *   - a full disk: periodic checkpoints fail loudly, training goes on, the earlier checkpoint
 *     stays the newest valid one.
 * Not here: timing (psrec bench), the file formats (test_ckpt, test_ckptdir), the re-partition
 * arithmetic (test_reader), supervise's policy (test_supervise with stand-in commands). */
#include "common/ckpt.h"
#include "common/runmeta.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MPIRUN                                                                                   \
    TU_MPIRUN " --oversubscribe --allow-run-as-root --mca btl self,tcp --mca btl_tcp_if_include lo"

static char dir[4096];  /* the shared dataset and exp.conf; run dirs go beside them */
static double nsamples; /* training samples in train.db (psrec inspect --json) */
static double t_start;  /* start of the current test */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void begin(void)
{
    CU_ASSERT_FATAL(dir[0] && nsamples > 0);
    t_start = now();
}

static void end(void)
{
    fprintf(stderr, "\n  (%.1f s)\n", now() - t_start);
}

/* ------------------------------------------------------------------ helpers */

/* Run a command; print its output when the exit code is not the expected one. */
static int run_expect(char **out, int want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int run_expect(char **out, int want, const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char *text = NULL;
    int rc = tu_run(&text, "%s", cmd);
    if (rc != want)
        fprintf(stderr, "\n--- exit %d, wanted %d: %s\n%s\n---\n", rc, want, cmd,
                text ? text : "");
    if (out)
        *out = text;
    else
        free(text);
    return rc;
}

/* run/summary.json (malloc'ed) or NULL. */
static char *summary(const char *run)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/summary.json", run);
    return tu_read_file(p, NULL);
}

/* A number of a JSON text, NAN when absent. */
static double num(const char *json, const char *key)
{
    double v;
    return json && tu_json_number(json, key, &v) ? v : NAN;
}

/* "key": "value" of a flat JSON text into out; 1 when found. */
static int json_str(const char *json, const char *key, char *out, size_t n)
{
    char pat[256];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = json ? strstr(json, pat) : NULL;
    if (!p)
        return 0;
    p += strlen(pat);
    while (*p == ' ' || *p == ':')
        p++;
    if (*p != '"')
        return 0;
    const char *e = strchr(++p, '"');
    if (!e)
        return 0;
    snprintf(out, n, "%.*s", (int)(e - p), p);
    return 1;
}

static int status_is(const char *json, const char *want)
{
    char s[64];
    return json_str(json, "status", s, sizeof s) && !strcmp(s, want);
}

/* dev.auc of a summary (the only "auc" key in it). */
static double summary_auc(const char *json)
{
    const char *dev = json ? strstr(json, "\"dev\"") : NULL;
    return dev ? num(dev, "auc") : NAN;
}

/* What a run did, step by step, from its metrics.jsonl: every loss line of `worker` (-1: of
 * every worker) cut before "samples_per_s" (a timing), and every dev evaluation line whole (they
 * come from worker 0), in file order. Shard stats lines are left out (timings). Lines of one
 * worker are in its order; two workers' lines interleave as they arrive, so runs with several
 * workers are compared worker by worker. *nloss: loss lines kept. malloc'ed; NULL when
 * unreadable. */
static char *trajectory(const char *run, int worker, int *nloss)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    char *text = tu_read_file(p, NULL);
    *nloss = 0;
    if (!text)
        return NULL;
    char *out = calloc(1, strlen(text) + 1);
    size_t n = 0;
    char *save;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        double w = -1;
        if (strstr(line, "\"shard\""))
            continue;
        if (strstr(line, "\"loss\"")) {
            if (worker >= 0 && (!tu_json_number(line, "worker", &w) || (int)w != worker))
                continue;
            char *cut = strstr(line, ",\"samples_per_s\"");
            if (cut)
                *cut = '\0';
            ++*nloss;
        } else if (!strstr(line, "\"auc\"") || worker > 0) {
            continue;
        }
        n += (size_t)sprintf(out + n, "%s\n", line);
    }
    free(text);
    return out;
}

/* Print where two trajectories first differ. */
static void show_difference(const char *a, const char *b)
{
    size_t i = 0;
    while (a[i] && a[i] == b[i])
        i++;
    size_t s = i;
    while (s > 0 && a[s - 1] != '\n')
        s--;
    fprintf(stderr, "\n  first difference:\n    %.*s\n    %.*s\n", (int)strcspn(a + s, "\n"),
            a + s, (int)strcspn(b + s, "\n"), b + s);
}

/* 1 when both files exist and hold the same bytes. */
/* 1 when checkpoint files a and b hold the same sections with the same bytes, except
 * run.meta's run_id (two runs never share it); *len = a's size. */
static int same_bytes(const char *a, const char *b, size_t *len)
{
    size_t na = 0;
    char *x = tu_read_file(a, &na);
    free(x);
    *len = na;
    CkptReader *ra = NULL, *rb = NULL;
    int same = ckpt_reader_open(a, &ra) == 0 && ckpt_reader_open(b, &rb) == 0 &&
               ckpt_section_count(ra) == ckpt_section_count(rb);
    for (size_t i = 0; same && i < ckpt_section_count(ra); i++) {
        size_t sa, sb;
        const char *name = ckpt_section_name(ra, i, &sa);
        const void *pa, *pb;
        same = ckpt_section(ra, name, &pa, &sa) == 0 && ckpt_section(rb, name, &pb, &sb) == 0 &&
               sa == sb;
        if (same && !strcmp(name, "run.meta") && sa == sizeof(RunMeta)) {
            RunMeta ma, mb;
            memcpy(&ma, pa, sizeof ma);
            memcpy(&mb, pb, sizeof mb);
            same = ma.run_id && mb.run_id && ma.run_id != mb.run_id;
            ma.run_id = mb.run_id = 0;
            same = same && memcmp(&ma, &mb, sizeof ma) == 0;
        } else if (same) {
            same = memcmp(pa, pb, sa) == 0;
        }
    }
    ckpt_reader_free(&ra);
    ckpt_reader_free(&rb);
    return same;
}

/* `psrec inspect --json PATH`: its exit code, and step/shards of what it chose. */
static int inspect(const char *path, double *step, double *shards)
{
    char *out = NULL;
    int rc = tu_run(&out, "timeout 60 %s inspect --json %s", TU_PSREC, path);
    char *json = out ? strchr(out, '{') : NULL;
    if (step)
        *step = num(json, "step");
    if (shards)
        *shards = num(json, "shards");
    if (rc)
        fprintf(stderr, "\n  inspect %s: exit %d: %s\n", path, rc, out ? out : "");
    free(out);
    return rc;
}

/* Flip every bit of the byte at offset off. Returns 0 or errno. */
static int flip_byte(const char *path, long off)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return errno;
    unsigned char b;
    int rc = pread(fd, &b, 1, off) == 1 ? 0 : EIO;
    b ^= 0xff;
    if (!rc && pwrite(fd, &b, 1, off) != 1)
        rc = EIO;
    close(fd);
    return rc;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* ------------------------------------------------------------------ the dataset */

static void test_dataset(void)
{
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("resume"));
    CU_ASSERT_FATAL(tu_small_experiment(dir, 1,
                                        "[ps]\nhost = 127.0.0.1\nrendezvous_timeout = 20\n"
                                        "[checkpoint]\nevery_steps = 50\n") == 0);
    char *out = NULL;
    CU_ASSERT_FATAL(tu_run(&out, "%s inspect --json %s/train.db", TU_PSREC, dir) == 0);
    nsamples = num(out, "samples");
    free(out);
    fprintf(stderr, "\n  %s: %.0f training samples\n", dir, nsamples);
    CU_ASSERT_FATAL(nsamples > 1000);
}

/* ------------------------------------------------------------------ 1, 2: bit for bit */

/* Run A uninterrupted, run B stopped after step 123 (PSREC_TEST_STOP_AT_STEP) and resumed;
 * `launch` is the command before `psrec` ("" or an mpirun line), `xflag` how the variable
 * reaches psrec under it. Both with log_every = 1. */
static void bit_for_bit(const char *tag, const char *launch, const char *xflag)
{
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/%s-a", dir, tag);
    snprintf(b, sizeof b, "%s/%s-b", dir, tag);
    const char *opts = "--run.log_every=1 --checkpoint.every_steps=50 --ps.consistency=bsp";
    CU_ASSERT_FATAL(run_expect(NULL, 0, "timeout 120 %s %s train %s/exp.conf --run.dir=%s %s",
                               launch, TU_PSREC, dir, a, opts) == 0);
    char *out = NULL;
    int rc = run_expect(&out, 75,
                        "PSREC_TEST_STOP_AT_STEP=123 timeout 120 %s %s %s train %s/exp.conf "
                        "--run.dir=%s %s",
                        launch, xflag, TU_PSREC, dir, b, opts);
    free(out);
    CU_ASSERT_FATAL(rc == 75);
    char *sa = summary(a), *sb = summary(b);
    CU_ASSERT_FATAL(sa && sb);
    const double stopped = num(sb, "steps");
    fprintf(stderr, "\n  %s: stopped run: exit %d, status preempted %d, steps %.0f, samples %.0f",
            tag, rc, status_is(sb, "preempted"), stopped, num(sb, "samples"));
    CU_ASSERT(status_is(sb, "preempted"));
    /* One process stops exactly after step 123; under mpirun shard 0 announces the step. */
    CU_ASSERT(launch[0] ? stopped >= 123 : stopped == 123);
    CU_ASSERT(stopped < num(sa, "steps"));
    CU_ASSERT(num(sb, "samples") == stopped * 32); /* full batches only, before epoch 1 */
    double step = -1;
    char ck[4400];
    snprintf(ck, sizeof ck, "%s/ckpt", b);
    CU_ASSERT(inspect(ck, &step, NULL) == 0 && step == stopped);
    free(sb);
    rc = run_expect(&out, 0, "timeout 120 %s %s train %s/exp.conf --run.dir=%s %s --resume",
                    launch, TU_PSREC, dir, b, opts);
    CU_ASSERT_FATAL(rc == 0);
    char want[4600];
    snprintf(want, sizeof want, "resuming from %s/ckpt/step-%010.0f", b, stopped);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, want));
    free(out);
    sb = summary(b);
    CU_ASSERT(status_is(sb, "completed"));
    CU_ASSERT(num(sb, "resumed_from_step") == stopped);
    const double steps = num(sa, "steps");
    fprintf(stderr, "\n  %s: samples uninterrupted %.0f, resumed %.0f (2 x N = %.0f); steps %.0f "
                    "and %.0f; dev AUC %.6f and %.6f",
            tag, num(sa, "samples"), num(sb, "samples"), 2 * nsamples, steps, num(sb, "steps"),
            summary_auc(sa), summary_auc(sb));
    CU_ASSERT(num(sa, "samples") == 2 * nsamples);
    CU_ASSERT(num(sb, "samples") == num(sa, "samples"));
    CU_ASSERT(num(sb, "steps") == steps);
    CU_ASSERT(summary_auc(sa) == summary_auc(sb));
    /* Every step's loss and every evaluation, in order: the stopped life's lines followed by
     * the resumed life's are the uninterrupted run's lines. */
    int na = 0, nb = 0;
    char *ta = trajectory(a, -1, &na), *tb = trajectory(b, -1, &nb);
    CU_ASSERT_FATAL(ta && tb);
    fprintf(stderr, "\n  %s: loss lines %d and %d", tag, na, nb);
    CU_ASSERT(na == (int)steps);
    CU_ASSERT(nb == na);
    CU_ASSERT(strcmp(ta, tb) == 0);
    if (strcmp(ta, tb))
        show_difference(ta, tb);
    free(ta);
    free(tb);
    /* The final parameters and optimizer state, byte for byte (every section; the two runs'
     * ids differ). */
    char fa[4600], fb[4600];
    snprintf(fa, sizeof fa, "%s/ckpt/step-%010.0f/shard-0.ckpt", a, steps);
    snprintf(fb, sizeof fb, "%s/ckpt/step-%010.0f/shard-0.ckpt", b, steps);
    size_t len = 0;
    int same = same_bytes(fa, fb, &len);
    fprintf(stderr, "\n  %s: final shard-0.ckpt (%zu bytes) identical: %d\n", tag, len, same);
    CU_ASSERT(same && len > 1000);
    free(sa);
    free(sb);
}

static void test_bit_for_bit_single(void)
{
    begin();
    bit_for_bit("t1", "", "");
    end();
}

static void test_bit_for_bit_mpi(void)
{
    begin();
    bit_for_bit("t2", MPIRUN " -np 2", "-x PSREC_TEST_STOP_AT_STEP");
    end();
}

/* ------------------------------------------------------------------ 3: SIGUSR1 */

/* 1 shard + 2 workers, 8 epochs (a few seconds; at 6 the 3-worker resume lands up to 0.006 below
 * the 2-worker AUC, at 8 within 0.002): SIGUSR1 to mpirun once the first checkpoint is committed
 * (mpirun forwards it to every rank); then --resume with 3 workers; against an uninterrupted
 * 2-worker run of the same config. */
static void test_sigusr1_then_three_workers(void)
{
    begin();
    char run[4200], ref[4200];
    snprintf(run, sizeof run, "%s/t3", dir);
    snprintf(ref, sizeof ref, "%s/t3-ref", dir);
    const char *opts = "--train.epochs=8 --checkpoint.every_steps=50";
    char *out = NULL;
    /* The job runs in the background; timeout's child is mpirun. */
    int rc = run_expect(&out, 75,
                        "(timeout 120 " MPIRUN " -np 3 %s train %s/exp.conf --run.dir=%s %s & "
                        "T=$!; for i in $(seq 1 1200); do ls %s/ckpt 2>/dev/null | "
                        "grep -q '^step-[0-9]*$' && break; sleep 0.05; done; "
                        "M=$(pgrep -P $T); echo \"test: SIGUSR1 to mpirun pid $M\"; "
                        "kill -USR1 $M; wait $T)",
                        TU_PSREC, dir, run, opts, run);
    CU_ASSERT_FATAL(rc == 75);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "test: SIGUSR1 to mpirun pid "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "preemption signal"));
    free(out);
    char *s = summary(run);
    const double stopped = num(s, "steps"), total = 8 * ceil(nsamples / 2 / 32);
    fprintf(stderr, "\n  SIGUSR1: exit %d, status preempted %d, stopped at step %.0f of %.0f, "
                    "samples %.0f",
            rc, status_is(s, "preempted"), stopped, total, num(s, "samples"));
    CU_ASSERT(status_is(s, "preempted"));
    CU_ASSERT(stopped >= 50 && stopped < total);
    free(s);
    double step = -1;
    char ck[4400];
    snprintf(ck, sizeof ck, "%s/ckpt", run);
    CU_ASSERT(inspect(ck, &step, NULL) == 0 && step == stopped);
    /* 3 workers take over the unfinished samples. */
    rc = run_expect(&out, 0, "timeout 120 " MPIRUN " -np 4 %s train %s/exp.conf --run.dir=%s %s "
                             "--resume", TU_PSREC, dir, run, opts);
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "3 worker(s) take over the unfinished samples of 2"));
    free(out);
    s = summary(run);
    CU_ASSERT(status_is(s, "completed"));
    CU_ASSERT(num(s, "resumed_from_step") == stopped);
    CU_ASSERT(num(s, "samples") == 8 * nsamples);
    CU_ASSERT(num(s, "epochs") == 8);
    rc = run_expect(NULL, 0, "timeout 120 " MPIRUN " -np 3 %s train %s/exp.conf --run.dir=%s %s",
                    TU_PSREC, dir, ref, opts);
    CU_ASSERT_FATAL(rc == 0);
    char *r = summary(ref);
    fprintf(stderr, "\n  resumed on 3 workers: exit %d, samples %.0f (8 x N = %.0f), dev AUC %.4f; "
                    "uninterrupted on 2 workers: samples %.0f, dev AUC %.4f",
            rc, num(s, "samples"), 8 * nsamples, summary_auc(s), num(r, "samples"),
            summary_auc(r));
    CU_ASSERT(num(r, "samples") == 8 * nsamples);
    CU_ASSERT(fabs(summary_auc(s) - summary_auc(r)) < 0.01);
    CU_ASSERT(summary_auc(r) > 0.7);
    free(s);
    free(r);
    end();
}

/* ------------------------------------------------------------------ 4: other shard counts */

/* Worker w's trajectories (losses of every step, evaluations) of runs a and b are the same,
 * text for text, and not empty. Exact on purpose: under BSP a shard sums the pushes of a clock
 * in arrival order, and with two workers a + b == b + a, so neither the arrival order nor the
 * number of shards (rows only move between them) changes a single bit. */
static void same_trajectory(const char *what, const char *a, const char *b, int worker)
{
    int na = 0, nb = 0;
    char *ta = trajectory(a, worker, &na), *tb = trajectory(b, worker, &nb);
    const int same = ta && tb && na > 0 && na == nb && !strcmp(ta, tb);
    fprintf(stderr, "\n  %s, worker %d: %d and %d loss lines, identical: %d", what, worker, na, nb,
            same);
    CU_ASSERT(same);
    if (ta && tb && !same)
        show_difference(ta, tb);
    free(ta);
    free(tb);
}

/* Stop a run after step 100 (PSREC_TEST_STOP_AT_STEP) with `launch` ("" or an mpirun line taking
 * the variable): exit 75, status preempted. Returns the step it stopped at. */
static double stop_at_100(const char *run, const char *launch, const char *opts)
{
    int rc = run_expect(NULL, 75, "PSREC_TEST_STOP_AT_STEP=100 timeout 120 %s %s train "
                                  "%s/exp.conf --run.dir=%s --run.log_every=1 %s",
                        launch, TU_PSREC, dir, run, opts);
    CU_ASSERT_FATAL(rc == 75);
    char *s = summary(run);
    const double stopped = num(s, "steps");
    CU_ASSERT(status_is(s, "preempted") && stopped >= 100);
    free(s);
    return stopped;
}

/* Resume run with `launch`: it completes from step `from` with every sample of both epochs and
 * leaves a newest checkpoint of `shards` shard files. Returns the dev AUC. */
static double resume_ok(const char *run, const char *launch, const char *opts, double from,
                        double shards)
{
    int rc = run_expect(NULL, 0, "timeout 120 %s %s train %s/exp.conf --run.dir=%s "
                                 "--run.log_every=1 %s --resume",
                        launch, TU_PSREC, dir, run, opts);
    CU_ASSERT_FATAL(rc == 0);
    char *s = summary(run);
    double step = -1, got = -1, auc = summary_auc(s);
    char ck[4400];
    snprintf(ck, sizeof ck, "%s/ckpt", run);
    CU_ASSERT(inspect(ck, &step, &got) == 0);
    fprintf(stderr, "\n  %s: resumed from step %.0f: exit %d, samples %.0f (2 x N = %.0f), dev "
                    "AUC %.6f, newest checkpoint step %.0f with %.0f shard(s)",
            strrchr(run, '/') + 1, num(s, "resumed_from_step"), rc, num(s, "samples"),
            2 * nsamples, auc, step, got);
    CU_ASSERT(status_is(s, "completed"));
    CU_ASSERT(num(s, "resumed_from_step") == from);
    CU_ASSERT(num(s, "samples") == 2 * nsamples);
    CU_ASSERT(auc > 0.7);
    CU_ASSERT(got == shards);
    CU_ASSERT(step == num(s, "steps"));
    free(s);
    return auc;
}

/* Every resume here has an exact reference that differs only in the shard count, so a row lost
 * or misplaced by the re-hash shows in the losses right after the resume, not only in a
 * looser AUC:
 *   A  1 shard + 2 workers stopped, resumed on 2 shards + 2 workers
 *      == the same job uninterrupted on 1 shard;
 *   B  one process stopped, resumed on 2 shards + 2 workers
 *      == the same checkpoint resumed on 1 shard + 2 workers;
 *   C  2 shards + 2 workers, resumed by one process from the periodic cut at step 100
 *      == A's 1-shard job resumed by one process from its cut at step 100. */
static void test_other_shard_counts(void)
{
    begin();
    char ref[4200], a[4200], a1[4200], b[4200], b1[4200], c[4200], p[4600];
    snprintf(ref, sizeof ref, "%s/t4-ref", dir);
    snprintf(a, sizeof a, "%s/t4-a", dir);
    snprintf(a1, sizeof a1, "%s/t4-a-single", dir);
    snprintf(b, sizeof b, "%s/t4-b", dir);
    snprintf(b1, sizeof b1, "%s/t4-b-1shard", dir);
    snprintf(c, sizeof c, "%s/t4-c", dir);
    CU_ASSERT_FATAL(run_expect(NULL, 0, "timeout 120 " MPIRUN " -np 3 %s train %s/exp.conf "
                                        "--run.dir=%s --run.log_every=1",
                               TU_PSREC, dir, ref) == 0);
    char *s = summary(ref);
    const double ref_auc = summary_auc(s);
    free(s);

    /* A */
    const double sa = stop_at_100(a, MPIRUN " -np 3 -x PSREC_TEST_STOP_AT_STEP", "");
    CU_ASSERT_FATAL(tu_run(NULL, "cp -a %s %s", a, a1) == 0);
    double auc = resume_ok(a, MPIRUN " -np 4", "--ps.servers=2", sa, 2);
    fprintf(stderr, "\n  A: uninterrupted on 1 shard: dev AUC %.6f", ref_auc);
    CU_ASSERT(auc == ref_auc);
    same_trajectory("A: 1 -> 2 shards vs uninterrupted", ref, a, 0);
    same_trajectory("A: 1 -> 2 shards vs uninterrupted", ref, a, 1);

    /* B */
    const double sb = stop_at_100(b, "", "");
    CU_ASSERT(sb == 100);
    CU_ASSERT_FATAL(tu_run(NULL, "cp -a %s %s", b, b1) == 0);
    auc = resume_ok(b, MPIRUN " -np 4", "--ps.servers=2", sb, 2);
    CU_ASSERT(resume_ok(b1, MPIRUN " -np 3", "", sb, 1) == auc);
    same_trajectory("B: one process -> 2 shards vs -> 1 shard", b1, b, 0);
    same_trajectory("B: one process -> 2 shards vs -> 1 shard", b1, b, 1);

    /* C: both from their periodic cut at step 100 (the stopping cut's step depends on timing:
     * shard 0 announces it), each resumed life alone in its metrics.jsonl. */
    const double sc = stop_at_100(c, MPIRUN " -np 4 -x PSREC_TEST_STOP_AT_STEP", "--ps.servers=2");
    if (sc > 100)
        CU_ASSERT(tu_run(NULL, "rm -rf %s/ckpt/step-%010.0f", c, sc) == 0);
    if (sa > 100)
        CU_ASSERT(tu_run(NULL, "rm -rf %s/ckpt/step-%010.0f", a1, sa) == 0);
    snprintf(p, sizeof p, "%s/metrics.jsonl", c);
    CU_ASSERT(unlink(p) == 0);
    snprintf(p, sizeof p, "%s/metrics.jsonl", a1);
    CU_ASSERT(unlink(p) == 0);
    auc = resume_ok(c, "", "", 100, 1);
    CU_ASSERT(resume_ok(a1, "", "", 100, 1) == auc);
    same_trajectory("C: 2 shards -> one process vs 1 shard -> one process", a1, c, 0);
    fprintf(stderr, "\n");
    end();
}

/* ------------------------------------------------------------------ 5: damaged checkpoints */

static void test_corrupt_checkpoint(void)
{
    begin();
    char a[4200], b[4200], p[4600], q[4600];
    snprintf(a, sizeof a, "%s/t5a", dir);
    snprintf(b, sizeof b, "%s/t5b", dir);
    const char *opts = "--checkpoint.every_steps=20 --checkpoint.keep=5";
    int rc = run_expect(NULL, 75, "PSREC_TEST_STOP_AT_STEP=130 timeout 120 %s train %s/exp.conf "
                                  "--run.dir=%s %s", TU_PSREC, dir, a, opts);
    CU_ASSERT_FATAL(rc == 75);
    static const int steps[] = {60, 80, 100, 120, 130};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/ckpt/step-%010d/MANIFEST", a, steps[i]);
        CU_ASSERT(access(p, F_OK) == 0);
    }
    CU_ASSERT_FATAL(tu_run(NULL, "cp -a %s %s", a, b) == 0);

    /* A: the newest step's shard file cut in half. */
    snprintf(p, sizeof p, "%s/ckpt/step-0000000130/shard-0.ckpt", a);
    long size = file_size(p);
    CU_ASSERT_FATAL(size > 1000 && truncate(p, size / 2) == 0);
    char *out = NULL;
    snprintf(p, sizeof p, "%s/ckpt/step-0000000130", a);
    rc = tu_run(&out, "timeout 60 %s inspect %s", TU_PSREC, p);
    CU_ASSERT(rc != 0 && rc != 124 && strstr(out, "shard-0.ckpt"));
    free(out);
    double step = -1;
    snprintf(p, sizeof p, "%s/ckpt", a);
    CU_ASSERT(inspect(p, &step, NULL) == 0 && step == 120);
    rc = run_expect(&out, 0, "timeout 120 %s train %s/exp.conf --run.dir=%s %s --resume",
                    TU_PSREC, dir, a, opts);
    CU_ASSERT_FATAL(rc == 0);
    snprintf(p, sizeof p, "checkpoint %s/ckpt/step-0000000130 skipped", a);
    snprintf(q, sizeof q, "resuming from %s/ckpt/step-0000000120:", a);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, p));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, q));
    free(out);
    char *s = summary(a);
    fprintf(stderr, "\n  truncated step 130 (%ld -> %ld bytes): resumed from step %.0f, exit %d, "
                    "samples %.0f (2 x N = %.0f)",
            size, size / 2, num(s, "resumed_from_step"), rc, num(s, "samples"), 2 * nsamples);
    CU_ASSERT(num(s, "resumed_from_step") == 120);
    CU_ASSERT(num(s, "samples") == 2 * nsamples);
    CU_ASSERT(status_is(s, "completed"));
    free(s);

    /* B: the same truncation, and one flipped byte in step 120's shard file; resumed under
     * mpirun (every rank picks the same step dir). */
    snprintf(p, sizeof p, "%s/ckpt/step-0000000130/shard-0.ckpt", b);
    CU_ASSERT_FATAL(truncate(p, size / 2) == 0);
    snprintf(p, sizeof p, "%s/ckpt/step-0000000120/shard-0.ckpt", b);
    long size120 = file_size(p);
    CU_ASSERT_FATAL(size120 > 1000 && flip_byte(p, size120 / 2) == 0);
    snprintf(p, sizeof p, "%s/ckpt/step-0000000120", b);
    rc = tu_run(&out, "timeout 60 %s inspect %s", TU_PSREC, p);
    CU_ASSERT(rc != 0 && rc != 124 && strstr(out, "shard-0.ckpt"));
    free(out);
    rc = run_expect(&out, 0, "timeout 120 " MPIRUN " -np 2 %s train %s/exp.conf --run.dir=%s %s "
                             "--resume", TU_PSREC, dir, b, opts);
    CU_ASSERT_FATAL(rc == 0);
    snprintf(p, sizeof p, "checkpoint %s/ckpt/step-0000000130 skipped", b);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, p));
    snprintf(p, sizeof p, "checkpoint %s/ckpt/step-0000000120 skipped", b);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, p));
    snprintf(q, sizeof q, "resuming from %s/ckpt/step-0000000100:", b);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, q));
    free(out);
    s = summary(b);
    fprintf(stderr, "\n  plus a flipped byte in step 120 (offset %ld): resumed from step %.0f "
                    "under mpirun, exit %d, samples %.0f\n",
            size120 / 2, num(s, "resumed_from_step"), rc, num(s, "samples"));
    CU_ASSERT(num(s, "resumed_from_step") == 100);
    CU_ASSERT(num(s, "samples") == 2 * nsamples);
    CU_ASSERT(status_is(s, "completed"));
    free(s);
    end();
}

/* ------------------------------------------------------------------ 6: supervise + SIGKILL */

/* 1 shard + 2 workers under `psrec supervise`; a background loop waits for the first committed
 * step dir, then SIGKILLs worker rank 2 (found by the unique run dir on its command line and
 * OMPI_COMM_WORLD_RANK in its environment), once. mpirun then ends the job, supervise restarts
 * it with --resume, and it completes. */
static void test_supervise_sigkill(void)
{
    begin();
    char run[4200];
    snprintf(run, sizeof run, "%s/t6-supervised", dir);
    char *out = NULL;
    int rc = run_expect(&out, 0,
                        "(( for i in $(seq 1 1200); do ls %s/ckpt 2>/dev/null | "
                        "grep -q '^step-[0-9]*$' && break; sleep 0.05; done; "
                        "for p in $(pgrep -f '%s'); do "
                        "if tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | "
                        "grep -qx OMPI_COMM_WORLD_RANK=2; then "
                        "kill -9 $p && echo \"test: SIGKILL to rank 2, pid $p\"; fi; done "
                        ") > %s.killer 2>&1 & K=$!; "
                        "timeout 240 %s supervise --backoff 1 -- " MPIRUN " -np 3 %s train "
                        "%s/exp.conf --run.dir=%s --train.epochs=4; rc=$?; kill $K 2>/dev/null; "
                        "cat %s.killer; exit $rc)",
                        run, run, run, TU_PSREC, TU_PSREC, dir, run, run);
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "test: SIGKILL to rank 2, pid "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "resuming from step "));
    free(out);
    char *s = summary(run);
    fprintf(stderr, "\n  supervised: exit %d, status completed %d, restarts %.0f, resumed from "
                    "step %.0f, samples %.0f (4 x N = %.0f), dev AUC %.4f",
            rc, status_is(s, "completed"), num(s, "restarts"), num(s, "resumed_from_step"),
            num(s, "samples"), 4 * nsamples, summary_auc(s));
    CU_ASSERT(status_is(s, "completed"));
    CU_ASSERT(num(s, "restarts") >= 1);
    CU_ASSERT(num(s, "resumed_from_step") >= 50);
    CU_ASSERT(num(s, "samples") == 4 * nsamples);
    CU_ASSERT(summary_auc(s) > 0.7);
    free(s);
    end();
}

/* ------------------------------------------------------------------ 7: the run dir */

static int count_loss_lines(const char *run)
{
    int n = 0;
    free(trajectory(run, -1, &n));
    return n;
}

static void test_run_dir(void)
{
    begin();
    char run[4200], p[4600];
    snprintf(run, sizeof run, "%s/t7", dir);
    CU_ASSERT_FATAL(run_expect(NULL, 0, "timeout 120 %s train %s/exp.conf --run.dir=%s",
                               TU_PSREC, dir, run) == 0);
    /* Again without flags: refused, naming both ways on, touching nothing. */
    char *out = NULL;
    int rc = tu_run(&out, "timeout 60 %s train %s/exp.conf --run.dir=%s", TU_PSREC, dir, run);
    fprintf(stderr, "\n  existing run dir, no flag: exit %d", rc);
    CU_ASSERT(rc != 0 && rc != 124);
    CU_ASSERT(strstr(out, "already holds a run") && strstr(out, "--resume") &&
              strstr(out, "--force"));
    free(out);
    double step = -1;
    snprintf(p, sizeof p, "%s/ckpt", run);
    CU_ASSERT(inspect(p, &step, NULL) == 0 && step == 2 * ceil(nsamples / 32));
    /* --force with fewer epochs: says what it deletes, and the new run's checkpoint (step 240)
     * survives the old ones (steps 400, 450, 480). */
    rc = run_expect(&out, 0, "timeout 120 %s train %s/exp.conf --run.dir=%s --force "
                             "--train.epochs=1", TU_PSREC, dir, run);
    CU_ASSERT_FATAL(rc == 0);
    snprintf(p, sizeof p, "--force: deleting %s/ckpt/step-0000000480", run);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, p));
    snprintf(p, sizeof p, "--force: deleting %s/metrics.jsonl", run);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, p));
    snprintf(p, sizeof p, "--force: deleting %s/summary.json", run);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, p));
    free(out);
    const double one_epoch = ceil(nsamples / 32);
    CU_ASSERT(count_loss_lines(run) == (int)(one_epoch / 10)); /* this run's lines only */
    snprintf(p, sizeof p, "%s/ckpt", run);
    CU_ASSERT(inspect(p, &step, NULL) == 0 && step == one_epoch);
    snprintf(p, sizeof p, "%s/ckpt/LATEST", run);
    char *latest = tu_read_file(p, NULL);
    char want[64];
    snprintf(want, sizeof want, "step-%010.0f", one_epoch);
    CU_ASSERT(latest && !strncmp(latest, want, strlen(want)));
    free(latest);
    rc = run_expect(&out, 0, "timeout 60 %s eval --ckpt %s/ckpt --data %s/dev.db --json",
                    TU_PSREC, run, dir);
    CU_ASSERT(rc == 0);
    char *s = summary(run);
    double auc = num(out ? strrchr(out, '{') : NULL, "auc");
    fprintf(stderr, "\n  --force with 1 epoch: newest checkpoint step %.0f, eval exit %d, AUC "
                    "%.6f (the run said %.6f)",
            step, rc, auc, summary_auc(s));
    CU_ASSERT(fabs(auc - summary_auc(s)) < 1e-6);
    free(out);
    free(s);

    /* Two runs into one dir at once: the second refuses at once, naming the holder; a second
     * with --force refuses as well and deletes nothing of the running one. */
    snprintf(run, sizeof run, "%s/t7-busy", dir);
    rc = run_expect(&out, 0,
                    "(timeout 120 %s train %s/exp.conf --run.dir=%s --train.epochs=8 "
                    "> %s.first 2>&1 & T=$!; "
                    "for i in $(seq 1 1500); do [ -s %s/.lock ] && break; sleep 0.02; done; "
                    "P=$(pgrep -P $T); echo \"test: holder pid $P\"; "
                    "timeout 30 %s train %s/exp.conf --run.dir=%s; echo \"test: second exit $?\"; "
                    "timeout 30 %s train %s/exp.conf --run.dir=%s --force; "
                    "echo \"test: forced exit $?\"; "
                    "kill -0 $P 2>/dev/null && echo \"test: holder still running\"; "
                    "wait $T)",
                    TU_PSREC, dir, run, run, run, TU_PSREC, dir, run, TU_PSREC, dir, run);
    CU_ASSERT(rc == 0);
    long holder = -1;
    const char *h = strstr(out, "test: holder pid ");
    if (h)
        holder = atol(h + strlen("test: holder pid "));
    char host[256] = "";
    gethostname(host, sizeof host);
    snprintf(p, sizeof p, "is in use by pid %ld on host %s", holder, host);
    const char *first = strstr(out, p), *second = first ? strstr(first + 1, p) : NULL;
    fprintf(stderr, "\n  concurrent: holder pid %ld; %s; %s; refusals naming pid and host: %d",
            holder, strstr(out, "test: second exit 1") ? "second exit 1" : "second NOT exit 1",
            strstr(out, "test: holder still running") ? "holder still running" : "holder gone",
            !!first + !!second);
    CU_ASSERT(holder > 0);
    CU_ASSERT(first && second);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "test: second exit 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "test: forced exit 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "test: holder still running"));
    CU_ASSERT_PTR_NULL(strstr(out, "--force: deleting"));
    free(out);
    s = summary(run);
    CU_ASSERT(status_is(s, "completed") && num(s, "samples") == 8 * nsamples);
    free(s);
    CU_ASSERT(count_loss_lines(run) == (int)(8 * one_epoch / 10)); /* one writer only */
    snprintf(p, sizeof p, "%s/ckpt", run);
    CU_ASSERT(inspect(p, &step, NULL) == 0 && step == 8 * one_epoch);
    end();
}

/* ------------------------------------------------------------------ 8: a full disk */

/* Stopped after step 100 with a valid checkpoint; resumed with every checkpoint writer failing
 * after 4096 bytes (PSREC_TEST_CKPT_FAIL_AFTER_BYTES, on every rank via mpirun -x): the
 * periodic checkpoints fail loudly, training goes on to the end, the final checkpoint fails
 * too (so the run fails), and the earlier checkpoint stays the newest valid one. */
static void test_full_disk(void)
{
    begin();
    char run[4200], p[4600];
    snprintf(run, sizeof run, "%s/t8", dir);
    int rc = run_expect(NULL, 75, "PSREC_TEST_STOP_AT_STEP=100 timeout 120 " MPIRUN " -np 3 "
                                  "-x PSREC_TEST_STOP_AT_STEP %s train %s/exp.conf --run.dir=%s",
                        TU_PSREC, dir, run);
    CU_ASSERT_FATAL(rc == 75);
    char *s = summary(run);
    const double stopped = num(s, "steps");
    free(s);
    double step = -1;
    snprintf(p, sizeof p, "%s/ckpt", run);
    CU_ASSERT_FATAL(inspect(p, &step, NULL) == 0 && step == stopped);
    char *out = NULL;
    rc = run_expect(&out, 1, "PSREC_TEST_CKPT_FAIL_AFTER_BYTES=4096 timeout 120 " MPIRUN
                             " -np 3 -x PSREC_TEST_CKPT_FAIL_AFTER_BYTES %s train %s/exp.conf "
                             "--run.dir=%s --resume",
                    TU_PSREC, dir, run);
    CU_ASSERT(rc == 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "CHECKPOINT FAILED at step 150"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "CHECKPOINT FAILED at step 200"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "FINAL CHECKPOINT FAILED"));
    free(out);
    s = summary(run);
    const double total = 2 * ceil(nsamples / 2 / 32);
    char ckpt[4400] = "";
    json_str(s, "checkpoint", ckpt, sizeof ckpt);
    fprintf(stderr, "\n  full disk after resuming from step %.0f: exit %d, status %s, steps %.0f "
                    "of %.0f, samples %.0f, checkpoint_failures %.0f, dev AUC %.4f, summary "
                    "checkpoint %s",
            stopped, rc, status_is(s, "failed") ? "failed" : "NOT failed", num(s, "steps"),
            total, num(s, "samples"), num(s, "checkpoint_failures"), summary_auc(s), ckpt);
    CU_ASSERT(status_is(s, "failed"));
    CU_ASSERT(num(s, "checkpoint_failures") == 3); /* steps 150, 200 and the final one */
    CU_ASSERT(num(s, "steps") == total);           /* training went on to the end */
    CU_ASSERT(num(s, "samples") == 2 * nsamples);
    CU_ASSERT(summary_auc(s) > 0.7);
    snprintf(p, sizeof p, "%s/ckpt/step-%010.0f", run, stopped);
    CU_ASSERT(!strcmp(ckpt, p));
    free(s);
    snprintf(p, sizeof p, "%s/ckpt", run);
    CU_ASSERT(inspect(p, &step, NULL) == 0 && step == stopped);
    /* Nothing half-written left behind. */
    char *ls = NULL;
    tu_run(&ls, "ls %s/ckpt", run);
    fprintf(stderr, "\n  checkpoint root holds: %s", ls);
    CU_ASSERT(ls && !strstr(ls, ".tmp"));
    free(ls);
    end();
}

/* ------------------------------------------------------------------ 9: second signal, every_seconds */

/* A second signal while the stopping checkpoint is written exits at once with 75, and the
 * previous checkpoint stays the newest valid one; a signal that arrives twice at once (within
 * 2 s) counts once. checkpoint.every_seconds takes cuts by time alone. */
static void test_second_signal_and_every_seconds(void)
{
    char run[4200];
    snprintf(run, sizeof run, "%s/sig2", dir);
    char *out = NULL;
    int rc = run_expect(
        &out, 0,
        "cd %s; (PSREC_TEST_CKPT_SLOW_STOP=30 timeout 90 %s train exp.conf --run.dir=%s "
        "--train.epochs=50 --checkpoint.every_steps=50 > sig2.log 2>&1; echo $? > sig2.rc) & "
        "for i in $(seq 300); do [ -f %s/ckpt/step-0000000100/MANIFEST ] && break; sleep 0.1; "
        "done; PID=$(for p in $(pgrep -x psrec); do tr '\\0' ' ' < /proc/$p/cmdline | "
        "grep -q 'run.dir=%s ' && echo $p; done | head -1); "
        "kill -USR1 $PID; kill -USR1 $PID; sleep 3; T0=$(date +%%s.%%N); kill -USR1 $PID; "
        "while kill -0 $PID 2>/dev/null; do sleep 0.05; done; T1=$(date +%%s.%%N); "
        "for i in $(seq 100); do [ -s sig2.rc ] && break; sleep 0.1; done; "
        "echo \"rc $(cat sig2.rc) exit_after $(awk \"BEGIN { print $T1 - $T0 }\")\"",
        dir, TU_PSREC, run, run, run);
    CU_ASSERT_FATAL(rc == 0 && out);
    int code = -1;
    double after = 99;
    const char *p = strstr(out, "rc ");
    CU_ASSERT_FATAL(p && sscanf(p, "rc %d exit_after %lf", &code, &after) == 2);
    fprintf(stderr, "\n  second signal: exit %d, %.2f s after it", code, after);
    CU_ASSERT_EQUAL(code, 75);
    CU_ASSERT(after < 2.0); /* at once, not after the 30 s write */
    free(out);
    char log[4400];
    snprintf(log, sizeof log, "%s/sig2.log", dir);
    char *text = tu_read_file(log, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "second signal: exiting now"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "(stopping)"));
    /* The two signals sent together were one request: one stopping cut was started. */
    const char *first = strstr(text, "(stopping)");
    CU_ASSERT(first != NULL && strstr(first + 1, "(stopping)") == NULL);
    free(text);
    /* The stopping cut never committed: the newest valid checkpoint is a periodic one. */
    double step = -1;
    char ck[4400];
    snprintf(ck, sizeof ck, "%s/ckpt", run);
    CU_ASSERT(inspect(ck, &step, NULL) == 0);
    CU_ASSERT(step >= 100 && (long long)step % 50 == 0);
    fprintf(stderr, "\n  newest valid checkpoint after the second signal: step %.0f", step);

    /* every_seconds alone (every_steps off): several cuts at no step multiple in particular. */
    snprintf(run, sizeof run, "%s/secs", dir);
    rc = run_expect(NULL, 0, "timeout 120 %s train %s/exp.conf --run.dir=%s --train.epochs=4 "
                    "--checkpoint.every_steps=0 --checkpoint.every_seconds=0.3 "
                    "--checkpoint.keep=100", TU_PSREC, dir, run);
    CU_ASSERT_FATAL(rc == 0);
    rc = run_expect(&out, 0, "ls %s/ckpt | grep -c '^step-[0-9]*$'", run);
    int n = out ? atoi(out) : 0;
    free(out);
    fprintf(stderr, "\n  every_seconds = 0.3: %d step dirs\n", n);
    CU_ASSERT(n >= 3); /* a few timed cuts plus the final one */
}


int main(void)
{
    static const TuTest tests[] = {
        {"shared dataset", test_dataset},
        {"1 bit-for-bit resume, single process", test_bit_for_bit_single},
        {"2 bit-for-bit resume, mpirun 1 shard + 1 worker BSP", test_bit_for_bit_mpi},
        {"3 SIGUSR1 to mpirun, resume on 3 workers", test_sigusr1_then_three_workers},
        {"4 resume with other shard counts", test_other_shard_counts},
        {"5 damaged checkpoints skipped", test_corrupt_checkpoint},
        {"6 supervise around a SIGKILLed rank", test_supervise_sigkill},
        {"7 run dir: refusal, --force, lock, fewer epochs", test_run_dir},
        {"8 full disk under mpirun", test_full_disk},
        {"9 second signal; every_seconds", test_second_signal_and_every_seconds},
        {NULL, NULL}};
    /* PSREC_RESUME_ONLY=3,5 registers only those numbered tests (and the dataset): for
     * checking one test against a mutated production line without the whole suite. */
    const char *only = getenv("PSREC_RESUME_ONLY");
    TuTest chosen[sizeof tests / sizeof tests[0]];
    size_t n = 0;
    for (const TuTest *t = tests; t->name; t++) {
        int wanted = !only || t == tests;
        for (const char *p = only; p && *p && !wanted; p += strcspn(p, ","), p += *p == ',')
            wanted = atoi(p) == atoi(t->name);
        if (wanted)
            chosen[n++] = *t;
    }
    chosen[n] = (TuTest){NULL, NULL};
    tu_add_suite("resume", chosen);
    int rc = tu_run_all();
    if (rc == 0 && dir[0])
        tu_rmtree(dir);
    return rc;
}
