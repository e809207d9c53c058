/* Streaming reader (see reader.h): one prefetch thread reads the worker's partition through
 * LMDB in a per-epoch keyed order and fills batch buffers ahead of the consumer.
 *
 * Hand-over: nslots = D+1 buffers used round robin. Queue entries are numbered; entry k lives
 * in slot k % nslots. The thread has published `produced` entries, the consumer has taken
 * `taken` and given back `released` (released <= taken <= produced, taken - released <= 1:
 * the borrowed batch). The thread may fill entry `produced` only while
 * produced - released < nslots, so it never writes a slot the consumer can see. An entry is
 * either a batch or an end-of-epoch marker (never borrowed: given back as it is taken).
 * produced, released, stop, error and stats are guarded by mu; taken, holding and pos belong
 * to the consumer. Slot contents are written by the thread before it publishes (under mu) and
 * read by the consumer after it takes (under mu), so the lock orders them.
 *
 * Memory: per slot, fixed arrays for B samples plus a negatives array whose capacity is
 * B * max_nneg (the largest negative count read so far). A slot is grown only when it is
 * about to be filled and is below that, or when a sample raises max_nneg mid-batch. So no
 * per-sample allocation happens, and none at all once every sample has been seen and each
 * slot has been filled once more.
 *
 * Plans: an epoch with a part in the reader's plan reads this rank's share of the part's
 * concatenated segments; sample c of the concatenation is V[v] for the base layout, found by
 * two binary searches (the segment, then the base rank owning v: O(log nseg + log W)), and
 * the base rank's permutation is re-keyed only when the owner changes. The reader keeps its
 * own copy of the plan (one block), read-only, so both threads use it without the lock.
 *
 * Cuts and plans travel as explicit little-endian bytes with magic, version, size and a
 * CRC-32, so a truncated or garbled record is refused rather than trained on.
 *
 * Not done here: negative sampling, news lookups, dedup (the trainer's job), and the
 * evaluation split of impressions (which only shares reader_partition). */
#include "worker/reader.h"

#include "common/ckpt.h"
#include "common/error.h"
#include "common/rng.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Slot {
    ReaderBatch batch;      /* views of the arrays below, set when filled */
    int end_of_epoch;       /* a marker for the end of batch.epoch, not a batch */
    uint64_t *index;        /* (B) */
    uint64_t *impression;   /* (B) */
    uint32_t *user;         /* (B) */
    uint32_t *pos;          /* (B) */
    uint32_t *nhis;         /* (B) */
    uint32_t *his;          /* (B, his_len) */
    uint32_t *neg_off;      /* (B+1) */
    uint32_t *neg;          /* (neg_cap) */
    size_t neg_cap;         /* u32 entries */
} Slot;

struct Reader {
    /* Fixed after reader_new. */
    uint32_t batch_size;
    uint32_t nslots;
    uint32_t his_len;
    uint32_t rank;
    uint32_t world;
    int interleave;
    uint64_t seed;
    uint64_t total;         /* samples in the dataset */
    uint64_t begin;         /* range partition: samples [begin, begin + count) */
    uint64_t count;         /* samples of this rank per epoch */
    ReaderPosition start;
    ReaderPlan *plan;       /* own copy of ReaderOptions.plan, or NULL; read-only */
    Slot *slots;            /* (nslots) */

    /* The prefetch thread's own. */
    DatasetTxn *txn;
    uint32_t max_nneg;

    /* Shared, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t can_fill; /* the thread waits: a slot came back, or stop */
    pthread_cond_t can_take; /* the consumer waits: an entry was published, or an error */
    uint64_t produced;
    uint64_t released;
    int stop;
    int error;
    char errmsg[1024];
    ReaderStats stats;

    /* The consumer's own. */
    uint64_t taken;
    int holding;
    ReaderPosition pos;

    pthread_t thread;
    int thread_started;
    int sync_ready;          /* mu and the conds are initialised */
};

/* ------------------------------------------------------------------ partition, permutation */

void reader_partition(uint64_t n, uint32_t rank, uint32_t world, uint64_t *begin, uint64_t *end)
{
    /* floor(n*r/W) = q*r + floor(rem*r/W) with n = q*W + rem; rem*r < W^2 < 2^64. */
    uint64_t q = n / world, rem = n % world;
    *begin = q * rank + rem * rank / world;
    *end = q * (rank + 1) + rem * (rank + 1) / world;
}

static uint64_t low_mask(unsigned bits)
{
    return bits >= 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
}

uint64_t reader_partition_size(uint64_t n, uint32_t rank, uint32_t world, int interleave)
{
    if (interleave)
        return n > rank ? (n - rank + world - 1) / world : 0;
    uint64_t b, e;
    reader_partition(n, rank, world, &b, &e);
    return e - b;
}

void reader_perm_init(ReaderPerm *p, uint64_t n, uint64_t seed, uint64_t epoch, uint32_t rank)
{
    unsigned k = 0;
    while (k < 64 && ((uint64_t)1 << k) < n)
        k++;
    p->n = n;
    p->lo_bits = k / 2;
    p->hi_bits = k - k / 2;
    uint64_t base = rng_mix64(rng_mix64(rng_mix64(seed) ^ epoch) ^ rank);
    for (int r = 0; r < READER_PERM_ROUNDS; r++)
        p->keys[r] = rng_mix64(base + (uint64_t)r);
}

/* One pass of the Feistel network over [0, 2^(hi_bits+lo_bits)): each round XORs one half
 * with a keyed hash of the other, which is invertible whatever the halves' widths. */
