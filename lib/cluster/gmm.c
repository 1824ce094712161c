#include "cluster/gmm.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/kmeans.h"
#include "core/error.h"
#include "core/gemm.h"
#include "core/threads.h"

/* Rows are processed in blocks of BLK; every block writes its own partial
 * sums, which are added in block order, so the result does not depend on
 * how many threads ran the blocks. */
enum { BLK = 1024 };

typedef struct gmm_job {
    const float *x;
    int64_t n;
    int d, k;
    double reg;
    /* parameters, double, and what the E-step reads in float */
    double *mu, *cov, *w, *logdet; /* logdet: sum log diag of the precision factor */
    double *nk;                     /* k: responsibility mass of each component */
    float *muf, *pf;                /* pf: k upper-triangular d x d factors, P P^T = cov^-1 */
    float *resp;                    /* n x k */
    int64_t blocks;
    double *b_ll, *b_nk, *b_sum, *b_cov; /* per-block partials */
    float *scratch;
    size_t stride; /* floats of scratch per part */
} gmm_job;

static void block_rows(const gmm_job *j, int64_t b, int64_t *r0, int *m)
{
    *r0 = b * BLK;
    *m = (int)(j->n - *r0 < BLK ? j->n - *r0 : BLK);
}

/* Responsibilities of a block and its log-likelihood. */
static void estep_part(void *ctx, int part, int parts)
{
    gmm_job *j = ctx;
    const int d = j->d, k = j->k;
    float *z = j->scratch + (size_t)part * j->stride, *yv = z + (size_t)BLK * d;
    double *lp = (double *)(yv + (size_t)BLK * d);
    const double c0 = -0.5 * d * log(2 * 3.14159265358979323846);
    for (int64_t b = part; b < j->blocks; b += parts) {
        int64_t r0;
        int m;
        block_rows(j, b, &r0, &m);
        const float *xb = j->x + (size_t)r0 * d;
        for (int c = 0; c < k; c++) {
            const float *mc = j->muf + (size_t)c * d;
            for (int i = 0; i < m; i++)
                for (int t = 0; t < d; t++)
                    z[(size_t)i * d + t] = xb[(size_t)i * d + t] - mc[t];
            cvae__sgemm(0, 0, m, d, d, 1.0f, z, d, j->pf + (size_t)c * d * d, d, 0.0f, yv, d);
            const double base = log(j->w[c]) + j->logdet[c] + c0;
            for (int i = 0; i < m; i++) {
                double s = 0;
                for (int t = 0; t < d; t++)
                    s += (double)yv[(size_t)i * d + t] * yv[(size_t)i * d + t];
                lp[(size_t)i * k + c] = base - 0.5 * s;
            }
        }
        double ll = 0;
        for (int i = 0; i < m; i++) {
            double mx = -INFINITY;
            for (int c = 0; c < k; c++)
                mx = lp[(size_t)i * k + c] > mx ? lp[(size_t)i * k + c] : mx;
            double s = 0;
            for (int c = 0; c < k; c++)
                s += exp(lp[(size_t)i * k + c] - mx);
            const double lse = mx + log(s);
            ll += lse;
            float *ri = j->resp + (size_t)(r0 + i) * k;
            for (int c = 0; c < k; c++)
                ri[c] = (float)exp(lp[(size_t)i * k + c] - lse);
        }
        j->b_ll[b] = ll;
    }
}

/* Per block: sum of responsibilities and R^T X. */
static void stats_part(void *ctx, int part, int parts)
{
    gmm_job *j = ctx;
    const int d = j->d, k = j->k;
    float *t = j->scratch + (size_t)part * j->stride;
    for (int64_t b = part; b < j->blocks; b += parts) {
        int64_t r0;
        int m;
        block_rows(j, b, &r0, &m);
        const float *rb = j->resp + (size_t)r0 * k;
        for (int c = 0; c < k; c++) {
            double s = 0;
            for (int i = 0; i < m; i++)
                s += rb[(size_t)i * k + c];
            j->b_nk[b * k + c] = s;
        }
        cvae__sgemm(1, 0, k, d, m, 1.0f, rb, k, j->x + (size_t)r0 * d, d, 0.0f, t, d);
        for (int e = 0; e < k * d; e++)
            j->b_sum[b * k * d + e] = t[e];
    }
}

