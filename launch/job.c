/* Distributed training under mpirun (see job.h).
 *
 * Roles: ranks 0..S-1 are server shards, ranks S..N-1 workers (worker w = rank - S); with
 * ps.colocate every rank runs a shard thread and a worker (S = W = N). Every rank derives the
 * roles from the config alone, so a misconfigured job (S >= N) stops on every rank at once.
 *
 * MPI is used only where no rank can be dead yet or at the very end:
 *   start   hello: every rank reports to rank 0 point-to-point, rank 0 waits with a deadline
 *           and names the ranks that did not show up; then MPI_Allgather of shard endpoints.
 *   epochs  workers send their partial eval sums to worker 0 point-to-point, with a deadline
 *           (never a collective during training); a worker that fails tells every shard's
 *           rank point-to-point, and the shards then refuse all requests so the job ends.
 *   end     MPI_Allreduce of the exit status, the samples and the checkpoint failures.
 * Checkpoints are consistent cuts taken over ZeroMQ (proto/ps.proto "Cuts"): each shard
 * copies its state when every worker reached the cut, its checkpoint thread writes its file,
 * shard 0's also writes job.ckpt and commits the step directory (launch/cut.h).
 * A watchdog alarm bounds start-up, since MPI_Init itself waits for every rank.
 * The data plane (pull/push/clock) is ZeroMQ: shards bind tcp://<host>:<port> on a real
 * interface (ps.host: an address, a network or an interface name that each machine resolves
 * for itself, launch/bindaddr.h), so a hostfile across machines works. */
#include "launch/job.h"

#include "common/dataset.h"
#include "common/error.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/runmeta.h"
#include "common/timer.h"
#include "launch/bindaddr.h"
#include "launch/ckptdir.h"
#include "launch/cut.h"
#include "launch/life.h"
#include "launch/run.h"
#include "server/loop.h"
#include "worker/eval.h"
#include "worker/heartbeat.h"
#include "worker/ps_zmq.h"
#include "worker/reader.h"
#include "worker/train.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mpi.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define ENDPOINT_MAX 256
enum { TAG_HELLO = 1, TAG_GO = 2, TAG_FAILED = 3, TAG_END = 4, TAG_CODE = 5, TAG_EVAL = 1000 };

typedef struct Job {
    const Config *cfg;
    const TrainFlags *flags;
    RunLife lf;                  /* lock (rank 0), resume state (every rank) */
    ReaderPlan *plan;            /* re-partition plan of this life, or NULL */
    ReaderPosition start;        /* this worker's start when resumed */
    char *config_text;           /* effective config, for job.ckpt */
    void *plan_bytes;
    size_t plan_len;
    CutWriter cw;                /* this shard's checkpoint writer context */
    /* The layout the workers train in: at first every worker at its own index; after a
     * takeover (a worker lost) the survivors, re-ranked. live[v] = the worker index (its
     * wire rank) of the worker at rank v of vworld. */
    uint32_t vrank, vworld;
    uint32_t *live;              /* (workers) */
    uint64_t replan_step;        /* the REPLAN cut this worker stopped at, to read back */
    int replanned;               /* this life re-partitioned after a lost worker */
    int lost_any;                /* the life ended with a worker lost */
    int stopped;                 /* this worker stopped at a cut (preemption) */
    uint64_t samples_life;       /* samples this worker trained in this life */
    uint64_t epochs_done;
    int rank, size;
    int shards, workers;
    int is_server, is_worker;
    int shard_index, worker_index;
    int first_worker_rank;       /* MPI rank of worker 0 */
    Dataset *train, *dev;
    ModelDims dims;
    RunMeta meta;
    FILE *metrics;
    void *zctx;
    ServerLoop *loop;
    int loop_started, loop_rc;
    int peer_failed;                 /* a worker reported failure to this shard */
    char (*endpoints)[ENDPOINT_MAX]; /* (size) */
    int *shard_ranks;                /* (shards) */
    PsZmq *client;
    Heartbeat *heartbeat;        /* this worker's liveness actor */
    PsClient ps;
    MetricsResult last_eval;
    int evaluated;
    uint64_t steps;
} Job;

int job_under_mpirun(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMIX_RANK") != NULL;
}

/* ------------------------------------------------------------------ start-up */

/* All ranks agree that every rank's step succeeded (a collective: only at start-up and at the
 * end, when every rank is alive). */
static int agree(int ok)
{
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return all;
}


static int assign_roles(Job *j)
{
    const Config *c = j->cfg;
    if (c->ps.colocate) {
        j->shards = j->workers = j->size;
        j->is_server = j->is_worker = 1;
        j->shard_index = j->worker_index = j->rank;
        j->first_worker_rank = 0;
        return 0;
    }
    j->shards = c->ps.servers;
    if (j->shards >= j->size) {
        if (j->rank == 0)
            LOG_ERROR("ps.servers = %d needs at least %d MPI ranks (%d shards + at least 1 "
                      "worker), but mpirun started %d; use mpirun -np %d or more, lower "
                      "ps.servers, or set ps.colocate = true",
                      j->shards, j->shards + 1, j->shards, j->size, j->shards + 1);
        return -1;
    }
    j->workers = j->size - j->shards;
    j->is_server = j->rank < j->shards;
    j->is_worker = !j->is_server;
    j->shard_index = j->is_server ? j->rank : -1;
    j->worker_index = j->is_worker ? j->rank - j->shards : -1;
    j->first_worker_rank = j->shards;
    return 0;
}

/* Wait for requests until all complete or the deadline passes. Returns 1 when all done. */
static int wait_all(MPI_Request *req, int n, double deadline)
{
    for (;;) {
        int done = 0;
        MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE);
        if (done)
            return 1;
        if (timer_now() > deadline)
            return 0;
        usleep(1000);
    }
}

/* Every rank says hello to rank 0 within ps.rendezvous_timeout; rank 0 names the missing
 * ones and aborts the job, else answers go. Point-to-point, so a missing rank cannot hang
 * anyone past the deadline. */
