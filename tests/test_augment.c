/* Random affine augmentation: exact identity, integer shifts and quarter
 * turns; a random transform against a naive double reference that inverts
 * the forward map itself; both fill rules; uint8 input; the transform as a
 * function of (seed, epoch, global index) only (batch order, batch split
 * and thread count do not matter); the drawn parameters' ranges; argument
 * checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convvae.h"
#include "core/rng.h"
#include "training/augment.h"

static void fill_random(float *x, int64_t n, uint64_t seed)
{
    cvae__rng r;
    cvae__rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++)
        x[i] = cvae__rng_uniform(&r);
}

static void test_identity_exact(void **state)
{
    (void)state;
    const int c = 3, h = 7, w = 10;
    float in[210], out[210];
    uint8_t u8[210];
    fill_random(in, c * h * w, 1);
    for (int i = 0; i < c * h * w; i++)
        u8[i] = (uint8_t)(i * 37 % 256);
    cvae__affine t;
    cvae__affine_make(0, 1, 0, 0, h, w, &t);
    for (int f = 0; f < 2; f++) {
        cvae__affine_apply_f32(&t, (cvae__fill)f, c, h, w, in, out);
        assert_memory_equal(in, out, sizeof in);
        cvae__affine_apply_u8(&t, (cvae__fill)f, c, h, w, u8, out);
        for (int i = 0; i < c * h * w; i++)
            assert_true(out[i] == (float)u8[i] / 255.0f);
    }
    /* zero ranges: every drawn transform is the identity */
    cvae__augment_params p = {.max_rotation = 0, .max_shift = 0, .max_scale = 0,
                              .max_gain = 0, .fill = CVAE__FILL_ZERO};
    int64_t idx[1] = {12345};
    assert_int_equal(cvae__augment_f32(&p, 9, 3, idx, 1, c, h, w, in, out), CVAE_OK);
    assert_memory_equal(in, out, sizeof in);
}

static void test_integer_shift_exact(void **state)
{
    (void)state;
    const int h = 6, w = 9, tx = 2, ty = -3;
    float in[54], out[54];
    fill_random(in, h * w, 2);
    cvae__affine t;
    cvae__affine_make(0, 1, tx, ty, h, w, &t);
    for (int f = 0; f < 2; f++) {
        cvae__affine_apply_f32(&t, (cvae__fill)f, 1, h, w, in, out);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int sx = x - tx, sy = y - ty;
                float want;
                if (f == CVAE__FILL_ZERO) {
                    want = (sx >= 0 && sx < w && sy >= 0 && sy < h) ? in[sy * w + sx] : 0.0f;
                } else {
                    sx = sx < 0 ? 0 : (sx >= w ? w - 1 : sx);
                    sy = sy < 0 ? 0 : (sy >= h ? h - 1 : sy);
                    want = in[sy * w + sx];
                }
                assert_true(out[y * w + x] == want);
            }
    }
}

/* A quarter turn maps pixel centres onto pixel centres of a square image:
 * out[y][x] = in[W-1-x][y], bit for bit, for even and odd sizes. */
static void test_quarter_turn_exact(void **state)
{
    (void)state;
    for (int w = 4; w <= 5; w++) {
        float in[2 * 25], out[2 * 25];
        fill_random(in, 2 * w * w, 3 + (uint64_t)w);
        cvae__affine t;
        cvae__affine_make(3.14159265358979323846 / 2, 1, 0, 0, w, w, &t);
        cvae__affine_apply_f32(&t, CVAE__FILL_ZERO, 2, w, w, in, out);
        for (int ch = 0; ch < 2; ch++)
            for (int y = 0; y < w; y++)
                for (int x = 0; x < w; x++)
                    assert_true(out[ch * w * w + y * w + x] ==
                                in[ch * w * w + (w - 1 - x) * w + y]);
        /* four quarter turns: the identity again */
        float a[50], b[50];
        memcpy(a, in, sizeof a);
        for (int r = 0; r < 4; r++) {
            cvae__affine_apply_f32(&t, CVAE__FILL_ZERO, 2, w, w, a, b);
            memcpy(a, b, sizeof a);
        }
        assert_memory_equal(a, in, (size_t)2 * w * w * sizeof(float));
    }
}

