/* Winograd kernels for AVX2 + FMA (see conv_wino_avx2.h). A block of 16
 * channels is two 8-lane vectors: the transforms are elementwise across
 * channels, so each half runs the same formulas as conv_wino.c's 16-lane
 * ones, in the same order. The products keep 6 rows of 16 columns in 12
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

/* Blocks of 8 channels by 8 positions of a row, transposed in registers.
 * A block shorter than 8 positions reads on into the plane's next row where
 * there is one (those lanes are never stored): AVX2's masked loads, and
 * more so its masked stores, cost several plain ones. */
AVX2 void cvae__wino_avx2_channels_last(const float *src, int c, int h, int w, int pad, int ph,
                                        int pw, size_t cp, float *dst)
{
    const size_t row = (size_t)pw * cp, plane = (size_t)h * (size_t)w;
    for (int y = 0; y < ph; y++) {
        float *d = dst + (size_t)y * row;
        const int sy = y - pad;
        if (sy < 0 || sy >= h) {
            memset(d, 0, row * sizeof *d);
            continue;
        }
        memset(d, 0, (size_t)pad * cp * sizeof *d);
        memset(d + (size_t)(pad + w) * cp, 0, (size_t)(pw - pad - w) * cp * sizeof *d);
        const float *s = src + (size_t)sy * (size_t)w;
        for (size_t c0 = 0; c0 < cp; c0 += 8)
            for (int x0 = 0; x0 < w; x0 += 8) {
                const int nx = w - x0 < 8 ? w - x0 : 8;
                const __m256i mask = first_lanes(nx);
                __m256 a[8];
                const size_t at = (size_t)sy * (size_t)w + (size_t)x0;
                const int whole = at + 8 <= plane;
                for (int r = 0; r < 8; r++) {
                    const float *p = s + (c0 + (size_t)r) * plane + (size_t)x0;
                    a[r] = c0 + (size_t)r >= (size_t)c ? _mm256_setzero_ps()
                           : whole                     ? _mm256_loadu_ps(p)
                                                       : _mm256_maskload_ps(p, mask);
                }
                tr8(a);
                float *o = d + (size_t)(pad + x0) * cp + c0;
                for (int q = 0; q < nx; q++)
                    _mm256_storeu_ps(o + (size_t)q * cp, a[q]);
            }
    }
}

/* Rows in order, so a block shorter than 8 may write on into later rows of
 * its plane (rewritten after it); masked only where it would pass the
 * plane's end. */
AVX2 void cvae__wino_avx2_channels_first(const float *ycl, size_t ow, size_t kp, int k, int h,
                                         int w, float *y)
{
    const size_t plane = (size_t)h * (size_t)w;
    for (int i = 0; i < h; i++)
        for (size_t k0 = 0; k0 < (size_t)k; k0 += 8)
            for (int x0 = 0; x0 < w; x0 += 8) {
                const int nx = w - x0 < 8 ? w - x0 : 8;
                const __m256i mask = first_lanes(nx);
                const float *s = ycl + ((size_t)i * ow + (size_t)x0) * kp + k0;
                __m256 a[8];
                for (int q = 0; q < 8; q++)
                    a[q] = q < nx ? _mm256_loadu_ps(s + (size_t)q * kp) : _mm256_setzero_ps();
                tr8(a);
                const int nr = (size_t)k - k0 < 8 ? (int)((size_t)k - k0) : 8;
                float *o = y + k0 * plane + (size_t)i * (size_t)w + (size_t)x0;
                const int whole = (size_t)i * (size_t)w + (size_t)x0 + 8 <= plane;
                for (int r = 0; r < nr; r++)
                    if (whole)
                        _mm256_storeu_ps(o + (size_t)r * plane, a[r]);
                    else
                        _mm256_maskstore_ps(o + (size_t)r * plane, mask, a[r]);
            }
}

typedef __m256 v8;

INLINE AVX2 v8 k8(float x) { return _mm256_set1_ps(x); }
INLINE AVX2 v8 add(v8 a, v8 b) { return _mm256_add_ps(a, b); }
INLINE AVX2 v8 sub(v8 a, v8 b) { return _mm256_sub_ps(a, b); }
INLINE AVX2 v8 mul(v8 a, v8 b) { return _mm256_mul_ps(a, b); }
INLINE AVX2 v8 fma8(v8 a, v8 b, v8 c) { return _mm256_fmadd_ps(a, b, c); }

/* The 8-point input transform v = B^T d (the rows of B^T written out, with
 * their shared partial sums). */
