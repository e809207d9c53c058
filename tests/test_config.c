/* CUnit suite for common/config: defaults, valid files, every error class with its exact
 * "FILE:LINE: section.key: reason" text, command-line overrides, the write -> read round trip,
 * and the shipped configs/ files. */
#include "common/config.h"
#include "common/error.h"
#include "testutil/testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tmpdir[4096];
static char conf_path[4200];

/* Write text to tmpdir/exp.conf (path in conf_path). */
static void write_conf(const char *text)
{
    snprintf(conf_path, sizeof conf_path, "%s/exp.conf", tmpdir);
    if (tu_write_file(conf_path, text) != 0) {
        fprintf(stderr, "cannot write %s\n", conf_path);
        abort();
    }
}

/* Defaults, then text as a file. */
static int load_text(Config *cfg, const char *text)
{
    write_conf(text);
    config_defaults(cfg);
    psrec_errclear();
    return config_load_file(cfg, conf_path);
}

static void check_msg(const char *want)
{
    const char *got = psrec_errmsg();
    if (strcmp(got, want))
        fprintf(stderr, "\n  want: %s\n  got:  %s\n", want, got);
    CU_ASSERT_STRING_EQUAL(got, want);
}

static void check_msg_has(const char *want)
{
    if (!strstr(psrec_errmsg(), want))
        fprintf(stderr, "\n  want: ...%s...\n  got:  %s\n", want, psrec_errmsg());
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), want));
}

/* Loading text fails with code and the message "<conf_path>" + tail. */
static void expect_file_error(const char *text, int code, const char *tail)
{
    Config cfg;
    int rc = load_text(&cfg, text);
    CU_ASSERT_EQUAL(rc, code);
    char want[8192];
    snprintf(want, sizeof want, "%s%s", conf_path, tail);
    check_msg(want);
}

static void expect_override_error(const char *arg, int code, const char *msg)
{
    Config cfg;
    config_defaults(&cfg);
    psrec_errclear();
    CU_ASSERT_EQUAL(config_apply_override(&cfg, arg), code);
    check_msg(msg);
}

/* Every field, one by one, so a mismatch names the field. */
static void assert_config_equal(const Config *a, const Config *b)
{
    CU_ASSERT_STRING_EQUAL(a->data.train, b->data.train);
    CU_ASSERT_STRING_EQUAL(a->data.dev, b->data.dev);
    CU_ASSERT_STRING_EQUAL(a->data.test, b->data.test);
    CU_ASSERT_EQUAL(a->model.word_dim, b->model.word_dim);
    CU_ASSERT_EQUAL(a->model.hidden, b->model.hidden);
    CU_ASSERT_EQUAL(a->model.title_len, b->model.title_len);
    CU_ASSERT_EQUAL(a->model.his_len, b->model.his_len);
    CU_ASSERT_EQUAL(a->train.epochs, b->train.epochs);
    CU_ASSERT_EQUAL(a->train.batch_size, b->train.batch_size);
    CU_ASSERT_EQUAL(a->train.negatives, b->train.negatives);
    CU_ASSERT(a->train.lr == b->train.lr);
    CU_ASSERT_EQUAL(a->train.optimizer, b->train.optimizer);
    CU_ASSERT(a->train.seed == b->train.seed);
    CU_ASSERT_EQUAL(a->train.threads, b->train.threads);
    CU_ASSERT(a->train.adam_beta1 == b->train.adam_beta1);
    CU_ASSERT(a->train.adam_beta2 == b->train.adam_beta2);
    CU_ASSERT(a->train.adam_eps == b->train.adam_eps);
    CU_ASSERT(a->train.adagrad_eps == b->train.adagrad_eps);
    CU_ASSERT_EQUAL(a->ps.servers, b->ps.servers);
    CU_ASSERT_EQUAL(a->ps.consistency, b->ps.consistency);
    CU_ASSERT_EQUAL(a->ps.staleness, b->ps.staleness);
    CU_ASSERT_EQUAL(a->ps.colocate, b->ps.colocate);
    CU_ASSERT_EQUAL(a->ps.port, b->ps.port);
    CU_ASSERT(a->ps.rendezvous_timeout == b->ps.rendezvous_timeout);
    CU_ASSERT(a->checkpoint.every_seconds == b->checkpoint.every_seconds);
    CU_ASSERT(a->ps.heartbeat_interval == b->ps.heartbeat_interval);
    CU_ASSERT(a->ps.heartbeat_timeout == b->ps.heartbeat_timeout);
    CU_ASSERT_EQUAL(a->checkpoint.every_steps, b->checkpoint.every_steps);
    CU_ASSERT_EQUAL(a->checkpoint.keep, b->checkpoint.keep);
    CU_ASSERT_STRING_EQUAL(a->checkpoint.dir, b->checkpoint.dir);
    CU_ASSERT_STRING_EQUAL(a->run.dir, b->run.dir);
    CU_ASSERT_STRING_EQUAL(a->run.name, b->run.name);
    CU_ASSERT_EQUAL(a->run.log_every, b->run.log_every);
    CU_ASSERT(a->run.log_every_seconds == b->run.log_every_seconds);
}

