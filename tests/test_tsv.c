/* TSV suite: the line reader (endings, chunk boundaries, very long lines, a missing final
 * newline, line numbers and byte counts) and the news/behaviors parsers on every quirk real
 * MIND files have, plus the malformed lines prep must reject with a useful reason. Rows are
 * made up in MIND's shape; no MIND data is used. */
#include "common/error.h"
#include "common/tsv.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmpdir[4096];

/* Write n bytes (NULs allowed) to tmpdir/name; returns the path (static, one at a time). */
static const char *write_bytes(const char *name, const char *p, size_t n)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL_FATAL(fwrite(p, 1, n, f), n);
    CU_ASSERT_EQUAL_FATAL(fclose(f), 0);
    return path;
}

static const char *write_text(const char *name, const char *text)
{
    return write_bytes(name, text, strlen(text));
}

static int span_is(TsvSpan s, const char *want)
{
    return s.n == strlen(want) && (s.n == 0 || memcmp(s.p, want, s.n) == 0);
}

/* Next line must be want (a C string), numbered lineno, with the given terminated flag. */
static void expect_line(LineReader *lr, const char *want, uint64_t lineno, int terminated)
{
    const char *line = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(lr_next(lr, &line, &len), 0);
    CU_ASSERT_EQUAL(len, strlen(want));
    CU_ASSERT(len == strlen(want) && (len == 0 || memcmp(line, want, len) == 0));
    CU_ASSERT_EQUAL(lr_lineno(lr), lineno);
    CU_ASSERT_EQUAL(lr_terminated(lr), terminated);
}

static void expect_end(LineReader *lr)
{
    const char *line;
    size_t len;
    CU_ASSERT_EQUAL(lr_next(lr, &line, &len), PSREC_E_NOTFOUND);
    /* And stays at the end. */
    CU_ASSERT_EQUAL(lr_next(lr, &line, &len), PSREC_E_NOTFOUND);
}

/* ---------------------------------------------------------------- line reader */

static void test_lr_basic(void)
{
    const char *text = "a\nbb\n\nccc";
    LineReader *lr = NULL;
    CU_ASSERT_EQUAL_FATAL(lr_open(&lr, write_text("basic.tsv", text)), 0);
    CU_ASSERT_EQUAL(lr_lineno(lr), 0);
    CU_ASSERT_EQUAL(lr_terminated(lr), 1);
    expect_line(lr, "a", 1, 1);
    CU_ASSERT_EQUAL(lr_bytes(lr), 2);
    expect_line(lr, "bb", 2, 1);
    expect_line(lr, "", 3, 1);
    /* The last line has no newline: still a line, flagged unterminated. */
    expect_line(lr, "ccc", 4, 0);
    CU_ASSERT_EQUAL(lr_bytes(lr), strlen(text));
    expect_end(lr);
    CU_ASSERT_EQUAL(lr_lineno(lr), 4);
    lr_close(&lr);
    CU_ASSERT_PTR_NULL(lr);
    lr_close(&lr);
}

static void test_lr_crlf(void)
{
    /* CRLF endings are stripped; a lone '\r' inside a line is data; the end of the file after
     * the last "\r\n" is not an extra empty line. */
    const char *text = "x\r\ny\tz\r\na\rb\r\n\r\n";
    LineReader *lr = NULL;
    CU_ASSERT_EQUAL_FATAL(lr_open(&lr, write_text("crlf.tsv", text)), 0);
    expect_line(lr, "x", 1, 1);
    expect_line(lr, "y\tz", 2, 1);
    expect_line(lr, "a\rb", 3, 1);
    expect_line(lr, "", 4, 1);
    expect_end(lr);
    CU_ASSERT_EQUAL(lr_bytes(lr), strlen(text));
    lr_close(&lr);

    /* An unterminated last line loses a trailing '\r' too (a CRLF file cut after the CR). */
    CU_ASSERT_EQUAL_FATAL(lr_open(&lr, write_text("cr-end.tsv", "p\r\nq\r")), 0);
    expect_line(lr, "p", 1, 1);
    expect_line(lr, "q", 2, 0);
    expect_end(lr);
    lr_close(&lr);
}

static void test_lr_empty_files(void)
{
    LineReader *lr = NULL;
    CU_ASSERT_EQUAL_FATAL(lr_open(&lr, write_text("empty.tsv", "")), 0);
    expect_end(lr);
    CU_ASSERT_EQUAL(lr_lineno(lr), 0);
    CU_ASSERT_EQUAL(lr_bytes(lr), 0);
    lr_close(&lr);

    CU_ASSERT_EQUAL_FATAL(lr_open(&lr, write_text("nl.tsv", "\n")), 0);
    expect_line(lr, "", 1, 1);
    expect_end(lr);
    lr_close(&lr);
}

