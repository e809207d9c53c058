/* `psrec inspect [--json] PATH`: prints a dataset's meta record and counts, or a checkpoint's
 * run meta, files and tables and, when it has a job.ckpt, the cut it holds (launch/cut.h):
 * step, epoch, samples, wall time, consistency and partition mode, what kind of cut it is,
 * the model hash, every worker's position and the re-partition plan in effect. Read-only.
 * A checkpoint directory is verified file by file against its MANIFEST (size, CRC-32) first
 * and refused, exit 1, when any check fails or its cut does not decode (resume would refuse
 * it too); a single .ckpt file is checked by its own container checks on open. A job.ckpt
 * without a job.meta section (not written by a cut) shows only its sections. */
#include "common/ckpt.h"
#include "common/dataset.h"
#include "common/error.h"
#include "common/runmeta.h"
#include "common/config.h"
#include "launch/ckptdir.h"
#include "launch/commands.h"
#include "launch/cut.h"
#include "server/optim.h"
#include "server/table.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void inspect_usage(FILE *f)
{
    fprintf(f, "usage: psrec inspect [--json] PATH\n\n"
               "Print the meta record and counts of a dataset made by `psrec prep`, or verify a\n"
               "checkpoint and print what it holds: PATH is a run's checkpoint directory (its\n"
               "newest valid step-N dir; damaged newer ones are reported and skipped), one\n"
               "step-N dir (exit 1 unless every file matches its MANIFEST), or a .ckpt file.\n"
               "For a cut (a step dir with job.ckpt) it also prints the cut's step, epoch,\n"
               "samples and wall seconds over the run's life, consistency and partition mode,\n"
               "kind (periodic, stopping, final), model hash, every worker's position and the\n"
               "re-partition plan in effect.\n"
               "  --json     one JSON object on stdout (keys: news, users, impressions, samples,\n"
               "             vocab, categories, missing_news_refs, skipped_lines, ...; for a\n"
               "             checkpoint: step, epoch, shards, workers, ..., files, tables, job,\n"
               "             cut {step, epoch, samples, wall_s, consistency, partition, kind,\n"
               "             stop, final, model_hash, seed, shards, workers [...], plan})\n"
               "  -h, --help this text\n");
}

typedef struct Field {
    const char *name;
    uint64_t value;
    const char *doc;
} Field;

static void json_string(const char *s)
{
    putchar('"');
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            putchar('\\');
        putchar(*p);
    }
    putchar('"');
}

/* The head of a report: "{"path":..,"name":value,..." (JSON, left open for the caller to
 * close) or a titled table, one field per line. */
/* A 64-bit identity (fingerprint, run id) as 16 hex digits: a JSON string, since JSON
 * numbers lose bits past 2^53. */
static void print_hex(const char *name, uint64_t v, const char *doc, int json, int width)
{
    if (json)
        printf(",\"%s\":\"%016llx\"", name, (unsigned long long)v);
    else
        printf("  %-*s %16llx  %s\n", width, name, (unsigned long long)v, doc);
}

static void print_fields(const char *kind, const char *path, const Field *f, size_t n, int json,
                         int width)
{
    if (json) {
        printf("{\"path\":");
        json_string(path);
        for (size_t i = 0; i < n; i++)
            printf(",\"%s\":%llu", f[i].name, (unsigned long long)f[i].value);
        return;
    }
    printf("%s %s\n", kind, path);
    for (size_t i = 0; i < n; i++)
        printf("  %-*s %12llu  %s\n", width, f[i].name, (unsigned long long)f[i].value, f[i].doc);
}