INLINE AVX2 void bt8(const v8 *d, v8 *v)
{
    const v8 s1 = fma8(k8(-4.25f), d[3], add(d[1], d[5]));
    const v8 s2 = fma8(k8(-4.25f), d[4], add(d[2], d[6]));
    const v8 p1 = fma8(k8(-2.5f), d[3], fma8(k8(0.5f), d[1], mul(k8(2.0f), d[5])));
    const v8 p2 = fma8(k8(-1.25f), d[4], fma8(k8(0.25f), d[2], d[6]));
    const v8 q1 = fma8(k8(-2.5f), d[3], fma8(k8(2.0f), d[1], mul(k8(0.5f), d[5])));
    const v8 q2 = fma8(k8(-5.0f), d[4], fma8(k8(4.0f), d[2], d[6]));
    v[0] = fma8(k8(5.25f), sub(d[4], d[2]), sub(d[0], d[6]));
    v[1] = add(s2, s1);
    v[2] = sub(s2, s1);
    v[3] = add(p2, p1);
    v[4] = sub(p2, p1);
    v[5] = add(q2, q1);
    v[6] = sub(q2, q1);
    v[7] = fma8(k8(5.25f), sub(d[3], d[5]), sub(d[7], d[1]));
}

/* The output transform y = A^T m, 8 values to 4. */
INLINE AVX2 void at8(const v8 *m, v8 *y)
{
    const v8 a = add(m[1], m[2]), b = sub(m[1], m[2]);
    const v8 c = add(m[3], m[4]), d = sub(m[3], m[4]);
    const v8 e = add(m[5], m[6]), f = sub(m[5], m[6]);
    y[0] = add(add(m[0], a), add(c, e));
    y[1] = fma8(k8(0.5f), f, fma8(k8(2.0f), d, b));
    y[2] = fma8(k8(0.25f), e, fma8(k8(4.0f), c, a));
    y[3] = add(fma8(k8(0.125f), f, fma8(k8(8.0f), d, b)), m[7]);
}

/* Its adjoint z = A y, 4 values to 8: how an output gradient enters the
 * transformed domain. */
INLINE AVX2 void a8(const v8 *y, v8 *z)
{
    const v8 e = add(y[0], y[2]), o = add(y[1], y[3]);
    const v8 e4 = fma8(k8(4.0f), y[2], y[0]);
    const v8 o4 = fma8(k8(8.0f), y[3], mul(k8(2.0f), y[1]));
    const v8 eq = fma8(k8(0.25f), y[2], y[0]);
    const v8 oq = fma8(k8(0.125f), y[3], mul(k8(0.5f), y[1]));
    z[0] = y[0];
    z[1] = add(e, o);
    z[2] = sub(e, o);
    z[3] = add(e4, o4);
    z[4] = sub(e4, o4);
    z[5] = add(eq, oq);
    z[6] = sub(eq, oq);
    z[7] = y[3];
}

/* The same three for F(4x4, 3x3): 6 points. */
INLINE AVX2 void bt6(const v8 *d, v8 *v)
{
    const v8 four = k8(4.0f), two = k8(2.0f);
    const v8 s1 = _mm256_fnmadd_ps(four, add(d[1], d[2]), add(d[3], d[4]));
    const v8 s2 = fma8(four, sub(d[1], d[2]), sub(d[4], d[3]));
    const v8 e = sub(d[4], d[2]), o = mul(two, sub(d[3], d[1]));
    v[0] = fma8(four, d[0], fma8(k8(-5.0f), d[2], d[4]));
    v[1] = s1;
    v[2] = s2;
    v[3] = add(e, o);
    v[4] = sub(e, o);
    v[5] = fma8(four, d[1], fma8(k8(-5.0f), d[3], d[5]));
}

INLINE AVX2 void at6(const v8 *m, v8 *y)
{
    const v8 a = add(m[1], m[2]), b = sub(m[1], m[2]);
    const v8 c = add(m[3], m[4]), d = sub(m[3], m[4]);
    y[0] = add(add(m[0], a), c);
    y[1] = fma8(k8(2.0f), d, b);
    y[2] = fma8(k8(4.0f), c, a);
    y[3] = add(fma8(k8(8.0f), d, b), m[5]);
}

INLINE AVX2 void a6(const v8 *y, v8 *z)
{
    const v8 e = add(y[0], y[2]), o = add(y[1], y[3]);
    const v8 e4 = fma8(k8(4.0f), y[2], y[0]);
    const v8 o4 = fma8(k8(8.0f), y[3], mul(k8(2.0f), y[1]));
    z[0] = y[0];
    z[1] = add(e, o);
    z[2] = sub(e, o);
    z[3] = add(e4, o4);
    z[4] = sub(e4, o4);
    z[5] = y[3];
}

#define TILE 4

/* For N points a side, on 8 channels: each runs its 1-D transform down the
 * columns, then along the rows (see the header for the three). */
