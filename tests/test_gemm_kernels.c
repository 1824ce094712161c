/* The kernels under the BLIS wrapper (lib/core/gemm_kernels.c), called
 * directly and compared with a naive double-precision loop: the tile
 * micro-kernel of each kernel this CPU runs, on every m, n edge of its tile
 * and with beta = 0 over NaN (a short tile's rows bit for bit those of the
 * full tile), and the vector forms (dots, axpys) with
 * strides, lane remainders and beta. Products through cvae__sgemm are in
 * test_gemm.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "core/gemm_kernels.h"
#include "core/rng.h"

static float uniform(cvae__rng *r) { return 2.0f * cvae__rng_uniform(r) - 1.0f; }

static void expect_close(double got, double want, double magnitude, int k, const char *what)
{
    if (!(fabs(got - want) <= (double)(k + 4) * FLT_EPSILON * magnitude + 1e-30))
        fail_msg("%s: got %.9g, want %.9g", what, got, want);
}

static void test_availability(void **state)
{
    (void)state;
    (void)cvae__gemm_default_kernel(); /* initialises the kernels */
    assert_true(cvae__gemm_kernels_runs(CVAE__GEMM_KERNEL_AUTO));
    assert_true(cvae__gemm_kernels_runs(CVAE__GEMM_KERNEL_BLIS));
    assert_null(cvae__gemm_kernels_context(CVAE__GEMM_KERNEL_BLIS));
    assert_int_equal(cvae__gemm_kernels_tile_mr(CVAE__GEMM_KERNEL_BLIS), 0);
    const cvae__gemm_kernel ours[] = {CVAE__GEMM_KERNEL_AVX2, CVAE__GEMM_KERNEL_AVX512};
    for (size_t i = 0; i < 2; i++) {
        int runs = cvae__gemm_kernels_runs(ours[i]);
        assert_int_equal(runs, cvae__gemm_kernel_available(ours[i]));
        assert_int_equal(cvae__gemm_kernels_context(ours[i]) != NULL, runs);
        assert_int_equal(cvae__gemm_kernels_tile_mr(ours[i]) > 0, runs);
    }
    if (cvae__gemm_kernels_runs(CVAE__GEMM_KERNEL_AVX512))
        assert_true(cvae__gemm_kernels_runs(CVAE__GEMM_KERNEL_AVX2));
}

/* C = Ap Bp + beta C on packed panels, for every m <= MR, n <= 16. */
static void test_tile(void **state)
{
    (void)state;
    (void)cvae__gemm_default_kernel();
    const cvae__gemm_kernel ours[] = {CVAE__GEMM_KERNEL_AVX2, CVAE__GEMM_KERNEL_AVX512};
    cvae__rng r;
    cvae__rng_seed(&r, 61);
    int tested = 0;
    for (size_t kk = 0; kk < 2; kk++) {
        const int mr = cvae__gemm_kernels_tile_mr(ours[kk]);
        if (!mr)
            continue;
        const int ks[] = {0, 1, 9, 33};
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            const int k = ks[ki];
            float *ap = calloc((size_t)(mr * (k ? k : 1)), sizeof *ap);
            float *bp = calloc((size_t)(16 * (k ? k : 1)), sizeof *bp);
            assert_non_null(ap);
            assert_non_null(bp);
            for (int m = 1; m <= mr; m++)
                for (int n = 1; n <= 16; n++) {
                    /* Panels zero beyond m and n, as the contract says. */
                    for (int p = 0; p < k; p++) {
                        for (int i = 0; i < mr; i++)
                            ap[p * mr + i] = i < m ? uniform(&r) : 0.0f;
                        for (int j = 0; j < 16; j++)
                            bp[p * 16 + j] = j < n ? uniform(&r) : 0.0f;
                    }
                    const int ldc = 19;
                    float c[32 * 19], c0[32 * 19];
                    const float beta = (m + n) % 2 ? 0.0f : 0.5f;
                    for (int q = 0; q < 32 * 19; q++)
                        c[q] = c0[q] = beta == 0.0f ? NAN : uniform(&r);
                    cvae__gemm_kernels_tile(ours[kk], m, n, k, ap, bp, beta, c, ldc);
                    if (beta == 0.0f && n == 16 && m < mr) {
                        /* a short tile (the AVX-512 kernel runs those of
                         * at most 8 and 4 rows with fewer accumulators)
                         * gives the floats of the full tile's rows */
                        float cf[32 * 19];
                        cvae__gemm_kernels_tile(ours[kk], mr, 16, k, ap, bp, 0.0f, cf, ldc);
                        for (int i = 0; i < m; i++)
                            for (int j = 0; j < 16; j++)
                                if (memcmp(&c[i * ldc + j], &cf[i * ldc + j], sizeof(float)))
                                    fail_msg("%s: %dx16 tile differs from the full tile at %d,%d",
                                             cvae__gemm_kernel_name(ours[kk]), m, i, j);
                    }
                    for (int i = 0; i < mr; i++)
                        for (int j = 0; j < ldc; j++) {
                            if (i >= m || j >= n) { /* outside the tile: untouched */
                                if (!(isnan(c0[i * ldc + j]) ? isnan(c[i * ldc + j])
                                                             : c[i * ldc + j] == c0[i * ldc + j]))
                                    fail_msg("%s wrote outside its %dx%d tile",
                                             cvae__gemm_kernel_name(ours[kk]), m, n);
                                continue;
                            }
                            double acc = 0.0, mag = 0.0;
                            for (int p = 0; p < k; p++) {
                                acc += (double)ap[p * mr + i] * bp[p * 16 + j];
                                mag += fabs((double)ap[p * mr + i] * bp[p * 16 + j]);
                            }
                            if (beta != 0.0f) {
                                acc += beta * (double)c0[i * ldc + j];
                                mag += fabs(beta * (double)c0[i * ldc + j]);
                            }
                            expect_close(c[i * ldc + j], acc, mag, k, "tile");
                        }
                    tested++;
                }
            free(ap);
            free(bp);
        }
    }
    print_message("%d tiles checked\n", tested);
}

