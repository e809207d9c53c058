/* Cluster errors on simulated hosts: two Linux network namespaces on a private bridge stand in
 * for two machines, and mpirun starts ranks inside them through a small rsh agent of this test
 * ("ip netns exec NS ..."). One shard on host 1, two workers on host 2. Checks that a
 * multi-host job completes with ps.host = host 1's address, and that the first errors people
 * hit on a cluster (a firewalled shard port, a dataset path missing, a rank that never starts)
 * end the job non-zero within bounded time, never hang. The exact messages are printed so the
 * README can quote them.
 *
 * Invariants: every name (namespaces, links, bridge, subnet) carries a per-process prefix so
 * parallel runs cannot clash; everything is torn down at exit (also on SIGINT/SIGTERM) and any
 * leftover of the same prefix is removed first; every command runs under `timeout`; traffic
 * stays inside the namespaces and the bridge. Needs root and iproute2: otherwise the suite says
 * why and passes without running (ctest label netns, not part of unit). The firewall case needs
 * nft or iptables and is skipped with a message without either. */
#include "testutil/testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SHARD_PORT 47011 /* inside host 1's namespace only, so no clash with anything */

static char pfx[16];        /* e.g. "pn12345": names of this run's links and namespaces */
static char net[32];        /* e.g. "10.173.57": this run's /24, clear of 10.77.0 */
static char h1[48], h2[48]; /* host addresses = host names given to mpirun */
static char dir[4096];      /* data, agent script, run dirs */
static char agent[4200];
static char mpirun[16384];
static int made;            /* namespaces exist: tear down at exit */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Remove everything of this prefix; the ranks still inside a namespace are this test's. */
static void teardown(void)
{
    if (!pfx[0])
        return;
    tu_run(NULL,
           "for ns in %sa %sb; do "
           "  ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null; "
           "  ip netns del $ns 2>/dev/null; "
           "done; ip link del %sv1 2>/dev/null; ip link del %sv2 2>/dev/null; "
           "ip link del %sbr 2>/dev/null; true",
           pfx, pfx, pfx, pfx, pfx);
}

static void at_exit(void)
{
    if (made)
        teardown();
    if (dir[0])
        tu_rmtree(dir);
}

static void on_signal(int sig)
{
    (void)sig;
    at_exit();
    _exit(130);
}

/* Print a command's output indented, so the README can quote it. */
static void show(const char *what, const char *out, int rc, double secs)
{
    fprintf(stderr, "\n  --- %s: exit %d after %.1f s; output:\n", what, rc, secs);
    const char *p = out ? out : "";
    while (*p) {
        const char *e = strchr(p, '\n');
        int n = e ? (int)(e - p) : (int)strlen(p);
        fprintf(stderr, "  | %.*s\n", n, p);
        p += n + (e != NULL);
    }
    fprintf(stderr, "  ---\n");
}

/* Two namespaces with one veth each on a bridge; the bridge holds .1 so that the Open MPI
 * daemons inside the namespaces reach mpirun. Host 1's first address is .21, not its host
 * name's .11, so a shard that ignored ps.host would bind .21 and test a would see it.
 * Returns 0, or 1 with *why set. */
