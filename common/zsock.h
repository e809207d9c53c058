/* Every ZeroMQ socket option psrec sets, in one place, for both sides of the parameter server
 * (the shard's ROUTER, the worker's DEALERs). Security settings (CURVE keys) belong here too,
 * so no socket can be made without them. */
#ifndef PSREC_COMMON_ZSOCK_H
#define PSREC_COMMON_ZSOCK_H

#include "common/keys.h"

#include <stdint.h>

typedef struct ZsockOptions {
    int linger_ms;          /* ZMQ_LINGER: 0 = never hang on a dead peer at close */
    int send_timeout_ms;    /* ZMQ_SNDTIMEO; < 0 leaves ZeroMQ's default (block) */
    int64_t max_msg_bytes;  /* ZMQ_MAXMSGSIZE: incoming messages above it drop the peer; 0 = no
                               cap */
    const char *routing_id; /* ZMQ_ROUTING_ID (a DEALER's name at the ROUTER); NULL = none */
    /* CURVE (Z85 keys, common/keys.h). All NULL: no security (ZeroMQ's NULL mechanism).
     * A server sets curve_server_secret; a client sets the other three. ZeroMQ copies the
     * keys, so the caller may wipe its buffers once zsock_setup returned. */
    const char *curve_server_secret; /* ZMQ_CURVE_SERVER + ZMQ_CURVE_SECRETKEY */
    const char *curve_public;        /* client: its own public key (ZMQ_CURVE_PUBLICKEY) */
    const char *curve_secret;        /* client: its own secret key (ZMQ_CURVE_SECRETKEY) */
    const char *curve_server_public; /* client: the server's public key (ZMQ_CURVE_SERVERKEY) */
    const char *zap_domain;          /* ZMQ_ZAP_DOMAIN on a server; NULL = none */
} ZsockOptions;

/* Apply o to sock. who names the socket in errors ("shard 2 (rank 2)"). Returns 0,
 * PSREC_E_RANGE (a client given only some of its three keys, or a server given client keys)
 * or the ZeroMQ errno with detail. Call before bind/connect, and again (linger) any time. */
int zsock_setup(void *sock, const ZsockOptions *o, const char *who);

/* Set o's three client keys for shard k from keys (NULL: leave o without security). */
void zsock_client_keys(ZsockOptions *o, const KeysClient *keys, uint32_t k);

#endif
