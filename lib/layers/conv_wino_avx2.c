/* Winograd kernels for AVX2 + FMA (see conv_wino_avx2.h). A block of 16
 * channels is two 8-lane vectors: the transforms are elementwise across
 * channels, so each half runs conv_wino_vec.h's transforms, the code
 * conv_wino.c runs on 16 lanes. The products keep 6 rows of 16 columns in 12
 * of the 16 vector registers, with two for a row of the other operand and
 * one for a broadcast: the shape of the library's AVX2 GEMM kernel. */
#include "layers/conv_wino_avx2.h"

#include "core/cpu.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

int cvae__wino_avx2_ok(void)
{
    return cvae__cpu_isa() >= CVAE__ISA_AVX2;
}

/* An 8 x 8 transpose in eight registers: a[q] becomes column q of the
 * block whose rows were a[0..7] (32-bit, then 64-bit interleaves within
 * 128-bit lanes, then the lanes swapped across). */
INLINE AVX2 void tr8(__m256 a[8])
{
    __m256 t[8], u[8];
    for (int r = 0; r < 8; r += 2) {
        t[r] = _mm256_unpacklo_ps(a[r], a[r + 1]);
        t[r + 1] = _mm256_unpackhi_ps(a[r], a[r + 1]);
    }
    for (int r = 0; r < 8; r += 4) {
        u[r] = _mm256_shuffle_ps(t[r], t[r + 2], 0x44);
        u[r + 1] = _mm256_shuffle_ps(t[r], t[r + 2], 0xEE);
        u[r + 2] = _mm256_shuffle_ps(t[r + 1], t[r + 3], 0x44);
        u[r + 3] = _mm256_shuffle_ps(t[r + 1], t[r + 3], 0xEE);
    }
    for (int r = 0; r < 4; r++) {
        a[r] = _mm256_permute2f128_ps(u[r], u[r + 4], 0x20);
        a[r + 4] = _mm256_permute2f128_ps(u[r], u[r + 4], 0x31);
    }
}

/* The first n of the 8 lanes. */
INLINE AVX2 __m256i first_lanes(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The layout copies and the tile transforms, 8 channels at a time
 * (conv_wino_vec.h). */
#define WT_V __m256
#define WT_W 8
#define WT_TARGET AVX2
#define WT_SET1(x) _mm256_set1_ps(x)
#define WT_ZERO _mm256_setzero_ps()
#define WT_ADD(a, b) _mm256_add_ps(a, b)
#define WT_SUB(a, b) _mm256_sub_ps(a, b)
#define WT_MUL(a, b) _mm256_mul_ps(a, b)
#define WT_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define WT_FNMA(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define WT_LOAD(p) _mm256_loadu_ps(p)
#define WT_STORE(p, v) _mm256_storeu_ps(p, v)
#define WT_MASK __m256i
#define WT_MASKLOAD(p, m) _mm256_maskload_ps(p, m)
#define WT_MASKSTORE(p, m, v) _mm256_maskstore_ps(p, m, v)
#define WT_TRANSPOSE(a) tr8(a)
#include "layers/conv_wino_vec.h"

AVX2 void cvae__wino_avx2_channels_last(const float *src, int c, int h, int w, int pad, int y0,
                                        int y1, int pw, size_t cp, float *dst)
{
    channels_last(src, c, h, w, pad, y0, y1, pw, cp, dst);
}

AVX2 void cvae__wino_avx2_channels_first(const float *ycl, size_t ow, size_t kp, int k, int h,
                                         int w, int i0, int i1, float *y)
{
    channels_first(ycl, ow, kp, k, h, w, i0, i1, y);
}

typedef __m256 v8;

INLINE AVX2 v8 add(v8 a, v8 b) { return _mm256_add_ps(a, b); }
INLINE AVX2 v8 fma8(v8 a, v8 b, v8 c) { return _mm256_fmadd_ps(a, b, c); }

/* Each 16-channel call is its two halves of 8. */
void cvae__wino_avx2_input_tile(int n, const float *src, size_t rs, size_t cs, float *dst,
                                size_t fs)
{
    for (int h = 0; h < 16; h += 8)
        (n == 8 ? input_tile8 : input_tile6)(src + h, rs, cs, dst + h, fs);
}

void cvae__wino_avx2_output_tile(int n, const float *src, size_t fs, float *dst, size_t rs,
                                 size_t cs)
{
    for (int h = 0; h < 16; h += 8)
        (n == 8 ? output_tile8 : output_tile6)(src + h, fs, dst + h, rs, cs);
}

void cvae__wino_avx2_gradient_tile(int n, const float *src, size_t rs, size_t cs, float *dst,
                                   size_t fs)
{
    for (int h = 0; h < 16; h += 8)
        (n == 8 ? gradient_tile8 : gradient_tile6)(src + h, rs, cs, dst + h, fs);
}

/* R rows of the product (see cvae__wino_avx2_product). */
INLINE AVX2 void product_rows(int R, int nc, const float *v, size_t vblk, const float *u,
                              size_t us, float *c)
{
    v8 acc[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < R; i++)
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int cb = 0; cb < nc / 16; cb++) {
        const float *vb = v + (size_t)cb * vblk;
        for (int ci = 0; ci < 16; ci++) {
            const v8 b0 = _mm256_loadu_ps(u), b1 = _mm256_loadu_ps(u + 8);
            u += us;
#pragma GCC unroll 6
            for (int i = 0; i < R; i++) {
                const v8 a = _mm256_broadcast_ss(vb + i * 16 + ci);
                acc[i][0] = fma8(a, b0, acc[i][0]);
                acc[i][1] = fma8(a, b1, acc[i][1]);
            }
        }
    }
    for (int i = 0; i < R; i++) {
        _mm256_storeu_ps(c + (size_t)i * 16, acc[i][0]);
        _mm256_storeu_ps(c + (size_t)i * 16 + 8, acc[i][1]);
    }
}

