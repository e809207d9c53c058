/* Logging: one line per event on stderr, "role rank time LEVEL message".
 * Metrics never go here; they go to metrics.jsonl. Thread-safe (one fprintf per line). */
#ifndef PSREC_COMMON_LOG_H
#define PSREC_COMMON_LOG_H

enum LogLevel { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Set the role ("worker", "server", "main", ...) and rank printed on every line.
 * role is copied. Call before starting threads. */
void log_set_identity(const char *role, int rank);

/* Lines below this level are dropped (default INFO; PSREC_LOG=debug|info|warn|error overrides). */
void log_set_level(enum LogLevel level);

void log_write(enum LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_DEBUG(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_WARN(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_ERROR(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
