/* recommend's news-vector cache: the (news_rows, H) matrix a model makes of a dataset's news,
 * kept in a file inside the checkpoint's step dir so that a second question to the same model
 * about the same dataset skips encoding every news.
 *
 *   <step_dir>/newsvec-<data key, 8 hex>.cache
 *     header: magic "PSRVVEC1", version, header bytes, step, checkpoint key, data key,
 *             news_rows, H
 *     (news_rows, H) floats, then the CRC-32 of those bytes
 *
 * Checkpoint key: CRC-32 over the step and every MANIFEST entry (name, size, CRC), so any
 * change of any checkpoint file changes it. Data key: CRC-32 over the dataset's meta record
 * and every news row's category and tokens (what the news encoder reads). A file whose key,
 * shape or CRC does not match is rebuilt and replaced. Writes are atomic (tmp file, fsync,
 * rename); a step dir that cannot be written only costs the cache (a warning), never the
 * answer. Several datasets asked of one checkpoint get one file each. */
#ifndef PSREC_LAUNCH_NEWSCACHE_H
#define PSREC_LAUNCH_NEWSCACHE_H

#include "common/dataset.h"
#include "launch/modelload.h"
#include "worker/scorer.h"

typedef enum NewsCacheOutcome {
    NEWSCACHE_HIT = 0,  /* read from the cache */
    NEWSCACHE_BUILT,    /* encoded and written to the cache */
    NEWSCACHE_UNSAVED,  /* encoded; the cache could not be written (warned) */
} NewsCacheOutcome;

typedef struct NewsCacheInfo {
    NewsCacheOutcome outcome;
    char path[4400];     /* the cache file */
    double key_seconds;  /* computing the data key */
    double seconds;      /* reading, or encoding + writing */
} NewsCacheInfo;

/* Fill sc's news matrix for the dataset read through txn (borrowed for the call): from the
 * cache when it matches m and the dataset, else by scorer_encode_news and then writing the
 * cache. Returns 0 or an error (encoding failed) with detail. */
int newscache_fill(const LoadedModel *m, Dataset *ds, DatasetTxn *txn, Scorer *sc,
                   NewsCacheInfo *info);

#endif
