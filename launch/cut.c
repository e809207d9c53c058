/* Consistent cuts on disk (see cut.h).
 *
 * Writing: every shard's checkpoint thread writes shard-<k>.ckpt into step-S.tmp; the
 * committer also writes job.ckpt, waits for the other shards' files (or their failure notes)
 * and commits the directory with its MANIFEST. A shard that cannot write leaves a failure note
 * so the committer gives up at once instead of waiting out its timeout. Any failure leaves the
 * step directory uncommitted, so the previous checkpoint stays the newest valid one.
 * Reading: the newest valid step directory; job.ckpt's positions say where each old worker
 * stood, and cut_resume_start turns them into the new workers' starts. */
#include "launch/cut.h"

#include "common/ckpt.h"
#include "common/error.h"
#include "common/log.h"
#include "common/timer.h"
#include "launch/ckptdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t cut_model_hash(const RunMeta *m)
{
    /* FNV-1a over the fields that shape tables and updates, one at a time (no padding). */
    uint64_t h = 0xcbf29ce484222325ULL;
    const uint64_t v[] = {m->E,         m->H,           m->title_len, m->his_len,
                          m->optimizer, m->vocab_rows,  m->category_rows, m->user_rows,
                          m->seed};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        for (int b = 0; b < 8; b++) {
            h ^= (v[i] >> (8 * b)) & 0xff;
            h *= 0x100000001b3ULL;
        }
    return h;
}

/* The epoch of the slowest worker's next sample (0 when no position decodes). */
static uint64_t cut_epoch(const CutImage *img)
{
    uint64_t e = UINT64_MAX;
    for (uint32_t w = 0; w < img->workers; w++) {
        WorkerCut wc;
        if (workercut_decode(img->cuts + (size_t)w * SNAP_CUT_MAX, img->cut_len[w], &wc) == 0 &&
            wc.pos.epoch < e)
            e = wc.pos.epoch;
    }
    return e == UINT64_MAX ? 0 : e;
}

static int write_shard_file(const CutWriter *cw, const CutImage *img, const char *tmpdir)
{
    char file[4600];
    snprintf(file, sizeof file, "%s/shard-%u.ckpt", tmpdir, img->shard);
    RunMeta m = cw->meta;
    m.step = img->step;
    m.epoch = cut_epoch(img);
    m.shards = img->shards;
    m.shard = img->shard;
    m.workers = img->workers;
    CkptWriter *w = NULL;
    int rc;
    if ((rc = ckpt_writer_new(file, &w)) || (rc = runmeta_write(w, &m)) ||
        (rc = shard_save(img->copy, w)) || (rc = ckpt_writer_finish(&w))) {
        ckpt_writer_abort(&w); /* the writer's message names the file already */
        return rc;
    }
    return 0;
}

