/* Parameter movement between PsClient and model buffers (see params_io.h). Dense tables are
 * the arena's tensors in order, one table per tensor, one row per input unit; a dense pull
 * asks every row of each table and lands it at the tensor's offset in the arena. Requests of
 * one call are all issued before any is waited for, so a remote client can overlap them. */
#include "worker/params_io.h"

#include "common/error.h"
#include "common/params.h"

#include <stdlib.h>
#include <string.h>

int params_io_init(ParamsIo *io, PsClient *ps, const ModelDims *d, size_t max_rows)
{
    memset(io, 0, sizeof *io);
    io->ps = ps;
    io->dims = *d;
    io->max_rows = max_rows;
    size_t nd = (size_t)(d->E > d->H ? d->E : d->H);
    io->keys = malloc((max_rows ? max_rows : 1) * sizeof *io->keys);
    io->dense_keys = malloc(nd * sizeof *io->dense_keys);
    if (!io->keys || !io->dense_keys) {
        params_io_fini(io);
        return PSREC_E_NOMEM;
    }
    for (size_t k = 0; k < nd; k++)
        io->dense_keys[k] = k;
    return 0;
}

void params_io_fini(ParamsIo *io)
{
    free(io->keys);
    free(io->dense_keys);
    io->keys = io->dense_keys = NULL;
}

/* Issue one request per dense table; tickets of requests that could not be issued are 0
 * (an empty request's ticket, which completes at once). */
static int dense_issue(ParamsIo *io, float *arena, const float *grads,
                       PsTicket tickets[PARAMS_DENSE_TABLES])
{
    const ModelDims *d = &io->dims;
    DenseLayout l;
    model_dense_layout(d, &l);
    const size_t rows[6] = {(size_t)d->E, (size_t)d->H, 1, (size_t)d->H, (size_t)d->H, 1};
    const size_t offs[6] = {l.news_Wih, l.news_Whh, l.news_b, l.user_Wih, l.user_Whh, l.user_b};
    int rc = 0;
    for (int i = 0; i < PARAMS_DENSE_TABLES; i++) {
        uint32_t table = PARAM_FIRST_DENSE + (uint32_t)i;
        tickets[i] = 0;
        if (rc)
            continue;
        rc = grads ? ps_push(io->ps, table, io->dense_keys, rows[i], grads + offs[i], &tickets[i])
                   : ps_pull(io->ps, table, io->dense_keys, rows[i], arena + offs[i], &tickets[i]);
    }
    if (grads)
        io->bytes_pushed += l.total * sizeof(float);
    else
        io->bytes_pulled += l.total * sizeof(float);
    return rc;
}

int params_pull_dense_async(ParamsIo *io, DenseParams *p, PsTicket tickets[PARAMS_DENSE_TABLES])
{
    return dense_issue(io, p->arena, NULL, tickets);
}

int params_push_dense_async(ParamsIo *io, const DenseParams *g,
                            PsTicket tickets[PARAMS_DENSE_TABLES])
{
    return dense_issue(io, NULL, g->arena, tickets);
}

int params_wait(ParamsIo *io, const PsTicket *tickets, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int wrc = ps_wait(io->ps, tickets[i]);
        if (!rc)
            rc = wrc;
    }
    return rc;
}

int params_pull_dense(ParamsIo *io, DenseParams *p)
{
    PsTicket t[PARAMS_DENSE_TABLES];
    int rc = params_pull_dense_async(io, p, t);
    int wrc = params_wait(io, t, PARAMS_DENSE_TABLES);
    return rc ? rc : wrc;
}

int params_push_dense(ParamsIo *io, const DenseParams *g)
{
    PsTicket t[PARAMS_DENSE_TABLES];
    int rc = params_push_dense_async(io, g, t);
    int wrc = params_wait(io, t, PARAMS_DENSE_TABLES);
    return rc ? rc : wrc;
}

static int fill_keys(ParamsIo *io, const uint32_t *ids, size_t n)
{
    if (n > io->max_rows)
        return psrec_errf(PSREC_E_RANGE, "%zu rows in one request, at most %zu", n,
                          io->max_rows);
    for (size_t i = 0; i < n; i++)
        io->keys[i] = ids[i];
    return 0;
}

int params_pull_rows_async(ParamsIo *io, uint32_t table, const uint32_t *ids, size_t n,
                           float *out, PsTicket *ticket)
{
    *ticket = 0;
    int rc = fill_keys(io, ids, n);
    if (rc || n == 0)
        return rc;
    io->bytes_pulled += n * io->ps->ops->width(io->ps->impl, table) * sizeof(float);
    return ps_pull(io->ps, table, io->keys, n, out, ticket);
}

int params_push_rows_async(ParamsIo *io, uint32_t table, const uint32_t *ids, size_t n,
                           const float *grads, PsTicket *ticket)
{
    *ticket = 0;
    int rc = fill_keys(io, ids, n);
    if (rc || n == 0)
        return rc;
    io->bytes_pushed += n * io->ps->ops->width(io->ps->impl, table) * sizeof(float);
    return ps_push(io->ps, table, io->keys, n, grads, ticket);
}

int params_pull_rows(ParamsIo *io, uint32_t table, const uint32_t *ids, size_t n, float *out)
{
    PsTicket t;
    int rc = params_pull_rows_async(io, table, ids, n, out, &t);
    return rc ? rc : params_wait(io, &t, 1);
}

int params_push_rows(ParamsIo *io, uint32_t table, const uint32_t *ids, size_t n,
                     const float *grads)
{
    PsTicket t;
    int rc = params_push_rows_async(io, table, ids, n, grads, &t);
    return rc ? rc : params_wait(io, &t, 1);
}
