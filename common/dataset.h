/* The LMDB dataset format: what `psrec prep` writes and workers stream.
 *
 * One LMDB environment (a directory) holds these named databases:
 *   meta        "meta" -> DatasetMeta record (magic, version, size; checked on open)
 *   vocab       u32 word id -> word bytes              (0 = <pad>, 1 = <unk>)
 *   categories  u32 category id -> name bytes          (0 = <none>: padding / unknown)
 *   users       u32 user row -> user id bytes           (0 = <unk>)
 *   news        u32 news row -> NewsRec                 (0 = padding news)
 *   samples     u64 sample index -> SampleRec           (one per click, dense 0..samples-1)
 *   impressions u64 impression index -> ImpressionRec   (dense 0..impressions-1)
 *   news_text   u32 news row -> NewsTextRec             (version 2 on: raw title, category)
 * Integer keys use MDB_INTEGERKEY (host order). Records are packed little-endian u32 arrays,
 * laid out below; dataset_* accessors decode them and check their sizes, so a damaged record
 * is an error, never an out-of-bounds read.
 *
 * A split prepared with --vocab-from shares the train split's vocab, categories and users
 * tables (copied in), so word, category and user ids mean the same in every split of a run.
 * News rows are per split: a model never stores per-news parameters.
 *
 * Versions: 2 added news_text (what `psrec recommend` prints). Version 1 datasets still open;
 * they have no news_text (dataset_has_news_text says so, dataset_get_news_text gives empty
 * strings), and re-running psrec prep adds it. 3 added meta.fingerprint: a 64-bit hash of
 * the vocab, categories and users tables (every row's id and bytes, in order), which the
 * writer computes as rows are added. A split made --vocab-from a train set copies those
 * tables, so it carries the train set's fingerprint; a checkpoint records it (RunMeta
 * data_fingerprint) and launch/modelload.h's rule compares them. Version 1 and 2 datasets
 * still open with fingerprint 0 ("unknown"): the rule then falls back to table sizes and
 * warns. */
#ifndef PSREC_COMMON_DATASET_H
#define PSREC_COMMON_DATASET_H

#include <stddef.h>
#include <stdint.h>

#define DATASET_MAGIC 0x31424452435350ULL /* "PSRCRDB1" as little-endian bytes */
#define DATASET_VERSION 3u
#define DATASET_VERSION_MIN 1u /* the oldest version this psrec still reads */
#define DATASET_TOKENIZER_VERSION 1u

enum { DATASET_PAD_WORD = 0, DATASET_UNK_WORD = 1, DATASET_PAD_NEWS = 0, DATASET_UNK_USER = 0 };

/* Everything `psrec inspect` prints. Counts describe this split's TSV files ("a direct count"),
 * the *_rows fields the sizes of the id spaces (tables), reserved ids included. */
typedef struct DatasetMeta {
    uint64_t magic;
    uint32_t version;
    uint32_t size; /* sizeof(DatasetMeta) when written */
    uint32_t tokenizer_version;
    uint32_t title_len;      /* tokens kept per title (longer titles are cut) */
    uint32_t his_len;        /* clicks kept per history (the most recent ones) */
    uint32_t min_count;      /* vocabulary min count (of the split that built it) */
    uint32_t vocab_shared;   /* 1 when built with --vocab-from */
    uint32_t reserved0;
    uint64_t news;           /* distinct news ids in news.tsv */
    uint64_t users;          /* distinct user ids in behaviors.tsv */
    uint64_t impressions;    /* impressions (behaviors lines kept) */
    uint64_t labeled_impressions; /* impressions whose candidates carry labels */
    uint64_t samples;        /* training samples: one per clicked candidate */
    uint64_t candidates;     /* candidates over all impressions */
    uint64_t history_refs;   /* history entries over all impressions (before cutting) */
    uint64_t vocab;          /* words in the vocabulary, <pad> and <unk> not counted */
    uint64_t categories;     /* distinct categories in news.tsv */
    uint64_t missing_news_refs; /* history/candidate ids absent from news.tsv (mapped to news 0) */
    uint64_t skipped_lines;  /* malformed lines skipped under --skip-bad-lines */
    uint64_t duplicate_news; /* news.tsv lines repeating an earlier id (first one kept) */
    uint64_t unknown_users;  /* users absent from the shared users table (mapped to 0) */
    uint64_t news_rows;      /* rows of the news table, padding included */
    uint64_t user_rows;      /* rows of the users table, <unk> included */
    uint64_t vocab_rows;     /* rows of the vocabulary, <pad> and <unk> included */
    uint64_t category_rows;  /* rows of the categories table, <none> included */
    uint64_t tsv_bytes;      /* bytes of TSV read */
    uint64_t fingerprint;    /* version 3 on: hash of vocab, categories, users (0: unknown) */
} DatasetMeta;

/* The meta record's size before version 3 (without fingerprint). */
#define DATASET_META_V2_SIZE offsetof(DatasetMeta, fingerprint)

/* Decoded views. Pointers borrow from the LMDB map and live until the DatasetTxn that
 * produced them is reset or ended. Token and id arrays are u32 in host order. */
typedef struct NewsView {
    uint32_t category;
    uint32_t ntok;            /* 1..title_len (an empty title is stored as one <unk>) */
    const uint32_t *tokens;   /* (ntok) */
    const char *id;           /* MIND news id, not NUL-terminated */
    uint32_t id_len;
} NewsView;

/* A news' text as news.tsv had it: the raw title (before tokenizing) and the category name
 * (also when a --vocab-from split maps an unseen category to <none>). */
