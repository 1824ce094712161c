/* cvae__sgemm against a naive triple loop: every transpose combination,
 * sub-matrices with padded leading dimensions, alpha/beta, degenerate
 * sizes, and the thread-count API. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "gemm.h"
#include "rng.h"

#define SENTINEL 12345.0f

/* A stored matrix of rows x cols inside a larger buffer: `pad` extra
 * columns per row hold NaN (for inputs) or a sentinel (for C), so reading
 * past a row poisons the result and writing past it is detected. */
typedef struct mat {
    float *buf; /* allocation */
    float *p;   /* first element (offset into buf) */
    int rows, cols, ld;
} mat;

static mat mat_new(int rows, int cols, int pad, float fill, cvae__rng *r)
{
    mat m;
    m.rows = rows;
    m.cols = cols;
    m.ld = cols + pad;
    size_t n = (size_t)(rows > 0 ? rows : 1) * (size_t)(m.ld > 0 ? m.ld : 1) + 5;
    m.buf = malloc(n * sizeof *m.buf);
    assert_non_null(m.buf);
    for (size_t i = 0; i < n; i++)
        m.buf[i] = fill;
    m.p = m.buf + 5; /* not at the start of the allocation either */
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            m.p[(size_t)i * m.ld + j] = r ? 2.0f * cvae__rng_uniform(r) - 1.0f : fill;
    return m;
}

static void mat_free(mat *m) { free(m->buf); }

/* op(X)(i, j) for a stored matrix, transposed or not. */
static double at(const mat *m, int trans, int i, int j)
{
    return trans ? m->p[(size_t)j * m->ld + i] : m->p[(size_t)i * m->ld + j];
}

static void check_case(int ta, int tb, int m, int n, int k, float alpha, float beta,
                       cvae__rng *r)
{
    /* Stored shapes: A is m x k, or k x m when transposed; likewise B. */
    mat A = ta ? mat_new(k, m, 3, NAN, r) : mat_new(m, k, 2, NAN, r);
    mat B = tb ? mat_new(n, k, 1, NAN, r) : mat_new(k, n, 4, NAN, r);
    mat C = mat_new(m, n, 3, SENTINEL, r);
    double *want = calloc((size_t)(m > 0 ? m : 1) * (size_t)(n > 0 ? n : 1), sizeof *want);
    assert_non_null(want);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0.0;
            for (int p = 0; p < k; p++)
                acc += at(&A, ta, i, p) * at(&B, tb, p, j);
            want[(size_t)i * n + j] = alpha * acc + beta * (double)C.p[(size_t)i * C.ld + j];
        }
    cvae__sgemm(ta, tb, m, n, k, alpha, A.p, A.ld, B.p, B.ld, beta, C.p, C.ld);
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double got = C.p[(size_t)i * C.ld + j], w = want[(size_t)i * n + j];
            double tol = 1e-5 * (fabs(w) + (double)k + 1.0);
            assert_true(fabs(got - w) <= tol);
        }
        /* Padding columns of C are never written. */
        for (int j = n; j < C.ld; j++)
            assert_true(C.p[(size_t)i * C.ld + j] == SENTINEL);
    }
    assert_true(C.buf[0] == SENTINEL);
    free(want);
    mat_free(&A);
    mat_free(&B);
    mat_free(&C);
}

static void test_gemm_transposes_and_strides(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 41);
    const int sizes[][3] = {
        {1, 1, 1}, {1, 7, 3}, {5, 1, 4}, {3, 4, 1}, {7, 5, 3},
        {16, 16, 16}, {33, 17, 65}, {64, 100, 9}, {100, 3, 257},
    };
    const float ab[][2] = {{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, -0.75f}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (size_t q = 0; q < sizeof ab / sizeof ab[0]; q++)
                    check_case(ta, tb, sizes[s][0], sizes[s][1], sizes[s][2], ab[q][0],
                               ab[q][1], &r);
}

/* beta = 0 overwrites C without reading it (NaN in C does not leak), which
 * the layers rely on to skip zeroing gradient buffers. */
static void test_gemm_beta_zero_ignores_c(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 42);
    const int m = 9, n = 11, k = 6;
    float a[9 * 6], b[6 * 11], c[9 * 11];
    for (int i = 0; i < m * k; i++)
        a[i] = cvae__rng_uniform(&r);
    for (int i = 0; i < k * n; i++)
        b[i] = cvae__rng_uniform(&r);
    for (int i = 0; i < m * n; i++)
        c[i] = NAN;
    cvae__sgemm(0, 0, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0.0;
            for (int p = 0; p < k; p++)
                acc += (double)a[i * k + p] * b[p * n + j];
            assert_true(fabs(c[i * n + j] - acc) < 1e-5);
        }
}

