/* Transposed convolution (lib/layers/tconv.c): geometry, the forward pass
 * against a scatter loop, the adjoint identity with the convolution,
 * finite-difference gradients, and the batch-parallel forms against the
 * serial ones. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_check.h"
#include "layers/conv_wino.h"
#include "core/error.h"
#include "core/rng.h"
#include "gradcheck.h"
#include "layers/conv.h"
#include "layers/im2col.h"
#include "layers/tconv.h"

/* A conv problem as the test states it (for the adjoint identity). */
typedef struct spec {
    int n, c_in, h, w, c_out, kh, kw, stride, pad;
} spec;

/* A transposed conv as the test states it: input [n][c_in_t][h][w] ->
 * output [n][c_out_t][H][W], weights [c_in_t][c_out_t][kh][kw]. */
typedef struct dspec {
    int n, c_in_t, h, w, c_out_t, kh, kw, stride, pad;
} dspec;

static void expect_deconv(const dspec *d, int *H, int *W, int *pt, int *pl)
{
    if (d->pad == CVAE__PAD_SAME) {
        *H = d->h * d->stride;
        *W = d->w * d->stride;
        int th = d->kh - d->stride, tw = d->kw - d->stride;
        *pt = th > 0 ? th / 2 : 0;
        *pl = tw > 0 ? tw / 2 : 0;
    } else {
        *H = (d->h - 1) * d->stride - 2 * d->pad + d->kh;
        *W = (d->w - 1) * d->stride - 2 * d->pad + d->kw;
        *pt = *pl = d->pad;
    }
}

/* Scatter-loop transposed convolution (each input pixel adds a scaled
 * kernel to the output), accumulated in double. */
static void ref_deconv(const dspec *d, const float *x, const float *w, const float *b, double *y)
{
    int H, W, pt, pl;
    expect_deconv(d, &H, &W, &pt, &pl);
    for (int n = 0; n < d->n; n++)
        for (int co = 0; co < d->c_out_t; co++)
            for (int i = 0; i < H * W; i++)
                y[(n * d->c_out_t + co) * H * W + i] = b ? b[co] : 0.0;
    for (int n = 0; n < d->n; n++)
        for (int ci = 0; ci < d->c_in_t; ci++)
            for (int iy = 0; iy < d->h; iy++)
                for (int ix = 0; ix < d->w; ix++) {
                    double v = x[((n * d->c_in_t + ci) * d->h + iy) * d->w + ix];
                    for (int co = 0; co < d->c_out_t; co++)
                        for (int ky = 0; ky < d->kh; ky++)
                            for (int kx = 0; kx < d->kw; kx++) {
                                int oy = iy * d->stride - pt + ky;
                                int ox = ix * d->stride - pl + kx;
                                if (oy < 0 || oy >= H || ox < 0 || ox >= W)
                                    continue;
                                y[((n * d->c_out_t + co) * H + oy) * W + ox] +=
                                    v * w[((ci * d->c_out_t + co) * d->kh + ky) * d->kw + kx];
                            }
                }
}

static void test_tconv_geometry(void **state)
{
    (void)state;
    cvae__conv_geom g;
    /* Deconv: the model's 2x2 stride-2 unpooling 14 -> 28. */
    assert_int_equal(cvae__tconv_geom_init(&g, 16, 14, 14, 1, 2, 2, 2, 0), CVAE_OK);
    assert_int_equal(g.c_out, 16);
    assert_int_equal(g.h_out, 14);
    assert_int_equal(g.c_in, 1);
    assert_int_equal(g.h_in, 28);
    assert_int_equal(g.w_in, 28);
    /* Deconv (h-1)*s - 2p + k: (5-1)*2 - 2 + 3 = 9. */
    assert_int_equal(cvae__tconv_geom_init(&g, 3, 5, 4, 2, 3, 3, 2, 1), CVAE_OK);
    assert_int_equal(g.h_in, 9);
    assert_int_equal(g.w_in, 7);
    assert_int_equal(g.h_out, 5);
    assert_int_equal(g.w_out, 4);
}

