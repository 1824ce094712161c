/* The terms of the clustering objective (reconstruction, KL divergence to
 * the standard or mixture prior, per-image category term, batch balance
 * term) and their gradients. Each returns the batch
 * mean of its term (per image); gradient outputs, when not NULL, are
 * ACCUMULATED (+=) so terms that share an input (q, z, logvar) just add up.
 * `scale` is 1/n. */
#ifndef CVAE_LOSS_H
#define CVAE_LOSS_H

#include <stddef.h>
#include <stdint.h>

/* 0.5 * sum_p (x - xhat)^2 per image. dpre (n*P) receives the gradient of
 * wscale * sum of that w.r.t. the pre-sigmoid activation a, xhat = sigmoid(a):
 * dpre = wscale * (xhat - x) * xhat * (1 - xhat) (overwritten, not added). */
double cvae__loss_recon(int n, int P, const float *x, const float *xhat, float wscale, float *dpre);

/* 0.5 * sum_j (pred - target)^2 per row of P values, without an output
 * nonlinearity; dpred (n*P) = wscale * (pred - target), overwritten. */
double cvae__loss_sq(int n, int P, const float *target, const float *pred, float wscale,
                     float *dpred);

/* 0.5 * sum_d (mu^2 + exp(lv) - lv - 1). */
double cvae__loss_kl_standard(int n, int s, const float *mu, const float *lv, float scale,
                              float *dmu, float *dlv);

/* sum_y q_y * 0.5 * sum_d ((z_d - M_yd)^2 - lv_d), means M [k][s]. */
double cvae__loss_kl_mixture(int n, int s, int k, const float *z, const float *lv, const float *q,
                             const float *means, float scale, float *dz, float *dlv, float *dq,
                             float *dmeans);

/* weight * sum_y q_y ln q_y. */
double cvae__loss_category(int n, int k, const float *q, float weight, float scale, float *dq);

/* beta * sum_y qbar_y ln qbar_y with qbar the batch mean of q (a batch-level
 * term, returned as is). */
double cvae__loss_balance(int n, int k, const float *q, float beta, float *dq);

/* The same term when the batch is split across processes: colsum[k] holds
 * the sums of q over all total images of the batch; dq receives the
 * gradient for this process's n rows (each image's share is 1/total). */
double cvae__loss_balance_from_sums(int n, int k, const double *colsum, int64_t total, float beta,
                                    float *dq);
/* The contrastive form of the consistency term (a: the n transformed
 * images' codes, c: the clean ones, n x s each): logits
 * S_ij = -|a_i - c_j|^2 / tau, value weight * (1/n) * sum_i of the mean of
 * the row and column cross-entropies -log softmax(S)_ii. Adds
 * weight * scale * dvalue/da to da and writes that of c to dc (both may be
 * NULL for the value only). work: cvae__loss_contrast_work(n) doubles. */
size_t cvae__loss_contrast_work(int n);
double cvae__loss_contrast(int n, int s, const float *a, const float *c, float tau, float weight,
                           float scale, double *work, float *da, float *dc);

/* weight * sum_d (mu_d - ref_d)^2, the gradient for mu only: the
 * transformed image's side of the consistency of its code with the clean
 * one (the clean side: cvae__consistency_backward). */
double cvae__loss_consistency(int n, int s, const float *mu, const float *ref, float weight,
                              float scale, float *dmu);

/* -weight * ln q_{label} for the rows whose label is >= 0 (rows with -1 add
 * nothing but still count in the mean): cross-entropy on pseudo-labels. */
double cvae__loss_pseudo(int n, int k, const float *q, const int32_t *labels, float weight,
                         float scale, float *dq);

#endif
