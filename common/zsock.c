/* ZeroMQ socket options in one place (see zsock.h). */
#include "common/zsock.h"

#include "common/error.h"
#include "common/keys.h"

#include <string.h>
#include <zmq.h>

/* A socket is a CURVE server, a CURVE client (all three keys), or neither: half a setup
 * would silently fall back to no security, so it is refused. */
static int curve_setup(void *sock, const ZsockOptions *o, const char *who)
{
    const int client = !!o->curve_public + !!o->curve_secret + !!o->curve_server_public;
    if ((client && client != 3) || (client && o->curve_server_secret))
        return psrec_errf(PSREC_E_RANGE, "%s: CURVE keys: a client needs its public and secret "
                          "key and the server's public key, a server only its secret key", who);
    const char *what = "ZAP domain";
    if (o->zap_domain && zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, o->zap_domain,
                                        strlen(o->zap_domain)))
        goto fail;
    if (o->curve_server_secret) {
        int one = 1;
        what = "CURVE server";
        if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one))
            goto fail;
        what = "CURVE secret key";
        if (zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, o->curve_server_secret, KEYS_Z85_LEN))
            goto fail;
    } else if (client) {
        what = "CURVE server key";
        if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, o->curve_server_public, KEYS_Z85_LEN))
            goto fail;
        what = "CURVE public key";
        if (zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, o->curve_public, KEYS_Z85_LEN))
            goto fail;
        what = "CURVE secret key";
        if (zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, o->curve_secret, KEYS_Z85_LEN))
            goto fail;
    }
    return 0;
fail:
    return psrec_errf(zmq_errno(), "%s: socket option %s: %s", who, what,
                      zmq_strerror(zmq_errno()));
}

int zsock_setup(void *sock, const ZsockOptions *o, const char *who)
{
    const char *what = "linger";
    if (zmq_setsockopt(sock, ZMQ_LINGER, &o->linger_ms, sizeof o->linger_ms))
        goto fail;
    what = "send timeout";
    if (o->send_timeout_ms >= 0 &&
        zmq_setsockopt(sock, ZMQ_SNDTIMEO, &o->send_timeout_ms, sizeof o->send_timeout_ms))
        goto fail;
    what = "message size cap";
    int64_t cap = o->max_msg_bytes > 0 ? o->max_msg_bytes : -1;
    if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &cap, sizeof cap))
        goto fail;
    what = "routing id";
    if (o->routing_id && zmq_setsockopt(sock, ZMQ_ROUTING_ID, o->routing_id, strlen(o->routing_id)))
        goto fail;
    return curve_setup(sock, o, who);
fail:
    return psrec_errf(zmq_errno(), "%s: socket option %s: %s", who, what,
                      zmq_strerror(zmq_errno()));
}

void zsock_client_keys(ZsockOptions *o, const KeysClient *keys, uint32_t k)
{
    if (!keys)
        return;
    o->curve_public = keys->pub;
    o->curve_secret = keys->sec;
    o->curve_server_public = keys->servers[k];
}
