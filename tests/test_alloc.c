/* Allocation failure (tests/testutil/alloc_hook.h): for N = 1, 2, ... the Nth allocation of
 * an operation fails, until the operation runs with no failure injected. Each operation must
 * end in a clean error every time: an error return (or ERROR reply) with a message, no crash,
 * no leak (the Asan build's LeakSanitizer checks at exit), and nothing on disk that looks
 * valid. The operations:
 *   - a shard's request path: a server loop on its own thread, fed pull, push, clock, cut,
 *     stats and shutdown by a client whose own allocations are exempt;
 *   - prep_run on a hand-made TSV pair: no dataset at the output path, no scratch left;
 *   - a checkpoint cut (shard copy + cut_write, the committer's whole path): the step is not
 *     committed and the previous checkpoint stays the newest valid one.
 * This executable is linked with --wrap for the allocator (tests/CMakeLists.txt). */
#include "common/dataset.h"
#include "common/error.h"
#include "common/wire.h"
#include "launch/ckptdir.h"
#include "launch/cut.h"
#include "launch/prep.h"
#include "launch/run.h"
#include "server/loop.h"
#include "server/snapshot.h"
#include "testutil/alloc_hook.h"
#include "testutil/testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#define MAX_N 5000    /* an operation needing more allocations than this is a test bug */
#define WAIT_MS 3000  /* a reply that must come (or the loop must have ended) */

static const ParamShape shape = {
    .E = 4, .H = 3, .vocab_rows = 100, .category_rows = 10, .user_rows = 50};

/* ---- the shard's request path ------------------------------------------------------------ */

/* Wait for the reply to a request; 0 when it came (*op = its op, *id its request id), 1 when
 * the loop ended (no reply will come). */
static int await_reply(void *sock, ServerLoop *loop, const WireLimits *lim, WireOp *op,
                       uint64_t *id)
{
    for (int waited = 0; waited < WAIT_MS; waited += 20) {
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 20) == 1) {
            WireMsg m;
            int rc = wire_recv(sock, 0, &m, lim, NULL, 0);
            CU_ASSERT(rc == 0 && m.h.reply);
            if (m.h.op == WIRE_OP_ERROR)
                CU_ASSERT(m.h.error_text[0] != '\0');
            *op = m.h.op;
            *id = m.h.request_id;
            wire_msg_close(&m);
            return 0;
        }
        if (server_loop_done(loop))
            return 1;
    }
    CU_FAIL("no reply and the loop still runs");
    return 1;
}

/* One request; returns 1 when the loop has ended. An ERROR with request id 0 answers a
 * header the shard could not decode (no memory to decode it): nothing happened, so the
 * request is sent again, as a client would. */
static int request(void *sock, ServerLoop *loop, const WireLimits *lim, WireHeader *h,
                   const uint64_t *keys, const float *vals, int *errors)
{
    static uint64_t next_id = 1;
    h->request_id = next_id++;
    for (int tries = 0; tries < 2; tries++) {
        CU_ASSERT_FATAL(wire_send(sock, NULL, 0, h, keys, vals) == 0);
        WireOp op = WIRE_OP_NONE;
        uint64_t id = 0;
        if (await_reply(sock, loop, lim, &op, &id))
            return 1;
        if (op == WIRE_OP_ERROR)
            ++*errors;
        if (op == WIRE_OP_ERROR && id == 0)
            continue;
        CU_ASSERT(id == h->request_id);
        CU_ASSERT(op == h->op || op == WIRE_OP_ERROR);
        return 0;
    }
    CU_FAIL("an undecodable header twice: only one allocation fails");
    return 0;
}

typedef enum Mode { MODE_BSP, MODE_TAKEOVER, MODE_CHECKPOINT } Mode;

/* Meta of the shape above, for checkpoints. */
static RunMeta test_meta(void)
{
    return (RunMeta){.version = RUNMETA_VERSION, .size = sizeof(RunMeta), .E = shape.E,
                     .H = shape.H, .title_len = 4, .his_len = 3, .K = 2,
                     .optimizer = OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f,
                     .eps = 1e-8f, .vocab_rows = shape.vocab_rows,
                     .category_rows = shape.category_rows, .user_rows = shape.user_rows,
                     .seed = 5};
}

/* After a loop with a checkpoint writer: what is committed verifies, and a failed write
 * was reported with a message. Returns the failed writes. */
