/* The im2col matrix of conv.h's geometries, stored (cvae__im2col) or
 * gathered panel by panel straight into the GEMM micro-kernel
 * (cvae__implicit_conv), and col2im. */
#include "layers/im2col.h"

#include <stdint.h>
#include <string.h>

#include "core/gemm.h"
#include "layers/conv_direct.h"
#include "core/transpose16.h"

/* Stride-1 convolutions whose output is as wide as their input (the
 * model's "same" convolutions) map output (oy, ox) to input (oy + dy,
 * ox + dx) for a fixed kernel tap, and output and input rows have the same
 * stride. The valid part of a whole im2col row is then one contiguous run of
 * the input plane shifted by dy * w + dx, except for the few columns that
 * wrap around a row edge: copying (or adding) it in one run and patching
 * those columns replaces h_out short copies per tap with one long one. */
static int rows_shift(const cvae__conv_geom *g)
{
    return g->stride == 1 && g->w_out == g->w_in;
}

/* The run of kernel tap (ky, kx) for rows_shift geometries: output
 * positions [a, e) read the input plane at position + shift; rows
 * [ylo, yhi) and columns [xlo, xhi) are the valid ones. */
typedef struct shift_run {
    size_t a, e;
    ptrdiff_t shift;
    int ylo, yhi, xlo, xhi;
} shift_run;

/* The run of a tap; 0 if it reads only padding. im2col and col2im walk the
 * taps with it in the same way. */
static inline int tap_run(const cvae__conv_geom *g, int ky, int kx, shift_run *s)
{
    cvae__conv_valid_range(ky, g->pad_top, 1, g->h_in, g->h_out, &s->ylo, &s->yhi);
    cvae__conv_valid_range(kx, g->pad_left, 1, g->w_in, g->w_out, &s->xlo, &s->xhi);
    if (s->ylo >= s->yhi || s->xlo >= s->xhi)
        return 0;
    const size_t w = (size_t)g->w_out;
    s->a = (size_t)s->ylo * w + (size_t)s->xlo;
    s->e = (size_t)(s->yhi - 1) * w + (size_t)s->xhi;
    s->shift = (ptrdiff_t)(ky - g->pad_top) * (ptrdiff_t)w + (kx - g->pad_left);
    return 1;
}

/* Zero the wrapped columns of a run: columns before xlo in every valid row
 * but the first, and from xhi on in every valid row but the last. */
static void zero_wrapped(float *row, int w, const shift_run *s)
{
    for (int oy = s->ylo; oy < s->yhi; oy++) {
        float *r = row + (size_t)oy * (size_t)w;
        if (oy > s->ylo)
            for (int ox = 0; ox < s->xlo; ox++)
                r[ox] = 0.0f;
        if (oy < s->yhi - 1)
            for (int ox = s->xhi; ox < w; ox++)
                r[ox] = 0.0f;
    }
}

static void im2col_shift(const cvae__conv_geom *g, const float *img, float *col)
{
    const size_t hw = (size_t)g->h_out * (size_t)g->w_out;
    const size_t plane = (size_t)g->h_in * (size_t)g->w_in;
    float *row = col;
    for (int c = 0; c < g->c_in; c++)
        for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++, row += hw) {
                shift_run s;
                if (!tap_run(g, ky, kx, &s)) {
                    memset(row, 0, hw * sizeof *row);
                    continue;
                }
                const float *src = img + (size_t)c * plane;
                memset(row, 0, s.a * sizeof *row);
                memcpy(row + s.a, src + ((ptrdiff_t)s.a + s.shift), (s.e - s.a) * sizeof *row);
                memset(row + s.e, 0, (hw - s.e) * sizeof *row);
                zero_wrapped(row, g->w_out, &s);
            }
}

/* col2im for rows_shift geometries. It zeroes the wrapped columns of col
 * and then adds every run in one go: the zeroed entries land on valid
 * pixels of the neighbouring row and add nothing. */
