/* Wire messages: every op round-trips over DEALER/ROUTER (inproc and TCP, where frames may be
 * unaligned), and every kind of malformed message is refused with the right code and reason
 * while the socket stays in step (the next good message decodes). */
#include "common/error.h"
#include "common/wire.h"
#include "testutil/testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#define NO_MESSAGE 12345 /* recv_msg: nothing arrived in time */

static const ParamShape shape = {
    .E = 4, .H = 3, .vocab_rows = 100, .category_rows = 10, .user_rows = 50};

static void *ctx;

/* A connected DEALER (client) / ROUTER (server) pair on endpoint (inproc or tcp). */
typedef struct Pair {
    void *router, *dealer;
} Pair;

static void pair_open(Pair *p, const char *endpoint)
{
    char ep[256];
    size_t len = sizeof ep;
    int zero = 0;
    p->router = zmq_socket(ctx, ZMQ_ROUTER);
    p->dealer = zmq_socket(ctx, ZMQ_DEALER);
    CU_ASSERT_FATAL(p->router && p->dealer);
    zmq_setsockopt(p->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(p->dealer, ZMQ_LINGER, &zero, sizeof zero);
    CU_ASSERT_FATAL(zmq_bind(p->router, endpoint) == 0);
    CU_ASSERT_FATAL(zmq_getsockopt(p->router, ZMQ_LAST_ENDPOINT, ep, &len) == 0);
    CU_ASSERT_FATAL(zmq_connect(p->dealer, ep) == 0);
}

static void pair_close(Pair *p)
{
    zmq_close(p->router);
    zmq_close(p->dealer);
}

/* wire_recv after waiting up to 2 s for a message; NO_MESSAGE when none came. */
static int recv_msg(void *sock, int has_id, WireMsg *m, char *reason, size_t n)
{
    static WireLimits lim;
    if (!lim.max_keys)
        wire_limits_init(&lim, &shape);
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    memset(m, 0, sizeof *m);
    if (zmq_poll(&it, 1, 2000) != 1)
        return NO_MESSAGE;
    return wire_recv(sock, has_id, m, &lim, reason, n);
}

/* Send frames as given (count frames of data[i], len[i]) from the dealer. */
static void send_raw(void *sock, int count, const void *const *data, const size_t *len)
{
    for (int i = 0; i < count; i++)
        CU_ASSERT_FATAL(zmq_send(sock, data[i], len[i], i + 1 < count ? ZMQ_SNDMORE : 0) >= 0);
}

/* PULL request of keys[0..n) on table. */
static WireHeader pull_header(uint32_t table, uint64_t n, uint64_t request_id)
{
    WireHeader h;
    wire_header_init(&h, WIRE_OP_PULL);
    h.table = table;
    h.worker_rank = 1;
    h.clock = 7;
    h.request_id = request_id;
    h.key_count = n;
    return h;
}

/* Every op, both directions where the protocol has them, over inproc: fields, keys and values
 * come back as sent; the reported size equals wire_message_size. */
static void test_round_trip_every_op(void)
{
    Pair p;
    pair_open(&p, "inproc://wire-rt");
    WireMsg m;
    char why[256];

    uint64_t keys[3] = {0, 99, 42};
    WireHeader h = pull_header(PARAM_WORD, 3, 0xabcdef0123ULL);
    CU_ASSERT_FATAL(wire_send(p.dealer, NULL, 0, &h, keys, NULL) == 0);
    CU_ASSERT_FATAL(recv_msg(p.router, 1, &m, why, sizeof why) == 0);
    CU_ASSERT(m.header_ok && m.h.op == WIRE_OP_PULL && !m.h.reply);
    CU_ASSERT(m.h.request_id == 0xabcdef0123ULL && m.h.clock == 7 && m.h.worker_rank == 1);
    CU_ASSERT(m.h.key_count == 3 && m.keys && memcmp(m.keys, keys, sizeof keys) == 0);
    CU_ASSERT(m.vals == NULL && m.id_len > 0);
    CU_ASSERT_EQUAL(m.bytes, wire_message_size(&h));

    /* PULL reply back through the identity. */
    float rows[12];
    for (int i = 0; i < 12; i++)
        rows[i] = (float)i * 0.25f - 1.0f;
    WireHeader r = m.h;
    r.reply = 1;
    r.value_width = 4;
    unsigned char id[WIRE_IDENTITY_MAX];
    size_t id_len = m.id_len;
    memcpy(id, m.identity, id_len);
    wire_msg_close(&m);
    CU_ASSERT_FATAL(wire_send(p.router, id, id_len, &r, keys, rows) == 0);
    CU_ASSERT_FATAL(recv_msg(p.dealer, 0, &m, why, sizeof why) == 0);
    CU_ASSERT(m.h.op == WIRE_OP_PULL && m.h.reply && m.h.value_width == 4);
    CU_ASSERT(m.h.request_id == 0xabcdef0123ULL && m.id_len == 0);
    CU_ASSERT(m.vals && memcmp(m.vals, rows, sizeof rows) == 0);
    CU_ASSERT(m.keys && memcmp(m.keys, keys, sizeof keys) == 0);
    wire_msg_close(&m);

    /* PUSH request (dense table, width 12) and its ack. */
    uint64_t dk[2] = {3, 0};
    float g[24];
    for (int i = 0; i < 24; i++)
        g[i] = (float)i - 11.5f;
    wire_header_init(&h, WIRE_OP_PUSH);
    h.table = PARAM_NEWS_WIH;
    h.key_count = 2;
    h.value_width = 12;
    h.request_id = 2;
    CU_ASSERT_FATAL(wire_send(p.dealer, NULL, 0, &h, dk, g) == 0);
    CU_ASSERT_FATAL(recv_msg(p.router, 1, &m, why, sizeof why) == 0);
    CU_ASSERT(m.h.op == WIRE_OP_PUSH && m.h.table == PARAM_NEWS_WIH && m.h.value_width == 12);
    CU_ASSERT(m.vals && memcmp(m.vals, g, sizeof g) == 0 && memcmp(m.keys, dk, sizeof dk) == 0);
    CU_ASSERT_EQUAL(m.bytes, wire_message_size(&h));
    wire_msg_close(&m);
    wire_header_init(&h, WIRE_OP_PUSH);
    h.reply = 1;
    h.request_id = 2;
    CU_ASSERT_FATAL(wire_send(p.router, id, id_len, &h, NULL, NULL) == 0);
    CU_ASSERT_FATAL(recv_msg(p.dealer, 0, &m, why, sizeof why) == 0);
    CU_ASSERT(m.h.op == WIRE_OP_PUSH && m.h.reply && m.keys == NULL && m.vals == NULL);
    wire_msg_close(&m);

    /* Header-only requests. */
    const WireOp ops[] = {WIRE_OP_CLOCK, WIRE_OP_HEARTBEAT, WIRE_OP_STATS, WIRE_OP_SHUTDOWN};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        wire_header_init(&h, ops[i]);
        h.clock = 100 + i;
        h.worker_rank = 3;
        h.request_id = 10 + i;
        CU_ASSERT_FATAL(wire_send(p.dealer, NULL, 0, &h, NULL, NULL) == 0);
        CU_ASSERT_FATAL(recv_msg(p.router, 1, &m, why, sizeof why) == 0);
        CU_ASSERT(m.h.op == ops[i] && m.h.clock == 100 + i && m.h.request_id == 10 + i);
        CU_ASSERT(m.h.worker_rank == 3 && m.keys == NULL && !m.h.has_stats);
        wire_msg_close(&m);
    }

    /* STATS reply carries every counter. */
    wire_header_init(&h, WIRE_OP_STATS);
    h.reply = 1;
    h.has_stats = 1;
    h.stats = (WireStats){1, 2, 3, 4, 5, 6, 7, UINT64_MAX, 9, 10};
    CU_ASSERT_FATAL(wire_send(p.router, id, id_len, &h, NULL, NULL) == 0);
    CU_ASSERT_FATAL(recv_msg(p.dealer, 0, &m, why, sizeof why) == 0);
    CU_ASSERT(m.h.has_stats && memcmp(&m.h.stats, &h.stats, sizeof h.stats) == 0);
    wire_msg_close(&m);

    /* ERROR reply: code and text (cut to the buffer). */
    wire_header_init(&h, WIRE_OP_ERROR);
    h.reply = 1;
    h.error_code = PSREC_E_RANGE;
    h.request_id = 77;
    memset(h.error_text, 'x', sizeof h.error_text);
    CU_ASSERT_FATAL(wire_send(p.router, id, id_len, &h, NULL, NULL) == 0);
    CU_ASSERT_FATAL(recv_msg(p.dealer, 0, &m, why, sizeof why) == 0);
    CU_ASSERT(m.h.op == WIRE_OP_ERROR && m.h.error_code == PSREC_E_RANGE && m.h.request_id == 77);
    CU_ASSERT_EQUAL(strlen(m.h.error_text), WIRE_ERROR_TEXT_MAX - 1);
    wire_msg_close(&m);

    /* Empty PULL: a keys frame of 0 bytes. */
    h = pull_header(PARAM_USER, 0, 5);
    CU_ASSERT_FATAL(wire_send(p.dealer, NULL, 0, &h, NULL, NULL) == 0);
    CU_ASSERT_FATAL(recv_msg(p.router, 1, &m, why, sizeof why) == 0);
    CU_ASSERT(m.h.key_count == 0 && m.keys == NULL);
    wire_msg_close(&m);
    pair_close(&p);
}

