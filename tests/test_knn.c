/* Exact kNN by tiled products against a brute-force double reference:
 * integer data (exact distances, so exact ties and the index tie-break are
 * checked), data far from the origin (cancellation), duplicates, several
 * tiles and blocks, thread-count independence and argument checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/knn.h"
#include "convvae.h"
#include "core/rng.h"

typedef struct ref_cand {
    double d2;
    int32_t i;
} ref_cand;

static int ref_cmp(const void *pa, const void *pb)
{
    const ref_cand *a = pa, *b = pb;
    if (a->d2 != b->d2)
        return a->d2 < b->d2 ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* All n - 1 other rows of row q sorted by (distance, index), in double. */
static void brute(const float *x, int n, int d, int q, ref_cand *out)
{
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (i == q)
            continue;
        double s = 0;
        for (int c = 0; c < d; c++) {
            double t = (double)x[(size_t)q * d + c] - x[(size_t)i * d + c];
            s += t * t;
        }
        out[m].d2 = s, out[m].i = i;
        m++;
    }
    qsort(out, (size_t)m, sizeof *out, ref_cmp);
}

/* Checks idx/dist of every row against brute force. exact: indices must
 * match one for one (exact arithmetic, ties included); otherwise the
 * returned distances must be the true k smallest within rel_tol, and an
 * index may differ from the reference only inside a near-tie. */
static void check_against_brute(const float *x, int n, int d, int k, const int32_t *idx,
                                const float *dist, int exact, double rel_tol)
{
    ref_cand *r = malloc((size_t)n * sizeof *r);
    assert_non_null(r);
    for (int q = 0; q < n; q++) {
        brute(x, n, d, q, r);
        for (int e = 0; e < k; e++) {
            const int32_t got = idx[(size_t)q * k + e];
            assert_true(got >= 0 && got < n && got != q);
            const double want = sqrt(r[e].d2);
            assert_true(fabs(dist[(size_t)q * k + e] - want) <= rel_tol * (want + 1e-3));
            if (exact) {
                assert_int_equal(got, r[e].i);
            } else if (got != r[e].i) {
                double gd = 0;
                for (int c = 0; c < d; c++) {
                    double t = (double)x[(size_t)q * d + c] - x[(size_t)got * d + c];
                    gd += t * t;
                }
                assert_true(fabs(sqrt(gd) - want) <= rel_tol * (want + 1e-3));
            }
            if (e > 0)
                assert_true(dist[(size_t)q * k + e] >= dist[(size_t)q * k + e - 1]);
        }
    }
    free(r);
}

/* Small integers: every product and sum is exact in float, so the result
 * must equal brute force exactly, ties broken by the smaller index. n spans
 * two reference blocks and six query tiles. */
static void test_integer_grid_exact(void **state)
{
    (void)state;
    const int n = 1500, d = 3, k = 12;
    float *x = malloc((size_t)n * d * sizeof *x);
    int32_t *idx = malloc((size_t)n * k * sizeof *idx);
    float *dist = malloc((size_t)n * k * sizeof *dist);
    assert_true(x && idx && dist);
    cvae__rng r;
    cvae__rng_seed(&r, 7);
    for (int i = 0; i < n * d; i++)
        x[i] = (float)cvae__rng_below(&r, 9); /* many exact ties and duplicates */
    assert_int_equal(cvae__knn(x, n, d, k, idx, dist), CVAE_OK);
    check_against_brute(x, n, d, k, idx, dist, 1, 1e-6);
    free(x), free(idx), free(dist);
}

/* Gaussian data offset far from the origin (1000 + N(0,1)): the product
 * formula on uncentred rows would lose about 1e6 * 2^-24 ~ 0.06 in every
 * squared distance, comparable to the nearest-neighbour distances here. */
static void test_offset_gaussian(void **state)
{
    (void)state;
    const int n = 1100, d = 10, k = 15;
    float *x = malloc((size_t)n * d * sizeof *x);
    int32_t *idx = malloc((size_t)n * k * sizeof *idx);
    float *dist = malloc((size_t)n * k * sizeof *dist);
    assert_true(x && idx && dist);
    cvae__rng r;
    cvae__rng_seed(&r, 11);
    for (int i = 0; i < n * d; i++)
        x[i] = 1000.0f + cvae__rng_normal(&r);
    assert_int_equal(cvae__knn(x, n, d, k, idx, dist), CVAE_OK);
    check_against_brute(x, n, d, k, idx, dist, 0, 1e-4);
    free(x), free(idx), free(dist);
}

