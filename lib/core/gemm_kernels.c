/* Kernels of our own under the BLIS wrapper (see gemm_kernels.h). */

/* blis.h needs POSIX (pthread_barrier_t) and sets it only if no system
 * header came first. */
#define _POSIX_C_SOURCE 200809L

#include "core/gemm_kernels.h"

#include "core/cpu.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <blis.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CVAE__GEMM_X86 1
#include <immintrin.h>
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define CVAE__GEMM_X86 0
#endif

/* Written once by cvae__gemm_kernels_init, then only read. */
static int have_avx2, have_avx512;
#if CVAE__GEMM_X86
static cntx_t ctx_avx2, ctx_avx512;
#endif

#if CVAE__GEMM_X86

/* Register blocking. AVX-512: 16 rows of C in 16 zmm accumulators, one
 * load of B and 16 broadcast-FMAs per k. Both panel widths stay below 32
 * because BLIS 0.9 looks packing kernels up by panel width in a table of 32
 * (bli_cntx_get_packm_ker_dt): a 32-wide panel (an 8x32 kernel is a
 * little faster on its own) silently falls back to a generic strided copy,
 * which costs more than it gains on the transposed operands of the conv and
 * dense layers. MC x KC of A (192 KiB) fits the L2 and a KC x 16
 * micro-panel of B (24 KiB) the L1 of current AVX-512 cores (1 MiB and
 * 48 KiB or more). AVX2: BLIS's own Haswell
 * shape and block sizes. */
enum { Z_MR = 16, Z_NR = 16, Z_MC = 128, Z_KC = 384, Z_NC = 4080 };
enum { Y_MR = 6, Y_NR = 16, Y_MC = 168, Y_KC = 256, Y_NC = 4080 };

/* Writes the m x n corner of an alpha-scaled tile into C: edge tiles, and
 * C with a column stride. */
static void store_tile(dim_t m, dim_t n, const float *t, int ldt, float beta, float *c,
                       inc_t rs_c, inc_t cs_c)
{
    for (dim_t i = 0; i < m; i++)
        for (dim_t j = 0; j < n; j++) {
            float *cij = c + i * rs_c + j * cs_c;
            /* beta == 0 must not read C: callers pass uninitialised
             * buffers (possibly NaN) to be overwritten. */
            *cij = beta == 0.0f ? t[i * ldt + j] : t[i * ldt + j] + beta * *cij;
        }
}

/* acc[i] = sum over p < k of a[i] b (one FMA per p, in order) for the
 * first r rows of a packed MR x k by k x 16 panel pair. r is a constant
 * where this is inlined, so acc stays in registers. */
TARGET_AVX512 static inline __attribute__((always_inline)) void
rows_avx512(int r, dim_t k, const float *a, const float *b, __m512 *acc)
{
#pragma GCC unroll 16
    for (int i = 0; i < r; i++)
        acc[i] = _mm512_setzero_ps();
    for (dim_t p = 0; p < k; p++) {
        const __m512 bp = _mm512_loadu_ps(b);
#pragma GCC unroll 16
        for (int i = 0; i < r; i++)
            acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), bp, acc[i]);
        a += Z_MR;
        b += Z_NR;
    }
}

/* Writes the m x n corner of alpha times the first r rows of acc through
 * store_tile: the tiles the full-tile stores below do not cover. */
TARGET_AVX512 static inline __attribute__((always_inline)) void
store_acc_avx512(int r, const __m512 *acc, dim_t m, dim_t n, float alpha, float beta, float *c,
                 inc_t rs_c, inc_t cs_c)
{
    const __m512 va = _mm512_set1_ps(alpha);
    float t[Z_MR * Z_NR];
#pragma GCC unroll 16
    for (int i = 0; i < r; i++)
        _mm512_storeu_ps(t + i * Z_NR, _mm512_mul_ps(va, acc[i]));
    store_tile(m, n, t, Z_NR, beta, c, rs_c, cs_c);
}

