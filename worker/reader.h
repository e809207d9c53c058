/* Streaming reader: a worker's partition of the training samples, shuffled per epoch, in
 * batches prepared ahead by a prefetch thread.
 *
 * Partition: worker rank r of W reads the contiguous sample range
 * [floor(N*r/W), floor(N*(r+1)/W)) (reader_partition); the W ranges cover 0..N-1 exactly once.
 * Order: epoch e visits the partition in the order of a keyed bijection of (seed, epoch, rank)
 * (ReaderPerm), computed per index in O(1) memory, so nothing grows with the dataset size.
 * Samples are read through LMDB (dataset_get_sample), never loaded as a whole.
 *
 * Memory: the reader owns D+1 batch buffers (D = prefetch depth: the consumer holds one, the
 * thread fills or has filled the other D). One buffer is at most
 *     reader_buffer_bytes(B, his_len, max_nneg) = 4*B*(his_len + max_nneg + 8) + 4 bytes,
 * where max_nneg is the largest negative count of any sample read so far, at most the size of
 * the largest impression (negatives are copied uncapped; an impression may have hundreds).
 * So the reader never holds more than
 *     (D+1) * (4*B*(his_len + max_nneg + 8) + 4) bytes of batch data,
 * whatever N is, and once every sample has been seen (one epoch) and D+1 more batches have
 * been filled, it allocates nothing more.
 *
 * A plan (ReaderPlan, below) adds O(its segments) bytes, about 24 per segment and 48 per epoch
 * part, held once by the reader: one part per epoch the cut left partly trained, and per part
 * at most W segments more than the plan the cut's workers followed (W their world size), so
 * k resumes give at most k*W. Never anything proportional to N.
 *
 * Re-partitioning (elastic resume). The canonical order V of epoch e for a layout (W, mode) is
 * the concatenation over r = 0..W-1 of rank r's sequence in that epoch; rank r owns
 * V[start_r, start_r + size_r). A cut of W workers leaves, per epoch, the samples not yet
 * trained as disjoint increasing segments [a, b) of V: [start_r + offset_r, start_r + size_r)
 * for the workers in that epoch. reader_plan_build collects them; new worker r' of W' then
 * trains the share [floor(R r'/W'), floor(R (r'+1)/W')) of the concatenated segments (R the
 * samples left), in order. A plan's epoch keeps the base layout it was cut from, so a cut taken
 * while following a plan is again a set of segments of the same V: plans compose over any
 * number of resumes, each adding at most W segments. Epochs that nobody started are not in the
 * plan: they use the normal layout of the new (rank, world, mode).
 * Resuming on the same world and mode needs no new plan: the saved positions (and the plan they
 * follow, if any) give the very same batches in the same order.
 *
 * Threads: a Reader is driven by one consumer thread (reader_next, reader_position,
 * reader_free); reader_stats may be called from any thread. The prefetch thread is internal
 * and uses its own DatasetTxn on the shared Dataset. Plans and WorkerCuts are plain data:
 * functions on them are pure and thread-safe on distinct outputs.
 */
#ifndef PSREC_WORKER_READER_H
#define PSREC_WORKER_READER_H

#include "common/dataset.h"

#include <stddef.h>
#include <stdint.h>

#define READER_DEFAULT_DEPTH 2u
#define READER_MAX_DEPTH 64u
#define READER_PERM_ROUNDS 6

typedef struct Reader Reader;

/* Where a reader stands: enough to resume exactly there (saved in checkpoints). offset counts
 * the samples of epoch `epoch` already handed out, in permutation order; offset equal to the
 * partition size means "every batch of the epoch was handed out, its end not yet reported".
 * When planned is 1, epoch is one of the reader's plan epochs and offset counts within this
 * rank's share of it (not within its partition); resuming then needs the same plan. */
typedef struct ReaderPosition {
    uint64_t seed;
    uint64_t epoch;
    uint64_t offset;
    uint32_t rank;
    uint32_t world;
    uint32_t interleave;           /* the partition mode it was taken in (ReaderOptions) */
    uint32_t planned;              /* 1: offset is within this rank's share of a plan epoch */
} ReaderPosition;

/* A worker's part of a consistent cut (the job-wide part is the launcher's). No RNG state:
 * negatives are drawn from a stream keyed by (seed, epoch, sample), so they depend neither on
 * the worker that trains a sample nor on where a run resumed. Travels opaquely (through the
 * shards and in job.ckpt) as the WORKERCUT_BYTES bytes of workercut_encode. */
