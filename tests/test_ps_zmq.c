/* ZeroMQ PS client: two real shard event loops (server/loop.h) run on threads behind inproc://
 * endpoints and the clients under test talk to them through the PsClient interface. Checks
 * that sharded pulls give exactly what one in-process Shard gives, that pushes of known
 * values come back exactly as the optimizer would produce them (SGD, lr 1: every expected
 * value is exact), that tickets complete in any order with their own rows, that shard ERROR
 * replies and silent shards surface as errors naming the shard (never a hang), that BSP
 * through two real clients averages their pushes, and that SHUTDOWN ends the loops. */
#include "common/error.h"
#include "common/keyrange.h"
#include "common/wire.h"
#include "server/loop.h"
#include "server/shard.h"
#include "server/table.h"
#include "testutil/testutil.h"
#include "worker/efeed.h"
#include "worker/ps_zmq.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define NSHARDS 2
#define MAX_FLOATS 4096
#define JOIN_S 5        /* a loop told to end must end within this */
#define TIMEOUT_S 3.0   /* clients of live shards: replies come long before */

static const ParamShape shape = {
    .E = 4, .H = 3, .vocab_rows = 100, .category_rows = 10, .user_rows = 50};
static const uint64_t seed = 7;
static const int shard_ranks[NSHARDS] = {10, 11}; /* as MPI would number them */
static void *ctx;
static TableSpec specs[PARAM_TABLES];
static WireLimits lim;

typedef struct Srv {
    ServerLoop *loop;
    int rc;
} Srv;

typedef struct Cluster {
    Srv srv[NSHARDS];
    char ep[NSHARDS][64];
    const char *eps[NSHARDS];
    uint32_t W;
} Cluster;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Two shards of one job (SGD, lr 1, lazy dense rows) serving W workers, each on a thread;
 * on inproc:// endpoints, or loopback TCP (ports picked by the system) when tcp. */
static void cluster_start_on(Cluster *cl, ServerConsistency c, uint32_t W, int tcp)
{
    static int n;
    memset(cl, 0, sizeof *cl);
    cl->W = W;
    for (uint32_t k = 0; k < NSHARDS; k++) {
        if (tcp)
            snprintf(cl->ep[k], sizeof cl->ep[k], "tcp://127.0.0.1:*");
        else
            snprintf(cl->ep[k], sizeof cl->ep[k], "inproc://ps-zmq-test-%d-%u", n, k);
        cl->eps[k] = cl->ep[k];
        ServerLoopOptions o = {
            .shard = {.shape = shape, .optim = {.kind = OPTIM_SGD, .lr = 1.0f}, .seed = seed,
                      .lazy_dense = 1},
            .shard_index = k,
            .shard_count = NSHARDS,
            .workers = W,
            .consistency = c,
            .endpoint = cl->ep[k],
            .zmq_ctx = ctx};
        CU_ASSERT_FATAL(server_loop_new(&o, &cl->srv[k].loop) == 0);
        snprintf(cl->ep[k], sizeof cl->ep[k], "%s", server_loop_endpoint(cl->srv[k].loop));
        CU_ASSERT_FATAL(server_loop_start(cl->srv[k].loop) == 0);
    }
    n++;
}

static void cluster_start(Cluster *cl, ServerConsistency c, uint32_t W)
{
    cluster_start_on(cl, c, W, 0);
}

/* Join every loop. Each must end by itself (its workers said SHUTDOWN) within JOIN_S;
 * one that does not is stopped, so a failing test never hangs. Returns the loops that had
 * to be stopped; every loop's result must be 0. */
static int cluster_end(Cluster *cl)
{
    int stopped = 0;
    for (uint32_t k = 0; k < NSHARDS; k++) {
        if (server_loop_join(cl->srv[k].loop, JOIN_S, &cl->srv[k].rc) != 0) {
            server_loop_stop(cl->srv[k].loop);
            server_loop_join(cl->srv[k].loop, -1, &cl->srv[k].rc);
            stopped++;
        }
        CU_ASSERT_EQUAL(cl->srv[k].rc, 0);
        server_loop_free(&cl->srv[k].loop);
    }
    return stopped;
}

static PsZmq *client_chunked(const char *const *eps, uint32_t rank, uint32_t W, double timeout,
                             size_t chunk_bytes)
{
    PsZmqOptions o = {.zmq_ctx = ctx,
                      .endpoints = eps,
                      .shards = NSHARDS,
                      .worker_rank = rank,
                      .workers = W,
                      .shape = shape,
                      .timeout = timeout,
                      .shard_mpi_ranks = shard_ranks,
                      .chunk_bytes = chunk_bytes};
    PsZmq *c = NULL;
    int rc = ps_zmq_new(&o, &c);
    if (rc)
        fprintf(stderr, "\n  ps_zmq_new: %s\n", psrec_errmsg());
    CU_ASSERT_FATAL(rc == 0 && c != NULL);
    return c;
}

static PsZmq *client_for(const char *const *eps, uint32_t rank, uint32_t W, double timeout)
{
    return client_chunked(eps, rank, W, timeout, 0);
}

static PsZmq *client(const Cluster *cl, uint32_t rank)
{
    return client_for(cl->eps, rank, cl->W, TIMEOUT_S);
}

/* Shut a client down (its SHUTDOWN acked by both shards) and free it. */
static void client_done(PsZmq **c)
{
    int rc = ps_zmq_shutdown(*c);
    if (rc)
        fprintf(stderr, "\n  shutdown: %s\n", psrec_errmsg());
    CU_ASSERT_EQUAL(rc, 0);
    ps_zmq_free(c);
    CU_ASSERT_PTR_NULL(*c);
}

static int check_rc(int rc, int want)
{
    if (rc != want)
        fprintf(stderr, "\n  result %d (%s), expected %d\n", rc, psrec_errmsg(), want);
    return rc == want;
}

/* Initial rows of keys of table, as any shard creates them. */
static void init_rows(uint32_t table, const uint64_t *keys, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++)
        table_init_row(&specs[table], seed, keys[i], out + i * specs[table].width);
}

/* Exactly representable gradients, different per (salt, i). */
static void grads_for(float *g, size_t n, int salt)
{
    for (size_t i = 0; i < n; i++)
        g[i] = (float)((int)((i * 7 + (size_t)salt * 13) % 17) - 8) / 16.0f;
}

