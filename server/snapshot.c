/* Checkpoint images and their writer thread (see snapshot.h).
 *
 * Invariants: at most one image is queued or being written (`pending`); the thread takes it,
 * writes it with the lock released, then records the result and signals. Free waits for the
 * pending image: a cut that was copied is always written (or fails), never dropped. */
#include "server/snapshot.h"

#include "common/error.h"
#include "common/log.h"
#include "common/timer.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct SnapWriter {
    SnapWriteFn fn;
    void *ctx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    CutImage *pending; /* queued or being written; owned */
    Shard *spare;      /* the last written image's shard copy, for the next cut to reuse */
    int busy;          /* the thread is writing `pending` */
    int quit;
    SnapStatus st;
};

int cut_image_new(uint32_t workers, CutImage **out)
{
    *out = NULL;
    CutImage *img = calloc(1, sizeof *img);
    if (!img)
        return psrec_nomem(__func__);
    size_t w = workers ? workers : 1;
    img->workers = workers;
    img->finished = calloc(w, sizeof *img->finished);
    img->done = calloc(w, sizeof *img->done);
    img->lost = calloc(w, sizeof *img->lost);
    img->cut_len = calloc(w, sizeof *img->cut_len);
    img->cuts = calloc(w, SNAP_CUT_MAX);
    if (!img->finished || !img->done || !img->lost || !img->cut_len || !img->cuts) {
        cut_image_free(&img);
        return psrec_nomem(__func__);
    }
    *out = img;
    return 0;
}

void cut_image_free(CutImage **imgp)
{
    CutImage *img = *imgp;
    if (!img)
        return;
    shard_free(&img->copy);
    free(img->finished);
    free(img->done);
    free(img->lost);
    free(img->cut_len);
    free(img->cuts);
    free(img);
    *imgp = NULL;
}

static void *writer_main(void *arg)
{
    SnapWriter *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->pending && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->pending)
            break; /* quit with nothing left to write */
        w->busy = 1;
        w->st.busy = 1;
        CutImage *img = w->pending;
        pthread_mutex_unlock(&w->mu);

        double t0 = timer_now();
        psrec_errclear();
        int rc = w->fn(w->ctx, img);
        double dt = timer_now() - t0;

        /* Loudly, when it happens: a full disk must not wait for the end of training to be
         * noticed (the owner only counts failures). */
        if (rc)
            LOG_ERROR("%sCHECKPOINT FAILED at step %llu (shard %u): %s; the newest valid "
                      "checkpoint is unchanged",
                      img->final ? "FINAL " : "", (unsigned long long)img->step, img->shard,
                      psrec_errmsg());
        pthread_mutex_lock(&w->mu);
        w->st.last_rc = rc;
        if (rc) {
            w->st.failed++;
            snprintf(w->st.last_error, sizeof w->st.last_error, "%s", psrec_errmsg());
        } else {
            w->st.written++;
            w->st.last_step = img->step;
            w->st.last_seconds = dt;
            w->st.last_error[0] = '\0';
        }
        if (!w->spare) {
            w->spare = w->pending->copy; /* refreshing it is ~5x faster than a fresh copy */
            w->pending->copy = NULL;
        }
        cut_image_free(&w->pending);
        w->busy = 0;
        w->st.busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int snapwriter_new(SnapWriteFn fn, void *ctx, SnapWriter **out)
{
    *out = NULL;
    SnapWriter *w = calloc(1, sizeof *w);
    if (!w)
        return psrec_nomem(__func__);
    w->fn = fn;
    w->ctx = ctx;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    /* Signals (preemption) belong to the trainer's threads, never to this one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, writer_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return psrec_errf(rc, "checkpoint writer thread: %s", psrec_strerror(rc));
    }
    *out = w;
    return 0;
}

int snapwriter_submit(SnapWriter *w, CutImage **img)
{
    pthread_mutex_lock(&w->mu);
    while (w->pending && !w->quit)
        pthread_cond_wait(&w->cv, &w->mu);
    if (w->quit) {
        pthread_mutex_unlock(&w->mu);
        cut_image_free(img);
        return psrec_errf(PSREC_E_STATE, "checkpoint writer is stopping");
    }
    w->pending = *img;
    *img = NULL;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void snapwriter_wait(SnapWriter *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->pending)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

Shard *snapwriter_take_spare(SnapWriter *w)
{
    pthread_mutex_lock(&w->mu);
    Shard *s = w->spare;
    w->spare = NULL;
    pthread_mutex_unlock(&w->mu);
    return s;
}

void snapwriter_status(SnapWriter *w, SnapStatus *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->st;
    pthread_mutex_unlock(&w->mu);
}

void snapwriter_free(SnapWriter **wp)
{
    SnapWriter *w = *wp;
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    cut_image_free(&w->pending);
    shard_free(&w->spare);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    *wp = NULL;
}