/* Over TCP the receiver may get frames pointing into a shared buffer at any offset: keys and
 * values must still come out aligned and intact, for many message sizes. */
static void test_tcp_alignment(void)
{
    Pair p;
    pair_open(&p, "tcp://127.0.0.1:*");
    uint64_t keys[40];
    float vals[40 * 4];
    for (int i = 0; i < 40; i++)
        keys[i] = (uint64_t)(i * 7 % 100);
    for (int i = 0; i < 160; i++)
        vals[i] = (float)i / 8.0f;
    for (uint64_t n = 1; n <= 40; n++) {
        WireHeader h;
        wire_header_init(&h, WIRE_OP_PUSH);
        h.table = PARAM_WORD;
        h.key_count = n;
        h.value_width = 4;
        h.request_id = n * 1000003;
        CU_ASSERT_FATAL(wire_send(p.dealer, NULL, 0, &h, keys, vals) == 0);
    }
    for (uint64_t n = 1; n <= 40; n++) {
        WireMsg m;
        char why[256];
        int rc = recv_msg(p.router, 1, &m, why, sizeof why);
        CU_ASSERT_FATAL(rc == 0);
        CU_ASSERT(m.h.key_count == n && m.h.request_id == n * 1000003);
        CU_ASSERT(((uintptr_t)m.keys & 7) == 0 && ((uintptr_t)m.vals & 3) == 0);
        CU_ASSERT(memcmp(m.keys, keys, n * 8) == 0 && memcmp(m.vals, vals, n * 16) == 0);
        wire_msg_close(&m);
    }
    pair_close(&p);
}

