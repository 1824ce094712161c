/* Gaussian mixture with full covariances fitted by expectation-
 * maximisation, for low-dimensional data (d up to ~32: each covariance is a
 * d x d Cholesky factor). Started from k-means++ / Lloyd (cvae__kmeans) as
 * scikit-learn's GaussianMixture is; several starts keep the best. */
#ifndef CVAE_GMM_H
#define CVAE_GMM_H

#include <stdint.h>

#include "convvae.h"
#include "core/rng.h"

typedef struct cvae__gmm_options {
    int max_iter;     /* EM iterations per start: 100 */
    double tol;       /* stop when the mean log-likelihood per point changes by less: 1e-3 */
    double reg_covar; /* added to every covariance's diagonal, relative to the data's
                         mean per-dimension variance: 1e-6 */
    int starts;       /* k-means starts, the best final log-likelihood kept: 4 */
    int kmeans_iter;  /* Lloyd iterations of each start: 100 */
} cvae__gmm_options;

void cvae__gmm_defaults(cvae__gmm_options *o);

typedef struct cvae__gmm_info {
    double loglik;  /* mean log-likelihood per point of the returned parameters */
    int iterations; /* EM iterations of the kept start */
    int converged;  /* 1 if the kept start met tol within max_iter */
    int best_start; /* which start was kept (0-based) */
} cvae__gmm_info;

/* Fits k components to the n x d rows of x (row-major).
 * Outputs (each may be NULL): means k x d, covs k x d x d (row-major,
 * symmetric), weights k (sum 1), resp n x k responsibilities (rows sum to
 * 1), assign n (the most responsible component), info. All outputs
 * describe the same parameters: the responsibilities are recomputed after
 * the last M-step. Results depend on rng and not on the thread count.
 * 1 <= k <= n, 1 <= d <= 256. CVAE_E_INVALID_ARG (a non-finite value too),
 * CVAE_E_NOMEM, CVAE_E_NUMERIC (a covariance that stays singular even
 * with reg_covar: raise it). */
cvae_status cvae__gmm_fit(const float *x, int64_t n, int d, int k, const cvae__gmm_options *o,
                          cvae__rng *rng, float *means, float *covs, float *weights, float *resp,
                          int32_t *assign, cvae__gmm_info *info);

/* EM from given parameters (means, covs, weights, all required: read as the
 * start and overwritten with the result), at most o->max_iter iterations
 * with o->tol and o->reg_covar; o->starts and o->kmeans_iter are unused.
 * Other outputs as cvae__gmm_fit. */
cvae_status cvae__gmm_em(const float *x, int64_t n, int d, int k, const cvae__gmm_options *o,
                         float *means, float *covs, float *weights, float *resp, int32_t *assign,
                         cvae__gmm_info *info);

#endif