static void test_tconv_geometry_errors(void **state)
{
    (void)state;
    cvae__conv_geom g;
    clear_error();
    expect_invalid(cvae__tconv_geom_init(NULL, 1, 4, 4, 1, 3, 3, 1, 0));
    expect_invalid(cvae__tconv_geom_init(&g, 0, 4, 4, 1, 3, 3, 1, 0));
    expect_invalid(cvae__tconv_geom_init(&g, 1, 4, -1, 1, 3, 3, 1, 0));
    expect_invalid(cvae__tconv_geom_init(&g, 1, 4, 4, 0, 3, 3, 1, 0));
    expect_invalid(cvae__tconv_geom_init(&g, 1, 4, 4, 1, 3, 0, 1, 0));
    expect_invalid(cvae__tconv_geom_init(&g, 1, 4, 4, 1, 3, 3, -1, 0));
    expect_invalid(cvae__tconv_geom_init(&g, 1, 4, 4, 1, 3, 3, 1, -3));
    /* Output (1-1)*1 - 2*1 + 1 < 1. */
    expect_invalid(cvae__tconv_geom_init(&g, 1, 1, 1, 1, 1, 1, 1, 1));
    /* Output size overflows int. */
    expect_invalid(cvae__tconv_geom_init(&g, 1, INT_MAX / 2, 1, 1, 2, 2, 4, 0));
    /* 46341^2 > INT_MAX: one output plane overflows int. */
    expect_invalid(cvae__tconv_geom_init(&g, 1, 46341, 46341, 1, 1, 1, 1, 0));
}

static void run_deconv_reference(const dspec *d, cvae__rng *r)
{
    cvae__conv_geom g;
    assert_int_equal(cvae__tconv_geom_init(&g, d->c_in_t, d->h, d->w, d->c_out_t, d->kh, d->kw,
                                            d->stride, d->pad),
                     CVAE_OK);
    int H, W, pt, pl;
    expect_deconv(d, &H, &W, &pt, &pl);
    assert_int_equal(g.h_in, H);
    assert_int_equal(g.w_in, W);
    assert_int_equal(g.pad_top, pt);
    assert_int_equal(g.pad_left, pl);
    assert_int_equal(g.h_out, d->h);
    assert_int_equal(g.w_out, d->w);

    size_t nx = (size_t)d->n * geom_y(&g), ny = (size_t)d->n * geom_x(&g), nw = geom_w(&g);
    float *x = gc_alloc(nx), *w = gc_alloc(nw), *b = gc_alloc((size_t)d->c_out_t);
    float *y = gc_alloc(ny), *col = gc_alloc(cvae__conv_work_floats(&g));
    double *want = calloc(ny, sizeof *want);
    assert_non_null(want);
    gc_fill_uniform(r, x, nx, -1, 1);
    gc_fill_uniform(r, w, nw, -1, 1);
    gc_fill_uniform(r, b, (size_t)d->c_out_t, -1, 1);
    gc_fill_nan(y, ny);
    cvae__tconv2d_forward(&g, d->n, x, w, b, y, col);
    ref_deconv(d, x, w, b, want);
    /* the forward pass is the adjoint conv (channels swapped); where that
     * runs by Winograd's transforms, its wider bound per product (as in
     * test_conv.c) */
    cvae__conv_geom adj = g;
    adj.c_in = g.c_out;
    adj.c_out = g.c_in;
    const double tol = cvae__conv_wino_pays(&adj, d->n)
                           ? fmax(1e-5, 5e-6 * (double)(adj.c_in * g.kh * g.kw))
                           : 1e-5;
    assert_true(gc_max_rel_diff(y, want, ny, 1.0) < tol);
    free(x);
    free(w);
    free(b);
    free(y);
    free(col);
    free(want);
}

static void test_tconv_forward_reference(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 2);
    const dspec specs[] = {
        {2, 16, 14, 14, 1, 2, 2, 2, 0}, /* model unpooling */
        {2, 3, 5, 4, 2, 3, 3, 1, 1},
        {2, 3, 5, 4, 2, 3, 3, 2, 1},
        {1, 2, 4, 3, 3, 4, 4, 2, 1},
        {2, 2, 3, 5, 2, 3, 3, 2, CVAE__PAD_SAME},
        {1, 2, 3, 3, 2, 2, 4, 2, CVAE__PAD_SAME},
        {1, 3, 4, 4, 2, 1, 1, 1, 0},
        {1, 1, 2, 3, 2, 1, 1, 3, 0},
        {1, 2, 3, 2, 1, 5, 3, 3, 0},
        {2, 16, 14, 14, 16, 3, 3, 1, 1}, /* n > 1: the image decoder's 3x3 layers */
        {1, 3, 5, 4, 2, 5, 3, 1, CVAE__PAD_SAME},
        {1, 24, 5, 4, 3, 5, 5, 1, 2}, /* k = 600 */
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        run_deconv_reference(&specs[i], &r);
}

