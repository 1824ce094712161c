/* Beyond what conv.h promises, a NULL bias means "no bias" and NULL dw/db
 * skip those gradients, so frozen layers (conv_trainable = 0) only pay for
 * dx. */
#include "conv.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "error.h"
#include "gemm.h"

/* Every count the kernels index with (per-image plane sizes, the im2col
 * matrix, the weight matrix) is kept within int, because cvae__sgemm takes
 * int dimensions and leading strides; batch offsets are then formed in
 * size_t so only the per-image products need checking here. */
static int fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

static cvae_status check_product(const char *what, int64_t a, int64_t b, int64_t c)
{
    /* Operands are positive ints, so a*b fits int64 and the second product
     * is checked before it is formed. */
    int64_t ab = a * b;
    if (!fits_int(ab) || ab > INT_MAX / c)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "conv geometry: %s = %lld x %lld x %lld overflows int", what,
                          (long long)a, (long long)b, (long long)c);
    return CVAE_OK;
}

/* One spatial axis of a forward conv: output size and leading pad. */
static cvae_status axis_geom(const char *axis, int in, int k, int stride, int pad, int *out,
                             int *pad_lead)
{
    int64_t n_out, lead;
    if (pad == CVAE__PAD_SAME) {
        /* TensorFlow's "same": out = ceil(in / stride); the total padding
         * needed to reach it is split with the odd row at the end. */
        n_out = ((int64_t)in + stride - 1) / stride;
        int64_t total = (n_out - 1) * stride + k - in;
        if (total < 0)
            total = 0;
        lead = total / 2;
    } else {
        int64_t padded = (int64_t)in + 2 * (int64_t)pad;
        if (padded > INT_MAX)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "conv geometry: padded %s %lld (input %d, pad %d) overflows int",
                              axis, (long long)padded, in, pad);
        if (padded < k)
            return cvae__fail(CVAE_E_INVALID_ARG,
                              "conv geometry: kernel %s %d exceeds the padded input %lld "
                              "(input %d, pad %d)",
                              axis, k, (long long)padded, in, pad);
        n_out = (padded - k) / stride + 1;
        lead = pad;
    }
    if (n_out < 1 || !fits_int(n_out))
        return cvae__fail(CVAE_E_INVALID_ARG, "conv geometry: output %s %lld is not usable",
                          axis, (long long)n_out);
    *out = (int)n_out;
    *pad_lead = (int)lead;
    return CVAE_OK;
}

cvae_status cvae__conv_geom_init(cvae__conv_geom *g, int c_in, int h_in, int w_in, int c_out,
                                 int kh, int kw, int stride, int pad)
{
    CVAE__CHECK_PTR(g);
    memset(g, 0, sizeof *g);
    if (c_in < 1 || h_in < 1 || w_in < 1 || c_out < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "conv geometry: sizes must be >= 1 (c_in %d, h_in %d, w_in %d, "
                          "c_out %d)",
                          c_in, h_in, w_in, c_out);
    if (kh < 1 || kw < 1 || stride < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "conv geometry: kernel %dx%d and stride %d must be >= 1", kh, kw,
                          stride);
    if (pad < 0 && pad != CVAE__PAD_SAME)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "conv geometry: padding %d must be >= 0 or CVAE__PAD_SAME", pad);
    int h_out = 0, w_out = 0, pt = 0, pl = 0;
    cvae_status st;
    if ((st = axis_geom("height", h_in, kh, stride, pad, &h_out, &pt)) ||
        (st = axis_geom("width", w_in, kw, stride, pad, &w_out, &pl)))
        return st;
    int64_t ckk = (int64_t)c_in * kh * kw;
    int64_t hw_out = (int64_t)h_out * w_out;
    if ((st = check_product("c_in*kh*kw", c_in, kh, kw)) ||
        (st = check_product("c_in*h_in*w_in", c_in, h_in, w_in)) ||
        (st = check_product("c_out*h_out*w_out", c_out, h_out, w_out)) ||
        (st = check_product("c_out*c_in*kh*kw", c_out, ckk, 1)) ||
        (st = check_product("c_in*kh*kw*h_out*w_out", ckk, hw_out, 1)))
        return st;
    g->c_in = c_in;
    g->h_in = h_in;
    g->w_in = w_in;
    g->c_out = c_out;
    g->h_out = h_out;
    g->w_out = w_out;
    g->kh = kh;
    g->kw = kw;
    g->stride = stride;
    g->pad_top = pt;
    g->pad_left = pl;
    return CVAE_OK;
}

