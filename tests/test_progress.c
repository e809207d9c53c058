/* Progress lines and the run's log file (issue 10).
 *
 * Unit level (common/progress.c, a fake clock): a line is due once per interval, not per step;
 * the loss average and the ETAs follow the steps; the key=value form has every field.
 * End to end (the real binary, one process, tu_small_experiment data, run.log_every_seconds =
 * 0.2, 4 epochs so it lasts a couple of seconds):
 *   - stderr not a terminal: "progress ..." lines, their count within a sane range for the
 *     training time, every field key=value with the right type, step <= its total, epochs in
 *     order, the last line of each epoch near its end;
 *   - run.dir/log holds every line with role, rank and a timestamp, the per-step loss lines
 *     included; a stopped and resumed run appends (the first life's lines stay, in front),
 *     and the resumed life's first progress line counts steps from where the epoch was cut;
 *   - PSREC_PROGRESS=tty: the redrawn line (\r, clear to end of line), and the per-step loss
 *     lines only in run.dir/log, not on stderr.
 *   - prep and eval meters: on a terminal (PSREC_PROGRESS=tty, PSREC_TEST_METER_DELAY=0 so a
 *     small run shows them) "prep: N/T MB" and "eval: scoring: N/T impressions" lines, the last
 *     one complete (T/T) and then erased; not a terminal: no meter at all.
 * Not here: the look of the terminal line (a person judges that), timing accuracy. */
#include "testutil/testutil.h"

#include "common/progress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define EPOCHS 4
#define INTERVAL 0.2

static char dir[4096]; /* shared dataset and exp.conf */

/* ------------------------------------------------------------------ parsing */

typedef struct Parsed {
    unsigned long long epoch, epochs, step, steps, eta_epoch, eta;
    double rate, loss;
    int has_lag;
    unsigned long long lag;
} Parsed;

/* "a/b" with both unsigned integers. */
static int parse_ratio(const char *v, unsigned long long *a, unsigned long long *b)
{
    char *e;
    *a = strtoull(v, &e, 10);
    if (e == v || *e != '/')
        return 0;
    const char *w = e + 1;
    *b = strtoull(w, &e, 10);
    return e != w && *e == '\0';
}

static int parse_uint(const char *v, unsigned long long *out)
{
    char *e;
    if (!*v || *v == '-')
        return 0;
    *out = strtoull(v, &e, 10);
    return *e == '\0';
}

static int parse_double(const char *v, double *out)
{
    char *e;
    *out = strtod(v, &e);
    return e != v && *e == '\0' && isfinite(*out);
}

/* One "progress k=v ..." line (without newline): every key once, in order, well typed. */
static int parse_line(const char *line, Parsed *p)
{
    static const char *const keys[] = {"epoch", "step", "samples_per_s", "loss",
                                       "eta_epoch_s", "eta_s", "lag"};
    memset(p, 0, sizeof *p);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", line);
    char *save = NULL, *tok = strtok_r(buf, " ", &save);
    if (!tok || strcmp(tok, "progress"))
        return 0;
    int k = 0;
    while ((tok = strtok_r(NULL, " ", &save))) {
        char *eq = strchr(tok, '=');
        if (!eq || k >= 7)
            return 0;
        *eq = '\0';
        const char *v = eq + 1;
        if (strcmp(tok, keys[k]))
            return 0;
        int ok = 0;
        switch (k) {
        case 0: ok = parse_ratio(v, &p->epoch, &p->epochs); break;
        case 1: ok = parse_ratio(v, &p->step, &p->steps); break;
        case 2: ok = parse_double(v, &p->rate) && strchr(v, '.'); break;
        case 3: ok = parse_double(v, &p->loss) && strchr(v, '.'); break;
        case 4: ok = parse_uint(v, &p->eta_epoch); break;
        case 5: ok = parse_uint(v, &p->eta); break;
        case 6: ok = parse_uint(v, &p->lag); p->has_lag = 1; break;
        }
        if (!ok)
            return 0;
        k++;
    }
    return k == 6 || k == 7;
}

/* The progress lines of text (malloc'ed array of pointers into text, which is modified). */
static int progress_lines(char *text, char ***out)
{
    int n = 0, cap = 64;
    char **v = malloc((size_t)cap * sizeof *v);
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, "progress ", 9) != 0)
            continue;
        if (n == cap)
            v = realloc(v, (size_t)(cap *= 2) * sizeof *v);
        v[n++] = l;
    }
    *out = v;
    return n;
}

/* "[train 0 HH:MM:SS.mmm LEVEL] " at the start of line. */
static int has_log_prefix(const char *line)
{
    unsigned h, m, s, ms;
    char level[8], close;
    return sscanf(line, "[train 0 %2u:%2u:%2u.%3u %7[A-Z]%c", &h, &m, &s, &ms, level, &close) ==
               6 &&
           close == ']' && h < 24 && m < 60 && s < 61 && ms < 1000;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; p && *p; p++)
        n += *p == '\n';
    return n;
}

