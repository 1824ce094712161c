/* 2-D convolution (see conv.h). Beyond what conv.h promises, a NULL bias
 * means "no bias" and NULL dw/db skip those gradients, so frozen layers
 * (conv_trainable = 0) only pay for dx. */
#include "layers/conv.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "core/cpu.h"
#include "core/error.h"
#include "core/gemm.h"
#include "core/threads.h"
#include "layers/conv_direct.h"
#include "layers/conv_small.h"
#include "layers/conv_wino.h"
#include "layers/im2col.h"

/* A 1x1 stride-1 unpadded conv reads the image itself as its im2col matrix. */
int cvae__conv_col_is_identity(const cvae__conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->stride == 1 && g->pad_top == 0 && g->pad_left == 0;
}

/* Where implicit im2col (im2col.c) can run, it does, except for a
 * 1x1 conv, whose im2col matrix is the image itself. */
int cvae__conv_implicit_ok(const cvae__conv_geom *g)
{
    return cvae__implicit_ok(g) && !cvae__conv_col_is_identity(g);
}

/* The adjoint of a conv (its dX, and a transposed conv's forward) is
 * generally GEMM + col2im: col = W^T dy, a GEMM whose inner dimension is
 * only c_out (16 or 32 in the default model: short, store-bound
 * micro-kernel calls),
 * followed by a scatter-add of a c_in*kh*kw-row matrix. For a stride-1 conv
 * padded to keep its size with an odd kernel, the adjoint is itself such a
 * conv, with the channels swapped and the kernel turned by 180 degrees: a
 * GEMM as long as the forward one, no scatter. Implicitly always; through
 * an im2col of dy only when that matrix is no larger than the input's
 * (c_out <= c_in). */
static int adjoint_is_conv(const cvae__conv_geom *g)
{
    return g->stride == 1 && g->kh % 2 == 1 && g->kw % 2 == 1 &&
           g->pad_top == (g->kh - 1) / 2 && g->pad_left == (g->kw - 1) / 2 &&
           g->h_out == g->h_in && g->w_out == g->w_in && !(g->kh == 1 && g->kw == 1) &&
           (g->c_out <= g->c_in || cvae__conv_implicit_ok(g));
}

/* The conv whose forward pass is g's adjoint (same sizes, since h_out ==
 * h_in and w_out == w_in). */
static cvae__conv_geom adjoint_geom(const cvae__conv_geom *g)
{
    cvae__conv_geom a = *g;
    a.c_in = g->c_out;
    a.c_out = g->c_in;
    return a;
}

/* wf[ci][co][ky][kx] = w[co][ci][kh-1-ky][kw-1-kx]: the adjoint conv's
 * weights, [c_in][c_out*kh*kw] row-major. */
static void rotate_weights(const cvae__conv_geom *g, const float *w, float *wf)
{
    const int kk = g->kh * g->kw;
    for (int co = 0; co < g->c_out; co++)
        for (int ci = 0; ci < g->c_in; ci++) {
            const float *src = w + ((size_t)co * (size_t)g->c_in + (size_t)ci) * (size_t)kk;
            float *dst = wf + ((size_t)ci * (size_t)g->c_out + (size_t)co) * (size_t)kk;
            for (int t = 0; t < kk; t++)
                dst[t] = src[kk - 1 - t];
        }
}

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

