/* Full-covariance EM against a plain double-precision EM written here
 * (Gauss-Jordan inverses and determinants, no Cholesky, no GEMM): the same
 * start, the same number of iterations, the same parameters and
 * responsibilities. Then recovery of separated anisotropic blobs, thread-
 * count independence, the choice among starts, and argument and
 * singularity checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/gmm.h"
#include "convvae.h"
#include "core/rng.h"

#define MAXD 6
#define MAXK 4

/* Inverse and log-determinant of a symmetric positive definite m x m
 * matrix by Gauss-Jordan elimination with partial pivoting. */
static void inv_logdet(const double *a, int m, double *inv, double *logdet)
{
    double w[MAXD][2 * MAXD];
    for (int r = 0; r < m; r++)
        for (int c = 0; c < 2 * m; c++)
            w[r][c] = c < m ? a[r * m + c] : (c - m == r);
    double ld = 0;
    for (int c = 0; c < m; c++) {
        int piv = c;
        for (int r = c + 1; r < m; r++)
            if (fabs(w[r][c]) > fabs(w[piv][c]))
                piv = r;
        for (int t = 0; t < 2 * m; t++) {
            double x = w[c][t];
            w[c][t] = w[piv][t];
            w[piv][t] = x;
        }
        ld += log(fabs(w[c][c]));
        const double p = w[c][c];
        for (int t = 0; t < 2 * m; t++)
            w[c][t] /= p;
        for (int r = 0; r < m; r++)
            if (r != c) {
                const double f = w[r][c];
                for (int t = 0; t < 2 * m; t++)
                    w[r][t] -= f * w[c][t];
            }
    }
    for (int r = 0; r < m; r++)
        for (int c = 0; c < m; c++)
            inv[r * m + c] = w[r][m + c];
    *logdet = ld;
}

/* One E-step: responsibilities (n x k) and the mean log-likelihood. */
static double ref_estep(const float *x, int n, int d, int k, const double *mu, const double *cov,
                        const double *w, double *resp)
{
    double inv[MAXK][MAXD * MAXD], ld[MAXK];
    for (int c = 0; c < k; c++)
        inv_logdet(cov + c * d * d, d, inv[c], &ld[c]);
    double ll = 0;
    for (int i = 0; i < n; i++) {
        double lp[MAXK], mx = -INFINITY;
        for (int c = 0; c < k; c++) {
            double q = 0;
            for (int r = 0; r < d; r++)
                for (int t = 0; t < d; t++)
                    q += ((double)x[i * d + r] - mu[c * d + r]) * inv[c][r * d + t] *
                         ((double)x[i * d + t] - mu[c * d + t]);
            lp[c] = log(w[c]) - 0.5 * (d * log(2 * 3.14159265358979323846) + ld[c] + q);
            mx = lp[c] > mx ? lp[c] : mx;
        }
        double s = 0;
        for (int c = 0; c < k; c++)
            s += exp(lp[c] - mx);
        ll += mx + log(s);
        for (int c = 0; c < k; c++)
            resp[i * k + c] = exp(lp[c] - mx) / s;
    }
    return ll / n;
}

static void ref_mstep(const float *x, int n, int d, int k, const double *resp, double reg,
                      double *mu, double *cov, double *w)
{
    for (int c = 0; c < k; c++) {
        double nk = 0;
        for (int i = 0; i < n; i++)
            nk += resp[i * k + c];
        w[c] = nk / n;
        for (int r = 0; r < d; r++) {
            double s = 0;
            for (int i = 0; i < n; i++)
                s += resp[i * k + c] * x[i * d + r];
            mu[c * d + r] = s / nk;
        }
        for (int r = 0; r < d; r++)
            for (int t = 0; t < d; t++) {
                double s = 0;
                for (int i = 0; i < n; i++)
                    s += resp[i * k + c] * (x[i * d + r] - mu[c * d + r]) *
                         (x[i * d + t] - mu[c * d + t]);
                cov[(c * d + r) * d + t] = s / nk + (r == t ? reg : 0);
            }
    }
}

