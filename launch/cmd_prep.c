/* `psrec prep`: command-line front end of prep_run (launch/prep.c). */
#include "common/error.h"
#include "common/log.h"
#include "common/timer.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/prep.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void prep_usage(FILE *f)
{
    fprintf(f,
            "usage: psrec prep --news F --behaviors F --out DB [options]\n\n"
            "Convert a MIND split (news.tsv + behaviors.tsv) into an LMDB dataset.\n"
            "  --news F           news.tsv of the split\n"
            "  --behaviors F      behaviors.tsv of the split\n"
            "  --out DB           dataset directory to create (built under a temporary name\n"
            "                     and renamed when complete)\n"
            "  --vocab-from DB    reuse the vocabulary, categories and users of a train\n"
            "                     dataset (for dev and test splits)\n"
            "  --title-len N      tokens kept per title (default 30, or the --vocab-from one)\n"
            "  --his-len N        clicks kept per history (default 50, or the --vocab-from one)\n"
            "  --min-count N      words seen fewer times become <unk> (default 1; train only)\n"
            "  --skip-bad-lines   skip and count malformed lines instead of stopping\n"
            "  --force            replace an existing dataset at --out\n"
            "  -h, --help         this text\n");
}

int cmd_prep(int argc, char **argv)
{
    enum { O_NEWS = 256, O_BEH, O_OUT, O_VOCAB, O_TITLE, O_HIS, O_MIN, O_SKIP, O_FORCE };
    static const struct option opts[] = {
        {"news", required_argument, NULL, O_NEWS},
        {"behaviors", required_argument, NULL, O_BEH},
        {"out", required_argument, NULL, O_OUT},
        {"vocab-from", required_argument, NULL, O_VOCAB},
        {"title-len", required_argument, NULL, O_TITLE},
        {"his-len", required_argument, NULL, O_HIS},
        {"min-count", required_argument, NULL, O_MIN},
        {"skip-bad-lines", no_argument, NULL, O_SKIP},
        {"force", no_argument, NULL, O_FORCE},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0}};
    PrepOptions po = {.min_count = 1};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_NEWS: po.news_path = optarg; break;
        case O_BEH: po.behaviors_path = optarg; break;
        case O_OUT: po.out_path = optarg; break;
        case O_VOCAB: po.vocab_from = optarg; break;
        case O_TITLE:
            if (cli_u32("prep", "title-len", optarg, 1, 4096, &po.title_len))
                return EXIT_USAGE;
            break;
        case O_HIS:
            if (cli_u32("prep", "his-len", optarg, 1, 65536, &po.his_len))
                return EXIT_USAGE;
            break;
        case O_MIN:
            if (cli_u32("prep", "min-count", optarg, 1, UINT32_MAX, &po.min_count))
                return EXIT_USAGE;
            break;
        case O_SKIP: po.skip_bad_lines = 1; break;
        case O_FORCE: po.force = 1; break;
        case 'h': prep_usage(stdout); return EXIT_OK;
        default: prep_usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc || !po.news_path || !po.behaviors_path || !po.out_path) {
        fprintf(stderr, "psrec prep: --news, --behaviors and --out are required%s\n",
                optind != argc ? " (and no positional arguments)" : "");
        prep_usage(stderr);
        return EXIT_USAGE;
    }
    log_set_identity("prep", -1);
    po.progress = 1;
    const double t0 = timer_now();
    DatasetMeta m;
    int rc = prep_run(&po, &m);
    if (rc) {
        fprintf(stderr, "psrec prep: %s\n", psrec_errmsg());
        return EXIT_FAIL;
    }
    double s = timer_now() - t0;
    fprintf(stderr,
            "psrec prep: %s: %llu news, %llu users, %llu impressions, %llu samples, vocab %llu, "
            "%llu categories; %llu missing news refs, %llu skipped lines, %llu duplicate news; "
            "%.1f MB of TSV in %.2f s (%.1f MB/s)\n",
            po.out_path, (unsigned long long)m.news, (unsigned long long)m.users,
            (unsigned long long)m.impressions, (unsigned long long)m.samples,
            (unsigned long long)m.vocab, (unsigned long long)m.categories,
            (unsigned long long)m.missing_news_refs, (unsigned long long)m.skipped_lines,
            (unsigned long long)m.duplicate_news, (double)m.tsv_bytes / 1e6, s,
            (double)m.tsv_bytes / 1e6 / (s > 0 ? s : 1e-9));
    return EXIT_OK;
}