/* One function per row count, so each keeps its accumulators in registers. */
#define PRODUCT_ROWS(R)                                                                           \
    static AVX2 void product##R(int nc, const float *v, size_t vblk, const float *u, size_t us,  \
                                float *c)                                                         \
    {                                                                                             \
        product_rows(R, nc, v, vblk, u, us, c);                                                   \
    }
PRODUCT_ROWS(1)
PRODUCT_ROWS(2)
PRODUCT_ROWS(3)
PRODUCT_ROWS(4)
PRODUCT_ROWS(5)
PRODUCT_ROWS(6)

typedef void (*product_fn)(int nc, const float *v, size_t vblk, const float *u, size_t us,
                           float *c);

void cvae__wino_avx2_product(int m, int nc, const float *v, size_t vblk, const float *u,
                             size_t us, float *c)
{
    static const product_fn by_rows[7] = {NULL,     product1, product2, product3,
                                          product4, product5, product6};
    for (int r0 = 0; r0 < m; r0 += 6)
        by_rows[m - r0 < 6 ? m - r0 : 6](nc, v + (size_t)r0 * 16, vblk, u, us,
                                         c + (size_t)r0 * 16);
}

/* R rows (from row r0) of the 16 x 16 outer-product sum. */
INLINE AVX2 void outer_rows(int R, int r0, int k, const float *v, const float *z, float beta,
                            float *c)
{
    v8 acc[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < R; i++)
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int p = 0; p < k; p++) {
        const v8 b0 = _mm256_loadu_ps(z + (size_t)p * 16), b1 = _mm256_loadu_ps(z + (size_t)p * 16 + 8);
        const float *a = v + (size_t)p * 16 + r0;
#pragma GCC unroll 6
        for (int i = 0; i < R; i++) {
            const v8 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = fma8(ai, b0, acc[i][0]);
            acc[i][1] = fma8(ai, b1, acc[i][1]);
        }
    }
    for (int i = 0; i < R; i++) {
        float *ci = c + (size_t)(r0 + i) * 16;
        if (beta != 0.0f) {
            acc[i][0] = add(_mm256_loadu_ps(ci), acc[i][0]);
            acc[i][1] = add(_mm256_loadu_ps(ci + 8), acc[i][1]);
        }
        _mm256_storeu_ps(ci, acc[i][0]);
        _mm256_storeu_ps(ci + 8, acc[i][1]);
    }
}

/* As the products: one function per row count (6, 6, then 4 of the 16). */
#define OUTER_ROWS(R)                                                                             \
    static AVX2 void outer##R(int r0, int k, const float *v, const float *z, float beta,         \
                              float *c)                                                           \
    {                                                                                             \
        outer_rows(R, r0, k, v, z, beta, c);                                                      \
    }
OUTER_ROWS(6)
OUTER_ROWS(4)

void cvae__wino_avx2_outer(int k, const float *v, const float *z, float beta, float *c)
{
    outer6(0, k, v, z, beta, c);
    outer6(6, k, v, z, beta, c);
    outer4(12, k, v, z, beta, c);
}

#else

int cvae__wino_avx2_ok(void) { return 0; }

void cvae__wino_avx2_channels_last(const float *src, int c, int h, int w, int pad, int y0,
                                   int y1, int pw, size_t cp, float *dst)
{
    (void)src, (void)c, (void)h, (void)w, (void)pad, (void)y0, (void)y1, (void)pw, (void)cp,
        (void)dst;
}

void cvae__wino_avx2_channels_first(const float *ycl, size_t ow, size_t kp, int k, int h, int w,
                                    int i0, int i1, float *y)
{
    (void)ycl, (void)ow, (void)kp, (void)k, (void)h, (void)w, (void)i0, (void)i1, (void)y;
}

void cvae__wino_avx2_input_tile(int n, const float *src, size_t rs, size_t cs, float *dst,
                                size_t fs)
{
    (void)n, (void)src, (void)rs, (void)cs, (void)dst, (void)fs;
}

void cvae__wino_avx2_output_tile(int n, const float *src, size_t fs, float *dst, size_t rs,
                                 size_t cs)
{
    (void)n, (void)src, (void)fs, (void)dst, (void)rs, (void)cs;
}

void cvae__wino_avx2_gradient_tile(int n, const float *src, size_t rs, size_t cs, float *dst,
                                   size_t fs)
{
    (void)n, (void)src, (void)rs, (void)cs, (void)dst, (void)fs;
}

void cvae__wino_avx2_product(int m, int nc, const float *v, size_t vblk, const float *u,
                             size_t us, float *c)
{
    (void)m, (void)nc, (void)v, (void)vblk, (void)u, (void)us, (void)c;
}

void cvae__wino_avx2_outer(int k, const float *v, const float *z, float beta, float *c)
{
    (void)k, (void)v, (void)z, (void)beta, (void)c;
}

#endif
