/* Resampling against references written from the definitions, in double,
 * over the whole 2-D image at once (no weight tables, no streaming):
 *  - area average: an output pixel is the integral of the piecewise
 *    constant source over its rectangle, divided by the rectangle's area;
 *  - bilinear: the tent-weighted mix of the four source pixels around the
 *    output pixel's centre mapped back (half-pixel centres, clamped).
 * Mixed cases (one axis shrinks, the other grows) use the box along one
 * axis and the tent along the other, as the definition says per axis. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/resample.h"

/* Weight of source pixel i for output pixel j of an axis, from scratch. */
static double ref_weight(int src, int dst, int j, int i)
{
    if (src == dst)
        return i == j;
    double scale = (double)src / dst;
    if (dst < src) { /* overlap of [i, i+1) with [j*scale, (j+1)*scale) */
        double lo = j * scale, hi = (j + 1) * scale;
        double ov = fmin(hi, i + 1.0) - fmax(lo, (double)i);
        return ov > 0 ? ov / scale : 0.0;
    }
    double x = (j + 0.5) * scale - 0.5;
    x = x < 0 ? 0 : x > src - 1 ? src - 1 : x;
    double t = 1.0 - fabs(x - i);
    return t > 0 ? t : 0.0;
}

static void ref_resample(const float *src, int c, int sh, int sw, int dh, int dw, double *out)
{
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++)
            for (int ch = 0; ch < c; ch++) {
                double acc = 0.0;
                for (int i = 0; i < sh; i++) {
                    double wy = ref_weight(sh, dh, y, i);
                    if (wy == 0.0)
                        continue;
                    for (int k = 0; k < sw; k++)
                        acc += wy * ref_weight(sw, dw, x, k) *
                               src[((size_t)i * (size_t)sw + (size_t)k) * (size_t)c + (size_t)ch];
                }
                out[((size_t)y * (size_t)dw + (size_t)x) * (size_t)c + (size_t)ch] = acc;
            }
}

static void run(const float *src, int c, int sh, int sw, int dh, int dw, float *out)
{
    cvae__resampler r;
    assert_int_equal(cvae__resample_init(&r, c, sh, sw, dh, dw, out), CVAE_OK);
    for (int y = 0; y < sh; y++)
        cvae__resample_row(&r, src + (size_t)y * (size_t)sw * (size_t)c);
    cvae__resample_free(&r);
}

static unsigned lcg(unsigned *s) { return *s = *s * 1664525u + 1013904223u; }

static void compare_with_reference(int c, int sh, int sw, int dh, int dw, unsigned seed)
{
    size_t ns = (size_t)sh * (size_t)sw * (size_t)c, nd = (size_t)dh * (size_t)dw * (size_t)c;
    float *src = malloc(ns * sizeof *src), *out = malloc(nd * sizeof *out);
    double *ref = malloc(nd * sizeof *ref);
    assert_non_null(src);
    assert_non_null(out);
    assert_non_null(ref);
    for (size_t i = 0; i < ns; i++)
        src[i] = (float)(lcg(&seed) >> 8) / (float)(1u << 24);
    run(src, c, sh, sw, dh, dw, out);
    ref_resample(src, c, sh, sw, dh, dw, ref);
    for (size_t i = 0; i < nd; i++)
        if (fabs(out[i] - ref[i]) > 1e-5) {
            fail_msg("%dx%d -> %dx%d (c=%d): value %zu is %.7f, reference %.7f", sh, sw, dh, dw,
                     c, i, (double)out[i], ref[i]);
        }
    free(src);
    free(out);
    free(ref);
}

static void test_against_reference(void **state)
{
    (void)state;
    static const int sizes[][4] = {
        {28, 28, 28, 28},   /* identity */
        {64, 48, 32, 32},   /* shrink, integer and non-integer */
        {100, 80, 28, 28},  /* shrink by 3.57 and 2.86 */
        {37, 53, 8, 5},     /* strong shrink */
        {7, 9, 28, 28},     /* grow */
        {3, 2, 17, 31},     /* grow a lot */
        {10, 60, 28, 28},   /* grow one axis, shrink the other */
        {60, 10, 28, 28},
        {1, 1, 4, 4},       /* a single pixel */
        {5, 1, 2, 3},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int c = 1; c <= 3; c += 2)
            compare_with_reference(c, sizes[i][0], sizes[i][1], sizes[i][2], sizes[i][3],
                                   (unsigned)(i * 7 + (size_t)c));
}

/* A worked example: halving is the mean of each 2x2 block. */
static void test_halving_is_block_mean(void **state)
{
    (void)state;
    const float src[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    float out[4];
    run(src, 1, 4, 4, 2, 2, out);
    assert_float_equal(out[0], (0 + 1 + 4 + 5) / 4.0f, 1e-6);
    assert_float_equal(out[1], (2 + 3 + 6 + 7) / 4.0f, 1e-6);
    assert_float_equal(out[2], (8 + 9 + 12 + 13) / 4.0f, 1e-6);
    assert_float_equal(out[3], (10 + 11 + 14 + 15) / 4.0f, 1e-6);
}

/* Doubling 0, 1 gives 0, 0.25, 0.75, 1 (centres at -0.25, 0.25, 0.75,
 * 1.25 in source pixels, clamped at the ends). */
static void test_doubling_is_bilinear(void **state)
{
    (void)state;
    const float src[2] = {0, 1};
    float out[4];
    run(src, 1, 1, 2, 1, 4, out);
    assert_float_equal(out[0], 0.0f, 1e-6);
    assert_float_equal(out[1], 0.25f, 1e-6);
    assert_float_equal(out[2], 0.75f, 1e-6);
    assert_float_equal(out[3], 1.0f, 1e-6);
}

/* A constant image stays constant at any size (weights sum to one). */
static void test_constant_stays_constant(void **state)
{
    (void)state;
    float src[97 * 13], out[31 * 40];
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++)
        src[i] = 0.625f;
    run(src, 1, 97, 13, 31, 40, out);
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        assert_float_equal(out[i], 0.625f, 1e-6);
}

static void test_axis_limits(void **state)
{
    (void)state;
    cvae__resample_axis a;
    assert_int_equal(cvae__resample_axis_init(&a, 0, 5), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__resample_axis_init(&a, 5, 0), CVAE_E_INVALID_ARG);
    /* Strong shrink: every footprint within the table's width. */
    assert_int_equal(cvae__resample_axis_init(&a, 4000, 3), CVAE_OK);
    for (int j = 0; j < a.dst; j++) {
        assert_true(a.count[j] >= 1 && a.count[j] <= a.taps);
        assert_true(a.start[j] >= 0 && a.start[j] + a.count[j] <= a.src);
    }
    cvae__resample_axis_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_halving_is_block_mean),
        cmocka_unit_test(test_doubling_is_bilinear),
        cmocka_unit_test(test_constant_stays_constant),
        cmocka_unit_test(test_axis_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