/* Keys 0..n-1 of table (all its rows when n == rows), then a few repeated out of order. */
static size_t mixed_keys(uint32_t table, uint64_t *keys)
{
    size_t n = 0;
    uint64_t rows = specs[table].rows;
    for (uint64_t k = rows; k-- > 0;)
        keys[n++] = k;
    keys[n++] = rows - 1;
    keys[n++] = 0;
    keys[n++] = rows / 2;
    return n;
}

/* (a) Every row of every table pulled through two shards equals what one in-process Shard of
 * the same seed and shape gives, duplicates and reverse order included; each row lives on
 * exactly one shard (rows held add up), both shards served pulls, and the client's byte count
 * matches what the shards received. Also: heartbeat, set_clock, width. Over inproc and over
 * loopback TCP (where received frames may sit at any alignment). */
static void pull_matches_inproc_shard(int tcp)
{
    Cluster cl;
    cluster_start_on(&cl, SERVER_ASP, 1, tcp);
    PsZmq *z = client(&cl, 0);
    PsClient ps;
    ps_zmq_client(z, &ps);
    Shard *ref;
    ShardOptions so = {.shape = shape, .optim = {.kind = OPTIM_SGD, .lr = 1.0f}, .seed = seed};
    CU_ASSERT_FATAL(shard_new(&so, &ref) == 0);

    uint64_t distinct = 0;
    for (uint32_t t = 0; t < PARAM_TABLES; t++) {
        uint64_t keys[128];
        static float got[MAX_FLOATS], want[MAX_FLOATS];
        size_t n = mixed_keys(t, keys);
        CU_ASSERT_FATAL(n * specs[t].width <= MAX_FLOATS);
        CU_ASSERT_EQUAL(ps.ops->width(ps.impl, t), specs[t].width);
        memset(got, 0xff, sizeof got);
        CU_ASSERT(check_rc(ps_pull_sync(&ps, t, keys, n, got), 0));
        CU_ASSERT(shard_pull(ref, t, keys, n, want) == 0);
        CU_ASSERT(memcmp(got, want, n * specs[t].width * sizeof *got) == 0);
        distinct += specs[t].rows;
    }
    CU_ASSERT_EQUAL(ps.ops->width(ps.impl, PARAM_TABLES), 0);
    CU_ASSERT(check_rc(ps_zmq_heartbeat(z), 0));
    ps_zmq_set_clock(z, 3);
    CU_ASSERT(check_rc(ps_clock(&ps, 3), 0));

    WireStats st[NSHARDS];
    for (uint32_t k = 0; k < NSHARDS; k++)
        CU_ASSERT(check_rc(ps_zmq_stats(z, k, &st[k]), 0));
    CU_ASSERT(st[0].pulls > 0 && st[1].pulls > 0);
    CU_ASSERT(st[0].rows_held > 0 && st[1].rows_held > 0);
    CU_ASSERT_EQUAL(st[0].rows_held + st[1].rows_held, distinct);
    CU_ASSERT_EQUAL(st[0].pulls + st[1].pulls, 2 * PARAM_TABLES - 2); /* biases: one shard */
    uint64_t sent, received;
    ps_zmq_bytes(z, &sent, &received);
    CU_ASSERT_EQUAL(sent, st[0].bytes_in + st[1].bytes_in);
    CU_ASSERT(received > st[0].bytes_out + st[1].bytes_out);
    WireStats bad;
    CU_ASSERT(ps_zmq_stats(z, NSHARDS, &bad) == PSREC_E_RANGE);

    shard_free(&ref);
    client_done(&z);
    CU_ASSERT_EQUAL(cluster_end(&cl), 0);
}

static void test_pull_matches_inproc_shard(void)
{
    pull_matches_inproc_shard(0);
}

static void test_pull_matches_inproc_shard_tcp(void)
{
    pull_matches_inproc_shard(1);
}

/* (b) ASP, two clients: client 0 pushes g0, then client 1 pushes g1 on overlapping keys (a
 * key twice in one push, too), sparse and dense; a pull from either gives
 * initial - g0 - g1 exactly, in that order, row by row. */
static void test_push_arithmetic(void)
{
    Cluster cl;
    cluster_start(&cl, SERVER_ASP, 2);
    PsZmq *z0 = client(&cl, 0), *z1 = client(&cl, 1);
    PsClient p0, p1;
    ps_zmq_client(z0, &p0);
    ps_zmq_client(z1, &p1);

    /* user rows: client 0 pushes 0..19 (and 3 again), client 1 pushes 10..29 */
    enum { N0 = 21, N1 = 20, H = 3 };
    uint64_t k0[N0], k1[N1], all[30];
    for (int i = 0; i < 20; i++)
        k0[i] = (uint64_t)i;
    k0[20] = 3;
    for (int i = 0; i < N1; i++)
        k1[i] = (uint64_t)(10 + i);
    for (int i = 0; i < 30; i++)
        all[i] = (uint64_t)(29 - i);
    float g0[N0 * H], g1[N1 * H], want[30 * H], got[30 * H];
    grads_for(g0, N0 * H, 1);
    grads_for(g1, N1 * H, 2);
    CU_ASSERT(check_rc(ps_push_sync(&p0, PARAM_USER, k0, N0, g0), 0));
    CU_ASSERT(check_rc(ps_push_sync(&p1, PARAM_USER, k1, N1, g1), 0));

    init_rows(PARAM_USER, all, 30, want);
    for (int i = 0; i < 30; i++) {
        uint64_t key = all[i];
        float *row = want + i * H;
        for (int j = 0; j < N0; j++)
            if (k0[j] == key)
                for (int d = 0; d < H; d++)
                    row[d] -= g0[j * H + d];
        for (int j = 0; j < N1; j++)
            if (k1[j] == key)
                for (int d = 0; d < H; d++)
                    row[d] -= g1[j * H + d];
    }
    CU_ASSERT(check_rc(ps_pull_sync(&p1, PARAM_USER, all, 30, got), 0));
    CU_ASSERT(memcmp(got, want, sizeof got) == 0);
    CU_ASSERT(check_rc(ps_pull_sync(&p0, PARAM_USER, all, 30, got), 0));
    CU_ASSERT(memcmp(got, want, sizeof got) == 0);

    /* dense: every row of news_Wih (spread over both shards) and the one user_b row */
    const uint32_t G = 4 * H;
    uint64_t dk[4] = {0, 1, 2, 3}, bk = 0;
    float dg0[4 * 12], dg1[4 * 12], dwant[4 * 12], dgot[4 * 12];
    float bg[12], bwant[12], bgot[12];
    grads_for(dg0, 4 * G, 3);
    grads_for(dg1, 4 * G, 4);
    grads_for(bg, G, 5);
    CU_ASSERT(check_rc(ps_push_sync(&p0, PARAM_NEWS_WIH, dk, 4, dg0), 0));
    CU_ASSERT(check_rc(ps_push_sync(&p1, PARAM_NEWS_WIH, dk, 4, dg1), 0));
    CU_ASSERT(check_rc(ps_push_sync(&p1, PARAM_USER_B, &bk, 1, bg), 0));
    init_rows(PARAM_NEWS_WIH, dk, 4, dwant);
    for (uint32_t i = 0; i < 4 * G; i++)
        dwant[i] = (dwant[i] - dg0[i]) - dg1[i];
    init_rows(PARAM_USER_B, &bk, 1, bwant);
    for (uint32_t i = 0; i < G; i++)
        bwant[i] -= bg[i];
    CU_ASSERT(check_rc(ps_pull_sync(&p0, PARAM_NEWS_WIH, dk, 4, dgot), 0));
    CU_ASSERT(memcmp(dgot, dwant, sizeof dgot) == 0);
    CU_ASSERT(check_rc(ps_pull_sync(&p0, PARAM_USER_B, &bk, 1, bgot), 0));
    CU_ASSERT(memcmp(bgot, bwant, sizeof bgot) == 0);

    client_done(&z0);
    client_done(&z1);
    CU_ASSERT_EQUAL(cluster_end(&cl), 0);
}

