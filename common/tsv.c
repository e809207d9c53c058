/* MIND TSV reading for `psrec prep`, built for throughput (well over 50 MB/s on one core).
 *
 * Line reader: one buffer, filled by large read() calls; lines are handed out as pointers into
 * it. Invariants: buf[start..end) holds unconsumed bytes, buf[start..scan) is known to hold no
 * '\n' (so a long line is never rescanned), and the buffer only grows when an unfinished line
 * fills more than half of it, so every read() asks for at least half the buffer. Steady state
 * does no allocation and moves at most one partial line per refill.
 *
 * Parsers: split a line into spans (memchr on '\t'), then check each field; the reason for a
 * rejection quotes the offending text, cut to QUOTE_MAX bytes. Nothing is copied or
 * allocated, and nothing here knows about vocabularies or ids: that is prep's job. The
 * parsers do not check that dates exist (Feb 31 passes), do not parse entity JSON, and do not
 * decode UTF-8. */
#include "common/tsv.h"

#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LR_CHUNK ((size_t)1 << 20)
#define QUOTE_MAX 48

struct LineReader {
    int fd;
    int eof;            /* read() returned 0 */
    int terminated;     /* last line returned ended with '\n' */
    char *buf;
    size_t cap;
    size_t start;       /* first unconsumed byte */
    size_t scan;        /* [start, scan) holds no '\n' */
    size_t end;         /* end of valid bytes */
    uint64_t lineno;
    uint64_t consumed;
    char *path;         /* for error messages */
};

int lr_open(LineReader **out, const char *path)
{
    *out = NULL;
    LineReader *lr = calloc(1, sizeof *lr);
    if (!lr)
        return psrec_errf(PSREC_E_NOMEM, "%s: out of memory for the line reader", path);
    lr->fd = -1;
    lr->terminated = 1;
    lr->cap = LR_CHUNK;
    lr->buf = malloc(lr->cap);
    lr->path = strdup(path);
    if (!lr->buf || !lr->path) {
        lr_close(&lr);
        return psrec_errf(PSREC_E_NOMEM, "%s: out of memory for the line reader", path);
    }
    lr->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (lr->fd < 0) {
        int err = errno;
        lr_close(&lr);
        return psrec_errf(err, "cannot open %s: %s", path, strerror(err));
    }
    /* Only a hint for the kernel's read-ahead; failure changes nothing. */
    (void)posix_fadvise(lr->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    *out = lr;
    return 0;
}

void lr_close(LineReader **plr)
{
    if (!plr || !*plr)
        return;
    LineReader *lr = *plr;
    if (lr->fd >= 0)
        close(lr->fd);
    free(lr->buf);
    free(lr->path);
    free(lr);
    *plr = NULL;
}

/* Make room and read more bytes: compact the unfinished line to the front, grow the buffer
 * when that line fills half of it, then one read(). Sets eof on end of file. */
static int lr_fill(LineReader *lr)
{
    if (lr->start > 0) {
        size_t keep = lr->end - lr->start;
        memmove(lr->buf, lr->buf + lr->start, keep);
        lr->scan -= lr->start;
        lr->end = keep;
        lr->start = 0;
    }
    if (lr->end > LR_MAX_LINE)
        return psrec_errf(PSREC_E_PARSE, "%s:%llu: line longer than %zu bytes", lr->path,
                          (unsigned long long)lr->lineno + 1, LR_MAX_LINE);
    if (lr->cap - lr->end < lr->cap / 2) {
        size_t ncap = lr->cap * 2;
        char *nb = realloc(lr->buf, ncap);
        if (!nb)
            return psrec_errf(PSREC_E_NOMEM, "%s:%llu: out of memory for a %zu-byte line",
                              lr->path, (unsigned long long)lr->lineno + 1, lr->end);
        lr->buf = nb;
        lr->cap = ncap;
    }
    ssize_t r;
    do {
        r = read(lr->fd, lr->buf + lr->end, lr->cap - lr->end);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        int err = errno;
        return psrec_errf(err, "%s:%llu: read: %s", lr->path,
                          (unsigned long long)lr->lineno + 1, strerror(err));
    }
    if (r == 0)
        lr->eof = 1;
    lr->end += (size_t)r;
    return 0;
}

int lr_next(LineReader *lr, const char **line, size_t *len)
{
    size_t next, n;
    for (;;) {
        char *nl = lr->end > lr->scan ? memchr(lr->buf + lr->scan, '\n', lr->end - lr->scan)
                                      : NULL;
        if (nl) {
            n = (size_t)(nl - lr->buf) - lr->start;
            next = (size_t)(nl - lr->buf) + 1;
            lr->terminated = 1;
            break;
        }
        lr->scan = lr->end;
        if (lr->eof) {
            if (lr->start == lr->end)
                return PSREC_E_NOTFOUND;
            n = lr->end - lr->start;
            next = lr->end;
            lr->terminated = 0;
            break;
        }
        int rc = lr_fill(lr);
        if (rc)
            return rc;
    }
    const char *p = lr->buf + lr->start;
    if (n > 0 && p[n - 1] == '\r')
        n--;
    *line = p;
    *len = n;
    lr->consumed += next - lr->start;
    lr->start = next;
    lr->scan = next;
    lr->lineno++;
    return 0;
}

uint64_t lr_lineno(const LineReader *lr)
{
    return lr->lineno;
}

uint64_t lr_bytes(const LineReader *lr)
{
    return lr->consumed;
}

int lr_terminated(const LineReader *lr)
{
    return lr->terminated;
}

size_t tsv_split(const char *line, size_t len, TsvSpan *fields, size_t max)
{
    if (len == 0) {
        if (max > 0) {
            fields[0].p = line;
            fields[0].n = 0;
        }
        return 1;
    }
    const char *p = line, *end = line + len;
    size_t k = 0;
    for (;;) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        const char *fe = tab ? tab : end;
        if (k < max) {
            fields[k].p = p;
            fields[k].n = (size_t)(fe - p);
        }
        k++;
        if (!tab)
            return k;
        p = tab + 1;
    }
}