/* A checkpoint file: its run meta, and for each table the rows held (from "<t>.meta"). */
static int inspect_ckpt_file(const char *file, int json)
{
    CkptReader *r = NULL;
    RunMeta m;
    if (ckpt_reader_open(file, &r) || runmeta_read(r, file, &m)) {
        fprintf(stderr, "psrec inspect: %s\n", psrec_errmsg());
        ckpt_reader_free(&r);
        return EXIT_FAIL;
    }
    const Field fields[] = {
        {"step", m.step, "global steps done"},   {"epoch", m.epoch, "epoch of the next sample"},
        {"word_dim", m.E, "E"},                  {"hidden", m.H, "H"},
        {"title_len", m.title_len, ""},           {"his_len", m.his_len, ""},
        {"negatives", m.K, "K"},                 {"optimizer", m.optimizer, "0 adam, 1 adagrad, 2 sgd"},
        {"vocab_rows", m.vocab_rows, ""},         {"category_rows", m.category_rows, ""},
        {"user_rows", m.user_rows, ""},           {"seed", m.seed, "init seed"},
        {"shards", m.shards, "shard files"},      {"shard", m.shard, "this file's shard"},
    };
    print_fields("checkpoint", file, fields, sizeof fields / sizeof fields[0], json, 14);
    print_hex("run_id", m.run_id, "the run this file belongs to (0: unknown)", json, 14);
    print_hex("data_fingerprint", m.data_fingerprint, "training set's (0: unknown)", json, 14);
    printf(json ? ",\"tables\":{" : "  tables (rows held / key range x width):\n");
    int first = 1;
    for (size_t i = 0; i < ckpt_section_count(r); i++) {
        size_t size;
        const char *name = ckpt_section_name(r, i, &size);
        const char *dot = strrchr(name, '.');
        if (!dot || strcmp(dot, ".meta") || !strcmp(name, "run.meta"))
            continue;
        char table[CKPT_NAME_MAX];
        snprintf(table, sizeof table, "%.*s", (int)(dot - name), name);
        TableSavedInfo tm;
        if (table_saved_info(r, table, &tm))
            continue;
        if (json)
            printf("%s\"%.*s\":{\"rows_held\":%llu,\"rows\":%llu,\"width\":%u}",
                   first ? "" : ",", (int)(dot - name), name, (unsigned long long)tm.held,
                   (unsigned long long)tm.rows, tm.width);
        else
            printf("    %-12.*s %10llu / %llu x %u%s\n", (int)(dot - name), name,
                   (unsigned long long)tm.held, (unsigned long long)tm.rows, tm.width,
                   tm.dense ? " (dense)" : "");
        first = 0;
    }
    if (json)
        printf("}}\n");
    ckpt_reader_free(&r);
    return EXIT_OK;
}

static const char *optimizer_name(uint32_t k)
{
    switch (k) {
    case OPTIM_ADAM: return "adam";
    case OPTIM_ADAGRAD: return "adagrad";
    case OPTIM_SGD: return "sgd";
    }
    return "unknown";
}

/* Rows held per table, summed over the shard files of a step dir. */
typedef struct TableRows {
    char name[CKPT_NAME_MAX];
    TableSavedInfo info; /* info.held: summed */
} TableRows;

static int sum_table_rows(const char *step_dir, const RunMeta *m, TableRows *t, size_t max,
                          size_t *n)
{
    *n = 0;
    for (uint32_t k = 0; k < m->shards; k++) {
        char file[4400];
        CkptReader *r = NULL;
        snprintf(file, sizeof file, "%s/shard-%u.ckpt", step_dir, k);
        RunMeta mk;
        if (ckpt_reader_open(file, &r))
            return -1;
        /* As loading does: every file of the cut is the same run's. */
        if (runmeta_read(r, file, &mk) ||
            runmeta_check_run_id(file, mk.run_id, "shard-0.ckpt", m->run_id)) {
            ckpt_reader_free(&r);
            return -1;
        }
        for (size_t i = 0; i < ckpt_section_count(r); i++) {
            const char *name = ckpt_section_name(r, i, NULL);
            const char *dot = strrchr(name, '.');
            if (!dot || strcmp(dot, ".meta") || !strcmp(name, "run.meta"))
                continue;
            char table[CKPT_NAME_MAX];
            snprintf(table, sizeof table, "%.*s", (int)(dot - name), name);
            TableSavedInfo tm;
            if (table_saved_info(r, table, &tm))
                continue;
            size_t j = 0;
            while (j < *n && strcmp(t[j].name, table))
                j++;
            if (j == *n) {
                if (*n == max)
                    continue;
                snprintf(t[j].name, sizeof t[j].name, "%s", table);
                t[j].info = tm;
                t[j].info.held = 0;
                (*n)++;
            }
            t[j].info.held += tm.held;
        }
        ckpt_reader_free(&r);
    }
    return 0;
}