/* The sender refuses what the receiver would refuse: keys promised but not given, keys on an
 * op without a keys frame. */
static void test_send_checks(void)
{
    Pair p;
    pair_open(&p, "inproc://wire-send");
    WireHeader h = pull_header(PARAM_WORD, 2, 1);
    CU_ASSERT(wire_send(p.dealer, NULL, 0, &h, NULL, NULL) == PSREC_E_RANGE);
    wire_header_init(&h, WIRE_OP_CLOCK);
    h.key_count = 1;
    uint64_t k = 0;
    CU_ASSERT(wire_send(p.dealer, NULL, 0, &h, &k, NULL) == PSREC_E_RANGE);
    wire_header_init(&h, WIRE_OP_PUSH);
    h.key_count = 1;
    h.value_width = 4;
    CU_ASSERT(wire_send(p.dealer, NULL, 0, &h, &k, NULL) == PSREC_E_RANGE);
    /* Nothing half-sent: the next good message is the first one the router sees. */
    h = pull_header(PARAM_WORD, 1, 9);
    CU_ASSERT_FATAL(wire_send(p.dealer, NULL, 0, &h, &k, NULL) == 0);
    WireMsg m;
    char why[256];
    CU_ASSERT(recv_msg(p.router, 1, &m, why, sizeof why) == 0 && m.h.request_id == 9);
    wire_msg_close(&m);
    pair_close(&p);
}

/* One malformed message: frames as given, expect code and a reason containing `needle`, and
 * whether the header decoded; then a good PULL on the same socket must decode. */
typedef struct BadCase {
    const char *what;
    WireHeader h;
    int truncate;          /* drop this many bytes of the encoded header */
    int frames;            /* frames after the header (0..3) */
    size_t len[3];         /* their sizes */
    const void *data[3];
    int code;
    const char *needle;
    int header_ok;
} BadCase;

static void check_bad(Pair *p, const BadCase *c, uint64_t good_id)
{
    unsigned char hbuf[WIRE_HEADER_MAX];
    size_t hlen;
    CU_ASSERT_FATAL(wire_encode_header(&c->h, hbuf, sizeof hbuf, &hlen) == 0);
    const void *data[4] = {hbuf, c->data[0], c->data[1], c->data[2]};
    size_t len[4] = {hlen - (size_t)c->truncate, c->len[0], c->len[1], c->len[2]};
    send_raw(p->dealer, 1 + c->frames, data, len);

    WireMsg m;
    char why[256];
    int rc = recv_msg(p->router, 1, &m, why, sizeof why);
    if (rc != c->code || !strstr(why, c->needle) || m.header_ok != c->header_ok)
        fprintf(stderr, "\n  %s: rc %d (want %d), header_ok %d, reason '%s' (want '%s')\n",
                c->what, rc, c->code, m.header_ok, why, c->needle);
    CU_ASSERT_EQUAL(rc, c->code);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, c->needle));
    CU_ASSERT_EQUAL(m.header_ok, c->header_ok);
    CU_ASSERT(m.id_len > 0);
    CU_ASSERT(m.keys == NULL && m.vals == NULL);
    if (c->header_ok)
        CU_ASSERT_EQUAL(m.h.request_id, c->h.request_id);
    wire_msg_close(&m);

    uint64_t k = 5;
    WireHeader g = pull_header(PARAM_CAT, 1, good_id);
    CU_ASSERT_FATAL(wire_send(p->dealer, NULL, 0, &g, &k, NULL) == 0);
    rc = recv_msg(p->router, 1, &m, why, sizeof why);
    CU_ASSERT(rc == 0 && m.h.request_id == good_id && m.keys && m.keys[0] == 5);
    wire_msg_close(&m);
}

