/* Consistency gates without sockets: BSP averaging and barrier (wrong clocks refused,
 * leavers no longer hold the gate, divisor = workers that finished the step), the SSP bound
 * at / below / above, ASP, the deferred-pull queue (arrival order, released exactly when
 * ready, everything handed out at the end, keys and ids copied), and clocks going backwards. */
#include "common/error.h"
#include "server/gates.h"
#include "testutil/testutil.h"

#include <stdlib.h>
#include <string.h>

#define WIDTH 3 /* floats a row of every table in these tests */
#define MAX_APPLIED 16

static const uint32_t widths[PARAM_TABLES] = {WIDTH, WIDTH, WIDTH, WIDTH, WIDTH,
                                              WIDTH, WIDTH, WIDTH, WIDTH};

/* What gates_bsp_advance handed to apply, one record per call. */
typedef struct Applied {
    int calls;
    uint32_t table[MAX_APPLIED];
    size_t n[MAX_APPLIED];
    uint64_t key[MAX_APPLIED];  /* first key of the call */
    float grad[MAX_APPLIED][WIDTH]; /* first row of the call */
} Applied;

static int record(void *ctx, uint32_t table, const uint64_t *keys, size_t n, const float *grads)
{
    Applied *a = ctx;
    if (a->calls < MAX_APPLIED) {
        a->table[a->calls] = table;
        a->n[a->calls] = n;
        a->key[a->calls] = keys[0];
        memcpy(a->grad[a->calls], grads, sizeof a->grad[0]);
    }
    a->calls++;
    return 0;
}

static Gates *make(uint32_t W, ServerConsistency c, uint32_t s)
{
    Gates *g = NULL;
    CU_ASSERT_FATAL(gates_new(W, c, s, widths, &g) == 0);
    return g;
}

static int push1(Gates *g, uint64_t clock, uint32_t table, uint64_t key, float v)
{
    float row[WIDTH] = {v, 2 * v, -v};
    return gates_bsp_accept_push(g, clock, table, &key, 1, row, WIDTH);
}

/* Every row apply was handed, in order, and the size of each call. */
typedef struct Rows {
    int calls, n;
    size_t per_call[MAX_APPLIED];
    uint32_t table[MAX_APPLIED];
    uint64_t key[MAX_APPLIED];
    float row[MAX_APPLIED][WIDTH];
} Rows;

static int record_rows(void *ctx, uint32_t table, const uint64_t *keys, size_t n,
                       const float *grads)
{
    Rows *r = ctx;
    if (r->calls < MAX_APPLIED)
        r->per_call[r->calls] = n;
    r->calls++;
    for (size_t i = 0; i < n && r->n < MAX_APPLIED; i++, r->n++) {
        r->table[r->n] = table;
        r->key[r->n] = keys[i];
        memcpy(r->row[r->n], grads + i * WIDTH, sizeof r->row[0]);
    }
    return 0;
}

/* Pushes of two tables interleaved (word 5, 6; user 9; word 7, and 5 again, 8): apply gets
 * the word rows first, in arrival order, in one call per run that arrived together (5 6, then
 * 7 8), then the user row; every row is its sum / 2; the next clock starts empty. */