/* job.ckpt's sections, generically (the trainer defines them). */
static void print_job_sections(const char *step_dir, int json)
{
    char file[4400];
    snprintf(file, sizeof file, "%s/" CKPTDIR_JOB_FILE, step_dir);
    CkptReader *r = NULL;
    if (ckpt_reader_open(file, &r)) {
        printf(json ? ",\"job\":null" : "  job.ckpt: none\n");
        return;
    }
    printf(json ? ",\"job\":{\"sections\":[" : "  job.ckpt sections (bytes):\n");
    for (size_t i = 0; i < ckpt_section_count(r); i++) {
        size_t size;
        const char *name = ckpt_section_name(r, i, &size);
        if (json) {
            printf("%s{\"name\":", i ? "," : "");
            json_string(name);
            printf(",\"size\":%zu}", size);
        } else {
            printf("    %-24s %12zu\n", name, size);
        }
    }
    if (json)
        printf("]}");
    ckpt_reader_free(&r);
}

/* The cut job.ckpt holds, decoded and checked as resume checks it (cut_resume_load). */
typedef struct CutView {
    int present;            /* 0: no job.ckpt, or one without job.meta: nothing to show */
    JobCutMeta jm;
    WorkerCut *cuts;        /* (jm.workers) every worker's position at the cut; .samples
                               counts the life that wrote the cut (jm.samples adds the
                               earlier lives) */
    unsigned char *done;    /* (jm.workers) 1: it had finished every epoch */
    ReaderPlan *plan;       /* the re-partition plan in effect, or NULL */
} CutView;

static void cutview_fini(CutView *v)
{
    free(v->cuts);
    free(v->done);
    reader_plan_free(&v->plan);
    memset(v, 0, sizeof *v);
}

/* Read step_dir's job.ckpt into v. Returns 0 (v->present says whether there is a cut) or
 * PSREC_E_FORMAT / PSREC_E_NOMEM with detail naming the file and section. */
