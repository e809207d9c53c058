/* Experiment configuration: one static table of keys drives reading INI files (through inih),
 * command-line overrides, checking, and printing the effective config and the reference.
 *
 * Invariants:
 * - Every key is a row of `keys[]`; a row's default is text parsed by the same code as user
 *   input, so a default can never escape the key's own type and range checks.
 * - A Config that config_check() accepts can be written by config_write() and read back by
 *   config_load_file() to an equal Config: config_set() refuses strings no INI line can carry
 *   (too long for inih's 199-character lines, control characters, edge spaces, comment marks).
 * - Failed calls leave the caller's Config unchanged (files are parsed into a scratch copy).
 * - The first error wins, and it is reported as "WHERE: section.key: reason".
 *
 * Not done here: checks that need the outside world (does data.train exist, is a port free,
 * is data.train required for this command); the commands do those. */
#include "common/config.h"

#include "common/error.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

/* Longest line inih (INI_MAX_LINE, INI_USE_STACK) hands to us, newline excluded. */
#define LINE_LIMIT (INI_MAX_LINE - 1)

/* Section and key names are short; longer names given by a user are simply unknown. */
#define NAME_MAX_LEN 64

typedef enum KeyType { KT_INT, KT_U64, KT_DOUBLE, KT_BOOL, KT_STRING, KT_ENUM } KeyType;

enum {
    KF_MIN_OPEN = 1 << 0,  /* KT_DOUBLE: the minimum itself is not allowed */
    KF_MAX_OPEN = 1 << 1,  /* KT_DOUBLE: the maximum itself is not allowed */
    KF_NONEMPTY = 1 << 2,  /* KT_STRING: "" is not allowed */
};

typedef struct Key {
    const char *section;
    const char *name;
    KeyType type;
    size_t offset;            /* of the field in Config */
    const char *def;          /* default, as config-file text */
    long long imin, imax;     /* KT_INT: closed range */
    double dmin, dmax;        /* KT_DOUBLE: range, ends open per flags */
    unsigned flags;           /* KF_* */
    const char *const *words; /* KT_ENUM: allowed words, NULL-terminated; index = enum value */
    const char *doc;          /* one line, also written as a comment by config_write() */
} Key;

typedef char ConfigStr[CONFIG_STR_MAX];

/* Enum fields are written through an int pointer. */
_Static_assert(sizeof(ConfigOptimizer) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(ConfigConsistency) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(ConfigPartition) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(ConfigWireDtype) == sizeof(int), "enum stored as int");

/* offsetof(Config, f), plus an incompatible-pointer-types diagnostic (an error with
 * PSREC_WERROR, and in GCC >= 14) when field f is not of type T, so a row cannot write the
 * wrong type into the struct. */
#define FIELD(T, f) (offsetof(Config, f) + 0 * sizeof((T *){0} = &((Config *)0)->f))

#define K_INT(s, n, f, d, lo, hi, doc_)                                                      \
    { .section = s, .name = n, .type = KT_INT, .offset = FIELD(int, f), .def = d,           \
      .imin = lo, .imax = hi, .doc = doc_ }
#define K_U64(s, n, f, d, doc_)                                                              \
    { .section = s, .name = n, .type = KT_U64, .offset = FIELD(uint64_t, f), .def = d,      \
      .doc = doc_ }
/* A uint64 key with a closed range [lo, hi] (hi <= INT64_MAX); K_U64's have none. */
#define K_U64R(s, n, f, d, lo, hi, doc_)                                                     \
    { .section = s, .name = n, .type = KT_U64, .offset = FIELD(uint64_t, f), .def = d,      \
      .imin = lo, .imax = hi, .doc = doc_ }
#define K_DBL(s, n, f, d, lo, hi, fl, doc_)                                                  \
    { .section = s, .name = n, .type = KT_DOUBLE, .offset = FIELD(double, f), .def = d,     \
      .dmin = lo, .dmax = hi, .flags = fl, .doc = doc_ }
#define K_BOOL(s, n, f, d, doc_)                                                             \
    { .section = s, .name = n, .type = KT_BOOL, .offset = FIELD(bool, f), .def = d,         \
      .doc = doc_ }
#define K_STR(s, n, f, d, fl, doc_)                                                          \
    { .section = s, .name = n, .type = KT_STRING, .offset = FIELD(ConfigStr, f), .def = d,  \
      .flags = fl, .doc = doc_ }
#define K_ENUM(s, n, T, f, w, d, doc_)                                                       \
    { .section = s, .name = n, .type = KT_ENUM, .offset = FIELD(T, f), .def = d,            \
      .words = w, .doc = doc_ }

static const char *const optimizer_words[] = {"adam", "adagrad", "sgd", NULL};
static const char *const consistency_words[] = {"bsp", "ssp", "asp", NULL};
static const char *const partition_words[] = {"range", "interleave", NULL};
static const char *const wire_dtype_words[] = {"f32", "bf16", NULL};
static const char *const security_words[] = {"curve", "none", NULL};

/* Sections appear in this order in written configs and in the reference. */
static const char *const sections[] = {"data", "model", "train", "ps", "checkpoint", "run"};