/* Every validation failure, each followed by a good message on the same socket. */
static void test_refusals(void)
{
    Pair p;
    pair_open(&p, "inproc://wire-bad");
    static uint64_t k3[4] = {1, 2, 3, 0}, kbad[2] = {1, 100}; /* k3[3]: room for "long" */
    static float v12[12], vnan[12], vinf[12];
    for (int i = 0; i < 12; i++)
        v12[i] = vnan[i] = vinf[i] = 0.5f;
    vnan[7] = NAN;
    vinf[5] = -INFINITY;

    WireHeader pull3 = pull_header(PARAM_WORD, 3, 31);
    WireHeader push3 = pull3;
    push3.op = WIRE_OP_PUSH;
    push3.value_width = 4;
    WireHeader v2 = pull3, bigk = pull3, badtab = pull3, op42 = pull3, err = pull3;
    WireHeader clockk = pull3, kbadh = pull_header(PARAM_WORD, 2, 32), wide = push3;
    v2.version = 2;
    bigk.key_count = WIRE_DEFAULT_MAX_KEYS + 1;
    badtab.table = PARAM_TABLES;
    op42.op = (WireOp)42;
    err.op = WIRE_OP_ERROR;
    clockk.op = WIRE_OP_CLOCK;
    wide.value_width = 3;
    WireHeader push2 = push3;
    push2.key_count = 2;
    push2.table = PARAM_CAT; /* width 3: 2 keys of 3 floats */
    push2.value_width = 3;
    WireHeader dt7 = push3, pushb = push3;
    dt7.dtype = 7;
    pushb.dtype = WIRE_DTYPE_BF16;
    static uint16_t bnan[12], binf[12];
    for (int i = 0; i < 12; i++)
        bnan[i] = binf[i] = 0x3f00; /* 0.5 */
    bnan[7] = 0x7fc1;
    binf[11] = 0xff80;

    const BadCase cases[] = {
        {"truncated header", pull3, 1, 1, {24}, {k3}, PSREC_E_PARSE, "does not decode", 0},
        {"wrong version", v2, 0, 1, {24}, {k3}, PSREC_E_FORMAT, "wire version 2", 1},
        {"unknown op", op42, 0, 1, {24}, {k3}, PSREC_E_FORMAT, "unknown op 42", 1},
        {"ERROR as a request", err, 0, 0, {0}, {NULL}, PSREC_E_FORMAT, "only a reply", 1},
        {"missing values frame", push3, 0, 1, {24}, {k3}, PSREC_E_FORMAT,
         "has 2 frames, needs 3", 1},
        {"missing keys frame", pull3, 0, 0, {0}, {NULL}, PSREC_E_FORMAT,
         "has 1 frames, needs 2", 1},
        {"extra frame", pull3, 0, 2, {24, 48}, {k3, v12}, PSREC_E_FORMAT,
         "has 3 frames, needs 2", 1},
        {"two extra frames", push3, 0, 3, {24, 48, 8}, {k3, v12, k3}, PSREC_E_FORMAT,
         "has 4 frames, needs 3", 1},
        {"keys frame short", pull3, 0, 1, {16}, {k3}, PSREC_E_FORMAT,
         "keys frame of 16 bytes", 1},
        {"keys frame long", pull3, 0, 1, {25}, {k3}, PSREC_E_FORMAT,
         "keys frame of 25 bytes", 1},
        {"values frame short", push3, 0, 2, {24, 44}, {k3, v12}, PSREC_E_FORMAT,
         "values frame of 44 bytes", 1},
        {"width mismatch", wide, 0, 2, {24, 36}, {k3, v12}, PSREC_E_FORMAT,
         "value_width 3, table 0 has width 4", 1},
        {"table out of range", badtab, 0, 1, {24}, {k3}, PSREC_E_RANGE, "no table 9", 1},
        {"key out of range", kbadh, 0, 1, {16}, {kbad}, PSREC_E_RANGE, "key 100 (index 1)", 1},
        {"NaN value", push3, 0, 2, {24, 48}, {k3, vnan}, PSREC_E_RANGE,
         "value 7 (key index 1) is NaN", 1},
        {"infinite value", push2, 0, 2, {16, 24}, {k3, vinf}, PSREC_E_RANGE,
         "value 5 (key index 1) is infinite", 1},
        {"oversized key_count", bigk, 0, 1, {0}, {NULL}, PSREC_E_RANGE, "key_count 4194305", 1},
        {"unknown dtype", dt7, 0, 2, {24, 48}, {k3, v12}, PSREC_E_FORMAT, "unknown dtype 7", 1},
        {"bf16 push with an f32-sized frame", pushb, 0, 2, {24, 48}, {k3, v12}, PSREC_E_FORMAT,
         "values frame of 48 bytes", 1},
        {"bf16 NaN", pushb, 0, 2, {24, 24}, {k3, bnan}, PSREC_E_RANGE,
         "value 7 (key index 1) is NaN", 1},
        {"bf16 infinity", pushb, 0, 2, {24, 24}, {k3, binf}, PSREC_E_RANGE,
         "value 11 (key index 2) is infinite", 1},
        {"keys on CLOCK", clockk, 0, 0, {0}, {NULL}, PSREC_E_FORMAT, "carries no keys", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_bad(&p, &cases[i], 1000 + i);

    /* A header frame of zero bytes decodes to version 0. */
    const void *data[2] = {"", k3};
    size_t len[2] = {0, 24};
    send_raw(p.dealer, 2, data, len);
    WireMsg m;
    char why[256];
    CU_ASSERT(recv_msg(p.router, 1, &m, why, sizeof why) == PSREC_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "wire version 0"));
    wire_msg_close(&m);

    /* The byte cap counts every frame. */
    WireLimits lim;
    wire_limits_init(&lim, &shape);
    lim.max_bytes = 60;
    CU_ASSERT_FATAL(wire_send(p.dealer, NULL, 0, &push3, k3, v12) == 0);
    zmq_pollitem_t it = {.socket = p.router, .events = ZMQ_POLLIN};
    CU_ASSERT_FATAL(zmq_poll(&it, 1, 2000) == 1);
    CU_ASSERT(wire_recv(p.router, 1, &m, &lim, why, sizeof why) == PSREC_E_RANGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "(max 60)"));
    wire_msg_close(&m);

    /* A header frame larger than any real header. */
    static unsigned char huge[WIRE_HEADER_MAX + 1];
    const void *hd[1] = {huge};
    size_t hl[1] = {sizeof huge};
    send_raw(p.dealer, 1, hd, hl);
    CU_ASSERT(recv_msg(p.router, 1, &m, why, sizeof why) == PSREC_E_PARSE);
    wire_msg_close(&m);
    wire_msg_close(&m); /* idempotent */

    /* Still in step. */
    uint64_t k = 9;
    WireHeader g = pull_header(PARAM_USER, 1, 4242);
    CU_ASSERT_FATAL(wire_send(p.dealer, NULL, 0, &g, &k, NULL) == 0);
    CU_ASSERT(recv_msg(p.router, 1, &m, why, sizeof why) == 0 && m.h.request_id == 4242);
    wire_msg_close(&m);
    pair_close(&p);
}