/* Output size of a transposed conv along one axis, (in-1)*stride - 2*pad + k,
 * or in*stride for "same" (the size whose "same" conv gives back `in`). */
static cvae_status deconv_axis(const char *axis, int in, int k, int stride, int pad, int *out)
{
    int64_t n;
    if (pad == CVAE__PAD_SAME)
        n = (int64_t)in * stride;
    else
        n = ((int64_t)in - 1) * stride - 2 * (int64_t)pad + k;
    if (n < 1 || n > INT_MAX)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "deconv geometry: output %s %lld (input %d, kernel %d, stride %d, "
                          "pad %d) is not usable",
                          axis, (long long)n, in, k, stride, pad);
    *out = (int)n;
    return CVAE_OK;
}

cvae_status cvae__deconv_geom_init(cvae__conv_geom *g, int c_in_t, int h, int w, int c_out_t,
                                   int kh, int kw, int stride, int pad)
{
    CVAE__CHECK_PTR(g);
    memset(g, 0, sizeof *g);
    if (c_in_t < 1 || h < 1 || w < 1 || c_out_t < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "deconv geometry: sizes must be >= 1 (c_in %d, h %d, w %d, c_out %d)",
                          c_in_t, h, w, c_out_t);
    if (kh < 1 || kw < 1 || stride < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "deconv geometry: kernel %dx%d and stride %d must be >= 1", kh, kw,
                          stride);
    if (pad < 0 && pad != CVAE__PAD_SAME)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "deconv geometry: padding %d must be >= 0 or CVAE__PAD_SAME", pad);
    int H = 0, W = 0;
    cvae_status st;
    if ((st = deconv_axis("height", h, kh, stride, pad, &H)) ||
        (st = deconv_axis("width", w, kw, stride, pad, &W)))
        return st;
    if ((st = cvae__conv_geom_init(g, c_out_t, H, W, c_in_t, kh, kw, stride, pad)))
        return st;
    /* By construction the adjoint conv maps H x W back to h x w; anything
     * else would be an arithmetic slip above. */
    if (g->h_out != h || g->w_out != w) {
        int got_h = g->h_out, got_w = g->w_out;
        memset(g, 0, sizeof *g);
        return cvae__fail(CVAE_E_INTERNAL,
                          "deconv geometry: adjoint conv gives %dx%d, expected %dx%d", got_h,
                          got_w, h, w);
    }
    return CVAE_OK;
}

size_t cvae__conv_col_floats(const cvae__conv_geom *g)
{
    return (size_t)g->c_in * (size_t)g->kh * (size_t)g->kw * (size_t)g->h_out *
           (size_t)g->w_out;
}

/* Output columns [*lo, *hi) whose input column ox*stride - pad + k lies in
 * [0, n_in): the rest read padding. Computing the range once per kernel
 * column keeps the inner loops free of bounds tests. */
static void valid_range(int k, int pad, int stride, int n_in, int n_out, int *lo, int *hi)
{
    int first = pad - k; /* ox*stride >= pad - k */
    int a = first <= 0 ? 0 : (first + stride - 1) / stride;
    int last = n_in - 1 + pad - k; /* ox*stride <= n_in - 1 + pad - k */
    int b = last < 0 ? 0 : last / stride + 1;
    if (a > n_out)
        a = n_out;
    if (b > n_out)
        b = n_out;
    if (b < a)
        b = a;
    *lo = a;
    *hi = b;
}