static const Key keys[] = {
    K_STR("data", "train", data.train, "", 0,
          "prepared LMDB dataset for training (a psrec prep output dir); psrec train needs it"),
    K_STR("data", "dev", data.dev, "", 0,
          "prepared dataset evaluated after each epoch; empty = no evaluation"),
    K_STR("data", "test", data.test, "", 0, "prepared dataset for psrec eval/recommend; optional"),
    K_ENUM("data", "partition", ConfigPartition, data.partition, partition_words, "range",
           "range = each worker a contiguous block; interleave = one shared shuffle, worker r "
           "takes every W-th sample (matches one process with batch W*B step for step)"),

    K_INT("model", "word_dim", model.word_dim, "64", 1, 4096, "word embedding size E"),
    K_INT("model", "hidden", model.hidden, "64", 1, 4096,
          "LSTM hidden size H (also the size of news, user and category vectors)"),
    K_INT("model", "title_len", model.title_len, "20", 1, 512,
          "title tokens kept per news; longer titles are cut"),
    K_INT("model", "his_len", model.his_len, "30", 1, 1024,
          "latest clicks fed to the user encoder"),

    K_INT("train", "epochs", train.epochs, "3", 1, 100000, "passes over the training samples"),
    K_INT("train", "batch_size", train.batch_size, "64", 1, 1048576,
          "samples (clicks) per worker step, B"),
    K_INT("train", "negatives", train.negatives, "4", 0, 1000,
          "K: negatives per click, drawn from its impression (padded with news 0)"),
    K_DBL("train", "lr", train.lr, "0.001", 0, 10, KF_MIN_OPEN, "learning rate"),
    K_ENUM("train", "optimizer", ConfigOptimizer, train.optimizer, optimizer_words, "adam",
           "optimizer the server shards apply"),
    K_U64("train", "seed", train.seed, "1",
          "seed of initialisation, shuffling and negative sampling"),
    K_INT("train", "threads", train.threads, "0", 0, 1024,
          "compute threads per worker; 0 = all cores"),
    K_DBL("train", "adam_beta1", train.adam_beta1, "0.9", 0, 1, KF_MAX_OPEN,
          "Adam decay rate of the gradient mean"),
    K_DBL("train", "adam_beta2", train.adam_beta2, "0.999", 0, 1, KF_MAX_OPEN,
          "Adam decay rate of the squared-gradient mean"),
    K_DBL("train", "adam_eps", train.adam_eps, "1e-08", 0, 1, KF_MIN_OPEN,
          "Adam epsilon added to the denominator"),
    K_DBL("train", "adagrad_eps", train.adagrad_eps, "1e-10", 0, 1, KF_MIN_OPEN,
          "Adagrad epsilon added to the denominator"),

    K_INT("ps", "servers", ps.servers, "1", 1, 4096, "parameter-server shards"),
    K_ENUM("ps", "consistency", ConfigConsistency, ps.consistency, consistency_words, "bsp",
           "bsp = lockstep; ssp = bounded staleness (ps.staleness); asp = no waiting"),
    K_INT("ps", "staleness", ps.staleness, "2", 0, 1000000,
          "SSP bound s: steps a worker may run ahead of the slowest (ssp only)"),
    K_BOOL("ps", "colocate", ps.colocate, "false",
           "run server shards inside worker processes instead of on ranks of their own"),
    K_INT("ps", "port", ps.port, "0", 0, 65535,
          "base TCP port of the PS sockets; 0 = ephemeral ports chosen by the OS"),
    K_STR("ps", "host", ps.host, "", 0,
          "where shards bind: an IPv4 address, a network (10.1.0.0/24: each shard host's "
          "address in it) or an interface name; empty = loopback if all ranks share a host, "
          "else the first non-loopback IPv4"),
    K_DBL("ps", "rendezvous_timeout", ps.rendezvous_timeout, "30", 0, 86400, KF_MIN_OPEN,
          "seconds to wait for every peer at start-up"),
    K_DBL("ps", "heartbeat_interval", ps.heartbeat_interval, "1", 0, 3600, KF_MIN_OPEN,
          "seconds between a worker's heartbeats to every shard (sent by a thread of their own)"),
    K_DBL("ps", "heartbeat_timeout", ps.heartbeat_timeout, "10", 0, 86400, KF_MIN_OPEN,
          "a worker or shard silent this long is dead (waiting at a consistency gate is not "
          "silence)"),
    K_U64R("ps", "max_message_bytes", ps.max_message_bytes, "268435456", 65536,
           (1LL << 40), "largest PS message (all frames) a shard or worker accepts; larger "
           "ones are refused (ZMQ_MAXMSGSIZE too)"),
    K_U64R("ps", "max_keys_per_request", ps.max_keys_per_request, "4194304", 1, (1LL << 40),
           "most keys one pull or push may carry; more are refused"),
    K_U64R("ps", "max_rows_per_table", ps.max_rows_per_table, "16777216", 1, (1LL << 40),
           "most rows a shard holds of one table; a request that would create more is "
           "refused"),
    K_ENUM("ps", "wire_dtype", ConfigWireDtype, ps.wire_dtype, wire_dtype_words, "f32",
           "values on the wire: f32, or bf16 = half the bytes (pulls rounded to nearest even, "
           "pushes with error feedback)"),
    K_ENUM("ps", "security", ConfigSecurity, ps.security, security_words, "curve",
           "curve = CURVE-encrypted PS traffic, shards admit only this job's workers (new keys "
           "every start); none = no authentication (WARNING: anyone reaching a port owns the "
           "model)"),

    K_INT("checkpoint", "every_steps", checkpoint.every_steps, "0", 0, INT_MAX,
          "checkpoint every N global steps (a consistent cut of the whole job); 0 = off"),
    K_DBL("checkpoint", "every_seconds", checkpoint.every_seconds, "0", 0, 31536000, 0,
          "also checkpoint when this many seconds passed since the last one; 0 = off"),
    K_INT("checkpoint", "keep", checkpoint.keep, "3", 1, 1000,
          "checkpoints kept; older ones are deleted"),
    K_STR("checkpoint", "dir", checkpoint.dir, "", 0,
          "checkpoint directory; empty = <run.dir>/ckpt"),

    K_STR("run", "dir", run.dir, "runs/demo", KF_NONEMPTY,
          "output directory: log, metrics.jsonl, effective config, checkpoints"),
    K_STR("run", "name", run.name, "", 0, "label of this run in the start-up log and summary.json (run_name); optional"),
    K_INT("run", "log_every", run.log_every, "50", 1, INT_MAX,
          "log the training loss every N steps"),
    K_DBL("run", "log_every_seconds", run.log_every_seconds, "10", 0, 86400, KF_MIN_OPEN,
          "seconds between progress lines when stderr is not a terminal (key=value pairs)"),
};

