/* Checkpoint directory layout, atomic multi-writer update, verification and re-sharded loading
 * (see ckptdir.h).
 *
 * Invariants: a name "step-<digits>" (no suffix) is only ever produced by renaming a tmp dir
 * that already holds a fsynced MANIFEST, so such a dir is complete unless damaged later, and
 * readers check that by verifying, not by trusting names or LATEST. Nothing here deletes a
 * scratch dir (".tmp" or other suffix) of a step at or above the one being committed: another
 * process may be writing it. Not done here: deciding when to checkpoint, or what job.ckpt's
 * sections mean (the trainer's business). */
#include "launch/ckptdir.h"

#include "common/error.h"
#include "common/fsutil.h"
#include "common/keyrange.h"
#include "common/log.h"
#include "common/timer.h"
#include "launch/run.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_BYTES 4400
#define MANIFEST_MAGIC "psrec-checkpoint-manifest"
#define MANIFEST_MAX_BYTES (4u << 20)
#define MAX_STEP_DIRS 65536

/* ------------------------------------------------------------------ names and small files */

/* "step-<digits>[suffix]": the step and where the suffix starts. Returns 1 if name parses. */
static int parse_step_name(const char *name, uint64_t *step, const char **suffix)
{
    if (strncmp(name, "step-", 5) != 0 || !isdigit((unsigned char)name[5]))
        return 0;
    uint64_t v = 0;
    const char *p = name + 5;
    for (; isdigit((unsigned char)*p); p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (p - (name + 5) < 10)
        return 0; /* not a name we made */
    *step = v;
    *suffix = p;
    return 1;
}

/* A file name a step dir may list: plain, short, not one of our control names. */
static int valid_file_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= CKPTDIR_NAME_MAX || name[0] == '.' || !strcmp(name, CKPTDIR_MANIFEST))
        return 0;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return 0;
    if ((n > 4 && !strcmp(name + n - 4, ".tmp")) || (n > 7 && !strcmp(name + n - 7, ".failed")))
        return 0;
    return 1;
}

static int join(char *out, size_t n, const char *dir, const char *name)
{
    int w = snprintf(out, n, "%s/%s", dir, name);
    if (w < 0 || (size_t)w >= n)
        return psrec_errf(ENAMETOOLONG, "%s/%s: path too long", dir, name);
    return 0;
}

static int step_paths(const char *root, uint64_t step, char *dir, size_t dn, char *tmp, size_t tn)
{
    int a = snprintf(dir, dn, "%s/step-%010llu", root, (unsigned long long)step);
    int b = snprintf(tmp, tn, "%s/step-%010llu.tmp", root, (unsigned long long)step);
    if (a < 0 || (size_t)a >= dn || b < 0 || (size_t)b >= tn)
        return psrec_errf(ENAMETOOLONG, "%s: checkpoint root path too long", root);
    return 0;
}

static int fsync_path(const char *path, int dir)
{
    int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return psrec_errf(errno, "%s: %s", path, strerror(errno));
    int rc = fsync(fd) ? errno : 0;
    close(fd);
    return rc ? psrec_errf(rc, "%s: fsync: %s", path, strerror(rc)) : 0;
}

/* text -> path via path.tmp, fsynced, renamed. */
static int write_file_atomic(const char *path, const char *text, size_t len)
{
    char tmp[PATH_BYTES];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return psrec_errf(errno, "%s: %s", tmp, strerror(errno));
    int ok = fwrite(text, 1, len, f) == len;
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    ok &= fclose(f) == 0;
    if (ok && rename(tmp, path) == 0)
        return 0;
    e = e ? e : errno ? errno : EIO;
    unlink(tmp);
    return psrec_errf(e, "%s: %s", path, strerror(e));
}

/* Size and CRC-32 of a file, read in blocks; fsync it too when sync (the committer makes
 * sure every byte the MANIFEST vouches for is on disk). */
