/* The server shard's event loop: zmq_poll on one ROUTER socket, every request handled to the
 * end on this thread, so parameters need no locks.
 *
 * Invariants:
 * - Every request gets exactly one reply: at once, or (a pull held by the consistency gate)
 *   when the gate opens, or an ERROR when the loop ends first.
 * - A message is validated completely (wire_recv, then worker rank, state and clock rules)
 *   before it changes anything, so a bad message leaves parameters and clocks as they were;
 *   it gets an ERROR reply, is counted, and is logged at most LOG_BURST lines a second.
 * - finished[w] = steps worker w has clocked; it only grows. A worker that said SHUTDOWN is
 *   no longer live: gates and BSP barriers stop waiting for it.
 * - BSP: bsp_clock = updates applied. Pushes of clock bsp_clock are summed per (table, key)
 *   in `acc`; once no live worker has finished <= bsp_clock, each summed row is applied once
 *   as sum / (workers that finished that step) and bsp_clock advances.
 * Not done here: key ownership (the client's partitioner decides which shard gets a key),
 * liveness by heartbeat timeouts, checkpoints. */
#include "server/loop.h"

#include "common/error.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/timer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_MS 100            /* stop flag and stats timer resolution */
#define DRAIN_MAX 256          /* messages handled per poll wake-up */
#define LOG_BURST 5            /* bad-message log lines per second */
#define FINAL_LINGER_MS 1000   /* bounded flush of the last replies */
#define MAX_DEFERRED (1u << 16)
#define ACC_EMPTY UINT32_MAX

/* A pull held by the consistency gate; keys copied out of the message. */
typedef struct Deferred {
    unsigned char id[WIRE_IDENTITY_MAX];
    size_t id_len;
    WireHeader h;
    uint64_t *keys; /* (h.key_count) */
} Deferred;

/* BSP accumulator: one summed gradient row per (table, key) pushed in the current clock.
 * Open addressing (linear probing, power-of-two capacity, load <= 1/2) from (table, key) to
 * an entry; entry i's sum lives at pool + off[i]. */
typedef struct AccEntry {
    uint32_t table;
    uint64_t key;
    size_t off;
} AccEntry;

typedef struct Acc {
    AccEntry *entries;
    size_t n, cap;
    uint32_t *map; /* (map_cap) entry index or ACC_EMPTY */
    size_t map_cap;
    float *pool;
    size_t used, pool_cap; /* floats */
} Acc;

struct ServerLoop {
    ServerLoopOptions opt;
    char *bind_to;          /* copy of opt.endpoint */
    char endpoint[512];     /* ZMQ_LAST_ENDPOINT */
    Shard *shard;
    WireLimits lim;
    void *sock;
    atomic_int stop;
    atomic_int failed;            /* a worker failed: refuse all but SHUTDOWN (job is ending) */
    atomic_uchar *failed_worker;  /* (W) reported failed by another thread */
    int ran;

    uint64_t *finished;     /* (W) steps clocked */
    unsigned char *gone;    /* (W) said SHUTDOWN */
    uint32_t live;
    uint64_t bsp_clock;
    Acc acc;

    Deferred *deferred;
    size_t ndeferred, deferred_cap;
    float *rows;            /* pull reply scratch */
    size_t rows_cap;

    WireStats stats;
    double t0, next_stats;
    double log_window;
    int log_lines;
    uint64_t log_suppressed;
};

/* Every socket option of the shard's socket, in one place (CURVE keys go here too). Called
 * at creation with linger 0 (never hang on a dead peer) and once more when the loop ends with
 * a bounded linger so the final replies are flushed. */
static int socket_options(ServerLoop *l, int linger_ms)
{
    int64_t max_frame = (int64_t)l->lim.max_bytes;
    if (zmq_setsockopt(l->sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms) ||
        zmq_setsockopt(l->sock, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame))
        return psrec_errf(zmq_errno(), "shard %u: socket options: %s", l->opt.shard_index,
                          zmq_strerror(zmq_errno()));
    return 0;
}