#define NKEYS (sizeof keys / sizeof keys[0])
#define NSECTIONS (sizeof sections / sizeof sections[0])

/* ---- table lookups and did-you-mean ---- */

static const Key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
            return &keys[i];
    return NULL;
}

static bool section_known(const char *section)
{
    for (size_t i = 0; i < NSECTIONS; i++)
        if (!strcmp(sections[i], section))
            return true;
    return false;
}

/* Levenshtein distance, ASCII case folded. b (a table name) is shorter than 2*NAME_MAX_LEN. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t nb = strlen(b);
    size_t row[2 * NAME_MAX_LEN + 1];
    if (nb >= 2 * NAME_MAX_LEN)
        return SIZE_MAX;
    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; a[i - 1]; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

static bool close_enough(size_t dist, size_t len)
{
    return dist <= 2 || dist * 3 <= len;
}

/* Write " (did you mean S.K?)" for the key nearest to section.name into out, or "".
 * A key with the same name in another section beats any spelling neighbour. */
static void suggest_key(const char *section, const char *name, char *out, size_t size)
{
    char full[2 * NAME_MAX_LEN + 2];
    snprintf(full, sizeof full, "%s.%s", section, name);
    const Key *best = NULL;
    size_t best_d = SIZE_MAX;
    bool best_same_name = false;
    for (size_t i = 0; i < NKEYS; i++) {
        char cand[2 * NAME_MAX_LEN];
        snprintf(cand, sizeof cand, "%s.%s", keys[i].section, keys[i].name);
        bool same_name = !strcasecmp(keys[i].name, name);
        size_t d = edit_distance(full, cand);
        if ((same_name && !best_same_name) || (same_name == best_same_name && d < best_d)) {
            best = &keys[i];
            best_d = d;
            best_same_name = same_name;
        }
    }
    if (best && (best_same_name || close_enough(best_d, strlen(full))))
        snprintf(out, size, " (did you mean %s.%s?)", best->section, best->name);
    else
        out[0] = '\0';
}

static void suggest_section(const char *section, char *out, size_t size)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < NSECTIONS; i++) {
        size_t d = edit_distance(section, sections[i]);
        if (d < best_d) {
            best = sections[i];
            best_d = d;
        }
    }
    if (best && close_enough(best_d, strlen(section)))
        snprintf(out, size, " (did you mean [%s]?)", best);
    else
        out[0] = '\0';
}

/* ---- values: parse, check, format ---- */

/* Decimal integer, optional sign, nothing else. Returns 0, or -1 not a number, -2 overflow. */
static int parse_ll(const char *s, long long *out)
{
    const char *p = s + (*s == '+' || *s == '-');
    if (!isdigit((unsigned char)*p))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end)
        return -1;
    if (errno == ERANGE)
        return -2;
    *out = v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    const char *p = s + (*s == '+');
    if (!isdigit((unsigned char)*p))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (*end)
        return -1;
    if (errno == ERANGE)
        return -2;
    *out = (uint64_t)v;
    return 0;
}

/* A finite decimal (or C hex) floating-point number and nothing else. */
static int parse_double(const char *s, double *out)
{
    if (!*s || isspace((unsigned char)*s))
        return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end)
        return -1;
    if (!isfinite(v))
        return -2;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!strcasecmp(s, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcasecmp(s, no[i])) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static int parse_enum(const Key *k, const char *s, int *out)
{
    for (int i = 0; k->words[i]; i++) {
        if (!strcasecmp(s, k->words[i])) {
            *out = i;
            return 0;
        }
    }
    return -1;
}

static int enum_count(const Key *k)
{
    int n = 0;
    while (k->words[n])
        n++;
    return n;
}

