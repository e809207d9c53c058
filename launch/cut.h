/* A run's checkpoints as consistent cuts: what the files of a cut hold, writing them (on a
 * shard's or the single-process trainer's checkpoint thread), and reading a cut back for
 * `psrec train --resume`.
 *
 * A cut at step S is one step directory (launch/ckptdir.h) with
 *   shard-<k>.ckpt  per shard: run.meta + the shard's tables and optimizer state at S
 *   job.ckpt        the job-wide part: job.meta (JobCutMeta), the workers' positions
 *                   (cut.pos: one encoded WorkerCut per worker, cut.finished, cut.done), the effective
 *                   config text (job.config) and the re-partition plan in effect (job.plan)
 *   MANIFEST        written last by the committer (shard 0, or the single process)
 * Every shard writes its own file; shard 0 also writes job.ckpt, waits until every other
 * shard's file is there and commits. */
#ifndef PSREC_LAUNCH_CUT_H
#define PSREC_LAUNCH_CUT_H

#include "common/config.h"
#include "common/runmeta.h"
#include "server/snapshot.h"
#include "worker/reader.h"
#include "worker/train.h"

#include <stddef.h>
#include <stdint.h>

#define JOBCUT_VERSION 1u

typedef struct JobCutMeta {
    uint32_t version;       /* JOBCUT_VERSION */
    uint32_t size;          /* sizeof(JobCutMeta) */
    uint64_t step;          /* the cut: global steps finished */
    uint64_t epoch;         /* epoch of the slowest worker's next sample */
    uint32_t workers;       /* positions in cut.pos */
    uint32_t shards;        /* shard files */
    uint32_t consistency;   /* ConfigConsistency */
    uint32_t interleave;    /* data.partition == interleave */
    uint64_t model_hash;    /* cut_model_hash of the run */
    uint64_t samples;       /* samples trained over the run's whole life up to the cut */
    uint64_t seed;          /* train.seed (shuffling and negatives) */
    uint32_t stop;          /* a stopping (preemption) cut */
    uint32_t final;         /* the end of training */
    double wall_s;          /* wall seconds of the run's lives up to the cut */
} JobCutMeta;

/* What the checkpoint thread needs besides the image; owned by the caller, read-only while
 * the writer runs. */
typedef struct CutWriter {
    char root[4096];        /* checkpoint root */
    RunMeta meta;           /* shape and optimizer; step/shard fields are set per image */
    const char *config_text; /* effective config (INI) */
    uint64_t model_hash;
    uint32_t consistency, interleave;
    uint64_t seed;
    int keep;
    int committer;          /* 1: shard 0 / single process: writes job.ckpt and commits */
    double wait_timeout;    /* committer: seconds to wait for the other shards' files */
    void *plan;             /* re-partition plan bytes in effect (reader_plan_encode), or
                               NULL; owned (malloc'ed): a REPLAN cut replaces them */
    size_t plan_len;
    uint32_t world;         /* the workers of the current layout (W, fewer after a takeover):
                               job.ckpt holds the positions of this layout only */
    uint64_t samples_n;     /* the dataset's samples (for the takeover plan) */
    uint64_t base_samples;  /* samples of earlier lives not in the images' positions */
    double life_t0;         /* timer_now() at this life's start */
    double base_wall;       /* wall seconds of earlier lives */
} CutWriter;

/* The SnapWriteFn: write img as this shard's part of its step directory (and, for the
 * committer, job.ckpt and the commit). A failure leaves the previous checkpoint valid. */
int cut_write(void *cut_writer, const CutImage *img);

/* The hash of what shapes the model (dims, id-space sizes, optimizer and its settings, init
 * seed): a resume with another value would load tables into the wrong shapes. */
uint64_t cut_model_hash(const RunMeta *m);

/* A cut read back for --resume. */
typedef struct ResumeState {
    char step_dir[4400];
    RunMeta meta;           /* shard 0's run.meta */
    JobCutMeta job;
    WorkerCut *cuts;        /* (job.workers) each old worker's position */
    unsigned char *done;    /* (job.workers) it had finished every epoch */
    unsigned char *lost;    /* (job.workers) it was declared dead (its samples go to others) */
    void *plan;             /* plan bytes in effect at the cut, or NULL */
    size_t plan_len;
    char *config_text;      /* the cut's effective config */
} ResumeState;

/* Read the newest valid cut under root (invalid newer ones are logged and skipped). Returns
 * 0, PSREC_E_NOTFOUND (no valid checkpoint; message names root), or another error. */
int cut_resume_load(const char *root, ResumeState *out);
void cut_resume_fini(ResumeState *rs);

/* Where worker `rank` of `world` (partition mode `interleave`, n samples) starts after the
 * cut rs: *start (and *plan, caller frees with reader_plan_free + free, NULL when the old
 * positions carry over unchanged: same world and mode). Returns 0 or an error. */
int cut_resume_start(const ResumeState *rs, uint32_t rank, uint32_t world, int interleave,
                     uint64_t n, ReaderPosition *start, ReaderPlan **plan);

/* The takeover at a REPLAN cut rs: the plan of the samples left (every old position, the lost
 * workers' included) over the survivors (neither lost nor done), in the order of their
 * current ranks. *plan (free with reader_plan_free); *world = survivors; for a survivor whose
 * current rank is `rank`, *vrank = its new rank (UINT32_MAX when it is not a survivor).
 * Returns 0 or an error. */
int cut_takeover_plan(const ResumeState *rs, uint64_t n, uint32_t rank, ReaderPlan **plan,
                      uint32_t *world, uint32_t *vrank);

#endif
