/* The LSTM layer's GEMMs (see lstm_gemm.h): AVX-512 register-blocked kernels on packed
 * panels, cblas_sgemm as the fallback.
 *
 * One tile kernel serves all three cases: a tile of MR rows x 64 columns of C lives in 24 zmm
 * accumulators while k runs; each step loads 4 vectors of one row of a packed panel of B and
 * broadcasts MR elements of A, a(i, k) = A[i * sai + k * sak] (NN and NT: sai = lda, sak = 1;
 * TN: sai = 1, sak = lda), so A is read where it lies.
 *
 * B is always packed first, because read in place it is the slow part: a 64-column strip of
 * a row-major B with rows 2 KB apart maps every row to the same few L1 sets, so the panel
 * that should stay in L1 is evicted row by row and comes from L2 at every tile (the kernels
 * ran at a third of the FMA peak that way). A packed panel is KC rows of 64 contiguous
 * floats (32 KB, zero-padded past N), read sequentially.
 *  - NN and NT: the whole op(B) (K x N; for NT the transpose of the given (N, K)) is packed
 *    once per GEMM, or once for many GEMMs with lstm_gemm_prepare (the recurrence's W_hh at
 *    every step), into a per-thread buffer: column block jb is K rows of 64 at
 *    panels + jb * K * 64. Threads split C by rows and share the packed operand.
 *  - TN (weight gradients: K is the long packed-row dimension): each thread packs the
 *    (KC x 64) panel it is about to use into its own 32 KB buffer; each thread takes one
 *    chunk of C's columns (a multiple of 64), since every chunk streams all K rows of A.
 *
 * Threads: lstm_gemm_set_threads(n) splits a GEMM of at least SPLIT_MIN_MNK multiply-adds
 * into chunks that the caller and n - 1 helper threads take from an atomic counter (a
 * descheduled helper costs the chunk it holds, not half the GEMM); one job at a time, a
 * second caller runs alone. Helpers spin briefly between jobs, then sleep on a condition
 * variable. The same pool runs row functions after a chunk's GEMM (lstm_gemm_apply_then) and
 * plain parallel loops (lstm_gemm_parallel_for) for the LSTM's gate math.
 *
 * Invariants: beta is 0 or 1; C is written only inside (M, N); no element of A, B or C is read
 * outside the matrix (B is padded in the packed copy, C's edge is masked). Every element of C
 * is summed in k order whatever the thread count (bit-identical for 1 or 2 threads).
 * Summation order differs from OpenBLAS: results agree to rounding. Packing memory is
 * allocated on first use and kept per thread (grown, never shrunk); when it cannot be had the
 * GEMM runs through cblas_sgemm. */
#include "worker/lstm_gemm.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

/* The transpose cases, and FOR: no GEMM, only the row function (lstm_gemm_parallel_for). */
enum { KIND_NN, KIND_TN, KIND_NT, KIND_FOR };

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GEMM_X86 1
#define AVX512 __attribute__((target("avx512f")))
#define INLINE __attribute__((always_inline)) inline
/* Full unrolling of the tile loops (bounds are constants after inlining): the accumulators
 * must become registers, which -O2 alone does not do. */
#define UNROLL _Pragma("GCC unroll 8")

enum {
    MR = 6,   /* rows of a tile */
    NV = 4,   /* zmm vectors of a tile's row */
    NB = 64,  /* columns of a tile and of a packed panel: 16 * NV */
    KC = 128, /* k per panel: a KC x 64 panel is 32 KB, inside L1 */
    MC = 120  /* rows of A per block (NN, NT): MC x KC floats of A stay in L2 */
};

