/* The ZeroMQ PsClient (see ps_zmq.h): requests split by key owner, sent at once, completed by
 * whichever wait call receives their replies.
 *
 * Invariants:
 * - Every request in flight occupies one slot of a fixed table; its ticket is
 *   (sequence << (SLOT_BITS + CHUNK_BITS)) | slot, unique over the client's life, and the
 *   wire request_id of its chunk j is the ticket | (j << SLOT_BITS), so a reply is matched to
 *   its slot and chunk in O(1) and a late reply to a request that already ended (timeout,
 *   failed send) matches nothing and is dropped: it can never write into a buffer the caller
 *   has taken back.
 * - A pull or push is split per shard into chunks of about chunk_bytes of values (at most
 *   PS_ZMQ_MAX_CHUNKS), each an ordinary request to the shard: bit j of a slot's due[k] is set
 *   exactly while shard k owes the reply to chunk j; pending counts the bits. Replies are
 *   matched on the socket they arrive on, so one ticket serves all of a request's
 *   sub-requests.
 * - A pull's rows are scattered into the caller's out as soon as each shard's reply arrives,
 *   at the positions remembered at issue time (pos, grouped by shard, stable within a shard).
 * - Messages to one shard leave on one DEALER socket in call order, so a CLOCK follows the
 *   pushes of its step (ZeroMQ keeps a socket's order).
 * - A socket whose send failed is not used again (a multipart message may have been cut).
 * - With wire dtype bf16 every pushed row passes through the error feedback (worker/efeed.h)
 *   exactly once, in the order pushes are issued, so its residual carries into the row's next
 *   push; pulls ask the shards for bf16 replies, which wire_recv widens back to f32.
 * Not done here: retries, reconnecting to a restarted shard, heartbeats in the background
 * (worker/heartbeat.c), socket options and CURVE keys (common/zsock.c). */
#include "worker/ps_zmq.h"

#include "common/error.h"
#include "common/heap.h"
#include "common/keyrange.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/timer.h"
#include "common/zsock.h"
#include "worker/efeed.h"
#include "worker/heartbeat.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define SLOT_BITS 6
#define SLOT_MASK ((1u << SLOT_BITS) - 1)
#define CHUNK_BITS 4 /* chunk index inside a request_id, above the slot */
#define CHUNK_MASK ((1u << CHUNK_BITS) - 1)
#define ERR_MAX (WIRE_ERROR_TEXT_MAX + 96)
#define SILENCE_GRACE_S 0.5 /* see pump */
#define BAD_LOG_MAX 5 /* bad replies logged per client; later ones are only counted */

_Static_assert((1u << SLOT_BITS) == PS_ZMQ_MAX_TICKETS, "slot bits must match the table");
_Static_assert((1u << CHUNK_BITS) == PS_ZMQ_MAX_CHUNKS, "chunk bits must match the cap");

/* One request in flight. */
typedef struct Pending {
    uint64_t id;           /* request_id and ticket; 0: slot free */
    WireOp op;
    uint32_t table, width;
    float *out;            /* PULL: the caller's rows (n, width), borrowed until the wait */
    int direct;            /* PULL to one shard: rows come back in the caller's order */
    size_t *pos;           /* PULL: (pos_cap) caller positions, grouped by shard */
    size_t pos_cap;
    size_t *start, *count; /* (S) shard k's keys: pos[start[k] .. start[k] + count[k]) */
    size_t *chunk;         /* (S) keys per chunk of shard k's part (chunk j: keys j*chunk[k]
                              .. of that part; the last one shorter) */
    uint64_t *due;         /* (S) bit j set while shard k owes the reply to chunk j */
    uint32_t pending;      /* replies still due (bits set in due) */
    int rc;                /* first error, 0 so far */
    char err[ERR_MAX];     /* its message */
    WireStats stats;       /* STATS reply */
    uint32_t flags;        /* CUT: flags of the replies, or'ed */
} Pending;

struct PsZmq {
    void *ctx;
    uint32_t S, rank, W;
    double timeout;
    char **endpoints;       /* (S) copies */
    int *shard_ranks;       /* (S) for messages */
    void **socks;           /* (S) DEALER, one per shard */
    int *broken;            /* (S) errno of a failed send; the socket is unusable after it */
    zmq_pollitem_t *items;  /* (S) */
    WireLimits lim;
    TableSpec specs[PARAM_TABLES];
    const Heartbeat *hb;    /* liveness of the shards, or NULL (then `timeout` rules) */
    double quiet_since;     /* when a shard waited for was first seen silent (0: none) */
    double dead_after;
    uint64_t clock;         /* carried by pulls and pushes */
    uint64_t seq;           /* requests issued */
    int shut;               /* SHUTDOWN acknowledged by every shard */

    Pending slots[PS_ZMQ_MAX_TICKETS];
    size_t *slot_sizes;     /* (PS_ZMQ_MAX_TICKETS, 3, S) backing of start/count/chunk */
    uint64_t *slot_due;     /* (PS_ZMQ_MAX_TICKETS, S) */
    size_t chunk_bytes;     /* value bytes a sub-request aims at (see ps_zmq.h) */

    /* Issue scratch, reused by every request (sized for the largest so far). */
    uint32_t *owner;        /* (cap) shard of each key */
    size_t *order;          /* (cap) positions grouped by shard, for pushes */
    uint64_t *keys_buf;     /* (cap) keys grouped by shard */
    size_t cap;
    float *vals_buf;        /* (vals_cap) bf16: rounded gradient rows grouped by shard */
    size_t vals_cap;
    size_t *fill;           /* (S) */