/* Overlapping anisotropic Gaussians (so responsibilities are soft). */
static void make_data(int n, int d, int k, uint64_t seed, float *x, int32_t *lab, double sep)
{
    cvae__rng r;
    cvae__rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        const int c = i % k;
        lab[i] = c;
        float z[MAXD];
        for (int t = 0; t < d; t++)
            z[t] = cvae__rng_normal(&r);
        for (int t = 0; t < d; t++) {
            /* component c: a shear and a per-component scale */
            double v = z[t] * (1.0 + 0.5 * ((t + c) % 3)) + (t > 0 ? 0.6 * z[t - 1] : 0);
            x[i * d + t] = (float)(v + (t == c % d ? sep : 0) + (t == (c + 1) % d ? sep / 2 : 0));
        }
    }
}

static void test_em_matches_reference(void **state)
{
    (void)state;
    const int n = 2500, d = 3, k = 3, iters = 6; /* 3 row blocks */
    float *x = malloc((size_t)n * d * sizeof *x), *resp = malloc((size_t)n * k * sizeof *resp);
    int32_t *lab = malloc((size_t)n * sizeof *lab), *assign = malloc((size_t)n * sizeof *assign);
    double *rr = malloc((size_t)n * k * sizeof *rr);
    assert_true(x && resp && lab && assign && rr);
    make_data(n, d, k, 3, x, lab, 3.0);
    float means[MAXK * MAXD], covs[MAXK * MAXD * MAXD], weights[MAXK];
    double mu[MAXK * MAXD], cov[MAXK * MAXD * MAXD], w[MAXK];
    for (int c = 0; c < k; c++) {
        weights[c] = (float)(w[c] = 1.0 / k);
        for (int t = 0; t < d; t++) {
            means[c * d + t] = x[(10 * c + 1) * d + t];
            mu[c * d + t] = means[c * d + t];
            for (int u = 0; u < d; u++)
                covs[(c * d + t) * d + u] = (float)(cov[(c * d + t) * d + u] = (t == u) * 2.0);
        }
    }
    /* the reference regulariser: reg_covar times the mean per-dimension
     * variance of the data */
    double mean[MAXD] = {0}, var = 0;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < d; t++)
            mean[t] += x[i * d + t] / (double)n;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < d; t++)
            var += (x[i * d + t] - mean[t]) * (x[i * d + t] - mean[t]);
    var /= (double)n * d;
    cvae__gmm_options o;
    cvae__gmm_defaults(&o);
    o.max_iter = iters;
    o.tol = 0; /* run every iteration */
    o.reg_covar = 1e-3;
    for (int it = 0; it < iters; it++) {
        ref_estep(x, n, d, k, mu, cov, w, rr);
        ref_mstep(x, n, d, k, rr, o.reg_covar * var, mu, cov, w);
    }
    const double ll = ref_estep(x, n, d, k, mu, cov, w, rr);
    cvae__gmm_info info;
    assert_int_equal(cvae__gmm_em(x, n, d, k, &o, means, covs, weights, resp, assign, &info),
                     CVAE_OK);
    assert_int_equal(info.iterations, iters);
    assert_int_equal(info.converged, 0);
    print_message("loglik %.8f reference %.8f\n", info.loglik, ll);
    assert_true(fabs(info.loglik - ll) < 1e-5 * fabs(ll));
    for (int c = 0; c < k; c++) {
        assert_true(fabs(weights[c] - w[c]) < 1e-5);
        for (int t = 0; t < d; t++)
            assert_true(fabs(means[c * d + t] - mu[c * d + t]) < 1e-4);
        for (int e = 0; e < d * d; e++)
            assert_true(fabs(covs[c * d * d + e] - cov[c * d * d + e]) < 1e-4);
    }
    double maxdiff = 0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int c = 0; c < k; c++) {
            const double df = fabs(resp[i * k + c] - rr[i * k + c]);
            maxdiff = df > maxdiff ? df : maxdiff;
            if (rr[i * k + c] > rr[i * k + best])
                best = c;
        }
        if (rr[i * k + best] > 0.51)
            assert_int_equal(assign[i], best);
    }
    assert_true(maxdiff < 1e-4);
    /* soft data: some responsibilities really are split */
    int soft = 0;
    for (int i = 0; i < n * k; i++)
        soft += rr[i] > 0.2 && rr[i] < 0.8;
    assert_true(soft > 50);
    free(x), free(resp), free(lab), free(assign), free(rr);
}