/* Mask of the lanes of vector v (16 columns) of a 64-column block with `cols` valid. */
static inline __mmask16 lane_mask(int cols, int v)
{
    int n = cols - 16 * v;
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* C[m rows, 64 masked cols] (= or +=) sum over kc of a(i, k) bp[k, :], bp a packed panel
 * (rows of NB floats, 64-byte aligned). m is a constant at every call site (the switch in
 * tiles_over_panel), so acc stays in registers. */
AVX512 static INLINE void tile(int m, int kc, const float *a, size_t sai, size_t sak,
                               const float *bp, const __mmask16 *mk, int accum, float *c,
                               size_t ldc)
{
    __m512 acc[MR][NV];
    UNROLL
    for (int i = 0; i < m; i++)
        UNROLL
        for (int v = 0; v < NV; v++)
            acc[i][v] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        const float *bk = bp + (size_t)k * NB;
        __m512 bv[NV];
        UNROLL
        for (int v = 0; v < NV; v++)
            bv[v] = _mm512_load_ps(bk + 16 * v);
        const float *ak = a + (size_t)k * sak;
        UNROLL
        for (int i = 0; i < m; i++) {
            __m512 ai = _mm512_set1_ps(ak[(size_t)i * sai]);
            UNROLL
            for (int v = 0; v < NV; v++)
                acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
    }
    UNROLL
    for (int i = 0; i < m; i++)
        UNROLL
        for (int v = 0; v < NV; v++) {
            float *cp = c + (size_t)i * ldc + 16 * v;
            __m512 r = acc[i][v];
            if (accum)
                r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mk[v], cp));
            _mm512_mask_storeu_ps(cp, mk[v], r);
        }
}

/* Rows [i0, i1) of C's 64-column block at c (cols valid columns) over one panel; i0 is a
 * multiple of MR, and the tile of rows i.. reads A from A + (i / MR) * tile_step with
 * strides sai, sak (tile_step = MR * sai for A in place; A in strips packs each tile's
 * rows together). */
AVX512 static void tiles_over_panel(int i0, int i1, int kc, const float *A, size_t tile_step,
                                    size_t sai, size_t sak, const float *bp, int cols,
                                    int accum, float *c, size_t ldc)
{
    __mmask16 mk[NV];
    UNROLL
    for (int v = 0; v < NV; v++)
        mk[v] = lane_mask(cols, v);
    for (int i = i0; i < i1; i += MR) {
        const float *a = A + (size_t)(i / MR) * tile_step;
        float *ci = c + (size_t)i * ldc;
        switch (i1 - i < MR ? i1 - i : MR) {
        case 6: tile(6, kc, a, sai, sak, bp, mk, accum, ci, ldc); break;
        case 5: tile(5, kc, a, sai, sak, bp, mk, accum, ci, ldc); break;
        case 4: tile(4, kc, a, sai, sak, bp, mk, accum, ci, ldc); break;
        case 3: tile(3, kc, a, sai, sak, bp, mk, accum, ci, ldc); break;
        case 2: tile(2, kc, a, sai, sak, bp, mk, accum, ci, ldc); break;
        default: tile(1, kc, a, sai, sak, bp, mk, accum, ci, ldc); break;
        }
    }
}

/* C (M, N) = beta C + A (M, K) . op(B), op(B) packed whole (P: column block jb at
 * P + jb * K * NB). Rows of A in blocks of MC so that a block's KC columns stay in L2 while
 * every panel of that k range passes over them. */
AVX512 static void gemm_packed(int M, int N, int K, const float *A, size_t lda,
                               const float *P, float beta, float *C, size_t ldc)
{
    for (int ic = 0; ic < M; ic += MC) {
        const int iend = ic + MC < M ? ic + MC : M;
        for (int k0 = 0; k0 < K; k0 += KC) {
            const int kc = K - k0 < KC ? K - k0 : KC;
            const int accum = k0 > 0 || beta != 0.0f;
            for (int j0 = 0; j0 < N; j0 += NB)
                tiles_over_panel(ic, iend, kc, A + k0, MR * lda, lda, 1,
                                 P + (size_t)j0 * K + (size_t)k0 * NB, N - j0, accum,
                                 C + j0, ldc);
        }
    }
}

/* Pack kc rows x the first `cols` columns of B (row-major) as kc rows of NB floats,
 * zero-padded. */
AVX512 static void pack_panel(int kc, int cols, const float *B, size_t ldb, float *bp)
{
    __mmask16 mk[NV];
    for (int v = 0; v < NV; v++)
        mk[v] = lane_mask(cols, v);
    for (int k = 0; k < kc; k++)
        for (int v = 0; v < NV; v++)
            _mm512_store_ps(bp + (size_t)k * NB + 16 * v,
                            _mm512_maskz_loadu_ps(mk[v], B + (size_t)k * ldb + 16 * v));
}

/* Pack op(B) (K x N) whole into P: P[jb][k][j] = op(B)[k][jb * NB + j], zeros past N.
 * trans = 0: op(B) = B (K, N); trans = 1: op(B) = B^T with B (N, K). */