static void test_bsp_runs(void)
{
    Gates *g = make(2, SERVER_BSP, 0);
    const uint64_t w1[2] = {5, 6}, w2[3] = {7, 5, 8};
    const float r1[2 * WIDTH] = {1, 2, 3, 4, 5, 6}, r2[3 * WIDTH] = {7, 8, 9, 10, 11, 12, 13,
                                                                    14, 15};
    CU_ASSERT(gates_bsp_accept_push(g, 0, PARAM_WORD, w1, 2, r1, WIDTH) == 0);
    CU_ASSERT(push1(g, 0, PARAM_USER, 9, 4.0f) == 0);
    CU_ASSERT(gates_bsp_accept_push(g, 0, PARAM_WORD, w2, 3, r2, WIDTH) == 0);
    CU_ASSERT(gates_on_clock(g, 0, 0) == 0 && gates_on_clock(g, 1, 0) == 0);
    Rows r = {0};
    CU_ASSERT(gates_bsp_advance(g, record_rows, &r) == 0);
    CU_ASSERT_FATAL(r.calls == 3 && r.n == 5);
    CU_ASSERT(r.per_call[0] == 2 && r.per_call[1] == 2 && r.per_call[2] == 1);
    const uint64_t keys[5] = {5, 6, 7, 8, 9};
    const float want[5][WIDTH] = {{(1 + 10) / 2.0f, (2 + 11) / 2.0f, (3 + 12) / 2.0f},
                                  {2, 2.5f, 3},
                                  {3.5f, 4, 4.5f},
                                  {6.5f, 7, 7.5f},
                                  {2, 4, -2}};
    for (int i = 0; i < 5; i++) {
        CU_ASSERT(r.table[i] == (i < 4 ? PARAM_WORD : PARAM_USER));
        CU_ASSERT(r.key[i] == keys[i]);
        CU_ASSERT(memcmp(r.row[i], want[i], sizeof want[i]) == 0);
    }
    CU_ASSERT(gates_on_clock(g, 0, 1) == 0 && gates_on_clock(g, 1, 1) == 0);
    Rows none = {0};
    CU_ASSERT(gates_bsp_advance(g, record_rows, &none) == 0);
    CU_ASSERT(none.calls == 0);
    gates_free(&g);
}

static void test_bsp_average(void)
{
    Gates *g = make(2, SERVER_BSP, 0);
    Applied a = {0};
    CU_ASSERT(push1(g, 0, PARAM_WORD, 5, 1.0f) == 0);
    CU_ASSERT(push1(g, 0, PARAM_WORD, 5, 3.0f) == 0);
    CU_ASSERT(push1(g, 0, PARAM_USER, 9, 4.0f) == 0);
    CU_ASSERT(push1(g, 1, PARAM_WORD, 5, 1.0f) == PSREC_E_RANGE); /* ahead of the shard */
    CU_ASSERT(gates_pull_ready(g, 0));
    CU_ASSERT(!gates_pull_ready(g, 1));

    CU_ASSERT(gates_on_clock(g, 0, 0) == 0);
    CU_ASSERT(gates_bsp_advance(g, record, &a) == 0);
    CU_ASSERT(a.calls == 0); /* worker 1 still holds clock 0 */
    CU_ASSERT(gates_bsp_clock(g) == 0);
    CU_ASSERT(!gates_pull_ready(g, 1));

    CU_ASSERT(gates_on_clock(g, 1, 0) == 0);
    CU_ASSERT(gates_bsp_advance(g, record, &a) == 0);
    CU_ASSERT_FATAL(a.calls == 2); /* table order: word, then user */
    CU_ASSERT(a.table[0] == PARAM_WORD && a.n[0] == 1 && a.key[0] == 5);
    CU_ASSERT(a.grad[0][0] == 2.0f && a.grad[0][1] == 4.0f && a.grad[0][2] == -2.0f);
    CU_ASSERT(a.table[1] == PARAM_USER && a.n[1] == 1 && a.key[1] == 9);
    CU_ASSERT(a.grad[1][0] == 2.0f);
    CU_ASSERT(gates_bsp_clock(g) == 1);
    CU_ASSERT(gates_pull_ready(g, 1));
    CU_ASSERT(!gates_pull_ready(g, 2));

    /* Clock 0 is closed; a push of it now (or of a later clock) is refused. */
    CU_ASSERT(push1(g, 0, PARAM_WORD, 5, 1.0f) == PSREC_E_RANGE);
    CU_ASSERT(push1(g, 2, PARAM_WORD, 5, 1.0f) == PSREC_E_RANGE);
    CU_ASSERT(push1(g, 1, PARAM_TABLES, 5, 1.0f) == PSREC_E_RANGE);
    /* Nothing more to apply: the sums were used once. */
    CU_ASSERT(gates_bsp_advance(g, record, &a) == 0);
    CU_ASSERT(a.calls == 2);
    gates_free(&g);
    CU_ASSERT(g == NULL);

    Gates *ssp = make(2, SERVER_SSP, 1);
    CU_ASSERT(push1(ssp, 0, PARAM_WORD, 5, 1.0f) == PSREC_E_STATE);
    gates_free(&ssp);
}

