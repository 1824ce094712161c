#include "model/loss.h"

#include <math.h>

#include "convvae.h"
#include "core/threads.h"

/* q can underflow to exactly 0 in float; the limit of q ln q is 0 and the
 * gradient's log is clamped so it stays finite. */
static inline double safe_log(double v) { return log(v > 1e-30 ? v : 1e-30); }

/* The sum of (a[i] - b[i])^2 over n values, each square in double, in
 * sixteen running sums (value i goes to sum i % 16) added up at the end:
 * the compiler keeps them in vector registers. One chain of dependent
 * additions made this a latency-bound loop of 0.1 ms on a batch of 100
 * MNIST images, run by one thread while the others wait. */
#define SUM_LANES 16

static double sum_sq_diff(const float *a, const float *b, size_t n)
{
    double acc[SUM_LANES] = {0};
    size_t i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (int q = 0; q < SUM_LANES; q++) {
            const float d = a[i + q] - b[i + q];
            acc[q] += (double)d * d;
        }
    double total = 0;
    for (; i < n; i++) {
        const float d = a[i] - b[i];
        total += (double)d * d;
    }
    for (int q = 0; q < SUM_LANES; q++)
        total += acc[q];
    return total;
}

/* A squared-error term's value and its gradient read the same two arrays
 * and write nothing in common: with a gradient to compute and enough
 * values, they are the two parts of one job (the sum on one thread, the
 * gradient on another), each pass as one thread would run it, so the
 * floats do not depend on the thread count. */
#define PAIR_MIN 16384

typedef struct sq_job {
    size_t np;
    const float *pred, *target;
    float wscale;
    float *d;     /* the gradient, NULL for none */
    int logistic; /* the gradient through a sigmoid (pred is its output) */
    double sum;
} sq_job;

static void sq_part(void *ctx, int part, int parts)
{
    (void)parts;
    sq_job *j = ctx;
    if (part == 0) {
        j->sum = sum_sq_diff(j->pred, j->target, j->np);
        return;
    }
    const float *p = j->pred, *t = j->target;
    if (j->logistic)
        for (size_t i = 0; i < j->np; i++)
            j->d[i] = j->wscale * (p[i] - t[i]) * p[i] * (1.0f - p[i]);
    else
        for (size_t i = 0; i < j->np; i++)
            j->d[i] = j->wscale * (p[i] - t[i]);
}

static double sq_term(int n, int P, const float *target, const float *pred, float wscale,
                      float *d, int logistic)
{
    sq_job j = {(size_t)n * P, pred, target, wscale, d, logistic, 0.0};
    if (d && j.np >= PAIR_MIN)
        cvae__parallel(2, sq_part, &j);
    else {
        sq_part(&j, 0, 2);
        if (d)
            sq_part(&j, 1, 2);
    }
    return 0.5 * j.sum / n;
}

double cvae__loss_recon(int n, int P, const float *x, const float *xhat, float wscale, float *dpre)
{
    return sq_term(n, P, x, xhat, wscale, dpre, 1);
}

double cvae__loss_sq(int n, int P, const float *target, const float *pred, float wscale,
                     float *dpred)
{
    return sq_term(n, P, target, pred, wscale, dpred, 0);
}

double cvae__loss_kl_standard(int n, int s, const float *mu, const float *lv, float scale,
                              float *dmu, float *dlv)
{
    double total = 0;
    size_t ns = (size_t)n * s;
    for (size_t i = 0; i < ns; i++) {
        double e = exp((double)lv[i]);
        total += (double)mu[i] * mu[i] + e - lv[i] - 1.0;
        if (dmu)
            dmu[i] += scale * mu[i];
        if (dlv)
            dlv[i] += scale * 0.5f * ((float)e - 1.0f);
    }
    return 0.5 * total / n;
}

double cvae__loss_kl_mixture(int n, int s, int k, const float *z, const float *lv, const float *q,
                             const float *means, float scale, float *dz, float *dlv, float *dq,
                             float *dmeans)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * s;
        const float *qi = q + (size_t)i * k;
        double lvsum = 0, qsum = 0;
        for (int d = 0; d < s; d++)
            lvsum += lv[(size_t)i * s + d];
        for (int y = 0; y < k; y++) {
            const float *my = means + (size_t)y * s;
            double dist = 0;
            for (int d = 0; d < s; d++) {
                float diff = zi[d] - my[d];
                dist += (double)diff * diff;
                float gq = scale * qi[y] * diff;
                if (dz)
                    dz[(size_t)i * s + d] += gq;
                if (dmeans)
                    dmeans[(size_t)y * s + d] -= gq;
            }
            /* The logvar term stays inside the q-weighted sum, as documented,
             * so dq and dlv are exact for any q, not only rows summing to 1
             * (the softmax backward projects the difference away anyway). */
            double term = 0.5 * (dist - lvsum);
            total += qi[y] * term;
            qsum += qi[y];
            if (dq)
                dq[(size_t)i * k + y] += scale * (float)term;
        }
        if (dlv)
            for (int d = 0; d < s; d++)
                dlv[(size_t)i * s + d] -= (float)(0.5 * scale * qsum);
    }
    return total / n;
}