static void col2im_shift(const cvae__conv_geom *g, float *col, float *img)
{
    const size_t hw = (size_t)g->h_out * (size_t)g->w_out;
    const size_t plane = (size_t)g->h_in * (size_t)g->w_in;
    float *row = col;
    for (int c = 0; c < g->c_in; c++)
        for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++, row += hw) {
                shift_run s;
                if (!tap_run(g, ky, kx, &s))
                    continue;
                zero_wrapped(row, g->w_out, &s);
                float *restrict d = img + (size_t)c * plane + ((ptrdiff_t)s.a + s.shift);
                const float *restrict v = row + s.a;
                const size_t len = s.e - s.a;
                for (size_t i = 0; i < len; i++)
                    d[i] += v[i];
            }
}

void cvae__im2col(const cvae__conv_geom *g, const float *img, float *col)
{
    if (rows_shift(g)) {
        im2col_shift(g, img, col);
        return;
    }
    const int s = g->stride, w_in = g->w_in, h_in = g->h_in, w_out = g->w_out;
    const size_t hw_out = (size_t)g->h_out * (size_t)w_out;
    const size_t plane = (size_t)h_in * (size_t)w_in;
    size_t r = 0;
    for (int c = 0; c < g->c_in; c++) {
        const float *src = img + (size_t)c * plane;
        for (int ky = 0; ky < g->kh; ky++) {
            for (int kx = 0; kx < g->kw; kx++, r++) {
                float *row = col + r * hw_out;
                int lo, hi;
                cvae__conv_valid_range(kx, g->pad_left, s, w_in, w_out, &lo, &hi);
                const int ix0 = kx - g->pad_left; /* input column of ox = 0 */
                for (int oy = 0; oy < g->h_out; oy++) {
                    float *restrict dst = row + (size_t)oy * (size_t)w_out;
                    const int iy = oy * s - g->pad_top + ky;
                    if (iy < 0 || iy >= h_in || lo == hi) {
                        for (int ox = 0; ox < w_out; ox++)
                            dst[ox] = 0.0f;
                        continue;
                    }
                    const float *restrict line = src + (size_t)iy * (size_t)w_in;
                    for (int ox = 0; ox < lo; ox++)
                        dst[ox] = 0.0f;
                    if (s == 1) {
                        for (int ox = lo; ox < hi; ox++)
                            dst[ox] = line[ox + ix0];
                    } else {
                        for (int ox = lo; ox < hi; ox++)
                            dst[ox] = line[ox * s + ix0];
                    }
                    for (int ox = hi; ox < w_out; ox++)
                        dst[ox] = 0.0f;
                }
            }
        }
    }
}

void cvae__col2im(const cvae__conv_geom *g, const float *col, float *img)
{
    const int s = g->stride, w_in = g->w_in, h_in = g->h_in, w_out = g->w_out;
    const size_t hw_out = (size_t)g->h_out * (size_t)w_out;
    const size_t plane = (size_t)h_in * (size_t)w_in;
    size_t r = 0;
    for (int c = 0; c < g->c_in; c++) {
        float *dst = img + (size_t)c * plane;
        for (int ky = 0; ky < g->kh; ky++) {
            for (int kx = 0; kx < g->kw; kx++, r++) {
                const float *row = col + r * hw_out;
                int lo, hi;
                cvae__conv_valid_range(kx, g->pad_left, s, w_in, w_out, &lo, &hi);
                const int ix0 = kx - g->pad_left;
                for (int oy = 0; oy < g->h_out; oy++) {
                    const int iy = oy * s - g->pad_top + ky;
                    if (iy < 0 || iy >= h_in)
                        continue;
                    const float *restrict srow = row + (size_t)oy * (size_t)w_out;
                    float *restrict line = dst + (size_t)iy * (size_t)w_in;
                    if (s == 1) {
                        for (int ox = lo; ox < hi; ox++)
                            line[ox + ix0] += srow[ox];
                    } else {
                        for (int ox = lo; ox < hi; ox++)
                            line[ox * s + ix0] += srow[ox];
                    }
                }
            }
        }
    }
}

void cvae__col2im_scratch(const cvae__conv_geom *g, float *col, float *img)
{
    memset(img, 0, (size_t)g->c_in * (size_t)g->h_in * (size_t)g->w_in * sizeof *img);
    if (rows_shift(g))
        col2im_shift(g, col, img);
    else
        cvae__col2im(g, col, img);
}

