/* `psrec bench --apply` (bench_wire.h): a shard's apply rate under a push flood, next to the
 * memory bandwidth and bf16 conversion rates of the same machine in the same run.
 *
 * Invariants: every sparse row exists before timing starts (one untimed push of each key),
 * so the timed pushes measure applying, not creating rows; the gradients are fixed random
 * values (Adam's step does not depend on their size much, and the bench wants bytes/s).
 * Not done here: sockets and decoding of messages (bench --ps measures the whole path). */
#include "launch/bench_wire.h"

#include "common/error.h"
#include "common/params.h"
#include "common/rng.h"
#include "common/timer.h"
#include "common/wire.h"
#include "launch/bench.h"
#include "server/shard.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MEMCPY_BYTES ((size_t)128 << 20)

void bench_apply_defaults(BenchApplyOptions *o)
{
    *o = (BenchApplyOptions){.E = 128, .H = 128, .vocab = 50000, .users = 100000,
                             .rows = 4096, .pushes = 200, .repeat = 5, .seed = 1};
}

/* CPU seconds of this thread: on a shared machine, what the work costs when nothing preempts
 * it (wall time also counts the time other processes held the core). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The tables a step pushes, cycled: two sparse, two dense (the recurrent matrices, whose
 * rows are 4H wide). */
static const uint32_t flood_tables[] = {PARAM_WORD, PARAM_USER, PARAM_NEWS_WHH, PARAM_USER_WHH};
#define FLOOD_TABLES (sizeof flood_tables / sizeof flood_tables[0])

