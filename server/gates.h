/* A server shard's consistency gates, without sockets: the workers' clocks and liveness, when
 * a pull may be answered (BSP / SSP with bound s / ASP), the BSP accumulator and barrier, and
 * the queue of pulls waiting for their gate. It decides; the caller (server/loop.c) does the
 * I/O: it sends the replies these calls say are due.
 *
 * Invariants:
 * - finished(w) = steps worker w has clocked; it only grows (a CLOCK below it is refused).
 * - A worker that is done (SHUTDOWN) or failed is no longer live: no gate or barrier waits
 *   for it any more, and it never becomes live again.
 * - BSP: bsp_clock = clocks applied. Pushes of clock bsp_clock are summed per (table, key);
 *   clock t is applied once every live worker has finished it, each summed row exactly once,
 *   as sum / (workers that finished step t: W unless some left before finishing it).
 * - Every deferred pull is handed back exactly once: by gates_take_ready when its gate opens,
 *   or by gates_take_all at the end; always in arrival order.
 * Not thread-safe: one Gates, one thread (the loop's). Does not include zmq.h. */
#ifndef PSREC_SERVER_GATES_H
#define PSREC_SERVER_GATES_H

#include "common/params.h"

#include <stddef.h>
#include <stdint.h>

typedef enum ServerConsistency {
    SERVER_BSP, /* pushes of clock t summed per row, applied once every live worker has
                   clocked t, as sum / (workers that finished step t: W unless some left) */
    SERVER_SSP, /* pushes applied at once; pull at clock t waits for slowest >= t - s */
    SERVER_ASP, /* pushes applied at once; pulls answered at once */
} ServerConsistency;

#define GATES_ID_MAX 256           /* routing identity bytes kept per deferred pull */
#define GATES_MAX_DEFERRED (1u << 16)

typedef enum GatesWorkerState {
    GATES_LIVE,
    GATES_DONE,   /* said SHUTDOWN */
    GATES_FAILED, /* reported failed */
} GatesWorkerState;

/* A pull waiting for its gate: what is needed to answer it later. */
typedef struct GatesPull {
    unsigned char id[GATES_ID_MAX]; /* the requester's routing identity (id_len bytes) */
    size_t id_len;
    uint32_t worker;
    uint32_t table;
    uint64_t clock;
    uint64_t request_id;
    uint64_t key_count;
    uint32_t dtype;                 /* WireDtype the reply's rows go out in */
    uint64_t *keys;                 /* (key_count) owned; release with gates_pull_fini */
} GatesPull;

typedef struct Gates Gates;

/* Called by gates_bsp_advance for the rows of the clock being applied, table by table (one
 * call per run of a table's rows that arrived together; a table's rows in arrival order):
 * grads (n, width of table) are the summed rows already divided by the divisor; keys and
 * grads are borrowed for the call. Return 0, or an error that stops the advance. */
typedef int (*GatesApplyFn)(void *ctx, uint32_t table, const uint64_t *keys, size_t n,
                            const float *grads);

/* Gates for `workers` workers (ranks 0..W-1, all live, none has clocked), consistency c with
 * SSP bound `staleness`, and width[t] = floats per row of table t (copied).
 * Returns 0 and *out, PSREC_E_RANGE (workers 0, unknown consistency) or PSREC_E_NOMEM. */
int gates_new(uint32_t workers, ServerConsistency c, uint32_t staleness,
              const uint32_t width[PARAM_TABLES], Gates **out);

/* Free everything, deferred pulls' keys included; *g = NULL. */
void gates_free(Gates **g);

/* Worker `worker` finished step `clock` (so it has finished clock + 1 steps).
 * Returns 0, PSREC_E_RANGE (unknown worker; clock below what it already finished, i.e. a
 * clock going backwards; clock UINT64_MAX) or PSREC_E_STATE (worker no longer live), with
 * detail; nothing changes on a refusal. Call gates_bsp_advance and gates_take_ready after. */
int gates_on_clock(Gates *g, uint32_t worker, uint64_t clock);

