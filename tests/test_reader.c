/* Tests for worker/reader: partitions cover every sample exactly once, the per-epoch order is
 * a keyed bijection, batches carry exact copies of the records, a saved position resumes the
 * very same sequence, the prefetch thread stops cleanly wherever it is, errors from the thread
 * reach the consumer with their message, and buffer memory stops growing after warm-up.
 * Elastic resume: cuts of W workers re-partitioned over W' and again over W'' (modes changing)
 * train every sample of every epoch exactly once, the epoch after the plan is the normal
 * layout, and cuts and plans survive encoding and refuse damaged bytes.
 * Fixture datasets (N = 0, 1, 3, 7, 13, 100, 101, 1001 samples) are built once for the whole
 * suite; every field of sample i is a distinct function of i, so a misplaced copy is caught. */
#include "common/ckpt.h"
#include "common/dataset.h"
#include "common/error.h"
#include "common/rng.h"
#include "testutil/testutil.h"
#include "worker/reader.h"

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { FX_COUNT = 8, FX_MAX_HIS = 5, FX_BIG_NNEG = 200 };
/* 1001 last (test_interleave takes it from there); 3, 7, 13, 101 are primes. */
static const uint64_t fx_sizes[FX_COUNT] = {0, 1, 3, 7, 13, 100, 101, 1001};
static Dataset *fx_ds[FX_COUNT];
static char fx_path[FX_COUNT][4200];
static char *fx_dir;

/* ---- the fixture ---- */

static uint32_t fx_his_len(uint64_t n)
{
    return n == 7 ? 0 : FX_MAX_HIS; /* one dataset without histories at all */
}

static uint32_t fx_nneg(uint64_t i)
{
    return i % 50 == 17 ? FX_BIG_NNEG + (uint32_t)(i % 7) : (uint32_t)(i % 6);
}

/* Largest nneg among samples [begin, end). */
static uint32_t fx_max_nneg(uint64_t begin, uint64_t end)
{
    uint32_t m = 0;
    for (uint64_t i = begin; i < end; i++)
        if (fx_nneg(i) > m)
            m = fx_nneg(i);
    return m;
}

/* Table sizes of a fixture of n samples: every id a sample holds names a row that exists
 * (the dataset's decoders refuse ids out of range). */
static uint32_t fx_users(uint64_t n)
{
    return (uint32_t)(7 * n + 2);
}

static uint32_t fx_news(uint64_t n)
{
    return (uint32_t)(11 * n + 4);
}

static void fx_sample(uint64_t i, uint64_t n, uint32_t his_len, SampleView *s, uint32_t *his,
                      uint32_t *neg)
{
    s->user = (uint32_t)(7 * i + 1);
    s->pos = (uint32_t)(11 * i + 3);
    s->impression = i / 3;
    s->nhis = (uint32_t)(i % (his_len + 1));
    s->nneg = fx_nneg(i);
    for (uint32_t j = 0; j < s->nhis; j++)
        his[j] = (uint32_t)((i * 64 + j + 1) % fx_news(n));
    for (uint32_t j = 0; j < s->nneg; j++)
        neg[j] = (uint32_t)((i * 1024 + j) % fx_news(n));
    s->his = his;
    s->neg = neg;
}

/* Write a fixture of n samples at path; 0 or the first error (usable outside a test). */
static int fx_build(const char *path, uint64_t n)
{
    DatasetWriter *w = NULL;
    int rc = dataset_writer_new(path, &w);
    if (rc)
        return rc;
    uint32_t tok = 1;
    NewsView nv = {.category = 0, .ntok = 1, .tokens = &tok, .id = "", .id_len = 0};
    if ((rc = dataset_put_word(w, 0, "<pad>", 5)) || (rc = dataset_put_word(w, 1, "<unk>", 5)) ||
        (rc = dataset_put_category(w, 0, "", 0)))
        goto fail;
    for (uint32_t u = 0; u < fx_users(n); u++)
        if ((rc = dataset_put_user(w, u, "", 0)))
            goto fail;
    for (uint32_t r = 0; r < fx_news(n); r++)
        if ((rc = dataset_put_news(w, r, &nv)) ||
            (rc = dataset_put_news_text(w, r, &(NewsText){.title = "", .category = ""})))
            goto fail;
    uint64_t nimp = (n + 2) / 3;
    for (uint64_t k = 0; k < nimp; k++)
        if ((rc = dataset_put_impression(w, k, &(ImpressionView){.ncand = 1, .cand = &tok})))
            goto fail;
    uint32_t his[FX_MAX_HIS], neg[FX_BIG_NNEG + 8];
    for (uint64_t i = 0; i < n; i++) {
        SampleView s;
        fx_sample(i, n, fx_his_len(n), &s, his, neg);
        if ((rc = dataset_put_sample(w, i, &s)))
            goto fail;
    }
    DatasetMeta m;
    memset(&m, 0, sizeof m);
    m.title_len = 1;
    m.his_len = fx_his_len(n);
    m.samples = n;
    m.impressions = nimp;
    m.news_rows = fx_news(n);
    m.user_rows = fx_users(n);
    m.category_rows = 1;
    m.vocab_rows = 2;
    return dataset_writer_finish(&w, &m);
fail:
    dataset_writer_abort(&w);
    return rc;
}

static Dataset *fx(uint64_t n)
{
    for (int i = 0; i < FX_COUNT; i++)
        if (fx_sizes[i] == n)
            return fx_ds[i];
    abort();
}

static ReaderOptions opts(uint32_t b, uint32_t rank, uint32_t world, uint64_t seed, uint32_t d)
{
    return (ReaderOptions){.batch_size = b, .rank = rank, .world = world, .seed = seed,
                           .prefetch_depth = d, .start = NULL};
}

/* ---- helpers ---- */

/* Compare every field of every sample of a batch with the dataset (and with the fixture). */
static int batch_matches(DatasetTxn *txn, const ReaderBatch *b)
{
    int ok = 1;
    for (uint32_t i = 0; i < b->n && ok; i++) {
        SampleView v;
        if (dataset_get_sample(txn, b->index[i], &v))
            return 0;
        ok &= b->user[i] == v.user && b->pos[i] == v.pos && b->impression[i] == v.impression;
        ok &= b->user[i] == 7 * b->index[i] + 1; /* and the row really is sample index[i] */
        ok &= b->nhis[i] == v.nhis;
        for (uint32_t j = 0; j < b->his_len && ok; j++)
            ok &= b->his[(size_t)i * b->his_len + j] == (j < v.nhis ? v.his[j] : DATASET_PAD_NEWS);
        ok &= b->neg_off[i + 1] - b->neg_off[i] == v.nneg;
        for (uint32_t j = 0; j < v.nneg && ok; j++)
            ok &= b->neg[b->neg_off[i] + j] == v.neg[j];
    }
    return ok && b->neg_off[0] == 0;
}

/* Read the rest of the current epoch; append sample indices to out (capacity cap). Checks
 * batch shapes: full batches except the last, offsets continuous, one epoch number.
 * Returns samples read, or -1 on an error or a bad shape. */
static long read_epoch(Reader *r, uint32_t bsize, uint64_t *out, size_t cap, DatasetTxn *check)
{
    const ReaderBatch *b;
    long got = 0;
    int short_seen = 0;
    uint64_t epoch = 0, next_off = 0;
    for (;;) {
        int rc = reader_next(r, &b);
        if (rc) {
            fprintf(stderr, "\n  reader_next: %d %s\n", rc, psrec_errmsg());
            return -1;
        }
        if (!b)
            return got;
        if (short_seen || b->n == 0 || b->n > bsize)
            return -1; /* a short batch that was not the last one */
        if (got == 0) {
            epoch = b->epoch;
            next_off = b->offset;
        }
        if (b->epoch != epoch || b->offset != next_off)
            return -1;
        next_off += b->n;
        short_seen = b->n < bsize;
        if (check && !batch_matches(check, b))
            return -1;
        for (uint32_t i = 0; i < b->n; i++)
            if ((size_t)got < cap)
                out[got++] = b->index[i];
    }
}

/* The stream of a reader as numbers: each sample's (epoch << 32 | index), and UINT64_MAX for
 * an end of epoch. Runs `calls` reader_next calls; returns how many values were appended. */
static size_t record(Reader *r, int calls, uint64_t *out)
{
    size_t n = 0;
    const ReaderBatch *b;
    for (int c = 0; c < calls; c++) {
        if (reader_next(r, &b) != 0)
            return SIZE_MAX;
        if (!b) {
            out[n++] = UINT64_MAX;
            continue;
        }
        for (uint32_t i = 0; i < b->n; i++)
            out[n++] = b->epoch << 32 | b->index[i];
    }
    return n;
}

/* ------------------------------------------------------------------ tests */