static void test_defaults(void)
{
    Config cfg;
    memset(&cfg, 0xAB, sizeof cfg);
    config_defaults(&cfg);
    CU_ASSERT_STRING_EQUAL(cfg.data.train, "");
    CU_ASSERT_STRING_EQUAL(cfg.data.dev, "");
    CU_ASSERT_STRING_EQUAL(cfg.data.test, "");
    CU_ASSERT_EQUAL(cfg.model.word_dim, 64);
    CU_ASSERT_EQUAL(cfg.model.hidden, 64);
    CU_ASSERT_EQUAL(cfg.model.title_len, 20);
    CU_ASSERT_EQUAL(cfg.model.his_len, 30);
    CU_ASSERT_EQUAL(cfg.train.epochs, 3);
    CU_ASSERT_EQUAL(cfg.train.batch_size, 64);
    CU_ASSERT_EQUAL(cfg.train.negatives, 4);
    CU_ASSERT(cfg.train.lr == 1e-3);
    CU_ASSERT_EQUAL(cfg.train.optimizer, OPTIMIZER_ADAM);
    CU_ASSERT(cfg.train.seed == 1);
    CU_ASSERT_EQUAL(cfg.train.threads, 0);
    CU_ASSERT(cfg.train.adam_beta1 == 0.9);
    CU_ASSERT(cfg.train.adam_beta2 == 0.999);
    CU_ASSERT(cfg.train.adam_eps == 1e-8);
    CU_ASSERT(cfg.train.adagrad_eps == 1e-10);
    CU_ASSERT_EQUAL(cfg.ps.servers, 1);
    CU_ASSERT_EQUAL(cfg.ps.consistency, CONSISTENCY_BSP);
    CU_ASSERT_EQUAL(cfg.ps.staleness, 2);
    CU_ASSERT_EQUAL(cfg.ps.colocate, false);
    CU_ASSERT_EQUAL(cfg.ps.port, 0);
    CU_ASSERT(cfg.ps.rendezvous_timeout == 30.0);
    CU_ASSERT(cfg.checkpoint.every_seconds == 0.0);
    CU_ASSERT(cfg.run.log_every_seconds == 10.0);
    CU_ASSERT(cfg.ps.heartbeat_interval == 1.0);
    CU_ASSERT(cfg.ps.heartbeat_timeout == 10.0);
    CU_ASSERT_EQUAL(cfg.checkpoint.every_steps, 0);
    CU_ASSERT_EQUAL(cfg.checkpoint.keep, 3);
    CU_ASSERT_STRING_EQUAL(cfg.checkpoint.dir, "");
    CU_ASSERT_STRING_EQUAL(cfg.run.dir, "runs/demo");
    CU_ASSERT_STRING_EQUAL(cfg.run.name, "");
    CU_ASSERT_EQUAL(cfg.run.log_every, 50);
    CU_ASSERT_EQUAL(config_check(&cfg), 0);
}

static void test_enum_names(void)
{
    CU_ASSERT_STRING_EQUAL(config_optimizer_name(OPTIMIZER_ADAM), "adam");
    CU_ASSERT_STRING_EQUAL(config_optimizer_name(OPTIMIZER_ADAGRAD), "adagrad");
    CU_ASSERT_STRING_EQUAL(config_optimizer_name(OPTIMIZER_SGD), "sgd");
    CU_ASSERT_STRING_EQUAL(config_optimizer_name((ConfigOptimizer)3), "?");
    CU_ASSERT_STRING_EQUAL(config_consistency_name(CONSISTENCY_BSP), "bsp");
    CU_ASSERT_STRING_EQUAL(config_consistency_name(CONSISTENCY_SSP), "ssp");
    CU_ASSERT_STRING_EQUAL(config_consistency_name(CONSISTENCY_ASP), "asp");
    CU_ASSERT_STRING_EQUAL(config_consistency_name((ConfigConsistency)-1), "?");
}

static const char full_file[] =
    "# every key, none at its default\n"
    "[data]\n"
    "train = /data/mind/train.db\n"
    "dev = rel/dev.db\n"
    "test = /with space/test#1.db\n"
    "\n"
    "[model]\n"
    "word_dim = 32\n"
    "hidden = 48\n"
    "title_len = 12\n"
    "his_len = 7\n"
    "[train]\n"
    "epochs = 9\n"
    "batch_size = 1048576\n"
    "negatives = 0\n"
    "lr = 2.5e-4\n"
    "optimizer = Adagrad\n"
    "seed = 18446744073709551615\n"
    "threads = 8\n"
    "adam_beta1 = 0\n"
    "adam_beta2 = 0.95\n"
    "adam_eps = 1e-6\n"
    "adagrad_eps = 0.5\n"
    "[ps]\n"
    "servers = 4\n"
    "consistency = ssp\n"
    "staleness = 0\n"
    "colocate = YES\n"
    "port = 65535\n"
    "rendezvous_timeout = 0.25\n"
    "[checkpoint]\n"
    "every_seconds = 3600\n"
    "every_steps = 100\n"
    "keep = 1000\n"
    "dir = /ckpt/here\n"
    "[run]\n"
    "dir = out/x\n"
    "name = exp one\n"
    "log_every = 1\n"
    "log_every_seconds = 0.25\n";

