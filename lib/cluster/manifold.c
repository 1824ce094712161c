#include "cluster/manifold.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/knn.h"
#include "core/error.h"
#include "core/rng.h"

void cvae__manifold_defaults(cvae__manifold_options *o)
{
    o->neighbors = 19;
    cvae__embed_defaults(&o->embed);
    o->embed.dim = 0;
    cvae__gmm_defaults(&o->gmm);
    o->seed = 1;
    o->runs = 1;
    o->extra = 0;
}

uint64_t cvae__manifold_run_seed(uint64_t seed, int run)
{
    if (run == 0)
        return seed;
    /* splitmix64 of (seed, run): unrelated streams for the runs */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (uint64_t)(run + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double cvae__graph_modularity(const cvae__graph *g, const int32_t *assign, int k)
{
    double total = 0, inside = 0;
    double *deg = calloc((size_t)k, sizeof *deg);
    if (!deg)
        return -INFINITY; /* never kept over a scored run */
    for (int64_t i = 0; i < g->n; i++) {
        const int ci = assign[i];
        for (int64_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++) {
            const double w = g->w[e];
            total += w;
            deg[ci] += w;
            if (assign[g->col[e]] == ci)
                inside += w;
        }
    }
    double q = 0;
    if (total > 0) {
        q = inside / total;
        for (int c = 0; c < k; c++)
            q -= (deg[c] / total) * (deg[c] / total);
    }
    free(deg);
    return q;
}

cvae_status cvae__merge_by_modularity(const cvae__graph *g, const int32_t *assign, int k_from,
                                      int k_to, int *group)
{
    CVAE__CHECK_PTR(g);
    CVAE__CHECK_PTR(assign);
    CVAE__CHECK_PTR(group);
    if (k_to < 1 || k_from < k_to)
        return cvae__fail(CVAE_E_INVALID_ARG, "merge: cannot join %d clusters into %d", k_from,
                          k_to);
    const size_t kf = (size_t)k_from;
    /* between-group weights (both directions, as the graph stores them),
     * degrees, and each cluster's group representative: a merge folds b
     * into a < b, so a group is named by its smallest cluster */
    double *e = calloc(kf * kf, sizeof *e), *deg = calloc(kf, sizeof *deg);
    int *rep = malloc(kf * sizeof *rep);
    if (!e || !deg || !rep) {
        free(e), free(deg), free(rep);
        return cvae__fail(CVAE_E_NOMEM, "merge: out of memory for %d clusters", k_from);
    }
    double total = 0;
    for (int64_t i = 0; i < g->n; i++) {
        const size_t ci = (size_t)assign[i];
        for (int64_t t = g->rowptr[i]; t < g->rowptr[i + 1]; t++) {
            e[ci * kf + (size_t)assign[g->col[t]]] += g->w[t];
            deg[ci] += g->w[t];
            total += g->w[t];
        }
    }
    for (int c = 0; c < k_from; c++)
        rep[c] = c;
    for (int groups = k_from; groups > k_to; groups--) {
        int ba = -1, bb = -1;
        double best = -INFINITY;
        for (int a = 0; a < k_from; a++) {
            if (rep[a] != a)
                continue;
            for (int b = a + 1; b < k_from; b++) {
                if (rep[b] != b)
                    continue;
                /* the modularity gain times W; W = 0 (no edges) gains 0 */
                const double gain = e[(size_t)a * kf + (size_t)b] + e[(size_t)b * kf + (size_t)a] -
                                    (total > 0 ? 2 * deg[a] * deg[b] / total : 0);
                if (gain > best)
                    best = gain, ba = a, bb = b;
            }
        }
        for (int c = 0; c < k_from; c++) {
            e[(size_t)ba * kf + (size_t)c] += e[(size_t)bb * kf + (size_t)c];
            e[(size_t)bb * kf + (size_t)c] = 0;
        }
        for (int c = 0; c < k_from; c++) {
            e[(size_t)c * kf + (size_t)ba] += e[(size_t)c * kf + (size_t)bb];
            e[(size_t)c * kf + (size_t)bb] = 0;
        }
        deg[ba] += deg[bb];
        for (int c = 0; c < k_from; c++)
            if (rep[c] == bb)
                rep[c] = ba;
    }
    /* number the groups in the order of their representatives */
    int next = 0;
    for (int c = 0; c < k_from; c++)
        if (rep[c] == c)
            group[c] = next++;
    for (int c = 0; c < k_from; c++)
        group[c] = group[rep[c]];
    free(e), free(deg), free(rep);
    return CVAE_OK;
}

cvae_status cvae__manifold_cluster(const float *codes, int64_t n, int d, int k,
                                   const cvae__manifold_options *o, int32_t *assignments,
                                   float *responsibilities, double *modularity)
{
    cvae__manifold_options def;
    if (!o) {
        cvae__manifold_defaults(&def);
        o = &def;
    }
    CVAE__CHECK_PTR(codes);
    if (n < 2 || d < 1 || k < 1 || o->extra < 0 || k > n - o->extra ||
        o->neighbors < 1 || o->neighbors >= n || o->embed.dim < 0 || o->runs < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "manifold: bad arguments (n %lld, d %d, k %d, extra %d, neighbors %d, "
                          "runs %d)",
                          (long long)n, d, k, o->extra, o->neighbors, o->runs);
    const int nb = o->neighbors, kk = k + o->extra;
    cvae__embed_options eo = o->embed;
    if (eo.dim == 0)
        eo.dim = kk;
    /* a run's responsibilities go straight to the caller only when there is
     * one run and nothing to merge */
    const int direct = o->runs == 1 && o->extra == 0;
    int32_t *idx = malloc((size_t)n * nb * sizeof *idx);
    float *dist = malloc((size_t)n * nb * sizeof *dist);
    float *y = malloc((size_t)n * eo.dim * sizeof *y);
    /* a run's result, before it is known to be the best so far */
    int32_t *a_run = malloc((size_t)n * sizeof *a_run);
    float *r_run = !direct && responsibilities ? malloc((size_t)n * kk * sizeof *r_run) : NULL;
    int *group = malloc((size_t)kk * sizeof *group);
    cvae__graph g = {0};
    cvae_status st = CVAE_OK;
    if (!idx || !dist || !y || !a_run || !group || (!direct && responsibilities && !r_run)) {
        st = cvae__fail(CVAE_E_NOMEM, "manifold: out of memory for %lld points", (long long)n);
        goto done;
    }
    if ((st = cvae__knn(codes, n, d, nb, idx, dist)) != CVAE_OK)
        goto done;
    st = cvae__fuzzy_graph(idx, dist, n, nb, &g);
    free(idx), free(dist);
    idx = NULL, dist = NULL;
    if (st != CVAE_OK)
        goto done;
    double best = -INFINITY;
    for (int r = 0; r < o->runs; r++) {
        cvae__rng rng;
        cvae__rng_seed(&rng, cvae__manifold_run_seed(o->seed, r));
        if ((st = cvae__embed(&g, &eo, &rng, y, NULL)) != CVAE_OK)
            goto done;
        float *resp = direct ? responsibilities : r_run;
        if ((st = cvae__gmm_fit(y, n, eo.dim, kk, &o->gmm, &rng, NULL, NULL, NULL, resp, a_run,
                                NULL)) != CVAE_OK)
            goto done;
        for (int c = 0; c < kk; c++)
            group[c] = c;
        if (o->extra > 0) {
            if ((st = cvae__merge_by_modularity(&g, a_run, kk, k, group)) != CVAE_OK)
                goto done;
            for (int64_t i = 0; i < n; i++)
                a_run[i] = group[a_run[i]];
        }
        const double q = cvae__graph_modularity(&g, a_run, k);
        if (q > best || r == 0) {
            /* ties keep the earlier run */
            best = q;
            if (assignments)
                memcpy(assignments, a_run, (size_t)n * sizeof *a_run);
            if (!direct && responsibilities)
                for (int64_t i = 0; i < n; i++) {
                    float *out = responsibilities + (size_t)i * k;
                    const float *in = r_run + (size_t)i * kk;
                    memset(out, 0, (size_t)k * sizeof *out);
                    for (int c = 0; c < kk; c++)
                        out[group[c]] += in[c];
                }
        }
    }
    if (modularity)
        *modularity = best;
done:
    free(idx), free(dist), free(y), free(a_run), free(r_run), free(group);
    cvae__graph_free(&g);
    return st;
}