int server_loop_new(const ServerLoopOptions *opts, ServerLoop **out)
{
    *out = NULL;
    if (!opts->workers || !opts->shard_count || opts->shard_index >= opts->shard_count ||
        opts->consistency > SERVER_ASP || !opts->endpoint || !opts->zmq_ctx)
        return psrec_errf(PSREC_E_RANGE,
                          "server loop: bad options (workers %u, shard %u of %u, consistency "
                          "%d, endpoint %s, context %s)",
                          opts->workers, opts->shard_index, opts->shard_count,
                          (int)opts->consistency, opts->endpoint ? opts->endpoint : "missing",
                          opts->zmq_ctx ? "set" : "missing");
    ServerLoop *l = calloc(1, sizeof *l);
    if (!l)
        return PSREC_E_NOMEM;
    l->opt = *opts;
    int rc = PSREC_E_NOMEM;
    l->bind_to = strdup(opts->endpoint);
    l->finished = calloc(opts->workers, sizeof *l->finished);
    l->gone = calloc(opts->workers, sizeof *l->gone);
    l->failed_worker = calloc(opts->workers, sizeof *l->failed_worker);
    if (!l->bind_to || !l->finished || !l->gone || !l->failed_worker)
        goto fail;
    l->opt.endpoint = l->bind_to;
    l->live = opts->workers;
    wire_limits_init(&l->lim, &opts->shard.shape);
    if ((rc = shard_new(&opts->shard, &l->shard)))
        goto fail;
    if (!(l->sock = zmq_socket(opts->zmq_ctx, ZMQ_ROUTER))) {
        rc = psrec_errf(zmq_errno(), "shard %u: socket: %s", opts->shard_index,
                        zmq_strerror(zmq_errno()));
        goto fail;
    }
    if ((rc = socket_options(l, 0)))
        goto fail;
    if (zmq_bind(l->sock, l->bind_to)) {
        rc = psrec_errf(zmq_errno(), "shard %u: cannot bind %s: %s (is the address this "
                        "host's, the port free?)", opts->shard_index, l->bind_to,
                        zmq_strerror(zmq_errno()));
        goto fail;
    }
    size_t len = sizeof l->endpoint;
    if (zmq_getsockopt(l->sock, ZMQ_LAST_ENDPOINT, l->endpoint, &len)) {
        rc = psrec_errf(zmq_errno(), "shard %u: endpoint: %s", opts->shard_index,
                        zmq_strerror(zmq_errno()));
        goto fail;
    }
    atomic_init(&l->stop, 0);
    atomic_init(&l->failed, 0);
    *out = l;
    return 0;
fail:
    server_loop_free(&l);
    return rc;
}

const char *server_loop_endpoint(const ServerLoop *l)
{
    return l->endpoint;
}

void server_loop_stop(ServerLoop *l)
{
    atomic_store(&l->stop, 1);
}

void server_loop_stats(const ServerLoop *l, WireStats *out)
{
    ShardStats ss;
    shard_stats(l->shard, &ss);
    *out = l->stats;
    out->rows_held = ss.rows_held;
}

static void acc_free(Acc *a)
{
    free(a->entries);
    free(a->map);
    free(a->pool);
    memset(a, 0, sizeof *a);
}

void server_loop_free(ServerLoop **lp)
{
    ServerLoop *l = *lp;
    if (!l)
        return;
    if (l->sock)
        zmq_close(l->sock);
    shard_free(&l->shard);
    for (size_t i = 0; i < l->ndeferred; i++)
        free(l->deferred[i].keys);
    free(l->deferred);
    acc_free(&l->acc);
    free(l->rows);
    free(l->finished);
    free(l->gone);
    free((void *)l->failed_worker);
    free(l->bind_to);
    free(l);
    *lp = NULL;
}

/* ---- replies ---------------------------------------------------------------------------- */