/* An edge tile of at most r rows (r = 8 or 4; the panel is still MR wide
 * and zero below m): the 16-row loop would spend 16 FMAs a step on it
 * where r do, and a batch of 100 leaves a 4-row tile under every 16
 * columns of its products. Each value is the same chain of FMAs as in the
 * 16-row loop and is stored as that loop stores an edge tile, so the
 * floats do not change. */
TARGET_AVX512 static inline __attribute__((always_inline)) void
edge_rows_avx512(int r, dim_t m, dim_t n, dim_t k, float alpha, const float *a, const float *b,
                 float beta, float *c, inc_t rs_c, inc_t cs_c)
{
    __m512 acc[8];
    rows_avx512(r, k, a, b, acc);
    store_acc_avx512(r, acc, m, n, alpha, beta, c, rs_c, cs_c);
}

/* BLIS 0.9 gemm micro-kernel contract (GEMM_UKR_PROT2 in blis.h): a is a
 * packed MR x k micro-panel (column p at a + p*MR), b a packed k x NR one
 * (row p at b + p*NR), both zero-padded to full size; C is m x n with
 * m <= MR, n <= NR, and the kernel handles those edges itself. */
TARGET_AVX512 static void ukr_avx512_16x16(dim_t m, dim_t n, dim_t k, float *restrict alpha,
                                           float *restrict a, float *restrict b,
                                           float *restrict beta, float *restrict c, inc_t rs_c,
                                           inc_t cs_c, auxinfo_t *restrict data,
                                           cntx_t *restrict cntx)
{
    (void)data;
    (void)cntx;
    if (m <= 4) {
        edge_rows_avx512(4, m, n, k, *alpha, a, b, *beta, c, rs_c, cs_c);
        return;
    }
    if (m <= 8) {
        edge_rows_avx512(8, m, n, k, *alpha, a, b, *beta, c, rs_c, cs_c);
        return;
    }
    __m512 acc[Z_MR];
    rows_avx512(Z_MR, k, a, b, acc);
    const __m512 va = _mm512_set1_ps(*alpha);
    if (m == Z_MR && n == Z_NR && cs_c == 1) {
        if (*beta == 0.0f) {
#pragma GCC unroll 16
            for (int i = 0; i < Z_MR; i++)
                _mm512_storeu_ps(c + i * rs_c, _mm512_mul_ps(va, acc[i]));
        } else {
            const __m512 vb = _mm512_set1_ps(*beta);
#pragma GCC unroll 16
            for (int i = 0; i < Z_MR; i++) {
                float *ci = c + i * rs_c;
                _mm512_storeu_ps(ci, _mm512_fmadd_ps(va, acc[i], _mm512_mul_ps(vb, _mm512_loadu_ps(ci))));
            }
        }
        return;
    }
    store_acc_avx512(Z_MR, acc, m, n, *alpha, *beta, c, rs_c, cs_c);
}

TARGET_AVX2 static void ukr_avx2_6x16(dim_t m, dim_t n, dim_t k, float *restrict alpha,
                                      float *restrict a, float *restrict b, float *restrict beta,
                                      float *restrict c, inc_t rs_c, inc_t cs_c,
                                      auxinfo_t *restrict data, cntx_t *restrict cntx)
{
    (void)data;
    (void)cntx;
    __m256 acc[Y_MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < Y_MR; i++)
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (dim_t p = 0; p < k; p++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < Y_MR; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += Y_MR;
        b += Y_NR;
    }
    const __m256 va = _mm256_set1_ps(*alpha);
    if (m == Y_MR && n == Y_NR && cs_c == 1) {
        if (*beta == 0.0f) {
#pragma GCC unroll 6
            for (int i = 0; i < Y_MR; i++) {
                _mm256_storeu_ps(c + i * rs_c, _mm256_mul_ps(va, acc[i][0]));
                _mm256_storeu_ps(c + i * rs_c + 8, _mm256_mul_ps(va, acc[i][1]));
            }
        } else {
            const __m256 vb = _mm256_set1_ps(*beta);
#pragma GCC unroll 6
            for (int i = 0; i < Y_MR; i++) {
                float *ci = c + i * rs_c;
                _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, acc[i][0], _mm256_mul_ps(vb, _mm256_loadu_ps(ci))));
                _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(va, acc[i][1],
                                                         _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8))));
            }
        }
        return;
    }
    float t[Y_MR * Y_NR];