static int write_job_file(const CutWriter *cw, const CutImage *img, const char *tmpdir)
{
    char file[4600];
    snprintf(file, sizeof file, "%s/job.ckpt", tmpdir);
    /* The positions of the current layout only (after a takeover the lost workers' and the
     * old layout's are gone), in the order of their ranks. */
    const uint32_t W = cw->world ? cw->world : img->workers;
    unsigned char *cuts = calloc(W ? W : 1, WORKERCUT_BYTES);
    uint64_t *finished = calloc(W ? W : 1, sizeof *finished);
    unsigned char *done = calloc(W ? W : 1, 1), *lost = calloc(W ? W : 1, 1);
    unsigned char *seen = calloc(W ? W : 1, 1);
    if (!cuts || !finished || !done || !lost || !seen) {
        free(cuts);
        free(finished);
        free(done);
        free(lost);
        free(seen);
        return psrec_nomem(__func__);
    }
    JobCutMeta jm = {.version = JOBCUT_VERSION,
                     .size = sizeof jm,
                     .step = img->step,
                     .workers = W,
                     .shards = img->shards,
                     .consistency = cw->consistency,
                     .interleave = cw->interleave,
                     .model_hash = cw->model_hash,
                     .samples = cw->base_samples,
                     .seed = cw->seed,
                     .stop = (uint32_t)img->stop,
                     .final = (uint32_t)img->final,
                     .wall_s = cw->base_wall + (timer_now() - cw->life_t0)};
    int rc = 0;
    jm.epoch = UINT64_MAX;
    for (uint32_t w = 0; w < img->workers; w++) {
        const unsigned char *b = img->cuts + (size_t)w * SNAP_CUT_MAX;
        WorkerCut wc;
        if ((rc = workercut_decode(b, img->cut_len[w], &wc))) {
            rc = psrec_errf(rc, "cut at step %llu: worker %u's position: %s",
                            (unsigned long long)img->step, w, psrec_errmsg());
            goto out;
        }
        if (wc.pos.world != W)
            continue; /* lost in an earlier takeover: its samples went to the others */
        const uint32_t r = wc.pos.rank;
        if (r >= W || seen[r]) {
            rc = psrec_errf(PSREC_E_STATE, "cut at step %llu: two workers at rank %u of %u",
                            (unsigned long long)img->step, r, W);
            goto out;
        }
        seen[r] = 1;
        memcpy(cuts + (size_t)r * WORKERCUT_BYTES, b, WORKERCUT_BYTES);
        finished[r] = img->finished[w];
        done[r] = img->done[w];
        lost[r] = img->lost[w];
        jm.samples += wc.samples;
        if (wc.pos.epoch < jm.epoch)
            jm.epoch = wc.pos.epoch;
    }
    for (uint32_t r = 0; r < W; r++)
        if (!seen[r]) {
            rc = psrec_errf(PSREC_E_STATE, "cut at step %llu: no worker at rank %u of %u",
                            (unsigned long long)img->step, r, W);
            goto out;
        }
    if (jm.epoch == UINT64_MAX)
        jm.epoch = 0;
    CkptWriter *wr = NULL;
    const char *cfg = cw->config_text ? cw->config_text : "";
    /* run.meta too, so job.ckpt names the run (run_id) that every shard file must match. */
    RunMeta rm = cw->meta;
    rm.step = img->step;
    rm.epoch = jm.epoch;
    rm.shards = img->shards;
    rm.shard = 0;
    rm.workers = W;
    if ((rc = ckpt_writer_new(file, &wr)) || (rc = runmeta_write(wr, &rm)) ||
        (rc = ckpt_write_section(wr, "job.meta", &jm, sizeof jm)) ||
        (rc = ckpt_write_section(wr, "cut.pos", cuts, (size_t)W * WORKERCUT_BYTES)) ||
        (rc = ckpt_write_section(wr, "cut.finished", finished, (size_t)W * sizeof *finished)) ||
        (rc = ckpt_write_section(wr, "cut.done", done, W)) ||
        (rc = ckpt_write_section(wr, "cut.lost", lost, W)) ||
        (rc = ckpt_write_section(wr, "job.config", cfg, strlen(cfg))) ||
        (cw->plan_len && (rc = ckpt_write_section(wr, "job.plan", cw->plan, cw->plan_len))) ||
        (rc = ckpt_writer_finish(&wr))) {
        ckpt_writer_abort(&wr); /* the writer's message names the file already */
    }
out:
    free(cuts);
    free(finished);
    free(done);
    free(lost);
    free(seen);
    return rc;
}

/* After a REPLAN cut is committed, later cuts record the survivors' layout: the plan they
 * follow (the same cut_takeover_plan they compute from this cut), their count, and the lost
 * workers' samples, which no later position carries. Runs on the committer's thread, the
 * only one that reads these fields once training runs. */
static int adopt_takeover(CutWriter *cw)
{
    ResumeState rs;
    int rc = cut_resume_load(cw->root, &rs);
    if (rc)
        return rc;
    ReaderPlan *plan = NULL;
    uint32_t world = 0, vrank;
    void *bytes = NULL;
    size_t len = 0;
    if (!(rc = cut_takeover_plan(&rs, cw->samples_n, 0, &plan, &world, &vrank))) {
        size_t n = reader_plan_encoded_size(plan);
        if (!(bytes = malloc(n)))
            rc = psrec_nomem(__func__);
        else
            rc = reader_plan_encode(plan, bytes, n, &len);
    }
    if (!rc) {
        for (uint32_t r = 0; r < rs.job.workers; r++)
            if (rs.lost && rs.lost[r])
                cw->base_samples += rs.cuts[r].samples;
        free(cw->plan);
        cw->plan = bytes;
        cw->plan_len = len;
        cw->world = world;
        bytes = NULL;
    }
    free(bytes);
    reader_plan_free(&plan);
    cut_resume_fini(&rs);
    return rc;
}