/* The reference builds the forward matrix A = s R, inverts it with the
 * general 2 x 2 formula, and samples bilinearly with explicit bounds. */
static double ref_pixel(const float *img, int h, int w, double angle, double s, double tx,
                        double ty, int x, int y, int edge)
{
    const double a = s * cos(angle), b = -s * sin(angle), c = s * sin(angle), d = s * cos(angle);
    const double det = a * d - b * c;
    const double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0;
    const double rx = x - cx - tx, ry = y - cy - ty;
    const double u = cx + (d * rx - b * ry) / det, v = cy + (-c * rx + a * ry) / det;
    const int x0 = (int)floor(u), y0 = (int)floor(v);
    double sum = 0;
    for (int dy = 0; dy <= 1; dy++)
        for (int dx = 0; dx <= 1; dx++) {
            int xi = x0 + dx, yi = y0 + dy;
            const double wt = (dx ? u - x0 : 1 - (u - x0)) * (dy ? v - y0 : 1 - (v - y0));
            if (edge) {
                xi = xi < 0 ? 0 : (xi > w - 1 ? w - 1 : xi);
                yi = yi < 0 ? 0 : (yi > h - 1 ? h - 1 : yi);
            } else if (xi < 0 || xi >= w || yi < 0 || yi >= h) {
                continue;
            }
            sum += wt * img[yi * w + xi];
        }
    return sum;
}

static void test_random_transform_reference(void **state)
{
    (void)state;
    const int h = 28, w = 23;
    float in[28 * 23], out[28 * 23];
    fill_random(in, h * w, 4);
    const double cases[3][4] = {{0.3, 1.15, 2.7, -1.3}, {-0.17, 0.9, -4.2, 3.9}, {2.0, 1.0, 0.5, 0.25}};
    for (int k = 0; k < 3; k++)
        for (int f = 0; f < 2; f++) {
            cvae__affine t;
            cvae__affine_make(cases[k][0], cases[k][1], cases[k][2], cases[k][3], h, w, &t);
            cvae__affine_apply_f32(&t, (cvae__fill)f, 1, h, w, in, out);
            int outside = 0;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    const double want = ref_pixel(in, h, w, cases[k][0], cases[k][1], cases[k][2],
                                                  cases[k][3], x, y, f);
                    assert_true(fabs(out[y * w + x] - want) < 1e-6);
                    outside += f == 0 && want == 0;
                }
            if (f == 0)
                assert_true(outside > 0); /* the fill rule was exercised */
        }
}

/* Same transform for an image whatever batch it is in, in whatever order,
 * with 1 or 2 threads; another epoch or seed changes it; uint8 and float
 * input agree. */
static void test_counter_based(void **state)
{
    (void)state;
    const int c = 1, h = 12, w = 12, n = 6, img = c * h * w;
    float *in = malloc((size_t)n * img * sizeof *in), *a = malloc((size_t)n * img * sizeof *a);
    float *b = malloc((size_t)n * img * sizeof *b), *one = malloc((size_t)img * sizeof *one);
    uint8_t *u8 = malloc((size_t)n * img);
    assert_true(in && a && b && one && u8);
    for (int i = 0; i < n * img; i++) {
        u8[i] = (uint8_t)((i * 7919) % 256);
        in[i] = (float)u8[i] / 255.0f;
    }
    cvae__augment_params p;
    cvae__augment_defaults(&p);
    p.max_rotation = 30;
    const int64_t idx[6] = {100, 7, 52, 3, 99999, 8};
    const int before = cvae_get_num_threads();
    assert_int_equal(cvae_set_num_threads(1), CVAE_OK);
    assert_int_equal(cvae__augment_f32(&p, 42, 5, idx, n, c, h, w, in, a), CVAE_OK);
    assert_int_equal(cvae_set_num_threads(2), CVAE_OK);
    assert_int_equal(cvae__augment_u8(&p, 42, 5, idx, n, c, h, w, u8, b), CVAE_OK);
    assert_int_equal(cvae_set_num_threads(before), CVAE_OK);
    assert_memory_equal(a, b, (size_t)n * img * sizeof *a);
    /* one image at a time, in reverse order */
    for (int i = n - 1; i >= 0; i--) {
        assert_int_equal(cvae__augment_f32(&p, 42, 5, idx + i, 1, c, h, w, in + i * img, one),
                         CVAE_OK);
        assert_memory_equal(one, a + i * img, (size_t)img * sizeof *one);
    }
    /* another epoch, another seed: different images */
    assert_int_equal(cvae__augment_f32(&p, 42, 6, idx, 1, c, h, w, in, one), CVAE_OK);
    assert_memory_not_equal(one, a, (size_t)img * sizeof *one);
    assert_int_equal(cvae__augment_f32(&p, 43, 5, idx, 1, c, h, w, in, one), CVAE_OK);
    assert_memory_not_equal(one, a, (size_t)img * sizeof *one);
    free(in), free(a), free(b), free(one), free(u8);
}