static uint64_t feistel(const ReaderPerm *p, uint64_t x)
{
    uint64_t lo_mask = low_mask(p->lo_bits), hi_mask = low_mask(p->hi_bits);
    uint64_t lo = x & lo_mask, hi = x >> p->lo_bits;
    for (int r = 0; r < READER_PERM_ROUNDS; r++) {
        if (r & 1)
            lo ^= rng_mix64(hi ^ p->keys[r]) & lo_mask;
        else
            hi ^= rng_mix64(lo ^ p->keys[r]) & hi_mask;
    }
    return hi << p->lo_bits | lo;
}

uint64_t reader_perm_at(const ReaderPerm *p, uint64_t i)
{
    if (i >= p->n)
        return i;
    /* Cycle-walking: the domain is < 2n, so this takes under 2 passes on average, and it
     * ends because i's cycle under the network returns to i, which is in range. */
    uint64_t x = i;
    do
        x = feistel(p, x);
    while (x >= p->n);
    return x;
}

size_t reader_buffer_bytes(uint32_t batch_size, uint32_t his_len, uint32_t max_nneg)
{
    /* index, impression (u64); user, pos, nhis, neg_off (u32): 8 words a sample. */
    return 4 * (size_t)batch_size * ((size_t)his_len + max_nneg + 8) + 4;
}

/* ------------------------------------------------------------------ layouts and epoch orders */

/* First index of rank's run in the canonical order V of layout (world, interleave): the
 * samples the ranks before it get per epoch. */
static uint64_t layout_start(uint64_t n, uint32_t rank, uint32_t world, int interleave)
{
    if (interleave) {
        /* The first n % W ranks get q+1 samples, the others q. */
        uint64_t q = n / world, m = n % world;
        return q * rank + (rank < m ? rank : m);
    }
    uint64_t b, e;
    reader_partition(n, rank, world, &b, &e);
    return b;
}

/* The rank whose run of V holds v < n: the largest rank starting at or before v (empty runs
 * start where the next one does, so they are never chosen). */
static uint32_t layout_owner(uint64_t n, uint32_t world, int interleave, uint64_t v)
{
    uint32_t lo = 0, hi = world - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (layout_start(n, mid, world, interleave) <= v)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Segment of part holding concatenation index c < part->remaining. */
static uint32_t part_locate(const ReaderPlanPart *part, uint64_t c)
{
    uint32_t lo = 0, hi = part->nseg - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (part->before[mid] <= c)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

const ReaderPlanPart *reader_plan_part(const ReaderPlan *p, uint64_t epoch)
{
    if (!p)
        return NULL;
    uint32_t lo = 0, hi = p->nparts;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (p->parts[mid].epoch < epoch)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->nparts && p->parts[lo].epoch == epoch ? &p->parts[lo] : NULL;
}

void reader_start_position(const ReaderPlan *plan, uint64_t seed, uint32_t rank, uint32_t world,
                           int interleave, ReaderPosition *out)
{
    uint64_t epoch = plan ? plan->epoch : 0;
    *out = (ReaderPosition){.seed = seed,
                           .epoch = epoch,
                           .rank = rank,
                           .world = world,
                           .interleave = (uint32_t)(interleave != 0),
                           .planned = reader_plan_part(plan, epoch) != NULL};
}

uint64_t reader_plan_share(const ReaderPlanPart *part, uint32_t rank, uint32_t world)
{
    uint64_t b, e;
    reader_partition(part->remaining, rank, world, &b, &e);
    return e - b;
}

/* How this reader walks one epoch: its own partition, or its share of a plan part. */
typedef struct EpochOrder {
    uint64_t epoch;
    uint64_t count;             /* samples of this rank in the epoch */
    const ReaderPlanPart *part; /* NULL: the normal layout */
    uint64_t first;             /* plan: concatenation index of the share's first sample */
    ReaderPerm perm;            /* normal: this rank's; plan: of perm_rank (or all, interleaved) */
    uint32_t perm_rank;         /* plan over a range layout: base rank perm is keyed for */
} EpochOrder;

static void order_init(const Reader *r, EpochOrder *o, uint64_t epoch)
{
    memset(o, 0, sizeof *o);
    o->epoch = epoch;
    o->part = reader_plan_part(r->plan, epoch);
    o->perm_rank = UINT32_MAX; /* no rank: ranks are < world <= UINT32_MAX */
    if (o->part) {
        uint64_t end;
        reader_partition(o->part->remaining, r->rank, r->world, &o->first, &end);
        o->count = end - o->first;
        if (o->part->base_interleave)
            reader_perm_init(&o->perm, r->total, r->seed, epoch, 0);
        return;
    }
    o->count = r->count;
    /* Interleaved ranks share one permutation of all samples; ranges each permute their own
     * range. */
    if (r->interleave)
        reader_perm_init(&o->perm, r->total, r->seed, epoch, 0);
    else
        reader_perm_init(&o->perm, r->count, r->seed, epoch, r->rank);
}

/* Dataset index of the i-th sample (i < o->count) of this rank in o's epoch. */
static uint64_t order_at(const Reader *r, EpochOrder *o, uint64_t i)
{
    if (!o->part)
        return r->interleave ? reader_perm_at(&o->perm, r->rank + i * (uint64_t)r->world)
                             : r->begin + reader_perm_at(&o->perm, i);
    const ReaderPlanPart *pt = o->part;
    uint64_t c = o->first + i;
    uint32_t j = part_locate(pt, c);
    uint64_t v = pt->segments[j].begin + (c - pt->before[j]);
    /* v is V's index: the (v - start)-th sample of base rank b, as that rank read it. */
    int il = pt->base_interleave != 0;
    uint32_t b = layout_owner(r->total, pt->base_world, il, v);
    uint64_t start = layout_start(r->total, b, pt->base_world, il);
    if (il)
        return reader_perm_at(&o->perm, b + (v - start) * (uint64_t)pt->base_world);
    if (o->perm_rank != b) {
        reader_perm_init(&o->perm, reader_partition_size(r->total, b, pt->base_world, 0),
                         r->seed, o->epoch, b);
        o->perm_rank = b;
    }
    return start + reader_perm_at(&o->perm, v - start);
}

/* ------------------------------------------------------------------ prefetch thread */

/* Give slot s room for B * max_nneg negatives. Called by the thread only. */
static int slot_grow(Reader *r, Slot *s)
{
    size_t want = (size_t)r->batch_size * r->max_nneg;
    if (want <= s->neg_cap)
        return 0;
    uint32_t *nb = want <= SIZE_MAX / 4 ? realloc(s->neg, want * 4) : NULL;
    if (!nb)
        return psrec_errf(PSREC_E_NOMEM,
                          "reader: out of memory for a batch's negatives (%u samples x %u)",
                          r->batch_size, r->max_nneg);
    pthread_mutex_lock(&r->mu);
    r->stats.buffer_bytes += (want - s->neg_cap) * 4;
    r->stats.grow_events++;
    r->stats.max_nneg = r->max_nneg;
    pthread_mutex_unlock(&r->mu);
    s->neg = nb;
    s->neg_cap = want;
    return 0;
}

/* Copy samples off..off+n-1 of the epoch's order into s. */
static int slot_fill(Reader *r, Slot *s, EpochOrder *order, uint64_t off, uint32_t n)
{
    uint64_t epoch = order->epoch;
    int rc = slot_grow(r, s);
    if (rc)
        return rc;
    size_t total = 0;
    s->neg_off[0] = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t idx = order_at(r, order, off + i);
        SampleView v;
        if ((rc = dataset_get_sample(r->txn, idx, &v)))
            return rc;
        if (v.nneg > r->max_nneg) {
            r->max_nneg = v.nneg;
            if ((rc = slot_grow(r, s)))
                return rc;
        }
        if (total + v.nneg > UINT32_MAX)
            return psrec_errf(PSREC_E_RANGE, "reader: a batch of %u samples has over 2^32 "
                              "negatives (sample %llu)", r->batch_size, (unsigned long long)idx);
        s->index[i] = idx;
        s->impression[i] = v.impression;
        s->user[i] = v.user;
        s->pos[i] = v.pos;
        /* nhis <= his_len: dataset_get_sample rejects longer histories as damaged. */
        s->nhis[i] = v.nhis;
        uint32_t *row = s->his + (size_t)i * r->his_len;
        if (v.nhis)
            memcpy(row, v.his, (size_t)v.nhis * 4);
        for (uint32_t j = v.nhis; j < r->his_len; j++)
            row[j] = DATASET_PAD_NEWS;
        if (v.nneg)
            memcpy(s->neg + total, v.neg, (size_t)v.nneg * 4);
        total += v.nneg;
        s->neg_off[i + 1] = (uint32_t)total;
    }
    s->end_of_epoch = 0;
    s->batch = (ReaderBatch){
        .epoch = epoch,
        .offset = off,
        .n = n,
        .his_len = r->his_len,
        .index = s->index,
        .impression = s->impression,
        .user = s->user,
        .pos = s->pos,
        .nhis = s->nhis,
        .his = s->his,
        .neg_off = s->neg_off,
        .neg = s->neg,
    };
    return 0;
}

/* Wait for the slot of the next entry; NULL when asked to stop. */
static Slot *wait_slot(Reader *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->stop && r->produced - r->released >= r->nslots)
        pthread_cond_wait(&r->can_fill, &r->mu);
    Slot *s = r->stop ? NULL : &r->slots[r->produced % r->nslots];
    pthread_mutex_unlock(&r->mu);
    return s;
}

