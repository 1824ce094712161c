/* The geometry of a 2-D convolution [c_in, h_in, w_in] -> [c_out, h_out,
 * w_out]: sizes, kernel, stride and padding, checked once so that every
 * count the kernels index with fits in int. The floor under im2col (which
 * turns a geometry into a matrix) and the conv and transposed-conv layers
 * (which run products over it). */
#ifndef CVAE_CONV_GEOM_H
#define CVAE_CONV_GEOM_H

#include <stddef.h>

#include "convvae.h"

typedef struct cvae__conv_geom {
    int c_in, h_in, w_in;
    int c_out, h_out, w_out;
    int kh, kw, stride;
    int pad_top, pad_left; /* bottom/right padding is implied by h_out/w_out */
} cvae__conv_geom;

#define CVAE__PAD_SAME (-1)

/* Forward-conv geometry. pad >= 0 pads pad zeros on every side;
 * CVAE__PAD_SAME gives h_out = ceil(h_in / stride) with the extra padding row
 * (for even kernels) at the bottom/right, as TensorFlow's "same".
 * Returns CVAE_E_INVALID_ARG (with message) for non-positive sizes, an output
 * smaller than 1x1, or sizes whose products overflow int. */
cvae_status cvae__conv_geom_init(cvae__conv_geom *g, int c_in, int h_in, int w_in, int c_out,
                                 int kh, int kw, int stride, int pad);

/* Floats of the per-image im2col matrix: c_in*kh*kw * h_out*w_out. */
size_t cvae__conv_col_floats(const cvae__conv_geom *g);

/* Along one axis, the output positions [*lo, *hi) at which kernel offset k
 * (padding pad, the stride, n_in inputs, n_out outputs) reads inside the
 * input; elsewhere it reads padding. */
void cvae__conv_valid_range(int k, int pad, int stride, int n_in, int n_out, int *lo, int *hi);

#endif