/* ---------------------------------------------------------------- parsers */

static int fail(char *reason, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *reason, size_t size, const char *fmt, ...)
{
    if (reason && size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, size, fmt, ap);
        va_end(ap);
    }
    return PSREC_E_PARSE;
}

/* printf arguments for "'%.*s%s'": a span cut to QUOTE_MAX bytes, with "..." when cut. */
#define QUOTE(s) (int)((s).n > QUOTE_MAX ? QUOTE_MAX : (s).n), (s).p, \
                 ((s).n > QUOTE_MAX ? "..." : "")

static int has_byte(TsvSpan s, char c)
{
    return s.n > 0 && memchr(s.p, c, s.n) != NULL;
}

int tsv_parse_news(const char *line, size_t len, NewsRow *out, char *reason, size_t reason_size)
{
    if (len == 0)
        return fail(reason, reason_size, "empty line");
    TsvSpan f[TSV_NEWS_FIELDS];
    size_t nf = tsv_split(line, len, f, TSV_NEWS_FIELDS);
    if (nf != TSV_NEWS_FIELDS)
        return fail(reason, reason_size, "%zu field%s, a news line needs %d", nf,
                    nf == 1 ? "" : "s", TSV_NEWS_FIELDS);
    if (f[0].n == 0)
        return fail(reason, reason_size, "empty news id");
    if (has_byte(f[0], ' '))
        return fail(reason, reason_size, "news id '%.*s%s' contains a space", QUOTE(f[0]));
    if (f[1].n == 0)
        return fail(reason, reason_size, "empty category");
    out->id = f[0];
    out->category = f[1];
    out->subcategory = f[2];
    out->title = f[3];
    out->abstract = f[4];
    out->url = f[5];
    out->title_entities = f[6];
    out->abstract_entities = f[7];
    return 0;
}