/* The drawn angle, scale and shift lie in their ranges and cover them:
 * recovered from the affine map of many indices. */
static void test_draw_ranges(void **state)
{
    (void)state;
    cvae__augment_params p;
    cvae__augment_defaults(&p);
    const int h = 28, w = 28, draws = 4000;
    double amin = 1e9, amax = -1e9, smin = 1e9, smax = -1e9, txmin = 1e9, txmax = -1e9;
    double amean = 0;
    for (int i = 0; i < draws; i++) {
        cvae__affine t;
        cvae__augment_draw(&p, 7, 0, (uint64_t)i, h, w, &t);
        /* m = R^T / s: s = 1 / |column|, angle = atan2(m[1], m[0]) */
        const double s = 1 / sqrt(t.m[0] * t.m[0] + t.m[2] * t.m[2]);
        const double ang = atan2(t.m[1], t.m[0]) * 180 / 3.14159265358979323846;
        /* o = c - m (c + tr): tr = m^-1 (c - o) - c, m^-1 = s^2 m^T */
        const double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0, qx = cx - t.o[0], qy = cy - t.o[1];
        const double tx = s * s * (t.m[0] * qx + t.m[2] * qy) - cx;
        amin = fmin(amin, ang), amax = fmax(amax, ang), amean += ang / draws;
        smin = fmin(smin, s), smax = fmax(smax, s);
        txmin = fmin(txmin, tx), txmax = fmax(txmax, tx);
    }
    assert_true(amin >= -10 - 1e-9 && amax <= 10 + 1e-9 && amin < -9.9 && amax > 9.9);
    assert_true(fabs(amean) < 0.5);
    assert_true(smin >= 0.9 - 1e-9 && smax <= 1.1 + 1e-9 && smin < 0.91 && smax > 1.09);
    assert_true(txmin >= -2.8 - 1e-9 && txmax <= 2.8 + 1e-9 && txmin < -2.7 && txmax > 2.7);
}

/* The intensity gain: drawn per image in [1 - g, 1 + g] and covering it;
 * it multiplies every value after the geometry, lifted values stop at 1,
 * and the geometry of a seed is the one drawn without the gain. */