/* ---- implicit im2col ----
 * For stride-1 convs whose output rows are as wide as their input rows
 * (rows_shift), the GEMM's B operand is never stored. Each k x 16
 * micro-panel of it is gathered straight from the image (16 consecutive
 * output positions of a kernel tap are 16 consecutive input values, masked
 * where they fall into the padding) into a buffer that stays in L1, and fed
 * to the GEMM micro-kernel (cvae__gemm_tile); the weights are packed once
 * per call. That skips writing and re-reading a
 * c_in*kh*kw x h*w im2col matrix (627 KB per image for 32 channels 5x5 at
 * 14x14) and BLIS's repacking of it, which kept these products at about
 * half the micro-kernel's speed. Needs a micro-kernel of ours (x86 with
 * AVX2); kernels up to IMPL_MAX_K wide. */
#define IMPL_MAX_K 16
#define IMPL_KC CVAE__IMPLICIT_KC
#define IMPL_KC_MAX CVAE__IMPLICIT_KC_MAX /* a last k block up to this long is not split */

int cvae__implicit_ok(const cvae__conv_geom *g)
{
    return cvae__gemm_tile_mr() > 0 && rows_shift(g) && g->kh <= IMPL_MAX_K &&
           g->kw <= IMPL_MAX_K;
}

size_t cvae__implicit_a_floats(int m, int k)
{
    const int mr = cvae__gemm_tile_mr();
    return mr > 0 ? (size_t)((m + mr - 1) / mr * mr) * (size_t)k : 0;
}

static int pack_avx512(const float *w, int m, int k, float *ap);

/* MR-row panels for cvae__gemm_tile: panel i at ap + i*MR*k, its column p
 * at + p*MR, rows past m zero. */
void cvae__implicit_pack(const float *w, int m, int k, float *ap)
{
    const int mr = cvae__gemm_tile_mr();
    if (mr == 16 && pack_avx512(w, m, k, ap))
        return;
    for (int i0 = 0; i0 < m; i0 += mr) {
        float *panel = ap + (size_t)i0 * (size_t)k;
        for (int p = 0; p < k; p++)
            for (int r = 0; r < mr; r++)
                panel[(size_t)p * (size_t)mr + (size_t)r] =
                    i0 + r < m ? w[(size_t)(i0 + r) * (size_t)k + (size_t)p] : 0.0f;
    }
}

/* Per call: for tap t = ky*kw + kx, the offset of its input from the output
 * position; per panel of 16 output positions j0..j0+15, which of them are
 * valid per kernel row (rowm, also false past the last position) and per
 * kernel column (colm). A lane is read only where both are set, and valid
 * lanes lie inside the input plane. */
typedef struct impl_taps {
    int kh, kw, kk, n;
    size_t plane;
    ptrdiff_t shift[IMPL_MAX_K * IMPL_MAX_K];
    int ylo[IMPL_MAX_K], yhi[IMPL_MAX_K], xlo[IMPL_MAX_K], xhi[IMPL_MAX_K];
    uint16_t rowm[IMPL_MAX_K], colm[IMPL_MAX_K];
} impl_taps;

static void taps_init(const cvae__conv_geom *g, impl_taps *t)
{
    t->kh = g->kh;
    t->kw = g->kw;
    t->kk = g->kh * g->kw;
    t->n = g->h_out * g->w_out;
    t->plane = (size_t)g->h_in * (size_t)g->w_in;
    for (int ky = 0; ky < g->kh; ky++)
        cvae__conv_valid_range(ky, g->pad_top, 1, g->h_in, g->h_out, &t->ylo[ky], &t->yhi[ky]);
    for (int kx = 0; kx < g->kw; kx++)
        cvae__conv_valid_range(kx, g->pad_left, 1, g->w_in, g->w_out, &t->xlo[kx], &t->xhi[kx]);
    for (int ky = 0; ky < g->kh; ky++)
        for (int kx = 0; kx < g->kw; kx++)
            t->shift[ky * g->kw + kx] =
                (ptrdiff_t)(ky - g->pad_top) * g->w_in + (kx - g->pad_left);
}

