/* The whole manifold step (kNN -> fuzzy graph -> embedding -> GMM) on
 * Gaussian blobs joined by thin bridges of points: the partition is
 * recovered, the responsibilities agree with the assignments, the result is
 * the same with 1 and 2 threads, and arguments are checked; the modularity
 * that picks among several runs, against a dense reference, and that the
 * run it picks is the best one; the merge of spare clusters against a
 * greedy search that rescores every candidate partition from scratch, and
 * spare components merged back to the blobs. */
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

/* The defaults with a smaller graph, layout and mixture search, as small
 * test sets need. */
static cvae__manifold_options small_options(int neighbors, int epochs, int starts)
{
    cvae__manifold_options o;
    cvae__manifold_defaults(&o);
    o.neighbors = neighbors;
    o.embed.epochs = epochs;
    o.gmm.starts = starts;
    return o;
}

/* Checks a partition of make()'s points: labels in [0, k), one cluster per
 * blob (bridges not scored), responsibility rows summing to 1. Returns how
 * many points' largest responsibility is their assigned cluster's. */
static int check_partition(int n, int k, const int32_t *a, const float *resp,
                           const int32_t *lab)
{
    int map[16], agree = 0;
    assert_true(k <= 16);
    for (int c = 0; c < k; c++)
        map[c] = -1;
    for (int i = 0; i < n; i++) {
        assert_true(a[i] >= 0 && a[i] < k);
        double s = 0;
        int best = 0;
        for (int c = 0; c < k; c++) {
            s += resp[i * k + c];
            if (resp[i * k + c] > resp[i * k + best])
                best = c;
        }
        assert_true(fabs(s - 1) < 1e-5);
        agree += best == a[i];
        if (lab[i] < 0)
            continue;
        if (map[a[i]] < 0)
            map[a[i]] = lab[i];
        assert_int_equal(map[a[i]], lab[i]); /* one cluster, one blob */
    }
    return agree;
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
    cvae__manifold_options o = small_options(10, 200, 2);
    const int before = cvae_get_num_threads();
    assert_int_equal(cvae_set_num_threads(1), CVAE_OK);
    assert_int_equal(cvae__manifold_cluster(x, n, d, k, &o, a1, resp, NULL), CVAE_OK);
    assert_int_equal(cvae_set_num_threads(2), CVAE_OK);
    assert_int_equal(cvae__manifold_cluster(x, n, d, k, &o, a2, NULL, NULL), CVAE_OK);
    assert_int_equal(cvae_set_num_threads(before), CVAE_OK);
    assert_memory_equal(a1, a2, (size_t)n * sizeof *a1);
    assert_int_equal(check_partition(n, k, a1, resp, lab), n);
    free(x), free(resp), free(lab), free(a1), free(a2);
}

enum { N = 14 };

/* A random symmetric weighted graph on N nodes (edge probability 0.4),
 * dense in A (the float weights) and sparse in the arrays. */
static cvae__graph random_graph(cvae__rng *r, double A[N][N], int64_t rowptr[N + 1],
                                int32_t col[N * N], float w[N * N])
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            A[i][j] = 0;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (cvae__rng_uniform(r) < 0.4)
                A[i][j] = A[j][i] = 0.05 + cvae__rng_uniform(r);
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
    return (cvae__graph){N, rowptr, col, w};
}

/* Modularity against the textbook double sum over a dense adjacency
 * matrix, Q = 1/W sum_ij [A_ij - d_i d_j / W] [c_i == c_j], on a random
 * weighted graph. */
