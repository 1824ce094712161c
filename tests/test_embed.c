/* The UMAP-style embedding: rho and sigma by their defining equation, the
 * fuzzy union against a dense double reference, the curve parameters
 * against scipy's curve_fit, separated blobs staying separated from both
 * starts, determinism (seed, thread count) and argument checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/embed.h"
#include "cluster/knn.h"
#include "convvae.h"
#include "core/rng.h"

static void test_smooth_knn_equation(void **state)
{
    (void)state;
    const int n = 50, k = 9;
    float dist[450], rho[50], sigma[50];
    cvae__rng r;
    cvae__rng_seed(&r, 5);
    for (int i = 0; i < n; i++) {
        float acc = 0; /* rows i % 7 == 0 start with two duplicates (distance 0) */
        for (int j = 0; j < k; j++) {
            acc += (i % 7 == 0 && j < 2) ? 0.0f : 0.1f + cvae__rng_uniform(&r);
            dist[i * k + j] = acc;
        }
    }
    assert_int_equal(cvae__smooth_knn(dist, n, k, rho, sigma), CVAE_OK);
    for (int i = 0; i < n; i++) {
        float first = 0;
        for (int j = 0; j < k && first == 0; j++)
            first = dist[i * k + j];
        assert_true(rho[i] == first);
        double s = 0;
        for (int j = 0; j < k; j++) {
            const double t = dist[i * k + j] - rho[i];
            s += t > 0 ? exp(-t / sigma[i]) : 1;
        }
        assert_true(fabs(s - log2(k + 1.0)) < 1e-4);
    }
    /* all distances equal: every term is 1 whatever sigma, so sigma is
     * floored at 1e-3 of the mean distance */
    float flat[9] = {2, 2, 2, 2, 2, 2, 2, 2, 2};
    assert_int_equal(cvae__smooth_knn(flat, 1, 9, rho, sigma), CVAE_OK);
    assert_true(rho[0] == 2.0f);
    assert_true(sigma[0] >= 2e-3f * 0.999f);
    flat[3] = NAN;
    assert_int_equal(cvae__smooth_knn(flat, 1, 9, rho, sigma), CVAE_E_INVALID_ARG);
}

/* Random data -> kNN -> fuzzy graph, compared entry by entry with the
 * dense W = A + A^T - A.A^T built in double from the memberships. */
static void test_fuzzy_union_dense(void **state)
{
    (void)state;
    const int n = 120, d = 4, k = 6;
    float *x = malloc((size_t)n * d * sizeof *x), *dist = malloc((size_t)n * k * sizeof *dist);
    int32_t *idx = malloc((size_t)n * k * sizeof *idx);
    double *a = calloc((size_t)n * n, sizeof *a);
    float rho[120], sigma[120];
    assert_true(x && dist && idx && a);
    cvae__rng r;
    cvae__rng_seed(&r, 9);
    for (int i = 0; i < n * d; i++)
        x[i] = cvae__rng_normal(&r);
    assert_int_equal(cvae__knn(x, n, d, k, idx, dist), CVAE_OK);
    assert_int_equal(cvae__smooth_knn(dist, n, k, rho, sigma), CVAE_OK);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) {
            const double t = (double)dist[i * k + j] - rho[i];
            a[i * n + idx[i * k + j]] = t > 0 ? exp(-t / sigma[i]) : 1;
        }
    cvae__graph g;
    assert_int_equal(cvae__fuzzy_graph(idx, dist, n, k, &g), CVAE_OK);
    assert_int_equal(g.n, n);
    int64_t nnz = 0;
    for (int i = 0; i < n; i++) {
        int64_t e = g.rowptr[i];
        for (int j = 0; j < n; j++) {
            const double want = a[i * n + j] + a[j * n + i] - a[i * n + j] * a[j * n + i];
            if (want == 0)
                continue;
            nnz++;
            assert_true(e < g.rowptr[i + 1]);
            assert_int_equal(g.col[e], j); /* columns ascending */
            assert_true(fabs(g.w[e] - want) < 1e-6);
            e++;
        }
        assert_true(e == g.rowptr[i + 1]);
    }
    assert_true(nnz == g.rowptr[n]);
    cvae__graph_free(&g);
    cvae__graph_free(&g); /* idempotent */
    idx[3] = 0; /* row 0's own index */
    assert_int_equal(cvae__fuzzy_graph(idx, dist, n, k, &g), CVAE_E_INVALID_ARG);
    assert_null(g.rowptr);
    free(x), free(dist), free(idx), free(a);
}