static void test_partition_ranges(void)
{
    const uint64_t ns[] = {0, 1, 2, 5, 7, 100, 1001, 4294967311ULL, UINT64_MAX - 3, UINT64_MAX};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        for (uint32_t w = 1; w <= 9; w++) {
            uint64_t prev_end = 0;
            for (uint32_t r = 0; r < w; r++) {
                uint64_t b, e;
                reader_partition(ns[k], r, w, &b, &e);
                unsigned __int128 nb = (unsigned __int128)ns[k] * r / w;
                unsigned __int128 ne = (unsigned __int128)ns[k] * (r + 1) / w;
                CU_ASSERT_EQUAL(b, (uint64_t)nb);
                CU_ASSERT_EQUAL(e, (uint64_t)ne);
                CU_ASSERT_EQUAL(b, prev_end);
                CU_ASSERT(e - b >= ns[k] / w && e - b - ns[k] / w <= 1);
                prev_end = e;
            }
            CU_ASSERT_EQUAL(prev_end, ns[k]);
        }
    }
    uint64_t b, e;
    reader_partition(10, 4294967294u, 4294967295u, &b, &e); /* rank*rem must not overflow */
    CU_ASSERT_EQUAL(b, 9);
    CU_ASSERT_EQUAL(e, 10);
}

static void test_perm_bijection(void)
{
    unsigned char *seen = malloc(2001);
    int bad = 0;
    for (uint64_t n = 1; n <= 2000 && !bad; n++) {
        ReaderPerm p;
        reader_perm_init(&p, n, 12345 + n, n % 3, (uint32_t)(n % 5));
        memset(seen, 0, n);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t x = reader_perm_at(&p, i);
            if (x >= n || seen[x]++) {
                fprintf(stderr, "\n  n=%llu: not a bijection at %llu\n", (unsigned long long)n,
                        (unsigned long long)i);
                bad = 1;
                break;
            }
        }
    }
    CU_ASSERT_FALSE(bad);
    free(seen);

    /* Huge domains (up to all 64 bits): stays in range and injective on a prefix. */
    const uint64_t big[] = {4294967297ULL, (1ULL << 63) + 1, UINT64_MAX};
    for (size_t k = 0; k < 3; k++) {
        ReaderPerm p;
        reader_perm_init(&p, big[k], 7, 1, 2);
        uint64_t v[512];
        for (int i = 0; i < 512; i++) {
            v[i] = reader_perm_at(&p, (uint64_t)i * 977);
            CU_ASSERT(v[i] < big[k]);
            for (int j = 0; j < i; j++)
                CU_ASSERT_NOT_EQUAL(v[i], v[j]);
        }
    }
    ReaderPerm p;
    reader_perm_init(&p, 10, 1, 0, 0);
    CU_ASSERT_EQUAL(reader_perm_at(&p, 10), 10); /* outside: returned unchanged */
    reader_perm_init(&p, 0, 1, 0, 0);
    CU_ASSERT_EQUAL(reader_perm_at(&p, 0), 0); /* empty domain: no endless walk */
}

/* Number of positions at which two permutations of [0, n) differ. */
static uint64_t perm_diff(const ReaderPerm *a, const ReaderPerm *b)
{
    uint64_t d = 0;
    for (uint64_t i = 0; i < a->n; i++)
        d += reader_perm_at(a, i) != reader_perm_at(b, i);
    return d;
}

static void test_perm_keys(void)
{
    const uint64_t n = 1000;
    ReaderPerm base, same, other;
    reader_perm_init(&base, n, 42, 3, 1);
    reader_perm_init(&same, n, 42, 3, 1);
    CU_ASSERT_EQUAL(perm_diff(&base, &same), 0);
    reader_perm_init(&other, n, 42, 4, 1);
    CU_ASSERT(perm_diff(&base, &other) > 950);
    reader_perm_init(&other, n, 43, 3, 1);
    CU_ASSERT(perm_diff(&base, &other) > 950);
    reader_perm_init(&other, n, 42, 3, 2);
    CU_ASSERT(perm_diff(&base, &other) > 950);
    uint64_t fixed = 0;
    for (uint64_t i = 0; i < n; i++)
        fixed += reader_perm_at(&base, i) == i;
    CU_ASSERT(fixed < 10); /* about 1 expected for a random permutation */

    /* Every item lands in every place about equally often over epochs. */
    const uint64_t sizes[] = {7, 10};
    for (size_t k = 0; k < 2; k++) {
        uint64_t m = sizes[k];
        unsigned counts[10][10];
        memset(counts, 0, sizeof counts);
        const unsigned epochs = 7000;
        for (unsigned e = 0; e < epochs; e++) {
            ReaderPerm p;
            reader_perm_init(&p, m, 99, e, 0);
            for (uint64_t i = 0; i < m; i++)
                counts[i][reader_perm_at(&p, i)]++;
        }
        double expect = (double)epochs / (double)m;
        for (uint64_t i = 0; i < m; i++)
            for (uint64_t j = 0; j < m; j++)
                CU_ASSERT(counts[i][j] > 0.75 * expect && counts[i][j] < 1.25 * expect);
    }
}

/* For every fixture and world size, one epoch of every rank: each rank reads only its own
 * range, the union is every sample exactly once, contents are exact, and batches are full
 * except the last. */
static void test_partition_coverage(void)
{
    for (int f = 0; f < FX_COUNT; f++) {
        uint64_t n = fx_sizes[f];
        Dataset *ds = fx_ds[f];
        DatasetTxn *txn = NULL;
        CU_ASSERT_EQUAL_FATAL(dataset_txn_new(ds, &txn), 0);
        unsigned char *seen = calloc(n + 1, 1);
        uint64_t *got = malloc((n + 1) * sizeof *got);
        for (uint32_t w = 1; w <= 5; w++) {
            memset(seen, 0, n + 1);
            uint32_t bsize = n > 500 ? 32 : 3;
            for (uint32_t r = 0; r < w; r++) {
                uint64_t b, e;
                reader_partition(n, r, w, &b, &e);
                ReaderOptions o = opts(bsize, r, w, 2024, 2);
                Reader *rd = NULL;
                CU_ASSERT_EQUAL_FATAL(reader_new(ds, &o, &rd), 0);
                long k = read_epoch(rd, bsize, got, n + 1, txn);
                CU_ASSERT_EQUAL(k, (long)(e - b));
                int sorted = 1;
                for (long i = 0; i < k; i++) {
                    CU_ASSERT(got[i] >= b && got[i] < e);
                    if (got[i] < n)
                        seen[got[i]]++;
                    if (i > 0 && got[i] < got[i - 1])
                        sorted = 0;
                }
                if (k >= 20)
                    CU_ASSERT_FALSE(sorted); /* shuffled */
                ReaderPosition pos;
                reader_position(rd, &pos);
                CU_ASSERT_EQUAL(pos.epoch, 1);
                CU_ASSERT_EQUAL(pos.offset, 0);
                /* The next epoch follows, same samples in another order. */
                long k2 = read_epoch(rd, bsize, got, n + 1, NULL);
                CU_ASSERT_EQUAL(k2, (long)(e - b));
                reader_free(&rd);
                CU_ASSERT_PTR_NULL(rd);
            }
            for (uint64_t i = 0; i < n; i++)
                CU_ASSERT_EQUAL(seen[i], 1);
        }
        free(seen);
        free(got);
        dataset_txn_free(&txn);
    }
}

/* Interleaved partitions: every sample once per epoch over the ranks, and rank r's j-th
 * sample is the single-process reader's (r + j W)-th, so W workers with batch b see at step t
 * exactly the samples one process with batch W b sees at step t. */
