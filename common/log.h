/* Logging: one line per event, "[role rank time LEVEL] message", on stderr and, once
 * log_open_file was called, appended to the run's log file (run.dir/log).
 * Metrics never go here; they go to metrics.jsonl. Thread-safe: a line is formatted into one
 * buffer and written with one write() per destination.
 *
 * stderr is for a person watching: LOG_DETAIL lines (per-step loss, routine chatter) go to
 * stderr only while log_set_detail_stderr(1) (the default); the file gets every line.
 * A progress line (log_progress_draw) is redrawn in place on a terminal; log lines written
 * while one is shown erase it first and draw it again below themselves. */
#ifndef PSREC_COMMON_LOG_H
#define PSREC_COMMON_LOG_H

enum LogLevel { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Set the role ("worker", "server", "main", ...) and rank printed on every line.
 * role is copied. Call before starting threads. */
void log_set_identity(const char *role, int rank);

/* Lines below this level are dropped (default INFO; PSREC_LOG=debug|info|warn|error overrides). */
void log_set_level(enum LogLevel level);

/* Also append every later line to path: opened O_APPEND (created 0644), one write() per line,
 * so several processes appending to one file (ranks on a shared filesystem, or the lives of a
 * resumed run) interleave whole lines. Replaces a file opened before. Returns 0 or an errno
 * (with psrec_errf detail); stderr logging goes on either way. Call before starting threads. */
int log_open_file(const char *path);

/* Close the log file (lines go to stderr only again). */
void log_close_file(void);

/* Whether LOG_DETAIL lines also go to stderr (1, the default) or only to the log file (0). */
void log_set_detail_stderr(int on);

void log_write(enum LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An INFO line for the log file; on stderr only while log_set_detail_stderr(1). */
void log_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Show text (one line, no newline) as the progress line on stderr, a terminal: "\r", the
 * text, clear to the end of the line. Never goes to the log file. */
void log_progress_draw(const char *text);

/* End the progress line: a newline after it when keep, else erase it. No-op when none shown. */
void log_progress_end(int keep);

#define LOG_DEBUG(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_WARN(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_ERROR(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define LOG_DETAIL(...) log_detail(__VA_ARGS__)

#endif
