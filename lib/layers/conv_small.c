/* Single-channel small-kernel convolution (see conv_small.h). Rows of one
 * or two 16-float vectors, read from a zero-padded copy of the image so
 * that no position needs a bounds test. The forward pass sums each output
 * over the taps in order, as the GEMM does over its inner dimension; the
 * weight gradient multiplies each output gradient row into every tap's
 * accumulator with the image row that tap reads, summed in vector lanes
 * and then across them: the im2col GEMM's products in another order. */
#include "layers/conv_small.h"

#include "core/cpu.h"

#include <string.h>

#define SMALL_MAX_TAPS 15
#define SMALL_MAX_W 32

static int padded_w(const cvae__conv_geom *g) { return g->w_in + g->kw - 1; }
static int padded_h(const cvae__conv_geom *g) { return g->h_in + g->kh - 1; }

size_t cvae__conv_small_work_floats(const cvae__conv_geom *g)
{
    /* + 32: a masked row load may start past the last row's end */
    return (size_t)padded_h(g) * (size_t)padded_w(g) + SMALL_MAX_W;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

int cvae__conv_small_ok(const cvae__conv_geom *g)
{
    return g->c_in == 1 && g->stride == 1 && g->kh % 2 == 1 && g->kw % 2 == 1 &&
           g->kh * g->kw <= SMALL_MAX_TAPS && g->pad_top == (g->kh - 1) / 2 &&
           g->pad_left == (g->kw - 1) / 2 && g->h_out == g->h_in && g->w_out == g->w_in &&
           g->w_in <= SMALL_MAX_W &&
           cvae__cpu_isa() >= CVAE__ISA_AVX2;
}

/* The lanes of a row of w floats (w <= 32) in the vector starting at
 * float `from` (0 or 16). */
static __mmask16 row_mask(int w, int from)
{
    const int n = w - from;
    return (__mmask16)(n >= 16 ? 0xffffu : n > 0 ? (1u << n) - 1u : 0u);
}

__attribute__((target("avx512f"))) static void small_dw_avx512(const cvae__conv_geom *g,
                                                               const float *xp, const float *dy,
                                                               float beta, float *dw)
{
    const int w = g->w_out, h = g->h_out, wp = padded_w(g), taps = g->kh * g->kw;
    const __mmask16 m0 = row_mask(w, 0), m1 = row_mask(w, 16);
    for (int c = 0; c < g->c_out; c++) {
        __m512 acc[SMALL_MAX_TAPS];
        for (int t = 0; t < taps; t++)
            acc[t] = _mm512_setzero_ps();
        const float *d = dy + (size_t)c * (size_t)h * (size_t)w;
        for (int r = 0; r < h; r++) {
            const __m512 d0 = _mm512_maskz_loadu_ps(m0, d + (size_t)r * (size_t)w);
            const __m512 d1 = _mm512_maskz_loadu_ps(m1, d + (size_t)r * (size_t)w + 16);
            for (int t = 0; t < taps; t++) {
                const float *s = xp + (size_t)(r + t / g->kw) * (size_t)wp + (size_t)(t % g->kw);
                acc[t] = _mm512_fmadd_ps(d0, _mm512_maskz_loadu_ps(m0, s), acc[t]);
                acc[t] = _mm512_fmadd_ps(d1, _mm512_maskz_loadu_ps(m1, s + 16), acc[t]);
            }
        }
        float *o = dw + (size_t)c * (size_t)taps;
        for (int t = 0; t < taps; t++) {
            const float v = _mm512_reduce_add_ps(acc[t]);
            o[t] = beta == 0.0f ? v : beta * o[t] + v;
        }
    }
}

/* Eight channels at a time: one row of each (two vectors) stays in
 * registers while every tap's shifted image row is loaded once and
 * multiplied into all of them. */
#define SMALL_GROUP 8

__attribute__((target("avx512f"))) static void small_fwd_avx512(const cvae__conv_geom *g,
                                                                const float *xp, const float *w,
                                                                const float *b, int relu,
                                                                float *y)
{
    const int wd = g->w_out, h = g->h_out, wp = padded_w(g), taps = g->kh * g->kw;
    const size_t plane = (size_t)h * (size_t)wd;
    const __mmask16 m0 = row_mask(wd, 0), m1 = row_mask(wd, 16);
    const __m512 zero = _mm512_setzero_ps();
    for (int c0 = 0; c0 < g->c_out; c0 += SMALL_GROUP) {
        const int nc = g->c_out - c0 < SMALL_GROUP ? g->c_out - c0 : SMALL_GROUP;
        /* the group's weights tap by tap, zero for channels past the last,
         * so every loop over the group has the constant trip count that
         * keeps its accumulators in registers */
        float wg[SMALL_MAX_TAPS][SMALL_GROUP], bg[SMALL_GROUP];
        for (int c = 0; c < SMALL_GROUP; c++) {
            for (int t = 0; t < taps; t++)
                wg[t][c] = c < nc ? w[(size_t)(c0 + c) * (size_t)taps + t] : 0.0f;
            bg[c] = c < nc && b ? b[c0 + c] : 0.0f;
        }
        for (int r = 0; r < h; r++) {
            __m512 a0[SMALL_GROUP], a1[SMALL_GROUP];
            for (int c = 0; c < SMALL_GROUP; c++)
                a0[c] = a1[c] = zero;
            for (int t = 0; t < taps; t++) {
                const float *s = xp + (size_t)(r + t / g->kw) * (size_t)wp + (size_t)(t % g->kw);
                const __m512 x0 = _mm512_maskz_loadu_ps(m0, s);
                const __m512 x1 = _mm512_maskz_loadu_ps(m1, s + 16);
                for (int c = 0; c < SMALL_GROUP; c++) {
                    const __m512 wt = _mm512_set1_ps(wg[t][c]);
                    a0[c] = _mm512_fmadd_ps(wt, x0, a0[c]);
                    a1[c] = _mm512_fmadd_ps(wt, x1, a1[c]);
                }
            }
            for (int c = 0; c < SMALL_GROUP; c++) {
                if (c >= nc)
                    break;
                const __m512 bc = _mm512_set1_ps(bg[c]);
                __m512 v0 = _mm512_add_ps(a0[c], bc), v1 = _mm512_add_ps(a1[c], bc);
                if (relu) {
                    /* v < 0 ? 0 : v, keeping a NaN, as cvae__conv_bias_relu */
                    v0 = _mm512_mask_mov_ps(v0, _mm512_cmp_ps_mask(v0, zero, _CMP_LT_OQ), zero);
                    v1 = _mm512_mask_mov_ps(v1, _mm512_cmp_ps_mask(v1, zero, _CMP_LT_OQ), zero);
                }
                float *o = y + (size_t)(c0 + c) * plane + (size_t)r * (size_t)wd;
                _mm512_mask_storeu_ps(o, m0, v0);
                _mm512_mask_storeu_ps(o + 16, m1, v1);
            }
        }
    }
}

/* The same two for AVX2 + FMA: a row of at most 32 is two halves of two
 * 8-float vectors. Image rows are read whole from the padded copy (plain
 * loads: AVX2's masked ones are slow, its masked stores slower); the lanes
 * past the row's end are masked off where they would count: in dy's rows
 * and in output rows near the plane's end. The forward
 * pass sums every output over the taps in the same order from zero, then
 * adds the bias, so it gives the AVX-512 version's floats; the weight
 * gradient sums its lanes in another order. */
#define AVX2_FMA __attribute__((target("avx2,fma")))

static AVX2_FMA void half_masks(int w, __m256i m[4])
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int q = 0; q < 4; q++)
        m[q] = _mm256_cmpgt_epi32(_mm256_set1_epi32(w - 8 * q), lane);
}

