/* Parameter-server messages (proto/ps.proto) on ZeroMQ sockets.
 *
 * Invariants:
 * - The frames of a message are a function of (op, reply) alone (frames_for), on both the
 *   sending and the receiving side, so what wire_send produces wire_recv accepts.
 * - wire_recv reads every frame of a multipart message, whatever it finds wrong, so one bad
 *   message never shifts the next one; it hands out keys/values only after every check
 *   passed, as pointers aligned for their type (copied out of the frame when ZeroMQ's buffer
 *   is not: over TCP, frames may point into a shared receive buffer at any offset).
 * - protobuf-c types never leave this file.
 * - Values are f32 in memory on both sides; bf16 exists only in frames: wire_send rounds while
 *   it fills the frame (no extra copy), wire_recv widens into its aligned buffer, so no caller
 *   ever sees a bf16 value or a non-finite one.
 * Not done here: anything about the meaning of a request (clocks, workers, consistency) and
 * byte swapping: the wire is little-endian and so must the host be (checked at compile time). */
#include "common/wire.h"

#include "common/error.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ps.pb-c.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "psrec's wire format is little-endian; this host is not"
#endif

#define SAME_OP(w, p) ((int)(w) == (int)(p))
_Static_assert(SAME_OP(WIRE_OP_PULL, PSREC__PS_OP__PS_OP_PULL) &&
                   SAME_OP(WIRE_OP_PUSH, PSREC__PS_OP__PS_OP_PUSH) &&
                   SAME_OP(WIRE_OP_CLOCK, PSREC__PS_OP__PS_OP_CLOCK) &&
                   SAME_OP(WIRE_OP_HEARTBEAT, PSREC__PS_OP__PS_OP_HEARTBEAT) &&
                   SAME_OP(WIRE_OP_STATS, PSREC__PS_OP__PS_OP_STATS) &&
                   SAME_OP(WIRE_OP_SHUTDOWN, PSREC__PS_OP__PS_OP_SHUTDOWN) &&
                   SAME_OP(WIRE_OP_ERROR, PSREC__PS_OP__PS_OP_ERROR) &&
                   SAME_OP(WIRE_OP_CUT, PSREC__PS_OP__PS_OP_CUT) &&
                   SAME_OP(WIRE_FLAG_WANT_CUT, PSREC__PS_FLAG__PS_FLAG_WANT_CUT) &&
                   SAME_OP(WIRE_FLAG_WANT_STOP, PSREC__PS_FLAG__PS_FLAG_WANT_STOP) &&
                   SAME_OP(WIRE_FLAG_STOP, PSREC__PS_FLAG__PS_FLAG_STOP) &&
                   SAME_OP(WIRE_FLAG_REPLAN, PSREC__PS_FLAG__PS_FLAG_REPLAN),
               "WireOp must mirror PsOp");
#undef SAME_OP

size_t wire_dtype_size(uint32_t dtype)
{
    return dtype == WIRE_DTYPE_F32 ? sizeof(float) : dtype == WIRE_DTYPE_BF16 ? 2 : 0;
}

const char *wire_dtype_name(uint32_t dtype)
{
    return dtype == WIRE_DTYPE_F32 ? "f32" : dtype == WIRE_DTYPE_BF16 ? "bf16" : "?";
}

uint16_t wire_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it NaN (rounding could make it Inf) */
        return (uint16_t)((u >> 16) | 0x0040u);
    /* Adding 0x7fff rounds up exactly when the cut-off half is above 0x8000; the kept last bit
     * decides a tie (0x8000): up when it is odd, so the result is even. A carry into the
     * exponent is right (next binade; from the largest finite values it gives infinity). */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float wire_bf16_widen(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

#define BF16_EXP 0x7f80u /* exponent bits all ones: NaN or infinity */

int wire_bf16_encode(const float *in, size_t n, uint16_t *out)
{
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) { /* one pass, no branch: the check is or'ed up */
        uint16_t b = wire_bf16_round(in[i]);
        memcpy((unsigned char *)out + 2 * i, &b, 2); /* out may sit anywhere in a frame */
        bad |= (b & BF16_EXP) == BF16_EXP;
    }
    if (!bad)
        return 0;
    size_t i = 0;
    while ((wire_bf16_round(in[i]) & BF16_EXP) != BF16_EXP)
        i++;
    return psrec_errf(PSREC_E_RANGE, "value %zu (%g) %s", i, (double)in[i],
                      isfinite(in[i]) ? "overflows bf16" : "is not finite");
}