static void check_full(const Config *cfg)
{
    CU_ASSERT_STRING_EQUAL(cfg->data.train, "/data/mind/train.db");
    CU_ASSERT_STRING_EQUAL(cfg->data.dev, "rel/dev.db");
    CU_ASSERT_STRING_EQUAL(cfg->data.test, "/with space/test#1.db");
    CU_ASSERT_EQUAL(cfg->model.word_dim, 32);
    CU_ASSERT_EQUAL(cfg->model.hidden, 48);
    CU_ASSERT_EQUAL(cfg->model.title_len, 12);
    CU_ASSERT_EQUAL(cfg->model.his_len, 7);
    CU_ASSERT_EQUAL(cfg->train.epochs, 9);
    CU_ASSERT_EQUAL(cfg->train.batch_size, 1048576);
    CU_ASSERT_EQUAL(cfg->train.negatives, 0);
    CU_ASSERT(cfg->train.lr == 2.5e-4);
    CU_ASSERT_EQUAL(cfg->train.optimizer, OPTIMIZER_ADAGRAD);
    CU_ASSERT(cfg->train.seed == UINT64_MAX);
    CU_ASSERT_EQUAL(cfg->train.threads, 8);
    CU_ASSERT(cfg->train.adam_beta1 == 0.0);
    CU_ASSERT(cfg->train.adam_beta2 == 0.95);
    CU_ASSERT(cfg->train.adam_eps == 1e-6);
    CU_ASSERT(cfg->train.adagrad_eps == 0.5);
    CU_ASSERT_EQUAL(cfg->ps.servers, 4);
    CU_ASSERT_EQUAL(cfg->ps.consistency, CONSISTENCY_SSP);
    CU_ASSERT_EQUAL(cfg->ps.staleness, 0);
    CU_ASSERT_EQUAL(cfg->ps.colocate, true);
    CU_ASSERT_EQUAL(cfg->ps.port, 65535);
    CU_ASSERT(cfg->ps.rendezvous_timeout == 0.25);
    CU_ASSERT(cfg->checkpoint.every_seconds == 3600.0);
    CU_ASSERT_EQUAL(cfg->checkpoint.every_steps, 100);
    CU_ASSERT_EQUAL(cfg->checkpoint.keep, 1000);
    CU_ASSERT_STRING_EQUAL(cfg->checkpoint.dir, "/ckpt/here");
    CU_ASSERT_STRING_EQUAL(cfg->run.dir, "out/x");
    CU_ASSERT(cfg->run.log_every_seconds == 0.25);
    CU_ASSERT_STRING_EQUAL(cfg->run.name, "exp one");
    CU_ASSERT_EQUAL(cfg->run.log_every, 1);
}

static void test_full_file(void)
{
    Config cfg;
    CU_ASSERT_EQUAL_FATAL(load_text(&cfg, full_file), 0);
    check_full(&cfg);
    CU_ASSERT_EQUAL(config_check(&cfg), 0);
}

/* A file sets only what it names; the rest keeps the values it had before the call. */
static void test_partial_file_keeps_rest(void)
{
    Config cfg;
    config_defaults(&cfg);
    cfg.model.hidden = 17;
    write_conf("[train]\nlr = 0.5\n");
    CU_ASSERT_EQUAL_FATAL(config_load_file(&cfg, conf_path), 0);
    CU_ASSERT(cfg.train.lr == 0.5);
    CU_ASSERT_EQUAL(cfg.model.hidden, 17);
    CU_ASSERT_EQUAL(cfg.train.epochs, 3);
}

static void test_comments_blank_lines_indent(void)
{
    Config cfg;
    int rc = load_text(&cfg,
                       "; a comment\n"
                       "# another comment\n"
                       "\n"
                       "   \n"
                       "  [train]   ; section comment\n"
                       "    lr = 0.5 ; inline comment\n"
                       "\tepochs=7\n"
                       "  # indented comment\n"
                       "batch_size : 16\n"
                       "\n"
                       "[data]\n"
                       "train = a;b.db\n"
                       "dev =\n"
                       "[ model ]\n"
                       "hidden = 8\n");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(cfg.train.lr == 0.5);
    /* An indented line is a key of its own, not a continuation of the one above. */
    CU_ASSERT_EQUAL(cfg.train.epochs, 7);
    CU_ASSERT_EQUAL(cfg.train.batch_size, 16);
    CU_ASSERT_STRING_EQUAL(cfg.data.train, "a;b.db");
    CU_ASSERT_STRING_EQUAL(cfg.data.dev, "");
    CU_ASSERT_EQUAL(cfg.model.hidden, 8);
}

static void test_crlf_and_bom(void)
{
    Config cfg;
    int rc = load_text(&cfg,
                       "\xEF\xBB\xBF# written on Windows\r\n"
                       "[train]\r\n"
                       "lr = 0.25\r\n"
                       "optimizer = sgd\r\n"
                       "\r\n"
                       "[run]\r\n"
                       "dir = C:/runs/x\r\n");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(cfg.train.lr == 0.25);
    CU_ASSERT_EQUAL(cfg.train.optimizer, OPTIMIZER_SGD);
    CU_ASSERT_STRING_EQUAL(cfg.run.dir, "C:/runs/x");

    /* Line numbers count CRLF lines too. */
    expect_file_error("[train]\r\nlr = 0.1\r\n\r\nepochs = x\r\n", PSREC_E_PARSE,
                      ":4: train.epochs: 'x' is not an integer");
}

static void test_bool_words(void)
{
    static const char *const yes[] = {"true", "TRUE", "yes", "Yes", "on", "ON", "1"};
    static const char *const no[] = {"false", "False", "no", "NO", "off", "Off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        Config cfg;
        config_defaults(&cfg);
        CU_ASSERT_EQUAL(config_set(&cfg, "ps", "colocate", yes[i], NULL), 0);
        CU_ASSERT_EQUAL(cfg.ps.colocate, true);
        CU_ASSERT_EQUAL(config_set(&cfg, "ps", "colocate", no[i], NULL), 0);
        CU_ASSERT_EQUAL(cfg.ps.colocate, false);
    }
}

