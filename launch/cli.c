/* Strict command-line integers (see cli.h). */
#include "launch/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

int cli_u64(const char *cmd, const char *opt, const char *text, uint64_t lo, uint64_t hi,
            uint64_t *out)
{
    const char *p = text;
    int digits = *p != '\0';
    for (; *p; p++)
        digits &= *p >= '0' && *p <= '9';
    if (!digits) {
        fprintf(stderr, "psrec %s: --%s needs a non-negative integer, got '%s'\n", cmd, opt,
                text);
        return -1;
    }
    errno = 0;
    unsigned long long v = strtoull(text, NULL, 10);
    if (errno == ERANGE || v < lo || v > hi) {
        fprintf(stderr, "psrec %s: --%s %s is out of range %" PRIu64 "..%" PRIu64 "\n", cmd, opt,
                text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_u32(const char *cmd, const char *opt, const char *text, uint32_t lo, uint32_t hi,
            uint32_t *out)
{
    uint64_t v;
    if (cli_u64(cmd, opt, text, lo, hi, &v))
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int cli_int(const char *cmd, const char *opt, const char *text, int lo, int hi, int *out)
{
    uint64_t v;
    if (lo < 0 || cli_u64(cmd, opt, text, (uint64_t)lo, (uint64_t)hi, &v))
        return -1;
    *out = (int)v;
    return 0;
}
