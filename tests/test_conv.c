/* Convolution (lib/layers/conv.c): geometry, forward passes (and weight
 * gradients) against direct
 * loops, finite-difference gradients, batch accumulation and the fused
 * batch-parallel ReLU forms. The transposed convolution is in
 * test_tconv.c. */
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

#include "convvae.h"
#include "core/error.h"
#include "core/threads.h"
#include "layers/conv.h"
#include "layers/im2col.h"
#include "conv_check.h"
#include "layers/conv_wino.h"
#include "gradcheck.h"
#include "core/rng.h"

/* A conv problem as the test states it, independent of cvae__conv_geom. */
typedef struct spec {
    int n, c_in, h, w, c_out, kh, kw, stride, pad;
} spec;

/* Expected output size and leading pad along one axis, from the textbook
 * formulas (PyTorch for explicit pad, TensorFlow for "same"). */
static void expect_axis(int in, int k, int s, int pad, int *out, int *lead)
{
    if (pad == CVAE__PAD_SAME) {
        *out = (in + s - 1) / s;
        int total = (*out - 1) * s + k - in;
        if (total < 0)
            total = 0;
        *lead = total / 2;
    } else {
        *out = (in + 2 * pad - k) / s + 1;
        *lead = pad;
    }
}

/* Direct 7-loop convolution (cross-correlation, as PyTorch), accumulated in
 * double. y has n*c_out*ho*wo entries. */
static void ref_conv(const spec *s, const float *x, const float *w, const float *b, double *y)
{
    int ho, wo, pt, pl;
    expect_axis(s->h, s->kh, s->stride, s->pad, &ho, &pt);
    expect_axis(s->w, s->kw, s->stride, s->pad, &wo, &pl);
    for (int n = 0; n < s->n; n++)
        for (int co = 0; co < s->c_out; co++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    double acc = b ? b[co] : 0.0;
                    for (int ci = 0; ci < s->c_in; ci++)
                        for (int ky = 0; ky < s->kh; ky++)
                            for (int kx = 0; kx < s->kw; kx++) {
                                int iy = oy * s->stride - pt + ky;
                                int ix = ox * s->stride - pl + kx;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                                    continue;
                                acc += (double)x[((n * s->c_in + ci) * s->h + iy) * s->w + ix] *
                                       w[((co * s->c_in + ci) * s->kh + ky) * s->kw + kx];
                            }
                    y[((n * s->c_out + co) * ho + oy) * wo + ox] = acc;
                }
}

static void test_conv_hand_example(void **state)
{
    (void)state;
    cvae__conv_geom g;
    assert_int_equal(cvae__conv_geom_init(&g, 1, 3, 3, 1, 2, 2, 1, 0), CVAE_OK);
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    float w[4] = {1, 0, 0, -1};
    float b[1] = {0.5f};
    float y[4], col[16];
    cvae__conv2d_forward(&g, 1, x, w, b, y, col);
    for (int i = 0; i < 4; i++)
        assert_float_equal(y[i], -3.5f, 1e-6f);

    /* Transposed: a 2x2 stride-2 kernel turns each input pixel into a
     * scaled copy of the kernel. */
    assert_int_equal(cvae__tconv_geom_init(&g, 1, 2, 2, 1, 2, 2, 2, 0), CVAE_OK);
    float xi[4] = {1, 2, 3, 4};
    float k[4] = {1, 10, 100, 1000};
    float out[16], dcol[16];
    cvae__tconv2d_forward(&g, 1, xi, k, NULL, out, dcol);
    const float want[16] = {1,   10,   2,   20,   100, 1000, 200, 2000,
                            3,   30,   4,   40,   300, 3000, 400, 4000};
    for (int i = 0; i < 16; i++)
        assert_float_equal(out[i], want[i], 1e-3f);
}

