/* k-means++ / Lloyd: recovery of well-separated blobs, degenerate inputs,
 * argument checks, determinism, and the consistency of the returned centers,
 * assignment and inertia checked with independent double computations. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/kmeans.h"
#include "core/error.h"
#include "core/rng.h"

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    assert_non_null(p);
    return p;
}

static double sqdist_ref(const float *a, const float *b, int d)
{
    double s = 0;
    for (int j = 0; j < d; j++)
        s += ((double)a[j] - (double)b[j]) * ((double)a[j] - (double)b[j]);
    return s;
}

/* k blobs of unit-variance Gaussian points around centers at least 300
 * apart: k-means++ then seeds one center per blob with overwhelming
 * probability (a covered blob weighs ~d, an uncovered one ~300^2), and
 * Lloyd cannot mix blobs. Labels are random, so blob sizes vary. */
static void make_blobs(cvae__rng *r, int64_t n, int d, int k, float *x, int32_t *label,
                       float *truth)
{
    for (int c = 0; c < k; c++) {
        for (;;) {
            for (int j = 0; j < d; j++)
                truth[c * d + j] = -1000.0f + 2000.0f * cvae__rng_uniform(r);
            int ok = 1;
            for (int o = 0; o < c; o++)
                if (sqdist_ref(truth + c * d, truth + o * d, d) < 300.0 * 300.0)
                    ok = 0;
            if (ok)
                break;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        /* Every blob gets at least one point. */
        label[i] = i < k ? (int32_t)i : (int32_t)cvae__rng_below(r, (uint64_t)k);
        for (int j = 0; j < d; j++)
            x[i * d + j] = truth[label[i] * d + j] + cvae__rng_normal(r);
    }
}

/* 1 if assign equals label up to a one-to-one relabelling. */
static int same_partition(const int32_t *assign, const int32_t *label, int64_t n, int k)
{
    int32_t *map = xcalloc((size_t)k, sizeof *map), *inv = xcalloc((size_t)k, sizeof *inv);
    int ok = 1;
    for (int c = 0; c < k; c++)
        map[c] = inv[c] = -1;
    for (int64_t i = 0; i < n && ok; i++) {
        int32_t a = assign[i], l = label[i];
        if (a < 0 || a >= k) {
            ok = 0;
        } else if (map[a] < 0 && inv[l] < 0) {
            map[a] = l;
            inv[l] = a;
        } else if (map[a] != l || inv[l] != a) {
            ok = 0;
        }
    }
    free(map);
    free(inv);
    return ok;
}

static void test_blobs_recovered(void **state)
{
    (void)state;
    static const int cases[][3] = {
        /* k, d, n */
        {3, 2, 300}, {4, 3, 500}, {5, 4, 800}, {6, 7, 1200}, {8, 10, 2000}, {8, 2, 1000},
    };
    cvae__rng r;
    cvae__rng_seed(&r, 2024);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int k = cases[t][0], d = cases[t][1];
        const int64_t n = cases[t][2];
        float *x = xcalloc((size_t)n * d, sizeof *x), *truth = xcalloc((size_t)k * d, 4);
        float *centers = xcalloc((size_t)k * d, sizeof *centers);
        int32_t *label = xcalloc((size_t)n, 4), *assign = xcalloc((size_t)n, 4);
        make_blobs(&r, n, d, k, x, label, truth);
        cvae__rng kr;
        cvae__rng_seed(&kr, 7 + t);
        double inertia = -1;
        assert_int_equal(cvae__kmeans(x, n, d, k, 100, &kr, centers, assign, &inertia), CVAE_OK);
        assert_true(same_partition(assign, label, n, k));

        /* Each center is its blob's sample mean (Lloyd converged), within
         * float rounding of coordinates ~1e3. */
        for (int c = 0; c < k; c++) {
            double mean[10] = {0};
            int64_t cnt = 0;
            for (int64_t i = 0; i < n; i++)
                if (assign[i] == c) {
                    cnt++;
                    for (int j = 0; j < d; j++)
                        mean[j] += x[i * d + j];
                }
            assert_true(cnt > 0);
            for (int j = 0; j < d; j++)
                assert_true(fabs(centers[c * d + j] - mean[j] / (double)cnt) < 1e-3);
        }
        /* Unit-variance noise: inertia ~ (n - k) d. */
        double per = inertia / ((double)n * d);
        assert_true(per > 0.8 && per < 1.2);
        free(x);
        free(truth);
        free(centers);
        free(label);
        free(assign);
    }
}