/* Rounding at and around every kind of boundary: ties go to the even neighbour, a carry runs
 * into the exponent, overflow reaches infinity, NaN stays NaN (even a payload only in the
 * low bits), signed zero and subnormals. in/out are bit patterns. */
static void test_bf16_rounding(void)
{
    static const struct {
        uint32_t in;
        uint16_t out;
        int refused; /* wire_bf16_encode refuses it (not finite, or overflows) */
    } cases[] = {
        {0x3f800000u, 0x3f80, 0}, /* 1.0 exact */
        {0x3f807fffu, 0x3f80, 0}, /* just below the tie: down */
        {0x3f808000u, 0x3f80, 0}, /* tie, kept bit even: stays */
        {0x3f808001u, 0x3f81, 0}, /* just above the tie: up */
        {0x3f818000u, 0x3f82, 0}, /* tie, kept bit odd: up to even */
        {0x3f80ffffu, 0x3f81, 0},
        {0xbf818000u, 0xbf82, 0}, /* negative tie, odd: away to even */
        {0xbf808000u, 0xbf80, 0},
        {0x3fff8000u, 0x4000, 0}, /* tie, odd, carries into the exponent: 2.0 */
        {0x3fff7fffu, 0x3fff, 0},
        {0x80000000u, 0x8000, 0}, /* -0 */
        {0x00000001u, 0x0000, 0}, /* smallest subnormal: to +0 */
        {0x00008000u, 0x0000, 0}, /* subnormal tie, even */
        {0x00018000u, 0x0002, 0}, /* subnormal tie, odd */
        {0x007fffffu, 0x0080, 0}, /* largest subnormal rounds up to the smallest normal */
        {0x7f7f0000u, 0x7f7f, 0}, /* largest finite bf16 */
        {0x7f7f7fffu, 0x7f7f, 0},
        {0x7f7f8000u, 0x7f80, 1}, /* tie, odd: overflows to infinity */
        {0x7f7fffffu, 0x7f80, 1}, /* FLT_MAX */
        {0xff7fffffu, 0xff80, 1}, /* -FLT_MAX */
        {0x7f800000u, 0x7f80, 1}, /* +inf */
        {0xff800000u, 0xff80, 1}, /* -inf */
        {0x7fc00000u, 0x7fc0, 1}, /* quiet NaN */
        {0x7f800001u, 0x7fc0, 1}, /* NaN whose payload is only in the cut bits */
        {0xffffffffu, 0xffff, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float x;
        memcpy(&x, &cases[i].in, 4);
        uint16_t b = wire_bf16_round(x);
        if (b != cases[i].out)
            fprintf(stderr, "\n  bf16(0x%08x) = 0x%04x, want 0x%04x\n", cases[i].in, b,
                    cases[i].out);
        CU_ASSERT_EQUAL(b, cases[i].out);
        uint16_t enc[3];
        float arr[3] = {1.0f, x, 2.0f};
        int rc = wire_bf16_encode(arr, 3, enc);
        CU_ASSERT_EQUAL(rc, cases[i].refused ? PSREC_E_RANGE : 0);
        if (cases[i].refused)
            CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "value 1 "));
        float back[3];
        CU_ASSERT_EQUAL(wire_bf16_decode(enc, 3, back), cases[i].refused ? PSREC_E_RANGE : 0);
        if (!cases[i].refused) { /* widening is exact and rounding it again is the identity */
            CU_ASSERT(back[0] == 1.0f && back[2] == 2.0f);
            uint32_t u;
            memcpy(&u, &back[1], 4);
            CU_ASSERT_EQUAL(u, (uint32_t)cases[i].out << 16);
            CU_ASSERT_EQUAL(wire_bf16_round(back[1]), cases[i].out);
        }
    }
    /* Relative error of rounding is at most half an ulp, 2^-8 (8 significant bits). */
    double worst = 0;
    for (int i = 1; i < 200000; i++) {
        float x = (float)(i * 1.000123) * (i % 2 ? 1e-6f : -3e3f);
        float q = wire_bf16_widen(wire_bf16_round(x));
        double e = fabs((double)q - x) / fabs((double)x);
        if (e > worst)
            worst = e;
    }
    CU_ASSERT(worst <= 1.0 / 256 && worst > 1.0 / 512);
    CU_ASSERT_EQUAL(wire_dtype_size(WIRE_DTYPE_F32), 4);
    CU_ASSERT_EQUAL(wire_dtype_size(WIRE_DTYPE_BF16), 2);
    CU_ASSERT_EQUAL(wire_dtype_size(2), 0);
}

