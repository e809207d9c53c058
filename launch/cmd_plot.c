/* `psrec plot RUN_DIR [RUN_DIR ...] [--out FILE.png] [--keep-script]`: draw the training loss
 * over steps and the dev AUC and nDCG@10 over epochs of one or more runs into one PNG, three
 * panels of one gnuplot multiplot, every run a curve of its own in each panel.
 *
 * Input: each run dir's metrics.jsonl. Loss lines {"worker","epoch","step","loss",...} and
 * evaluation lines {"epoch","step","auc",...,"ndcg10",...} are used; shard statistics lines
 * {"shard",...} and well-formed lines of other kinds are ignored; a line that is not one flat
 * JSON object, or a loss/evaluation line whose fields are missing or not plain JSON numbers
 * (integers where the field is a count), is skipped and counted, never fatal.
 *
 * Invariants:
 *   - A resumed run appends the lines of its later lives to the same file, so a step (or an
 *     epoch) can appear more than once per worker: the line nearer the end of the file wins,
 *     because it is the one the surviving run continued from.
 *   - The loss curve is, at each logged step, the mean over the workers that logged that step
 *     (each worker's value is already its mean since its previous line).
 *   - Evaluations are plotted at x = epoch + 1 ("epochs completed": the line of epoch 0 is
 *     written after the first epoch).
 *   - The PNG at --out is removed before gnuplot runs, so a file found there afterwards with
 *     a PNG signature is this run's.
 *
 * Not here: rendering (gnuplot does it, pngcairo when it has it, else png); reading any file
 * of the run dir besides metrics.jsonl and config.effective (for run.name). */
#include "common/config.h"
#include "common/error.h"
#include "launch/commands.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Image size in pixels; tests check the IHDR against it loosely. */
enum { PLOT_WIDTH = 1000, PLOT_HEIGHT = 1100 };

static void plot_usage(FILE *f)
{
    fprintf(f,
            "usage: psrec plot RUN_DIR [RUN_DIR ...] [--out FILE.png] [--keep-script]\n\n"
            "Draw one PNG (%dx%d) from each RUN_DIR's metrics.jsonl, three panels:\n"
            "  training loss over steps: at each logged step, the mean over the workers that\n"
            "    logged it (each value being that worker's mean loss since its previous line);\n"
            "  dev AUC and dev nDCG@10 over epochs completed (the evaluation after each epoch;\n"
            "    none without data.dev).\n"
            "Several RUN_DIRs overlay in every panel, each labelled with run.name from its\n"
            "config.effective, or the directory's name when run.name is empty. Lines of a\n"
            "resumed run's later lives replace the earlier lives' lines for the same step.\n"
            "Malformed lines are skipped and counted; shard statistics lines are ignored.\n\n"
            "  --out FILE.png  where to write (default RUN_DIR/plot.png for one run dir,\n"
            "                  ./plot.png for several); its path is printed on stdout\n"
            "  --keep-script   keep the generated gnuplot script and data files and print\n"
            "                  where (`gnuplot DIR/plot.gp` draws the PNG again)\n"
            "  -h, --help      this text\n\n"
            "Needs gnuplot (Debian/Ubuntu: apt-get install gnuplot-nox).\n"
            "Exit code: 0 written, 1 failed (no gnuplot, no metrics.jsonl, gnuplot error),\n"
            "2 usage error.\n",
            PLOT_WIDTH, PLOT_HEIGHT);
}

/* ---- one flat JSON object per line ---- */

enum { K_WORKER, K_EPOCH, K_STEP, K_LOSS, K_AUC, K_NDCG10, K_SHARD, K_COUNT };
static const char *const line_keys[K_COUNT] = {"worker", "epoch", "step", "loss",
                                               "auc",    "ndcg10", "shard"};

