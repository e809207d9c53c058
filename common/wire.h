/* Parameter-server messages on ZeroMQ sockets: encode, send, receive, validate.
 *
 * proto/ps.proto is the specification. A message is a header frame (PsHeader, protobuf) and,
 * depending on the op and direction, a keys frame (u64 little-endian) and a values frame
 * (f32 little-endian, or bf16 when the header's dtype says so: half the bytes; wire_recv
 * always hands out f32). This module is the only one that sees protobuf-c types: everyone else
 * uses WireHeader, a plain struct that mirrors PsHeader.
 *
 * Frames per message (anything else is refused by wire_recv):
 *   PULL request   header, keys          PULL reply   header, keys, values
 *   PUSH request   header, keys, values  every other message (and every ERROR): header only
 *
 * A ROUTER socket's messages start with the peer's identity frame; pass has_identity /
 * identity for those. Thread rules: as ZeroMQ's, a socket belongs to one thread at a time;
 * the functions here keep no global state. */
#ifndef PSREC_COMMON_WIRE_H
#define PSREC_COMMON_WIRE_H

#include "common/params.h"

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define WIRE_VERSION 1
#define WIRE_ERROR_TEXT_MAX 256          /* error_text buffer, NUL included */
#define WIRE_IDENTITY_MAX 256            /* ZeroMQ routing ids are 1..255 bytes */
#define WIRE_HEADER_MAX 1024             /* largest header frame accepted or produced */
#define WIRE_MAX_FRAMES 3                /* header, keys, values */
#define WIRE_DEFAULT_MAX_KEYS (1u << 22)
#define WIRE_DEFAULT_MAX_BYTES (256u << 20)

/* Ops, numbered as PsOp in proto/ps.proto. */
typedef enum WireOp {
    WIRE_OP_NONE = 0,
    WIRE_OP_PULL = 1,
    WIRE_OP_PUSH = 2,
    WIRE_OP_CLOCK = 3,
    WIRE_OP_HEARTBEAT = 4,
    WIRE_OP_STATS = 5,
    WIRE_OP_SHUTDOWN = 6,
    WIRE_OP_ERROR = 7,
    WIRE_OP_CUT = 8,
} WireOp;

/* Encoding of a values frame (PsDtype in proto/ps.proto). On a PULL request, dtype asks for
 * the reply's encoding. bf16 = the upper 16 bits of an IEEE f32 (8 exponent bits, 7 mantissa
 * bits): same range as f32, relative precision 2^-8. */
typedef enum WireDtype {
    WIRE_DTYPE_F32 = 0,
    WIRE_DTYPE_BF16 = 1,
} WireDtype;

/* Bytes per value of dtype; 0 for an unknown dtype. */
size_t wire_dtype_size(uint32_t dtype);

/* Name ("f32", "bf16"), "?" for an unknown value. Static string. */
const char *wire_dtype_name(uint32_t dtype);

/* f32 -> bf16, round to nearest, ties to even (the bits cut off are exactly half an ulp:
 * round so the kept last bit is 0). Finite inputs of magnitude >= 0x1.ff8p127 round to
 * infinity; NaN gives a quiet NaN. Callers that must not send such values use
 * wire_bf16_encode, which refuses them. */
uint16_t wire_bf16_round(float x);

/* bf16 -> f32 (exact: every bf16 value is an f32 value). */
float wire_bf16_widen(uint16_t b);

/* Encode n floats as bf16 (round to nearest even). Returns 0, or PSREC_E_RANGE (detail names
 * the index) when an input is NaN or infinite or rounds to infinity; out is then partly
 * written. */
int wire_bf16_encode(const float *in, size_t n, uint16_t *out);

/* Decode n bf16 values. Returns 0, or PSREC_E_RANGE (detail names the index) when a value is
 * NaN or infinite; out is then partly written. in need not be aligned. */
int wire_bf16_decode(const void *in, size_t n, float *out);

/* PsFlag bits of WireHeader.flags. */
enum {
    WIRE_FLAG_WANT_CUT = 1,
    WIRE_FLAG_WANT_STOP = 2,
    WIRE_FLAG_STOP = 4,
    WIRE_FLAG_REPLAN = 8,
    WIRE_FLAG_ALL = 15,
};

#define WIRE_CUT_MAX 256 /* largest opaque worker position a header carries */

/* Shard 0's verdict on a dead worker: it committed `steps` steps (its last CLOCK shard 0 acked). */
typedef struct WireVerdict {
    uint32_t worker;
    uint64_t steps;
} WireVerdict;
#define WIRE_VERDICTS_MAX 16