    uint32_t dtype;         /* WireDtype of every pull reply and push */
    EFeed *efeed;           /* bf16: residuals of pushed rows; NULL with f32 */

    uint64_t sent, received; /* bytes */
    uint64_t stale, bad;    /* replies matching no request; malformed replies */

    /* Cuts (proto/ps.proto): the position CLOCK/CUT/SHUTDOWN carry, the requests the next
     * CLOCK carries, and what the shards announced. */
    unsigned char cut[WIRE_CUT_MAX];
    uint32_t cut_len;
    uint32_t want;          /* WIRE_FLAG_WANT_* set by this worker (a signal here) */
    uint32_t shard_want;    /* WIRE_FLAG_WANT_* asked by shards in their replies */
    uint64_t announced;     /* largest cut step announced, 0 = none */
    int announced_stop;     /* that cut stops the job */
    int stopping;           /* this worker stops at a cut: SHUTDOWN says so */
    uint32_t cut_flags;     /* of the last CUT's replies */
    uint64_t lost_mask;     /* dead workers the shards told of */
    WireVerdict verdicts[WIRE_VERDICTS_MAX]; /* shard 0's, passed on to every shard */
    uint32_t nverdicts;
    uint64_t *slowest;      /* (S) each shard's slowest live worker, from its last CLOCK ack */
};

static int shard_rank(const PsZmq *c, uint32_t k)
{
    return c->shard_ranks[k];
}

/* Every socket option of a shard connection, in one place (CURVE keys go here too): linger 0
 * so closing never waits for a dead peer, a send timeout so a shard that takes nothing cannot
 * block a worker forever, and the largest message the client accepts. */
/* A routing identity nobody can guess or reuse across jobs: "w<rank>-" and 16 random hex
 * digits (from the kernel's entropy, falling back to time and pid). A stale process of an
 * earlier job on the same port can then never be mistaken for this worker. */
static void routing_id(uint32_t rank, char *out, size_t n)
{
    uint64_t r = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&r, sizeof r, 1, f) != 1) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r = rng_mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid());
    }
    if (f)
        fclose(f);
    snprintf(out, n, "w%u-%016llx", rank, (unsigned long long)r);
}

static int socket_options(PsZmq *c, uint32_t k, const KeysClient *curve)
{
    char id[64], who[64];
    routing_id(c->rank, id, sizeof id);
    snprintf(who, sizeof who, "shard %u (rank %d)", k, shard_rank(c, k));
    double ms = c->timeout * 1000.0;
    ZsockOptions o = {.linger_ms = 0,
                      .send_timeout_ms = ms >= INT_MAX ? INT_MAX : ms < 1.0 ? 1 : (int)ms,
                      .max_msg_bytes = (int64_t)c->lim.max_bytes,
                      .routing_id = id};
    zsock_client_keys(&o, curve, k);
    return zsock_setup(c->socks[k], &o, who);
}

static int check_options(const PsZmqOptions *o)
{
    if (!o->zmq_ctx || !o->endpoints || !o->shards || !o->workers ||
        o->worker_rank >= o->workers || !(o->timeout > 0) || !isfinite(o->timeout) ||
        !o->shape.E || !o->shape.H)
        return psrec_errf(PSREC_E_RANGE,
                          "PS client: bad options (context %s, endpoints %s, %u shards, worker "
                          "%u of %u, timeout %g s, E %u, H %u)",
                          o->zmq_ctx ? "set" : "missing", o->endpoints ? "set" : "missing",
                          o->shards, o->worker_rank, o->workers, o->timeout, o->shape.E,
                          o->shape.H);
    for (uint32_t k = 0; k < o->shards; k++)
        if (!o->endpoints[k] || !o->endpoints[k][0])
            return psrec_errf(PSREC_E_RANGE, "PS client: no endpoint for shard %u", k);
    if (!wire_dtype_size(o->wire_dtype))
        return psrec_errf(PSREC_E_RANGE, "PS client: unknown wire dtype %u", o->wire_dtype);
    return 0;
}

