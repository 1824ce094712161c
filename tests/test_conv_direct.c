/* The direct-read convolution (lib/layers/conv_direct.c): its output
 * against double-precision sums straight from the definition and, to the
 * bit, against the gathered-panel product it replaces; over row widths that
 * fill no, one and several tiles of 16 exactly and partly, channel counts
 * around the blocks of 16, inner dimensions split into blocks, and kernels
 * from 1x1 to 15x15. Its weight gradient over runs of images against the
 * same kind of sums. Then the geometries it must refuse, and central
 * differences through conv and transposed-conv layers that take it. */
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
#include "layers/conv_direct.h"
#include "layers/im2col.h"


static void check(int c_in, int h, int w, int c_out, int kh, int kw, cvae__rng *r)
{
    cvae__conv_geom g;
    assert_int_equal(cvae__conv_geom_init(&g, c_in, h, w, c_out, kh, kw, 1, CVAE__PAD_SAME),
                     CVAE_OK);
    if (!cvae__conv_direct_ok(&g)) {
        print_message("conv_direct: no 16-row tile kernel here, %d->%d %dx%d k%dx%d not checked\n",
                      c_in, c_out, h, w, kh, kw);
        return;
    }
    const int k = c_in * kh * kw;
    const size_t nx = (size_t)c_in * h * w, ny = (size_t)c_out * h * w, nw = (size_t)c_out * k;
    /* the image exactly as large as it is: a read past either end shows
     * under the sanitizers; the work buffer NaN, so a padding float left
     * unwritten would reach an output */
    float *x = malloc(nx * sizeof *x), *wt = gc_alloc(nw);
    assert_non_null(x);
    float *ap = gc_alloc(cvae__implicit_a_floats(c_out, k));
    float *work = gc_alloc(cvae__conv_direct_work_floats(&g));
    float *bp = gc_alloc(CVAE__IMPLICIT_B_FLOATS);
    float *y = gc_alloc(ny + 16), *yg = gc_alloc(ny);
    double *want = malloc(ny * sizeof *want), *mag = malloc(ny * sizeof *mag);
    assert_non_null(want);
    assert_non_null(mag);
    gc_fill_uniform(r, x, nx, -1, 1);
    gc_fill_uniform(r, wt, nw, -1, 1);
    gc_fill_nan(work, cvae__conv_direct_work_floats(&g));
    gc_fill_nan(y, ny + 16);
    cvae__implicit_pack(wt, c_out, k, ap);
    cvae__conv_direct(&g, x, ap, y, work);
    reference(&g, x, wt, want, mag);
    for (size_t i = 0; i < ny; i++)
        assert_true(fabs(y[i] - want[i]) <= 1e-6 * mag[i] + 1e-30);
    for (size_t i = ny; i < ny + 16; i++)
        assert_true(isnan(y[i])); /* nothing written past the output */
    /* the same blocks summed in the same order as the gathered panels */
    cvae__implicit_conv_gathered(&g, x, ap, bp, yg);
    assert_memory_equal(yg, y, ny * sizeof *y);
    free(x);
    free(wt);
    free(ap);
    free(work);
    free(bp);
    free(y);
    free(yg);
    free(want);
    free(mag);
}

static void test_matches_reference(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 23);
    check(16, 28, 28, 16, 3, 3, &r); /* the model's 3x3 layers */
    check(16, 14, 14, 32, 5, 5, &r); /* its 5x5 layers and their adjoints */
    check(32, 14, 14, 16, 5, 5, &r);
    check(32, 14, 14, 32, 5, 5, &r);
    check(3, 9, 11, 5, 3, 3, &r);
    check(2, 7, 17, 17, 3, 5, &r);  /* a short second tile; a second block of rows */
    check(4, 3, 16, 33, 5, 1, &r);  /* one full tile per row; three blocks */
    check(2, 5, 32, 6, 1, 3, &r);   /* two full tiles */
    check(40, 6, 6, 7, 5, 5, &r);   /* k = 1000: blocks of 384, 384, 232 */
    check(20, 5, 5, 3, 5, 5, &r);   /* k = 500: 384 and 116 */
    check(1, 5, 20, 3, 15, 15, &r); /* the kernel larger than the image */
    check(2, 1, 1, 3, 3, 3, &r);
    check(5, 3, 33, 19, 1, 1, &r);
}


/* The weight gradient of a run of n images against the reference: dw is
 * NaN before (overwritten on the last image, not read), so is the whole
 * workspace (every float of the copies written, the running sum started
 * on the first image), and nothing past dw is written. */
