/* Parameter tables: lazy sparse rows (state and step change only for rows that get a
 * gradient), order-independent initialisation, key range checks, dense tables. */
#include "common/error.h"
#include "server/table.h"
#include "testutil/testutil.h"

#include <math.h>
#include <string.h>

static const OptimConfig adam = {
    .kind = OPTIM_ADAM, .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};

/* Lazy rows: push row 3 twice and row 5 once; row 7 is only pulled, row 9 never touched.
 * Each pushed row's first step moves it by lr*sign(g) (Adam's first step), row 7 keeps its
 * initial value, and step counts are per row. */
static void test_lazy_rows(void)
{
    TableSpec s = {.id = 1, .name = "user", .width = 2, .rows = 100, .init = TABLE_INIT_NORMAL,
                   .scale = 0.1f};
    Table *t;
    CU_ASSERT_FATAL(table_new(&s, &adam, 42, &t) == 0);
    uint64_t keys[3] = {3, 5, 7};
    float before[6], after[6];
    CU_ASSERT_FATAL(table_pull(t, keys, 3, before) == 0);
    CU_ASSERT_EQUAL(table_rows_held(t), 3);
    uint64_t pk[3] = {3, 5, 3};
    float g[6] = {1, -1, 1, 1, 1, -1};
    CU_ASSERT_FATAL(table_push(t, pk, 2, g) == 0);
    CU_ASSERT_FATAL(table_pull(t, keys, 3, after) == 0);
    CU_ASSERT(fabsf(after[0] - (before[0] - 0.1f)) < 1e-5f);
    CU_ASSERT(fabsf(after[1] - (before[1] + 0.1f)) < 1e-5f);
    CU_ASSERT(fabsf(after[2] - (before[2] - 0.1f)) < 1e-5f);
    CU_ASSERT(fabsf(after[3] - (before[3] - 0.1f)) < 1e-5f);
    CU_ASSERT(after[4] == before[4] && after[5] == before[5]);
    CU_ASSERT_FATAL(table_push(t, pk + 2, 1, g + 4) == 0);
    uint32_t *step;
    float *state;
    CU_ASSERT(table_row(t, 3, NULL, NULL, &step) == 0 && *step == 2);
    CU_ASSERT(table_row(t, 5, NULL, NULL, &step) == 0 && *step == 1);
    CU_ASSERT(table_row(t, 7, NULL, &state, &step) == 0 && *step == 0);
    CU_ASSERT(state[0] == 0 && state[1] == 0 && state[2] == 0 && state[3] == 0);
    CU_ASSERT(table_row(t, 9, NULL, NULL, NULL) == PSREC_E_NOTFOUND);
    CU_ASSERT_EQUAL(table_rows_held(t), 3);
    uint64_t bad = 100;
    CU_ASSERT(table_pull(t, &bad, 1, after) == PSREC_E_RANGE);
    CU_ASSERT(table_push(t, &bad, 1, g) == PSREC_E_RANGE);
    CU_ASSERT_EQUAL(table_rows_held(t), 3);
    table_free(&t);
    CU_ASSERT(t == NULL);
}

/* A row's initial value depends on (seed, table, key) only, not on touch order or on which
 * table object holds it; a different seed or table id gives other values. */
static void test_init_order_independent(void)
{
    TableSpec s = {.id = 2, .name = "word", .width = 4, .rows = 1u << 30,
                   .init = TABLE_INIT_NORMAL, .scale = 0.1f};
    Table *a, *b, *c;
    CU_ASSERT_FATAL(table_new(&s, &adam, 7, &a) == 0);
    CU_ASSERT_FATAL(table_new(&s, &adam, 7, &b) == 0);
    CU_ASSERT_FATAL(table_new(&s, &adam, 8, &c) == 0);
    uint64_t ka[2] = {5, 123456789}, kb[2] = {123456789, 5};
    float ra[8], rb[8], rc[8];
    CU_ASSERT_FATAL(table_pull(a, ka, 2, ra) == 0);
    CU_ASSERT_FATAL(table_pull(b, kb, 2, rb) == 0);
    CU_ASSERT_FATAL(table_pull(c, ka, 2, rc) == 0);
    CU_ASSERT(memcmp(ra, rb + 4, 16) == 0 && memcmp(ra + 4, rb, 16) == 0);
    CU_ASSERT(memcmp(ra, rc, 16) != 0);
    table_free(&a);
    table_free(&b);
    table_free(&c);
}

/* Many rows: the map grows and keeps every row; N(0, 0.1^2) has the right moments. */
static void test_many_rows_and_init_stats(void)
{
    TableSpec s = {.id = 3, .name = "user", .width = 8, .rows = 1u << 31,
                   .init = TABLE_INIT_NORMAL, .scale = 0.1f};
    Table *t;
    CU_ASSERT_FATAL(table_new(&s, &adam, 1, &t) == 0);
    enum { N = 50000 };
    static float rows[8];
    double sum = 0, sq = 0;
    for (uint64_t k = 0; k < N; k++) {
        uint64_t key = k * 7919 + 11;
        CU_ASSERT_FATAL(table_pull(t, &key, 1, rows) == 0);
        for (int i = 0; i < 8; i++) {
            sum += rows[i];
            sq += (double)rows[i] * rows[i];
        }
    }
    CU_ASSERT_EQUAL(table_rows_held(t), N);
    double mean = sum / (N * 8), sd = sqrt(sq / (N * 8) - mean * mean);
    CU_ASSERT(fabs(mean) < 0.002);
    CU_ASSERT(fabs(sd - 0.1) < 0.002);
    /* Pulling again creates nothing and returns the same values. */
    uint64_t key = 11;
    float again[8], first[8];
    table_init_row(&s, 1, key, first);
    CU_ASSERT_FATAL(table_pull(t, &key, 1, again) == 0);
    CU_ASSERT(memcmp(first, again, sizeof again) == 0);
    CU_ASSERT_EQUAL(table_rows_held(t), N);
    table_free(&t);
}