static void test_error_unknown_key(void)
{
    expect_file_error("[model]\nword_dim = 8\nhiden = 3\n", PSREC_E_PARSE,
                      ":3: model.hiden: unknown key (did you mean model.hidden?)");
    /* Right name, wrong section. */
    expect_file_error("[train]\nhidden = 3\n", PSREC_E_PARSE,
                      ":2: train.hidden: unknown key (did you mean model.hidden?)");
    /* Nothing close: no hint. */
    expect_file_error("[train]\nzzzzzzzz = 3\n", PSREC_E_PARSE,
                      ":2: train.zzzzzzzz: unknown key");
    /* min_count belongs to psrec prep, not here. */
    expect_file_error("[model]\nmin_count = 3\n", PSREC_E_PARSE,
                      ":2: model.min_count: unknown key");
    expect_file_error("lr = 3\n", PSREC_E_PARSE, ":1: lr: key outside any [section]");
}

static void test_error_unknown_section(void)
{
    expect_file_error("[train]\nlr = 0.1\n[trian]\nepochs = 3\n", PSREC_E_PARSE,
                      ":4: trian.epochs: unknown section [trian] (did you mean train.epochs?)");
    /* An unknown section without keys is reported at its header, also at the end of file. */
    expect_file_error("[modle]\n# nothing\n\n[train]\nlr = 0.1\n", PSREC_E_PARSE,
                      ":1: [modle]: unknown section (did you mean [model]?)");
    expect_file_error("[train]\nlr = 0.1\n[zzzzzzzzzz]\n", PSREC_E_PARSE,
                      ":3: [zzzzzzzzzz]: unknown section");
}

static void test_error_bad_int(void)
{
    expect_file_error("[train]\nepochs = abc\n", PSREC_E_PARSE,
                      ":2: train.epochs: 'abc' is not an integer");
    expect_file_error("[train]\n\n\nbatch_size = 12x\n", PSREC_E_PARSE,
                      ":4: train.batch_size: '12x' is not an integer");
    expect_file_error("[model]\nhidden = 1.5\n", PSREC_E_PARSE,
                      ":2: model.hidden: '1.5' is not an integer");
    expect_file_error("[model]\nhidden =\n", PSREC_E_PARSE,
                      ":2: model.hidden: '' is not an integer");
    expect_file_error("[train]\nseed = -1\n", PSREC_E_PARSE,
                      ":2: train.seed: '-1' is not a non-negative integer");
    expect_file_error("[train]\nepochs = 3 # three\n", PSREC_E_PARSE,
                      ":2: train.epochs: '3 # three' is not an integer (comments after a value "
                      "start with ';')");
}

static void test_error_bad_float(void)
{
    expect_file_error("[train]\nepochs = 3\nlr = 1.5x\n", PSREC_E_PARSE,
                      ":3: train.lr: '1.5x' is not a number");
    expect_file_error("[train]\nlr = abc\n", PSREC_E_PARSE, ":2: train.lr: 'abc' is not a number");
    expect_file_error("[train]\nlr = nan\n", PSREC_E_PARSE,
                      ":2: train.lr: 'nan' is not a finite number");
    expect_file_error("[ps]\nrendezvous_timeout = inf\n", PSREC_E_PARSE,
                      ":2: ps.rendezvous_timeout: 'inf' is not a finite number");
}

static void test_error_out_of_range(void)
{
    expect_file_error("[train]\nbatch_size = 0\n", PSREC_E_RANGE,
                      ":2: train.batch_size: 0 is out of range [1, 1048576]");
    expect_file_error("[train]\nbatch_size = 1048577\n", PSREC_E_RANGE,
                      ":2: train.batch_size: 1048577 is out of range [1, 1048576]");
    expect_file_error("[ps]\nport = -1\n", PSREC_E_RANGE,
                      ":2: ps.port: -1 is out of range [0, 65535]");
    expect_file_error("[run]\nlog_every_seconds = 0\n", PSREC_E_RANGE,
                      ":2: run.log_every_seconds: 0 is out of range (0, 86400]");
    expect_file_error("[run]\nlog_every_seconds = 86401\n", PSREC_E_RANGE,
                      ":2: run.log_every_seconds: 86401 is out of range (0, 86400]");
    expect_file_error("[train]\nepochs = 99999999999999999999\n", PSREC_E_RANGE,
                      ":2: train.epochs: 99999999999999999999 is out of range [1, 100000]");
    expect_file_error("[train]\nseed = 18446744073709551616\n", PSREC_E_RANGE,
                      ":2: train.seed: 18446744073709551616 is out of range "
                      "[0, 18446744073709551615]");
    /* Float ranges, open and closed ends. */
    expect_file_error("[train]\nlr = 0\n", PSREC_E_RANGE,
                      ":2: train.lr: 0 is out of range (0, 10]");
    expect_file_error("[train]\nlr = 10.5\n", PSREC_E_RANGE,
                      ":2: train.lr: 10.5 is out of range (0, 10]");
    expect_file_error("[train]\nadam_beta1 = 1\n", PSREC_E_RANGE,
                      ":2: train.adam_beta1: 1 is out of range [0, 1)");
    expect_file_error("[train]\nadam_beta2 = -0.1\n", PSREC_E_RANGE,
                      ":2: train.adam_beta2: -0.1 is out of range [0, 1)");
    Config cfg;
    CU_ASSERT_EQUAL(load_text(&cfg, "[train]\nlr = 10\nadam_beta1 = 0\n"), 0);
    CU_ASSERT(cfg.train.lr == 10.0);
    expect_file_error("[run]\ndir =\n", PSREC_E_RANGE, ":2: run.dir: must not be empty");
}

