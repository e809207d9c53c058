/* Tests of worker/lstm_gemm: the AVX-512 kernels against cblas_sgemm for the three transpose
 * cases, at shapes with tails in every dimension (M not a multiple of the 6-row tile, N not of
 * 16 lanes, K not of 16 or of the 128-row panel), with beta 0 (C's old contents ignored, even
 * NaN) and 1, with leading dimensions wider than the matrix (nothing outside (M, N) written),
 * and split over 2 threads (bit-identical to 1 thread: chunks partition C, each element is
 * summed in the same order). Also the packed-operand API (prepare once, apply many), the row
 * function run after each chunk, and the parallel loop. Tolerance against OpenBLAS: 1e-5 of the sum of |products|, a
 * bound on float rounding for these K; a wrong index or a lost tail is of order 1.
 * On a CPU without AVX-512F the fast calls fall back to cblas and the checks still hold. */
#include "testutil/testutil.h"

#include "common/rng.h"
#include "worker/lstm_gemm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NN, TN, NT };

static float *randv(size_t n, Rng *rng)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(2.0 * rng_uniform(rng) - 1.0);
    return v;
}

static void call(int kind, int fast, int M, int N, int K, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc)
{
    if (kind == NN)
        lstm_gemm_nn(fast, M, N, K, A, lda, B, ldb, beta, C, ldc);
    else if (kind == TN)
        lstm_gemm_tn(fast, M, N, K, A, lda, B, ldb, beta, C, ldc);
    else
        lstm_gemm_nt(fast, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

/* a(i, k) and b(k, j) of the case, for the rounding bound. */
static double abs_dot(int kind, int i, int j, int K, const float *A, int lda, const float *B,
                      int ldb)
{
    double s = 0;
    for (int k = 0; k < K; k++) {
        float a = kind == TN ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        float b = kind == NT ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        s += fabs((double)a * b);
    }
    return s;
}

/* One case: fast (1 and 2 threads) against cblas, returns the worst error / bound. */
static double check_case(int kind, int M, int N, int K, float beta, uint64_t seed)
{
    Rng rng;
    rng_seed(&rng, seed);
    const int pad = 5; /* extra columns of every matrix: must stay untouched in C */
    const int arows = kind == TN ? K : M, acols = kind == TN ? M : K;
    const int brows = kind == NT ? N : K, bcols = kind == NT ? K : N;
    const int lda = acols + pad, ldb = bcols + pad, ldc = N + pad;
    float *A = randv((size_t)arows * lda, &rng), *B = randv((size_t)brows * ldb, &rng);
    float *C0 = randv((size_t)M * ldc, &rng);
    float *ref = malloc((size_t)M * ldc * sizeof *ref);
    float *one = malloc((size_t)M * ldc * sizeof *one);
    float *two = malloc((size_t)M * ldc * sizeof *two);
    memcpy(ref, C0, (size_t)M * ldc * sizeof *ref);
    if (beta == 0.0f) /* beta 0 must not read C: poison what the fast path gets */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C0[(size_t)i * ldc + j] = NAN;
    memcpy(one, C0, (size_t)M * ldc * sizeof *one);
    memcpy(two, C0, (size_t)M * ldc * sizeof *two);
    call(kind, 0, M, N, K, A, lda, B, ldb, beta, ref, ldc);
    lstm_gemm_set_threads(1);
    call(kind, 1, M, N, K, A, lda, B, ldb, beta, one, ldc);
    lstm_gemm_set_threads(2);
    call(kind, 1, M, N, K, A, lda, B, ldb, beta, two, ldc);
    lstm_gemm_set_threads(1);
    double worst = 0;
    int pad_ok = 1, same = 1;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            size_t x = (size_t)i * ldc + j;
            double bound = 1e-5 * (abs_dot(kind, i, j, K, A, lda, B, ldb) + fabs(ref[x])) + 1e-30;
            double e = fabs((double)one[x] - ref[x]) / bound;
            if (!(e <= worst)) /* NaN counts as worst */
                worst = isnan(e) ? INFINITY : e;
            same &= memcmp(&one[x], &two[x], sizeof one[x]) == 0;
        }
        for (int j = N; j < ldc; j++) {
            size_t x = (size_t)i * ldc + j;
            pad_ok &= memcmp(&one[x], &C0[x], sizeof one[x]) == 0 &&
                      memcmp(&two[x], &C0[x], sizeof two[x]) == 0;
        }
    }
    CU_ASSERT(pad_ok);
    CU_ASSERT(same);
    free(A);
    free(B);
    free(C0);
    free(ref);
    free(one);
    free(two);
    return worst;
}

static void run_kind(int kind)
{
    /* (M, N, K): tails everywhere; one K past the 128-row panel; one with many chunks. */
    /* The last three are big enough (M N K >= 8M) to be split over the 2 threads. */
    static const int shapes[][3] = {{1, 1, 1},      {7, 17, 3},      {13, 80, 40},
                                    {101, 77, 45},  {30, 20, 300},   {300, 512, 128},
                                    {150, 100, 601}, {131, 520, 140}, {1000, 70, 130}};
    double worst = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int beta = 0; beta <= 1; beta++) {
            double e = check_case(kind, shapes[s][0], shapes[s][1], shapes[s][2], (float)beta,
                                  100 + s);
            CU_ASSERT(e <= 1.0);
            if (e > worst)
                worst = e;
        }
    printf(" [fast kernels %s; worst error %.2f of the bound]",
           lstm_gemm_fast_available() ? "on" : "unavailable (cblas)", worst);
}

static void test_nn(void)
{
    run_kind(NN);
}

static void test_tn(void)
{
    run_kind(TN);
}

static void test_nt(void)
{
    run_kind(NT);
}

