/* Exact k nearest neighbours of every row of a point set, by tiled matrix
 * products: ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b with the a.b of a tile
 * of queries against a block of reference rows from one cvae__sgemm call.
 * Memory beyond the outputs is O(tile x block + tile x k) per thread and
 * never O(n^2); time is O(n^2 d), so this suits up to ~10^5 points
 * (70,000 points of d = 50 take about 10 s of one core). Far beyond that
 * an approximate index (nearest-neighbour descent, HNSW) is the tool. */
#ifndef CVAE_KNN_H
#define CVAE_KNN_H

#include <stdint.h>

#include "convvae.h"

/* For each of the n rows of x (n x d, row-major), its k nearest other rows
 * in Euclidean distance: idx[i*k + j] is the row of the j-th nearest
 * neighbour of row i and dist[i*k + j] its distance (not squared), in
 * increasing distance, ties broken by the smaller row index. A row is never
 * its own neighbour (a duplicate of it can be). dist may be NULL.
 *
 * Candidates are ranked by the product formula on mean-centred rows (which
 * keeps the cancellation error small for data far from the origin); the k
 * kept are then re-measured directly in double, and those distances are the
 * ones returned and sorted. Results do not depend on the thread count.
 * 1 <= k < n <= INT32_MAX, d >= 1. CVAE_E_INVALID_ARG (a non-finite value
 * too), CVAE_E_NOMEM. */
cvae_status cvae__knn(const float *x, int64_t n, int d, int k, int32_t *idx, float *dist);

#endif