#pragma GCC unroll 6
    for (int i = 0; i < Y_MR; i++) {
        _mm256_storeu_ps(t + i * Y_NR, _mm256_mul_ps(va, acc[i][0]));
        _mm256_storeu_ps(t + i * Y_NR + 8, _mm256_mul_ps(va, acc[i][1]));
    }
    store_tile(m, n, t, Y_NR, *beta, c, rs_c, cs_c);
}

TARGET_AVX2 static inline void transpose8x8(__m256 r[8])
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* BLIS 0.9 packing kernel for 16-wide micro-panels (PACKM_KER_PROT):
 * p[i + j*ldp] = kappa * a[i*inca + j*lda] for i < cdim, j < n, zero up to
 * 16 x n_max. BLIS's reference one gathers element by element, which is
 * slow exactly where our layers need it: a row-major A or a transposed B
 * (lda == 1), packed here as 8x8 register transposes. Real data, so conja
 * is a no-op. */
TARGET_AVX2 static void packm_16xk(conj_t conja, pack_t schema, dim_t cdim, dim_t n,
                                   dim_t n_max, float *restrict kappa, float *restrict a,
                                   inc_t inca, inc_t lda, float *restrict p, inc_t ldp,
                                   cntx_t *restrict cntx)
{
    (void)conja;
    (void)schema;
    (void)cntx;
    const float kap = *kappa;
    const __m256 vk = _mm256_set1_ps(kap);
    dim_t j = 0;
    if (cdim == 16 && inca == 1) {
        for (; j < n; j++) {
            const float *aj = a + j * lda;
            float *pj = p + j * ldp;
            _mm256_storeu_ps(pj, _mm256_mul_ps(vk, _mm256_loadu_ps(aj)));
            _mm256_storeu_ps(pj + 8, _mm256_mul_ps(vk, _mm256_loadu_ps(aj + 8)));
        }
    } else if (lda == 1) {
        /* Also for edge panels (cdim < 16, e.g. the 9 taps of a 3x3
         * single-channel conv, whose weight gradient packs a 9-wide B): the
         * missing rows transpose in as zeros, which is the padding the
         * panel needs anyway. */
        const __m256 zero = _mm256_setzero_ps();
        for (; j + 8 <= n; j += 8)
            for (dim_t i = 0; i < 16; i += 8) {
                __m256 r[8];
                for (int q = 0; q < 8; q++)
                    r[q] = i + q < cdim ? _mm256_loadu_ps(a + (i + q) * inca + j) : zero;
                transpose8x8(r);
                for (int q = 0; q < 8; q++)
                    _mm256_storeu_ps(p + (j + q) * ldp + i, _mm256_mul_ps(vk, r[q]));
            }
    } else if (inca == 1) {
        for (; j < n; j++) {
            const float *aj = a + j * lda;
            float *pj = p + j * ldp;
            dim_t i = 0;
            for (; i < cdim; i++)
                pj[i] = kap * aj[i];
            for (; i < 16; i++)
                pj[i] = 0.0f;
        }
    }
    for (; j < n; j++) {
        for (dim_t i = 0; i < cdim; i++)
            p[j * ldp + i] = kap * a[i * inca + j * lda];
        for (dim_t i = cdim; i < 16; i++)
            p[j * ldp + i] = 0.0f;
    }
    for (; j < n_max; j++)
        for (dim_t i = 0; i < 16; i++)
            p[j * ldp + i] = 0.0f;
}

/* BLIS 0.9 keeps kernel addresses as void * (void_fp). ISO C has no
 * conversion from a function pointer to void *, but on every platform BLIS
 * runs on the two have the same size and representation. */
