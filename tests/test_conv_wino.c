/* The Winograd F(4x4, 5x5) and F(4x4, 3x3) convolutions
 * (lib/layers/conv_wino.c): their
 * output and its weight gradient against double-precision sums straight
 * from the definition, over images that fill whole 4x4 tiles and part of
 * the last, channel counts around the blocks of 16, more tiles than one
 * product's 16 rows, and runs of images that fill the weight gradient's
 * groups exactly and in part; the walk over those groups that also runs
 * the forward and adjoint convolutions from the same copies. Then the
 * geometries it must refuse, and central differences through a conv layer
 * that takes it (forward, dx as its adjoint, dw). */
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
#include "conv_reference.h"
#include "core/gemm.h"
#include "core/rng.h"
#include "layers/conv_wino.h"

/* The bound on |result - exact sum| as a multiple of the sum of the
 * products' magnitudes. The direct product stays under 1e-6 of it; the
 * transforms scale values by up to about 30 on the way in and out, so a
 * few units in the sixth digit. A wrong transform entry or a misplaced
 * tile gives errors of the order of the values themselves. */
#define WINO_TOL 2e-5


static int geom(cvae__conv_geom *g, int c_in, int h, int w, int c_out, int k)
{
    assert_int_equal(cvae__conv_geom_init(g, c_in, h, w, c_out, k, k, 1, CVAE__PAD_SAME), CVAE_OK);
    if (!cvae__conv_wino_ok(g)) {
        print_message("conv_wino: no AVX-512 or AVX2 kernels here, %d->%d %dx%d k%d not checked\n",
                      c_in, c_out, h, w, k);
        return 0;
    }
    return 1;
}

/* CVAE_TEST_LIGHT (scripts/check-valgrind.sh sets it): the small
 * geometries only, which reach every branch of the kernels (blocks part
 * full, tiles cut, products of 16 and fewer rows, groups part full), and
 * no finite differences (the layers' numerics are the native run's to
 * check). Under valgrind the full set takes over ten minutes. */
static int light(void) { return getenv("CVAE_TEST_LIGHT") != NULL; }

static double worst_fwd, worst_dw;

static void check(int c_in, int h, int w, int c_out, int k, cvae__rng *r)
{
    cvae__conv_geom g;
    if (!geom(&g, c_in, h, w, c_out, k))
        return;
    const size_t nx = (size_t)c_in * h * w, ny = (size_t)c_out * h * w;
    const size_t nw = (size_t)c_out * c_in * k * k;
    /* the image exactly as large as it is, the workspace NaN: a read past
     * the image shows under the sanitizers, a float of work read before
     * it is written reaches an output */
    float *x = malloc(nx * sizeof *x), *wt = gc_alloc(nw);
    assert_non_null(x);
    float *u = gc_alloc(cvae__conv_wino_u_floats(&g));
    float *work = gc_alloc(cvae__conv_wino_work_floats(&g));
    float *y = gc_alloc(ny + 16);
    double *want = malloc(ny * sizeof *want), *mag = malloc(ny * sizeof *mag);
    assert_non_null(want);
    assert_non_null(mag);
    gc_fill_uniform(r, x, nx, -1, 1);
    gc_fill_uniform(r, wt, nw, -1, 1);
    gc_fill_nan(u, cvae__conv_wino_u_floats(&g));
    gc_fill_nan(work, cvae__conv_wino_work_floats(&g));
    gc_fill_nan(y, ny + 16);
    cvae__conv_wino_weights(&g, wt, u);
    cvae__conv_wino_forward(&g, x, u, y, work);
    reference(&g, x, wt, want, mag);
    for (size_t i = 0; i < ny; i++) {
        const double e = fabs(y[i] - want[i]) / (mag[i] + 1e-30);
        worst_fwd = e > worst_fwd ? e : worst_fwd;
        assert_true(fabs(y[i] - want[i]) <= WINO_TOL * mag[i] + 1e-30);
    }
    for (size_t i = ny; i < ny + 16; i++)
        assert_true(isnan(y[i])); /* nothing written past the output */
    free(x);
    free(wt);
    free(u);
    free(work);
    free(y);
    free(want);
    free(mag);
}

