/* libFuzzer target: the LMDB record decoders (common/dataset.h dataset_decode_news, _sample,
 * _impression), which every dataset read goes through. A damaged record must be refused,
 * never read past its end, and never let an id out of the meta's ranges through: the
 * decoders' contract is checked here on every record they accept.
 *
 * Input: byte 0 picks the decoder (0 news, 1 sample, 2 impression, 3 all three); bytes 1..4
 * set the meta's limits (title_len, his_len, and the table sizes, small so that range checks
 * are reached); the rest is one record, copied to a 4-byte aligned buffer of exactly its size,
 * as LMDB hands out records (ASan then catches a read past its end). */
#include "common/dataset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 5

/* p[0..n) lies inside rec[0..size). */
static void inside(const void *rec, size_t size, const void *p, size_t n)
{
    const char *a = rec, *b = p;
    if (n && (b < a || b + n > a + size))
        abort();
}

static void below(const uint32_t *ids, uint32_t n, uint64_t rows)
{
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] >= rows)
            abort();
}

static void news(const void *rec, size_t n, const DatasetMeta *m)
{
    NewsView v;
    if (dataset_decode_news(rec, n, m, &v))
        return;
    inside(rec, n, v.tokens, (size_t)v.ntok * 4);
    inside(rec, n, v.id, v.id_len);
    if (v.ntok == 0 || v.ntok > m->title_len || v.category >= m->category_rows)
        abort();
    below(v.tokens, v.ntok, m->vocab_rows);
}

static void sample(const void *rec, size_t n, const DatasetMeta *m)
{
    SampleView v;
    if (dataset_decode_sample(rec, n, m, &v))
        return;
    inside(rec, n, v.his, (size_t)v.nhis * 4);
    inside(rec, n, v.neg, (size_t)v.nneg * 4);
    if (v.nhis > m->his_len || v.user >= m->user_rows || v.pos >= m->news_rows ||
        v.impression >= m->impressions)
        abort();
    below(v.his, v.nhis, m->news_rows);
    below(v.neg, v.nneg, m->news_rows);
}

static void impression(const void *rec, size_t n, const DatasetMeta *m)
{
    ImpressionView v;
    if (dataset_decode_impression(rec, n, m, &v))
        return;
    inside(rec, n, v.his, (size_t)v.nhis * 4);
    inside(rec, n, v.cand, (size_t)v.ncand * 4);
    inside(rec, n, v.labels, v.ncand);
    inside(rec, n, v.id, v.id_len);
    if (v.nhis > m->his_len || v.user >= m->user_rows || v.labeled > 1)
        abort();
    below(v.his, v.nhis, m->news_rows);
    below(v.cand, v.ncand, m->news_rows);
    for (uint32_t i = 0; v.labeled && i < v.ncand; i++)
        if (v.labels[i] > 1)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR)
        return 0;
    DatasetMeta m;
    memset(&m, 0, sizeof m);
    m.title_len = 1 + data[1] % 40;
    m.his_len = data[2] % 60;
    m.news_rows = 1 + data[3];
    m.user_rows = 1 + data[4] % 16;
    m.vocab_rows = 2 + data[4] / 16 * 4;
    m.category_rows = 1 + data[3] % 8;
    m.impressions = 1 + data[2];
    size_t n = size - HDR;
    uint32_t *rec = malloc(n ? n : 1);
    if (!rec)
        return 0;
    memcpy(rec, data + HDR, n);
    switch (data[0] % 4) {
    case 0: news(rec, n, &m); break;
    case 1: sample(rec, n, &m); break;
    case 2: impression(rec, n, &m); break;
    default:
        news(rec, n, &m);
        sample(rec, n, &m);
        impression(rec, n, &m);
        break;
    }
    free(rec);
    return 0;
}
