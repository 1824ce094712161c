/* Helpers shared by the convolution and transposed-convolution tests
 * (test_conv.c, test_tconv.c): sizes of a geometry and the finite-difference
 * check of one layer's dx, dW and db. */
#ifndef CVAE_TEST_CONV_CHECK_H
#define CVAE_TEST_CONV_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "gradcheck.h"
#include "layers/conv.h"
#include "layers/tconv.h"

static GC_UNUSED void clear_error(void) { (void)cvae__fail(CVAE_OK, "%s", ""); }

static GC_UNUSED size_t geom_x(const cvae__conv_geom *g)
{
    return (size_t)g->c_in * g->h_in * g->w_in;
}
static GC_UNUSED size_t geom_y(const cvae__conv_geom *g)
{
    return (size_t)g->c_out * g->h_out * g->w_out;
}
static GC_UNUSED size_t geom_w(const cvae__conv_geom *g)
{
    return (size_t)g->c_out * g->c_in * g->kh * g->kw;
}

static GC_UNUSED void expect_invalid(cvae_status st)
{
    assert_int_equal(st, CVAE_E_INVALID_ARG);
    assert_true(strlen(cvae_last_error()) > 0);
    clear_error();
}

typedef struct conv_ctx {
    const cvae__conv_geom *g;
    int n, deconv;
    float *x, *w, *b, *y, *col;
    const float *R;
    size_t ny;
} conv_ctx;

static GC_UNUSED double conv_loss(void *p)
{
    conv_ctx *c = p;
    if (c->deconv)
        cvae__tconv2d_forward(c->g, c->n, c->x, c->w, c->b, c->y, c->col);
    else
        cvae__conv2d_forward(c->g, c->n, c->x, c->w, c->b, c->y, c->col);
    return gc_dot(c->y, c->R, c->ny);
}

/* Checks dx, dw, db of one layer with central differences of step eps;
 * returns the max relative error. The loss is linear in each of x, w and
 * b, so a large step adds no truncation error: it only shrinks the
 * forward pass's rounding against the difference (the Winograd layers
 * round a few times more than a direct sum, enough to swamp the default
 * step's differences). */
static GC_UNUSED double gradcheck_layer_eps(const cvae__conv_geom *g, int n, int deconv, float eps,
                                            cvae__rng *r)
{
    size_t in_img = deconv ? geom_y(g) : geom_x(g);
    size_t out_img = deconv ? geom_x(g) : geom_y(g);
    size_t nx = (size_t)n * in_img, ny = (size_t)n * out_img, nw = geom_w(g);
    size_t nb = (size_t)(deconv ? g->c_in : g->c_out);
    float *x = gc_alloc(nx), *w = gc_alloc(nw), *b = gc_alloc(nb), *y = gc_alloc(ny);
    float *R = gc_alloc(ny), *col = gc_alloc(cvae__conv_work_floats(g));
    float *dx = gc_alloc(nx), *dw = gc_alloc(nw), *db = gc_alloc(nb);
    float *dw2 = gc_alloc(nw), *db2 = gc_alloc(nb);
    gc_fill_uniform(r, x, nx, -1, 1);
    gc_fill_uniform(r, w, nw, -1, 1);
    gc_fill_uniform(r, b, nb, -1, 1);
    gc_fill_uniform(r, R, ny, -1, 1);
    /* Gradients must be overwritten, not accumulated. */
    gc_fill_nan(dx, nx);
    gc_fill_nan(dw, nw);
    gc_fill_nan(db, nb);
    if (deconv)
        cvae__tconv2d_backward(g, n, x, w, R, dx, dw, db, col);
    else
        cvae__conv2d_backward(g, n, x, w, R, dx, dw, db, col);

    conv_ctx c = {g, n, deconv, x, w, b, y, col, R, ny};
    double e = gc_check(conv_loss, &c, x, dx, nx, eps);
    double ew = gc_check(conv_loss, &c, w, dw, nw, eps);
    double eb = gc_check(conv_loss, &c, b, db, nb, eps);
    if (ew > e)
        e = ew;
    if (eb > e)
        e = eb;
    if (e > GC_TOL)
        printf("%s c_in %d %dx%d c_out %d %dx%d k%dx%d s%d pad %d,%d: dx %g dw %g db %g\n",
               deconv ? "deconv" : "conv", g->c_in, g->h_in, g->w_in, g->c_out, g->h_out,
               g->w_out, g->kh, g->kw, g->stride, g->pad_top, g->pad_left, e, ew, eb);

    /* dx == NULL is allowed and must not change dw / db. */
    gc_fill_nan(dw2, nw);
    gc_fill_nan(db2, nb);
    if (deconv)
        cvae__tconv2d_backward(g, n, x, w, R, NULL, dw2, db2, col);
    else
        cvae__conv2d_backward(g, n, x, w, R, NULL, dw2, db2, col);
    assert_memory_equal(dw, dw2, nw * sizeof *dw);
    assert_memory_equal(db, db2, nb * sizeof *db);

    free(x);
    free(w);
    free(b);
    free(y);
    free(R);
    free(col);
    free(dx);
    free(dw);
    free(db);
    free(dw2);
    free(db2);
    return e;
}

/* Checks dx, dw, db of one layer; returns the max relative error. */
static GC_UNUSED double gradcheck_layer(const cvae__conv_geom *g, int n, int deconv, cvae__rng *r)
{
    return gradcheck_layer_eps(g, n, deconv, GC_EPS, r);
}

/* Gradient checks of `count` layers of random geometry (sizes up to max_hw,
 * kernels up to 5, strides up to 3, padding -1 = CVAE__PAD_SAME .. 2);
 * geometries the layer refuses are skipped. Returns the worst error. */
static GC_UNUSED double gradcheck_random_layers(cvae__rng *r, int deconv, int count, int max_hw)
{
    double worst = 0.0;
    int done = 0;
    while (done < count) {
        int cin = 1 + (int)cvae__rng_below(r, 3), cout = 1 + (int)cvae__rng_below(r, 3);
        int h = 1 + (int)cvae__rng_below(r, (uint64_t)max_hw);
        int w = 1 + (int)cvae__rng_below(r, (uint64_t)max_hw);
        int kh = 1 + (int)cvae__rng_below(r, 5), kw = 1 + (int)cvae__rng_below(r, 5);
        int st = 1 + (int)cvae__rng_below(r, 3);
        int pad = (int)cvae__rng_below(r, 4) - 1;
        cvae__conv_geom g;
        clear_error();
        cvae_status s = deconv ? cvae__tconv_geom_init(&g, cin, h, w, cout, kh, kw, st, pad)
                               : cvae__conv_geom_init(&g, cin, h, w, cout, kh, kw, st, pad);
        if (s != CVAE_OK) {
            assert_true(strlen(cvae_last_error()) > 0);
            continue;
        }
        double e = gradcheck_layer(&g, 1 + (int)cvae__rng_below(r, 2), deconv, r);
        if (e > worst)
            worst = e;
        done++;
    }
    return worst;
}

#endif
