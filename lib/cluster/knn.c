#include "cluster/knn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/gemm.h"
#include "core/threads.h"

/* A tile of TILE queries meets a block of BLOCK reference rows in one
 * product: 1 MiB of distances per thread, a size at which the product, not
 * the top-k scan, dominates for d >= ~16. Fixed sizes (not derived from the
 * thread count) keep every distance, and so every result, the same for any
 * thread count. */
enum { TILE = 256, BLOCK = 1024 };

typedef struct knn_job {
    const float *x;
    int64_t n;
    int d, k;
    const float *mean;
    int32_t *idx;
    float *dist;
    float *work; /* per part: stride floats */
    size_t stride;
    int64_t tiles;
} knn_job;

/* The bounded top-k of one query: a max-heap on (squared distance, index),
 * so the root is the worst kept candidate and ties go to the smaller index
 * whatever order the candidates arrive in. */
static int worse(float da, int32_t ia, float db, int32_t ib)
{
    return da > db || (da == db && ia > ib);
}

static void heap_sift_down(float *hd, int32_t *hi, int k, int at)
{
    for (;;) {
        int l = 2 * at + 1, r = l + 1, m = at;
        if (l < k && worse(hd[l], hi[l], hd[m], hi[m]))
            m = l;
        if (r < k && worse(hd[r], hi[r], hd[m], hi[m]))
            m = r;
        if (m == at)
            return;
        float td = hd[at];
        int32_t ti = hi[at];
        hd[at] = hd[m], hi[at] = hi[m];
        hd[m] = td, hi[m] = ti;
        at = m;
    }
}

/* Copies rows [r0, r0 + rows) of x minus the mean into out (rows x d) and
 * their squared norms into nrm. */
static void centre_rows(const knn_job *j, int64_t r0, int rows, float *out, float *nrm)
{
    const int d = j->d;
    for (int r = 0; r < rows; r++) {
        const float *src = j->x + (size_t)(r0 + r) * (size_t)d;
        float *dst = out + (size_t)r * (size_t)d;
        double s = 0;
        for (int c = 0; c < d; c++) {
            dst[c] = src[c] - j->mean[c];
            s += (double)dst[c] * dst[c];
        }
        nrm[r] = (float)s;
    }
}

typedef struct cand {
    double d2;
    int32_t i;
} cand;