/* Widen without checking (validate checks every value afterwards). */
/* Index of the first NaN or infinity in v[0..n), or n. Blocks are first checked without a
 * branch per value (all exponent bits set <=> not finite; the compiler vectorizes the OR),
 * so the check costs a fraction of the copy the values already went through; only a block
 * with a bad value is walked again to find it. */
static size_t first_nonfinite(const float *v, size_t n)
{
    enum { BLOCK = 1024 }; /* a fixed trip count: vectorized at -O2 (no epilogue) */
    size_t b = 0;
    for (; n - b >= BLOCK; b += BLOCK) {
        uint32_t bad = 0;
        for (size_t i = 0; i < BLOCK; i++) {
            uint32_t u;
            memcpy(&u, v + b + i, sizeof u);
            bad |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (bad)
            break;
    }
    for (; b < n; b++) /* the block with a bad value, or the tail */
        if (!isfinite(v[b]))
            return b;
    return n;
}

static void bf16_widen_all(const void *in, size_t n, float *out)
{
    const unsigned char *p = in;
    for (size_t i = 0; i < n; i++) {
        uint16_t b;
        memcpy(&b, p + 2 * i, 2);
        out[i] = wire_bf16_widen(b);
    }
}

int wire_bf16_decode(const void *in, size_t n, float *out)
{
    bf16_widen_all(in, n, out);
    const size_t i = first_nonfinite(out, n);
    if (i < n)
        return psrec_errf(PSREC_E_RANGE, "value %zu is %s", i,
                          isnan(out[i]) ? "NaN" : "infinite");
    return 0;
}

void wire_verdicts_merge(WireVerdict *list, uint32_t *n, const WireHeader *h)
{
    for (uint32_t i = 0; i < h->nverdicts && i < WIRE_VERDICTS_MAX; i++) {
        uint32_t j = 0;
        while (j < *n && list[j].worker != h->verdicts[i].worker)
            j++;
        if (j == *n && j < WIRE_VERDICTS_MAX)
            list[(*n)++] = h->verdicts[i];
    }
}

void wire_verdicts_put(WireHeader *h, const WireVerdict *list, uint32_t n)
{
    h->nverdicts = n;
    memcpy(h->verdicts, list, n * sizeof *list);
}

void wire_header_init(WireHeader *h, WireOp op)
{
    memset(h, 0, sizeof *h);
    h->version = WIRE_VERSION;
    h->op = op;
}

void wire_limits_init(WireLimits *lim, const ParamShape *shape)
{
    TableSpec specs[PARAM_TABLES];
    params_specs(shape, specs);
    memset(lim, 0, sizeof *lim);
    for (int t = 0; t < PARAM_TABLES; t++) {
        lim->rows[t] = specs[t].rows;
        lim->width[t] = specs[t].width;
    }
    lim->max_keys = WIRE_DEFAULT_MAX_KEYS;
    lim->max_bytes = WIRE_DEFAULT_MAX_BYTES;
}

const char *wire_op_name(uint32_t op)
{
    static const char *names[] = {"NONE",  "PULL",     "PUSH", "CLOCK", "HEARTBEAT",
                                  "STATS", "SHUTDOWN", "ERROR", "CUT"};
    return op < sizeof names / sizeof names[0] ? names[op] : "?";
}

/* Frames of a message with this op and direction: 1 header, 2 + keys, 3 + values. */
static int frames_for(uint32_t op, int reply)
{
    if (op == WIRE_OP_PULL)
        return reply ? 3 : 2;
    if (op == WIRE_OP_PUSH)
        return reply ? 1 : 3;
    return 1;
}

static void put_u32(uint8_t *b, uint32_t v) { memcpy(b, &v, 4); } /* little-endian host */
static void put_u64(uint8_t *b, uint64_t v) { memcpy(b, &v, 8); }
static uint32_t get_u32(const uint8_t *b) { uint32_t v; memcpy(&v, b, 4); return v; }
static uint64_t get_u64(const uint8_t *b) { uint64_t v; memcpy(&v, b, 8); return v; }

/* Fill the protobuf-c header from h. text, stats and vbuf (12 * WIRE_VERDICTS_MAX bytes) are
 * the caller's storage. */
static void to_proto(const WireHeader *h, Psrec__PsHeader *ph, Psrec__PsStats *ps, char *text,
                     uint8_t *vbuf)
{
    psrec__ps_header__init(ph);
    ph->version = h->version;
    ph->op = (Psrec__PsOp)h->op;
    ph->reply = h->reply ? 1 : 0;
    ph->table = h->table;
    ph->worker_rank = h->worker_rank;
    ph->clock = h->clock;
    ph->request_id = h->request_id;
    ph->key_count = h->key_count;
    ph->value_width = h->value_width;
    ph->dtype = h->dtype;
    ph->error_code = h->error_code;
    size_t len = strnlen(h->error_text, WIRE_ERROR_TEXT_MAX - 1);
    memcpy(text, h->error_text, len);
    text[len] = '\0';
    ph->error_text = text;
    if (h->has_stats) {
        psrec__ps_stats__init(ps);
        ps->pulls = h->stats.pulls;
        ps->pushes = h->stats.pushes;
        ps->bytes_in = h->stats.bytes_in;
        ps->bytes_out = h->stats.bytes_out;
        ps->rows_held = h->stats.rows_held;
        ps->bad_messages = h->stats.bad_messages;
        ps->max_staleness = h->stats.max_staleness;
        ps->deferred_pulls = h->stats.deferred_pulls;
        ps->over_limit = h->stats.over_limit;
        ps->refused_connections = h->stats.refused_connections;
        ph->stats = ps;
    }
    if (h->cut_len) {
        ph->cut.data = (uint8_t *)h->cut;
        ph->cut.len = h->cut_len <= WIRE_CUT_MAX ? h->cut_len : WIRE_CUT_MAX;
    }
    ph->cut_step = h->cut_step;
    ph->lost_mask = h->lost_mask;
    if (h->nverdicts && h->nverdicts <= WIRE_VERDICTS_MAX) {
        for (uint32_t i = 0; i < h->nverdicts; i++) {
            put_u32(vbuf + 12 * i, h->verdicts[i].worker);
            put_u64(vbuf + 12 * i + 4, h->verdicts[i].steps);
        }
        ph->verdicts.data = vbuf;
        ph->verdicts.len = 12 * (size_t)h->nverdicts;
    }
    ph->flags = h->flags;
    ph->slowest = h->slowest;
}

static void from_proto(const Psrec__PsHeader *ph, WireHeader *h)
{
    memset(h, 0, sizeof *h);
    h->version = ph->version;
    h->op = (WireOp)ph->op;
    h->reply = ph->reply ? 1 : 0;
    h->table = ph->table;
    h->worker_rank = ph->worker_rank;
    h->clock = ph->clock;
    h->request_id = ph->request_id;
    h->key_count = ph->key_count;
    h->value_width = ph->value_width;
    h->dtype = ph->dtype;
    h->error_code = ph->error_code;
    if (ph->error_text)
        snprintf(h->error_text, sizeof h->error_text, "%s", ph->error_text);
    if (ph->stats) {
        h->has_stats = 1;
        h->stats = (WireStats){.pulls = ph->stats->pulls,
                               .pushes = ph->stats->pushes,
                               .bytes_in = ph->stats->bytes_in,
                               .bytes_out = ph->stats->bytes_out,
                               .rows_held = ph->stats->rows_held,
                               .bad_messages = ph->stats->bad_messages,
                               .max_staleness = ph->stats->max_staleness,
                               .deferred_pulls = ph->stats->deferred_pulls,
                               .over_limit = ph->stats->over_limit,
                               .refused_connections = ph->stats->refused_connections};
    }
    /* A cut longer than WIRE_CUT_MAX is kept as length only: wire_recv refuses it. */
    h->cut_len = ph->cut.len > UINT32_MAX ? UINT32_MAX : (uint32_t)ph->cut.len;
    if (ph->cut.len <= WIRE_CUT_MAX && ph->cut.len)
        memcpy(h->cut, ph->cut.data, ph->cut.len);
    h->cut_step = ph->cut_step;
    h->lost_mask = ph->lost_mask;
    /* Malformed verdicts are kept as a count over the maximum: wire_recv refuses them. */
    if (ph->verdicts.len % 12 || ph->verdicts.len / 12 > WIRE_VERDICTS_MAX) {
        h->nverdicts = WIRE_VERDICTS_MAX + 1;
    } else {
        h->nverdicts = (uint32_t)(ph->verdicts.len / 12);
        for (uint32_t i = 0; i < h->nverdicts; i++) {
            h->verdicts[i].worker = get_u32(ph->verdicts.data + 12 * i);
            h->verdicts[i].steps = get_u64(ph->verdicts.data + 12 * i + 4);
        }
    }
    h->flags = ph->flags;
    h->slowest = ph->slowest;
}

int wire_encode_header(const WireHeader *h, void *buf, size_t cap, size_t *len)
{
    Psrec__PsHeader ph;
    Psrec__PsStats ps;
    char text[WIRE_ERROR_TEXT_MAX];
    uint8_t vbuf[12 * WIRE_VERDICTS_MAX];
    to_proto(h, &ph, &ps, text, vbuf);
    size_t need = psrec__ps_header__get_packed_size(&ph);
    if (need > cap)
        return psrec_errf(PSREC_E_RANGE, "header needs %zu bytes, buffer has %zu", need, cap);
    *len = psrec__ps_header__pack(&ph, buf);
    return 0;
}

/* Bytes of the keys and values frames of h, 0 for frames the op does not carry. Saturates
 * instead of overflowing (such a message is refused anyway). An unknown dtype counts as f32
 * (it is refused before its data is read). */
static void data_sizes(const WireHeader *h, size_t *kbytes, size_t *vbytes)
{
    int frames = frames_for(h->op, h->reply);
    size_t kb = 0, vb = 0;
    if (frames >= 2 && __builtin_mul_overflow(h->key_count, (uint64_t)sizeof(uint64_t), &kb))
        kb = SIZE_MAX;
    if (frames >= 3 &&
        (__builtin_mul_overflow(h->key_count, (uint64_t)h->value_width, &vb) ||
         __builtin_mul_overflow(vb, h->dtype == WIRE_DTYPE_BF16 ? 2 : sizeof(float), &vb)))
        vb = SIZE_MAX;
    *kbytes = kb;
    *vbytes = vb;
}

size_t wire_message_size(const WireHeader *h)
{
    Psrec__PsHeader ph;
    Psrec__PsStats ps;
    char text[WIRE_ERROR_TEXT_MAX];
    uint8_t vbuf[12 * WIRE_VERDICTS_MAX];
    to_proto(h, &ph, &ps, text, vbuf);
    size_t kb, vb, total = psrec__ps_header__get_packed_size(&ph);
    data_sizes(h, &kb, &vb);
    if (__builtin_add_overflow(total, kb, &total) || __builtin_add_overflow(total, vb, &total))
        return SIZE_MAX;
    return total;
}

/* zmq_send of one frame, retried on EINTR. Returns 0 or zmq_errno(). */
static int send_frame(void *sock, const void *data, size_t len, int more)
{
    static const char empty;
    if (!data)
        data = &empty;
    for (;;) {
        if (zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0) >= 0)
            return 0;
        if (zmq_errno() != EINTR)
            return zmq_errno();
    }
}