int ps_zmq_new(const PsZmqOptions *opt, PsZmq **out)
{
    *out = NULL;
    int rc = check_options(opt);
    if (rc)
        return rc;
    heap_tune_messages(); /* message buffers stay in the heap (common/heap.h) */
    PsZmq *c = calloc(1, sizeof *c);
    if (!c)
        return PSREC_E_NOMEM;
    const uint32_t S = opt->shards;
    c->ctx = opt->zmq_ctx;
    c->S = S;
    c->rank = opt->worker_rank;
    c->W = opt->workers;
    c->timeout = opt->timeout;
    c->hb = opt->heartbeat;
    c->dead_after = opt->dead_after > 0 ? opt->dead_after : opt->timeout;
    wire_limits_init(&c->lim, &opt->shape);
    if (opt->max_message_bytes)
        c->lim.max_bytes = opt->max_message_bytes;
    if (opt->max_keys_per_request)
        c->lim.max_keys = opt->max_keys_per_request;
    params_specs(&opt->shape, c->specs);
    c->dtype = opt->wire_dtype;
    c->chunk_bytes = opt->chunk_bytes ? opt->chunk_bytes : PS_ZMQ_CHUNK_BYTES;
    if (c->dtype == WIRE_DTYPE_BF16 && (rc = efeed_new(&opt->shape, &c->efeed)))
        goto fail;
    rc = PSREC_E_NOMEM;
    c->endpoints = calloc(S, sizeof *c->endpoints);
    c->shard_ranks = calloc(S, sizeof *c->shard_ranks);
    c->socks = calloc(S, sizeof *c->socks);
    c->broken = calloc(S, sizeof *c->broken);
    c->items = calloc(S, sizeof *c->items);
    c->fill = calloc(S, sizeof *c->fill);
    c->slot_sizes = calloc((size_t)PS_ZMQ_MAX_TICKETS * 3 * S, sizeof *c->slot_sizes);
    c->slot_due = calloc((size_t)PS_ZMQ_MAX_TICKETS * S, sizeof *c->slot_due);
    c->slowest = calloc(S, sizeof *c->slowest);
    if (!c->endpoints || !c->shard_ranks || !c->socks || !c->broken || !c->items || !c->fill ||
        !c->slot_sizes || !c->slot_due || !c->slowest)
        goto fail;
    for (uint32_t i = 0; i < PS_ZMQ_MAX_TICKETS; i++) {
        c->slots[i].start = c->slot_sizes + (size_t)i * 3 * S;
        c->slots[i].count = c->slots[i].start + S;
        c->slots[i].chunk = c->slots[i].count + S;
        c->slots[i].due = c->slot_due + (size_t)i * S;
    }
    for (uint32_t k = 0; k < S; k++) {
        c->shard_ranks[k] = opt->shard_mpi_ranks ? opt->shard_mpi_ranks[k] : (int)k;
        if (!(c->endpoints[k] = strdup(opt->endpoints[k])))
            goto fail;
    }
    for (uint32_t k = 0; k < S; k++) {
        if (!(c->socks[k] = zmq_socket(c->ctx, ZMQ_DEALER))) {
            rc = psrec_errf(zmq_errno(), "shard %u (rank %d): socket: %s", k,
                            shard_rank(c, k), zmq_strerror(zmq_errno()));
            goto fail;
        }
        if ((rc = socket_options(c, k, opt->curve)))
            goto fail;
        if (zmq_connect(c->socks[k], c->endpoints[k])) {
            rc = psrec_errf(zmq_errno(), "shard %u (rank %d): cannot connect to %s: %s", k,
                            shard_rank(c, k), c->endpoints[k], zmq_strerror(zmq_errno()));
            goto fail;
        }
    }
    *out = c;
    return 0;
fail:
    ps_zmq_free(&c);
    return rc;
}

void ps_zmq_free(PsZmq **cp)
{
    PsZmq *c = *cp;
    if (!c)
        return;
    for (uint32_t k = 0; k < c->S; k++) {
        if (c->socks && c->socks[k])
            zmq_close(c->socks[k]);
        if (c->endpoints)
            free(c->endpoints[k]);
    }
    for (uint32_t i = 0; i < PS_ZMQ_MAX_TICKETS; i++)
        free(c->slots[i].pos);
    free(c->endpoints);
    free(c->shard_ranks);
    free(c->socks);
    free(c->broken);
    free(c->items);
    free(c->fill);
    free(c->slot_sizes);
    free(c->slot_due);
    free(c->slowest);
    free(c->owner);
    free(c->order);
    free(c->keys_buf);
    free(c->vals_buf);
    efeed_free(&c->efeed);
    free(c);
    *cp = NULL;
}

const struct EFeed *ps_zmq_efeed(const PsZmq *c)
{
    return c->efeed;
}

void ps_zmq_set_clock(PsZmq *c, uint64_t clock)
{
    c->clock = clock;
}

void ps_zmq_bytes(const PsZmq *c, uint64_t *sent, uint64_t *received)
{
    if (sent)
        *sent = c->sent;
    if (received)
        *received = c->received;
}

/* ---- slots ------------------------------------------------------------------------------ */

static int slot_take(PsZmq *c, WireOp op, uint32_t table, Pending **out)
{
    for (uint32_t i = 0; i < PS_ZMQ_MAX_TICKETS; i++) {
        Pending *p = &c->slots[i];
        if (p->id)
            continue;
        p->id = (++c->seq << (SLOT_BITS + CHUNK_BITS)) | i;
        p->op = op;
        p->table = table;
        p->width = table < PARAM_TABLES ? c->lim.width[table] : 0;
        p->out = NULL;
        p->direct = 0;
        p->pending = 0;
        p->rc = 0;
        p->err[0] = '\0';
        memset(&p->stats, 0, sizeof p->stats);
        p->flags = 0;
        memset(p->start, 0, c->S * sizeof *p->start);
        memset(p->count, 0, c->S * sizeof *p->count);
        memset(p->chunk, 0, c->S * sizeof *p->chunk);
        memset(p->due, 0, c->S * sizeof *p->due);
        *out = p;
        return 0;
    }
    return psrec_errf(PSREC_E_STATE, "%s: %d requests outstanding already (wait some first)",
                      wire_op_name(op), PS_ZMQ_MAX_TICKETS);
}

/* The request of ticket id (a request_id with chunk 0). */
static Pending *slot_of(PsZmq *c, uint64_t id)
{
    Pending *p = &c->slots[id & SLOT_MASK];
    return id && p->id == id ? p : NULL;
}

/* The request a reply's request_id answers, and which chunk of it (*chunk). */
static Pending *slot_of_reply(PsZmq *c, uint64_t id, uint32_t *chunk)
{
    *chunk = (uint32_t)(id >> SLOT_BITS) & CHUNK_MASK;
    return slot_of(c, id & ~((uint64_t)CHUNK_MASK << SLOT_BITS));
}

static void slot_release(Pending *p)
{
    p->id = 0;
    p->out = NULL;
}

/* Shard k owes p nothing more (chunks not answered yet are given up: their replies, if
 * they still come, match no request). */
static void sub_done(Pending *p, uint32_t k)
{
    p->pending -= (uint32_t)__builtin_popcountll(p->due[k]);
    p->due[k] = 0;
}