AVX512 static void pack_whole(int trans, int K, int N, const float *B, size_t ldb, float *P)
{
    for (int j0 = 0; j0 < N; j0 += NB) {
        float *pj = P + (size_t)j0 * K;
        const int cols = N - j0 < NB ? N - j0 : NB;
        if (!trans) {
            pack_panel(K, cols, B + j0, ldb, pj);
            continue;
        }
        /* Transposed: rows j of B become columns; walk B's rows (contiguous reads). */
        for (int j = 0; j < NB; j++) {
            if (j >= cols) {
                for (int k = 0; k < K; k++)
                    pj[(size_t)k * NB + j] = 0.0f;
                continue;
            }
            const float *bj = B + (size_t)(j0 + j) * ldb;
            for (int k = 0; k < K; k++)
                pj[(size_t)k * NB + j] = bj[k];
        }
    }
}

/* One thread's 32 KB panel for TN. */
static _Thread_local float tn_panel[KC * NB] __attribute__((aligned(64)));

/* C (M, n) = beta C + A^T . B over columns [0, n) of the C and B given (a 64-multiple
 * chunk): sum over K of outer products. Per KC rows of A and B, every 64-column panel of B
 * is packed and run against the whole block of A (read in place: for fixed k a tile's MR
 * elements are adjacent; packing A in strips measured no faster). */
AVX512 static void gemm_tn_cols(int M, int n, int K, const float *A, size_t lda,
                                const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC;
        const int accum = k0 > 0 || beta != 0.0f;
        for (int j0 = 0; j0 < n; j0 += NB) {
            const int cols = n - j0 < NB ? n - j0 : NB;
            pack_panel(kc, cols, B + (size_t)k0 * ldb + j0, ldb, tn_panel);
            tiles_over_panel(0, M, kc, A + (size_t)k0 * lda, MR, 1, lda, tn_panel, cols, accum,
                             C + j0, ldc);
        }
    }
}

/* ------------------------------------------------------------------ packing memory */

/* Per-thread packed operands, one per slot (lstm_gemm.h), grown on demand and freed when
 * the thread ends (a pthread key's destructor; the main thread's at exit). */
typedef struct PackSlots {
    float *p[LSTM_GEMM_SLOTS];
    size_t cap[LSTM_GEMM_SLOTS]; /* floats */
} PackSlots;

static pthread_key_t slots_key;
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;
static int slots_key_ok;

static PackSlots *main_slots; /* the first thread's, freed at exit (leak checks) */

static void slots_free(void *v)
{
    PackSlots *s = v;
    if (s == main_slots)
        main_slots = NULL;
    for (int i = 0; i < LSTM_GEMM_SLOTS; i++)
        free(s->p[i]);
    free(s);
}

static void slots_key_make(void)
{
    slots_key_ok = pthread_key_create(&slots_key, slots_free) == 0;
}

static void main_slots_free(void)
{
    if (main_slots) {
        pthread_setspecific(slots_key, NULL);
        slots_free(main_slots);
        main_slots = NULL;
    }
}

/* `floats` floats of this thread's slot, 64-byte aligned, or NULL. */
static float *slot_buffer(int slot, size_t floats)
{
    pthread_once(&slots_once, slots_key_make);
    if (!slots_key_ok || slot < 0 || slot >= LSTM_GEMM_SLOTS)
        return NULL;
    PackSlots *s = pthread_getspecific(slots_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s)))
            return NULL;
        if (pthread_setspecific(slots_key, s)) {
            free(s);
            return NULL;
        }
        static atomic_flag registered = ATOMIC_FLAG_INIT;
        if (!atomic_flag_test_and_set(&registered)) {
            main_slots = s;
            atexit(main_slots_free);
        }
    }
    if (s->cap[slot] < floats) {
        size_t want = floats + floats / 4;
        float *p = aligned_alloc(64, (want * sizeof *p + 63) / 64 * 64);
        if (!p)
            return NULL;
        free(s->p[slot]);
        s->p[slot] = p;
        s->cap[slot] = want;
    }
    return s->p[slot];
}

/* ------------------------------------------------------------------ threads */