static int file_crc(const char *path, int sync, uint64_t *size, uint32_t *crc)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return psrec_errf(errno == ENOENT ? PSREC_E_NOTFOUND : errno, "%s: %s", path,
                          strerror(errno));
    enum { BLOCK = 1 << 20 };
    unsigned char *buf = malloc(BLOCK);
    int rc = 0;
    *size = 0;
    *crc = 0;
    if (!buf) {
        rc = psrec_nomem(__func__);
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf, BLOCK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = psrec_errf(errno, "%s: read: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        *crc = ckpt_crc32(*crc, buf, (size_t)r);
        *size += (uint64_t)r;
    }
    if (sync && fsync(fd) != 0)
        rc = psrec_errf(errno, "%s: fsync: %s", path, strerror(errno));
out:
    free(buf);
    close(fd);
    return rc;
}

/* ------------------------------------------------------------------ MANIFEST */

void ckptdir_manifest_fini(CkptManifest *m)
{
    free(m->files);
    memset(m, 0, sizeof *m);
}

/* Parse MANIFEST text: header, one line per file, "manifest-crc <hex>" over all bytes before
 * that line. Errors name where (the caller prefixes the path). */
static int manifest_parse(char *text, size_t len, CkptManifest *m)
{
    memset(m, 0, sizeof *m);
    char *last = NULL;
    if (len == 0 || text[len - 1] != '\n')
        return psrec_errf(PSREC_E_FORMAT, "MANIFEST is cut short (no final newline)");
    text[len - 1] = '\0';
    last = strrchr(text, '\n');
    if (!last)
        return psrec_errf(PSREC_E_FORMAT, "MANIFEST has no file lines");
    unsigned crc_saved;
    char tail;
    if (sscanf(last + 1, "manifest-crc %8x%c", &crc_saved, &tail) != 1)
        return psrec_errf(PSREC_E_FORMAT, "MANIFEST does not end with its own CRC line");
    if (ckpt_crc32(0, text, (size_t)(last + 1 - text)) != (uint32_t)crc_saved)
        return psrec_errf(PSREC_E_FORMAT, "MANIFEST CRC mismatch (damaged MANIFEST)");
    *last = '\0';
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    unsigned version;
    unsigned long long step, nfiles;
    if (!line || sscanf(line, MANIFEST_MAGIC " %u step %llu files %llu%c", &version, &step,
                        &nfiles, &tail) != 3)
        return psrec_errf(PSREC_E_FORMAT, "MANIFEST header line is not '" MANIFEST_MAGIC
                                          " <version> step <n> files <n>'");
    if (version != CKPTDIR_MANIFEST_VERSION)
        return psrec_errf(PSREC_E_FORMAT, "MANIFEST version %u, this psrec reads %u", version,
                          CKPTDIR_MANIFEST_VERSION);
    if (nfiles == 0 || nfiles > 100000)
        return psrec_errf(PSREC_E_FORMAT, "MANIFEST lists %llu files", nfiles);
    m->version = version;
    m->step = step;
    if (!(m->files = calloc(nfiles, sizeof *m->files)))
        return psrec_nomem(__func__);
    while ((line = strtok_r(NULL, "\n", &save))) {
        CkptManifestEntry *e = &m->files[m->nfiles];
        char name[CKPTDIR_NAME_MAX + 1];
        unsigned long long size;
        unsigned crc;
        if (m->nfiles == nfiles ||
            sscanf(line, "%64s %llu %8x%c", name, &size, &crc, &tail) != 3 ||
            !valid_file_name(name)) {
            ckptdir_manifest_fini(m);
            return psrec_errf(PSREC_E_FORMAT, "MANIFEST line %zu is not '<file> <size> <crc>'",
                              m->nfiles + 2);
        }
        memcpy(e->name, name, strlen(name) + 1); /* valid_file_name: it fits */
        e->size = size;
        e->crc = crc;
        m->nfiles++;
    }
    if (m->nfiles != nfiles) {
        size_t got = m->nfiles;
        ckptdir_manifest_fini(m);
        return psrec_errf(PSREC_E_FORMAT, "MANIFEST lists %zu files, its header says %llu", got,
                          nfiles);
    }
    return 0;
}