/* Per block and component: sum_i r_ic (x_i - mu_c)(x_i - mu_c)^T. */
static void cov_part(void *ctx, int part, int parts)
{
    gmm_job *j = ctx;
    const int d = j->d, k = j->k;
    float *z = j->scratch + (size_t)part * j->stride, *t = z + (size_t)BLK * d;
    for (int64_t b = part; b < j->blocks; b += parts) {
        int64_t r0;
        int m;
        block_rows(j, b, &r0, &m);
        const float *xb = j->x + (size_t)r0 * d;
        for (int c = 0; c < k; c++) {
            const float *mc = j->muf + (size_t)c * d;
            for (int i = 0; i < m; i++) {
                const float s = sqrtf(j->resp[(size_t)(r0 + i) * k + c]);
                for (int u = 0; u < d; u++)
                    z[(size_t)i * d + u] = s * (xb[(size_t)i * d + u] - mc[u]);
            }
            cvae__sgemm(1, 0, d, d, m, 1.0f, z, d, z, d, 0.0f, t, d);
            double *out = j->b_cov + ((size_t)b * k + c) * d * d;
            for (int e = 0; e < d * d; e++)
                out[e] = t[e];
        }
    }
}

/* Cholesky cov = L L^T in double (lwork: 2 d x d), then the precision
 * factor P = L^-T (upper triangular, P P^T = cov^-1) in float and
 * log det P = -sum log L_ii. Returns 0 if cov is not positive definite. */
static int precision_factor(const double *cov, int d, double *lwork, float *p, double *logdet)
{
    double *l = lwork, *li = lwork + (size_t)d * d;
    memset(l, 0, (size_t)d * d * sizeof *l);
    for (int r = 0; r < d; r++)
        for (int c = 0; c <= r; c++) {
            double s = cov[r * d + c];
            for (int t = 0; t < c; t++)
                s -= l[r * d + t] * l[c * d + t];
            if (r == c) {
                if (!(s > 0) || !isfinite(s))
                    return 0;
                l[r * d + r] = sqrt(s);
            } else {
                l[r * d + c] = s / l[c * d + c];
            }
        }
    /* L^-1 column by column (forward substitution on L x = e_c) */
    double ld = 0;
    for (int c = 0; c < d; c++) {
        ld -= log(l[c * d + c]);
        for (int r = 0; r < d; r++) {
            if (r < c) {
                li[r * d + c] = 0;
                continue;
            }
            double s = r == c ? 1 : 0;
            for (int t = c; t < r; t++)
                s -= l[r * d + t] * li[t * d + c];
            li[r * d + c] = s / l[r * d + r];
        }
    }
    for (int r = 0; r < d; r++)
        for (int c = 0; c < d; c++)
            p[r * d + c] = (float)li[c * d + r];
    *logdet = ld;
    return 1;
}

/* The M-step from j->resp: weights, means, covariances (+ reg), factors. */
static cvae_status mstep(gmm_job *j, double *lwork)
{
    const int d = j->d, k = j->k;
    const int parts0 = cvae__parallel_threads();
    const int parts = parts0 > j->blocks ? (int)j->blocks : parts0;
    cvae__parallel(parts, stats_part, j);
    for (int c = 0; c < k; c++) {
        double nk = 0;
        for (int64_t b = 0; b < j->blocks; b++)
            nk += j->b_nk[b * k + c];
        nk += 10 * DBL_EPSILON; /* an empty component keeps finite parameters */
        j->nk[c] = nk;
        j->w[c] = nk / (double)j->n;
        for (int t = 0; t < d; t++) {
            double s = 0;
            for (int64_t b = 0; b < j->blocks; b++)
                s += j->b_sum[(b * k + c) * d + t];
            j->mu[c * d + t] = s / nk;
            j->muf[c * d + t] = (float)j->mu[c * d + t];
        }
    }
    cvae__parallel(parts, cov_part, j);
    for (int c = 0; c < k; c++) {
        double *cv = j->cov + (size_t)c * d * d;
        for (int e = 0; e < d * d; e++) {
            double s = 0;
            for (int64_t b = 0; b < j->blocks; b++)
                s += j->b_cov[((size_t)b * k + c) * d * d + e];
            cv[e] = s / j->nk[c];
        }
        for (int r = 0; r < d; r++) /* exact symmetry */
            for (int t = 0; t < r; t++)
                cv[r * d + t] = cv[t * d + r] = 0.5 * (cv[r * d + t] + cv[t * d + r]);
        for (int t = 0; t < d; t++)
            cv[t * d + t] += j->reg;
        if (!precision_factor(cv, d, lwork, j->pf + (size_t)c * d * d, &j->logdet[c]))
            return cvae__fail(CVAE_E_NUMERIC,
                              "gmm: covariance of component %d is not positive definite "
                              "(raise reg_covar)",
                              c);
    }
    return CVAE_OK;
}

