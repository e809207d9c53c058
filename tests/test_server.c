/* Server loop: a shard's event loop runs on a thread behind inproc://, test clients are
 * DEALER sockets speaking the wire protocol. Checks the arithmetic of pushes (SGD, lr 1, so
 * every expected value is exact), the consistency gates (BSP barrier and averaging, SSP
 * bound, ASP), refusal of bad messages without any effect on parameters, stats, and the end
 * of the loop (every worker's SHUTDOWN, or stop with pulls still waiting). */
#include "common/error.h"
#include "common/wire.h"
#include "server/loop.h"
#include "server/snapshot.h"
#include "server/table.h"
#include "testutil/testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define NO_MESSAGE 12345 /* recv_within: nothing arrived in time */
#define WAIT_MS 3000     /* a reply that must come */
#define QUIET_MS 200     /* a reply that must not come (yet) */

static const ParamShape shape = {
    .E = 4, .H = 3, .vocab_rows = 100, .category_rows = 10, .user_rows = 50};
static const uint64_t seed = 7;
static void *ctx;
static WireLimits lim;
static uint64_t next_id = 1;

typedef struct Srv {
    ServerLoop *loop;
    int rc;
    int running;
} Srv;

/* Start a loop with W workers on a fresh inproc endpoint (SGD, lr 1). */
static void srv_start(Srv *s, ServerConsistency c, uint32_t W, uint32_t staleness,
                      FILE *stats)
{
    static int n;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://server-test-%d", n++);
    ServerLoopOptions o = {
        .shard = {.shape = shape, .optim = {.kind = OPTIM_SGD, .lr = 1.0f}, .seed = seed,
                  .lazy_dense = 1},
        .shard_index = 0,
        .shard_count = 1,
        .workers = W,
        .consistency = c,
        .staleness = staleness,
        .endpoint = ep,
        .stats_interval = 0,
        .stats_file = stats,
        .zmq_ctx = ctx};
    memset(s, 0, sizeof *s);
    CU_ASSERT_FATAL(server_loop_new(&o, &s->loop) == 0);
    CU_ASSERT_FATAL(strcmp(server_loop_endpoint(s->loop), ep) == 0);
    CU_ASSERT_FATAL(server_loop_start(s->loop) == 0);
    s->running = 1;
}

/* Stop (unless it ended by itself), join, free; returns the loop's result. */
static int srv_end(Srv *s, int stop)
{
    if (stop)
        server_loop_stop(s->loop);
    server_loop_join(s->loop, -1, &s->rc);
    s->running = 0;
    server_loop_free(&s->loop);
    return s->rc;
}

static void *client(const Srv *s)
{
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    CU_ASSERT_FATAL(d != NULL);
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    CU_ASSERT_FATAL(zmq_connect(d, server_loop_endpoint(s->loop)) == 0);
    return d;
}

/* Receive one reply within ms; NO_MESSAGE when none came. */
static int recv_within(void *sock, int ms, WireMsg *m)
{
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    memset(m, 0, sizeof *m);
    if (zmq_poll(&it, 1, ms) != 1)
        return NO_MESSAGE;
    char why[256];
    int rc = wire_recv(sock, 0, m, &lim, why, sizeof why);
    if (rc)
        fprintf(stderr, "\n  reply refused: %s\n", why);
    return rc;
}

static WireHeader req(WireOp op, uint32_t w, uint64_t clock)
{
    WireHeader h;
    wire_header_init(&h, op);
    h.worker_rank = w;
    h.clock = clock;
    h.request_id = next_id++;
    return h;
}

/* Send a PULL without waiting; returns its request id. */
static uint64_t pull_send(void *sock, uint32_t w, uint64_t clock, uint32_t table,
                          const uint64_t *keys, uint64_t n)
{
    WireHeader h = req(WIRE_OP_PULL, w, clock);
    h.table = table;
    h.key_count = n;
    CU_ASSERT_FATAL(wire_send(sock, NULL, 0, &h, keys, NULL) == 0);
    return h.request_id;
}

/* Wait for the reply to PULL id and copy its rows into out. */
static void pull_recv(void *sock, uint64_t id, float *out, size_t nfloats)
{
    WireMsg m;
    CU_ASSERT_FATAL(recv_within(sock, WAIT_MS, &m) == 0);
    CU_ASSERT_FATAL(m.h.op == WIRE_OP_PULL && m.h.reply && m.h.request_id == id);
    CU_ASSERT_FATAL(m.h.key_count * m.h.value_width == nfloats);
    memcpy(out, m.vals, nfloats * sizeof *out);
    wire_msg_close(&m);
}

static void pull(void *sock, uint32_t w, uint64_t clock, uint32_t table, const uint64_t *keys,
                 uint64_t n, float *out)
{
    uint64_t id = pull_send(sock, w, clock, table, keys, n);
    pull_recv(sock, id, out, n * lim.width[table]);
}

/* Send a request and return the reply's op (WIRE_OP_ERROR on refusal; text in why). */
static WireOp rpc(void *sock, WireHeader *h, const uint64_t *keys, const float *vals,
                  char *why, size_t n)
{
    CU_ASSERT_FATAL(wire_send(sock, NULL, 0, h, keys, vals) == 0);
    WireMsg m;
    CU_ASSERT_FATAL(recv_within(sock, WAIT_MS, &m) == 0);
    CU_ASSERT(m.h.request_id == h->request_id && m.h.reply);
    WireOp op = m.h.op;
    if (why)
        snprintf(why, n, "%s", m.h.error_text);
    wire_msg_close(&m);
    return op;
}

