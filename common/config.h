/* Experiment configuration: the Config struct, read from an INI file (inih) and overridden by
 * `--section.key=value` command-line arguments.
 *
 * One static table in config.c describes every key (section, name, type, default, range, doc,
 * field offset); loading, overrides, printing the effective config and the reference all come
 * from it, so a key added there is everywhere at once.
 *
 * Errors are one line naming where and what, recorded with psrec_errf() (read it back with
 * psrec_errmsg()):
 *     exp.conf:7: train.lr: 'abc' is not a number
 *     command line: train.batch_size: 0 is out of range [1, 1048576]
 *
 * All functions are reentrant (no global state besides the constant table). */
#ifndef PSREC_COMMON_CONFIG_H
#define PSREC_COMMON_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Size of every string field, NUL included. inih (as packaged) reads at most 199 characters
 * per line, so a value must also fit on one `key = value` line of that length; config_set()
 * rejects longer values, which keeps every Config writable and readable back. */
#define CONFIG_STR_MAX 256

typedef enum ConfigOptimizer {
    OPTIMIZER_ADAM,
    OPTIMIZER_ADAGRAD,
    OPTIMIZER_SGD,
} ConfigOptimizer;

typedef enum ConfigPartition {
    PARTITION_RANGE,
    PARTITION_INTERLEAVE,
} ConfigPartition;

typedef enum ConfigConsistency {
    CONSISTENCY_BSP, /* every worker waits for all others at each step */
    CONSISTENCY_SSP, /* a worker may run at most ps.staleness steps ahead of the slowest */
    CONSISTENCY_ASP, /* nobody waits */
} ConfigConsistency;

/* Every field is a key `section.name` of the file; see config_print_reference() for the
 * meaning, default and range of each. */
typedef struct Config {
    struct {
        char train[CONFIG_STR_MAX]; /* prepared LMDB dataset dir; "" = not given */
        char dev[CONFIG_STR_MAX];   /* "" = no evaluation */
        char test[CONFIG_STR_MAX];  /* "" = not given */
        ConfigPartition partition;
    } data;
    struct {
        int word_dim;  /* E */
        int hidden;    /* H */
        int title_len; /* title tokens kept */
        int his_len;   /* clicks in the user history */
    } model;
    struct {
        int epochs;
        int batch_size; /* B */
        int negatives;  /* K */
        double lr;
        ConfigOptimizer optimizer;
        uint64_t seed;
        int threads; /* 0 = all cores */
        double adam_beta1;
        double adam_beta2;
        double adam_eps;
        double adagrad_eps;
    } train;
    struct {
        int servers;
        ConfigConsistency consistency;
        int staleness; /* SSP bound s */
        bool colocate;
        int port; /* 0 = ephemeral */
        char host[CONFIG_STR_MAX]; /* "" = first non-loopback IPv4 of this host */
        double rendezvous_timeout; /* seconds */
        double heartbeat_interval; /* seconds */
        double heartbeat_timeout;  /* seconds */
        uint64_t max_message_bytes;    /* one message, all frames (shards and workers) */
        uint64_t max_keys_per_request; /* one pull or push */
        uint64_t max_rows_per_table;   /* rows a shard holds of one table */
    } ps;
    struct {
        int every_steps; /* 0 = off (the end of training always writes one) */
        double every_seconds; /* 0 = off */
        int keep;
        char dir[CONFIG_STR_MAX]; /* "" = <run.dir>/ckpt, see config_checkpoint_dir() */
    } checkpoint;
    struct {
        char dir[CONFIG_STR_MAX]; /* never empty */
        char name[CONFIG_STR_MAX];
        int log_every; /* steps */
        double log_every_seconds; /* progress line interval when stderr is not a TTY */
    } run;
} Config;

/* Fill every field with its default (the demo experiment's values, data paths empty). */
void config_defaults(Config *cfg);

/* Read the INI file at path and apply each key on top of the current values of *cfg.
 * Every key is validated (section, name, type, range, enum word); a key given twice in the
 * file, a syntax error or a line longer than 199 characters is an error too.
 * Returns 0, PSREC_E_PARSE (unknown section/key, malformed value or line), PSREC_E_RANGE
 * (value out of range or too long) or PSREC_E_NOTFOUND (the file cannot be opened or read);
 * the message is "PATH:LINE: section.key: reason". On error *cfg is left unchanged. */
int config_load_file(Config *cfg, const char *path);

/* Apply one command-line override "--section.key=value". Returns 0, PSREC_E_USAGE when arg is
 * not of that form, or the codes of config_set(); messages start with "command line: ".
 * On error *cfg is left unchanged. */
int config_apply_override(Config *cfg, const char *arg);

/* Parse value as the type of key section.key and store it in *cfg: the one path shared by
 * files and overrides. where prefixes the error message ("exp.conf:7", "command line"; NULL
 * means "config"). Returns 0, PSREC_E_PARSE (unknown section or key, malformed value) or
 * PSREC_E_RANGE (out of range, too long, empty where a value is required). On error *cfg is
 * left unchanged. */
int config_set(Config *cfg, const char *section, const char *key, const char *value,
               const char *where);

/* Check a whole Config: every field against its key's rules (catches fields set directly in
 * code) and the rules that involve several keys. Returns 0, PSREC_E_RANGE (value out of range)
 * or PSREC_E_PARSE (a string no config file can carry), with a message
 * "config: section.key: reason". */
int config_check(const Config *cfg);

/* Convenience for commands: defaults, then the file at path (skipped when path is NULL), then
 * every element of argv[0..argc) that starts with "--" and has a '.' in its name (the part
 * before any '=') as an override, in order, a later one winning; other elements are left
 * alone, and "--train.lr 0.1" (no '=') is an error rather than silently ignored. Then
 * config_check(). Returns the number of overrides applied (>= 0) or a negative code of the
 * functions above; on error *cfg may hold the defaults and part of the settings. */
int config_load(Config *cfg, const char *path, int argc, char **argv);

/* Write the effective config as an INI file that config_load_file() reads back to an equal
 * Config: every key, its doc as a comment line above it, no line over 199 characters.
 * Returns 0, the code of config_check() when cfg fails it (nothing is written then), or an
 * errno value when writing fails. */
int config_write(const Config *cfg, FILE *f);

/* Print every key with its type, default, range and doc (for README and --help). */
void config_print_reference(FILE *f);

/* Resolve the checkpoint directory: checkpoint.dir, or <run.dir>/ckpt when it is empty.
 * Returns 0 or PSREC_E_RANGE when it does not fit in size bytes. */
int config_checkpoint_dir(const Config *cfg, char *out, size_t size);

/* Config-file words of the enum values ("adam", "ssp"); "?" for a value out of the enum.
 * Static strings. */
const char *config_optimizer_name(ConfigOptimizer o);
const char *config_consistency_name(ConfigConsistency c);

#endif
