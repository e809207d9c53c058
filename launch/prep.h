/* `psrec prep` as a library call: MIND news.tsv + behaviors.tsv -> an LMDB dataset. */
#ifndef PSREC_LAUNCH_PREP_H
#define PSREC_LAUNCH_PREP_H

#include "common/dataset.h"

#include <stdint.h>

typedef struct PrepOptions {
    const char *news_path;      /* news.tsv */
    const char *behaviors_path; /* behaviors.tsv */
    const char *out_path;       /* dataset directory to create */
    const char *vocab_from;     /* train dataset whose vocab/categories/users to reuse, or NULL */
    uint32_t title_len;         /* 0 = default (30, or vocab_from's) */
    uint32_t his_len;           /* 0 = default (50, or vocab_from's) */
    uint32_t min_count;         /* vocabulary min count (>= 1); ignored with vocab_from */
    int skip_bad_lines;         /* count and skip malformed lines instead of stopping */
    int force;                  /* replace an existing dataset at out_path */
    int progress;               /* a progress line on stderr when it is a terminal and the
                                   run takes over ~2 s (psrec prep) */
} PrepOptions;

/* Build the dataset under a temporary name next to out_path and rename it into place only
 * when complete, so out_path never holds a partial database. On success *meta (optional)
 * receives the meta record written. Returns 0, or an error code with the detail
 * ("news.tsv:12: 7 fields, a news line needs 8") in psrec_errmsg(). */
int prep_run(const PrepOptions *opt, DatasetMeta *meta);

#endif