static WireOp push(void *sock, uint32_t w, uint64_t clock, uint32_t table,
                   const uint64_t *keys, uint64_t n, const float *g)
{
    WireHeader h = req(WIRE_OP_PUSH, w, clock);
    h.table = table;
    h.key_count = n;
    h.value_width = lim.width[table];
    return rpc(sock, &h, keys, g, NULL, 0);
}

static WireOp clock_done(void *sock, uint32_t w, uint64_t clock)
{
    WireHeader h = req(WIRE_OP_CLOCK, w, clock);
    return rpc(sock, &h, NULL, NULL, NULL, 0);
}

static WireStats stats_of(void *sock)
{
    WireHeader h = req(WIRE_OP_STATS, 0, 0);
    CU_ASSERT_FATAL(wire_send(sock, NULL, 0, &h, NULL, NULL) == 0);
    WireMsg m;
    CU_ASSERT_FATAL(recv_within(sock, WAIT_MS, &m) == 0);
    CU_ASSERT_FATAL(m.h.op == WIRE_OP_STATS && m.h.has_stats);
    WireStats s = m.h.stats;
    wire_msg_close(&m);
    return s;
}

static void shutdown_worker(void *sock, uint32_t w)
{
    WireHeader h = req(WIRE_OP_SHUTDOWN, w, 0);
    CU_ASSERT(rpc(sock, &h, NULL, NULL, NULL, 0) == WIRE_OP_SHUTDOWN);
}

/* (a) Pull, push known gradients, pull again: new == old - grad exactly (SGD, lr 1); a key
 * pushed twice in one message takes two steps. Initial rows are the table's deterministic
 * ones, dense rows included (the shard creates them lazily). */
static void test_push_pull_arithmetic(void)
{
    Srv s;
    srv_start(&s, SERVER_ASP, 1, 0, NULL);
    void *c = client(&s);
    TableSpec specs[PARAM_TABLES];
    params_specs(&shape, specs);

    uint64_t keys[2] = {3, 7};
    float old[8], now[8], want[4];
    pull(c, 0, 0, PARAM_WORD, keys, 2, old);
    table_init_row(&specs[PARAM_WORD], seed, 7, want);
    CU_ASSERT(memcmp(old + 4, want, sizeof want) == 0);

    uint64_t pk[3] = {3, 7, 3};
    float g[12] = {0.5f, -0.25f, 1, 2, 0.125f, 0, -1, 4, 0.25f, 0.25f, -0.5f, 8};
    CU_ASSERT(push(c, 0, 0, PARAM_WORD, pk, 3, g) == WIRE_OP_PUSH);
    pull(c, 0, 0, PARAM_WORD, keys, 2, now);
    for (int i = 0; i < 4; i++) {
        CU_ASSERT(now[i] == (old[i] - g[i]) - g[8 + i]);
        CU_ASSERT(now[4 + i] == old[4 + i] - g[4 + i]);
    }

    uint64_t dk = 0;
    float dold[12], dnow[12], dwant[12], dg[12];
    pull(c, 0, 0, PARAM_USER_B, &dk, 1, dold);
    table_init_row(&specs[PARAM_USER_B], seed, 0, dwant);
    CU_ASSERT(memcmp(dold, dwant, sizeof dwant) == 0);
    for (int i = 0; i < 12; i++)
        dg[i] = (float)(i - 6) / 16.0f;
    CU_ASSERT(push(c, 0, 0, PARAM_USER_B, &dk, 1, dg) == WIRE_OP_PUSH);
    pull(c, 0, 0, PARAM_USER_B, &dk, 1, dnow);
    for (int i = 0; i < 12; i++)
        CU_ASSERT(dnow[i] == dold[i] - dg[i]);

    WireStats st = stats_of(c);
    CU_ASSERT_EQUAL(st.rows_held, 3); /* word 3, 7 and one dense row: lazy */
    zmq_close(c);
    CU_ASSERT(srv_end(&s, 1) == 0);
}

/* (b) ASP, two workers: both workers' pushes land at once, and a pull is answered however far
 * its clock is ahead of the other worker. */
static void test_asp_two_workers(void)
{
    Srv s;
    srv_start(&s, SERVER_ASP, 2, 0, NULL);
    void *c0 = client(&s), *c1 = client(&s);
    uint64_t k = 4;
    float old[3], now[3], g0[3] = {1, 2, 3}, g1[3] = {0.5f, -0.5f, 0.25f};
    pull(c0, 0, 0, PARAM_CAT, &k, 1, old);
    CU_ASSERT(push(c0, 0, 0, PARAM_CAT, &k, 1, g0) == WIRE_OP_PUSH);
    for (uint64_t t = 0; t < 5; t++)
        CU_ASSERT(clock_done(c0, 0, t) == WIRE_OP_CLOCK);
    pull(c1, 1, 0, PARAM_CAT, &k, 1, now);
    for (int i = 0; i < 3; i++)
        CU_ASSERT(now[i] == old[i] - g0[i]);
    CU_ASSERT(push(c1, 1, 0, PARAM_CAT, &k, 1, g1) == WIRE_OP_PUSH);
    pull(c0, 0, 5, PARAM_CAT, &k, 1, now); /* 5 steps ahead of worker 1: still at once */
    for (int i = 0; i < 3; i++)
        CU_ASSERT(now[i] == (old[i] - g0[i]) - g1[i]);
    WireStats st = stats_of(c1);
    CU_ASSERT_EQUAL(st.deferred_pulls, 0);
    CU_ASSERT_EQUAL(st.max_staleness, 5);
    CU_ASSERT_EQUAL(st.pushes, 2);
    zmq_close(c0);
    zmq_close(c1);
    CU_ASSERT(srv_end(&s, 1) == 0);
}