void cvae__im2col(const cvae__conv_geom *g, const float *img, float *col)
{
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
                valid_range(kx, g->pad_left, s, w_in, w_out, &lo, &hi);
                const int ix0 = kx - g->pad_left; /* input column of ox = 0 */
                for (int oy = 0; oy < g->h_out; oy++) {
                    float *dst = row + (size_t)oy * (size_t)w_out;
                    const int iy = oy * s - g->pad_top + ky;
                    if (iy < 0 || iy >= h_in || lo == hi) {
                        memset(dst, 0, (size_t)w_out * sizeof *dst);
                        continue;
                    }
                    const float *line = src + (size_t)iy * (size_t)w_in;
                    for (int ox = 0; ox < lo; ox++)
                        dst[ox] = 0.0f;
                    if (s == 1) {
                        memcpy(dst + lo, line + (lo + ix0), (size_t)(hi - lo) * sizeof *dst);
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
                valid_range(kx, g->pad_left, s, w_in, w_out, &lo, &hi);
                const int ix0 = kx - g->pad_left;
                for (int oy = 0; oy < g->h_out; oy++) {
                    const int iy = oy * s - g->pad_top + ky;
                    if (iy < 0 || iy >= h_in)
                        continue;
                    const float *srow = row + (size_t)oy * (size_t)w_out;
                    float *line = dst + (size_t)iy * (size_t)w_in;
                    for (int ox = lo; ox < hi; ox++)
                        line[ox * s + ix0] += srow[ox];
                }
            }
        }
    }
}

/* A 1x1 stride-1 unpadded conv reads the image itself as its im2col matrix. */
static int col_is_identity(const cvae__conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->stride == 1 && g->pad_top == 0 && g->pad_left == 0;
}

static void add_channel_bias(int channels, size_t plane, const float *b, float *y)
{
    for (int c = 0; c < channels; c++) {
        const float bc = b[c];
        float *p = y + (size_t)c * plane;
        for (size_t i = 0; i < plane; i++)
            p[i] += bc;
    }
}

/* db[c] = sum over images and positions of dy[n][c][:], accumulated in
 * double because a batch of feature maps sums 1e5-1e6 terms. */
static void channel_sums(int n, int channels, size_t plane, const float *dy, float *db)
{
    for (int c = 0; c < channels; c++) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) {
            const float *p = dy + ((size_t)i * (size_t)channels + (size_t)c) * plane;
            for (size_t j = 0; j < plane; j++)
                acc += p[j];
        }
        db[c] = (float)acc;
    }
}

void cvae__conv2d_forward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                          const float *b, float *y, float *col)
{
    const int ckk = g->c_in * g->kh * g->kw;
    const int hw_out = g->h_out * g->w_out;
    const size_t x_img = (size_t)g->c_in * (size_t)g->h_in * (size_t)g->w_in;
    const size_t y_img = (size_t)g->c_out * (size_t)hw_out;
    const int direct = col_is_identity(g);
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * x_img;
        float *yi = y + (size_t)i * y_img;
        const float *ci = xi;
        if (!direct) {
            cvae__im2col(g, xi, col);
            ci = col;
        }
        cvae__sgemm(0, 0, g->c_out, hw_out, ckk, 1.0f, w, ckk, ci, hw_out, 0.0f, yi, hw_out);
        if (b)
            add_channel_bias(g->c_out, (size_t)hw_out, b, yi);
    }
}

