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
 * Threads: a Reader is driven by one consumer thread (reader_next, reader_position,
 * reader_free); reader_stats may be called from any thread. The prefetch thread is internal
 * and uses its own DatasetTxn on the shared Dataset.
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
 * partition size means "every batch of the epoch was handed out, its end not yet reported". */
typedef struct ReaderPosition {
    uint64_t seed;
    uint64_t epoch;
    uint64_t offset;
    uint32_t rank;
    uint32_t world;
    uint32_t interleave;           /* the partition mode it was taken in (ReaderOptions) */
    uint32_t reserved;
} ReaderPosition;

typedef struct ReaderOptions {
    uint32_t batch_size;            /* B >= 1 */
    uint32_t rank;                  /* 0 <= rank < world */
    uint32_t world;                 /* W >= 1 */
    uint64_t seed;
    uint32_t prefetch_depth;        /* D, 1..READER_MAX_DEPTH; 0 means READER_DEFAULT_DEPTH */
    const ReaderPosition *start;    /* NULL: epoch 0, offset 0. Else resume there; its seed,
                                       rank, world and mode must equal these. Copied. */
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
    uint64_t offset;               /* permutation offset of the first sample in its epoch */
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
 * a reader started from it produces the same sequence of samples and ends of epoch as this
 * one from here on, in the same batches given the same B. Also valid after an error. */
void reader_position(const Reader *r, ReaderPosition *pos);

/* Snapshot of the counters (takes the reader's lock, hence not const). */
void reader_stats(Reader *r, ReaderStats *st);

/* Stop the prefetch thread (wherever it is: waiting for a slot or filling one), join it,
 * free everything and set *r to NULL. Safe on NULL and on a failed reader. Borrowed batches
 * die here. */
void reader_free(Reader **r);

#endif
