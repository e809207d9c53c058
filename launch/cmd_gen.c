/* `psrec gen --out DIR [options]`: the command-line front end of launch/gen.c.
 *
 * Parses the options strictly (a number must be all digits and within its range; unknown
 * options, missing values and stray arguments are usage errors, exit 2), runs gen_run(), then
 * prints the oracle JSON (the text of DIR/oracle.json) on stdout and a one-line summary on
 * stderr. Runtime failures exit 1 with one line naming what failed. */
#include "common/error.h"
#include "common/timer.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/gen.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void gen_usage(FILE *f)
{
    GenOptions d;
    gen_options_default(&d);
    fprintf(f,
            "usage: psrec gen --out DIR [options]\n\n"
            "Write synthetic MIND-format data with a planted ground truth:\n"
            "  DIR/train/{news,behaviors}.tsv, DIR/dev/{news,behaviors}.tsv, DIR/oracle.json\n"
            "oracle.json (also printed on stdout) holds the dev metrics of ranking by the true\n"
            "click probability: the ceiling any model can reach on this data. The same options\n"
            "give the same bytes.\n\n"
            "options:\n"
            "  -o, --out DIR                output directory, created if missing (required)\n"
            "  -s, --seed N                 random seed (default %" PRIu64 ")\n"
            "      --news N                 news articles, %u..%u (default %u)\n"
            "      --users N                users, %u..%u (default %u)\n"
            "      --train-impressions N    train behaviors lines, %u..%u (default %u)\n"
            "      --dev-impressions N      dev behaviors lines, %u..%u (default %u)\n"
            "      --topics N               topics = categories, %u..%u (default %u)\n"
            "      --truth FILE             also write each user's favourite topics: per line\n"
            "                               user, then its 3 topics of highest affinity (the\n"
            "                               share of its clicks each draws), tab-separated\n"
            "  -h, --help                   this text\n",
            d.seed, GEN_NEWS_MIN, GEN_NEWS_MAX, d.news, GEN_USERS_MIN, GEN_USERS_MAX, d.users,
            GEN_IMPRESSIONS_MIN, GEN_IMPRESSIONS_MAX, d.train_impressions, GEN_IMPRESSIONS_MIN,
            GEN_IMPRESSIONS_MAX, d.dev_impressions, GEN_TOPICS_MIN, GEN_TOPICS_MAX, d.topics);
}

enum { OPT_NEWS = 256, OPT_USERS, OPT_TRAIN, OPT_DEV, OPT_TOPICS, OPT_TRUTH };

int cmd_gen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"seed", required_argument, NULL, 's'},
        {"news", required_argument, NULL, OPT_NEWS},
        {"users", required_argument, NULL, OPT_USERS},
        {"train-impressions", required_argument, NULL, OPT_TRAIN},
        {"dev-impressions", required_argument, NULL, OPT_DEV},
        {"topics", required_argument, NULL, OPT_TOPICS},
        {"truth", required_argument, NULL, OPT_TRUTH},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0},
    };
    GenOptions opt;
    gen_options_default(&opt);
    optind = 0; /* GNU: full re-initialisation, so cmd_gen can run more than once */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:s:h", opts, NULL)) != -1) {
        uint64_t v = 0;
        int bad = 0;
        switch (c) {
        case 'o':
            opt.out = optarg;
            break;
        case 's':
            bad = cli_u64("gen", "seed", optarg, 0, UINT64_MAX, &opt.seed);
            break;
        case OPT_NEWS:
            bad = cli_u64("gen", "news", optarg, GEN_NEWS_MIN, GEN_NEWS_MAX, &v);
            opt.news = (uint32_t)v;
            break;
        case OPT_USERS:
            bad = cli_u64("gen", "users", optarg, GEN_USERS_MIN, GEN_USERS_MAX, &v);
            opt.users = (uint32_t)v;
            break;
        case OPT_TRAIN:
            bad = cli_u64("gen", "train-impressions", optarg, GEN_IMPRESSIONS_MIN, GEN_IMPRESSIONS_MAX,
                            &v);
            opt.train_impressions = (uint32_t)v;
            break;
        case OPT_DEV:
            bad = cli_u64("gen", "dev-impressions", optarg, GEN_IMPRESSIONS_MIN, GEN_IMPRESSIONS_MAX,
                            &v);
            opt.dev_impressions = (uint32_t)v;
            break;
        case OPT_TOPICS:
            bad = cli_u64("gen", "topics", optarg, GEN_TOPICS_MIN, GEN_TOPICS_MAX, &v);
            opt.topics = (uint32_t)v;
            break;
        case OPT_TRUTH:
            opt.truth = optarg;
            break;
        case 'h':
            gen_usage(stdout);
            return EXIT_OK;
        case ':':
            fprintf(stderr, "psrec gen: option '%s' needs a value\n", argv[optind - 1]);
            bad = 1;
            break;
        default:
            if (optopt)
                fprintf(stderr, "psrec gen: unknown option '-%c'\n", optopt);
            else
                fprintf(stderr, "psrec gen: unknown option '%s'\n", argv[optind - 1]);
            bad = 1;
            break;
        }
        if (bad) {
            fprintf(stderr, "try 'psrec gen --help'\n");
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "psrec gen: unexpected argument '%s'\ntry 'psrec gen --help'\n",
                argv[optind]);
        return EXIT_USAGE;
    }
    if (!opt.out || !*opt.out) {
        fprintf(stderr, "psrec gen: --out DIR is required\ntry 'psrec gen --help'\n");
        return EXIT_USAGE;
    }

    const double t0 = timer_now();
    GenStats st;
    psrec_errclear();
    int rc = gen_run(&opt, &st);
    if (rc) {
        fprintf(stderr, "psrec gen: %s\n", psrec_errmsg()[0] ? psrec_errmsg() : psrec_strerror(rc));
        return rc == PSREC_E_USAGE ? EXIT_USAGE : EXIT_FAIL;
    }
    double secs = timer_now() - t0;
    uint64_t imps = st.impressions_train + st.impressions_dev;
    fprintf(stderr,
            "psrec gen: wrote %s (seed %" PRIu64 ", %u topics): train %" PRIu64
            " impressions, %" PRIu64 " users, %" PRIu64 " news; dev %" PRIu64
            " impressions, %" PRIu64 " users (%" PRIu64 " without train impressions), %" PRIu64
            " news; %.1f candidates and %.2f clicks per impression, %.1f%% empty histories, "
            "%" PRIu64 " forced labels; oracle AUC %.4f; %.2f s\n",
            opt.out, opt.seed, opt.topics, st.impressions_train, st.users_train, st.news_train,
            st.impressions_dev, st.users_dev, st.users_dev_only, st.news_dev,
            (double)st.candidates / (double)imps, (double)st.clicks / (double)imps,
            100.0 * (double)st.empty_histories / (double)imps, st.forced_labels, st.oracle.auc,
            secs);
    char json[256];
    gen_oracle_json(&st.oracle, json, sizeof json);
    printf("%s\n", json);
    return fflush(stdout) ? EXIT_FAIL : EXIT_OK;
}