int cut_write(void *ctx, const CutImage *img)
{
    const CutWriter *cw = ctx;
    /* Fault injection for tests: PSREC_TEST_CKPT_SLOW_STOP=s makes a stopping cut's write
     * take s seconds longer (room for a second signal while it is written). */
    const char *slow = getenv("PSREC_TEST_CKPT_SLOW_STOP");
    if (slow && img->stop) {
        double sec = atof(slow);
        struct timespec ts = {(time_t)sec, (long)((sec - (double)(time_t)sec) * 1e9)};
        while (nanosleep(&ts, &ts) != 0) {
        }
    }
    char tmpdir[4400];
    int rc = ckptdir_begin(cw->root, img->step, tmpdir, sizeof tmpdir);
    if (rc)
        return rc;
    if ((rc = write_shard_file(cw, img, tmpdir)) ||
        (cw->committer && (rc = write_job_file(cw, img, tmpdir)))) {
        char name[64];
        snprintf(name, sizeof name, "shard-%u.ckpt", img->shard);
        char why[600];
        snprintf(why, sizeof why, "%s", psrec_errmsg());
        if (!cw->committer)
            ckptdir_mark_failed(tmpdir, name, why);
        else
            ckptdir_abandon(tmpdir);
        return psrec_errf(rc, "%s", why);
    }
    if (!cw->committer)
        return 0;
    /* The committer: every shard's file, then MANIFEST and the rename. */
    const size_t nfiles = (size_t)img->shards + 1;
    char(*names)[64] = calloc(nfiles, sizeof *names);
    const char **files = calloc(nfiles, sizeof *files);
    if (!names || !files) {
        free(names);
        free(files);
        ckptdir_abandon(tmpdir);
        return psrec_nomem(__func__);
    }
    for (uint32_t k = 0; k < img->shards; k++) {
        snprintf(names[k], sizeof names[k], "shard-%u.ckpt", k);
        files[k] = names[k];
    }
    snprintf(names[img->shards], sizeof names[0], "job.ckpt");
    files[img->shards] = names[img->shards];
    rc = ckptdir_wait_files(tmpdir, files, nfiles, cw->wait_timeout);
    if (!rc)
        rc = ckptdir_commit(cw->root, img->step, files, nfiles, cw->keep);
    if (!rc && img->replan)
        rc = adopt_takeover((CutWriter *)cw);
    if (rc) {
        char why[600];
        snprintf(why, sizeof why, "%s", psrec_errmsg());
        ckptdir_abandon(tmpdir);
        rc = psrec_errf(rc, "%s", why);
    }
    free(names);
    free(files);
    return rc;
}

/* ------------------------------------------------------------------ resume */

void cut_resume_fini(ResumeState *rs)
{
    free(rs->cuts);
    free(rs->done);
    free(rs->lost);
    free(rs->plan);
    free(rs->config_text);
    memset(rs, 0, sizeof *rs);
}

static int section_copy(const CkptReader *r, const char *file, const char *name, void *dst,
                        size_t size)
{
    const void *p;
    size_t n;
    if (ckpt_section(r, name, &p, &n) || n != size)
        return psrec_errf(PSREC_E_FORMAT, "%s: section %s missing or not %zu bytes", file, name,
                          size);
    memcpy(dst, p, size);
    return 0;
}

int cut_resume_load(const char *root, ResumeState *rs)
{
    memset(rs, 0, sizeof *rs);
    uint64_t step;
    int rc = ckptdir_newest(root, &step, rs->step_dir, sizeof rs->step_dir);
    if (rc)
        return rc;
    char file[4600];
    CkptReader *r = NULL;
    snprintf(file, sizeof file, "%s/shard-0.ckpt", rs->step_dir);
    if ((rc = ckpt_reader_open(file, &r)) || (rc = runmeta_read(r, file, &rs->meta)))
        goto out;
    ckpt_reader_free(&r);
    snprintf(file, sizeof file, "%s/job.ckpt", rs->step_dir);
    if ((rc = ckpt_reader_open(file, &r)) ||
        (rc = section_copy(r, file, "job.meta", &rs->job, sizeof rs->job)))
        goto out;
    /* job.ckpt names the run (since run.meta 2); shard-0.ckpt must be that run's. */
    const void *jp;
    size_t jlen;
    RunMeta jm;
    char shard0[4600];
    snprintf(shard0, sizeof shard0, "%s/shard-0.ckpt", rs->step_dir);
    if (ckpt_section(r, "run.meta", &jp, &jlen) == 0 &&
        ((rc = runmeta_read(r, file, &jm)) ||
         (rc = runmeta_check_run_id(shard0, rs->meta.run_id, file, jm.run_id))))
        goto out;
    if (rs->job.version != JOBCUT_VERSION || rs->job.size != sizeof rs->job ||
        !rs->job.workers || rs->job.workers > (1u << 20) || rs->job.step != rs->meta.step) {
        rc = psrec_errf(PSREC_E_FORMAT, "%s: job.meta version %u, size %u, %u workers, step "
                        "%llu (shard files say %llu)", file, rs->job.version, rs->job.size,
                        rs->job.workers, (unsigned long long)rs->job.step,
                        (unsigned long long)rs->meta.step);
        goto out;
    }
    const uint32_t W = rs->job.workers;
    rs->cuts = calloc(W, sizeof *rs->cuts);
    rs->done = calloc(W, 1);
    unsigned char *enc = calloc(W, WORKERCUT_BYTES);
    if (!rs->cuts || !rs->done || !enc) {
        free(enc);
        rc = psrec_nomem(__func__);
        goto out;
    }
    if ((rc = section_copy(r, file, "cut.pos", enc, (size_t)W * WORKERCUT_BYTES)) ||
        (rc = section_copy(r, file, "cut.done", rs->done, W))) {
        free(enc);
        goto out;
    }
    for (uint32_t w = 0; w < W && !rc; w++) {
        if ((rc = workercut_decode(enc + (size_t)w * WORKERCUT_BYTES, WORKERCUT_BYTES,
                                   &rs->cuts[w])))
            rc = psrec_errf(rc, "%s: worker %u: %s", file, w, psrec_errmsg());
        else if (rs->cuts[w].pos.rank != w || rs->cuts[w].pos.world != W ||
                 rs->cuts[w].pos.seed != rs->job.seed)
            rc = psrec_errf(PSREC_E_FORMAT, "%s: worker %u's position belongs to another "
                            "layout", file, w);
    }
    free(enc);
    if (rc)
        goto out;
    const void *p;
    size_t n;
    if (!(rs->lost = calloc(W, 1))) {
        rc = psrec_nomem(__func__);
        goto out;
    }
    if (ckpt_section(r, "cut.lost", &p, &n) == 0 && n == W)
        memcpy(rs->lost, p, W);
    if (ckpt_section(r, "job.config", &p, &n) == 0 && (rs->config_text = malloc(n + 1))) {
        memcpy(rs->config_text, p, n);
        rs->config_text[n] = '\0';
    }
    if (ckpt_section(r, "job.plan", &p, &n) == 0 && n) {
        if (!(rs->plan = malloc(n))) {
            rc = psrec_nomem(__func__);
            goto out;
        }
        memcpy(rs->plan, p, n);
        rs->plan_len = n;
    }
out:
    ckpt_reader_free(&r);
    if (rc)
        cut_resume_fini(rs);
    return rc;
}

