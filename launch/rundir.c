/* A run directory's ownership (flock on run.dir/.lock), the fresh-start check with --force,
 * and summary.json (see rundir.h).
 *
 * Invariants: --force deletes only names on the fixed lists below (run files in run.dir;
 * step-* directories and LATEST in the checkpoint root) and logs each one; everything else is
 * named and kept. summary.json is only ever replaced by rename, so a reader sees the old or
 * the new file, never a half-written one; the reader accepts exactly what the writer emits
 * (any order and whitespace, each key once), so a damaged file is an error, not zeros.
 *
 * Not here: whether a checkpoint is valid (launch/ckptdir), who in an MPI job takes the lock
 * (the caller: one rank per run dir). */
#include "launch/rundir.h"

#include "common/error.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- ownership ---- */

struct RunDirLock {
    int fd; /* open on dir/.lock, flock()ed exclusively */
};

/* The holder writes its "host pid\n" just after taking the lock, so a loser may read an empty
 * file for a moment: retry briefly before giving up on naming the holder. */
static void read_holder(int fd, char *host, size_t hn, long *pid)
{
    snprintf(host, hn, "?");
    *pid = -1;
    for (int tries = 0; tries < 50; tries++) {
        char buf[512];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = '\0';
            char h[256];
            long p;
            if (memchr(buf, '\n', (size_t)n) && sscanf(buf, "%255s %ld", h, &p) == 2) {
                snprintf(host, hn, "%s", h);
                *pid = p;
                return;
            }
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int rundir_lock(const char *dir, RunDirLock **out)
{
    *out = NULL;
    int rc = fs_mkdir_p(dir);
    if (rc)
        return rc;
    char path[4200];
    if (snprintf(path, sizeof path, "%s/.lock", dir) >= (int)sizeof path)
        return psrec_errf(ENAMETOOLONG, "run.dir %s: path too long", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return psrec_errf(errno, "%s: cannot open: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            char host[256];
            long pid;
            read_holder(fd, host, sizeof host, &pid);
            close(fd);
            if (pid < 0)
                return psrec_errf(EBUSY, "run.dir %s is in use by another process (%s names "
                                         "no holder); wait for it or use another run.dir",
                                  dir, path);
            return psrec_errf(EBUSY, "run.dir %s is in use by pid %ld on host %s; wait for it "
                                     "or use another run.dir", dir, pid, host);
        }
        close(fd);
        return psrec_errf(e, "%s: cannot lock: %s", path, strerror(e));
    }
    char host[256] = "?";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    char text[320];
    int n = snprintf(text, sizeof text, "%s %ld\n", host, (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
        int e = errno ? errno : EIO;
        close(fd);
        return psrec_errf(e, "%s: cannot write: %s", path, strerror(e));
    }
    RunDirLock *l = malloc(sizeof *l);
    if (!l) {
        close(fd);
        return psrec_errf(PSREC_E_NOMEM, "run.dir lock: out of memory");
    }
    l->fd = fd;
    *out = l;
    return 0;
}

void rundir_unlock(RunDirLock **lock)
{
    if (!lock || !*lock)
        return;
    /* Closing the only descriptor of the open file drops the flock. */
    close((*lock)->fd);
    free(*lock);
    *lock = NULL;
}

/* ---- fresh start, --force ---- */

/* Files of a run in run.dir. "log" is the run's log file when one is kept there. */
static const char *const run_files[] = {"config.effective", "metrics.jsonl", "summary.json",
                                        "log"};
/* The subset whose presence means the dir holds a run. */
static const char *const run_markers[] = {"config.effective", "metrics.jsonl", "summary.json"};

static int is_step_name(const char *name)
{
    return strncmp(name, "step-", 5) == 0;
}

/* Number of step-* entries in root (0 when root does not exist). */
static int count_steps(const char *root)
{
    DIR *d = opendir(root);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += is_step_name(e->d_name);
    closedir(d);
    return n;
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static int in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(name, list[i]))
            return 1;
    return 0;
}

/* Delete the checkpoint root's step-* directories and LATEST; keep and name anything else. */
static int force_ckpt_root(const char *root)
{
    DIR *d = opendir(root);
    if (!d)
        return errno == ENOENT ? 0 : psrec_errf(errno, "%s: %s", root, strerror(errno));
    int rc = 0;
    struct dirent *e;
    char p[4400];
    while ((e = readdir(d)) && !rc) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", root, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        if (is_step_name(e->d_name) && S_ISDIR(st.st_mode)) {
            LOG_WARN("--force: deleting %s/", p);
            rc = fs_remove_flat_dir(p);
        } else if (!strcmp(e->d_name, "LATEST") && !S_ISDIR(st.st_mode)) {
            LOG_WARN("--force: deleting %s", p);
            if (unlink(p) != 0)
                rc = psrec_errf(errno, "--force: %s: cannot delete: %s", p, strerror(errno));
        } else {
            LOG_WARN("--force: keeping %s (not a file psrec writes)", p);
        }
    }
    closedir(d);
    return rc;
}

