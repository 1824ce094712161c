/* The AVX2 Winograd kernels (lib/layers/conv_wino_avx2.c) one by one,
 * against plain loops: the channels-last copies index by index; the two
 * products against double sums, for every row count up to 16 and inner
 * sizes of one to three channel blocks; the tile transforms by what they
 * are for: a tile's input transform, times the transformed 5x5 or 3x3
 * kernel, output-transformed, is the direct correlation of the 8x8 or 6x6
 * patch with the kernel; and the gradient transform is the output
 * transform's adjoint. (test_conv_wino checks the whole convolution that
 * uses them.) Skipped on CPUs without AVX2 and FMA. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "gradcheck.h"
#include "layers/conv_geom.h"
#include "layers/conv_wino.h"
#include "layers/conv_wino_avx2.h"

static int here(void)
{
    if (!cvae__wino_avx2_ok()) {
        print_message("conv_wino_avx2: no AVX2 + FMA here, not checked\n");
        return 0;
    }
    return 1;
}

static void test_channels_last_and_first(void **state)
{
    (void)state;
    if (!here())
        return;
    cvae__rng r;
    cvae__rng_seed(&r, 71);
    const int shapes[][4] = {{3, 5, 7, 2}, {16, 14, 14, 2}, {20, 4, 9, 1}, {33, 1, 1, 0}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int c = shapes[s][0], h = shapes[s][1], w = shapes[s][2], pad = shapes[s][3];
        const int ph = h + 2 * pad + 3, pw = w + 2 * pad + 1; /* room beyond the image */
        const size_t cp = (size_t)(c + 15) / 16 * 16;
        float *src = gc_alloc((size_t)c * h * w), *dst = gc_alloc((size_t)ph * pw * cp);
        gc_fill_uniform(&r, src, (size_t)c * h * w, -1, 1);
        gc_fill_nan(dst, (size_t)ph * pw * cp);
        /* in two runs of rows, as the convolutions make it */
        cvae__wino_avx2_channels_last(src, c, h, w, pad, 0, ph / 2, pw, cp, dst);
        cvae__wino_avx2_channels_last(src, c, h, w, pad, ph / 2, ph, pw, cp, dst);
        for (int y = 0; y < ph; y++)
            for (int x = 0; x < pw; x++)
                for (size_t ch = 0; ch < cp; ch++) {
                    const int sy = y - pad, sx = x - pad;
                    const float want = (int)ch < c && sy >= 0 && sy < h && sx >= 0 && sx < w
                                           ? src[((size_t)ch * h + sy) * w + sx]
                                           : 0.0f;
                    assert_true(dst[((size_t)y * pw + x) * cp + ch] == want);
                }
        /* and back, in two runs of rows: the first h x w positions of the
         * copy without its border are the image again */
        float *back = gc_alloc((size_t)c * h * w + 8);
        gc_fill_nan(back, (size_t)c * h * w + 8);
        const float *inner = dst + ((size_t)pad * pw + pad) * cp;
        cvae__wino_avx2_channels_first(inner, (size_t)pw, cp, c, h, w, 0, h / 2, back);
        cvae__wino_avx2_channels_first(inner + (size_t)(h / 2) * pw * cp, (size_t)pw, cp, c, h, w,
                                       h / 2, h, back);
        assert_memory_equal(back, src, (size_t)c * h * w * sizeof *src);
        for (int i = 0; i < 8; i++)
            assert_true(isnan(back[(size_t)c * h * w + i])); /* nothing past y */
        free(src);
        free(dst);
        free(back);
    }
}

static void test_product(void **state)
{
    (void)state;
    if (!here())
        return;
    cvae__rng r;
    cvae__rng_seed(&r, 72);
    for (int nc = 16; nc <= 48; nc += 16)
        for (int m = 1; m <= 16; m++) {
            const size_t vblk = 16 * 20, us = 48; /* 20 tiles a block, U 48 wide */
            float *v = gc_alloc((size_t)(nc / 16) * vblk), *u = gc_alloc((size_t)nc * us);
            float *c = gc_alloc(16 * 16 + 16);
            gc_fill_uniform(&r, v, (size_t)(nc / 16) * vblk, -1, 1);
            gc_fill_uniform(&r, u, (size_t)nc * us, -1, 1);
            gc_fill_nan(c, 16 * 16 + 16);
            cvae__wino_avx2_product(m, nc, v, vblk, u, us, c);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < 16; j++) {
                    double s = 0.0, mag = 0.0;
                    for (int k = 0; k < nc; k++) {
                        const double p =
                            (double)v[(size_t)(k / 16) * vblk + (size_t)i * 16 + (size_t)(k % 16)] *
                            u[(size_t)k * us + (size_t)j];
                        s += p;
                        mag += fabs(p);
                    }
                    assert_true(fabs(c[i * 16 + j] - s) <= 1e-6 * mag + 1e-30);
                }
            for (int i = m * 16; i < 16 * 16 + 16; i++)
                assert_true(isnan(c[i])); /* rows past m untouched */
            free(v);
            free(u);
            free(c);
        }
}

