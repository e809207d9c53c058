/* recommend's news-vector cache (see newscache.h). Reads verify everything they rely on
 * (key, shape, payload CRC) before the matrix is used; a failed or partial read only means
 * encoding again. */
#include "launch/newscache.h"

#include "common/ckpt.h"
#include "common/error.h"
#include "common/log.h"
#include "common/timer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NEWSCACHE_MAGIC 0x3143455656525350ULL /* "PSRVVEC1" as little-endian bytes */
#define NEWSCACHE_VERSION 1u

typedef struct NewsCacheHeader {
    uint64_t magic;
    uint32_t version;
    uint32_t header_bytes; /* sizeof(NewsCacheHeader) */
    uint64_t step;
    uint32_t ckpt_key;
    uint32_t data_key;
    uint64_t news_rows;
    uint32_t H;
    uint32_t reserved;
} NewsCacheHeader;

static uint32_t ckpt_key(const LoadedModel *m)
{
    uint32_t c = ckpt_crc32(0, &m->manifest.step, sizeof m->manifest.step);
    for (size_t i = 0; i < m->manifest.nfiles; i++) {
        const CkptManifestEntry *e = &m->manifest.files[i];
        c = ckpt_crc32(c, e->name, strlen(e->name));
        c = ckpt_crc32(c, &e->size, sizeof e->size);
        c = ckpt_crc32(c, &e->crc, sizeof e->crc);
    }
    return c;
}

static int data_key(Dataset *ds, DatasetTxn *txn, uint32_t *out)
{
    const DatasetMeta *dm = dataset_meta(ds);
    uint32_t c = ckpt_crc32(0, dm, sizeof *dm);
    for (uint64_t row = 0; row < dm->news_rows; row++) {
        NewsView nv;
        int rc = dataset_get_news(txn, (uint32_t)row, &nv);
        if (rc)
            return rc;
        c = ckpt_crc32(c, &nv.category, sizeof nv.category);
        c = ckpt_crc32(c, &nv.ntok, sizeof nv.ntok);
        c = ckpt_crc32(c, nv.tokens, (size_t)nv.ntok * sizeof *nv.tokens);
    }
    *out = c;
    return 0;
}

/* 1 when path holds a cache matching want; the matrix is then in vecs. */
static int read_cache(const char *path, const NewsCacheHeader *want, float *vecs)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    NewsCacheHeader h;
    size_t n = (size_t)want->news_rows * want->H;
    uint32_t crc = 0;
    int ok = fread(&h, sizeof h, 1, f) == 1 && memcmp(&h, want, sizeof h) == 0 &&
             fread(vecs, sizeof *vecs, n, f) == n && fread(&crc, sizeof crc, 1, f) == 1 &&
             fgetc(f) == EOF && crc == ckpt_crc32(0, vecs, n * sizeof *vecs);
    fclose(f);
    return ok;
}

static int write_cache(const char *path, const NewsCacheHeader *h, const float *vecs)
{
    char tmp[4500];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    size_t n = (size_t)h->news_rows * h->H;
    uint32_t crc = ckpt_crc32(0, vecs, n * sizeof *vecs);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return psrec_errf(errno, "%s: %s", tmp, strerror(errno));
    int ok = fwrite(h, sizeof *h, 1, f) == 1 && fwrite(vecs, sizeof *vecs, n, f) == n &&
             fwrite(&crc, sizeof crc, 1, f) == 1 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        return psrec_errf(e ? e : EIO, "%s: %s", path, strerror(e ? e : EIO));
    }
    return 0;
}

int newscache_fill(const LoadedModel *m, Dataset *ds, DatasetTxn *txn, Scorer *sc,
                   NewsCacheInfo *info)
{
    memset(info, 0, sizeof *info);
    double t0 = timer_now();
    NewsCacheHeader h = {.magic = NEWSCACHE_MAGIC,
                         .version = NEWSCACHE_VERSION,
                         .header_bytes = sizeof h,
                         .step = m->manifest.step,
                         .ckpt_key = ckpt_key(m),
                         .news_rows = scorer_news_rows(sc),
                         .H = (uint32_t)m->dims.H};
    int rc = data_key(ds, txn, &h.data_key);
    if (rc)
        return rc;
    snprintf(info->path, sizeof info->path, "%s/newsvec-%08x.cache", m->step_dir, h.data_key);
    double t1 = timer_now();
    info->key_seconds = t1 - t0;
    if (read_cache(info->path, &h, scorer_news_vecs(sc))) {
        info->outcome = NEWSCACHE_HIT;
        info->seconds = timer_now() - t1;
        return 0;
    }
    if ((rc = scorer_encode_news(sc, txn)))
        return rc;
    if (write_cache(info->path, &h, scorer_news_vecs(sc))) {
        LOG_WARN("news-vector cache not written (%s); the next call encodes again",
                 psrec_errmsg());
        info->outcome = NEWSCACHE_UNSAVED;
    } else {
        info->outcome = NEWSCACHE_BUILT;
    }
    info->seconds = timer_now() - t1;
    return 0;
}