static void test_interleave(void)
{
    const int f = FX_COUNT - 1; /* 1001 samples */
    uint64_t n = fx_sizes[f];
    Dataset *ds = fx_ds[f];
    uint64_t *single = malloc((n + 1) * sizeof *single), *got = malloc((n + 1) * sizeof *got);
    unsigned char *seen = calloc(n, 1);
    for (int epoch = 0; epoch < 2; epoch++) {
        ReaderOptions o = opts(12, 0, 1, 77, 2);
        o.interleave = 1;
        Reader *rd = NULL;
        CU_ASSERT_EQUAL_FATAL(reader_new(ds, &o, &rd), 0);
        for (int e = 0; e <= epoch; e++)
            CU_ASSERT_EQUAL(read_epoch(rd, 12, single, n + 1, NULL), (long)n);
        reader_free(&rd);
        /* One process in interleaved mode equals one process in range mode. */
        ReaderOptions ro = opts(12, 0, 1, 77, 2);
        CU_ASSERT_EQUAL_FATAL(reader_new(ds, &ro, &rd), 0);
        for (int e = 0; e <= epoch; e++)
            CU_ASSERT_EQUAL(read_epoch(rd, 12, got, n + 1, NULL), (long)n);
        CU_ASSERT(memcmp(single, got, n * sizeof *got) == 0);
        reader_free(&rd);
        for (uint32_t w = 2; w <= 4; w++) {
            memset(seen, 0, n);
            for (uint32_t r = 0; r < w; r++) {
                ReaderOptions wo = opts(3, r, w, 77, 2);
                wo.interleave = 1;
                CU_ASSERT_EQUAL_FATAL(reader_new(ds, &wo, &rd), 0);
                long k = 0;
                for (int e = 0; e <= epoch; e++)
                    k = read_epoch(rd, 3, got, n + 1, NULL);
                CU_ASSERT_EQUAL((uint64_t)k, reader_partition_size(n, r, w, 1));
                for (long j = 0; j < k; j++) {
                    CU_ASSERT_EQUAL(got[j], single[r + (uint64_t)j * w]);
                    seen[got[j]]++;
                }
                reader_free(&rd);
            }
            for (uint64_t i = 0; i < n; i++)
                CU_ASSERT_EQUAL(seen[i], 1);
        }
    }
    /* A position taken in one mode does not resume the other. */
    ReaderPosition pos = {.seed = 77, .rank = 0, .world = 2, .interleave = 1};
    ReaderOptions bad = opts(3, 0, 2, 77, 2);
    bad.start = &pos;
    Reader *rd = NULL;
    CU_ASSERT_EQUAL(reader_new(ds, &bad, &rd), PSREC_E_RANGE);
    free(single);
    free(got);
    free(seen);
}

/* Epochs of one rank: the same set each time, a different order, copies exact throughout. */
static void test_epochs_and_contents(void)
{
    Dataset *ds = fx(1001);
    DatasetTxn *txn = NULL;
    CU_ASSERT_EQUAL_FATAL(dataset_txn_new(ds, &txn), 0);
    uint64_t b, e;
    reader_partition(1001, 1, 2, &b, &e);
    uint64_t cnt = e - b;
    uint64_t *ep[3];
    ReaderOptions o = opts(32, 1, 2, 5, 2);
    Reader *r = NULL;
    CU_ASSERT_EQUAL_FATAL(reader_new(ds, &o, &r), 0);
    for (int k = 0; k < 3; k++) {
        ep[k] = malloc(cnt * sizeof *ep[k]);
        CU_ASSERT_EQUAL(read_epoch(r, 32, ep[k], cnt, txn), (long)cnt);
    }
    ReaderStats st;
    reader_stats(r, &st);
    CU_ASSERT_EQUAL(st.batches, 3 * ((cnt + 31) / 32));
    reader_free(&r);
    int differ01 = 0, differ12 = 0;
    uint64_t sum0 = 0, sum1 = 0;
    for (uint64_t i = 0; i < cnt; i++) {
        differ01 += ep[0][i] != ep[1][i];
        differ12 += ep[1][i] != ep[2][i];
        sum0 += ep[0][i] * ep[0][i];
        sum1 += ep[1][i] * ep[1][i];
    }
    CU_ASSERT(differ01 > (int)cnt / 2);
    CU_ASSERT(differ12 > (int)cnt / 2);
    CU_ASSERT_EQUAL(sum0, sum1);
    for (int k = 0; k < 3; k++)
        free(ep[k]);
    dataset_txn_free(&txn);
}

/* The uninterrupted stream, cut after every call and resumed from the saved position with
 * another prefetch depth: the concatenation is the same stream. */
static void check_resume(uint64_t n, uint32_t bsize, uint32_t rank, uint32_t world, int calls)
{
    Dataset *ds = fx(n);
    size_t cap = (size_t)calls * (bsize + 1) + 1;
    uint64_t *full = malloc(cap * sizeof *full), *cut = malloc(cap * sizeof *cut);
    ReaderOptions o = opts(bsize, rank, world, 77, 2);
    Reader *r = NULL;
    CU_ASSERT_EQUAL_FATAL(reader_new(ds, &o, &r), 0);
    size_t nfull = record(r, calls, full);
    reader_free(&r);
    CU_ASSERT_FATAL(nfull != SIZE_MAX);
    int mismatches = 0;
    for (int c = 0; c <= calls; c++) {
        o.prefetch_depth = 1 + (uint32_t)(c % 4);
        o.start = NULL;
        CU_ASSERT_EQUAL_FATAL(reader_new(ds, &o, &r), 0);
        size_t k = record(r, c, cut);
        ReaderPosition pos;
        reader_position(r, &pos);
        reader_free(&r);
        o.prefetch_depth = 4 - (uint32_t)(c % 4);
        o.start = &pos;
        CU_ASSERT_EQUAL_FATAL(reader_new(ds, &o, &r), 0);
        size_t k2 = record(r, calls - c, cut + k);
        reader_free(&r);
        if (k == SIZE_MAX || k2 == SIZE_MAX || k + k2 != nfull ||
            memcmp(cut, full, nfull * sizeof *full) != 0)
            mismatches++;
    }
    CU_ASSERT_EQUAL(mismatches, 0);
    free(full);
    free(cut);
}

static void test_resume(void)
{
    check_resume(100, 5, 1, 3, 25);   /* 33 samples: 7 batches + an end, for 3 epochs */
    check_resume(100, 11, 0, 1, 40);  /* 100 = 9 full + 1 short */
    check_resume(7, 7, 0, 1, 9);      /* one full batch per epoch: ends right at the batch */
    check_resume(1, 4, 1, 2, 5);      /* an empty partition: only ends of epoch */
    check_resume(1001, 64, 0, 1, 40); /* crosses two epoch boundaries */

    /* Positions at an epoch boundary, stated explicitly. */
    ReaderPosition at_end = {.seed = 77, .epoch = 2, .offset = 7, .rank = 0, .world = 1};
    ReaderOptions o = opts(3, 0, 1, 77, 2);
    o.start = &at_end;
    Reader *r = NULL;
    const ReaderBatch *b;
    CU_ASSERT_EQUAL_FATAL(reader_new(fx(7), &o, &r), 0);
    CU_ASSERT_EQUAL(reader_next(r, &b), 0);
    CU_ASSERT_PTR_NULL(b); /* the end of epoch 2 comes first */
    CU_ASSERT_EQUAL(reader_next(r, &b), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(b->epoch, 3);
    CU_ASSERT_EQUAL(b->offset, 0);
    reader_free(&r);
}

static void test_depths_agree(void)
{
    const uint32_t depths[] = {0, 1, 2, 4, READER_MAX_DEPTH};
    uint64_t *ref = malloc(4000 * sizeof *ref), *got = malloc(4000 * sizeof *got);
    size_t nref = 0;
    for (size_t k = 0; k < sizeof depths / sizeof depths[0]; k++) {
        ReaderOptions o = opts(10, 2, 3, 31337, depths[k]);
        Reader *r = NULL;
        CU_ASSERT_EQUAL_FATAL(reader_new(fx(1001), &o, &r), 0);
        size_t n = record(r, 90, k ? got : ref);
        /* D+1 buffers. Once the thread has filled every slot after seeing the partition's
         * largest impression (34 batches an epoch, 90 calls here), each is at its bound. */
        ReaderStats st;
        reader_stats(r, &st);
        reader_free(&r);
        uint32_t d = depths[k] ? depths[k] : READER_DEFAULT_DEPTH;
        uint64_t b, e;
        reader_partition(1001, 2, 3, &b, &e);
        size_t bound = (d + 1) * reader_buffer_bytes(10, FX_MAX_HIS, fx_max_nneg(b, e));
        if (d <= 4)
            CU_ASSERT_EQUAL(st.buffer_bytes, bound);
        CU_ASSERT(st.buffer_bytes <= bound);
        CU_ASSERT(st.buffer_bytes > (d + 1) * reader_buffer_bytes(10, FX_MAX_HIS, 0));
        if (k == 0)
            nref = n;
        else
            CU_ASSERT(n == nref && memcmp(got, ref, n * sizeof *got) == 0);
    }
    CU_ASSERT(nref > 800);
    free(ref);
    free(got);
}

/* The borrowed batch must not change while the thread works on the next ones. */
static void test_borrowed_batch_stable(void)
{
    ReaderOptions o = opts(16, 0, 1, 3, 1);
    Reader *r = NULL;
    CU_ASSERT_EQUAL_FATAL(reader_new(fx(1001), &o, &r), 0);
    const ReaderBatch *b;
    for (int round = 0; round < 5; round++) {
        CU_ASSERT_EQUAL_FATAL(reader_next(r, &b), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        uint64_t idx[16];
        uint32_t user[16], nneg_total = b->neg_off[b->n];
        memcpy(idx, b->index, b->n * sizeof *idx);
        memcpy(user, b->user, b->n * sizeof *user);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL); /* time for the thread to fill the other slot */
        CU_ASSERT_EQUAL(memcmp(idx, b->index, b->n * sizeof *idx), 0);
        CU_ASSERT_EQUAL(memcmp(user, b->user, b->n * sizeof *user), 0);
        CU_ASSERT_EQUAL(b->neg_off[b->n], nneg_total);
    }
    reader_free(&r);
}

/* Free wherever the thread is: blocked on a full queue, mid-fill, at an epoch end, or never
 * consumed. ASan/LSan catch leaks, a hang is caught by the ctest timeout. */
static void test_free_mid_epoch(void)
{
    for (int k = 0; k < 60; k++) {
        ReaderOptions o = opts(1 + (uint32_t)(k % 9), 0, 1, (uint64_t)k, 1 + (uint32_t)(k % 4));
        Reader *r = NULL;
        CU_ASSERT_EQUAL_FATAL(reader_new(fx(k % 3 ? 1001 : 7), &o, &r), 0);
        const ReaderBatch *b;
        for (int c = 0; c < k % 5; c++)
            CU_ASSERT_EQUAL(reader_next(r, &b), 0);
        if (k % 2) {
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL); /* let the thread fill the queue and block */
        }
        reader_free(&r);
        CU_ASSERT_PTR_NULL(r);
    }
    reader_free(NULL);
}