static void run_conv_reference(const spec *s, cvae__rng *r)
{
    cvae__conv_geom g;
    assert_int_equal(cvae__conv_geom_init(&g, s->c_in, s->h, s->w, s->c_out, s->kh, s->kw,
                                          s->stride, s->pad),
                     CVAE_OK);
    int ho, wo, pt, pl;
    expect_axis(s->h, s->kh, s->stride, s->pad, &ho, &pt);
    expect_axis(s->w, s->kw, s->stride, s->pad, &wo, &pl);
    assert_int_equal(g.h_out, ho);
    assert_int_equal(g.w_out, wo);
    assert_int_equal(g.pad_top, pt);
    assert_int_equal(g.pad_left, pl);

    size_t nx = (size_t)s->n * geom_x(&g), ny = (size_t)s->n * geom_y(&g), nw = geom_w(&g);
    float *x = gc_alloc(nx), *w = gc_alloc(nw), *b = gc_alloc((size_t)s->c_out);
    float *y = gc_alloc(ny), *col = gc_alloc(cvae__conv_work_floats(&g));
    double *want = calloc(ny, sizeof *want);
    assert_non_null(want);
    gc_fill_uniform(r, x, nx, -1, 1);
    gc_fill_uniform(r, w, nw, -1, 1);
    gc_fill_uniform(r, b, (size_t)s->c_out, -1, 1);
    gc_fill_nan(y, ny);
    cvae__conv2d_forward(&g, s->n, x, w, b, y, col);
    ref_conv(s, x, w, b, want);
    double err = gc_max_rel_diff(y, want, ny, 1.0);
    /* A float32 sum of K = c_in*kh*kw products may lose ~K ulps in the worst
     * case, and the order of the sum depends on the GEMM kernel (AVX2 and
     * AVX-512 block K differently): bound the error by K, not a constant.
     * The Winograd path (conv_wino.c) sums transformed values up to ~30
     * times the inputs': a bound 25 times wider per product (its own test
     * holds it to the sum of the products' magnitudes). */
    const double per = cvae__conv_wino_pays(&g, s->n) ? 5e-6 : 2e-7;
    double tol = fmax(1e-5, per * (double)(s->c_in * s->kh * s->kw));
    if (err > tol)
        printf("conv n%d c%d %dx%d -> c%d k%dx%d s%d p%d: err %g (tolerance %g)\n", s->n,
               s->c_in, s->h, s->w, s->c_out, s->kh, s->kw, s->stride, s->pad, err, tol);
    assert_true(err < tol);

    /* The weight gradient (im2col + GEMM, or the implicit product) against
     * the direct sum dW[co][ci][ky][kx] = sum over images and output
     * positions of dy * the input the tap sees there, within 1e-5 of the
     * sum of the magnitudes of its terms. */
    float *dy = gc_alloc(ny), *dw = gc_alloc(nw);
    gc_fill_uniform(r, dy, ny, -1, 1);
    gc_fill_nan(dw, nw);
    cvae__conv2d_backward(&g, s->n, x, w, dy, NULL, dw, NULL, col);
    const size_t hw_in = (size_t)s->h * (size_t)s->w, hw_out = (size_t)g.h_out * (size_t)g.w_out;
    for (int co = 0; co < s->c_out; co++)
        for (int ci = 0; ci < s->c_in; ci++)
            for (int ky = 0; ky < s->kh; ky++)
                for (int kx = 0; kx < s->kw; kx++) {
                    double sum = 0, mag = 0;
                    for (int i = 0; i < s->n; i++)
                        for (int oy = 0; oy < g.h_out; oy++)
                            for (int ox = 0; ox < g.w_out; ox++) {
                                const int iy = oy * s->stride + ky - g.pad_top;
                                const int ix = ox * s->stride + kx - g.pad_left;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                                    continue;
                                const double t =
                                    (double)dy[((size_t)i * s->c_out + co) * hw_out +
                                               (size_t)oy * g.w_out + ox] *
                                    x[((size_t)i * s->c_in + ci) * hw_in + (size_t)iy * s->w + ix];
                                sum += t;
                                mag += fabs(t);
                            }
                    const float got =
                        dw[(((size_t)co * s->c_in + ci) * s->kh + ky) * s->kw + kx];
                    assert_true(fabs((double)got - sum) <= 1e-5 * mag + 1e-6);
                }
    free(dy);
    free(dw);
    free(x);
    free(w);
    free(b);
    free(y);
    free(col);
    free(want);
}

