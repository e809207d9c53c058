/* Where the ranks run (see samehost.h). Invariant: every rank computes *places from the same
 * gathered table, so all reach the same verdict and a job never has shards on loopback while
 * workers on other hosts expect a routable address. */
#include "launch/samehost.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WHERE_MAX 320 /* "hostname net:[inode]" */

/* This rank's place: host name and network namespace (the link /proc/self/ns/net). */
static void where(char *out, size_t n, char *host, size_t hn)
{
    char name[256] = "?", ns[48] = "";
    if (gethostname(name, sizeof name) != 0)
        snprintf(name, sizeof name, "?");
    name[sizeof name - 1] = '\0';
    ssize_t len = readlink("/proc/self/ns/net", ns, sizeof ns - 1);
    ns[len > 0 ? len : 0] = '\0';
    snprintf(out, n, "%s %s", name, ns);
    snprintf(host, hn, "%s", name);
}

int samehost_places(int size, int *places, char *host, size_t n)
{
    char mine[WHERE_MAX];
    where(mine, sizeof mine, host, n);
    char(*all)[WHERE_MAX] = calloc((size_t)size, sizeof *all);
    int ok = all != NULL, every = 0;
    MPI_Allreduce(&ok, &every, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!every) {
        free(all);
        return -1;
    }
    MPI_Allgather(mine, WHERE_MAX, MPI_CHAR, all, WHERE_MAX, MPI_CHAR, MPI_COMM_WORLD);
    *places = 0;
    for (int r = 0; r < size; r++) {
        int seen = 0;
        for (int q = 0; q < r && !seen; q++)
            seen = strcmp(all[q], all[r]) == 0;
        *places += !seen;
    }
    free(all);
    return 0;
}
