/* Distributed training under mpirun: roles, rendezvous, the server and worker sides, split
 * evaluation, the final checkpoint and exit status. */
#ifndef PSREC_LAUNCH_JOB_H
#define PSREC_LAUNCH_JOB_H

#include "common/config.h"
#include "launch/life.h"

/* 1 when this process was started by mpirun (Open MPI or PMIx environment). */
int job_under_mpirun(void);

/* Run this rank's part of `psrec train` under mpirun. config_path is for messages.
 * Returns the process exit code: 0 only if every rank succeeded, EXIT_PREEMPTED (75) when the
 * job stopped at a checkpoint on a signal, 1 otherwise. */
int job_train_mpi(const Config *cfg, const char *config_path, const TrainFlags *flags);

#endif
