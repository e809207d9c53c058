/* The shard's door in one process (server/guard.h, common/zsock.h, common/keys.h): a shard
 * loop with CURVE on loopback TCP serves the worker holding an admitted key (through the real
 * PS client) and nobody else: no key, a foreign key with a random server key, a foreign key
 * with the real server key (only ZAP can refuse that one) get no reply, and the loop counts
 * the refusals (server_loop_refused). Also: half a CURVE setup is refused by zsock_setup, a
 * second CURVE shard in one context is refused with a clear message, a shard without keys
 * (ps.security = none) still serves a client without keys. Runs under ASan in the Asan
 * build, so the key wiping and the guard's frees are checked for leaks too. */
#include "common/error.h"
#include "common/keys.h"
#include "common/params.h"
#include "common/wire.h"
#include "common/zsock.h"
#include "server/loop.h"
#include "testutil/outsider.h"
#include "testutil/testutil.h"
#include "worker/ps_zmq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static const ParamShape shape = {
    .E = 4, .H = 3, .vocab_rows = 100, .category_rows = 10, .user_rows = 50};

/* One shard for one worker on tcp://127.0.0.1:*, running on its thread; CURVE when server is
 * given (admitting client_pub only). */
static ServerLoop *shard_start(void *ctx, const KeyPair *server, const char *client_pub)
{
    char clients[1][KEYS_Z85_SIZE] = {""};
    ServerLoopOptions o = {
        .shard = {.shape = shape, .optim = {.kind = OPTIM_SGD, .lr = 1.0f}, .seed = 3},
        .shard_count = 1,
        .workers = 1,
        .consistency = SERVER_ASP,
        .endpoint = "tcp://127.0.0.1:*",
        .zmq_ctx = ctx};
    if (server) {
        snprintf(clients[0], sizeof clients[0], "%s", client_pub);
        o.curve_secret = server->sec;
        o.curve_clients = (const char (*)[KEYS_Z85_SIZE])clients;
        o.curve_nclients = 1;
    }
    ServerLoop *l = NULL;
    int rc = server_loop_new(&o, &l);
    if (rc)
        fprintf(stderr, "\n  server_loop_new: %s\n", psrec_errmsg());
    CU_ASSERT_FATAL(rc == 0);
    CU_ASSERT_FATAL(server_loop_start(l) == 0);
    return l;
}

static int outsider(void *ctx, const char *ep, const char *server_pub, double wait_s)
{
    return tu_outsider(ctx, ep, server_pub, &shape, wait_s, NULL);
}

/* The job's worker pulls through the real client; the three outsiders get nothing. */
static void test_curve_admits_only_the_job(void)
{
    void *ctx = zmq_ctx_new();
    KeyPair server, worker, random_server;
    CU_ASSERT_FATAL(keys_pair_new(&server) == 0 && keys_pair_new(&worker) == 0 &&
                    keys_pair_new(&random_server) == 0);
    ServerLoop *l = shard_start(ctx, &server, worker.pub);
    const char *ep = server_loop_endpoint(l);
    CU_ASSERT(outsider(ctx, ep, NULL, 0.5) == 0);
    CU_ASSERT(outsider(ctx, ep, random_server.pub, 0.5) == 0);
    CU_ASSERT(outsider(ctx, ep, server.pub, 0.5) == 0); /* only ZAP refuses this one */
    char servers[1][KEYS_Z85_SIZE];
    snprintf(servers[0], sizeof servers[0], "%s", server.pub);
    KeysClient kc = {.pub = worker.pub, .sec = worker.sec,
                     .servers = (const char (*)[KEYS_Z85_SIZE])servers};
    PsZmqOptions po = {.zmq_ctx = ctx, .endpoints = &ep, .shards = 1, .worker_rank = 0,
                       .workers = 1, .shape = shape, .timeout = 10.0, .curve = &kc};
    PsZmq *c = NULL;
    CU_ASSERT_FATAL(ps_zmq_new(&po, &c) == 0);
    PsClient ps;
    ps_zmq_client(c, &ps);
    uint64_t key = 5;
    float row[16] = {0};
    CU_ASSERT_EQUAL(ps_pull_sync(&ps, PARAM_WORD, &key, 1, row), 0);
    /* The refusals are in the STATS reply too (the guard answered before the worker's pull). */
    WireStats remote;
    CU_ASSERT_EQUAL(ps_zmq_stats(c, 0, &remote), 0);
    CU_ASSERT(remote.refused_connections >= 3);
    CU_ASSERT_EQUAL(ps_zmq_shutdown(c), 0);
    ps_zmq_free(&c);
    int rc = -1;
    CU_ASSERT(server_loop_join(l, 10, &rc) == 0 && rc == 0);
    const uint64_t refused = server_loop_refused(l);
    fprintf(stderr, "\n  refused %llu connection(s) of 3 outsiders\n", (unsigned long long)refused);
    CU_ASSERT(refused >= 3);
    WireStats st;
    server_loop_stats(l, &st);
    CU_ASSERT_EQUAL(st.pulls, 1); /* the worker's alone */
    CU_ASSERT_EQUAL(st.refused_connections, refused);
    server_loop_free(&l);
    zmq_ctx_term(ctx);
    keys_wipe(&server, sizeof server);
    keys_wipe(&worker, sizeof worker);
}