/* bf16 on the wire (ps.wire_dtype), over TCP to both shards: a bf16 client's pulls are the f32
 * client's rows rounded to nearest even, with about half the bytes received; its pushes
 * arrive rounded with error feedback, so after two pushes of g (SGD, lr 1) a row moved by
 * exactly what was pushed, 2g minus the residual the client keeps. */
static void test_bf16_wire(void)
{
    Cluster cl;
    cluster_start_on(&cl, SERVER_ASP, 2, 1);
    PsZmq *zf = client(&cl, 0);
    PsZmqOptions o = {.zmq_ctx = ctx, .endpoints = cl.eps, .shards = NSHARDS, .worker_rank = 1,
                      .workers = 2, .shape = shape, .timeout = TIMEOUT_S,
                      .shard_mpi_ranks = shard_ranks, .wire_dtype = WIRE_DTYPE_BF16};
    PsZmq *zb = NULL;
    CU_ASSERT_FATAL(ps_zmq_new(&o, &zb) == 0);
    PsClient pf, pb;
    ps_zmq_client(zf, &pf);
    ps_zmq_client(zb, &pb);

    enum { N = 40, E = 4 };
    uint64_t keys[N];
    for (int i = 0; i < N; i++)
        keys[i] = (uint64_t)(i * 7 % 100);
    float f32[N * E], b16[N * E], g[N * E], after[N * E];
    uint64_t rf0, rb0, rf1, rb1;
    ps_zmq_bytes(zf, NULL, &rf0);
    ps_zmq_bytes(zb, NULL, &rb0);
    CU_ASSERT(check_rc(ps_pull_sync(&pf, PARAM_WORD, keys, N, f32), 0));
    CU_ASSERT(check_rc(ps_pull_sync(&pb, PARAM_WORD, keys, N, b16), 0));
    ps_zmq_bytes(zf, NULL, &rf1);
    ps_zmq_bytes(zb, NULL, &rb1);
    int rounded = 1, differ = 0;
    for (int i = 0; i < N * E; i++) {
        rounded &= b16[i] == wire_bf16_widen(wire_bf16_round(f32[i]));
        differ += b16[i] != f32[i];
    }
    CU_ASSERT(rounded && differ > N * E / 2);
    /* values 16 -> 8 bytes a key of width 4; keys stay 8 bytes; each shard's reply header
     * differs by a few bytes (the dtype field, the worker rank and request id varints) */
    const uint64_t saved = (rf1 - rf0) - (rb1 - rb0);
    CU_ASSERT(saved <= (uint64_t)N * E * 2 && saved >= (uint64_t)N * E * 2 - 8 * NSHARDS);

    for (int i = 0; i < N * E; i++) /* not bf16 values: rounding leaves residuals */
        g[i] = 0.1f + 1e-3f * (float)i;
    CU_ASSERT(check_rc(ps_push_sync(&pb, PARAM_WORD, keys, N, g), 0));
    CU_ASSERT(check_rc(ps_push_sync(&pb, PARAM_WORD, keys, N, g), 0));
    CU_ASSERT(check_rc(ps_pull_sync(&pf, PARAM_WORD, keys, N, after), 0));
    const EFeed *ef = ps_zmq_efeed(zb);
    CU_ASSERT_FATAL(ef != NULL && ps_zmq_efeed(zf) == NULL);
    double worst = 0;
    int fed = 0;
    for (int i = 0; i < N; i++) {
        const float *r = efeed_residual(ef, PARAM_WORD, keys[i]);
        CU_ASSERT_FATAL(r != NULL);
        for (int d = 0; d < E; d++) {
            double pushed = (double)f32[i * E + d] - after[i * E + d];
            double want = 2.0 * g[i * E + d] - r[d];
            double err = fabs(pushed - want);
            worst = err > worst ? err : worst;
            fed += r[d] != 0;
        }
    }
    CU_ASSERT(worst < 1e-6); /* f32 rounding of the shard's two subtractions */
    CU_ASSERT(fed > N * E / 2);
    client_done(&zf);
    client_done(&zb);
    CU_ASSERT_EQUAL(cluster_end(&cl), 0);
}

/* (c) Several tickets outstanding at once, waited in reverse order: each gets its own rows.
 * A pull issued before a push of the same rows sees them before it, one issued after sees
 * them after (each shard serves a socket in order). The ticket table is bounded: with every
 * slot taken a request is refused, and a ticket can be waited only once. Requests the shards
 * would refuse are refused at once. */
