/* The whole manifold step (kNN -> fuzzy graph -> embedding -> GMM) on
 * Gaussian blobs joined by thin bridges of points: the partition is
 * recovered, the responsibilities agree with the assignments, the result is
 * the same with 1 and 2 threads, and arguments are checked. */
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
    assert_int_equal(cvae__manifold_cluster(x, n, d, k, &o, a1, resp), CVAE_OK);
    assert_int_equal(cvae_set_num_threads(2), CVAE_OK);
    assert_int_equal(cvae__manifold_cluster(x, n, d, k, &o, a2, NULL), CVAE_OK);
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

static void test_bad_args(void **state)
{
    (void)state;
    float x[20] = {0};
    int32_t a[10];
    cvae__manifold_options o;
    cvae__manifold_defaults(&o);
    assert_int_equal(cvae__manifold_cluster(NULL, 10, 2, 2, &o, a, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__manifold_cluster(x, 10, 2, 2, &o, a, NULL),
                     CVAE_E_INVALID_ARG); /* 19 neighbours of 10 points */
    o.neighbors = 3;
    assert_int_equal(cvae__manifold_cluster(x, 10, 2, 11, &o, a, NULL), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__manifold_cluster(x, 10, 0, 2, &o, a, NULL), CVAE_E_INVALID_ARG);
    x[7] = NAN;
    assert_int_equal(cvae__manifold_cluster(x, 10, 2, 2, &o, a, NULL), CVAE_E_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blobs),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