static int check_written(ServerLoop *loop, const char *root)
{
    SnapStatus st;
    server_loop_snap_status(loop, &st);
    if (st.failed)
        CU_ASSERT(st.last_error[0] != '\0' || st.last_rc == 0);
    uint64_t step = 0;
    char dir[4400];
    if (ckptdir_newest(root, &step, dir, sizeof dir) == 0)
        CU_ASSERT(ckptdir_verify(dir, NULL) == 0);
    /* Only committed step dirs remain: a failed write leaves no scratch. */
    DIR *d = opendir(root);
    CU_ASSERT_FATAL(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)))
        CU_ASSERT(e->d_name[0] == '.' || !strcmp(e->d_name, "LATEST") ||
                  (!strncmp(e->d_name, "step-", 5) && !strchr(e->d_name, '.')));
    closedir(d);
    return (int)st.failed;
}

/* Drive one loop through a short job of one worker (BSP; or ASP with held pushes; or BSP
 * writing its cuts and final image as checkpoints); returns the ERROR replies seen, plus 1000
 * when the loop ended on an error of its own, plus 100 per failed checkpoint write. */
static int drive_shard(void *ctx, int n, Mode mode)
{
    const int takeover = mode == MODE_TAKEOVER;
    char ep[64], root[4096] = "";
    snprintf(ep, sizeof ep, "inproc://alloc-%d-%d", (int)mode, n);
    const RunMeta meta = test_meta();
    CutWriter cw = {.meta = meta, .config_text = "# alloc test\n",
                    .model_hash = cut_model_hash(&meta), .seed = 5, .keep = 10,
                    .committer = 1, .wait_timeout = 5.0};
    if (mode == MODE_CHECKPOINT) {
        snprintf(root, sizeof root, "%s", tu_mkdtemp("alloc-loop"));
        snprintf(cw.root, sizeof cw.root, "%s", root);
    }
    ServerLoopOptions o = {
        .shard = {.shape = shape, .optim = {.kind = OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f,
                                            .beta2 = 0.999f, .eps = 1e-8f},
                  .seed = 3, .lazy_dense = 1},
        .shard_count = 1,
        .workers = 1,
        .consistency = takeover ? SERVER_ASP : SERVER_BSP,
        .endpoint = ep,
        .zmq_ctx = ctx,
        .takeover = takeover,
        .snap_fn = mode == MODE_CHECKPOINT ? cut_write : NULL,
        .snap_ctx = &cw,
        .final_image = mode == MODE_CHECKPOINT};
    WireLimits lim;
    wire_limits_init(&lim, &shape);
    ServerLoop *loop = NULL;
    psrec_errclear();
    alloc_hook_exempt_thread(0);
    alloc_hook_fail_at(n);
    int rc = server_loop_new(&o, &loop); /* creation counts too */
    alloc_hook_exempt_thread(1);
    if (rc) {
        CU_ASSERT(loop == NULL);
        CU_ASSERT(psrec_errmsg()[0] != '\0');
        if (root[0])
            tu_rmtree(root);
        return 1;
    }
    CU_ASSERT_FATAL(server_loop_start(loop) == 0);
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    CU_ASSERT_FATAL(zmq_connect(sock, server_loop_endpoint(loop)) == 0);

    const uint64_t words[3] = {3, 7, 3}, dense[2] = {0, 1};
    float g[3 * 64];
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        g[i] = 0.01f * (float)(i % 7);
    /* Every CLOCK, CUT and SHUTDOWN carries the worker's position (a cut's image needs it). */
    WireHeader pos;
    wire_header_init(&pos, WIRE_OP_NONE);
    const WorkerCut wc = {.pos = {.seed = 5, .world = 1}};
    size_t len;
    CU_ASSERT_FATAL(workercut_encode(&wc, pos.cut, WIRE_CUT_MAX, &len) == 0);
    pos.cut_len = (uint32_t)len;
    int errors = 0, ended = 0;
    for (uint64_t step = 0; step < 2 && !ended; step++) {
        WireHeader h;
        wire_header_init(&h, WIRE_OP_PULL);
        h.table = PARAM_WORD;
        h.clock = step;
        h.key_count = 3;
        ended = request(sock, loop, &lim, &h, words, NULL, &errors);
        wire_header_init(&h, WIRE_OP_PULL);
        h.table = PARAM_NEWS_WIH;
        h.clock = step;
        h.key_count = 2;
        ended = ended || request(sock, loop, &lim, &h, dense, NULL, &errors);
        wire_header_init(&h, WIRE_OP_PUSH);
        h.table = PARAM_WORD;
        h.clock = step;
        h.key_count = 3;
        h.value_width = lim.width[PARAM_WORD];
        ended = ended || request(sock, loop, &lim, &h, words, g, &errors);
        wire_header_init(&h, WIRE_OP_PUSH);
        h.table = PARAM_NEWS_WIH;
        h.clock = step;
        h.key_count = 2;
        h.value_width = lim.width[PARAM_NEWS_WIH];
        ended = ended || request(sock, loop, &lim, &h, dense, g, &errors);
        wire_header_init(&h, WIRE_OP_CLOCK);
        h.clock = step;
        memcpy(h.cut, pos.cut, pos.cut_len);
        h.cut_len = pos.cut_len;
        ended = ended || request(sock, loop, &lim, &h, NULL, NULL, &errors);
        if (step == 0) {
            wire_header_init(&h, WIRE_OP_CUT);
            h.clock = 1;
            memcpy(h.cut, pos.cut, pos.cut_len);
            h.cut_len = pos.cut_len;
            ended = ended || request(sock, loop, &lim, &h, NULL, NULL, &errors);
        }
    }
    WireHeader h;
    wire_header_init(&h, WIRE_OP_STATS);
    ended = ended || request(sock, loop, &lim, &h, NULL, NULL, &errors);
    wire_header_init(&h, WIRE_OP_SHUTDOWN);
    memcpy(h.cut, pos.cut, pos.cut_len);
    h.cut_len = pos.cut_len;
    ended = ended || request(sock, loop, &lim, &h, NULL, NULL, &errors);
    int lrc = 0;
    CU_ASSERT(server_loop_join(loop, 10.0, &lrc) == 0);
    /* Only a failure the model cannot take ends the loop (an update half-applied). */
    CU_ASSERT(ended ? lrc == PSREC_E_NOMEM : lrc == 0);
    zmq_close(sock);
    int failed_writes = 0;
    if (mode == MODE_CHECKPOINT) {
        server_loop_flush(loop);
        failed_writes = check_written(loop, root);
    }
    server_loop_free(&loop);
    alloc_hook_exempt_thread(0);
    if (root[0]) {
        if (!failed_writes && !lrc && !errors) { /* a clean run: both cuts are there */
            CU_ASSERT(ckptdir_committed(root, 1) && ckptdir_committed(root, 2));
            if (!ckptdir_committed(root, 1) || !ckptdir_committed(root, 2))
                fprintf(stderr, "\n  N=%d: steps committed: %d %d\n", n,
                        ckptdir_committed(root, 1), ckptdir_committed(root, 2));
        }
        tu_rmtree(root);
    }
    return errors + (lrc ? 1000 : 0) + 100 * failed_writes;
}