static void test_outer(void **state)
{
    (void)state;
    if (!here())
        return;
    cvae__rng r;
    cvae__rng_seed(&r, 73);
    const int ks[] = {1, 5, 64, 197};
    for (size_t q = 0; q < sizeof ks / sizeof *ks; q++) {
        const int k = ks[q];
        float *v = gc_alloc((size_t)k * 16), *z = gc_alloc((size_t)k * 16);
        float *c = gc_alloc(16 * 16), *c0 = gc_alloc(16 * 16);
        gc_fill_uniform(&r, v, (size_t)k * 16, -1, 1);
        gc_fill_uniform(&r, z, (size_t)k * 16, -1, 1);
        gc_fill_uniform(&r, c0, 16 * 16, -1, 1);
        for (int beta = 0; beta <= 1; beta++) {
            if (beta)
                memcpy(c, c0, 16 * 16 * sizeof *c);
            else
                gc_fill_nan(c, 16 * 16); /* beta 0: not read */
            cvae__wino_avx2_outer(k, v, z, (float)beta, c);
            for (int i = 0; i < 16; i++)
                for (int j = 0; j < 16; j++) {
                    double s = beta ? c0[i * 16 + j] : 0.0, mag = fabs(s);
                    for (int p = 0; p < k; p++) {
                        const double t = (double)v[p * 16 + i] * z[p * 16 + j];
                        s += t;
                        mag += fabs(t);
                    }
                    assert_true(fabs(c[i * 16 + j] - s) <= 1e-6 * mag + 1e-30);
                }
        }
        free(v);
        free(z);
        free(c);
        free(c0);
    }
}

/* One 4x4 output tile through the transforms, 16 channels side by side,
 * channel q convolved with its own kernel (the diagonal channel pairs of
 * a 16 -> 16 layer's transformed weights). */
static void check_tile(int ks, cvae__rng *r)
{
    const int n = ks + 3, nf = n * n, kk = ks * ks;
    cvae__conv_geom g;
    assert_int_equal(cvae__conv_geom_init(&g, 16, 8, 8, 16, ks, ks, 1, CVAE__PAD_SAME), CVAE_OK);
    if (!cvae__conv_wino_ok(&g)) { /* CVAE_GEMM_KERNEL=blis: no transformed weights */
        print_message("conv_wino_avx2: Winograd turned off, tile transforms not checked\n");
        return;
    }
    float *w = gc_alloc((size_t)16 * 16 * kk), *u = gc_alloc(cvae__conv_wino_u_floats(&g));
    float d[64][16], v[64][16], y[16][16];
    gc_fill_uniform(r, w, (size_t)16 * 16 * kk, -1, 1);
    gc_fill_uniform(r, &d[0][0], sizeof d / sizeof(float), -1, 1);
    cvae__conv_wino_weights(&g, w, u);
    /* d[i*n + j][q]: rows n floats x 16 apart */
    cvae__wino_avx2_input_tile(n, &d[0][0], (size_t)n * 16, 16, &v[0][0], 16);
    for (int f = 0; f < nf; f++)
        for (int q = 0; q < 16; q++)
            v[f][q] *= u[((size_t)f * 16 + (size_t)q) * 16 + (size_t)q];
    cvae__wino_avx2_output_tile(n, &v[0][0], 16, &y[0][0], 4 * 16, 16);
    for (int q = 0; q < 16; q++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                double s = 0.0, mag = 0.0;
                for (int a = 0; a < ks; a++)
                    for (int b = 0; b < ks; b++) {
                        const double p = (double)d[(i + a) * n + j + b][q] *
                                         w[((size_t)q * 16 + (size_t)q) * kk + (size_t)(a * ks + b)];
                        s += p;
                        mag += fabs(p);
                    }
                assert_true(fabs(y[i * 4 + j][q] - s) <= 2e-5 * mag);
            }
    /* <A^T M A, Y> = <M, A Y A^T> for the same channel */
    float m[64][16], t[16][16], z[64][16];
    gc_fill_uniform(r, &m[0][0], sizeof m / sizeof(float), -1, 1);
    gc_fill_uniform(r, &t[0][0], sizeof t / sizeof(float), -1, 1);
    cvae__wino_avx2_output_tile(n, &m[0][0], 16, &y[0][0], 4 * 16, 16);
    cvae__wino_avx2_gradient_tile(n, &t[0][0], 4 * 16, 16, &z[0][0], 16);
    for (int q = 0; q < 16; q++) {
        double lhs = 0.0, rhs = 0.0, mag = 0.0;
        for (int i = 0; i < 16; i++)
            lhs += (double)y[i][q] * t[i][q], mag += fabs((double)y[i][q] * t[i][q]);
        for (int f = 0; f < nf; f++)
            rhs += (double)m[f][q] * z[f][q], mag += fabs((double)m[f][q] * z[f][q]);
        assert_true(fabs(lhs - rhs) <= 1e-5 * mag);
    }
    free(w);
    free(u);
}

static void test_tile_transforms(void **state)
{
    (void)state;
    if (!here())
        return;
    cvae__rng r;
    cvae__rng_seed(&r, 74);
    for (int rep = 0; rep < 4; rep++) {
        check_tile(5, &r);
        check_tile(3, &r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channels_last_and_first),
        cmocka_unit_test(test_product),
        cmocka_unit_test(test_outer),
        cmocka_unit_test(test_tile_transforms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