double cvae__loss_category(int n, int k, const float *q, float weight, float scale, float *dq)
{
    double total = 0;
    size_t nk = (size_t)n * k;
    for (size_t i = 0; i < nk; i++) {
        double lq = safe_log(q[i]);
        total += q[i] * lq;
        if (dq)
            dq[i] += weight * scale * (float)(lq + 1.0);
    }
    return weight * total / n;
}

double cvae__loss_balance(int n, int k, const float *q, float beta, float *dq)
{
    if (beta == 0.0f)
        return 0.0;
    double colsum[CVAE_MAX_CLUSTERS];
    for (int y = 0; y < k; y++) {
        double sum = 0;
        for (int i = 0; i < n; i++)
            sum += q[(size_t)i * k + y];
        colsum[y] = sum;
    }
    return cvae__loss_balance_from_sums(n, k, colsum, n, beta, dq);
}

double cvae__loss_balance_from_sums(int n, int k, const double *colsum, int64_t total, float beta,
                                    float *dq)
{
    if (beta == 0.0f)
        return 0.0;
    double qbar[CVAE_MAX_CLUSTERS];
    double value = 0;
    for (int y = 0; y < k; y++) {
        qbar[y] = colsum[y] / (double)total;
        value += qbar[y] * safe_log(qbar[y]);
    }
    if (dq)
        for (int i = 0; i < n; i++)
            for (int y = 0; y < k; y++)
                dq[(size_t)i * k + y] += beta * (float)((safe_log(qbar[y]) + 1.0) / (double)total);
    return beta * value;
}

double cvae__loss_consistency(int n, int s, const float *mu, const float *ref, float weight,
                              float scale, float *dmu)
{
    double total = 0;
    size_t ns = (size_t)n * s;
    for (size_t i = 0; i < ns; i++) {
        float d = mu[i] - ref[i];
        total += (double)d * d;
        if (dmu)
            dmu[i] += 2.0f * weight * scale * d;
    }
    return weight * total / n;
}

/* log sum_t exp(v[t * stride]) over t < n, shifted by the largest value. */
static double log_sum_exp(const double *v, int n, size_t stride)
{
    double top = v[0];
    for (int t = 1; t < n; t++)
        top = v[t * stride] > top ? v[t * stride] : top;
    double sum = 0;
    for (int t = 0; t < n; t++)
        sum += exp(v[t * stride] - top);
    return top + log(sum);
}

/* The contrastive term is four passes over the n x n logits, each a loop
 * over rows (or columns) that write nothing another row writes: the
 * logits, the row cross-entropies, the column ones (each adding to its own
 * column of G after the rows' pass), and the gradients of a_i and c_j.
 * Its 4 n^2 calls of exp and 3 n^2 s products in double take about 1 ms on
 * a batch of 100 codes of 50: run as four jobs of the pool, each cut into
 * the threads' runs of rows, instead of on the calling thread while the
 * others wait. Each value is computed as one thread computes it, and the
 * cross-entropies' sum is taken in row order after, so the result does not
 * depend on the thread count. */
#define CONTRAST_ROWS_MIN 16

typedef struct contrast_job {
    int n, s, pass;
    const float *a, *c;
    double tau, f, share;
    double *S, *G, *terms; /* terms: pass 0's n, then pass 1's */
    float *da, *dc;
    void (*run)(const struct contrast_job *j, int i0, int i1);
} contrast_job;

static void contrast_logits(const contrast_job *j, int i0, int i1)
{
    const int n = j->n, s = j->s;
    for (int i = i0; i < i1; i++)
        for (int k = 0; k < n; k++) {
            double d2 = 0;
            for (int t = 0; t < s; t++) {
                double d = (double)j->a[(size_t)i * s + t] - j->c[(size_t)k * s + t];
                d2 += d * d;
            }
            j->S[(size_t)i * n + k] = -d2 / j->tau;
            j->G[(size_t)i * n + k] = 0;
        }
}