/* Found by tests/fuzz/fuzz_wire (one worker done, then a CLOCK of step ~3.6e17 from the
 * other): the barrier moved one step per iteration, so the shard's loop spun for years. With
 * nothing held it must go straight to where the workers are, applying held sums first. */
static void test_bsp_far_clock(void)
{
    Gates *g = make(2, SERVER_BSP, 0);
    Applied a = {0};
    const uint64_t far = (uint64_t)1 << 58;
    CU_ASSERT(push1(g, 0, PARAM_WORD, 5, 1.0f) == 0);
    CU_ASSERT(gates_on_done(g, 1) == 1);
    CU_ASSERT(gates_on_clock(g, 0, far) == 0);
    CU_ASSERT(gates_bsp_advance(g, record, &a) == 0);
    CU_ASSERT(a.calls == 1 && a.grad[0][0] == 1.0f); /* step 0's sum, divided by 1 */
    CU_ASSERT(gates_bsp_clock(g) == far + 1);
    gates_free(&g);

    /* Two live workers far apart: the barrier stops at the slower one. */
    g = make(2, SERVER_BSP, 0);
    CU_ASSERT(gates_on_clock(g, 0, far) == 0);
    CU_ASSERT(gates_on_clock(g, 1, 41) == 0);
    CU_ASSERT(gates_bsp_advance(g, record, &a) == 0);
    CU_ASSERT(gates_bsp_clock(g) == 42);
    gates_free(&g);
}

/* Leavers: one that never finished step t is not waited for and not counted; one that
 * finished t before leaving is counted for t only. */
static void test_bsp_leavers(void)
{
    Gates *g = make(3, SERVER_BSP, 0);
    Applied a = {0};
    CU_ASSERT(push1(g, 0, PARAM_WORD, 1, 6.0f) == 0);
    CU_ASSERT(push1(g, 0, PARAM_WORD, 1, 6.0f) == 0);
    CU_ASSERT(gates_on_clock(g, 0, 0) == 0);
    CU_ASSERT(gates_on_clock(g, 1, 0) == 0);
    CU_ASSERT(gates_bsp_advance(g, record, &a) == 0);
    CU_ASSERT(a.calls == 0); /* worker 2 holds the gate */
    CU_ASSERT(gates_on_done(g, 1) == 1);  /* finished step 0, then SHUTDOWN */
    CU_ASSERT(gates_on_done(g, 1) == 0);  /* once */
    CU_ASSERT(gates_worker_state(g, 1) == GATES_DONE);
    CU_ASSERT(gates_on_failed(g, 2) == 1); /* never finished step 0 */
    CU_ASSERT(gates_worker_state(g, 2) == GATES_FAILED);
    CU_ASSERT(gates_live(g) == 1);
    CU_ASSERT(gates_bsp_advance(g, record, &a) == 0);
    CU_ASSERT_FATAL(a.calls == 1);
    CU_ASSERT(a.grad[0][0] == 6.0f); /* 12 / 2 (workers 0 and 1), not / 3, not / 1 */
    CU_ASSERT(gates_bsp_clock(g) == 1);

    /* Step 1: only worker 0 is left and finishes it. */
    CU_ASSERT(push1(g, 1, PARAM_WORD, 1, 5.0f) == 0);
    CU_ASSERT(gates_on_clock(g, 0, 1) == 0);
    CU_ASSERT(gates_bsp_advance(g, record, &a) == 0);
    CU_ASSERT_FATAL(a.calls == 2);
    CU_ASSERT(a.grad[1][0] == 5.0f);
    CU_ASSERT(gates_bsp_clock(g) == 2);

    /* Everyone gone: no step nobody finished is applied. */
    CU_ASSERT(push1(g, 2, PARAM_WORD, 1, 5.0f) == 0);
    CU_ASSERT(gates_on_done(g, 0) == 1);
    CU_ASSERT(gates_bsp_advance(g, record, &a) == 0);
    CU_ASSERT(a.calls == 2);
    CU_ASSERT(gates_bsp_clock(g) == 2);
    gates_free(&g);

    /* A worker leaving is what opens the gate (W = 2, the other clocked already). */
    g = make(2, SERVER_BSP, 0);
    a.calls = 0;
    CU_ASSERT(push1(g, 0, PARAM_CAT, 2, 3.0f) == 0);
    CU_ASSERT(push1(g, 0, PARAM_CAT, 2, 3.0f) == 0);
    CU_ASSERT(gates_on_clock(g, 0, 0) == 0);
    CU_ASSERT(gates_bsp_advance(g, record, &a) == 0);
    CU_ASSERT(a.calls == 0);
    CU_ASSERT(gates_on_failed(g, 1) == 1);
    CU_ASSERT(gates_bsp_advance(g, record, &a) == 0);
    CU_ASSERT_FATAL(a.calls == 1);
    CU_ASSERT(a.grad[0][0] == 6.0f); /* only worker 0 finished step 0 */
    gates_free(&g);
}

