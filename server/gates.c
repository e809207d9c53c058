/* Consistency gates of a server shard: workers' clocks and liveness, pull readiness, the BSP
 * accumulator and barrier, and the queue of pulls waiting for their gate. No sockets: the
 * loop asks, this module answers (see gates.h for the invariants).
 *
 * The deferred queue is an array in arrival order. gates_take_ready walks it once per call
 * sequence (a "pass"): entries still waiting are compacted to the front ([0, kept)), handed
 * out ones leave a hole ([kept, scan)), [scan, n) is not examined yet. Anything that changes
 * readiness or the queue first settles a pass left half-way (compacts the holes), so every
 * waiting pull is looked at again and the order is kept. One pass is O(n), not O(n^2).
 * Not done here: replies, stats, logging, the cross-thread failure flag (server/loop.c). */
#include "server/gates.h"

#include "common/error.h"
#include "common/rng.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define ACC_EMPTY UINT32_MAX

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
    uint64_t *keys;        /* (keys_cap) acc_apply's scratch, kept for the next clock */
    size_t keys_cap;
} Acc;

struct Gates {
    uint32_t workers;
    ServerConsistency c;
    uint32_t staleness;
    uint32_t width[PARAM_TABLES];

    uint64_t *finished;     /* (W) steps clocked */
    unsigned char *state;   /* (W) GatesWorkerState */
    uint32_t live;
    uint64_t bsp_clock;
    Acc acc;

    GatesPull *q;           /* (cap) deferred pulls, arrival order; see the top comment */
    size_t n, cap, scan, kept;
};

int gates_new(uint32_t workers, ServerConsistency c, uint32_t staleness,
              const uint32_t width[PARAM_TABLES], Gates **out)
{
    *out = NULL;
    if (!workers || c > SERVER_ASP)
        return psrec_errf(PSREC_E_RANGE, "gates: %u workers, consistency %d", workers, (int)c);
    Gates *g = calloc(1, sizeof *g);
    if (!g)
        return psrec_nomem(__func__);
    g->workers = workers;
    g->c = c;
    g->staleness = staleness;
    memcpy(g->width, width, sizeof g->width);
    g->finished = calloc(workers, sizeof *g->finished);
    g->state = calloc(workers, sizeof *g->state);
    if (!g->finished || !g->state) {
        gates_free(&g);
        return psrec_nomem(__func__);
    }
    g->live = workers;
    *out = g;
    return 0;
}

void gates_pull_fini(GatesPull *p)
{
    free(p->keys);
    p->keys = NULL;
}

void gates_free(Gates **gp)
{
    Gates *g = *gp;
    if (!g)
        return;
    for (size_t i = 0; i < g->kept; i++)
        gates_pull_fini(&g->q[i]);
    for (size_t i = g->scan; i < g->n; i++)
        gates_pull_fini(&g->q[i]);
    free(g->q);
    free(g->acc.entries);
    free(g->acc.map);
    free(g->acc.pool);
    free(g->acc.keys);
    free(g->finished);
    free(g->state);
    free(g);
    *gp = NULL;
}

/* Close the holes a pass left half-way, so the queue is [0, n) again. */
static void settle(Gates *g)
{
    if (g->scan > g->kept)
        memmove(g->q + g->kept, g->q + g->scan, (g->n - g->scan) * sizeof *g->q);
    g->n -= g->scan - g->kept;
    g->scan = g->kept = 0;
}

/* ---- clocks and liveness ---------------------------------------------------------------- */

int gates_on_clock(Gates *g, uint32_t worker, uint64_t clock)
{
    if (worker >= g->workers)
        return psrec_errf(PSREC_E_RANGE, "CLOCK from worker %u, this job has %u workers",
                          worker, g->workers);
    if (g->state[worker] != GATES_LIVE)
        return psrec_errf(PSREC_E_STATE, "CLOCK from worker %u, which left", worker);
    uint64_t *fin = &g->finished[worker];
    if (clock < *fin || clock == UINT64_MAX)
        return psrec_errf(PSREC_E_RANGE,
                          "CLOCK %" PRIu64 ": worker %u already finished %" PRIu64 " steps",
                          clock, worker, *fin);
    settle(g);
    *fin = clock + 1;
    return 0;
}

static int leave(Gates *g, uint32_t worker, GatesWorkerState why)
{
    if (worker >= g->workers || g->state[worker] != GATES_LIVE)
        return 0;
    settle(g);
    g->state[worker] = (unsigned char)why;
    g->live--;
    return 1;
}

