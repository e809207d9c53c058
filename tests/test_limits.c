/* A shard's resource limits (ps.max_message_bytes, ps.max_keys_per_request,
 * ps.max_rows_per_table): one table of cases, each limit set just below, at and just above
 * what one request needs. Below and at, the request is served; above, it gets an ERROR reply
 * naming the limit, is counted (over_limit and bad_messages in the STATS reply), and changes
 * nothing (rows held stay as they were). Then a table at its row cap: known rows are still
 * served, a new one is refused, so the shard never grows past the cap. Also the config keys'
 * defaults and ranges (tests/test_jobguards.c runs a job with each one too low). */
#include "common/config.h"
#include "common/error.h"
#include "common/wire.h"
#include "server/loop.h"
#include "testutil/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define WAIT_MS 3000
#define NKEYS 10

static const ParamShape shape = {
    .E = 4, .H = 3, .vocab_rows = 100, .category_rows = 10, .user_rows = 50};
static void *ctx;
static WireLimits lim;

typedef enum Limit { LIM_BYTES, LIM_KEYS, LIM_ROWS } Limit;

typedef struct Case {
    Limit limit;
    WireOp op;     /* PULL or PUSH of NKEYS fresh word rows */
    int delta;     /* limit = need + delta: +1 below, 0 at, -1 above */
    int refused;   /* expected */
    const char *why; /* in the error text when refused */
} Case;

static ServerLoop *start(const Case *c, uint64_t need, int n)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://limits-%d", n);
    ServerLoopOptions o = {
        .shard = {.shape = shape, .optim = {.kind = OPTIM_SGD, .lr = 1.0f}, .seed = 1,
                  .lazy_dense = 1},
        .shard_count = 1, .workers = 1, .consistency = SERVER_ASP, .endpoint = ep,
        .zmq_ctx = ctx};
    const uint64_t v = need + (uint64_t)(int64_t)c->delta;
    if (c->limit == LIM_BYTES)
        o.max_message_bytes = v;
    else if (c->limit == LIM_KEYS)
        o.max_keys_per_request = v;
    else
        o.shard.max_rows = v;
    ServerLoop *l = NULL;
    CU_ASSERT_FATAL(server_loop_new(&o, &l) == 0);
    CU_ASSERT_FATAL(server_loop_start(l) == 0);
    return l;
}

/* Send h (with keys, and values for a push) and return the reply's op; its text into why. */
static WireOp rpc(void *sock, WireHeader *h, const uint64_t *keys, const float *vals,
                  char *why, size_t n, WireStats *stats)
{
    static uint64_t id = 1000;
    if (!h->request_id) /* set by the caller when the header's size matters */
        h->request_id = id++;
    CU_ASSERT_FATAL(wire_send(sock, NULL, 0, h, keys, vals) == 0);
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    CU_ASSERT_FATAL(zmq_poll(&it, 1, WAIT_MS) == 1);
    WireMsg m;
    CU_ASSERT_FATAL(wire_recv(sock, 0, &m, &lim, NULL, 0) == 0);
    CU_ASSERT(m.h.request_id == h->request_id);
    WireOp op = m.h.op;
    if (why)
        snprintf(why, n, "%s", m.h.error_text);
    if (stats)
        *stats = m.h.stats;
    wire_msg_close(&m);
    return op;
}

static WireStats stats(void *sock)
{
    WireHeader h;
    wire_header_init(&h, WIRE_OP_STATS);
    WireStats s;
    CU_ASSERT(rpc(sock, &h, NULL, NULL, NULL, 0, &s) == WIRE_OP_STATS);
    return s;
}

static void request_header(WireHeader *h, WireOp op, uint64_t nkeys)
{
    wire_header_init(h, op);
    h->table = PARAM_WORD;
    h->key_count = nkeys;
    if (op == WIRE_OP_PUSH)
        h->value_width = lim.width[PARAM_WORD];
}