static void test_modularity_reference(void **state)
{
    (void)state;
    enum { K = 3 };
    double A[N][N];
    cvae__rng r;
    cvae__rng_seed(&r, 9);
    int64_t rowptr[N + 1];
    int32_t col[N * N];
    float w[N * N];
    cvae__graph g = random_graph(&r, A, rowptr, col, w);
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
    cvae__manifold_options o = small_options(8, 3, 1);
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

/* Several runs shared out to 2 and 3 threads (run r on part r % parts,
 * each part keeping its best): the same run kept as on one thread, so the
 * same partition, responsibilities and score, bit for bit; with spare
 * components merged back too. */
static void test_runs_shared_by_threads(void **state)
{
    (void)state;
    const int k = 4, per = 60, d = 8;
    const int cap = k * per + 5 * k;
    float *x = malloc((size_t)cap * d * sizeof *x);
    int32_t *lab = malloc((size_t)cap * sizeof *lab);
    int32_t *a[3];
    float *resp[3];
    for (int t = 0; t < 3; t++) {
        a[t] = malloc((size_t)cap * sizeof *a[t]);
        resp[t] = malloc((size_t)cap * k * sizeof *resp[t]);
        assert_true(a[t] && resp[t]);
    }
    assert_true(x && lab);
    const int n = make(k, per, d, x, lab, 5);
    const int before = cvae_get_num_threads();
    for (int extra = 0; extra <= 2; extra += 2) {
        cvae__manifold_options o = small_options(8, 3, 1);
        o.seed = 77;
        o.runs = 5;
        o.extra = extra;
        double q[3];
        for (int t = 0; t < 3; t++) {
            assert_int_equal(cvae_set_num_threads(t + 1), CVAE_OK);
            assert_int_equal(cvae__manifold_cluster(x, n, d, k, &o, a[t], resp[t], &q[t]),
                             CVAE_OK);
        }
        for (int t = 1; t < 3; t++) {
            assert_memory_equal(a[0], a[t], (size_t)n * sizeof *a[0]);
            assert_memory_equal(resp[0], resp[t], (size_t)n * k * sizeof *resp[0]);
            assert_memory_equal(&q[0], &q[t], sizeof q[0]);
        }
        /* the outputs may be left out on more threads too */
        double q2;
        assert_int_equal(cvae__manifold_cluster(x, n, d, k, &o, NULL, NULL, &q2), CVAE_OK);
        assert_memory_equal(&q[0], &q2, sizeof q2);
    }
    assert_int_equal(cvae_set_num_threads(before), CVAE_OK);
    for (int t = 0; t < 3; t++)
        free(a[t]), free(resp[t]);
    free(x), free(lab);
}

/* The greedy merge against a reference that, at every step, rescores each
 * candidate pair's merged partition from scratch with
 * cvae__graph_modularity (itself checked against the dense formula above)
 * and keeps the best: the same groups, numbered by their smallest
 * cluster. */
static void test_merge_reference(void **state)
{
    (void)state;
    enum { KF = 6 };
    double A[N][N];
    int64_t rowptr[N + 1];
    int32_t col[N * N];
    float w[N * N];
    cvae__rng r;
    cvae__rng_seed(&r, 21);
    for (int trial = 0; trial < 6; trial++) {
        cvae__graph g = random_graph(&r, A, rowptr, col, w);
        int32_t c[N];
        for (int i = 0; i < N; i++)
            c[i] = i < KF ? (int32_t)i : (int32_t)(cvae__rng_next(&r) % KF); /* none empty */
        for (int k_to = 1; k_to <= KF; k_to++) {
            int group[KF], rep[KF];
            assert_int_equal(cvae__merge_by_modularity(&g, c, KF, k_to, group), CVAE_OK);
            for (int a = 0; a < KF; a++)
                rep[a] = a;
            for (int groups = KF; groups > k_to; groups--) {
                double best = -INFINITY;
                int ba = -1, bb = -1;
                for (int a = 0; a < KF; a++)
                    for (int b = a + 1; b < KF; b++) {
                        if (rep[a] != a || rep[b] != b)
                            continue;
                        int32_t m[N];
                        for (int i = 0; i < N; i++)
                            m[i] = rep[c[i]] == b ? a : rep[c[i]];
                        const double q = cvae__graph_modularity(&g, m, KF);
                        if (q > best + 1e-12)
                            best = q, ba = a, bb = b;
                    }
                for (int a = 0; a < KF; a++)
                    if (rep[a] == bb)
                        rep[a] = ba;
            }
            int next = 0, want[KF];
            for (int a = 0; a < KF; a++)
                if (rep[a] == a)
                    want[a] = next++;
            assert_int_equal(next, k_to);
            for (int a = 0; a < KF; a++)
                assert_int_equal(group[a], want[rep[a]]);
        }
    }
    int group[3];
    int32_t c[N] = {0};
    cvae__graph g = random_graph(&r, A, rowptr, col, w);
    assert_int_equal(cvae__merge_by_modularity(&g, c, 2, 3, group), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__merge_by_modularity(&g, c, 2, 0, group), CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__merge_by_modularity(NULL, c, 2, 1, group), CVAE_E_INVALID_ARG);
}

/* Spare components: k + extra components on k blobs of unequal size cut
 * some blob; the merge joins the pieces again, so each cluster is one blob,
 * and the responsibilities, summed per group, still sum to 1 and agree
 * with the assignments. */
static void test_extra_merged_back(void **state)
{
    (void)state;
    const int k = 4, per = 150, d = 12;
    const int cap = k * per + 5 * k;
    float *x = malloc((size_t)cap * d * sizeof *x), *resp = malloc((size_t)cap * k * sizeof *resp);
    int32_t *lab = malloc((size_t)cap * sizeof *lab), *a = malloc((size_t)cap * sizeof *a);
    assert_true(x && resp && lab && a);
    const int n = make(k, per, d, x, lab, 11);
    cvae__manifold_options o = small_options(10, 200, 2);
    o.extra = 3;
    o.runs = 2;
    assert_int_equal(cvae__manifold_cluster(x, n, d, k, &o, a, resp, NULL), CVAE_OK);
    /* a point's merged group can outweigh its own component's group only
     * where components overlap: on the bridges at most */
    assert_true(check_partition(n, k, a, resp, lab) >= n - 5 * (k - 1));
    o.extra = -1;
    assert_int_equal(cvae__manifold_cluster(x, n, d, k, &o, a, NULL, NULL), CVAE_E_INVALID_ARG);
    o.extra = n - k + 1;
    assert_int_equal(cvae__manifold_cluster(x, n, d, k, &o, a, NULL, NULL), CVAE_E_INVALID_ARG);
    free(x), free(resp), free(lab), free(a);
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
        cmocka_unit_test(test_runs_shared_by_threads),
        cmocka_unit_test(test_merge_reference),
        cmocka_unit_test(test_extra_merged_back),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