/* Worker `worker` said SHUTDOWN / was reported failed: it leaves the gates. Returns 1 when it
 * was live until now, 0 otherwise (unknown, already gone: nothing changes). Call
 * gates_bsp_advance and gates_take_ready after. */
int gates_on_done(Gates *g, uint32_t worker);
int gates_on_failed(Gates *g, uint32_t worker);

/* State of a worker; an unknown rank reads GATES_FAILED (never live). */
GatesWorkerState gates_worker_state(const Gates *g, uint32_t worker);

/* Live workers. */
uint32_t gates_live(const Gates *g);

/* Smallest finished count over live workers; UINT64_MAX when none is live. */
uint64_t gates_slowest(const Gates *g);

/* How far a pull at `clock` is ahead of the slowest live worker (clock - slowest), 0 when it
 * is not ahead or none is live. The input of the max_staleness stat. */
uint64_t gates_staleness(const Gates *g, uint64_t clock);

/* 1 when a pull at `clock` may be answered now: ASP always; SSP when no worker is live or
 * slowest + staleness >= clock; BSP when bsp_clock >= clock. */
int gates_pull_ready(const Gates *g, uint64_t clock);

/* A resumed job: every worker has finished `clock` steps, and (BSP) `clock` clocks are
 * applied. Call before anything else. */
void gates_start(Gates *g, uint64_t clock);

/* Steps worker `worker` has clocked (0 for an unknown rank). */
uint64_t gates_finished(const Gates *g, uint32_t worker);

/* Largest finished count over every worker, live or not. */
uint64_t gates_fastest(const Gates *g);

/* Clocks applied so far (BSP); 0 for SSP and ASP. */
uint64_t gates_bsp_clock(const Gates *g);

/* BSP: sum a push of clock `clock` (n rows of `width` floats, keys and vals borrowed for the
 * call) into the current clock's accumulator. All memory is reserved before the first row is
 * added, so a refused push adds nothing.
 * Returns 0, PSREC_E_STATE (not BSP), PSREC_E_RANGE (clock != bsp_clock, unknown table, width
 * not the table's) or PSREC_E_NOMEM, with detail. */
int gates_bsp_accept_push(Gates *g, uint64_t clock, uint32_t table, const uint64_t *keys,
                          size_t n, const float *vals, uint32_t width);

/* BSP: apply every clock all live workers have finished: for each, call apply(ctx, ...) once
 * per table with rows (in table order), then advance bsp_clock. A clock nobody finished (all
 * left) is not applied. Does nothing for SSP and ASP.
 * Returns 0, PSREC_E_NOMEM (with detail) or apply's error; on an error the current clock's
 * sums are dropped and bsp_clock stays (the caller is expected to end). */
int gates_bsp_advance(Gates *g, GatesApplyFn apply, void *ctx);

/* Queue a pull whose gate is closed. id (id_len <= GATES_ID_MAX bytes) and keys (key_count)
 * are copied; dtype is kept for the reply. Returns 0, PSREC_E_RANGE (GATES_MAX_DEFERRED waiting already, id too long) or
 * PSREC_E_NOMEM, with detail; nothing is queued on an error. */
int gates_defer(Gates *g, const void *id, size_t id_len, uint32_t worker, uint32_t table,
                uint64_t clock, uint64_t request_id, uint32_t dtype, const uint64_t *keys,
                uint64_t key_count);

/* Hand out the next waiting pull (in arrival order) whose gate is open now: returns 1 and
 * fills *out (the caller owns out->keys: gates_pull_fini), or 0 when there is none left.
 * Call until it returns 0 after the clocks or liveness changed; stopping early is allowed
 * (the rest stay queued). */
int gates_take_ready(Gates *g, GatesPull *out);

/* Hand out the next waiting pull whatever its gate (arrival order): 1 and *out, or 0 when
 * the queue is empty. For the end of the loop (each gets an ERROR). */
int gates_take_all(Gates *g, GatesPull *out);

/* Pulls waiting now. */
size_t gates_waiting(const Gates *g);

/* Free p->keys (NULL afterwards). Idempotent. */
void gates_pull_fini(GatesPull *p);

#endif