/* One GEMM split into chunks that the caller and the helpers take in turn (an atomic
 * counter): a helper the OS does not schedule costs at most the chunk it holds, so a loaded
 * machine degrades to one thread instead of waiting on a straggler's half. */
typedef struct GemmJob {
    int kind, M, N, K;
    const float *A, *B; /* B: packed whole (NN, NT) or as given (TN) */
    size_t lda, ldb, ldc;
    float beta;
    float *C;
    int chunks, chunk; /* chunk: rows (NN, NT, FOR) or columns (TN) per chunk */
    LstmRowFn fn;      /* NN, NT, FOR: run on each chunk's rows after its GEMM, or NULL */
    void *ctx;
    atomic_int next, completed;
} GemmJob;

enum {
    HELPER_SPIN_TICKS = 100000, /* TSC ticks a helper spins for a job: ~40 us at 2.5 GHz */
    SPLIT_MIN_MNK = 8 << 20     /* smaller GEMMs run on one thread: a split costs more */
};

static int pool_want = 1;    /* lstm_gemm_set_threads */
static int pool_started;     /* helper threads running (pool_want - 1 at their start) */
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t pool_busy = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static GemmJob *pool_job;    /* under pool_mu; NULL between jobs */
static atomic_uint pool_gen; /* bumped per job (under pool_mu); helpers spin on it */
static atomic_int pool_inside; /* helpers holding pool_job */

AVX512 static void run_chunk(GemmJob *j, int c)
{
    const int lo = c * j->chunk;
    if (j->kind == KIND_TN) {
        const int n = j->N - lo < j->chunk ? j->N - lo : j->chunk;
        gemm_tn_cols(j->M, n, j->K, j->A, j->lda, j->B + lo, j->ldb, j->beta, j->C + lo,
                     j->ldc);
        return;
    }
    const int m = j->M - lo < j->chunk ? j->M - lo : j->chunk;
    gemm_packed(m, j->N, j->K, j->A + (size_t)lo * j->lda, j->lda, j->B, j->beta,
                j->C + (size_t)lo * j->ldc, j->ldc);
    if (j->fn)
        j->fn(j->ctx, lo, lo + m);
}

static void work(GemmJob *j)
{
    int c;
    while ((c = atomic_fetch_add(&j->next, 1)) < j->chunks) {
        if (j->kind == KIND_FOR) { /* no AVX-512 code: also on CPUs without it */
            const int lo = c * j->chunk;
            j->fn(j->ctx, lo, j->M - lo < j->chunk ? j->M : lo + j->chunk);
        } else {
            run_chunk(j, c);
        }
        atomic_fetch_add(&j->completed, 1);
    }
}

static void *helper_main(void *arg)
{
    (void)arg;
    unsigned seen = 0;
    for (;;) {
        /* Jobs come in bursts (the LSTM's steps, tens of microseconds apart): wait for the
         * next one spinning for a while before sleeping, so that most jobs find their helper
         * awake instead of paying a futex wake-up and a reschedule each. */
        const unsigned long long t0 = __builtin_ia32_rdtsc();
        while (atomic_load_explicit(&pool_gen, memory_order_relaxed) == seen &&
               __builtin_ia32_rdtsc() - t0 < HELPER_SPIN_TICKS)
            _mm_pause();
        pthread_mutex_lock(&pool_mu);
        while (pool_gen == seen || !pool_job) {
            seen = pool_gen;
            pthread_cond_wait(&pool_cv, &pool_mu);
        }
        seen = pool_gen;
        GemmJob *j = pool_job;
        atomic_fetch_add(&pool_inside, 1);
        pthread_mutex_unlock(&pool_mu);
        work(j);
        atomic_fetch_sub(&pool_inside, 1);
    }
    return NULL;
}

/* Start the helpers once (under pool_busy). Returns how many run. */
static int pool_start(void)
{
    while (pool_started < pool_want - 1) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &at, helper_main, NULL);
        pthread_attr_destroy(&at);
        if (rc)
            break; /* fewer helpers: the caller does their chunks */
        pool_started++;
    }
    return pool_started;
}

/* Run j on the caller plus the helpers when the pool is free and there is more than one
 * chunk; otherwise on the caller alone (another thread's GEMM holds the pool). */