cvae__conv_ws cvae__conv_ws_of(const cvae__conv_geom *g)
{
    cvae__conv_ws l;
    const size_t kk = (size_t)g->kh * (size_t)g->kw;
    size_t ap = 0, bp = 0, dw = 0;
    if (cvae__conv_implicit_ok(g)) {
        dw = cvae__implicit_dw_floats(g);
        if (cvae__conv_direct_ok(g) && cvae__conv_direct_dw_floats(g) > dw)
            dw = cvae__conv_direct_dw_floats(g);
        ap = cvae__implicit_a_floats(g->c_out, g->c_in * g->kh * g->kw);
        if (adjoint_is_conv(g)) {
            const size_t adj = cvae__implicit_a_floats(g->c_in, g->c_out * g->kh * g->kw);
            ap = adj > ap ? adj : ap;
        }
        bp = cvae__implicit_b_floats(g);
        if (adjoint_is_conv(g)) {
            const cvae__conv_geom a = adjoint_geom(g);
            const size_t adj = cvae__implicit_b_floats(&a);
            bp = adj > bp ? adj : bp;
        }
    }
    /* Winograd: the transformed weights of the layer or of its adjoint, and
     * the per-image work (in the B-panel slot, which the same calls would
     * otherwise use) */
    size_t wu = 0;
    if (cvae__conv_wino_ok(g)) {
        wu = cvae__conv_wino_u_floats(g);
        if (cvae__conv_wino_work_floats(g) > bp)
            bp = cvae__conv_wino_work_floats(g);
        if (cvae__conv_wino_dw_floats(g) > dw)
            dw = cvae__conv_wino_dw_floats(g);
    }
    if (adjoint_is_conv(g)) {
        const cvae__conv_geom a = adjoint_geom(g);
        if (cvae__conv_wino_ok(&a)) {
            if (cvae__conv_wino_u_floats(&a) > wu)
                wu = cvae__conv_wino_u_floats(&a);
            if (cvae__conv_wino_work_floats(&a) > bp)
                bp = cvae__conv_wino_work_floats(&a);
        }
    }
    l.col = 0;
    size_t col = cvae__conv_col_floats(g);
    if (cvae__conv_small_ok(g) && cvae__conv_small_work_floats(g) > col)
        col = cvae__conv_small_work_floats(g);
    l.wf = round16(col);
    l.ap = l.wf + (adjoint_is_conv(g) ? round16((size_t)g->c_out * (size_t)g->c_in * kk) : 0);
    l.wu = l.ap + round16(ap);
    l.bp = l.wu + round16(wu);
    l.dw = l.bp + round16(bp);
    l.total = l.dw + dw;
    return l;
}

size_t cvae__conv_work_floats(const cvae__conv_geom *g) { return cvae__conv_ws_of(g).total; }

/* y += b per channel, then (relu) y = max(y, 0), in one pass over the image
 * the GEMM has just written, while it is still in cache. `y < 0 ? 0 : y`
 * keeps a NaN a NaN, as cvae__relu_forward does. */
void cvae__conv_bias_relu(int channels, size_t plane, const float *b, int relu, float *y)
{
    for (int c = 0; c < channels; c++) {
        const float bc = b ? b[c] : 0.0f;
        float *restrict p = y + (size_t)c * plane;
        if (relu)
            for (size_t i = 0; i < plane; i++) {
                const float v = p[i] + bc;
                p[i] = v < 0.0f ? 0.0f : v;
            }
        else if (b)
            for (size_t i = 0; i < plane; i++)
                p[i] += bc;
    }
}

/* Sum of a plane in double, optionally (y != NULL) first applying the ReLU
 * derivative in place: dy = 0 where the forward output y was not positive
 * (`y > 0` is false for a NaN y, as in cvae__relu_backward). Eight
 * independent partial sums, element j going to sum j % 8 (vectorisable,
 * and no chain of dependent additions) instead of one running sum: a
 * different order of exact-ish double additions, so the float result can
 * differ from a sequential sum in the last bit, rarely. */
static double plane_sum_c(const float *y, float *dy, size_t len, size_t j, double acc[8])
{
    for (; j + 8 <= len; j += 8)
        for (int q = 0; q < 8; q++) {
            const float d = !y || y[j + q] > 0.0f ? dy[j + q] : 0.0f;
            if (y)
                dy[j + q] = d;
            acc[q] += (double)d;
        }
    double t = 0.0;
    for (; j < len; j++) {
        const float d = !y || y[j] > 0.0f ? dy[j] : 0.0f;
        if (y)
            dy[j] = d;
        t += (double)d;
    }
    return t + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define CONV_X86 1

/* The same sums, sixteen floats a step: lane q of the double vector is
 * partial sum q, fed elements j + q and then j + 8 + q, the order of the
 * loop above, so the result is the same to the bit. Scalar compilation of
 * that loop (the masked in-place store defeats the vectoriser) made it a
 * few percent of a training step. */
__attribute__((target("avx512f"))) static double plane_sum_avx512(const float *y, float *dy,
                                                                  size_t len)
{
    __m512d acc = _mm512_setzero_pd();
    const __m512 zero = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 16 <= len; j += 16) {
        __m512 d = _mm512_loadu_ps(dy + j);
        if (y) {
            d = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_loadu_ps(y + j), zero, _CMP_GT_OQ), d);
            _mm512_storeu_ps(dy + j, d);
        }
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(d)));
        acc = _mm512_add_pd(
            acc, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(d), 1))));
    }
    double a[8];
    _mm512_storeu_pd(a, acc);
    return plane_sum_c(y, dy, len, j, a);
}

