/* The shard's ZAP handler and handshake-failure counter (see guard.h).
 *
 * Invariants:
 * - With CURVE on, a session opens only for mechanism CURVE and a client public key in the
 *   admitted set; every other ZAP request is answered 400 (or 500 when malformed), so
 *   libzmq drops the peer before any of its messages reaches the shard loop.
 * - Every ZAP request gets exactly one reply (a REP socket stays in step).
 * - Nothing a peer sends can end the guard: frames are read with size checks, and an
 *   unexpected message is drained and ignored. */
#include "server/guard.h"

#include "common/error.h"
#include "common/log.h"
#include "common/timer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_FRAMES_MAX 8   /* RFC 27 request: 6 frames + 1 credential for CURVE */
#define ZAP_FRAME_MAX 256  /* longer frames are cut (only the first bytes matter) */
#define GUARD_EVENTS                                                                           \
    (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |              \
     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

struct Guard {
    uint32_t shard;
    int curve;
    unsigned char (*keys)[KEYS_BIN_LEN]; /* (nkeys) admitted client keys */
    uint32_t nkeys;
    void *zap;          /* REP bound to ZAP_ENDPOINT (curve only) */
    void *mon;          /* PAIR connected to the shard socket's monitor */
    uint64_t refused;   /* handshakes that failed, all reasons */
    uint64_t denied;    /* of which the ZAP handler said no */
    uint64_t unlogged;  /* refusals since the last log line */
    uint64_t unlogged_auth; /* of which authentication (ZAP) refusals */
    double last_log;    /* timer_now() of the last refusal line (< 0: none yet) */
    char why[160];      /* the latest refusal's reason, for the next line */
};

/* One log line for the refusals since the last one, unless one went out GUARD_LOG_S ago. */
static void note(Guard *g, int force)
{
    double t = timer_now();
    if (!g->unlogged || (!force && g->last_log >= 0 && t - g->last_log < GUARD_LOG_S))
        return;
    LOG_WARN("shard %u: refused %" PRIu64 " connection(s): %" PRIu64 " without a valid "
             "handshake (no key, a wrong server key, garbage), %" PRIu64 " with a CURVE key not "
             "of this job; latest: %s; %" PRIu64 " refused in all (only this job's workers may "
             "connect)", g->shard, g->unlogged, g->unlogged - g->unlogged_auth,
             g->unlogged_auth, g->why, g->refused);
    g->unlogged = 0;
    g->unlogged_auth = 0;
    g->last_log = t;
}

/* ---- ZAP (RFC 27) ---------------------------------------------------------------------- */

typedef struct ZapFrame {
    unsigned char b[ZAP_FRAME_MAX];
    size_t n;   /* bytes kept (<= ZAP_FRAME_MAX) */
    size_t len; /* the frame's real length */
} ZapFrame;

/* Read one whole request (every part, even past ZAP_FRAMES_MAX). Returns the frames kept, or
 * -1 when nothing was there. */
static int zap_read(void *s, ZapFrame *f)
{
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, n ? 0 : ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return n ? n : -1;
        }
        more = zmq_msg_more(&m);
        if (n < ZAP_FRAMES_MAX) {
            f[n].len = zmq_msg_size(&m);
            f[n].n = f[n].len < ZAP_FRAME_MAX ? f[n].len : ZAP_FRAME_MAX;
            memcpy(f[n].b, zmq_msg_data(&m), f[n].n);
        }
        n += n < ZAP_FRAMES_MAX;
        zmq_msg_close(&m);
    }
    return n;
}

static int frame_is(const ZapFrame *f, const char *s)
{
    return f->len == strlen(s) && memcmp(f->b, s, f->len) == 0;
}

static void zap_reply(void *s, const ZapFrame *request_id, const char *code, const char *text)
{
    zmq_send(s, "1.0", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, request_id ? request_id->b : NULL, request_id ? request_id->n : 0,
             ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, code, strlen(code), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, text, strlen(text), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(s, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT); /* user id */
    zmq_send(s, "", 0, ZMQ_DONTWAIT);               /* metadata */
}

/* Answer one ZAP request: 200 for a CURVE client holding one of the job's keys. */
static void zap_serve(Guard *g)
{
    ZapFrame f[ZAP_FRAMES_MAX];
    int n = zap_read(g->zap, f);
    if (n < 0)
        return;
    /* version, request id, domain, address, routing id, mechanism, credentials... */
    if (n < 6 || !frame_is(&f[0], "1.0")) {
        zap_reply(g->zap, n >= 2 ? &f[1] : NULL, "500", "malformed ZAP request");
        g->denied++;
        snprintf(g->why, sizeof g->why, "malformed ZAP request");
        return;
    }
    char addr[64];
    snprintf(addr, sizeof addr, "%.*s", (int)(f[3].n < 63 ? f[3].n : 63), (const char *)f[3].b);
    int ok = 0;
    if (frame_is(&f[5], "CURVE") && n >= 7 && f[6].len == KEYS_BIN_LEN)
        for (uint32_t i = 0; i < g->nkeys && !ok; i++)
            ok = memcmp(f[6].b, g->keys[i], KEYS_BIN_LEN) == 0;
    if (ok) {
        zap_reply(g->zap, &f[1], "200", "OK");
        return;
    }
    g->denied++;
    if (frame_is(&f[5], "CURVE"))
        snprintf(g->why, sizeof g->why, "a CURVE key not of this job, from %s", addr);
    else
        snprintf(g->why, sizeof g->why, "mechanism %.*s, from %s",
                 (int)(f[5].n < 16 ? f[5].n : 16), (const char *)f[5].b, addr);
    zap_reply(g->zap, &f[1], "400", "not a worker of this job");
}

/* ---- monitor --------------------------------------------------------------------------- */

/* One event: frame 1 = u16 event + u32 value, frame 2 = the endpoint. */
static void mon_serve(Guard *g)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, g->mon, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return;
    }
    uint16_t ev = 0;
    uint32_t value = 0;
    if (zmq_msg_size(&m) == 6) {
        memcpy(&ev, zmq_msg_data(&m), 2);
        memcpy(&value, (const char *)zmq_msg_data(&m) + 2, 4);
    }
    while (zmq_msg_more(&m)) { /* drain the endpoint frame */
        zmq_msg_close(&m);
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, g->mon, 0) < 0)
            break;
    }
    zmq_msg_close(&m);
    if (!(ev & GUARD_EVENTS))
        return;
    g->refused++;
    g->unlogged++;
    if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        g->unlogged_auth++;
        if (!g->why[0] || g->denied == 0)
            snprintf(g->why, sizeof g->why, "authentication refused (status %u)",
                     (unsigned)value);
    } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        snprintf(g->why, sizeof g->why, "%s handshake failed (protocol error 0x%x)",
                 g->curve ? "CURVE" : "ZeroMQ", (unsigned)value);
    } else {
        snprintf(g->why, sizeof g->why, "handshake failed (%s)", zmq_strerror((int)value));
    }
    note(g, 0);
}