static int cutview_load(const char *step_dir, const RunMeta *m, CutView *v)
{
    char file[4400];
    CkptReader *r = NULL;
    const void *p;
    size_t n;
    int rc = 0;
    memset(v, 0, sizeof *v);
    snprintf(file, sizeof file, "%s/" CKPTDIR_JOB_FILE, step_dir);
    if (access(file, F_OK) != 0)
        return 0;
    if ((rc = ckpt_reader_open(file, &r)))
        return rc;
    RunMeta rm;
    if (ckpt_section(r, "run.meta", &p, &n) == 0 &&
        ((rc = runmeta_read(r, file, &rm)) ||
         (rc = runmeta_check_run_id("shard-0.ckpt", m->run_id, file, rm.run_id))))
        goto out;
    if (ckpt_section(r, "job.meta", &p, &n) != 0)
        goto out; /* not a cut's job.ckpt */
    JobCutMeta *jm = &v->jm;
    if (n != sizeof *jm) {
        rc = psrec_errf(PSREC_E_FORMAT, "%s: job.meta is %zu bytes, a cut's is %zu", file, n,
                        sizeof *jm);
        goto out;
    }
    memcpy(jm, p, sizeof *jm);
    if (jm->version != JOBCUT_VERSION || jm->size != sizeof *jm || !jm->workers ||
        jm->workers > (1u << 20) || jm->step != m->step) {
        rc = psrec_errf(PSREC_E_FORMAT, "%s: job.meta version %u, size %u, %u workers, step "
                        "%llu (shard files say %llu)", file, jm->version, jm->size, jm->workers,
                        (unsigned long long)jm->step, (unsigned long long)m->step);
        goto out;
    }
    const uint32_t W = jm->workers;
    if (!(v->cuts = calloc(W, sizeof *v->cuts)) || !(v->done = calloc(W, 1))) {
        rc = PSREC_E_NOMEM;
        goto out;
    }
    if (ckpt_section(r, "cut.pos", &p, &n) != 0 || n != (size_t)W * WORKERCUT_BYTES) {
        rc = psrec_errf(PSREC_E_FORMAT, "%s: cut.pos missing or not %u x %u bytes", file, W,
                        WORKERCUT_BYTES);
        goto out;
    }
    for (uint32_t w = 0; w < W; w++) {
        if ((rc = workercut_decode((const unsigned char *)p + (size_t)w * WORKERCUT_BYTES,
                                   WORKERCUT_BYTES, &v->cuts[w]))) {
            rc = psrec_errf(rc, "%s: worker %u: %s", file, w, psrec_errmsg());
            goto out;
        }
        if (v->cuts[w].pos.rank != w || v->cuts[w].pos.world != W ||
            v->cuts[w].pos.seed != jm->seed) {
            rc = psrec_errf(PSREC_E_FORMAT, "%s: worker %u's position belongs to another "
                            "layout", file, w);
            goto out;
        }
    }
    if (ckpt_section(r, "cut.done", &p, &n) != 0 || n != W) {
        rc = psrec_errf(PSREC_E_FORMAT, "%s: cut.done missing or not %u bytes", file, W);
        goto out;
    }
    memcpy(v->done, p, W);
    if (ckpt_section(r, "job.plan", &p, &n) == 0 && n &&
        (rc = reader_plan_decode(p, n, &v->plan))) {
        rc = psrec_errf(rc, "%s: job.plan: %s", file, psrec_errmsg());
        goto out;
    }
    v->present = 1;
out:
    ckpt_reader_free(&r);
    if (rc)
        cutview_fini(v);
    return rc;
}

static const char *cut_kind(const JobCutMeta *jm)
{
    return jm->final ? "final" : jm->stop ? "stopping" : "periodic";
}

static const char *partition_name(uint32_t interleave)
{
    return interleave ? "interleave" : "range";
}

/* ,"cut":{...} or ,"cut":null */
static void print_cut_json(const CutView *v)
{
    if (!v->present) {
        printf(",\"cut\":null");
        return;
    }
    const JobCutMeta *jm = &v->jm;
    printf(",\"cut\":{\"step\":%llu,\"epoch\":%llu,\"samples\":%llu,\"wall_s\":%.17g,"
           "\"consistency\":\"%s\",\"partition\":\"%s\",\"kind\":\"%s\",\"stop\":%s,"
           "\"final\":%s,\"model_hash\":\"%016llx\",\"seed\":%llu,\"shards\":%u,\"workers\":[",
           (unsigned long long)jm->step, (unsigned long long)jm->epoch,
           (unsigned long long)jm->samples, jm->wall_s,
           config_consistency_name((ConfigConsistency)jm->consistency),
           partition_name(jm->interleave), cut_kind(jm), jm->stop ? "true" : "false",
           jm->final ? "true" : "false", (unsigned long long)jm->model_hash,
           (unsigned long long)jm->seed, jm->shards);
    for (uint32_t w = 0; w < jm->workers; w++) {
        const WorkerCut *c = &v->cuts[w];
        printf("%s{\"worker\":%u,\"epoch\":%llu,\"offset\":%llu,\"planned\":%s,\"steps\":%llu,"
               "\"samples\":%llu,\"done\":%s}",
               w ? "," : "", w, (unsigned long long)c->pos.epoch,
               (unsigned long long)c->pos.offset, c->pos.planned ? "true" : "false",
               (unsigned long long)c->steps, (unsigned long long)c->samples,
               v->done[w] ? "true" : "false");
    }
    printf("],\"plan\":");
    if (!v->plan) {
        printf("null}");
        return;
    }
    const ReaderPlan *pl = v->plan;
    printf("{\"epoch\":%llu,\"samples\":%llu,\"parts\":[", (unsigned long long)pl->epoch,
           (unsigned long long)pl->samples);
    for (uint32_t i = 0; i < pl->nparts; i++) {
        const ReaderPlanPart *pt = &pl->parts[i];
        printf("%s{\"epoch\":%llu,\"remaining\":%llu,\"segments\":%u,\"base_workers\":%u,"
               "\"base_partition\":\"%s\"}",
               i ? "," : "", (unsigned long long)pt->epoch, (unsigned long long)pt->remaining,
               pt->nseg, pt->base_world, partition_name(pt->base_interleave));
    }
    printf("]}}");
}

