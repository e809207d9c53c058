/* ps.host resolution (see bindaddr.h). Only up interfaces count; among several that match a
 * network or name, the first in the system's order wins (getifaddrs lists aliases after the
 * primary address). */
#include "launch/bindaddr.h"

#include "common/error.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dotted(uint32_t a, char *out, size_t n)
{
    snprintf(out, n, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255u, (a >> 8) & 255u, a & 255u);
}

/* A strict dotted quad: four decimal parts 0..255, nothing else. */
static int parse_ipv4(const char *s, uint32_t *out)
{
    uint32_t a = 0;
    for (int part = 0; part < 4; part++) {
        if (part) {
            if (*s != '.')
                return 0;
            s++;
        }
        if (*s < '0' || *s > '9')
            return 0;
        unsigned v = 0;
        int digits = 0;
        while (*s >= '0' && *s <= '9') {
            v = v * 10u + (unsigned)(*s++ - '0');
            if (++digits > 3 || v > 255)
                return 0;
        }
        a = (a << 8) | v;
    }
    if (*s)
        return 0;
    *out = a;
    return 1;
}

/* "name addr, name addr, ..." of the up interfaces, for error messages. */
static void list_ifaces(const BindIface *ifs, int n, char *out, size_t out_n)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < n && len < out_n; i++) {
        if (!ifs[i].up)
            continue;
        char a[BINDADDR_MAX];
        dotted(ifs[i].addr, a, sizeof a);
        int w = snprintf(out + len, out_n - len, "%s%s %s", len ? ", " : "", ifs[i].name, a);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    if (!out[0])
        snprintf(out, out_n, "no IPv4 interface up");
}

int bindaddr_pick(const char *spec, const BindIface *ifs, int n, char *out, size_t out_n,
                  char *how, size_t how_n)
{
    char have[512];
    list_ifaces(ifs, n, have, sizeof have);
    if (!spec || !spec[0]) {
        for (int i = 0; i < n; i++)
            if (ifs[i].up && !ifs[i].loopback) {
                dotted(ifs[i].addr, out, out_n);
                snprintf(how, how_n, "first non-loopback interface %s", ifs[i].name);
                return 0;
            }
        snprintf(out, out_n, "127.0.0.1");
        snprintf(how, how_n, "loopback: no other interface is up");
        return 0;
    }
    const char *slash = strchr(spec, '/');
    if (slash) {
        char net[BINDADDR_MAX];
        size_t len = (size_t)(slash - spec);
        uint32_t base;
        char *end;
        long bits = strtol(slash + 1, &end, 10);
        if (len >= sizeof net || end == slash + 1 || *end || bits < 0 || bits > 32)
            return psrec_errf(PSREC_E_PARSE,
                              "ps.host = %s: not an IPv4 network (write it as 10.1.0.0/24)",
                              spec);
        memcpy(net, spec, len);
        net[len] = '\0';
        if (!parse_ipv4(net, &base))
            return psrec_errf(PSREC_E_PARSE,
                              "ps.host = %s: not an IPv4 network (write it as 10.1.0.0/24)",
                              spec);
        const uint32_t mask = bits ? ~0u << (32 - bits) : 0u;
        for (int i = 0; i < n; i++)
            if (ifs[i].up && (ifs[i].addr & mask) == (base & mask)) {
                dotted(ifs[i].addr, out, out_n);
                snprintf(how, how_n, "network %s (interface %s)", spec, ifs[i].name);
                return 0;
            }
        return psrec_errf(PSREC_E_NOTFOUND,
                          "ps.host = %s: no interface of this machine is in that network "
                          "(it has: %s)",
                          spec, have);
    }
    uint32_t a;
    if (parse_ipv4(spec, &a)) {
        if (a == 0)
            return psrec_errf(PSREC_E_PARSE,
                              "ps.host = 0.0.0.0: workers connect to the address a shard "
                              "binds, so it must be one address; give a network (10.1.0.0/24) "
                              "or an interface name to let each machine pick its own");
        for (int i = 0; i < n; i++)
            if (ifs[i].up && ifs[i].addr == a) {
                dotted(a, out, out_n);
                snprintf(how, how_n, "ps.host");
                return 0;
            }
        return psrec_errf(PSREC_E_NOTFOUND,
                          "ps.host = %s is not an address of this machine (it has: %s); with "
                          "shards on several machines give a network (e.g. 10.1.0.0/24) or an "
                          "interface name instead",
                          spec, have);
    }
    for (int i = 0; i < n; i++)
        if (ifs[i].up && !strcmp(ifs[i].name, spec)) {
            dotted(ifs[i].addr, out, out_n);
            snprintf(how, how_n, "interface %s", spec);
            return 0;
        }
    return psrec_errf(PSREC_E_NOTFOUND,
                      "ps.host = %s: neither an IPv4 address, a network (a.b.c.d/len) nor an "
                      "up interface with an IPv4 address on this machine (it has: %s)",
                      spec, have);
}

int bindaddr_resolve(const char *spec, char *out, size_t out_n, char *how, size_t how_n)
{
    struct ifaddrs *all;
    if (getifaddrs(&all) != 0)
        return psrec_errf(PSREC_E_NOTFOUND, "ps.host: cannot list this machine's interfaces");
    int n = 0;
    for (struct ifaddrs *i = all; i; i = i->ifa_next)
        n += i->ifa_addr && i->ifa_addr->sa_family == AF_INET;
    BindIface *ifs = calloc(n ? (size_t)n : 1, sizeof *ifs);
    if (!ifs) {
        freeifaddrs(all);
        return psrec_errf(PSREC_E_NOMEM, "ps.host: out of memory");
    }
    int k = 0;
    for (struct ifaddrs *i = all; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        snprintf(ifs[k].name, sizeof ifs[k].name, "%s", i->ifa_name);
        ifs[k].addr = ntohl(((const struct sockaddr_in *)(const void *)i->ifa_addr)->sin_addr.s_addr);
        ifs[k].up = (i->ifa_flags & IFF_UP) != 0;
        ifs[k].loopback = (i->ifa_flags & IFF_LOOPBACK) != 0;
        k++;
    }
    freeifaddrs(all);
    int rc = bindaddr_pick(spec, ifs, k, out, out_n, how, how_n);
    free(ifs);
    return rc;
}
