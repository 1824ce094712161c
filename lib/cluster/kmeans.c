#include "cluster/kmeans.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static double sqdist(const float *a, const float *b, int d)
{
    double s = 0;
    for (int j = 0; j < d; j++) {
        double t = (double)a[j] - b[j];
        s += t * t;
    }
    return s;
}

/* k-means++: each new center is drawn with probability proportional to the
 * squared distance to the nearest center chosen so far. */
static void seed_pp(const float *x, int64_t n, int d, int k, cvae__rng *rng, float *centers,
                    double *dmin)
{
    int64_t first = (int64_t)cvae__rng_below(rng, (uint64_t)n);
    memcpy(centers, x + first * d, (size_t)d * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        dmin[i] = sqdist(x + i * d, centers, d);
    for (int c = 1; c < k; c++) {
        double total = 0;
        for (int64_t i = 0; i < n; i++)
            total += dmin[i];
        int64_t pick = n - 1;
        if (total > 0) {
            double r = (double)cvae__rng_uniform(rng) * total, acc = 0;
            for (int64_t i = 0; i < n; i++) {
                acc += dmin[i];
                if (acc > r) {
                    pick = i;
                    break;
                }
            }
        } else {
            pick = (int64_t)cvae__rng_below(rng, (uint64_t)n); /* all points coincide */
        }
        float *cc = centers + (size_t)c * d;
        memcpy(cc, x + pick * d, (size_t)d * sizeof(float));
        for (int64_t i = 0; i < n; i++) {
            double t = sqdist(x + i * d, cc, d);
            if (t < dmin[i])
                dmin[i] = t;
        }
    }
}

cvae_status cvae__kmeans(const float *x, int64_t n, int d, int k, int max_iter, cvae__rng *rng,
                         float *centers, int32_t *assign, double *inertia)
{
    if (!x || !rng || !centers || n < 1 || d < 1 || k < 1 || k > n || max_iter < 0)
        return cvae__fail(CVAE_E_INVALID_ARG, "k-means: bad arguments (n %lld, d %d, k %d)",
                          (long long)n, d, k);
    double *dmin = malloc((size_t)n * sizeof *dmin);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    double *sum = malloc((size_t)k * d * sizeof *sum);
    int64_t *cnt = malloc((size_t)k * sizeof *cnt);
    if (!dmin || !lab || !sum || !cnt) {
        free(dmin), free(lab), free(sum), free(cnt);
        return cvae__fail(CVAE_E_NOMEM, "k-means: out of memory for %lld points", (long long)n);
    }
    seed_pp(x, n, d, k, rng, centers, dmin);
    for (int64_t i = 0; i < n; i++)
        lab[i] = -1;
    double total = 0;
    for (int it = 0; it <= max_iter; it++) {
        int64_t changed = 0;
        total = 0;
        for (int64_t i = 0; i < n; i++) {
            double best = DBL_MAX;
            int bi = 0;
            for (int c = 0; c < k; c++) {
                double t = sqdist(x + i * d, centers + (size_t)c * d, d);
                if (t < best)
                    best = t, bi = c;
            }
            total += best;
            dmin[i] = best;
            if (lab[i] != bi)
                lab[i] = bi, changed++;
        }
        if (!changed || it == max_iter)
            break;
        memset(sum, 0, (size_t)k * d * sizeof *sum);
        memset(cnt, 0, (size_t)k * sizeof *cnt);
        for (int64_t i = 0; i < n; i++) {
            cnt[lab[i]]++;
            for (int j = 0; j < d; j++)
                sum[(size_t)lab[i] * d + j] += x[i * d + j];
        }
        for (int c = 0; c < k; c++) {
            if (cnt[c] == 0) {
                /* An emptied cluster takes the point farthest from its center. */
                int64_t far = 0;
                for (int64_t i = 1; i < n; i++)
                    if (dmin[i] > dmin[far])
                        far = i;
                memcpy(centers + (size_t)c * d, x + far * d, (size_t)d * sizeof(float));
                dmin[far] = 0;
                continue;
            }
            for (int j = 0; j < d; j++)
                centers[(size_t)c * d + j] = (float)(sum[(size_t)c * d + j] / cnt[c]);
        }
    }
    if (assign)
        memcpy(assign, lab, (size_t)n * sizeof *lab);
    if (inertia)
        *inertia = total;
    free(dmin), free(lab), free(sum), free(cnt);
    return CVAE_OK;
}
