/* The heartbeat actor (see heartbeat.h).
 *
 * Invariants: last[k] only grows (monotonic seconds of shard k's latest heartbeat reply);
 * only the actor thread touches its sockets; the pipe's one message means "stop". A reply
 * that is not a HEARTBEAT answer is dropped (counted nowhere: the PS client sees its own). */
#include "worker/heartbeat.h"

#include "common/error.h"
#include "common/log.h"
#include "common/timer.h"
#include "common/wire.h"
#include "common/zsock.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct Heartbeat {
    HeartbeatOptions opt;
    char **endpoints;       /* (S) copies */
    void **socks;           /* (S) DEALER, the actor's */
    void *pipe_owner;       /* PAIR: the owner's end */
    void *pipe_actor;       /* PAIR: the actor's end */
    pthread_t thread;
    int started;
    double t0;
    _Atomic double *last;   /* (S) timer_now() of the latest reply, t0 before any */
    atomic_int fenced;
    atomic_int ending;
    _Atomic uint64_t lost;
    WireVerdict verdicts[WIRE_VERDICTS_MAX]; /* shard 0's, relayed (actor thread only) */
    uint32_t nverdicts;
    WireLimits lim;
};

static void beat(Heartbeat *hb, uint64_t seq)
{
    for (uint32_t k = 0; k < hb->opt.shards; k++) {
        WireHeader h;
        wire_header_init(&h, WIRE_OP_HEARTBEAT);
        h.worker_rank = hb->opt.worker_rank;
        h.request_id = seq;
        wire_verdicts_put(&h, hb->verdicts, hb->nverdicts); /* shard 0's word, for others */
        /* Never blocks (send timeout 0): a beat a dead shard's full queue cannot take is
         * dropped, which is what silence means anyway. */
        (void)wire_send(hb->socks[k], NULL, 0, &h, NULL, NULL);
    }
}

static void take_reply(Heartbeat *hb, uint32_t k)
{
    WireMsg m;
    char why[WIRE_ERROR_TEXT_MAX];
    int rc = wire_recv(hb->socks[k], 0, &m, &hb->lim, why, sizeof why);
    if (rc == 0 && m.h.reply) {
        atomic_fetch_or(&hb->lost, m.h.lost_mask);
        if (k == 0)
            wire_verdicts_merge(hb->verdicts, &hb->nverdicts, &m.h);
        if (m.h.op == WIRE_OP_HEARTBEAT) {
            atomic_store(&hb->last[k], timer_now());
        } else if (m.h.op == WIRE_OP_ERROR && m.h.error_code == PSREC_E_FENCED) {
            if (!atomic_exchange(&hb->fenced, 1))
                LOG_ERROR("shard %u: %s", k, m.h.error_text);
        } else if (m.h.op == WIRE_OP_ERROR) {
            atomic_store(&hb->last[k], timer_now()); /* an answer is a sign of life too */
            atomic_store(&hb->ending, 1);
        }
    }
    wire_msg_close(&m);
}

static void *actor_main(void *arg)
{
    Heartbeat *hb = arg;
    const uint32_t S = hb->opt.shards;
    zmq_pollitem_t *items = calloc((size_t)S + 1, sizeof *items);
    if (!items)
        return NULL;
    uint64_t seq = 0;
    double next = timer_now();
    for (;;) {
        double t = timer_now();
        if (t >= next) {
            beat(hb, ++seq);
            next = t + hb->opt.interval;
        }
        items[0] = (zmq_pollitem_t){.socket = hb->pipe_actor, .events = ZMQ_POLLIN};
        for (uint32_t k = 0; k < S; k++)
            items[k + 1] = (zmq_pollitem_t){.socket = hb->socks[k], .events = ZMQ_POLLIN};
        long ms = (long)ceil((next - timer_now()) * 1000.0);
        int n = zmq_poll(items, (int)S + 1, ms < 0 ? 0 : ms);
        if (n < 0) {
            if (zmq_errno() == EINTR)
                continue;
            break; /* ETERM: the context ends */
        }
        if (items[0].revents & ZMQ_POLLIN)
            break; /* the owner says stop */
        for (uint32_t k = 0; k < S; k++)
            if (items[k + 1].revents & ZMQ_POLLIN)
                take_reply(hb, k);
    }
    free(items);
    return NULL;
}

static void hb_free(Heartbeat *hb)
{
    for (uint32_t k = 0; k < hb->opt.shards; k++) {
        if (hb->socks && hb->socks[k])
            zmq_close(hb->socks[k]);
        if (hb->endpoints)
            free(hb->endpoints[k]);
    }
    if (hb->pipe_owner)
        zmq_close(hb->pipe_owner);
    if (hb->pipe_actor)
        zmq_close(hb->pipe_actor);
    free(hb->socks);
    free(hb->endpoints);
    free((void *)hb->last);
    free(hb);
}

