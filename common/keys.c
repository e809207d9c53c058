/* CURVE keypairs in memory (see keys.h). Invariant: no function here touches the disk, and
 * every temporary copy of a secret key is wiped before return. */
#include "common/keys.h"

#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

int keys_pair_new(KeyPair *out)
{
    memset(out, 0, sizeof *out);
    if (!zmq_has("curve"))
        return psrec_errf(ENOTSUP, "this libzmq has no CURVE support (zmq_has(\"curve\") = 0); "
                          "set ps.security = none to run without authentication");
    if (zmq_curve_keypair(out->pub, out->sec)) {
        int e = zmq_errno();
        keys_wipe(out, sizeof *out);
        return psrec_errf(e, "cannot make a CURVE keypair: %s", zmq_strerror(e));
    }
    return 0;
}

void keys_wipe(void *p, size_t n)
{
    /* A volatile function pointer: the compiler cannot prove the call is memset, so the
     * stores to a buffer that dies right after are kept. */
    static void *(*const volatile wipe)(void *, int, size_t) = memset;
    if (p && n)
        wipe(p, 0, n);
}

int keys_decode(const char *z85, unsigned char bin[KEYS_BIN_LEN])
{
    unsigned char tmp[KEYS_BIN_LEN];
    if (!z85 || strnlen(z85, KEYS_Z85_SIZE) != KEYS_Z85_LEN || !zmq_z85_decode(tmp, z85))
        return 0;
    if (bin)
        memcpy(bin, tmp, sizeof tmp);
    keys_wipe(tmp, sizeof tmp);
    return 1;
}

void keys_short(const char *z85pub, char out[12])
{
    snprintf(out, 12, "%.8s", z85pub ? z85pub : "");
}
