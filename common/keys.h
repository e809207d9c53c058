/* CURVE keys of one job's parameter-server traffic (ZeroMQ CURVE, Z85 text form).
 *
 * Keys are made fresh for every life of a job (resume makes new ones) and live only in memory:
 * nothing here reads or writes a file. A secret key is wiped (keys_wipe) as soon as the
 * socket that needed it is set up. */
#ifndef PSREC_COMMON_KEYS_H
#define PSREC_COMMON_KEYS_H

#include <stddef.h>

#define KEYS_Z85_LEN 40                 /* characters of a Z85 key */
#define KEYS_Z85_SIZE (KEYS_Z85_LEN + 1) /* with its NUL */
#define KEYS_BIN_LEN 32                 /* bytes of a binary key */

typedef struct KeyPair {
    char pub[KEYS_Z85_SIZE];
    char sec[KEYS_Z85_SIZE];
} KeyPair;

/* What a worker's sockets need to be CURVE clients of the job's shards; borrowed by the
 * functions that set sockets up, for the length of the call. */
typedef struct KeysClient {
    const char *pub;                      /* this worker's public key */
    const char *sec;                      /* this worker's secret key */
    const char (*servers)[KEYS_Z85_SIZE]; /* (shards) shard k's public key */
} KeysClient;

/* A fresh CURVE keypair (zmq_curve_keypair). Returns 0, or ENOTSUP (libzmq built without
 * CURVE) / the ZeroMQ errno with detail. */
int keys_pair_new(KeyPair *out);

/* Zero n bytes at p in a way the compiler cannot drop (the buffer is dead afterwards). */
void keys_wipe(void *p, size_t n);

/* 1 when z85 is a well-formed Z85 key (40 characters that decode to 32 bytes); bin (may be
 * NULL) receives the 32 bytes. */
int keys_decode(const char *z85, unsigned char bin[KEYS_BIN_LEN]);

/* The first 8 characters of a key for logs ("Xk3...."), never the secret one's. */
void keys_short(const char *z85pub, char out[12]);

#endif
