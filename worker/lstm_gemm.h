/* The GEMMs of the LSTM layer (worker/lstm.c) at the shapes it has: row-major, single
 * precision, the three transpose cases it needs. With fast = 1 and a CPU with AVX-512F they
 * run register-blocked AVX-512 FMA kernels of our own; otherwise (or fast = 0) they call
 * cblas_sgemm. Why our own: OpenBLAS picks its kernels from the CPU model, and a CPU it does
 * not know gets its generic SSE3 (Prescott) kernels, several times slower than the FMA units
 * allow at these shapes (K and N of 128 to 512).
 *
 * All matrices are row-major with leading dimensions (row strides) lda, ldb, ldc in floats.
 * beta is 0 (C is overwritten, its old contents never read) or 1 (accumulate); other values
 * are not supported. Single-threaded on the fast path; no allocation. C must not overlap A
 * or B. */
#ifndef PSREC_WORKER_LSTM_GEMM_H
#define PSREC_WORKER_LSTM_GEMM_H

/* 1 when the fast kernels exist on this CPU (AVX-512F). */
int lstm_gemm_fast_available(void);

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