static void test_lr_nul_bytes(void)
{
    LineReader *lr = NULL;
    CU_ASSERT_EQUAL_FATAL(lr_open(&lr, write_bytes("nul.tsv", "a\0b\nc", 5)), 0);
    const char *line;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(lr_next(lr, &line, &len), 0);
    CU_ASSERT(len == 3 && memcmp(line, "a\0b", 3) == 0);
    expect_line(lr, "c", 2, 0);
    lr_close(&lr);
}

static void test_lr_missing_file(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/no-such.tsv", tmpdir);
    static char dummy;
    LineReader *lr = (LineReader *)(void *)&dummy; /* must be overwritten with NULL */
    CU_ASSERT_EQUAL(lr_open(&lr, path), ENOENT);
    CU_ASSERT_PTR_NULL(lr);
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "no-such.tsv"));
}

/* Line k of the generated file: length from a fixed pseudo-random sequence, bytes from k. */
static size_t gen_line(uint64_t k, char *out)
{
    uint64_t x = k * 0x9e3779b97f4a7c15ULL;
    size_t n = (size_t)((x >> 40) % 3000);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)('!' + (k + i) % 90);
    return n;
}

/* ~5 MB of lines of 0..2999 bytes, every fifth with CRLF: lines cross every chunk boundary. */
static void test_lr_chunk_boundaries(void)
{
    size_t cap = 6u << 20, n = 0;
    char *buf = malloc(cap), line[3000];
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    uint64_t nlines = 0;
    while (n < (5u << 20)) {
        size_t len = gen_line(nlines, line);
        memcpy(buf + n, line, len);
        n += len;
        if (nlines % 5 == 0)
            buf[n++] = '\r';
        buf[n++] = '\n';
        nlines++;
    }
    LineReader *lr = NULL;
    CU_ASSERT_EQUAL_FATAL(lr_open(&lr, write_bytes("chunks.tsv", buf, n)), 0);
    const char *got;
    size_t len;
    uint64_t k = 0, bad = 0;
    while (lr_next(lr, &got, &len) == 0) {
        size_t wl = gen_line(k, line);
        bad += !(len == wl && memcmp(got, line, wl) == 0);
        k++;
        bad += lr_lineno(lr) != k;
    }
    CU_ASSERT_EQUAL(k, nlines);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(lr_bytes(lr), n);
    lr_close(&lr);
    free(buf);
}

/* A CRLF whose '\r' is the last byte of the first 1 MiB read and whose '\n' starts the next. */
static void test_lr_crlf_across_reads(void)
{
    size_t mib = 1u << 20, n = mib + 6;
    char *buf = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    memset(buf, 'x', mib - 1);
    buf[mib - 1] = '\r';
    memcpy(buf + mib, "\nyy\r\n", 5);
    buf[n - 1] = 'z';
    LineReader *lr = NULL;
    CU_ASSERT_EQUAL_FATAL(lr_open(&lr, write_bytes("crlf-edge.tsv", buf, n)), 0);
    const char *got;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(lr_next(lr, &got, &len), 0);
    CU_ASSERT_EQUAL(len, mib - 1);
    CU_ASSERT(got[0] == 'x' && got[len - 1] == 'x');
    expect_line(lr, "yy", 2, 1);
    expect_line(lr, "z", 3, 0);
    expect_end(lr);
    lr_close(&lr);
    free(buf);
}

/* ---------------------------------------------------------------- field split */

static void test_split(void)
{
    TsvSpan f[4];
    CU_ASSERT_EQUAL(tsv_split("a\tbb\t\tc", 7, f, 4), 4);
    CU_ASSERT(span_is(f[0], "a") && span_is(f[1], "bb") && span_is(f[2], "") && span_is(f[3], "c"));
    CU_ASSERT_EQUAL(tsv_split("a\tb\tc\td\te\tf", 11, f, 4), 6);
    CU_ASSERT(span_is(f[3], "d"));
    CU_ASSERT_EQUAL(tsv_split("", 0, f, 4), 1);
    CU_ASSERT_EQUAL(f[0].n, 0);
    CU_ASSERT_EQUAL(tsv_split("\t", 1, f, 4), 2);
    CU_ASSERT(span_is(f[0], "") && span_is(f[1], ""));
    CU_ASSERT_EQUAL(tsv_split("x\ty", 3, f, 0), 2);
    /* len bounds the line, not a NUL. */
    CU_ASSERT_EQUAL(tsv_split("p\tq\tr", 3, f, 4), 2);
    CU_ASSERT(span_is(f[1], "q"));
}

/* ---------------------------------------------------------------- news.tsv */