static void test_outstanding_tickets(void)
{
    Cluster cl;
    cluster_start(&cl, SERVER_ASP, 1);
    PsZmq *z = client(&cl, 0);
    PsClient ps;
    ps_zmq_client(z, &ps);

    uint64_t wk[40], ck[5] = {9, 0, 4, 4, 7}, dk[3] = {2, 0, 1};
    for (int i = 0; i < 40; i++)
        wk[i] = (uint64_t)(i * 37 % 100);
    static float before[40 * 4], after[40 * 4], g[40 * 4], cat[5 * 3], whh[3 * 12];
    static float want[40 * 4];
    float none = 123.0f;
    grads_for(g, 40 * 4, 6);
    PsTicket t[6];
    CU_ASSERT(check_rc(ps_pull(&ps, PARAM_WORD, wk, 40, before, &t[0]), 0));
    CU_ASSERT(check_rc(ps_push(&ps, PARAM_WORD, wk, 40, g, &t[1]), 0));
    CU_ASSERT(check_rc(ps_pull(&ps, PARAM_WORD, wk, 40, after, &t[2]), 0));
    CU_ASSERT(check_rc(ps_pull(&ps, PARAM_CAT, ck, 5, cat, &t[3]), 0));
    CU_ASSERT(check_rc(ps_pull(&ps, PARAM_NEWS_WHH, dk, 3, whh, &t[4]), 0));
    CU_ASSERT(check_rc(ps_pull(&ps, PARAM_USER, NULL, 0, &none, &t[5]), 0));
    for (int i = 5; i >= 0; i--)
        CU_ASSERT(check_rc(ps_wait(&ps, t[i]), 0));
    CU_ASSERT(none == 123.0f);
    init_rows(PARAM_WORD, wk, 40, want);
    CU_ASSERT(memcmp(before, want, sizeof want) == 0);
    for (int i = 0; i < 40 * 4; i++)
        want[i] -= g[i];
    CU_ASSERT(memcmp(after, want, sizeof want) == 0);
    init_rows(PARAM_CAT, ck, 5, want);
    CU_ASSERT(memcmp(cat, want, sizeof cat) == 0);
    init_rows(PARAM_NEWS_WHH, dk, 3, want);
    CU_ASSERT(memcmp(whh, want, sizeof whh) == 0);
    CU_ASSERT(ps_wait(&ps, t[3]) == PSREC_E_STATE); /* waited already */

    /* Fill the ticket table: one row each, a different key per ticket. */
    static float rows[PS_ZMQ_MAX_TICKETS][3];
    uint64_t keys[PS_ZMQ_MAX_TICKETS];
    PsTicket many[PS_ZMQ_MAX_TICKETS], extra;
    for (int i = 0; i < PS_ZMQ_MAX_TICKETS; i++) {
        keys[i] = (uint64_t)(i % 50);
        CU_ASSERT_FATAL(check_rc(ps_pull(&ps, PARAM_USER, &keys[i], 1, rows[i], &many[i]), 0));
    }
    CU_ASSERT(ps_pull(&ps, PARAM_USER, keys, 1, rows[0], &extra) == PSREC_E_STATE);
    CU_ASSERT(ps_zmq_heartbeat(z) == PSREC_E_STATE);
    for (int i = PS_ZMQ_MAX_TICKETS - 1; i >= 0; i -= 2)
        CU_ASSERT(check_rc(ps_wait(&ps, many[i]), 0));
    for (int i = 0; i < PS_ZMQ_MAX_TICKETS; i += 2)
        CU_ASSERT(check_rc(ps_wait(&ps, many[i]), 0));
    for (int i = 0; i < PS_ZMQ_MAX_TICKETS; i++) {
        float w[3];
        init_rows(PARAM_USER, &keys[i], 1, w);
        CU_ASSERT(memcmp(rows[i], w, sizeof w) == 0);
    }

    /* Refused before anything is sent. */
    uint64_t bad = 100;
    PsTicket tb;
    CU_ASSERT(ps_pull(&ps, PARAM_WORD, &bad, 1, before, &tb) == PSREC_E_RANGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "key 100"));
    CU_ASSERT(ps_push(&ps, PARAM_TABLES, wk, 1, g, &tb) == PSREC_E_RANGE);
    CU_ASSERT(ps_pull(&ps, PARAM_WORD, wk, 1, NULL, &tb) == PSREC_E_RANGE);
    WireStats st;
    CU_ASSERT(check_rc(ps_zmq_stats(z, 0, &st), 0));
    CU_ASSERT_EQUAL(st.bad_messages, 0);

    CU_ASSERT(check_rc(ps_zmq_shutdown(z), 0));
    CU_ASSERT(ps_pull(&ps, PARAM_WORD, wk, 1, before, &tb) == PSREC_E_STATE);
    CU_ASSERT(ps_push(&ps, PARAM_WORD, wk, 1, g, &tb) == PSREC_E_STATE);
    ps_zmq_free(&z);
    CU_ASSERT_EQUAL(cluster_end(&cl), 0);
}

/* (d) ERROR replies surface as the request's result, with the shard's index and rank: a
 * worker rank the shards do not know (keys only on shard 1, then spread), and a CLOCK that
 * goes backwards. The client stays usable after an error. */