/* Dots and axpys with lane remainders (k and nc around 32 and 64), strided
 * operands and outputs, and beta. */
static void test_vector_forms(void **state)
{
    (void)state;
    (void)cvae__gemm_default_kernel();
    cvae__rng r;
    cvae__rng_seed(&r, 62);
    const int sizes[] = {1, 7, 31, 32, 33, 63, 64, 65, 130};
    const int ns = (int)(sizeof sizes / sizeof sizes[0]);
    for (int a = 0; a < ns; a++)
        for (int b = 0; b < ns; b++) {
            const int n = sizes[a], k = sizes[b];
            const ptrdiff_t rs = k + 3, os = 2, xs = 3, ms = n + 5;
            float *mat = malloc(sizeof(float) * (size_t)(n * rs + k * ms));
            float *x = malloc(sizeof(float) * (size_t)(k * xs));
            float *out = malloc(sizeof(float) * (size_t)(n * os));
            float *out0 = malloc(sizeof(float) * (size_t)(n * os));
            assert_true(mat && x && out && out0);
            for (ptrdiff_t q = 0; q < n * rs + k * ms; q++)
                mat[q] = uniform(&r);
            for (ptrdiff_t q = 0; q < k * xs; q++)
                x[q] = uniform(&r);
            const float alpha = 0.75f, beta = (a + b) % 2 ? 0.0f : -0.5f;
            for (ptrdiff_t q = 0; q < n * os; q++)
                out[q] = out0[q] = beta == 0.0f ? NAN : uniform(&r);

            /* dots: out[r] = alpha <row r, x> + beta out[r], x contiguous */
            cvae__gemm_vec_dots(n, k, alpha, mat, rs, x, beta, out, os);
            for (int i = 0; i < n; i++) {
                double acc = 0.0, mag = 0.0;
                for (int p = 0; p < k; p++) {
                    acc += (double)mat[i * rs + p] * x[p];
                    mag += fabs((double)mat[i * rs + p] * x[p]);
                }
                double c0 = beta == 0.0f ? 0.0 : out0[i * os];
                expect_close(out[i * os], alpha * acc + beta * c0,
                             fabs(alpha) * mag + fabs(beta * c0), k, "dots");
            }

            /* axpys: out[j] = alpha sum_p x[p * xs] mat[p * ms + j] + beta out[j] */
            for (ptrdiff_t q = 0; q < n * os; q++)
                out[q] = out0[q];
            cvae__gemm_vec_axpys(n, k, alpha, mat, ms, x, xs, beta, out, os);
            for (int j = 0; j < n; j++) {
                double acc = 0.0, mag = 0.0;
                for (int p = 0; p < k; p++) {
                    acc += (double)x[p * xs] * mat[p * ms + j];
                    mag += fabs((double)x[p * xs] * mat[p * ms + j]);
                }
                double c0 = beta == 0.0f ? 0.0 : out0[j * os];
                expect_close(out[j * os], alpha * acc + beta * c0,
                             fabs(alpha) * mag + fabs(beta * c0), k, "axpys");
            }
            free(mat);
            free(x);
            free(out);
            free(out0);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_availability),
        cmocka_unit_test(test_tile),
        cmocka_unit_test(test_vector_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
