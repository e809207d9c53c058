/* ZeroMQ socket options in one place (see zsock.h). */
#include "common/zsock.h"

#include "common/error.h"

#include <string.h>
#include <zmq.h>

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
    return 0;
fail:
    return psrec_errf(zmq_errno(), "%s: socket option %s: %s", who, what,
                      zmq_strerror(zmq_errno()));
}