static void test_error_reply(void)
{
    Cluster cl;
    cluster_start(&cl, SERVER_ASP, 2);
    PsZmq *z0 = client(&cl, 0), *z1 = client(&cl, 1);
    PsZmq *stranger = client_for(cl.eps, 2, 3, TIMEOUT_S); /* thinks W = 3 */
    PsClient p0, px;
    ps_zmq_client(z0, &p0);
    ps_zmq_client(stranger, &px);

    uint64_t on1[4];
    size_t n1 = 0;
    for (uint64_t k = 0; k < 50 && n1 < 4; k++)
        if (keyrange_owner(PARAM_USER, k, NSHARDS) == 1)
            on1[n1++] = k;
    CU_ASSERT_FATAL(n1 == 4);
    float rows[50 * 3];
    int rc = ps_pull_sync(&px, PARAM_USER, on1, 4, rows);
    CU_ASSERT_EQUAL(rc, PSREC_E_RANGE);
    if (!strstr(psrec_errmsg(), "shard 1 (rank 11): worker_rank 2"))
        fprintf(stderr, "\n  message: %s\n", psrec_errmsg());
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "shard 1 (rank 11): worker_rank 2"));

    uint64_t spread[50];
    for (int i = 0; i < 50; i++)
        spread[i] = (uint64_t)i;
    CU_ASSERT_EQUAL(ps_pull_sync(&px, PARAM_USER, spread, 50, rows), PSREC_E_RANGE);
    CU_ASSERT(strncmp(psrec_errmsg(), "shard ", 6) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "worker_rank 2"));

    CU_ASSERT(check_rc(ps_clock(&p0, 0), 0));
    CU_ASSERT_EQUAL(ps_clock(&p0, 0), PSREC_E_RANGE);
    CU_ASSERT(strncmp(psrec_errmsg(), "shard ", 6) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "already finished 1 steps"));

    CU_ASSERT(check_rc(ps_pull_sync(&p0, PARAM_USER, spread, 50, rows), 0));
    float want[50 * 3];
    init_rows(PARAM_USER, spread, 50, want);
    CU_ASSERT(memcmp(rows, want, sizeof want) == 0);
    WireStats s0, s1;
    CU_ASSERT(check_rc(ps_zmq_stats(z0, 0, &s0), 0));
    CU_ASSERT(check_rc(ps_zmq_stats(z0, 1, &s1), 0));
    /* The repeated CLOCK is refused by shard 0, which gets every CLOCK first, and so never
     * sent on to shard 1. */
    CU_ASSERT_EQUAL(s0.bad_messages + s1.bad_messages, 1 + 2 + 1);

    ps_zmq_free(&stranger);
    client_done(&z0);
    client_done(&z1);
    CU_ASSERT_EQUAL(cluster_end(&cl), 0);
}

/* Receive the next request on a fake shard's ROUTER within ms. */
static int fake_recv(void *router, WireMsg *m, int ms)
{
    zmq_pollitem_t it = {.socket = router, .events = ZMQ_POLLIN};
    memset(m, 0, sizeof *m);
    if (zmq_poll(&it, 1, ms) != 1)
        return -1;
    char why[256];
    return wire_recv(router, 1, m, &lim, why, sizeof why);
}

/* Answer PULL request m with every value = v. */
static void fake_pull_reply(void *router, const WireMsg *m, float v)
{
    WireHeader r;
    wire_header_init(&r, WIRE_OP_PULL);
    r.reply = 1;
    r.table = m->h.table;
    r.worker_rank = m->h.worker_rank;
    r.request_id = m->h.request_id;
    r.key_count = m->h.key_count;
    r.value_width = specs[m->h.table].width;
    static float vals[MAX_FLOATS];
    for (size_t i = 0; i < r.key_count * r.value_width; i++)
        vals[i] = v;
    CU_ASSERT(wire_send(router, m->identity, m->id_len, &r, m->keys, vals) == 0);
}

/* A bare ROUTER at ep standing in for a shard the test drives by hand (no linger), or NULL. */
/* The first `want` word keys below 100 that shard `shard` of NSHARDS owns, into out;
 * returns how many were found. */
static size_t word_keys_of_shard(int shard, uint64_t *out, size_t want)
{
    size_t n = 0;
    for (uint64_t k = 0; k < 100 && n < want; k++)
        if (keyrange_owner(PARAM_WORD, k, NSHARDS) == (uint32_t)shard)
            out[n++] = k;
    return n;
}

static void *fake_shard(const char *ep)
{
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    int zero = 0;
    if (router && (zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero) ||
                   zmq_bind(router, ep))) {
        zmq_close(router);
        router = NULL;
    }
    return router;
}

/* (e) Silent shards: shard 0's endpoint has nobody behind it, shard 1 is a ROUTER that reads
 * but does not answer in time. Waits end with ETIMEDOUT after about the timeout, naming the
 * shard; a late reply to a request that already timed out is dropped (its buffer is left
 * alone) and the next request on that shard completes. */
static void test_timeout(void)
{
    const char *eps[NSHARDS] = {"inproc://ps-zmq-test-nobody", "inproc://ps-zmq-test-mute"};
    void *router = fake_shard(eps[1]);
    CU_ASSERT_FATAL(router != NULL);
    const double timeout = 0.3;
    PsZmq *z = client_for(eps, 0, 1, timeout);
    PsClient ps;
    ps_zmq_client(z, &ps);

    uint64_t on1[3];
    size_t n1 = word_keys_of_shard(1, on1, 3);
    CU_ASSERT_FATAL(n1 == 3);
    float late[12], fresh[12];
    for (int i = 0; i < 12; i++)
        late[i] = fresh[i] = -1.0f;
    PsTicket t;
    double t0 = now_s();
    CU_ASSERT(check_rc(ps_pull(&ps, PARAM_WORD, on1, 3, late, &t), 0));
    int rc = ps_wait(&ps, t);
    double took = now_s() - t0;
    CU_ASSERT_EQUAL(rc, ETIMEDOUT);
    if (!strstr(psrec_errmsg(), "shard 1 (rank 11) did not answer for 0.3 s"))
        fprintf(stderr, "\n  message: %s\n", psrec_errmsg());
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "shard 1 (rank 11) did not answer for 0.3 s"));
    CU_ASSERT(took >= timeout * 0.9); /* it did wait: not a premature error */
    CU_ASSERT(took < JOIN_S);         /* and it did not hang */

    WireMsg m;
    CU_ASSERT_FATAL(fake_recv(router, &m, 1000) == 0);
    CU_ASSERT(m.h.op == WIRE_OP_PULL && m.h.request_id == t && m.h.key_count == 3);
    fake_pull_reply(router, &m, 42.0f); /* too late */
    wire_msg_close(&m);
    CU_ASSERT(check_rc(ps_pull(&ps, PARAM_WORD, on1, 3, fresh, &t), 0));
    CU_ASSERT_FATAL(fake_recv(router, &m, 1000) == 0);
    fake_pull_reply(router, &m, 7.0f);
    wire_msg_close(&m);
    CU_ASSERT(check_rc(ps_wait(&ps, t), 0));
    for (int i = 0; i < 12; i++) {
        CU_ASSERT(fresh[i] == 7.0f);
        CU_ASSERT(late[i] == -1.0f);
    }

    CU_ASSERT_EQUAL(ps_zmq_heartbeat(z), ETIMEDOUT); /* shard 0 is first to be silent */
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "shard 0 (rank 10) did not answer"));
    CU_ASSERT_EQUAL(ps_clock(&ps, 0), ETIMEDOUT);
    ps_zmq_free(&z);
    zmq_close(router);
}