/* ------------------------------------------------------------------ unit */

static void test_cadence_fake_clock(void)
{
    TrainProgress p;
    train_progress_init(&p, PROGRESS_OFF, 1.0, 100.0);
    ProgressPos pos = {.epoch = 0, .epochs = 2, .steps = 100, .steps_after = 100};
    ProgressFields f;
    int due = 0;
    /* 100 steps of 32 samples, 0.05 s each: 5 s, so 5 lines at 1 s intervals. */
    for (int i = 1; i <= 100; i++) {
        pos.step = (uint64_t)i;
        due += train_progress_step(&p, 100.0 + 0.05 * i, 0.5, 32, &pos, &f);
    }
    CU_ASSERT_EQUAL(due, 5);
    CU_ASSERT(fabs(f.loss - 0.5) < 1e-12);
    CU_ASSERT(fabs(f.samples_per_s - 640.0) < 1e-6);
    CU_ASSERT_EQUAL(f.epoch, 1);
    CU_ASSERT_EQUAL(f.step, 100);
    CU_ASSERT(f.eta_epoch_s == 0.0);
    CU_ASSERT(fabs(f.eta_s - 5.0) < 1e-6); /* 100 steps left at 20 steps/s */
}

static void test_loss_average(void)
{
    TrainProgress p;
    train_progress_init(&p, PROGRESS_OFF, 10.0, 0.0);
    ProgressPos pos = {.epochs = 1, .steps = 1000};
    ProgressFields f;
    /* The first 50 steps: the running mean. */
    for (int i = 1; i <= 4; i++) {
        pos.step = (uint64_t)i;
        train_progress_step(&p, 0.01 * i, (double)i, 1, &pos, &f);
    }
    CU_ASSERT(fabs(f.loss - 2.5) < 1e-12);
    /* Then a moving average that forgets: long after a jump it is at the new value. */
    for (int i = 5; i <= 1000; i++) {
        pos.step = (uint64_t)i;
        train_progress_step(&p, 0.01 * i, 7.0, 1, &pos, &f);
    }
    CU_ASSERT(fabs(f.loss - 7.0) < 1e-6);
}

static void test_format_parses(void)
{
    ProgressFields f = {.epoch = 2, .epochs = 3, .step = 420, .steps = 1440,
                        .samples_per_s = 812.25, .loss = 0.69314, .eta_epoch_s = 12.4,
                        .eta_s = 75.6};
    char line[512];
    progress_format_plain(line, sizeof line, &f);
    Parsed p;
    CU_ASSERT_FATAL(parse_line(line, &p));
    CU_ASSERT_EQUAL(p.epoch, 2);
    CU_ASSERT_EQUAL(p.epochs, 3);
    CU_ASSERT_EQUAL(p.step, 420);
    CU_ASSERT_EQUAL(p.steps, 1440);
    CU_ASSERT(fabs(p.rate - 812.2) < 0.11);
    CU_ASSERT(fabs(p.loss - 0.6931) < 1e-4);
    CU_ASSERT_EQUAL(p.eta_epoch, 12);
    CU_ASSERT_EQUAL(p.eta, 76);
    CU_ASSERT_FALSE(p.has_lag);
    f.has_lag = 1;
    f.lag = 3;
    progress_format_plain(line, sizeof line, &f);
    CU_ASSERT_FATAL(parse_line(line, &p));
    CU_ASSERT(p.has_lag && p.lag == 3);
    progress_format_tty(line, sizeof line, &f);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "420/1440"));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "lag 3"));
}

/* ------------------------------------------------------------------ end to end */

/* Run psrec train on exp.conf with run.dir = run and extra arguments; output into *out. */
static int train(char **out, const char *env, const char *run, double interval,
                 const char *args)
{
    /* stderr only: stdout (the final metrics) goes away; tu_run adds its own 2>&1 outside. */
    return tu_run(out, "(%s timeout 120 %s train %s/exp.conf --run.dir=%s/%s --train.epochs=%d "
                       "--run.log_every_seconds=%g %s 2>&1 >/dev/null)",
                  env, TU_PSREC, dir, dir, run, EPOCHS, interval, args);
}

/* The training time the "done:" line reports, NAN when absent. */
static double done_seconds(const char *text)
{
    const char *d = text ? strstr(text, "INFO] done: ") : NULL;
    const char *in = d ? strstr(d, " in ") : NULL;
    return in ? strtod(in + 4, NULL) : NAN;
}

static char *read_log(const char *run)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/%s/log", dir, run);
    return tu_read_file(p, NULL);
}

