/* Synthetic MIND-format data with a planted ground truth (`psrec gen`).
 *
 * gen_run() writes, under opt->out:
 *   train/news.tsv  train/behaviors.tsv  dev/news.tsv  dev/behaviors.tsv  oracle.json
 * in MIND's exact grammar, from a simulated world of topics, news and users whose true click
 * probabilities are known, and scores the dev impressions with those probabilities (the
 * oracle: the ceiling of any model on this data) using common/metrics.
 * The output is a pure function of the options: same options, same bytes. */
#ifndef PSREC_LAUNCH_GEN_H
#define PSREC_LAUNCH_GEN_H

#include "common/metrics.h"

#include <stddef.h>
#include <stdint.h>

typedef struct GenOptions {
    const char *out;            /* output directory, created (with parents) when missing */
    uint64_t seed;              /* default 1 */
    uint32_t news;              /* news articles in the world, default 3000, >= 20 */
    uint32_t users;             /* users in the world, default 2000, >= 1 */
    uint32_t train_impressions; /* behaviors lines of train, default 16000, >= 1 */
    uint32_t dev_impressions;   /* behaviors lines of dev, default 3000, >= 1 */
    uint32_t topics;            /* topics (= categories), default 12, 2..64 */
    const char *truth;          /* NULL, or a file to write each user's favourite topics to
                                   (GEN_TRUTH_TOPICS lines below); default NULL */
} GenOptions;

/* The truth file: one line per user of the world, users in id order,
 *   <user id> TAB <topic> TAB <affinity> (TAB <topic> TAB <affinity>) x (GEN_TRUTH_TOPICS-1)
 * the user's GEN_TRUTH_TOPICS topics of highest affinity, highest first (ties: lower topic
 * index first). Affinity is the share of the user's clicks that topic draws (the weights over
 * all topics sum to 1; see gen.c "Users"), printed with 4 decimals. A user with one dominant
 * topic has a first affinity far above the second. */
#define GEN_TRUTH_TOPICS 3

/* Limits of the options (inclusive), checked by gen_run and by the command line. */
#define GEN_NEWS_MIN 20u
#define GEN_NEWS_MAX 10000000u
#define GEN_USERS_MIN 1u
#define GEN_USERS_MAX 10000000u
#define GEN_IMPRESSIONS_MIN 1u
#define GEN_IMPRESSIONS_MAX 100000000u
#define GEN_TOPICS_MIN 2u
#define GEN_TOPICS_MAX 64u

/* What was written, for the summary line. */
typedef struct GenStats {
    MetricsResult oracle;      /* dev impressions ranked by the true click probability */
    uint64_t news_train;       /* lines of train/news.tsv */
    uint64_t news_dev;         /* lines of dev/news.tsv */
    uint64_t users_train;      /* distinct users in train/behaviors.tsv */
    uint64_t users_dev;        /* distinct users in dev/behaviors.tsv */
    uint64_t users_dev_only;   /* of users_dev, those with no train impression */
    uint64_t impressions_train;
    uint64_t impressions_dev;
    uint64_t candidates;       /* over both splits */
    uint64_t clicks;           /* over both splits */
    uint64_t forced_labels;    /* impressions whose labels had to be forced (see gen.c) */
    uint64_t empty_histories;  /* behaviors lines (both splits) with an empty history */
} GenStats;

/* Fill opt with the defaults above (out = NULL: the caller must set it). */
void gen_options_default(GenOptions *opt);

/* Build the world of opt and write the files under opt->out. Each file appears complete or
 * not at all (written to "<name>.tmp", then renamed). stats may be NULL.
 * Returns 0, PSREC_E_USAGE (an option out of range; psrec_errmsg() names it), PSREC_E_NOMEM,
 * or an errno value of a failed mkdir/open/write/rename (psrec_errmsg() names the path).
 * Thread-safe: the world is private to the call. */
int gen_run(const GenOptions *opt, GenStats *stats);

/* The text of oracle.json without its final newline, e.g.
 * {"auc": 0.812345, "mrr": 0.412345, "ndcg5": 0.451234, "ndcg10": 0.512345, "impressions": 3000}
 * Truncated to cap - 1 bytes (cap >= 1); 160 bytes always suffice. */
void gen_oracle_json(const MetricsResult *oracle, char *buf, size_t cap);

#endif