/* Buffers reach (D+1) * reader_buffer_bytes(B, his_len, max_nneg) and stay there. */
static void test_memory_bound(void)
{
    const uint32_t bsize = 16, depth = 2;
    uint64_t *scratch = malloc(1001 * sizeof *scratch);
    ReaderOptions o = opts(bsize, 0, 1, 8, depth);
    Reader *r = NULL;
    CU_ASSERT_EQUAL_FATAL(reader_new(fx(1001), &o, &r), 0);
    for (int e = 0; e < 2; e++)
        CU_ASSERT_EQUAL(read_epoch(r, bsize, scratch, 1001, NULL), 1001);
    ReaderStats warm, later;
    reader_stats(r, &warm);
    for (int e = 0; e < 4; e++)
        CU_ASSERT_EQUAL(read_epoch(r, bsize, scratch, 1001, NULL), 1001);
    reader_stats(r, &later);
    reader_free(&r);
    uint32_t max_nneg = fx_max_nneg(0, 1001);
    CU_ASSERT_EQUAL(warm.max_nneg, max_nneg);
    CU_ASSERT(warm.grow_events > 0);
    CU_ASSERT_EQUAL(later.grow_events, warm.grow_events); /* no allocation after warm-up */
    CU_ASSERT_EQUAL(later.buffer_bytes, warm.buffer_bytes);
    CU_ASSERT_EQUAL(warm.buffer_bytes, (depth + 1) * reader_buffer_bytes(bsize, FX_MAX_HIS,
                                                                         max_nneg));
    CU_ASSERT_EQUAL(later.batches, 6 * ((1001 + bsize - 1) / bsize));

    /* Growth follows the data actually read: a partition without a big impression keeps
     * small buffers. Samples 0..15 of the 1001 fixture have at most 5 negatives. */
    CU_ASSERT_EQUAL(fx_max_nneg(0, 16), 5);
    o = opts(4, 0, 59, 8, depth);
    CU_ASSERT_EQUAL_FATAL(reader_new(fx(1001), &o, &r), 0);
    CU_ASSERT_EQUAL(read_epoch(r, 4, scratch, 1001, NULL), 16);
    reader_stats(r, &later);
    reader_free(&r);
    CU_ASSERT(later.max_nneg <= 5);
    CU_ASSERT(later.buffer_bytes <= (depth + 1) * reader_buffer_bytes(4, FX_MAX_HIS, 5));
    free(scratch);
}

static void test_empty_partition(void)
{
    ReaderOptions o = opts(4, 0, 1, 1, 2);
    Reader *r = NULL;
    CU_ASSERT_EQUAL_FATAL(reader_new(fx(0), &o, &r), 0);
    const ReaderBatch *b = (const ReaderBatch *)&b;
    for (uint64_t e = 0; e < 5; e++) {
        CU_ASSERT_EQUAL(reader_next(r, &b), 0);
        CU_ASSERT_PTR_NULL(b);
        ReaderPosition pos;
        reader_position(r, &pos);
        CU_ASSERT_EQUAL(pos.epoch, e + 1);
        CU_ASSERT_EQUAL(pos.offset, 0);
    }
    reader_free(&r);
}

/* Damage one record of a copy of the 100 fixture; the thread's error reaches the consumer. */
static void test_damaged_record(void)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/damaged", fx_dir);
    CU_ASSERT_EQUAL_FATAL(fx_build(path, 100), 0);
    const size_t victim = 42;
    {
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi dbi;
        CU_ASSERT_EQUAL_FATAL(mdb_env_create(&env), 0);
        CU_ASSERT_EQUAL_FATAL(mdb_env_set_maxdbs(env, 16), 0);
        CU_ASSERT_EQUAL_FATAL(mdb_env_set_mapsize(env, (size_t)1 << 30), 0);
        CU_ASSERT_EQUAL_FATAL(mdb_env_open(env, path, 0, 0644), 0);
        CU_ASSERT_EQUAL_FATAL(mdb_txn_begin(env, NULL, 0, &txn), 0);
        CU_ASSERT_EQUAL_FATAL(mdb_dbi_open(txn, "samples", MDB_INTEGERKEY, &dbi), 0);
        uint32_t bad[7] = {1, 2, 0, 0, 4, 0, 9}; /* says 4 history entries, holds 1 */
        MDB_val k = {sizeof victim, (void *)&victim}, v = {sizeof bad, bad};
        CU_ASSERT_EQUAL_FATAL(mdb_put(txn, dbi, &k, &v, 0), 0);
        CU_ASSERT_EQUAL_FATAL(mdb_txn_commit(txn), 0);
        mdb_env_close(env);
    }
    Dataset *ds = NULL;
    CU_ASSERT_EQUAL_FATAL(dataset_open(path, &ds), 0);
    const uint32_t bsize = 4;
    ReaderPerm p;
    reader_perm_init(&p, 100, 6, 0, 0);
    uint64_t at = 0;
    while (reader_perm_at(&p, at) != victim)
        at++;
    ReaderOptions o = opts(bsize, 0, 1, 6, 3);
    Reader *r = NULL;
    CU_ASSERT_EQUAL_FATAL(reader_new(ds, &o, &r), 0);
    const ReaderBatch *b;
    uint64_t delivered = 0;
    int rc;
    psrec_errclear();
    while ((rc = reader_next(r, &b)) == 0 && b)
        delivered += b->n;
    CU_ASSERT_EQUAL(rc, PSREC_E_FORMAT);
    /* Every batch before the damaged one was handed out, the damaged one was not. */
    CU_ASSERT_EQUAL(delivered, at / bsize * bsize);
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), path));
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "samples row 42"));
    ReaderPosition pos;
    reader_position(r, &pos);
    CU_ASSERT_EQUAL(pos.offset, delivered);
    psrec_errclear();
    CU_ASSERT_EQUAL(reader_next(r, &b), PSREC_E_FORMAT); /* and it stays failed */
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "samples row 42"));
    reader_free(&r);
    dataset_free(&ds);
}

static void test_bad_options(void)
{
    Dataset *ds = fx(100);
    Reader *r = (Reader *)&r;
    ReaderOptions o = opts(0, 0, 1, 1, 2);
    CU_ASSERT_EQUAL(reader_new(ds, &o, &r), PSREC_E_RANGE);
    CU_ASSERT_PTR_NULL(r);
    o = opts(4, 3, 3, 1, 2);
    CU_ASSERT_EQUAL(reader_new(ds, &o, &r), PSREC_E_RANGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "rank 3"));
    o = opts(4, 0, 0, 1, 2);
    CU_ASSERT_EQUAL(reader_new(ds, &o, &r), PSREC_E_RANGE);
    o = opts(4, 0, 1, 1, READER_MAX_DEPTH + 1);
    CU_ASSERT_EQUAL(reader_new(ds, &o, &r), PSREC_E_RANGE);
    ReaderPosition pos = {.seed = 2, .epoch = 0, .offset = 0, .rank = 0, .world = 1};
    o = opts(4, 0, 1, 1, 2);
    o.start = &pos;
    CU_ASSERT_EQUAL(reader_new(ds, &o, &r), PSREC_E_RANGE); /* another seed */
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "seed"));
    pos = (ReaderPosition){.seed = 1, .epoch = 0, .offset = 51, .rank = 1, .world = 2};
    o = opts(4, 1, 2, 1, 2);
    o.start = &pos;
    CU_ASSERT_EQUAL(reader_new(ds, &o, &r), PSREC_E_RANGE); /* past the 50 of rank 1 */
    pos.offset = 50;
    CU_ASSERT_EQUAL(reader_new(ds, &o, &r), 0);
    CU_ASSERT_PTR_NOT_NULL(r);
    reader_free(&r);
}

