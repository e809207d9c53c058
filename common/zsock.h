/* Every ZeroMQ socket option psrec sets, in one place, for both sides of the parameter server
 * (the shard's ROUTER, the worker's DEALERs). Security settings (CURVE keys) belong here too,
 * so no socket can be made without them. */
#ifndef PSREC_COMMON_ZSOCK_H
#define PSREC_COMMON_ZSOCK_H

#include <stdint.h>

typedef struct ZsockOptions {
    int linger_ms;          /* ZMQ_LINGER: 0 = never hang on a dead peer at close */
    int send_timeout_ms;    /* ZMQ_SNDTIMEO; < 0 leaves ZeroMQ's default (block) */
    int64_t max_msg_bytes;  /* ZMQ_MAXMSGSIZE: incoming messages above it drop the peer; 0 = no
                               cap */
    const char *routing_id; /* ZMQ_ROUTING_ID (a DEALER's name at the ROUTER); NULL = none */
} ZsockOptions;

/* Apply o to sock. who names the socket in errors ("shard 2 (rank 2)"). Returns 0 or the
 * ZeroMQ errno with detail. Call before bind/connect, and again (linger) any time. */
int zsock_setup(void *sock, const ZsockOptions *o, const char *who);

#endif