static void print_cut_text(const CutView *v)
{
    if (!v->present)
        return;
    const JobCutMeta *jm = &v->jm;
    printf("  cut at step %llu: %s%s\n", (unsigned long long)jm->step, cut_kind(jm),
           jm->final ? " (end of training)" : jm->stop ? " (preemption: the run stopped here)"
                                                       : "");
    printf("    %-12s %12llu  epoch of the slowest worker's next sample\n", "epoch",
           (unsigned long long)jm->epoch);
    printf("    %-12s %12llu  samples trained over the run's life up to the cut\n", "samples",
           (unsigned long long)jm->samples);
    printf("    %-12s %12.1f  wall seconds of the run's lives up to the cut\n", "wall_s",
           jm->wall_s);
    printf("    %-12s %12s  ps.consistency\n", "consistency",
           config_consistency_name((ConfigConsistency)jm->consistency));
    printf("    %-12s %12s  data.partition\n", "partition", partition_name(jm->interleave));
    printf("    %-12s %016llx  hash of what shapes the model (resume checks it)\n",
           "model_hash", (unsigned long long)jm->model_hash);
    printf("    %-12s %12llu  train.seed\n", "seed", (unsigned long long)jm->seed);
    printf("  workers at the cut (offset: samples of the epoch trained, in its order, or in its\n"
           "  share of the plan when planned; steps: its clock; samples: trained in the life\n"
           "  that wrote the cut):\n");
    printf("    %6s %8s %12s %7s %10s %12s %5s\n", "worker", "epoch", "offset", "planned",
           "steps", "samples", "done");
    for (uint32_t w = 0; w < jm->workers; w++) {
        const WorkerCut *c = &v->cuts[w];
        printf("    %6u %8llu %12llu %7s %10llu %12llu %5s\n", w,
               (unsigned long long)c->pos.epoch, (unsigned long long)c->pos.offset,
               c->pos.planned ? "yes" : "no", (unsigned long long)c->steps,
               (unsigned long long)c->samples, v->done[w] ? "yes" : "no");
    }
    if (!v->plan) {
        printf("  re-partition plan: none (every epoch in the normal layout)\n");
        return;
    }
    const ReaderPlan *pl = v->plan;
    printf("  re-partition plan in effect from epoch %llu (%u epoch(s) re-partitioned):\n",
           (unsigned long long)pl->epoch, pl->nparts);
    for (uint32_t i = 0; i < pl->nparts; i++) {
        const ReaderPlanPart *pt = &pl->parts[i];
        printf("    epoch %llu: %llu samples left in %u segment(s) of the order of %u %s "
               "worker(s)\n",
               (unsigned long long)pt->epoch, (unsigned long long)pt->remaining, pt->nseg,
               pt->base_world, partition_name(pt->base_interleave));
    }
}