static void test_k_equals_n(void **state)
{
    (void)state;
    enum { N = 60, D = 3 };
    float x[N * D], centers[N * D];
    int32_t assign[N];
    cvae__rng r;
    cvae__rng_seed(&r, 5);
    for (int i = 0; i < N * D; i++)
        x[i] = cvae__rng_normal(&r);
    double inertia = -1;
    assert_int_equal(cvae__kmeans(x, N, D, N, 50, &r, centers, assign, &inertia), CVAE_OK);
    assert_true(inertia == 0.0);
    /* Every point has its own cluster, whose center is that point. */
    int used[N] = {0};
    for (int i = 0; i < N; i++) {
        assert_true(assign[i] >= 0 && assign[i] < N);
        assert_int_equal(used[assign[i]], 0);
        used[assign[i]] = 1;
        assert_memory_equal(centers + assign[i] * D, x + i * D, D * sizeof(float));
    }
}

static void test_identical_points(void **state)
{
    (void)state;
    enum { N = 100, D = 4 };
    const float pt[D] = {0.5f, -3.25f, 7.0f, 1e-3f};
    float x[N * D];
    for (int i = 0; i < N; i++)
        memcpy(x + i * D, pt, sizeof pt);
    const int ks[] = {1, 3, 10, N};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        const int k = ks[t];
        float *centers = xcalloc((size_t)k * D, sizeof *centers);
        int32_t assign[N];
        double inertia = -1;
        cvae__rng r;
        cvae__rng_seed(&r, 9);
        assert_int_equal(cvae__kmeans(x, N, D, k, 20, &r, centers, assign, &inertia), CVAE_OK);
        assert_true(inertia == 0.0);
        for (int c = 0; c < k; c++)
            assert_memory_equal(centers + c * D, pt, sizeof pt);
        for (int i = 0; i < N; i++)
            assert_true(assign[i] >= 0 && assign[i] < k);
        free(centers);
    }
}

/* Fewer distinct locations than clusters: seeding runs out of positive
 * distances and Lloyd meets empty clusters; the result must still place
 * every point on a center (inertia 0) with a valid assignment. */
static void test_fewer_distinct_than_k(void **state)
{
    (void)state;
    enum { N = 30, D = 2, K = 5 };
    const float loc[3][D] = {{0, 0}, {10, 0}, {0, -7.5f}};
    float x[N * D], centers[K * D];
    int32_t assign[N];
    for (int i = 0; i < N; i++)
        memcpy(x + i * D, loc[i % 3], sizeof loc[0]);
    for (uint64_t seed = 1; seed <= 20; seed++) {
        cvae__rng r;
        cvae__rng_seed(&r, seed);
        double inertia = -1;
        assert_int_equal(cvae__kmeans(x, N, D, K, 50, &r, centers, assign, &inertia), CVAE_OK);
        assert_true(inertia == 0.0);
        for (int i = 0; i < N; i++) {
            assert_true(assign[i] >= 0 && assign[i] < K);
            assert_memory_equal(centers + assign[i] * D, x + i * D, D * sizeof(float));
        }
    }
}

