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
    if (n < 2 || d < 1 || k < 1 || k > n || o->neighbors < 1 || o->neighbors >= n ||
        o->embed.dim < 0 || o->runs < 1)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "manifold: bad arguments (n %lld, d %d, k %d, neighbors %d, runs %d)",
                          (long long)n, d, k, o->neighbors, o->runs);
    const int nb = o->neighbors;
    cvae__embed_options eo = o->embed;
    if (eo.dim == 0)
        eo.dim = k;
    const int many = o->runs > 1;
    int32_t *idx = malloc((size_t)n * nb * sizeof *idx);
    float *dist = malloc((size_t)n * nb * sizeof *dist);
    float *y = malloc((size_t)n * eo.dim * sizeof *y);
    /* a run's result, before it is known to be the best so far */
    int32_t *a_run = malloc((size_t)n * sizeof *a_run);
    float *r_run = many && responsibilities ? malloc((size_t)n * k * sizeof *r_run) : NULL;
    cvae__graph g = {0};
    cvae_status st = CVAE_OK;
    if (!idx || !dist || !y || !a_run || (many && responsibilities && !r_run)) {
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
        float *resp = many ? r_run : responsibilities;
        if ((st = cvae__gmm_fit(y, n, eo.dim, k, &o->gmm, &rng, NULL, NULL, NULL, resp, a_run,
                                NULL)) != CVAE_OK)
            goto done;
        const double q = cvae__graph_modularity(&g, a_run, k);
        if (q > best || r == 0) {
            /* ties keep the earlier run */
            best = q;
            if (assignments)
                memcpy(assignments, a_run, (size_t)n * sizeof *a_run);
            if (many && responsibilities)
                memcpy(responsibilities, r_run, (size_t)n * k * sizeof *r_run);
        }
    }
    if (modularity)
        *modularity = best;
done:
    free(idx), free(dist), free(y), free(a_run), free(r_run);
    cvae__graph_free(&g);
    return st;
}