typedef struct WorkerCut {
    ReaderPosition pos;            /* the next sample not yet trained (not: handed out) */
    uint64_t steps;                /* steps this worker finished (its clock) */
    uint64_t samples;              /* samples it trained in this life of the run (earlier
                                      lives' are in the cut's job-wide count) */
} WorkerCut;

/* Encoded WorkerCut, little-endian: u32 magic "PWCT", u32 version, u32 size (= the total),
 * u32 rank, world, interleave, planned, reserved (0); u64 seed, epoch, offset, steps,
 * samples; u32 reserved (0); u32 CRC-32 of all bytes before it. */
#define WORKERCUT_MAGIC 0x54435750u /* "PWCT" */
#define WORKERCUT_VERSION 1u
#define WORKERCUT_BYTES 80u

/* A segment [begin, end) of indices into an epoch's canonical order V (see the top). */
typedef struct ReaderSegment {
    uint64_t begin;
    uint64_t end;
} ReaderSegment;

/* The samples of one epoch left to train: segments of V for the base layout. */
typedef struct ReaderPlanPart {
    uint64_t epoch;
    uint64_t remaining;            /* R: the samples of the segments */
    uint32_t base_world;           /* the layout V is defined by: W >= 1 ... */
    uint32_t base_interleave;      /* ... and mode, 0 or 1 */
    uint32_t nseg;
    const ReaderSegment *segments; /* (nseg) increasing and disjoint, not touching, non-empty */
    const uint64_t *before;        /* (nseg) where segment j starts in the concatenation */
} ReaderPlanPart;

/* A re-partition plan: the unfinished epochs of a cut. One allocation; read-only once built. */
typedef struct ReaderPlan {
    uint64_t seed;
    uint64_t samples;              /* N, the dataset's sample count */
    uint64_t epoch;                /* where the new workers start (the cut's earliest epoch) */
    uint32_t nparts;
    const ReaderPlanPart *parts;   /* (nparts) by increasing epoch, all >= epoch; an epoch
                                      without a part uses the normal layout */
} ReaderPlan;

/* Encoded ReaderPlan, little-endian: header (u32 magic "PRPL", version, header size 48,
 * nparts; u64 seed, samples, epoch, total size), nparts x (u64 epoch; u32 base_world,
 * base_interleave, nseg, reserved 0), then every part's segments as u64 pairs (begin, end),
 * then u32 CRC-32 of all bytes before it. */
#define READER_PLAN_MAGIC 0x4c505250u /* "PRPL" */
#define READER_PLAN_VERSION 1u
/* reader_plan_build refuses cuts spanning more epochs than this (garbled positions). */
#define READER_PLAN_MAX_SPAN 65536u

typedef struct ReaderOptions {
    uint32_t batch_size;            /* B >= 1 */
    uint32_t rank;                  /* 0 <= rank < world */
    uint32_t world;                 /* W >= 1 */
    uint64_t seed;
    uint32_t prefetch_depth;        /* D, 1..READER_MAX_DEPTH; 0 means READER_DEFAULT_DEPTH */
    const ReaderPosition *start;    /* NULL: epoch 0 (or plan->epoch), offset 0. Else resume
                                       there; its seed, rank, world and mode must equal these,
                                       and its `planned` must say whether plan has a part for
                                       its epoch. Copied. */
    const ReaderPlan *plan;         /* NULL, or a plan (reader_plan_build) this worker follows:
                                       its epochs read this rank's share of the plan, the others
                                       the normal layout. seed and N must match. Copied. */
    int interleave;                 /* 0: the contiguous range partition (data locality).
                                       1: each epoch permutes ALL N samples with one key and
                                       rank r takes positions r, r+W, r+2W, ...: then W workers
                                       with batch B/W see, step by step, exactly the batches of
                                       one process with batch B (BSP equivalence). */
} ReaderOptions;

/* One batch, in flat arrays the reader owns. n samples, 1 <= n <= B; only the last batch of
 * an epoch may have n < B. Arrays are in the batch's sample order (the epoch's permutation). */
