/* One LSTM layer (gate order i, f, g, o as PyTorch; one bias vector = PyTorch's b_ih + b_hh)
 * over variable-length sequences, as pure functions over caller-owned buffers.
 *
 * Packed layout (PyTorch's PackedSequence): the caller sorts its B sequences by length,
 * longest first. Step t holds the rows of sequences 0..bs[t]-1 (bs[t] = number of sequences
 * longer than t), and the steps are concatenated, so a packed tensor has N = sum(lengths) rows
 * and no padding row is ever stored or computed on. A sequence may have length 0: it takes no
 * packed row and its final state is its initial one.
 *
 * Shapes: In input size, H hidden size, B sequences, T steps (longest length), N packed rows.
 * Weights are stored transposed against PyTorch so the input projection is one GEMM:
 *   W_ih (In, 4H), W_hh (H, 4H), b (4H), columns [0,H) gate i, [H,2H) f, [2H,3H) g, [3H,4H) o.
 * GEMMs go to worker/lstm_gemm.h (own AVX-512 kernels, or OpenBLAS); nothing here allocates. */
#ifndef PSREC_WORKER_LSTM_H
#define PSREC_WORKER_LSTM_H

#include <stddef.h>

/* The step structure of one packed batch. bs and off point to caller-owned arrays. */
typedef struct LstmPack {
    int B;    /* sequences (rows of h0 / dh0) */
    int T;    /* steps: the longest length, 0 when every sequence is empty */
    int N;    /* packed rows: the sum of the lengths */
    int *bs;  /* (T) rows active at step t, non-increasing, >= 1 */
    int *off; /* (T + 1) first packed row of step t; off[T] = N */
} LstmPack;

/* Fill pk from the lengths of B sequences sorted longest first.
 * lens: (B) lengths in [0, max_T], non-increasing. bs: (max_T) and off: (max_T + 1) caller
 * arrays that pk then points to (they must outlive pk's use).
 * Returns 0, or PSREC_E_RANGE (with detail) when lens is not sorted or out of range. */
int lstm_pack_init(LstmPack *pk, const int *lens, int B, int max_T, int *bs, int *off);

/* The order lstm_pack_init needs: order (n) = indices 0..n-1 by len descending, ties in index
 * order (stable, so training and scoring pack the same sequences the same way); sorted (n) =
 * their lengths. count: (max_len + 2) scratch. Lengths must be in [0, max_len]. */
void lstm_sort_by_len_desc(int n, const int *len, int max_len, int *count, int *order,
                           int *sorted);

/* Choose the kernels: on = 1 (the default) uses the AVX2+FMA gate math when the CPU has it
 * (exp/tanh within ~2 ulp of libm) and lstm_gemm's AVX-512 GEMMs when it has AVX-512F;
 * on = 0 forces the scalar libm gate math and cblas_sgemm.
 * Returns 1 when the vector kernels are in use afterwards. Process-wide: call it before
 * any thread runs the LSTM (tests and benchmarks compare the two). */
int lstm_set_simd(int on);

/* Floats of the cache lstm_forward fills for lstm_backward: N * 6H. Layout, packed rows:
 * gates (N, 4H) after their activations | c (N, H) cell states | tanh(c) (N, H). */
size_t lstm_cache_floats(int N, int H);

/* Floats of the workspace lstm_backward needs: 2 * B * H (the gradients carried from step
 * t to step t-1 for h and for c). */
size_t lstm_backward_ws_floats(int B, int H);

/* Forward over a packed batch: one GEMM projects the whole input, then per step one GEMM on
 * the active rows for the recurrence and one fused pass for the gate math.
 *   pk     step structure (pk->N rows)
 *   X      (N, In) packed input
 *   h0     (B, H) initial hidden state in sorted order, or NULL for zeros; c0 is always 0
 *   Wih    (In, 4H); Whh (H, 4H); b (4H)
 *   Hout   (N, H) out: packed hidden states; the state after the last step of sequence r is
 *          row off[len_r - 1] + r
 *   cache  (lstm_cache_floats(N, H)) out: what lstm_backward reads
 * No buffer may overlap another. */
void lstm_forward(const LstmPack *pk, int In, int H, const float *X, const float *h0,
                  const float *Wih, const float *Whh, const float *b, float *Hout, float *cache);

/* Backward of lstm_forward for the gradient dH of every packed output row.
 *   pk, X, h0, Whh, Wih, Hout: exactly as given to / produced by lstm_forward
 *   cache  the forward's cache; CONSUMED: its gate part is overwritten with the gate
 *          pre-activation gradients, so call backward at most once per forward
 *   dH     (N, H) gradient of the loss w.r.t. each packed output row (read only)
 *   dX     (N, In) out (overwritten): gradient w.r.t. X, or NULL to skip it
 *   dWih   (In, 4H), dWhh (H, 4H), db (4H): gradients ACCUMULATED (+=), so calls can sum
 *   dh0    (B, H) out (overwritten): gradient w.r.t. h0 (also when h0 was NULL, i.e. the
 *          gradient w.r.t. a zero initial state); rows of empty sequences get 0. May be NULL.
 *   ws     (lstm_backward_ws_floats(B, H)) scratch
 * No buffer may overlap another. */
void lstm_backward(const LstmPack *pk, int In, int H, const float *X, const float *h0,
                   const float *Wih, const float *Whh, const float *Hout, float *cache,
                   const float *dH, float *dX, float *dWih, float *dWhh, float *db, float *dh0,
                   float *ws);

/* Inference forward in two parts, for callers whose inputs repeat (eval: a word occurs in
 * many titles, a news in many histories): project each distinct input once with
 * lstm_input_gates, then run lstm_forward_gates, which reads each packed row's projection
 * where it lies (no gathered copy, no input GEMM). Outputs equal lstm_forward's up to float
 * rounding: the pre-activation of a step t > 0 is summed as h.W_hh + (x.W_ih + b) instead of
 * (x.W_ih + h.W_hh) + b (tests/test_scorer.c bounds the difference). */

/* P (M, 4H) = X (M, In) . Wih (In, 4H) + b (4H): the input projection with the bias (b NULL:
 * none; then also h . W_hh for a caller that starts lstm_forward_gates at a later step). */
void lstm_input_gates(int M, int In, int H, const float *X, const float *Wih, const float *b,
                      float *P);

/* lstm_forward for pre-projected inputs, keeping no backward cache.
 *   pk    step structure (pk->N rows)
 *   P     (rows, 4H) projected inputs, lstm_input_gates' P (bias included)
 *   prow  (N) packed row i's input is row prow[i] of P
 *   h0    (B, H) initial hidden state in sorted order, or NULL for zeros; c0 is always 0
 *   Whh   (H, 4H)
 *   G     (B, 4H) scratch: one step's gates
 *   Hout  (N, H) out: packed hidden states, as lstm_forward's
 *   c     (B, H) scratch: the cell states, updated in place step by step (the rows of step t
 *         are a prefix of the rows of step t-1)
 *   t0    the first step computed, 0 for all. With t0 > 0 the steps before are the caller's
 *         (states that depend on few distinct inputs, e.g. a title's first word): Hout holds
 *         the rows of steps < t0, c the cell states of step t0 - 1, and G (bs[t0], 4H) the
 *         recurrence term h_{t0-1} . W_hh of step t0's rows, so step t0 runs no GEMM.
 * No written buffer may overlap another buffer. */
void lstm_forward_gates(const LstmPack *pk, int H, const float *P, const int *prow,
                        const float *h0, const float *Whh, float *G, float *Hout, float *c,
                        int t0);

#endif