static int manifest_read(const char *step_dir, CkptManifest *m)
{
    char path[PATH_BYTES];
    int rc = join(path, sizeof path, step_dir, CKPTDIR_MANIFEST);
    if (rc)
        return rc;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return psrec_errf(PSREC_E_NOTFOUND, "%s: no MANIFEST (not a complete checkpoint)",
                              step_dir);
        return psrec_errf(errno, "%s: %s", path, strerror(errno));
    }
    char *text = malloc(MANIFEST_MAX_BYTES + 1);
    size_t len = text ? fread(text, 1, MANIFEST_MAX_BYTES + 1, f) : 0;
    fclose(f);
    if (!text)
        return psrec_nomem(__func__);
    if (len > MANIFEST_MAX_BYTES)
        rc = psrec_errf(PSREC_E_FORMAT, "%s: MANIFEST is too large", step_dir);
    else if ((rc = manifest_parse(text, len, m)))
        psrec_errf(rc, "%s: %s", step_dir, psrec_errmsg());
    free(text);
    return rc;
}

int ckptdir_read_manifest(const char *step_dir, CkptManifest *out)
{
    return manifest_read(step_dir, out);
}

int ckptdir_verify(const char *step_dir, CkptManifest *out)
{
    CkptManifest m;
    int rc = manifest_read(step_dir, &m);
    if (rc)
        return rc;
    /* A step dir renamed by hand (or a manifest copied into another) is not that step. */
    const char *base = strrchr(step_dir, '/');
    base = base ? base + 1 : step_dir;
    uint64_t named;
    const char *suffix;
    if (parse_step_name(base, &named, &suffix) && !*suffix && named != m.step) {
        rc = psrec_errf(PSREC_E_FORMAT, "%s: MANIFEST is of step %llu", step_dir,
                        (unsigned long long)m.step);
        goto out;
    }
    for (size_t i = 0; i < m.nfiles; i++) {
        const CkptManifestEntry *e = &m.files[i];
        char path[PATH_BYTES];
        struct stat st;
        if ((rc = join(path, sizeof path, step_dir, e->name)))
            goto out;
        if (stat(path, &st) != 0) {
            rc = psrec_errf(PSREC_E_FORMAT, "%s: %s: missing (MANIFEST lists it)", step_dir,
                            e->name);
            goto out;
        }
        if ((uint64_t)st.st_size != e->size) {
            rc = psrec_errf(PSREC_E_FORMAT, "%s: %s: size %llu, MANIFEST says %llu (%s)",
                            step_dir, e->name, (unsigned long long)st.st_size,
                            (unsigned long long)e->size,
                            (uint64_t)st.st_size < e->size ? "truncated" : "grown");
            goto out;
        }
        uint64_t size;
        uint32_t crc;
        if ((rc = file_crc(path, 0, &size, &crc))) {
            psrec_errf(rc == PSREC_E_NOTFOUND ? PSREC_E_FORMAT : rc, "%s: %s: %s", step_dir,
                       e->name, psrec_errmsg());
            rc = rc == PSREC_E_NOTFOUND ? PSREC_E_FORMAT : rc;
            goto out;
        }
        if (size != e->size || crc != e->crc) {
            rc = psrec_errf(PSREC_E_FORMAT, "%s: %s: CRC %08x, MANIFEST says %08x (damaged file)",
                            step_dir, e->name, crc, e->crc);
            goto out;
        }
    }
out:
    if (rc || !out)
        ckptdir_manifest_fini(&m);
    else
        *out = m;
    return rc;
}

/* ------------------------------------------------------------------ writing */

int ckptdir_begin(const char *root, uint64_t step, char *tmpdir, size_t n)
{
    char dir[PATH_BYTES];
    int rc = step_paths(root, step, dir, sizeof dir, tmpdir, n);
    if (rc || (rc = fs_mkdir_p(root)))
        return rc;
    if (mkdir(tmpdir, 0755) != 0 && errno != EEXIST)
        return psrec_errf(errno, "%s: cannot create: %s", tmpdir, strerror(errno));
    struct stat st;
    if (stat(tmpdir, &st) != 0 || !S_ISDIR(st.st_mode))
        return psrec_errf(ENOTDIR, "%s: exists and is not a directory", tmpdir);
    return 0;
}

