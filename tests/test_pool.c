/* Max pooling: geometry, forward/argmax against a direct loop, exact
 * gradient routing, finite differences away from ties. */
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

#include "core/error.h"
#include "gradcheck.h"
#include "core/rng.h"
#include "layers/pool.h"

static void clear_error(void) { (void)cvae__fail(CVAE_OK, "%s", ""); }

static void expect_invalid(cvae_status st)
{
    assert_int_equal(st, CVAE_E_INVALID_ARG);
    assert_true(strlen(cvae_last_error()) > 0);
    clear_error();
}

static void test_pool_geometry(void **state)
{
    (void)state;
    cvae__pool_geom g;
    assert_int_equal(cvae__pool_geom_init(&g, 16, 28, 28, 2, 2), CVAE_OK);
    assert_int_equal(g.h_out, 14);
    assert_int_equal(g.w_out, 14);
    /* Floor mode: the last odd row/column is dropped. */
    assert_int_equal(cvae__pool_geom_init(&g, 1, 7, 5, 2, 2), CVAE_OK);
    assert_int_equal(g.h_out, 3);
    assert_int_equal(g.w_out, 2);
    assert_int_equal(cvae__pool_geom_init(&g, 1, 7, 7, 3, 2), CVAE_OK);
    assert_int_equal(g.h_out, 3);
    assert_int_equal(cvae__pool_geom_init(&g, 1, 3, 3, 3, 5), CVAE_OK);
    assert_int_equal(g.h_out, 1);

    clear_error();
    expect_invalid(cvae__pool_geom_init(NULL, 1, 4, 4, 2, 2));
    expect_invalid(cvae__pool_geom_init(&g, 0, 4, 4, 2, 2));
    expect_invalid(cvae__pool_geom_init(&g, 1, -4, 4, 2, 2));
    expect_invalid(cvae__pool_geom_init(&g, 1, 4, 0, 2, 2));
    expect_invalid(cvae__pool_geom_init(&g, 1, 4, 4, 0, 2));
    expect_invalid(cvae__pool_geom_init(&g, 1, 4, 4, 2, 0));
    expect_invalid(cvae__pool_geom_init(&g, 1, 4, 4, 2, -1));
    /* Window larger than the input. */
    expect_invalid(cvae__pool_geom_init(&g, 1, 4, 8, 5, 1));
    expect_invalid(cvae__pool_geom_init(&g, 1, 8, 1, 2, 2));
    /* c*h*w overflows int. */
    expect_invalid(cvae__pool_geom_init(&g, 1024, 65536, 65536, 2, 2));
    expect_invalid(cvae__pool_geom_init(&g, 3, 32768, 32768, 2, 2));
}

/* Direct max pooling with the first-maximum rule, written independently. */
static void ref_pool(const cvae__pool_geom *g, int n, const float *x, float *y, int32_t *am)
{
    for (int p = 0; p < n * g->c; p++)
        for (int oy = 0; oy < g->h_out; oy++)
            for (int ox = 0; ox < g->w_out; ox++) {
                int bi = -1;
                float bv = -INFINITY;
                for (int i = 0; i < g->k; i++)
                    for (int j = 0; j < g->k; j++) {
                        int iy = oy * g->stride + i, ix = ox * g->stride + j;
                        float v = x[(size_t)p * g->h_in * g->w_in + iy * g->w_in + ix];
                        if (bi < 0 || v > bv) {
                            bv = v;
                            bi = iy * g->w_in + ix;
                        }
                    }
                size_t o = (size_t)p * g->h_out * g->w_out + oy * g->w_out + ox;
                y[o] = bv;
                am[o] = bi;
            }
}

