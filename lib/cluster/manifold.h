/* Manifold clustering of codes, as N2D (McConville et al. 2020): the exact
 * k-nearest-neighbour graph of the codes, a UMAP-style embedding of that
 * graph in as many dimensions as clusters, then a full-covariance Gaussian
 * mixture fitted to the embedding. Memory is O(n (neighbours + dim + k))
 * plus fixed per-thread tiles; no n x n matrix is ever formed. */
#ifndef CVAE_MANIFOLD_H
#define CVAE_MANIFOLD_H

#include <stdint.h>

#include "cluster/embed.h"
#include "cluster/gmm.h"
#include "convvae.h"

typedef struct cvae__manifold_options {
    int neighbors;             /* neighbours of each point, itself excluded: 19 (UMAP's and
                                  N2D's n_neighbors = 20 counts the point) */
    cvae__embed_options embed; /* embed.dim 0: the cluster count */
    cvae__gmm_options gmm;
    uint64_t seed;             /* of the layout's and the mixture's random draws */
} cvae__manifold_options;

/* neighbors 19, cvae__embed_defaults with dim 0, cvae__gmm_defaults, seed 1. */
void cvae__manifold_defaults(cvae__manifold_options *o);

/* Clusters the n x d codes (row-major) into k groups: assignments[n] (may
 * be NULL) and responsibilities n x k (may be NULL) of the mixture. o may be
 * NULL for the defaults. Deterministic for a given seed, whatever the thread
 * count. Needs neighbors < n and k <= n. CVAE_E_INVALID_ARG, CVAE_E_NOMEM,
 * CVAE_E_NUMERIC. */
cvae_status cvae__manifold_cluster(const float *codes, int64_t n, int d, int k,
                                   const cvae__manifold_options *o, int32_t *assignments,
                                   float *responsibilities);

#endif