int ckptdir_write_shard(const char *tmpdir, const RunMeta *meta, const Shard *shard)
{
    char file[PATH_BYTES];
    snprintf(file, sizeof file, "%s/shard-%u.ckpt", tmpdir, meta->shard);
    CkptWriter *w = NULL;
    int rc;
    if ((rc = ckpt_writer_new(file, &w)) || (rc = runmeta_write(w, meta)) ||
        (rc = shard_save(shard, w)) || (rc = ckpt_writer_finish(&w)))
        ckpt_writer_abort(&w);
    return rc;
}

int ckptdir_write_job(const char *tmpdir, const RunMeta *meta, const CkptdirSection *sections,
                      size_t nsections)
{
    char file[PATH_BYTES];
    int rc = join(file, sizeof file, tmpdir, CKPTDIR_JOB_FILE);
    CkptWriter *w = NULL;
    if (rc || (rc = ckpt_writer_new(file, &w)) || (rc = runmeta_write(w, meta)))
        goto out;
    for (size_t i = 0; i < nsections; i++)
        if ((rc = ckpt_write_section(w, sections[i].name, sections[i].data, sections[i].size)))
            goto out;
    rc = ckpt_writer_finish(&w);
out:
    ckpt_writer_abort(&w);
    return rc;
}

int ckptdir_mark_failed(const char *tmpdir, const char *name, const char *reason)
{
    char path[PATH_BYTES], text[1024];
    if (snprintf(path, sizeof path, "%s/%s.failed", tmpdir, name) >= (int)sizeof path)
        return psrec_errf(ENAMETOOLONG, "%s/%s.failed: path too long", tmpdir, name);
    int len = snprintf(text, sizeof text, "%s\n", reason);
    return write_file_atomic(path, text, len < (int)sizeof text ? (size_t)len : sizeof text - 1);
}

int ckptdir_wait_files(const char *tmpdir, const char *const *files, size_t nfiles,
                       double timeout_s)
{
    const double deadline = timer_now() + timeout_s;
    useconds_t nap = 1000;
    char path[PATH_BYTES];
    for (;;) {
        size_t missing = 0, first_missing = 0;
        for (size_t i = 0; i < nfiles; i++) {
            struct stat st;
            if (snprintf(path, sizeof path, "%s/%s.failed", tmpdir, files[i]) >=
                (int)sizeof path)
                return psrec_errf(ENAMETOOLONG, "%s/%s: path too long", tmpdir, files[i]);
            FILE *f = fopen(path, "r");
            if (f) {
                char reason[1024] = "";
                if (!fgets(reason, sizeof reason, f))
                    reason[0] = '\0';
                fclose(f);
                reason[strcspn(reason, "\n")] = '\0';
                return psrec_errf(PSREC_E_STATE, "%s: the writer of %s failed: %s", tmpdir,
                                  files[i], reason[0] ? reason : "(no reason given)");
            }
            join(path, sizeof path, tmpdir, files[i]);
            if (stat(path, &st) != 0) {
                if (!missing++)
                    first_missing = i;
            }
        }
        if (!missing)
            return 0;
        if (timer_now() >= deadline)
            return psrec_errf(ETIMEDOUT, "%s: %zu file(s) not written after %.1f s (first: %s)",
                              tmpdir, missing, timeout_s, files[first_missing]);
        usleep(nap);
        if (nap < 50000)
            nap *= 2;
    }
}

void ckptdir_abandon(const char *tmpdir)
{
    if (fs_remove_flat_dir(tmpdir))
        LOG_WARN("checkpoint: cannot remove %s: %s", tmpdir, psrec_errmsg());
}

typedef struct StepDir {
    uint64_t step;
    char name[64];
} StepDir;