/* Eight floats a step for CPUs without AVX-512: partial sums 0-3 and 4-7 in
 * two double vectors, element j + q to sum q, again the loop's order. */
__attribute__((target("avx2"))) static double plane_sum_avx2(const float *y, float *dy,
                                                             size_t len)
{
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    const __m256 zero = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 8 <= len; j += 8) {
        __m256 d = _mm256_loadu_ps(dy + j);
        if (y) {
            d = _mm256_and_ps(_mm256_cmp_ps(_mm256_loadu_ps(y + j), zero, _CMP_GT_OQ), d);
            _mm256_storeu_ps(dy + j, d);
        }
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(d)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1)));
    }
    double a[8];
    _mm256_storeu_pd(a, lo);
    _mm256_storeu_pd(a + 4, hi);
    return plane_sum_c(y, dy, len, j, a);
}
#else
#define CONV_X86 0
#endif

static double plane_sum(const float *y, float *dy, size_t len)
{
#if CONV_X86
    if (cvae__cpu_isa() >= CVAE__ISA_AVX512)
        return plane_sum_avx512(y, dy, len);
    if (cvae__cpu_isa() >= CVAE__ISA_AVX2)
        return plane_sum_avx2(y, dy, len);
#endif
    double acc[8] = {0};
    return plane_sum_c(y, dy, len, 0, acc);
}

double cvae__conv_plane_sum(const float *p, size_t len)
{
    return plane_sum(NULL, (float *)(uintptr_t)p, len);
}

/* db[c] = sum over images and positions of dy[n][c][:], accumulated in
 * double because a batch of feature maps sums 1e5-1e6 terms. */
void cvae__conv_channel_sums(int n, int channels, size_t plane, const float *dy, float *db)
{
    for (int c = 0; c < channels; c++) {
        double acc = 0.0;
        for (int i = 0; i < n; i++)
            acc += cvae__conv_plane_sum(dy + ((size_t)i * (size_t)channels + (size_t)c) * plane, plane);
        db[c] = (float)acc;
    }
}

cvae__conv_adj_plan cvae__conv_adjoint_plan(const cvae__conv_geom *g, int n, const float *w,
                                            float *col)
{
    cvae__conv_adj_plan pl = {NULL, NULL, NULL};
    if (!adjoint_is_conv(g))
        return pl;
    const cvae__conv_ws l = cvae__conv_ws_of(g);
    float *wf = col + l.wf;
    rotate_weights(g, w, wf);
    pl.wf = wf;
    const cvae__conv_geom a = adjoint_geom(g);
    if (cvae__conv_wino_pays(&a, n)) {
        cvae__conv_wino_weights(&a, wf, col + l.wu);
        pl.wu = col + l.wu;
    } else if (cvae__conv_implicit_ok(g)) {
        cvae__implicit_pack(wf, g->c_in, g->c_out * g->kh * g->kw, col + l.ap);
        pl.ap = col + l.ap;
    }
    return pl;
}

/* out = the adjoint of conv g applied to one image gy [c_out][h_out][w_out],
 * out [c_in][h_in][w_in] overwritten. col: the workspace. */
void cvae__conv_adjoint(const cvae__conv_geom *g, const float *gy, const float *w,
                         const cvae__conv_adj_plan *pl, float *out, float *col)
{
    const int ckk = g->c_in * g->kh * g->kw;
    const int hw_out = g->h_out * g->w_out;
    if (cvae__conv_col_is_identity(g)) {
        cvae__sgemm(1, 0, ckk, hw_out, g->c_out, 1.0f, w, ckk, gy, hw_out, 0.0f, out, hw_out);
    } else if (pl->wu) {
        const cvae__conv_geom a = adjoint_geom(g);
        cvae__conv_wino_forward(&a, gy, pl->wu, out, col + cvae__conv_ws_of(g).bp);
    } else if (pl->ap) {
        const cvae__conv_geom a = adjoint_geom(g);
        cvae__implicit_conv(&a, gy, pl->ap, col + cvae__conv_ws_of(g).bp, out);
    } else if (pl->wf) {
        const cvae__conv_geom a = adjoint_geom(g);
        const int akk = a.c_in * a.kh * a.kw;
        cvae__im2col(&a, gy, col);
        cvae__sgemm(0, 0, a.c_out, hw_out, akk, 1.0f, pl->wf, akk, col, hw_out, 0.0f, out,
                    hw_out);
    } else {
        cvae__sgemm(1, 0, ckk, hw_out, g->c_out, 1.0f, w, ckk, gy, hw_out, 0.0f, col, hw_out);
        cvae__col2im_scratch(g, col, out);
    }
}