static void taps_panel(impl_taps *t, int w, int j0)
{
    /* one division, then the row and column of each lane by stepping (this
     * runs once per 16 output positions of every image) */
    int oy[16], ox[16];
    int y = j0 / w, x = j0 % w;
    for (int q = 0; q < 16; q++) {
        oy[q] = y;
        ox[q] = x;
        if (++x == w) {
            x = 0;
            y++;
        }
    }
    for (int ky = 0; ky < t->kh; ky++) {
        unsigned m = 0;
        for (int q = 0; q < 16; q++)
            m |= (unsigned)(j0 + q < t->n && oy[q] >= t->ylo[ky] && oy[q] < t->yhi[ky]) << q;
        t->rowm[ky] = (uint16_t)m;
    }
    for (int kx = 0; kx < t->kw; kx++) {
        unsigned m = 0;
        for (int q = 0; q < 16; q++)
            m |= (unsigned)(ox[q] >= t->xlo[kx] && ox[q] < t->xhi[kx]) << q;
        t->colm[kx] = (uint16_t)m;
    }
}

/* The 16 lanes of one panel row the slow way: lanes near the ends of the
 * plane, where a full 16-wide load would leave it. */
static void fill_lanes(const float *src, ptrdiff_t off, unsigned m, float *dst)
{
    for (int q = 0; q < 16; q++)
        dst[q] = (m >> q) & 1u ? src[off + q] : 0.0f;
}

/* Rows p0..p0+kc of B (taps (c, ky, kx) in that order) for output positions
 * j0..j0+15, into bp (row p at bp + p*16). Generic C; the x86 variants
 * below do the same with one load and a mask per row. */
#define FILL_PANEL_BODY(ROW)                                                                   \
    int c = p0 / t->kk, tap = p0 % t->kk;                                                     \
    int ky = tap / t->kw, kx = tap % t->kw;                                                    \
    const float *src = img + (size_t)c * t->plane;                                            \
    for (int p = 0; p < kc; p++) {                                                             \
        const unsigned m = (unsigned)t->rowm[ky] & t->colm[kx];                                \
        const ptrdiff_t off = j0 + t->shift[tap];                                              \
        float *dst = bp + (size_t)p * 16;                                                      \
        ROW;                                                                                   \
        tap++;                                                                                 \
        if (++kx == t->kw) {                                                                   \
            kx = 0;                                                                            \
            if (++ky == t->kh) {                                                               \
                ky = 0;                                                                        \
                tap = 0;                                                                       \
                src += t->plane;                                                               \
            }                                                                                  \
        }                                                                                      \
    }

static int in_plane(const impl_taps *t, ptrdiff_t off)
{
    return off >= 0 && (size_t)off + 16 <= t->plane;
}

static void fill_panel_c(const impl_taps *t, const float *img, int p0, int kc, int j0, float *bp)
{
    FILL_PANEL_BODY(if (m == 0xffffu && in_plane(t, off))
                        memcpy(dst, src + off, 16 * sizeof *dst);
                    else fill_lanes(src, off, m, dst);)
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

__attribute__((target("avx512f"))) static void fill_panel_avx512(const impl_taps *t,
                                                                  const float *img, int p0,
                                                                  int kc, int j0, float *bp)
{
    FILL_PANEL_BODY(if (m == 0xffffu && in_plane(t, off)) _mm512_storeu_ps(
                        dst, _mm512_loadu_ps(src + off));
                    else if (m && in_plane(t, off)) _mm512_storeu_ps(
                        dst, _mm512_maskz_mov_ps((__mmask16)m, _mm512_loadu_ps(src + off)));
                    else if (m) fill_lanes(src, off, m, dst);
                    else _mm512_storeu_ps(dst, _mm512_setzero_ps());)
}

__attribute__((target("avx2"))) static void fill_panel_avx2(const impl_taps *t, const float *img,
                                                            int p0, int kc, int j0, float *bp)
{
    const __m256i bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    FILL_PANEL_BODY(if (m && in_plane(t, off)) {
        const __m256i lo = _mm256_cmpeq_epi32(
            _mm256_and_si256(_mm256_set1_epi32((int)(m & 0xffu)), bits), bits);
        const __m256i hi = _mm256_cmpeq_epi32(
            _mm256_and_si256(_mm256_set1_epi32((int)(m >> 8)), bits), bits);
        _mm256_storeu_ps(dst, _mm256_and_ps(_mm256_castsi256_ps(lo), _mm256_loadu_ps(src + off)));
        _mm256_storeu_ps(dst + 8, _mm256_and_ps(_mm256_castsi256_ps(hi),
                                                _mm256_loadu_ps(src + off + 8)));
    } else fill_lanes(src, off, m, dst);)
}
#endif

static void fill_panel(const impl_taps *t, const float *img, int p0, int kc, int j0, float *bp)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* MR tells which kernel cvae__gemm_tile runs, hence which ISA we have. */
    const int mr = cvae__gemm_tile_mr();
    if (mr == 16) {
        fill_panel_avx512(t, img, p0, kc, j0, bp);
        return;
    }
    if (mr > 0) {
        fill_panel_avx2(t, img, p0, kc, j0, bp);
        return;
    }
#endif
    fill_panel_c(t, img, p0, kc, j0, bp);
}

