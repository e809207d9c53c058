/* Helpers shared by the CUnit suites: temp dirs, files, running the real psrec binary,
 * and a main() that runs the registered suites and returns non-zero on any failure. */
#ifndef PSREC_TESTUTIL_H
#define PSREC_TESTUTIL_H

#include <CUnit/Basic.h>
#include <stddef.h>

/* Make a fresh directory under $TMPDIR (or /tmp) named psrec-<tag>-XXXXXX; returns a static
 * copy valid until the next call. Aborts the test program on failure. */
const char *tu_mkdtemp(const char *tag);

/* Remove a directory tree (rm -rf). */
void tu_rmtree(const char *path);

/* Write text to path (truncating). Returns 0 or errno. */
int tu_write_file(const char *path, const char *text);

/* Read a whole file into a malloc'ed NUL-terminated buffer (caller frees); NULL on error. */
char *tu_read_file(const char *path, size_t *len);

/* Run a shell command line; stdout+stderr are captured into *out (malloc'ed, caller frees)
 * when out is non-NULL. Returns the exit status (0..255), or 128+signal, or -1. */
int tu_run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Run `sh -c cmd` in the background, stdout+stderr into the file log, in a process group of
 * its own (so a test that gives up can end the whole tree it started, and nothing else).
 * Returns the child's pid (its group id too), or -1. */
int tu_spawn(const char *cmd, const char *log);

/* Path of the psrec binary under test, and of the source tree. */
#define TU_PSREC PSREC_BIN
#define TU_SRCDIR PSREC_SOURCE_DIR
#define TU_MPIRUN PSREC_MPIRUN

/* Find "key": <number> in a flat JSON text; returns 1 and sets *v when found. */
int tu_json_number(const char *json, const char *key, double *v);

/* Bytes every shard moved in a finished run: the sum over shards of bytes_in + bytes_out of
 * each shard's last stats line in run_dir/metrics.jsonl (a shard writes one at the end).
 * 0 when there is none. */
double tu_shard_bytes(const char *run_dir);

/* A small prepared set for end-to-end tests: `psrec gen` (600 news, 300 users, 2500 train and
 * 500 dev impressions, 6 topics, the given seed) into dir/g, then dir/train.db (title_len 12,
 * his_len 15) and dir/dev.db, and dir/exp.conf: E = H = 16, 2 epochs, batch 32, K 4,
 * lr 0.003, 1 thread, run.dir = dir/run, log_every 10, plus `extra` (INI text, may be "").
 * Returns 0, or the failing command's exit code (its output printed). */
int tu_small_experiment(const char *dir, int seed, const char *extra);

/* Register one suite from a NULL-terminated table of {name, fn}. */
typedef struct TuTest {
    const char *name;
    void (*fn)(void);
} TuTest;
void tu_add_suite(const char *name, const TuTest *tests);

/* Run every registered suite (verbose), print a summary, return 0 only if all passed. */
int tu_run_all(void);

#endif