/* zmq_msg_send of a prepared frame, retried on EINTR; the frame is closed either way.
 * Returns 0 or zmq_errno(). */
static int send_msg_frame(void *sock, zmq_msg_t *f, int more)
{
    for (;;) {
        if (zmq_msg_send(f, sock, more ? ZMQ_SNDMORE : 0) >= 0)
            return 0;
        int e = zmq_errno();
        if (e != EINTR) {
            zmq_msg_close(f);
            return e;
        }
    }
}

/* The values frame of h (vb bytes, nv values) built in place: f32 values written straight
 * into the message by fill (or copied from vals), bf16 rounded into it from vals or from a
 * scratch fill wrote. Returns 0 or an error (the frame is closed then). */
static int values_frame(zmq_msg_t *f, const WireHeader *h, size_t vb, size_t nv,
                        const float *vals, WireFillFn fill, void *ctx)
{
    if (zmq_msg_init_size(f, vb))
        return zmq_errno();
    void *data = zmq_msg_data(f);
    float *scratch = NULL;
    const float *src = vals; /* what is still to be copied or rounded into the frame */
    int rc = 0;
    const int f32 = h->dtype == WIRE_DTYPE_F32;
    if (fill && f32 && ((uintptr_t)data & (_Alignof(float) - 1)) == 0) {
        rc = fill(ctx, data, nv);
        src = NULL;
    } else if (fill) { /* a scratch for the filler: bf16, or a frame not aligned for f32 */
        if (!(scratch = malloc(nv ? nv * sizeof *scratch : 1)))
            rc = psrec_errf(PSREC_E_NOMEM, "%s: no memory for %zu values",
                            wire_op_name(h->op), nv);
        else
            rc = fill(ctx, scratch, nv);
        src = scratch;
    }
    if (!rc && src) {
        if (f32)
            memcpy(data, src, vb);
        else if ((rc = wire_bf16_encode(src, nv, data)))
            rc = psrec_errf(rc, "%s: %s", wire_op_name(h->op), psrec_errmsg());
    }
    free(scratch);
    if (rc)
        zmq_msg_close(f);
    return rc;
}

