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
 * OpenBLAS's; it packs B into per-thread memory allocated on first use and kept. C must not overlap A or B. Any thread may call these. */
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

/* Per-thread buffers for packed right operands: lstm_gemm_nn/nt use SLOT_CALL; a caller that
 * keeps an operand packed across calls (lstm_gemm_prepare) picks another. */
#define LSTM_GEMM_SLOTS 3
enum { LSTM_GEMM_SLOT_CALL = 0, LSTM_GEMM_SLOT_1 = 1, LSTM_GEMM_SLOT_2 = 2 };

/* A right operand op(B) (K x N) made ready once for many GEMMs with it (the recurrence's
 * W_hh at every step): packed into the calling thread's slot buffer when the fast kernels
 * run, else only remembered (apply then calls cblas_sgemm). Valid until this thread prepares
 * into the same slot again, and while B is unchanged only as far as apply's fallback reads
 * it. Use it from the thread that prepared it. */
typedef struct LstmGemmB {
    int trans;            /* 0: op(B) = B (K, N); 1: op(B) = B^T with B given (N, K) */
    int K, N, ldb;
    const float *B;       /* as given */
    const float *packed;  /* the packed copy, or NULL */
} LstmGemmB;

/* Make op(B) ready (see LstmGemmB). fast as for the GEMMs below; slot one of the
 * LSTM_GEMM_SLOT_*. No failure: without packing memory it falls back to cblas. */
void lstm_gemm_prepare(LstmGemmB *pb, int fast, int trans, int K, int N, const float *B,
                       int ldb, int slot);

/* C (M, N) = beta C + A (M, K) . op(B) for a prepared op(B). */
void lstm_gemm_apply(const LstmGemmB *pb, int M, const float *A, int lda, float beta,
                     float *C, int ldc);

/* Work on rows [lo, hi) of something, independent of every other row. */
typedef void (*LstmRowFn)(void *ctx, int lo, int hi);

/* lstm_gemm_apply, then fn on the rows of C: each thread runs fn on the chunk of rows it
 * has just computed, while they are in its cache (the LSTM's gate math after each step's
 * recurrence GEMM). The chunks partition [0, M); fn must only touch its rows. */
void lstm_gemm_apply_then(const LstmGemmB *pb, int M, const float *A, int lda, float beta,
                          float *C, int ldc, LstmRowFn fn, void *ctx);

/* fn over [0, n) in disjoint chunks of at least `grain` rows on the GEMM threads (the caller
 * among them); returns when every chunk is done. Fewer than 2 * grain rows: one call. */
void lstm_gemm_parallel_for(int n, int grain, LstmRowFn fn, void *ctx);

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