/* <conv(x), y> = <x, convT(y)> for the same geometry and weights, zero
 * biases: the transposed conv is the adjoint of the conv. */
static void test_tconv_adjoint(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 3);
    const spec specs[] = {
        {2, 3, 7, 5, 4, 3, 3, 1, CVAE__PAD_SAME}, {2, 2, 8, 7, 3, 4, 2, 2, CVAE__PAD_SAME},
        {1, 2, 9, 9, 2, 5, 3, 2, 1},              {3, 1, 28, 28, 2, 2, 2, 2, 0},
        {1, 4, 6, 5, 3, 1, 1, 1, 0},              {2, 2, 5, 6, 2, 4, 4, 3, 2},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        const spec *s = &specs[i];
        cvae__conv_geom g;
        assert_int_equal(cvae__conv_geom_init(&g, s->c_in, s->h, s->w, s->c_out, s->kh, s->kw,
                                              s->stride, s->pad),
                         CVAE_OK);
        size_t nx = (size_t)s->n * geom_x(&g), ny = (size_t)s->n * geom_y(&g);
        size_t nw = geom_w(&g);
        float *x = gc_alloc(nx), *y = gc_alloc(ny), *w = gc_alloc(nw);
        float *cx = gc_alloc(ny), *ty = gc_alloc(nx), *col = gc_alloc(cvae__conv_work_floats(&g));
        gc_fill_uniform(&r, x, nx, -1, 1);
        gc_fill_uniform(&r, y, ny, -1, 1);
        gc_fill_uniform(&r, w, nw, -1, 1);
        cvae__conv2d_forward(&g, s->n, x, w, NULL, cx, col);
        cvae__tconv2d_forward(&g, s->n, y, w, NULL, ty, col);
        double lhs = gc_dot(cx, y, ny), rhs = gc_dot(x, ty, nx);
        double scale = fabs(lhs) > 1.0 ? fabs(lhs) : 1.0;
        assert_true(fabs(lhs - rhs) / scale < 1e-4);

        /* im2col and col2im are adjoint too: <im2col(x), c> = <x, col2im(c)>. */
        size_t nc = cvae__conv_col_floats(&g);
        float *c = gc_alloc(nc), *back = gc_alloc(geom_x(&g));
        gc_fill_uniform(&r, c, nc, -1, 1);
        cvae__im2col(&g, x, col);
        cvae__col2im(&g, c, back);
        double l2 = gc_dot(col, c, nc), r2 = gc_dot(x, back, geom_x(&g));
        double sc2 = fabs(l2) > 1.0 ? fabs(l2) : 1.0;
        assert_true(fabs(l2 - r2) / sc2 < 1e-5);
        free(c);
        free(back);
        free(x);
        free(y);
        free(w);
        free(cx);
        free(ty);
        free(col);
    }
}

static const dspec deconv_grad_specs[] = {
    {2, 4, 5, 4, 2, 2, 2, 2, 0}, /* unpooling */
    {2, 3, 5, 4, 2, 3, 3, 1, 1},
    {1, 2, 4, 5, 3, 3, 3, 2, 1},
    {1, 2, 3, 4, 2, 4, 4, 2, 1},
    {2, 2, 3, 5, 2, 3, 3, 2, CVAE__PAD_SAME},
    {1, 2, 3, 3, 2, 2, 4, 1, CVAE__PAD_SAME},
    {2, 3, 4, 3, 2, 1, 1, 1, 0},
    {2, 2, 5, 4, 3, 3, 3, 1, 1}, /* forward runs as a conv with the kernel rotated */
    {1, 3, 4, 6, 3, 3, 5, 1, CVAE__PAD_SAME},
};

