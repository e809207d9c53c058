/* `psrec inspect [--json] PATH`: prints a dataset's meta record and counts, or a checkpoint's
 * run meta and tables. Read-only; the files' own checks (magic, version, sizes, CRCs) run on
 * open, so inspect doubles as a validity check. */
#include "common/ckpt.h"
#include "common/dataset.h"
#include "common/error.h"
#include "common/runmeta.h"
#include "launch/ckptdir.h"
#include "launch/commands.h"
#include "server/table.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static void inspect_usage(FILE *f)
{
    fprintf(f, "usage: psrec inspect [--json] PATH\n\n"
               "Print the meta record and counts of a dataset made by `psrec prep`, or the run\n"
               "meta and tables of a checkpoint (a run's ckpt/ dir, a step-N dir or a .ckpt file).\n"
               "  --json     one JSON object on stdout (keys: news, users, impressions, samples,\n"
               "             vocab, categories, missing_news_refs, skipped_lines, ...)\n"
               "  -h, --help this text\n");
}

typedef struct Field {
    const char *name;
    uint64_t value;
    const char *doc;
} Field;

static void json_string(const char *s)
{
    putchar('"');
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            putchar('\\');
        putchar(*p);
    }
    putchar('"');
}

/* The head of a report: "{"path":..,"name":value,..." (JSON, left open for the caller to
 * close) or a titled table, one field per line. */
static void print_fields(const char *kind, const char *path, const Field *f, size_t n, int json,
                         int width)
{
    if (json) {
        printf("{\"path\":");
        json_string(path);
        for (size_t i = 0; i < n; i++)
            printf(",\"%s\":%llu", f[i].name, (unsigned long long)f[i].value);
        return;
    }
    printf("%s %s\n", kind, path);
    for (size_t i = 0; i < n; i++)
        printf("  %-*s %12llu  %s\n", width, f[i].name, (unsigned long long)f[i].value, f[i].doc);
}

/* A checkpoint file: its run meta, and for each table the rows held (from "<t>.meta"). */
static int inspect_ckpt_file(const char *file, int json)
{
    CkptReader *r = NULL;
    RunMeta m;
    if (ckpt_reader_open(file, &r) || runmeta_read(r, file, &m)) {
        fprintf(stderr, "psrec inspect: %s\n", psrec_errmsg());
        ckpt_reader_free(&r);
        return EXIT_FAIL;
    }
    const Field fields[] = {
        {"step", m.step, "global steps done"},   {"epoch", m.epoch, "epoch of the next sample"},
        {"word_dim", m.E, "E"},                  {"hidden", m.H, "H"},
        {"title_len", m.title_len, ""},           {"his_len", m.his_len, ""},
        {"negatives", m.K, "K"},                 {"optimizer", m.optimizer, "0 adam, 1 adagrad, 2 sgd"},
        {"vocab_rows", m.vocab_rows, ""},         {"category_rows", m.category_rows, ""},
        {"user_rows", m.user_rows, ""},           {"seed", m.seed, "init seed"},
        {"shards", m.shards, "shard files"},      {"shard", m.shard, "this file's shard"},
    };
    print_fields("checkpoint", file, fields, sizeof fields / sizeof fields[0], json, 14);
    printf(json ? ",\"tables\":{" : "  tables (rows held / key range x width):\n");
    int first = 1;
    for (size_t i = 0; i < ckpt_section_count(r); i++) {
        size_t size;
        const char *name = ckpt_section_name(r, i, &size);
        const char *dot = strrchr(name, '.');
        if (!dot || strcmp(dot, ".meta") || !strcmp(name, "run.meta"))
            continue;
        char table[CKPT_NAME_MAX];
        snprintf(table, sizeof table, "%.*s", (int)(dot - name), name);
        TableSavedInfo tm;
        if (table_saved_info(r, table, &tm))
            continue;
        if (json)
            printf("%s\"%.*s\":{\"rows_held\":%llu,\"rows\":%llu,\"width\":%u}",
                   first ? "" : ",", (int)(dot - name), name, (unsigned long long)tm.held,
                   (unsigned long long)tm.rows, tm.width);
        else
            printf("    %-12.*s %10llu / %llu x %u%s\n", (int)(dot - name), name,
                   (unsigned long long)tm.held, (unsigned long long)tm.rows, tm.width,
                   tm.dense ? " (dense)" : "");
        first = 0;
    }
    if (json)
        printf("}}\n");
    ckpt_reader_free(&r);
    return EXIT_OK;
}

/* PATH names a checkpoint when it is a .ckpt file or a directory ckptdir_resolve accepts. */
static int inspect_ckpt(const char *path, int json, int *handled)
{
    struct stat st;
    char step_dir[4200], file[4400];
    *handled = 0;
    if (stat(path, &st) != 0)
        return EXIT_FAIL;
    if (S_ISREG(st.st_mode)) {
        *handled = 1;
        return inspect_ckpt_file(path, json);
    }
    if (ckptdir_resolve(path, step_dir, sizeof step_dir) != 0)
        return EXIT_FAIL;
    *handled = 1;
    snprintf(file, sizeof file, "%s/shard-0.ckpt", step_dir);
    return inspect_ckpt_file(file, json);
}

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
    int handled, crc = inspect_ckpt(path, json, &handled);
    if (handled)
        return crc;
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
    print_fields("dataset", path, fields, sizeof fields / sizeof fields[0], json, 20);
    if (json)
        printf("}\n");
    dataset_free(&ds);
    return EXIT_OK;
}