/* (c) BSP, W=2: worker 0 pushes g0 and clocks 0; its pull at clock 1 waits until worker 1
 * has pushed g1 and clocked 0; then each row moved by the mean of both workers' gradients
 * (a row only one worker pushed moves by half its gradient). A push of another clock is
 * refused and changes nothing. */
static void test_bsp_barrier_and_mean(void)
{
    Srv s;
    srv_start(&s, SERVER_BSP, 2, 0, NULL);
    void *c0 = client(&s), *c1 = client(&s);
    uint64_t keys[3] = {10, 11, 12};
    float old[9], now[9];
    pull(c0, 0, 0, PARAM_USER, keys, 3, old);
    uint64_t k0[2] = {10, 11}, k1[2] = {11, 12};
    float g0[6] = {1, 2, 3, 4, 5, 6}, g1[6] = {0.5f, 0.25f, -1, 8, 16, 32};
    CU_ASSERT(push(c0, 0, 0, PARAM_USER, k0, 2, g0) == WIRE_OP_PUSH);
    CU_ASSERT(push(c0, 0, 1, PARAM_USER, k0, 2, g0) == WIRE_OP_ERROR); /* wrong clock */
    CU_ASSERT(clock_done(c0, 0, 0) == WIRE_OP_CLOCK);

    uint64_t id = pull_send(c0, 0, 1, PARAM_USER, keys, 3);
    WireMsg m;
    CU_ASSERT(recv_within(c0, QUIET_MS, &m) == NO_MESSAGE);
    wire_msg_close(&m);
    pull(c1, 1, 0, PARAM_USER, keys, 3, now); /* clock 0: not gated, nothing applied yet */
    CU_ASSERT(memcmp(now, old, sizeof old) == 0);
    CU_ASSERT(recv_within(c0, 10, &m) == NO_MESSAGE);
    wire_msg_close(&m);

    CU_ASSERT(push(c1, 1, 0, PARAM_USER, k1, 2, g1) == WIRE_OP_PUSH);
    CU_ASSERT(clock_done(c1, 1, 0) == WIRE_OP_CLOCK);
    pull_recv(c0, id, now, 9);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT(now[i] == old[i] - g0[i] / 2);
        CU_ASSERT(now[3 + i] == old[3 + i] - (g0[3 + i] + g1[i]) / 2);
        CU_ASSERT(now[6 + i] == old[6 + i] - g1[3 + i] / 2);
    }
    WireStats st = stats_of(c1);
    CU_ASSERT_EQUAL(st.deferred_pulls, 1);
    CU_ASSERT_EQUAL(st.bad_messages, 1);
    CU_ASSERT_EQUAL(st.max_staleness, 0);
    zmq_close(c0);
    zmq_close(c1);
    CU_ASSERT(srv_end(&s, 1) == 0);
}

/* (d) SSP, s=1: worker 0 may pull at clock 1 while worker 1 has finished nothing, but its pull
 * at clock 2 waits for worker 1's first CLOCK. Pushes apply at once. */
static void test_ssp_bound(void)
{
    Srv s;
    srv_start(&s, SERVER_SSP, 2, 1, NULL);
    void *c0 = client(&s), *c1 = client(&s);
    uint64_t k = 1;
    float old[3], now[3], g[3] = {1, -1, 0.5f};
    pull(c0, 0, 0, PARAM_CAT, &k, 1, old);
    CU_ASSERT(push(c0, 0, 0, PARAM_CAT, &k, 1, g) == WIRE_OP_PUSH);
    CU_ASSERT(clock_done(c0, 0, 0) == WIRE_OP_CLOCK);
    pull(c0, 0, 1, PARAM_CAT, &k, 1, now); /* one step ahead: allowed */
    for (int i = 0; i < 3; i++)
        CU_ASSERT(now[i] == old[i] - g[i]);
    CU_ASSERT(clock_done(c0, 0, 1) == WIRE_OP_CLOCK);
    uint64_t id = pull_send(c0, 0, 2, PARAM_CAT, &k, 1);
    WireMsg m;
    CU_ASSERT(recv_within(c0, QUIET_MS, &m) == NO_MESSAGE);
    wire_msg_close(&m);
    CU_ASSERT(clock_done(c1, 1, 0) == WIRE_OP_CLOCK);
    pull_recv(c0, id, now, 3);
    WireStats st = stats_of(c1);
    CU_ASSERT_EQUAL(st.deferred_pulls, 1);
    CU_ASSERT_EQUAL(st.max_staleness, 1);
    CU_ASSERT(clock_done(c1, 1, 0) == WIRE_OP_ERROR); /* clocks only move forward */
    zmq_close(c0);
    zmq_close(c1);
    CU_ASSERT(srv_end(&s, 1) == 0);
}

