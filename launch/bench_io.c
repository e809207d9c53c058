/* `psrec bench --all`'s data-path figures (see bench_io.h): one generated and prepared data
 * set per BenchIo, timed prep, eval and recommend on it, and a forked worker's memory split.
 * Not yet implemented: every call returns PSREC_E_STATE with a detail saying so. */
#include "launch/bench_io.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>

struct BenchIo {
    BenchIoOptions o;
};

void bench_io_defaults(BenchIoOptions *o)
{
    memset(o, 0, sizeof *o);
    gen_options_default(&o->gen);
    o->gen.news = 51000;
    o->gen.users = 50000;
    o->gen.train_impressions = 157000;
    o->gen.dev_impressions = 20000;
    o->dims = (ModelDims){.E = 128, .H = 128, .title_len = 30, .his_len = 50, .K = 4};
    o->seed = 1;
    o->repeat = 3;
}

int bench_io_new(BenchIo **out, const BenchIoOptions *o)
{
    (void)o;
    *out = NULL;
    return psrec_errf(PSREC_E_STATE, "bench: data paths not implemented yet");
}

void bench_io_free(BenchIo **b)
{
    if (!b || !*b)
        return;
    free(*b);
    *b = NULL;
}

int bench_eval(BenchIo *b, BenchEvalResult *r)
{
    (void)b;
    memset(r, 0, sizeof *r);
    return psrec_errf(PSREC_E_STATE, "bench: eval not implemented yet");
}

int bench_prep_io(BenchIo *b, BenchPrepIoResult *r)
{
    (void)b;
    memset(r, 0, sizeof *r);
    return psrec_errf(PSREC_E_STATE, "bench: prep not implemented yet");
}

int bench_recommend(BenchIo *b, BenchRecommendResult *r)
{
    (void)b;
    memset(r, 0, sizeof *r);
    return psrec_errf(PSREC_E_STATE, "bench: recommend not implemented yet");
}

int bench_memory(BenchIo *b, BenchMemory *m)
{
    (void)b;
    memset(m, 0, sizeof *m);
    return psrec_errf(PSREC_E_STATE, "bench: memory not implemented yet");
}
