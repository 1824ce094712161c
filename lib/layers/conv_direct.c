/* Direct-read convolution (see conv_direct.h).
 *
 * Forward: the output is walked row by row in tiles of 16 positions (a
 * row's last tile may be shorter: its extra lanes read the padded image
 * past the row's end and are never stored); for each tile and each block
 * of 16 output channels the tile kernel sums the block's taps, loading tap
 * p's 16 inputs at the tile's corner plus off[p].
 *
 * Weight gradient: the product runs the other way round, dW^T (taps x
 * c_out) = im2col (taps x positions) times dy^T, with positions as the
 * inner dimension (no short tiles). The image and dy are copied
 * channels-last (each position's channels side by side, in blocks of 16),
 * so that a tile of 16 taps (16 channels at one kernel offset) by 16
 * output channels reads, per position, 16 neighbouring image floats to
 * broadcast and 16 neighbouring gradient floats; it runs over the
 * rectangle of positions at which its kernel offset reads inside the image
 * (elsewhere the im2col matrix is zero), so no padded copy is needed.
 * Tiles are summed per image from zero, added to a running sum kept in
 * tile order in the workspace, and written out in dW's layout after the
 * last image. */
#include "layers/conv_direct.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "core/gemm.h"
#include "layers/im2col.h"

#define DIRECT_MR 16
#define DIRECT_MAX_K 16

static int padded_w(const cvae__conv_geom *g) { return g->w_in + g->kw - 1; }
static int padded_h(const cvae__conv_geom *g) { return g->h_in + g->kh - 1; }
static size_t round16(size_t n) { return (n + 15) / 16 * 16; }
static size_t taps(const cvae__conv_geom *g)
{
    return (size_t)g->c_in * (size_t)g->kh * (size_t)g->kw;
}
static size_t padded_floats(const cvae__conv_geom *g)
{
    /* + 16: the last row's short tile reads up to 15 floats past it */
    return (size_t)g->c_in * (size_t)padded_h(g) * (size_t)padded_w(g) + 16;
}

size_t cvae__conv_direct_work_floats(const cvae__conv_geom *g)
{
    return round16(taps(g)) + padded_floats(g);
}

/* The weight gradient's workspace: the running sum (one 16 x 16 tile per
 * kernel offset, channel block and output-channel block), then the image
 * and dy packed channels-last by cvae__implicit_pack: block b of 16
 * channels at + b*16*hw, position q's 16 floats of it at + q*16, channels
 * past the last zero. */
typedef struct dw_layout {
    int ncb, nob;      /* blocks of 16 channels, of 16 output channels */
    size_t xt, dyt, n; /* offsets of the copies, total floats */
} dw_layout;

static dw_layout dw_layout_of(const cvae__conv_geom *g)
{
    dw_layout l;
    const size_t hw = (size_t)g->h_out * (size_t)g->w_out;
    l.ncb = (g->c_in + 15) / 16;
    l.nob = (g->c_out + 15) / 16;
    l.xt = (size_t)g->kh * (size_t)g->kw * (size_t)l.ncb * (size_t)l.nob * 256;
    l.dyt = l.xt + (size_t)l.ncb * 16 * hw;
    l.n = l.dyt + (size_t)l.nob * 16 * hw;
    return l;
}

size_t cvae__conv_direct_dw_floats(const cvae__conv_geom *g) { return dw_layout_of(g).n; }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

int cvae__conv_direct_ok(const cvae__conv_geom *g)
{
    return g->stride == 1 && g->kh % 2 == 1 && g->kw % 2 == 1 && g->kh <= DIRECT_MAX_K &&
           g->kw <= DIRECT_MAX_K && g->pad_top == (g->kh - 1) / 2 &&
           g->pad_left == (g->kw - 1) / 2 && g->h_out == g->h_in && g->w_out == g->w_in &&
           padded_floats(g) < (size_t)INT_MAX && cvae__gemm_tile_mr() == DIRECT_MR;
}