/* Delete the run files in dir; keep and name anything else (the lock file and the checkpoint
 * root are ours and handled elsewhere). */
static int force_run_files(const char *dir, const char *ckpt_root)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : psrec_errf(errno, "%s: %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *e;
    char p[4400];
    while ((e = readdir(d)) && !rc) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, ".lock"))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        if (in_list(e->d_name, run_files, sizeof run_files / sizeof run_files[0]) &&
            !S_ISDIR(st.st_mode)) {
            LOG_WARN("--force: deleting %s", p);
            if (unlink(p) != 0)
                rc = psrec_errf(errno, "--force: %s: cannot delete: %s", p, strerror(errno));
        } else if (!same_file(p, ckpt_root)) {
            LOG_WARN("--force: keeping %s (not a file psrec writes)", p);
        }
    }
    closedir(d);
    return rc;
}

int rundir_check_fresh(const char *dir, const char *ckpt_root, int resume, int force)
{
    if (resume && force)
        return psrec_errf(PSREC_E_USAGE, "--resume continues the run in %s and --force deletes "
                                         "it: give one of them", dir);
    /* What makes the dir hold a run, for the message. */
    char found[4400] = "";
    char p[4400];
    for (size_t i = 0; i < sizeof run_markers / sizeof run_markers[0] && !found[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, run_markers[i]);
        if (access(p, F_OK) == 0)
            snprintf(found, sizeof found, "%s", p);
    }
    int steps = count_steps(ckpt_root);
    if (!found[0] && steps)
        snprintf(found, sizeof found, "%s/step-*", ckpt_root);
    if (!found[0] || resume)
        return 0;
    if (!force)
        return psrec_errf(PSREC_E_STATE, "run.dir %s already holds a run (%s exists); continue "
                                         "it with --resume, or delete it and start over with "
                                         "--force", dir, found);
    /* The checkpoint first: if a deletion fails there, the run files still mark the dir. */
    int rc = force_ckpt_root(ckpt_root);
    if (!rc)
        rc = force_run_files(dir, ckpt_root);
    return rc;
}

/* ---- summary.json: writing ---- */

const char *rundir_status_name(RunStatus s)
{
    switch (s) {
    case RUN_STATUS_COMPLETED:
        return "completed";
    case RUN_STATUS_PREEMPTED:
        return "preempted";
    case RUN_STATUS_FAILED:
        return "failed";
    }
    return "?";
}

/* A JSON string: quotes, backslashes and control characters escaped; other bytes (UTF-8 text)
 * as they are. */
static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\b':
            fputs("\\b", f);
            break;
        case '\f':
            fputs("\\f", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* The shortest of %.15g / %.17g that reads back to the same double (JSON has no nan/inf:
 * those are null). */
static void put_double(FILE *f, double v)
{
    if (!isfinite(v)) {
        fputs("null", f);
        return;
    }
    char buf[40];
    snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, sizeof buf, "%.17g", v);
    fputs(buf, f);
}

static int terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

