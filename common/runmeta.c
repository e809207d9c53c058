/* The run.meta checkpoint section (see runmeta.h). */
#include "common/runmeta.h"

#include "common/error.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

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
    if (n != sizeof *m && n != RUNMETA_V1_SIZE)
        return psrec_errf(PSREC_E_FORMAT, "%s: run.meta is %zu bytes, expected %zu", path, n,
                          sizeof *m);
    memset(m, 0, sizeof *m);
    memcpy(m, p, n);
    const size_t want = m->version >= 2 ? sizeof *m : RUNMETA_V1_SIZE;
    if (m->version < RUNMETA_VERSION_MIN || m->version > RUNMETA_VERSION || m->size != want ||
        n != want)
        return psrec_errf(PSREC_E_FORMAT, "%s: run.meta version %u (%zu bytes), this psrec "
                          "reads versions %u..%u", path, m->version, n, RUNMETA_VERSION_MIN,
                          RUNMETA_VERSION);
    if (!m->E || !m->H || !m->title_len || !m->vocab_rows || !m->category_rows ||
        !m->user_rows || !m->shards || m->shard >= m->shards)
        return psrec_errf(PSREC_E_FORMAT, "%s: run.meta has impossible sizes", path);
    return 0;
}

uint64_t runmeta_new_run_id(void)
{
    uint64_t id = 0;
    while (id == 0) {
        if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id) {
            /* No entropy source: time and pid still tell runs apart. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            id = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^
                 ((uint64_t)getpid() << 40);
        }
    }
    return id;
}

int runmeta_check_run_id(const char *file, uint64_t got, const char *ref_name, uint64_t want)
{
    if (!got || !want || got == want)
        return 0;
    return psrec_errf(PSREC_E_STATE,
                      "%s belongs to another run (run id %016llx; %s has run id %016llx): a "
                      "file copied in from another run's checkpoint is never merged",
                      file, (unsigned long long)got, ref_name, (unsigned long long)want);
}