static void conv_forward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                         const float *b, int relu, float *y, float *col)
{
    const int ckk = g->c_in * g->kh * g->kw;
    const int hw_out = g->h_out * g->w_out;
    const size_t x_img = (size_t)g->c_in * (size_t)g->h_in * (size_t)g->w_in;
    const size_t y_img = (size_t)g->c_out * (size_t)hw_out;
    const int direct = cvae__conv_col_is_identity(g);
    const int small = cvae__conv_small_ok(g);
    const int wino = cvae__conv_wino_pays(g, n);
    const int implicit = n > 0 && !small && !wino && cvae__conv_implicit_ok(g);
    const cvae__conv_ws l = cvae__conv_ws_of(g);
    if (implicit)
        cvae__implicit_pack(w, g->c_out, ckk, col + l.ap);
    if (wino)
        cvae__conv_wino_weights(g, w, col + l.wu);
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * x_img;
        float *yi = y + (size_t)i * y_img;
        if (small) {
            cvae__conv_small_forward(g, xi, w, b, relu, yi, col + l.col);
            continue;
        }
        if (wino) {
            cvae__conv_wino_forward(g, xi, col + l.wu, yi, col + l.bp);
        } else if (implicit) {
            cvae__implicit_conv(g, xi, col + l.ap, col + l.bp, yi);
        } else {
            const float *ci = xi;
            if (!direct) {
                cvae__im2col(g, xi, col);
                ci = col;
            }
            cvae__sgemm(0, 0, g->c_out, hw_out, ckk, 1.0f, w, ckk, ci, hw_out, 0.0f, yi, hw_out);
        }
        cvae__conv_bias_relu(g->c_out, (size_t)hw_out, b, relu, yi);
    }
}

void cvae__conv2d_forward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                          const float *b, float *y, float *col)
{
    conv_forward(g, n, x, w, b, 0, y, col);
}

/* How the weight gradient is computed, chosen from the layer and the
 * number of images in the run: straight from the image where it has
 * channels for a full block of 16 (conv_direct.c); else without an im2col
 * matrix, where the forward pass runs without one too and there are taps
 * for at least one full panel of 16 (the first layer's 9 would leave most
 * of each gathered panel zero); a single-channel first layer by dot
 * products over its rows (conv_small.c); else im2col and the thin-product
 * path of cvae__sgemm. Winograd's form runs over the whole run at once,
 * the others image by image. */
typedef enum dw_path { DW_WINO, DW_DIRECT, DW_IMPLICIT, DW_SMALL, DW_GEMM } dw_path;

static dw_path dw_path_of(const cvae__conv_geom *g, int n)
{
    const int ckk = g->c_in * g->kh * g->kw;
    if (cvae__conv_wino_pays(g, n))
        return DW_WINO;
    if (cvae__conv_direct_dw_ok(g))
        return DW_DIRECT;
    if (cvae__conv_implicit_ok(g) && ckk >= 16)
        return DW_IMPLICIT;
    if (cvae__conv_small_ok(g))
        return DW_SMALL;
    return DW_GEMM;
}

/* Image i of a run of n: its share of the weight gradient, on the paths
 * that go image by image (the first overwrites dw, the others add). */
static void dw_image(dw_path path, const cvae__conv_geom *g, const cvae__conv_ws *ws, int i,
                     int n, const float *xi, const float *dyi, float *dw, float *col)
{
    const int ckk = g->c_in * g->kh * g->kw;
    const int hw_out = g->h_out * g->w_out;
    if (path == DW_DIRECT) {
        cvae__conv_direct_dw(g, xi, dyi, i == 0, i == n - 1, dw, col + ws->dw);
    } else if (path == DW_IMPLICIT) {
        cvae__implicit_dw(g, xi, dyi, i == 0 ? 0.0f : 1.0f, dw, col + ws->dw);
    } else if (path == DW_SMALL) {
        cvae__conv_small_dw(g, xi, dyi, i == 0 ? 0.0f : 1.0f, dw, col + ws->col);
    } else if (path == DW_GEMM) {
        const float *ci = xi;
        if (!cvae__conv_col_is_identity(g)) {
            cvae__im2col(g, xi, col);
            ci = col;
        }
        /* dW (c_out x CKK) += dy_i (c_out x HW) * col_i^T; beta 0 on the
         * first image overwrites whatever dw held. */
        cvae__sgemm(0, 1, g->c_out, ckk, hw_out, 1.0f, dyi, hw_out, ci, hw_out,
                    i == 0 ? 0.0f : 1.0f, dw, ckk);
    }
}