static void test_gain(void **state)
{
    (void)state;
    cvae__augment_params p;
    cvae__augment_defaults(&p);
    p.max_gain = 0.5f;
    double gmin = 1e9, gmax = -1e9;
    for (int i = 0; i < 4000; i++) {
        const double g = cvae__augment_gain(&p, 7, 2, (uint64_t)i);
        gmin = fmin(gmin, g), gmax = fmax(gmax, g);
    }
    assert_true(gmin >= 0.5 - 1e-6 && gmax <= 1.5 + 1e-6 && gmin < 0.51 && gmax > 1.49);

    const int c = 2, h = 7, w = 6, n = 64, img = c * h * w;
    float *in = malloc((size_t)n * img * sizeof *in), *plain = malloc((size_t)n * img * sizeof *in),
          *lit = malloc((size_t)n * img * sizeof *in);
    assert_non_null(in), assert_non_null(plain), assert_non_null(lit);
    fill_random(in, n * img, 5);
    in[3] = 1.25f; /* above the [0, 1] range: a gain above 1 must not lower it */
    int64_t idx[64];
    for (int i = 0; i < n; i++)
        idx[i] = 1000 + 3 * i;
    cvae__augment_params q = p;
    q.max_gain = 0;
    assert_int_equal(cvae__augment_f32(&q, 11, 4, idx, n, c, h, w, in, plain), CVAE_OK);
    assert_int_equal(cvae__augment_f32(&p, 11, 4, idx, n, c, h, w, in, lit), CVAE_OK);
    int clipped = 0, lowered = 0;
    for (int i = 0; i < n; i++) {
        const float g = cvae__augment_gain(&p, 11, 4, (uint64_t)idx[i]);
        for (int k = 0; k < img; k++) {
            const float v = plain[(size_t)i * img + k], want = v * g;
            const float got = lit[(size_t)i * img + k];
            if (want > 1.0f) {
                assert_true(got == (v > 1.0f ? v : 1.0f));
                clipped++;
            } else {
                assert_true(got == want);
                lowered += g < 1.0f && v > 0;
            }
        }
    }
    assert_true(clipped > 0 && lowered > 0);
    /* a gain of 0 leaves the draw of the geometry alone: the same output */
    assert_true(cvae__augment_gain(&q, 11, 4, 5) == 1.0f);
    free(in), free(plain), free(lit);
}

static void test_bad_args(void **state)
{
    (void)state;
    float in[4] = {0}, out[4];
    int64_t idx[1] = {0};
    cvae__augment_params p;
    cvae__augment_defaults(&p);
    assert_int_equal(cvae__augment_f32(NULL, 1, 0, idx, 1, 1, 2, 2, in, out), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__augment_f32(&p, 1, 0, NULL, 1, 1, 2, 2, in, out), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__augment_f32(&p, 1, 0, idx, 1, 1, 2, 2, NULL, out), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__augment_u8(&p, 1, 0, idx, 1, 1, 2, 2, NULL, out), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__augment_f32(&p, 1, 0, idx, 0, 1, 2, 2, in, out), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__augment_f32(&p, 1, 0, idx, 1, 1, 0, 2, in, out), CVAE_E_INVALID_ARG);
    p.max_scale = 1;
    assert_int_equal(cvae__augment_f32(&p, 1, 0, idx, 1, 1, 2, 2, in, out), CVAE_E_INVALID_ARG);
    cvae__augment_defaults(&p);
    p.max_rotation = NAN;
    assert_int_equal(cvae__augment_f32(&p, 1, 0, idx, 1, 1, 2, 2, in, out), CVAE_E_INVALID_ARG);
    cvae__augment_defaults(&p);
    p.max_gain = 1;
    assert_int_equal(cvae__augment_f32(&p, 1, 0, idx, 1, 1, 2, 2, in, out), CVAE_E_INVALID_ARG);
    p.max_gain = -0.1f;
    assert_int_equal(cvae__augment_f32(&p, 1, 0, idx, 1, 1, 2, 2, in, out), CVAE_E_INVALID_ARG);
    cvae__augment_defaults(&p);
    p.fill = (cvae__fill)2;
    assert_int_equal(cvae__augment_f32(&p, 1, 0, idx, 1, 1, 2, 2, in, out), CVAE_E_INVALID_ARG);
    p.fill = CVAE__FILL_EDGE;
    assert_int_equal(cvae__augment_f32(&p, 1, 0, idx, 1, 1, 2, 2, in, out), CVAE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_exact),
        cmocka_unit_test(test_integer_shift_exact),
        cmocka_unit_test(test_quarter_turn_exact),
        cmocka_unit_test(test_random_transform_reference),
        cmocka_unit_test(test_counter_based),
        cmocka_unit_test(test_draw_ranges),
        cmocka_unit_test(test_gain),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
