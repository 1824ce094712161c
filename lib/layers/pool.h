/* 2-D max pooling, k x k windows with stride s, no padding (floor mode). */
#ifndef CVAE_POOL_H
#define CVAE_POOL_H

#include <stdint.h>

#include "convvae.h"

typedef struct cvae__pool_geom {
    int c, h_in, w_in, k, stride, h_out, w_out;
} cvae__pool_geom;

/* h_out = (h_in - k) / stride + 1. CVAE_E_INVALID_ARG if any size < 1 or the
 * window does not fit. */
cvae_status cvae__pool_geom_init(cvae__pool_geom *g, int c, int h_in, int w_in, int k,
                                 int stride);

/* y[n][c][h_out][w_out]; argmax (same shape) holds, per output, the index
 * y*w_in + x of the winning input inside its own channel plane (first
 * maximum wins on ties). */
void cvae__maxpool_forward(const cvae__pool_geom *g, int n, const float *x, float *y,
                           int32_t *argmax);
/* dx (shape of x) is overwritten: zero except at each argmax, where the
 * output gradients that chose it are summed. */
void cvae__maxpool_backward(const cvae__pool_geom *g, int n, const float *dy,
                            const int32_t *argmax, float *dx);

#endif