typedef struct LineFields {
    int has[K_COUNT];
    double num[K_COUNT];    /* every field we read is a JSON number */
    int is_count[K_COUNT];  /* the number is a plain non-negative integer ... */
    uint64_t count[K_COUNT]; /* ... and this is its value */
} LineFields;

static void skip_ws(const char **p)
{
    while (**p == ' ' || **p == '\t' || **p == '\r' || **p == '\n')
        (*p)++;
}

/* A JSON string at *p (after the opening quote is checked here); copies up to size-1 bytes of
 * its raw text into out (escapes are not decoded: our keys have none). 0 or -1. */
static int scan_string(const char **p, char *out, size_t size)
{
    const char *s = *p;
    if (*s++ != '"')
        return -1;
    size_t n = 0;
    for (; *s != '"'; s++) {
        if ((unsigned char)*s < 0x20)
            return -1; /* also the end of the text */
        if (*s == '\\' && (unsigned char)*++s < 0x20)
            return -1;
        if (n + 1 < size)
            out[n++] = *s;
    }
    if (size)
        out[n] = '\0';
    *p = s + 1;
    return 0;
}

/* A JSON number at *p, by the JSON grammar (no "nan", "inf", "+1", "1.", ".5", hex). Sets
 * *v (finite), and *is_count / *count when it is a non-negative integer that fits. 0 or -1. */
static int scan_number(const char **p, double *v, int *is_count, uint64_t *count)
{
    const char *s = *p, *start = s;
    int integer = 1;
    if (*s == '-') {
        s++;
        integer = 0;
    }
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return -1;
    if (*s == '.') {
        integer = 0;
        if (!(*++s >= '0' && *s <= '9'))
            return -1;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        integer = 0;
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return -1;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    char tok[64];
    size_t len = (size_t)(s - start);
    if (len >= sizeof tok)
        return -1;
    memcpy(tok, start, len);
    tok[len] = '\0';
    char *end;
    errno = 0;
    double d = strtod(tok, &end);
    if (*end || !isfinite(d))
        return -1;
    *v = d;
    *is_count = 0;
    if (integer) {
        errno = 0;
        unsigned long long u = strtoull(tok, &end, 10);
        if (!*end && errno != ERANGE) {
            *is_count = 1;
            *count = u;
        }
    }
    *p = s;
    return 0;
}

/* Parse one line as a flat JSON object (string, number, true, false or null values). The keys
 * of line_keys must hold numbers and appear at most once; other keys are skipped. 0 or -1. */
static int parse_line(const char *line, LineFields *lf)
{
    memset(lf, 0, sizeof *lf);
    const char *p = line;
    skip_ws(&p);
    if (*p++ != '{')
        return -1;
    skip_ws(&p);
    if (*p == '}') {
        p++;
        goto tail;
    }
    for (;;) {
        char key[32];
        if (scan_string(&p, key, sizeof key))
            return -1;
        skip_ws(&p);
        if (*p++ != ':')
            return -1;
        skip_ws(&p);
        int k = 0;
        while (k < K_COUNT && strcmp(key, line_keys[k]))
            k++;
        if (k < K_COUNT) {
            if (lf->has[k] || scan_number(&p, &lf->num[k], &lf->is_count[k], &lf->count[k]))
                return -1;
            lf->has[k] = 1;
        } else if (*p == '"') {
            char ignored[1];
            if (scan_string(&p, ignored, sizeof ignored))
                return -1;
        } else if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4)) {
            p += 4;
        } else if (!strncmp(p, "false", 5)) {
            p += 5;
        } else {
            double v;
            int c;
            uint64_t u;
            if (scan_number(&p, &v, &c, &u))
                return -1; /* nested objects and arrays are not in our lines either */
        }
        skip_ws(&p);
        if (*p == '}') {
            p++;
            break;
        }
        if (*p++ != ',')
            return -1;
        skip_ws(&p);
    }
tail:
    skip_ws(&p);
    return *p ? -1 : 0;
}

/* ---- one run ---- */