/* Shard k answered chunk j of p. */
static void chunk_done(Pending *p, uint32_t k, uint32_t j)
{
    if (p->due[k] >> j & 1) {
        p->due[k] &= ~((uint64_t)1 << j);
        p->pending--;
    }
}

/* Shard k's part of p is over: record code (0: answered fine) and, for the first error of
 * p, its message, prefixed with the shard. */
__attribute__((format(printf, 5, 6))) static void settle(PsZmq *c, Pending *p, uint32_t k,
                                                          int code, const char *fmt, ...)
{
    if (code && !p->rc) {
        p->rc = code;
        int len = snprintf(p->err, sizeof p->err, "shard %u (rank %d): ", k, shard_rank(c, k));
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err + len, sizeof p->err - (size_t)len, fmt, ap);
        va_end(ap);
    }
    sub_done(p, k);
}

/* ---- receiving -------------------------------------------------------------------------- */

static void note_bad(PsZmq *c, uint32_t k, const char *why)
{
    if (++c->bad <= BAD_LOG_MAX)
        LOG_WARN("PS client: shard %u (rank %d): bad reply dropped: %s%s", k, shard_rank(c, k),
                 why, c->bad == BAD_LOG_MAX ? " (no more of these are logged)" : "");
}

/* Every reply may carry the shards' cut news: shard 0's announced cut step (and whether the
 * job stops there), and any shard's request for a cut, which the next CLOCK forwards to
 * shard 0, the only one that decides. */
static void note_announcement(PsZmq *c, uint32_t k, const WireHeader *h)
{
    if (k == 0 && h->cut_step > c->announced) {
        c->announced = h->cut_step;
        c->announced_stop = 0;
    }
    /* (In a CUT reply the STOP bit speaks of that cut: ps_zmq_cut reads it.) */
    if (k == 0 && h->op != WIRE_OP_CUT && h->cut_step && h->cut_step == c->announced &&
        (h->flags & WIRE_FLAG_STOP))
        c->announced_stop = 1;
    c->shard_want |= h->flags & (WIRE_FLAG_WANT_CUT | WIRE_FLAG_WANT_STOP);
    c->lost_mask |= h->lost_mask;
    if (k == 0)
        wire_verdicts_merge(c->verdicts, &c->nverdicts, h);
}

/* A valid reply m from shard k to chunk j of p: check it answers what was asked, then apply
 * it. */
static void apply(PsZmq *c, Pending *p, uint32_t k, uint32_t j, const WireMsg *m)
{
    const WireHeader *h = &m->h;
    if (!h->reply) {
        settle(c, p, k, PSREC_E_FORMAT, "sent a %s request instead of a reply",
               wire_op_name(h->op));
        return;
    }
    note_announcement(c, k, h);
    if (h->op == WIRE_OP_ERROR) {
        settle(c, p, k, h->error_code ? h->error_code : PSREC_E_STATE, "%s", h->error_text);
        return;
    }
    if (h->op != p->op) {
        settle(c, p, k, PSREC_E_FORMAT, "%s reply to a %s request", wire_op_name(h->op),
               wire_op_name(p->op));
        return;
    }
    if (h->op == WIRE_OP_PULL) {
        const size_t first = (size_t)j * p->chunk[k];
        const size_t n = p->count[k] - first < p->chunk[k] ? p->count[k] - first : p->chunk[k];
        if (h->table != p->table || h->key_count != n) {
            settle(c, p, k, PSREC_E_FORMAT,
                   "PULL reply for table %u with %llu rows, asked table %u for %zu", h->table,
                   (unsigned long long)h->key_count, p->table, n);
            return;
        }
        const size_t w = p->width;
        if (p->direct) {
            memcpy(p->out + first * w, m->vals, n * w * sizeof *p->out);
        } else {
            const size_t *pos = p->pos + p->start[k] + first;
            for (size_t i = 0; i < n; i++)
                memcpy(p->out + pos[i] * w, m->vals + i * w, w * sizeof *p->out);
        }
    } else if (h->op == WIRE_OP_STATS) {
        if (!h->has_stats) {
            settle(c, p, k, PSREC_E_FORMAT, "STATS reply without stats");
            return;
        }
        p->stats = h->stats;
    } else if (h->op == WIRE_OP_CUT) {
        p->flags |= h->flags;
    } else if (h->op == WIRE_OP_CLOCK) {
        c->slowest[k] = h->slowest;
    }
    chunk_done(p, k, j);
}

/* Receive one message from shard k (which poll said is readable) and apply it to the request
 * it answers. Returns 0 or a ZeroMQ errno from receiving. */
static int receive(PsZmq *c, uint32_t k)
{
    WireMsg m;
    char why[WIRE_ERROR_TEXT_MAX];
    int rc = wire_recv(c->socks[k], 0, &m, &c->lim, why, sizeof why);
    if (rc > 0) {
        wire_msg_close(&m);
        return rc == EAGAIN || rc == EINTR ? 0 : rc;
    }
    c->received += m.bytes;
    uint32_t j = 0;
    Pending *p = m.header_ok ? slot_of_reply(c, m.h.request_id, &j) : NULL;
    if (p && !(p->due[k] >> j & 1))
        p = NULL;
    if (rc < 0) {
        if (p)
            settle(c, p, k, rc, "bad reply: %s", why);
        else
            note_bad(c, k, why);
    } else if (p) {
        apply(c, p, k, j, &m);
    } else if (m.h.op == WIRE_OP_ERROR && m.h.request_id == 0) {
        /* Shard k could not read one of our requests (its header did not decode there, e.g.
         * no memory to decode it). Which one is unknown, so every request waiting on shard k
         * fails with that error instead of waiting for a reply that will never come. */
        for (uint32_t i = 0; i < PS_ZMQ_MAX_TICKETS; i++)
            if (c->slots[i].id && c->slots[i].due[k])
                settle(c, &c->slots[i], k, m.h.error_code ? m.h.error_code : PSREC_E_STATE,
                       "a request was refused unread: %s", m.h.error_text);
    } else {
        c->stale++;
        LOG_DEBUG("PS client: shard %u: reply to request %llu that is no longer waited for", k,
                  (unsigned long long)m.h.request_id);
    }
    wire_msg_close(&m);
    return 0;
}

