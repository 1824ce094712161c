/* The im2col matrix (lib/layers/im2col.c): cvae__im2col against the
 * definition written out, cvae__col2im_scratch against cvae__col2im, and
 * the implicit-im2col product against W times the reference matrix, on
 * geometries that reach every edge case of the panel gather (kernel and
 * row edges, partial 16-wide panels, partial MR-row tiles, split inner
 * dimension). Layer-level behaviour is in test_conv.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "layers/conv.h"
#include "layers/im2col.h"
#include "gradcheck.h"
#include "core/rng.h"

typedef struct spec {
    int c_in, h, w, c_out, kh, kw, stride, pad;
} spec;

static void geom(const spec *s, cvae__conv_geom *g)
{
    assert_int_equal(cvae__conv_geom_init(g, s->c_in, s->h, s->w, s->c_out, s->kh, s->kw,
                                          s->stride, s->pad),
                     CVAE_OK);
}

static size_t rows_of(const cvae__conv_geom *g) { return (size_t)g->c_in * g->kh * g->kw; }
static size_t cols_of(const cvae__conv_geom *g) { return (size_t)g->h_out * g->w_out; }
static size_t img_of(const cvae__conv_geom *g) { return (size_t)g->c_in * g->h_in * g->w_in; }

/* The definition: row (c, ky, kx), column (oy, ox) holds
 * img[c][oy*s - pad_top + ky][ox*s - pad_left + kx], 0 outside. */
static void ref_im2col(const cvae__conv_geom *g, const float *img, float *col)
{
    size_t r = 0;
    for (int c = 0; c < g->c_in; c++)
        for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++, r++)
                for (int oy = 0; oy < g->h_out; oy++)
                    for (int ox = 0; ox < g->w_out; ox++) {
                        const int iy = oy * g->stride - g->pad_top + ky;
                        const int ix = ox * g->stride - g->pad_left + kx;
                        const int in = iy >= 0 && iy < g->h_in && ix >= 0 && ix < g->w_in;
                        col[r * cols_of(g) + (size_t)oy * g->w_out + ox] =
                            in ? img[((size_t)c * g->h_in + iy) * g->w_in + ix] : 0.0f;
                    }
}

/* Stride-1 "same" (the run-based path, odd and even kernels, kernels wider
 * than the image), strided, explicitly padded, unpadded, 1x1. */
static const spec specs[] = {
    {1, 28, 28, 16, 3, 3, 1, CVAE__PAD_SAME},  {3, 14, 14, 4, 5, 5, 1, CVAE__PAD_SAME},
    {2, 9, 11, 3, 4, 2, 1, CVAE__PAD_SAME},    {2, 3, 4, 2, 7, 7, 1, CVAE__PAD_SAME},
    {2, 8, 7, 3, 4, 2, 2, CVAE__PAD_SAME},     {2, 9, 9, 2, 5, 3, 2, 1},
    {2, 6, 5, 2, 3, 3, 1, 0},                  {3, 5, 6, 2, 1, 1, 1, 0},
    {1, 10, 10, 1, 3, 3, 1, 2},                {4, 6, 6, 2, 2, 2, 2, 0},
};

static void test_im2col_definition(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 11);
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        cvae__conv_geom g;
        geom(&specs[i], &g);
        const size_t nc = cvae__conv_col_floats(&g);
        assert_int_equal(nc, rows_of(&g) * cols_of(&g));
        float *img = gc_alloc(img_of(&g)), *col = gc_alloc(nc), *want = gc_alloc(nc);
        gc_fill_uniform(&r, img, img_of(&g), -1, 1);
        gc_fill_nan(col, nc); /* every entry must be written */
        ref_im2col(&g, img, want);
        cvae__im2col(&g, img, col);
        assert_memory_equal(col, want, nc * sizeof *col);
        free(img);
        free(col);
        free(want);
    }
}