int gates_on_done(Gates *g, uint32_t worker)
{
    return leave(g, worker, GATES_DONE);
}

int gates_on_failed(Gates *g, uint32_t worker)
{
    return leave(g, worker, GATES_FAILED);
}

GatesWorkerState gates_worker_state(const Gates *g, uint32_t worker)
{
    return worker < g->workers ? (GatesWorkerState)g->state[worker] : GATES_FAILED;
}

uint32_t gates_live(const Gates *g)
{
    return g->live;
}

uint64_t gates_slowest(const Gates *g)
{
    uint64_t m = UINT64_MAX;
    for (uint32_t w = 0; w < g->workers; w++)
        if (g->state[w] == GATES_LIVE && g->finished[w] < m)
            m = g->finished[w];
    return m;
}

uint64_t gates_staleness(const Gates *g, uint64_t clock)
{
    uint64_t s = gates_slowest(g);
    return s != UINT64_MAX && clock > s ? clock - s : 0;
}

int gates_pull_ready(const Gates *g, uint64_t clock)
{
    switch (g->c) {
    case SERVER_ASP:
        return 1;
    case SERVER_SSP: {
        uint64_t s = gates_slowest(g);
        return s == UINT64_MAX || s + g->staleness >= clock;
    }
    case SERVER_BSP:
        return g->bsp_clock >= clock;
    }
    return 1;
}

void gates_start(Gates *g, uint64_t clock)
{
    for (uint32_t w = 0; w < g->workers; w++)
        g->finished[w] = clock;
    g->bsp_clock = g->c == SERVER_BSP ? clock : 0;
}

uint64_t gates_finished(const Gates *g, uint32_t worker)
{
    return worker < g->workers ? g->finished[worker] : 0;
}

uint64_t gates_fastest(const Gates *g)
{
    uint64_t m = 0;
    for (uint32_t w = 0; w < g->workers; w++)
        if (g->finished[w] > m)
            m = g->finished[w];
    return m;
}