/* Read lo..hi decimal digits at s[*i]; on success advance *i and set *v. */
static int take_digits(const char *s, size_t n, size_t *i, size_t lo, size_t hi, unsigned *v)
{
    size_t k = 0;
    unsigned x = 0;
    while (*i + k < n && k < hi && s[*i + k] >= '0' && s[*i + k] <= '9') {
        x = x * 10 + (unsigned)(s[*i + k] - '0');
        k++;
    }
    if (k < lo)
        return 0;
    *i += k;
    *v = x;
    return 1;
}

static int take_char(const char *s, size_t n, size_t *i, char c)
{
    if (*i < n && s[*i] == c) {
        (*i)++;
        return 1;
    }
    return 0;
}

/* "M/D/YYYY h:mm:ss AM|PM": M 1-12, D 1-31, h 1-12, mm and ss two digits 00-59. */
static int valid_time(TsvSpan t)
{
    const char *s = t.p;
    size_t n = t.n, i = 0;
    unsigned mon, day, year, hour, min, sec;
    if (!take_digits(s, n, &i, 1, 2, &mon) || !take_char(s, n, &i, '/')
        || !take_digits(s, n, &i, 1, 2, &day) || !take_char(s, n, &i, '/')
        || !take_digits(s, n, &i, 4, 4, &year) || !take_char(s, n, &i, ' ')
        || !take_digits(s, n, &i, 1, 2, &hour) || !take_char(s, n, &i, ':')
        || !take_digits(s, n, &i, 2, 2, &min) || !take_char(s, n, &i, ':')
        || !take_digits(s, n, &i, 2, 2, &sec) || !take_char(s, n, &i, ' '))
        return 0;
    if (n - i != 2 || (s[i] != 'A' && s[i] != 'P') || s[i + 1] != 'M')
        return 0;
    return mon >= 1 && mon <= 12 && day >= 1 && day <= 31 && hour >= 1 && hour <= 12
           && min <= 59 && sec <= 59;
}

/* Offset of the first ' ' in the 8 bytes at p, or 8 when there is none. SWAR: a byte equal
 * to ' ' becomes 0 after the xor, and the lowest byte flagged by the zero-byte test is exact
 * (borrows only flag bytes above a true zero). */