static void test_plain_lines(void)
{
    CU_ASSERT_FATAL(dir[0]);
    char *out = NULL;
    int rc = train(&out, "", "plain", INTERVAL, "");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    double secs = done_seconds(out);
    CU_ASSERT_FATAL(isfinite(secs) && secs > 0);
    char *copy = strdup(out);
    char **lines;
    int n = progress_lines(copy, &lines);
    /* One line per interval: at least a third of the intervals the training lasted (steps
     * land within milliseconds of each deadline; dev evaluation adds no lines), and never
     * more than one per interval of the whole command. */
    int lo = (int)(secs / INTERVAL / 3.0), hi = (int)(secs / INTERVAL) + 2;
    fprintf(stderr, "\n  %d progress lines in %.2f s of training (sane: %d..%d)", n, secs,
            lo > 1 ? lo : 1, hi);
    CU_ASSERT(n >= (lo > 1 ? lo : 1));
    CU_ASSERT(n <= hi);
    unsigned long long last_epoch = 0, last_step = 0;
    for (int i = 0; i < n; i++) {
        Parsed p;
        int ok = parse_line(lines[i], &p);
        if (!ok)
            fprintf(stderr, "\n  does not parse: %s", lines[i]);
        CU_ASSERT_FATAL(ok);
        CU_ASSERT_EQUAL(p.epochs, EPOCHS);
        CU_ASSERT(p.epoch >= 1 && p.epoch <= EPOCHS);
        CU_ASSERT(p.step >= 1 && p.step <= p.steps);
        CU_ASSERT_FALSE(p.has_lag); /* one process: no PS lag */
        CU_ASSERT(p.rate > 0);
        CU_ASSERT(p.loss > 0 && p.loss < 10);
        CU_ASSERT(p.eta >= p.eta_epoch);
        /* 7674 samples in batches of 32: 240 steps an epoch, every epoch. */
        CU_ASSERT_EQUAL(p.steps, 240);
        CU_ASSERT(p.epoch > last_epoch || (p.epoch == last_epoch && p.step > last_step));
        last_epoch = p.epoch;
        last_step = p.step;
    }
    CU_ASSERT(last_epoch >= EPOCHS - 1);
    /* Not a terminal: the per-step loss lines stay on stderr (and are in the log). */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "INFO] epoch 0 step 10 loss "));
    free(lines);
    free(copy);

    char *log = read_log("plain");
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    int nlines = 0, prefixed = 0;
    for (const char *l = log; *l; nlines++) {
        prefixed += has_log_prefix(l);
        const char *e = strchr(l, '\n');
        if (!e)
            break;
        l = e + 1;
    }
    CU_ASSERT(nlines > 10);
    CU_ASSERT_EQUAL(prefixed, nlines);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "INFO] training "));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "INFO] epoch 0 step 10 loss "));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "INFO] done: "));
    CU_ASSERT_PTR_NULL(strstr(log, "progress epoch=")); /* progress is for stderr */
    free(log);
    free(out);
}

static void test_resume_appends(void)
{
    CU_ASSERT_FATAL(dir[0]);
    char *out = NULL;
    /* First life: stopped after step 300 (epoch 1, 60 steps into it), exit 75. */
    int rc = train(&out, "PSREC_TEST_STOP_AT_STEP=300", "resumed", INTERVAL, "");
    CU_ASSERT_EQUAL_FATAL(rc, 75);
    free(out);
    char *log1 = read_log("resumed");
    CU_ASSERT_PTR_NOT_NULL_FATAL(log1);
    int n1 = count_lines(log1);
    CU_ASSERT(n1 > 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(log1, "preempted"));
    /* A line after (nearly) every step, so the first one shows where the count starts. */
    rc = train(&out, "", "resumed", 0.001, "--resume");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    char *log2 = read_log("resumed");
    CU_ASSERT_PTR_NOT_NULL_FATAL(log2);
    int n2 = count_lines(log2);
    fprintf(stderr, "\n  log lines: %d after the first life, %d after the second", n1, n2);
    CU_ASSERT(n2 > n1);
    CU_ASSERT(strncmp(log2, log1, strlen(log1)) == 0); /* the first life's lines stay */
    CU_ASSERT_PTR_NOT_NULL(strstr(log2 + strlen(log1), "resuming from"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log2 + strlen(log1), "INFO] done: "));
    /* The resumed life counts the cut epoch's steps from where it was cut: 300 - 240 = 60
     * steps of epoch 2 were done. */
    char **lines;
    char *copy = strdup(out);
    int n = progress_lines(copy, &lines);
    CU_ASSERT_FATAL(n >= 1);
    Parsed p;
    CU_ASSERT_FATAL(parse_line(lines[0], &p));
    fprintf(stderr, "\n  first line after the resume: %s", lines[0]);
    CU_ASSERT_EQUAL(p.epoch, 2);
    CU_ASSERT(p.step >= 61 && p.step <= 70);
    for (int i = 0; i < n; i++)
        CU_ASSERT(parse_line(lines[i], &p) && p.step <= p.steps);
    free(lines);
    free(copy);
    free(log1);
    free(log2);
    free(out);
}