static int cand_cmp(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    if (a->d2 != b->d2)
        return a->d2 < b->d2 ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

static void knn_part(void *ctx, int part, int parts)
{
    const knn_job *j = ctx;
    const int d = j->d, k = j->k;
    float *w = j->work + (size_t)part * j->stride;
    float *q = w;                             /* TILE x d */
    float *ref = q + (size_t)TILE * d;        /* BLOCK x d */
    float *g = ref + (size_t)BLOCK * d;       /* TILE x BLOCK */
    float *qn = g + (size_t)TILE * BLOCK;     /* TILE */
    float *rn = qn + TILE;                    /* BLOCK */
    float *hd = rn + BLOCK;                   /* TILE x k */
    int32_t *hi = (int32_t *)(hd + (size_t)TILE * k); /* TILE x k */
    cand *cs = (cand *)(hi + (size_t)TILE * k); /* k; even offset, so 8-aligned */

    for (int64_t t = part; t < j->tiles; t += parts) {
        const int64_t q0 = t * TILE;
        const int qr = (int)(j->n - q0 < TILE ? j->n - q0 : TILE);
        centre_rows(j, q0, qr, q, qn);
        for (size_t e = 0; e < (size_t)TILE * k; e++)
            hd[e] = INFINITY, hi[e] = INT32_MAX;
        for (int64_t r0 = 0; r0 < j->n; r0 += BLOCK) {
            const int rr = (int)(j->n - r0 < BLOCK ? j->n - r0 : BLOCK);
            centre_rows(j, r0, rr, ref, rn);
            cvae__sgemm(0, 1, qr, rr, d, 1.0f, q, d, ref, d, 0.0f, g, BLOCK);
            for (int a = 0; a < qr; a++) {
                const int64_t self = q0 + a;
                float *ha = hd + (size_t)a * k;
                int32_t *ia = hi + (size_t)a * k;
                const float *ga = g + (size_t)a * BLOCK;
                for (int b = 0; b < rr; b++) {
                    float d2 = qn[a] + rn[b] - 2.0f * ga[b];
                    if (d2 < 0)
                        d2 = 0; /* rounding, for near-duplicates */
                    const int32_t ib = (int32_t)(r0 + b);
                    if (ib == self || !worse(ha[0], ia[0], d2, ib))
                        continue;
                    ha[0] = d2, ia[0] = ib;
                    heap_sift_down(ha, ia, k, 0);
                }
            }
        }
        /* The kept k, re-measured directly in double and sorted. */
        for (int a = 0; a < qr; a++) {
            const float *xa = j->x + (size_t)(q0 + a) * (size_t)d;
            for (int e = 0; e < k; e++) {
                const int32_t ib = hi[(size_t)a * k + e];
                const float *xb = j->x + (size_t)ib * (size_t)d;
                double s = 0;
                for (int c = 0; c < d; c++) {
                    double t2 = (double)xa[c] - xb[c];
                    s += t2 * t2;
                }
                cs[e].d2 = s, cs[e].i = ib;
            }
            qsort(cs, (size_t)k, sizeof *cs, cand_cmp);
            for (int e = 0; e < k; e++) {
                j->idx[(size_t)(q0 + a) * k + e] = cs[e].i;
                if (j->dist)
                    j->dist[(size_t)(q0 + a) * k + e] = (float)sqrt(cs[e].d2);
            }
        }
    }
}

cvae_status cvae__knn(const float *x, int64_t n, int d, int k, int32_t *idx, float *dist)
{
    CVAE__CHECK_PTR(x);
    CVAE__CHECK_PTR(idx);
    if (n < 2 || n > INT32_MAX || d < 1 || k < 1 || k >= n)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "knn: need 1 <= k < n <= 2^31 - 1 and d >= 1 (n %lld, d %d, k %d)",
                          (long long)n, d, k);
    double *acc = calloc((size_t)d, sizeof *acc);
    float *mean = malloc((size_t)d * sizeof *mean);
    if (!acc || !mean) {
        free(acc), free(mean);
        return cvae__fail(CVAE_E_NOMEM, "knn: out of memory");
    }
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < d; c++) {
            const float v = x[(size_t)i * d + c];
            if (!isfinite(v)) {
                free(acc), free(mean);
                return cvae__fail(CVAE_E_INVALID_ARG, "knn: x[%lld][%d] is not finite",
                                  (long long)i, c);
            }
            acc[c] += v;
        }
    /* The centre is the mean rounded to 8 significant bits: as good a centre,
     * and x - centre stays exact for data on a coarse binary grid (small
     * integers, multiples of 2^-m), so exact distance ties there rank by
     * index alone. */
    for (int c = 0; c < d; c++) {
        int e;
        const double m = frexp(acc[c] / (double)n, &e);
        mean[c] = (float)ldexp(nearbyint(ldexp(m, 8)), e - 8);
    }
    free(acc);

    int parts = cvae__parallel_threads();
    const int64_t tiles = (n + TILE - 1) / TILE;
    if (parts > tiles)
        parts = (int)tiles;
    /* floats: q, ref, g, qn, rn, hd, hi (int32 in float slots), then k
     * cands of 16 bytes (TILE and BLOCK are even, so they start 8-aligned);
     * rounded to 16 floats so that every part's slice is 64-byte aligned. */
    size_t stride = (size_t)(TILE + BLOCK) * d + (size_t)TILE * BLOCK + TILE + BLOCK +
                    2 * (size_t)TILE * k + 4 * (size_t)k;
    stride = (stride + 15) & ~(size_t)15;
    float *work = malloc(stride * (size_t)parts * sizeof *work);
    if (!work) {
        free(mean);
        return cvae__fail(CVAE_E_NOMEM, "knn: out of memory for %d x %zu floats", parts, stride);
    }
    knn_job j = {x, n, d, k, mean, idx, dist, work, stride, tiles};
    cvae__parallel(parts, knn_part, &j);
    free(work);
    free(mean);
    return CVAE_OK;
}