static int setup_hosts(const char **why)
{
    if (geteuid() != 0) {
        *why = "not root (network namespaces need CAP_SYS_ADMIN)";
        return 1;
    }
    if (tu_run(NULL, "command -v ip") != 0) {
        *why = "no `ip` command (Debian package iproute2)";
        return 1;
    }
    pid_t pid = getpid();
    snprintf(pfx, sizeof pfx, "pn%05d", (int)(pid % 100000));
    snprintf(net, sizeof net, "10.%d.%d", 160 + (int)((pid >> 8) % 64), (int)(pid % 256));
    snprintf(h1, sizeof h1, "%s.11", net);
    snprintf(h2, sizeof h2, "%s.12", net);
    teardown(); /* a leftover of a killed run with the same pid */
    made = 1;
    char *out = NULL;
    int rc = tu_run(&out,
                    "set -e; T='timeout 20'; "
                    "$T ip link add %sbr type bridge; $T ip addr add %s.1/24 dev %sbr; "
                    "$T ip link set %sbr up; "
                    "for i in 1 2; do ns=%s$(echo a b | cut -d' ' -f$i); "
                    "  $T ip netns add $ns; "
                    "  $T ip link add %sv$i type veth peer name eth0 netns $ns; "
                    "  $T ip link set %sv$i master %sbr up; "
                    "  [ $i = 1 ] && $T ip netns exec $ns ip addr add %s.21/24 dev eth0; "
                    "  $T ip netns exec $ns ip addr add %s.$((10 + i))/24 dev eth0; "
                    "  $T ip netns exec $ns ip link set eth0 up; "
                    "  $T ip netns exec $ns ip link set lo up; "
                    "done",
                    pfx, net, pfx, pfx, pfx, pfx, pfx, pfx, net, net);
    if (rc) {
        fprintf(stderr, "%s\n", out ? out : "");
        free(out);
        *why = "`ip netns add` / veth / bridge setup failed (see above)";
        return 1;
    }
    free(out);
    return 0;
}

/* mpirun's rsh agent: drop rsh options, map a host address to its namespace, run there. An
 * address with no namespace fails like an unreachable machine would. */
static int write_agent(void)
{
    snprintf(agent, sizeof agent, "%s/agent.sh", dir);
    char text[2048];
    snprintf(text, sizeof text,
             "#!/bin/sh\n"
             "while [ $# -gt 0 ]; do case \"$1\" in -*) shift ;; *) break ;; esac; done\n"
             "host=$1; shift\n"
             "case \"$host\" in\n"
             "%s) ns=%sa ;;\n"
             "%s) ns=%sb ;;\n"
             "*) echo \"ssh: connect to host $host port 22: No route to host\" >&2; exit 255 ;;\n"
             "esac\n"
             "exec ip netns exec \"$ns\" /bin/sh -c \"$*\"\n",
             h1, pfx, h2, pfx);
    if (tu_write_file(agent, text) != 0 || tu_run(NULL, "chmod +x %s", agent) != 0)
        return 1;
    snprintf(mpirun, sizeof mpirun,
             "%s --allow-run-as-root --oversubscribe --mca plm_rsh_agent %s --mca rtc ^hwloc "
             "--mca btl self,tcp --mca oob_tcp_if_include %s.0/24 "
             "--mca btl_tcp_if_include %s.0/24",
             TU_MPIRUN, agent, net, net);
    return 0;
}

/* Run a job bounded by `timeout SECS`; *secs = wall time. */
static int job(char **out, double *secs, int limit, const char *hosts, int np, const char *args)
{
    double t0 = now();
    int rc = tu_run(out, "timeout %d %s --host %s -np %d %s train %s/exp.conf %s", limit, mpirun,
                    hosts, np, TU_PSREC, dir, args);
    *secs = now() - t0;
    return rc;
}

/* a. 1 shard on host 1, 2 workers on host 2: completes; the shard binds host 1's address. */
static void test_multi_host(void)
{
    char hosts[128], args[4400], *out = NULL;
    double secs;
    snprintf(hosts, sizeof hosts, "%s:1,%s:2", h1, h2);
    snprintf(args, sizeof args, "--run.dir=%s/ok --ps.servers=1 --ps.host=%s", dir, h1);
    int rc = job(&out, &secs, 300, hosts, 3, args);
    char want[128];
    snprintf(want, sizeof want, "serving 2 workers on tcp://%s:", h1);
    const char *bind = out ? strstr(out, want) : NULL;
    if (rc || !bind)
        show("multi-host job", out, rc, secs);
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT(bind != NULL);
    if (bind) {
        const char *s = bind;
        while (s > out && s[-1] != '\n')
            s--;
        const char *e = strchr(bind, '\n');
        fprintf(stderr, "\n  multi-host job done in %.1f s; the shard's line:\n  | %.*s\n", secs,
                (int)(e ? e - s : (long)strlen(s)), s);
    }
    /* Both workers ran on host 2 and trained: the summary has the full data and a dev AUC. */
    free(out);
    char p[4400];
    snprintf(p, sizeof p, "%s/ok/summary.json", dir);
    char *sum = tu_read_file(p, NULL);
    CU_ASSERT_FATAL(sum != NULL);
    double samples = 0, auc = 0;
    CU_ASSERT(strstr(sum, "\"completed\"") != NULL);
    CU_ASSERT(tu_json_number(sum, "samples", &samples) && samples == 2 * 7674);
    CU_ASSERT(tu_json_number(sum, "auc", &auc) && auc > 0.7);
    fprintf(stderr, "  summary: samples %.0f, dev AUC %.4f\n", samples, auc);
    free(sum);
}