#define TILE_TRANSFORMS(N)                                                                        \
    static AVX2 void input##N(const float *src, size_t rs, size_t cs, float *dst, size_t fs)     \
    {                                                                                             \
        v8 t[N][N];                                                                               \
        _Pragma("GCC unroll 8") for (int j = 0; j < N; j++)                                       \
        {                                                                                         \
            v8 d[N], v[N];                                                                        \
            _Pragma("GCC unroll 8") for (int i = 0; i < N; i++) d[i] =                            \
                _mm256_loadu_ps(src + (size_t)i * rs + (size_t)j * cs);                           \
            bt##N(d, v);                                                                          \
            _Pragma("GCC unroll 8") for (int k = 0; k < N; k++) t[k][j] = v[k];                   \
        }                                                                                         \
        _Pragma("GCC unroll 8") for (int k = 0; k < N; k++)                                       \
        {                                                                                         \
            v8 v[N];                                                                              \
            bt##N(t[k], v);                                                                       \
            _Pragma("GCC unroll 8") for (int l = 0; l < N; l++)                                   \
                _mm256_storeu_ps(dst + (size_t)(k * N + l) * fs, v[l]);                           \
        }                                                                                         \
    }                                                                                             \
    static AVX2 void output##N(const float *src, size_t fs, float *dst, size_t rs, size_t cs)    \
    {                                                                                             \
        v8 s[N][TILE];                                                                            \
        _Pragma("GCC unroll 8") for (int j = 0; j < N; j++)                                       \
        {                                                                                         \
            v8 m[N], y[TILE];                                                                     \
            _Pragma("GCC unroll 8") for (int k = 0; k < N; k++) m[k] =                            \
                _mm256_loadu_ps(src + (size_t)(k * N + j) * fs);                                  \
            at##N(m, y);                                                                          \
            _Pragma("GCC unroll 4") for (int i = 0; i < TILE; i++) s[j][i] = y[i];                \
        }                                                                                         \
        _Pragma("GCC unroll 4") for (int i = 0; i < TILE; i++)                                    \
        {                                                                                         \
            v8 r[N], y[TILE];                                                                     \
            _Pragma("GCC unroll 8") for (int j = 0; j < N; j++) r[j] = s[j][i];                   \
            at##N(r, y);                                                                          \
            _Pragma("GCC unroll 4") for (int l = 0; l < TILE; l++)                                \
                _mm256_storeu_ps(dst + (size_t)i * rs + (size_t)l * cs, y[l]);                    \
        }                                                                                         \
    }                                                                                             \
    static AVX2 void gradient##N(const float *src, size_t rs, size_t cs, float *dst, size_t fs)  \
    {                                                                                             \
        v8 t[N][TILE];                                                                            \
        _Pragma("GCC unroll 4") for (int j = 0; j < TILE; j++)                                    \
        {                                                                                         \
            v8 y[TILE], z[N];                                                                     \
            _Pragma("GCC unroll 4") for (int i = 0; i < TILE; i++) y[i] =                         \
                _mm256_loadu_ps(src + (size_t)i * rs + (size_t)j * cs);                           \
            a##N(y, z);                                                                           \
            _Pragma("GCC unroll 8") for (int k = 0; k < N; k++) t[k][j] = z[k];                   \
        }                                                                                         \
        _Pragma("GCC unroll 8") for (int k = 0; k < N; k++)                                       \
        {                                                                                         \
            v8 z[N];                                                                              \
            a##N(t[k], z);                                                                        \
            _Pragma("GCC unroll 8") for (int l = 0; l < N; l++)                                   \
                _mm256_storeu_ps(dst + (size_t)(k * N + l) * fs, z[l]);                           \
        }                                                                                         \
    }

TILE_TRANSFORMS(8)
TILE_TRANSFORMS(6)

/* Each 16-channel call is its two halves of 8. */
void cvae__wino_avx2_input_tile(int n, const float *src, size_t rs, size_t cs, float *dst,
                                size_t fs)
{
    for (int h = 0; h < 16; h += 8)
        (n == 8 ? input8 : input6)(src + h, rs, cs, dst + h, fs);
}

void cvae__wino_avx2_output_tile(int n, const float *src, size_t fs, float *dst, size_t rs,
                                 size_t cs)
{
    for (int h = 0; h < 16; h += 8)
        (n == 8 ? output8 : output6)(src + h, fs, dst + h, rs, cs);
}

void cvae__wino_avx2_gradient_tile(int n, const float *src, size_t rs, size_t cs, float *dst,
                                   size_t fs)
{
    for (int h = 0; h < 16; h += 8)
        (n == 8 ? gradient8 : gradient6)(src + h, rs, cs, dst + h, fs);
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

void cvae__wino_avx2_channels_last(const float *src, int c, int h, int w, int pad, int ph, int pw,
                                   size_t cp, float *dst)
{
    (void)src, (void)c, (void)h, (void)w, (void)pad, (void)ph, (void)pw, (void)cp, (void)dst;
}

void cvae__wino_avx2_channels_first(const float *ycl, size_t ow, size_t kp, int k, int h, int w,
                                    float *y)
{
    (void)ycl, (void)ow, (void)kp, (void)k, (void)h, (void)w, (void)y;
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
