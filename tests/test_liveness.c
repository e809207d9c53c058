/* Liveness of a real job: the psrec binary under mpirun on loopback (1 shard = rank 0, 2 BSP
 * workers = ranks 1 and 2), every command under `timeout`, faults injected from outside (a slow
 * worker by PSREC_TEST_SLEEP, SIGSTOP of a worker, kill -9 of the shard) while the test watches
 * the log, the clock and summary.json. It checks numbers and times, not only exit codes:
 * samples == epochs x the dataset's samples, the dev AUC of a clean run, when a death was
 * noticed (from the log's timestamps, against the moment of the signal) and when the job ended.
 * The figures the closing note of issue 8 asks for are printed (stderr, "liveness:" lines).
 *
 * A small ps.heartbeat_timeout (HB_TIMEOUT) keeps the suite fast; one generated dataset and one
 * clean run are shared by all tests. No process of a run may outlive its test. */
#include "testutil/testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MPIRUN TU_MPIRUN " --oversubscribe --allow-run-as-root --mca btl self,tcp --mca btl_tcp_if_include lo"

#define STR_(x) #x
#define STR(x) STR_(x)
#define HB_TIMEOUT_S 3   /* ps.heartbeat_timeout of every run here, seconds */
#define HB_TIMEOUT ((double)HB_TIMEOUT_S)
#define HB_INTERVAL 1.0  /* ps.heartbeat_interval (the default) */
#define EPOCHS 6         /* runs that must complete; long enough to kill one mid-run */
#define LONG_EPOCHS 30   /* runs that must be ended by a fault, never by finishing first */
#define EVERY_STEPS 20   /* checkpoint.every_steps */
#define SLEEP_S (3 * HB_TIMEOUT)

/* Every run: 1 shard, 2 workers under BSP, a step logged per line (the kill step is read from
 * the log), small heartbeat timeout, frequent checkpoints. */
#define RUN_OPTS "--ps.servers=1 --ps.consistency=bsp --ps.heartbeat_timeout=" STR(HB_TIMEOUT_S) \
                 " --checkpoint.every_steps=" STR(EVERY_STEPS) " --run.log_every=1"

static char dir[4096];
static double n_samples;     /* `psrec inspect --json train.db` "samples" */
static double clean_auc = -1; /* dev AUC of the clean EPOCHS run */
static double clean_wall;     /* its wall time as seen from here, seconds */

/* ---- clocks ------------------------------------------------------------------------------ */

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Local seconds of the day, the clock the log's "HH:MM:SS.mmm" stamps are read on. */
static double day_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    return tm.tm_hour * 3600.0 + tm.tm_min * 60.0 + tm.tm_sec + (double)ts.tv_nsec * 1e-9;
}

/* b - a for seconds of the day, across midnight. */
static double day_diff(double a, double b)
{
    double d = b - a;
    if (d < -43200)
        d += 86400;
    if (d > 43200)
        d -= 86400;
    return d;
}

/* ---- processes --------------------------------------------------------------------------- */

/* Like `pgrep -f needle`: pids whose command line contains needle (not this process), up to
 * max; with rank >= 0 only the MPI rank of that number (OMPI_COMM_WORLD_RANK in its
 * environment), which leaves out mpirun, timeout and supervise. Returns how many. */