/* col2im_scratch = col2im into a zeroed image, whatever it does to col. */
static void test_col2im_scratch(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 12);
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        cvae__conv_geom g;
        geom(&specs[i], &g);
        const size_t nc = cvae__conv_col_floats(&g), ni = img_of(&g);
        float *col = gc_alloc(nc), *img = gc_alloc(ni), *want = gc_alloc(ni);
        gc_fill_uniform(&r, col, nc, -1, 1);
        cvae__col2im(&g, col, want); /* accumulates into zeros */
        gc_fill_nan(img, ni);        /* scratch zeroes first */
        cvae__col2im_scratch(&g, col, img);
        /* Run-wise additions sum a pixel's taps in another order. */
        for (size_t j = 0; j < ni; j++)
            assert_true(fabsf(img[j] - want[j]) <= 1e-5f * (1.0f + fabsf(want[j])));
        free(col);
        free(img);
        free(want);
    }
}

/* Geometries for the implicit product: model shapes, a 16 x 16 kernel (the
 * largest), positions not a multiple of 16, c_out not a multiple of MR,
 * inner dimensions above CVAE__IMPLICIT_KC_MAX (split into blocks). */
static const spec implicit_specs[] = {
    {1, 28, 28, 16, 3, 3, 1, CVAE__PAD_SAME},  {16, 14, 14, 32, 5, 5, 1, CVAE__PAD_SAME},
    {3, 9, 11, 5, 3, 3, 1, CVAE__PAD_SAME},    {2, 7, 5, 17, 4, 2, 1, CVAE__PAD_SAME},
    {1, 5, 20, 3, 16, 16, 1, CVAE__PAD_SAME},  {20, 6, 6, 7, 5, 5, 1, CVAE__PAD_SAME},
    {45, 4, 5, 3, 5, 5, 1, CVAE__PAD_SAME},    {2, 6, 9, 2, 3, 3, 1, 1},
    {1, 1, 1, 1, 1, 1, 1, 0},
};

static void test_implicit_conv(void **state)
{
    (void)state;
    if (cvae__gemm_tile_mr() == 0) {
        print_message("no tile micro-kernel on this CPU: implicit im2col is not used\n");
        return;
    }
    cvae__rng r;
    cvae__rng_seed(&r, 13);
    double worst = 0;
    for (size_t i = 0; i < sizeof implicit_specs / sizeof implicit_specs[0]; i++) {
        cvae__conv_geom g;
        geom(&implicit_specs[i], &g);
        assert_true(cvae__implicit_ok(&g));
        const int m = g.c_out, k = (int)rows_of(&g);
        const size_t n = cols_of(&g), ni = img_of(&g);
        /* the image exactly as large as it is: a gather past either end
         * shows under the sanitizers */
        float *img = malloc(ni * sizeof *img);
        assert_non_null(img);
        gc_fill_uniform(&r, img, ni, -1, 1);
        float *w = gc_alloc((size_t)m * k), *ap = gc_alloc(cvae__implicit_a_floats(m, k));
        float *bp = gc_alloc(cvae__implicit_b_floats(&g)), *y = gc_alloc((size_t)m * n);
        float *col = gc_alloc((size_t)k * n), *yg = gc_alloc((size_t)m * n);
        gc_fill_uniform(&r, w, (size_t)m * k, -1, 1);
        gc_fill_nan(y, (size_t)m * n); /* overwritten, not accumulated */
        gc_fill_nan(yg, (size_t)m * n);
        cvae__implicit_pack(w, m, k, ap);
        cvae__implicit_conv(&g, img, ap, bp, y);
        /* the gathered panels, which the direct reads (conv_direct.c)
         * replace on some of these geometries, give the same floats */
        cvae__implicit_conv_gathered(&g, img, ap, bp, yg);
        assert_memory_equal(yg, y, (size_t)m * n * sizeof *y);
        ref_im2col(&g, img, col);
        for (int o = 0; o < m; o++)
            for (size_t j = 0; j < n; j++) {
                double want = 0, mag = 0;
                for (int p = 0; p < k; p++) {
                    const double t = (double)w[(size_t)o * k + p] * col[(size_t)p * n + j];
                    want += t;
                    mag += fabs(t);
                }
                const double e = fabs((double)y[(size_t)o * n + j] - want) / (mag + 1e-30);
                assert_true(e < 1e-5 || fabs((double)y[(size_t)o * n + j] - want) < 1e-6);
                if (e > worst)
                    worst = e;
            }
        free(img);
        free(w);
        free(ap);
        free(bp);
        free(y);
        free(yg);
        free(col);
    }
    print_message("implicit im2col: max error %.2e relative to sum |w x| (MR %d)\n", worst,
                  cvae__gemm_tile_mr());
}

