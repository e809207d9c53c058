/* The server shard's event loop: zmq_poll on one ROUTER socket, every request handled to the
 * end on this thread, so parameters need no locks.
 *
 * Invariants:
 * - Every request gets exactly one reply: at once, or (a pull held by the consistency gate)
 *   when the gate opens, or an ERROR when the loop ends first.
 * - A message is validated completely (wire_recv, then worker rank, state and clock rules)
 *   before it changes anything, so a bad message leaves parameters and clocks as they were;
 *   it gets an ERROR reply, is counted, and is logged at most LOG_BURST lines a second.
 * - The consistency decisions live in server/gates.c (no sockets there), with its
 *   invariants: finished[w] only grows; a worker that said SHUTDOWN or failed is no longer
 *   live, so gates and BSP barriers stop waiting for it; BSP applies clock t once every live
 *   worker finished it, as sum / (workers that finished step t); every deferred pull is
 *   handed back exactly once. This file does the I/O those decisions call for.
 * - Cuts: a CUT at S from worker w is accepted only when w has finished exactly S steps; the
 *   cut is taken (shard copied, positions copied, image handed to the checkpoint thread) the
 *   moment every live worker has sent CUT S, and only then are the CUTs answered, so no
 *   worker pushes anything of step S before every shard holds its copy. Shard 0 alone
 *   announces cut steps (cut_step in every reply), always above every step a worker has
 *   clocked here, so each worker learns it before it finishes that many steps.
 * Not done here: key ownership (the client's partitioner decides which shard gets a key),
 * liveness by heartbeat timeouts, the checkpoint's file layout (snap_fn's). */
#include "server/loop.h"

#include "server/guard.h"
#include "server/stage.h"

#include "common/error.h"
#include "common/heap.h"
#include "common/log.h"
#include "common/timer.h"
#include "common/zsock.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_MS 100            /* stop flag and stats timer resolution */
#define DRAIN_MAX 256          /* messages handled per poll wake-up */
#define LOG_BURST 5            /* bad-message log lines per second */
#define FINAL_LINGER_MS 1000   /* bounded flush of the last replies */
#define WAIT_LOG_S 30.0        /* how often the log names the worker a gate waits for */
#define WAITING_MAX SERVER_LOOP_WAITING_MAX

_Static_assert(GATES_ID_MAX >= WIRE_IDENTITY_MAX, "a deferred pull keeps the whole routing id");

struct ServerLoop {
    ServerLoopOptions opt;
    char *bind_to;          /* copy of opt.endpoint */
    char endpoint[512];     /* ZMQ_LAST_ENDPOINT */
    Shard *shard;
    WireLimits lim;
    void *sock;
    Guard *guard;           /* ZAP handler and refusal counter (polled with sock) */
    int curve;              /* CURVE on (else ps.security = none) */
    atomic_int stop;
    atomic_int failed;            /* a worker failed: refuse all but SHUTDOWN (job is ending) */
    atomic_uchar *failed_worker;  /* (W) reported failed by another thread */
    int ran;

    Gates *gates;           /* clocks, liveness, BSP sums, pulls waiting */
    uint32_t *waiting;      /* (W) pulls of each worker waiting at a gate (<= WAITING_MAX) */
    float *rows;            /* pull reply scratch */
    size_t rows_cap;

    /* Cuts. */
    SnapWriter *writer;     /* NULL when opt.snap_fn is */
    unsigned char *pos;     /* (W, SNAP_CUT_MAX) each worker's latest position */
    uint32_t *pos_len;      /* (W) */
    uint64_t cut_step;      /* the cut being gathered (0: none) */
    GatesPull *cut_req;     /* (W) the CUT requests waiting for their answer (no keys) */
    unsigned char *in_cut;  /* (W) sent CUT cut_step */
    uint32_t cut_flags;     /* WIRE_FLAG_STOP if any CUT of cut_step carried it */
    atomic_int want;        /* WIRE_FLAG_WANT_* asked on this rank (signals) */
    uint32_t want_seen;     /* shard 0: WANT_* received from workers */
    uint64_t announced;     /* shard 0: announced cut step (0: none) */
    int announced_stop;
    double next_timed_cut;  /* shard 0: every_seconds timer (< 0: off) */
    int stopped;            /* a stopping cut was taken, or a worker said it stops */
    uint64_t cuts_taken, cuts_failed;

    /* Liveness. */
    double *last_seen;      /* (W) timer_now() of the worker's latest message */
    unsigned char *dead;    /* (W) declared dead by heartbeat timeout (fenced) */
    double *dead_at;        /* (W) when */
    double next_wait_log;   /* the "waiting for worker w" line, every WAIT_LOG_S */
    Stage *stages;          /* (W) each worker's pushes of its current step, until CLOCK */
    int announced_replan;   /* the announced cut is where survivors take over */
    int replan_due;         /* a worker died: the next cut taken is a REPLAN one */
    uint64_t lost_mask;     /* dead workers 0..63 (bit w), told in every reply */
    WireVerdict verdicts[WIRE_VERDICTS_MAX]; /* shard 0: steps each dead worker committed */
    uint32_t nverdicts;
    unsigned char *suspect; /* (W) shard k > 0: silent, shard 0's verdict not here yet */

    pthread_t thread;       /* server_loop_start's */
    int started;
    atomic_int done;        /* that thread returned */
    int run_rc;

    WireStats stats;
    double t0, next_stats;
    double log_window;
    int log_lines;
    uint64_t log_suppressed;
};

/* The shard's socket options (common/zsock.c sets every option of both sides). Called at
 * creation with linger 0 (never hang on a dead peer) and once more when the loop ends with a
 * bounded linger so the final replies are flushed. */
static int socket_options(ServerLoop *l, int linger_ms, const char *curve_secret)
{
    char who[32];
    snprintf(who, sizeof who, "shard %u", l->opt.shard_index);
    ZsockOptions o = {.linger_ms = linger_ms,
                      .send_timeout_ms = -1,
                      .max_msg_bytes = (int64_t)l->lim.max_bytes,
                      .curve_server_secret = curve_secret,
                      .zap_domain = curve_secret ? "psrec" : NULL};
    return zsock_setup(l->sock, &o, who);
}