static void test_conv_forward_reference(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 1);
    const spec specs[] = {
        {2, 1, 28, 28, 16, 3, 3, 1, CVAE__PAD_SAME}, /* model branch 1 */
        {1, 16, 14, 14, 32, 5, 5, 1, CVAE__PAD_SAME}, /* model branch 2 */
        {3, 3, 7, 5, 4, 3, 3, 1, 0},
        {2, 2, 9, 8, 3, 3, 3, 2, 1},
        {2, 2, 8, 7, 3, 4, 2, 2, CVAE__PAD_SAME}, /* even kernel, stride 2 */
        {1, 3, 6, 6, 2, 2, 2, 1, CVAE__PAD_SAME},
        {2, 4, 5, 7, 3, 1, 1, 1, 0},               /* 1x1 fast path */
        {1, 2, 5, 5, 2, 1, 1, 2, 0},               /* 1x1 strided */
        {1, 1, 4, 4, 1, 5, 5, 1, 2},               /* kernel > input */
        {1, 2, 3, 9, 2, 3, 7, 3, 3},               /* pad > k/2 */
        {1, 1, 1, 1, 2, 3, 3, 1, CVAE__PAD_SAME},
        {2, 16, 28, 28, 16, 3, 3, 1, CVAE__PAD_SAME}, /* n > 1: inner layers */
        {1, 16, 14, 14, 16, 5, 5, 1, CVAE__PAD_SAME},
        {2, 24, 7, 6, 5, 5, 5, 1, CVAE__PAD_SAME}, /* k = 600: two k blocks */
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        run_conv_reference(&specs[i], &r);
}

static const spec conv_grad_specs[] = {
    {2, 3, 7, 5, 4, 3, 3, 1, CVAE__PAD_SAME},
    {2, 2, 8, 6, 3, 2, 4, 2, CVAE__PAD_SAME}, /* even kernel, stride 2 */
    {1, 2, 7, 7, 2, 4, 4, 1, CVAE__PAD_SAME}, /* even kernel, odd input */
    {1, 1, 9, 9, 2, 5, 3, 2, 1},
    {3, 2, 6, 7, 2, 1, 1, 1, 0},              /* 1x1 fast path */
    {2, 3, 5, 6, 2, 4, 4, 3, 2},
    {1, 2, 5, 5, 3, 3, 3, 2, 0},
    /* stride 1, odd kernel, size kept, c_out <= c_in: dX runs as a conv with
     * the kernel rotated (lib/layers/conv.c adjoint_is_conv) */
    {2, 4, 6, 5, 3, 3, 3, 1, CVAE__PAD_SAME},
    {1, 3, 5, 7, 3, 5, 3, 1, CVAE__PAD_SAME},
    {1, 4, 5, 4, 24, 5, 5, 1, CVAE__PAD_SAME}, /* dX's k = 24 * 25: two k blocks */
};

static void test_conv_gradcheck(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 4);
    double worst = 0.0;
    for (size_t i = 0; i < sizeof conv_grad_specs / sizeof conv_grad_specs[0]; i++) {
        const spec *s = &conv_grad_specs[i];
        cvae__conv_geom g;
        assert_int_equal(cvae__conv_geom_init(&g, s->c_in, s->h, s->w, s->c_out, s->kh, s->kw,
                                              s->stride, s->pad),
                         CVAE_OK);
        double e = gradcheck_layer(&g, s->n, 0, &r);
        if (e > worst)
            worst = e;
    }
    /* Random shapes: odd sizes, strides 1-3, explicit and "same" padding. */
    double e = gradcheck_random_layers(&r, 0, 8, 9);
    if (e > worst)
        worst = e;
    gc_report("conv2d (dx, dW, db)", worst);
    assert_true(worst < GC_TOL);
}

/* Batch gradients are sums over images: a 3-image batch's dW equals the sum
 * of three 1-image dWs (checks the beta=1 accumulation across images). */