_Static_assert(sizeof(sgemm_ukr_ft) == sizeof(void_fp), "function pointers must fit void_fp");

static void_fp ukr_addr(sgemm_ukr_ft f)
{
    void_fp p;
    memcpy(&p, &f, sizeof p);
    return p;
}

static void_fp packm_addr(spackm_cxk_ker_ft f)
{
    void_fp p;
    memcpy(&p, &f, sizeof p);
    return p;
}

static void set_float_blksz(cntx_t *ctx, bszid_t id, dim_t v)
{
    /* Default and maximum equal: no extended last block, and for MR/NR the
     * packed panel stride (PACKMR/PACKNR) equals the register block. */
    bli_blksz_set_def(v, BLIS_FLOAT, bli_cntx_get_blksz(id, ctx));
    bli_blksz_set_max(v, BLIS_FLOAT, bli_cntx_get_blksz(id, ctx));
}

/* A private copy of BLIS's context with our single-precision kernel; the
 * other data types and level-1/2 kernels stay BLIS's. */
static void make_context(cntx_t *ctx, const cntx_t *blis, sgemm_ukr_ft ukr, dim_t mr, dim_t nr,
                         dim_t mc, dim_t kc, dim_t nc)
{
    *ctx = *blis;
    set_float_blksz(ctx, BLIS_MR, mr);
    set_float_blksz(ctx, BLIS_NR, nr);
    set_float_blksz(ctx, BLIS_MC, mc);
    set_float_blksz(ctx, BLIS_KC, kc);
    /* ...except KC: a remainder of up to kc/4 joins the last full block
     * instead of making a short one of its own (k = 800, the 32-filter 5x5
     * conv's inner dimension, runs as 384 + 416 rather than 384 + 384 + 32,
     * whose last pass would reload and store C for 32 multiply-adds). */
    bli_blksz_set_max(kc + kc / 4, BLIS_FLOAT, bli_cntx_get_blksz(BLIS_KC, ctx));
    set_float_blksz(ctx, BLIS_NC, nc);
    /* TRUE: the kernel prefers row-stored C, which is what we always pass,
     * so BLIS never transposes the problem around it. This also sets the
     * "virtual" kernel slot the macro-kernel actually calls. */
    bli_cntx_set_l3_nat_ukrs(1, BLIS_GEMM_UKR, BLIS_FLOAT, ukr_addr(ukr), TRUE, ctx);
    /* Panels of other widths (the AVX2 kernel's 6-row A panels) keep BLIS's
     * packing kernel. */
    bli_cntx_set_packm_ker_dt(packm_addr(packm_16xk), BLIS_FLOAT, BLIS_PACKM_16XK_KER, ctx);
    /* No "sup" (small, unpacked) path. The generic context has none (its
     * thresholds are 0; raising them divides by its zero sup block sizes,
     * SIGFPE), and the Haswell sup kernels BLIS picks on CPUs it knows (and
     * under valgrind, which hides AVX-512) read past the ends of the
     * operands. The rntm passed to bli_sgemm_ex disables it as well. */
    blksz_t zero;
    bli_blksz_init_easy(&zero, 0, 0, 0, 0);
    bli_cntx_set_l3_sup_thresh(3, BLIS_MT, &zero, BLIS_NT, &zero, BLIS_KT, &zero, ctx);
}

#endif /* CVAE__GEMM_X86 */

void cvae__gemm_kernels_init(const void *blis_cntx)
{
#if CVAE__GEMM_X86
    const cntx_t *blis = blis_cntx;
    have_avx2 = cvae__cpu_isa() >= CVAE__ISA_AVX2;
    have_avx512 = cvae__cpu_isa() >= CVAE__ISA_AVX512;
    if (have_avx2)
        make_context(&ctx_avx2, blis, ukr_avx2_6x16, Y_MR, Y_NR, Y_MC, Y_KC, Y_NC);
    if (have_avx512)
        make_context(&ctx_avx512, blis, ukr_avx512_16x16, Z_MR, Z_NR, Z_MC, Z_KC, Z_NC);
#else
    (void)blis_cntx;
#endif
}

