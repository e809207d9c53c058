/* Progress lines (see progress.h).
 * Rates come from a window that closes every max(1 s, interval) (2 s on a terminal), so the
 * figure follows speed changes without jittering on every redraw; ETAs divide the steps left
 * by the step rate and leave out dev evaluation. The loss average is the running mean for the
 * first 50 steps and then an exponential moving average with weight 1/50 on the newest step,
 * so early lines are not dragged towards the first batch's loss. */
#include "common/progress.h"

#include "common/log.h"
#include "common/timer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define EMA_STEPS 50
#define TTY_REDRAW_S 0.25
#define METER_DELAY_S 2.0

/* Seconds a command runs before its meter shows: METER_DELAY_S, or PSREC_TEST_METER_DELAY
 * (a test hook: tests run prep and eval on small data, far under 2 s). */
static double meter_delay(void)
{
    const char *env = getenv("PSREC_TEST_METER_DELAY");
    if (env && *env) {
        char *end;
        double v = strtod(env, &end);
        if (!*end && v >= 0)
            return v;
    }
    return METER_DELAY_S;
}

ProgressMode progress_mode_auto(void)
{
    const char *env = getenv("PSREC_PROGRESS");
    if (env && !strcasecmp(env, "tty"))
        return PROGRESS_TTY;
    if (env && !strcasecmp(env, "plain"))
        return PROGRESS_PLAIN;
    if (env && !strcasecmp(env, "off"))
        return PROGRESS_OFF;
    return isatty(2) ? PROGRESS_TTY : PROGRESS_PLAIN;
}

static unsigned long long whole_seconds(double s)
{
    return s > 0 ? (unsigned long long)(s + 0.5) : 0;
}

int progress_format_plain(char *buf, size_t n, const ProgressFields *f)
{
    int len = snprintf(buf, n,
                       "progress epoch=%llu/%llu step=%llu/%llu samples_per_s=%.1f loss=%.4f "
                       "eta_epoch_s=%llu eta_s=%llu",
                       (unsigned long long)f->epoch, (unsigned long long)f->epochs,
                       (unsigned long long)f->step, (unsigned long long)f->steps,
                       f->samples_per_s, f->loss, whole_seconds(f->eta_epoch_s),
                       whole_seconds(f->eta_s));
    if (f->has_lag && len >= 0 && (size_t)len < n)
        len += snprintf(buf + len, n - (size_t)len, " lag=%llu", (unsigned long long)f->lag);
    return len;
}