static void implicit_conv_run(const cvae__conv_geom *g, const float *img, const float *ap,
                              float *bp, float *y)
{
    impl_taps t;
    taps_init(g, &t);
    const int m = g->c_out, k = g->c_in * g->kh * g->kw, n = t.n, mr = cvae__gemm_tile_mr();
    for (int j0 = 0; j0 < n; j0 += 16) {
        taps_panel(&t, g->w_out, j0);
        const int nc = n - j0 < 16 ? n - j0 : 16;
        for (int p0 = 0; p0 < k;) {
            const int kc = k - p0 <= IMPL_KC_MAX ? k - p0 : IMPL_KC;
            fill_panel(&t, img, p0, kc, j0, bp);
            for (int i0 = 0; i0 < m; i0 += mr)
                cvae__gemm_tile(m - i0 < mr ? m - i0 : mr, nc, kc,
                                ap + (size_t)i0 * (size_t)k + (size_t)p0 * (size_t)mr, bp,
                                p0 ? 1.0f : 0.0f, y + (size_t)i0 * (size_t)n + j0, n);
            p0 += kc;
        }
    }
}

/* Benchmarks see the product as the GEMM it replaces (W times an im2col
 * matrix), so bench_train can time that GEMM next to it. */
size_t cvae__implicit_b_floats(const cvae__conv_geom *g)
{
    const size_t direct = cvae__conv_direct_ok(g) ? cvae__conv_direct_work_floats(g) : 0;
    return direct > CVAE__IMPLICIT_B_FLOATS ? direct : CVAE__IMPLICIT_B_FLOATS;
}

void cvae__implicit_conv_gathered(const cvae__conv_geom *g, const float *img, const float *ap,
                                  float *bp, float *y)
{
    implicit_conv_run(g, img, ap, bp, y);
}

static void implicit_or_direct(const cvae__conv_geom *g, const float *img, const float *ap,
                               float *bp, float *y)
{
    if (cvae__conv_direct_ok(g))
        cvae__conv_direct(g, img, ap, y, bp);
    else
        implicit_conv_run(g, img, ap, bp, y);
}

void cvae__implicit_conv(const cvae__conv_geom *g, const float *img, const float *ap, float *bp,
                         float *y)
{
    if (!cvae__gemm_tracing()) {
        implicit_or_direct(g, img, ap, bp, y);
        return;
    }
    const int k = g->c_in * g->kh * g->kw, n = g->h_out * g->w_out;
    const cvae__gemm_call call = {0, 0, g->c_out, n, k, k, n, n, 1.0f, 0.0f};
    cvae__gemm_trace_report(&call, 0);
    implicit_or_direct(g, img, ap, bp, y);
    cvae__gemm_trace_report(&call, 1);
}

/* ---- implicit im2col for the weight gradient -----------------------------
 * dW (c_out x ckk) = dy (c_out x hw) times im2col^T (hw x ckk): the inner
 * dimension runs over output positions. A is dy, packed once per image into
 * MR-row panels (cvae__implicit_pack); a B panel is 16 taps wide and runs
 * over a block of positions, so its rows are the columns of the forward
 * pass's panels: each 16 taps x 16 positions block is gathered with
 * fill_panel and transposed. The validity masks of each 16-position block
 * do not depend on the taps; they are computed once per call into the
 * workspace rather than once per panel. Workspace: packed dy, one B panel,
 * the masks. */

static size_t dw_ap_floats(const cvae__conv_geom *g)
{
    return (cvae__implicit_a_floats(g->c_out, g->h_out * g->w_out) + 15) / 16 * 16;
}

