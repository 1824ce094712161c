/* The single-channel small-kernel convolution (lib/layers/conv_small.c):
 * its forward pass and weight gradient against direct double-precision sums
 * over the output positions, for row widths that fill no, one, and two
 * vectors exactly and partly and channel counts around its groups of 8
 * (AVX-512) and 4 (AVX2);
 * then a finite-difference check of a conv layer that takes this path. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_check.h"
#include "core/rng.h"
#include "layers/conv_small.h"

/* dw[c][t] = sum over output positions of dy[c][p] * (the input pixel tap t
 * reads at p, zero outside the image), straight from the definition. */
static void reference_dw(const cvae__conv_geom *g, const float *x, const float *dy, double *dw)
{
    for (int c = 0; c < g->c_out; c++)
        for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++) {
                double s = 0.0;
                for (int oy = 0; oy < g->h_out; oy++)
                    for (int ox = 0; ox < g->w_out; ox++) {
                        const int iy = oy + ky - g->pad_top, ix = ox + kx - g->pad_left;
                        if (iy < 0 || iy >= g->h_in || ix < 0 || ix >= g->w_in)
                            continue;
                        s += (double)dy[((size_t)c * g->h_out + oy) * g->w_out + ox] *
                             (double)x[(size_t)iy * g->w_in + ix];
                    }
                dw[(size_t)c * g->kh * g->kw + (size_t)ky * g->kw + kx] = s;
            }
}

/* y[c][p] = b[c] + sum over taps of w[c][t] * (the pixel tap t reads at p),
 * then the ReLU, in double. */
static void reference_forward(const cvae__conv_geom *g, const float *x, const float *w,
                              const float *b, int relu, double *y)
{
    const int taps = g->kh * g->kw;
    for (int c = 0; c < g->c_out; c++)
        for (int oy = 0; oy < g->h_out; oy++)
            for (int ox = 0; ox < g->w_out; ox++) {
                double s = b ? (double)b[c] : 0.0;
                for (int t = 0; t < taps; t++) {
                    const int iy = oy + t / g->kw - g->pad_top, ix = ox + t % g->kw - g->pad_left;
                    if (iy >= 0 && iy < g->h_in && ix >= 0 && ix < g->w_in)
                        s += (double)w[(size_t)c * taps + t] * (double)x[(size_t)iy * g->w_in + ix];
                }
                y[((size_t)c * g->h_out + oy) * g->w_out + ox] = relu && s < 0.0 ? 0.0 : s;
            }
}

static void check_forward(const cvae__conv_geom *g, const float *x, cvae__rng *r, float *work)
{
    const size_t ny = (size_t)g->c_out * g->h_out * g->w_out;
    const size_t nw = (size_t)g->c_out * g->kh * g->kw;
    float *w = gc_alloc(nw), *b = gc_alloc((size_t)g->c_out), *y = gc_alloc(ny + 16);
    double *want = malloc(ny * sizeof *want);
    assert_non_null(want);
    gc_fill_uniform(r, w, nw, -1, 1);
    gc_fill_uniform(r, b, (size_t)g->c_out, -1, 1);
    for (int relu = 0; relu <= 1; relu++)
        for (int bias = 0; bias <= 1; bias++) {
            /* the outputs are written whole, and nothing past them */
            gc_fill_nan(y, ny + 16);
            cvae__conv_small_forward(g, x, w, bias ? b : NULL, relu, y, work);
            reference_forward(g, x, w, bias ? b : NULL, relu, want);
            for (size_t i = 0; i < ny; i++)
                assert_true(fabs(y[i] - want[i]) <= 1e-5 * (1.0 + fabs(want[i])));
            for (size_t i = ny; i < ny + 16; i++)
                assert_true(isnan(y[i]));
        }
    free(w);
    free(b);
    free(y);
    free(want);
}