static void test_matches_reference(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 41);
    for (int k = 3; k <= 5; k += 2) {
        if (!light()) {
            check(32, 14, 14, 32, k, &r); /* the model's 5x5 layers and their adjoints */
            check(16, 14, 14, 32, k, &r);
            check(32, 14, 14, 16, k, &r);
            check(16, 28, 28, 16, k, &r); /* its 3x3 layers: 49 tiles */
            check(16, 16, 16, 16, k, &r); /* whole tiles only */
        }
        check(17, 5, 9, 20, k, &r);   /* channel blocks part full, tiles cut on both sides */
        check(16, 21, 23, 33, k, &r); /* 36 tiles: products of 16, 16 and 4 rows */
        check(20, 1, 1, 16, k, &r);   /* a single position: the kernel's centre */
    }
    print_message("conv_wino forward: worst error %.2e of the magnitude sum\n", worst_fwd);
}


/* dw (nw floats, kernels of kk taps) against the definition. The
 * transforms mix a kernel's taps, so a tap no position reads (exactly 0)
 * gets its neighbours' rounding: the bound is on the kernel's largest
 * magnitude sum. */
static void expect_dw_close(const float *dw, const double *want, const double *mag, size_t nw,
                            size_t kk)
{
    for (size_t k0 = 0; k0 < nw; k0 += kk) {
        double scale = 0.0;
        for (size_t j = k0; j < k0 + kk; j++)
            scale = mag[j] > scale ? mag[j] : scale;
        for (size_t j = k0; j < k0 + kk; j++) {
            const double e = fabs(dw[j] - want[j]) / (scale + 1e-30);
            worst_dw = e > worst_dw ? e : worst_dw;
            assert_true(fabs(dw[j] - want[j]) <= WINO_TOL * scale + 1e-30);
        }
    }
}

/* dw NaN before (overwritten, not read), the workspace NaN before the
 * first run (every float it reads written first), a second run that must
 * not see the first, and nothing written past dw. */
static void check_dw(int c_in, int h, int w, int c_out, int k, int n, cvae__rng *r)
{
    cvae__conv_geom g;
    if (!geom(&g, c_in, h, w, c_out, k))
        return;
    const size_t nx = (size_t)n * c_in * h * w, ny = (size_t)n * c_out * h * w;
    const size_t kk = (size_t)k * k;
    const size_t nw = (size_t)c_out * c_in * kk, nwork = cvae__conv_wino_dw_floats(&g);
    float *x = malloc(nx * sizeof *x), *dy = malloc(ny * sizeof *dy);
    assert_non_null(x);
    assert_non_null(dy);
    float *dw = gc_alloc(nw + 16), *work = gc_alloc(nwork);
    double *want = malloc(nw * sizeof *want), *mag = malloc(nw * sizeof *mag);
    assert_non_null(want);
    assert_non_null(mag);
    gc_fill_uniform(r, x, nx, -1, 1);
    gc_fill_uniform(r, dy, ny, -1, 1);
    reference_dw(&g, n, x, dy, want, mag);
    for (int round = 0; round < 2; round++) {
        gc_fill_nan(dw, nw + 16);
        if (round == 0)
            gc_fill_nan(work, nwork);
        cvae__conv_wino_dw(&g, n, x, dy, dw, work);
        expect_dw_close(dw, want, mag, nw, kk);
        for (size_t j = nw; j < nw + 16; j++)
            assert_true(isnan(dw[j]));
    }
    free(x);
    free(dy);
    free(dw);
    free(work);
    free(want);
    free(mag);
}

static void test_dw_matches_reference(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 43);
    for (int k = 3; k <= 5; k += 2) {
        if (light()) {
            check_dw(16, 5, 9, 16, k, 7, &r); /* 6 tiles: a group of 4 and part of one */
        } else {
            check_dw(32, 14, 14, 32, k, 4, &r); /* the model's layers: one whole group */
            check_dw(16, 14, 14, 32, k, 7, &r); /* a group and part of one */
            check_dw(16, 28, 28, 16, k, 3, &r); /* 49 tiles: groups of 2 images */
        }
        check_dw(17, 5, 9, 20, k, 3, &r);   /* blocks part full, tiles cut */
        check_dw(16, 2, 3, 16, k, 1, &r);   /* one tile, the kernel reaching past the image */
    }
}

