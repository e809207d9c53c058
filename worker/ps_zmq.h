/* The ZeroMQ PsClient: a worker's connection to S remote server shards (server/loop.h), one
 * DEALER socket per shard, speaking proto/ps.proto through common/wire.h.
 *
 * A pull or push is split by keyrange_owner into one part per shard that owns some of its
 * keys, and each part into chunks of about chunk_bytes (sub-requests, each an ordinary
 * request); all are sent at once and the call returns a ticket. ps_wait(ticket) receives
 * replies from every shard until that ticket's sub-requests are all answered, applying the
 * replies of other outstanding tickets that arrive meanwhile (pull rows are scattered into
 * their own output buffers at once), so tickets may be waited in any order.
 *
 * Bounded state: at most PS_ZMQ_MAX_TICKETS requests outstanding (clock, stats, heartbeat
 * and shutdown take one while they wait); any request beyond that fails with PSREC_E_STATE.
 * Every ticket must be waited exactly once; a wait that fails (error reply, timeout) still
 * ends the ticket.
 * Thread rules: one thread uses a PsZmq (its sockets are ZeroMQ sockets). */
#ifndef PSREC_WORKER_PS_ZMQ_H
#define PSREC_WORKER_PS_ZMQ_H

#include "common/keys.h"
#include "common/params.h"
#include "common/wire.h"
#include "worker/ps_client.h"

#include <stdint.h>

#define PS_ZMQ_MAX_TICKETS 64 /* outstanding requests per client */
#define PS_ZMQ_MAX_CHUNKS 16  /* sub-requests a request sends one shard, at most */
#define PS_ZMQ_CHUNK_BYTES ((size_t)1 << 20) /* default PsZmqOptions.chunk_bytes */

typedef struct PsZmqOptions {
    void *zmq_ctx;                 /* borrowed */
    const char *const *endpoints;  /* (shards) shard endpoints, e.g. "tcp://10.0.0.5:40123";
                                      copied */
    uint32_t shards;
    uint32_t worker_rank, workers; /* this worker's index, W */
    ParamShape shape;              /* for widths / limits */
    double timeout;                /* seconds without any reply while waiting -> error naming
                                      the shard's index */
    const int *shard_mpi_ranks;    /* (shards) MPI rank of each shard, for error messages;
                                      NULL = use the index */
    const struct Heartbeat *heartbeat; /* the worker's heartbeat actor, or NULL. When set, a
                                      wait fails only when a shard it waits for has not
                                      answered heartbeats for dead_after seconds (dead or
                                      stalled), never merely because replies take long (a
                                      consistency gate may hold a pull for any time); and
                                      with PSREC_E_FENCED once a shard declared this worker
                                      dead. When NULL, `timeout` applies as described. */
    double dead_after;             /* seconds (with heartbeat) */
    uint64_t max_message_bytes;    /* ps.max_message_bytes (requests this big are refused
                                      before sending, larger replies are not taken); 0:
                                      WIRE_DEFAULT_MAX_BYTES */
    uint64_t max_keys_per_request; /* ps.max_keys_per_request; 0: WIRE_DEFAULT_MAX_KEYS */
    uint32_t wire_dtype;           /* WireDtype of pulled rows and pushed gradients on the
                                      wire (0 = WIRE_DTYPE_F32). bf16: the shards round pulled
                                      rows to nearest even; pushed gradients are rounded here
                                      with error feedback (worker/efeed.h). The caller's
                                      buffers are f32 either way. */
    const KeysClient *curve;       /* this worker's CURVE keys and the shards' public keys;
                                      NULL = no security. Read only during ps_zmq_new */
    size_t chunk_bytes;            /* a pull or push sends each shard its part in chunks of
                                      about this many bytes of values (at most
                                      PS_ZMQ_MAX_CHUNKS chunks, so larger parts get larger
                                      chunks), each a request of its own: the copies and the
                                      encryption at both ends then overlap along the way
                                      instead of waiting for the whole. 0: PS_ZMQ_CHUNK_BYTES */
} PsZmqOptions;

typedef struct PsZmq PsZmq;

/* Create a client and connect one DEALER socket per shard (every socket option set in one
 * place: linger 0, send timeout = opt->timeout, incoming size cap; CURVE keys go there too).
 * Connecting does not wait for the shards: an absent shard shows up as a timeout later.
 * opt: copied (endpoints and ranks too); opt->zmq_ctx is borrowed and must outlive the
 * client. opt->timeout must be > 0: it is also the longest a pull may wait at a shard's
 * consistency gate (BSP/SSP) before the wait fails, so size it above the slowest step.
 * Returns 0 and *out, PSREC_E_RANGE (bad options, unknown wire_dtype), PSREC_E_NOMEM, or a ZeroMQ errno (socket
 * or connect failed; psrec_errmsg() names the shard and endpoint). *out is NULL on error. */
int ps_zmq_new(const PsZmqOptions *opt, PsZmq **out);