static void run_job(GemmJob *j)
{
    atomic_init(&j->next, 0);
    atomic_init(&j->completed, 0);
    if (j->chunks < 2 || pool_want < 2 || pthread_mutex_trylock(&pool_busy)) {
        work(j);
        return;
    }
    if (pool_start() > 0) {
        pthread_mutex_lock(&pool_mu);
        pool_job = j;
        pool_gen++;
        pthread_cond_broadcast(&pool_cv);
        pthread_mutex_unlock(&pool_mu);
    }
    work(j);
    while (atomic_load(&j->completed) < j->chunks)
        sched_yield();
    /* No helper may still hold j (it lives on the caller's stack) once this returns. */
    pthread_mutex_lock(&pool_mu);
    pool_job = NULL;
    pthread_mutex_unlock(&pool_mu);
    while (atomic_load(&pool_inside) > 0)
        sched_yield();
    pthread_mutex_unlock(&pool_busy);
}

/* Chunks of `unit`-multiples so that each thread gets several (load balance) and none is
 * tiny (helper wake-up costs about as much as a few thousand FMAs). */
static int chunk_size(int extent, int unit, int min_chunk)
{
    const int threads = pool_want > 1 ? pool_want : 1;
    int c = extent / (4 * threads);
    if (c < min_chunk)
        c = min_chunk;
    c = (c + unit - 1) / unit * unit;
    return c > 0 ? c : unit;
}

/* kind TN: B as given; NN and NT: B packed whole (the job's kind only picks the split);
 * fn (NN, NT) runs on each chunk of rows of C once they are final. */
static void gemm_threaded(int kind, int M, int N, int K, const float *A, size_t lda,
                          const float *B, size_t ldb, float beta, float *C, size_t ldc,
                          LstmRowFn fn, void *ctx)
{
    GemmJob j = {.kind = kind, .M = M, .N = N, .K = K, .A = A, .B = B, .lda = lda,
                 .ldb = ldb, .ldc = ldc, .beta = beta, .C = C, .fn = fn, .ctx = ctx};
    if (kind == KIND_TN) {
        /* One chunk per thread: each chunk streams all K rows of A (the long, packed-row
         * dimension), so more chunks would read A more often (8 passes over X for
         * dW_ih in 64-column chunks ran at 0.6 of the kernels' speed). */
        const int threads = pool_want > 1 ? pool_want : 1;
        j.chunk = ((N + threads - 1) / threads + NB - 1) / NB * NB;
        j.chunks = (N + j.chunk - 1) / j.chunk;
    } else {
        j.chunk = chunk_size(M, MR, 48);
        j.chunks = (M + j.chunk - 1) / j.chunk;
    }
    if ((double)M * N * K < SPLIT_MIN_MNK) {
        j.chunk = kind == KIND_TN ? N : M;
        j.chunks = 1;
    }
    run_job(&j);
}

/* Floats of op(B) (K x N) packed whole. */
static size_t packed_floats(int K, int N)
{
    return (size_t)K * (size_t)((N + NB - 1) / NB * NB);
}

/* OpenBLAS's own name for the kernels it picked (OpenBLAS API, not cblas). */
char *openblas_get_corename(void);

static int fast_ok;
static pthread_once_t fast_once = PTHREAD_ONCE_INIT;

/* Ours only where OpenBLAS has no AVX-512 kernels of its own for this CPU: with them its
 * tuned, packed GEMM is the better one; without them (an older OpenBLAS on a newer CPU falls
 * back to Prescott's SSE3 kernels) ours is faster. Decided once per process from the CPU and
 * the library, so every run on a machine takes the same path (the same rounding). */
static void fast_decide(void)
{
    static const char *const avx512_cores[] = {"skylakex", "cooperlake", "sapphirerapids"};
    const char *core = openblas_get_corename();
    fast_ok = __builtin_cpu_supports("avx512f");
    for (size_t i = 0; fast_ok && core && i < sizeof avx512_cores / sizeof *avx512_cores; i++) {
        const char *a = core, *b = avx512_cores[i];
        while (*a && *b && (*a | 0x20) == *b)
            a++, b++;
        fast_ok = !(*a == '\0' && *b == '\0');
    }
}

int lstm_gemm_fast_available(void)
{
    pthread_once(&fast_once, fast_decide);
    return fast_ok;
}