/* PsStats: a shard's counters, sent in STATS replies. */
typedef struct WireStats {
    uint64_t pulls, pushes;       /* requests served */
    uint64_t bytes_in, bytes_out; /* all frames, identity frames excluded */
    uint64_t rows_held;           /* rows that exist on the shard, all tables */
    uint64_t bad_messages;        /* requests answered with ERROR */
    uint64_t max_staleness;       /* largest (pull clock - slowest finished) served */
    uint64_t deferred_pulls;      /* pulls that had to wait for the consistency gate */
    uint64_t over_limit;          /* requests refused for a limit: message bytes, keys per
                                     request, rows per table (counted in bad_messages too) */
    uint64_t refused_connections; /* peers refused a session: no key, a CURVE key not of this
                                     job, a failed handshake, garbage (server/guard.h) */
} WireStats;

/* PsHeader as a plain struct. op is a WireOp, but a received header may carry any value
 * (wire_recv refuses unknown ops, yet leaves them in the struct for the error reply). */
typedef struct WireHeader {
    uint32_t version;      /* WIRE_VERSION (wire_header_init sets it) */
    WireOp op;
    int reply;             /* 1 on replies (ERROR included), 0 on requests */
    uint32_t table;        /* ParamTable id */
    uint32_t worker_rank;
    uint64_t clock;
    uint64_t request_id;
    uint64_t key_count;
    uint32_t value_width;  /* floats per key in the values frame */
    uint32_t dtype;        /* WireDtype of the values frame (PULL request: of its reply) */
    int32_t error_code;    /* ERROR replies: a psrec error code */
    char error_text[WIRE_ERROR_TEXT_MAX]; /* NUL-terminated; longer texts are cut */
    int has_stats;         /* stats is sent / was received */
    WireStats stats;
    uint32_t cut_len;      /* bytes of cut (0..WIRE_CUT_MAX): a worker's data position */
    unsigned char cut[WIRE_CUT_MAX];
    uint64_t cut_step;     /* replies: announced cut step, 0 = none */
    uint32_t flags;        /* WIRE_FLAG_* bits */
    uint64_t lost_mask;    /* replies: workers 0..63 declared dead (bit w) */
    uint32_t nverdicts;    /* shard 0's verdicts carried (0..WIRE_VERDICTS_MAX) */
    WireVerdict verdicts[WIRE_VERDICTS_MAX];
    uint64_t slowest;      /* CLOCK replies: finished steps of the slowest live worker */
} WireHeader;

/* What wire_recv accepts: per-table key range and row width (from params_specs), and caps on
 * the size of one message. */
typedef struct WireLimits {
    uint64_t rows[PARAM_TABLES];  /* keys of table t must be < rows[t] */
    uint32_t width[PARAM_TABLES]; /* floats per row of table t */
    uint64_t max_keys;            /* largest key_count */
    uint64_t max_bytes;           /* largest sum of frame sizes of one message */
} WireLimits;

/* One received message. Filled by wire_recv; release with wire_msg_close. The fields below
 * are public; the ones with a trailing underscore belong to this module. */
typedef struct WireMsg {
    WireHeader h;            /* valid when header_ok */
    int header_ok;           /* 1 when the header decoded (even if the message was refused:
                                request_id, worker_rank, op are then there to answer with) */
    unsigned char identity[WIRE_IDENTITY_MAX]; /* ROUTER peer id (id_len bytes) */
    size_t id_len;           /* 0 when the socket has no identity frames */
    const uint64_t *keys;    /* (h.key_count) 8-byte aligned, or NULL when the op has none */
    const float *vals;       /* (h.key_count, h.value_width) aligned, or NULL; f32 whatever
                                h.dtype (bf16 frames are widened into buf_) */
    size_t bytes;            /* sum of all frame sizes read, identity excluded */
    zmq_msg_t frame_[WIRE_MAX_FRAMES];
    int nframe_;
    void *buf_;
} WireMsg;

/* Shard 0's verdicts travel from its replies to the other shards through every worker's
 * requests and heartbeats: merge the ones h carries into list (*n of them, at most
 * WIRE_VERDICTS_MAX, each worker once), and put a list into an outgoing header. */
void wire_verdicts_merge(WireVerdict *list, uint32_t *n, const WireHeader *h);
void wire_verdicts_put(WireHeader *h, const WireVerdict *list, uint32_t n);

/* Set *h to an empty header of the current version for op (everything else zero). */
void wire_header_init(WireHeader *h, WireOp op);

/* Limits for the schema of shape (rows and widths from params_specs) and the default caps
 * WIRE_DEFAULT_MAX_KEYS / WIRE_DEFAULT_MAX_BYTES. */
void wire_limits_init(WireLimits *lim, const ParamShape *shape);

/* Name of an op ("PULL", ...), "?" for an unknown value. Static string. */
const char *wire_op_name(uint32_t op);