static int parse_news(const char *line, NewsRow *row, char *reason, size_t rs)
{
    return tsv_parse_news(line, strlen(line), row, reason, rs);
}

static void test_news_ok(void)
{
    NewsRow r;
    char why[256] = "";
    const char *line = "N55528\tlifestyle\tlifestyleroyals\tThe Brands Queen Elizabeth Loves\t"
                       "Shop the notebooks.\thttps://example.com/n55528\t[{\"Label\": \"X\"}]\t[]";
    CU_ASSERT_EQUAL_FATAL(parse_news(line, &r, why, sizeof why), 0);
    CU_ASSERT(span_is(r.id, "N55528"));
    CU_ASSERT(span_is(r.category, "lifestyle"));
    CU_ASSERT(span_is(r.subcategory, "lifestyleroyals"));
    CU_ASSERT(span_is(r.title, "The Brands Queen Elizabeth Loves"));
    CU_ASSERT(span_is(r.abstract, "Shop the notebooks."));
    CU_ASSERT(span_is(r.url, "https://example.com/n55528"));
    CU_ASSERT(span_is(r.title_entities, "[{\"Label\": \"X\"}]"));
    CU_ASSERT(span_is(r.abstract_entities, "[]"));

    /* Empty abstract, subcategory and entities are normal in MIND. */
    CU_ASSERT_EQUAL(parse_news("N1\tnews\t\tTitle only\t\t\t\t", &r, why, sizeof why), 0);
    CU_ASSERT_EQUAL(r.abstract.n, 0);
    CU_ASSERT_EQUAL(r.subcategory.n, 0);
    CU_ASSERT_EQUAL(r.abstract_entities.n, 0);
    CU_ASSERT(span_is(r.title, "Title only"));

    /* Non-ASCII UTF-8 title passes through byte for byte. */
    const char *title = "Caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\xa5";
    char buf[256];
    snprintf(buf, sizeof buf, "N2\tfoodanddrink\tcafes\t%s\tabs\turl\t[]\t[]", title);
    CU_ASSERT_EQUAL(parse_news(buf, &r, why, sizeof why), 0);
    CU_ASSERT(span_is(r.title, title));
}

static void expect_news_error(const char *line, const char *want)
{
    NewsRow r;
    char why[256] = "";
    CU_ASSERT_EQUAL(tsv_parse_news(line, strlen(line), &r, why, sizeof why), PSREC_E_PARSE);
    CU_ASSERT_STRING_EQUAL(why, want);
    if (strcmp(why, want) != 0)
        fprintf(stderr, "\n  got: %s\n want: %s\n", why, want);
}

static void test_news_malformed(void)
{
    expect_news_error("", "empty line");
    expect_news_error("N1\tnews\tsub\ttitle\tabs\turl\t[]",
                      "7 fields, a news line needs 8");
    expect_news_error("N1\tnews\tsub\ttitle\tabs\turl\t[]\t[]\textra",
                      "9 fields, a news line needs 8");
    expect_news_error("N1 news sub title", "1 field, a news line needs 8");
    expect_news_error("\tnews\tsub\ttitle\tabs\turl\t[]\t[]", "empty news id");
    expect_news_error("N 1\tnews\tsub\ttitle\tabs\turl\t[]\t[]",
                      "news id 'N 1' contains a space");
    /* Ids may contain '-': a label is only a trailing "-0" / "-1" in behaviors. */
    {
        NewsRow dr;
        const char *dashed = "N-1\tnews\tx\tTitle\ta\tu\t[]\t[]";
        CU_ASSERT_EQUAL(tsv_parse_news(dashed, strlen(dashed), &dr, NULL, 0), 0);
        CU_ASSERT(dr.id.n == 3 && memcmp(dr.id.p, "N-1", 3) == 0);
    }
    expect_news_error("N1\t\tsub\ttitle\tabs\turl\t[]\t[]", "empty category");
    /* A truncated line (cut in the title) shows up as a wrong field count. */
    expect_news_error("N1\tnews\tsub\tThe tit", "4 fields, a news line needs 8");
    /* Long offending text is quoted only in part. */
    expect_news_error("N123456789012345678901234567890123456789012345678901234567890 x"
                      "\tnews\tsub\ttitle\tabs\turl\t[]\t[]",
                      "news id 'N12345678901234567890123456789012345678901234567...' "
                      "contains a space");
}

static void test_reason_buffer(void)
{
    NewsRow r;
    /* No reason buffer, and a tiny one: still the code, never an overflow. */
    CU_ASSERT_EQUAL(tsv_parse_news("x", 1, &r, NULL, 0), PSREC_E_PARSE);
    char small[6] = "#####";
    CU_ASSERT_EQUAL(tsv_parse_news("x", 1, &r, small, sizeof small), PSREC_E_PARSE);
    CU_ASSERT_STRING_EQUAL(small, "1 fie");
}

