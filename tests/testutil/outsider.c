/* Outsiders at a shard's port (see outsider.h). Invariant: nothing here holds a key of the job
 * under test; every socket is closed with linger 0 before return. */
#include "testutil/outsider.h"

#include "common/keys.h"
#include "common/wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int tu_outsider(void *zmq_ctx, const char *ep, const char *server_pub, const ParamShape *shape,
                double wait_s, int *sent)
{
    void *d = zmq_socket(zmq_ctx, ZMQ_DEALER);
    if (!d)
        return 0;
    int zero = 0, sndto = 200;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(d, ZMQ_SNDTIMEO, &sndto, sizeof sndto);
    KeyPair mine;
    memset(&mine, 0, sizeof mine);
    if (server_pub && (keys_pair_new(&mine) ||
                       zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, server_pub, KEYS_Z85_LEN) ||
                       zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, mine.pub, KEYS_Z85_LEN) ||
                       zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, mine.sec, KEYS_Z85_LEN))) {
        zmq_close(d);
        return 0;
    }
    keys_wipe(&mine, sizeof mine);
    if (zmq_connect(d, ep)) {
        zmq_close(d);
        return 0;
    }
    TableSpec specs[PARAM_TABLES];
    params_specs(shape, specs);
    const uint32_t w = specs[PARAM_WORD].width;
    uint64_t keys[8];
    float *vals = calloc((size_t)8 * w, sizeof *vals);
    for (int i = 0; i < 8; i++)
        keys[i] = (uint64_t)i + 1;
    static const WireOp ops[] = {WIRE_OP_PULL,  WIRE_OP_PUSH,  WIRE_OP_PUSH,
                                 WIRE_OP_STATS, WIRE_OP_CLOCK, WIRE_OP_SHUTDOWN};
    for (size_t i = 0; vals && i < sizeof ops / sizeof ops[0]; i++) {
        for (size_t v = 0; v < (size_t)8 * w; v++)
            vals[v] = ((v + i) & 1) ? -1e30f : 1e30f;
        WireHeader h;
        wire_header_init(&h, ops[i]);
        h.worker_rank = 0;
        h.request_id = 1000 + i;
        h.table = PARAM_WORD;
        h.clock = 1;
        if (ops[i] == WIRE_OP_PULL || ops[i] == WIRE_OP_PUSH) {
            h.key_count = 8;
            h.value_width = w;
        }
        int ok = wire_send(d, NULL, 0, &h, keys, vals) == 0;
        if (sent)
            *sent += ok;
    }
    free(vals);
    int replies = 0;
    zmq_pollitem_t it = {.socket = d, .events = ZMQ_POLLIN};
    for (const double end = mono() + wait_s; mono() < end;)
        if (zmq_poll(&it, 1, 20) > 0) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            replies += zmq_msg_recv(&m, d, ZMQ_DONTWAIT) >= 0 && !zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
    zmq_close(d);
    return replies;
}

int tu_garbage(const char *ep, unsigned seed)
{
    char host[64];
    int port = 0, ok = 0;
    if (sscanf(ep, "tcp://%63[^:]:%d", host, &port) != 2)
        return 0;
    for (int kind = 0; kind < 2; kind++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, host, &a.sin_addr);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        unsigned char buf[512];
        size_t n = sizeof buf;
        if (kind == 0) {
            for (size_t i = 0; i < n; i++)
                buf[i] = (unsigned char)(rand_r(&seed) >> 7);
        } else { /* signature, version 3.0, "NULL" mechanism... cut short */
            static const unsigned char g[20] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0,
                                                'N', 'U', 'L', 'L', 0, 0, 0, 0};
            memcpy(buf, g, sizeof g);
            n = sizeof g;
        }
        ok += send(fd, buf, n, MSG_NOSIGNAL) > 0;
        /* Give the shard a moment to read it (its answer, if any, is ZMTP, not data). */
        struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        unsigned char r[64];
        (void)!recv(fd, r, sizeof r, 0);
        close(fd);
    }
    return ok;
}
