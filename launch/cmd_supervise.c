/* `psrec supervise [--max-restarts N] [--backoff SECONDS] -- CMD...`: run a training command
 * (`mpirun ... psrec train CONFIG [overrides]` or `psrec train CONFIG ...`) and run it again
 * with --resume when it fails, until it completes, is preempted (exit 75, passed on for the
 * scheduler to requeue), makes no progress, or the restarts run out.
 *
 * Invariants:
 *   - A restart never carries --force (it would delete the checkpoint it should resume from)
 *     and always carries --resume once.
 *   - Progress is the newest valid checkpoint's step (a step-* dir with a MANIFEST under the
 *     run's checkpoint root, from the same config and overrides as the child reads). A restart
 *     after which that step did not move is the last one.
 *   - SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 are forwarded once to the child process (mpirun
 *     forwards them on to the ranks). The child runs in its own process group so a terminal's
 *     Ctrl-C reaches it only through us, not twice. After SIGTERM/SIGINT/SIGUSR1 (a stop) no
 *     restart happens: the child's exit code is passed on.
 *
 * Not here: whether --resume can resume (train checks), the backoff policy beyond a fixed
 * delay, locking the run dir (the child takes the lock). */
#include "common/config.h"
#include "common/error.h"
#include "common/log.h"
#include "launch/cli.h"
#include "launch/commands.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_PREEMPTED = 75 };

static void supervise_usage(FILE *f)
{
    fprintf(f,
            "usage: psrec supervise [--max-restarts N] [--backoff SECONDS] -- CMD...\n\n"
            "Run CMD, a training command such as\n"
            "  mpirun -np 3 psrec train CONFIG [--section.key=value ...]\n"
            "  psrec train CONFIG [--section.key=value ...]\n"
            "and when it fails (non-zero exit, or killed by a signal: a rank died, a node was\n"
            "lost) run it again with --resume appended (and any --force dropped), so it goes on\n"
            "from the newest valid checkpoint under the run's checkpoint directory (read from\n"
            "CONFIG and the overrides, as train reads them).\n\n"
            "  --max-restarts N   restarts at most (default 10, 0..1000000)\n"
            "  --backoff SECONDS  fixed wait before each restart (default 5, 0..86400)\n"
            "  -h, --help         this text\n\n"
            "It gives up early, exit code 1, when a restart made no progress: the newest\n"
            "checkpoint's step did not move (or there is still none) since the last restart.\n"
            "Exit code 75 from CMD (preempted, checkpoint written) is passed on at once for the\n"
            "scheduler to requeue the job. SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 are forwarded to\n"
            "CMD; after SIGTERM, SIGINT or SIGUSR1 nothing is restarted.\n"
            "CMD sees PSREC_SUPERVISE_RESTARTS=<restarts so far> (train puts it in summary.json).\n"
            "Exit code: CMD's last (0, 75, its failure; 128+N when killed by signal N), 1 when\n"
            "giving up for lack of progress, 2 for a usage error, 127 when CMD cannot be run.\n");
}

/* ---- signals ---- */

static volatile sig_atomic_t child_pid;   /* 0 while no child runs */
static volatile sig_atomic_t stop_signal; /* the last stop signal received, 0 = none */

static const int forwarded[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2};
#define NFORWARDED (sizeof forwarded / sizeof forwarded[0])

static void on_signal(int sig)
{
    if (sig != SIGUSR2)
        stop_signal = sig;
    /* The child only, not its group: mpirun forwards to its ranks itself, and a rank signalled
     * twice would take the second as "give up the checkpoint and exit now". */
    pid_t p = (pid_t)child_pid;
    if (p > 0)
        kill(p, sig);
}

static void block_forwarded(int how, sigset_t *old)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < NFORWARDED; i++)
        sigaddset(&set, forwarded[i]);
    sigprocmask(how, &set, old);
}

/* ---- the command ---- */

/* Index of "train" in cmd followed by a CONFIG (not an option), or -1. When several match,
 * the one after a program named psrec* wins (so "--hostfile train" in mpirun's arguments is
 * not taken for it). */
static int find_train(int n, char **cmd)
{
    int first = -1;
    for (int i = 1; i + 1 < n; i++) {
        if (strcmp(cmd[i], "train") || cmd[i + 1][0] == '-')
            continue;
        const char *slash = strrchr(cmd[i - 1], '/');
        const char *base = slash ? slash + 1 : cmd[i - 1];
        if (!strncmp(base, "psrec", 5))
            return i;
        if (first < 0)
            first = i;
    }
    return first;
}

