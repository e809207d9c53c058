/* The LSTM layer's GEMMs (see lstm_gemm.h): AVX-512 register-blocked kernels, cblas_sgemm as
 * the fallback.
 *
 * NN and TN share one tile kernel: a tile of MR rows x 64 columns of C lives in 24 zmm
 * accumulators while k runs; each step loads 4 vectors of one row of B and broadcasts MR
 * elements of A, a(i, k) = A[i * sai + k * sak] (NN: sai = lda, sak = 1; TN: sai = 1,
 * sak = lda), so both cases read A where it lies and nothing is packed or transposed.
 * Blocking keeps a (KC x 64) panel of B in L1 while every MR-row tile of an MC-row block of
 * A runs over it; columns past N are masked off. NT (C = A . B^T) is dot products of rows:
 * a 4 x 4 tile of C is 16 accumulators over k in steps of 16 lanes, reduced at the end;
 * blocks of B rows that fit in L1 are reused by every tile of a block of A rows.
 *
 * Invariants: beta is 0 or 1; C is written only inside (M, N); no element is read past
 * K or N (masked loads). Summation order differs from OpenBLAS: results agree to rounding.
 * Threads: lstm_gemm_set_threads(n) splits each fast GEMM into chunks (rows for NN and NT,
 * 64-column blocks for TN, so no two threads write one element) that the caller and n - 1
 * helper threads (started on first use, asleep on a condition variable between GEMMs) take
 * from an atomic counter; one job at a time, a second caller runs alone. */
#include "worker/lstm_gemm.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>

enum { KIND_NN, KIND_TN, KIND_NT }; /* the transpose cases */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GEMM_X86 1
#define AVX512 __attribute__((target("avx512f")))
#define INLINE __attribute__((always_inline)) inline
/* Full unrolling of the tile loops (bounds are constants after inlining): the accumulators
 * must become registers, which -O2 alone does not do. */
#define UNROLL _Pragma("GCC unroll 8")

enum {
    MR = 6,   /* rows of a tile (NN/TN) */
    NV = 4,   /* zmm vectors of a tile's row: 64 columns */
    KC = 128, /* k per panel: a KC x 64 panel of B is 32 KB */
    MC = 120  /* rows of A per block (NN): MC x K floats stay in L2 across the column blocks */
};

/* Mask of the lanes of vector v (16 columns) of a 64-column block with `cols` valid. */
static inline __mmask16 lane_mask(int cols, int v)
{
    int n = cols - 16 * v;
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* C[m rows, 64 masked cols] (= or +=) sum over kc of a(i, k) B[k, :]. m is a constant at
 * every call site (the switch below), so acc stays in registers. */
AVX512 static INLINE void tile_ab(int m, int kc, const float *a, size_t sai, size_t sak,
                                  const float *b, size_t ldb, const __mmask16 *mk, int accum,
                                  float *c, size_t ldc)
{
    __m512 acc[MR][NV];
    UNROLL
    for (int i = 0; i < m; i++)
        UNROLL
        for (int v = 0; v < NV; v++)
            acc[i][v] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        const float *bk = b + (size_t)k * ldb;
        __m512 bv[NV];
        UNROLL
        for (int v = 0; v < NV; v++)
            bv[v] = _mm512_maskz_loadu_ps(mk[v], bk + 16 * v);
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
        for (int v = 0; v < NV; v++) {
            float *cp = c + (size_t)i * ldc + 16 * v;
            __m512 r = acc[i][v];
            if (accum)
                r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(mk[v], cp));
            _mm512_mask_storeu_ps(cp, mk[v], r);
        }
}

