/* Checkpoint container (see ckpt.h). The writer streams section bytes straight to the file
 * and keeps only the index in memory; the index goes at the front, so the writer reserves
 * room for it by writing sections after a gap it fills in at the end. To keep that simple the
 * index has a fixed capacity (CKPT_MAX_SECTIONS). The reader loads the whole file: checkpoints
 * are read once at start-up, and every byte is checked against its CRC anyway. */
#include "common/ckpt.h"

#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_MAX_SECTIONS 256

typedef struct CkptHeader {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;   /* sizeof(CkptHeader) */
    uint32_t section_count;
    uint32_t entry_size;    /* sizeof(CkptSectionEntry) */
    uint64_t file_size;
} CkptHeader;

typedef struct CkptSectionEntry {
    char name[CKPT_NAME_MAX];
    uint64_t offset;
    uint64_t size;
    uint32_t crc;
    uint32_t reserved;
} CkptSectionEntry;

struct CkptWriter {
    int fd;
    uint64_t fail_after; /* PSREC_TEST_CKPT_FAIL_AFTER_BYTES, UINT64_MAX when unset */
    uint64_t written;    /* bytes written so far */
    char path[4096], tmp[4200];
    CkptSectionEntry entries[CKPT_MAX_SECTIONS];
    uint32_t count;
    uint64_t offset; /* next write position */
};

struct CkptReader {
    unsigned char *data;
    size_t size;
    const CkptHeader *hdr;
    const CkptSectionEntry *entries;
};

/* ------------------------------------------------------------------ CRC-32 */