static void test_pool_forward_reference(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 11);
    const int shapes[][6] = {
        /* n, c, h, w, k, stride */
        {2, 3, 8, 8, 2, 2}, {2, 2, 7, 9, 2, 2}, {1, 3, 7, 7, 3, 2},
        {2, 1, 5, 6, 3, 1}, {1, 2, 9, 4, 2, 3}, {3, 2, 28, 28, 2, 2},
        {1, 2, 5, 71, 2, 2}, {2, 3, 14, 14, 2, 2}, {1, 1, 2, 64, 2, 2},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *q = shapes[s];
        cvae__pool_geom g;
        assert_int_equal(cvae__pool_geom_init(&g, q[1], q[2], q[3], q[4], q[5]), CVAE_OK);
        size_t nx = (size_t)q[0] * q[1] * q[2] * q[3];
        size_t ny = (size_t)q[0] * q[1] * g.h_out * g.w_out;
        float *x = gc_alloc(nx), *y = gc_alloc(ny), *ry = gc_alloc(ny);
        int32_t *am = calloc(ny, sizeof *am), *ram = calloc(ny, sizeof *ram);
        assert_non_null(am);
        assert_non_null(ram);
        /* Values on a coarse grid so ties occur and the tie rule is tested. */
        for (size_t i = 0; i < nx; i++)
            x[i] = (float)cvae__rng_below(&r, 5) - 2.0f;
        cvae__maxpool_forward(&g, q[0], x, y, am);
        ref_pool(&g, q[0], x, ry, ram);
        assert_memory_equal(y, ry, ny * sizeof *y);
        assert_memory_equal(am, ram, ny * sizeof *am);
        free(x);
        free(y);
        free(ry);
        free(am);
        free(ram);
    }

    /* All-equal input: every window picks its top-left element. */
    cvae__pool_geom g;
    assert_int_equal(cvae__pool_geom_init(&g, 1, 4, 6, 2, 2), CVAE_OK);
    float x[24], y[6];
    int32_t am[6];
    for (int i = 0; i < 24; i++)
        x[i] = 0.25f;
    cvae__maxpool_forward(&g, 1, x, y, am);
    const int32_t want[6] = {0, 2, 4, 12, 14, 16};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(am[i], want[i]);
        assert_true(y[i] == 0.25f);
    }
}

/* Non-overlapping 2x2 windows with one planted maximum each: the backward
 * pass must put dy exactly at the planted position and zero elsewhere,
 * including the floor-mode leftovers. */
static void test_pool_backward_routing(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 12);
    const int n = 2, c = 3, h = 7, w = 9;
    cvae__pool_geom g;
    assert_int_equal(cvae__pool_geom_init(&g, c, h, w, 2, 2), CVAE_OK);
    const int ho = g.h_out, wo = g.w_out;
    assert_int_equal(ho, 3);
    assert_int_equal(wo, 4);
    size_t nx = (size_t)n * c * h * w, ny = (size_t)n * c * ho * wo;
    float *x = gc_alloc(nx), *y = gc_alloc(ny), *dy = gc_alloc(ny), *dx = gc_alloc(nx);
    int32_t *am = calloc(ny, sizeof *am), *planted = calloc(ny, sizeof *planted);
    assert_non_null(am);
    assert_non_null(planted);
    gc_fill_uniform(&r, x, nx, 0.0f, 1.0f);
    for (int p = 0; p < n * c; p++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++) {
                int iy = 2 * oy + (int)cvae__rng_below(&r, 2);
                int ix = 2 * ox + (int)cvae__rng_below(&r, 2);
                size_t o = (size_t)p * ho * wo + oy * wo + ox;
                planted[o] = iy * w + ix;
                x[(size_t)p * h * w + iy * w + ix] = 10.0f + (float)o;
            }
    gc_fill_uniform(&r, dy, ny, -1.0f, 1.0f);
    cvae__maxpool_forward(&g, n, x, y, am);
    gc_fill_nan(dx, nx);
    cvae__maxpool_backward(&g, n, dy, am, dx);
    for (int p = 0; p < n * c; p++) {
        float *d = dx + (size_t)p * h * w;
        for (int o = 0; o < ho * wo; o++) {
            size_t oi = (size_t)p * ho * wo + o;
            assert_int_equal(am[oi], planted[oi]);
            assert_true(y[oi] == 10.0f + (float)oi);
            assert_true(d[planted[oi]] == dy[oi]);
            d[planted[oi]] = 0.0f;
        }
        for (int i = 0; i < h * w; i++)
            assert_true(d[i] == 0.0f);
    }

    /* Overlapping windows (k 3, stride 2) sharing one maximum: the shared
     * input receives the sum of every window's gradient. A 5x5 plane with
     * its maximum at the centre is chosen by all four windows. */
    assert_int_equal(cvae__pool_geom_init(&g, 1, 5, 5, 3, 2), CVAE_OK);
    float x2[25], y2[4], dx2[25];
    int32_t am2[4];
    for (int i = 0; i < 25; i++)
        x2[i] = (float)i * 0.01f;
    x2[12] = 5.0f;
    const float dy2[4] = {0.5f, 0.25f, -2.0f, 4.0f};
    cvae__maxpool_forward(&g, 1, x2, y2, am2);
    cvae__maxpool_backward(&g, 1, dy2, am2, dx2);
    for (int i = 0; i < 25; i++)
        assert_true(dx2[i] == (i == 12 ? 2.75f : 0.0f));

    free(x);
    free(y);
    free(dy);
    free(dx);
    free(am);
    free(planted);
}