/* "adam, adagrad, sgd" (sep ", ") or "adam|adagrad|sgd" (sep "|"). */
static void format_words(const Key *k, const char *sep, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; k->words[i] && used < size; i++) {
        int n = snprintf(out + used, size - used, "%s%s", i ? sep : "", k->words[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* Shortest %g text, from 6 significant digits up (so 10 prints as "10", not "1e+01"),
 * that reads back to exactly v. */
static void format_double(double v, char *out, size_t size)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(out, size, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* "[1, 4096]", "(0, 10]"; "" for keys without a numeric range. */
static void format_range(const Key *k, char *out, size_t size)
{
    if (k->type == KT_INT || (k->type == KT_U64 && k->imax)) {
        snprintf(out, size, "[%lld, %lld]", k->imin, k->imax);
    } else if (k->type == KT_DOUBLE) {
        char lo[32], hi[32];
        format_double(k->dmin, lo, sizeof lo);
        format_double(k->dmax, hi, sizeof hi);
        snprintf(out, size, "%c%s, %s%c", k->flags & KF_MIN_OPEN ? '(' : '[', lo, hi,
                 k->flags & KF_MAX_OPEN ? ')' : ']');
    } else {
        out[0] = '\0';
    }
}

static bool double_in_range(const Key *k, double v)
{
    bool lo_ok = k->flags & KF_MIN_OPEN ? v > k->dmin : v >= k->dmin;
    bool hi_ok = k->flags & KF_MAX_OPEN ? v < k->dmax : v <= k->dmax;
    return lo_ok && hi_ok;
}

/* Longest string value key k can hold: it must fit in the field and on one written line
 * "name = value" that inih can read. */
static size_t string_limit(const Key *k)
{
    size_t line = LINE_LIMIT - strlen(k->name) - strlen(" = ");
    return line < CONFIG_STR_MAX - 1 ? line : CONFIG_STR_MAX - 1;
}

/* Check that string s can be stored in key k and written to a config file; on failure
 * records "where: section.key: reason" and returns the code. */
static int check_string(const Key *k, const char *s, const char *where)
{
    size_t len = strlen(s), limit = string_limit(k);
    if (len > limit)
        return psrec_errf(PSREC_E_RANGE, "%s: %s.%s: value is too long (%zu characters, limit %zu)",
                          where, k->section, k->name, len, limit);
    if (len == 0 && (k->flags & KF_NONEMPTY))
        return psrec_errf(PSREC_E_RANGE, "%s: %s.%s: must not be empty", where, k->section,
                          k->name);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return psrec_errf(PSREC_E_PARSE, "%s: %s.%s: value contains a control character",
                              where, k->section, k->name);
    if (len && (isspace((unsigned char)s[0]) || isspace((unsigned char)s[len - 1])))
        return psrec_errf(PSREC_E_PARSE,
                          "%s: %s.%s: '%s' starts or ends with a space, which a config file "
                          "cannot carry", where, k->section, k->name, s);
    for (size_t i = 0; i < len; i++)
        if (s[i] == ';' && (i == 0 || isspace((unsigned char)s[i - 1])))
            return psrec_errf(PSREC_E_PARSE,
                              "%s: %s.%s: '%s' has a ';' that would start a comment in a config "
                              "file", where, k->section, k->name, s);
    return 0;
}

/* The reason a value failed to parse, with a hint when it looks like a '#' comment. */
static int bad_value(const Key *k, const char *value, const char *where, const char *what)
{
    const char *hint = strchr(value, '#') ? " (comments after a value start with ';')" : "";
    return psrec_errf(PSREC_E_PARSE, "%s: %s.%s: '%s' %s%s", where, k->section, k->name, value,
                      what, hint);
}

static int out_of_range(const Key *k, const char *text, const char *where)
{
    char range[96];
    format_range(k, range, sizeof range);
    return psrec_errf(PSREC_E_RANGE, "%s: %s.%s: %s is out of range %s", where, k->section,
                      k->name, text, range);
}

/* Parse value for key k and store it in cfg; cfg is untouched on error. */
static int set_value(Config *cfg, const Key *k, const char *value, const char *where)
{
    char *field = (char *)cfg + k->offset;
    switch (k->type) {
    case KT_INT: {
        long long v = 0;
        int rc = parse_ll(value, &v);
        if (rc == -1)
            return bad_value(k, value, where, "is not an integer");
        if (rc == -2 || v < k->imin || v > k->imax)
            return out_of_range(k, value, where);
        *(int *)field = (int)v;
        return 0;
    }
    case KT_U64: {
        uint64_t v = 0;
        int rc = parse_u64(value, &v);
        if (rc == -1)
            return bad_value(k, value, where, "is not a non-negative integer");
        if (rc == -2)
            return psrec_errf(PSREC_E_RANGE, "%s: %s.%s: %s is out of range [0, %llu]", where,
                              k->section, k->name, value, (unsigned long long)UINT64_MAX);
        if (k->imax && (v < (uint64_t)k->imin || v > (uint64_t)k->imax))
            return out_of_range(k, value, where);
        *(uint64_t *)field = v;
        return 0;
    }
    case KT_DOUBLE: {
        double v = 0;
        int rc = parse_double(value, &v);
        if (rc == -1)
            return bad_value(k, value, where, "is not a number");
        if (rc == -2)
            return bad_value(k, value, where, "is not a finite number");
        if (!double_in_range(k, v))
            return out_of_range(k, value, where);
        *(double *)field = v;
        return 0;
    }
    case KT_BOOL: {
        bool v = false;
        if (parse_bool(value, &v))
            return bad_value(k, value, where,
                             "is not a boolean (use true/false, yes/no, on/off or 1/0)");
        *(bool *)field = v;
        return 0;
    }
    case KT_ENUM: {
        int v = 0;
        if (parse_enum(k, value, &v)) {
            char words[128], what[160];
            format_words(k, ", ", words, sizeof words);
            snprintf(what, sizeof what, "is not one of %s", words);
            return bad_value(k, value, where, what);
        }
        *(int *)field = v;
        return 0;
    }
    case KT_STRING: {
        int rc = check_string(k, value, where);
        if (rc)
            return rc;
        memcpy(field, value, strlen(value) + 1);
        return 0;
    }
    }
    return psrec_errf(PSREC_E_STATE, "%s: %s.%s: bad key type", where, k->section, k->name);
}

/* Current value of key k in cfg as config-file text. */
static void format_value(const Config *cfg, const Key *k, char *out, size_t size)
{
    const char *field = (const char *)cfg + k->offset;
    switch (k->type) {
    case KT_INT:
        snprintf(out, size, "%d", *(const int *)field);
        break;
    case KT_U64:
        snprintf(out, size, "%llu", (unsigned long long)*(const uint64_t *)field);
        break;
    case KT_DOUBLE:
        format_double(*(const double *)field, out, size);
        break;
    case KT_BOOL:
        snprintf(out, size, "%s", *(const bool *)field ? "true" : "false");
        break;
    case KT_ENUM: {
        int v = *(const int *)field;
        snprintf(out, size, "%s", v >= 0 && v < enum_count(k) ? k->words[v] : "?");
        break;
    }
    case KT_STRING:
        snprintf(out, size, "%.*s", CONFIG_STR_MAX - 1, field);
        break;
    }
}

/* Check the value already in cfg for key k (it may have been set directly in code). */
static int check_field(const Config *cfg, const Key *k, const char *where)
{
    const char *field = (const char *)cfg + k->offset;
    char text[64];
    switch (k->type) {
    case KT_INT: {
        int v = *(const int *)field;
        if (v < k->imin || v > k->imax) {
            snprintf(text, sizeof text, "%d", v);
            return out_of_range(k, text, where);
        }
        return 0;
    }
    case KT_DOUBLE: {
        double v = *(const double *)field;
        if (!isfinite(v) || !double_in_range(k, v)) {
            format_double(v, text, sizeof text);
            return out_of_range(k, text, where);
        }
        return 0;
    }
    case KT_ENUM: {
        int v = *(const int *)field;
        if (v < 0 || v >= enum_count(k))
            return psrec_errf(PSREC_E_RANGE, "%s: %s.%s: %d is not a valid value", where,
                              k->section, k->name, v);
        return 0;
    }
    case KT_STRING:
        if (!memchr(field, '\0', CONFIG_STR_MAX))
            return psrec_errf(PSREC_E_RANGE, "%s: %s.%s: value is not terminated", where,
                              k->section, k->name);
        return check_string(k, field, where);
    case KT_U64: {
        uint64_t v = *(const uint64_t *)field;
        if (k->imax && (v < (uint64_t)k->imin || v > (uint64_t)k->imax)) {
            snprintf(text, sizeof text, "%llu", (unsigned long long)v);
            return out_of_range(k, text, where);
        }
        return 0;
    }
    case KT_BOOL:
        return 0;
    }
    return 0;
}

/* A section or key name as messages show it: printable ASCII as is, every other byte as
 * \xHH. inih cuts long names at a fixed byte count, possibly inside a UTF-8 character, so a
 * name is never echoed raw (a fuzzer found one). */
static const char *name_shown(const char *name, char *out, size_t size)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p && o + 5 < size; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\')
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", *p);
    }
    out[o] = '\0';
    return out;
}

/* ---- public: set, defaults, check ---- */

int config_set(Config *cfg, const char *section, const char *key, const char *value,
               const char *where)
{
    if (!where)
        where = "config";
    const Key *k = find_key(section, key);
    if (k)
        return set_value(cfg, k, value, where);
    char hint[2 * NAME_MAX_LEN + 32], sec[256], name[256];
    suggest_key(section, key, hint, sizeof hint);
    name_shown(section, sec, sizeof sec);
    name_shown(key, name, sizeof name);
    if (!section_known(section))
        return psrec_errf(PSREC_E_PARSE, "%s: %s.%s: unknown section [%s]%s", where, sec, name,
                          sec, hint);
    return psrec_errf(PSREC_E_PARSE, "%s: %s.%s: unknown key%s", where, sec, name, hint);
}

void config_defaults(Config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++) {
        int rc = set_value(cfg, &keys[i], keys[i].def, "default");
        assert(rc == 0 && "a default in keys[] fails its own key's checks");
        (void)rc;
    }
}

int config_check(const Config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        int rc = check_field(cfg, &keys[i], "config");
        if (rc)
            return rc;
    }
    /* Cross-key rules go here. None is needed yet: ps.staleness is simply unused unless
     * ps.consistency is ssp, and optimizer constants of other optimizers are ignored. */
    return 0;
}