static void shard_loop(Mode mode)
{
    void *ctx = zmq_ctx_new();
    CU_ASSERT_FATAL(ctx != NULL);
    int n, failures = 0;
    for (n = 1; n < MAX_N; n++) {
        int r = drive_shard(ctx, n, mode);
        int fired = alloc_hook_fired();
        alloc_hook_fail_at(0);
        if (!fired) {
            CU_ASSERT(r == 0); /* nothing injected: a clean run */
            break;
        }
        failures += r != 0;
    }
    CU_ASSERT(n < MAX_N);
    CU_ASSERT(failures > 0);
    fprintf(stderr, "\n  shard (%s): %d allocations, %d of them refused cleanly\n",
            mode == MODE_TAKEOVER ? "ASP, takeover"
            : mode == MODE_CHECKPOINT ? "BSP, writing checkpoints" : "BSP",
            n - 1, failures);
    zmq_ctx_term(ctx);
}

static void test_shard_bsp(void)
{
    shard_loop(MODE_BSP);
}

static void test_shard_takeover(void)
{
    shard_loop(MODE_TAKEOVER);
}

static void test_shard_checkpoints(void)
{
    shard_loop(MODE_CHECKPOINT);
}

/* ---- prep ----------------------------------------------------------------------------- */

static const char *news_tsv =
    "N1\tsports\tsoccer\tBig Game, big win!\tabstract one\thttp://x/1\t[]\t[]\n"
    "N2\tfinance\tmarkets\tStocks fall\tabs\thttp://x/2\t[]\t[]\n"
    "N3\tlifestyle\tfood\tCaf\xc3\xa9 owners' rally\t\thttp://x/3\t[]\t[]\n"
    "N4\tsports\tgolf\tGolf is back\t\thttp://x/4\t[]\t[]\n";
