/* Transposed convolution (see tconv.h): the adjoint of the convolution
 * with the same geometry, built on conv.c's adjoint pass, workspace and
 * batch-parallel split. Beyond what tconv.h promises, a NULL bias means "no
 * bias" and NULL dw/db skip those gradients. */
#include "layers/tconv.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "core/gemm.h"
#include "layers/conv_direct.h"
#include "layers/conv_wino.h"
#include "layers/im2col.h"

/* Output size of a transposed conv along one axis, (in-1)*stride - 2*pad + k,
 * or in*stride for "same" (the size whose "same" conv gives back `in`). */
static cvae_status tconv_axis(const char *axis, int in, int k, int stride, int pad, int *out)
{
    int64_t n;
    if (pad == CVAE__PAD_SAME)
        n = (int64_t)in * stride;
    else
        n = ((int64_t)in - 1) * stride - 2 * (int64_t)pad + k;
    if (n < 1 || n > INT_MAX)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "transposed conv geometry: output %s %lld (input %d, kernel %d, stride %d, "
                          "pad %d) is not usable",
                          axis, (long long)n, in, k, stride, pad);
    *out = (int)n;
    return CVAE_OK;
}

cvae_status cvae__tconv_geom_init(cvae__conv_geom *g, int c_in_t, int h, int w, int c_out_t,
                                   int kh, int kw, int stride, int pad)
{
    CVAE__CHECK_PTR(g);
    memset(g, 0, sizeof *g);
    if (c_in_t < 1 || h < 1 || w < 1 || c_out_t < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "transposed conv geometry: sizes must be >= 1 (c_in %d, h %d, w %d, c_out %d)",
                          c_in_t, h, w, c_out_t);
    if (kh < 1 || kw < 1 || stride < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "transposed conv geometry: kernel %dx%d and stride %d must be >= 1", kh, kw,
                          stride);
    if (pad < 0 && pad != CVAE__PAD_SAME)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "transposed conv geometry: padding %d must be >= 0 or CVAE__PAD_SAME", pad);
    int H = 0, W = 0;
    cvae_status st;
    if ((st = tconv_axis("height", h, kh, stride, pad, &H)) ||
        (st = tconv_axis("width", w, kw, stride, pad, &W)))
        return st;
    if ((st = cvae__conv_geom_init(g, c_out_t, H, W, c_in_t, kh, kw, stride, pad)))
        return st;
    /* By construction the adjoint conv maps H x W back to h x w; anything
     * else would be an arithmetic slip above. */
    if (g->h_out != h || g->w_out != w) {
        int got_h = g->h_out, got_w = g->w_out;
        memset(g, 0, sizeof *g);
        return cvae__fail(CVAE_E_INTERNAL,
                          "transposed conv geometry: adjoint conv gives %dx%d, expected %dx%d", got_h,
                          got_w, h, w);
    }
    return CVAE_OK;
}

/* Transposed convs whose kernel equals their stride, unpadded, tiling the
 * output exactly (the model's 2x2 stride-2 unpooling layer): every output
 * pixel takes exactly one tap of every input channel, so the layer is a
 * per-pixel c_in x (C*kh*kw) product, done here in plain loops. Through
 * cvae__sgemm it would be three GEMMs per image of a few kFLOP each (4 x 196
 * x 16 for the model), which cost more in call and packing overhead than in
 * arithmetic. */
static int tconv_patches(const cvae__conv_geom *g)
{
    return g->kh == g->stride && g->kw == g->stride && g->pad_top == 0 && g->pad_left == 0 &&
           g->h_in == g->h_out * g->stride && g->w_in == g->w_out * g->stride;
}

/* For tconv_patches geometries, cvae__im2col of dy is a strided gather and
 * col2im a strided scatter; the GEMMs are done as axpys and dots over the
 * hw pixels, which the compiler vectorises. */
static void patches_forward(const cvae__conv_geom *g, const float *xi, const float *w,
                            const float *b, float *yi, float *tmp)
{
    const int s = g->stride, hw = g->h_out * g->w_out, ckk = g->c_in * g->kh * g->kw;
    const size_t plane = (size_t)g->h_in * (size_t)g->w_in;
    for (int t = 0; t < ckk; t++) {
        /* tap t = (c, ky, kx): tmp = sum over input channels co of
         * W[co][t] * x[co] */
        float *restrict acc = tmp;
        for (int p = 0; p < hw; p++)
            acc[p] = 0.0f;
        for (int co = 0; co < g->c_out; co++) {
            const float wt = w[(size_t)co * (size_t)ckk + (size_t)t];
            const float *restrict xr = xi + (size_t)co * (size_t)hw;
            for (int p = 0; p < hw; p++)
                acc[p] += wt * xr[p];
        }
        const int c = t / (g->kh * g->kw), ky = t / g->kw % g->kh, kx = t % g->kw;
        const float bc = b ? b[c] : 0.0f;
        float *out = yi + (size_t)c * plane;
        for (int oy = 0; oy < g->h_out; oy++) {
            float *line = out + (size_t)(oy * s + ky) * (size_t)g->w_in + kx;
            const float *src = acc + (size_t)oy * (size_t)g->w_out;
            for (int ox = 0; ox < g->w_out; ox++)
                line[ox * s] = src[ox] + bc;
        }
    }
}