/* wire_send and wire_send_fill: values from vals, or from fill(ctx) when fill is set. */
static int send_message(void *sock, const void *identity, size_t id_len, const WireHeader *h,
                        const uint64_t *keys, const float *vals, WireFillFn fill, void *ctx)
{
    uint8_t hbuf[WIRE_HEADER_MAX];
    size_t hlen, kb, vb;
    int frames = frames_for(h->op, h->reply);
    if (!wire_dtype_size(h->dtype))
        return psrec_errf(PSREC_E_RANGE, "%s: unknown dtype %u", wire_op_name(h->op), h->dtype);
    if (frames < 2 && h->key_count > 0)
        return psrec_errf(PSREC_E_RANGE, "%s %s carries no keys, key_count is %llu",
                          wire_op_name(h->op), h->reply ? "reply" : "request",
                          (unsigned long long)h->key_count);
    data_sizes(h, &kb, &vb);
    if ((kb > 0 && !keys) || (vb > 0 && !vals && !fill))
        return psrec_errf(PSREC_E_RANGE, "%s: key_count %llu but no keys or values given",
                          wire_op_name(h->op), (unsigned long long)h->key_count);
    if (kb == SIZE_MAX || vb == SIZE_MAX)
        return psrec_errf(PSREC_E_RANGE, "%s: message too large", wire_op_name(h->op));
    int rc = wire_encode_header(h, hbuf, sizeof hbuf, &hlen);
    if (rc)
        return rc;
    /* The values frame is built before any frame leaves, so a refused value (bf16) or a
     * failed fill sends nothing; and built in the frame ZeroMQ sends, so it is not copied
     * again (zmq_send copies). */
    zmq_msg_t vmsg;
    int have_vals = frames >= 3;
    if (have_vals &&
        (rc = values_frame(&vmsg, h, vb, vb / wire_dtype_size(h->dtype), vals, fill, ctx)))
        return rc;
    if (id_len > 0 && (rc = send_frame(sock, identity, id_len, 1)))
        goto out;
    if ((rc = send_frame(sock, hbuf, hlen, frames > 1)))
        goto out;
    if (frames >= 2 && (rc = send_frame(sock, keys, kb, frames > 2)))
        goto out;
    if (have_vals) {
        rc = send_msg_frame(sock, &vmsg, 0);
        have_vals = 0; /* sent or closed */
    }
out:
    if (have_vals)
        zmq_msg_close(&vmsg);
    return rc;
}