/* C (M, N) = beta C + sum_k a(i, k) B[k, :] with rows of A in blocks of mc. */
AVX512 static void gemm_ab(int M, int N, int K, const float *A, size_t sai, size_t sak,
                           const float *B, size_t ldb, float beta, float *C, size_t ldc, int mc)
{
    for (int ic = 0; ic < M; ic += mc) {
        const int iend = ic + mc < M ? ic + mc : M;
        for (int k0 = 0; k0 < K; k0 += KC) {
            const int kc = K - k0 < KC ? K - k0 : KC;
            const int accum = k0 > 0 || beta != 0.0f;
            for (int j0 = 0; j0 < N; j0 += 16 * NV) {
                __mmask16 mk[NV];
                UNROLL
        for (int v = 0; v < NV; v++)
                    mk[v] = lane_mask(N - j0, v);
                const float *b = B + (size_t)k0 * ldb + (size_t)j0;
                for (int i0 = ic; i0 < iend; i0 += MR) {
                    const float *a = A + (size_t)i0 * sai + (size_t)k0 * sak;
                    float *c = C + (size_t)i0 * ldc + (size_t)j0;
                    switch (iend - i0 < MR ? iend - i0 : MR) {
                    case 6: tile_ab(6, kc, a, sai, sak, b, ldb, mk, accum, c, ldc); break;
                    case 5: tile_ab(5, kc, a, sai, sak, b, ldb, mk, accum, c, ldc); break;
                    case 4: tile_ab(4, kc, a, sai, sak, b, ldb, mk, accum, c, ldc); break;
                    case 3: tile_ab(3, kc, a, sai, sak, b, ldb, mk, accum, c, ldc); break;
                    case 2: tile_ab(2, kc, a, sai, sak, b, ldb, mk, accum, c, ldc); break;
                    default: tile_ab(1, kc, a, sai, sak, b, ldb, mk, accum, c, ldc); break;
                    }
                }
            }
        }
    }
}

/* C[m, n] (= or +=) A[m rows, K] . B[n rows, K]^T; m, n in 1..4, constants at the call. */
AVX512 static INLINE void tile_nt(int m, int n, int K, const float *a, size_t lda,
                                  const float *b, size_t ldb, int accum, float *c, size_t ldc)
{
    __m512 acc[4][4];
    UNROLL
    for (int i = 0; i < m; i++)
        UNROLL
        for (int j = 0; j < n; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (int k = 0; k < K; k += 16) {
        const __mmask16 mk = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
        __m512 av[4], bv[4];
        UNROLL
    for (int i = 0; i < m; i++)
            av[i] = _mm512_maskz_loadu_ps(mk, a + (size_t)i * lda + (size_t)k);
        UNROLL
        for (int j = 0; j < n; j++)
            bv[j] = _mm512_maskz_loadu_ps(mk, b + (size_t)j * ldb + (size_t)k);
        UNROLL
    for (int i = 0; i < m; i++)
            UNROLL
        for (int j = 0; j < n; j++)
                acc[i][j] = _mm512_fmadd_ps(av[i], bv[j], acc[i][j]);
    }
    UNROLL
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = _mm512_reduce_add_ps(acc[i][j]);
            float *cp = c + (size_t)i * ldc + (size_t)j;
            *cp = accum ? *cp + s : s;
        }
}

#define NT_CASE(mm, nn)                                                                      \
    case (mm) * 8 + (nn): tile_nt(mm, nn, K, a, lda, b, ldb, accum, c, ldc); break