static void check_dw(int c_in, int h, int w, int c_out, int kh, int kw, int n, cvae__rng *r)
{
    cvae__conv_geom g;
    assert_int_equal(cvae__conv_geom_init(&g, c_in, h, w, c_out, kh, kw, 1, CVAE__PAD_SAME),
                     CVAE_OK);
    if (!cvae__conv_direct_dw_ok(&g)) {
        print_message("conv_direct: no 16-row tile kernel here, dW %d->%d %dx%d k%dx%d not checked\n",
                      c_in, c_out, h, w, kh, kw);
        return;
    }
    const size_t nx = (size_t)n * c_in * h * w, ny = (size_t)n * c_out * h * w;
    const size_t nw = (size_t)c_out * c_in * kh * kw, nwork = cvae__conv_direct_dw_floats(&g);
    float *x = malloc(nx * sizeof *x), *dy = malloc(ny * sizeof *dy);
    assert_non_null(x);
    assert_non_null(dy);
    float *dw = gc_alloc(nw + 16), *work = gc_alloc(nwork);
    double *want = malloc(nw * sizeof *want), *mag = malloc(nw * sizeof *mag);
    assert_non_null(want);
    assert_non_null(mag);
    gc_fill_uniform(r, x, nx, -1, 1);
    gc_fill_uniform(r, dy, ny, -1, 1);
    for (int round = 0; round < 2; round++) { /* a second run must not see the first */
        gc_fill_nan(dw, nw + 16);
        if (round == 0)
            gc_fill_nan(work, nwork);
        for (int i = 0; i < n; i++)
            cvae__conv_direct_dw(&g, x + (size_t)i * c_in * h * w, dy + (size_t)i * c_out * h * w,
                                 i == 0, i == n - 1, dw, work);
        reference_dw(&g, n, x, dy, want, mag);
        for (size_t j = 0; j < nw; j++)
            assert_true(fabs(dw[j] - want[j]) <= 1e-6 * mag[j] + 1e-30);
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
    cvae__rng_seed(&r, 31);
    check_dw(16, 28, 28, 16, 3, 3, 2, &r); /* the model's 3x3 layers */
    check_dw(16, 14, 14, 32, 5, 5, 3, &r); /* its 5x5 layers */
    check_dw(32, 14, 14, 32, 5, 5, 1, &r);
    check_dw(17, 5, 9, 5, 3, 3, 2, &r);    /* channel and output blocks part full */
    check_dw(33, 3, 4, 17, 1, 3, 3, &r);
    check_dw(16, 1, 1, 1, 3, 3, 2, &r);
    check_dw(20, 4, 6, 3, 5, 5, 2, &r);    /* the kernel larger than the image */
}

static void test_refuses(void **state)
{
    (void)state;
    cvae__conv_geom g;
    assert_int_equal(cvae__conv_geom_init(&g, 2, 8, 8, 4, 3, 3, 2, CVAE__PAD_SAME), CVAE_OK);
    assert_false(cvae__conv_direct_ok(&g)); /* stride 2 */
    assert_int_equal(cvae__conv_geom_init(&g, 2, 8, 8, 4, 2, 2, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_false(cvae__conv_direct_ok(&g)); /* even kernel */
    assert_int_equal(cvae__conv_geom_init(&g, 2, 8, 8, 4, 3, 3, 1, 0), CVAE_OK);
    assert_false(cvae__conv_direct_ok(&g)); /* unpadded: a smaller output */
    assert_int_equal(cvae__conv_geom_init(&g, 2, 8, 8, 4, 3, 3, 1, 2), CVAE_OK);
    assert_false(cvae__conv_direct_ok(&g)); /* padded more: a larger output */
    assert_int_equal(cvae__conv_geom_init(&g, 2, 20, 20, 4, 17, 17, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_false(cvae__conv_direct_ok(&g)); /* a kernel side over 16 */
    assert_int_equal(cvae__conv_geom_init(&g, 2, 8, 8, 4, 3, 3, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_int_equal(cvae__conv_direct_ok(&g), cvae__gemm_tile_mr() == 16);
    assert_false(cvae__conv_direct_dw_ok(&g)); /* dW: two channels, under a block */
    assert_int_equal(cvae__conv_geom_init(&g, 16, 8, 8, 4, 3, 3, 1, CVAE__PAD_SAME), CVAE_OK);
    assert_int_equal(cvae__conv_direct_dw_ok(&g), cvae__gemm_tile_mr() == 16);
}

/* Whole layers, a few images, against central differences: a conv whose
 * forward pass and dx (its adjoint, also a same-size conv) read the image
 * directly, and a transposed conv (forward: the adjoint; dx: the conv). */
static void test_layer_gradients(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 29);
    cvae__conv_geom g;
    assert_int_equal(cvae__conv_geom_init(&g, 3, 6, 18, 5, 3, 3, 1, CVAE__PAD_SAME), CVAE_OK);
    double e = gradcheck_layer(&g, 2, 0, &r);
    print_message("conv_direct conv layer: max rel err %.2e\n", e);
    assert_true(e < GC_TOL);
    assert_int_equal(cvae__tconv_geom_init(&g, 4, 5, 17, 3, 3, 3, 1, 1), CVAE_OK);
    e = gradcheck_layer(&g, 2, 1, &r);
    print_message("conv_direct tconv layer: max rel err %.2e\n", e);
    assert_true(e < GC_TOL);
    /* 16 channels in (a conv) and out (a transposed conv, whose dW reads
     * its output gradient as the image): the direct weight gradient */
    assert_int_equal(cvae__conv_geom_init(&g, 16, 4, 9, 3, 3, 3, 1, CVAE__PAD_SAME), CVAE_OK);
    e = gradcheck_layer(&g, 3, 0, &r);
    print_message("conv_direct conv layer, 16 channels: max rel err %.2e\n", e);
    assert_true(e < GC_TOL);
    assert_int_equal(cvae__tconv_geom_init(&g, 3, 4, 9, 16, 3, 3, 1, 1), CVAE_OK);
    e = gradcheck_layer(&g, 3, 1, &r);
    print_message("conv_direct tconv layer, 16 channels: max rel err %.2e\n", e);
    assert_true(e < GC_TOL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_dw_matches_reference),
        cmocka_unit_test(test_refuses),
        cmocka_unit_test(test_layer_gradients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
