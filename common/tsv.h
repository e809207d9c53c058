/* MIND TSV reading: a buffered line reader, tab splitting into spans, and strict parsers for
 * news.tsv and behaviors.tsv lines.
 *
 * Nothing here copies text: every TsvSpan points into the line it came from, and a line from
 * lr_next() lives until the next lr_next()/lr_close(). Parsers report a reason naming what is
 * wrong but no file or line number; the caller prefixes "news.tsv:12: ". */
#ifndef PSREC_COMMON_TSV_H
#define PSREC_COMMON_TSV_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- line reader */

/* Lines longer than this are refused (a file without newlines is not a TSV file). */
#define LR_MAX_LINE ((size_t)1 << 30)

typedef struct LineReader LineReader;

/* Open path for reading line by line (read() in 1 MiB chunks).
 * Returns 0 and sets *out (free it with lr_close()), or an errno value / PSREC_E_NOMEM with
 * the detail in psrec_errmsg(). */
int lr_open(LineReader **out, const char *path);

/* Close the file, free the reader, set *lr to NULL. NULL or *lr == NULL is a no-op. */
void lr_close(LineReader **lr);

/* Next line. A line ends at "\n" or at the end of the file; the "\n" and one '\r' just before
 * it (CRLF files) are not part of it, nor is a '\r' ending an unterminated last line. An empty
 * line is returned as such (len 0), but the end of the file right after a "\n" is not a line.
 *   line, len  set to the line's bytes; *line is not NUL-terminated and stays valid (and
 *              unchanged) until the next lr_next() or lr_close() on this reader
 * Returns 0 with a line, PSREC_E_NOTFOUND when no line remains (as mdb_cursor_get's
 * MDB_NOTFOUND), an errno value on a read error, PSREC_E_NOMEM, or PSREC_E_PARSE for a line
 * longer than LR_MAX_LINE; errors set psrec_errmsg() to "path:line: ...". */
int lr_next(LineReader *lr, const char **line, size_t *len);

/* 1-based number of the line last returned by lr_next() (0 before the first). */
uint64_t lr_lineno(const LineReader *lr);

/* Bytes of the file consumed through the line last returned, terminators included: at the
 * end of the file this is the file's size. */
uint64_t lr_bytes(const LineReader *lr);

/* 1 when the line last returned ended with "\n", 0 when it was an unterminated last line (a
 * file that was cut short typically ends so). 1 before the first line. */
int lr_terminated(const LineReader *lr);

/* ---------------------------------------------------------------- fields */

/* A borrowed run of bytes, not NUL-terminated. */
typedef struct TsvSpan {
    const char *p;
    size_t n;
} TsvSpan;

/* Split line[0..len) at every '\t' into up to max spans (stored in fields[0..max)).
 * Returns the number of fields in the line, which may exceed max (the extra ones are not
 * stored); an empty line has one empty field. */
size_t tsv_split(const char *line, size_t len, TsvSpan *fields, size_t max);

/* ---------------------------------------------------------------- news.tsv */

#define TSV_NEWS_FIELDS 8
#define TSV_BEHAVIOR_FIELDS 5

/* One news.tsv line: id, category, subcategory, title, abstract, url, title entities,
 * abstract entities. Spans borrow from the parsed line. */
typedef struct NewsRow {
    TsvSpan id;                /* non-empty, no ' ' */
    TsvSpan category;          /* non-empty */
    TsvSpan subcategory;       /* may be empty */
    TsvSpan title;             /* may be empty; raw text, tokenize it */
    TsvSpan abstract;          /* may be empty */
    TsvSpan url;               /* may be empty */
    TsvSpan title_entities;    /* JSON text, not parsed; may be empty */
    TsvSpan abstract_entities; /* JSON text, not parsed; may be empty */
} NewsRow;

/* Parse one news.tsv line (without its newline).
 *   out     filled on success; undefined on failure
 *   reason  on failure, a NUL-terminated explanation such as "7 fields, a news line needs 8"
 *           (cut to reason_size); may be NULL
 * Returns 0, or PSREC_E_PARSE. Does not touch psrec_errmsg(). */
int tsv_parse_news(const char *line, size_t len, NewsRow *out, char *reason, size_t reason_size);

/* ---------------------------------------------------------------- behaviors.tsv */

/* One behaviors.tsv line. Spans borrow from the parsed line. */
typedef struct BehaviorRow {
    TsvSpan impression_id; /* non-empty */
    TsvSpan user_id;       /* non-empty, no ' ' */
    TsvSpan time;          /* valid "M/D/YYYY h:mm:ss AM|PM" */
    TsvSpan history;       /* raw field: ids separated by one or more ' '; walk with tsv_history_next */
    TsvSpan impressions;   /* raw field: candidates; walk with tsv_candidate_next */
    size_t n_history;      /* ids in history (0 for an empty history) */
    size_t n_candidates;   /* >= 1 */
    size_t n_clicks;       /* candidates labeled 1 (0 when unlabeled) */
    int labeled;           /* 1: every candidate is "NewsId-0|1"; 0: every one is "NewsId" */
} BehaviorRow;

/* Parse and fully validate one behaviors.tsv line: 5 fields; non-empty impression id; user id
 * non-empty without spaces; the time; at least one candidate, all labeled or all unlabeled
 * (the test split has no labels), labels 0 or 1, no empty news id.
 *   reason  as for tsv_parse_news, e.g. "candidate 'N123-2': label must be 0 or 1"
 * Returns 0, or PSREC_E_PARSE. The iterators below rely on this validation. */
int tsv_parse_behavior(const char *line, size_t len, BehaviorRow *out, char *reason,
                       size_t reason_size);

/* tsv_parse_behavior() that also hands out the line's ids from the same pass (prep walks
 * each line once instead of twice).
 *   ids      history ids oldest first, then candidate ids without their labels (as
 *            tsv_history_next and tsv_candidate_next give them), borrowed from the line
 *   clicked  clicked[k] = 1 for a candidate labeled 1, else 0 (history entries: 0)
 *   cap      entries ids and clicked hold (0: both may be NULL)
 * On success ids and clicked are complete only when n_history + n_candidates <= cap; for a
 * longer line they hold the first cap entries, and the caller grows them and parses again
 * (or walks the iterators below). Returns as tsv_parse_behavior(). */
int tsv_parse_behavior_ids(const char *line, size_t len, BehaviorRow *out, TsvSpan *ids,
                           unsigned char *clicked, size_t cap, char *reason,
                           size_t reason_size);

/* Next history id of a row from tsv_parse_behavior(), oldest first.
 *   pos  cursor, start with 0
 *   id   set to the id (borrowed from the line)
 * Returns 1 while ids remain, then 0. */
int tsv_history_next(const BehaviorRow *row, size_t *pos, TsvSpan *id);

/* Next candidate of a row from tsv_parse_behavior(), in file order.
 *   pos    cursor, start with 0
 *   id     set to the news id without its label (borrowed from the line)
 *   label  set to 0 or 1, or -1 on an unlabeled row
 * Returns 1 while candidates remain, then 0. */
int tsv_candidate_next(const BehaviorRow *row, size_t *pos, TsvSpan *id, int *label);

#endif