static AVX2_FMA void small_dw_avx2(const cvae__conv_geom *g, const float *xp, const float *dy,
                                   float beta, float *dw)
{
    const int w = g->w_out, h = g->h_out, wp = padded_w(g), taps = g->kh * g->kw;
    __m256i m[4];
    half_masks(w, m);
    for (int c = 0; c < g->c_out; c++) {
        __m256 acc[SMALL_MAX_TAPS];
        for (int t = 0; t < taps; t++)
            acc[t] = _mm256_setzero_ps();
        const float *d = dy + (size_t)c * (size_t)h * (size_t)w;
        for (int r = 0; r < h; r++)
            for (int q = 0; q < 4; q += 2) {
                if (8 * q >= w)
                    break;
                const float *dr = d + (size_t)r * (size_t)w + 8 * q;
                const __m256 d0 = _mm256_maskload_ps(dr, m[q]);
                const __m256 d1 = _mm256_maskload_ps(dr + 8, m[q + 1]);
                /* image lanes past the row are finite (the padded copy and
                 * its tail are zeroed) and meet zeros of dy */
                for (int t = 0; t < taps; t++) {
                    const float *s = xp + (size_t)(r + t / g->kw) * (size_t)wp +
                                     (size_t)(t % g->kw) + 8 * q;
                    acc[t] = _mm256_fmadd_ps(d0, _mm256_loadu_ps(s), acc[t]);
                    acc[t] = _mm256_fmadd_ps(d1, _mm256_loadu_ps(s + 8), acc[t]);
                }
            }
        float *o = dw + (size_t)c * (size_t)taps;
        for (int t = 0; t < taps; t++) {
            const __m128 h4 =
                _mm_add_ps(_mm256_castps256_ps128(acc[t]), _mm256_extractf128_ps(acc[t], 1));
            const __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
            const float v = _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1)));
            o[t] = beta == 0.0f ? v : beta * o[t] + v;
        }
    }
}

/* Four channels at a time: their accumulators for half a row (eight
 * vectors) stay in registers while every tap's shifted half row is loaded
 * once. */
#define SMALL_GROUP_AVX2 4