int config_checkpoint_dir(const Config *cfg, char *out, size_t size)
{
    int n = cfg->checkpoint.dir[0] ? snprintf(out, size, "%s", cfg->checkpoint.dir)
                                   : snprintf(out, size, "%s/ckpt", cfg->run.dir);
    if (n < 0 || (size_t)n >= size)
        return psrec_errf(PSREC_E_RANGE, "checkpoint directory does not fit in %zu bytes", size);
    return 0;
}

const char *config_optimizer_name(ConfigOptimizer o)
{
    int n = (int)(sizeof optimizer_words / sizeof optimizer_words[0]) - 1;
    return (int)o >= 0 && (int)o < n ? optimizer_words[o] : "?";
}

const char *config_security_name(ConfigSecurity sec)
{
    int n = (int)(sizeof security_words / sizeof security_words[0]) - 1;
    return (int)sec >= 0 && (int)sec < n ? security_words[sec] : "?";
}

const char *config_consistency_name(ConfigConsistency c)
{
    int n = (int)(sizeof consistency_words / sizeof consistency_words[0]) - 1;
    return (int)c >= 0 && (int)c < n ? consistency_words[c] : "?";
}

/* ---- files ---- */

/* State of one config_load_file(). inih calls read_line() for each physical line and
 * on_key() for each key line; read_line() also catches what inih would accept silently
 * or misreport (long lines, text after "]", empty unknown sections) and counts lines,
 * since this inih build does not pass line numbers to the handler. */
