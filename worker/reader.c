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
 * Not done here: negative sampling, news lookups, dedup (the trainer's job), and the
 * evaluation split of impressions (which only shares reader_partition). */
#include "worker/reader.h"

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

/* Copy samples off..off+n-1 of the epoch's permutation into s. */
static int slot_fill(Reader *r, Slot *s, const ReaderPerm *perm, uint64_t epoch, uint64_t off,
                     uint32_t n)
{
    int rc = slot_grow(r, s);
    if (rc)
        return rc;
    size_t total = 0;
    s->neg_off[0] = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t idx = r->interleave
                           ? reader_perm_at(perm, r->rank + (off + i) * (uint64_t)r->world)
                           : r->begin + reader_perm_at(perm, off + i);
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
        ReaderPerm perm;
        /* Interleaved ranks share one permutation of all samples; ranges each permute their
         * own range. */
        if (r->interleave)
            reader_perm_init(&perm, r->total, r->seed, epoch, 0);
        else
            reader_perm_init(&perm, r->count, r->seed, epoch, r->rank);
        while (off < r->count) {
            Slot *s = wait_slot(r);
            if (!s)
                return NULL;
            uint64_t left = r->count - off;
            uint32_t n = left < r->batch_size ? (uint32_t)left : r->batch_size;
            if ((rc = slot_fill(r, s, &perm, epoch, off, n)))
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
        uint64_t size = reader_partition_size(dataset_meta(ds)->samples, o->rank, o->world,
                                              o->interleave);
        if (p->offset > size)
            return psrec_errf(PSREC_E_RANGE,
                              "reader: saved offset %llu is past the partition's %llu samples",
                              (unsigned long long)p->offset, (unsigned long long)size);
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
    if (opt->start)
        r->start = *opt->start;
    else
        r->start = (ReaderPosition){.seed = opt->seed,
                                    .rank = opt->rank,
                                    .world = opt->world,
                                    .interleave = (uint32_t)r->interleave};
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
    free(r);
    *rp = NULL;
}