static AVX2_FMA void small_fwd_avx2(const cvae__conv_geom *g, const float *xp, const float *w,
                                    const float *b, int relu, float *y)
{
    const int wd = g->w_out, h = g->h_out, wp = padded_w(g), taps = g->kh * g->kw;
    const size_t plane = (size_t)h * (size_t)wd;
    __m256i m[4];
    half_masks(wd, m);
    const __m256 zero = _mm256_setzero_ps();
    for (int c0 = 0; c0 < g->c_out; c0 += SMALL_GROUP_AVX2) {
        const int nc = g->c_out - c0 < SMALL_GROUP_AVX2 ? g->c_out - c0 : SMALL_GROUP_AVX2;
        float wg[SMALL_MAX_TAPS][SMALL_GROUP_AVX2], bg[SMALL_GROUP_AVX2];
        for (int c = 0; c < SMALL_GROUP_AVX2; c++) {
            for (int t = 0; t < taps; t++)
                wg[t][c] = c < nc ? w[(size_t)(c0 + c) * (size_t)taps + t] : 0.0f;
            bg[c] = c < nc && b ? b[c0 + c] : 0.0f;
        }
        for (int r = 0; r < h; r++)
            for (int q = 0; q < 4; q += 2) {
                if (8 * q >= wd)
                    break;
                __m256 a0[SMALL_GROUP_AVX2], a1[SMALL_GROUP_AVX2];
                for (int c = 0; c < SMALL_GROUP_AVX2; c++)
                    a0[c] = a1[c] = zero;
                for (int t = 0; t < taps; t++) {
                    const float *s = xp + (size_t)(r + t / g->kw) * (size_t)wp +
                                     (size_t)(t % g->kw) + 8 * q;
                    const __m256 x0 = _mm256_loadu_ps(s), x1 = _mm256_loadu_ps(s + 8);
                    for (int c = 0; c < SMALL_GROUP_AVX2; c++) {
                        const __m256 wt = _mm256_set1_ps(wg[t][c]);
                        a0[c] = _mm256_fmadd_ps(wt, x0, a0[c]);
                        a1[c] = _mm256_fmadd_ps(wt, x1, a1[c]);
                    }
                }
                for (int c = 0; c < nc; c++) {
                    const __m256 bc = _mm256_set1_ps(bg[c]);
                    __m256 v0 = _mm256_add_ps(a0[c], bc), v1 = _mm256_add_ps(a1[c], bc);
                    if (relu) {
                        /* v < 0 ? 0 : v, keeping a NaN, as cvae__conv_bias_relu */
                        v0 = _mm256_blendv_ps(v0, zero, _mm256_cmp_ps(v0, zero, _CMP_LT_OQ));
                        v1 = _mm256_blendv_ps(v1, zero, _mm256_cmp_ps(v1, zero, _CMP_LT_OQ));
                    }
                    float *o = y + (size_t)(c0 + c) * plane + (size_t)r * (size_t)wd + 8 * q;
                    if ((size_t)r * (size_t)wd + (size_t)(8 * q + 16) <= plane) {
                        /* lanes past the row land on later rows of this
                         * plane, written after this one */
                        _mm256_storeu_ps(o, v0);
                        _mm256_storeu_ps(o + 8, v1);
                    } else {
                        _mm256_maskstore_ps(o, m[q], v0);
                        _mm256_maskstore_ps(o + 8, m[q + 1], v1);
                    }
                }
            }
    }
}

/* The zero-padded copy of one image in work. */
static void pad_image(const cvae__conv_geom *g, const float *x, float *work)
{
    const int wp = padded_w(g);
    memset(work, 0, cvae__conv_small_work_floats(g) * sizeof *work);
    for (int r = 0; r < g->h_in; r++)
        memcpy(work + (size_t)(r + g->pad_top) * (size_t)wp + (size_t)g->pad_left,
               x + (size_t)r * (size_t)g->w_in, (size_t)g->w_in * sizeof *x);
}

void cvae__conv_small_forward(const cvae__conv_geom *g, const float *x, const float *w,
                              const float *b, int relu, float *y, float *work)
{
    pad_image(g, x, work);
    if (cvae__cpu_isa() >= CVAE__ISA_AVX512)
        small_fwd_avx512(g, work, w, b, relu, y);
    else
        small_fwd_avx2(g, work, w, b, relu, y);
}

void cvae__conv_small_dw(const cvae__conv_geom *g, const float *x, const float *dy, float beta,
                         float *dw, float *work)
{
    pad_image(g, x, work);
    if (cvae__cpu_isa() >= CVAE__ISA_AVX512)
        small_dw_avx512(g, work, dy, beta, dw);
    else
        small_dw_avx2(g, work, dy, beta, dw);
}
#else
int cvae__conv_small_ok(const cvae__conv_geom *g)
{
    (void)g;
    return 0;
}

void cvae__conv_small_forward(const cvae__conv_geom *g, const float *x, const float *w,
                              const float *b, int relu, float *y, float *work)
{
    (void)g;
    (void)x;
    (void)w;
    (void)b;
    (void)relu;
    (void)y;
    (void)work;
}

void cvae__conv_small_dw(const cvae__conv_geom *g, const float *x, const float *dy, float beta,
                         float *dw, float *work)
{
    (void)g;
    (void)x;
    (void)dy;
    (void)beta;
    (void)dw;
    (void)work;
}
#endif