int cvae__gemm_kernels_runs(cvae__gemm_kernel kernel)
{
    switch (kernel) {
    case CVAE__GEMM_KERNEL_AUTO:
    case CVAE__GEMM_KERNEL_BLIS:
        return 1;
    case CVAE__GEMM_KERNEL_AVX2:
        return have_avx2;
    case CVAE__GEMM_KERNEL_AVX512:
        return have_avx512;
    }
    return 0;
}

void *cvae__gemm_kernels_context(cvae__gemm_kernel kernel)
{
#if CVAE__GEMM_X86
    if (kernel == CVAE__GEMM_KERNEL_AVX512 && have_avx512)
        return &ctx_avx512;
    if (kernel == CVAE__GEMM_KERNEL_AVX2 && have_avx2)
        return &ctx_avx2;
#else
    (void)kernel;
#endif
    return NULL;
}

int cvae__gemm_kernels_tile_mr(cvae__gemm_kernel kernel)
{
#if CVAE__GEMM_X86
    if (kernel == CVAE__GEMM_KERNEL_AVX512 && have_avx512)
        return Z_MR;
    if (kernel == CVAE__GEMM_KERNEL_AVX2 && have_avx2)
        return Y_MR;
#else
    (void)kernel;
#endif
    return 0;
}

void cvae__gemm_kernels_tile(cvae__gemm_kernel kernel, int m, int n, int k, const float *ap,
                             const float *bp, float beta, float *c, int ldc)
{
#if CVAE__GEMM_X86
    float one = 1.0f;
    if (kernel == CVAE__GEMM_KERNEL_AVX512 && have_avx512)
        ukr_avx512_16x16((dim_t)m, (dim_t)n, (dim_t)k, &one, (float *)(uintptr_t)ap,
                         (float *)(uintptr_t)bp, &beta, c, (inc_t)ldc, 1, NULL, NULL);
    else if (kernel == CVAE__GEMM_KERNEL_AVX2 && have_avx2)
        ukr_avx2_6x16((dim_t)m, (dim_t)n, (dim_t)k, &one, (float *)(uintptr_t)ap,
                      (float *)(uintptr_t)bp, &beta, c, (inc_t)ldc, 1, NULL, NULL);
#else
    (void)kernel, (void)m, (void)n, (void)k, (void)ap, (void)bp, (void)beta, (void)c, (void)ldc;
#endif
}

/* The two memory-bound forms a vector-shaped product takes when one operand
 * is contiguous along k (dots) or along the output (axpys). They carry the
 * batch-1 inference path (the encoder is a 4704 x 512 matrix times a
 * vector), so they are vectorised: float partial sums in independent lanes
 * (the compiler turns the fixed-width lane loops into SIMD), compiled once
 * per instruction set below and picked at run time. Float lanes instead of
 * the naive loop's double sum: the error stays within k * FLT_EPSILON of
 * the magnitude, as for BLIS's own products. */
#define VEC_LANES 32
#define VEC_COLS 64

/* out[r * os] = alpha * <rows + r * rs, x> + beta * out[r * os], r < nr;
 * rows and x contiguous along k. */
static inline __attribute__((always_inline)) void vec_dots_body(int nr, int k, float alpha,
                                                                const float *rows, ptrdiff_t rs,
                                                                const float *x, float beta,
                                                                float *out, ptrdiff_t os)
{
    for (int r = 0; r < nr; r++) {
        const float *row = rows + (ptrdiff_t)r * rs;
        float acc[VEC_LANES] = {0};
        int p = 0;
        for (; p + VEC_LANES <= k; p += VEC_LANES)
            for (int q = 0; q < VEC_LANES; q++)
                acc[q] += row[p + q] * x[p + q];
        float tail = 0.0f;
        for (; p < k; p++)
            tail += row[p] * x[p];
        for (int w = VEC_LANES / 2; w > 0; w /= 2)
            for (int q = 0; q < w; q++)
                acc[q] += acc[q + w];
        const float v = alpha * (acc[0] + tail);
        float *o = out + (ptrdiff_t)r * os;
        *o = beta == 0.0f ? v : v + beta * *o;
    }
}