/* Send raw frames: an encoded header (cut by `cut` bytes) and up to two data frames. */
static void send_raw(void *sock, const WireHeader *h, size_t cut, const void *k, size_t kl,
                     const void *v, size_t vl, int frames)
{
    unsigned char buf[WIRE_HEADER_MAX];
    size_t len;
    CU_ASSERT_FATAL(wire_encode_header(h, buf, sizeof buf, &len) == 0);
    CU_ASSERT_FATAL(zmq_send(sock, buf, len - cut, frames > 1 ? ZMQ_SNDMORE : 0) >= 0);
    if (frames > 1)
        CU_ASSERT_FATAL(zmq_send(sock, k, kl, frames > 2 ? ZMQ_SNDMORE : 0) >= 0);
    if (frames > 2)
        CU_ASSERT_FATAL(zmq_send(sock, v, vl, 0) >= 0);
}

/* The reply to a bad message: ERROR with a reason containing needle; request id echoed when
 * the header decoded (id != 0). */
static void expect_error(void *sock, uint64_t id, const char *needle)
{
    WireMsg m;
    CU_ASSERT_FATAL(recv_within(sock, WAIT_MS, &m) == 0);
    CU_ASSERT(m.h.op == WIRE_OP_ERROR && m.h.reply && m.h.error_code < 0);
    CU_ASSERT(m.h.request_id == id);
    if (!strstr(m.h.error_text, needle))
        fprintf(stderr, "\n  error text '%s' lacks '%s'\n", m.h.error_text, needle);
    CU_ASSERT_PTR_NOT_NULL(strstr(m.h.error_text, needle));
    wire_msg_close(&m);
}

/* (e) Bad messages: each gets an ERROR with a reason, the loop keeps serving, and the rows
 * are what they were (a push with one bad key among good ones applies none of them). */
static void test_bad_messages(void)
{
    Srv s;
    srv_start(&s, SERVER_ASP, 2, 0, NULL);
    void *c = client(&s);
    uint64_t keys[2] = {5, 6};
    float before[8], after[8];
    pull(c, 0, 0, PARAM_WORD, keys, 2, before);

    float g[8] = {1, 1, 1, 1, 1, 1, 1, 1}, gnan[8] = {1, 1, 1, 1, 1, NAN, 1, 1};
    uint64_t badk[2] = {5, 100};
    WireHeader p = req(WIRE_OP_PUSH, 0, 0);
    p.table = PARAM_WORD;
    p.key_count = 2;
    p.value_width = 4;
    int bad = 0;

    send_raw(c, &p, 1, keys, 16, g, 32, 3);
    expect_error(c, 0, "does not decode"), bad++;

    WireHeader h = p;
    h.request_id = next_id++;
    h.key_count = WIRE_DEFAULT_MAX_KEYS + 1;
    send_raw(c, &h, 0, keys, 16, g, 32, 3);
    expect_error(c, h.request_id, "key_count"), bad++;

    h = p;
    h.request_id = next_id++;
    h.version = 3;
    send_raw(c, &h, 0, keys, 16, g, 32, 3);
    expect_error(c, h.request_id, "wire version 3"), bad++;

    h = p;
    h.request_id = next_id++;
    send_raw(c, &h, 0, badk, 16, g, 32, 3);
    expect_error(c, h.request_id, "key 100"), bad++;

    h = p;
    h.request_id = next_id++;
    send_raw(c, &h, 0, keys, 16, gnan, 32, 3);
    expect_error(c, h.request_id, "NaN"), bad++;

    h = p;
    h.request_id = next_id++;
    h.value_width = 2;
    send_raw(c, &h, 0, keys, 16, g, 16, 3);
    expect_error(c, h.request_id, "value_width 2"), bad++;

    h = req((WireOp)9, 0, 0);
    send_raw(c, &h, 0, NULL, 0, NULL, 0, 1);
    expect_error(c, h.request_id, "unknown op 9"), bad++;

    h = p;
    h.request_id = next_id++;
    h.worker_rank = 2;
    send_raw(c, &h, 0, keys, 16, g, 32, 3);
    expect_error(c, h.request_id, "worker_rank 2"), bad++;

    h = req(WIRE_OP_HEARTBEAT, 0, 0);
    h.reply = 1;
    send_raw(c, &h, 0, NULL, 0, NULL, 0, 1);
    expect_error(c, h.request_id, "reply sent to a shard"), bad++;

    h = p;
    h.request_id = next_id++;
    send_raw(c, &h, 0, keys, 16, g, 32, 2); /* values frame missing */
    expect_error(c, h.request_id, "needs 3"), bad++;

    /* Garbage in a burst: all answered, all counted, logging rate-limited. */
    for (int i = 0; i < 20; i++) {
        CU_ASSERT_FATAL(zmq_send(c, "\xff\xff\xff", 3, 0) == 3);
        expect_error(c, 0, "does not decode"), bad++;
    }

    /* Still serving, and nothing moved. */
    WireHeader hb = req(WIRE_OP_HEARTBEAT, 1, 0);
    CU_ASSERT(rpc(c, &hb, NULL, NULL, NULL, 0) == WIRE_OP_HEARTBEAT);
    pull(c, 1, 0, PARAM_WORD, keys, 2, after);
    CU_ASSERT(memcmp(before, after, sizeof before) == 0);
    WireStats st = stats_of(c);
    CU_ASSERT_EQUAL(st.bad_messages, (uint64_t)bad);
    CU_ASSERT_EQUAL(st.pushes, 0);
    CU_ASSERT_EQUAL(st.rows_held, 2);
    zmq_close(c);
    CU_ASSERT(srv_end(&s, 1) == 0);
}