/* The implicit weight gradient against dy times the reference im2col
 * matrix transposed, both with beta 0 (overwrite) and 1 (accumulate). */
static void test_implicit_dw(void **state)
{
    (void)state;
    if (cvae__gemm_tile_mr() == 0) {
        print_message("no tile micro-kernel on this CPU: implicit im2col is not used\n");
        return;
    }
    cvae__rng r;
    cvae__rng_seed(&r, 17);
    double worst = 0;
    for (size_t i = 0; i < sizeof implicit_specs / sizeof implicit_specs[0]; i++) {
        cvae__conv_geom g;
        geom(&implicit_specs[i], &g);
        const int m = g.c_out, k = (int)rows_of(&g);
        const size_t n = cols_of(&g), ni = img_of(&g);
        float *img = malloc(ni * sizeof *img);
        assert_non_null(img);
        gc_fill_uniform(&r, img, ni, -1, 1);
        float *dy = gc_alloc((size_t)m * n), *dw = gc_alloc((size_t)m * k);
        float *prev = gc_alloc((size_t)m * k), *col = gc_alloc((size_t)k * n);
        float *work = gc_alloc(cvae__implicit_dw_floats(&g));
        gc_fill_uniform(&r, dy, (size_t)m * n, -1, 1);
        gc_fill_uniform(&r, prev, (size_t)m * k, -1, 1);
        ref_im2col(&g, img, col);
        for (int beta = 0; beta <= 1; beta++) {
            if (beta)
                memcpy(dw, prev, (size_t)m * k * sizeof *dw);
            else
                gc_fill_nan(dw, (size_t)m * k); /* overwritten, not read */
            cvae__implicit_dw(&g, img, dy, (float)beta, dw, work);
            for (int o = 0; o < m; o++)
                for (int p = 0; p < k; p++) {
                    double want = beta ? prev[(size_t)o * k + p] : 0.0, mag = fabs(want);
                    for (size_t j = 0; j < n; j++) {
                        const double t = (double)dy[(size_t)o * n + j] * col[(size_t)p * n + j];
                        want += t;
                        mag += fabs(t);
                    }
                    const double d = fabs((double)dw[(size_t)o * k + p] - want);
                    const double e = d / (mag + 1e-30);
                    assert_true(e < 1e-5 || d < 1e-6);
                    if (e > worst)
                        worst = e;
                }
        }
        free(img);
        free(dy);
        free(dw);
        free(prev);
        free(col);
        free(work);
    }
    print_message("implicit weight gradient: max error %.2e relative to sum |dy x|\n", worst);
}

/* What the implicit path accepts: stride 1 with rows as wide as the input,
 * kernels up to 16. */
static void test_implicit_ok(void **state)
{
    (void)state;
    if (cvae__gemm_tile_mr() == 0)
        return;
    static const struct {
        spec s;
        int ok;
    } cases[] = {
        {{2, 9, 9, 2, 3, 3, 1, CVAE__PAD_SAME}, 1},
        {{2, 9, 9, 2, 3, 3, 2, CVAE__PAD_SAME}, 0},  /* stride 2 */
        {{2, 9, 9, 2, 3, 3, 1, 0}, 0},               /* output narrower than input */
        {{2, 20, 20, 2, 17, 3, 1, CVAE__PAD_SAME}, 0}, /* kernel too tall */
        {{2, 20, 20, 2, 3, 17, 1, CVAE__PAD_SAME}, 0}, /* too wide */
        {{2, 20, 20, 2, 16, 16, 1, CVAE__PAD_SAME}, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cvae__conv_geom g;
        geom(&cases[i].s, &g);
        assert_int_equal(cvae__implicit_ok(&g), cases[i].ok);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_im2col_definition),
        cmocka_unit_test(test_col2im_scratch),
        cmocka_unit_test(test_implicit_conv),
        cmocka_unit_test(test_implicit_dw),
        cmocka_unit_test(test_implicit_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