static void test_error_bad_enum_and_bool(void)
{
    expect_file_error("[train]\noptimizer = adamw\n", PSREC_E_PARSE,
                      ":2: train.optimizer: 'adamw' is not one of adam, adagrad, sgd");
    expect_file_error("[ps]\nconsistency = async\n", PSREC_E_PARSE,
                      ":2: ps.consistency: 'async' is not one of bsp, ssp, asp");
    expect_file_error("[ps]\ncolocate = maybe\n", PSREC_E_PARSE,
                      ":2: ps.colocate: 'maybe' is not a boolean (use true/false, yes/no, on/off "
                      "or 1/0)");
}

static void test_error_duplicate(void)
{
    expect_file_error("[train]\nlr = 0.1\nepochs = 2\n[model]\nhidden = 8\n[train]\nlr = 0.2\n",
                      PSREC_E_PARSE, ":7: train.lr: given twice (first on line 2)");
}

static void test_error_syntax(void)
{
    expect_file_error("[train]\nlr 0.1\n", PSREC_E_PARSE,
                      ":2: syntax error: expected 'key = value' or '[section]', got 'lr 0.1'");
    expect_file_error("[train\nlr = 0.1\n", PSREC_E_PARSE,
                      ":1: syntax error: '[train' has no closing ']'");
    expect_file_error("[train] lr = 0.1\n", PSREC_E_PARSE,
                      ":1: syntax error: unexpected text after ']' in '[train] lr = 0.1'");
    expect_file_error("[train]\n= 0.1\n", PSREC_E_PARSE, ":2: syntax error: no key before '='");

    char text[1024];
    snprintf(text, sizeof text, "[data]\n# %0300d\ntrain = %0200d\n", 0, 0);
    expect_file_error(text, PSREC_E_PARSE, ":3: line too long (208 characters, limit 199)");
}

/* The first error in the file is the one reported, and a failed load changes nothing. */
static void test_first_error_wins_and_no_partial_apply(void)
{
    expect_file_error("[train]\nlr = 0.5\nepochs = x\nbatch_size = 0\n", PSREC_E_PARSE,
                      ":3: train.epochs: 'x' is not an integer");
    expect_file_error("[train]\nlr = 0.5\nbad line\nbatch_size = 0\n", PSREC_E_PARSE,
                      ":3: syntax error: expected 'key = value' or '[section]', got 'bad line'");
    Config cfg;
    config_defaults(&cfg);
    write_conf("[train]\nlr = 0.5\n[model]\nhidden = 9\nword_dim = big\n");
    CU_ASSERT_EQUAL(config_load_file(&cfg, conf_path), PSREC_E_PARSE);
    CU_ASSERT(cfg.train.lr == 1e-3);
    CU_ASSERT_EQUAL(cfg.model.hidden, 64);
}

static void test_error_missing_file(void)
{
    Config cfg;
    config_defaults(&cfg);
    char path[4200], want[8500];
    snprintf(path, sizeof path, "%s/no-such.conf", tmpdir);
    CU_ASSERT_EQUAL(config_load_file(&cfg, path), PSREC_E_NOTFOUND);
    snprintf(want, sizeof want, "%s: cannot open config file: No such file or directory", path);
    check_msg(want);
    CU_ASSERT_EQUAL(config_load(&cfg, path, 0, NULL), PSREC_E_NOTFOUND);
    /* A directory opens but cannot be read. */
    CU_ASSERT_EQUAL(config_load_file(&cfg, tmpdir), PSREC_E_NOTFOUND);
    snprintf(want, sizeof want, "%s: cannot read config file: Is a directory", tmpdir);
    check_msg(want);
}

static void test_overrides(void)
{
    Config cfg;
    config_defaults(&cfg);
    CU_ASSERT_EQUAL(config_apply_override(&cfg, "--train.lr=0.02"), 0);
    CU_ASSERT(cfg.train.lr == 0.02);
    CU_ASSERT_EQUAL(config_apply_override(&cfg, "--ps.consistency=asp"), 0);
    CU_ASSERT_EQUAL(cfg.ps.consistency, CONSISTENCY_ASP);
    CU_ASSERT_EQUAL(config_apply_override(&cfg, "--data.train=/x/y=z.db"), 0);
    CU_ASSERT_STRING_EQUAL(cfg.data.train, "/x/y=z.db");
    CU_ASSERT_EQUAL(config_apply_override(&cfg, "--data.dev="), 0);
    CU_ASSERT_STRING_EQUAL(cfg.data.dev, "");
    CU_ASSERT_EQUAL(config_apply_override(&cfg, "--ps.colocate=on"), 0);
    CU_ASSERT_EQUAL(cfg.ps.colocate, true);

    expect_override_error("--train.lr=x", PSREC_E_PARSE,
                          "command line: train.lr: 'x' is not a number");
    expect_override_error("--train.batch_size=0", PSREC_E_RANGE,
                          "command line: train.batch_size: 0 is out of range [1, 1048576]");
    expect_override_error("--train.lr=-1", PSREC_E_RANGE,
                          "command line: train.lr: -1 is out of range (0, 10]");
    expect_override_error("--train.epochs= 3", PSREC_E_PARSE,
                          "command line: train.epochs: ' 3' is not an integer");
    expect_override_error("--train.optimizer=rmsprop", PSREC_E_PARSE,
                          "command line: train.optimizer: 'rmsprop' is not one of adam, "
                          "adagrad, sgd");
    expect_override_error("--ps.colocate=2", PSREC_E_PARSE,
                          "command line: ps.colocate: '2' is not a boolean (use true/false, "
                          "yes/no, on/off or 1/0)");
    expect_override_error("--model.hiden=3", PSREC_E_PARSE,
                          "command line: model.hiden: unknown key (did you mean model.hidden?)");
    expect_override_error("--modle.hidden=3", PSREC_E_PARSE,
                          "command line: modle.hidden: unknown section [modle] (did you mean "
                          "model.hidden?)");
    expect_override_error("--run.dir=", PSREC_E_RANGE, "command line: run.dir: must not be empty");
    expect_override_error("--run.name=a ;b", PSREC_E_PARSE,
                          "command line: run.name: 'a ;b' has a ';' that would start a comment in "
                          "a config file");
    expect_override_error("--run.name= a", PSREC_E_PARSE,
                          "command line: run.name: ' a' starts or ends with a space, which a "
                          "config file cannot carry");
    expect_override_error("--run.name=a\nb", PSREC_E_PARSE,
                          "command line: run.name: value contains a control character");
    /* Not of the form --section.key=value. */
    expect_override_error("train.lr=1", PSREC_E_USAGE,
                          "command line: 'train.lr=1': expected --section.key=value");
    expect_override_error("--train.lr", PSREC_E_USAGE,
                          "command line: '--train.lr': expected --section.key=value");
    expect_override_error("--lr=1", PSREC_E_USAGE,
                          "command line: '--lr=1': expected --section.key=value");
    expect_override_error("--.lr=1", PSREC_E_USAGE,
                          "command line: '--.lr=1': expected --section.key=value");
    expect_override_error("--train.=1", PSREC_E_USAGE,
                          "command line: '--train.=1': expected --section.key=value");
    /* A failed override changes nothing. */
    config_defaults(&cfg);
    CU_ASSERT_NOT_EQUAL(config_apply_override(&cfg, "--train.lr=20"), 0);
    CU_ASSERT(cfg.train.lr == 1e-3);
}

