/* A UMAP-style low-dimensional embedding of a k-nearest-neighbour graph
 * (McInnes, Healy & Melville 2018): a fuzzy simplicial set built from the
 * kNN distances, then a layout in dim dimensions by stochastic gradient
 * descent with negative sampling, started from the graph's spectral
 * embedding or from random points. The steps and constants are UMAP's own
 * (umap-learn's defaults), so its published behaviour carries over; what
 * differs is said below. */
#ifndef CVAE_EMBED_H
#define CVAE_EMBED_H

#include <stdint.h>

#include "convvae.h"
#include "core/rng.h"

/* A symmetric sparse graph in compressed rows: row i's neighbours are
 * col[rowptr[i] .. rowptr[i+1]) with weights w, in increasing column order;
 * every edge is stored in both of its rows. */
typedef struct cvae__graph {
    int64_t n;
    int64_t *rowptr; /* n + 1 */
    int32_t *col;    /* rowptr[n] */
    float *w;        /* rowptr[n] */
} cvae__graph;

void cvae__graph_free(cvae__graph *g);

/* UMAP's per-point scales: rho[i] is the distance to the nearest neighbour
 * at a positive distance (0 if there is none), sigma[i] solves
 *   sum_j exp(-max(0, dist[i][j] - rho[i]) / sigma[i]) = log2(k + 1)
 * by bisection (64 steps, tolerance 1e-5), floored at 1e-3 times the mean
 * neighbour distance. k + 1 is UMAP's n_neighbors, which counts the point
 * itself. dist: n x k, each row ascending (cvae__knn's output). */
cvae_status cvae__smooth_knn(const float *dist, int64_t n, int k, float *rho, float *sigma);

/* The fuzzy simplicial set of a kNN graph: directed memberships
 * a_ij = exp(-max(0, d_ij - rho_i) / sigma_i), symmetrised by the fuzzy
 * union a_ij + a_ji - a_ij a_ji (a missing direction counts 0).
 * idx, dist: n x k from cvae__knn. On failure g is left empty. */
cvae_status cvae__fuzzy_graph(const int32_t *idx, const float *dist, int64_t n, int k,
                              cvae__graph *g);

/* UMAP's curve 1 / (1 + a r^(2b)) fitted by least squares (Levenberg-
 * Marquardt from a = b = 1, as umap-learn's curve_fit) to the target
 * 1 for r < min_dist, exp(-(r - min_dist) / spread) beyond, on 300 points
 * of [0, 3 spread]. min_dist 0, spread 1 gives a = 1.93281, b = 0.790495
 * and min_dist 0.1 UMAP's familiar 1.57694, 0.895061 (the values scipy's
 * curve_fit finds, checked in the test). 0 <= min_dist < 3 spread. */
cvae_status cvae__umap_ab(double min_dist, double spread, double *a, double *b);

typedef enum cvae__embed_init {
    CVAE__EMBED_INIT_SPECTRAL = 0, /* eigenvectors of the normalised graph Laplacian */
    CVAE__EMBED_INIT_RANDOM = 1    /* uniform in [-10, 10]^dim */
} cvae__embed_init;

typedef struct cvae__embed_options {
    int dim;               /* output dimension (>= 1) */
    int epochs;            /* 0: UMAP's 500 up to 10000 points, 200 beyond */
    double min_dist;       /* 0 (N2D's choice; UMAP's default is 0.1) */
    double spread;         /* 1 */
    double learning_rate;  /* 1, decayed linearly to 0 */
    double repulsion;      /* gamma, weight of the negative samples: 1 */
    int negative_rate;     /* negative samples per positive one: 5 */
    cvae__embed_init init; /* RANDOM: on MNIST and Fashion-MNIST (pixels and
                              codes, 4-11 seeds each) the spectral start gave
                              the same ACC and the same agreement between seeds */
} cvae__embed_options;

void cvae__embed_defaults(cvae__embed_options *o);

/* What cvae__embed did. */
typedef struct cvae__embed_info {
    cvae__embed_init init_used; /* RANDOM when spectral was asked but fell back */
    int components;             /* connected components of the pruned graph */
    int epochs;                 /* epochs run */
    int64_t edges;              /* directed edges sampled (both directions count) */
    double a, b;                /* the curve's parameters */
} cvae__embed_info;

/* Lays out the graph g in o->dim dimensions: y (g->n x dim, row-major).
 * Edges below max weight / epochs are dropped first (they would never be
 * sampled), as UMAP does. The spectral start needs a connected graph and
 * ARPACK's convergence; otherwise the random start is used and info says
 * so. Each epoch visits every edge whose turn has come, moves both ends
 * towards each other and the head away from negative_rate random points;
 * unlike UMAP's Hogwild threads, this runs in one thread in a fixed order
 * and draws the random points from a counter-based hash of (seed, epoch,
 * edge), so y depends on the seed drawn from rng and on nothing else (not
 * on the thread count). info may be NULL. CVAE_E_INVALID_ARG,
 * CVAE_E_NOMEM. */
cvae_status cvae__embed(const cvae__graph *g, const cvae__embed_options *o, cvae__rng *rng,
                        float *y, cvae__embed_info *info);

#endif