/* (f) STATS: counters of pulls, pushes, bytes, rows; the stats file gets a JSON line with the
 * same numbers when the loop ends. */
static void test_stats(void)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("server"));
    snprintf(path, sizeof path, "%s/stats.jsonl", dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    Srv s;
    srv_start(&s, SERVER_ASP, 1, 0, f);
    void *c = client(&s);
    uint64_t keys[3] = {1, 2, 3};
    float rows[12], g[12] = {0};
    pull(c, 0, 0, PARAM_WORD, keys, 3, rows);
    pull(c, 0, 0, PARAM_WORD, keys, 1, rows);
    CU_ASSERT(push(c, 0, 0, PARAM_WORD, keys, 3, g) == WIRE_OP_PUSH);
    WireStats st = stats_of(c);
    CU_ASSERT_EQUAL(st.pulls, 2);
    CU_ASSERT_EQUAL(st.pushes, 1);
    CU_ASSERT_EQUAL(st.rows_held, 3);
    CU_ASSERT_EQUAL(st.bad_messages, 0);
    /* In: 2 pulls (24 + 8 key bytes), a push (24 + 48) and the STATS request, plus headers. */
    CU_ASSERT(st.bytes_in > 104 && st.bytes_in < 104 + 4 * 64);
    /* Out: the rows (48 + 16 floats' bytes, keys echoed 24 + 8) and the acks. */
    CU_ASSERT(st.bytes_out > 96 && st.bytes_out < 96 + 3 * 64);
    shutdown_worker(c, 0);
    zmq_close(c);
    CU_ASSERT(srv_end(&s, 0) == 0);
    fclose(f);
    char *text = tu_read_file(path, NULL);
    CU_ASSERT_FATAL(text != NULL);
    double v;
    CU_ASSERT(strstr(text, "{\"shard\":0,") == text);
    CU_ASSERT(tu_json_number(text, "pulls", &v) && v == 2);
    CU_ASSERT(tu_json_number(text, "pushes", &v) && v == 1);
    CU_ASSERT(tu_json_number(text, "rows_held", &v) && v == 3);
    free(text);
    tu_rmtree(dir);
}

/* (g) The loop ends with 0 once every worker said SHUTDOWN; a worker that left is refused,
 * and in BSP a worker leaving opens the barrier for the others. */
static void test_shutdown_ends_loop(void)
{
    Srv s;
    srv_start(&s, SERVER_BSP, 2, 0, NULL);
    void *c0 = client(&s), *c1 = client(&s);
    uint64_t k = 2;
    float old[3], now[3], g[3] = {2, 4, 8};
    pull(c0, 0, 0, PARAM_CAT, &k, 1, old);
    CU_ASSERT(push(c0, 0, 0, PARAM_CAT, &k, 1, g) == WIRE_OP_PUSH);
    CU_ASSERT(clock_done(c0, 0, 0) == WIRE_OP_CLOCK);
    uint64_t id = pull_send(c0, 0, 1, PARAM_CAT, &k, 1);
    WireMsg m;
    CU_ASSERT(recv_within(c0, QUIET_MS, &m) == NO_MESSAGE);
    wire_msg_close(&m);
    shutdown_worker(c1, 1); /* worker 1 leaves: step 0 had one worker */
    pull_recv(c0, id, now, 3);
    for (int i = 0; i < 3; i++)
        CU_ASSERT(now[i] == old[i] - g[i]);
    char why[WIRE_ERROR_TEXT_MAX];
    WireHeader hb = req(WIRE_OP_CLOCK, 1, 1);
    CU_ASSERT(rpc(c1, &hb, NULL, NULL, why, sizeof why) == WIRE_OP_ERROR);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "after its SHUTDOWN"));
    /* A done worker's heartbeat actor may still beat until it is stopped: answered. */
    hb = req(WIRE_OP_HEARTBEAT, 1, 0);
    CU_ASSERT(rpc(c1, &hb, NULL, NULL, NULL, 0) == WIRE_OP_HEARTBEAT);
    hb = req(WIRE_OP_HEARTBEAT, 0, 0);
    CU_ASSERT(rpc(c0, &hb, NULL, NULL, NULL, 0) == WIRE_OP_HEARTBEAT);
    shutdown_worker(c0, 0);
    zmq_close(c0);
    zmq_close(c1);
    CU_ASSERT(srv_end(&s, 0) == 0);
}

/* Stopped from outside with a pull still waiting: that pull gets an ERROR (every request is
 * answered) and run returns 0. */
static void test_stop_answers_waiting_pulls(void)
{
    Srv s;
    srv_start(&s, SERVER_SSP, 2, 0, NULL);
    void *c = client(&s);
    uint64_t k = 0;
    uint64_t id = pull_send(c, 0, 3, PARAM_NEWS_B, &k, 1);
    WireMsg m;
    CU_ASSERT(recv_within(c, QUIET_MS, &m) == NO_MESSAGE);
    wire_msg_close(&m);
    CU_ASSERT(srv_end(&s, 1) == 0);
    CU_ASSERT_FATAL(recv_within(c, WAIT_MS, &m) == 0);
    CU_ASSERT(m.h.op == WIRE_OP_ERROR && m.h.request_id == id && m.h.error_code == PSREC_E_STATE);
    wire_msg_close(&m);
    zmq_close(c);
}

/* Options are checked; a bind failure is reported, not fatal. */
/* ---- cuts and liveness ------------------------------------------------------------------ */

