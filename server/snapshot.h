/* Checkpoint images and the background thread that writes them.
 *
 * A consistent cut pauses training only for the in-memory copy of a shard (shard_clone) and
 * of the workers' positions: that copy is a CutImage. Writing it to disk is slow (tens of MB,
 * fsync), so a SnapWriter's own thread does it, through a function the caller supplies (the
 * file layout belongs to launch/, which server/ does not include). One image is written at a
 * time; submitting while one is being written waits for it, so cuts land on disk in order.
 *
 * Threads: snapwriter_submit / wait / status / free from one owner thread; the write function
 * runs on the writer thread and must not touch the live shard. */
#ifndef PSREC_SERVER_SNAPSHOT_H
#define PSREC_SERVER_SNAPSHOT_H

#include "server/shard.h"

#include <stddef.h>
#include <stdint.h>

#define SNAP_CUT_MAX 256 /* bytes of one worker's opaque position (WIRE_CUT_MAX) */

/* One shard's part of a cut at `step`, plus every worker's position as this shard knows it. */
typedef struct CutImage {
    uint64_t step;          /* the cut: every worker finished this many steps (or is done) */
    uint32_t shard, shards; /* which shard this image is, of how many */
    uint32_t workers;       /* W */
    int stop;               /* the job stops at this cut */
    int final;              /* the end of training (every worker done) */
    Shard *copy;            /* owned: the shard's tables and optimizer state at the cut */
    uint64_t *finished;     /* (W) steps each worker had clocked */
    unsigned char *done;    /* (W) 1: the worker had said SHUTDOWN (finished its epochs) */
    unsigned char *lost;    /* (W) 1: the worker was declared dead; its position is the one
                               after its last committed step, the survivors take it over */
    int replan;             /* this cut is where the survivors take over lost workers */
    uint32_t *cut_len;      /* (W) bytes of cuts[w] */
    unsigned char *cuts;    /* (W, SNAP_CUT_MAX) opaque positions */
} CutImage;

/* A zeroed image with room for W workers (copy NULL). Returns 0 or PSREC_E_NOMEM. */
int cut_image_new(uint32_t workers, CutImage **out);
void cut_image_free(CutImage **img);

/* Writes img; runs on the writer thread. Returns 0 or an error (detail via psrec_errf on that
 * thread; the writer copies it into its status). */
typedef int (*SnapWriteFn)(void *ctx, const CutImage *img);

typedef struct SnapStatus {
    uint64_t written, failed; /* images written / failed so far */
    uint64_t last_step;       /* step of the last image written fine (0: none) */
    double last_seconds;      /* how long that write took */
    int last_rc;              /* result of the newest finished write */
    char last_error[512];     /* its message when it failed */
    int busy;                 /* an image is being written now */
} SnapStatus;

typedef struct SnapWriter SnapWriter;

/* Start the writer thread (it blocks every signal: signals go to the caller's threads). fn
 * and ctx are borrowed until snapwriter_free. Returns 0, PSREC_E_NOMEM or a pthread errno. */
int snapwriter_new(SnapWriteFn fn, void *ctx, SnapWriter **out);

/* Hand *img to the writer (ownership moves; *img = NULL). Waits while an earlier image is
 * still being written. Returns 0, or PSREC_E_STATE after snapwriter_free began. */
int snapwriter_submit(SnapWriter *w, CutImage **img);

/* Wait until no image is queued or being written. */
void snapwriter_wait(SnapWriter *w);

void snapwriter_status(SnapWriter *w, SnapStatus *out);

/* The shard copy of the last image written (the caller owns it), or NULL: refresh it with
 * shard_snapshot for the next cut instead of copying into fresh memory. */
Shard *snapwriter_take_spare(SnapWriter *w);

/* Finish the queued image (never abandon a cut half-written), stop the thread, free; *w = NULL. */
void snapwriter_free(SnapWriter **w);

#endif