/* Send a reply; count its bytes. A ROUTER drops messages it cannot route, so the only errors
 * are the context's (ETERM), which end the loop. */
static int reply(ServerLoop *l, const unsigned char *id, size_t id_len, const WireHeader *h,
                 const uint64_t *keys, const float *vals)
{
    int rc = wire_send(l->sock, id, id_len, h, keys, vals);
    if (rc) {
        LOG_WARN("shard %u: reply %s to worker %u failed: %s", l->opt.shard_index,
                 wire_op_name(h->op), h->worker_rank,
                 rc > 0 ? zmq_strerror(rc) : psrec_errmsg());
        return rc == ETERM ? rc : 0;
    }
    l->stats.bytes_out += wire_message_size(h);
    return 0;
}

/* Header of the reply to req (same op, echoed ids and clock). */
static void reply_header(WireHeader *r, const WireHeader *req)
{
    wire_header_init(r, req->op);
    r->reply = 1;
    r->table = req->table;
    r->worker_rank = req->worker_rank;
    r->clock = req->clock;
    r->request_id = req->request_id;
}

static int ack(ServerLoop *l, const unsigned char *id, size_t id_len, const WireHeader *req)
{
    WireHeader r;
    reply_header(&r, req);
    return reply(l, id, id_len, &r, NULL, NULL);
}

/* Log a bad message unless LOG_BURST lines went out in the current second. */
static void log_bad(ServerLoop *l, const char *what)
{
    double t = timer_now();
    if (t - l->log_window >= 1.0) {
        if (l->log_suppressed)
            LOG_WARN("shard %u: %" PRIu64 " more bad messages not logged", l->opt.shard_index,
                     l->log_suppressed);
        l->log_window = t;
        l->log_lines = 0;
        l->log_suppressed = 0;
    }
    if (l->log_lines < LOG_BURST) {
        l->log_lines++;
        LOG_WARN("shard %u: bad message: %s", l->opt.shard_index, what);
    } else {
        l->log_suppressed++;
    }
}

/* Answer a refused request with ERROR (req NULL when its header did not decode), count and
 * log it. */
static int refuse(ServerLoop *l, const unsigned char *id, size_t id_len, const WireHeader *req,
                  int code, const char *why)
{
    WireHeader r;
    wire_header_init(&r, WIRE_OP_ERROR);
    if (req) {
        reply_header(&r, req);
        r.op = WIRE_OP_ERROR;
    }
    r.reply = 1;
    r.error_code = code;
    snprintf(r.error_text, sizeof r.error_text, "%s", why);
    l->stats.bad_messages++;
    char line[WIRE_ERROR_TEXT_MAX + 64];
    snprintf(line, sizeof line, "%s (worker %d, request %" PRIu64 ")", why,
             req ? (int)req->worker_rank : -1, req ? req->request_id : 0);
    log_bad(l, line);
    return reply(l, id, id_len, &r, NULL, NULL);
}

/* ---- consistency ------------------------------------------------------------------------ */

/* Smallest finished count over live workers; UINT64_MAX when none is live. */
static uint64_t slowest(const ServerLoop *l)
{
    uint64_t m = UINT64_MAX;
    for (uint32_t w = 0; w < l->opt.workers; w++)
        if (!l->gone[w] && l->finished[w] < m)
            m = l->finished[w];
    return m;
}

static int pull_ready(const ServerLoop *l, uint64_t clock)
{
    switch (l->opt.consistency) {
    case SERVER_ASP:
        return 1;
    case SERVER_SSP: {
        uint64_t s = slowest(l);
        return s == UINT64_MAX || s + l->opt.staleness >= clock;
    }
    case SERVER_BSP:
        return l->bsp_clock >= clock;
    }
    return 1;
}