/* Separated blobs: the partition is recovered exactly, the fit converges,
 * and 1 or 2 threads give the same bits. */
static void test_fit_recovers_and_is_deterministic(void **state)
{
    (void)state;
    const int n = 3000, d = 4, k = 3;
    float *x = malloc((size_t)n * d * sizeof *x);
    float *r1 = malloc((size_t)n * k * sizeof *r1), *r2 = malloc((size_t)n * k * sizeof *r2);
    int32_t *lab = malloc((size_t)n * sizeof *lab), *a1 = malloc((size_t)n * sizeof *a1);
    int32_t *a2 = malloc((size_t)n * sizeof *a2);
    assert_true(x && r1 && r2 && lab && a1 && a2);
    make_data(n, d, k, 8, x, lab, 25.0);
    float m1[MAXK * MAXD], m2[MAXK * MAXD], c1[MAXK * MAXD * MAXD], c2[MAXK * MAXD * MAXD];
    float w1[MAXK], w2[MAXK];
    cvae__gmm_options o;
    cvae__gmm_defaults(&o);
    o.starts = 3;
    cvae__gmm_info i1, i2;
    cvae__rng r;
    const int before = cvae_get_num_threads();
    assert_int_equal(cvae_set_num_threads(1), CVAE_OK);
    cvae__rng_seed(&r, 5);
    assert_int_equal(cvae__gmm_fit(x, n, d, k, &o, &r, m1, c1, w1, r1, a1, &i1), CVAE_OK);
    assert_int_equal(cvae_set_num_threads(2), CVAE_OK);
    cvae__rng_seed(&r, 5);
    assert_int_equal(cvae__gmm_fit(x, n, d, k, &o, &r, m2, c2, w2, r2, a2, &i2), CVAE_OK);
    assert_int_equal(cvae_set_num_threads(before), CVAE_OK);
    assert_memory_equal(m1, m2, sizeof(float) * k * d);
    assert_memory_equal(c1, c2, sizeof(float) * k * d * d);
    assert_memory_equal(r1, r2, sizeof(float) * n * k);
    assert_memory_equal(a1, a2, sizeof(int32_t) * n);
    assert_true(i1.loglik == i2.loglik && i1.converged);
    int map[MAXK] = {-1, -1, -1};
    for (int i = 0; i < n; i++) {
        if (map[a1[i]] < 0)
            map[a1[i]] = lab[i];
        assert_int_equal(map[a1[i]], lab[i]);
    }
    for (int c = 0; c < k; c++)
        assert_true(fabs(w1[c] - 1.0 / k) < 1e-3);
    /* responsibilities are a distribution per row */
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int c = 0; c < k; c++)
            s += r1[i * k + c];
        assert_true(fabs(s - 1) < 1e-5);
    }
    /* only the outputs asked for */
    cvae__rng_seed(&r, 5);
    assert_int_equal(cvae__gmm_fit(x, n, d, k, &o, &r, NULL, NULL, NULL, NULL, a2, &i2),
                     CVAE_OK);
    assert_memory_equal(a1, a2, sizeof(int32_t) * n);
    free(x), free(r1), free(r2), free(lab), free(a1), free(a2);
}

/* The kept start has the best final log-likelihood of all starts: each
 * single start, replayed from the same rng stream, scores no higher. */