AVX512 static void gemm_nt_avx512(int M, int N, int K, const float *A, size_t lda,
                                  const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    const int accum = beta != 0.0f;
    /* B rows per block: as many as fit in 32 KB, a multiple of 4. */
    int nc = (8192 / (K > 0 ? K : 1)) & ~3;
    if (nc < 4)
        nc = 4;
    for (int ic = 0; ic < M; ic += 64) {
        const int iend = ic + 64 < M ? ic + 64 : M;
        for (int jc = 0; jc < N; jc += nc) {
            const int jend = jc + nc < N ? jc + nc : N;
            for (int i0 = ic; i0 < iend; i0 += 4) {
                const int m = iend - i0 < 4 ? iend - i0 : 4;
                const float *a = A + (size_t)i0 * lda;
                for (int j0 = jc; j0 < jend; j0 += 4) {
                    const int n = jend - j0 < 4 ? jend - j0 : 4;
                    const float *b = B + (size_t)j0 * ldb;
                    float *c = C + (size_t)i0 * ldc + (size_t)j0;
                    switch (m * 8 + n) {
                        NT_CASE(4, 4); NT_CASE(4, 3); NT_CASE(4, 2); NT_CASE(4, 1);
                        NT_CASE(3, 4); NT_CASE(3, 3); NT_CASE(3, 2); NT_CASE(3, 1);
                        NT_CASE(2, 4); NT_CASE(2, 3); NT_CASE(2, 2); NT_CASE(2, 1);
                        NT_CASE(1, 4); NT_CASE(1, 3); NT_CASE(1, 2);
                    default: tile_nt(1, 1, K, a, lda, b, ldb, accum, c, ldc); break;
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ threads */

/* One GEMM split into chunks that the caller and the helpers take in turn (an atomic
 * counter): a helper the OS does not schedule costs at most the chunk it holds, so a loaded
 * machine degrades to one thread instead of waiting on a straggler's half. */
typedef struct GemmJob {
    int kind, M, N, K;
    const float *A, *B;
    size_t lda, ldb, ldc;
    float beta;
    float *C;
    int chunks, chunk; /* chunk: rows (NN, NT) or columns (TN) per chunk */
    atomic_int next, completed;
} GemmJob;

static int pool_want = 1;    /* lstm_gemm_set_threads */
static int pool_started;     /* helper threads running (pool_want - 1 at their start) */
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t pool_busy = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static GemmJob *pool_job;    /* under pool_mu; NULL between jobs */
static unsigned pool_gen;    /* under pool_mu; bumped per job */
static atomic_int pool_inside; /* helpers holding pool_job */

AVX512 static void run_chunk(GemmJob *j, int c)
{
    const int lo = c * j->chunk;
    if (j->kind == KIND_TN) {
        const int n = j->N - lo < j->chunk ? j->N - lo : j->chunk;
        gemm_ab(j->M, n, j->K, j->A, 1, j->lda, j->B + lo, j->ldb, j->beta, j->C + lo, j->ldc,
                j->M);
        return;
    }
    const int m = j->M - lo < j->chunk ? j->M - lo : j->chunk;
    const float *a = j->A + (size_t)lo * j->lda;
    float *cp = j->C + (size_t)lo * j->ldc;
    if (j->kind == KIND_NN)
        gemm_ab(m, j->N, j->K, a, j->lda, 1, j->B, j->ldb, j->beta, cp, j->ldc, MC);
    else
        gemm_nt_avx512(m, j->N, j->K, a, j->lda, j->B, j->ldb, j->beta, cp, j->ldc);
}

static void work(GemmJob *j)
{
    int c;
    while ((c = atomic_fetch_add(&j->next, 1)) < j->chunks) {
        run_chunk(j, c);
        atomic_fetch_add(&j->completed, 1);
    }
}

static void *helper_main(void *arg)
{
    (void)arg;
    unsigned seen = 0;
    for (;;) {
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

static void gemm_threaded(int kind, int M, int N, int K, const float *A, size_t lda,
                          const float *B, size_t ldb, float beta, float *C, size_t ldc)
{
    GemmJob j = {.kind = kind, .M = M, .N = N, .K = K, .A = A, .B = B, .lda = lda,
                 .ldb = ldb, .ldc = ldc, .beta = beta, .C = C};
    if (kind == KIND_TN) {
        j.chunk = chunk_size(N, 16 * NV, 16 * NV);
        j.chunks = (N + j.chunk - 1) / j.chunk;
    } else {
        j.chunk = chunk_size(M, kind == KIND_NN ? MR : 4, 48);
        j.chunks = (M + j.chunk - 1) / j.chunk;
    }
    run_job(&j);
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

/* One GEMM of the given kind: the fast kernels when wanted, available and there is work,
 * else cblas_sgemm with the kind's transposes. */
static void gemm(int kind, int fast, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc)
{
#if GEMM_X86
    if (fast && M > 0 && N > 0 && lstm_gemm_fast_available()) {
        if (K <= 0)
            scale_only(M, N, beta, C, ldc);
        else
            gemm_threaded(kind, M, N, K, A, (size_t)lda, B, (size_t)ldb, beta, C, (size_t)ldc);
        return;
    }
#else
    (void)fast;
    (void)scale_only;
#endif
    cblas_sgemm(CblasRowMajor, kind == KIND_TN ? CblasTrans : CblasNoTrans,
                kind == KIND_NT ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, beta,
                C, ldc);
}

void lstm_gemm_nn(int fast, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc)
{
    gemm(KIND_NN, fast, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

/* Split by columns in threads: C (M, N) is a weight, K (the packed rows) is long. */
void lstm_gemm_tn(int fast, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc)
{
    gemm(KIND_TN, fast, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void lstm_gemm_nt(int fast, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc)
{
    gemm(KIND_NT, fast, M, N, K, A, lda, B, ldb, beta, C, ldc);
}