/* Answer a pull now: rows from the shard, staleness recorded. */
static int serve_pull(ServerLoop *l, const unsigned char *id, size_t id_len,
                      const WireHeader *req, const uint64_t *keys)
{
    const uint32_t width = l->lim.width[req->table];
    const size_t nf = (size_t)req->key_count * width;
    if (nf > l->rows_cap) {
        float *p = realloc(l->rows, nf * sizeof *p);
        if (!p)
            return refuse(l, id, id_len, req, PSREC_E_NOMEM, "shard out of memory for a pull");
        l->rows = p;
        l->rows_cap = nf;
    }
    int rc = shard_pull(l->shard, req->table, keys, (size_t)req->key_count, l->rows);
    if (rc)
        return refuse(l, id, id_len, req, rc, psrec_errmsg());
    uint64_t s = slowest(l);
    if (s != UINT64_MAX && req->clock > s && req->clock - s > l->stats.max_staleness)
        l->stats.max_staleness = req->clock - s;
    WireHeader r;
    reply_header(&r, req);
    r.key_count = req->key_count;
    r.value_width = width;
    l->stats.pulls++;
    return reply(l, id, id_len, &r, keys, l->rows);
}

/* Answer, in arrival order, every deferred pull whose gate is open now. */
static int release_deferred(ServerLoop *l)
{
    size_t kept = 0;
    int rc = 0;
    for (size_t i = 0; i < l->ndeferred; i++) {
        Deferred *d = &l->deferred[i];
        if (rc || !pull_ready(l, d->h.clock)) {
            l->deferred[kept++] = *d;
            continue;
        }
        rc = serve_pull(l, d->id, d->id_len, &d->h, d->keys);
        free(d->keys);
    }
    l->ndeferred = kept;
    return rc;
}

static int defer_pull(ServerLoop *l, const WireMsg *m)
{
    if (l->ndeferred >= MAX_DEFERRED)
        return refuse(l, m->identity, m->id_len, &m->h, PSREC_E_RANGE,
                      "too many pulls waiting for the consistency gate");
    if (l->ndeferred == l->deferred_cap) {
        size_t cap = l->deferred_cap ? 2 * l->deferred_cap : 16;
        Deferred *p = realloc(l->deferred, cap * sizeof *p);
        if (!p)
            return refuse(l, m->identity, m->id_len, &m->h, PSREC_E_NOMEM,
                          "shard out of memory for a waiting pull");
        l->deferred = p;
        l->deferred_cap = cap;
    }
    Deferred *d = &l->deferred[l->ndeferred];
    size_t kb = (size_t)m->h.key_count * sizeof *d->keys;
    d->keys = malloc(kb ? kb : 1);
    if (!d->keys)
        return refuse(l, m->identity, m->id_len, &m->h, PSREC_E_NOMEM,
                      "shard out of memory for a waiting pull");
    if (kb)
        memcpy(d->keys, m->keys, kb);
    memcpy(d->id, m->identity, m->id_len);
    d->id_len = m->id_len;
    d->h = m->h;
    l->ndeferred++;
    l->stats.deferred_pulls++;
    return 0;
}

/* ---- BSP accumulator -------------------------------------------------------------------- */

static size_t acc_hash(uint32_t table, uint64_t key, size_t mask)
{
    return (size_t)rng_mix64(key ^ rng_mix64((uint64_t)table + 1)) & mask;
}

/* Make room for n more entries of width floats, so the inserts of one push cannot fail
 * half-way. */