static void test_bad_args(void **state)
{
    (void)state;
    float x[6] = {0, 1, 2, 3, 4, 5}, centers[6];
    int32_t assign[3];
    double inertia;
    cvae__rng r;
    cvae__rng_seed(&r, 1);
    struct {
        const float *x;
        int64_t n;
        int d, k, it;
        cvae__rng *r;
        float *c;
    } bad[] = {
        {NULL, 3, 2, 2, 10, &r, centers}, /* no data */
        {x, 3, 2, 2, 10, NULL, centers},  /* no rng */
        {x, 3, 2, 2, 10, &r, NULL},       /* no output */
        {x, 0, 2, 1, 10, &r, centers},    /* n = 0 */
        {x, -3, 2, 1, 10, &r, centers},   /* n < 0 */
        {x, 3, 0, 2, 10, &r, centers},    /* d = 0 */
        {x, 3, -2, 2, 10, &r, centers},   /* d < 0 */
        {x, 3, 2, 0, 10, &r, centers},    /* k = 0 */
        {x, 3, 2, -1, 10, &r, centers},   /* k < 0 */
        {x, 3, 2, 4, 10, &r, centers},    /* k > n */
        {x, 3, 2, 2, -1, &r, centers},    /* max_iter < 0 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cvae__fail(CVAE_OK, "%s", "");
        assert_int_equal(cvae__kmeans(bad[i].x, bad[i].n, bad[i].d, bad[i].k, bad[i].it, bad[i].r,
                                      bad[i].c, assign, &inertia),
                         CVAE_E_INVALID_ARG);
        assert_true(cvae_last_error()[0] != 0);
    }
    /* assign and inertia are optional; max_iter 0 is seeding only. */
    assert_int_equal(cvae__kmeans(x, 3, 2, 2, 10, &r, centers, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae__kmeans(x, 3, 2, 2, 0, &r, centers, assign, &inertia), CVAE_OK);
    assert_int_equal(cvae__kmeans(x, 1, 6, 1, 5, &r, centers, assign, &inertia), CVAE_OK);
    assert_memory_equal(centers, x, sizeof x); /* one point, one center: the point */
    assert_true(inertia == 0.0 && assign[0] == 0);
}

static void test_deterministic(void **state)
{
    (void)state;
    enum { N = 400, D = 5, K = 6 };
    float *x = xcalloc(N * D, sizeof *x);
    cvae__rng r;
    cvae__rng_seed(&r, 77);
    for (int i = 0; i < N * D; i++)
        x[i] = cvae__rng_uniform(&r);
    float c1[K * D], c2[K * D];
    int32_t a1[N], a2[N];
    double i1, i2;
    cvae__rng r1, r2;
    cvae__rng_seed(&r1, 1234);
    cvae__rng_seed(&r2, 1234);
    assert_int_equal(cvae__kmeans(x, N, D, K, 100, &r1, c1, a1, &i1), CVAE_OK);
    assert_int_equal(cvae__kmeans(x, N, D, K, 100, &r2, c2, a2, &i2), CVAE_OK);
    assert_memory_equal(c1, c2, sizeof c1);
    assert_memory_equal(a1, a2, sizeof a1);
    assert_memory_equal(&i1, &i2, sizeof i1);
    /* The generator advanced identically too. */
    assert_memory_equal(r1.s, r2.s, sizeof r1.s);
    free(x);
}

/* On unclustered data (where Lloyd takes many iterations and ties and empty
 * clusters can occur): inertia equals the sum of squared distances to the
 * returned centers under the returned assignment, every point sits with its
 * nearest center, and (once converged) each center is its cluster's mean. */
static void test_consistency(void **state)
{
    (void)state;
    static const int cases[][4] = {
        /* n, d, k, max_iter */
        {500, 3, 7, 300}, {997, 2, 12, 300}, {300, 8, 5, 300}, {200, 2, 9, 0}, {250, 3, 4, 2},
    };
    cvae__rng r;
    cvae__rng_seed(&r, 31337);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int n = cases[t][0], d = cases[t][1], k = cases[t][2], it = cases[t][3];
        float *x = xcalloc((size_t)n * d, sizeof *x), *c = xcalloc((size_t)k * d, sizeof *c);
        int32_t *a = xcalloc((size_t)n, sizeof *a);
        for (int i = 0; i < n * d; i++)
            x[i] = cvae__rng_uniform(&r) * 10.0f - 5.0f;
        double inertia = -1;
        assert_int_equal(cvae__kmeans(x, n, d, k, it, &r, c, a, &inertia), CVAE_OK);

        double want = 0;
        for (int i = 0; i < n; i++) {
            assert_true(a[i] >= 0 && a[i] < k);
            double own = sqdist_ref(x + (size_t)i * d, c + (size_t)a[i] * d, d);
            want += own;
            for (int o = 0; o < k; o++)
                assert_true(own <= sqdist_ref(x + (size_t)i * d, c + (size_t)o * d, d) * (1 + 1e-12));
        }
        assert_true(fabs(inertia - want) <= 1e-9 * want);

        if (it == 0) {
            /* Seeding only: centers are k distinct data points. */
            for (int cc = 0; cc < k; cc++) {
                int found = 0;
                for (int i = 0; i < n && !found; i++)
                    found = memcmp(c + (size_t)cc * d, x + (size_t)i * d, d * sizeof(float)) == 0;
                assert_true(found);
                for (int o = 0; o < cc; o++)
                    assert_true(memcmp(c + (size_t)cc * d, c + (size_t)o * d, d * sizeof(float)));
            }
        } else if (it >= 300) {
            /* Converged: a Lloyd fixed point. */
            for (int cc = 0; cc < k; cc++) {
                double mean[8] = {0};
                int cnt = 0;
                for (int i = 0; i < n; i++)
                    if (a[i] == cc) {
                        cnt++;
                        for (int j = 0; j < d; j++)
                            mean[j] += x[(size_t)i * d + j];
                    }
                assert_true(cnt > 0); /* no cluster is left empty */
                for (int j = 0; j < d; j++)
                    assert_true(fabs(c[(size_t)cc * d + j] - mean[j] / cnt) < 1e-5);
            }
        }
        print_message("n %d d %d k %d max_iter %d: inertia %.6g\n", n, d, k, it, inertia);
        free(x);
        free(c);
        free(a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blobs_recovered), cmocka_unit_test(test_k_equals_n),
        cmocka_unit_test(test_identical_points), cmocka_unit_test(test_fewer_distinct_than_k),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_deterministic),    cmocka_unit_test(test_consistency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