static void test_limits_table(void)
{
    static const Case cases[] = {
        {LIM_BYTES, WIRE_OP_PUSH, +1, 0, NULL},
        {LIM_BYTES, WIRE_OP_PUSH, 0, 0, NULL},
        {LIM_BYTES, WIRE_OP_PUSH, -1, 1, "bytes (max"},
        {LIM_BYTES, WIRE_OP_PULL, 0, 0, NULL},
        {LIM_BYTES, WIRE_OP_PULL, -1, 1, "bytes (max"},
        {LIM_KEYS, WIRE_OP_PULL, +1, 0, NULL},
        {LIM_KEYS, WIRE_OP_PULL, 0, 0, NULL},
        {LIM_KEYS, WIRE_OP_PULL, -1, 1, "key_count 10 (max 9)"},
        {LIM_KEYS, WIRE_OP_PUSH, 0, 0, NULL},
        {LIM_KEYS, WIRE_OP_PUSH, -1, 1, "key_count 10 (max 9)"},
        {LIM_ROWS, WIRE_OP_PULL, +1, 0, NULL},
        {LIM_ROWS, WIRE_OP_PULL, 0, 0, NULL},
        {LIM_ROWS, WIRE_OP_PULL, -1, 1, "ps.max_rows_per_table = 9"},
        {LIM_ROWS, WIRE_OP_PUSH, 0, 0, NULL},
        {LIM_ROWS, WIRE_OP_PUSH, -1, 1, "ps.max_rows_per_table = 9"},
    };
    uint64_t keys[NKEYS];
    float vals[NKEYS * 16] = {0};
    for (int i = 0; i < NKEYS; i++)
        keys[i] = 5 + 7 * (uint64_t)i;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const Case *c = &cases[i];
        WireHeader h;
        request_header(&h, c->op, NKEYS);
        h.request_id = 1 + i;
        const uint64_t need = c->limit == LIM_BYTES ? wire_message_size(&h) : NKEYS;
        ServerLoop *l = start(c, need, (int)i);
        void *sock = zmq_socket(ctx, ZMQ_DEALER);
        int zero = 0;
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
        CU_ASSERT_FATAL(zmq_connect(sock, server_loop_endpoint(l)) == 0);
        char why[WIRE_ERROR_TEXT_MAX] = "";
        WireOp op = rpc(sock, &h, keys, vals, why, sizeof why, NULL);
        WireStats s = stats(sock);
        const int refused = op == WIRE_OP_ERROR;
        CU_ASSERT(refused == c->refused);
        CU_ASSERT(!refused || op == WIRE_OP_ERROR);
        CU_ASSERT(refused || op == c->op);
        CU_ASSERT(s.over_limit == (uint64_t)c->refused);
        CU_ASSERT(s.bad_messages == (uint64_t)c->refused);
        /* A refused request created nothing; a served one its NKEYS rows. */
        CU_ASSERT(s.rows_held == (refused ? 0u : (uint64_t)NKEYS));
        if (c->why)
            CU_ASSERT(strstr(why, c->why) != NULL);
        if (refused != c->refused || (c->why && !strstr(why, c->why)))
            fprintf(stderr, "\n  case %zu (limit %d, %s, delta %d): %s \"%s\"\n", i,
                    (int)c->limit, wire_op_name(c->op), c->delta, wire_op_name(op), why);
        zmq_close(sock);
        server_loop_stop(l);
        int rc;
        server_loop_join(l, -1, &rc);
        server_loop_free(&l);
    }
}

/* A table at its cap keeps serving the rows it holds and refuses every new one. */
static void test_rows_cap_holds(void)
{
    const Case c = {LIM_ROWS, WIRE_OP_PULL, 0, 0, NULL};
    ServerLoop *l = start(&c, NKEYS, 100);
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    CU_ASSERT_FATAL(zmq_connect(sock, server_loop_endpoint(l)) == 0);
    uint64_t keys[NKEYS + 1];
    float vals[(NKEYS + 1) * 16] = {0};
    for (int i = 0; i <= NKEYS; i++)
        keys[i] = 2 * (uint64_t)i;
    WireHeader h;
    for (int round = 0; round < 3; round++) { /* up to the cap, then the same rows again */
        request_header(&h, round == 1 ? WIRE_OP_PUSH : WIRE_OP_PULL, NKEYS);
        CU_ASSERT(rpc(sock, &h, keys, vals, NULL, 0, NULL) == h.op);
    }
    for (int round = 0; round < 3; round++) { /* one new key, alone or among known ones */
        request_header(&h, round == 1 ? WIRE_OP_PUSH : WIRE_OP_PULL, round == 2 ? 1 : NKEYS);
        CU_ASSERT(rpc(sock, &h, round == 2 ? keys + NKEYS : keys + 1, vals, NULL, 0, NULL) ==
                  WIRE_OP_ERROR);
    }
    /* Other tables have caps of their own. */
    request_header(&h, WIRE_OP_PULL, 3);
    h.table = PARAM_USER;
    CU_ASSERT(rpc(sock, &h, keys, vals, NULL, 0, NULL) == WIRE_OP_PULL);
    WireStats s = stats(sock);
    CU_ASSERT(s.rows_held == NKEYS + 3);
    CU_ASSERT(s.over_limit == 3);
    zmq_close(sock);
    server_loop_stop(l);
    int rc;
    server_loop_join(l, -1, &rc);
    server_loop_free(&l);
}