/* A prepared operand serves several GEMMs, also after another slot was prepared in
 * between, and equals the one-shot call (the same kernels: bit for bit). */
static void test_prepared_reused(void)
{
    Rng rng;
    rng_seed(&rng, 7);
    enum { M = 97, N = 130, K = 70 };
    float *B = randv((size_t)K * N, &rng), *B2 = randv((size_t)K * N, &rng);
    lstm_gemm_set_threads(2);
    for (int trans = 0; trans <= 1; trans++) {
        /* trans: B read as (N, K) with ldb K; else (K, N) with ldb N */
        const int ldb = trans ? K : N;
        LstmGemmB pb, other;
        lstm_gemm_prepare(&pb, 1, trans, K, N, B, ldb, LSTM_GEMM_SLOT_1);
        lstm_gemm_prepare(&other, 1, trans, K, N, B2, ldb, LSTM_GEMM_SLOT_2);
        for (int round = 0; round < 3; round++) {
            float *A = randv((size_t)M * K, &rng);
            float *C = malloc((size_t)M * N * sizeof *C), *ref = malloc((size_t)M * N * sizeof *ref);
            lstm_gemm_apply(&pb, M, A, K, 0.0f, C, N);
            if (trans)
                lstm_gemm_nt(1, M, N, K, A, K, B, ldb, 0.0f, ref, N);
            else
                lstm_gemm_nn(1, M, N, K, A, K, B, ldb, 0.0f, ref, N);
            CU_ASSERT(memcmp(C, ref, (size_t)M * N * sizeof *C) == 0);
            lstm_gemm_apply(&other, M, A, K, 0.0f, C, N); /* the other slot is intact too */
            if (trans)
                lstm_gemm_nt(1, M, N, K, A, K, B2, ldb, 0.0f, ref, N);
            else
                lstm_gemm_nn(1, M, N, K, A, K, B2, ldb, 0.0f, ref, N);
            CU_ASSERT(memcmp(C, ref, (size_t)M * N * sizeof *C) == 0);
            free(A);
            free(C);
            free(ref);
        }
    }
    lstm_gemm_set_threads(1);
    free(B);
    free(B2);
}

/* apply_then's row function sees each row of C once, already final. */
typedef struct RowSeen {
    const float *C;
    float *snap; /* C's rows as fn saw them */
    int *calls;  /* per row */
    int N;
} RowSeen;

static void row_seen(void *ctx, int lo, int hi)
{
    RowSeen *r = ctx;
    for (int i = lo; i < hi; i++) {
        __atomic_fetch_add(&r->calls[i], 1, __ATOMIC_RELAXED);
        memcpy(r->snap + (size_t)i * r->N, r->C + (size_t)i * r->N, (size_t)r->N * sizeof(float));
    }
}

static void test_apply_then_rows_final(void)
{
    Rng rng;
    rng_seed(&rng, 9);
    enum { M = 700, N = 256, K = 96 }; /* 17M: split over the threads */
    float *A = randv((size_t)M * K, &rng), *B = randv((size_t)K * N, &rng);
    float *C = randv((size_t)M * N, &rng), *snap = calloc((size_t)M * N, sizeof *snap);
    int *calls = calloc(M, sizeof *calls);
    RowSeen rs = {C, snap, calls, N};
    lstm_gemm_set_threads(2);
    LstmGemmB pb;
    lstm_gemm_prepare(&pb, 1, 0, K, N, B, N, LSTM_GEMM_SLOT_1);
    lstm_gemm_apply_then(&pb, M, A, K, 1.0f, C, N, row_seen, &rs);
    lstm_gemm_set_threads(1);
    int once = 1;
    for (int i = 0; i < M; i++)
        once &= calls[i] == 1;
    CU_ASSERT(once);
    CU_ASSERT(memcmp(snap, C, (size_t)M * N * sizeof *C) == 0);
    free(A);
    free(B);
    free(C);
    free(snap);
    free(calls);
}

/* parallel_for covers [0, n) exactly once, below, at and above the split size. */
static void count_rows(void *ctx, int lo, int hi)
{
    int *calls = ctx;
    for (int i = lo; i < hi; i++)
        __atomic_fetch_add(&calls[i], 1, __ATOMIC_RELAXED);
}

static void test_parallel_for_once(void)
{
    static const int sizes[] = {0, 1, 31, 32, 33, 1000, 4097};
    lstm_gemm_set_threads(2);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        const int n = sizes[s];
        int *calls = calloc((size_t)n + 1, sizeof *calls);
        lstm_gemm_parallel_for(n, 16, count_rows, calls);
        int once = calls[n] == 0; /* nothing past the end */
        for (int i = 0; i < n; i++)
            once &= calls[i] == 1;
        CU_ASSERT(once);
        free(calls);
    }
    lstm_gemm_set_threads(1);
}

static void test_threads_clamped(void)
{
    CU_ASSERT_EQUAL(lstm_gemm_set_threads(0), 1);
    int most = lstm_gemm_set_threads(LSTM_GEMM_MAX_THREADS + 7);
    CU_ASSERT(most == LSTM_GEMM_MAX_THREADS || most == 1); /* 1: no fast path here */
    CU_ASSERT_EQUAL(lstm_gemm_set_threads(1), 1);
}

int main(void)
{
    static const TuTest tests[] = {
        {"nn_matches_cblas", test_nn},
        {"tn_matches_cblas", test_tn},
        {"nt_matches_cblas", test_nt},
        {"prepared_reused", test_prepared_reused},
        {"apply_then_rows_final", test_apply_then_rows_final},
        {"parallel_for_once", test_parallel_for_once},
        {"threads_clamped", test_threads_clamped},
        {NULL, NULL},
    };
    tu_add_suite("lstm_gemm", tests);
    return tu_run_all();
}