typedef struct LossPoint {
    uint64_t step;
    uint64_t line; /* line number in metrics.jsonl: later lines win */
    uint32_t worker;
    double loss;
} LossPoint;

typedef struct EvalPoint {
    uint64_t epoch;
    uint64_t line;
    double auc, ndcg10;
} EvalPoint;

typedef struct PlotRun {
    const char *dir;   /* borrowed from argv */
    char label[300];   /* run.name or the directory's name, made unique among the runs */
    LossPoint *loss;   /* after plot_reduce: one point per step, worker unused, step order */
    size_t nloss;
    EvalPoint *eval;   /* after plot_reduce: one point per epoch, epoch order */
    size_t neval;
    uint64_t skipped;  /* malformed lines */
    uint64_t first_bad;
} PlotRun;

/* a with room for one more element after n (doubling); NULL when out of memory (a stays). */
static void *grow(void *a, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return a;
    size_t c = *cap ? 2 * *cap : 256;
    void *b = realloc(a, c * elem);
    if (b)
        *cap = c;
    return b;
}

/* Read dir/metrics.jsonl into r (raw points, in file order). */
static int plot_read(PlotRun *r)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/metrics.jsonl", r->dir) >= (int)sizeof path)
        return psrec_errf(PSREC_E_RANGE, "%s: path too long", r->dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        return psrec_errf(e == ENOENT ? PSREC_E_NOTFOUND : e, "%s: %s%s", path, strerror(e),
                          e == ENOENT
                              ? " (is it a run dir? `psrec train` writes run.dir/metrics.jsonl)"
                              : "");
    }
    char *line = NULL;
    size_t linecap = 0, cap_loss = 0, cap_eval = 0;
    uint64_t lineno = 0;
    int rc = 0;
    while (getline(&line, &linecap, f) >= 0) {
        lineno++;
        const char *s = line;
        skip_ws(&s);
        if (!*s)
            continue;
        LineFields lf;
        int bad = parse_line(line, &lf);
        if (!bad && lf.has[K_SHARD])
            continue;
        if (!bad && lf.has[K_WORKER]) {
            bad = !(lf.is_count[K_WORKER] && lf.count[K_WORKER] <= UINT32_MAX &&
                    lf.is_count[K_STEP] && lf.has[K_LOSS]);
            if (!bad) {
                LossPoint *a = grow(r->loss, r->nloss, &cap_loss, sizeof *a);
                if (!a) {
                    rc = psrec_errf(PSREC_E_NOMEM, "%s: out of memory", path);
                    goto out;
                }
                r->loss = a;
                r->loss[r->nloss++] = (LossPoint){.step = lf.count[K_STEP],
                                                  .line = lineno,
                                                  .worker = (uint32_t)lf.count[K_WORKER],
                                                  .loss = lf.num[K_LOSS]};
            }
        } else if (!bad && lf.has[K_AUC]) {
            bad = !(lf.is_count[K_EPOCH] && lf.count[K_EPOCH] < UINT64_MAX &&
                    lf.has[K_NDCG10]);
            if (!bad) {
                EvalPoint *a = grow(r->eval, r->neval, &cap_eval, sizeof *a);
                if (!a) {
                    rc = psrec_errf(PSREC_E_NOMEM, "%s: out of memory", path);
                    goto out;
                }
                r->eval = a;
                r->eval[r->neval++] = (EvalPoint){.epoch = lf.count[K_EPOCH],
                                                  .line = lineno,
                                                  .auc = lf.num[K_AUC],
                                                  .ndcg10 = lf.num[K_NDCG10]};
            }
        }
        if (bad && !r->skipped++)
            r->first_bad = lineno;
    }
    if (ferror(f))
        rc = psrec_errf(EIO, "%s: read error", path);
out:
    free(line);
    fclose(f);
    return rc;
}