/* The weight gradient of a run of n >= 1 images whose dy is final. */
static void dw_run(const cvae__conv_geom *g, int n, const float *x, const float *dy, float *dw,
                   float *col)
{
    const size_t x_img = (size_t)g->c_in * (size_t)g->h_in * (size_t)g->w_in;
    const size_t y_img = (size_t)g->c_out * (size_t)g->h_out * (size_t)g->w_out;
    const dw_path path = dw_path_of(g, n);
    const cvae__conv_ws l = cvae__conv_ws_of(g);
    if (path == DW_WINO) {
        cvae__conv_wino_dw(g, n, x, dy, dw, col + l.dw);
        return;
    }
    for (int i = 0; i < n; i++)
        dw_image(path, g, &l, i, n, x + (size_t)i * x_img, dy + (size_t)i * y_img, dw, col);
}

/* One image of the backward pass: dy masked by the ReLU derivative in
 * place (y != NULL) and its channels' plane sums added to dbacc (may be
 * NULL). */
static void mask_image(const cvae__conv_geom *g, const float *yi, float *dyi, double *dbacc)
{
    if (!yi && !dbacc)
        return;
    const size_t plane = (size_t)g->h_out * (size_t)g->w_out;
    for (int c = 0; c < g->c_out; c++) {
        const size_t o = (size_t)c * plane;
        const double sum = plane_sum(yi ? yi + o : NULL, dyi + o, plane);
        if (dbacc)
            dbacc[c] += sum;
    }
}

/* conv_backward's Winograd path (n >= 1, dw wanted): the run a group of
 * images at a time, each image's dy masked first. Where the input gradient
 * runs by Winograd too (pl->wu), each image's channels-last copy of dy is
 * made once for both gradients; before, the weight gradient made its own
 * after the whole run, when dy was long out of cache. */
static void wino_backward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                          const float *y, float *dy, float *dx, float *dw, double *dbacc,
                          const cvae__conv_adj_plan *pl, float *col)
{
    const size_t x_img = (size_t)g->c_in * (size_t)g->h_in * (size_t)g->w_in;
    const size_t y_img = (size_t)g->c_out * (size_t)g->h_out * (size_t)g->w_out;
    const int group = cvae__conv_wino_group(g);
    float *work = col + cvae__conv_ws_of(g).dw;
    for (int i0 = 0; i0 < n; i0 += group) {
        const int nb = n - i0 < group ? n - i0 : group;
        for (int i = i0; i < i0 + nb; i++)
            mask_image(g, y ? y + (size_t)i * y_img : NULL, dy + (size_t)i * y_img, dbacc);
        cvae__conv_wino_dw_group(g, i0 == 0, nb, x + (size_t)i0 * x_img, dy + (size_t)i0 * y_img,
                                 NULL, NULL, pl->wu, pl->wu ? dx + (size_t)i0 * x_img : NULL,
                                 work);
        if (dx && !pl->wu)
            for (int i = i0; i < i0 + nb; i++)
                cvae__conv_adjoint(g, dy + (size_t)i * y_img, w, pl, dx + (size_t)i * x_img, col);
    }
    cvae__conv_wino_dw_end(g, work, dw);
}

/* y == NULL: dy is the output gradient as is; else the ReLU derivative
 * (y > 0) is applied to dy in place first. Image by image: the masking and
 * the bias sums walk dy_i just before the GEMMs read it. dbacc (c_out
 * doubles, may be NULL) receives the bias gradient unrounded, the images'
 * plane sums added in image order as a whole-batch sum would. */