int lstm_gemm_set_threads(int n)
{
    if (n < 1)
        n = 1;
    if (n > LSTM_GEMM_MAX_THREADS)
        n = LSTM_GEMM_MAX_THREADS;
    pthread_mutex_lock(&pool_busy); /* not while a job runs */
    pool_want = n;
    pthread_mutex_unlock(&pool_busy);
    return n;
}
#else
#define GEMM_X86 0
int lstm_gemm_fast_available(void)
{
    return 0;
}

int lstm_gemm_set_threads(int n)
{
    (void)n;
    return 1;
}
#endif

/* C = beta C for K = 0 (cblas does the same; our kernels never see K = 0). */
static void scale_only(int M, int N, float beta, float *C, int ldc)
{
    if (beta != 0.0f)
        return;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + j] = 0.0f;
}

void lstm_gemm_prepare(LstmGemmB *pb, int fast, int trans, int K, int N, const float *B,
                       int ldb, int slot)
{
    *pb = (LstmGemmB){.trans = trans, .K = K, .N = N, .ldb = ldb, .B = B};
#if GEMM_X86
    if (fast && K > 0 && N > 0 && lstm_gemm_fast_available()) {
        float *p = slot_buffer(slot, packed_floats(K, N));
        if (p) {
            pack_whole(trans, K, N, B, (size_t)ldb, p);
            pb->packed = p;
        }
    }
#else
    (void)fast;
    (void)slot;
#endif
}

void lstm_gemm_apply_then(const LstmGemmB *pb, int M, const float *A, int lda, float beta,
                          float *C, int ldc, LstmRowFn fn, void *ctx)
{
    const int N = pb->N, K = pb->K;
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        scale_only(M, N, beta, C, ldc);
        if (fn)
            lstm_gemm_parallel_for(M, 1, fn, ctx);
        return;
    }
#if GEMM_X86
    if (pb->packed) {
        gemm_threaded(pb->trans ? KIND_NT : KIND_NN, M, N, K, A, (size_t)lda, pb->packed, 0,
                      beta, C, (size_t)ldc, fn, ctx);
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, CblasNoTrans, pb->trans ? CblasTrans : CblasNoTrans, M, N, K,
                1.0f, A, lda, pb->B, pb->ldb, beta, C, ldc);
    if (fn)
        lstm_gemm_parallel_for(M, 1, fn, ctx);
}

void lstm_gemm_apply(const LstmGemmB *pb, int M, const float *A, int lda, float beta,
                     float *C, int ldc)
{
    lstm_gemm_apply_then(pb, M, A, lda, beta, C, ldc, NULL, NULL);
}

void lstm_gemm_parallel_for(int n, int grain, LstmRowFn fn, void *ctx)
{
    if (n <= 0)
        return;
#if GEMM_X86
    if (pool_want > 1 && n >= 2 * grain) {
        GemmJob j = {.kind = KIND_FOR, .M = n, .fn = fn, .ctx = ctx};
        j.chunk = chunk_size(n, 1, grain > 0 ? grain : 1);
        j.chunks = (n + j.chunk - 1) / j.chunk;
        run_job(&j);
        return;
    }
#else
    (void)grain;
#endif
    fn(ctx, 0, n);
}

void lstm_gemm_nn(int fast, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc)
{
    LstmGemmB pb;
    lstm_gemm_prepare(&pb, fast && M > 0, 0, K, N, B, ldb, LSTM_GEMM_SLOT_CALL);
    lstm_gemm_apply(&pb, M, A, lda, beta, C, ldc);
}

/* Split by columns in threads: C (M, N) is a weight, K (the packed rows) is long. */
void lstm_gemm_tn(int fast, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        scale_only(M, N, beta, C, ldc);
        return;
    }
#if GEMM_X86
    if (fast && lstm_gemm_fast_available()) {
        gemm_threaded(KIND_TN, M, N, K, A, (size_t)lda, B, (size_t)ldb, beta, C, (size_t)ldc,
                      NULL, NULL);
        return;
    }
#else
    (void)fast;
#endif
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C,
                ldc);
}

void lstm_gemm_nt(int fast, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc)
{
    LstmGemmB pb;
    lstm_gemm_prepare(&pb, fast && M > 0, 1, K, N, B, ldb, LSTM_GEMM_SLOT_CALL);
    lstm_gemm_apply(&pb, M, A, lda, beta, C, ldc);
}
