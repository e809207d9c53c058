/* A worker's heartbeat actor: a thread of its own with its own DEALER socket per shard, that
 * sends HEARTBEAT to every shard every `interval` seconds and notes when each last answered.
 *
 * Why a thread and sockets of its own: the trainer thread computes for long stretches (a
 * forward/backward, an evaluation) and waits at consistency gates; liveness must flow through
 * both, so a shard never mistakes a busy worker for a dead one, and a worker never mistakes
 * waiting at a gate for a dead shard. A paused process (SIGSTOP, a swapping node) stops this
 * thread too, which is the point: then it is silent, and declared dead.
 *
 * The PS client asks heartbeat_silence(k) while it waits for shard k: a shard silent for the
 * heartbeat timeout is dead or stalled, whatever else the client is waiting for.
 * A shard that declared this worker dead answers its heartbeats with a fencing error;
 * heartbeat_fenced() then says so, and the worker must exit without sending anything more.
 *
 * Threads: start/stop from the owner thread; silence/fenced from any thread. The actor owns
 * its sockets; the owner talks to it over an inproc pipe (to stop it). */
#ifndef PSREC_WORKER_HEARTBEAT_H
#define PSREC_WORKER_HEARTBEAT_H

#include "common/keys.h"
#include "common/params.h"

#include <stdint.h>

typedef struct HeartbeatOptions {
    void *zmq_ctx;                /* borrowed; outlives the actor */
    const char *const *endpoints; /* (shards) copied */
    uint32_t shards;
    uint32_t worker_rank;
    double interval;              /* seconds between heartbeats, > 0 */
    ParamShape shape;             /* wire limits of replies */
    const KeysClient *curve;      /* CURVE keys (as the data sockets'); NULL = no security.
                                     Read only during heartbeat_start */
} HeartbeatOptions;

typedef struct Heartbeat Heartbeat;

/* Connect and start the actor (every signal blocked in it). Returns 0, PSREC_E_RANGE (bad
 * options), PSREC_E_NOMEM, or a ZeroMQ / pthread errno with detail. */
int heartbeat_start(const HeartbeatOptions *o, Heartbeat **out);

/* Seconds since shard k last answered a heartbeat (since the start while it never did). */
double heartbeat_silence(const Heartbeat *hb, uint32_t k);

/* 1 once a shard answered with a fencing error (this worker was declared dead). */
int heartbeat_fenced(const Heartbeat *hb);

/* 1 once a shard answered that the job is ending (a worker failed or was declared dead):
 * whatever this worker waits for outside the PS (an MPI exchange) will not come. */
int heartbeat_job_ending(const Heartbeat *hb);

/* Workers 0..63 a shard said it declared dead (bit w). */
uint64_t heartbeat_lost_mask(const Heartbeat *hb);

/* Stop the actor, close its sockets (linger 0), free; *hb = NULL. NULL is fine. */
void heartbeat_stop(Heartbeat **hb);

#endif
