/* One life of a run: what `psrec train` does around training, in one process or under
 * mpirun. A run may live several lives (preempted, killed, resumed); this module owns what
 * ties them together:
 *   - the run dir: its lock, the refusal of an existing run without --resume/--force;
 *   - the cut a life resumes from (launch/cut.h), checked against this run's model;
 *   - preemption signals (SIGTERM, SIGINT, SIGUSR1): the first asks for a stopping
 *     checkpoint at the next step boundary; a second one later exits at once with code 75,
 *     leaving the previous checkpoint valid;
 *   - summary.json at the end of every life, whatever its end. */
#ifndef PSREC_LAUNCH_LIFE_H
#define PSREC_LAUNCH_LIFE_H

#include "common/config.h"
#include "common/metrics.h"
#include "common/runmeta.h"
#include "launch/cut.h"
#include "launch/rundir.h"

#include <stdint.h>

#define EXIT_PREEMPTED 75 /* sysexits EX_TEMPFAIL: checkpointed, requeue me */

/* `psrec train` flags besides the config and its overrides. */
typedef struct TrainFlags {
    int resume; /* --resume: continue from the newest valid checkpoint */
    int force;  /* --force: delete the run in run.dir and start over */
} TrainFlags;

typedef struct RunLife {
    RunDirLock *lock;       /* held by the single process / rank 0 */
    char ckpt_root[4096];
    int resumed;            /* rs holds the cut this life starts from */
    ResumeState rs;
    uint64_t base_samples;  /* samples trained by earlier lives up to the cut */
    double base_wall;       /* their wall seconds */
    uint32_t restarts;      /* PSREC_SUPERVISE_RESTARTS */
    double t0;              /* timer_now() at the start of this life */
} RunLife;

/* Install the preemption signal handlers (first signal: stop request; another one at least
 * 2 s later: exit 75 at once; mpirun and a batch system may deliver the same signal twice
 * within moments, which counts as one). */
void life_signals_install(void);

/* 1 once a preemption signal arrived. Async-signal-safe to read. */
int life_stop_requested(void);

/* life_stop_requested, or (tests) PSREC_TEST_STOP_AT_STEP=N is set and steps >= N: the
 * trainer asks this at every step boundary with the steps it finished. */
int life_stop_due(uint64_t steps);

/* The single process, or rank 0 of a job: lock run.dir and check that it may start there
 * (refusing an existing run without flags->resume or flags->force). Errors are logged.
 * Returns 0 or -1. */
int life_open_dir(const Config *cfg, const TrainFlags *flags, RunLife *lf);

/* Every rank: when resuming, load the newest valid cut (none: log and start from scratch) and
 * check it fits this run (the training set by modelload's rule, model hash of meta,
 * train.seed). Sets meta->run_id: the cut's when resuming from one that has it, else a new
 * random id (under mpirun every rank makes its own: the job takes rank 0's). Returns 0 or -1
 * (logged). */
int life_load_resume(const Config *cfg, const TrainFlags *flags, RunMeta *meta, RunLife *lf);

/* The single process, or rank 0 of a job, once meta's run id is settled: keep it in
 * run.dir/run_id (16 hex digits), the run's identity next to its checkpoints. When resuming,
 * a run_id file naming another run than the checkpoint resumed from (a step dir copied in
 * from elsewhere) is an error (logged, -1); else the file is (re)written and 0 returned. */
int life_record_run_id(const Config *cfg, const RunLife *lf, uint64_t run_id);

/* Write run.dir/summary.json for this life's end. samples_life: samples trained in this life
 * (all workers); dev: the last evaluation or NULL. Logged on failure. */
void life_write_summary(const Config *cfg, const RunLife *lf, RunStatus status, uint64_t steps,
                        uint64_t epochs, uint64_t samples_life, const MetricsResult *dev,
                        uint32_t checkpoint_failures, const int *lost, uint32_t nlost);

/* Release the lock and the resume state. */
void life_close(RunLife *lf);

#endif