/* A verified step dir: its run meta, files, rows per table, job.ckpt sections. */
static int inspect_step_dir(const char *step_dir, int json)
{
    CkptManifest man;
    CkptReader *r = NULL;
    RunMeta m;
    char file[4400];
    TableRows tables[64];
    size_t ntables = 0;
    CutView cut = {0};
    int rc = EXIT_FAIL;
    if (ckptdir_verify(step_dir, &man)) {
        fprintf(stderr, "psrec inspect: not a valid checkpoint: %s\n", psrec_errmsg());
        return EXIT_FAIL;
    }
    snprintf(file, sizeof file, "%s/shard-0.ckpt", step_dir);
    if (ckpt_reader_open(file, &r) || runmeta_read(r, file, &m) ||
        sum_table_rows(step_dir, &m, tables, sizeof tables / sizeof tables[0], &ntables) ||
        cutview_load(step_dir, &m, &cut)) {
        fprintf(stderr, "psrec inspect: not a valid checkpoint: %s\n", psrec_errmsg());
        goto out;
    }
    const Field fields[] = {
        {"step", m.step, "global steps done"},      {"epoch", m.epoch, "epoch of the next sample"},
        {"shards", m.shards, "server shard files"}, {"workers", m.workers, "workers of the run"},
        {"word_dim", m.E, "E"},                     {"hidden", m.H, "H"},
        {"title_len", m.title_len, ""},             {"his_len", m.his_len, ""},
        {"negatives", m.K, "K"},                    {"vocab_rows", m.vocab_rows, ""},
        {"category_rows", m.category_rows, ""},     {"user_rows", m.user_rows, ""},
        {"seed", m.seed, "init seed"},
    };
    print_fields("checkpoint", step_dir, fields, sizeof fields / sizeof fields[0], json, 14);
    print_hex("run_id", m.run_id, "the run these files belong to (0: unknown)", json, 14);
    print_hex("data_fingerprint", m.data_fingerprint, "training set's (0: unknown)", json, 14);
    if (json) {
        printf(",\"valid\":true,\"optimizer\":\"%s\",\"lr\":%g,\"beta1\":%g,\"beta2\":%g,"
               "\"eps\":%g,\"files\":[",
               optimizer_name(m.optimizer), (double)m.lr, (double)m.beta1, (double)m.beta2,
               (double)m.eps);
        for (size_t i = 0; i < man.nfiles; i++) {
            printf("%s{\"name\":", i ? "," : "");
            json_string(man.files[i].name);
            printf(",\"size\":%llu,\"crc32\":\"%08x\"}", (unsigned long long)man.files[i].size,
                   man.files[i].crc);
        }
        printf("],\"tables\":{");
        for (size_t i = 0; i < ntables; i++)
            printf("%s\"%s\":{\"rows_held\":%llu,\"rows\":%llu,\"width\":%u}", i ? "," : "",
                   tables[i].name, (unsigned long long)tables[i].info.held,
                   (unsigned long long)tables[i].info.rows, tables[i].info.width);
        printf("}");
    } else {
        printf("  %-14s %12s  lr %g, beta1 %g, beta2 %g, eps %g\n", "optimizer",
               optimizer_name(m.optimizer), (double)m.lr, (double)m.beta1, (double)m.beta2,
               (double)m.eps);
        printf("  files (all match MANIFEST: size, CRC-32):\n");
        for (size_t i = 0; i < man.nfiles; i++)
            printf("    %-24s %12llu  crc32 %08x\n", man.files[i].name,
                   (unsigned long long)man.files[i].size, man.files[i].crc);
        printf("  tables (rows held over all shards / key range x width):\n");
        for (size_t i = 0; i < ntables; i++)
            printf("    %-12s %10llu / %llu x %u%s\n", tables[i].name,
                   (unsigned long long)tables[i].info.held,
                   (unsigned long long)tables[i].info.rows, tables[i].info.width,
                   tables[i].info.dense ? " (dense)" : "");
    }
    print_job_sections(step_dir, json);
    if (json) {
        print_cut_json(&cut);
        printf("}\n");
    } else {
        print_cut_text(&cut);
    }
    rc = EXIT_OK;
out:
    cutview_fini(&cut);
    ckpt_reader_free(&r);
    ckptdir_manifest_fini(&man);
    return rc;
}

