/* A server shard's event loop: one ROUTER socket, one thread, one Shard (no locks on
 * parameters). It answers every request of proto/ps.proto exactly once and enforces the
 * consistency model (BSP / SSP with bound s / ASP) from the workers' clocks; the decisions
 * are server/gates.h's (ServerConsistency is defined there), the I/O is the loop's.
 *
 * Lifecycle: server_loop_new (binds) -> server_loop_run (until every worker said SHUTDOWN,
 * or server_loop_stop) -> server_loop_free. */
#ifndef PSREC_SERVER_LOOP_H
#define PSREC_SERVER_LOOP_H

#include "common/keys.h"
#include "common/wire.h"
#include "server/gates.h"
#include "server/shard.h"
#include "server/snapshot.h"

#include <stdint.h>
#include <stdio.h>

/* Pulls one worker may have waiting at a gate; the next is refused (ERROR, counted over
 * limit). A PS client never has more sub-requests in flight: PS_ZMQ_MAX_TICKETS (64)
 * requests of at most PS_ZMQ_MAX_CHUNKS (16) chunks per shard. */
#define SERVER_LOOP_WAITING_MAX 1024

typedef struct ServerLoopOptions {
    ShardOptions shard;        /* shape, optimizer, seed; set lazy_dense when shard_count > 1
                                  so the shard holds only the dense rows routed to it */
    uint32_t shard_index;      /* k of shard_count, for logs and stats */
    uint32_t shard_count;
    uint32_t workers;          /* W: worker ranks 0..W-1 */
    ServerConsistency consistency;
    uint32_t staleness;        /* SSP bound s */
    const char *endpoint;      /* to bind, e.g. "tcp://10.0.0.5:*", "inproc://ps0"; copied */
    double stats_interval;     /* seconds between stats lines; <= 0: only one at the end */
    FILE *stats_file;          /* JSON Lines stats sink, borrowed; NULL for none */
    void *zmq_ctx;             /* ZeroMQ context, borrowed (shared, so inproc works) */
    /* Consistent cuts (proto/ps.proto "Cuts"; the README says why they are consistent). */
    uint64_t start_clock;      /* a resumed job: every worker has finished this many steps */
    double cut_every_seconds;  /* shard 0: announce a cut this often (0: never) */
    SnapWriteFn snap_fn;       /* writes a cut's image on the checkpoint thread; NULL: cuts
                                  are taken and answered but nothing is written (tests) */
    void *snap_ctx;            /* borrowed by snap_fn until server_loop_free */
    int final_image;           /* 1: when every worker is done (none failed, no stopping cut),
                                  write one more image with final = 1 */
    double heartbeat_timeout;  /* a live worker silent this long (no message at all, its
                                  heartbeat actor's included) is declared dead: dropped from
                                  the gates and fenced (its requests get PSREC_E_FENCED).
                                  With takeover, the survivors take over its samples at a
                                  cut the shard announces (REPLAN); else the job ends. 0:
                                  never */
    int takeover;              /* 1: survivors take over a dead worker (a one-shard job: its
                                  last committed step is this shard's alone to know) */
    uint64_t max_message_bytes; /* ps.max_message_bytes: a message above it (all frames) is
                                  refused, one frame above it is dropped by ZeroMQ with its
                                  connection (ZMQ_MAXMSGSIZE: never even allocated); 0:
                                  WIRE_DEFAULT_MAX_BYTES */
    uint64_t max_keys_per_request; /* ps.max_keys_per_request; 0: WIRE_DEFAULT_MAX_KEYS */
    /* ps.max_rows_per_table is shard.max_rows. Every refusal for a limit gets an ERROR reply
     * and is counted (WireStats.over_limit, bad_messages). */
    Shard *initial;            /* a resumed shard to serve (ownership moves to the loop, also
                                  on error); NULL: a fresh one from `shard` */
    /* Security (server/guard.h). curve_secret NULL: no authentication (ps.security = none).
     * Else the socket is a CURVE server with this Z85 secret key and only the curve_nclients
     * worker public keys in curve_clients may open a session. Both are read only during
     * server_loop_new, so the caller wipes its copy right after. */
    const char *curve_secret;
    const char (*curve_clients)[KEYS_Z85_SIZE];
    uint32_t curve_nclients;
} ServerLoopOptions;

typedef struct ServerLoop ServerLoop;

/* Create the shard and bind a ROUTER socket to opts->endpoint.
 * Returns 0 and *out, PSREC_E_RANGE (workers 0, shard_index >= shard_count, bad
 * consistency, missing endpoint or context), PSREC_E_NOMEM, a shard_new error, or a ZeroMQ
 * errno (bind failed); detail in psrec_errmsg(). The loop may then be run on another thread
 * (pthread_create hands the socket over with the memory barrier ZeroMQ asks for). */