static double estep(gmm_job *j)
{
    const int parts0 = cvae__parallel_threads();
    const int parts = parts0 > j->blocks ? (int)j->blocks : parts0;
    cvae__parallel(parts, estep_part, j);
    double ll = 0;
    for (int64_t b = 0; b < j->blocks; b++)
        ll += j->b_ll[b];
    return ll / (double)j->n;
}

/* Factors for the current covariances (for a start given from outside). */
static cvae_status factor_all(gmm_job *j, double *lwork)
{
    for (int c = 0; c < j->k; c++)
        if (!precision_factor(j->cov + (size_t)c * j->d * j->d, j->d, lwork,
                              j->pf + (size_t)c * j->d * j->d, &j->logdet[c]))
            return cvae__fail(CVAE_E_NUMERIC,
                              "gmm: covariance of component %d is not positive definite", c);
    return CVAE_OK;
}

static cvae_status run_em(gmm_job *j, const cvae__gmm_options *o, double *lwork, double *ll_out,
                          int *iters, int *converged)
{
    double prev = -INFINITY;
    *converged = 0;
    *iters = 0;
    for (int it = 1; it <= o->max_iter; it++) {
        const double ll = estep(j);
        cvae_status st = mstep(j, lwork);
        if (st != CVAE_OK)
            return st;
        *iters = it;
        if (fabs(ll - prev) < o->tol) {
            *converged = 1;
            break;
        }
        prev = ll;
    }
    *ll_out = estep(j); /* responsibilities of the returned parameters */
    if (!isfinite(*ll_out))
        return cvae__fail(CVAE_E_NUMERIC, "gmm: log-likelihood is not finite");
    return CVAE_OK;
}

void cvae__gmm_defaults(cvae__gmm_options *o)
{
    o->max_iter = 100;
    o->tol = 1e-3;
    o->reg_covar = 1e-6;
    o->starts = 4;
    o->kmeans_iter = 100;
}

/* Everything a fit needs besides the caller's buffers. */
typedef struct gmm_mem {
    gmm_job j;
    void *blocks[13];
    double *lwork;
} gmm_mem;

static void mem_free(gmm_mem *m)
{
    for (int i = 0; i < 13; i++)
        free(m->blocks[i]);
}