typedef struct ReaderBatch {
    uint64_t epoch;
    uint64_t offset;               /* permutation offset of the first sample in its epoch
                                      (in a plan epoch: the offset within the rank's share) */
    uint32_t n;
    uint32_t his_len;              /* stride of his (dataset meta his_len) */
    const uint64_t *index;         /* (n) sample index in the dataset */
    const uint64_t *impression;    /* (n) impression index the sample came from */
    const uint32_t *user;          /* (n) user row */
    const uint32_t *pos;           /* (n) news row of the click */
    const uint32_t *nhis;          /* (n) history length, 0..his_len */
    const uint32_t *his;           /* (n, his_len) news rows oldest first; row i holds nhis[i]
                                      entries then DATASET_PAD_NEWS. NULL if his_len is 0 */
    const uint32_t *neg_off;       /* (n+1) negatives of sample i: neg[neg_off[i]..neg_off[i+1]) */
    const uint32_t *neg;           /* (neg_off[n]) news rows, every negative of the impression;
                                      NULL while no sample with negatives has been read */
} ReaderBatch;

/* Counters for tests and `psrec bench`. */
typedef struct ReaderStats {
    size_t buffer_bytes;           /* bytes of batch buffers currently allocated */
    uint64_t grow_events;          /* times a buffer's negatives array was (re)allocated */
    uint32_t max_nneg;             /* largest negative count read so far */
    uint64_t batches;              /* batches handed to the consumer */
} ReaderStats;

/* A keyed permutation of [0, n): a Feistel network over the smallest power-of-two domain
 * >= n, cycle-walking back into [0, n). Pure and O(1) in memory; share freely across threads
 * once initialised. */
typedef struct ReaderPerm {
    uint64_t n;
    unsigned lo_bits;              /* the domain is 2^(hi_bits + lo_bits) */
    unsigned hi_bits;
    uint64_t keys[READER_PERM_ROUNDS];
} ReaderPerm;

/* Sample range of worker rank of world over n items: [*begin, *end) with
 * begin = floor(n*rank/world), end = floor(n*(rank+1)/world), exact for every n (no overflow).
 * Needs world >= 1 and rank < world. Also the split of impressions for evaluation. */
void reader_partition(uint64_t n, uint32_t rank, uint32_t world, uint64_t *begin, uint64_t *end);

/* Samples rank r of world gets per epoch: end - begin of reader_partition, or, interleaved,
 * the count of positions r, r+W, ... below n. */
uint64_t reader_partition_size(uint64_t n, uint32_t rank, uint32_t world, int interleave);

/* Samples rank gets of a plan epoch: its share of part->remaining (reader_partition). */
uint64_t reader_plan_share(const ReaderPlanPart *part, uint32_t rank, uint32_t world);

/* Set up the permutation of [0, n) for (seed, epoch, rank). n may be 0 (nothing to permute). */
void reader_perm_init(ReaderPerm *p, uint64_t n, uint64_t seed, uint64_t epoch, uint32_t rank);

/* The i-th element of the permutation: for i < n, distinct i give distinct results in [0, n).
 * Expected cost: under 2 Feistel evaluations (6 rounds each). i >= n is returned unchanged. */
uint64_t reader_perm_at(const ReaderPerm *p, uint64_t i);

/* Upper bound in bytes of one batch buffer (see the top of this file). */
size_t reader_buffer_bytes(uint32_t batch_size, uint32_t his_len, uint32_t max_nneg);

/* Start a reader over ds and its prefetch thread. ds is borrowed and must outlive the reader;
 * other threads may use ds meanwhile (each with its own DatasetTxn). opt is copied.
 * Returns 0, PSREC_E_RANGE for bad options (message says which), PSREC_E_NOMEM, or an errno
 * from pthread/LMDB; on error *out is NULL. The prefetch thread blocks every signal, so
 * signals are delivered to the caller's threads. */
int reader_new(Dataset *ds, const ReaderOptions *opt, Reader **out);

/* Hand out the next batch. Typical loop:
 *     while (!(rc = reader_next(r, &b)) && b)
 *         train(b);
 *     after it, rc != 0 is an error and rc == 0 the end of an epoch (evaluate, checkpoint,
 *     or call again for the next epoch).
 * On 0 with *batch non-NULL: a batch, borrowed until the next reader_next or reader_free.
 * On 0 with *batch NULL: the end of an epoch; the next call returns the first batch of the
 * following epoch (the reader runs epochs until freed; an empty partition gives an end of
 * epoch every call). On error (a damaged record, an LMDB failure in the prefetch thread)
 * returns its code with psrec_errmsg() set in the calling thread (naming the dataset and
 * row); batches read before the failure are handed out first, and after it every call
 * returns the same error. */
