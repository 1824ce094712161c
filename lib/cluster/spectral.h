/* Leading eigenvectors of a graph's normalised adjacency by ARPACK's
 * implicitly restarted Lanczos method (dsaupd/dseupd): the spectral start
 * of the embedding. Only matrix-vector products with the sparse graph are
 * needed, so memory is O(n * ncv), never O(n^2). */
#ifndef CVAE_SPECTRAL_H
#define CVAE_SPECTRAL_H

#include <stdint.h>

#include "convvae.h"

/* The nev largest eigenvalues of M = D^-1/2 W D^-1/2 (W the symmetric
 * weight matrix in compressed rows, D its row sums; the smallest of the
 * normalised Laplacian I - M) and their unit eigenvectors: eigval[nev]
 * descending, vec n x nev row-major (column j for eigval[j]; signs are
 * ARPACK's). The start vector is all ones, so the result is deterministic.
 * Rows with no weight are invalid (D would be 0). ncv Lanczos vectors:
 * max(2 nev + 1, min(sqrt(n), 64)). *iterations (may be NULL): restarts
 * used. CVAE_E_NUMERIC when ARPACK does not converge within 5 n restarts
 * or fails, with its code in the message; CVAE_E_INVALID_ARG,
 * CVAE_E_NOMEM. */
cvae_status cvae__spectral(int64_t n, const int64_t *rowptr, const int32_t *col, const float *w,
                           int nev, double tol, double *eigval, float *vec, int *iterations);

#endif