/* Chunk replies are matched to their own chunk: a pull of two keys in two chunks to a shard
 * the test drives gets chunk 0's reply twice (the second with other values); the duplicate
 * is dropped, the ticket waits for chunk 1, and each row holds its own chunk's values. */
static void test_chunk_reply_once(void)
{
    const char *eps[NSHARDS] = {"inproc://ps-zmq-test-nobody3", "inproc://ps-zmq-test-chunks"};
    void *router = fake_shard(eps[1]);
    CU_ASSERT_FATAL(router != NULL);
    PsZmq *z = client_chunked(eps, 0, 1, 20.0, 1);
    PsClient ps;
    ps_zmq_client(z, &ps);
    uint64_t on1[2];
    CU_ASSERT_FATAL(word_keys_of_shard(1, on1, 2) == 2);
    float rows[8];
    for (int i = 0; i < 8; i++)
        rows[i] = -1.0f;
    PsTicket t;
    CU_ASSERT(check_rc(ps_pull(&ps, PARAM_WORD, on1, 2, rows, &t), 0));
    WireMsg c0, c1;
    CU_ASSERT_FATAL(fake_recv(router, &c0, 1000) == 0);
    CU_ASSERT_FATAL(fake_recv(router, &c1, 1000) == 0);
    CU_ASSERT(c0.h.key_count == 1 && c1.h.key_count == 1);
    CU_ASSERT(c0.keys[0] == on1[0] && c1.keys[0] == on1[1]);
    CU_ASSERT(c0.h.request_id == t && c1.h.request_id != t);
    fake_pull_reply(router, &c0, 5.0f);
    fake_pull_reply(router, &c0, 9.0f); /* duplicate */
    fake_pull_reply(router, &c1, 6.0f);
    CU_ASSERT(check_rc(ps_wait(&ps, t), 0));
    for (int i = 0; i < 8; i++)
        CU_ASSERT(rows[i] == (i < 4 ? 5.0f : 6.0f));
    wire_msg_close(&c0);
    wire_msg_close(&c1);
    ps_zmq_free(&z);
    zmq_close(router);
}

/* A shard that could not decode a request's header answers ERROR with request id 0 (it
 * cannot know the id): every request waiting on that shard fails at once with its error
 * instead of waiting for a reply that will never come. */
static void test_unread_request_fails(void)
{
    const char *eps[NSHARDS] = {"inproc://ps-zmq-test-nobody2", "inproc://ps-zmq-test-unread"};
    void *router = fake_shard(eps[1]);
    CU_ASSERT_FATAL(router != NULL);
    PsZmq *z = client_for(eps, 0, 1, 20.0);
    PsClient ps;
    ps_zmq_client(z, &ps);
    uint64_t on1[2];
    CU_ASSERT_FATAL(word_keys_of_shard(1, on1, 2) == 2);
    float rows[8];
    PsTicket t;
    double t0 = now_s();
    CU_ASSERT(check_rc(ps_pull(&ps, PARAM_WORD, on1, 2, rows, &t), 0));
    WireMsg m;
    CU_ASSERT_FATAL(fake_recv(router, &m, 1000) == 0);
    WireHeader r;
    wire_header_init(&r, WIRE_OP_ERROR);
    r.reply = 1;
    r.error_code = PSREC_E_NOMEM;
    snprintf(r.error_text, sizeof r.error_text, "no memory to decode a header of 40 bytes");
    CU_ASSERT(wire_send(router, m.identity, m.id_len, &r, NULL, NULL) == 0);
    wire_msg_close(&m);
    CU_ASSERT_EQUAL(ps_wait(&ps, t), PSREC_E_NOMEM);
    CU_ASSERT(now_s() - t0 < 10.0); /* at once, not after the 20 s timeout */
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "refused unread: no memory to decode"));
    ps_zmq_free(&z);
    zmq_close(router);
}

/* (f) BSP, W = 2, through two real clients: both push (overlapping rows, and dense rows),
 * both clock; a pull of clock 1 issued before worker 1 clocked is held by the shards and,
 * once it clocks, returns every row moved by the mean of the two workers' gradients. */