static int acc_reserve(Acc *a, size_t n, uint32_t width)
{
    if (a->n + n > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        while (cap < a->n + n)
            cap *= 2;
        AccEntry *e = realloc(a->entries, cap * sizeof *e);
        if (!e)
            return PSREC_E_NOMEM;
        a->entries = e;
        a->cap = cap;
    }
    size_t need = a->used + n * width;
    if (need > a->pool_cap) {
        size_t cap = a->pool_cap ? a->pool_cap : 4096;
        while (cap < need)
            cap *= 2;
        float *p = realloc(a->pool, cap * sizeof *p);
        if (!p)
            return PSREC_E_NOMEM;
        a->pool = p;
        a->pool_cap = cap;
    }
    if ((a->n + n) * 2 > a->map_cap) {
        size_t cap = a->map_cap ? a->map_cap : 512;
        while ((a->n + n) * 2 > cap)
            cap *= 2;
        uint32_t *map = malloc(cap * sizeof *map);
        if (!map)
            return PSREC_E_NOMEM;
        memset(map, 0xff, cap * sizeof *map);
        for (size_t i = 0; i < a->n; i++) {
            size_t h = acc_hash(a->entries[i].table, a->entries[i].key, cap - 1);
            while (map[h] != ACC_EMPTY)
                h = (h + 1) & (cap - 1);
            map[h] = (uint32_t)i;
        }
        free(a->map);
        a->map = map;
        a->map_cap = cap;
    }
    return 0;
}

/* Add grad (width floats) to the sum of (table, key). Room was reserved. */
static void acc_add(Acc *a, uint32_t table, uint64_t key, const float *grad, uint32_t width)
{
    size_t mask = a->map_cap - 1, h = acc_hash(table, key, mask);
    while (a->map[h] != ACC_EMPTY) {
        AccEntry *e = &a->entries[a->map[h]];
        if (e->table == table && e->key == key) {
            float *sum = a->pool + e->off;
            for (uint32_t i = 0; i < width; i++)
                sum[i] += grad[i];
            return;
        }
        h = (h + 1) & mask;
    }
    AccEntry *e = &a->entries[a->n];
    *e = (AccEntry){.table = table, .key = key, .off = a->used};
    memcpy(a->pool + a->used, grad, width * sizeof *grad);
    a->used += width;
    a->map[h] = (uint32_t)a->n++;
}

static void acc_clear(Acc *a)
{
    a->n = 0;
    a->used = 0;
    if (a->map)
        memset(a->map, 0xff, a->map_cap * sizeof *a->map);
}

/* Apply the summed rows of the current BSP clock as sum / divisor, table by table. */
static int acc_apply(ServerLoop *l, uint64_t divisor)
{
    Acc *a = &l->acc;
    if (!a->n)
        return 0;
    uint64_t *keys = malloc(a->n * sizeof *keys);
    float *grads = malloc(a->used * sizeof *grads);
    int rc = 0;
    if (!keys || !grads) {
        rc = psrec_errf(PSREC_E_NOMEM, "shard %u: no memory to apply BSP clock %" PRIu64,
                        l->opt.shard_index, l->bsp_clock);
        goto out;
    }
    for (uint32_t t = 0; t < PARAM_TABLES && !rc; t++) {
        const uint32_t w = l->lim.width[t];
        size_t n = 0;
        for (size_t i = 0; i < a->n; i++) {
            if (a->entries[i].table != t)
                continue;
            const float *sum = a->pool + a->entries[i].off;
            for (uint32_t j = 0; j < w; j++)
                grads[n * w + j] = sum[j] / (float)divisor;
            keys[n++] = a->entries[i].key;
        }
        if (n)
            rc = shard_push(l->shard, t, keys, n, grads);
    }
out:
    free(keys);
    free(grads);
    acc_clear(a);
    return rc;
}

/* BSP: apply every clock all live workers have finished. */
static int bsp_advance(ServerLoop *l)
{
    while (l->opt.consistency == SERVER_BSP) {
        uint64_t done = 0;
        for (uint32_t w = 0; w < l->opt.workers; w++) {
            if (l->finished[w] > l->bsp_clock)
                done++;
            else if (!l->gone[w])
                return 0;
        }
        if (!done)
            return 0;
        int rc = acc_apply(l, done);
        if (rc)
            return rc;
        l->bsp_clock++;
    }
    return 0;
}

/* Clocks or liveness changed: advance BSP, answer the pulls that may go now. */
static int gates_changed(ServerLoop *l)
{
    int rc = bsp_advance(l);
    if (rc) {
        LOG_ERROR("%s", psrec_errmsg());
        return rc;
    }
    return release_deferred(l);
}

