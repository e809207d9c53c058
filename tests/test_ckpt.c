/* Checkpoint container: round trip, the CRC-32 check value, and refusal of damaged files
 * (flipped byte, truncation, bad magic), each with a message naming what is wrong. */
#include "common/ckpt.h"
#include "common/error.h"
#include "testutil/testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char path[4200];

static void write_sample(void)
{
    CkptWriter *w;
    CU_ASSERT_FATAL(ckpt_writer_new(path, &w) == 0);
    float f[1000];
    for (int i = 0; i < 1000; i++)
        f[i] = (float)i * 0.5f;
    uint64_t k[3] = {7, 8, 9};
    CU_ASSERT_FATAL(ckpt_write_section(w, "floats", f, sizeof f) == 0);
    CU_ASSERT_FATAL(ckpt_write_section(w, "keys", k, sizeof k) == 0);
    CU_ASSERT_FATAL(ckpt_write_section(w, "empty", NULL, 0) == 0);
    CU_ASSERT(ckpt_write_section(w, "keys", k, sizeof k) == PSREC_E_STATE);
    CU_ASSERT_FATAL(ckpt_writer_finish(&w) == 0);
    CU_ASSERT(w == NULL);
}

static void test_crc_check_value(void)
{
    /* The standard CRC-32 check value of "123456789". */
    CU_ASSERT_EQUAL(ckpt_crc32(0, "123456789", 9), 0xcbf43926u);
    /* Continuation equals one pass. */
    CU_ASSERT_EQUAL(ckpt_crc32(ckpt_crc32(0, "12345", 5), "6789", 4), 0xcbf43926u);
    CU_ASSERT_EQUAL(ckpt_crc32(0, "", 0), 0);
}

static void test_round_trip(void)
{
    const char *dir = tu_mkdtemp("ckpt");
    snprintf(path, sizeof path, "%s/a.ckpt", dir);
    write_sample();
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CU_ASSERT(access(tmp, F_OK) != 0);
    CkptReader *r;
    CU_ASSERT_FATAL(ckpt_reader_open(path, &r) == 0);
    CU_ASSERT_EQUAL(ckpt_section_count(r), 3);
    const void *d;
    size_t n;
    CU_ASSERT_FATAL(ckpt_section(r, "floats", &d, &n) == 0);
    CU_ASSERT(n == 4000 && ((const float *)d)[999] == 499.5f && ((uintptr_t)d % 16) == 0);
    CU_ASSERT_FATAL(ckpt_section(r, "keys", &d, &n) == 0);
    CU_ASSERT(n == 24 && ((const uint64_t *)d)[2] == 9);
    CU_ASSERT(ckpt_section(r, "empty", &d, &n) == 0 && n == 0);
    CU_ASSERT(ckpt_section(r, "nope", &d, &n) == PSREC_E_NOTFOUND);
    CU_ASSERT(strcmp(ckpt_section_name(r, 1, &n), "keys") == 0 && n == 24);
    ckpt_reader_free(&r);
}

static void corrupt_and_expect(long offset, const char *want)
{
    write_sample();
    FILE *f = fopen(path, "r+b");
    CU_ASSERT_FATAL(f != NULL);
    fseek(f, offset, offset < 0 ? SEEK_END : SEEK_SET);
    int c = fgetc(f);
    fseek(f, -1, SEEK_CUR);
    fputc(c ^ 0x40, f);
    fclose(f);
    CkptReader *r = NULL;
    CU_ASSERT(ckpt_reader_open(path, &r) == PSREC_E_FORMAT);
    CU_ASSERT(r == NULL);
    CU_ASSERT(strstr(psrec_errmsg(), want) != NULL);
    if (!strstr(psrec_errmsg(), want))
        fprintf(stderr, "got: %s\n", psrec_errmsg());
}

static void test_damage_detected(void)
{
    corrupt_and_expect(-100, "section 'floats' CRC mismatch"); /* inside the float data? */
    corrupt_and_expect(0, "bad magic");
    corrupt_and_expect(40, "index CRC mismatch"); /* inside the first entry's name */
    /* Truncation. */
    write_sample();
    struct stat st;
    CU_ASSERT_FATAL(stat(path, &st) == 0);
    CU_ASSERT_FATAL(truncate(path, st.st_size - 8) == 0);
    CkptReader *r = NULL;
    CU_ASSERT(ckpt_reader_open(path, &r) == PSREC_E_FORMAT);
    CU_ASSERT(strstr(psrec_errmsg(), "truncated") != NULL);
    char missing[4300];
    snprintf(missing, sizeof missing, "%s.missing", path);
    CU_ASSERT(ckpt_reader_open(missing, &r) == PSREC_E_NOTFOUND);
}

static void test_abort(void)
{
    char p2[4300];
    snprintf(p2, sizeof p2, "%s.b", path);
    CkptWriter *w;
    CU_ASSERT_FATAL(ckpt_writer_new(p2, &w) == 0);
    CU_ASSERT(ckpt_write_section(w, "x", "abc", 3) == 0);
    ckpt_writer_abort(&w);
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", p2);
    CU_ASSERT(access(tmp, F_OK) != 0 && access(p2, F_OK) != 0);
    char dir[4300];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    tu_rmtree(dir);
}

int main(void)
{
    static const TuTest tests[] = {{"crc32 check value", test_crc_check_value},
                                   {"round trip", test_round_trip},
                                   {"damage detected", test_damage_detected},
                                   {"abort leaves nothing", test_abort},
                                   {NULL, NULL}};
    tu_add_suite("ckpt", tests);
    return tu_run_all();
}