static int cmp_step_desc(const void *a, const void *b)
{
    const StepDir *x = a, *y = b;
    return x->step < y->step ? 1 : x->step > y->step ? -1 : strcmp(x->name, y->name);
}

/* Entries of root named step-N (complete: *scratch NULL) or step-N<suffix> (scratch, into
 * *scratch when non-NULL), each sorted by step, newest first. Caller frees both. */
static int list_step_dirs(const char *root, StepDir **done, size_t *ndone, StepDir **scratch,
                          size_t *nscratch)
{
    *done = NULL;
    *ndone = 0;
    if (scratch) {
        *scratch = NULL;
        *nscratch = 0;
    }
    DIR *d = opendir(root);
    if (!d)
        return psrec_errf(errno == ENOENT ? PSREC_E_NOTFOUND : errno, "%s: %s", root,
                          strerror(errno));
    size_t cap_d = 0, cap_s = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t step;
        const char *suffix;
        if (!parse_step_name(e->d_name, &step, &suffix) || strlen(e->d_name) >= 64)
            continue;
        StepDir **arr = *suffix ? scratch : done;
        size_t *n = *suffix ? nscratch : ndone, *cap = *suffix ? &cap_s : &cap_d;
        if (!arr || *n >= MAX_STEP_DIRS)
            continue;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 16;
            StepDir *p = realloc(*arr, c * sizeof *p);
            if (!p) {
                rc = psrec_nomem(__func__);
                break;
            }
            *arr = p;
            *cap = c;
        }
        (*arr)[*n].step = step;
        memcpy((*arr)[*n].name, e->d_name, strlen(e->d_name) + 1); /* < 64: checked above */
        (*n)++;
    }
    closedir(d);
    if (rc) {
        free(*done);
        *done = NULL;
        if (scratch) {
            free(*scratch);
            *scratch = NULL;
        }
        return rc;
    }
    if (*ndone > 1) /* (qsort of a NULL array is undefined even for 0 elements) */
        qsort(*done, *ndone, sizeof **done, cmp_step_desc);
    if (scratch && *nscratch > 1)
        qsort(*scratch, *nscratch, sizeof **scratch, cmp_step_desc);
    return 0;
}

static void remove_dir_logged(const char *root, const char *name, const char *why)
{
    char p[PATH_BYTES];
    if (join(p, sizeof p, root, name))
        return;
    if (fs_remove_flat_dir(p))
        LOG_WARN("checkpoint: cannot remove %s: %s", p, psrec_errmsg());
    else
        LOG_DEBUG("checkpoint: removed %s (%s)", p, why);
}

int ckptdir_committed(const char *root, uint64_t step)
{
    char dir[PATH_BYTES], tmp[PATH_BYTES], m[PATH_BYTES];
    struct stat st;
    return !step_paths(root, step, dir, sizeof dir, tmp, sizeof tmp) &&
           !join(m, sizeof m, dir, CKPTDIR_MANIFEST) && stat(m, &st) == 0 &&
           S_ISREG(st.st_mode);
}

void ckptdir_clear_scratch(const char *root)
{
    StepDir *done, *scratch;
    size_t ndone, nscratch;
    if (list_step_dirs(root, &done, &ndone, &scratch, &nscratch))
        return; /* no root yet, or unreadable: nothing this life could trip over */
    for (size_t i = 0; i < nscratch; i++) {
        LOG_INFO("removing %s/%s, left half-written by an earlier life", root,
                 scratch[i].name);
        remove_dir_logged(root, scratch[i].name, "an earlier life's scratch dir");
    }
    free(done);
    free(scratch);
}

/* Keep `committed` and the keep-1 highest other valid step dirs; delete other valid ones, and
 * invalid or scratch dirs of steps below committed. "Valid" here means the MANIFEST parses:
 * a full CRC pass over every kept checkpoint at each commit would cost a re-read of all of
 * them, and resume verifies fully anyway. */
