/* A shard's door: who may open a ZeroMQ session with it (issue 9).
 *
 * With CURVE on, the guard is the context's ZAP handler (inproc://zeromq.zap.01, RFC 27): it
 * admits a CURVE client only when its public key is one of this job's workers' keys, and
 * refuses every other mechanism. In both modes it watches the shard socket's handshake
 * failures (a socket monitor): a peer without a key, with a key of another job, with the
 * wrong server key, or sending garbage never gets a session, and each such refusal is counted
 * and logged, at most one line every GUARD_LOG_S seconds.
 *
 * Both sockets are polled by the shard loop's thread (guard_items / guard_serve), so the guard
 * needs no thread or lock of its own. Until the loop polls, handshakes just wait.
 * Limitation: one CURVE shard per ZeroMQ context (a context has one ZAP endpoint). */
#ifndef PSREC_SERVER_GUARD_H
#define PSREC_SERVER_GUARD_H

#include "common/keys.h"

#include <stdint.h>
#include <zmq.h>

#define GUARD_LOG_S 10.0  /* at most one refusal line this often */
#define GUARD_ITEMS 2     /* poll items guard_items fills at most */

typedef struct GuardOptions {
    void *zmq_ctx;           /* borrowed; the shard socket's context */
    void *sock;              /* the shard's ROUTER, not bound yet; borrowed */
    uint32_t shard_index;    /* for logs */
    int curve;               /* 1: be the ZAP handler; 0: only count handshake failures */
    const char (*clients)[KEYS_Z85_SIZE]; /* (nclients) admitted public keys (Z85); copied */
    uint32_t nclients;
} GuardOptions;

typedef struct Guard Guard;

/* Bind the ZAP handler (curve) and start the monitor on o->sock. Call before o->sock binds.
 * Returns 0 and *out, PSREC_E_RANGE (curve without client keys, or a key that is not Z85),
 * PSREC_E_NOMEM, or a ZeroMQ errno with detail (EADDRINUSE: another CURVE shard owns this
 * context's ZAP endpoint). */
int guard_new(const GuardOptions *o, Guard **out);

/* Fill items with the guard's sockets (POLLIN); returns how many (<= GUARD_ITEMS). */
int guard_items(Guard *g, zmq_pollitem_t *items);

/* Handle whatever is readable on the items guard_items filled (their revents set by
 * zmq_poll), without blocking. Never fails: a malformed ZAP request is answered "500" and a
 * malformed event skipped. */
void guard_serve(Guard *g, const zmq_pollitem_t *items, int n);

/* Connections refused so far (all reasons). Only on the polling thread, or after it ended. */
uint64_t guard_refused(const Guard *g);

/* Log the refusals not logged yet (the end of the run). */
void guard_flush_log(Guard *g);

/* Close both sockets (after the shard socket is closed) and free; *g = NULL. */
void guard_free(Guard **g);

#endif