/* What the checkpoint thread saw: the images' fields and the value of one row of the copy,
 * read after a delay (the loop trains on meanwhile: the copy must not move). */
typedef struct Seen {
    pthread_mutex_t mu;
    int n;
    uint64_t step[8];
    int stop[8], final[8];
    uint64_t finished[8][2];
    char pos[8][2][8];
    float row[8][3];
} Seen;
static Seen seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int snap_capture(void *unused, const CutImage *img)
{
    (void)unused;
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&seen.mu);
    int i = seen.n < 8 ? seen.n++ : 7;
    seen.step[i] = img->step;
    seen.stop[i] = img->stop;
    seen.final[i] = img->final;
    for (uint32_t w = 0; w < 2 && w < img->workers; w++) {
        seen.finished[i][w] = img->finished[w];
        memcpy(seen.pos[i][w], img->cuts + (size_t)w * SNAP_CUT_MAX, 8);
    }
    uint64_t k = 2;
    shard_pull(img->copy, PARAM_CAT, &k, 1, seen.row[i]);
    pthread_mutex_unlock(&seen.mu);
    return 0;
}

static int seen_count(void)
{
    for (int t = 0; t < 300; t++) {
        pthread_mutex_lock(&seen.mu);
        int n = seen.n;
        pthread_mutex_unlock(&seen.mu);
        if (n)
            return n;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void srv_start_cuts(Srv *s, ServerConsistency c, double hb_timeout)
{
    static int n;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://server-cut-%d", n++);
    ServerLoopOptions o = {
        .shard = {.shape = shape, .optim = {.kind = OPTIM_SGD, .lr = 1.0f}, .seed = seed,
                  .lazy_dense = 1},
        .shard_index = 0,
        .shard_count = 1,
        .workers = 2,
        .consistency = c,
        .endpoint = ep,
        .zmq_ctx = ctx,
        .snap_fn = snap_capture,
        .final_image = 1,
        .heartbeat_timeout = hb_timeout};
    memset(s, 0, sizeof *s);
    pthread_mutex_lock(&seen.mu);
    seen.n = 0;
    pthread_mutex_unlock(&seen.mu);
    CU_ASSERT_FATAL(server_loop_new(&o, &s->loop) == 0);
    CU_ASSERT_FATAL(server_loop_start(s->loop) == 0);
    s->running = 1;
}

/* A request carrying a position (CLOCK, CUT, SHUTDOWN); returns the reply's header. */
static WireHeader rpc_pos(void *sock, WireOp op, uint32_t w, uint64_t clock, const char *pos,
                          uint32_t flags)
{
    WireHeader h = req(op, w, clock);
    h.cut_len = 8;
    memcpy(h.cut, pos, 8);
    h.flags = flags;
    CU_ASSERT_FATAL(wire_send(sock, NULL, 0, &h, NULL, NULL) == 0);
    WireMsg m;
    CU_ASSERT_FATAL(recv_within(sock, WAIT_MS, &m) == 0);
    WireHeader r = m.h;
    wire_msg_close(&m);
    return r;
}

/* A CUT at S is answered only once every live worker sent CUT S; only a worker that has
 * clocked exactly S steps may send it; the image holds the state at S (every push below S,
 * nothing later, even while the loop trains on) and each worker's position of its CUT. */
static void test_cut_is_consistent(void)
{
    Srv s;
    srv_start_cuts(&s, SERVER_BSP, 0);
    void *c0 = client(&s), *c1 = client(&s);
    uint64_t k = 2;
    float old[3], g0[3] = {2, 4, 8}, g1[3] = {4, 4, 4};
    pull(c0, 0, 0, PARAM_CAT, &k, 1, old);
    CU_ASSERT(push(c0, 0, 0, PARAM_CAT, &k, 1, g0) == WIRE_OP_PUSH);
    CU_ASSERT(push(c1, 1, 0, PARAM_CAT, &k, 1, g1) == WIRE_OP_PUSH);
    CU_ASSERT(rpc_pos(c0, WIRE_OP_CLOCK, 0, 0, "pos-a-1", 0).op == WIRE_OP_CLOCK);
    CU_ASSERT(rpc_pos(c1, WIRE_OP_CLOCK, 1, 0, "pos-b-1", 0).op == WIRE_OP_CLOCK);
    /* Worker 0 at the cut alone: no answer yet. */
    WireHeader cut0 = req(WIRE_OP_CUT, 0, 1);
    cut0.cut_len = 8;
    memcpy(cut0.cut, "cut-a-1", 8);
    CU_ASSERT_FATAL(wire_send(c0, NULL, 0, &cut0, NULL, NULL) == 0);
    WireMsg m;
    CU_ASSERT(recv_within(c0, QUIET_MS, &m) == NO_MESSAGE);
    wire_msg_close(&m);
    /* A CUT at a step the worker has not reached is refused. */
    WireHeader bad = rpc_pos(c1, WIRE_OP_CUT, 1, 2, "cut-b-2", 0);
    CU_ASSERT(bad.op == WIRE_OP_ERROR && strstr(bad.error_text, "has finished 1 steps"));
    /* The second CUT completes the cut: both are answered, without STOP. */
    WireHeader r1 = rpc_pos(c1, WIRE_OP_CUT, 1, 1, "cut-b-1", 0);
    CU_ASSERT(r1.op == WIRE_OP_CUT && !(r1.flags & WIRE_FLAG_STOP));
    CU_ASSERT_FATAL(recv_within(c0, WAIT_MS, &m) == 0);
    CU_ASSERT(m.h.op == WIRE_OP_CUT && m.h.request_id == cut0.request_id);
    wire_msg_close(&m);
    /* Train on while the thread writes: step 1's update must not reach the copy. */
    CU_ASSERT(push(c0, 0, 1, PARAM_CAT, &k, 1, g0) == WIRE_OP_PUSH);
    CU_ASSERT(rpc_pos(c0, WIRE_OP_CLOCK, 0, 1, "pos-a-2", 0).op == WIRE_OP_CLOCK);
    CU_ASSERT(rpc_pos(c1, WIRE_OP_CLOCK, 1, 1, "pos-b-2", 0).op == WIRE_OP_CLOCK);
    CU_ASSERT_FATAL(seen_count() >= 1);
    pthread_mutex_lock(&seen.mu);
    CU_ASSERT_EQUAL(seen.step[0], 1);
    CU_ASSERT(!seen.stop[0] && !seen.final[0]);
    CU_ASSERT(seen.finished[0][0] == 1 && seen.finished[0][1] == 1);
    CU_ASSERT(!memcmp(seen.pos[0][0], "cut-a-1", 8) && !memcmp(seen.pos[0][1], "cut-b-1", 8));
    for (int i = 0; i < 3; i++)
        CU_ASSERT(seen.row[0][i] == old[i] - (g0[i] + g1[i]) / 2);
    pthread_mutex_unlock(&seen.mu);
    shutdown_worker(c0, 0);
    shutdown_worker(c1, 1);
    zmq_close(c0);
    zmq_close(c1);
    CU_ASSERT(srv_end(&s, 0) == 0);
    /* Every worker done: one more image, the final one, at the last step. */
    pthread_mutex_lock(&seen.mu);
    CU_ASSERT_EQUAL_FATAL(seen.n, 2);
    CU_ASSERT(seen.final[1] && seen.step[1] == 2);
    pthread_mutex_unlock(&seen.mu);
}

/* A stop request on shard 0 is announced at 1 + the largest step clocked, in every reply; the
 * cut there answers STOP; after workers stop there is no final image. A worker's WANT flag
 * announces a cut too. */
static void test_cut_announced_and_stop(void)
{
    Srv s;
    srv_start_cuts(&s, SERVER_ASP, 0);
    void *c0 = client(&s), *c1 = client(&s);
    CU_ASSERT(rpc_pos(c0, WIRE_OP_CLOCK, 0, 0, "a1aaaaa", 0).cut_step == 0);
    WireHeader r = rpc_pos(c0, WIRE_OP_CLOCK, 0, 1, "a2aaaaa", WIRE_FLAG_WANT_CUT);
    CU_ASSERT_EQUAL(r.cut_step, 3); /* worker 0 has clocked 2 steps */
    CU_ASSERT(!(r.flags & WIRE_FLAG_STOP));
    /* Worker 1 catches up, then both cut at 3. */
    for (uint64_t t = 0; t < 3; t++)
        CU_ASSERT(rpc_pos(c1, WIRE_OP_CLOCK, 1, t, "b......", 0).cut_step == 3);
    CU_ASSERT(rpc_pos(c0, WIRE_OP_CLOCK, 0, 2, "a3aaaaa", 0).op == WIRE_OP_CLOCK);
    WireHeader cut0 = req(WIRE_OP_CUT, 0, 3);
    CU_ASSERT_FATAL(wire_send(c0, NULL, 0, &cut0, NULL, NULL) == 0);
    CU_ASSERT(rpc_pos(c1, WIRE_OP_CUT, 1, 3, "b3bbbbb", 0).op == WIRE_OP_CUT);
    WireMsg m;
    CU_ASSERT_FATAL(recv_within(c0, WAIT_MS, &m) == 0);
    CU_ASSERT(m.h.op == WIRE_OP_CUT);
    wire_msg_close(&m);
    /* The announcement is over; a stop request makes a new one, with STOP. */
    CU_ASSERT(rpc_pos(c0, WIRE_OP_CLOCK, 0, 3, "a4aaaaa", 0).cut_step == 0);
    server_loop_request_cut(s.loop, 1);
    struct timespec ts = {0, 250 * 1000000L}; /* the loop looks every 100 ms */
    nanosleep(&ts, NULL);
    r = rpc_pos(c1, WIRE_OP_CLOCK, 1, 3, "b4bbbbb", 0);
    CU_ASSERT(r.cut_step == 5 && (r.flags & WIRE_FLAG_STOP));
    CU_ASSERT(rpc_pos(c0, WIRE_OP_CLOCK, 0, 4, "a5aaaaa", 0).cut_step == 5);
    CU_ASSERT(rpc_pos(c1, WIRE_OP_CLOCK, 1, 4, "b5bbbbb", 0).cut_step == 5);
    cut0 = req(WIRE_OP_CUT, 0, 5);
    CU_ASSERT_FATAL(wire_send(c0, NULL, 0, &cut0, NULL, NULL) == 0);
    r = rpc_pos(c1, WIRE_OP_CUT, 1, 5, "b5bbbbb", 0);
    CU_ASSERT(r.op == WIRE_OP_CUT && (r.flags & WIRE_FLAG_STOP));
    CU_ASSERT_FATAL(recv_within(c0, WAIT_MS, &m) == 0);
    CU_ASSERT(m.h.op == WIRE_OP_CUT && (m.h.flags & WIRE_FLAG_STOP));
    wire_msg_close(&m);
    CU_ASSERT(rpc_pos(c0, WIRE_OP_SHUTDOWN, 0, 5, "a5aaaaa", WIRE_FLAG_STOP).op ==
              WIRE_OP_SHUTDOWN);
    CU_ASSERT(rpc_pos(c1, WIRE_OP_SHUTDOWN, 1, 5, "b5bbbbb", WIRE_FLAG_STOP).op ==
              WIRE_OP_SHUTDOWN);
    zmq_close(c0);
    zmq_close(c1);
    server_loop_join(s.loop, -1, &s.rc);
    CU_ASSERT(server_loop_stopped(s.loop));
    CU_ASSERT(srv_end(&s, 0) == 0);
    for (int t = 0; t < 100 && seen_count() < 2; t++)
        nanosleep(&ts, NULL);
    pthread_mutex_lock(&seen.mu);
    CU_ASSERT_EQUAL(seen.n, 2); /* the cuts at 3 and 5; no final image after a stop */
    CU_ASSERT(seen.step[0] == 3 && !seen.stop[0]);
    CU_ASSERT(seen.step[1] == 5 && seen.stop[1]);
    pthread_mutex_unlock(&seen.mu);
}

/* A worker silent for the heartbeat timeout is declared dead and fenced; a heartbeating one
 * is not, however long it takes. The job then ends: the others are refused. */
static void test_liveness_and_fencing(void)
{
    Srv s;
    srv_start_cuts(&s, SERVER_ASP, 0.6);
    void *c0 = client(&s), *c1 = client(&s);
    char why[WIRE_ERROR_TEXT_MAX];
    WireOp first = WIRE_OP_NONE, last = WIRE_OP_NONE;
    for (int i = 0; i < 12; i++) { /* 1.2 s of heartbeats from worker 0 only */
        WireHeader hb = req(WIRE_OP_HEARTBEAT, 0, 0);
        last = rpc(c0, &hb, NULL, NULL, why, sizeof why);
        if (!i)
            first = last;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    /* Answered while all is well; once worker 1 is dead, told that the job is ending. */
    CU_ASSERT_EQUAL(first, WIRE_OP_HEARTBEAT);
    CU_ASSERT_EQUAL(last, WIRE_OP_ERROR);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "the job is ending"));
    WireHeader h = req(WIRE_OP_CLOCK, 1, 0);
    CU_ASSERT(rpc(c1, &h, NULL, NULL, why, sizeof why) == WIRE_OP_ERROR);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "declared worker 1 dead"));
    h = req(WIRE_OP_HEARTBEAT, 1, 0); /* its heartbeat actor hears it is fenced */
    CU_ASSERT(rpc(c1, &h, NULL, NULL, why, sizeof why) == WIRE_OP_ERROR);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "fenced"));
    h = req(WIRE_OP_CLOCK, 0, 0);
    CU_ASSERT(rpc(c0, &h, NULL, NULL, why, sizeof why) == WIRE_OP_ERROR);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "the job is ending"));
    shutdown_worker(c0, 0);
    zmq_close(c0);
    zmq_close(c1);
    server_loop_join(s.loop, -1, &s.rc);
    uint32_t lost[4];
    CU_ASSERT_EQUAL(server_loop_lost(s.loop, lost, 4), 1);
    CU_ASSERT_EQUAL(lost[0], 1);
    CU_ASSERT(srv_end(&s, 0) == 0);
}