void cvae__tconv2d_forward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                            const float *b, float *y, float *col)
{
    const int hw_small = g->h_out * g->w_out;
    const size_t x_img = (size_t)g->c_out * (size_t)hw_small;
    const size_t y_plane = (size_t)g->h_in * (size_t)g->w_in;
    const size_t y_img = (size_t)g->c_in * y_plane;
    const int patches = tconv_patches(g);
    cvae__conv_adj_plan pl = {NULL, NULL, NULL};
    if (!patches && n > 0)
        pl = cvae__conv_adjoint_plan(g, n, w, col);
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * x_img;
        float *yi = y + (size_t)i * y_img;
        if (patches)
            patches_forward(g, xi, w, b, yi, col);
        else {
            cvae__conv_adjoint(g, xi, w, &pl, yi, col);
            cvae__conv_bias_relu(g->c_in, y_plane, b, 0, yi);
        }
    }
}

/* dx_i = W dyc_i and dW += x_i dyc_i^T, dyc_i = im2col(dy_i) (ckk x hw). */
static void patches_backward(const cvae__conv_geom *g, int first, const float *xi,
                             const float *w, const float *dyc, float *dxi, float *dw)
{
    const int hw = g->h_out * g->w_out, ckk = g->c_in * g->kh * g->kw;
    for (int co = 0; co < g->c_out; co++) {
        const float *restrict xr = xi + (size_t)co * (size_t)hw;
        const float *wr = w + (size_t)co * (size_t)ckk;
        float *restrict dxr = dxi ? dxi + (size_t)co * (size_t)hw : NULL;
        if (dxr)
            for (int p = 0; p < hw; p++)
                dxr[p] = 0.0f;
        for (int t = 0; t < ckk; t++) {
            const float *restrict d = dyc + (size_t)t * (size_t)hw;
            if (dxr) {
                const float wt = wr[t];
                for (int p = 0; p < hw; p++)
                    dxr[p] += wt * d[p];
            }
            if (dw) {
                float part[8] = {0};
                int p = 0;
                for (; p + 8 <= hw; p += 8)
                    for (int q = 0; q < 8; q++)
                        part[q] += xr[p + q] * d[p + q];
                float dot = ((part[0] + part[1]) + (part[2] + part[3])) +
                            ((part[4] + part[5]) + (part[6] + part[7]));
                for (; p < hw; p++)
                    dot += xr[p] * d[p];
                float *dwt = dw + (size_t)co * (size_t)ckk + (size_t)t;
                *dwt = first ? dot : *dwt + dot;
            }
        }
    }
}

/* Adds per-channel plane sums of n images of dy to acc (channels doubles). */
static void channel_sums_acc(int n, int channels, size_t plane, const float *dy, double *acc)
{
    for (int i = 0; i < n; i++)
        for (int c = 0; c < channels; c++)
            acc[c] += cvae__conv_plane_sum(dy + ((size_t)i * (size_t)channels + (size_t)c) * plane, plane);
}

/* dbacc as in conv.c's conv_backward (c_in doubles here: a transposed conv's bias
 * is per output = per c_in channel). */