/* Receive from every shard until p has all its replies, or no message at all came for
 * c->timeout seconds (p fails with ETIMEDOUT naming the first shard it waits for), or
 * receiving failed (p fails with that errno). Replies to other requests are applied on the
 * way. */
static void pump(PsZmq *c, Pending *p)
{
    double last = timer_now();
    while (p->pending) {
        double left = c->timeout - (timer_now() - last);
        uint32_t k0 = 0;
        while (k0 < c->S && !p->due[k0])
            k0++;
        if (c->hb) {
            /* Liveness decides, not how long this reply takes: name a silent shard, or stop
             * at once when this worker was fenced. */
            if (heartbeat_fenced(c->hb)) {
                for (uint32_t k = 0; k < c->S; k++)
                    settle(c, p, k, PSREC_E_FENCED, "this worker was declared dead by the "
                           "job (silent for longer than ps.heartbeat_timeout); exiting");
                return;
            }
            /* A silence seen first is given a short grace: when this process itself was
             * stopped (SIGSTOP, swapping), every shard looks silent at once, and the actor's
             * first beat after it runs again brings the truth (an answer, or "fenced"). */
            int silent = 0;
            for (uint32_t k = 0; k < c->S; k++)
                silent |= p->due[k] && heartbeat_silence(c->hb, k) > c->dead_after;
            /* The grace is the client's, not this wait's: once over, every later wait on a
             * silent shard fails at once (not after one grace per outstanding ticket). */
            if (!silent)
                c->quiet_since = 0;
            else if (!c->quiet_since)
                c->quiet_since = timer_now();
            for (uint32_t k = 0; silent && timer_now() - c->quiet_since > SILENCE_GRACE_S &&
                                 k < c->S; k++) {
                double quiet = p->due[k] ? heartbeat_silence(c->hb, k) : 0;
                if (quiet > c->dead_after)
                    settle(c, p, k, ETIMEDOUT, "no heartbeat reply for %.1f s (more than "
                           "ps.heartbeat_timeout = %g s): the shard is dead or stalled "
                           "(%s request %llu)", quiet, c->dead_after, wire_op_name(p->op),
                           (unsigned long long)p->id);
            }
            if (!p->pending)
                return;
            left = 0.1; /* look at the heartbeats again soon */
        }
        if (left <= 0) {
            if (!p->rc) {
                p->rc = ETIMEDOUT;
                snprintf(p->err, sizeof p->err,
                         "shard %u (rank %d) did not answer for %g s (%s request %llu)", k0,
                         shard_rank(c, k0), c->timeout, wire_op_name(p->op),
                         (unsigned long long)p->id);
            }
            for (uint32_t k = k0; k < c->S; k++)
                sub_done(p, k);
            return;
        }
        for (uint32_t k = 0; k < c->S; k++)
            c->items[k] = (zmq_pollitem_t){.socket = c->socks[k], .events = ZMQ_POLLIN};
        double ms = ceil(left * 1000.0);
        int n = zmq_poll(c->items, (int)c->S, ms > INT_MAX ? INT_MAX : (long)ms);
        if (n < 0) {
            int e = zmq_errno();
            if (e == EINTR)
                continue;
            settle(c, p, k0, e, "poll: %s", zmq_strerror(e));
            return;
        }
        for (uint32_t k = 0; k < c->S && n > 0; k++) {
            if (!(c->items[k].revents & ZMQ_POLLIN))
                continue;
            int rc = receive(c, k);
            if (rc) {
                settle(c, p, k, rc, "receive: %s", zmq_strerror(rc));
                return;
            }
            last = timer_now();
        }
    }
}

/* Wait for p, release it; returns its result (detail in psrec_errmsg) and, for STATS, the
 * stats. */
static int complete(PsZmq *c, Pending *p, WireStats *stats)
{
    pump(c, p);
    int rc = p->rc;
    if (rc)
        psrec_errf(rc, "%s", p->err);
    else if (stats)
        *stats = p->stats;
    slot_release(p);
    return rc;
}

/* ---- sending ---------------------------------------------------------------------------- */

/* Send chunk j of p's sub-request to shard k (h->request_id is set here), its values from
 * vals or, when fill is set, written by fill(ctx) into the frame; it is then due. */
static int send_to(PsZmq *c, Pending *p, uint32_t k, uint32_t j, WireHeader *h,
                   const uint64_t *keys, const float *vals, WireFillFn fill, void *ctx)
{
    h->request_id = p->id | ((uint64_t)j << SLOT_BITS);
    if (c->broken[k])
        return psrec_errf(c->broken[k], "shard %u (rank %d): connection unusable since a send "
                          "failed (%s)", k, shard_rank(c, k), zmq_strerror(c->broken[k]));
    int rc = fill ? wire_send_fill(c->socks[k], NULL, 0, h, keys, fill, ctx)
                  : wire_send(c->socks[k], NULL, 0, h, keys, vals);
    if (rc) {
        char why[512];
        snprintf(why, sizeof why, "%s", rc > 0 ? zmq_strerror(rc) : psrec_errmsg());
        if (rc > 0)
            c->broken[k] = rc;
        return psrec_errf(rc, "shard %u (rank %d): cannot send %s%s: %s", k, shard_rank(c, k),
                          wire_op_name(h->op), rc == EAGAIN ? " (it takes nothing)" : "", why);
    }
    c->sent += wire_message_size(h);
    p->due[k] |= (uint64_t)1 << j;
    p->pending++;
    return 0;
}

