/* The run.meta checkpoint section (see runmeta.h). */
#include "common/runmeta.h"

#include "common/error.h"

#include <string.h>

int runmeta_write(CkptWriter *w, const RunMeta *m)
{
    RunMeta c = *m;
    c.version = RUNMETA_VERSION;
    c.size = sizeof c;
    return ckpt_write_section(w, "run.meta", &c, sizeof c);
}

int runmeta_read(const CkptReader *r, const char *path, RunMeta *m)
{
    const void *p;
    size_t n;
    if (ckpt_section(r, "run.meta", &p, &n))
        return psrec_errf(PSREC_E_FORMAT, "%s: no run.meta section (not a psrec model)", path);
    if (n != sizeof *m)
        return psrec_errf(PSREC_E_FORMAT, "%s: run.meta is %zu bytes, expected %zu", path, n,
                          sizeof *m);
    memcpy(m, p, sizeof *m);
    if (m->version != RUNMETA_VERSION || m->size != sizeof *m)
        return psrec_errf(PSREC_E_FORMAT, "%s: run.meta version %u, this psrec reads %u", path,
                          m->version, RUNMETA_VERSION);
    if (!m->E || !m->H || !m->title_len || !m->vocab_rows || !m->category_rows ||
        !m->user_rows || !m->shards || m->shard >= m->shards)
        return psrec_errf(PSREC_E_FORMAT, "%s: run.meta has impossible sizes", path);
    return 0;
}