static void test_bsp_two_clients(void)
{
    Cluster cl;
    cluster_start(&cl, SERVER_BSP, 2);
    PsZmq *z0 = client(&cl, 0), *z1 = client(&cl, 1);
    PsClient p0, p1;
    ps_zmq_client(z0, &p0);
    ps_zmq_client(z1, &p1);

    enum { H = 3, G = 12 };
    uint64_t keys[12], k0[8], k1[8], dk[3] = {0, 1, 2};
    for (int i = 0; i < 12; i++)
        keys[i] = (uint64_t)(20 + i);
    for (int i = 0; i < 8; i++) {
        k0[i] = (uint64_t)(20 + i); /* 20..27 */
        k1[i] = (uint64_t)(24 + i); /* 24..31 */
    }
    float old[12 * H], now[12 * H], g0[8 * H], g1[8 * H];
    float dold[3 * G], dnow[3 * G], dg0[3 * G], dg1[3 * G];
    grads_for(g0, 8 * H, 7);
    grads_for(g1, 8 * H, 8);
    grads_for(dg0, 3 * G, 9);
    grads_for(dg1, 3 * G, 10);
    CU_ASSERT(check_rc(ps_pull_sync(&p0, PARAM_USER, keys, 12, old), 0));
    CU_ASSERT(check_rc(ps_pull_sync(&p0, PARAM_USER_WHH, dk, 3, dold), 0));
    PsTicket t[4];
    CU_ASSERT(check_rc(ps_push(&p0, PARAM_USER, k0, 8, g0, &t[0]), 0));
    CU_ASSERT(check_rc(ps_push(&p0, PARAM_USER_WHH, dk, 3, dg0, &t[1]), 0));
    CU_ASSERT(check_rc(ps_clock(&p0, 0), 0)); /* pushes still unwaited: sent before it */
    CU_ASSERT(check_rc(ps_wait(&p0, t[1]), 0));
    CU_ASSERT(check_rc(ps_wait(&p0, t[0]), 0));

    PsTicket held, dheld;
    CU_ASSERT(check_rc(ps_pull(&p0, PARAM_USER, keys, 12, now, &held), 0));
    CU_ASSERT(check_rc(ps_pull(&p0, PARAM_USER_WHH, dk, 3, dnow, &dheld), 0));

    float w1view[12 * H];
    CU_ASSERT(check_rc(ps_pull_sync(&p1, PARAM_USER, keys, 12, w1view), 0)); /* clock 0 */
    CU_ASSERT(memcmp(w1view, old, sizeof old) == 0); /* nothing applied before the barrier */
    CU_ASSERT(check_rc(ps_push_sync(&p1, PARAM_USER, k1, 8, g1), 0));
    CU_ASSERT(check_rc(ps_push_sync(&p1, PARAM_USER_WHH, dk, 3, dg1), 0));
    CU_ASSERT(check_rc(ps_clock(&p1, 0), 0));

    CU_ASSERT(check_rc(ps_wait(&p0, dheld), 0));
    CU_ASSERT(check_rc(ps_wait(&p0, held), 0));
    for (int i = 0; i < 12; i++) {
        uint64_t key = keys[i];
        for (int d = 0; d < H; d++) {
            float sum = 0.0f;
            int both = key >= 24 && key <= 27;
            if (key <= 27)
                sum = g0[(key - 20) * H + (uint64_t)d];
            if (key >= 24)
                sum = both ? sum + g1[(key - 24) * H + (uint64_t)d]
                           : g1[(key - 24) * H + (uint64_t)d];
            CU_ASSERT(now[i * H + d] == old[i * H + d] - sum / 2.0f);
        }
    }
    for (int i = 0; i < 3 * G; i++)
        CU_ASSERT(dnow[i] == dold[i] - (dg0[i] + dg1[i]) / 2.0f);

    WireStats s0, s1;
    CU_ASSERT(check_rc(ps_zmq_stats(z1, 0, &s0), 0));
    CU_ASSERT(check_rc(ps_zmq_stats(z1, 1, &s1), 0));
    CU_ASSERT(s0.deferred_pulls >= 1 && s1.deferred_pulls >= 1); /* both held a pull */
    CU_ASSERT_EQUAL(s0.bad_messages + s1.bad_messages, 0);

    client_done(&z0);
    client_done(&z1);
    CU_ASSERT_EQUAL(cluster_end(&cl), 0);
}

/* Pulls a shard served so far. */
static uint64_t shard_pulls(PsZmq *z, uint32_t k)
{
    WireStats s;
    CU_ASSERT(check_rc(ps_zmq_stats(z, k, &s), 0));
    return s.pulls;
}

/* (f2) Chunks: BSP, W = 2, over TCP; worker 0 sends every request in the most chunks
 * (chunk_bytes 1: PS_ZMQ_MAX_CHUNKS per shard, the last one shorter), worker 1 in one piece.
 * Its pulls equal worker 1's row for row (keys spread over both shards in reverse order, and
 * keys of one shard alone, where rows come back in the caller's order), its chunked pushes
 * (of keys on both shards, and of one shard's alone) are summed with worker 1's by the barrier, and a chunked pull held at the gate returns every
 * row moved by the mean. */
static void test_chunks(void)
{
    Cluster cl;
    cluster_start_on(&cl, SERVER_BSP, 2, 1);
    PsZmq *z0 = client_chunked(cl.eps, 0, 2, TIMEOUT_S, 1), *z1 = client(&cl, 1);
    PsClient p0, p1;
    ps_zmq_client(z0, &p0);
    ps_zmq_client(z1, &p1);

    enum { H = 3, N = 50 };
    uint64_t all[N], own0[N];
    size_t n0 = 0;
    for (int i = 0; i < N; i++) {
        all[i] = (uint64_t)(N - 1 - i);
        if (keyrange_owner(PARAM_USER, (uint64_t)i, NSHARDS) == 0)
            own0[n0++] = (uint64_t)i;
    }
    CU_ASSERT_FATAL(n0 > PS_ZMQ_MAX_CHUNKS && N - n0 > PS_ZMQ_MAX_CHUNKS);
    float old[N * H], got[N * H], now[N * H], g0[N * H], g1[N * H];
    const uint64_t before0 = shard_pulls(z1, 0), before1 = shard_pulls(z1, 1);
    CU_ASSERT(check_rc(ps_pull_sync(&p1, PARAM_USER, all, N, old), 0));
    memset(got, 0xff, sizeof got);
    CU_ASSERT(check_rc(ps_pull_sync(&p0, PARAM_USER, all, N, got), 0));
    CU_ASSERT(memcmp(got, old, sizeof old) == 0);
    /* one pull from worker 1; from worker 0 one per chunk of ceil(n / PS_ZMQ_MAX_CHUNKS) keys
     * of the n keys each shard owns */
    const size_t per0 = (n0 + PS_ZMQ_MAX_CHUNKS - 1) / PS_ZMQ_MAX_CHUNKS;
    const size_t per1 = (N - n0 + PS_ZMQ_MAX_CHUNKS - 1) / PS_ZMQ_MAX_CHUNKS;
    CU_ASSERT_EQUAL(shard_pulls(z1, 0) - before0, 1 + (n0 + per0 - 1) / per0);
    CU_ASSERT_EQUAL(shard_pulls(z1, 1) - before1, 1 + (N - n0 + per1 - 1) / per1);
    float ref0[N * H];
    memset(got, 0xff, sizeof got);
    CU_ASSERT(check_rc(ps_pull_sync(&p1, PARAM_USER, own0, n0, ref0), 0));
    CU_ASSERT(check_rc(ps_pull_sync(&p0, PARAM_USER, own0, n0, got), 0));
    CU_ASSERT(memcmp(got, ref0, n0 * H * sizeof *got) == 0);

    float g2[N * H];
    grads_for(g0, N * H, 11);
    grads_for(g1, N * H, 12);
    grads_for(g2, N * H, 13);
    CU_ASSERT(check_rc(ps_push_sync(&p0, PARAM_USER, all, N, g0), 0));
    CU_ASSERT(check_rc(ps_push_sync(&p0, PARAM_USER, own0, n0, g2), 0)); /* one shard */
    CU_ASSERT(check_rc(ps_clock(&p0, 0), 0));
    PsTicket held;
    CU_ASSERT(check_rc(ps_pull(&p0, PARAM_USER, all, N, now, &held), 0));
    CU_ASSERT(check_rc(ps_push_sync(&p1, PARAM_USER, all, N, g1), 0));
    CU_ASSERT(check_rc(ps_clock(&p1, 0), 0));
    CU_ASSERT(check_rc(ps_wait(&p0, held), 0));
    for (int i = 0; i < N; i++) {
        size_t o = 0;
        while (o < n0 && own0[o] != all[i])
            o++;
        for (int d = 0; d < H; d++) {
            float sum = g0[i * H + d] + (o < n0 ? g2[o * H + (size_t)d] : 0.0f);
            CU_ASSERT(now[i * H + d] == old[i * H + d] - (sum + g1[i * H + d]) / 2.0f);
        }
    }

    client_done(&z0);
    client_done(&z1);
    CU_ASSERT_EQUAL(cluster_end(&cl), 0);
}