static void test_conv_batch_accumulation(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 6);
    cvae__conv_geom g;
    assert_int_equal(cvae__conv_geom_init(&g, 2, 6, 5, 3, 3, 3, 1, CVAE__PAD_SAME), CVAE_OK);
    const int n = 3;
    size_t nx = n * geom_x(&g), ny = n * geom_y(&g), nw = geom_w(&g);
    float *x = gc_alloc(nx), *w = gc_alloc(nw), *dy = gc_alloc(ny);
    float *dw = gc_alloc(nw), *one = gc_alloc(nw), *db = gc_alloc(3), *db1 = gc_alloc(3);
    float *col = gc_alloc(cvae__conv_work_floats(&g));
    double sum_w[54] = {0}, sum_b[3] = {0};
    assert_int_equal(nw, 54);
    gc_fill_uniform(&r, x, nx, -1, 1);
    gc_fill_uniform(&r, w, nw, -1, 1);
    gc_fill_uniform(&r, dy, ny, -1, 1);
    cvae__conv2d_backward(&g, n, x, w, dy, NULL, dw, db, col);
    for (int i = 0; i < n; i++) {
        cvae__conv2d_backward(&g, 1, x + i * geom_x(&g), w, dy + i * geom_y(&g), NULL, one, db1,
                              col);
        for (size_t j = 0; j < nw; j++)
            sum_w[j] += one[j];
        for (int j = 0; j < 3; j++)
            sum_b[j] += db1[j];
    }
    assert_true(gc_max_rel_diff(dw, sum_w, nw, 1.0) < 1e-5);
    assert_true(gc_max_rel_diff(db, sum_b, 3, 1.0) < 1e-5);
    free(x);
    free(w);
    free(dy);
    free(dw);
    free(one);
    free(db);
    free(db1);
    free(col);
}

/* conv2d_relu_forward/backward equal conv2d_forward + ReLU and the ReLU
 * derivative + conv2d_backward, on shapes of every code path, with the batch
 * in one part (bit for bit) and in several (dw, db summed per part: equal to
 * rounding). The batch-parallel deconv functions likewise. */