/* ---------------------------------------------------------------- behaviors.tsv */

static int parse_beh(const char *line, BehaviorRow *row, char *why, size_t ws)
{
    return tsv_parse_behavior(line, strlen(line), row, why, ws);
}

/* The history ids and candidates of a parsed row, joined as "id,id" and "id:label,...". */
static void joined(const BehaviorRow *r, char *his, char *cands, size_t size)
{
    size_t pos = 0, o = 0;
    TsvSpan id;
    his[0] = cands[0] = '\0';
    while (tsv_history_next(r, &pos, &id))
        o += (size_t)snprintf(his + o, size - o, "%s%.*s", o ? "," : "", (int)id.n, id.p);
    pos = 0;
    o = 0;
    int label;
    while (tsv_candidate_next(r, &pos, &id, &label))
        o += (size_t)snprintf(cands + o, size - o, "%s%.*s:%d", o ? "," : "", (int)id.n, id.p,
                              label);
}

/* tsv_parse_behavior_ids hands out exactly what the iterators give (ids, clicks: label 1),
 * with every cap: the first cap entries when the line has more, the same row and the same
 * rejections as tsv_parse_behavior. */
static void test_behavior_ids(void)
{
    const char *lines[] = {
        "1\tU1\t11/11/2019 9:05:58 AM\tN55189 N42782  N34694\tN55689-1 N3-5-0 N20678-1",
        "2\tU2\t11/11/2019 9:05:58 AM\t\tN1-0 N2-1",
        "3\tU3\t11/11/2019 9:05:58 AM\tN9 N8\tN7 N6-x N5",
        "4\tU4\t11/11/2019 9:05:58 AM\tN9\tN7-1 N6",
    };
    for (size_t l = 0; l < sizeof lines / sizeof *lines; l++) {
        const char *line = lines[l];
        BehaviorRow want;
        char why_want[256] = "", why[256] = "";
        int rc_want = tsv_parse_behavior(line, strlen(line), &want, why_want, sizeof why_want);
        TsvSpan exp[16];
        unsigned char exp_click[16] = {0};
        size_t n = 0, pos = 0;
        int label;
        while (rc_want == 0 && tsv_history_next(&want, &pos, &exp[n]))
            n++;
        pos = 0;
        while (rc_want == 0 && tsv_candidate_next(&want, &pos, &exp[n], &label))
            exp_click[n++] = label == 1;
        for (size_t cap = 0; cap <= n + 2; cap++) {
            TsvSpan ids[16];
            unsigned char clicked[16];
            memset(ids, 0, sizeof ids);
            memset(clicked, 7, sizeof clicked);
            BehaviorRow r;
            int rc = tsv_parse_behavior_ids(line, strlen(line), &r, cap ? ids : NULL,
                                            cap ? clicked : NULL, cap, why, sizeof why);
            CU_ASSERT_EQUAL(rc, rc_want);
            CU_ASSERT_STRING_EQUAL(why, why_want);
            if (rc)
                continue;
            CU_ASSERT_EQUAL(r.n_history, want.n_history);
            CU_ASSERT_EQUAL(r.n_candidates, want.n_candidates);
            CU_ASSERT_EQUAL(r.n_clicks, want.n_clicks);
            CU_ASSERT_EQUAL(r.labeled, want.labeled);
            size_t stored = cap < n ? cap : n;
            for (size_t k = 0; k < stored; k++) {
                CU_ASSERT(ids[k].p == exp[k].p && ids[k].n == exp[k].n);
                CU_ASSERT_EQUAL(clicked[k], exp_click[k]);
            }
            for (size_t k = stored; k < 16; k++) /* nothing past cap or past the ids */
                CU_ASSERT(ids[k].p == NULL && clicked[k] == 7);
        }
    }
}

/* Ids of every length 1..19 after 1..3 spaces, so the word scan meets a space at every offset
 * of its 8-byte steps, at the field's end and just before it; checked against the words that
 * made the line. */
