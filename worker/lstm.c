/* One LSTM layer over packed variable-length sequences (see lstm.h for the layout).
 *
 * Forward: G = X.W_ih for all N rows in one GEMM; then for each step t, G_t += h_{t-1}.W_hh on
 * the bs[t] active rows (h_{t-1} rows are the first bs[t] rows of step t-1, contiguous in
 * Hout, so no copy), and one fused pass adds the bias, applies the activations and updates
 * c and h. Backward walks the steps in reverse with the same structure, writing the gate
 * pre-activation gradients dG over the cached gates, then finishes with one GEMM each for
 * dW_ih and dX and a column sum for db; dW_hh is one GEMM per step (h_{t-1}^T . dG_t).
 *
 * The gate math runs 16 columns at a time with AVX-512, 8 with AVX2+FMA, as far as the CPU
 * has them (one template, worker/lstm_gates.inc: exp and tanh from Cephes' float
 * polynomials, ~1-2 ulp, the same bits at either width), the rest (or everything after
 * lstm_set_simd(0)) with libm. Each step's gate math runs on lstm_gemm's threads: forward,
 * each thread on the rows of the recurrence GEMM it has just computed; backward, in chunks
 * of rows. The GEMMs go through worker/lstm_gemm.h: its AVX-512 kernels with the vector mode
 * on, cblas_sgemm otherwise; W_hh (and W_hh^T for dh) is packed once per pass, not per step.
 *
 * Invariants: rows of a step are a prefix of the rows of the previous step (sorted lengths),
 * so the carried gradients dh, dc of step t+1 cover exactly rows 0..bs[t+1]-1 of step t.
 * Padding is never stored, so nothing is computed on it. Rows are independent in the gate
 * math, so the results do not depend on the thread count.
 * Not here: allocation, sorting, threads of our own. */
#include "worker/lstm.h"

#include "common/error.h"
#include "worker/lstm_gemm.h"

#include <math.h>
#include <string.h>

static int simd_off; /* set by lstm_set_simd(0): scalar kernels only */