/* SSP: ready iff slowest live + s >= clock. Rows (finished of worker 0, of worker 1, s,
 * pull clock, ready). */
static void test_ssp_bound(void)
{
    static const struct {
        uint64_t f0, f1;
        uint32_t s;
        uint64_t clock;
        int ready;
    } rows[] = {
        {0, 0, 0, 0, 1}, {0, 0, 0, 1, 0},                   /* s = 0: no lead at all */
        {3, 5, 2, 4, 1}, {3, 5, 2, 5, 1}, {3, 5, 2, 6, 0}, /* below / at / above 3 + 2 */
        {5, 3, 2, 5, 1}, {5, 3, 2, 6, 0},                   /* slowest is either worker */
        {4, 4, 1, 5, 1}, {4, 4, 1, 6, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        Gates *g = make(2, SERVER_SSP, rows[i].s);
        if (rows[i].f0)
            CU_ASSERT(gates_on_clock(g, 0, rows[i].f0 - 1) == 0);
        if (rows[i].f1)
            CU_ASSERT(gates_on_clock(g, 1, rows[i].f1 - 1) == 0);
        uint64_t lo = rows[i].f0 < rows[i].f1 ? rows[i].f0 : rows[i].f1;
        CU_ASSERT(gates_slowest(g) == lo);
        CU_ASSERT(gates_staleness(g, rows[i].clock) ==
                  (rows[i].clock > lo ? rows[i].clock - lo : 0));
        if (gates_pull_ready(g, rows[i].clock) != rows[i].ready)
            CU_FAIL("SSP readiness row wrong");
        gates_free(&g);
    }

    /* Only live workers count: the slow one leaving opens the gate; nobody live: open. */
    Gates *g = make(2, SERVER_SSP, 1);
    CU_ASSERT(gates_on_clock(g, 1, 9) == 0);
    CU_ASSERT(!gates_pull_ready(g, 5));
    CU_ASSERT(gates_on_done(g, 0) == 1);
    CU_ASSERT(gates_slowest(g) == 10);
    CU_ASSERT(gates_pull_ready(g, 5));
    CU_ASSERT(!gates_pull_ready(g, 12));
    CU_ASSERT(gates_on_failed(g, 1) == 1);
    CU_ASSERT(gates_slowest(g) == UINT64_MAX);
    CU_ASSERT(gates_staleness(g, 100) == 0);
    CU_ASSERT(gates_pull_ready(g, 1000));
    gates_free(&g);
}

static void test_asp(void)
{
    Gates *g = make(3, SERVER_ASP, 0);
    CU_ASSERT(gates_pull_ready(g, 0));
    CU_ASSERT(gates_pull_ready(g, 1000));
    CU_ASSERT(gates_staleness(g, 7) == 7);
    Applied a = {0};
    CU_ASSERT(gates_on_clock(g, 0, 0) == 0);
    CU_ASSERT(gates_bsp_advance(g, record, &a) == 0);
    CU_ASSERT(a.calls == 0 && gates_bsp_clock(g) == 0);
    gates_free(&g);
}

static int defer1(Gates *g, char tag, uint64_t clock, uint64_t request_id)
{
    uint64_t keys[2] = {request_id * 10, request_id * 10 + 1};
    unsigned char id[3] = {'i', (unsigned char)tag, 0};
    int rc = gates_defer(g, id, sizeof id, 1, PARAM_USER, clock, request_id, 0, keys, 2);
    keys[0] = keys[1] = 0; /* the queue holds its own copy */
    return rc;
}

/* Take the next ready (or any) pull, check it is request `want` (0: none), free it. */
static void expect_take(Gates *g, int all, uint64_t want)
{
    GatesPull p;
    int got = all ? gates_take_all(g, &p) : gates_take_ready(g, &p);
    if (!want) {
        CU_ASSERT(got == 0);
        return;
    }
    CU_ASSERT_FATAL(got == 1);
    CU_ASSERT(p.request_id == want);
    CU_ASSERT(p.worker == 1 && p.table == PARAM_USER && p.key_count == 2);
    CU_ASSERT(p.keys[0] == want * 10 && p.keys[1] == want * 10 + 1);
    CU_ASSERT(p.id_len == 3 && p.id[0] == 'i');
    gates_pull_fini(&p);
    CU_ASSERT(p.keys == NULL);
}

static void test_deferred(void)
{
    Gates *g = make(2, SERVER_SSP, 0);
    CU_ASSERT(defer1(g, 'a', 1, 1) == 0);
    CU_ASSERT(defer1(g, 'b', 2, 2) == 0);
    CU_ASSERT(defer1(g, 'c', 1, 3) == 0);
    CU_ASSERT(defer1(g, 'd', 2, 4) == 0);
    CU_ASSERT(gates_waiting(g) == 4);
    expect_take(g, 0, 0); /* nothing ready yet */
    CU_ASSERT(gates_waiting(g) == 4);

    /* Worker 0 finishes step 0: slowest is still 0, nothing goes. */
    CU_ASSERT(gates_on_clock(g, 0, 0) == 0);
    expect_take(g, 0, 0);
    /* Worker 1 too: the clock-1 pulls go, in arrival order; the clock-2 ones stay. */
    CU_ASSERT(gates_on_clock(g, 1, 0) == 0);
    expect_take(g, 0, 1);
    CU_ASSERT(gates_waiting(g) == 3);
    /* Stop half-way, queue more, change clocks: order is kept, nothing lost. */
    CU_ASSERT(defer1(g, 'e', 1, 5) == 0);
    CU_ASSERT(gates_on_clock(g, 0, 1) == 0);
    expect_take(g, 0, 3);
    expect_take(g, 0, 5);
    expect_take(g, 0, 0);
    CU_ASSERT(gates_waiting(g) == 2);

    CU_ASSERT(defer1(g, 'f', 9, 6) == 0);
    CU_ASSERT(gates_on_clock(g, 1, 1) == 0); /* slowest 2: the clock-2 pulls go */
    expect_take(g, 0, 2);
    CU_ASSERT(gates_waiting(g) == 2);
    /* The end: whatever still waits is handed out, in order, once. */
    expect_take(g, 1, 4);
    expect_take(g, 1, 6);
    expect_take(g, 1, 0);
    CU_ASSERT(gates_waiting(g) == 0);
    expect_take(g, 0, 0);

    /* Left waiting at gates_free: freed there (the leak checker watches). */
    CU_ASSERT(defer1(g, 'g', 50, 7) == 0);
    gates_free(&g);

    /* A pass left half-way (the loop stopped after an error) right after it passed over a
     * pull that was not ready: once the clocks move, that pull is looked at again; and the
     * end still hands out the ones passed over. */
    g = make(1, SERVER_SSP, 0);
    CU_ASSERT(defer1(g, 'x', 2, 11) == 0);
    CU_ASSERT(defer1(g, 'y', 1, 12) == 0);
    CU_ASSERT(defer1(g, 'z', 3, 13) == 0);
    CU_ASSERT(gates_on_clock(g, 0, 0) == 0);
    expect_take(g, 0, 12); /* 11 passed over, not ready */
    CU_ASSERT(gates_on_clock(g, 0, 1) == 0);
    expect_take(g, 0, 11);
    expect_take(g, 0, 0);
    CU_ASSERT(defer1(g, 'w', 3, 14) == 0);
    CU_ASSERT(defer1(g, 'v', 2, 15) == 0);
    expect_take(g, 0, 15); /* 13, 14 passed over */
    expect_take(g, 1, 13);
    expect_take(g, 1, 14);
    expect_take(g, 1, 0);
    gates_free(&g);

    /* BSP: a pull at clock 1 goes once clock 0 is applied, not when it is merely clocked. */
    g = make(1, SERVER_BSP, 0);
    CU_ASSERT(defer1(g, 'h', 1, 8) == 0);
    CU_ASSERT(gates_on_clock(g, 0, 0) == 0);
    expect_take(g, 0, 0);
    Applied a = {0};
    CU_ASSERT(gates_bsp_advance(g, record, &a) == 0);
    expect_take(g, 0, 8);
    CU_ASSERT(gates_waiting(g) == 0);
    gates_free(&g);
}

static void test_clock_rules(void)
{
    Gates *g = make(2, SERVER_SSP, 0);
    CU_ASSERT(gates_on_clock(g, 0, 3) == 0); /* skipping ahead is allowed */
    CU_ASSERT(gates_on_clock(g, 1, 3) == 0);
    CU_ASSERT(gates_slowest(g) == 4);
    CU_ASSERT(gates_on_clock(g, 0, 2) == PSREC_E_RANGE); /* backwards */
    CU_ASSERT(gates_on_clock(g, 0, 3) == PSREC_E_RANGE); /* the same step twice */
    CU_ASSERT(gates_on_clock(g, 0, UINT64_MAX) == PSREC_E_RANGE);
    CU_ASSERT(gates_slowest(g) == 4); /* refusals change nothing */
    CU_ASSERT(gates_on_clock(g, 0, 4) == 0);
    CU_ASSERT(gates_on_clock(g, 1, 4) == 0);
    CU_ASSERT(gates_slowest(g) == 5);
    CU_ASSERT(gates_on_clock(g, 2, 9) == PSREC_E_RANGE); /* no such worker */
    CU_ASSERT(gates_on_done(g, 1) == 1);
    CU_ASSERT(gates_on_clock(g, 1, 9) == PSREC_E_STATE); /* left */
    CU_ASSERT(gates_on_done(g, 7) == 0);
    CU_ASSERT(gates_live(g) == 1);
    gates_free(&g);

    Gates *bad = NULL;
    CU_ASSERT(gates_new(0, SERVER_BSP, 0, widths, &bad) == PSREC_E_RANGE && bad == NULL);
    CU_ASSERT(gates_new(1, (ServerConsistency)7, 0, widths, &bad) == PSREC_E_RANGE);
}

int main(void)
{
    static const TuTest tests[] = {
        {"BSP: sum / 2 once both clocked, wrong clocks refused", test_bsp_average},
        {"BSP: rows applied table by table, runs in arrival order", test_bsp_runs},
        {"BSP: a far-ahead clock moves the barrier at once", test_bsp_far_clock},
        {"BSP: leavers release the gate, divisor = finishers", test_bsp_leavers},
        {"SSP: bound below / at / above, live workers only", test_ssp_bound},
        {"ASP: always ready, no barrier", test_asp},
        {"deferred pulls: arrival order, exactly when ready, all at the end", test_deferred},
        {"clocks only grow", test_clock_rules},
        {NULL, NULL},
    };
    tu_add_suite("gates", tests);
    return tu_run_all();
}
