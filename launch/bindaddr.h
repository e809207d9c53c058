/* Which local IPv4 address a shard binds, from the ps.host setting.
 *
 * ps.host is one value for every rank of a job, but shards may run on several machines, so
 * besides a literal address it may name something each machine resolves for itself:
 *   ""            the first up, non-loopback IPv4 interface (else 127.0.0.1);
 *   "10.1.0.5"    that address, which must belong to this machine;
 *   "10.1.0.0/24" this machine's address inside that network (the cluster network);
 *   "eth1"        that interface's IPv4 address.
 * A literal that is not this machine's, a network or interface it lacks, and 0.0.0.0 (workers
 * could not connect to the endpoint it makes) are errors that list this machine's addresses. */
#ifndef PSREC_LAUNCH_BINDADDR_H
#define PSREC_LAUNCH_BINDADDR_H

#include <stddef.h>
#include <stdint.h>

#define BINDADDR_IFNAME_MAX 32
#define BINDADDR_MAX 16 /* "255.255.255.255" + NUL */

typedef struct BindIface {
    char name[BINDADDR_IFNAME_MAX];
    uint32_t addr; /* IPv4, host byte order */
    int up, loopback;
} BindIface;

/* The address for spec among ifs[0..n) into out (dotted quad), and in *how a short phrase for
 * the log ("ps.host", "network 10.1.0.0/24", "interface eth1", "first non-loopback
 * interface eth0", "loopback: no other interface"). Returns 0, PSREC_E_PARSE (a malformed
 * network, 0.0.0.0) or PSREC_E_NOTFOUND (nothing here matches), with detail naming spec and
 * the addresses this machine has. Pure: no system calls, so it is tested with made-up
 * interface lists. */
int bindaddr_pick(const char *spec, const BindIface *ifs, int n, char *out, size_t out_n,
                  char *how, size_t how_n);

/* bindaddr_pick over this machine's interfaces (getifaddrs). */
int bindaddr_resolve(const char *spec, char *out, size_t out_n, char *how, size_t how_n);

#endif
