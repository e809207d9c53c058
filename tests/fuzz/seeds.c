/* Writes the binary seed corpora of the fuzz targets (the text ones, tsv and config, are
 * hand-made files): corpus/wire (well-formed requests of every op, framed as fuzz_wire reads
 * its input), corpus/ckpt (a small shard's real checkpoint, whole and as a section list) and
 * corpus/dataset (valid dataset records). Run by scripts/fuzz.sh --seeds; the output is
 * committed.
 * Usage: fuzz_seeds CORPUS_DIR */
#include "common/ckpt.h"
#include "common/error.h"
#include "common/runmeta.h"
#include "common/wire.h"
#include "server/shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *root;

static void put_file(const char *sub, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", root, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f)) {
        fprintf(stderr, "fuzz_seeds: cannot write %s\n", path);
        exit(1);
    }
}

/* fuzz_wire framing: each frame is a u16 LE length, then its bytes. */
typedef struct Buf {
    unsigned char b[8192];
    size_t n;
} Buf;

static void frame(Buf *o, const void *p, size_t n)
{
    o->b[o->n++] = (unsigned char)(n & 0xff);
    o->b[o->n++] = (unsigned char)(n >> 8);
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void wire_seed(const char *name, WireOp op, uint32_t table, uint64_t nkeys, int vals,
                      uint32_t width)
{
    WireHeader h;
    wire_header_init(&h, op);
    h.worker_rank = 0;
    h.request_id = 7;
    h.table = table;
    h.key_count = nkeys;
    h.value_width = width;
    if (op == WIRE_OP_CLOCK || op == WIRE_OP_CUT) {
        h.clock = 1;
        h.cut_len = 4;
        memcpy(h.cut, "\1\2\3\4", 4);
    }
    unsigned char hb[WIRE_HEADER_MAX];
    size_t hl;
    if (wire_encode_header(&h, hb, sizeof hb, &hl))
        exit(1);
    Buf o = {.n = 0};
    frame(&o, hb, hl);
    if (op == WIRE_OP_PULL || op == WIRE_OP_PUSH) {
        uint64_t keys[4] = {0, 1, 2, 3};
        frame(&o, keys, nkeys * 8);
    }
    if (vals) {
        float v[4 * 8];
        for (int i = 0; i < 4 * 8; i++)
            v[i] = 0.01f * (float)i;
        frame(&o, v, nkeys * width * 4);
    }
    put_file("wire", name, o.b, o.n);
}

static const ParamShape shape = {
    .E = 2, .H = 2, .vocab_rows = 20, .category_rows = 5, .user_rows = 10};

static void ckpt_seeds(void)
{
    char path[64];
    snprintf(path, sizeof path, "/dev/shm/psrec-fuzz-seed-%d", (int)getpid());
    ShardOptions o = {.shape = shape, .optim = {.kind = OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f,
                      .beta2 = 0.999f, .eps = 1e-8f}, .seed = 1};
    Shard *s = NULL;
    CkptWriter *w = NULL;
    if (shard_new(&o, &s))
        exit(1);
    uint64_t keys[2] = {3, 7};
    float g[2 * 2] = {0.5f, -0.5f, 0.25f, 1};
    if (shard_push(s, PARAM_WORD, keys, 2, g) || shard_push(s, PARAM_USER, keys, 2, g))
        exit(1);
    RunMeta m = {.version = RUNMETA_VERSION, .size = sizeof m, .E = 2, .H = 2, .title_len = 30,
                 .his_len = 50, .K = 4, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f,
                 .eps = 1e-8f, .vocab_rows = 20, .category_rows = 5, .user_rows = 10, .seed = 1,
                 .step = 1, .shards = 1, .workers = 1};
    if (ckpt_writer_new(path, &w) || runmeta_write(w, &m) || shard_save(s, w) ||
        ckpt_writer_finish(&w)) {
        fprintf(stderr, "fuzz_seeds: %s\n", psrec_errmsg());
        exit(1);
    }
    shard_free(&s);
    /* Mode 0: the file itself. */
    FILE *f = fopen(path, "rb");
    static unsigned char b[1 << 20];
    b[0] = 0;
    size_t n = f ? fread(b + 1, 1, sizeof b - 1, f) : 0;
    if (f)
        fclose(f);
    put_file("ckpt", "file", b, n + 1);
    /* Mode 1: its sections. */
    CkptReader *r = NULL;
    if (ckpt_reader_open(path, &r))
        exit(1);
    n = 0;
    b[n++] = 1;
    for (size_t i = 0; i < ckpt_section_count(r); i++) {
        size_t sz;
        const char *name = ckpt_section_name(r, i, &sz);
        const void *p;
        ckpt_section(r, name, &p, &sz);
        b[n++] = (unsigned char)strlen(name);
        memcpy(b + n, name, strlen(name));
        n += strlen(name);
        uint32_t s32 = (uint32_t)sz;
        memcpy(b + n, &s32, 4);
        memcpy(b + n + 4, p, sz);
        n += 4 + sz;
    }
    ckpt_reader_free(&r);
    put_file("ckpt", "sections", b, n);
    unlink(path);
}

/* fuzz_dataset: one valid record of each kind (news: 2 tokens + id "N1"; sample: 1 history,
 * 2 negatives; impression: 1 history, 2 candidates labeled, id "5"), after the header bytes
 * {decoder, limits} that make fuzz_dataset's meta title_len 30, his_len 50, 51 impressions,
 * 100 news, 4 categories, 2 users, 14 words. */
static void dataset_seeds(void)
{
    uint32_t news[] = {2, 2, 2, 10, 11, 0x314e};
    uint32_t sample[] = {1, 4, 0, 0, 1, 2, 3, 5, 6};
    uint32_t imp[] = {1, 1, 2, 1, 1, 3, 4, 5, 0x0100, 0x35};
    unsigned char rb[64] = {0, 29, 50, 99, 0x31};
    memcpy(rb + 5, news, sizeof news);
    put_file("dataset", "news_record", rb, 5 + sizeof news);
    rb[0] = 1;
    memcpy(rb + 5, sample, sizeof sample);
    put_file("dataset", "sample_record", rb, 5 + sizeof sample);
    rb[0] = 2;
    memcpy(rb + 5, imp, sizeof imp);
    put_file("dataset", "impression_record", rb, 5 + sizeof imp);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds CORPUS_DIR\n");
        return 2;
    }
    root = argv[1];
    wire_seed("pull", WIRE_OP_PULL, PARAM_WORD, 3, 0, 0);
    wire_seed("push", WIRE_OP_PUSH, PARAM_WORD, 2, 1, 2);
    wire_seed("push_dense", WIRE_OP_PUSH, PARAM_NEWS_B, 1, 1, 8);
    wire_seed("clock", WIRE_OP_CLOCK, 0, 0, 0, 0);
    wire_seed("cut", WIRE_OP_CUT, 0, 0, 0, 0);
    wire_seed("heartbeat", WIRE_OP_HEARTBEAT, 0, 0, 0, 0);
    wire_seed("stats", WIRE_OP_STATS, 0, 0, 0, 0);
    wire_seed("shutdown", WIRE_OP_SHUTDOWN, 0, 0, 0, 0);
    ckpt_seeds();
    dataset_seeds();
    return 0;
}