/* ---- requests --------------------------------------------------------------------------- */

static int on_push(ServerLoop *l, const WireMsg *m)
{
    const WireHeader *h = &m->h;
    char why[160];
    if (l->opt.consistency == SERVER_BSP) {
        if (h->clock != l->bsp_clock) {
            snprintf(why, sizeof why,
                     "BSP push of clock %" PRIu64 ", the shard is at clock %" PRIu64, h->clock,
                     l->bsp_clock);
            return refuse(l, m->identity, m->id_len, h, PSREC_E_RANGE, why);
        }
        if (acc_reserve(&l->acc, (size_t)h->key_count, h->value_width))
            return refuse(l, m->identity, m->id_len, h, PSREC_E_NOMEM,
                          "shard out of memory for a push");
        for (uint64_t i = 0; i < h->key_count; i++)
            acc_add(&l->acc, h->table, m->keys[i], m->vals + i * h->value_width,
                    h->value_width);
    } else {
        int rc = shard_push(l->shard, h->table, m->keys, (size_t)h->key_count, m->vals);
        if (rc)
            return refuse(l, m->identity, m->id_len, h, rc, psrec_errmsg());
    }
    l->stats.pushes++;
    return ack(l, m->identity, m->id_len, h);
}

static int on_clock(ServerLoop *l, const WireMsg *m)
{
    const WireHeader *h = &m->h;
    uint64_t *fin = &l->finished[h->worker_rank];
    if (h->clock < *fin || h->clock == UINT64_MAX) {
        char why[160];
        snprintf(why, sizeof why,
                 "CLOCK %" PRIu64 ": worker %u already finished %" PRIu64 " steps", h->clock,
                 h->worker_rank, *fin);
        return refuse(l, m->identity, m->id_len, h, PSREC_E_RANGE, why);
    }
    *fin = h->clock + 1;
    int rc = ack(l, m->identity, m->id_len, h);
    return rc ? rc : gates_changed(l);
}

static int on_stats(ServerLoop *l, const WireMsg *m)
{
    WireHeader r;
    reply_header(&r, &m->h);
    r.has_stats = 1;
    server_loop_stats(l, &r.stats);
    return reply(l, m->identity, m->id_len, &r, NULL, NULL);
}

static int on_shutdown(ServerLoop *l, const WireMsg *m)
{
    uint32_t w = m->h.worker_rank;
    if (!l->gone[w]) {
        l->gone[w] = 1;
        l->live--;
        LOG_INFO("shard %u: worker %u done (%u still working)", l->opt.shard_index, w, l->live);
    }
    int rc = ack(l, m->identity, m->id_len, &m->h);
    return rc ? rc : gates_changed(l);
}

/* A message that passed wire validation: check what only the loop knows, then act. */
static int on_request(ServerLoop *l, const WireMsg *m)
{
    const WireHeader *h = &m->h;
    char why[160];
    if (h->reply) {
        snprintf(why, sizeof why, "%s reply sent to a shard", wire_op_name(h->op));
        return refuse(l, m->identity, m->id_len, h, PSREC_E_FORMAT, why);
    }
    if (h->worker_rank >= l->opt.workers) {
        snprintf(why, sizeof why, "worker_rank %u, this job has %u workers", h->worker_rank,
                 l->opt.workers);
        return refuse(l, m->identity, m->id_len, h, PSREC_E_RANGE, why);
    }
    if (atomic_load(&l->failed) && h->op != WIRE_OP_SHUTDOWN) {
        snprintf(why, sizeof why, "shard %u: a worker failed, the job is ending",
                 l->opt.shard_index);
        return refuse(l, m->identity, m->id_len, h, PSREC_E_STATE, why);
    }
    if (l->gone[h->worker_rank] && h->op != WIRE_OP_SHUTDOWN) {
        snprintf(why, sizeof why, "%s from worker %u after its SHUTDOWN", wire_op_name(h->op),
                 h->worker_rank);
        return refuse(l, m->identity, m->id_len, h, PSREC_E_STATE, why);
    }
    switch (h->op) {
    case WIRE_OP_PULL:
        if (pull_ready(l, h->clock))
            return serve_pull(l, m->identity, m->id_len, h, m->keys);
        return defer_pull(l, m);
    case WIRE_OP_PUSH:
        return on_push(l, m);
    case WIRE_OP_CLOCK:
        return on_clock(l, m);
    case WIRE_OP_HEARTBEAT:
        return ack(l, m->identity, m->id_len, h);
    case WIRE_OP_STATS:
        return on_stats(l, m);
    case WIRE_OP_SHUTDOWN:
        return on_shutdown(l, m);
    default:
        snprintf(why, sizeof why, "%s is not a request", wire_op_name(h->op));
        return refuse(l, m->identity, m->id_len, h, PSREC_E_FORMAT, why);
    }
}