static void tconv_backward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                            const float *dy, float *dx, float *dw, double *dbacc, float *col)
{
    const int ckk = g->c_in * g->kh * g->kw;
    const int hw_small = g->h_out * g->w_out;
    const size_t x_img = (size_t)g->c_out * (size_t)hw_small;
    const size_t y_plane = (size_t)g->h_in * (size_t)g->w_in;
    const size_t y_img = (size_t)g->c_in * y_plane;
    const int direct = cvae__conv_col_is_identity(g);
    const int patches = tconv_patches(g);
    if (dbacc) {
        for (int c = 0; c < g->c_in; c++)
            dbacc[c] = 0.0;
        channel_sums_acc(n, g->c_in, y_plane, dy, dbacc);
    }
    if (n <= 0) {
        if (dw)
            memset(dw, 0, (size_t)g->c_out * (size_t)ckk * sizeof *dw);
        return;
    }
    if (!dw && !dx)
        return;
    /* dx is g's forward conv of dy: by Winograd's transforms or implicit
     * where possible (the im2col matrix is then only built for dw). */
    const int wino = !patches && cvae__conv_wino_pays(g, n);
    const int wino_dx = dx && wino;
    const int implicit = dx && !wino && !patches && cvae__conv_implicit_ok(g);
    /* dw = x dyc^T: the weight gradient of g's forward conv of dy with x
     * as its output gradient, by the same means where possible */
    const int wino_dw = dw && wino;
    const int direct_dw = dw && !wino && !patches && cvae__conv_direct_dw_ok(g);
    const int implicit_dw =
        dw && !wino && !direct_dw && !patches && cvae__conv_implicit_ok(g) && ckk >= 16;
    const cvae__conv_ws l = cvae__conv_ws_of(g);
    if (implicit)
        cvae__implicit_pack(w, g->c_out, ckk, col + l.ap);
    if (wino_dx)
        cvae__conv_wino_weights(g, w, col + l.wu);
    if (wino_dw) {
        /* each image's channels-last copy of dy and its transformed tiles
         * serve both dw and dx */
        cvae__conv_wino_dw_with(g, n, dy, x, wino_dx ? col + l.wu : NULL, dx, NULL, NULL, dw,
                                col + l.dw);
        return;
    }
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * x_img;
        const float *dyi = dy + (size_t)i * y_img;
        const float *ci = dyi;
        if (wino_dx)
            cvae__conv_wino_forward(g, dyi, col + l.wu, dx + (size_t)i * x_img, col + l.bp);
        else if (implicit)
            cvae__implicit_conv(g, dyi, col + l.ap, col + l.bp, dx + (size_t)i * x_img);
        if (!direct && ((dw && !wino_dw && !implicit_dw && !direct_dw) ||
                        (dx && !wino_dx && !implicit))) {
            cvae__im2col(g, dyi, col);
            ci = col;
        }
        if (patches) {
            patches_backward(g, i == 0, xi, w, ci, dx ? dx + (size_t)i * x_img : NULL, dw);
            continue;
        }
        if (dx && !wino_dx && !implicit)
            cvae__sgemm(0, 0, g->c_out, hw_small, ckk, 1.0f, w, ckk, ci, hw_small, 0.0f,
                        dx + (size_t)i * x_img, hw_small);
        if (direct_dw)
            cvae__conv_direct_dw(g, dyi, xi, i == 0, i == n - 1, dw, col + l.dw);
        else if (implicit_dw)
            cvae__implicit_dw(g, dyi, xi, i == 0 ? 0.0f : 1.0f, dw, col + l.dw);
        else if (dw)
            cvae__sgemm(0, 1, g->c_out, ckk, hw_small, 1.0f, xi, hw_small, ci, hw_small,
                        i == 0 ? 0.0f : 1.0f, dw, ckk);
    }
}

void cvae__tconv2d_backward(const cvae__conv_geom *g, int n, const float *x, const float *w,
                             const float *dy, float *dx, float *dw, float *db, float *col)
{
    double acc[CVAE__CONV_MAX_SUMS];
    const int here = db && g->c_in <= CVAE__CONV_MAX_SUMS;
    tconv_backward(g, n, x, w, dy, dx, dw, here ? acc : NULL, col);
    if (here)
        for (int c = 0; c < g->c_in; c++)
            db[c] = (float)acc[c];
    else if (db)
        cvae__conv_channel_sums(n, g->c_in, (size_t)g->h_in * (size_t)g->w_in, dy, db);
}


/* The per-run passes of the batch-parallel forms (conv.h's callback
 * shapes: a transposed conv has no fused ReLU and needs no forward
 * output in its backward pass). */
static void forward_run(const cvae__conv_geom *g, int n, const float *x, const float *w,
                        const float *b, int relu, float *y, float *col)
{
    (void)relu;
    cvae__tconv2d_forward(g, n, x, w, b, y, col);
}

static void backward_run(const cvae__conv_geom *g, int n, const float *x, const float *w,
                         const float *y, float *dy, float *dx, float *dw, double *dbacc,
                         float *col)
{
    (void)y;
    tconv_backward(g, n, x, w, dy, dx, dw, dbacc, col);
}

void cvae__tconv2d_forward_par(const cvae__conv_geom *g, int n, const float *x, const float *w,
                               const float *b, float *y, float *work, int parts)
{
    cvae__conv_par_forward(forward_run, g, n, x,
                           (size_t)g->c_out * (size_t)g->h_out * (size_t)g->w_out, w, b, 0, y,
                           (size_t)g->c_in * (size_t)g->h_in * (size_t)g->w_in, work, parts);
}

void cvae__tconv2d_backward_par(const cvae__conv_geom *g, int n, const float *x, const float *w,
                                const float *dy, float *dx, float *dw, float *db, float *work,
                                int parts)
{
    cvae__conv_par_backward(backward_run, g, n, x,
                            (size_t)g->c_out * (size_t)g->h_out * (size_t)g->w_out, w, NULL,
                            (float *)(uintptr_t)dy,
                            (size_t)g->c_in * (size_t)g->h_in * (size_t)g->w_in, dx, dw, db,
                            g->c_in, work, parts);
}