/* With takeover a step's pushes are held until its CLOCK: at most PARAM_TABLES messages'
 * worth (ps.max_message_bytes each) per worker; the next one is refused, and after the CLOCK
 * the worker may push again. */
static void test_held_pushes_bounded(void)
{
    uint64_t keys[NKEYS];
    float vals[NKEYS * 16] = {0};
    for (int i = 0; i < NKEYS; i++)
        keys[i] = (uint64_t)i;
    WireHeader h;
    request_header(&h, WIRE_OP_PUSH, NKEYS);
    h.request_id = 1;
    const uint64_t size = wire_message_size(&h); /* + 8: room for a later clock */
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://limits-held");
    ServerLoopOptions o = {
        .shard = {.shape = shape, .optim = {.kind = OPTIM_SGD, .lr = 1.0f}, .seed = 1,
                  .lazy_dense = 1},
        .shard_count = 1, .workers = 1, .consistency = SERVER_ASP, .endpoint = ep,
        .zmq_ctx = ctx, .takeover = 1, .max_message_bytes = size + 8};
    ServerLoop *l = NULL;
    CU_ASSERT_FATAL(server_loop_new(&o, &l) == 0);
    CU_ASSERT_FATAL(server_loop_start(l) == 0);
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    CU_ASSERT_FATAL(zmq_connect(sock, server_loop_endpoint(l)) == 0);
    for (int i = 0; i <= PARAM_TABLES; i++) {
        request_header(&h, WIRE_OP_PUSH, NKEYS);
        h.request_id = 1; /* same size every time */
        CU_ASSERT(rpc(sock, &h, keys, vals, NULL, 0, NULL) ==
                  (i < PARAM_TABLES ? WIRE_OP_PUSH : WIRE_OP_ERROR));
    }
    wire_header_init(&h, WIRE_OP_CLOCK);
    CU_ASSERT(rpc(sock, &h, NULL, NULL, NULL, 0, NULL) == WIRE_OP_CLOCK);
    request_header(&h, WIRE_OP_PUSH, NKEYS);
    h.request_id = 1;
    h.clock = 1;
    CU_ASSERT(rpc(sock, &h, keys, vals, NULL, 0, NULL) == WIRE_OP_PUSH);
    WireStats s = stats(sock);
    CU_ASSERT(s.over_limit == 1 && s.pushes == PARAM_TABLES + 1);
    zmq_close(sock);
    server_loop_stop(l);
    int rc;
    server_loop_join(l, -1, &rc);
    server_loop_free(&l);
}

/* Pulls waiting at a gate: at most SERVER_LOOP_WAITING_MAX per worker (a PS client never has
 * more in flight); the next is refused and counted, and those waiting are still answered
 * when the gate opens. */