/* Fill out->ops / out->impl so that the worker's PsClient calls go to c. c must outlive the
 * PsClient. Through it:
 *   pull/push  return PSREC_E_RANGE (unknown table, key >= the table's rows, NULL buffers,
 *              too large for one message, bf16: a gradient not finite or over bf16's range), PSREC_E_STATE (PS_ZMQ_MAX_TICKETS outstanding,
 *              or after ps_zmq_shutdown), or a send error; else 0 and a ticket (n == 0: a
 *              ticket that is complete at once). Keys and grads are copied before return;
 *              a pull's out is written only during ps_wait calls, until its ticket's wait.
 *   wait       0, the first ERROR reply's code (psrec_errmsg "shard K (rank R): <text>"),
 *              ETIMEDOUT when no reply at all came for opt->timeout seconds ("shard K (rank
 *              R) did not answer for T s"), PSREC_E_STATE for a ticket not outstanding, or a
 *              ZeroMQ errno. The ticket is over either way.
 *   clock(t)   CLOCK t to every shard, waits every ack (after the pushes already sent, on the
 *              same sockets); on success pulls and pushes then carry clock t + 1.
 *   width      floats per row of a table, 0 for an unknown table. */
void ps_zmq_client(PsZmq *c, PsClient *out);

/* Set the clock that the next pulls and pushes carry (a worker resuming at step t sets t).
 * Starts at 0; ps_clock(t) sets it to t + 1. */
void ps_zmq_set_clock(PsZmq *c, uint64_t clock);

/* STATS request to shard (0..shards-1); waits for the reply (other tickets' replies that
 * arrive meanwhile are applied). Returns 0 and *out, PSREC_E_RANGE (no such shard), or an
 * error as ps_wait. */
int ps_zmq_stats(PsZmq *c, uint32_t shard, WireStats *out);

/* HEARTBEAT to every shard; waits all replies. Returns 0 or an error as ps_wait. */
int ps_zmq_heartbeat(PsZmq *c);

/* SHUTDOWN to every shard (this worker is done); waits all acks. After it succeeded, only
 * ps_zmq_bytes and ps_zmq_free may be used (requests fail with PSREC_E_STATE; the shards
 * refuse this worker anyway, and a shard whose workers all said SHUTDOWN ends its loop).
 * Returns 0 or an error as ps_wait (then it may be called again). */
int ps_zmq_shutdown(PsZmq *c);

/* Consistent cuts (proto/ps.proto "Cuts"). */

/* The worker's data position after its last finished step (opaque bytes, at most
 * WIRE_CUT_MAX; longer is ignored): every later CLOCK, CUT and SHUTDOWN carries it. Copied. */
void ps_zmq_set_position(PsZmq *c, const void *cut, size_t len);

/* Ask shard 0 for a cut soon (WIRE_FLAG_WANT_CUT) or a stopping one (WIRE_FLAG_WANT_STOP),
 * e.g. after a signal on this rank: the next CLOCK or CUT carries the request. */
void ps_zmq_request(PsZmq *c, uint32_t flags);

/* Finished steps of the slowest live worker, the smallest any shard reported in its last
 * CLOCK ack (0 before the first ack). The worker's lag is its own finished steps minus this. */
uint64_t ps_zmq_slowest(const PsZmq *c);

/* The largest cut step shard 0 announced so far (0: none) and whether the job stops there. */
void ps_zmq_announced(const PsZmq *c, uint64_t *cut_step, int *stop);

/* This worker has finished `step` steps and pushed nothing since: CUT to every shard, wait
 * for every reply (they come once every live worker has sent its CUT and each shard copied
 * its state). *stop = 1 when the job stops at this cut. Returns 0 or an error as ps_wait. */
int ps_zmq_cut(PsZmq *c, uint64_t step, int *stop);

/* The flags of the last CUT's replies (WIRE_FLAG_STOP, WIRE_FLAG_REPLAN), or'ed. */
uint32_t ps_zmq_cut_flags(const PsZmq *c);

/* Workers 0..63 the shards said they declared dead (bit w). */
uint64_t ps_zmq_lost_mask(const PsZmq *c);

/* This worker stops at a cut (preemption), not because its epochs are done: its SHUTDOWN
 * says so, and the shards then write no end-of-training checkpoint. */
void ps_zmq_set_stopping(PsZmq *c);

/* The bf16 residuals of pushed rows (worker/efeed.h), NULL with wire_dtype f32. Borrowed
 * until ps_zmq_free. */
const struct EFeed *ps_zmq_efeed(const PsZmq *c);

/* Bytes sent and received so far (all frames of every message, as wire_message_size counts
 * them); either pointer may be NULL. */
void ps_zmq_bytes(const PsZmq *c, uint64_t *sent, uint64_t *received);

/* Close the sockets (linger 0: unsent messages are dropped), free everything; *c = NULL.
 * Outstanding tickets are abandoned. NULL or *c NULL: nothing. */
void ps_zmq_free(PsZmq **c);

#endif