/* String limit: a value must fit on one "name = value" line of 199 characters. */
static void test_string_length_limit(void)
{
    char arg[512], want[512];
    char value[300];
    memset(value, 'p', sizeof value);
    value[191] = '\0'; /* "train = " (8) + 191 = 199 */
    snprintf(arg, sizeof arg, "--data.train=%s", value);
    Config cfg, back;
    config_defaults(&cfg);
    CU_ASSERT_EQUAL_FATAL(config_apply_override(&cfg, arg), 0);
    CU_ASSERT_EQUAL(strlen(cfg.data.train), 191);

    /* The longest value still round-trips through a file. */
    write_conf("");
    FILE *f = fopen(conf_path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(config_write(&cfg, f), 0);
    fclose(f);
    config_defaults(&back);
    CU_ASSERT_EQUAL(config_load_file(&back, conf_path), 0);
    CU_ASSERT_STRING_EQUAL(back.data.train, cfg.data.train);

    value[191] = 'p';
    value[192] = '\0';
    snprintf(arg, sizeof arg, "--data.train=%s", value);
    snprintf(want, sizeof want,
             "command line: data.train: value is too long (192 characters, limit 191)");
    expect_override_error(arg, PSREC_E_RANGE, want);
    /* "dir" is shorter than "train", so its limit is larger. */
    value[193] = '\0';
    snprintf(arg, sizeof arg, "--run.dir=%s", value);
    config_defaults(&cfg);
    CU_ASSERT_EQUAL(config_apply_override(&cfg, arg), 0);
}

static void test_override_beats_file(void)
{
    write_conf("[train]\nlr = 0.5\nepochs = 7\n[model]\nhidden = 16\n");
    char *argv[] = {"train", "--train.lr=0.25", "positional", "-v", "--help", "--model.hidden=32",
                    "--", NULL};
    Config cfg;
    int rc = config_load(&cfg, conf_path, 7, argv);
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT(cfg.train.lr == 0.25);
    CU_ASSERT_EQUAL(cfg.train.epochs, 7);
    CU_ASSERT_EQUAL(cfg.model.hidden, 32);
    CU_ASSERT_EQUAL(cfg.model.word_dim, 64);

    /* Later overrides win over earlier ones. */
    char *argv2[] = {"--train.lr=0.1", "--train.lr=0.3"};
    CU_ASSERT_EQUAL(config_load(&cfg, conf_path, 2, argv2), 2);
    CU_ASSERT(cfg.train.lr == 0.3);

    /* "--train.lr 0.1" (a space instead of '=') is an error, not silently ignored. */
    char *argv3[] = {"--train.lr", "0.1"};
    CU_ASSERT_EQUAL(config_load(&cfg, conf_path, 2, argv3), PSREC_E_USAGE);
    check_msg("command line: '--train.lr': expected --section.key=value");

    char *argv4[] = {"--train.epochs=zero"};
    CU_ASSERT_EQUAL(config_load(&cfg, conf_path, 1, argv4), PSREC_E_PARSE);
    check_msg("command line: train.epochs: 'zero' is not an integer");

    /* No file: defaults plus overrides. */
    char *argv5[] = {"--train.epochs=11"};
    CU_ASSERT_EQUAL(config_load(&cfg, NULL, 1, argv5), 1);
    CU_ASSERT_EQUAL(cfg.train.epochs, 11);
    CU_ASSERT(cfg.train.lr == 1e-3);
}

static void test_write_read_round_trip(void)
{
    Config cfg, back;
    CU_ASSERT_EQUAL_FATAL(load_text(&cfg, full_file), 0);
    /* Values whose text form is the hard part. */
    cfg.train.lr = 1.0 / 3.0;
    cfg.train.adam_beta2 = 0.1 + 0.2;
    cfg.train.adam_eps = 4.9e-324;
    cfg.ps.rendezvous_timeout = 86400.0;
    snprintf(cfg.data.dev, sizeof cfg.data.dev, "%s", "d\xC3\xA9v/x;y #z=w:q");
    cfg.run.name[0] = '\0';

    char path[4200];
    snprintf(path, sizeof path, "%s/effective.conf", tmpdir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(config_write(&cfg, f), 0);
    CU_ASSERT_EQUAL(fclose(f), 0);

    config_defaults(&back);
    CU_ASSERT_EQUAL_FATAL(config_load_file(&back, path), 0);
    assert_config_equal(&cfg, &back);

    /* Also from defaults onto a differently-valued Config: the file sets every key. */
    config_defaults(&back);
    back.model.hidden = 1;
    back.ps.colocate = false;
    CU_ASSERT_EQUAL(config_load_file(&back, path), 0);
    assert_config_equal(&cfg, &back);

    /* Doc comments are there, and every line fits inih's 199 characters. */
    char *text = tu_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\n[train]\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "# learning rate\nlr = 0.3333333333333333\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\noptimizer = adagrad\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\ncolocate = true\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nname =\n"));
    size_t longest = 0;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        if (n > longest)
            longest = n;
        p += n + (p[n] == '\n');
    }
    CU_ASSERT(longest <= 199);
    free(text);

    /* Defaults round-trip too. */
    config_defaults(&cfg);
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(config_write(&cfg, f), 0);
    fclose(f);
    config_defaults(&back);
    back.train.epochs = 99;
    CU_ASSERT_EQUAL(config_load_file(&back, path), 0);
    assert_config_equal(&cfg, &back);
}

