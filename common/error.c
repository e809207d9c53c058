/* Error text: the static meaning of each code, plus a per-thread detail line set by the
 * function that failed. Thread-local, so threads (prefetch, shard loop) never see each
 * other's messages. */
#include "common/error.h"

#include <lmdb.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errbuf[1024];

const char *psrec_strerror(int code)
{
    switch (code) {
    case 0: return "success";
    case PSREC_E_PARSE: return "malformed input";
    case PSREC_E_FORMAT: return "bad file format";
    case PSREC_E_RANGE: return "value out of range";
    case PSREC_E_NOTFOUND: return "not found";
    case PSREC_E_USAGE: return "bad usage";
    case PSREC_E_NOMEM: return "out of memory";
    case PSREC_E_STATE: return "call in the wrong state";
    case PSREC_E_STOPPED: return "stopped at a checkpoint (preempted)";
    case PSREC_E_FENCED: return "declared dead by the job (fenced)";
    case PSREC_E_REPLAN: return "a worker was lost: the survivors re-partition its samples";
    default: break;
    }
    if (code > 0)
        return strerror(code);
    if (code >= MDB_KEYEXIST && code <= MDB_LAST_ERRCODE)
        return mdb_strerror(code);
    return "unknown error";
}

int psrec_errf(int code, const char *fmt, ...)
{
    /* Format aside first: callers often prefix the current detail
     * (psrec_errf(rc, "%s: %s", path, psrec_errmsg())), whose text lives in errbuf. */
    char line[sizeof errbuf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    memcpy(errbuf, line, sizeof errbuf);
    return code;
}

const char *psrec_errmsg(void)
{
    return errbuf;
}

int psrec_nomem(const char *where)
{
    return psrec_errf(PSREC_E_NOMEM, "out of memory (%s)", where);
}

void psrec_errclear(void)
{
    errbuf[0] = '\0';
}