int heartbeat_start(const HeartbeatOptions *o, Heartbeat **out)
{
    *out = NULL;
    if (!o->zmq_ctx || !o->endpoints || !o->shards || !(o->interval > 0))
        return psrec_errf(PSREC_E_RANGE, "heartbeat: bad options (%u shards, interval %g s)",
                          o->shards, o->interval);
    Heartbeat *hb = calloc(1, sizeof *hb);
    if (!hb)
        return PSREC_E_NOMEM;
    hb->opt = *o;
    const uint32_t S = o->shards;
    int rc = PSREC_E_NOMEM;
    hb->endpoints = calloc(S, sizeof *hb->endpoints);
    hb->socks = calloc(S, sizeof *hb->socks);
    hb->last = calloc(S, sizeof *hb->last);
    if (!hb->endpoints || !hb->socks || !hb->last)
        goto fail;
    wire_limits_init(&hb->lim, &o->shape);
    hb->t0 = timer_now();
    for (uint32_t k = 0; k < S; k++)
        atomic_init(&hb->last[k], hb->t0);
    atomic_init(&hb->fenced, 0);
    atomic_init(&hb->ending, 0);
    atomic_init(&hb->lost, 0);
    char pipe_ep[64], id[48], who[64];
    snprintf(pipe_ep, sizeof pipe_ep, "inproc://psrec-heartbeat-%p", (void *)hb);
    if (!(hb->pipe_actor = zmq_socket(o->zmq_ctx, ZMQ_PAIR)) ||
        zmq_bind(hb->pipe_actor, pipe_ep) ||
        !(hb->pipe_owner = zmq_socket(o->zmq_ctx, ZMQ_PAIR)) ||
        zmq_connect(hb->pipe_owner, pipe_ep)) {
        rc = psrec_errf(zmq_errno(), "heartbeat pipe: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    snprintf(id, sizeof id, "hb%u-%p", o->worker_rank, (void *)hb);
    for (uint32_t k = 0; k < S; k++) {
        snprintf(who, sizeof who, "heartbeat to shard %u", k);
        ZsockOptions zo = {.linger_ms = 0, .send_timeout_ms = 0,
                           .max_msg_bytes = (int64_t)hb->lim.max_bytes, .routing_id = id};
        zsock_client_keys(&zo, o->curve, k);
        if (!(hb->endpoints[k] = strdup(o->endpoints[k])) ||
            !(hb->socks[k] = zmq_socket(o->zmq_ctx, ZMQ_DEALER))) {
            rc = hb->endpoints[k] ? psrec_errf(zmq_errno(), "%s: socket: %s", who,
                                               zmq_strerror(zmq_errno()))
                                  : PSREC_E_NOMEM;
            goto fail;
        }
        if ((rc = zsock_setup(hb->socks[k], &zo, who)))
            goto fail;
        if (zmq_connect(hb->socks[k], hb->endpoints[k])) {
            rc = psrec_errf(zmq_errno(), "%s: cannot connect to %s: %s", who,
                            hb->endpoints[k], zmq_strerror(zmq_errno()));
            goto fail;
        }
    }
    hb->opt.endpoints = NULL;
    hb->opt.curve = NULL; /* the caller's, wiped after this call */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&hb->thread, NULL, actor_main, hb);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        rc = psrec_errf(rc, "heartbeat thread: %s", psrec_strerror(rc));
        goto fail;
    }
    hb->started = 1;
    *out = hb;
    return 0;
fail:
    hb_free(hb);
    return rc;
}

double heartbeat_silence(const Heartbeat *hb, uint32_t k)
{
    if (k >= hb->opt.shards)
        return 0;
    return timer_now() - atomic_load(&((Heartbeat *)hb)->last[k]);
}

int heartbeat_fenced(const Heartbeat *hb)
{
    return atomic_load(&((Heartbeat *)hb)->fenced);
}

uint64_t heartbeat_lost_mask(const Heartbeat *hb)
{
    return atomic_load(&((Heartbeat *)hb)->lost);
}

int heartbeat_job_ending(const Heartbeat *hb)
{
    return atomic_load(&((Heartbeat *)hb)->ending);
}

void heartbeat_stop(Heartbeat **hbp)
{
    Heartbeat *hb = *hbp;
    if (!hb)
        return;
    if (hb->started) {
        zmq_send(hb->pipe_owner, "", 0, 0);
        pthread_join(hb->thread, NULL);
    }
    hb_free(hb);
    *hbp = NULL;
}