/* ------------------------------------------------------------------ elastic resume */

enum { EL_EPOCHS = 40 };

/* How often each (epoch, sample) was handed out, over every worker of every stage. */
typedef struct Tally {
    uint64_t n;
    unsigned *count; /* (EL_EPOCHS, n) */
    uint64_t top;    /* largest epoch seen */
    int bad;         /* an epoch past EL_EPOCHS, or a reader error */
} Tally;

static void tally_batch(Tally *t, const ReaderBatch *b)
{
    if (b->epoch >= EL_EPOCHS) {
        t->bad = 1;
        return;
    }
    t->top = b->epoch > t->top ? b->epoch : t->top;
    for (uint32_t i = 0; i < b->n; i++)
        t->count[b->epoch * t->n + b->index[i]]++;
}

/* Run a reader for `calls` reader_next calls, tallying; *pos gets its position. With stream,
 * also record the stream (as record() does) into stream, *nstream values. */
static void run_calls(Dataset *ds, const ReaderOptions *o, long calls, Tally *t,
                      ReaderPosition *pos, uint64_t *stream, size_t *nstream)
{
    Reader *r = NULL;
    if (reader_new(ds, o, &r)) {
        fprintf(stderr, "\n  reader_new: %s\n", psrec_errmsg());
        t->bad = 1;
        return;
    }
    const ReaderBatch *b;
    for (long c = 0; c < calls; c++) {
        if (reader_next(r, &b)) {
            t->bad = 1;
            break;
        }
        if (stream) {
            if (!b)
                stream[(*nstream)++] = UINT64_MAX;
            for (uint32_t i = 0; b && i < b->n; i++)
                stream[(*nstream)++] = b->epoch << 32 | b->index[i];
        }
        if (b && t)
            tally_batch(t, b);
    }
    reader_position(r, pos);
    reader_free(&r);
}

/* Encode and decode plan p: the copy must encode to the same bytes. Returns the copy. */
static ReaderPlan *plan_roundtrip(const ReaderPlan *p)
{
    size_t len = reader_plan_encoded_size(p), len2 = 0;
    unsigned char *buf = malloc(len), *buf2 = malloc(len);
    CU_ASSERT_EQUAL(reader_plan_encode(p, buf, len, &len2), 0);
    CU_ASSERT_EQUAL(len2, len);
    ReaderPlan *q = NULL;
    CU_ASSERT_EQUAL(reader_plan_decode(buf, len, &q), 0);
    if (q) {
        CU_ASSERT_EQUAL(reader_plan_encode(q, buf2, len, &len2), 0);
        CU_ASSERT(memcmp(buf, buf2, len) == 0);
        CU_ASSERT_EQUAL(q->nparts, p->nparts);
        for (uint32_t k = 0; k < q->nparts && k < p->nparts; k++)
            CU_ASSERT_EQUAL(q->parts[k].remaining, p->parts[k].remaining);
    }
    free(buf);
    free(buf2);
    return q;
}

/* Every part of `next` holds at most `world` more segments than the same epoch of `prev`. */
static void check_growth(const ReaderPlan *next, const ReaderPlan *prev, uint32_t world)
{
    for (uint32_t k = 0; k < next->nparts; k++) {
        const ReaderPlanPart *pp = reader_plan_part(prev, next->parts[k].epoch);
        CU_ASSERT(next->parts[k].nseg <= world + (pp ? pp->nseg : 0));
        CU_ASSERT(next->parts[k].remaining < next->samples);
    }
}

/* One scenario: W workers (mode m1) start at epoch 1 and stop at random calls; W2 workers
 * (m2) resume, each stopping twice (the second time after an exact same-plan resume that
 * must equal an uninterrupted reader); W3 workers (m3) resume from the second cut and run to
 * the end of the epoch after everything seen. Then every sample of epochs 1..that epoch was
 * handed out exactly once, and that last epoch was each W3 worker's normal layout. */
static void elastic_scenario(uint64_t n, uint32_t W, int m1, uint32_t W2, int m2, uint32_t W3,
                             int m3, Rng *rng)
{
    Dataset *ds = fx(n);
    const uint64_t seed = 4242 + n;
    Tally t = {.n = n ? n : 1};
    t.count = calloc((size_t)EL_EPOCHS * t.n, sizeof *t.count);
    ReaderPosition pos1[5], pos2[5];
    ReaderPlan *plan1 = NULL, *plan2 = NULL;
    uint32_t B = 1 + (uint32_t)rng_below(rng, 4);

    /* Stage 1: the workers that wrote the first checkpoint. */
    for (uint32_t r = 0; r < W; r++) {
        ReaderPosition st = {.seed = seed, .epoch = 1, .rank = r, .world = W,
                             .interleave = (uint32_t)m1};
        ReaderOptions o = opts(B, r, W, seed, 1 + (uint32_t)rng_below(rng, 3));
        o.interleave = m1;
        o.start = &st;
        uint64_t batches = (reader_partition_size(n, r, W, m1) + B - 1) / B;
        run_calls(ds, &o, (long)rng_below(rng, 2 * batches + 4), &t, &pos1[r], NULL, NULL);
    }

    /* Stage 2: resume on W2 workers. The same layout resumes from the positions as they are
     * (every other scenario; the other half builds a plan anyway, which must work too). */
    int direct = !reader_plan_needed(W, m1, W2, m2) && rng_below(rng, 2);
    if (!direct) {
        ReaderPlan *built = NULL;
        CU_ASSERT_EQUAL_FATAL(reader_plan_build(n, pos1, W, NULL, &built), 0);
        check_growth(built, NULL, W);
        plan1 = plan_roundtrip(built);
        reader_plan_free(&built);
        CU_ASSERT_PTR_NULL(built);
        CU_ASSERT_PTR_NOT_NULL_FATAL(plan1);
    }
    uint32_t B2 = 1 + (uint32_t)rng_below(rng, 4);
    size_t cap = 4 * (n + 8) * 8 + 64;
    uint64_t *ref = malloc(cap * sizeof *ref), *cut = malloc(cap * sizeof *cut);
    int mismatches = 0;
    for (uint32_t r = 0; r < W2; r++) {
        ReaderOptions o = opts(B2, r, W2, seed, 2);
        o.interleave = m2;
        o.plan = plan1;
        o.start = direct ? &pos1[r] : NULL;
        const ReaderPlanPart *first = plan1 ? reader_plan_part(plan1, plan1->epoch) : NULL;
        uint64_t size = first ? reader_plan_share(first, r, W2)
                              : reader_partition_size(n, r, W2, m2);
        long c1 = (long)rng_below(rng, (size + B2 - 1) / B2 + 3);
        long c2 = (long)rng_below(rng, (size + B2 - 1) / B2 + 3);
        ReaderPosition mid, end_ref;
        size_t nref = 0, ncut = 0;
        run_calls(ds, &o, c1 + c2, NULL, &end_ref, ref, &nref);
        run_calls(ds, &o, c1, &t, &mid, cut, &ncut);
        ReaderOptions o2 = o;
        o2.start = &mid;
        o2.prefetch_depth = 3;
        run_calls(ds, &o2, c2, &t, &pos2[r], cut, &ncut);
        if (nref != ncut || memcmp(ref, cut, nref * sizeof *ref) ||
            memcmp(&end_ref, &pos2[r], sizeof end_ref))
            mismatches++;
    }
    CU_ASSERT_EQUAL(mismatches, 0);

    /* Stage 3: resume the cut of stage 2 on W3 workers. */
    CU_ASSERT_EQUAL_FATAL(reader_plan_build(n, pos2, W2, plan1, &plan2), 0);
    check_growth(plan2, plan1, W2);
    uint64_t last = t.top > plan2->epoch ? t.top : plan2->epoch;
    if (plan2->nparts && plan2->parts[plan2->nparts - 1].epoch > last)
        last = plan2->parts[plan2->nparts - 1].epoch;
    last++; /* an epoch no one started: each W3 worker's normal layout */
    CU_ASSERT_FATAL(last < EL_EPOCHS);
    uint32_t B3 = 1 + (uint32_t)rng_below(rng, 5);
    int normal_ok = 1;
    for (uint32_t r = 0; r < W3; r++) {
        ReaderOptions o = opts(B3, r, W3, seed, 2);
        o.interleave = m3;
        o.plan = plan2;
        Reader *rd = NULL;
        CU_ASSERT_EQUAL_FATAL(reader_new(ds, &o, &rd), 0);
        ReaderPosition p, want;
        reader_position(rd, &p);
        reader_start_position(plan2, seed, r, W3, m3, &want);
        CU_ASSERT(memcmp(&p, &want, sizeof p) == 0);
        CU_ASSERT_EQUAL(p.epoch, plan2->epoch);
        size_t nlast = 0;
        const ReaderBatch *b;
        for (;;) {
            if (reader_next(rd, &b)) {
                t.bad = 1;
                break;
            }
            reader_position(rd, &p);
            CU_ASSERT_EQUAL(p.planned, reader_plan_part(plan2, p.epoch) != NULL);
            if (!b && p.epoch > last)
                break;
            if (b) {
                tally_batch(&t, b);
                if (b->epoch == last)
                    for (uint32_t i = 0; i < b->n; i++)
                        ref[nlast++] = b->index[i];
            }
        }
        reader_free(&rd);
        /* The same epoch from a plain reader of this layout. */
        ReaderPosition st = {.seed = seed, .epoch = last, .rank = r, .world = W3,
                             .interleave = (uint32_t)m3};
        o.plan = NULL;
        o.start = &st;
        CU_ASSERT_EQUAL_FATAL(reader_new(ds, &o, &rd), 0);
        long k = read_epoch(rd, B3, cut, cap, NULL);
        reader_free(&rd);
        if (k < 0 || (size_t)k != nlast || memcmp(ref, cut, nlast * sizeof *ref))
            normal_ok = 0;
    }
    CU_ASSERT(normal_ok);
    CU_ASSERT_FALSE(t.bad);
    uint64_t wrong = 0;
    for (uint64_t e = 0; e < EL_EPOCHS; e++)
        for (uint64_t i = 0; i < n; i++)
            wrong += t.count[e * t.n + i] != (e >= 1 && e <= last);
    if (wrong)
        fprintf(stderr, "\n  n=%llu W=%u(%d) W2=%u(%d) W3=%u(%d) direct=%d: %llu wrong counts\n",
                (unsigned long long)n, W, m1, W2, m2, W3, m3, direct,
                (unsigned long long)wrong);
    CU_ASSERT_EQUAL(wrong, 0);
    reader_plan_free(&plan1);
    reader_plan_free(&plan2);
    free(ref);
    free(cut);
    free(t.count);
}