/* out[j * os] = alpha * sum_p x[p * xs] * mat[p * ms + j] + beta * out[j * os],
 * j < nc; mat contiguous along j. */
static inline __attribute__((always_inline)) void vec_axpys_body(int nc, int k, float alpha,
                                                                 const float *mat, ptrdiff_t ms,
                                                                 const float *x, ptrdiff_t xs,
                                                                 float beta, float *out,
                                                                 ptrdiff_t os)
{
    for (int j0 = 0; j0 < nc; j0 += VEC_COLS) {
        const int w = nc - j0 < VEC_COLS ? nc - j0 : VEC_COLS;
        float acc[VEC_COLS] = {0};
        for (int p = 0; p < k; p++) {
            const float xp = x[(ptrdiff_t)p * xs];
            const float *mp = mat + (ptrdiff_t)p * ms + j0;
            if (w == VEC_COLS)
                for (int q = 0; q < VEC_COLS; q++)
                    acc[q] += xp * mp[q];
            else
                for (int q = 0; q < w; q++)
                    acc[q] += xp * mp[q];
        }
        for (int q = 0; q < w; q++) {
            float *o = out + (ptrdiff_t)(j0 + q) * os;
            const float v = alpha * acc[q];
            *o = beta == 0.0f ? v : v + beta * *o;
        }
    }
}

#define VEC_VARIANT(SUFFIX, ATTR)                                                              \
    ATTR static void vec_dots_##SUFFIX(int nr, int k, float alpha, const float *rows,          \
                                       ptrdiff_t rs, const float *x, float beta, float *out,   \
                                       ptrdiff_t os)                                           \
    {                                                                                          \
        vec_dots_body(nr, k, alpha, rows, rs, x, beta, out, os);                               \
    }                                                                                          \
    ATTR static void vec_axpys_##SUFFIX(int nc, int k, float alpha, const float *mat,          \
                                        ptrdiff_t ms, const float *x, ptrdiff_t xs,            \
                                        float beta, float *out, ptrdiff_t os)                  \
    {                                                                                          \
        vec_axpys_body(nc, k, alpha, mat, ms, x, xs, beta, out, os);                           \
    }

VEC_VARIANT(base, )
#if CVAE__GEMM_X86
VEC_VARIANT(avx2, TARGET_AVX2)
VEC_VARIANT(avx512, TARGET_AVX512)
#endif

void cvae__gemm_vec_dots(int nr, int k, float alpha, const float *rows, ptrdiff_t rs,
                         const float *x, float beta, float *out, ptrdiff_t os)
{
#if CVAE__GEMM_X86
    if (have_avx512)
        vec_dots_avx512(nr, k, alpha, rows, rs, x, beta, out, os);
    else if (have_avx2)
        vec_dots_avx2(nr, k, alpha, rows, rs, x, beta, out, os);
    else
#endif
        vec_dots_base(nr, k, alpha, rows, rs, x, beta, out, os);
}

void cvae__gemm_vec_axpys(int nc, int k, float alpha, const float *mat, ptrdiff_t ms,
                          const float *x, ptrdiff_t xs, float beta, float *out, ptrdiff_t os)
{
#if CVAE__GEMM_X86
    if (have_avx512)
        vec_axpys_avx512(nc, k, alpha, mat, ms, x, xs, beta, out, os);
    else if (have_avx2)
        vec_axpys_avx2(nc, k, alpha, mat, ms, x, xs, beta, out, os);
    else
#endif
        vec_axpys_base(nc, k, alpha, mat, ms, x, xs, beta, out, os);
}