/* h:mm:ss or m:ss */
static void duration(char *buf, size_t n, double s)
{
    unsigned long long t = whole_seconds(s);
    if (t >= 3600)
        snprintf(buf, n, "%llu:%02llu:%02llu", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%llu:%02llu", t / 60, t % 60);
}

int progress_format_tty(char *buf, size_t n, const ProgressFields *f)
{
    char ee[32], er[32];
    duration(ee, sizeof ee, f->eta_epoch_s);
    duration(er, sizeof er, f->eta_s);
    double pct = f->steps ? 100.0 * (double)f->step / (double)f->steps : 0;
    int len = snprintf(buf, n,
                       "epoch %llu/%llu  step %llu/%llu (%.0f%%)  %.0f samples/s  loss %.4f  "
                       "ETA epoch %s run %s",
                       (unsigned long long)f->epoch, (unsigned long long)f->epochs,
                       (unsigned long long)f->step, (unsigned long long)f->steps, pct,
                       f->samples_per_s, f->loss, ee, er);
    if (f->has_lag && len >= 0 && (size_t)len < n)
        len += snprintf(buf + len, n - (size_t)len, "  lag %llu", (unsigned long long)f->lag);
    return len;
}

void train_progress_init(TrainProgress *p, ProgressMode mode, double interval, double now)
{
    memset(p, 0, sizeof *p);
    p->mode = mode;
    p->interval = interval > 0 ? interval : 10.0;
    p->t0 = p->t_ref = p->t_shown = now;
}

static void show(const TrainProgress *p, const ProgressFields *f)
{
    char line[512];
    if (p->mode == PROGRESS_TTY) {
        progress_format_tty(line, sizeof line, f);
        log_progress_draw(line);
    } else if (p->mode == PROGRESS_PLAIN) {
        int n = progress_format_plain(line, sizeof line - 1, f);
        if (n < 0 || (size_t)n >= sizeof line - 1)
            n = (int)strlen(line);
        line[n++] = '\n';
        /* One write: whole lines even when other threads log meanwhile. */
        ssize_t w;
        do
            w = write(2, line, (size_t)n);
        while (w < 0 && errno == EINTR);
    }
}

int train_progress_step(TrainProgress *p, double now, double loss, uint64_t samples,
                        const ProgressPos *pos, ProgressFields *out)
{
    p->samples += samples;
    p->steps++;
    double w = p->steps < EMA_STEPS ? 1.0 / (double)p->steps : 1.0 / EMA_STEPS;
    p->ema = p->have_ema ? p->ema + w * (loss - p->ema) : loss;
    p->have_ema = 1;
    double window = p->mode == PROGRESS_TTY ? 2.0 : (p->interval > 1.0 ? p->interval : 1.0);
    if (now - p->t_ref >= window) {
        p->samples_per_s = (double)(p->samples - p->ref_samples) / (now - p->t_ref);
        p->steps_per_s = (double)(p->steps - p->ref_steps) / (now - p->t_ref);
        p->t_ref = now;
        p->ref_samples = p->samples;
        p->ref_steps = p->steps;
    } else if (p->ref_steps == 0 && now > p->t0) {
        /* No window closed yet: the average since the start. */
        p->samples_per_s = (double)p->samples / (now - p->t0);
        p->steps_per_s = (double)p->steps / (now - p->t0);
    }
    ProgressFields f = {.epoch = pos->epoch + 1,
                        .epochs = pos->epochs,
                        .step = pos->step,
                        .steps = pos->steps,
                        .samples_per_s = p->samples_per_s,
                        .loss = p->ema,
                        .has_lag = pos->has_lag,
                        .lag = pos->lag};
    if (p->steps_per_s > 0) {
        uint64_t left = pos->steps > pos->step ? pos->steps - pos->step : 0;
        f.eta_epoch_s = (double)left / p->steps_per_s;
        f.eta_s = f.eta_epoch_s + (double)pos->steps_after / p->steps_per_s;
    }
    if (out)
        *out = f;
    const double every = p->mode == PROGRESS_TTY ? TTY_REDRAW_S : p->interval;
    if (now - p->t_shown < every)
        return 0;
    p->t_shown = now;
    show(p, &f);
    return 1;
}

void train_progress_end(TrainProgress *p)
{
    if (p->mode == PROGRESS_TTY)
        log_progress_end(0); /* the caller's "done" or "preempted" line says where it ended */
}

void progress_meter_init(ProgressMeter *m, const char *what, const char *unit)
{
    memset(m, 0, sizeof *m);
    m->on = progress_mode_auto() == PROGRESS_TTY;
    m->what = what;
    m->unit = unit;
    m->t0 = timer_now();
    m->delay = meter_delay();
}

void progress_meter_update(ProgressMeter *m, uint64_t done, uint64_t total)
{
    if (!m->on)
        return;
    double now = timer_now();
    if (now - m->t0 < m->delay || (m->shown && now - m->t_shown < TTY_REDRAW_S))
        return;
    char line[256], el[32];
    duration(el, sizeof el, now - m->t0);
    if (total)
        snprintf(line, sizeof line, "%s: %llu/%llu %s (%.0f%%)  %s", m->what,
                 (unsigned long long)done, (unsigned long long)total, m->unit,
                 100.0 * (double)done / (double)total, el);
    else
        snprintf(line, sizeof line, "%s: %llu %s  %s", m->what, (unsigned long long)done,
                 m->unit, el);
    log_progress_draw(line);
    m->shown = 1;
    m->t_shown = now;
}

void progress_meter_end(ProgressMeter *m)
{
    if (m->shown)
        log_progress_end(0);
    m->shown = 0;
}