int wire_send(void *sock, const void *identity, size_t id_len, const WireHeader *h,
              const uint64_t *keys, const float *vals)
{
    return send_message(sock, identity, id_len, h, keys, vals, NULL, NULL);
}

int wire_send_fill(void *sock, const void *identity, size_t id_len, const WireHeader *h,
                   const uint64_t *keys, WireFillFn fill, void *ctx)
{
    if (!fill)
        return psrec_errf(PSREC_E_RANGE, "%s: no values filler", wire_op_name(h->op));
    return send_message(sock, identity, id_len, h, keys, NULL, fill, ctx);
}

void wire_msg_close(WireMsg *m)
{
    for (int i = 0; i < m->nframe_; i++)
        zmq_msg_close(&m->frame_[i]);
    m->nframe_ = 0;
    free(m->buf_);
    m->buf_ = NULL;
    m->keys = NULL;
    m->vals = NULL;
}

/* Record why a message is refused: into reason (when given) and psrec_errf. Returns code. */
__attribute__((format(printf, 4, 5))) static int refuse(int code, char *reason, size_t n,
                                                         const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (reason && n)
        snprintf(reason, n, "%s", line);
    return psrec_errf(code, "%s", line);
}

/* Pointer to n bytes of frame data aligned to align; copies into *buf at offset off (the
 * buffer is big enough for both data frames, allocated on first need) when it is not. */