static cvae_status setup(const float *x, int64_t n, int d, int k, const cvae__gmm_options *o,
                         float *resp, gmm_mem *m)
{
    memset(m, 0, sizeof *m);
    CVAE__CHECK_PTR(x);
    CVAE__CHECK_PTR(o);
    if (n < 1 || d < 1 || d > 256 || k < 1 || k > n || o->max_iter < 1 || !(o->tol >= 0) ||
        !(o->reg_covar >= 0))
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "gmm: bad arguments (n %lld, d %d, k %d, max_iter %d, tol %g)",
                          (long long)n, d, k, o->max_iter, o->tol);
    double *mean = calloc((size_t)d, sizeof *mean), var = 0;
    if (!mean)
        return cvae__fail(CVAE_E_NOMEM, "gmm: out of memory");
    for (int64_t i = 0; i < n; i++)
        for (int t = 0; t < d; t++) {
            const float v = x[(size_t)i * d + t];
            if (!isfinite(v)) {
                free(mean);
                return cvae__fail(CVAE_E_INVALID_ARG, "gmm: x[%lld][%d] is not finite",
                                  (long long)i, t);
            }
            mean[t] += v;
        }
    for (int t = 0; t < d; t++)
        mean[t] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int t = 0; t < d; t++)
            var += ((double)x[(size_t)i * d + t] - mean[t]) * ((double)x[(size_t)i * d + t] - mean[t]);
    free(mean);
    var /= (double)n * d;
    gmm_job *j = &m->j;
    j->x = x, j->n = n, j->d = d, j->k = k;
    /* relative to the data's scale, with a floor for constant data */
    j->reg = o->reg_covar * (var > 0 ? var : 1.0);
    j->blocks = (n + BLK - 1) / BLK;
    int parts = cvae__parallel_threads();
    if (parts > j->blocks)
        parts = (int)j->blocks;
    /* per part, the largest of: the E-step's z and y (BLK x d floats each)
     * and BLK x k log-probs in double (after an even count of floats, so
     * 8-aligned); the statistics' k x d; the covariances' z and d x d */
    j->stride = 2 * (size_t)BLK * d + 2 * (size_t)BLK * k + (size_t)k * d + (size_t)d * d;
    j->stride = (j->stride + 15) & ~(size_t)15;
    const size_t kdd = (size_t)k * d * d;
    void **a = m->blocks;
    a[0] = j->mu = malloc((size_t)k * d * sizeof(double));
    a[1] = j->cov = malloc(kdd * sizeof(double));
    a[2] = j->w = malloc((size_t)k * sizeof(double));
    a[3] = j->logdet = malloc((size_t)k * sizeof(double));
    a[4] = j->muf = malloc((size_t)k * d * sizeof(float));
    a[5] = j->pf = malloc(kdd * sizeof(float));
    a[6] = j->b_ll = malloc((size_t)j->blocks * sizeof(double));
    a[7] = j->b_nk = malloc((size_t)j->blocks * k * sizeof(double));
    a[8] = j->b_sum = malloc((size_t)j->blocks * k * d * sizeof(double));
    a[9] = j->b_cov = malloc((size_t)j->blocks * kdd * sizeof(double));
    a[10] = j->scratch = malloc(j->stride * (size_t)parts * sizeof(float));
    a[11] = m->lwork = malloc(2 * (size_t)d * d * sizeof(double));
    a[12] = j->nk = malloc((size_t)k * sizeof(double));
    j->resp = resp;
    for (int i = 0; i < 13; i++)
        if (!a[i]) {
            mem_free(m);
            return cvae__fail(CVAE_E_NOMEM, "gmm: out of memory for %lld x %d", (long long)n, k);
        }
    return CVAE_OK;
}

static void write_outputs(const gmm_job *j, float *means, float *covs, float *weights,
                          int32_t *assign)
{
    const int d = j->d, k = j->k;
    if (means)
        for (int e = 0; e < k * d; e++)
            means[e] = (float)j->mu[e];
    if (covs)
        for (size_t e = 0; e < (size_t)k * d * d; e++)
            covs[e] = (float)j->cov[e];
    if (weights)
        for (int c = 0; c < k; c++)
            weights[c] = (float)j->w[c];
    if (assign)
        for (int64_t i = 0; i < j->n; i++) {
            const float *ri = j->resp + (size_t)i * k;
            int best = 0;
            for (int c = 1; c < k; c++)
                if (ri[c] > ri[best])
                    best = c;
            assign[i] = best;
        }
}

cvae_status cvae__gmm_em(const float *x, int64_t n, int d, int k, const cvae__gmm_options *o,
                         float *means, float *covs, float *weights, float *resp, int32_t *assign,
                         cvae__gmm_info *info)
{
    CVAE__CHECK_PTR(means);
    CVAE__CHECK_PTR(covs);
    CVAE__CHECK_PTR(weights);
    float *own = NULL;
    if (!resp && n > 0 && k > 0) {
        own = resp = malloc((size_t)n * k * sizeof *resp);
        if (!own)
            return cvae__fail(CVAE_E_NOMEM, "gmm: out of memory");
    }
    gmm_mem m;
    cvae_status st = setup(x, n, d, k, o, resp, &m);
    if (st != CVAE_OK) {
        free(own);
        return st;
    }
    gmm_job *j = &m.j;
    double wsum = 0;
    for (int c = 0; c < k; c++)
        wsum += weights[c] > 0 ? weights[c] : 0;
    for (int c = 0; c < k && st == CVAE_OK; c++) {
        if (!(weights[c] > 0) || !(wsum > 0))
            st = cvae__fail(CVAE_E_INVALID_ARG, "gmm: start weight %d is %g", c, weights[c]);
        j->w[c] = weights[c] / wsum;
    }
    for (int e = 0; e < k * d; e++)
        j->mu[e] = means[e], j->muf[e] = means[e];
    for (size_t e = 0; e < (size_t)k * d * d; e++)
        j->cov[e] = covs[e];
    double ll = 0;
    int iters = 0, conv = 0;
    if (st == CVAE_OK)
        st = factor_all(j, m.lwork);
    if (st == CVAE_OK)
        st = run_em(j, o, m.lwork, &ll, &iters, &conv);
    if (st == CVAE_OK) {
        write_outputs(j, means, covs, weights, assign);
        if (info)
            *info = (cvae__gmm_info){ll, iters, conv, 0};
    }
    mem_free(&m);
    free(own);
    return st;
}