/* bf16 PUSH and PULL reply over TCP (unaligned frames): the values frame has 2 bytes a value,
 * the receiver hands out aligned f32 equal to the rounded values, the byte counts agree; a
 * PULL request's dtype reaches the shard; the sender refuses what does not fit bf16 and sends
 * nothing of it. */
static void test_bf16_round_trip(void)
{
    Pair p;
    pair_open(&p, "tcp://127.0.0.1:*");
    uint64_t keys[40];
    float vals[40 * 4];
    for (int i = 0; i < 40; i++)
        keys[i] = (uint64_t)(i * 7 % 100);
    for (int i = 0; i < 160; i++)
        vals[i] = ((float)i - 80.3f) / 7.0f;
    for (uint64_t n = 1; n <= 40; n++) {
        WireHeader h;
        wire_header_init(&h, WIRE_OP_PUSH);
        h.table = PARAM_WORD;
        h.key_count = n;
        h.value_width = 4;
        h.dtype = WIRE_DTYPE_BF16;
        h.request_id = n;
        CU_ASSERT_FATAL(wire_send(p.dealer, NULL, 0, &h, keys, vals) == 0);
        WireHeader f = h; /* the same in f32: the values frame is twice as large */
        f.dtype = WIRE_DTYPE_F32;
        unsigned char hb[WIRE_HEADER_MAX];
        size_t hl, fl;
        CU_ASSERT_FATAL(wire_encode_header(&h, hb, sizeof hb, &hl) == 0);
        CU_ASSERT_FATAL(wire_encode_header(&f, hb, sizeof hb, &fl) == 0);
        CU_ASSERT_EQUAL(wire_message_size(&h) - hl, n * 8 + n * 4 * 2);
        CU_ASSERT_EQUAL(wire_message_size(&f) - fl, n * 8 + n * 4 * 4);
    }
    for (uint64_t n = 1; n <= 40; n++) {
        WireMsg m;
        char why[256];
        CU_ASSERT_FATAL(recv_msg(p.router, 1, &m, why, sizeof why) == 0);
        CU_ASSERT(m.h.key_count == n && m.h.dtype == WIRE_DTYPE_BF16);
        CU_ASSERT_EQUAL(m.bytes, wire_message_size(&m.h));
        CU_ASSERT(((uintptr_t)m.keys & 7) == 0 && ((uintptr_t)m.vals & 3) == 0);
        CU_ASSERT(memcmp(m.keys, keys, n * 8) == 0);
        int same = 1;
        for (size_t i = 0; i < n * 4; i++)
            same &= m.vals[i] == wire_bf16_widen(wire_bf16_round(vals[i]));
        CU_ASSERT(same);
        wire_msg_close(&m);
    }

    /* PULL: the request's dtype arrives; the reply in bf16 comes back rounded. */
    WireHeader h = pull_header(PARAM_WORD, 3, 77);
    h.dtype = WIRE_DTYPE_BF16;
    CU_ASSERT_FATAL(wire_send(p.dealer, NULL, 0, &h, keys, NULL) == 0);
    WireMsg m;
    char why[256];
    CU_ASSERT_FATAL(recv_msg(p.router, 1, &m, why, sizeof why) == 0);
    CU_ASSERT(m.h.dtype == WIRE_DTYPE_BF16 && m.vals == NULL);
    WireHeader r = m.h;
    r.reply = 1;
    r.value_width = 4;
    unsigned char id[WIRE_IDENTITY_MAX];
    size_t id_len = m.id_len;
    memcpy(id, m.identity, id_len);
    wire_msg_close(&m);
    CU_ASSERT_FATAL(wire_send(p.router, id, id_len, &r, keys, vals) == 0);
    CU_ASSERT_FATAL(recv_msg(p.dealer, 0, &m, why, sizeof why) == 0);
    CU_ASSERT(m.h.reply && m.h.dtype == WIRE_DTYPE_BF16 && m.bytes == wire_message_size(&r));
    for (int i = 0; i < 12; i++)
        CU_ASSERT(m.vals[i] == wire_bf16_widen(wire_bf16_round(vals[i])));
    wire_msg_close(&m);

    /* Refused before anything leaves: a non-finite value, an overflow, an unknown dtype. */
    float bad[4] = {1, 2, 3.4e38f, 4};
    wire_header_init(&h, WIRE_OP_PUSH);
    h.table = PARAM_WORD;
    h.key_count = 1;
    h.value_width = 4;
    h.dtype = WIRE_DTYPE_BF16;
    CU_ASSERT(wire_send(p.dealer, NULL, 0, &h, keys, bad) == PSREC_E_RANGE);
    bad[2] = NAN;
    CU_ASSERT(wire_send(p.dealer, NULL, 0, &h, keys, bad) == PSREC_E_RANGE);
    h.dtype = 9;
    CU_ASSERT(wire_send(p.dealer, NULL, 0, &h, keys, vals) == PSREC_E_RANGE);
    h = pull_header(PARAM_WORD, 1, 78);
    CU_ASSERT_FATAL(wire_send(p.dealer, NULL, 0, &h, keys, NULL) == 0);
    CU_ASSERT(recv_msg(p.router, 1, &m, why, sizeof why) == 0 && m.h.request_id == 78);
    wire_msg_close(&m);
    pair_close(&p);
}