static size_t dw_blocks(const cvae__conv_geom *g)
{
    return ((size_t)g->h_out * (size_t)g->w_out + 15) / 16;
}

size_t cvae__implicit_dw_floats(const cvae__conv_geom *g)
{
    const size_t masks = dw_blocks(g) * (size_t)(g->kh + g->kw); /* uint16 each */
    return dw_ap_floats(g) + CVAE__IMPLICIT_B_FLOATS + (masks + 1) / 2 + 16;
}

/* dst row q (q < rows, 16 floats at dst + q*16) = column q of the 16 x 16
 * block src. */
static void transpose16_c(const float *src, int rows, float *dst)
{
    for (int q = 0; q < rows; q++)
        for (int r = 0; r < 16; r++)
            dst[(size_t)q * 16 + (size_t)r] = src[(size_t)r * 16 + (size_t)q];
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx512f"))) static void transpose16_avx512(const float *src, int rows,
                                                                  float *dst)
{
    __m512 a[16];
    for (int r = 0; r < 16; r++)
        a[r] = _mm512_loadu_ps(src + (size_t)r * 16);
    tr16_avx512(a);
    for (int q = 0; q < rows; q++)
        _mm512_storeu_ps(dst + (size_t)q * 16, a[q]);
}

/* cvae__implicit_pack for MR 16: a transpose of 16 x 16 blocks (the
 * weight gradient packs its output gradient this way once per image, where
 * an element-by-element copy cost a third of the product's time). */
__attribute__((target("avx512f"))) static void pack_avx512_run(const float *w, int m, int k,
                                                               float *ap)
{
    for (int i0 = 0; i0 < m; i0 += 16) {
        float *panel = ap + (size_t)i0 * (size_t)k;
        const int nr = m - i0 < 16 ? m - i0 : 16;
        for (int p0 = 0; p0 < k; p0 += 16) {
            const int nc = k - p0 < 16 ? k - p0 : 16;
            const __mmask16 cm = (__mmask16)((1u << nc) - 1u);
            __m512 a[16];
            for (int r = 0; r < 16; r++)
                a[r] = r < nr ? _mm512_maskz_loadu_ps(
                                    cm, w + (size_t)(i0 + r) * (size_t)k + (size_t)p0)
                              : _mm512_setzero_ps();
            tr16_avx512(a);
            for (int q = 0; q < nc; q++)
                _mm512_storeu_ps(panel + (size_t)(p0 + q) * 16, a[q]);
        }
    }
}
#endif

static int pack_avx512(const float *w, int m, int k, float *ap)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    pack_avx512_run(w, m, k, ap);
    return 1;
#else
    (void)w, (void)m, (void)k, (void)ap;
    return 0;
#endif
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* One 16-position block of a weight-gradient B panel straight from the
 * image: tap r of the block reads img + toff[r] + j0 under the mask
 * rowm[tky[r]] & colm[tkx[r]] (masks: kh row masks, then kw column masks);
 * a masked load does not touch the lanes it leaves out, so only a block
 * reaching past either end of the image takes the slow way. */
__attribute__((target("avx512f"))) static void dw_block_avx512(
    const float *img, size_t img_len, const ptrdiff_t *toff, const uint8_t *tky,
    const uint8_t *tkx, const uint16_t *masks, int kh, int nt, int j0, int rows, float *dst)
{
    __m512 a[16];
    for (int r = 0; r < 16; r++) {
        if (r >= nt) {
            a[r] = _mm512_setzero_ps();
            continue;
        }
        const unsigned m = (unsigned)masks[tky[r]] & masks[kh + tkx[r]];
        const ptrdiff_t off = toff[r] + j0;
        if (m && off >= 0 && (size_t)off + 16 <= img_len) {
            a[r] = _mm512_maskz_loadu_ps((__mmask16)m, img + off);
        } else {
            float tmp[16];
            fill_lanes(img, off, m, tmp);
            a[r] = _mm512_loadu_ps(tmp);
        }
    }
    tr16_avx512(a);
    for (int q = 0; q < rows; q++)
        _mm512_storeu_ps(dst + (size_t)q * 16, a[q]);
}
#endif