/* The restart's command: cmd without any --force after CONFIG, with --resume at the end unless
 * it is there already. Returns a malloc'ed NULL-terminated array of borrowed strings. */
static char **resume_argv(int n, char **cmd, int config_at, int *dropped_force)
{
    char **out = calloc((size_t)n + 2, sizeof *out);
    if (!out)
        return NULL;
    int k = 0, has_resume = 0;
    *dropped_force = 0;
    for (int i = 0; i < n; i++) {
        if (i > config_at && !strcmp(cmd[i], "--force")) {
            *dropped_force = 1;
            continue;
        }
        has_resume |= i > config_at && !strcmp(cmd[i], "--resume");
        out[k++] = cmd[i];
    }
    if (!has_resume)
        out[k++] = "--resume";
    out[k] = NULL;
    return out;
}

/* Step of the newest step-N directory under root holding a MANIFEST, or -1 when none: the
 * progress measure between restarts. It reads no file (a MANIFEST is written last, so its
 * presence means the step was committed); the child's --resume verifies every CRC and falls
 * back past a damaged step by itself, so a cheap check is enough to tell "made progress". */
static long long newest_step(const char *root)
{
    DIR *d = opendir(root);
    if (!d)
        return -1;
    long long best = -1;
    struct dirent *e;
    char p[4400];
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "step-", 5) || !e->d_name[5])
            continue;
        char *end;
        errno = 0;
        long long step = strtoll(e->d_name + 5, &end, 10);
        if (*end || errno || step < 0 || e->d_name[5] < '0' || e->d_name[5] > '9')
            continue; /* step-N.tmp and strangers */
        struct stat st;
        snprintf(p, sizeof p, "%s/%s/MANIFEST", root, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && step > best)
            best = step;
    }
    closedir(d);
    return best;
}

/* Run argv to its end. Returns its exit code, 128+N when killed by signal N, or 127 (with
 * *exec_failed set) when it could not be started. */