uint64_t gates_bsp_clock(const Gates *g)
{
    return g->bsp_clock;
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
            return psrec_nomem(__func__);
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
            return psrec_nomem(__func__);
        a->pool = p;
        a->pool_cap = cap;
    }
    if ((a->n + n) * 2 > a->map_cap) {
        size_t cap = a->map_cap ? a->map_cap : 512;
        while ((a->n + n) * 2 > cap)
            cap *= 2;
        uint32_t *map = malloc(cap * sizeof *map);
        if (!map)
            return psrec_nomem(__func__);
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

/* Hand the summed rows of the current BSP clock to apply as sum / divisor, table by table
 * (rows of a table in arrival order); the sums are dropped either way. The rows go straight
 * from the pool, divided in place (a sum / 1 is the sum: no pass at all then): entries of
 * one table that arrived one after another lie one after another there, so each such run is
 * one apply call, and nothing of the size of a step is allocated or copied per clock. */
static int acc_apply(Gates *g, uint64_t divisor, GatesApplyFn apply, void *ctx)
{
    Acc *a = &g->acc;
    int rc = 0;
    if (!a->n)
        return 0;
    if (a->n > a->keys_cap) {
        uint64_t *k = realloc(a->keys, a->n * sizeof *k);
        if (!k) {
            rc = psrec_errf(PSREC_E_NOMEM, "no memory to apply BSP clock %" PRIu64,
                            g->bsp_clock);
            goto out;
        }
        a->keys = k;
        a->keys_cap = a->n;
    }
    if (divisor != 1)
        for (size_t i = 0; i < a->used; i++)
            a->pool[i] /= (float)divisor;
    for (uint32_t t = 0; t < PARAM_TABLES && !rc; t++) {
        const uint32_t w = g->width[t];
        for (size_t i = 0; i < a->n && !rc;) {
            if (a->entries[i].table != t) {
                i++;
                continue;
            }
            const size_t off = a->entries[i].off;
            size_t n = 0;
            while (i < a->n && a->entries[i].table == t && a->entries[i].off == off + n * w)
                a->keys[n++] = a->entries[i++].key;
            rc = apply(ctx, t, a->keys, n, a->pool + off);
        }
    }
out:
    acc_clear(a);
    return rc;
}

int gates_bsp_accept_push(Gates *g, uint64_t clock, uint32_t table, const uint64_t *keys,
                          size_t n, const float *vals, uint32_t width)
{
    if (g->c != SERVER_BSP)
        return psrec_errf(PSREC_E_STATE, "BSP push to a shard that is not BSP");
    if (clock != g->bsp_clock)
        return psrec_errf(PSREC_E_RANGE,
                          "BSP push of clock %" PRIu64 ", the shard is at clock %" PRIu64,
                          clock, g->bsp_clock);
    if (table >= PARAM_TABLES || width != g->width[table])
        return psrec_errf(PSREC_E_RANGE, "BSP push to table %u with %u floats a row", table,
                          width);
    if (acc_reserve(&g->acc, n, width))
        return psrec_errf(PSREC_E_NOMEM, "shard out of memory for a push");
    for (size_t i = 0; i < n; i++)
        acc_add(&g->acc, table, keys[i], vals + i * width, width);
    return 0;
}

/* Where gates_bsp_advance's loop ends when no pushes are held: the first clock some live
 * worker has not finished, or with no live worker the end of the furthest finisher. */
static uint64_t bsp_target(const Gates *g)
{
    uint64_t live_min = UINT64_MAX, all_max = 0;
    for (uint32_t w = 0; w < g->workers; w++) {
        if (g->state[w] == GATES_LIVE && g->finished[w] < live_min)
            live_min = g->finished[w];
        if (g->finished[w] > all_max)
            all_max = g->finished[w];
    }
    return live_min != UINT64_MAX ? live_min : all_max;
}

int gates_bsp_advance(Gates *g, GatesApplyFn apply, void *ctx)
{
    settle(g);
    while (g->c == SERVER_BSP) {
        uint64_t done = 0;
        for (uint32_t w = 0; w < g->workers; w++) {
            if (g->finished[w] > g->bsp_clock)
                done++;
            else if (g->state[w] == GATES_LIVE)
                return 0;
        }
        if (!done)
            return 0;
        if (!g->acc.n) {
            /* Nothing held: every step up to where the loop above would stop is empty, so
             * go there at once. Stepping one clock at a time would let one CLOCK far ahead
             * (a bug, or a hostile peer) spin the shard's loop for ~forever. */
            g->bsp_clock = bsp_target(g);
            return 0;
        }
        int rc = acc_apply(g, done, apply, ctx);
        if (rc)
            return rc;
        g->bsp_clock++;
    }
    return 0;
}

/* ---- deferred pulls --------------------------------------------------------------------- */

int gates_defer(Gates *g, const void *id, size_t id_len, uint32_t worker, uint32_t table,
                uint64_t clock, uint64_t request_id, uint32_t dtype, const uint64_t *keys,
                uint64_t key_count)
{
    settle(g);
    if (g->n >= GATES_MAX_DEFERRED)
        return psrec_errf(PSREC_E_RANGE, "too many pulls waiting for the consistency gate");
    if (id_len > GATES_ID_MAX)
        return psrec_errf(PSREC_E_RANGE, "routing identity of %zu bytes", id_len);
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 16;
        GatesPull *p = realloc(g->q, cap * sizeof *p);
        if (!p)
            return psrec_errf(PSREC_E_NOMEM, "shard out of memory for a waiting pull");
        g->q = p;
        g->cap = cap;
    }
    GatesPull *d = &g->q[g->n];
    size_t kb = (size_t)key_count * sizeof *d->keys;
    d->keys = malloc(kb ? kb : 1);
    if (!d->keys)
        return psrec_errf(PSREC_E_NOMEM, "shard out of memory for a waiting pull");
    if (kb)
        memcpy(d->keys, keys, kb);
    if (id_len)
        memcpy(d->id, id, id_len);
    d->id_len = id_len;
    d->worker = worker;
    d->table = table;
    d->clock = clock;
    d->request_id = request_id;
    d->dtype = dtype;
    d->key_count = key_count;
    g->n++;
    return 0;
}

/* One step of a pass: hand out the next entry that may go (all: any), keep the others. */
static int take(Gates *g, int all, GatesPull *out)
{
    if (all && g->kept)
        settle(g);
    while (g->scan < g->n) {
        GatesPull *p = &g->q[g->scan++];
        if (all || gates_pull_ready(g, p->clock)) {
            *out = *p;
            return 1;
        }
        g->q[g->kept++] = *p;
    }
    g->n = g->kept;
    g->scan = g->kept = 0;
    return 0;
}

int gates_take_ready(Gates *g, GatesPull *out)
{
    return take(g, 0, out);
}

int gates_take_all(Gates *g, GatesPull *out)
{
    return take(g, 1, out);
}

size_t gates_waiting(const Gates *g)
{
    return g->kept + g->n - g->scan;
}
