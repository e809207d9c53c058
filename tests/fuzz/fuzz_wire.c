/* libFuzzer target: the wire decoder together with a shard's request handling.
 *
 * A real ServerLoop (server/loop.h: BSP, 2 workers, a small schema, no checkpoint writer)
 * runs on its own thread behind inproc://; a DEALER client sends each input as one multipart
 * message, so the shard's ROUTER sees [client identity, frames...] exactly as from the
 * network. Input framing: repeated {u16 LE length, that many bytes} (a short last length
 * takes what remains), at most 8 frames. After every input the client sends a STATS request
 * and waits for the answer (any reply with its request id; an ERROR counts): the shard must
 * keep serving. No answer within 5 s while the loop still runs aborts (a finding). A loop
 * that ended because both workers sent SHUTDOWN (a legitimate request) is replaced by a
 * fresh one; state otherwise carries over between inputs (clocks, deferred pulls), as it
 * would for a long-lived shard. So a finding may need the inputs before it: replay them in
 * order (fuzz_wire corpus/wire/shutdown-w1 corpus/wire/crash-far-clock reproduces the first). */
#include "common/error.h"
#include "common/wire.h"
#include "server/loop.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAMES 8
#define ANSWER_MS 5000

static const ParamShape shape = {
    .E = 2, .H = 2, .vocab_rows = 20, .category_rows = 5, .user_rows = 10};
static void *ctx;
static ServerLoop *loop;
static void *client;
static WireLimits lim;
static uint64_t stats_id = (uint64_t)1 << 62;

static void start(void)
{
    static int n;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://fuzz-wire-%d", n++);
    ServerLoopOptions o = {
        .shard = {.shape = shape, .optim = {.kind = OPTIM_SGD, .lr = 0.1f}, .seed = 1},
        .shard_index = 0,
        .shard_count = 1,
        .workers = 2,
        .consistency = SERVER_BSP,
        .endpoint = ep,
        .zmq_ctx = ctx};
    if (server_loop_new(&o, &loop) || server_loop_start(loop)) {
        fprintf(stderr, "fuzz_wire: %s\n", psrec_errmsg());
        abort();
    }
    int zero = 0;
    client = zmq_socket(ctx, ZMQ_DEALER);
    if (!client || zmq_setsockopt(client, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_connect(client, ep))
        abort();
}

static void stop(void)
{
    int rc;
    zmq_close(client);
    server_loop_stop(loop);
    server_loop_join(loop, -1, &rc);
    server_loop_free(&loop);
    if (rc) {
        fprintf(stderr, "fuzz_wire: the loop failed: %s\n", psrec_strerror(rc));
        abort(); /* bad messages never end the loop */
    }
}

/* Send the input as one multipart message. */
static void send_input(const uint8_t *p, size_t n)
{
    const uint8_t *f[MAX_FRAMES];
    size_t len[MAX_FRAMES];
    int k = 0;
    while (n > 0 && k < MAX_FRAMES) {
        size_t l = n >= 2 ? (size_t)(p[0] | p[1] << 8) : 0;
        size_t hdr = n >= 2 ? 2 : n;
        p += hdr, n -= hdr;
        if (l > n)
            l = n;
        f[k] = p;
        len[k++] = l;
        p += l, n -= l;
    }
    for (int i = 0; i < k; i++)
        if (zmq_send(client, f[i], len[i], i + 1 < k ? ZMQ_SNDMORE : 0) < 0)
            abort();
}

/* 1 when the STATS reply came, 0 when the loop ended on its own. */
static int await_stats(void)
{
    WireHeader h;
    wire_header_init(&h, WIRE_OP_STATS);
    h.request_id = ++stats_id;
    if (wire_send(client, NULL, 0, &h, NULL, NULL))
        abort();
    for (int waited = 0; waited < ANSWER_MS; waited += 10) {
        zmq_pollitem_t it = {.socket = client, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 10) == 1) {
            WireMsg m;
            char why[256];
            int rc = wire_recv(client, 0, &m, &lim, why, sizeof why);
            int mine = m.header_ok && m.h.reply && m.h.request_id == stats_id;
            wire_msg_close(&m);
            if (rc > 0)
                abort(); /* inproc does not fail */
            if (mine)
                return 1;
            waited -= 10;
            continue;
        }
        if (server_loop_done(loop))
            return 0;
    }
    fprintf(stderr, "fuzz_wire: the shard stopped answering\n");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx) {
        ctx = zmq_ctx_new();
        if (!ctx)
            abort();
        wire_limits_init(&lim, &shape);
        start();
    }
    send_input(data, size);
    if (!await_stats()) {
        stop();
        start();
    }
    return 0;
}
