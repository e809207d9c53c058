/* scripts/get-mind.sh run as the real script on local archives (it cannot download here):
 * `psrec gen` data zipped as MIND lays its archives out (MINDsmall_train.zip and
 * MINDsmall_dev.zip, news.tsv and behaviors.tsv at the top level) is unpacked and prepared
 * into DIR/train.db and DIR/dev.db whose `psrec inspect --json` counts equal the counts taken
 * from the generated TSV with shell tools (news, users, impressions, samples = clicks), and the
 * printed train line names both; one archive holding train/ and dev/ works too. The license
 * gate: without --accept-license the script exits 2 before any download (a fake curl/wget on
 * PATH records every call; with the license accepted the same fakes are called, so the probe
 * works). Bad input: unknown size, missing --from file, a file that is not a zip, a zip without
 * behaviors.tsv, a missing split, a prep failure: each a one-line "get-mind.sh: error:" and a
 * non-zero exit. Needs zip and unzip (.ci/packages). */
#include "testutil/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCRIPT TU_SRCDIR "/scripts/get-mind.sh"

static char base[4096]; /* generated data and archives, made once */

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* base/g (psrec gen), base/MINDsmall_train.zip, base/MINDsmall_dev.zip (top-level files, as
 * the official archives), base/both.zip (train/ and dev/ directories). */
static const char *archives(void)
{
    if (base[0])
        return base;
    snprintf(base, sizeof base, "%s", tu_mkdtemp("getmind"));
    char *out = NULL;
    int rc = tu_run(&out,
                    "cd %s && %s gen --out g --seed 5 --news 150 --users 80 "
                    "--train-impressions 400 --dev-impressions 120 --topics 4 && "
                    "(cd g/train && zip -q ../../MINDsmall_train.zip news.tsv behaviors.tsv) && "
                    "(cd g/dev && zip -q ../../MINDsmall_dev.zip news.tsv behaviors.tsv) && "
                    "(cd g && zip -qr ../both.zip train/news.tsv train/behaviors.tsv "
                    "dev/news.tsv dev/behaviors.tsv)",
                    base, TU_PSREC);
    if (rc)
        fprintf(stderr, "%s\n", out);
    free(out);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return base;
}

/* The number the shell command cmd prints. */
static long shell_count(const char *cmd)
{
    char *out = NULL;
    int rc = tu_run(&out, "%s", cmd);
    long v = (rc == 0 && out) ? strtol(out, NULL, 10) : -1;
    free(out);
    CU_ASSERT_EQUAL(rc, 0);
    return v;
}

/* Counts of `psrec inspect --json db` equal those of the split's TSV in tsvdir. */
static void assert_counts(const char *db, const char *tsvdir)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cut -f1 %s/news.tsv | sort -u | wc -l", tsvdir);
    long news = shell_count(cmd);
    snprintf(cmd, sizeof cmd, "cut -f2 %s/behaviors.tsv | sort -u | wc -l", tsvdir);
    long users = shell_count(cmd);
    snprintf(cmd, sizeof cmd, "wc -l < %s/behaviors.tsv", tsvdir);
    long imps = shell_count(cmd);
    snprintf(cmd, sizeof cmd, "cut -f5 %s/behaviors.tsv | tr ' ' '\\n' | grep -c -- '-1$'",
             tsvdir);
    long clicks = shell_count(cmd);
    CU_ASSERT(news > 0 && users > 0 && imps > 0 && clicks > 0);
    char *json = NULL;
    CU_ASSERT_EQUAL_FATAL(tu_run(&json, "%s inspect --json %s", TU_PSREC, db), 0);
    double v = -1;
    CU_ASSERT(tu_json_number(json, "news", &v) && (long)v == news);
    CU_ASSERT(tu_json_number(json, "users", &v) && (long)v == users);
    CU_ASSERT(tu_json_number(json, "impressions", &v) && (long)v == imps);
    CU_ASSERT(tu_json_number(json, "samples", &v) && (long)v == clicks);
    free(json);
}