typedef struct Loader {
    const char *path;
    FILE *f;
    Config cfg;              /* scratch copy, committed only when the whole file is good */
    char *buf;               /* getline() buffer */
    size_t cap;
    long lineno;             /* line last handed to inih */
    int err;                 /* first error (message in psrec_errmsg()), 0 = none */
    long err_line;
    long set_at[NKEYS];      /* line where each key was set, 0 = not in this file */
    long unknown_sec_line;   /* header of an unknown section with no key yet, 0 = none */
    char unknown_sec[NAME_MAX_LEN];
} Loader;

/* Mirror of inih's search: first char of chars, or an inline ';' comment (one preceded by
 * whitespace), or the end of s. */
static const char *find_delim(const char *s, const char *chars)
{
    bool was_space = false;
    while (*s && !strchr(chars, *s) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

static void copy_trimmed(char *out, size_t size, const char *s, size_t len)
{
    while (len && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    if (len >= size)
        len = size - 1;
    memcpy(out, s, len);
    out[len] = '\0';
}

static int load_error(Loader *ld, long line, int code)
{
    ld->err = code;
    ld->err_line = line;
    return code;
}

/* An unknown section header followed by no key is still a mistake; report it at its line. */
static int flush_unknown_section(Loader *ld)
{
    if (!ld->unknown_sec_line)
        return 0;
    char hint[NAME_MAX_LEN + 32], sec[256];
    suggest_section(ld->unknown_sec, hint, sizeof hint);
    return load_error(ld, ld->unknown_sec_line,
                      psrec_errf(PSREC_E_PARSE, "%s:%ld: [%s]: unknown section%s", ld->path,
                                 ld->unknown_sec_line, name_shown(ld->unknown_sec, sec, sizeof sec),
                                 hint));
}

/* Check a "[section]" line; s is left-trimmed and starts with '['. */
static int check_section_line(Loader *ld, const char *s)
{
    const char *end = find_delim(s + 1, "]");
    if (*end != ']')
        return load_error(ld, ld->lineno,
                          psrec_errf(PSREC_E_PARSE, "%s:%ld: syntax error: '%s' has no closing ']'",
                                     ld->path, ld->lineno, s));
    const char *rest = end + 1;
    while (isspace((unsigned char)*rest))
        rest++;
    if (*rest && *rest != ';' && *rest != '#')
        return load_error(ld, ld->lineno,
                          psrec_errf(PSREC_E_PARSE,
                                     "%s:%ld: syntax error: unexpected text after ']' in '%s'",
                                     ld->path, ld->lineno, s));
    int rc = flush_unknown_section(ld);
    if (rc)
        return rc;
    char name[NAME_MAX_LEN];
    copy_trimmed(name, sizeof name, s + 1, (size_t)(end - (s + 1)));
    if (!section_known(name)) {
        ld->unknown_sec_line = ld->lineno;
        memcpy(ld->unknown_sec, name, sizeof name);
    }
    return 0;
}

/* Why a non-comment line cannot be config text, or NULL: a NUL byte (C strings would stop
 * there: `hidden = 3\0 2` read as 3), another control character, or bytes that are not
 * UTF-8. Refused before anything quotes the line in a message, so no message ever echoes raw
 * binary to a terminal; *col receives the offending byte's 1-based column. */
static const char *line_problem(const unsigned char *s, size_t n, size_t *col)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        *col = i + 1;
        if (c == 0)
            return "a NUL byte";
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return "a control character";
        if (c < 0x80)
            continue;
        /* UTF-8: a lead byte C2..F4 and its continuation bytes 80..BF. */
        size_t more = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2
                      : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
        if (!more || i + more >= n)
            return "bytes that are not UTF-8 text";
        for (size_t j = 1; j <= more; j++)
            if ((s[i + j] & 0xc0) != 0x80)
                return "bytes that are not UTF-8 text";
        i += more;
    }
    return NULL;
}

/* The first bytes of a line with everything outside printable ASCII as \xHH. */
static void escape_excerpt(const unsigned char *s, size_t n, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < size; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
            out[o++] = (char)s[i];
        else
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", s[i]);
    }
    out[o] = '\0';
}

