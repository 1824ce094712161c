#include "cluster/embed.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/spectral.h"
#include "core/error.h"

void cvae__graph_free(cvae__graph *g)
{
    if (!g)
        return;
    free(g->rowptr), free(g->col), free(g->w);
    memset(g, 0, sizeof *g);
}

/* ---- fuzzy simplicial set ----------------------------------------------- */

cvae_status cvae__smooth_knn(const float *dist, int64_t n, int k, float *rho, float *sigma)
{
    CVAE__CHECK_PTR(dist);
    CVAE__CHECK_PTR(rho);
    CVAE__CHECK_PTR(sigma);
    if (n < 1 || k < 1)
        return cvae__fail(CVAE_E_INVALID_ARG, "smooth_knn: n %lld, k %d", (long long)n, k);
    const double target = log2((double)k + 1.0);
    double total = 0;
    for (int64_t i = 0; i < n * (int64_t)k; i++) {
        if (!(dist[i] >= 0) || !isfinite(dist[i]))
            return cvae__fail(CVAE_E_INVALID_ARG, "smooth_knn: distance %lld is %g",
                              (long long)i, dist[i]);
        total += dist[i];
    }
    const double mean_all = total / ((double)n * k);
    for (int64_t i = 0; i < n; i++) {
        const float *di = dist + (size_t)i * k;
        double r = 0, mean_i = 0;
        for (int j = 0; j < k; j++) {
            mean_i += di[j];
            if (r == 0 && di[j] > 0)
                r = di[j]; /* local connectivity 1: the first positive distance */
        }
        mean_i /= k;
        double lo = 0, hi = INFINITY, mid = 1;
        for (int it = 0; it < 64; it++) {
            double psum = 0;
            for (int j = 0; j < k; j++) {
                const double t = di[j] - r;
                psum += t > 0 ? exp(-t / mid) : 1.0;
            }
            if (fabs(psum - target) < 1e-5)
                break;
            if (psum > target) {
                hi = mid;
                mid = (lo + hi) / 2;
            } else {
                lo = mid;
                mid = isinf(hi) ? mid * 2 : (lo + hi) / 2;
            }
        }
        /* UMAP's floor keeps sigma away from 0 when all distances are equal. */
        const double floor_ = 1e-3 * (r > 0 ? mean_i : mean_all);
        rho[i] = (float)r;
        sigma[i] = (float)(mid < floor_ ? floor_ : mid);
    }
    return CVAE_OK;
}

typedef struct half_edge {
    int32_t col;
    int32_t dir; /* 0: the row's own kNN edge, 1: the reverse of another row's */
    float w;
} half_edge;

static int half_edge_cmp(const void *pa, const void *pb)
{
    const half_edge *a = pa, *b = pb;
    if (a->col != b->col)
        return a->col < b->col ? -1 : 1;
    return (a->dir > b->dir) - (a->dir < b->dir);
}