/* c (m x n, row stride ldc; m, n <= 16) = sum over p < k of the column p of
 * the packed panel ap (16 floats at ap + 16p) times the 16 floats at
 * b + off[p], plus c itself if accumulate. The products are added in the
 * order of the tile kernel behind cvae__gemm_tile (one FMA per p, from
 * zero), and the accumulated tile added as its beta = 1 does, so a block
 * gives the same floats as that kernel on a gathered panel. Lanes of n and
 * beyond are computed from whatever b holds there and never stored. */
__attribute__((target("avx512f"))) static void direct_tile(int m, int n, int k, const float *ap,
                                                           const float *b, const int32_t *off,
                                                           int accumulate, float *c, size_t ldc)
{
    __m512 acc[DIRECT_MR];
#pragma GCC unroll 16
    for (int i = 0; i < DIRECT_MR; i++)
        acc[i] = _mm512_setzero_ps();
    for (int p = 0; p < k; p++) {
        const __m512 bp = _mm512_loadu_ps(b + off[p]);
#pragma GCC unroll 16
        for (int i = 0; i < DIRECT_MR; i++)
            acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(ap[i]), bp, acc[i]);
        ap += DIRECT_MR;
    }
    const __mmask16 mask = (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1u);
    if (m == DIRECT_MR && n == 16) {
#pragma GCC unroll 16
        for (int i = 0; i < DIRECT_MR; i++) {
            float *ci = c + (size_t)i * ldc;
            _mm512_storeu_ps(ci, accumulate ? _mm512_add_ps(acc[i], _mm512_loadu_ps(ci)) : acc[i]);
        }
        return;
    }
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * ldc;
        const __m512 v = accumulate ? _mm512_add_ps(acc[i], _mm512_maskz_loadu_ps(mask, ci)) : acc[i];
        _mm512_mask_storeu_ps(ci, mask, v);
    }
}

/* The image with (kh-1)/2 zero rows above and below each channel's plane
 * and (kw-1)/2 zero columns left and right of each row, every float of it
 * written (the work buffer is not cleared beforehand). A padded row is
 * written 16 floats at a time, its image floats expanded into the lanes
 * between the padding (rows are short: calls to memcpy and memset for each
 * cost more than the copy). */
__attribute__((target("avx512f"))) static void pad_image(const cvae__conv_geom *g,
                                                         const float *img, float *xp)
{
    const int wp = padded_w(g), hp = padded_h(g), w = g->w_in, left = g->pad_left;
    const __m512 zero = _mm512_setzero_ps();
    float *dst = xp;
    for (int c = 0; c < g->c_in; c++) {
        const float *src = img + (size_t)c * (size_t)g->h_in * (size_t)w;
        for (int r = 0; r < hp; r++, dst += wp) {
            const int in = r >= g->pad_top && r < g->pad_top + g->h_in;
            const float *s = src + (size_t)(r - (in ? g->pad_top : 0)) * (size_t)w;
            _mm_prefetch((const char *)(s + 8 * (size_t)w), _MM_HINT_T0);
            _mm_prefetch((const char *)(s + 8 * (size_t)w + 16), _MM_HINT_T0);
            for (int x0 = 0; x0 < wp; x0 += 16) {
                const int n = wp - x0 < 16 ? wp - x0 : 16;
                /* lanes [lo, hi) hold image columns x0 + lane - left */
                const int lo = left - x0 > 0 ? left - x0 : 0;
                const int hi = left + w - x0 < n ? left + w - x0 : n;
                __m512 v = zero;
                if (in && hi > lo) {
                    const __mmask16 m = (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
                    if (x0 >= left) /* lane j holds column x0 + j - left */
                        v = _mm512_maskz_loadu_ps(m, s + (x0 - left));
                    else /* the row's first floats, moved up by lo lanes */
                        v = _mm512_maskz_permutexvar_ps(
                            m, _mm512_sub_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                                                  10, 11, 12, 13, 14, 15),
                                                _mm512_set1_epi32(lo)),
                            _mm512_maskz_loadu_ps((__mmask16)(m >> lo), s));
                }
                _mm512_mask_storeu_ps(dst + x0, (__mmask16)((1u << n) - 1u), v);
            }
        }
    }
    _mm512_storeu_ps(dst, zero);
}