/* Fields set directly in code are checked before use and before writing. */
static void test_check_and_write_reject_bad_fields(void)
{
    Config cfg;
    config_defaults(&cfg);
    cfg.train.lr = -1;
    CU_ASSERT_EQUAL(config_check(&cfg), PSREC_E_RANGE);
    check_msg("config: train.lr: -1 is out of range (0, 10]");
    FILE *f = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(config_write(&cfg, f), PSREC_E_RANGE);
    fclose(f);

    config_defaults(&cfg);
    cfg.ps.consistency = (ConfigConsistency)7;
    CU_ASSERT_EQUAL(config_check(&cfg), PSREC_E_RANGE);
    check_msg("config: ps.consistency: 7 is not a valid value");

    config_defaults(&cfg);
    cfg.model.title_len = 0;
    CU_ASSERT_EQUAL(config_check(&cfg), PSREC_E_RANGE);
    check_msg("config: model.title_len: 0 is out of range [1, 512]");

    config_defaults(&cfg);
    snprintf(cfg.checkpoint.dir, sizeof cfg.checkpoint.dir, "x ; y");
    CU_ASSERT_EQUAL(config_check(&cfg), PSREC_E_PARSE);
}

static void test_checkpoint_dir(void)
{
    Config cfg;
    config_defaults(&cfg);
    char out[CONFIG_STR_MAX + 8];
    CU_ASSERT_EQUAL(config_checkpoint_dir(&cfg, out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "runs/demo/ckpt");
    snprintf(cfg.checkpoint.dir, sizeof cfg.checkpoint.dir, "/scratch/ck");
    CU_ASSERT_EQUAL(config_checkpoint_dir(&cfg, out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "/scratch/ck");
    CU_ASSERT_EQUAL(config_checkpoint_dir(&cfg, out, 5), PSREC_E_RANGE);
}

static void test_reference(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/reference.txt", tmpdir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    config_print_reference(f);
    fclose(f);
    char *text = tu_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    const char *lr = strstr(text, "\ntrain.lr ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(lr);
        char line[256];
    size_t n = strcspn(lr + 1, "\n");
    snprintf(line, sizeof line, "%.*s", (int)n, lr + 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " float "));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " 0.001 "));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " (0, 10] "));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "learning rate"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "adam|adagrad|sgd"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "bsp|ssp|asp"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nrun.dir "));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"runs/demo\""));
    CU_ASSERT_PTR_NULL(strstr(text, "min_count"));
    /* Every key of the written config is in the reference. */
    int keys = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        if (!strncmp(p + 1, "data.", 5) || !strncmp(p + 1, "model.", 6) ||
            !strncmp(p + 1, "train.", 6) || !strncmp(p + 1, "ps.", 3) ||
            !strncmp(p + 1, "checkpoint.", 11) || !strncmp(p + 1, "run.", 4))
            keys++;
    CU_ASSERT_EQUAL(keys, 39);
    free(text);
}

static void test_shipped_configs(void)
{
    Config cfg;
    int rc = config_load(&cfg, TU_SRCDIR "/configs/demo.conf", 0, NULL);
    if (rc)
        fprintf(stderr, "\n  %s\n", psrec_errmsg());
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(cfg.data.train, "data/demo/train.db");
    CU_ASSERT_STRING_EQUAL(cfg.data.dev, "data/demo/dev.db");
    CU_ASSERT_STRING_EQUAL(cfg.run.dir, "runs/demo");
    CU_ASSERT(cfg.model.word_dim >= 32 && cfg.model.word_dim <= 64);
    CU_ASSERT(cfg.model.hidden >= 32 && cfg.model.hidden <= 64);
    CU_ASSERT_EQUAL(cfg.model.title_len, 20);
    CU_ASSERT_EQUAL(cfg.model.his_len, 30);
    CU_ASSERT_EQUAL(cfg.train.epochs, 2);
    CU_ASSERT_EQUAL(cfg.train.batch_size, 64);
    CU_ASSERT_EQUAL(cfg.train.negatives, 4);
    CU_ASSERT_EQUAL(cfg.train.optimizer, OPTIMIZER_ADAM);
    CU_ASSERT(cfg.train.lr == 1e-3);

    CU_ASSERT_EQUAL(config_load(&cfg, TU_SRCDIR "/configs/mind-small.conf", 0, NULL), 0);
    CU_ASSERT_STRING_EQUAL(cfg.data.train, "/path/to/MINDsmall/train.db");
    CU_ASSERT_EQUAL(config_load(&cfg, TU_SRCDIR "/configs/mind-large.conf", 0, NULL), 0);
    CU_ASSERT_STRING_EQUAL(cfg.data.train, "/path/to/MINDlarge/train.db");
}