static void test_elastic_resume(void)
{
    Rng rng;
    rng_seed(&rng, 20240607);
    const uint64_t sizes[] = {0, 1, 3, 7, 13, 100, 101};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        for (uint32_t W = 1; W <= 5; W++)
            for (uint32_t W2 = 1; W2 <= 5; W2++)
                for (int m1 = 0; m1 < 2; m1++)
                    elastic_scenario(sizes[k], W, m1, W2, (int)rng_below(&rng, 2),
                                     1 + (uint32_t)rng_below(&rng, 5),
                                     (int)rng_below(&rng, 2), &rng);
    for (int k = 0; k < 6; k++)
        elastic_scenario(1001, 1 + (uint32_t)k % 5, k & 1, 5 - (uint32_t)k % 5, k % 3 == 0,
                         2 + (uint32_t)k % 3, k % 2 == 0, &rng);
}

/* A worked example against the definition: N = 13, ranges of 2 workers (6 and 7 samples),
 * stopped at offsets 4 and 2: V segments [4, 6) and [8, 13), R = 7; 3 new workers take V 4,5 /
 * V 8,9 / V 10,11,12, where V[v] = perm_0(v) for v < 6 and 6 + perm_1(v - 6) after. */
static void test_plan_worked_example(void)
{
    const uint64_t seed = 9;
    ReaderPosition pos[2] = {{.seed = seed, .epoch = 3, .offset = 4, .rank = 0, .world = 2},
                             {.seed = seed, .epoch = 3, .offset = 2, .rank = 1, .world = 2}};
    ReaderPlan *p = NULL;
    CU_ASSERT_EQUAL_FATAL(reader_plan_build(13, pos, 2, NULL, &p), 0);
    CU_ASSERT_EQUAL(p->epoch, 3);
    CU_ASSERT_EQUAL_FATAL(p->nparts, 1);
    const ReaderPlanPart *pt = &p->parts[0];
    CU_ASSERT_EQUAL(pt->epoch, 3);
    CU_ASSERT_EQUAL(pt->base_world, 2);
    CU_ASSERT_EQUAL(pt->base_interleave, 0);
    CU_ASSERT_EQUAL(pt->remaining, 7);
    CU_ASSERT_EQUAL_FATAL(pt->nseg, 2);
    CU_ASSERT(pt->segments[0].begin == 4 && pt->segments[0].end == 6);
    CU_ASSERT(pt->segments[1].begin == 8 && pt->segments[1].end == 13);
    CU_ASSERT(pt->before[0] == 0 && pt->before[1] == 2);
    ReaderPerm p0, p1;
    reader_perm_init(&p0, 6, seed, 3, 0);
    reader_perm_init(&p1, 7, seed, 3, 1);
    const uint64_t want_v[3][3] = {{4, 5}, {8, 9}, {10, 11, 12}};
    const uint64_t want_n[3] = {2, 2, 3};
    for (uint32_t r = 0; r < 3; r++) {
        ReaderOptions o = opts(8, r, 3, seed, 2);
        o.interleave = 1; /* the new mode only shapes later epochs */
        o.plan = p;
        Reader *rd = NULL;
        CU_ASSERT_EQUAL_FATAL(reader_new(fx(13), &o, &rd), 0);
        const ReaderBatch *b;
        CU_ASSERT_EQUAL(reader_next(rd, &b), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_EQUAL(b->epoch, 3);
        CU_ASSERT_EQUAL(b->n, want_n[r]);
        for (uint32_t i = 0; i < b->n && i < 3; i++) {
            uint64_t v = want_v[r][i];
            CU_ASSERT_EQUAL(b->index[i], v < 6 ? reader_perm_at(&p0, v)
                                               : 6 + reader_perm_at(&p1, v - 6));
        }
        ReaderPosition at;
        reader_position(rd, &at);
        CU_ASSERT(at.epoch == 3 && at.offset == want_n[r] && at.planned == 1);
        CU_ASSERT_EQUAL(reader_next(rd, &b), 0);
        CU_ASSERT_PTR_NULL(b);
        reader_position(rd, &at);
        CU_ASSERT(at.epoch == 4 && at.offset == 0 && at.planned == 0);
        reader_free(&rd);
    }
    reader_plan_free(&p);

    /* The same cut in interleaved mode: V is rank 0's 7 then rank 1's 6 of one permutation P
     * of all 13; offsets 4 and 2 leave [4, 7) and [9, 13). */
    pos[0].interleave = pos[1].interleave = 1;
    CU_ASSERT_EQUAL_FATAL(reader_plan_build(13, pos, 2, NULL, &p), 0);
    CU_ASSERT_EQUAL_FATAL(p->nparts, 1);
    CU_ASSERT_EQUAL_FATAL(p->parts[0].nseg, 2);
    CU_ASSERT(p->parts[0].segments[0].begin == 4 && p->parts[0].segments[0].end == 7);
    CU_ASSERT(p->parts[0].segments[1].begin == 9 && p->parts[0].segments[1].end == 13);
    ReaderPerm all;
    reader_perm_init(&all, 13, seed, 3, 0);
    ReaderOptions o = opts(16, 0, 1, seed, 2);
    o.plan = p;
    Reader *rd = NULL;
    CU_ASSERT_EQUAL_FATAL(reader_new(fx(13), &o, &rd), 0);
    const ReaderBatch *b;
    CU_ASSERT_EQUAL(reader_next(rd, &b), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL_FATAL(b->n, 7);
    const uint64_t v[7] = {4, 5, 6, 9, 10, 11, 12};
    for (int i = 0; i < 7; i++) {
        uint32_t rank = v[i] < 7 ? 0 : 1;
        uint64_t j = v[i] < 7 ? v[i] : v[i] - 7;
        CU_ASSERT_EQUAL(b->index[i], reader_perm_at(&all, rank + 2 * j));
    }
    reader_free(&rd);
    reader_plan_free(&p);
}

/* Workers in different epochs (one ran ahead into the next epoch, one finished two epochs
 * later with an empty partition): parts only for epochs partly trained. */
static void test_plan_epochs_apart(void)
{
    /* N = 3 over 5 ranges: ranks 1, 3, 4 hold V[0, 1), V[1, 2), V[2, 3); ranks 0 and 2 none. */
    ReaderPosition pos[5];
    for (uint32_t r = 0; r < 5; r++)
        pos[r] = (ReaderPosition){.seed = 1, .epoch = 2, .rank = r, .world = 5};
    pos[0].epoch = 9;             /* empty partition: spun ahead, trained nothing */
    pos[1].epoch = 3;             /* finished epoch 2, nothing of 3 */
    pos[4].epoch = 4;             /* finished 2 and 3 */
    ReaderPlan *p = NULL;
    CU_ASSERT_EQUAL_FATAL(reader_plan_build(3, pos, 5, NULL, &p), 0);
    CU_ASSERT_EQUAL(p->epoch, 2);
    CU_ASSERT_EQUAL_FATAL(p->nparts, 2); /* 2 and 3; 4..9 nobody trained */
    CU_ASSERT_EQUAL(p->parts[0].epoch, 2);
    CU_ASSERT_EQUAL(p->parts[0].remaining, 1); /* rank 3's sample: V[1, 2) */
    CU_ASSERT(p->parts[0].nseg == 1 && p->parts[0].segments[0].begin == 1);
    CU_ASSERT_EQUAL(p->parts[1].epoch, 3);
    CU_ASSERT_EQUAL(p->parts[1].remaining, 2); /* ranks 1 and 3: V[0, 2), merged */
    CU_ASSERT(p->parts[1].nseg == 1 && p->parts[1].segments[0].end == 2);
    CU_ASSERT_PTR_NULL(reader_plan_part(p, 4));
    reader_plan_free(&p);

    /* Everyone done with epoch 2 (ends not all reported): an empty part, so epoch 2's end is
     * still reported once. */
    for (uint32_t r = 0; r < 5; r++)
        pos[r] = (ReaderPosition){.seed = 1, .epoch = 3, .rank = r, .world = 5};
    pos[3].epoch = 2;
    pos[3].offset = 1;
    CU_ASSERT_EQUAL_FATAL(reader_plan_build(3, pos, 5, NULL, &p), 0);
    CU_ASSERT_EQUAL(p->epoch, 2);
    CU_ASSERT_EQUAL_FATAL(p->nparts, 1);
    CU_ASSERT(p->parts[0].epoch == 2 && p->parts[0].remaining == 0 && p->parts[0].nseg == 0);
    ReaderOptions o = opts(4, 0, 2, 1, 2);
    o.plan = p;
    Reader *rd = NULL;
    CU_ASSERT_EQUAL_FATAL(reader_new(fx(3), &o, &rd), 0);
    const ReaderBatch *b;
    CU_ASSERT_EQUAL(reader_next(rd, &b), 0);
    CU_ASSERT_PTR_NULL(b); /* the end of epoch 2 */
    CU_ASSERT_EQUAL(reader_next(rd, &b), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(b->epoch, 3);
    reader_free(&rd);
    reader_plan_free(&p);

    /* All at the start of one epoch: nothing to re-partition. */
    for (uint32_t r = 0; r < 5; r++)
        pos[r] = (ReaderPosition){.seed = 1, .epoch = 7, .rank = r, .world = 5};
    CU_ASSERT_EQUAL_FATAL(reader_plan_build(3, pos, 5, NULL, &p), 0);
    CU_ASSERT(p->epoch == 7 && p->nparts == 0);
    reader_plan_free(&p);
}

/* Rewrite the CRC of an encoded plan after a deliberate change. */
static void plan_recrc(unsigned char *buf, size_t len)
{
    uint32_t c = ckpt_crc32(0, buf, len - 4);
    for (int i = 0; i < 4; i++)
        buf[len - 4 + (size_t)i] = (unsigned char)(c >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void test_plan_bytes(void)
{
    /* A plan with two parts and four segments. */
    ReaderPosition pos[3];
    for (uint32_t r = 0; r < 3; r++)
        pos[r] = (ReaderPosition){.seed = 5, .epoch = 1, .offset = r, .rank = r, .world = 3};
    pos[2].epoch = 2;
    pos[2].offset = 10;
    ReaderPlan *p = NULL;
    CU_ASSERT_EQUAL_FATAL(reader_plan_build(100, pos, 3, NULL, &p), 0);
    CU_ASSERT_EQUAL_FATAL(p->nparts, 2);
    size_t len = reader_plan_encoded_size(p), got = 0;
    /* Epoch 1: V[0, 33) and [34, 66); epoch 2: [0, 66) and [76, 100). */
    CU_ASSERT_EQUAL(len, 48 + 2 * 24 + 4 * 16 + 4);
    unsigned char *buf = malloc(len), *bad = malloc(len);
    CU_ASSERT_EQUAL(reader_plan_encode(p, buf, len - 1, &got), PSREC_E_RANGE);
    CU_ASSERT_EQUAL(got, len);
    CU_ASSERT_EQUAL_FATAL(reader_plan_encode(p, buf, len, &got), 0);
    ReaderPlan *q = plan_roundtrip(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    CU_ASSERT(q->seed == 5 && q->samples == 100 && q->epoch == 1);
    for (uint32_t k = 0; k < 2; k++) {
        CU_ASSERT_EQUAL(q->parts[k].nseg, p->parts[k].nseg);
        for (uint32_t j = 0; j < q->parts[k].nseg; j++) {
            CU_ASSERT_EQUAL(q->parts[k].segments[j].begin, p->parts[k].segments[j].begin);
            CU_ASSERT_EQUAL(q->parts[k].before[j], p->parts[k].before[j]);
        }
    }
    reader_plan_free(&q);
    int accepted = 0;
    for (size_t cut = 0; cut < len; cut++) {
        accepted += reader_plan_decode(buf, cut, &q) == 0;
        reader_plan_free(&q);
    }
    CU_ASSERT_EQUAL(accepted, 0);
    for (size_t i = 0; i < len; i++) {
        memcpy(bad, buf, len);
        bad[i] ^= (unsigned char)(1u << (i % 8));
        accepted += reader_plan_decode(bad, len, &q) == 0;
        reader_plan_free(&q);
    }
    CU_ASSERT_EQUAL(accepted, 0);
    /* Damage that a recomputed CRC does not hide. Segments start at 48 + 2*24 = 96. */
    struct {
        size_t at;
        uint64_t value;
        int width;
    } edits[] = {
        {96 + 8, 101, 8},          /* a segment past N */
        {96, 50, 8},               /* begin >= end */
        {96 + 16, 0, 8},           /* second segment not after the first (part 0 has 2) */
        {48 + 24, 1, 8},           /* part 1 at the epoch of part 0 */
        {32, 2, 8},                /* plan epoch after its first part */
        {48 + 8, 0, 4},            /* base world 0 */
        {48 + 12, 2, 4},           /* mode 2 */
        {48 + 20, 1, 4},           /* reserved */
        {48 + 16, 3, 4},           /* segment counts that do not add up to the bytes */
        {12, 3, 4},                /* part count */
        {40, 0, 8},                /* size field */
        {0, 0x4c505251u, 4},       /* magic */
        {4, 2, 4},                 /* version */
    };
    for (size_t k = 0; k < sizeof edits / sizeof edits[0]; k++) {
        memcpy(bad, buf, len);
        if (edits[k].width == 8) {
            put_le64(bad + edits[k].at, edits[k].value);
        } else {
            for (int i = 0; i < 4; i++)
                bad[edits[k].at + (size_t)i] = (unsigned char)(edits[k].value >> (8 * i));
        }
        plan_recrc(bad, len);
        int rc = reader_plan_decode(bad, len, &q);
        if (rc != PSREC_E_FORMAT)
            fprintf(stderr, "\n  edit %zu accepted\n", k);
        CU_ASSERT_EQUAL(rc, PSREC_E_FORMAT);
        CU_ASSERT_PTR_NULL(q);
    }
    /* An empty plan encodes too. */
    for (uint32_t r = 0; r < 3; r++)
        pos[r] = (ReaderPosition){.seed = 5, .epoch = 4, .rank = r, .world = 3};
    ReaderPlan *e = NULL;
    CU_ASSERT_EQUAL_FATAL(reader_plan_build(100, pos, 3, NULL, &e), 0);
    q = plan_roundtrip(e);
    CU_ASSERT(q && q->nparts == 0 && q->epoch == 4);
    reader_plan_free(&q);
    reader_plan_free(&e);
    reader_plan_free(&p);
    reader_plan_free(NULL);
    free(buf);
    free(bad);
}

static void test_workercut_bytes(void)
{
    WorkerCut c = {.pos = {.seed = 0x0102030405060708ULL, .epoch = 7, .offset = 12345,
                           .rank = 3, .world = 4, .interleave = 1, .planned = 1},
                   .steps = 999, .samples = 1ULL << 40};
    unsigned char buf[WORKERCUT_BYTES + 8], bad[WORKERCUT_BYTES];
    size_t len = 0;
    CU_ASSERT_EQUAL(workercut_encode(&c, buf, WORKERCUT_BYTES - 1, &len), PSREC_E_RANGE);
    CU_ASSERT_EQUAL(len, WORKERCUT_BYTES);
    CU_ASSERT_EQUAL_FATAL(workercut_encode(&c, buf, sizeof buf, &len), 0);
    CU_ASSERT_EQUAL(len, WORKERCUT_BYTES);
    CU_ASSERT(buf[0] == 'P' && buf[1] == 'W' && buf[2] == 'C' && buf[3] == 'T');
    CU_ASSERT_EQUAL(buf[32], 0x08); /* little-endian seed */
    WorkerCut d;
    memset(&d, 0xff, sizeof d);
    CU_ASSERT_EQUAL_FATAL(workercut_decode(buf, len, &d), 0);
    CU_ASSERT(memcmp(&c, &d, sizeof c) == 0);
    int accepted = 0;
    for (size_t cut = 0; cut < len; cut++)
        accepted += workercut_decode(buf, cut, &d) == 0;
    accepted += workercut_decode(buf, len + 1, &d) == 0;
    for (size_t i = 0; i < len; i++) {
        memcpy(bad, buf, len);
        bad[i] ^= (unsigned char)(0x80u >> (i % 8));
        accepted += workercut_decode(bad, len, &d) == 0;
    }
    CU_ASSERT_EQUAL(accepted, 0);
    /* Well-formed bytes of something that is not a position. */
    const struct {
        size_t at;
        uint32_t value;
    } edits[] = {{12, 4}, {16, 0}, {20, 2}, {24, 2}, {28, 1}, {72, 1}, {4, 2}, {8, 88}};
    for (size_t k = 0; k < sizeof edits / sizeof edits[0]; k++) {
        memcpy(bad, buf, len);
        for (int i = 0; i < 4; i++)
            bad[edits[k].at + (size_t)i] = (unsigned char)(edits[k].value >> (8 * i));
        plan_recrc(bad, len);
        CU_ASSERT_EQUAL(workercut_decode(bad, len, &d), PSREC_E_FORMAT);
    }
    c.pos.rank = 4;
    CU_ASSERT_EQUAL(workercut_encode(&c, buf, sizeof buf, &len), PSREC_E_RANGE);
}

static void test_plan_refusals(void)
{
    ReaderPosition pos[2] = {{.seed = 1, .epoch = 0, .offset = 3, .rank = 0, .world = 2},
                             {.seed = 1, .epoch = 0, .offset = 3, .rank = 1, .world = 2}};
    ReaderPlan *p = (ReaderPlan *)&p;
    CU_ASSERT_EQUAL(reader_plan_build(13, pos, 0, NULL, &p), PSREC_E_RANGE);
    CU_ASSERT_PTR_NULL(p);
    pos[1].rank = 0;
    CU_ASSERT_EQUAL(reader_plan_build(13, pos, 2, NULL, &p), PSREC_E_RANGE);
    pos[1].rank = 1;
    pos[1].seed = 2;
    CU_ASSERT_EQUAL(reader_plan_build(13, pos, 2, NULL, &p), PSREC_E_RANGE);
    pos[1].seed = 1;
    pos[1].interleave = 1;
    CU_ASSERT_EQUAL(reader_plan_build(13, pos, 2, NULL, &p), PSREC_E_RANGE);
    pos[1].interleave = 0;
    pos[0].offset = 7; /* rank 0 has 6 */
    CU_ASSERT_EQUAL(reader_plan_build(13, pos, 2, NULL, &p), PSREC_E_RANGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "offset 7"));
    pos[0].offset = 6;
    pos[0].planned = 1; /* no plan to be within */
    CU_ASSERT_EQUAL(reader_plan_build(13, pos, 2, NULL, &p), PSREC_E_RANGE);
    pos[0].planned = 0;
    pos[1].epoch = READER_PLAN_MAX_SPAN;
    CU_ASSERT_EQUAL(reader_plan_build(13, pos, 2, NULL, &p), PSREC_E_RANGE);
    pos[1].epoch = 0;
    CU_ASSERT_EQUAL_FATAL(reader_plan_build(13, pos, 2, NULL, &p), 0);
    ReaderPlan *q = NULL;
    /* Positions that do not follow the plan they claim. */
    ReaderPosition npos[3];
    for (uint32_t r = 0; r < 3; r++)
        npos[r] = (ReaderPosition){.seed = 1, .epoch = 0, .rank = r, .world = 3, .planned = 1};
    CU_ASSERT_EQUAL(reader_plan_build(12, npos, 3, p, &q), PSREC_E_RANGE); /* another N */
    npos[2].planned = 0;
    CU_ASSERT_EQUAL(reader_plan_build(13, npos, 3, p, &q), PSREC_E_RANGE);
    npos[2].planned = 1;
    npos[2].offset = reader_plan_share(&p->parts[0], 2, 3) + 1;
    CU_ASSERT_EQUAL(reader_plan_build(13, npos, 3, p, &q), PSREC_E_RANGE);
    npos[2].offset = reader_plan_share(&p->parts[0], 2, 3);
    CU_ASSERT_EQUAL(reader_plan_build(13, npos, 3, p, &q), 0);
    reader_plan_free(&q);

    /* Readers refuse plans and starts that do not fit. */
    Reader *rd = (Reader *)&rd;
    ReaderOptions o = opts(4, 0, 3, 1, 2);
    o.plan = p;
    CU_ASSERT_EQUAL(reader_new(fx(100), &o, &rd), PSREC_E_RANGE); /* plan for 13 samples */
    CU_ASSERT_PTR_NULL(rd);
    o = opts(4, 0, 3, 2, 2);
    o.plan = p;
    CU_ASSERT_EQUAL(reader_new(fx(13), &o, &rd), PSREC_E_RANGE); /* another seed */
    o = opts(4, 2, 3, 1, 2);
    o.plan = p;
    ReaderPosition st = npos[2];
    st.offset = reader_plan_share(&p->parts[0], 2, 3) + 1;
    o.start = &st;
    CU_ASSERT_EQUAL(reader_new(fx(13), &o, &rd), PSREC_E_RANGE); /* past the share */
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "plan share"));
    st.offset--;
    st.planned = 0;
    CU_ASSERT_EQUAL(reader_new(fx(13), &o, &rd), PSREC_E_RANGE); /* says: not planned */
    st.planned = 1;
    o.plan = NULL;
    CU_ASSERT_EQUAL(reader_new(fx(13), &o, &rd), PSREC_E_RANGE); /* planned, no plan */
    o.plan = p;
    CU_ASSERT_EQUAL(reader_new(fx(13), &o, &rd), 0);
    reader_free(&rd);
    reader_plan_free(&p);
}

int main(void)
{
    fx_dir = strdup(tu_mkdtemp("reader"));
    for (int i = 0; i < FX_COUNT; i++) {
        snprintf(fx_path[i], sizeof fx_path[i], "%s/n%llu", fx_dir,
                 (unsigned long long)fx_sizes[i]);
        if (fx_build(fx_path[i], fx_sizes[i]) || dataset_open(fx_path[i], &fx_ds[i])) {
            fprintf(stderr, "fixture %s: %s\n", fx_path[i], psrec_errmsg());
            while (i-- > 0)
                dataset_free(&fx_ds[i]);
            tu_rmtree(fx_dir);
            free(fx_dir);
            return 1;
        }
    }
    static const TuTest tests[] = {
        {"partition ranges", test_partition_ranges},
        {"permutation is a bijection", test_perm_bijection},
        {"permutation keys and spread", test_perm_keys},
        {"partitions cover every sample once", test_partition_coverage},
        {"interleaved partitions", test_interleave},
        {"epochs reshuffle, copies exact", test_epochs_and_contents},
        {"resume from a saved position", test_resume},
        {"prefetch depths give one stream", test_depths_agree},
        {"borrowed batch is stable", test_borrowed_batch_stable},
        {"free mid-epoch", test_free_mid_epoch},
        {"memory stops growing", test_memory_bound},
        {"empty partition", test_empty_partition},
        {"damaged record reaches the consumer", test_damaged_record},
        {"bad options", test_bad_options},
        {"elastic resume trains every sample once", test_elastic_resume},
        {"plan worked example", test_plan_worked_example},
        {"plan over workers epochs apart", test_plan_epochs_apart},
        {"plan bytes", test_plan_bytes},
        {"worker cut bytes", test_workercut_bytes},
        {"plan and start refusals", test_plan_refusals},
        {NULL, NULL},
    };
    tu_add_suite("reader", tests);
    int rc = tu_run_all();
    for (int i = 0; i < FX_COUNT; i++)
        dataset_free(&fx_ds[i]);
    tu_rmtree(fx_dir);
    free(fx_dir);
    return rc;
}