/* ps.security = none: no keys anywhere, a client without a key is served. */
static void test_none_serves_without_keys(void)
{
    void *ctx = zmq_ctx_new();
    ServerLoop *l = shard_start(ctx, NULL, NULL);
    const char *ep = server_loop_endpoint(l);
    CU_ASSERT(outsider(ctx, ep, NULL, 1.0) >= 2); /* at least PULL and STATS answered */
    server_loop_stop(l);
    int rc = -1;
    server_loop_join(l, 10, &rc);
    CU_ASSERT(server_loop_refused(l) == 0);
    server_loop_free(&l);
    zmq_ctx_term(ctx);
}

/* Half a CURVE setup would fall back to no security: refused. A second CURVE shard in one
 * context cannot be the ZAP handler: refused with the reason. */
static void test_setup_errors(void)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    KeyPair a, b;
    CU_ASSERT_FATAL(keys_pair_new(&a) == 0 && keys_pair_new(&b) == 0);
    ZsockOptions half = {.linger_ms = 0, .send_timeout_ms = -1, .curve_public = a.pub,
                         .curve_secret = a.sec};
    CU_ASSERT_EQUAL(zsock_setup(s, &half, "half"), PSREC_E_RANGE);
    ZsockOptions both = {.linger_ms = 0, .send_timeout_ms = -1, .curve_public = a.pub,
                         .curve_secret = a.sec, .curve_server_public = b.pub,
                         .curve_server_secret = b.sec};
    CU_ASSERT_EQUAL(zsock_setup(s, &both, "both"), PSREC_E_RANGE);
    zmq_close(s);
    CU_ASSERT(keys_decode(a.pub, NULL) == 1);
    CU_ASSERT(keys_decode("short", NULL) == 0);
    ServerLoop *l1 = shard_start(ctx, &a, b.pub);
    ServerLoopOptions o = {
        .shard = {.shape = shape, .optim = {.kind = OPTIM_SGD, .lr = 1.0f}, .seed = 3},
        .shard_count = 1, .workers = 1, .consistency = SERVER_ASP,
        .endpoint = "tcp://127.0.0.1:*", .zmq_ctx = ctx, .curve_secret = b.sec,
        .curve_clients = (const char (*)[KEYS_Z85_SIZE]) &a.pub, .curve_nclients = 1};
    ServerLoop *l2 = NULL;
    CU_ASSERT_EQUAL(server_loop_new(&o, &l2), EADDRINUSE);
    CU_ASSERT(strstr(psrec_errmsg(), "one CURVE shard per ZeroMQ context") != NULL);
    CU_ASSERT_PTR_NULL(l2);
    server_loop_stop(l1);
    int rc;
    server_loop_join(l1, 10, &rc);
    server_loop_free(&l1);
    zmq_ctx_term(ctx);
}

int main(void)
{
    static const TuTest tests[] = {
        {"CURVE admits only the job's worker", test_curve_admits_only_the_job},
        {"security none serves a client without keys", test_none_serves_without_keys},
        {"setup errors", test_setup_errors},
        {NULL, NULL}};
    tu_add_suite("guard", tests);
    return tu_run_all();
}
