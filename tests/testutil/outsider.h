/* A process that is not part of a job knocking at one of its shards (issue 9 tests): shared
 * by test_guard (in-process shard), test_security (a real job under mpirun) and test_netns (an
 * outsider on a third simulated host). */
#ifndef PSREC_TESTUTIL_OUTSIDER_H
#define PSREC_TESTUTIL_OUTSIDER_H

#include "common/params.h"

/* A ZeroMQ DEALER connects to ep (no security when server_pub is NULL; else a CURVE client
 * with a fresh keypair of its own, never the job's, and server_pub as the server key), sends
 * well-formed requests claiming to be worker 0 (PULL of word rows 1..8, two PUSHes of +-1e30
 * into them, STATS, CLOCK 1, SHUTDOWN; tables sized by shape) with common/wire.c's encoder,
 * and counts the replies that arrive within wait_s. *sent (may be NULL) grows by the messages
 * ZeroMQ accepted (queued: without a session they go nowhere). Returns the replies. */
int tu_outsider(void *zmq_ctx, const char *ep, const char *server_pub, const ParamShape *shape,
                double wait_s, int *sent);

/* Raw TCP to ep ("tcp://A.B.C.D:port"): random bytes (seeded), then in a second connection
 * the first 20 bytes of a ZMTP 3.0 greeting and nothing more. Returns the connections that
 * could send. */
int tu_garbage(const char *ep, unsigned seed);

#endif