int reader_next(Reader *r, const ReaderBatch **batch);

/* Position of the next sample not yet handed out (the borrowed batch counts as handed out):
 * a reader started from it (with the same plan, if any) produces the same sequence of samples
 * and ends of epoch as this one from here on, in the same batches given the same B. planned
 * says whether its epoch is a plan epoch; such a position is what reader_plan_build expects
 * together with the plan. Also valid after an error. */
void reader_position(const Reader *r, ReaderPosition *pos);

/* Snapshot of the counters (takes the reader's lock, hence not const). */
void reader_stats(Reader *r, ReaderStats *st);

/* Stop the prefetch thread (wherever it is: waiting for a slot or filling one), join it,
 * free everything and set *r to NULL. Safe on NULL and on a failed reader. Borrowed batches
 * die here. */
void reader_free(Reader **r);

/* ------------------------------------------------------------------ cuts and plans */

/* Write c as WORKERCUT_BYTES bytes into buf (cap bytes). *len gets WORKERCUT_BYTES, also when
 * cap is too small (then PSREC_E_RANGE and nothing written). Returns 0 or PSREC_E_RANGE
 * (also for rank >= world or world 0, which decode would refuse). */
int workercut_encode(const WorkerCut *c, void *buf, size_t cap, size_t *len);

/* Read a WorkerCut from exactly len bytes. Checks magic, version, size, CRC, rank < world,
 * mode and planned flags; the offset against the partition is the reader's check (it knows
 * N). Returns 0 or PSREC_E_FORMAT with detail; *c is written only on success. */
int workercut_decode(const void *buf, size_t len, WorkerCut *c);

/* True when positions from `world` workers in mode `interleave` may be used as they are by
 * new_world workers in mode new_interleave (with the plan they were following, if any):
 * then the resume is exact. Otherwise build a plan. */
int reader_plan_needed(uint32_t world, int interleave, uint32_t new_world, int new_interleave);

/* The remainder of a cut: pos[r] (r = 0..world-1) are the positions of the next sample not
 * yet trained of every worker of the old layout (all the same seed and mode, pos[r].rank ==
 * r), over n samples; current is the plan they were following (NULL if none). *out gets a new
 * plan (free with reader_plan_free): every sample of every epoch some worker had started and
 * not every worker had finished, minus what was trained, exactly once; its epoch is the
 * earliest of the positions. Memory: O(segments) (see the top), never O(n).
 * Returns 0, PSREC_E_RANGE when the positions do not fit together, n or current (detail says
 * which), or PSREC_E_NOMEM; on error *out is NULL. */
int reader_plan_build(uint64_t n, const ReaderPosition *pos, uint32_t world,
                      const ReaderPlan *current, ReaderPlan **out);

/* Bytes of the encoding of p. */
size_t reader_plan_encoded_size(const ReaderPlan *p);

/* Write p into buf (cap bytes); *len gets the size (also when cap is too small: then
 * PSREC_E_RANGE and nothing written). Returns 0 or PSREC_E_RANGE. */
int reader_plan_encode(const ReaderPlan *p, void *buf, size_t cap, size_t *len);

/* Read a plan from exactly len bytes: magic, version, sizes, CRC, parts by increasing epoch
 * and >= plan epoch, base layouts, segments increasing, disjoint, non-empty and below N.
 * Returns 0, PSREC_E_FORMAT with detail, or PSREC_E_NOMEM; *out is NULL on error. */
int reader_plan_decode(const void *buf, size_t len, ReaderPlan **out);

/* A copy of p in one allocation (NULL p gives NULL and 0). Returns 0 or PSREC_E_NOMEM. */
int reader_plan_dup(const ReaderPlan *p, ReaderPlan **out);

/* Free a plan and set *p to NULL; safe on NULL. */
void reader_plan_free(ReaderPlan **p);

/* Where a fresh worker (rank of world, mode interleave) following plan starts: plan->epoch at
 * offset 0 (planned if that epoch has a part), or epoch 0 without a plan. The same position
 * reader_new assumes for a NULL start; hand it to the trainer so both agree on the epoch. */
void reader_start_position(const ReaderPlan *plan, uint64_t seed, uint32_t rank, uint32_t world,
                           int interleave, ReaderPosition *out);

/* The part of p for epoch, or NULL (also for a NULL p). */
const ReaderPlanPart *reader_plan_part(const ReaderPlan *p, uint64_t epoch);

#endif