static void hello(Job *j)
{
    const double deadline = timer_now() + j->cfg->ps.rendezvous_timeout;
    int one = 1;
    if (j->rank == 0) {
        int n = j->size - 1;
        MPI_Request *req = calloc((size_t)n + 1, sizeof *req);
        int *buf = calloc((size_t)n + 1, sizeof *buf);
        for (int r = 1; r < j->size; r++)
            MPI_Irecv(&buf[r - 1], 1, MPI_INT, r, TAG_HELLO, MPI_COMM_WORLD, &req[r - 1]);
        if (!wait_all(req, n, deadline)) {
            char missing[1024] = "";
            size_t len = 0;
            for (int r = 1; r < j->size; r++) {
                int flag = 0;
                MPI_Test(&req[r - 1], &flag, MPI_STATUS_IGNORE);
                if (!flag && len < sizeof missing - 16)
                    len += (size_t)snprintf(missing + len, sizeof missing - len, "%s%d",
                                            len ? ", " : "", r);
            }
            LOG_ERROR("rendezvous: rank(s) %s did not show up within %.0f s "
                      "(ps.rendezvous_timeout); aborting the job",
                      missing, j->cfg->ps.rendezvous_timeout);
            MPI_Abort(MPI_COMM_WORLD, 3);
        }
        for (int r = 1; r < j->size; r++)
            MPI_Send(&one, 1, MPI_INT, r, TAG_GO, MPI_COMM_WORLD);
        free(req);
        free(buf);
        return;
    }
    MPI_Request req[2];
    int go = 0;
    MPI_Isend(&one, 1, MPI_INT, 0, TAG_HELLO, MPI_COMM_WORLD, &req[0]);
    MPI_Irecv(&go, 1, MPI_INT, 0, TAG_GO, MPI_COMM_WORLD, &req[1]);
    if (!wait_all(req, 2, deadline + 5.0)) {
        LOG_ERROR("rendezvous: rank 0 did not answer within %.0f s; aborting the job",
                  j->cfg->ps.rendezvous_timeout + 5.0);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
}

static int start_server(Job *j)
{
    char host[BINDADDR_MAX], how[160], ep[ENDPOINT_MAX + BINDADDR_MAX];
    if (bindaddr_resolve(j->cfg->ps.host, host, sizeof host, how, sizeof how)) {
        LOG_ERROR("shard %d: %s", j->shard_index, psrec_errmsg());
        return -1;
    }
    LOG_INFO("shard %d binds %s (%s)", j->shard_index, host, how);
    if (j->cfg->ps.port)
        snprintf(ep, sizeof ep, "tcp://%s:%d", host, j->cfg->ps.port + j->shard_index);
    else
        snprintf(ep, sizeof ep, "tcp://%s:*", host);
    ServerLoopOptions lo = {.shard_index = (uint32_t)j->shard_index,
                            .shard_count = (uint32_t)j->shards,
                            .workers = (uint32_t)j->workers,
                            .staleness = (uint32_t)j->cfg->ps.staleness,
                            .endpoint = ep,
                            .stats_interval = 10.0,
                            .stats_file = j->metrics,
                            .zmq_ctx = j->zctx,
                            .max_message_bytes = j->cfg->ps.max_message_bytes,
                            .max_keys_per_request = j->cfg->ps.max_keys_per_request};
    run_meta_shard_options(&j->meta, &lo.shard);
    lo.shard.lazy_dense = j->shards > 1;
    lo.shard.max_rows = j->cfg->ps.max_rows_per_table;
    if (j->lf.resumed) {
        RunMeta saved;
        if (ckptdir_load_shard(j->lf.rs.step_dir, (uint32_t)j->shard_index, (uint32_t)j->shards,
                               lo.shard.lazy_dense, &saved, &lo.initial)) {
            LOG_ERROR("--resume: shard %d: %s", j->shard_index, psrec_errmsg());
            return -1;
        }
        lo.start_clock = j->lf.rs.job.step;
    }
    /* This shard's checkpoint thread writes its part of every cut; shard 0 commits. */
    CutWriter *cw = &j->cw;
    snprintf(cw->root, sizeof cw->root, "%s", j->lf.ckpt_root);
    cw->meta = j->meta;
    cw->config_text = j->config_text;
    cw->model_hash = cut_model_hash(&j->meta);
    cw->consistency = (uint32_t)j->cfg->ps.consistency;
    cw->interleave = j->cfg->data.partition == PARTITION_INTERLEAVE;
    cw->seed = j->cfg->train.seed;
    cw->keep = j->cfg->checkpoint.keep;
    cw->committer = j->shard_index == 0;
    cw->wait_timeout = 600.0 + j->cfg->ps.rendezvous_timeout;
    cw->plan = NULL;
    cw->plan_len = 0;
    if (j->plan_len && (cw->plan = malloc(j->plan_len))) { /* the writer owns its copy */
        memcpy(cw->plan, j->plan_bytes, j->plan_len);
        cw->plan_len = j->plan_len;
    }
    cw->world = (uint32_t)j->workers;
    cw->samples_n = dataset_meta(j->train)->samples;
    cw->base_samples = j->lf.base_samples;
    cw->life_t0 = j->lf.t0;
    cw->base_wall = j->lf.base_wall;
    lo.snap_fn = cut_write;
    lo.snap_ctx = cw;
    lo.final_image = 1;
    /* One shard alone knows every worker's last committed step: survivors can take over. */
    lo.takeover = !j->cfg->ps.colocate;
    lo.cut_every_seconds = j->cfg->checkpoint.every_seconds;
    lo.heartbeat_timeout = j->cfg->ps.heartbeat_timeout;
    switch (j->cfg->ps.consistency) {
    case CONSISTENCY_BSP: lo.consistency = SERVER_BSP; break;
    case CONSISTENCY_SSP: lo.consistency = SERVER_SSP; break;
    case CONSISTENCY_ASP: lo.consistency = SERVER_ASP; break;
    }
    if (server_loop_new(&lo, &j->loop)) { /* owns lo.initial now, also on error */
        LOG_ERROR("cannot start shard %d on %s: %s", j->shard_index, ep, psrec_errmsg());
        return -1;
    }
    if (server_loop_start(j->loop)) {
        LOG_ERROR("%s", psrec_errmsg());
        return -1;
    }
    j->loop_started = 1; /* the loop logs its endpoint and mode itself */
    return 0;
}

/* Allgather every rank's endpoint (empty for pure workers). */
static int exchange_endpoints(Job *j)
{
    char mine[ENDPOINT_MAX] = "";
    if (j->loop)
        snprintf(mine, sizeof mine, "%s", server_loop_endpoint(j->loop));
    j->endpoints = calloc((size_t)j->size, sizeof *j->endpoints);
    j->shard_ranks = calloc((size_t)j->shards, sizeof *j->shard_ranks);
    if (!j->endpoints || !j->shard_ranks)
        return -1;
    MPI_Allgather(mine, ENDPOINT_MAX, MPI_CHAR, j->endpoints, ENDPOINT_MAX, MPI_CHAR,
                  MPI_COMM_WORLD);
    for (int k = 0; k < j->shards; k++)
        j->shard_ranks[k] = k; /* shard k is rank k in both layouts */
    return 0;
}

/* ------------------------------------------------------------------ worker side */

/* Worker 0 collects the other workers' sums (point-to-point, with a deadline). */
/* Evaluate the dev impressions of rank v of vworld (this worker's own share, or a lost
 * worker's that the gatherer takes over) into acc. */
static int eval_share(Job *j, uint32_t v, MetricsAcc *acc)
{
    uint64_t begin, end;
    reader_partition(dataset_meta(j->dev)->impressions, v, j->vworld, &begin, &end);
    EvalOptions eo = {.dims = j->dims, .data = j->dev, .ps = &j->ps, .begin = begin, .end = end};
    EvalStats st;
    return eval_run(&eo, acc, &st);
}

/* The lost workers the shards told of (bit = worker index). */
static uint64_t lost_mask(const Job *j)
{
    return (j->client ? ps_zmq_lost_mask(j->client) : 0) |
           (j->heartbeat ? heartbeat_lost_mask(j->heartbeat) : 0);
}

/* The first worker of the layout collects the others' sums (point-to-point, with a deadline).
 * A worker lost before it sent them has its share evaluated by the collector instead. */
static int reduce_eval(Job *j, uint64_t epoch, MetricsAcc *acc)
{
    const int tag = TAG_EVAL + (int)(epoch % 100000);
    if (j->vrank != 0) {
        MPI_Send(acc, (int)sizeof *acc, MPI_BYTE, j->first_worker_rank + (int)j->live[0], tag,
                 MPI_COMM_WORLD);
        return 0;
    }
    int n = (int)j->vworld - 1;
    if (n == 0)
        return 0;
    MetricsAcc *parts = calloc((size_t)n, sizeof *parts);
    MPI_Request *req = calloc((size_t)n, sizeof *req);
    unsigned char *taken = calloc((size_t)n, 1);
    if (!parts || !req || !taken) {
        free(parts);
        free(req);
        free(taken);
        return PSREC_E_NOMEM;
    }
    for (int v = 1; v <= n; v++)
        MPI_Irecv(&parts[v - 1], (int)sizeof *parts, MPI_BYTE,
                  j->first_worker_rank + (int)j->live[v], tag, MPI_COMM_WORLD, &req[v - 1]);
    /* Workers finish their epochs within a step or so of each other; a generous deadline
     * covers their evaluation time too. */
    const double deadline = timer_now() + 600.0 + 10.0 * j->cfg->ps.rendezvous_timeout;
    int ok = 0, rc = 0;
    while (!rc && !(ok = wait_all(req, n, timer_now() + 0.2)) && timer_now() < deadline) {
        if (j->heartbeat && heartbeat_job_ending(j->heartbeat))
            break; /* a peer failed: its sums will never come */
        const uint64_t lost = lost_mask(j);
        for (int v = 1; v <= n && !rc; v++) {
            int flag = 0;
            if (taken[v - 1] || j->live[v] >= 64 || !(lost >> j->live[v] & 1))
                continue;
            MPI_Test(&req[v - 1], &flag, MPI_STATUS_IGNORE);
            if (flag)
                continue; /* it sent them before it was lost */
            MPI_Cancel(&req[v - 1]);
            MPI_Wait(&req[v - 1], MPI_STATUS_IGNORE);
            LOG_WARN("evaluation of epoch %llu: worker %u was lost; evaluating its share here",
                     (unsigned long long)epoch, j->live[v]);
            metrics_acc_init(&parts[v - 1]);
            rc = eval_share(j, (uint32_t)v, &parts[v - 1]);
            taken[v - 1] = 1;
        }
    }
    char missing[512] = "";
    size_t len = 0;
    if (ok && !rc) {
        for (int i = 0; i < n; i++)
            metrics_acc_merge(acc, &parts[i]);
    } else {
        for (int i = 0; i < n; i++) {
            int flag = 0;
            MPI_Test(&req[i], &flag, MPI_STATUS_IGNORE);
            if (!flag) {
                if (len < sizeof missing - 16)
                    len += (size_t)snprintf(missing + len, sizeof missing - len, "%s%d",
                                            len ? ", " : "",
                                            j->first_worker_rank + (int)j->live[i + 1]);
                MPI_Cancel(&req[i]);
            }
        }
    }
    free(parts);
    free(req);
    free(taken);
    if (rc)
        return rc;
    if (!ok)
        return psrec_errf(PSREC_E_STATE, "evaluation of epoch %llu: rank(s) %s never sent their "
                          "sums", (unsigned long long)epoch, missing);
    return 0;
}

static int worker_after_epoch(void *ctx, uint64_t epoch, uint64_t step)
{
    Job *j = ctx;
    j->epochs_done = epoch + 1;
    if (!j->dev)
        return 0;
    MetricsAcc acc;
    metrics_acc_init(&acc);
    int rc = eval_share(j, j->vrank, &acc);
    if (rc || (rc = reduce_eval(j, epoch, &acc)))
        return rc;
    if (j->vrank == 0) {
        metrics_result(&acc, &j->last_eval);
        j->evaluated = 1;
        run_write_eval(j->metrics, epoch, step, &j->last_eval);
        LOG_INFO("epoch %llu dev auc %.4f mrr %.4f ndcg@5 %.4f ndcg@10 %.4f (%llu impressions "
                 "over %d workers)",
                 (unsigned long long)epoch, j->last_eval.auc, j->last_eval.mrr,
                 j->last_eval.ndcg5, j->last_eval.ndcg10,
                 (unsigned long long)j->last_eval.impressions, j->vworld);
    }
    return 0;
}

/* Fault injection for tests: PSREC_TEST_SLEEP=w:step:seconds makes worker w sleep that long
 * after `step` steps (its heartbeats go on: a slow worker, not a dead one). */
static void test_sleep(const Job *j, uint64_t steps)
{
    const char *e = getenv("PSREC_TEST_SLEEP");
    unsigned w;
    unsigned long long at;
    double sec;
    if (e && sscanf(e, "%u:%llu:%lf", &w, &at, &sec) == 3 && w == (unsigned)j->worker_index &&
        at == steps) {
        LOG_WARN("sleeping %.1f s after step %llu on purpose (PSREC_TEST_SLEEP)", sec, at);
        struct timespec ts = {(time_t)sec, (long)((sec - (double)(time_t)sec) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
}

static int worker_cut_due(void *ctx, const WorkerCut *cut)
{
    Job *j = ctx;
    test_sleep(j, cut->steps);
    if (life_stop_due(cut->steps))
        ps_zmq_request(j->client, WIRE_FLAG_WANT_STOP); /* shard 0 announces the step */
    const int every = j->cfg->checkpoint.every_steps;
    uint64_t announced;
    int stop;
    ps_zmq_announced(j->client, &announced, &stop);
    return (every > 0 && cut->steps % (uint64_t)every == 0) || announced == cut->steps;
}

/* The position after each step rides on its CLOCK (and on the final SHUTDOWN). */
static void worker_step_pushed(void *ctx, const WorkerCut *cut)
{
    Job *j = ctx;
    unsigned char buf[WORKERCUT_BYTES];
    size_t len;
    if (workercut_encode(cut, buf, sizeof buf, &len) == 0)
        ps_zmq_set_position(j->client, buf, len);
}

static int worker_checkpoint(void *ctx, const WorkerCut *cut, int final)
{
    Job *j = ctx;
    worker_step_pushed(ctx, cut);
    if (final)
        return 0; /* the shards take the end-of-training cut when every worker is done */
    int stop = 0;
    int rc = ps_zmq_cut(j->client, cut->steps, &stop);
    if (rc)
        return rc;
    if (stop) {
        ps_zmq_set_stopping(j->client);
        return TRAIN_STOPPED;
    }
    if (ps_zmq_cut_flags(j->client) & WIRE_FLAG_REPLAN) {
        j->replan_step = cut->steps;
        return TRAIN_REPLAN;
    }
    return 0;
}

/* A worker was lost at the REPLAN cut just taken: read it back once shard 0 committed it, and
 * go on with this worker's share of every sample left (the lost one's included), re-ranked
 * among the survivors (launch/cut.h cut_takeover_plan; shard 0 records the same plan). */
static int worker_replan(void *ctx, ReaderOptions *ro)
{
    Job *j = ctx;
    const double deadline = timer_now() + 120.0 + 2.0 * j->cfg->ps.heartbeat_timeout;
    /* Poll for the commit cheaply (a MANIFEST's presence); the load below verifies once. */
    while (!ckptdir_committed(j->lf.ckpt_root, j->replan_step)) {
        if (timer_now() > deadline)
            return psrec_errf(ETIMEDOUT, "takeover: the cut at step %llu was not committed "
                              "under %s in time", (unsigned long long)j->replan_step,
                              j->lf.ckpt_root);
        usleep(20000);
    }
    ResumeState rs;
    int rc = cut_resume_load(j->lf.ckpt_root, &rs);
    if (rc)
        return rc;
    ReaderPlan *plan = NULL;
    uint32_t world = 0, vrank = UINT32_MAX;
    if (rs.job.step != j->replan_step)
        rc = psrec_errf(PSREC_E_STATE, "takeover: expected the cut at step %llu, found %llu",
                        (unsigned long long)j->replan_step, (unsigned long long)rs.job.step);
    else
        rc = cut_takeover_plan(&rs, dataset_meta(j->train)->samples, j->vrank, &plan, &world,
                               &vrank);
    if (!rc && vrank == UINT32_MAX)
        rc = psrec_errf(PSREC_E_FENCED, "takeover: this worker is not among the survivors");
    if (!rc) {
        /* The survivors' worker indices, in their new order (rs is in the old ranks'). */
        uint32_t n = 0, *live = calloc(world, sizeof *live);
        if (!live) {
            rc = PSREC_E_NOMEM;
        } else {
            for (uint32_t r = 0; r < rs.job.workers; r++) {
                if (rs.lost[r])
                    LOG_WARN("takeover: worker %u (rank %d) was lost after %llu steps; %u "
                             "survivor(s) take over its samples from epoch %llu, offset %llu "
                             "of its share on", j->live[r], j->first_worker_rank + (int)j->live[r],
                             (unsigned long long)rs.cuts[r].steps, world,
                             (unsigned long long)rs.cuts[r].pos.epoch,
                             (unsigned long long)rs.cuts[r].pos.offset);
                else if (!rs.done[r])
                    live[n++] = j->live[r];
            }
            free(j->live);
            j->live = live;
            reader_plan_free(&j->plan);
            j->plan = plan;
            plan = NULL;
            j->vrank = vrank;
            j->vworld = world;
            j->replanned = 1;
            reader_start_position(j->plan, j->cfg->train.seed, vrank, world,
                                  j->cfg->data.partition == PARTITION_INTERLEAVE, &j->start);
            ro->start = &j->start;
            ro->plan = j->plan;
            ro->rank = vrank;
            ro->world = world;
        }
    }
    reader_plan_free(&plan);
    cut_resume_fini(&rs);
    return rc;
}

/* The lag behind the slowest worker, from the shards' CLOCK acks (no extra message). */
static int worker_lag(void *ctx, uint64_t steps, uint64_t *lag)
{
    const Job *j = ctx;
    uint64_t slow = ps_zmq_slowest(j->client);
    *lag = steps > slow ? steps - slow : 0;
    return 1;
}

static int run_worker(Job *j)
{
    /* Fault injection for tests: PSREC_TEST_FAIL_WORKER=w makes worker w fail at once, before
     * it ever reaches a shard, as a worker that cannot connect would. */
    const char *inject = getenv("PSREC_TEST_FAIL_WORKER");
    if (inject && atoi(inject) == j->worker_index) {
        LOG_ERROR("failing on purpose (PSREC_TEST_FAIL_WORKER=%s)", inject);
        return -1;
    }
    const char **eps = calloc((size_t)j->shards, sizeof *eps);
    if (!eps)
        return -1;
    for (int k = 0; k < j->shards; k++)
        eps[k] = j->endpoints[j->shard_ranks[k]];
    PsZmqOptions po = {.zmq_ctx = j->zctx,
                       .endpoints = eps,
                       .shards = (uint32_t)j->shards,
                       .worker_rank = (uint32_t)j->worker_index,
                       .workers = (uint32_t)j->workers,
                       .timeout = 60.0 + j->cfg->ps.rendezvous_timeout,
                       .shard_mpi_ranks = j->shard_ranks,
                       .max_message_bytes = j->cfg->ps.max_message_bytes,
                       .max_keys_per_request = j->cfg->ps.max_keys_per_request};
    po.shape = (ParamShape){.E = j->meta.E, .H = j->meta.H, .vocab_rows = j->meta.vocab_rows,
                            .category_rows = j->meta.category_rows,
                            .user_rows = j->meta.user_rows};
    /* Liveness flows on a thread of its own while this one computes or waits at a gate. */
    HeartbeatOptions ho = {.zmq_ctx = j->zctx,
                           .endpoints = eps,
                           .shards = (uint32_t)j->shards,
                           .worker_rank = (uint32_t)j->worker_index,
                           .interval = j->cfg->ps.heartbeat_interval,
                           .shape = po.shape};
    int rc = heartbeat_start(&ho, &j->heartbeat);
    if (!rc) {
        po.heartbeat = j->heartbeat;
        po.dead_after = j->cfg->ps.heartbeat_timeout;
        rc = ps_zmq_new(&po, &j->client);
    }
    free(eps);
    if (rc) {
        LOG_ERROR("cannot connect to the shards: %s", psrec_errmsg());
        return -1;
    }
    ps_zmq_client(j->client, &j->ps);
    const Config *c = j->cfg;
    TrainOptions to = {.dims = j->dims,
                       .batch_size = c->train.batch_size,
                       .epochs = c->train.epochs,
                       .log_every = c->run.log_every,
                       .seed = c->train.seed,
                       .rank = (uint32_t)j->worker_index,
                       .world = (uint32_t)j->workers,
                       .interleave = c->data.partition == PARTITION_INTERLEAVE,
                       .train = j->train,
                       .ps = &j->ps,
                       .metrics = j->metrics,
                       .start = j->lf.resumed ? &j->start : NULL,
                       .plan = j->plan,
                       .start_step = j->lf.resumed ? j->lf.rs.job.step : 0,
                       .progress = run_progress_setup(j->worker_index == 0),
                       .progress_interval = c->run.log_every_seconds,
                       .hooks = {.ctx = j,
                                 .lag = worker_lag,
                                 .after_epoch = worker_after_epoch,
                                 .step_pushed = worker_step_pushed,
                                 .cut_due = worker_cut_due,
                                 .checkpoint = worker_checkpoint,
                                 .replan = worker_replan}};
    TrainResult res;
    rc = train_run(&to, &res);
    j->samples_life = res.samples;
    if (rc == PSREC_E_FENCED || (j->heartbeat && heartbeat_fenced(j->heartbeat))) {
        /* Declared dead while it was away (stopped, swapped out): the survivors took over its
         * samples, and nothing it sends is applied. It must not report a failure (that would
         * end the job it no longer belongs to) nor wait at the end for ranks that moved on. */
        LOG_ERROR("this worker was declared dead and fenced (its samples were taken over by "
                  "the others); exiting without touching the job");
        _exit(1);
    }
    if (res.last.pos.epoch > j->epochs_done) /* a resumed life: the epochs before it count */
        j->epochs_done = res.last.pos.epoch;
    if (rc == TRAIN_STOPPED) {
        j->stopped = 1;
        LOG_WARN("stopped at the cut at step %llu (preemption)",
                 (unsigned long long)res.last.steps);
        rc = 0;
    } else if (rc)
        LOG_ERROR("training failed: %s", psrec_errmsg());
    else
        LOG_INFO("done: %llu steps, %llu samples in %.1f s (%.0f samples/s)",
                 (unsigned long long)res.steps, (unsigned long long)res.samples, res.seconds,
                 (double)res.samples / (res.seconds > 0 ? res.seconds : 1));
    j->steps = res.last.steps > res.steps ? res.last.steps : res.steps;
    /* Done: tell every shard. After a failure the shards may be gone already (waiting for
     * their acks would take the whole client timeout); the caller tells them over MPI. */
    if (!rc && ps_zmq_shutdown(j->client)) {
        LOG_ERROR("shutdown: %s", psrec_errmsg());
        rc = -1;
    }
    return rc ? -1 : 0;
}

/* A worker that failed may not have been able to tell the shards it is done (no client, a
 * broken socket), and shards wait for every worker's SHUTDOWN: tell each shard's rank so,
 * point to point (a small message, sent eagerly, never blocks on a dead peer). */
static void notify_failure(Job *j)
{
    int one = 1;
    for (int k = 0; k < j->shards; k++)
        if (j->shard_ranks[k] != j->rank)
            MPI_Send(&one, 1, MPI_INT, j->shard_ranks[k], TAG_FAILED, MPI_COMM_WORLD);
    if (j->loop_started)
        server_loop_worker_failed(j->loop, (uint32_t)j->worker_index);
}

/* Wait for this rank's shard loop to end: every worker said SHUTDOWN or was reported failed
 * (point to point, by its rank). A failure makes the shard refuse everything, so the other
 * workers stop fast and report too; the job then exits non-zero. */
static void wait_loop(Job *j)
{
    int asked = 0;
    while (!server_loop_done(j->loop)) {
        if (!asked && life_stop_requested()) {
            server_loop_request_cut(j->loop, 1); /* a stopping cut at the next step */
            asked = 1;
        }
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_FAILED, MPI_COMM_WORLD, &flag, &st);
        if (flag) {
            int v;
            MPI_Recv(&v, 1, MPI_INT, st.MPI_SOURCE, TAG_FAILED, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            int w = j->cfg->ps.colocate ? st.MPI_SOURCE : st.MPI_SOURCE - j->first_worker_rank;
            LOG_ERROR("rank %d reports its worker failed", st.MPI_SOURCE);
            server_loop_worker_failed(j->loop, (uint32_t)w);
            j->peer_failed = 1;
            continue;
        }
        usleep(10000);
    }
}

/* ------------------------------------------------------------------ the end */

static void local_threads(const Config *c)
{
    if (c->train.threads > 0) {
        run_set_threads(c->train.threads);
        return;
    }
    /* 0 = all cores, shared among the ranks on this host. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *ls = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    long local = ls ? atol(ls) : 1;
    long n = cores / (local > 0 ? local : 1);
    run_set_threads(n > 0 ? (int)n : 1);
}

static int open_metrics(Job *j)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/metrics.jsonl", j->cfg->run.dir);
    if (!(j->metrics = fopen(path, "a"))) {
        LOG_ERROR("%s: %s", path, strerror(errno));
        return -1;
    }
    setvbuf(j->metrics, NULL, _IOLBF, 0); /* whole lines, appended: ranks interleave safely */
    return 0;
}

/* Start-up watchdog: MPI_Init itself waits for every rank of the job, so a rank that never
 * starts would hang the others before any deadline of ours could run. An alarm bounds the
 * whole start-up (MPI_Init, hello, endpoint exchange) by ps.rendezvous_timeout plus slack. */
static void startup_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "psrec: rendezvous: the job did not start within "
                              "ps.rendezvous_timeout (a rank never started or never reached "
                              "MPI_Init); exiting\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    _exit(3);
}

static void startup_watchdog(double seconds)
{
    if (seconds <= 0) {
        alarm(0);
        return;
    }
    signal(SIGALRM, startup_alarm);
    alarm((unsigned)(seconds + 0.999));
}

/* Every rank: where this life starts (resume state, this worker's start and the plan every
 * rank derives alike, the config text for job.ckpt). Returns 0 or -1 (logged). */
static int prepare_life(Job *j)
{
    const Config *cfg = j->cfg;
    /* The layout: every worker at its own index until a takeover re-ranks the survivors. */
    if (!(j->live = calloc((size_t)j->workers, sizeof *j->live)))
        return -1;
    for (int w = 0; w < j->workers; w++)
        j->live[w] = (uint32_t)w;
    j->vrank = j->is_worker ? (uint32_t)j->worker_index : 0;
    j->vworld = (uint32_t)j->workers;
    if (life_load_resume(cfg, j->flags, &j->meta, &j->lf))
        return -1;
    FILE *mf = open_memstream(&j->config_text, &(size_t){0});
    if (!mf || config_write(cfg, mf) || fclose(mf))
        return -1;
    if (!j->lf.resumed)
        return 0;
    const int interleave = cfg->data.partition == PARTITION_INTERLEAVE;
    uint32_t rank = j->is_worker ? (uint32_t)j->worker_index : 0;
    if (cut_resume_start(&j->lf.rs, rank, (uint32_t)j->workers, interleave,
                         dataset_meta(j->train)->samples, &j->start, &j->plan)) {
        LOG_ERROR("--resume: %s", psrec_errmsg());
        return -1;
    }
    if (j->plan) {
        size_t n = reader_plan_encoded_size(j->plan);
        if (!(j->plan_bytes = malloc(n)) ||
            reader_plan_encode(j->plan, j->plan_bytes, n, &j->plan_len))
            return -1;
        if (j->rank == 0 && reader_plan_needed(j->lf.rs.job.workers, (int)j->lf.rs.job.interleave,
                                               (uint32_t)j->workers, interleave))
            LOG_INFO("--resume: %llu worker(s) take over the unfinished samples of %u worker(s)",
                     (unsigned long long)j->workers, j->lf.rs.job.workers);
    }
    return 0;
}

/* The end of a life, every rank alive: agree on the outcome, rank 0 writes summary.json.
 * Returns the exit code. */
static int finish_life(Job *j, int mine)
{
    const Config *cfg = j->cfg;
    unsigned long long failures = 0, v[4], sum[4];
    if (j->loop) {
        server_loop_flush(j->loop);
        SnapStatus ss;
        server_loop_snap_status(j->loop, &ss);
        failures = ss.failed;
        if (j->shard_index == 0 && ss.last_rc)
            mine = 0; /* the newest cut (or the final one) did not reach the disk */
    }
    int stopped = j->stopped || (j->loop && server_loop_stopped(j->loop));
    v[0] = (unsigned long long)j->samples_life;
    v[1] = failures;
    v[2] = (unsigned long long)stopped;
    v[3] = (unsigned long long)!mine;
    MPI_Allreduce(v, sum, 4, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    unsigned long long steps = j->steps, max_steps = 0, epochs = j->epochs_done, min_epochs = 0;
    MPI_Allreduce(&steps, &max_steps, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    if (!j->is_worker)
        epochs = ULLONG_MAX;
    MPI_Allreduce(&epochs, &min_epochs, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    /* Rank 0 writes the summary; the dev metrics live on the first worker's rank. */
    double dev[5] = {j->evaluated, j->last_eval.auc, j->last_eval.mrr, j->last_eval.ndcg5,
                     j->last_eval.ndcg10};
    MPI_Bcast(dev, 5, MPI_DOUBLE, j->first_worker_rank, MPI_COMM_WORLD);
    const int ok = sum[3] == 0;
    const int preempted = ok && sum[2] > 0;
    RunStatus status = !ok ? RUN_STATUS_FAILED : preempted ? RUN_STATUS_PREEMPTED
                                                           : RUN_STATUS_COMPLETED;
    if (j->rank == 0) {
        MetricsResult m = {.auc = dev[1], .mrr = dev[2], .ndcg5 = dev[3], .ndcg10 = dev[4]};
        life_write_summary(cfg, &j->lf, status, max_steps,
                           status == RUN_STATUS_COMPLETED ? (uint64_t)cfg->train.epochs
                                                          : min_epochs,
                           sum[0], dev[0] ? &m : NULL, (uint32_t)sum[1], NULL, 0);
        if (sum[1])
            LOG_ERROR("%llu checkpoint file(s) could not be written this run; the newest valid "
                      "checkpoint is what --resume uses", sum[1]);
        if (preempted)
            LOG_WARN("preempted: every rank stopped at a checkpoint; exit code %d (continue "
                     "with --resume)", EXIT_PREEMPTED);
    }
    if (j->rank == j->first_worker_rank && j->evaluated && status == RUN_STATUS_COMPLETED)
        run_print_eval(stdout, &j->last_eval);
    return !ok ? 1 : preempted ? EXIT_PREEMPTED : 0;
}

/* The end of a life that lost a worker (taken over by the survivors): a collective would
 * wait for the lost rank forever, so every live rank reports to rank 0 (the shard, which knows
 * who was lost) point to point, rank 0 writes summary.json and answers each with the exit
 * code. Every wait has a deadline. */
/* Samples worker w trained in this life up to its last committed step, as the position its
 * last CLOCK brought this rank's shard says (0 when none arrived). Shard ranks only. */
static uint64_t committed_samples(const Job *j, uint32_t w)
{
    unsigned char buf[SNAP_CUT_MAX];
    WorkerCut wc;
    uint32_t len = server_loop_position(j->loop, w, buf);
    return len && workercut_decode(buf, len, &wc) == 0 ? wc.samples : 0;
}

typedef struct EndReport {
    uint64_t samples, failures, steps, epochs;
    int32_t ok, stopped, evaluated, reserved;
    double dev[4];
} EndReport;

static int finish_life_p2p(Job *j, int mine)
{
    EndReport me = {.samples = j->samples_life,
                    .steps = j->steps,
                    .epochs = j->is_worker ? j->epochs_done : UINT64_MAX,
                    .ok = mine,
                    .stopped = j->stopped || (j->loop && server_loop_stopped(j->loop)),
                    .evaluated = j->evaluated,
                    .dev = {j->last_eval.auc, j->last_eval.mrr, j->last_eval.ndcg5,
                            j->last_eval.ndcg10}};
    if (j->loop) {
        server_loop_flush(j->loop);
        SnapStatus ss;
        server_loop_snap_status(j->loop, &ss);
        me.failures = ss.failed;
        if (ss.last_rc)
            me.ok = 0;
    }
    const double deadline = timer_now() + 120.0 + 2.0 * j->cfg->ps.heartbeat_timeout;
    int code = 1;
    if (j->rank != 0) {
        MPI_Request req[2];
        MPI_Isend(&me, (int)sizeof me, MPI_BYTE, 0, TAG_END, MPI_COMM_WORLD, &req[0]);
        MPI_Irecv(&code, 1, MPI_INT, 0, TAG_CODE, MPI_COMM_WORLD, &req[1]);
        if (!wait_all(req, 2, deadline)) {
            LOG_ERROR("rank 0 did not answer at the end of the job; exiting with 1");
            return 1;
        }
        if (code == 0 && j->evaluated && j->is_worker && j->vrank == 0)
            run_print_eval(stdout, &j->last_eval);
        return code;
    }
    /* Rank 0: who is alive (every rank but the lost workers'). */
    uint32_t lost[RUNDIR_LOST_MAX];
    uint32_t nlost = j->loop ? server_loop_lost(j->loop, lost, RUNDIR_LOST_MAX) : 0;
    if (nlost > RUNDIR_LOST_MAX)
        nlost = RUNDIR_LOST_MAX;
    unsigned char *gone = calloc((size_t)j->size, 1);
    EndReport *rep = calloc((size_t)j->size, sizeof *rep);
    MPI_Request *req = calloc((size_t)j->size, sizeof *req);
    int ranks[RUNDIR_LOST_MAX];
    if (!gone || !rep || !req) {
        free(gone);
        free(rep);
        free(req);
        return 1;
    }
    uint64_t lost_samples = 0;
    for (uint32_t i = 0; i < nlost; i++) {
        ranks[i] = j->first_worker_rank + (int)lost[i];
        gone[ranks[i]] = 1;
        lost_samples += committed_samples(j, lost[i]); /* in the model before it was lost */
    }
    int n = 0;
    for (int r = 1; r < j->size; r++)
        if (!gone[r])
            MPI_Irecv(&rep[r], (int)sizeof *rep, MPI_BYTE, r, TAG_END, MPI_COMM_WORLD, &req[n++]);
    int all = wait_all(req, n, deadline);
    if (!all) {
        LOG_ERROR("the end of the job: some ranks did not report within the deadline");
        for (int i = 0; i < n; i++) {
            int flag = 0;
            MPI_Test(&req[i], &flag, MPI_STATUS_IGNORE);
            if (!flag)
                MPI_Cancel(&req[i]);
        }
    }
    rep[0] = me;
    EndReport sum = {.ok = all, .epochs = UINT64_MAX};
    const EndReport *dev = NULL;
    for (int r = 0; r < j->size; r++) {
        if (gone[r])
            continue;
        sum.samples += rep[r].samples;
        sum.failures += rep[r].failures;
        sum.steps = rep[r].steps > sum.steps ? rep[r].steps : sum.steps;
        sum.epochs = rep[r].epochs < sum.epochs ? rep[r].epochs : sum.epochs;
        sum.ok &= rep[r].ok != 0;
        sum.stopped |= rep[r].stopped;
        if (rep[r].evaluated)
            dev = &rep[r];
    }
    if (j->loop && server_loop_fastest(j->loop) > sum.steps)
        sum.steps = server_loop_fastest(j->loop);
    const int preempted = sum.ok && sum.stopped;
    RunStatus status = !sum.ok ? RUN_STATUS_FAILED : preempted ? RUN_STATUS_PREEMPTED
                                                               : RUN_STATUS_COMPLETED;
    MetricsResult m = {0};
    if (dev)
        m = (MetricsResult){.auc = dev->dev[0], .mrr = dev->dev[1], .ndcg5 = dev->dev[2],
                            .ndcg10 = dev->dev[3]};
    life_write_summary(j->cfg, &j->lf, status, sum.steps,
                       status == RUN_STATUS_COMPLETED ? (uint64_t)j->cfg->train.epochs
                                                      : sum.epochs,
                       sum.samples + lost_samples, dev ? &m : NULL, (uint32_t)sum.failures,
                       ranks, nlost);
    code = !sum.ok ? 1 : preempted ? EXIT_PREEMPTED : 0;
    LOG_INFO("the job %s with %u worker(s) lost and taken over (lost_workers in summary.json)",
             status == RUN_STATUS_COMPLETED ? "completed" : rundir_status_name(status), nlost);
    for (int r = 1; r < j->size; r++)
        if (!gone[r])
            MPI_Send(&code, 1, MPI_INT, r, TAG_CODE, MPI_COMM_WORLD);
    free(gone);
    free(rep);
    free(req);
    return code;
}

/* MPI_Finalize after a lost rank may wait for it: bound it, then leave with the code. */
static volatile sig_atomic_t final_code;
static void finalize_alarm(int sig)
{
    (void)sig;
    _exit(final_code);
}

/* A failed life: no collective, since a rank may be dead or stopped (a collective with it
 * would never return). Rank 0 writes summary.json and ends the job with MPI_Abort; the other
 * ranks give it time to, then end it themselves (rank 0 may be the one that is gone). */
static int fail_job(Job *j)
{
    /* mpirun answers MPI_Abort with SIGTERM to every rank: not a preemption request now. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    uint32_t lost[RUNDIR_LOST_MAX];
    uint32_t nlost = j->loop ? server_loop_lost(j->loop, lost, RUNDIR_LOST_MAX) : 0;
    if (nlost > RUNDIR_LOST_MAX)
        nlost = RUNDIR_LOST_MAX;
    if (j->rank == 0) {
        int ranks[RUNDIR_LOST_MAX];
        for (uint32_t i = 0; i < nlost; i++)
            ranks[i] = j->cfg->ps.colocate ? (int)lost[i] : j->first_worker_rank + (int)lost[i];
        SnapStatus ss = {0};
        uint64_t steps = j->steps, samples = j->samples_life;
        if (j->loop) {
            server_loop_snap_status(j->loop, &ss);
            /* A pure shard trains nothing itself: the workers' clocks and positions say how
             * far the job got (samples whose steps were committed). */
            if (server_loop_fastest(j->loop) > steps)
                steps = server_loop_fastest(j->loop);
            uint64_t sum = 0;
            for (uint32_t w = 0; w < (uint32_t)j->workers; w++)
                sum += committed_samples(j, w);
            if (!j->is_worker)
                samples = sum;
        }
        life_write_summary(j->cfg, &j->lf, RUN_STATUS_FAILED, steps, j->epochs_done, samples,
                           NULL, (uint32_t)ss.failed, ranks, nlost);
        LOG_ERROR("the job failed; ending every rank (the newest checkpoint is what --resume "
                  "and psrec supervise continue from)");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    /* Rank 0 is shard 0: when it is the one that is gone, no one else would write the
     * summary; the first worker does, and nobody waits for rank 0. */
    const int rank0_gone = j->heartbeat && !j->cfg->ps.colocate &&
                           heartbeat_silence(j->heartbeat, 0) > j->cfg->ps.heartbeat_timeout;
    if (rank0_gone && j->worker_index == 0) {
        life_write_summary(j->cfg, &j->lf, RUN_STATUS_FAILED, j->steps, j->epochs_done,
                           j->samples_life, NULL, 0, NULL, 0);
        LOG_ERROR("shard 0 (rank 0) is gone: the job failed; ending every rank");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    double until = timer_now() + (rank0_gone ? 1.0 : 10.0 + j->cfg->ps.heartbeat_timeout);
    while (timer_now() < until)
        usleep(100000);
    LOG_ERROR("rank 0 did not end the failed job; ending it from rank %d", j->rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
}

int job_train_mpi(const Config *cfg, const char *config_path, const TrainFlags *flags)
{
    int provided;
    startup_watchdog(cfg->ps.rendezvous_timeout + 10.0);
    MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    Job j = {.cfg = cfg, .flags = flags};
    MPI_Comm_rank(MPI_COMM_WORLD, &j.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &j.size);
    log_set_identity("rank", j.rank);
    int code = 1;
    /* Roles come from the config alone, so every rank reaches the same verdict. */
    int ok = assign_roles(&j) == 0;
    if (ok) {
        log_set_identity(j.is_server && j.is_worker ? "server+worker"
                         : j.is_server             ? "server"
                                                   : "worker",
                         j.rank);
        local_threads(cfg);
        hello(&j); /* first MPI traffic: a missing rank aborts the job with its number */
        /* Every rank reads the training set's meta (the id-space sizes shape the tables). */
        ok = agree(run_open_datasets(cfg, &j.train, &j.dev) == 0);
    }
    if (ok) {
        run_meta_from_config(cfg, dataset_meta(j.train), &j.meta);
        run_meta_dims(&j.meta, &j.dims);
        int mine = 1;
        if (j.rank == 0) {
            /* One rank owns the run dir: the lock, the refusal, the files. */
            FILE *m = NULL;
            mine = life_open_dir(cfg, flags, &j.lf) == 0 &&
                   run_prepare_dir(cfg, flags->resume, &m) == 0;
            if (mine) /* the run dir is this run's: its log gets the start line on */
                run_open_log(cfg);
            if (m)
                fclose(m);
            LOG_INFO("%s%s%s: %d ranks: %d shard(s), %d worker(s)%s, %s",
                     cfg->run.name[0] ? cfg->run.name : "", cfg->run.name[0] ? " from " : "",
                     config_path, j.size,
                     j.shards, j.workers, cfg->ps.colocate ? " colocated" : "",
                     config_consistency_name(cfg->ps.consistency));
        }
        ok = agree(mine);
        if (ok && j.rank != 0) /* rank 0 made the run dir this run's: all append to its log */
            run_open_log(cfg);
    }
    if (ok && !(cfg->ps.heartbeat_timeout >= 2.0 * cfg->ps.heartbeat_interval)) {
        if (j.rank == 0)
            LOG_ERROR("ps.heartbeat_timeout = %g s must be at least twice ps.heartbeat_interval "
                      "= %g s, or one late heartbeat declares a worker dead",
                      cfg->ps.heartbeat_timeout, cfg->ps.heartbeat_interval);
        ok = 0;
    }
    if (ok)
        ok = agree(prepare_life(&j) == 0);
    if (ok) { /* one run id for every rank's checkpoint files: rank 0's (equal when resumed) */
        MPI_Bcast(&j.meta.run_id, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
        ok = agree(j.rank != 0 || life_record_run_id(cfg, &j.lf, j.meta.run_id) == 0);
    }
    if (ok) {
        j.zctx = zmq_ctx_new();
        ok = agree(open_metrics(&j) == 0 && (!j.is_server || start_server(&j) == 0));
    }
    if (ok)
        ok = agree(exchange_endpoints(&j) == 0);
    startup_watchdog(0); /* started: from here on, ZeroMQ timeouts and deadlines apply */
    if (ok) {
        int mine = 1;
        if (j.is_worker && !(mine = run_worker(&j) == 0))
            notify_failure(&j);
        if (j.loop_started) {
            wait_loop(&j);
            server_loop_join(j.loop, -1, &j.loop_rc);
            j.loop_started = 0;
            if (j.peer_failed)
                mine = 0;
            if (j.loop_rc) {
                LOG_ERROR("shard %d loop failed: %s", j.shard_index, psrec_strerror(j.loop_rc));
                mine = 0;
            }
        }
        /* A lost worker the survivors took over (the shard's loop, or the shards' replies,
         * say so): a collective would wait for it forever. */
        if (j.loop && server_loop_failed(j.loop))
            mine = 0; /* a worker failed, or died with nobody to take it over */
        uint32_t lost1;
        const int lost = (j.loop && server_loop_lost(j.loop, &lost1, 1)) ||
                         (j.is_worker && lost_mask(&j));
        const int takeover = !cfg->ps.colocate;
        if (!mine || (lost && !takeover))
            code = fail_job(&j); /* does not return: MPI_Abort */
        else if (lost) {
            code = finish_life_p2p(&j, mine);
            j.lost_any = 1;
        }
        else
            code = finish_life(&j, mine);
    }
    ps_zmq_free(&j.client);
    heartbeat_stop(&j.heartbeat);
    server_loop_free(&j.loop);
    if (j.zctx)
        zmq_ctx_term(j.zctx);
    if (j.metrics)
        fclose(j.metrics);
    dataset_free(&j.train);
    dataset_free(&j.dev);
    free(j.endpoints);
    free(j.shard_ranks);
    free(j.config_text);
    free(j.plan_bytes);
    reader_plan_free(&j.plan);
    life_close(&j.lf);
    free(j.live);
    if (j.lost_any) {
        final_code = ok ? code : 1;
        signal(SIGALRM, finalize_alarm);
        alarm(10);
    }
    log_close_file();
    MPI_Finalize();
    return ok ? code : 1;
}