/* scipy.optimize.curve_fit(lambda x, a, b: 1 / (1 + a * x ** (2 * b)), xv, yv)
 * with umap-learn's find_ab_params data (scipy 1.10). */
static void test_curve_parameters(void **state)
{
    (void)state;
    const double cases[4][4] = {{0.0, 1.0, 1.9328084, 0.79049497},
                                {0.1, 1.0, 1.57694346, 0.89506088},
                                {0.5, 1.0, 0.58303002, 1.33416699},
                                {0.25, 2.0, 0.4162735, 0.92185513}};
    for (int c = 0; c < 4; c++) {
        double a, b;
        assert_int_equal(cvae__umap_ab(cases[c][0], cases[c][1], &a, &b), CVAE_OK);
        assert_true(fabs(a - cases[c][2]) < 1e-4 * cases[c][2]);
        assert_true(fabs(b - cases[c][3]) < 1e-4 * cases[c][3]);
    }
    double a, b;
    assert_int_equal(cvae__umap_ab(3.0, 1.0, &a, &b), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__umap_ab(0.0, 0.0, &a, &b), CVAE_E_INVALID_ARG);
}

/* Four Gaussian blobs in 12-D, 150 points each, centres 8 apart (unit
 * spread): after the layout every point's nearest blob centroid in the
 * embedding must be its own blob's. */
static void blobs(int n, int d, int per, float *x, int32_t *lab, uint64_t seed)
{
    cvae__rng r;
    cvae__rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        lab[i] = i / per;
        for (int c = 0; c < d; c++)
            x[i * d + c] = (c == lab[i] ? 8.0f : 0.0f) + cvae__rng_normal(&r);
    }
}

static int separated(const float *y, const int32_t *lab, int n, int dim, int groups)
{
    double cen[4 * 4] = {0};
    int cnt[4] = {0};
    for (int i = 0; i < n; i++) {
        cnt[lab[i]]++;
        for (int c = 0; c < dim; c++)
            cen[lab[i] * dim + c] += y[i * dim + c];
    }
    for (int g = 0; g < groups; g++)
        for (int c = 0; c < dim; c++)
            cen[g * dim + c] /= cnt[g];
    for (int i = 0; i < n; i++) {
        int best = -1;
        double bd = INFINITY;
        for (int g = 0; g < groups; g++) {
            double s = 0;
            for (int c = 0; c < dim; c++)
                s += (y[i * dim + c] - cen[g * dim + c]) * (y[i * dim + c] - cen[g * dim + c]);
            if (s < bd)
                bd = s, best = g;
        }
        if (best != lab[i])
            return 0;
    }
    return 1;
}

