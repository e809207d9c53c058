/* Test helpers. Everything here aborts loudly on setup failures, because a test whose
 * fixture silently failed to build could pass without testing anything. */
#include "testutil/testutil.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *tu_mkdtemp(const char *tag)
{
    static char path[4096];
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/psrec-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        abort();
    }
    return path;
}

void tu_rmtree(const char *path)
{
    if (!path || !*path || !strcmp(path, "/"))
        return;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
}

int tu_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    ok &= fclose(f) == 0;
    return ok ? 0 : -1;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int tu_run(char **out, const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[16500];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p)
        return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    char chunk[4096];
    while ((r = fread(chunk, 1, sizeof chunk, p)) > 0) {
        if (n + r + 1 > cap) {
            while (n + r + 1 > cap)
                cap *= 2;
            buf = realloc(buf, cap);
        }
        memcpy(buf + n, chunk, r);
        n += r;
    }
    buf[n] = '\0';
    int st = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    if (st == -1)
        return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

int tu_json_number(const char *json, const char *key, double *v)
{
    char pat[256];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(json, pat);
    if (!p)
        return 0;
    p += strlen(pat);
    while (*p == ' ' || *p == ':')
        p++;
    char *end;
    double x = strtod(p, &end);
    if (end == p)
        return 0;
    *v = x;
    return 1;
}

double tu_shard_bytes(const char *run_dir)
{
    enum { MAX_SHARDS = 64 };
    double last[MAX_SHARDS] = {0};
    char p[4200];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run_dir);
    char *text = tu_read_file(p, NULL);
    char *save;
    for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        double shard, in, out;
        if (tu_json_number(line, "shard", &shard) && shard >= 0 && shard < MAX_SHARDS &&
            tu_json_number(line, "bytes_in", &in) && tu_json_number(line, "bytes_out", &out))
            last[(int)shard] = in + out;
    }
    free(text);
    double sum = 0;
    for (int k = 0; k < MAX_SHARDS; k++)
        sum += last[k];
    return sum;
}

int tu_small_experiment(const char *dir, int seed, const char *extra)
{
    char *out = NULL;
    int rc = tu_run(&out, "%s gen --out %s/g --news 600 --users 300 --train-impressions 2500 "
                          "--dev-impressions 500 --topics 6 --seed %d && "
                          "%s prep --news %s/g/train/news.tsv --behaviors %s/g/train/behaviors.tsv "
                          "--out %s/train.db --title-len 12 --his-len 15 && "
                          "%s prep --news %s/g/dev/news.tsv --behaviors %s/g/dev/behaviors.tsv "
                          "--out %s/dev.db --vocab-from %s/train.db",
                    TU_PSREC, dir, seed, TU_PSREC, dir, dir, dir, TU_PSREC, dir, dir, dir, dir);
    if (rc)
        fprintf(stderr, "%s\n", out);
    free(out);
    if (rc)
        return rc;
    char conf[4200], text[16384];
    snprintf(conf, sizeof conf, "%s/exp.conf", dir);
    snprintf(text, sizeof text,
             "[data]\ntrain = %s/train.db\ndev = %s/dev.db\n"
             "[model]\nword_dim = 16\nhidden = 16\ntitle_len = 12\nhis_len = 15\n"
             "[train]\nepochs = 2\nbatch_size = 32\nnegatives = 4\nlr = 0.003\nthreads = 1\n"
             "[run]\ndir = %s/run\nlog_every = 10\n%s",
             dir, dir, dir, extra);
    return tu_write_file(conf, text) == 0 ? 0 : 1;
}

void tu_add_suite(const char *name, const TuTest *tests)
{
    if (CU_get_registry() == NULL && CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "CUnit init failed\n");
        abort();
    }
    CU_pSuite s = CU_add_suite(name, NULL, NULL);
    if (!s)
        abort();
    for (const TuTest *t = tests; t->name; t++)
        if (!CU_add_test(s, t->name, t->fn))
            abort();
}

int tu_run_all(void)
{
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (run == 0) {
        fprintf(stderr, "no tests ran\n");
        return 1;
    }
    return failed ? 1 : 0;
}

int tu_spawn(const char *cmd, const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        setpgid(pid, pid);
    return (int)pid;
}
