/* The GEMMs of the LSTM layer (worker/lstm.c) at the shapes it has: row-major, single
 * precision, the three transpose cases it needs. With fast = 1 where lstm_gemm_fast_available
 * they run register-blocked AVX-512 FMA kernels of our own; otherwise (or fast = 0) they call
 * cblas_sgemm. Why our own: OpenBLAS picks its kernels from the CPU model, and a CPU it does
 * not know gets its generic SSE3 (Prescott) kernels, several times slower than the FMA units
 * allow at these shapes (K and N of 128 to 512).
 *
 * All matrices are row-major with leading dimensions (row strides) lda, ldb, ldc in floats.
 * beta is 0 (C is overwritten, its old contents never read) or 1 (accumulate); other values
 * are not supported. The fast path uses lstm_gemm_set_threads' threads, the fallback
 * OpenBLAS's; no allocation. C must not overlap A or B. Any thread may call these. */
#ifndef PSREC_WORKER_LSTM_GEMM_H
#define PSREC_WORKER_LSTM_GEMM_H

/* Most threads lstm_gemm_set_threads accepts. */
#define LSTM_GEMM_MAX_THREADS 64

/* 1 when the fast kernels are used on this machine: the CPU has AVX-512F and OpenBLAS has
 * no AVX-512 kernels for it (its core name is not SkylakeX, Cooperlake or SapphireRapids). */
int lstm_gemm_fast_available(void);

/* Threads for the fast kernels' GEMMs (default 1): the caller plus n - 1 helpers, started
 * on the first GEMM that can use them. Clamped to 1..LSTM_GEMM_MAX_THREADS; returns the
 * count set. Process-wide; waits for a GEMM in progress. Give it the cores the process
 * may use (launch/run.c: run_set_threads), never more: helpers sleep between GEMMs. */
int lstm_gemm_set_threads(int n);

/* C (M, N) = beta C + A (M, K) . B (K, N) */
void lstm_gemm_nn(int fast, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc);

/* C (M, N) = beta C + A^T . B with A (K, M) and B (K, N): a sum of K outer products (weight
 * gradients: rows of A and B are the packed rows). */
void lstm_gemm_tn(int fast, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc);

/* C (M, N) = beta C + A (M, K) . B^T with B (N, K): dot products of rows (input gradients
 * through a weight stored (in, out)). */
void lstm_gemm_nt(int fast, int M, int N, int K, const float *A, int lda, const float *B,
                  int ldb, float beta, float *C, int ldc);

#endif