/* The finite check of long value frames (checked a block at a time): one bad value at any
 * place (first and last of a block, the tail, the very end; NaN, -NaN, +-infinity) is
 * refused naming its index, f32 and bf16; extreme finite values (largest, smallest
 * subnormal, -0) pass. */
static void test_nonfinite_anywhere(void)
{
    enum { N = 700, W = 4, NV = N * W }; /* 2800 values: two blocks of 1024 and a tail */
    Pair p;
    pair_open(&p, "inproc://wire-nonfinite");
    static uint64_t keys[N];
    static float vals[NV];
    static uint16_t half[NV];
    for (int i = 0; i < N; i++)
        keys[i] = (uint64_t)i % shape.vocab_rows;
    const size_t at[] = {0, 5, 1023, 1024, 2047, 2048, 2500, NV - 1};
    const float bad[] = {NAN, -NAN, INFINITY, -INFINITY};
    WireHeader h;
    wire_header_init(&h, WIRE_OP_PUSH);
    h.table = PARAM_WORD;
    h.key_count = N;
    h.value_width = W;
    char why[WIRE_ERROR_TEXT_MAX], want[64];
    WireMsg m;
    for (size_t a = 0; a < sizeof at / sizeof *at; a++) {
        for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
            for (int i = 0; i < NV; i++)
                vals[i] = i % 3 == 0 ? 3.4e38f : i % 3 == 1 ? 1e-45f : -0.0f;
            vals[at[a]] = bad[b];
            h.dtype = WIRE_DTYPE_F32;
            CU_ASSERT_FATAL(wire_send(p.dealer, NULL, 0, &h, keys, vals) == 0);
            CU_ASSERT(recv_msg(p.router, 1, &m, why, sizeof why) == PSREC_E_RANGE);
            wire_msg_close(&m);
            snprintf(want, sizeof want, "value %zu (key index %zu) is %s", at[a], at[a] / W,
                     b < 2 ? "NaN" : "infinite");
            if (!strstr(why, want))
                fprintf(stderr, "\n  got '%s', want '%s'\n", why, want);
            CU_ASSERT(strstr(why, want) != NULL);
            /* bf16 frames (sent raw: wire_send refuses such values) */
            for (int i = 0; i < NV; i++)
                half[i] = 0x3f00;
            half[at[a]] = b < 2 ? (uint16_t)(b ? 0xffc1 : 0x7fc1) : b == 2 ? 0x7f80 : 0xff80;
            WireHeader hb = h;
            hb.dtype = WIRE_DTYPE_BF16;
            uint8_t hbuf[WIRE_HEADER_MAX];
            size_t hlen;
            CU_ASSERT_FATAL(wire_encode_header(&hb, hbuf, sizeof hbuf, &hlen) == 0);
            const void *data[3] = {hbuf, keys, half};
            const size_t len[3] = {hlen, sizeof keys, sizeof half};
            send_raw(p.dealer, 3, data, len);
            CU_ASSERT(recv_msg(p.router, 1, &m, why, sizeof why) == PSREC_E_RANGE);
            wire_msg_close(&m);
            CU_ASSERT(strstr(why, want) != NULL);
            float wide[NV];
            CU_ASSERT(wire_bf16_decode(half, NV, wide) == PSREC_E_RANGE);
            snprintf(want, sizeof want, "value %zu is %s", at[a], b < 2 ? "NaN" : "infinite");
            CU_ASSERT(strstr(psrec_errmsg(), want) != NULL);
        }
    }
    for (int i = 0; i < NV; i++)
        vals[i] = i % 3 == 0 ? -3.4e38f : i % 3 == 1 ? -1e-45f : -0.0f;
    h.dtype = WIRE_DTYPE_F32;
    CU_ASSERT_FATAL(wire_send(p.dealer, NULL, 0, &h, keys, vals) == 0);
    CU_ASSERT(recv_msg(p.router, 1, &m, why, sizeof why) == 0);
    CU_ASSERT(m.vals && memcmp(m.vals, vals, sizeof vals) == 0);
    wire_msg_close(&m);
    pair_close(&p);
}