void cvae__conv_direct(const cvae__conv_geom *g, const float *img, const float *ap, float *y,
                       float *work)
{
    const int k = (int)taps(g), wp = padded_w(g), hp = padded_h(g), w = g->w_out;
    const size_t plane = (size_t)g->h_out * (size_t)w;
    int32_t *off = (int32_t *)(void *)work;
    float *xp = work + round16((size_t)k);
    /* tap (c, ky, kx) reads the padded image at c's plane, ky rows and kx
     * columns on from the output position's own corner */
    for (int c = 0, p = 0; c < g->c_in; c++)
        for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++)
                off[p++] = (int32_t)(((size_t)c * (size_t)hp + (size_t)ky) * (size_t)wp + (size_t)kx);
    pad_image(g, img, xp);
    for (int p0 = 0; p0 < k;) {
        const int kc = k - p0 <= CVAE__IMPLICIT_KC_MAX ? k - p0 : CVAE__IMPLICIT_KC;
        for (int i0 = 0; i0 < g->c_out; i0 += DIRECT_MR) {
            const int m = g->c_out - i0 < DIRECT_MR ? g->c_out - i0 : DIRECT_MR;
            const float *a = ap + (size_t)i0 * (size_t)k + (size_t)p0 * DIRECT_MR;
            for (int r = 0; r < g->h_out; r++)
                for (int x0 = 0; x0 < w; x0 += 16)
                    direct_tile(m, w - x0 < 16 ? w - x0 : 16, kc, a,
                                xp + (size_t)r * (size_t)wp + (size_t)x0, off + p0, p0 > 0,
                                y + (size_t)i0 * plane + (size_t)r * (size_t)w + (size_t)x0,
                                plane);
        }
        p0 += kc;
    }
}

/* acc (16 x 16: row i for channel i of a block, lanes 16 output channels)
 * = (first ? 0 : acc) + the sum, over a rows x cols rectangle of output
 * positions in row order, of the 16 packed image floats at xt times the 16
 * packed gradient floats at dyt (both advancing 16 floats a position and
 * row floats a row). */