static void check_geometry(int c_out, int h, int w, int kh, int kw, cvae__rng *r)
{
    cvae__conv_geom g;
    assert_int_equal(cvae__conv_geom_init(&g, 1, h, w, c_out, kh, kw, 1, CVAE__PAD_SAME), CVAE_OK);
    if (!cvae__conv_small_ok(&g)) {
        print_message("conv_small: neither AVX-512F nor AVX2 here, %dx%d k%dx%d not checked\n", h, w, kh, kw);
        return;
    }
    const size_t nx = (size_t)h * w, ny = (size_t)c_out * h * w, nw = (size_t)c_out * kh * kw;
    float *x = gc_alloc(nx), *dy = gc_alloc(ny), *dw = gc_alloc(nw);
    float *work = gc_alloc(cvae__conv_small_work_floats(&g));
    double *want = malloc(nw * sizeof *want);
    assert_non_null(want);
    gc_fill_uniform(r, x, nx, -1, 1);
    gc_fill_uniform(r, dy, ny, -1, 1);
    /* beta 0 overwrites: what dw held (NaN) must not leak in */
    gc_fill_nan(dw, nw);
    cvae__conv_small_dw(&g, x, dy, 0.0f, dw, work);
    reference_dw(&g, x, dy, want);
    for (size_t i = 0; i < nw; i++)
        assert_true(fabs(dw[i] - want[i]) <= 1e-5 * (1.0 + fabs(want[i])));
    /* beta 1 adds a second image's gradient (here the same image's again) */
    cvae__conv_small_dw(&g, x, dy, 1.0f, dw, work);
    for (size_t i = 0; i < nw; i++)
        assert_true(fabs(dw[i] - 2.0 * want[i]) <= 2e-5 * (1.0 + fabs(want[i])));
    check_forward(&g, x, r, work);
    free(x);
    free(dy);
    free(dw);
    free(work);
    free(want);
}

static void test_matches_reference(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 5);
    check_geometry(16, 28, 28, 3, 3, &r); /* the model's first layer */
    check_geometry(3, 5, 1, 3, 3, &r);
    check_geometry(9, 6, 20, 3, 3, &r);
    check_geometry(2, 4, 16, 3, 3, &r);
    check_geometry(4, 7, 17, 1, 3, &r);
    check_geometry(5, 32, 32, 3, 5, &r);
    check_geometry(2, 3, 31, 5, 3, &r);
    check_geometry(1, 2, 2, 1, 1, &r);
}

static void test_refuses(void **state)
{
    (void)state;
    cvae__conv_geom g;
    assert_int_equal(cvae__conv_geom_init(&g, 2, 8, 8, 4, 3, 3, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_false(cvae__conv_small_ok(&g)); /* two channels */
    assert_int_equal(cvae__conv_geom_init(&g, 1, 8, 8, 4, 3, 3, 2, CVAE__PAD_SAME), CVAE_OK);
    assert_false(cvae__conv_small_ok(&g)); /* stride 2 */
    assert_int_equal(cvae__conv_geom_init(&g, 1, 8, 33, 4, 3, 3, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_false(cvae__conv_small_ok(&g)); /* rows longer than two vectors */
    assert_int_equal(cvae__conv_geom_init(&g, 1, 8, 8, 4, 5, 5, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_false(cvae__conv_small_ok(&g)); /* 25 taps */
    assert_int_equal(cvae__conv_geom_init(&g, 1, 8, 8, 4, 2, 2, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_false(cvae__conv_small_ok(&g)); /* even kernel */
    assert_int_equal(cvae__conv_geom_init(&g, 1, 8, 8, 4, 3, 3, 1, 0), CVAE_OK);
    assert_false(cvae__conv_small_ok(&g)); /* unpadded: a smaller output */
}

/* A whole layer's backward (ReLU-free, a few images), whose weight
 * gradient goes through conv_small.c where the CPU allows, against central
 * differences of its forward pass. */
static void test_layer_gradient(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 17);
    cvae__conv_geom g;
    assert_int_equal(cvae__conv_geom_init(&g, 1, 9, 20, 4, 3, 3, 1, CVAE__PAD_SAME), CVAE_OK);
    const double e = gradcheck_layer(&g, 3, 0, &r);
    print_message("conv_small layer: max rel err %.2e\n", e);
    assert_true(e < GC_TOL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_layer_gradient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