static void test_behavior_id_lengths(void)
{
    char line[2048], want[20][24];
    int o = snprintf(line, sizeof line, "9\tU9\t11/11/2019 9:05:58 AM\t");
    for (int k = 0; k < 19; k++) {
        for (int j = 0; j <= k; j++)
            want[k][j] = (char)('a' + (k + j) % 26);
        want[k][k + 1] = '\0';
        o += snprintf(line + o, sizeof line - (size_t)o, "%.*s%s", 1 + k % 3, "   ", want[k]);
    }
    o += snprintf(line + o, sizeof line - (size_t)o, "\t%s-1", want[18]);
    BehaviorRow r;
    TsvSpan ids[32];
    unsigned char clicked[32];
    char why[256] = "";
    CU_ASSERT_EQUAL_FATAL(tsv_parse_behavior_ids(line, (size_t)o, &r, ids, clicked, 32, why,
                                                 sizeof why), 0);
    CU_ASSERT_EQUAL_FATAL(r.n_history, 19);
    CU_ASSERT_EQUAL_FATAL(r.n_candidates, 1);
    for (int k = 0; k < 19; k++)
        CU_ASSERT(ids[k].n == strlen(want[k]) && memcmp(ids[k].p, want[k], ids[k].n) == 0);
    CU_ASSERT(ids[19].n == 19 && memcmp(ids[19].p, want[18], 19) == 0 && clicked[19] == 1);
}

static void test_behavior_labeled(void)
{
    BehaviorRow r;
    char why[256] = "", his[256], cands[256];
    const char *line = "1\tU13740\t11/11/2019 9:05:58 AM\tN55189 N42782 N34694\t"
                       "N55689-1 N35729-0 N20678-0";
    CU_ASSERT_EQUAL_FATAL(parse_beh(line, &r, why, sizeof why), 0);
    CU_ASSERT(span_is(r.impression_id, "1"));
    CU_ASSERT(span_is(r.user_id, "U13740"));
    CU_ASSERT(span_is(r.time, "11/11/2019 9:05:58 AM"));
    CU_ASSERT_EQUAL(r.n_history, 3);
    CU_ASSERT_EQUAL(r.n_candidates, 3);
    CU_ASSERT_EQUAL(r.n_clicks, 1);
    CU_ASSERT_EQUAL(r.labeled, 1);
    joined(&r, his, cands, sizeof his);
    CU_ASSERT_STRING_EQUAL(his, "N55189,N42782,N34694");
    CU_ASSERT_STRING_EQUAL(cands, "N55689:1,N35729:0,N20678:0");
}

static void test_behavior_empty_history(void)
{
    BehaviorRow r;
    char why[256] = "", his[256], cands[256];
    CU_ASSERT_EQUAL_FATAL(parse_beh("2\tU1\t11/12/2019 1:00:00 PM\t\tN1-0 N2-1 N3-1", &r, why,
                                    sizeof why), 0);
    CU_ASSERT_EQUAL(r.n_history, 0);
    CU_ASSERT_EQUAL(r.n_clicks, 2);
    joined(&r, his, cands, sizeof his);
    CU_ASSERT_STRING_EQUAL(his, "");
    CU_ASSERT_STRING_EQUAL(cands, "N1:0,N2:1,N3:1");
}

static void test_behavior_spaces(void)
{
    /* Repeated, leading and trailing spaces in history and impressions are tolerated. */
    BehaviorRow r;
    char why[256] = "", his[256], cands[256];
    CU_ASSERT_EQUAL_FATAL(parse_beh("3\tU2\t1/1/2019 12:00:00 AM\t  N1   N2 \t N3-1  N4-0 ",
                                    &r, why, sizeof why), 0);
    CU_ASSERT_EQUAL(r.n_history, 2);
    CU_ASSERT_EQUAL(r.n_candidates, 2);
    joined(&r, his, cands, sizeof his);
    CU_ASSERT_STRING_EQUAL(his, "N1,N2");
    CU_ASSERT_STRING_EQUAL(cands, "N3:1,N4:0");
    /* A history of only spaces is empty. */
    CU_ASSERT_EQUAL_FATAL(parse_beh("4\tU2\t1/1/2019 12:00:00 AM\t   \tN3-1", &r, why,
                                    sizeof why), 0);
    CU_ASSERT_EQUAL(r.n_history, 0);
}

static void test_behavior_unlabeled(void)
{
    /* The MIND test split: candidates carry no label. */
    BehaviorRow r;
    char why[256] = "", his[256], cands[256];
    CU_ASSERT_EQUAL_FATAL(parse_beh("5\tU3\t11/15/2019 8:55:22 AM\tN9\tN5 N6 N7", &r, why,
                                    sizeof why), 0);
    CU_ASSERT_EQUAL(r.labeled, 0);
    CU_ASSERT_EQUAL(r.n_candidates, 3);
    CU_ASSERT_EQUAL(r.n_clicks, 0);
    joined(&r, his, cands, sizeof his);
    CU_ASSERT_STRING_EQUAL(his, "N9");
    CU_ASSERT_STRING_EQUAL(cands, "N5:-1,N6:-1,N7:-1");
}