static const char *beh_tsv =
    "1\tU1\t11/11/2019 9:05:58 AM\tN1 N2 N3\tN1-1 N2-0 N4-1\n"
    "2\tU2\t11/12/2019 12:00:00 PM\t\tN3-1 N9-0\n"
    "3\tU1\t11/13/2019 1:02:03 PM\tN8 N1\tN2-0 N1-1\n";

/* Entries of dir other than the inputs (scratch a failed prep left behind). */
static int leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    CU_ASSERT_FATAL(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            strcmp(e->d_name, "news.tsv") && strcmp(e->d_name, "beh.tsv") &&
            strcmp(e->d_name, "train.db")) {
            fprintf(stderr, "\n  left behind: %s\n", e->d_name);
            n++;
        }
    closedir(d);
    return n;
}

static int prep_once(const char *dir, const char *out, const char *vocab_from)
{
    char pn[4200], pb[4200];
    snprintf(pn, sizeof pn, "%s/news.tsv", dir);
    snprintf(pb, sizeof pb, "%s/beh.tsv", dir);
    PrepOptions o = {.news_path = pn, .behaviors_path = pb, .out_path = out,
                     .vocab_from = vocab_from, .title_len = vocab_from ? 0 : 4,
                     .his_len = vocab_from ? 0 : 2, .min_count = 1};
    return prep_run(&o, NULL);
}

static void prep_loop(int dev)
{
    char dir[4096], p[4200], out[4200], train[4200];
    snprintf(dir, sizeof dir, "%s", tu_mkdtemp("alloc-prep"));
    snprintf(p, sizeof p, "%s/news.tsv", dir);
    CU_ASSERT_FATAL(tu_write_file(p, news_tsv) == 0);
    snprintf(p, sizeof p, "%s/beh.tsv", dir);
    CU_ASSERT_FATAL(tu_write_file(p, beh_tsv) == 0);
    snprintf(train, sizeof train, "%s/train.db", dir);
    snprintf(out, sizeof out, "%s/%s", dir, dev ? "dev.db" : "out.db");
    if (dev)
        CU_ASSERT_FATAL(prep_once(dir, train, NULL) == 0);
    int n, failures = 0;
    for (n = 1; n < MAX_N; n++) {
        psrec_errclear();
        alloc_hook_fail_at(n);
        int rc = prep_once(dir, out, dev ? train : NULL);
        int fired = alloc_hook_fired();
        alloc_hook_fail_at(0);
        struct stat st;
        if (rc) {
            failures++;
            CU_ASSERT(psrec_errmsg()[0] != '\0');
            CU_ASSERT(stat(out, &st) != 0); /* no dataset, not even a partial one */
            Dataset *ds = NULL;
            CU_ASSERT(dataset_open(out, &ds) != 0);
            dataset_free(&ds);
        } else {
            if (fired)
                fprintf(stderr, "\n  N=%d: the failure was absorbed\n", n);
            Dataset *ds = NULL;
            CU_ASSERT(dataset_open(out, &ds) == 0);
            dataset_free(&ds);
            tu_rmtree(out);
        }
        CU_ASSERT(leftovers(dir) == 0);
        if (!fired) {
            CU_ASSERT(rc == 0);
            break;
        }
    }
    CU_ASSERT(n < MAX_N && failures > 0);
    fprintf(stderr, "\n  prep%s: %d allocations, %d failures injected, each a clean error\n",
            dev ? " --vocab-from" : "", n - 1, failures);
    tu_rmtree(dir);
}

static void test_prep_train(void)
{
    prep_loop(0);
}

static void test_prep_vocab_from(void)
{
    prep_loop(1);
}

/* ---- checkpoint writing ----------------------------------------------------------------- */