/* out holds the printed train line naming dir's train.db and dev.db with mind-small.conf. */
static void assert_train_line(const char *out, const char *dir)
{
    char want[16384];
    const char *line = strstr(out, "mpirun ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(line);
    CU_ASSERT(strstr(line, " train configs/mind-small.conf ") != NULL);
    snprintf(want, sizeof want, "--data.train=%s/train.db", dir);
    CU_ASSERT(strstr(line, want) != NULL);
    snprintf(want, sizeof want, "--data.dev=%s/dev.db", dir);
    CU_ASSERT(strstr(line, want) != NULL);
}

static void test_from_split_archives(void)
{
    const char *b = archives();
    char dir[8192], path[16384];
    snprintf(dir, sizeof dir, "%s/out1", b);
    char *out = NULL;
    int rc = tu_run(&out,
                    "%s small %s --from %s/MINDsmall_train.zip --from %s/MINDsmall_dev.zip "
                    "--accept-license --psrec %s </dev/null",
                    SCRIPT, dir, b, b, TU_PSREC);
    if (rc)
        fprintf(stderr, "%s\n", out);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    assert_train_line(out, dir);
    CU_ASSERT(strstr(out, "sha256 ") != NULL);
    free(out);
    snprintf(path, sizeof path, "%s/MINDsmall_train/news.tsv", dir);
    CU_ASSERT(exists(path));
    snprintf(path, sizeof path, "%s/MINDsmall_dev/behaviors.tsv", dir);
    CU_ASSERT(exists(path));

    char db[16384], tsv[16384];
    snprintf(db, sizeof db, "%s/train.db", dir);
    snprintf(tsv, sizeof tsv, "%s/g/train", b);
    assert_counts(db, tsv);
    snprintf(db, sizeof db, "%s/dev.db", dir);
    snprintf(tsv, sizeof tsv, "%s/g/dev", b);
    assert_counts(db, tsv);

    /* dev shares train's vocabulary (prepared with --vocab-from train.db). */
    char *json = NULL;
    CU_ASSERT_EQUAL(tu_run(&json, "%s inspect --json %s", TU_PSREC, db), 0);
    double v = 0;
    CU_ASSERT(tu_json_number(json, "vocab_shared", &v) && v == 1);
    free(json);

    /* A second run refuses to overwrite the datasets unless --force. */
    rc = tu_run(&out, "%s small %s --from %s/MINDsmall_train.zip --from %s/MINDsmall_dev.zip "
                      "--accept-license --psrec %s </dev/null",
                SCRIPT, dir, b, b, TU_PSREC);
    CU_ASSERT_NOT_EQUAL(rc, 0);
    CU_ASSERT(out && strstr(out, "get-mind.sh: error: psrec prep failed for the train split"));
    free(out);
    rc = tu_run(&out, "%s small %s --from %s/MINDsmall_train.zip --from %s/MINDsmall_dev.zip "
                      "--accept-license --psrec %s --force </dev/null",
                SCRIPT, dir, b, b, TU_PSREC);
    CU_ASSERT_EQUAL(rc, 0);
    free(out);
}

static void test_from_one_archive(void)
{
    const char *b = archives();
    char dir[8192], db[16384], tsv[16384];
    snprintf(dir, sizeof dir, "%s/out2", b);
    char *out = NULL;
    int rc = tu_run(&out, "%s small %s --from %s/both.zip --accept-license --psrec %s </dev/null",
                    SCRIPT, dir, b, TU_PSREC);
    if (rc)
        fprintf(stderr, "%s\n", out);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    assert_train_line(out, dir);
    free(out);
    snprintf(db, sizeof db, "%s/train.db", dir);
    snprintf(tsv, sizeof tsv, "%s/g/train", b);
    assert_counts(db, tsv);
    snprintf(db, sizeof db, "%s/dev.db", dir);
    snprintf(tsv, sizeof tsv, "%s/g/dev", b);
    assert_counts(db, tsv);
}

/* Fake curl and wget in b/fakebin that append their arguments to b/downloads and fail. */
static void fake_downloaders(const char *b)
{
    char *out = NULL;
    int rc = tu_run(&out,
                    "mkdir -p %s/fakebin && for t in curl wget; do "
                    "printf '#!/bin/sh\\necho \"$0 $*\" >> %s/downloads\\nexit 7\\n' "
                    "> %s/fakebin/$t && chmod +x %s/fakebin/$t; done",
                    b, b, b, b);
    free(out);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
}

static void test_license_required(void)
{
    const char *b = archives();
    char marker[8192], dir[8192], path[16384];
    fake_downloaders(b);
    snprintf(marker, sizeof marker, "%s/downloads", b);
    unlink(marker);
    snprintf(dir, sizeof dir, "%s/out3", b);

    /* Not accepted: exit 2, the terms' URL, no download, nothing prepared. */
    char *out = NULL;
    int rc = tu_run(&out, "PATH=%s/fakebin:$PATH %s small %s --psrec %s </dev/null", b, SCRIPT,
                    dir, TU_PSREC);
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT(out && strstr(out, "https://github.com/msnews/MIND/blob/master/MSR%20License_Data.pdf"));
    CU_ASSERT(out && strstr(out, "--accept-license"));
    free(out);
    CU_ASSERT(!exists(marker));
    snprintf(path, sizeof path, "%s/train.db", dir);
    CU_ASSERT(!exists(path));

    /* Not accepted with --from either: no unpacking, no prep. */
    rc = tu_run(&out, "%s small %s --from %s/MINDsmall_train.zip --from %s/MINDsmall_dev.zip "
                      "--psrec %s </dev/null",
                SCRIPT, dir, b, b, TU_PSREC);
    CU_ASSERT_EQUAL(rc, 2);
    free(out);
    snprintf(path, sizeof path, "%s/MINDsmall_train", dir);
    CU_ASSERT(!exists(path));

    /* Accepted, no --from: the download is attempted (the probe sees it) at the official
     * URL, fails here, and the script says so. */
    rc = tu_run(&out, "PATH=%s/fakebin:$PATH %s small %s --accept-license --psrec %s </dev/null",
                b, SCRIPT, dir, TU_PSREC);
    CU_ASSERT_NOT_EQUAL(rc, 0);
    CU_ASSERT(out && strstr(out, "get-mind.sh: error: download of "));
    free(out);
    char *calls = tu_read_file(marker, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(calls);
    CU_ASSERT(strstr(calls, "https://mind201910small.blob.core.windows.net/release/"
                            "MINDsmall_train.zip") != NULL);
    free(calls);
}

/* Runs the script with args (size, DIR, options) and the license accepted; checks a non-zero
 * exit (exactly want_rc when >= 0) and a "get-mind.sh: error:" line containing msg. */
static void expect_error(int want_rc, const char *msg, const char *args)
{
    char *out = NULL;
    int rc = tu_run(&out, "%s %s --accept-license --psrec %s </dev/null", SCRIPT, args, TU_PSREC);
    if (want_rc >= 0)
        CU_ASSERT_EQUAL(rc, want_rc);
    CU_ASSERT_NOT_EQUAL(rc, 0);
    /* the error line: starts with "get-mind.sh: error:" and contains msg */
    int found = 0;
    for (const char *l = out; l && (l = strstr(l, "get-mind.sh: error:")) != NULL; l++) {
        const char *end = strchr(l, '\n');
        const char *m = strstr(l, msg);
        if (m && (!end || m < end))
            found = 1;
    }
    if (!found)
        fprintf(stderr, "\nwanted an error line with \"%s\" in:\n%s\n", msg, out ? out : "");
    CU_ASSERT(found);
    free(out);
}

static void test_bad_input(void)
{
    const char *b = archives();
    char args[16384];
    char *out = NULL;

    snprintf(args, sizeof args, "medium %s/bad0", b);
    expect_error(2, "unknown MIND size 'medium'", args);

    snprintf(args, sizeof args, "small %s/bad1 --from %s/nope_train.zip --from %s/MINDsmall_dev.zip",
             b, b, b);
    expect_error(-1, "--from file", args);

    /* Not a zip at all. */
    CU_ASSERT_EQUAL_FATAL(tu_run(&out, "mkdir -p %s/junk && echo 'not a zip' > "
                                       "%s/junk/MINDsmall_train.zip",
                                 b, b),
                          0);
    free(out);
    snprintf(args, sizeof args,
             "small %s/bad2 --from %s/junk/MINDsmall_train.zip --from %s/MINDsmall_dev.zip", b, b,
             b);
    expect_error(-1, "is not a valid zip archive", args);

    /* A zip without behaviors.tsv. */
    CU_ASSERT_EQUAL_FATAL(tu_run(&out, "mkdir -p %s/nobeh && cd %s/g/train && "
                                       "zip -q %s/nobeh/MINDsmall_train.zip news.tsv",
                                 b, b, b),
                          0);
    free(out);
    snprintf(args, sizeof args,
             "small %s/bad3 --from %s/nobeh/MINDsmall_train.zip --from %s/MINDsmall_dev.zip", b,
             b, b);
    expect_error(-1, "holds no MIND split", args);

    /* The dev split missing. */
    snprintf(args, sizeof args, "small %s/bad4 --from %s/MINDsmall_train.zip", b, b);
    expect_error(-1, "no --from archive holds the dev split", args);

    /* A split archive whose name does not say which split it is. */
    CU_ASSERT_EQUAL_FATAL(tu_run(&out, "cp %s/MINDsmall_train.zip %s/mystery.zip", b, b), 0);
    free(out);
    snprintf(args, sizeof args, "small %s/bad5 --from %s/mystery.zip --from %s/MINDsmall_dev.zip",
             b, b, b);
    expect_error(-1, "but its name does not say which", args);

    /* A valid archive whose behaviors.tsv psrec prep rejects. */
    CU_ASSERT_EQUAL_FATAL(tu_run(&out, "mkdir -p %s/badtsv && cp %s/g/train/news.tsv %s/badtsv/ "
                                       "&& printf 'only\\ttwo columns\\n' > "
                                       "%s/badtsv/behaviors.tsv && cd %s/badtsv && zip -q "
                                       "MINDsmall_train.zip news.tsv behaviors.tsv",
                                 b, b, b, b, b),
                          0);
    free(out);
    snprintf(args, sizeof args,
             "small %s/bad6 --from %s/badtsv/MINDsmall_train.zip --from %s/MINDsmall_dev.zip", b,
             b, b);
    expect_error(-1, "psrec prep failed for the train split", args);
}

static void cleanup(void)
{
    if (base[0])
        tu_rmtree(base);
}

int main(void)
{
    static const TuTest tests[] = {
        {"split archives as MIND ships them: both splits prepared", test_from_split_archives},
        {"one archive holding train/ and dev/", test_from_one_archive},
        {"license must be accepted before any download", test_license_required},
        {"bad input: one clear error line, non-zero exit", test_bad_input},
        {NULL, NULL},
    };
    tu_add_suite("getmind", tests);
    int rc = tu_run_all();
    cleanup();
    return rc;
}