int cut_resume_start(const ResumeState *rs, uint32_t rank, uint32_t world, int interleave,
                     uint64_t n, ReaderPosition *start, ReaderPlan **plan)
{
    *plan = NULL;
    ReaderPlan *cur = NULL;
    int rc = 0;
    if (rs->plan_len && (rc = reader_plan_decode(rs->plan, rs->plan_len, &cur)))
        return psrec_errf(rc, "%s/job.ckpt: job.plan: %s", rs->step_dir, psrec_errmsg());
    const uint32_t W = rs->job.workers;
    if (!reader_plan_needed(W, (int)rs->job.interleave, world, interleave)) {
        /* The same layout: every worker goes on exactly where it stood (bit for bit). */
        *start = rs->cuts[rank].pos;
        *plan = cur;
        return 0;
    }
    ReaderPosition *pos = calloc(W, sizeof *pos);
    if (!pos) {
        reader_plan_free(&cur);
        return psrec_nomem(__func__);
    }
    for (uint32_t w = 0; w < W; w++)
        pos[w] = rs->cuts[w].pos;
    rc = reader_plan_build(n, pos, W, cur, plan);
    if (rc)
        rc = psrec_errf(rc, "%s: re-partitioning %u workers' positions over %u: %s",
                        rs->step_dir, W, world, psrec_errmsg());
    else
        reader_start_position(*plan, rs->job.seed, rank, world, interleave, start);
    free(pos);
    reader_plan_free(&cur);
    return rc;
}

int cut_takeover_plan(const ResumeState *rs, uint64_t n, uint32_t rank, ReaderPlan **plan,
                      uint32_t *world, uint32_t *vrank)
{
    *plan = NULL;
    *world = 0;
    *vrank = UINT32_MAX;
    const uint32_t W = rs->job.workers;
    ReaderPlan *cur = NULL;
    int rc = 0;
    if (rs->plan_len && (rc = reader_plan_decode(rs->plan, rs->plan_len, &cur)))
        return psrec_errf(rc, "%s/job.ckpt: job.plan: %s", rs->step_dir, psrec_errmsg());
    ReaderPosition *pos = calloc(W, sizeof *pos);
    if (!pos) {
        reader_plan_free(&cur);
        return psrec_nomem(__func__);
    }
    for (uint32_t w = 0; w < W; w++) {
        pos[w] = rs->cuts[w].pos;
        if (!rs->lost[w] && !rs->done[w]) {
            if (w == rank)
                *vrank = *world;
            (*world)++;
        }
    }
    if (!*world)
        rc = psrec_errf(PSREC_E_STATE, "%s: no worker left to take over the lost ones",
                        rs->step_dir);
    else if ((rc = reader_plan_build(n, pos, W, cur, plan)))
        rc = psrec_errf(rc, "%s: the takeover plan: %s", rs->step_dir, psrec_errmsg());
    free(pos);
    reader_plan_free(&cur);
    return rc;
}