static int loss_cmp(const void *a, const void *b)
{
    const LossPoint *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    if (x->worker != y->worker)
        return x->worker < y->worker ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

static int eval_cmp(const void *a, const void *b)
{
    const EvalPoint *x = a, *y = b;
    if (x->epoch != y->epoch)
        return x->epoch < y->epoch ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* Keep the last line of each (step, worker) and of each epoch; average the workers of a step.
 * In place: r->loss becomes one point per step (loss = the mean). */
static void plot_reduce(PlotRun *r)
{
    if (r->nloss > 1)
        qsort(r->loss, r->nloss, sizeof *r->loss, loss_cmp);
    size_t out = 0;
    for (size_t i = 0; i < r->nloss;) {
        uint64_t step = r->loss[i].step;
        double sum = 0;
        unsigned workers = 0;
        for (; i < r->nloss && r->loss[i].step == step; i++)
            if (i + 1 == r->nloss || r->loss[i + 1].step != step ||
                r->loss[i + 1].worker != r->loss[i].worker) {
                sum += r->loss[i].loss; /* the last line of this worker at this step */
                workers++;
            }
        r->loss[out++] = (LossPoint){.step = step, .loss = sum / workers};
    }
    r->nloss = out;
    if (r->neval > 1) /* (qsort of a NULL array is undefined even for 0 elements) */
        qsort(r->eval, r->neval, sizeof *r->eval, eval_cmp);
    out = 0;
    for (size_t i = 0; i < r->neval; i++)
        if (i + 1 == r->neval || r->eval[i + 1].epoch != r->eval[i].epoch)
            r->eval[out++] = r->eval[i];
    r->neval = out;
}

/* run.name from dir/config.effective, else the directory's own name. Control characters
 * become '?' (the label goes into a gnuplot string and one legend line). */
static void plot_label(PlotRun *r)
{
    char path[PATH_MAX];
    r->label[0] = '\0';
    Config *cfg = malloc(sizeof *cfg);
    if (cfg && snprintf(path, sizeof path, "%s/config.effective", r->dir) < (int)sizeof path &&
        access(path, F_OK) == 0) {
        config_defaults(cfg);
        if (config_load_file(cfg, path) == 0)
            snprintf(r->label, sizeof r->label, "%s", cfg->run.name);
        else
            fprintf(stderr, "psrec plot: %s (labelling the run by its directory name)\n",
                    psrec_errmsg());
    }
    free(cfg);
    if (!r->label[0]) {
        char real[PATH_MAX];
        const char *d = realpath(r->dir, real) ? real : r->dir;
        size_t len = strlen(d);
        while (len > 1 && d[len - 1] == '/')
            len--;
        size_t start = len;
        while (start > 0 && d[start - 1] != '/')
            start--;
        if (start == len) /* "/" */
            snprintf(r->label, sizeof r->label, "%.*s", (int)(sizeof r->label - 1), d);
        else
            snprintf(r->label, sizeof r->label, "%.*s", (int)(len - start), d + start);
    }
    for (char *c = r->label; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
}

/* ---- gnuplot ---- */

/* s as a gnuplot single-quoted string (no escapes inside; a quote is doubled). */
static void gp_string(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

static int write_data(const char *tmp, size_t i, const PlotRun *r)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/run%zu-loss.dat", tmp, i) >= (int)sizeof path)
        return psrec_errf(ENAMETOOLONG, "%s: path too long", tmp);
    FILE *f = fopen(path, "w");
    if (!f)
        return psrec_errf(errno, "%s: %s", path, strerror(errno));
    fprintf(f, "# step  mean loss over the workers that logged the step\n");
    for (size_t k = 0; k < r->nloss; k++)
        fprintf(f, "%llu %.9g\n", (unsigned long long)r->loss[k].step, r->loss[k].loss);
    if (fclose(f))
        return psrec_errf(errno, "%s: %s", path, strerror(errno));
    if (snprintf(path, sizeof path, "%s/run%zu-eval.dat", tmp, i) >= (int)sizeof path)
        return psrec_errf(ENAMETOOLONG, "%s: path too long", tmp);
    if (!(f = fopen(path, "w")))
        return psrec_errf(errno, "%s: %s", path, strerror(errno));
    fprintf(f, "# epochs_completed  auc  ndcg10\n");
    for (size_t k = 0; k < r->neval; k++)
        fprintf(f, "%llu %.9g %.9g\n", (unsigned long long)r->eval[k].epoch + 1, r->eval[k].auc,
                r->eval[k].ndcg10);
    if (fclose(f))
        return psrec_errf(errno, "%s: %s", path, strerror(errno));
    return 0;
}

/* One panel: every run with points gets a curve (colour = its index, the same in every
 * panel); a panel no run has data for says so instead of failing in gnuplot. */
static void write_panel(FILE *f, const char *tmp, const PlotRun *runs, size_t n, int eval,
                        int column, const char *title, const char *xlabel, const char *ylabel,
                        const char *empty)
{
    fprintf(f, "set title ");
    gp_string(f, title);
    fprintf(f, "\nset xlabel ");
    gp_string(f, xlabel);
    fprintf(f, "\nset ylabel ");
    gp_string(f, ylabel);
    fputc('\n', f);
    uint64_t max_epoch = 0;
    size_t curves = 0;
    for (size_t i = 0; i < n; i++) {
        size_t points = eval ? runs[i].neval : runs[i].nloss;
        if (eval && points)
            max_epoch = runs[i].eval[points - 1].epoch + 1 > max_epoch
                            ? runs[i].eval[points - 1].epoch + 1
                            : max_epoch;
        curves += points > 0;
    }
    /* Whole epochs only; gnuplot's own tics would put 1.5 epochs between two evaluations. */
    if (eval && max_epoch <= 20)
        fprintf(f, "set xtics 1\nset xrange [0.5:%llu.5]\n", (unsigned long long)max_epoch);
    else
        fprintf(f, "set xtics autofreq\nset autoscale x\n");
    if (!curves) {
        fprintf(f, "set label 1 ");
        gp_string(f, empty);
        fprintf(f, " at graph 0.5,0.5 center\nplot [0:1][0:1] -1 notitle\nunset label 1\n");
        return;
    }
    const char *sep = "plot ";
    for (size_t i = 0; i < n; i++) {
        size_t points = eval ? runs[i].neval : runs[i].nloss;
        if (!points)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/run%zu-%s.dat", tmp, i, eval ? "eval" : "loss");
        fprintf(f, "%s", sep);
        gp_string(f, path);
        fprintf(f, " using 1:%d with %s lw 2 lc %zu title ", column,
                eval || points == 1 ? "linespoints pt 7 ps 1" : "lines", i + 1);
        gp_string(f, runs[i].label);
        sep = ", \\\n     ";
    }
    fputc('\n', f);
}

static int write_script(const char *script, const char *tmp, const PlotRun *runs, size_t n,
                        const char *out)
{
    FILE *f = fopen(script, "w");
    if (!f)
        return psrec_errf(errno, "%s: %s", script, strerror(errno));
    fprintf(f, "# Written by `psrec plot`; the data files are beside it.\n"
               "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
               "    set terminal pngcairo size %d,%d noenhanced font 'sans,10'\n"
               "} else {\n"
               "    set terminal png size %d,%d noenhanced\n"
               "}\n"
               "set output ",
            PLOT_WIDTH, PLOT_HEIGHT, PLOT_WIDTH, PLOT_HEIGHT);
    gp_string(f, out);
    fprintf(f, "\nset multiplot layout 3,1 title 'psrec: %zu run%s'\n"
               "set grid\nset key top right\nset ytics autofreq\n",
            n, n == 1 ? "" : "s");
    write_panel(f, tmp, runs, n, 0, 2,
                "training loss (mean over the workers that logged each step)", "step", "loss",
                "no loss lines in metrics.jsonl");
    write_panel(f, tmp, runs, n, 1, 2, "dev AUC after each epoch", "epochs completed", "AUC",
                "no dev evaluations in metrics.jsonl (data.dev not set?)");
    write_panel(f, tmp, runs, n, 1, 3, "dev nDCG@10 after each epoch", "epochs completed",
                "nDCG@10", "no dev evaluations in metrics.jsonl (data.dev not set?)");
    fprintf(f, "unset multiplot\nset output\n");
    if (fclose(f))
        return psrec_errf(errno, "%s: %s", script, strerror(errno));
    return 0;
}

/* Full path of an executable named name in $PATH, into out. 0 or PSREC_E_NOTFOUND. */
static int find_on_path(const char *name, char *out, size_t size)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");
        /* An empty entry means the current directory. */
        if (snprintf(out, size, "%.*s/%s", (int)len, len ? path : ".", name) < (int)size &&
            access(out, X_OK) == 0)
            return 0;
        path += len;
        if (*path == ':')
            path++;
    }
    return PSREC_E_NOTFOUND;
}

/* Run gnuplot on script; its stdout goes to our stderr (our stdout is the PNG's path only). */
static int run_gnuplot(const char *gnuplot, const char *script)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return psrec_errf(errno, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(STDERR_FILENO, STDOUT_FILENO);
        execl(gnuplot, "gnuplot", script, (char *)NULL);
        fprintf(stderr, "psrec plot: cannot run %s: %s\n", gnuplot, strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return psrec_errf(errno, "waitpid: %s", strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        return psrec_errf(PSREC_E_STATE, "gnuplot was killed by signal %d", WTERMSIG(status));
    return psrec_errf(PSREC_E_STATE, "gnuplot failed (exit code %d) on %s", WEXITSTATUS(status),
                      script);
}

/* The file at path starts with the PNG signature and an IHDR chunk. */
static int check_png(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char head[16];
    FILE *f = fopen(path, "rb");
    if (!f)
        return psrec_errf(PSREC_E_NOTFOUND, "gnuplot wrote no %s", path);
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    if (got < sizeof head || memcmp(head, sig, 8) || memcmp(head + 12, "IHDR", 4))
        return psrec_errf(PSREC_E_FORMAT, "%s: not a PNG image (gnuplot's output)", path);
    return 0;
}

static void remove_tmp(const char *tmp, size_t n)
{
    char path[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        if (snprintf(path, sizeof path, "%s/run%zu-loss.dat", tmp, i) < (int)sizeof path)
            unlink(path);
        if (snprintf(path, sizeof path, "%s/run%zu-eval.dat", tmp, i) < (int)sizeof path)
            unlink(path);
    }
    if (snprintf(path, sizeof path, "%s/plot.gp", tmp) < (int)sizeof path)
        unlink(path);
    rmdir(tmp);
}

int cmd_plot(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},
        {"keep-script", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    int keep = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'k':
            keep = 1;
            break;
        case 'h':
            plot_usage(stdout);
            return EXIT_OK;
        default:
            plot_usage(stderr);
            return EXIT_USAGE;
        }
    }
    size_t n = (size_t)(argc - optind);
    if (n == 0 || (out && !*out)) {
        fprintf(stderr, "psrec plot: %s\n\n", n ? "--out is empty" : "no RUN_DIR given");
        plot_usage(stderr);
        return EXIT_USAGE;
    }

    int rc = EXIT_FAIL, made_tmp = 0;
    char outbuf[PATH_MAX], absout[PATH_MAX], tmp[PATH_MAX] = "", script[PATH_MAX];
    PlotRun *runs = calloc(n, sizeof *runs);
    if (!runs) {
        fprintf(stderr, "psrec plot: out of memory\n");
        return EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        runs[i].dir = argv[optind + (int)i];
        if (plot_read(&runs[i])) {
            fprintf(stderr, "psrec plot: %s\n", psrec_errmsg());
            goto out;
        }
        if (runs[i].skipped)
            fprintf(stderr,
                    "psrec plot: %s/metrics.jsonl: skipped %llu malformed line(s), the first "
                    "at line %llu\n",
                    runs[i].dir, (unsigned long long)runs[i].skipped,
                    (unsigned long long)runs[i].first_bad);
        if (!runs[i].nloss && !runs[i].neval)
            fprintf(stderr, "psrec plot: %s/metrics.jsonl: no loss or evaluation lines yet\n",
                    runs[i].dir);
        plot_reduce(&runs[i]);
        plot_label(&runs[i]);
    }
    /* Two runs with one name (both "demo") would be two legend entries alike. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (i != j && !strcmp(runs[i].label, runs[j].label)) {
                char l[sizeof runs[i].label];
                snprintf(l, sizeof l, "%.150s (%.140s)", runs[i].label, runs[i].dir);
                memcpy(runs[i].label, l, sizeof l);
                break;
            }

    char gnuplot[PATH_MAX];
    if (find_on_path("gnuplot", gnuplot, sizeof gnuplot)) {
        fprintf(stderr, "psrec plot: gnuplot not found on PATH; install it with\n"
                        "  apt-get install gnuplot-nox    (Debian/Ubuntu, as root)\n");
        goto out;
    }
    if (!out) {
        if (n == 1 && snprintf(outbuf, sizeof outbuf, "%s/plot.png", runs[0].dir) >=
                          (int)sizeof outbuf) {
            fprintf(stderr, "psrec plot: %s: path too long\n", runs[0].dir);
            goto out;
        }
        out = n == 1 ? outbuf : "plot.png";
    }
    /* Fail here with a clear reason rather than in gnuplot ("cannot open file"); and never
     * leave an older PNG at out to pass for this one. */
    FILE *probe = fopen(out, "wb");
    if (!probe) {
        fprintf(stderr, "psrec plot: cannot write %s: %s\n", out, strerror(errno));
        goto out;
    }
    fclose(probe);
    unlink(out);
    /* The script names the PNG by an absolute path, so a kept script draws it again from any
     * working directory. */
    char cwd[PATH_MAX];
    if (out[0] != '/' &&
        (!getcwd(cwd, sizeof cwd) ||
         snprintf(absout, sizeof absout, "%s/%s", cwd, out) >= (int)sizeof absout)) {
        fprintf(stderr, "psrec plot: %s: path too long\n", out);
        goto out;
    }
    if (out[0] == '/')
        snprintf(absout, sizeof absout, "%s", out);

    const char *tmpdir = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/psrec-plot-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "psrec plot: cannot make a temporary directory %s: %s\n", tmp,
                strerror(errno));
        goto out;
    }
    made_tmp = 1;
    if (snprintf(script, sizeof script, "%s/plot.gp", tmp) >= (int)sizeof script) {
        fprintf(stderr, "psrec plot: %s: path too long\n", tmp);
        goto out;
    }
    int err = 0;
    for (size_t i = 0; i < n && !err; i++)
        err = write_data(tmp, i, &runs[i]);
    if (err || (err = write_script(script, tmp, runs, n, absout)) ||
        (err = run_gnuplot(gnuplot, script)) || (err = check_png(out))) {
        fprintf(stderr, "psrec plot: %s\n", psrec_errmsg());
        keep = 1; /* the script and data explain what went wrong */
        goto out;
    }
    printf("%s\n", out);
    rc = EXIT_OK;
out:
    if (made_tmp && keep)
        fprintf(stderr, "psrec plot: gnuplot script kept: %s\n", script);
    else if (made_tmp)
        remove_tmp(tmp, n);
    for (size_t i = 0; i < n; i++) {
        free(runs[i].loss);
        free(runs[i].eval);
    }
    free(runs);
    return rc;
}