static inline size_t space_in8(const char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    x ^= 0x2020202020202020ULL;
    uint64_t z = (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
    return z ? (size_t)__builtin_ctzll(z) >> 3 : 8;
}

/* Next run of non-' ' bytes in s[*pos..n). Not memchr: the words are news ids of a few bytes,
 * where a library call costs more than the scan; 8 bytes at a time while 8 remain, so the
 * scan never reads past s + n. */
static inline int next_word(const char *s, size_t n, size_t *pos, TsvSpan *w)
{
    size_t i = *pos;
    while (i < n && s[i] == ' ')
        i++;
    if (i >= n) {
        *pos = n;
        return 0;
    }
    size_t e = i + 1, k = 8;
    while (e + 8 <= n && (k = space_in8(s + e)) == 8)
        e += 8;
    if (k < 8)
        e += k;
    else
        while (e < n && s[e] != ' ')
            e++;
    w->p = s + i;
    w->n = e - i;
    *pos = e;
    return 1;
}

int tsv_parse_behavior(const char *line, size_t len, BehaviorRow *out, char *reason,
                       size_t reason_size)
{
    return tsv_parse_behavior_ids(line, len, out, NULL, NULL, 0, reason, reason_size);
}

int tsv_parse_behavior_ids(const char *line, size_t len, BehaviorRow *out, TsvSpan *ids,
                           unsigned char *clicked, size_t cap, char *reason, size_t reason_size)
{
    if (len == 0)
        return fail(reason, reason_size, "empty line");
    TsvSpan f[TSV_BEHAVIOR_FIELDS];
    size_t nf = tsv_split(line, len, f, TSV_BEHAVIOR_FIELDS);
    if (nf != TSV_BEHAVIOR_FIELDS)
        return fail(reason, reason_size, "%zu field%s, a behaviors line needs %d", nf,
                    nf == 1 ? "" : "s", TSV_BEHAVIOR_FIELDS);
    if (f[0].n == 0)
        return fail(reason, reason_size, "empty impression id");
    if (f[1].n == 0)
        return fail(reason, reason_size, "empty user id");
    if (has_byte(f[1], ' '))
        return fail(reason, reason_size, "user id '%.*s%s' contains a space", QUOTE(f[1]));
    if (!valid_time(f[2]))
        return fail(reason, reason_size, "time '%.*s%s' is not M/D/YYYY h:mm:ss AM|PM",
                    QUOTE(f[2]));

    size_t pos = 0, nhis = 0;
    TsvSpan w;
    while (next_word(f[3].p, f[3].n, &pos, &w)) {
        if (nhis < cap) {
            ids[nhis] = w;
            clicked[nhis] = 0;
        }
        nhis++;
    }

    size_t ncand = 0, nclick = 0;
    int labeled = 0;
    pos = 0;
    while (next_word(f[4].p, f[4].n, &pos, &w)) {
        ncand++;
        /* A label is a trailing "-0" or "-1"; ids may contain '-' themselves. The first
         * candidate decides whether the line is labeled (train/dev) or not (test). */
        int has_label = w.n >= 2 && w.p[w.n - 2] == '-' &&
                        (w.p[w.n - 1] == '0' || w.p[w.n - 1] == '1');
        if (ncand == 1)
            labeled = has_label || memchr(w.p, '-', w.n) != NULL;
        if (labeled && !has_label && !memchr(w.p, '-', w.n))
            return fail(reason, reason_size,
                        "candidate %zu '%.*s%s': mixes labeled and unlabeled candidates", ncand,
                        QUOTE(w));
        if (labeled && !has_label)
            return fail(reason, reason_size, "candidate '%.*s%s': label must be 0 or 1",
                        QUOTE(w));
        if (labeled && w.n == 2)
            return fail(reason, reason_size, "candidate '%.*s%s': empty news id", QUOTE(w));
        if (!labeled && has_label)
            return fail(reason, reason_size,
                        "candidate %zu '%.*s%s': mixes labeled and unlabeled candidates", ncand,
                        QUOTE(w));
        if (labeled)
            nclick += w.p[w.n - 1] == '1';
        if (nhis + ncand <= cap) {
            size_t k = nhis + ncand - 1;
            ids[k].p = w.p;
            ids[k].n = labeled ? w.n - 2 : w.n;
            clicked[k] = labeled && w.p[w.n - 1] == '1';
        }
    }
    if (ncand == 0)
        return fail(reason, reason_size, "no candidates: an impression needs at least one");

    out->impression_id = f[0];
    out->user_id = f[1];
    out->time = f[2];
    out->history = f[3];
    out->impressions = f[4];
    out->n_history = nhis;
    out->n_candidates = ncand;
    out->n_clicks = nclick;
    out->labeled = labeled;
    return 0;
}

int tsv_history_next(const BehaviorRow *row, size_t *pos, TsvSpan *id)
{
    return next_word(row->history.p, row->history.n, pos, id);
}

int tsv_candidate_next(const BehaviorRow *row, size_t *pos, TsvSpan *id, int *label)
{
    TsvSpan w;
    if (!next_word(row->impressions.p, row->impressions.n, pos, &w))
        return 0;
    if (row->labeled) {
        /* Validated by tsv_parse_behavior: the word ends in "-0" or "-1". */
        id->p = w.p;
        id->n = w.n - 2;
        *label = w.p[w.n - 1] - '0';
    } else {
        *id = w;
        *label = -1;
    }
    return 1;
}