static void conv_backward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                          const float *y, float *dy, float *dx, float *dw, double *dbacc,
                          float *col)
{
    const int hw_out = g->h_out * g->w_out;
    const size_t x_img = (size_t)g->c_in * (size_t)g->h_in * (size_t)g->w_in;
    const size_t y_img = (size_t)g->c_out * (size_t)hw_out;
    const dw_path path = dw_path_of(g, n);
    const cvae__conv_ws l = cvae__conv_ws_of(g);
    if (dbacc)
        for (int c = 0; c < g->c_out; c++)
            dbacc[c] = 0.0;
    if (n <= 0) {
        if (dw)
            memset(dw, 0, (size_t)g->c_out * (size_t)g->c_in * (size_t)g->kh * (size_t)g->kw *
                              sizeof *dw);
        return;
    }
    cvae__conv_adj_plan pl = {NULL, NULL, NULL};
    if (dx)
        pl = cvae__conv_adjoint_plan(g, n, w, col);
    if (dw && path == DW_WINO) {
        wino_backward(g, n, x, w, y, dy, dx, dw, dbacc, &pl, col);
        return;
    }
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * x_img;
        float *dyi = dy + (size_t)i * y_img;
        mask_image(g, y ? y + (size_t)i * y_img : NULL, dyi, dbacc);
        if (dw)
            dw_image(path, g, &l, i, n, xi, dyi, dw, col);
        if (dx)
            cvae__conv_adjoint(g, dyi, w, &pl, dx + (size_t)i * x_img, col);
    }
}

/* conv_backward with the bias gradient rounded into db. */
static void conv_backward_db(const cvae__conv_geom *g, int n, const float *x, const float *w,
                             const float *y, float *dy, float *dx, float *dw, float *db,
                             float *col)
{
    double acc[CVAE__CONV_MAX_SUMS];
    const int here = db && g->c_out <= CVAE__CONV_MAX_SUMS;
    conv_backward(g, n, x, w, y, dy, dx, dw, here ? acc : NULL, col);
    if (here)
        for (int c = 0; c < g->c_out; c++)
            db[c] = (float)acc[c];
    else if (db)
        cvae__conv_channel_sums(n, g->c_out, (size_t)g->h_out * (size_t)g->w_out, dy, db);
}

void cvae__conv2d_backward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                           const float *dy, float *dx, float *dw, float *db, float *col)
{
    /* without y, conv_backward only reads dy */
    conv_backward_db(g, n, x, w, NULL, (float *)(uintptr_t)dy, dx, dw, db, col);
}

/* ---- batch-parallel forms ------------------------------------------------
 * Shared with the transposed convolution (tconv.c). The batch is cut into
 * `parts` runs of consecutive images, each run by cvae__parallel with its
 * own slice of the workspace: the im2col matrix, a weight-gradient partial
 * and the bias sums in double. Part 0 writes the weight gradient in place;
 * the others' partials are added to it in part order afterwards, and the
 * bias sums are combined in double and rounded once. Outputs other than
 * dw/db do not depend on parts. So the backward pass cuts the batch into
 * even runs, fixed by the part count; the forward pass, with two parts,
 * cuts it at the threads' learned share (core/threads.h), so that the
 * faster thread takes more images. */

typedef struct par_slice {
    size_t col, dw, db, stride; /* offsets into a part's slice, and its size */
} par_slice;

static par_slice slice_layout(const cvae__conv_geom *g)
{
    par_slice l;
    const size_t nw = (size_t)g->c_out * (size_t)g->c_in * (size_t)g->kh * (size_t)g->kw;
    const size_t nb = (size_t)(g->c_out > g->c_in ? g->c_out : g->c_in);
    l.col = 0;
    l.dw = round16(cvae__conv_work_floats(g));
    l.db = l.dw + round16(nw);
    l.stride = l.db + round16(2 * nb); /* nb doubles */
    return l;
}

size_t cvae__conv_par_floats(const cvae__conv_geom *g, int parts)
{
    if (parts < 1)
        parts = 1;
    if (parts > CVAE__CONV_MAX_PARTS)
        parts = CVAE__CONV_MAX_PARTS;
    return slice_layout(g).stride * (size_t)parts;
}

typedef struct par_job {
    const cvae__conv_geom *g;
    cvae__conv_fwd_fn fwd;
    cvae__conv_bwd_fn bwd;
    int n, relu, nb;
    const float *x, *w, *b, *y;
    float *out, *dy, *dx, *dw, *work;
    par_slice l;
    size_t x_img, y_img; /* per image: the layer's input and output */
    double share;        /* > 0: a forward pass cut at the threads' learned share */
} par_job;