/* inih's reader: hand over one physical line, without its line ending, leading spaces
 * (so inih never joins indented lines as multi-line values) or UTF-8 BOM. */
static char *read_line(char *out, int num, void *stream)
{
    Loader *ld = stream;
    if (ld->err)
        return NULL;
    errno = 0;
    ssize_t n = getline(&ld->buf, &ld->cap, ld->f);
    if (n < 0) {
        if (ferror(ld->f) || errno == ENOMEM) {
            int e = errno ? errno : EIO;
            load_error(ld, ld->lineno + 1,
                       psrec_errf(PSREC_E_NOTFOUND, "%s: cannot read config file: %s", ld->path,
                                  strerror(e)));
            return NULL;
        }
        flush_unknown_section(ld);
        return NULL;
    }
    ld->lineno++;
    char *s = ld->buf;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    if (ld->lineno == 1 && !strncmp(s, "\xEF\xBB\xBF", 3))
        s += 3;
    while (isspace((unsigned char)*s))
        s++;
    size_t raw = (size_t)n - (size_t)(s - ld->buf), col;
    const char *why = *s == ';' || *s == '#' ? NULL
                      : line_problem((const unsigned char *)s, raw, &col);
    if (why) {
        char ex[48 * 4 + 8];
        escape_excerpt((const unsigned char *)s, raw < 48 ? raw : 48, ex, sizeof ex);
        load_error(ld, ld->lineno,
                   psrec_errf(PSREC_E_PARSE, "%s:%ld: the line holds %s (column %zu): \"%s\"%s",
                              ld->path, ld->lineno, why, col, ex, raw > 48 ? "..." : ""));
        return NULL;
    }
    size_t len = strlen(s), limit = (size_t)num - 1;

    if (*s == '\0' || *s == ';' || *s == '#') {
        /* A comment may be of any length: inih only needs to see that it is one. */
        if (len > limit)
            s[limit] = '\0';
    } else if (len > limit) {
        load_error(ld, ld->lineno,
                   psrec_errf(PSREC_E_PARSE, "%s:%ld: line too long (%zu characters, limit %zu)",
                              ld->path, ld->lineno, len, limit));
        return NULL;
    } else if (*s == '[') {
        if (check_section_line(ld, s))
            return NULL;
    } else {
        const char *d = find_delim(s, "=:");
        if (*d != '=' && *d != ':') {
            load_error(ld, ld->lineno,
                       psrec_errf(PSREC_E_PARSE, "%s:%ld: syntax error: expected 'key = value' "
                                  "or '[section]', got '%s'", ld->path, ld->lineno, s));
            return NULL;
        }
        if (d == s) {
            load_error(ld, ld->lineno,
                       psrec_errf(PSREC_E_PARSE, "%s:%ld: syntax error: no key before '%c'",
                                  ld->path, ld->lineno, *d));
            return NULL;
        }
    }
    memcpy(out, s, strlen(s) + 1);
    return out;
}

/* inih's handler: one "key = value" line of the current section. Returns 1 to go on. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    Loader *ld = user;
    if (ld->err)
        return 0;
    ld->unknown_sec_line = 0; /* the key itself reports the unknown section */
    char where[PATH_MAX + 32];
    snprintf(where, sizeof where, "%s:%ld", ld->path, ld->lineno);
    char sec[NAME_MAX_LEN];
    copy_trimmed(sec, sizeof sec, section, strlen(section));
    if (!sec[0]) {
        load_error(ld, ld->lineno,
                   psrec_errf(PSREC_E_PARSE, "%s: %s: key outside any [section]", where, name));
        return 0;
    }
    const Key *k = find_key(sec, name);
    if (k && ld->set_at[k - keys]) {
        load_error(ld, ld->lineno,
                   psrec_errf(PSREC_E_PARSE, "%s: %s.%s: given twice (first on line %ld)", where,
                              sec, name, ld->set_at[k - keys]));
        return 0;
    }
    int rc = config_set(&ld->cfg, sec, name, value, where);
    if (rc) {
        load_error(ld, ld->lineno, rc);
        return 0;
    }
    ld->set_at[k - keys] = ld->lineno;
    return 1;
}

int config_load_file(Config *cfg, const char *path)
{
    Loader *ld = calloc(1, sizeof *ld);
    if (!ld)
        return psrec_errf(PSREC_E_NOMEM, "%s: out of memory reading config file", path);
    int rc = 0;
    ld->path = path;
    ld->cfg = *cfg;
    ld->f = fopen(path, "rb");
    if (!ld->f) {
        rc = psrec_errf(PSREC_E_NOTFOUND, "%s: cannot open config file: %s", path,
                        strerror(errno));
        goto out;
    }
    int line = ini_parse_stream(read_line, ld, on_key, ld);
    if (line > 0 && (!ld->err || line < ld->err_line)) {
        /* inih rejected a line that read_line() let through: report inih's verdict. */
        rc = psrec_errf(PSREC_E_PARSE, "%s:%d: syntax error", path, line);
    } else if (ld->err) {
        rc = ld->err;
    } else if (line < 0) {
        rc = psrec_errf(PSREC_E_NOMEM, "%s: out of memory reading config file", path);
    } else {
        *cfg = ld->cfg;
    }
out:
    if (ld->f)
        fclose(ld->f);
    free(ld->buf);
    free(ld);
    return rc;
}

