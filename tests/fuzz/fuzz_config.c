/* libFuzzer target: the config parser (common/config.h).
 *
 * The bytes are an INI file (written to a memfd, read through its /proc/self/fd path by
 * config_load_file, as psrec reads exp.conf). Whatever the file holds, loading must end in 0
 * or an error code, never a crash. A file that loads and passes config_check must also keep
 * the module's round-trip promise: config_write's text reads back (config_load_file) to a
 * Config that writes the same text again; a difference aborts (a finding). A file that fails
 * must fail with a message a terminal can show: UTF-8 text without control characters but tab
 * (the file's other bytes escaped), never raw binary. The first line of the input is also tried as a
 * command-line override. */
#include "common/config.h"
#include "common/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd = -1;
static char path[64];

/* Replace the memfd's contents with buf[0..n). */
static int put(const void *buf, size_t n)
{
    if (ftruncate(fd, 0) || pwrite(fd, buf, n, 0) != (ssize_t)n)
        return -1;
    return 0;
}

/* config_write of cfg into a malloc'd string (*len bytes), or NULL. */
static char *written(const Config *cfg, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f)
        return NULL;
    int rc = config_write(cfg, f);
    fclose(f);
    if (rc) {
        free(text);
        return NULL;
    }
    return text;
}

/* 1 when s is UTF-8 text without control characters (a tab is fine). */
static int terminal_safe(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p++;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
        int more = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2
                 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
        if (more < 0)
            return 0;
        for (; more > 0; more--)
            if ((*p++ & 0xc0) != 0x80)
                return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        fd = memfd_create("fuzz-config", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (put(data, size))
        abort();
    Config cfg;
    config_defaults(&cfg);
    int rc = config_load_file(&cfg, path);
    if (rc && !terminal_safe(psrec_errmsg())) {
        fprintf(stderr, "raw bytes in the message\n");
        abort();
    }
    if (rc == 0 && config_check(&cfg) == 0) {
        size_t n1 = 0, n2 = 0;
        char *t1 = written(&cfg, &n1);
        if (!t1)
            abort(); /* a checked Config must be writable */
        Config back;
        config_defaults(&back);
        if (put(t1, n1) || config_load_file(&back, path) != 0) {
            fprintf(stderr, "written config does not load back: %s\n", psrec_errmsg());
            abort();
        }
        char *t2 = written(&back, &n2);
        if (!t2 || n1 != n2 || memcmp(t1, t2, n1) != 0)
            abort();
        free(t1);
        free(t2);
    }
    /* The first line as "--section.key=value". */
    size_t n = 0;
    while (n < size && data[n] != '\n')
        n++;
    char *arg = malloc(n + 1);
    if (!arg)
        return 0;
    memcpy(arg, data, n);
    arg[n] = 0;
    config_defaults(&cfg);
    config_apply_override(&cfg, arg);
    free(arg);
    return 0;
}