static void test_blobs_separate(void **state)
{
    (void)state;
    const int per = 150, groups = 4, n = per * groups, d = 12, k = 10, dim = 2;
    float *x = malloc((size_t)n * d * sizeof *x), *dist = malloc((size_t)n * k * sizeof *dist);
    int32_t *idx = malloc((size_t)n * k * sizeof *idx), lab[600];
    float *y = malloc((size_t)n * dim * sizeof *y), *y2 = malloc((size_t)n * dim * sizeof *y2);
    assert_true(x && dist && idx && y && y2);
    blobs(n, d, per, x, lab, 21);
    assert_int_equal(cvae__knn(x, n, d, k, idx, dist), CVAE_OK);
    /* the blobs are far apart: add one bridge so that the graph is connected
     * and the spectral start is possible */
    idx[0 * k + k - 1] = per;
    idx[per * k + k - 1] = 2 * per;
    idx[2 * per * k + k - 1] = 3 * per;
    cvae__graph g;
    assert_int_equal(cvae__fuzzy_graph(idx, dist, n, k, &g), CVAE_OK);
    for (int init = 0; init < 2; init++) {
        cvae__embed_options o;
        cvae__embed_defaults(&o);
        o.dim = dim;
        o.epochs = 200;
        o.init = init ? CVAE__EMBED_INIT_RANDOM : CVAE__EMBED_INIT_SPECTRAL;
        cvae__embed_info info;
        cvae__rng r;
        cvae__rng_seed(&r, 77);
        assert_int_equal(cvae__embed(&g, &o, &r, y, &info), CVAE_OK);
        assert_int_equal(info.components, 1);
        assert_int_equal((int)info.init_used, (int)o.init);
        assert_int_equal(info.epochs, 200);
        assert_true(fabs(info.a - 1.9328084) < 1e-3);
        for (int i = 0; i < n * dim; i++)
            assert_true(isfinite(y[i]));
        assert_true(separated(y, lab, n, dim, groups));
        /* the same seed gives the same bits, with 1 or 2 threads */
        const int before = cvae_get_num_threads();
        assert_int_equal(cvae_set_num_threads(2), CVAE_OK);
        cvae__rng_seed(&r, 77);
        assert_int_equal(cvae__embed(&g, &o, &r, y2, NULL), CVAE_OK);
        assert_int_equal(cvae_set_num_threads(before), CVAE_OK);
        assert_memory_equal(y, y2, (size_t)n * dim * sizeof *y);
        /* another seed, another layout */
        cvae__rng_seed(&r, 78);
        assert_int_equal(cvae__embed(&g, &o, &r, y2, NULL), CVAE_OK);
        assert_memory_not_equal(y, y2, (size_t)n * dim * sizeof *y);
    }
    cvae__graph_free(&g);
    free(x), free(dist), free(idx), free(y), free(y2);
}

/* Two blobs with no edge between them: the spectral start is not possible
 * and the random one is used; the blobs still come out apart. */
static void test_disconnected_falls_back(void **state)
{
    (void)state;
    const int per = 80, n = 2 * per, d = 12, k = 8, dim = 2;
    float *x = malloc((size_t)n * d * sizeof *x), *dist = malloc((size_t)n * k * sizeof *dist);
    int32_t *idx = malloc((size_t)n * k * sizeof *idx), lab[160];
    float *y = malloc((size_t)n * dim * sizeof *y);
    assert_true(x && dist && idx && y);
    blobs(n, d, per, x, lab, 4);
    assert_int_equal(cvae__knn(x, n, d, k, idx, dist), CVAE_OK);
    cvae__graph g;
    assert_int_equal(cvae__fuzzy_graph(idx, dist, n, k, &g), CVAE_OK);
    cvae__embed_options o;
    cvae__embed_defaults(&o);
    o.dim = dim;
    o.init = CVAE__EMBED_INIT_SPECTRAL; /* asked for, not possible */
    cvae__embed_info info;
    cvae__rng r;
    cvae__rng_seed(&r, 1);
    assert_int_equal(cvae__embed(&g, &o, &r, y, &info), CVAE_OK);
    assert_true(info.components >= 2);
    assert_int_equal((int)info.init_used, (int)CVAE__EMBED_INIT_RANDOM);
    assert_int_equal(info.epochs, 500); /* n <= 10000 */
    assert_true(separated(y, lab, n, dim, 2));
    o.dim = 0;
    assert_int_equal(cvae__embed(&g, &o, &r, y, NULL), CVAE_E_INVALID_ARG);
    o.dim = 2;
    o.init = (cvae__embed_init)7;
    assert_int_equal(cvae__embed(&g, &o, &r, y, NULL), CVAE_E_INVALID_ARG);
    cvae__graph_free(&g);
    free(x), free(dist), free(idx), free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smooth_knn_equation), cmocka_unit_test(test_fuzzy_union_dense),
        cmocka_unit_test(test_curve_parameters),    cmocka_unit_test(test_blobs_separate),
        cmocka_unit_test(test_disconnected_falls_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