static uint32_t crc_table[8][256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t ckpt_crc32(uint32_t crc, const void *data, size_t n)
{
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        crc_init(); /* idempotent: racing threads compute the same table */
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    const unsigned char *p = data;
    crc = ~crc;
    /* slicing-by-8: eight table lookups per 8 bytes */
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                      (uint32_t)p[7] << 24;
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
              crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ------------------------------------------------------------------ writing */

static uint64_t index_bytes(void)
{
    return sizeof(CkptHeader) + CKPT_MAX_SECTIONS * sizeof(CkptSectionEntry) + 4;
}

/* Fault injection for tests: PSREC_TEST_CKPT_FAIL_AFTER_BYTES=<n> makes each writer fail
 * with ENOSPC once it would pass n bytes, exactly as a full disk would. */
static uint64_t fail_after_bytes(void)
{
    const char *v = getenv("PSREC_TEST_CKPT_FAIL_AFTER_BYTES");
    char *end;
    if (!v || !*v)
        return UINT64_MAX;
    unsigned long long n = strtoull(v, &end, 10);
    return *end ? UINT64_MAX : (uint64_t)n;
}

static int write_all(CkptWriter *cw, const void *data, size_t n, uint64_t off)
{
    const int fd = cw->fd;
    if (cw->written + n > cw->fail_after)
        return ENOSPC;
    cw->written += n;
    const char *p = data;
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

int ckpt_writer_new(const char *path, CkptWriter **out)
{
    *out = NULL;
    CkptWriter *w = calloc(1, sizeof *w);
    if (!w)
        return psrec_nomem(__func__);
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", path);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int e = errno;
        free(w);
        return psrec_errf(e, "%s: cannot create: %s", path, strerror(e));
    }
    w->offset = (index_bytes() + 15) & ~(uint64_t)15;
    w->fail_after = fail_after_bytes();
    *out = w;
    return 0;
}

int ckpt_write_section(CkptWriter *w, const char *name, const void *data, size_t size)
{
    if (strlen(name) >= CKPT_NAME_MAX || w->count >= CKPT_MAX_SECTIONS)
        return psrec_errf(PSREC_E_RANGE, "%s: section '%s': name too long or too many sections",
                          w->path, name);
    for (uint32_t i = 0; i < w->count; i++)
        if (!strcmp(w->entries[i].name, name))
            return psrec_errf(PSREC_E_STATE, "%s: section '%s' written twice", w->path, name);
    CkptSectionEntry *e = &w->entries[w->count];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->offset = w->offset;
    e->size = size;
    e->crc = ckpt_crc32(0, data, size);
    int rc = write_all(w, data, size, w->offset);
    if (rc)
        return psrec_errf(rc, "%s: write: %s", w->path, strerror(rc));
    w->offset = (w->offset + size + 15) & ~(uint64_t)15;
    w->count++;
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) ? errno : 0;
    close(fd);
    return rc;
}

int ckpt_writer_finish(CkptWriter **wp)
{
    CkptWriter *w = *wp;
    unsigned char *index = calloc(1, index_bytes());
    int rc;
    if (!index) {
        rc = psrec_nomem(__func__);
        goto fail;
    }
    CkptHeader h = {.magic = CKPT_MAGIC,
                    .version = CKPT_VERSION,
                    .header_size = sizeof h,
                    .section_count = w->count,
                    .entry_size = sizeof(CkptSectionEntry),
                    .file_size = w->offset};
    memcpy(index, &h, sizeof h);
    memcpy(index + sizeof h, w->entries, w->count * sizeof(CkptSectionEntry));
    size_t used = sizeof h + w->count * sizeof(CkptSectionEntry);
    uint32_t crc = ckpt_crc32(0, index, used);
    memcpy(index + used, &crc, 4);
    if ((rc = write_all(w, index, used + 4, 0)) || ftruncate(w->fd, (off_t)w->offset) ||
        fsync(w->fd)) {
        rc = rc ? rc : errno;
        psrec_errf(rc, "%s: write: %s", w->path, strerror(rc));
        goto fail;
    }
    free(index);
    index = NULL;
    close(w->fd);
    w->fd = -1;
    if (rename(w->tmp, w->path) != 0) {
        rc = psrec_errf(errno, "%s: rename: %s", w->path, strerror(errno));
        goto fail;
    }
    fsync_dir_of(w->path);
    free(w);
    *wp = NULL;
    return 0;
fail:
    free(index);
    ckpt_writer_abort(wp);
    return rc;
}

void ckpt_writer_abort(CkptWriter **wp)
{
    CkptWriter *w = *wp;
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    unlink(w->tmp);
    free(w);
    *wp = NULL;
}

/* ------------------------------------------------------------------ reading */

static int bad(const char *path, const char *what)
{
    return psrec_errf(PSREC_E_FORMAT, "%s: not a valid psrec checkpoint: %s", path, what);
}

int ckpt_reader_open(const char *path, CkptReader **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return psrec_errf(errno == ENOENT ? PSREC_E_NOTFOUND : errno, "%s: %s", path,
                          strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < (off_t)sizeof(CkptHeader)) {
        fclose(f);
        return bad(path, "too short");
    }
    CkptReader *r = calloc(1, sizeof *r);
    unsigned char *data = malloc((size_t)st.st_size + 16);
    if (!r || !data) {
        fclose(f);
        free(r);
        free(data);
        return psrec_nomem(__func__);
    }
    /* 16-byte aligned view of the file so float/u64 sections can be used in place */
    size_t n = fread(data, 1, (size_t)st.st_size, f);
    fclose(f);
    r->data = data;
    r->size = n;
    int rc;
    CkptHeader h;
    memcpy(&h, data, sizeof h);
    if (n != (size_t)st.st_size) {
        rc = bad(path, "short read");
        goto fail;
    }
    if (h.magic != CKPT_MAGIC) {
        rc = bad(path, "bad magic");
        goto fail;
    }
    if (h.version != CKPT_VERSION) {
        rc = psrec_errf(PSREC_E_FORMAT, "%s: checkpoint version %u, this psrec reads %u", path,
                        h.version, CKPT_VERSION);
        goto fail;
    }
    if (h.header_size != sizeof h || h.entry_size != sizeof(CkptSectionEntry) ||
        h.section_count > CKPT_MAX_SECTIONS || h.file_size != n) {
        rc = bad(path, h.file_size != n ? "file size differs from its header (truncated?)"
                                        : "bad header sizes");
        goto fail;
    }
    size_t used = sizeof h + h.section_count * sizeof(CkptSectionEntry);
    if (used + 4 > n) { /* the index and its CRC must lie inside the file (a fuzzer found one) */
        rc = bad(path, "section index outside the file");
        goto fail;
    }
    uint32_t crc;
    memcpy(&crc, data + used, 4);
    if (ckpt_crc32(0, data, used) != crc) {
        rc = bad(path, "index CRC mismatch");
        goto fail;
    }
    r->hdr = (const CkptHeader *)data;
    r->entries = (const CkptSectionEntry *)(data + sizeof h);
    for (uint32_t i = 0; i < h.section_count; i++) {
        const CkptSectionEntry *e = &r->entries[i];
        if (e->name[CKPT_NAME_MAX - 1] != '\0' || e->offset % 16 || e->offset > n ||
            e->size > n - e->offset) {
            rc = bad(path, "section outside the file");
            goto fail;
        }
        if (ckpt_crc32(0, data + e->offset, e->size) != e->crc) {
            rc = psrec_errf(PSREC_E_FORMAT, "%s: section '%s' CRC mismatch (damaged file)", path,
                            e->name);
            goto fail;
        }
    }
    *out = r;
    return 0;
fail:
    ckpt_reader_free(&r);
    return rc;
}

void ckpt_reader_free(CkptReader **r)
{
    if (!r || !*r)
        return;
    free((*r)->data);
    free(*r);
    *r = NULL;
}

int ckpt_section(const CkptReader *r, const char *name, const void **data, size_t *size)
{
    for (uint32_t i = 0; i < r->hdr->section_count; i++)
        if (!strcmp(r->entries[i].name, name)) {
            *data = r->data + r->entries[i].offset;
            *size = r->entries[i].size;
            return 0;
        }
    return PSREC_E_NOTFOUND;
}

size_t ckpt_section_count(const CkptReader *r)
{
    return r->hdr->section_count;
}

const char *ckpt_section_name(const CkptReader *r, size_t i, size_t *size)
{
    if (i >= r->hdr->section_count)
        return NULL;
    if (size)
        *size = r->entries[i].size;
    return r->entries[i].name;
}