static const void *aligned_data(WireMsg *m, zmq_msg_t *f, size_t align, size_t off,
                                size_t total, int *nomem)
{
    const void *p = zmq_msg_data(f);
    size_t len = zmq_msg_size(f);
    if (((uintptr_t)p & (align - 1)) == 0)
        return p;
    if (!m->buf_ && !(m->buf_ = malloc(total ? total : 1))) {
        *nomem = 1;
        return NULL;
    }
    memcpy((char *)m->buf_ + off, p, len);
    return (char *)m->buf_ + off;
}

/* protobuf-c's allocations for unpacking a header go through our malloc (its default
 * allocator lives in the shared library, out of reach of a test's allocation-failure hook)
 * and say whether one failed, so running out of memory is not reported as a malformed
 * header. */
static void *pb_alloc(void *data, size_t size)
{
    void *p = malloc(size);
    if (!p)
        *(int *)data = 1;
    return p;
}

static void pb_free(void *data, void *p)
{
    (void)data;
    free(p);
}

/* Every check of wire_recv after all frames were read (frames = frames seen, including the
 * ones not kept). */
static int validate(WireMsg *m, int frames, const WireLimits *lim, char *reason, size_t n)
{
    if (frames < 1)
        return refuse(PSREC_E_FORMAT, reason, n, "no header frame");
    size_t hsize = zmq_msg_size(&m->frame_[0]);
    if (hsize > WIRE_HEADER_MAX)
        return refuse(PSREC_E_PARSE, reason, n, "header frame of %zu bytes (max %d)", hsize,
                      WIRE_HEADER_MAX);
    int nomem = 0;
    ProtobufCAllocator pa = {.alloc = pb_alloc, .free = pb_free, .allocator_data = &nomem};
    Psrec__PsHeader *ph = psrec__ps_header__unpack(&pa, hsize, zmq_msg_data(&m->frame_[0]));
    if (!ph && nomem)
        return refuse(PSREC_E_NOMEM, reason, n, "no memory to decode a header of %zu bytes",
                      hsize);
    if (!ph)
        return refuse(PSREC_E_PARSE, reason, n, "header of %zu bytes does not decode", hsize);
    from_proto(ph, &m->h);
    psrec__ps_header__free_unpacked(ph, &pa);
    m->header_ok = 1;

    const WireHeader *h = &m->h;
    const char *op = wire_op_name(h->op);
    const char *dir = h->reply ? "reply" : "request";
    if (h->version != WIRE_VERSION)
        return refuse(PSREC_E_FORMAT, reason, n, "wire version %u, this side speaks %d",
                      h->version, WIRE_VERSION);
    if (h->op <= WIRE_OP_NONE || h->op > WIRE_OP_CUT)
        return refuse(PSREC_E_FORMAT, reason, n, "unknown op %u", (unsigned)h->op);
    if (h->op == WIRE_OP_ERROR && !h->reply)
        return refuse(PSREC_E_FORMAT, reason, n, "ERROR is only a reply");
    if (h->nverdicts > WIRE_VERDICTS_MAX)
        return refuse(PSREC_E_FORMAT, reason, n, "%s %s carries malformed verdicts", op, dir);
    if (h->cut_len > WIRE_CUT_MAX)
        return refuse(PSREC_E_RANGE, reason, n, "%s %s carries a position of %u bytes (max %d)",
                      op, dir, h->cut_len, WIRE_CUT_MAX);
    if (h->flags & ~(uint32_t)WIRE_FLAG_ALL)
        return refuse(PSREC_E_FORMAT, reason, n, "%s %s has unknown flags 0x%x", op, dir,
                      h->flags);
    if (m->bytes > lim->max_bytes)
        return refuse(PSREC_E_RANGE, reason, n, "%s %s of %zu bytes (max %llu)", op, dir,
                      m->bytes, (unsigned long long)lim->max_bytes);
    int want = frames_for(h->op, h->reply);
    if (frames != want)
        return refuse(PSREC_E_FORMAT, reason, n, "%s %s has %d frames, needs %d", op, dir,
                      frames, want);
    if (want < 2) {
        if (h->key_count)
            return refuse(PSREC_E_FORMAT, reason, n, "%s %s carries no keys, key_count is %llu",
                          op, dir, (unsigned long long)h->key_count);
        return 0;
    }

    if (h->key_count > lim->max_keys)
        return refuse(PSREC_E_RANGE, reason, n, "%s %s: key_count %llu (max %llu)", op, dir,
                      (unsigned long long)h->key_count, (unsigned long long)lim->max_keys);
    size_t kbytes, vbytes;
    data_sizes(h, &kbytes, &vbytes);
    size_t ksize = zmq_msg_size(&m->frame_[1]);
    if (ksize != kbytes)
        return refuse(PSREC_E_FORMAT, reason, n,
                      "%s %s: keys frame of %zu bytes, key_count %llu needs %zu", op, dir, ksize,
                      (unsigned long long)h->key_count, kbytes);
    if (h->table >= PARAM_TABLES)
        return refuse(PSREC_E_RANGE, reason, n, "%s %s: no table %u", op, dir, h->table);
    if (!wire_dtype_size(h->dtype))
        return refuse(PSREC_E_FORMAT, reason, n, "%s %s: unknown dtype %u", op, dir, h->dtype);
    if (want == 3) {
        if (h->value_width != lim->width[h->table])
            return refuse(PSREC_E_FORMAT, reason, n,
                          "%s %s: value_width %u, table %u has width %u", op, dir,
                          h->value_width, h->table, lim->width[h->table]);
        size_t vsize = zmq_msg_size(&m->frame_[2]);
        if (vsize != vbytes)
            return refuse(PSREC_E_FORMAT, reason, n,
                          "%s %s: values frame of %zu bytes, %llu keys of width %u need %zu", op,
                          dir, vsize, (unsigned long long)h->key_count, h->value_width, vbytes);
    }

    /* The buffer holds the keys (when unaligned) and the values as f32 (unaligned or bf16). */
    const size_t nv = want == 3 ? vbytes / wire_dtype_size(h->dtype) : 0;
    const size_t total = kbytes + nv * sizeof(float);
    const uint64_t *keys = aligned_data(m, &m->frame_[1], _Alignof(uint64_t), 0, total, &nomem);
    const float *vals = NULL;
    if (want == 3 && !nomem && h->dtype == WIRE_DTYPE_BF16) {
        if (!m->buf_ && !(m->buf_ = malloc(total ? total : 1)))
            nomem = 1;
        if (!nomem) {
            float *wide = (float *)((char *)m->buf_ + kbytes);
            bf16_widen_all(zmq_msg_data(&m->frame_[2]), nv, wide);
            vals = wide;
        }
    } else if (want == 3 && !nomem) {
        vals = aligned_data(m, &m->frame_[2], _Alignof(float), kbytes, total, &nomem);
    }
    if (nomem)
        return refuse(PSREC_E_NOMEM, reason, n, "%s %s: no memory to align %zu bytes", op, dir,
                      total);
    const uint64_t rows = lim->rows[h->table];
    for (uint64_t i = 0; i < h->key_count; i++)
        if (keys[i] >= rows)
            return refuse(PSREC_E_RANGE, reason, n,
                          "%s %s: key %llu (index %llu) out of range for table %u (rows %llu)",
                          op, dir, (unsigned long long)keys[i], (unsigned long long)i, h->table,
                          (unsigned long long)rows);
    const size_t bad = first_nonfinite(vals, nv);
    if (bad < nv)
        return refuse(PSREC_E_RANGE, reason, n, "%s %s: value %zu (key index %zu) is %s", op,
                      dir, bad, bad / h->value_width, isnan(vals[bad]) ? "NaN" : "infinite");
    m->keys = h->key_count ? keys : NULL;
    m->vals = nv ? vals : NULL;
    return 0;
}