/* Part `part` of `parts` even runs of n images: the runs whose weight
 * gradients are summed apart, fixed by the part count. */
static void even_range(int n, int part, int parts, int *i0, int *cnt)
{
    *i0 = (int)((long long)n * part / parts);
    *cnt = (int)((long long)n * (part + 1) / parts) - *i0;
}

static void par_range(const par_job *j, int part, int parts, int *i0, int *cnt)
{
    if (j->share > 0.0) {
        *i0 = (int)cvae__parallel_part_start((size_t)j->n, part, parts, j->share);
        *cnt = (int)cvae__parallel_part_start((size_t)j->n, part + 1, parts, j->share) - *i0;
        return;
    }
    even_range(j->n, part, parts, i0, cnt);
}

/* A forward pass gives every image the same floats however the batch is
 * cut, except that a run of fewer than CVAE__WINO_MIN_IMAGES images skips
 * Winograd's transforms. A cut at a share in [1/4, 3/4] leaves both runs
 * at least that long from this many images on. */
#define CUT_FREE_IMAGES (4 * (CVAE__WINO_MIN_IMAGES + 1))

static int clamp_parts(int parts)
{
    if (parts < 1)
        return 1;
    return parts > CVAE__CONV_MAX_PARTS ? CVAE__CONV_MAX_PARTS : parts;
}

static void fwd_part(void *ctx, int part, int parts)
{
    const par_job *j = ctx;
    int i0, cnt;
    par_range(j, part, parts, &i0, &cnt);
    float *col = j->work + (size_t)part * j->l.stride + j->l.col;
    j->fwd(j->g, cnt, j->x + (size_t)i0 * j->x_img, j->w, j->b, j->relu,
           j->out + (size_t)i0 * j->y_img, col);
}

static void bwd_part(void *ctx, int part, int parts)
{
    const par_job *j = ctx;
    int i0, cnt;
    par_range(j, part, parts, &i0, &cnt);
    float *slice = j->work + (size_t)part * j->l.stride;
    float *dw = j->dw ? (part ? slice + j->l.dw : j->dw) : NULL;
    double *dbacc = (double *)(void *)(slice + j->l.db);
    const float *x = j->x + (size_t)i0 * j->x_img;
    float *dx = j->dx ? j->dx + (size_t)i0 * j->x_img : NULL;
    float *dy = j->dy + (size_t)i0 * j->y_img;
    j->bwd(j->g, cnt, x, j->w, j->y ? j->y + (size_t)i0 * j->y_img : NULL, dy, dx, dw, dbacc,
           slice + j->l.col);
}

static void combine(const par_job *j, int parts, float *db)
{
    const cvae__conv_geom *g = j->g;
    if (j->dw) {
        const size_t nw = (size_t)g->c_out * (size_t)g->c_in * (size_t)g->kh * (size_t)g->kw;
        for (int p = 1; p < parts; p++) {
            const float *part = j->work + (size_t)p * j->l.stride + j->l.dw;
            for (size_t i = 0; i < nw; i++)
                j->dw[i] += part[i];
        }
    }
    if (db) {
        for (int c = 0; c < j->nb; c++) {
            double acc = 0.0;
            for (int p = 0; p < parts; p++)
                acc += ((const double *)(const void *)(j->work + (size_t)p * j->l.stride +
                                                       j->l.db))[c];
            db[c] = (float)acc;
        }
    }
}

void cvae__conv_par_forward(cvae__conv_fwd_fn fwd, const cvae__conv_geom *g, int n,
                            const float *x, size_t x_img, const float *w, const float *b,
                            int relu, float *y, size_t y_img, float *work, int parts)
{
    par_job j = {g, fwd, NULL, n, relu, 0, x, w, b, NULL, y, NULL, NULL, NULL, work,
                 slice_layout(g), x_img, y_img, 0.0};
    parts = clamp_parts(parts);
    if (parts == 2 && n >= CUT_FREE_IMAGES) {
        j.share = cvae__parallel_share(CVAE__SHARE_CONV);
        cvae__parallel_cut(CVAE__SHARE_CONV, 2, j.share, fwd_part, &j);
    } else
        cvae__parallel(parts, fwd_part, &j);
}