static void test_behavior_times(void)
{
    static const char *good[] = {
        "1/1/2019 12:00:00 AM", "12/31/2019 12:59:59 PM", "11/15/2019 8:55:22 AM",
        "01/05/2019 01:00:00 PM", NULL,
    };
    static const char *bad[] = {
        "13/40/2019 1:00:00 AM", "0/1/2019 1:00:00 AM", "1/0/2019 1:00:00 AM",
        "1/32/2019 1:00:00 AM", "11/11/2019 13:00:00 PM", "11/11/2019 0:00:00 AM",
        "11/11/2019 9:5:58 AM", "11/11/2019 9:05:60 AM", "11/11/2019 9:60:00 AM",
        "11/11/19 9:05:58 AM", "11/11/20190 9:05:58 AM", "11/11/2019 9:05:58",
        "11/11/2019 9:05:58 am", "11/11/2019 9:05:58 AMX", "11/11/2019  9:05:58 AM",
        "2019-11-11 09:05:58", "111/11/2019 9:05:58 AM", "11/11/2019 9:05:5 AM",
        "11/11/2019 9:05:58 XM", "", NULL,
    };
    BehaviorRow r;
    char line[256], why[256], want[256];
    for (const char **t = good; *t; t++) {
        snprintf(line, sizeof line, "1\tU1\t%s\t\tN1-1", *t);
        why[0] = '\0';
        CU_ASSERT_EQUAL(parse_beh(line, &r, why, sizeof why), 0);
        if (why[0])
            fprintf(stderr, "\n  rejected good time '%s': %s\n", *t, why);
    }
    for (const char **t = bad; *t; t++) {
        snprintf(line, sizeof line, "1\tU1\t%s\t\tN1-1", *t);
        snprintf(want, sizeof want, "time '%s' is not M/D/YYYY h:mm:ss AM|PM", *t);
        why[0] = '\0';
        CU_ASSERT_EQUAL(parse_beh(line, &r, why, sizeof why), PSREC_E_PARSE);
        CU_ASSERT_STRING_EQUAL(why, want);
        if (strcmp(why, want) != 0)
            fprintf(stderr, "\n  time '%s' got: %s\n", *t, why);
    }
}

static void expect_beh_error(const char *line, const char *want)
{
    BehaviorRow r;
    char why[256] = "";
    CU_ASSERT_EQUAL(tsv_parse_behavior(line, strlen(line), &r, why, sizeof why), PSREC_E_PARSE);
    CU_ASSERT_STRING_EQUAL(why, want);
    if (strcmp(why, want) != 0)
        fprintf(stderr, "\n  got: %s\n want: %s\n", why, want);
}

static void test_behavior_malformed(void)
{
    const char *t = "11/11/2019 9:05:58 AM";
    char line[512];
    expect_beh_error("", "empty line");
    snprintf(line, sizeof line, "1\tU1\t%s\tN1", t);
    expect_beh_error(line, "4 fields, a behaviors line needs 5");
    snprintf(line, sizeof line, "1\tU1\t%s\tN1\tN2-1\textra", t);
    expect_beh_error(line, "6 fields, a behaviors line needs 5");
    snprintf(line, sizeof line, "\tU1\t%s\tN1\tN2-1", t);
    expect_beh_error(line, "empty impression id");
    snprintf(line, sizeof line, "1\t\t%s\tN1\tN2-1", t);
    expect_beh_error(line, "empty user id");
    snprintf(line, sizeof line, "1\tU 1\t%s\tN1\tN2-1", t);
    expect_beh_error(line, "user id 'U 1' contains a space");
    snprintf(line, sizeof line, "1\tU1\t%s\tN1\tN123-2", t);
    expect_beh_error(line, "candidate 'N123-2': label must be 0 or 1");
    snprintf(line, sizeof line, "1\tU1\t%s\tN1\tN1-0 N2-10", t);
    expect_beh_error(line, "candidate 'N2-10': label must be 0 or 1");
    snprintf(line, sizeof line, "1\tU1\t%s\tN1\tN1-0 N2-", t);
    expect_beh_error(line, "candidate 'N2-': label must be 0 or 1");
    snprintf(line, sizeof line, "1\tU1\t%s\tN1\tN1-x", t);
    expect_beh_error(line, "candidate 'N1-x': label must be 0 or 1");
    snprintf(line, sizeof line, "1\tU1\t%s\tN1\t-1", t);
    expect_beh_error(line, "candidate '-1': empty news id");
    /* Labeled then unlabeled, and the reverse. */
    snprintf(line, sizeof line, "1\tU1\t%s\tN1\tN1-0 N2-1 N3", t);
    expect_beh_error(line, "candidate 3 'N3': mixes labeled and unlabeled candidates");
    snprintf(line, sizeof line, "1\tU1\t%s\tN1\tN1 N2-1", t);
    expect_beh_error(line, "candidate 2 'N2-1': mixes labeled and unlabeled candidates");
    snprintf(line, sizeof line, "1\tU1\t%s\tN1\t", t);
    expect_beh_error(line, "no candidates: an impression needs at least one");
    snprintf(line, sizeof line, "1\tU1\t%s\tN1\t   ", t);
    expect_beh_error(line, "no candidates: an impression needs at least one");
    /* Lines cut short, as the last line of a truncated file is. */
    expect_beh_error("1\tU1\t11/11/2019 9:0", "3 fields, a behaviors line needs 5");
    snprintf(line, sizeof line, "1\tU1\t%s\tN1\tN1-0 N2", t);
    expect_beh_error(line, "candidate 2 'N2': mixes labeled and unlabeled candidates");
    snprintf(line, sizeof line, "1\tU1\t%s\tN1\tN1-0 N2-", t);
    expect_beh_error(line, "candidate 'N2-': label must be 0 or 1");
}