cvae_status cvae__fuzzy_graph(const int32_t *idx, const float *dist, int64_t n, int k,
                              cvae__graph *g)
{
    CVAE__CHECK_PTR(g);
    memset(g, 0, sizeof *g);
    CVAE__CHECK_PTR(idx);
    CVAE__CHECK_PTR(dist);
    if (n < 2 || n > INT32_MAX || k < 1 || k >= n)
        return cvae__fail(CVAE_E_INVALID_ARG, "fuzzy_graph: need 1 <= k < n (n %lld, k %d)",
                          (long long)n, k);
    for (int64_t e = 0; e < n * (int64_t)k; e++)
        if (idx[e] < 0 || idx[e] >= n || idx[e] == e / k)
            return cvae__fail(CVAE_E_INVALID_ARG, "fuzzy_graph: neighbour %lld of row %lld is %d",
                              (long long)(e % k), (long long)(e / k), idx[e]);
    float *rho = malloc((size_t)n * sizeof *rho), *sigma = malloc((size_t)n * sizeof *sigma);
    int64_t *start = calloc((size_t)n + 1, sizeof *start), *fill = NULL;
    half_edge *he = malloc(2 * (size_t)n * k * sizeof *he);
    cvae_status st = CVAE_OK;
    if (!rho || !sigma || !start || !he) {
        st = cvae__fail(CVAE_E_NOMEM, "fuzzy_graph: out of memory for %lld x %d edges",
                        (long long)n, k);
        goto done;
    }
    if ((st = cvae__smooth_knn(dist, n, k, rho, sigma)) != CVAE_OK)
        goto done;
    /* every kNN edge i -> j is a half-edge in row i and its reverse one in
     * row j: bucket them by row, then sort each row by column */
    for (int64_t i = 0; i < n; i++) {
        start[i + 1] += k;
        for (int e = 0; e < k; e++)
            start[idx[(size_t)i * k + e] + 1]++;
    }
    for (int64_t i = 0; i < n; i++)
        start[i + 1] += start[i];
    fill = malloc((size_t)n * sizeof *fill);
    if (!fill) {
        st = cvae__fail(CVAE_E_NOMEM, "fuzzy_graph: out of memory");
        goto done;
    }
    memcpy(fill, start, (size_t)n * sizeof *fill);
    for (int64_t i = 0; i < n; i++)
        for (int e = 0; e < k; e++) {
            const int32_t j = idx[(size_t)i * k + e];
            const double t = dist[(size_t)i * k + e] - rho[i];
            const float a = t > 0 ? (float)exp(-t / sigma[i]) : 1.0f;
            he[fill[i]++] = (half_edge){j, 0, a};
            he[fill[j]++] = (half_edge){(int32_t)i, 1, a};
        }
    for (int64_t i = 0; i < n; i++)
        qsort(he + start[i], (size_t)(start[i + 1] - start[i]), sizeof *he, half_edge_cmp);
    /* fuzzy union of the two directions, in place, dropping zeros */
    int64_t out = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t row0 = out;
        for (int64_t e = start[i]; e < start[i + 1];) {
            double a = 0, b = 0;
            const int32_t c = he[e].col;
            for (; e < start[i + 1] && he[e].col == c; e++) {
                if (he[e].dir == 0)
                    a = he[e].w;
                else
                    b = he[e].w;
            }
            const double u = a + b - a * b;
            if (u > 0)
                he[out++] = (half_edge){c, 0, (float)u};
        }
        start[i] = row0;
    }
    start[n] = out;
    g->n = n;
    g->rowptr = start;
    g->col = malloc((size_t)(out ? out : 1) * sizeof *g->col);
    g->w = malloc((size_t)(out ? out : 1) * sizeof *g->w);
    if (!g->col || !g->w) {
        start = NULL;
        cvae__graph_free(g);
        st = cvae__fail(CVAE_E_NOMEM, "fuzzy_graph: out of memory for %lld edges",
                        (long long)out);
        goto done;
    }
    for (int64_t e = 0; e < out; e++)
        g->col[e] = he[e].col, g->w[e] = he[e].w;
    start = NULL; /* owned by g */
done:
    free(rho), free(sigma), free(start), free(fill), free(he);
    return st;
}

/* ---- the curve 1 / (1 + a r^2b) ----------------------------------------- */

static double ab_sse(const double *x, const double *y, int m, double a, double b)
{
    double s = 0;
    for (int i = 0; i < m; i++) {
        const double u = x[i] > 0 ? pow(x[i], 2 * b) : 0;
        const double r = 1 / (1 + a * u) - y[i];
        s += r * r;
    }
    return s;
}

cvae_status cvae__umap_ab(double min_dist, double spread, double *a, double *b)
{
    CVAE__CHECK_PTR(a);
    CVAE__CHECK_PTR(b);
    if (!(spread > 0) || !(min_dist >= 0) || !(min_dist < 3 * spread) || !isfinite(spread))
        return cvae__fail(CVAE_E_INVALID_ARG, "umap_ab: min_dist %g, spread %g", min_dist,
                          spread);
    enum { M = 300 };
    double x[M], y[M];
    for (int i = 0; i < M; i++) {
        x[i] = 3 * spread * i / (M - 1);
        y[i] = x[i] < min_dist ? 1 : exp(-(x[i] - min_dist) / spread);
    }
    double pa = 1, pb = 1, lambda = 1e-3, sse = ab_sse(x, y, M, pa, pb);
    for (int it = 0; it < 500; it++) {
        double jtj[3] = {0}, jtr[2] = {0}; /* [aa, ab, bb] */
        for (int i = 0; i < M; i++) {
            if (x[i] <= 0)
                continue; /* f = 1 there for any a, b */
            const double u = pow(x[i], 2 * pb), q = 1 / (1 + pa * u);
            const double r = q - y[i];
            const double ja = -u * q * q, jb = -pa * u * 2 * log(x[i]) * q * q;
            jtj[0] += ja * ja, jtj[1] += ja * jb, jtj[2] += jb * jb;
            jtr[0] += ja * r, jtr[1] += jb * r;
        }
        double step_a = 0, step_b = 0, trial = sse;
        for (int tries = 0; tries < 40; tries++) {
            const double h00 = jtj[0] * (1 + lambda), h11 = jtj[2] * (1 + lambda), h01 = jtj[1];
            const double det = h00 * h11 - h01 * h01;
            step_a = -(h11 * jtr[0] - h01 * jtr[1]) / det;
            step_b = -(h00 * jtr[1] - h01 * jtr[0]) / det;
            trial = pa + step_a > 0 ? ab_sse(x, y, M, pa + step_a, pb + step_b) : INFINITY;
            if (trial < sse)
                break;
            lambda *= 10;
        }
        if (!(trial < sse))
            break; /* no descent step left: converged */
        pa += step_a, pb += step_b;
        const double gain = sse - trial;
        sse = trial;
        lambda /= 10;
        if (gain <= 1e-15 * (sse + 1e-300))
            break;
    }
    *a = pa, *b = pb;
    return CVAE_OK;
}