static void publish(Reader *r)
{
    pthread_mutex_lock(&r->mu);
    r->produced++;
    pthread_cond_signal(&r->can_take);
    pthread_mutex_unlock(&r->mu);
}

static void *prefetch_main(void *arg)
{
    Reader *r = arg;
    uint64_t epoch = r->start.epoch, off = r->start.offset;
    int rc = 0;
    psrec_errclear();
    for (;;) {
        EpochOrder order;
        order_init(r, &order, epoch);
        while (off < order.count) {
            Slot *s = wait_slot(r);
            if (!s)
                return NULL;
            uint64_t left = order.count - off;
            uint32_t n = left < r->batch_size ? (uint32_t)left : r->batch_size;
            if ((rc = slot_fill(r, s, &order, off, n)))
                goto fail;
            publish(r);
            off += n;
        }
        Slot *s = wait_slot(r);
        if (!s)
            return NULL;
        s->end_of_epoch = 1;
        s->batch.epoch = epoch;
        s->batch.n = 0;
        publish(r);
        epoch++;
        off = 0;
    }
fail:
    /* psrec_errmsg() is thread-local: hand a copy to the consumer. */
    pthread_mutex_lock(&r->mu);
    r->error = rc;
    const char *msg = psrec_errmsg();
    snprintf(r->errmsg, sizeof r->errmsg, "%s", *msg ? msg : psrec_strerror(rc));
    pthread_cond_signal(&r->can_take);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ------------------------------------------------------------------ public */

static int check_options(const Dataset *ds, const ReaderOptions *o, uint32_t depth)
{
    if (o->batch_size == 0)
        return psrec_errf(PSREC_E_RANGE, "reader: batch size must be at least 1");
    if (o->world == 0 || o->rank >= o->world)
        return psrec_errf(PSREC_E_RANGE, "reader: rank %u is not in 0..world-1 (world %u)",
                          o->rank, o->world);
    if (depth > READER_MAX_DEPTH)
        return psrec_errf(PSREC_E_RANGE, "reader: prefetch depth %u is over %u", depth,
                          READER_MAX_DEPTH);
    const uint64_t nsamples = dataset_meta(ds)->samples;
    const ReaderPlan *plan = o->plan;
    if (plan && (plan->seed != o->seed || plan->samples != nsamples))
        return psrec_errf(PSREC_E_RANGE,
                          "reader: the plan is for seed %llu and %llu samples, the reader is "
                          "seed %llu over %llu samples",
                          (unsigned long long)plan->seed, (unsigned long long)plan->samples,
                          (unsigned long long)o->seed, (unsigned long long)nsamples);
    const ReaderPosition *p = o->start;
    if (p) {
        if (p->seed != o->seed || p->rank != o->rank || p->world != o->world ||
            p->interleave != (uint32_t)(o->interleave != 0))
            return psrec_errf(PSREC_E_RANGE,
                              "reader: saved position is for seed %llu rank %u of %u (%s), "
                              "the reader is seed %llu rank %u of %u (%s)",
                              (unsigned long long)p->seed, p->rank, p->world,
                              p->interleave ? "interleaved" : "ranges",
                              (unsigned long long)o->seed, o->rank, o->world,
                              o->interleave ? "interleaved" : "ranges");
        const ReaderPlanPart *part = reader_plan_part(plan, p->epoch);
        if (p->planned != (part != NULL))
            return psrec_errf(PSREC_E_RANGE,
                              "reader: saved position in epoch %llu is %s a plan share, but "
                              "the reader's plan %s that epoch",
                              (unsigned long long)p->epoch, p->planned ? "within" : "outside",
                              part ? "covers" : "does not cover");
        if (plan && p->epoch < plan->epoch)
            return psrec_errf(PSREC_E_RANGE,
                              "reader: saved position in epoch %llu is before the plan's "
                              "first epoch %llu",
                              (unsigned long long)p->epoch, (unsigned long long)plan->epoch);
        uint64_t size = part ? reader_plan_share(part, o->rank, o->world)
                             : reader_partition_size(nsamples, o->rank, o->world, o->interleave);
        if (p->offset > size)
            return psrec_errf(PSREC_E_RANGE,
                              "reader: saved offset %llu is past the %s's %llu samples",
                              (unsigned long long)p->offset, part ? "plan share" : "partition",
                              (unsigned long long)size);
    }
    if ((size_t)o->batch_size > SIZE_MAX / 64 / ((size_t)dataset_meta(ds)->his_len + 8))
        return psrec_errf(PSREC_E_RANGE, "reader: batch size %u is too large", o->batch_size);
    return 0;
}

static int slots_alloc(Reader *r)
{
    size_t b = r->batch_size;
    r->slots = calloc(r->nslots, sizeof *r->slots);
    if (!r->slots)
        return PSREC_E_NOMEM;
    for (uint32_t i = 0; i < r->nslots; i++) {
        Slot *s = &r->slots[i];
        s->index = malloc(b * sizeof *s->index);
        s->impression = malloc(b * sizeof *s->impression);
        s->user = malloc(b * 4);
        s->pos = malloc(b * 4);
        s->nhis = malloc(b * 4);
        s->his = r->his_len ? malloc(b * r->his_len * 4) : NULL;
        s->neg_off = malloc((b + 1) * 4);
        if (!s->index || !s->impression || !s->user || !s->pos || !s->nhis ||
            (!s->his && r->his_len) || !s->neg_off)
            return PSREC_E_NOMEM;
    }
    r->stats.buffer_bytes = r->nslots * reader_buffer_bytes(r->batch_size, r->his_len, 0);
    return 0;
}

int reader_new(Dataset *ds, const ReaderOptions *opt, Reader **out)
{
    *out = NULL;
    uint32_t depth = opt->prefetch_depth ? opt->prefetch_depth : READER_DEFAULT_DEPTH;
    int rc = check_options(ds, opt, depth);
    if (rc)
        return rc;
    Reader *r = calloc(1, sizeof *r);
    if (!r)
        return psrec_errf(PSREC_E_NOMEM, "reader: out of memory");
    const DatasetMeta *m = dataset_meta(ds);
    r->batch_size = opt->batch_size;
    r->nslots = depth + 1;
    r->his_len = m->his_len;
    r->rank = opt->rank;
    r->world = opt->world;
    r->interleave = opt->interleave != 0;
    r->seed = opt->seed;
    r->total = m->samples;
    uint64_t end;
    reader_partition(m->samples, opt->rank, opt->world, &r->begin, &end);
    r->count = reader_partition_size(m->samples, opt->rank, opt->world, r->interleave);
    if ((rc = reader_plan_dup(opt->plan, &r->plan))) {
        psrec_errf(rc, "reader: out of memory for the plan");
        goto fail;
    }
    if (opt->start)
        r->start = *opt->start;
    else
        reader_start_position(r->plan, opt->seed, opt->rank, opt->world, r->interleave,
                              &r->start);
    r->pos = r->start;

    if ((rc = slots_alloc(r))) {
        psrec_errf(rc, "reader: out of memory for %u batch buffers of %u samples", r->nslots,
                   r->batch_size);
        goto fail;
    }
    if ((rc = dataset_txn_new(ds, &r->txn)))
        goto fail;
    if ((rc = pthread_mutex_init(&r->mu, NULL)))
        goto sync_fail;
    if ((rc = pthread_cond_init(&r->can_fill, NULL))) {
        pthread_mutex_destroy(&r->mu);
        goto sync_fail;
    }
    if ((rc = pthread_cond_init(&r->can_take, NULL))) {
        pthread_cond_destroy(&r->can_fill);
        pthread_mutex_destroy(&r->mu);
        goto sync_fail;
    }
    r->sync_ready = 1;

    /* The thread inherits a full signal mask: signals go to the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&r->thread, NULL, prefetch_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        psrec_errf(rc, "reader: cannot start the prefetch thread: %s", strerror(rc));
        goto fail;
    }
    r->thread_started = 1;
    *out = r;
    return 0;
sync_fail:
    psrec_errf(rc, "reader: cannot create a lock: %s", strerror(rc));
fail:
    reader_free(&r);
    return rc;
}

int reader_next(Reader *r, const ReaderBatch **batch)
{
    *batch = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->holding) {
        r->holding = 0;
        r->released++;
        pthread_cond_signal(&r->can_fill);
    }
    while (r->taken == r->produced && !r->error)
        pthread_cond_wait(&r->can_take, &r->mu);
    if (r->taken == r->produced) {
        int rc = psrec_errf(r->error, "%s", r->errmsg);
        pthread_mutex_unlock(&r->mu);
        return rc;
    }
    Slot *s = &r->slots[r->taken++ % r->nslots];
    if (s->end_of_epoch) {
        r->released++;
        pthread_cond_signal(&r->can_fill);
        r->pos.epoch = s->batch.epoch + 1;
        r->pos.offset = 0;
    } else {
        r->holding = 1;
        r->stats.batches++;
        r->pos.epoch = s->batch.epoch;
        r->pos.offset = s->batch.offset + s->batch.n;
        *batch = &s->batch;
    }
    r->pos.planned = reader_plan_part(r->plan, r->pos.epoch) != NULL;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

void reader_position(const Reader *r, ReaderPosition *pos)
{
    /* pos is written only by reader_next, in the same (consumer) thread. */
    *pos = r->pos;
}

void reader_stats(Reader *r, ReaderStats *st)
{
    pthread_mutex_lock(&r->mu);
    *st = r->stats;
    pthread_mutex_unlock(&r->mu);
}

void reader_free(Reader **rp)
{
    Reader *r = rp ? *rp : NULL;
    if (!r)
        return;
    if (r->thread_started) {
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_cond_signal(&r->can_fill);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    if (r->sync_ready) {
        pthread_cond_destroy(&r->can_take);
        pthread_cond_destroy(&r->can_fill);
        pthread_mutex_destroy(&r->mu);
    }
    dataset_txn_free(&r->txn);
    for (uint32_t i = 0; r->slots && i < r->nslots; i++) {
        Slot *s = &r->slots[i];
        free(s->index);
        free(s->impression);
        free(s->user);
        free(s->pos);
        free(s->nhis);
        free(s->his);
        free(s->neg_off);
        free(s->neg);
    }
    free(r->slots);
    reader_plan_free(&r->plan);
    free(r);
    *rp = NULL;
}

/* ------------------------------------------------------------------ bytes */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* ------------------------------------------------------------------ worker cuts */

int workercut_encode(const WorkerCut *c, void *buf, size_t cap, size_t *len)
{
    *len = WORKERCUT_BYTES;
    const ReaderPosition *p = &c->pos;
    if (p->world == 0 || p->rank >= p->world || p->interleave > 1 || p->planned > 1)
        return psrec_errf(PSREC_E_RANGE, "worker cut: rank %u of %u, mode %u, planned %u is "
                          "not a position", p->rank, p->world, p->interleave, p->planned);
    if (!buf || cap < WORKERCUT_BYTES)
        return psrec_errf(PSREC_E_RANGE, "worker cut: %zu bytes of room, need %u", cap,
                          WORKERCUT_BYTES);
    unsigned char *b = buf;
    put32(b + 0, WORKERCUT_MAGIC);
    put32(b + 4, WORKERCUT_VERSION);
    put32(b + 8, WORKERCUT_BYTES);
    put32(b + 12, p->rank);
    put32(b + 16, p->world);
    put32(b + 20, p->interleave);
    put32(b + 24, p->planned);
    put32(b + 28, 0);
    put64(b + 32, p->seed);
    put64(b + 40, p->epoch);
    put64(b + 48, p->offset);
    put64(b + 56, c->steps);
    put64(b + 64, c->samples);
    put32(b + 72, 0);
    put32(b + 76, ckpt_crc32(0, b, 76));
    return 0;
}

int workercut_decode(const void *buf, size_t len, WorkerCut *c)
{
    const unsigned char *b = buf;
    if (len < 12 || get32(b) != WORKERCUT_MAGIC)
        return psrec_errf(PSREC_E_FORMAT, "worker cut: %zu bytes without its magic", len);
    if (get32(b + 4) != WORKERCUT_VERSION)
        return psrec_errf(PSREC_E_FORMAT, "worker cut: version %u, this build reads %u",
                          get32(b + 4), WORKERCUT_VERSION);
    if (get32(b + 8) != WORKERCUT_BYTES || len != WORKERCUT_BYTES)
        return psrec_errf(PSREC_E_FORMAT, "worker cut: %zu bytes, its size field says %u, "
                          "version %u has %u", len, get32(b + 8), WORKERCUT_VERSION,
                          WORKERCUT_BYTES);
    if (get32(b + 76) != ckpt_crc32(0, b, 76))
        return psrec_errf(PSREC_E_FORMAT, "worker cut: CRC mismatch (damaged bytes)");
    WorkerCut w = {.pos = {.rank = get32(b + 12),
                           .world = get32(b + 16),
                           .interleave = get32(b + 20),
                           .planned = get32(b + 24),
                           .seed = get64(b + 32),
                           .epoch = get64(b + 40),
                           .offset = get64(b + 48)},
                   .steps = get64(b + 56),
                   .samples = get64(b + 64)};
    if (w.pos.world == 0 || w.pos.rank >= w.pos.world || w.pos.interleave > 1 ||
        w.pos.planned > 1 || get32(b + 28) || get32(b + 72))
        return psrec_errf(PSREC_E_FORMAT, "worker cut: rank %u of %u, mode %u, planned %u "
                          "is not a position", w.pos.rank, w.pos.world, w.pos.interleave,
                          w.pos.planned);
    *c = w;
    return 0;
}

/* ------------------------------------------------------------------ plans */

static size_t align8(size_t x)
{
    return (x + 7) & ~(size_t)7;
}

/* One block: the plan, its parts, every segment, every `before`. The parts' pointers are set
 * by the caller (plan_seal). Sizes are bounded by the callers (a decoded length, or counts
 * of a build), so the sums here do not overflow. */
static ReaderPlan *plan_alloc(uint32_t nparts, size_t nseg, ReaderPlanPart **parts,
                              ReaderSegment **seg, uint64_t **before)
{
    size_t o_parts = align8(sizeof(ReaderPlan));
    size_t o_seg = align8(o_parts + (size_t)nparts * sizeof(ReaderPlanPart));
    size_t o_before = o_seg + nseg * sizeof(ReaderSegment);
    unsigned char *m = calloc(1, o_before + nseg * sizeof(uint64_t));
    if (!m)
        return NULL;
    ReaderPlan *p = (ReaderPlan *)m;
    *parts = (ReaderPlanPart *)(m + o_parts);
    *seg = (ReaderSegment *)(m + o_seg);
    *before = (uint64_t *)(m + o_before);
    p->nparts = nparts;
    p->parts = *parts;
    return p;
}

/* Point every part at its run of seg/before (parts[k].nseg set, runs in part order) and fill
 * before and remaining. */
static void plan_seal(ReaderPlanPart *parts, uint32_t nparts, ReaderSegment *seg,
                      uint64_t *before)
{
    for (uint32_t k = 0; k < nparts; k++) {
        uint64_t sum = 0;
        for (uint32_t j = 0; j < parts[k].nseg; j++) {
            before[j] = sum;
            sum += seg[j].end - seg[j].begin;
        }
        parts[k].segments = seg;
        parts[k].before = before;
        parts[k].remaining = sum;
        seg += parts[k].nseg;
        before += parts[k].nseg;
    }
}

static size_t plan_nseg(const ReaderPlan *p)
{
    size_t n = 0;
    for (uint32_t k = 0; k < p->nparts; k++)
        n += p->parts[k].nseg;
    return n;
}

int reader_plan_dup(const ReaderPlan *p, ReaderPlan **out)
{
    *out = NULL;
    if (!p)
        return 0;
    ReaderPlanPart *parts;
    ReaderSegment *seg;
    uint64_t *before;
    size_t nseg = plan_nseg(p);
    ReaderPlan *q = plan_alloc(p->nparts, nseg, &parts, &seg, &before);
    if (!q)
        return PSREC_E_NOMEM;
    q->seed = p->seed;
    q->samples = p->samples;
    q->epoch = p->epoch;
    ReaderSegment *w = seg;
    for (uint32_t k = 0; k < p->nparts; k++) {
        parts[k] = p->parts[k];
        if (parts[k].nseg)
            memcpy(w, p->parts[k].segments, parts[k].nseg * sizeof *w);
        w += parts[k].nseg;
    }
    plan_seal(parts, p->nparts, seg, before);
    *out = q;
    return 0;
}

void reader_plan_free(ReaderPlan **p)
{
    if (!p)
        return;
    free(*p);
    *p = NULL;
}

int reader_plan_needed(uint32_t world, int interleave, uint32_t new_world, int new_interleave)
{
    return world != new_world || (interleave != 0) != (new_interleave != 0);
}

/* Segments being collected in V order; adjacent ones merge. seg NULL: only count. */
typedef struct SegOut {
    ReaderSegment *seg;
    uint32_t n;
    uint64_t total;
    uint64_t last_end;
} SegOut;

static void seg_emit(SegOut *o, uint64_t a, uint64_t b)
{
    if (a >= b)
        return;
    o->total += b - a;
    if (o->n && o->last_end == a) {
        if (o->seg)
            o->seg[o->n - 1].end = b;
    } else {
        if (o->seg)
            o->seg[o->n] = (ReaderSegment){a, b};
        o->n++;
    }
    o->last_end = b;
}

/* Emit the V segments under concatenation indices [c0, c1) of part. */
static void part_emit(const ReaderPlanPart *part, uint64_t c0, uint64_t c1, SegOut *o)
{
    if (c0 >= c1)
        return;
    for (uint32_t j = part_locate(part, c0); j < part->nseg && part->before[j] < c1; j++) {
        const ReaderSegment *sg = &part->segments[j];
        uint64_t lo = part->before[j], hi = lo + (sg->end - sg->begin);
        uint64_t a = c0 > lo ? c0 : lo, b = c1 < hi ? c1 : hi;
        seg_emit(o, sg->begin + (a - lo), sg->begin + (b - lo));
    }
}

/* The untrained samples of epoch e after the cut pos[0..world) (validated), as segments of
 * V: of part's base when the workers followed part in e, else of the workers' own layout. */
static void epoch_remainder(uint64_t n, const ReaderPosition *pos, uint32_t world,
                            const ReaderPlanPart *part, uint64_t e, SegOut *o)
{
    int il = pos[0].interleave != 0;
    for (uint32_t r = 0; r < world; r++) {
        uint64_t b, end;
        if (part) {
            reader_partition(part->remaining, r, world, &b, &end);
        } else {
            b = layout_start(n, r, world, il);
            end = b + reader_partition_size(n, r, world, il);
        }
        uint64_t from = pos[r].epoch < e ? b : pos[r].epoch > e ? end : b + pos[r].offset;
        if (part)
            part_emit(part, from, end, o);
        else
            seg_emit(o, from, end);
    }
}

static int check_cut(uint64_t n, const ReaderPosition *pos, uint32_t world,
                     const ReaderPlan *current)
{
    if (world == 0)
        return psrec_errf(PSREC_E_RANGE, "reader plan: a cut of 0 workers");
    if (current && current->samples != n)
        return psrec_errf(PSREC_E_RANGE, "reader plan: the current plan is for %llu samples, "
                          "the dataset has %llu", (unsigned long long)current->samples,
                          (unsigned long long)n);
    for (uint32_t r = 0; r < world; r++) {
        const ReaderPosition *p = &pos[r];
        if (p->rank != r || p->world != world || p->seed != pos[0].seed ||
            p->interleave != pos[0].interleave || p->interleave > 1 || p->planned > 1)
            return psrec_errf(PSREC_E_RANGE,
                              "reader plan: position %u of %u is rank %u of %u, seed %llu, "
                              "mode %u (position 0: seed %llu, mode %u)", r, world, p->rank,
                              p->world, (unsigned long long)p->seed, p->interleave,
                              (unsigned long long)pos[0].seed, pos[0].interleave);
        if (current && (p->seed != current->seed || p->epoch < current->epoch))
            return psrec_errf(PSREC_E_RANGE,
                              "reader plan: rank %u (seed %llu, epoch %llu) does not follow the "
                              "current plan (seed %llu, from epoch %llu)", r,
                              (unsigned long long)p->seed, (unsigned long long)p->epoch,
                              (unsigned long long)current->seed,
                              (unsigned long long)current->epoch);
        const ReaderPlanPart *part = reader_plan_part(current, p->epoch);
        if (p->planned != (part != NULL))
            return psrec_errf(PSREC_E_RANGE,
                              "reader plan: rank %u in epoch %llu is %s a plan share, but the "
                              "current plan %s that epoch", r, (unsigned long long)p->epoch,
                              p->planned ? "within" : "outside",
                              part ? "covers" : "does not cover");
        uint64_t size = part ? reader_plan_share(part, r, world)
                             : reader_partition_size(n, r, world, (int)p->interleave);
        if (p->offset > size)
            return psrec_errf(PSREC_E_RANGE,
                              "reader plan: rank %u offset %llu is past its %llu samples of "
                              "epoch %llu", r, (unsigned long long)p->offset,
                              (unsigned long long)size, (unsigned long long)p->epoch);
    }
    return 0;
}

int reader_plan_build(uint64_t n, const ReaderPosition *pos, uint32_t world,
                      const ReaderPlan *current, ReaderPlan **out)
{
    *out = NULL;
    int rc = check_cut(n, pos, world, current);
    if (rc)
        return rc;
    uint64_t emin = pos[0].epoch, emax = pos[0].epoch;
    for (uint32_t r = 1; r < world; r++) {
        emin = pos[r].epoch < emin ? pos[r].epoch : emin;
        emax = pos[r].epoch > emax ? pos[r].epoch : emax;
    }
    /* Plan epochs nobody reached still have their remainder to give. */
    if (current && current->nparts && current->parts[current->nparts - 1].epoch > emax)
        emax = current->parts[current->nparts - 1].epoch;
    if (emax - emin >= READER_PLAN_MAX_SPAN)
        return psrec_errf(PSREC_E_RANGE, "reader plan: the cut spans epochs %llu..%llu, over "
                          "%u", (unsigned long long)emin, (unsigned long long)emax,
                          READER_PLAN_MAX_SPAN);

    /* Pass 1 counts, pass 2 fills the block sized by pass 1. An epoch whose remainder is
     * every sample is left out: the normal layout of the new workers covers it. */
    uint32_t nparts = 0;
    size_t nseg = 0;
    for (uint64_t e = emin; e <= emax; e++) {
        SegOut o = {0};
        epoch_remainder(n, pos, world, reader_plan_part(current, e), e, &o);
        if (o.total < n) {
            nparts++;
            nseg += o.n;
        }
    }
    ReaderPlanPart *parts;
    ReaderSegment *seg;
    uint64_t *before;
    ReaderPlan *p = plan_alloc(nparts, nseg, &parts, &seg, &before);
    if (!p)
        return psrec_errf(PSREC_E_NOMEM, "reader plan: out of memory for %u epochs, %zu "
                          "segments", nparts, nseg);
    p->seed = pos[0].seed;
    p->samples = n;
    p->epoch = emin;
    uint32_t k = 0;
    ReaderSegment *w = seg;
    for (uint64_t e = emin; e <= emax; e++) {
        const ReaderPlanPart *cur = reader_plan_part(current, e);
        SegOut o = {0};
        epoch_remainder(n, pos, world, cur, e, &o);
        if (o.total == n)
            continue; /* as in pass 1: counted first, its segments have no room */
        o = (SegOut){.seg = w};
        epoch_remainder(n, pos, world, cur, e, &o);
        parts[k].epoch = e;
        parts[k].base_world = cur ? cur->base_world : world;
        parts[k].base_interleave = cur ? cur->base_interleave : pos[0].interleave;
        parts[k].nseg = o.n;
        w += o.n;
        k++;
    }
    plan_seal(parts, nparts, seg, before);
    *out = p;
    return 0;
}

enum { PLAN_HEADER = 48, PLAN_PART = 24, PLAN_SEG = 16, PLAN_TRAILER = 4 };

size_t reader_plan_encoded_size(const ReaderPlan *p)
{
    return PLAN_HEADER + (size_t)p->nparts * PLAN_PART + plan_nseg(p) * PLAN_SEG +
           PLAN_TRAILER;
}

int reader_plan_encode(const ReaderPlan *p, void *buf, size_t cap, size_t *len)
{
    size_t size = reader_plan_encoded_size(p);
    *len = size;
    if (!buf || cap < size)
        return psrec_errf(PSREC_E_RANGE, "reader plan: %zu bytes of room, need %zu", cap,
                          size);
    unsigned char *b = buf;
    put32(b + 0, READER_PLAN_MAGIC);
    put32(b + 4, READER_PLAN_VERSION);
    put32(b + 8, PLAN_HEADER);
    put32(b + 12, p->nparts);
    put64(b + 16, p->seed);
    put64(b + 24, p->samples);
    put64(b + 32, p->epoch);
    put64(b + 40, size);
    unsigned char *q = b + PLAN_HEADER;
    for (uint32_t k = 0; k < p->nparts; k++, q += PLAN_PART) {
        const ReaderPlanPart *pt = &p->parts[k];
        put64(q, pt->epoch);
        put32(q + 8, pt->base_world);
        put32(q + 12, pt->base_interleave);
        put32(q + 16, pt->nseg);
        put32(q + 20, 0);
    }
    for (uint32_t k = 0; k < p->nparts; k++)
        for (uint32_t j = 0; j < p->parts[k].nseg; j++, q += PLAN_SEG) {
            put64(q, p->parts[k].segments[j].begin);
            put64(q + 8, p->parts[k].segments[j].end);
        }
    put32(q, ckpt_crc32(0, b, size - PLAN_TRAILER));
    return 0;
}

int reader_plan_decode(const void *buf, size_t len, ReaderPlan **out)
{
    *out = NULL;
    const unsigned char *b = buf;
    if (len < PLAN_HEADER + PLAN_TRAILER || get32(b) != READER_PLAN_MAGIC)
        return psrec_errf(PSREC_E_FORMAT, "reader plan: %zu bytes without its magic", len);
    if (get32(b + 4) != READER_PLAN_VERSION || get32(b + 8) != PLAN_HEADER)
        return psrec_errf(PSREC_E_FORMAT, "reader plan: version %u (header %u bytes), this "
                          "build reads %u", get32(b + 4), get32(b + 8), READER_PLAN_VERSION);
    if (get64(b + 40) != len)
        return psrec_errf(PSREC_E_FORMAT, "reader plan: %zu bytes, its size field says %llu",
                          len, (unsigned long long)get64(b + 40));
    if (get32(b + len - PLAN_TRAILER) != ckpt_crc32(0, b, len - PLAN_TRAILER))
        return psrec_errf(PSREC_E_FORMAT, "reader plan: CRC mismatch (damaged bytes)");
    uint32_t nparts = get32(b + 12);
    size_t body = len - PLAN_HEADER - PLAN_TRAILER;
    if (nparts > body / PLAN_PART)
        return psrec_errf(PSREC_E_FORMAT, "reader plan: %u epochs do not fit in %zu bytes",
                          nparts, len);
    size_t segbytes = body - (size_t)nparts * PLAN_PART, nseg = 0;
    for (uint32_t k = 0; k < nparts; k++)
        nseg += get32(b + PLAN_HEADER + (size_t)k * PLAN_PART + 16); /* < 2^32 * 2^32 */
    if (segbytes % PLAN_SEG || nseg != segbytes / PLAN_SEG)
        return psrec_errf(PSREC_E_FORMAT, "reader plan: %zu segments do not match %zu bytes",
                          nseg, len);
    ReaderPlanPart *parts;
    ReaderSegment *seg;
    uint64_t *before;
    ReaderPlan *p = plan_alloc(nparts, nseg, &parts, &seg, &before);
    if (!p)
        return psrec_errf(PSREC_E_NOMEM, "reader plan: out of memory for %zu segments", nseg);
    p->seed = get64(b + 16);
    p->samples = get64(b + 24);
    p->epoch = get64(b + 32);
    const unsigned char *q = b + PLAN_HEADER;
    int rc = 0;
    for (uint32_t k = 0; k < nparts; k++, q += PLAN_PART) {
        parts[k].epoch = get64(q);
        parts[k].base_world = get32(q + 8);
        parts[k].base_interleave = get32(q + 12);
        parts[k].nseg = get32(q + 16);
        if (parts[k].epoch < (k ? parts[k - 1].epoch + 1 : p->epoch) ||
            (k && parts[k - 1].epoch == UINT64_MAX) || parts[k].base_world == 0 ||
            parts[k].base_interleave > 1 || get32(q + 20)) {
            rc = psrec_errf(PSREC_E_FORMAT, "reader plan: part %u (epoch %llu, world %u, mode "
                            "%u) is out of order or not a layout", k,
                            (unsigned long long)parts[k].epoch, parts[k].base_world,
                            parts[k].base_interleave);
            goto out;
        }
    }
    ReaderSegment *w = seg;
    for (uint32_t k = 0; k < nparts; k++) {
        for (uint32_t j = 0; j < parts[k].nseg; j++, w++, q += PLAN_SEG) {
            w->begin = get64(q);
            w->end = get64(q + 8);
            /* Increasing and apart: merged, so a part's segments are disjoint and their
             * total is at most N. */
            if (w->begin >= w->end || w->end > p->samples || (j && w->begin <= w[-1].end)) {
                rc = psrec_errf(PSREC_E_FORMAT, "reader plan: segment %u of epoch %llu "
                                "[%llu, %llu) is empty, past %llu samples, or not after the "
                                "one before", j, (unsigned long long)parts[k].epoch,
                                (unsigned long long)w->begin, (unsigned long long)w->end,
                                (unsigned long long)p->samples);
                goto out;
            }
        }
    }
    plan_seal(parts, nparts, seg, before);
    *out = p;
    p = NULL;
out:
    free(p);
    return rc;
}