/* ---------------------------------------------------------------- whole files */

static void test_file_crlf_utf8(void)
{
    /* A news.tsv written with CRLF endings and non-ASCII titles, read and parsed. */
    const char *text =
        "N1\tnews\tnewsworld\tZ\xc3\xbcrich \xe2\x80\x94 caf\xc3\xa9s\tAbstract.\turl1\t[]\t[]\r\n"
        "N2\tsports\tfootball_nfl\tTitle two\t\turl2\t[]\t[]\r\n";
    LineReader *lr = NULL;
    CU_ASSERT_EQUAL_FATAL(lr_open(&lr, write_text("news-crlf.tsv", text)), 0);
    const char *line;
    size_t len;
    NewsRow r;
    char why[256] = "";
    CU_ASSERT_EQUAL_FATAL(lr_next(lr, &line, &len), 0);
    CU_ASSERT_EQUAL_FATAL(tsv_parse_news(line, len, &r, why, sizeof why), 0);
    CU_ASSERT(span_is(r.title, "Z\xc3\xbcrich \xe2\x80\x94 caf\xc3\xa9s"));
    CU_ASSERT_EQUAL_FATAL(lr_next(lr, &line, &len), 0);
    CU_ASSERT_EQUAL_FATAL(tsv_parse_news(line, len, &r, why, sizeof why), 0);
    /* The CR did not stick to the last field. */
    CU_ASSERT(span_is(r.abstract_entities, "[]"));
    CU_ASSERT(span_is(r.abstract, ""));
    expect_end(lr);
    lr_close(&lr);

    /* Same for behaviors: the last candidate's label is "1", not "1\r". */
    CU_ASSERT_EQUAL_FATAL(lr_open(&lr, write_text("beh-crlf.tsv",
        "1\tU1\t11/11/2019 9:05:58 AM\tN1\tN2-0 N3-1\r\n")), 0);
    BehaviorRow b;
    CU_ASSERT_EQUAL_FATAL(lr_next(lr, &line, &len), 0);
    CU_ASSERT_EQUAL(tsv_parse_behavior(line, len, &b, why, sizeof why), 0);
    CU_ASSERT_EQUAL(b.n_clicks, 1);
    lr_close(&lr);
}

/* A behaviors file with a bad line in the middle and a truncated, unterminated last line:
 * the line numbers point at them. */
static void test_file_bad_lines(void)
{
    const char *text =
        "1\tU1\t11/11/2019 9:05:58 AM\tN1\tN2-0 N3-1\n"
        "2\tU2\t11/11/2019 9:06:00 AM\t\tN2-1\n"
        "3\tU3\t11/11/2019 9:07:00 AM\tN1\tN2-0 N3-7\n"
        "4\tU4\t11/11/2019 9:08:00 AM\tN1 N2\tN4-1 N5-0\n"
        "5\tU5\t11/11/2019 9:09:00 AM\tN1\tN4-1 N5-";
    LineReader *lr = NULL;
    CU_ASSERT_EQUAL_FATAL(lr_open(&lr, write_text("beh-bad.tsv", text)), 0);
    const char *line;
    size_t len;
    BehaviorRow r;
    char why[256];
    uint64_t bad[8];
    size_t nbad = 0, good = 0;
    int rc;
    while ((rc = lr_next(lr, &line, &len)) == 0) {
        if (tsv_parse_behavior(line, len, &r, why, sizeof why) == 0)
            good++;
        else if (nbad < 8)
            bad[nbad++] = lr_lineno(lr);
    }
    CU_ASSERT_EQUAL(rc, PSREC_E_NOTFOUND);
    CU_ASSERT_EQUAL(good, 3);
    CU_ASSERT_EQUAL_FATAL(nbad, 2);
    CU_ASSERT_EQUAL(bad[0], 3);
    CU_ASSERT_EQUAL(bad[1], 5);
    CU_ASSERT_EQUAL(lr_terminated(lr), 0);
    CU_ASSERT_STRING_EQUAL(why, "candidate 'N5-': label must be 0 or 1");
    CU_ASSERT_EQUAL(lr_bytes(lr), strlen(text));
    lr_close(&lr);
}