/* Half the row cross-entropy (pass 0 walks the rows of S) or the column
 * one (pass 1 its columns) of each image; the softmax less the one-hot
 * target is each cross-entropy's gradient. */
static void contrast_softmax(const contrast_job *j, int i0, int i1)
{
    const int n = j->n;
    const size_t along = j->pass ? (size_t)n : 1, across = j->pass ? 1 : (size_t)n;
    for (int i = i0; i < i1; i++) {
        const double *v = j->S + i * across;
        double *g = j->G + i * across;
        const double lse = log_sum_exp(v, n, along);
        j->terms[(size_t)j->pass * n + i] = 0.5 * (lse - v[i * along]);
        for (int k = 0; k < n; k++)
            g[k * along] += 0.5 * (exp(v[k * along] - lse) - (i == k ? 1.0 : 0.0));
    }
}

/* dS_ij/da_i = -2 (a_i - c_j) / tau = -dS_ij/dc_j; each sum over the
 * other images is taken in double, as its terms nearly cancel. */
static void contrast_grads(const contrast_job *j, int i0, int i1)
{
    const int n = j->n, s = j->s;
    const float *a = j->a, *c = j->c;
    const double *G = j->G;
    for (int i = i0; i < i1 && j->da; i++)
        for (int t = 0; t < s; t++) {
            double sum = 0;
            for (int k = 0; k < n; k++)
                sum += G[(size_t)i * n + k] * ((double)a[(size_t)i * s + t] - c[(size_t)k * s + t]);
            j->da[(size_t)i * s + t] -= (float)(j->f * sum);
        }
    for (int k = i0; k < i1 && j->dc; k++)
        for (int t = 0; t < s; t++) {
            double sum = 0;
            for (int i = 0; i < n; i++)
                sum += G[(size_t)i * n + k] * ((double)a[(size_t)i * s + t] - c[(size_t)k * s + t]);
            j->dc[(size_t)k * s + t] = (float)(j->f * sum);
        }
}

static void contrast_part(void *ctx, int part, int parts)
{
    const contrast_job *j = ctx;
    const int i0 = (int)cvae__parallel_part_start((size_t)j->n, part, parts, j->share);
    const int i1 = (int)cvae__parallel_part_start((size_t)j->n, part + 1, parts, j->share);
    j->run(j, i0, i1);
}

static void contrast_pass(contrast_job *j, int parts,
                          void (*run)(const contrast_job *j, int i0, int i1), int pass)
{
    j->run = run;
    j->pass = pass;
    if (parts < 2) {
        run(j, 0, j->n);
        return;
    }
    j->share = cvae__parallel_share(CVAE__SHARE_LOSS);
    cvae__parallel_cut(CVAE__SHARE_LOSS, parts, j->share, contrast_part, j);
}

size_t cvae__loss_contrast_work(int n) { return n > 0 ? 2 * (size_t)n * (size_t)(n + 1) : 0; }

double cvae__loss_contrast(int n, int s, const float *a, const float *c, float tau, float weight,
                           float scale, double *work, float *da, float *dc)
{
    if (n <= 0)
        return 0;
    contrast_job j = {.n = n,
                      .s = s,
                      .a = a,
                      .c = c,
                      .tau = tau,
                      .f = 2.0 * (double)weight * (double)scale / tau,
                      .S = work,
                      .G = work + (size_t)n * n,
                      .terms = work + 2 * (size_t)n * n,
                      .da = da,
                      .dc = dc};
    int parts = cvae__parallel_threads();
    if (parts > n / CONTRAST_ROWS_MIN)
        parts = n / CONTRAST_ROWS_MIN;
    contrast_pass(&j, parts, contrast_logits, 0);
    contrast_pass(&j, parts, contrast_softmax, 0);
    contrast_pass(&j, parts, contrast_softmax, 1);
    if (da || dc)
        contrast_pass(&j, parts, contrast_grads, 0);
    double total = 0;
    for (size_t i = 0; i < 2 * (size_t)n; i++)
        total += j.terms[i];
    return weight * total / n;
}

double cvae__loss_pseudo(int n, int k, const float *q, const int32_t *labels, float weight,
                         float scale, float *dq)
{
    double total = 0;
    for (int i = 0; i < n; i++) {
        int y = labels[i];
        if (y < 0 || y >= k)
            continue;
        double qy = q[(size_t)i * k + y];
        total -= safe_log(qy);
        if (dq)
            dq[(size_t)i * k + y] -= weight * scale / (float)(qy > 1e-30 ? qy : 1e-30);
    }
    return weight * total / n;
}