static void request_header(const PsZmq *c, const Pending *p, WireHeader *h, uint64_t clock)
{
    wire_header_init(h, p->op);
    if (p->op == WIRE_OP_PULL || p->op == WIRE_OP_PUSH)
        h->dtype = c->dtype;
    h->table = p->table;
    h->worker_rank = c->rank;
    h->clock = clock;
    if (p->op == WIRE_OP_CLOCK || p->op == WIRE_OP_CUT || p->op == WIRE_OP_SHUTDOWN) {
        h->cut_len = c->cut_len;
        memcpy(h->cut, c->cut, c->cut_len);
    }
    if (p->op == WIRE_OP_CLOCK || p->op == WIRE_OP_CUT)
        h->flags = c->want | c->shard_want;
    wire_verdicts_put(h, c->verdicts, c->nverdicts); /* shard 0's word, for the others */
    /* Tell every shard what shard 0 told this worker: the cut stops the job. */
    if (p->op == WIRE_OP_CUT && c->announced == clock && c->announced_stop)
        h->flags |= WIRE_FLAG_STOP;
    if (p->op == WIRE_OP_SHUTDOWN && c->stopping)
        h->flags |= WIRE_FLAG_STOP;
}

/* Scratch for a request of n keys (and n rows of width floats when vals). */
static int reserve(PsZmq *c, size_t n, size_t width, int vals)
{
    if (n > c->cap) {
        uint32_t *o = realloc(c->owner, n * sizeof *o);
        if (o)
            c->owner = o;
        size_t *ord = realloc(c->order, n * sizeof *ord);
        if (ord)
            c->order = ord;
        uint64_t *kb = realloc(c->keys_buf, n * sizeof *kb);
        if (kb)
            c->keys_buf = kb;
        if (!o || !ord || !kb)
            return psrec_errf(PSREC_E_NOMEM, "PS client: no memory for a request of %zu keys",
                              n);
        c->cap = n;
    }
    if (vals && n * width > c->vals_cap) {
        float *v = realloc(c->vals_buf, n * width * sizeof *v);
        if (!v)
            return psrec_errf(PSREC_E_NOMEM, "PS client: no memory for %zu rows", n);
        c->vals_buf = v;
        c->vals_cap = n * width;
    }
    return 0;
}

/* Checks the shards would make, made here so the caller gets a clear error at once. */
static int check_rows(const PsZmq *c, WireOp op, uint32_t table, const uint64_t *keys,
                      size_t n, const void *rows)
{
    const char *what = wire_op_name(op);
    if (c->shut)
        return psrec_errf(PSREC_E_STATE, "%s after ps_zmq_shutdown", what);
    if (table >= PARAM_TABLES)
        return psrec_errf(PSREC_E_RANGE, "%s: no table %u", what, table);
    if (n && (!keys || !rows))
        return psrec_errf(PSREC_E_RANGE, "%s of %zu keys without keys or rows", what, n);
    const uint64_t w = c->lim.width[table];
    if (n > c->lim.max_keys || (uint64_t)n * (8 + 4 * w) + WIRE_HEADER_MAX > c->lim.max_bytes)
        return psrec_errf(PSREC_E_RANGE, "%s of %zu rows of table %s is over one message's "
                          "limit (ps.max_keys_per_request = %llu, ps.max_message_bytes = %llu)",
                          what, n,
                          c->specs[table].name, (unsigned long long)c->lim.max_keys,
                          (unsigned long long)c->lim.max_bytes);
    const uint64_t rows_in = c->lim.rows[table];
    for (size_t i = 0; i < n; i++)
        if (keys[i] >= rows_in)
            return psrec_errf(PSREC_E_RANGE, "%s: key %llu (index %zu) out of range for "
                              "table %s (rows %llu)", what, (unsigned long long)keys[i], i,
                              c->specs[table].name, (unsigned long long)rows_in);
    return 0;
}

/* Group the keys of p by owner shard: p->count/start and, in pos, the caller's positions
 * grouped by shard (stable). When one shard owns every key, p->direct is set and pos is not
 * written. */
static void route(PsZmq *c, Pending *p, const uint64_t *keys, size_t n, size_t *pos)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t o = keyrange_owner(p->table, keys[i], c->S);
        c->owner[i] = o;
        p->count[o]++;
    }
    size_t at = 0;
    for (uint32_t k = 0; k < c->S; k++) {
        p->start[k] = at;
        c->fill[k] = at;
        at += p->count[k];
        if (p->count[k] == n)
            p->direct = 1;
    }
    if (p->direct)
        return;
    for (size_t i = 0; i < n; i++)
        pos[c->fill[c->owner[i]]++] = i;
}

/* A chunk of f32 gradient rows gathered from the caller's grads straight into the frame:
 * rows pos[at ..] (or at .. when pos is NULL: the caller's order). */
typedef struct PushFill {
    const float *grads;
    const size_t *pos;
    size_t at, w;
} PushFill;

static int push_fill(void *ctx, float *out, size_t nvals)
{
    const PushFill *f = ctx;
    if (!f->pos) {
        memcpy(out, f->grads + f->at * f->w, nvals * sizeof *out);
        return 0;
    }
    for (size_t i = 0; i < nvals / f->w; i++)
        memcpy(out + i * f->w, f->grads + f->pos[f->at + i] * f->w, f->w * sizeof *out);
    return 0;
}

