/* A run directory's ownership and its summary.
 *
 *   run.dir/.lock          flock()ed by the run that owns the dir; holds "host pid\n"
 *   run.dir/summary.json   written at the end of every life of the run (see RunSummary)
 *
 * A run dir "holds a run" when it has config.effective, metrics.jsonl, summary.json, or a
 * checkpoint root with step-* directories in it. Starting a new run there needs --force (which
 * deletes exactly the run's files, naming each) or --resume (which continues it).
 *
 * Not thread-safe with respect to one RunDirLock; the functions keep no global state. */
#ifndef PSREC_LAUNCH_RUNDIR_H
#define PSREC_LAUNCH_RUNDIR_H

#include <stdint.h>

/* ---- ownership ---- */

typedef struct RunDirLock RunDirLock;

/* mkdir -p dir, then take an exclusive flock on dir/.lock without waiting and write
 * "host pid\n" into it. The lock lives as long as *out (or the process: the kernel drops it at
 * exit, so a crashed run never leaves a stale lock). The descriptor is close-on-exec, so
 * programs the run execs do not inherit the lock.
 * Returns 0 and a new lock in *out; EBUSY when another process holds it, with psrec_errmsg()
 * "run.dir X is in use by pid P on host H" (read from the file); another errno value when the
 * dir or file cannot be made. *out is NULL on error. */
int rundir_lock(const char *dir, RunDirLock **out);

/* Release the lock and free it; clears *lock. NULL or *lock == NULL is fine. The .lock file
 * stays (removing it would race with a newcomer that opened it already). */
void rundir_unlock(RunDirLock **lock);

/* May a run start in dir? ckpt_root is the run's checkpoint directory (config_checkpoint_dir:
 * run.dir/ckpt or checkpoint.dir).
 *   - dir holds no run (or does not exist): 0.
 *   - resume: 0 (the caller checks that a checkpoint exists).
 *   - force: deletes config.effective, metrics.jsonl, summary.json and log in dir, and the
 *     step-* directories and LATEST in ckpt_root, logging each path (WARN "--force: deleting
 *     X"); any other entry is left alone and named (WARN "--force: keeping X ..."). 0, or the
 *     errno value of a failed deletion.
 *   - neither: PSREC_E_STATE with a message naming dir, --resume and --force.
 *   - both: PSREC_E_USAGE (they contradict each other).
 * Messages are recorded with psrec_errf(). */
int rundir_check_fresh(const char *dir, const char *ckpt_root, int resume, int force);

/* ---- summary.json ---- */

typedef enum RunStatus {
    RUN_STATUS_COMPLETED, /* every epoch trained */
    RUN_STATUS_PREEMPTED, /* stopped by a signal with a checkpoint (exit code 75) */
    RUN_STATUS_FAILED,    /* anything else */
} RunStatus;

#define RUNDIR_NAME_MAX 256     /* run_name, NUL included (as CONFIG_STR_MAX) */
#define RUNDIR_PATH_MAX 4096    /* checkpoint, NUL included */
#define RUNDIR_LOST_MAX 1024    /* lost_workers entries */

/* run.dir/summary.json. JSON field names are the member names; the order below is the order
 * written. */
typedef struct RunSummary {
    char run_name[RUNDIR_NAME_MAX]; /* run.name */
    RunStatus status;               /* "completed" | "preempted" | "failed" */
    uint64_t steps;                 /* global steps done, over the whole life of the run */
    uint64_t epochs;                /* epochs completed */
    uint64_t samples;      /* samples whose gradients reached the model, across all resumes */
    double wall_s;         /* training seconds, summed over the lives of the run */
    double samples_per_s;  /* samples / wall_s */
    uint32_t restarts;     /* PSREC_SUPERVISE_RESTARTS of the last life (0 without supervise) */
    int64_t resumed_from_step; /* step the last life resumed from; -1 = never resumed (null) */
    uint32_t n_lost_workers;
    int lost_workers[RUNDIR_LOST_MAX]; /* ranks of workers lost in the last life */
    int has_dev;                       /* 0: "dev": null */
    struct {
        double auc, mrr, ndcg5, ndcg10; /* last dev evaluation; a non-finite value is null */
    } dev;
    char checkpoint[RUNDIR_PATH_MAX]; /* newest valid step dir; "" = null */
    uint32_t checkpoint_failures;     /* checkpoints of the last life that could not be
                                         written (the previous one stayed valid) */
} RunSummary;

/* "completed", "preempted", "failed" ("?" out of range). Static strings. */
const char *rundir_status_name(RunStatus s);

/* Write dir/summary.json atomically: dir/summary.json.tmp, fsync, rename, fsync of dir.
 * Strings are JSON-escaped; a double that is not finite is written as null. Returns 0, an
 * errno value, or PSREC_E_RANGE (n_lost_workers too large, or a string field not
 * NUL-terminated). */
int rundir_write_summary(const char *dir, const RunSummary *s);

/* Read dir/summary.json as rundir_write_summary writes it (any key order and whitespace,
 * every field present exactly once, nothing else). null doubles read as NaN.
 * Returns 0, an errno value (ENOENT: no summary), or PSREC_E_PARSE with the byte offset and
 * what was expected (a truncated or hand-damaged file). *s is unspecified on error. */
int rundir_read_summary(const char *dir, RunSummary *s);

#endif