typedef struct pool_ctx {
    const cvae__pool_geom *g;
    int n;
    float *x, *y;
    int32_t *am;
    const float *R;
    size_t ny;
} pool_ctx;

static double pool_loss(void *p)
{
    pool_ctx *c = p;
    cvae__maxpool_forward(c->g, c->n, c->x, c->y, c->am);
    return gc_dot(c->y, c->R, c->ny);
}

/* Finite differences on inputs that are a shuffled grid with spacing 0.05:
 * a +-eps (0.01) perturbation never changes a window's winner, so the loss
 * is linear around every point and the check is exact up to rounding. */
static void test_pool_gradcheck(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 13);
    const int shapes[][6] = {
        {2, 2, 6, 6, 2, 2}, {1, 3, 7, 5, 2, 2}, {2, 2, 7, 7, 3, 2}, {1, 2, 5, 6, 3, 1},
        {1, 1, 9, 8, 2, 3},
    };
    double worst = 0.0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int *q = shapes[s];
        cvae__pool_geom g;
        assert_int_equal(cvae__pool_geom_init(&g, q[1], q[2], q[3], q[4], q[5]), CVAE_OK);
        size_t nx = (size_t)q[0] * q[1] * q[2] * q[3];
        size_t ny = (size_t)q[0] * q[1] * g.h_out * g.w_out;
        float *x = gc_alloc(nx), *y = gc_alloc(ny), *R = gc_alloc(ny), *dx = gc_alloc(nx);
        int32_t *am = calloc(ny, sizeof *am);
        int64_t *perm = calloc(nx, sizeof *perm);
        assert_non_null(am);
        assert_non_null(perm);
        for (size_t i = 0; i < nx; i++)
            perm[i] = (int64_t)i;
        cvae__rng_shuffle(&r, perm, (int64_t)nx);
        for (size_t i = 0; i < nx; i++)
            x[i] = 0.05f * (float)perm[i] - 1.0f;
        gc_fill_uniform(&r, R, ny, -1.0f, 1.0f);
        cvae__maxpool_forward(&g, q[0], x, y, am);
        cvae__maxpool_backward(&g, q[0], R, am, dx);
        pool_ctx c = {&g, q[0], x, y, am, R, ny};
        double e = gc_check(pool_loss, &c, x, dx, nx, GC_EPS);
        if (e > worst)
            worst = e;
        free(x);
        free(y);
        free(R);
        free(dx);
        free(am);
        free(perm);
    }
    gc_report("maxpool (dx)", worst);
    assert_true(worst < GC_TOL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_geometry),
        cmocka_unit_test(test_pool_forward_reference),
        cmocka_unit_test(test_pool_backward_routing),
        cmocka_unit_test(test_pool_gradcheck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