/* PULL (out) or PUSH (grads): split by owner, one message per shard involved. */
static int issue_rows(PsZmq *c, WireOp op, uint32_t table, const uint64_t *keys, size_t n,
                      const float *grads, float *out, PsTicket *ticket)
{
    *ticket = 0;
    int rc = check_rows(c, op, table, keys, n, op == WIRE_OP_PULL ? (const void *)out
                                                                    : (const void *)grads);
    if (rc || n == 0)
        return rc; /* ticket 0: complete at once */
    const size_t w = c->lim.width[table];
    if ((rc = reserve(c, n, w, op == WIRE_OP_PUSH && c->efeed)))
        return rc;
    Pending *p;
    if ((rc = slot_take(c, op, table, &p)))
        return rc;
    size_t *pos = c->order;
    if (op == WIRE_OP_PULL) {
        p->out = out;
        if (n > p->pos_cap) {
            size_t *np = realloc(p->pos, n * sizeof *np);
            if (!np) {
                slot_release(p);
                return psrec_errf(PSREC_E_NOMEM, "PULL: no memory for %zu positions", n);
            }
            p->pos = np;
            p->pos_cap = n;
        }
        pos = p->pos;
    }
    route(c, p, keys, n, pos);
    const uint64_t *kb = keys;
    const float *vb = NULL; /* bf16 pushes: the rounded rows grouped by shard */
    if (!p->direct) {
        for (size_t j = 0; j < n; j++)
            c->keys_buf[j] = keys[pos[j]];
        kb = c->keys_buf;
    }
    if (op == WIRE_OP_PUSH && c->efeed) {
        /* bf16: the rows leave rounded with their residual; the wire's rounding of these
         * bf16-exact values is then the identity. */
        for (size_t j = 0; j < n; j++) {
            size_t i = p->direct ? j : pos[j];
            if ((rc = efeed_round_row(c->efeed, table, keys[i], grads + i * w,
                                      c->vals_buf + j * w))) {
                slot_release(p);
                return psrec_errf(rc, "PUSH: %s", psrec_errmsg());
            }
        }
        vb = c->vals_buf;
    }
    /* f32 pushes: rows go from grads into each chunk's frame (push_fill), one copy. */
    PushFill pf = {grads, p->direct ? NULL : pos, 0, w};
    const int gather = op == WIRE_OP_PUSH && !c->efeed;
    const size_t row_bytes = w * wire_dtype_size(c->dtype);
    for (uint32_t k = 0; k < c->S; k++) {
        if (!p->count[k])
            continue;
        /* Chunks of about chunk_bytes of values (at most PS_ZMQ_MAX_CHUNKS, equal sizes but
         * the last): each is a request of its own, so the stages of a large transfer (the
         * sender's copy, encryption, TCP, decryption, the receiver's copy or apply) work on
         * different chunks at once instead of one after another on the whole. */
        size_t nchunk = (p->count[k] * row_bytes + c->chunk_bytes - 1) / c->chunk_bytes;
        nchunk = nchunk < 1 ? 1 : nchunk > PS_ZMQ_MAX_CHUNKS ? PS_ZMQ_MAX_CHUNKS : nchunk;
        p->chunk[k] = (p->count[k] + nchunk - 1) / nchunk;
        const size_t at = p->direct ? 0 : p->start[k];
        for (size_t first = 0, j = 0; first < p->count[k]; first += p->chunk[k], j++) {
            WireHeader h;
            request_header(c, p, &h, c->clock);
            size_t n1 = p->count[k] - first;
            h.key_count = n1 < p->chunk[k] ? n1 : p->chunk[k];
            h.value_width = (uint32_t)w;
            pf.at = at + first;
            if ((rc = send_to(c, p, k, (uint32_t)j, &h, kb + at + first,
                              vb ? vb + (at + first) * w : NULL,
                              gather ? push_fill : NULL, &pf))) {
                slot_release(p);
                return rc;
            }
        }
    }
    *ticket = p->id;
    return 0;
}

/* A header-only request to shard `only`, or to every shard when only == c->S; waits for all
 * replies. */
static int control_range(PsZmq *c, WireOp op, uint64_t clock, uint32_t k0, uint32_t k1,
                         WireStats *stats, uint32_t *flags)
{
    Pending *p;
    int rc = slot_take(c, op, 0, &p);
    if (rc)
        return rc;
    for (uint32_t k = k0; k < k1; k++) {
        WireHeader h;
        request_header(c, p, &h, clock);
        if ((rc = send_to(c, p, k, 0, &h, NULL, NULL, NULL, NULL))) {
            slot_release(p);
            return rc;
        }
    }
    int rc2 = complete(c, p, stats);
    if (flags)
        *flags = p->flags; /* the slot is free again, its fields still hold this request's */
    return rc2;
}

static int control(PsZmq *c, WireOp op, uint64_t clock, uint32_t only, WireStats *stats,
                   uint32_t *flags)
{
    return only < c->S ? control_range(c, op, clock, only, only + 1, stats, flags)
                       : control_range(c, op, clock, 0, c->S, stats, flags);
}

/* ---- the PsClient and the rest of the API ----------------------------------------------- */

static int zc_pull(void *impl, uint32_t table, const uint64_t *keys, size_t n, float *out,
                   PsTicket *ticket)
{
    return issue_rows(impl, WIRE_OP_PULL, table, keys, n, NULL, out, ticket);
}

static int zc_push(void *impl, uint32_t table, const uint64_t *keys, size_t n,
                   const float *grads, PsTicket *ticket)
{
    return issue_rows(impl, WIRE_OP_PUSH, table, keys, n, grads, NULL, ticket);
}