/* Each of count floats within the tolerance of its magnitude sum. */
static void expect_close(const float *got, const double *want, const double *mag, size_t count)
{
    for (size_t i = 0; i < count; i++)
        assert_true(fabs(got[i] - want[i]) <= WINO_TOL * mag[i] + 1e-30);
}

/* The group walk with both convolutions it can run on the way: g's
 * forward conv of x (by g's transformed weights) and the adjoint conv of
 * dy (by those of the rotated weights, g's adjoint), each image against
 * the definition, and the weight gradient against it as above; outputs NaN
 * before, nothing written past them. */
static void check_group(int c_in, int h, int w, int c_out, int k, int n, cvae__rng *r)
{
    cvae__conv_geom g, a;
    if (!geom(&g, c_in, h, w, c_out, k) || !geom(&a, c_out, h, w, c_in, k))
        return;
    const size_t xi = (size_t)c_in * h * w, yi = (size_t)c_out * h * w;
    const size_t kk = (size_t)k * k, nw = (size_t)c_out * c_in * kk;
    const size_t nwork = cvae__conv_wino_dw_floats(&g);
    float *x = gc_alloc(n * xi), *dy = gc_alloc(n * yi), *wt = gc_alloc(nw), *wr = gc_alloc(nw);
    float *u = gc_alloc(cvae__conv_wino_u_floats(&g)), *ua = gc_alloc(cvae__conv_wino_u_floats(&a));
    float *xout = gc_alloc(n * yi + 16), *dyout = gc_alloc(n * xi + 16);
    float *dw = gc_alloc(nw), *work = gc_alloc(nwork);
    const size_t most = (n * xi > n * yi ? n * xi : n * yi) + nw;
    double *want = malloc(most * sizeof *want), *mag = malloc(most * sizeof *mag);
    assert_non_null(want);
    assert_non_null(mag);
    gc_fill_uniform(r, x, n * xi, -1, 1);
    gc_fill_uniform(r, dy, n * yi, -1, 1);
    gc_fill_uniform(r, wt, nw, -1, 1);
    /* the adjoint's kernels: in and out swapped, rotated half a turn */
    for (int o = 0; o < c_out; o++)
        for (int c = 0; c < c_in; c++)
            for (size_t t = 0; t < kk; t++)
                wr[((size_t)c * c_out + o) * kk + (kk - 1 - t)] = wt[((size_t)o * c_in + c) * kk + t];
    cvae__conv_wino_weights(&g, wt, u);
    cvae__conv_wino_weights(&a, wr, ua);
    gc_fill_nan(xout, n * yi + 16);
    gc_fill_nan(dyout, n * xi + 16);
    gc_fill_nan(work, nwork);
    const int group = cvae__conv_wino_group(&g);
    assert_true(group >= 1);
    for (int i0 = 0; i0 < n; i0 += group)
        cvae__conv_wino_dw_group(&g, i0 == 0, n - i0 < group ? n - i0 : group, x + i0 * xi,
                                 dy + i0 * yi, u, xout + i0 * yi, ua, dyout + i0 * xi, work);
    cvae__conv_wino_dw_end(&g, work, dw);
    for (int i = 0; i < n; i++) {
        reference(&g, x + i * xi, wt, want, mag);
        expect_close(xout + i * yi, want, mag, yi);
        reference(&a, dy + i * yi, wr, want, mag);
        expect_close(dyout + i * xi, want, mag, xi);
    }
    for (int j = 0; j < 16; j++) {
        assert_true(isnan(xout[n * yi + j]));
        assert_true(isnan(dyout[n * xi + j]));
    }
    reference_dw(&g, n, x, dy, want, mag);
    expect_dw_close(dw, want, mag, nw, kk);
    free(x);
    free(dy);
    free(wt);
    free(wr);
    free(u);
    free(ua);
    free(xout);
    free(dyout);
    free(dw);
    free(work);
    free(want);
    free(mag);
}

