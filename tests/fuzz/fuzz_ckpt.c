/* libFuzzer target: the checkpoint file reader (common/ckpt.h, common/runmeta.h,
 * server/shard.h shard_load). A damaged file must give an error, never a crash. (The LMDB
 * record decoders have their own target, fuzz_dataset.)
 *
 * The first byte picks what the rest is:
 *   even  a whole checkpoint file, opened with ckpt_reader_open (container checks: magic,
 *      sizes, CRCs); if it opens, runmeta_read and shard_load as psrec eval/resume do.
 *   odd   a list of sections {u8 name_len, name, u32 LE size, bytes}, written with ckpt_writer
 *      so the CRCs are right (random bytes would almost never get past them), then read back
 *      and loaded into a small shard: this reaches the table decoders. With bit 1 set (3, 7..)
 *      it loads into a lazy_dense shard, as a shard of a multi-shard job.
 * Files go to /dev/shm (tmpfs) so fsync costs nothing. FUZZ_DEBUG=1 in the environment
 * prints why an input was refused (to check that seeds get as far as shard_load). */
#include "common/ckpt.h"
#include "common/error.h"
#include "common/runmeta.h"
#include "server/shard.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ParamShape shape = {
    .E = 2, .H = 2, .vocab_rows = 20, .category_rows = 5, .user_rows = 10};
static char path[64];

static void load(int lazy)
{
    CkptReader *r = NULL;
    if (ckpt_reader_open(path, &r)) {
        if (getenv("FUZZ_DEBUG"))
            fprintf(stderr, "open: %s\n", psrec_errmsg());
        return;
    }
    RunMeta m;
    runmeta_read(r, path, &m);
    for (size_t i = 0; i < ckpt_section_count(r); i++) {
        size_t n;
        if (!ckpt_section_name(r, i, &n))
            abort();
    }
    ShardOptions o = {.shape = shape, .optim = {.kind = OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f,
                      .beta2 = 0.999f, .eps = 1e-8f}, .seed = 1, .lazy_dense = lazy};
    Shard *s = NULL;
    if (shard_new(&o, &s) == 0) {
        int rc = shard_load(s, r, 0);
        if (getenv("FUZZ_DEBUG"))
            fprintf(stderr, "shard_load: %s\n", rc ? psrec_errmsg() : "ok");
        if (rc == 0) {
            /* A loaded shard must serve: pull a row of every table. */
            float row[64];
            for (uint32_t t = 0; t < PARAM_TABLES; t++) {
                uint64_t k = 0;
                if (shard_table_width(s, t) <= 64)
                    shard_pull(s, t, &k, 1, row);
            }
        }
        shard_free(&s);
    }
    ckpt_reader_free(&r);
}

static void write_raw(const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (n && fwrite(p, 1, n, f) != n)
        abort();
    fclose(f);
}

/* Mode 1: sections from the input, written as a valid container. 0 when the file exists. */
static int write_sections(const uint8_t *p, size_t n)
{
    CkptWriter *w = NULL;
    if (ckpt_writer_new(path, &w))
        abort();
    while (n > 0) {
        size_t nl = p[0];
        p++, n--;
        if (nl > n)
            break;
        char name[256];
        memcpy(name, p, nl);
        name[nl] = 0;
        p += nl, n -= nl;
        uint32_t sz = 0;
        if (n < 4)
            break;
        memcpy(&sz, p, 4);
        p += 4, n -= 4;
        if (sz > n)
            sz = (uint32_t)n;
        if (ckpt_write_section(w, name, p, sz)) {
            if (getenv("FUZZ_DEBUG"))
                fprintf(stderr, "section %s: %s\n", name, psrec_errmsg());
            ckpt_writer_abort(&w);
            return -1;
        }
        p += sz, n -= sz;
    }
    return ckpt_writer_finish(&w) ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0])
        snprintf(path, sizeof path, "/dev/shm/psrec-fuzz-ckpt-%d", (int)getpid());
    if (size < 1)
        return 0;
    if (data[0] % 2 == 0) {
        write_raw(data + 1, size - 1);
        load(0);
    } else if (write_sections(data + 1, size - 1) == 0) {
        load(data[0] % 4 == 3);
    }
    unlink(path);
    return 0;
}