int rundir_write_summary(const char *dir, const RunSummary *s)
{
    if (s->n_lost_workers > RUNDIR_LOST_MAX || !terminated(s->run_name, sizeof s->run_name) ||
        !terminated(s->checkpoint, sizeof s->checkpoint))
        return psrec_errf(PSREC_E_RANGE, "summary.json: lost_workers or a string field out of "
                                         "range");
    char path[4200], tmp[4300];
    if (snprintf(path, sizeof path, "%s/summary.json", dir) >= (int)sizeof path)
        return psrec_errf(ENAMETOOLONG, "run.dir %s: path too long", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return psrec_errf(errno, "%s: cannot create: %s", tmp, strerror(errno));
    int rc = 0;
    fputs("{\n  \"run_name\": ", f);
    put_string(f, s->run_name);
    fputs(",\n  \"status\": ", f);
    put_string(f, rundir_status_name(s->status));
    fprintf(f, ",\n  \"steps\": %" PRIu64 ",\n  \"epochs\": %" PRIu64 ",\n  \"samples\": %" PRIu64
               ",\n  \"wall_s\": ",
            s->steps, s->epochs, s->samples);
    put_double(f, s->wall_s);
    fputs(",\n  \"samples_per_s\": ", f);
    put_double(f, s->samples_per_s);
    fprintf(f, ",\n  \"restarts\": %" PRIu32 ",\n  \"resumed_from_step\": ", s->restarts);
    if (s->resumed_from_step < 0)
        fputs("null", f);
    else
        fprintf(f, "%" PRId64, s->resumed_from_step);
    fputs(",\n  \"lost_workers\": [", f);
    for (uint32_t i = 0; i < s->n_lost_workers; i++)
        fprintf(f, "%s%d", i ? ", " : "", s->lost_workers[i]);
    fputs("],\n  \"dev\": ", f);
    if (s->has_dev) {
        fputs("{\"auc\": ", f);
        put_double(f, s->dev.auc);
        fputs(", \"mrr\": ", f);
        put_double(f, s->dev.mrr);
        fputs(", \"ndcg5\": ", f);
        put_double(f, s->dev.ndcg5);
        fputs(", \"ndcg10\": ", f);
        put_double(f, s->dev.ndcg10);
        fputs("}", f);
    } else {
        fputs("null", f);
    }
    fputs(",\n  \"checkpoint\": ", f);
    if (s->checkpoint[0])
        put_string(f, s->checkpoint);
    else
        fputs("null", f);
    fprintf(f, ",\n  \"checkpoint_failures\": %" PRIu32, s->checkpoint_failures);
    fputs("\n}\n", f);
    if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0)
        rc = psrec_errf(errno ? errno : EIO, "%s: cannot write: %s", tmp,
                        strerror(errno ? errno : EIO));
    if (fclose(f) != 0 && !rc)
        rc = psrec_errf(errno, "%s: cannot write: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = psrec_errf(errno, "%s: cannot rename into place: %s", path, strerror(errno));
    if (rc) {
        unlink(tmp);
        return rc;
    }
    /* The rename is durable only once the directory is synced. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* ---- summary.json: reading ---- */

typedef struct Parser {
    const char *s;
    size_t n, i;
    const char *path;
} Parser;

static int perr(Parser *p, const char *what)
{
    if (p->i >= p->n)
        return psrec_errf(PSREC_E_PARSE, "%s: ends early (truncated?): expected %s", p->path,
                          what);
    return psrec_errf(PSREC_E_PARSE, "%s: byte %zu: expected %s", p->path, p->i, what);
}

static void skip_ws(Parser *p)
{
    while (p->i < p->n && strchr(" \t\r\n", p->s[p->i]) && p->s[p->i])
        p->i++;
}

static int expect(Parser *p, char c, const char *what)
{
    skip_ws(p);
    if (p->i >= p->n || p->s[p->i] != c)
        return perr(p, what);
    p->i++;
    return 0;
}

/* The literal null: returns 1 (consumed), 0 (something else follows). */
static int take_null(Parser *p)
{
    skip_ws(p);
    if (p->n - p->i >= 4 && !memcmp(p->s + p->i, "null", 4)) {
        p->i += 4;
        return 1;
    }
    return 0;
}

static int hex4(Parser *p, unsigned *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++, p->i++) {
        if (p->i >= p->n)
            return perr(p, "4 hex digits after \\u");
        char c = p->s[p->i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16)
            return perr(p, "4 hex digits after \\u");
        *v = *v * 16 + d;
    }
    return 0;
}

/* A JSON string into out (cap bytes with the NUL); \u escapes become UTF-8, \u0000 and lone
 * surrogates are refused (a C string cannot hold the one, the writer never makes the other). */
static int parse_string(Parser *p, char *out, size_t cap)
{
    int rc = expect(p, '"', "a string");
    if (rc)
        return rc;
    size_t o = 0;
    for (;;) {
        if (p->i >= p->n)
            return perr(p, "the end of the string");
        unsigned char c = (unsigned char)p->s[p->i++];
        unsigned char enc[4];
        size_t len = 1;
        if (c == '"')
            break;
        if (c < 0x20) {
            p->i--;
            return perr(p, "an escaped control character");
        }
        enc[0] = c;
        if (c == '\\') {
            if (p->i >= p->n)
                return perr(p, "an escape");
            char e = p->s[p->i++];
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *hit = e ? strchr(from, e) : NULL;
            if (hit) {
                enc[0] = (unsigned char)to[hit - from];
            } else if (e == 'u') {
                unsigned u;
                if ((rc = hex4(p, &u)))
                    return rc;
                if (u >= 0xD800 && u <= 0xDBFF) {
                    unsigned lo;
                    if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
                        return perr(p, "a low surrogate");
                    p->i += 2;
                    if ((rc = hex4(p, &lo)))
                        return rc;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return perr(p, "a low surrogate");
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                } else if ((u >= 0xDC00 && u <= 0xDFFF) || u == 0) {
                    return perr(p, "a character other than \\u0000 or a lone surrogate");
                }
                if (u < 0x80) {
                    enc[0] = (unsigned char)u;
                } else if (u < 0x800) {
                    enc[0] = (unsigned char)(0xC0 | (u >> 6));
                    enc[1] = (unsigned char)(0x80 | (u & 0x3F));
                    len = 2;
                } else if (u < 0x10000) {
                    enc[0] = (unsigned char)(0xE0 | (u >> 12));
                    enc[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
                    enc[2] = (unsigned char)(0x80 | (u & 0x3F));
                    len = 3;
                } else {
                    enc[0] = (unsigned char)(0xF0 | (u >> 18));
                    enc[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
                    enc[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
                    enc[3] = (unsigned char)(0x80 | (u & 0x3F));
                    len = 4;
                }
            } else {
                p->i--;
                return perr(p, "a valid escape");
            }
        }
        if (o + len >= cap)
            return perr(p, "a shorter string");
        memcpy(out + o, enc, len);
        o += len;
    }
    out[o] = '\0';
    return 0;
}

/* An unsigned decimal integer up to max. */
static int parse_u64(Parser *p, uint64_t max, uint64_t *v)
{
    skip_ws(p);
    size_t start = p->i;
    uint64_t x = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        unsigned d = (unsigned)(p->s[p->i] - '0');
        if (x > (max - d) / 10) {
            p->i = start;
            return perr(p, "a smaller integer");
        }
        x = x * 10 + d;
        p->i++;
    }
    if (p->i == start)
        return perr(p, "an unsigned integer");
    *v = x;
    return 0;
}

/* A number, or null (NaN). */
static int parse_double(Parser *p, double *v)
{
    if (take_null(p)) {
        *v = NAN;
        return 0;
    }
    size_t start = p->i, end = p->i;
    while (end < p->n && p->s[end] && strchr("+-.eE0123456789", p->s[end]))
        end++;
    if (end == start || !(p->s[start] == '-' || (p->s[start] >= '0' && p->s[start] <= '9')))
        return perr(p, "a number");
    char buf[64];
    if (end - start >= sizeof buf)
        return perr(p, "a shorter number");
    memcpy(buf, p->s + start, end - start);
    buf[end - start] = '\0';
    char *stop;
    errno = 0;
    double x = strtod(buf, &stop);
    if (*stop || errno == ERANGE)
        return perr(p, "a number");
    p->i = end;
    *v = x;
    return 0;
}

static int parse_lost(Parser *p, RunSummary *s)
{
    int rc = expect(p, '[', "'[' (lost_workers)");
    if (rc)
        return rc;
    s->n_lost_workers = 0;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        return 0;
    }
    for (;;) {
        uint64_t v;
        if (s->n_lost_workers == RUNDIR_LOST_MAX)
            return perr(p, "no more lost workers than RUNDIR_LOST_MAX");
        if ((rc = parse_u64(p, INT_MAX, &v)))
            return rc;
        s->lost_workers[s->n_lost_workers++] = (int)v;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        return expect(p, ']', "',' or ']'");
    }
}

static int parse_dev(Parser *p, RunSummary *s)
{
    if (take_null(p)) {
        s->has_dev = 0;
        return 0;
    }
    static const char *const names[] = {"auc", "mrr", "ndcg5", "ndcg10"};
    double *fields[] = {&s->dev.auc, &s->dev.mrr, &s->dev.ndcg5, &s->dev.ndcg10};
    int seen[4] = {0};
    int rc = expect(p, '{', "'{' or null (dev)");
    for (int k = 0; !rc && k < 4; k++) {
        char key[16];
        if (k && (rc = expect(p, ',', "',' (dev)")))
            break;
        if ((rc = parse_string(p, key, sizeof key)))
            break;
        int j = 0;
        while (j < 4 && strcmp(key, names[j]))
            j++;
        if (j == 4 || seen[j]) {
            rc = perr(p, "dev.auc, dev.mrr, dev.ndcg5 and dev.ndcg10, once each");
            break;
        }
        seen[j] = 1;
        if (!(rc = expect(p, ':', "':'")))
            rc = parse_double(p, fields[j]);
    }
    if (!rc)
        rc = expect(p, '}', "'}' (dev)");
    s->has_dev = 1;
    return rc;
}

enum {
    F_NAME, F_STATUS, F_STEPS, F_EPOCHS, F_SAMPLES, F_WALL, F_SPS, F_RESTARTS, F_RESUMED,
    F_LOST, F_DEV, F_CKPT, F_CKPT_FAILURES, F_COUNT
};
static const char *const field_names[F_COUNT] = {
    "run_name", "status", "steps", "epochs", "samples", "wall_s", "samples_per_s",
    "restarts", "resumed_from_step", "lost_workers", "dev", "checkpoint",
    "checkpoint_failures"};

static int parse_field(Parser *p, int f, RunSummary *s)
{
    uint64_t v;
    int rc;
    switch (f) {
    case F_NAME:
        return parse_string(p, s->run_name, sizeof s->run_name);
    case F_STATUS: {
        char word[16];
        if ((rc = parse_string(p, word, sizeof word)))
            return rc;
        for (int k = RUN_STATUS_COMPLETED; k <= RUN_STATUS_FAILED; k++)
            if (!strcmp(word, rundir_status_name((RunStatus)k))) {
                s->status = (RunStatus)k;
                return 0;
            }
        return perr(p, "status \"completed\", \"preempted\" or \"failed\"");
    }
    case F_STEPS:
        return parse_u64(p, UINT64_MAX, &s->steps);
    case F_EPOCHS:
        return parse_u64(p, UINT64_MAX, &s->epochs);
    case F_SAMPLES:
        return parse_u64(p, UINT64_MAX, &s->samples);
    case F_WALL:
        return parse_double(p, &s->wall_s);
    case F_SPS:
        return parse_double(p, &s->samples_per_s);
    case F_RESTARTS:
        rc = parse_u64(p, UINT32_MAX, &v);
        s->restarts = (uint32_t)v;
        return rc;
    case F_CKPT_FAILURES:
        rc = parse_u64(p, UINT32_MAX, &v);
        s->checkpoint_failures = (uint32_t)v;
        return rc;
    case F_RESUMED:
        if (take_null(p)) {
            s->resumed_from_step = -1;
            return 0;
        }
        rc = parse_u64(p, INT64_MAX, &v);
        s->resumed_from_step = (int64_t)v;
        return rc;
    case F_LOST:
        return parse_lost(p, s);
    case F_DEV:
        return parse_dev(p, s);
    case F_CKPT:
        if (take_null(p)) {
            s->checkpoint[0] = '\0';
            return 0;
        }
        return parse_string(p, s->checkpoint, sizeof s->checkpoint);
    }
    return perr(p, "a known field");
}

int rundir_read_summary(const char *dir, RunSummary *s)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s/summary.json", dir) >= (int)sizeof path)
        return psrec_errf(ENAMETOOLONG, "run.dir %s: path too long", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return psrec_errf(errno, "%s: cannot open: %s", path, strerror(errno));
    /* Far more than the writer ever makes (1024 lost workers, two 4 KB strings escaped). */
    enum { CAP = 1 << 20 };
    char *buf = malloc(CAP);
    int rc = 0;
    if (!buf) {
        fclose(f);
        return psrec_errf(PSREC_E_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, CAP, f);
    if (ferror(f))
        rc = psrec_errf(EIO, "%s: cannot read", path);
    else if (n == CAP)
        rc = psrec_errf(PSREC_E_PARSE, "%s: larger than %d bytes", path, CAP);
    fclose(f);
    if (rc)
        goto out;
    memset(s, 0, sizeof *s);
    Parser p = {.s = buf, .n = n, .i = 0, .path = path};
    int seen[F_COUNT] = {0};
    if ((rc = expect(&p, '{', "'{'")))
        goto out;
    for (int k = 0; k < F_COUNT; k++) {
        char key[32];
        if (k && (rc = expect(&p, ',', "',' and the next field")))
            goto out;
        if ((rc = parse_string(&p, key, sizeof key)))
            goto out;
        int fi = 0;
        while (fi < F_COUNT && strcmp(key, field_names[fi]))
            fi++;
        if (fi == F_COUNT || seen[fi]) {
            rc = psrec_errf(PSREC_E_PARSE, "%s: field \"%s\" %s", path, key,
                            fi == F_COUNT ? "is unknown" : "appears twice");
            goto out;
        }
        seen[fi] = 1;
        if ((rc = expect(&p, ':', "':'")) || (rc = parse_field(&p, fi, s)))
            goto out;
    }
    if ((rc = expect(&p, '}', "'}' after the last field")))
        goto out;
    skip_ws(&p);
    if (p.i != p.n)
        rc = psrec_errf(PSREC_E_PARSE, "%s: byte %zu: text after the object", path, p.i);
out:
    free(buf);
    return rc;
}
