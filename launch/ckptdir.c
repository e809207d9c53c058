/* Checkpoint directory layout and atomic update (see ckptdir.h). */
#include "launch/ckptdir.h"

#include "common/error.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "launch/run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Delete all but the newest keep complete step directories (and any stale .tmp ones). */
static void prune(const char *root, int keep)
{
    DIR *d = opendir(root);
    if (!d)
        return;
    char *names[4096];
    size_t n = 0;
    struct dirent *e;
    char p[4400];
    while ((e = readdir(d)) && n < 4096) {
        if (strncmp(e->d_name, "step-", 5) != 0)
            continue;
        if (strstr(e->d_name, ".tmp")) {
            snprintf(p, sizeof p, "%s/%s", root, e->d_name);
            fs_remove_flat_dir(p);
            continue;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (i + (size_t)keep < n && names[i]) {
            snprintf(p, sizeof p, "%s/%s", root, names[i]);
            fs_remove_flat_dir(p);
        }
        free(names[i]);
    }
}

static int write_file_atomic(const char *path, const char *text)
{
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return psrec_errf(errno, "%s: %s", tmp, strerror(errno));
    int ok = fputs(text, f) >= 0;
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return psrec_errf(e, "%s: %s", path, strerror(e));
    }
    return 0;
}

static void step_paths(const char *root, uint64_t step, char *dir, size_t dn, char *tmp,
                       size_t tn)
{
    snprintf(dir, dn, "%s/step-%010llu", root, (unsigned long long)step);
    snprintf(tmp, tn, "%s/step-%010llu.tmp", root, (unsigned long long)step);
}

int ckptdir_begin(const char *root, uint64_t step, char *tmpdir, size_t size)
{
    char dir[4200];
    step_paths(root, step, dir, sizeof dir, tmpdir, size);
    int rc = fs_mkdir_p(root);
    if (rc)
        return rc;
    fs_remove_flat_dir(tmpdir);
    if (mkdir(tmpdir, 0755) != 0)
        return psrec_errf(errno, "%s: %s", tmpdir, strerror(errno));
    return 0;
}

int ckptdir_publish(const char *root, uint64_t step, int keep)
{
    char dir[4200], tmpdir[4300];
    step_paths(root, step, dir, sizeof dir, tmpdir, sizeof tmpdir);
    fs_remove_flat_dir(dir); /* a checkpoint of the same step from an earlier run */
    if (rename(tmpdir, dir) != 0)
        return psrec_errf(errno, "%s: %s", dir, strerror(errno));
    char latest[4200], text[80];
    snprintf(latest, sizeof latest, "%s/LATEST", root);
    snprintf(text, sizeof text, "step-%010llu\n", (unsigned long long)step);
    int rc = write_file_atomic(latest, text);
    if (!rc)
        prune(root, keep > 0 ? keep : 1);
    return rc;
}

void ckptdir_abandon(const char *tmpdir)
{
    fs_remove_flat_dir(tmpdir);
}

int ckptdir_save(const char *root, const RunMeta *meta, const Shard *shard,
                 const WorkerState *worker, int keep)
{
    char tmpdir[4300], file[4400];
    int rc = ckptdir_begin(root, meta->step, tmpdir, sizeof tmpdir);
    if (rc)
        return rc;
    CkptWriter *w = NULL;
    RunMeta m = *meta;
    m.shards = 1;
    m.shard = 0;
    m.workers = 1;
    snprintf(file, sizeof file, "%s/shard-0.ckpt", tmpdir);
    if ((rc = ckpt_writer_new(file, &w)) || (rc = runmeta_write(w, &m)) ||
        (rc = shard_save(shard, w)) || (rc = ckpt_writer_finish(&w)))
        goto fail;
    snprintf(file, sizeof file, "%s/worker-0.ckpt", tmpdir);
    if ((rc = ckpt_writer_new(file, &w)) || (rc = runmeta_write(w, &m)) ||
        (rc = ckpt_write_section(w, "worker.state", worker, sizeof *worker)) ||
        (rc = ckpt_writer_finish(&w)))
        goto fail;
    return ckptdir_publish(root, meta->step, keep);
fail:
    ckpt_writer_abort(&w);
    ckptdir_abandon(tmpdir);
    return rc;
}

/* Write one shard's file (run.meta + its tables) as <dir>/shard-<meta->shard>.ckpt. */
int ckptdir_write_shard(const char *dir, const RunMeta *meta, const Shard *shard)
{
    char file[4400];
    snprintf(file, sizeof file, "%s/shard-%u.ckpt", dir, meta->shard);
    CkptWriter *w = NULL;
    int rc;
    if ((rc = ckpt_writer_new(file, &w)) || (rc = runmeta_write(w, meta)) ||
        (rc = shard_save(shard, w)) || (rc = ckpt_writer_finish(&w)))
        ckpt_writer_abort(&w);
    return rc;
}

int ckptdir_resolve(const char *path, char *step_dir, size_t size)
{
    char p[4200];
    struct stat st;
    snprintf(p, sizeof p, "%s/LATEST", path);
    FILE *f = fopen(p, "r");
    if (f) {
        char name[128] = "";
        if (!fgets(name, sizeof name, f))
            name[0] = '\0';
        fclose(f);
        name[strcspn(name, "\r\n")] = '\0';
        if (strncmp(name, "step-", 5) != 0 || strchr(name, '/'))
            return psrec_errf(PSREC_E_FORMAT, "%s: damaged LATEST file", path);
        snprintf(step_dir, size, "%s/%s", path, name);
        return 0;
    }
    snprintf(p, sizeof p, "%s/shard-0.ckpt", path);
    if (stat(p, &st) == 0) {
        snprintf(step_dir, size, "%s", path);
        return 0;
    }
    return psrec_errf(PSREC_E_NOTFOUND,
                      "%s: no checkpoint here (want a run's ckpt/ directory with LATEST, or a "
                      "step-N directory)",
                      path);
}

void ckptdir_shard_options(const RunMeta *m, ShardOptions *o)
{
    run_meta_shard_options(m, o);
}

/* Open step_dir/shard-<k>.ckpt and read its run.meta; *r is the caller's to free. */
static int open_shard_file(const char *step_dir, uint32_t k, CkptReader **r, RunMeta *meta,
                           char *file, size_t size)
{
    snprintf(file, size, "%s/shard-%u.ckpt", step_dir, k);
    int rc = ckpt_reader_open(file, r);
    return rc ? rc : runmeta_read(*r, file, meta);
}

int ckptdir_load_model(const char *step_dir, int params_only, RunMeta *meta, Shard **out)
{
    *out = NULL;
    int rc = 0;
    /* Shard 0's run.meta shapes the model; every shard file must belong to the same cut. */
    for (uint32_t k = 0; !rc && (k == 0 || k < meta->shards); k++) {
        char file[4300];
        CkptReader *r = NULL;
        RunMeta mk;
        if ((rc = open_shard_file(step_dir, k, &r, k ? &mk : meta, file, sizeof file)))
            goto next;
        if (k == 0) {
            ShardOptions so;
            run_meta_shard_options(meta, &so);
            if ((rc = shard_new(&so, out)))
                goto next;
        } else if (mk.shards != meta->shards || mk.shard != k || mk.step != meta->step) {
            rc = psrec_errf(PSREC_E_FORMAT, "%s: belongs to another checkpoint", file);
            goto next;
        }
        if ((rc = shard_load(*out, r, params_only)))
            psrec_errf(rc, "%s: %s", file, psrec_errmsg());
    next:
        ckpt_reader_free(&r);
    }
    if (rc)
        shard_free(out);
    return rc;
}