/* Encode h as a PsHeader into buf (cap bytes); *len = bytes written. For tests and tools
 * that build frames by hand. Returns 0 or PSREC_E_RANGE (does not fit). */
int wire_encode_header(const WireHeader *h, void *buf, size_t cap, size_t *len);

/* Bytes wire_send puts on the wire for h (all frames, identity excluded). */
size_t wire_message_size(const WireHeader *h);

/* Send one message: the identity frame when id_len > 0 (ROUTER; pass NULL, 0 for DEALER or
 * PAIR), the header, then the keys and values frames that h->op and h->reply call for (table
 * above): keys (h->key_count u64) and vals (h->key_count * h->value_width f32, put on the wire
 * as h->dtype: bf16 values are rounded to nearest even while they are copied). keys/vals may
 * be NULL when key_count is 0 and are ignored for ops without those frames. The data is
 * copied into ZeroMQ messages (zmq_send), so the caller's buffers are free again on return:
 * zero-copy would need them to live until ZeroMQ's free callback, which may run long after
 * zmq_send returns. Blocks as zmq_send does (a ROUTER never blocks; it drops messages to
 * unknown or full peers). Retries on EINTR.
 * Returns 0, PSREC_E_RANGE (key_count > 0 with a NULL keys/vals, header too large,
 * key_count on an op that carries no keys, unknown dtype, or a bf16 value that is not finite
 * or rounds to infinity: nothing is sent then), or a ZeroMQ errno (zmq_errno) from sending; after
 * an error in the middle of a message the socket is only fit to be closed. */
int wire_send(void *sock, const void *identity, size_t id_len, const WireHeader *h,
              const uint64_t *keys, const float *vals);

/* Writes the n f32 values of a values frame to out (4-byte aligned), e.g. gathering rows
 * straight into the frame. Returns 0 or a negative PSREC_E_* code with detail. */
typedef int (*WireFillFn)(void *ctx, float *out, size_t n);

/* wire_send whose values, when the message has a values frame, are written by fill(ctx)
 * straight into the frame ZeroMQ sends (for bf16, into a scratch that is then rounded into
 * it) instead of being copied from a buffer: one copy less per message. fill is called
 * before any frame leaves; its error is returned and nothing is sent. Returns as wire_send,
 * or fill's error. */
int wire_send_fill(void *sock, const void *identity, size_t id_len, const WireHeader *h,
                   const uint64_t *keys, WireFillFn fill, void *ctx);

/* Receive one whole message from sock, blocking for its first frame (poll first for a
 * non-blocking loop), then validate it before anything else reads it:
 *   the header frame decodes (PSREC_E_PARSE); version == WIRE_VERSION (PSREC_E_FORMAT); op
 *   known (PSREC_E_FORMAT); sum of frame sizes <= lim->max_bytes (PSREC_E_RANGE); frame
 *   count right for op and direction (PSREC_E_FORMAT); key_count <= lim->max_keys
 *   (PSREC_E_RANGE) and 0 on ops without keys (PSREC_E_FORMAT); keys frame exactly
 *   key_count*8 bytes (PSREC_E_FORMAT); table < PARAM_TABLES (PSREC_E_RANGE); dtype known
 *   (PSREC_E_FORMAT); value_width == the table's width on PUSH requests and PULL replies
 *   (PSREC_E_FORMAT); values frame exactly key_count*value_width*wire_dtype_size(dtype) bytes
 *   (PSREC_E_FORMAT); every key < the table's rows
 *   (PSREC_E_RANGE); every value finite (PSREC_E_RANGE).
 * value_width of a PULL request is not checked (the reply carries the table's width).
 * All frames of the message are read even when it is refused, so the next call starts at the
 * next message. has_identity: the socket is a ROUTER (first frame = peer identity).
 * lim: the schema's limits (wire_limits_init); borrowed for the call.
 * reason: on a refusal, one line (n bytes, NUL-terminated) saying why; may be NULL.
 * Returns 0, one of the codes above, PSREC_E_NOMEM (no memory to align the data), or a
 * ZeroMQ errno (EAGAIN, EINTR, ETERM, ...) when nothing could be received (then nothing was
 * read). After every call, whatever it returned,
 * call wire_msg_close(out): out->identity/id_len and, when out->header_ok, out->h stay valid
 * on a refusal so the caller can send an ERROR reply to the right peer. out->keys/vals live
 * until wire_msg_close. */
int wire_recv(void *sock, int has_identity, WireMsg *out, const WireLimits *lim, char *reason,
              size_t n);

/* Release the frames and buffers of a message filled by wire_recv. Idempotent. */
void wire_msg_close(WireMsg *m);

#endif