int bench_apply(const BenchApplyOptions *o, BenchApplyResult *r)
{
    memset(r, 0, sizeof *r);
    if (o->E < 1 || o->H < 1 || o->vocab < 2 || o->users < 2 || o->rows < 1 ||
        o->pushes < 1 || o->repeat < 1 || o->repeat > BENCH_MAX_REPEAT)
        return psrec_errf(PSREC_E_USAGE, "bench --apply: option out of range");
    ShardOptions so = {.shape = {.E = o->E, .H = o->H, .vocab_rows = o->vocab,
                                 .category_rows = 20, .user_rows = o->users},
                       .optim = {.kind = OPTIM_ADAM, .lr = 1e-3f, .beta1 = 0.9f,
                                 .beta2 = 0.999f, .eps = 1e-8f},
                       .seed = o->seed};
    TableSpec specs[PARAM_TABLES];
    params_specs(&so.shape, specs);
    uint32_t wmax = 0;
    for (size_t t = 0; t < FLOOD_TABLES; t++)
        if (specs[flood_tables[t]].width > wmax)
            wmax = specs[flood_tables[t]].width;
    Shard *shard = NULL;
    const size_t nkeys = o->rows > 65536 ? o->rows : 65536;
    uint64_t *keys = malloc(nkeys * sizeof *keys);
    float *grads = malloc((size_t)o->rows * wmax * sizeof *grads);
    char *src = malloc(MEMCPY_BYTES), *dst = malloc(MEMCPY_BYTES);
    uint16_t *half = malloc(MEMCPY_BYTES / 2);
    int rc = PSREC_E_NOMEM;
    if (!keys || !grads || !src || !dst || !half)
        goto out;
    if ((rc = shard_new(&so, &shard)))
        goto out;
    Rng rng;
    rng_seed(&rng, o->seed);
    for (size_t i = 0; i < (size_t)o->rows * wmax; i++)
        grads[i] = (float)(rng_uniform(&rng) - 0.5) * 1e-2f;
    /* Create every sparse row (untimed). */
    for (uint32_t t = PARAM_WORD; t <= PARAM_USER; t++) {
        for (uint64_t k0 = 0; k0 < specs[t].rows; k0 += o->rows) {
            size_t n = specs[t].rows - k0 < o->rows ? (size_t)(specs[t].rows - k0) : o->rows;
            for (size_t i = 0; i < n; i++)
                keys[i] = k0 + i;
            if ((rc = shard_push(shard, t, keys, n, grads)))
                goto out;
        }
    }
    double rows_s[BENCH_MAX_REPEAT], gb_s[BENCH_MAX_REPEAT], mc[BENCH_MAX_REPEAT];
    double enc[BENCH_MAX_REPEAT], dec[BENCH_MAX_REPEAT], cpu_gb_s[BENCH_MAX_REPEAT];
    uint64_t sparse_rows = 0, all_rows = 0;
    for (int rep = 0; rep < o->repeat; rep++) {
        double bytes = 0, t_apply = 0, c_apply = 0;
        uint64_t rows = 0;
        for (int p = 0; p < o->pushes; p++) {
            const uint32_t t = flood_tables[(size_t)p % FLOOD_TABLES];
            for (uint32_t i = 0; i < o->rows; i++) /* random keys, drawn outside the timing */
                keys[i] = rng_below(&rng, specs[t].rows);
            double t0 = timer_now(), c0 = cpu_now();
            if ((rc = shard_push(shard, t, keys, o->rows, grads)))
                goto out;
            t_apply += timer_now() - t0;
            c_apply += cpu_now() - c0;
            rows += o->rows;
            bytes += (double)o->rows * specs[t].width * sizeof(float);
            if (!specs[t].dense)
                sparse_rows += o->rows;
        }
        all_rows += rows;
        t_apply = t_apply > 0 ? t_apply : 1e-9;
        rows_s[rep] = (double)rows / t_apply;
        gb_s[rep] = bytes / t_apply / 1e9;
        cpu_gb_s[rep] = bytes / (c_apply > 0 ? c_apply : 1e-9) / 1e9;

        memset(src, rep + 1, MEMCPY_BYTES);
        double t0 = timer_now();
        memcpy(dst, src, MEMCPY_BYTES);
        double dt = timer_now() - t0;
        mc[rep] = (double)MEMCPY_BYTES / (dt > 0 ? dt : 1e-9) / 1e9;
        if (dst[MEMCPY_BYTES / 3] != (char)(rep + 1)) { /* keep the copy observable */
            rc = psrec_errf(PSREC_E_STATE, "memcpy check failed");
            goto out;
        }

        const size_t nf = MEMCPY_BYTES / sizeof(float) / 2; /* f32 values in half of src */
        float *f = (float *)src;
        for (size_t i = 0; i < nf; i++)
            f[i] = (float)(i % 1000) * 1e-3f - 0.5f;
        t0 = timer_now();
        if ((rc = wire_bf16_encode(f, nf, half)))
            goto out;
        dt = timer_now() - t0;
        enc[rep] = (double)nf * 4 / (dt > 0 ? dt : 1e-9) / 1e9;
        t0 = timer_now();
        if ((rc = wire_bf16_decode(half, nf, (float *)dst)))
            goto out;
        dt = timer_now() - t0;
        dec[rep] = (double)nf * 4 / (dt > 0 ? dt : 1e-9) / 1e9;
    }
    r->rows_per_s = bench_median(rows_s, o->repeat);
    r->apply_gb_per_s = bench_median(gb_s, o->repeat);
    r->apply_cpu_gb_per_s = bench_median(cpu_gb_s, o->repeat);
    r->touched_gb_per_s = r->apply_gb_per_s * 7; /* 4 B gradient: 3 f32 read + 3 written */
    r->memcpy_gb_per_s = bench_median(mc, o->repeat);
    r->bf16_encode_gb_per_s = bench_median(enc, o->repeat);
    r->bf16_decode_gb_per_s = bench_median(dec, o->repeat);
    r->sparse_fraction = all_rows ? (double)sparse_rows / (double)all_rows : 0;
    rc = 0;
out:
    shard_free(&shard);
    free(keys);
    free(grads);
    free(src);
    free(dst);
    free(half);
    return rc;
}