static int find_procs(const char *needle, int rank, pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    char want[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid())
            continue;
        char p[64];
        snprintf(p, sizeof p, "/proc/%ld/cmdline", pid);
        size_t len = 0;
        char *cmd = tu_read_file(p, &len);
        if (!cmd)
            continue;
        for (size_t i = 0; i < len; i++)
            if (!cmd[i])
                cmd[i] = ' ';
        int match = strstr(cmd, needle) != NULL;
        free(cmd);
        if (match && rank >= 0) {
            snprintf(p, sizeof p, "/proc/%ld/environ", pid);
            char *env = tu_read_file(p, &len);
            match = 0;
            for (size_t i = 0; env && i < len; i += strlen(env + i) + 1)
                if (!strcmp(env + i, want))
                    match = 1;
            free(env);
        }
        if (match)
            out[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

/* Print a run's log on a failed check, so the failure can be understood from ctest's output. */
static void show_log(const char *log)
{
    char *s = tu_read_file(log, NULL);
    size_t n = s ? strlen(s) : 0;
    fprintf(stderr, "\n---- %s (last 6000 bytes) ----\n%s\n----\n", log,
            s ? s + (n > 6000 ? n - 6000 : 0) : "(none)");
    free(s);
}

/* SIGKILL every process whose command line names run_dir (all started by this test: the
 * name is a fresh temporary directory). `timeout` runs its command in a process group of its
 * own, so signalling our group would not reach mpirun and the ranks. */
static void kill_run(const char *run_dir)
{
    pid_t p[16];
    int n = find_procs(run_dir, -1, p, 16);
    for (int i = 0; i < n; i++)
        kill(p[i], SIGKILL);
}

/* Wait for pid until deadline (monotonic). Returns its exit status like tu_run (0..255,
 * 128+signal), or -1 when the deadline passed (then every process of the run is killed).
 * *t_end: when it ended. */
static int reap(pid_t pid, const char *run_dir, double deadline, double *t_end)
{
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        if (mono() > deadline) {
            kill_run(run_dir);
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            *t_end = mono();
            return -1;
        }
        usleep(20000);
    }
    *t_end = mono();
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

/* A test that cannot go on: end its run first, so nothing outlives it. */
static void give_up(pid_t job, const char *run_dir, const char *log, const char *why)
{
    double t;
    fprintf(stderr, "\n  giving up: %s\n", why);
    show_log(log);
    reap(job, run_dir, 0, &t);
}

/* The pid of MPI rank `rank` of the run whose command line names run_dir, or -1. */
static pid_t rank_pid(const char *run_dir, int rank)
{
    pid_t p[4];
    for (double until = mono() + 10; mono() < until; usleep(50000))
        if (find_procs(run_dir, rank, p, 4) == 1)
            return p[0];
    return -1;
}


/* Processes of the run still there after its end (none should be); waits up to 5 s for
 * mpirun's last kills to land. */
static int leftovers(const char *run_dir)
{
    pid_t p[16];
    int n = 0;
    for (double until = mono() + 5; mono() < until; usleep(100000))
        if ((n = find_procs(run_dir, -1, p, 16)) == 0)
            return 0;
    for (int i = 0; i < n; i++)
        fprintf(stderr, "  left over: pid %d\n", (int)p[i]);
    return n;
}

/* Wait until file `path` contains `text` (or until deadline). Returns 1 when it does. */
static int wait_for_text(const char *path, const char *text, double deadline)
{
    for (; mono() < deadline; usleep(20000)) {
        char *s = tu_read_file(path, NULL);
        int found = s && strstr(s, text);
        free(s);
        if (found)
            return 1;
    }
    return 0;
}

/* Wait (until deadline) for `text` in the job's log, then return the pid of its MPI rank
 * `rank`: the process a test is about to stop or kill. When either does not come, the job is
 * ended and the test fails here. */
static pid_t victim_after(pid_t job, const char *run_dir, const char *log, const char *text,
                          int rank, double deadline)
{
    pid_t victim = -1;
    if (!wait_for_text(log, text, deadline) || (victim = rank_pid(run_dir, rank)) <= 0) {
        char why[256];
        snprintf(why, sizeof why, "no \"%s\", or no rank %d", text, rank);
        give_up(job, run_dir, log, why);
        CU_FAIL_FATAL("the run did not get to the fault");
    }
    return victim;
}


/* ---- logs and summaries ------------------------------------------------------------------ */

/* One log line "[role rank HH:MM:SS.mmm LEVEL] text": its rank (-1 for "[supervise ...]")
 * and time of day. Returns 0 when the line is not a log line. */
static int log_line(const char *line, int *rank, double *tod)
{
    char role[32];
    int r, h, m, s, ms;
    if (sscanf(line, "[%31s %d %d:%d:%d.%d ", role, &r, &h, &m, &s, &ms) == 6) {
        *rank = r;
    } else if (sscanf(line, "[%31s %d:%d:%d.%d ", role, &h, &m, &s, &ms) == 5) {
        *rank = -1;
    } else {
        return 0;
    }
    *tod = h * 3600.0 + m * 60.0 + s + ms / 1000.0;
    return 1;
}

/* The step of a worker's "epoch E step S loss L" line, or 0. */
static unsigned long long step_of(const char *line)
{
    const char *p = strstr(line, " INFO] epoch ");
    unsigned long long e, s;
    if (p && sscanf(p, " INFO] epoch %llu step %llu loss", &e, &s) == 2)
        return s;
    return 0;
}

/* Time of day of the first line of `rank` (any rank if -2) containing text; -1 if none. */
static double first_time(const char *log, int rank, const char *text)
{
    char *s = tu_read_file(log, NULL), *save;
    double t = -1;
    for (char *l = s ? strtok_r(s, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        int r;
        double tod;
        if (log_line(l, &r, &tod) && (rank == -2 || r == rank) && strstr(l, text)) {
            t = tod;
            break;
        }
    }
    free(s);
    return t;
}

/* The longest time between two consecutive step lines of `rank`. */
static double longest_step_gap(const char *log, int rank)
{
    char *s = tu_read_file(log, NULL), *save;
    double prev = -1, gap = 0;
    for (char *l = s ? strtok_r(s, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        int r;
        double tod;
        if (!log_line(l, &r, &tod) || r != rank || !step_of(l))
            continue;
        if (prev >= 0 && day_diff(prev, tod) > gap)
            gap = day_diff(prev, tod);
        prev = tod;
    }
    free(s);
    return gap;
}

/* The highest step any worker logged before the first line containing `until`. */
static unsigned long long last_step_before(const char *log, const char *until)
{
    char *s = tu_read_file(log, NULL), *save;
    unsigned long long best = 0;
    for (char *l = s ? strtok_r(s, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        if (strstr(l, until))
            break;
        unsigned long long k = step_of(l);
        best = k > best ? k : best;
    }
    free(s);
    return best;
}

/* run/summary.json, read whole (caller frees), or NULL. */
static char *summary(const char *run)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/summary.json", run);
    return tu_read_file(p, NULL);
}

/* ---- fixtures ---------------------------------------------------------------------------- */

/* The dataset (once) and its sample count. */
static void ensure_data(void)
{
    if (dir[0])
        return;
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("liveness"));
    CU_ASSERT_FATAL(tu_small_experiment(dir, 1, "[ps]\nhost = 127.0.0.1\n") == 0);
    char *out = NULL;
    CU_ASSERT_FATAL(tu_run(&out, "%s inspect --json %s/train.db", TU_PSREC, dir) == 0);
    CU_ASSERT_FATAL(tu_json_number(out, "samples", &n_samples) && n_samples > 1000);
    free(out);
}

/* The clean run every other number is compared with (once): same config, no fault. */
static void ensure_clean_run(void)
{
    ensure_data();
    if (clean_auc >= 0)
        return;
    char cmd[16384], log[4200], run[4200];
    snprintf(run, sizeof run, "%s/clean", dir);
    snprintf(log, sizeof log, "%s/clean.log", dir);
    snprintf(cmd, sizeof cmd, "timeout 300 " MPIRUN " -np 3 %s train %s/exp.conf " RUN_OPTS
             " --train.epochs=%d --run.dir=%s", TU_PSREC, dir, EPOCHS, run);
    double t0 = mono(), t1;
    pid_t job = (pid_t)tu_spawn(cmd, log);
    CU_ASSERT_FATAL(job > 0);
    int rc = reap(job, run, t0 + 320, &t1);
    if (rc)
        show_log(log);
    CU_ASSERT_FATAL(rc == 0);
    clean_wall = t1 - t0;
    char *s = summary(run);
    double samples = 0;
    CU_ASSERT_FATAL(s && tu_json_number(s, "samples", &samples) &&
                    samples == EPOCHS * n_samples);
    CU_ASSERT_FATAL(strstr(s, "\"dev\"") && tu_json_number(strstr(s, "\"dev\""), "auc", &clean_auc) &&
                    clean_auc > 0.7);
    free(s);
    fprintf(stderr, "\n  liveness: clean run %d epochs: %.1f s, dev AUC %.6f\n", EPOCHS,
            clean_wall, clean_auc);
}

/* ---- tests ------------------------------------------------------------------------------- */

/* Worker 0 (rank 1) sleeps 3x the heartbeat timeout after step 40 while its heartbeat actor
 * goes on; worker 1 (rank 2) waits at the BSP gate all that time. Nobody is declared dead, the
 * run completes with every sample, and (BSP) the model is the clean run's. */
static void test_slow_worker(void)
{
    ensure_clean_run();
    char cmd[16384], log[4200], run[4200];
    snprintf(run, sizeof run, "%s/slow", dir);
    snprintf(log, sizeof log, "%s/slow.log", dir);
    snprintf(cmd, sizeof cmd, "PSREC_TEST_SLEEP=0:40:%g timeout 300 " MPIRUN
             " -x PSREC_TEST_SLEEP -np 3 %s train %s/exp.conf " RUN_OPTS
             " --train.epochs=%d --run.dir=%s", SLEEP_S, TU_PSREC, dir, EPOCHS, run);
    double t0 = mono(), t1;
    pid_t job = (pid_t)tu_spawn(cmd, log);
    CU_ASSERT_FATAL(job > 0);
    int rc = reap(job, run, t0 + 320, &t1);
    CU_ASSERT_EQUAL(rc, 0);
    char *s = summary(run);
    double samples = 0, auc = -1;
    CU_ASSERT(s && strstr(s, "\"status\": \"completed\""));
    CU_ASSERT(s && strstr(s, "\"lost_workers\": []"));
    CU_ASSERT(s && tu_json_number(s, "samples", &samples) && samples == EPOCHS * n_samples);
    CU_ASSERT(s && strstr(s, "\"dev\"") && tu_json_number(strstr(s, "\"dev\""), "auc", &auc));
    free(s);
    /* The sleep happened (else this test proves nothing), and nobody was declared dead. */
    char said[128];
    snprintf(said, sizeof said, "sleeping %.1f s after step 40 on purpose", SLEEP_S);
    CU_ASSERT(first_time(log, 1, said) >= 0);
    CU_ASSERT(first_time(log, -2, "declared dead") < 0);
    CU_ASSERT(first_time(log, -2, " ERROR]") < 0);
    /* Worker 1 waited at the gate longer than the timeout: its longest pause between steps. */
    /* Only the first worker's loss lines reach stderr; every rank's are in run.dir/log. */
    char runlog[4300];
    snprintf(runlog, sizeof runlog, "%s/log", run);
    double gap = longest_step_gap(runlog, 2);
    CU_ASSERT(gap > HB_TIMEOUT && gap > SLEEP_S - 0.5);
    CU_ASSERT(t1 - t0 > SLEEP_S);
    /* BSP: a slow worker changes when, not what; the same model as the clean run. */
    CU_ASSERT(fabs(auc - clean_auc) < 1e-6);
    fprintf(stderr, "\n  liveness: slow worker: %.1f s asleep, the other worker waited %.2f s "
                    "at the gate (timeout %.0f s); run %.1f s (clean %.1f s), samples %.0f = "
                    "%d x %.0f, dev AUC %.6f (clean %.6f)\n",
            SLEEP_S, gap, HB_TIMEOUT, t1 - t0, clean_wall, samples, EPOCHS, n_samples, auc,
            clean_auc);
    if (rc || gap <= HB_TIMEOUT || samples != EPOCHS * n_samples)
        show_log(log);
}

/* SIGSTOP worker 0 (rank 1) past the timeout, then SIGCONT it, under the documented line for
 * runs that survive a worker (`mpirun --enable-recovery`): the shard declares it dead and
 * fences it, the other worker takes over its samples from its last committed step, the one
 * that comes back is told it is fenced and leaves, and the run completes with every sample of
 * every epoch exactly once; summary.json names the lost rank. */
static void test_stopped_worker(void)
{
    ensure_clean_run();
    char cmd[16384], log[4200], run[4200];
    snprintf(run, sizeof run, "%s/stopped", dir);
    snprintf(log, sizeof log, "%s/stopped.log", dir);
    snprintf(cmd, sizeof cmd, "timeout 300 " MPIRUN " --enable-recovery -np 3 %s train "
             "%s/exp.conf " RUN_OPTS " --train.epochs=%d --run.dir=%s", TU_PSREC, dir,
             3 * EPOCHS, run);
    double t0 = mono(), t1;
    pid_t job = (pid_t)tu_spawn(cmd, log);
    CU_ASSERT_FATAL(job > 0);
    const pid_t victim = victim_after(job, run, log, "step 20 loss", 1, t0 + 120);
    const double day_stop = day_now();
    CU_ASSERT(kill(victim, SIGSTOP) == 0);
    /* Back after it was declared dead, while the others still train: it must be fenced. */
    struct timespec ts = {(time_t)(HB_TIMEOUT + 2), 0};
    nanosleep(&ts, NULL);
    kill(victim, SIGCONT);
    int rc = reap(job, run, t0 + 320, &t1);
    CU_ASSERT(rc != 124 && rc != -1); /* 124: `timeout` fired, i.e. it hung */
    const double seen = first_time(log, 0, "declared dead and fenced");
    const double detect = seen >= 0 ? day_diff(day_stop, seen) : -1;
    /* Not before the timeout, less the heartbeat interval (a worker waiting at the gate sends
     * only heartbeats, so its last word may be that old at the stop), and not much after. */
    CU_ASSERT(detect >= HB_TIMEOUT - HB_INTERVAL - 0.1 && detect <= HB_TIMEOUT + 1.0);
    CU_ASSERT(first_time(log, 0, "worker 0 silent for") >= 0);
    CU_ASSERT(first_time(log, 2, "take over its samples") >= 0);
    CU_ASSERT(first_time(log, 1, "declared dead and fenced (its samples were taken over") >= 0);
    char *s = summary(run);
    double samples = 0;
    CU_ASSERT(s && strstr(s, "\"status\": \"completed\""));
    CU_ASSERT(s && strstr(s, "\"lost_workers\": [1]"));
    CU_ASSERT(s && tu_json_number(s, "samples", &samples) && samples == 3 * EPOCHS * n_samples);
    free(s);
    CU_ASSERT_EQUAL(leftovers(run), 0);
    fprintf(stderr, "\n  liveness: SIGSTOP worker rank 1 for %.0f s: declared dead %.2f s after "
                    "the stop (timeout %.0f s), taken over, fenced when it came back; run "
                    "%.1f s, samples %.0f = %d x %.0f\n",
            HB_TIMEOUT + 2, detect, HB_TIMEOUT, t1 - t0, samples, 3 * EPOCHS, n_samples);
    if (detect < 0 || samples != 3 * EPOCHS * n_samples)
        show_log(log);
}

/* kill -9 one of three workers (rank 2) mid-epoch under `mpirun --enable-recovery`: the
 * survivors take over its samples and the run completes with every sample exactly once, the
 * rank in lost_workers, and the clean run's dev AUC within 0.01. */
static void test_killed_worker(void)
{
    ensure_clean_run();
    char cmd[16384], log[4200], run[4200];
    snprintf(run, sizeof run, "%s/killed", dir);
    snprintf(log, sizeof log, "%s/killed.log", dir);
    snprintf(cmd, sizeof cmd, "timeout 300 " MPIRUN " --enable-recovery -np 4 %s train "
             "%s/exp.conf " RUN_OPTS " --train.epochs=%d --run.dir=%s", TU_PSREC, dir, EPOCHS,
             run);
    double t0 = mono(), t1;
    pid_t job = (pid_t)tu_spawn(cmd, log);
    CU_ASSERT_FATAL(job > 0);
    const pid_t victim = victim_after(job, run, log, "step 30 loss", 2, t0 + 120);
    const double day_kill = day_now();
    CU_ASSERT(kill(victim, SIGKILL) == 0);
    int rc = reap(job, run, t0 + 320, &t1);
    CU_ASSERT(rc != 124 && rc != -1);
    const double seen = first_time(log, 0, "declared dead and fenced");
    const double detect = seen >= 0 ? day_diff(day_kill, seen) : -1;
    const double resumed = first_time(log, -2, "take over its samples");
    char *s = summary(run);
    double samples = 0, auc = -1;
    CU_ASSERT(s && strstr(s, "\"status\": \"completed\""));
    CU_ASSERT(s && strstr(s, "\"lost_workers\": [2]"));
    CU_ASSERT(s && tu_json_number(s, "samples", &samples) && samples == EPOCHS * n_samples);
    CU_ASSERT(s && strstr(s, "\"dev\"") && tu_json_number(strstr(s, "\"dev\""), "auc", &auc));
    CU_ASSERT(fabs(auc - clean_auc) < 0.01);
    free(s);
    CU_ASSERT(detect >= 0 && detect <= HB_TIMEOUT + 1.0);
    CU_ASSERT_EQUAL(leftovers(run), 0);
    fprintf(stderr, "\n  liveness: kill -9 worker rank 2: declared dead %.2f s after the kill, "
                    "survivors training again %.2f s after it; run %.1f s (clean %.1f s), "
                    "samples %.0f = %d x %.0f, dev AUC %.6f (clean %.6f)\n",
            detect, resumed >= 0 ? day_diff(day_kill, resumed) : -1.0, t1 - t0, clean_wall,
            samples, EPOCHS, n_samples, auc, clean_auc);
    if (samples != EPOCHS * n_samples || detect < 0)
        show_log(log);
}

/* A worker dies after its last step of epoch 0, before it sent its evaluation sums (it sleeps
 * there on purpose, and is killed while asleep): the first worker, collecting the sums, hears
 * through its heartbeats that the worker was lost and evaluates its dev share itself, so the
 * epoch's evaluation still covers every impression; the run completes with every sample. */
static void test_killed_before_eval(void)
{
    ensure_data();
    char cmd[16384], log[4200], run[4200];
    snprintf(run, sizeof run, "%s/evalkill", dir);
    snprintf(log, sizeof log, "%s/evalkill.log", dir);
    /* 3 workers: 7674 samples / 3 / 32 per batch = 80 steps in an epoch for each. */
    snprintf(cmd, sizeof cmd, "PSREC_TEST_SLEEP=1:80:60 timeout 300 " MPIRUN
             " --enable-recovery -x PSREC_TEST_SLEEP -np 4 %s train %s/exp.conf " RUN_OPTS
             " --checkpoint.every_steps=0 --train.epochs=2 --run.dir=%s", TU_PSREC, dir, run);
    /* (No periodic cut: one at step 80 would take the worker over before the evaluation.) */
    double t0 = mono(), t1;
    pid_t job = (pid_t)tu_spawn(cmd, log);
    CU_ASSERT_FATAL(job > 0);
    const pid_t victim =
        victim_after(job, run, log, "on purpose (PSREC_TEST_SLEEP)", 2, t0 + 120);
    CU_ASSERT(kill(victim, SIGKILL) == 0);
    int rc = reap(job, run, t0 + 320, &t1);
    CU_ASSERT(rc != 124 && rc != -1);
    CU_ASSERT(first_time(log, 1, "was lost; evaluating its share here") >= 0);
    char path[4400];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    char *m = tu_read_file(path, NULL);
    const char *e0 = m ? strstr(m, "{\"epoch\":0,\"step\"") : NULL;
    double imps = 0;
    CU_ASSERT(e0 && tu_json_number(e0, "impressions", &imps) && imps == 500);
    /* Each epoch evaluated once (a takeover plan may report an epoch's end again). */
    int evals = 0;
    for (const char *q = m; q && (q = strstr(q, "\"auc\"")); q++)
        evals++;
    CU_ASSERT_EQUAL(evals, 2);
    free(m);
    char *s = summary(run);
    double samples = 0;
    CU_ASSERT(s && strstr(s, "\"status\": \"completed\""));
    CU_ASSERT(s && strstr(s, "\"lost_workers\": [2]"));
    CU_ASSERT(s && tu_json_number(s, "samples", &samples) && samples == 2 * n_samples);
    free(s);
    CU_ASSERT_EQUAL(leftovers(run), 0);
    fprintf(stderr, "\n  liveness: a worker killed before it sent its epoch-0 sums: epoch 0 "
                    "evaluated over %.0f impressions, run %.1f s, samples %.0f = 2 x %.0f\n",
            imps, t1 - t0, samples, n_samples);
    if (imps != 500 || samples != 2 * n_samples)
        show_log(log);
}

/* Two shards: a worker dies right after shard 0 acknowledged its CLOCK of step 60 and before
 * shard 1 saw it (the hard case: the step is committed, shard 1 holds only its pushes). Shard
 * 0's verdict reaches shard 1 through the survivors, shard 1 commits the held step, and the
 * run completes with every sample exactly once, under BSP and under SSP. */
static void test_dead_between_clocks(void)
{
    ensure_data();
    static const char *modes[] = {"bsp", "ssp"};
    for (int m = 0; m < 2; m++) {
        char cmd[16384], log[4200], run[4200];
        snprintf(run, sizeof run, "%s/between-%s", dir, modes[m]);
        snprintf(log, sizeof log, "%s/between-%s.log", dir, modes[m]);
        snprintf(cmd, sizeof cmd, "PSREC_TEST_DIE_BETWEEN_CLOCKS=1:60 timeout 300 " MPIRUN
                 " --enable-recovery -x PSREC_TEST_DIE_BETWEEN_CLOCKS -np 5 %s train "
                 "%s/exp.conf " RUN_OPTS " --ps.servers=2 --ps.consistency=%s "
                 "--train.epochs=%d --run.dir=%s", TU_PSREC, dir, modes[m], EPOCHS, run);
        double t0 = mono(), t1;
        pid_t job = (pid_t)tu_spawn(cmd, log);
        CU_ASSERT_FATAL(job > 0);
        int rc = reap(job, run, t0 + 320, &t1);
        CU_ASSERT(rc != 124 && rc != -1);
        char *text = tu_read_file(log, NULL);
        CU_ASSERT(text && strstr(text, "dying between CLOCKs on purpose")); /* it happened */
        free(text);
        CU_ASSERT(first_time(log, 1, "after 61 committed steps (shard 0's verdict)") >= 0);
        char *s = summary(run);
        double samples = 0;
        CU_ASSERT(s && strstr(s, "\"status\": \"completed\""));
        CU_ASSERT(s && strstr(s, "\"lost_workers\": [3]"));
        CU_ASSERT(s && tu_json_number(s, "samples", &samples) && samples == EPOCHS * n_samples);
        free(s);
        CU_ASSERT_EQUAL(leftovers(run), 0);
        fprintf(stderr, "\n  liveness: 2 shards, %s, a worker dead between its CLOCKs to shard 0 "
                        "and shard 1: run %.1f s, samples %.0f = %d x %.0f\n",
                modes[m], t1 - t0, samples, EPOCHS, n_samples);
        if (samples != EPOCHS * n_samples)
            show_log(log);
    }
}

/* kill -9 the shard (rank 0) under `mpirun --enable-recovery`, so that mpirun does not end the
 * job for us: each worker notices the silence within the timeout, names the dead shard and
 * its rank, and the job ends without a hang. */
static void test_dead_shard(void)
{
    ensure_data();
    char cmd[16384], log[4200], run[4200];
    snprintf(run, sizeof run, "%s/deadshard", dir);
    snprintf(log, sizeof log, "%s/deadshard.log", dir);
    snprintf(cmd, sizeof cmd, "timeout %d " MPIRUN " --enable-recovery -np 3 %s train "
             "%s/exp.conf " RUN_OPTS " --train.epochs=%d --run.dir=%s",
             (int)HB_TIMEOUT + 60, TU_PSREC, dir, LONG_EPOCHS, run);
    double t0 = mono(), t1;
    pid_t job = (pid_t)tu_spawn(cmd, log);
    CU_ASSERT_FATAL(job > 0);
    const pid_t victim = victim_after(job, run, log, "step 20 loss", 0, t0 + 120);
    const double t_kill = mono(), day_kill = day_now();
    CU_ASSERT(kill(victim, SIGKILL) == 0);
    int rc = reap(job, run, t_kill + HB_TIMEOUT + 80, &t1);
    const double ended = t1 - t_kill;
    double detect[2];
    for (int w = 0; w < 2; w++) {
        /* Each worker's own error names the shard and its MPI rank. */
        double seen = first_time(log, 1 + w, "training failed: shard 0 (rank 0): ");
        detect[w] = seen >= 0 ? day_diff(day_kill, seen) : -1;
        /* The last heartbeat reply came up to one interval before the kill. */
        CU_ASSERT(detect[w] >= HB_TIMEOUT - HB_INTERVAL - 0.1 && detect[w] <= HB_TIMEOUT + 1.0);
    }
    /* It ended by itself (124: `timeout` fired; -1: our deadline), without a hang: detection
     * (the timeout), then the workers give rank 0 ps.heartbeat_timeout + 10 s to end the failed
     * job before they end it themselves (launch/job.c fail_job), then mpirun's teardown (up to
     * ~2 s seen). The exit
     * code is not checked: Open MPI 4.1's mpirun --enable-recovery exits 0 whatever its ranks
     * do (MPI_Abort, exit(n), a signal), so it cannot carry the failure. */
    CU_ASSERT(rc != -1 && rc != 124);
    CU_ASSERT(ended <= 2 * HB_TIMEOUT + 15);
    /* Nothing may claim the run completed (rank 0, which writes summary.json, is gone). */
    char *s = summary(run);
    CU_ASSERT(!s || !strstr(s, "\"completed\""));
    free(s);
    CU_ASSERT_EQUAL(leftovers(run), 0);
    fprintf(stderr, "\n  liveness: kill -9 shard rank 0 (--enable-recovery): workers noticed "
                    "%.2f s and %.2f s after the kill (timeout %.0f s), job ended %.2f s after "
                    "the kill, exit code %d\n",
            detect[0], detect[1], HB_TIMEOUT, ended, rc);
    if (rc == -1 || rc == 124 || ended > 2 * HB_TIMEOUT + 15 || detect[0] < 0 || detect[1] < 0)
        show_log(log);
}

/* kill -9 the shard mid-run, after a first checkpoint, under `psrec supervise` and default
 * mpirun: one restart from the newest checkpoint, the run completes with every sample once and
 * the clean run's model. Measures the cost of the shard death. */
static void test_dead_shard_supervised(void)
{
    ensure_clean_run();
    char cmd[16384], log[4200], run[4200], pattern[4400];
    snprintf(run, sizeof run, "%s/supervised", dir);
    snprintf(log, sizeof log, "%s/supervised.log", dir);
    snprintf(pattern, sizeof pattern, "%s/ckpt/step-*/MANIFEST", run);
    snprintf(cmd, sizeof cmd, "timeout 300 %s supervise --backoff 1 -- " MPIRUN " -np 3 %s "
             "train %s/exp.conf " RUN_OPTS " --train.epochs=%d --run.dir=%s",
             TU_PSREC, TU_PSREC, dir, EPOCHS, run);
    double t0 = mono(), t1;
    pid_t job = (pid_t)tu_spawn(cmd, log);
    CU_ASSERT_FATAL(job > 0);
    int have_ckpt = 0;
    for (; !have_ckpt && mono() < t0 + 120; usleep(20000)) {
        glob_t g;
        have_ckpt = glob(pattern, 0, NULL, &g) == 0;
        globfree(&g);
    }
    pid_t victim = -1;
    if (!have_ckpt || (victim = rank_pid(run, 0)) <= 0) {
        give_up(job, run, log, "no checkpoint, or no rank 0");
        CU_FAIL_FATAL("the run did not get going");
    }
    CU_ASSERT(kill(victim, SIGKILL) == 0);
    int rc = reap(job, run, t0 + 320, &t1);
    CU_ASSERT_EQUAL(rc, 0);
    char *s = summary(run);
    double samples = 0, restarts = -1, from = -1, auc = -1, steps = 0;
    CU_ASSERT(s && strstr(s, "\"status\": \"completed\""));
    CU_ASSERT(s && tu_json_number(s, "restarts", &restarts) && restarts == 1);
    CU_ASSERT(s && tu_json_number(s, "samples", &samples) && samples == EPOCHS * n_samples);
    CU_ASSERT(s && tu_json_number(s, "steps", &steps));
    CU_ASSERT(s && tu_json_number(s, "resumed_from_step", &from) && from >= EVERY_STEPS &&
              fmod(from, EVERY_STEPS) == 0);
    CU_ASSERT(s && strstr(s, "\"dev\"") && tu_json_number(strstr(s, "\"dev\""), "auc", &auc));
    free(s);
    CU_ASSERT(fabs(auc - clean_auc) < 0.01);
    /* Exactly one restart, and it resumed. */
    CU_ASSERT(first_time(log, -1, "attempt 2 of ") >= 0);
    CU_ASSERT(first_time(log, -1, "attempt 3 of ") < 0);
    CU_ASSERT(first_time(log, -2, "resuming from ") >= 0);
    /* The kill landed mid-run, at or after the checkpoint resumed from. */
    unsigned long long killed_at = last_step_before(log, "attempt 2 of ");
    CU_ASSERT(killed_at >= (unsigned long long)from && (double)killed_at < steps);
    CU_ASSERT_EQUAL(leftovers(run), 0);
    fprintf(stderr, "\n  liveness: kill -9 shard under psrec supervise: killed at step %llu, "
                    "resumed from step %.0f: %.0f step(s) lost (checkpoint.every_steps = %d); "
                    "wall %.1f s vs %.1f s clean: the shard death cost %.1f s (backoff 1 s "
                    "included); samples %.0f = %d x %.0f, dev AUC %.6f vs %.6f clean\n",
            killed_at, from, (double)killed_at - from, EVERY_STEPS, t1 - t0, clean_wall,
            t1 - t0 - clean_wall, samples, EPOCHS, n_samples, auc, clean_auc);
    if (rc || restarts != 1 || samples != EPOCHS * n_samples)
        show_log(log);
}

static void test_cleanup(void)
{
    if (dir[0])
        tu_rmtree(dir);
}

int main(void)
{
    static const TuTest tests[] = {{"a slow worker is not a dead one", test_slow_worker},
                                   {"a stopped worker is taken over, then fenced",
                                    test_stopped_worker},
                                   {"a killed worker is taken over", test_killed_worker},
                                   {"a worker killed before its evaluation sums",
                                    test_killed_before_eval},
                                   {"two shards: a worker dead between its CLOCKs",
                                    test_dead_between_clocks},
                                   {"a dead shard is noticed by every worker", test_dead_shard},
                                   {"a dead shard under psrec supervise",
                                    test_dead_shard_supervised},
                                   {"cleanup", test_cleanup},
                                   {NULL, NULL}};
    tu_add_suite("liveness", tests);
    return tu_run_all();
}
