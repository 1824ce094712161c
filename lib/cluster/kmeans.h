/* k-means with k-means++ seeding (Arthur & Vassilvitskii 2007), used to
 * initialise the mixture prior's class means from the training set's mu. */
#ifndef CVAE_KMEANS_H
#define CVAE_KMEANS_H

#include <stdint.h>

#include "convvae.h"
#include "core/rng.h"

/* Cluster n points of dimension d (row-major) into k centers (k <= n),
 * seeded with k-means++, then Lloyd iterations until no assignment changes
 * or max_iter. centers: k*d floats (output). assign: n ints (output, may be
 * NULL). *inertia (may be NULL): final sum of squared distances.
 * Allocates O(n + k*d) scratch (call outside hot loops).
 * Returns CVAE_OK, CVAE_E_INVALID_ARG, CVAE_E_NOMEM. */
cvae_status cvae__kmeans(const float *x, int64_t n, int d, int k, int max_iter, cvae__rng *rng,
                         float *centers, int32_t *assign, double *inertia);

#endif
