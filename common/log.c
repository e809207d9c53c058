/* Log lines carry the identity of the process (role + rank) so interleaved mpirun output
 * can be told apart. The line is formatted into one buffer and written with one call. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static char log_role[32] = "psrec";
static int log_rank = -1;
static int log_level = -1;

void log_set_identity(const char *role, int rank)
{
    snprintf(log_role, sizeof log_role, "%s", role);
    log_rank = rank;
}

void log_set_level(enum LogLevel level)
{
    log_level = (int)level;
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

void log_write(enum LogLevel level, const char *fmt, ...)
{
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if ((int)level < effective_level())
        return;
    char line[2048];
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
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