/* ---- command line ---- */

static int bad_override(const char *arg)
{
    return psrec_errf(PSREC_E_USAGE, "command line: '%s': expected --section.key=value", arg);
}

int config_apply_override(Config *cfg, const char *arg)
{
    if (strncmp(arg, "--", 2))
        return bad_override(arg);
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    if (!eq)
        return bad_override(arg);
    const char *dot = memchr(name, '.', (size_t)(eq - name));
    if (!dot || dot == name || dot + 1 == eq)
        return bad_override(arg);
    size_t slen = (size_t)(dot - name), klen = (size_t)(eq - dot - 1);
    if (slen >= NAME_MAX_LEN || klen >= NAME_MAX_LEN)
        return psrec_errf(PSREC_E_PARSE, "command line: %.*s: unknown key", (int)(eq - name),
                          name);
    char sec[NAME_MAX_LEN], key[NAME_MAX_LEN];
    memcpy(sec, name, slen);
    sec[slen] = '\0';
    memcpy(key, dot + 1, klen);
    key[klen] = '\0';
    return config_set(cfg, sec, key, eq + 1, "command line");
}

/* Does arg look like an attempt at --section.key=value (a '.' before any '=')? */
static bool is_override(const char *arg)
{
    if (strncmp(arg, "--", 2))
        return false;
    size_t name_len = strcspn(arg + 2, "=");
    return memchr(arg + 2, '.', name_len) != NULL;
}

int config_load(Config *cfg, const char *path, int argc, char **argv)
{
    config_defaults(cfg);
    int rc = path ? config_load_file(cfg, path) : 0;
    if (rc)
        return rc;
    int applied = 0;
    for (int i = 0; i < argc; i++) {
        if (!is_override(argv[i]))
            continue;
        rc = config_apply_override(cfg, argv[i]);
        if (rc)
            return rc;
        applied++;
    }
    rc = config_check(cfg);
    return rc ? rc : applied;
}

/* ---- printing ---- */

int config_write(const Config *cfg, FILE *f)
{
    int rc = config_check(cfg);
    if (rc)
        return rc;
    errno = 0;
    fprintf(f, "# psrec experiment configuration (effective values; every key is listed).\n"
               "# Run it with: psrec train THIS_FILE [--section.key=value ...]\n");
    for (size_t s = 0; s < NSECTIONS; s++) {
        fprintf(f, "\n[%s]\n", sections[s]);
        for (size_t i = 0; i < NKEYS; i++) {
            const Key *k = &keys[i];
            if (strcmp(k->section, sections[s]))
                continue;
            char value[CONFIG_STR_MAX];
            format_value(cfg, k, value, sizeof value);
            if (k->offset == offsetof(Config, ps.security) && cfg->ps.security == SECURITY_NONE)
                fprintf(f, "# WARNING: ps.security = none: PS traffic is neither authenticated "
                           "nor encrypted; anyone who reaches a shard's port can read and "
                           "change the model\n");
            fprintf(f, "# %s\n%s =%s%s\n", k->doc, k->name, value[0] ? " " : "", value);
        }
    }
    if (fflush(f) || ferror(f))
        return errno ? errno : EIO;
    return 0;
}

void config_print_reference(FILE *f)
{
    fprintf(f, "Config keys: set them in the [section] of an INI file as 'key = value', or on the\n"
               "command line as --section.key=value (which beats the file).\n\n");
    fprintf(f, "%-24s %-17s %-12s %-16s %s\n", "key", "type", "default", "range", "meaning");
    for (size_t s = 0; s < NSECTIONS; s++) {
        for (size_t i = 0; i < NKEYS; i++) {
            const Key *k = &keys[i];
            if (strcmp(k->section, sections[s]))
                continue;
            char full[2 * NAME_MAX_LEN], type[128], def[64], range[96];
            snprintf(full, sizeof full, "%s.%s", k->section, k->name);
            switch (k->type) {
            case KT_INT: snprintf(type, sizeof type, "int"); break;
            case KT_U64: snprintf(type, sizeof type, "uint64"); break;
            case KT_DOUBLE: snprintf(type, sizeof type, "float"); break;
            case KT_BOOL: snprintf(type, sizeof type, "bool"); break;
            case KT_STRING: snprintf(type, sizeof type, "string"); break;
            case KT_ENUM: format_words(k, "|", type, sizeof type); break;
            }
            if (k->type == KT_STRING)
                snprintf(def, sizeof def, "\"%s\"", k->def);
            else
                snprintf(def, sizeof def, "%s", k->def);
            format_range(k, range, sizeof range);
            fprintf(f, "%-24s %-17s %-12s %-16s %s\n", full, type, def, range[0] ? range : "-",
                    k->doc);
        }
    }
}
