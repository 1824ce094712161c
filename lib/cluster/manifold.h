/* Manifold clustering of codes, as N2D (McConville et al. 2020): the exact
 * k-nearest-neighbour graph of the codes, a UMAP-style embedding of that
 * graph in as many dimensions as clusters, then a full-covariance Gaussian
 * mixture fitted to the embedding. Memory is O(n (neighbours + dim + k))
 * plus fixed per-thread tiles, and O(n (dim + k)) more for each thread
 * beyond the first when several runs share the threads; no n x n matrix is
 * ever formed. */
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
    int runs;                  /* layouts and mixtures fitted, each from its own seed
                                  (cvae__manifold_run_seed); the partition with the highest
                                  modularity of the neighbour graph is kept */
    int extra;                 /* mixture components beyond k, merged back to k by
                                  cvae__merge_by_modularity (0: the mixture has k); the
                                  embedding's dim 0 then means k + extra */
} cvae__manifold_options;

/* neighbors 19, cvae__embed_defaults with dim 0, cvae__gmm_defaults, seed 1,
 * runs 1, extra 0. */
void cvae__manifold_defaults(cvae__manifold_options *o);

/* The seed of run r (run 0: seed itself, so one run is what it always
 * was). */
uint64_t cvae__manifold_run_seed(uint64_t seed, int run);

/* Newman's modularity of the partition assign (n labels in [0, k)) of the
 * weighted graph g: the fraction of edge weight inside clusters less what a
 * random graph with the same degrees would put there,
 *   Q = sum_c [ W_cc / W - (deg_c / W)^2 ],
 * W the total weight counted in both directions, W_cc the weight inside c
 * counted likewise, deg_c the summed degrees of c's points. Why it picks
 * among runs: a layout that merges two true clusters and splits a third
 * cuts the dense inside of the split one and pays (deg_c / W)^2 for the
 * merged giant; on MNIST codes where half the layouts did that, each such
 * partition scored lower than every correct one (0.850-0.855 against
 * 0.866). Computed in double; an empty graph gives 0. */
double cvae__graph_modularity(const cvae__graph *g, const int32_t *assign, int k);

/* Joins the k_from clusters of the partition assign (n labels in
 * [0, k_from)) of g greedily into k_to <= k_from groups: each step merges
 * the two groups whose union raises the modularity the most (or lowers it
 * the least), a gain of (W_ab + W_ba) / W - 2 deg_a deg_b / W^2. group[c]
 * (k_from entries) receives cluster c's group in [0, k_to), groups numbered
 * in the order of their smallest cluster; ties take the first pair in
 * (a, b) order. Why: a mixture with spare components tends to cut a large
 * class in two rather than leave a small one without a component; the two
 * halves are densely linked on the graph, so the merge joins them, while
 * the small class, whose links lead mostly to itself, keeps its own.
 * CVAE_E_INVALID_ARG, CVAE_E_NOMEM. */
cvae_status cvae__merge_by_modularity(const cvae__graph *g, const int32_t *assign, int k_from,
                                      int k_to, int *group);

/* Clusters the n x d codes (row-major) into k groups: assignments[n] (may
 * be NULL) and responsibilities n x k (may be NULL) of the mixture of the
 * run kept; *modularity (may be NULL) its score. With o->extra the
 * mixture has k + extra components, merged to k per run before scoring;
 * a group's responsibility is the sum of its components'. o may be
 * NULL for the defaults. Deterministic for a given seed, whatever the thread
 * count. Needs neighbors < n and k + extra <= n. CVAE_E_INVALID_ARG, CVAE_E_NOMEM,
 * CVAE_E_NUMERIC. */
cvae_status cvae__manifold_cluster(const float *codes, int64_t n, int d, int k,
                                   const cvae__manifold_options *o, int32_t *assignments,
                                   float *responsibilities, double *modularity);

#endif
