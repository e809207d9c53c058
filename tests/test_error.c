/* Error detail: a message may quote the current one (the usual way to add context), and
 * psrec_strerror covers project, errno and LMDB codes. */
#include "common/error.h"
#include "testutil/testutil.h"

#include <errno.h>
#include <lmdb.h>
#include <string.h>

static void test_prefix_own_message(void)
{
    CU_ASSERT_EQUAL(psrec_errf(PSREC_E_PARSE, "news.tsv:%d: %s", 12, "7 fields"), PSREC_E_PARSE);
    psrec_errf(PSREC_E_PARSE, "prep: %s", psrec_errmsg());
    CU_ASSERT_STRING_EQUAL(psrec_errmsg(), "prep: news.tsv:12: 7 fields");
    psrec_errf(PSREC_E_PARSE, "%s (again: %s)", psrec_errmsg(), psrec_errmsg());
    CU_ASSERT_STRING_EQUAL(psrec_errmsg(),
                           "prep: news.tsv:12: 7 fields (again: prep: news.tsv:12: 7 fields)");
    psrec_errclear();
    CU_ASSERT_STRING_EQUAL(psrec_errmsg(), "");
}

static void test_strerror(void)
{
    CU_ASSERT_STRING_EQUAL(psrec_strerror(0), "success");
    CU_ASSERT_STRING_EQUAL(psrec_strerror(PSREC_E_FORMAT), "bad file format");
    CU_ASSERT_STRING_EQUAL(psrec_strerror(ENOENT), strerror(ENOENT));
    CU_ASSERT_STRING_EQUAL(psrec_strerror(MDB_NOTFOUND), mdb_strerror(MDB_NOTFOUND));
    CU_ASSERT_STRING_EQUAL(psrec_strerror(-999), "unknown error");
}

int main(void)
{
    static const TuTest tests[] = {{"a message quoting the current one", test_prefix_own_message},
                                   {"strerror of every kind of code", test_strerror},
                                   {NULL, NULL}};
    tu_add_suite("error", tests);
    return tu_run_all();
}