/* (g) SHUTDOWN from every worker ends both loops by themselves with 0; one worker's SHUTDOWN
 * is not enough; a client refuses to be used after it. */
static void test_shutdown_ends_loops(void)
{
    Cluster cl;
    cluster_start(&cl, SERVER_ASP, 2);
    PsZmq *z0 = client(&cl, 0), *z1 = client(&cl, 1);
    CU_ASSERT(check_rc(ps_zmq_heartbeat(z0), 0));
    CU_ASSERT(check_rc(ps_zmq_shutdown(z0), 0));
    CU_ASSERT(ps_zmq_shutdown(z0) == PSREC_E_STATE);
    CU_ASSERT(ps_zmq_heartbeat(z0) == PSREC_E_STATE);
    PsClient p0;
    ps_zmq_client(z0, &p0);
    CU_ASSERT(ps_clock(&p0, 0) == PSREC_E_STATE);
    CU_ASSERT(check_rc(ps_zmq_heartbeat(z1), 0)); /* loops still serve worker 1 */
    uint64_t sent0, sent1;
    ps_zmq_bytes(z0, &sent0, NULL);
    ps_zmq_bytes(z1, &sent1, NULL);
    CU_ASSERT(sent0 > 0 && sent1 > 0);
    ps_zmq_free(&z0);
    client_done(&z1);
    CU_ASSERT_EQUAL(cluster_end(&cl), 0); /* ended by themselves */
}

/* Every CLOCK ack carries the finished steps of the shard's slowest live worker: a worker
 * ahead of the others learns its lag from the acks alone (ASP: nobody waits). */
static void test_clock_ack_slowest(void)
{
    Cluster cl;
    cluster_start(&cl, SERVER_ASP, 2);
    PsZmq *z0 = client(&cl, 0), *z1 = client(&cl, 1);
    PsClient p0, p1;
    ps_zmq_client(z0, &p0);
    ps_zmq_client(z1, &p1);
    CU_ASSERT_EQUAL(ps_zmq_slowest(z0), 0); /* no ack yet */
    for (uint64_t t = 0; t < 5; t++)
        CU_ASSERT(check_rc(ps_clock(&p0, t), 0));
    CU_ASSERT_EQUAL(ps_zmq_slowest(z0), 0); /* worker 1 finished nothing */
    CU_ASSERT(check_rc(ps_clock(&p1, 0), 0));
    CU_ASSERT(check_rc(ps_clock(&p1, 1), 0));
    CU_ASSERT_EQUAL(ps_zmq_slowest(z1), 2); /* worker 1 itself is now the slowest */
    CU_ASSERT(check_rc(ps_clock(&p0, 5), 0));
    CU_ASSERT_EQUAL(ps_zmq_slowest(z0), 2); /* worker 0: 6 steps, 4 ahead */
    client_done(&z0);
    client_done(&z1);
    CU_ASSERT_EQUAL(cluster_end(&cl), 0);
}

/* Options are checked; an endpoint ZeroMQ cannot parse is reported with the shard. */
static void test_bad_options(void)
{
    const char *eps[NSHARDS] = {"inproc://ps-zmq-test-a", "nonsense://x"};
    PsZmqOptions o = {.zmq_ctx = ctx, .endpoints = eps, .shards = NSHARDS, .worker_rank = 0,
                      .workers = 1, .shape = shape, .timeout = 1.0};
    PsZmq *z = NULL;
    CU_ASSERT(ps_zmq_new(&o, &z) > 0 && z == NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "shard 1 (rank 1)"));
    eps[1] = "inproc://ps-zmq-test-b";
    o.timeout = 0;
    CU_ASSERT(ps_zmq_new(&o, &z) == PSREC_E_RANGE && z == NULL);
    o.timeout = 1.0;
    o.worker_rank = 1;
    CU_ASSERT(ps_zmq_new(&o, &z) == PSREC_E_RANGE && z == NULL);
    o.worker_rank = 0;
    eps[0] = NULL;
    CU_ASSERT(ps_zmq_new(&o, &z) == PSREC_E_RANGE && z == NULL);
    ps_zmq_free(&z);
}

int main(void)
{
    ctx = zmq_ctx_new();
    params_specs(&shape, specs);
    wire_limits_init(&lim, &shape);
    static const TuTest tests[] = {
        {"sharded pulls equal an in-process shard", test_pull_matches_inproc_shard},
        {"the same over loopback TCP", test_pull_matches_inproc_shard_tcp},
        {"pushes from two clients, exact arithmetic", test_push_arithmetic},
        {"outstanding tickets in any order; bounded", test_outstanding_tickets},
        {"bf16 on the wire: rounded pulls, fed-back pushes", test_bf16_wire},
        {"ERROR replies name the shard", test_error_reply},
        {"silent shards time out; late replies dropped", test_timeout},
        {"a request the shard could not read fails at once", test_unread_request_fails},
        {"BSP through two clients: mean of pushes", test_bsp_two_clients},
        {"chunked pulls and pushes over TCP", test_chunks},
        {"a chunk's reply counts once", test_chunk_reply_once},
        {"SHUTDOWN of every worker ends the loops", test_shutdown_ends_loops},
        {"CLOCK acks carry the slowest worker's steps", test_clock_ack_slowest},
        {"bad options", test_bad_options},
        {NULL, NULL},
    };
    tu_add_suite("ps_zmq", tests);
    int rc = tu_run_all();
    zmq_ctx_term(ctx);
    return rc;
}