/* A point's duplicate is its nearest neighbour at distance 0; the point
 * itself never is. */
static void test_duplicates_and_self(void **state)
{
    (void)state;
    const int n = 6, d = 2, k = 5;
    const float x[12] = {0, 0, 0, 0, 1, 0, 0, 2, 3, 3, 0, 0};
    int32_t idx[30];
    float dist[30];
    assert_int_equal(cvae__knn(x, n, d, k, idx, dist), CVAE_OK);
    /* row 0 = rows 1 and 5 */
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 5);
    assert_true(dist[0] == 0.0f && dist[1] == 0.0f);
    assert_int_equal(idx[2], 2);
    assert_true(fabsf(dist[2] - 1.0f) < 1e-7f);
    assert_int_equal(idx[3], 3);
    assert_int_equal(idx[4], 4);
    for (int i = 0; i < n; i++)
        for (int e = 0; e < k; e++)
            assert_int_not_equal(idx[i * k + e], i);
    check_against_brute(x, n, d, k, idx, dist, 1, 1e-6);
}

/* The same bits with 1 and 2 threads, and without the dist output. */
static void test_threads_identical(void **state)
{
    (void)state;
    const int n = 1300, d = 20, k = 20; /* two reference blocks, six query tiles */
    float *x = malloc((size_t)n * d * sizeof *x);
    int32_t *i1 = malloc((size_t)n * k * sizeof *i1), *i2 = malloc((size_t)n * k * sizeof *i2);
    int32_t *i3 = malloc((size_t)n * k * sizeof *i3);
    float *d1 = malloc((size_t)n * k * sizeof *d1), *d2 = malloc((size_t)n * k * sizeof *d2);
    assert_true(x && i1 && i2 && i3 && d1 && d2);
    cvae__rng r;
    cvae__rng_seed(&r, 3);
    for (int i = 0; i < n * d; i++)
        x[i] = cvae__rng_uniform(&r);
    const int before = cvae_get_num_threads();
    assert_int_equal(cvae_set_num_threads(1), CVAE_OK);
    assert_int_equal(cvae__knn(x, n, d, k, i1, d1), CVAE_OK);
    assert_int_equal(cvae_set_num_threads(2), CVAE_OK);
    assert_int_equal(cvae__knn(x, n, d, k, i2, d2), CVAE_OK);
    assert_int_equal(cvae__knn(x, n, d, k, i3, NULL), CVAE_OK);
    assert_int_equal(cvae_set_num_threads(before), CVAE_OK);
    assert_memory_equal(i1, i2, (size_t)n * k * sizeof *i1);
    assert_memory_equal(i1, i3, (size_t)n * k * sizeof *i1);
    assert_memory_equal(d1, d2, (size_t)n * k * sizeof *d1);
    check_against_brute(x, n, d, k, i1, d1, 0, 1e-4);
    free(x), free(i1), free(i2), free(i3), free(d1), free(d2);
}

static void test_bad_args(void **state)
{
    (void)state;
    float x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    int32_t idx[16];
    float dist[16];
    assert_int_equal(cvae__knn(NULL, 4, 2, 1, idx, dist), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__knn(x, 4, 2, 1, NULL, dist), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__knn(x, 4, 2, 4, idx, dist), CVAE_E_INVALID_ARG); /* k >= n */
    assert_int_equal(cvae__knn(x, 4, 2, 0, idx, dist), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__knn(x, 1, 2, 1, idx, dist), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__knn(x, 4, 0, 1, idx, dist), CVAE_E_INVALID_ARG);
    x[5] = NAN;
    assert_int_equal(cvae__knn(x, 4, 2, 1, idx, dist), CVAE_E_INVALID_ARG);
    assert_non_null(strstr(cvae_last_error(), "x[2][1]"));
    x[5] = 5;
    assert_int_equal(cvae__knn(x, 4, 2, 3, idx, dist), CVAE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integer_grid_exact), cmocka_unit_test(test_offset_gaussian),
        cmocka_unit_test(test_duplicates_and_self), cmocka_unit_test(test_threads_identical),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
