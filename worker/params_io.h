/* Moving model parameters between a PsClient and the model's local buffers: pulling the
 * dense arena and the distinct sparse rows of a batch, pushing their gradients. Shared by
 * training, evaluation and the benchmark so every path moves parameters the same way.
 * A ParamsIo holds the key scratch, sized once, so no request allocates. */
#ifndef PSREC_WORKER_PARAMS_IO_H
#define PSREC_WORKER_PARAMS_IO_H

#include "worker/model.h"
#include "worker/ps_client.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ParamsIo {
    PsClient *ps;      /* borrowed */
    ModelDims dims;
    uint64_t *keys;    /* (max_rows) scratch */
    size_t max_rows;
    uint64_t *dense_keys; /* (max(E, H)) 0, 1, 2, ... */
    uint64_t bytes_pulled, bytes_pushed; /* payload floats moved, in bytes */
} ParamsIo;

/* max_rows: the most sparse rows one pull or push will carry. Returns 0 or PSREC_E_NOMEM. */
int params_io_init(ParamsIo *io, PsClient *ps, const ModelDims *d, size_t max_rows);
void params_io_fini(ParamsIo *io);

/* Asynchronous forms: issue the request(s) and return their tickets; params_wait completes
 * them. Dense transfers are one request per dense table (PARAMS_DENSE_TABLES tickets). Keys
 * are read during the call only; out/grads must stay untouched until the wait. */
#define PARAMS_DENSE_TABLES 6
int params_pull_rows_async(ParamsIo *io, uint32_t table, const uint32_t *ids, size_t n,
                           float *out, PsTicket *ticket);
int params_push_rows_async(ParamsIo *io, uint32_t table, const uint32_t *ids, size_t n,
                           const float *grads, PsTicket *ticket);
int params_pull_dense_async(ParamsIo *io, DenseParams *p, PsTicket tickets[PARAMS_DENSE_TABLES]);
int params_push_dense_async(ParamsIo *io, const DenseParams *g,
                            PsTicket tickets[PARAMS_DENSE_TABLES]);
/* Wait for n tickets (all of them, even after a failure); returns the first error. */
int params_wait(ParamsIo *io, const PsTicket *tickets, size_t n);

/* Pull every dense table into the arena p (bound to the dims). */
int params_pull_dense(ParamsIo *io, DenseParams *p);
/* Push the dense gradient arena g. */
int params_push_dense(ParamsIo *io, const DenseParams *g);

/* Pull rows ids[0..n) (n <= max_rows) of a sparse table into out (n, width). */
int params_pull_rows(ParamsIo *io, uint32_t table, const uint32_t *ids, size_t n, float *out);
/* Push gradient rows (n, width) for ids[0..n). */
int params_push_rows(ParamsIo *io, uint32_t table, const uint32_t *ids, size_t n,
                     const float *grads);

#endif