static void test_waiting_pulls_bounded(void)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://limits-waiting");
    ServerLoopOptions o = {
        .shard = {.shape = shape, .optim = {.kind = OPTIM_SGD, .lr = 1.0f}, .seed = 1,
                  .lazy_dense = 1},
        .shard_count = 1, .workers = 2, .consistency = SERVER_SSP, .staleness = 0,
        .endpoint = ep, .zmq_ctx = ctx};
    ServerLoop *l = NULL;
    CU_ASSERT_FATAL(server_loop_new(&o, &l) == 0);
    CU_ASSERT_FATAL(server_loop_start(l) == 0);
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    CU_ASSERT_FATAL(zmq_connect(sock, server_loop_endpoint(l)) == 0);
    WireHeader h;
    wire_header_init(&h, WIRE_OP_CLOCK); /* worker 0 finishes step 0, worker 1 has not */
    CU_ASSERT(rpc(sock, &h, NULL, NULL, NULL, 0, NULL) == WIRE_OP_CLOCK);
    const uint64_t key = 3;
    enum { MAX = SERVER_LOOP_WAITING_MAX };
    for (int i = 0; i < MAX; i++) { /* held: clock 1 is ahead of worker 1 by more than 0 */
        request_header(&h, WIRE_OP_PULL, 1);
        h.clock = 1;
        h.request_id = 5000 + (uint64_t)i;
        CU_ASSERT_FATAL(wire_send(sock, NULL, 0, &h, &key, NULL) == 0);
    }
    request_header(&h, WIRE_OP_PULL, 1);
    h.clock = 1;
    char why[WIRE_ERROR_TEXT_MAX];
    CU_ASSERT(rpc(sock, &h, &key, NULL, why, sizeof why, NULL) == WIRE_OP_ERROR);
    char expect[64];
    snprintf(expect, sizeof expect, "%d pulls waiting", MAX);
    CU_ASSERT(strstr(why, expect) != NULL);
    wire_header_init(&h, WIRE_OP_CLOCK); /* worker 1 catches up: the gate opens */
    h.worker_rank = 1;
    CU_ASSERT(rpc(sock, &h, NULL, NULL, NULL, 0, NULL) == WIRE_OP_CLOCK);
    int answered = 0;
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    while (answered < MAX && zmq_poll(&it, 1, WAIT_MS) == 1) {
        WireMsg m;
        CU_ASSERT_FATAL(wire_recv(sock, 0, &m, &lim, NULL, 0) == 0);
        answered += m.h.op == WIRE_OP_PULL && m.h.request_id >= 5000;
        wire_msg_close(&m);
    }
    CU_ASSERT(answered == MAX);
    WireStats s = stats(sock);
    CU_ASSERT(s.over_limit == 1 && s.deferred_pulls == MAX);
    zmq_close(sock);
    server_loop_stop(l);
    int rc;
    server_loop_join(l, -1, &rc);
    server_loop_free(&l);
}

static void test_config_keys(void)
{
    Config cfg;
    config_defaults(&cfg);
    CU_ASSERT(cfg.ps.max_message_bytes == 256u << 20);
    CU_ASSERT(cfg.ps.max_keys_per_request == 1u << 22);
    CU_ASSERT(cfg.ps.max_rows_per_table == 1u << 24);
    static const struct {
        const char *key, *value;
        int ok;
    } rows[] = {
        {"max_message_bytes", "65535", 0},    {"max_message_bytes", "65536", 1},
        {"max_message_bytes", "1099511627776", 1}, {"max_message_bytes", "1099511627777", 0},
        {"max_keys_per_request", "0", 0},     {"max_keys_per_request", "1", 1},
        {"max_rows_per_table", "0", 0},       {"max_rows_per_table", "12", 1},
        {"max_rows_per_table", "-1", 0},      {"max_rows_per_table", "lots", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int rc = config_set(&cfg, "ps", rows[i].key, rows[i].value, "test");
        CU_ASSERT((rc == 0) == rows[i].ok);
        if (!rows[i].ok)
            CU_ASSERT(strstr(psrec_errmsg(), rows[i].key) != NULL);
    }
    CU_ASSERT(cfg.ps.max_rows_per_table == 12 && config_check(&cfg) == 0);
}

int main(void)
{
    ctx = zmq_ctx_new();
    wire_limits_init(&lim, &shape);
    static const TuTest tests[] = {
        {"each limit below / at / above one request's need", test_limits_table},
        {"a table at its row cap serves known rows, refuses new ones", test_rows_cap_holds},
        {"held pushes of one step: at most PARAM_TABLES messages' worth",
         test_held_pushes_bounded},
        {"pulls waiting at a gate: bounded per worker", test_waiting_pulls_bounded},
        {"config keys: defaults and ranges", test_config_keys},
        {NULL, NULL}};
    tu_add_suite("limits", tests);
    int rc = tu_run_all();
    zmq_ctx_term(ctx);
    return rc;
}