static void prune(const char *root, uint64_t committed, int keep)
{
    StepDir *done, *scratch;
    size_t ndone, nscratch;
    if (list_step_dirs(root, &done, &ndone, &scratch, &nscratch)) {
        LOG_WARN("checkpoint: cannot prune %s: %s", root, psrec_errmsg());
        return;
    }
    size_t others = 0;
    for (size_t i = 0; i < ndone; i++) {
        if (done[i].step == committed)
            continue;
        char p[PATH_BYTES];
        CkptManifest m;
        int rc = join(p, sizeof p, root, done[i].name);
        if (!rc)
            rc = manifest_read(p, &m);
        if (!rc) {
            ckptdir_manifest_fini(&m);
            if (++others >= (size_t)keep)
                remove_dir_logged(root, done[i].name, "pruned");
        } else if (rc != PSREC_E_NOTFOUND && rc != PSREC_E_FORMAT) {
            /* Not known to be invalid (no memory, an I/O error): never delete on a doubt. */
            LOG_WARN("checkpoint: cannot check %s/%s, kept: %s", root, done[i].name,
                     psrec_errmsg());
        } else if (done[i].step < committed) {
            remove_dir_logged(root, done[i].name, "no valid MANIFEST");
        }
    }
    for (size_t i = 0; i < nscratch; i++)
        if (scratch[i].step < committed)
            remove_dir_logged(root, scratch[i].name, "stale scratch dir");
    free(done);
    free(scratch);
}

int ckptdir_commit(const char *root, uint64_t step, const char *const *files, size_t nfiles,
                   int keep)
{
    char dir[PATH_BYTES], tmpdir[PATH_BYTES], path[PATH_BYTES], aside[PATH_BYTES + 16];
    char *text = NULL;
    int rc = step_paths(root, step, dir, sizeof dir, tmpdir, sizeof tmpdir);
    if (rc)
        return rc;
    if (nfiles == 0)
        return psrec_errf(PSREC_E_USAGE, "%s: a checkpoint needs at least one file", tmpdir);
    size_t cap = 128 + nfiles * (CKPTDIR_NAME_MAX + 40), len = 0;
    if (!(text = malloc(cap)))
        return psrec_nomem(__func__);
    len += (size_t)snprintf(text, cap, MANIFEST_MAGIC " %u step %llu files %zu\n",
                            CKPTDIR_MANIFEST_VERSION, (unsigned long long)step, nfiles);
    for (size_t i = 0; i < nfiles; i++) {
        uint64_t size;
        uint32_t crc;
        if (!valid_file_name(files[i])) {
            rc = psrec_errf(PSREC_E_USAGE, "checkpoint file name '%s' is not allowed", files[i]);
            goto out;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(files[i], files[j])) {
                rc = psrec_errf(PSREC_E_USAGE, "checkpoint file %s listed twice", files[i]);
                goto out;
            }
        if ((rc = join(path, sizeof path, tmpdir, files[i])) ||
            (rc = file_crc(path, 1, &size, &crc)))
            goto out;
        len += (size_t)snprintf(text + len, cap - len, "%s %llu %08x\n", files[i],
                                (unsigned long long)size, crc);
    }
    len += (size_t)snprintf(text + len, cap - len, "manifest-crc %08x\n",
                            ckpt_crc32(0, text, len));
    if ((rc = join(path, sizeof path, tmpdir, CKPTDIR_MANIFEST)) ||
        (rc = write_file_atomic(path, text, len)) || (rc = fsync_path(tmpdir, 1)))
        goto out;
    /* A step-N of an earlier life of the run: moved aside first (rename cannot replace a
     * non-empty dir), removed after; a crash in between leaves only a scratch dir that a
     * later prune removes. */
    snprintf(aside, sizeof aside, "%s.replaced", dir);
    struct stat st;
    int replacing = stat(dir, &st) == 0;
    if (replacing) {
        fs_remove_flat_dir(aside);
        if (rename(dir, aside) != 0) {
            rc = psrec_errf(errno, "%s: cannot move the old one aside: %s", dir, strerror(errno));
            goto out;
        }
    }
    if (rename(tmpdir, dir) != 0) {
        rc = psrec_errf(errno, "%s: rename: %s", dir, strerror(errno));
        if (replacing)
            rename(aside, dir);
        goto out;
    }
    if ((rc = fsync_path(root, 1)))
        goto out;
    if (replacing)
        remove_dir_logged(root, strrchr(aside, '/') + 1, "replaced");
    char hint[64];
    int hn = snprintf(hint, sizeof hint, "step-%010llu\n", (unsigned long long)step);
    if (join(path, sizeof path, root, "LATEST") || write_file_atomic(path, hint, (size_t)hn))
        LOG_WARN("checkpoint: LATEST not updated (only a hint): %s", psrec_errmsg());
    prune(root, step, keep > 0 ? keep : 1);
out:
    free(text);
    return rc;
}