/* a2. 2 shards, one per host, 1 worker; one ps.host for the job, a network: each shard binds
 * its own host's address in it (host 1: .21, its first address there; host 2: .12). */
static void test_shard_per_host(void)
{
    char hosts[128], args[4400], *out = NULL;
    double secs;
    /* rank 0 (shard 0) on host 1; ranks 1 (shard 1) and 2 (the worker) on host 2 */
    snprintf(hosts, sizeof hosts, "%s:1,%s:2", h1, h2);
    snprintf(args, sizeof args,
             "--run.dir=%s/pernet --ps.servers=2 --ps.host=%s.0/24 --train.epochs=1", dir, net);
    int rc = job(&out, &secs, 300, hosts, 3, args);
    char want0[160], want1[160];
    snprintf(want0, sizeof want0, "shard 0 binds %s.21 (network %s.0/24 (interface eth0))", net,
             net);
    snprintf(want1, sizeof want1, "shard 1 binds %s (network %s.0/24 (interface eth0))", h2,
             net);
    const int ok0 = out && strstr(out, want0), ok1 = out && strstr(out, want1);
    if (rc || !ok0 || !ok1)
        show("shards on two hosts, ps.host a network", out, rc, secs);
    CU_ASSERT(rc == 0);
    CU_ASSERT(ok0);
    CU_ASSERT(ok1);
    free(out);
    char p[4400];
    snprintf(p, sizeof p, "%s/pernet/summary.json", dir);
    char *sum = tu_read_file(p, NULL);
    CU_ASSERT_FATAL(sum != NULL);
    double samples = 0;
    CU_ASSERT(strstr(sum, "\"completed\"") != NULL);
    CU_ASSERT(tu_json_number(sum, "samples", &samples) && samples == 7674);
    fprintf(stderr, "\n  shards on two hosts by one ps.host network: done in %.1f s\n", secs);
    free(sum);
}

/* b. A firewall inside host 1 drops TCP to the shard's port: the workers' requests and
 * heartbeats vanish; they fail naming the shard and its rank within the liveness timeout. */