/* Repeated beta = 1 calls accumulate, as the conv layers use across a batch. */
static void test_gemm_accumulate(void **state)
{
    (void)state;
    const float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8};
    float c[4] = {0, 0, 0, 0};
    for (int rep = 0; rep < 3; rep++)
        cvae__sgemm(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, rep == 0 ? 0.0f : 1.0f, c, 2);
    /* a*b = [[19,22],[43,50]] */
    assert_true(c[0] == 57.0f && c[1] == 66.0f && c[2] == 129.0f && c[3] == 150.0f);
}

static void test_gemm_degenerate(void **state)
{
    (void)state;
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 1, 1, 1};
    float c[6] = {1, 2, 3, 4, 5, 6};
    /* k == 0: C = beta * C. */
    cvae__sgemm(0, 0, 2, 3, 0, 1.0f, a, 1, b, 3, 2.0f, c, 3);
    for (int i = 0; i < 6; i++)
        assert_true(c[i] == 2.0f * (float)(i + 1));
    cvae__sgemm(1, 1, 2, 3, 0, 1.0f, a, 2, b, 1, 1.0f, c, 3);
    for (int i = 0; i < 6; i++)
        assert_true(c[i] == 2.0f * (float)(i + 1));
    cvae__sgemm(0, 1, 2, 3, 0, 1.0f, a, 1, b, 1, 0.0f, c, 3);
    for (int i = 0; i < 6; i++)
        assert_true(c[i] == 0.0f);
    /* m == 0 or n == 0: nothing is touched (pointers may be anything
     * valid). */
    float keep[2] = {7.0f, 8.0f};
    cvae__sgemm(0, 0, 0, 2, 2, 1.0f, a, 2, b, 2, 0.0f, keep, 2);
    cvae__sgemm(0, 0, 1, 0, 2, 1.0f, a, 2, b, 2, 0.0f, keep, 1);
    assert_true(keep[0] == 7.0f && keep[1] == 8.0f);
}

/* Vector-shaped products with operands allocated to their exact size, so
 * that a read past the end (which BLIS 0.9's own path for these shapes
 * does) shows up under valgrind; values against the naive loop. */
static void test_gemm_vector_shapes_exact(void **state)
{
    (void)state;
    cvae__rng r;
    cvae__rng_seed(&r, 44);
    const int shapes[][3] = {{1, 17, 9}, {17, 1, 9}, {1, 1, 9}, {1, 100, 3},
                             {100, 1, 3}, {1, 2, 9}, {1, 33, 1}, {1, 16, 4704}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                float *a = malloc((size_t)m * k * sizeof *a);
                float *b = malloc((size_t)k * n * sizeof *b);
                float *c = malloc((size_t)m * n * sizeof *c);
                assert_non_null(a);
                assert_non_null(b);
                assert_non_null(c);
                for (int i = 0; i < m * k; i++)
                    a[i] = 2.0f * cvae__rng_uniform(&r) - 1.0f;
                for (int i = 0; i < k * n; i++)
                    b[i] = 2.0f * cvae__rng_uniform(&r) - 1.0f;
                for (int i = 0; i < m * n; i++)
                    c[i] = NAN;
                cvae__sgemm(ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c, n);
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double acc = 0.0;
                        for (int p = 0; p < k; p++)
                            acc += (double)(ta ? a[p * m + i] : a[i * k + p]) *
                                   (tb ? b[j * k + p] : b[p * n + j]);
                        assert_true(fabs(c[i * n + j] - acc) <= 1e-5 * (fabs(acc) + k));
                    }
                free(a);
                free(b);
                free(c);
            }
}

static void test_gemm_threads(void **state)
{
    (void)state;
    assert_int_equal(cvae_get_num_threads(), 1); /* the default */
    (void)cvae__fail(CVAE_OK, "%s", "");
    assert_int_equal(cvae_set_num_threads(0), CVAE_E_INVALID_ARG);
    assert_true(strlen(cvae_last_error()) > 0);
    assert_int_equal(cvae_set_num_threads(-4), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae_get_num_threads(), 1); /* unchanged by failures */
    assert_int_equal(cvae_set_num_threads(2), CVAE_OK);
    assert_int_equal(cvae_get_num_threads(), 2);
    assert_int_equal(cvae__gemm_get_threads(), 2);
    /* Results with two threads still match the reference. */
    cvae__rng r;
    cvae__rng_seed(&r, 43);
    check_case(0, 1, 150, 130, 140, 1.0f, 0.0f, &r);
    check_case(1, 0, 70, 190, 33, 1.0f, 1.0f, &r);
    assert_int_equal(cvae_set_num_threads(1), CVAE_OK);
    assert_int_equal(cvae_get_num_threads(), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_threads),
        cmocka_unit_test(test_gemm_transposes_and_strides),
        cmocka_unit_test(test_gemm_beta_zero_ignores_c),
        cmocka_unit_test(test_gemm_accumulate),
        cmocka_unit_test(test_gemm_degenerate),
        cmocka_unit_test(test_gemm_vector_shapes_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