/* One behaviors line with a 5+ MiB history (700k ids), between two short lines. */
static void test_file_long_history(void)
{
    size_t nids = 700000, cap = nids * 12 + 4096, n = 0;
    char *buf = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    n += (size_t)snprintf(buf + n, cap - n, "1\tU1\t1/2/2019 3:04:05 PM\tN1\tN2-1\n");
    n += (size_t)snprintf(buf + n, cap - n, "2\tU2\t1/2/2019 3:04:05 PM\t");
    for (size_t i = 0; i < nids; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%sN%zu", i ? " " : "", i);
    n += (size_t)snprintf(buf + n, cap - n, "\tN7-0 N8-1\n");
    n += (size_t)snprintf(buf + n, cap - n, "3\tU3\t1/2/2019 3:04:05 PM\t\tN9\n");
    CU_ASSERT(n > (5u << 20));
    LineReader *lr = NULL;
    CU_ASSERT_EQUAL_FATAL(lr_open(&lr, write_bytes("beh-long.tsv", buf, n)), 0);
    const char *line;
    size_t len;
    BehaviorRow r;
    char why[256] = "";
    CU_ASSERT_EQUAL_FATAL(lr_next(lr, &line, &len), 0);
    CU_ASSERT_EQUAL(tsv_parse_behavior(line, len, &r, why, sizeof why), 0);
    CU_ASSERT_EQUAL_FATAL(lr_next(lr, &line, &len), 0);
    CU_ASSERT_EQUAL(lr_lineno(lr), 2);
    CU_ASSERT(len > (5u << 20));
    CU_ASSERT_EQUAL_FATAL(tsv_parse_behavior(line, len, &r, why, sizeof why), 0);
    CU_ASSERT_EQUAL(r.n_history, nids);
    size_t pos = 0, k = 0, bad = 0;
    TsvSpan id;
    char want[32];
    while (tsv_history_next(&r, &pos, &id)) {
        int wn = snprintf(want, sizeof want, "N%zu", k);
        bad += !(id.n == (size_t)wn && memcmp(id.p, want, id.n) == 0);
        k++;
    }
    CU_ASSERT_EQUAL(k, nids);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(r.n_clicks, 1);
    CU_ASSERT_EQUAL_FATAL(lr_next(lr, &line, &len), 0);
    CU_ASSERT_EQUAL(lr_lineno(lr), 3);
    CU_ASSERT_EQUAL(tsv_parse_behavior(line, len, &r, why, sizeof why), 0);
    CU_ASSERT_EQUAL(r.labeled, 0);
    expect_end(lr);
    CU_ASSERT_EQUAL(lr_bytes(lr), n);
    lr_close(&lr);
    free(buf);
}

int main(void)
{
    static const TuTest tests[] = {
        {"lr: lines, numbers, bytes", test_lr_basic},
        {"lr: CRLF", test_lr_crlf},
        {"lr: empty files", test_lr_empty_files},
        {"lr: NUL bytes", test_lr_nul_bytes},
        {"lr: missing file", test_lr_missing_file},
        {"lr: chunk boundaries", test_lr_chunk_boundaries},
        {"lr: CRLF across reads", test_lr_crlf_across_reads},
        {"split", test_split},
        {"news: valid lines", test_news_ok},
        {"news: malformed", test_news_malformed},
        {"reason buffer", test_reason_buffer},
        {"behaviors: labeled", test_behavior_labeled},
        {"behaviors: ids in the parsing pass", test_behavior_ids},
        {"behaviors: id lengths", test_behavior_id_lengths},
        {"behaviors: empty history", test_behavior_empty_history},
        {"behaviors: spaces", test_behavior_spaces},
        {"behaviors: unlabeled (test split)", test_behavior_unlabeled},
        {"behaviors: times", test_behavior_times},
        {"behaviors: malformed", test_behavior_malformed},
        {"file: CRLF and UTF-8", test_file_crlf_utf8},
        {"file: bad and truncated lines", test_file_bad_lines},
        {"file: 5 MB history", test_file_long_history},
        {NULL, NULL},
    };
    tu_add_suite("tsv", tests);
    snprintf(tmpdir, sizeof tmpdir, "%s", tu_mkdtemp("tsv"));
    int rc = tu_run_all();
    tu_rmtree(tmpdir);
    return rc;
}