/* A filler writing value i = base + i; fails when base is negative. */
static int fill_seq(void *arg, float *out, size_t n)
{
    const float base = *(const float *)arg;
    if (base < 0)
        return psrec_errf(PSREC_E_NOMEM, "filler refuses");
    for (size_t i = 0; i < n; i++)
        out[i] = base + (float)i;
    return 0;
}

/* wire_send_fill over TCP: the filler's values arrive (f32, long and short frames; bf16
 * rounded), a PULL request (no values frame) goes without calling it, and a failing filler
 * sends nothing (its error returned, the next message is the next one received). */
static void test_send_fill(void)
{
    Pair p;
    pair_open(&p, "tcp://127.0.0.1:*");
    static uint64_t keys[600];
    for (int i = 0; i < 600; i++)
        keys[i] = (uint64_t)i % shape.vocab_rows;
    const size_t counts[2] = {600, 1};
    WireHeader h;
    WireMsg m;
    char why[WIRE_ERROR_TEXT_MAX];
    float base = 0.5f;
    for (int d = 0; d < 2; d++) {
        for (int c = 0; c < 2; c++) {
            wire_header_init(&h, WIRE_OP_PUSH);
            h.table = PARAM_WORD;
            h.key_count = counts[c];
            h.value_width = 4;
            h.dtype = d ? WIRE_DTYPE_BF16 : WIRE_DTYPE_F32;
            h.request_id = 10 + (uint64_t)(2 * d + c);
            CU_ASSERT_FATAL(wire_send_fill(p.dealer, NULL, 0, &h, keys, fill_seq, &base) == 0);
            CU_ASSERT_FATAL(recv_msg(p.router, 1, &m, why, sizeof why) == 0);
            CU_ASSERT(m.h.request_id == h.request_id && m.h.key_count == counts[c]);
            CU_ASSERT(m.bytes == wire_message_size(&h));
            int same = 1;
            for (size_t i = 0; i < counts[c] * 4; i++) {
                float want = base + (float)i;
                if (d)
                    want = wire_bf16_widen(wire_bf16_round(want));
                same &= m.vals[i] == want;
            }
            CU_ASSERT(same);
            CU_ASSERT(memcmp(m.keys, keys, counts[c] * sizeof *keys) == 0);
            wire_msg_close(&m);
        }
    }
    float refuse = -1.0f;
    CU_ASSERT(wire_send_fill(p.dealer, NULL, 0, &h, keys, fill_seq, &refuse) == PSREC_E_NOMEM);
    CU_ASSERT(wire_send_fill(p.dealer, NULL, 0, &h, keys, NULL, NULL) == PSREC_E_RANGE);
    h = pull_header(PARAM_WORD, 3, 77);
    CU_ASSERT_FATAL(wire_send_fill(p.dealer, NULL, 0, &h, keys, fill_seq, &refuse) == 0);
    CU_ASSERT(recv_msg(p.router, 1, &m, why, sizeof why) == 0 && m.h.request_id == 77);
    wire_msg_close(&m);
    pair_close(&p);
}

int main(void)
{
    ctx = zmq_ctx_new();
    static const TuTest tests[] = {
        {"round trip of every op (inproc)", test_round_trip_every_op},
        {"keys/values aligned over tcp", test_tcp_alignment},
        {"sender refuses inconsistent messages", test_send_checks},
        {"refusals keep the socket in step", test_refusals},
        {"bf16 rounding at the boundaries", test_bf16_rounding},
        {"bf16 push and pull over tcp", test_bf16_round_trip},
        {"a non-finite value anywhere in a long frame", test_nonfinite_anywhere},
        {"values filled in place (wire_send_fill)", test_send_fill},
        {NULL, NULL},
    };
    tu_add_suite("wire", tests);
    int rc = tu_run_all();
    zmq_ctx_term(ctx);
    return rc;
}