static inline float sigmoidf(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

/* Gate math of one row of one step, columns [j0, H) (the vector kernel does the others).
 *   g     (4H) in: pre-activations without bias; out: activated gates i, f, g, o
 *   b     (4H) bias
 *   cprev (H) previous cell state, NULL for c0 = 0
 *   c, tc, h (H) out: cell state, tanh(c), hidden state */
static void cell_fwd_scalar(int H, int j0, float *g, const float *b, const float *cprev,
                            float *c, float *tc, float *h)
{
    float *gi = g, *gf = g + H, *gg = g + 2 * H, *go = g + 3 * H;
    const float *bi = b, *bf = b + H, *bg = b + 2 * H, *bo = b + 3 * H;
    for (int j = j0; j < H; j++) {
        float i = sigmoidf(gi[j] + bi[j]);
        float f = sigmoidf(gf[j] + bf[j]);
        float gv = tanhf(gg[j] + bg[j]);
        float o = sigmoidf(go[j] + bo[j]);
        float cv = i * gv + (cprev ? f * cprev[j] : 0.0f);
        float t = tanhf(cv);
        gi[j] = i;
        gf[j] = f;
        gg[j] = gv;
        go[j] = o;
        c[j] = cv;
        tc[j] = t;
        h[j] = o * t;
    }
}

/* Backward of the gate math for one row, columns [j0, H).
 *   g     (4H) in: activated gates; out: gradients w.r.t. the gate pre-activations
 *   cprev (H) previous cell state, NULL for c0 = 0
 *   tc    (H) tanh(c)
 *   dh    (H) gradient from this row's output
 *   dhc   (H) gradient carried from the next step's recurrence, or NULL
 *   dc    (H) in (when carry): gradient carried into c from the next step; out: gradient
 *         w.r.t. the previous cell state */
static void cell_bwd_scalar(int H, int j0, float *g, const float *cprev, const float *tc,
                            const float *dh, const float *dhc, float *dc, int carry)
{
    float *gi = g, *gf = g + H, *gg = g + 2 * H, *go = g + 3 * H;
    for (int j = j0; j < H; j++) {
        float i = gi[j], f = gf[j], gv = gg[j], o = go[j], t = tc[j];
        float dhv = dh[j] + (dhc ? dhc[j] : 0.0f);
        float dcv = dhv * o * (1.0f - t * t) + (carry ? dc[j] : 0.0f);
        float cp = cprev ? cprev[j] : 0.0f;
        gi[j] = dcv * gv * i * (1.0f - i);
        gf[j] = dcv * cp * f * (1.0f - f);
        gg[j] = dcv * i * (1.0f - gv * gv);
        go[j] = dhv * t * o * (1.0f - o);
        dc[j] = dcv * f;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LSTM_X86 1

/* The vector gate math (worker/lstm_gates.inc) at 8 lanes with AVX2 + FMA ... */
#define GV_TARGET __attribute__((target("avx2,fma")))
#define GV_NAME(x) x##_v8
#define GV_LANES 8
#define GV_T __m256
#define GV_LOAD(p) _mm256_loadu_ps(p)
#define GV_STORE(p, v) _mm256_storeu_ps(p, v)
#define GV_SET1(x) _mm256_set1_ps(x)
#define GV_ZERO() _mm256_setzero_ps()
#define GV_ADD(a, b) _mm256_add_ps(a, b)
#define GV_SUB(a, b) _mm256_sub_ps(a, b)
#define GV_MUL(a, b) _mm256_mul_ps(a, b)
#define GV_DIV(a, b) _mm256_div_ps(a, b)
#define GV_MIN(a, b) _mm256_min_ps(a, b)
#define GV_MAX(a, b) _mm256_max_ps(a, b)
#define GV_FMADD(a, b, c) _mm256_fmadd_ps(a, b, c)
#define GV_FNMADD(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define GV_ROUND(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define GV_EXP2I(n)                                                                          \
    _mm256_castsi256_ps(                                                                     \
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define GV_ABS(x) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x)
#define GV_COPYSIGN(r, x) _mm256_or_ps(r, _mm256_and_ps(_mm256_set1_ps(-0.0f), x))
#define GV_SELECT_GT(a, t, yes, no) _mm256_blendv_ps(no, yes, _mm256_cmp_ps(a, t, _CMP_GT_OQ))
#include "worker/lstm_gates.inc"

/* ... and at 16 lanes with AVX-512F (sign operations through the integer view: and/or of
 * floats need AVX-512DQ). */
#define GV_SIGN512 _mm512_set1_epi32((int)0x80000000u)
#define GV_TARGET __attribute__((target("avx512f")))
#define GV_NAME(x) x##_v16
#define GV_LANES 16
#define GV_T __m512
#define GV_LOAD(p) _mm512_loadu_ps(p)
#define GV_STORE(p, v) _mm512_storeu_ps(p, v)
#define GV_SET1(x) _mm512_set1_ps(x)
#define GV_ZERO() _mm512_setzero_ps()
#define GV_ADD(a, b) _mm512_add_ps(a, b)
#define GV_SUB(a, b) _mm512_sub_ps(a, b)
#define GV_MUL(a, b) _mm512_mul_ps(a, b)
#define GV_DIV(a, b) _mm512_div_ps(a, b)
#define GV_MIN(a, b) _mm512_min_ps(a, b)
#define GV_MAX(a, b) _mm512_max_ps(a, b)
#define GV_FMADD(a, b, c) _mm512_fmadd_ps(a, b, c)
#define GV_FNMADD(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define GV_ROUND(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define GV_EXP2I(n)                                                                          \
    _mm512_castsi512_ps(                                                                     \
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
#define GV_ABS(x) _mm512_castsi512_ps(_mm512_andnot_si512(GV_SIGN512, _mm512_castps_si512(x)))
#define GV_COPYSIGN(r, x)                                                                    \
    _mm512_castsi512_ps(_mm512_or_si512(                                                     \
        _mm512_castps_si512(r), _mm512_and_si512(GV_SIGN512, _mm512_castps_si512(x))))
#define GV_SELECT_GT(a, t, yes, no)                                                          \
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, t, _CMP_GT_OQ), no, yes)
#include "worker/lstm_gates.inc"
#undef GV_SIGN512

static int have_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static int have_avx512(void)
{
    return __builtin_cpu_supports("avx512f");
}
#else
#define LSTM_X86 0
static int have_avx2(void)
{
    return 0;
}

static int have_avx512(void)
{
    return 0;
}
#endif

static int use_simd(void)
{
    return !simd_off && have_avx2();
}

/* The vector mode's widest gate math: 2 with AVX-512, 1 with AVX2 only, 0 scalar. */
static int gate_width(void)
{
    return use_simd() ? 1 + have_avx512() : 0;
}

int lstm_set_simd(int on)
{
    simd_off = !on;
    return use_simd();
}

/* simd: gate_width(). The widest kernel first, each narrower one from where it stopped. */
static void cell_fwd(int simd, int H, float *g, const float *b, const float *cprev, float *c,
                     float *tc, float *h)
{
    int j = 0;
#if LSTM_X86
    if (simd > 1)
        j = cell_fwd_v16(H, j, g, b, cprev, c, tc, h);
    if (simd)
        j = cell_fwd_v8(H, j, g, b, cprev, c, tc, h);
#else
    (void)simd;
#endif
    cell_fwd_scalar(H, j, g, b, cprev, c, tc, h);
}

static void cell_bwd(int simd, int H, float *g, const float *cprev, const float *tc,
                     const float *dh, const float *dhc, float *dc, int carry)
{
    int j = 0;
#if LSTM_X86
    if (simd > 1)
        j = cell_bwd_v16(H, j, g, cprev, tc, dh, dhc, dc, carry);
    if (simd)
        j = cell_bwd_v8(H, j, g, cprev, tc, dh, dhc, dc, carry);
#else
    (void)simd;
#endif
    cell_bwd_scalar(H, j, g, cprev, tc, dh, dhc, dc, carry);
}

/* db (cols) += column sums of A (rows, cols). restrict: without it -O2 cannot vectorize
 * (db might alias A), and this loop touches every gate gradient once. */
static void colsum_acc(int rows, int cols, const float *restrict A, float *restrict db)
{
    for (int r = 0; r < rows; r++) {
        const float *a = A + (size_t)r * cols;
        for (int j = 0; j < cols; j++)
            db[j] += a[j];
    }
}

void lstm_sort_by_len_desc(int n, const int *len, int max_len, int *count, int *order,
                           int *sorted)
{
    memset(count, 0, ((size_t)max_len + 2) * sizeof *count);
    for (int i = 0; i < n; i++)
        count[max_len - len[i] + 1]++;
    for (int k = 1; k <= max_len + 1; k++)
        count[k] += count[k - 1];
    for (int i = 0; i < n; i++) {
        int at = count[max_len - len[i]]++;
        order[at] = i;
        sorted[at] = len[i];
    }
}

int lstm_pack_init(LstmPack *pk, const int *lens, int B, int max_T, int *bs, int *off)
{
    if (B < 0)
        return psrec_errf(PSREC_E_RANGE, "lstm: %d sequences", B);
    for (int r = 0; r < B; r++) {
        if (lens[r] < 0 || lens[r] > max_T)
            return psrec_errf(PSREC_E_RANGE, "lstm: sequence %d has length %d, allowed 0..%d", r,
                              lens[r], max_T);
        if (r > 0 && lens[r] > lens[r - 1])
            return psrec_errf(PSREC_E_RANGE, "lstm: lengths not sorted longest first at %d", r);
    }
    int T = B > 0 ? lens[0] : 0;
    int n = B;
    off[0] = 0;
    for (int t = 0; t < T; t++) {
        while (n > 0 && lens[n - 1] <= t)
            n--;
        bs[t] = n;
        off[t + 1] = off[t] + n;
    }
    pk->B = B;
    pk->T = T;
    pk->N = off[T];
    pk->bs = bs;
    pk->off = off;
    return 0;
}

size_t lstm_cache_floats(int N, int H)
{
    return (size_t)N * 6 * (size_t)H;
}

size_t lstm_backward_ws_floats(int B, int H)
{
    return 2 * (size_t)B * (size_t)H;
}

/* One step's gate math on rows [lo, hi) of the step, run by lstm_gemm's threads on the rows
 * each has just multiplied (forward) or in chunks (backward). */
typedef struct CellStep {
    int simd, H;          /* simd: gate_width() */
    float *G;             /* the step's gate rows (n, 4H) */
    const float *b;       /* forward: the bias */
    const float *cprev;   /* (n, H) cell states of the previous step, or NULL */
    float *c, *tc, *h;    /* forward: the step's rows of C, tanh(C), Hout */
    const float *dh;      /* backward: the step's rows of dH */
    const float *tcr;     /* backward: the step's rows of tanh(C) */
    float *dhc, *dcc;     /* backward: carried gradients (B, H) */
    int ncarry;           /* backward: rows that carry from step t + 1 */
} CellStep;

static void cell_fwd_rows(void *ctx, int lo, int hi)
{
    const CellStep *s = ctx;
    const size_t H = (size_t)s->H;
    for (int r = lo; r < hi; r++)
        cell_fwd(s->simd, s->H, s->G + r * 4 * H, s->b, s->cprev ? s->cprev + r * H : NULL,
                 s->c + r * H, s->tc + r * H, s->h + r * H);
}

static void cell_bwd_rows(void *ctx, int lo, int hi)
{
    const CellStep *s = ctx;
    const size_t H = (size_t)s->H;
    for (int r = lo; r < hi; r++) {
        const int carry = r < s->ncarry;
        cell_bwd(s->simd, s->H, s->G + r * 4 * H, s->cprev ? s->cprev + r * H : NULL,
                 s->tcr + r * H, s->dh + r * H, carry ? s->dhc + r * H : NULL, s->dcc + r * H,
                 carry);
    }
}

/* Rows per chunk of gate math: wake-up of a helper costs about as much as a few rows. */
enum { CELL_GRAIN = 16 };

void lstm_forward(const LstmPack *pk, int In, int H, const float *X, const float *h0,
                  const float *Wih, const float *Whh, const float *b, float *Hout, float *cache)
{
    const int N = pk->N, H4 = 4 * H;
    if (N == 0)
        return;
    float *G = cache;                        /* (N, 4H) */
    float *C = cache + (size_t)N * H4;       /* (N, H) */
    float *TC = C + (size_t)N * H;           /* (N, H) */
    const int simd = use_simd(), gates = gate_width();

    lstm_gemm_nn(simd, N, H4, In, X, In, Wih, H4, 0.0f, G, H4);
    LstmGemmB whh; /* packed once for every step */
    lstm_gemm_prepare(&whh, simd, 0, H, H4, Whh, H4, LSTM_GEMM_SLOT_1);
    for (int t = 0; t < pk->T; t++) {
        const int n = pk->bs[t];
        const size_t row = (size_t)pk->off[t];
        CellStep cs = {.simd = gates, .H = H, .G = G + row * H4, .b = b,
                       .cprev = t > 0 ? C + (size_t)pk->off[t - 1] * H : NULL,
                       .c = C + row * H, .tc = TC + row * H, .h = Hout + row * H};
        const float *hprev = t > 0 ? Hout + (size_t)pk->off[t - 1] * H : h0;
        if (hprev)
            lstm_gemm_apply_then(&whh, n, hprev, H, 1.0f, cs.G, H4, cell_fwd_rows, &cs);
        else
            lstm_gemm_parallel_for(n, CELL_GRAIN, cell_fwd_rows, &cs);
    }
}

void lstm_backward(const LstmPack *pk, int In, int H, const float *X, const float *h0,
                   const float *Wih, const float *Whh, const float *Hout, float *cache,
                   const float *dH, float *dX, float *dWih, float *dWhh, float *db, float *dh0,
                   float *ws)
{
    const int N = pk->N, H4 = 4 * H;
    if (dh0)
        memset(dh0, 0, (size_t)pk->B * H * sizeof *dh0);
    if (N == 0)
        return;
    float *G = cache;                        /* (N, 4H) gates in, dG out */
    const float *C = cache + (size_t)N * H4; /* (N, H) */
    const float *TC = C + (size_t)N * H;     /* (N, H) */
    float *dhc = ws;                         /* (B, H) dh carried into step t from t+1 */
    float *dcc = ws + (size_t)pk->B * H;     /* (B, H) dc carried likewise */
    const int simd = use_simd(), gates = gate_width();
    LstmGemmB whh_t; /* W_hh^T packed once for every step's dh */
    lstm_gemm_prepare(&whh_t, simd, 1, H4, H, Whh, H4, LSTM_GEMM_SLOT_1);

    for (int t = pk->T - 1; t >= 0; t--) {
        const int n = pk->bs[t];
        const size_t row = (size_t)pk->off[t];
        CellStep cs = {.simd = gates, .H = H, .G = G + row * H4,
                       .cprev = t > 0 ? C + (size_t)pk->off[t - 1] * H : NULL,
                       .dh = dH + row * H, .tcr = TC + row * H, .dhc = dhc, .dcc = dcc,
                       .ncarry = t + 1 < pk->T ? pk->bs[t + 1] : 0};
        lstm_gemm_parallel_for(n, CELL_GRAIN, cell_bwd_rows, &cs);
        /* G's rows of step t now hold dG_t (n, 4H). */
        const float *hprev = t > 0 ? Hout + (size_t)pk->off[t - 1] * H : h0;
        if (hprev)
            lstm_gemm_tn(simd, H, H4, n, hprev, H, cs.G, H4, 1.0f, dWhh, H4);
        float *dh_out = t > 0 ? dhc : dh0;
        if (dh_out)
            lstm_gemm_apply(&whh_t, n, cs.G, H4, 0.0f, dh_out, H);
    }
    lstm_gemm_tn(simd, In, H4, N, X, In, G, H4, 1.0f, dWih, H4);
    colsum_acc(N, H4, G, db);
    if (dX)
        lstm_gemm_nt(simd, N, In, H4, G, H4, Wih, H4, 0.0f, dX, In);
}

/* ------------------------------------------------------------------ inference, gathered gates */

void lstm_input_gates(int M, int In, int H, const float *X, const float *Wih, const float *b,
                      float *P)
{
    const int H4 = 4 * H;
    if (M <= 0)
        return;
    lstm_gemm_nn(use_simd(), M, H4, In, X, In, Wih, H4, 0.0f, P, H4);
    for (int r = 0; b && r < M; r++) {
        float *restrict pr = P + (size_t)r * H4;
        for (int j = 0; j < H4; j++)
            pr[j] += b[j];
    }
}

/* One row of inference gate math; simd: gate_width(). g is scratch (4H) afterwards; the
 * scalar tail puts tanh(c) in h and overwrites it with o * tanh(c) at once. */
static void cell_inf(int simd, int H, float *g, const float *b, const float *cprev, float *c,
                     float *h)
{
    int j = 0;
#if LSTM_X86
    if (simd > 1)
        j = cell_inf_v16(H, j, g, b, cprev, c, h);
    if (simd)
        j = cell_inf_v8(H, j, g, b, cprev, c, h);
#else
    (void)simd;
#endif
    if (j < H) /* libm, within ~2 ulp of the polynomials */
        cell_fwd_scalar(H, j, g, b, cprev, c, h, h);
}

/* The step loop of lstm_forward without its GEMM on X and without the cache. Each row's
 * projection goes in as cell_fwd's bias argument (cell_fwd computes act(g + b)), so G only
 * holds h.W_hh (zeros at a step with no previous state). The cell state lives in one (B, H)
 * buffer updated in place (cell_fwd reads cprev[j] before it writes c[j], the same element),
 * and tanh(c), which only backward reads, goes to the row's h, which the kernel overwrites
 * with o * tanh(c) right after. */
/* One inference step's gate math on rows [lo, hi) (lstm_forward_gates). */
typedef struct InfStep {
    int simd, H, t;
    float *G, *c, *Hout;
    const float *P;
    const int *prow;
    size_t row; /* the step's first packed row */
} InfStep;

static void cell_inf_rows(void *ctx, int lo, int hi)
{
    const InfStep *s = ctx;
    const size_t H = (size_t)s->H;
    for (int r = lo; r < hi; r++) {
        float *cr = s->c + r * H;
        cell_inf(s->simd, s->H, s->G + r * 4 * H, s->P + (size_t)s->prow[s->row + r] * 4 * H,
                 s->t > 0 ? cr : NULL, cr, s->Hout + (s->row + r) * H);
    }
}

void lstm_forward_gates(const LstmPack *pk, int H, const float *P, const int *prow,
                        const float *h0, const float *Whh, float *G, float *Hout, float *c,
                        int t0)
{
    const int H4 = 4 * H;
    const int simd = use_simd(), gates = gate_width();
    LstmGemmB whh;
    lstm_gemm_prepare(&whh, simd, 0, H, H4, Whh, H4, LSTM_GEMM_SLOT_1);
    for (int t = t0 > 0 ? t0 : 0; t < pk->T; t++) {
        const int n = pk->bs[t];
        InfStep is = {.simd = gates, .H = H, .t = t, .G = G, .c = c, .Hout = Hout,
                      .P = P, .prow = prow, .row = (size_t)pk->off[t]};
        const float *hprev = t > 0 ? Hout + (size_t)pk->off[t - 1] * H : h0;
        if (hprev && !(t > 0 && t == t0)) { /* else the caller's G, or zeros */
            lstm_gemm_apply_then(&whh, n, hprev, H, 0.0f, G, H4, cell_inf_rows, &is);
            continue;
        }
        if (!hprev)
            memset(G, 0, (size_t)n * H4 * sizeof *G);
        lstm_gemm_parallel_for(n, CELL_GRAIN, cell_inf_rows, &is);
    }
}