void cvae__conv2d_backward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                           const float *dy, float *dx, float *dw, float *db, float *col)
{
    const int ckk = g->c_in * g->kh * g->kw;
    const int hw_out = g->h_out * g->w_out;
    const size_t x_img = (size_t)g->c_in * (size_t)g->h_in * (size_t)g->w_in;
    const size_t y_img = (size_t)g->c_out * (size_t)hw_out;
    const int direct = col_is_identity(g);
    if (n <= 0) {
        if (dw)
            memset(dw, 0, (size_t)g->c_out * (size_t)ckk * sizeof *dw);
        if (db)
            memset(db, 0, (size_t)g->c_out * sizeof *db);
        return;
    }
    if (db)
        channel_sums(n, g->c_out, (size_t)hw_out, dy, db);
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * x_img;
        const float *dyi = dy + (size_t)i * y_img;
        if (dw) {
            const float *ci = xi;
            if (!direct) {
                cvae__im2col(g, xi, col);
                ci = col;
            }
            /* dW (c_out x CKK) += dy_i (c_out x HW) * col_i^T; beta 0 on the
             * first image overwrites whatever dw held. */
            cvae__sgemm(0, 1, g->c_out, ckk, hw_out, 1.0f, dyi, hw_out, ci, hw_out,
                        i == 0 ? 0.0f : 1.0f, dw, ckk);
        }
        if (dx) {
            float *dxi = dx + (size_t)i * x_img;
            if (direct) {
                cvae__sgemm(1, 0, ckk, hw_out, g->c_out, 1.0f, w, ckk, dyi, hw_out, 0.0f, dxi,
                            hw_out);
            } else {
                cvae__sgemm(1, 0, ckk, hw_out, g->c_out, 1.0f, w, ckk, dyi, hw_out, 0.0f, col,
                            hw_out);
                memset(dxi, 0, x_img * sizeof *dxi);
                cvae__col2im(g, col, dxi);
            }
        }
    }
}

void cvae__deconv2d_forward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                            const float *b, float *y, float *col)
{
    const int ckk = g->c_in * g->kh * g->kw;
    const int hw_small = g->h_out * g->w_out;
    const size_t x_img = (size_t)g->c_out * (size_t)hw_small;
    const size_t y_plane = (size_t)g->h_in * (size_t)g->w_in;
    const size_t y_img = (size_t)g->c_in * y_plane;
    const int direct = col_is_identity(g);
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * x_img;
        float *yi = y + (size_t)i * y_img;
        if (direct) {
            cvae__sgemm(1, 0, ckk, hw_small, g->c_out, 1.0f, w, ckk, xi, hw_small, 0.0f, yi,
                        hw_small);
        } else {
            /* col (CKK x hw) = W^T x_i, then scatter-add the patches. */
            cvae__sgemm(1, 0, ckk, hw_small, g->c_out, 1.0f, w, ckk, xi, hw_small, 0.0f, col,
                        hw_small);
            memset(yi, 0, y_img * sizeof *yi);
            cvae__col2im(g, col, yi);
        }
        if (b)
            add_channel_bias(g->c_in, y_plane, b, yi);
    }
}

void cvae__deconv2d_backward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                             const float *dy, float *dx, float *dw, float *db, float *col)
{
    const int ckk = g->c_in * g->kh * g->kw;
    const int hw_small = g->h_out * g->w_out;
    const size_t x_img = (size_t)g->c_out * (size_t)hw_small;
    const size_t y_plane = (size_t)g->h_in * (size_t)g->w_in;
    const size_t y_img = (size_t)g->c_in * y_plane;
    const int direct = col_is_identity(g);
    if (n <= 0) {
        if (dw)
            memset(dw, 0, (size_t)g->c_out * (size_t)ckk * sizeof *dw);
        if (db)
            memset(db, 0, (size_t)g->c_in * sizeof *db);
        return;
    }
    if (db)
        channel_sums(n, g->c_in, y_plane, dy, db);
    if (!dw && !dx)
        return;
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * x_img;
        const float *dyi = dy + (size_t)i * y_img;
        const float *ci = dyi;
        if (!direct) {
            cvae__im2col(g, dyi, col);
            ci = col;
        }
        if (dx)
            cvae__sgemm(0, 0, g->c_out, hw_small, ckk, 1.0f, w, ckk, ci, hw_small, 0.0f,
                        dx + (size_t)i * x_img, hw_small);
        if (dw)
            cvae__sgemm(0, 1, g->c_out, ckk, hw_small, 1.0f, xi, hw_small, ci, hw_small,
                        i == 0 ? 0.0f : 1.0f, dw, ckk);
    }
}