int server_loop_new(const ServerLoopOptions *opts, ServerLoop **out)
{
    *out = NULL;
    Shard *initial = opts->initial; /* ours from here on, whatever happens */
    if (!opts->workers || !opts->shard_count || opts->shard_index >= opts->shard_count ||
        opts->consistency > SERVER_ASP || !opts->endpoint || !opts->zmq_ctx) {
        shard_free(&initial);
        return psrec_errf(PSREC_E_RANGE,
                          "server loop: bad options (workers %u, shard %u of %u, consistency "
                          "%d, endpoint %s, context %s)",
                          opts->workers, opts->shard_index, opts->shard_count,
                          (int)opts->consistency, opts->endpoint ? opts->endpoint : "missing",
                          opts->zmq_ctx ? "set" : "missing");
    }
    heap_tune_messages(); /* message buffers stay in the heap (common/heap.h) */
    ServerLoop *l = calloc(1, sizeof *l);
    if (!l) {
        shard_free(&initial);
        return psrec_nomem(__func__);
    }
    l->opt = *opts;
    int rc = 0;
    l->bind_to = strdup(opts->endpoint);
    l->failed_worker = calloc(opts->workers, sizeof *l->failed_worker);
    l->pos = calloc(opts->workers, SNAP_CUT_MAX);
    l->pos_len = calloc(opts->workers, sizeof *l->pos_len);
    l->cut_req = calloc(opts->workers, sizeof *l->cut_req);
    l->in_cut = calloc(opts->workers, 1);
    l->last_seen = calloc(opts->workers, sizeof *l->last_seen);
    l->dead = calloc(opts->workers, 1);
    l->dead_at = calloc(opts->workers, sizeof *l->dead_at);
    l->stages = calloc(opts->workers, sizeof *l->stages);
    l->suspect = calloc(opts->workers, 1);
    l->waiting = calloc(opts->workers, sizeof *l->waiting);
    if (!l->bind_to || !l->failed_worker || !l->pos || !l->pos_len || !l->cut_req ||
        !l->in_cut || !l->last_seen || !l->dead || !l->dead_at || !l->stages || !l->suspect ||
        !l->waiting) {
        rc = psrec_nomem("server loop");
        goto fail;
    }
    l->opt.endpoint = l->bind_to;
    wire_limits_init(&l->lim, &opts->shard.shape);
    if (opts->max_message_bytes)
        l->lim.max_bytes = opts->max_message_bytes;
    if (opts->max_keys_per_request)
        l->lim.max_keys = opts->max_keys_per_request;
    if ((rc = gates_new(opts->workers, opts->consistency, opts->staleness, l->lim.width,
                        &l->gates)))
        goto fail;
    gates_start(l->gates, opts->start_clock);
    if (opts->initial) {
        l->shard = opts->initial;
        l->opt.initial = NULL;
    } else if ((rc = shard_new(&opts->shard, &l->shard))) {
        goto fail;
    }
    if (opts->snap_fn && (rc = snapwriter_new(opts->snap_fn, opts->snap_ctx, &l->writer)))
        goto fail;
    if (!(l->sock = zmq_socket(opts->zmq_ctx, ZMQ_ROUTER))) {
        rc = psrec_errf(zmq_errno(), "shard %u: socket: %s", opts->shard_index,
                        zmq_strerror(zmq_errno()));
        goto fail;
    }
    /* The keys are the caller's (wiped after this call): keep no pointer to them. */
    l->opt.curve_secret = NULL;
    l->opt.curve_clients = NULL;
    l->curve = opts->curve_secret != NULL;
    if ((rc = socket_options(l, 0, opts->curve_secret)))
        goto fail;
    GuardOptions go = {.zmq_ctx = opts->zmq_ctx,
                       .sock = l->sock,
                       .shard_index = opts->shard_index,
                       .curve = opts->curve_secret != NULL,
                       .clients = opts->curve_clients,
                       .nclients = opts->curve_nclients};
    if ((rc = guard_new(&go, &l->guard))) /* the door is watched before it opens */
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
    atomic_init(&l->want, 0);
    atomic_init(&l->done, 0);
    *out = l;
    return 0;
fail:
    if (l->opt.initial)
        shard_free(&l->opt.initial); /* not handed to the loop yet */
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

uint64_t server_loop_refused(const ServerLoop *l)
{
    return guard_refused(l->guard);
}

void server_loop_stats(const ServerLoop *l, WireStats *out)
{
    ShardStats ss;
    shard_stats(l->shard, &ss);
    *out = l->stats;
    out->rows_held = ss.rows_held;
    out->over_limit += ss.over_limit;
    out->refused_connections = guard_refused(l->guard);
}

void server_loop_free(ServerLoop **lp)
{
    ServerLoop *l = *lp;
    if (!l)
        return;
    if (l->started) { /* never free under a running loop */
        int rc;
        server_loop_stop(l);
        server_loop_join(l, -1, &rc);
    }
    snapwriter_free(&l->writer); /* writes what was copied before anything goes */
    if (l->sock)
        zmq_close(l->sock);
    guard_free(&l->guard); /* after the socket: no handshake is left to answer */
    shard_free(&l->shard);
    free(l->pos);
    free(l->pos_len);
    free(l->cut_req);
    free(l->in_cut);
    free(l->last_seen);
    free(l->dead);
    free(l->dead_at);
    for (uint32_t w = 0; l->stages && w < l->opt.workers; w++)
        stage_fini(&l->stages[w]);
    free(l->stages);
    free(l->suspect);
    free(l->waiting);
    gates_free(&l->gates);
    free(l->rows);
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

/* Every reply carries the cut news: shard 0's announcement, and this shard's request for a
 * stopping cut (a signal on this rank) for the workers to forward to shard 0. */
static void cut_news(const ServerLoop *l, WireHeader *r)
{
    r->cut_step = l->announced;
    r->lost_mask = l->lost_mask;
    wire_verdicts_put(r, l->verdicts, l->nverdicts);
    if (l->announced && l->announced_stop)
        r->flags |= WIRE_FLAG_STOP;
    if (l->opt.shard_index != 0)
        r->flags |= (uint32_t)atomic_load(&((ServerLoop *)l)->want) &
                    (WIRE_FLAG_WANT_CUT | WIRE_FLAG_WANT_STOP);
}

/* Header of the reply to req (same op, echoed ids and clock). */
static void reply_header(const ServerLoop *l, WireHeader *r, const WireHeader *req)
{
    wire_header_init(r, req->op);
    r->reply = 1;
    r->table = req->table;
    r->worker_rank = req->worker_rank;
    r->clock = req->clock;
    r->request_id = req->request_id;
    cut_news(l, r);
}

static int ack(ServerLoop *l, const unsigned char *id, size_t id_len, const WireHeader *req)
{
    WireHeader r;
    reply_header(l, &r, req);
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
        reply_header(l, &r, req);
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

/* The rows of a pull, gathered by the shard straight into the reply's values frame. */
typedef struct PullFill {
    Shard *shard;
    uint32_t table;
    const uint64_t *keys;
    size_t n;
} PullFill;

static int pull_fill(void *ctx, float *out, size_t nvals)
{
    const PullFill *f = ctx;
    (void)nvals; /* n rows of the table's width, as the header says */
    return shard_pull(f->shard, f->table, f->keys, f->n, out);
}

/* Answer a pull now: rows from the shard, staleness recorded. f32 rows are gathered into the
 * frame ZeroMQ sends (no copy of a step's rows on this thread); bf16 ones into a scratch that
 * wire_send rounds into the frame. */
static int serve_pull(ServerLoop *l, const unsigned char *id, size_t id_len,
                      const WireHeader *req, const uint64_t *keys)
{
    const uint32_t width = l->lim.width[req->table];
    const size_t nf = (size_t)req->key_count * width;
    int rc = shard_admit(l->shard, req->table, keys, (size_t)req->key_count);
    if (rc)
        return refuse(l, id, id_len, req, rc, psrec_errmsg());
    WireHeader r;
    reply_header(l, &r, req);
    r.key_count = req->key_count;
    r.value_width = width;
    r.dtype = req->dtype; /* bf16: wire_send rounds the f32 rows to nearest even */
    if (r.dtype == WIRE_DTYPE_F32) {
        PullFill pf = {l->shard, req->table, keys, (size_t)req->key_count};
        rc = wire_send_fill(l->sock, id, id_len, &r, keys, pull_fill, &pf);
        if (rc < 0) /* the shard could not give the rows: nothing was sent */
            return refuse(l, id, id_len, req, rc, psrec_errmsg());
        if (rc > 0) { /* as reply(): only the context's end stops the loop */
            LOG_WARN("shard %u: reply PULL to worker %u failed: %s", l->opt.shard_index,
                     r.worker_rank, zmq_strerror(rc));
            if (rc == ETERM)
                return rc;
        } else {
            l->stats.bytes_out += wire_message_size(&r);
        }
    } else {
        if (nf > l->rows_cap) {
            float *p = realloc(l->rows, nf * sizeof *p);
            if (!p)
                return refuse(l, id, id_len, req, PSREC_E_NOMEM,
                              "shard out of memory for a pull");
            l->rows = p;
            l->rows_cap = nf;
        }
        if ((rc = shard_pull(l->shard, req->table, keys, (size_t)req->key_count, l->rows)))
            return refuse(l, id, id_len, req, rc, psrec_errmsg());
        if ((rc = reply(l, id, id_len, &r, keys, l->rows)))
            return rc;
    }
    uint64_t stale = gates_staleness(l->gates, req->clock);
    if (stale > l->stats.max_staleness)
        l->stats.max_staleness = stale;
    l->stats.pulls++;
    return 0;
}

/* The request a deferred pull stood for (what a reply to it echoes). */
static void pull_header(WireHeader *h, const GatesPull *d)
{
    wire_header_init(h, WIRE_OP_PULL);
    h->table = d->table;
    h->worker_rank = d->worker;
    h->clock = d->clock;
    h->request_id = d->request_id;
    h->key_count = d->key_count;
    h->dtype = d->dtype;
}

/* Answer, in arrival order, every deferred pull whose gate is open now. After an error that
 * ends the loop the rest stay queued (fail_deferred answers them). */
static int release_deferred(ServerLoop *l)
{
    GatesPull d;
    int rc = 0;
    while (!rc && gates_take_ready(l->gates, &d)) {
        if (d.worker < l->opt.workers && l->waiting[d.worker])
            l->waiting[d.worker]--;
        WireHeader h;
        pull_header(&h, &d);
        rc = serve_pull(l, d.id, d.id_len, &h, d.keys);
        gates_pull_fini(&d);
    }
    return rc;
}

static int defer_pull(ServerLoop *l, const WireMsg *m)
{
    const WireHeader *h = &m->h;
    if (l->waiting[h->worker_rank] >= WAITING_MAX) {
        char why[160];
        snprintf(why, sizeof why, "worker %u has %d pulls waiting at the consistency gate "
                 "already (a worker never has more requests in flight)", h->worker_rank,
                 WAITING_MAX);
        l->stats.over_limit++;
        return refuse(l, m->identity, m->id_len, h, PSREC_E_RANGE, why);
    }
    int rc = gates_defer(l->gates, m->identity, m->id_len, h->worker_rank, h->table, h->clock,
                         h->request_id, h->dtype, m->keys, h->key_count);
    if (rc)
        return refuse(l, m->identity, m->id_len, h, rc, psrec_errmsg());
    l->stats.deferred_pulls++;
    l->waiting[h->worker_rank]++;
    return 0;
}

/* BSP: gates_bsp_advance hands each clock's averaged rows to the shard. */
static int apply_rows(void *ctx, uint32_t table, const uint64_t *keys, size_t n,
                      const float *grads)
{
    ServerLoop *l = ctx;
    return shard_push(l->shard, table, keys, n, grads);
}

/* Clocks or liveness changed: advance BSP, answer the pulls that may go now. */
static int gates_changed(ServerLoop *l)
{
    int rc = gates_bsp_advance(l->gates, apply_rows, l);
    if (rc) {
        if (rc == PSREC_E_NOMEM)
            psrec_errf(rc, "shard %u: %s", l->opt.shard_index, psrec_errmsg());
        LOG_ERROR("%s", psrec_errmsg());
        return rc;
    }
    return release_deferred(l);
}

/* ---- requests --------------------------------------------------------------------------- */

/* With takeover, a push is held (server/stage.h) until its worker's CLOCK commits the step,
 * so a worker that dies half-way through a step leaves nothing of it in the model (under SSP
 * and ASP a step's pushes then become visible at its CLOCK instead of one by one). */
static int on_push(ServerLoop *l, const WireMsg *m)
{
    const WireHeader *h = &m->h;
    char why[160];
    if (l->opt.consistency == SERVER_BSP && h->clock != gates_bsp_clock(l->gates)) {
        snprintf(why, sizeof why,
                 "BSP push of clock %" PRIu64 ", the shard is at clock %" PRIu64, h->clock,
                 gates_bsp_clock(l->gates));
        return refuse(l, m->identity, m->id_len, h, PSREC_E_RANGE, why);
    }
    /* Rows a push would create are checked now: a BSP sum or a held push applied later must
     * not fail for the cap (that would end the loop). */
    int arc = shard_admit(l->shard, h->table, m->keys, (size_t)h->key_count);
    if (arc)
        return refuse(l, m->identity, m->id_len, h, arc, psrec_errmsg());
    /* A step's held pushes are bounded too: one message per table is what a worker sends
     * per step, so more than that many messages' worth without a CLOCK is not a worker's. */
    const Stage *st = &l->stages[h->worker_rank];
    if (l->opt.takeover && st->bytes + m->bytes > (uint64_t)PARAM_TABLES * l->lim.max_bytes) {
        snprintf(why, sizeof why, "worker %u holds %zu bytes of pushes of one step; %zu more "
                 "would pass %d x ps.max_message_bytes", h->worker_rank, st->bytes, m->bytes,
                 PARAM_TABLES);
        l->stats.over_limit++;
        return refuse(l, m->identity, m->id_len, h, PSREC_E_RANGE, why);
    }
    if (!l->opt.takeover) { /* nobody takes over a dead worker: apply (or sum) at once */
        int rc = l->opt.consistency == SERVER_BSP
                     ? gates_bsp_accept_push(l->gates, h->clock, h->table, m->keys,
                                             (size_t)h->key_count, m->vals, h->value_width)
                     : shard_push(l->shard, h->table, m->keys, (size_t)h->key_count, m->vals);
        if (rc)
            return refuse(l, m->identity, m->id_len, h, rc, psrec_errmsg());
    } else if (stage_add(&l->stages[h->worker_rank], h->table, m->keys, (size_t)h->key_count,
                         m->vals, h->value_width)) {
        return refuse(l, m->identity, m->id_len, h, PSREC_E_NOMEM,
                      "shard out of memory for a push");
    }
    l->stats.pushes++;
    return ack(l, m->identity, m->id_len, h);
}

typedef struct Commit {
    ServerLoop *l;
    uint64_t clock;
} Commit;

/* A committed step's held push: BSP sums it for its clock, SSP and ASP apply it now. */
static int commit_push(void *ctx, uint32_t table, const uint64_t *keys, size_t n,
                       const float *vals, uint32_t width)
{
    Commit *c = ctx;
    if (c->l->opt.consistency == SERVER_BSP)
        return gates_bsp_accept_push(c->l->gates, c->clock, table, keys, n, vals, width);
    return shard_push(c->l->shard, table, keys, n, vals);
}

/* ---- cuts ------------------------------------------------------------------------------- */

/* Keep the position a CLOCK, CUT or SHUTDOWN carries (wire_recv bounded its length). */
static void note_position(ServerLoop *l, const WireHeader *h)
{
    if (h->cut_len && h->cut_len <= SNAP_CUT_MAX) {
        memcpy(l->pos + (size_t)h->worker_rank * SNAP_CUT_MAX, h->cut, h->cut_len);
        l->pos_len[h->worker_rank] = h->cut_len;
    }
}

/* Shard 0: turn requests (workers' flags, a signal here, the every_seconds timer) into an
 * announced cut step above every step clocked so far. Other shards only pass their own
 * requests on in their replies (cut_news). */
static void announce(ServerLoop *l, double t)
{
    if (l->opt.shard_index != 0)
        return;
    uint32_t want = l->want_seen | (uint32_t)atomic_exchange(&l->want, 0);
    l->want_seen = 0;
    if (l->next_timed_cut >= 0 && t >= l->next_timed_cut) {
        want |= WIRE_FLAG_WANT_CUT;
        l->next_timed_cut = t + l->opt.cut_every_seconds;
    }
    if (!want || l->stopped)
        return;
    if (!l->announced) {
        l->announced = gates_fastest(l->gates) + 1;
        l->announced_stop = (want & WIRE_FLAG_WANT_STOP) != 0;
        LOG_INFO("shard 0: announcing a %scut at step %" PRIu64,
                 l->announced_stop ? "stopping " : "", l->announced);
    } else if ((want & WIRE_FLAG_WANT_STOP) && !l->announced_stop) {
        /* Workers that learnt the cut before hear of the stop in shard 0's CUT reply. */
        l->announced_stop = 1;
        LOG_INFO("shard 0: the cut at step %" PRIu64 " stops the job", l->announced);
    }
}

/* Copy the shard and every worker's position into an image for the checkpoint thread. The
 * only pause a cut costs training. */
static int take_image(ServerLoop *l, uint64_t step, int stop, int final)
{
    if (!l->writer)
        return 0;
    CutImage *img = NULL;
    int rc = cut_image_new(l->opt.workers, &img);
    if (rc)
        return psrec_errf(rc, "shard %u: no memory for the cut at step %" PRIu64,
                          l->opt.shard_index, step);
    img->step = step;
    img->shard = l->opt.shard_index;
    img->shards = l->opt.shard_count;
    img->stop = stop;
    img->final = final;
    img->replan = !final && l->replan_due;
    for (uint32_t w = 0; w < l->opt.workers; w++) {
        img->finished[w] = gates_finished(l->gates, w);
        img->done[w] = gates_worker_state(l->gates, w) == GATES_DONE;
        img->lost[w] = l->dead[w];
        img->cut_len[w] = l->pos_len[w];
        memcpy(img->cuts + (size_t)w * SNAP_CUT_MAX, l->pos + (size_t)w * SNAP_CUT_MAX,
               SNAP_CUT_MAX);
    }
    img->copy = snapwriter_take_spare(l->writer);
    if ((rc = shard_snapshot(l->shard, &img->copy))) {
        cut_image_free(&img);
        return psrec_errf(rc, "shard %u: cannot copy the shard for the cut at step %" PRIu64
                          ": %s", l->opt.shard_index, step, psrec_errmsg());
    }
    return snapwriter_submit(l->writer, &img);
}

/* Take the cut being gathered once every live worker has sent its CUT, then answer them.
 * A failed copy is logged loudly and counted; training goes on (the previous checkpoint
 * stays the newest valid one). */
static int cut_if_complete(ServerLoop *l)
{
    if (!l->cut_step)
        return 0;
    for (uint32_t w = 0; w < l->opt.workers; w++)
        if (gates_worker_state(l->gates, w) == GATES_LIVE && !l->in_cut[w])
            return 0;
    const uint64_t step = l->cut_step;
    int stop = (l->cut_flags & WIRE_FLAG_STOP) ||
               (l->announced == step && l->announced_stop);
    double t0 = timer_now();
    if (atomic_load(&l->failed)) {
        /* A worker failed or died: what it pushed of its unfinished step may be in the sums,
         * so no cut of this job is consistent any more. The previous checkpoint stays the
         * newest; the CUTs get the job-is-ending error below. */
        l->cuts_failed++;
        LOG_ERROR("shard %u: no checkpoint at step %" PRIu64 ": a worker failed",
                  l->opt.shard_index, step);
    } else if (take_image(l, step, stop, 0)) {
        l->cuts_failed++;
        LOG_ERROR("shard %u: CHECKPOINT FAILED at step %" PRIu64 ": %s", l->opt.shard_index,
                  step, psrec_errmsg());
    } else {
        l->cuts_taken++;
        LOG_INFO("shard %u: cut at step %" PRIu64 "%s: training paused %.1f ms for the copy",
                 l->opt.shard_index, step, stop ? " (stopping)" : "",
                 (timer_now() - t0) * 1e3);
    }
    const int replan = l->replan_due;
    l->replan_due = 0;
    if (l->announced == step) {
        l->announced = 0;
        l->announced_stop = 0;
        l->announced_replan = 0;
    }
    if (l->next_timed_cut >= 0) /* every_seconds counts from the last cut, whatever made it */
        l->next_timed_cut = timer_now() + l->opt.cut_every_seconds;
    if (stop) {
        l->stopped = 1;
        atomic_fetch_and(&l->want, ~(int)WIRE_FLAG_WANT_STOP);
    }
    atomic_fetch_and(&l->want, ~(int)WIRE_FLAG_WANT_CUT);
    int rc = 0;
    for (uint32_t w = 0; w < l->opt.workers; w++) {
        if (!l->in_cut[w])
            continue;
        l->in_cut[w] = 0;
        const GatesPull *q = &l->cut_req[w];
        WireHeader r;
        wire_header_init(&r, WIRE_OP_CUT);
        if (atomic_load(&l->failed)) {
            r.op = WIRE_OP_ERROR;
            r.error_code = PSREC_E_STATE;
            snprintf(r.error_text, sizeof r.error_text,
                     "shard %u: a worker failed, the job is ending", l->opt.shard_index);
        }
        r.reply = 1;
        r.worker_rank = w;
        r.clock = step;
        r.request_id = q->request_id;
        cut_news(l, &r);
        /* In a CUT reply the STOP bit speaks of this cut, not of the announced one. */
        r.flags &= ~(uint32_t)WIRE_FLAG_STOP;
        if (stop)
            r.flags |= WIRE_FLAG_STOP;
        if (replan)
            r.flags |= WIRE_FLAG_REPLAN;
        if (!rc)
            rc = reply(l, q->id, q->id_len, &r, NULL, NULL);
    }
    l->cut_step = 0;
    l->cut_flags = 0;
    return rc;
}

static int on_cut(ServerLoop *l, const WireMsg *m)
{
    const WireHeader *h = &m->h;
    const uint32_t w = h->worker_rank;
    const uint64_t fin = gates_finished(l->gates, w);
    char why[200];
    if (h->clock != fin) {
        snprintf(why, sizeof why, "CUT at step %" PRIu64 ": worker %u has finished %" PRIu64
                 " steps here", h->clock, w, fin);
        return refuse(l, m->identity, m->id_len, h, PSREC_E_RANGE, why);
    }
    if (l->cut_step && h->clock != l->cut_step) {
        snprintf(why, sizeof why, "CUT at step %" PRIu64 " while the cut at step %" PRIu64
                 " is being gathered", h->clock, l->cut_step);
        return refuse(l, m->identity, m->id_len, h, PSREC_E_STATE, why);
    }
    if (l->in_cut[w]) {
        snprintf(why, sizeof why, "second CUT at step %" PRIu64 " from worker %u", h->clock, w);
        return refuse(l, m->identity, m->id_len, h, PSREC_E_STATE, why);
    }
    note_position(l, h);
    l->want_seen |= h->flags & (WIRE_FLAG_WANT_CUT | WIRE_FLAG_WANT_STOP);
    announce(l, timer_now());
    l->cut_step = h->clock;
    l->in_cut[w] = 1;
    l->cut_flags |= h->flags & WIRE_FLAG_STOP;
    GatesPull *q = &l->cut_req[w];
    memcpy(q->id, m->identity, m->id_len);
    q->id_len = m->id_len;
    q->worker = w;
    q->clock = h->clock;
    q->request_id = h->request_id;
    return cut_if_complete(l);
}

static int on_clock(ServerLoop *l, const WireMsg *m)
{
    const WireHeader *h = &m->h;
    int rc = 0;
    /* The step is complete: its held pushes go in first (a CLOCK the gates would refuse,
     * going backwards, commits nothing). */
    if (h->clock >= gates_finished(l->gates, h->worker_rank) && h->clock != UINT64_MAX) {
        Commit c = {l, h->clock};
        if ((rc = stage_apply(&l->stages[h->worker_rank], commit_push, &c))) {
            psrec_errf(rc, "shard %u: committing worker %u's step %" PRIu64 ": %s",
                       l->opt.shard_index, h->worker_rank, h->clock, psrec_errmsg());
            LOG_ERROR("%s", psrec_errmsg());
            return rc; /* the model would miss part of a step: end the loop */
        }
    }
    rc = gates_on_clock(l->gates, h->worker_rank, h->clock);
    if (rc)
        return refuse(l, m->identity, m->id_len, h, rc, psrec_errmsg());
    note_position(l, h);
    l->want_seen |= h->flags & (WIRE_FLAG_WANT_CUT | WIRE_FLAG_WANT_STOP);
    announce(l, timer_now());
    /* The ack tells the worker how far the slowest live worker is: its progress line shows
     * the lag at the cost of a few header bytes, no extra message. */
    WireHeader r;
    reply_header(l, &r, h);
    uint64_t slow = gates_slowest(l->gates);
    r.slowest = slow == UINT64_MAX ? 0 : slow;
    rc = reply(l, m->identity, m->id_len, &r, NULL, NULL);
    return rc ? rc : gates_changed(l);
}

static int on_stats(ServerLoop *l, const WireMsg *m)
{
    WireHeader r;
    reply_header(l, &r, &m->h);
    r.has_stats = 1;
    server_loop_stats(l, &r.stats);
    return reply(l, m->identity, m->id_len, &r, NULL, NULL);
}

static int on_shutdown(ServerLoop *l, const WireMsg *m)
{
    uint32_t w = m->h.worker_rank;
    if (gates_worker_state(l->gates, w) == GATES_LIVE) {
        note_position(l, &m->h);
        if (m->h.flags & WIRE_FLAG_STOP)
            l->stopped = 1; /* it stops at a cut: the job ends without a final image */
    }
    if (gates_on_done(l->gates, w))
        LOG_INFO("shard %u: worker %u done (%u still working)", l->opt.shard_index, w,
                 gates_live(l->gates));
    int rc = ack(l, m->identity, m->id_len, &m->h);
    if (!rc)
        rc = gates_changed(l);
    return rc ? rc : cut_if_complete(l);
}

/* Shard k > 0: shard 0 declared worker w dead after it committed `steps` steps. This shard
 * holds that step's pushes if the worker died between its CLOCK to shard 0 and its CLOCK
 * here: commit them, so every shard holds exactly the steps shard 0 committed; then drop the
 * worker as shard 0 did. Returns 0 or an error ending the loop. */
static int apply_verdict(ServerLoop *l, uint32_t w, uint64_t steps)
{
    if (l->opt.shard_index == 0 || !l->opt.takeover || w >= l->opt.workers || l->dead[w])
        return 0;
    const uint64_t fin = gates_finished(l->gates, w);
    int rc = 0;
    if (fin + 1 == steps && gates_worker_state(l->gates, w) == GATES_LIVE) {
        Commit c = {l, fin};
        if (!(rc = stage_apply(&l->stages[w], commit_push, &c)))
            rc = gates_on_clock(l->gates, w, fin);
        if (rc) {
            LOG_ERROR("shard %u: committing dead worker %u's step %" PRIu64 ": %s",
                      l->opt.shard_index, w, fin, psrec_errmsg());
            return rc;
        }
    } else if (fin != steps) {
        LOG_ERROR("shard %u: shard 0 says worker %u committed %" PRIu64 " steps, this shard "
                  "has %" PRIu64, l->opt.shard_index, w, steps, fin);
    }
    stage_drop(&l->stages[w]);
    l->dead[w] = 1;
    l->dead_at[w] = timer_now();
    if (w < 64)
        l->lost_mask |= 1ULL << w;
    gates_on_failed(l->gates, w);
    l->replan_due = 1;
    LOG_WARN("shard %u: worker %u is dead after %" PRIu64 " committed steps (shard 0's "
             "verdict); the survivors take over", l->opt.shard_index, w, steps);
    rc = gates_changed(l);
    return rc ? rc : cut_if_complete(l);
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
    for (uint32_t i = 0; i < h->nverdicts; i++) {
        int rc = apply_verdict(l, h->verdicts[i].worker, h->verdicts[i].steps);
        if (rc)
            return rc;
    }
    if (l->dead[h->worker_rank]) {
        /* Fenced: whatever it sends now is refused, and the error tells it to exit. */
        snprintf(why, sizeof why, "shard %u declared worker %u dead %.0f s ago (silent for "
                 "longer than ps.heartbeat_timeout = %g s); it is fenced and must exit",
                 l->opt.shard_index, h->worker_rank, timer_now() - l->dead_at[h->worker_rank],
                 l->opt.heartbeat_timeout);
        return refuse(l, m->identity, m->id_len, h, PSREC_E_FENCED, why);
    }
    l->last_seen[h->worker_rank] = timer_now();
    if (h->op == WIRE_OP_HEARTBEAT) {
        if (!atomic_load(&l->failed))
            return ack(l, m->identity, m->id_len, h); /* alive, whatever it is doing */
        /* The job is ending: say so to a worker busy elsewhere (an evaluation waiting for its
         * peers' sums), without counting it as a bad message. */
        WireHeader r;
        reply_header(l, &r, h);
        r.op = WIRE_OP_ERROR;
        r.error_code = PSREC_E_STATE;
        snprintf(r.error_text, sizeof r.error_text, "shard %u: a worker failed, the job is "
                 "ending", l->opt.shard_index);
        return reply(l, m->identity, m->id_len, &r, NULL, NULL);
    }
    if (atomic_load(&l->failed) && h->op != WIRE_OP_SHUTDOWN) {
        snprintf(why, sizeof why, "shard %u: a worker failed, the job is ending",
                 l->opt.shard_index);
        return refuse(l, m->identity, m->id_len, h, PSREC_E_STATE, why);
    }
    if (gates_worker_state(l->gates, h->worker_rank) != GATES_LIVE && h->op != WIRE_OP_SHUTDOWN) {
        snprintf(why, sizeof why, "%s from worker %u after its SHUTDOWN", wire_op_name(h->op),
                 h->worker_rank);
        return refuse(l, m->identity, m->id_len, h, PSREC_E_STATE, why);
    }
    switch (h->op) {
    case WIRE_OP_PULL:
        if (gates_pull_ready(l->gates, h->clock))
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
    case WIRE_OP_CUT:
        return on_cut(l, m);
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
    if (rc == PSREC_E_RANGE && (m.bytes > l->lim.max_bytes ||
                                (m.header_ok && m.h.key_count > l->lim.max_keys)))
        l->stats.over_limit++;
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
             " over limit %" PRIu64 " waiting %zu clock %" PRIu64 " refused %" PRIu64,
             l->opt.shard_index, s.pulls, s.pushes, s.bytes_in, s.bytes_out, s.rows_held,
             s.max_staleness, s.deferred_pulls, s.bad_messages, s.over_limit,
             gates_waiting(l->gates), gates_bsp_clock(l->gates), s.refused_connections);
    if (!l->opt.stats_file)
        return;
    fprintf(l->opt.stats_file,
            "{\"shard\":%u,\"time\":%.3f,\"pulls\":%" PRIu64 ",\"pushes\":%" PRIu64
            ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"rows_held\":%" PRIu64
            ",\"max_staleness\":%" PRIu64 ",\"deferred_pulls\":%" PRIu64
            ",\"bad_messages\":%" PRIu64 ",\"over_limit\":%" PRIu64
            ",\"waiting_pulls\":%zu,\"bsp_clock\":%" PRIu64 ",\"refused_connections\":%" PRIu64
            "}\n",
            l->opt.shard_index, t - l->t0, s.pulls, s.pushes, s.bytes_in, s.bytes_out,
            s.rows_held, s.max_staleness, s.deferred_pulls, s.bad_messages, s.over_limit,
            gates_waiting(l->gates), gates_bsp_clock(l->gates), s.refused_connections);
    fflush(l->opt.stats_file);
}

/* ---- the loop --------------------------------------------------------------------------- */

/* Workers reported failed by another thread leave; the first one turns the shard into
 * refusing everything, so the other workers fail fast instead of waiting on gates. */
static int take_failures(ServerLoop *l)
{
    int any = 0;
    for (uint32_t w = 0; w < l->opt.workers; w++)
        if (atomic_load(&l->failed_worker[w]) && gates_on_failed(l->gates, w)) {
            any = 1;
            LOG_WARN("shard %u: worker %u failed (%u still working)", l->opt.shard_index, w,
                     gates_live(l->gates));
        }
    return any;
}

/* Workers silent for heartbeat_timeout are dead: dropped from the gates and fenced. Their
 * data cannot be taken over by the survivors yet, so the job ends (as for a reported
 * failure: every other request is refused) and `psrec supervise` resumes it from the newest
 * checkpoint. Also names, every WAIT_LOG_S, the worker a gate waits for. */
/* A dead worker the survivors can take over: nothing of its unfinished step is in the model
 * (its pushes were held), its position is the one after its last committed step, and the next
 * cut (announced now, unless one is being gathered) tells the survivors to re-partition its
 * remaining samples over themselves. Not when a worker has finished its epochs already (it
 * cannot take a share any more) or none is left. Returns 0 or an error ending the loop. */
static int take_over(ServerLoop *l, uint32_t w)
{
    int rc = gates_changed(l); /* the gates stop waiting for it */
    if (!rc && !l->cut_step && !l->stopped) {
        if (!l->announced)
            l->announced = gates_fastest(l->gates) + 1;
        l->announced_replan = 1;
    }
    LOG_WARN("shard %u: the survivors take over worker %u's samples from its last committed "
             "step (%" PRIu64 ") at the cut at step %" PRIu64, l->opt.shard_index, w,
             gates_finished(l->gates, w), l->cut_step ? l->cut_step : l->announced);
    l->replan_due = 1;
    return rc ? rc : cut_if_complete(l);
}

static int can_take_over(const ServerLoop *l)
{
    if (!l->opt.takeover || atomic_load(&((ServerLoop *)l)->failed))
        return 0;
    uint32_t live = 0;
    for (uint32_t w = 0; w < l->opt.workers; w++) {
        GatesWorkerState s = gates_worker_state(l->gates, w);
        if (s == GATES_DONE)
            return 0;
        live += s == GATES_LIVE;
    }
    return live > 0;
}

static int check_liveness(ServerLoop *l, double t, int *rc)
{
    int any = 0;
    if (l->opt.heartbeat_timeout > 0)
        for (uint32_t w = 0; w < l->opt.workers && !*rc; w++) {
            if (gates_worker_state(l->gates, w) != GATES_LIVE ||
                t - l->last_seen[w] <= l->opt.heartbeat_timeout)
                continue;
            if (l->opt.takeover && l->opt.shard_index != 0) {
                /* Only shard 0 knows which of its steps the worker committed; its verdict
                 * comes through the survivors (their heartbeats and requests). */
                if (!l->suspect[w]) {
                    l->suspect[w] = 1;
                    LOG_WARN("shard %u: worker %u silent for %.1f s; waiting for shard 0's "
                             "verdict", l->opt.shard_index, w, t - l->last_seen[w]);
                }
                continue;
            }
            l->dead[w] = 1;
            l->dead_at[w] = t;
            if (w < 64)
                l->lost_mask |= 1ULL << w;
            if (l->nverdicts < WIRE_VERDICTS_MAX)
                l->verdicts[l->nverdicts++] =
                    (WireVerdict){.worker = w, .steps = gates_finished(l->gates, w)};
            stage_drop(&l->stages[w]); /* its unfinished step never happened */
            gates_on_failed(l->gates, w);
            LOG_ERROR("shard %u: worker %u silent for %.1f s (ps.heartbeat_timeout = %g s): "
                      "declared dead and fenced", l->opt.shard_index, w, t - l->last_seen[w],
                      l->opt.heartbeat_timeout);
            if (can_take_over(l)) {
                *rc = take_over(l, w);
                continue;
            }
            atomic_store(&l->failed, 1);
            any = 1;
            LOG_ERROR("shard %u: worker %u's samples cannot be taken over (%s), so the job "
                      "ends (psrec supervise resumes it from the newest checkpoint)",
                      l->opt.shard_index, w,
                      !l->opt.takeover ? "takeover is off: ps.colocate" : "no worker can take them");
        }
    if (t >= l->next_wait_log) {
        l->next_wait_log = t + WAIT_LOG_S;
        if (gates_waiting(l->gates)) {
            uint64_t slow = gates_slowest(l->gates);
            for (uint32_t w = 0; w < l->opt.workers; w++)
                if (gates_worker_state(l->gates, w) == GATES_LIVE &&
                    gates_finished(l->gates, w) == slow) {
                    LOG_INFO("shard %u: %zu pull(s) wait at the gate for worker %u (step %" PRIu64
                             ", last heard from %.1f s ago)", l->opt.shard_index,
                             gates_waiting(l->gates), w, slow, t - l->last_seen[w]);
                    break;
                }
        }
    }
    return any;
}

/* The loop ends: every pull still waiting gets an ERROR, so none goes unanswered. */
static int fail_deferred(ServerLoop *l)
{
    int rc = 0;
    GatesPull d;
    while (gates_take_all(l->gates, &d)) {
        if (d.worker < l->opt.workers && l->waiting[d.worker])
            l->waiting[d.worker]--;
        WireHeader h, r;
        pull_header(&h, &d);
        reply_header(l, &r, &h);
        r.op = WIRE_OP_ERROR;
        r.error_code = PSREC_E_STATE;
        snprintf(r.error_text, sizeof r.error_text,
                 "shard %u stopped before the consistency gate opened", l->opt.shard_index);
        if (!rc)
            rc = reply(l, d.id, d.id_len, &r, NULL, NULL);
        gates_pull_fini(&d);
    }
    return rc;
}

int server_loop_run(ServerLoop *l)
{
    if (l->ran)
        return psrec_errf(PSREC_E_STATE, "shard %u: server_loop_run called twice",
                          l->opt.shard_index);
    l->ran = 1;
    static const char *names[] = {"BSP", "SSP", "ASP"};
    LOG_INFO("shard %u of %u: serving %u workers on %s (%s, staleness %u, %s)",
             l->opt.shard_index, l->opt.shard_count, l->opt.workers, l->endpoint,
             names[l->opt.consistency], l->opt.staleness,
             l->curve ? "CURVE: only this job's workers may connect"
                      : "security none: anyone who reaches this port may read and write the model");
    l->t0 = timer_now();
    l->next_stats = l->opt.stats_interval > 0 ? l->t0 + l->opt.stats_interval : -1;
    for (uint32_t w = 0; w < l->opt.workers; w++)
        l->last_seen[w] = l->t0; /* the grace of a fresh start */
    l->next_wait_log = l->t0 + WAIT_LOG_S;
    l->next_timed_cut = l->opt.shard_index == 0 && l->opt.cut_every_seconds > 0
                            ? l->t0 + l->opt.cut_every_seconds
                            : -1;
    int rc = 0;
    while (!rc && gates_live(l->gates) > 0 && !atomic_load(&l->stop)) {
        long timeout = POLL_MS;
        double t = timer_now();
        if (l->next_stats >= 0) {
            long until = (long)((l->next_stats - t) * 1000.0) + 1;
            if (until < timeout)
                timeout = until < 0 ? 0 : until;
        }
        zmq_pollitem_t it[1 + GUARD_ITEMS] = {{.socket = l->sock, .events = ZMQ_POLLIN}};
        const int ng = guard_items(l->guard, it + 1);
        int n = zmq_poll(it, 1 + ng, timeout);
        if (n < 0) {
            if (zmq_errno() != EINTR)
                rc = zmq_errno();
        } else if (n > 0) {
            guard_serve(l->guard, it + 1, ng);
            if (it[0].revents & ZMQ_POLLIN)
                rc = drain(l);
        }
        if (!rc && (take_failures(l) | check_liveness(l, timer_now(), &rc)) && !rc) {
            int frc = fail_deferred(l);
            if (!rc)
                rc = frc;
            if (!rc)
                rc = cut_if_complete(l);
        }
        t = timer_now();
        announce(l, t);
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
        socket_options(l, FINAL_LINGER_MS, NULL);
    }
    if (l->log_suppressed)
        LOG_WARN("shard %u: %" PRIu64 " more bad messages not logged", l->opt.shard_index,
                 l->log_suppressed);
    guard_flush_log(l->guard);
    /* Every worker finished its epochs: the end-of-training checkpoint. Not after a stopping
     * cut (that cut is the checkpoint) nor after a failure (never publish a failed job). */
    if (!rc && l->opt.final_image && gates_live(l->gates) == 0 && !l->stopped &&
        !atomic_load(&l->failed)) {
        if (take_image(l, gates_fastest(l->gates), 0, 1)) {
            l->cuts_failed++;
            LOG_ERROR("shard %u: FINAL CHECKPOINT FAILED: %s", l->opt.shard_index,
                      psrec_errmsg());
        }
    }
    write_stats(l, timer_now());
    LOG_INFO("shard %u: loop ends (%s)", l->opt.shard_index,
             rc ? psrec_errmsg() : gates_live(l->gates) ? "stopped" : "every worker done");
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

void server_loop_request_cut(ServerLoop *l, int stop)
{
    atomic_fetch_or(&l->want, stop ? WIRE_FLAG_WANT_STOP : WIRE_FLAG_WANT_CUT);
}

void server_loop_snap_status(ServerLoop *l, SnapStatus *out)
{
    memset(out, 0, sizeof *out);
    if (l->writer)
        snapwriter_status(l->writer, out);
    out->failed += l->cuts_failed; /* copies that never reached the writer */
}

int server_loop_stopped(const ServerLoop *l)
{
    return l->stopped;
}

void server_loop_flush(ServerLoop *l)
{
    if (l->writer)
        snapwriter_wait(l->writer);
}

static void *loop_thread(void *arg)
{
    ServerLoop *l = arg;
    l->run_rc = server_loop_run(l);
    atomic_store(&l->done, 1);
    return NULL;
}

int server_loop_start(ServerLoop *l)
{
    if (l->started)
        return psrec_errf(PSREC_E_STATE, "shard %u: started twice", l->opt.shard_index);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&l->thread, NULL, loop_thread, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        return psrec_errf(rc, "shard %u: cannot start the loop's thread: %s",
                          l->opt.shard_index, psrec_strerror(rc));
    l->started = 1;
    return 0;
}

int server_loop_done(const ServerLoop *l)
{
    return atomic_load(&((ServerLoop *)l)->done);
}

int server_loop_join(ServerLoop *l, double timeout_s, int *rc)
{
    *rc = 0;
    if (!l->started)
        return 0;
    if (timeout_s >= 0) {
        double until = timer_now() + timeout_s;
        while (!atomic_load(&l->done)) {
            if (timer_now() >= until)
                return ETIMEDOUT;
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
    }
    pthread_join(l->thread, NULL);
    l->started = 0;
    *rc = l->run_rc;
    return 0;
}

uint32_t server_loop_lost(const ServerLoop *l, uint32_t *out, uint32_t n)
{
    uint32_t k = 0;
    for (uint32_t w = 0; w < l->opt.workers; w++)
        if (l->dead[w]) {
            if (k < n)
                out[k] = w;
            k++;
        }
    return k;
}

uint32_t server_loop_position(const ServerLoop *l, uint32_t w, void *buf)
{
    if (w >= l->opt.workers)
        return 0;
    memcpy(buf, l->pos + (size_t)w * SNAP_CUT_MAX, l->pos_len[w]);
    return l->pos_len[w];
}

uint64_t server_loop_fastest(const ServerLoop *l)
{
    return gates_fastest(l->gates);
}

int server_loop_failed(const ServerLoop *l)
{
    return atomic_load(&((ServerLoop *)l)->failed);
}