static void test_bad_options(void)
{
    ServerLoopOptions o = {.shard = {.shape = shape, .optim = {.kind = OPTIM_SGD, .lr = 1}},
                           .shard_count = 1,
                           .workers = 0,
                           .endpoint = "inproc://server-test-opts",
                           .zmq_ctx = ctx};
    ServerLoop *l = NULL;
    CU_ASSERT(server_loop_new(&o, &l) == PSREC_E_RANGE && l == NULL);
    o.workers = 1;
    o.shard_index = 1;
    CU_ASSERT(server_loop_new(&o, &l) == PSREC_E_RANGE && l == NULL);
    o.shard_index = 0;
    o.endpoint = "nonsense://x";
    CU_ASSERT(server_loop_new(&o, &l) > 0 && l == NULL);
}

int main(void)
{
    ctx = zmq_ctx_new();
    wire_limits_init(&lim, &shape);
    static const TuTest tests[] = {
        {"push/pull arithmetic (SGD, lr 1)", test_push_pull_arithmetic},
        {"ASP, two workers", test_asp_two_workers},
        {"BSP barrier and mean of pushes", test_bsp_barrier_and_mean},
        {"SSP staleness bound", test_ssp_bound},
        {"bad messages refused, nothing changed", test_bad_messages},
        {"STATS reply and stats file", test_stats},
        {"SHUTDOWN of every worker ends the loop", test_shutdown_ends_loop},
        {"stop answers waiting pulls", test_stop_answers_waiting_pulls},
        {"bad options", test_bad_options},
        {"a cut is consistent and complete", test_cut_is_consistent},
        {"cuts announced by shard 0, stopping cut", test_cut_announced_and_stop},
        {"liveness: silent worker declared dead and fenced", test_liveness_and_fencing},
        {NULL, NULL},
    };
    tu_add_suite("server", tests);
    int rc = tu_run_all();
    zmq_ctx_term(ctx);
    return rc;
}