int ckptdir_save(const char *root, const RunMeta *meta, const Shard *shard,
                 const CkptdirSection *job_sections, size_t nsections, int keep)
{
    char tmpdir[PATH_BYTES];
    int rc = ckptdir_begin(root, meta->step, tmpdir, sizeof tmpdir);
    if (rc)
        return rc;
    RunMeta m = *meta;
    m.shards = 1;
    m.shard = 0;
    m.workers = 1;
    static const char *const files[] = {"shard-0.ckpt", CKPTDIR_JOB_FILE};
    if ((rc = ckptdir_write_shard(tmpdir, &m, shard)) ||
        (rc = ckptdir_write_job(tmpdir, &m, job_sections, nsections)) ||
        (rc = ckptdir_commit(root, meta->step, files, 2, keep))) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", psrec_errmsg());
        ckptdir_abandon(tmpdir);
        psrec_errf(rc, "%s", msg); /* the reason, not a cleanup message */
    }
    return rc;
}

/* ------------------------------------------------------------------ reading */

int ckptdir_newest(const char *root, uint64_t *step, char *dir, size_t n)
{
    StepDir *done;
    size_t ndone, skipped = 0;
    int rc = list_step_dirs(root, &done, &ndone, NULL, NULL);
    if (rc)
        return rc;
    if (ndone == 0) {
        free(done);
        return psrec_errf(PSREC_E_NOTFOUND,
                          "%s: no checkpoint here (want a run's checkpoint directory holding "
                          "step-N dirs, or one step-N dir)",
                          root);
    }
    rc = PSREC_E_NOTFOUND;
    for (size_t i = 0; i < ndone; i++) {
        char p[PATH_BYTES];
        if (join(p, sizeof p, root, done[i].name))
            continue;
        if (ckptdir_verify(p, NULL)) {
            LOG_WARN("checkpoint %s skipped: %s", p, psrec_errmsg());
            skipped++;
            continue;
        }
        if (snprintf(dir, n, "%s", p) >= (int)n) {
            rc = psrec_errf(ENAMETOOLONG, "%s: path too long", p);
            break;
        }
        *step = done[i].step;
        rc = 0;
        break;
    }
    free(done);
    if (rc == PSREC_E_NOTFOUND)
        psrec_errf(rc, "%s: no valid checkpoint (%zu step dir(s), %zu damaged or incomplete)",
                   root, ndone, skipped);
    return rc;
}

int ckptdir_resolve(const char *path, char *step_dir, size_t n)
{
    struct stat st;
    char p[PATH_BYTES];
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return psrec_errf(PSREC_E_NOTFOUND, "%s: no such checkpoint directory", path);
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    const char *base = path + len;
    while (base > path && base[-1] != '/')
        base--;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(path + len - base), base);
    uint64_t step;
    const char *suffix;
    int is_step = (parse_step_name(name, &step, &suffix) && !*suffix) ||
                  (!join(p, sizeof p, path, CKPTDIR_MANIFEST) && access(p, F_OK) == 0) ||
                  (!join(p, sizeof p, path, "shard-0.ckpt") && access(p, F_OK) == 0);
    if (is_step) {
        int rc = ckptdir_verify(path, NULL);
        if (rc)
            return rc;
        if (snprintf(step_dir, n, "%s", path) >= (int)n)
            return psrec_errf(ENAMETOOLONG, "%s: path too long", path);
        return 0;
    }
    return ckptdir_newest(path, &step, step_dir, n);
}