/* PATH names a checkpoint when it is a .ckpt file, or a directory that is not a dataset (no
 * data.mdb): a run's checkpoint root (its newest valid step dir) or one step dir. */
static int inspect_ckpt(const char *path, int json, int *handled)
{
    struct stat st;
    char step_dir[4200], p[4400];
    *handled = 0;
    if (stat(path, &st) != 0)
        return EXIT_FAIL;
    if (S_ISREG(st.st_mode)) {
        *handled = 1;
        return inspect_ckpt_file(path, json);
    }
    snprintf(p, sizeof p, "%s/data.mdb", path);
    if (!S_ISDIR(st.st_mode) || access(p, F_OK) == 0)
        return EXIT_FAIL;
    *handled = 1;
    if (ckptdir_resolve(path, step_dir, sizeof step_dir) != 0) {
        fprintf(stderr, "psrec inspect: not a valid checkpoint: %s\n", psrec_errmsg());
        return EXIT_FAIL;
    }
    return inspect_step_dir(step_dir, json);
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'h') {
            inspect_usage(stdout);
            return EXIT_OK;
        } else {
            inspect_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "psrec inspect: need exactly one PATH (a dataset or a checkpoint)\n");
        inspect_usage(stderr);
        return EXIT_USAGE;
    }
    const char *path = argv[optind];
    int handled, crc = inspect_ckpt(path, json, &handled);
    if (handled)
        return crc;
    Dataset *ds = NULL;
    if (dataset_open(path, &ds)) {
        fprintf(stderr, "psrec inspect: %s\n", psrec_errmsg());
        return EXIT_FAIL;
    }
    const DatasetMeta *m = dataset_meta(ds);
    const Field fields[] = {
        {"format_version", m->version, "dataset format version"},
        {"tokenizer_version", m->tokenizer_version, "tokenizer version"},
        {"title_len", m->title_len, "tokens kept per title"},
        {"his_len", m->his_len, "clicks kept per history"},
        {"min_count", m->min_count, "vocabulary min count"},
        {"vocab_shared", m->vocab_shared, "1 if made with --vocab-from"},
        {"news", m->news, "distinct news ids in news.tsv"},
        {"users", m->users, "distinct user ids in behaviors.tsv"},
        {"impressions", m->impressions, "impressions (behaviors lines)"},
        {"labeled_impressions", m->labeled_impressions, "impressions with labels"},
        {"samples", m->samples, "training samples (clicks)"},
        {"candidates", m->candidates, "candidates over all impressions"},
        {"history_refs", m->history_refs, "history entries over all impressions"},
        {"vocab", m->vocab, "vocabulary words (without <pad>, <unk>)"},
        {"categories", m->categories, "distinct categories in news.tsv"},
        {"missing_news_refs", m->missing_news_refs, "history/candidate ids not in news.tsv"},
        {"skipped_lines", m->skipped_lines, "malformed lines skipped"},
        {"duplicate_news", m->duplicate_news, "repeated news ids (first kept)"},
        {"unknown_users", m->unknown_users, "impressions of users unknown to the vocab source"},
        {"news_rows", m->news_rows, "news table rows (with padding news 0)"},
        {"user_rows", m->user_rows, "user table rows (with <unk> 0)"},
        {"vocab_rows", m->vocab_rows, "vocabulary rows (with <pad>, <unk>)"},
        {"category_rows", m->category_rows, "category rows (with <none> 0)"},
        {"tsv_bytes", m->tsv_bytes, "bytes of TSV read"},
    };
    print_fields("dataset", path, fields, sizeof fields / sizeof fields[0], json, 20);
    print_hex("fingerprint", m->fingerprint, "vocab, categories, users (0: unknown)", json, 20);
    if (json)
        printf("}\n");
    dataset_free(&ds);
    return EXIT_OK;
}