static int zc_wait(void *impl, PsTicket ticket)
{
    PsZmq *c = impl;
    if (ticket == 0)
        return 0;
    Pending *p = slot_of(c, ticket);
    if (!p)
        return psrec_errf(PSREC_E_STATE, "ticket %llu is not outstanding (waited already?)",
                          (unsigned long long)ticket);
    return complete(c, p, NULL);
}

static int zc_clock(void *impl, uint64_t clock)
{
    PsZmq *c = impl;
    if (c->shut)
        return psrec_errf(PSREC_E_STATE, "CLOCK after ps_zmq_shutdown");
    const uint32_t sent = c->want | c->shard_want;
    /* Shard 0 first: its acknowledgement commits the step (if this worker dies now, shard 0's
     * verdict tells the other shards to apply the step's held pushes too); then the rest. */
    int rc = control(c, WIRE_OP_CLOCK, clock, 0, NULL, NULL);
    /* Fault injection for tests: PSREC_TEST_DIE_BETWEEN_CLOCKS=w:step kills worker w right
     * after shard 0 acknowledged that step's CLOCK, before any other shard saw it (the hard
     * case of a takeover: the step is committed, the other shards only hold its pushes). */
    const char *die = getenv("PSREC_TEST_DIE_BETWEEN_CLOCKS");
    unsigned dw;
    unsigned long long ds;
    if (!rc && die && sscanf(die, "%u:%llu", &dw, &ds) == 2 && dw == c->rank && ds == clock) {
        fprintf(stderr, "psrec: dying between CLOCKs on purpose (PSREC_TEST_DIE_BETWEEN_CLOCKS)\n");
        _exit(137);
    }
    if (!rc && c->S > 1)
        rc = control_range(c, WIRE_OP_CLOCK, clock, 1, c->S, NULL, NULL);
    if (!rc) {
        c->clock = clock + 1;
        /* Delivered to shard 0; asking again is up to whoever wants it again. */
        c->want &= ~sent;
        c->shard_want &= ~sent;
    }
    return rc;
}

static uint32_t zc_width(void *impl, uint32_t table)
{
    const PsZmq *c = impl;
    return table < PARAM_TABLES ? c->lim.width[table] : 0;
}

static void zc_set_clock(void *impl, uint64_t clock)
{
    ps_zmq_set_clock(impl, clock);
}

static const PsClientOps zmq_ops = {zc_pull,  zc_push,      zc_wait, zc_clock,
                                    zc_width, zc_set_clock, 1};

void ps_zmq_client(PsZmq *c, PsClient *out)
{
    out->ops = &zmq_ops;
    out->impl = c;
}

int ps_zmq_stats(PsZmq *c, uint32_t shard, WireStats *out)
{
    if (shard >= c->S)
        return psrec_errf(PSREC_E_RANGE, "STATS: no shard %u (%u shards)", shard, c->S);
    if (c->shut)
        return psrec_errf(PSREC_E_STATE, "STATS after ps_zmq_shutdown");
    return control(c, WIRE_OP_STATS, c->clock, shard, out, NULL);
}

int ps_zmq_heartbeat(PsZmq *c)
{
    if (c->shut)
        return psrec_errf(PSREC_E_STATE, "HEARTBEAT after ps_zmq_shutdown");
    return control(c, WIRE_OP_HEARTBEAT, c->clock, c->S, NULL, NULL);
}

int ps_zmq_shutdown(PsZmq *c)
{
    if (c->shut)
        return psrec_errf(PSREC_E_STATE, "ps_zmq_shutdown called twice");
    int rc = control(c, WIRE_OP_SHUTDOWN, c->clock, c->S, NULL, NULL);
    if (!rc)
        c->shut = 1;
    return rc;
}

void ps_zmq_set_position(PsZmq *c, const void *cut, size_t len)
{
    c->cut_len = len <= WIRE_CUT_MAX ? (uint32_t)len : 0;
    if (c->cut_len)
        memcpy(c->cut, cut, c->cut_len);
}

void ps_zmq_request(PsZmq *c, uint32_t flags)
{
    c->want |= flags & (WIRE_FLAG_WANT_CUT | WIRE_FLAG_WANT_STOP);
}

uint64_t ps_zmq_slowest(const PsZmq *c)
{
    uint64_t slow = UINT64_MAX;
    for (uint32_t k = 0; k < c->S; k++)
        if (c->slowest[k] < slow)
            slow = c->slowest[k];
    return slow == UINT64_MAX ? 0 : slow;
}

void ps_zmq_announced(const PsZmq *c, uint64_t *cut_step, int *stop)
{
    *cut_step = c->announced;
    *stop = c->announced_stop;
}

int ps_zmq_cut(PsZmq *c, uint64_t step, int *stop)
{
    *stop = 0;
    if (c->shut)
        return psrec_errf(PSREC_E_STATE, "CUT after ps_zmq_shutdown");
    uint32_t flags = 0;
    const uint32_t sent = c->want | c->shard_want;
    int rc = control(c, WIRE_OP_CUT, step, c->S, NULL, &flags);
    c->cut_flags = rc ? 0 : flags;
    if (!rc) {
        *stop = (flags & WIRE_FLAG_STOP) != 0;
        c->want &= ~sent;
        c->shard_want &= ~sent;
    }
    return rc;
}

void ps_zmq_set_stopping(PsZmq *c)
{
    c->stopping = 1;
}

uint32_t ps_zmq_cut_flags(const PsZmq *c)
{
    return c->cut_flags;
}

uint64_t ps_zmq_lost_mask(const PsZmq *c)
{
    return c->lost_mask;
}