/* ---- lifecycle ------------------------------------------------------------------------- */

int guard_new(const GuardOptions *o, Guard **out)
{
    *out = NULL;
    if (!o->zmq_ctx || !o->sock || (o->curve && (!o->clients || !o->nclients)))
        return psrec_errf(PSREC_E_RANGE, "shard %u: guard: bad options (CURVE %d, %u client "
                          "keys)", o->shard_index, o->curve, o->nclients);
    Guard *g = calloc(1, sizeof *g);
    if (!g)
        return psrec_nomem("shard guard");
    g->shard = o->shard_index;
    g->curve = o->curve;
    g->last_log = -1;
    int rc = 0;
    int zero = 0;
    if (o->curve) {
        if (!(g->keys = calloc(o->nclients, sizeof *g->keys))) {
            rc = psrec_nomem("shard guard: client keys");
            goto fail;
        }
        for (uint32_t i = 0; i < o->nclients; i++)
            if (!keys_decode(o->clients[i], g->keys[i])) {
                rc = psrec_errf(PSREC_E_RANGE, "shard %u: worker %u's public key is not a "
                                "Z85 CURVE key", o->shard_index, i);
                goto fail;
            }
        g->nkeys = o->nclients;
        if (!(g->zap = zmq_socket(o->zmq_ctx, ZMQ_REP)) ||
            zmq_setsockopt(g->zap, ZMQ_LINGER, &zero, sizeof zero) ||
            zmq_bind(g->zap, ZAP_ENDPOINT)) {
            rc = psrec_errf(zmq_errno(), "shard %u: cannot be the ZAP handler (%s): %s%s",
                            o->shard_index, ZAP_ENDPOINT, zmq_strerror(zmq_errno()),
                            zmq_errno() == EADDRINUSE
                                ? " (one CURVE shard per ZeroMQ context)" : "");
            goto fail;
        }
    }
    /* A name never used before in this process: a closed shard socket's monitor endpoint
     * may stay bound a moment after (the socket closes asynchronously). */
    static atomic_uint serial;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://psrec-guard-%u", atomic_fetch_add(&serial, 1));
    if (zmq_socket_monitor(o->sock, ep, GUARD_EVENTS) ||
        !(g->mon = zmq_socket(o->zmq_ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(g->mon, ZMQ_LINGER, &zero, sizeof zero) || zmq_connect(g->mon, ep)) {
        rc = psrec_errf(zmq_errno(), "shard %u: socket monitor: %s", o->shard_index,
                        zmq_strerror(zmq_errno()));
        goto fail;
    }
    *out = g;
    return 0;
fail:
    guard_free(&g);
    return rc;
}

int guard_items(Guard *g, zmq_pollitem_t *items)
{
    int n = 0;
    items[n++] = (zmq_pollitem_t){.socket = g->mon, .events = ZMQ_POLLIN};
    if (g->zap)
        items[n++] = (zmq_pollitem_t){.socket = g->zap, .events = ZMQ_POLLIN};
    return n;
}

void guard_serve(Guard *g, const zmq_pollitem_t *items, int n)
{
    for (int i = 0; i < n; i++) {
        if (!(items[i].revents & ZMQ_POLLIN))
            continue;
        /* Bounded: a flood of handshakes cannot starve the shard's own requests. */
        for (int k = 0; k < 64; k++) {
            int more = 0;
            if (items[i].socket == g->zap)
                zap_serve(g);
            else
                mon_serve(g);
            size_t len = sizeof more;
            if (zmq_getsockopt(items[i].socket, ZMQ_EVENTS, &more, &len) ||
                !(more & ZMQ_POLLIN))
                break;
        }
    }
}

uint64_t guard_refused(const Guard *g)
{
    return g ? g->refused : 0;
}

void guard_flush_log(Guard *g)
{
    if (g)
        note(g, 1);
}

void guard_free(Guard **gp)
{
    Guard *g = *gp;
    if (!g)
        return;
    if (g->zap)
        zmq_close(g->zap);
    if (g->mon)
        zmq_close(g->mon);
    if (g->keys) {
        keys_wipe(g->keys, (size_t)g->nkeys * sizeof *g->keys);
        free(g->keys);
    }
    free(g);
    *gp = NULL;
}