/* Receive and handle one message. Returns 0 or an error that ends the loop. */
static int handle_one(ServerLoop *l)
{
    WireMsg m;
    char why[WIRE_ERROR_TEXT_MAX];
    int rc = wire_recv(l->sock, 1, &m, &l->lim, why, sizeof why);
    if (rc > 0) {
        wire_msg_close(&m);
        return rc == EAGAIN || rc == EINTR ? 0 : rc;
    }
    l->stats.bytes_in += m.bytes;
    if (rc < 0) {
        rc = m.id_len ? refuse(l, m.identity, m.id_len, m.header_ok ? &m.h : NULL, rc, why) : 0;
    } else {
        rc = on_request(l, &m);
    }
    wire_msg_close(&m);
    return rc;
}

/* Handle what is queued (at most DRAIN_MAX messages, so timers still run under load). */
static int drain(ServerLoop *l)
{
    for (int i = 0; i < DRAIN_MAX; i++) {
        int events = 0;
        size_t len = sizeof events;
        if (zmq_getsockopt(l->sock, ZMQ_EVENTS, &events, &len))
            return zmq_errno() == EINTR ? 0 : zmq_errno();
        if (!(events & ZMQ_POLLIN))
            return 0;
        int rc = handle_one(l);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- stats ------------------------------------------------------------------------------ */

static void write_stats(ServerLoop *l, double t)
{
    WireStats s;
    server_loop_stats(l, &s);
    LOG_INFO("shard %u: pulls %" PRIu64 " pushes %" PRIu64 " in %" PRIu64 " B out %" PRIu64
             " B rows %" PRIu64 " max staleness %" PRIu64 " deferred %" PRIu64 " bad %" PRIu64
             " waiting %zu clock %" PRIu64,
             l->opt.shard_index, s.pulls, s.pushes, s.bytes_in, s.bytes_out, s.rows_held,
             s.max_staleness, s.deferred_pulls, s.bad_messages, l->ndeferred, l->bsp_clock);
    if (!l->opt.stats_file)
        return;
    fprintf(l->opt.stats_file,
            "{\"shard\":%u,\"time\":%.3f,\"pulls\":%" PRIu64 ",\"pushes\":%" PRIu64
            ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"rows_held\":%" PRIu64
            ",\"max_staleness\":%" PRIu64 ",\"deferred_pulls\":%" PRIu64
            ",\"bad_messages\":%" PRIu64 ",\"waiting_pulls\":%zu,\"bsp_clock\":%" PRIu64 "}\n",
            l->opt.shard_index, t - l->t0, s.pulls, s.pushes, s.bytes_in, s.bytes_out,
            s.rows_held, s.max_staleness, s.deferred_pulls, s.bad_messages, l->ndeferred,
            l->bsp_clock);
    fflush(l->opt.stats_file);
}

/* ---- the loop --------------------------------------------------------------------------- */

/* Workers reported failed by another thread leave; the first one turns the shard into
 * refusing everything, so the other workers fail fast instead of waiting on gates. */
static int take_failures(ServerLoop *l)
{
    int any = 0;
    for (uint32_t w = 0; w < l->opt.workers; w++)
        if (atomic_load(&l->failed_worker[w]) && !l->gone[w]) {
            l->gone[w] = 1;
            l->live--;
            any = 1;
            LOG_WARN("shard %u: worker %u failed (%u still working)", l->opt.shard_index, w,
                     l->live);
        }
    return any;
}

/* The loop ends: every pull still waiting gets an ERROR, so none goes unanswered. */
static int fail_deferred(ServerLoop *l)
{
    int rc = 0;
    for (size_t i = 0; i < l->ndeferred; i++) {
        Deferred *d = &l->deferred[i];
        WireHeader r;
        reply_header(&r, &d->h);
        r.op = WIRE_OP_ERROR;
        r.error_code = PSREC_E_STATE;
        snprintf(r.error_text, sizeof r.error_text,
                 "shard %u stopped before the consistency gate opened", l->opt.shard_index);
        if (!rc)
            rc = reply(l, d->id, d->id_len, &r, NULL, NULL);
        free(d->keys);
    }
    l->ndeferred = 0;
    return rc;
}

int server_loop_run(ServerLoop *l)
{
    if (l->ran)
        return psrec_errf(PSREC_E_STATE, "shard %u: server_loop_run called twice",
                          l->opt.shard_index);
    l->ran = 1;
    static const char *names[] = {"BSP", "SSP", "ASP"};
    LOG_INFO("shard %u of %u: serving %u workers on %s (%s, staleness %u)", l->opt.shard_index,
             l->opt.shard_count, l->opt.workers, l->endpoint, names[l->opt.consistency],
             l->opt.staleness);
    l->t0 = timer_now();
    l->next_stats = l->opt.stats_interval > 0 ? l->t0 + l->opt.stats_interval : -1;
    int rc = 0;
    while (!rc && l->live > 0 && !atomic_load(&l->stop)) {
        long timeout = POLL_MS;
        double t = timer_now();
        if (l->next_stats >= 0) {
            long until = (long)((l->next_stats - t) * 1000.0) + 1;
            if (until < timeout)
                timeout = until < 0 ? 0 : until;
        }
        zmq_pollitem_t it = {.socket = l->sock, .events = ZMQ_POLLIN};
        int n = zmq_poll(&it, 1, timeout);
        if (n < 0) {
            if (zmq_errno() != EINTR)
                rc = zmq_errno();
        } else if (n > 0) {
            rc = drain(l);
        }
        if (!rc && take_failures(l)) {
            int frc = fail_deferred(l);
            if (!rc)
                rc = frc;
        }
        t = timer_now();
        if (l->next_stats >= 0 && t >= l->next_stats) {
            write_stats(l, t);
            while (l->next_stats <= t)
                l->next_stats += l->opt.stats_interval;
        }
    }
    if (rc && rc != PSREC_E_NOMEM)
        psrec_errf(rc, "shard %u: %s", l->opt.shard_index,
                   rc > 0 ? zmq_strerror(rc) : psrec_strerror(rc));
    if (rc != ETERM) {
        int frc = fail_deferred(l);
        if (!rc)
            rc = frc;
        socket_options(l, FINAL_LINGER_MS);
    }
    if (l->log_suppressed)
        LOG_WARN("shard %u: %" PRIu64 " more bad messages not logged", l->opt.shard_index,
                 l->log_suppressed);
    write_stats(l, timer_now());
    LOG_INFO("shard %u: loop ends (%s)", l->opt.shard_index,
             rc ? psrec_errmsg() : l->live ? "stopped" : "every worker done");
    return rc;
}

void server_loop_worker_failed(ServerLoop *l, uint32_t worker)
{
    if (worker >= l->opt.workers)
        return;
    atomic_store(&l->failed, 1);
    atomic_store(&l->failed_worker[worker], 1);
}

Shard *server_loop_shard(ServerLoop *l)
{
    return l->shard;
}
