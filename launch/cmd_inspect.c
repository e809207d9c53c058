/* `psrec inspect [--json] DB`: prints a dataset's meta record and counts. Read-only; the
 * dataset's own checks (magic, version, table sizes) run on open, so inspect doubles as a
 * validity check of a prepared database. */
#include "common/dataset.h"
#include "common/error.h"
#include "launch/commands.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void inspect_usage(FILE *f)
{
    fprintf(f, "usage: psrec inspect [--json] DB\n\n"
               "Print the meta record and counts of a dataset made by `psrec prep`.\n"
               "  --json     one JSON object on stdout (keys: news, users, impressions, samples,\n"
               "             vocab, categories, missing_news_refs, skipped_lines, ...)\n"
               "  -h, --help this text\n");
}

typedef struct Field {
    const char *name;
    uint64_t value;
    const char *doc;
} Field;

int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'h') {
            inspect_usage(stdout);
            return EXIT_OK;
        } else {
            inspect_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "psrec inspect: need exactly one DB path\n");
        inspect_usage(stderr);
        return EXIT_USAGE;
    }
    const char *path = argv[optind];
    Dataset *ds = NULL;
    if (dataset_open(path, &ds)) {
        fprintf(stderr, "psrec inspect: %s\n", psrec_errmsg());
        return EXIT_FAIL;
    }
    const DatasetMeta *m = dataset_meta(ds);
    const Field fields[] = {
        {"format_version", m->version, "dataset format version"},
        {"tokenizer_version", m->tokenizer_version, "tokenizer version"},
        {"title_len", m->title_len, "tokens kept per title"},
        {"his_len", m->his_len, "clicks kept per history"},
        {"min_count", m->min_count, "vocabulary min count"},
        {"vocab_shared", m->vocab_shared, "1 if made with --vocab-from"},
        {"news", m->news, "distinct news ids in news.tsv"},
        {"users", m->users, "distinct user ids in behaviors.tsv"},
        {"impressions", m->impressions, "impressions (behaviors lines)"},
        {"labeled_impressions", m->labeled_impressions, "impressions with labels"},
        {"samples", m->samples, "training samples (clicks)"},
        {"candidates", m->candidates, "candidates over all impressions"},
        {"history_refs", m->history_refs, "history entries over all impressions"},
        {"vocab", m->vocab, "vocabulary words (without <pad>, <unk>)"},
        {"categories", m->categories, "distinct categories in news.tsv"},
        {"missing_news_refs", m->missing_news_refs, "history/candidate ids not in news.tsv"},
        {"skipped_lines", m->skipped_lines, "malformed lines skipped"},
        {"duplicate_news", m->duplicate_news, "repeated news ids (first kept)"},
        {"unknown_users", m->unknown_users, "impressions of users unknown to the vocab source"},
        {"news_rows", m->news_rows, "news table rows (with padding news 0)"},
        {"user_rows", m->user_rows, "user table rows (with <unk> 0)"},
        {"vocab_rows", m->vocab_rows, "vocabulary rows (with <pad>, <unk>)"},
        {"category_rows", m->category_rows, "category rows (with <none> 0)"},
        {"tsv_bytes", m->tsv_bytes, "bytes of TSV read"},
    };
    size_t nf = sizeof fields / sizeof fields[0];
    if (json) {
        printf("{\"path\":\"");
        for (const char *p = path; *p; p++) {
            if (*p == '"' || *p == '\\')
                putchar('\\');
            putchar(*p);
        }
        printf("\"");
        for (size_t i = 0; i < nf; i++)
            printf(",\"%s\":%llu", fields[i].name, (unsigned long long)fields[i].value);
        printf("}\n");
    } else {
        printf("dataset %s\n", path);
        for (size_t i = 0; i < nf; i++)
            printf("  %-20s %12llu  %s\n", fields[i].name, (unsigned long long)fields[i].value,
                   fields[i].doc);
    }
    dataset_free(&ds);
    return EXIT_OK;
}