/* ---- layout -------------------------------------------------------------- */

void cvae__embed_defaults(cvae__embed_options *o)
{
    o->dim = 2;
    o->epochs = 0;
    o->min_dist = 0.0;
    o->spread = 1.0;
    o->learning_rate = 1.0;
    o->repulsion = 1.0;
    o->negative_rate = 5;
    o->init = CVAE__EMBED_INIT_RANDOM;
}

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int32_t find_root(int32_t *parent, int32_t i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

static float clip4(float v) { return v > 4.0f ? 4.0f : (v < -4.0f ? -4.0f : v); }

typedef struct sgd_edge {
    int32_t head, tail;
    float per_sample, next, per_neg, next_neg; /* epochs between samples, and the next one */
} sgd_edge;

cvae_status cvae__embed(const cvae__graph *g, const cvae__embed_options *o, cvae__rng *rng,
                        float *y, cvae__embed_info *info)
{
    CVAE__CHECK_PTR(g);
    CVAE__CHECK_PTR(o);
    CVAE__CHECK_PTR(rng);
    CVAE__CHECK_PTR(y);
    const int64_t n = g->n;
    const int dim = o->dim;
    if (n < 2 || n > INT32_MAX || !g->rowptr || dim < 1 || o->epochs < 0 ||
        o->negative_rate < 0 || !(o->learning_rate > 0) || !(o->repulsion >= 0) ||
        (o->init != CVAE__EMBED_INIT_SPECTRAL && o->init != CVAE__EMBED_INIT_RANDOM))
        return cvae__fail(CVAE_E_INVALID_ARG, "embed: bad options (n %lld, dim %d, epochs %d)",
                          (long long)n, dim, o->epochs);
    double a, b;
    cvae_status st = cvae__umap_ab(o->min_dist, o->spread, &a, &b);
    if (st != CVAE_OK)
        return st;
    const int epochs = o->epochs ? o->epochs : (n <= 10000 ? 500 : 200);
    const int64_t nnz = g->rowptr[n];
    float wmax = 0;
    for (int64_t e = 0; e < nnz; e++)
        if (g->w[e] > wmax)
            wmax = g->w[e];
    const float keep = wmax / (float)epochs;
    int64_t ne = 0;
    for (int64_t e = 0; e < nnz; e++)
        ne += g->w[e] >= keep && g->w[e] > 0;

    sgd_edge *edge = malloc((size_t)(ne ? ne : 1) * sizeof *edge);
    int32_t *parent = malloc((size_t)n * sizeof *parent);
    int64_t *prow = calloc((size_t)n + 1, sizeof *prow);
    int32_t *pcol = malloc((size_t)(ne ? ne : 1) * sizeof *pcol);
    float *pw = malloc((size_t)(ne ? ne : 1) * sizeof *pw);
    float *spec = NULL;
    if (!edge || !parent || !prow || !pcol || !pw) {
        st = cvae__fail(CVAE_E_NOMEM, "embed: out of memory for %lld edges", (long long)ne);
        goto done;
    }
    /* the pruned graph: edges for the layout, rows for the spectral start,
     * components by union-find */
    for (int32_t i = 0; i < (int32_t)n; i++)
        parent[i] = i;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++) {
            if (!(g->w[e] >= keep && g->w[e] > 0))
                continue;
            const int32_t j = g->col[e];
            if (j < 0 || j >= n) {
                st = cvae__fail(CVAE_E_INVALID_ARG, "embed: edge %lld points to %d",
                                (long long)e, j);
                goto done;
            }
            const float per = wmax / g->w[e];
            const float per_neg = o->negative_rate ? per / (float)o->negative_rate : per;
            edge[at] = (sgd_edge){(int32_t)i, j, per, per, per_neg, per_neg};
            pcol[at] = j, pw[at] = g->w[e];
            at++;
            int32_t ri = find_root(parent, (int32_t)i), rj = find_root(parent, j);
            if (ri != rj)
                parent[ri < rj ? rj : ri] = ri < rj ? ri : rj;
        }
        prow[i + 1] = at;
    }
    int components = 0, isolated = 0;
    for (int64_t i = 0; i < n; i++) {
        components += find_root(parent, (int32_t)i) == i;
        isolated += prow[i + 1] == prow[i];
    }

    cvae__embed_init used = CVAE__EMBED_INIT_RANDOM;
    if (o->init == CVAE__EMBED_INIT_SPECTRAL && components == 1 && !isolated && dim + 2 < n) {
        double *ev = malloc((size_t)(dim + 1) * sizeof *ev);
        spec = malloc((size_t)n * (dim + 1) * sizeof *spec);
        if (!ev || !spec) {
            free(ev);
            st = cvae__fail(CVAE_E_NOMEM, "embed: out of memory for the spectral start");
            goto done;
        }
        /* UMAP's tolerance; the first eigenvector (eigenvalue 1, the square
         * roots of the degrees) carries no layout and is dropped. */
        const cvae_status ss = cvae__spectral(n, prow, pcol, pw, dim + 1, 1e-4, ev, spec, NULL);
        free(ev);
        if (ss == CVAE_E_NOMEM) {
            st = ss;
            goto done;
        }
        if (ss == CVAE_OK) {
            float m = 0;
            for (int64_t i = 0; i < n; i++)
                for (int c = 0; c < dim; c++)
                    if (fabsf(spec[(size_t)i * (dim + 1) + 1 + c]) > m)
                        m = fabsf(spec[(size_t)i * (dim + 1) + 1 + c]);
            if (m > 0) {
                /* UMAP: scale to [-10, 10] and add a little noise so that no
                 * two points coincide */
                for (int64_t i = 0; i < n; i++)
                    for (int c = 0; c < dim; c++)
                        y[(size_t)i * dim + c] = spec[(size_t)i * (dim + 1) + 1 + c] * (10 / m) +
                                                 1e-4f * cvae__rng_normal(rng);
                used = CVAE__EMBED_INIT_SPECTRAL;
            }
        }
    }
    if (used == CVAE__EMBED_INIT_RANDOM)
        for (int64_t i = 0; i < n * (int64_t)dim; i++)
            y[i] = -10.0f + 20.0f * cvae__rng_uniform(rng);
    /* both starts are rescaled to [0, 10] per dimension, as UMAP does */
    for (int c = 0; c < dim; c++) {
        float lo = FLT_MAX, hi = -FLT_MAX;
        for (int64_t i = 0; i < n; i++) {
            const float v = y[(size_t)i * dim + c];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        const float scale = hi > lo ? 10.0f / (hi - lo) : 0.0f;
        for (int64_t i = 0; i < n; i++)
            y[(size_t)i * dim + c] = (y[(size_t)i * dim + c] - lo) * scale;
    }

    const uint64_t seed = cvae__rng_next(rng);
    const float fa = (float)a, fb = (float)b, gamma = (float)o->repulsion;
    for (int ep = 0; ep < epochs; ep++) {
        const float alpha = (float)(o->learning_rate * (1.0 - (double)ep / epochs));
        const uint64_t kep = mix64(seed ^ (uint64_t)ep);
        for (int64_t e = 0; e < ne; e++) {
            sgd_edge *ed = edge + e;
            if (ed->next > (float)ep)
                continue;
            float *cur = y + (size_t)ed->head * dim, *oth = y + (size_t)ed->tail * dim;
            float d2 = 0;
            for (int c = 0; c < dim; c++)
                d2 += (cur[c] - oth[c]) * (cur[c] - oth[c]);
            if (d2 > 0) {
                const float pw2 = powf(d2, fb);
                const float coef = -2.0f * fa * fb * (pw2 / d2) / (fa * pw2 + 1.0f);
                for (int c = 0; c < dim; c++) {
                    const float gd = clip4(coef * (cur[c] - oth[c])) * alpha;
                    cur[c] += gd;
                    oth[c] -= gd;
                }
            }
            ed->next += ed->per_sample;
            const int neg =
                o->negative_rate ? (int)(((float)ep - ed->next_neg) / ed->per_neg) : 0;
            const uint64_t ke = mix64(kep ^ (uint64_t)e);
            for (int p = 0; p < neg; p++) {
                const uint64_t h = mix64(ke + (uint64_t)p);
                const int64_t t = (int64_t)(((h >> 32) * (uint64_t)n) >> 32);
                if (t == ed->head)
                    continue;
                oth = y + (size_t)t * dim;
                d2 = 0;
                for (int c = 0; c < dim; c++)
                    d2 += (cur[c] - oth[c]) * (cur[c] - oth[c]);
                if (!(d2 > 0))
                    continue;
                const float coef = 2.0f * gamma * fb / ((0.001f + d2) * (fa * powf(d2, fb) + 1.0f));
                for (int c = 0; c < dim; c++)
                    cur[c] += clip4(coef * (cur[c] - oth[c])) * alpha;
            }
            if (neg > 0)
                ed->next_neg += (float)neg * ed->per_neg;
        }
    }
    if (info) {
        info->init_used = used;
        info->components = components;
        info->epochs = epochs;
        info->edges = ne;
        info->a = a, info->b = b;
    }
done:
    free(edge), free(parent), free(prow), free(pcol), free(pw), free(spec);
    return st;
}