static void test_blocked_port(void)
{
    char fw[1024], unfw[512];
    if (tu_run(NULL, "command -v nft") == 0) {
        snprintf(fw, sizeof fw,
                 "timeout 20 ip netns exec %sa nft add table inet %s && "
                 "timeout 20 ip netns exec %sa nft 'add chain inet %s in "
                 "{ type filter hook input priority 0; }' && "
                 "timeout 20 ip netns exec %sa nft add rule inet %s in tcp dport %d drop",
                 pfx, pfx, pfx, pfx, pfx, pfx, SHARD_PORT);
        snprintf(unfw, sizeof unfw, "timeout 20 ip netns exec %sa nft delete table inet %s", pfx,
                 pfx);
    } else if (tu_run(NULL, "command -v iptables") == 0) {
        snprintf(fw, sizeof fw,
                 "timeout 20 ip netns exec %sa iptables -A INPUT -p tcp --dport %d -j DROP", pfx,
                 SHARD_PORT);
        snprintf(unfw, sizeof unfw,
                 "timeout 20 ip netns exec %sa iptables -D INPUT -p tcp --dport %d -j DROP", pfx,
                 SHARD_PORT);
    } else {
        fprintf(stderr, "\n  SKIP blocked port: neither nft (Debian nftables) nor iptables is "
                        "installed\n");
        return;
    }
    char *out = NULL;
    int rc = tu_run(&out, "%s", fw);
    if (rc)
        show("firewall rule", out, rc, 0);
    free(out);
    CU_ASSERT_FATAL(rc == 0);
    char hosts[128], args[4400];
    double secs;
    snprintf(hosts, sizeof hosts, "%s:1,%s:2", h1, h2);
    snprintf(args, sizeof args,
             "--run.dir=%s/blocked --ps.servers=1 --ps.host=%s --ps.port=%d "
             "--ps.heartbeat_timeout=3",
             dir, h1, SHARD_PORT);
    rc = job(&out, &secs, 120, hosts, 3, args);
    tu_run(NULL, "%s", unfw);
    show("blocked shard port", out, rc, secs);
    CU_ASSERT(rc != 0 && rc != 124); /* 124: timeout fired, i.e. it hung */
    CU_ASSERT(out && strstr(out, "shard 0 (rank 0)") != NULL);
    /* Liveness timeout 3 s plus start-up and the job's stop: well under a minute. */
    CU_ASSERT(secs < 60);
    free(out);
}

/* c. A dataset path that is not there (on this host): every rank stops at once, naming it. */
static void test_missing_dataset(void)
{
    char hosts[128], args[9000], missing[4200], *out = NULL;
    double secs;
    snprintf(missing, sizeof missing, "%s/only-on-another-host/train.db", dir);
    snprintf(hosts, sizeof hosts, "%s:1,%s:2", h1, h2);
    snprintf(args, sizeof args, "--run.dir=%s/nodata --ps.servers=1 --ps.host=%s --data.train=%s",
             dir, h1, missing);
    int rc = job(&out, &secs, 120, hosts, 3, args);
    show("missing dataset path", out, rc, secs);
    CU_ASSERT(rc != 0 && rc != 124);
    CU_ASSERT(out && strstr(out, missing) != NULL);
    CU_ASSERT(secs < 30);
    free(out);
}

/* d. A rank whose host cannot be reached (the agent fails for a third host): mpirun says so
 * and the job ends, nothing waits for the missing rank. */
static void test_rank_never_starts(void)
{
    char hosts[256], args[4400], *out = NULL;
    double secs;
    snprintf(hosts, sizeof hosts, "%s:1,%s:1,%s.13:1", h1, h2, net);
    snprintf(args, sizeof args, "--run.dir=%s/nostart --ps.servers=1 --ps.host=%s", dir, h1);
    int rc = job(&out, &secs, 120, hosts, 3, args);
    show("a host whose rank never starts", out, rc, secs);
    CU_ASSERT(rc != 0 && rc != 124);
    CU_ASSERT(out && strstr(out, "No route to host") != NULL);
    CU_ASSERT(secs < 60);
    free(out);
}

int main(void)
{
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    atexit(at_exit);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    const char *why = NULL;
    if (setup_hosts(&why)) {
        fprintf(stderr, "SKIP test_netns: cannot make simulated hosts: %s\n", why);
        return 0;
    }
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("netns"));
    if (tu_small_experiment(dir, 1, "") != 0) {
        fprintf(stderr, "test_netns: cannot make the data set\n");
        return 1;
    }
    if (write_agent()) {
        fprintf(stderr, "test_netns: cannot write the rsh agent\n");
        return 1;
    }
    static const TuTest tests[] = {{"multi_host", test_multi_host},
                                   {"shard_per_host", test_shard_per_host},
                                   {"blocked_port", test_blocked_port},
                                   {"missing_dataset", test_missing_dataset},
                                   {"rank_never_starts", test_rank_never_starts},
                                   {NULL, NULL}};
    tu_add_suite("netns", tests);
    return tu_run_all();
}