static void test_tty_mode(void)
{
    CU_ASSERT_FATAL(dir[0]);
    char *out = NULL;
    int rc = train(&out, "PSREC_PROGRESS=tty", "tty", INTERVAL, "");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\r"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\033[K"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "/240 ("));
    CU_ASSERT_PTR_NULL(strstr(out, "progress epoch="));
    CU_ASSERT_PTR_NULL(strstr(out, " step 10 loss ")); /* detail: the log file only */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "INFO] done: "));
    char *log = read_log("tty");
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "INFO] epoch 0 step 10 loss "));
    CU_ASSERT_PTR_NULL(strstr(log, "\r"));
    free(log);
    free(out);
}

/* The last "what: a/b unit (" of out; 1 when found. */
static int last_meter(const char *out, const char *what, const char *unit,
                      unsigned long long *done, unsigned long long *total)
{
    int found = 0;
    const size_t wn = strlen(what), un = strlen(unit);
    for (const char *p = strstr(out, what); p; p = strstr(p + 1, what)) {
        if (strncmp(p + wn, ": ", 2))
            continue;
        char *e;
        const char *a = p + wn + 2;
        unsigned long long d = strtoull(a, &e, 10);
        if (e == a || *e != '/')
            continue;
        const char *b = e + 1;
        unsigned long long t = strtoull(b, &e, 10);
        if (e == b || *e != ' ' || strncmp(e + 1, unit, un) || strncmp(e + 1 + un, " (", 2))
            continue;
        *done = d;
        *total = t;
        found = 1;
    }
    return found;
}

static void test_prep_eval_meters(void)
{
    CU_ASSERT_FATAL(dir[0]);
    char *out = NULL;
    unsigned long long done = 0, total = 0;
    static const char *const modes[] = {"tty", "plain"};
    /* prep updates its meter every 4096 lines: ~40k behaviors lines, ~10 MB */
    int rc = tu_run(&out, "%s gen --out %s/big --news 1000 --users 2000 --train-impressions "
                          "40000 --dev-impressions 10",
                    TU_PSREC, dir);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    free(out);
    out = NULL;
    for (int m = 0; m < 2; m++) {
        const int tty = m == 0;
        rc = tu_run(&out,
                        "(PSREC_PROGRESS=%s PSREC_TEST_METER_DELAY=0 %s prep --news "
                        "%s/big/train/news.tsv --behaviors %s/big/train/behaviors.tsv "
                        "--out %s/meter-%s.db --title-len 12 --his-len 15 2>&1 >/dev/null)",
                        modes[m], TU_PSREC, dir, dir, dir, modes[m]);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(last_meter(out, "prep", "MB", &done, &total), tty);
        if (tty) {
            CU_ASSERT(total >= 5 && total <= 20);
            CU_ASSERT(done <= total);
            CU_ASSERT_PTR_NOT_NULL(strstr(out, "\033[K"));
        }
        free(out);
        out = NULL;

        rc = tu_run(&out,
                    "(PSREC_PROGRESS=%s PSREC_TEST_METER_DELAY=0 %s eval --ckpt %s/tty/ckpt "
                    "--data %s/dev.db --threads 1 2>&1 >/dev/null)",
                    modes[m], TU_PSREC, dir, dir);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(last_meter(out, "eval: scoring", "impressions", &done, &total), tty);
        if (tty) {
            CU_ASSERT_EQUAL(total, 500); /* the dev split's impressions, in chunks of 256 */
            CU_ASSERT(done >= 256 && done <= total);
            /* the meter is erased before the result lines: the output ends with no meter */
            const char *last_cr = strrchr(out, '\r');
            CU_ASSERT_PTR_NOT_NULL_FATAL(last_cr);
            CU_ASSERT_PTR_NULL(strstr(last_cr, "impressions ("));
        }
        free(out);
        out = NULL;
    }
}

static const TuTest tests[] = {
    {"cadence_fake_clock", test_cadence_fake_clock},
    {"loss_average", test_loss_average},
    {"format_parses", test_format_parses},
    {"plain_lines", test_plain_lines},
    {"resume_appends", test_resume_appends},
    {"tty_mode", test_tty_mode},
    {"prep_eval_meters", test_prep_eval_meters},
    {NULL, NULL},
};

int main(void)
{
    const char *d = tu_mkdtemp("progress");
    if (d && tu_small_experiment(d, 1, "") == 0)
        snprintf(dir, sizeof dir, "%s", d);
    tu_add_suite("progress", tests);
    int rc = tu_run_all();
    if (dir[0])
        tu_rmtree(dir);
    return rc;
}