cvae_status cvae__gmm_fit(const float *x, int64_t n, int d, int k, const cvae__gmm_options *o,
                          cvae__rng *rng, float *means, float *covs, float *weights, float *resp,
                          int32_t *assign, cvae__gmm_info *info)
{
    CVAE__CHECK_PTR(rng);
    if (o && (o->starts < 1 || o->kmeans_iter < 0))
        return cvae__fail(CVAE_E_INVALID_ARG, "gmm: starts %d, kmeans_iter %d", o->starts,
                          o->kmeans_iter);
    float *own = NULL;
    if (!resp && n > 0 && k > 0 && n <= INT64_MAX / k) {
        own = resp = malloc((size_t)n * k * sizeof *resp);
        if (!own)
            return cvae__fail(CVAE_E_NOMEM, "gmm: out of memory");
    }
    gmm_mem m;
    cvae_status st = setup(x, n, d, k, o, resp, &m);
    if (st != CVAE_OK) {
        free(own);
        return st;
    }
    gmm_job *j = &m.j;
    const size_t kdd = (size_t)k * d * d;
    float *centers = malloc((size_t)k * d * sizeof *centers);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    double *best = malloc(((size_t)k * d + kdd + k) * sizeof *best);
    if (!centers || !lab || !best) {
        st = cvae__fail(CVAE_E_NOMEM, "gmm: out of memory");
        goto done;
    }
    cvae__gmm_info bi = {-INFINITY, 0, 0, -1};
    for (int s = 0; s < o->starts; s++) {
        st = cvae__kmeans(x, n, d, k, o->kmeans_iter, rng, centers, lab, NULL);
        if (st != CVAE_OK)
            goto done;
        memset(resp, 0, (size_t)n * k * sizeof *resp);
        for (int64_t i = 0; i < n; i++)
            resp[(size_t)i * k + lab[i]] = 1.0f;
        double ll;
        int iters, conv;
        st = mstep(j, m.lwork);
        if (st == CVAE_OK)
            st = run_em(j, o, m.lwork, &ll, &iters, &conv);
        if (st != CVAE_OK)
            goto done;
        if (ll > bi.loglik) {
            bi = (cvae__gmm_info){ll, iters, conv, s};
            memcpy(best, j->mu, (size_t)k * d * sizeof *best);
            memcpy(best + (size_t)k * d, j->cov, kdd * sizeof *best);
            memcpy(best + (size_t)k * d + kdd, j->w, (size_t)k * sizeof *best);
        }
    }
    if (bi.best_start != o->starts - 1) {
        /* bring back the kept start and its responsibilities */
        memcpy(j->mu, best, (size_t)k * d * sizeof *best);
        memcpy(j->cov, best + (size_t)k * d, kdd * sizeof *best);
        memcpy(j->w, best + (size_t)k * d + kdd, (size_t)k * sizeof *best);
        for (int e = 0; e < k * d; e++)
            j->muf[e] = (float)j->mu[e];
        if ((st = factor_all(j, m.lwork)) != CVAE_OK)
            goto done;
        bi.loglik = estep(j);
    }
    write_outputs(j, means, covs, weights, assign);
    if (info)
        *info = bi;
done:
    free(centers), free(lab), free(best);
    mem_free(&m);
    free(own);
    return st;
}