int server_loop_new(const ServerLoopOptions *opts, ServerLoop **out);

/* The endpoint actually bound (wildcard port resolved), e.g. "tcp://10.0.0.5:41234"; for a
 * bind to every interface (address "*") it reads 0.0.0.0, so publish a routable address
 * instead. Owned by the loop, valid until server_loop_free. */
const char *server_loop_endpoint(const ServerLoop *l);

/* Serve requests until every worker has sent SHUTDOWN or server_loop_stop was called (seen
 * within 100 ms). Pulls still waiting for the consistency gate then get an ERROR reply; the
 * final stats line is written; the socket's linger becomes 1 s so the last replies reach
 * their peers when the loop is freed. Bad messages never end the loop.
 * Returns 0, a ZeroMQ errno (ETERM: context terminated) or PSREC_E_NOMEM (a BSP update could
 * not be applied). Call once, on one thread. */
int server_loop_run(ServerLoop *l);

/* Run server_loop_run on a thread of its own (every signal blocked there, so signals reach
 * the caller's threads). The one way psrec starts a shard loop on a thread.
 * Returns 0 or a pthread errno (with detail). */
int server_loop_start(ServerLoop *l);

/* 1 once the thread started by server_loop_start has returned from server_loop_run. Safe
 * from any thread. */
int server_loop_done(const ServerLoop *l);

/* Wait for that thread, at most timeout_s seconds (< 0: no limit). Returns 0 and *rc =
 * server_loop_run's result, or ETIMEDOUT (the loop still runs: server_loop_stop, then join
 * again). Joining a loop that was never started returns 0 with *rc = 0. */
int server_loop_join(ServerLoop *l, double timeout_s, int *rc);

/* Ask a running (or about to run) loop to return. The only call that may be made from
 * another thread while server_loop_run runs. */
void server_loop_stop(ServerLoop *l);

/* Ask for a cut soon (stop = 0) or a stopping cut (stop = 1, preemption): shard 0 announces
 * one itself, other shards ask shard 0 through the workers. Safe from any thread and from
 * the caller of a signal handler's flag (not from the handler itself). */
void server_loop_request_cut(ServerLoop *l, int stop);

/* Wait until the checkpoint thread wrote everything handed to it. Not while running. */
void server_loop_flush(ServerLoop *l);

/* The checkpoint thread's results (also while running). */
void server_loop_snap_status(ServerLoop *l, SnapStatus *out);

/* 1 once the loop took a stopping cut (the job is being preempted). Only while not running. */
int server_loop_stopped(const ServerLoop *l);

/* Worker w's latest position (the opaque bytes its CLOCK, CUT or SHUTDOWN carried) into buf
 * (at least SNAP_CUT_MAX bytes); returns its length, 0 when none arrived. Not while running. */
uint32_t server_loop_position(const ServerLoop *l, uint32_t w, void *buf);

/* The largest step count any worker has clocked. Not while running. */
uint64_t server_loop_fastest(const ServerLoop *l);

/* Workers declared dead by heartbeat timeout: fills up to n ranks into out, returns how many
 * there are. Only while not running. */
uint32_t server_loop_lost(const ServerLoop *l, uint32_t *out, uint32_t n);

/* Counters so far. Only while the loop is not running (before or after server_loop_run). */
void server_loop_stats(const ServerLoop *l, WireStats *out);

/* Connections refused so far (no key, a key not of this job, garbage; server/guard.h).
 * Only while the loop is not running. */
uint64_t server_loop_refused(const ServerLoop *l);

/* Another thread learnt (over MPI) that worker `worker` failed: the loop stops waiting for it
 * and, since the job is ending, refuses every further request except SHUTDOWN, so the other
 * workers fail fast instead of waiting at a gate. Safe from any thread. */
void server_loop_worker_failed(ServerLoop *l, uint32_t worker);

/* 1 once the job is failing here: a worker failed, or one died that nobody could take over.
 * Safe from any thread. */
int server_loop_failed(const ServerLoop *l);

/* The loop's shard (for saving a checkpoint once the loop has ended); borrowed, lives as
 * long as the loop. Only while not running. */
Shard *server_loop_shard(ServerLoop *l);

/* Finish the checkpoint being written (a cut that was copied is never dropped), close the
 * socket, free the shard and everything else; *l = NULL. Not while running. */
void server_loop_free(ServerLoop **l);

#endif
