#include "cluster/manifold.h"

#include <stdlib.h>

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
}

cvae_status cvae__manifold_cluster(const float *codes, int64_t n, int d, int k,
                                   const cvae__manifold_options *o, int32_t *assignments,
                                   float *responsibilities)
{
    cvae__manifold_options def;
    if (!o) {
        cvae__manifold_defaults(&def);
        o = &def;
    }
    CVAE__CHECK_PTR(codes);
    if (n < 2 || d < 1 || k < 1 || k > n || o->neighbors < 1 || o->neighbors >= n ||
        o->embed.dim < 0)
        return cvae__fail(CVAE_E_INVALID_ARG,
                          "manifold: bad arguments (n %lld, d %d, k %d, neighbors %d)",
                          (long long)n, d, k, o->neighbors);
    const int nb = o->neighbors;
    cvae__embed_options eo = o->embed;
    if (eo.dim == 0)
        eo.dim = k;
    int32_t *idx = malloc((size_t)n * nb * sizeof *idx);
    float *dist = malloc((size_t)n * nb * sizeof *dist);
    float *y = malloc((size_t)n * eo.dim * sizeof *y);
    cvae__graph g = {0};
    cvae_status st = CVAE_OK;
    if (!idx || !dist || !y) {
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
    cvae__rng rng;
    cvae__rng_seed(&rng, o->seed);
    if ((st = cvae__embed(&g, &eo, &rng, y, NULL)) != CVAE_OK)
        goto done;
    cvae__graph_free(&g);
    st = cvae__gmm_fit(y, n, eo.dim, k, &o->gmm, &rng, NULL, NULL, NULL, responsibilities,
                       assignments, NULL);
done:
    free(idx), free(dist), free(y);
    cvae__graph_free(&g);
    return st;
}