__attribute__((target("avx512f"))) static void dw_tile(int rows, int cols, size_t row,
                                                       const float *xt, const float *dyt,
                                                       int first, float *acc)
{
    __m512 a[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        a[i] = _mm512_setzero_ps();
    for (int r = 0; r < rows; r++) {
        const float *xs = xt + (size_t)r * row, *ds = dyt + (size_t)r * row;
        for (int x = 0; x < cols; x++, xs += 16, ds += 16) {
            const __m512 d = _mm512_loadu_ps(ds);
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                a[i] = _mm512_fmadd_ps(_mm512_set1_ps(xs[i]), d, a[i]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) {
        float *o = acc + (size_t)i * 16;
        _mm512_storeu_ps(o, first ? a[i] : _mm512_add_ps(a[i], _mm512_loadu_ps(o)));
    }
}

/* The running sum's tile for kernel offset t, channel block cb and
 * output-channel block ob. */
static float *dw_sum_tile(float *acc, const dw_layout *l, int t, int cb, int ob)
{
    return acc + (((size_t)t * (size_t)l->ncb + (size_t)cb) * (size_t)l->nob + (size_t)ob) * 256;
}

int cvae__conv_direct_dw_ok(const cvae__conv_geom *g)
{
    return g->c_in >= 16 && cvae__conv_direct_ok(g);
}

/* A tap reads nothing but zeros outside its rectangle of positions, so
 * each tile sums over that rectangle only, read from unpadded copies. */
static void direct_dw_run(const cvae__conv_geom *g, const float *img, const float *dy, int first,
                          int last, float *dw, float *work)
{
    const dw_layout l = dw_layout_of(g);
    const int w = g->w_out, h = g->h_out, kk = g->kh * g->kw;
    const size_t hw = (size_t)h * (size_t)w, row = (size_t)w * 16;
    float *acc = work, *xt = work + l.xt, *dyt = work + l.dyt;
    cvae__implicit_pack(img, g->c_in, (int)hw, xt);
    cvae__implicit_pack(dy, g->c_out, (int)hw, dyt);
    for (int t = 0; t < kk; t++) {
        const int ky = t / g->kw, kx = t % g->kw;
        int y0, y1, x0, x1;
        cvae__conv_valid_range(ky, g->pad_top, 1, h, h, &y0, &y1);
        cvae__conv_valid_range(kx, g->pad_left, 1, w, w, &x0, &x1);
        /* position (y, x) reads pixel (y + ky - pad_top, x + kx - pad_left) */
        const size_t in0 = (size_t)(y0 + ky - g->pad_top) * (size_t)w + (size_t)(x0 + kx - g->pad_left);
        const size_t out0 = (size_t)y0 * (size_t)w + (size_t)x0;
        for (int cb = 0; cb < l.ncb; cb++)
            for (int ob = 0; ob < l.nob; ob++)
                dw_tile(y1 - y0, x1 - x0, row, xt + ((size_t)cb * hw + in0) * 16,
                        dyt + ((size_t)ob * hw + out0) * 16, first, dw_sum_tile(acc, &l, t, cb, ob));
    }
    if (!last)
        return;
    const size_t ckk = taps(g);
    for (int t = 0; t < kk; t++)
        for (int cb = 0; cb < l.ncb; cb++)
            for (int ob = 0; ob < l.nob; ob++) {
                const float *tile = dw_sum_tile(acc, &l, t, cb, ob);
                for (int i = 0; i < 16 && cb * 16 + i < g->c_in; i++)
                    for (int j = 0; j < 16 && ob * 16 + j < g->c_out; j++)
                        dw[(size_t)(ob * 16 + j) * ckk + (size_t)(cb * 16 + i) * (size_t)kk +
                           (size_t)t] = tile[i * 16 + j];
            }
}

/* Reported to a benchmark's trace as the GEMM it replaces. */
void cvae__conv_direct_dw(const cvae__conv_geom *g, const float *img, const float *dy, int first,
                          int last, float *dw, float *work)
{
    if (!cvae__gemm_tracing()) {
        direct_dw_run(g, img, dy, first, last, dw, work);
        return;
    }
    const int k = (int)taps(g), n = g->h_out * g->w_out;
    const cvae__gemm_call call = {0, 1, g->c_out, k, n, n, n, k, 1.0f, first ? 0.0f : 1.0f};
    cvae__gemm_trace_report(&call, 0);
    direct_dw_run(g, img, dy, first, last, dw, work);
    cvae__gemm_trace_report(&call, 1);
}
#else
int cvae__conv_direct_ok(const cvae__conv_geom *g)
{
    (void)g;
    return 0;
}

void cvae__conv_direct(const cvae__conv_geom *g, const float *img, const float *ap, float *y,
                       float *work)
{
    (void)g;
    (void)img;
    (void)ap;
    (void)y;
    (void)work;
}

int cvae__conv_direct_dw_ok(const cvae__conv_geom *g)
{
    (void)g;
    return 0;
}

void cvae__conv_direct_dw(const cvae__conv_geom *g, const float *img, const float *dy, int first,
                          int last, float *dw, float *work)
{
    (void)g;
    (void)img;
    (void)dy;
    (void)first;
    (void)last;
    (void)dw;
    (void)work;
}
#endif