int wire_recv(void *sock, int has_identity, WireMsg *out, const WireLimits *lim, char *reason,
              size_t n)
{
    memset(out, 0, sizeof *out);
    if (reason && n)
        reason[0] = '\0';
    int frames = 0, first = 1, more = 1, want_identity = has_identity;
    while (more) {
        zmq_msg_t scratch, *f = out->nframe_ < WIRE_MAX_FRAMES && !want_identity
                                    ? &out->frame_[out->nframe_]
                                    : &scratch;
        zmq_msg_init(f);
        int r;
        while ((r = zmq_msg_recv(f, sock, 0)) < 0 && zmq_errno() == EINTR && !first)
            ;
        if (r < 0) {
            int e = zmq_errno();
            zmq_msg_close(f);
            /* First frame: nothing was read. Later (ETERM, socket closed): the message is
             * lost either way. */
            if (reason && n)
                snprintf(reason, n, "receive: %s", zmq_strerror(e));
            return e;
        }
        first = 0;
        more = zmq_msg_more(f);
        size_t size = zmq_msg_size(f);
        if (want_identity) {
            want_identity = 0;
            out->id_len = size < WIRE_IDENTITY_MAX ? size : WIRE_IDENTITY_MAX;
            memcpy(out->identity, zmq_msg_data(f), out->id_len);
        } else {
            frames++;
            out->bytes += size;
        }
        if (f == &scratch)
            zmq_msg_close(f);
        else
            out->nframe_++;
    }
    return validate(out, frames, lim, reason, n);
}
