/* The whole manifold step (kNN -> fuzzy graph -> embedding -> GMM) on
 * Gaussian blobs joined by thin bridges of points: the partition is
 * recovered, the responsibilities agree with the assignments, the result is
 * the same with 1 and 2 threads, and arguments are checked; the modularity
 * that picks among several runs, against a dense reference, and that the
 * run it picks is the best one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/manifold.h"
#include "convvae.h"
#include "core/rng.h"

/* k blobs of `per` points in d dimensions (blob c centred at 6 e_c, unit
 * spread) plus, between consecutive blobs, a bridge of 5 points so that the
 * kNN graph is connected, as real data's usually is. Bridge points get
 * label -1 (not scored). */
static int make(int k, int per, int d, float *x, int32_t *lab, uint64_t seed)
{
    cvae__rng r;
    cvae__rng_seed(&r, seed);
    int n = 0;
    for (int c = 0; c < k; c++)
        for (int i = 0; i < per; i++, n++) {
            lab[n] = c;
            for (int t = 0; t < d; t++)
                x[n * d + t] = (t == c ? 6.0f : 0.0f) + cvae__rng_normal(&r);
        }
    for (int c = 0; c + 1 < k; c++)
        for (int i = 0; i < 5; i++, n++) {
            lab[n] = -1;
            const float f = (i + 1) / 6.0f;
            for (int t = 0; t < d; t++)
                x[n * d + t] = (t == c ? 6.0f * (1 - f) : 0.0f) + (t == c + 1 ? 6.0f * f : 0.0f) +
                               0.3f * cvae__rng_normal(&r);
        }
    return n;
}

static void test_blobs(void **state)
{
    (void)state;
    const int k = 5, per = 200, d = 16;
    const int cap = k * per + 5 * k;
    float *x = malloc((size_t)cap * d * sizeof *x), *resp = malloc((size_t)cap * k * sizeof *resp);
    int32_t *lab = malloc((size_t)cap * sizeof *lab), *a1 = malloc((size_t)cap * sizeof *a1);
    int32_t *a2 = malloc((size_t)cap * sizeof *a2);
    assert_true(x && resp && lab && a1 && a2);
    const int n = make(k, per, d, x, lab, 3);
    cvae__manifold_options o;
    cvae__manifold_defaults(&o);
    o.neighbors = 10;
    o.embed.epochs = 200;
    o.gmm.starts = 2;
    const int before = cvae_get_num_threads();
    assert_int_equal(cvae_set_num_threads(1), CVAE_OK);
    assert_int_equal(cvae__manifold_cluster(x, n, d, k, &o, a1, resp, NULL), CVAE_OK);
    assert_int_equal(cvae_set_num_threads(2), CVAE_OK);
    assert_int_equal(cvae__manifold_cluster(x, n, d, k, &o, a2, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_set_num_threads(before), CVAE_OK);
    assert_memory_equal(a1, a2, (size_t)n * sizeof *a1);
    int map[5] = {-1, -1, -1, -1, -1};
    for (int i = 0; i < n; i++) {
        assert_true(a1[i] >= 0 && a1[i] < k);
        double s = 0;
        int best = 0;
        for (int c = 0; c < k; c++) {
            s += resp[i * k + c];
            if (resp[i * k + c] > resp[i * k + best])
                best = c;
        }
        assert_true(fabs(s - 1) < 1e-5);
        assert_int_equal(best, a1[i]);
        if (lab[i] < 0)
            continue;
        if (map[a1[i]] < 0)
            map[a1[i]] = lab[i];
        assert_int_equal(map[a1[i]], lab[i]); /* one cluster, one blob */
    }
    free(x), free(resp), free(lab), free(a1), free(a2);
}

/* Modularity against the textbook double sum over a dense adjacency
 * matrix, Q = 1/W sum_ij [A_ij - d_i d_j / W] [c_i == c_j], on a random
 * weighted graph. */
static void test_modularity_reference(void **state)
{
    (void)state;
    enum { N = 14, K = 3 };
    double A[N][N] = {{0}};
    cvae__rng r;
    cvae__rng_seed(&r, 9);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (cvae__rng_uniform(&r) < 0.4)
                A[i][j] = A[j][i] = 0.05 + cvae__rng_uniform(&r);
    int64_t rowptr[N + 1];
    int32_t col[N * N];
    float w[N * N];
    int64_t e = 0;
    for (int i = 0; i < N; i++) {
        rowptr[i] = e;
        for (int j = 0; j < N; j++)
            if (A[i][j] > 0) {
                col[e] = j;
                w[e] = (float)A[i][j];
                A[i][j] = w[e]; /* the reference sees the float weights */
                e++;
            }
    }
    rowptr[N] = e;
    cvae__graph g = {N, rowptr, col, w};
    int32_t c[N];
    for (int trial = 0; trial < 5; trial++) {
        for (int i = 0; i < N; i++)
            c[i] = (int32_t)(cvae__rng_next(&r) % K);
        double W = 0, d[N] = {0};
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++)
                d[i] += A[i][j], W += A[i][j];
        double q = 0;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++)
                if (c[i] == c[j])
                    q += A[i][j] - d[i] * d[j] / W;
        q /= W;
        assert_true(fabs(cvae__graph_modularity(&g, c, K) - q) < 1e-9);
    }
    /* one cluster for everything: nothing gained over random edges */
    for (int i = 0; i < N; i++)
        c[i] = 0;
    assert_true(fabs(cvae__graph_modularity(&g, c, K)) < 1e-9);
}