static void test_best_start_kept(void **state)
{
    (void)state;
    const int n = 1200, d = 2, k = 4;
    float *x = malloc((size_t)n * d * sizeof *x);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    assert_true(x && lab);
    make_data(n, d, k, 13, x, lab, 2.0);
    cvae__gmm_options o;
    cvae__gmm_defaults(&o);
    o.starts = 5;
    cvae__gmm_info all;
    cvae__rng r;
    cvae__rng_seed(&r, 1);
    assert_int_equal(cvae__gmm_fit(x, n, d, k, &o, &r, NULL, NULL, NULL, NULL, NULL, &all),
                     CVAE_OK);
    assert_true(all.best_start >= 0 && all.best_start < 5);
    /* start s alone: the same k-means draws follow s earlier starts */
    o.starts = 1;
    cvae__rng_seed(&r, 1);
    double best = -INFINITY;
    for (int s = 0; s < 5; s++) {
        cvae__gmm_info one;
        assert_int_equal(cvae__gmm_fit(x, n, d, k, &o, &r, NULL, NULL, NULL, NULL, NULL, &one),
                         CVAE_OK);
        best = one.loglik > best ? one.loglik : best;
        if (s == all.best_start)
            assert_true(fabs(one.loglik - all.loglik) < 1e-9 * fabs(all.loglik));
    }
    assert_true(all.loglik >= best - 1e-9 * fabs(best));
    free(x), free(lab);
}

static void test_bad_args_and_singular(void **state)
{
    (void)state;
    float x[12] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6};
    int32_t a[6];
    cvae__gmm_options o;
    cvae__gmm_defaults(&o);
    cvae__rng r;
    cvae__rng_seed(&r, 1);
    assert_int_equal(cvae__gmm_fit(NULL, 6, 2, 2, &o, &r, NULL, NULL, NULL, NULL, a, NULL),
                     CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__gmm_fit(x, 6, 2, 7, &o, &r, NULL, NULL, NULL, NULL, a, NULL),
                     CVAE_E_INVALID_ARG);
    assert_int_equal(cvae__gmm_fit(x, 6, 2, 2, &o, NULL, NULL, NULL, NULL, NULL, a, NULL),
                     CVAE_E_INVALID_ARG);
    o.starts = 0;
    assert_int_equal(cvae__gmm_fit(x, 6, 2, 2, &o, &r, NULL, NULL, NULL, NULL, a, NULL),
                     CVAE_E_INVALID_ARG);
    cvae__gmm_defaults(&o);
    x[3] = INFINITY;
    assert_int_equal(cvae__gmm_fit(x, 6, 2, 2, &o, &r, NULL, NULL, NULL, NULL, a, NULL),
                     CVAE_E_INVALID_ARG);
    x[3] = 2;
    /* the points lie on a line: without regularisation every covariance is
     * singular */
    o.reg_covar = 0;
    assert_int_equal(cvae__gmm_fit(x, 6, 2, 2, &o, &r, NULL, NULL, NULL, NULL, a, NULL),
                     CVAE_E_NUMERIC);
    o.reg_covar = 1e-6;
    assert_int_equal(cvae__gmm_fit(x, 6, 2, 2, &o, &r, NULL, NULL, NULL, NULL, a, NULL),
                     CVAE_OK);
    float m[4] = {0, 0, 1, 1}, c[8] = {1, 0, 0, 1, 1, 0, 0, 1}, w[2] = {0.5f, 0};
    assert_int_equal(cvae__gmm_em(x, 6, 2, 2, &o, m, c, w, NULL, a, NULL), CVAE_E_INVALID_ARG);
    w[1] = 0.5f;
    c[1] = c[2] = 2; /* not positive definite */
    assert_int_equal(cvae__gmm_em(x, 6, 2, 2, &o, m, c, w, NULL, a, NULL), CVAE_E_NUMERIC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_em_matches_reference),
        cmocka_unit_test(test_fit_recovers_and_is_deterministic),
        cmocka_unit_test(test_best_start_kept),
        cmocka_unit_test(test_bad_args_and_singular),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