void cvae__conv_par_backward(cvae__conv_bwd_fn bwd, const cvae__conv_geom *g, int n,
                             const float *x, size_t x_img, const float *w, const float *y,
                             float *dy, size_t y_img, float *dx, float *dw, float *db, int nb,
                             float *work, int parts)
{
    parts = clamp_parts(parts);
    par_job j = {g, NULL, bwd, n, 0, nb, x, w, NULL, y, NULL, dy, dx, dw, work, slice_layout(g),
                 x_img, y_img, 0.0};
    cvae__parallel(parts, bwd_part, &j);
    combine(&j, parts, db);
}

void cvae__conv2d_relu_forward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                               const float *b, float *y, float *work, int parts)
{
    cvae__conv_par_forward(conv_forward, g, n, x,
                           (size_t)g->c_in * (size_t)g->h_in * (size_t)g->w_in, w, b, 1, y,
                           (size_t)g->c_out * (size_t)g->h_out * (size_t)g->w_out, work, parts);
}

/* The backward pass of a layer with an input gradient, on two threads.
 * Its weight and bias gradients are summed per half of the batch, so the
 * halves are fixed; cut there, the whole pass waited on the slower thread
 * (up to 0.4 ms a step of the default model). So it runs as two jobs: the
 * ReLU mask and the bias sums over the fixed halves (a pass over dy), then
 * each thread's half of the weight gradient and a run of the input
 * gradient (per image, any cut gives the same floats) cut at the learned
 * share, which moves images of dx to the faster thread. Every output is
 * the float the one-job form gives. */
static void mask_part(void *ctx, int part, int parts)
{
    const par_job *j = ctx;
    int i0, cnt;
    par_range(j, part, parts, &i0, &cnt);
    double *dbacc = (double *)(void *)(j->work + (size_t)part * j->l.stride + j->l.db);
    for (int c = 0; c < j->g->c_out; c++)
        dbacc[c] = 0.0;
    for (int i = i0; i < i0 + cnt; i++)
        mask_image(j->g, j->y ? j->y + (size_t)i * j->y_img : NULL, j->dy + (size_t)i * j->y_img,
                   dbacc);
}

static void grads_part(void *ctx, int part, int parts)
{
    const par_job *j = ctx;
    const cvae__conv_geom *g = j->g;
    float *slice = j->work + (size_t)part * j->l.stride, *col = slice + j->l.col;
    const int a = (int)cvae__parallel_part_start((size_t)j->n, part, parts, j->share);
    const int b = (int)cvae__parallel_part_start((size_t)j->n, part + 1, parts, j->share);
    if (b > a) {
        const cvae__conv_adj_plan pl = cvae__conv_adjoint_plan(g, b - a, j->w, col);
        for (int i = a; i < b; i++)
            cvae__conv_adjoint(g, j->dy + (size_t)i * j->y_img, j->w, &pl,
                               j->dx + (size_t)i * j->x_img, col);
    }
    int h0, cnt;
    even_range(j->n, part, parts, &h0, &cnt);
    if (j->dw && cnt > 0)
        dw_run(g, cnt, j->x + (size_t)h0 * j->x_img, j->dy + (size_t)h0 * j->y_img,
               part ? slice + j->l.dw : j->dw, col);
}

void cvae__conv2d_relu_backward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                                const float *y, float *dy, float *dx, float *dw, float *db,
                                float *work, int parts)
{
    if (clamp_parts(parts) == 2 && dx && n >= CUT_FREE_IMAGES &&
        g->c_out <= CVAE__CONV_MAX_SUMS) {
        par_job j = {g, NULL, NULL, n, 0, g->c_out, x, w, NULL, y, NULL, dy, dx, dw, work,
                     slice_layout(g), (size_t)g->c_in * (size_t)g->h_in * (size_t)g->w_in,
                     (size_t)g->c_out * (size_t)g->h_out * (size_t)g->w_out, 0.0};
        cvae__parallel(2, mask_part, &j);
        j.share = cvae__parallel_share(CVAE__SHARE_CONV_GRADS);
        cvae__parallel_shared(CVAE__SHARE_CONV_GRADS, j.share, grads_part, &j);
        combine(&j, 2, db);
        return;
    }
    cvae__conv_par_backward(conv_backward, g, n, x,
                            (size_t)g->c_in * (size_t)g->h_in * (size_t)g->w_in, w, y, dy,
                            (size_t)g->c_out * (size_t)g->h_out * (size_t)g->w_out, dx, dw, db,
                            g->c_out, work, parts);
}