static void test_tconv_gradcheck(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 5);
    double worst = 0.0;
    for (size_t i = 0; i < sizeof deconv_grad_specs / sizeof deconv_grad_specs[0]; i++) {
        const dspec *d = &deconv_grad_specs[i];
        cvae__conv_geom g;
        assert_int_equal(cvae__tconv_geom_init(&g, d->c_in_t, d->h, d->w, d->c_out_t, d->kh,
                                                d->kw, d->stride, d->pad),
                         CVAE_OK);
        double e = gradcheck_layer(&g, d->n, 1, &r);
        if (e > worst)
            worst = e;
    }
    double e = gradcheck_random_layers(&r, 1, 8, 6);
    if (e > worst)
        worst = e;
    gc_report("tconv2d (dx, dW, db)", worst);
    assert_true(worst < GC_TOL);
}

/* The batch-parallel forms against the serial ones: outputs and dx equal
 * exactly, dW and db up to the order of the per-run sums. */
static void test_tconv_batch_parallel(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 6);
    const dspec specs[] = {
        {5, 16, 14, 14, 1, 2, 2, 2, 0}, /* model unpooling */
        {4, 3, 5, 4, 2, 3, 3, 1, 1},
        {3, 2, 4, 5, 3, 3, 3, 2, 1},
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        const dspec *d = &specs[i];
        cvae__conv_geom g;
        assert_int_equal(cvae__tconv_geom_init(&g, d->c_in_t, d->h, d->w, d->c_out_t, d->kh,
                                                d->kw, d->stride, d->pad),
                         CVAE_OK);
        size_t nx = (size_t)d->n * geom_y(&g), ny = (size_t)d->n * geom_x(&g), nw = geom_w(&g);
        size_t nb = (size_t)g.c_in;
        float *x = gc_alloc(nx), *w = gc_alloc(nw), *b = gc_alloc(nb), *dy = gc_alloc(ny);
        float *y1 = gc_alloc(ny), *dx1 = gc_alloc(nx), *dw1 = gc_alloc(nw), *db1 = gc_alloc(nb);
        float *y2 = gc_alloc(ny), *dx2 = gc_alloc(nx), *dw2 = gc_alloc(nw), *db2 = gc_alloc(nb);
        float *col = gc_alloc(cvae__conv_work_floats(&g));
        float *work = gc_alloc(cvae__conv_par_floats(&g, 4));
        gc_fill_uniform(&r, x, nx, -1, 1);
        gc_fill_uniform(&r, w, nw, -1, 1);
        gc_fill_uniform(&r, b, nb, -1, 1);
        gc_fill_uniform(&r, dy, ny, -1, 1);
        cvae__tconv2d_forward(&g, d->n, x, w, b, y1, col);
        cvae__tconv2d_backward(&g, d->n, x, w, dy, dx1, dw1, db1, col);
        for (int parts = 1; parts <= 4; parts++) {
            gc_fill_nan(y2, ny);
            gc_fill_nan(dx2, nx);
            gc_fill_nan(dw2, nw);
            gc_fill_nan(db2, nb);
            cvae__tconv2d_forward_par(&g, d->n, x, w, b, y2, work, parts);
            cvae__tconv2d_backward_par(&g, d->n, x, w, dy, dx2, dw2, db2, work, parts);
            assert_memory_equal(y1, y2, ny * sizeof *y1);
            assert_memory_equal(dx1, dx2, nx * sizeof *dx1);
            for (size_t q = 0; q < nw; q++)
                assert_true(fabs(dw1[q] - dw2[q]) <= 1e-5 * (1.0 + fabs(dw1[q])));
            for (size_t q = 0; q < nb; q++)
                assert_true(fabs(db1[q] - db2[q]) <= 1e-5 * (1.0 + fabs(db1[q])));
        }
        free(x);
        free(w);
        free(b);
        free(dy);
        free(y1);
        free(dx1);
        free(dw1);
        free(db1);
        free(y2);
        free(dx2);
        free(dw2);
        free(db2);
        free(col);
        free(work);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tconv_geometry),
        cmocka_unit_test(test_tconv_geometry_errors),
        cmocka_unit_test(test_tconv_forward_reference),
        cmocka_unit_test(test_tconv_adjoint),
        cmocka_unit_test(test_tconv_gradcheck),
        cmocka_unit_test(test_tconv_batch_parallel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
