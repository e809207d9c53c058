/* libFuzzer target: the MIND TSV line parsers (common/tsv.h).
 *
 * The first input byte picks the parser (even: news.tsv, odd: behaviors.tsv), the rest is one
 * line. The line is copied into a buffer of exactly its size so ASan sees any read past it.
 * After a successful behaviors parse the history and candidate iterators are walked, as prep
 * does, and every span they give must lie inside the line. Nothing here may crash. */
#include "common/error.h"
#include "common/tsv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_span(const char *line, size_t len, TsvSpan s)
{
    if (s.n && (s.p < line || s.p + s.n > line + len))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = size - 1;
    char *line = malloc(len ? len : 1);
    if (!line)
        return 0;
    memcpy(line, data + 1, len);
    char reason[128];
    if (data[0] % 2 == 0) {
        NewsRow n;
        if (tsv_parse_news(line, len, &n, reason, sizeof reason) == 0) {
            check_span(line, len, n.id);
            check_span(line, len, n.title);
            check_span(line, len, n.abstract_entities);
        }
    } else {
        BehaviorRow b;
        if (tsv_parse_behavior(line, len, &b, reason, sizeof reason) == 0) {
            size_t pos = 0, k = 0;
            TsvSpan id;
            int label;
            while (tsv_history_next(&b, &pos, &id)) {
                check_span(line, len, id);
                k++;
            }
            if (k != b.n_history)
                abort();
            pos = 0, k = 0;
            size_t clicks = 0;
            while (tsv_candidate_next(&b, &pos, &id, &label)) {
                check_span(line, len, id);
                if (id.n == 0 || label != (b.labeled ? label & 1 : -1))
                    abort();
                clicks += label == 1;
                k++;
            }
            if (k != b.n_candidates || clicks != b.n_clicks)
                abort();
        }
    }
    TsvSpan f[8];
    size_t nf = tsv_split(line, len, f, 8);
    for (size_t i = 0; i < nf && i < 8; i++)
        check_span(line, len, f[i]);
    free(line);
    return 0;
}