/* Write n raw bytes to conf_path. */
static void write_bytes(const void *p, size_t n)
{
    snprintf(conf_path, sizeof conf_path, "%s/exp.conf", tmpdir);
    FILE *f = fopen(conf_path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* 1 when every byte of s is printable ASCII (what a message may show on a terminal). */
static int printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

/* A NUL byte inside a value ended the C string there: `hidden = 3\0 2` was read as 3. */
static void test_error_nul_byte(void)
{
    static const char text[] = "[model]\nhidden = 3\0 2\n";
    Config cfg;
    config_defaults(&cfg);
    write_bytes(text, sizeof text - 1);
    CU_ASSERT_EQUAL(config_load_file(&cfg, conf_path), PSREC_E_PARSE);
    CU_ASSERT_EQUAL(cfg.model.hidden, 64);
    check_msg_has(":2: the line holds a NUL byte (column 11): \"hidden = 3\\x00 2\"");
    /* In a comment it is harmless. */
    static const char comment[] = "[model]\n; a \0 b\nhidden = 3\n";
    write_bytes(comment, sizeof comment - 1);
    CU_ASSERT_EQUAL(config_load_file(&cfg, conf_path), 0);
    CU_ASSERT_EQUAL(cfg.model.hidden, 3);
    /* UTF-8 text stays fine; a lone Latin-1 byte does not. */
    write_bytes("[run]\nname = caf\xc3\xa9\n", 19);
    CU_ASSERT_EQUAL(config_load_file(&cfg, conf_path), 0);
    write_bytes("[run]\nname = caf\xe9\n", 18);
    CU_ASSERT_EQUAL(config_load_file(&cfg, conf_path), PSREC_E_PARSE);
    check_msg_has(":2: the line holds bytes that are not UTF-8 text (column 11): "
                  "\"name = caf\\xe9\"");
}

/* A config of random bytes (a binary given by mistake) is refused with a message holding
 * only printable ASCII: the offending bytes escaped, never raw binary on the terminal. Both
 * through the API and as the psrec binary prints it. */
static void test_random_bytes_escaped(void)
{
    unsigned char buf[600];
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    int refused = 0;
    for (int t = 0; t < 200; t++) {
        for (size_t i = 0; i < sizeof buf; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = (unsigned char)x;
        }
        /* Half of the files start with a valid line, so the bad one is not always line 1. */
        if (t % 2 == 0)
            memcpy(buf, "[train]\nlr = 0.5\n", 17);
        Config cfg;
        config_defaults(&cfg);
        write_bytes(buf, sizeof buf);
        int rc = config_load_file(&cfg, conf_path);
        refused += rc != 0;
        if (rc && !printable(psrec_errmsg())) {
            fprintf(stderr, "\n  raw bytes in: %s\n", psrec_errmsg());
            CU_FAIL("message holds raw bytes");
            break;
        }
    }
    CU_ASSERT_EQUAL(refused, 200);
    char *out = NULL;
    int rc = tu_run(&out, "%s train %s 2>&1", TU_PSREC, conf_path);
    CU_ASSERT_NOT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT(printable(strtok(out, "\n")));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "exp.conf:"));
    free(out);
}

static const TuTest tests[] = {
    {"NUL byte in a value is refused", test_error_nul_byte},
    {"random bytes give an escaped message", test_random_bytes_escaped},
    {"defaults", test_defaults},
    {"enum_names", test_enum_names},
    {"full_file", test_full_file},
    {"partial_file_keeps_rest", test_partial_file_keeps_rest},
    {"comments_blank_lines_indent", test_comments_blank_lines_indent},
    {"crlf_and_bom", test_crlf_and_bom},
    {"bool_words", test_bool_words},
    {"error_unknown_key", test_error_unknown_key},
    {"error_unknown_section", test_error_unknown_section},
    {"error_bad_int", test_error_bad_int},
    {"error_bad_float", test_error_bad_float},
    {"error_out_of_range", test_error_out_of_range},
    {"error_bad_enum_and_bool", test_error_bad_enum_and_bool},
    {"error_duplicate", test_error_duplicate},
    {"error_syntax", test_error_syntax},
    {"first_error_wins_and_no_partial_apply", test_first_error_wins_and_no_partial_apply},
    {"error_missing_file", test_error_missing_file},
    {"overrides", test_overrides},
    {"string_length_limit", test_string_length_limit},
    {"override_beats_file", test_override_beats_file},
    {"write_read_round_trip", test_write_read_round_trip},
    {"check_and_write_reject_bad_fields", test_check_and_write_reject_bad_fields},
    {"checkpoint_dir", test_checkpoint_dir},
    {"reference", test_reference},
    {"shipped_configs", test_shipped_configs},
    {NULL, NULL},
};

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s", tu_mkdtemp("config"));
    tu_add_suite("config", tests);
    int rc = tu_run_all();
    tu_rmtree(tmpdir);
    return rc;
}