static void check_relu_fused(const spec *s, int parts, cvae__rng *r)
{
    cvae__conv_geom g;
    assert_int_equal(cvae__conv_geom_init(&g, s->c_in, s->h, s->w, s->c_out, s->kh, s->kw,
                                          s->stride, s->pad),
                     CVAE_OK);
    size_t nx = (size_t)s->n * geom_x(&g), ny = (size_t)s->n * geom_y(&g), nw = geom_w(&g);
    size_t nb = (size_t)g.c_out;
    float *x = gc_alloc(nx), *w = gc_alloc(nw), *b = gc_alloc(nb);
    float *y1 = gc_alloc(ny), *y2 = gc_alloc(ny), *dy1 = gc_alloc(ny), *dy2 = gc_alloc(ny);
    float *dx1 = gc_alloc(nx), *dx2 = gc_alloc(nx), *dw1 = gc_alloc(nw), *dw2 = gc_alloc(nw);
    float *db1 = gc_alloc(nb), *db2 = gc_alloc(nb);
    float *col = gc_alloc(cvae__conv_work_floats(&g));
    float *work = gc_alloc(cvae__conv_par_floats(&g, parts));
    gc_fill_uniform(r, x, nx, -1, 1);
    gc_fill_uniform(r, w, nw, -1, 1);
    gc_fill_uniform(r, b, nb, -1, 1);
    gc_fill_uniform(r, dy1, ny, -1, 1);
    memcpy(dy2, dy1, ny * sizeof *dy1);

    cvae__conv2d_forward(&g, s->n, x, w, b, y1, col);
    size_t pos = 0;
    for (size_t i = 0; i < ny; i++) {
        pos += y1[i] > 0.0f;
        y1[i] = y1[i] < 0.0f ? 0.0f : y1[i];
    }
    assert_true(pos > 0 && pos < ny); /* both sides of the kink are exercised */
    gc_fill_nan(y2, ny);
    cvae__conv2d_relu_forward(&g, s->n, x, w, b, y2, work, parts);
    assert_memory_equal(y1, y2, ny * sizeof *y1);

    for (size_t i = 0; i < ny; i++)
        dy1[i] = y1[i] > 0.0f ? dy1[i] : 0.0f;
    cvae__conv2d_backward(&g, s->n, x, w, dy1, dx1, dw1, db1, col);
    gc_fill_nan(dx2, nx);
    gc_fill_nan(dw2, nw);
    gc_fill_nan(db2, nb);
    cvae__conv2d_relu_backward(&g, s->n, x, w, y2, dy2, dx2, dw2, db2, work, parts);
    assert_memory_equal(dy1, dy2, ny * sizeof *dy1); /* dy2 masked in place */
    assert_memory_equal(dx1, dx2, nx * sizeof *dx1);
    if (parts == 1) {
        assert_memory_equal(dw1, dw2, nw * sizeof *dw1);
        assert_memory_equal(db1, db2, nb * sizeof *db1);
    } else {
        double *w1 = malloc(nw * sizeof *w1), *b1 = malloc(nb * sizeof *b1);
        assert_non_null(w1);
        assert_non_null(b1);
        for (size_t i = 0; i < nw; i++)
            w1[i] = dw1[i];
        for (size_t i = 0; i < nb; i++)
            b1[i] = db1[i];
        /* the Winograd weight gradient sums images in groups, which the
         * parts cut differently, and rounds about 20 times more than a
         * direct sum (conv_wino.h) */
        const double tol = cvae__conv_wino_pays(&g, s->n) ? 5e-4 : 1e-5;
        assert_true(gc_max_rel_diff(dw2, w1, nw, 1.0) < tol);
        assert_true(gc_max_rel_diff(db2, b1, nb, 1.0) < 1e-5);
        free(w1);
        free(b1);
    }

    /* The same geometry read as a transposed conv: the forward of the
     * adjoint maps y-sized input to x-sized output. */
    float *t1 = gc_alloc(nx), *t2 = gc_alloc(nx), *bt = gc_alloc((size_t)g.c_in);
    gc_fill_uniform(r, bt, (size_t)g.c_in, -1, 1);
    cvae__tconv2d_forward(&g, s->n, dy1, w, bt, t1, col);
    gc_fill_nan(t2, nx);
    cvae__tconv2d_forward_par(&g, s->n, dy1, w, bt, t2, work, parts);
    assert_memory_equal(t1, t2, nx * sizeof *t1);
    float *ex1 = gc_alloc(ny), *ex2 = gc_alloc(ny), *ebt1 = gc_alloc((size_t)g.c_in);
    float *ebt2 = gc_alloc((size_t)g.c_in);
    cvae__tconv2d_backward(&g, s->n, dy1, w, x, ex1, dw1, ebt1, col);
    gc_fill_nan(ex2, ny);
    gc_fill_nan(dw2, nw);
    gc_fill_nan(ebt2, (size_t)g.c_in);
    cvae__tconv2d_backward_par(&g, s->n, dy1, w, x, ex2, dw2, ebt2, work, parts);
    assert_memory_equal(ex1, ex2, ny * sizeof *ex1);
    double *w1 = malloc(nw * sizeof *w1), *b1 = malloc((size_t)g.c_in * sizeof *b1);
    assert_non_null(w1);
    assert_non_null(b1);
    for (size_t i = 0; i < nw; i++)
        w1[i] = dw1[i];
    for (int i = 0; i < g.c_in; i++)
        b1[i] = ebt1[i];
    assert_true(gc_max_rel_diff(dw2, w1, nw, 1.0) < (cvae__conv_wino_pays(&g, s->n) ? 5e-4 : 1e-5));
    assert_true(gc_max_rel_diff(ebt2, b1, (size_t)g.c_in, 1.0) < 1e-5);
    free(w1);
    free(b1);

    float *bufs[] = {x,  w,  b,    y1,  y2,  dy1, dy2, dx1,  dx2,  dw1,
                     dw2, db1, db2, col, work, t1, t2, bt, ex1, ex2, ebt1, ebt2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
}

static void test_conv_relu_fused(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 7);
    const spec specs[] = {
        {3, 1, 28, 28, 16, 3, 3, 1, CVAE__PAD_SAME},
        {4, 16, 14, 14, 32, 5, 5, 1, CVAE__PAD_SAME},
        {3, 16, 14, 14, 16, 3, 3, 1, CVAE__PAD_SAME},
        {2, 2, 9, 8, 3, 3, 3, 2, 1},
        {2, 4, 5, 7, 3, 1, 1, 1, 0},
        {5, 3, 8, 8, 2, 2, 2, 2, 0}, /* kernel = stride: the unpooling path as deconv */
    };
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++)
        for (int parts = 1; parts <= 3; parts += 2)
            check_relu_fused(&specs[k], parts, &r);
}

