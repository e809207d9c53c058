/* Progress reporting on stderr for a person or a script watching a long command.
 *
 * Two forms of the same fields: on a terminal one line redrawn in place (log_progress_draw),
 * otherwise a plain line every interval, "progress key=value ...", that a script can split on
 * spaces and '='. A TrainProgress turns finished steps into those fields (rates over a recent
 * window, an exponential moving average of the loss, ETAs); a ProgressMeter is the simple
 * "done/total" line of eval and prep, shown on a terminal only, once a command ran ~2 s.
 * Nothing here touches the log file: per-step detail lines are the caller's (LOG_DETAIL).
 * Single-threaded: each object belongs to the thread that updates it. */
#ifndef PSREC_COMMON_PROGRESS_H
#define PSREC_COMMON_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

typedef enum ProgressMode {
    PROGRESS_OFF,   /* nothing (ranks other than the first worker) */
    PROGRESS_TTY,   /* one line redrawn in place */
    PROGRESS_PLAIN, /* a key=value line every interval */
} ProgressMode;

/* The mode for this process's stderr: PSREC_PROGRESS=tty|plain|off if set (e.g. to get the
 * redrawn line under mpirun, whose ranks' stderr is a pipe), else TTY when stderr is a
 * terminal, else PLAIN. */
ProgressMode progress_mode_auto(void);

/* One progress report of training. */
typedef struct ProgressFields {
    uint64_t epoch, epochs;  /* 1-based epoch, of epochs */
    uint64_t step, steps;    /* steps done in this epoch, of the epoch's (approximate) total */
    double samples_per_s;
    double loss;             /* moving average */
    double eta_epoch_s;      /* seconds to the end of this epoch's steps (no dev eval) */
    double eta_s;            /* seconds to the end of the run's steps (no dev eval) */
    int has_lag;             /* under a PS: lag is known */
    uint64_t lag;            /* this worker's finished steps minus the slowest worker's */
} ProgressFields;

/* "progress epoch=E/EE step=S/SS samples_per_s=R loss=L eta_epoch_s=N eta_s=N[ lag=N]"
 * (no newline): integers for epoch, step, eta_*, lag; decimals for samples_per_s and loss.
 * Returns the length snprintf would produce. */
int progress_format_plain(char *buf, size_t n, const ProgressFields *f);

/* The terminal form of the same fields, e.g.
 * "epoch 1/3  step 420/1440 (29%)  812 samples/s  loss 0.6931  ETA epoch 0:12 run 1:15  lag 1" */
int progress_format_tty(char *buf, size_t n, const ProgressFields *f);

/* Turns finished steps into ProgressFields and shows them as its mode says. */
typedef struct TrainProgress {
    ProgressMode mode;
    double interval;         /* PLAIN: seconds between lines (TTY redraws every 0.25 s) */
    double t_shown;          /* when the last line was shown */
    double t_ref;            /* start of the rate window */
    uint64_t ref_samples, ref_steps;
    double samples_per_s, steps_per_s; /* over the last closed window (or since start) */
    uint64_t samples, steps; /* this life */
    double ema;
    int have_ema;
    double t0;
} TrainProgress;

/* Start at time now (timer_now()). interval > 0. */
void train_progress_init(TrainProgress *p, ProgressMode mode, double interval, double now);

/* Where a step left the run: epoch (0-based) of epochs, steps done in it of its total, the
 * total steps of the epochs after it, and the lag when known. */
typedef struct ProgressPos {
    uint64_t epoch, epochs;
    uint64_t step, steps;
    uint64_t steps_after;
    int has_lag;
    uint64_t lag;
} ProgressPos;

/* A step finished at time now with loss over samples samples: update the rates and the loss
 * average; fill *out (may be NULL). Returns 1 when a line is due (and then shows it, unless
 * mode is PROGRESS_OFF), else 0. */
int train_progress_step(TrainProgress *p, double now, double loss, uint64_t samples,
                        const ProgressPos *pos, ProgressFields *out);

/* Training ended (or stopped): on a terminal, erase the line. */
void train_progress_end(TrainProgress *p);

/* "what: done/total unit (pct%)  elapsed", redrawn on a terminal once ~2 s passed. */
typedef struct ProgressMeter {
    int on;                  /* stderr is a terminal (progress_mode_auto() == TTY) */
    const char *what, *unit; /* borrowed: string literals */
    double t0, t_shown;
    double delay;            /* seconds before the first line */
    int shown;
} ProgressMeter;

void progress_meter_init(ProgressMeter *m, const char *what, const char *unit);
void progress_meter_update(ProgressMeter *m, uint64_t done, uint64_t total);
/* Erase the line (the command's own result lines follow). */
void progress_meter_end(ProgressMeter *m);

#endif
