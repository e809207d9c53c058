/* Log lines carry the identity of the process (role + rank) so interleaved mpirun output and
 * the shared run.dir/log can be told apart. A line is formatted into one buffer and written
 * with one write() per destination: O_APPEND makes each write land whole at the end of the
 * file even when several ranks (processes) append to it at once.
 * Invariant: while a progress line is shown on stderr, every other stderr write first erases
 * it and draws it again afterwards, so log lines never end up glued to it. The mutex only
 * orders stderr writes and the progress text of this process; it is never held across
 * anything but write(). */
#include "common/log.h"

#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static char log_role[32] = "psrec";
static int log_rank = -1;
static int log_level = -1;
static int log_fd = -1;          /* run.dir/log, or -1 */
static int detail_stderr = 1;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char progress_text[512]; /* the progress line shown on stderr ("" = none) */

void log_set_identity(const char *role, int rank)
{
    snprintf(log_role, sizeof log_role, "%s", role);
    log_rank = rank;
}

void log_set_level(enum LogLevel level)
{
    log_level = (int)level;
}

void log_set_detail_stderr(int on)
{
    detail_stderr = on;
}

int log_open_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return psrec_errf(errno, "%s: cannot open for appending: %s", path, strerror(errno));
    pthread_mutex_lock(&log_mu);
    int old = log_fd;
    log_fd = fd;
    pthread_mutex_unlock(&log_mu);
    if (old >= 0)
        close(old);
    return 0;
}

void log_close_file(void)
{
    pthread_mutex_lock(&log_mu);
    int fd = log_fd;
    log_fd = -1;
    pthread_mutex_unlock(&log_mu);
    if (fd >= 0)
        close(fd);
}

static int effective_level(void)
{
    if (log_level >= 0)
        return log_level;
    const char *env = getenv("PSREC_LOG");
    if (env && !strcasecmp(env, "debug"))
        return LOG_LEVEL_DEBUG;
    if (env && !strcasecmp(env, "warn"))
        return LOG_LEVEL_WARN;
    if (env && !strcasecmp(env, "error"))
        return LOG_LEVEL_ERROR;
    return LOG_LEVEL_INFO;
}

/* write() all of buf, retrying short writes and EINTR; errors are dropped (nowhere to log). */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

/* Write a complete line to stderr around the progress line, if one is shown. Caller holds
 * log_mu. */
static void stderr_line_locked(const char *line, size_t len)
{
    if (!progress_text[0]) {
        write_all(2, line, len);
        return;
    }
    char buf[LOG_LINE_MAX + sizeof progress_text + 16];
    int n = snprintf(buf, sizeof buf, "\r\033[K%.*s%s\033[K", (int)len, line, progress_text);
    write_all(2, buf, n < (int)sizeof buf ? (size_t)n : sizeof buf - 1);
}

static void vlog(enum LogLevel level, int to_stderr, const char *fmt, va_list ap)
{
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if ((int)level < effective_level())
        return;
    char line[LOG_LINE_MAX];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    int n;
    if (log_rank >= 0)
        n = snprintf(line, sizeof line, "[%s %d %02d:%02d:%02d.%03ld %s] ", log_role, log_rank,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    else
        n = snprintf(line, sizeof line, "[%s %02d:%02d:%02d.%03ld %s] ", log_role, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    size_t len = strlen(line);
    line[len++] = '\n';
    pthread_mutex_lock(&log_mu);
    if (to_stderr)
        stderr_line_locked(line, len);
    if (log_fd >= 0)
        write_all(log_fd, line, len);
    pthread_mutex_unlock(&log_mu);
}

void log_write(enum LogLevel level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, 1, fmt, ap);
    va_end(ap);
}

void log_detail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(LOG_LEVEL_INFO, detail_stderr, fmt, ap);
    va_end(ap);
}

void log_progress_draw(const char *text)
{
    pthread_mutex_lock(&log_mu);
    snprintf(progress_text, sizeof progress_text, "%s", text);
    char buf[sizeof progress_text + 16];
    int n = snprintf(buf, sizeof buf, "\r%s\033[K", progress_text);
    write_all(2, buf, n < (int)sizeof buf ? (size_t)n : sizeof buf - 1);
    pthread_mutex_unlock(&log_mu);
}

void log_progress_end(int keep)
{
    pthread_mutex_lock(&log_mu);
    if (progress_text[0])
        write_all(2, keep ? "\n" : "\r\033[K", keep ? 1 : 4);
    progress_text[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}