/* Several runs keep the run of highest modularity: the same partition as
 * that run alone, and its score. Short layouts make the runs differ. */
static void test_runs_keep_the_best(void **state)
{
    (void)state;
    const int k = 4, per = 60, d = 8;
    const int cap = k * per + 5 * k;
    float *x = malloc((size_t)cap * d * sizeof *x);
    int32_t *lab = malloc((size_t)cap * sizeof *lab), *best = malloc((size_t)cap * sizeof *best);
    int32_t *one = malloc((size_t)cap * sizeof *one);
    assert_true(x && lab && best && one);
    const int n = make(k, per, d, x, lab, 5);
    cvae__manifold_options o;
    cvae__manifold_defaults(&o);
    o.neighbors = 8;
    o.embed.epochs = 3;
    o.gmm.starts = 1;
    o.seed = 77;
    o.runs = 5;
    double q;
    assert_int_equal(cvae__manifold_cluster(x, n, d, k, &o, best, NULL, &q), CVAE_OK);
    double top = -1;
    int top_run = -1, distinct = 0;
    int32_t *first = malloc((size_t)n * sizeof *first);
    assert_non_null(first);
    for (int r = 0; r < o.runs; r++) {
        cvae__manifold_options single = o;
        single.runs = 1;
        single.seed = cvae__manifold_run_seed(o.seed, r);
        double qr;
        assert_int_equal(cvae__manifold_cluster(x, n, d, k, &single, one, NULL, &qr), CVAE_OK);
        if (r == 0)
            memcpy(first, one, (size_t)n * sizeof *one);
        else
            distinct += memcmp(first, one, (size_t)n * sizeof *one) != 0;
        if (qr > top) {
            top = qr;
            top_run = r;
            if (memcmp(best, one, (size_t)n * sizeof *one) != 0)
                top_run = -1 - r; /* the best so far must be what came back */
        }
    }
    print_message("best of %d runs: modularity %.4f (run %d); %d runs differ from run 0\n",
                  o.runs, q, top_run, distinct);
    assert_true(top_run >= 0);
    assert_true(q == top);
    assert_true(distinct > 0); /* otherwise the test shows nothing */
    assert_int_equal(cvae__manifold_run_seed(o.seed, 0), o.seed);
    free(x), free(lab), free(best), free(one), free(first);
}

static void test_bad_args(void **state)
{
    (void)state;
    float x[20] = {0};
    int32_t a[10];
    cvae__manifold_options o;
    cvae__manifold_defaults(&o);
    assert_int_equal(cvae__manifold_cluster(NULL, 10, 2, 2, &o, a, NULL, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__manifold_cluster(x, 10, 2, 2, &o, a, NULL, NULL),
                     CVAE_E_INVALID_ARG); /* 19 neighbours of 10 points */
    o.neighbors = 3;
    assert_int_equal(cvae__manifold_cluster(x, 10, 2, 11, &o, a, NULL, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__manifold_cluster(x, 10, 0, 2, &o, a, NULL, NULL), CVAE_E_INVALID_ARG);
    o.runs = 0;
    assert_int_equal(cvae__manifold_cluster(x, 10, 2, 2, &o, a, NULL, NULL), CVAE_E_INVALID_ARG);
    o.runs = 1;
    x[7] = NAN;
    assert_int_equal(cvae__manifold_cluster(x, 10, 2, 2, &o, a, NULL, NULL), CVAE_E_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blobs),
        cmocka_unit_test(test_modularity_reference),
        cmocka_unit_test(test_runs_keep_the_best),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