static int run_child(char **argv, int *exec_failed)
{
    *exec_failed = 0;
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        LOG_ERROR("cannot make a pipe: %s", strerror(errno));
        *exec_failed = 1;
        return 127;
    }
    sigset_t old;
    /* Blocked until child_pid is set, so a signal arriving meanwhile is forwarded, not lost. */
    block_forwarded(SIG_BLOCK, &old);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        sigprocmask(SIG_SETMASK, &old, NULL);
        /* In a background process group, reading the terminal stops the process (SIGTTIN);
         * mpirun reads stdin to pass it to rank 0, and training never needs it. */
        if (isatty(STDIN_FILENO)) {
            int fd = open("/dev/null", O_RDONLY);
            if (fd >= 0) {
                dup2(fd, STDIN_FILENO);
                close(fd);
            }
        }
        execvp(argv[0], argv);
        int e = errno;
        if (write(report[1], &e, sizeof e) < 0)
            _exit(127);
        _exit(127);
    }
    close(report[1]);
    if (pid < 0) {
        LOG_ERROR("cannot fork: %s", strerror(errno));
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(report[0]);
        *exec_failed = 1;
        return 127;
    }
    setpgid(pid, pid); /* as the child does: whichever runs first */
    child_pid = pid;
    sigprocmask(SIG_SETMASK, &old, NULL);
    int e = 0;
    ssize_t got;
    while ((got = read(report[0], &e, sizeof e)) < 0 && errno == EINTR)
        ;
    close(report[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    child_pid = 0;
    if (got == (ssize_t)sizeof e) {
        LOG_ERROR("cannot run %s: %s", argv[0], strerror(e));
        *exec_failed = 1;
        return 127;
    }
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static void describe_exit(int code, char *buf, size_t n)
{
    if (code > 128 && code < 128 + 65)
        snprintf(buf, n, "exit code %d (signal %d, %s)", code, code - 128,
                 strsignal(code - 128));
    else
        snprintf(buf, n, "exit code %d", code);
}

/* Sleep seconds; returns early (non-zero) when a stop signal arrives. */
static int backoff(int seconds)
{
    struct timespec left = {seconds, 0};
    while (!stop_signal && nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
    return stop_signal != 0;
}

/* The loop of tries; see the top comment. */
static int supervise(int n, char **cmd, int config_at, const char *root, int max_restarts,
                     int backoff_s)
{
    int dropped_force;
    char **again = resume_argv(n, cmd, config_at, &dropped_force);
    if (!again) {
        LOG_ERROR("out of memory");
        return EXIT_FAIL;
    }
    char **argv = cmd;
    int restarts = 0, code;
    long long step_at_restart = -1;
    char why[128];
    for (;;) {
        char env[32];
        snprintf(env, sizeof env, "%d", restarts);
        setenv("PSREC_SUPERVISE_RESTARTS", env, 1);
        int exec_failed;
        code = run_child(argv, &exec_failed);
        if (code == 0 || exec_failed)
            break;
        describe_exit(code, why, sizeof why);
        if (code == EXIT_PREEMPTED) {
            LOG_INFO("%s after %s: preempted with a checkpoint; passing it on (requeue the job "
                     "to resume)", cmd[0], why);
            break;
        }
        if (stop_signal) {
            LOG_WARN("%s after %s; not restarting: we were asked to stop (signal %d)", cmd[0],
                     why, (int)stop_signal);
            break;
        }
        if (restarts >= max_restarts) {
            LOG_ERROR("%s after %s; giving up: %d restarts done (--max-restarts %d)", cmd[0],
                      why, restarts, max_restarts);
            break;
        }
        long long step = newest_step(root);
        if (restarts > 0 && step == step_at_restart) {
            if (step < 0)
                LOG_ERROR("%s after %s; giving up: no progress since the last restart (still "
                          "no checkpoint under %s)", cmd[0], why, root);
            else
                LOG_ERROR("%s after %s; giving up: no progress since the last restart (newest "
                          "checkpoint still step %lld under %s)", cmd[0], why, step, root);
            code = EXIT_FAIL;
            break;
        }
        restarts++;
        step_at_restart = step;
        if (step < 0)
            LOG_WARN("attempt %d of %d after %s; no checkpoint under %s yet, resuming anyway",
                     restarts + 1, max_restarts + 1, why, root);
        else
            LOG_WARN("attempt %d of %d after %s; resuming from step %lld", restarts + 1,
                     max_restarts + 1, why, step);
        if (restarts == 1 && dropped_force)
            LOG_WARN("restarts run without --force (it would delete the checkpoint to resume "
                     "from)");
        if (backoff_s > 0)
            LOG_INFO("waiting %d s before the restart", backoff_s);
        if (backoff(backoff_s)) {
            LOG_WARN("asked to stop (signal %d) while waiting; not restarting", (int)stop_signal);
            break;
        }
        argv = again;
    }
    free(again);
    return code;
}

int cmd_supervise(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"max-restarts", required_argument, NULL, 'm'},
        {"backoff", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int max_restarts = 10, backoff_s = 5;
    optind = 0; /* glibc: start afresh even if another command parsed before */
    int c;
    /* "+": stop at the first non-option, so CMD's own options are never taken for ours. */
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (cli_int("supervise", "max-restarts", optarg, 0, 1000000, &max_restarts))
                return EXIT_USAGE;
            break;
        case 'b':
            if (cli_int("supervise", "backoff", optarg, 0, 86400, &backoff_s))
                return EXIT_USAGE;
            break;
        case 'h':
            supervise_usage(stdout);
            return EXIT_OK;
        default:
            fprintf(stderr, "usage: psrec supervise [--max-restarts N] [--backoff SECONDS] -- "
                            "CMD...  (--help: details)\n");
            return EXIT_USAGE;
        }
    }
    if (optind < 1 || optind > argc || strcmp(argv[optind - 1], "--") || optind == argc) {
        fprintf(stderr, "psrec supervise: need `-- CMD...` after the options, e.g.\n"
                        "  psrec supervise -- mpirun -np 3 psrec train exp.conf\n");
        return EXIT_USAGE;
    }
    int n = argc - optind;
    char **cmd = argv + optind;
    int at = find_train(n, cmd);
    if (at < 0) {
        fprintf(stderr, "psrec supervise: CMD must run `psrec train CONFIG [overrides]` (found "
                        "no `train CONFIG` in it)\n");
        return EXIT_USAGE;
    }
    log_set_identity("supervise", -1);
    Config cfg;
    char root[4096];
    if (config_load(&cfg, cmd[at + 1], n - at - 2, cmd + at + 2) < 0 ||
        config_checkpoint_dir(&cfg, root, sizeof root)) {
        fprintf(stderr, "psrec supervise: %s\n", psrec_errmsg());
        return EXIT_USAGE;
    }
    struct sigaction sa, old[NFORWARDED];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NFORWARDED; i++)
        sigaction(forwarded[i], &sa, &old[i]);
    stop_signal = 0;
    int code = supervise(n, cmd, at + 1, root, max_restarts, backoff_s);
    for (size_t i = 0; i < NFORWARDED; i++)
        sigaction(forwarded[i], &old[i], NULL);
    return code;
}