static void test_checkpoint(void)
{
    char root[4096];
    snprintf(root, sizeof root, "%s", tu_mkdtemp("alloc-ckpt"));
    const RunMeta meta = test_meta();
    ShardOptions so;
    run_meta_shard_options(&meta, &so);
    Shard *s = NULL;
    CU_ASSERT_FATAL(shard_new(&so, &s) == 0);
    const uint64_t keys[4] = {1, 5, 9, 40};
    float g[4 * 4] = {0.5f, -0.25f, 1.0f};
    CU_ASSERT_FATAL(shard_push(s, PARAM_USER, keys, 4, g) == 0);
    CutWriter cw = {.meta = meta, .config_text = "# alloc test\n",
                    .model_hash = cut_model_hash(&meta), .seed = 5, .keep = 10,
                    .committer = 1, .wait_timeout = 5.0};
    snprintf(cw.root, sizeof cw.root, "%s", root);
    CutImage *img = NULL;
    CU_ASSERT_FATAL(cut_image_new(1, &img) == 0);
    img->shards = 1;
    const WorkerCut wc = {.pos = {.seed = 5, .world = 1}};
    size_t len;
    CU_ASSERT_FATAL(workercut_encode(&wc, img->cuts, SNAP_CUT_MAX, &len) == 0);
    img->cut_len[0] = (uint32_t)len;
    img->step = img->finished[0] = 1;
    CU_ASSERT_FATAL(shard_snapshot(s, &img->copy) == 0);
    CU_ASSERT_FATAL(cut_write(&cw, img) == 0); /* the previous checkpoint */
    cut_image_free(&img);

    int n, failures = 0;
    for (n = 1; n < MAX_N; n++) {
        psrec_errclear();
        alloc_hook_fail_at(n);
        /* The cut as a shard takes it: image, shard copy, then the writer. */
        int rc = cut_image_new(1, &img);
        if (!rc) {
            img->shards = 1;
            CU_ASSERT_FATAL(workercut_encode(&wc, img->cuts, SNAP_CUT_MAX, &len) == 0);
            img->cut_len[0] = (uint32_t)len;
            img->step = img->finished[0] = 2;
            rc = shard_snapshot(s, &img->copy);
        }
        if (!rc)
            rc = cut_write(&cw, img);
        int fired = alloc_hook_fired();
        alloc_hook_fail_at(0);
        cut_image_free(&img);
        uint64_t step = 0;
        char dir[4400];
        CU_ASSERT_FATAL(ckptdir_newest(root, &step, dir, sizeof dir) == 0);
        if (rc) {
            failures++;
            CU_ASSERT(psrec_errmsg()[0] != '\0');
            CU_ASSERT(step == 1); /* the previous one stays the newest valid */
            CU_ASSERT(!ckptdir_committed(root, 2));
        } else {
            if (fired)
                fprintf(stderr, "\n  N=%d: the failure was absorbed\n", n);
            CU_ASSERT(step == 2);
            CU_ASSERT(ckptdir_verify(dir, NULL) == 0);
            CU_ASSERT(ckptdir_committed(root, 1)); /* keep = 10: nothing pruned */
            tu_rmtree(dir);
        }
        /* Nothing but the committed step 1 (scratch step dirs are removed on failure). */
        DIR *d = opendir(root);
        struct dirent *e;
        int others = 0;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.' && strncmp(e->d_name, "step-0000000001", 15) &&
                strcmp(e->d_name, "LATEST")) {
                fprintf(stderr, "\n  N=%d left: %s\n", n, e->d_name);
                others++;
            }
        closedir(d);
        CU_ASSERT(others == 0);
        if (!fired) {
            CU_ASSERT(rc == 0);
            break;
        }
    }
    CU_ASSERT(n < MAX_N && failures > 0);
    fprintf(stderr, "\n  checkpoint: %d allocations, %d failures injected, each a clean "
            "error\n", n - 1, failures);
    shard_free(&s);
    tu_rmtree(root);
}

int main(void)
{
    static const TuTest tests[] = {
        {"shard request path, BSP: every allocation fails once", test_shard_bsp},
        {"shard request path, held pushes: every allocation fails once", test_shard_takeover},
        {"shard writing checkpoints: every allocation fails once", test_shard_checkpoints},
        {"prep (train split): every allocation fails once", test_prep_train},
        {"prep --vocab-from: every allocation fails once", test_prep_vocab_from},
        {"checkpoint cut: every allocation fails once", test_checkpoint},
        {NULL, NULL}};
    tu_add_suite("alloc", tests);
    return tu_run_all();
}
