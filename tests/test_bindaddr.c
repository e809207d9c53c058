/* ps.host resolution (launch/bindaddr.c), table-driven over a made-up machine, then once
 * over this machine's real interfaces (loopback only: tests never use another address).
 * Every form: empty, a literal, a network at each prefix length that matters, an interface
 * name; and each way to be wrong, with the error naming the spec and listing the addresses. */
#include "testutil/testutil.h"

#include "common/error.h"
#include "launch/bindaddr.h"

#include <stdio.h>
#include <string.h>

#define A(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

/* lo, eth0 with an alias, docker0, a down eth1. */
static const BindIface machine[] = {
    {"lo", A(127, 0, 0, 1), 1, 1},      {"eth0", A(10, 1, 0, 5), 1, 0},
    {"docker0", A(172, 17, 0, 1), 1, 0}, {"eth1", A(192, 168, 5, 7), 0, 0},
    {"eth0", A(10, 1, 0, 9), 1, 0},
};
#define NM ((int)(sizeof machine / sizeof machine[0]))

typedef struct Case {
    const char *spec;
    int rc;          /* 0, PSREC_E_PARSE, PSREC_E_NOTFOUND */
    const char *out; /* the address when rc == 0 */
    const char *how; /* substring of how */
} Case;

static const Case cases[] = {
    {"", 0, "10.1.0.5", "first non-loopback interface eth0"},
    {"10.1.0.5", 0, "10.1.0.5", "ps.host"},
    {"10.1.0.9", 0, "10.1.0.9", "ps.host"},
    {"127.0.0.1", 0, "127.0.0.1", "ps.host"},
    {"10.1.0.6", PSREC_E_NOTFOUND, NULL, NULL},
    {"192.168.5.7", PSREC_E_NOTFOUND, NULL, NULL}, /* the down interface's */
    {"0.0.0.0", PSREC_E_PARSE, NULL, NULL},
    {"10.1.0.256", PSREC_E_NOTFOUND, NULL, NULL}, /* not a quad: read as a name */
    /* networks: below, at and above the prefix that still holds the address */
    {"10.1.0.0/24", 0, "10.1.0.5", "network 10.1.0.0/24 (interface eth0)"},
    {"10.1.0.4/30", 0, "10.1.0.5", "interface eth0"},
    {"10.1.0.4/31", 0, "10.1.0.5", "interface eth0"},
    {"10.1.0.5/32", 0, "10.1.0.5", "interface eth0"},
    {"10.1.0.4/32", PSREC_E_NOTFOUND, NULL, NULL},
    {"10.1.0.8/29", 0, "10.1.0.9", "interface eth0"}, /* the alias */
    {"10.1.0.8/30", 0, "10.1.0.9", "interface eth0"},
    {"10.1.0.8/31", 0, "10.1.0.9", "interface eth0"},
    {"10.1.0.10/31", PSREC_E_NOTFOUND, NULL, NULL},
    {"10.0.0.0/8", 0, "10.1.0.5", "network 10.0.0.0/8"},
    {"10.0.0.0/15", 0, "10.1.0.5", "network 10.0.0.0/15"},
    {"10.0.0.0/16", PSREC_E_NOTFOUND, NULL, NULL},
    {"172.16.0.0/12", 0, "172.17.0.1", "interface docker0"},
    {"192.168.5.0/24", PSREC_E_NOTFOUND, NULL, NULL}, /* only a down interface */
    {"0.0.0.0/0", 0, "127.0.0.1", "interface lo"},    /* every address: the first up */
    {"10.1.0.0/33", PSREC_E_PARSE, NULL, NULL},
    {"10.1.0.0/-1", PSREC_E_PARSE, NULL, NULL},
    {"10.1.0.0/", PSREC_E_PARSE, NULL, NULL},
    {"10.1.0.0/24x", PSREC_E_PARSE, NULL, NULL},
    {"10.1.0/24", PSREC_E_PARSE, NULL, NULL},
    {"256.1.0.0/8", PSREC_E_PARSE, NULL, NULL},
    {"eth0", 0, "10.1.0.5", "interface eth0"},
    {"docker0", 0, "172.17.0.1", "interface docker0"},
    {"lo", 0, "127.0.0.1", "interface lo"},
    {"eth1", PSREC_E_NOTFOUND, NULL, NULL}, /* down */
    {"wlan0", PSREC_E_NOTFOUND, NULL, NULL},
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const Case *c = &cases[i];
        char out[BINDADDR_MAX] = "", how[160] = "";
        psrec_errclear();
        int rc = bindaddr_pick(c->spec, machine, NM, out, sizeof out, how, sizeof how);
        if (rc != c->rc)
            printf("\n  ps.host = '%s': rc %d, want %d (%s)", c->spec, rc, c->rc,
                   rc ? psrec_errmsg() : out);
        CU_ASSERT_EQUAL(rc, c->rc);
        if (c->rc == 0 && rc == 0) {
            CU_ASSERT_STRING_EQUAL(out, c->out);
            CU_ASSERT_PTR_NOT_NULL(strstr(how, c->how));
        } else if (rc) {
            char want[64];
            snprintf(want, sizeof want, "ps.host = %s", c->spec);
            CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), want));
            if (rc == PSREC_E_NOTFOUND) /* says what there is, up interfaces only */
                CU_ASSERT(strstr(psrec_errmsg(), "lo 127.0.0.1, eth0 10.1.0.5, docker0 "
                                                 "172.17.0.1, eth0 10.1.0.9)") != NULL);
        }
    }
}

/* No interface but loopback (or only down ones): empty falls back to loopback. */
static void test_loopback_only(void)
{
    const BindIface lonely[] = {{"lo", A(127, 0, 0, 1), 1, 1}, {"eth0", A(10, 0, 0, 2), 0, 0}};
    char out[BINDADDR_MAX], how[160];
    CU_ASSERT_EQUAL(bindaddr_pick("", lonely, 2, out, sizeof out, how, sizeof how), 0);
    CU_ASSERT_STRING_EQUAL(out, "127.0.0.1");
    CU_ASSERT_PTR_NOT_NULL(strstr(how, "loopback"));
    CU_ASSERT_EQUAL(bindaddr_pick("", NULL, 0, out, sizeof out, how, sizeof how), 0);
    CU_ASSERT_STRING_EQUAL(out, "127.0.0.1");
    CU_ASSERT_EQUAL(bindaddr_pick("10.0.0.0/8", NULL, 0, out, sizeof out, how, sizeof how),
                    PSREC_E_NOTFOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(psrec_errmsg(), "no IPv4 interface up"));
}

/* This machine: loopback by each form. */
static void test_real_machine(void)
{
    static const char *const specs[] = {"127.0.0.1", "127.0.0.0/8", "lo"};
    for (int i = 0; i < 3; i++) {
        char out[BINDADDR_MAX] = "", how[160];
        CU_ASSERT_EQUAL(bindaddr_resolve(specs[i], out, sizeof out, how, sizeof how), 0);
        CU_ASSERT_STRING_EQUAL(out, "127.0.0.1");
    }
    char out[BINDADDR_MAX], how[160];
    CU_ASSERT_EQUAL(bindaddr_resolve("203.0.113.77", out, sizeof out, how, sizeof how),
                    PSREC_E_NOTFOUND);
}

int main(void)
{
    static const TuTest tests[] = {{"table", test_table},
                                   {"loopback only", test_loopback_only},
                                   {"this machine", test_real_machine},
                                   {NULL, NULL}};
    tu_add_suite("bindaddr", tests);
    return tu_run_all();
}