/* Dense tables exist whole; U(-k, k) stays inside its bounds, the sum of two inside 2k. */
static void test_dense(void)
{
    TableSpec s = {.id = 4, .name = "news_Wih", .width = 16, .rows = 8, .dense = 1,
                   .init = TABLE_INIT_UNIFORM, .scale = 0.25f};
    TableSpec b = {.id = 5, .name = "news_b", .width = 1000, .rows = 1, .dense = 1,
                   .init = TABLE_INIT_UNIFORM_SUM2, .scale = 0.25f};
    Table *t, *tb;
    CU_ASSERT_FATAL(table_new(&s, &adam, 1, &t) == 0);
    CU_ASSERT_FATAL(table_new(&b, &adam, 1, &tb) == 0);
    CU_ASSERT_EQUAL(table_rows_held(t), 8);
    float w[128], bias[1000];
    uint64_t keys[8] = {0, 1, 2, 3, 4, 5, 6, 7}, k0 = 0;
    CU_ASSERT_FATAL(table_pull(t, keys, 8, w) == 0);
    CU_ASSERT_FATAL(table_pull(tb, &k0, 1, bias) == 0);
    int outside = 0, beyond_one = 0;
    for (int i = 0; i < 128; i++)
        outside += fabsf(w[i]) > 0.25f;
    for (int i = 0; i < 1000; i++) {
        outside += fabsf(bias[i]) > 0.5f;
        beyond_one += fabsf(bias[i]) > 0.25f;
    }
    CU_ASSERT_EQUAL(outside, 0);
    CU_ASSERT(beyond_one > 100); /* a single uniform would never leave [-0.25, 0.25] */
    uint64_t bad = 8;
    CU_ASSERT(table_pull(t, &bad, 1, w) == PSREC_E_RANGE);
    table_free(&t);
    table_free(&tb);
}

/* Save and load: rows, state and steps come back; a params-only load into a table of another
 * optimizer takes the parameters only; a table of another shape is refused. */
static void test_save_load(void)
{
    TableSpec s = {.id = 1, .name = "user", .width = 3, .rows = 1000, .init = TABLE_INIT_NORMAL,
                   .scale = 0.1f};
    Table *t, *u, *v, *x;
    CU_ASSERT_FATAL(table_new(&s, &adam, 5, &t) == 0);
    uint64_t keys[4] = {999, 3, 500, 3};
    float g[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, a[12], b[12];
    CU_ASSERT_FATAL(table_push(t, keys, 4, g) == 0);
    const char *dir = tu_mkdtemp("table");
    char path[4200];
    snprintf(path, sizeof path, "%s/t.ckpt", dir);
    CkptWriter *w;
    CU_ASSERT_FATAL(ckpt_writer_new(path, &w) == 0);
    CU_ASSERT_FATAL(table_save(t, w) == 0);
    CU_ASSERT_FATAL(ckpt_writer_finish(&w) == 0);
    CkptReader *r;
    CU_ASSERT_FATAL(ckpt_reader_open(path, &r) == 0);
    CU_ASSERT_FATAL(table_new(&s, &adam, 6, &u) == 0); /* other seed: values must come from file */
    CU_ASSERT_FATAL(table_load(u, r, 0) == 0);
    CU_ASSERT_EQUAL(table_rows_held(u), 3);
    CU_ASSERT_FATAL(table_pull(t, keys, 3, a) == 0);
    CU_ASSERT_FATAL(table_pull(u, keys, 3, b) == 0);
    CU_ASSERT(memcmp(a, b, 9 * sizeof(float)) == 0);
    uint32_t *st;
    float *sa, *sb;
    CU_ASSERT(table_row(u, 3, NULL, &sb, &st) == 0 && *st == 2);
    CU_ASSERT(table_row(t, 3, NULL, &sa, NULL) == 0 && memcmp(sa, sb, 6 * sizeof(float)) == 0);
    OptimConfig sgd = {.kind = OPTIM_SGD, .lr = 0.1f};
    CU_ASSERT_FATAL(table_new(&s, &sgd, 6, &v) == 0);
    CU_ASSERT(table_load(v, r, 0) == PSREC_E_FORMAT);
    CU_ASSERT_FATAL(table_load(v, r, 1) == 0);
    CU_ASSERT_FATAL(table_pull(v, keys, 3, b) == 0);
    CU_ASSERT(memcmp(a, b, 9 * sizeof(float)) == 0);
    TableSpec s2 = s;
    s2.width = 4;
    CU_ASSERT_FATAL(table_new(&s2, &adam, 6, &x) == 0);
    CU_ASSERT(table_load(x, r, 1) == PSREC_E_FORMAT);
    ckpt_reader_free(&r);
    table_free(&t);
    table_free(&u);
    table_free(&v);
    table_free(&x);
    tu_rmtree(dir);
}

int main(void)
{
    static const TuTest tests[] = {{"lazy sparse rows", test_lazy_rows},
                                   {"init independent of order", test_init_order_independent},
                                   {"many rows, init statistics", test_many_rows_and_init_stats},
                                   {"dense tables", test_dense},
                                   {"save and load", test_save_load},
                                   {NULL, NULL}};
    tu_add_suite("table", tests);
    return tu_run_all();
}
