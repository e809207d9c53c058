/* Error codes and messages shared by every module.
 *
 * Convention (as LMDB): a function returns 0 on success, a positive errno value for a system
 * error, or a negative PSREC_E* code for a project error. LMDB's own negative codes pass through
 * unchanged. The detail of the latest error of this thread ("news.tsv:12: 7 fields, need 8")
 * is kept by psrec_errf() and read back by psrec_errmsg(). */
#ifndef PSREC_COMMON_ERROR_H
#define PSREC_COMMON_ERROR_H

#include <stdarg.h>

enum {
    PSREC_E_PARSE = -1,    /* malformed input text (TSV, config, command line) */
    PSREC_E_FORMAT = -2,   /* a file of ours that fails its magic/version/size checks */
    PSREC_E_RANGE = -3,    /* a value out of its allowed range */
    PSREC_E_NOTFOUND = -4, /* a named thing (file, key, table) does not exist */
    PSREC_E_USAGE = -5,    /* bad command-line usage */
    PSREC_E_NOMEM = -6,    /* allocation failed */
    PSREC_E_STATE = -7,    /* call made in the wrong state (closed reader, finished writer) */
    PSREC_E_STOPPED = -8,  /* the job stopped at a checkpoint on purpose (preemption) */
    PSREC_E_FENCED = -9,   /* a shard declared this worker dead: it must exit, not retry */
    PSREC_E_REPLAN = -10,  /* not an error: a worker was lost, re-partition the samples left */
};

/* Text for any code: 0, errno values, PSREC_E*, and LMDB's MDB_* codes.
 * Returns a static string. */
const char *psrec_strerror(int code);

/* Record the detail of the error being returned by this thread; returns code, so callers
 * can write `return psrec_errf(PSREC_E_PARSE, "%s:%ld: ...", ...)`. */
int psrec_errf(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The detail recorded by the latest psrec_errf() of this thread, or psrec_strerror(code) of
 * it when none was given. Lives until the next psrec_errf() of this thread. */
const char *psrec_errmsg(void);

/* A failed allocation: psrec_errf(PSREC_E_NOMEM, "out of memory (where)"), so the error that
 * reaches the user never carries a stale detail of an earlier one. Returns PSREC_E_NOMEM. */
int psrec_nomem(const char *where);

/* Forget the recorded detail (so a stale one is never shown for a new error). */
void psrec_errclear(void);

#endif