typedef struct NewsText {
    const char *title;        /* not NUL-terminated */
    uint32_t title_len;
    const char *category;     /* not NUL-terminated */
    uint32_t category_len;
} NewsText;

typedef struct SampleView {
    uint32_t user;            /* user row */
    uint32_t pos;             /* news row of the click */
    uint64_t impression;      /* impression index it came from */
    uint32_t nhis;            /* 0..his_len */
    uint32_t nneg;            /* negatives of that impression */
    const uint32_t *his;      /* (nhis) news rows, oldest first */
    const uint32_t *neg;      /* (nneg) news rows */
} SampleView;

typedef struct ImpressionView {
    uint32_t user;
    uint32_t nhis;
    uint32_t ncand;
    uint32_t labeled;         /* 0 for a test split without labels */
    const uint32_t *his;      /* (nhis) news rows, oldest first */
    const uint32_t *cand;     /* (ncand) news rows, in file order */
    const uint8_t *labels;    /* (ncand) 0/1, meaningful only when labeled */
    const char *id;           /* impression id from the file, not NUL-terminated */
    uint32_t id_len;
} ImpressionView;

typedef struct Dataset Dataset;
typedef struct DatasetTxn DatasetTxn;
typedef struct DatasetWriter DatasetWriter;

/* ---- reading ---- */

/* The record decoders dataset_get_news/sample/impression apply to the bytes LMDB returns,
 * exposed so tests/fuzz/fuzz_dataset.c can feed them arbitrary bytes. data[0..size) is one
 * record; m is the dataset's meta, whose limits every decoded record obeys: sizes consistent,
 * ntok in 1..title_len, nhis <= his_len, category < category_rows, word ids < vocab_rows,
 * user rows < user_rows, news rows (history, click, negatives, candidates) < news_rows,
 * a sample's impression < impressions, labeled and labels 0/1. So a damaged record can never
 * index a table out of bounds downstream. On success *out borrows from data and NULL is
 * returned; otherwise the reason the record is damaged (static string) and *out is
 * undefined. A record that decodes lies wholly inside data[0..size). */
const char *dataset_decode_news(const void *data, size_t size, const DatasetMeta *m,
                                NewsView *out);
const char *dataset_decode_sample(const void *data, size_t size, const DatasetMeta *m,
                                  SampleView *out);
const char *dataset_decode_impression(const void *data, size_t size, const DatasetMeta *m,
                                      ImpressionView *out);

/* Open a prepared dataset read-only and validate its meta record. On error *out is NULL
 * and psrec_errmsg() names the path and the problem. */
int dataset_open(const char *path, Dataset **out);
void dataset_free(Dataset **ds);
/* Borrowed; lives as long as ds. */
const DatasetMeta *dataset_meta(const Dataset *ds);

/* A read transaction: one per thread at a time. Views it returns live until
 * dataset_txn_reset/dataset_txn_free. */
int dataset_txn_new(Dataset *ds, DatasetTxn **out);
void dataset_txn_free(DatasetTxn **txn);
/* Release the snapshot's pages (views die) and take a fresh one; cheap. */
int dataset_txn_reset(DatasetTxn *txn);

int dataset_get_news(DatasetTxn *txn, uint32_t row, NewsView *out);
int dataset_get_sample(DatasetTxn *txn, uint64_t index, SampleView *out);
int dataset_get_impression(DatasetTxn *txn, uint64_t index, ImpressionView *out);
/* The raw title and category name of a news row, borrowed like the views. A dataset without
 * the news_text table (version 1) gives empty strings. */
int dataset_get_news_text(DatasetTxn *txn, uint32_t row, NewsText *out);
/* 1 when the dataset keeps news texts (version 2 on). */
int dataset_has_news_text(const Dataset *ds);
/* The user row whose id is str (len bytes), by a scan of the users table; PSREC_E_NOTFOUND
 * (no detail set) when no row has it. */
int dataset_find_user(DatasetTxn *txn, const char *str, uint32_t len, uint32_t *row);
/* Names of table rows; *str borrowed like the views. */
int dataset_get_word(DatasetTxn *txn, uint32_t id, const char **str, uint32_t *len);
int dataset_get_category(DatasetTxn *txn, uint32_t id, const char **str, uint32_t *len);
int dataset_get_user(DatasetTxn *txn, uint32_t row, const char **str, uint32_t *len);

/* ---- writing (psrec prep) ---- */

/* Create a new environment in directory path (which must not exist yet). */
int dataset_writer_new(const char *path, DatasetWriter **out);
/* Rows must be added in increasing id/index order starting at 0 within each table. */
int dataset_put_word(DatasetWriter *w, uint32_t id, const char *str, uint32_t len);
int dataset_put_category(DatasetWriter *w, uint32_t id, const char *str, uint32_t len);
int dataset_put_user(DatasetWriter *w, uint32_t row, const char *str, uint32_t len);
int dataset_put_news(DatasetWriter *w, uint32_t row, const NewsView *news);
int dataset_put_news_text(DatasetWriter *w, uint32_t row, const NewsText *text);
int dataset_put_sample(DatasetWriter *w, uint64_t index, const SampleView *s);
int dataset_put_impression(DatasetWriter *w, uint64_t index, const ImpressionView *imp);
/* Write meta (magic/version/size and fingerprint filled in here), commit, sync and close.
 * Frees w. */
int dataset_writer_finish(DatasetWriter **w, const DatasetMeta *meta);
/* Abandon: close and remove the directory. Frees w. */
void dataset_writer_abort(DatasetWriter **w);

#endif