/* CVAE_TEST_LIGHT (scripts/check-valgrind.sh sets it): the cut tests run
 * the small strided layer only, with fewer learned cuts (the same code
 * paths of conv.c; the Winograd layer alone took half a minute under
 * valgrind). */
static int light(void) { return getenv("CVAE_TEST_LIGHT") != NULL; }

/* On 2 threads a batch of at least 36 images is cut at the threads'
 * learned share (conv.c). The forward pass: at a quarter, three quarters or
 * as learned, every image gets the floats the whole batch in one run gives,
 * on a Winograd layer too, down to the smallest batch cut this way (a run
 * of 9); the transposed convolution's forward pass likewise. The backward
 * pass of a layer with an input gradient runs as two jobs: the weight
 * gradient still sums each fixed half of the batch and then adds the
 * halves, and the input gradient is cut at the share. Whatever the share:
 * dy masked and dx as one run gives them, dw the float sum of the two
 * halves' gradients, and db within rounding of the one-run sum (its
 * halves are added in double before rounding). */
static void check_cut(const spec *s, cvae__rng *r)
{
    cvae__conv_geom g;
    assert_int_equal(cvae__conv_geom_init(&g, s->c_in, s->h, s->w, s->c_out, s->kh, s->kw,
                                          s->stride, s->pad),
                     CVAE_OK);
    const int n = s->n, half = n / 2;
    const size_t xi = geom_x(&g), yi = geom_y(&g);
    const size_t nx = (size_t)n * xi, ny = (size_t)n * yi, nw = geom_w(&g), nb = (size_t)g.c_out;
    float *x = gc_alloc(nx), *w = gc_alloc(nw), *b = gc_alloc(nb), *bt = gc_alloc((size_t)g.c_in);
    float *y = gc_alloc(ny), *y2 = gc_alloc(ny), *t1 = gc_alloc(nx), *t2 = gc_alloc(nx);
    float *dy0 = gc_alloc(ny), *dy1 = gc_alloc(ny), *dy2 = gc_alloc(ny);
    float *dx1 = gc_alloc(nx), *dx2 = gc_alloc(nx), *dwa = gc_alloc(nw), *dwb = gc_alloc(nw);
    float *dw2 = gc_alloc(nw), *db1 = gc_alloc(nb), *db2 = gc_alloc(nb), *dbh = gc_alloc(nb);
    float *work = gc_alloc(cvae__conv_par_floats(&g, 2));
    gc_fill_uniform(r, x, nx, -1, 1);
    gc_fill_uniform(r, w, nw, -1, 1);
    gc_fill_uniform(r, b, nb, -1, 1);
    gc_fill_uniform(r, bt, (size_t)g.c_in, -1, 1);
    gc_fill_uniform(r, dy0, ny, -1, 1);
    /* the references: the whole batch in one run, and for dw each half in
     * one run */
    cvae__conv2d_relu_forward(&g, n, x, w, b, y, work, 1);
    cvae__tconv2d_forward_par(&g, n, y, w, bt, t1, work, 1);
    memcpy(dy1, dy0, ny * sizeof *dy0);
    cvae__conv2d_relu_backward(&g, n, x, w, y, dy1, dx1, dwa, db1, work, 1);
    memcpy(dy2, dy0, ny * sizeof *dy0);
    cvae__conv2d_relu_backward(&g, half, x, w, y, dy2, dx2, dwa, dbh, work, 1);
    cvae__conv2d_relu_backward(&g, n - half, x + (size_t)half * xi, w, y + (size_t)half * yi,
                               dy2 + (size_t)half * yi, dx2 + (size_t)half * xi, dwb, dbh, work, 1);
    for (size_t i = 0; i < nw; i++)
        dwa[i] += dwb[i];
    double *b1 = malloc(nb * sizeof *b1);
    assert_non_null(b1);
    for (size_t i = 0; i < nb; i++)
        b1[i] = db1[i];
    const double shares[] = {0.25, 0.75, 0.0};
    for (int i = 0; i < 3; i++) {
        cvae__parallel_fix_share(shares[i]);
        for (int rep = 0; rep < (shares[i] > 0.0 ? 1 : light() ? 2 : 20); rep++) {
            gc_fill_nan(y2, ny);
            cvae__conv2d_relu_forward(&g, n, x, w, b, y2, work, 2);
            assert_memory_equal(y, y2, ny * sizeof *y);
            gc_fill_nan(t2, nx);
            cvae__tconv2d_forward_par(&g, n, y, w, bt, t2, work, 2);
            assert_memory_equal(t1, t2, nx * sizeof *t1);
            memcpy(dy2, dy0, ny * sizeof *dy0);
            gc_fill_nan(dx2, nx);
            gc_fill_nan(dw2, nw);
            gc_fill_nan(db2, nb);
            cvae__conv2d_relu_backward(&g, n, x, w, y, dy2, dx2, dw2, db2, work, 2);
            assert_memory_equal(dy1, dy2, ny * sizeof *dy1);
            assert_memory_equal(dx1, dx2, nx * sizeof *dx1);
            assert_memory_equal(dwa, dw2, nw * sizeof *dwa);
            assert_true(gc_max_rel_diff(db2, b1, nb, 1.0) < 1e-6);
        }
    }
    cvae__parallel_fix_share(0.0);
    free(b1);
    float *bufs[] = {x,   w,   b,   bt,  y,   y2,  t1,  t2,  dy0, dy1, dy2,
                     dx1, dx2, dwa, dwb, dw2, db1, db2, dbh, work};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
}

