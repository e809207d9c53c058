/* Tests for worker/reader: partitions cover every sample exactly once, the per-epoch order is
 * a keyed bijection, batches carry exact copies of the records, a saved position resumes the
 * very same sequence, the prefetch thread stops cleanly wherever it is, errors from the thread
 * reach the consumer with their message, and buffer memory stops growing after warm-up.
 * Fixture datasets (N = 0, 1, 7, 100, 1001 samples) are built once for the whole suite; every
 * field of sample i is a distinct function of i, so a misplaced copy is caught. */
#include "common/dataset.h"
#include "common/error.h"
#include "testutil/testutil.h"
#include "worker/reader.h"

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { FX_COUNT = 5, FX_MAX_HIS = 5, FX_BIG_NNEG = 200 };
static const uint64_t fx_sizes[FX_COUNT] = {0, 1, 7, 100, 1001};
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

static void fx_sample(uint64_t i, uint32_t his_len, SampleView *s, uint32_t *his, uint32_t *neg)
{
    s->user = (uint32_t)(7 * i + 1);
    s->pos = (uint32_t)(11 * i + 3);
    s->impression = i / 3 + 1000000;
    s->nhis = (uint32_t)(i % (his_len + 1));
    s->nneg = fx_nneg(i);
    for (uint32_t j = 0; j < s->nhis; j++)
        his[j] = (uint32_t)(i * 64 + j + 1);
    for (uint32_t j = 0; j < s->nneg; j++)
        neg[j] = 0x40000000u + (uint32_t)(i * 1024 + j);
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
        (rc = dataset_put_category(w, 0, "", 0)) || (rc = dataset_put_user(w, 0, "", 0)) ||
        (rc = dataset_put_news(w, 0, &nv)))
        goto fail;
    uint32_t his[FX_MAX_HIS], neg[FX_BIG_NNEG + 8];
    for (uint64_t i = 0; i < n; i++) {
        SampleView s;
        fx_sample(i, fx_his_len(n), &s, his, neg);
        if ((rc = dataset_put_sample(w, i, &s)))
            goto fail;
    }
    DatasetMeta m;
    memset(&m, 0, sizeof m);
    m.title_len = 1;
    m.his_len = fx_his_len(n);
    m.samples = n;
    m.news_rows = m.user_rows = m.category_rows = 1;
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