/* Keep the rows keyrange_owner assigns to one shard. */
typedef struct OwnerFilter {
    uint32_t shard, shards;
} OwnerFilter;

static int owner_keeps(void *ctx, uint32_t table, uint64_t key)
{
    const OwnerFilter *f = ctx;
    return keyrange_owner(table, key, f->shards) == f->shard;
}

/* The run id job.ckpt's run.meta carries (*id = 0 when there is no job.ckpt, or it is older
 * than run ids). Returns 0 or an error naming the file. */
static int job_run_id(const char *step_dir, char *file, size_t n, uint64_t *id)
{
    *id = 0;
    snprintf(file, n, "%s/%s", step_dir, CKPTDIR_JOB_FILE);
    if (access(file, F_OK) != 0)
        return 0;
    CkptReader *r = NULL;
    RunMeta m;
    const void *p;
    size_t len;
    int rc = ckpt_reader_open(file, &r);
    if (!rc && ckpt_section(r, "run.meta", &p, &len) == 0 && !(rc = runmeta_read(r, file, &m)))
        *id = m.run_id;
    ckpt_reader_free(&r);
    return rc;
}

/* Every shard file of step_dir into a new shard, rows filtered by owner (NULL: all). Every
 * file must carry the run id of job.ckpt (the committer's), so that a shard file copied in
 * from another run is refused even when the MANIFEST was redone to list it. */
static int load_filtered(const char *step_dir, const OwnerFilter *owner, int lazy_dense,
                         int params_only, RunMeta *meta, Shard **out)
{
    *out = NULL;
    char job[PATH_BYTES];
    uint64_t run_id;
    int rc = job_run_id(step_dir, job, sizeof job, &run_id);
    if (rc)
        return rc;
    /* Shard 0's run.meta shapes the model; every shard file must belong to the same cut. */
    for (uint32_t k = 0; !rc && (k == 0 || k < meta->shards); k++) {
        char file[PATH_BYTES];
        CkptReader *r = NULL;
        RunMeta mk;
        snprintf(file, sizeof file, "%s/shard-%u.ckpt", step_dir, k);
        if ((rc = ckpt_reader_open(file, &r)) || (rc = runmeta_read(r, file, k ? &mk : meta)) ||
            (rc = runmeta_check_run_id(file, (k ? &mk : meta)->run_id, job, run_id)))
            goto next;
        if (k == 0) {
            ShardOptions so;
            run_meta_shard_options(meta, &so);
            so.lazy_dense = lazy_dense;
            if ((rc = shard_new(&so, out)))
                goto next;
        } else if ((rc = runmeta_check_run_id(file, mk.run_id, "shard-0.ckpt", meta->run_id))) {
            goto next;
        } else if (mk.shards != meta->shards || mk.shard != k || mk.step != meta->step) {
            rc = psrec_errf(PSREC_E_FORMAT, "%s: belongs to another checkpoint", file);
            goto next;
        }
        if ((rc = shard_load_filtered(*out, r, params_only, owner ? owner_keeps : NULL,
                                      (void *)owner)))
            psrec_errf(rc, "%s: %s", file, psrec_errmsg());
    next:
        ckpt_reader_free(&r);
    }
    if (rc)
        shard_free(out);
    return rc;
}

int ckptdir_load_shard(const char *step_dir, uint32_t shard, uint32_t shards, int lazy_dense,
                       RunMeta *meta, Shard **out)
{
    if (shards == 0 || shard >= shards) {
        *out = NULL;
        return psrec_errf(PSREC_E_RANGE, "shard %u of %u", shard, shards);
    }
    const OwnerFilter f = {.shard = shard, .shards = shards};
    return load_filtered(step_dir, shards > 1 ? &f : NULL, lazy_dense, 0, meta, out);
}

int ckptdir_load_model(const char *step_dir, int params_only, RunMeta *meta, Shard **out)
{
    return load_filtered(step_dir, NULL, 0, params_only, meta, out);
}