static void test_conv_cut(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 11);
    const spec specs[] = {
        {36, 16, 14, 14, 32, 5, 5, 1, CVAE__PAD_SAME},
        {40, 1, 28, 28, 16, 3, 3, 1, CVAE__PAD_SAME},
        {41, 16, 14, 14, 16, 3, 3, 1, CVAE__PAD_SAME},
        {40, 3, 9, 8, 4, 3, 3, 2, 1},
    };
    assert_int_equal(cvae_set_num_threads(2), CVAE_OK);
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++)
        if (!light() || k == 3)
            check_cut(&specs[k], &r);
    assert_int_equal(cvae_set_num_threads(1), CVAE_OK);
}

/* The plane sums behind every bias gradient: eight partial sums in double,
 * element j to sum j % 8, combined pairwise, the tail added to a ninth;
 * whichever way the library vectorises them, the same value to the bit. */
static void test_plane_sum_order(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 23);
    float v[203];
    for (size_t i = 0; i < 203; i++)
        v[i] = (cvae__rng_uniform(&r) - 0.5f) * (i % 7 == 0 ? 1e6f : 1.0f);
    for (size_t len = 0; len <= 203; len++) {
        double acc[8] = {0}, t = 0.0;
        const size_t body = len / 8 * 8;
        for (size_t j = 0; j < body; j++)
            acc[j % 8] += (double)v[j];
        for (size_t j = body; j < len; j++)
            t += (double)v[j];
        const double want =
            t + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        const double got = cvae__conv_plane_sum(v, len);
        assert_memory_equal(&got, &want, sizeof got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_hand_example),
        cmocka_unit_test(test_conv_forward_reference),
        cmocka_unit_test(test_conv_gradcheck),
        cmocka_unit_test(test_conv_batch_accumulation),
        cmocka_unit_test(test_conv_relu_fused),
        cmocka_unit_test(test_conv_cut),
        cmocka_unit_test(test_plane_sum_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
