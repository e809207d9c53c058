/* Do all ranks of a job run on one host? (issue 9, "expose nothing"). The ranks compare where
 * they run right after the start-up hello; when they all share one host, the shards bind
 * 127.0.0.1 by default (nothing outside the host can reach them), else ps.host's resolution
 * (launch/bindaddr.h: by default the first non-loopback IPv4 address, the interface the
 * ranks reach each other on).
 * "One host" means one host name AND one network namespace: ranks in different namespaces
 * (containers, simulated hosts) cannot reach each other's loopback. */
#ifndef PSREC_LAUNCH_SAMEHOST_H
#define PSREC_LAUNCH_SAMEHOST_H

#include <stddef.h>

/* Collective over MPI_COMM_WORLD (every rank, while all are alive): *places = how many
 * distinct (host name, network namespace) pairs the size ranks run in (the same on every
 * rank); host (n bytes) = this rank's host name, for the log. Returns 0, or -1 on every rank
 * when an allocation failed somewhere. */
int samehost_places(int size, int *places, char *host, size_t n);

#endif