static void transpose16(const float *src, int rows, float *dst)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (cvae__gemm_tile_mr() == 16) { /* the AVX-512 kernel runs: AVX-512F is there */
        transpose16_avx512(src, rows, dst);
        return;
    }
#endif
    transpose16_c(src, rows, dst);
}

static void implicit_dw_run(const cvae__conv_geom *g, const float *img, const float *dy,
                            float beta, float *dw, float *work)
{
    impl_taps t;
    taps_init(g, &t);
    const int m = g->c_out, k = g->c_in * g->kh * g->kw, n = t.n, mr = cvae__gemm_tile_mr();
    float *ap = work, *bp = work + dw_ap_floats(g);
    uint16_t *masks = (uint16_t *)(void *)(bp + CVAE__IMPLICIT_B_FLOATS);
    const int nm = g->kh + g->kw;
    for (int j0 = 0, b = 0; j0 < n; j0 += 16, b++) {
        taps_panel(&t, g->w_out, j0);
        memcpy(masks + (size_t)b * (size_t)nm, t.rowm, (size_t)g->kh * sizeof *masks);
        memcpy(masks + (size_t)b * (size_t)nm + g->kh, t.colm, (size_t)g->kw * sizeof *masks);
    }
    cvae__implicit_pack(dy, m, n, ap);
    _Alignas(64) float blk[256];
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    const int avx512 = mr == 16; /* the AVX-512 kernel runs: AVX-512F is there */
    const size_t img_len = (size_t)g->c_in * t.plane;
    ptrdiff_t toff[16];
    uint8_t tky[16], tkx[16];
#endif
    for (int t0 = 0; t0 < k; t0 += 16) {
        const int nt = k - t0 < 16 ? k - t0 : 16;
        if (nt < 16)
            memset(blk + (size_t)nt * 16, 0, (size_t)(16 - nt) * 16 * sizeof *blk);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        for (int r = 0; r < nt; r++) {
            const int c = (t0 + r) / t.kk, tap = (t0 + r) % t.kk;
            toff[r] = (ptrdiff_t)((size_t)c * t.plane) + t.shift[tap];
            tky[r] = (uint8_t)(tap / t.kw);
            tkx[r] = (uint8_t)(tap % t.kw);
        }
#endif
        for (int q0 = 0; q0 < n;) {
            const int kc = n - q0 <= IMPL_KC_MAX ? n - q0 : IMPL_KC;
            for (int j0 = q0; j0 < q0 + kc; j0 += 16) {
                const uint16_t *mb = masks + (size_t)(j0 / 16) * (size_t)nm;
                const int rows = q0 + kc - j0 < 16 ? q0 + kc - j0 : 16;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
                if (avx512) {
                    dw_block_avx512(img, img_len, toff, tky, tkx, mb, g->kh, nt, j0, rows,
                                    bp + (size_t)(j0 - q0) * 16);
                    continue;
                }
#endif
                memcpy(t.rowm, mb, (size_t)g->kh * sizeof *mb);
                memcpy(t.colm, mb + g->kh, (size_t)g->kw * sizeof *mb);
                fill_panel(&t, img, t0, nt, j0, blk);
                transpose16(blk, rows, bp + (size_t)(j0 - q0) * 16);
            }
            for (int i0 = 0; i0 < m; i0 += mr)
                cvae__gemm_tile(m - i0 < mr ? m - i0 : mr, nt, kc,
                                ap + (size_t)i0 * (size_t)n + (size_t)q0 * (size_t)mr, bp,
                                q0 ? 1.0f : beta, dw + (size_t)i0 * (size_t)k + t0, k);
            q0 += kc;
        }
    }
}

/* Reported to a benchmark's trace as the GEMM it replaces. */
void cvae__implicit_dw(const cvae__conv_geom *g, const float *img, const float *dy, float beta,
                       float *dw, float *work)
{
    if (!cvae__gemm_tracing()) {
        implicit_dw_run(g, img, dy, beta, dw, work);
        return;
    }
    const int k = g->c_in * g->kh * g->kw, n = g->h_out * g->w_out;
    const cvae__gemm_call call = {0, 1, g->c_out, k, n, n, n, k, 1.0f, beta};
    cvae__gemm_trace_report(&call, 0);
    implicit_dw_run(g, img, dy, beta, dw, work);
    cvae__gemm_trace_report(&call, 1);
}