static void test_group_convolutions(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 53);
    for (int k = 3; k <= 5; k += 2) {
        check_group(17, 5, 9, 20, k, 7, &r); /* blocks part full in both directions, tiles cut,
                                                 groups of 4 and part of one */
        if (!light())
            check_group(16, 14, 14, 32, k, 5, &r); /* 16 tiles: groups of 4, then 1 */
    }
}

static void test_refuses(void **state)
{
    (void)state;
    cvae__conv_geom g;
    assert_int_equal(cvae__conv_geom_init(&g, 16, 8, 8, 16, 5, 5, 2, CVAE__PAD_SAME), CVAE_OK);
    assert_false(cvae__conv_wino_ok(&g)); /* stride 2 */
    assert_int_equal(cvae__conv_geom_init(&g, 16, 8, 8, 16, 7, 7, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_false(cvae__conv_wino_ok(&g)); /* 7x7 */
    assert_int_equal(cvae__conv_geom_init(&g, 16, 8, 8, 16, 3, 5, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_false(cvae__conv_wino_ok(&g)); /* not square */
    assert_int_equal(cvae__conv_geom_init(&g, 16, 8, 8, 16, 5, 5, 1, 0), CVAE_OK);
    assert_false(cvae__conv_wino_ok(&g)); /* unpadded */
    assert_int_equal(cvae__conv_geom_init(&g, 15, 8, 8, 16, 5, 5, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_false(cvae__conv_wino_ok(&g)); /* under 16 channels in */
    assert_int_equal(cvae__conv_geom_init(&g, 16, 8, 8, 3, 5, 5, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_false(cvae__conv_wino_ok(&g)); /* under 16 out */
    assert_int_equal(cvae__conv_geom_init(&g, 16, 8, 8, 16, 5, 5, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_int_equal(cvae__conv_wino_ok(&g), cvae__gemm_tile_mr() == 16 || cvae__gemm_tile_mr() == 6);
    assert_int_equal(cvae__conv_geom_init(&g, 16, 8, 8, 16, 3, 3, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_int_equal(cvae__conv_wino_ok(&g), cvae__gemm_tile_mr() == 16 || cvae__gemm_tile_mr() == 6);
    /* a call over fewer images than pay for the weight transform: direct */
    assert_false(cvae__conv_wino_pays(&g, CVAE__WINO_MIN_IMAGES - 1));
    assert_int_equal(cvae__conv_wino_pays(&g, CVAE__WINO_MIN_IMAGES), cvae__conv_wino_ok(&g));
    print_message("conv_wino dW: worst error %.2e of the magnitude sum\n", worst_dw);
}

/* Conv and transposed-conv layers that take the Winograd paths (16
 * channels either way), against central differences. */
static void test_layer_gradients(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 47);
    cvae__conv_geom g;
    /* as many images as the layers need to take the path */
    const int n = CVAE__WINO_MIN_IMAGES;
    if (light())
        return;
    for (int k = 3; k <= 5; k += 2) {
        /* where the path cannot run (neither AVX-512 nor AVX2) the layers'
         * other paths have their own checks: skip this slow one */
        if (!geom(&g, 16, 5, 4, 16, k))
            continue;
        double e = gradcheck_layer_eps(&g, n, 0, 0.25f, &r);
        print_message("conv_wino conv layer k%d: max rel err %.2e\n", k, e);
        assert_true(e < GC_TOL);
        /* the same geometry as a transposed conv: its forward pass is the
         * conv's adjoint, its dx the conv, its dw the conv's with the
         * roles of image and gradient swapped */
        assert_int_equal(cvae__tconv_geom_init(&g, 16, 5, 4, 16, k, k, 1, (k - 1) / 2), CVAE_OK);
        e = gradcheck_layer_eps(&g, n, 1, 0.25f, &r);
        print_message("conv_wino tconv layer k%d: max rel err %.2e\n", k, e);
        assert_true(e < GC_TOL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_dw_matches_reference),
        cmocka_unit_test(test_group_convolutions),
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_layer_gradients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
